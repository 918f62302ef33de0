//! What `kms import-material` remembers of the material it imported: per key id, a salted
//! HMAC-SHA256 of the material (never the material), in `material-fingerprints.toml` next
//! to the CLI's config file (`~/.kms/`, mode 0600). It lets a refused re-import say
//! "different material than the first import" — something the server deliberately never
//! says, since its import must not be an oracle; this file holds only what the user's own
//! machine already knew.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

const LABEL: &[u8] = b"kms-cli material fingerprint v1";
const FILE: &str = "material-fingerprints.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Entry {
    /// 16 random bytes, base64.
    salt: String,
    /// HMAC-SHA256(salt, label || material), base64.
    fingerprint: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FileContents {
    #[serde(default)]
    keys: BTreeMap<String, Entry>,
}

/// How material compares with what was imported into a key from this machine before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No record of this key (never imported from here, or the file was removed).
    Unknown,
    Same,
    Different,
}

/// The fingerprint file: next to the CLI config (`KMS_CLI_CONFIG` moves both).
pub fn path() -> PathBuf {
    let config = super::config_path();
    match config.parent() {
        Some(dir) => dir.join(FILE),
        None => PathBuf::from(FILE),
    }
}

fn load(path: &Path) -> FileContents {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| toml::from_str(&t).ok())
        .unwrap_or_default()
}

fn tag(salt: &[u8], material: &[u8]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, salt);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(LABEL);
    ctx.update(material);
    ctx.sign()
}

/// Compares `material` with the record for `key_id`, in constant time.
pub fn compare(key_id: &str, material: &[u8]) -> Verdict {
    compare_in(&path(), key_id, material)
}

fn compare_in(path: &Path, key_id: &str, material: &[u8]) -> Verdict {
    let file = load(path);
    let Some(entry) = file.keys.get(key_id) else {
        return Verdict::Unknown;
    };
    let (Ok(salt), Ok(expected)) = (
        STANDARD.decode(&entry.salt),
        STANDARD.decode(&entry.fingerprint),
    ) else {
        return Verdict::Unknown;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salt);
    let mut msg = Vec::with_capacity(LABEL.len() + material.len());
    msg.extend_from_slice(LABEL);
    msg.extend_from_slice(material);
    let same = hmac::verify(&key, &msg, &expected).is_ok();
    zeroize::Zeroize::zeroize(&mut msg);
    if same {
        Verdict::Same
    } else {
        Verdict::Different
    }
}

/// Whether material was imported into `key_id` from here before.
pub fn has_record(key_id: &str) -> bool {
    load(&path()).keys.contains_key(key_id)
}

/// Records `material` as what `key_id` holds (after a successful import). Best effort: a
/// file that cannot be written only loses the hint.
pub fn record(key_id: &str, material: &[u8]) -> Result<(), String> {
    record_in(&path(), key_id, material)
}

fn record_in(path: &Path, key_id: &str, material: &[u8]) -> Result<(), String> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| "rng failed".to_string())?;
    let mut file = load(path);
    file.keys.insert(
        key_id.to_string(),
        Entry {
            salt: STANDARD.encode(salt),
            fingerprint: STANDARD.encode(tag(&salt, material).as_ref()),
        },
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let text = toml::to_string(&file).map_err(|e| e.to_string())?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_different_unknown_and_no_material_on_disk() {
        let dir = std::env::temp_dir().join(format!("kms-fp-{}", uuid::Uuid::new_v4().simple()));
        let path = dir.join(FILE);
        let material = [7u8; 32];
        assert_eq!(compare_in(&path, "k1", &material), Verdict::Unknown);
        record_in(&path, "k1", &material).unwrap();
        assert_eq!(compare_in(&path, "k1", &material), Verdict::Same);
        assert_eq!(compare_in(&path, "k1", &[8u8; 32]), Verdict::Different);
        assert_eq!(compare_in(&path, "k2", &material), Verdict::Unknown);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&STANDARD.encode(material)), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A second record of the same material uses a new salt: equal material is not
        // visible across keys.
        record_in(&path, "k2", &material).unwrap();
        let file = load(&path);
        assert_ne!(file.keys["k1"].fingerprint, file.keys["k2"].fingerprint);
        assert_eq!(compare_in(&path, "k2", &material), Verdict::Same);
        let _ = std::fs::remove_dir_all(dir);
    }
}
