"""Encrypt / Decrypt / GenerateDataKey(WithoutPlaintext) / ReEncrypt / DryRun through all Python SDKs."""
import base64
import os
import uuid

import pytest

from kms_helpers import UUID_RE, KmsError, arn_of, b64, expect_error, unb64


def new_key(api) -> dict:
    return api.call("CreateKey")["KeyMetadata"]


@pytest.fixture
def key(api):
    return new_key(api)


def flip_last_byte(blob: str) -> str:
    raw = bytearray(unb64(blob))
    raw[-1] ^= 0x01
    return b64(bytes(raw))


# ------------------------------------------------------------------------------------------
# Encrypt / Decrypt
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("by", ["id", "arn"])
def test_encrypt_decrypt_roundtrip(api, key, by):
    pt = os.urandom(100)
    ref = key["KeyId"] if by == "id" else key["Arn"]
    enc = api.call("Encrypt", KeyId=ref, Plaintext=b64(pt))
    assert enc["KeyId"] == key["KeyId"]
    assert enc["KeyVersionId"] == key["PrimaryKeyVersion"]
    assert UUID_RE.match(enc["KeyVersionId"])
    assert isinstance(enc["RequestId"], str) and enc["RequestId"]
    blob = enc["CiphertextBlob"]
    assert base64.b64encode(base64.b64decode(blob)).decode() == blob, "CiphertextBlob must be padded std base64"
    assert pt not in unb64(blob)
    dec = api.call("Decrypt", CiphertextBlob=blob)
    assert unb64(dec["Plaintext"]) == pt
    assert dec["KeyId"] == key["KeyId"]
    assert dec["KeyVersionId"] == enc["KeyVersionId"]
    assert isinstance(dec["RequestId"], str) and dec["RequestId"]


def test_encrypt_is_randomized(api, key):
    pt = b64(b"same plaintext")
    a = api.call("Encrypt", KeyId=key["KeyId"], Plaintext=pt)["CiphertextBlob"]
    b = api.call("Encrypt", KeyId=key["KeyId"], Plaintext=pt)["CiphertextBlob"]
    assert a != b


def test_encryption_context_order_and_whitespace(capi):
    key_id = new_key(capi)["KeyId"]
    pt = b64(b"ctx")
    blob = capi.call("Encrypt", KeyId=key_id, Plaintext=pt,
                     EncryptionContext='{"a":"1","b":"2","ü":"é *"}')["CiphertextBlob"]
    for ctx in ('{"a":"1","b":"2","ü":"é *"}',
                '{ "b" : "2" , "ü":"é *",\n "a" : "1" }',
                '{"\\u00fc":"\\u00e9 *","b":"2","a":"1"}'):
        assert capi.call("Decrypt", CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == pt, ctx


def test_encryption_context_dict_across_sdks(api):
    key_id = new_key(api)["KeyId"]
    pt = b64(b"ctx across sdks")
    ctx = {"purpose": "e2e test", "tenant": "ü*~/+="}
    blob = api.call("Encrypt", KeyId=key_id, Plaintext=pt, EncryptionContext=ctx)["CiphertextBlob"]
    assert api.call("Decrypt", CiphertextBlob=blob,
                    EncryptionContext=dict(reversed(list(ctx.items()))))["Plaintext"] == pt
    for bad in ({"purpose": "e2e test"}, {**ctx, "extra": "x"}, {"purpose": "E2E test", "tenant": "ü*~/+="}):
        e = expect_error(lambda: api.call("Decrypt", CiphertextBlob=blob, EncryptionContext=bad),
                         "InvalidParameter", 400)
        assert "CiphertextBlob" in e.message, e.message
    e = expect_error(lambda: api.call("Decrypt", CiphertextBlob=blob), "InvalidParameter", 400)
    assert "CiphertextBlob" in e.message


def test_context_supplied_but_not_used_at_encrypt(api, key):
    blob = api.call("Encrypt", KeyId=key["KeyId"], Plaintext=b64(b"x"))["CiphertextBlob"]
    e = expect_error(lambda: api.call("Decrypt", CiphertextBlob=blob, EncryptionContext={"a": "b"}),
                     "InvalidParameter", 400)
    assert "CiphertextBlob" in e.message


@pytest.mark.parametrize("mutate", ["flip_last", "truncate", "append", "garbage"])
def test_tampered_ciphertext(api, key, mutate):
    blob = api.call("Encrypt", KeyId=key["KeyId"], Plaintext=b64(b"tamper me"))["CiphertextBlob"]
    raw = unb64(blob)
    if mutate == "flip_last":
        bad = flip_last_byte(blob)
    elif mutate == "truncate":
        bad = b64(raw[:-1])
    elif mutate == "append":
        bad = b64(raw + b"\x00")
    else:
        bad = b64(os.urandom(len(raw)))
    if mutate == "garbage":
        # Random bytes are not a *tampered* blob: with probability ~1/256 they happen to look like a
        # well-formed blob naming an unknown key, which is legitimately 404 Forbidden.KeyNotFound.
        try:
            got = api.call("Decrypt", CiphertextBlob=bad)
        except KmsError as e:
            assert (e.code, e.status) in {("InvalidParameter", 400), ("Forbidden.KeyNotFound", 404)}, e
        else:
            raise AssertionError(f"random ciphertext decrypted: {got}")
        return
    e = expect_error(lambda: api.call("Decrypt", CiphertextBlob=bad), "InvalidParameter", 400)
    assert "CiphertextBlob" in e.message, e.message


@pytest.mark.parametrize("size,ok", [(1, True), (6144, True), (6145, False), (8192, False)])
def test_plaintext_size_limit(capi, size, ok):
    key_id = new_key(capi)["KeyId"]
    pt = os.urandom(size)
    if ok:
        blob = capi.call("Encrypt", KeyId=key_id, Plaintext=b64(pt))["CiphertextBlob"]
        assert unb64(capi.call("Decrypt", CiphertextBlob=blob)["Plaintext"]) == pt
    else:
        expect_error(lambda: capi.call("Encrypt", KeyId=key_id, Plaintext=b64(pt)), "InvalidParameter", 400)


@pytest.mark.parametrize("plaintext", ["not base64!", "YWJj*", "YW=Jj"])
def test_bad_base64_plaintext(capi, plaintext):
    key_id = new_key(capi)["KeyId"]
    expect_error(lambda: capi.call("Encrypt", KeyId=key_id, Plaintext=plaintext), "InvalidParameter", 400)


@pytest.mark.parametrize("ctx", ["[1,2]", '{"a":1}', '{"a":{"b":"c"}}', '{"a":["b"]}', '{"a":null}',
                                 "not json", '"string"', '{"a":"b"'])
@pytest.mark.parametrize("action", ["Encrypt", "GenerateDataKey", "Decrypt"])
def test_invalid_encryption_context(capi, action, ctx):
    key_id = new_key(capi)["KeyId"]
    if action == "Encrypt":
        params = dict(KeyId=key_id, Plaintext=b64(b"x"))
    elif action == "GenerateDataKey":
        params = dict(KeyId=key_id)
    else:
        params = dict(CiphertextBlob=capi.call("Encrypt", KeyId=key_id, Plaintext=b64(b"x"))["CiphertextBlob"])
    expect_error(lambda: capi.call(action, EncryptionContext=ctx, **params), "InvalidParameter", 400)


def test_encrypt_unknown_key(api):
    expect_error(lambda: api.call("Encrypt", KeyId=str(uuid.uuid4()), Plaintext=b64(b"x")),
                 "Forbidden.KeyNotFound", 404)
    expect_error(lambda: api.call("Encrypt", KeyId=arn_of(str(uuid.uuid4())), Plaintext=b64(b"x")),
                 "Forbidden.KeyNotFound", 404)
    expect_error(lambda: api.call("GenerateDataKey", KeyId=str(uuid.uuid4())), "Forbidden.KeyNotFound", 404)


def test_decrypt_after_disable_enable(api, key):
    blob = api.call("Encrypt", KeyId=key["KeyId"], Plaintext=b64(b"lifecycle"))["CiphertextBlob"]
    api.call("DisableKey", KeyId=key["KeyId"])
    expect_error(lambda: api.call("Decrypt", CiphertextBlob=blob), "Rejected.Disabled", 409)
    api.call("EnableKey", KeyId=key["KeyId"])
    assert unb64(api.call("Decrypt", CiphertextBlob=blob)["Plaintext"]) == b"lifecycle"


def test_decrypt_after_cancel_deletion(api, key):
    blob = api.call("Encrypt", KeyId=key["KeyId"], Plaintext=b64(b"pending"))["CiphertextBlob"]
    api.call("ScheduleKeyDeletion", KeyId=key["KeyId"], PendingWindowInDays=7)
    expect_error(lambda: api.call("Decrypt", CiphertextBlob=blob), "Rejected.PendingDeletion", 409)
    api.call("CancelKeyDeletion", KeyId=key["KeyId"])
    assert unb64(api.call("Decrypt", CiphertextBlob=blob)["Plaintext"]) == b"pending"


def test_ciphertext_from_other_key_not_mixed(api):
    a, b = new_key(api), new_key(api)
    blob_a = api.call("Encrypt", KeyId=a["KeyId"], Plaintext=b64(b"A"))["CiphertextBlob"]
    blob_b = api.call("Encrypt", KeyId=b["KeyId"], Plaintext=b64(b"B"))["CiphertextBlob"]
    assert api.call("Decrypt", CiphertextBlob=blob_a)["KeyId"] == a["KeyId"]
    assert api.call("Decrypt", CiphertextBlob=blob_b)["KeyId"] == b["KeyId"]


# ------------------------------------------------------------------------------------------
# data keys
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("params,length", [
    ({}, 32),
    ({"KeySpec": "AES_256"}, 32),
    ({"KeySpec": "AES_128"}, 16),
    ({"NumberOfBytes": 1}, 1),
    ({"NumberOfBytes": 1024}, 1024),
    ({"KeySpec": "AES_128", "NumberOfBytes": 64}, 64),
    ({"KeySpec": "AES_256", "NumberOfBytes": 7}, 7),
], ids=["default", "aes256", "aes128", "n1", "n1024", "n-wins-128", "n-wins-256"])
def test_generate_data_key(api, key, params, length):
    ctx = {"dk": "yes"}
    r = api.call("GenerateDataKey", KeyId=key["KeyId"], EncryptionContext=ctx, **params)
    assert r["KeyId"] == key["KeyId"]
    assert r["KeyVersionId"] == key["PrimaryKeyVersion"]
    pt = unb64(r["Plaintext"])
    assert len(pt) == length
    dec = api.call("Decrypt", CiphertextBlob=r["CiphertextBlob"], EncryptionContext=ctx)
    assert unb64(dec["Plaintext"]) == pt
    assert dec["KeyId"] == key["KeyId"]
    expect_error(lambda: api.call("Decrypt", CiphertextBlob=r["CiphertextBlob"]), "InvalidParameter", 400)


@pytest.mark.parametrize("params,length", [({}, 32), ({"KeySpec": "AES_128"}, 16), ({"NumberOfBytes": 100}, 100)])
def test_generate_data_key_without_plaintext(api, key, params, length):
    r = api.call("GenerateDataKeyWithoutPlaintext", KeyId=key["Arn"], **params)
    assert "Plaintext" not in r, r
    assert r["KeyId"] == key["KeyId"]
    assert r["KeyVersionId"] == key["PrimaryKeyVersion"]
    dec = api.call("Decrypt", CiphertextBlob=r["CiphertextBlob"])
    assert len(unb64(dec["Plaintext"])) == length


def test_data_keys_are_random(api, key):
    a = api.call("GenerateDataKey", KeyId=key["KeyId"])["Plaintext"]
    b = api.call("GenerateDataKey", KeyId=key["KeyId"])["Plaintext"]
    assert a != b


@pytest.mark.parametrize("action", ["GenerateDataKey", "GenerateDataKeyWithoutPlaintext"])
@pytest.mark.parametrize("params", [{"NumberOfBytes": 0}, {"NumberOfBytes": 1025}, {"NumberOfBytes": -1},
                                    {"KeySpec": "AES_512"}, {"KeySpec": "Aliyun_AES_256"}])
def test_generate_data_key_invalid(capi, action, params):
    key_id = new_key(capi)["KeyId"]
    expect_error(lambda: capi.call(action, KeyId=key_id, **params), "InvalidParameter", 400)


# ------------------------------------------------------------------------------------------
# ReEncrypt
# ------------------------------------------------------------------------------------------
def test_reencrypt(api):
    src, dst = new_key(api), new_key(api)
    pt = os.urandom(48)
    blob = api.call("Encrypt", KeyId=src["KeyId"], Plaintext=b64(pt),
                    EncryptionContext={"stage": "one"})["CiphertextBlob"]
    r = api.call("ReEncrypt", CiphertextBlob=blob, DestinationKeyId=dst["KeyId"],
                 SourceEncryptionContext={"stage": "one"}, DestinationEncryptionContext={"stage": "two"})
    assert r["KeyId"] == dst["KeyId"]
    assert r["KeyVersionId"] == dst["PrimaryKeyVersion"]
    assert isinstance(r["RequestId"], str) and r["RequestId"]
    dec = api.call("Decrypt", CiphertextBlob=r["CiphertextBlob"], EncryptionContext={"stage": "two"})
    assert unb64(dec["Plaintext"]) == pt
    assert dec["KeyId"] == dst["KeyId"]
    expect_error(lambda: api.call("Decrypt", CiphertextBlob=r["CiphertextBlob"],
                                  EncryptionContext={"stage": "one"}), "InvalidParameter", 400)
    # the source ciphertext is untouched
    assert unb64(api.call("Decrypt", CiphertextBlob=blob,
                          EncryptionContext={"stage": "one"})["Plaintext"]) == pt


def test_reencrypt_same_key_by_arn(api, key):
    blob = api.call("Encrypt", KeyId=key["KeyId"], Plaintext=b64(b"same"))["CiphertextBlob"]
    r = api.call("ReEncrypt", CiphertextBlob=blob, DestinationKeyId=key["Arn"])
    assert r["KeyId"] == key["KeyId"]
    assert unb64(api.call("Decrypt", CiphertextBlob=r["CiphertextBlob"])["Plaintext"]) == b"same"


def test_reencrypt_wrong_source_context(api):
    src, dst = new_key(api), new_key(api)
    blob = api.call("Encrypt", KeyId=src["KeyId"], Plaintext=b64(b"x"),
                    EncryptionContext={"a": "b"})["CiphertextBlob"]
    e = expect_error(lambda: api.call("ReEncrypt", CiphertextBlob=blob, DestinationKeyId=dst["KeyId"],
                                      SourceEncryptionContext={"a": "c"}), "InvalidParameter", 400)
    assert "CiphertextBlob" in e.message


def test_reencrypt_destination_states(capi):
    src, dst = new_key(capi), new_key(capi)
    blob = capi.call("Encrypt", KeyId=src["KeyId"], Plaintext=b64(b"x"))["CiphertextBlob"]
    expect_error(lambda: capi.call("ReEncrypt", CiphertextBlob=blob, DestinationKeyId=str(uuid.uuid4())),
                 "Forbidden.KeyNotFound", 404)
    capi.call("DisableKey", KeyId=dst["KeyId"])
    expect_error(lambda: capi.call("ReEncrypt", CiphertextBlob=blob, DestinationKeyId=dst["KeyId"]),
                 "Rejected.Disabled", 409)
    capi.call("DisableKey", KeyId=src["KeyId"])
    capi.call("EnableKey", KeyId=dst["KeyId"])
    expect_error(lambda: capi.call("ReEncrypt", CiphertextBlob=blob, DestinationKeyId=dst["KeyId"]),
                 "Rejected.Disabled", 409)


# ------------------------------------------------------------------------------------------
# DryRun
# ------------------------------------------------------------------------------------------
def _dry_run_params(api, action, key):
    blob = api.call("Encrypt", KeyId=key["KeyId"], Plaintext=b64(b"dry"))["CiphertextBlob"]
    return {
        "Encrypt": dict(KeyId=key["KeyId"], Plaintext=b64(b"dry")),
        "Decrypt": dict(CiphertextBlob=blob),
        "GenerateDataKey": dict(KeyId=key["KeyId"]),
        "GenerateDataKeyWithoutPlaintext": dict(KeyId=key["KeyId"]),
        "ReEncrypt": dict(CiphertextBlob=blob, DestinationKeyId=key["KeyId"]),
    }[action]


@pytest.mark.parametrize("action", ["Encrypt", "Decrypt", "GenerateDataKey",
                                    "GenerateDataKeyWithoutPlaintext", "ReEncrypt"])
def test_dry_run_reports_real_error(capi, action):
    """DryRunOperationError only when the call would succeed; otherwise the real error."""
    key = new_key(capi)
    params = _dry_run_params(capi, action, key)
    capi.call("DisableKey", KeyId=key["KeyId"])
    expect_error(lambda: capi.call(action, DryRun="true", **params), "Rejected.Disabled", 409)
    if "KeyId" in params:
        params = dict(params, KeyId=str(uuid.uuid4()))
        expect_error(lambda: capi.call(action, DryRun="true", **params), "Forbidden.KeyNotFound", 404)


def test_dry_run_invalid_value(capi):
    key_id = new_key(capi)["KeyId"]
    expect_error(lambda: capi.call("Encrypt", KeyId=key_id, Plaintext=b64(b"x"), DryRun="maybe"),
                 "InvalidParameter", 400)


def test_encryption_context_too_long(capi):
    """Reference §3.11: context total length <= 8192 characters."""
    key_id = new_key(capi)["KeyId"]
    expect_error(lambda: capi.call("Encrypt", KeyId=key_id, Plaintext=b64(b"x"),
                                   EncryptionContext={"a": "x" * 9000}), "InvalidParameter", 400)


@pytest.mark.parametrize("action", ["Encrypt", "Decrypt", "GenerateDataKey",
                                    "GenerateDataKeyWithoutPlaintext", "ReEncrypt"])
def test_dry_run(api, key, action):
    params = _dry_run_params(api, action, key)
    expect_error(lambda: api.call(action, DryRun="true", **params), "DryRunOperationError", 400)
    r = api.call(action, DryRun="false", **params)
    assert r["KeyId"] == key["KeyId"]
