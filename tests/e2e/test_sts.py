"""STS (2015-04-01) on the KMS listener: AssumeRole with the real SDKs, KMS calls with the
temporary credentials (Tea `security_token`, classic `StsTokenCredential`), session
policies that narrow, expiry on the test clock, deleted roles, cross-account trust, and
`kms admin identities`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time

import pytest

from kms_helpers import ACCOUNT_ID, DATE_RE, REGION, KmsError, RawClient, kms_bin
from ram_helpers import Ram, Tea, allow, err, policy

ARN = f"acs:kms:{REGION}:{ACCOUNT_ID}"
PT = base64.b64encode(b"secret").decode()


def trust(*principals: str, **condition) -> str:
    st = {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"RAM": list(principals)}}
    if condition:
        st["Condition"] = condition
    return json.dumps({"Version": "1", "Statement": [st]})


@pytest.fixture(scope="module")
def setup(server):
    """A RAM user allowed to assume roles, a key, and a role allowed to use it."""
    ram = Ram(server)
    ak, sk = ram.user_with_key("assumer")
    ram.api.call("AttachPolicyToUser", user_name="assumer", policy_type="System",
                 policy_name="AliyunSTSAssumeRoleAccess")
    raw = RawClient(server)
    key = raw.ok("CreateKey")["KeyMetadata"]["KeyId"]
    ram.api.call("CreateRole", role_name="app", assume_role_policy_document=trust(f"acs:ram::{ACCOUNT_ID}:root"),
                 max_session_duration=7200)
    ram.set_policy("app-key", policy(allow("kms:*", f"{ARN}:key/{key}")), role="app")
    return {"ram": ram, "ak": ak, "sk": sk, "key": key, "raw": raw,
            "sts": Tea("sts", server, ak, sk)}


def assume(setup, role="app", **kw) -> dict:
    return setup["sts"].call("AssumeRole", role_arn=f"acs:ram::{ACCOUNT_ID}:role/{role}",
                             role_session_name="alice", **kw)


def test_assume_role_and_use_the_credentials(server, setup):
    r = assume(setup, duration_seconds=1800)
    c = r["Credentials"]
    assert c["AccessKeyId"].startswith("STS.") and c["AccessKeySecret"] and c["SecurityToken"]
    assert DATE_RE.match(c["Expiration"])
    assert r["AssumedRoleUser"]["Arn"] == f"acs:ram::{ACCOUNT_ID}:role/app/alice"
    assert r["AssumedRoleUser"]["AssumedRoleId"].endswith(":alice")
    key = setup["key"]
    # Tea, ACS3 (token in x-acs-security-token) and HMAC-SHA1 (SecurityToken parameter).
    for v2 in (False, True):
        kms = Tea("kms", server, c["AccessKeyId"], c["AccessKeySecret"], token=c["SecurityToken"], v2=v2)
        blob = kms.call("Encrypt", key_id=key, plaintext=PT)["CiphertextBlob"]
        assert kms.call("Decrypt", ciphertext_blob=blob)["Plaintext"] == PT
        err(lambda: kms.call("CreateKey"), "Forbidden.NoPermission", 403)
        who = Tea("sts", server, c["AccessKeyId"], c["AccessKeySecret"], token=c["SecurityToken"],
                  v2=v2).call("GetCallerIdentity")
        assert who["IdentityType"] == "AssumedRoleUser"
        assert who["Arn"] == f"acs:ram::{ACCOUNT_ID}:assumed-role/app/alice"
    # Classic SDK with StsTokenCredential.
    from aliyunsdkcore.auth.credentials import StsTokenCredential
    from aliyunsdkcore.client import AcsClient
    from aliyunsdkkms.request.v20160120.EncryptRequest import EncryptRequest
    cl = AcsClient(region_id=REGION, credential=StsTokenCredential(c["AccessKeyId"], c["AccessKeySecret"],
                                                                   c["SecurityToken"]), auto_retry=False)
    req = EncryptRequest()
    req.set_KeyId(key)
    req.set_Plaintext(PT)
    req.set_endpoint(f"http://127.0.0.1:{server.port}")
    assert json.loads(cl.do_action_with_exception(req))["KeyId"] == key
    # Without the token, or with another one: refused.
    bare = Tea("kms", server, c["AccessKeyId"], c["AccessKeySecret"])
    err(lambda: bare.call("Encrypt", key_id=key, plaintext=PT), "MissingSecurityToken", 400)
    wrong = Tea("kms", server, c["AccessKeyId"], c["AccessKeySecret"], token=c["SecurityToken"] + "x")
    err(lambda: wrong.call("Encrypt", key_id=key, plaintext=PT), "InvalidSecurityToken.MismatchWithAccessKey", 403)
    # A long-term key with a token is refused too.
    ak_tok = Tea("kms", server, setup["ak"], setup["sk"], token=c["SecurityToken"])
    err(lambda: ak_tok.call("DescribeRegions"), "InvalidSecurityToken.MismatchWithAccessKey", 403)


def test_assume_role_refusals(server, setup):
    err(lambda: setup["sts"].call("AssumeRole", role_arn="arn:nope", role_session_name="alice"),
        "InvalidParameter.RoleArn", 400)
    err(lambda: assume(setup, role="missing"), "EntityNotExist.Role", 404)
    err(lambda: setup["sts"].call("AssumeRole", role_arn=f"acs:ram::{ACCOUNT_ID}:role/app", role_session_name="a"),
        "InvalidParameter.RoleSessionName", 400)
    err(lambda: assume(setup, duration_seconds=899), "InvalidParameter.DurationSeconds", 400)
    err(lambda: assume(setup, duration_seconds=7201), "InvalidParameter.DurationSeconds", 400)
    err(lambda: assume(setup, policy='{"Version":"1"}'), "InvalidParameter.PolicyGrammar", 400)
    e = err(lambda: Tea("sts", server, server.ak, server.sk).call(
        "AssumeRole", role_arn=f"acs:ram::{ACCOUNT_ID}:role/app", role_session_name="root"), "NoPermission", 403)
    assert e.message == "Roles may not be assumed by root accounts."
    # A user without sts:AssumeRole, and a role whose trust policy names someone else.
    ram = setup["ram"]
    ak, sk = ram.user_with_key("no-assume")
    e = err(lambda: Tea("sts", server, ak, sk).call("AssumeRole", role_arn=f"acs:ram::{ACCOUNT_ID}:role/app",
                                                     role_session_name="x1"), "NoPermission", 403)
    assert e.message == "You are not authorized to do this action. You should be authorized by RAM."
    ram.api.call("CreateRole", role_name="only-bob",
                 assume_role_policy_document=trust(f"acs:ram::{ACCOUNT_ID}:user/bob"))
    err(lambda: assume(setup, role="only-bob"), "NoPermission", 403)
    ram.api.call("CreateRole", role_name="only-assumer",
                 assume_role_policy_document=trust(f"acs:ram::{ACCOUNT_ID}:user/assumer"))
    assert assume(setup, role="only-assumer")["Credentials"]["AccessKeyId"].startswith("STS.")


def test_session_policy_only_narrows(server, setup):
    key = setup["key"]
    narrow = policy(allow("kms:Encrypt", f"{ARN}:key/{key}"))
    c = assume(setup, policy=narrow)["Credentials"]
    kms = Tea("kms", server, c["AccessKeyId"], c["AccessKeySecret"], token=c["SecurityToken"])
    kms.call("Encrypt", key_id=key, plaintext=PT)
    err(lambda: kms.call("DescribeKey", key_id=key), "Forbidden.NoPermission", 403)
    # A session policy cannot grant what the role lacks.
    other = setup["raw"].ok("CreateKey")["KeyMetadata"]["KeyId"]
    wide = assume(setup, policy=policy(allow("kms:*", "*")))["Credentials"]
    kms = Tea("kms", server, wide["AccessKeyId"], wide["AccessKeySecret"], token=wide["SecurityToken"])
    kms.call("DescribeKey", key_id=key)
    err(lambda: kms.call("DescribeKey", key_id=other), "Forbidden.NoPermission", 403)


def test_cross_account_only_when_trusted(server, setup):
    b = server.new_account("2222222222222222")
    ram_b = Tea("ram", server, b["AccessKeyId"], b["AccessKeySecret"])
    ram_b.call("CreateRole", role_name="shared",
               assume_role_policy_document=trust(f"acs:ram::{ACCOUNT_ID}:root"))
    ram_b.call("CreateRole", role_name="private",
               assume_role_policy_document=trust("acs:ram::2222222222222222:root"))
    ram_b.call("AttachPolicyToRole", role_name="shared", policy_type="System", policy_name="AliyunKMSFullAccess")
    c = setup["sts"].call("AssumeRole", role_arn="acs:ram::2222222222222222:role/shared",
                          role_session_name="visitor")["Credentials"]
    kms_b = Tea("kms", server, c["AccessKeyId"], c["AccessKeySecret"], token=c["SecurityToken"])
    created = kms_b.call("CreateKey")["KeyMetadata"]
    assert created["Arn"].startswith(f"acs:kms:{REGION}:2222222222222222:key/")
    err(lambda: setup["sts"].call("AssumeRole", role_arn="acs:ram::2222222222222222:role/private",
                                  role_session_name="visitor"), "NoPermission", 403)


def test_deleted_role_ends_its_sessions(server, setup):
    ram = setup["ram"]
    ram.api.call("CreateRole", role_name="temp", assume_role_policy_document=trust(f"acs:ram::{ACCOUNT_ID}:root"))
    ram.api.call("AttachPolicyToRole", role_name="temp", policy_type="System", policy_name="AliyunKMSReadOnlyAccess")
    c = assume(setup, role="temp")["Credentials"]
    kms = Tea("kms", server, c["AccessKeyId"], c["AccessKeySecret"], token=c["SecurityToken"])
    kms.call("DescribeKey", key_id=setup["key"])
    # Detaching the role's policy takes effect at once; deleting the role ends the session.
    ram.api.call("DetachPolicyFromRole", role_name="temp", policy_type="System", policy_name="AliyunKMSReadOnlyAccess")
    err(lambda: kms.call("DescribeKey", key_id=setup["key"]), "Forbidden.NoPermission", 403)
    ram.api.call("DeleteRole", role_name="temp")
    err(lambda: kms.call("DescribeKey", key_id=setup["key"]), "InvalidAccessKeyId.NotFound", 404)


def test_admin_identities_and_audit_principal(server, setup):
    out = subprocess.run([str(kms_bin()), "admin", "identities", "--data-dir", str(server.data_dir),
                          *server.db_args()], capture_output=True, text=True, timeout=60,
                         env=server.admin_env())
    assert out.returncode == 0, out.stderr
    ids = json.loads(out.stdout)
    assumer = [u for u in ids["Users"] if u["Name"] == "assumer"][0]
    assert assumer["Policies"] == ["system:AliyunSTSAssumeRoleAccess"] and len(assumer["AccessKeys"]) == 1
    assert server.ak in ids["RootAccessKeys"]
    assert "app" in [r["Name"] for r in ids["Roles"]]
    # The audit trail names the principal of every call.
    lines = []
    for f in sorted((server.data_dir / "audit").iterdir()):
        lines += [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
    principals = {x.get("principal") for x in lines}
    assert f"acs:ram::{ACCOUNT_ID}:user/assumer" in principals
    assert f"acs:ram::{ACCOUNT_ID}:assumed-role/app/alice" in principals
    assert f"acs:ram::{ACCOUNT_ID}:root" in principals


def test_expired_session_is_refused(server, setup):
    c = assume(setup, duration_seconds=900)["Credentials"]
    kms = Tea("kms", server, c["AccessKeyId"], c["AccessKeySecret"], token=c["SecurityToken"])
    kms.call("Encrypt", key_id=setup["key"], plaintext=PT)
    server.advance_clock(901)
    err(lambda: kms.call("Encrypt", key_id=setup["key"], plaintext=PT), "InvalidSecurityToken.Expired", 403)


@pytest.mark.skipif(not os.environ.get("KMS_TEST_DATABASE_URL"),
                    reason="two nodes need PostgreSQL (KMS_TEST_DATABASE_URL)")
def test_policy_changes_on_one_node_apply_at_once_on_another(tmp_path):
    """Compiled policies are cached per node; a RAM change made through one node is heard by
    the others (PostgreSQL notification) before their next request."""
    from test_multinode import start_nodes

    a, b = start_nodes(tmp_path, 2)
    try:
        ram_a = Ram(a.srv)
        ak, sk = ram_a.user_with_key("roamer")
        key = a.call("CreateKey")["KeyMetadata"]["KeyId"]
        ram_a.set_policy("roam", policy(allow("kms:DescribeKey", f"{ARN}:key/{key}")), user="roamer")
        on_b = RawClient(b.srv, ak, sk)
        assert on_b.ok("DescribeKey", {"KeyId": key})  # compiled and cached on B
        ram_a.api.call("DetachPolicyFromUser", user_name="roamer", policy_name="roam", policy_type="Custom")
        deadline = time.time() + 2
        while on_b.call("DescribeKey", {"KeyId": key}).status == 200:
            assert time.time() < deadline, "node B kept the detached policy"
        r = on_b.call("DescribeKey", {"KeyId": key})
        assert (r.status, r.json["Code"]) == (403, "Forbidden.NoPermission")
    finally:
        a.srv.stop()
        b.srv.stop()


def test_external_id_is_checked_against_the_trust_policy(server, setup):
    """A role whose trust policy requires sts:ExternalId: assumed only with that ExternalId;
    a missing or different one is refused like an untrusted caller, a malformed one as a bad
    parameter ([inference] in alibaba-ram-sts.md: sts:ExternalId is the condition key)."""
    ram = setup["ram"]
    ram.api.call("CreateRole", role_name="partner",
                 assume_role_policy_document=trust(f"acs:ram::{ACCOUNT_ID}:root",
                                                   StringEquals={"sts:ExternalId": "partner-7f3a"}))
    err(lambda: assume(setup, role="partner"), "NoPermission", 403)
    err(lambda: assume(setup, role="partner", external_id="partner-7f3b"), "NoPermission", 403)
    err(lambda: assume(setup, role="partner", external_id="x"), "InvalidParameter", 400)
    err(lambda: assume(setup, role="partner", external_id="bad id!"), "InvalidParameter", 400)
    c = assume(setup, role="partner", external_id="partner-7f3a")["Credentials"]
    assert c["AccessKeyId"].startswith("STS.")
