"""RAM (2015-05-01) on the KMS listener, with the real SDKs, and RAM policies enforced on
every KMS action (cases generated from the action table: `kms admin action-table`)."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from kms_helpers import ACCOUNT_ID, REGION, DATE_RE, KmsError, RawClient
from ram_helpers import Ram, Tea, action_table, allow, deny, err, policy

ARN = f"acs:kms:{REGION}:{ACCOUNT_ID}"
TABLE = action_table()
KMS_ROWS = [r for r in TABLE if r["Version"] == "2016-01-20" and r["Ram"]]


@pytest.fixture(scope="module")
def ram(server):
    return Ram(server)


@pytest.fixture(scope="module")
def root_raw(server):
    return RawClient(server)


def new_key(raw: RawClient, **params) -> str:
    return raw.ok("CreateKey", params)["KeyMetadata"]["KeyId"]


# ------------------------------------------------------------------------------- management

@pytest.mark.parametrize("v2", [False, True], ids=["acs3", "hmac-sha1"])
def test_users_access_keys_and_login_profiles(server, v2):
    api = Tea("ram", server, server.ak, server.sk, v2=v2)
    name = f"alice-{int(v2)}"
    u = api.call("CreateUser", user_name=name, display_name="Alice", email="a@example.com",
                 mobile_phone="86-18600000000", comments="engineer")["User"]
    assert u["UserName"] == name and u["DisplayName"] == "Alice" and u["Comments"] == "engineer"
    assert u["UserId"].isdigit() and len(u["UserId"]) == 16
    assert DATE_RE.match(u["CreateDate"])
    err(lambda: api.call("CreateUser", user_name=name), "EntityAlreadyExists.User", 409)
    err(lambda: api.call("CreateUser", user_name="bad name"),
        "InvalidParameter.UserName.InvalidChars", 400)
    err(lambda: api.call("CreateUser", user_name="x" * 65), "InvalidParameter.UserName.Length", 400)
    err(lambda: api.call("GetUser", user_name="nobody"), "EntityNotExist.User", 404)
    got = api.call("GetUser", user_name=name)["User"]
    assert got["UserId"] == u["UserId"] and DATE_RE.match(got["UpdateDate"])
    renamed = api.call("UpdateUser", user_name=name, new_user_name=name + "x",
                       new_display_name="Al")["User"]
    assert (renamed["UserName"], renamed["DisplayName"], renamed["UserId"]) == (name + "x", "Al", u["UserId"])
    name += "x"
    listed = api.call("ListUsers")
    assert listed["IsTruncated"] is False
    assert name in [x["UserName"] for x in listed["Users"]["User"]]

    k1 = api.call("CreateAccessKey", user_name=name)["AccessKey"]
    assert k1["AccessKeyId"].startswith("LTAI") and len(k1["AccessKeySecret"]) == 30
    assert k1["Status"] == "Active"
    api.call("CreateAccessKey", user_name=name)
    err(lambda: api.call("CreateAccessKey", user_name=name), "LimitExceeded.User.AccessKey", 409)
    keys = api.call("ListAccessKeys", user_name=name)["AccessKeys"]["AccessKey"]
    assert len(keys) == 2 and all("AccessKeySecret" not in k for k in keys)
    api.call("UpdateAccessKey", user_name=name, user_access_key_id=k1["AccessKeyId"], status="Inactive")
    # An inactive key is refused at the door.
    inactive = Tea("ram", server, k1["AccessKeyId"], k1["AccessKeySecret"])
    err(lambda: inactive.call("GetUser", user_name=name), "InvalidAccessKeyId.Inactive", 400)
    err(lambda: api.call("DeleteAccessKey", user_name=name, user_access_key_id="LTAInope"),
        "EntityNotExist.User.AccessKey", 404)

    lp = api.call("CreateLoginProfile", user_name=name, password="correct horse battery",
                  password_reset_required=True)["LoginProfile"]
    assert lp["PasswordResetRequired"] is True and lp["MFABindRequired"] is False
    err(lambda: api.call("CreateLoginProfile", user_name=name, password="correct horse battery"),
        "EntityAlreadyExists.User.LoginProfile", 409)
    err(lambda: api.call("UpdateLoginProfile", user_name=name, password="short"),
        "InvalidParameter.Password.TooWeak", 400)
    api.call("UpdateLoginProfile", user_name=name, password_reset_required=False)
    assert api.call("GetLoginProfile", user_name=name)["LoginProfile"]["PasswordResetRequired"] is False

    # DeleteUser refuses while anything hangs on the user, then succeeds.
    err(lambda: api.call("DeleteUser", user_name=name), "DeleteConflict.User.AccessKey", 409)
    for k in keys:
        api.call("DeleteAccessKey", user_name=name, user_access_key_id=k["AccessKeyId"])
    err(lambda: api.call("DeleteUser", user_name=name), "DeleteConflict.User.LoginProfile", 409)
    api.call("DeleteLoginProfile", user_name=name)
    err(lambda: api.call("GetLoginProfile", user_name=name), "EntityNotExist.User.LoginProfile", 404)
    api.call("DeleteUser", user_name=name)
    err(lambda: api.call("GetUser", user_name=name), "EntityNotExist.User", 404)


def test_groups_policies_attachments_and_roles(server):
    api = Tea("ram", server, server.ak, server.sk)
    api.call("CreateUser", user_name="bob")
    g = api.call("CreateGroup", group_name="dev", comments="developers")["Group"]
    assert g["GroupName"] == "dev" and g["GroupId"].isdigit()
    err(lambda: api.call("CreateGroup", group_name="dev"), "EntityAlreadyExists.Group", 409)
    api.call("AddUserToGroup", group_name="dev", user_name="bob")
    err(lambda: api.call("AddUserToGroup", group_name="dev", user_name="bob"),
        "EntityAlreadyExists.User.Group", 409)
    assert [x["GroupName"] for x in api.call("ListGroupsForUser", user_name="bob")["Groups"]["Group"]] == ["dev"]
    assert [x["UserName"] for x in api.call("ListUsersForGroup", group_name="dev")["Users"]["User"]] == ["bob"]
    err(lambda: api.call("DeleteGroup", group_name="dev"), "DeleteConflict.Group.User", 409)

    doc = policy(allow("kms:Describe*", "*"))
    p = api.call("CreatePolicy", policy_name="kms-read", policy_document=doc, description="read")["Policy"]
    assert (p["PolicyType"], p["DefaultVersion"]) == ("Custom", "v1")
    err(lambda: api.call("CreatePolicy", policy_name="kms-read", policy_document=doc),
        "EntityAlreadyExists.Policy", 409)
    bad = err(lambda: api.call("CreatePolicy", policy_name="bad", policy_document='{"Version":"1"}'),
              "MalformedPolicyDocument", 400)
    assert bad.message
    v2 = api.call("CreatePolicyVersion", policy_name="kms-read", policy_document=policy(allow("kms:List*", "*")))
    assert v2["PolicyVersion"]["VersionId"] == "v2" and v2["PolicyVersion"]["IsDefaultVersion"] is False
    api.call("SetDefaultPolicyVersion", policy_name="kms-read", version_id="v2")
    err(lambda: api.call("DeletePolicyVersion", policy_name="kms-read", version_id="v2"),
        "DeleteConflict.Policy.Version.Default", 409)
    got = api.call("GetPolicy", policy_name="kms-read", policy_type="Custom")
    assert got["DefaultPolicyVersion"]["VersionId"] == "v2" and got["Policy"]["AttachmentCount"] == 0
    versions = api.call("ListPolicyVersions", policy_name="kms-read", policy_type="Custom")
    assert [v["VersionId"] for v in versions["PolicyVersions"]["PolicyVersion"]] == ["v1", "v2"]
    api.call("DeletePolicyVersion", policy_name="kms-read", version_id="v1")
    err(lambda: api.call("GetPolicyVersion", policy_name="kms-read", policy_type="Custom", version_id="v1"),
        "EntityNotExist.Policy.Version", 404)
    sysp = api.call("GetPolicy", policy_name="AliyunKMSCryptoUserAccess", policy_type="System")
    assert sysp["Policy"]["PolicyType"] == "System" and "kms:Decrypt" in sysp["DefaultPolicyVersion"]["PolicyDocument"]
    err(lambda: api.call("GetPolicy", policy_name="kms-read", policy_type="Nope"),
        "InvalidParameter.PolicyType", 400)
    names = [x["PolicyName"] for x in api.call("ListPolicies")["Policies"]["Policy"]]
    assert "AliyunKMSFullAccess" in names and "kms-read" in names

    api.call("AttachPolicyToGroup", group_name="dev", policy_name="kms-read", policy_type="Custom")
    api.call("AttachPolicyToUser", user_name="bob", policy_name="AliyunKMSReadOnlyAccess", policy_type="System")
    err(lambda: api.call("AttachPolicyToUser", user_name="bob", policy_name="AliyunKMSReadOnlyAccess",
                         policy_type="System"), "EntityAlreadyExists.User.Policy", 409)
    assert [x["PolicyName"] for x in api.call("ListPoliciesForUser", user_name="bob")["Policies"]["Policy"]] \
        == ["AliyunKMSReadOnlyAccess"]
    ents = api.call("ListEntitiesForPolicy", policy_name="kms-read", policy_type="Custom")
    assert [x["GroupName"] for x in ents["Groups"]["Group"]] == ["dev"]
    err(lambda: api.call("DeletePolicy", policy_name="kms-read"), "DeleteConflict.Policy.User", 409)
    api.call("DetachPolicyFromGroup", group_name="dev", policy_name="kms-read", policy_type="Custom")
    err(lambda: api.call("DetachPolicyFromGroup", group_name="dev", policy_name="kms-read", policy_type="Custom"),
        "EntityNotExist.Group.Policy", 404)
    api.call("DeletePolicy", policy_name="kms-read")
    err(lambda: api.call("GetPolicy", policy_name="kms-read", policy_type="Custom"), "EntityNotExist.Policy", 404)

    trust = policy({"Effect": "Allow", "Action": "sts:AssumeRole",
                    "Principal": {"RAM": [f"acs:ram::{ACCOUNT_ID}:root"]}})
    r = api.call("CreateRole", role_name="kms-user", assume_role_policy_document=trust,
                 description="KMS user role")["Role"]
    assert r["Arn"] == f"acs:ram::{ACCOUNT_ID}:role/kms-user" and r["MaxSessionDuration"] == 3600
    err(lambda: api.call("CreateRole", role_name="kms-user", assume_role_policy_document=trust),
        "EntityAlreadyExists.Role", 409)
    err(lambda: api.call("CreateRole", role_name="r2", assume_role_policy_document='{"Version":"1","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}'),
        "MalformedPolicyDocument", 400)
    got = api.call("GetRole", role_name="kms-user")["Role"]
    assert got["AssumeRolePolicyDocument"] == trust and got["RolePrincipalName"].startswith("kms-user@role.")
    upd = api.call("UpdateRole", role_name="kms-user", new_max_session_duration=7200)["Role"]
    assert upd["MaxSessionDuration"] == 7200
    assert "kms-user" in [x["RoleName"] for x in api.call("ListRoles")["Roles"]["Role"]]
    api.call("AttachPolicyToRole", role_name="kms-user", policy_name="AliyunKMSFullAccess", policy_type="System")
    err(lambda: api.call("DeleteRole", role_name="kms-user"), "DeleteConflict.Role.Policy", 409)
    api.call("DetachPolicyFromRole", role_name="kms-user", policy_name="AliyunKMSFullAccess", policy_type="System")
    api.call("DeleteRole", role_name="kms-user")
    err(lambda: api.call("GetRole", role_name="kms-user"), "EntityNotExist.Role", 404)


def test_classic_ram_sdk(server):
    from aliyunsdkcore.acs_exception.exceptions import ServerException
    from aliyunsdkcore.client import AcsClient
    from aliyunsdkram.request.v20150501.CreateUserRequest import CreateUserRequest
    from aliyunsdkram.request.v20150501.GetUserRequest import GetUserRequest

    c = AcsClient(server.ak, server.sk, REGION, auto_retry=False)
    req = CreateUserRequest()
    req.set_UserName("carol")
    req.set_endpoint(f"http://127.0.0.1:{server.port}")
    assert json.loads(c.do_action_with_exception(req))["User"]["UserName"] == "carol"
    req = GetUserRequest()
    req.set_UserName("nobody")
    req.set_endpoint(f"http://127.0.0.1:{server.port}")
    with pytest.raises(ServerException) as e:
        c.do_action_with_exception(req)
    assert (e.value.get_error_code(), e.value.get_http_status()) == ("EntityNotExist.User", 404)


def test_ram_calls_obey_policies(server, ram):
    """A delegated administrator: may manage user/dave's access keys only."""
    ak, sk = ram.user_with_key("delegate")
    ram.api.call("CreateUser", user_name="dave")
    ram.set_policy("manage-dave", policy(
        allow(["ram:CreateAccessKey", "ram:ListAccessKeys", "ram:DeleteAccessKey"], "acs:ram:*:*:user/dave")),
        user="delegate")
    d = Tea("ram", server, ak, sk)
    k = d.call("CreateAccessKey", user_name="dave")["AccessKey"]
    assert len(d.call("ListAccessKeys", user_name="dave")["AccessKeys"]["AccessKey"]) == 1
    e = err(lambda: d.call("CreateAccessKey", user_name="delegate"), "NoPermission", 403)
    assert e.message == "You are not authorized to do this action."
    err(lambda: d.call("CreateUser", user_name="eve"), "NoPermission", 403)
    err(lambda: d.call("AttachPolicyToUser", user_name="delegate", policy_name="AdministratorAccess",
                       policy_type="System"), "NoPermission", 403)
    d.call("DeleteAccessKey", user_name="dave", user_access_key_id=k["AccessKeyId"])
    # Nothing changed by the refusals.
    assert ram.api.call("GetUser", user_name="dave")["User"]["UserName"] == "dave"
    err(lambda: ram.api.call("GetUser", user_name="eve"), "EntityNotExist.User", 404)
    # Its own identity, without any permission.
    who = Tea("sts", server, ak, sk).call("GetCallerIdentity")
    assert (who["IdentityType"], who["Arn"]) == ("RAMUser", f"acs:ram::{ACCOUNT_ID}:user/delegate")


# ------------------------------------------------------------------------- KMS, per action

DUMMY = {
    "Plaintext": base64.b64encode(b"hello").decode(),
    "Description": "d",
    "PendingWindowInDays": "7",
    "EnableDeletionProtection": "false",
    "ImportToken": "x",
    "EncryptedKeyMaterial": base64.b64encode(b"x" * 32).decode(),
    "WrappingKeySpec": "RSA_2048",
    "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
    "KeyVersionId": "00000000-0000-0000-0000-000000000000",
    "RegionId": REGION,
    "ResourceType": "key",
    "Tags": json.dumps([{"TagKey": "a", "TagValue": "b"}]),
    "TagKeys": json.dumps(["a"]),
    "TagKey": "a",
    "EnableAutomaticRotation": "false",
}


def arn_for(resource: str, key: str, alias: str, secret: str = "") -> str:
    return {
        "key/<KeyId>": f"{ARN}:key/{key}",
        "key": f"{ARN}:key",
        "alias/<AliasName>": f"{ARN}:alias/{alias[len('alias/'):]}",
        "alias": f"{ARN}:alias",
        "secret/<SecretName>": f"{ARN}:secret/{secret}",
        "secret": f"{ARN}:secret",
        "*": "*",
    }[resource]


def request_params(row: dict, key: str, blob: str, alias: str, secret: str = "") -> dict:
    params = {}
    for p in row["Params"]:
        n = p["Name"]
        if n == "SecretName" and secret:
            v = secret
        elif n in ("KeyId", "DestinationKeyId"):
            v = key
        elif n == "ProtectedResourceArn":
            v = f"{ARN}:key/{key}"
        elif n == "CiphertextBlob":
            v = blob
        elif n == "AliasName":
            v = alias
        elif n == "ResourceId":
            v = key
        elif p["Required"]:
            v = DUMMY.get(n, "x")
        else:
            continue
        if p["Kind"] == "List":
            params[f"{n}.1"] = v
        elif p["Kind"] == "TagList":
            params[f"{n}.1.Key"], params[f"{n}.1.Value"] = "a", "b"
        else:
            params[n] = v
    return params


@pytest.mark.parametrize("row", KMS_ROWS, ids=[r["Action"] for r in KMS_ROWS])
def test_every_kms_action_is_authorised_by_its_table_row(server, ram, root_raw, row):
    action = row["Action"]
    user = f"app-{action.lower()}"
    ak, sk = ram.user_with_key(user)
    mine = new_key(root_raw)
    other = new_key(root_raw)
    blobs = {k: root_raw.ok("Encrypt", {"KeyId": k, "Plaintext": DUMMY["Plaintext"]})["CiphertextBlob"]
             for k in (mine, other)}
    alias = f"alias/a-{uuid.uuid4().hex[:12]}"
    if action in ("UpdateAlias", "DeleteAlias"):
        root_raw.ok("CreateAlias", {"AliasName": alias, "KeyId": mine})
    # Secret actions name a secret: one of the user's, one of another (both made by root;
    # CreateSecret names a new one, on the secret container).
    takes_secret = any(p["Name"] == "SecretName" for p in row["Params"])
    secrets = {k: f"s-{uuid.uuid4().hex[:12]}" for k in (mine, other)}
    if takes_secret and action != "CreateSecret":
        for name in secrets.values():
            root_raw.ok("CreateSecret", {"SecretName": name, "VersionId": "v1", "SecretData": "x"})
    as_user = RawClient(server, ak, sk)

    def call(key: str):
        secret = secrets[key] if takes_secret else ""
        return as_user.call(action, request_params(row, key, blobs[key], alias, secret))

    def forbidden(r):
        assert (r.status, r.json.get("Code")) == (403, "Forbidden.NoPermission"), r
        assert r.json["Message"] == "This operation is forbidden by permission system."

    exact = [allow(c["Action"], arn_for(c["Resource"], mine, alias, secrets[mine])) for c in row["Ram"]]
    # Without a policy: refused, nothing changed.
    forbidden(call(mine))
    ram.set_policy(f"p-{user}", policy(*exact), user=user)
    # The one key allowed, another refused (when the request names the key: DeleteAlias
    # reaches its key through the alias, tested in test_alias_addressed_calls…).
    names_key = {"KeyId", "CiphertextBlob", "ResourceId", "ProtectedResourceArn"} & {
        p["Name"] for p in row["Params"]}
    if names_key and any(c["Resource"] == "key/<KeyId>" for c in row["Ram"]):
        forbidden(call(other))
    # The one secret allowed, another refused.
    if takes_secret and any(c["Resource"] == "secret/<SecretName>" for c in row["Ram"]):
        forbidden(call(other))
    # An explicit Deny wins over the Allow.
    denied = [deny(c["Action"], arn_for(c["Resource"], mine, alias, secrets[mine])) for c in row["Ram"]]
    ram.set_policy(f"p-{user}", policy(*exact, *denied), user=user)
    forbidden(call(mine))
    # Allowed: the action runs (and may answer its own error for the dummy inputs).
    ram.set_policy(f"p-{user}", policy(*exact), user=user)
    r = call(mine)
    assert r.json.get("Code") != "Forbidden.NoPermission", r
    assert r.status != 403, r


def test_alias_addressed_calls_are_checked_on_the_key(server, ram, root_raw):
    ak, sk = ram.user_with_key("alias-user")
    k1, k2 = new_key(root_raw), new_key(root_raw)
    root_raw.ok("CreateAlias", {"AliasName": "alias/one", "KeyId": k1})
    root_raw.ok("CreateAlias", {"AliasName": "alias/two", "KeyId": k2})
    ram.set_policy("enc-k1", policy(allow("kms:Encrypt", f"{ARN}:key/{k1}")), user="alias-user")
    c = RawClient(server, ak, sk)
    pt = DUMMY["Plaintext"]
    assert c.ok("Encrypt", {"KeyId": "alias/one", "Plaintext": pt})["KeyId"] == k1
    r = c.call("Encrypt", {"KeyId": "alias/two", "Plaintext": pt})
    assert (r.status, r.json["Code"]) == (403, "Forbidden.NoPermission")
    # DeleteAlias is checked on the alias and on the key it points at.
    ram.set_policy("enc-k1", policy(allow("kms:DeleteAlias", [f"{ARN}:alias/two", f"{ARN}:key/{k1}"])),
                   user="alias-user")
    r = c.call("DeleteAlias", {"AliasName": "alias/two"})
    assert (r.status, r.json["Code"]) == (403, "Forbidden.NoPermission")
    # An alias ARN is not a grant on the key behind it.
    ram.set_policy("enc-k1", policy(allow("kms:Encrypt", f"{ARN}:alias/two")), user="alias-user")
    r = c.call("Encrypt", {"KeyId": "alias/two", "Plaintext": pt})
    assert r.status == 403


def test_conditions_tags_source_ip_and_groups(server, ram, root_raw):
    ak, sk = ram.user_with_key("cond-user")
    ram.api.call("CreateGroup", group_name="apollo")
    ram.api.call("AddUserToGroup", group_name="apollo", user_name="cond-user")
    tagged = root_raw.ok("CreateKey", {"Tags": json.dumps([{"TagKey": "Project", "TagValue": "apollo"}])})["KeyMetadata"]["KeyId"]
    plain = new_key(root_raw)
    ram.set_policy("apollo-only", json.dumps({"Version": "1", "Statement": [{
        "Effect": "Allow", "Action": "kms:DescribeKey", "Resource": "*",
        "Condition": {"StringEquals": {"kms:tag/Project": "apollo"}}}]}))
    ram.api.call("AttachPolicyToGroup", group_name="apollo", policy_name="apollo-only", policy_type="Custom")
    c = RawClient(server, ak, sk)
    assert c.ok("DescribeKey", {"KeyId": tagged})["KeyMetadata"]["KeyId"] == tagged
    assert c.call("DescribeKey", {"KeyId": plain}).status == 403
    # Leaving the group takes its policies away at once.
    ram.api.call("RemoveUserFromGroup", group_name="apollo", user_name="cond-user")
    assert c.call("DescribeKey", {"KeyId": tagged}).status == 403
    # acs:SourceIp: the tests connect from 127.0.0.1.
    ram.set_policy("from-here", json.dumps({"Version": "1", "Statement": [{
        "Effect": "Allow", "Action": "kms:DescribeKey", "Resource": "*",
        "Condition": {"IpAddress": {"acs:SourceIp": "127.0.0.0/8"}, "Bool": {"acs:SecureTransport": "false"}}}]}),
        user="cond-user")
    assert c.ok("DescribeKey", {"KeyId": plain})
    ram.set_policy("from-here", json.dumps({"Version": "1", "Statement": [{
        "Effect": "Allow", "Action": "kms:DescribeKey", "Resource": "*",
        "Condition": {"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}}}]}), user="cond-user")
    assert c.call("DescribeKey", {"KeyId": plain}).status == 403
    # DescribeRegions needs no permission.
    assert c.ok("DescribeRegions")


def test_kms_sdks_as_a_ram_user(server, ram, root_raw):
    from kms_helpers import ClassicApi, TeaApi
    ak, sk = ram.user_with_key("sdk-user")
    k = new_key(root_raw)
    ram.set_policy("sdk-enc", policy(allow(["kms:Encrypt", "kms:Decrypt"], f"{ARN}:key/{k}")), user="sdk-user")
    for api in (ClassicApi(server, ak, sk), TeaApi(server, False, ak, sk), TeaApi(server, True, ak, sk)):
        blob = api.call("Encrypt", KeyId=k, Plaintext=DUMMY["Plaintext"])["CiphertextBlob"]
        assert api.call("Decrypt", CiphertextBlob=blob)["Plaintext"] == DUMMY["Plaintext"]
        with pytest.raises(KmsError) as e:
            api.call("DescribeKey", KeyId=k)
        assert (e.value.code, e.value.status) == ("Forbidden.NoPermission", 403)


def test_readme_least_privilege_example_runs_verbatim(own_server):
    """The README's worked example, run as written against a fresh server."""
    import os
    import re
    import subprocess
    import sys
    from kms_helpers import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"<!-- least-privilege-example -->\n```python\n(.*?)```", readme, re.S).group(1)
    env = {**os.environ, "KMS_ENDPOINT": f"http://127.0.0.1:{own_server.port}",
           "KMS_ACCESS_KEY_ID": own_server.ak, "KMS_ACCESS_KEY_SECRET": own_server.sk}
    out = subprocess.run([sys.executable, "-c", block], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["aGVsbG8=", "Forbidden.NoPermission", "Forbidden.NoPermission",
                                  "Forbidden.NoPermission"]


def test_delete_conflicts_of_group_membership_and_attachments(server):
    """DeleteUser/DeleteGroup refuse while the entity is still in a group or has a policy
    attached, with the conflict Alibaba names for that link, and change nothing."""
    api = Tea("ram", server, server.ak, server.sk)
    api.call("CreateUser", user_name="carol-dc")
    api.call("CreateGroup", group_name="ops-dc")
    api.call("AddUserToGroup", group_name="ops-dc", user_name="carol-dc")
    err(lambda: api.call("DeleteUser", user_name="carol-dc"), "DeleteConflict.User.Group", 409)
    api.call("RemoveUserFromGroup", group_name="ops-dc", user_name="carol-dc")
    api.call("AttachPolicyToUser", policy_type="System", policy_name="AliyunKMSReadOnlyAccess",
             user_name="carol-dc")
    err(lambda: api.call("DeleteUser", user_name="carol-dc"), "DeleteConflict.User.Policy", 409)
    assert api.call("GetUser", user_name="carol-dc")["User"]["UserName"] == "carol-dc"
    api.call("AttachPolicyToGroup", policy_type="System", policy_name="AliyunKMSReadOnlyAccess",
             group_name="ops-dc")
    err(lambda: api.call("DeleteGroup", group_name="ops-dc"), "DeleteConflict.Group.Policy", 409)
    api.call("DetachPolicyFromGroup", policy_type="System", policy_name="AliyunKMSReadOnlyAccess",
             group_name="ops-dc")
    api.call("DeleteGroup", group_name="ops-dc")
    api.call("DetachPolicyFromUser", policy_type="System", policy_name="AliyunKMSReadOnlyAccess",
             user_name="carol-dc")
    api.call("DeleteUser", user_name="carol-dc")
    err(lambda: api.call("GetUser", user_name="carol-dc"), "EntityNotExist.User", 404)
