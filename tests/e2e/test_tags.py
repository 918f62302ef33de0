"""Tags (reference §3.17): TagResource / UntagResource / ListResourceTags, CreateKey Tags, and the batch API
TagResources / UntagResources / ListTagResources with its NextToken paging.

Server decisions under test (lead's spec):
  * tag key 1-128 chars, value <= 128 chars, letters digits space and / \\ _ - . + = : @ only;
    key must not start with "aliyun" or "acs:"                                   -> 400 InvalidParameter
  * more than 20 tags on one key                                                  -> 400 Rejected.LimitExceeded
  * TagResource / UntagResource on a PendingDeletion key                          -> 409 Rejected.PendingDeletion
  * SecretName / CertificateId instead of KeyId                                   -> 400 InvalidParameter
  * ListTagResources: rows sorted by ResourceId then TagKey, 200 rows a page, NextToken "" on the last page
"""
from __future__ import annotations

import json
import uuid

import pytest

from kms_helpers import REGION, KmsError, TeaApi, b64, expect_error, make_api

DAY = 86400


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
def new_key(api, **params) -> dict:
    return api.call("CreateKey", **params)["KeyMetadata"]


def tags_json(pairs) -> str:
    return json.dumps([{"TagKey": k, "TagValue": v} for k, v in pairs], ensure_ascii=False)


def tag(api, key_id, pairs):
    return api.call("TagResource", KeyId=key_id, Tags=tags_json(pairs))


def listed(api, key_id) -> list:
    r = api.call("ListResourceTags", KeyId=key_id)
    assert isinstance(r["Tags"], dict), f"Tags must be an object wrapping Tag[]: {r}"
    return r["Tags"]["Tag"]


def pairs_of(api, key_id) -> list:
    return [(t["TagKey"], t["TagValue"]) for t in listed(api, key_id)]


def fresh_api(server, flavour: str):
    acct = server.new_account()
    return make_api(flavour, server, acct["AccessKeyId"], acct["AccessKeySecret"])


def multi(api, resource_ids=None, tags=None, tag_keys=None) -> dict:
    """ResourceId.N / Tag.N.Key / Tag.N.Value / TagKey.N the way each SDK sends them.

    classic: flat query names (ClassicApi json-dumps lists, so the RepeatList setters cannot be used);
    Tea: the request model's lists, which Tea flattens to the same names on the wire."""
    p = {"RegionId": REGION}
    if api.flavour == "classic":
        for i, r in enumerate(resource_ids or [], 1):
            p[f"ResourceId.{i}"] = r
        for i, (k, v) in enumerate(tags or [], 1):
            p[f"Tag.{i}.Key"] = k
            if v is not None:
                p[f"Tag.{i}.Value"] = v
        for i, k in enumerate(tag_keys or [], 1):
            p[f"TagKey.{i}"] = k
    else:
        if resource_ids is not None:
            p["ResourceId"] = list(resource_ids)
        if tags is not None:
            p["Tag"] = [{"Key": k, "Value": v} if v is not None else {"Key": k} for k, v in tags]
        if tag_keys is not None:
            p["TagKey"] = list(tag_keys)
    return p


def row(resource_id, key, value) -> dict:
    return {"ResourceId": resource_id, "ResourceType": "key", "TagKey": key, "TagValue": value}


def list_tag_resources(api, resource_ids=None, tags=None, next_token=None) -> tuple[list, str]:
    params = dict(multi(api, resource_ids=resource_ids, tags=tags), ResourceType="key")
    if next_token is not None:
        params["NextToken"] = next_token
    r = api.call("ListTagResources", **params)
    assert isinstance(r["TagResources"], dict), f"TagResources must wrap TagResource[]: {r}"
    assert isinstance(r["NextToken"], str), r
    return r["TagResources"]["TagResource"], r["NextToken"]


def list_all_tag_resources(api, **kw) -> list:
    out, token, pages = [], None, 0
    while True:
        rows, token = list_tag_resources(api, next_token=token, **kw)
        out += rows
        pages += 1
        assert pages < 50, "NextToken never became empty"
        if token == "":
            return out


# ------------------------------------------------------------------------------------------
# TagResource / ListResourceTags / UntagResource
# ------------------------------------------------------------------------------------------
def test_tag_resource_upsert_and_list(api):
    md = new_key(api)
    key_id = md["KeyId"]
    assert listed(api, key_id) == []
    resp = tag(api, key_id, [("team", "blue"), ("env", "prod")])
    assert isinstance(resp["RequestId"], str) and resp["RequestId"]
    if api.flavour == "classic":
        assert set(resp) == {"RequestId"}, resp
    assert listed(api, key_id) == [{"KeyId": key_id, "TagKey": "env", "TagValue": "prod"},
                                   {"KeyId": key_id, "TagKey": "team", "TagValue": "blue"}]
    # upsert: existing key gets the new value, new key is added
    tag(api, key_id, [("env", "staging"), ("cost", "42")])
    assert pairs_of(api, key_id) == [("cost", "42"), ("env", "staging"), ("team", "blue")]
    # by key ARN
    tag(api, md["Arn"], [("arn", "yes")])
    assert pairs_of(api, md["Arn"]) == [("arn", "yes"), ("cost", "42"), ("env", "staging"), ("team", "blue")]
    # tags are per key
    assert listed(api, new_key(api)["KeyId"]) == []


@pytest.mark.parametrize("form", ["json", "comma"])
def test_untag_resource(api, form):
    key_id = new_key(api)["KeyId"]
    tag(api, key_id, [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")])
    keys = '["a","c"]' if form == "json" else "a,c"
    resp = api.call("UntagResource", KeyId=key_id, TagKeys=keys)
    assert isinstance(resp["RequestId"], str) and resp["RequestId"]
    assert pairs_of(api, key_id) == [("b", "2"), ("d", "4")]
    api.call("UntagResource", KeyId=key_id, TagKeys='["d"]' if form == "json" else "d")
    assert pairs_of(api, key_id) == [("b", "2")]


def test_untag_json_array_with_spaces_and_commas(capi):
    key_id = new_key(capi)["KeyId"]
    tag(capi, key_id, [("x y", "1"), ("z", "2"), ("w", "3")])
    capi.call("UntagResource", KeyId=key_id, TagKeys=json.dumps(["x y", "z"]))  # '["x y", "z"]' (classic style)
    assert pairs_of(capi, key_id) == [("w", "3")]


@pytest.mark.parametrize("key,value", [
    ("k" * 128, "v" * 128),
    ("a/\\_-.+=:@ z", "A/\\_-.+=:@ 9"),
    ("acs", "no colon"),
    ("acsx:y", "v"),
    ("x-aliyun", "v"),
    ("aliyu", "v"),
    ("k", ""),
    ("0", "0"),
], ids=["max-len", "all-specials", "acs", "acsx", "x-aliyun", "aliyu", "empty-value", "digits"])
def test_valid_tags(api, key, value):
    key_id = new_key(api)["KeyId"]
    tag(api, key_id, [(key, value)])
    assert pairs_of(api, key_id) == [(key, value)]
    api.call("UntagResource", KeyId=key_id, TagKeys=json.dumps([key]))
    assert listed(api, key_id) == []


@pytest.mark.parametrize("key,value", [
    ("", "v"),
    ("k" * 129, "v"),
    ("k", "v" * 129),
    ("hash#", "v"),
    ("k", "bang!"),
    ("euro€", "v"),
    ("k", "smile😀"),
    ("semi;", "v"),
    ("k", "a,b"),
    ("tab\t", "v"),
    ("k", "new\nline"),
    ("aliyun", "v"),
    ("aliyunkey", "v"),
    ("aliyun:x", "v"),
    ("acs:", "v"),
    ("acs:x", "v"),
], ids=["empty-key", "key-129", "value-129", "hash", "bang", "euro-key", "emoji-value", "semicolon",
        "comma-value", "tab", "newline", "aliyun", "aliyunkey", "aliyun-colon", "acs-colon", "acs-colon-x"])
def test_invalid_tags(api, key, value):
    key_id = new_key(api)["KeyId"]
    tag(api, key_id, [("keep", "me")])
    expect_error(lambda: tag(api, key_id, [(key, value)]), "InvalidParameter", 400)
    # atomic: a valid tag in the same request is not stored either
    expect_error(lambda: tag(api, key_id, [("fine", "1"), (key, value)]), "InvalidParameter", 400)
    assert pairs_of(api, key_id) == [("keep", "me")]


@pytest.mark.parametrize("tags", [
    "not json",
    '{"TagKey":"k","TagValue":"v"}',
    '[{"TagKey":1,"TagValue":"v"}]',
    '[{"TagValue":"v"}]',
    '["k"]',
], ids=["garbage", "object", "number-key", "no-key", "string-items"])
def test_malformed_tags_param(api, tags):
    key_id = new_key(api)["KeyId"]
    expect_error(lambda: api.call("TagResource", KeyId=key_id, Tags=tags), "InvalidParameter", 400)
    assert listed(api, key_id) == []


def test_tag_limit_20(api):
    key_id = new_key(api)["KeyId"]
    twenty = [(f"t{i:02d}", str(i)) for i in range(20)]
    tag(api, key_id, twenty[:15])
    expect_error(lambda: tag(api, key_id, [(f"n{i}", "x") for i in range(6)]), "Rejected.LimitExceeded", 400)
    assert len(listed(api, key_id)) == 15  # nothing of the rejected request was stored
    tag(api, key_id, twenty[15:])
    assert pairs_of(api, key_id) == twenty
    expect_error(lambda: tag(api, key_id, [("t20", "x")]), "Rejected.LimitExceeded", 400)
    # updating an existing tag is not a new tag
    tag(api, key_id, [("t00", "updated")])
    assert listed(api, key_id)[0]["TagValue"] == "updated"
    api.call("UntagResource", KeyId=key_id, TagKeys='["t19"]')
    tag(api, key_id, [("t20", "x")])
    assert len(listed(api, key_id)) == 20
    # a single request with 21 new tags on an empty key
    other = new_key(api)["KeyId"]
    expect_error(lambda: tag(api, other, [(f"k{i}", "v") for i in range(21)]), "Rejected.LimitExceeded", 400)
    assert listed(api, other) == []


def test_tag_key_states(api):
    disabled = new_key(api)["KeyId"]
    api.call("DisableKey", KeyId=disabled)
    importing = new_key(api, Origin="EXTERNAL")["KeyId"]
    for k in (disabled, importing):
        tag(api, k, [("s", "ok")])
        api.call("UntagResource", KeyId=k, TagKeys='["s"]')
        tag(api, k, [("s", "ok")])
        assert pairs_of(api, k) == [("s", "ok")]
    doomed = new_key(api)["KeyId"]
    tag(api, doomed, [("before", "1")])
    api.call("ScheduleKeyDeletion", KeyId=doomed, PendingWindowInDays=7)
    expect_error(lambda: tag(api, doomed, [("after", "2")]), "Rejected.PendingDeletion", 409)
    expect_error(lambda: api.call("UntagResource", KeyId=doomed, TagKeys='["before"]'), "Rejected.PendingDeletion", 409)
    assert pairs_of(api, doomed) == [("before", "1")]  # ListResourceTags works in every state
    api.call("CancelKeyDeletion", KeyId=doomed)
    tag(api, doomed, [("after", "2")])


# Secrets are taggable since issue 18 (an unknown secret is not found; see test_secrets.py);
# certificates do not exist here.
@pytest.mark.parametrize("field,code,status", [("SecretName", "Forbidden.ResourceNotFound", 404),
                                               ("CertificateId", "InvalidParameter", 400)])
def test_tag_non_key_resources(api, field, code, status):
    expect_error(lambda: api.call("TagResource", **{field: "some-resource"}, Tags=tags_json([("k", "v")])),
                 code, status)
    expect_error(lambda: api.call("UntagResource", **{field: "some-resource"}, TagKeys='["k"]'),
                 code, status)


def test_tag_unknown_key(api):
    ghost = str(uuid.uuid4())
    expect_error(lambda: tag(api, ghost, [("k", "v")]), "Forbidden.KeyNotFound", 404)
    expect_error(lambda: api.call("UntagResource", KeyId=ghost, TagKeys='["k"]'), "Forbidden.KeyNotFound", 404)
    expect_error(lambda: api.call("ListResourceTags", KeyId=ghost), "Forbidden.KeyNotFound", 404)


def test_tags_missing_parameters(capi):
    key_id = new_key(capi)["KeyId"]
    expect_error(lambda: capi.call("TagResource", KeyId=key_id), "MissingParameter", 400)
    expect_error(lambda: capi.call("UntagResource", KeyId=key_id), "MissingParameter", 400)
    expect_error(lambda: capi.call("ListResourceTags"), "MissingParameter", 400)


def test_tags_are_per_account(api, server):
    key_id = new_key(api)["KeyId"]
    tag(api, key_id, [("mine", "1")])
    other = fresh_api(server, api.flavour)
    expect_error(lambda: other.call("ListResourceTags", KeyId=key_id), "Forbidden.KeyNotFound", 404)
    expect_error(lambda: tag(other, key_id, [("theirs", "1")]), "Forbidden.KeyNotFound", 404)
    rows, token = list_tag_resources(other)
    assert (rows, token) == ([], "")


# ------------------------------------------------------------------------------------------
# CreateKey Tags
# ------------------------------------------------------------------------------------------
def test_create_key_with_tags(api):
    md = new_key(api, Tags=tags_json([("owner", "me"), ("app", "kms-e2e")]))
    assert pairs_of(api, md["KeyId"]) == [("app", "kms-e2e"), ("owner", "me")]
    tag(api, md["KeyId"], [("owner", "you")])
    assert pairs_of(api, md["KeyId"]) == [("app", "kms-e2e"), ("owner", "you")]


def test_create_key_tags_count_toward_limit(capi):
    md = new_key(capi, Tags=tags_json([(f"c{i:02d}", "v") for i in range(20)]))
    assert len(listed(capi, md["KeyId"])) == 20
    expect_error(lambda: tag(capi, md["KeyId"], [("one-more", "v")]), "Rejected.LimitExceeded", 400)


@pytest.mark.parametrize("tags", [tags_json([("aliyun-x", "v")]), tags_json([("k" * 129, "v")]), "not json"],
                         ids=["reserved-prefix", "too-long", "garbage"])
def test_create_key_invalid_tags(api, server, tags):
    a = fresh_api(server, api.flavour)
    expect_error(lambda: a.call("CreateKey", Tags=tags), "InvalidParameter", 400)
    assert a.call("ListKeys")["TotalCount"] == 0


# ------------------------------------------------------------------------------------------
# TagResources / ListTagResources / UntagResources
# ------------------------------------------------------------------------------------------
def test_tag_resources_roundtrip(api, server):
    a = fresh_api(server, api.flavour)
    k1, k2, k3, bare = sorted(new_key(a)["KeyId"] for _ in range(4))
    resp = a.call("TagResources", ResourceType="key",
                  **multi(a, resource_ids=[k2, k1], tags=[("team", "a"), ("env", "prod")]))
    assert isinstance(resp["RequestId"], str) and resp["RequestId"]
    a.call("TagResources", ResourceType="key", **multi(a, resource_ids=[k3], tags=[("solo", "x")]))
    # visible through the single-key API too
    assert pairs_of(a, k1) == [("env", "prod"), ("team", "a")]

    everything = [row(k1, "env", "prod"), row(k1, "team", "a"), row(k2, "env", "prod"), row(k2, "team", "a"),
                  row(k3, "solo", "x")]
    assert list_tag_resources(a) == (everything, "")
    # ResourceId filter (a key without tags yields no rows)
    assert list_tag_resources(a, resource_ids=[k2, bare]) == ([row(k2, "env", "prod"), row(k2, "team", "a")], "")
    # Tag filters
    assert list_tag_resources(a, tags=[("solo", "x")]) == ([row(k3, "solo", "x")], "")
    assert list_tag_resources(a, tags=[("solo", None)]) == ([row(k3, "solo", "x")], "")
    assert list_tag_resources(a, tags=[("env", "dev")]) == ([], "")
    assert list_tag_resources(a, tags=[("nope", None)]) == ([], "")
    assert list_tag_resources(a, resource_ids=[k1], tags=[("solo", "x")]) == ([], "")

    # upsert through TagResources
    a.call("TagResources", ResourceType="key", **multi(a, resource_ids=[k1], tags=[("env", "staging")]))
    assert pairs_of(a, k1) == [("env", "staging"), ("team", "a")]
    assert pairs_of(a, k2) == [("env", "prod"), ("team", "a")]

    # UntagResources by key
    resp = a.call("UntagResources", ResourceType="key", **multi(a, resource_ids=[k1, k2], tag_keys=["team"]))
    assert isinstance(resp["RequestId"], str) and resp["RequestId"]
    assert list_tag_resources(a, resource_ids=[k1, k2]) == ([row(k1, "env", "staging"), row(k2, "env", "prod")], "")
    # UntagResources All=true
    a.call("UntagResources", ResourceType="key", All=True, **multi(a, resource_ids=[k2, k3]))
    assert listed(a, k2) == [] and listed(a, k3) == []
    assert list_tag_resources(a) == ([row(k1, "env", "staging")], "")


def test_tag_resources_errors(api, server):
    a = fresh_api(server, api.flavour)
    k = new_key(a)["KeyId"]
    for rtype in ("certificate", "instance", "alias"):  # secrets: test_secrets.py (issue 18)
        expect_error(lambda: a.call("TagResources", ResourceType=rtype, **multi(a, resource_ids=[k], tags=[("a", "b")])),
                     "InvalidParameter", 400)
        expect_error(lambda: a.call("UntagResources", ResourceType=rtype, **multi(a, resource_ids=[k], tag_keys=["a"])),
                     "InvalidParameter", 400)
        expect_error(lambda: a.call("ListTagResources", ResourceType=rtype, **multi(a)), "InvalidParameter", 400)
    for bad in (("aliyun-x", "v"), ("acs:x", "v"), ("k" * 129, "v"), ("k", "v" * 129), ("bad#", "v")):
        expect_error(lambda: a.call("TagResources", ResourceType="key", **multi(a, resource_ids=[k], tags=[bad])),
                     "InvalidParameter", 400)
    expect_error(lambda: a.call("TagResources", ResourceType="key",
                                **multi(a, resource_ids=[str(uuid.uuid4())], tags=[("a", "b")])),
                 "Forbidden.KeyNotFound", 404)
    for token in ("garbage", "%%%", "!!not-a-token!!"):
        expect_error(lambda: list_tag_resources(a, next_token=token), "InvalidParameter", 400)
    assert listed(a, k) == []


def test_tag_resources_request_limits(api, server):
    """At most 50 ResourceId.N and 20 Tag.N / TagKey.N in one request (server choice: 400 InvalidParameter)."""
    a = fresh_api(server, api.flavour)
    k = new_key(a)["KeyId"]
    expect_error(lambda: a.call("TagResources", ResourceType="key",
                                **multi(a, resource_ids=[k] * 51, tags=[("a", "b")])), "InvalidParameter", 400)
    expect_error(lambda: a.call("TagResources", ResourceType="key",
                                **multi(a, resource_ids=[k], tags=[(f"t{i}", "v") for i in range(21)])),
                 "InvalidParameter", 400)
    assert listed(a, k) == []
    expect_error(lambda: a.call("UntagResources", ResourceType="key",
                                **multi(a, resource_ids=[k], tag_keys=[f"t{i}" for i in range(21)])),
                 "InvalidParameter", 400)
    expect_error(lambda: a.call("TagResources", ResourceType="key", **multi(a, resource_ids=[k])),
                 "MissingParameter", 400)
    expect_error(lambda: a.call("TagResources", ResourceType="key", **multi(a, tags=[("a", "b")])),
                 "MissingParameter", 400)


def test_tag_resources_limit_and_state(api, server):
    a = fresh_api(server, api.flavour)
    k1, k2 = new_key(a)["KeyId"], new_key(a)["KeyId"]
    a.call("TagResources", ResourceType="key", **multi(a, resource_ids=[k1], tags=[(f"t{i}", "v") for i in range(15)]))
    expect_error(lambda: a.call("TagResources", ResourceType="key",
                                **multi(a, resource_ids=[k1], tags=[(f"n{i}", "v") for i in range(6)])),
                 "Rejected.LimitExceeded", 400)
    assert len(listed(a, k1)) == 15
    a.call("ScheduleKeyDeletion", KeyId=k2, PendingWindowInDays=7)
    expect_error(lambda: a.call("TagResources", ResourceType="key", **multi(a, resource_ids=[k2], tags=[("a", "b")])),
                 "Rejected.PendingDeletion", 409)


def test_list_tag_resources_empty(api, server):
    a = fresh_api(server, api.flavour)
    assert list_tag_resources(a) == ([], "")
    k = new_key(a)["KeyId"]  # an untagged key
    assert list_tag_resources(a) == ([], "")
    assert list_tag_resources(a, resource_ids=[k]) == ([], "")


def test_list_tag_resources_paging(api, server):
    a = fresh_api(server, api.flavour)
    keys = sorted(new_key(a)["KeyId"] for _ in range(11))
    tags = [(f"t{i:02d}", f"value-{i}") for i in range(20)]
    a.call("TagResources", ResourceType="key", **multi(a, resource_ids=keys, tags=tags))
    expected = [row(k, t, v) for k in keys for t, v in tags]  # 220 rows, sorted by ResourceId then TagKey

    page1, token = list_tag_resources(a)
    assert len(page1) == 200
    assert token != ""
    assert page1 == expected[:200]
    page2, token2 = list_tag_resources(a, next_token=token)
    assert page2 == expected[200:]
    assert token2 == ""
    # the same token can be used again (stateless paging)
    assert list_tag_resources(a, next_token=token) == (expected[200:], "")

    # filters and paging combined: 10 keys x 20 tags = exactly 200 rows -> one full page, then an empty one
    # or a single page with an empty token; either way nothing is lost or repeated
    assert list_all_tag_resources(a, resource_ids=keys[:10]) == expected[:200]
    assert list_all_tag_resources(a, resource_ids=keys[5:]) == expected[100:]
    assert list_all_tag_resources(a, tags=[("t07", "value-7")]) == [row(k, "t07", "value-7") for k in keys]


def test_deleted_key_tags_disappear(own_server):
    api = make_api("classic", own_server)
    doomed, survivor = new_key(api)["KeyId"], new_key(api)["KeyId"]
    api.call("TagResources", ResourceType="key", **multi(api, resource_ids=[doomed, survivor], tags=[("a", "1")]))
    api.call("ScheduleKeyDeletion", KeyId=doomed, PendingWindowInDays=7)
    assert len(list_tag_resources(api)[0]) == 2
    own_server.advance_clock(7 * DAY + 5)
    assert list_tag_resources(api) == ([row(survivor, "a", "1")], "")
    own_server.restart()
    assert pairs_of(api, survivor) == [("a", "1")]


# ------------------------------------------------------------------------------------------
# Tea models, field by field
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("v2", [False, True], ids=["tea_v3", "tea_v2"])
def test_tea_tag_models(server, v2):
    acct = server.new_account()
    t = TeaApi(server, v2, acct["AccessKeyId"], acct["AccessKeySecret"])
    key_id = t.call("CreateKey", Tags=tags_json([("b", "2"), ("a", "1")]))["KeyMetadata"]["KeyId"]
    tags = t.raw_call("ListResourceTags", KeyId=key_id).body.tags.tag
    assert [(x.key_id, x.tag_key, x.tag_value) for x in tags] == [(key_id, "a", "1"), (key_id, "b", "2")]
    body = t.raw_call("ListTagResources", RegionId=REGION, ResourceType="key", ResourceId=[key_id],
                      Tag=[{"Key": "b", "Value": "2"}]).body
    assert body.next_token == ""
    assert [(x.resource_id, x.resource_type, x.tag_key, x.tag_value) for x in body.tag_resources.tag_resource] == \
        [(key_id, "key", "b", "2")]
    assert isinstance(body.request_id, str) and body.request_id
