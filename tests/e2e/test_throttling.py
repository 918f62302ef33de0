"""Per-account throttling by class of action: 429 Rejected.Throttling over the limit, other
accounts and other classes unaffected, requests pass again after the bucket refills."""
from __future__ import annotations

import time

import pytest

from kms_helpers import KmsServer, TeaApi, b64, expect_error


@pytest.fixture
def throttled(kms_binary, tmp_path):
    srv = KmsServer(tmp_path / "data", tmp_path / "logs",
                    extra_args=["--throttle-crypto", "5", "--throttle-management", "1000"])
    srv.start()
    yield srv
    srv.stop()


def test_crypto_limit_per_account(throttled):
    api = TeaApi(throttled)
    key = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    ok, refused = 0, []
    for _ in range(12):
        try:
            api.call("Encrypt", KeyId=key, Plaintext=b64(b"x"))
            ok += 1
        except Exception as e:  # noqa: BLE001 - checked below
            refused.append(e)
    assert 5 <= ok <= 7, ok  # a bucket of 5, refilling at 5/s while the loop runs
    assert refused and all(e.code == "Rejected.Throttling" and e.status == 429 for e in refused)
    # Management actions have their own budget.
    api.call("DescribeKey", KeyId=key)
    # Another account has its own bucket.
    other = throttled.new_account()
    api2 = TeaApi(throttled, ak=other["AccessKeyId"], sk=other["AccessKeySecret"])
    key2 = api2.call("CreateKey")["KeyMetadata"]["KeyId"]
    api2.call("Encrypt", KeyId=key2, Plaintext=b64(b"x"))
    # After a second the bucket has refilled.
    time.sleep(1.1)
    api.call("Encrypt", KeyId=key, Plaintext=b64(b"x"))


def test_throttled_error_shape(throttled):
    api = TeaApi(throttled)
    key = api.call("CreateKey")["KeyMetadata"]["KeyId"]
    for _ in range(5):
        api.call("GenerateDataKey", KeyId=key)
    err = expect_error(lambda: [api.call("Decrypt", CiphertextBlob="AAAA") for _ in range(5)],
                       "Rejected.Throttling", 429)
    assert "QPS" in (err.message or "")
