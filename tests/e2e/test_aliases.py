"""Aliases (reference §3.15): CreateAlias / UpdateAlias / DeleteAlias / ListAliases / ListAliasesByKeyId,
aliases in place of KeyId, Unsupported.Alias everywhere else, limits, deletion of a key's aliases, and the
paging of ListAliases, ListAliasesByKeyId and ListKeys.

Server decisions under test (lead's spec):
  * AliasName must match ^alias/[A-Za-z0-9_/-]{1,255}$ and not start with alias/acs  -> 400 InvalidParameter
  * AliasArn = "acs:kms:cn-hangzhou:<account>:" + AliasName
  * an alias (or alias ARN) works as KeyId for DescribeKey, Encrypt, GenerateDataKey(WithoutPlaintext),
    ReEncrypt.DestinationKeyId; unknown alias -> 404 Forbidden.AliasNotFound; elsewhere -> 400 Unsupported.Alias
  * > --max-aliases-per-key (default 50) aliases on one key -> 400 Rejected.LimitExceeded
"""
from __future__ import annotations

import json
import os
import random
import uuid

import pytest

from kms_helpers import (ACCOUNT_ID, REGION, UUID_RE, KmsServer, TeaApi, arn_of, b64, expect_error,
                         make_api, unb64, wrap_key_material)


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
def new_key(api, **params) -> dict:
    return api.call("CreateKey", **params)["KeyMetadata"]


def describe(api, key_id) -> dict:
    return api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]


def uniq(prefix: str = "t") -> str:
    return f"alias/{prefix}-{uuid.uuid4().hex[:12]}"


def alias_arn(alias_name: str, account: str = ACCOUNT_ID) -> str:
    return f"acs:kms:{REGION}:{account}:{alias_name}"


def fresh_api(server, flavour: str):
    """An API client on a brand-new (empty) account of the shared server, so list results are exact."""
    acct = server.new_account()
    return make_api(flavour, server, acct["AccessKeyId"], acct["AccessKeySecret"]), acct["AccountId"]


def aliases_of(api, key_id, **paging) -> list:
    return api.call("ListAliasesByKeyId", KeyId=key_id, **paging)["Aliases"]["Alias"]


def all_aliases(api) -> list:
    out, page = [], 1
    while True:
        r = api.call("ListAliases", PageNumber=page, PageSize=100)
        out += r["Aliases"]["Alias"]
        if page * 100 >= r["TotalCount"]:
            return out
        page += 1


def check_page(resp: dict, wrapper: str, item: str, *, number: int, size: int, total: int) -> list:
    for f in ("PageNumber", "PageSize", "TotalCount"):
        assert type(resp[f]) is int, f"{f} must be a JSON integer: {resp}"
    assert (resp["PageNumber"], resp["PageSize"], resp["TotalCount"]) == (number, size, total), resp
    assert isinstance(resp[wrapper], dict), f"{wrapper} must be an object wrapping {item}[]: {resp}"
    items = resp[wrapper][item]
    assert isinstance(items, list), resp
    return items


def entry(name, key_id, account=ACCOUNT_ID) -> dict:
    return {"AliasName": name, "AliasArn": alias_arn(name, account), "KeyId": key_id}


# ------------------------------------------------------------------------------------------
# CreateAlias / ListAliasesByKeyId / alias as KeyId
# ------------------------------------------------------------------------------------------
def test_create_alias_and_use_it(api):
    md = new_key(api)
    name = uniq("use")
    resp = api.call("CreateAlias", AliasName=name, KeyId=md["KeyId"])
    assert isinstance(resp["RequestId"], str) and resp["RequestId"]
    if api.flavour == "classic":  # raw JSON: nothing but RequestId
        assert set(resp) == {"RequestId"}, resp
    assert aliases_of(api, md["KeyId"]) == [entry(name, md["KeyId"])]

    for ref in (name, alias_arn(name)):
        d = describe(api, ref)
        assert d["KeyId"] == md["KeyId"]
        assert d["Arn"] == arn_of(md["KeyId"])
        assert d["PrimaryKeyVersion"] == md["PrimaryKeyVersion"]


def test_create_alias_with_key_arn(api):
    md = new_key(api)
    name = uniq("byarn")
    api.call("CreateAlias", AliasName=name, KeyId=md["Arn"])
    assert aliases_of(api, md["KeyId"]) == [entry(name, md["KeyId"])]
    assert aliases_of(api, md["Arn"]) == [entry(name, md["KeyId"])]


@pytest.mark.parametrize("name", [
    "alias/a",
    "alias/A_b-c/d/0-9",
    "alias/ac",                       # starts with "ac", not "acs"
    "alias/xacs",
    "alias/" + "z" * 255,
    "alias/a//b",
    "alias/-_-",
], ids=["one-char", "all-classes", "ac", "xacs", "255-chars", "double-slash", "punct-only"])
def test_valid_alias_names(api, server, name):
    # every valid name is unique per account+region, so use a fresh account per case
    a, acct = fresh_api(server, api.flavour)
    md = new_key(a)
    a.call("CreateAlias", AliasName=name, KeyId=md["KeyId"])
    assert aliases_of(a, md["KeyId"]) == [entry(name, md["KeyId"], acct)]
    assert describe(a, name)["KeyId"] == md["KeyId"]


@pytest.mark.parametrize("name", [
    "noprefix",
    "alias",
    "alias/",
    "Alias/x",
    "ALIAS/x",
    "alias:x",
    "/alias/x",
    "alias/acs",
    "alias/acs-x",
    "alias/acs/x",
    "alias/acsx",
    "alias/has space",
    "alias/dot.dot",
    "alias/col:on",
    "alias/star*",
    "alias/ümlaut",
    "alias/" + "z" * 256,
], ids=lambda s: s if len(s) < 30 else f"len{len(s)}")
def test_invalid_alias_names(api, name):
    md = new_key(api)
    expect_error(lambda: api.call("CreateAlias", AliasName=name, KeyId=md["KeyId"]), "InvalidParameter", 400)
    assert aliases_of(api, md["KeyId"]) == []


def test_duplicate_alias(api, server):
    k1, k2 = new_key(api), new_key(api)
    name = uniq("dup")
    api.call("CreateAlias", AliasName=name, KeyId=k1["KeyId"])
    expect_error(lambda: api.call("CreateAlias", AliasName=name, KeyId=k2["KeyId"]), "AliasAlreadyExists", 400)
    expect_error(lambda: api.call("CreateAlias", AliasName=name, KeyId=k1["KeyId"]), "AliasAlreadyExists", 400)
    assert describe(api, name)["KeyId"] == k1["KeyId"]
    assert aliases_of(api, k2["KeyId"]) == []

    # unique per account: another account may use the same name, and does not see ours
    other, other_acct = fresh_api(server, api.flavour)
    expect_error(lambda: describe(other, name), "Forbidden.AliasNotFound", 404)
    ok = new_key(other)
    other.call("CreateAlias", AliasName=name, KeyId=ok["KeyId"])
    assert describe(other, name)["KeyId"] == ok["KeyId"]
    assert describe(api, name)["KeyId"] == k1["KeyId"]
    # and cannot point an alias at our key
    expect_error(lambda: other.call("CreateAlias", AliasName=uniq("x"), KeyId=k1["KeyId"]),
                 "Forbidden.KeyNotFound", 404)


def test_create_alias_key_reference_rules(api):
    md = new_key(api)
    name = uniq("first")
    api.call("CreateAlias", AliasName=name, KeyId=md["KeyId"])
    # an alias is not accepted as the target key
    for ref in (name, alias_arn(name)):
        expect_error(lambda: api.call("CreateAlias", AliasName=uniq("second"), KeyId=ref), "Unsupported.Alias", 400)
    expect_error(lambda: api.call("CreateAlias", AliasName=uniq("nokey"), KeyId=str(uuid.uuid4())),
                 "Forbidden.KeyNotFound", 404)
    assert aliases_of(api, md["KeyId"]) == [entry(name, md["KeyId"])]


def test_create_alias_missing_parameters(capi):
    md = new_key(capi)
    expect_error(lambda: capi.call("CreateAlias", KeyId=md["KeyId"]), "MissingParameter", 400)
    expect_error(lambda: capi.call("CreateAlias", AliasName=uniq("m")), "MissingParameter", 400)


def test_create_alias_key_states(api):
    disabled = new_key(api)
    api.call("DisableKey", KeyId=disabled["KeyId"])
    external = new_key(api, Origin="EXTERNAL")  # PendingImport
    pending = new_key(api)
    api.call("ScheduleKeyDeletion", KeyId=pending["KeyId"], PendingWindowInDays=7)

    n1, n2 = uniq("disabled"), uniq("pendingimport")
    api.call("CreateAlias", AliasName=n1, KeyId=disabled["KeyId"])
    api.call("CreateAlias", AliasName=n2, KeyId=external["KeyId"])
    assert describe(api, n1)["KeyState"] == "Disabled"
    assert describe(api, n2)["KeyState"] == "PendingImport"
    n3 = uniq("pendingdeletion")
    expect_error(lambda: api.call("CreateAlias", AliasName=n3, KeyId=pending["KeyId"]),
                 "Rejected.StateModifiedFailed", 409)
    expect_error(lambda: describe(api, n3), "Forbidden.AliasNotFound", 404)


# ------------------------------------------------------------------------------------------
# UpdateAlias / DeleteAlias
# ------------------------------------------------------------------------------------------
def test_update_alias(api):
    a, b = new_key(api), new_key(api)
    name = uniq("move")
    api.call("CreateAlias", AliasName=name, KeyId=a["KeyId"])
    resp = api.call("UpdateAlias", AliasName=name, KeyId=b["KeyId"])
    assert isinstance(resp["RequestId"], str) and resp["RequestId"]
    assert describe(api, name)["KeyId"] == b["KeyId"]
    assert aliases_of(api, a["KeyId"]) == []
    assert aliases_of(api, b["KeyId"]) == [entry(name, b["KeyId"])]
    # by key ARN, and back
    api.call("UpdateAlias", AliasName=name, KeyId=a["Arn"])
    assert describe(api, name)["KeyId"] == a["KeyId"]
    # to the same key: no-op
    api.call("UpdateAlias", AliasName=name, KeyId=a["KeyId"])
    assert aliases_of(api, a["KeyId"]) == [entry(name, a["KeyId"])]


def test_update_alias_errors(api):
    a, b = new_key(api), new_key(api)
    name = uniq("upd")
    api.call("CreateAlias", AliasName=name, KeyId=a["KeyId"])
    expect_error(lambda: api.call("UpdateAlias", AliasName=uniq("missing"), KeyId=b["KeyId"]),
                 "Forbidden.AliasNotFound", 404)
    expect_error(lambda: api.call("UpdateAlias", AliasName=name, KeyId=str(uuid.uuid4())),
                 "Forbidden.KeyNotFound", 404)
    other = uniq("other")
    api.call("CreateAlias", AliasName=other, KeyId=b["KeyId"])
    expect_error(lambda: api.call("UpdateAlias", AliasName=name, KeyId=other), "Unsupported.Alias", 400)
    assert describe(api, name)["KeyId"] == a["KeyId"]


def test_update_alias_target_state(api):
    """Only the target key's state matters (matrix row 'UpdateAlias')."""
    src, disabled, importing, doomed = new_key(api), new_key(api), new_key(api, Origin="EXTERNAL"), new_key(api)
    api.call("DisableKey", KeyId=disabled["KeyId"])
    api.call("ScheduleKeyDeletion", KeyId=doomed["KeyId"], PendingWindowInDays=7)
    name = uniq("state")
    api.call("CreateAlias", AliasName=name, KeyId=src["KeyId"])
    expect_error(lambda: api.call("UpdateAlias", AliasName=name, KeyId=doomed["KeyId"]),
                 "Rejected.PendingDeletion", 409)
    assert describe(api, name)["KeyId"] == src["KeyId"]
    api.call("UpdateAlias", AliasName=name, KeyId=disabled["KeyId"])
    assert describe(api, name)["KeyId"] == disabled["KeyId"]
    api.call("UpdateAlias", AliasName=name, KeyId=importing["KeyId"])
    assert describe(api, name)["KeyId"] == importing["KeyId"]
    # the source key being PendingDeletion does not block moving the alias away from it
    api.call("UpdateAlias", AliasName=name, KeyId=src["KeyId"])
    api.call("ScheduleKeyDeletion", KeyId=src["KeyId"], PendingWindowInDays=7)
    api.call("UpdateAlias", AliasName=name, KeyId=disabled["KeyId"])
    assert describe(api, name)["KeyId"] == disabled["KeyId"]


def test_delete_alias(api):
    md = new_key(api)
    keep, drop = uniq("keep"), uniq("drop")
    api.call("CreateAlias", AliasName=keep, KeyId=md["KeyId"])
    api.call("CreateAlias", AliasName=drop, KeyId=md["KeyId"])
    resp = api.call("DeleteAlias", AliasName=drop)
    assert isinstance(resp["RequestId"], str) and resp["RequestId"]
    # key untouched, the other alias untouched
    d = describe(api, md["KeyId"])
    assert d["KeyState"] == "Enabled"
    assert api.call("Encrypt", KeyId=md["KeyId"], Plaintext=b64(b"still here"))["KeyId"] == md["KeyId"]
    assert aliases_of(api, md["KeyId"]) == [entry(keep, md["KeyId"])]
    expect_error(lambda: describe(api, drop), "Forbidden.AliasNotFound", 404)
    expect_error(lambda: api.call("DeleteAlias", AliasName=drop), "Forbidden.AliasNotFound", 404)
    expect_error(lambda: api.call("DeleteAlias", AliasName=uniq("never")), "Forbidden.AliasNotFound", 404)
    # the name can be used again
    api.call("CreateAlias", AliasName=drop, KeyId=md["KeyId"])
    assert describe(api, drop)["KeyId"] == md["KeyId"]


def test_delete_alias_of_pending_deletion_key(api):
    md = new_key(api)
    name = uniq("pd")
    api.call("CreateAlias", AliasName=name, KeyId=md["KeyId"])
    api.call("ScheduleKeyDeletion", KeyId=md["KeyId"], PendingWindowInDays=7)
    # still resolvable while pending deletion (DescribeKey works in every state)
    assert describe(api, name)["KeyState"] == "PendingDeletion"
    api.call("DeleteAlias", AliasName=name)
    expect_error(lambda: describe(api, name), "Forbidden.AliasNotFound", 404)
    assert describe(api, md["KeyId"])["KeyState"] == "PendingDeletion"


# ------------------------------------------------------------------------------------------
# alias in place of KeyId for crypto calls
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["name", "arn"])
def test_crypto_via_alias(api, form):
    md = new_key(api)
    name = uniq("crypto")
    api.call("CreateAlias", AliasName=name, KeyId=md["KeyId"])
    ref = name if form == "name" else alias_arn(name)
    primary = md["PrimaryKeyVersion"]

    enc = api.call("Encrypt", KeyId=ref, Plaintext=b64(b"via alias"), EncryptionContext={"a": "b"})
    assert (enc["KeyId"], enc["KeyVersionId"]) == (md["KeyId"], primary)
    dec = api.call("Decrypt", CiphertextBlob=enc["CiphertextBlob"], EncryptionContext={"a": "b"})
    assert unb64(dec["Plaintext"]) == b"via alias"
    assert dec["KeyId"] == md["KeyId"]

    gdk = api.call("GenerateDataKey", KeyId=ref, NumberOfBytes=24)
    assert (gdk["KeyId"], gdk["KeyVersionId"]) == (md["KeyId"], primary)
    assert unb64(api.call("Decrypt", CiphertextBlob=gdk["CiphertextBlob"])["Plaintext"]) == unb64(gdk["Plaintext"])

    w = api.call("GenerateDataKeyWithoutPlaintext", KeyId=ref, KeySpec="AES_128")
    assert (w["KeyId"], w["KeyVersionId"]) == (md["KeyId"], primary)
    assert len(unb64(api.call("Decrypt", CiphertextBlob=w["CiphertextBlob"])["Plaintext"])) == 16

    src = new_key(api)
    blob = api.call("Encrypt", KeyId=src["KeyId"], Plaintext=b64(b"move"))["CiphertextBlob"]
    re = api.call("ReEncrypt", CiphertextBlob=blob, DestinationKeyId=ref)
    assert (re["KeyId"], re["KeyVersionId"]) == (md["KeyId"], primary)
    dec = api.call("Decrypt", CiphertextBlob=re["CiphertextBlob"])
    assert (unb64(dec["Plaintext"]), dec["KeyId"]) == (b"move", md["KeyId"])


@pytest.mark.parametrize("form", ["name", "arn"])
def test_unknown_alias_as_key_id(api, form):
    name = uniq("ghost")
    ref = name if form == "name" else alias_arn(name)
    src = new_key(api)
    blob = api.call("Encrypt", KeyId=src["KeyId"], Plaintext=b64(b"x"))["CiphertextBlob"]
    calls = {
        "DescribeKey": lambda: api.call("DescribeKey", KeyId=ref),
        "Encrypt": lambda: api.call("Encrypt", KeyId=ref, Plaintext=b64(b"x")),
        "GenerateDataKey": lambda: api.call("GenerateDataKey", KeyId=ref),
        "GenerateDataKeyWithoutPlaintext": lambda: api.call("GenerateDataKeyWithoutPlaintext", KeyId=ref),
        "ReEncrypt": lambda: api.call("ReEncrypt", CiphertextBlob=blob, DestinationKeyId=ref),
    }
    for action, fn in calls.items():
        try:
            expect_error(fn, "Forbidden.AliasNotFound", 404)
        except AssertionError as e:
            raise AssertionError(f"{action}(KeyId={ref!r}): {e}") from None


def test_alias_follows_key_state(capi):
    md = new_key(capi)
    name = uniq("st")
    capi.call("CreateAlias", AliasName=name, KeyId=md["KeyId"])
    capi.call("DisableKey", KeyId=md["KeyId"])
    expect_error(lambda: capi.call("Encrypt", KeyId=name, Plaintext=b64(b"x")), "Rejected.Disabled", 409)
    assert describe(capi, name)["KeyState"] == "Disabled"


def test_repoint_alias_in_use(api):
    a, b = new_key(api), new_key(api)
    name = uniq("rotate")
    api.call("CreateAlias", AliasName=name, KeyId=a["KeyId"])
    e1 = api.call("Encrypt", KeyId=name, Plaintext=b64(b"first"))
    assert (e1["KeyId"], e1["KeyVersionId"]) == (a["KeyId"], a["PrimaryKeyVersion"])
    api.call("UpdateAlias", AliasName=name, KeyId=b["KeyId"])
    e2 = api.call("Encrypt", KeyId=name, Plaintext=b64(b"second"))
    assert (e2["KeyId"], e2["KeyVersionId"]) == (b["KeyId"], b["PrimaryKeyVersion"])
    d1 = api.call("Decrypt", CiphertextBlob=e1["CiphertextBlob"])
    d2 = api.call("Decrypt", CiphertextBlob=e2["CiphertextBlob"])
    assert (unb64(d1["Plaintext"]), d1["KeyId"], d1["KeyVersionId"]) == (b"first", a["KeyId"], a["PrimaryKeyVersion"])
    assert (unb64(d2["Plaintext"]), d2["KeyId"], d2["KeyVersionId"]) == (b"second", b["KeyId"], b["PrimaryKeyVersion"])
    # disabling the old key does not affect the alias any more
    api.call("DisableKey", KeyId=a["KeyId"])
    assert api.call("GenerateDataKey", KeyId=name)["KeyId"] == b["KeyId"]


# ------------------------------------------------------------------------------------------
# Unsupported.Alias for every other action that takes a KeyId
# ------------------------------------------------------------------------------------------
def _alias_rejecting_calls(api, key_id: str, ext_id: str, version_id: str):
    """(action, params-builder(ref)) for the actions that must reject an alias KeyId."""
    def gpfi(ref):
        return dict(KeyId=ref, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")

    def ikm(ref):
        p = api.call("GetParametersForImport", **gpfi(ext_id))
        return dict(KeyId=ref, ImportToken=p["ImportToken"], KeyMaterialExpireUnix=0,
                    EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], os.urandom(32), "RSAES_OAEP_SHA_256"))

    return {
        "EnableKey": lambda ref: dict(KeyId=ref),
        "DisableKey": lambda ref: dict(KeyId=ref),
        "UpdateKeyDescription": lambda ref: dict(KeyId=ref, Description="via alias"),
        "ScheduleKeyDeletion": lambda ref: dict(KeyId=ref, PendingWindowInDays=7),
        "CancelKeyDeletion": lambda ref: dict(KeyId=ref),
        "CreateKeyVersion": lambda ref: dict(KeyId=ref),
        "ListKeyVersions": lambda ref: dict(KeyId=ref),
        "DescribeKeyVersion": lambda ref: dict(KeyId=ref, KeyVersionId=version_id),
        "UpdateRotationPolicy": lambda ref: dict(KeyId=ref, EnableAutomaticRotation=True, RotationInterval="30d"),
        "TagResource": lambda ref: dict(KeyId=ref, Tags=json.dumps([{"TagKey": "k", "TagValue": "v"}])),
        "UntagResource": lambda ref: dict(KeyId=ref, TagKeys='["k"]'),
        "ListResourceTags": lambda ref: dict(KeyId=ref),
        "ListAliasesByKeyId": lambda ref: dict(KeyId=ref),
        "GetParametersForImport": gpfi,
        "ImportKeyMaterial": ikm,
        "DeleteKeyMaterial": lambda ref: dict(KeyId=ref),
        "UpdateAlias": lambda ref: dict(AliasName=uniq("never"), KeyId=ref),
    }


ALIAS_REJECTING = ["EnableKey", "DisableKey", "UpdateKeyDescription", "ScheduleKeyDeletion", "CancelKeyDeletion",
                   "CreateKeyVersion", "ListKeyVersions", "DescribeKeyVersion", "UpdateRotationPolicy",
                   "TagResource", "UntagResource", "ListResourceTags", "ListAliasesByKeyId",
                   "GetParametersForImport", "ImportKeyMaterial", "DeleteKeyMaterial", "UpdateAlias"]


@pytest.mark.parametrize("action", ALIAS_REJECTING)
def test_alias_rejected_as_key_id(api, action):
    md = new_key(api, Description="orig")
    ext = new_key(api, Origin="EXTERNAL")
    name, ext_name = uniq("rej"), uniq("rejext")
    api.call("CreateAlias", AliasName=name, KeyId=md["KeyId"])
    api.call("CreateAlias", AliasName=ext_name, KeyId=ext["KeyId"])
    byok = action in ("GetParametersForImport", "ImportKeyMaterial", "DeleteKeyMaterial")
    builder = _alias_rejecting_calls(api, md["KeyId"], ext["KeyId"], md["PrimaryKeyVersion"])[action]
    params = builder(ext_name if byok else name)
    expect_error(lambda: api.call(action, **params), "Unsupported.Alias", 400)

    # nothing happened to the keys
    d = describe(api, md["KeyId"])
    assert (d["KeyState"], d["Description"], d["PrimaryKeyVersion"], d["AutomaticRotation"]) == \
        ("Enabled", "orig", md["PrimaryKeyVersion"], "Disabled")
    assert describe(api, ext["KeyId"])["KeyState"] == "PendingImport"
    assert api.call("ListResourceTags", KeyId=md["KeyId"])["Tags"]["Tag"] == []
    # the control: the same call with the real KeyId is accepted
    if action in ("ListKeyVersions", "DescribeKeyVersion", "ListResourceTags", "ListAliasesByKeyId",
                  "UpdateKeyDescription", "TagResource", "GetParametersForImport"):
        api.call(action, **builder(ext["KeyId"] if byok else md["KeyId"]))


# ------------------------------------------------------------------------------------------
# ListAliases / ListAliasesByKeyId / ListKeys paging
# ------------------------------------------------------------------------------------------
def test_list_aliases_paging(api, server):
    a, acct = fresh_api(server, api.flavour)
    # empty account: defaults and empty wrapper
    r = a.call("ListAliases")
    assert check_page(r, "Aliases", "Alias", number=1, size=10, total=0) == []

    keys = [new_key(a)["KeyId"] for _ in range(3)]
    names = ["alias/b-1", "alias/a", "alias/Z", "alias/0", "alias/a/b", "alias/a-b", "alias/a_b", "alias/_",
             "alias/c", "alias/B", "alias/zz", "alias/m"]
    expected = []
    shuffled = names[:]
    random.Random(7).shuffle(shuffled)
    for i, n in enumerate(shuffled):
        a.call("CreateAlias", AliasName=n, KeyId=keys[i % 3])
        expected.append(entry(n, keys[i % 3], acct))
    expected.sort(key=lambda e: e["AliasName"])

    r = a.call("ListAliases")
    assert check_page(r, "Aliases", "Alias", number=1, size=10, total=12) == expected[:10]
    r = a.call("ListAliases", PageNumber=2)
    assert check_page(r, "Aliases", "Alias", number=2, size=10, total=12) == expected[10:]
    r = a.call("ListAliases", PageNumber=3)  # past the end
    assert check_page(r, "Aliases", "Alias", number=3, size=10, total=12) == []
    got = []
    for page in (1, 2, 3):
        r = a.call("ListAliases", PageNumber=page, PageSize=5)
        got += check_page(r, "Aliases", "Alias", number=page, size=5, total=12)
    assert got == expected
    r = a.call("ListAliases", PageNumber=1, PageSize=100)
    assert check_page(r, "Aliases", "Alias", number=1, size=100, total=12) == expected
    r = a.call("ListAliases", PageNumber=12, PageSize=1)
    assert check_page(r, "Aliases", "Alias", number=12, size=1, total=12) == expected[11:]
    r = a.call("ListAliases", PageNumber=13, PageSize=1)
    assert check_page(r, "Aliases", "Alias", number=13, size=1, total=12) == []


@pytest.mark.parametrize("paging", [{"PageSize": 0}, {"PageSize": 101}, {"PageSize": -1}, {"PageNumber": 0},
                                    {"PageNumber": -1}])
@pytest.mark.parametrize("action", ["ListAliases", "ListAliasesByKeyId"])
def test_list_aliases_bad_paging(api, action, paging):
    params = dict(paging)
    if action == "ListAliasesByKeyId":
        params["KeyId"] = new_key(api)["KeyId"]
    expect_error(lambda: api.call(action, **params), "InvalidParameter", 400)


def test_list_aliases_by_key_id_paging(api, server):
    a, acct = fresh_api(server, api.flavour)
    target, other, bare = (new_key(a)["KeyId"] for _ in range(3))
    names = sorted(f"alias/k{i:02d}-{uuid.uuid4().hex[:4]}" for i in range(11))
    for n in reversed(names):
        a.call("CreateAlias", AliasName=n, KeyId=target)
    a.call("CreateAlias", AliasName="alias/k05-other", KeyId=other)  # sorts in the middle, other key
    expected = [entry(n, target, acct) for n in names]

    r = a.call("ListAliasesByKeyId", KeyId=target)
    assert check_page(r, "Aliases", "Alias", number=1, size=10, total=11) == expected[:10]
    r = a.call("ListAliasesByKeyId", KeyId=target, PageNumber=2)
    assert check_page(r, "Aliases", "Alias", number=2, size=10, total=11) == expected[10:]
    r = a.call("ListAliasesByKeyId", KeyId=target, PageNumber=3)
    assert check_page(r, "Aliases", "Alias", number=3, size=10, total=11) == []
    r = a.call("ListAliasesByKeyId", KeyId=target, PageNumber=2, PageSize=4)
    assert check_page(r, "Aliases", "Alias", number=2, size=4, total=11) == expected[4:8]
    r = a.call("ListAliasesByKeyId", KeyId=other)
    assert check_page(r, "Aliases", "Alias", number=1, size=10, total=1) == [entry("alias/k05-other", other, acct)]
    r = a.call("ListAliasesByKeyId", KeyId=bare)
    assert check_page(r, "Aliases", "Alias", number=1, size=10, total=0) == []
    # ListAliases sees all 12
    assert a.call("ListAliases", PageSize=100)["TotalCount"] == 12


def test_list_aliases_by_unknown_key(api):
    expect_error(lambda: api.call("ListAliasesByKeyId", KeyId=str(uuid.uuid4())), "Forbidden.KeyNotFound", 404)


def test_list_keys_paging(api, server):
    a, acct = fresh_api(server, api.flavour)
    r = a.call("ListKeys")
    assert check_page(r, "Keys", "Key", number=1, size=10, total=0) == []
    ids = {new_key(a)["KeyId"] for _ in range(5)}
    seen = []
    for page, n in ((1, 2), (2, 2), (3, 1)):
        r = a.call("ListKeys", PageNumber=page, PageSize=2)
        items = check_page(r, "Keys", "Key", number=page, size=2, total=5)
        assert len(items) == n
        seen += items
    assert {k["KeyId"] for k in seen} == ids
    assert all(k["KeyArn"] == arn_of(k["KeyId"], acct) for k in seen)
    r = a.call("ListKeys", PageNumber=4, PageSize=2)
    assert check_page(r, "Keys", "Key", number=4, size=2, total=5) == []


# ------------------------------------------------------------------------------------------
# Tea models, field by field
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("v2", [False, True], ids=["tea_v3", "tea_v2"])
def test_tea_alias_models(server, v2):
    acct = server.new_account()
    t = TeaApi(server, v2, acct["AccessKeyId"], acct["AccessKeySecret"])
    key_id = t.call("CreateKey")["KeyMetadata"]["KeyId"]
    t.call("CreateAlias", AliasName="alias/tea-b", KeyId=key_id)
    t.call("CreateAlias", AliasName="alias/tea-a", KeyId=key_id)
    resp = t.raw_call("ListAliases", PageSize=1)
    assert resp.status_code == 200
    body = resp.body
    assert (body.page_number, body.page_size, body.total_count) == (1, 1, 2)
    assert len(body.aliases.alias) == 1
    al = body.aliases.alias[0]
    assert al.alias_name == "alias/tea-a"
    assert al.alias_arn == f"acs:kms:{REGION}:{acct['AccountId']}:alias/tea-a"
    assert al.key_id == key_id
    body = t.raw_call("ListAliasesByKeyId", KeyId=key_id, PageNumber=2, PageSize=1).body
    assert (body.page_number, body.page_size, body.total_count) == (2, 1, 2)
    assert [(x.alias_name, x.key_id) for x in body.aliases.alias] == [("alias/tea-b", key_id)]
    enc = t.raw_call("Encrypt", KeyId="alias/tea-b", Plaintext=b64(b"tea")).body
    assert enc.key_id == key_id and UUID_RE.match(enc.key_version_id)


# ------------------------------------------------------------------------------------------
# limits and lifecycle (private servers)
# ------------------------------------------------------------------------------------------
def test_default_alias_limit_is_50(capi):
    md = new_key(capi)
    base = uuid.uuid4().hex[:8]
    for i in range(50):
        capi.call("CreateAlias", AliasName=f"alias/lim-{base}-{i:02d}", KeyId=md["KeyId"])
    expect_error(lambda: capi.call("CreateAlias", AliasName=f"alias/lim-{base}-50", KeyId=md["KeyId"]),
                 "Rejected.LimitExceeded", 400)
    assert capi.call("ListAliasesByKeyId", KeyId=md["KeyId"])["TotalCount"] == 50
    # the limit is per key
    capi.call("CreateAlias", AliasName=f"alias/lim-{base}-other", KeyId=new_key(capi)["KeyId"])


def test_max_aliases_per_key_flag(server_with):
    srv = server_with("--max-aliases-per-key", "3")
    api = make_api("classic", srv)
    k1, k2 = new_key(api)["KeyId"], new_key(api)["KeyId"]
    for i in range(3):
        api.call("CreateAlias", AliasName=f"alias/k1-{i}", KeyId=k1)
    expect_error(lambda: api.call("CreateAlias", AliasName="alias/k1-3", KeyId=k1), "Rejected.LimitExceeded", 400)
    expect_error(lambda: describe(api, "alias/k1-3"), "Forbidden.AliasNotFound", 404)
    api.call("CreateAlias", AliasName="alias/k2-0", KeyId=k2)
    api.call("DeleteAlias", AliasName="alias/k1-0")
    api.call("CreateAlias", AliasName="alias/k1-3", KeyId=k1)
    assert [a["AliasName"] for a in aliases_of(api, k1)] == ["alias/k1-1", "alias/k1-2", "alias/k1-3"]


def test_aliases_removed_with_deleted_key(own_server):
    api = make_api("classic", own_server)
    doomed, survivor = new_key(api)["KeyId"], new_key(api)["KeyId"]
    for n in ("alias/doomed-1", "alias/doomed-2"):
        api.call("CreateAlias", AliasName=n, KeyId=doomed)
    api.call("CreateAlias", AliasName="alias/survivor", KeyId=survivor)
    api.call("ScheduleKeyDeletion", KeyId=doomed, PendingWindowInDays=7)

    own_server.advance_clock(7 * 86400 - 120)  # still pending: aliases still there
    assert [a["AliasName"] for a in all_aliases(api)] == ["alias/doomed-1", "alias/doomed-2", "alias/survivor"]
    assert describe(api, "alias/doomed-1")["KeyState"] == "PendingDeletion"

    own_server.advance_clock(125)
    assert all_aliases(api) == [entry("alias/survivor", survivor, own_server.account_id)]
    assert api.call("ListAliases")["TotalCount"] == 1
    expect_error(lambda: describe(api, "alias/doomed-1"), "Forbidden.AliasNotFound", 404)
    expect_error(lambda: api.call("Encrypt", KeyId="alias/doomed-2", Plaintext=b64(b"x")),
                 "Forbidden.AliasNotFound", 404)
    expect_error(lambda: api.call("DeleteAlias", AliasName="alias/doomed-2"), "Forbidden.AliasNotFound", 404)
    # names are free again
    api.call("CreateAlias", AliasName="alias/doomed-1", KeyId=survivor)
    assert describe(api, "alias/doomed-1")["KeyId"] == survivor
    # and it survives a restart
    own_server.restart()
    assert [a["AliasName"] for a in all_aliases(api)] == ["alias/doomed-1", "alias/survivor"]


def test_aliases_persist_across_restart(own_server):
    api = make_api("tea_v3", own_server)
    k = new_key(api)["KeyId"]
    api.call("CreateAlias", AliasName="alias/persist", KeyId=k)
    own_server.restart()
    assert describe(api, "alias/persist")["KeyId"] == k
    assert aliases_of(api, k) == [entry("alias/persist", k, own_server.account_id)]


def test_aliases_are_per_region(server_with):
    """Alias names are unique per account + region, and AliasArn carries the region of the request."""
    from kms_helpers import RawClient

    srv = server_with("--region", "cn-hangzhou,cn-shanghai")
    raw = RawClient(srv)

    def ok(action, region, **params):
        r = raw.call(action, dict(params, RegionId=region))
        assert r.status == 200, f"{action} in {region}: {r!r}"
        return r.json

    def err(action, region, code, status, **params):
        r = raw.call(action, dict(params, RegionId=region))
        assert (r.status, r.json.get("Code")) == (status, code), f"{action} in {region}: {r!r}"

    hz = ok("CreateKey", "cn-hangzhou")["KeyMetadata"]["KeyId"]
    sh = ok("CreateKey", "cn-shanghai")["KeyMetadata"]["KeyId"]
    ok("CreateAlias", "cn-hangzhou", AliasName="alias/same", KeyId=hz)
    ok("CreateAlias", "cn-shanghai", AliasName="alias/same", KeyId=sh)  # no AliasAlreadyExists across regions
    err("CreateAlias", "cn-shanghai", "Forbidden.KeyNotFound", 404, AliasName="alias/cross", KeyId=hz)
    for region, key in (("cn-hangzhou", hz), ("cn-shanghai", sh)):
        r = ok("ListAliases", region)
        assert r["Aliases"]["Alias"] == [{"AliasName": "alias/same", "KeyId": key,
                                          "AliasArn": f"acs:kms:{region}:{srv.account_id}:alias/same"}], r
        assert ok("DescribeKey", region, KeyId="alias/same")["KeyMetadata"]["KeyId"] == key
        assert ok("DescribeKey", region, KeyId=f"acs:kms:{region}:{srv.account_id}:alias/same")["KeyMetadata"]["KeyId"] == key
    # an alias ARN of the other region does not resolve here
    err("DescribeKey", "cn-hangzhou", "Forbidden.AliasNotFound", 404,
        KeyId=f"acs:kms:cn-shanghai:{srv.account_id}:alias/same")
    ok("DeleteAlias", "cn-shanghai", AliasName="alias/same")
    assert ok("DescribeKey", "cn-hangzhou", KeyId="alias/same")["KeyMetadata"]["KeyId"] == hz
    err("DescribeKey", "cn-shanghai", "Forbidden.AliasNotFound", 404, KeyId="alias/same")


def test_update_alias_into_full_key(server_with):
    """Re-pointing an alias to a key that already has the maximum number of aliases is refused too."""
    srv = server_with("--max-aliases-per-key", "2")
    api = make_api("classic", srv)
    full, src = new_key(api)["KeyId"], new_key(api)["KeyId"]
    api.call("CreateAlias", AliasName="alias/f1", KeyId=full)
    api.call("CreateAlias", AliasName="alias/f2", KeyId=full)
    api.call("CreateAlias", AliasName="alias/mover", KeyId=src)
    expect_error(lambda: api.call("UpdateAlias", AliasName="alias/mover", KeyId=full), "Rejected.LimitExceeded", 400)
    assert describe(api, "alias/mover")["KeyId"] == src
    # moving one of the full key's own aliases onto itself is not a new alias
    api.call("UpdateAlias", AliasName="alias/f1", KeyId=full)
