//! RSA-2048 wrapping key pairs for BYOK, and the single unwrap path.
//!
//! Unwrapping must not be an oracle: [`unwrap`] returns `None` for every failure (bad
//! padding, wrong ciphertext length, wrong key, wrong algorithm) through one code path,
//! and the caller maps `None`, a wrong material length and a material mismatch to the
//! same error. The RSA operations are aws-lc-rs's constant-time implementations.

use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::key_wrap::{AesKek, KeyWrapPadded, AES_256};
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, Pkcs1PrivateDecryptingKey, PrivateDecryptingKey,
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};
use tokio::sync::Notify;
use zeroize::Zeroizing;

use super::Secret;
use crate::error::KmsError;

/// The wrapping algorithms of GetParametersForImport (reference §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrappingAlgorithm {
    RsaesPkcs1V15,
    RsaesOaepSha1,
    RsaesOaepSha256,
    /// Asymmetric key material (issue 17): `RSA-OAEP-SHA256(ESK) ‖ AES-KWP_ESK(PKCS#8)`,
    /// ESK a fresh AES-256 key (reference asymmetric §7.2, \[inference\]). Not in
    /// [`WrappingAlgorithm::ALL`], which lists the algorithms for symmetric material.
    RsaAesKeyWrapSha256,
}

impl WrappingAlgorithm {
    pub const ALL: [WrappingAlgorithm; 3] = [
        WrappingAlgorithm::RsaesPkcs1V15,
        WrappingAlgorithm::RsaesOaepSha1,
        WrappingAlgorithm::RsaesOaepSha256,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            WrappingAlgorithm::RsaesPkcs1V15 => "RSAES_PKCS1_V1_5",
            WrappingAlgorithm::RsaesOaepSha1 => "RSAES_OAEP_SHA_1",
            WrappingAlgorithm::RsaesOaepSha256 => "RSAES_OAEP_SHA_256",
            WrappingAlgorithm::RsaAesKeyWrapSha256 => "RSA_AES_KEY_WRAP_SHA_256",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain([Self::RsaAesKeyWrapSha256])
            .find(|a| a.as_str() == s)
    }
    /// Whether the algorithm wraps asymmetric key material (a PKCS#8 private key).
    pub fn for_asymmetric(self) -> bool {
        self == WrappingAlgorithm::RsaAesKeyWrapSha256
    }
}

/// A freshly generated key pair: the private key as PKCS#8 DER (wiped on drop) and the
/// public key as DER SubjectPublicKeyInfo.
pub struct KeyPair {
    pub pkcs8: Secret,
    pub public_der: Vec<u8>,
}

/// Generates an RSA-2048 key pair. Takes tens of milliseconds: call off the async runtime.
pub fn generate() -> Result<KeyPair, KmsError> {
    let key = PrivateDecryptingKey::generate(KeySize::Rsa2048)
        .map_err(|_| KmsError::internal("rsa keygen"))?;
    let pkcs8 = key
        .as_der()
        .map_err(|_| KmsError::internal("pkcs8 export"))?;
    let public_der = key
        .public_key()
        .as_der()
        .map_err(|_| KmsError::internal("spki export"))?;
    Ok(KeyPair {
        pkcs8: Zeroizing::new(pkcs8.as_ref().to_vec()),
        public_der: public_der.as_ref().to_vec(),
    })
}

/// Decrypts wrapped key material. `None` for every kind of failure.
pub fn unwrap(pkcs8: &[u8], algorithm: WrappingAlgorithm, ciphertext: &[u8]) -> Option<Secret> {
    let key = PrivateDecryptingKey::from_pkcs8(pkcs8).ok()?;
    let mut out = Zeroizing::new(vec![0u8; key.key_size_bytes()]);
    let n = match algorithm {
        WrappingAlgorithm::RsaesPkcs1V15 => Pkcs1PrivateDecryptingKey::new(key)
            .ok()?
            .decrypt(ciphertext, &mut out)
            .ok()?
            .len(),
        WrappingAlgorithm::RsaesOaepSha1 => OaepPrivateDecryptingKey::new(key)
            .ok()?
            .decrypt(&OAEP_SHA1_MGF1SHA1, ciphertext, &mut out, None)
            .ok()?
            .len(),
        WrappingAlgorithm::RsaesOaepSha256 => OaepPrivateDecryptingKey::new(key)
            .ok()?
            .decrypt(&OAEP_SHA256_MGF1SHA256, ciphertext, &mut out, None)
            .ok()?
            .len(),
        WrappingAlgorithm::RsaAesKeyWrapSha256 => {
            // The same single failure path: every failure is `None`.
            let k = key.key_size_bytes();
            if ciphertext.len() <= k {
                return None;
            }
            let (esk_ct, wrapped) = ciphertext.split_at(k);
            let n = OaepPrivateDecryptingKey::new(key)
                .ok()?
                .decrypt(&OAEP_SHA256_MGF1SHA256, esk_ct, &mut out, None)
                .ok()?
                .len();
            if n != 32 {
                return None;
            }
            let kek = AesKek::new(&AES_256, &out[..n]).ok()?;
            let mut material = Zeroizing::new(vec![0u8; wrapped.len()]);
            let m = kek.unwrap_with_padding(wrapped, &mut material).ok()?.len();
            material.truncate(m);
            return Some(material);
        }
    };
    out.truncate(n);
    Some(out)
}

/// Wraps key material under a DER SubjectPublicKeyInfo RSA public key, as a client does
/// before ImportKeyMaterial (used by `kms wrap`, `kms import-material` and `kms bench`).
/// OAEP uses the same hash for the digest and MGF1 and no label, like the openssl commands.
pub fn wrap(
    public_der: &[u8],
    algorithm: WrappingAlgorithm,
    material: &[u8],
) -> Result<Vec<u8>, String> {
    use aws_lc_rs::rsa::{OaepPublicEncryptingKey, Pkcs1PublicEncryptingKey, PublicEncryptingKey};
    let pk = PublicEncryptingKey::from_der(public_der)
        .map_err(|_| "the public key is not a DER RSA SubjectPublicKeyInfo".to_string())?;
    let mut out = vec![0u8; pk.key_size_bytes()];
    let fail = |_| "the material is too long for this key".to_string();
    let n = match algorithm {
        WrappingAlgorithm::RsaesPkcs1V15 => Pkcs1PublicEncryptingKey::new(pk)
            .map_err(|_| "bad public key".to_string())?
            .encrypt(material, &mut out)
            .map_err(fail)?
            .len(),
        WrappingAlgorithm::RsaesOaepSha1 => OaepPublicEncryptingKey::new(pk)
            .map_err(|_| "bad public key".to_string())?
            .encrypt(&OAEP_SHA1_MGF1SHA1, material, &mut out, None)
            .map_err(fail)?
            .len(),
        WrappingAlgorithm::RsaesOaepSha256 => OaepPublicEncryptingKey::new(pk)
            .map_err(|_| "bad public key".to_string())?
            .encrypt(&OAEP_SHA256_MGF1SHA256, material, &mut out, None)
            .map_err(fail)?
            .len(),
        WrappingAlgorithm::RsaAesKeyWrapSha256 => {
            // A fresh AES-256 key wrapped with RSA-OAEP-SHA256, then the material with
            // AES-KWP (RFC 5649) under it.
            let mut esk = Zeroizing::new([0u8; 32]);
            aws_lc_rs::rand::fill(esk.as_mut()).map_err(|_| "rng".to_string())?;
            let n = OaepPublicEncryptingKey::new(pk)
                .map_err(|_| "bad public key".to_string())?
                .encrypt(&OAEP_SHA256_MGF1SHA256, esk.as_ref(), &mut out, None)
                .map_err(fail)?
                .len();
            out.truncate(n);
            let kek = AesKek::new(&AES_256, esk.as_ref()).map_err(|_| "aes key".to_string())?;
            let mut wrapped = vec![0u8; material.len() + 16];
            let w = kek
                .wrap_with_padding(material, &mut wrapped)
                .map_err(|_| "the material cannot be wrapped".to_string())?
                .len();
            out.extend_from_slice(&wrapped[..w]);
            return Ok(out);
        }
    };
    out.truncate(n);
    Ok(out)
}

// ---- SM2PKE wrapping (issue 17, China's national algorithms) --------------------------

/// `WrappingKeySpec` of GetParametersForImport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrappingKeySpec {
    Rsa2048,
    /// An SM2 key pair; goes with `SM2PKE` only.
    EcSm2,
}

impl WrappingKeySpec {
    pub const ALL: [WrappingKeySpec; 2] = [WrappingKeySpec::Rsa2048, WrappingKeySpec::EcSm2];
    pub fn as_str(self) -> &'static str {
        match self {
            WrappingKeySpec::Rsa2048 => "RSA_2048",
            WrappingKeySpec::EcSm2 => "EC_SM2",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Every wrapping an import token can name: an RSA-2048 algorithm, or `SM2PKE` under an
/// `EC_SM2` key (reference §3.4, asymmetric reference §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapping {
    Rsa(WrappingAlgorithm),
    Sm2Pke,
}

impl Wrapping {
    pub fn as_str(self) -> &'static str {
        match self {
            Wrapping::Rsa(a) => a.as_str(),
            Wrapping::Sm2Pke => "SM2PKE",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        if s == "SM2PKE" {
            return Some(Wrapping::Sm2Pke);
        }
        WrappingAlgorithm::parse(s).map(Wrapping::Rsa)
    }
    /// Whether the wrapping carries asymmetric key material (RSA_AES_KEY_WRAP_SHA_256; SM2
    /// private-key import is not offered: its format is unknown, reference §7.2).
    pub fn for_asymmetric(self) -> bool {
        match self {
            Wrapping::Rsa(a) => a.for_asymmetric(),
            Wrapping::Sm2Pke => false,
        }
    }
    /// The wrapping key spec this algorithm needs.
    pub fn key_spec(self) -> WrappingKeySpec {
        match self {
            Wrapping::Rsa(_) => WrappingKeySpec::Rsa2048,
            Wrapping::Sm2Pke => WrappingKeySpec::EcSm2,
        }
    }
    /// Unwraps key material; `None` for every kind of failure (one path per algorithm,
    /// and a private key of the other kind fails like a bad ciphertext).
    pub fn unwrap(self, pkcs8: &[u8], ciphertext: &[u8]) -> Option<Secret> {
        match self {
            Wrapping::Rsa(a) => unwrap(pkcs8, a, ciphertext),
            Wrapping::Sm2Pke => super::sm::sm2_decrypt(pkcs8, ciphertext),
        }
    }
    /// Wraps material as a client does (`kms wrap`); SM2PKE output is DER GM/T 0009, the
    /// shape `openssl pkeyutl -encrypt` writes.
    pub fn wrap(self, public_der: &[u8], material: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Wrapping::Rsa(a) => wrap(public_der, a, material),
            Wrapping::Sm2Pke => super::sm::sm2_encrypt(public_der, material),
        }
    }
}

/// A fresh SM2 wrapping key pair. Not pooled like RSA: SM2 key generation is one scalar
/// multiplication (well under a millisecond), cheaper than keeping a pool warm.
pub fn generate_sm2() -> Result<KeyPair, KmsError> {
    let kp = super::sm::sm2_generate()?;
    Ok(KeyPair {
        pkcs8: kp.pkcs8,
        public_der: kp.public_der,
    })
}

/// A pool of pre-generated key pairs so GetParametersForImport never waits for RSA key
/// generation while the pool is not drained. A background task refills it.
pub struct Pool {
    target: usize,
    keys: Mutex<Vec<KeyPair>>,
    wake: Notify,
}

impl Pool {
    pub fn new(target: usize) -> Arc<Self> {
        Arc::new(Self {
            target,
            keys: Mutex::new(Vec::with_capacity(target)),
            wake: Notify::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.keys.lock().map(|k| k.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes a key pair from the pool, or generates one (off the runtime) if it is empty.
    pub async fn take(&self) -> Result<KeyPair, KmsError> {
        let pooled = self.keys.lock().ok().and_then(|mut k| k.pop());
        self.wake.notify_one();
        match pooled {
            Some(k) => Ok(k),
            None => tokio::task::spawn_blocking(generate)
                .await
                .map_err(KmsError::internal)?,
        }
    }

    /// Runs forever, keeping the pool at its target size.
    pub async fn refill_forever(self: Arc<Self>) {
        loop {
            while self.len() < self.target {
                match tokio::task::spawn_blocking(generate).await {
                    Ok(Ok(k)) => {
                        if let Ok(mut keys) = self.keys.lock() {
                            keys.push(k);
                        }
                    }
                    _ => {
                        tracing::error!("wrapping key generation failed");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
            self.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn wrap(public_der: &[u8], alg: WrappingAlgorithm, msg: &[u8]) -> Vec<u8> {
        super::wrap(public_der, alg, msg).unwrap()
    }

    #[test]
    fn each_algorithm_round_trips_and_rejects_the_others() {
        let kp = generate().unwrap();
        assert_eq!(kp.public_der.len(), 294);
        let material = [0x42u8; 32];
        for alg in WrappingAlgorithm::ALL {
            let ct = wrap(&kp.public_der, alg, &material);
            assert_eq!(unwrap(&kp.pkcs8, alg, &ct).unwrap().as_slice(), &material);
            for other in WrappingAlgorithm::ALL.into_iter().filter(|o| *o != alg) {
                assert!(
                    unwrap(&kp.pkcs8, other, &ct).is_none(),
                    "{alg:?} as {other:?}"
                );
            }
            let mut bad = ct.clone();
            bad[100] ^= 1;
            assert!(unwrap(&kp.pkcs8, alg, &bad).is_none());
            assert!(unwrap(&kp.pkcs8, alg, &ct[..255]).is_none());
            assert!(unwrap(&kp.pkcs8, alg, &[]).is_none());
        }
        let other = generate().unwrap();
        let ct = wrap(
            &other.public_der,
            WrappingAlgorithm::RsaesOaepSha256,
            &material,
        );
        assert!(unwrap(&kp.pkcs8, WrappingAlgorithm::RsaesOaepSha256, &ct).is_none());
        assert!(unwrap(b"not a key", WrappingAlgorithm::RsaesOaepSha256, &ct).is_none());
    }

    #[test]
    fn sm2pke_wrapping_round_trips_and_fails_closed() {
        let kp = generate_sm2().unwrap();
        let rsa = generate().unwrap();
        let material = [0x24u8; 16];
        let ct = Wrapping::Sm2Pke.wrap(&kp.public_der, &material).unwrap();
        // DER GM/T 0009 of 16 bytes: 124 when both coordinates need a sign byte, a byte
        // less for each that does not (openssl writes the same shape).
        assert_eq!(ct[0], 0x30);
        assert!((118..=124).contains(&ct.len()), "{}", ct.len());
        assert_eq!(
            Wrapping::Sm2Pke.unwrap(&kp.pkcs8, &ct).unwrap().as_slice(),
            &material
        );
        // The other key kind or algorithm fails like a bad ciphertext.
        assert!(Wrapping::Sm2Pke.unwrap(&rsa.pkcs8, &ct).is_none());
        for a in WrappingAlgorithm::ALL {
            assert!(Wrapping::Rsa(a).unwrap(&kp.pkcs8, &ct).is_none());
        }
        assert!(Wrapping::Sm2Pke.wrap(&rsa.public_der, &material).is_err());
        assert_eq!(Wrapping::parse("SM2PKE"), Some(Wrapping::Sm2Pke));
        assert_eq!(
            Wrapping::parse("RSAES_OAEP_SHA_1"),
            Some(Wrapping::Rsa(WrappingAlgorithm::RsaesOaepSha1))
        );
        assert_eq!(Wrapping::parse("sm2pke"), None);
        assert_eq!(Wrapping::Sm2Pke.key_spec(), WrappingKeySpec::EcSm2);
        assert_eq!(
            WrappingKeySpec::parse("EC_SM2"),
            Some(WrappingKeySpec::EcSm2)
        );
        assert_eq!(WrappingKeySpec::parse("EC_SM2x"), None);
    }

    #[test]
    fn algorithm_names() {
        for a in WrappingAlgorithm::ALL {
            assert_eq!(WrappingAlgorithm::parse(a.as_str()), Some(a));
        }
        assert_eq!(WrappingAlgorithm::parse("RSAES_OAEP_SHA_512"), None);
        assert_eq!(
            WrappingAlgorithm::parse("RSA_AES_KEY_WRAP_SHA_256"),
            Some(WrappingAlgorithm::RsaAesKeyWrapSha256)
        );
        assert!(!WrappingAlgorithm::ALL.contains(&WrappingAlgorithm::RsaAesKeyWrapSha256));
    }

    /// RSA_AES_KEY_WRAP_SHA_256 (asymmetric material): round trip for a PKCS#8-sized value,
    /// and every damaged part fails through the one `None`.
    #[test]
    fn rsa_aes_key_wrap_round_trips_and_fails_as_one() {
        let kp = generate().unwrap();
        let alg = WrappingAlgorithm::RsaAesKeyWrapSha256;
        let material: Vec<u8> = (0..1217u32).map(|i| (i * 7) as u8).collect();
        let ct = super::wrap(&kp.public_der, alg, &material).unwrap();
        // 256 bytes of RSA, then KWP output: the material padded to 8 bytes, plus 8.
        assert_eq!(ct.len(), 256 + material.len().div_ceil(8) * 8 + 8);
        assert_eq!(unwrap(&kp.pkcs8, alg, &ct).unwrap().as_slice(), material);
        for i in [0, 100, 255, 256, 300, ct.len() - 1] {
            let mut bad = ct.clone();
            bad[i] ^= 1;
            assert!(unwrap(&kp.pkcs8, alg, &bad).is_none(), "byte {i}");
        }
        assert!(unwrap(&kp.pkcs8, alg, &ct[..256]).is_none());
        assert!(unwrap(&kp.pkcs8, alg, &ct[..ct.len() - 8]).is_none());
        assert!(unwrap(&kp.pkcs8, WrappingAlgorithm::RsaesOaepSha256, &ct).is_none());
        // A plain OAEP-wrapped value is not a key-wrapped one.
        let plain = super::wrap(
            &kp.public_der,
            WrappingAlgorithm::RsaesOaepSha256,
            &[1u8; 32],
        )
        .unwrap();
        assert!(unwrap(&kp.pkcs8, alg, &plain).is_none());
    }
}
