"""China's national algorithms (issue 17, SM half): Aliyun_SM4 keys (Encrypt, Decrypt,
GenerateDataKey*, ReEncrypt, versions, states), SM4 import wrapped with SM2PKE under an EC_SM2
key via the published openssl command sequence (and RSA wrappings), `kms wrap --algorithm
SM2PKE` checked by openssl, and account isolation.

Independent checks: openssl (SM2PKE encryption / decryption) and Python `cryptography`
(SM4-GCM, which opens our Aliyun_SM4 blobs with the imported material and the documented
blob layout). One shared server for the module.
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import uuid

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from kms_helpers import (RawClient, b64, expect_error, kms_bin, make_api, unb64,
                         wrap_key_material)

SM2_SPKI_PREFIX = "MFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAE"  # id-ecPublicKey + sm2 curve
SDKS = ("classic", "tea_v3")


def openssl_has_sm2() -> bool:
    if shutil.which("openssl") is None:
        return False
    out = subprocess.run(["openssl", "list", "-public-key-algorithms"], capture_output=True, text=True)
    return out.returncode == 0 and "SM2" in out.stdout


needs_sm2 = pytest.mark.skipif(not openssl_has_sm2(), reason="openssl without SM2")


def openssl(*args, cwd=None) -> bytes:
    p = subprocess.run(["openssl", *args], capture_output=True, cwd=cwd, timeout=60)
    assert p.returncode == 0, f"openssl {args}: {p.stderr.decode()}"
    return p.stdout


@pytest.fixture(params=SDKS)
def sdk(request, server):
    return make_api(request.param, server)


def create(api, **params) -> dict:
    return api.call("CreateKey", **params)["KeyMetadata"]


def sm4_key(api, **params) -> str:
    md = create(api, KeySpec="Aliyun_SM4", **params)
    assert md["KeySpec"] == "Aliyun_SM4"
    assert md["KeyUsage"] == "ENCRYPT/DECRYPT"
    return md["KeyId"]


def open_sm4_blob(material: bytes, blob: bytes, context: bytes = b"") -> bytes:
    """Decrypts an Aliyun_SM4 ciphertext blob with SM4-GCM from Python `cryptography`, using
    only the layout documented in keystore/blob.rs and the README."""
    assert blob[0] == 0x02, "format byte of SM4-GCM blobs"
    header, nonce, body, tag = blob[:33], blob[33:45], blob[45:-16], blob[-16:]
    aad = b"kms-blob-v1" + header + struct.pack(">I", len(context)) + context
    dec = Cipher(algorithms.SM4(material), modes.GCM(nonce, tag)).decryptor()
    dec.authenticate_additional_data(aad)
    return dec.update(body) + dec.finalize()


def sm2_params(api, key_id) -> dict:
    p = api.call("GetParametersForImport", KeyId=key_id, WrappingAlgorithm="SM2PKE",
                 WrappingKeySpec="EC_SM2")
    assert p["KeyId"] == key_id
    assert p["PublicKey"].startswith(SM2_SPKI_PREFIX), p["PublicKey"]
    assert len(unb64(p["PublicKey"])) == 91
    return p


def openssl_sm2pke_wrap(tmp_path, public_key_b64: str, material: bytes) -> bytes:
    """The published command sequence (reference §7.1), run as a user would."""
    (tmp_path / "KeyMaterial.bin").write_bytes(material)
    (tmp_path / "wrap_pub.der").write_bytes(unb64(public_key_b64))
    openssl("pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", "wrap_pub.der",
            "-in", "KeyMaterial.bin", "-out", "EncryptedKeyMaterial.bin", cwd=tmp_path)
    return (tmp_path / "EncryptedKeyMaterial.bin").read_bytes()


def der_to_raw_c1c3c2(der: bytes) -> bytes:
    """GM/T 0009 SEQUENCE{x, y, C3, C2} -> 04 || x || y || C3 || C2 (reference §6.6)."""
    def rd(b, i):
        t, ln = b[i], b[i + 1]
        i += 2
        if ln & 0x80:
            n = ln & 0x7F
            ln = int.from_bytes(b[i:i + n], "big")
            i += n
        return b[i:i + ln], i + ln
    seq, _ = rd(der, 0)
    out, i = [], 0
    while i < len(seq):
        v, i = rd(seq, i)
        out.append(v)
    x, y, c3, c2 = out
    f = lambda v: int.from_bytes(v, "big").to_bytes(32, "big")  # noqa: E731
    return b"\x04" + f(x) + f(y) + c3 + c2


# ------------------------------------------------------------------------------------------
# CreateKey / DescribeKey / ListKeys
# ------------------------------------------------------------------------------------------
def test_create_describe_and_list_sm4_keys(sdk):
    md = create(sdk, KeySpec="Aliyun_SM4", Description="sm4")
    assert (md["KeySpec"], md["KeyUsage"], md["KeyState"], md["Origin"]) == \
        ("Aliyun_SM4", "ENCRYPT/DECRYPT", "Enabled", "Aliyun_KMS")
    d = sdk.call("DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]
    assert d["KeySpec"] == "Aliyun_SM4" and d["PrimaryKeyVersion"] == md["PrimaryKeyVersion"]
    aes = create(sdk)["KeyId"]

    def listed(spec):
        out, page = [], 1
        while True:
            r = sdk.call("ListKeys", PageSize=100, PageNumber=page,
                         Filters=f'[{{"Key":"KeySpec","Values":["{spec}"]}}]')
            out += [k["KeyId"] for k in r["Keys"]["Key"]]
            if len(out) >= r["TotalCount"]:
                return out
            page += 1
    assert md["KeyId"] in listed("Aliyun_SM4") and aes not in listed("Aliyun_SM4")
    assert md["KeyId"] not in listed("Aliyun_AES_256")


@pytest.mark.parametrize("params", [
    {"KeySpec": "aliyun_sm4"},
    {"KeySpec": "Aliyun_SM4 "},
    {"KeySpec": "SM4"},
    {"KeySpec": "Aliyun_SM4", "KeyUsage": "SIGN/VERIFY"},
])
def test_create_key_bad_sm4_parameters(capi, params):
    expect_error(lambda: capi.call("CreateKey", **params), "InvalidParameter", 400)


# ------------------------------------------------------------------------------------------
# crypto with Aliyun_SM4 keys
# ------------------------------------------------------------------------------------------
def test_sm4_encrypt_decrypt_data_keys_and_re_encrypt(sdk):
    key = sm4_key(sdk)
    aes = create(sdk)["KeyId"]
    ctx = {"app": "sm", "n": "1"}
    enc = sdk.call("Encrypt", KeyId=key, Plaintext=b64(b"hello sm4"), EncryptionContext=ctx)
    blob = unb64(enc["CiphertextBlob"])
    assert blob[0] == 0x02 and len(blob) == 1 + 16 + 16 + 12 + 9 + 16
    assert uuid.UUID(bytes=blob[1:17]) == uuid.UUID(key)
    assert uuid.UUID(bytes=blob[17:33]) == uuid.UUID(enc["KeyVersionId"])
    dec = sdk.call("Decrypt", CiphertextBlob=enc["CiphertextBlob"], EncryptionContext={"n": "1", "app": "sm"})
    assert unb64(dec["Plaintext"]) == b"hello sm4"
    assert (dec["KeyId"], dec["KeyVersionId"]) == (key, enc["KeyVersionId"])
    expect_error(lambda: sdk.call("Decrypt", CiphertextBlob=enc["CiphertextBlob"]), "InvalidParameter", 400)
    # The format byte is authenticated: relabelled as an AES blob it does not open.
    expect_error(lambda: sdk.call("Decrypt", CiphertextBlob=b64(b"\x01" + blob[1:]), EncryptionContext=ctx),
                 "InvalidParameter", 400)

    for params, n in (({}, 32), ({"KeySpec": "AES_128"}, 16), ({"NumberOfBytes": 7}, 7)):
        g = sdk.call("GenerateDataKey", KeyId=key, **params)
        assert len(unb64(g["Plaintext"])) == n
        assert unb64(sdk.call("Decrypt", CiphertextBlob=g["CiphertextBlob"])["Plaintext"]) == unb64(g["Plaintext"])
    w = sdk.call("GenerateDataKeyWithoutPlaintext", KeyId=key, EncryptionContext=ctx)
    assert "Plaintext" not in w or not w.get("Plaintext")
    assert len(unb64(sdk.call("Decrypt", CiphertextBlob=w["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"])) == 32

    to_aes = sdk.call("ReEncrypt", CiphertextBlob=enc["CiphertextBlob"], DestinationKeyId=aes,
                      SourceEncryptionContext=ctx)
    assert to_aes["KeyId"] == aes and unb64(to_aes["CiphertextBlob"])[0] == 0x01
    back = sdk.call("ReEncrypt", CiphertextBlob=to_aes["CiphertextBlob"], DestinationKeyId=key,
                    DestinationEncryptionContext={"x": "y"})
    assert back["KeyId"] == key and unb64(back["CiphertextBlob"])[0] == 0x02
    assert unb64(sdk.call("Decrypt", CiphertextBlob=back["CiphertextBlob"],
                          EncryptionContext={"x": "y"})["Plaintext"]) == b"hello sm4"


def test_sm4_versions_and_rotation(capi):
    key = sm4_key(capi)
    old = capi.call("Encrypt", KeyId=key, Plaintext=b64(b"v1"))
    v2 = capi.call("CreateKeyVersion", KeyId=key)["KeyVersion"]["KeyVersionId"]
    assert capi.call("DescribeKey", KeyId=key)["KeyMetadata"]["PrimaryKeyVersion"] == v2
    new = capi.call("Encrypt", KeyId=key, Plaintext=b64(b"v2"))
    assert new["KeyVersionId"] == v2 != old["KeyVersionId"]
    assert unb64(capi.call("Decrypt", CiphertextBlob=old["CiphertextBlob"])["Plaintext"]) == b"v1"
    assert capi.call("ListKeyVersions", KeyId=key)["TotalCount"] == 2
    capi.call("UpdateRotationPolicy", KeyId=key, EnableAutomaticRotation=True, RotationInterval="30d")
    md = capi.call("DescribeKey", KeyId=key)["KeyMetadata"]
    assert (md["AutomaticRotation"], md["RotationInterval"]) == ("Enabled", "2592000s")
    rot = create(capi, KeySpec="Aliyun_SM4", EnableAutomaticRotation=True, RotationInterval="7d")
    assert rot["AutomaticRotation"] == "Enabled"


def test_sm4_state_matrix(capi):
    key = sm4_key(capi)
    other = sm4_key(capi)
    blob = capi.call("Encrypt", KeyId=key, Plaintext=b64(b"s"))["CiphertextBlob"]
    calls = {
        "Encrypt": lambda: capi.call("Encrypt", KeyId=key, Plaintext=b64(b"x")),
        "Decrypt": lambda: capi.call("Decrypt", CiphertextBlob=blob),
        "GenerateDataKey": lambda: capi.call("GenerateDataKey", KeyId=key),
        "GenerateDataKeyWithoutPlaintext": lambda: capi.call("GenerateDataKeyWithoutPlaintext", KeyId=key),
        "ReEncrypt(source)": lambda: capi.call("ReEncrypt", CiphertextBlob=blob, DestinationKeyId=other),
    }
    capi.call("DisableKey", KeyId=key)
    for name, fn in calls.items():
        expect_error(fn, "Rejected.Disabled", 409)
    capi.call("EnableKey", KeyId=key)
    for fn in calls.values():
        fn()
    capi.call("ScheduleKeyDeletion", KeyId=key, PendingWindowInDays=7)
    for fn in calls.values():
        expect_error(fn, "Rejected.PendingDeletion", 409)
    ext = create(capi, KeySpec="Aliyun_SM4", Origin="EXTERNAL")
    assert ext["KeyState"] == "PendingImport"
    expect_error(lambda: capi.call("Encrypt", KeyId=ext["KeyId"], Plaintext=b64(b"x")),
                 "Rejected.PendingImport", 409)
    expect_error(lambda: capi.call("CreateKeyVersion", KeyId=ext["KeyId"]), "Unsupported.Origin", 400)


# ------------------------------------------------------------------------------------------
# BYOK: SM4 material wrapped with SM2PKE (the published openssl sequence) or RSA
# ------------------------------------------------------------------------------------------
@needs_sm2
def test_sm4_import_with_the_published_openssl_sequence(sdk, tmp_path):
    key = create(sdk, KeySpec="Aliyun_SM4", Origin="EXTERNAL")["KeyId"]
    p = sm2_params(sdk, key)
    material = os.urandom(16)
    wrapped = openssl_sm2pke_wrap(tmp_path, p["PublicKey"], material)
    assert wrapped[0] == 0x30 and 118 <= len(wrapped) <= 124  # DER GM/T 0009 of 16 bytes
    assert sdk.call("ImportKeyMaterial", KeyId=key, ImportToken=p["ImportToken"],
                    EncryptedKeyMaterial=b64(wrapped), KeyMaterialExpireUnix=0).keys() == {"RequestId"}
    assert sdk.call("DescribeKey", KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"
    # The imported material is the SM4-GCM key of the blobs: Python cryptography opens them.
    enc = sdk.call("Encrypt", KeyId=key, Plaintext=b64(b"byok sm4"), EncryptionContext={"k": "v"})
    assert open_sm4_blob(material, unb64(enc["CiphertextBlob"]), b'{"k":"v"}') == b"byok sm4"
    g = sdk.call("GenerateDataKey", KeyId=key)
    assert open_sm4_blob(material, unb64(g["CiphertextBlob"])) == unb64(g["Plaintext"])
    # Re-import of the same material in raw C1C3C2 form (what the size limits hint Alibaba
    # uses) with a fresh token; the token may be reused within its lifetime.
    p2 = sm2_params(sdk, key)
    raw = der_to_raw_c1c3c2(openssl_sm2pke_wrap(tmp_path, p2["PublicKey"], material))
    assert raw[0] == 0x04 and len(raw) == 16 + 97
    sdk.call("ImportKeyMaterial", KeyId=key, ImportToken=p2["ImportToken"], EncryptedKeyMaterial=b64(raw),
             KeyMaterialExpireUnix=0)
    sdk.call("ImportKeyMaterial", KeyId=key, ImportToken=p2["ImportToken"], EncryptedKeyMaterial=b64(raw),
             KeyMaterialExpireUnix=0)
    assert unb64(sdk.call("Decrypt", CiphertextBlob=enc["CiphertextBlob"],
                          EncryptionContext={"k": "v"})["Plaintext"]) == b"byok sm4"


@needs_sm2
def test_sm4_import_refusals_are_not_an_oracle(capi, tmp_path):
    key = create(capi, KeySpec="Aliyun_SM4", Origin="EXTERNAL")["KeyId"]
    p = sm2_params(capi, key)

    def imp(blob: bytes, token=p["ImportToken"], key_id=key):
        return capi.call("ImportKeyMaterial", KeyId=key_id, ImportToken=token,
                         EncryptedKeyMaterial=b64(blob), KeyMaterialExpireUnix=0)

    good = openssl_sm2pke_wrap(tmp_path, p["PublicKey"], os.urandom(16))
    tampered = bytearray(good)
    tampered[-1] ^= 1
    too_long = openssl_sm2pke_wrap(tmp_path, p["PublicKey"], os.urandom(32))  # AES-sized
    messages = set()
    for bad in (bytes(tampered), too_long, good[:50], b"\x04" * 120, b"junk"):
        messages.add(expect_error(lambda: imp(bad), "InvalidKeyMaterial", 400).message)
    assert len(messages) == 1, messages  # one answer for every cause
    assert capi.call("DescribeKey", KeyId=key)["KeyMetadata"]["KeyState"] == "PendingImport"
    # The token is bound to its key.
    other = create(capi, KeySpec="Aliyun_SM4", Origin="EXTERNAL")["KeyId"]
    expect_error(lambda: imp(good, key_id=other), "InvalidImportToken", 400)
    imp(good)
    # One material for life: a different one, even correctly wrapped, is refused.
    p2 = sm2_params(capi, key)
    expect_error(lambda: imp(openssl_sm2pke_wrap(tmp_path, p2["PublicKey"], os.urandom(16)),
                             token=p2["ImportToken"]), "InvalidKeyMaterial", 400)


@pytest.mark.parametrize("algorithm", ("RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1", "RSAES_PKCS1_V1_5"))
def test_sm4_import_with_rsa_wrapping(capi, algorithm):
    key = create(capi, KeySpec="Aliyun_SM4", Origin="EXTERNAL")["KeyId"]
    p = capi.call("GetParametersForImport", KeyId=key, WrappingAlgorithm=algorithm, WrappingKeySpec="RSA_2048")
    material = os.urandom(16)
    expect_error(lambda: capi.call("ImportKeyMaterial", KeyId=key, ImportToken=p["ImportToken"],
                                   EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], os.urandom(32), algorithm),
                                   KeyMaterialExpireUnix=0), "InvalidKeyMaterial", 400)
    capi.call("ImportKeyMaterial", KeyId=key, ImportToken=p["ImportToken"],
              EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], material, algorithm), KeyMaterialExpireUnix=0)
    enc = capi.call("Encrypt", KeyId=key, Plaintext=b64(b"rsa-wrapped"))
    assert open_sm4_blob(material, unb64(enc["CiphertextBlob"])) == b"rsa-wrapped"


@needs_sm2
def test_aes_key_takes_sm2pke_wrapped_material(capi, tmp_path):
    key = create(capi, Origin="EXTERNAL")["KeyId"]
    p = sm2_params(capi, key)
    capi.call("ImportKeyMaterial", KeyId=key, ImportToken=p["ImportToken"],
              EncryptedKeyMaterial=b64(openssl_sm2pke_wrap(tmp_path, p["PublicKey"], os.urandom(32))),
              KeyMaterialExpireUnix=0)
    assert capi.call("DescribeKey", KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"


@pytest.mark.parametrize("algorithm,spec", [
    ("SM2PKE", "RSA_2048"),
    ("RSAES_OAEP_SHA_256", "EC_SM2"),
    ("RSAES_PKCS1_V1_5", "EC_SM2"),
    ("SM2PKE", "EC_SM3"),
    ("SM2PKE", "ec_sm2"),
    ("sm2pke", "EC_SM2"),
    ("SM2", "EC_SM2"),
])
def test_get_parameters_bad_sm2_combinations(capi, algorithm, spec):
    key = create(capi, KeySpec="Aliyun_SM4", Origin="EXTERNAL")["KeyId"]
    expect_error(lambda: capi.call("GetParametersForImport", KeyId=key, WrappingAlgorithm=algorithm,
                                   WrappingKeySpec=spec), "InvalidParameter", 400)


def test_get_parameters_sm2_needs_external(capi):
    key = sm4_key(capi)
    expect_error(lambda: capi.call("GetParametersForImport", KeyId=key, WrappingAlgorithm="SM2PKE",
                                   WrappingKeySpec="EC_SM2"), "Unsupported.Origin", 400)


# ------------------------------------------------------------------------------------------
# kms wrap / import-material with SM2PKE
# ------------------------------------------------------------------------------------------
@needs_sm2
def test_kms_wrap_sm2pke_is_read_by_openssl_and_imports(server, capi, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "KMS_"))}
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=server.ak, ALIBABA_CLOUD_ACCESS_KEY_SECRET=server.sk,
               KMS_ENDPOINT=f"http://127.0.0.1:{server.port}", KMS_CLI_CONFIG=str(tmp_path / "cli.toml"))
    material = os.urandom(16)
    (tmp_path / "m.bin").write_bytes(material)
    # Against an SM2 key openssl made: openssl decrypts what `kms wrap` wrote.
    openssl("genpkey", "-algorithm", "SM2", "-out", "sm2.pem", cwd=tmp_path)
    openssl("pkey", "-in", "sm2.pem", "-pubout", "-out", "sm2_pub.pem", cwd=tmp_path)
    out = subprocess.run([str(kms_bin()), "wrap", "--public-key", str(tmp_path / "sm2_pub.pem"),
                          "--algorithm", "SM2PKE", "--in", str(tmp_path / "m.bin")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (tmp_path / "w.bin").write_bytes(unb64(out.stdout.strip()))
    assert openssl("pkeyutl", "-decrypt", "-inkey", "sm2.pem", "-in", "w.bin", cwd=tmp_path) == material
    # End to end: import-material asks for EC_SM2 parameters itself.
    key = create(capi, KeySpec="Aliyun_SM4", Origin="EXTERNAL")["KeyId"]
    out = subprocess.run([str(kms_bin()), "import-material", "--key-id", key, "--material-file",
                          str(tmp_path / "m.bin"), "--algorithm", "SM2PKE"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    enc = capi.call("Encrypt", KeyId=key, Plaintext=b64(b"cli"))
    assert open_sm4_blob(material, unb64(enc["CiphertextBlob"])) == b"cli"
    # 17 bytes is neither an AES nor an SM4 key: refused locally (exit 2).
    (tmp_path / "bad.bin").write_bytes(os.urandom(17))
    out = subprocess.run([str(kms_bin()), "wrap", "--public-key", str(tmp_path / "sm2_pub.pem"),
                          "--algorithm", "SM2PKE", "--in", str(tmp_path / "bad.bin")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "16 bytes" in out.stderr


# ------------------------------------------------------------------------------------------
# account isolation
# ------------------------------------------------------------------------------------------
def test_another_account_cannot_use_sm4_keys(server, capi):
    key = sm4_key(capi)
    ext = create(capi, KeySpec="Aliyun_SM4", Origin="EXTERNAL")["KeyId"]
    blob = capi.call("Encrypt", KeyId=key, Plaintext=b64(b"mine"))["CiphertextBlob"]
    acct = server.new_account()
    intruder = RawClient(server, ak=acct["AccessKeyId"], sk=acct["AccessKeySecret"])
    for action, params in (
        ("Encrypt", {"KeyId": key, "Plaintext": b64(b"x")}),
        ("Decrypt", {"CiphertextBlob": blob}),
        ("GenerateDataKey", {"KeyId": key}),
        ("DescribeKey", {"KeyId": key}),
        ("GetParametersForImport", {"KeyId": ext, "WrappingAlgorithm": "SM2PKE", "WrappingKeySpec": "EC_SM2"}),
    ):
        r = intruder.call(action, params)
        assert (r.status, r.json["Code"]) == (404, "Forbidden.KeyNotFound"), (action, r.status, r.body)
    own = intruder.ok("CreateKey", {"KeySpec": "Aliyun_SM4"})["KeyMetadata"]["KeyId"]
    r = intruder.call("ReEncrypt", {"CiphertextBlob": blob, "DestinationKeyId": own})
    assert (r.status, r.json["Code"]) == (404, "Forbidden.KeyNotFound")


# ------------------------------------------------------------------------------------------
# web console: create an Aliyun_SM4 key, import SM4 material wrapped with SM2PKE
# ------------------------------------------------------------------------------------------
@needs_sm2
def test_console_creates_sm4_key_and_imports_with_sm2pke(kms_binary, tmp_path_factory, tmp_path):
    from pathlib import Path

    from test_console import (CHROMIUM, CHROMIUM_ARGS, ConsoleServer, expect, get_params_in_page,
                              import_in_page, playwright_api, wait_state)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found (scripts/install-deps.sh)", pytrace=False)
    srv = ConsoleServer(tmp_path_factory.mktemp("console-sm"))
    srv.start()
    try:
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            ctx = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 860})
            ctx.set_default_timeout(15000)
            page = ctx.new_page()
            page.goto(srv.console + "/console/signin")
            page.check("#kind-ak")
            page.fill("#access_key_id", srv.ak)
            page.fill("#access_key_secret", srv.sk)
            page.click("#signin-submit")
            page.wait_for_url(srv.console + "/console/keys")
            page.click("#create-key")
            page.fill("#ck-alias", "alias/console-sm4")
            page.select_option("#ck-spec", "Aliyun_SM4")
            page.click("#ck-advanced summary")
            page.check("#ck-origin-external")
            page.check("#ck-ack")
            page.click("#ck-confirm")
            page.wait_for_url("**/console/keys/*")
            key_id = page.locator("dd[data-field=KeyId]").inner_text()
            pub, token_file = get_params_in_page(page, tmp_path, "SM2PKE")
            assert pub.startswith(SM2_SPKI_PREFIX)
            page.click("#btn-get-params")
            page.select_option("#wrap-alg", "SM2PKE")
            expect(page.locator("#wrap-spec")).to_have_value("EC_SM2")
            commands = page.locator("#cmd-SM2PKE").inner_text()
            assert "openssl rand -out KeyMaterial.bin 16" in commands
            page.click("#dlg-params [data-close]")
            (tmp_path / "PublicKey_base64.txt").write_text(pub)
            run = subprocess.run(["bash", "-c", "set -euo pipefail\n" + commands], cwd=tmp_path,
                                 capture_output=True, text=True, timeout=60)
            assert run.returncode == 0, run.stdout + run.stderr
            import_in_page(page, tmp_path / "EncryptedKeyMaterial_base64.txt", token_file)
            wait_state(page, "Enabled")
            browser.close()
        api = make_api("classic", srv)
        md = api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]
        assert (md["KeySpec"], md["KeyState"]) == ("Aliyun_SM4", "Enabled")
        material = (tmp_path / "KeyMaterial.bin").read_bytes()
        enc = api.call("Encrypt", KeyId=key_id, Plaintext=b64(b"console"))
        assert open_sm4_blob(material, unb64(enc["CiphertextBlob"])) == b"console"
    finally:
        srv.stop()


# ------------------------------------------------------------------------------------------
# EC_SM2 key pairs: GetPublicKey, SM2DSA, SM2PKE, data-key export (after the asym merge)
# ------------------------------------------------------------------------------------------
SM2_A = "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC"
SM2_B = "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93"
SM2_XG = "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"
SM2_YG = "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0"


def sm3(data: bytes) -> bytes:
    import hashlib
    return hashlib.new("sm3", data).digest()


def sm2_e(public_der: bytes, message: bytes, uid: bytes = b"1234567812345678") -> bytes:
    """e = SM3(Z_A || M) exactly as the reference's Python helper (§6.4) computes it."""
    h = bytes.fromhex
    z = sm3((len(uid) * 8).to_bytes(2, "big") + uid + h(SM2_A) + h(SM2_B) + h(SM2_XG) + h(SM2_YG)
            + public_der[-64:])
    return sm3(z + message)


def sm2_key(api, usage="SIGN/VERIFY") -> tuple[str, str, str]:
    """(key id, version id, PEM public key)."""
    md = create(api, KeySpec="EC_SM2", KeyUsage=usage)
    assert (md["KeySpec"], md["KeyUsage"], md["PrimaryKeyVersion"]) == ("EC_SM2", usage, "")
    ver = api.call("ListKeyVersions", KeyId=md["KeyId"])["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
    pem = api.call("GetPublicKey", KeyId=md["KeyId"], KeyVersionId=ver)["PublicKey"]
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n" + SM2_SPKI_PREFIX), pem
    assert pem.endswith("\n-----END PUBLIC KEY-----\n")
    return md["KeyId"], ver, pem


def pem_der(pem: str) -> bytes:
    return unb64("".join(ln for ln in pem.splitlines() if not ln.startswith("-----")))


def test_create_ec_sm2_default_usage(capi):
    md = create(capi, KeySpec="EC_SM2")
    assert md["KeyUsage"] == "SIGN/VERIFY"
    expect_error(lambda: capi.call("CreateKey", KeySpec="EC_SM2", EnableAutomaticRotation=True,
                                   RotationInterval="30d"), "InvalidParameter", 400)


@needs_sm2
def test_sm2dsa_signatures_interoperate_with_openssl(sdk, tmp_path):
    key, ver, pem = sm2_key(sdk)
    (tmp_path / "pub.pem").write_text(pem)
    msg = os.urandom(200)
    (tmp_path / "msg.bin").write_bytes(msg)
    e = sm2_e(pem_der(pem), msg)
    r = sdk.call("AsymmetricSign", KeyId=key, KeyVersionId=ver, Algorithm="SM2DSA", Digest=b64(e))
    assert (r["KeyId"], r["KeyVersionId"]) == (key, ver)
    sig = unb64(r["Value"])
    assert sig[0] == 0x30 and len(sig) <= 72
    (tmp_path / "kms.sig").write_bytes(sig)
    # Ours -> openssl, over the message with the distinguishing identifier ...
    out = openssl("dgst", "-sm3", "-verify", "pub.pem", "-sigopt", "distid:1234567812345678",
                  "-signature", "kms.sig", "msg.bin", cwd=tmp_path)
    assert b"Verified OK" in out
    # ... and without it OpenSSL 3 uses an empty one and fails (the README's warning).
    p = subprocess.run(["openssl", "dgst", "-sm3", "-verify", "pub.pem", "-signature", "kms.sig", "msg.bin"],
                       cwd=tmp_path, capture_output=True)
    assert p.returncode != 0
    # openssl -> ours: a signature made with a key imported from openssl would need the key;
    # instead the server verifies its own signature and a tampered one (JSON booleans).
    v = sdk.call("AsymmetricVerify", KeyId=key, KeyVersionId=ver, Algorithm="SM2DSA", Digest=b64(e),
                 Value=r["Value"])
    assert v["Value"] is True
    bad = bytearray(sig)
    bad[-1] ^= 1
    v = sdk.call("AsymmetricVerify", KeyId=key, KeyVersionId=ver, Algorithm="SM2DSA", Digest=b64(e),
                 Value=b64(bytes(bad)))
    assert v["Value"] is False
    # A digest computed without Z (plain SM3 of the message) does not verify the signature.
    v = sdk.call("AsymmetricVerify", KeyId=key, KeyVersionId=ver, Algorithm="SM2DSA",
                 Digest=b64(sm3(msg)), Value=r["Value"])
    assert v["Value"] is False


@needs_sm2
def test_openssl_signatures_verify_here_via_an_imported_sm2_key(capi, tmp_path):
    """An SM2 private key made by openssl, imported (RSA_AES_KEY_WRAP_SHA_256 of its
    PKCS#8): openssl's signature verifies here and ours verifies with openssl."""
    md = create(capi, KeySpec="EC_SM2", Origin="EXTERNAL")
    key = md["KeyId"]
    openssl("genpkey", "-algorithm", "SM2", "-out", "k.pem", cwd=tmp_path)
    openssl("pkcs8", "-topk8", "-nocrypt", "-in", "k.pem", "-outform", "DER", "-out", "k.der", cwd=tmp_path)
    openssl("pkey", "-in", "k.pem", "-pubout", "-out", "pub.pem", cwd=tmp_path)
    p = capi.call("GetParametersForImport", KeyId=key, WrappingKeySpec="RSA_2048",
                  WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256")
    (tmp_path / "PublicKey.bin").write_bytes(unb64(p["PublicKey"]))
    esk = os.urandom(32)
    (tmp_path / "esk.bin").write_bytes(esk)
    openssl("pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", "PublicKey.bin", "-in", "esk.bin",
            "-out", "esk.enc", "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256",
            "-pkeyopt", "rsa_mgf1_md:sha256", cwd=tmp_path)
    openssl("enc", "-id-aes256-wrap-pad", "-K", esk.hex(), "-iv", "A65959A6", "-in", "k.der",
            "-out", "k.wrapped", cwd=tmp_path)
    blob = (tmp_path / "esk.enc").read_bytes() + (tmp_path / "k.wrapped").read_bytes()
    capi.call("ImportKeyMaterial", KeyId=key, ImportToken=p["ImportToken"], EncryptedKeyMaterial=b64(blob),
              KeyMaterialExpireUnix=0)
    ver = capi.call("ListKeyVersions", KeyId=key)["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
    pem = capi.call("GetPublicKey", KeyId=key, KeyVersionId=ver)["PublicKey"]
    assert pem == (tmp_path / "pub.pem").read_text()
    msg = b"signed by openssl"
    (tmp_path / "msg.txt").write_bytes(msg)
    openssl("dgst", "-sm3", "-sign", "k.pem", "-sigopt", "distid:1234567812345678", "-out", "o.sig", "msg.txt",
            cwd=tmp_path)
    e = b64(sm2_e(pem_der(pem), msg))
    v = capi.call("AsymmetricVerify", KeyId=key, KeyVersionId=ver, Algorithm="SM2DSA", Digest=e,
                  Value=b64((tmp_path / "o.sig").read_bytes()))
    assert v["Value"] is True


@needs_sm2
def test_sm2pke_ciphertexts_interoperate(sdk, tmp_path):
    key, ver, pem = sm2_key(sdk, "ENCRYPT/DECRYPT")
    (tmp_path / "pub.pem").write_text(pem)
    pt = os.urandom(100)
    (tmp_path / "pt.bin").write_bytes(pt)
    openssl("pkeyutl", "-encrypt", "-pubin", "-inkey", "pub.pem", "-in", "pt.bin", "-out", "ct.der", cwd=tmp_path)
    der = (tmp_path / "ct.der").read_bytes()
    for ct in (der, der_to_raw_c1c3c2(der)):
        d = sdk.call("AsymmetricDecrypt", KeyId=key, KeyVersionId=ver, Algorithm="SM2PKE", CiphertextBlob=b64(ct))
        assert unb64(d["Plaintext"]) == pt
    enc = sdk.call("AsymmetricEncrypt", KeyId=key, KeyVersionId=ver, Algorithm="SM2PKE", Plaintext=b64(pt))
    ours = unb64(enc["CiphertextBlob"])
    assert ours[0] == 0x30  # DER GM/T 0009: openssl parses it
    (tmp_path / "ours.der").write_bytes(ours)
    assert b"OCTET STRING" in openssl("asn1parse", "-inform", "DER", "-in", "ours.der", cwd=tmp_path)
    assert unb64(sdk.call("AsymmetricDecrypt", KeyId=key, KeyVersionId=ver, Algorithm="SM2PKE",
                          CiphertextBlob=enc["CiphertextBlob"])["Plaintext"]) == pt
    bad = bytearray(ours)
    bad[-1] ^= 1
    expect_error(lambda: sdk.call("AsymmetricDecrypt", KeyId=key, KeyVersionId=ver, Algorithm="SM2PKE",
                                  CiphertextBlob=b64(bytes(bad))), "InvalidParameter", 400)
    # 6047 bytes is the limit.
    sdk.call("AsymmetricEncrypt", KeyId=key, KeyVersionId=ver, Algorithm="SM2PKE", Plaintext=b64(os.urandom(6047)))
    expect_error(lambda: sdk.call("AsymmetricEncrypt", KeyId=key, KeyVersionId=ver, Algorithm="SM2PKE",
                                  Plaintext=b64(os.urandom(6048))), "InvalidParameter", 400)
    # ReEncrypt from the SM2PKE ciphertext into an Aliyun_SM4 key.
    sm4 = sm4_key(sdk)
    r = sdk.call("ReEncrypt", CiphertextBlob=b64(der), DestinationKeyId=sm4, SourceKeyId=key,
                 SourceKeyVersionId=ver, SourceEncryptionAlgorithm="SM2PKE")
    assert r["KeyId"] == sm4
    assert unb64(sdk.call("Decrypt", CiphertextBlob=r["CiphertextBlob"])["Plaintext"]) == pt


@needs_sm2
def test_export_data_key_to_an_sm2_public_key(sdk, tmp_path):
    openssl("genpkey", "-algorithm", "SM2", "-out", "r.pem", cwd=tmp_path)
    pub_der = openssl("pkey", "-in", "r.pem", "-pubout", "-outform", "DER", cwd=tmp_path)
    sm4 = sm4_key(sdk)
    g = sdk.call("GenerateAndExportDataKey", KeyId=sm4, PublicKeyBlob=b64(pub_der), WrappingKeySpec="EC_SM2",
                 WrappingAlgorithm="SM2PKE", NumberOfBytes=32)
    (tmp_path / "x.der").write_bytes(unb64(g["ExportedDataKey"]))
    data_key = openssl("pkeyutl", "-decrypt", "-inkey", "r.pem", "-in", "x.der", cwd=tmp_path)
    assert len(data_key) == 32
    assert unb64(sdk.call("Decrypt", CiphertextBlob=g["CiphertextBlob"])["Plaintext"]) == data_key
    x = sdk.call("ExportDataKey", CiphertextBlob=g["CiphertextBlob"], PublicKeyBlob=b64(pub_der),
                 WrappingKeySpec="EC_SM2", WrappingAlgorithm="SM2PKE")
    (tmp_path / "y.der").write_bytes(unb64(x["ExportedDataKey"]))
    assert openssl("pkeyutl", "-decrypt", "-inkey", "r.pem", "-in", "y.der", cwd=tmp_path) == data_key
    # An RSA or P-256 key as an EC_SM2 blob, or SM2PKE with RSA_2048: InvalidParameter.
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "p.pem", cwd=tmp_path)
    p256 = openssl("pkey", "-in", "p.pem", "-pubout", "-outform", "DER", cwd=tmp_path)
    for spec, alg, pub in (("EC_SM2", "SM2PKE", p256), ("EC_SM2", "RSAES_OAEP_SHA_256", pub_der),
                           ("RSA_2048", "SM2PKE", pub_der), ("EC_SM2", "SM2PKE", b"junk")):
        expect_error(lambda: sdk.call("ExportDataKey", CiphertextBlob=g["CiphertextBlob"], PublicKeyBlob=b64(pub),
                                      WrappingKeySpec=spec, WrappingAlgorithm=alg), "InvalidParameter", 400)


def test_sm2_wrong_usage_algorithm_digest_and_states(capi):
    sign, sv, _ = sm2_key(capi)
    enc, ev, _ = sm2_key(capi, "ENCRYPT/DECRYPT")
    d = b64(os.urandom(32))
    unsupported = (
        ("AsymmetricSign", dict(KeyId=enc, KeyVersionId=ev, Algorithm="SM2DSA", Digest=d)),
        ("AsymmetricEncrypt", dict(KeyId=sign, KeyVersionId=sv, Algorithm="SM2PKE", Plaintext=b64(b"x"))),
        ("AsymmetricSign", dict(KeyId=sign, KeyVersionId=sv, Algorithm="ECDSA_SHA_256", Digest=d)),
        ("AsymmetricEncrypt", dict(KeyId=enc, KeyVersionId=ev, Algorithm="RSAES_OAEP_SHA_256", Plaintext=b64(b"x"))),
        ("Encrypt", dict(KeyId=enc, Plaintext=b64(b"x"))),
        ("CreateKeyVersion", dict(KeyId=sign)),  # within 7 days of the first version
    )
    for action, params in unsupported:
        expect_error(lambda: capi.call(action, **params), "Rejected.UnsupportedOperation", 400)
    for digest in (b64(os.urandom(31)), b64(os.urandom(33))):
        expect_error(lambda: capi.call("AsymmetricSign", KeyId=sign, KeyVersionId=sv, Algorithm="SM2DSA",
                                       Digest=digest), "InvalidParameter", 400)
    capi.call("DisableKey", KeyId=sign)
    expect_error(lambda: capi.call("AsymmetricSign", KeyId=sign, KeyVersionId=sv, Algorithm="SM2DSA", Digest=d),
                 "Rejected.Disabled", 409)
    expect_error(lambda: capi.call("GetPublicKey", KeyId=sign, KeyVersionId=sv), "Rejected.Disabled", 409)
    capi.call("ScheduleKeyDeletion", KeyId=enc, PendingWindowInDays=7)
    expect_error(lambda: capi.call("AsymmetricDecrypt", KeyId=enc, KeyVersionId=ev, Algorithm="SM2PKE",
                                   CiphertextBlob=b64(b"\x30" * 120)), "Rejected.PendingDeletion", 409)


@needs_sm2
def test_kms_sign_and_verify_sm2dsa(server, capi, tmp_path):
    key, ver, pem = sm2_key(capi)
    (tmp_path / "pub.pem").write_text(pem)
    (tmp_path / "fw.bin").write_bytes(os.urandom(500))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "KMS_"))}
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=server.ak, ALIBABA_CLOUD_ACCESS_KEY_SECRET=server.sk,
               KMS_ENDPOINT=f"http://127.0.0.1:{server.port}", KMS_CLI_CONFIG=str(tmp_path / "cli.toml"))
    common = ["--key-id", key, "--key-version-id", ver, "--algorithm", "SM2DSA", "--file", str(tmp_path / "fw.bin")]
    p = subprocess.run([str(kms_bin()), "sign", *common, "--out", str(tmp_path / "fw.sig")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = openssl("dgst", "-sm3", "-verify", "pub.pem", "-sigopt", "distid:1234567812345678",
                  "-signature", "fw.sig", "fw.bin", cwd=tmp_path)
    assert b"Verified OK" in out
    p = subprocess.run([str(kms_bin()), "verify", *common, "--signature", str(tmp_path / "fw.sig")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout.strip()) == (0, "Verified OK"), p.stderr
