//! Secrets Manager: generic secrets, their versions and stages, deletion windows.
//!
//! Values are envelope-encrypted: each version gets a fresh 256-bit data key from
//! GenerateDataKey under the secret's `EncryptionKeyId` (so the key's state rules apply: a
//! disabled key refuses new values and reads with `Rejected.Disabled`, a deleted key reads as
//! `Forbidden.KeyNotFound`, deleted material as `Rejected.PendingImport`); the value is
//! sealed with AES-256-GCM under the data key, bound to the secret and version. The store
//! keeps only the data key's ciphertext blob and the sealed value.
//!
//! Without `EncryptionKeyId`, a default key of the account and region is used, created on
//! first use (with deletion protection) and recorded in the store's metadata.
//!
//! Only `Generic` secrets exist here: the managed types (Rds, Redis, PolarDB, RAMCredentials,
//! ECS) depend on the cloud services that rotate them and are refused with
//! `InvalidParameter`; so are RotateSecret and automatic rotation, which Alibaba offers for
//! those types only (a generic secret is rotated by PutSecretValue and
//! UpdateSecretVersionStage).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lc_rs::rand::SecureRandom;
use base64::Engine;

use super::crypto::EncryptionContext;
use super::keys::{validate_tag, CreateKeyInput};
use super::state::row;
use super::{new_id, Caller, Kms};
use crate::error::KmsError;
use crate::keystore::{Keystore, Secret};
use crate::model::secret::{ACS_CURRENT, ACS_PREVIOUS};
use crate::model::{SecretRecord, SecretVersionMeta, SecretVersionRecord, Tag};
use crate::store::{SecretChange, StoreError};

/// Largest SecretData: 30 KiB (reference §8.3).
pub const MAX_SECRET_DATA: usize = 30_720;
pub const MAX_SECRET_NAME: usize = 192;
pub const MAX_VERSION_ID: usize = 64;
pub const MAX_EXTENDED_CONFIG: usize = 1024;
pub const MAX_DESCRIPTION: usize = 8192;
pub const MAX_STAGE: usize = 64;
/// Stages one PutSecretValue may attach.
pub const MAX_STAGES_PER_CALL: usize = 20;
/// Tags per secret (reference §8.3).
pub const MAX_SECRET_TAGS: usize = 20;
pub const MIN_RECOVERY_DAYS: i64 = 7;
pub const MAX_RECOVERY_DAYS: i64 = 30;
pub const DEFAULT_RECOVERY_DAYS: i64 = 30;

/// The managed secret types Alibaba offers, refused here.
const MANAGED_TYPES: [&str; 6] = ["Rds", "RDS", "Redis", "PolarDB", "RAMCredentials", "ECS"];

/// The data type of a value: returned exactly as `text` or `binary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretDataType {
    Text,
    Binary,
}

impl SecretDataType {
    pub fn parse(s: Option<&str>) -> Result<Self, KmsError> {
        match s {
            None => Ok(Self::Text),
            Some(t) if t.eq_ignore_ascii_case("text") => Ok(Self::Text),
            Some(t) if t.eq_ignore_ascii_case("binary") => Ok(Self::Binary),
            Some(_) => Err(KmsError::invalid_because(
                "SecretDataType",
                "Expected text or binary.",
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Binary => "binary",
        }
    }
}

/// What CreateSecret gets. (Its `Debug` leaves the value out.)
#[derive(Default)]
pub struct CreateSecretInput {
    pub secret_name: String,
    pub version_id: String,
    pub secret_data: Secret,
    pub secret_data_type: Option<String>,
    pub secret_type: Option<String>,
    pub encryption_key_id: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    pub extended_config: Option<String>,
    pub enable_automatic_rotation: bool,
    pub rotation_interval: Option<String>,
}

/// A version's value, opened. (Its `Debug` leaves the value out.) The secret's row, the
/// version and the version list are shared with the store's cache, not copied.
pub struct SecretValue {
    pub secret: Arc<SecretRecord>,
    /// The version (its value still sealed here; the opening is `data`).
    pub version: Arc<SecretVersionRecord>,
    versions: Arc<Vec<SecretVersionMeta>>,
    /// Where in `versions` the version is.
    meta: usize,
    pub data: Secret,
}

impl SecretValue {
    /// The stages on the version, sorted.
    pub fn stages(&self) -> &[String] {
        self.versions
            .get(self.meta)
            .map_or(&[], |m| m.stages.as_slice())
    }
}

#[cfg(test)]
impl SecretValue {
    /// A value as GetSecretValue answers it, for the rendering tests.
    pub(crate) fn for_test(
        secret: SecretRecord,
        version: SecretVersionRecord,
        stages: Vec<String>,
        data: &[u8],
    ) -> Self {
        let meta = SecretVersionMeta {
            version_id: version.version_id.clone(),
            creation_date: version.creation_date,
            stages,
        };
        Self {
            secret: Arc::new(secret),
            version: Arc::new(version),
            versions: Arc::new(vec![meta]),
            meta: 0,
            data: Secret::new(data.to_vec()),
        }
    }
}

impl std::fmt::Debug for CreateSecretInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateSecretInput")
            .field("secret_name", &self.secret_name)
            .field("version_id", &self.version_id)
            .field("secret_data", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretValue")
            .field("secret_name", &self.secret.secret_name)
            .field("version_id", &self.version.version_id)
            .field("data", &"<redacted>")
            .field("stages", &self.stages())
            .finish_non_exhaustive()
    }
}

/// A ListSecrets filter: `Key` and its accepted values (OR within, AND across).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFilter {
    pub key: SecretFilterKey,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretFilterKey {
    SecretName,
    Description,
    TagKey,
    TagValue,
    SecretType,
    DkmsInstanceId,
    Creator,
}

impl SecretFilterKey {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "SecretName" => Self::SecretName,
            "Description" => Self::Description,
            "TagKey" => Self::TagKey,
            "TagValue" => Self::TagValue,
            "SecretType" => Self::SecretType,
            "DKMSInstanceId" => Self::DkmsInstanceId,
            "Creator" => Self::Creator,
            _ => return None,
        })
    }
}

/// One page of ListSecrets.
#[derive(Debug)]
pub struct SecretPage {
    pub secrets: Vec<(SecretRecord, Option<Vec<Tag>>)>,
    pub total: usize,
}

/// `acs:kms:<region>:<account>:secret/<name>`
pub fn secret_arn(s: &SecretRecord) -> String {
    format!(
        "acs:kms:{}:{}:secret/{}",
        s.region, s.account_id, s.secret_name
    )
}

/// A name as CreateSecret takes it: 1–192 of `[A-Za-z0-9_/+=.@-]`, not `acs/…`.
pub fn validate_secret_name(name: &str) -> Result<(), KmsError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SECRET_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_/+=.@-".contains(&b));
    if !ok {
        return Err(KmsError::invalid_because(
            "SecretName",
            "A secret name is 1 to 192 characters: letters, digits and _/+=.@-",
        ));
    }
    if name.starts_with("acs/") {
        return Err(KmsError::invalid_because(
            "SecretName",
            "Names starting with acs/ are reserved for managed secrets.",
        ));
    }
    Ok(())
}

fn validate_version_id(name: &str, id: &str) -> Result<(), KmsError> {
    if id.is_empty() || id.chars().count() > MAX_VERSION_ID || id.chars().any(char::is_control) {
        return Err(KmsError::invalid_because(
            name,
            "A version id is 1 to 64 characters.",
        ));
    }
    Ok(())
}

fn validate_stage(stage: &str) -> Result<(), KmsError> {
    let ok = !stage.is_empty()
        && stage.len() <= MAX_STAGE
        && stage
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ok {
        return Err(KmsError::invalid_because(
            "VersionStage",
            "A stage is 1 to 64 letters, digits and _.-",
        ));
    }
    Ok(())
}

fn validate_data(data: &[u8], data_type: SecretDataType) -> Result<(), KmsError> {
    if data.is_empty() || data.len() > MAX_SECRET_DATA {
        return Err(KmsError::invalid_because(
            "SecretData",
            "The value is 1 to 30720 bytes.",
        ));
    }
    if data_type == SecretDataType::Binary
        && base64::engine::general_purpose::STANDARD
            .decode(data)
            .is_err()
    {
        return Err(KmsError::invalid_because(
            "SecretData",
            "A binary value is given in base64.",
        ));
    }
    Ok(())
}

fn validate_secret_type(t: Option<&str>) -> Result<String, KmsError> {
    match t {
        None | Some("Generic") => Ok("Generic".into()),
        Some(m) if MANAGED_TYPES.contains(&m) => Err(KmsError::invalid_because(
            "SecretType",
            format!(
                "{m} secrets are not supported: this server stores Generic secrets only (managed secrets need the cloud service that rotates them)."
            ),
        )),
        Some(_) => Err(KmsError::invalid_because(
            "SecretType",
            "Expected Generic.",
        )),
    }
}

fn validate_extended_config(text: &str) -> Result<(), KmsError> {
    let bad = || {
        KmsError::invalid_because(
            "ExtendedConfig",
            "Expected a JSON object of at most 1024 characters.",
        )
    };
    if text.chars().count() > MAX_EXTENDED_CONFIG {
        return Err(bad());
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(bad()),
    }
}

fn validate_description(d: &str) -> Result<(), KmsError> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(KmsError::invalid_because(
            "Description",
            "At most 8192 characters.",
        ));
    }
    Ok(())
}

/// The associated data binding a sealed value to its secret, version and data type.
fn value_aad(secret_id: &str, version_id: &str, data_type: &str) -> Vec<u8> {
    format!("secret-value:{secret_id}:{version_id}:{data_type}").into_bytes()
}

/// The encryption context of a version's data key blob.
fn data_key_context(secret_id: &str, version_id: &str) -> EncryptionContext {
    let text = serde_json::json!({
        "kms:secret-id": secret_id,
        "kms:secret-version": version_id,
    })
    .to_string();
    EncryptionContext::parse("EncryptionContext", &text).unwrap_or_default()
}

/// The meta entry naming the default secrets key of an account and region.
fn default_key_meta(caller: &Caller) -> String {
    format!(
        "secrets-default-key:{}:{}",
        caller.account_id, caller.region
    )
}

/// The password alphabet of GetRandomPassword (reference §9.13).
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
const PUNCT: &[u8] = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_{|}~";

/// GetRandomPassword's options.
#[derive(Debug, Clone, Default)]
pub struct PasswordSpec {
    pub length: Option<usize>,
    pub exclude_characters: String,
    pub exclude_lowercase: bool,
    pub exclude_uppercase: bool,
    pub exclude_numbers: bool,
    pub exclude_punctuation: bool,
    pub require_each_included_type: bool,
}

impl Kms {
    /// Parses a `SecretName` (a name or `acs:kms:<region>:<account>:secret/<name>`); another
    /// account's or region's ARN is not found.
    fn secret_name<'a>(&self, caller: &Caller, name: &'a str) -> Result<&'a str, KmsError> {
        if let Some(rest) = name.strip_prefix("acs:kms:") {
            let mut parts = rest.splitn(3, ':');
            let (region, account, resource) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            if region != caller.region || account != caller.account_id {
                return Err(KmsError::ResourceNotFound);
            }
            return resource
                .strip_prefix("secret/")
                .filter(|n| !n.is_empty())
                .ok_or(KmsError::ResourceNotFound);
        }
        Ok(name)
    }

    /// Loads a secret, deleting it first if its recovery window is over.
    async fn load_secret(&self, caller: &Caller, name: &str) -> Result<SecretRecord, KmsError> {
        let name = self.secret_name(caller, name)?;
        let s = self
            .store
            .get_secret(&caller.account_id, &caller.region, name)
            .await?
            .ok_or(KmsError::ResourceNotFound)?;
        let now = self.now();
        if s.planned_delete_time.is_some_and(|t| t <= now) {
            self.store.delete_secret_if_due(&s.secret_id, now).await?;
            return Err(KmsError::ResourceNotFound);
        }
        Ok(s)
    }

    /// A secret that is not in its recovery window.
    async fn load_active_secret(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<SecretRecord, KmsError> {
        let s = self.load_secret(caller, name).await?;
        if s.planned_delete_time.is_some() {
            return Err(KmsError::ResourceInDeleteWindow);
        }
        Ok(s)
    }

    /// The key of a new secret: `EncryptionKeyId` resolved (id, ARN or alias), or the
    /// account's default secrets key (created on first use).
    async fn secret_key(&self, caller: &Caller, given: Option<&str>) -> Result<String, KmsError> {
        if let Some(k) = given {
            let loc = self.resolve(caller, k).await?;
            return Ok(self.load(&loc).await?.key_id);
        }
        let meta = default_key_meta(caller);
        if let Some(id) = self.store.get_meta(&meta).await? {
            return Ok(id);
        }
        let key = self
            .create_key(
                caller,
                CreateKeyInput {
                    description: Some(
                        "Default key of Secrets Manager (created on first use)".into(),
                    ),
                    ..Default::default()
                },
            )
            .await?;
        let winner = self.store.init_meta(&meta, &key.key_id).await?;
        if winner == key.key_id {
            self.set_deletion_protection(
                caller,
                &key.key_id,
                true,
                Some("The default key of Secrets Manager".into()),
            )
            .await?;
        } else {
            // Another request created one first: this one is not needed.
            self.schedule_key_deletion(caller, &key.key_id, 7).await?;
        }
        Ok(winner)
    }

    /// Seals a value under a fresh data key from `key_id`.
    async fn seal_version(
        &self,
        caller: &Caller,
        key_id: &str,
        secret_id: &str,
        version_id: &str,
        data_type: SecretDataType,
        data: &[u8],
    ) -> Result<SecretVersionRecord, KmsError> {
        let ctx = data_key_context(secret_id, version_id);
        let (sealed, data_key) = self
            .generate_data_key(caller, key_id, 32, &ctx, false, true)
            .await?;
        let sealed_value = self.keystore.seal_with_data_key(
            &data_key,
            &value_aad(secret_id, version_id, data_type.as_str()),
            data,
        )?;
        Ok(SecretVersionRecord {
            secret_id: secret_id.to_string(),
            version_id: version_id.to_string(),
            creation_date: self.now(),
            data_type: data_type.as_str().to_string(),
            sealed_data_key: sealed.ciphertext_blob,
            sealed_value,
        })
    }

    /// Opens a version's value: Decrypt of its data key under the secret's key (with that
    /// key's state rules), then the value.
    async fn open_version(
        &self,
        caller: &Caller,
        v: &SecretVersionRecord,
    ) -> Result<Secret, KmsError> {
        let ctx = data_key_context(&v.secret_id, &v.version_id);
        let opened = self
            .decrypt(caller, &v.sealed_data_key, &ctx, false)
            .await?;
        Keystore::open_with_data_key(
            &opened.plaintext,
            &value_aad(&v.secret_id, &v.version_id, &v.data_type),
            &v.sealed_value,
        )
        .ok_or_else(|| KmsError::internal("secret value failed authentication"))
    }

    /// [`Self::open_version`] for GetSecretValue: the version's opened value comes from the
    /// store's cache when it holds it (see [`crate::store::SecretStore::cached_secret_value`]);
    /// the secret's key is checked all the same, on every call, with Decrypt's rules and
    /// errors (disabled, pending deletion, material deleted or expired, gone). A value
    /// opened here is offered to the cache.
    async fn open_version_cached(
        &self,
        caller: &Caller,
        v: &SecretVersionRecord,
    ) -> Result<Secret, KmsError> {
        let now = self.now();
        if let Some(value) =
            self.store
                .cached_secret_value(&v.secret_id, &v.version_id, &v.sealed_data_key, now)
        {
            self.check_blob_key(caller, row::Decrypt, &v.sealed_data_key)
                .await?;
            return Ok(zeroize::Zeroizing::new(value.to_vec()));
        }
        let ctx = data_key_context(&v.secret_id, &v.version_id);
        let opened = self
            .decrypt(caller, &v.sealed_data_key, &ctx, false)
            .await?;
        let aad = value_aad(&v.secret_id, &v.version_id, &v.data_type);
        let value = Keystore::open_with_data_key(&opened.plaintext, &aad, &v.sealed_value)
            .ok_or_else(|| KmsError::internal("secret value failed authentication"))?;
        self.store.keep_secret_value(
            &v.secret_id,
            &v.version_id,
            &opened.key_id,
            &v.sealed_data_key,
            &value,
            now,
        );
        Ok(value)
    }

    pub async fn create_secret(
        &self,
        caller: &Caller,
        input: CreateSecretInput,
    ) -> Result<SecretRecord, KmsError> {
        validate_secret_name(&input.secret_name)?;
        validate_version_id("VersionId", &input.version_id)?;
        let secret_type = validate_secret_type(input.secret_type.as_deref())?;
        let data_type = SecretDataType::parse(input.secret_data_type.as_deref())?;
        validate_data(&input.secret_data, data_type)?;
        let description = input.description.unwrap_or_default();
        validate_description(&description)?;
        if let Some(c) = &input.extended_config {
            validate_extended_config(c)?;
        }
        if input.tags.len() > MAX_SECRET_TAGS {
            return Err(KmsError::invalid_because("Tags", "At most 20 tags."));
        }
        for t in &input.tags {
            validate_tag(t)?;
        }
        if let Some(i) = &input.rotation_interval {
            parse_secret_rotation_interval(i)?;
        }
        if input.enable_automatic_rotation {
            // Alibaba rotates managed secrets only.
            return Err(KmsError::UnsupportedOperation);
        }
        if let Some(existing) = self
            .store
            .get_secret(&caller.account_id, &caller.region, &input.secret_name)
            .await?
        {
            let now = self.now();
            match existing.planned_delete_time {
                Some(t) if t <= now => {
                    self.store
                        .delete_secret_if_due(&existing.secret_id, now)
                        .await?;
                }
                Some(_) => return Err(KmsError::ResourceInDeleteWindow),
                None => return Err(KmsError::ResourceExist),
            }
        }
        let key_id = self
            .secret_key(caller, input.encryption_key_id.as_deref())
            .await?;
        let secret_id = new_id();
        let first = self
            .seal_version(
                caller,
                &key_id,
                &secret_id,
                &input.version_id,
                data_type,
                &input.secret_data,
            )
            .await?;
        let now = self.now();
        let secret = SecretRecord {
            secret_id,
            account_id: caller.account_id.clone(),
            region: caller.region.clone(),
            secret_name: input.secret_name,
            secret_type,
            description,
            encryption_key_id: key_id,
            extended_config: input.extended_config,
            creation_date: now,
            update_date: now,
            planned_delete_time: None,
            automatic_rotation: false,
            rotation_interval: None,
            last_rotation_date: None,
            next_rotation_date: None,
        };
        match self
            .store
            .insert_secret(
                secret.clone(),
                first,
                vec![ACS_CURRENT.to_string()],
                input.tags,
                self.config.max_secrets,
            )
            .await
        {
            Ok(()) => Ok(secret),
            // A CreateSecret of the same name won the race.
            Err(StoreError::Duplicate(_)) => Err(KmsError::ResourceExist),
            Err(e) => Err(e.into()),
        }
    }

    /// GetSecretValue: the version `version_id`, or the one holding `stage` (ACSCurrent by
    /// default); with both, the stage must be on that version.
    pub async fn get_secret_value(
        &self,
        caller: &Caller,
        name: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<SecretValue, KmsError> {
        // The rows come shared from the store's cache (no copies on the hot path), with the
        // same checks and answers as [`Self::load_active_secret`].
        let name = self.secret_name(caller, name)?;
        let secret = self
            .store
            .get_secret_shared(&caller.account_id, &caller.region, name)
            .await?
            .ok_or(KmsError::ResourceNotFound)?;
        if let Some(t) = secret.planned_delete_time {
            let now = self.now();
            if t <= now {
                self.store
                    .delete_secret_if_due(&secret.secret_id, now)
                    .await?;
                return Err(KmsError::ResourceNotFound);
            }
            return Err(KmsError::ResourceInDeleteWindow);
        }
        let versions = self
            .store
            .list_secret_versions_shared(&secret.secret_id)
            .await?;
        let (meta, found) = match (version_id, stage) {
            (Some(v), s) => versions
                .iter()
                .enumerate()
                .find(|(_, m)| m.version_id == v)
                .filter(|(_, m)| s.is_none_or(|s| m.stages.iter().any(|x| x == s))),
            (None, s) => {
                let s = s.unwrap_or(ACS_CURRENT);
                versions
                    .iter()
                    .enumerate()
                    .find(|(_, m)| m.stages.iter().any(|x| x == s))
            }
        }
        .ok_or(KmsError::ResourceNotFound)?;
        let v = self
            .store
            .get_secret_version_shared(&secret.secret_id, &found.version_id)
            .await?
            .ok_or(KmsError::ResourceNotFound)?;
        let data = self.open_version_cached(caller, &v).await?;
        Ok(SecretValue {
            secret,
            version: v,
            versions,
            meta,
            data,
        })
    }

    /// PutSecretValue: a new version (stages `stages`, default ACSCurrent; see
    /// [`attach_stage`]), or, for an existing VersionId, success without change if the value
    /// is the same. Returns the version's stages.
    pub async fn put_secret_value(
        &self,
        caller: &Caller,
        name: &str,
        version_id: &str,
        data: Secret,
        data_type: Option<&str>,
        stages: Option<Vec<String>>,
    ) -> Result<Vec<String>, KmsError> {
        validate_version_id("VersionId", version_id)?;
        let data_type = SecretDataType::parse(data_type)?;
        validate_data(&data, data_type)?;
        let stages = stages.unwrap_or_else(|| vec![ACS_CURRENT.to_string()]);
        if stages.is_empty() || stages.len() > MAX_STAGES_PER_CALL {
            return Err(KmsError::invalid_because(
                "VersionStages",
                "Give 1 to 20 stages.",
            ));
        }
        for s in &stages {
            validate_stage(s)?;
        }
        let secret = self.load_active_secret(caller, name).await?;
        if let Some(existing) = self
            .store
            .get_secret_version(&secret.secret_id, version_id)
            .await?
        {
            return self
                .same_version(caller, &secret, existing, &data, data_type)
                .await;
        }
        let v = self
            .seal_version(
                caller,
                &secret.encryption_key_id,
                &secret.secret_id,
                version_id,
                data_type,
                &data,
            )
            .await?;
        let now = self.now();
        let max_versions = self.config.max_versions_per_secret;
        let vid = version_id.to_string();
        let result = self
            .store
            .update_secret(
                &caller.account_id,
                &caller.region,
                &secret.secret_name,
                Box::new(move |s, versions| {
                    if s.secret_id != v.secret_id {
                        // Deleted and created again meanwhile.
                        return Err(KmsError::ResourceNotFound);
                    }
                    if s.planned_delete_time.is_some() {
                        return Err(KmsError::ResourceInDeleteWindow);
                    }
                    if versions.iter().any(|m| m.version_id == v.version_id) {
                        return Err(KmsError::invalid_because(
                            "VersionId",
                            "A version with this id was put at the same time.",
                        ));
                    }
                    versions.insert(
                        0,
                        SecretVersionMeta {
                            version_id: v.version_id.clone(),
                            creation_date: v.creation_date,
                            stages: Vec::new(),
                        },
                    );
                    for stage in &stages {
                        attach_stage(versions, stage, &v.version_id);
                    }
                    s.update_date = now;
                    let mut changes = vec![SecretChange::InsertVersion(v)];
                    changes.extend(prune(versions, max_versions)?);
                    Ok(changes)
                }),
            )
            .await?
            .ok_or(KmsError::ResourceNotFound)?;
        Ok(result
            .1
            .into_iter()
            .find(|m| m.version_id == vid)
            .map(|m| m.stages)
            .unwrap_or_default())
    }

    /// PutSecretValue with an existing VersionId: the same value (and type) succeeds
    /// without change; another one is refused.
    async fn same_version(
        &self,
        caller: &Caller,
        secret: &SecretRecord,
        existing: SecretVersionRecord,
        data: &[u8],
        data_type: SecretDataType,
    ) -> Result<Vec<String>, KmsError> {
        let old = self.open_version(caller, &existing).await?;
        let same = existing.data_type == data_type.as_str()
            && aws_lc_rs::constant_time::verify_slices_are_equal(&old, data).is_ok();
        if !same {
            return Err(KmsError::invalid_because(
                "VersionId",
                "This version exists with another value; versions cannot change.",
            ));
        }
        let versions = self.store.list_secret_versions(&secret.secret_id).await?;
        Ok(versions
            .into_iter()
            .find(|m| m.version_id == existing.version_id)
            .map(|m| m.stages)
            .unwrap_or_default())
    }

    pub async fn describe_secret(
        &self,
        caller: &Caller,
        name: &str,
        fetch_tags: bool,
    ) -> Result<(SecretRecord, Option<Vec<Tag>>), KmsError> {
        let s = self.load_secret(caller, name).await?;
        let tags = if fetch_tags {
            Some(self.store.list_secret_tags(&s.secret_id).await?)
        } else {
            None
        };
        Ok((s, tags))
    }

    pub async fn list_secrets(
        &self,
        caller: &Caller,
        filters: &[SecretFilter],
        fetch_tags: bool,
        page: usize,
        size: usize,
    ) -> Result<SecretPage, KmsError> {
        let now = self.now();
        let all = self
            .store
            .list_secrets(&caller.account_id, &caller.region)
            .await?;
        let needs_tags = fetch_tags
            || filters
                .iter()
                .any(|f| matches!(f.key, SecretFilterKey::TagKey | SecretFilterKey::TagValue));
        let mut tags: BTreeMap<String, Vec<Tag>> = BTreeMap::new();
        if needs_tags {
            for (id, t) in self
                .store
                .list_account_secret_tags(&caller.account_id, &caller.region)
                .await?
            {
                tags.entry(id).or_default().push(t);
            }
        }
        let matching: Vec<SecretRecord> = all
            .into_iter()
            .filter(|s| s.planned_delete_time.is_none_or(|t| t > now))
            .filter(|s| {
                let t = tags.get(&s.secret_id).map(Vec::as_slice).unwrap_or(&[]);
                filters.iter().all(|f| {
                    f.values.iter().any(|v| match f.key {
                        SecretFilterKey::SecretName => &s.secret_name == v,
                        SecretFilterKey::Description => &s.description == v,
                        SecretFilterKey::TagKey => t.iter().any(|x| &x.key == v),
                        SecretFilterKey::TagValue => t.iter().any(|x| &x.value == v),
                        SecretFilterKey::SecretType => s.secret_type.eq_ignore_ascii_case(v),
                        // No KMS instances and no creators other than the account here.
                        SecretFilterKey::DkmsInstanceId => false,
                        SecretFilterKey::Creator => v == &caller.account_id,
                    })
                })
            })
            .collect();
        let total = matching.len();
        let secrets = matching
            .into_iter()
            .skip(page.saturating_sub(1).saturating_mul(size))
            .take(size)
            .map(|s| {
                let t = fetch_tags.then(|| tags.get(&s.secret_id).cloned().unwrap_or_default());
                (s, t)
            })
            .collect();
        Ok(SecretPage { secrets, total })
    }

    /// UpdateSecret: description and (managed types only) custom data.
    pub async fn update_secret(
        &self,
        caller: &Caller,
        name: &str,
        description: Option<String>,
        custom_data: Option<String>,
    ) -> Result<SecretRecord, KmsError> {
        if let Some(d) = &description {
            validate_description(d)?;
        }
        if custom_data.is_some() {
            // CustomData belongs to the ExtendedConfig of managed secrets.
            return Err(KmsError::invalid_because(
                "ExtendedConfig.CustomData",
                "Custom data is for managed secrets; Generic secrets have none.",
            ));
        }
        let secret = self.load_active_secret(caller, name).await?;
        let now = self.now();
        self.mutate_secret(caller, &secret, move |s, _| {
            if let Some(d) = description {
                s.description = d;
            }
            s.update_date = now;
            Ok(vec![])
        })
        .await
        .map(|(s, _)| s)
    }

    /// Runs a read-modify-write on a secret that must still be the one loaded and not in
    /// its recovery window.
    async fn mutate_secret<F>(
        &self,
        caller: &Caller,
        secret: &SecretRecord,
        f: F,
    ) -> Result<(SecretRecord, Vec<SecretVersionMeta>), KmsError>
    where
        F: FnOnce(
                &mut SecretRecord,
                &mut Vec<SecretVersionMeta>,
            ) -> Result<Vec<SecretChange>, KmsError>
            + Send
            + 'static,
    {
        let id = secret.secret_id.clone();
        self.store
            .update_secret(
                &caller.account_id,
                &caller.region,
                &secret.secret_name,
                Box::new(move |s, v| {
                    if s.secret_id != id {
                        return Err(KmsError::ResourceNotFound);
                    }
                    if s.planned_delete_time.is_some() {
                        return Err(KmsError::ResourceInDeleteWindow);
                    }
                    f(s, v)
                }),
            )
            .await?
            .ok_or(KmsError::ResourceNotFound)
    }

    /// DeleteSecret: into a recovery window of `days` (7–30, default 30), or at once with
    /// `force`. Returns the planned deletion time (now for a forced deletion).
    pub async fn delete_secret(
        &self,
        caller: &Caller,
        name: &str,
        force: bool,
        days: Option<i64>,
    ) -> Result<(SecretRecord, i64), KmsError> {
        if force && days.is_some() {
            return Err(KmsError::invalid_because(
                "RecoveryWindowInDays",
                "Give RecoveryWindowInDays or ForceDeleteWithoutRecovery=true, not both.",
            ));
        }
        let secret = self.load_secret(caller, name).await?;
        let now = self.now();
        if force {
            self.store.delete_secret(&secret.secret_id).await?;
            return Ok((secret, now));
        }
        let days = days.unwrap_or(DEFAULT_RECOVERY_DAYS);
        let when = now + days * 86_400;
        let (s, _) = self
            .mutate_secret(caller, &secret, move |s, _| {
                s.planned_delete_time = Some(when);
                Ok(vec![])
            })
            .await?;
        Ok((s, when))
    }

    /// RestoreSecret: ends the recovery window.
    pub async fn restore_secret(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<SecretRecord, KmsError> {
        let secret = self.load_secret(caller, name).await?;
        if secret.planned_delete_time.is_none() {
            return Err(KmsError::invalid_because(
                "SecretName",
                "The secret is not scheduled for deletion.",
            ));
        }
        let id = secret.secret_id.clone();
        let now = self.now();
        self.store
            .update_secret(
                &caller.account_id,
                &caller.region,
                &secret.secret_name,
                Box::new(move |s, _| {
                    match s.planned_delete_time {
                        _ if s.secret_id != id => return Err(KmsError::ResourceNotFound),
                        Some(t) if t <= now => return Err(KmsError::ResourceNotFound),
                        None => {
                            return Err(KmsError::invalid_because(
                                "SecretName",
                                "The secret is not scheduled for deletion.",
                            ))
                        }
                        Some(_) => {}
                    }
                    s.planned_delete_time = None;
                    Ok(vec![])
                }),
            )
            .await?
            .map(|(s, _)| s)
            .ok_or(KmsError::ResourceNotFound)
    }

    /// ListSecretVersionIds: newest first; without `include_deprecated`, only versions with
    /// a stage.
    pub async fn list_secret_version_ids(
        &self,
        caller: &Caller,
        name: &str,
        include_deprecated: bool,
    ) -> Result<(SecretRecord, Vec<SecretVersionMeta>), KmsError> {
        let s = self.load_secret(caller, name).await?;
        let versions = self
            .store
            .list_secret_versions(&s.secret_id)
            .await?
            .into_iter()
            .filter(|v| include_deprecated || !v.stages.is_empty())
            .collect();
        Ok((s, versions))
    }

    /// UpdateSecretVersionStage: attach (`move_to`), detach (`remove_from`, custom stages
    /// only) or move (both) a stage.
    pub async fn update_secret_version_stage(
        &self,
        caller: &Caller,
        name: &str,
        stage: &str,
        move_to: Option<String>,
        remove_from: Option<String>,
    ) -> Result<SecretRecord, KmsError> {
        validate_stage(stage)?;
        let builtin = stage == ACS_CURRENT || stage == ACS_PREVIOUS;
        match (&move_to, &remove_from) {
            (None, None) => {
                return Err(KmsError::invalid_because(
                    "MoveToVersion",
                    "Give MoveToVersion, RemoveFromVersion or both.",
                ))
            }
            (None, Some(_)) if builtin => {
                return Err(KmsError::invalid_because(
                    "MoveToVersion",
                    "ACSCurrent and ACSPrevious can only be moved to another version.",
                ))
            }
            _ => {}
        }
        let secret = self.load_active_secret(caller, name).await?;
        let stage = stage.to_string();
        let now = self.now();
        self.mutate_secret(caller, &secret, move |s, versions| {
            let holder = versions
                .iter()
                .find(|v| v.stages.contains(&stage))
                .map(|v| v.version_id.clone());
            if let Some(from) = &remove_from {
                if !versions.iter().any(|v| &v.version_id == from) {
                    return Err(KmsError::ResourceNotFound);
                }
                if holder.as_ref() != Some(from) {
                    return Err(KmsError::invalid_because(
                        "RemoveFromVersion",
                        "The stage is not on this version.",
                    ));
                }
            }
            match &move_to {
                Some(to) => {
                    if !versions.iter().any(|v| &v.version_id == to) {
                        return Err(KmsError::ResourceNotFound);
                    }
                    attach_stage(versions, &stage, to);
                }
                None => {
                    for v in versions.iter_mut() {
                        v.stages.retain(|x| x != &stage);
                    }
                }
            }
            s.update_date = now;
            Ok(vec![])
        })
        .await
        .map(|(s, _)| s)
    }

    /// RotateSecret: Alibaba rotates managed secrets only; a Generic secret (the only kind
    /// here) is refused with `Rejected.UnsupportedOperation`.
    pub async fn rotate_secret(
        &self,
        caller: &Caller,
        name: &str,
        version_id: &str,
    ) -> Result<SecretRecord, KmsError> {
        validate_version_id("VersionId", version_id)?;
        let _secret = self.load_active_secret(caller, name).await?;
        Err(KmsError::UnsupportedOperation)
    }

    /// UpdateSecretRotationPolicy: automatic rotation is for managed secrets; on a Generic
    /// secret, enabling is refused with `Rejected.UnsupportedOperation` and disabling (the
    /// state it is always in) succeeds.
    pub async fn update_secret_rotation_policy(
        &self,
        caller: &Caller,
        name: &str,
        enable: bool,
        interval: Option<&str>,
    ) -> Result<SecretRecord, KmsError> {
        if let Some(i) = interval {
            parse_secret_rotation_interval(i)?;
        } else if enable {
            return Err(KmsError::missing("RotationInterval"));
        }
        let secret = self.load_active_secret(caller, name).await?;
        if enable {
            return Err(KmsError::UnsupportedOperation);
        }
        Ok(secret)
    }

    /// GetRandomPassword: a CSPRNG password over the allowed classes (rejection sampling,
    /// no modulo bias).
    pub fn get_random_password(&self, spec: &PasswordSpec) -> Result<Secret, KmsError> {
        let length = spec.length.unwrap_or(32);
        if !(8..=128).contains(&length) {
            return Err(KmsError::invalid_because(
                "PasswordLength",
                "Expected 8 to 128.",
            ));
        }
        let excluded = spec.exclude_characters.as_bytes();
        let classes: Vec<Vec<u8>> = [
            (LOWER, spec.exclude_lowercase),
            (UPPER, spec.exclude_uppercase),
            (DIGITS, spec.exclude_numbers),
            (PUNCT, spec.exclude_punctuation),
        ]
        .into_iter()
        .filter(|(_, ex)| !ex)
        .map(|(c, _)| {
            c.iter()
                .copied()
                .filter(|b| !excluded.contains(b))
                .collect()
        })
        .filter(|c: &Vec<u8>| !c.is_empty())
        .collect();
        if classes.is_empty() {
            return Err(KmsError::invalid_because(
                "ExcludeCharacters",
                "Every character class is excluded.",
            ));
        }
        let alphabet: Vec<u8> = classes.iter().flatten().copied().collect();
        for _ in 0..1000 {
            let mut out = Secret::new(Vec::with_capacity(length));
            while out.len() < length {
                out.push(self.random_char(&alphabet)?);
            }
            if !spec.require_each_included_type
                || classes.iter().all(|c| out.iter().any(|b| c.contains(b)))
            {
                return Ok(out);
            }
        }
        Err(KmsError::internal(
            "could not meet the password requirements",
        ))
    }

    /// One uniformly random byte of `alphabet` (1 to 256 entries).
    fn random_char(&self, alphabet: &[u8]) -> Result<u8, KmsError> {
        let n = alphabet.len();
        let limit = 256 - 256 % n;
        loop {
            let mut b = [0u8; 1];
            self.keystore
                .rng()
                .fill(&mut b)
                .map_err(|_| KmsError::internal("rng"))?;
            if (b[0] as usize) < limit {
                return Ok(alphabet[b[0] as usize % n]);
            }
        }
    }

    // ------------------------------------------------------------------ tags

    pub async fn tag_secret(
        &self,
        caller: &Caller,
        name: &str,
        tags: Vec<Tag>,
    ) -> Result<(), KmsError> {
        for t in &tags {
            validate_tag(t)?;
        }
        let s = self.load_active_secret(caller, name).await?;
        self.store
            .put_secret_tags(&s.secret_id, tags, MAX_SECRET_TAGS)
            .await?;
        Ok(())
    }

    pub async fn untag_secret(
        &self,
        caller: &Caller,
        name: &str,
        keys: Option<Vec<String>>,
    ) -> Result<(), KmsError> {
        let s = self.load_active_secret(caller, name).await?;
        self.store.remove_secret_tags(&s.secret_id, keys).await?;
        Ok(())
    }

    /// TagResources with `ResourceType=secret`: every secret is checked before any is
    /// tagged.
    pub async fn tag_secrets(
        &self,
        caller: &Caller,
        names: &[String],
        tags: Vec<Tag>,
    ) -> Result<(), KmsError> {
        for t in &tags {
            validate_tag(t)?;
        }
        let mut secrets = Vec::with_capacity(names.len());
        for n in names {
            secrets.push(self.load_active_secret(caller, n).await?);
        }
        for s in secrets {
            self.store
                .put_secret_tags(&s.secret_id, tags.clone(), MAX_SECRET_TAGS)
                .await?;
        }
        Ok(())
    }

    /// UntagResources with `ResourceType=secret` (all tags with `None`).
    pub async fn untag_secrets(
        &self,
        caller: &Caller,
        names: &[String],
        keys: Option<Vec<String>>,
    ) -> Result<(), KmsError> {
        let mut secrets = Vec::with_capacity(names.len());
        for n in names {
            secrets.push(self.load_active_secret(caller, n).await?);
        }
        for s in secrets {
            self.store
                .remove_secret_tags(&s.secret_id, keys.clone())
                .await?;
        }
        Ok(())
    }

    /// ListTagResources with `ResourceType=secret`: (secret name, tag) rows of the caller's
    /// secrets, by name then tag key, filtered like the key rows, 200 a page.
    pub async fn list_secret_tag_resources(
        &self,
        caller: &Caller,
        names: &[String],
        filters: &[Tag],
        offset: usize,
    ) -> Result<(Vec<(String, Tag)>, Option<usize>), KmsError> {
        let now = self.now();
        let by_id: BTreeMap<String, String> = self
            .store
            .list_secrets(&caller.account_id, &caller.region)
            .await?
            .into_iter()
            .filter(|s| s.planned_delete_time.is_none_or(|t| t > now))
            .map(|s| (s.secret_id, s.secret_name))
            .collect();
        let mut rows: Vec<(String, Tag)> = self
            .store
            .list_account_secret_tags(&caller.account_id, &caller.region)
            .await?
            .into_iter()
            .filter_map(|(id, t)| by_id.get(&id).map(|n| (n.clone(), t)))
            .filter(|(n, _)| names.is_empty() || names.contains(n))
            .filter(|(_, t)| {
                filters.is_empty()
                    || filters
                        .iter()
                        .any(|f| f.key == t.key && (f.value.is_empty() || f.value == t.value))
            })
            .collect();
        rows.sort_by(|a, b| (&a.0, &a.1.key).cmp(&(&b.0, &b.1.key)));
        let total = rows.len();
        let page: Vec<_> = rows.into_iter().skip(offset).take(200).collect();
        let next = (offset + page.len() < total).then_some(offset + page.len());
        Ok((page, next))
    }

    /// The background part of the deletion window: secrets whose window is over.
    pub(crate) async fn purge_secrets(&self, now: i64) -> Result<(), KmsError> {
        for id in self.store.due_secret_deletions(now).await? {
            if self.store.delete_secret_if_due(&id, now).await? {
                tracing::info!(secret_id = %id, "secret deleted after its recovery window");
            }
        }
        Ok(())
    }
}

/// Puts `stage` on `version_id` (taking it from any other version). Moving ACSCurrent to
/// another version gives its former holder ACSPrevious (reference §9.14 rules 2, 4, 6).
pub fn attach_stage(versions: &mut [SecretVersionMeta], stage: &str, version_id: &str) {
    let holder = versions
        .iter()
        .find(|v| v.stages.iter().any(|s| s == stage))
        .map(|v| v.version_id.clone());
    if holder.as_deref() == Some(version_id) {
        return;
    }
    for v in versions.iter_mut() {
        v.stages.retain(|s| s != stage);
    }
    if stage == ACS_CURRENT {
        if let Some(old) = &holder {
            attach_stage(versions, ACS_PREVIOUS, old);
        }
    }
    if let Some(v) = versions.iter_mut().find(|v| v.version_id == version_id) {
        v.stages.push(stage.to_string());
        v.stages.sort();
    }
}

/// Deletes the oldest versions without a stage while there are more than `max`; if every
/// version has a stage, the put is refused.
fn prune(versions: &mut Vec<SecretVersionMeta>, max: usize) -> Result<Vec<SecretChange>, KmsError> {
    let mut changes = Vec::new();
    while versions.len() > max {
        // Newest first: the last unlabelled one is the oldest.
        let Some(i) = versions.iter().rposition(|v| v.stages.is_empty()) else {
            return Err(KmsError::LimitExceeded(format!(
                "at most {max} versions per secret, and every version has a stage"
            )));
        };
        changes.push(SecretChange::DeleteVersion(versions.remove(i).version_id));
    }
    Ok(changes)
}

/// A secret's `RotationInterval`: `<n><d|h|m|s>`, 6 hours to 365 days, in seconds.
pub fn parse_secret_rotation_interval(text: &str) -> Result<i64, KmsError> {
    let bad = || {
        KmsError::invalid_because(
            "RotationInterval",
            "The interval is a number with a unit d, h, m or s, from 6 hours to 365 days.",
        )
    };
    let t = text.trim();
    let unit_at = t.char_indices().last().map_or(0, |(i, _)| i);
    let (num, unit) = t.split_at(unit_at);
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = num.parse().map_err(|_| bad())?;
    let factor = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(factor).ok_or_else(bad)?;
    if !(6 * 3600..=365 * 86_400).contains(&secs) {
        return Err(bad());
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Rejection;
    use crate::service::testing::{kms, kms_with, T0};
    use crate::service::ServiceConfig;

    fn input(name: &str, data: &str) -> CreateSecretInput {
        CreateSecretInput {
            secret_name: name.into(),
            version_id: "v1".into(),
            secret_data: Secret::new(data.as_bytes().to_vec()),
            ..Default::default()
        }
    }

    fn meta(id: &str, stages: &[&str]) -> SecretVersionMeta {
        SecretVersionMeta {
            version_id: id.into(),
            creation_date: 0,
            stages: stages.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn debug_never_shows_a_value() {
        let i = input("n", "do-not-print-me");
        assert!(!format!("{i:?}").contains("do-not-print-me"));
    }

    #[test]
    fn stage_algorithm() {
        let mut v = vec![meta("v2", &[]), meta("v1", &["ACSCurrent"])];
        attach_stage(&mut v, ACS_CURRENT, "v2");
        assert_eq!(
            v,
            [meta("v2", &["ACSCurrent"]), meta("v1", &["ACSPrevious"])]
        );
        // A third: the previous ACSPrevious holder loses it.
        v.insert(0, meta("v3", &[]));
        attach_stage(&mut v, ACS_CURRENT, "v3");
        assert_eq!(
            v,
            [
                meta("v3", &["ACSCurrent"]),
                meta("v2", &["ACSPrevious"]),
                meta("v1", &[])
            ]
        );
        // A custom stage moves; ACSCurrent onto its holder changes nothing.
        attach_stage(&mut v, "Blue", "v1");
        attach_stage(&mut v, "Blue", "v2");
        attach_stage(&mut v, ACS_CURRENT, "v3");
        assert_eq!(
            v,
            [
                meta("v3", &["ACSCurrent"]),
                meta("v2", &["ACSPrevious", "Blue"]),
                meta("v1", &[])
            ]
        );
    }

    #[test]
    fn pruning_drops_the_oldest_unlabelled_versions() {
        let mut v = vec![
            meta("v4", &["ACSCurrent"]),
            meta("v3", &[]),
            meta("v2", &["Blue"]),
            meta("v1", &[]),
        ];
        let changes = prune(&mut v, 3).unwrap();
        assert!(matches!(&changes[..], [SecretChange::DeleteVersion(id)] if id == "v1"));
        let changes = prune(&mut v, 2).unwrap();
        assert!(matches!(&changes[..], [SecretChange::DeleteVersion(id)] if id == "v3"));
        assert_eq!(
            prune(&mut v, 1).unwrap_err().code(),
            "Rejected.LimitExceeded"
        );
    }

    #[test]
    fn names_and_intervals() {
        for ok in ["a", "db/prod+1=x.y@z-w_v", &"n".repeat(192)] {
            validate_secret_name(ok).unwrap();
        }
        for bad in ["", "acs/ecs/x", "a b", "ä", &"n".repeat(193)] {
            assert_eq!(
                validate_secret_name(bad).unwrap_err().code(),
                "InvalidParameter"
            );
        }
        assert_eq!(parse_secret_rotation_interval("6h").unwrap(), 21_600);
        assert_eq!(parse_secret_rotation_interval("365d").unwrap(), 31_536_000);
        for bad in ["5h", "366d", "1w", "", "h"] {
            assert!(parse_secret_rotation_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn random_passwords() {
        let (kms, _, _) = kms();
        let spec = PasswordSpec {
            length: Some(128),
            exclude_characters: "aA0!".into(),
            require_each_included_type: true,
            ..Default::default()
        };
        for _ in 0..20 {
            let pw = kms.get_random_password(&spec).unwrap();
            assert_eq!(pw.len(), 128);
            assert!(!pw.iter().any(|b| b"aA0!".contains(b)));
            for class in [LOWER, UPPER, DIGITS, PUNCT] {
                assert!(pw.iter().any(|b| class.contains(b)));
            }
            assert!(pw.iter().all(|b| b.is_ascii_graphic() && *b != b'`'));
        }
        let only_digits = PasswordSpec {
            exclude_lowercase: true,
            exclude_uppercase: true,
            exclude_punctuation: true,
            ..Default::default()
        };
        let pw = kms.get_random_password(&only_digits).unwrap();
        assert!(pw.len() == 32 && pw.iter().all(u8::is_ascii_digit));
        let none = PasswordSpec {
            exclude_numbers: true,
            ..only_digits
        };
        assert_eq!(
            kms.get_random_password(&none).unwrap_err().code(),
            "InvalidParameter"
        );
    }

    #[tokio::test]
    async fn values_are_sealed_under_the_secrets_key() {
        let (kms, _, caller) = kms();
        let s = kms
            .create_secret(&caller, input("db", "p4ssw0rd-value"))
            .await
            .unwrap();
        // The default key: created once, protected, reused.
        let key = kms
            .describe_key(&caller, &s.encryption_key_id)
            .await
            .unwrap();
        assert!(key.deletion_protection);
        let t = kms.create_secret(&caller, input("db2", "x")).await.unwrap();
        assert_eq!(t.encryption_key_id, s.encryption_key_id);

        let v = kms
            .store
            .get_secret_version(&s.secret_id, "v1")
            .await
            .unwrap()
            .unwrap();
        assert!(!v
            .sealed_value
            .windows(b"p4ssw0rd-value".len())
            .any(|w| w == b"p4ssw0rd-value"));
        assert_eq!(
            &*kms
                .get_secret_value(&caller, "db", None, None)
                .await
                .unwrap()
                .data,
            b"p4ssw0rd-value"
        );
        // A sealed value moved to another secret's version does not open.
        let w = kms
            .store
            .get_secret_version(&t.secret_id, "v1")
            .await
            .unwrap()
            .unwrap();
        let moved = SecretVersionRecord {
            sealed_value: v.sealed_value.clone(),
            ..w.clone()
        };
        assert_eq!(
            kms.open_version(&caller, &moved).await.unwrap_err().code(),
            "InternalFailure"
        );
        // The key's state applies to reads and new values.
        kms.disable_key(&caller, &s.encryption_key_id)
            .await
            .unwrap();
        assert_eq!(
            kms.get_secret_value(&caller, "db", None, None)
                .await
                .unwrap_err(),
            KmsError::Rejected(Rejection::Disabled)
        );
        assert_eq!(
            kms.put_secret_value(&caller, "db", "v2", Secret::new(b"n".to_vec()), None, None)
                .await
                .unwrap_err(),
            KmsError::Rejected(Rejection::Disabled)
        );
        kms.enable_key(&caller, &s.encryption_key_id).await.unwrap();
        assert!(kms
            .get_secret_value(&caller, "db", None, None)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn windows_on_the_clock() {
        let (kms, clock, caller) = kms();
        kms.create_secret(&caller, input("a", "x")).await.unwrap();
        let (_, when) = kms
            .delete_secret(&caller, "a", false, Some(7))
            .await
            .unwrap();
        assert_eq!(when, T0 + 7 * 86_400);
        assert_eq!(
            kms.get_secret_value(&caller, "a", None, None)
                .await
                .unwrap_err(),
            KmsError::ResourceInDeleteWindow
        );
        assert_eq!(
            kms.create_secret(&caller, input("a", "y"))
                .await
                .unwrap_err(),
            KmsError::ResourceInDeleteWindow
        );
        clock.advance(7 * 86_400 - 1);
        kms.sweep().await.unwrap();
        assert!(kms.describe_secret(&caller, "a", false).await.is_ok());
        clock.advance(1);
        // Lazily on access, before any sweep.
        assert_eq!(
            kms.describe_secret(&caller, "a", false).await.unwrap_err(),
            KmsError::ResourceNotFound
        );
        kms.create_secret(&caller, input("a", "y")).await.unwrap();
        // By the sweep.
        kms.create_secret(&caller, input("b", "x")).await.unwrap();
        kms.delete_secret(&caller, "b", false, None).await.unwrap();
        clock.advance(30 * 86_400);
        kms.sweep().await.unwrap();
        assert!(kms
            .store
            .get_secret(&caller.account_id, &caller.region, "b")
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn the_secret_limit() {
        let (kms, _, caller) = kms_with(ServiceConfig {
            max_secrets: 2,
            ..ServiceConfig::default()
        });
        kms.create_secret(&caller, input("a", "x")).await.unwrap();
        kms.create_secret(&caller, input("b", "x")).await.unwrap();
        assert_eq!(
            kms.create_secret(&caller, input("c", "x"))
                .await
                .unwrap_err()
                .code(),
            "Rejected.LimitExceeded"
        );
    }
}
