// STS with the official Node SDK (@alicloud/sts20150401, ACS3-HMAC-SHA256): a RAM user set up
// through RAM (openapi-client callApi, Version 2015-05-01) assumes a role, and the temporary
// credentials (securityToken) encrypt with the one key the role may use.
//
// Run:  cd tests/node && npm ci && node --test
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

import { KmsServer, ACCOUNT_ID, REGION } from './server.mjs';

const require = createRequire(import.meta.url);
const Sts = require('@alicloud/sts20150401');
const StsClient = Sts.default;
const CoreConfig = require('@alicloud/openapi-core').$OpenApiUtil.Config;
const OpenApi = require('@alicloud/openapi-client');
const OpenApiClient = OpenApi.default;
const OpenApiUtil = require('@alicloud/openapi-util').default;
const Util = require('@alicloud/tea-util');

let server;

function client(ak, sk, token) {
  return new OpenApiClient(new OpenApi.Config({
    accessKeyId: ak, accessKeySecret: sk, securityToken: token, regionId: REGION,
    endpoint: server.endpoint, protocol: 'http',
  }));
}

async function call(c, version, action, query = {}) {
  const params = new OpenApi.Params({
    action, version, protocol: 'HTTP', pathname: '/', method: 'POST', authType: 'AK',
    style: 'RPC', reqBodyType: 'formData', bodyType: 'json',
  });
  const request = new OpenApi.OpenApiRequest({ query: OpenApiUtil.query(query) });
  const resp = await c.callApi(params, request, new Util.RuntimeOptions({}));
  assert.equal(resp.statusCode, 200);
  return resp.body;
}

before(async () => {
  server = new KmsServer();
  await server.start();
});

after(async () => {
  await server?.stop();
});

test('AssumeRole with @alicloud/sts20150401, then KMS with the STS credentials', async () => {
  const root = client(server.ak, server.sk);
  const ram = (action, q) => call(root, '2015-05-01', action, q);
  const key = (await call(root, '2016-01-20', 'CreateKey')).KeyMetadata.KeyId;
  await ram('CreateUser', { UserName: 'node-app' });
  await ram('AttachPolicyToUser', { UserName: 'node-app', PolicyType: 'System', PolicyName: 'AliyunSTSAssumeRoleAccess' });
  const ak = (await ram('CreateAccessKey', { UserName: 'node-app' })).AccessKey;
  const trust = JSON.stringify({ Version: '1', Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Principal: { RAM: [`acs:ram::${ACCOUNT_ID}:root`] } }] });
  await ram('CreateRole', { RoleName: 'node-role', AssumeRolePolicyDocument: trust });
  const doc = JSON.stringify({ Version: '1', Statement: [{ Effect: 'Allow', Action: 'kms:Encrypt', Resource: `acs:kms:*:*:key/${key}` }] });
  await ram('CreatePolicy', { PolicyName: 'node-enc', PolicyDocument: doc });
  await ram('AttachPolicyToRole', { RoleName: 'node-role', PolicyType: 'Custom', PolicyName: 'node-enc' });

  const sts = new StsClient(new CoreConfig({
    accessKeyId: ak.AccessKeyId, accessKeySecret: ak.AccessKeySecret, regionId: REGION,
    endpoint: server.endpoint, protocol: 'http',
  }));
  const who = await sts.getCallerIdentity();
  assert.equal(who.body.identityType, 'RAMUser');
  assert.equal(who.body.arn, `acs:ram::${ACCOUNT_ID}:user/node-app`);
  const assumed = await sts.assumeRole(new Sts.AssumeRoleRequest({
    roleArn: `acs:ram::${ACCOUNT_ID}:role/node-role`, roleSessionName: 'node-session', durationSeconds: 900,
  }));
  const cred = assumed.body.credentials;
  assert.match(cred.accessKeyId, /^STS\./);
  assert.match(cred.expiration, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
  assert.equal(assumed.body.assumedRoleUser.arn, `acs:ram::${ACCOUNT_ID}:role/node-role/node-session`);

  const temp = client(cred.accessKeyId, cred.accessKeySecret, cred.securityToken);
  const enc = await call(temp, '2016-01-20', 'Encrypt', { KeyId: key, Plaintext: Buffer.from('hi').toString('base64') });
  assert.equal(enc.KeyId, key);
  await assert.rejects(call(temp, '2016-01-20', 'DescribeKey', { KeyId: key }), (err) => {
    assert.equal(err.data.Code, 'Forbidden.NoPermission');
    return true;
  });
});
