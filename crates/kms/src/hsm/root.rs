//! The root key held by an HSM.
//!
//! Design: the 32-byte root secret stays the secret that every per-purpose key is derived
//! from (see [`crate::keystore`]), but on disk it exists only as `<data dir>/root.key.hsm`,
//! AES-256-GCM-encrypted by a non-extractable AES-256 key generated in the token
//! (`kms-root:<random>`). It is **unsealed through the token once, at start-up** (and by
//! each admin command), and then lives only in process memory (zeroizing buffers), as a
//! file root does. Unsealing per use was rejected: every request (signature check of the
//! access key, every seal and open) goes through keys derived from the root, so per-use
//! unsealing would put one or more HSM round trips on every request and make a slow HSM
//! slow down even software keys, while protecting only against an attacker who can already
//! read the server's memory (who would then see the derived keys anyway). What the HSM
//! root does give: a copy of the data dir, its database and backups cannot be opened
//! without the token (and its PIN); losing the token loses the data dir, and the server
//! says so at start-up.
//!
//! Migration keeps the same root secret (only its wrapping changes), so every existing
//! sealed value and ciphertext stays valid and the database's root-key check still matches.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use zeroize::Zeroizing;

use super::{ops, Hsm};

use crate::keystore::ROOT_KEY_LEN;

/// The sealed root key's file in the data dir.
pub const SEALED_ROOT_FILE: &str = "root.key.hsm";
const FORMAT: &str = "kms-hsm-root-v1";

/// `kms admin hsm-root …`
#[derive(Debug, clap::Subcommand)]
pub enum HsmRootCommand {
    /// Move the data dir's root key into the HSM's keeping: a new non-extractable AES-256
    /// key is generated in the token, the root key is sealed under it into
    /// <data dir>/root.key.hsm and <data dir>/root.key is overwritten and removed. Stop the
    /// server first; set KMS_HSM_MODULE, KMS_HSM_TOKEN_LABEL and KMS_HSM_PIN_FILE.
    ToHsm {
        #[arg(long, env = "KMS_DATA_DIR", default_value = "./kms-data")]
        data_dir: PathBuf,
    },
    /// Disaster recovery: write the root key back to <data dir>/root.key (unsealed through
    /// the token) and remove root.key.hsm. The root key then exists outside the HSM.
    FromHsm {
        #[arg(long, env = "KMS_DATA_DIR", default_value = "./kms-data")]
        data_dir: PathBuf,
        /// Required: confirms that the root key will be written to disk in clear.
        #[arg(long = "i-understand-the-root-key-leaves-the-hsm")]
        confirm: bool,
    },
    /// Say whether the data dir's root key is held by the HSM (and check it unseals).
    Status {
        #[arg(long, env = "KMS_DATA_DIR", default_value = "./kms-data")]
        data_dir: PathBuf,
    },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SealedRoot {
    format: String,
    token_label: String,
    key_label: String,
    nonce: String,
    sealed: String,
}

fn aad(key_label: &str) -> Vec<u8> {
    format!("{FORMAT}:{key_label}").into_bytes()
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The hook into root-key loading (`server::data_dir::load_root_key`): `None` when the data
/// dir's root key is not held by an HSM; the unsealed root when it is; an error saying what
/// is missing when it is and the HSM cannot unseal it.
pub fn unseal_if_present(dir: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
    let path = dir.join(SEALED_ROOT_FILE);
    if !path.exists() {
        return Ok(None);
    }
    if std::env::var_os("KMS_ROOT_KEY_FILE").is_some() {
        return Err(format!("this data dir's root key is held by an HSM ({}), but KMS_ROOT_KEY_FILE names a root key file too: unset KMS_ROOT_KEY_FILE", path.display()));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let sealed: SealedRoot = serde_json::from_str(&text)
        .ok()
        .filter(|s: &SealedRoot| s.format == FORMAT)
        .ok_or_else(|| format!("{} is not a sealed root key ({FORMAT})", path.display()))?;
    let hsm = super::installed_or_from_env()
        .map_err(|e| format!("this data dir's root key is held by the HSM token {:?} ({}), and the HSM cannot be used: {e}", sealed.token_label, path.display()))?
        .ok_or_else(|| format!("this data dir's root key is held by the HSM token {:?} ({}): start with --hsm-module, --hsm-token-label and --hsm-pin-file (KMS_HSM_MODULE, KMS_HSM_TOKEN_LABEL, KMS_HSM_PIN_FILE)", sealed.token_label, path.display()))?;
    unseal(&hsm, &sealed, &path).map(Some)
}

fn unseal(
    hsm: &std::sync::Arc<Hsm>,
    sealed: &SealedRoot,
    path: &Path,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let nonce: [u8; 12] = b64()
        .decode(&sealed.nonce)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| format!("{} is damaged (nonce)", path.display()))?;
    let body = b64()
        .decode(&sealed.sealed)
        .map_err(|_| format!("{} is damaged (sealed)", path.display()))?;
    let opened = ops::open_blocking(hsm, &sealed.key_label, nonce, &aad(&sealed.key_label), &body)
        .map_err(|e| {
            if e.refused_with(cryptoki::error::RvError::KeyHandleInvalid) {
                format!("the HSM key {:?} that seals this data dir's root key is not in the token {:?}: the data dir cannot be opened without it (connect the token it was sealed with, or restore it from the HSM's backup)", sealed.key_label, hsm.settings().token_label)
            } else {
                format!("cannot unseal the root key through the HSM: {e}")
            }
        })?
        .ok_or_else(|| format!("{} does not unseal under the HSM key {:?}: the file is damaged or belongs to another token", path.display(), sealed.key_label))?;
    if opened.len() != ROOT_KEY_LEN {
        return Err(format!(
            "{} does not hold a 32-byte root key",
            path.display()
        ));
    }
    tracing::info!(token = %hsm.settings().token_label, key = %sealed.key_label, "root key unsealed through the HSM");
    Ok(opened)
}

/// Writes `bytes` to `path` (new file, 0600, fsynced), then syncs the directory.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Overwrites a file with zeros, syncs and removes it (a best effort: a journaling or
/// copy-on-write filesystem, or an SSD, may keep old blocks).
fn wipe(path: &Path) -> Result<(), String> {
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path) {
        let _ = f.write_all(&vec![0u8; len as usize]);
        let _ = f.sync_all();
    }
    std::fs::remove_file(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

fn need_hsm() -> Result<std::sync::Arc<Hsm>, String> {
    super::installed_or_from_env()?.ok_or_else(|| {
        "set KMS_HSM_MODULE, KMS_HSM_TOKEN_LABEL and KMS_HSM_PIN_FILE to the HSM to use".into()
    })
}

/// `kms admin hsm-root to-hsm`: seals the file root key under a new token key.
/// `load_file_root` reads the current (file) root key: the data dir's loader, passed in by
/// `kms admin` so that this module does not depend on the server's.
pub fn to_hsm(
    dir: &Path,
    load_file_root: impl FnOnce(&Path) -> Result<Zeroizing<Vec<u8>>, String>,
) -> Result<String, String> {
    let sealed_path = dir.join(SEALED_ROOT_FILE);
    if sealed_path.exists() {
        return Err(format!(
            "the root key of {} is already held by an HSM ({})",
            dir.display(),
            sealed_path.display()
        ));
    }
    let file = dir.join("root.key");
    let from_env = std::env::var_os("KMS_ROOT_KEY_FILE").is_some();
    if !from_env && !file.exists() {
        return Err(format!(
            "{} has no root key file (root.key) to move into the HSM",
            dir.display()
        ));
    }
    let root = load_file_root(dir)?;
    let hsm = need_hsm()?;
    let key_label = ops::generate_root_key_blocking(&hsm).map_err(|e| e.to_string())?;
    let sealed = seal_root(&hsm, &key_label, &root)?;
    put_in_place(dir, &hsm, &sealed, &root)?;
    let mut note = format!(
        "the root key of {} is now sealed by the HSM key {key_label:?} in token {:?} ({})",
        dir.display(),
        hsm.settings().token_label,
        sealed_path.display()
    );
    if from_env {
        note.push_str("; KMS_ROOT_KEY_FILE named the old root key file: unset it and destroy that file yourself");
    } else {
        wipe(&file)?;
        note.push_str("; root.key was overwritten and removed");
    }
    Ok(note)
}

/// For a root-key rotation (`kms admin rotate-root-key`): when the data dir's root key is
/// held by an HSM, seals `new_root` under the same token key and puts it in place of
/// `root.key.hsm` (written beside, checked by unsealing, then renamed); `Ok(false)` when the
/// root key is a file (the caller writes the file itself).
pub fn reseal_if_present(dir: &Path, new_root: &[u8]) -> Result<bool, String> {
    let path = dir.join(SEALED_ROOT_FILE);
    if !path.exists() {
        return Ok(false);
    }
    if new_root.len() != ROOT_KEY_LEN {
        return Err("a root key is 32 bytes".into());
    }
    let old: SealedRoot = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    )
    .map_err(|_| format!("{} is not a sealed root key ({FORMAT})", path.display()))?;
    let hsm = need_hsm()?;
    let sealed = seal_root(&hsm, &old.key_label, new_root)?;
    put_in_place(dir, &hsm, &sealed, new_root)?;
    Ok(true)
}

fn seal_root(
    hsm: &std::sync::Arc<Hsm>,
    key_label: &str,
    root: &[u8],
) -> Result<SealedRoot, String> {
    let mut nonce = [0u8; 12];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "random number generator failed")?;
    let body = ops::seal_blocking(hsm, key_label, nonce, &aad(key_label), root)
        .map_err(|e| e.to_string())?;
    Ok(SealedRoot {
        format: FORMAT.into(),
        token_label: hsm.settings().token_label.clone(),
        key_label: key_label.to_string(),
        nonce: b64().encode(nonce),
        sealed: b64().encode(body),
    })
}

/// Writes `sealed` beside as a temporary file, checks it unseals to `root`, then renames it
/// over `root.key.hsm`: a crash leaves the old file or the new one, never neither.
fn put_in_place(
    dir: &Path,
    hsm: &std::sync::Arc<Hsm>,
    sealed: &SealedRoot,
    root: &[u8],
) -> Result<(), String> {
    let text = serde_json::to_string_pretty(sealed).map_err(|e| e.to_string())?;
    let tmp = dir.join(format!("{SEALED_ROOT_FILE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, text.as_bytes())?;
    let check = unseal(hsm, sealed, &tmp)?;
    if check.as_slice() != root {
        let _ = std::fs::remove_file(&tmp);
        return Err("the HSM did not give back the root key it sealed; nothing changed".into());
    }
    let path = dir.join(SEALED_ROOT_FILE);
    std::fs::rename(&tmp, &path)
        .map_err(|e| format!("cannot move {} into place: {e}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `kms admin hsm-root from-hsm --i-understand-the-root-key-leaves-the-hsm`.
pub fn from_hsm(dir: &Path, confirm: bool) -> Result<String, String> {
    if !confirm {
        return Err("this writes the root key to disk outside the HSM; add --i-understand-the-root-key-leaves-the-hsm to go ahead".into());
    }
    let sealed_path = dir.join(SEALED_ROOT_FILE);
    let root = unseal_if_present(dir)?
        .ok_or_else(|| format!("the root key of {} is not held by an HSM", dir.display()))?;
    let file = dir.join("root.key");
    if file.exists() {
        return Err(format!(
            "{} exists already; move it away first",
            file.display()
        ));
    }
    write_new(&file, &root)?;
    std::fs::remove_file(&sealed_path)
        .map_err(|e| format!("cannot remove {}: {e}", sealed_path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(format!(
        "the root key of {} is in {} again (mode 0600) and {} was removed; the sealing key stays in the token (destroy it with the HSM's tools once you no longer need it)",
        dir.display(),
        file.display(),
        sealed_path.display()
    ))
}

/// `kms admin hsm-root status`.
pub fn status(dir: &Path) -> Result<String, String> {
    match unseal_if_present(dir)? {
        Some(_) => Ok(format!(
            "the root key of {} is held by the HSM and unseals",
            dir.display()
        )),
        None => Ok(format!(
            "the root key of {} is a file (not held by an HSM)",
            dir.display()
        )),
    }
}
