//! Secrets Manager records: a secret, its versions (value sealed, never in clear) and the
//! version stages.

/// The built-in stage every secret's newest value carries.
pub const ACS_CURRENT: &str = "ACSCurrent";
/// The built-in stage of the value ACSCurrent held before.
pub const ACS_PREVIOUS: &str = "ACSPrevious";

/// A secret's metadata (one row of `secrets`). Names are unique per account and region;
/// `secret_id` is internal (a force-deleted name can be reused at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub secret_id: String,
    pub account_id: String,
    pub region: String,
    pub secret_name: String,
    /// Always `Generic` on this server (the managed types are refused).
    pub secret_type: String,
    pub description: String,
    /// The symmetric key whose data keys seal the values.
    pub encryption_key_id: String,
    /// JSON text, as given.
    pub extended_config: Option<String>,
    pub creation_date: i64,
    pub update_date: i64,
    /// Set while the secret is in its recovery window (DeleteSecret): it is removed at this
    /// time unless RestoreSecret comes first.
    pub planned_delete_time: Option<i64>,
    pub automatic_rotation: bool,
    /// Seconds.
    pub rotation_interval: Option<i64>,
    pub last_rotation_date: Option<i64>,
    pub next_rotation_date: Option<i64>,
}

/// One version of a secret, with its value sealed: `sealed_data_key` is a ciphertext blob of
/// the secret's EncryptionKeyId (a fresh 256-bit data key), `sealed_value` the value under
/// that data key (AES-256-GCM, bound to the secret and version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersionRecord {
    pub secret_id: String,
    pub version_id: String,
    pub creation_date: i64,
    /// `text` or `binary`.
    pub data_type: String,
    pub sealed_data_key: Vec<u8>,
    pub sealed_value: Vec<u8>,
}

/// A version as lists and stage changes see it (no value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersionMeta {
    pub version_id: String,
    pub creation_date: i64,
    /// The stages on this version, sorted.
    pub stages: Vec<String>,
}
