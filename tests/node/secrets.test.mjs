// Secrets Manager (issue 18) with the official Node SDKs:
//
//  * @alicloud/kms20160120 1.2.0 (rpc-client, RPC v1 HMAC-SHA1): typed models for CreateSecret,
//    GetSecretValue, PutSecretValue, DescribeSecret, ListSecretVersionIds, DeleteSecret,
//    RestoreSecret (SecretData travels in the query)
//  * @alicloud/openapi-client callApi (ACS3-HMAC-SHA256) for UpdateSecretVersionStage and
//    GetRandomPassword, with SecretData of PutSecretValue in a form body as the Tea SDKs send it.
//  * below, every issue-18 action once more through the typed models (UpdateSecret, ListSecrets,
//    TagResource/UntagResource with SecretName, GetRandomPassword, UpdateSecretVersionStage too),
//    and callApi for what 1.2.0 does not model: RotateSecret, UpdateSecretRotationPolicy,
//    TagResources / UntagResources / ListTagResources, ListSecrets Filters.
//
// Run:  node --test tests/node/      (needs target/debug/kms, or KMS_BIN)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';

import { KmsServer, REGION } from './server.mjs';

const require = createRequire(import.meta.url);
const Kms = require('@alicloud/kms20160120');
const KmsClient = Kms.default;
const { Config: RpcConfig } = require('@alicloud/rpc-client');
const OpenApi = require('@alicloud/openapi-client');
const OpenApiClient = OpenApi.default;
const OpenApiUtil = require('@alicloud/openapi-util').default;
const Util = require('@alicloud/tea-util');

const DATE_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const uniq = (p) => `${p}-${crypto.randomBytes(6).toString('hex')}`;

let server;
let kms;
let v3;

async function callApi(action, query = {}, body = undefined) {
  const params = new OpenApi.Params({
    action, version: '2016-01-20', protocol: 'HTTP', pathname: '/', method: 'POST', authType: 'AK',
    style: 'RPC', reqBodyType: 'formData', bodyType: 'json',
  });
  const request = new OpenApi.OpenApiRequest({ query: OpenApiUtil.query(query), body });
  const resp = await v3.callApi(params, request, new Util.RuntimeOptions({}));
  assert.equal(resp.statusCode, 200);
  return resp.body;
}

async function expectError(promise, code, status) {
  await assert.rejects(promise, (err) => {
    assert.ok(err.data, `no error data on ${err}`);
    assert.equal(err.data.Code, code, `expected ${code}, got ${JSON.stringify(err.data)}`);
    assert.match(err.message, new RegExp(`code: ${status},`), err.message);
    return true;
  });
}

before(async () => {
  server = new KmsServer();
  await server.start();
  kms = new KmsClient(new RpcConfig({
    accessKeyId: server.ak, accessKeySecret: server.sk, regionId: REGION, endpoint: server.endpoint, protocol: 'http',
  }));
  v3 = new OpenApiClient(new OpenApi.Config({
    accessKeyId: server.ak, accessKeySecret: server.sk, regionId: REGION, endpoint: server.endpoint, protocol: 'http',
  }));
});

after(async () => {
  if (server) await server.cleanup();
});

test('secrets: create, get, put, stages, describe, delete and restore', async () => {
  const name = uniq('node');
  const created = await kms.createSecret(new Kms.CreateSecretRequest({
    secretName: name, versionId: 'v1', secretData: 'first value', description: 'from node',
    tags: JSON.stringify([{ TagKey: 'lang', TagValue: 'js' }]),
  }));
  assert.equal(created.secretName, name);
  assert.equal(created.versionId, 'v1');
  assert.match(created.arn, new RegExp(`^acs:kms:${REGION}:\\d+:secret/${name}$`));

  let got = await kms.getSecretValue(new Kms.GetSecretValueRequest({ secretName: name }));
  assert.equal(got.secretData, 'first value');
  assert.equal(got.secretDataType, 'text');
  assert.deepEqual(got.versionStages.versionStage, ['ACSCurrent']);
  assert.match(got.createTime, DATE_RE);

  // PutSecretValue through the V3 signer with SecretData in the form body.
  const put = await callApi('PutSecretValue', { SecretName: name, VersionId: 'v2' }, { SecretData: 'second value' });
  assert.deepEqual(put.VersionStages.VersionStage, ['ACSCurrent']);
  got = await kms.getSecretValue(new Kms.GetSecretValueRequest({ secretName: name }));
  assert.equal(got.secretData, 'second value');
  got = await kms.getSecretValue(new Kms.GetSecretValueRequest({ secretName: name, versionStage: 'ACSPrevious' }));
  assert.equal(got.versionId, 'v1');

  await kms.putSecretValue(new Kms.PutSecretValueRequest({
    secretName: name, versionId: 'v3', secretData: 'pending', versionStages: JSON.stringify(['Pending']),
  }));
  await callApi('UpdateSecretVersionStage', { SecretName: name, VersionStage: 'ACSCurrent', MoveToVersion: 'v3' });
  const versions = await kms.listSecretVersionIds(new Kms.ListSecretVersionIdsRequest({ secretName: name }));
  assert.equal(versions.totalCount, 2);
  const stages = Object.fromEntries(versions.versionIds.versionId.map(
    (v) => [v.versionId, v.versionStages.versionStage.slice().sort()]));
  assert.deepEqual(stages, { v3: ['ACSCurrent', 'Pending'], v2: ['ACSPrevious'] });

  const d = await kms.describeSecret(new Kms.DescribeSecretRequest({ secretName: name }));
  assert.equal(d.description, 'from node');
  assert.equal(d.secretName, name);

  const del = await kms.deleteSecret(new Kms.DeleteSecretRequest({ secretName: name, recoveryWindowInDays: '7' }));
  assert.match(del.plannedDeleteTime, DATE_RE);
  await expectError(kms.getSecretValue(new Kms.GetSecretValueRequest({ secretName: name })),
    'Rejected.ResourceInDeleteWindow', 409);
  await kms.restoreSecret(new Kms.RestoreSecretRequest({ secretName: name }));
  got = await kms.getSecretValue(new Kms.GetSecretValueRequest({ secretName: name }));
  assert.equal(got.secretData, 'pending');

  await kms.deleteSecret(new Kms.DeleteSecretRequest({ secretName: name, forceDeleteWithoutRecovery: 'true' }));
  await expectError(kms.getSecretValue(new Kms.GetSecretValueRequest({ secretName: name })),
    'Forbidden.ResourceNotFound', 404);
  // SDK 1.2.0 does not model SecretType: through callApi.
  await expectError(callApi('CreateSecret', { SecretName: uniq('rds'), VersionId: 'v1', SecretType: 'Rds' },
    { SecretData: 'x' }), 'InvalidParameter', 400);
});

test('secrets: GetRandomPassword', async () => {
  const r = await callApi('GetRandomPassword', { PasswordLength: '20', ExcludePunctuation: 'true' });
  assert.match(r.RandomPassword, /^[A-Za-z0-9]{20}$/);
});

// ------------------------------------------------------------------------------------------
// Every issue-18 action through the typed models of @alicloud/kms20160120 1.2.0 where it has
// one. That version has no model for RotateSecret, UpdateSecretRotationPolicy, TagResources,
// UntagResources or ListTagResources, and its ListSecrets / GetSecretValue requests carry no
// Filters / FetchExtendedConfig: those go through openapi-client's generic callApi.

const b64 = (s) => Buffer.from(s).toString('base64');
const stageMap = (body) => Object.fromEntries(body.versionIds.versionId.map(
  (v) => [v.versionId, v.versionStages.versionStage.slice().sort()]));

test('secrets: typed CreateSecret (binary, customer key), GetSecretValue by VersionId and VersionStage, DescribeSecret, UpdateSecret, ListSecrets', async () => {
  const keyId = (await kms.createKey(new Kms.CreateKeyRequest({}))).keyMetadata.keyId;
  const name = uniq('typed');
  const bin = crypto.randomBytes(40).toString('base64');
  const created = await kms.createSecret(new Kms.CreateSecretRequest({
    secretName: name, versionId: 'b1', secretData: bin, secretDataType: 'binary', encryptionKeyId: keyId,
    description: 'binary one', tags: JSON.stringify([{ TagKey: 'team', TagValue: 'core' }]),
  }));
  assert.deepEqual([created.secretName, created.versionId, created.arn],
    [name, 'b1', `acs:kms:${REGION}:${server.accountId}:secret/${name}`]);

  const byId = await kms.getSecretValue(new Kms.GetSecretValueRequest({ secretName: name, versionId: 'b1' }));
  assert.deepEqual([byId.secretName, byId.versionId, byId.secretData, byId.secretDataType],
    [name, 'b1', bin, 'binary']);
  assert.deepEqual(byId.versionStages.versionStage, ['ACSCurrent']);
  const byStage = await kms.getSecretValue(new Kms.GetSecretValueRequest({ secretName: name, versionStage: 'ACSCurrent' }));
  assert.equal(byStage.versionId, 'b1');
  // A stage no version holds, and a VersionId with a stage it does not hold.
  await expectError(kms.getSecretValue(new Kms.GetSecretValueRequest({ secretName: name, versionStage: 'Nope' })),
    'Forbidden.ResourceNotFound', 404);
  await expectError(kms.getSecretValue(new Kms.GetSecretValueRequest({
    secretName: name, versionId: 'b1', versionStage: 'ACSPrevious',
  })), 'Forbidden.ResourceNotFound', 404);

  let d = await kms.describeSecret(new Kms.DescribeSecretRequest({ secretName: name, fetchTags: 'true' }));
  assert.deepEqual([d.secretName, d.arn, d.encryptionKeyId, d.description], [name, created.arn, keyId, 'binary one']);
  assert.match(d.createTime, DATE_RE);
  assert.match(d.updateTime, DATE_RE);
  assert.equal(d.plannedDeleteTime ?? '', '');
  assert.deepEqual(d.tags.tag.map((t) => [t.tagKey, t.tagValue]), [['team', 'core']]);

  const upd = await kms.updateSecret(new Kms.UpdateSecretRequest({ secretName: name, description: 'changed' }));
  assert.equal(upd.secretName, name);
  d = await kms.describeSecret(new Kms.DescribeSecretRequest({ secretName: name }));
  assert.equal(d.description, 'changed');

  const listed = await kms.listSecrets(new Kms.ListSecretsRequest({ fetchTags: 'true', pageNumber: 1, pageSize: 100 }));
  assert.deepEqual([listed.pageNumber, listed.pageSize], [1, 100]);
  assert.equal(typeof listed.totalCount, 'number');
  const entry = listed.secretList.secret.find((s) => s.secretName === name);
  assert.ok(entry, `${name} not listed`);
  assert.match(entry.createTime, DATE_RE);
  assert.deepEqual(entry.tags.tag.map((t) => [t.tagKey, t.tagValue]), [['team', 'core']]);
  // Filters: not in the 1.2.0 model.
  const filtered = await callApi('ListSecrets', {
    Filters: JSON.stringify([{ Key: 'SecretName', Values: [name] }]), FetchTags: 'true',
  });
  assert.equal(filtered.TotalCount, 1);
  assert.deepEqual(filtered.SecretList.Secret.map((s) => [s.SecretName, s.SecretType]), [[name, 'Generic']]);
  await expectError(callApi('ListSecrets', { Filters: '[{"Key":"Bad","Values":["x"]}]' }), 'InvalidParameter', 400);
});

test('secrets: typed PutSecretValue, ListSecretVersionIds (IncludeDeprecated), UpdateSecretVersionStage', async () => {
  const name = uniq('stages');
  await kms.createSecret(new Kms.CreateSecretRequest({ secretName: name, versionId: 'v1', secretData: 'one' }));
  for (const v of ['v2', 'v3']) {
    const put = await kms.putSecretValue(new Kms.PutSecretValueRequest({ secretName: name, versionId: v, secretData: `data ${v}` }));
    assert.deepEqual([put.secretName, put.versionId, put.versionStages.versionStage], [name, v, ['ACSCurrent']]);
  }
  const staged = await kms.putSecretValue(new Kms.PutSecretValueRequest({
    secretName: name, versionId: 'v4', secretData: 'four', versionStages: JSON.stringify(['Staging']),
  }));
  assert.deepEqual(staged.versionStages.versionStage, ['Staging']);

  let versions = await kms.listSecretVersionIds(new Kms.ListSecretVersionIdsRequest({ secretName: name }));
  assert.deepEqual([versions.secretName, versions.totalCount], [name, 3]);
  assert.deepEqual(stageMap(versions), { v4: ['Staging'], v3: ['ACSCurrent'], v2: ['ACSPrevious'] });
  versions = await kms.listSecretVersionIds(new Kms.ListSecretVersionIdsRequest({
    secretName: name, includeDeprecated: 'true', pageNumber: 1, pageSize: 10,
  }));
  assert.deepEqual([versions.totalCount, versions.pageNumber, versions.pageSize], [4, 1, 10]);
  assert.deepEqual(stageMap(versions).v1 ?? 'missing', []);
  for (const v of versions.versionIds.versionId) assert.match(v.createTime, DATE_RE);

  let r = await kms.updateSecretVersionStage(new Kms.UpdateSecretVersionStageRequest({
    secretName: name, versionStage: 'ACSCurrent', moveToVersion: 'v4', removeFromVersion: 'v3',
  }));
  assert.equal(r.secretName, name);
  r = await kms.updateSecretVersionStage(new Kms.UpdateSecretVersionStageRequest({
    secretName: name, versionStage: 'Staging', removeFromVersion: 'v4',
  }));
  versions = await kms.listSecretVersionIds(new Kms.ListSecretVersionIdsRequest({ secretName: name }));
  assert.deepEqual(stageMap(versions), { v4: ['ACSCurrent'], v3: ['ACSPrevious'] });
  assert.equal((await kms.getSecretValue(new Kms.GetSecretValueRequest({ secretName: name }))).secretData, 'four');
  await expectError(kms.updateSecretVersionStage(new Kms.UpdateSecretVersionStageRequest({
    secretName: name, versionStage: 'ACSCurrent', removeFromVersion: 'v4',
  })), 'InvalidParameter', 400);
  // An existing version with another value (the same value is a no-op); a taken name.
  await expectError(kms.putSecretValue(new Kms.PutSecretValueRequest({ secretName: name, versionId: 'v1', secretData: 'other' })),
    'InvalidParameter', 400);
  await expectError(kms.createSecret(new Kms.CreateSecretRequest({ secretName: name, versionId: 'v1', secretData: 'one' })),
    'Rejected.ResourceExist', 409);
});

test('secrets: typed DeleteSecret with RecoveryWindowInDays and ForceDeleteWithoutRecovery, RestoreSecret', async () => {
  const name = uniq('del');
  await kms.createSecret(new Kms.CreateSecretRequest({ secretName: name, versionId: 'v1', secretData: 'keep me' }));
  await expectError(kms.deleteSecret(new Kms.DeleteSecretRequest({ secretName: name, recoveryWindowInDays: '6' })),
    'InvalidParameter', 400);
  const del = await kms.deleteSecret(new Kms.DeleteSecretRequest({ secretName: name, recoveryWindowInDays: '30' }));
  assert.equal(del.secretName, name);
  const planned = Date.parse(del.plannedDeleteTime);
  assert.ok(Math.abs(planned - server.now().getTime() - 30 * 86400e3) < 120e3, del.plannedDeleteTime);
  const d = await kms.describeSecret(new Kms.DescribeSecretRequest({ secretName: name }));
  assert.equal(d.plannedDeleteTime, del.plannedDeleteTime);
  await expectError(kms.putSecretValue(new Kms.PutSecretValueRequest({ secretName: name, versionId: 'v2', secretData: 'x' })),
    'Rejected.ResourceInDeleteWindow', 409);
  const restored = await kms.restoreSecret(new Kms.RestoreSecretRequest({ secretName: name }));
  assert.equal(restored.secretName, name);
  assert.equal((await kms.describeSecret(new Kms.DescribeSecretRequest({ secretName: name }))).plannedDeleteTime ?? '', '');
  assert.equal((await kms.getSecretValue(new Kms.GetSecretValueRequest({ secretName: name }))).secretData, 'keep me');
  await expectError(kms.restoreSecret(new Kms.RestoreSecretRequest({ secretName: name })), 'InvalidParameter', 400);

  const forced = await kms.deleteSecret(new Kms.DeleteSecretRequest({ secretName: name, forceDeleteWithoutRecovery: 'true' }));
  assert.equal(forced.secretName, name);
  await expectError(kms.describeSecret(new Kms.DescribeSecretRequest({ secretName: name })), 'Forbidden.ResourceNotFound', 404);
  // The name is free again at once.
  const again = await kms.createSecret(new Kms.CreateSecretRequest({ secretName: name, versionId: 'v1', secretData: 'new' }));
  assert.equal(again.versionId, 'v1');
});

test('secrets: tags through typed TagResource/UntagResource (SecretName) and callApi TagResources/ListTagResources/UntagResources', async () => {
  const a = uniq('tag-a');
  const b = uniq('tag-b');
  for (const n of [a, b]) await kms.createSecret(new Kms.CreateSecretRequest({ secretName: n, versionId: 'v1', secretData: 'x' }));
  const tagsOf = async (n) => (await kms.describeSecret(new Kms.DescribeSecretRequest({ secretName: n, fetchTags: 'true' })))
    .tags.tag.map((t) => [t.tagKey, t.tagValue]);

  await kms.tagResource(new Kms.TagResourceRequest({
    secretName: a, tags: JSON.stringify([{ TagKey: 'env', TagValue: 'prod' }, { TagKey: 'team', TagValue: 'x' }]),
  }));
  assert.deepEqual(await tagsOf(a), [['env', 'prod'], ['team', 'x']]);
  await kms.untagResource(new Kms.UntagResourceRequest({ secretName: a, tagKeys: JSON.stringify(['team']) }));
  assert.deepEqual(await tagsOf(a), [['env', 'prod']]);
  await expectError(kms.tagResource(new Kms.TagResourceRequest({
    secretName: uniq('missing'), tags: JSON.stringify([{ TagKey: 'k', TagValue: 'v' }]),
  })), 'Forbidden.ResourceNotFound', 404);

  await callApi('TagResources', {
    RegionId: REGION, ResourceType: 'secret', 'ResourceId.1': b, 'Tag.1.Key': 'owner', 'Tag.1.Value': 'node',
  });
  const rows = (await callApi('ListTagResources', { RegionId: REGION, ResourceType: 'secret', 'ResourceId.1': b }))
    .TagResources.TagResource;
  assert.deepEqual(rows.map((r) => [r.ResourceId, r.ResourceType, r.TagKey, r.TagValue]), [[b, 'secret', 'owner', 'node']]);
  await callApi('UntagResources', { RegionId: REGION, ResourceType: 'secret', 'ResourceId.1': b, 'TagKey.1': 'owner' });
  assert.deepEqual(await tagsOf(b), []);
});

test('secrets: typed GetRandomPassword; RotateSecret and UpdateSecretRotationPolicy are refused for Generic secrets', async () => {
  const pw = await kms.getRandomPassword(new Kms.GetRandomPasswordRequest({
    passwordLength: '64', excludeCharacters: 'abc', excludePunctuation: 'true', requireEachIncludedType: 'true',
  }));
  assert.equal(pw.randomPassword.length, 64);
  assert.match(pw.randomPassword, /^[A-Za-z0-9]+$/);
  assert.doesNotMatch(pw.randomPassword, /[abc]/);
  assert.match(pw.randomPassword, /[A-Z]/);
  assert.match(pw.randomPassword, /[0-9]/);
  assert.equal((await kms.getRandomPassword(new Kms.GetRandomPasswordRequest({}))).randomPassword.length, 32);
  await expectError(kms.getRandomPassword(new Kms.GetRandomPasswordRequest({ passwordLength: '7' })), 'InvalidParameter', 400);

  // No model in SDK 1.2.0 for either rotation action: generic callApi.
  const name = uniq('rot');
  await kms.createSecret(new Kms.CreateSecretRequest({ secretName: name, versionId: 'v1', secretData: 'x' }));
  await expectError(callApi('RotateSecret', { SecretName: name, VersionId: 'v9' }), 'Rejected.UnsupportedOperation', 400);
  await expectError(callApi('UpdateSecretRotationPolicy', {
    SecretName: name, EnableAutomaticRotation: 'true', RotationInterval: '7d',
  }), 'Rejected.UnsupportedOperation', 400);
  const off = await callApi('UpdateSecretRotationPolicy', { SecretName: name, EnableAutomaticRotation: 'false' });
  assert.equal(off.SecretName, name);
  await expectError(callApi('RotateSecret', { SecretName: uniq('missing'), VersionId: 'v9' }), 'Forbidden.ResourceNotFound', 404);
});
