// Secrets Manager (issue 18) with the official Node SDKs:
//
//  * @alicloud/kms20160120 1.2.0 (rpc-client, RPC v1 HMAC-SHA1): typed models for CreateSecret,
//    GetSecretValue, PutSecretValue, DescribeSecret, ListSecretVersionIds, DeleteSecret,
//    RestoreSecret (SecretData travels in the query)
//  * @alicloud/openapi-client callApi (ACS3-HMAC-SHA256) for UpdateSecretVersionStage and
//    GetRandomPassword, with SecretData of PutSecretValue in a form body as the Tea SDKs send it.
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
