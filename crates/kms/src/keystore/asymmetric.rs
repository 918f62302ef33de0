//! Key pairs of asymmetric keys (RSA_2048, RSA_3072, EC_P256, EC_P256K from aws-lc-rs;
//! EC_SM2 from RustCrypto's `sm2` through [`super::sm`]) and their operations.
//!
//! A key version's private key is stored as PKCS#8 DER sealed under the root key like
//! symmetric material (associated data = key id and version); it is opened per request into
//! a zeroizing buffer and parsed by aws-lc-rs. The public key is derived from it (not stored).
//!
//! Every operation is one `match` on the key's [`KeySpec`] (and the
//! [`AsymmetricAlgorithm`]), so a new spec is one arm per function. The spec × algorithm
//! fit is checked by the service first ([`AsymmetricAlgorithm::fits`]); an arm that does not
//! fit answers [`KmsError::UnsupportedOperation`] here too.
//!
//! Decryption is aws-lc-rs's constant-time RSA-OAEP; [`decrypt`] returns `None` for every
//! failure through one path (no padding oracle beyond the one error).

use aws_lc_rs::digest::{Digest, SHA256};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeyPair as RsaKeyPair, KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{
    EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair as _, RsaEncoding, UnparsedPublicKey,
    VerificationAlgorithm, ECDSA_P256K1_SHA256_ASN1, ECDSA_P256K1_SHA256_ASN1_SIGNING,
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_SHA256, RSA_PSS_2048_8192_SHA256, RSA_PSS_SHA256,
};

use base64::Engine;
use zeroize::Zeroizing;

use super::Secret;
use crate::error::KmsError;
use crate::model::{AsymmetricAlgorithm, KeySpec};

/// Every digest the asymmetric signing algorithms take is 32 bytes (SHA-256, or SM3 for
/// SM2DSA).
pub const DIGEST_LEN: usize = 32;

/// A freshly generated key pair: the private key as PKCS#8 DER (wiped on drop) and the
/// public key as DER SubjectPublicKeyInfo.
pub struct KeyPair {
    pub pkcs8: Secret,
    pub public_der: Vec<u8>,
}

fn internal(what: &'static str) -> impl Fn(aws_lc_rs::error::Unspecified) -> KmsError {
    move |_| KmsError::internal(what)
}

fn not_this_spec() -> KmsError {
    KmsError::UnsupportedOperation
}

fn ec_signing(spec: KeySpec) -> Option<&'static EcdsaSigningAlgorithm> {
    match spec {
        KeySpec::EcP256 => Some(&ECDSA_P256_SHA256_ASN1_SIGNING),
        KeySpec::EcP256K => Some(&ECDSA_P256K1_SHA256_ASN1_SIGNING),
        _ => None,
    }
}

/// Generates a key pair of `spec`. RSA takes tens to hundreds of milliseconds: call it off
/// the async runtime.
pub fn generate(spec: KeySpec) -> Result<KeyPair, KmsError> {
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
            let size = if spec == KeySpec::Rsa2048 {
                KeySize::Rsa2048
            } else {
                KeySize::Rsa3072
            };
            let key = RsaKeyPair::generate(size).map_err(internal("rsa keygen"))?;
            let pkcs8 = key.as_der().map_err(internal("pkcs8 export"))?;
            let public_der = key.public_key().as_der().map_err(internal("spki export"))?;
            Ok(KeyPair {
                pkcs8: Zeroizing::new(pkcs8.as_ref().to_vec()),
                public_der: public_der.as_ref().to_vec(),
            })
        }
        KeySpec::EcP256 | KeySpec::EcP256K => {
            let alg = ec_signing(spec).ok_or_else(not_this_spec)?;
            let key = EcdsaKeyPair::generate(alg).map_err(internal("ec keygen"))?;
            let pkcs8 = key.to_pkcs8v1().map_err(internal("pkcs8 export"))?;
            let public_der = key.public_key().as_der().map_err(internal("spki export"))?;
            Ok(KeyPair {
                pkcs8: Zeroizing::new(pkcs8.as_ref().to_vec()),
                public_der: public_der.as_ref().to_vec(),
            })
        }
        KeySpec::EcSm2 => {
            let kp = super::sm::sm2_generate()?;
            Ok(KeyPair {
                pkcs8: kp.pkcs8,
                public_der: kp.public_der,
            })
        }
        KeySpec::Aes256 | KeySpec::Sm4 => Err(not_this_spec()),
    }
}

fn bad_stored_key(_: aws_lc_rs::error::KeyRejected) -> KmsError {
    KmsError::internal("stored private key does not parse")
}

/// The DER SubjectPublicKeyInfo of the private key `pkcs8` (a key of `spec`).
pub fn public_key_der(spec: KeySpec, pkcs8: &[u8]) -> Result<Vec<u8>, KmsError> {
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
            let key = RsaKeyPair::from_pkcs8(pkcs8).map_err(bad_stored_key)?;
            let der = key.public_key().as_der().map_err(internal("spki export"))?;
            Ok(der.as_ref().to_vec())
        }
        KeySpec::EcP256 | KeySpec::EcP256K => {
            let alg = ec_signing(spec).ok_or_else(not_this_spec)?;
            let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8).map_err(bad_stored_key)?;
            let der = key.public_key().as_der().map_err(internal("spki export"))?;
            Ok(der.as_ref().to_vec())
        }
        KeySpec::EcSm2 => super::sm::sm2_public_der(pkcs8)
            .ok_or_else(|| KmsError::internal("stored private key does not parse")),
        KeySpec::Aes256 | KeySpec::Sm4 => Err(not_this_spec()),
    }
}

/// PEM armour of a DER SubjectPublicKeyInfo: `-----BEGIN PUBLIC KEY-----`, 64-character
/// base64 lines, trailing newline (what `openssl pkey -pubout` writes).
pub fn public_key_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.push_str("-----BEGIN PUBLIC KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}

fn sha256_digest(digest: &[u8]) -> Result<Digest, KmsError> {
    Digest::import_less_safe(digest, &SHA256)
        .map_err(|_| KmsError::invalid_because("Digest", "The digest is 32 bytes."))
}

fn rsa_encoding(alg: AsymmetricAlgorithm) -> Option<&'static dyn RsaEncoding> {
    match alg {
        AsymmetricAlgorithm::RsaPssSha256 => Some(&RSA_PSS_SHA256),
        AsymmetricAlgorithm::RsaPkcs1Sha256 => Some(&RSA_PKCS1_SHA256),
        _ => None,
    }
}

/// Signs a 32-byte digest (never hashed again). RSA: raw signature of modulus length; ECDSA:
/// DER `SEQUENCE { r, s }`.
pub fn sign(
    spec: KeySpec,
    alg: AsymmetricAlgorithm,
    pkcs8: &[u8],
    digest: &[u8],
) -> Result<Vec<u8>, KmsError> {
    if !alg.fits(spec) {
        return Err(not_this_spec());
    }
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
            let padding = rsa_encoding(alg).ok_or_else(not_this_spec)?;
            let d = sha256_digest(digest)?;
            let key = RsaKeyPair::from_pkcs8(pkcs8).map_err(bad_stored_key)?;
            let mut sig = vec![0u8; key.public_modulus_len()];
            key.sign_digest(padding, &d, &mut sig)
                .map_err(internal("rsa sign"))?;
            Ok(sig)
        }
        KeySpec::EcP256 | KeySpec::EcP256K => {
            let ec = ec_signing(spec).ok_or_else(not_this_spec)?;
            let d = sha256_digest(digest)?;
            let key = EcdsaKeyPair::from_pkcs8(ec, pkcs8).map_err(bad_stored_key)?;
            let sig = key.sign_digest(&d).map_err(internal("ecdsa sign"))?;
            Ok(sig.as_ref().to_vec())
        }
        // SM2DSA: `digest` is e = SM3(Z_A ‖ M), signed as given; DER signature.
        KeySpec::EcSm2 => {
            if digest.len() != DIGEST_LEN {
                return Err(KmsError::invalid_because(
                    "Digest",
                    "The digest is 32 bytes.",
                ));
            }
            super::sm::sm2_sign_digest(pkcs8, digest)
                .ok_or_else(|| KmsError::internal("sm2 sign (stored private key)"))
        }
        KeySpec::Aes256 | KeySpec::Sm4 => Err(not_this_spec()),
    }
}

/// Checks a signature over a 32-byte digest with a DER SubjectPublicKeyInfo. `Ok(false)` for
/// a signature that does not verify (wrong, malformed, wrong length). RSA-PSS: SHA-256,
/// MGF1-SHA-256 and exactly the 32-byte salt AsymmetricSign uses.
pub fn verify(
    spec: KeySpec,
    alg: AsymmetricAlgorithm,
    public_der: &[u8],
    digest: &[u8],
    signature: &[u8],
) -> Result<bool, KmsError> {
    if !alg.fits(spec) {
        return Err(not_this_spec());
    }
    let verification: &'static dyn VerificationAlgorithm = match (spec, alg) {
        (KeySpec::Rsa2048 | KeySpec::Rsa3072, AsymmetricAlgorithm::RsaPssSha256) => {
            // Salt length = digest length (32), strict: a signature with another salt is
            // refused (the reference leaves strict vs auto open; Wycheproof-tested).
            &RSA_PSS_2048_8192_SHA256
        }
        (KeySpec::Rsa2048 | KeySpec::Rsa3072, AsymmetricAlgorithm::RsaPkcs1Sha256) => {
            &RSA_PKCS1_2048_8192_SHA256
        }
        (KeySpec::EcP256, AsymmetricAlgorithm::EcdsaSha256) => &ECDSA_P256_SHA256_ASN1,
        (KeySpec::EcP256K, AsymmetricAlgorithm::EcdsaSha256) => &ECDSA_P256K1_SHA256_ASN1,
        (KeySpec::EcSm2, AsymmetricAlgorithm::Sm2Dsa) => {
            if digest.len() != DIGEST_LEN {
                return Err(KmsError::invalid_because(
                    "Digest",
                    "The digest is 32 bytes.",
                ));
            }
            return Ok(super::sm::sm2_verify_digest(public_der, digest, signature));
        }
        _ => return Err(not_this_spec()),
    };
    let d = sha256_digest(digest)?;
    Ok(UnparsedPublicKey::new(verification, public_der)
        .verify_digest(&d, signature)
        .is_ok())
}

/// The largest plaintext `alg` encrypts under a key of `spec` (reference asymmetric §2.2):
/// k − 2·hLen − 2 for OAEP.
pub fn max_plaintext(spec: KeySpec, alg: AsymmetricAlgorithm) -> Option<usize> {
    let k = match spec {
        KeySpec::Rsa2048 => 256,
        KeySpec::Rsa3072 => 384,
        KeySpec::EcSm2 => return (alg == AsymmetricAlgorithm::Sm2Pke).then_some(6047),
        _ => return None,
    };
    match alg {
        AsymmetricAlgorithm::RsaesOaepSha1 => Some(k - 2 * 20 - 2),
        AsymmetricAlgorithm::RsaesOaepSha256 => Some(k - 2 * 32 - 2),
        _ => None,
    }
}

/// Encrypts to a DER SubjectPublicKeyInfo of `spec` (AsymmetricEncrypt, and the data-key
/// export to a caller's public key). The output is the raw algorithm output.
pub fn encrypt(
    spec: KeySpec,
    alg: AsymmetricAlgorithm,
    public_der: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, KmsError> {
    if !alg.fits(spec) {
        return Err(not_this_spec());
    }
    let too_long = || {
        KmsError::invalid_because(
            "Plaintext",
            "The plaintext is longer than this key and algorithm can encrypt.",
        )
    };
    if max_plaintext(spec, alg).is_some_and(|m| plaintext.len() > m) {
        return Err(too_long());
    }
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
            let oaep = match alg {
                AsymmetricAlgorithm::RsaesOaepSha1 => &OAEP_SHA1_MGF1SHA1,
                AsymmetricAlgorithm::RsaesOaepSha256 => &OAEP_SHA256_MGF1SHA256,
                _ => return Err(not_this_spec()),
            };
            let pk = PublicEncryptingKey::from_der(public_der)
                .map_err(|_| KmsError::internal("rsa public key does not parse"))?;
            let key = OaepPublicEncryptingKey::new(pk).map_err(internal("oaep key"))?;
            let mut out = vec![0u8; key.ciphertext_size()];
            let n = key
                .encrypt(oaep, plaintext, &mut out, None)
                .map_err(|_| too_long())?
                .len();
            out.truncate(n);
            Ok(out)
        }
        // SM2PKE: DER GM/T 0009 (reference asymmetric §6.6, [inference]).
        KeySpec::EcSm2 => {
            if plaintext.is_empty() {
                return Err(KmsError::invalid_because(
                    "Plaintext",
                    "SM2PKE encrypts 1 to 6047 bytes.",
                ));
            }
            super::sm::sm2_encrypt(public_der, plaintext).map_err(KmsError::internal)
        }
        _ => Err(not_this_spec()),
    }
}

/// Decrypts raw algorithm output with the private key `pkcs8`. `None` for every failure.
pub fn decrypt(
    spec: KeySpec,
    alg: AsymmetricAlgorithm,
    pkcs8: &[u8],
    ciphertext: &[u8],
) -> Result<Option<Secret>, KmsError> {
    if !alg.fits(spec) {
        return Err(not_this_spec());
    }
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
            let oaep = match alg {
                AsymmetricAlgorithm::RsaesOaepSha1 => &OAEP_SHA1_MGF1SHA1,
                AsymmetricAlgorithm::RsaesOaepSha256 => &OAEP_SHA256_MGF1SHA256,
                _ => return Err(not_this_spec()),
            };
            let key = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(bad_stored_key)?;
            let mut out = Zeroizing::new(vec![0u8; key.key_size_bytes()]);
            let key = OaepPrivateDecryptingKey::new(key).map_err(internal("oaep key"))?;
            let n = match key.decrypt(oaep, ciphertext, &mut out, None) {
                Ok(p) => p.len(),
                Err(_) => return Ok(None),
            };
            out.truncate(n);
            Ok(Some(out))
        }
        // DER GM/T 0009, raw C1C3C2 or raw C1C2C3; every failure is the one `None`.
        KeySpec::EcSm2 => {
            if super::sm::sm2_public_der(pkcs8).is_none() {
                return Err(KmsError::internal("stored private key does not parse"));
            }
            Ok(super::sm::sm2_decrypt(pkcs8, ciphertext))
        }
        _ => Err(not_this_spec()),
    }
}

/// Imported asymmetric key material (ImportKeyMaterial with `RSA_AES_KEY_WRAP_SHA_256`): an
/// unencrypted PKCS#8 private key of exactly `spec` (RSA modulus size, EC curve), re-encoded
/// canonically by aws-lc-rs so that the same key always commits to the same bytes. `None`
/// for anything else (one failure for every cause).
pub fn canonical_private_key(spec: KeySpec, pkcs8: &[u8]) -> Option<Secret> {
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
            let bytes = if spec == KeySpec::Rsa2048 { 256 } else { 384 };
            let key = RsaKeyPair::from_pkcs8(pkcs8).ok()?;
            if key.public_modulus_len() != bytes {
                return None;
            }
            let der = key.as_der().ok()?;
            Some(Zeroizing::new(der.as_ref().to_vec()))
        }
        KeySpec::EcP256 | KeySpec::EcP256K => {
            let key = EcdsaKeyPair::from_pkcs8(ec_signing(spec)?, pkcs8).ok()?;
            let der = key.to_pkcs8v1().ok()?;
            Some(Zeroizing::new(der.as_ref().to_vec()))
        }
        // An SM2 private key as PKCS#8 (id-ecPublicKey + sm2 curve, what `openssl genpkey
        // -algorithm SM2` and `openssl pkcs8 -topk8` write), re-encoded canonically
        // ([inference]: the reference leaves SM2 private-key import open, §7.2).
        KeySpec::EcSm2 => super::sm::sm2_canonical_pkcs8(pkcs8),
        KeySpec::Aes256 | KeySpec::Sm4 => None,
    }
}

/// Parses a caller's public key (`PublicKeyBlob`: DER SubjectPublicKeyInfo) as a key of
/// `spec`; `None` if it is not one (an RSA key of another size, an EC key, garbage).
pub fn check_public_key(spec: KeySpec, public_der: &[u8]) -> Result<Option<()>, KmsError> {
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
            let bits = if spec == KeySpec::Rsa2048 { 2048 } else { 3072 };
            // Only a SubjectPublicKeyInfo (what PublicKeyBlob is), not a bare RSAPublicKey.
            if !public_der.starts_with(&[0x30]) || public_der.len() < 32 {
                return Ok(None);
            }
            Ok(PublicEncryptingKey::from_der(public_der)
                .ok()
                .filter(|k| k.key_size_bits() == bits)
                .map(drop))
        }
        KeySpec::EcSm2 => Ok(public_der
            .starts_with(&[0x30])
            .then(|| super::sm::sm2_parse_public(public_der))
            .flatten()
            .map(drop)),
        _ => Err(not_this_spec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AsymmetricAlgorithm as A;

    fn digest(msg: &[u8]) -> Vec<u8> {
        aws_lc_rs::digest::digest(&SHA256, msg).as_ref().to_vec()
    }

    #[test]
    fn sign_verify_round_trips_every_spec() {
        for (spec, algs) in [
            (KeySpec::Rsa2048, &[A::RsaPssSha256, A::RsaPkcs1Sha256][..]),
            (KeySpec::EcP256, &[A::EcdsaSha256][..]),
            (KeySpec::EcP256K, &[A::EcdsaSha256][..]),
        ] {
            let kp = generate(spec).unwrap();
            assert_eq!(public_key_der(spec, &kp.pkcs8).unwrap(), kp.public_der);
            for alg in algs {
                let d = digest(b"message");
                let sig = sign(spec, *alg, &kp.pkcs8, &d).unwrap();
                if spec == KeySpec::Rsa2048 {
                    assert_eq!(sig.len(), 256);
                } else {
                    assert_eq!(sig[0], 0x30);
                    assert!(sig.len() <= 72);
                }
                assert!(verify(spec, *alg, &kp.public_der, &d, &sig).unwrap());
                assert!(!verify(spec, *alg, &kp.public_der, &digest(b"other"), &sig).unwrap());
                let mut bad = sig.clone();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                assert!(!verify(spec, *alg, &kp.public_der, &d, &bad).unwrap());
                assert!(!verify(spec, *alg, &kp.public_der, &d, b"").unwrap());
                // The digest is never hashed again: 31 or 33 bytes are refused.
                assert!(sign(spec, *alg, &kp.pkcs8, &d[..31]).is_err());
                assert!(sign(spec, *alg, &kp.pkcs8, &[0u8; 33]).is_err());
            }
            // An algorithm of another family does not fit.
            assert_eq!(
                sign(spec, A::RsaesOaepSha256, &kp.pkcs8, &digest(b"m")).unwrap_err(),
                KmsError::UnsupportedOperation
            );
        }
    }

    #[test]
    fn pss_and_pkcs1_differ_and_cross_fail() {
        let kp = generate(KeySpec::Rsa2048).unwrap();
        let d = digest(b"m");
        let pss = sign(KeySpec::Rsa2048, A::RsaPssSha256, &kp.pkcs8, &d).unwrap();
        let pkcs1 = sign(KeySpec::Rsa2048, A::RsaPkcs1Sha256, &kp.pkcs8, &d).unwrap();
        // PKCS#1 v1.5 is deterministic, PSS is randomised.
        assert_eq!(
            pkcs1,
            sign(KeySpec::Rsa2048, A::RsaPkcs1Sha256, &kp.pkcs8, &d).unwrap()
        );
        assert_ne!(
            pss,
            sign(KeySpec::Rsa2048, A::RsaPssSha256, &kp.pkcs8, &d).unwrap()
        );
        assert!(!verify(
            KeySpec::Rsa2048,
            A::RsaPkcs1Sha256,
            &kp.public_der,
            &d,
            &pss
        )
        .unwrap());
        assert!(!verify(
            KeySpec::Rsa2048,
            A::RsaPssSha256,
            &kp.public_der,
            &d,
            &pkcs1
        )
        .unwrap());
    }

    #[test]
    fn oaep_round_trips_and_limits() {
        for spec in [KeySpec::Rsa2048, KeySpec::Rsa3072] {
            let kp = generate(spec).unwrap();
            let k = if spec == KeySpec::Rsa2048 { 256 } else { 384 };
            assert!(kp.public_der.len() > k);
            for (alg, max) in [(A::RsaesOaepSha1, k - 42), (A::RsaesOaepSha256, k - 66)] {
                assert_eq!(max_plaintext(spec, alg), Some(max));
                let pt = vec![7u8; max];
                let ct = encrypt(spec, alg, &kp.public_der, &pt).unwrap();
                assert_eq!(ct.len(), k);
                let back = decrypt(spec, alg, &kp.pkcs8, &ct).unwrap().unwrap();
                assert_eq!(back.as_slice(), pt.as_slice());
                assert!(encrypt(spec, alg, &kp.public_der, &vec![7u8; max + 1]).is_err());
                let mut bad = ct.clone();
                bad[10] ^= 1;
                assert!(decrypt(spec, alg, &kp.pkcs8, &bad).unwrap().is_none());
                assert!(decrypt(spec, alg, &kp.pkcs8, &ct[1..]).unwrap().is_none());
                // The other hash does not open it.
                let other = if alg == A::RsaesOaepSha1 {
                    A::RsaesOaepSha256
                } else {
                    A::RsaesOaepSha1
                };
                assert!(decrypt(spec, other, &kp.pkcs8, &ct).unwrap().is_none());
            }
        }
    }

    #[test]
    fn public_key_checks_and_pem() {
        let kp = generate(KeySpec::Rsa2048).unwrap();
        assert_eq!(
            check_public_key(KeySpec::Rsa2048, &kp.public_der).unwrap(),
            Some(())
        );
        assert_eq!(
            check_public_key(KeySpec::Rsa3072, &kp.public_der).unwrap(),
            None
        );
        let ec = generate(KeySpec::EcP256).unwrap();
        assert_eq!(
            check_public_key(KeySpec::Rsa2048, &ec.public_der).unwrap(),
            None
        );
        assert_eq!(check_public_key(KeySpec::Rsa2048, b"junk").unwrap(), None);
        assert_eq!(
            check_public_key(KeySpec::EcSm2, &kp.public_der).unwrap(),
            None
        );
        let sm2 = generate(KeySpec::EcSm2).unwrap();
        assert_eq!(
            check_public_key(KeySpec::EcSm2, &sm2.public_der).unwrap(),
            Some(())
        );
        assert_eq!(
            check_public_key(KeySpec::EcSm2, &ec.public_der).unwrap(),
            None
        );
        // P-256 SPKI: 91 bytes, the sniffable prefix of the reference (§5).
        assert_eq!(ec.public_der.len(), 91);
        let pem = public_key_pem(&ec.public_der);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"));
        assert!(pem.ends_with("\n-----END PUBLIC KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
        let k1 = generate(KeySpec::EcP256K).unwrap();
        assert_eq!(k1.public_der.len(), 88);
        assert!(public_key_pem(&k1.public_der).contains("MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAE"));
        assert!(public_key_pem(&kp.public_der).contains("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIB"));
    }

    #[test]
    fn imported_private_keys_must_be_of_the_spec_and_are_canonical() {
        let rsa = generate(KeySpec::Rsa2048).unwrap();
        let p256 = generate(KeySpec::EcP256).unwrap();
        let k1 = generate(KeySpec::EcP256K).unwrap();
        let canon = canonical_private_key(KeySpec::Rsa2048, &rsa.pkcs8).unwrap();
        assert_eq!(
            public_key_der(KeySpec::Rsa2048, &canon).unwrap(),
            rsa.public_der
        );
        assert!(canonical_private_key(KeySpec::Rsa3072, &rsa.pkcs8).is_none());
        assert!(canonical_private_key(KeySpec::EcP256, &rsa.pkcs8).is_none());
        let canon = canonical_private_key(KeySpec::EcP256, &p256.pkcs8).unwrap();
        assert_eq!(
            public_key_der(KeySpec::EcP256, &canon).unwrap(),
            p256.public_der
        );
        assert!(canonical_private_key(KeySpec::EcP256, &k1.pkcs8).is_none());
        assert!(canonical_private_key(KeySpec::EcP256K, &k1.pkcs8).is_some());
        assert!(canonical_private_key(KeySpec::EcSm2, &k1.pkcs8).is_none());
        assert!(canonical_private_key(KeySpec::EcP256, b"junk").is_none());
        assert!(canonical_private_key(KeySpec::Aes256, &[0u8; 32]).is_none());
    }

    #[test]
    fn sm2_keys_sign_and_encrypt_through_the_spec_dispatch() {
        let kp = generate(KeySpec::EcSm2).unwrap();
        assert_eq!(
            public_key_der(KeySpec::EcSm2, &kp.pkcs8).unwrap(),
            kp.public_der
        );
        let e = crate::keystore::sm::sm2_message_digest(&kp.public_der, b"msg").unwrap();
        let sig = sign(KeySpec::EcSm2, A::Sm2Dsa, &kp.pkcs8, &e).unwrap();
        assert!(verify(KeySpec::EcSm2, A::Sm2Dsa, &kp.public_der, &e, &sig).unwrap());
        assert!(!verify(KeySpec::EcSm2, A::Sm2Dsa, &kp.public_der, &e, &sig[1..]).unwrap());
        assert!(matches!(
            sign(KeySpec::EcSm2, A::Sm2Dsa, &kp.pkcs8, &e[..31]),
            Err(KmsError::InvalidParameter(..))
        ));
        assert_eq!(
            sign(KeySpec::EcSm2, A::EcdsaSha256, &kp.pkcs8, &e).unwrap_err(),
            KmsError::UnsupportedOperation
        );
        let ct = encrypt(KeySpec::EcSm2, A::Sm2Pke, &kp.public_der, b"pt").unwrap();
        assert_eq!(
            decrypt(KeySpec::EcSm2, A::Sm2Pke, &kp.pkcs8, &ct)
                .unwrap()
                .unwrap()
                .as_slice(),
            b"pt"
        );
        assert!(decrypt(KeySpec::EcSm2, A::Sm2Pke, &kp.pkcs8, &ct[1..])
            .unwrap()
            .is_none());
        assert!(encrypt(KeySpec::EcSm2, A::Sm2Pke, &kp.public_der, &[0u8; 6048]).is_err());
        assert!(encrypt(KeySpec::EcSm2, A::Sm2Pke, &kp.public_der, &[0u8; 6047]).is_ok());
        let canon = canonical_private_key(KeySpec::EcSm2, &kp.pkcs8).unwrap();
        assert_eq!(
            public_key_der(KeySpec::EcSm2, &canon).unwrap(),
            kp.public_der
        );
        assert!(canonical_private_key(KeySpec::EcSm2, b"junk").is_none());
    }

    #[test]
    fn symmetric_specs_have_no_key_pairs() {
        assert!(generate(KeySpec::Aes256).is_err());
        assert!(generate(KeySpec::Sm4).is_err());
    }
}
