//! Encrypt, Decrypt, GenerateDataKey(WithoutPlaintext), ReEncrypt.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::state::{check, row, KeyState, StateRow};
use super::{Caller, Kms};
use crate::error::KmsError;
use crate::keystore::{blob, Secret};
use crate::model::{KeySpec, ProtectionLevel};
use crate::store::{KeyLocator, KeyRecord, KeyVersionRecord};

/// Largest Encrypt plaintext: 6 KiB (reference §3.9).
pub const MAX_PLAINTEXT: usize = 6144;
/// Largest EncryptionContext, in characters of its JSON text (reference §3.11).
pub const MAX_CONTEXT_CHARS: usize = 8192;

/// An encryption context: string → string pairs. Equivalent contexts (same pairs, any
/// order or whitespace) have the same canonical form, which is what the blob binds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// Parses the JSON text of an `EncryptionContext` parameter: an object whose values are
    /// all strings. `name` is the parameter name for the error.
    pub fn parse(name: &str, text: &str) -> Result<Self, KmsError> {
        if text.chars().count() > MAX_CONTEXT_CHARS {
            return Err(KmsError::invalid_because(
                name,
                "The context is at most 8192 characters.",
            ));
        }
        let bad = || {
            KmsError::invalid_because(
                name,
                "The context must be a JSON object of string values, each key once.",
            )
        };
        let pairs: StringPairs = serde_json::from_str(text).map_err(|_| bad())?;
        let mut out = BTreeMap::new();
        for (k, v) in pairs.0 {
            // A repeated key is refused: two JSON parsers could read it differently.
            if out.insert(k, v).is_some() {
                return Err(bad());
            }
        }
        Ok(Self(out))
    }

    /// Canonical bytes: compact JSON with sorted keys; empty for an empty context.
    pub fn canonical(&self) -> Vec<u8> {
        if self.0.is_empty() {
            return Vec::new();
        }
        serde_json::to_vec(&self.0).unwrap_or_default()
    }
}

/// A JSON object read as its (key, string value) pairs in order, duplicates kept, so they
/// can be refused.
struct StringPairs(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for StringPairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StringPairs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of string values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<StringPairs, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    out.push((k, v));
                }
                Ok(StringPairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The result of an encrypting call.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub ciphertext_blob: Vec<u8>,
    pub key_id: String,
    pub key_version_id: String,
}

/// The result of Decrypt.
#[derive(Debug)]
pub struct Opened {
    pub plaintext: Secret,
    pub key_id: String,
    pub key_version_id: String,
}

/// What a crypto action uses of a key version.
enum VersionKey {
    /// A software AES-256 version's prepared key, shared from the keystore.
    Prepared(Arc<crate::keystore::prepared::PreparedKey>),
    /// The opened material (SM4), or an HSM key's handle.
    Opened(Secret),
}

/// The sealed material of a version; a version without it waits for its import.
fn sealed_material(v: &KeyVersionRecord) -> Result<&[u8], KmsError> {
    v.sealed_material
        .as_deref()
        .ok_or(KmsError::Rejected(crate::error::Rejection::PendingImport))
}

fn bad_blob() -> KmsError {
    KmsError::invalid_because(
        "CiphertextBlob",
        "The ciphertext is malformed, was altered, or the EncryptionContext differs from the one it was encrypted with.",
    )
}

impl Kms {
    /// Loads the key for a crypto action and opens the material of `version` (primary if
    /// None): a software AES-256 version as its prepared key, kept by the keystore
    /// ([`crate::keystore::prepared`]; found only for this very row's sealed material, after
    /// every check), anything else (SM4, an HSM key's handle) opened here.
    async fn key_material(
        &self,
        loc: &KeyLocator,
        state_row: StateRow,
        version: Option<&str>,
    ) -> Result<(Arc<KeyRecord>, Arc<KeyVersionRecord>, VersionKey), KmsError> {
        let (key, v) = self.usable_version(loc, state_row, version).await?;
        let sealed = sealed_material(&v)?;
        if key.protection_level != ProtectionLevel::Hsm && key.key_spec == KeySpec::Aes256 {
            let prepared = self.keystore.prepared().get_or_prepare(
                &key.key_id,
                &v.version_id,
                sealed,
                || self.open_material(&key.key_id, &v.version_id, sealed),
            )?;
            return Ok((key, v, VersionKey::Prepared(prepared)));
        }
        let material = self.open_material(&key.key_id, &v.version_id, sealed)?;
        Ok((key, v, VersionKey::Opened(material)))
    }

    /// [`Kms::load`], with the row shared from the store's cache (no copy per request)
    /// whenever time has made nothing true of it; otherwise `load`, which applies that.
    async fn load_shared(&self, loc: &KeyLocator) -> Result<Arc<KeyRecord>, KmsError> {
        let now = self.now();
        let cached = match self.store.peek_key_shared(loc) {
            Some(key) => Some(key),
            None => self.store.get_key_shared(loc).await?,
        };
        if let Some(key) = cached {
            let due =
                key.state == KeyState::PendingDeletion && key.delete_date.is_some_and(|d| d <= now);
            if !due && !key.material_expired(now) {
                return Ok(key);
            }
        }
        self.load(loc).await.map(Arc::new)
    }

    /// Every check [`Self::key_material`] makes before opening anything: the key exists
    /// (pending deletion past its date is gone, expired material is expired here), is
    /// symmetric, its state allows `state_row`, and `version` (primary if None) exists.
    /// Returns the key and the version, shared; [`sealed_material`] checks the version has
    /// its material.
    async fn usable_version(
        &self,
        loc: &KeyLocator,
        state_row: StateRow,
        version: Option<&str>,
    ) -> Result<(Arc<KeyRecord>, Arc<KeyVersionRecord>), KmsError> {
        let key = self.load_shared(loc).await?;
        // An asymmetric key does not take part in the symmetric actions (reference
        // asymmetric §11.1: kind before state).
        if key.key_spec.is_asymmetric() {
            return Err(KmsError::UnsupportedOperation);
        }
        check(state_row, key.state)?;
        let version_id = version.unwrap_or(key.primary_version.as_str());
        let v = match self.store.peek_version_shared(&key.key_id, version_id) {
            Some(v) => v,
            None => self
                .store
                .get_version_shared(&key.key_id, version_id)
                .await?
                .ok_or_else(bad_blob)?,
        };
        Ok((key, v))
    }

    /// The checks Decrypt of `ciphertext_blob` makes on its key (see
    /// [`Self::usable_version`]), with the same errors, without opening it: for a caller
    /// that holds the blob's opened plaintext already (GetSecretValue's cached data keys).
    pub(crate) async fn check_blob_key(
        &self,
        caller: &Caller,
        state_row: StateRow,
        ciphertext_blob: &[u8],
    ) -> Result<(), KmsError> {
        let header = blob::parse_header(ciphertext_blob).ok_or_else(bad_blob)?;
        let loc = KeyLocator {
            account_id: caller.account_id.clone(),
            region: caller.region.clone(),
            key_id: header.key_id,
        };
        let (_, v) = self
            .usable_version(&loc, state_row, Some(&header.version_id))
            .await?;
        sealed_material(&v).map(|_| ())
    }

    pub(crate) async fn seal_under(
        &self,
        caller: &Caller,
        key_ref: &str,
        state_row: StateRow,
        context: &EncryptionContext,
        plaintext: &[u8],
        iv: Option<blob::FreshIv>,
    ) -> Result<Sealed, KmsError> {
        let loc = self.resolve(caller, key_ref).await?;
        let (key, v, material) = self.key_material(&loc, state_row, None).await?;
        let ciphertext_blob = match &material {
            VersionKey::Prepared(p) => {
                blob::encrypt_prepared(self.keystore.rng(), p, &context.canonical(), plaintext, iv)?
            }
            // (These draw their own IV; `iv` is dropped unused.)
            // Software SM4 material, or the handle of an HSM key (issue 20; see `hsm_keys`).
            VersionKey::Opened(material) => {
                self.seal_with_version(
                    &key,
                    &v.version_id,
                    material,
                    &context.canonical(),
                    plaintext,
                )
                .await?
            }
        };
        Ok(Sealed {
            ciphertext_blob,
            key_id: key.key_id.clone(),
            key_version_id: v.version_id.clone(),
        })
    }

    pub async fn encrypt(
        &self,
        caller: &Caller,
        key_ref: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
        dry_run: bool,
    ) -> Result<Sealed, KmsError> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(KmsError::invalid_because(
                "Plaintext",
                "The plaintext is at most 6144 bytes.",
            ));
        }
        let sealed = self
            .seal_under(caller, key_ref, row::Encrypt, context, plaintext, None)
            .await?;
        if dry_run {
            return Err(KmsError::DryRun);
        }
        Ok(sealed)
    }

    pub(crate) async fn open_blob(
        &self,
        caller: &Caller,
        state_row: StateRow,
        ciphertext_blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<Opened, KmsError> {
        let header = blob::parse_header(ciphertext_blob).ok_or_else(bad_blob)?;
        let loc = KeyLocator {
            account_id: caller.account_id.clone(),
            region: caller.region.clone(),
            key_id: header.key_id,
        };
        let (key, v, material) = self
            .key_material(&loc, state_row, Some(&header.version_id))
            .await?;
        let plaintext = match &material {
            VersionKey::Prepared(p) => {
                blob::decrypt_prepared(p, &context.canonical(), ciphertext_blob)
            }
            VersionKey::Opened(material) => {
                self.open_with_version(&key, material, &context.canonical(), ciphertext_blob)
                    .await?
            }
        }
        .ok_or_else(bad_blob)?;
        Ok(Opened {
            plaintext,
            key_id: key.key_id.clone(),
            key_version_id: v.version_id.clone(),
        })
    }

    pub async fn decrypt(
        &self,
        caller: &Caller,
        ciphertext_blob: &[u8],
        context: &EncryptionContext,
        dry_run: bool,
    ) -> Result<Opened, KmsError> {
        let opened = self
            .open_blob(caller, row::Decrypt, ciphertext_blob, context)
            .await?;
        if dry_run {
            return Err(KmsError::DryRun);
        }
        Ok(opened)
    }

    /// GenerateDataKey (`with_plaintext`) and GenerateDataKeyWithoutPlaintext.
    pub async fn generate_data_key(
        &self,
        caller: &Caller,
        key_ref: &str,
        number_of_bytes: usize,
        context: &EncryptionContext,
        dry_run: bool,
        with_plaintext: bool,
    ) -> Result<(Sealed, Secret), KmsError> {
        if !(1..=1024).contains(&number_of_bytes) {
            return Err(KmsError::invalid_because(
                "NumberOfBytes",
                "The data key is 1 to 1024 bytes.",
            ));
        }
        let state_row = if with_plaintext {
            row::GenerateDataKey
        } else {
            row::GenerateDataKeyWithoutPlaintext
        };
        let (data_key, iv) = self.keystore.random_with_iv(number_of_bytes)?;
        let sealed = self
            .seal_under(caller, key_ref, state_row, context, &data_key, Some(iv))
            .await?;
        if dry_run {
            return Err(KmsError::DryRun);
        }
        Ok((sealed, data_key))
    }

    pub async fn re_encrypt(
        &self,
        caller: &Caller,
        ciphertext_blob: &[u8],
        destination_key_ref: &str,
        source_context: &EncryptionContext,
        destination_context: &EncryptionContext,
        dry_run: bool,
    ) -> Result<Sealed, KmsError> {
        let opened = self
            .open_blob(caller, row::ReEncrypt, ciphertext_blob, source_context)
            .await?;
        let sealed = self
            .seal_under(
                caller,
                destination_key_ref,
                row::ReEncrypt,
                destination_context,
                &opened.plaintext,
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

    fn ctx(s: &str) -> EncryptionContext {
        EncryptionContext::parse("EncryptionContext", s).unwrap()
    }

    #[test]
    fn context_is_canonical() {
        assert_eq!(
            ctx(r#"{"b":"2", "a":"1"}"#).canonical(),
            ctx(r#"{"a":"1","b":"2"}"#).canonical()
        );
        assert_eq!(ctx("{}").canonical(), Vec::<u8>::new());
        for bad in [
            r#"{"a":1}"#,
            r#"["a"]"#,
            r#"{"a":{"b":"c"}}"#,
            "not json",
            r#""s""#,
        ] {
            assert!(
                EncryptionContext::parse("EncryptionContext", bad).is_err(),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn round_trips_and_state_rules() {
        let (kms, _c, caller) = kms();
        let k = kms
            .create_key(&caller, CreateKeyInput::default())
            .await
            .unwrap();
        let s = kms
            .encrypt(
                &caller,
                &k.key_id,
                b"hi",
                &ctx(r#"{"a":"1","b":"2"}"#),
                false,
            )
            .await
            .unwrap();
        assert_eq!(s.key_version_id, k.primary_version);
        let o = kms
            .decrypt(
                &caller,
                &s.ciphertext_blob,
                &ctx(r#"{"b":"2","a":"1"}"#),
                false,
            )
            .await
            .unwrap();
        assert_eq!(o.plaintext.as_slice(), b"hi");
        assert!(matches!(
            kms.decrypt(&caller, &s.ciphertext_blob, &ctx("{}"), false)
                .await,
            Err(KmsError::InvalidParameter(..))
        ));
        assert_eq!(
            kms.decrypt(
                &caller,
                &s.ciphertext_blob,
                &ctx(r#"{"a":"1","b":"2"}"#),
                true
            )
            .await
            .unwrap_err(),
            KmsError::DryRun
        );
        kms.disable_key(&caller, &k.key_id).await.unwrap();
        assert_eq!(
            kms.encrypt(&caller, &k.key_id, b"hi", &ctx("{}"), false)
                .await
                .unwrap_err(),
            KmsError::Rejected(Rejection::Disabled)
        );
        assert_eq!(
            kms.decrypt(
                &caller,
                &s.ciphertext_blob,
                &ctx(r#"{"a":"1","b":"2"}"#),
                false
            )
            .await
            .unwrap_err(),
            KmsError::Rejected(Rejection::Disabled)
        );
        // Another account cannot decrypt it: the key is not found for them.
        let other = Caller {
            account_id: "77".into(),
            ..caller.clone()
        };
        kms.enable_key(&caller, &k.key_id).await.unwrap();
        assert_eq!(
            kms.decrypt(
                &other,
                &s.ciphertext_blob,
                &ctx(r#"{"a":"1","b":"2"}"#),
                false
            )
            .await
            .unwrap_err(),
            KmsError::KeyNotFound
        );
    }

    #[tokio::test]
    async fn data_keys_and_re_encrypt() {
        let (kms, _c, caller) = kms();
        let a = kms
            .create_key(&caller, CreateKeyInput::default())
            .await
            .unwrap();
        let b = kms
            .create_key(&caller, CreateKeyInput::default())
            .await
            .unwrap();
        let (s, dk) = kms
            .generate_data_key(&caller, &a.key_id, 16, &ctx("{}"), false, true)
            .await
            .unwrap();
        assert_eq!(dk.len(), 16);
        assert!(kms
            .generate_data_key(&caller, &a.key_id, 0, &ctx("{}"), false, true)
            .await
            .is_err());
        assert!(kms
            .generate_data_key(&caller, &a.key_id, 1025, &ctx("{}"), false, true)
            .await
            .is_err());
        let r = kms
            .re_encrypt(
                &caller,
                &s.ciphertext_blob,
                &b.key_id,
                &ctx("{}"),
                &ctx(r#"{"x":"y"}"#),
                false,
            )
            .await
            .unwrap();
        assert_eq!(r.key_id, b.key_id);
        let o = kms
            .decrypt(&caller, &r.ciphertext_blob, &ctx(r#"{"x":"y"}"#), false)
            .await
            .unwrap();
        assert_eq!(o.plaintext.as_slice(), dk.as_slice());
        assert!(kms
            .encrypt(&caller, &a.key_id, &[0u8; 6145], &ctx("{}"), false)
            .await
            .is_err());
        assert!(kms
            .encrypt(&caller, &a.key_id, &[0u8; 6144], &ctx("{}"), false)
            .await
            .is_ok());
    }
}
