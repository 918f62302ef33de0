//! RSA-2048 wrapping key pairs for BYOK, and the single unwrap path.
//!
//! Unwrapping must not be an oracle: [`unwrap`] returns `None` for every failure (bad
//! padding, wrong ciphertext length, wrong key, wrong algorithm) through one code path,
//! and the caller maps `None`, a wrong material length and a material mismatch to the
//! same error. The RSA operations are aws-lc-rs's constant-time implementations.

use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
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
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
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
    };
    out.truncate(n);
    Ok(out)
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
    fn algorithm_names() {
        for a in WrappingAlgorithm::ALL {
            assert_eq!(WrappingAlgorithm::parse(a.as_str()), Some(a));
        }
        assert_eq!(WrappingAlgorithm::parse("RSAES_OAEP_SHA_512"), None);
    }
}
