"""Operations: GET /metrics scraped by a real Prometheus, /readyz, --log-format json.

The Prometheus test runs Debian's /usr/bin/prometheus (package `prometheus`, installed by
scripts/install-deps.sh) with a temporary config and TSDB on a free port, scraping the server
every second, then asks Prometheus' own query API for the counters."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from kms_helpers import KmsServer, RawClient, fill_fs, free_port, kms_bin

PROMETHEUS = "/usr/bin/prometheus"
BUCKETS = ["0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
           "0.5", "1.0", "2.5", "+Inf"]


def get(port: int, path: str, source: str = "127.0.0.1"):
    """GET from a chosen local source address (127.0.0.2 looks like a remote peer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read().decode()
    conn.close()
    return r.status, r.getheader("Content-Type"), body


@pytest.fixture
def started(kms_binary, tmp_path):
    servers = []

    def start(*args: str) -> KmsServer:
        srv = KmsServer(tmp_path / f"data{len(servers)}", tmp_path, extra_args=args)
        srv.start()
        servers.append(srv)
        return srv
    yield start
    for s in servers:
        if s.proc is not None:
            s.stop()


def sample(text: str, name: str, labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.split()[-1])
    raise AssertionError(f"{name}{{{labels}}} not in the exposition")


def test_metrics_are_served_to_loopback_only_and_count_requests(started):
    srv = started()
    raw = RawClient(srv)
    key = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]
    for _ in range(3):
        raw.ok("Encrypt", {"KeyId": key, "Plaintext": "aGVsbG8="})
    r = raw.call("Encrypt", {"KeyId": "no-such-key", "Plaintext": "aGVsbG8="})
    assert r.status == 404
    unknown = raw.call("NoSuchAction")
    status, ctype, text = get(srv.port, "/metrics")
    assert status == 200 and ctype.startswith("application/openmetrics-text"), (status, ctype)
    assert text.rstrip().endswith("# EOF")
    assert sample(text, "kms_requests_total", 'action="Encrypt",code="OK"') == 3
    assert sample(text, "kms_requests_total", 'action="CreateKey",code="OK"') == 1
    assert sample(text, "kms_requests_total", f'action="Encrypt",code="{r.json["Code"]}"') == 1
    # An unknown action name is not a label value.
    assert "NoSuchAction" not in text
    assert sample(text, "kms_requests_total", f'action="unknown",code="{unknown.json["Code"]}"') == 1
    assert sample(text, "kms_request_duration_seconds_count", 'action="Encrypt"') == 4
    for name in ("kms_wrapping_key_pool_keys", "kms_audit_queue_lines", "kms_audit_lost_lines_total",
                 "kms_audit_writable", "kms_nonce_cache_entries"):
        assert any(line.startswith(name + " ") for line in text.splitlines()), name
    nonces = next(line for line in text.splitlines() if line.startswith("kms_nonce_cache_entries "))
    assert float(nonces.split()[1]) >= 5  # every signed request so far
    assert 'kms_http_refused_total{reason="body_too_large"} 0' in text

    # A peer other than 127.0.0.1 is refused, with a JSON error saying how to allow it.
    status, _, body = get(srv.port, "/metrics", source="127.0.0.2")
    assert status == 403
    assert json.loads(body)["Code"] == "Forbidden.Metrics"
    assert "--metrics-allow-remote" in json.loads(body)["Message"]


def test_store_gauges_keys_cache_and_pool(started):
    """Keys by state and origin (read at most every 30 s), the cache's hits and misses, and on
    PostgreSQL the pool's connections (scripts/test.sh runs this case on both engines)."""
    srv = started()
    raw = RawClient(srv)
    enabled = [raw.ok("CreateKey")["KeyMetadata"]["KeyId"] for _ in range(2)]
    off = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]
    raw.ok("DisableKey", {"KeyId": off})
    raw.ok("CreateKey", {"Origin": "EXTERNAL"})
    for _ in range(5):
        raw.ok("Encrypt", {"KeyId": enabled[0], "Plaintext": "aGVsbG8="})
    _, _, text = get(srv.port, "/metrics")
    assert sample(text, "kms_keys", 'state="Enabled",origin="Aliyun_KMS"') == 2
    assert sample(text, "kms_keys", 'state="Disabled",origin="Aliyun_KMS"') == 1
    assert sample(text, "kms_keys", 'state="PendingImport",origin="EXTERNAL"') == 1
    assert not any(line.startswith('kms_keys{state="PendingDeletion"') for line in text.splitlines())
    assert "kms_keys_read_errors_total 0" in text.splitlines()
    hits = float(next(line for line in text.splitlines()
                      if line.startswith("kms_store_cache_hits_total ")).split()[1])
    misses = float(next(line for line in text.splitlines()
                        if line.startswith("kms_store_cache_misses_total ")).split()[1])
    assert hits >= 4 and misses >= 1, (hits, misses)
    pool = [line for line in text.splitlines() if line.startswith("kms_db_pool_")]
    if srv.database_url:
        assert "kms_db_pool_max_connections 16" in pool, pool
        in_use = sample(text, "kms_db_pool_connections", 'state="in_use"')
        idle = sample(text, "kms_db_pool_connections", 'state="idle"')
        assert in_use >= 0 and idle >= 1 and in_use + idle <= 16, (in_use, idle)
        assert "kms_db_pool_waiting 0" in pool, pool
    else:
        assert sorted(pool) == ["kms_db_pool_max_connections 0", "kms_db_pool_waiting 0"], pool
    # Counted at most every 30 s: a new key shows on a later scrape, not this one.
    raw.ok("CreateKey")
    _, _, text = get(srv.port, "/metrics")
    assert sample(text, "kms_keys", 'state="Enabled",origin="Aliyun_KMS"') == 2


def test_metrics_allow_remote_serves_other_peers(started):
    srv = started("--metrics-allow-remote")
    status, _, text = get(srv.port, "/metrics", source="127.0.0.2")
    assert status == 200 and "kms_wrapping_key_pool_keys" in text


def prom_query(port: int, query: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as r:
        answer = json.load(r)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


@pytest.mark.skipif(not os.access(PROMETHEUS, os.X_OK),
                    reason="Debian's prometheus package is not installed (scripts/install-deps.sh)")
def test_a_real_prometheus_scrapes_the_request_counter_and_histogram(started, tmp_path):
    srv = started()
    raw = RawClient(srv)
    key = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: kms\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{srv.port}']\n")
    log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        burst = 25
        for i in range(burst):
            raw.ok("Encrypt", {"KeyId": key, "Plaintext": "aGVsbG8="})
        deadline = time.monotonic() + 30
        value = None
        while time.monotonic() < deadline:
            try:
                result = prom_query(prom_port, 'kms_requests_total{action="Encrypt"}')
            except OSError:
                result = []
            if result:
                value = float(result[0]["value"][1])
                if value == burst:
                    break
            time.sleep(0.5)
        assert value == burst, (value, (tmp_path / "prometheus.log").read_text()[-2000:])
        assert result[0]["metric"]["code"] == "OK" and result[0]["metric"]["job"] == "kms"

        buckets = prom_query(prom_port, 'kms_request_duration_seconds_bucket{action="Encrypt"}')
        les = sorted((b["metric"]["le"] for b in buckets), key=lambda le: float(le))
        assert les == sorted(BUCKETS, key=float), les
        inf = [b for b in buckets if b["metric"]["le"] == "+Inf"]
        assert float(inf[0]["value"][1]) == burst
        up = prom_query(prom_port, 'up{job="kms"}')
        assert up and up[0]["value"][1] == "1"
        # The store's gauges and counters reach Prometheus too.
        keys = prom_query(prom_port, 'kms_keys{state="Enabled",origin="Aliyun_KMS"}')
        assert keys and keys[0]["value"][1] == "1", keys
        hits = prom_query(prom_port, "kms_store_cache_hits_total")
        assert hits and float(hits[0]["value"][1]) >= burst - 1, hits
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=15)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        log.close()


def test_readyz_is_ready_normally_and_healthz_stays(started):
    srv = started()
    status, _, body = get(srv.port, "/readyz")
    assert status == 200, body
    assert json.loads(body) == {"Status": "READY",
                                "Checks": {"Store": "OK", "Audit": "OK", "RootKey": "OK"},
                                "Failed": []}
    status, _, body = get(srv.port, "/healthz")
    assert (status, json.loads(body)) == (200, {"Status": "OK"})


def test_readyz_names_the_audit_check_when_the_trail_cannot_be_written(started, small_fs):
    srv = started("--audit-dir", str(small_fs), "--audit-reserve-bytes", "4096")
    raw = RawClient(srv)
    key = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]
    filler = fill_fs(small_fs)
    deadline = time.monotonic() + 15
    while True:
        # Reads write lines into the reserve until the writer cannot renew it.
        raw.ok("DescribeKey", {"KeyId": key})
        status, _, body = get(srv.port, "/readyz")
        if status == 503:
            break
        assert time.monotonic() < deadline, "not ready once the audit trail cannot be written"
        time.sleep(0.1)
    answer = json.loads(body)
    assert answer["Status"] == "NOT_READY" and answer["Failed"] == ["Audit"], answer
    assert answer["Checks"] == {"Store": "OK", "Audit": "FAILED", "RootKey": "OK"}
    _, _, text = get(srv.port, "/metrics")
    assert "kms_audit_writable 0" in text

    filler.unlink()
    deadline = time.monotonic() + 15
    while get(srv.port, "/readyz")[0] != 200:
        raw.call("DescribeKey", {"KeyId": key})
        assert time.monotonic() < deadline, "ready again once space returns"
        time.sleep(0.2)


def test_log_format_json_writes_one_object_per_line(kms_binary, tmp_path):
    port = free_port()
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(
            [str(kms_binary), "server", "--listen", f"127.0.0.1:{port}", "--data-dir",
             str(tmp_path / "data"), "--console-listen", "off", "--log-format", "json"],
            stdout=o, stderr=e, stdin=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "debug,tokio_postgres=warn,hyper=info"})
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if get(port, "/healthz")[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline
                time.sleep(0.05)
            # A few requests, so debug request lines and a refusal warning are logged.
            get(port, "/?Action=Encrypt")
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"NOT HTTP\r\n\r\n")
            s.recv(100)
            s.close()
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    lines = err.read_text().splitlines()
    assert len(lines) >= 3, lines
    for line in lines:
        obj = json.loads(line)
        assert {"timestamp", "level", "message"} <= obj.keys(), obj
    # The first-start banner (credentials shown once) stays plain text on stdout.
    text = out.read_text()
    assert "AccessKeySecret:" in text
    secret = next(l.split(":", 1)[1].strip() for l in text.splitlines() if "AccessKeySecret:" in l)
    assert secret not in err.read_text()
