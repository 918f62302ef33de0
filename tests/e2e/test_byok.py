"""BYOK (Origin=EXTERNAL): GetParametersForImport / ImportKeyMaterial / DeleteKeyMaterial (reference §3.4-3.7)."""
import datetime as dt
import os
import shutil
import subprocess
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from kms_helpers import (UUID_RE, WRAPPING_ALGORITHMS, assert_date_near, assert_key_metadata, b64,
                         expect_error, fmt_date, load_public_key, unb64, wrap_key_material)


def external_key(api) -> dict:
    md = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]
    assert md["KeyState"] == "PendingImport"
    return md


def params_for_import(api, key_id, algorithm="RSAES_OAEP_SHA_256") -> dict:
    return api.call("GetParametersForImport", KeyId=key_id, WrappingAlgorithm=algorithm,
                    WrappingKeySpec="RSA_2048")


def do_import(api, key_id, p, material, algorithm="RSAES_OAEP_SHA_256", expire=0):
    return api.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p["ImportToken"],
                    EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], material, algorithm),
                    KeyMaterialExpireUnix=expire)


def import_material(api, key_id, material, algorithm="RSAES_OAEP_SHA_256", expire=0):
    return do_import(api, key_id, params_for_import(api, key_id, algorithm), material, algorithm, expire)


def describe(api, key_id):
    return api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]


def roundtrip(api, key_id, pt=b"byok data") -> str:
    enc = api.call("Encrypt", KeyId=key_id, Plaintext=b64(pt), EncryptionContext={"byok": "1"})
    assert enc["KeyId"] == key_id
    dec = api.call("Decrypt", CiphertextBlob=enc["CiphertextBlob"], EncryptionContext={"byok": "1"})
    assert unb64(dec["Plaintext"]) == pt
    return enc["CiphertextBlob"]


# ------------------------------------------------------------------------------------------
# happy path
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", WRAPPING_ALGORITHMS)
def test_byok_full_flow(api, server, algorithm):
    md = external_key(api)
    key_id = md["KeyId"]
    assert UUID_RE.match(md["PrimaryKeyVersion"])

    p = params_for_import(api, key_id, algorithm)
    assert p["KeyId"] == key_id
    assert isinstance(p["ImportToken"], str) and p["ImportToken"]
    assert isinstance(p["RequestId"], str) and p["RequestId"]
    pub = load_public_key(p["PublicKey"])  # base64 DER SubjectPublicKeyInfo
    assert isinstance(pub, rsa.RSAPublicKey)
    assert pub.key_size == 2048
    assert pub.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == unb64(p["PublicKey"])
    assert_date_near(p["TokenExpireTime"], server.now() + dt.timedelta(hours=24), 30)

    material = os.urandom(32)
    resp = do_import(api, key_id, p, material, algorithm)
    assert set(resp) == {"RequestId"}, resp
    d = describe(api, key_id)
    assert_key_metadata(d, state="Enabled", origin="EXTERNAL")
    assert d["MaterialExpireTime"] == ""
    assert d["PrimaryKeyVersion"] == md["PrimaryKeyVersion"]

    blob = roundtrip(api, key_id)
    enc = api.call("Encrypt", KeyId=key_id, Plaintext=b64(b"v"))
    assert enc["KeyVersionId"] == md["PrimaryKeyVersion"]
    gdk = api.call("GenerateDataKey", KeyId=key_id, KeySpec="AES_256")
    assert unb64(api.call("Decrypt", CiphertextBlob=gdk["CiphertextBlob"])["Plaintext"]) == unb64(gdk["Plaintext"])
    assert blob


def test_import_without_expire_param(capi):
    key_id = external_key(capi)["KeyId"]
    p = params_for_import(capi, key_id)
    capi.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p["ImportToken"],
              EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], os.urandom(32), "RSAES_OAEP_SHA_256"))
    d = describe(capi, key_id)
    assert d["KeyState"] == "Enabled"
    assert d["MaterialExpireTime"] == ""


def test_import_with_expiry_shows_material_expire_time(api, server):
    key_id = external_key(api)["KeyId"]
    expire = int(server.now().timestamp()) + 7 * 86400
    import_material(api, key_id, os.urandom(32), expire=expire)
    d = describe(api, key_id)
    assert d["KeyState"] == "Enabled"
    assert d["MaterialExpireTime"] == fmt_date(dt.datetime.fromtimestamp(expire, dt.timezone.utc))


def test_import_past_expiry_rejected(api, server):
    key_id = external_key(api)["KeyId"]
    past = int(server.now().timestamp()) - 3600
    p = params_for_import(api, key_id)
    expect_error(lambda: do_import(api, key_id, p, os.urandom(32), expire=past), "InvalidParameter", 400)
    assert describe(api, key_id)["KeyState"] == "PendingImport"


def test_each_call_new_pair_and_old_token_still_works(api):
    key_id = external_key(api)["KeyId"]
    p1 = params_for_import(api, key_id)
    p2 = params_for_import(api, key_id)
    assert p1["PublicKey"] != p2["PublicKey"]
    assert p1["ImportToken"] != p2["ImportToken"]
    material = os.urandom(32)
    do_import(api, key_id, p1, material)  # token #1 after fetching #2
    assert describe(api, key_id)["KeyState"] == "Enabled"
    do_import(api, key_id, p2, material)  # token #2 too; same material re-import is allowed
    assert describe(api, key_id)["KeyState"] == "Enabled"
    do_import(api, key_id, p1, material)  # a token may be reused within its lifetime
    roundtrip(api, key_id)


def test_get_parameters_allowed_in_every_state(capi):
    key_id = external_key(capi)["KeyId"]
    params_for_import(capi, key_id)  # PendingImport
    import_material(capi, key_id, os.urandom(32))
    params_for_import(capi, key_id)  # Enabled
    capi.call("DisableKey", KeyId=key_id)
    params_for_import(capi, key_id)  # Disabled
    capi.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    p = params_for_import(capi, key_id)  # PendingDeletion
    assert p["KeyId"] == key_id


# ------------------------------------------------------------------------------------------
# parameter / origin / token errors
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm,spec", [
    ("RSAES_OAEP_SHA_512", "RSA_2048"),
    ("rsaes_oaep_sha_256", "RSA_2048"),
    ("SM2PKE", "RSA_2048"),
    ("RSAES_OAEP_SHA_256", "RSA_1024"),
    ("RSAES_OAEP_SHA_256", "RSA_4096x"),
])
def test_get_parameters_bad_algorithm_or_spec(capi, algorithm, spec):
    key_id = external_key(capi)["KeyId"]
    params = dict(KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec=spec)
    expect_error(lambda: capi.call("GetParametersForImport", **params), "InvalidParameter", 400)


def test_non_external_key_unsupported_origin(api):
    normal = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    ext = external_key(api)["KeyId"]
    p = params_for_import(api, ext)
    expect_error(lambda: params_for_import(api, normal), "Unsupported.Origin", 400)
    expect_error(lambda: do_import(api, normal, p, os.urandom(32)), "Unsupported.Origin", 400)
    expect_error(lambda: api.call("DeleteKeyMaterial", KeyId=normal), "Unsupported.Origin", 400)
    assert describe(api, normal)["KeyState"] == "Enabled"


def test_unknown_key(api):
    expect_error(lambda: params_for_import(api, str(uuid.uuid4())), "Forbidden.KeyNotFound", 404)
    expect_error(lambda: api.call("DeleteKeyMaterial", KeyId=str(uuid.uuid4())), "Forbidden.KeyNotFound", 404)


def _alter_token(token: str) -> str:
    raw = bytearray(unb64(token))
    raw[len(raw) // 2] ^= 0x01
    return b64(bytes(raw))


@pytest.mark.parametrize("kind", ["other_key", "garbage_b64", "not_b64", "altered", "altered_last", "empty_bytes"])
def test_invalid_import_token(api, kind):
    key_id = external_key(api)["KeyId"]
    p = params_for_import(api, key_id)
    token = p["ImportToken"]
    if kind == "other_key":
        other = external_key(api)["KeyId"]
        po = params_for_import(api, other)
        token, pub = po["ImportToken"], po["PublicKey"]
    else:
        pub = p["PublicKey"]
        if kind == "garbage_b64":
            token = b64(os.urandom(64))
        elif kind == "not_b64":
            token = "this is not a token!"
        elif kind == "altered":
            token = _alter_token(token)
        elif kind == "altered_last":
            raw = bytearray(unb64(token))
            raw[-1] ^= 0x80
            token = b64(bytes(raw))
        elif kind == "empty_bytes":
            token = "AAAA"
    enc = wrap_key_material(pub, os.urandom(32), "RSAES_OAEP_SHA_256")
    expect_error(lambda: api.call("ImportKeyMaterial", KeyId=key_id, ImportToken=token,
                                  EncryptedKeyMaterial=enc, KeyMaterialExpireUnix=0),
                 "InvalidImportToken", 400)
    assert describe(api, key_id)["KeyState"] == "PendingImport"


# ------------------------------------------------------------------------------------------
# InvalidKeyMaterial: every failure after the token is accepted, one identical message
# ------------------------------------------------------------------------------------------
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_PUB_B64 = b64(OTHER_RSA.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


def _bad_material(case, p, algorithm):
    pub = p["PublicKey"]
    if case == "random_bytes":
        return b64(os.urandom(256))
    if case == "bad_padding":
        # a valid RSA input (< modulus) that is not correctly padded for any scheme
        n = load_public_key(pub).public_numbers().n
        m = int.from_bytes(os.urandom(255), "big") % n
        return b64(pow(m, 65537, n).to_bytes(256, "big"))
    if case == "other_public_key":
        return wrap_key_material(OTHER_PUB_B64, os.urandom(32), algorithm)
    if case == "wrong_algorithm":
        other = {"RSAES_OAEP_SHA_256": "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_1": "RSAES_OAEP_SHA_256",
                 "RSAES_PKCS1_V1_5": "RSAES_OAEP_SHA_256"}[algorithm]
        return wrap_key_material(pub, os.urandom(32), other)
    if case == "wrong_algorithm_pkcs1":
        if algorithm == "RSAES_PKCS1_V1_5":
            return wrap_key_material(pub, os.urandom(32), "RSAES_OAEP_SHA_1")
        return wrap_key_material(pub, os.urandom(32), "RSAES_PKCS1_V1_5")
    if case.startswith("len_"):
        return wrap_key_material(pub, os.urandom(int(case[4:])), algorithm)
    if case == "short_blob":
        return b64(os.urandom(16))
    raise ValueError(case)


BAD_CASES = ["random_bytes", "bad_padding", "other_public_key", "wrong_algorithm", "wrong_algorithm_pkcs1",
             "len_16", "len_31", "len_33", "len_64", "len_1", "short_blob"]


@pytest.fixture(scope="module")
def reference_invalid_material_message(server):
    """The InvalidKeyMaterial message for plain garbage; every other failure must say the same."""
    from kms_helpers import ClassicApi
    capi = ClassicApi(server)
    key_id = external_key(capi)["KeyId"]
    p = params_for_import(capi, key_id)
    e = expect_error(lambda: capi.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p["ImportToken"],
                                       EncryptedKeyMaterial=b64(os.urandom(256)), KeyMaterialExpireUnix=0),
                     "InvalidKeyMaterial", 400)
    return e.message


@pytest.mark.parametrize("algorithm", WRAPPING_ALGORITHMS)
@pytest.mark.parametrize("case", BAD_CASES)
def test_invalid_key_material(capi, reference_invalid_material_message, algorithm, case):
    key_id = external_key(capi)["KeyId"]
    p = params_for_import(capi, key_id, algorithm)
    enc = _bad_material(case, p, algorithm)
    e = expect_error(lambda: capi.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p["ImportToken"],
                                       EncryptedKeyMaterial=enc, KeyMaterialExpireUnix=0),
                     "InvalidKeyMaterial", 400)
    assert e.message == reference_invalid_material_message, "error message differs between failure causes"
    d = describe(capi, key_id)
    assert d["KeyState"] == "PendingImport"
    assert d["MaterialExpireTime"] == ""


@pytest.mark.parametrize("flavour_state", ["Enabled", "PendingImport", "Disabled"])
def test_different_material_rejected_when_bound(capi, reference_invalid_material_message, flavour_state):
    key_id = external_key(capi)["KeyId"]
    m1 = os.urandom(32)
    import_material(capi, key_id, m1)
    blob = roundtrip(capi, key_id)
    if flavour_state == "PendingImport":
        capi.call("DeleteKeyMaterial", KeyId=key_id)
    elif flavour_state == "Disabled":
        capi.call("DisableKey", KeyId=key_id)
    assert describe(capi, key_id)["KeyState"] == flavour_state
    e = expect_error(lambda: import_material(capi, key_id, os.urandom(32)), "InvalidKeyMaterial", 400)
    assert e.message == reference_invalid_material_message
    assert describe(capi, key_id)["KeyState"] == flavour_state
    if flavour_state == "Enabled":
        # the bound material is still in use
        assert unb64(capi.call("Decrypt", CiphertextBlob=blob, EncryptionContext={"byok": "1"})["Plaintext"]) == b"byok data"


def test_tea_invalid_key_material(server):
    from kms_helpers import make_api
    api = make_api("tea_v3", server)
    key_id = external_key(api)["KeyId"]
    p = params_for_import(api, key_id)
    enc = wrap_key_material(p["PublicKey"], os.urandom(16), "RSAES_OAEP_SHA_256")
    expect_error(lambda: api.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p["ImportToken"],
                                  EncryptedKeyMaterial=enc, KeyMaterialExpireUnix=0), "InvalidKeyMaterial", 400)


# ------------------------------------------------------------------------------------------
# DeleteKeyMaterial and re-import
# ------------------------------------------------------------------------------------------
def test_delete_and_reimport_material(api):
    key_id = external_key(api)["KeyId"]
    material = os.urandom(32)
    import_material(api, key_id, material, "RSAES_OAEP_SHA_1")
    blob = roundtrip(api, key_id, b"before delete")
    resp = api.call("DeleteKeyMaterial", KeyId=key_id)
    assert set(resp) == {"RequestId"}
    d = describe(api, key_id)
    assert d["KeyState"] == "PendingImport"
    assert d["MaterialExpireTime"] == ""
    expect_error(lambda: api.call("Encrypt", KeyId=key_id, Plaintext=b64(b"x")), "Rejected.PendingImport", 409)
    expect_error(lambda: api.call("Decrypt", CiphertextBlob=blob, EncryptionContext={"byok": "1"}),
                 "Rejected.PendingImport", 409)
    expect_error(lambda: import_material(api, key_id, os.urandom(32)), "InvalidKeyMaterial", 400)
    assert describe(api, key_id)["KeyState"] == "PendingImport"
    # same material, different wrapping algorithm: fine
    import_material(api, key_id, material, "RSAES_PKCS1_V1_5")
    assert describe(api, key_id)["KeyState"] == "Enabled"
    dec = api.call("Decrypt", CiphertextBlob=blob, EncryptionContext={"byok": "1"})
    assert unb64(dec["Plaintext"]) == b"before delete"


def test_delete_material_twice_and_before_import(capi):
    key_id = external_key(capi)["KeyId"]
    capi.call("DeleteKeyMaterial", KeyId=key_id)  # nothing imported yet: allowed, stays PendingImport
    assert describe(capi, key_id)["KeyState"] == "PendingImport"
    import_material(capi, key_id, os.urandom(32))
    capi.call("DeleteKeyMaterial", KeyId=key_id)
    capi.call("DeleteKeyMaterial", KeyId=key_id)
    assert describe(capi, key_id)["KeyState"] == "PendingImport"


def test_delete_material_in_pending_deletion(api):
    key_id = external_key(api)["KeyId"]
    import_material(api, key_id, os.urandom(32))
    api.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=10)
    before = describe(api, key_id)
    assert before["KeyState"] == "PendingDeletion"
    api.call("DeleteKeyMaterial", KeyId=key_id)
    after = describe(api, key_id)
    assert after["KeyState"] == "PendingDeletion"
    assert after["DeleteDate"] == before["DeleteDate"]
    assert after["MaterialExpireTime"] == ""
    # cancelling now returns to PendingImport since there is no material
    api.call("CancelKeyDeletion", KeyId=key_id)
    assert describe(api, key_id)["KeyState"] == "PendingImport"


def test_cancel_deletion_external_states(api):
    never = external_key(api)["KeyId"]
    api.call("ScheduleKeyDeletion", KeyId=never, PendingWindowInDays=7)
    api.call("CancelKeyDeletion", KeyId=never)
    assert describe(api, never)["KeyState"] == "PendingImport"

    with_material = external_key(api)["KeyId"]
    import_material(api, with_material, os.urandom(32))
    api.call("ScheduleKeyDeletion", KeyId=with_material, PendingWindowInDays=7)
    api.call("CancelKeyDeletion", KeyId=with_material)
    assert describe(api, with_material)["KeyState"] == "Enabled"
    roundtrip(api, with_material)


def test_import_in_pending_deletion_rejected(api):
    key_id = external_key(api)["KeyId"]
    material = os.urandom(32)
    import_material(api, key_id, material)
    api.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    p = params_for_import(api, key_id)
    expect_error(lambda: do_import(api, key_id, p, material), "Rejected.StateModifiedFailed", 409)
    assert describe(api, key_id)["KeyState"] == "PendingDeletion"


def test_same_material_two_keys_independent(api):
    material = os.urandom(32)
    a = external_key(api)["KeyId"]
    b = external_key(api)["KeyId"]
    import_material(api, a, material)
    import_material(api, b, material, "RSAES_OAEP_SHA_1")
    blob_a = api.call("Encrypt", KeyId=a, Plaintext=b64(b"from A"))["CiphertextBlob"]
    blob_b = api.call("Encrypt", KeyId=b, Plaintext=b64(b"from B"))["CiphertextBlob"]
    da = api.call("Decrypt", CiphertextBlob=blob_a)
    assert da["KeyId"] == a and unb64(da["Plaintext"]) == b"from A"
    assert api.call("Decrypt", CiphertextBlob=blob_b)["KeyId"] == b
    # A's ciphertext is bound to A: with A unusable it does not fall back to B
    api.call("DisableKey", KeyId=a)
    expect_error(lambda: api.call("Decrypt", CiphertextBlob=blob_a), "Rejected.Disabled", 409)
    api.call("EnableKey", KeyId=a)
    api.call("DeleteKeyMaterial", KeyId=a)
    expect_error(lambda: api.call("Decrypt", CiphertextBlob=blob_a), "Rejected.PendingImport", 409)
    assert api.call("Decrypt", CiphertextBlob=blob_b)["KeyId"] == b
    # A blob re-targeted at B (A's key/version ids swapped for B's, in text or binary UUID form) must not
    # decrypt under B although B holds the same material: the key identity is bound into the ciphertext.
    md_a, md_b = describe(api, a), describe(api, b)
    raw_a = unb64(blob_a)
    forged = raw_a
    for x, y in ((md_a["KeyId"], md_b["KeyId"]), (md_a["PrimaryKeyVersion"], md_b["PrimaryKeyVersion"])):
        forged = forged.replace(x.encode(), y.encode()).replace(uuid.UUID(x).bytes, uuid.UUID(y).bytes)
    assert forged != raw_a, "the blob names its key neither as text nor as UUID bytes"
    e = expect_error(lambda: api.call("Decrypt", CiphertextBlob=b64(forged)), "InvalidParameter", 400)
    assert "CiphertextBlob" in e.message


# ------------------------------------------------------------------------------------------
# the documented openssl CLI commands
# ------------------------------------------------------------------------------------------
OPENSSL = shutil.which("openssl")


@pytest.mark.parametrize("algorithm", WRAPPING_ALGORITHMS)
def test_openssl_cli_wrapping(capi, tmp_path, algorithm):
    assert OPENSSL, "openssl CLI not found"
    key_id = external_key(capi)["KeyId"]
    p = params_for_import(capi, key_id, algorithm)

    def run(*args):
        subprocess.run([OPENSSL, *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "PublicKey_base64.txt").write_text(p["PublicKey"])
    run("rand", "-out", "KeyMaterial.bin", "32")
    run("enc", "-d", "-base64", "-A", "-in", "PublicKey_base64.txt", "-out", "PublicKey.bin")
    if algorithm == "RSAES_OAEP_SHA_1":
        run("rsautl", "-encrypt", "-in", "KeyMaterial.bin", "-oaep", "-inkey", "PublicKey.bin",
            "-keyform", "DER", "-pubin", "-out", "EncryptedKeyMaterial.bin")
    elif algorithm == "RSAES_OAEP_SHA_256":
        run("pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", "PublicKey.bin",
            "-in", "KeyMaterial.bin", "-out", "EncryptedKeyMaterial.bin",
            "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256",
            "-pkeyopt", "rsa_mgf1_md:sha256")
    else:
        run("pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", "PublicKey.bin",
            "-in", "KeyMaterial.bin", "-out", "EncryptedKeyMaterial.bin", "-pkeyopt", "rsa_padding_mode:pkcs1")
    run("enc", "-e", "-base64", "-A", "-in", "EncryptedKeyMaterial.bin", "-out", "EncryptedKeyMaterial_base64.txt")
    enc = (tmp_path / "EncryptedKeyMaterial_base64.txt").read_text().strip()
    assert len(unb64(enc)) == 256

    capi.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p["ImportToken"], EncryptedKeyMaterial=enc,
              KeyMaterialExpireUnix=0)
    assert describe(capi, key_id)["KeyState"] == "Enabled"
    roundtrip(capi, key_id, b"openssl " + algorithm.encode())
    # the same material (read back from disk) re-imports into the key; other material does not
    material = (tmp_path / "KeyMaterial.bin").read_bytes()
    capi.call("DeleteKeyMaterial", KeyId=key_id)
    import_material(capi, key_id, material, algorithm)
    assert describe(capi, key_id)["KeyState"] == "Enabled"
