//! `kms admin rotate-root-key`: every sealed value re-sealed under a new root key, crash-safe
//! and resumable. The phases and where each is recorded: [`crate::server::root_key`].
//!
//! What a new root key changes, and how each is carried over:
//!
//! - **Sealed values** ([`SEALED`]: key material of every version, wrapping keys' private
//!   keys, access-key secrets, and whatever later tables add): opened under the old key and
//!   sealed under the new one, page by page in primary-key order, each page replaced in one
//!   transaction (compare-and-swap: a row changed meanwhile is left for the next pass).
//!   Passes repeat until one finds every value already under the new key.
//! - **Material commitments** (HMAC under a root-derived key; the material may be gone, so
//!   they cannot be recomputed): the commitment key in force is carried over, sealed under
//!   the new root key in the metadata entry `material_commitment_key`; every node loads it
//!   from there ([`crate::server::data_dir::with_carried_commitment_key`]).
//! - **The audit chain**: a chained `AuditKeyHandover` line under the old audit key names the
//!   new one and carries the old key sealed for the new ([`crate::audit::hand_over`]); lines
//!   after it are chained under the new key; `kms admin audit verify` walks back through it.
//! - **Import tokens** issued before the rotation are refused afterwards (their key is
//!   root-derived): `ImportKeyMaterial` answers 400 `InvalidImportToken`; ask for a new one
//!   with `GetParametersForImport`. Their wrapping keys stay re-sealed until they expire.
//! - **Web console**: sign-in forms and sessions are bound to a root-derived key: sessions
//!   end, users sign in again (console users' password hashes are not sealed and stay).
//!
//! Ciphertext blobs need nothing: they are sealed under key material, which is unchanged.
//!
//! # Adding a table of sealed values
//!
//! A table whose column holds values made by `Keystore::seal` adds one entry to [`SEALED`]:
//! the table, the text columns that identify a row (its primary key, or a unique set) and
//! that the associated data is built from, the column (a blob, NULL for none), and the
//! function that rebuilds the associated data from those columns, the same one the service
//! seals with. Nothing else: the rotation, its passes and its tests pick it up from the list.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::progress::Progress;

use crate::keystore::Keystore;
use crate::server::data_dir::{load_root_key, open_database};
use crate::server::root_key::{self, decide, root_key_path, Facts, Phase};
use crate::store::{SealedColumn, SealedValue, Store};

/// A column of sealed values and how its associated data is built.
pub struct Sealed {
    pub column: SealedColumn,
    /// The associated data of the value in the row identified by `column.key` (in order).
    pub aad: fn(&[String]) -> String,
}

fn part(k: &[String], i: usize) -> &str {
    k.get(i).map_or("", String::as_str)
}

fn material_aad(k: &[String]) -> String {
    crate::service::material_aad(part(k, 0), part(k, 1))
}
fn access_key_aad(k: &[String]) -> String {
    crate::service::access_key_aad(part(k, 0))
}
fn wrapping_key_aad(k: &[String]) -> String {
    crate::service::import::wrapping_key_aad(part(k, 0), part(k, 1))
}

/// Every column of sealed values. A new table of sealed values adds its entry here (see the
/// module documentation).
pub const SEALED: &[Sealed] = &[
    Sealed {
        column: SealedColumn {
            table: "key_versions",
            key: &["key_id", "version_id"],
            column: "sealed_material",
        },
        aad: material_aad,
    },
    Sealed {
        column: SealedColumn {
            table: "wrapping_keys",
            key: &["wrapping_key_id", "key_id"],
            column: "sealed_private_key",
        },
        aad: wrapping_key_aad,
    },
    Sealed {
        column: SealedColumn {
            table: "access_keys",
            key: &["access_key_id"],
            column: "sealed_secret",
        },
        aad: access_key_aad,
    },
    // STS sessions' secrets (service::sts), sealed like access-key secrets. Secret values
    // (service::secrets) need no entry: they are sealed under data keys whose blobs are
    // encrypted by key material, which key_versions above covers.
    Sealed {
        column: SealedColumn {
            table: "sts_sessions",
            key: &["access_key_id"],
            column: "sealed_secret",
        },
        aad: access_key_aad,
    },
];

/// What `kms admin rotate-root-key` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    /// The audit directory, if not `<data dir>/audit`.
    pub audit_dir: Option<PathBuf>,
    /// Values re-sealed per transaction.
    pub batch: usize,
    /// How long running nodes are given to notice the rotation and stop serving before rows
    /// change (they check every second).
    pub grace: Duration,
}

/// Test hook: `KMS_TEST_ROTATION_KILL_AT=<point>` SIGKILLs this process at `staged`,
/// `recorded`, `rows:<n>` (once at least n values were re-sealed by this run), `committed`
/// or `handover`, so the end-to-end tests can check every phase is resumed.
fn kill_point(point: &str, rows: u64) {
    let Ok(at) = std::env::var("KMS_TEST_ROTATION_KILL_AT") else {
        return;
    };
    let hit = match at.strip_prefix("rows:") {
        Some(n) => point == "rows" && n.parse::<u64>().is_ok_and(|n| rows >= n),
        None => at == point,
    };
    if hit {
        // SAFETY: sends a signal to this very process; no memory is involved.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Runs (or resumes) the rotation of the data dir's root key to the end. On failure the
/// data dir is left in a phase the next run resumes from, and the error says so.
pub async fn rotate(opts: Options) -> Result<(), String> {
    let root_path = root_key_path(&opts.data_dir);
    rotate_to_end(&opts).await.map_err(|e| {
        if root_key::next_root_key_path(&root_path).exists() {
            format!(
                "{e}\nThe rotation stopped at a safe point: fix the cause (e.g. free some space) and run `kms admin rotate-root-key --data-dir {}` again to finish it; until then the server refuses to start.",
                opts.data_dir.display()
            )
        } else {
            e
        }
    })
}

async fn rotate_to_end(opts: &Options) -> Result<(), String> {
    let started = Instant::now();
    // An HSM-held root (issue 20) is not rotated here: the next key would lie on disk
    // unsealed while the rotation runs, and `root.key.hsm` would keep unsealing the old key.
    let hsm_root = opts.data_dir.join(crate::hsm::root::SEALED_ROOT_FILE);
    if hsm_root.exists() {
        return Err(format!(
            "the root key of {} is held by an HSM ({}): rotate-root-key does not rotate an HSM-held root yet. Take it out of the HSM with `kms admin hsm-root from-hsm --i-understand-the-root-key-leaves-the-hsm`, rotate, then put the new key back with `kms admin hsm-root to-hsm`.",
            opts.data_dir.display(),
            hsm_root.display()
        ));
    }
    let root_path = root_key_path(&opts.data_dir);
    if !root_path.exists() {
        return Err(format!(
            "no root key at {}: rotate the root key of an existing data dir (--data-dir, or KMS_ROOT_KEY_FILE)",
            root_path.display()
        ));
    }
    let audit_dir = opts
        .audit_dir
        .clone()
        .unwrap_or_else(|| opts.data_dir.join("audit"));
    crate::private_fs::create_dir(&audit_dir).map_err(|e| {
        format!(
            "cannot use {} as the audit directory: {e}",
            audit_dir.display()
        )
    })?;
    // Held to the end: no server of this data dir runs meanwhile (it could not open what is
    // re-sealed, and its audit lines would interleave with the handover).
    let _lock = crate::audit::try_lock_writer(&audit_dir)?.ok_or_else(|| {
        format!(
            "a server is running on this data dir (it holds {}): stop it first, then run the command again",
            audit_dir.join(crate::audit::WRITER_LOCK).display()
        )
    })?;
    root_key::remove_stale_tmp(&root_path);
    let old = Keystore::from_root(&load_root_key(&opts.data_dir)?).map_err(|e| e.to_string())?;
    let (store, _, _) = open_database(&opts.data_dir, opts.database_url.as_deref(), 4).await?;
    let meta = |name: &'static str| {
        let store = store.clone();
        async move {
            store
                .get_meta(name)
                .await
                .map_err(|e| format!("database: {e}"))
        }
    };
    let mut next = root_key::load_next_root_key(&root_path)?;
    let facts = Facts {
        current: old.check_value(),
        next: next
            .as_ref()
            .map(|n| Keystore::from_root(n).map(|k| k.check_value()))
            .transpose()
            .map_err(|e| e.to_string())?,
        database: meta(root_key::CHECK_META).await?,
        rotation: meta(root_key::ROTATION_META).await?,
    };
    let mut phase = decide(&facts, &root_path)?;
    eprintln!(
        "Root key {} of {}: {}.",
        facts.current,
        opts.data_dir.display(),
        match phase {
            Phase::Idle => "starting a rotation",
            Phase::Staged | Phase::Resealing => "resuming the rotation",
            Phase::Committed => "the database is rotated; finishing this data dir",
        }
    );
    if phase == Phase::Idle {
        let mut key = zeroize::Zeroizing::new(vec![0u8; crate::keystore::ROOT_KEY_LEN]);
        aws_lc_rs::rand::fill(&mut key).map_err(|_| "random number generator failed")?;
        root_key::write_next_root_key(&root_path, &key)?;
        next = Some(key);
        phase = Phase::Staged;
        kill_point("staged", 0);
    }
    let next = next.ok_or("the next root key is missing")?;
    let new = Keystore::from_root(&next).map_err(|e| e.to_string())?;
    let new_check = new.check_value();
    eprintln!(
        "New root key {new_check} in {}.",
        root_key::next_root_key_path(&root_path).display()
    );
    if phase == Phase::Staged {
        store
            .change_meta(
                vec![(root_key::ROTATION_META.into(), new_check.clone())],
                Vec::new(),
            )
            .await
            .map_err(|e| format!("database: {e}"))?;
        phase = Phase::Resealing;
        kill_point("recorded", 0);
    }
    if phase == Phase::Resealing {
        if !opts.grace.is_zero() {
            eprintln!(
                "Waiting {:.1} s for running nodes to stop serving (they refuse requests until restarted with the new key).",
                opts.grace.as_secs_f64()
            );
            tokio::time::sleep(opts.grace).await;
        }
        carry_commitment_key(store.as_ref(), &old, &new).await?;
        reseal_all(store.clone(), &old, &new, opts.batch).await?;
        store
            .change_meta(
                vec![(root_key::CHECK_META.into(), new_check.clone())],
                vec![root_key::ROTATION_META.into()],
            )
            .await
            .map_err(|e| format!("database: {e}"))?;
        eprintln!("The database is sealed under the new root key {new_check}.");
        kill_point("committed", 0);
    }
    match crate::audit::hand_over(&audit_dir, &old, &new)? {
        crate::audit::Handover::Written => eprintln!(
            "The audit trail in {} hands its chain over to the new key.",
            audit_dir.display()
        ),
        crate::audit::Handover::AlreadyDone => {}
    }
    kill_point("handover", 0);
    root_key::retire_root_key(&root_path)?;
    println!(
        "Rotated the root key in {:.1} s: {} now holds root key {new_check}; the old key {} is retired. Back the new key up now (it is not in database backups).",
        started.elapsed().as_secs_f64(),
        root_path.display(),
        facts.current,
    );
    Ok(())
}

/// Seals the commitment key in force (carried over before, else the old root's own) under
/// the new root key, unless a resumed run already did.
async fn carry_commitment_key(
    store: &dyn Store,
    old: &Keystore,
    new: &Keystore,
) -> Result<(), String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let aad = root_key::COMMITMENT_KEY_AAD.as_bytes();
    let carried = store
        .get_meta(root_key::COMMITMENT_KEY_META)
        .await
        .map_err(|e| format!("database: {e}"))?
        .and_then(|v| b64.decode(v.trim()).ok());
    let raw = match carried {
        Some(sealed) => {
            if new.open(aad, &sealed).is_ok() {
                return Ok(());
            }
            old.open(aad, &sealed).map_err(|_| {
                format!(
                    "the database's {} opens under neither root key",
                    root_key::COMMITMENT_KEY_META
                )
            })?
        }
        None => zeroize::Zeroizing::new(old.commitment_key_bytes().to_vec()),
    };
    let sealed = new.seal(aad, &raw).map_err(|e| e.to_string())?;
    store
        .change_meta(
            vec![(root_key::COMMITMENT_KEY_META.into(), b64.encode(sealed))],
            Vec::new(),
        )
        .await
        .map_err(|e| format!("database: {e}"))
}

/// Passes over every sealed column until one finds nothing left to re-seal (a row written
/// by a node that had not stopped yet is caught by the next pass).
pub async fn reseal_all(
    store: Arc<dyn Store>,
    old: &Keystore,
    new: &Keystore,
    batch: usize,
) -> Result<u64, String> {
    let mut total = 0;
    for pass in 1..=10 {
        let mut resealed = 0;
        for s in SEALED {
            // A bar on a terminal, plain lines otherwise (crate::progress).
            let progress = Progress::new(
                &format!("pass {pass}: {}.{} values", s.column.table, s.column.column),
                0,
            );
            let (done, seen) = reseal_column(
                store.as_ref(),
                s,
                old,
                new,
                batch,
                total + resealed,
                &progress,
            )
            .await?;
            progress.finish();
            resealed += done;
            eprintln!(
                "  pass {pass}: {}.{}: {seen} values, {done} re-sealed",
                s.column.table, s.column.column
            );
        }
        total += resealed;
        if resealed == 0 {
            return Ok(total);
        }
    }
    Err("values kept appearing under the old root key after 10 passes: stop every node using this database, then run the command again".into())
}

async fn reseal_column(
    store: &dyn Store,
    s: &Sealed,
    old: &Keystore,
    new: &Keystore,
    batch: usize,
    before: u64,
    progress: &Progress,
) -> Result<(u64, u64), String> {
    let col = s.column;
    let (mut after, mut done, mut seen) = (None, 0u64, 0u64);
    loop {
        let page = store
            .sealed_page(col, after.clone(), batch.max(1) as i64)
            .await
            .map_err(|e| format!("database: {e}"))?;
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        let page_len = page.len() as u64;
        seen += page_len;
        let mut changes: Vec<(SealedValue, Vec<u8>)> = Vec::new();
        for v in page {
            let aad = (s.aad)(&v.key);
            if new.open(aad.as_bytes(), &v.sealed).is_ok() {
                continue;
            }
            let plain = old.open(aad.as_bytes(), &v.sealed).map_err(|_| {
                format!(
                    "{}.{} of row {:?} opens under neither the old nor the new root key: the database is damaged (or was sealed under yet another key)",
                    col.table, col.column, v.key
                )
            })?;
            let sealed = new
                .seal(aad.as_bytes(), &plain)
                .map_err(|e| e.to_string())?;
            changes.push((v, sealed));
        }
        if !changes.is_empty() {
            done += store
                .reseal(col, changes)
                .await
                .map_err(|e| format!("database: {e}"))?;
            kill_point("rows", before + done);
        }
        progress.inc(page_len);
    }
    Ok((done, seen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::keystore::wrapping::Pool;
    use crate::server::DataDir;
    use crate::service::{Kms, ServiceConfig};

    const ACCOUNT: &str = "1234567890123456";

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("kms-rotation-{}", uuid::Uuid::new_v4().simple()))
    }

    fn options(dir: &std::path::Path) -> Options {
        Options {
            data_dir: dir.to_path_buf(),
            database_url: None,
            audit_dir: None,
            batch: 7,
            grace: Duration::ZERO,
        }
    }

    async fn open(dir: &std::path::Path) -> Result<(DataDir, Kms), String> {
        let d = DataDir::open(dir, None).await?;
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_000_000_000));
        let kms = d.service(clock, Pool::new(0), ServiceConfig::default());
        Ok((d, kms))
    }

    /// Every secret the data dir holds opens, and is what it was.
    async fn check(dir: &std::path::Path, secret: &[u8], materials: &[(String, String, Vec<u8>)]) {
        let (d, kms) = open(dir).await.unwrap();
        let ak = d.store.list_access_keys().await.unwrap();
        let (_, got) = kms.access_key_secret(&ak[0].access_key_id).await.unwrap();
        assert_eq!(got.as_slice(), secret);
        for (key_id, version_id, material) in materials {
            let v = d
                .store
                .get_version(key_id, version_id)
                .await
                .unwrap()
                .unwrap();
            let sealed = v.sealed_material.unwrap();
            let opened = kms.open_material(key_id, version_id, &sealed).unwrap();
            assert_eq!(opened.as_slice(), material.as_slice());
        }
    }

    #[tokio::test]
    async fn an_hsm_held_root_is_refused_with_the_way_out() {
        let dir = temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(crate::hsm::root::SEALED_ROOT_FILE), b"sealed").unwrap();
        let e = rotate(Options {
            data_dir: dir.clone(),
            database_url: None,
            audit_dir: None,
            batch: 10,
            grace: std::time::Duration::ZERO,
        })
        .await
        .unwrap_err();
        assert!(e.contains("held by an HSM"), "{e}");
        assert!(e.contains("hsm-root from-hsm"), "{e}");
        assert!(!dir.join("root.key.next").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn an_interrupted_rotation_is_refused_at_start_and_finished_by_the_next_run() {
        let dir = temp_dir();
        let (d, kms) = open(&dir).await.unwrap();
        d.store.ensure_account(ACCOUNT, 1).await.unwrap();
        let ak = kms.create_access_key(ACCOUNT, None).await.unwrap();
        let secret = ak.access_key_secret.as_bytes().to_vec();
        let batch = kms
            .new_keys_for_seeding(ACCOUNT, "cn-hangzhou", 40)
            .await
            .unwrap();
        d.store.insert_keys_bulk(batch).await.unwrap();
        let mut materials = Vec::new();
        for k in d.store.list_keys(ACCOUNT, "cn-hangzhou").await.unwrap() {
            let v = d
                .store
                .get_version(&k.key_id, &k.primary_version)
                .await
                .unwrap()
                .unwrap();
            let m = kms
                .open_material(&k.key_id, &v.version_id, &v.sealed_material.unwrap())
                .unwrap();
            materials.push((k.key_id, v.version_id, m.to_vec()));
        }
        let old = d.keystore.clone();
        let store = d.store.clone();
        drop((d, kms));

        // A run killed half-way through re-sealing: the next key written, the rotation
        // recorded, one column done.
        let root = root_key_path(&dir);
        let new_root = [9u8; 32];
        root_key::write_next_root_key(&root, &new_root).unwrap();
        let new = Keystore::from_root(&new_root).unwrap();
        store
            .change_meta(
                vec![(root_key::ROTATION_META.into(), new.check_value())],
                Vec::new(),
            )
            .await
            .unwrap();
        let progress = Progress::hidden();
        let (done, _) = reseal_column(store.as_ref(), &SEALED[0], &old, &new, 7, 0, &progress)
            .await
            .unwrap();
        assert_eq!(done, 40);
        drop(store);
        let refused = open(&dir).await.err().unwrap();
        assert!(
            refused.contains("kms admin rotate-root-key --data-dir"),
            "{refused}"
        );

        rotate(options(&dir)).await.unwrap();
        assert_eq!(std::fs::read(&root).unwrap(), new_root);
        assert!(!root_key::next_root_key_path(&root).exists());
        check(&dir, &secret, &materials).await;
        let v = crate::audit::verify(&dir.join("audit"), &new).unwrap();
        assert_eq!(v.handovers, 1);

        // A second rotation from scratch; values sealed under neither key stop it cleanly.
        rotate(options(&dir)).await.unwrap();
        check(&dir, &secret, &materials).await;
        let (d, _) = open(&dir).await.unwrap();
        let stranger = Keystore::from_root(&[3u8; 32]).unwrap();
        d.store
            .insert_access_key(crate::store::AccessKeyRecord {
                access_key_id: "LTAIstranger".into(),
                account_id: ACCOUNT.into(),
                sealed_secret: stranger.seal(b"access-key:LTAIstranger", b"x").unwrap(),
                enabled: true,
                creation_date: 1,
                user_id: None,
            })
            .await
            .unwrap();
        drop(d);
        let err = rotate(options(&dir)).await.unwrap_err();
        assert!(err.contains("opens under neither"), "{err}");
        assert!(err.contains("run `kms admin rotate-root-key"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
