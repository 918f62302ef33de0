"""Secrets Manager (issue 18) with the real SDKs: every action through the classic SDK
(HMAC-SHA1, everything in the query), the Tea SDK with V3 signatures (SecretData in the form
body) and Tea with HMAC-SHA1; exact codes; stages; binary values; limits; deletion windows,
restore and forced deletion on the test clock; the encryption key's state; isolation between
accounts; the value never at rest in clear; and Alibaba's caching client
(alibabacloud-secretsmanager-client-v2) over HTTPS with the server's certificate as its CA."""
from __future__ import annotations

import json
import string
import uuid

import pytest

from kms_helpers import REGION, KmsError, KmsServer, b64, expect_error, make_api, parse_date

# The classic SDK sends SecretData (up to 30 KiB) in the query string: percent-encoded, up to
# three times as long. The default request-head limit (16 KiB) is raised for it, as the README
# tells operators to do.
HEAD_LIMIT = ["--max-header-bytes", "131072"]


@pytest.fixture(scope="module")
def server(kms_binary, tmp_path_factory):
    base = tmp_path_factory.mktemp("secrets")
    srv = KmsServer(base / "data", base / "logs", extra_args=HEAD_LIMIT)
    srv.start()
    yield srv
    srv.stop()


def name(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create(api, secret_name=None, data="v1-data", version="v1", **kw) -> str:
    secret_name = secret_name or name()
    r = api.call("CreateSecret", SecretName=secret_name, VersionId=version, SecretData=data, **kw)
    assert r["SecretName"] == secret_name
    assert r["VersionId"] == version
    assert r["SecretType"] == "Generic"
    assert r["Arn"].startswith(f"acs:kms:{REGION}:")
    assert r["Arn"].endswith(f":secret/{secret_name}")
    return secret_name


def stages(r) -> list:
    return sorted(r["VersionStages"]["VersionStage"])


def version_map(api, secret_name, deprecated=False) -> dict:
    r = api.call("ListSecretVersionIds", SecretName=secret_name,
                 IncludeDeprecated="true" if deprecated else None, PageSize=100)
    return {v["VersionId"]: sorted(v["VersionStages"]["VersionStage"])
            for v in r["VersionIds"]["VersionId"]}


# ---------------------------------------------------------------------------------------------
# every action, every SDK flavour
# ---------------------------------------------------------------------------------------------
def test_lifecycle_of_a_secret(api):
    key = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    n = create(api, data="hunter2 with spaces & symbols=+/", EncryptionKeyId=key, Description="db password",
               Tags=json.dumps([{"TagKey": "team", "TagValue": "core"}]))
    r = api.call("GetSecretValue", SecretName=n)
    assert r["SecretData"] == "hunter2 with spaces & symbols=+/"
    assert (r["SecretName"], r["VersionId"], r["SecretDataType"], r["SecretType"]) == (n, "v1", "text", "Generic")
    assert stages(r) == ["ACSCurrent"]
    parse_date(r["CreateTime"])

    d = api.call("DescribeSecret", SecretName=n, FetchTags="true")
    assert d["EncryptionKeyId"] == key
    assert d["Description"] == "db password"
    assert d["Tags"]["Tag"] == [{"TagKey": "team", "TagValue": "core"}]
    assert "PlannedDeleteTime" not in d or not d["PlannedDeleteTime"]
    assert "SecretData" not in d

    p = api.call("PutSecretValue", SecretName=n, VersionId="v2", SecretData="second")
    assert (p["SecretName"], p["VersionId"], stages(p)) == (n, "v2", ["ACSCurrent"])
    assert api.call("GetSecretValue", SecretName=n)["SecretData"] == "second"
    prev = api.call("GetSecretValue", SecretName=n, VersionStage="ACSPrevious")
    assert (prev["VersionId"], prev["SecretData"]) == ("v1", "hunter2 with spaces & symbols=+/")
    assert api.call("GetSecretValue", SecretName=n, VersionId="v2")["SecretData"] == "second"
    assert version_map(api, n) == {"v2": ["ACSCurrent"], "v1": ["ACSPrevious"]}

    api.call("UpdateSecret", SecretName=n, Description="changed")
    assert api.call("DescribeSecret", SecretName=n)["Description"] == "changed"

    listed = api.call("ListSecrets", Filters=json.dumps([{"Key": "SecretName", "Values": [n]}]), FetchTags="true")
    assert listed["TotalCount"] == 1 and isinstance(listed["TotalCount"], int)
    entry = listed["SecretList"]["Secret"][0]
    assert (entry["SecretName"], entry["SecretType"]) == (n, "Generic")
    assert entry["Tags"]["Tag"] == [{"TagKey": "team", "TagValue": "core"}]

    # ARN form of the name.
    arn = f"acs:kms:{REGION}:{api.server.account_id}:secret/{n}"
    assert api.call("GetSecretValue", SecretName=arn)["SecretData"] == "second"

    api.call("TagResource", SecretName=n, Tags=json.dumps([{"TagKey": "env", "TagValue": "prod"}]))
    api.call("UntagResource", SecretName=n, TagKeys=json.dumps(["team"]))
    assert api.call("DescribeSecret", SecretName=n, FetchTags="true")["Tags"]["Tag"] == \
        [{"TagKey": "env", "TagValue": "prod"}]

    d = api.call("DeleteSecret", SecretName=n, RecoveryWindowInDays="7")
    assert d["SecretName"] == n
    planned = parse_date(d["PlannedDeleteTime"])
    assert abs((planned - api.server.now()).total_seconds() - 7 * 86400) < 120
    expect_error(lambda: api.call("GetSecretValue", SecretName=n), "Rejected.ResourceInDeleteWindow", 409)
    assert parse_date(api.call("DescribeSecret", SecretName=n)["PlannedDeleteTime"]) == planned
    assert api.call("RestoreSecret", SecretName=n)["SecretName"] == n
    assert api.call("GetSecretValue", SecretName=n)["SecretData"] == "second"

    r = api.call("DeleteSecret", SecretName=n, ForceDeleteWithoutRecovery="true")
    assert r["SecretName"] == n
    e = expect_error(lambda: api.call("GetSecretValue", SecretName=n), "Forbidden.ResourceNotFound", 404)
    assert e.message.startswith("Resource not found")
    # The name is free again at once.
    create(api, n, data="again")


def test_plural_tag_actions_with_resource_type_secret(server):
    from kms_helpers import ClassicApi
    acct = server.new_account()
    api = ClassicApi(server, acct["AccessKeyId"], acct["AccessKeySecret"])
    a, b = create(api, "tag-a"), create(api, "tag-b")

    def multi(ids=(), tags=(), keys=()):
        p = {f"ResourceId.{i + 1}": r for i, r in enumerate(ids)}
        for i, (k, v) in enumerate(tags):
            p[f"Tag.{i + 1}.Key"], p[f"Tag.{i + 1}.Value"] = k, v
        for i, k in enumerate(keys):
            p[f"TagKey.{i + 1}"] = k
        return p

    api.call("TagResources", RegionId=REGION, ResourceType="secret", **multi([a, b], [("env", "prod"), ("team", "x")]))
    rows = api.call("ListTagResources", RegionId=REGION, ResourceType="secret")["TagResources"]["TagResource"]
    assert [(r["ResourceId"], r["ResourceType"], r["TagKey"], r["TagValue"]) for r in rows] == [
        (a, "secret", "env", "prod"), (a, "secret", "team", "x"),
        (b, "secret", "env", "prod"), (b, "secret", "team", "x")]
    api.call("UntagResources", RegionId=REGION, ResourceType="secret", **multi([a], keys=["team"]))
    rows = api.call("ListTagResources", RegionId=REGION, ResourceType="secret",
                    **multi([a]))["TagResources"]["TagResource"]
    assert [(r["TagKey"], r["TagValue"]) for r in rows] == [("env", "prod")]
    api.call("UntagResources", RegionId=REGION, ResourceType="secret", All="true", **multi([b]))
    assert api.call("DescribeSecret", SecretName=b, FetchTags="true")["Tags"]["Tag"] == []
    # An unknown secret anywhere in the list: nothing is tagged.
    expect_error(lambda: api.call("TagResources", RegionId=REGION, ResourceType="secret",
                                  **multi([b, "nope"], [("k", "v")])), "Forbidden.ResourceNotFound", 404)
    assert api.call("DescribeSecret", SecretName=b, FetchTags="true")["Tags"]["Tag"] == []
    # Keys stay apart.
    assert api.call("ListTagResources", RegionId=REGION, ResourceType="key")["TagResources"]["TagResource"] == []


def test_random_password(api):
    pw = api.call("GetRandomPassword")["RandomPassword"]
    assert len(pw) == 32
    pw = api.call("GetRandomPassword", PasswordLength="64", ExcludePunctuation="true",
                  ExcludeCharacters="abc", RequireEachIncludedType="true")["RandomPassword"]
    assert len(pw) == 64
    assert not set(pw) & set(string.punctuation + "abc")
    assert set(pw) & set(string.ascii_uppercase) and set(pw) & set(string.digits)
    for bad in ("7", "129", "x"):
        expect_error(lambda: api.call("GetRandomPassword", PasswordLength=bad), "InvalidParameter", 400)
    expect_error(lambda: api.call("GetRandomPassword", ExcludeLowercase="true", ExcludeUppercase="true",
                                  ExcludeNumbers="true", ExcludePunctuation="true"), "InvalidParameter", 400)


def test_rotation_actions_are_for_managed_secrets(api):
    n = create(api)
    expect_error(lambda: api.call("RotateSecret", SecretName=n, VersionId="v9"), "Rejected.UnsupportedOperation", 400)
    expect_error(lambda: api.call("UpdateSecretRotationPolicy", SecretName=n, EnableAutomaticRotation=True,
                                  RotationInterval="7d"), "Rejected.UnsupportedOperation", 400)
    assert api.call("UpdateSecretRotationPolicy", SecretName=n, EnableAutomaticRotation=False)["SecretName"] == n
    expect_error(lambda: api.call("UpdateSecretRotationPolicy", SecretName=n, EnableAutomaticRotation=True,
                                  RotationInterval="1h"), "InvalidParameter", 400)
    expect_error(lambda: api.call("RotateSecret", SecretName=name(), VersionId="v9"), "Forbidden.ResourceNotFound", 404)


# ---------------------------------------------------------------------------------------------
# errors, stages, binary values, limits (one flavour each where the SDK does not matter)
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def capi(server):
    return make_api("classic", server)


@pytest.fixture
def tapi(server):
    return make_api("tea_v3", server)


def test_create_errors(capi):
    n = create(capi)
    expect_error(lambda: create(capi, n), "Rejected.ResourceExist", 409)
    for t in ("Rds", "RAMCredentials", "ECS", "Redis", "PolarDB"):
        e = expect_error(lambda: create(capi, name(), SecretType=t), "InvalidParameter", 400)
        assert "Generic" in e.message
    expect_error(lambda: create(capi, name(), SecretType="Nope"), "InvalidParameter", 400)
    for bad in ("acs/x", "a" * 193, "bad name", "semi;colon"):
        expect_error(lambda: create(capi, bad), "InvalidParameter", 400)
    create(capi, "a" * 192)
    expect_error(lambda: create(capi, name(), version="v" * 65), "InvalidParameter", 400)
    expect_error(lambda: create(capi, name(), EncryptionKeyId=str(uuid.uuid4())), "Forbidden.KeyNotFound", 404)
    expect_error(lambda: capi.call("CreateSecret", SecretName=name(), VersionId="v1"), "MissingParameter", 400)
    expect_error(lambda: create(capi, name(), SecretDataType="json"), "InvalidParameter", 400)
    expect_error(lambda: create(capi, name(), ExtendedConfig="[1]"), "InvalidParameter", 400)
    expect_error(lambda: create(capi, name(), EnableAutomaticRotation=True, RotationInterval="7d"),
                 "Rejected.UnsupportedOperation", 400)
    tags = [{"TagKey": f"k{i}", "TagValue": "v"} for i in range(21)]
    expect_error(lambda: create(capi, name(), Tags=json.dumps(tags)), "InvalidParameter", 400)
    expect_error(lambda: create(capi, name(), Tags=json.dumps([{"TagKey": "acs:x", "TagValue": "v"}])),
                 "InvalidParameter", 400)
    # Unknown secrets, versions and stages.
    expect_error(lambda: capi.call("GetSecretValue", SecretName=name()), "Forbidden.ResourceNotFound", 404)
    expect_error(lambda: capi.call("GetSecretValue", SecretName=n, VersionId="nope"), "Forbidden.ResourceNotFound", 404)
    expect_error(lambda: capi.call("GetSecretValue", SecretName=n, VersionStage="Nope"),
                 "Forbidden.ResourceNotFound", 404)
    expect_error(lambda: capi.call("GetSecretValue", SecretName=n, VersionId="v1", VersionStage="ACSPrevious"),
                 "Forbidden.ResourceNotFound", 404)
    for action in ("DescribeSecret", "RestoreSecret", "DeleteSecret", "ListSecretVersionIds", "UpdateSecret"):
        expect_error(lambda: capi.call(action, SecretName=name()), "Forbidden.ResourceNotFound", 404)
    expect_error(lambda: capi.call("RestoreSecret", SecretName=n), "InvalidParameter", 400)
    # Another account's ARN is not found.
    expect_error(lambda: capi.call("GetSecretValue", SecretName=f"acs:kms:{REGION}:999:secret/{n}"),
                 "Forbidden.ResourceNotFound", 404)


def test_size_limit_and_long_query_values(capi, tapi):
    big = "x" * 30720
    n = create(capi, data=big)  # classic: all 30 KB in the query
    assert tapi.call("GetSecretValue", SecretName=n)["SecretData"] == big
    tapi.call("PutSecretValue", SecretName=n, VersionId="v2", SecretData="y" * 30720)  # Tea: form body
    assert capi.call("GetSecretValue", SecretName=n)["SecretData"] == "y" * 30720
    expect_error(lambda: create(capi, name(), data="x" * 30721), "InvalidParameter", 400)
    expect_error(lambda: tapi.call("PutSecretValue", SecretName=n, VersionId="v3", SecretData="z" * 30721),
                 "InvalidParameter", 400)


def test_binary_values_are_returned_verbatim(tapi, capi):
    value = b64(bytes(range(256)))
    n = create(tapi, data=value, SecretDataType="binary")
    r = capi.call("GetSecretValue", SecretName=n)
    assert (r["SecretData"], r["SecretDataType"]) == (value, "binary")
    expect_error(lambda: create(tapi, name(), data="not base64!", SecretDataType="binary"), "InvalidParameter", 400)
    tapi.call("PutSecretValue", SecretName=n, VersionId="t", SecretData="now text", SecretDataType="text")
    r = tapi.call("GetSecretValue", SecretName=n)
    assert (r["SecretData"], r["SecretDataType"]) == ("now text", "text")


def test_put_secret_value_rules(capi, tapi):
    n = create(capi)
    # The same version again with the same value: success, no change.
    r = capi.call("PutSecretValue", SecretName=n, VersionId="v1", SecretData="v1-data")
    assert stages(r) == ["ACSCurrent"]
    # ... with another value: refused.
    expect_error(lambda: capi.call("PutSecretValue", SecretName=n, VersionId="v1", SecretData="other"),
                 "InvalidParameter", 400)
    # A custom stage only: ACSCurrent and ACSPrevious stay.
    r = tapi.call("PutSecretValue", SecretName=n, VersionId="pending", SecretData="p",
                  VersionStages=json.dumps(["MyPendingLabel"]))
    assert stages(r) == ["MyPendingLabel"]
    assert version_map(capi, n) == {"v1": ["ACSCurrent"], "pending": ["MyPendingLabel"]}
    assert capi.call("GetSecretValue", SecretName=n, VersionStage="MyPendingLabel")["SecretData"] == "p"
    # ACSCurrent plus a custom stage: the old current becomes ACSPrevious, the label moves.
    r = capi.call("PutSecretValue", SecretName=n, VersionId="v3", SecretData="three",
                  VersionStages=json.dumps(["ACSCurrent", "MyPendingLabel"]))
    assert stages(r) == ["ACSCurrent", "MyPendingLabel"]
    assert version_map(capi, n) == {"v3": ["ACSCurrent", "MyPendingLabel"], "v1": ["ACSPrevious"]}
    assert version_map(capi, n, deprecated=True) == {"v3": ["ACSCurrent", "MyPendingLabel"],
                                                     "v1": ["ACSPrevious"], "pending": []}
    expect_error(lambda: capi.call("PutSecretValue", SecretName=name(), VersionId="x", SecretData="x"),
                 "Forbidden.ResourceNotFound", 404)
    expect_error(lambda: capi.call("PutSecretValue", SecretName=n, VersionId="x", SecretData="x",
                                   VersionStages="[1]"), "InvalidParameter", 400)


def test_update_secret_version_stage(capi):
    n = create(capi)
    capi.call("PutSecretValue", SecretName=n, VersionId="v2", SecretData="two")
    capi.call("PutSecretValue", SecretName=n, VersionId="v3", SecretData="three", VersionStages='["Staging"]')
    # Move ACSCurrent back to v1: v2 (the holder) becomes ACSPrevious.
    capi.call("UpdateSecretVersionStage", SecretName=n, VersionStage="ACSCurrent", MoveToVersion="v1",
              RemoveFromVersion="v2")
    assert version_map(capi, n) == {"v1": ["ACSCurrent"], "v2": ["ACSPrevious"], "v3": ["Staging"]}
    assert capi.call("GetSecretValue", SecretName=n)["SecretData"] == "v1-data"
    # Attach a custom stage, then detach it.
    capi.call("UpdateSecretVersionStage", SecretName=n, VersionStage="Blue", MoveToVersion="v2")
    assert version_map(capi, n)["v2"] == ["ACSPrevious", "Blue"]
    capi.call("UpdateSecretVersionStage", SecretName=n, VersionStage="Blue", RemoveFromVersion="v2")
    assert version_map(capi, n)["v2"] == ["ACSPrevious"]
    # Built-in stages can only be moved; a stage is removed only from its holder.
    expect_error(lambda: capi.call("UpdateSecretVersionStage", SecretName=n, VersionStage="ACSCurrent",
                                   RemoveFromVersion="v1"), "InvalidParameter", 400)
    expect_error(lambda: capi.call("UpdateSecretVersionStage", SecretName=n, VersionStage="Staging",
                                   RemoveFromVersion="v1"), "InvalidParameter", 400)
    expect_error(lambda: capi.call("UpdateSecretVersionStage", SecretName=n, VersionStage="Staging"),
                 "InvalidParameter", 400)
    expect_error(lambda: capi.call("UpdateSecretVersionStage", SecretName=n, VersionStage="Staging",
                                   MoveToVersion="nope"), "Forbidden.ResourceNotFound", 404)


def test_versions_beyond_the_limit_drop_the_oldest_without_a_stage(capi):
    n = create(capi)
    for i in range(2, 103):
        capi.call("PutSecretValue", SecretName=n, VersionId=f"v{i}", SecretData=f"d{i}")
    all_versions = version_map(capi, n, deprecated=True)
    assert len(all_versions) == 100
    assert "v1" not in all_versions and "v2" not in all_versions and "v3" in all_versions
    assert all_versions["v102"] == ["ACSCurrent"] and all_versions["v101"] == ["ACSPrevious"]
    page = capi.call("ListSecretVersionIds", SecretName=n, IncludeDeprecated="true", PageNumber=2, PageSize=30)
    assert (page["PageNumber"], page["PageSize"], page["TotalCount"]) == (2, 30, 100)
    assert page["VersionIds"]["VersionId"][0]["VersionId"] == "v72"  # newest first


def test_list_secrets_paging_and_filters(server):
    acct = server.new_account()
    api = make_api("tea_v3", server, acct["AccessKeyId"], acct["AccessKeySecret"])
    names = [create(api, f"list-{i:02d}", Description=f"d{i % 2}",
                    Tags=json.dumps([{"TagKey": "parity", "TagValue": str(i % 2)}])) for i in range(12)]
    r = api.call("ListSecrets")
    assert (r["PageNumber"], r["PageSize"], r["TotalCount"]) == (1, 10, 12)
    assert len(r["SecretList"]["Secret"]) == 10
    r = api.call("ListSecrets", PageNumber=2, PageSize=10)
    assert [s["SecretName"] for s in r["SecretList"]["Secret"]] == names[10:]
    r = api.call("ListSecrets", PageSize=100, Filters=json.dumps([{"Key": "TagValue", "Values": ["1"]},
                                                                  {"Key": "Description", "Values": ["d1"]}]))
    assert r["TotalCount"] == 6
    r = api.call("ListSecrets", Filters=json.dumps([{"Key": "SecretName", "Values": ["list-00", "list-03"]}]))
    assert sorted(s["SecretName"] for s in r["SecretList"]["Secret"]) == ["list-00", "list-03"]
    expect_error(lambda: api.call("ListSecrets", Filters='[{"Key":"Bad","Values":["x"]}]'), "InvalidParameter", 400)
    expect_error(lambda: api.call("ListSecrets", PageSize=101), "InvalidParameter", 400)


def test_accounts_are_isolated(server):
    a = make_api("classic", server)
    other = server.new_account()
    b = make_api("classic", server, other["AccessKeyId"], other["AccessKeySecret"])
    n = create(a, data="mine")
    expect_error(lambda: b.call("GetSecretValue", SecretName=n), "Forbidden.ResourceNotFound", 404)
    expect_error(lambda: b.call("DescribeSecret", SecretName=n), "Forbidden.ResourceNotFound", 404)
    expect_error(lambda: b.call("PutSecretValue", SecretName=n, VersionId="x", SecretData="x"),
                 "Forbidden.ResourceNotFound", 404)
    expect_error(lambda: b.call("DeleteSecret", SecretName=n, ForceDeleteWithoutRecovery="true"),
                 "Forbidden.ResourceNotFound", 404)
    assert n not in [s["SecretName"] for s in b.call("ListSecrets", PageSize=100)["SecretList"]["Secret"]]
    # The same name in the other account is another secret.
    create(b, n, data="theirs")
    assert a.call("GetSecretValue", SecretName=n)["SecretData"] == "mine"
    assert b.call("GetSecretValue", SecretName=n)["SecretData"] == "theirs"
    # Encrypting under another account's key is refused.
    key = a.call("CreateKey")["KeyMetadata"]["KeyId"]
    expect_error(lambda: create(b, name(), EncryptionKeyId=key), "Forbidden.KeyNotFound", 404)


def test_default_key_is_one_per_account(server):
    acct = server.new_account()
    api = make_api("classic", server, acct["AccessKeyId"], acct["AccessKeySecret"])
    k1 = api.call("DescribeSecret", SecretName=create(api))["EncryptionKeyId"]
    k2 = api.call("DescribeSecret", SecretName=create(api))["EncryptionKeyId"]
    assert k1 == k2
    md = api.call("DescribeKey", KeyId=k1)["KeyMetadata"]
    assert md["KeyState"] == "Enabled"
    assert md["DeletionProtection"] == "Enabled"


def test_encryption_key_state_reaches_get_secret_value(capi):
    key = capi.call("CreateKey")["KeyMetadata"]["KeyId"]
    n = create(capi, EncryptionKeyId=key)
    capi.call("DisableKey", KeyId=key)
    expect_error(lambda: capi.call("GetSecretValue", SecretName=n), "Rejected.Disabled", 409)
    expect_error(lambda: capi.call("PutSecretValue", SecretName=n, VersionId="v2", SecretData="x"),
                 "Rejected.Disabled", 409)
    expect_error(lambda: create(capi, name(), EncryptionKeyId=key), "Rejected.Disabled", 409)
    # Metadata needs no key.
    assert capi.call("DescribeSecret", SecretName=n)["EncryptionKeyId"] == key
    capi.call("EnableKey", KeyId=key)
    assert capi.call("GetSecretValue", SecretName=n)["SecretData"] == "v1-data"
    capi.call("ScheduleKeyDeletion", KeyId=key, PendingWindowInDays="7")
    expect_error(lambda: capi.call("GetSecretValue", SecretName=n), "Rejected.PendingDeletion", 409)


def test_external_key_material_deleted(capi):
    from kms_helpers import wrap_key_material
    import os
    key = capi.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    p = capi.call("GetParametersForImport", KeyId=key, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                  WrappingKeySpec="RSA_2048")
    material = os.urandom(32)
    capi.call("ImportKeyMaterial", KeyId=key, ImportToken=p["ImportToken"],
              EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], material, "RSAES_OAEP_SHA_256"))
    n = create(capi, EncryptionKeyId=key)
    capi.call("DeleteKeyMaterial", KeyId=key)
    expect_error(lambda: capi.call("GetSecretValue", SecretName=n), "Rejected.PendingImport", 409)


def test_a_cached_data_key_still_follows_its_key_at_once(capi, own_server):
    """GetSecretValue keeps a version's opened data key in the node's cache; the secret's key
    is checked on every call all the same: disabling it, scheduling its deletion, deleting or
    expiring its material makes the next GetSecretValue on the same node fail at once, with
    the code a secret never read before gets."""
    from kms_helpers import wrap_key_material
    import os
    import time

    def warm(api, n, value="v1-data"):
        for _ in range(3):
            assert api.call("GetSecretValue", SecretName=n)["SecretData"] == value

    key = capi.call("CreateKey")["KeyMetadata"]["KeyId"]
    warmed, cold = create(capi, EncryptionKeyId=key), create(capi, EncryptionKeyId=key)
    warm(capi, warmed)
    capi.call("DisableKey", KeyId=key)
    for n in (warmed, cold):
        expect_error(lambda: capi.call("GetSecretValue", SecretName=n), "Rejected.Disabled", 409)
    capi.call("EnableKey", KeyId=key)
    warm(capi, warmed)
    capi.call("ScheduleKeyDeletion", KeyId=key, PendingWindowInDays="7")
    for n in (warmed, cold):
        expect_error(lambda: capi.call("GetSecretValue", SecretName=n), "Rejected.PendingDeletion", 409)
    capi.call("CancelKeyDeletion", KeyId=key)
    capi.call("EnableKey", KeyId=key)
    warm(capi, warmed)

    def external(api, expire=0):
        k = api.call("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
        p = api.call("GetParametersForImport", KeyId=k, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                     WrappingKeySpec="RSA_2048")
        api.call("ImportKeyMaterial", KeyId=k, ImportToken=p["ImportToken"], KeyMaterialExpireUnix=expire,
                 EncryptedKeyMaterial=wrap_key_material(p["PublicKey"], os.urandom(32), "RSAES_OAEP_SHA_256"))
        return k

    # Material deleted.
    ext = external(capi)
    warmed, cold = create(capi, EncryptionKeyId=ext), create(capi, EncryptionKeyId=ext)
    warm(capi, warmed)
    capi.call("DeleteKeyMaterial", KeyId=ext)
    for n in (warmed, cold):
        expect_error(lambda: capi.call("GetSecretValue", SecretName=n), "Rejected.PendingImport", 409)

    # Material expired on the test clock (no write announces it: the clock does).
    api = make_api("tea_v3", own_server)
    ext = external(api, expire=int(time.time()) + 3600)
    warmed, cold = create(api, EncryptionKeyId=ext), create(api, EncryptionKeyId=ext)
    warm(api, warmed)
    own_server.advance_clock(7200)
    for n in (warmed, cold):
        expect_error(lambda: api.call("GetSecretValue", SecretName=n), "Rejected.PendingImport", 409)


# ---------------------------------------------------------------------------------------------
# the deletion window on the test clock
# ---------------------------------------------------------------------------------------------
def test_deletion_window_restore_and_force(own_server):
    api = make_api("tea_v3", own_server)
    classic = make_api("classic", own_server)
    a, b, c = create(api), create(api), create(api)
    expect_error(lambda: api.call("DeleteSecret", SecretName=a, RecoveryWindowInDays="6"), "InvalidParameter", 400)
    expect_error(lambda: api.call("DeleteSecret", SecretName=a, RecoveryWindowInDays="31"), "InvalidParameter", 400)
    expect_error(lambda: classic.call("DeleteSecret", SecretName=a, RecoveryWindowInDays="7",
                                      ForceDeleteWithoutRecovery="true"), "InvalidParameter", 400)
    r = api.call("DeleteSecret", SecretName=a)  # default 30 days
    assert abs((parse_date(r["PlannedDeleteTime"]) - own_server.now()).total_seconds() - 30 * 86400) < 120
    api.call("DeleteSecret", SecretName=b, RecoveryWindowInDays="7")
    # In the window: reads of the value and changes refused, metadata shown, the name taken.
    expect_error(lambda: api.call("DeleteSecret", SecretName=b), "Rejected.ResourceInDeleteWindow", 409)
    expect_error(lambda: api.call("PutSecretValue", SecretName=b, VersionId="v2", SecretData="x"),
                 "Rejected.ResourceInDeleteWindow", 409)
    expect_error(lambda: api.call("UpdateSecret", SecretName=b, Description="x"), "Rejected.ResourceInDeleteWindow", 409)
    expect_error(lambda: create(api, b), "Rejected.ResourceInDeleteWindow", 409)
    listed = {s["SecretName"]: s for s in api.call("ListSecrets", PageSize=100)["SecretList"]["Secret"]}
    assert listed[b]["PlannedDeleteTime"]
    assert version_map(api, b) == {"v1": ["ACSCurrent"]}

    own_server.advance_clock(6 * 86400)
    api.call("RestoreSecret", SecretName=a)  # within its window
    own_server.advance_clock(86400 + 60)  # b's window is over: purged by the sweep
    expect_error(lambda: api.call("DescribeSecret", SecretName=b), "Forbidden.ResourceNotFound", 404)
    expect_error(lambda: api.call("RestoreSecret", SecretName=b), "Forbidden.ResourceNotFound", 404)
    create(api, b, data="new")  # the name is free
    assert api.call("GetSecretValue", SecretName=a)["SecretData"] == "v1-data"
    # A forced deletion during a window ends the secret at once.
    api.call("DeleteSecret", SecretName=c, RecoveryWindowInDays="30")
    r = api.call("DeleteSecret", SecretName=c, ForceDeleteWithoutRecovery="true")
    assert abs((parse_date(r["PlannedDeleteTime"]) - own_server.now()).total_seconds()) < 120
    expect_error(lambda: api.call("RestoreSecret", SecretName=c), "Forbidden.ResourceNotFound", 404)
    # Survives a restart (SQLite or PostgreSQL).
    own_server.restart()
    assert api.call("GetSecretValue", SecretName=b)["SecretData"] == "new"


# ---------------------------------------------------------------------------------------------
# at rest: the value is never in the database, WAL, dump, logs or audit trail in clear
# ---------------------------------------------------------------------------------------------
def test_secret_values_are_not_at_rest_in_clear(own_server):
    import subprocess
    api = make_api("tea_v3", own_server)
    classic = make_api("classic", own_server)
    v1 = "at-rest-" + uuid.uuid4().hex
    v2 = "at-rest-second-" + uuid.uuid4().hex
    n = create(api, data=v1)
    classic.call("PutSecretValue", SecretName=n, VersionId="v2", SecretData=v2)
    assert api.call("GetSecretValue", SecretName=n, VersionStage="ACSPrevious")["SecretData"] == v1
    assert classic.call("GetSecretValue", SecretName=n)["SecretData"] == v2
    own_server.stop()
    haystacks = [f.read_bytes() for f in (own_server.data_dir / "audit").iterdir()]
    haystacks += [f.read_bytes() for f in own_server.log_dir.iterdir()]
    haystacks += [(own_server.data_dir / f).read_bytes() for f in ("kms.db", "kms.db-wal")
                  if (own_server.data_dir / f).exists()]
    if (own_server.database_url or "").startswith("postgres"):
        dump = subprocess.run(["pg_dump", "--data-only", own_server.database_url],
                              capture_output=True, timeout=60, check=True).stdout
        haystacks += [dump]
    assert any(n.encode() in h for h in haystacks)  # the search works: the name is stored in clear
    assert any(b"GetSecretValue" in h for h in haystacks)  # and audited
    for secret in (v1, v2):
        for form in (secret.encode(), b64(secret.encode()).encode(), secret.encode().hex().encode()):
            for h in haystacks:
                assert form not in h


# ---------------------------------------------------------------------------------------------
# Alibaba's caching client, unmodified, over HTTPS with the server's certificate as its CA
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def tls_server(kms_binary, tmp_path):
    srv = KmsServer(tmp_path / "data", tmp_path / "logs", extra_args=["--tls-self-signed"])
    srv.scheme = "https"
    srv.start()
    yield srv
    srv.stop()


def test_secretsmanager_cache_client_v2(tls_server):
    # Pinned in tests/requirements.txt: a missing client fails here rather than skipping.
    import alibabacloud_secretsmanager_client_v2 as sm
    from alibabacloud_secretsmanager_client_v2.secret_manager_cache_client_builder import \
        SecretManagerCacheClientBuilder
    from alibabacloud_secretsmanager_client_v2.service.default_secret_manager_client_builder import \
        DefaultSecretManagerClientBuilder
    from alibabacloud_tea_openapi.utils_models import Config
    from alibabacloud_kms20160120.client import Client
    from alibabacloud_kms20160120 import models
    from darabonba.runtime import RuntimeOptions
    assert sm

    ca = str(tls_server.data_dir / "tls" / "cert.pem")
    endpoint = f"127.0.0.1:{tls_server.port}"
    cfg = dict(access_key_id=tls_server.ak, access_key_secret=tls_server.sk, region_id=REGION,
               endpoint=endpoint, protocol="https")
    n = name("cached")
    # Without the CA the client cannot reach the server (certificate not trusted). First, before
    # any trusted connection to the same address is pooled.
    untrusted = DefaultSecretManagerClientBuilder.standard().add_config(Config(**cfg)).build()
    with pytest.raises(Exception, match="(?i)certificate|ssl"):
        untrusted.get_secret_value(models.GetSecretValueRequest(secret_name=n, version_stage="ACSCurrent"))
    tea = Client(Config(**cfg))
    rt = RuntimeOptions(ca=ca)
    tea.create_secret_with_options(models.CreateSecretRequest(
        secret_name=n, version_id="v1", secret_data='{"user":"app","password":"one"}'), rt)
    b = name("binary")
    tea.create_secret_with_options(models.CreateSecretRequest(
        secret_name=b, version_id="v1", secret_data=b64(b"\x00\x01raw"), secret_data_type="binary"), rt)

    client = SecretManagerCacheClientBuilder.new_cache_client_builder(
        DefaultSecretManagerClientBuilder.standard().add_config(Config(**cfg, ca=ca)).build()
    ).with_secret_ttl(n, 1000 * 3600).build()
    info = client.get_secret_info(n)
    assert (info.secret_name, info.version_id, info.secret_value, info.secret_data_type) == \
        (n, "v1", '{"user":"app","password":"one"}', "text")
    assert client.get_secret_value(n) == '{"user":"app","password":"one"}'
    # A binary value comes back as the stored string with its type. (The client's own
    # get_binary_value() cannot work with bytebuffer 0.1.2: it wraps bytes, not a bytearray.)
    binfo = client.get_secret_info(b)
    assert (binfo.secret_value, binfo.secret_data_type) == (b64(b"\x00\x01raw"), "binary")

    # A new value put through the API: the cache serves the old one until it is refreshed.
    tea.put_secret_value_with_options(models.PutSecretValueRequest(
        secret_name=n, version_id="v2", secret_data='{"user":"app","password":"two"}'), rt)
    assert client.get_secret_value(n) == '{"user":"app","password":"one"}'
    assert client.refresh_now(n)
    assert client.get_secret_value(n) == '{"user":"app","password":"two"}'
    assert client.get_secret_info(n).version_id == "v2"



# ---------------------------------------------------------------------------------------------
# the command line (its subcommands come from the action table)
# ---------------------------------------------------------------------------------------------
def test_kms_command_line(server, tmp_path):
    import os
    import subprocess
    from kms_helpers import kms_bin
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "KMS_"))}
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=server.ak, ALIBABA_CLOUD_ACCESS_KEY_SECRET=server.sk,
               KMS_ENDPOINT=f"http://127.0.0.1:{server.port}", KMS_CLI_CONFIG=str(tmp_path / "cli.toml"))

    def kms(*args, check=True):
        p = subprocess.run([str(kms_bin()), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=60)
        if check:
            assert p.returncode == 0, p.stderr
        return p

    n = name("cli")
    out = json.loads(kms("CreateSecret", "--SecretName", n, "--VersionId", "v1", "--SecretData", "from the cli").stdout)
    assert out["SecretName"] == n
    got = json.loads(kms("GetSecretValue", "--SecretName", n).stdout)
    assert got["SecretData"] == "from the cli"
    kms("PutSecretValue", "--SecretName", n, "--VersionId", "v2", "--SecretData", "second")
    ids = json.loads(kms("ListSecretVersionIds", "--SecretName", n).stdout)
    assert [v["VersionId"] for v in ids["VersionIds"]["VersionId"]] == ["v2", "v1"]
    p = kms("GetSecretValue", "--SecretName", name("none"), check=False)
    assert p.returncode != 0 and "Forbidden.ResourceNotFound" in p.stderr + p.stdout


# ---------------------------------------------------------------------------------------------
# several nodes on one PostgreSQL database; migrate-store (PostgreSQL runs only)
# ---------------------------------------------------------------------------------------------
needs_postgres = pytest.mark.skipif(not __import__("os").environ.get("KMS_TEST_DATABASE_URL"),
                                    reason="needs KMS_TEST_DATABASE_URL (scripts/test.sh runs it)")


# How long a node may serve a secret another node changed: cached entries live at most one
# second with PostgreSQL (README, "Caches"; the change notification is normally far faster),
# plus the polling requests' own time on a loaded machine.
CACHE_BOUND_S = 1.0 + 1.0


def served_within(read, expected, limit=CACHE_BOUND_S):
    """Polls `read()` until it returns `expected` (exactly), failing after `limit` seconds."""
    import time
    start = time.monotonic()
    while True:
        got = read()
        if got == expected:
            return time.monotonic() - start
        assert time.monotonic() - start < limit, f"still {got!r} after {limit} s, expected {expected!r}"
        time.sleep(0.01)


@needs_postgres
def test_a_value_put_on_one_node_is_served_by_another_at_once(kms_binary, tmp_path):
    import os
    from kms_helpers import new_test_database
    db = new_test_database()
    root = tmp_path / "root.key"
    root.write_bytes(os.urandom(32))
    root.chmod(0o600)
    ak, sk = "LTAIsecrets" + os.urandom(4).hex(), b64(os.urandom(18))
    nodes = [KmsServer(tmp_path / f"n{i}", tmp_path / f"l{i}", ak=ak, sk=sk, database_url=db,
                       extra_env={"KMS_ROOT_KEY_FILE": str(root)}).start() for i in range(2)]
    try:
        a, b = (make_api("tea_v3", n) for n in nodes)
        n = create(a, data="one")
        assert b.call("GetSecretValue", SecretName=n)["SecretData"] == "one"
        for i in range(2, 12):
            (a if i % 2 else b).call("PutSecretValue", SecretName=n, VersionId=f"v{i}", SecretData=f"value {i}")
            # The other node holds the secret in its cache: the write's change notification
            # drops it there, within the cache's documented bound at the latest.
            other = b if i % 2 else a
            served_within(lambda: other.call("GetSecretValue", SecretName=n)["SecretData"], f"value {i}")
            assert other.call("GetSecretValue", SecretName=n)["SecretData"] == f"value {i}"
        b.call("DeleteSecret", SecretName=n, ForceDeleteWithoutRecovery="true")

        def on_a():
            try:
                return a.call("GetSecretValue", SecretName=n)["SecretData"]
            except KmsError as e:
                return e.code
        served_within(on_a, "Forbidden.ResourceNotFound")
        expect_error(lambda: a.call("GetSecretValue", SecretName=n), "Forbidden.ResourceNotFound", 404)
    finally:
        for node in nodes:
            node.stop()


@needs_postgres
def test_a_value_cached_on_one_node_is_replaced_when_another_puts(kms_binary, tmp_path):
    """Node B serves a secret from its cache; a PutSecretValue (and a stage move, and a
    deletion) on node A reaches B through the change notification, well within the cache's
    lifetime (10 s): B serves the new value at once (allowing for the notification's delivery)."""
    import os
    import time
    from kms_helpers import new_test_database
    db = new_test_database()
    root = tmp_path / "root.key"
    root.write_bytes(os.urandom(32))
    root.chmod(0o600)
    ak, sk = "LTAIsecrets" + os.urandom(4).hex(), b64(os.urandom(18))
    nodes = [KmsServer(tmp_path / f"n{i}", tmp_path / f"l{i}", ak=ak, sk=sk, database_url=db,
                       extra_env={"KMS_ROOT_KEY_FILE": str(root)}).start() for i in range(2)]

    def served_on_b_within(expected, limit=1.0):
        start = time.monotonic()
        while True:
            got = b.call("GetSecretValue", SecretName=n)["SecretData"]
            if got == expected:
                return time.monotonic() - start
            assert time.monotonic() - start < limit, f"node B still serves {got!r}"
            time.sleep(0.01)

    try:
        a, b = (make_api("tea_v3", n) for n in nodes)
        n = create(a, data="one")
        for _ in range(3):  # cached on B
            assert b.call("GetSecretValue", SecretName=n)["SecretData"] == "one"
        for i in range(2, 6):
            a.call("PutSecretValue", SecretName=n, VersionId=f"v{i}", SecretData=f"value {i}")
            assert served_on_b_within(f"value {i}") < 1.0
            assert b.call("GetSecretValue", SecretName=n)["SecretData"] == f"value {i}"
        # A stage moved back on A: B serves the old version again.
        a.call("UpdateSecretVersionStage", SecretName=n, VersionStage="ACSCurrent",
               MoveToVersion="v2", RemoveFromVersion="v5")
        assert served_on_b_within("value 2") < 1.0
        a.call("DeleteSecret", SecretName=n, ForceDeleteWithoutRecovery="true")
        start = time.monotonic()
        while True:
            try:
                b.call("GetSecretValue", SecretName=n)
            except Exception:
                break
            assert time.monotonic() - start < 1.0, "node B still serves a deleted secret"
            time.sleep(0.01)
        expect_error(lambda: b.call("GetSecretValue", SecretName=n), "Forbidden.ResourceNotFound", 404)
    finally:
        for node in nodes:
            node.stop()


@needs_postgres
def test_a_key_disabled_on_one_node_stops_a_secret_warm_on_another(kms_binary, tmp_path):
    """Node B holds a secret's opened data key; DisableKey (then ScheduleKeyDeletion) on node
    A reaches B through the key's change notification: B refuses GetSecretValue with the same
    code as A, within the cache bound."""
    import os
    from kms_helpers import new_test_database
    db = new_test_database()
    root = tmp_path / "root.key"
    root.write_bytes(os.urandom(32))
    root.chmod(0o600)
    ak, sk = "LTAIsecrets" + os.urandom(4).hex(), b64(os.urandom(18))
    nodes = [KmsServer(tmp_path / f"n{i}", tmp_path / f"l{i}", ak=ak, sk=sk, database_url=db,
                       extra_env={"KMS_ROOT_KEY_FILE": str(root)}).start() for i in range(2)]

    def code_on(api, n):
        try:
            return api.call("GetSecretValue", SecretName=n)["SecretData"]
        except KmsError as e:
            return e.code

    try:
        a, b = (make_api("tea_v3", n) for n in nodes)
        key = a.call("CreateKey")["KeyMetadata"]["KeyId"]
        n = create(a, data="one", EncryptionKeyId=key)
        for _ in range(3):  # warm on B
            assert b.call("GetSecretValue", SecretName=n)["SecretData"] == "one"
        a.call("DisableKey", KeyId=key)
        expect_error(lambda: a.call("GetSecretValue", SecretName=n), "Rejected.Disabled", 409)
        served_within(lambda: code_on(b, n), "Rejected.Disabled")
        expect_error(lambda: b.call("GetSecretValue", SecretName=n), "Rejected.Disabled", 409)
        a.call("EnableKey", KeyId=key)
        served_within(lambda: code_on(b, n), "one")
        a.call("ScheduleKeyDeletion", KeyId=key, PendingWindowInDays="7")
        served_within(lambda: code_on(b, n), "Rejected.PendingDeletion")
        expect_error(lambda: b.call("GetSecretValue", SecretName=n), "Rejected.PendingDeletion", 409)
    finally:
        for node in nodes:
            node.stop()


@needs_postgres
def test_migrate_store_copies_secrets(kms_binary, tmp_path):
    import subprocess
    from kms_helpers import kms_bin, new_test_database
    single = KmsServer(tmp_path / "single", tmp_path / "single-logs",
                       database_url="sqlite:" + str(tmp_path / "single" / "kms.db")).start()
    api = make_api("classic", single)
    n = create(api, data="migrated value", Tags=json.dumps([{"TagKey": "k", "TagValue": "v"}]))
    api.call("PutSecretValue", SecretName=n, VersionId="v2", SecretData="second", VersionStages='["Blue"]')
    w = create(api)
    api.call("DeleteSecret", SecretName=w, RecoveryWindowInDays="7")
    single.stop()
    target = new_test_database()
    out = subprocess.run([str(kms_bin()), "admin", "migrate-store", "--from",
                          f"sqlite:{tmp_path / 'single' / 'kms.db'}", "--to", target],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "verified" in out.stdout and "2 secrets, 3 secret versions" in out.stdout, out.stdout
    single.database_url = target
    single.start()
    try:
        assert api.call("GetSecretValue", SecretName=n)["SecretData"] == "migrated value"
        assert api.call("GetSecretValue", SecretName=n, VersionStage="Blue")["SecretData"] == "second"
        assert api.call("DescribeSecret", SecretName=n, FetchTags="true")["Tags"]["Tag"] == \
            [{"TagKey": "k", "TagValue": "v"}]
        assert api.call("DescribeSecret", SecretName=w)["PlannedDeleteTime"]
        api.call("RestoreSecret", SecretName=w)
        assert api.call("GetSecretValue", SecretName=w)["SecretData"] == "v1-data"
    finally:
        single.stop()
