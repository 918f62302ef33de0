//! China's national algorithms (GM/T): SM2 signatures and public-key encryption, SM3, and
//! SM4-GCM for `Aliyun_SM4` keys. aws-lc-rs has none of them, so they come from RustCrypto
//! (`sm2` 0.14, `sm3` 0.5, `sm4` 0.6, and `aes-gcm` 0.11's generic GCM over the SM4 block
//! cipher); see the README section "China's national algorithms" for why these crates.
//!
//! Wire facts (reference `alibaba-kms-asymmetric-secrets.md` §5, §6.4, §6.6, §6.7):
//!
//! - SM2 keys: private key as PKCS#8 DER (id-ecPublicKey + curve sm2 1.2.156.10197.1.301,
//!   what `openssl genpkey -algorithm SM2` writes), held in zeroizing buffers; public key as
//!   DER SubjectPublicKeyInfo (91 bytes, base64 prefix `MFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAE`).
//! - SM2DSA signs a caller-computed `e = SM3(Z_A ‖ M)` as given (never re-hashed); Z_A uses
//!   the distinguishing identifier `1234567812345678`. Signatures are DER
//!   `SEQUENCE { r, s }`. The nonce is RFC 6979 hedged with fresh randomness.
//! - SM2PKE output is DER GM/T 0009 `SEQUENCE { x, y, C3, C2 }` (what OpenSSL 3, GmSSL and
//!   BouncyCastle produce and read); input may be that DER, raw `04‖x‖y‖C3‖C2` (C1C3C2) or
//!   the old raw C1C2C3 order (tried when the C1C3C2 check fails) — reference §6.6, which
//!   leaves Alibaba's own format open.
//! - SM4-GCM (RFC 8998): 128-bit key, 96-bit nonce, 128-bit tag.
//!   The `sm4` crate uses a 256-byte S-box table: not constant time against cache-timing
//!   attackers on the same machine (README, "China's national algorithms").
//!
//! Every decryption failure is `None` through one path, so callers cannot become an oracle.
//! What is written by hand here: the Z_A formula (a concatenation hashed with the `sm3`
//! crate, because `sm2` keeps its own helper private) and the format sniffing above.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::AesGcm;
use sm2::elliptic_curve::common::getrandom::SysRng;
use sm2::elliptic_curve::common::Generate;
use sm2::elliptic_curve::consts::U12;
use sm2::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use sm2::pke::{DecryptingKey, EncryptingKey, Mode};
use sm3::{Digest, Sm3};
use zeroize::Zeroizing;

use super::Secret;
use crate::error::KmsError;

/// The SM2 distinguishing identifier Alibaba uses for `SM2DSA` (reference §6.4).
pub const DEFAULT_DISTID: &[u8] = b"1234567812345678";

/// Length of an SM2 SubjectPublicKeyInfo in DER.
pub const SM2_SPKI_LEN: usize = 91;

/// Largest SM2PKE plaintext AsymmetricEncrypt accepts (reference §2.2).
pub const SM2PKE_MAX_PLAINTEXT: usize = 6047;

/// SM4 key, nonce and tag lengths.
pub const SM4_KEY_LEN: usize = 16;
pub const SM4_GCM_NONCE_LEN: usize = 12;
pub const SM4_GCM_TAG_LEN: usize = 16;

type Sm4Gcm = AesGcm<sm4::Sm4, U12>;

/// An SM2 key pair: the private key as PKCS#8 DER (wiped on drop), the public key as DER
/// SubjectPublicKeyInfo.
pub struct Sm2KeyPair {
    pub pkcs8: Secret,
    pub public_der: Vec<u8>,
}

/// Generates an SM2 key pair from the operating system's random source.
pub fn sm2_generate() -> Result<Sm2KeyPair, KmsError> {
    let secret =
        sm2::SecretKey::try_generate().map_err(|_| KmsError::internal("sm2 key generation"))?;
    let pkcs8 = secret
        .to_pkcs8_der()
        .map_err(|_| KmsError::internal("sm2 pkcs8 export"))?;
    let public_der = secret
        .public_key()
        .to_public_key_der()
        .map_err(|_| KmsError::internal("sm2 spki export"))?;
    Ok(Sm2KeyPair {
        pkcs8: Zeroizing::new(pkcs8.as_bytes().to_vec()),
        public_der: public_der.as_bytes().to_vec(),
    })
}

fn secret_from_pkcs8(pkcs8: &[u8]) -> Option<sm2::SecretKey> {
    sm2::SecretKey::from_pkcs8_der(pkcs8).ok()
}

/// The DER SubjectPublicKeyInfo of an SM2 private key (PKCS#8 DER); `None` if it is not one.
pub fn sm2_public_der(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let secret = secret_from_pkcs8(pkcs8)?;
    let der = secret.public_key().to_public_key_der().ok()?;
    Some(der.as_bytes().to_vec())
}

/// An imported SM2 private key (unencrypted PKCS#8 DER of the sm2 curve) re-encoded as
/// this module writes it, so the same key always commits to the same bytes; `None` for
/// anything else.
pub fn sm2_canonical_pkcs8(pkcs8: &[u8]) -> Option<Secret> {
    let secret = secret_from_pkcs8(pkcs8)?;
    let der = secret.to_pkcs8_der().ok()?;
    Some(Zeroizing::new(der.as_bytes().to_vec()))
}

/// Parses a DER SubjectPublicKeyInfo as an SM2 public key (curve OID sm2, point on the
/// curve, not the identity).
pub fn sm2_parse_public(public_der: &[u8]) -> Option<sm2::PublicKey> {
    sm2::PublicKey::from_public_key_der(public_der).ok()
}

/// Z_A = SM3(ENTL_A ‖ ID ‖ a ‖ b ‖ x_G ‖ y_G ‖ x_A ‖ y_A) (GB/T 32918.2 §5.5).
pub fn sm2_z(public_der: &[u8], distid: &[u8]) -> Option<[u8; 32]> {
    // Curve parameters (GB/T 32918.5), as in reference §6.4.
    const A: &str = "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC";
    const B: &str = "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93";
    const XG: &str = "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7";
    const YG: &str = "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0";
    let entl = u16::try_from(distid.len().checked_mul(8)?).ok()?;
    let public = sm2_parse_public(public_der)?;
    let point = public.to_sec1_bytes();
    // Uncompressed SEC1: 04 ‖ x (32) ‖ y (32).
    if point.len() != 65 {
        return None;
    }
    let mut h = Sm3::new();
    h.update(entl.to_be_bytes());
    h.update(distid);
    for c in [A, B, XG, YG] {
        h.update(hex::decode(c).ok()?);
    }
    h.update(&point[1..]);
    Some(h.finalize().into())
}

/// The `Digest` parameter of AsymmetricSign/Verify with `SM2DSA`: e = SM3(Z_A ‖ M) with the
/// default identifier (what a client computes locally; used by `kms` helpers and tests).
pub fn sm2_message_digest(public_der: &[u8], message: &[u8]) -> Option<[u8; 32]> {
    let z = sm2_z(public_der, DEFAULT_DISTID)?;
    let mut h = Sm3::new();
    h.update(z);
    h.update(message);
    Some(h.finalize().into())
}

/// SM3 of `data`.
pub fn sm3(data: &[u8]) -> [u8; 32] {
    Sm3::digest(data).into()
}

/// Signs a 32-byte `e` with SM2DSA; DER `SEQUENCE { r, s }`. `None` if the key does not
/// parse or `e` is not 32 bytes.
pub fn sm2_sign_digest(pkcs8: &[u8], e: &[u8]) -> Option<Vec<u8>> {
    use sm2::dsa::signature::hazmat::RandomizedPrehashSigner;
    if e.len() != 32 {
        return None;
    }
    let secret = secret_from_pkcs8(pkcs8)?;
    // The identifier only matters when the crate hashes a message; we sign e as given.
    let key = sm2::dsa::SigningKey::new("1234567812345678", &secret).ok()?;
    let sig: sm2::dsa::Signature = key.sign_prehash_with_rng(&mut SysRng, e).ok()?;
    Some(sig.to_der().as_bytes().to_vec())
}

/// Verifies a DER SM2DSA signature over a 32-byte `e`. Anything malformed is `false`.
pub fn sm2_verify_digest(public_der: &[u8], e: &[u8], signature_der: &[u8]) -> bool {
    use sm2::dsa::signature::hazmat::PrehashVerifier;
    if e.len() != 32 {
        return false;
    }
    let Some(public) = sm2_parse_public(public_der) else {
        return false;
    };
    let Ok(key) = sm2::dsa::VerifyingKey::new("1234567812345678", public) else {
        return false;
    };
    let Ok(sig) = sm2::dsa::Signature::from_der(signature_der) else {
        return false;
    };
    key.verify_prehash(e, &sig).is_ok()
}

/// SM2PKE-encrypts `plaintext` under a DER SubjectPublicKeyInfo SM2 key, as DER GM/T 0009.
pub fn sm2_encrypt(public_der: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let public = sm2_parse_public(public_der)
        .ok_or_else(|| "the public key is not a DER SM2 SubjectPublicKeyInfo".to_string())?;
    if plaintext.is_empty() {
        return Err("SM2PKE cannot encrypt an empty plaintext".to_string());
    }
    EncryptingKey::new_with_mode(public, Mode::C1C3C2)
        .encrypt_der(&mut SysRng, plaintext)
        .map_err(|_| "SM2PKE encryption failed".to_string())
}

/// SM2PKE-encrypts as raw `04 ‖ x ‖ y ‖ C3 ‖ C2` (C1C3C2), for tests of the raw input form.
pub fn sm2_encrypt_raw(public_der: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let public = sm2_parse_public(public_der)
        .ok_or_else(|| "the public key is not a DER SM2 SubjectPublicKeyInfo".to_string())?;
    EncryptingKey::new_with_mode(public, Mode::C1C3C2)
        .encrypt(&mut SysRng, plaintext)
        .map_err(|_| "SM2PKE encryption failed".to_string())
}

/// Decrypts an SM2PKE ciphertext (DER GM/T 0009, raw C1C3C2 or raw C1C2C3). `None` for
/// every kind of failure.
pub fn sm2_decrypt(pkcs8: &[u8], ciphertext: &[u8]) -> Option<Secret> {
    let secret = secret_from_pkcs8(pkcs8)?;
    let scalar = secret.to_nonzero_scalar();
    let first = *ciphertext.first()?;
    if first == 0x30 {
        let key = DecryptingKey::new_with_mode(scalar, Mode::C1C3C2);
        let cipher = sm2::pke::Cipher::<sm2::Sm2, Sm3>::from_der_bytes(ciphertext)?;
        return decrypt_cipher(&key, &cipher);
    }
    // Raw forms: only the uncompressed point (0x04) and at least C1 ‖ C3 ‖ one byte.
    if first != 0x04 || ciphertext.len() < 65 + 32 + 1 {
        return None;
    }
    for mode in [Mode::C1C3C2, Mode::C1C2C3] {
        let key = DecryptingKey::new_with_mode(scalar, mode);
        if let Ok(cipher) = sm2::pke::Cipher::<sm2::Sm2, Sm3>::from_slice(ciphertext, mode) {
            if let Some(pt) = decrypt_cipher(&key, &cipher) {
                return Some(pt);
            }
        }
    }
    None
}

fn decrypt_cipher(
    key: &DecryptingKey,
    cipher: &sm2::pke::Cipher<'_, sm2::Sm2, Sm3>,
) -> Option<Secret> {
    let mut out = Zeroizing::new(vec![0u8; cipher.c2().len()]);
    let n = key.decrypt_cipher_with_buf::<Sm3>(cipher, &mut out).ok()?;
    out.truncate(n);
    Some(out)
}

trait FromDerBytes<'a>: Sized {
    fn from_der_bytes(bytes: &'a [u8]) -> Option<Self>;
}

impl<'a> FromDerBytes<'a> for sm2::pke::Cipher<'a, sm2::Sm2, Sm3> {
    fn from_der_bytes(bytes: &'a [u8]) -> Option<Self> {
        use sm2::pkcs8::der::Decode;
        Self::from_der(bytes).ok()
    }
}

fn sm4_gcm(key: &[u8]) -> Option<Sm4Gcm> {
    if key.len() != SM4_KEY_LEN {
        return None;
    }
    Sm4Gcm::new_from_slice(key).ok()
}

/// SM4-GCM-encrypts `buf` in place and returns the 16-byte tag.
pub fn sm4_gcm_seal(
    key: &[u8],
    nonce: &[u8; SM4_GCM_NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; SM4_GCM_TAG_LEN], KmsError> {
    let cipher = sm4_gcm(key).ok_or_else(|| KmsError::internal("SM4 key is not 16 bytes"))?;
    let tag = cipher
        .encrypt_inout_detached(&(*nonce).into(), aad, buf.into())
        .map_err(|_| KmsError::internal("sm4-gcm seal"))?;
    Ok(tag.into())
}

/// Opens an SM4-GCM ciphertext in place; `false` (and `buf` wiped) on any failure.
pub fn sm4_gcm_open(
    key: &[u8],
    nonce: &[u8; SM4_GCM_NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8],
) -> bool {
    let Some(cipher) = sm4_gcm(key) else {
        return false;
    };
    let Ok(tag) = <[u8; SM4_GCM_TAG_LEN]>::try_from(tag) else {
        return false;
    };
    let ok = cipher
        .decrypt_inout_detached(&(*nonce).into(), aad, buf.into(), &tag.into())
        .is_ok();
    if !ok {
        zeroize::Zeroize::zeroize(buf);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm3_known_answers() {
        // reference §6.7 [verified with openssl]
        assert_eq!(
            hex::encode(sm3(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            hex::encode(sm3(&b"abcd".repeat(16))),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
    }

    #[test]
    fn sm4_block_known_answer() {
        use sm4::cipher::{BlockCipherEncrypt, KeyInit};
        let k = hex::decode("0123456789abcdeffedcba9876543210").unwrap();
        let c = sm4::Sm4::new_from_slice(&k).unwrap();
        let mut b = sm4::cipher::Block::<sm4::Sm4>::try_from(k.as_slice()).unwrap();
        c.encrypt_block(&mut b);
        assert_eq!(hex::encode(b), "681edf34d206965e86b3e94f536e4246");
    }

    #[test]
    fn sm4_gcm_rfc8998_vector_and_tampering() {
        // RFC 8998 Appendix A.1 (also reproduced with Python cryptography's SM4 GCM).
        let key = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let nonce: [u8; 12] = hex::decode("00001234567800000000ABCD")
            .unwrap()
            .try_into()
            .unwrap();
        let aad = hex::decode("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2").unwrap();
        let pt = hex::decode(
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD\
             EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
        )
        .unwrap();
        let mut buf = pt.clone();
        let tag = sm4_gcm_seal(&key, &nonce, &aad, &mut buf).unwrap();
        assert_eq!(
            hex::encode(&buf),
            "17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735\
             d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d"
        );
        assert_eq!(hex::encode(tag), "83de3541e4c2b58177e065a9bf7b62ec");
        let mut open = buf.clone();
        assert!(sm4_gcm_open(&key, &nonce, &aad, &mut open, &tag));
        assert_eq!(open, pt);
        let mut bad = buf.clone();
        bad[0] ^= 1;
        assert!(!sm4_gcm_open(&key, &nonce, &aad, &mut bad, &tag));
        assert!(bad.iter().all(|b| *b == 0), "failed open wipes the buffer");
        let mut other = buf.clone();
        assert!(!sm4_gcm_open(&key, &nonce, b"", &mut other, &tag));
        assert!(!sm4_gcm_open(
            &key[..15],
            &nonce,
            &aad,
            &mut buf.clone(),
            &tag
        ));
        assert!(!sm4_gcm_open(
            &key,
            &nonce,
            &aad,
            &mut buf.clone(),
            &tag[..15]
        ));
    }

    #[test]
    fn sm2_keys_encode_as_openssl_does() {
        let kp = sm2_generate().unwrap();
        assert_eq!(kp.public_der.len(), SM2_SPKI_LEN);
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&kp.public_der);
        assert!(
            b64.starts_with("MFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAE"),
            "{b64}"
        );
        assert_eq!(sm2_public_der(&kp.pkcs8).unwrap(), kp.public_der);
        assert!(sm2_public_der(b"junk").is_none());
        assert!(sm2_parse_public(&kp.public_der[..90]).is_none());
    }

    #[test]
    fn sm2_sign_verify_over_e_matches_the_crates_message_signer() {
        use sm2::dsa::signature::Signer;
        let kp = sm2_generate().unwrap();
        let msg = b"message digest";
        let e = sm2_message_digest(&kp.public_der, msg).unwrap();
        // Our signature over e verifies, and so does the crate's own message signature
        // (which computes Z_A with the same identifier internally): the Z_A formula is right.
        let sig = sm2_sign_digest(&kp.pkcs8, &e).unwrap();
        assert_eq!(sig[0], 0x30);
        assert!(sig.len() <= 72);
        assert!(sm2_verify_digest(&kp.public_der, &e, &sig));
        let secret = sm2::SecretKey::from_pkcs8_der(&kp.pkcs8).unwrap();
        let signer = sm2::dsa::SigningKey::new("1234567812345678", &secret).unwrap();
        let theirs: sm2::dsa::Signature = signer.sign(msg);
        assert!(sm2_verify_digest(
            &kp.public_der,
            &e,
            theirs.to_der().as_bytes()
        ));
        // Wrong digest, other key, tampered or malformed signatures: false.
        let mut e2 = e;
        e2[0] ^= 1;
        assert!(!sm2_verify_digest(&kp.public_der, &e2, &sig));
        let other = sm2_generate().unwrap();
        assert!(!sm2_verify_digest(&other.public_der, &e, &sig));
        for i in 0..sig.len() {
            let mut t = sig.clone();
            t[i] ^= 0x01;
            assert!(!sm2_verify_digest(&kp.public_der, &e, &t), "byte {i}");
        }
        assert!(!sm2_verify_digest(&kp.public_der, &e, b""));
        assert!(!sm2_verify_digest(&kp.public_der, &e[..31], &sig));
        assert!(!sm2_verify_digest(b"junk", &e, &sig));
        assert!(sm2_sign_digest(&kp.pkcs8, &e[..31]).is_none());
        assert!(sm2_sign_digest(b"junk", &e).is_none());
        // Randomized: two signatures of the same e differ.
        assert_ne!(sm2_sign_digest(&kp.pkcs8, &e).unwrap(), sig);
    }

    #[test]
    fn sm2pke_round_trips_in_every_accepted_form() {
        let kp = sm2_generate().unwrap();
        for pt in [
            &b"k"[..],
            &[7u8; 16],
            &[9u8; 32],
            &vec![1u8; SM2PKE_MAX_PLAINTEXT],
        ] {
            let der = sm2_encrypt(&kp.public_der, pt).unwrap();
            assert_eq!(der[0], 0x30);
            assert_eq!(sm2_decrypt(&kp.pkcs8, &der).unwrap().as_slice(), pt);
            let raw = sm2_encrypt_raw(&kp.public_der, pt).unwrap();
            assert_eq!(raw.len(), pt.len() + 97);
            assert_eq!(sm2_decrypt(&kp.pkcs8, &raw).unwrap().as_slice(), pt);
            // C1C2C3: move C3 to the end.
            let mut c123 = raw[..65].to_vec();
            c123.extend_from_slice(&raw[97..]);
            c123.extend_from_slice(&raw[65..97]);
            assert_eq!(sm2_decrypt(&kp.pkcs8, &c123).unwrap().as_slice(), pt);
        }
        // 6047 bytes raw is exactly the 6144-byte limit of AsymmetricDecrypt.
        let raw = sm2_encrypt_raw(&kp.public_der, &[0u8; SM2PKE_MAX_PLAINTEXT]).unwrap();
        assert_eq!(raw.len(), 6144);
    }

    #[test]
    fn sm2pke_failures_are_all_none() {
        let kp = sm2_generate().unwrap();
        let other = sm2_generate().unwrap();
        let der = sm2_encrypt(&kp.public_der, &[5u8; 16]).unwrap();
        assert!(sm2_decrypt(&other.pkcs8, &der).is_none());
        for i in 0..der.len() {
            let mut t = der.clone();
            t[i] ^= 0x01;
            assert!(sm2_decrypt(&kp.pkcs8, &t).is_none(), "der byte {i}");
        }
        let raw = sm2_encrypt_raw(&kp.public_der, &[5u8; 16]).unwrap();
        for i in 0..raw.len() {
            let mut t = raw.clone();
            t[i] ^= 0x01;
            assert!(sm2_decrypt(&kp.pkcs8, &t).is_none(), "raw byte {i}");
        }
        for n in 0..der.len() {
            assert!(sm2_decrypt(&kp.pkcs8, &der[..n]).is_none());
        }
        for n in 0..raw.len() {
            assert!(sm2_decrypt(&kp.pkcs8, &raw[..n]).is_none());
        }
        // Identity / compressed / garbage points.
        let mut ident = vec![0u8; 1 + 32 + 16];
        ident[0] = 0x00;
        assert!(sm2_decrypt(&kp.pkcs8, &ident).is_none());
        assert!(sm2_decrypt(&kp.pkcs8, &[0x04; 200]).is_none());
        assert!(sm2_decrypt(&kp.pkcs8, &[0x30; 200]).is_none());
        assert!(sm2_decrypt(b"junk", &der).is_none());
        assert!(sm2_encrypt(b"junk", b"x").is_err());
        assert!(sm2_encrypt(&kp.public_der, b"").is_err());
    }
}
