"""Asymmetric keys (issue 17, RSA/EC half) through the real classic and Tea V3 SDKs, every
result checked by an independent implementation (the `openssl` command line and Python
`cryptography`) in both directions:

- CreateKey for RSA_2048 / RSA_3072 / EC_P256 / EC_P256K, the spec x usage table, DescribeKey,
  ListKeys filters, versions (CreateKeyVersion's 7-day rule on a private server whose clock
  moves);
- GetPublicKey (PEM), AsymmetricSign / AsymmetricVerify (signatures made here verify with
  openssl and cryptography; re-encoded and high-S ECDSA signatures verify here), AsymmetricEncrypt
  / AsymmetricDecrypt (ciphertexts made by openssl and cryptography decrypt here);
- ExportDataKey / GenerateAndExportDataKey to a public key made by cryptography, ReEncrypt from
  a public-key ciphertext;
- exact error codes: wrong usage / algorithm / spec, bad digest, the state matrix, another
  account's keys.

One shared server per module (keys are made once); only the version test has its own server.
"""
from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (decode_dss_signature,
                                                             encode_dss_signature)

from kms_helpers import (RawClient, arn_of, b64, expect_error, kms_bin, make_api, unb64)

REPO_ROOT = Path(__file__).resolve().parents[2]

SDKS = ("classic", "tea_v3")
# (KeySpec, KeyUsage) of the module's keys.
SPECS = {
    "rsa2048_sign": ("RSA_2048", "SIGN/VERIFY"),
    "rsa3072_sign": ("RSA_3072", "SIGN/VERIFY"),
    "rsa2048_enc": ("RSA_2048", "ENCRYPT/DECRYPT"),
    "rsa3072_enc": ("RSA_3072", "ENCRYPT/DECRYPT"),
    "p256": ("EC_P256", "SIGN/VERIFY"),
    "p256k": ("EC_P256K", "SIGN/VERIFY"),
}
SIGNING = [("rsa2048_sign", "RSA_PSS_SHA_256"), ("rsa2048_sign", "RSA_PKCS1_SHA_256"),
           ("rsa3072_sign", "RSA_PSS_SHA_256"), ("rsa3072_sign", "RSA_PKCS1_SHA_256"),
           ("p256", "ECDSA_SHA_256"), ("p256k", "ECDSA_SHA_256")]
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.fixture(scope="module")
def keys(server):
    """The module's keys: name -> {"KeyId", "KeyVersionId", "pem", "public"}."""
    api = make_api("classic", server)
    out = {}
    for name, (spec, usage) in SPECS.items():
        md = api.call("CreateKey", KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
        versions = api.call("ListKeyVersions", KeyId=md["KeyId"])["KeyVersions"]["KeyVersion"]
        assert len(versions) == 1
        vid = versions[0]["KeyVersionId"]
        pem = api.call("GetPublicKey", KeyId=md["KeyId"], KeyVersionId=vid)["PublicKey"]
        out[name] = {"KeyId": md["KeyId"], "KeyVersionId": vid, "pem": pem,
                     "public": serialization.load_pem_public_key(pem.encode()), "md": md}
    out["aes"] = {"KeyId": api.call("CreateKey")["KeyMetadata"]["KeyId"]}
    return out


def _openssl(args, **kw):
    return subprocess.run(["openssl", *args], capture_output=True, timeout=30, **kw)


# ------------------------------------------------------------------------- keys and metadata
def test_create_key_metadata_and_filters(server, keys):
    api = make_api("tea_v3", server)
    for name, (spec, usage) in SPECS.items():
        md = api.call("DescribeKey", KeyId=keys[name]["KeyId"])["KeyMetadata"]
        assert (md["KeySpec"], md["KeyUsage"], md["KeyState"]) == (spec, usage, "Enabled")
        assert md["Origin"] == "Aliyun_KMS"
        assert md["AutomaticRotation"] == "Disabled"
        # No primary version for asymmetric keys (reference asymmetric §2.1).
        assert md.get("PrimaryKeyVersion", "") == ""
        assert keys[name]["md"]["PrimaryKeyVersion"] == ""
    # Default usage: SIGN/VERIFY for a spec that signs.
    md = api.call("CreateKey", KeySpec="EC_P256")["KeyMetadata"]
    assert md["KeyUsage"] == "SIGN/VERIFY"
    md = api.call("CreateKey", KeySpec="RSA_2048")["KeyMetadata"]
    assert md["KeyUsage"] == "SIGN/VERIFY"
    # ListKeys filters by spec and usage.
    import json
    listed = api.call("ListKeys", PageSize=100, Filters=json.dumps(
        [{"Key": "KeySpec", "Values": ["EC_P256K"]}]))["Keys"]["Key"]
    assert [k["KeyId"] for k in listed] == [keys["p256k"]["KeyId"]]
    listed = api.call("ListKeys", PageSize=100, Filters=json.dumps(
        [{"Key": "KeyUsage", "Values": ["ENCRYPT/DECRYPT"]},
         {"Key": "KeySpec", "Values": ["RSA_2048", "RSA_3072"]}]))["Keys"]["Key"]
    assert sorted(k["KeyId"] for k in listed) == sorted(
        [keys["rsa2048_enc"]["KeyId"], keys["rsa3072_enc"]["KeyId"]])
    # Aliases and tags work as for symmetric keys.
    alias = f"alias/asym-{os.getpid()}"
    api.call("CreateAlias", AliasName=alias, KeyId=keys["p256"]["KeyId"])
    got = api.call("GetPublicKey", KeyId=alias, KeyVersionId=keys["p256"]["KeyVersionId"])
    assert got["KeyId"] == keys["p256"]["KeyId"]
    assert got["PublicKey"] == keys["p256"]["pem"]


@pytest.mark.parametrize("params,code", [
    ({"KeySpec": "EC_P256", "KeyUsage": "ENCRYPT/DECRYPT"}, "InvalidParameter"),
    ({"KeySpec": "EC_P256K", "KeyUsage": "ENCRYPT/DECRYPT"}, "InvalidParameter"),
    ({"KeySpec": "Aliyun_AES_256", "KeyUsage": "SIGN/VERIFY"}, "InvalidParameter"),
    ({"KeySpec": "RSA_4096"}, "InvalidParameter"),
    ({"KeySpec": "rsa_2048"}, "InvalidParameter"),
    ({"KeySpec": "RSA_2048", "KeyUsage": "SIGN"}, "InvalidParameter"),
    ({"KeySpec": "RSA_2048", "EnableAutomaticRotation": True, "RotationInterval": "30d"},
     "InvalidParameter"),
    # EC_SM2 and Aliyun_SM4 keys are created since the SM half of issue 17 (test_sm.py).
    ({"KeySpec": "Aliyun_SM4", "KeyUsage": "SIGN/VERIFY"}, "InvalidParameter"),
])
def test_create_key_refusals(server, params, code):
    for sdk in SDKS:
        expect_error(lambda: make_api(sdk, server).call("CreateKey", **params), code, 400)


# ------------------------------------------------------------------------- sign / verify
@pytest.mark.parametrize("name,alg", SIGNING)
def test_signatures_verify_with_openssl_and_cryptography(server, keys, tmp_path, name, alg):
    k = keys[name]
    message = os.urandom(100) + name.encode()
    digest = hashlib.sha256(message).digest()
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "pub.pem").write_text(k["pem"])
    for sdk in SDKS:
        api = make_api(sdk, server)
        r = api.call("AsymmetricSign", KeyId=k["KeyId"], KeyVersionId=k["KeyVersionId"],
                     Algorithm=alg, Digest=b64(digest))
        assert (r["KeyId"], r["KeyVersionId"]) == (k["KeyId"], k["KeyVersionId"])
        sig = unb64(r["Value"])
        pub = k["public"]
        # cryptography
        if alg == "RSA_PSS_SHA_256":
            assert len(sig) == pub.key_size // 8
            pub.verify(sig, message, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
        elif alg == "RSA_PKCS1_SHA_256":
            assert len(sig) == pub.key_size // 8
            pub.verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            assert sig[0] == 0x30 and len(sig) <= 72
            pub.verify(sig, message, ec.ECDSA(hashes.SHA256()))
        # openssl, exactly as Alibaba documents the client-side check (over the message)
        (tmp_path / "sig").write_bytes(sig)
        extra = (["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-1"]
                 if alg == "RSA_PSS_SHA_256" else [])
        out = _openssl(["dgst", "-sha256", "-verify", str(tmp_path / "pub.pem"), *extra,
                        "-signature", str(tmp_path / "sig"), str(tmp_path / "msg")])
        assert out.returncode == 0 and b"Verified OK" in out.stdout, out
        # and here
        v = api.call("AsymmetricVerify", KeyId=k["KeyId"], KeyVersionId=k["KeyVersionId"],
                     Algorithm=alg, Digest=b64(digest), Value=r["Value"])
        assert v["Value"] is True
        assert (v["KeyId"], v["KeyVersionId"]) == (k["KeyId"], k["KeyVersionId"])
        # a wrong signature: 200 with Value false
        bad = bytearray(sig)
        bad[-1] ^= 1
        v = api.call("AsymmetricVerify", KeyId=k["KeyId"], KeyVersionId=k["KeyVersionId"],
                     Algorithm=alg, Digest=b64(digest), Value=b64(bytes(bad)))
        assert v["Value"] is False
        other = hashlib.sha256(message + b"x").digest()
        v = api.call("AsymmetricVerify", KeyId=k["KeyId"], KeyVersionId=k["KeyVersionId"],
                     Algorithm=alg, Digest=b64(other), Value=r["Value"])
        assert v["Value"] is False


@pytest.mark.parametrize("name,n", [("p256", P256_N), ("p256k", SECP256K1_N)])
def test_ecdsa_signatures_made_elsewhere_verify_here(server, keys, name, n):
    """A signature re-encoded by cryptography, and its high-S twin (s -> n - s, equally
    valid ECDSA), verify here; openssl agrees on the twin."""
    k = keys[name]
    api = make_api("tea_v3", server)
    digest = hashlib.sha256(b"firmware image").digest()
    sig = unb64(api.call("AsymmetricSign", KeyId=k["KeyId"], KeyVersionId=k["KeyVersionId"],
                         Algorithm="ECDSA_SHA_256", Digest=b64(digest))["Value"])
    r, s = decode_dss_signature(sig)
    for variant in (encode_dss_signature(r, s), encode_dss_signature(r, n - s)):
        k["public"].verify(variant, b"firmware image", ec.ECDSA(hashes.SHA256()))
        v = api.call("AsymmetricVerify", KeyId=k["KeyId"], KeyVersionId=k["KeyVersionId"],
                     Algorithm="ECDSA_SHA_256", Digest=b64(digest), Value=b64(variant))
        assert v["Value"] is True
    # r and s swapped: not a signature
    v = api.call("AsymmetricVerify", KeyId=k["KeyId"], KeyVersionId=k["KeyVersionId"],
                 Algorithm="ECDSA_SHA_256", Digest=b64(digest),
                 Value=b64(encode_dss_signature(s, r)))
    assert v["Value"] is False


def test_verify_value_is_a_json_boolean(server, keys):
    k = keys["p256"]
    raw = RawClient(server)
    digest = b64(hashlib.sha256(b"m").digest())
    resp = raw.call("AsymmetricVerify", {"KeyId": k["KeyId"], "KeyVersionId": k["KeyVersionId"],
                                         "Algorithm": "ECDSA_SHA_256", "Digest": digest,
                                         "Value": b64(b"\x30\x06\x02\x01\x01\x02\x01\x01")})
    assert resp.status == 200, resp
    assert b'"Value":false' in resp.body.replace(b" ", b""), resp.body


# ------------------------------------------------------------------------- encrypt / decrypt
@pytest.mark.parametrize("name", ["rsa2048_enc", "rsa3072_enc"])
@pytest.mark.parametrize("alg", ["RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1"])
def test_ciphertexts_made_elsewhere_decrypt_here(server, keys, tmp_path, name, alg):
    k = keys[name]
    pub = k["public"]
    h = hashes.SHA256() if alg == "RSAES_OAEP_SHA_256" else hashes.SHA1()
    size = pub.key_size // 8
    max_len = size - 2 * h.digest_size - 2
    (tmp_path / "pub.pem").write_text(k["pem"])
    for sdk in SDKS:
        api = make_api(sdk, server)
        # cryptography, at the size limit
        pt = os.urandom(max_len)
        ct = pub.encrypt(pt, padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None))
        r = api.call("AsymmetricDecrypt", KeyId=k["KeyId"], KeyVersionId=k["KeyVersionId"],
                     Algorithm=alg, CiphertextBlob=b64(ct))
        assert unb64(r["Plaintext"]) == pt
        assert (r["KeyId"], r["KeyVersionId"]) == (k["KeyId"], k["KeyVersionId"])
        # openssl pkeyutl, the documented command
        md = "sha256" if alg == "RSAES_OAEP_SHA_256" else "sha1"
        pt2 = b"openssl " + os.urandom(20)
        (tmp_path / "pt").write_bytes(pt2)
        out = _openssl(["pkeyutl", "-encrypt", "-pubin", "-inkey", str(tmp_path / "pub.pem"),
                        "-in", str(tmp_path / "pt"), "-pkeyopt", "rsa_padding_mode:oaep",
                        "-pkeyopt", f"rsa_oaep_md:{md}", "-pkeyopt", f"rsa_mgf1_md:{md}"])
        assert out.returncode == 0, out
        assert len(out.stdout) == size
        r = api.call("AsymmetricDecrypt", KeyId=k["KeyId"], KeyVersionId=k["KeyVersionId"],
                     Algorithm=alg, CiphertextBlob=b64(out.stdout))
        assert unb64(r["Plaintext"]) == pt2
        # AsymmetricEncrypt: raw OAEP output of modulus length, decrypts here
        e = api.call("AsymmetricEncrypt", KeyId=k["KeyId"], KeyVersionId=k["KeyVersionId"],
                     Algorithm=alg, Plaintext=b64(pt))
        assert len(unb64(e["CiphertextBlob"])) == size
        r = api.call("AsymmetricDecrypt", KeyId=k["KeyId"], KeyVersionId=k["KeyVersionId"],
                     Algorithm=alg, CiphertextBlob=e["CiphertextBlob"])
        assert unb64(r["Plaintext"]) == pt
        # one byte over the limit; a damaged ciphertext; the other OAEP hash
        expect_error(lambda: api.call("AsymmetricEncrypt", KeyId=k["KeyId"],
                                      KeyVersionId=k["KeyVersionId"], Algorithm=alg,
                                      Plaintext=b64(os.urandom(max_len + 1))),
                     "InvalidParameter", 400)
        bad = bytearray(ct)
        bad[5] ^= 1
        other = "RSAES_OAEP_SHA_1" if alg == "RSAES_OAEP_SHA_256" else "RSAES_OAEP_SHA_256"
        for blob, a in ((bytes(bad), alg), (ct, other), (ct[:-1], alg)):
            expect_error(lambda: api.call("AsymmetricDecrypt", KeyId=k["KeyId"],
                                          KeyVersionId=k["KeyVersionId"], Algorithm=a,
                                          CiphertextBlob=b64(blob)),
                         "InvalidParameter", 400)


# ------------------------------------------------------------------------- errors
def test_wrong_usage_algorithm_and_kind(server, keys):
    api = make_api("tea_v3", server)
    d = b64(hashlib.sha256(b"x").digest())
    sign = keys["rsa2048_sign"]
    enc = keys["rsa2048_enc"]
    p256 = keys["p256"]
    unsupported = [
        # sign with an ENCRYPT/DECRYPT key, encrypt with a SIGN/VERIFY key
        ("AsymmetricSign", dict(KeyId=enc["KeyId"], KeyVersionId=enc["KeyVersionId"],
                                Algorithm="RSA_PSS_SHA_256", Digest=d)),
        ("AsymmetricEncrypt", dict(KeyId=sign["KeyId"], KeyVersionId=sign["KeyVersionId"],
                                   Algorithm="RSAES_OAEP_SHA_256", Plaintext=b64(b"x"))),
        ("AsymmetricDecrypt", dict(KeyId=sign["KeyId"], KeyVersionId=sign["KeyVersionId"],
                                   Algorithm="RSAES_OAEP_SHA_256", CiphertextBlob=b64(b"x" * 256))),
        # an algorithm of another family
        ("AsymmetricSign", dict(KeyId=sign["KeyId"], KeyVersionId=sign["KeyVersionId"],
                                Algorithm="ECDSA_SHA_256", Digest=d)),
        ("AsymmetricSign", dict(KeyId=p256["KeyId"], KeyVersionId=p256["KeyVersionId"],
                                Algorithm="RSA_PKCS1_SHA_256", Digest=d)),
        ("AsymmetricSign", dict(KeyId=p256["KeyId"], KeyVersionId=p256["KeyVersionId"],
                                Algorithm="SM2DSA", Digest=d)),
        ("AsymmetricVerify", dict(KeyId=p256["KeyId"], KeyVersionId=p256["KeyVersionId"],
                                  Algorithm="RSA_PSS_SHA_256", Digest=d, Value=b64(b"s"))),
        # symmetric actions on asymmetric keys, and the other way round
        ("Encrypt", dict(KeyId=enc["KeyId"], Plaintext=b64(b"x"))),
        ("GenerateDataKey", dict(KeyId=sign["KeyId"])),
        ("GetPublicKey", dict(KeyId=keys["aes"]["KeyId"],
                              KeyVersionId=make_api("classic", server).call(
                                  "DescribeKey", KeyId=keys["aes"]["KeyId"])["KeyMetadata"]["PrimaryKeyVersion"])),
        ("CreateKeyVersion", dict(KeyId=p256["KeyId"])),  # within 7 days of the last version
        ("UpdateRotationPolicy", dict(KeyId=p256["KeyId"], EnableAutomaticRotation=True,
                                      RotationInterval="30d")),
    ]
    for action, params in unsupported:
        e = expect_error(lambda: api.call(action, **params), "Rejected.UnsupportedOperation", 400)
        assert e.message == "Unsupported operation.", (action, e.message)
    invalid = [
        ("AsymmetricSign", dict(KeyId=sign["KeyId"], KeyVersionId=sign["KeyVersionId"],
                                Algorithm="RSA_PSS_SHA_512", Digest=d)),
        ("AsymmetricSign", dict(KeyId=sign["KeyId"], KeyVersionId=sign["KeyVersionId"],
                                Algorithm="RSA_PSS_SHA_256", Digest=b64(b"\x01" * 31))),
        ("AsymmetricSign", dict(KeyId=sign["KeyId"], KeyVersionId=sign["KeyVersionId"],
                                Algorithm="RSA_PSS_SHA_256", Digest=b64(b"m" * 100))),
        ("AsymmetricSign", dict(KeyId=sign["KeyId"], KeyVersionId=sign["KeyVersionId"],
                                Algorithm="RSA_PSS_SHA_256", Digest="not base64!")),
    ]
    for action, params in invalid:
        expect_error(lambda: api.call(action, **params), "InvalidParameter", 400)
    expect_error(lambda: api.call("GetPublicKey", KeyId=sign["KeyId"],
                                  KeyVersionId=enc["KeyVersionId"]),
                 "Forbidden.KeyVersionNotFound", 404)
    expect_error(lambda: api.call("GetPublicKey", KeyId="no-such-key",
                                  KeyVersionId=enc["KeyVersionId"]),
                 "Forbidden.KeyNotFound", 404)
    expect_error(lambda: api.call("GetPublicKey", KeyId="alias/no-such-alias",
                                  KeyVersionId=enc["KeyVersionId"]),
                 "Forbidden.AliasNotFound", 404)


def test_other_accounts_keys_are_not_found(server, keys):
    acct = server.new_account()
    k = keys["p256"]
    d = b64(hashlib.sha256(b"x").digest())
    for sdk in SDKS:
        api = make_api(sdk, server, acct["AccessKeyId"], acct["AccessKeySecret"])
        for ref in (k["KeyId"], arn_of(k["KeyId"])):
            expect_error(lambda: api.call("GetPublicKey", KeyId=ref, KeyVersionId=k["KeyVersionId"]),
                         "Forbidden.KeyNotFound", 404)
            expect_error(lambda: api.call("AsymmetricSign", KeyId=ref, KeyVersionId=k["KeyVersionId"],
                                          Algorithm="ECDSA_SHA_256", Digest=d),
                         "Forbidden.KeyNotFound", 404)
        e = keys["rsa2048_enc"]
        expect_error(lambda: api.call("AsymmetricDecrypt", KeyId=e["KeyId"],
                                      KeyVersionId=e["KeyVersionId"], Algorithm="RSAES_OAEP_SHA_256",
                                      CiphertextBlob=b64(b"x" * 256)),
                     "Forbidden.KeyNotFound", 404)


def test_state_matrix(server):
    """Disabled -> 409 Rejected.Disabled, PendingDeletion -> 409 Rejected.PendingDeletion on
    every new action; DescribeKeyVersion / ListKeyVersions stay OK."""
    api = make_api("classic", server)
    sign = api.call("CreateKey", KeySpec="EC_P256K")["KeyMetadata"]["KeyId"]
    enc = api.call("CreateKey", KeySpec="RSA_2048", KeyUsage="ENCRYPT/DECRYPT")["KeyMetadata"]["KeyId"]
    sv = api.call("ListKeyVersions", KeyId=sign)["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
    ev = api.call("ListKeyVersions", KeyId=enc)["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
    pem = api.call("GetPublicKey", KeyId=enc, KeyVersionId=ev)["PublicKey"]
    ct = serialization.load_pem_public_key(pem.encode()).encrypt(
        b"k" * 32, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    d = b64(hashlib.sha256(b"x").digest())
    sig = api.call("AsymmetricSign", KeyId=sign, KeyVersionId=sv, Algorithm="ECDSA_SHA_256", Digest=d)["Value"]
    aes = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    calls = [
        (sign, "GetPublicKey", dict(KeyId=sign, KeyVersionId=sv)),
        (sign, "AsymmetricSign", dict(KeyId=sign, KeyVersionId=sv, Algorithm="ECDSA_SHA_256", Digest=d)),
        (sign, "AsymmetricVerify", dict(KeyId=sign, KeyVersionId=sv, Algorithm="ECDSA_SHA_256",
                                        Digest=d, Value=sig)),
        (enc, "AsymmetricEncrypt", dict(KeyId=enc, KeyVersionId=ev, Algorithm="RSAES_OAEP_SHA_256",
                                        Plaintext=b64(b"x"))),
        (enc, "AsymmetricDecrypt", dict(KeyId=enc, KeyVersionId=ev, Algorithm="RSAES_OAEP_SHA_256",
                                        CiphertextBlob=b64(ct))),
        (enc, "ReEncrypt", dict(CiphertextBlob=b64(ct), DestinationKeyId=aes, SourceKeyId=enc,
                                SourceKeyVersionId=ev, SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256")),
        (sign, "CreateKeyVersion", dict(KeyId=sign)),
    ]
    for key in (sign, enc):
        api.call("DisableKey", KeyId=key)
    for _, action, params in calls:
        expect_error(lambda: api.call(action, **params), "Rejected.Disabled", 409)
    for key in (sign, enc):
        api.call("EnableKey", KeyId=key)
        api.call("ScheduleKeyDeletion", KeyId=key, PendingWindowInDays=7)
    for _, action, params in calls:
        expect_error(lambda: api.call(action, **params), "Rejected.PendingDeletion", 409)
    assert api.call("DescribeKeyVersion", KeyId=sign, KeyVersionId=sv)["KeyVersion"]["KeyVersionId"] == sv
    assert len(api.call("ListKeyVersions", KeyId=enc)["KeyVersions"]["KeyVersion"]) == 1
    # The destination key's state counts too (ReEncrypt).
    for key in (sign, enc):
        api.call("CancelKeyDeletion", KeyId=key)
    api.call("DisableKey", KeyId=aes)
    expect_error(lambda: api.call("ReEncrypt", **calls[5][2]), "Rejected.Disabled", 409)


# ------------------------------------------------------------------------- data-key export
def _local_rsa():
    priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = priv.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return priv, b64(der)


@pytest.mark.parametrize("sdk", SDKS)
def test_export_data_key(server, keys, sdk):
    api = make_api(sdk, server)
    aes = keys["aes"]["KeyId"]
    priv, blob = _local_rsa()
    ctx = {"purpose": "export"}
    for alg, h in (("RSAES_OAEP_SHA_256", hashes.SHA256()), ("RSAES_OAEP_SHA_1", hashes.SHA1())):
        oaep = padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)
        g = api.call("GenerateAndExportDataKey", KeyId=aes, KeySpec="AES_128", PublicKeyBlob=blob,
                     WrappingKeySpec="RSA_2048", WrappingAlgorithm=alg, EncryptionContext=ctx)
        assert g["KeyId"] == aes and g["KeyVersionId"]
        exported = priv.decrypt(unb64(g["ExportedDataKey"]), oaep)
        assert len(exported) == 16
        plain = unb64(api.call("Decrypt", CiphertextBlob=g["CiphertextBlob"],
                               EncryptionContext=ctx)["Plaintext"])
        assert plain == exported
        dk = api.call("GenerateDataKey", KeyId=aes, NumberOfBytes=48)
        e = api.call("ExportDataKey", CiphertextBlob=dk["CiphertextBlob"], PublicKeyBlob=blob,
                     WrappingKeySpec="RSA_2048", WrappingAlgorithm=alg)
        assert (e["KeyId"], e["KeyVersionId"]) == (dk["KeyId"], dk["KeyVersionId"])
        assert "CiphertextBlob" not in e or not e.get("CiphertextBlob")
        assert priv.decrypt(unb64(e["ExportedDataKey"]), oaep) == unb64(dk["Plaintext"])
    # the context must match
    expect_error(lambda: api.call("ExportDataKey", CiphertextBlob=dk["CiphertextBlob"],
                                  PublicKeyBlob=blob, WrappingKeySpec="RSA_2048",
                                  WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                  EncryptionContext={"a": "b"}), "InvalidParameter", 400)
    ec_blob = b64(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    small = b64(rsa.generate_private_key(65537, 1024).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    for spec, alg, pub in (("RSA_2048", "RSAES_OAEP_SHA_256", ec_blob),
                           ("RSA_2048", "RSAES_OAEP_SHA_256", small),
                           ("RSA_2048", "RSAES_OAEP_SHA_256", b64(b"junk")),
                           ("RSA_3072", "RSAES_OAEP_SHA_256", blob),
                           ("RSA_2048", "RSAES_PKCS1_V1_5", blob),
                           ("RSA_2048", "SM2PKE", blob)):
        expect_error(lambda: api.call("ExportDataKey", CiphertextBlob=dk["CiphertextBlob"],
                                      PublicKeyBlob=pub, WrappingKeySpec=spec,
                                      WrappingAlgorithm=alg), "InvalidParameter", 400)
    # An asymmetric key cannot make data keys.
    expect_error(lambda: api.call("GenerateAndExportDataKey", KeyId=keys["rsa2048_enc"]["KeyId"],
                                  PublicKeyBlob=blob, WrappingKeySpec="RSA_2048",
                                  WrappingAlgorithm="RSAES_OAEP_SHA_256"),
                 "Rejected.UnsupportedOperation", 400)


@pytest.mark.parametrize("sdk", SDKS)
def test_re_encrypt_from_public_key_ciphertext(server, keys, sdk):
    api = make_api(sdk, server)
    k = keys["rsa2048_enc"]
    aes = keys["aes"]["KeyId"]
    dk = os.urandom(32)
    ct = k["public"].encrypt(dk, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                              algorithm=hashes.SHA256(), label=None))
    r = api.call("ReEncrypt", CiphertextBlob=b64(ct), DestinationKeyId=aes,
                 SourceKeyId=k["KeyId"], SourceKeyVersionId=k["KeyVersionId"],
                 SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256",
                 DestinationEncryptionContext={"to": "aes"})
    assert r["KeyId"] == aes
    got = api.call("Decrypt", CiphertextBlob=r["CiphertextBlob"], EncryptionContext={"to": "aes"})
    assert unb64(got["Plaintext"]) == dk
    # An exported data key (ExportDataKey to this key's public key) re-encrypts too.
    spki = b64(k["public"].public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo))
    g = api.call("GenerateAndExportDataKey", KeyId=aes, PublicKeyBlob=spki,
                 WrappingKeySpec="RSA_2048", WrappingAlgorithm="RSAES_OAEP_SHA_1")
    r = api.call("ReEncrypt", CiphertextBlob=g["ExportedDataKey"], DestinationKeyId=aes,
                 SourceKeyId=k["KeyId"], SourceKeyVersionId=k["KeyVersionId"],
                 SourceEncryptionAlgorithm="RSAES_OAEP_SHA_1")
    assert (api.call("Decrypt", CiphertextBlob=r["CiphertextBlob"])["Plaintext"]
            == api.call("Decrypt", CiphertextBlob=g["CiphertextBlob"])["Plaintext"])
    # the destination must be symmetric; the three source parameters go together
    expect_error(lambda: api.call("ReEncrypt", CiphertextBlob=b64(ct),
                                  DestinationKeyId=keys["rsa3072_enc"]["KeyId"],
                                  SourceKeyId=k["KeyId"], SourceKeyVersionId=k["KeyVersionId"],
                                  SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256"),
                 "Rejected.UnsupportedOperation", 400)
    expect_error(lambda: api.call("ReEncrypt", CiphertextBlob=b64(ct), DestinationKeyId=aes,
                                  SourceKeyId=k["KeyId"],
                                  SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256"),
                 "MissingParameter", 400)
    expect_error(lambda: api.call("ReEncrypt", CiphertextBlob=b64(ct), DestinationKeyId=aes,
                                  SourceKeyId=k["KeyId"], SourceKeyVersionId=k["KeyVersionId"],
                                  SourceEncryptionAlgorithm="RSAES_OAEP_SHA_1"),
                 "InvalidParameter", 400)


# ------------------------------------------------------------------------- versions
def test_key_versions_and_the_seven_day_rule(own_server):
    api = make_api("tea_v3", own_server)
    key = api.call("CreateKey", KeySpec="EC_P256")["KeyMetadata"]["KeyId"]
    v1 = api.call("ListKeyVersions", KeyId=key)["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
    expect_error(lambda: api.call("CreateKeyVersion", KeyId=key), "Rejected.UnsupportedOperation", 400)
    own_server.advance_clock(7 * 86400)
    v2 = api.call("CreateKeyVersion", KeyId=key)["KeyVersion"]["KeyVersionId"]
    assert v2 != v1
    expect_error(lambda: api.call("CreateKeyVersion", KeyId=key), "Rejected.UnsupportedOperation", 400)
    md = api.call("DescribeKey", KeyId=key)["KeyMetadata"]
    assert md.get("PrimaryKeyVersion", "") == ""
    listed = [v["KeyVersionId"] for v in api.call("ListKeyVersions", KeyId=key)["KeyVersions"]["KeyVersion"]]
    assert listed == [v1, v2]
    pems = {v: api.call("GetPublicKey", KeyId=key, KeyVersionId=v)["PublicKey"] for v in (v1, v2)}
    assert pems[v1] != pems[v2]
    d = hashlib.sha256(b"rotated").digest()
    for v in (v1, v2):
        sig = unb64(api.call("AsymmetricSign", KeyId=key, KeyVersionId=v, Algorithm="ECDSA_SHA_256",
                             Digest=b64(d))["Value"])
        serialization.load_pem_public_key(pems[v].encode()).verify(
            sig, b"rotated", ec.ECDSA(hashes.SHA256()))
        other = v2 if v == v1 else v1
        assert api.call("AsymmetricVerify", KeyId=key, KeyVersionId=other, Algorithm="ECDSA_SHA_256",
                        Digest=b64(d), Value=b64(sig))["Value"] is False
    # Survives a restart (the private keys are sealed in the store).
    own_server.restart()
    api = make_api("classic", own_server)
    assert api.call("GetPublicKey", KeyId=key, KeyVersionId=v2)["PublicKey"] == pems[v2]


# ------------------------------------------------------------------------- README, CLI
def test_readme_openssl_example_runs_as_written(server, tmp_path):
    """The README's sign/verify/encrypt block, run with the `kms` CLI and openssl."""
    import re
    text = (REPO_ROOT / "README.md").read_text()
    m = re.search(r"<!-- asymmetric-example -->\s*```sh\n(.*?)```", text, re.S)
    assert m, "README has no <!-- asymmetric-example --> block"
    api = make_api("classic", server)
    key = api.call("CreateKey", KeySpec="RSA_2048")["KeyMetadata"]["KeyId"]
    ver = api.call("ListKeyVersions", KeyId=key)["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
    enc = api.call("CreateKey", KeySpec="RSA_2048", KeyUsage="ENCRYPT/DECRYPT")["KeyMetadata"]["KeyId"]
    enc_ver = api.call("ListKeyVersions", KeyId=enc)["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
    lines = m.group(1).replace("\\\n", " ").splitlines()
    sign_part = [ln for ln in lines if "pkeyutl" not in ln and "AsymmetricDecrypt" not in ln]
    enc_part = [ln for ln in lines if "GetPublicKey" in ln or "pkeyutl" in ln or "AsymmetricDecrypt" in ln]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "KMS_"))}
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=server.ak, ALIBABA_CLOUD_ACCESS_KEY_SECRET=server.sk,
               KMS_ENDPOINT=f"http://127.0.0.1:{server.port}",
               KMS_CLI_CONFIG=str(tmp_path / "cli.toml"),
               PATH=f"{kms_bin().parent}:{os.environ['PATH']}")
    (tmp_path / "msg.txt").write_bytes(b"signed by the README\n")
    secret = os.urandom(32)
    (tmp_path / "secret.bin").write_bytes(secret)
    for k, v, part in ((key, ver, sign_part), (enc, enc_ver, enc_part)):
        script = "set -euo pipefail\n" + "\n".join(part)
        p = subprocess.run(["bash", "-c", script], env={**env, "KEY": k, "VER": v}, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, (script, p.stdout, p.stderr)
        if part is sign_part:
            assert "Verified OK" in p.stdout, p.stdout
        else:
            assert b64(secret) in p.stdout, p.stdout


# ------------------------------------------------------------------------- import (BYOK)
def _wrap_private_key(public_key_b64: str, pkcs8_der: bytes) -> str:
    """RSA_AES_KEY_WRAP_SHA_256 as a client does it with cryptography: a fresh AES-256 key
    under RSA-OAEP-SHA256, then the PKCS#8 under it with AES-KWP (RFC 5649)."""
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
    wrapping = serialization.load_der_public_key(unb64(public_key_b64))
    esk = os.urandom(32)
    head = wrapping.encrypt(esk, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                              algorithm=hashes.SHA256(), label=None))
    return b64(head + aes_key_wrap_with_padding(esk, pkcs8_der))


def _pkcs8(priv) -> bytes:
    return priv.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())


@pytest.mark.parametrize("sdk", SDKS)
def test_import_an_ec_private_key(server, sdk):
    api = make_api(sdk, server)
    key = api.call("CreateKey", KeySpec="EC_P256", Origin="EXTERNAL")["KeyMetadata"]
    assert (key["KeyState"], key["Origin"], key["KeyUsage"]) == ("PendingImport", "EXTERNAL", "SIGN/VERIFY")
    key = key["KeyId"]
    ver = api.call("ListKeyVersions", KeyId=key)["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
    expect_error(lambda: api.call("GetPublicKey", KeyId=key, KeyVersionId=ver), "Rejected.PendingImport", 409)
    expect_error(lambda: api.call("GetParametersForImport", KeyId=key, WrappingKeySpec="RSA_2048",
                                  WrappingAlgorithm="RSAES_OAEP_SHA_256"), "InvalidParameter", 400)
    params = dict(KeyId=key, WrappingKeySpec="RSA_2048", WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256")
    priv = ec.generate_private_key(ec.SECP256R1())
    # Wrong material first: another curve, an RSA key, garbage, then the key itself.
    for wrong in (_pkcs8(ec.generate_private_key(ec.SECP256K1())),
                  _pkcs8(rsa.generate_private_key(65537, 2048)), os.urandom(64)):
        p = api.call("GetParametersForImport", **params)
        expect_error(lambda: api.call("ImportKeyMaterial", KeyId=key, ImportToken=p["ImportToken"],
                                      EncryptedKeyMaterial=_wrap_private_key(p["PublicKey"], wrong)),
                     "InvalidKeyMaterial", 400)
    p = api.call("GetParametersForImport", **params)
    api.call("ImportKeyMaterial", KeyId=key, ImportToken=p["ImportToken"],
             EncryptedKeyMaterial=_wrap_private_key(p["PublicKey"], _pkcs8(priv)))
    assert api.call("DescribeKey", KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"
    pem = api.call("GetPublicKey", KeyId=key, KeyVersionId=ver)["PublicKey"]
    assert pem.encode() == priv.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    # A signature made outside with the same private key verifies here, and the other way round.
    message = b"signed outside"
    theirs = priv.sign(message, ec.ECDSA(hashes.SHA256()))
    d = b64(hashlib.sha256(message).digest())
    assert api.call("AsymmetricVerify", KeyId=key, KeyVersionId=ver, Algorithm="ECDSA_SHA_256",
                    Digest=d, Value=b64(theirs))["Value"] is True
    ours = api.call("AsymmetricSign", KeyId=key, KeyVersionId=ver, Algorithm="ECDSA_SHA_256", Digest=d)["Value"]
    priv.public_key().verify(unb64(ours), message, ec.ECDSA(hashes.SHA256()))
    # One material for life: another key is refused, the same key re-imports.
    api.call("DeleteKeyMaterial", KeyId=key)
    expect_error(lambda: api.call("AsymmetricSign", KeyId=key, KeyVersionId=ver, Algorithm="ECDSA_SHA_256",
                                  Digest=d), "Rejected.PendingImport", 409)
    p = api.call("GetParametersForImport", **params)
    expect_error(lambda: api.call("ImportKeyMaterial", KeyId=key, ImportToken=p["ImportToken"],
                                  EncryptedKeyMaterial=_wrap_private_key(
                                      p["PublicKey"], _pkcs8(ec.generate_private_key(ec.SECP256R1())))),
                 "InvalidKeyMaterial", 400)
    api.call("ImportKeyMaterial", KeyId=key, ImportToken=p["ImportToken"],
             EncryptedKeyMaterial=_wrap_private_key(p["PublicKey"], _pkcs8(priv)))
    assert api.call("GetPublicKey", KeyId=key, KeyVersionId=ver)["PublicKey"] == pem
    # No versions for imported keys; symmetric keys do not take this wrapping.
    expect_error(lambda: api.call("CreateKeyVersion", KeyId=key), "Unsupported.Origin", 400)
    sym = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    expect_error(lambda: api.call("GetParametersForImport", KeyId=sym, WrappingKeySpec="RSA_2048",
                                  WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256"), "InvalidParameter", 400)


def test_import_an_rsa_key_wrapped_with_the_openssl_commands(server, tmp_path):
    """The client steps of the reference (§7.2), with openssl only, for an RSA_2048
    ENCRYPT/DECRYPT key; a ciphertext made with the local public key decrypts here."""
    api = make_api("tea_v3", server)
    key = api.call("CreateKey", KeySpec="RSA_2048", KeyUsage="ENCRYPT/DECRYPT",
                   Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    ver = api.call("ListKeyVersions", KeyId=key)["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
    p = api.call("GetParametersForImport", KeyId=key, WrappingKeySpec="RSA_2048",
                 WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256")
    (tmp_path / "wrap_pub.der").write_bytes(unb64(p["PublicKey"]))
    script = """set -euo pipefail
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out tak.pem 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in tak.pem -outform DER -out tak.der
openssl rand -out esk.bin 32
openssl pkeyutl -encrypt -pubin -keyform DER -inkey wrap_pub.der -in esk.bin -out esk.enc \\
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
openssl enc -id-aes256-wrap-pad -K "$(xxd -p -c 64 esk.bin)" -iv A65959A6 -in tak.der -out tak.wrapped
cat esk.enc tak.wrapped | base64 -w0 > EncryptedKeyMaterial.b64
openssl pkey -in tak.pem -pubout -out tak_pub.pem
"""
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out
    api.call("ImportKeyMaterial", KeyId=key, ImportToken=p["ImportToken"],
             EncryptedKeyMaterial=(tmp_path / "EncryptedKeyMaterial.b64").read_text().strip())
    pem = api.call("GetPublicKey", KeyId=key, KeyVersionId=ver)["PublicKey"]
    assert pem == (tmp_path / "tak_pub.pem").read_text()
    local = serialization.load_pem_private_key((tmp_path / "tak.pem").read_bytes(), None)
    ct = local.public_key().encrypt(b"to the imported key", padding.OAEP(
        mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    r = api.call("AsymmetricDecrypt", KeyId=key, KeyVersionId=ver, Algorithm="RSAES_OAEP_SHA_256",
                 CiphertextBlob=b64(ct))
    assert unb64(r["Plaintext"]) == b"to the imported key"
    e = api.call("AsymmetricEncrypt", KeyId=key, KeyVersionId=ver, Algorithm="RSAES_OAEP_SHA_1",
                 Plaintext=b64(b"from here"))
    assert local.decrypt(unb64(e["CiphertextBlob"]), padding.OAEP(
        mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)) == b"from here"


def test_kms_sign_and_verify_commands(server, tmp_path):
    """`kms sign` hashes locally and signs; openssl verifies its output file; `kms verify`
    answers like openssl dgst (exit 0 "Verified OK", exit 1 "Verification failure")."""
    api = make_api("classic", server)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "KMS_"))}
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=server.ak, ALIBABA_CLOUD_ACCESS_KEY_SECRET=server.sk,
               KMS_ENDPOINT=f"http://127.0.0.1:{server.port}",
               KMS_CLI_CONFIG=str(tmp_path / "cli.toml"))
    (tmp_path / "firmware.bin").write_bytes(os.urandom(4096))
    for spec, alg, extra in (("EC_P256K", "ECDSA_SHA_256", []),
                             ("RSA_2048", "RSA_PSS_SHA_256",
                              ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-1"])):
        key = api.call("CreateKey", KeySpec=spec)["KeyMetadata"]["KeyId"]
        ver = api.call("ListKeyVersions", KeyId=key)["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
        (tmp_path / "pub.pem").write_text(api.call("GetPublicKey", KeyId=key, KeyVersionId=ver)["PublicKey"])
        common = ["--key-id", key, "--key-version-id", ver, "--algorithm", alg]

        def kms(*args, stdin=""):
            return subprocess.run([str(kms_bin()), *args], env=env, cwd=tmp_path, input=stdin,
                                  capture_output=True, text=True, timeout=60)
        p = kms("sign", *common, "--file", "firmware.bin", "--out", "firmware.sig")
        assert p.returncode == 0, p
        out = _openssl(["dgst", "-sha256", "-verify", "pub.pem", *extra, "-signature", "firmware.sig",
                        "firmware.bin"], cwd=tmp_path)
        assert out.returncode == 0 and b"Verified OK" in out.stdout, out
        p = kms("verify", *common, "--file", "firmware.bin", "--signature", "firmware.sig")
        assert (p.returncode, p.stdout.strip()) == (0, "Verified OK"), p
        # base64 on stdout without --out
        p = kms("sign", *common, "--file", "-", stdin="message on standard input")
        sig = unb64(p.stdout.strip())
        assert p.returncode == 0 and len(sig) >= 64, p
        (tmp_path / "firmware.bin").write_bytes(b"tampered" + (tmp_path / "firmware.bin").read_bytes())
        p = kms("verify", *common, "--file", "firmware.bin", "--signature", "firmware.sig")
        assert p.returncode == 1 and "Verification failure" in p.stderr, p
        p = kms("sign", *common[:-1], "SM2DSA", "--file", "firmware.bin")
        assert p.returncode == 2, p


def test_kms_import_material_takes_a_private_key_file(server, tmp_path):
    """`kms import-material --algorithm RSA_AES_KEY_WRAP_SHA_256` with a PKCS#8 PEM file, and
    `kms wrap` with a DER one; an encrypted/traditional key file is refused locally (exit 2)."""
    api = make_api("classic", server)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "KMS_"))}
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=server.ak, ALIBABA_CLOUD_ACCESS_KEY_SECRET=server.sk,
               KMS_ENDPOINT=f"http://127.0.0.1:{server.port}",
               KMS_CLI_CONFIG=str(tmp_path / "cli.toml"), HOME=str(tmp_path))

    def kms(*args):
        return subprocess.run([str(kms_bin()), *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
    priv = ec.generate_private_key(ec.SECP256K1())
    (tmp_path / "tak.pem").write_bytes(priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp_path / "tak.der").write_bytes(_pkcs8(priv))
    (tmp_path / "trad.pem").write_bytes(priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    want = priv.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    key = api.call("CreateKey", KeySpec="EC_P256K", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    ver = api.call("ListKeyVersions", KeyId=key)["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
    p = kms("import-material", "--key-id", key, "--material-file", "trad.pem",
            "--algorithm", "RSA_AES_KEY_WRAP_SHA_256")
    assert p.returncode == 2 and "openssl pkcs8 -topk8 -nocrypt" in p.stderr, p
    p = kms("import-material", "--key-id", key, "--material-file", "tak.pem",
            "--algorithm", "RSA_AES_KEY_WRAP_SHA_256")
    assert p.returncode == 0, p
    assert api.call("GetPublicKey", KeyId=key, KeyVersionId=ver)["PublicKey"] == want
    # kms wrap with a DER file, then ImportKeyMaterial by hand (the same key again).
    api.call("DeleteKeyMaterial", KeyId=key)
    params = api.call("GetParametersForImport", KeyId=key, WrappingKeySpec="RSA_2048",
                      WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256")
    (tmp_path / "PublicKey_base64.txt").write_text(params["PublicKey"])
    p = kms("wrap", "--public-key", "PublicKey_base64.txt", "--algorithm", "RSA_AES_KEY_WRAP_SHA_256",
            "--in", "tak.der")
    assert p.returncode == 0, p
    api.call("ImportKeyMaterial", KeyId=key, ImportToken=params["ImportToken"],
             EncryptedKeyMaterial=p.stdout.strip())
    assert api.call("DescribeKey", KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"
