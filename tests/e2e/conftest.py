"""pytest fixtures for the KMS end-to-end suite.

Fixtures
  kms_binary     session: path of the server binary; FAILS (not skips) when it is missing
  server         module-scoped shared server (tests create their own keys, never advance its clock)
  own_server     function-scoped private server (clock advances, restarts, kill -9)
  api            parametrized over the three Python SDK flavours (classic / tea_v3 / tea_v2)
  classic, tea   factories: classic(server, ak=None, sk=None) / tea(server, v2=False, ...)
  raw            RawClient for the shared server (hand-signed requests)
Helpers on a server: .port .data_dir .ak .sk .restart() .kill9_and_restart() .advance_clock(s) .new_account()
"""
from __future__ import annotations

import os

import pytest

from kms_helpers import (FLAVOURS, ClassicApi, KmsServer, RawClient, TeaApi, kms_bin, make_api,
                         mount_tmpfs, umount)


@pytest.fixture(scope="session")
def kms_binary():
    path = kms_bin()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"KMS server binary not found or not executable at {path}. Build it first "
            f"(`cargo build -p kms`) or point KMS_BIN at it.", pytrace=False)
    return path


def _start(tmp_path_factory, name: str) -> KmsServer:
    base = tmp_path_factory.mktemp(name)
    srv = KmsServer(base / "data", base / "logs")
    srv.start()
    return srv


@pytest.fixture(scope="module")
def server(kms_binary, tmp_path_factory):
    srv = _start(tmp_path_factory, "shared")
    yield srv
    srv.stop()


@pytest.fixture
def own_server(kms_binary, tmp_path_factory):
    srv = _start(tmp_path_factory, "own")
    yield srv
    if srv.proc is not None:
        srv.stop()


@pytest.fixture
def classic():
    def factory(server, ak=None, sk=None):
        return ClassicApi(server, ak, sk)
    return factory


@pytest.fixture
def tea():
    def factory(server, v2=False, ak=None, sk=None):
        return TeaApi(server, v2, ak, sk)
    return factory


@pytest.fixture(params=FLAVOURS)
def api(request, server):
    return make_api(request.param, server)


@pytest.fixture
def capi(server):
    """Classic SDK client on the shared server (used where the flavour does not matter)."""
    return ClassicApi(server)


@pytest.fixture
def raw(server):
    return RawClient(server)


@pytest.fixture
def server_with(kms_binary, tmp_path):
    """Factory for a private server started with extra `kms server` flags."""
    started = []

    def factory(*args: str) -> KmsServer:
        n = len(started)
        srv = KmsServer(tmp_path / f"data{n}", tmp_path / f"logs{n}", extra_args=args)
        started.append(srv)
        return srv.start()

    yield factory
    for s in started:
        if s.proc is not None:
            s.stop()


@pytest.fixture
def small_fs(tmp_path):
    """A 16 MiB tmpfs mounted for the test (root only; skipped elsewhere): a real full disk."""
    mnt = tmp_path / "auditfs"
    why = mount_tmpfs(mnt, "16m")
    if why:
        pytest.skip(why)
    yield mnt
    umount(mnt)
