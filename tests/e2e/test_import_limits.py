"""Issue 14 items 7 and 10: the limits of import tokens hold under concurrency.

- 7: an import token allows 10 failed unwraps. 200 bad imports on one token, 64 at a time
  (64 connections from one address, well under any per-address connection cap), get at most
  10 unwraps, then the token answers `InvalidImportToken`. (Before the fix: 13 to 49.) What counts as an unwrap:
  an `InvalidKeyMaterial` answer, which the server gives only after it has attempted the RSA
  unwrap with the token's private key (every earlier refusal is `InvalidImportToken`); the
  audit trail's results agree with the answers.
- 10: a key has at most `max_import_tokens_per_key` outstanding tokens (wrapping key rows);
  a GetParametersForImport beyond it withdraws the key's oldest token, which then answers
  `InvalidImportToken`. A burst on a drained pool (no pre-generated pairs) leaves no more rows.
"""
import base64
import json
import os
import subprocess
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from kms_helpers import RawClient, wrap_key_material

ALG = "RSAES_OAEP_SHA_256"


def external_key(raw: RawClient) -> str:
    return raw.ok("CreateKey", {"Origin": "EXTERNAL"})["KeyMetadata"]["KeyId"]


def params_for_import(raw: RawClient, key: str) -> dict:
    return raw.ok("GetParametersForImport",
                  {"KeyId": key, "WrappingAlgorithm": ALG, "WrappingKeySpec": "RSA_2048"})


def import_with(raw: RawClient, key: str, token: str, encrypted_b64: str):
    return raw.call("ImportKeyMaterial", {"KeyId": key, "ImportToken": token,
                                          "EncryptedKeyMaterial": encrypted_b64,
                                          "KeyMaterialExpireUnix": "0"}, in_body=True)


def code_of(r) -> str:
    return "OK" if r.status == 200 else r.json["Code"]


def tally(codes) -> dict:
    out = {}
    for c in codes:
        out[c] = out.get(c, 0) + 1
    return out


def audit_results(data_dir, action: str) -> dict:
    lines = []
    for f in sorted((data_dir / "audit").glob("audit*.log")):
        lines += [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
    return tally(line["result"] for line in lines if line["action"] == action)


def test_concurrent_bad_imports_get_at_most_ten_unwraps(own_server):
    raw = RawClient(own_server)
    key = external_key(raw)
    p = params_for_import(raw, key)
    bad = base64.b64encode(os.urandom(256)).decode()

    with ThreadPoolExecutor(64) as ex:
        answers = list(ex.map(lambda _: import_with(raw, key, p["ImportToken"], bad), range(200)))
    codes = tally(code_of(r) for r in answers)
    assert set(codes) <= {"InvalidKeyMaterial", "InvalidImportToken"}, codes
    unwrapped = codes.get("InvalidKeyMaterial", 0)
    assert 1 <= unwrapped <= 10, codes
    assert unwrapped + codes.get("InvalidImportToken", 0) == 200, codes

    # The token is spent: even good material wrapped under its public key is refused.
    good = wrap_key_material(p["PublicKey"], os.urandom(32), ALG)
    r = import_with(raw, key, p["ImportToken"], good)
    assert (r.status, code_of(r)) == (400, "InvalidImportToken"), r
    assert raw.ok("DescribeKey", {"KeyId": key})["KeyMetadata"]["KeyState"] == "PendingImport"
    # Another token of the key is unaffected.
    p2 = params_for_import(raw, key)
    r = import_with(raw, key, p2["ImportToken"], wrap_key_material(p2["PublicKey"], os.urandom(32), ALG))
    assert r.status == 200, r

    own_server.stop()  # the audit trail is complete once the server has stopped
    audited = audit_results(own_server.data_dir, "ImportKeyMaterial")
    assert audited.get("InvalidKeyMaterial", 0) == unwrapped, audited


def wrapping_key_rows(server, key: str) -> int:
    if server.database_url:
        out = subprocess.run(["psql", server.database_url, "-qAtc",
                              f"SELECT count(*) FROM wrapping_keys WHERE key_id = '{key}'"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip())
    db = sqlite3.connect(f"file:{server.data_dir / 'kms.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT count(*) FROM wrapping_keys WHERE key_id = ?", (key,)).fetchone()[0]
    finally:
        db.close()


def test_outstanding_import_tokens_per_key_are_bounded(server_with):
    srv = server_with("--max-import-tokens-per-key", "5", "--wrapping-key-pool", "0")
    raw = RawClient(srv)
    key = external_key(raw)
    other = external_key(raw)
    p_other = params_for_import(raw, other)

    # A burst on a drained pool: every call generates a pair, and at most 5 rows remain.
    with ThreadPoolExecutor(20) as ex:
        burst = list(ex.map(lambda _: params_for_import(raw, key), range(20)))
    assert len({p["ImportToken"] for p in burst}) == 20
    assert wrapping_key_rows(srv, key) == 5
    material = os.urandom(32)

    def try_import(p):
        return code_of(import_with(raw, key, p["ImportToken"], wrap_key_material(p["PublicKey"], material, ALG)))

    # Then six in a row: the first of them is the oldest outstanding once the sixth comes,
    # so it is withdrawn with every token of the burst; the newest five work.
    seq = [params_for_import(raw, key) for _ in range(6)]
    assert wrapping_key_rows(srv, key) == 5
    assert [try_import(p) for p in burst] == ["InvalidImportToken"] * 20
    assert try_import(seq[0]) == "InvalidImportToken"
    assert [try_import(p) for p in seq[1:]] == ["OK"] * 5
    # Another key's token is its own.
    r = import_with(raw, other, p_other["ImportToken"], wrap_key_material(p_other["PublicKey"], material, ALG))
    assert r.status == 200, r
    assert wrapping_key_rows(srv, other) == 1
