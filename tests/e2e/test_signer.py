"""Self-tests of the independent signers in kms_helpers against the reference vectors (no server)."""
import hashlib

from kms_helpers import (canonical_query_v1, sign_v1, sign_v3, string_to_sign_v1, percent_encode)


def test_v1_doc_vector():
    params = {
        "AccessKeyId": "testid", "Action": "CreateKey", "Format": "json",
        "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
        "Timestamp": "2016-03-28T03:13:08Z", "Version": "2016-01-20",
    }
    assert sign_v1("GET", params, "testsecret") == "41wk2SSX1GJh7fwnc5eqOfiJPFg="


def test_v1_special_chars_vector():
    params = {
        "AccessKeyId": "testid", "Action": "Encrypt", "Version": "2016-01-20", "Format": "JSON",
        "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
        "SignatureNonce": "0123456789abcdef", "Timestamp": "2024-01-01T00:00:00Z",
        "RegionId": "cn-hangzhou", "KeyId": "alias/test key", "Plaintext": "aGVsbG8+/w==",
        "EncryptionContext": '{"k":"v*~é"}',
    }
    assert sign_v1("POST", params, "testsecret") == "rqdYqmmH2jgvgAkVpgVKvNntwWg="
    # the Signature parameter itself is never signed
    assert sign_v1("POST", {**params, "Signature": "x"}, "testsecret") == "rqdYqmmH2jgvgAkVpgVKvNntwWg="


def test_v1_encoding_rules():
    assert percent_encode("a b*~é/+=") == "a%20b%2A~%C3%A9%2F%2B%3D"
    assert canonical_query_v1({"b": "", "B": "1", "a": "x y"}) == "B=1&a=x%20y&b="
    sts = string_to_sign_v1("post", {"A": "1", "B": "2"})
    assert sts == "POST&%2F&A%3D1%26B%3D2"


def test_v1_matches_classic_sdk_composer():
    """Our signer agrees with the classic SDK's own composer on a random-looking input."""
    from aliyunsdkcore.auth.composer import rpc_signature_composer as c
    from aliyunsdkcore.auth.algorithm import sha_hmac1

    params = {"Action": "Encrypt", "KeyId": "k ~*/é", "EncryptionContext": '{"a": "b c"}',
              "SignatureType": "", "Version": "2016-01-20"}
    sdk_sts = getattr(c, "__compose_string_to_sign")("POST", dict(params))
    assert sdk_sts == string_to_sign_v1("POST", params)
    sig = sha_hmac1.get_sign_string(sdk_sts, "s3cr3t&")
    assert sig == sign_v1("POST", params, "s3cr3t")


def test_v3_reference_vector():
    headers = {
        "host": "127.0.0.1:8080", "x-acs-version": "2016-01-20", "x-acs-action": "Encrypt",
        "x-acs-date": "2024-01-01T00:00:00Z",
        "x-acs-signature-nonce": "0123456789abcdef0123456789abcdef", "accept": "application/json",
        "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    }
    query = {"KeyId": "alias/test key", "Plaintext": "aGVsbG8=", "EncryptionContext": '{"a":"b"}'}
    creq_hash, sig = sign_v3("POST", query, headers, headers.keys(),
                             hashlib.sha256(b"").hexdigest(), "testsecret")
    assert creq_hash == "b799322d0c1f29a3dc5715f02357ea7dd2426656a47efa2df4dc9e27db006be4"
    assert sig == "7da68aaa98aaa1553cd74caf1a17df6b3155b13c23290fc58f60cc68b0f21773"
