//! The root key's files and the state machine of a root-key rotation (`kms admin
//! rotate-root-key`, driven by [`crate::rotation`]).
//!
//! # Where the rotation stands
//!
//! Four facts say it, two in the data dir and two in the database:
//!
//! - `K`: the check value ([`crate::keystore::Keystore::check_value`]) of the root key in
//!   force, `root.key` (or the file `KMS_ROOT_KEY_FILE` names);
//! - `N`: that of the next root key, `root.key.next` beside it, if that file exists;
//! - `D`: the database's `root_key_check`, the root key everything in it is sealed under
//!   once no rotation is under way;
//! - `R`: the database's `root_rotation`, the next key's check value while the rotation
//!   re-seals rows.
//!
//! | phase        | files        | database       | next step (each one durable)            |
//! |--------------|--------------|----------------|-----------------------------------------|
//! | `Idle`       | K            | D=K, no R      | write `root.key.next` (tmp, fsync, rename, fsync dir) |
//! | `Staged`     | K, N         | D=K, no R      | record R=N                              |
//! | `Resealing`  | K, N         | D=K, R=N       | re-seal rows in batched transactions; then D=N and R removed in one transaction |
//! | `Committed`  | K, N         | D=N, no R      | audit key handover line (fsync), then rename `root.key.next` over `root.key` (fsync dir) |
//!
//! After the rename the data dir is `Idle` again under the new key. A process killed at any
//! point leaves one of these phases; the next `kms admin rotate-root-key` finds it
//! ([`decide`]) and carries on. While re-sealing, a row is sealed under K or under N: the
//! AES-GCM tag tells which (a value authenticates under one key only), so the re-seal is
//! idempotent and needs no per-row marker. The server refuses to start in any phase but
//! `Idle` ([`refusal`]), naming the command that finishes the rotation.
//!
//! On PostgreSQL the other nodes' data dirs still hold K: running nodes notice R (or D≠K)
//! within a second and refuse requests (503) until restarted; each is restarted after its
//! new key is put at `root.key.next` and `kms admin rotate-root-key` has run there (it finds
//! the database `Committed` and only hands that node's audit trail over and retires K).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// The database's check value of the root key it is sealed under (`D`).
pub const CHECK_META: &str = "root_key_check";
/// The next root key's check value while a rotation re-seals rows (`R`).
pub const ROTATION_META: &str = "root_rotation";
/// The key of material commitments carried over from the first root key, sealed (base64).
pub const COMMITMENT_KEY_META: &str = "material_commitment_key";
/// The associated data the carried commitment key is sealed with.
pub const COMMITMENT_KEY_AAD: &str = "meta:material_commitment_key";

/// Where the root key in force lives: `KMS_ROOT_KEY_FILE`, else `<data dir>/root.key`.
pub fn root_key_path(dir: &Path) -> PathBuf {
    match std::env::var_os("KMS_ROOT_KEY_FILE") {
        Some(p) => PathBuf::from(p),
        None => dir.join("root.key"),
    }
}

/// Where the next root key lives during a rotation: the root key's path plus `.next`.
pub fn next_root_key_path(root: &Path) -> PathBuf {
    let mut p = root.as_os_str().to_owned();
    p.push(".next");
    PathBuf::from(p)
}

fn tmp_path(root: &Path) -> PathBuf {
    let mut p = next_root_key_path(root).into_os_string();
    p.push(".tmp");
    PathBuf::from(p)
}

fn fsync_dir_of(path: &Path) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync the directory {}: {e}", dir.display()))
}

/// The next root key (`root.key.next`), if a rotation has written one. An HSM-wrapped root
/// key would be unwrapped here, like [`super::data_dir`]'s `load_root_key`.
pub fn load_next_root_key(root: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
    let next = next_root_key_path(root);
    match std::fs::read(&next) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            super::data_dir::parse_root_key(&bytes).map(Some).ok_or_else(|| {
                format!(
                    "{} is not a root key (32 bytes raw, hex or base64): it must be the next root key of an unfinished rotation",
                    next.display()
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", next.display())),
    }
}

/// Writes `key` as the next root key, durably: a 0600 temporary file, fsync, rename to
/// `root.key.next`, fsync of the directory. A crash leaves either no `root.key.next` or a
/// complete one.
pub fn write_next_root_key(root: &Path, key: &[u8]) -> Result<(), String> {
    let tmp = tmp_path(root);
    let _ = std::fs::remove_file(&tmp);
    let failed = |e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        format!(
            "cannot write the next root key {}: {e}. Free some space there and run the command again",
            tmp.display()
        )
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(failed)?;
    f.write_all(key)
        .and_then(|_| f.sync_all())
        .map_err(failed)?;
    drop(f);
    std::fs::rename(&tmp, next_root_key_path(root)).map_err(failed)?;
    fsync_dir_of(root)
}

/// Retires the old root key: `root.key.next` replaces `root.key` in one rename (then the
/// directory is synced). Idempotent once done.
pub fn retire_root_key(root: &Path) -> Result<(), String> {
    let next = next_root_key_path(root);
    std::fs::rename(&next, root).map_err(|e| {
        format!(
            "cannot move {} over {}: {e}",
            next.display(),
            root.display()
        )
    })?;
    fsync_dir_of(root)
}

/// Removes a temporary next key a crash left behind (it was never renamed, so never used).
pub fn remove_stale_tmp(root: &Path) {
    let _ = std::fs::remove_file(tmp_path(root));
}

/// Where a rotation stands (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Staged,
    Resealing,
    Committed,
}

/// The four facts: the check values of the key in force (`K`), of the next key (`N`), the
/// database's (`D`, `None` for a database never opened) and the rotation it records (`R`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub current: String,
    pub next: Option<String>,
    pub database: Option<String>,
    pub rotation: Option<String>,
}

/// The phase the facts describe, or why they describe none (what to do, in words).
pub fn decide(f: &Facts, root: &Path) -> Result<Phase, String> {
    let next_path = next_root_key_path(root);
    let k = f.current.as_str();
    let d = f.database.as_deref().unwrap_or(k);
    match (&f.next, &f.rotation) {
        (None, None) if d == k => Ok(Phase::Idle),
        (None, Some(r)) => Err(format!(
            "the database records a root-key rotation to key {r} that this data dir has no key for: put that key (root.key.next of the node that started the rotation) at {} and run `kms admin rotate-root-key` again",
            next_path.display()
        )),
        (None, None) => Err(format!(
            "this database was created with a different root key (or rotated to one): it is sealed under root key {d}, not under this data dir's ({k}, {}). If another node rotated the root key, put the new key at {} and run `kms admin rotate-root-key` here; otherwise every node must use the same root key (KMS_ROOT_KEY_FILE or <data dir>/root.key)",
            root.display(),
            next_path.display()
        )),
        (Some(n), None) if d == k => Ok(Phase::Staged),
        (Some(n), None) if d == n => Ok(Phase::Committed),
        (Some(n), Some(r)) if r == n && d == k => Ok(Phase::Resealing),
        (Some(n), r) => Err(format!(
            "{} (key {n}) belongs to no rotation of this database (sealed under {d}{}; this data dir's key is {k}): remove the file only if it is a stray copy",
            next_path.display(),
            r.as_ref()
                .map(|r| format!(", rotating to {r}"))
                .unwrap_or_default()
        )),
    }
}

/// Why the server (or an admin command) must not open a data dir whose rotation is not
/// `Idle`, naming the command that finishes it; `None` when it may.
pub fn refusal(f: &Facts, root: &Path, dir: &Path) -> Option<String> {
    let finish = format!(
        "run `kms admin rotate-root-key --data-dir {}` (with the same --database-url) to finish it",
        dir.display()
    );
    match decide(f, root) {
        Ok(Phase::Idle) => None,
        Ok(phase) => Some(format!(
            "a root-key rotation of this data dir is unfinished ({phase:?}): {finish}"
        )),
        Err(why) => Some(format!("root key: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(next: Option<&str>, database: Option<&str>, rotation: Option<&str>) -> Facts {
        Facts {
            current: "K".into(),
            next: next.map(Into::into),
            database: database.map(Into::into),
            rotation: rotation.map(Into::into),
        }
    }

    #[test]
    fn the_phases_follow_from_the_facts() {
        let root = Path::new("/d/root.key");
        let ok = |f: Facts| decide(&f, root).unwrap();
        assert_eq!(ok(facts(None, Some("K"), None)), Phase::Idle);
        assert_eq!(ok(facts(None, None, None)), Phase::Idle);
        assert_eq!(ok(facts(Some("N"), Some("K"), None)), Phase::Staged);
        assert_eq!(ok(facts(Some("N"), Some("K"), Some("N"))), Phase::Resealing);
        assert_eq!(ok(facts(Some("N"), Some("N"), None)), Phase::Committed);
        // Another node's rotation, a foreign key, a stray next key.
        let err = |f: Facts| decide(&f, root).unwrap_err();
        assert!(err(facts(None, Some("K"), Some("N"))).contains("/d/root.key.next"));
        assert!(err(facts(None, Some("X"), None)).contains("sealed under root key X"));
        assert!(err(facts(Some("N"), Some("K"), Some("M"))).contains("belongs to no rotation"));
        assert!(err(facts(Some("N"), Some("X"), None)).contains("belongs to no rotation"));
    }

    #[test]
    fn the_server_refuses_every_phase_but_idle_and_names_the_command() {
        let (root, dir) = (Path::new("/d/root.key"), Path::new("/d"));
        assert_eq!(refusal(&facts(None, Some("K"), None), root, dir), None);
        for f in [
            facts(Some("N"), Some("K"), None),
            facts(Some("N"), Some("K"), Some("N")),
            facts(Some("N"), Some("N"), None),
        ] {
            let why = refusal(&f, root, dir).unwrap();
            assert!(
                why.contains("kms admin rotate-root-key --data-dir /d"),
                "{why}"
            );
        }
        assert!(refusal(&facts(None, Some("X"), None), root, dir)
            .unwrap()
            .contains("kms admin rotate-root-key"));
    }

    #[test]
    fn the_next_key_is_written_whole_0600_and_retired_by_rename() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("kms-root-key-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let root = dir.join("root.key");
        std::fs::write(&root, [1u8; 32]).unwrap();
        assert!(load_next_root_key(&root).unwrap().is_none());
        std::fs::write(tmp_path(&root), b"half").unwrap();
        write_next_root_key(&root, &[2u8; 32]).unwrap();
        assert!(!tmp_path(&root).exists());
        let next = next_root_key_path(&root);
        assert_eq!(
            std::fs::metadata(&next).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            load_next_root_key(&root).unwrap().unwrap().as_slice(),
            &[2u8; 32]
        );
        retire_root_key(&root).unwrap();
        assert_eq!(std::fs::read(&root).unwrap(), vec![2u8; 32]);
        assert!(!next.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
