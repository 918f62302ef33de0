//! A customer master key: its row, its versions, where it lives, its tags, and the one rule
//! about time that every reader applies (imported material past its expiry is gone).

use super::spec::{KeySpec, KeyUsage, Origin, ProtectionLevel};
use super::state::KeyState;

/// One customer master key (without its versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub key_id: String,
    pub account_id: String,
    pub region: String,
    pub description: String,
    pub key_spec: KeySpec,
    pub key_usage: KeyUsage,
    pub origin: Origin,
    pub protection_level: ProtectionLevel,
    pub state: KeyState,
    pub creation_date: i64,
    pub creator: String,
    pub primary_version: String,
    /// When a PendingDeletion key is deleted for good.
    pub delete_date: Option<i64>,
    /// EXTERNAL keys: whether material is currently imported.
    pub material_present: bool,
    /// EXTERNAL keys: when the imported material expires (None = never / no material).
    pub material_expire: Option<i64>,
    /// EXTERNAL keys: keyed commitment to the first imported material (never the material).
    pub material_commitment: Option<Vec<u8>>,
    pub deletion_protection: bool,
    pub deletion_protection_description: String,
    pub automatic_rotation: bool,
    /// Rotation interval in seconds.
    pub rotation_interval: Option<i64>,
    pub last_rotation_date: Option<i64>,
    /// How many versions the key has (for the per-key limit).
    pub version_count: i64,
}

impl KeyRecord {
    /// Whether the key holds imported material whose expiry is at or before `now`.
    ///
    /// This is *the* rule "expired material reads as PendingImport": the service removes
    /// such material when it loads the key, the store applies [`KeyRecord::as_of`] to the
    /// rows ListKeys returns, and ListKeys' state filter evaluates the same condition in SQL
    /// (`store::sql::shown_state`, checked against this function by the store tests).
    pub fn material_expired(&self, now: i64) -> bool {
        self.material_present && self.material_expire.is_some_and(|e| e <= now)
    }

    /// Removes the imported material (DeleteKeyMaterial, expiry): the key becomes
    /// PendingImport, unless it is PendingDeletion, which keeps its state and DeleteDate.
    pub fn remove_material(&mut self) {
        self.material_present = false;
        self.material_expire = None;
        if self.state != KeyState::PendingDeletion {
            self.state = KeyState::PendingImport;
        }
    }

    /// The key as it reads at `now`, whether or not the sweeper has removed expired
    /// material yet. Returns whether anything changed.
    pub fn as_of(&mut self, now: i64) -> bool {
        let expired = self.material_expired(now);
        if expired {
            self.remove_material();
        }
        expired
    }
}

/// One key version. `sealed_material` is the version's 256-bit material sealed under the
/// root key (`None` for an EXTERNAL key without material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersionRecord {
    pub key_id: String,
    pub version_id: String,
    pub creation_date: i64,
    pub sealed_material: Option<Vec<u8>>,
}

/// Identifies a key within the account and region that own it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyLocator {
    pub account_id: String,
    pub region: String,
    pub key_id: String,
}

/// A resource tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn external(state: KeyState, present: bool, expire: Option<i64>) -> KeyRecord {
        KeyRecord {
            key_id: "k".into(),
            account_id: "a".into(),
            region: "r".into(),
            description: String::new(),
            key_spec: KeySpec::Aes256,
            key_usage: KeyUsage::EncryptDecrypt,
            origin: Origin::External,
            protection_level: ProtectionLevel::Software,
            state,
            creation_date: 0,
            creator: "a".into(),
            primary_version: "v".into(),
            delete_date: None,
            material_present: present,
            material_expire: expire,
            material_commitment: None,
            deletion_protection: false,
            deletion_protection_description: String::new(),
            automatic_rotation: false,
            rotation_interval: None,
            last_rotation_date: None,
            version_count: 1,
        }
    }

    #[test]
    fn expired_material_reads_as_pending_import() {
        // Expiry is inclusive: at the expiry second the material is gone.
        let mut k = external(KeyState::Enabled, true, Some(100));
        assert!(!k.material_expired(99));
        assert!(!k.clone().as_of(99));
        assert!(k.material_expired(100));
        assert!(k.as_of(100));
        assert_eq!(k.state, KeyState::PendingImport);
        assert!(!k.material_present);
        assert_eq!(k.material_expire, None);
        // A PendingDeletion key keeps its state.
        let mut k = external(KeyState::PendingDeletion, true, Some(100));
        assert!(k.as_of(200));
        assert_eq!(k.state, KeyState::PendingDeletion);
        // No expiry, or no material: nothing to expire.
        assert!(!external(KeyState::Enabled, true, None).material_expired(i64::MAX));
        assert!(!external(KeyState::PendingImport, false, Some(1)).material_expired(2));
    }
}
