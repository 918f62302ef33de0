//! `kms admin backup` and `kms admin restore`: an online, consistent copy of a deployment's
//! database in one self-checking file, and its restore into a new data dir.
//!
//! The file (format 1):
//!
//! ```text
//! KMS-BACKUP 1\n
//! {manifest as one line of JSON}\n
//! <payload: a SQLite database, payload_bytes long>
//! <SHA-256 of everything above, 32 bytes>
//! ```
//!
//! The payload is always a SQLite database with the server's schema: from SQLite it is
//! `VACUUM INTO` (one read transaction, so a consistent snapshot while the server keeps
//! writing; it never blocks writers in WAL mode); from PostgreSQL it is the rows of one
//! snapshot transaction (the export path of `migrate-store`) written into a SQLite database.
//! A restore therefore always yields a SQLite data dir; `--database-url` then copies it on
//! into an empty PostgreSQL database.
//!
//! The file holds sealed data only (key material, wrapping keys, access-key secrets are
//! sealed under the root key exactly as in the database), never the root key: the manifest
//! records the root key's public fingerprint (the check value the database records on first
//! start) so a restore can say which root key it needs.
//!
//! The checksum is a plain SHA-256 (aws-lc-rs), not an HMAC keyed from the root key: making
//! and checking a backup must work where the root key is not (a backup host, a restore
//! before the key is put back), and the secrets inside are already authenticated by the root
//! key's sealing; the checksum's job is to refuse a damaged, truncated or edited file before
//! anything is written. Protect backup files like the database itself.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use crate::progress::Progress;

/// The first line of every backup file, before the format number.
pub const MAGIC: &str = "KMS-BACKUP";
/// The format this version writes and reads.
pub const FORMAT: u32 = 1;
/// What the manifest says about the contents (also printed by backup and restore).
pub const CONTENTS: &str = "sealed data only: every secret in this file is sealed under the root key, which is NOT in this file; back the root key up separately";
/// The warning printed after a backup.
pub const ROOT_KEY_WARNING: &str = "WARNING: this backup does not contain the root key. Without the root key whose fingerprint is shown above, the backup cannot be used: back the root key (<data dir>/root.key or the file KMS_ROOT_KEY_FILE names) up separately, and keep it apart from the backups.";
const CHECKSUM_LEN: usize = 32;
/// A manifest line longer than this is not one.
const MAX_MANIFEST: u64 = 64 * 1024;
const CHUNK: usize = 1 << 20;

/// The manifest: the second line of a backup file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The kms version that wrote it.
    pub kms_version: String,
    /// `sqlite` or `postgresql`.
    pub source_engine: String,
    /// The source database's schema version (its highest migration).
    pub source_schema_version: i64,
    /// The payload's SQLite schema version.
    pub schema_version: i64,
    /// The public fingerprint (check value) of the root key the data is sealed under.
    pub root_key_fingerprint: String,
    pub contents: String,
    /// `sqlite`: the payload is a SQLite database.
    pub payload: String,
    pub payload_bytes: u64,
    /// Rows by table, for the operator.
    pub keys: i64,
    pub key_versions: i64,
    pub access_keys: i64,
}

/// Where `kms admin backup` reads from.
pub enum Source {
    Sqlite(PathBuf),
    Postgres(Box<tokio_postgres::Config>),
}

impl Source {
    /// The database of a data dir: `--database-url` if given, else `<data dir>/kms.db`.
    pub fn of(data_dir: &Path, database_url: Option<&str>) -> Result<Self, String> {
        use crate::store::DatabaseUrl;
        let file = match database_url.map(DatabaseUrl::parse).transpose()? {
            Some(DatabaseUrl::Postgres(pg)) => return Ok(Self::Postgres(pg)),
            Some(DatabaseUrl::Sqlite(file)) => file,
            None => data_dir.join("kms.db"),
        };
        if !file.is_file() {
            return Err(format!(
                "no SQLite database at {} (give the server's --data-dir or --database-url)",
                file.display()
            ));
        }
        Ok(Self::Sqlite(file))
    }
}

/// Removes the files it names when dropped, unless disarmed: nothing partial is left behind
/// by a failed backup or restore.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn sqlite_err(what: &str, e: rusqlite::Error) -> String {
    format!("{what}: {e}")
}

/// The SQLite schema version and the manifest's row counts and root-key fingerprint, read
/// from the database at `file`.
fn describe_sqlite(file: &Path) -> Result<(i64, String, [i64; 3]), String> {
    let c = rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| sqlite_err("cannot read the snapshot", e))?;
    let one = |sql: &str| -> Result<i64, String> {
        c.query_row(sql, [], |r| r.get(0))
            .map_err(|e| sqlite_err("cannot read the snapshot", e))
    };
    let schema = one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")?;
    let counts = [
        one("SELECT COUNT(*) FROM keys")?,
        one("SELECT COUNT(*) FROM key_versions")?,
        one("SELECT COUNT(*) FROM access_keys")?,
    ];
    let fingerprint: String = c
        .query_row(
            "SELECT value FROM meta WHERE name = 'root_key_check'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => {
                "the database records no root key (it was never opened by a server)".to_string()
            }
            e => sqlite_err("cannot read the snapshot", e),
        })?;
    Ok((schema, fingerprint, counts))
}

/// `VACUUM INTO`: a consistent copy of the SQLite database at `from` in `into` (which must
/// not exist), with its progress in bytes.
fn vacuum_into(from: &Path, into: &Path, label: &str) -> Result<(), String> {
    let c = rusqlite::Connection::open_with_flags(
        from,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| sqlite_err(&format!("cannot open {}", from.display()), e))?;
    c.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|e| sqlite_err("sqlite", e))?;
    let size: i64 = c
        .query_row(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            [],
            |r| r.get(0),
        )
        .map_err(|e| sqlite_err("cannot read the database size", e))?;
    let progress = Progress::bytes(label, size.max(0) as u64);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (progress, done, into) = (progress.clone(), done.clone(), into.to_path_buf());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(m) = std::fs::metadata(&into) {
                    progress.set_position(m.len());
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        })
    };
    let into_text = into
        .to_str()
        .ok_or_else(|| format!("{} is not a UTF-8 path", into.display()))?;
    let result = c.execute("VACUUM INTO ?1", [into_text]);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = watcher.join();
    result.map_err(|e| sqlite_err(&format!("cannot write the snapshot {}", into.display()), e))?;
    if let Ok(m) = std::fs::metadata(into) {
        progress.set_total(m.len());
        progress.set_position(m.len());
    }
    progress.finish();
    Ok(())
}

/// `kms admin backup --to FILE`: while the server runs. Returns the manifest written.
pub async fn backup(source: Source, to: &Path) -> Result<Manifest, String> {
    if to.exists() {
        return Err(format!(
            "{} exists: choose a new file name (a backup never overwrites a file)",
            to.display()
        ));
    }
    let partial = with_suffix(to, ".partial");
    let snapshot = with_suffix(to, ".partial-db");
    let staging = with_suffix(to, ".partial-pg.db");
    let cleanup = Cleanup(vec![
        partial.clone(),
        snapshot.clone(),
        with_suffix(&snapshot, "-journal"),
        staging.clone(),
        with_suffix(&staging, "-wal"),
        with_suffix(&staging, "-shm"),
        with_suffix(&staging, "-journal"),
    ]);
    for p in &cleanup.0 {
        if p.exists() {
            return Err(format!(
                "{} exists (left by an earlier backup that was killed?): remove it first",
                p.display()
            ));
        }
    }
    let (engine, source_schema) = match source {
        Source::Sqlite(file) => {
            let snapshot = snapshot.clone();
            tokio::task::spawn_blocking(move || vacuum_into(&file, &snapshot, "Taking a snapshot"))
                .await
                .map_err(|e| format!("snapshot: {e}"))??;
            ("sqlite", None)
        }
        Source::Postgres(pg) => {
            let store = crate::store::postgres::PostgresStore::connect(*pg, 2)
                .await
                .map_err(|e| format!("postgres: {e}"))?;
            let schema = store
                .schema_version()
                .await
                .map_err(|e| format!("postgres: {e}"))?;
            use crate::store::DumpStore;
            let dump = store.export().await.map_err(|e| format!("postgres: {e}"))?;
            eprintln!("Read {} from one snapshot.", dump.summary());
            {
                crate::private_fs::prepare_sqlite(&staging)?;
                let target = crate::store::sqlite::SqliteStore::open(&staging)
                    .map_err(|e| format!("cannot write {}: {e}", staging.display()))?;
                let progress = Progress::new("Copying rows", dump.rows());
                target
                    .import_with_progress(dump, progress.clone())
                    .await
                    .map_err(|e| format!("cannot write {}: {e}", staging.display()))?;
                progress.finish();
            }
            let (staging, snapshot) = (staging.clone(), snapshot.clone());
            tokio::task::spawn_blocking(move || vacuum_into(&staging, &snapshot, "Compacting"))
                .await
                .map_err(|e| format!("snapshot: {e}"))??;
            ("postgresql", Some(schema))
        }
    };
    let snapshot_for = snapshot.clone();
    let (schema, fingerprint, counts) =
        tokio::task::spawn_blocking(move || describe_sqlite(&snapshot_for))
            .await
            .map_err(|e| format!("snapshot: {e}"))??;
    let payload_bytes = std::fs::metadata(&snapshot)
        .map_err(|e| format!("cannot read the snapshot {}: {e}", snapshot.display()))?
        .len();
    let manifest = Manifest {
        format: FORMAT,
        created_at: crate::timefmt::format_unix(crate::clock::system_now()),
        kms_version: env!("CARGO_PKG_VERSION").to_string(),
        source_engine: engine.to_string(),
        source_schema_version: source_schema.unwrap_or(schema),
        schema_version: schema,
        root_key_fingerprint: fingerprint,
        contents: CONTENTS.to_string(),
        payload: "sqlite".to_string(),
        payload_bytes,
        keys: counts[0],
        key_versions: counts[1],
        access_keys: counts[2],
    };
    let (m, partial_for, snapshot_for) = (manifest.clone(), partial.clone(), snapshot.clone());
    tokio::task::spawn_blocking(move || write_file(&m, &snapshot_for, &partial_for))
        .await
        .map_err(|e| format!("backup: {e}"))??;
    std::fs::rename(&partial, to).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            to.display()
        )
    })?;
    sync_parent(to);
    // Every file the cleanup names is temporary (the partial file is renamed by now).
    drop(cleanup);
    Ok(manifest)
}

/// Writes header, manifest, the payload from `snapshot` and the checksum into `out`
/// (created new, 0600), flushed to disk.
fn write_file(m: &Manifest, snapshot: &Path, out: &Path) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write the backup {}: {e}", out.display());
    let mut f = crate::private_fs::options()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(fail)?;
    let mut sha = digest::Context::new(&digest::SHA256);
    let mut head = format!("{MAGIC} {FORMAT}\n").into_bytes();
    head.extend(serde_json::to_vec(m).map_err(|e| format!("manifest: {e}"))?);
    head.push(b'\n');
    sha.update(&head);
    f.write_all(&head).map_err(fail)?;
    let mut input = std::fs::File::open(snapshot)
        .map_err(|e| format!("cannot read the snapshot {}: {e}", snapshot.display()))?;
    let progress = Progress::bytes("Writing the backup", m.payload_bytes);
    let mut buf = vec![0u8; CHUNK];
    let mut copied = 0u64;
    loop {
        let n = input
            .read(&mut buf)
            .map_err(|e| format!("cannot read the snapshot {}: {e}", snapshot.display()))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        f.write_all(&buf[..n]).map_err(fail)?;
        copied += n as u64;
        progress.set_position(copied);
    }
    if copied != m.payload_bytes {
        return Err(format!(
            "the snapshot changed size while being copied ({} bytes, then {copied})",
            m.payload_bytes
        ));
    }
    f.write_all(sha.finish().as_ref()).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    progress.finish();
    Ok(())
}

fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// A backup file checked from end to end: its manifest, the offset of its payload.
pub struct Checked {
    pub manifest: Manifest,
    payload_offset: u64,
}

/// Reads and checks the header and manifest of `file` and its length against them; the
/// checksum is checked while the payload is copied ([`copy_payload`]).
pub fn read_manifest(file: &Path) -> Result<Checked, String> {
    let shown = file.display();
    let f = std::fs::File::open(file).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let len = f
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .len();
    let mut r = std::io::BufReader::new(f);
    let mut first = Vec::new();
    (&mut r)
        .take(32)
        .read_until_newline(&mut first)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let expected = format!("{MAGIC} {FORMAT}\n");
    if first != expected.as_bytes() {
        let text = String::from_utf8_lossy(&first);
        if let Some(v) = text.trim_end().strip_prefix(&format!("{MAGIC} ")) {
            return Err(format!(
                "{shown} is a KMS backup of format {v}; this kms reads format {FORMAT}"
            ));
        }
        if len == 0 || expected.as_bytes().starts_with(&first) {
            return Err(format!(
                "{shown} is truncated: it ends within its header ({len} bytes)"
            ));
        }
        return Err(format!(
            "{shown} is not a KMS backup (it does not start with \"{MAGIC} {FORMAT}\")"
        ));
    }
    let mut line = Vec::new();
    (&mut r)
        .take(MAX_MANIFEST)
        .read_until_newline(&mut line)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if line.last() != Some(&b'\n') {
        return Err(format!(
            "{shown} is truncated or damaged: its manifest line does not end"
        ));
    }
    let manifest: Manifest = serde_json::from_slice(&line[..line.len() - 1])
        .map_err(|e| format!("{shown} is damaged: its manifest cannot be read ({e})"))?;
    let payload_offset = (first.len() + line.len()) as u64;
    let want = payload_offset
        .checked_add(manifest.payload_bytes)
        .and_then(|n| n.checked_add(CHECKSUM_LEN as u64))
        .ok_or_else(|| format!("{shown} is damaged: its manifest announces an impossible size"))?;
    if len < want {
        return Err(format!(
            "{shown} is truncated: it has {len} bytes, its manifest announces {want}"
        ));
    }
    if len > want {
        return Err(format!(
            "{shown} is damaged: it has {len} bytes, {} more than its manifest announces",
            len - want
        ));
    }
    if manifest.payload != "sqlite" {
        return Err(format!(
            "{shown} holds a payload of kind {:?}, which this kms cannot restore",
            manifest.payload
        ));
    }
    Ok(Checked {
        manifest,
        payload_offset,
    })
}

/// `read_until(b'\n')` for any reader (std has it on `BufRead` only).
trait ReadLine {
    fn read_until_newline(self, out: &mut Vec<u8>) -> std::io::Result<()>;
}

impl<R: Read> ReadLine for R {
    fn read_until_newline(mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut b = [0u8; 1];
        loop {
            if self.read(&mut b)? == 0 {
                return Ok(());
            }
            out.push(b[0]);
            if b[0] == b'\n' {
                return Ok(());
            }
        }
    }
}

/// Copies the payload of the checked backup `file` into `out` (created new, 0600), checking
/// the SHA-256 of the whole file. On a mismatch `out` is removed and the error says so.
pub fn copy_payload(file: &Path, checked: &Checked, out: &Path) -> Result<(), String> {
    let shown = file.display();
    let mut cleanup = Cleanup(vec![out.to_path_buf()]);
    let mut f = std::fs::File::open(file).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut sha = digest::Context::new(&digest::SHA256);
    let mut head = vec![0u8; checked.payload_offset as usize];
    f.read_exact(&mut head)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    sha.update(&head);
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", out.display());
    let mut w = crate::private_fs::options()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(fail)?;
    let total = checked.manifest.payload_bytes;
    let progress = Progress::bytes("Restoring", total);
    let mut buf = vec![0u8; CHUNK];
    let mut left = total;
    while left > 0 {
        let n = (left as usize).min(CHUNK);
        f.read_exact(&mut buf[..n])
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        sha.update(&buf[..n]);
        w.write_all(&buf[..n]).map_err(fail)?;
        left -= n as u64;
        progress.set_position(total - left);
    }
    let mut stored = [0u8; CHECKSUM_LEN];
    f.read_exact(&mut stored)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let computed = sha.finish();
    if computed.as_ref() != stored {
        return Err(format!(
            "{shown} is damaged or was altered: its SHA-256 checksum does not match (recorded {}, computed {}); nothing was restored",
            hex::encode(stored),
            hex::encode(computed.as_ref())
        ));
    }
    w.sync_all().map_err(fail)?;
    progress.finish();
    cleanup.0.clear();
    Ok(())
}

/// `kms admin restore --from FILE --data-dir DIR [--database-url postgres://…]`.
pub async fn restore(
    from: &Path,
    data_dir: &Path,
    database_url: Option<&str>,
) -> Result<Manifest, String> {
    let checked = read_manifest(from)?;
    let m = checked.manifest.clone();
    eprintln!(
        "Backup of {} ({} database, schema {}), {} keys, {} key versions, {} access keys; root key fingerprint {}.",
        m.created_at,
        m.source_engine,
        m.source_schema_version,
        m.keys,
        m.key_versions,
        m.access_keys,
        m.root_key_fingerprint
    );
    let postgres = match database_url.map(crate::store::DatabaseUrl::parse).transpose()? {
        Some(crate::store::DatabaseUrl::Postgres(pg)) => Some(pg),
        Some(crate::store::DatabaseUrl::Sqlite(_)) => {
            return Err("restore writes SQLite into <data dir>/kms.db; --database-url takes only a postgres:// URL".into())
        }
        None => None,
    };
    let created = match std::fs::read_dir(data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(format!(
                    "the data dir {} is not empty: restore only into a new or empty data dir (nothing was changed)",
                    data_dir.display()
                ));
            }
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            return Err(format!(
                "cannot read the data dir {}: {e}",
                data_dir.display()
            ))
        }
    };
    crate::private_fs::create_dir(data_dir)
        .map_err(|e| format!("cannot create the data dir {}: {e}", data_dir.display()))?;
    let result = restore_into(from, checked, data_dir, postgres).await;
    if result.is_err() && created {
        // Only what this restore made: the directory, if nothing else was put in it.
        let _ = std::fs::remove_dir(data_dir);
    }
    result?;
    Ok(m)
}

/// Restore's steps once the data dir is there and empty; on an error every file it wrote is
/// removed again.
async fn restore_into(
    from: &Path,
    checked: Checked,
    data_dir: &Path,
    postgres: Option<Box<tokio_postgres::Config>>,
) -> Result<(), String> {
    let fingerprint_wanted = checked.manifest.root_key_fingerprint.clone();
    let db = data_dir.join("kms.db");
    let partial = data_dir.join("kms.db.restoring");
    let mut cleanup = Cleanup(vec![
        partial.clone(),
        db.clone(),
        with_suffix(&db, "-wal"),
        with_suffix(&db, "-shm"),
        with_suffix(&db, "-journal"),
    ]);
    {
        let (from, partial) = (from.to_path_buf(), partial.clone());
        tokio::task::spawn_blocking(move || copy_payload(&from, &checked, &partial))
            .await
            .map_err(|e| format!("restore: {e}"))??;
    }
    // The payload's own root-key record must agree with the manifest (a consistent file).
    let (_, fingerprint, _) = describe_sqlite(&partial)?;
    if fingerprint != fingerprint_wanted {
        return Err(format!(
            "{} is damaged: its database records root key {fingerprint}, its manifest {fingerprint_wanted}",
            from.display(),
        ));
    }
    std::fs::rename(&partial, &db).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            db.display()
        )
    })?;
    sync_parent(&db);
    // Opening applies the migrations of this version (a backup from an older one).
    let store = crate::store::sqlite::SqliteStore::open(&db)
        .map_err(|e| format!("cannot open the restored database {}: {e}", db.display()))?;
    if let Some(pg) = postgres {
        use crate::store::DumpStore;
        let dump = store.export().await.map_err(|e| e.to_string())?;
        let target = crate::store::postgres::PostgresStore::connect(*pg, 2)
            .await
            .map_err(|e| format!("postgres: {e}"))?;
        let progress = Progress::new("Copying rows into PostgreSQL", dump.rows());
        target
            .import_with_progress(dump, progress.clone())
            .await
            .map_err(|e| format!("postgres: {e}"))?;
        progress.finish();
        // The SQLite staging copy goes with the cleanup.
        return Ok(());
    }
    drop(store);
    cleanup.0.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(payload_bytes: u64) -> Manifest {
        Manifest {
            format: FORMAT,
            created_at: "2026-01-01T00:00:00Z".into(),
            kms_version: "0".into(),
            source_engine: "sqlite".into(),
            source_schema_version: 6,
            schema_version: 6,
            root_key_fingerprint: "ab".into(),
            contents: CONTENTS.into(),
            payload: "sqlite".into(),
            payload_bytes,
            keys: 0,
            key_versions: 0,
            access_keys: 0,
        }
    }

    #[test]
    fn a_written_file_checks_and_every_damage_is_named() {
        let dir = std::env::temp_dir().join(format!("kms-backup-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let payload = dir.join("payload");
        std::fs::write(&payload, vec![7u8; 5000]).unwrap();
        let file = dir.join("b");
        write_file(&manifest(5000), &payload, &file).unwrap();
        let checked = read_manifest(&file).unwrap();
        assert_eq!(checked.manifest, manifest(5000));
        copy_payload(&file, &checked, &dir.join("out")).unwrap();
        assert_eq!(std::fs::read(dir.join("out")).unwrap(), vec![7u8; 5000]);

        let bytes = std::fs::read(&file).unwrap();
        let shown = file.display().to_string();
        // Truncated.
        std::fs::write(&file, &bytes[..bytes.len() - 1]).unwrap();
        let want = bytes.len();
        assert_eq!(
            read_manifest(&file).err().unwrap(),
            format!(
                "{shown} is truncated: it has {} bytes, its manifest announces {want}",
                want - 1
            )
        );
        std::fs::write(&file, &bytes[..5]).unwrap();
        assert_eq!(
            read_manifest(&file).err().unwrap(),
            format!("{shown} is truncated: it ends within its header (5 bytes)")
        );
        // One byte altered in the payload.
        let mut altered = bytes.clone();
        altered[want - 100] ^= 1;
        std::fs::write(&file, &altered).unwrap();
        let checked = read_manifest(&file).unwrap();
        let out = dir.join("out2");
        let e = copy_payload(&file, &checked, &out).err().unwrap();
        assert!(
            e.starts_with(&format!(
                "{shown} is damaged or was altered: its SHA-256 checksum does not match"
            )),
            "{e}"
        );
        assert!(!out.exists(), "no partial payload is left");
        // Not a backup.
        std::fs::write(&file, b"SQLite format 3\0....").unwrap();
        assert_eq!(
            read_manifest(&file).err().unwrap(),
            format!("{shown} is not a KMS backup (it does not start with \"KMS-BACKUP 1\")")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
