// Asymmetric keys (issue 17, RSA/EC half) with the official Node SDKs: the typed models of
// @alicloud/kms20160120 (RPC v1) for GetPublicKey / AsymmetricSign / AsymmetricVerify, the
// V3 signature through openapi-client, and node:crypto as the independent verifier.
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

let server;
let kms;
let v3;

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

async function callV3(action, query) {
  const params = new OpenApi.Params({
    action, version: '2016-01-20', protocol: 'HTTP', pathname: '/', method: 'POST', authType: 'AK',
    style: 'RPC', reqBodyType: 'formData', bodyType: 'json',
  });
  const request = new OpenApi.OpenApiRequest({ query: OpenApiUtil.query(query) });
  const resp = await v3.callApi(params, request, new Util.RuntimeOptions({}));
  assert.equal(resp.statusCode, 200);
  return resp.body;
}

for (const [keySpec, algorithm, verifyOpts] of [
  ['EC_P256', 'ECDSA_SHA_256', { dsaEncoding: 'der' }],
  ['RSA_2048', 'RSA_PSS_SHA_256', { padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }],
]) {
  test(`${keySpec}: GetPublicKey, AsymmetricSign, AsymmetricVerify; node:crypto verifies`, async () => {
    const md = (await kms.createKey(new Kms.CreateKeyRequest({ keySpec, keyUsage: 'SIGN/VERIFY' }))).keyMetadata;
    assert.equal(md.keySpec, keySpec);
    assert.equal(md.keyUsage, 'SIGN/VERIFY');
    const versions = await kms.listKeyVersions(new Kms.ListKeyVersionsRequest({ keyId: md.keyId }));
    const keyVersionId = versions.keyVersions.keyVersion[0].keyVersionId;
    const pub = await kms.getPublicKey(new Kms.GetPublicKeyRequest({ keyId: md.keyId, keyVersionId }));
    assert.equal(pub.keyId, md.keyId);
    assert.match(pub.publicKey, /^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/);

    const message = Buffer.from(`signed from node ${keySpec}`);
    const digest = crypto.createHash('sha256').update(message).digest('base64');
    const signed = await kms.asymmetricSign(new Kms.AsymmetricSignRequest({
      keyId: md.keyId, keyVersionId, algorithm, digest,
    }));
    assert.equal(signed.keyVersionId, keyVersionId);
    const sig = Buffer.from(signed.value, 'base64');
    assert.ok(crypto.verify('sha256', message, { key: pub.publicKey, ...verifyOpts }, sig));

    const ok = await kms.asymmetricVerify(new Kms.AsymmetricVerifyRequest({
      keyId: md.keyId, keyVersionId, algorithm, digest, value: signed.value,
    }));
    assert.equal(ok.value, true);
    // V3 signature; a signature node:crypto made cannot exist (the private key stays), so a
    // damaged one must answer the JSON boolean false.
    const bad = Buffer.from(sig);
    bad[bad.length - 1] ^= 1;
    const body = await callV3('AsymmetricVerify', {
      KeyId: md.keyId, KeyVersionId: keyVersionId, Algorithm: algorithm, Digest: digest, Value: bad.toString('base64'),
    });
    assert.equal(body.Value, false);
    assert.equal(body.KeyId, md.keyId);
  });
}
