//! Asymmetric keys (issue 17, RSA/EC half): new key versions holding key pairs,
//! GetPublicKey, AsymmetricSign/Verify/Encrypt/Decrypt, the data-key export
//! (ExportDataKey, GenerateAndExportDataKey) and ReEncrypt from a public-key ciphertext.
//!
//! The checks of every action on an asymmetric key version run in the order of the
//! reference (asymmetric §11.1): the key exists (404), the version exists (404), the key's
//! kind, usage and the algorithm fit (400 `Rejected.UnsupportedOperation`), then the state
//! matrix (409). The cryptography is [`crate::keystore::asymmetric`], one `match` per
//! operation on the key spec.

use super::crypto::{EncryptionContext, Sealed};
use super::state::{check, row, StateRow};
use super::{new_id, Caller, Kms};
use crate::error::KmsError;
use crate::keystore::{asymmetric, Secret};
use crate::model::{AsymmetricAlgorithm, KeySpec};
use crate::store::{KeyRecord, KeyVersionRecord};

/// What one asymmetric call answers besides its value: the key and version it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRef {
    pub key_id: String,
    pub key_version_id: String,
}

/// A caller's public key to export a data key to (`PublicKeyBlob`, `WrappingKeySpec`,
/// `WrappingAlgorithm`), checked by [`ExportTarget::parse`].
#[derive(Debug, Clone)]
pub struct ExportTarget {
    spec: KeySpec,
    algorithm: AsymmetricAlgorithm,
    public_der: Vec<u8>,
}

impl ExportTarget {
    /// Checks the three parameters: the spec is one a data key can be exported to
    /// (`RSA_2048` or `EC_SM2`), the algorithm an encryption algorithm of that
    /// spec, the blob a DER SubjectPublicKeyInfo of that spec. Each failure is
    /// `InvalidParameter` naming the parameter (reference asymmetric §4.1, \[inference\]).
    pub fn parse(spec: &str, algorithm: &str, public_der: Vec<u8>) -> Result<Self, KmsError> {
        let spec = KeySpec::parse(spec)
            .filter(|s| matches!(s, KeySpec::Rsa2048 | KeySpec::EcSm2))
            .ok_or_else(|| {
                KmsError::invalid_because("WrappingKeySpec", "Use RSA_2048 or EC_SM2.")
            })?;
        let algorithm = AsymmetricAlgorithm::parse(algorithm)
            .filter(|a| a.fits(spec) && a.usage() == crate::model::KeyUsage::EncryptDecrypt)
            .ok_or_else(|| {
                KmsError::invalid_because(
                    "WrappingAlgorithm",
                    "Use RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1 with RSA_2048, SM2PKE with EC_SM2.",
                )
            })?;
        if asymmetric::check_public_key(spec, &public_der)?.is_none() {
            return Err(KmsError::invalid_because(
                "PublicKeyBlob",
                "The public key is not a base64 DER SubjectPublicKeyInfo of the WrappingKeySpec.",
            ));
        }
        Ok(Self {
            spec,
            algorithm,
            public_der,
        })
    }

    fn wrap(&self, data_key: &[u8]) -> Result<Vec<u8>, KmsError> {
        asymmetric::encrypt(self.spec, self.algorithm, &self.public_der, data_key)
    }
}

/// The result of ExportDataKey and GenerateAndExportDataKey.
#[derive(Debug, Clone)]
pub struct Exported {
    /// GenerateAndExportDataKey only: the data key under the CMK.
    pub ciphertext_blob: Option<Vec<u8>>,
    pub exported_data_key: Vec<u8>,
    pub key_id: String,
    pub key_version_id: String,
}

fn bad_ciphertext() -> KmsError {
    KmsError::invalid_because(
        "CiphertextBlob",
        "The ciphertext does not decrypt with this key version and algorithm.",
    )
}

fn check_digest(digest: &[u8]) -> Result<(), KmsError> {
    if digest.len() != asymmetric::DIGEST_LEN {
        return Err(KmsError::invalid_because(
            "Digest",
            "The digest is the base64 of 32 bytes (the message's SHA-256, or SM3(Z||M) for SM2DSA); it is not hashed again.",
        ));
    }
    Ok(())
}

impl Kms {
    /// A new version of a key of `spec`: 256-bit material for a symmetric key, a fresh key
    /// pair (generated off the async runtime) for an asymmetric one; sealed either way.
    pub(crate) async fn new_version_of(
        &self,
        key_id: &str,
        spec: KeySpec,
    ) -> Result<KeyVersionRecord, KmsError> {
        if !spec.is_asymmetric() {
            return self.new_version(key_id, spec);
        }
        let pair = tokio::task::spawn_blocking(move || asymmetric::generate(spec))
            .await
            .map_err(KmsError::internal)??;
        let version_id = new_id();
        let sealed = self.seal_material(key_id, &version_id, &pair.pkcs8)?;
        Ok(KeyVersionRecord {
            key_id: key_id.to_string(),
            version_id,
            creation_date: self.now(),
            sealed_material: Some(sealed),
        })
    }

    /// Loads an asymmetric key version for an action: the key, and its opened private key
    /// (PKCS#8). `algorithm`, when the action has one, must fit the key's spec and usage.
    async fn key_pair(
        &self,
        caller: &Caller,
        key_ref: &str,
        version_id: &str,
        state_row: StateRow,
        algorithm: Option<AsymmetricAlgorithm>,
    ) -> Result<(KeyRecord, Secret), KmsError> {
        let loc = self.resolve(caller, key_ref).await?;
        let key = self.load(&loc).await?;
        let version = self
            .store
            .get_version(&key.key_id, version_id)
            .await?
            .ok_or(KmsError::KeyVersionNotFound)?;
        if !key.key_spec.is_asymmetric() {
            return Err(KmsError::UnsupportedOperation);
        }
        if let Some(a) = algorithm {
            if !a.fits(key.key_spec) || a.usage() != key.key_usage {
                return Err(KmsError::UnsupportedOperation);
            }
        }
        check(state_row, key.state)?;
        let sealed = version
            .sealed_material
            .ok_or(KmsError::Rejected(crate::error::Rejection::PendingImport))?;
        let pkcs8 = self.open_material(&key.key_id, version_id, &sealed)?;
        Ok((key, pkcs8))
    }

    fn version_ref(key: &KeyRecord, version_id: &str) -> VersionRef {
        VersionRef {
            key_id: key.key_id.clone(),
            key_version_id: version_id.to_string(),
        }
    }

    /// GetPublicKey: the version's public key as PEM SubjectPublicKeyInfo.
    pub async fn get_public_key(
        &self,
        caller: &Caller,
        key_ref: &str,
        version_id: &str,
        dry_run: bool,
    ) -> Result<(VersionRef, String), KmsError> {
        let (key, pkcs8) = self
            .key_pair(caller, key_ref, version_id, row::GetPublicKey, None)
            .await?;
        let der = asymmetric::public_key_der(key.key_spec, &pkcs8)?;
        if dry_run {
            return Err(KmsError::DryRun);
        }
        Ok((
            Self::version_ref(&key, version_id),
            asymmetric::public_key_pem(&der),
        ))
    }

    /// AsymmetricSign: signs a 32-byte digest as given.
    pub async fn asymmetric_sign(
        &self,
        caller: &Caller,
        key_ref: &str,
        version_id: &str,
        algorithm: AsymmetricAlgorithm,
        digest: &[u8],
        dry_run: bool,
    ) -> Result<(VersionRef, Vec<u8>), KmsError> {
        check_digest(digest)?;
        let (key, pkcs8) = self
            .key_pair(
                caller,
                key_ref,
                version_id,
                row::AsymmetricSign,
                Some(algorithm),
            )
            .await?;
        if dry_run {
            return Err(KmsError::DryRun);
        }
        let sig = asymmetric::sign(key.key_spec, algorithm, &pkcs8, digest)?;
        Ok((Self::version_ref(&key, version_id), sig))
    }

    /// AsymmetricVerify: whether `signature` is a valid signature of `digest` (a wrong or
    /// malformed signature is `false`, not an error).
    #[allow(clippy::too_many_arguments)]
    pub async fn asymmetric_verify(
        &self,
        caller: &Caller,
        key_ref: &str,
        version_id: &str,
        algorithm: AsymmetricAlgorithm,
        digest: &[u8],
        signature: &[u8],
        dry_run: bool,
    ) -> Result<(VersionRef, bool), KmsError> {
        check_digest(digest)?;
        let (key, pkcs8) = self
            .key_pair(
                caller,
                key_ref,
                version_id,
                row::AsymmetricVerify,
                Some(algorithm),
            )
            .await?;
        let public = asymmetric::public_key_der(key.key_spec, &pkcs8)?;
        drop(pkcs8);
        if dry_run {
            return Err(KmsError::DryRun);
        }
        let ok = asymmetric::verify(key.key_spec, algorithm, &public, digest, signature)?;
        Ok((Self::version_ref(&key, version_id), ok))
    }

    /// AsymmetricEncrypt: the raw algorithm output under the version's public key.
    pub async fn asymmetric_encrypt(
        &self,
        caller: &Caller,
        key_ref: &str,
        version_id: &str,
        algorithm: AsymmetricAlgorithm,
        plaintext: &[u8],
        dry_run: bool,
    ) -> Result<(VersionRef, Vec<u8>), KmsError> {
        let (key, pkcs8) = self
            .key_pair(
                caller,
                key_ref,
                version_id,
                row::AsymmetricEncrypt,
                Some(algorithm),
            )
            .await?;
        let public = asymmetric::public_key_der(key.key_spec, &pkcs8)?;
        drop(pkcs8);
        let ct = asymmetric::encrypt(key.key_spec, algorithm, &public, plaintext)?;
        if dry_run {
            return Err(KmsError::DryRun);
        }
        Ok((Self::version_ref(&key, version_id), ct))
    }

    async fn open_asymmetric(
        &self,
        caller: &Caller,
        key_ref: &str,
        version_id: &str,
        state_row: StateRow,
        algorithm: AsymmetricAlgorithm,
        ciphertext: &[u8],
    ) -> Result<(VersionRef, Secret), KmsError> {
        let (key, pkcs8) = self
            .key_pair(caller, key_ref, version_id, state_row, Some(algorithm))
            .await?;
        let plaintext = asymmetric::decrypt(key.key_spec, algorithm, &pkcs8, ciphertext)?
            .ok_or_else(bad_ciphertext)?;
        Ok((Self::version_ref(&key, version_id), plaintext))
    }

    /// AsymmetricDecrypt. Every decryption failure is the same `InvalidParameter`.
    pub async fn asymmetric_decrypt(
        &self,
        caller: &Caller,
        key_ref: &str,
        version_id: &str,
        algorithm: AsymmetricAlgorithm,
        ciphertext: &[u8],
        dry_run: bool,
    ) -> Result<(VersionRef, Secret), KmsError> {
        let opened = self
            .open_asymmetric(
                caller,
                key_ref,
                version_id,
                row::AsymmetricDecrypt,
                algorithm,
                ciphertext,
            )
            .await?;
        if dry_run {
            return Err(KmsError::DryRun);
        }
        Ok(opened)
    }

    /// ExportDataKey: opens a data key's ciphertext blob (as Decrypt does) and encrypts the
    /// data key to the caller's public key.
    pub async fn export_data_key(
        &self,
        caller: &Caller,
        ciphertext_blob: &[u8],
        context: &EncryptionContext,
        target: &ExportTarget,
        dry_run: bool,
    ) -> Result<Exported, KmsError> {
        let opened = self
            .open_blob(caller, row::ExportDataKey, ciphertext_blob, context)
            .await?;
        let exported_data_key = target.wrap(&opened.plaintext)?;
        if dry_run {
            return Err(KmsError::DryRun);
        }
        Ok(Exported {
            ciphertext_blob: None,
            exported_data_key,
            key_id: opened.key_id,
            key_version_id: opened.key_version_id,
        })
    }

    /// GenerateAndExportDataKey: a random data key, encrypted under the CMK's primary
    /// version (a GenerateDataKey blob) and to the caller's public key.
    pub async fn generate_and_export_data_key(
        &self,
        caller: &Caller,
        key_ref: &str,
        number_of_bytes: usize,
        context: &EncryptionContext,
        target: &ExportTarget,
        dry_run: bool,
    ) -> Result<Exported, KmsError> {
        if !(1..=1024).contains(&number_of_bytes) {
            return Err(KmsError::invalid_because(
                "NumberOfBytes",
                "The data key is 1 to 1024 bytes.",
            ));
        }
        let (data_key, iv) = self.keystore.random_with_iv(number_of_bytes)?;
        let sealed = self
            .seal_under(
                caller,
                key_ref,
                row::GenerateAndExportDataKey,
                context,
                &data_key,
                Some(iv),
            )
            .await?;
        let exported_data_key = target.wrap(&data_key)?;
        if dry_run {
            return Err(KmsError::DryRun);
        }
        Ok(Exported {
            ciphertext_blob: Some(sealed.ciphertext_blob),
            exported_data_key,
            key_id: sealed.key_id,
            key_version_id: sealed.key_version_id,
        })
    }

    /// ReEncrypt from a public-key ciphertext (AsymmetricEncrypt output, an exported data
    /// key, or made outside with the public key): decrypted with the source key version,
    /// then sealed under the (symmetric) destination key's primary version.
    #[allow(clippy::too_many_arguments)]
    pub async fn re_encrypt_from_asymmetric(
        &self,
        caller: &Caller,
        ciphertext: &[u8],
        source_key_ref: &str,
        source_version_id: &str,
        source_algorithm: AsymmetricAlgorithm,
        destination_key_ref: &str,
        destination_context: &EncryptionContext,
        dry_run: bool,
    ) -> Result<Sealed, KmsError> {
        let (_, plaintext) = self
            .open_asymmetric(
                caller,
                source_key_ref,
                source_version_id,
                row::ReEncrypt,
                source_algorithm,
                ciphertext,
            )
            .await?;
        let sealed = self
            .seal_under(
                caller,
                destination_key_ref,
                row::ReEncrypt,
                destination_context,
                &plaintext,
                None,
            )
            .await?;
        if dry_run {
            return Err(KmsError::DryRun);
        }
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Rejection;
    use crate::service::keys::CreateKeyInput;
    use crate::service::testing::kms;
    use crate::service::versions::MIN_ROTATION_SECONDS;

    async fn create(kms: &Kms, caller: &Caller, spec: &str, usage: &str) -> (String, String) {
        let k = kms
            .create_key(
                caller,
                CreateKeyInput {
                    key_spec: Some(spec.into()),
                    key_usage: Some(usage.into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let v = kms.list_key_versions(caller, &k.key_id).await.unwrap();
        (k.key_id, v[0].version_id.clone())
    }

    #[tokio::test]
    async fn checks_run_in_the_reference_order() {
        let (kms, _c, caller) = kms();
        let (k, v) = create(&kms, &caller, "EC_P256", "SIGN/VERIFY").await;
        let d = [1u8; 32];
        let sign = |key: String, ver: String, alg, digest: Vec<u8>| {
            let kms = &kms;
            let caller = &caller;
            async move {
                kms.asymmetric_sign(caller, &key, &ver, alg, &digest, false)
                    .await
                    .map(|(_, s)| s)
            }
        };
        let ecdsa = AsymmetricAlgorithm::EcdsaSha256;
        assert!(sign(k.clone(), v.clone(), ecdsa, d.to_vec()).await.is_ok());
        // digest length first (a parameter), then the key, the version, the fit, the state
        kms.disable_key(&caller, &k).await.unwrap();
        assert!(matches!(
            sign(k.clone(), v.clone(), ecdsa, vec![0; 31]).await,
            Err(KmsError::InvalidParameter(..))
        ));
        assert_eq!(
            sign("nope".into(), v.clone(), ecdsa, d.to_vec()).await,
            Err(KmsError::KeyNotFound)
        );
        assert_eq!(
            sign(k.clone(), "nope".into(), ecdsa, d.to_vec()).await,
            Err(KmsError::KeyVersionNotFound)
        );
        assert_eq!(
            sign(
                k.clone(),
                v.clone(),
                AsymmetricAlgorithm::RsaPssSha256,
                d.to_vec()
            )
            .await,
            Err(KmsError::UnsupportedOperation)
        );
        assert_eq!(
            sign(k.clone(), v.clone(), ecdsa, d.to_vec()).await,
            Err(KmsError::Rejected(Rejection::Disabled))
        );
        kms.enable_key(&caller, &k).await.unwrap();
        assert_eq!(
            kms.get_public_key(&caller, &k, &v, true).await.unwrap_err(),
            KmsError::DryRun
        );
    }

    #[tokio::test]
    async fn versions_every_seven_days_and_old_ones_keep_working() {
        let (kms, clock, caller) = kms();
        let (k, v1) = create(&kms, &caller, "RSA_2048", "ENCRYPT/DECRYPT").await;
        assert_eq!(
            kms.create_key_version(&caller, &k).await.unwrap_err(),
            KmsError::UnsupportedOperation
        );
        clock.advance(MIN_ROTATION_SECONDS - 1);
        assert_eq!(
            kms.create_key_version(&caller, &k).await.unwrap_err(),
            KmsError::UnsupportedOperation
        );
        clock.advance(1);
        let v2 = kms
            .create_key_version(&caller, &k)
            .await
            .unwrap()
            .version_id;
        let oaep = AsymmetricAlgorithm::RsaesOaepSha256;
        for v in [&v1, &v2] {
            let (_, ct) = kms
                .asymmetric_encrypt(&caller, &k, v, oaep, b"hello", false)
                .await
                .unwrap();
            let (r, pt) = kms
                .asymmetric_decrypt(&caller, &k, v, oaep, &ct, false)
                .await
                .unwrap();
            assert_eq!(
                (r.key_version_id.as_str(), pt.as_slice()),
                (v.as_str(), &b"hello"[..])
            );
            let other = if v == &v1 { &v2 } else { &v1 };
            assert!(kms
                .asymmetric_decrypt(&caller, &k, other, oaep, &ct, false)
                .await
                .is_err());
        }
        // No automatic rotation for asymmetric keys.
        assert_eq!(
            kms.update_rotation_policy(&caller, &k, true, Some("30d"))
                .await
                .unwrap_err(),
            KmsError::UnsupportedOperation
        );
    }

    #[tokio::test]
    async fn symmetric_and_asymmetric_actions_do_not_cross() {
        let (kms, _c, caller) = kms();
        let (k, v) = create(&kms, &caller, "RSA_3072", "SIGN/VERIFY").await;
        let ctx = EncryptionContext::default();
        assert_eq!(
            kms.encrypt(&caller, &k, b"x", &ctx, false)
                .await
                .unwrap_err(),
            KmsError::UnsupportedOperation
        );
        let aes = kms
            .create_key(&caller, CreateKeyInput::default())
            .await
            .unwrap();
        assert_eq!(
            kms.get_public_key(&caller, &aes.key_id, &aes.primary_version, false)
                .await
                .unwrap_err(),
            KmsError::UnsupportedOperation
        );
        let (_, pem) = kms.get_public_key(&caller, &k, &v, false).await.unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\nMIIBojANBgkqhkiG9w0BAQEFAAOCAY8AMIIB"));
    }
}
