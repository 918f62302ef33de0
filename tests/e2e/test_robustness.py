"""Bounded concurrency and crash-durability checks (loopback only, a few hundred requests at most)."""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from kms_helpers import ClassicApi, b64, make_api, unb64


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
