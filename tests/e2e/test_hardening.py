"""Hardening (issue 14, items 1, 2, 4, 10 and 11), each defence tested by attacking it:

- an unauthenticated flood writes a bounded number of audit bytes per request; audit files
  rotate at their size limit and old ones are removed beyond the retention limits;
- while the audit trail cannot be written (a real full filesystem), state changes are refused
  with 503 ServiceUnavailableTemporary and not applied, reads go on, and once space returns the
  chain records the gap, which `kms admin audit verify` reports;
- a damaged tail of the audit file (a line written in part) does not stop the server: it is
  kept aside and the chain records the gap;
- ACS3-HMAC-SHA256 requests must sign the action, version, host and every x-acs-* header; v1
  takes Action and Version only from its (signed) parameters;
- kms.db (and -wal, -shm) and the audit files are private to the server's user (0600).
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import stat
import subprocess
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

from kms_helpers import (API_VERSION, REGION, RawClient, TeaApi, fill_fs, fmt_date, kms_bin, sign_v3,
                         utcnow)

SERVICE_UNAVAILABLE = "ServiceUnavailableTemporary"


def audit_verify(srv, *extra):
    return subprocess.run([str(kms_bin()), "admin", "audit", "verify", "--data-dir", str(srv.data_dir), *extra],
                          capture_output=True, text=True, timeout=60, env=srv.admin_env())


def audit_files(d: Path) -> list[Path]:
    """The chained files of a trail, oldest first (audit-<seq>.log …, then audit.log)."""
    rotated = sorted(p for p in d.iterdir() if p.name.startswith("audit-") and p.name.endswith(".log"))
    current = [d / "audit.log"] if (d / "audit.log").exists() else []
    return rotated + current


def lines_of(d: Path) -> list[dict]:
    out = []
    for f in audit_files(d):
        out += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out


def dir_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.iterdir() if f.is_file())


# ------------------------------------------------------------------------------------------
# 1. the audit trail cannot be used to fill the disk
# ------------------------------------------------------------------------------------------
CONTROL_64K = "".join(chr(1 + i % 31) for i in range(64 * 1024))


def test_unauthenticated_flood_writes_bounded_bytes_per_request(own_server):
    audit = own_server.data_dir / "audit"
    own_server.stop()  # every line so far is on disk
    before = dir_bytes(audit)
    count_before = len(lines_of(audit))
    own_server.start()
    raw = RawClient(own_server)
    n = 40
    for i in range(n):
        if i % 2 == 0:
            # An unknown action of 64 KiB of control bytes.
            r = raw.send("POST", form={"Action": CONTROL_64K, "Version": API_VERSION})
            assert r.status == 404 and r.json["Code"] == "InvalidApi.NotFound"
        else:
            # A known action with a 64 KiB access key id and key id, never authenticated.
            r = raw.send("POST", form={
                "Action": "DescribeKey", "Version": API_VERSION, "AccessKeyId": CONTROL_64K,
                "KeyId": CONTROL_64K, "SignatureMethod": "HMAC-SHA1", "SignatureNonce": uuid.uuid4().hex,
                "Timestamp": fmt_date(utcnow()), "Signature": "x" * 1000, "SignatureVersion": "1.0"})
            assert r.status == 404 and r.json["Code"] == "InvalidAccessKeyId.NotFound"
    own_server.stop()
    written = dir_bytes(audit) - before
    lines = lines_of(audit)[count_before:]
    assert len(lines) >= n, "every request, signed or not, is recorded"
    per_request = written / n
    assert per_request < 1024, f"{per_request:.0f} bytes of audit trail per unauthenticated request"
    for line in lines:
        # Before authentication only a known action name or "unknown", other values cut short.
        assert line["action"] in ("unknown", "DescribeKey"), line["action"][:80]
        assert line["account_id"] == ""
        assert len(line["access_key_id"]) <= 64 and len(line["key_id"]) <= 64
        assert all(" " <= c <= "~" for c in line["access_key_id"] + line["key_id"] + line["action"])
    assert audit_verify(own_server).returncode == 0


def _flood(port: int, requests: int) -> None:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = urllib.parse.urlencode({"Action": "unknown-" + "x" * 200, "Version": API_VERSION}).encode()
    for _ in range(requests):
        conn.request("POST", "/", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        conn.getresponse().read()
    conn.close()


def test_audit_files_rotate_at_their_limit_and_old_ones_are_removed(server_with):
    max_bytes, keep_files, keep_bytes = 16 * 1024, 3, 48 * 1024
    srv = server_with("--audit-max-bytes", str(max_bytes), "--audit-retain-files", str(keep_files),
                      "--audit-retain-bytes", str(keep_bytes))
    threads = [threading.Thread(target=_flood, args=(srv.port, 300)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    srv.stop()
    audit = srv.data_dir / "audit"
    files = audit_files(audit)
    rotated = files[:-1]
    # 2,400 lines of ~400 bytes were written: far more than the retention keeps.
    assert len(rotated) <= keep_files, [f.name for f in files]
    assert sum(f.stat().st_size for f in files) <= keep_bytes + max_bytes
    for f in files:
        # Rotation happens inside a batch: no file goes past its limit by more than one line.
        assert f.stat().st_size <= max_bytes + 1024, (f.name, f.stat().st_size)
    # The chain still verifies: its start is explained by a retention record in the chain.
    v = audit_verify(srv)
    assert v.returncode == 0, v.stdout + v.stderr
    assert "removed by retention" in v.stdout
    pruned = [line for line in lines_of(audit) if line["action"] == "AuditRetention"]
    assert pruned and pruned[-1]["event"]["kind"] == "retention"


# ------------------------------------------------------------------------------------------
# 2. the audit trail fails closed (a real full filesystem)
# ------------------------------------------------------------------------------------------
def state_of(raw, key):
    return raw.ok("DescribeKey", {"KeyId": key})["KeyMetadata"]["KeyState"]


def test_state_changes_are_refused_while_the_audit_trail_cannot_be_written(server_with, small_fs):
    # A small reserve, so that the lines of the refused calls soon find no room either.
    srv = server_with("--audit-dir", str(small_fs), "--audit-reserve-bytes", "4096")
    raw = RawClient(srv)
    key = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]
    blob = raw.ok("Encrypt", {"KeyId": key, "Plaintext": "aGVsbG8="})["CiphertextBlob"]
    filler = fill_fs(small_fs)
    # Reads go on. Their lines go into the space the writer keeps allocated past the end of
    # audit.log; once it cannot renew that reserve (at the latest a filesystem block later),
    # the gate closes.
    for _ in range(20):
        assert state_of(raw, key) == "Enabled"
    # The writer notices in its own time (on a loaded machine, after a few more lines): wait
    # until it says so on /readyz, then every state change must be refused.
    deadline = time.time() + 15
    while time.time() < deadline:
        assert state_of(raw, key) == "Enabled"
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        conn.request("GET", "/readyz")
        ready = conn.getresponse().status
        conn.close()
        if ready == 503:
            break
        time.sleep(0.1)
    assert ready == 503, "the audit writer never reported the full disk"

    answers = []
    for i in range(40):
        r = raw.call("DisableKey" if i % 2 == 0 else "EnableKey", {"KeyId": key})
        answers.append((r.status, r.json["Code"] if r.status != 200 else "OK"))
    assert answers == [(503, SERVICE_UNAVAILABLE)] * 40, answers
    r = raw.call("CreateKey")
    assert (r.status, r.json["Code"]) == (503, SERVICE_UNAVAILABLE)
    assert "audit" in r.json["Message"]
    # Nothing was applied; reads and cryptographic calls go on.
    assert state_of(raw, key) == "Enabled"
    assert raw.ok("Decrypt", {"CiphertextBlob": blob})["Plaintext"] == "aGVsbG8="
    assert raw.ok("ListKeys", {"PageSize": "100"})["TotalCount"] == 1

    filler.unlink()
    deadline = time.monotonic() + 15
    while True:
        r = raw.call("DisableKey", {"KeyId": key})
        if r.status == 200:
            break
        assert (r.status, r.json["Code"]) == (503, SERVICE_UNAVAILABLE)
        assert time.monotonic() < deadline, "state changes are accepted again once space returns"
        time.sleep(0.2)
    assert state_of(raw, key) == "Disabled"
    srv.stop()

    lines = lines_of(small_fs)
    # Every stretch of lost lines is followed by a gap line counting them. While the disk is
    # full, a short line may still fit where a longer one did not, so there can be more than
    # one stretch (how many depends on the machine's timing); together they account for
    # every refused call whose own line was not written.
    gaps = [line for line in lines if line["action"] == "AuditGap"]
    assert gaps and all(g["event"]["kind"] == "gap" for g in gaps), gaps
    lost = sum(g["event"]["lost"] for g in gaps)
    assert lost >= 1
    refused = [line for line in lines if line["result"] == SERVICE_UNAVAILABLE]
    assert len(refused) + lost >= 42, (len(refused), gaps)
    # The one state change accepted once space returned comes after the last gap line.
    disables = [line for line in lines if line["action"] == "DisableKey" and line["result"] == "OK"]
    assert len(disables) == 1 and disables[0]["seq"] > max(g["seq"] for g in gaps)
    v = audit_verify(srv, "--audit-dir", str(small_fs))
    assert v.returncode == 3, (v.returncode, v.stdout, v.stderr)
    n = len(gaps)
    assert f"{n} gap{'' if n == 1 else 's'}" in v.stdout and "could not be written" in v.stdout


# ------------------------------------------------------------------------------------------
# 11. the server starts again after a full disk damaged the audit file's tail
# ------------------------------------------------------------------------------------------
def test_server_starts_after_a_partly_written_audit_line(own_server):
    raw = RawClient(own_server)
    key = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]
    raw.ok("DisableKey", {"KeyId": key})
    own_server.stop()
    audit = own_server.data_dir / "audit"
    current = audit / "audit.log"
    text = current.read_bytes()
    last_start = text.rstrip(b"\n").rfind(b"\n") + 1
    cut = last_start + (len(text) - last_start) // 2
    damaged = text[cut:]  # noqa: F841 - what is lost
    current.write_bytes(text[:cut])  # the last line ends mid-JSON, as after ENOSPC
    kept_part = text[last_start:cut]

    own_server.start()  # starts despite the damaged tail
    assert raw.ok("DescribeKey", {"KeyId": key})["KeyMetadata"]["KeyState"] == "Disabled"
    raw.ok("EnableKey", {"KeyId": key})
    own_server.stop()

    aside = [p for p in audit.iterdir() if "damaged" in p.name]
    assert len(aside) == 1, [p.name for p in audit.iterdir()]
    assert aside[0].read_bytes() == kept_part, "the damaged part is kept for inspection, unchanged"
    assert stat.S_IMODE(aside[0].stat().st_mode) == 0o600
    gaps = [line for line in lines_of(audit) if line["action"] == "AuditGap"]
    assert len(gaps) == 1 and aside[0].name in gaps[0]["event"]["reason"]
    v = audit_verify(own_server)
    assert v.returncode == 3, (v.returncode, v.stdout, v.stderr)
    assert "1 gap" in v.stdout and aside[0].name in v.stdout


def test_startup_errors_name_the_file_or_setting(kms_binary, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "audit").write_text("not a directory")
    r = subprocess.run([str(kms_binary), "server", "--data-dir", str(data), "--listen", "127.0.0.1:0",
                        "--console-listen", "off"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert str(data / "audit") in r.stderr and "--audit-dir" in r.stderr, r.stderr
    (data / "audit").unlink()
    (data / "root.key").write_text("too short")
    r = subprocess.run([str(kms_binary), "server", "--data-dir", str(data), "--listen", "127.0.0.1:0",
                        "--console-listen", "off"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert str(data / "root.key") in r.stderr and "KMS_ROOT_KEY_FILE" in r.stderr, r.stderr
    bad = tmp_path / "missing.key"
    r = subprocess.run([str(kms_binary), "server", "--data-dir", str(tmp_path / "d2"), "--listen", "127.0.0.1:0",
                        "--console-listen", "off"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "KMS_ROOT_KEY_FILE": str(bad)})
    assert r.returncode != 0
    assert str(bad) in r.stderr and "KMS_ROOT_KEY_FILE" in r.stderr, r.stderr


# ------------------------------------------------------------------------------------------
# 4. ACS3-HMAC-SHA256 must sign the action; v1 takes the action from its signed parameters
# ------------------------------------------------------------------------------------------
def v3_request(raw, action, query, *, signed=None, after=None, extra=None):
    """A V3 request signed over `signed` headers (default: all), then edited by `after`."""
    headers = {
        "host": f"127.0.0.1:{raw.server.port}", "x-acs-action": action, "x-acs-version": API_VERSION,
        "x-acs-date": fmt_date(utcnow()), "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(), "accept": "application/json",
        **(extra or {}),
    }
    names = sorted(signed if signed is not None else headers)
    _, sig = sign_v3("POST", query, headers, names, headers["x-acs-content-sha256"], raw.sk)
    headers["Authorization"] = (f"ACS3-HMAC-SHA256 Credential={raw.ak},SignedHeaders={';'.join(names)},"
                                f"Signature={sig}")
    headers.update(after or {})
    return raw.send("POST", query=query, headers=headers, body=b"")


def test_v3_action_swapped_after_signing_is_refused(raw):
    key = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]
    # Signed as EnableKey with only the date and nonce signed, then edited to DisableKey.
    r = v3_request(raw, "EnableKey", {"KeyId": key}, signed=["host", "x-acs-date", "x-acs-signature-nonce"],
                   after={"x-acs-action": "DisableKey"})
    assert (r.status, r.json["Code"]) == (400, "IncompleteSignature"), r
    assert "x-acs-action" in r.json["Message"]
    # Everything signed, then the action header swapped: the signature no longer matches.
    r = v3_request(raw, "EnableKey", {"KeyId": key}, after={"x-acs-action": "DisableKey"})
    assert (r.status, r.json["Code"]) == (400, "SignatureDoesNotMatch"), r
    assert raw.ok("DescribeKey", {"KeyId": key})["KeyMetadata"]["KeyState"] == "Enabled"
    # The same request, properly signed, works.
    assert v3_request(raw, "DisableKey", {"KeyId": key}).status == 200
    assert raw.ok("DescribeKey", {"KeyId": key})["KeyMetadata"]["KeyState"] == "Disabled"


@pytest.mark.parametrize("unsigned", ["host", "x-acs-action", "x-acs-version", "x-acs-content-sha256",
                                      "x-acs-date", "x-acs-signature-nonce", "x-acs-extra"])
def test_v3_every_acs_header_host_and_action_must_be_signed(raw, unsigned):
    headers = ["host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce",
               "x-acs-content-sha256", "x-acs-extra", "accept"]
    r = v3_request(raw, "DescribeRegions", {}, signed=[h for h in headers if h != unsigned],
                   extra={"x-acs-extra": "1"})
    assert (r.status, r.json["Code"]) == (400, "IncompleteSignature"), r
    assert unsigned in r.json["Message"]
    # `accept` (not an x-acs-* header) may stay unsigned, as the SDKs do.
    r = v3_request(raw, "DescribeRegions", {}, signed=[h for h in headers if h != "accept"],
                   extra={"x-acs-extra": "1"})
    assert r.status == 200, r


def test_v1_takes_action_and_version_only_from_signed_parameters(raw):
    key = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]
    # No Action parameter, the action in a header no v1 signature covers.
    params = raw.common_params(None)
    params["KeyId"] = key
    from kms_helpers import sign_v1
    params["Signature"] = sign_v1("POST", params, raw.sk)
    r = raw.send("POST", query=params, headers={"x-acs-action": "DisableKey"})
    assert (r.status, r.json["Code"]) == (400, "MissingParameter"), r
    assert '"Action"' in r.json["Message"]
    # No Version parameter, the version in a header.
    params = raw.common_params("DescribeKey")
    del params["Version"]
    params["KeyId"] = key
    params["Signature"] = sign_v1("POST", params, raw.sk)
    r = raw.send("POST", query=params, headers={"x-acs-version": API_VERSION})
    assert (r.status, r.json["Code"]) == (400, "MissingParameter"), r
    assert '"Version"' in r.json["Message"]
    assert raw.ok("DescribeKey", {"KeyId": key})["KeyMetadata"]["KeyState"] == "Enabled"


# ------------------------------------------------------------------------------------------
# 10. the database and the audit files are private
# ------------------------------------------------------------------------------------------
def test_database_and_audit_files_are_0600(own_server):
    raw = RawClient(own_server)
    key = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]
    raw.ok("DisableKey", {"KeyId": key})
    d = own_server.data_dir
    names = ["audit/audit.log"]
    if not own_server.database_url:
        names += ["kms.db", "kms.db-wal", "kms.db-shm"]
    for name in names:
        assert (d / name).exists(), name
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o600, (name, oct((d / name).stat().st_mode))
    assert stat.S_IMODE((d / "audit").stat().st_mode) == 0o700
    own_server.stop()
    for f in (d / "audit").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f.name
