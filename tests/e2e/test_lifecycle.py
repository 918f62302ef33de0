"""Tests that need a private server: test clock (deletion, token and material expiry), restarts, crashes."""
import datetime as dt
import os
import time

import pytest

from kms_helpers import (ClassicApi, assert_date_near, b64, expect_error, fmt_date,
                         make_api, unb64, wrap_key_material)


def external_with_material(api, material, expire=0, algorithm="RSAES_OAEP_SHA_256"):
    key_id = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    p = api.call("GetParametersForImport", KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec="RSA_2048")
    api.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p["ImportToken"],
             EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], material, algorithm),
             KeyMaterialExpireUnix=expire)
    return key_id


def state(api, key_id):
    return api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"]


# ------------------------------------------------------------------------------------------
# test clock
# ------------------------------------------------------------------------------------------
def test_clock_endpoint(own_server):
    r = own_server.advance_clock(100)
    assert r["OffsetSeconds"] == 100
    r = own_server.advance_clock(50)
    assert r["OffsetSeconds"] == 150  # cumulative
    # signature timestamps keep using real time, so SDK calls still work
    api = ClassicApi(own_server)
    key_id = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    # key-lifecycle dates follow the test clock
    api.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    md = api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]
    assert_date_near(md["DeleteDate"], own_server.now() + dt.timedelta(days=7), 30)


@pytest.mark.parametrize("flavour", ["classic", "tea_v3"])
def test_deletion_happens_after_window(own_server, flavour):
    api = make_api(flavour, own_server)
    doomed = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    survivor = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    api.call("ScheduleKeyDeletion", KeyId=doomed, PendingWindowInDays=7)
    delete_date = api.call("DescribeKey", KeyId=doomed)["KeyMetadata"]["DeleteDate"]
    assert_date_near(delete_date, own_server.now() + dt.timedelta(days=7), 60)

    own_server.advance_clock(7 * 86400 - 120)  # not yet
    assert state(api, doomed) == "PendingDeletion"

    own_server.advance_clock(125)  # past DeleteDate (+ a few seconds)
    expect_error(lambda: api.call("DescribeKey", KeyId=doomed), "Forbidden.KeyNotFound", 404)
    expect_error(lambda: api.call("CancelKeyDeletion", KeyId=doomed), "Forbidden.KeyNotFound", 404)
    time.sleep(2.5)  # let the background sweeper run too
    listed = {k["KeyId"] for k in api.call("ListKeys", PageSize=100)["Keys"]["Key"]}
    assert doomed not in listed
    assert survivor in listed
    assert state(api, survivor) == "Enabled"


def test_deleted_key_ciphertext_unusable(own_server):
    api = ClassicApi(own_server)
    key_id = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    blob = api.call("Encrypt", KeyId=key_id, Plaintext=b64(b"gone"))["CiphertextBlob"]
    api.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    own_server.advance_clock(7 * 86400 + 5)
    expect_error(lambda: api.call("Decrypt", CiphertextBlob=blob), "Forbidden.KeyNotFound", 404)


def test_deletion_survives_restart(own_server):
    """Deletion after the window also applies to a key whose deletion was scheduled before a restart."""
    api = ClassicApi(own_server)
    key_id = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    api.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    own_server.restart()
    assert state(api, key_id) == "PendingDeletion"
    own_server.advance_clock(7 * 86400 + 5)
    expect_error(lambda: api.call("DescribeKey", KeyId=key_id), "Forbidden.KeyNotFound", 404)


def test_import_token_expires_after_24h(own_server):
    api = ClassicApi(own_server)
    key_id = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    p = api.call("GetParametersForImport", KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                 WrappingKeySpec="RSA_2048")
    assert_date_near(p["TokenExpireTime"], own_server.now() + dt.timedelta(hours=24), 60)
    enc = wrap_key_material(p["PublicKey"], os.urandom(32), "RSAES_OAEP_SHA_256")
    own_server.advance_clock(86401)
    expect_error(lambda: api.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p["ImportToken"],
                                  EncryptedKeyMaterial=enc, KeyMaterialExpireUnix=0),
                 "ExpiredImportToken", 400)
    assert state(api, key_id) == "PendingImport"
    # a fresh token works
    p2 = api.call("GetParametersForImport", KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                  WrappingKeySpec="RSA_2048")
    assert_date_near(p2["TokenExpireTime"], own_server.now() + dt.timedelta(hours=24), 60)
    api.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p2["ImportToken"],
             EncryptedKeyMaterial=wrap_key_material(p2["PublicKey"], os.urandom(32), "RSAES_OAEP_SHA_256"),
             KeyMaterialExpireUnix=0)
    assert state(api, key_id) == "Enabled"


def test_import_token_valid_just_before_expiry(own_server):
    api = ClassicApi(own_server)
    key_id = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    p = api.call("GetParametersForImport", KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_1",
                 WrappingKeySpec="RSA_2048")
    own_server.advance_clock(86400 - 120)
    api.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p["ImportToken"],
             EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], os.urandom(32), "RSAES_OAEP_SHA_1"),
             KeyMaterialExpireUnix=0)
    assert state(api, key_id) == "Enabled"


@pytest.mark.parametrize("flavour", ["classic", "tea_v3", "tea_v2"])
def test_material_expiry(own_server, flavour):
    api = make_api(flavour, own_server)
    material = os.urandom(32)
    expire = int(own_server.now().timestamp()) + 3600
    key_id = external_with_material(api, material, expire=expire)
    md = api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]
    assert md["KeyState"] == "Enabled"
    assert md["MaterialExpireTime"] == fmt_date(dt.datetime.fromtimestamp(expire, dt.timezone.utc))
    blob = api.call("Encrypt", KeyId=key_id, Plaintext=b64(b"expiring"))["CiphertextBlob"]

    own_server.advance_clock(3700)
    assert state(api, key_id) == "PendingImport"
    expect_error(lambda: api.call("Encrypt", KeyId=key_id, Plaintext=b64(b"x")), "Rejected.PendingImport", 409)
    expect_error(lambda: api.call("Decrypt", CiphertextBlob=blob), "Rejected.PendingImport", 409)

    # re-importing the same material (no expiry) brings the key and its ciphertexts back
    p = api.call("GetParametersForImport", KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                 WrappingKeySpec="RSA_2048")
    api.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p["ImportToken"],
             EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], material, "RSAES_OAEP_SHA_256"),
             KeyMaterialExpireUnix=0)
    md = api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]
    assert md["KeyState"] == "Enabled"
    assert md["MaterialExpireTime"] == ""
    assert unb64(api.call("Decrypt", CiphertextBlob=blob)["Plaintext"]) == b"expiring"


def test_material_expiry_while_disabled(own_server):
    api = ClassicApi(own_server)
    expire = int(own_server.now().timestamp()) + 3600
    key_id = external_with_material(api, os.urandom(32), expire=expire)
    api.call("DisableKey", KeyId=key_id)
    own_server.advance_clock(3700)
    assert state(api, key_id) == "PendingImport"


def test_material_expiry_during_pending_deletion_keeps_state(own_server):
    api = ClassicApi(own_server)
    expire = int(own_server.now().timestamp()) + 3600
    key_id = external_with_material(api, os.urandom(32), expire=expire)
    api.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    before = api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]
    own_server.advance_clock(3700)
    after = api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]
    assert after["KeyState"] == "PendingDeletion"
    assert after["DeleteDate"] == before["DeleteDate"]
    api.call("CancelKeyDeletion", KeyId=key_id)
    assert state(api, key_id) == "PendingImport"


# ------------------------------------------------------------------------------------------
# restart / crash
# ------------------------------------------------------------------------------------------
def _populate(api):
    normal = api.call("CreateKey", Description="persist me")["KeyMetadata"]
    disabled = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    api.call("DisableKey", KeyId=disabled)
    pending = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    api.call("ScheduleKeyDeletion", KeyId=pending, PendingWindowInDays=9)
    material = os.urandom(32)
    ext = external_with_material(api, material, algorithm="RSAES_PKCS1_V1_5")
    ctx = {"persist": "yes"}
    blob = api.call("Encrypt", KeyId=normal["KeyId"], Plaintext=b64(b"normal"), EncryptionContext=ctx)["CiphertextBlob"]
    ext_blob = api.call("Encrypt", KeyId=ext, Plaintext=b64(b"external"))["CiphertextBlob"]
    dk = api.call("GenerateDataKey", KeyId=normal["KeyId"])
    snapshot = {k: api.call("DescribeKey", KeyId=k)["KeyMetadata"] for k in (normal["KeyId"], disabled, pending, ext)}
    return dict(normal=normal["KeyId"], disabled=disabled, pending=pending, ext=ext, material=material,
                blob=blob, ext_blob=ext_blob, ctx=ctx, dk=dk, snapshot=snapshot)


def _verify(api, s):
    listed = {k["KeyId"] for k in api.call("ListKeys", PageSize=100)["Keys"]["Key"]}
    assert {s["normal"], s["disabled"], s["pending"], s["ext"]} <= listed
    for key_id, before in s["snapshot"].items():
        after = api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]
        assert after == before, f"metadata of {key_id} changed across restart"
    d = api.call("Decrypt", CiphertextBlob=s["blob"], EncryptionContext=s["ctx"])
    assert unb64(d["Plaintext"]) == b"normal"
    assert unb64(api.call("Decrypt", CiphertextBlob=s["ext_blob"])["Plaintext"]) == b"external"
    assert api.call("Decrypt", CiphertextBlob=s["dk"]["CiphertextBlob"])["Plaintext"] == s["dk"]["Plaintext"]
    # new operations work too
    blob = api.call("Encrypt", KeyId=s["ext"], Plaintext=b64(b"after"))["CiphertextBlob"]
    assert unb64(api.call("Decrypt", CiphertextBlob=blob)["Plaintext"]) == b"after"
    api.call("CancelKeyDeletion", KeyId=s["pending"])
    assert state(api, s["pending"]) == "Enabled"


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_data_survives_restart(own_server, how):
    api = ClassicApi(own_server)
    s = _populate(api)
    if how == "sigterm":
        own_server.restart()
    else:
        own_server.kill9_and_restart()
    _verify(ClassicApi(own_server), s)
    _verify_tea = make_api("tea_v3", own_server)
    assert _verify_tea.call("DescribeKey", KeyId=s["ext"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_sigterm_exits_cleanly(own_server):
    rc = own_server.stop()
    assert rc == 0, f"graceful SIGTERM shutdown should exit 0, got {rc}\n{own_server.log_tail()}"


def test_write_immediately_before_kill9(own_server):
    """Every acknowledged write is durable: kill -9 right after the response."""
    api = ClassicApi(own_server)
    ids = [api.call("CreateKey")["KeyMetadata"]["KeyId"] for _ in range(5)]
    api.call("DisableKey", KeyId=ids[-1])
    own_server.kill9_and_restart()
    listed = {k["KeyId"] for k in api.call("ListKeys", PageSize=100)["Keys"]["Key"]}
    assert set(ids) <= listed
    assert state(api, ids[-1]) == "Disabled"


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_import_token_survives_restart(own_server, how):
    api = ClassicApi(own_server)
    key_id = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    p = api.call("GetParametersForImport", KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                 WrappingKeySpec="RSA_2048")
    if how == "sigterm":
        own_server.restart()
    else:
        own_server.kill9_and_restart()
    api.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p["ImportToken"],
             EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], os.urandom(32), "RSAES_OAEP_SHA_256"),
             KeyMaterialExpireUnix=0)
    assert state(api, key_id) == "Enabled"


def test_second_account_persists(own_server):
    acct = own_server.new_account()
    api = make_api("classic", own_server, acct["AccessKeyId"], acct["AccessKeySecret"])
    key_id = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    own_server.restart()
    md = api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]
    assert md["Creator"] == acct["AccountId"]
    # the first access key (from the environment) still works, and still cannot see it
    first = ClassicApi(own_server)
    expect_error(lambda: first.call("DescribeKey", KeyId=key_id), "Forbidden.KeyNotFound", 404)


def test_admin_create_while_stopped(own_server):
    own_server.stop()
    acct = own_server.new_account("9999999999999999")
    own_server.start()
    api = make_api("tea_v3", own_server, acct["AccessKeyId"], acct["AccessKeySecret"])
    md = api.call("CreateKey")["KeyMetadata"]
    assert md["Creator"] == "9999999999999999"
