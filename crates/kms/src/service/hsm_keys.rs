//! `ProtectionLevel=HSM` keys (issue 20): the service side of [`crate::hsm`].
//!
//! An HSM key version's material is an AES-256 object in the token; the database holds
//! only its label, sealed under the root key exactly where software material is sealed
//! (`pkcs11:<label>`), so every store path, export and root-key re-seal treats both alike.
//! Encrypt/Decrypt run AES-GCM in the token with the same blob format and the same errors
//! as software keys. BYOK: the wrapping key pair is generated in the token and the
//! material is unwrapped there (`C_UnwrapKey`); the one-material-for-life commitment is a
//! GMAC computed in the token under the unwrapped key (see [`crate::hsm::ops`]), so the
//! material never reaches server memory. Wrapping algorithms the module cannot unwrap
//! with are refused by name, never unwrapped in software.

use std::sync::Arc;

use super::{new_id, Kms};
use crate::error::KmsError;
use crate::hsm::{ops, Hsm};
use crate::keystore::wrapping::WrappingAlgorithm;
use crate::keystore::Secret;
use crate::model::{KeySpec, ProtectionLevel};
use crate::store::{KeyLocator, KeyRecord, KeyVersionRecord, WrappingKeyRecord};

use super::import::ImportParameters;

const HANDLE_PREFIX: &[u8] = b"pkcs11:";

/// The handle bytes kept (sealed) in place of material.
fn handle(label: &str) -> Vec<u8> {
    let mut v = HANDLE_PREFIX.to_vec();
    v.extend_from_slice(label.as_bytes());
    v
}

/// The label in an opened handle.
pub(crate) fn label_of(opened: &Secret) -> Result<String, KmsError> {
    opened
        .strip_prefix(HANDLE_PREFIX)
        .and_then(|l| std::str::from_utf8(l).ok())
        .map(str::to_string)
        .ok_or_else(|| KmsError::internal("an HSM key version holds no PKCS#11 handle"))
}

/// What an HSM-less server answers for ProtectionLevel=HSM.
fn no_hsm_configured() -> KmsError {
    KmsError::UnsupportedProtectionLevel(
        "No HSM is configured on this server: start it with --hsm-module, --hsm-token-label and --hsm-pin-file to create HSM keys.".into(),
    )
}

impl Kms {
    /// Gives the service its HSM (None: ProtectionLevel=HSM is refused).
    pub fn with_hsm(mut self, hsm: Option<Arc<Hsm>>) -> Self {
        self.hsm = hsm;
        self
    }

    /// The HSM for an existing HSM key (503 if this server has none).
    pub(crate) fn hsm_for_use(&self) -> Result<&Arc<Hsm>, KmsError> {
        self.hsm.as_ref().ok_or_else(|| {
            KmsError::HsmUnavailable(
                "this key's material is held by an HSM and this server is not configured with one (--hsm-module)".into(),
            )
        })
    }

    /// The HSM for creating an HSM key (`Unsupported.ProtectionLevel` if none).
    pub(crate) fn hsm_for_create(&self) -> Result<&Arc<Hsm>, KmsError> {
        self.hsm.as_ref().ok_or_else(no_hsm_configured)
    }

    /// A new version for a key of `level`: software material, or a key in the token.
    pub(crate) async fn new_version_at(
        &self,
        key_id: &str,
        spec: KeySpec,
        level: ProtectionLevel,
    ) -> Result<KeyVersionRecord, KmsError> {
        if level != ProtectionLevel::Hsm {
            return self.new_version_of(key_id, spec).await;
        }
        if spec != KeySpec::Aes256 {
            return Err(KmsError::internal("an HSM key is an AES-256 key"));
        }
        let hsm = self.hsm_for_use()?;
        let version_id = new_id();
        let label = ops::generate_version_key(hsm, key_id, &version_id).await?;
        let sealed = self.seal_material(key_id, &version_id, &handle(&label))?;
        Ok(KeyVersionRecord {
            key_id: key_id.to_string(),
            version_id,
            creation_date: self.now(),
            sealed_material: Some(sealed),
        })
    }

    /// Destroys the token object of a version that was made but not stored.
    pub(crate) async fn discard_version(&self, level: ProtectionLevel, v: &KeyVersionRecord) {
        if level != ProtectionLevel::Hsm {
            return;
        }
        let (Some(hsm), Some(sealed)) = (self.hsm.as_ref(), v.sealed_material.as_ref()) else {
            return;
        };
        if let Ok(label) = self
            .open_material(&v.key_id, &v.version_id, sealed)
            .and_then(|h| label_of(&h))
        {
            if let Err(e) = ops::destroy_label(hsm, &label).await {
                tracing::warn!(key_id = %v.key_id, error = %e, "could not destroy an unused HSM key object");
            }
        }
    }

    /// Destroys every token object of a deleted key (versions and wrapping keys). A failure
    /// is logged: the database no longer names the objects either way.
    pub(crate) async fn forget_hsm_objects(&self, key_id: &str) {
        self.destroy_hsm_objects(key_id, true).await
    }

    /// The label of the object holding an HSM key's current material, if any (read before
    /// the material is deleted or expires, to destroy exactly that object afterwards and not
    /// one a concurrent import has just made).
    pub(crate) async fn hsm_material_label(&self, key: &KeyRecord) -> Option<String> {
        if key.protection_level != ProtectionLevel::Hsm || self.hsm.is_none() {
            return None;
        }
        let v = self
            .store
            .get_version(&key.key_id, &key.primary_version)
            .await
            .ok()??;
        let sealed = v.sealed_material?;
        let opened = self
            .open_material(&key.key_id, &v.version_id, &sealed)
            .ok()?;
        label_of(&opened).ok()
    }

    /// Destroys the object of a deleted or expired material.
    pub(crate) async fn forget_hsm_material(&self, label: Option<String>) {
        if let (Some(hsm), Some(label)) = (&self.hsm, label) {
            if let Err(e) = ops::destroy_label(hsm, &label).await {
                tracing::warn!(error = %e, "could not destroy a deleted material's HSM object");
            }
        }
    }

    async fn destroy_hsm_objects(&self, key_id: &str, wrapping_keys: bool) {
        if let Some(hsm) = &self.hsm {
            match ops::destroy_key_objects(hsm, key_id, wrapping_keys).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(key_id, objects = n, "HSM key objects destroyed"),
                Err(e) => {
                    tracing::warn!(key_id, error = %e, "could not destroy the key's HSM objects")
                }
            }
        }
    }

    /// Encrypts into a blob under one version (`opened`: the opened material or handle).
    pub(crate) async fn seal_with_version(
        &self,
        key: &KeyRecord,
        version_id: &str,
        opened: &Secret,
        context: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        if key.protection_level != ProtectionLevel::Hsm {
            return crate::keystore::blob::encrypt_with(
                crate::keystore::blob::BlobCipher::for_spec(key.key_spec)
                    .ok_or(KmsError::UnsupportedOperation)?,
                self.keystore.rng(),
                &key.key_id,
                version_id,
                opened,
                context,
                plaintext,
            );
        }
        let hsm = self.hsm_for_use()?;
        let mut nonce = [0u8; 12];
        use aws_lc_rs::rand::SecureRandom;
        self.keystore
            .rng()
            .fill(&mut nonce)
            .map_err(|_| KmsError::internal("rng"))?;
        ops::encrypt_blob(
            hsm,
            &label_of(opened)?,
            &key.key_id,
            version_id,
            context,
            plaintext,
            nonce,
        )
        .await
    }

    /// Decrypts a blob under one version; `Ok(None)` when it does not authenticate.
    pub(crate) async fn open_with_version(
        &self,
        key: &KeyRecord,
        opened: &Secret,
        context: &[u8],
        blob: &[u8],
    ) -> Result<Option<Secret>, KmsError> {
        if key.protection_level != ProtectionLevel::Hsm {
            let cipher = crate::keystore::blob::BlobCipher::for_spec(key.key_spec)
                .ok_or(KmsError::UnsupportedOperation)?;
            return Ok(crate::keystore::blob::decrypt_with(
                cipher, opened, context, blob,
            ));
        }
        let hsm = self.hsm_for_use()?;
        ops::decrypt_blob(hsm, &label_of(opened)?, context, blob).await
    }

    /// The wrapping algorithms the HSM can unwrap with (probed once).
    async fn hsm_unwrap_algorithms(&self) -> Result<Vec<WrappingAlgorithm>, KmsError> {
        let hsm = self.hsm_for_use()?;
        self.hsm_unwrap
            .get_or_try_init(|| async {
                let algs = ops::probe_unwrap_support(hsm).await?;
                tracing::info!(algorithms = ?algs, "wrapping algorithms the HSM can unwrap with");
                Ok::<_, KmsError>(algs)
            })
            .await
            .cloned()
    }

    /// GetParametersForImport for an HSM key: a wrapping pair generated in the token.
    pub(crate) async fn hsm_import_parameters(
        &self,
        key: &KeyRecord,
        algorithm: WrappingAlgorithm,
    ) -> Result<ImportParameters, KmsError> {
        let hsm = self.hsm_for_use()?.clone();
        let supported = self.hsm_unwrap_algorithms().await?;
        if !supported.contains(&algorithm) {
            let names: Vec<&str> = supported.iter().map(|a| a.as_str()).collect();
            return Err(KmsError::invalid_because(
                "WrappingAlgorithm",
                format!(
                    "The HSM's PKCS#11 module cannot unwrap with {} (C_UnwrapKey), and the material of an HSM key is never unwrapped outside the HSM; use {}.",
                    algorithm.as_str(),
                    if names.is_empty() { "a software key".to_string() } else { names.join(" or ") }
                ),
            ));
        }
        let wrapping_key_id = new_id();
        let expires = self.now() + self.config.import_token_lifetime;
        let pair = ops::generate_wrapping_key(&hsm, &key.key_id, &wrapping_key_id, expires).await?;
        let sealed_private_key = self.keystore.seal(
            super::import::wrapping_key_aad(&wrapping_key_id, &key.key_id).as_bytes(),
            &handle(&pair.label),
        )?;
        let withdrawn = self
            .record_wrapping_key(
                key,
                &wrapping_key_id,
                algorithm.as_str(),
                sealed_private_key,
                expires,
            )
            .await;
        let withdrawn = match withdrawn {
            Ok(n) => n,
            Err(e) => {
                let _ = ops::destroy_label(&hsm, &pair.label).await;
                return Err(e.into());
            }
        };
        if withdrawn > 0 {
            // Their token objects go too, so a loop of calls cannot fill the token.
            for (wk, label) in ops::wrapping_keys_of(&hsm, &key.key_id).await? {
                if self.store.get_wrapping_key(&wk).await?.is_none() {
                    ops::destroy_label(&hsm, &label).await?;
                }
            }
        }
        let import_token =
            self.import_token_for(key, wrapping_key_id, algorithm.as_str(), expires)?;
        Ok(ImportParameters {
            key_id: key.key_id.clone(),
            import_token,
            public_key_der: pair.public_der,
            token_expire_time: expires,
        })
    }

    /// ImportKeyMaterial into the HSM, after the token was checked and the attempt
    /// claimed: unwrap in the token, finish the attempt, bind and store the handle.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn hsm_import(
        &self,
        loc: &KeyLocator,
        key: &KeyRecord,
        wrapping: &WrappingKeyRecord,
        algorithm: WrappingAlgorithm,
        encrypted_material: &[u8],
        expire: Option<i64>,
        max_failures: i64,
    ) -> Result<(), KmsError> {
        let hsm = self.hsm_for_use()?.clone();
        let wrapping_label = label_of(&self.keystore.open(
            super::import::wrapping_key_aad(&wrapping.wrapping_key_id, &key.key_id).as_bytes(),
            &wrapping.sealed_private_key,
        )?)?;
        let unwrapped = ops::unwrap_material(
            &hsm,
            &wrapping_label,
            algorithm,
            encrypted_material,
            &key.key_id,
            &key.primary_version,
        )
        .await;
        // A failing HSM ends the attempt as failed too (conservative: it stays counted).
        let unwrapped = match unwrapped {
            Ok(u) => u,
            Err(e) => {
                let _ = self
                    .store
                    .finish_unwrap_attempt(&wrapping.wrapping_key_id, false, max_failures)
                    .await;
                return Err(e);
            }
        };
        if self
            .store
            .finish_unwrap_attempt(&wrapping.wrapping_key_id, unwrapped.is_some(), max_failures)
            .await?
        {
            tracing::warn!(key_id = %key.key_id, "an import token was withdrawn after repeated failed unwraps");
            let _ = ops::destroy_label(&hsm, &wrapping_label).await;
        }
        let Some(u) = unwrapped else {
            return Err(KmsError::InvalidKeyMaterial);
        };
        let previous = match self
            .store
            .get_version(&key.key_id, &key.primary_version)
            .await
        {
            Ok(Some(v)) => v
                .sealed_material
                .and_then(|s| self.open_material(&key.key_id, &v.version_id, &s).ok())
                .and_then(|h| label_of(&h).ok()),
            _ => None,
        };
        let sealed = self.seal_material(&key.key_id, &key.primary_version, &handle(&u.label))?;
        let result = self
            .store
            .update_key(
                loc,
                super::import::bind_material(
                    Arc::clone(&self.keystore),
                    u.commitment_input,
                    sealed,
                    expire,
                ),
            )
            .await;
        match result {
            Ok(Some(_)) => {
                if let Some(old) = previous.filter(|l| *l != u.label) {
                    let _ = ops::destroy_label(&hsm, &old).await;
                }
                Ok(())
            }
            Ok(None) => {
                let _ = ops::destroy_label(&hsm, &u.label).await;
                Err(KmsError::KeyNotFound)
            }
            Err(e) => {
                let _ = ops::destroy_label(&hsm, &u.label).await;
                Err(e.into())
            }
        }
    }
}
