"""Key management through the three Python SDK flavours: CreateKey/DescribeKey/ListKeys, lifecycle,
deletion protection, the key-state x action matrix and account isolation."""
import datetime as dt
import uuid

import pytest

from kms_helpers import (REGION, arn_of, assert_date_near,
                         assert_key_metadata, b64, expect_error, make_api, wrap_key_material)


def create(api, **params) -> dict:
    return api.call("CreateKey", **params)["KeyMetadata"]


def describe(api, key_id) -> dict:
    return api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]


def state_of(api, key_id) -> str:
    return describe(api, key_id)["KeyState"]


# ------------------------------------------------------------------------------------------
# CreateKey / DescribeKey
# ------------------------------------------------------------------------------------------
def test_create_default_key(api, server):
    resp = api.call("CreateKey")
    assert isinstance(resp["RequestId"], str) and resp["RequestId"]
    md = resp["KeyMetadata"]
    assert_key_metadata(md, state="Enabled", origin="Aliyun_KMS", description="",
                        created_near=server.now(), skip=api.create_key_model_lacks)
    if not api.create_key_model_lacks:
        assert md["DeletionProtection"] == "Disabled"
        assert md["DeletionProtectionDescription"] == ""
    assert md["MaterialExpireTime"] == ""
    d = describe(api, md["KeyId"])
    assert_key_metadata(d, state="Enabled")
    assert d["DeletionProtection"] == "Disabled"
    assert d["DeletionProtectionDescription"] == ""
    for field in ("KeyId", "Arn", "CreationDate", "PrimaryKeyVersion", "Description", "Origin"):
        assert d[field] == md[field], field


def test_create_explicit_params(api):
    desc = "explicit params: spaces * ~ + / = é"
    md = create(api, Description=desc, KeySpec="Aliyun_AES_256", KeyUsage="ENCRYPT/DECRYPT",
                ProtectionLevel="SOFTWARE", Origin="Aliyun_KMS")
    assert_key_metadata(md, state="Enabled", description=desc, skip=api.create_key_model_lacks)
    assert describe(api, md["KeyId"])["Description"] == desc


def test_create_external_key(api, server):
    md = create(api, Origin="EXTERNAL", Description="byok")
    assert_key_metadata(md, state="PendingImport", origin="EXTERNAL", description="byok",
                        created_near=server.now(), skip=api.create_key_model_lacks)
    assert md["MaterialExpireTime"] == ""
    d = describe(api, md["KeyId"])
    assert_key_metadata(d, state="PendingImport", origin="EXTERNAL")
    assert d["PrimaryKeyVersion"] == md["PrimaryKeyVersion"]


def test_create_description_limit(capi):
    """Reference §3.2: Description 0-8192 characters."""
    assert create(capi, Description="d" * 8192)["Description"] == "d" * 8192
    expect_error(lambda: capi.call("CreateKey", Description="d" * 8193), "InvalidParameter", 400)


@pytest.mark.parametrize("spec", ["Aliyun_AES_999", "aliyun_aes_256", "bogus"])
def test_create_bad_key_spec(api, spec):
    expect_error(lambda: api.call("CreateKey", KeySpec=spec), "InvalidParameter", 400)


def test_describe_by_arn(api):
    md = create(api)
    d = describe(api, md["Arn"])
    assert d["KeyId"] == md["KeyId"]
    assert d["Arn"] == arn_of(md["KeyId"])


def test_describe_unknown_key(api):
    expect_error(lambda: api.call("DescribeKey", KeyId=str(uuid.uuid4())), "Forbidden.KeyNotFound", 404)
    expect_error(lambda: api.call("DescribeKey", KeyId=arn_of(str(uuid.uuid4()))),
                 "Forbidden.KeyNotFound", 404)


def test_describe_regions(api):
    resp = api.call("DescribeRegions")
    assert resp["Regions"] == {"Region": [{"RegionId": REGION}]}
    assert isinstance(resp["RequestId"], str) and resp["RequestId"]


def test_update_key_description(api):
    md = create(api, Description="before")
    resp = api.call("UpdateKeyDescription", KeyId=md["KeyId"], Description="after é *")
    assert set(resp) == {"RequestId"}, resp
    assert describe(api, md["KeyId"])["Description"] == "after é *"


# ------------------------------------------------------------------------------------------
# ListKeys (each test uses a brand-new account so counts are exact)
# ------------------------------------------------------------------------------------------
@pytest.fixture
def fresh_account(server):
    return server.new_account()


def _keyset(resp):
    return {k["KeyId"] for k in resp["Keys"]["Key"]}


def test_list_keys_paging(server, fresh_account):
    api = make_api("classic", server, fresh_account["AccessKeyId"], fresh_account["AccessKeySecret"])
    acct = fresh_account["AccountId"]
    ids = {create(api)["KeyId"] for _ in range(5)}

    listing = api.call("ListKeys")
    assert listing["PageNumber"] == 1 and listing["PageSize"] == 10
    assert listing["TotalCount"] == 5
    assert _keyset(listing) == ids
    for k in listing["Keys"]["Key"]:
        assert set(k) == {"KeyId", "KeyArn"}, k
        assert k["KeyArn"] == arn_of(k["KeyId"], acct)

    for flavour in ("classic", "tea_v3", "tea_v2"):
        a = make_api(flavour, server, fresh_account["AccessKeyId"], fresh_account["AccessKeySecret"])
        seen = []
        for page in (1, 2, 3):
            r = a.call("ListKeys", PageNumber=page, PageSize=2)
            assert type(r["PageNumber"]) is int and r["PageNumber"] == page, (flavour, r)
            assert type(r["PageSize"]) is int and r["PageSize"] == 2, (flavour, r)
            assert type(r["TotalCount"]) is int and r["TotalCount"] == 5, (flavour, r)
            assert len(r["Keys"]["Key"]) == (2 if page < 3 else 1), (flavour, r)
            seen += [k["KeyId"] for k in r["Keys"]["Key"]]
        assert len(seen) == 5 and set(seen) == ids, flavour
        beyond = a.call("ListKeys", PageNumber=4, PageSize=2)
        assert beyond["TotalCount"] == 5
        assert beyond["Keys"] == {"Key": []}, beyond


def test_list_keys_empty_account_wrapper(server, fresh_account):
    for flavour in ("classic", "tea_v3"):
        a = make_api(flavour, server, fresh_account["AccessKeyId"], fresh_account["AccessKeySecret"])
        r = a.call("ListKeys")
        assert r["TotalCount"] == 0
        assert r["Keys"] == {"Key": []}, r


@pytest.mark.parametrize("size", [0, 101])
def test_list_keys_bad_page_size(capi, size):
    expect_error(lambda: capi.call("ListKeys", PageSize=size), "InvalidParameter", 400)


def test_list_keys_page_size_bounds_ok(capi):
    assert capi.call("ListKeys", PageSize=1)["PageSize"] == 1
    assert capi.call("ListKeys", PageSize=100)["PageSize"] == 100


@pytest.mark.parametrize("flavour", ["classic", "tea_v3", "tea_v2"])
def test_list_keys_filters(server, fresh_account, flavour):
    api = make_api(flavour, server, fresh_account["AccessKeyId"], fresh_account["AccessKeySecret"])
    enabled = {create(api)["KeyId"] for _ in range(2)}
    disabled = create(api)["KeyId"]
    api.call("DisableKey", KeyId=disabled)
    external = create(api, Origin="EXTERNAL")["KeyId"]
    pending_del = create(api)["KeyId"]
    api.call("ScheduleKeyDeletion", KeyId=pending_del, PendingWindowInDays=7)
    everything = enabled | {disabled, external, pending_del}

    def listed(filters):
        r = api.call("ListKeys", Filters=filters, PageSize=100)
        assert r["TotalCount"] == len(r["Keys"]["Key"]), r
        return _keyset(r)

    assert listed('[{"Key":"KeyState","Values":["Enabled"]}]') == enabled
    assert listed('[{"Key":"KeyState","Values":["Enabled","Disabled"]}]') == enabled | {disabled}
    assert listed('[{"Key":"KeyState","Values":["PendingImport"]}]') == {external}
    assert listed('[{"Key":"KeyState","Values":["PendingDeletion"]}]') == {pending_del}
    assert listed('[{"Key":"Origin","Values":["EXTERNAL"]}]') == {external}
    assert listed('[{"Key":"Origin","Values":["Aliyun_KMS"]}]') == everything - {external}
    assert listed('[{"Key":"KeySpec","Values":["Aliyun_AES_256"]}]') == everything
    assert listed('[{"Key":"KeyUsage","Values":["ENCRYPT/DECRYPT"]}]') == everything
    assert listed('[{"Key":"ProtectionLevel","Values":["SOFTWARE"]}]') == everything
    assert listed('[{"Key":"ProtectionLevel","Values":["HSM"]}]') == set()
    # AND across keys
    assert listed('[{"Key":"KeyState","Values":["Enabled","PendingImport"]},'
                  '{"Key":"Origin","Values":["EXTERNAL"]}]') == {external}
    assert listed('[{"Key":"KeyState","Values":["Disabled"]},'
                  '{"Key":"Origin","Values":["EXTERNAL"]}]') == set()
    # whitespace-tolerant JSON
    assert listed('[ { "Key" : "KeyState", "Values" : [ "Disabled" ] } ]') == {disabled}


@pytest.mark.parametrize("filters", ["not json", '{"Key":"KeyState"}', "[{", '[{"Key":"KeyState","Values":"Enabled"}]'])
def test_list_keys_invalid_filters(capi, filters):
    expect_error(lambda: capi.call("ListKeys", Filters=filters), "InvalidParameter", 400)


# ------------------------------------------------------------------------------------------
# lifecycle
# ------------------------------------------------------------------------------------------
def test_disable_enable(api):
    key_id = create(api)["KeyId"]
    assert set(api.call("DisableKey", KeyId=key_id)) == {"RequestId"}
    assert state_of(api, key_id) == "Disabled"
    api.call("DisableKey", KeyId=key_id)  # idempotent
    assert state_of(api, key_id) == "Disabled"
    assert set(api.call("EnableKey", KeyId=key_id)) == {"RequestId"}
    assert state_of(api, key_id) == "Enabled"
    api.call("EnableKey", KeyId=key_id)
    assert state_of(api, key_id) == "Enabled"


def test_schedule_and_cancel_deletion(api, server):
    key_id = create(api)["KeyId"]
    resp = api.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    assert set(resp) == {"RequestId"}
    md = describe(api, key_id)
    assert md["KeyState"] == "PendingDeletion"
    assert_date_near(md["DeleteDate"], server.now() + dt.timedelta(days=7), 30)
    assert set(api.call("CancelKeyDeletion", KeyId=key_id)) == {"RequestId"}
    md = describe(api, key_id)
    assert md["KeyState"] == "Enabled"
    assert md["DeleteDate"] == ""


def test_schedule_from_disabled_and_cancel_gives_enabled(capi):
    key_id = create(capi)["KeyId"]
    capi.call("DisableKey", KeyId=key_id)
    capi.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=30)
    assert state_of(capi, key_id) == "PendingDeletion"
    capi.call("CancelKeyDeletion", KeyId=key_id)
    assert state_of(capi, key_id) == "Enabled"


@pytest.mark.parametrize("days,ok", [(6, False), (7, True), (366, True), (367, False), (0, False), (-1, False)])
def test_schedule_window_bounds(capi, server, days, ok):
    key_id = create(capi)["KeyId"]
    if ok:
        capi.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=days)
        md = describe(capi, key_id)
        assert md["KeyState"] == "PendingDeletion"
        assert_date_near(md["DeleteDate"], server.now() + dt.timedelta(days=days), 30)
    else:
        expect_error(lambda: capi.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=days),
                     "InvalidParameter", 400)
        assert state_of(capi, key_id) == "Enabled"


def test_deletion_protection(api):
    md = create(api)
    key_id = md["KeyId"]
    resp = api.call("SetDeletionProtection", EnableDeletionProtection=True,
                    ProtectedResourceArn=md["Arn"], DeletionProtectionDescription="do not delete")
    assert set(resp) == {"RequestId"}
    d = describe(api, key_id)
    assert d["DeletionProtection"] == "Enabled"
    assert d["DeletionProtectionDescription"] == "do not delete"
    expect_error(lambda: api.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7),
                 "Forbidden.NoPermission", 403)
    assert state_of(api, key_id) == "Enabled"
    api.call("SetDeletionProtection", EnableDeletionProtection=False, ProtectedResourceArn=md["Arn"])
    assert describe(api, key_id)["DeletionProtection"] == "Disabled"
    api.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    assert state_of(api, key_id) == "PendingDeletion"


# ------------------------------------------------------------------------------------------
# key-state x action matrix (HTTP 409)
# ------------------------------------------------------------------------------------------
STATES = ("Enabled", "Disabled", "PendingDeletion", "PendingImport")


def enter_state(api, key_id, state):
    if state == "PendingImport":
        api.call("DeleteKeyMaterial", KeyId=key_id)
    elif state == "Disabled":
        api.call("DisableKey", KeyId=key_id)
    elif state == "PendingDeletion":
        api.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    assert state_of(api, key_id) == state


def import_material(api, key_id, material, algorithm="RSAES_OAEP_SHA_256", expire=0):
    p = api.call("GetParametersForImport", KeyId=key_id, WrappingAlgorithm=algorithm,
                 WrappingKeySpec="RSA_2048")
    return api.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p["ImportToken"],
                    EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], material, algorithm),
                    KeyMaterialExpireUnix=expire)


def _prepared_key(api, state):
    """Key in Enabled state (with material), a ciphertext made with it, then moved to `state`."""
    if state == "PendingImport":
        key_id = create(api, Origin="EXTERNAL")["KeyId"]
        import_material(api, key_id, b"\x42" * 32)
    else:
        key_id = create(api)["KeyId"]
    blob = api.call("Encrypt", KeyId=key_id, Plaintext=b64(b"matrix"))["CiphertextBlob"]
    if state != "Enabled":
        enter_state(api, key_id, state)
    return key_id, blob


CRYPTO_CALLS = {
    "Encrypt": lambda k, blob: dict(KeyId=k, Plaintext=b64(b"x")),
    "Decrypt": lambda k, blob: dict(CiphertextBlob=blob),
    "GenerateDataKey": lambda k, blob: dict(KeyId=k),
    "GenerateDataKeyWithoutPlaintext": lambda k, blob: dict(KeyId=k),
}


@pytest.mark.parametrize("state,code", [
    ("Disabled", "Rejected.Disabled"),
    ("PendingDeletion", "Rejected.PendingDeletion"),
    ("PendingImport", "Rejected.PendingImport"),
])
@pytest.mark.parametrize("action", list(CRYPTO_CALLS))
def test_crypto_rejected_by_state(capi, action, state, code):
    key_id, blob = _prepared_key(capi, state)
    expect_error(lambda: capi.call(action, **CRYPTO_CALLS[action](key_id, blob)), code, 409)


@pytest.mark.parametrize("action", list(CRYPTO_CALLS))
def test_crypto_rejected_by_state_tea(server, action):
    api = make_api("tea_v3", server)
    key_id, blob = _prepared_key(api, "Disabled")
    expect_error(lambda: api.call(action, **CRYPTO_CALLS[action](key_id, blob)), "Rejected.Disabled", 409)


MATRIX = [
    # (action, state, expected code or None for OK, resulting state when OK)
    ("EnableKey", "PendingDeletion", "Rejected.StateModifiedFailed", None),
    ("EnableKey", "PendingImport", "Rejected.StateModifiedFailed", None),
    ("DisableKey", "PendingDeletion", "Rejected.StateModifiedFailed", None),
    ("DisableKey", "PendingImport", "Rejected.StateModifiedFailed", None),
    ("EnableKey", "Disabled", None, "Enabled"),
    ("DisableKey", "Enabled", None, "Disabled"),
    ("ScheduleKeyDeletion", "PendingDeletion", "Rejected.StateModifiedFailed", None),
    ("ScheduleKeyDeletion", "Enabled", None, "PendingDeletion"),
    ("ScheduleKeyDeletion", "Disabled", None, "PendingDeletion"),
    ("ScheduleKeyDeletion", "PendingImport", None, "PendingDeletion"),
    ("CancelKeyDeletion", "Enabled", "Rejected.StateModifiedFailed", None),
    ("CancelKeyDeletion", "Disabled", "Rejected.StateModifiedFailed", None),
    ("CancelKeyDeletion", "PendingImport", "Rejected.StateModifiedFailed", None),
    ("UpdateKeyDescription", "PendingDeletion", "Rejected.PendingDeletion", None),
    ("UpdateKeyDescription", "Disabled", None, "Disabled"),
    ("UpdateKeyDescription", "PendingImport", None, "PendingImport"),
    ("DescribeKey", "PendingDeletion", None, "PendingDeletion"),
    ("DescribeKey", "Disabled", None, "Disabled"),
    ("DescribeKey", "PendingImport", None, "PendingImport"),
]

ACTION_PARAMS = {
    "ScheduleKeyDeletion": {"PendingWindowInDays": 7},
    "UpdateKeyDescription": {"Description": "matrix"},
}


@pytest.mark.parametrize("action,state,code,result", MATRIX,
                         ids=[f"{a}-{s}" for a, s, _, _ in MATRIX])
def test_state_matrix(capi, action, state, code, result):
    key_id, _ = _prepared_key(capi, state)
    before = describe(capi, key_id)
    params = dict(KeyId=key_id, **ACTION_PARAMS.get(action, {}))
    if code is None:
        capi.call(action, **params)
        after = describe(capi, key_id)
        assert after["KeyState"] == result
        if action == "UpdateKeyDescription":
            assert after["Description"] == "matrix"
    else:
        expect_error(lambda: capi.call(action, **params), code, 409)
        after = describe(capi, key_id)
        assert after["KeyState"] == before["KeyState"]
        assert after["DeleteDate"] == before["DeleteDate"]
        assert after["Description"] == before["Description"]


# ------------------------------------------------------------------------------------------
# account isolation
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flavour", ["classic", "tea_v3", "tea_v2"])
def test_account_isolation(server, flavour):
    owner = make_api(flavour, server)
    md = create(owner)
    key_id = md["KeyId"]
    blob = owner.call("Encrypt", KeyId=key_id, Plaintext=b64(b"secret"))["CiphertextBlob"]

    other = server.new_account()  # created while the server runs: no restart needed
    intruder = make_api(flavour, server, other["AccessKeyId"], other["AccessKeySecret"])
    # the new account works at once and sees none of the first account's keys
    listed = intruder.call("ListKeys", PageSize=100)
    assert listed["TotalCount"] == 0 and listed["Keys"] == {"Key": []}, listed
    own = create(intruder)
    assert own["Creator"] == other["AccountId"]
    assert own["Arn"] == arn_of(own["KeyId"], other["AccountId"])

    for ref in (key_id, md["Arn"], arn_of(key_id, other["AccountId"])):
        expect_error(lambda: intruder.call("DescribeKey", KeyId=ref), "Forbidden.KeyNotFound", 404)
        expect_error(lambda: intruder.call("Encrypt", KeyId=ref, Plaintext=b64(b"x")),
                     "Forbidden.KeyNotFound", 404)
    expect_error(lambda: intruder.call("DisableKey", KeyId=key_id), "Forbidden.KeyNotFound", 404)
    expect_error(lambda: intruder.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7),
                 "Forbidden.KeyNotFound", 404)
    # the ciphertext names a key the intruder cannot see
    expect_error(lambda: intruder.call("Decrypt", CiphertextBlob=blob), "Forbidden.KeyNotFound", 404)
    # and the owner cannot see the intruder's key either
    expect_error(lambda: owner.call("DescribeKey", KeyId=own["KeyId"]), "Forbidden.KeyNotFound", 404)
    assert describe(owner, key_id)["KeyState"] == "Enabled"


@pytest.mark.parametrize("action,params", [
    ("ScheduleKeyDeletion", {"PendingWindowInDays": "seven"}),
    ("ScheduleKeyDeletion", {"PendingWindowInDays": "7.5"}),
    ("GenerateDataKey", {"NumberOfBytes": "abc"}),
    ("ListKeys", {"PageSize": "ten"}),
    ("ListKeys", {"PageNumber": "0"}),
    ("ListKeys", {"PageNumber": "first"}),
])
def test_non_numeric_integer_params(capi, action, params):
    if action != "ListKeys":
        params = dict(params, KeyId=create(capi)["KeyId"])
    expect_error(lambda: capi.call(action, **params), "InvalidParameter", 400)


def test_import_bad_expire_unix(capi):
    key_id = create(capi, Origin="EXTERNAL")["KeyId"]
    p = capi.call("GetParametersForImport", KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                  WrappingKeySpec="RSA_2048")
    enc = wrap_key_material(p["PublicKey"], b"\x01" * 32, "RSAES_OAEP_SHA_256")
    expect_error(lambda: capi.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p["ImportToken"],
                                   EncryptedKeyMaterial=enc, KeyMaterialExpireUnix="tomorrow"),
                 "InvalidParameter", 400)
    assert state_of(capi, key_id) == "PendingImport"
