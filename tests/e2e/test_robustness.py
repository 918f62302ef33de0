"""Bounded concurrency and crash-durability checks (loopback only, a few hundred requests at
most), and malformed requests of every kind: each is answered 4xx (or its connection closed)
and the server is healthy afterwards, under the HTTP limits (body, header size and count,
header and body read timeouts, connection count)."""
import http.client
import json
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from kms_helpers import (ClassicApi, RawClient, b64, make_api, percent_encode, raw_exchange,
                         response_status, sign_v1, unb64)


def test_concurrent_mixed_operations(server):
    """8 threads x 20 mixed operations through independent clients: no errors, no 5xx."""
    api0 = make_api("classic", server)
    shared_key = api0.call("CreateKey")["KeyMetadata"]["KeyId"]

    def worker(i):
        api = make_api(("classic", "tea_v3", "tea_v2")[i % 3], server)
        own = api.call("CreateKey", Description=f"worker {i}")["KeyMetadata"]["KeyId"]
        for j in range(20):
            pt = os.urandom(1 + (i * 20 + j) % 200)
            key = shared_key if j % 2 else own
            blob = api.call("Encrypt", KeyId=key, Plaintext=b64(pt), EncryptionContext={"w": str(i)})["CiphertextBlob"]
            assert unb64(api.call("Decrypt", CiphertextBlob=blob, EncryptionContext={"w": str(i)})["Plaintext"]) == pt
            if j % 5 == 0:
                api.call("DisableKey", KeyId=own)
                api.call("EnableKey", KeyId=own)
        return own

    with ThreadPoolExecutor(8) as ex:
        owns = list(ex.map(worker, range(8)))
    listed = {k["KeyId"] for k in api0.call("ListKeys", PageSize=100)["Keys"]["Key"]}
    assert set(owns) | {shared_key} <= listed
    for k in owns:
        assert api0.call("DescribeKey", KeyId=k)["KeyMetadata"]["KeyState"] == "Enabled"


def test_kill9_under_write_load(own_server):
    """Keys whose CreateKey was acknowledged before a SIGKILL all exist after restart."""
    acked = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer():
        api = ClassicApi(own_server)
        for _ in range(200):
            if stop.is_set():
                return
            try:
                key_id = api.call("CreateKey")["KeyMetadata"]["KeyId"]
            except Exception:  # KmsError or a connection reset once the server is killed
                return
            with lock:
                acked.append(key_id)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = 100
    while len(acked) < 20 and deadline:
        threading.Event().wait(0.02)
        deadline -= 1
    own_server.kill9()
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 5, "too few acknowledged writes before the kill"
    own_server.start()
    api = ClassicApi(own_server)
    total = api.call("ListKeys", PageSize=1)["TotalCount"]
    assert total >= len(acked)
    for key_id in acked:
        assert api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


# ---------------------------------------------------------------------------------------------
# Malformed requests: each is answered 4xx (or the connection is closed), and the server is
# healthy afterwards. Wrong parameter types (non-integer NumberOfBytes, non-JSON
# EncryptionContext, bad booleans) are covered per action in test_crypto.py and test_keys.py.

def _json_body(resp: bytes) -> dict:
    return json.loads(resp.partition(b"\r\n\r\n")[2])


def assert_healthy(srv) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", "/healthz")
    r = conn.getresponse()
    assert (r.status, json.loads(r.read())) == (200, {"Status": "OK"})
    conn.close()
    r = RawClient(srv).call("DescribeRegions")
    assert r.status == 200, r
    assert r.json["Regions"]["Region"][0]["RegionId"] == "cn-hangzhou"


def _signed_path(raw: RawClient, action: str, **params) -> str:
    p = raw.common_params(action)
    p.update({k: str(v) for k, v in params.items()})
    p["Signature"] = sign_v1("POST", p, raw.sk)
    return "/?" + "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in p.items())


def test_body_over_1_mib_is_413(server):
    raw = RawClient(server)
    path = _signed_path(raw, "DescribeRegions")
    # Declared too large: refused from the Content-Length, before the body is read.
    resp = raw_exchange(server.port, (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {2 * 1024 * 1024}\r\n\r\n").encode())
    assert response_status(resp) == 413
    assert _json_body(resp)["Code"] == "InvalidParameter.TooLarge"
    # Chunked, no length given: refused once 1 MiB has been read.
    chunk = b"a=" + b"x" * 65534
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(17)) + b"0\r\n\r\n"
    resp = raw_exchange(server.port, (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Transfer-Encoding: chunked\r\n\r\n").encode() + body)
    assert response_status(resp) == 413
    assert _json_body(resp)["Code"] == "InvalidParameter.TooLarge"
    assert_healthy(server)


def test_malformed_chunked_body_is_400(server):
    path = _signed_path(RawClient(server), "DescribeRegions")
    resp = raw_exchange(server.port, (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").encode())
    assert response_status(resp) == 400
    body = _json_body(resp)
    assert body["Code"] == "InvalidParameter" and '"Body"' in body["Message"]
    assert_healthy(server)


@pytest.mark.parametrize("size", [20 * 1024, 200 * 1024, 2 * 1024 * 1024])
def test_huge_header_is_431(server, size):
    resp = raw_exchange(server.port,
                         b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n")
    assert response_status(resp) == 431
    # A long URI counts towards the same limit.
    resp = raw_exchange(server.port, b"GET /?Action=" + b"a" * size + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response_status(resp) == 431
    assert_healthy(server)


def test_too_many_headers_is_431(server):
    headers = "".join(f"X-H{i}: v\r\n" for i in range(100))
    resp = raw_exchange(server.port, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    assert response_status(resp) == 431
    # 60 headers (under the default 64) are fine.
    headers = "".join(f"X-H{i}: v\r\n" for i in range(60))
    resp = raw_exchange(server.port, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    assert response_status(resp) == 200
    assert_healthy(server)


def test_truncated_body_then_close(server):
    """Content-Length larger than what is sent, then the client closes its side: the server
    drops the request without answering it and stays healthy."""
    path = _signed_path(RawClient(server), "DescribeRegions")
    resp = raw_exchange(server.port, (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: 1000\r\n\r\nKeyId=abc").encode(), shut_write=True)
    assert resp == b"" or response_status(resp) == 400, resp
    assert_healthy(server)


def test_slow_body_is_400_after_the_body_read_timeout(server_with):
    srv = server_with("--body-read-timeout", "1")
    path = _signed_path(RawClient(srv), "DescribeRegions")
    started = time.monotonic()
    resp = raw_exchange(srv.port, (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: 1000\r\n\r\nKeyId=abc").encode())
    assert 0.9 < time.monotonic() - started < 8
    assert response_status(resp) == 400
    body = _json_body(resp)
    assert body["Code"] == "InvalidParameter" and "not received in time" in body["Message"]
    assert_healthy(srv)


def test_slowloris_head_is_cut_off_after_the_header_read_timeout(server_with):
    srv = server_with("--header-read-timeout", "1")
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        for _ in range(5):  # keeps trickling bytes, never finishes the head
            time.sleep(0.3)
            try:
                sock.sendall(b"X-A: b\r\n")
            except OSError:
                break
        data = b""
        try:
            data = sock.recv(1024)
        except ConnectionResetError:
            pass
        assert data == b"" or response_status(data) == 408, data
        assert time.monotonic() - started < 5
    finally:
        sock.close()
    # An idle keep-alive connection is closed after the same timeout.
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", "/healthz")
    conn.getresponse().read()
    time.sleep(2)
    assert conn.sock is not None and conn.sock.recv(1) == b""
    conn.close()
    assert_healthy(srv)


@pytest.mark.parametrize("query", [
    "Action=DescribeRegions&%ZZ=%G0&Bad=%",    # invalid percent-encoding, names and values
    "Action=DescribeRegions&Plaintext=%FF%FE",  # percent-encoded bytes that are not UTF-8
])
def test_invalid_encoding_in_query_or_form_is_4xx(server, query):
    # Unsigned: a stray percent sign or non-UTF-8 byte must not crash the parser; the
    # request is refused for its missing signature.
    for body, ctype in [(b"", None), (query.encode(), "application/x-www-form-urlencoded")]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        hdrs = {"Content-Type": ctype} if ctype else {}
        conn.request("POST", "/?Version=2016-01-20" + ("" if body else "&" + query), body=body, headers=hdrs)
        r = conn.getresponse()
        data = json.loads(r.read())
        conn.close()
        assert (r.status, data["Code"]) == (400, "MissingParameter"), data
        assert '"Signature"' in data["Message"]
    assert_healthy(server)


def test_non_utf8_value_does_not_verify(server):
    """A signed value with a byte that is not UTF-8 is read as U+FFFD, so the signature made
    over the raw byte cannot match: 400 SignatureDoesNotMatch, never a 5xx."""
    raw = RawClient(server)
    p = raw.common_params("DescribeRegions")
    q = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in p.items()) + "&Tag=%FF"
    # The client's own string to sign over the raw byte.
    import base64
    import hashlib
    import hmac
    pairs = sorted([(percent_encode(k), percent_encode(v)) for k, v in p.items()] + [("Tag", "%FF")])
    canonical = "&".join(f"{k}={v}" for k, v in pairs)
    sts = "POST&%2F&" + percent_encode(canonical)
    sig = base64.b64encode(hmac.new((raw.sk + "&").encode(), sts.encode(), hashlib.sha1).digest()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", f"/?{q}&Signature={percent_encode(sig)}", body=b"")
    r = conn.getresponse()
    data = json.loads(r.read())
    assert (r.status, data["Code"]) == (400, "SignatureDoesNotMatch"), data
    assert_healthy(server)


def test_raw_non_ascii_bytes_in_the_request_line_are_400(server):
    resp = raw_exchange(server.port, b"GET /?Action=\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response_status(resp) == 400
    assert_healthy(server)


def test_wrong_content_type_body_is_not_read_as_parameters(server):
    raw = RawClient(server)
    key_id = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]
    path = _signed_path(raw, "DescribeKey")
    for ctype in ["application/json", "text/plain", "multipart/form-data; boundary=x"]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("POST", path if ctype == "application/json" else _signed_path(raw, "DescribeKey"),
                     body=json.dumps({"KeyId": key_id}).encode(), headers={"Content-Type": ctype})
        r = conn.getresponse()
        data = json.loads(r.read())
        conn.close()
        assert (r.status, data["Code"]) == (400, "MissingParameter"), data
        assert '"KeyId"' in data["Message"]
    assert_healthy(server)


def test_duplicate_parameters_are_refused(server):
    raw = RawClient(server)
    key_id = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]
    # Twice in the query, both signed.
    p = raw.common_params("DescribeKey")
    items = list(p.items()) + [("KeyId", key_id), ("KeyId", "alias/other")]
    pairs = sorted((percent_encode(k), percent_encode(v)) for k, v in items)
    import base64
    import hashlib
    import hmac
    sts = "POST&%2F&" + percent_encode("&".join(f"{k}={v}" for k, v in pairs))
    sig = base64.b64encode(hmac.new((raw.sk + "&").encode(), sts.encode(), hashlib.sha1).digest()).decode()
    q = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in items)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", f"/?{q}&Signature={percent_encode(sig)}", body=b"")
    r = conn.getresponse()
    data = json.loads(r.read())
    conn.close()
    assert (r.status, data["Code"]) == (400, "InvalidParameter"), data
    assert '"KeyId"' in data["Message"] and "more than once" in data["Message"]
    # Once in the query and once in the form body.
    path = _signed_path(raw, "DescribeKey", KeyId=key_id)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", path, body=f"KeyId={key_id}".encode(),
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    data = json.loads(r.read())
    conn.close()
    assert (r.status, data["Code"]) == (400, "InvalidParameter"), data
    assert "more than once" in data["Message"]
    assert_healthy(server)


def test_connections_over_the_limit_wait_for_a_free_slot(server_with):
    srv = server_with("--max-connections", "2", "--header-read-timeout", "30")
    idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(2)]
    try:
        time.sleep(0.3)
        # The third connection is not served while two are open...
        third = socket.create_connection(("127.0.0.1", srv.port), timeout=1)
        third.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with pytest.raises(socket.timeout):
            third.recv(1024)
        # ...and is as soon as one of them closes.
        idle.pop().close()
        third.settimeout(10)
        data = b""
        while chunk := third.recv(4096):
            data += chunk
        third.close()
        assert response_status(data) == 200
    finally:
        for s in idle:
            s.close()
    time.sleep(0.3)
    assert_healthy(srv)
    # Many short connections in a row (more than the limit) are all served.
    for _ in range(10):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()


@pytest.mark.parametrize("interval", ["7\u00e9", "m\u0486", "30d\u0301", "\U0001F600"])
def test_rotation_interval_ending_in_a_multibyte_character_is_400(server, interval):
    """Found by the `request` fuzz target: this used to panic (no answer at all)."""
    raw = RawClient(server)
    r = raw.call("CreateKey", {"EnableAutomaticRotation": "true", "RotationInterval": interval})
    assert (r.status, r.json["Code"]) == (400, "InvalidParameter"), r
    assert '"RotationInterval"' in r.json["Message"]
    key_id = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]
    r = raw.call("UpdateRotationPolicy", {"KeyId": key_id, "EnableAutomaticRotation": "true",
                                          "RotationInterval": interval})
    assert (r.status, r.json["Code"]) == (400, "InvalidParameter"), r
    assert_healthy(server)
