"""Wire-level behaviour: envelopes, content types, authentication and request-shape errors.

Mostly hand-signed requests (RawClient) because the SDKs never send malformed input.
"""
import datetime as dt
import hashlib
import http.client
import json
import uuid
import xml.etree.ElementTree as ET

import pytest

from kms_helpers import (API_VERSION, JSON_CT, REGION, RawClient, arn_of, assert_error_shape, b64,
                         expect_error, fmt_date, percent_encode, raw_exchange, sign_v1, sign_v3,
                         string_to_sign_v1, utcnow)


def norm_ct(ct: str) -> str:
    return ct.replace(" ", "").lower()


def create_key(raw: RawClient) -> str:
    return raw.ok("CreateKey")["KeyMetadata"]["KeyId"]


# ------------------------------------------------------------------------------------------
# health and envelopes
# ------------------------------------------------------------------------------------------
def test_healthz_needs_no_auth(raw):
    conn = http.client.HTTPConnection("127.0.0.1", raw.server.port, timeout=5)
    conn.request("GET", "/healthz")
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200


def test_success_envelope(raw):
    r1 = raw.call("DescribeRegions")
    r2 = raw.call("DescribeRegions")
    assert r1.status == 200, r1
    assert norm_ct(r1.content_type) == JSON_CT
    body = r1.json
    assert isinstance(body["RequestId"], str) and body["RequestId"]
    assert body["RequestId"] != r2.json["RequestId"], "RequestId must be unique per response"
    assert body["Regions"] == {"Region": [{"RegionId": REGION}]}


def test_error_envelope(raw):
    r = raw.call("DescribeKey", {"KeyId": str(uuid.uuid4())})
    assert r.status == 404, r
    assert norm_ct(r.content_type) == JSON_CT
    assert_error_shape(r.json, "Forbidden.KeyNotFound")


def test_unknown_action(raw):
    r = raw.call("NoSuchAction", {"KeyId": "x"})
    assert r.status == 404, r
    assert norm_ct(r.content_type) == JSON_CT
    assert_error_shape(r.json, "InvalidApi.NotFound")


@pytest.mark.parametrize("action,params,missing", [
    ("DescribeKey", {}, "KeyId"),
    ("Encrypt", {"KeyId": "PLACEHOLDER"}, "Plaintext"),
    ("Decrypt", {}, "CiphertextBlob"),
    ("ScheduleKeyDeletion", {"KeyId": "PLACEHOLDER"}, "PendingWindowInDays"),
    ("GetParametersForImport", {"KeyId": "PLACEHOLDER", "WrappingAlgorithm": "RSAES_OAEP_SHA_256"},
     "WrappingKeySpec"),
])
def test_missing_parameter(raw, action, params, missing):
    key_id = create_key(raw)
    params = {k: (key_id if v == "PLACEHOLDER" else v) for k, v in params.items()}
    r = raw.call(action, params)
    assert r.status == 400, r
    assert_error_shape(r.json, "MissingParameter")
    assert missing in r.json["Message"], r.json


def test_missing_parameter_classic(capi):
    expect_error(lambda: capi.call("DescribeKey"), "MissingParameter", 400)


# ------------------------------------------------------------------------------------------
# authentication
# ------------------------------------------------------------------------------------------
def test_wrong_signature_reports_string_to_sign(raw):
    r = raw.call("DescribeRegions", signature="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    assert r.status == 400, r
    body = r.json
    assert_error_shape(body, "SignatureDoesNotMatch")
    marker = "server string to sign is:"
    assert marker in body["Message"], body["Message"]
    server_sts = body["Message"].split(marker, 1)[1].strip()
    assert server_sts == string_to_sign_v1("POST", r.sent_params), \
        "the server's string-to-sign differs from the reference algorithm"


def test_wrong_secret_raw(raw):
    r = raw.call("DescribeRegions", sk="not-the-secret")
    assert r.status == 400, r
    assert_error_shape(r.json, "SignatureDoesNotMatch")


def test_signature_over_special_characters(raw):
    """Description with space, *, ~, +, /, =, non-ASCII must survive signing and round-trip."""
    desc = "hello world *~+/= é 中文 & %20"
    md = raw.ok("CreateKey", {"Description": desc})["KeyMetadata"]
    assert md["Description"] == desc
    assert raw.ok("DescribeKey", {"KeyId": md["KeyId"]})["KeyMetadata"]["Description"] == desc


def test_wrong_secret_classic(server, classic):
    api = classic(server, sk="definitely-wrong")
    try:
        api.call("DescribeRegions")
    except Exception as e:  # KmsError
        assert getattr(e, "code", None) in ("InvalidAccessKeySecret", "SignatureDoesNotMatch"), e
        assert e.status == 400
    else:
        raise AssertionError("call with a wrong secret succeeded")


@pytest.mark.parametrize("v2", [False, True], ids=["tea_v3", "tea_v2"])
def test_wrong_secret_tea(server, tea, v2):
    api = tea(server, v2=v2, sk="definitely-wrong")
    expect_error(lambda: api.call("DescribeRegions"), "SignatureDoesNotMatch", 400)


def test_unknown_access_key(raw):
    r = raw.call("DescribeRegions", ak="LTAInosuchkey0000000000", sk="whatever")
    assert r.status == 404, r
    assert_error_shape(r.json, "InvalidAccessKeyId.NotFound")


def test_unknown_access_key_tea(server, tea):
    api = tea(server, ak="LTAInosuchkey0000000001", sk="whatever")
    expect_error(lambda: api.call("DescribeRegions"), "InvalidAccessKeyId.NotFound", 404)


def test_nonce_replay(raw):
    first = raw.call("DescribeRegions")
    assert first.status == 200, first
    again = raw.call(None, signed_params=first.sent_params)
    assert again.status == 400, again
    assert_error_shape(again.json, "SignatureNonceUsed")


def test_nonce_reuse_with_other_params(raw):
    nonce = uuid.uuid4().hex
    assert raw.call("DescribeRegions", nonce=nonce).status == 200
    r = raw.call("ListKeys", nonce=nonce)
    assert r.status == 400, r
    assert_error_shape(r.json, "SignatureNonceUsed")


def test_stale_timestamp(raw):
    old = fmt_date(utcnow() - dt.timedelta(minutes=20))
    r = raw.call("DescribeRegions", timestamp=old)
    assert r.status == 400, r
    assert_error_shape(r.json, "InvalidTimeStamp.Expired")


def test_future_timestamp(raw):
    """Reference §3.19: Timestamp more than 15 min away from server time, either direction."""
    r = raw.call("DescribeRegions", timestamp=fmt_date(utcnow() + dt.timedelta(minutes=20)))
    assert r.status == 400, r
    assert_error_shape(r.json, "InvalidTimeStamp.Expired")


@pytest.mark.parametrize("ts", ["2026-11-29 05:00:00", "yesterday", "2026-11-29T05:00:00+08:00x"])
def test_malformed_timestamp(raw, ts):
    r = raw.call("DescribeRegions", timestamp=ts)
    assert r.status == 400, r
    assert_error_shape(r.json, "InvalidTimeStamp.Format")


@pytest.mark.parametrize("param", ["Signature", "Timestamp", "SignatureNonce", "AccessKeyId"])
def test_missing_common_parameter(raw, param):
    r = raw.call("DescribeRegions", drop=[param])
    assert r.status == 400, r
    assert_error_shape(r.json, "MissingParameter")
    assert param in r.json["Message"], r.json


def test_unsupported_format(raw):
    r = raw.call("DescribeRegions", fmt="YAML")
    assert r.status == 400, r
    assert_error_shape(r.json, "InvalidParameter.Format")


def test_unsupported_http_method(raw):
    r = raw.call("DescribeRegions", method="PUT")
    assert r.status == 403, r
    assert_error_shape(r.json, "UnsupportedHTTPMethod")


def test_timestamp_within_window_ok(raw):
    ts = fmt_date(utcnow() - dt.timedelta(minutes=5))
    assert raw.call("DescribeRegions", timestamp=ts).status == 200


def test_v3_handmade_request(raw):
    """Hand-made ACS3-HMAC-SHA256 request (our signer, not the SDK's): works; tampered one is rejected."""
    good = raw.call_v3("DescribeRegions")
    assert good.status == 200, good
    assert good.json["Regions"]["Region"] == [{"RegionId": REGION}]
    bad = raw.call_v3("DescribeRegions", tamper_signature=True)
    assert bad.status == 400, bad
    assert_error_shape(bad.json, "SignatureDoesNotMatch")
    wrong_secret = raw.call_v3("DescribeRegions", sk="nope")
    assert wrong_secret.status == 400, wrong_secret
    assert_error_shape(wrong_secret.json, "SignatureDoesNotMatch")


def test_v3_form_body(raw):
    key_id = create_key(raw)
    r = raw.call_v3("Encrypt", query={"KeyId": key_id}, form={"Plaintext": b64(b"v3 body"),
                                                              "EncryptionContext": '{"a":"b c"}'})
    assert r.status == 200, r
    blob = r.json["CiphertextBlob"]
    d = raw.call_v3("Decrypt", form={"CiphertextBlob": blob, "EncryptionContext": '{"a":"b c"}'})
    assert d.status == 200, d
    assert d.json["Plaintext"] == b64(b"v3 body")


def test_v3_body_hash_mismatch(raw):
    key_id = create_key(raw)
    r = raw.call_v3("DescribeKey", form={"KeyId": key_id}, content_sha256=hashlib.sha256(b"other").hexdigest())
    assert r.status == 400, r
    assert_error_shape(r.json, "SignatureDoesNotMatch")


def test_v3_stale_date(raw):
    r = raw.call_v3("DescribeRegions", date=fmt_date(utcnow() - dt.timedelta(minutes=20)))
    assert r.status == 400, r
    assert_error_shape(r.json, "InvalidTimeStamp.Expired")


def test_v3_nonce_replay(raw):
    first = raw.call_v3("DescribeRegions")
    assert first.status == 200, first
    again = raw.call_v3("DescribeRegions", replay_headers=first.sent_headers)
    assert again.status == 400, again
    assert_error_shape(again.json, "SignatureNonceUsed")


def test_v3_unknown_action(raw):
    r = raw.call_v3("NoSuchAction")
    assert r.status == 404, r
    assert_error_shape(r.json, "InvalidApi.NotFound")


def test_v3_unknown_access_key(raw):
    r = raw.call_v3("DescribeRegions", ak="LTAInosuchkey0000000002", sk="x")
    assert r.status == 404, r
    assert_error_shape(r.json, "InvalidAccessKeyId.NotFound")


# ------------------------------------------------------------------------------------------
# request shapes
# ------------------------------------------------------------------------------------------
def test_get_with_query_only(raw):
    r = raw.call("DescribeRegions", method="GET")
    assert r.status == 200, r
    assert r.json["Regions"]["Region"] == [{"RegionId": REGION}]


def test_get_describe_key(raw):
    key_id = create_key(raw)
    r = raw.call("DescribeKey", {"KeyId": key_id}, method="GET")
    assert r.status == 200, r
    assert r.json["KeyMetadata"]["KeyId"] == key_id


def test_post_with_form_body(raw):
    key_id = create_key(raw)
    pt = b64(b"form body plaintext")
    r = raw.call("Encrypt", {"KeyId": key_id, "Plaintext": pt,
                             "EncryptionContext": {"a": "b c+d"}}, in_body=True)
    assert r.status == 200, r
    assert r.json["KeyId"] == key_id
    d = raw.call("Decrypt", {"CiphertextBlob": r.json["CiphertextBlob"],
                             "EncryptionContext": {"a": "b c+d"}}, in_body=True)
    assert d.status == 200, d
    assert d.json["Plaintext"] == pt


def test_form_body_params_are_signed(raw):
    """A body parameter changed after signing must break the signature."""
    key_id = create_key(raw)
    params = raw.common_params("DescribeKey")
    params["KeyId"] = key_id
    params["Signature"] = sign_v1("POST", params, raw.sk)
    query = {k: v for k, v in params.items() if k != "KeyId"}
    r = raw.send("POST", query=query, form={"KeyId": str(uuid.uuid4())})
    assert r.status == 400, r
    assert_error_shape(r.json, "SignatureDoesNotMatch")


def test_plus_in_query_means_space(raw):
    """Tea/Go send '+' for spaces in the URL; the server must form-decode before verifying."""
    desc = "plus encoded description"
    params = raw.common_params("CreateKey")
    params["Description"] = desc
    params["Signature"] = sign_v1("POST", params, raw.sk)
    qs = "&".join(f"{percent_encode(k)}={percent_encode(v).replace('%20', '+')}" for k, v in params.items())
    conn = http.client.HTTPConnection("127.0.0.1", raw.server.port, timeout=10)
    conn.request("POST", "/?" + qs, body=b"")
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 200, body
    assert body["KeyMetadata"]["Description"] == desc


def test_lowercase_format_json(raw):
    r = raw.call("DescribeRegions", fmt="json")
    assert r.status == 200, r
    assert norm_ct(r.content_type) == JSON_CT


def test_format_xml(raw):
    r = raw.call("DescribeRegions", fmt="XML")
    assert r.status == 200, r
    assert r.content_type.replace(" ", "").lower().startswith("text/xml"), r.content_type
    root = ET.fromstring(r.body)
    assert root.tag == "DescribeRegionsResponse"
    rid = root.find("RequestId")
    assert rid is not None and rid.text
    assert [e.text for e in root.iter("RegionId")] == [REGION]


def test_format_xml_describe_key(raw):
    key_id = create_key(raw)
    r = raw.call("DescribeKey", {"KeyId": key_id}, fmt="XML")
    assert r.status == 200, r
    root = ET.fromstring(r.body)
    assert root.tag == "DescribeKeyResponse"
    assert root.find("KeyMetadata/KeyId").text == key_id
    assert root.find("KeyMetadata/KeyState").text == "Enabled"


def test_bad_base64_plaintext(raw):
    key_id = create_key(raw)
    r = raw.call("Encrypt", {"KeyId": key_id, "Plaintext": "not base64!!"})
    assert r.status == 400, r
    assert_error_shape(r.json, "InvalidParameter")


def test_bad_base64_ciphertext(raw):
    r = raw.call("Decrypt", {"CiphertextBlob": "%%%not-base64%%%"})
    assert r.status == 400, r
    assert_error_shape(r.json, "InvalidParameter")


@pytest.mark.parametrize("value", ["true", "True", "TRUE"])
def test_dryrun_boolean_case_insensitive(raw, value):
    key_id = create_key(raw)
    r = raw.call("Encrypt", {"KeyId": key_id, "Plaintext": b64(b"x"), "DryRun": value})
    assert r.status == 400, r
    assert_error_shape(r.json, "DryRunOperationError")


def test_arn_with_other_account_not_found(raw):
    key_id = create_key(raw)
    r = raw.call("DescribeKey", {"KeyId": arn_of(key_id, "1111111111111111")})
    assert r.status == 404, r
    assert_error_shape(r.json, "Forbidden.KeyNotFound")


def test_arn_with_other_region_not_found(raw):
    key_id = create_key(raw)
    arn = arn_of(key_id).replace(REGION, "cn-shanghai")
    r = raw.call("DescribeKey", {"KeyId": arn})
    assert r.status == 404, r
    assert_error_shape(r.json, "Forbidden.KeyNotFound")


def test_access_key_disabled_or_deleted_offline_stops_working_within_a_second(server):
    """`kms admin access-key disable|enable|delete` runs in another process; the server's
    cached copy of the access key lives at most a second."""
    import subprocess
    import time

    from kms_helpers import kms_bin

    created = server.new_account()
    cl = RawClient(server, created["AccessKeyId"], created["AccessKeySecret"])
    assert cl.call("DescribeRegions", {}).status == 200

    def admin(verb):
        out = subprocess.run([str(kms_bin()), "admin", "access-key", verb, "--data-dir",
                              str(server.data_dir), *server.db_args(), created["AccessKeyId"]],
                             capture_output=True, text=True, timeout=30, env=server.admin_env())
        assert out.returncode == 0, out.stderr

    def wait_for(status, code=None):
        started = time.monotonic()
        while True:
            r = cl.call("DescribeRegions", {})
            if r.status == status:
                if code:
                    assert r.json["Code"] == code, r.json
                return time.monotonic() - started
            assert time.monotonic() - started < 3, r.json
            time.sleep(0.02)

    admin("disable")
    assert wait_for(400, "InvalidAccessKeyId.Inactive") < 1.5
    admin("enable")
    assert wait_for(200) < 1.5
    admin("delete")
    assert wait_for(404, "InvalidAccessKeyId.NotFound") < 1.5


def test_header_values_that_are_not_utf8(raw):
    """Header values arrive as bytes; the server reads them borrowed, and a value that is not
    UTF-8 lossily (each bad sequence becomes U+FFFD). Signed x-acs-* headers that are not
    UTF-8 verify against a signature made over that reading (so each value must stay with its
    own header, unsigned bad ones before and between included); a signed date that is not
    UTF-8 is refused as a client error, never a 500."""
    def request(date: bytes = None) -> bytes:
        port = raw.server.port
        headers = {
            "host": f"127.0.0.1:{port}", "x-acs-action": "DescribeRegions", "x-acs-version": API_VERSION,
            "x-acs-date": fmt_date(utcnow()), "x-acs-signature-nonce": uuid.uuid4().hex,
            "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(), "accept": "application/json",
            "x-acs-a": "\ufffd", "x-acs-b": "x\ufffd\ufffdy",
        }
        signed = sorted(headers)
        _, sig = sign_v3("POST", {}, headers, signed, headers["x-acs-content-sha256"], raw.sk)
        sent = dict(headers, **{"x-acs-a": "\udcff", "x-acs-b": "x\udcfe\udcfey"})
        lines = [f"{k}: {v}".encode("utf-8", "surrogateescape") for k, v in sent.items()]
        lines.insert(0, b"x-junk: \xff\xfe")
        lines.insert(4, b"user-agent: caf\xe9 \x80")
        lines.append(f"authorization: ACS3-HMAC-SHA256 Credential={raw.ak},"
                     f"SignedHeaders={';'.join(signed)},Signature={sig}".encode())
        lines.append(b"content-length: 0")
        out = b"POST / HTTP/1.1\r\n" + b"\r\n".join(lines) + b"\r\nconnection: close\r\n\r\n"
        if date is not None:
            out = out.replace(b"x-acs-date: ", b"x-acs-date: " + date, 1)
        return out

    out = raw_exchange(raw.server.port, request())
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), out[:400]
    assert json.loads(body)["Regions"]["Region"] == [{"RegionId": REGION}]

    out = raw_exchange(raw.server.port, request(date=b"\xff"))
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), out[:400]
    assert json.loads(body)["Code"] in ("InvalidTimeStamp.Format", "SignatureDoesNotMatch"), body
    assert raw.call("DescribeRegions").status == 200
