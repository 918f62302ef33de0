// End-to-end tests of the KMS server with the official Node SDKs.
//
//  * @alicloud/kms20160120 (rpc-client, RPC v1 HMAC-SHA1): typed request/response models
//  * @alicloud/openapi-client callApi (ACS3-HMAC-SHA256 V3 signature) for the actions the old Node
//    KMS SDK does not model (ReEncrypt, SetDeletionProtection, ListKeys Filters)
//
// Run:  cd tests/node && npm ci && node --test      (or from the repo root: node --test tests/node/)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';

import { KmsServer, ACCOUNT_ID, REGION } from './server.mjs';

const require = createRequire(import.meta.url);
const Kms = require('@alicloud/kms20160120');
const KmsClient = Kms.default;
const { Config: RpcConfig } = require('@alicloud/rpc-client');
const OpenApi = require('@alicloud/openapi-client');
const OpenApiClient = OpenApi.default;
const OpenApiUtil = require('@alicloud/openapi-util').default;
const Util = require('@alicloud/tea-util');

const DATE_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const b64 = (buf) => Buffer.from(buf).toString('base64');
const unb64 = (s) => Buffer.from(s, 'base64');
const arnOf = (id, account = ACCOUNT_ID) => `acs:kms:${REGION}:${account}:key/${id}`;

let server;
let kms; // @alicloud/kms20160120 client
let v3; // @alicloud/openapi-client with the default ACS3-HMAC-SHA256 signature

function kmsClient(ak = server.ak, sk = server.sk) {
  return new KmsClient(new RpcConfig({
    accessKeyId: ak, accessKeySecret: sk, regionId: REGION, endpoint: server.endpoint, protocol: 'http',
  }));
}

function v3Client(ak = server.ak, sk = server.sk, extra = {}) {
  return new OpenApiClient(new OpenApi.Config({
    accessKeyId: ak, accessKeySecret: sk, regionId: REGION, endpoint: server.endpoint, protocol: 'http', ...extra,
  }));
}

// generic RPC call through openapi-client (V3 signature); returns the parsed JSON body
async function callV3(action, query = {}, client = v3) {
  const params = new OpenApi.Params({
    action, version: '2016-01-20', protocol: 'HTTP', pathname: '/', method: 'POST', authType: 'AK',
    style: 'RPC', reqBodyType: 'formData', bodyType: 'json',
  });
  const request = new OpenApi.OpenApiRequest({ query: OpenApiUtil.query(query) });
  const resp = await client.callApi(params, request, new Util.RuntimeOptions({}));
  assert.equal(resp.statusCode, 200);
  return resp.body;
}

// asserts an SDK call fails with the given server error Code and HTTP status
async function expectError(promise, code, status) {
  await assert.rejects(promise, (err) => {
    assert.ok(err.data, `no error data on ${err}`);
    assert.equal(err.data.Code, code, `expected ${code}, got ${JSON.stringify(err.data)}`);
    assert.match(err.message, new RegExp(`code: ${status},`));
    for (const f of ['Code', 'Message', 'RequestId', 'HostId', 'Recommend']) {
      assert.equal(typeof err.data[f], 'string', `error field ${f} must be a string`);
    }
    return true;
  });
}

function checkMetadata(md, { state, origin = 'Aliyun_KMS', description = '' } = {}) {
  assert.match(md.keyId, UUID_RE);
  assert.equal(md.arn, arnOf(md.keyId));
  assert.match(md.creationDate, DATE_RE);
  assert.equal(md.creator, ACCOUNT_ID);
  assert.equal(md.description, description);
  assert.equal(md.keyState, state);
  assert.equal(md.keyUsage, 'ENCRYPT/DECRYPT');
  assert.equal(md.keySpec, 'Aliyun_AES_256');
  assert.equal(md.origin, origin);
  assert.equal(md.protectionLevel, 'SOFTWARE');
  assert.match(md.primaryKeyVersion, UUID_RE);
  assert.equal(md.automaticRotation, 'Disabled');
  assert.equal(md.rotationInterval, '');
  assert.equal(md.nextRotationDate, '');
  assert.equal(md.materialExpireTime, '');
  assert.ok(md.lastRotationDate === '' || DATE_RE.test(md.lastRotationDate), md.lastRotationDate);
  if (state === 'PendingDeletion') assert.match(md.deleteDate, DATE_RE);
  else assert.equal(md.deleteDate, '');
}

async function createKey(req = {}) {
  const resp = await kms.createKey(new Kms.CreateKeyRequest(req));
  return resp.keyMetadata;
}

async function describe(keyId) {
  return (await kms.describeKey(new Kms.DescribeKeyRequest({ keyId }))).keyMetadata;
}

function nearSeconds(dateStr, expectedMs, tolS = 120) {
  const d = Date.parse(dateStr);
  assert.ok(Math.abs(d - expectedMs) <= tolS * 1000, `${dateStr} not within ${tolS}s of ${new Date(expectedMs).toISOString()}`);
}

before(async () => {
  server = new KmsServer();
  await server.start();
  kms = kmsClient();
  v3 = v3Client();
});

after(async () => {
  if (server) await server.cleanup();
});

test('CreateKey and DescribeKey models', async () => {
  const resp = await kms.createKey(new Kms.CreateKeyRequest({ description: 'node key ü *~' }));
  assert.equal(typeof resp.requestId, 'string');
  assert.ok(resp.requestId.length > 0);
  const md = resp.keyMetadata;
  checkMetadata(md, { state: 'Enabled', description: 'node key ü *~' });
  nearSeconds(md.creationDate, server.now().getTime());

  const d = await describe(md.keyId);
  checkMetadata(d, { state: 'Enabled', description: 'node key ü *~' });
  assert.equal(d.primaryKeyVersion, md.primaryKeyVersion);
  const byArn = await describe(md.arn);
  assert.equal(byArn.keyId, md.keyId);

  // V3 signature through openapi-client: raw body has every KeyMetadata field as a string
  const body = await callV3('DescribeKey', { KeyId: md.keyId });
  for (const f of ['KeyId', 'Arn', 'CreationDate', 'Creator', 'Description', 'KeyState', 'KeyUsage', 'KeySpec',
    'Origin', 'ProtectionLevel', 'PrimaryKeyVersion', 'AutomaticRotation', 'RotationInterval', 'LastRotationDate',
    'NextRotationDate', 'DeleteDate', 'MaterialExpireTime', 'DeletionProtection', 'DeletionProtectionDescription',
    'DKMSInstanceId']) {
    assert.equal(typeof body.KeyMetadata[f], 'string', `KeyMetadata.${f}`);
  }
  assert.equal(body.KeyMetadata.DeletionProtection, 'Disabled');
  assert.equal(body.KeyMetadata.DKMSInstanceId, '');
});

test('ListKeys paging and Filters', async () => {
  const acct = server.newAccount();
  const c = kmsClient(acct.AccessKeyId, acct.AccessKeySecret);
  const ids = new Set();
  for (let i = 0; i < 3; i++) {
    ids.add((await c.createKey(new Kms.CreateKeyRequest({}))).keyMetadata.keyId);
  }
  const ext = (await c.createKey(new Kms.CreateKeyRequest({ origin: 'EXTERNAL' }))).keyMetadata.keyId;
  ids.add(ext);

  const p1 = await c.listKeys(new Kms.ListKeysRequest({ pageNumber: 1, pageSize: 3 }));
  assert.equal(p1.pageNumber, 1);
  assert.equal(p1.pageSize, 3);
  assert.equal(p1.totalCount, 4);
  assert.equal(p1.keys.key.length, 3);
  const p2 = await c.listKeys(new Kms.ListKeysRequest({ pageNumber: 2, pageSize: 3 }));
  assert.equal(p2.keys.key.length, 1);
  const seen = [...p1.keys.key, ...p2.keys.key];
  assert.deepEqual(new Set(seen.map((k) => k.keyId)), ids);
  for (const k of seen) assert.equal(k.keyArn, arnOf(k.keyId, acct.AccountId));

  const cv3 = v3Client(acct.AccessKeyId, acct.AccessKeySecret);
  const f = await callV3('ListKeys', { Filters: JSON.stringify([{ Key: 'Origin', Values: ['EXTERNAL'] }]) }, cv3);
  assert.equal(f.TotalCount, 1);
  assert.deepEqual(f.Keys.Key, [{ KeyId: ext, KeyArn: arnOf(ext, acct.AccountId) }]);
  const g = await callV3('ListKeys', { Filters: '[{"Key":"KeyState","Values":["Enabled","PendingImport"]}]', PageSize: 100 }, cv3);
  assert.equal(g.TotalCount, 4);
  await expectError(callV3('ListKeys', { Filters: '[{"Key":' }, cv3), 'InvalidParameter', 400);
});

test('DescribeRegions', async () => {
  const r = await kms.describeRegions(new Kms.DescribeRegionsRequest({}));
  assert.deepEqual(r.regions.region.map((x) => x.regionId), [REGION]);
  const body = await callV3('DescribeRegions');
  assert.deepEqual(body.Regions, { Region: [{ RegionId: REGION }] });
  // openapi-client with signatureAlgorithm 'v2' (RPC HMAC-SHA1 path of the same client)
  const v2 = v3Client(server.ak, server.sk, { signatureAlgorithm: 'v2' });
  const b2 = await callV3('DescribeRegions', {}, v2);
  assert.deepEqual(b2.Regions, { Region: [{ RegionId: REGION }] });
  const md = await createKey();
  const k2 = await callV3('DescribeKey', { KeyId: md.arn }, v2);
  assert.equal(k2.KeyMetadata.KeyId, md.keyId);
  await expectError(callV3('DescribeKey', { KeyId: crypto.randomUUID() }, v2), 'Forbidden.KeyNotFound', 404);
});

test('Encrypt / Decrypt with EncryptionContext', async () => {
  const md = await createKey();
  const pt = crypto.randomBytes(64);
  const ctx = JSON.stringify({ app: 'node', n: 'ü*~' });
  // the old Node SDK would flatten a map into EncryptionContext.app=...; pass the JSON string (wire format)
  const enc = await kms.encrypt(new Kms.EncryptRequest({ keyId: md.arn, plaintext: b64(pt), encryptionContext: ctx }));
  assert.equal(enc.keyId, md.keyId);
  assert.equal(enc.keyVersionId, md.primaryKeyVersion);
  assert.ok(enc.ciphertextBlob.length > 0);
  const dec = await kms.decrypt(new Kms.DecryptRequest({
    ciphertextBlob: enc.ciphertextBlob, encryptionContext: JSON.stringify({ n: 'ü*~', app: 'node' }),
  }));
  assert.deepEqual(unb64(dec.plaintext), pt);
  assert.equal(dec.keyId, md.keyId);
  assert.equal(dec.keyVersionId, md.primaryKeyVersion);
  await expectError(kms.decrypt(new Kms.DecryptRequest({ ciphertextBlob: enc.ciphertextBlob })),
    'InvalidParameter', 400);
  await expectError(kms.encrypt(new Kms.EncryptRequest({ keyId: md.keyId, plaintext: b64(crypto.randomBytes(6145)) })),
    'InvalidParameter', 400);
});

test('GenerateDataKey and GenerateDataKeyWithoutPlaintext', async () => {
  const md = await createKey();
  const cases = [[{}, 32], [{ keySpec: 'AES_128' }, 16], [{ numberOfBytes: 100 }, 100], [{ keySpec: 'AES_128', numberOfBytes: 20 }, 20]];
  for (const [extra, len] of cases) {
    const r = await kms.generateDataKey(new Kms.GenerateDataKeyRequest({ keyId: md.keyId, ...extra }));
    assert.equal(unb64(r.plaintext).length, len, JSON.stringify(extra));
    assert.equal(r.keyId, md.keyId);
    assert.equal(r.keyVersionId, md.primaryKeyVersion);
    const d = await kms.decrypt(new Kms.DecryptRequest({ ciphertextBlob: r.ciphertextBlob }));
    assert.equal(d.plaintext, r.plaintext);
  }
  const w = await kms.generateDataKeyWithoutPlaintext(new Kms.GenerateDataKeyWithoutPlaintextRequest({ keyId: md.keyId, keySpec: 'AES_256' }));
  assert.equal(w.plaintext, undefined);
  assert.equal(w.keyId, md.keyId);
  assert.equal(unb64((await kms.decrypt(new Kms.DecryptRequest({ ciphertextBlob: w.ciphertextBlob }))).plaintext).length, 32);
  await expectError(kms.generateDataKey(new Kms.GenerateDataKeyRequest({ keyId: md.keyId, numberOfBytes: 1025 })),
    'InvalidParameter', 400);
});

test('ReEncrypt (V3 signature via openapi-client)', async () => {
  const src = await createKey();
  const dst = await createKey();
  const enc = await kms.encrypt(new Kms.EncryptRequest({ keyId: src.keyId, plaintext: b64('move me'), encryptionContext: '{"a":"1"}' }));
  const r = await callV3('ReEncrypt', {
    CiphertextBlob: enc.ciphertextBlob, DestinationKeyId: dst.keyId,
    SourceEncryptionContext: '{"a":"1"}', DestinationEncryptionContext: '{"b":"2"}',
  });
  assert.equal(r.KeyId, dst.keyId);
  assert.equal(r.KeyVersionId, dst.primaryKeyVersion);
  assert.equal(typeof r.RequestId, 'string');
  const d = await kms.decrypt(new Kms.DecryptRequest({ ciphertextBlob: r.CiphertextBlob, encryptionContext: '{"b":"2"}' }));
  assert.equal(unb64(d.plaintext).toString(), 'move me');
  assert.equal(d.keyId, dst.keyId);
  await expectError(callV3('ReEncrypt', { CiphertextBlob: enc.ciphertextBlob, DestinationKeyId: dst.keyId, DryRun: 'true', SourceEncryptionContext: '{"a":"1"}' }),
    'DryRunOperationError', 400);
});

test('DisableKey / EnableKey and state errors', async () => {
  const md = await createKey();
  const enc = await kms.encrypt(new Kms.EncryptRequest({ keyId: md.keyId, plaintext: b64('x') }));
  const r = await kms.disableKey(new Kms.DisableKeyRequest({ keyId: md.keyId }));
  assert.equal(typeof r.requestId, 'string');
  assert.equal((await describe(md.keyId)).keyState, 'Disabled');
  await expectError(kms.encrypt(new Kms.EncryptRequest({ keyId: md.keyId, plaintext: b64('x') })), 'Rejected.Disabled', 409);
  await expectError(kms.decrypt(new Kms.DecryptRequest({ ciphertextBlob: enc.ciphertextBlob })), 'Rejected.Disabled', 409);
  await kms.enableKey(new Kms.EnableKeyRequest({ keyId: md.keyId }));
  assert.equal((await describe(md.keyId)).keyState, 'Enabled');
  const d = await kms.decrypt(new Kms.DecryptRequest({ ciphertextBlob: enc.ciphertextBlob }));
  assert.equal(unb64(d.plaintext).toString(), 'x');
});

test('ScheduleKeyDeletion / CancelKeyDeletion and deletion protection', async () => {
  const md = await createKey();
  await kms.scheduleKeyDeletion(new Kms.ScheduleKeyDeletionRequest({ keyId: md.keyId, pendingWindowInDays: 7 }));
  let d = await describe(md.keyId);
  checkMetadata(d, { state: 'PendingDeletion' });
  nearSeconds(d.deleteDate, server.now().getTime() + 7 * 86400 * 1000);
  await expectError(kms.scheduleKeyDeletion(new Kms.ScheduleKeyDeletionRequest({ keyId: md.keyId, pendingWindowInDays: 7 })),
    'Rejected.StateModifiedFailed', 409);
  await expectError(kms.enableKey(new Kms.EnableKeyRequest({ keyId: md.keyId })), 'Rejected.StateModifiedFailed', 409);
  await expectError(kms.updateKeyDescription(new Kms.UpdateKeyDescriptionRequest({ keyId: md.keyId, description: 'x' })),
    'Rejected.PendingDeletion', 409);
  await kms.cancelKeyDeletion(new Kms.CancelKeyDeletionRequest({ keyId: md.keyId }));
  d = await describe(md.keyId);
  assert.equal(d.keyState, 'Enabled');
  assert.equal(d.deleteDate, '');
  await expectError(kms.cancelKeyDeletion(new Kms.CancelKeyDeletionRequest({ keyId: md.keyId })),
    'Rejected.StateModifiedFailed', 409);
  await expectError(kms.scheduleKeyDeletion(new Kms.ScheduleKeyDeletionRequest({ keyId: md.keyId, pendingWindowInDays: 6 })),
    'InvalidParameter', 400);

  await callV3('SetDeletionProtection', { EnableDeletionProtection: true, ProtectedResourceArn: md.arn, DeletionProtectionDescription: 'node' });
  const body = await callV3('DescribeKey', { KeyId: md.keyId });
  assert.equal(body.KeyMetadata.DeletionProtection, 'Enabled');
  assert.equal(body.KeyMetadata.DeletionProtectionDescription, 'node');
  await expectError(kms.scheduleKeyDeletion(new Kms.ScheduleKeyDeletionRequest({ keyId: md.keyId, pendingWindowInDays: 7 })),
    'Forbidden.NoPermission', 403);
});

test('deletion after the pending window (test clock)', async () => {
  const md = await createKey();
  await kms.scheduleKeyDeletion(new Kms.ScheduleKeyDeletionRequest({ keyId: md.keyId, pendingWindowInDays: 7 }));
  const r = await server.advanceClock(7 * 86400 + 5);
  assert.equal(r.OffsetSeconds, server.clockOffset);
  await expectError(describe(md.keyId), 'Forbidden.KeyNotFound', 404);
});

test('error cases carry exact codes', async () => {
  await expectError(describe(crypto.randomUUID()), 'Forbidden.KeyNotFound', 404);
  await assert.rejects(describe(crypto.randomUUID()), (err) => {
    assert.equal(err.code, 'Forbidden.KeyNotFoundError'); // rpc-client appends "Error" to the Code
    return true;
  });
  await expectError(callV3('DescribeKey', { KeyId: crypto.randomUUID() }), 'Forbidden.KeyNotFound', 404);
  await expectError(kms.createKey(new Kms.CreateKeyRequest({ keySpec: 'Aliyun_AES_999' })), 'InvalidParameter', 400);
  const bad = kmsClient(server.ak, 'wrong-secret');
  await expectError(bad.describeRegions(new Kms.DescribeRegionsRequest({})), 'SignatureDoesNotMatch', 400);
  await expectError(callV3('DescribeRegions', {}, v3Client(server.ak, 'wrong-secret')), 'SignatureDoesNotMatch', 400);
  await expectError(kmsClient('LTAInosuchkey000000', 'x').describeRegions(new Kms.DescribeRegionsRequest({})),
    'InvalidAccessKeyId.NotFound', 404);
  const other = server.newAccount();
  const md = await createKey();
  await expectError(kmsClient(other.AccessKeyId, other.AccessKeySecret).describeKey(new Kms.DescribeKeyRequest({ keyId: md.arn })),
    'Forbidden.KeyNotFound', 404);
});

const PADDINGS = {
  RSAES_PKCS1_V1_5: { padding: crypto.constants.RSA_PKCS1_PADDING },
  RSAES_OAEP_SHA_1: { padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
  RSAES_OAEP_SHA_256: { padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
};

function wrap(publicKeyB64, material, algorithm) {
  const key = crypto.createPublicKey({ key: unb64(publicKeyB64), format: 'der', type: 'spki' });
  assert.equal(key.asymmetricKeyType, 'rsa');
  assert.equal(key.asymmetricKeyDetails.modulusLength, 2048);
  return b64(crypto.publicEncrypt({ key, ...PADDINGS[algorithm] }, material));
}

for (const algorithm of Object.keys(PADDINGS)) {
  test(`BYOK flow with crypto.publicEncrypt (${algorithm})`, async () => {
    const md = await createKey({ origin: 'EXTERNAL' });
    checkMetadata(md, { state: 'PendingImport', origin: 'EXTERNAL' });

    const p = await kms.getParametersForImport(new Kms.GetParametersForImportRequest({
      keyId: md.keyId, wrappingAlgorithm: algorithm, wrappingKeySpec: 'RSA_2048',
    }));
    assert.equal(p.keyId, md.keyId);
    assert.ok(p.importToken.length > 0);
    nearSeconds(p.tokenExpireTime, server.now().getTime() + 86400 * 1000);

    const material = crypto.randomBytes(32);
    // wrong length first: InvalidKeyMaterial, state unchanged
    await expectError(kms.importKeyMaterial(new Kms.ImportKeyMaterialRequest({
      keyId: md.keyId, importToken: p.importToken, encryptedKeyMaterial: wrap(p.publicKey, crypto.randomBytes(16), algorithm),
      keyMaterialExpireUnix: 0,
    })), 'InvalidKeyMaterial', 400);
    assert.equal((await describe(md.keyId)).keyState, 'PendingImport');
    await expectError(kms.importKeyMaterial(new Kms.ImportKeyMaterialRequest({
      keyId: md.keyId, importToken: b64(crypto.randomBytes(48)), encryptedKeyMaterial: wrap(p.publicKey, material, algorithm),
      keyMaterialExpireUnix: 0,
    })), 'InvalidImportToken', 400);

    const p2 = await kms.getParametersForImport(new Kms.GetParametersForImportRequest({
      keyId: md.keyId, wrappingAlgorithm: algorithm, wrappingKeySpec: 'RSA_2048',
    }));
    const expire = Math.floor(server.now().getTime() / 1000) + 30 * 86400;
    const r = await kms.importKeyMaterial(new Kms.ImportKeyMaterialRequest({
      keyId: md.keyId, importToken: p2.importToken, encryptedKeyMaterial: wrap(p2.publicKey, material, algorithm),
      keyMaterialExpireUnix: expire,
    }));
    assert.equal(typeof r.requestId, 'string');
    let d = await describe(md.keyId);
    assert.equal(d.keyState, 'Enabled');
    assert.equal(d.materialExpireTime, new Date(expire * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'));

    const enc = await kms.encrypt(new Kms.EncryptRequest({ keyId: md.keyId, plaintext: b64('byok node') }));
    assert.equal(enc.keyVersionId, md.primaryKeyVersion);
    const dec = await kms.decrypt(new Kms.DecryptRequest({ ciphertextBlob: enc.ciphertextBlob }));
    assert.equal(unb64(dec.plaintext).toString(), 'byok node');

    await kms.deleteKeyMaterial(new Kms.DeleteKeyMaterialRequest({ keyId: md.keyId }));
    d = await describe(md.keyId);
    assert.equal(d.keyState, 'PendingImport');
    assert.equal(d.materialExpireTime, '');
    await expectError(kms.decrypt(new Kms.DecryptRequest({ ciphertextBlob: enc.ciphertextBlob })), 'Rejected.PendingImport', 409);

    // the first token is still valid; the same material re-imports, other material does not
    await expectError(kms.importKeyMaterial(new Kms.ImportKeyMaterialRequest({
      keyId: md.keyId, importToken: p.importToken, encryptedKeyMaterial: wrap(p.publicKey, crypto.randomBytes(32), algorithm),
      keyMaterialExpireUnix: 0,
    })), 'InvalidKeyMaterial', 400);
    await kms.importKeyMaterial(new Kms.ImportKeyMaterialRequest({
      keyId: md.keyId, importToken: p.importToken, encryptedKeyMaterial: wrap(p.publicKey, material, algorithm),
      keyMaterialExpireUnix: 0,
    }));
    d = await describe(md.keyId);
    assert.equal(d.keyState, 'Enabled');
    assert.equal(d.materialExpireTime, '');
    const again = await kms.decrypt(new Kms.DecryptRequest({ ciphertextBlob: enc.ciphertextBlob }));
    assert.equal(unb64(again.plaintext).toString(), 'byok node');
  });
}

test('BYOK on a non-EXTERNAL key: Unsupported.Origin', async () => {
  const md = await createKey();
  await expectError(kms.getParametersForImport(new Kms.GetParametersForImportRequest({
    keyId: md.keyId, wrappingAlgorithm: 'RSAES_OAEP_SHA_256', wrappingKeySpec: 'RSA_2048',
  })), 'Unsupported.Origin', 400);
  await expectError(kms.deleteKeyMaterial(new Kms.DeleteKeyMaterialRequest({ keyId: md.keyId })), 'Unsupported.Origin', 400);
});
