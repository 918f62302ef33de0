"""HTTPS: `--tls-self-signed` (certificate kept in the data dir), the classic and Tea SDKs and
the `kms` command line over HTTPS trusting that certificate, plain HTTP refused on the TLS
port, replayed nonces and stale timestamps refused over HTTPS too, and the HTTP limits (header size
and count, header read timeout, connection count) applied on the TLS path as on plain HTTP."""
from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.parse
import uuid

import pytest

from kms_helpers import (KmsServer, b64, fmt_date, kms_bin, percent_encode, raw_exchange, response_status,
                         sign_v1, unb64, utcnow)


@pytest.fixture
def tls_server(kms_binary, tmp_path):
    srv = KmsServer(tmp_path / "data", tmp_path / "logs", extra_args=["--tls-self-signed"])
    srv.scheme = "https"
    srv.start()
    yield srv
    srv.stop()


def cert(srv) -> str:
    return str(srv.data_dir / "tls" / "cert.pem")


def https_get(srv, path, ctx):
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=10)
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read()


def signed_v1(srv, action, params, *, timestamp=None, nonce=None):
    p = {"Action": action, "Version": "2016-01-20", "Format": "JSON", "AccessKeyId": srv.ak,
         "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
         "SignatureNonce": nonce or uuid.uuid4().hex, "Timestamp": timestamp or fmt_date(utcnow()),
         **params}
    p["Signature"] = sign_v1("POST", p, srv.sk)
    return "/?" + "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in p.items())


def post(srv, path, ctx):
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=10)
    conn.request("POST", path, body=b"")
    r = conn.getresponse()
    return r.status, json.loads(r.read())


def test_self_signed_certificate_and_sdks_over_https(tls_server):
    key_file = tls_server.data_dir / "tls" / "key.pem"
    assert oct(os.stat(key_file).st_mode & 0o777) == "0o600"
    ctx = ssl.create_default_context(cafile=cert(tls_server))
    assert https_get(tls_server, "/healthz", ctx)[0] == 200
    # An unverified client is refused by default (the certificate is self-signed).
    with pytest.raises(ssl.SSLError):
        https_get(tls_server, "/healthz", ssl.create_default_context())

    # Tea SDK: trust the server's certificate through RuntimeOptions(ca=...).
    from alibabacloud_kms20160120.client import Client
    from alibabacloud_kms20160120 import models
    from alibabacloud_tea_openapi.models import Config
    from darabonba.runtime import RuntimeOptions
    tea = Client(Config(access_key_id=tls_server.ak, access_key_secret=tls_server.sk, region_id="cn-hangzhou",
                        endpoint=f"127.0.0.1:{tls_server.port}", protocol="https"))
    rt = RuntimeOptions(ca=cert(tls_server))
    key = tea.create_key_with_options(models.CreateKeyRequest(), rt).body.key_metadata
    assert key.key_state == "Enabled"
    blob = tea.encrypt_with_options(models.EncryptRequest(key_id=key.key_id, plaintext=b64(b"tls")), rt).body.ciphertext_blob

    # Classic SDK: AcsClient(verify=<ca file>).
    from aliyunsdkcore.client import AcsClient
    from aliyunsdkkms.request.v20160120.DecryptRequest import DecryptRequest
    classic = AcsClient(tls_server.ak, tls_server.sk, "cn-hangzhou", verify=cert(tls_server))
    req = DecryptRequest()
    req.set_endpoint(f"127.0.0.1:{tls_server.port}")
    req.set_protocol_type("https")
    req.set_CiphertextBlob(blob)
    assert unb64(json.loads(classic.do_action_with_exception(req))["Plaintext"]) == b"tls"

    # The command line: --ca-cert, and --insecure when asked for explicitly.
    env = dict(os.environ, ALIBABA_CLOUD_ACCESS_KEY_ID=tls_server.ak, ALIBABA_CLOUD_ACCESS_KEY_SECRET=tls_server.sk)
    ep = f"https://127.0.0.1:{tls_server.port}"
    for extra in (["--ca-cert", cert(tls_server)], ["--insecure"]):
        p = subprocess.run([str(kms_bin()), "DescribeKey", "--KeyId", key.key_id, "--endpoint", ep, *extra,
                            "--output", "value=KeyMetadata.KeyState"], env=env, capture_output=True, text=True, timeout=60)
        assert (p.returncode, p.stdout.strip()) == (0, "Enabled"), p.stderr
    p = subprocess.run([str(kms_bin()), "DescribeRegions", "--endpoint", ep], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "cannot reach" in p.stderr  # system roots do not trust it


def test_plain_http_is_not_served_on_the_tls_port(tls_server):
    conn = http.client.HTTPConnection("127.0.0.1", tls_server.port, timeout=5)
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        conn.request("GET", "/healthz")
        conn.getresponse().read()


def test_replay_and_stale_timestamp_refused_over_https(tls_server):
    ctx = ssl.create_default_context(cafile=cert(tls_server))
    path = signed_v1(tls_server, "DescribeRegions", {})
    assert post(tls_server, path, ctx)[0] == 200
    status, body = post(tls_server, path, ctx)
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")
    stale = fmt_date(utcnow() - dt.timedelta(minutes=20))
    status, body = post(tls_server, signed_v1(tls_server, "DescribeRegions", {}, timestamp=stale), ctx)
    assert (status, body["Code"]) == (400, "InvalidTimeStamp.Expired")


def test_v3_replay_and_stale_date_refused_over_https(tls_server):
    """The same for ACS3-HMAC-SHA256 (what the Tea SDK sends): headers replayed byte for byte."""
    import hashlib

    from kms_helpers import sign_v3

    ctx = ssl.create_default_context(cafile=cert(tls_server))

    def v3_headers(date):
        h = {"host": f"127.0.0.1:{tls_server.port}", "x-acs-action": "DescribeRegions",
             "x-acs-version": "2016-01-20", "x-acs-date": date,
             "x-acs-signature-nonce": uuid.uuid4().hex,
             "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(), "accept": "application/json"}
        signed = sorted(h)
        _, sig = sign_v3("POST", {}, h, signed, h["x-acs-content-sha256"], tls_server.sk)
        h["Authorization"] = (f"ACS3-HMAC-SHA256 Credential={tls_server.ak},"
                              f"SignedHeaders={';'.join(signed)},Signature={sig}")
        return h

    def send(headers):
        conn = http.client.HTTPSConnection("127.0.0.1", tls_server.port, context=ctx, timeout=10)
        conn.request("POST", "/", body=b"", headers=headers)
        r = conn.getresponse()
        return r.status, json.loads(r.read())

    h = v3_headers(fmt_date(utcnow()))
    assert send(h)[0] == 200
    status, body = send(h)
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")
    status, body = send(v3_headers(fmt_date(utcnow() - dt.timedelta(minutes=20))))
    assert (status, body["Code"]) == (400, "InvalidTimeStamp.Expired")


def test_certificate_survives_a_restart(tls_server):
    before = open(cert(tls_server)).read()
    tls_server.restart()
    assert open(cert(tls_server)).read() == before
    ctx = ssl.create_default_context(cafile=cert(tls_server))
    assert https_get(tls_server, "/healthz", ctx)[0] == 200


def test_http_limits_apply_over_https(kms_binary, tmp_path):
    srv = KmsServer(tmp_path / "data", tmp_path / "logs",
                    extra_args=["--tls-self-signed", "--header-read-timeout", "3", "--max-connections", "2"])
    srv.scheme = "https"
    srv.start()
    try:
        ctx = ssl.create_default_context(cafile=cert(srv))
        big = raw_exchange(srv.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n",
                           tls_ctx=ctx)
        assert response_status(big) == 431
        many = "".join(f"X-H{i}: v\r\n" for i in range(100))
        assert response_status(raw_exchange(srv.port, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode(),
                                            tls_ctx=ctx)) == 431
        # A head that never ends is cut off after the header read timeout.
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=10),
                               server_hostname="localhost")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        try:
            assert sock.recv(1024) == b""
        except (ConnectionResetError, ssl.SSLError):
            pass
        assert 2.5 < time.monotonic() - started < 8
        sock.close()
        # Two TLS connections held open: a third waits until one closes.
        held = [ctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=10),
                                server_hostname="localhost") for _ in range(2)]
        third = socket.create_connection(("127.0.0.1", srv.port), timeout=0.5)
        with pytest.raises((socket.timeout, ssl.SSLError)):
            ctx.wrap_socket(third, server_hostname="localhost")  # no handshake while full
        third.close()
        for s in held:
            s.close()
        time.sleep(0.3)
        assert https_get(srv, "/healthz", ctx)[0] == 200
        assert post(srv, signed_v1(srv, "DescribeRegions", {}), ctx)[0] == 200
    finally:
        srv.stop()
