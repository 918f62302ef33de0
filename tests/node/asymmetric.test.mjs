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

// ------------------------------------------------------------------------------------------
// Issue 17, every new action through the typed models of @alicloud/kms20160120 1.2.0 where
// the SDK has one. That version has no model for ReEncrypt, ExportDataKey or
// GenerateAndExportDataKey (and its CreateKey/GetParametersForImport/... models predate nothing
// we need): those three go through openapi-client's generic callApi (V3 signature) below.
// Independent checks with node:crypto: RSA/ECDSA/SM2 signatures verified with the PEM from
// GetPublicKey, RSA-OAEP ciphertexts made here decrypted by the server, exported data keys
// decrypted here. Not checkable with node 20's OpenSSL 3.0: SM2PKE (publicEncrypt refuses SM2
// keys) and SM4-GCM (no such cipher before OpenSSL 3.2); those are server round trips only
// (tests/e2e/test_sm.py checks them with openssl and Python `cryptography`).

const b64 = (buf) => Buffer.from(buf).toString('base64');
const unb64 = (s) => Buffer.from(s, 'base64');
const sha256 = (m) => crypto.createHash('sha256').update(m).digest();

// The RPC client's errors carry the status in the message ("code: 400, ..."); openapi-client's
// in data.statusCode.
async function expectError(promise, code, status) {
  await assert.rejects(promise, (err) => {
    assert.ok(err.data, `no error data on ${err}`);
    assert.equal(err.data.Code, code, `expected ${code}, got ${JSON.stringify(err.data)}`);
    const got = err.data.statusCode ?? Number((/code: (\d+),/.exec(err.message) ?? [])[1]);
    assert.equal(got, status, err.message);
    return true;
  });
}

const SPECS = {
  rsaSign: ['RSA_2048', 'SIGN/VERIFY'],
  rsaEnc: ['RSA_2048', 'ENCRYPT/DECRYPT'],
  p256: ['EC_P256', 'SIGN/VERIFY'],
  p256k: ['EC_P256K', 'SIGN/VERIFY'],
  sm2Sign: ['EC_SM2', 'SIGN/VERIFY'],
  sm2Enc: ['EC_SM2', 'ENCRYPT/DECRYPT'],
  sm4: ['Aliyun_SM4', 'ENCRYPT/DECRYPT'],
  aes: ['Aliyun_AES_256', 'ENCRYPT/DECRYPT'],
};
const made = {};
// name -> { keyId, keyVersionId, pem? }, made once per file on first use.
async function key(name) {
  if (made[name]) return made[name];
  const [keySpec, keyUsage] = SPECS[name];
  const md = (await kms.createKey(new Kms.CreateKeyRequest({ keySpec, keyUsage }))).keyMetadata;
  assert.equal(md.keySpec, keySpec);
  assert.equal(md.keyUsage, keyUsage);
  assert.equal(md.keyState, 'Enabled');
  assert.equal(md.origin, 'Aliyun_KMS');
  const versions = (await kms.listKeyVersions(new Kms.ListKeyVersionsRequest({ keyId: md.keyId })))
    .keyVersions.keyVersion;
  assert.equal(versions.length, 1);
  const k = { keyId: md.keyId, keyVersionId: versions[0].keyVersionId, md };
  if (keyUsage === 'SIGN/VERIFY' || keySpec.startsWith('RSA') || keySpec === 'EC_SM2') {
    const pub = await kms.getPublicKey(new Kms.GetPublicKeyRequest({ keyId: k.keyId, keyVersionId: k.keyVersionId }));
    assert.equal(pub.keyId, k.keyId);
    assert.equal(pub.keyVersionId, k.keyVersionId);
    assert.match(pub.publicKey, /^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/);
    k.pem = pub.publicKey;
  }
  made[name] = k;
  return k;
}

// SM2 (GM/T 0003.2): e = SM3(Z_A || M), Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA)
// with Alibaba's identity 1234567812345678 (reference asymmetric §6).
const SM2_ID = Buffer.from('1234567812345678');
const SM2_CURVE = Buffer.from(
  'FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC'
  + '28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93'
  + '32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7'
  + 'BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0', 'hex');
function sm2Digest(pem, message, id = SM2_ID) {
  const spki = crypto.createPublicKey(pem).export({ type: 'spki', format: 'der' });
  const point = spki.subarray(spki.length - 64); // x || y after the 0x04 of the BIT STRING
  const entl = Buffer.alloc(2);
  entl.writeUInt16BE(id.length * 8);
  const za = crypto.createHash('sm3').update(Buffer.concat([entl, id, SM2_CURVE, point])).digest();
  return crypto.createHash('sm3').update(za).update(message).digest();
}

test('CreateKey: every asymmetric and SM spec x usage; DescribeKey agrees; a bad pair is refused', async () => {
  for (const name of Object.keys(SPECS)) {
    const k = await key(name);
    const d = (await kms.describeKey(new Kms.DescribeKeyRequest({ keyId: k.keyId }))).keyMetadata;
    assert.deepEqual([d.keySpec, d.keyUsage, d.keyState], [...SPECS[name], 'Enabled']);
    // Asymmetric keys have no primary version (reference asymmetric §2.1); symmetric ones do.
    assert.equal(d.primaryKeyVersion ?? '', ['sm4', 'aes'].includes(name) ? k.keyVersionId : '');
  }
  assert.match((await key('sm2Sign')).pem, /^-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAE/);
  await expectError(kms.createKey(new Kms.CreateKeyRequest({ keySpec: 'EC_P256', keyUsage: 'ENCRYPT/DECRYPT' })),
    'InvalidParameter', 400);
  await expectError(kms.createKey(new Kms.CreateKeyRequest({ keySpec: 'Aliyun_SM4', keyUsage: 'SIGN/VERIFY' })),
    'InvalidParameter', 400);
});

for (const [name, algorithm, verifyOpts] of [
  ['p256k', 'ECDSA_SHA_256', { dsaEncoding: 'der' }],
  ['rsaSign', 'RSA_PKCS1_SHA_256', { padding: crypto.constants.RSA_PKCS1_PADDING }],
]) {
  test(`${SPECS[name][0]} ${algorithm}: AsymmetricSign verifies with node:crypto, AsymmetricVerify agrees`, async () => {
    const k = await key(name);
    const message = crypto.randomBytes(64);
    const signed = await kms.asymmetricSign(new Kms.AsymmetricSignRequest({
      keyId: k.keyId, keyVersionId: k.keyVersionId, algorithm, digest: b64(sha256(message)),
    }));
    assert.equal(signed.keyId, k.keyId);
    assert.equal(signed.keyVersionId, k.keyVersionId);
    assert.ok(crypto.verify('sha256', message, { key: k.pem, ...verifyOpts }, unb64(signed.value)));
    const ok = await kms.asymmetricVerify(new Kms.AsymmetricVerifyRequest({
      keyId: k.keyId, keyVersionId: k.keyVersionId, algorithm, digest: b64(sha256(message)), value: signed.value,
    }));
    assert.deepEqual([ok.keyId, ok.keyVersionId, ok.value], [k.keyId, k.keyVersionId, true]);
    const other = await kms.asymmetricVerify(new Kms.AsymmetricVerifyRequest({
      keyId: k.keyId, keyVersionId: k.keyVersionId, algorithm, digest: b64(sha256(Buffer.from('other'))),
      value: signed.value,
    }));
    assert.equal(other.value, false);
  });
}

test('EC_SM2 SM2DSA: the SM3 digest with Z_A is signed; node:crypto (OpenSSL SM2) verifies', async (t) => {
  const k = await key('sm2Sign');
  const message = Buffer.from('signed with SM2 from node');
  const digest = sm2Digest(k.pem, message);
  const signed = await kms.asymmetricSign(new Kms.AsymmetricSignRequest({
    keyId: k.keyId, keyVersionId: k.keyVersionId, algorithm: 'SM2DSA', digest: b64(digest),
  }));
  assert.equal(signed.keyVersionId, k.keyVersionId);
  const sig = unb64(signed.value);
  assert.equal(sig[0], 0x30, 'a DER SEQUENCE{r, s}');
  const ok = await kms.asymmetricVerify(new Kms.AsymmetricVerifyRequest({
    keyId: k.keyId, keyVersionId: k.keyVersionId, algorithm: 'SM2DSA', digest: b64(digest), value: signed.value,
  }));
  assert.equal(ok.value, true);
  await expectError(kms.asymmetricSign(new Kms.AsymmetricSignRequest({
    keyId: k.keyId, keyVersionId: k.keyVersionId, algorithm: 'ECDSA_SHA_256', digest: b64(digest),
  })), 'Rejected.UnsupportedOperation', 400);
  // node:crypto (OpenSSL 3.0) signs and verifies SM2 with SM3 but offers no way to set the
  // distinguishing identifier: it hashes Z_A with the empty one, so a signature under Alibaba's
  // 1234567812345678 does not verify there (checked: openssl dgst -sigopt distid:1234567812345678
  // signatures fail in node, default-ID ones pass). The independent SM2DSA check is openssl's in
  // tests/e2e/test_sm.py; here it runs only if a later node verifies with the standard identifier.
  if (!crypto.verify('sm3', message, k.pem, sig)) {
    t.skip('node:crypto verifies SM2 only with the empty distinguishing identifier, not 1234567812345678');
  }
});
