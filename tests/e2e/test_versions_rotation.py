"""Key versions and rotation (reference §3.16): CreateKeyVersion / DescribeKeyVersion / ListKeyVersions,
automatic rotation settings on CreateKey and UpdateRotationPolicy, the rotation scheduler driven by the test
clock, and the --max-versions-per-key / --max-keys limits.

Server decisions under test (lead's spec):
  * every key has exactly one version at creation (= PrimaryKeyVersion); new versions become primary
  * RotationInterval accepts <int>d|h|m|s in [7 days, 730 days], reported as "<seconds>s"
  * NextRotationDate = LastRotationDate + interval; shortening it into the past rotates at once
  * rotation enabled + key not Enabled -> AutomaticRotation "Suspended", and no rotation happens
"""
from __future__ import annotations

import datetime as dt
import os
import time
import uuid

import pytest

from kms_helpers import (DATE_RE, UUID_RE, KmsError, KmsServer, TeaApi, assert_date_near, b64, expect_error,
                         make_api, parse_date, unb64, utcnow, wrap_key_material)

DAY = 86400


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
def new_key(api, **params) -> dict:
    return api.call("CreateKey", **params)["KeyMetadata"]


def describe(api, key_id) -> dict:
    return api.call("DescribeKey", KeyId=key_id)["KeyMetadata"]


def versions(api, key_id) -> list:
    out, page = [], 1
    while True:
        r = api.call("ListKeyVersions", KeyId=key_id, PageNumber=page, PageSize=100)
        out += r["KeyVersions"]["KeyVersion"]
        if page * 100 >= r["TotalCount"]:
            return out
        page += 1


def version_count(api, key_id) -> int:
    return api.call("ListKeyVersions", KeyId=key_id, PageSize=1)["TotalCount"]


def fresh_api(server, flavour: str):
    acct = server.new_account()
    return make_api(flavour, server, acct["AccessKeyId"], acct["AccessKeySecret"])


def check_page(resp: dict, *, number: int, size: int, total: int) -> list:
    for f in ("PageNumber", "PageSize", "TotalCount"):
        assert type(resp[f]) is int, f"{f} must be a JSON integer: {resp}"
    assert (resp["PageNumber"], resp["PageSize"], resp["TotalCount"]) == (number, size, total), resp
    items = resp["KeyVersions"]["KeyVersion"]
    assert isinstance(items, list), resp
    return items


def check_version(v: dict, key_id: str) -> None:
    assert set(v) >= {"KeyId", "KeyVersionId", "CreationDate"}, v
    assert v["KeyId"] == key_id
    assert UUID_RE.match(v["KeyVersionId"]), v
    assert DATE_RE.match(v["CreationDate"]), v


def secs(d: str) -> int:
    return int(parse_date(d).timestamp())


def assert_rotation(md: dict, interval_s: int) -> None:
    """Rotation Enabled with the interval; NextRotationDate is exactly LastRotationDate + interval."""
    assert md["AutomaticRotation"] == "Enabled", md
    assert md["RotationInterval"] == f"{interval_s}s", md
    assert DATE_RE.match(md["LastRotationDate"]), md
    assert DATE_RE.match(md["NextRotationDate"]), md
    assert secs(md["NextRotationDate"]) - secs(md["LastRotationDate"]) == interval_s, \
        f"NextRotationDate {md['NextRotationDate']} != LastRotationDate {md['LastRotationDate']} + {interval_s}s"


def assert_no_rotation(md: dict) -> None:
    assert (md["AutomaticRotation"], md["RotationInterval"], md["NextRotationDate"]) == ("Disabled", "", ""), md


def expect_one_of(fn, *allowed):
    """For cases where two documented rules overlap (e.g. EXTERNAL key that is also PendingImport)."""
    try:
        got = fn()
    except KmsError as e:
        assert (e.code, e.status) in allowed, f"expected one of {allowed}, got HTTP {e.status} {e.code}: {e.message}"
        return e
    raise AssertionError(f"expected one of {allowed}, but the call succeeded: {got!r}")


def imported_external_key(api) -> str:
    key_id = new_key(api, Origin="EXTERNAL")["KeyId"]
    p = api.call("GetParametersForImport", KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                 WrappingKeySpec="RSA_2048")
    api.call("ImportKeyMaterial", KeyId=key_id, ImportToken=p["ImportToken"], KeyMaterialExpireUnix=0,
             EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], os.urandom(32), "RSAES_OAEP_SHA_256"))
    return key_id


def wait_for_count(api, key_id, n, timeout=3.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        c = version_count(api, key_id)
        if c >= n or time.monotonic() > deadline:
            return c
        time.sleep(0.1)


# ------------------------------------------------------------------------------------------
# versions
# ------------------------------------------------------------------------------------------
def test_new_key_has_one_version(api, server):
    md = new_key(api)
    r = api.call("ListKeyVersions", KeyId=md["KeyId"])
    (v,) = check_page(r, number=1, size=10, total=1)
    check_version(v, md["KeyId"])
    assert v["KeyVersionId"] == md["PrimaryKeyVersion"]
    assert_date_near(v["CreationDate"], parse_date(md["CreationDate"]), 1)
    assert_date_near(md["LastRotationDate"], parse_date(md["CreationDate"]), 2)
    d = api.call("DescribeKeyVersion", KeyId=md["KeyId"], KeyVersionId=md["PrimaryKeyVersion"])
    assert d["KeyVersion"] == v
    # by key ARN as well
    d = api.call("DescribeKeyVersion", KeyId=md["Arn"], KeyVersionId=md["PrimaryKeyVersion"])
    assert d["KeyVersion"]["KeyId"] == md["KeyId"]
    assert version_count(api, md["Arn"]) == 1


def test_external_key_has_one_version(api):
    key_id = imported_external_key(api)
    md = describe(api, key_id)
    vs = versions(api, key_id)
    assert [v["KeyVersionId"] for v in vs] == [md["PrimaryKeyVersion"]]
    assert api.call("Encrypt", KeyId=key_id, Plaintext=b64(b"x"))["KeyVersionId"] == md["PrimaryKeyVersion"]


def test_create_key_version(api, server):
    md = new_key(api)
    key_id, v1 = md["KeyId"], md["PrimaryKeyVersion"]
    blobs = {v1: api.call("Encrypt", KeyId=key_id, Plaintext=b64(b"v1"))["CiphertextBlob"]}
    order = [v1]
    for i in (2, 3):
        resp = api.call("CreateKeyVersion", KeyId=key_id)
        assert isinstance(resp["RequestId"], str) and resp["RequestId"]
        kv = resp["KeyVersion"]
        check_version(kv, key_id)
        assert kv["KeyVersionId"] not in order
        assert_date_near(kv["CreationDate"], server.now(), 30)
        order.append(kv["KeyVersionId"])
        d = describe(api, key_id)
        assert d["PrimaryKeyVersion"] == kv["KeyVersionId"]
        assert_date_near(d["LastRotationDate"], parse_date(kv["CreationDate"]), 2)
        assert d["CreationDate"] == md["CreationDate"]  # the key's own creation date does not move
        assert_no_rotation(d)  # manual rotation does not switch automatic rotation on
        enc = api.call("Encrypt", KeyId=key_id, Plaintext=b64(f"v{i}".encode()))
        assert (enc["KeyId"], enc["KeyVersionId"]) == (key_id, kv["KeyVersionId"])
        blobs[kv["KeyVersionId"]] = enc["CiphertextBlob"]
        gdk = api.call("GenerateDataKey", KeyId=key_id)
        assert gdk["KeyVersionId"] == kv["KeyVersionId"]
        desc = api.call("DescribeKeyVersion", KeyId=key_id, KeyVersionId=kv["KeyVersionId"])["KeyVersion"]
        assert desc == {"KeyId": key_id, "KeyVersionId": kv["KeyVersionId"], "CreationDate": kv["CreationDate"]}

    # oldest first, even though all were created within the same second or two
    assert [v["KeyVersionId"] for v in versions(api, key_id)] == order
    # every version still decrypts its own ciphertexts and reports itself
    for i, vid in enumerate(order, 1):
        dec = api.call("Decrypt", CiphertextBlob=blobs[vid])
        assert (unb64(dec["Plaintext"]), dec["KeyId"], dec["KeyVersionId"]) == (f"v{i}".encode(), key_id, vid)
    # ReEncrypt moves old ciphertext to the current primary version
    re = api.call("ReEncrypt", CiphertextBlob=blobs[v1], DestinationKeyId=key_id)
    assert (re["KeyId"], re["KeyVersionId"]) == (key_id, order[-1])
    assert unb64(api.call("Decrypt", CiphertextBlob=re["CiphertextBlob"])["Plaintext"]) == b"v1"


def test_create_key_version_states(api):
    disabled = new_key(api)["KeyId"]
    api.call("DisableKey", KeyId=disabled)
    expect_error(lambda: api.call("CreateKeyVersion", KeyId=disabled), "Rejected.Disabled", 409)
    doomed = new_key(api)["KeyId"]
    api.call("ScheduleKeyDeletion", KeyId=doomed, PendingWindowInDays=7)
    expect_error(lambda: api.call("CreateKeyVersion", KeyId=doomed), "Rejected.PendingDeletion", 409)
    ext = imported_external_key(api)
    expect_error(lambda: api.call("CreateKeyVersion", KeyId=ext), "Unsupported.Origin", 400)
    pending_import = new_key(api, Origin="EXTERNAL")["KeyId"]
    expect_one_of(lambda: api.call("CreateKeyVersion", KeyId=pending_import),
                  ("Unsupported.Origin", 400), ("Rejected.PendingImport", 409))
    for k in (disabled, doomed, ext, pending_import):
        assert version_count(api, k) == 1, k
    expect_error(lambda: api.call("CreateKeyVersion", KeyId=str(uuid.uuid4())), "Forbidden.KeyNotFound", 404)
    # versions can still be listed/described in every state (matrix)
    for k in (disabled, doomed, pending_import):
        vid = describe(api, k)["PrimaryKeyVersion"]
        assert api.call("DescribeKeyVersion", KeyId=k, KeyVersionId=vid)["KeyVersion"]["KeyVersionId"] == vid


def test_describe_key_version_errors(api):
    a, b = new_key(api), new_key(api)
    expect_error(lambda: api.call("DescribeKeyVersion", KeyId=a["KeyId"], KeyVersionId=str(uuid.uuid4())),
                 "Forbidden.KeyVersionNotFound", 404)
    # a version of another key is not a version of this key
    expect_error(lambda: api.call("DescribeKeyVersion", KeyId=a["KeyId"], KeyVersionId=b["PrimaryKeyVersion"]),
                 "Forbidden.KeyVersionNotFound", 404)
    expect_error(lambda: api.call("DescribeKeyVersion", KeyId=str(uuid.uuid4()), KeyVersionId=a["PrimaryKeyVersion"]),
                 "Forbidden.KeyNotFound", 404)
    expect_error(lambda: api.call("ListKeyVersions", KeyId=str(uuid.uuid4())), "Forbidden.KeyNotFound", 404)


def test_key_versions_missing_parameters(capi):
    md = new_key(capi)
    expect_error(lambda: capi.call("CreateKeyVersion"), "MissingParameter", 400)
    expect_error(lambda: capi.call("DescribeKeyVersion", KeyId=md["KeyId"]), "MissingParameter", 400)
    expect_error(lambda: capi.call("ListKeyVersions"), "MissingParameter", 400)


def test_list_key_versions_paging(api):
    md = new_key(api)
    key_id = md["KeyId"]
    order = [md["PrimaryKeyVersion"]] + [api.call("CreateKeyVersion", KeyId=key_id)["KeyVersion"]["KeyVersionId"]
                                         for _ in range(11)]
    r = api.call("ListKeyVersions", KeyId=key_id)
    page1 = check_page(r, number=1, size=10, total=12)
    r = api.call("ListKeyVersions", KeyId=key_id, PageNumber=2)
    page2 = check_page(r, number=2, size=10, total=12)
    assert [v["KeyVersionId"] for v in page1 + page2] == order
    for v in page1 + page2:
        check_version(v, key_id)
    r = api.call("ListKeyVersions", KeyId=key_id, PageNumber=3)
    assert check_page(r, number=3, size=10, total=12) == []
    got = []
    for p in (1, 2, 3):
        got += check_page(api.call("ListKeyVersions", KeyId=key_id, PageNumber=p, PageSize=5),
                          number=p, size=5, total=12)
    assert [v["KeyVersionId"] for v in got] == order
    r = api.call("ListKeyVersions", KeyId=key_id, PageNumber=1, PageSize=100)
    assert [v["KeyVersionId"] for v in check_page(r, number=1, size=100, total=12)] == order
    r = api.call("ListKeyVersions", KeyId=key_id, PageNumber=99, PageSize=100)
    assert check_page(r, number=99, size=100, total=12) == []


@pytest.mark.parametrize("paging", [{"PageSize": 0}, {"PageSize": 101}, {"PageSize": -5}, {"PageNumber": 0},
                                    {"PageNumber": -1}])
def test_list_key_versions_bad_paging(api, paging):
    key_id = new_key(api)["KeyId"]
    expect_error(lambda: api.call("ListKeyVersions", KeyId=key_id, **paging), "InvalidParameter", 400)


def test_default_version_limit_is_100(capi):
    key_id = new_key(capi)["KeyId"]
    for _ in range(99):
        capi.call("CreateKeyVersion", KeyId=key_id)
    assert version_count(capi, key_id) == 100
    expect_error(lambda: capi.call("CreateKeyVersion", KeyId=key_id), "Rejected.LimitExceeded", 400)
    assert version_count(capi, key_id) == 100


def test_max_versions_per_key_flag(server_with):
    srv = server_with("--max-versions-per-key", "3")
    api = make_api("tea_v3", srv)
    key_id = new_key(api)["KeyId"]
    api.call("CreateKeyVersion", KeyId=key_id)
    last = api.call("CreateKeyVersion", KeyId=key_id)["KeyVersion"]["KeyVersionId"]
    expect_error(lambda: api.call("CreateKeyVersion", KeyId=key_id), "Rejected.LimitExceeded", 400)
    assert version_count(api, key_id) == 3
    assert describe(api, key_id)["PrimaryKeyVersion"] == last
    # per key
    other = new_key(api)["KeyId"]
    api.call("CreateKeyVersion", KeyId=other)


# ------------------------------------------------------------------------------------------
# rotation settings
# ------------------------------------------------------------------------------------------
def test_create_key_with_rotation(api, server):
    resp = api.call("CreateKey", EnableAutomaticRotation=True, RotationInterval="30d")
    md = resp["KeyMetadata"]
    assert_rotation(md, 30 * DAY)
    assert_date_near(md["LastRotationDate"], server.now(), 30)
    d = describe(api, md["KeyId"])
    assert_rotation(d, 30 * DAY)
    assert d["LastRotationDate"] == md["LastRotationDate"]
    assert d["NextRotationDate"] == md["NextRotationDate"]
    assert version_count(api, md["KeyId"]) == 1


def test_key_without_rotation(api):
    md = new_key(api)
    assert_no_rotation(md)
    assert_no_rotation(describe(api, md["KeyId"]))
    md = new_key(api, EnableAutomaticRotation=False)
    assert_no_rotation(describe(api, md["KeyId"]))


@pytest.mark.parametrize("interval,seconds", [
    ("7d", 7 * DAY), ("604800s", 7 * DAY), ("168h", 7 * DAY), ("10080m", 7 * DAY),
    ("730d", 730 * DAY), ("63072000s", 730 * DAY), ("17520h", 730 * DAY),
    ("365d", 365 * DAY), ("31536000s", 365 * DAY), ("8d", 8 * DAY), ("604801s", 7 * DAY + 1),
])
def test_rotation_interval_formats(api, interval, seconds):
    md = new_key(api, EnableAutomaticRotation=True, RotationInterval=interval)
    assert_rotation(describe(api, md["KeyId"]), seconds)
    other = new_key(api)
    api.call("UpdateRotationPolicy", KeyId=other["KeyId"], EnableAutomaticRotation=True, RotationInterval=interval)
    assert_rotation(describe(api, other["KeyId"]), seconds)


BAD_INTERVALS = ["6d", "604799s", "167h", "10079m", "731d", "63072001s", "0d", "0s", "-7d", "7", "7w", "d", "abc",
                 "7.5d", "7 d", "7D", "1000000d"]


@pytest.mark.parametrize("interval", BAD_INTERVALS)
def test_create_key_bad_rotation_interval(api, server, interval):
    a = fresh_api(server, api.flavour)
    expect_error(lambda: a.call("CreateKey", EnableAutomaticRotation=True, RotationInterval=interval),
                 "InvalidParameter", 400)
    assert a.call("ListKeys")["TotalCount"] == 0  # nothing created


@pytest.mark.parametrize("interval", BAD_INTERVALS)
def test_update_rotation_policy_bad_interval(api, interval):
    key_id = new_key(api)["KeyId"]
    expect_error(lambda: api.call("UpdateRotationPolicy", KeyId=key_id, EnableAutomaticRotation=True,
                                  RotationInterval=interval), "InvalidParameter", 400)
    assert_no_rotation(describe(api, key_id))


def test_rotation_missing_interval(api, server):
    a = fresh_api(server, api.flavour)
    expect_error(lambda: a.call("CreateKey", EnableAutomaticRotation=True), "MissingParameter", 400)
    assert a.call("ListKeys")["TotalCount"] == 0
    key_id = new_key(a)["KeyId"]
    expect_error(lambda: a.call("UpdateRotationPolicy", KeyId=key_id, EnableAutomaticRotation=True),
                 "MissingParameter", 400)
    assert_no_rotation(describe(a, key_id))


def test_update_rotation_policy_missing_enable_flag(capi):
    key_id = new_key(capi)["KeyId"]
    expect_error(lambda: capi.call("UpdateRotationPolicy", KeyId=key_id, RotationInterval="30d"),
                 "MissingParameter", 400)


def test_rotation_on_external_key(api, server):
    a = fresh_api(server, api.flavour)
    expect_error(lambda: a.call("CreateKey", Origin="EXTERNAL", EnableAutomaticRotation=True, RotationInterval="30d"),
                 "Unsupported.Origin", 400)
    assert a.call("ListKeys")["TotalCount"] == 0
    ext = imported_external_key(a)
    expect_error(lambda: a.call("UpdateRotationPolicy", KeyId=ext, EnableAutomaticRotation=True,
                                RotationInterval="30d"), "Unsupported.Origin", 400)
    assert_no_rotation(describe(a, ext))
    pending = new_key(a, Origin="EXTERNAL")["KeyId"]
    expect_one_of(lambda: a.call("UpdateRotationPolicy", KeyId=pending, EnableAutomaticRotation=True,
                                 RotationInterval="30d"), ("Unsupported.Origin", 400), ("Rejected.PendingImport", 409))


def test_update_rotation_policy(api, server):
    md = new_key(api)
    key_id = md["KeyId"]
    resp = api.call("UpdateRotationPolicy", KeyId=key_id, EnableAutomaticRotation=True, RotationInterval="30d")
    assert isinstance(resp["RequestId"], str) and resp["RequestId"]
    d = describe(api, key_id)
    assert_rotation(d, 30 * DAY)
    # the schedule counts from the last rotation (= key creation), not from the call
    assert_date_near(d["LastRotationDate"], parse_date(md["CreationDate"]), 2)
    assert version_count(api, key_id) == 1
    # lengthen: no rotation, next date recomputed from the same LastRotationDate
    api.call("UpdateRotationPolicy", KeyId=key_id, EnableAutomaticRotation=True, RotationInterval="365d")
    d2 = describe(api, key_id)
    assert_rotation(d2, 365 * DAY)
    assert d2["LastRotationDate"] == d["LastRotationDate"]
    assert d2["PrimaryKeyVersion"] == md["PrimaryKeyVersion"]
    # disable
    api.call("UpdateRotationPolicy", KeyId=key_id, EnableAutomaticRotation=False)
    d3 = describe(api, key_id)
    assert_no_rotation(d3)
    assert d3["LastRotationDate"] == d["LastRotationDate"]
    # re-enable
    api.call("UpdateRotationPolicy", KeyId=key_id, EnableAutomaticRotation=True, RotationInterval="168h")
    assert_rotation(describe(api, key_id), 7 * DAY)
    assert version_count(api, key_id) == 1


def test_manual_rotation_moves_next_rotation_date(api):
    md = new_key(api, EnableAutomaticRotation=True, RotationInterval="30d")
    kv = api.call("CreateKeyVersion", KeyId=md["KeyId"])["KeyVersion"]
    d = describe(api, md["KeyId"])
    assert_rotation(d, 30 * DAY)
    assert_date_near(d["LastRotationDate"], parse_date(kv["CreationDate"]), 2)
    assert d["PrimaryKeyVersion"] == kv["KeyVersionId"]


def test_update_rotation_policy_states(api):
    disabled = new_key(api)["KeyId"]
    api.call("DisableKey", KeyId=disabled)
    expect_error(lambda: api.call("UpdateRotationPolicy", KeyId=disabled, EnableAutomaticRotation=True,
                                  RotationInterval="30d"), "Rejected.Disabled", 409)
    assert_no_rotation(describe(api, disabled))
    doomed = new_key(api)["KeyId"]
    api.call("ScheduleKeyDeletion", KeyId=doomed, PendingWindowInDays=7)
    expect_error(lambda: api.call("UpdateRotationPolicy", KeyId=doomed, EnableAutomaticRotation=True,
                                  RotationInterval="30d"), "Rejected.PendingDeletion", 409)
    expect_error(lambda: api.call("UpdateRotationPolicy", KeyId=str(uuid.uuid4()), EnableAutomaticRotation=True,
                                  RotationInterval="30d"), "Forbidden.KeyNotFound", 404)


def test_rotation_suspended_when_key_not_enabled(api):
    md = new_key(api, EnableAutomaticRotation=True, RotationInterval="30d")
    key_id = md["KeyId"]
    before = describe(api, key_id)
    api.call("DisableKey", KeyId=key_id)
    d = describe(api, key_id)
    assert d["AutomaticRotation"] == "Suspended"
    assert d["RotationInterval"] == "2592000s"
    assert d["LastRotationDate"] == before["LastRotationDate"]
    assert DATE_RE.match(d["NextRotationDate"]), d
    expect_error(lambda: api.call("UpdateRotationPolicy", KeyId=key_id, EnableAutomaticRotation=False),
                 "Rejected.Disabled", 409)
    api.call("EnableKey", KeyId=key_id)
    assert_rotation(describe(api, key_id), 30 * DAY)
    # PendingDeletion suspends it as well (reference §3.16)
    api.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    d = describe(api, key_id)
    assert (d["AutomaticRotation"], d["RotationInterval"]) == ("Suspended", "2592000s")
    api.call("CancelKeyDeletion", KeyId=key_id)
    assert_rotation(describe(api, key_id), 30 * DAY)


# ------------------------------------------------------------------------------------------
# the scheduler (test clock)
# ------------------------------------------------------------------------------------------
def test_scheduled_rotation(own_server):
    api = make_api("classic", own_server)
    md = new_key(api, EnableAutomaticRotation=True, RotationInterval="7d")
    key_id = md["KeyId"]
    plain = new_key(api)["KeyId"]  # no rotation: never gets a version
    blobs = {md["PrimaryKeyVersion"]: api.call("Encrypt", KeyId=key_id, Plaintext=b64(b"gen-1"))["CiphertextBlob"]}

    own_server.advance_clock(7 * DAY - 60)  # not yet due
    assert version_count(api, key_id) == 1
    d = describe(api, key_id)
    assert d["PrimaryKeyVersion"] == md["PrimaryKeyVersion"]
    assert d["NextRotationDate"] == md["NextRotationDate"]

    own_server.advance_clock(120)  # due now: exactly one rotation
    assert version_count(api, key_id) == 2
    d = describe(api, key_id)
    assert d["PrimaryKeyVersion"] != md["PrimaryKeyVersion"]
    assert_rotation(d, 7 * DAY)
    assert_date_near(d["LastRotationDate"], own_server.now(), 150)
    assert secs(d["LastRotationDate"]) >= secs(md["NextRotationDate"]) - 2
    vs = versions(api, key_id)
    assert [v["KeyVersionId"] for v in vs] == [md["PrimaryKeyVersion"], d["PrimaryKeyVersion"]]
    assert_date_near(vs[1]["CreationDate"], parse_date(d["LastRotationDate"]), 2)
    blobs[d["PrimaryKeyVersion"]] = api.call("Encrypt", KeyId=key_id, Plaintext=b64(b"gen-2"))["CiphertextBlob"]

    own_server.advance_clock(60)  # no second rotation for the same due date
    assert version_count(api, key_id) == 2

    # several intervals, one step at a time: one rotation per step
    for gen in (3, 4, 5):
        prev = describe(api, key_id)
        own_server.advance_clock(7 * DAY + 30)
        assert version_count(api, key_id) == gen, f"after step to generation {gen}"
        d = describe(api, key_id)
        assert d["PrimaryKeyVersion"] != prev["PrimaryKeyVersion"]
        assert secs(d["LastRotationDate"]) > secs(prev["LastRotationDate"])
        assert_rotation(d, 7 * DAY)
        enc = api.call("Encrypt", KeyId=key_id, Plaintext=b64(f"gen-{gen}".encode()))
        assert enc["KeyVersionId"] == d["PrimaryKeyVersion"]
        blobs[d["PrimaryKeyVersion"]] = enc["CiphertextBlob"]

    order = [v["KeyVersionId"] for v in versions(api, key_id)]
    assert order == list(blobs)  # oldest first = order of creation
    for gen, (vid, blob) in enumerate(blobs.items(), 1):
        dec = api.call("Decrypt", CiphertextBlob=blob)
        assert (unb64(dec["Plaintext"]), dec["KeyVersionId"]) == (f"gen-{gen}".encode(), vid)
    assert version_count(api, plain) == 1


def test_rotation_not_repeated_after_restart(own_server):
    api = make_api("tea_v3", own_server)
    key_id = new_key(api, EnableAutomaticRotation=True, RotationInterval="7d")["KeyId"]
    own_server.advance_clock(7 * DAY + 30)
    assert version_count(api, key_id) == 2
    d = describe(api, key_id)

    own_server.restart()  # the test clock is back at real time
    time.sleep(2.5)  # let any start-up sweep / background scheduler run
    assert version_count(api, key_id) == 2
    d2 = describe(api, key_id)
    for f in ("PrimaryKeyVersion", "LastRotationDate", "NextRotationDate", "AutomaticRotation", "RotationInterval"):
        assert d2[f] == d[f], f

    # the persisted NextRotationDate is honoured after the restart: nothing before it, one rotation after it
    due_in = secs(d2["NextRotationDate"]) - int(utcnow().timestamp())
    own_server.advance_clock(due_in - 120)
    assert version_count(api, key_id) == 2
    own_server.advance_clock(150)
    assert version_count(api, key_id) == 3


def test_pending_rotation_survives_restart(own_server):
    api = make_api("classic", own_server)
    key_id = new_key(api, EnableAutomaticRotation=True, RotationInterval="7d")["KeyId"]
    own_server.restart()
    own_server.advance_clock(7 * DAY - 60)
    assert version_count(api, key_id) == 1
    own_server.advance_clock(120)
    assert version_count(api, key_id) == 2


def test_shortening_interval_rotates_immediately(own_server):
    api = make_api("tea_v2", own_server)
    md = new_key(api, EnableAutomaticRotation=True, RotationInterval="30d")
    key_id = md["KeyId"]
    own_server.advance_clock(10 * DAY)
    assert version_count(api, key_id) == 1
    # 20d: next = last + 20d is still in the future -> no rotation, next date recomputed from last rotation
    api.call("UpdateRotationPolicy", KeyId=key_id, EnableAutomaticRotation=True, RotationInterval="20d")
    d = describe(api, key_id)
    assert_rotation(d, 20 * DAY)
    assert d["LastRotationDate"] == md["LastRotationDate"]
    assert version_count(api, key_id) == 1
    # 7d: next = last + 7d is in the past -> rotate right away
    api.call("UpdateRotationPolicy", KeyId=key_id, EnableAutomaticRotation=True, RotationInterval="7d")
    assert wait_for_count(api, key_id, 2) == 2
    d = describe(api, key_id)
    assert d["PrimaryKeyVersion"] != md["PrimaryKeyVersion"]
    assert_rotation(d, 7 * DAY)
    assert_date_near(d["LastRotationDate"], own_server.now(), 60)
    # and exactly once
    own_server.advance_clock(60)
    assert version_count(api, key_id) == 2


def test_disabled_key_not_rotated(own_server):
    api = make_api("classic", own_server)
    key_id = new_key(api, EnableAutomaticRotation=True, RotationInterval="7d")["KeyId"]
    doomed = new_key(api, EnableAutomaticRotation=True, RotationInterval="7d")["KeyId"]
    api.call("DisableKey", KeyId=key_id)
    api.call("ScheduleKeyDeletion", KeyId=doomed, PendingWindowInDays=30)
    own_server.advance_clock(7 * DAY + 30)
    assert version_count(api, key_id) == 1
    assert version_count(api, doomed) == 1
    assert describe(api, key_id)["AutomaticRotation"] == "Suspended"
    assert describe(api, doomed)["AutomaticRotation"] == "Suspended"
    own_server.advance_clock(7 * DAY)
    assert version_count(api, key_id) == 1
    assert version_count(api, doomed) == 1
    # resumes once enabled again
    api.call("EnableKey", KeyId=key_id)
    assert describe(api, key_id)["AutomaticRotation"] == "Enabled"
    own_server.advance_clock(7 * DAY + 30)
    assert version_count(api, key_id) >= 2


def test_rotation_disabled_stops_scheduler(own_server):
    api = make_api("classic", own_server)
    key_id = new_key(api, EnableAutomaticRotation=True, RotationInterval="7d")["KeyId"]
    api.call("UpdateRotationPolicy", KeyId=key_id, EnableAutomaticRotation=False)
    own_server.advance_clock(8 * DAY)
    assert version_count(api, key_id) == 1


def test_version_cap_does_not_stall_scheduler(server_with):
    """A rotating key that reached --max-versions-per-key is skipped; other keys keep rotating."""
    srv = server_with("--max-versions-per-key", "2")
    api = make_api("classic", srv)
    capped = new_key(api, EnableAutomaticRotation=True, RotationInterval="7d")["KeyId"]
    top = api.call("CreateKeyVersion", KeyId=capped)["KeyVersion"]["KeyVersionId"]
    other = new_key(api, EnableAutomaticRotation=True, RotationInterval="7d")["KeyId"]
    srv.advance_clock(7 * DAY + 30)
    assert version_count(api, capped) == 2
    assert describe(api, capped)["PrimaryKeyVersion"] == top
    assert version_count(api, other) == 2
    late = new_key(api, EnableAutomaticRotation=True, RotationInterval="7d")["KeyId"]
    srv.advance_clock(7 * DAY + 30)
    assert version_count(api, late) == 2
    assert version_count(api, capped) == 2
    assert api.call("Encrypt", KeyId=capped, Plaintext=b64(b"still fine"))["KeyVersionId"] == top


# ------------------------------------------------------------------------------------------
# Tea models, field by field
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("v2", [False, True], ids=["tea_v3", "tea_v2"])
def test_tea_version_models(server, v2):
    t = TeaApi(server, v2)
    md = t.raw_call("CreateKey", EnableAutomaticRotation=True, RotationInterval="7d").body.key_metadata
    assert (md.automatic_rotation, md.rotation_interval) == ("Enabled", "604800s")
    assert DATE_RE.match(md.last_rotation_date) and DATE_RE.match(md.next_rotation_date)
    kv = t.raw_call("CreateKeyVersion", KeyId=md.key_id).body.key_version
    assert kv.key_id == md.key_id and UUID_RE.match(kv.key_version_id) and DATE_RE.match(kv.creation_date)
    body = t.raw_call("ListKeyVersions", KeyId=md.key_id, PageNumber=1, PageSize=1).body
    assert (body.page_number, body.page_size, body.total_count) == (1, 1, 2)
    assert [v.key_version_id for v in body.key_versions.key_version] == [md.primary_key_version]
    dv = t.raw_call("DescribeKeyVersion", KeyId=md.key_id, KeyVersionId=kv.key_version_id).body.key_version
    assert (dv.key_id, dv.key_version_id, dv.creation_date) == (md.key_id, kv.key_version_id, kv.creation_date)
    d = t.raw_call("DescribeKey", KeyId=md.key_id).body.key_metadata
    assert d.primary_key_version == kv.key_version_id
    assert (d.automatic_rotation, d.rotation_interval) == ("Enabled", "604800s")
    assert secs(d.next_rotation_date) - secs(d.last_rotation_date) == 7 * DAY


# ------------------------------------------------------------------------------------------
# --max-keys
# ------------------------------------------------------------------------------------------
def test_max_keys_flag(server_with):
    srv = server_with("--max-keys", "3")
    api = make_api("classic", srv)
    ids = [new_key(api)["KeyId"] for _ in range(2)]
    ids.append(new_key(api, Origin="EXTERNAL")["KeyId"])
    expect_error(lambda: api.call("CreateKey"), "Rejected.LimitExceeded", 400)
    expect_error(lambda: api.call("CreateKey", Origin="EXTERNAL"), "Rejected.LimitExceeded", 400)
    assert api.call("ListKeys")["TotalCount"] == 3
    # per account
    acct = srv.new_account()
    other = make_api("tea_v3", srv, acct["AccessKeyId"], acct["AccessKeySecret"])
    for _ in range(3):
        new_key(other)
    expect_error(lambda: other.call("CreateKey"), "Rejected.LimitExceeded", 400)
    # a key pending deletion still counts; once deleted for good the slot is free again
    api.call("ScheduleKeyDeletion", KeyId=ids[0], PendingWindowInDays=7)
    expect_error(lambda: api.call("CreateKey"), "Rejected.LimitExceeded", 400)
    srv.advance_clock(7 * DAY + 5)
    new_key(api)
    expect_error(lambda: api.call("CreateKey"), "Rejected.LimitExceeded", 400)
