"""Shared helpers for the KMS end-to-end tests.

Contents:
  * KmsServer       - starts/stops/restarts the `kms server` binary (interface fixed by the lead)
  * sign_v1 / ...   - an independent implementation of the RPC v1 HMAC-SHA1 signature (reference §1.3)
                      and of ACS3-HMAC-SHA256 (reference §1.4), used by RawClient and self-tested
  * RawClient       - hand-made signed HTTP requests (for malformed input the SDKs never send)
  * ClassicApi, TeaApi - thin adapters over the official Python SDKs that all expose
                      `call(Action, **PascalCaseParams) -> dict` and raise KmsError on a server error
  * wrap_key_material - RSA wrapping of BYOK material with the `cryptography` package
  * assertion helpers (metadata, dates, errors)
"""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import http.client
import importlib
import json
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_ID = "1234567890123456"
REGION = "cn-hangzhou"
API_VERSION = "2016-01-20"
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
JSON_CT = "application/json;charset=utf-8"

METADATA_FIELDS = (
    "KeyId", "Arn", "CreationDate", "Creator", "Description", "KeyState", "KeyUsage", "KeySpec",
    "Origin", "ProtectionLevel", "PrimaryKeyVersion", "AutomaticRotation", "RotationInterval",
    "LastRotationDate", "NextRotationDate", "DeleteDate", "MaterialExpireTime", "DeletionProtection",
    "DeletionProtectionDescription", "DKMSInstanceId",
)

WRAPPING_ALGORITHMS = ("RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")


# --------------------------------------------------------------------------------------------
# time helpers
# --------------------------------------------------------------------------------------------
def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def fmt_date(d: _dt.datetime) -> str:
    return d.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_date(s: str) -> _dt.datetime:
    assert DATE_RE.match(s), f"not a yyyy-MM-ddTHH:mm:ssZ date: {s!r}"
    return _dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)


def assert_date_near(s: str, expected: _dt.datetime, tolerance_s: float = 90) -> None:
    got = parse_date(s)
    delta = abs((got - expected).total_seconds())
    assert delta <= tolerance_s, f"date {s} is {delta:.0f}s away from expected {fmt_date(expected)}"


# --------------------------------------------------------------------------------------------
# server process management
# --------------------------------------------------------------------------------------------
def kms_bin() -> Path:
    p = os.environ.get("KMS_BIN")
    if p:
        path = Path(p)
        if not path.is_absolute():
            path = REPO_ROOT / path
        return path
    return REPO_ROOT / "target" / "debug" / "kms"


_next_port = {"n": 0}


def free_port() -> int:
    """A loopback port nothing listens on. Under pytest-xdist (CI runs the suite on several
    workers) each worker hands out ports in turn from its own block below Linux's ephemeral
    range (32768-60999): two workers never pick the same port, and no client connection's
    source port can take a server's port while the server is stopped between restarts."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        block = 3500
        lo = 2000 + (int(worker[2:]) % 8) * block
        for _ in range(block):
            p = lo + _next_port["n"] % block
            _next_port["n"] += 1
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    continue
                # the test may listen on p + 1 too (console tests): keep it free as well
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s2:
                    try:
                        s2.bind(("127.0.0.1", p + 1))
                    except OSError:
                        continue
            _next_port["n"] += 1
            return p
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def random_ak() -> tuple[str, str]:
    return "LTAI" + uuid.uuid4().hex[:20], base64.b64encode(os.urandom(22)).decode().rstrip("=")


class ServerStartError(AssertionError):
    pass


def new_test_database() -> Optional[str]:
    """With KMS_TEST_DATABASE_URL=postgres://user@host:port set (CI runs the suite once so),
    a fresh PostgreSQL database for one server (or one group of nodes); else None (SQLite)."""
    base = os.environ.get("KMS_TEST_DATABASE_URL")
    if not base:
        return None
    base = base.rstrip("/")
    name = "kms_t" + uuid.uuid4().hex[:16]
    out = subprocess.run(["psql", f"{base}/postgres", "-qAtc", f"CREATE DATABASE {name}"],
                         capture_output=True, timeout=60)
    assert out.returncode == 0, f"CREATE DATABASE failed: {out.stderr!r}"
    return f"{base}/{name}"


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Linux: SIGKILL the server if the test process dies (no orphaned servers after a ^C or timeout)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class KmsServer:
    """One `kms server` process on a private data dir (the documented interface)."""

    def __init__(self, data_dir: Path, log_dir: Path, account_id: str = ACCOUNT_ID,
                 ak: Optional[str] = None, sk: Optional[str] = None,
                 extra_args: Iterable[str] = (), database_url: Optional[str] = None,
                 extra_env: Optional[Dict[str, str]] = None):
        self.binary = kms_bin()
        # PostgreSQL when the suite runs against it (a fresh database per server unless given,
        # e.g. one database shared by several nodes); None = SQLite in the data dir.
        self.database_url = database_url or new_test_database()
        self.extra_env = dict(extra_env or {})  # e.g. KMS_ROOT_KEY_FILE shared by several nodes
        self.extra_args = list(extra_args)  # additional `kms server` flags, e.g. ["--max-keys", "3"]
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.account_id = account_id
        if ak is None:
            ak, sk = random_ak()
        self.ak, self.sk = ak, sk
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.clock_offset = 0  # seconds, mirrors the server's cumulative test-clock offset
        self.starts = 0
        self.last_exit_code: Optional[int] = None

    def admin_env(self) -> dict:
        """The environment for `kms admin` on this server's data dir and database."""
        return {**os.environ, **self.extra_env}

    def db_args(self) -> list:
        return ["--database-url", self.database_url] if self.database_url else []

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _log_path(self) -> Path:
        return self.log_dir / f"server-{self.starts}.log"

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self._log_path().read_text(errors="replace").splitlines()
        except OSError:
            return "<no log>"
        return "\n".join(lines[-n:])

    def start(self, port: Optional[int] = None) -> "KmsServer":
        self.launch(port)
        self._wait_ready()
        return self

    def launch(self, port: Optional[int] = None) -> None:
        """Starts the process without waiting for it to be ready (several nodes at once).
        Call from the main thread: the process dies with the thread that started it."""
        assert self.proc is None, "server already running"
        self.starts += 1
        self.port = port or self.port or free_port()
        env = dict(os.environ)
        env["KMS_ACCESS_KEY_ID"] = self.ak
        env["KMS_ACCESS_KEY_SECRET"] = self.sk
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.extra_env)
        cmd = [str(self.binary), "server", "--listen", f"127.0.0.1:{self.port}",
               "--data-dir", str(self.data_dir), "--account-id", self.account_id,
               "--enable-test-clock", *self.db_args(), *self.extra_args]
        log = open(self._log_path(), "wb")
        try:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        finally:
            log.close()
        return None

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        last_err = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise ServerStartError(
                    f"kms server exited with code {rc} before becoming ready (port {self.port}).\n"
                    f"--- server log ---\n{self.log_tail()}")
            try:
                if getattr(self, "scheme", "http") == "https":  # readiness only: no verification
                    import ssl
                    conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=2,
                                                       context=ssl._create_unverified_context())
                else:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                resp.read()
                conn.close()
                if resp.status == 200:
                    return
                last_err = f"HTTP {resp.status}"
            except OSError as e:  # connection refused while starting
                last_err = repr(e)
            time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        raise ServerStartError(f"kms server not ready after {timeout}s (last: {last_err}).\n"
                               f"--- server log ---\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """Graceful stop (SIGTERM) and wait; returns the exit code."""
        if self.proc is None:
            return self.last_exit_code
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise AssertionError(f"kms server did not exit within {timeout}s of SIGTERM\n{self.log_tail()}")
        self.proc = None
        self.last_exit_code = rc
        return rc

    def kill9(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.last_exit_code = self.proc.returncode
        self.proc = None

    def restart(self) -> "KmsServer":
        """SIGTERM, wait, start a new process on the same data dir and port.

        The test clock offset is process state: a fresh process starts with offset 0.
        """
        self.stop()
        self.clock_offset = 0
        return self.start()

    def kill9_and_restart(self) -> "KmsServer":
        self.kill9()
        self.clock_offset = 0
        return self.start()

    # -- test hooks --------------------------------------------------------------------------
    def advance_clock(self, seconds: int) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("POST", f"/__test/clock?advance={int(seconds)}", body=b"",
                     headers={"Content-Length": "0"})
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        assert resp.status == 200, f"/__test/clock answered {resp.status}: {body[:500]!r}"
        data = json.loads(body)
        self.clock_offset += int(seconds)
        assert data.get("OffsetSeconds") == self.clock_offset, data
        assert_date_near(data["Now"], self.now(), 10)
        return data

    def now(self) -> _dt.datetime:
        """The server's key-lifecycle clock (real time + test-clock offset)."""
        return utcnow() + _dt.timedelta(seconds=self.clock_offset)

    def new_account(self, account_id: Optional[str] = None) -> dict:
        """`kms admin access-key create` -> {"AccessKeyId","AccessKeySecret","AccountId"}.

        A random 16-digit account id by default, so that every caller gets an empty account.
        """
        if account_id is None:
            account_id = "9" + "".join(random.choice("0123456789") for _ in range(15))
        out = subprocess.run(
            [str(self.binary), "admin", "access-key", "create", "--data-dir", str(self.data_dir),
             *self.db_args(), "--account-id", account_id],
            capture_output=True, timeout=30, env=self.admin_env())
        assert out.returncode == 0, (f"kms admin access-key create failed rc={out.returncode}\n"
                                     f"stdout={out.stdout!r}\nstderr={out.stderr!r}")
        lines = [ln for ln in out.stdout.decode().splitlines() if ln.strip()]
        assert len(lines) == 1, f"expected ONE line of JSON on stdout, got {out.stdout!r}"
        data = json.loads(lines[0])
        assert data["AccountId"] == account_id, data
        assert isinstance(data["AccessKeyId"], str) and data["AccessKeyId"], data
        assert isinstance(data["AccessKeySecret"], str) and data["AccessKeySecret"], data
        return data


# --------------------------------------------------------------------------------------------
# signatures (independent implementations, reference §1.3 / §1.4)
# --------------------------------------------------------------------------------------------
def percent_encode(value: Any) -> str:
    """RFC 3986 encoding as used by Alibaba RPC signing: keep A-Z a-z 0-9 - _ . ~ only."""
    return urllib.parse.quote(str(value).encode("utf-8"), safe="-_.~")


def canonical_query_v1(params: Dict[str, str]) -> str:
    items = sorted((k, v) for k, v in params.items() if k != "Signature")
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in items)


def string_to_sign_v1(method: str, params: Dict[str, str]) -> str:
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query_v1(params))}"


def sign_v1(method: str, params: Dict[str, str], secret: str) -> str:
    sts = string_to_sign_v1(method, params)
    mac = hmac.new((secret + "&").encode("utf-8"), sts.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def canonical_request_v3(method: str, query: Dict[str, str], headers: Dict[str, str],
                         signed_headers: Iterable[str], payload_hash: str) -> str:
    cq = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(query.items()))
    lower = {k.lower(): v for k, v in headers.items()}
    sh = sorted(h.lower() for h in signed_headers)
    ch = "".join(f"{h}:{lower[h].strip()}\n" for h in sh)
    return f"{method.upper()}\n/\n{cq}\n{ch}\n{';'.join(sh)}\n{payload_hash}"


def sign_v3(method: str, query: Dict[str, str], headers: Dict[str, str],
            signed_headers: Iterable[str], payload_hash: str, secret: str) -> tuple[str, str]:
    creq = canonical_request_v3(method, query, headers, signed_headers, payload_hash)
    creq_hash = hashlib.sha256(creq.encode("utf-8")).hexdigest()
    sts = "ACS3-HMAC-SHA256\n" + creq_hash
    sig = hmac.new(secret.encode("utf-8"), sts.encode("utf-8"), hashlib.sha256).hexdigest()
    return creq_hash, sig


# --------------------------------------------------------------------------------------------
# raw client
# --------------------------------------------------------------------------------------------
class RawResponse:
    def __init__(self, status: int, headers: Dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def json(self) -> dict:
        """Parsed JSON body; also asserts the JSON content type and a string RequestId."""
        try:
            data = json.loads(self.body)
        except ValueError as e:  # pragma: no cover - diagnostic
            raise AssertionError(f"response body is not JSON (HTTP {self.status}): {self.body[:500]!r}") from e
        assert self.content_type.replace(" ", "").lower() == JSON_CT, \
            f"Content-Type {self.content_type!r} (HTTP {self.status})"
        assert isinstance(data.get("RequestId"), str) and data["RequestId"], f"no RequestId: {data}"
        return data

    def __repr__(self) -> str:
        return f"<RawResponse {self.status} {self.content_type} {self.body[:300]!r}>"


class RawClient:
    """Builds v1-signed RPC requests by hand so tests can break any part of them."""

    def __init__(self, server: KmsServer, ak: Optional[str] = None, sk: Optional[str] = None):
        self.server = server
        self.ak = ak or server.ak
        self.sk = sk or server.sk

    def common_params(self, action: Optional[str], *, fmt: Optional[str] = "JSON",
                      timestamp: Optional[str] = None, nonce: Optional[str] = None,
                      ak: Optional[str] = None) -> Dict[str, str]:
        p = {
            "Version": API_VERSION,
            "AccessKeyId": ak or self.ak,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": nonce or uuid.uuid4().hex,
            "Timestamp": timestamp or fmt_date(utcnow()),
            "RegionId": REGION,
        }
        if action is not None:
            p["Action"] = action
        if fmt is not None:
            p["Format"] = fmt
        return p

    def send(self, method: str, query: Optional[Dict[str, str]] = None,
             form: Optional[Dict[str, str]] = None, headers: Optional[Dict[str, str]] = None,
             body: Optional[bytes] = None) -> RawResponse:
        path = "/"
        if query:
            path += "?" + "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in query.items())
        hdrs = dict(headers or {})
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if body is None and method.upper() == "POST":
            body = b""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            h = {k.lower(): v for k, v in resp.getheaders()}
            return RawResponse(resp.status, h, data)
        finally:
            conn.close()

    def call(self, action: Optional[str], params: Optional[Dict[str, Any]] = None, *,
             method: str = "POST", in_body: bool = False, sk: Optional[str] = None,
             ak: Optional[str] = None, fmt: Optional[str] = "JSON", timestamp: Optional[str] = None,
             nonce: Optional[str] = None, signature: Optional[str] = None,
             drop: Iterable[str] = (), signed_params: Optional[Dict[str, str]] = None) -> RawResponse:
        """Send a v1-signed request.

        in_body: put the API params (not the common ones) into an x-www-form-urlencoded body.
        signature: send this Signature instead of the computed one.
        drop: names of parameters removed after signing.
        signed_params: a complete, already signed parameter set to resend verbatim (replay).
        """
        if signed_params is None:
            api = {k: (json.dumps(v) if isinstance(v, (dict, list)) else str(v))
                   for k, v in (params or {}).items()}
            common = self.common_params(action, fmt=fmt, timestamp=timestamp, nonce=nonce, ak=ak)
            allp = {**common, **api}
            allp["Signature"] = signature or sign_v1(method, allp, sk or self.sk)
        else:
            allp = dict(signed_params)
            api = {}
        for d in drop:
            allp.pop(d, None)
        if in_body:
            query = {k: v for k, v in allp.items() if k not in api}
            form = {k: v for k, v in allp.items() if k in api}
            resp = self.send(method, query=query, form=form)
        else:
            resp = self.send(method, query=allp)
        resp.sent_params = allp
        return resp

    def call_v3(self, action: str, query: Optional[Dict[str, Any]] = None,
                form: Optional[Dict[str, Any]] = None, *, method: str = "POST", date: Optional[str] = None,
                nonce: Optional[str] = None, sk: Optional[str] = None, ak: Optional[str] = None,
                content_sha256: Optional[str] = None, tamper_signature: bool = False,
                replay_headers: Optional[Dict[str, str]] = None) -> RawResponse:
        """An ACS3-HMAC-SHA256 request like the Tea SDK sends (action in x-acs-action, no common params)."""
        q = {k: (json.dumps(v) if isinstance(v, (dict, list)) else str(v)) for k, v in (query or {}).items()}
        body = urllib.parse.urlencode(form, quote_via=urllib.parse.quote).encode() if form is not None else b""
        if replay_headers is None:
            headers = {
                "host": f"127.0.0.1:{self.server.port}", "x-acs-action": action, "x-acs-version": API_VERSION,
                "x-acs-date": date or fmt_date(utcnow()), "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
                "x-acs-content-sha256": content_sha256 or hashlib.sha256(body).hexdigest(),
                "accept": "application/json",
            }
            if form is not None:
                headers["content-type"] = "application/x-www-form-urlencoded"
            signed = sorted(headers)
            _, sig = sign_v3(method, q, headers, signed, headers["x-acs-content-sha256"], sk or self.sk)
            if tamper_signature:
                sig = ("0" if sig[0] != "0" else "1") + sig[1:]
            headers["Authorization"] = (f"ACS3-HMAC-SHA256 Credential={ak or self.ak},"
                                        f"SignedHeaders={';'.join(signed)},Signature={sig}")
        else:
            headers = dict(replay_headers)
        resp = self.send(method, query=q or None, headers=headers, body=body)
        resp.sent_headers = headers
        return resp

    def ok(self, action: str, params: Optional[Dict[str, Any]] = None, **kw) -> dict:
        r = self.call(action, params, **kw)
        assert r.status == 200, f"{action} failed: {r!r}"
        return r.json


# --------------------------------------------------------------------------------------------
# SDK adapters
# --------------------------------------------------------------------------------------------
class KmsError(Exception):
    def __init__(self, code: str, status: Optional[int], message: str, request_id: Optional[str],
                 flavour: str, data: Any = None):
        super().__init__(f"[{flavour}] HTTP {status} {code}: {message} (RequestId {request_id})")
        self.code = code
        self.status = status
        self.message = message
        self.request_id = request_id
        self.flavour = flavour
        self.data = data


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class ClassicApi:
    """aliyun-python-sdk-core AcsClient + aliyunsdkkms request classes (v1 HMAC-SHA1)."""

    flavour = "classic"
    create_key_model_lacks = ()

    def __init__(self, server: KmsServer, ak: Optional[str] = None, sk: Optional[str] = None):
        from aliyunsdkcore.client import AcsClient

        self.server = server
        self.client = AcsClient(ak or server.ak, sk or server.sk, REGION, auto_retry=False,
                                connect_timeout=5, timeout=30)

    def request(self, action: str, **params):
        mod = importlib.import_module(f"aliyunsdkkms.request.v20160120.{action}Request")
        req = getattr(mod, f"{action}Request")()
        req.set_endpoint(f"http://127.0.0.1:{self.server.port}")
        for k, v in params.items():
            if v is None:
                continue
            if isinstance(v, (dict, list)):
                v = json.dumps(v)
            setter = getattr(req, f"set_{k}", None)
            if setter is None:  # parameter not modelled by the classic SDK
                req.add_query_param(k, v)
            else:
                setter(v)
        return req

    def call(self, action: str, **params) -> dict:
        from aliyunsdkcore.acs_exception.exceptions import ServerException

        req = self.request(action, **params)
        try:
            raw = self.client.do_action_with_exception(req)
        except ServerException as e:
            raise KmsError(e.get_error_code(), e.get_http_status(), e.get_error_msg(),
                           e.get_request_id(), self.flavour, e) from e
        assert isinstance(raw, bytes)
        data = json.loads(raw)
        assert isinstance(data.get("RequestId"), str) and data["RequestId"], f"{action}: no RequestId: {data}"
        return data


class TeaApi:
    """alibabacloud_kms20160120 (Tea / V2.0 SDK); V3 signature by default, HMAC-SHA1 with v2=True."""

    def __init__(self, server: KmsServer, v2: bool = False, ak: Optional[str] = None,
                 sk: Optional[str] = None):
        from alibabacloud_kms20160120.client import Client
        from alibabacloud_tea_openapi.utils_models import Config

        self.server = server
        self.flavour = "tea_v2" if v2 else "tea_v3"
        # alibabacloud_kms20160120 3.3.1 CreateKeyResponseBodyKeyMetadata has no such attributes
        self.create_key_model_lacks = ("DeletionProtection", "DeletionProtectionDescription")
        cfg = Config(access_key_id=ak or server.ak, access_key_secret=sk or server.sk,
                     region_id=REGION, endpoint=f"127.0.0.1:{server.port}", protocol="http",
                     read_timeout=30000, connect_timeout=5000)
        if v2:
            cfg.signature_algorithm = "v2"
        self.client = Client(cfg)

    def raw_call(self, action: str, **params):
        """Returns the SDK response model (resp.status_code, resp.body.<snake_case fields>)."""
        from alibabacloud_kms20160120 import models
        from alibabacloud_tea_openapi.exceptions import ClientException, ServerException
        from darabonba.runtime import RuntimeOptions

        method = getattr(self.client, _snake(action) + "_with_options")
        req_cls = getattr(models, f"{action}Request", None)
        try:
            if req_cls is None:
                assert not params, f"{action} takes no parameters in the Tea SDK"
                return method(RuntimeOptions())
            req = req_cls().from_map({k: v for k, v in params.items() if v is not None})
            return method(req, RuntimeOptions())
        except (ClientException, ServerException) as e:
            data = e.data or {}
            raise KmsError(e.code, e.status_code, data.get("Message"), data.get("RequestId"),
                           self.flavour, data) from e

    def call(self, action: str, **params) -> dict:
        resp = self.raw_call(action, **params)
        assert resp.status_code == 200, resp.status_code
        data = resp.body.to_map()
        assert isinstance(data.get("RequestId"), str) and data["RequestId"], f"{action}: no RequestId: {data}"
        return data


def make_api(flavour: str, server: KmsServer, ak: Optional[str] = None, sk: Optional[str] = None):
    if flavour == "classic":
        return ClassicApi(server, ak, sk)
    if flavour == "tea_v3":
        return TeaApi(server, False, ak, sk)
    if flavour == "tea_v2":
        return TeaApi(server, True, ak, sk)
    raise ValueError(flavour)


FLAVOURS = ("classic", "tea_v3", "tea_v2")


def expect_error(fn: Callable[[], Any], code: str, status: int) -> KmsError:
    try:
        got = fn()
    except KmsError as e:
        assert (e.code, e.status) == (code, status), \
            f"expected HTTP {status} {code}, got HTTP {e.status} {e.code}: {e.message}"
        return e
    raise AssertionError(f"expected HTTP {status} {code}, but the call succeeded: {got!r}")


# --------------------------------------------------------------------------------------------
# domain helpers
# --------------------------------------------------------------------------------------------
def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def arn_of(key_id: str, account: str = ACCOUNT_ID) -> str:
    return f"acs:kms:{REGION}:{account}:key/{key_id}"


def assert_key_metadata(md: dict, *, account: str = ACCOUNT_ID, state: Optional[str] = None,
                        origin: str = "Aliyun_KMS", description: Optional[str] = None,
                        created_near: Optional[_dt.datetime] = None, skip: Iterable[str] = ()) -> None:
    """skip: fields the client's response model cannot carry (Tea's CreateKey model has no
    DeletionProtection*), so they are absent after parsing through that SDK."""
    fields = [f for f in METADATA_FIELDS if f not in skip]
    missing = [f for f in fields if f not in md]
    assert not missing, f"KeyMetadata lacks {missing}: {md}"
    not_str = {f: md[f] for f in fields if not isinstance(md[f], str)}
    assert not not_str, f"KeyMetadata fields that are not strings: {not_str}"
    assert UUID_RE.match(md["KeyId"]), md["KeyId"]
    assert md["Arn"] == arn_of(md["KeyId"], account)
    assert DATE_RE.match(md["CreationDate"]), md["CreationDate"]
    if created_near is not None:
        assert_date_near(md["CreationDate"], created_near, 30)
    assert md["Creator"] == account
    if description is not None:
        assert md["Description"] == description
    if state is not None:
        assert md["KeyState"] == state
    assert md["KeyUsage"] == "ENCRYPT/DECRYPT"
    assert md["KeySpec"] == "Aliyun_AES_256"
    assert md["Origin"] == origin
    assert md["ProtectionLevel"] == "SOFTWARE"
    assert UUID_RE.match(md["PrimaryKeyVersion"]), f"PrimaryKeyVersion={md['PrimaryKeyVersion']!r}"
    assert md["AutomaticRotation"] == "Disabled"
    assert md["RotationInterval"] == ""
    assert md["LastRotationDate"] == "" or DATE_RE.match(md["LastRotationDate"]), md["LastRotationDate"]
    assert md["NextRotationDate"] == ""
    if md["KeyState"] == "PendingDeletion":
        assert DATE_RE.match(md["DeleteDate"]), md["DeleteDate"]
    else:
        assert md["DeleteDate"] == ""
    assert md["MaterialExpireTime"] == "" or DATE_RE.match(md["MaterialExpireTime"])
    if "DeletionProtection" in fields:
        assert md["DeletionProtection"] in ("Enabled", "Disabled")
    assert md["DKMSInstanceId"] == ""


def assert_error_shape(body: dict, code: Optional[str] = None) -> None:
    for f in ("Code", "Message", "RequestId", "HostId", "Recommend"):
        assert f in body, f"error body lacks {f}: {body}"
        assert isinstance(body[f], str), f"error field {f} is not a string: {body}"
    assert body["RequestId"], body
    if code is not None:
        assert body["Code"] == code, body


# --------------------------------------------------------------------------------------------
# BYOK wrapping
# --------------------------------------------------------------------------------------------
def load_public_key(public_key_b64: str):
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    return load_der_public_key(unb64(public_key_b64))


def wrap_key_material(public_key_b64: str, material: bytes, algorithm: str) -> str:
    """RSA-encrypt `material` under the base64 DER SPKI key; returns base64."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    pub = load_public_key(public_key_b64)
    if algorithm == "RSAES_PKCS1_V1_5":
        pad = padding.PKCS1v15()
    elif algorithm == "RSAES_OAEP_SHA_1":
        pad = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    elif algorithm == "RSAES_OAEP_SHA_256":
        pad = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    else:
        raise ValueError(algorithm)
    return b64(pub.encrypt(material, pad))


# --------------------------------------------------------------------------------------------
# Raw HTTP/1.1 over a socket (malformed requests the HTTP clients refuse to send)

def raw_exchange(port: int, data: bytes, *, timeout: float = 10, shut_write: bool = False,
                  tls_ctx=None) -> bytes:
    """Sends raw bytes, returns everything read until the server closes (or `timeout`)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls_ctx is not None:
        sock = tls_ctx.wrap_socket(sock, server_hostname="localhost")
    try:
        try:
            sock.sendall(data)
            if shut_write:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # BrokenPipe, ConnectionReset, SSLEOFError
            pass  # the server answered and closed before taking everything
        out = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and _body_complete(out):
                    break
        except OSError:  # ConnectionReset, timeout, SSLError
            pass
        return out
    finally:
        sock.close()


def _body_complete(resp: bytes) -> bool:
    head, _, body = resp.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return True


def response_status(resp: bytes) -> int:
    assert resp.startswith(b"HTTP/1.1 "), f"not an HTTP response: {resp[:200]!r}"
    return int(resp.split(b" ", 2)[1])


# ------------------------------------------------------------------ full-disk tests (real tmpfs)
def mount_tmpfs(path: Path, size: str) -> Optional[str]:
    """Mounts a tmpfs of `size` (e.g. "16m") on `path` (created if missing; root only).
    Returns None once mounted, or why it could not be mounted (the caller skips)."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                       capture_output=True, text=True)
    return None if r.returncode == 0 else f"cannot mount a tmpfs here: {r.stderr.strip()}"


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_fs(path: Path) -> Path:
    """Fills the filesystem of `path` until writing fails with ENOSPC; returns the filler
    file (unlink it to free the space again)."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1):
            chunk = b"\0" * size
            while True:
                try:
                    if os.write(fd, chunk) < size:
                        break
                except OSError:
                    break
    finally:
        os.close(fd)
    assert os.statvfs(path).f_bavail == 0, "the filesystem is full"
    return filler
