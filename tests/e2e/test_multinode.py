"""Several `kms server` nodes on one PostgreSQL database (issue 7).

These run when the suite runs against PostgreSQL (KMS_TEST_DATABASE_URL set; `scripts/test.sh`
does both passes). Every node is a real process with its own data dir and port; they share the
database and the root key file, as the README's multi-node section says.
"""
from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kms_helpers import (KmsError, KmsServer, RawClient, b64, kms_bin, new_test_database, unb64,
                         wrap_key_material)

pytestmark = pytest.mark.skipif(not os.environ.get("KMS_TEST_DATABASE_URL"),
                                reason="multi-node tests need PostgreSQL (KMS_TEST_DATABASE_URL)")


class Node:
    """One node and a raw signed client for it."""

    def __init__(self, srv: KmsServer):
        self.srv = srv
        self.raw = RawClient(srv)

    def call(self, action, **params):
        r = self.raw.call(action, params)
        if r.status != 200:
            raise KmsError(r.json.get("Code"), r.status, r.json.get("Message"), None, "raw", r.json)
        return r.json

    def code(self, action, **params):
        """The error code of a call that must fail."""
        r = self.raw.call(action, params)
        assert r.status != 200, (action, r.json)
        return r.json["Code"]


def start_nodes(tmp_path: Path, n: int, database_url: str | None = None, *extra: str) -> list[Node]:
    db = database_url or new_test_database()
    root = tmp_path / "root.key"
    if not root.exists():
        root.write_bytes(os.urandom(32))
        root.chmod(0o600)
    ak, sk = "LTAImultinode" + os.urandom(4).hex(), b64(os.urandom(18))
    nodes = []
    for i in range(n):
        srv = KmsServer(tmp_path / f"node{i}", tmp_path / f"logs{i}", ak=ak, sk=sk,
                        database_url=db, extra_args=extra,
                        extra_env={"KMS_ROOT_KEY_FILE": str(root)})
        nodes.append(Node(srv.start()))
    return nodes


@pytest.fixture
def nodes(tmp_path):
    started = start_nodes(tmp_path, 3)
    yield started
    for n in started:
        n.srv.stop()


def test_key_created_on_one_node_is_used_on_the_others(nodes):
    a, b, c = nodes
    kid = a.call("CreateKey", Description="made on A")["KeyMetadata"]["KeyId"]
    assert b.call("DescribeKey", KeyId=kid)["KeyMetadata"]["Description"] == "made on A"
    blob = b.call("Encrypt", KeyId=kid, Plaintext=b64(b"across nodes"))["CiphertextBlob"]
    assert unb64(c.call("Decrypt", CiphertextBlob=blob)["Plaintext"]) == b"across nodes"
    c.call("CreateAlias", KeyId=kid, AliasName="alias/multi")
    assert a.call("DescribeKey", KeyId="alias/multi")["KeyMetadata"]["KeyId"] == kid
    b.call("TagResource", KeyId=kid, Tags='[{"TagKey":"team","TagValue":"x"}]')
    tags = a.call("ListResourceTags", KeyId=kid)["Tags"]["Tag"]
    assert [(t["TagKey"], t["TagValue"]) for t in tags] == [("team", "x")]


def seconds_until_refused(node: Node, kid: str, expected_code: str, limit: float = 3.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        r = node.raw.call("Encrypt", {"KeyId": kid, "Plaintext": b64(b"x")})
        if r.status != 200:
            assert r.json["Code"] == expected_code, r.json
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"node still encrypts with {kid} after {limit}s")


def warm(node: Node, kid: str):
    for _ in range(3):  # fills the node's cache
        node.call("Encrypt", KeyId=kid, Plaintext=b64(b"warm"))


def test_state_changes_on_one_node_stop_crypto_on_the_others_within_a_second(nodes):
    a, b, c = nodes
    # DisableKey
    kid = a.call("CreateKey")["KeyMetadata"]["KeyId"]
    warm(b, kid)
    warm(c, kid)
    a.call("DisableKey", KeyId=kid)
    assert seconds_until_refused(b, kid, "Rejected.Disabled") < 1.0
    assert seconds_until_refused(c, kid, "Rejected.Disabled") < 1.0
    # ScheduleKeyDeletion
    kid = a.call("CreateKey")["KeyMetadata"]["KeyId"]
    warm(b, kid)
    a.call("ScheduleKeyDeletion", KeyId=kid, PendingWindowInDays="7")
    assert seconds_until_refused(b, kid, "Rejected.PendingDeletion") < 1.0
    # DeleteKeyMaterial
    kid = a.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    p = a.call("GetParametersForImport", KeyId=kid, WrappingAlgorithm="RSAES_OAEP_SHA_256",
               WrappingKeySpec="RSA_2048")
    b.call("ImportKeyMaterial", KeyId=kid, ImportToken=p["ImportToken"],
           EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], os.urandom(32), "RSAES_OAEP_SHA_256"))
    warm(c, kid)
    a.call("DeleteKeyMaterial", KeyId=kid)
    assert seconds_until_refused(c, kid, "Rejected.PendingImport") < 1.0
    # and enabling again is seen as promptly
    kid = a.call("CreateKey")["KeyMetadata"]["KeyId"]
    a.call("DisableKey", KeyId=kid)
    assert b.code("Encrypt", KeyId=kid, Plaintext=b64(b"x")) == "Rejected.Disabled"
    a.call("EnableKey", KeyId=kid)
    deadline = time.monotonic() + 1.0
    while b.raw.call("Encrypt", {"KeyId": kid, "Plaintext": b64(b"x")}).status != 200:
        assert time.monotonic() < deadline, "EnableKey on A not seen on B within a second"
        time.sleep(0.02)


def test_import_token_from_one_node_is_accepted_by_another(nodes):
    a, b, c = nodes
    for alg in ("RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"):
        kid = a.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
        p = a.call("GetParametersForImport", KeyId=kid, WrappingAlgorithm=alg,
                   WrappingKeySpec="RSA_2048")
        material = os.urandom(32)
        b.call("ImportKeyMaterial", KeyId=kid, ImportToken=p["ImportToken"],
               EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], material, alg))
        assert c.call("DescribeKey", KeyId=kid)["KeyMetadata"]["KeyState"] == "Enabled"
        blob = c.call("Encrypt", KeyId=kid, Plaintext=b64(b"byok"))["CiphertextBlob"]
        assert unb64(a.call("Decrypt", CiphertextBlob=blob)["Plaintext"]) == b"byok"


def test_racing_imports_of_different_material_leave_one_winner(nodes):
    a, b, _ = nodes
    for _ in range(6):
        kid = a.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
        p = a.call("GetParametersForImport", KeyId=kid, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                   WrappingKeySpec="RSA_2048")
        materials = [os.urandom(32), os.urandom(32)]
        wrapped = [wrap_key_material(p["PublicKey"], m, "RSAES_OAEP_SHA_256") for m in materials]
        barrier = threading.Barrier(2)

        def attempt(node, w):
            barrier.wait()
            return node.raw.call("ImportKeyMaterial", {"KeyId": kid, "ImportToken": p["ImportToken"],
                                                       "EncryptedKeyMaterial": w})

        with ThreadPoolExecutor(2) as ex:
            results = list(ex.map(attempt, (a, b), wrapped))
        ok = [i for i, r in enumerate(results) if r.status == 200]
        assert len(ok) == 1, [r.json for r in results]
        loser = results[1 - ok[0]]
        assert (loser.status, loser.json["Code"]) == (400, "InvalidKeyMaterial"), loser.json
        # The winner's material is the one bound: after deleting it, only it imports again.
        a.call("DeleteKeyMaterial", KeyId=kid)
        p2 = b.call("GetParametersForImport", KeyId=kid, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                    WrappingKeySpec="RSA_2048")
        other = materials[1 - ok[0]]
        assert b.code("ImportKeyMaterial", KeyId=kid, ImportToken=p2["ImportToken"],
                      EncryptedKeyMaterial=wrap_key_material(p2["PublicKey"], other,
                                                             "RSAES_OAEP_SHA_256")) == "InvalidKeyMaterial"
        b.call("ImportKeyMaterial", KeyId=kid, ImportToken=p2["ImportToken"],
               EncryptedKeyMaterial=wrap_key_material(p2["PublicKey"], materials[ok[0]],
                                                      "RSAES_OAEP_SHA_256"))


def test_racing_enable_and_schedule_deletion_end_consistent(nodes):
    a, b, _ = nodes
    for _ in range(8):
        kid = a.call("CreateKey")["KeyMetadata"]["KeyId"]
        a.call("DisableKey", KeyId=kid)
        barrier = threading.Barrier(2)

        def enable():
            barrier.wait()
            return a.raw.call("EnableKey", {"KeyId": kid})

        def schedule():
            barrier.wait()
            return b.raw.call("ScheduleKeyDeletion", {"KeyId": kid, "PendingWindowInDays": "7"})

        with ThreadPoolExecutor(2) as ex:
            fe, fs = ex.submit(enable), ex.submit(schedule)
            re_, rs = fe.result(), fs.result()
        assert rs.status == 200, rs.json  # ScheduleKeyDeletion is allowed from both states
        # EnableKey either ran first (then the deletion was scheduled on an Enabled key) or
        # found the key PendingDeletion and was refused with the matrix's code.
        assert re_.status == 200 or (re_.status, re_.json["Code"]) == (409, "Rejected.StateModifiedFailed"), re_.json
        for n in nodes:
            assert n.call("DescribeKey", KeyId=kid)["KeyMetadata"]["KeyState"] == "PendingDeletion"


def test_concurrent_key_versions_from_two_nodes_are_all_kept(nodes):
    a, b, c = nodes
    kid = a.call("CreateKey")["KeyMetadata"]["KeyId"]
    barrier = threading.Barrier(2)

    def create(node):
        barrier.wait()
        return node.raw.call("CreateKeyVersion", {"KeyId": kid})

    with ThreadPoolExecutor(2) as ex:
        results = list(ex.map(create, (a, b)))
    assert [r.status for r in results] == [200, 200], [r.json for r in results]
    versions = c.call("ListKeyVersions", KeyId=kid)["KeyVersions"]["KeyVersion"]
    assert len(versions) == 3
    primary = c.call("DescribeKey", KeyId=kid)["KeyMetadata"]["PrimaryKeyVersion"]
    assert primary in {r.json["KeyVersion"]["KeyVersionId"] for r in results}


def test_a_nonce_replayed_to_another_node_is_refused(nodes):
    a, b, c = nodes
    r = a.raw.call("DescribeRegions", {})
    assert r.status == 200, r.json
    for other in (b, c):
        replay = other.raw.call(None, signed_params=r.sent_params)
        assert (replay.status, replay.json["Code"]) == (400, "SignatureNonceUsed"), replay.json
    # V3 (Tea SDK) signatures too.
    r3 = a.raw.call_v3("DescribeRegions")
    assert r3.status == 200, r3.json
    replay = b.raw.call_v3("DescribeRegions", replay_headers=r3.sent_headers)
    assert (replay.status, replay.json["Code"]) == (400, "SignatureNonceUsed"), replay.json


def log_count(nodes, text: str) -> int:
    total = 0
    for n in nodes:
        for f in n.srv.log_dir.iterdir():
            total += f.read_text(errors="replace").count(text)
    return total


def test_background_work_is_done_once_with_three_nodes(nodes):
    a, b, c = nodes
    rotating = [a.call("CreateKey", EnableAutomaticRotation="true", RotationInterval="604800s")
                ["KeyMetadata"]["KeyId"] for _ in range(4)]
    doomed = [a.call("CreateKey")["KeyMetadata"]["KeyId"] for _ in range(4)]
    for kid in doomed:
        b.call("ScheduleKeyDeletion", KeyId=kid, PendingWindowInDays="7")
    expiring = []
    for _ in range(3):
        kid = a.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
        p = a.call("GetParametersForImport", KeyId=kid, WrappingAlgorithm="RSAES_OAEP_SHA_1",
                   WrappingKeySpec="RSA_2048")
        expire = int(time.time()) + 3 * 86400
        c.call("ImportKeyMaterial", KeyId=kid, ImportToken=p["ImportToken"], KeyMaterialExpireUnix=str(expire),
               EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], os.urandom(32), "RSAES_OAEP_SHA_1"))
        expiring.append(kid)
    # Every node's clock moves 8 days at once; each node's sweeper (every second) then races
    # the others for the same due work.
    with ThreadPoolExecutor(3) as ex:
        list(ex.map(lambda n: n.srv.advance_clock(8 * 86400), nodes))
    time.sleep(3)  # several sweeps on every node
    for kid in rotating:
        versions = c.call("ListKeyVersions", KeyId=kid)["KeyVersions"]["KeyVersion"]
        assert len(versions) == 2, (kid, versions)
    for kid in doomed:
        assert a.code("DescribeKey", KeyId=kid) == "Forbidden.KeyNotFound"
    for kid in expiring:
        assert b.call("DescribeKey", KeyId=kid)["KeyMetadata"]["KeyState"] == "PendingImport"
    assert log_count(nodes, "key rotated automatically") == len(rotating)
    assert log_count(nodes, "key deleted after its pending window") == len(doomed)


def test_sigkill_of_a_node_mid_work_loses_nothing_acknowledged(nodes):
    a, b, c = nodes
    rng = random.Random(7)
    acked_keys: list[str] = []
    acked_blobs: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    def work(node: Node, stop: threading.Event):
        while not stop.is_set():
            try:
                if rng.random() < 0.3 or not acked_keys:
                    kid = node.call("CreateKey")["KeyMetadata"]["KeyId"]
                    with lock:
                        acked_keys.append(kid)
                else:
                    with lock:
                        kid = rng.choice(acked_keys)
                    pt = os.urandom(16)
                    blob = node.call("Encrypt", KeyId=kid, Plaintext=b64(pt))["CiphertextBlob"]
                    with lock:
                        acked_blobs.append((blob, pt))
            except Exception:  # in flight when the node died: not acknowledged
                time.sleep(0.005)

    for round_ in range(5):
        stop = threading.Event()
        threads = [threading.Thread(target=work, args=(n, stop)) for n in (a, a, b)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.2, 0.6))
        a.srv.kill9()
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        # The surviving nodes see everything acknowledged by the killed one.
        for kid in acked_keys:
            assert c.call("DescribeKey", KeyId=kid)["KeyMetadata"]["KeyState"] == "Enabled"
        for blob, pt in acked_blobs:
            assert unb64(b.call("Decrypt", CiphertextBlob=blob)["Plaintext"]) == pt, round_
        a.srv.start()
    assert len(acked_keys) >= 5 and len(acked_blobs) >= 20, (len(acked_keys), len(acked_blobs))


def test_nodes_starting_at_once_on_an_empty_database_agree(tmp_path):
    db = new_test_database()
    root = tmp_path / "root.key"
    root.write_bytes(os.urandom(32))
    srvs = [KmsServer(tmp_path / f"n{i}", tmp_path / f"l{i}", database_url=db,
                      extra_env={"KMS_ROOT_KEY_FILE": str(root)}) for i in range(3)]
    for s in srvs:
        s.ak, s.sk = "LTAIsame0000000000", "same-secret"
    for s in srvs:  # all three processes race through migrations and bootstrap
        s.launch()
    for s in srvs:
        s._wait_ready()
    try:
        kid = Node(srvs[0]).call("CreateKey")["KeyMetadata"]["KeyId"]
        for s in srvs:  # one account, one access key, one schema
            assert Node(s).call("DescribeKey", KeyId=kid)["KeyMetadata"]["Creator"] == srvs[0].account_id
        out = subprocess.run(["psql", db, "-qAtc", "SELECT version FROM schema_migrations ORDER BY 1"],
                             capture_output=True, text=True, check=True)
        files = sorted(Path(__file__).resolve().parents[2].glob("crates/kms/migrations/postgres/*.sql"))
        assert out.stdout.split() == [str(int(f.name[:4])) for f in files]  # each applied once
    finally:
        for s in srvs:
            s.stop()


def test_a_node_with_another_root_key_refuses_the_database(tmp_path):
    nodes = start_nodes(tmp_path, 1)
    try:
        other_root = tmp_path / "other.key"
        other_root.write_bytes(os.urandom(32))
        srv = KmsServer(tmp_path / "stranger", tmp_path / "stranger-logs",
                        database_url=nodes[0].srv.database_url,
                        extra_env={"KMS_ROOT_KEY_FILE": str(other_root)})
        with pytest.raises(AssertionError) as e:
            srv.start()
        assert "different root key" in str(e.value)
    finally:
        nodes[0].srv.stop()


def test_migrate_store_from_sqlite_copies_everything(tmp_path):
    # A single-node SQLite deployment with some of everything.
    single = KmsServer(tmp_path / "single", tmp_path / "single-logs", database_url="sqlite:" +
                       str(tmp_path / "single" / "kms.db")).start()
    n = Node(single)
    keys = [n.call("CreateKey", Description=f"key {i}")["KeyMetadata"]["KeyId"] for i in range(5)]
    n.call("CreateKeyVersion", KeyId=keys[0])
    n.call("CreateAlias", KeyId=keys[1], AliasName="alias/migrated")
    n.call("TagResource", KeyId=keys[2], Tags='[{"TagKey":"env","TagValue":"prod"}]')
    n.call("DisableKey", KeyId=keys[3])
    n.call("ScheduleKeyDeletion", KeyId=keys[4], PendingWindowInDays="30")
    ext = n.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    p = n.call("GetParametersForImport", KeyId=ext, WrappingAlgorithm="RSAES_PKCS1_V1_5",
               WrappingKeySpec="RSA_2048")
    material = os.urandom(32)
    n.call("ImportKeyMaterial", KeyId=ext, ImportToken=p["ImportToken"],
           EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], material, "RSAES_PKCS1_V1_5"))
    pending = n.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    unused = n.call("GetParametersForImport", KeyId=pending, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                    WrappingKeySpec="RSA_2048")  # a token issued but not used yet
    blobs = [(kid, n.call("Encrypt", KeyId=kid, Plaintext=b64(kid.encode()))["CiphertextBlob"])
             for kid in (keys[0], keys[1], keys[2], ext)]
    before = {kid: n.call("DescribeKey", KeyId=kid)["KeyMetadata"] for kid in keys + [ext, pending]}
    single.stop()
    made = subprocess.run([str(kms_bin()), "admin", "console-user", "create", "--data-dir",
                           str(single.data_dir), *single.db_args(), "migrated-user"],
                          env={**single.admin_env(), "KMS_CONSOLE_PASSWORD": "a long enough password"},
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr

    target = new_test_database()
    cmd = [str(kms_bin()), "admin", "migrate-store", "--from", f"sqlite:{tmp_path / 'single' / 'kms.db'}",
           "--to", target]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "verified" in out.stdout and "7 keys" in out.stdout and "1 console users" in out.stdout, out.stdout
    # A second copy into the now non-empty database is refused.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "already holds keys" in again.stderr, again

    listed = subprocess.run([str(kms_bin()), "admin", "console-user", "list", "--data-dir",
                             str(single.data_dir), "--database-url", target],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "migrated-user" in listed.stdout, listed
    # The same data dir (its root key, its access key) now served from PostgreSQL.
    single.database_url = target
    single.start()
    try:
        for kid, md in before.items():
            assert n.call("DescribeKey", KeyId=kid)["KeyMetadata"] == md
        for kid, blob in blobs:
            assert unb64(n.call("Decrypt", CiphertextBlob=blob)["Plaintext"]) == kid.encode()
        assert n.call("DescribeKey", KeyId="alias/migrated")["KeyMetadata"]["KeyId"] == keys[1]
        assert len(n.call("ListKeyVersions", KeyId=keys[0])["KeyVersions"]["KeyVersion"]) == 2
        tags = n.call("ListResourceTags", KeyId=keys[2])["Tags"]["Tag"]
        assert [(t["TagKey"], t["TagValue"]) for t in tags] == [("env", "prod")]
        # The import token issued before the migration still works, and the material
        # commitment of the imported key came along.
        n.call("ImportKeyMaterial", KeyId=pending, ImportToken=unused["ImportToken"],
               EncryptedKeyMaterial=wrap_key_material(unused["PublicKey"], os.urandom(32),
                                                      "RSAES_OAEP_SHA_256"))
        n.call("DeleteKeyMaterial", KeyId=ext)
        p2 = n.call("GetParametersForImport", KeyId=ext, WrappingAlgorithm="RSAES_OAEP_SHA_1",
                    WrappingKeySpec="RSA_2048")
        assert n.code("ImportKeyMaterial", KeyId=ext, ImportToken=p2["ImportToken"],
                      EncryptedKeyMaterial=wrap_key_material(p2["PublicKey"], os.urandom(32),
                                                             "RSAES_OAEP_SHA_1")) == "InvalidKeyMaterial"
    finally:
        single.stop()


def test_access_key_disabled_with_admin_stops_working_on_every_node_within_a_second(nodes):
    a, b, c = nodes
    created = a.srv.new_account()
    clients = [RawClient(n.srv, created["AccessKeyId"], created["AccessKeySecret"]) for n in nodes]
    for cl in clients:  # every node has it cached
        assert cl.call("DescribeRegions", {}).status == 200

    def admin(*args):
        out = subprocess.run([str(kms_bin()), "admin", "access-key", *args, "--data-dir",
                              str(a.srv.data_dir), *a.srv.db_args(), created["AccessKeyId"]],
                             capture_output=True, text=True, timeout=30, env=a.srv.admin_env())
        assert out.returncode == 0, out.stderr

    def seconds_until(code):
        started = time.monotonic()
        pending = list(clients)
        while pending:
            assert time.monotonic() - started < 3, f"still not {code}"
            for cl in list(pending):
                r = cl.call("DescribeRegions", {})
                if r.status != 200:
                    assert r.json["Code"] == code, r.json
                    pending.remove(cl)
            time.sleep(0.02)
        return time.monotonic() - started

    admin("disable")
    assert seconds_until("InvalidAccessKeyId.Inactive") < 1.0
    admin("enable")
    for cl in clients:
        deadline = time.monotonic() + 1.0
        while cl.call("DescribeRegions", {}).status != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    admin("delete")
    assert seconds_until("InvalidAccessKeyId.NotFound") < 1.0


def test_one_request_sent_to_three_nodes_at_once_is_served_exactly_once(nodes):
    """The same signed request sent concurrently to every node (and twice to one): exactly one
    copy is served, whichever node claims the nonce first."""
    for _ in range(15):
        signed = dict(nodes[0].raw.common_params("DescribeRegions"))
        from kms_helpers import sign_v1
        signed["Signature"] = sign_v1("POST", signed, nodes[0].srv.sk)
        barrier = threading.Barrier(4)

        def send(node):
            barrier.wait()
            return node.raw.call(None, signed_params=signed)

        with ThreadPoolExecutor(4) as ex:
            results = list(ex.map(send, [nodes[0], nodes[1], nodes[2], nodes[0]]))
        statuses = sorted(r.status for r in results)
        assert statuses == [200, 400, 400, 400], [r.json for r in results]
        assert {r.json["Code"] for r in results if r.status == 400} == {"SignatureNonceUsed"}


def test_console_sessions_are_shared_by_the_nodes(tmp_path):
    """A console session made on one node's console works on another's, and signing out on
    one ends it on every node (sessions live in the database)."""
    import http.client
    import re
    import urllib.parse

    from kms_helpers import free_port

    db = new_test_database()
    root = tmp_path / "root.key"
    root.write_bytes(os.urandom(32))
    ports = [free_port(), free_port()]
    srvs = [KmsServer(tmp_path / f"c{i}", tmp_path / f"cl{i}", database_url=db,
                      ak="LTAIconsole000000001", sk="console-node-secret",
                      extra_args=["--console-listen", f"127.0.0.1:{ports[i]}"],
                      extra_env={"KMS_ROOT_KEY_FILE": str(root)}) for i in range(2)]
    for s in srvs:
        s.start()
    try:
        kid = Node(srvs[0]).call("CreateKey", Description="seen in both consoles")["KeyMetadata"]["KeyId"]

        def request(port, method, path, body=None, cookie=""):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            headers = {"Cookie": cookie}
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read().decode()
            conn.close()
            return r, data

        r, form = request(ports[0], "GET", "/console/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        r, _ = request(ports[0], "POST", "/console/signin",
                       urllib.parse.urlencode({"csrf": csrf, "kind": "ak",
                                               "access_key_id": srvs[0].ak,
                                               "access_key_secret": srvs[0].sk}))
        assert r.status == 303, r.status
        session = next(v for k, v in r.getheaders()
                       if k.lower() == "set-cookie" and v.startswith("kms_session="))
        cookie = session.split(";")[0]
        # Node B's console accepts node A's session and shows node A's key.
        r, page = request(ports[1], "GET", f"/console/keys/{kid}", cookie=cookie)
        assert r.status == 200 and "seen in both consoles" in page
        # Sign out on node B (with the session's CSRF token from the page) ...
        token = re.search(r'data-csrf="([^"]+)"', page).group(1)
        r, _ = request(ports[1], "POST", "/console/signout",
                       urllib.parse.urlencode({"csrf": token}), cookie=cookie)
        assert r.status in (302, 303), r.status
        # ... and node A no longer knows the session.
        r, _ = request(ports[0], "GET", "/console/keys", cookie=cookie)
        assert r.status in (302, 303) and r.getheader("Location").startswith("/console/signin")
    finally:
        for s in srvs:
            s.stop()


def test_readme_multinode_example_runs_as_written(tmp_path):
    """The README's two-node example, with only its ports, /tmp paths and database name made
    unique for the test run."""
    import re
    import uuid

    from kms_helpers import REPO_ROOT, free_port

    text = (REPO_ROOT / "README.md").read_text()
    m = re.search(r"<!-- multinode-example -->\s*```sh\n(.*?)```", text, re.S)
    assert m, "README has no <!-- multinode-example --> block"
    block = m.group(1)
    pa, pb = free_port(), free_port()
    block = (block.replace("8081", str(pa)).replace("8091", str(pb))
             .replace("/tmp/", f"{tmp_path}/").replace("kms_demo", "kms_demo_" + uuid.uuid4().hex[:10]))
    script = "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n" + block
    env = {**os.environ, "PATH": f"{kms_bin().parent}:{os.environ['PATH']}"}
    for k in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "KMS_ROOT_KEY_FILE"):
        env.pop(k, None)
    p = subprocess.run(["bash", "-c", script], env=env, cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=120)
    out = p.stdout + p.stderr
    assert '"CiphertextBlob"' in p.stdout, out
    assert "Rejected.Disabled" in out, out
    assert p.returncode == 1, out  # the last command's refusal is the script's exit status
