"""Crash safety: a mixed workload (CreateKey, BYOK imports, Encrypt, state changes) against a
server that is killed with SIGKILL at random moments, 50 times; after each restart every
acknowledged change is there and every acknowledged ciphertext still decrypts."""
from __future__ import annotations

import os
import random
import threading
import time

from kms_helpers import KmsError, RawClient, b64, unb64, wrap_key_material

KILLS = int(os.environ.get("KMS_CRASH_KILLS", "50"))


def test_sigkill_loses_nothing_acknowledged(own_server):
    rng = random.Random(20261129)
    raw = RawClient(own_server)
    expected_state: dict[str, str | None] = {}   # key id -> acknowledged state (None: unknown)
    ciphertexts: list[tuple[str, bytes]] = []    # (blob, plaintext)
    byok_material: dict[str, bytes] = {}          # EXTERNAL key -> imported material
    lock = threading.Lock()

    def call(action, **params):
        r = raw.call(action, params)
        if r.status != 200:
            raise KmsError(r.json.get("Code"), r.status, r.json.get("Message"), None, "raw", r.json)
        return r.json

    def one_op():
        with lock:
            keys = list(expected_state)
        op = rng.random()
        if op < 0.25 or not keys:
            origin = "EXTERNAL" if rng.random() < 0.3 else "Aliyun_KMS"
            kid = call("CreateKey", Origin=origin)["KeyMetadata"]["KeyId"]
            with lock:
                expected_state[kid] = "PendingImport" if origin == "EXTERNAL" else "Enabled"
            return
        kid = rng.choice(keys)
        with lock:
            state = expected_state.get(kid)
        if state == "PendingImport":
            with lock:
                expected_state[kid] = None  # unknown until acknowledged
            material = byok_material.get(kid) or os.urandom(32)
            p = call("GetParametersForImport", KeyId=kid, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                     WrappingKeySpec="RSA_2048")
            call("ImportKeyMaterial", KeyId=kid, ImportToken=p["ImportToken"],
                 EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], material, "RSAES_OAEP_SHA_256"))
            with lock:
                byok_material[kid] = material
                expected_state[kid] = "Enabled"
        elif state == "Enabled" and op < 0.7:
            pt = os.urandom(rng.randint(1, 64))
            blob = call("Encrypt", KeyId=kid, Plaintext=b64(pt))["CiphertextBlob"]
            with lock:
                ciphertexts.append((blob, pt))
        elif state in ("Enabled", "Disabled"):
            target = "Disabled" if state == "Enabled" else "Enabled"
            with lock:
                expected_state[kid] = None
            call("DisableKey" if target == "Disabled" else "EnableKey", KeyId=kid)
            with lock:
                expected_state[kid] = target

    def workload(stop: threading.Event):
        while not stop.is_set():
            try:
                one_op()
            except Exception:  # in flight when the server died: not acknowledged
                time.sleep(0.002)

    for i in range(KILLS):
        stop = threading.Event()
        t = threading.Thread(target=workload, args=(stop,))
        t.start()
        time.sleep(rng.uniform(0.02, 0.25))
        own_server.kill9()
        stop.set()
        t.join(timeout=30)
        own_server.start()
        # Everything acknowledged is there.
        for kid, state in list(expected_state.items()):
            md = call("DescribeKey", KeyId=kid)["KeyMetadata"]
            if state is not None:
                assert md["KeyState"] == state, (i, kid, md["KeyState"], state)
            else:
                expected_state[kid] = md["KeyState"]  # settle the unacknowledged change
        for kid, state in expected_state.items():
            if state == "Disabled":
                call("EnableKey", KeyId=kid)
                expected_state[kid] = "Enabled"
        for blob, pt in ciphertexts:
            assert unb64(call("Decrypt", CiphertextBlob=blob)["Plaintext"]) == pt, i
    assert len(expected_state) >= 20 and len(ciphertexts) >= 20, (len(expected_state), len(ciphertexts))
    assert own_server.starts >= KILLS + 1
