"""Tea SDK (alibabacloud_kms20160120): check the parsed *model* attributes field by field.

If the server misspells a JSON field, Tea's from_map silently leaves the attribute None, so these tests
read resp.body.<snake_case> attributes directly (V3 and v2 signatures)."""
import datetime as dt
import os
import uuid

import pytest
from alibabacloud_kms20160120 import models
from alibabacloud_tea_openapi.exceptions import ClientException

from kms_helpers import (ACCOUNT_ID, DATE_RE, REGION, UUID_RE, TeaApi, arn_of, assert_date_near, b64,
                         unb64, wrap_key_material)


@pytest.fixture(params=[False, True], ids=["tea_v3", "tea_v2"])
def client(request, server):
    return TeaApi(server, v2=request.param).client


def check_metadata(md, *, state, origin="Aliyun_KMS", description=""):
    assert UUID_RE.match(md.key_id)
    assert md.arn == arn_of(md.key_id)
    assert DATE_RE.match(md.creation_date)
    assert md.creator == ACCOUNT_ID
    assert md.description == description
    assert md.key_state == state
    assert md.key_usage == "ENCRYPT/DECRYPT"
    assert md.key_spec == "Aliyun_AES_256"
    assert md.origin == origin
    assert md.protection_level == "SOFTWARE"
    assert UUID_RE.match(md.primary_key_version)
    assert md.automatic_rotation == "Disabled"
    assert md.rotation_interval == ""
    assert md.last_rotation_date == "" or DATE_RE.match(md.last_rotation_date)
    assert md.next_rotation_date == ""
    assert md.material_expire_time == ""
    assert md.dkmsinstance_id == ""


def test_create_describe_models(client, server):
    resp = client.create_key(models.CreateKeyRequest(description="tea model", origin="Aliyun_KMS"))
    assert resp.status_code == 200
    assert isinstance(resp.body.request_id, str) and resp.body.request_id
    md = resp.body.key_metadata
    check_metadata(md, state="Enabled", description="tea model")
    assert md.delete_date == ""
    assert_date_near(md.creation_date, server.now(), 30)

    d = client.describe_key(models.DescribeKeyRequest(key_id=md.key_id)).body.key_metadata
    check_metadata(d, state="Enabled", description="tea model")
    assert d.deletion_protection == "Disabled"
    assert d.deletion_protection_description == ""
    assert d.delete_date == ""
    assert d.primary_key_version == md.primary_key_version


def test_list_keys_model(client, server):
    acct = server.new_account()
    c = TeaApi(server, ak=acct["AccessKeyId"], sk=acct["AccessKeySecret"]).client
    ids = {c.create_key(models.CreateKeyRequest()).body.key_metadata.key_id for _ in range(3)}
    body = c.list_keys(models.ListKeysRequest(page_number=1, page_size=2)).body
    assert body.page_number == 1 and body.page_size == 2 and body.total_count == 3
    assert len(body.keys.key) == 2
    for k in body.keys.key:
        assert k.key_id in ids
        assert k.key_arn == arn_of(k.key_id, acct["AccountId"])
    body2 = c.list_keys(models.ListKeysRequest(page_number=2, page_size=2)).body
    assert [k.key_id for k in body2.keys.key] and len(body2.keys.key) == 1
    assert {k.key_id for k in body.keys.key + body2.keys.key} == ids
    filtered = c.list_keys(models.ListKeysRequest(
        filters='[{"Key":"KeyState","Values":["Disabled"]}]')).body
    assert filtered.total_count == 0 and filtered.keys.key == []


def test_describe_regions_model(client):
    body = client.describe_regions().body
    assert [r.region_id for r in body.regions.region] == [REGION]


def test_crypto_models(client):
    key = client.create_key(models.CreateKeyRequest()).body.key_metadata
    ctx = {"app": "tea", "ünï": "cödé"}
    enc = client.encrypt(models.EncryptRequest(key_id=key.arn, plaintext=b64(b"tea!"), encryption_context=ctx)).body
    assert enc.key_id == key.key_id
    assert enc.key_version_id == key.primary_key_version
    dec = client.decrypt(models.DecryptRequest(ciphertext_blob=enc.ciphertext_blob, encryption_context=ctx)).body
    assert unb64(dec.plaintext) == b"tea!"
    assert dec.key_id == key.key_id and dec.key_version_id == key.primary_key_version

    gdk = client.generate_data_key(models.GenerateDataKeyRequest(key_id=key.key_id, key_spec="AES_128")).body
    assert len(unb64(gdk.plaintext)) == 16
    assert gdk.key_id == key.key_id and gdk.key_version_id == key.primary_key_version
    gdkw = client.generate_data_key_without_plaintext(
        models.GenerateDataKeyWithoutPlaintextRequest(key_id=key.key_id, number_of_bytes=48)).body
    assert gdkw.key_id == key.key_id and gdkw.key_version_id == key.primary_key_version
    assert len(unb64(client.decrypt(models.DecryptRequest(ciphertext_blob=gdkw.ciphertext_blob)).body.plaintext)) == 48

    dst = client.create_key(models.CreateKeyRequest()).body.key_metadata
    re_ = client.re_encrypt(models.ReEncryptRequest(
        ciphertext_blob=enc.ciphertext_blob, destination_key_id=dst.key_id,
        source_encryption_context=ctx, destination_encryption_context={"app": "moved"})).body
    assert re_.key_id == dst.key_id and re_.key_version_id == dst.primary_key_version
    dec2 = client.decrypt(models.DecryptRequest(ciphertext_blob=re_.ciphertext_blob,
                                                encryption_context={"app": "moved"})).body
    assert unb64(dec2.plaintext) == b"tea!" and dec2.key_id == dst.key_id


def test_lifecycle_models(client, server):
    key = client.create_key(models.CreateKeyRequest()).body.key_metadata
    kid = key.key_id
    assert client.disable_key(models.DisableKeyRequest(key_id=kid)).body.request_id
    assert client.describe_key(models.DescribeKeyRequest(key_id=kid)).body.key_metadata.key_state == "Disabled"
    client.enable_key(models.EnableKeyRequest(key_id=kid))
    client.update_key_description(models.UpdateKeyDescriptionRequest(key_id=kid, description="new"))
    md = client.describe_key(models.DescribeKeyRequest(key_id=kid)).body.key_metadata
    assert (md.key_state, md.description) == ("Enabled", "new")
    client.set_deletion_protection(models.SetDeletionProtectionRequest(
        enable_deletion_protection=True, protected_resource_arn=key.arn, deletion_protection_description="tea"))
    md = client.describe_key(models.DescribeKeyRequest(key_id=kid)).body.key_metadata
    assert (md.deletion_protection, md.deletion_protection_description) == ("Enabled", "tea")
    client.set_deletion_protection(models.SetDeletionProtectionRequest(
        enable_deletion_protection=False, protected_resource_arn=key.arn))
    client.schedule_key_deletion(models.ScheduleKeyDeletionRequest(key_id=kid, pending_window_in_days=8))
    md = client.describe_key(models.DescribeKeyRequest(key_id=kid)).body.key_metadata
    assert md.key_state == "PendingDeletion"
    assert_date_near(md.delete_date, server.now() + dt.timedelta(days=8), 30)
    client.cancel_key_deletion(models.CancelKeyDeletionRequest(key_id=kid))
    md = client.describe_key(models.DescribeKeyRequest(key_id=kid)).body.key_metadata
    assert (md.key_state, md.delete_date) == ("Enabled", "")


@pytest.mark.parametrize("algorithm", ["RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"])
def test_byok_models(client, server, algorithm):
    key = client.create_key(models.CreateKeyRequest(origin="EXTERNAL")).body.key_metadata
    check_metadata(key, state="PendingImport", origin="EXTERNAL")
    p = client.get_parameters_for_import(models.GetParametersForImportRequest(
        key_id=key.key_id, wrapping_algorithm=algorithm, wrapping_key_spec="RSA_2048")).body
    assert p.key_id == key.key_id
    assert p.import_token and p.public_key and p.request_id
    assert_date_near(p.token_expire_time, server.now() + dt.timedelta(hours=24), 30)
    material = os.urandom(32)
    expire = int(server.now().timestamp()) + 86400 * 30
    r = client.import_key_material(models.ImportKeyMaterialRequest(
        key_id=key.key_id, import_token=p.import_token, key_material_expire_unix=expire,
        encrypted_key_material=wrap_key_material(p.public_key, material, algorithm)))
    assert r.status_code == 200 and r.body.request_id
    md = client.describe_key(models.DescribeKeyRequest(key_id=key.key_id)).body.key_metadata
    assert md.key_state == "Enabled"
    assert md.material_expire_time == dt.datetime.fromtimestamp(expire, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    client.delete_key_material(models.DeleteKeyMaterialRequest(key_id=key.key_id))
    md = client.describe_key(models.DescribeKeyRequest(key_id=key.key_id)).body.key_metadata
    assert (md.key_state, md.material_expire_time) == ("PendingImport", "")


def test_error_exception_fields(client):
    with pytest.raises(ClientException) as ei:
        client.describe_key(models.DescribeKeyRequest(key_id=str(uuid.uuid4())))
    e = ei.value
    assert e.code == "Forbidden.KeyNotFound"
    assert e.status_code == 404
    assert isinstance(e.request_id, str) and e.request_id
    assert e.data["Code"] == "Forbidden.KeyNotFound"
    for f in ("Message", "RequestId", "HostId", "Recommend"):
        assert isinstance(e.data[f], str), f

    key = client.create_key(models.CreateKeyRequest()).body.key_metadata
    client.disable_key(models.DisableKeyRequest(key_id=key.key_id))
    with pytest.raises(ClientException) as ei:
        client.encrypt(models.EncryptRequest(key_id=key.key_id, plaintext=b64(b"x")))
    assert (ei.value.code, ei.value.status_code) == ("Rejected.Disabled", 409)
