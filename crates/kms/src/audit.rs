//! The audit trail: one JSON line per API call (time, request id, account, access key id,
//! source address, action, key id and version, result code, HTTP status), never plaintext,
//! key material, tokens or secrets.
//!
//! Each line is chained to the one before by a keyed hash: `mac = HMAC-SHA256(audit key,
//! prev ‖ "\n" ‖ body)`, where `body` is the line without its `mac` field, `prev` the
//! previous line's mac (64 zeros for the first line ever), and the audit key is derived from
//! the root key. Removing, reordering or editing a line breaks the chain; `kms admin audit
//! verify` checks it across all files.
//!
//! Lines are written off the request path by one task, in batches. Actions that change state
//! wait until their line is on disk (written and fsynced) before the response is sent; reads
//! and cryptographic calls do not wait. Files rotate by size: `audit.log` becomes
//! `audit-<last seq>.log` and the chain continues in a new `audit.log`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::keystore::Keystore;

pub const CURRENT: &str = "audit.log";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audited call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub time: String,
    pub request_id: String,
    pub account_id: String,
    pub access_key_id: String,
    pub source: String,
    pub action: String,
    pub key_id: String,
    pub key_version_id: String,
    /// `OK` or the error code.
    pub result: String,
    pub status: u16,
}

/// A line as stored: the record, its sequence number and the chain. (Fields are listed
/// rather than `#[serde(flatten)]`ed: flattening goes through a map and was the writer's
/// main cost.)
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    seq: u64,
    time: String,
    request_id: String,
    account_id: String,
    access_key_id: String,
    source: String,
    action: String,
    key_id: String,
    key_version_id: String,
    result: String,
    status: u16,
    prev: String,
}

impl Stored {
    fn new(seq: u64, r: AuditRecord, prev: String) -> Self {
        Self {
            seq,
            time: r.time,
            request_id: r.request_id,
            account_id: r.account_id,
            access_key_id: r.access_key_id,
            source: r.source,
            action: r.action,
            key_id: r.key_id,
            key_version_id: r.key_version_id,
            result: r.result,
            status: r.status,
            prev,
        }
    }
}

type Job = (AuditRecord, Option<oneshot::Sender<()>>);

/// The handle the request path uses.
#[derive(Clone)]
pub struct AuditLog {
    tx: std::sync::mpsc::SyncSender<Job>,
}

impl AuditLog {
    /// Opens (or creates) the log in `dir` and starts the writer task.
    pub fn start(dir: &Path, keystore: Arc<Keystore>, max_bytes: u64) -> Result<AuditLog, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let (seq, prev) = last_link(dir)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(65_536);
        let writer = Writer {
            dir: dir.to_path_buf(),
            keystore,
            max_bytes,
            seq,
            prev,
        };
        std::thread::Builder::new()
            .name("kms-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        Ok(AuditLog { tx })
    }

    /// Records a call. With `durable`, returns once the line is on disk.
    pub async fn record(&self, record: AuditRecord, durable: bool) {
        if durable {
            let (done, wait) = oneshot::channel();
            let sent = match self.tx.try_send((record, Some(done))) {
                Ok(()) => true,
                Err(std::sync::mpsc::TrySendError::Full(job)) => {
                    // A full queue blocks: wait for room off the runtime's worker threads.
                    let tx = self.tx.clone();
                    matches!(
                        tokio::task::spawn_blocking(move || tx.send(job).is_ok()).await,
                        Ok(true)
                    )
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => false,
            };
            if sent {
                let _ = wait.await;
            }
        } else if self.tx.try_send((record, None)).is_err() {
            tracing::warn!("audit queue full: a read-only call was not recorded");
        }
    }
}

struct Writer {
    dir: PathBuf,
    keystore: Arc<Keystore>,
    max_bytes: u64,
    seq: u64,
    prev: String,
}

/// The line for `stored`: its JSON with the chained mac appended.
fn seal_line(key: &hmac::Key, stored: &Stored) -> Result<(String, String), String> {
    let body = serde_json::to_string(stored).map_err(|e| e.to_string())?;
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(stored.prev.as_bytes());
    ctx.update(b"\n");
    ctx.update(body.as_bytes());
    let mac = hex::encode(ctx.sign());
    let line = format!("{},\"mac\":\"{mac}\"}}", &body[..body.len() - 1]);
    Ok((line, mac))
}

/// Splits a stored line into (body without mac, mac).
fn split_line(line: &str) -> Option<(String, String)> {
    let idx = line.rfind(",\"mac\":\"")?;
    let mac = line.get(idx + 8..line.len().checked_sub(2)?)?;
    if !line.ends_with("\"}") || mac.len() != 64 {
        return None;
    }
    Some((format!("{}}}", &line[..idx]), mac.to_string()))
}

/// The files of the trail, oldest first.
pub fn files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut rotated: Vec<(u64, PathBuf)> = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(n) = name
            .strip_prefix("audit-")
            .and_then(|n| n.strip_suffix(".log"))
        {
            if let Ok(n) = n.parse() {
                rotated.push((n, e.path()));
            }
        }
    }
    rotated.sort();
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    let current = dir.join(CURRENT);
    if current.exists() {
        out.push(current);
    }
    Ok(out)
}

/// The last sequence number and mac of the trail, to continue the chain.
fn last_link(dir: &Path) -> Result<(u64, String), String> {
    let mut last = (0, GENESIS.to_string());
    for f in files(dir)?.iter().rev() {
        let text = std::fs::read_to_string(f).map_err(|e| e.to_string())?;
        if let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) {
            let (body, mac) = split_line(line).ok_or_else(|| {
                format!(
                    "{}: the last line is damaged; run kms admin audit verify",
                    f.display()
                )
            })?;
            let stored: Stored = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            last = (stored.seq, mac);
            break;
        }
    }
    Ok(last)
}

impl Writer {
    /// Opens `audit.log` for appending; returns it with its current size.
    fn open_current(&self) -> Result<(std::fs::File, u64), String> {
        let path = self.dir.join(CURRENT);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        Ok((f, size))
    }

    /// The writer thread: collects lines for up to 20 ms (or at once when a state change is
    /// waiting for its line), writes them in one call, fsyncs when a state change waits.
    fn run(mut self, rx: std::sync::mpsc::Receiver<Job>) {
        use std::sync::mpsc::RecvTimeoutError;
        use std::time::{Duration, Instant};
        let mut file = match self.open_current() {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(error = %e, "audit log cannot be opened");
                None
            }
        };
        let mut batch: Vec<Job> = Vec::with_capacity(1024);
        let mut lines = String::new();
        loop {
            match rx.recv() {
                Ok(job) => batch.push(job),
                Err(_) => return,
            }
            let deadline = Instant::now() + Duration::from_millis(20);
            while batch.len() < 4096 && !batch.iter().any(|(_, ack)| ack.is_some()) {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(job) => batch.push(job),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            while let Ok(job) = rx.try_recv() {
                batch.push(job);
                if batch.len() >= 4096 {
                    break;
                }
            }
            lines.clear();
            let mut acks = Vec::new();
            let (mut seq, mut prev) = (self.seq, self.prev.clone());
            for (record, ack) in batch.drain(..) {
                let stored = Stored::new(seq + 1, record, prev.clone());
                match seal_line(self.keystore.audit_key(), &stored) {
                    Ok((line, mac)) => {
                        lines.push_str(&line);
                        lines.push('\n');
                        prev = mac;
                        seq += 1;
                    }
                    Err(e) => tracing::error!(error = %e, "audit line not written"),
                }
                if let Some(a) = ack {
                    acks.push(a);
                }
            }
            match self.write(&mut file, &lines, !acks.is_empty(), seq) {
                Ok(()) => {
                    self.seq = seq;
                    self.prev = prev;
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit write failed");
                    file = None;
                }
            }
            for a in acks {
                let _ = a.send(());
            }
        }
    }

    fn write(
        &self,
        file: &mut Option<(std::fs::File, u64)>,
        lines: &str,
        durable: bool,
        seq: u64,
    ) -> Result<(), String> {
        if file.is_none() {
            *file = Some(self.open_current()?);
        }
        let Some((f, size)) = file.as_mut() else {
            return Err("audit log not open".into());
        };
        f.write_all(lines.as_bytes()).map_err(|e| e.to_string())?;
        *size += lines.len() as u64;
        if durable {
            f.sync_data().map_err(|e| e.to_string())?;
        }
        if self.max_bytes > 0 && *size >= self.max_bytes {
            f.sync_all().map_err(|e| e.to_string())?;
            let rotated = self.dir.join(format!("audit-{seq:012}.log"));
            std::fs::rename(self.dir.join(CURRENT), &rotated).map_err(|e| e.to_string())?;
            *file = Some(self.open_current()?);
        }
        Ok(())
    }
}

/// The outcome of a chain check.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub files: usize,
    pub lines: u64,
}

/// Checks every line of every file of the trail, in order.
pub fn verify(dir: &Path, keystore: &Keystore) -> Result<Verified, String> {
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1u64;
    let files = files(dir)?;
    for f in &files {
        let file =
            std::fs::File::open(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| e.to_string())?;
            let place = format!("{} line {}", f.display(), n + 1);
            let (body, mac) =
                split_line(&line).ok_or_else(|| format!("{place}: not an audit line"))?;
            let stored: Stored =
                serde_json::from_str(&body).map_err(|_| format!("{place}: not an audit line"))?;
            if stored.prev != prev {
                return Err(format!("{place}: the chain is broken (a line before it was removed, reordered or changed)"));
            }
            if stored.seq != expected_seq {
                return Err(format!(
                    "{place}: sequence {} where {expected_seq} was expected",
                    stored.seq
                ));
            }
            let mut ctx = hmac::Context::with_key(keystore.audit_key());
            ctx.update(prev.as_bytes());
            ctx.update(b"\n");
            ctx.update(body.as_bytes());
            let want = hex::encode(ctx.sign());
            if want != mac {
                return Err(format!(
                    "{place}: the line was changed (its mac does not match)"
                ));
            }
            prev = mac;
            expected_seq += 1;
        }
    }
    Ok(Verified {
        files: files.len(),
        lines: expected_seq - 1,
    })
}

/// Lines matching the filters (all optional), oldest first.
pub fn query(
    dir: &Path,
    key_id: Option<&str>,
    action: Option<&str>,
    since: Option<i64>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for f in files(dir)? {
        let file = std::fs::File::open(&f).map_err(|e| e.to_string())?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| e.to_string())?;
            let Some((body, _)) = split_line(&line) else {
                continue;
            };
            let Ok(stored) = serde_json::from_str::<Stored>(&body) else {
                continue;
            };
            let r = &stored;
            if key_id.is_some_and(|k| r.key_id != k)
                || action.is_some_and(|a| r.action != a)
                || since.is_some_and(|s| crate::timefmt::parse(&r.time).is_none_or(|t| t < s))
            {
                continue;
            }
            out.push(line);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u32) -> AuditRecord {
        AuditRecord {
            time: format!("2026-01-01T00:00:{:02}Z", i % 60),
            request_id: format!("R{i}"),
            account_id: "1".into(),
            access_key_id: "AK".into(),
            source: "127.0.0.1:1".into(),
            action: if i.is_multiple_of(2) {
                "Encrypt".into()
            } else {
                "CreateKey".into()
            },
            key_id: format!("k{}", i % 3),
            key_version_id: String::new(),
            result: "OK".into(),
            status: 200,
        }
    }

    #[tokio::test]
    async fn chain_detects_removal_edit_and_reorder_and_survives_rotation() {
        let dir = std::env::temp_dir().join(format!(
            "kms-audit-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        let ks = Arc::new(Keystore::from_root(&[4u8; 32]).unwrap());
        let log = AuditLog::start(&dir, ks.clone(), 2_000).unwrap();
        for i in 0..40 {
            log.record(rec(i), i.is_multiple_of(5)).await;
        }
        log.record(rec(40), true).await;
        let v = verify(&dir, &ks).unwrap();
        assert_eq!(v.lines, 41);
        assert!(v.files > 1, "rotation by size happened");
        // A restart continues the chain.
        drop(log);
        let log = AuditLog::start(&dir, ks.clone(), 2_000).unwrap();
        log.record(rec(41), true).await;
        assert_eq!(verify(&dir, &ks).unwrap().lines, 42);
        assert_eq!(
            query(&dir, Some("k1"), Some("CreateKey"), None)
                .unwrap()
                .len(),
            7
        );
        // Another root key cannot verify.
        assert!(verify(&dir, &Keystore::from_root(&[5u8; 32]).unwrap()).is_err());

        let current = files(&dir)
            .unwrap()
            .into_iter()
            .find(|f| std::fs::read_to_string(f).unwrap().lines().count() >= 3)
            .unwrap();
        let original = std::fs::read_to_string(&current).unwrap();
        let lines: Vec<&str> = original.lines().collect();
        assert!(lines.len() >= 3);
        // Edit a field.
        std::fs::write(
            &current,
            original.replacen("\"result\":\"OK\"", "\"result\":\"NO\"", 1),
        )
        .unwrap();
        assert!(verify(&dir, &ks).unwrap_err().contains("changed"));
        // Remove a line.
        let mut removed = lines.clone();
        removed.remove(1);
        std::fs::write(&current, removed.join("\n") + "\n").unwrap();
        assert!(verify(&dir, &ks).unwrap_err().contains("broken"));
        // Swap two lines.
        let mut swapped = lines.clone();
        swapped.swap(0, 1);
        std::fs::write(&current, swapped.join("\n") + "\n").unwrap();
        assert!(verify(&dir, &ks).is_err());
        // Remove a whole rotated file.
        std::fs::write(&current, &original).unwrap();
        assert!(verify(&dir, &ks).is_ok());
        let first = files(&dir).unwrap()[0].clone();
        std::fs::remove_file(first).unwrap();
        assert!(verify(&dir, &ks).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn rand_suffix() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    #[test]
    fn lines_split_back() {
        let ks = Keystore::from_root(&[4u8; 32]).unwrap();
        let s = Stored::new(1, rec(1), GENESIS.into());
        let (line, mac) = seal_line(ks.audit_key(), &s).unwrap();
        let (body, got) = split_line(&line).unwrap();
        assert_eq!(got, mac);
        assert_eq!(body, serde_json::to_string(&s).unwrap());
        assert!(split_line("{}").is_none());
    }
}
