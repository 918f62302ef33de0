"""Root-key rotation (`kms admin rotate-root-key`, issue 19): every secret re-sealed under a new
root key, crash-safe and resumable.

- After a rotation (two, in fact) every ciphertext still decrypts (symmetric keys with several
  versions, BYOK keys, through aliases), access keys of other accounts still sign, a console
  user signs in, the material commitment still binds a BYOK key to its material, an import
  token issued before is refused with InvalidImportToken, and `kms admin audit verify` passes
  across the handovers.
- SIGKILL at every phase (staged, recorded, after n re-sealed rows, committed, audit handover)
  and at random moments over a few thousand keys: the server refuses the half-rotated data dir
  naming the command, the command resumes, and everything checks out.
- A full disk at each step fails cleanly; the command resumes once there is space.
- PostgreSQL, two nodes on one database: a running node refuses requests (503) once the root
  key is rotated away; a node started after the rotation works; the other node finishes with
  the new key at root.key.next and works again.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from kms_helpers import (KmsServer, RawClient, b64, fill_fs, kms_bin, unb64,
                         wrap_key_material)
from test_console_security import PASSWORD, Console

PG = bool(os.environ.get("KMS_TEST_DATABASE_URL"))


def admin(srv: KmsServer, *args: str, env: dict | None = None, timeout: float = 120):
    e = srv.admin_env()
    e.update(env or {})
    return subprocess.run([str(kms_bin()), "admin", *args, "--data-dir", str(srv.data_dir),
                           *srv.db_args()], env=e, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def rotate(srv: KmsServer, *extra: str, env: dict | None = None):
    return admin(srv, "rotate-root-key", "--grace-seconds", "0", *extra, env=env)


def audit_verify(srv: KmsServer):
    return admin(srv, "audit", "verify")


class World:
    """What was made before the rotation, and the checks that it all survived."""

    def __init__(self, srv: Console):
        self.srv = srv
        raw = RawClient(srv)
        self.ciphertexts: list[tuple[str, bytes, str]] = []  # (blob, plaintext, how)
        self.byok: dict[str, bytes] = {}
        # Symmetric keys, one with three versions, encrypting under each.
        for i in range(3):
            kid = raw.ok("CreateKey", {"Description": f"sym{i}"})["KeyMetadata"]["KeyId"]
            rounds = 3 if i == 0 else 1
            for r in range(rounds):
                if r:
                    raw.ok("CreateKeyVersion", {"KeyId": kid})
                pt = os.urandom(24)
                blob = raw.ok("Encrypt", {"KeyId": kid, "Plaintext": b64(pt)})["CiphertextBlob"]
                self.ciphertexts.append((blob, pt, f"{kid} v{r}"))
            if i == 1:
                raw.ok("CreateAlias", {"KeyId": kid, "AliasName": "alias/rotation-test"})
        # BYOK keys with imported material.
        for i in range(2):
            kid = raw.ok("CreateKey", {"Origin": "EXTERNAL"})["KeyMetadata"]["KeyId"]
            material = os.urandom(32)
            self.import_material(kid, material)
            self.byok[kid] = material
            pt = os.urandom(40)
            blob = raw.ok("Encrypt", {"KeyId": kid, "Plaintext": b64(pt)})["CiphertextBlob"]
            self.ciphertexts.append((blob, pt, f"byok {kid}"))
        pt = os.urandom(8)
        blob = raw.ok("Encrypt", {"KeyId": "alias/rotation-test", "Plaintext": b64(pt)})["CiphertextBlob"]
        self.ciphertexts.append((blob, pt, "alias"))
        # A token issued before the rotation, for a key still waiting for material.
        self.pending = raw.ok("CreateKey", {"Origin": "EXTERNAL"})["KeyMetadata"]["KeyId"]
        self.token = raw.ok("GetParametersForImport", {
            "KeyId": self.pending, "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
            "WrappingKeySpec": "RSA_2048"})
        # Access keys of other accounts (no RAM), and a console user.
        self.access_keys = [srv.new_account() for _ in range(2)]
        srv.add_user("rotator")

    def import_material(self, kid: str, material: bytes, expect: str | None = None):
        raw = RawClient(self.srv)
        p = raw.ok("GetParametersForImport", {"KeyId": kid, "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
                                             "WrappingKeySpec": "RSA_2048"})
        r = raw.call("ImportKeyMaterial", {
            "KeyId": kid, "ImportToken": p["ImportToken"],
            "EncryptedKeyMaterial": wrap_key_material(p["PublicKey"], material, "RSAES_OAEP_SHA_256")})
        if expect is None:
            assert r.status == 200, r
        else:
            assert r.json.get("Code") == expect, r

    def check(self, srv: Console | None = None):
        srv = srv or self.srv
        raw = RawClient(srv)
        for blob, pt, how in self.ciphertexts:
            got = raw.ok("Decrypt", {"CiphertextBlob": blob})
            assert unb64(got["Plaintext"]) == pt, how
        for ak in self.access_keys:
            r = RawClient(srv, ak["AccessKeyId"], ak["AccessKeySecret"]).call("ListKeys", {})
            assert r.status == 200, r
            assert r.json["TotalCount"] == 0
        if isinstance(srv, Console):
            r = srv.signin_user("rotator")
            assert r.status == 303 and r.header("Location") == "/console/keys", r
            assert srv.page_status(srv.session_of(r))[0] == 200

    def check_after_rotation(self):
        """The checks that need a rotation behind them (each can run once)."""
        raw = RawClient(self.srv)
        # The token issued before the rotation is refused; a new one works.
        r = raw.call("ImportKeyMaterial", {
            "KeyId": self.pending, "ImportToken": self.token["ImportToken"],
            "EncryptedKeyMaterial": wrap_key_material(self.token["PublicKey"], os.urandom(32),
                                                      "RSAES_OAEP_SHA_256")})
        assert (r.status, r.json.get("Code")) == (400, "InvalidImportToken"), r
        self.import_material(self.pending, os.urandom(32))
        # The commitment still binds each BYOK key to its material: after DeleteKeyMaterial,
        # other material is refused and the same material is accepted.
        kid, material = next(iter(self.byok.items()))
        raw.ok("DeleteKeyMaterial", {"KeyId": kid})
        self.import_material(kid, os.urandom(32), expect="InvalidKeyMaterial")
        self.import_material(kid, material)


def expect_refused(srv: KmsServer):
    """The server does not start on a half-rotated data dir, and says what to run."""
    with pytest.raises(AssertionError) as e:
        srv.start()
    assert "kms admin rotate-root-key" in str(e.value), str(e.value)[-2000:]


def assert_verified(srv: KmsServer, handovers: int):
    v = audit_verify(srv)
    assert v.returncode == 0, v.stdout + v.stderr
    assert f"over {handovers} time" in v.stdout, v.stdout


@pytest.fixture(scope="module")
def world(kms_binary, tmp_path_factory):
    srv = Console(tmp_path_factory.mktemp("rotation")).start()
    w = World(srv)
    w.check()
    yield w
    srv.stop()


def test_rotation_keeps_every_secret_and_the_audit_chain(world):
    srv = world.srv
    root = srv.data_dir / "root.key"
    before = root.read_bytes()
    # Not while the server runs on the data dir: refused before anything changes.
    r = rotate(srv)
    assert r.returncode == 2 and "a server is running on this data dir" in r.stderr, r.stderr
    assert not (srv.data_dir / "root.key.next").exists() and root.read_bytes() == before
    world.check()
    srv.stop()
    r = rotate(srv)
    assert r.returncode == 0, r.stderr
    assert "Rotated the root key" in r.stdout
    assert "re-sealed" in r.stderr  # progress lines
    assert root.read_bytes() != before and len(root.read_bytes()) == 32
    assert (root.stat().st_mode & 0o777) == 0o600
    assert not (srv.data_dir / "root.key.next").exists()
    assert_verified(srv, 1)
    srv.start()
    world.check()
    world.check_after_rotation()
    # A second rotation: the chain hands over twice, the carried commitment key moves on.
    srv.stop()
    r = rotate(srv, "--batch", "2")
    assert r.returncode == 0, r.stderr
    assert_verified(srv, 2)
    srv.start()
    world.check()
    kid, material = next(iter(world.byok.items()))
    RawClient(srv).ok("DeleteKeyMaterial", {"KeyId": kid})
    world.import_material(kid, os.urandom(32), expect="InvalidKeyMaterial")
    world.import_material(kid, material)
    # Running it again with nothing unfinished starts (and completes) a third rotation.
    srv.stop()
    assert rotate(srv).returncode == 0
    assert_verified(srv, 3)
    srv.start()


KILL_POINTS = ["staged", "recorded", "rows:1", "rows:4", "rows:8", "committed", "handover"]


def test_sigkill_at_every_phase_then_resume(world):
    srv = world.srv
    srv.stop()
    out = audit_verify(srv).stdout
    handovers = int(out.split("over ")[1].split(" time")[0]) if "over " in out else 0
    for point in KILL_POINTS:
        r = rotate(srv, "--batch", "3", env={"KMS_TEST_ROTATION_KILL_AT": point})
        assert r.returncode == -9, (point, r.returncode, r.stderr)
        assert (srv.data_dir / "root.key.next").exists(), point
        expect_refused(srv)
        # Other admin commands refuse it too, and audit verify still passes.
        assert admin(srv, "access-key", "list").returncode != 0
        assert audit_verify(srv).returncode == 0, point
        r = rotate(srv)
        assert r.returncode == 0, (point, r.stderr)
        handovers += 1
        assert_verified(srv, handovers)
    srv.start()
    world.check()
    srv.stop()


def test_sigkill_at_random_moments_over_thousands_of_keys(world):
    srv = world.srv
    srv.stop()
    seed = admin(srv, "seed-keys", "--count", "4000")
    assert seed.returncode == 0, seed.stderr
    rng = random.Random(20261201)
    cmd = [str(kms_bin()), "admin", "rotate-root-key", "--grace-seconds", "0", "--batch", "50",
           "--data-dir", str(srv.data_dir), *srv.db_args()]
    # Kill times are fractions of how long one whole rotation takes on this machine (timed
    # first; a complete rotation is a valid step too), so a fast machine does not finish every
    # rotation before the kill. A run after a kill only finishes the interrupted rotation, so at
    # least every other run is a whole one, killed part-way.
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=srv.admin_env(), capture_output=True, text=True)
    whole = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    killed = 0
    for _ in range(6):
        p = subprocess.Popen(cmd, env=srv.admin_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.1, 0.8) * whole)
        if p.poll() is None:
            p.kill()
            killed += 1
        p.wait()
    assert killed >= 3, f"only {killed} of 6 rotations were killed (a whole one takes {whole:.2f} s)"
    if (srv.data_dir / "root.key.next").exists():
        expect_refused(srv)
    r = rotate(srv)
    assert r.returncode == 0, r.stderr
    assert audit_verify(srv).returncode == 0
    srv.start()
    world.check()
    # Seeded keys' material was re-sealed too.
    raw = RawClient(srv)
    keys = raw.ok("ListKeys", {"PageSize": 100, "PageNumber": rng.randint(1, 40)})["Keys"]["Key"]
    for k in keys[:5]:
        blob = raw.ok("Encrypt", {"KeyId": k["KeyId"], "Plaintext": b64(b"x")})["CiphertextBlob"]
        assert unb64(raw.ok("Decrypt", {"CiphertextBlob": blob})["Plaintext"]) == b"x"


@pytest.mark.skipif(PG, reason="the full disk is the data dir's (SQLite); PostgreSQL's disk is its server's")
def test_a_full_disk_fails_cleanly_and_the_rotation_resumes(kms_binary, small_fs, tmp_path):
    srv = Console(small_fs)
    srv.data_dir = small_fs / "data"
    srv.log_dir = tmp_path / "logs"
    srv.log_dir.mkdir()
    srv.start()
    w = World(srv)
    srv.stop()
    for point in [None, "recorded", "committed"]:
        if point:
            r = rotate(srv, env={"KMS_TEST_ROTATION_KILL_AT": point})
            assert r.returncode == -9, r.stderr
        filler = fill_fs(small_fs)
        try:
            r = rotate(srv)
            if point == "committed" and r.returncode == 0:
                # The handover line fits in the space the audit writer keeps allocated past
                # the end of audit.log for exactly such a moment.
                assert "Rotated the root key" in r.stdout
                continue
            # A clean error (exit 2, one "error:" line), never a panic or a kill.
            assert r.returncode == 2, (point, r.returncode, r.stdout, r.stderr)
            assert "error: " in r.stderr and "panicked" not in r.stderr, r.stderr
            if point:
                assert "run `kms admin rotate-root-key --data-dir" in r.stderr, r.stderr
            assert any(w in r.stderr for w in ("space", "full", "disk I/O error")), r.stderr
            expect_refused(srv) if point else None
        finally:
            filler.unlink()
        assert not (small_fs / "data" / "root.key.next.tmp").exists()
        r = rotate(srv)
        assert r.returncode == 0, (point, r.stderr)
    assert audit_verify(srv).returncode == 0
    srv.start()
    w.check()
    srv.stop()


@pytest.mark.skipif(not PG, reason="several nodes share a PostgreSQL database")
def test_nodes_on_one_database(world, tmp_path):
    a = world.srv
    if a.proc is None:
        a.start()
    b = KmsServer(tmp_path / "b", tmp_path / "b-logs", ak=a.ak, sk=a.sk,
                  database_url=a.database_url)
    shutil.copy(a.data_dir / "root.key", b.data_dir / "root.key")
    (b.data_dir / "root.key").chmod(0o600)
    b.start()
    world.check(b)
    a.stop()
    r = admin(a, "rotate-root-key", "--grace-seconds", "1.5")
    assert r.returncode == 0, r.stderr
    # The node that kept the old key refuses every request, and says so on /readyz.
    r = RawClient(b).call("ListKeys", {})
    assert (r.status, r.json.get("Code")) == (503, "ServiceUnavailableTemporary"), r
    import http.client
    import json
    conn = http.client.HTTPConnection("127.0.0.1", b.port, timeout=5)
    conn.request("GET", "/readyz")
    ready = conn.getresponse()
    body = json.loads(ready.read())
    assert ready.status == 503 and body["Checks"]["RootKey"] == "FAILED", body
    # A node started after the rotation works.
    a.start()
    world.check(a)
    # The old node, restarted, refuses the database and names the command; with the new key
    # at root.key.next the command finishes its data dir (audit handover, retire) and it works.
    b.stop()
    with pytest.raises(AssertionError) as e:
        b.start()
    assert "different root key" in str(e.value) and "rotate-root-key" in str(e.value)
    shutil.copy(a.data_dir / "root.key", b.data_dir / "root.key.next")
    r = rotate(b)
    assert r.returncode == 0, r.stderr
    assert "the database is rotated; finishing this data dir" in r.stderr
    assert audit_verify(b).returncode == 0
    b.start()
    world.check(b)
    b.stop()
