"""Account isolation across every action that takes a key: another account's key id, key ARN
or alias answers 404 (Forbidden.KeyNotFound / Forbidden.AliasNotFound) and changes nothing."""
from __future__ import annotations

import pytest

from kms_helpers import ACCOUNT_ID, RawClient, b64

# action -> extra parameters (KeyId is added)
KEY_ACTIONS = {
    "DescribeKey": {}, "EnableKey": {}, "DisableKey": {}, "UpdateKeyDescription": {"Description": "x"},
    "ScheduleKeyDeletion": {"PendingWindowInDays": "7"}, "CancelKeyDeletion": {},
    "ListResourceTags": {}, "TagResource": {"Tags": '[{"TagKey":"k","TagValue":"v"}]'},
    "UntagResource": {"TagKeys": '["k"]'}, "Encrypt": {"Plaintext": b64(b"x")},
    "GenerateDataKey": {}, "GenerateDataKeyWithoutPlaintext": {}, "CreateKeyVersion": {},
    "ListKeyVersions": {}, "UpdateRotationPolicy": {"EnableAutomaticRotation": "false"},
    "ListAliasesByKeyId": {}, "GetParametersForImport": {"WrappingAlgorithm": "RSAES_OAEP_SHA_256",
                                                          "WrappingKeySpec": "RSA_2048"},
    "DeleteKeyMaterial": {}, "CreateAlias": {"AliasName": "alias/intruder"},
}


@pytest.fixture(scope="module")
def victim_and_intruder(server):
    owner = RawClient(server)
    ext = owner.ok("CreateKey", {"Origin": "EXTERNAL"})["KeyMetadata"]["KeyId"]
    key = owner.ok("CreateKey", {"Description": "victim"})["KeyMetadata"]["KeyId"]
    owner.ok("CreateAlias", {"AliasName": "alias/victim", "KeyId": key})
    blob = owner.ok("Encrypt", {"KeyId": key, "Plaintext": b64(b"secret")})["CiphertextBlob"]
    acct = server.new_account()
    intruder = RawClient(server, ak=acct["AccessKeyId"], sk=acct["AccessKeySecret"])
    return owner, intruder, key, ext, blob


@pytest.mark.parametrize("action", sorted(KEY_ACTIONS))
@pytest.mark.parametrize("form", ["id", "arn"])
def test_another_accounts_key_is_not_found(victim_and_intruder, action, form):
    owner, intruder, key, ext, _ = victim_and_intruder
    target = ext if action in ("GetParametersForImport", "DeleteKeyMaterial") else key
    ref = target if form == "id" else f"acs:kms:cn-hangzhou:{ACCOUNT_ID}:key/{target}"
    r = intruder.call(action, {"KeyId": ref, **KEY_ACTIONS[action]})
    assert (r.status, r.json["Code"]) == (404, "Forbidden.KeyNotFound"), (action, r)
    md = owner.ok("DescribeKey", {"KeyId": target})["KeyMetadata"]
    assert md["KeyState"] in ("Enabled", "PendingImport") and md["Description"] in ("victim", "")


def test_other_key_taking_parameters(victim_and_intruder):
    owner, intruder, key, _, blob = victim_and_intruder
    versions = owner.ok("ListKeyVersions", {"KeyId": key})["KeyVersions"]["KeyVersion"]
    r = intruder.call("DescribeKeyVersion", {"KeyId": key, "KeyVersionId": versions[0]["KeyVersionId"]})
    assert (r.status, r.json["Code"]) == (404, "Forbidden.KeyNotFound")
    r = intruder.call("Decrypt", {"CiphertextBlob": blob})
    assert (r.status, r.json["Code"]) == (404, "Forbidden.KeyNotFound")
    r = intruder.call("ReEncrypt", {"CiphertextBlob": blob, "DestinationKeyId": key})
    assert (r.status, r.json["Code"]) == (404, "Forbidden.KeyNotFound")
    mine = intruder.ok("CreateKey", {})["KeyMetadata"]["KeyId"]
    r = intruder.call("ReEncrypt", {"CiphertextBlob": blob, "DestinationKeyId": mine})
    assert (r.status, r.json["Code"]) == (404, "Forbidden.KeyNotFound")
    r = intruder.call("UpdateAlias", {"AliasName": "alias/victim", "KeyId": mine})
    assert (r.status, r.json["Code"]) == (404, "Forbidden.AliasNotFound")
    r = intruder.call("DeleteAlias", {"AliasName": "alias/victim"})
    assert (r.status, r.json["Code"]) == (404, "Forbidden.AliasNotFound")
    for ref in ("alias/victim", f"acs:kms:cn-hangzhou:{ACCOUNT_ID}:alias/victim"):
        r = intruder.call("Encrypt", {"KeyId": ref, "Plaintext": b64(b"x")})
        assert (r.status, r.json["Code"]) == (404, "Forbidden.AliasNotFound"), ref
    r = intruder.call("TagResources", {"RegionId": "cn-hangzhou", "ResourceType": "key", "ResourceId.1": key,
                                       "Tag.1.Key": "k", "Tag.1.Value": "v"})
    assert (r.status, r.json["Code"]) == (404, "Forbidden.KeyNotFound")
    r = intruder.call("ListTagResources", {"RegionId": "cn-hangzhou", "ResourceType": "key", "ResourceId.1": key})
    assert r.status == 200 and r.json["TagResources"]["TagResource"] == []
    assert intruder.ok("ListKeys", {})["TotalCount"] == 1
    assert intruder.ok("ListAliases", {})["TotalCount"] == 0
    # The owner's alias still points at the owner's key.
    assert owner.ok("DescribeKey", {"KeyId": "alias/victim"})["KeyMetadata"]["KeyId"] == key
