// End-to-end tests of aliases, key versions / rotation and tags with the official Node SDKs.
//
//  * @alicloud/kms20160120 1.2.0 (rpc-client, RPC v1 HMAC-SHA1): typed models for CreateAlias, UpdateAlias,
//    DeleteAlias, ListAliases, ListAliasesByKeyId, CreateKeyVersion, ListKeyVersions, DescribeKeyVersion,
//    UpdateRotationPolicy, TagResource, UntagResource, ListResourceTags
//  * @alicloud/openapi-client callApi (ACS3-HMAC-SHA256, and 'v2' HMAC-SHA1) for what that SDK version does not
//    model: TagResources / UntagResources / ListTagResources (ResourceId / Tag arrays flattened by
//    OpenApiUtil.query into ResourceId.N / Tag.N.Key / Tag.N.Value exactly as the newer generated SDKs do) and
//    CreateKey Tags.
//
// Run:  node --test tests/node/      (needs target/debug/kms, or KMS_BIN)
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

const DAY = 86400;
const DATE_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const b64 = (buf) => Buffer.from(buf).toString('base64');
const unb64 = (s) => Buffer.from(s, 'base64');
const secs = (d) => {
  assert.match(d, DATE_RE);
  return Date.parse(d) / 1000;
};
const aliasArn = (name, account = ACCOUNT_ID) => `acs:kms:${REGION}:${account}:${name}`;
const uniq = (p) => `alias/${p}-${crypto.randomBytes(6).toString('hex')}`;

let server;

function kmsClient(srv, ak = srv.ak, sk = srv.sk) {
  return new KmsClient(new RpcConfig({
    accessKeyId: ak, accessKeySecret: sk, regionId: REGION, endpoint: srv.endpoint, protocol: 'http',
  }));
}

function v3Client(srv, ak = srv.ak, sk = srv.sk, extra = {}) {
  return new OpenApiClient(new OpenApi.Config({
    accessKeyId: ak, accessKeySecret: sk, regionId: REGION, endpoint: srv.endpoint, protocol: 'http', ...extra,
  }));
}

// generic RPC call through openapi-client; arrays/objects in `query` are flattened like the generated SDKs do
async function callApi(client, action, query = {}) {
  const params = new OpenApi.Params({
    action, version: '2016-01-20', protocol: 'HTTP', pathname: '/', method: 'POST', authType: 'AK',
    style: 'RPC', reqBodyType: 'formData', bodyType: 'json',
  });
  const request = new OpenApi.OpenApiRequest({ query: OpenApiUtil.query(query) });
  const resp = await client.callApi(params, request, new Util.RuntimeOptions({}));
  assert.equal(resp.statusCode, 200);
  assert.equal(typeof resp.body.RequestId, 'string');
  return resp.body;
}

async function expectError(promise, code, status) {
  await assert.rejects(promise, (err) => {
    assert.ok(err.data, `no error data on ${err}`);
    assert.equal(err.data.Code, code, `expected ${code}, got ${JSON.stringify(err.data)}`);
    assert.match(err.message, new RegExp(`code: ${status},`), err.message);
    for (const f of ['Code', 'Message', 'RequestId', 'HostId', 'Recommend']) {
      assert.equal(typeof err.data[f], 'string', `error field ${f} must be a string`);
    }
    return true;
  });
}

// a fresh, empty account on `srv`: { acct, kms, v3, v2 }
function account(srv = server) {
  const acct = srv.newAccount();
  return {
    acct,
    kms: kmsClient(srv, acct.AccessKeyId, acct.AccessKeySecret),
    v3: v3Client(srv, acct.AccessKeyId, acct.AccessKeySecret),
    v2: v3Client(srv, acct.AccessKeyId, acct.AccessKeySecret, { signatureAlgorithm: 'v2' }),
  };
}

async function createKey(kms, req = {}) {
  return (await kms.createKey(new Kms.CreateKeyRequest(req))).keyMetadata;
}

async function describe(kms, keyId) {
  return (await kms.describeKey(new Kms.DescribeKeyRequest({ keyId }))).keyMetadata;
}

function checkPage(resp, number, size, total) {
  assert.equal(resp.pageNumber, number);
  assert.equal(resp.pageSize, size);
  assert.equal(resp.totalCount, total);
  for (const f of ['pageNumber', 'pageSize', 'totalCount']) assert.equal(typeof resp[f], 'number', f);
}

before(async () => {
  server = new KmsServer();
  await server.start();
});

after(async () => {
  if (server) await server.cleanup();
});

// ------------------------------------------------------------------------------------------------
// aliases
// ------------------------------------------------------------------------------------------------
test('aliases: create / list / update / delete, and crypto through an alias', async () => {
  const { acct, kms } = account();
  const a = await createKey(kms);
  const b = await createKey(kms);
  const r = await kms.createAlias(new Kms.CreateAliasRequest({ aliasName: 'alias/node-app', keyId: a.keyId }));
  assert.equal(typeof r.requestId, 'string');
  await kms.createAlias(new Kms.CreateAliasRequest({ aliasName: 'alias/node-b', keyId: b.arn }));
  await kms.createAlias(new Kms.CreateAliasRequest({ aliasName: 'alias/node-a2', keyId: a.keyId }));

  let l = await kms.listAliases(new Kms.ListAliasesRequest({}));
  checkPage(l, 1, 10, 3);
  assert.deepEqual(l.aliases.alias.map((x) => [x.aliasName, x.aliasArn, x.keyId]), [
    ['alias/node-a2', aliasArn('alias/node-a2', acct.AccountId), a.keyId],
    ['alias/node-app', aliasArn('alias/node-app', acct.AccountId), a.keyId],
    ['alias/node-b', aliasArn('alias/node-b', acct.AccountId), b.keyId],
  ]);
  l = await kms.listAliases(new Kms.ListAliasesRequest({ pageNumber: 2, pageSize: 2 }));
  checkPage(l, 2, 2, 3);
  assert.deepEqual(l.aliases.alias.map((x) => x.aliasName), ['alias/node-b']);
  l = await kms.listAliases(new Kms.ListAliasesRequest({ pageNumber: 3, pageSize: 2 }));
  checkPage(l, 3, 2, 3);
  assert.deepEqual(l.aliases.alias, []);

  const byKey = await kms.listAliasesByKeyId(new Kms.ListAliasesByKeyIdRequest({ keyId: a.keyId }));
  checkPage(byKey, 1, 10, 2);
  assert.deepEqual(byKey.aliases.alias.map((x) => x.aliasName), ['alias/node-a2', 'alias/node-app']);
  assert.ok(byKey.aliases.alias.every((x) => x.keyId === a.keyId));

  // an alias (or alias ARN) in place of KeyId
  const d = await describe(kms, aliasArn('alias/node-app', acct.AccountId));
  assert.equal(d.keyId, a.keyId);
  const e1 = await kms.encrypt(new Kms.EncryptRequest({ keyId: 'alias/node-app', plaintext: b64('one') }));
  assert.equal(e1.keyId, a.keyId);
  assert.equal(e1.keyVersionId, a.primaryKeyVersion);
  const g = await kms.generateDataKey(new Kms.GenerateDataKeyRequest({ keyId: 'alias/node-app', numberOfBytes: 16 }));
  assert.equal(g.keyId, a.keyId);
  assert.equal(unb64(g.plaintext).length, 16);

  // re-point while in use: both ciphertexts still decrypt
  const u = await kms.updateAlias(new Kms.UpdateAliasRequest({ aliasName: 'alias/node-app', keyId: b.keyId }));
  assert.equal(typeof u.requestId, 'string');
  const e2 = await kms.encrypt(new Kms.EncryptRequest({ keyId: 'alias/node-app', plaintext: b64('two') }));
  assert.equal(e2.keyId, b.keyId);
  for (const [enc, txt, key] of [[e1, 'one', a], [e2, 'two', b]]) {
    const dec = await kms.decrypt(new Kms.DecryptRequest({ ciphertextBlob: enc.ciphertextBlob }));
    assert.equal(unb64(dec.plaintext).toString(), txt);
    assert.equal(dec.keyId, key.keyId);
  }
  const byB = await kms.listAliasesByKeyId(new Kms.ListAliasesByKeyIdRequest({ keyId: b.keyId, pageSize: 1, pageNumber: 2 }));
  checkPage(byB, 2, 1, 2);
  assert.deepEqual(byB.aliases.alias.map((x) => x.aliasName), ['alias/node-b']);

  // delete: the key stays
  const del = await kms.deleteAlias(new Kms.DeleteAliasRequest({ aliasName: 'alias/node-app' }));
  assert.equal(typeof del.requestId, 'string');
  await expectError(describe(kms, 'alias/node-app'), 'Forbidden.AliasNotFound', 404);
  await expectError(kms.encrypt(new Kms.EncryptRequest({ keyId: 'alias/node-app', plaintext: b64('x') })),
    'Forbidden.AliasNotFound', 404);
  await expectError(kms.deleteAlias(new Kms.DeleteAliasRequest({ aliasName: 'alias/node-app' })), 'Forbidden.AliasNotFound', 404);
  assert.equal((await describe(kms, b.keyId)).keyState, 'Enabled');
  l = await kms.listAliases(new Kms.ListAliasesRequest({ pageSize: 100 }));
  checkPage(l, 1, 100, 2);

  // V3 signature view of the raw body
  const body = await callApi(v3Client(server, acct.AccessKeyId, acct.AccessKeySecret), 'ListAliases', { PageSize: 1 });
  assert.deepEqual(body.Aliases, { Alias: [{ AliasName: 'alias/node-a2', AliasArn: aliasArn('alias/node-a2', acct.AccountId), KeyId: a.keyId }] });
  assert.equal(body.TotalCount, 2);
});

test('aliases: error codes', async () => {
  const kms = kmsClient(server);
  const k = await createKey(kms);
  const name = uniq('node-err');
  await kms.createAlias(new Kms.CreateAliasRequest({ aliasName: name, keyId: k.keyId }));
  await expectError(kms.createAlias(new Kms.CreateAliasRequest({ aliasName: name, keyId: k.keyId })), 'AliasAlreadyExists', 400);
  for (const bad of ['no-prefix', 'alias/', 'alias/acs-reserved', 'alias/sp ace', 'alias/' + 'x'.repeat(256)]) {
    await expectError(kms.createAlias(new Kms.CreateAliasRequest({ aliasName: bad, keyId: k.keyId })), 'InvalidParameter', 400);
  }
  await expectError(kms.createAlias(new Kms.CreateAliasRequest({ aliasName: uniq('node'), keyId: name })), 'Unsupported.Alias', 400);
  await expectError(kms.updateAlias(new Kms.UpdateAliasRequest({ aliasName: uniq('ghost'), keyId: k.keyId })), 'Forbidden.AliasNotFound', 404);
  await expectError(kms.enableKey(new Kms.EnableKeyRequest({ keyId: name })), 'Unsupported.Alias', 400);
  await expectError(kms.listKeyVersions(new Kms.ListKeyVersionsRequest({ keyId: name })), 'Unsupported.Alias', 400);
  await expectError(kms.listAliasesByKeyId(new Kms.ListAliasesByKeyIdRequest({ keyId: crypto.randomUUID() })), 'Forbidden.KeyNotFound', 404);
  await expectError(kms.listAliases(new Kms.ListAliasesRequest({ pageSize: 101 })), 'InvalidParameter', 400);
  const doomed = await createKey(kms);
  await kms.scheduleKeyDeletion(new Kms.ScheduleKeyDeletionRequest({ keyId: doomed.keyId, pendingWindowInDays: 7 }));
  await expectError(kms.createAlias(new Kms.CreateAliasRequest({ aliasName: uniq('node'), keyId: doomed.keyId })),
    'Rejected.StateModifiedFailed', 409);
  await expectError(kms.updateAlias(new Kms.UpdateAliasRequest({ aliasName: name, keyId: doomed.keyId })), 'Rejected.PendingDeletion', 409);
});

// ------------------------------------------------------------------------------------------------
// key versions and rotation
// ------------------------------------------------------------------------------------------------
test('key versions: CreateKeyVersion / ListKeyVersions / DescribeKeyVersion', async () => {
  const kms = kmsClient(server);
  const md = await createKey(kms);
  const enc1 = await kms.encrypt(new Kms.EncryptRequest({ keyId: md.keyId, plaintext: b64('v1') }));
  const order = [md.primaryKeyVersion];
  for (let i = 0; i < 3; i++) {
    const r = await kms.createKeyVersion(new Kms.CreateKeyVersionRequest({ keyId: md.keyId }));
    assert.equal(typeof r.requestId, 'string');
    assert.equal(r.keyVersion.keyId, md.keyId);
    assert.match(r.keyVersion.keyVersionId, UUID_RE);
    assert.match(r.keyVersion.creationDate, DATE_RE);
    order.push(r.keyVersion.keyVersionId);
  }
  const d = await describe(kms, md.keyId);
  assert.equal(d.primaryKeyVersion, order[3]);
  assert.match(d.lastRotationDate, DATE_RE);

  const l1 = await kms.listKeyVersions(new Kms.ListKeyVersionsRequest({ keyId: md.keyId, pageSize: 3 }));
  checkPage(l1, 1, 3, 4);
  const l2 = await kms.listKeyVersions(new Kms.ListKeyVersionsRequest({ keyId: md.keyId, pageSize: 3, pageNumber: 2 }));
  checkPage(l2, 2, 3, 4);
  const l3 = await kms.listKeyVersions(new Kms.ListKeyVersionsRequest({ keyId: md.keyId, pageSize: 3, pageNumber: 3 }));
  checkPage(l3, 3, 3, 4);
  assert.deepEqual(l3.keyVersions.keyVersion, []);
  const all = [...l1.keyVersions.keyVersion, ...l2.keyVersions.keyVersion];
  assert.deepEqual(all.map((v) => v.keyVersionId), order, 'ListKeyVersions must be oldest first');
  for (const v of all) {
    assert.equal(v.keyId, md.keyId);
    assert.match(v.creationDate, DATE_RE);
  }

  const dv = await kms.describeKeyVersion(new Kms.DescribeKeyVersionRequest({ keyId: md.keyId, keyVersionId: order[1] }));
  assert.equal(dv.keyVersion.keyId, md.keyId);
  assert.equal(dv.keyVersion.keyVersionId, order[1]);
  assert.equal(dv.keyVersion.creationDate, all[1].creationDate);
  await expectError(kms.describeKeyVersion(new Kms.DescribeKeyVersionRequest({ keyId: md.keyId, keyVersionId: crypto.randomUUID() })),
    'Forbidden.KeyVersionNotFound', 404);

  const enc2 = await kms.encrypt(new Kms.EncryptRequest({ keyId: md.keyId, plaintext: b64('v4') }));
  assert.equal(enc2.keyVersionId, order[3]);
  const dec1 = await kms.decrypt(new Kms.DecryptRequest({ ciphertextBlob: enc1.ciphertextBlob }));
  assert.equal(unb64(dec1.plaintext).toString(), 'v1');
  assert.equal(dec1.keyVersionId, order[0]);

  await kms.disableKey(new Kms.DisableKeyRequest({ keyId: md.keyId }));
  await expectError(kms.createKeyVersion(new Kms.CreateKeyVersionRequest({ keyId: md.keyId })), 'Rejected.Disabled', 409);
});

test('rotation: CreateKey / UpdateRotationPolicy settings and the scheduler (test clock)', async () => {
  const srv = new KmsServer();
  await srv.start();
  try {
    const kms = kmsClient(srv);
    // CreateKey with rotation
    const r = await createKey(kms, { enableAutomaticRotation: true, rotationInterval: '30d' });
    assert.equal(r.automaticRotation, 'Enabled');
    assert.equal(r.rotationInterval, '2592000s');
    assert.equal(secs(r.nextRotationDate) - secs(r.lastRotationDate), 30 * DAY);
    await expectError(kms.createKey(new Kms.CreateKeyRequest({ enableAutomaticRotation: true, rotationInterval: '6d' })),
      'InvalidParameter', 400);
    await expectError(kms.createKey(new Kms.CreateKeyRequest({ enableAutomaticRotation: true })), 'MissingParameter', 400);
    await expectError(kms.createKey(new Kms.CreateKeyRequest({ origin: 'EXTERNAL', enableAutomaticRotation: true, rotationInterval: '30d' })),
      'Unsupported.Origin', 400);

    // UpdateRotationPolicy on a plain key
    const md = await createKey(kms);
    assert.equal(md.automaticRotation, 'Disabled');
    const enc1 = await kms.encrypt(new Kms.EncryptRequest({ keyId: md.keyId, plaintext: b64('before') }));
    const u = await kms.updateRotationPolicy(new Kms.UpdateRotationPolicyRequest({
      keyId: md.keyId, enableAutomaticRotation: true, rotationInterval: '7d',
    }));
    assert.equal(typeof u.requestId, 'string');
    let d = await describe(kms, md.keyId);
    assert.equal(d.automaticRotation, 'Enabled');
    assert.equal(d.rotationInterval, '604800s');
    assert.equal(secs(d.nextRotationDate) - secs(d.lastRotationDate), 7 * DAY);
    await expectError(kms.updateRotationPolicy(new Kms.UpdateRotationPolicyRequest({
      keyId: md.keyId, enableAutomaticRotation: true, rotationInterval: '731d',
    })), 'InvalidParameter', 400);

    await srv.advanceClock(7 * DAY - 60);
    let v = await kms.listKeyVersions(new Kms.ListKeyVersionsRequest({ keyId: md.keyId }));
    checkPage(v, 1, 10, 1);
    await srv.advanceClock(120);
    v = await kms.listKeyVersions(new Kms.ListKeyVersionsRequest({ keyId: md.keyId }));
    checkPage(v, 1, 10, 2);
    assert.equal(v.keyVersions.keyVersion[0].keyVersionId, md.primaryKeyVersion);
    d = await describe(kms, md.keyId);
    assert.notEqual(d.primaryKeyVersion, md.primaryKeyVersion);
    assert.equal(d.primaryKeyVersion, v.keyVersions.keyVersion[1].keyVersionId);
    assert.equal(secs(d.nextRotationDate) - secs(d.lastRotationDate), 7 * DAY);
    assert.ok(Math.abs(secs(d.lastRotationDate) - srv.now().getTime() / 1000) < 150, d.lastRotationDate);

    const enc2 = await kms.encrypt(new Kms.EncryptRequest({ keyId: md.keyId, plaintext: b64('after') }));
    assert.equal(enc2.keyVersionId, d.primaryKeyVersion);
    for (const [enc, txt, ver] of [[enc1, 'before', md.primaryKeyVersion], [enc2, 'after', d.primaryKeyVersion]]) {
      const dec = await kms.decrypt(new Kms.DecryptRequest({ ciphertextBlob: enc.ciphertextBlob }));
      assert.equal(unb64(dec.plaintext).toString(), txt);
      assert.equal(dec.keyVersionId, ver);
    }

    // disabled -> Suspended and not rotated
    await kms.disableKey(new Kms.DisableKeyRequest({ keyId: md.keyId }));
    assert.equal((await describe(kms, md.keyId)).automaticRotation, 'Suspended');
    await srv.advanceClock(7 * DAY + 30);
    v = await kms.listKeyVersions(new Kms.ListKeyVersionsRequest({ keyId: md.keyId }));
    assert.equal(v.totalCount, 2);
    await expectError(kms.updateRotationPolicy(new Kms.UpdateRotationPolicyRequest({ keyId: md.keyId, enableAutomaticRotation: false })),
      'Rejected.Disabled', 409);
    await kms.enableKey(new Kms.EnableKeyRequest({ keyId: md.keyId }));
    await kms.updateRotationPolicy(new Kms.UpdateRotationPolicyRequest({ keyId: md.keyId, enableAutomaticRotation: false }));
    d = await describe(kms, md.keyId);
    assert.equal(d.automaticRotation, 'Disabled');
    assert.equal(d.rotationInterval, '');
    assert.equal(d.nextRotationDate, '');
  } finally {
    await srv.cleanup();
  }
});

// ------------------------------------------------------------------------------------------------
// tags
// ------------------------------------------------------------------------------------------------
test('tags: TagResource / ListResourceTags / UntagResource', async () => {
  const kms = kmsClient(server);
  const md = await createKey(kms);
  const r = await kms.tagResource(new Kms.TagResourceRequest({
    keyId: md.keyId, tags: JSON.stringify([{ TagKey: 'team', TagValue: 'node' }, { TagKey: 'env', TagValue: 'dev' }]),
  }));
  assert.equal(typeof r.requestId, 'string');
  let l = await kms.listResourceTags(new Kms.ListResourceTagsRequest({ keyId: md.keyId }));
  assert.deepEqual(l.tags.tag.map((t) => [t.keyId, t.tagKey, t.tagValue]), [[md.keyId, 'env', 'dev'], [md.keyId, 'team', 'node']]);
  await kms.tagResource(new Kms.TagResourceRequest({ keyId: md.keyId, tags: '[{"TagKey":"env","TagValue":"prod"},{"TagKey":"a","TagValue":"1"}]' }));
  l = await kms.listResourceTags(new Kms.ListResourceTagsRequest({ keyId: md.arn }));
  assert.deepEqual(l.tags.tag.map((t) => [t.tagKey, t.tagValue]), [['a', '1'], ['env', 'prod'], ['team', 'node']]);
  const u = await kms.untagResource(new Kms.UntagResourceRequest({ keyId: md.keyId, tagKeys: '["a"]' }));
  assert.equal(typeof u.requestId, 'string');
  await kms.tagResource(new Kms.TagResourceRequest({ keyId: md.keyId, tags: '[{"TagKey":"x","TagValue":"1"}]' }));
  await kms.untagResource(new Kms.UntagResourceRequest({ keyId: md.keyId, tagKeys: 'team,x' }));
  l = await kms.listResourceTags(new Kms.ListResourceTagsRequest({ keyId: md.keyId }));
  assert.deepEqual(l.tags.tag.map((t) => [t.tagKey, t.tagValue]), [['env', 'prod']]);

  await expectError(kms.tagResource(new Kms.TagResourceRequest({ keyId: md.keyId, tags: '[{"TagKey":"aliyun-x","TagValue":"v"}]' })),
    'InvalidParameter', 400);
  // Secrets are taggable since issue 18: an unknown secret is not found (secrets.test.mjs).
  await expectError(kms.tagResource(new Kms.TagResourceRequest({ secretName: 's', tags: '[{"TagKey":"k","TagValue":"v"}]' })),
    'Forbidden.ResourceNotFound', 404);
  const many = JSON.stringify(Array.from({ length: 20 }, (_, i) => ({ TagKey: `k${i}`, TagValue: 'v' })));
  await expectError(kms.tagResource(new Kms.TagResourceRequest({ keyId: md.keyId, tags: many })), 'Rejected.LimitExceeded', 400);
  await kms.scheduleKeyDeletion(new Kms.ScheduleKeyDeletionRequest({ keyId: md.keyId, pendingWindowInDays: 7 }));
  await expectError(kms.untagResource(new Kms.UntagResourceRequest({ keyId: md.keyId, tagKeys: '["env"]' })),
    'Rejected.PendingDeletion', 409);

  // CreateKey Tags (not modelled by this SDK version -> openapi-client)
  const ck = await callApi(v3Client(server), 'CreateKey', { Tags: JSON.stringify([{ TagKey: 'born', TagValue: 'tagged' }]) });
  l = await kms.listResourceTags(new Kms.ListResourceTagsRequest({ keyId: ck.KeyMetadata.KeyId }));
  assert.deepEqual(l.tags.tag.map((t) => [t.tagKey, t.tagValue]), [['born', 'tagged']]);
});

test('tags: TagResources / ListTagResources / UntagResources with ResourceId and Tag arrays', async () => {
  const { kms, v3, v2 } = account();
  const empty = await callApi(v3, 'ListTagResources', { RegionId: REGION, ResourceType: 'key' });
  assert.deepEqual(empty.TagResources, { TagResource: [] });
  assert.equal(empty.NextToken, '');

  const keys = [];
  for (let i = 0; i < 11; i++) keys.push((await createKey(kms)).keyId);
  keys.sort();
  const tags = Array.from({ length: 20 }, (_, i) => ({ Key: `t${String(i).padStart(2, '0')}`, Value: `v${i}` }));
  const tr = await callApi(v3, 'TagResources', { RegionId: REGION, ResourceType: 'key', ResourceId: keys, Tag: tags });
  assert.equal(typeof tr.RequestId, 'string');
  const expected = keys.flatMap((k) => tags.map((t) => ({ ResourceId: k, ResourceType: 'key', TagKey: t.Key, TagValue: t.Value })));

  const p1 = await callApi(v3, 'ListTagResources', { RegionId: REGION, ResourceType: 'key' });
  assert.equal(p1.TagResources.TagResource.length, 200);
  assert.notEqual(p1.NextToken, '');
  const p2 = await callApi(v2, 'ListTagResources', { RegionId: REGION, ResourceType: 'key', NextToken: p1.NextToken });
  assert.equal(p2.NextToken, '');
  assert.deepEqual([...p1.TagResources.TagResource, ...p2.TagResources.TagResource], expected);
  await expectError(callApi(v3, 'ListTagResources', { RegionId: REGION, ResourceType: 'key', NextToken: 'garbage' }),
    'InvalidParameter', 400);
  // ResourceType=secret lists secrets' tags since issue 18 (none in this account); others are refused.
  assert.deepEqual((await callApi(v3, 'ListTagResources', { RegionId: REGION, ResourceType: 'secret' })).TagResources.TagResource, []);
  await expectError(callApi(v3, 'ListTagResources', { RegionId: REGION, ResourceType: 'certificate' }), 'InvalidParameter', 400);

  // filters
  const f = await callApi(v3, 'ListTagResources', {
    RegionId: REGION, ResourceType: 'key', ResourceId: [keys[3]], Tag: [{ Key: 't05', Value: 'v5' }],
  });
  assert.deepEqual(f.TagResources.TagResource, [{ ResourceId: keys[3], ResourceType: 'key', TagKey: 't05', TagValue: 'v5' }]);
  assert.equal(f.NextToken, '');
  const none = await callApi(v3, 'ListTagResources', { RegionId: REGION, ResourceType: 'key', Tag: [{ Key: 't05', Value: 'other' }] });
  assert.deepEqual(none.TagResources.TagResource, []);

  // the single-key view agrees (typed model)
  const l = await kms.listResourceTags(new Kms.ListResourceTagsRequest({ keyId: keys[0] }));
  assert.equal(l.tags.tag.length, 20);

  // UntagResources by TagKey.N, then All=true
  await callApi(v3, 'UntagResources', { RegionId: REGION, ResourceType: 'key', ResourceId: keys.slice(0, 10), TagKey: tags.slice(1).map((t) => t.Key) });
  let rows = await callApi(v3, 'ListTagResources', { RegionId: REGION, ResourceType: 'key' });
  assert.equal(rows.NextToken, '');
  assert.deepEqual(rows.TagResources.TagResource, [
    ...keys.slice(0, 10).map((k) => ({ ResourceId: k, ResourceType: 'key', TagKey: 't00', TagValue: 'v0' })),
    ...expected.slice(200),
  ]);
  await callApi(v2, 'UntagResources', { RegionId: REGION, ResourceType: 'key', ResourceId: keys, All: true });
  rows = await callApi(v3, 'ListTagResources', { RegionId: REGION, ResourceType: 'key' });
  assert.deepEqual(rows.TagResources.TagResource, []);
  assert.equal(rows.NextToken, '');
});
