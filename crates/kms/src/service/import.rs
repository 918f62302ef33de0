//! Bring your own key: GetParametersForImport, ImportKeyMaterial, DeleteKeyMaterial, and
//! the expiry of imported material (reference §3.4–3.7).
//!
//! Rules, each enforced here:
//! - Only `Origin=EXTERNAL` keys take these calls (`Unsupported.Origin`).
//! - Every GetParametersForImport issues a new RSA-2048 pair and token; a token stays usable
//!   for its whole lifetime (24 h) and only for its key, its public key and its algorithm.
//!   A key has at most `max_import_tokens_per_key` (100) outstanding tokens: the call that
//!   goes beyond withdraws the oldest (it then answers `InvalidImportToken`), so the newest
//!   tokens always work and a loop of calls cannot pile up wrapping keys.
//! - The first import binds the key to its material for good, through a keyed commitment
//!   (HMAC under a root-derived key; never the material itself). Later imports must match.
//! - After 10 failed unwraps with one token's wrapping key the token is withdrawn (it then
//!   answers `InvalidImportToken`): a padding-oracle attack needs thousands of queries. Each
//!   attempt is claimed in the store before the unwrap and counts as failed until it
//!   succeeds, so concurrent requests cannot get more than 10 unwraps out of one token.
//! - Unwrapping is not an oracle: once the token is accepted, every failure (bad padding,
//!   wrong ciphertext length, a different public key or algorithm, material that is not 32
//!   bytes, material that differs from the bound material) is the same `InvalidKeyMaterial`
//!   error with the same message, and leaves the key unchanged. Wrapping under another
//!   public key or with another algorithm can only show as a failed unwrap, so it gets that
//!   error too, not `InvalidImportToken` ([inference]: telling them apart would be exactly
//!   the padding oracle the rule forbids).

use std::sync::Arc;

use base64::Engine;

use super::state::{check, row, KeyState};
use super::{new_id, Caller, Kms};
use crate::error::KmsError;
use crate::keystore::token::TokenClaims;
use crate::keystore::wrapping::{self, Wrapping, WrappingKeySpec};
use crate::keystore::Keystore;
use crate::model::Origin;
use crate::store::{KeyLocator, KeyMutation, KeyRecord, VersionChange, WrappingKeyRecord};

pub const WRAPPING_KEY_SPEC: &str = "RSA_2048";
/// Material length of `Aliyun_AES_256` keys; `Aliyun_SM4` takes 16 bytes
/// ([`KeySpec::material_len`](crate::model::KeySpec::material_len)).
pub const MATERIAL_LEN: usize = 32;

/// What GetParametersForImport returns.
#[derive(Debug, Clone)]
pub struct ImportParameters {
    pub key_id: String,
    pub import_token: String,
    /// DER SubjectPublicKeyInfo of the RSA-2048 wrapping key.
    pub public_key_der: Vec<u8>,
    pub token_expire_time: i64,
}

pub(crate) fn wrapping_key_aad(wrapping_key_id: &str, key_id: &str) -> String {
    format!("wrapping-key:{wrapping_key_id}:{key_id}")
}

fn require_external(key: &KeyRecord) -> Result<(), KmsError> {
    if key.origin != Origin::External {
        return Err(KmsError::UnsupportedOrigin);
    }
    Ok(())
}

/// Removes the material of a key (DeleteKeyMaterial and expiry): PendingImport, unless the
/// key is PendingDeletion, which keeps its state and DeleteDate.
fn drop_material(k: &mut KeyRecord) -> Vec<VersionChange> {
    k.remove_material();
    vec![VersionChange::SetMaterial {
        version_id: k.primary_version.clone(),
        sealed_material: None,
    }]
}

/// The store mutation both ImportKeyMaterial paths (software and HSM) end with. Under the
/// store's lock it checks origin and state again, binds the key to its material on the first
/// import (a keyed commitment over `commit_input`) or requires the same material on later
/// ones, sets the expiry, enables a PendingImport key and stores `sealed` as the primary
/// version's material. `commit_input` is the material itself (software) or the HSM's tag
/// over it (`hsm::ops::Unwrapped::commitment_input`).
pub(crate) fn bind_material(
    keystore: Arc<Keystore>,
    commit_input: impl AsRef<[u8]> + Send + 'static,
    sealed: Vec<u8>,
    expire: Option<i64>,
) -> KeyMutation {
    Box::new(move |k| {
        require_external(k)?;
        check(row::ImportKeyMaterial, k.state)?;
        let input = commit_input.as_ref();
        match &k.material_commitment {
            Some(c) => {
                if !keystore.commitment_matches(&k.key_id, input, c) {
                    return Err(KmsError::InvalidKeyMaterial);
                }
            }
            None => k.material_commitment = Some(keystore.commitment(&k.key_id, input)),
        }
        k.material_present = true;
        k.material_expire = expire;
        if k.state == KeyState::PendingImport {
            k.state = KeyState::Enabled;
        }
        Ok(vec![VersionChange::SetMaterial {
            version_id: k.primary_version.clone(),
            sealed_material: Some(sealed),
        }])
    })
}

impl Kms {
    /// Records a new wrapping key of `key` for GetParametersForImport (software and HSM):
    /// beyond `max_import_tokens_per_key` the oldest are withdrawn; returns how many were.
    pub(crate) async fn record_wrapping_key(
        &self,
        key: &KeyRecord,
        wrapping_key_id: &str,
        algorithm: &str,
        sealed_private_key: Vec<u8>,
        expires: i64,
    ) -> Result<u64, crate::store::StoreError> {
        let withdrawn = self
            .store
            .insert_wrapping_key(
                WrappingKeyRecord {
                    wrapping_key_id: wrapping_key_id.to_string(),
                    key_id: key.key_id.clone(),
                    account_id: key.account_id.clone(),
                    algorithm: algorithm.to_string(),
                    sealed_private_key,
                    expires,
                },
                self.config.max_import_tokens_per_key,
            )
            .await?;
        if withdrawn > 0 {
            tracing::info!(key_id = %key.key_id, withdrawn, "oldest import tokens withdrawn: the key has reached its limit of outstanding tokens");
        }
        Ok(withdrawn)
    }

    /// The import token of a wrapping key just recorded for `key`.
    pub(crate) fn import_token_for(
        &self,
        key: &KeyRecord,
        wrapping_key_id: String,
        algorithm: &str,
        expires: i64,
    ) -> Result<String, KmsError> {
        self.keystore.issue_token(&TokenClaims {
            account_id: key.account_id.clone(),
            region: key.region.clone(),
            key_id: key.key_id.clone(),
            wrapping_key_id,
            algorithm: algorithm.to_string(),
            expires,
        })
    }

    pub async fn get_parameters_for_import(
        &self,
        caller: &Caller,
        key_ref: &str,
        wrapping_algorithm: &str,
        wrapping_key_spec: &str,
    ) -> Result<ImportParameters, KmsError> {
        let algorithm = Wrapping::parse(wrapping_algorithm).ok_or_else(|| {
            KmsError::invalid_because(
                "WrappingAlgorithm",
                "Use RSAES_PKCS1_V1_5, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2PKE or RSA_AES_KEY_WRAP_SHA_256.",
            )
        })?;
        let spec = WrappingKeySpec::parse(wrapping_key_spec).ok_or_else(|| {
            KmsError::invalid_because("WrappingKeySpec", "Use RSA_2048 or EC_SM2.")
        })?;
        if algorithm.key_spec() != spec {
            return Err(KmsError::invalid_because(
                "WrappingAlgorithm",
                "SM2PKE goes with WrappingKeySpec EC_SM2; the RSA algorithms with RSA_2048.",
            ));
        }
        let loc = self.locate(caller, key_ref)?;
        let key = self.load(&loc).await?;
        require_external(&key)?;
        // Asymmetric keys take a private key wrapped with RSA_AES_KEY_WRAP_SHA_256, symmetric
        // keys 32 bytes wrapped with RSA (issue 17; reference asymmetric §7.2).
        if algorithm.for_asymmetric() != key.key_spec.is_asymmetric() {
            return Err(KmsError::invalid_because(
                "WrappingAlgorithm",
                if key.key_spec.is_asymmetric() {
                    "Asymmetric key material is wrapped with RSA_AES_KEY_WRAP_SHA_256."
                } else {
                    "Use RSAES_PKCS1_V1_5, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256 or SM2PKE."
                },
            ));
        }
        check(row::GetParametersForImport, key.state)?;
        if key.protection_level == crate::model::ProtectionLevel::Hsm {
            // The wrapping pair is made in the token (issue 20; see `hsm_keys`).
            return match algorithm {
                Wrapping::Rsa(a) => self.hsm_import_parameters(&key, a).await,
                // [inference] SM2 wrapping keys are not made in the token (SoftHSM2 and most
                // modules have no SM2): refused by name rather than unwrapped in software.
                Wrapping::Sm2Pke => Err(KmsError::invalid_because(
                    "WrappingAlgorithm",
                    "SM2PKE cannot be unwrapped inside the HSM, and the material of an HSM key is never unwrapped outside it; use an RSAES_* algorithm.",
                )),
            };
        }

        let pair = match algorithm {
            Wrapping::Rsa(_) => self.pool.take().await?,
            Wrapping::Sm2Pke => wrapping::generate_sm2()?,
        };
        let wrapping_key_id = new_id();
        let expires = self.now() + self.config.import_token_lifetime;
        let sealed_private_key = self.keystore.seal(
            wrapping_key_aad(&wrapping_key_id, &key.key_id).as_bytes(),
            &pair.pkcs8,
        )?;
        self.record_wrapping_key(
            &key,
            &wrapping_key_id,
            algorithm.as_str(),
            sealed_private_key,
            expires,
        )
        .await?;
        let import_token =
            self.import_token_for(&key, wrapping_key_id, algorithm.as_str(), expires)?;
        Ok(ImportParameters {
            key_id: key.key_id,
            import_token,
            public_key_der: pair.public_der,
            token_expire_time: expires,
        })
    }

    /// ImportKeyMaterial. `encrypted_material` is the base64-decoded wrapped material;
    /// `expire_unix` is `KeyMaterialExpireUnix` (None or 0 = never).
    pub async fn import_key_material(
        &self,
        caller: &Caller,
        key_ref: &str,
        import_token: &str,
        encrypted_material: &[u8],
        expire_unix: Option<i64>,
    ) -> Result<(), KmsError> {
        let loc = self.locate(caller, key_ref)?;
        let key = self.load(&loc).await?;
        require_external(&key)?;
        check(row::ImportKeyMaterial, key.state)?;
        let now = self.now();
        let expire = match expire_unix {
            None | Some(0) => None,
            Some(t) if t <= now => {
                return Err(KmsError::invalid_because(
                    "KeyMaterialExpireUnix",
                    "The expiry must be later than the current time (or 0 for never).",
                ))
            }
            Some(t) => Some(t),
        };

        // The token: authentic, for this account, region and key, not expired.
        let claims = self.keystore.read_token(import_token)?;
        if claims.account_id != key.account_id
            || claims.region != key.region
            || claims.key_id != key.key_id
        {
            return Err(KmsError::InvalidImportToken);
        }
        if claims.expires <= now {
            return Err(KmsError::ExpiredImportToken);
        }
        let algorithm = Wrapping::parse(&claims.algorithm).ok_or(KmsError::InvalidImportToken)?;
        // The attempt is claimed before the unwrap (counted as failed until it succeeds): a
        // withdrawn token, or one whose attempts are all taken, is refused here.
        let max = self.config.max_unwrap_failures;
        let wk = self
            .store
            .claim_unwrap_attempt(&claims.wrapping_key_id, &key.key_id, &claims.algorithm, max)
            .await?
            .ok_or(KmsError::InvalidImportToken)?;
        if key.protection_level == crate::model::ProtectionLevel::Hsm {
            // Unwrapped inside the token (issue 20; see `hsm_keys`).
            let Wrapping::Rsa(algorithm) = algorithm else {
                return Err(KmsError::InvalidImportToken);
            };
            return self
                .hsm_import(&loc, &key, &wk, algorithm, encrypted_material, expire, max)
                .await;
        }
        let pkcs8 = self.keystore.open(
            wrapping_key_aad(&wk.wrapping_key_id, &key.key_id).as_bytes(),
            &wk.sealed_private_key,
        )?;

        // One path for every unwrap outcome.
        let spec = key.key_spec;
        let unwrapped = algorithm.unwrap(&pkcs8, encrypted_material).and_then(|m| {
            match spec.symmetric_material_len() {
                // 32 bytes for Aliyun_AES_256, 16 for Aliyun_SM4.
                Some(len) => Some(m).filter(|m| m.len() == len),
                // A private key of exactly this spec, in canonical PKCS#8 (issue 17).
                None => crate::keystore::asymmetric::canonical_private_key(spec, &m),
            }
        });
        let succeeded = unwrapped.is_some();
        if self
            .store
            .finish_unwrap_attempt(&wk.wrapping_key_id, succeeded, max)
            .await?
        {
            tracing::warn!(key_id = %key.key_id, "an import token was withdrawn after repeated failed unwraps");
        }
        let Some(material) = unwrapped else {
            return Err(KmsError::InvalidKeyMaterial);
        };

        let sealed = self.seal_material(&key.key_id, &key.primary_version, &material)?;
        self.store
            .update_key(
                &loc,
                bind_material(Arc::clone(&self.keystore), material, sealed, expire),
            )
            .await?
            .ok_or(KmsError::KeyNotFound)?;
        Ok(())
    }

    pub async fn delete_key_material(
        &self,
        caller: &Caller,
        key_ref: &str,
    ) -> Result<(), KmsError> {
        let loc = self.locate(caller, key_ref)?;
        let key = self.load(&loc).await?;
        require_external(&key)?;
        let hsm_label = self.hsm_material_label(&key).await;
        self.store
            .update_key(
                &loc,
                Box::new(|k| {
                    check(row::DeleteKeyMaterial, k.state)?;
                    Ok(drop_material(k))
                }),
            )
            .await?
            .ok_or(KmsError::KeyNotFound)?;
        // An HSM key's material object goes too (issue 20; see `hsm_keys`).
        self.forget_hsm_material(hsm_label).await;
        Ok(())
    }

    /// Removes imported material whose expiry has passed (lazily on access and from the
    /// sweeper); a no-op if it was re-imported or removed meanwhile.
    pub(crate) async fn expire_material(&self, loc: &KeyLocator) -> Result<KeyRecord, KmsError> {
        let now = self.now();
        self.store
            .update_key(
                loc,
                Box::new(move |k| {
                    if k.material_expired(now) {
                        Ok(drop_material(k))
                    } else {
                        Ok(Vec::new())
                    }
                }),
            )
            .await?
            .ok_or(KmsError::KeyNotFound)
    }
}

/// Base64 of the DER public key, as the `PublicKey` response field carries it.
pub fn public_key_base64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Rejection;
    use crate::service::crypto::EncryptionContext;
    use crate::service::keys::CreateKeyInput;
    use crate::service::testing::{kms, kms_with, T0};
    use crate::service::ServiceConfig;
    use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};

    fn wrap(der: &[u8], material: &[u8]) -> Vec<u8> {
        let pk = OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(der).unwrap()).unwrap();
        let mut out = vec![0u8; 256];
        pk.encrypt(&OAEP_SHA256_MGF1SHA256, material, &mut out, None)
            .unwrap()
            .to_vec()
    }

    async fn external(kms: &Kms, caller: &Caller) -> KeyRecord {
        kms.create_key(
            caller,
            CreateKeyInput {
                origin: Some("EXTERNAL".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn import_binds_material_and_expires_with_the_clock() {
        let (kms, clock, caller) = kms();
        let k = external(&kms, &caller).await;
        let p1 = kms
            .get_parameters_for_import(&caller, &k.key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
            .await
            .unwrap();
        let p2 = kms
            .get_parameters_for_import(&caller, &k.key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
            .await
            .unwrap();
        assert_ne!(p1.public_key_der, p2.public_key_der);
        assert_eq!(p1.token_expire_time, T0 + 86_400);
        let m = [5u8; 32];
        // Material wrapped for p2's key but sent with p1's token fails like bad padding.
        assert_eq!(
            kms.import_key_material(
                &caller,
                &k.key_id,
                &p1.import_token,
                &wrap(&p2.public_key_der, &m),
                None
            )
            .await,
            Err(KmsError::InvalidKeyMaterial)
        );
        // The older token still works.
        kms.import_key_material(
            &caller,
            &k.key_id,
            &p1.import_token,
            &wrap(&p1.public_key_der, &m),
            Some(T0 + 3600),
        )
        .await
        .unwrap();
        let d = kms.describe_key(&caller, &k.key_id).await.unwrap();
        assert_eq!(
            (d.state, d.material_expire),
            (KeyState::Enabled, Some(T0 + 3600))
        );
        let ctx = EncryptionContext::default();
        let s = kms
            .encrypt(&caller, &k.key_id, b"x", &ctx, false)
            .await
            .unwrap();
        // Different material is refused and changes nothing.
        assert_eq!(
            kms.import_key_material(
                &caller,
                &k.key_id,
                &p2.import_token,
                &wrap(&p2.public_key_der, &[6u8; 32]),
                None
            )
            .await,
            Err(KmsError::InvalidKeyMaterial)
        );
        assert_eq!(kms.describe_key(&caller, &k.key_id).await.unwrap(), d);
        // Wrong length.
        assert_eq!(
            kms.import_key_material(
                &caller,
                &k.key_id,
                &p2.import_token,
                &wrap(&p2.public_key_der, &[5u8; 16]),
                None
            )
            .await,
            Err(KmsError::InvalidKeyMaterial)
        );
        // Expiry.
        clock.advance(3600);
        assert_eq!(
            kms.describe_key(&caller, &k.key_id).await.unwrap().state,
            KeyState::PendingImport
        );
        assert_eq!(
            kms.decrypt(&caller, &s.ciphertext_blob, &ctx, false)
                .await
                .unwrap_err(),
            KmsError::Rejected(Rejection::PendingImport)
        );
        // Same material again: old ciphertext decrypts.
        kms.import_key_material(
            &caller,
            &k.key_id,
            &p2.import_token,
            &wrap(&p2.public_key_der, &m),
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            kms.decrypt(&caller, &s.ciphertext_blob, &ctx, false)
                .await
                .unwrap()
                .plaintext
                .as_slice(),
            b"x"
        );
        // Past expiry is refused.
        assert!(matches!(
            kms.import_key_material(
                &caller,
                &k.key_id,
                &p2.import_token,
                &wrap(&p2.public_key_der, &m),
                Some(T0)
            )
            .await,
            Err(KmsError::InvalidParameter(..))
        ));
        // Token lifetime.
        clock.advance(86_400);
        assert_eq!(
            kms.import_key_material(
                &caller,
                &k.key_id,
                &p2.import_token,
                &wrap(&p2.public_key_der, &m),
                None
            )
            .await,
            Err(KmsError::ExpiredImportToken)
        );
    }

    #[tokio::test]
    async fn tokens_are_bound_to_their_key_and_origin_is_checked() {
        let (kms, _clock, caller) = kms();
        let a = external(&kms, &caller).await;
        let b = external(&kms, &caller).await;
        let pa = kms
            .get_parameters_for_import(&caller, &a.key_id, "RSAES_PKCS1_V1_5", "RSA_2048")
            .await
            .unwrap();
        assert_eq!(
            kms.import_key_material(&caller, &b.key_id, &pa.import_token, &[0u8; 256], None)
                .await,
            Err(KmsError::InvalidImportToken)
        );
        assert_eq!(
            kms.import_key_material(&caller, &a.key_id, "garbage", &[0u8; 256], None)
                .await,
            Err(KmsError::InvalidImportToken)
        );
        let plain = kms
            .create_key(&caller, CreateKeyInput::default())
            .await
            .unwrap();
        assert_eq!(
            kms.get_parameters_for_import(&caller, &plain.key_id, "RSAES_OAEP_SHA_1", "RSA_2048")
                .await
                .unwrap_err(),
            KmsError::UnsupportedOrigin
        );
        assert_eq!(
            kms.delete_key_material(&caller, &plain.key_id).await,
            Err(KmsError::UnsupportedOrigin)
        );
        assert!(matches!(
            kms.get_parameters_for_import(&caller, &a.key_id, "RSAES_OAEP_SHA_512", "RSA_2048")
                .await,
            Err(KmsError::InvalidParameter(..))
        ));
        assert!(matches!(
            kms.get_parameters_for_import(&caller, &a.key_id, "RSAES_OAEP_SHA_1", "EC_SM2")
                .await,
            Err(KmsError::InvalidParameter(..))
        ));
    }

    #[tokio::test]
    async fn a_token_is_withdrawn_after_ten_failed_unwraps() {
        let (kms, _clock, caller) = kms();
        let k = external(&kms, &caller).await;
        let p = kms
            .get_parameters_for_import(&caller, &k.key_id, "RSAES_PKCS1_V1_5", "RSA_2048")
            .await
            .unwrap();
        let other = kms
            .get_parameters_for_import(&caller, &k.key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
            .await
            .unwrap();
        for _ in 0..10 {
            assert_eq!(
                kms.import_key_material(&caller, &k.key_id, &p.import_token, &[7u8; 256], None)
                    .await,
                Err(KmsError::InvalidKeyMaterial)
            );
        }
        assert_eq!(
            kms.import_key_material(&caller, &k.key_id, &p.import_token, &[7u8; 256], None)
                .await,
            Err(KmsError::InvalidImportToken)
        );
        // The other token is unaffected.
        kms.import_key_material(
            &caller,
            &k.key_id,
            &other.import_token,
            &wrap(&other.public_key_der, &[3u8; 32]),
            None,
        )
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_bad_imports_get_no_more_unwraps_than_the_limit() {
        let (kms, _clock, caller) = kms();
        let kms = Arc::new(kms);
        let k = external(&kms, &caller).await;
        let p = kms
            .get_parameters_for_import(&caller, &k.key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
            .await
            .unwrap();
        // InvalidKeyMaterial is answered only after an unwrap was attempted.
        let tasks: Vec<_> = (0..60)
            .map(|_| {
                let (kms, caller, key, token) = (
                    kms.clone(),
                    caller.clone(),
                    k.key_id.clone(),
                    p.import_token.clone(),
                );
                tokio::spawn(async move {
                    kms.import_key_material(&caller, &key, &token, &[9u8; 256], None)
                        .await
                        .unwrap_err()
                })
            })
            .collect();
        let mut unwrapped = 0;
        for t in tasks {
            match t.await.unwrap() {
                KmsError::InvalidKeyMaterial => unwrapped += 1,
                e => assert_eq!(e, KmsError::InvalidImportToken),
            }
        }
        assert_eq!(unwrapped, 10);
        // Withdrawn: even good material is refused now.
        assert_eq!(
            kms.import_key_material(
                &caller,
                &k.key_id,
                &p.import_token,
                &wrap(&p.public_key_der, &[1u8; 32]),
                None
            )
            .await,
            Err(KmsError::InvalidImportToken)
        );
    }

    #[tokio::test]
    async fn successful_imports_do_not_use_up_a_token() {
        let (kms, _clock, caller) = kms();
        let k = external(&kms, &caller).await;
        let p = kms
            .get_parameters_for_import(&caller, &k.key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
            .await
            .unwrap();
        let good = wrap(&p.public_key_der, &[1u8; 32]);
        for _ in 0..9 {
            assert_eq!(
                kms.import_key_material(&caller, &k.key_id, &p.import_token, &[9u8; 256], None)
                    .await,
                Err(KmsError::InvalidKeyMaterial)
            );
        }
        for _ in 0..15 {
            kms.import_key_material(&caller, &k.key_id, &p.import_token, &good, None)
                .await
                .unwrap();
        }
        // The tenth failure still withdraws it.
        assert_eq!(
            kms.import_key_material(&caller, &k.key_id, &p.import_token, &[9u8; 256], None)
                .await,
            Err(KmsError::InvalidKeyMaterial)
        );
        assert_eq!(
            kms.import_key_material(&caller, &k.key_id, &p.import_token, &good, None)
                .await,
            Err(KmsError::InvalidImportToken)
        );
    }

    #[tokio::test]
    async fn the_oldest_token_is_withdrawn_beyond_the_limit_per_key() {
        let (kms, _clock, caller) = kms_with(ServiceConfig {
            max_import_tokens_per_key: 3,
            ..ServiceConfig::default()
        });
        let k = external(&kms, &caller).await;
        let other = external(&kms, &caller).await;
        let p_other = kms
            .get_parameters_for_import(&caller, &other.key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
            .await
            .unwrap();
        let mut issued = Vec::new();
        for _ in 0..5 {
            issued.push(
                kms.get_parameters_for_import(&caller, &k.key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
                    .await
                    .unwrap(),
            );
        }
        let m = [4u8; 32];
        // The two oldest are withdrawn; the three newest work.
        for (i, p) in issued.iter().enumerate() {
            let r = kms
                .import_key_material(
                    &caller,
                    &k.key_id,
                    &p.import_token,
                    &wrap(&p.public_key_der, &m),
                    None,
                )
                .await;
            if i < 2 {
                assert_eq!(r, Err(KmsError::InvalidImportToken), "token {i}");
            } else {
                assert_eq!(r, Ok(()), "token {i}");
            }
        }
        // Another key's tokens are its own.
        kms.import_key_material(
            &caller,
            &other.key_id,
            &p_other.import_token,
            &wrap(&p_other.public_key_der, &m),
            None,
        )
        .await
        .unwrap();
        assert_eq!(ServiceConfig::default().max_import_tokens_per_key, 100);
    }

    #[tokio::test]
    async fn delete_material_in_pending_deletion_keeps_state() {
        let (kms, _clock, caller) = kms();
        let k = external(&kms, &caller).await;
        let p = kms
            .get_parameters_for_import(&caller, &k.key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
            .await
            .unwrap();
        kms.import_key_material(
            &caller,
            &k.key_id,
            &p.import_token,
            &wrap(&p.public_key_der, &[1u8; 32]),
            None,
        )
        .await
        .unwrap();
        let s = kms
            .schedule_key_deletion(&caller, &k.key_id, 7)
            .await
            .unwrap();
        kms.delete_key_material(&caller, &k.key_id).await.unwrap();
        let d = kms.describe_key(&caller, &k.key_id).await.unwrap();
        assert_eq!(
            (d.state, d.delete_date, d.material_present),
            (KeyState::PendingDeletion, s.delete_date, false)
        );
        assert_eq!(
            kms.import_key_material(
                &caller,
                &k.key_id,
                &p.import_token,
                &wrap(&p.public_key_der, &[1u8; 32]),
                None
            )
            .await,
            Err(KmsError::Rejected(Rejection::StateModifiedFailed))
        );
        kms.cancel_key_deletion(&caller, &k.key_id).await.unwrap();
        assert_eq!(
            kms.describe_key(&caller, &k.key_id).await.unwrap().state,
            KeyState::PendingImport
        );
    }

    /// The prepared key a node keeps of a version (keystore::prepared) never outlives what it
    /// was made from: deleting the material refuses the next Encrypt and Decrypt at once
    /// although the version's key is warm, and the material imported again is a new entry
    /// (sealed anew) that still opens the blobs made before.
    #[tokio::test]
    async fn a_warm_prepared_key_does_not_outlive_deleted_material() {
        let (kms, _clock, caller) = kms();
        let k = external(&kms, &caller).await;
        let import = |m: [u8; 32]| {
            let (kms, caller, key_id) = (&kms, &caller, k.key_id.clone());
            async move {
                let p = kms
                    .get_parameters_for_import(caller, &key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
                    .await
                    .unwrap();
                kms.import_key_material(
                    caller,
                    &key_id,
                    &p.import_token,
                    &wrap(&p.public_key_der, &m),
                    None,
                )
                .await
            }
        };
        import([3u8; 32]).await.unwrap();
        let ctx = EncryptionContext::default();
        let before = kms.keystore.prepared().len();
        let blob = kms
            .encrypt(&caller, &k.key_id, b"warm", &ctx, false)
            .await
            .unwrap()
            .ciphertext_blob;
        assert_eq!(kms.keystore.prepared().len(), before + 1);
        let again = kms.encrypt(&caller, &k.key_id, b"warm", &ctx, false).await;
        assert!(again.is_ok());
        assert_eq!(kms.keystore.prepared().len(), before + 1);

        kms.delete_key_material(&caller, &k.key_id).await.unwrap();
        assert_eq!(
            kms.encrypt(&caller, &k.key_id, b"x", &ctx, false)
                .await
                .map(|_| ()),
            Err(KmsError::Rejected(Rejection::PendingImport))
        );
        assert!(kms.decrypt(&caller, &blob, &ctx, false).await.is_err());

        import([3u8; 32]).await.unwrap();
        let opened = kms.decrypt(&caller, &blob, &ctx, false).await.unwrap();
        assert_eq!(opened.plaintext.as_slice(), b"warm");
        // Same version id, new sealed bytes: the entry was replaced, not added beside.
        assert_eq!(kms.keystore.prepared().len(), before + 1);
    }
}
