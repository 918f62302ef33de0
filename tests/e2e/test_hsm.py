"""A hardware root of trust through PKCS#11 (issue 20), against a real SoftHSM2 token.

The token is initialised here (softhsm2-util --init-token) in a temporary directory named by
SOFTHSM2_CONF. Skipped, with a message, when SoftHSM2 is not installed (CI installs it:
scripts/install-deps.sh).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kms_helpers import (ClassicApi, KmsServer, ServerStartError, b64, expect_error, kms_bin,
                         unb64, wrap_key_material)

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "e2e-pin-4321"
SUPPORTED = ("RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_1")  # SoftHSM2 2.6 has no OAEP with SHA-256
UNSUPPORTED = ("RSAES_OAEP_SHA_256",)

pytestmark = pytest.mark.skipif(
    not (os.path.exists(MODULE) and shutil.which("softhsm2-util")),
    reason="SoftHSM2 is not installed (apt-get install softhsm2; scripts/install-deps.sh)")


def make_token(base: Path, label: str) -> dict:
    """A fresh SoftHSM2 token directory with one token; returns the server environment."""
    (base / "tokens").mkdir(parents=True)
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN,
                    "--so-pin", "so-pin-8765"], env=env, check=True, capture_output=True)
    pin = base / "pin"
    pin.write_text(PIN + "\n")
    pin.chmod(0o600)
    return {"SOFTHSM2_CONF": str(conf), "KMS_HSM_MODULE": MODULE, "KMS_HSM_TOKEN_LABEL": label,
            "KMS_HSM_PIN_FILE": str(pin)}


@pytest.fixture(scope="module")
def token(tmp_path_factory):
    return make_token(tmp_path_factory.mktemp("softhsm"), "kms-e2e")


@pytest.fixture(scope="module")
def hsm_server(kms_binary, tmp_path_factory, token):
    base = tmp_path_factory.mktemp("hsm-server")
    srv = KmsServer(base / "data", base / "logs", extra_env=token)
    srv.start()
    yield srv
    if srv.proc is not None:
        srv.stop()


def blob_decrypt(material: bytes, blob_b64: str, context: bytes = b"") -> bytes:
    """The documented blob format (keystore/blob.rs), decrypted with the material itself."""
    blob = unb64(blob_b64)
    aad = b"kms-blob-v1" + blob[:33] + len(context).to_bytes(4, "big") + context
    return AESGCM(material).decrypt(blob[33:45], blob[45:], aad)


def params(api, key_id, algorithm):
    return api.call("GetParametersForImport", KeyId=key_id, WrappingAlgorithm=algorithm,
                    WrappingKeySpec="RSA_2048")


def import_into(api, key_id, material, algorithm):
    p = params(api, key_id, algorithm)
    api.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p["ImportToken"],
             EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], material, algorithm),
             KeyMaterialExpireUnix=0)


def roundtrip(api, key_id, pt=b"hsm data", ctx=None):
    ctx = ctx or {"app": "hsm"}
    enc = api.call("Encrypt", KeyId=key_id, Plaintext=b64(pt), EncryptionContext=ctx)
    dec = api.call("Decrypt", CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=ctx)
    assert unb64(dec["Plaintext"]) == pt
    assert dec["KeyId"] == key_id
    return enc


def admin(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(kms_bin()), "admin", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


# ------------------------------------------------------------------------------------------
def test_hsm_and_software_keys_side_by_side(hsm_server):
    api = ClassicApi(hsm_server)
    hsm = api.call("CreateKey", ProtectionLevel="HSM")["KeyMetadata"]
    soft = api.call("CreateKey")["KeyMetadata"]
    assert hsm["ProtectionLevel"] == "HSM" and hsm["KeyState"] == "Enabled"
    assert soft["ProtectionLevel"] == "SOFTWARE"
    assert api.call("DescribeKey", KeyId=hsm["KeyId"])["KeyMetadata"]["ProtectionLevel"] == "HSM"
    listed = api.call("ListKeys", Filters=json.dumps(
        [{"Key": "ProtectionLevel", "Values": ["HSM"]}]), PageSize=100)["Keys"]["Key"]
    assert hsm["KeyId"] in {k["KeyId"] for k in listed}
    assert soft["KeyId"] not in {k["KeyId"] for k in listed}

    enc = roundtrip(api, hsm["KeyId"])
    roundtrip(api, soft["KeyId"])
    # Same blob size and the same errors as a software key.
    soft_enc = api.call("Encrypt", KeyId=soft["KeyId"], Plaintext=b64(b"hsm data"),
                        EncryptionContext={"app": "hsm"})
    assert len(unb64(enc["CiphertextBlob"])) == len(unb64(soft_enc["CiphertextBlob"]))
    e1 = expect_error(lambda: api.call("Decrypt", CiphertextBlob=enc["CiphertextBlob"],
                                       EncryptionContext={"app": "other"}), "InvalidParameter", 400)
    e2 = expect_error(lambda: api.call("Decrypt", CiphertextBlob=soft_enc["CiphertextBlob"],
                                       EncryptionContext={"app": "other"}), "InvalidParameter", 400)
    assert e1.message == e2.message
    tampered = bytearray(unb64(enc["CiphertextBlob"]))
    tampered[-1] ^= 1
    expect_error(lambda: api.call("Decrypt", CiphertextBlob=b64(bytes(tampered)),
                                  EncryptionContext={"app": "hsm"}), "InvalidParameter", 400)

    # Data keys, ReEncrypt both ways.
    dk = api.call("GenerateDataKey", KeyId=hsm["KeyId"], NumberOfBytes=32)
    assert unb64(api.call("Decrypt", CiphertextBlob=dk["CiphertextBlob"])["Plaintext"]) == \
        unb64(dk["Plaintext"])
    nopt = api.call("GenerateDataKeyWithoutPlaintext", KeyId=hsm["KeyId"], NumberOfBytes=16)
    assert "Plaintext" not in nopt
    to_soft = api.call("ReEncrypt", CiphertextBlob=dk["CiphertextBlob"],
                       DestinationKeyId=soft["KeyId"])
    back = api.call("ReEncrypt", CiphertextBlob=to_soft["CiphertextBlob"],
                    DestinationKeyId=hsm["KeyId"])
    assert unb64(api.call("Decrypt", CiphertextBlob=back["CiphertextBlob"])["Plaintext"]) == \
        unb64(dk["Plaintext"])

    # A new version is a new token key; the old ciphertext still decrypts.
    v2 = api.call("CreateKeyVersion", KeyId=hsm["KeyId"])["KeyVersion"]["KeyVersionId"]
    enc2 = api.call("Encrypt", KeyId=hsm["KeyId"], Plaintext=b64(b"v2"))
    assert enc2["KeyVersionId"] == v2 != enc["KeyVersionId"]
    assert unb64(api.call("Decrypt", CiphertextBlob=enc["CiphertextBlob"],
                          EncryptionContext={"app": "hsm"})["Plaintext"]) == b"hsm data"

    # Disabled is refused like a software key.
    api.call("DisableKey", KeyId=hsm["KeyId"])
    expect_error(lambda: api.call("Encrypt", KeyId=hsm["KeyId"], Plaintext=b64(b"x")),
                 "Rejected.Disabled", 409)


def test_protection_level_hsm_without_an_hsm_is_refused(server):
    api = ClassicApi(server)
    e = expect_error(lambda: api.call("CreateKey", ProtectionLevel="HSM"),
                     "Unsupported.ProtectionLevel", 400)
    assert "No HSM is configured" in e.message
    expect_error(lambda: api.call("CreateKey", ProtectionLevel="hsm"), "InvalidParameter", 400)


@pytest.mark.parametrize("algorithm", SUPPORTED)
def test_byok_into_the_hsm(hsm_server, algorithm):
    api = ClassicApi(hsm_server)
    key = api.call("CreateKey", Origin="EXTERNAL", ProtectionLevel="HSM")["KeyMetadata"]
    assert key["KeyState"] == "PendingImport" and key["ProtectionLevel"] == "HSM"
    material = os.urandom(32)
    p = params(api, key["KeyId"], algorithm)
    # Wrong length and garbage give the one InvalidKeyMaterial error.
    for bad in (wrap_key_material(p["PublicKey"], material[:16], algorithm), b64(b"\x07" * 256)):
        expect_error(lambda: api.call("ImportKeyMaterial", KeyId=key["KeyId"],
                                      ImportToken=p["ImportToken"], EncryptedKeyMaterial=bad),
                     "InvalidKeyMaterial", 400)
    api.call("ImportKeyMaterial", KeyId=key["KeyId"], ImportToken=p["ImportToken"],
             EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], material, algorithm))
    md = api.call("DescribeKey", KeyId=key["KeyId"])["KeyMetadata"]
    assert md["KeyState"] == "Enabled" and md["ProtectionLevel"] == "HSM"
    enc = roundtrip(api, key["KeyId"], b"imported", {"a": "1"})
    # The token encrypted with exactly the imported material, in the ordinary blob format.
    assert blob_decrypt(material, enc["CiphertextBlob"], b'{"a":"1"}') == b"imported"

    # One material for life: after DeleteKeyMaterial only the same material goes back in.
    api.call("DeleteKeyMaterial", KeyId=key["KeyId"])
    expect_error(lambda: api.call("Encrypt", KeyId=key["KeyId"], Plaintext=b64(b"x")),
                 "Rejected.PendingImport", 409)
    p2 = params(api, key["KeyId"], algorithm)
    expect_error(lambda: api.call("ImportKeyMaterial", KeyId=key["KeyId"],
                                  ImportToken=p2["ImportToken"],
                                  EncryptedKeyMaterial=wrap_key_material(
                                      p2["PublicKey"], os.urandom(32), algorithm)),
                 "InvalidKeyMaterial", 400)
    # A token is bound to its key.
    other = api.call("CreateKey", Origin="EXTERNAL", ProtectionLevel="HSM")["KeyMetadata"]
    expect_error(lambda: api.call("ImportKeyMaterial", KeyId=other["KeyId"],
                                  ImportToken=p2["ImportToken"],
                                  EncryptedKeyMaterial=wrap_key_material(
                                      p2["PublicKey"], material, algorithm)),
                 "InvalidImportToken", 400)
    api.call("ImportKeyMaterial", KeyId=key["KeyId"], ImportToken=p2["ImportToken"],
             EncryptedKeyMaterial=wrap_key_material(p2["PublicKey"], material, algorithm))
    assert unb64(api.call("Decrypt", CiphertextBlob=enc["CiphertextBlob"],
                          EncryptionContext={"a": "1"})["Plaintext"]) == b"imported"
    hsm_server.imported = getattr(hsm_server, "imported", []) + [material]


@pytest.mark.parametrize("algorithm", UNSUPPORTED)
def test_unsupported_wrapping_algorithm_is_refused_by_name(hsm_server, algorithm):
    api = ClassicApi(hsm_server)
    key = api.call("CreateKey", Origin="EXTERNAL", ProtectionLevel="HSM")["KeyMetadata"]
    e = expect_error(lambda: params(api, key["KeyId"], algorithm), "InvalidParameter", 400)
    assert algorithm in e.message and "HSM" in e.message
    # A software key still takes it.
    soft = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]
    import_into(api, soft["KeyId"], os.urandom(32), algorithm)


def test_imported_material_is_nowhere_outside_the_token(hsm_server):
    materials = getattr(hsm_server, "imported", [])
    if len(materials) < len(SUPPORTED):
        pytest.skip("needs test_byok_into_the_hsm first")
    files = [p for p in Path(hsm_server.data_dir).rglob("*") if p.is_file()]
    files += [p for p in Path(hsm_server.log_dir).rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert "kms.db" in names
    blobs = [(p, p.read_bytes()) for p in files]
    # The search works: what is stored in clear (the access key id) is found.
    assert any(hsm_server.ak.encode() in data for _, data in blobs)
    for m in materials:
        forms = [m, base64.b64encode(m), m.hex().encode(), m.hex().upper().encode(),
                 base64.urlsafe_b64encode(m)]
        for path, data in blobs:
            for f in forms:
                assert f not in data, f"imported material found in {path}"


def test_restart_with_the_token_present_and_absent(kms_binary, tmp_path):
    env = make_token(tmp_path / "hsm", "kms-restart")
    srv = KmsServer(tmp_path / "data", tmp_path / "logs", extra_env=env)
    srv.start()
    api = ClassicApi(srv)
    key = api.call("CreateKey", ProtectionLevel="HSM")["KeyMetadata"]
    enc = roundtrip(api, key["KeyId"])
    srv.restart()
    assert unb64(api.call("Decrypt", CiphertextBlob=enc["CiphertextBlob"],
                          EncryptionContext={"app": "hsm"})["Plaintext"]) == b"hsm data"
    srv.stop()
    # The token absent: start-up fails and says which token is missing.
    srv.extra_env = {**env, "KMS_HSM_TOKEN_LABEL": "no-such-token"}
    with pytest.raises(ServerStartError) as e:
        srv.start()
    assert 'the HSM token "no-such-token" is absent' in str(e.value)
    # A wrong PIN.
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("not-the-pin\n")
    srv.extra_env = {**env, "KMS_HSM_PIN_FILE": str(wrong)}
    with pytest.raises(ServerStartError) as e:
        srv.start()
    assert "CKR_PIN_INCORRECT" in str(e.value)
    # The module missing.
    srv.extra_env = {**env, "KMS_HSM_MODULE": str(tmp_path / "missing.so")}
    with pytest.raises(ServerStartError) as e:
        srv.start()
    assert "does not exist" in str(e.value)
    # No HSM configured at all: software keys work; the HSM key answers 503, naming the HSM.
    srv.extra_env = {}
    srv.start()
    e = expect_error(lambda: api.call("Decrypt", CiphertextBlob=enc["CiphertextBlob"],
                                      EncryptionContext={"app": "hsm"}),
                     "ServiceUnavailableTemporary", 503)
    assert "HSM" in e.message
    srv.stop()


def test_token_removed_mid_run_gives_a_clear_error_not_a_hang(kms_binary, tmp_path):
    env = make_token(tmp_path / "hsm", "kms-removal")
    srv = KmsServer(tmp_path / "data", tmp_path / "logs", extra_env=env)
    srv.start()
    api = ClassicApi(srv)
    key = api.call("CreateKey", ProtectionLevel="HSM")["KeyMetadata"]
    soft = api.call("CreateKey")["KeyMetadata"]
    enc = roundtrip(api, key["KeyId"])
    tokens, away = tmp_path / "hsm" / "tokens", tmp_path / "hsm" / "away"
    shutil.move(str(tokens), str(away))  # SoftHSM2's token is its directory
    started = time.monotonic()
    e = expect_error(lambda: api.call("Encrypt", KeyId=key["KeyId"], Plaintext=b64(b"x")),
                     "ServiceUnavailableTemporary", 503)
    assert "HSM" in e.message and "removed" in e.message
    expect_error(lambda: api.call("Decrypt", CiphertextBlob=enc["CiphertextBlob"],
                                  EncryptionContext={"app": "hsm"}),
                 "ServiceUnavailableTemporary", 503)
    assert time.monotonic() - started < 5
    roundtrip(api, soft["KeyId"])  # software keys are not affected
    srv.stop()
    # The token back: a restart serves the key again.
    shutil.move(str(away), str(tokens))
    srv.start()
    assert unb64(api.call("Decrypt", CiphertextBlob=enc["CiphertextBlob"],
                          EncryptionContext={"app": "hsm"})["Plaintext"]) == b"hsm data"
    srv.stop()


def test_migrate_to_an_hsm_root_and_back(kms_binary, tmp_path):
    env = make_token(tmp_path / "hsm", "kms-root")
    data = tmp_path / "data"
    srv = KmsServer(data, tmp_path / "logs", extra_env=env)
    srv.start()
    api = ClassicApi(srv)
    soft = api.call("CreateKey")["KeyMetadata"]
    hsm = api.call("CreateKey", ProtectionLevel="HSM")["KeyMetadata"]
    ext = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]
    import_into(api, ext["KeyId"], os.urandom(32), "RSAES_OAEP_SHA_256")
    old = [(k["KeyId"], roundtrip(api, k["KeyId"])["CiphertextBlob"])
           for k in (soft, hsm, ext)]
    srv.stop()
    root = (data / "root.key").read_bytes()

    r = admin(env, "hsm-root", "to-hsm", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    assert not (data / "root.key").exists()
    sealed = (data / "root.key.hsm").read_text()
    assert root.hex() not in sealed and base64.b64encode(root).decode() not in sealed
    r = admin(env, "hsm-root", "to-hsm", "--data-dir", str(data))
    assert r.returncode != 0 and "already held by an HSM" in r.stderr
    assert "held by the HSM and unseals" in admin(env, "hsm-root", "status", "--data-dir",
                                                   str(data)).stdout

    srv.start()
    for key_id, blob in old:  # every old ciphertext still decrypts
        dec = api.call("Decrypt", CiphertextBlob=blob, EncryptionContext={"app": "hsm"})
        assert (dec["KeyId"], unb64(dec["Plaintext"])) == (key_id, b"hsm data")
    srv.stop()

    # Without the HSM the data dir cannot be opened, and the server says why.
    srv.extra_env = {}
    with pytest.raises(ServerStartError) as e:
        srv.start()
    assert "root key is held by the HSM token" in str(e.value)
    # The token lost (an empty token directory): the same, naming the token.
    lost = make_token(tmp_path / "other-hsm", "unrelated")
    srv.extra_env = {**env, "SOFTHSM2_CONF": lost["SOFTHSM2_CONF"]}
    with pytest.raises(ServerStartError) as e:
        srv.start()
    assert '"kms-root" is absent' in str(e.value)

    # Back to a file root only with the explicit flag.
    r = admin(env, "hsm-root", "from-hsm", "--data-dir", str(data))
    assert r.returncode != 0 and "--i-understand-the-root-key-leaves-the-hsm" in r.stderr
    r = admin(env, "hsm-root", "from-hsm", "--data-dir", str(data),
              "--i-understand-the-root-key-leaves-the-hsm")
    assert r.returncode == 0, r.stderr
    assert (data / "root.key").read_bytes() == root
    srv.extra_env = env
    srv.start()
    for key_id, blob in old:
        dec = api.call("Decrypt", CiphertextBlob=blob, EncryptionContext={"app": "hsm"})
        assert unb64(dec["Plaintext"]) == b"hsm data"
    srv.stop()
