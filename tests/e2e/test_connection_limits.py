"""One client cannot take every connection slot (issue 14, item 6), and refusals that never
reach the protocol are counted (issue 14, item 10).

- Per-source-address connection cap (`max_connections_per_address`): a client at 127.0.0.1
  holding idle connections up to the cap gets every further connection closed at once, while
  a client at 127.0.0.2 (the client socket is bound to that source address) is served
  promptly, on the API listener, the console listener and over HTTPS; a concurrent burst
  admits exactly the cap per address.
- First-request time limit (`first_request_timeout`): a new connection that sends no
  complete request head in time is closed, on plain HTTP and HTTPS; a kept-alive connection
  that has sent its first request is governed by `header_read_timeout` as before.
- Every refusal before the protocol is counted per reason: one warning line at once for the
  first of a reason, and the totals in one line at shutdown.

The new settings are given as environment variables (KMS_MAX_CONNECTIONS_PER_ADDRESS,
KMS_FIRST_REQUEST_TIMEOUT) in some tests and as flags in others, so both paths are covered;
a binary without them ignores the variables and fails these tests on behaviour.
"""
from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import threading
import time
import uuid

import pytest

from kms_helpers import (KmsServer, fmt_date, free_port, percent_encode, raw_exchange,
                         response_status, sign_v1, utcnow)

OTHER = "127.0.0.2"  # a second client address (Linux routes all of 127.0.0.0/8 to lo)


def start(tmp_path, *args, env=None, tls=False, name="srv") -> KmsServer:
    srv = KmsServer(tmp_path / f"{name}-data", tmp_path / f"{name}-logs", extra_args=args,
                    extra_env=env or {})
    if tls:
        srv.scheme = "https"
    srv.start()
    time.sleep(0.3)  # the readiness probe's connection is given back when the server sees it close
    return srv


def connect(port: int, source: str = "127.0.0.1", timeout: float = 10) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def closed_within(sock, seconds: float) -> bool:
    """True if the server closes `sock` (EOF or reset) within `seconds`, False if it is
    still open then. Consumes nothing else: call on connections that have sent nothing."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except (ConnectionResetError, ssl.SSLError, ssl.SSLEOFError):
        return True
    except socket.timeout:
        return False


def time_to_close(sock, limit: float = 15) -> float:
    started = time.monotonic()
    assert closed_within(sock, limit), f"still open after {limit} s"
    return time.monotonic() - started


def signed_path(srv, action="DescribeRegions") -> str:
    p = {"Action": action, "Version": "2016-01-20", "Format": "JSON", "AccessKeyId": srv.ak,
         "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
         "SignatureNonce": uuid.uuid4().hex, "Timestamp": fmt_date(utcnow()), "RegionId": "cn-hangzhou"}
    p["Signature"] = sign_v1("POST", p, srv.sk)
    return "/?" + "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in p.items())


def request_from(source: str, port: int, method: str, path: str, ctx=None, timeout: float = 5):
    """One request from `source`; returns (status, body, seconds taken)."""
    started = time.monotonic()
    if ctx is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                          source_address=(source, 0))
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                           source_address=(source, 0), context=ctx)
    try:
        conn.request(method, path, body=b"" if method == "POST" else None)
        r = conn.getresponse()
        body = r.read()
        return r.status, body, time.monotonic() - started
    finally:
        conn.close()


def assert_served_from(source: str, srv, ctx=None) -> None:
    """`/healthz` and a signed DescribeRegions from `source` answered 200 within 2 s each."""
    status, body, took = request_from(source, srv.port, "GET", "/healthz", ctx)
    assert (status, json.loads(body)) == (200, {"Status": "OK"})
    assert took < 2, f"/healthz from {source} took {took:.2f} s"
    status, body, took = request_from(source, srv.port, "POST", signed_path(srv), ctx)
    assert status == 200, body
    assert json.loads(body)["Regions"]["Region"][0]["RegionId"] == "cn-hangzhou"
    assert took < 2, f"DescribeRegions from {source} took {took:.2f} s"


# ---------------------------------------------------------------------------------------------
# Per-address cap

def test_one_address_over_its_cap_does_not_starve_another(kms_binary, tmp_path):
    # Global cap 8, per-address cap 3: twelve idle connections from 127.0.0.1 would take all
    # eight slots without the per-address cap.
    srv = start(tmp_path, "--max-connections", "8",
                env={"KMS_MAX_CONNECTIONS_PER_ADDRESS": "3", "KMS_FIRST_REQUEST_TIMEOUT": "60"})
    held = []
    try:
        for _ in range(12):
            held.append(connect(srv.port))
        time.sleep(0.5)  # let the server accept them all
        # The other address is served at once, unsigned and signed.
        assert_served_from(OTHER, srv)
        # Of the twelve, the first three are kept and the others were closed.
        closed = [closed_within(s, 0.3) for s in held]
        assert closed == [False] * 3 + [True] * 9, closed
        # One more from the first address is closed at once, without a byte.
        extra = connect(srv.port)
        started = time.monotonic()
        assert closed_within(extra, 2)
        assert time.monotonic() - started < 1
        extra.close()
        # The kept connections still work.
        kept = [s for s, c in zip(held, closed) if not c]
        kept[0].settimeout(5)
        kept[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert response_status(kept[0].recv(4096)) == 200
    finally:
        for s in held:
            s.close()
    # Once they are closed, the first address is served again.
    time.sleep(0.3)
    assert_served_from("127.0.0.1", srv)
    srv.stop()


def burst(port: int, sources: list[str]) -> dict:
    """Connects one socket per entry of `sources` at the same moment (a barrier), waits for
    the server to have accepted them all, then sends `GET /healthz` on each; returns how many
    got a 200 per source address. Every socket is held until all have answered."""
    barrier = threading.Barrier(len(sources))
    socks: list = [None] * len(sources)

    def open_one(i):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        s.bind((sources[i], 0))
        barrier.wait()
        s.connect(("127.0.0.1", port))
        socks[i] = s

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(len(sources))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    time.sleep(0.5)
    served = {src: 0 for src in set(sources)}
    try:
        for src, s in zip(sources, socks):
            s.settimeout(3)
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                data = s.recv(4096)
            except (BrokenPipeError, ConnectionResetError):
                data = b""
            if data:
                assert response_status(data) == 200
                served[src] += 1
    finally:
        for s in socks:
            if s is not None:
                s.close()
    return served


def test_a_concurrent_burst_admits_exactly_the_cap_per_address(kms_binary, tmp_path):
    srv = start(tmp_path, env={"KMS_MAX_CONNECTIONS_PER_ADDRESS": "5", "KMS_FIRST_REQUEST_TIMEOUT": "60"})
    try:
        assert burst(srv.port, ["127.0.0.1"] * 40) == {"127.0.0.1": 5}
        # Two addresses bursting together: the cap is per address.
        time.sleep(0.3)
        assert burst(srv.port, ["127.0.0.1", OTHER] * 20) == {"127.0.0.1": 5, OTHER: 5}
    finally:
        srv.stop()


def test_cap_applies_on_the_console_listener(kms_binary, tmp_path):
    console = free_port()
    srv = start(tmp_path, "--console-listen", f"127.0.0.1:{console}",
                "--max-connections-per-address", "2", "--first-request-timeout", "60")
    held = [connect(console) for _ in range(2)]
    try:
        time.sleep(0.3)
        extra = connect(console)
        assert closed_within(extra, 2)
        extra.close()
        assert not any(closed_within(s, 0.2) for s in held)
        status, body, took = request_from(OTHER, console, "GET", "/console/signin")
        assert status == 200 and b"<html" in body.lower()
        assert took < 2
        # The API listener has its own count: the same address is served there.
        assert_served_from("127.0.0.1", srv)
    finally:
        for s in held:
            s.close()
        srv.stop()


def test_cap_and_first_request_timeout_over_https(kms_binary, tmp_path):
    srv = start(tmp_path, "--tls-self-signed", "--max-connections-per-address", "2",
                "--first-request-timeout", "2", tls=True)
    ctx = ssl.create_default_context(cafile=str(srv.data_dir / "tls" / "cert.pem"))
    held = []
    try:
        opened = time.monotonic()
        for _ in range(2):
            held.append(ctx.wrap_socket(connect(srv.port), server_hostname="localhost"))
        # A third TCP connection from the same address is closed before any handshake.
        extra = connect(srv.port)
        started = time.monotonic()
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            ctx.wrap_socket(extra, server_hostname="localhost")
        assert time.monotonic() - started < 1
        extra.close()
        assert_served_from(OTHER, srv, ctx)
        # The held TLS connections sent no request: closed after the first-request limit
        # (counted from the accept, handshake included).
        for s in held:
            assert closed_within(s, 6)
            assert 1.5 < time.monotonic() - opened < 4.5
        # So is a TCP connection that never starts its handshake.
        silent = connect(srv.port)
        assert 1.5 < time_to_close(silent) < 4
        silent.close()
        assert_served_from("127.0.0.1", srv, ctx)
    finally:
        for s in held:
            s.close()
        srv.stop()


# ---------------------------------------------------------------------------------------------
# First-request time limit

def test_a_new_connection_that_sends_nothing_is_closed_after_the_first_request_timeout(
        kms_binary, tmp_path):
    srv = start(tmp_path, "--header-read-timeout", "30", env={"KMS_FIRST_REQUEST_TIMEOUT": "1"})
    try:
        idle = connect(srv.port)
        took = time_to_close(idle, 6)
        assert 0.8 < took < 3, took
        idle.close()
        # A first head trickled in and never finished: the same limit.
        slow = connect(srv.port)
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        for _ in range(3):
            time.sleep(0.2)
            try:
                slow.sendall(b"X-A: b\r\n")
            except OSError:
                break
        assert closed_within(slow, 6)
        assert time.monotonic() - started < 3
        slow.close()
        # After a first request in time, the connection is kept alive between requests
        # (header_read_timeout, 30 s here), not cut at the first-request limit.
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b'{"Status":"OK"}'
        sock = conn.sock
        time.sleep(2)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        assert conn.sock is sock  # the same connection
        conn.close()
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------
# Counting refusals (item 10)

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log_text(srv) -> str:
    return ANSI.sub("", srv._log_path().read_text(errors="replace"))


def refusal_lines(text: str) -> list[dict]:
    """The `refused before the API` warnings as {reason, count, total, peer?}."""
    out = []
    for line in text.splitlines():
        if "refused before the API" in line and "since start" not in line:
            fields = dict(re.findall(r"(\w+)=(\S+)", line))
            out.append(fields)
    return out


def totals_at_shutdown(text: str) -> dict:
    lines = [ln for ln in text.splitlines() if "refused before the API since start:" in ln]
    assert len(lines) == 1, text[-3000:]
    tail = lines[0].split("since start:", 1)[1]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", tail)}


def test_refusals_before_the_protocol_are_counted_and_logged(kms_binary, tmp_path):
    srv = start(tmp_path, "--max-connections", "3", "--header-read-timeout", "3",
                "--body-read-timeout", "1",
                env={"KMS_MAX_CONNECTIONS_PER_ADDRESS": "2", "KMS_FIRST_REQUEST_TIMEOUT": "2"})
    path = signed_path(srv)
    # Three idle connections fill every slot (two per address): the accept loop waits once.
    held = [connect(srv.port), connect(srv.port), connect(srv.port, OTHER)]
    time.sleep(0.3)
    # Two more from 127.0.0.1: over its cap, each closed at once (max_connections is full,
    # so first free a slot from the other address).
    held.pop().close()
    time.sleep(0.3)
    for _ in range(2):
        extra = connect(srv.port)
        assert closed_within(extra, 2)
        extra.close()
    # The two held ones sent nothing: closed at the first-request limit.
    for s in held:
        assert closed_within(s, 5)
        s.close()
    # 431, a malformed head (400 by hyper), 413, a body too slow, broken chunked encoding.
    assert response_status(raw_exchange(srv.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
                                    + b"a" * 40000 + b"\r\n\r\n")) == 431
    assert response_status(raw_exchange(srv.port, b"NOT HTTP AT ALL\r\n\r\n")) == 400
    assert response_status(raw_exchange(srv.port, (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {2 * 1024 * 1024}\r\n\r\n").encode())) == 413
    assert response_status(raw_exchange(srv.port, (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: 100\r\nConnection: close\r\n\r\nKeyId=abc").encode())) == 400
    assert response_status(raw_exchange(srv.port, (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").encode())) == 400
    # A kept-alive connection: a second head begun and not finished is counted when the
    # header-read timeout closes it; one merely idle after its request is not.
    for partial in (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b""):
        s = connect(srv.port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert response_status(s.recv(4096)) == 200
        if partial:
            s.sendall(partial)
        assert 2 < time_to_close(s, 8) < 6
        s.close()
    # Served requests are not refusals.
    assert_served_from("127.0.0.1", srv)
    assert srv.stop() == 0

    text = log_text(srv)
    expected = {
        "max_connections": 1,
        "connections_per_address": 2,
        "first_request_timeout": 2,
        "header_timeout": 1,
        "header_too_large": 1,
        "bad_request_head": 1,
        "body_too_large": 1,
        "body_timeout": 1,
        "bad_body": 1,
    }
    assert totals_at_shutdown(text) == expected, text[-3000:]
    # The first of each reason was logged at once (count 1, total 1); later ones within a
    # minute were only counted (one line per reason).
    lines = refusal_lines(text)
    by_reason = {}
    for f in lines:
        by_reason.setdefault(f["reason"], []).append(f)
    assert set(by_reason) == set(expected), lines
    for reason, fs in by_reason.items():
        assert len(fs) == 1, (reason, fs)
        assert (fs[0]["count"], fs[0]["total"]) == ("1", "1"), (reason, fs)
    assert by_reason["connections_per_address"][0]["peer"].startswith("127.0.0.1:")
    assert "peer" not in by_reason["max_connections"][0]
    # Nothing of it reached the audit trail.
    audit = (srv.data_dir / "audit" / "audit.log").read_text()
    assert audit.count("DescribeRegions") == 1, audit
