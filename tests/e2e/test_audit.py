"""The audit trail: one chained JSON line per API call, durable before the response for state
changes, verified and searched with `kms admin audit`, tamper-evident, and free of secrets."""
from __future__ import annotations

import json
import os
import subprocess

from kms_helpers import RawClient, TeaApi, b64, expect_error, kms_bin, wrap_key_material


def admin(server, *args):
    return subprocess.run([str(kms_bin()), "admin", "audit", *args, "--data-dir", str(server.data_dir)],
                          capture_output=True, text=True, timeout=60)


def audit_lines(server):
    d = server.data_dir / "audit"
    lines = []
    for f in sorted(d.iterdir()):
        lines += [json.loads(l) for l in f.read_text().splitlines() if l.strip()]
    return lines


def test_calls_are_recorded_chained_and_searchable(own_server):
    api = TeaApi(own_server)
    key = api.call("CreateKey", Description="audited")["KeyMetadata"]["KeyId"]
    blob = api.call("Encrypt", KeyId=key, Plaintext=b64(b"audit me"))["CiphertextBlob"]
    api.call("DisableKey", KeyId=key)
    expect_error(lambda: api.call("Decrypt", CiphertextBlob=blob), "Rejected.Disabled", 409)
    # The state change's line is on disk before its response: visible right away.
    lines = [l for l in audit_lines(own_server) if l["key_id"] == key]
    assert [l["action"] for l in lines if l["action"] in ("CreateKey", "DisableKey")] == ["CreateKey", "DisableKey"]
    create = next(l for l in lines if l["action"] == "CreateKey")
    assert create["result"] == "OK" and create["status"] == 200
    assert create["account_id"] == own_server.account_id and create["access_key_id"] == own_server.ak
    assert create["source"].startswith("127.0.0.1:")
    assert len(create["request_id"]) == 36 and len(create["mac"]) == 64

    own_server.stop()  # flushes the reads and crypto lines too
    lines = [l for l in audit_lines(own_server) if l["key_id"] == key]
    by_action = {l["action"]: l for l in lines}
    assert by_action["Encrypt"]["key_version_id"] and by_action["Encrypt"]["result"] == "OK"
    # A failed Decrypt names no key (the key is inside the refused ciphertext), but is recorded.
    failed = [l for l in audit_lines(own_server) if l["action"] == "Decrypt"]
    assert [(l["result"], l["status"]) for l in failed] == [("Rejected.Disabled", 409)]
    seqs = [l["seq"] for l in audit_lines(own_server)]
    assert seqs == list(range(1, len(seqs) + 1))

    v = admin(own_server, "verify")
    assert v.returncode == 0 and "intact" in v.stdout, v.stderr
    q = admin(own_server, "query", "--key-id", key, "--action", "Encrypt")
    assert q.returncode == 0 and [json.loads(l)["action"] for l in q.stdout.splitlines()] == ["Encrypt"]

    # Tampering with any line is detected.
    f = own_server.data_dir / "audit" / "audit.log"
    original = f.read_text()
    f.write_text(original.replace('"DisableKey"', '"EnableKey"', 1))
    v = admin(own_server, "verify")
    assert v.returncode != 0 and "changed" in v.stderr
    rows = original.splitlines()
    f.write_text("\n".join(rows[:1] + rows[2:]) + "\n")
    v = admin(own_server, "verify")
    assert v.returncode != 0 and "broken" in v.stderr
    f.write_text(original)
    assert admin(own_server, "verify").returncode == 0
    # The chain continues across restarts.
    own_server.start()
    TeaApi(own_server).call("DescribeRegions")
    own_server.stop()
    assert admin(own_server, "verify").returncode == 0


def test_no_secret_in_the_audit_log_or_server_output(own_server):
    api = TeaApi(own_server)
    plaintext = b"secret plaintext that must not be logged"
    key = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    api.call("Encrypt", KeyId=key, Plaintext=b64(plaintext))
    dk = api.call("GenerateDataKey", KeyId=key)["Plaintext"]
    ext = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    material = os.urandom(32)
    p = api.call("GetParametersForImport", KeyId=ext, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    wrapped = wrap_key_material(p["PublicKey"], material, "RSAES_OAEP_SHA_256")
    api.call("ImportKeyMaterial", KeyId=ext, ImportToken=p["ImportToken"], EncryptedKeyMaterial=wrapped)
    own_server.stop()
    haystacks = [f.read_bytes() for f in (own_server.data_dir / "audit").iterdir()]
    haystacks += [f.read_bytes() for f in own_server.log_dir.iterdir()]
    haystacks += [(own_server.data_dir / n).read_bytes() for n in ("kms.db", "kms.db-wal")
                  if (own_server.data_dir / n).exists()]
    if (own_server.database_url or "").startswith("postgres"):
        # The PostgreSQL pass: every row of the database, as pg_dump writes it (bytea as hex),
        # and the raw bytes of the rows' binary columns as text.
        import subprocess
        dump = subprocess.run(["pg_dump", "--data-only", own_server.database_url],
                              capture_output=True, timeout=60, check=True).stdout
        haystacks += [dump, dump.lower()]
        secrets_hex = True
    else:
        secrets_hex = False
    assert any(key.encode() in h for h in haystacks)  # the search works
    secrets = [own_server.sk.encode(), plaintext, b64(plaintext).encode(), dk.encode(), material,
               b64(material).encode(), material.hex().encode(), p["ImportToken"].encode(), wrapped.encode()]
    if secrets_hex:  # bytea columns appear as hex in the dump
        secrets += [material.hex().encode(), own_server.sk.encode().hex().encode()]
    for s in secrets:
        for h in haystacks:
            assert s not in h


def test_a_graceful_stop_writes_the_line_of_every_answered_request(own_server):
    """SIGTERM while clients are still calling: every request that got an answer has its line
    in the trail once the process has exited (the server waits for its audit writer), and the
    trail verifies. Reads and cryptographic calls do not wait for their line, so without the
    wait their last lines would be lost with the process."""
    import signal
    import threading
    import time

    key = TeaApi(own_server).call("CreateKey")["KeyMetadata"]["KeyId"]
    raw = RawClient(own_server)
    answered, errors = [], []
    lock = threading.Lock()
    stopping = threading.Event()

    def client(i):
        while not stopping.is_set():
            action, params = (("Encrypt", {"KeyId": key, "Plaintext": b64(b"x")}) if i % 2
                              else ("DescribeRegions", {}))
            try:
                r = raw.call(action, params)
            except OSError:
                continue  # the listener has closed: refused, never answered
            if r.status == 200:
                with lock:
                    answered.append(r.json["RequestId"])
            else:
                errors.append((r.status, r.body))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    while len(answered) < 200:
        assert all(t.is_alive() for t in threads)
        time.sleep(0.005)
    proc = own_server.proc
    proc.send_signal(signal.SIGTERM)
    stopping.set()
    for t in threads:
        t.join(30)
    assert proc.wait(timeout=30) == 0
    own_server.proc = None
    assert not errors, errors[:3]
    recorded = {l["request_id"] for l in audit_lines(own_server)}
    missing = [r for r in answered if r not in recorded]
    assert not missing, f"{len(missing)} of {len(answered)} answered requests have no audit line"
    v = admin(own_server, "verify")
    assert v.returncode == 0 and "intact" in v.stdout, v.stderr
