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
//! Lines are written off the request path by one thread, in batches. Actions that change
//! state wait until their line is on disk (written and fsynced) before the response is sent;
//! reads and cryptographic calls do not wait.
//!
//! Defences (issue 14):
//! - **Bounded lines.** Before authentication a line holds only a known action name (or
//!   `unknown`) and values cut to 64 printable ASCII characters; after it, values are cut to
//!   256. A line is under 1 KiB whatever the request ([`AuditRecord::bounded`]).
//! - **Rotation and retention.** `audit.log` becomes `audit-<last seq>.log` as soon as it
//!   reaches `max_bytes`, inside a batch; beyond `retain_files` rotated files or
//!   `retain_bytes` in all, the oldest rotated files are removed, after a chained
//!   `AuditRetention` line naming the last line removed, so `verify` can tell retention from
//!   deletion.
//! - **Fails closed.** The writer keeps `reserve_bytes` allocated past the end of `audit.log`
//!   (`fallocate`, Linux), so that lines of requests already admitted still fit when the disk
//!   fills. When the reserve cannot be renewed, or a write fails, the [`AuditGate`] closes:
//!   state changes are refused with 503 `ServiceUnavailableTemporary` before they are applied;
//!   reads and cryptographic calls go on. Lines that could not be written are counted, and the
//!   next line written is a chained `AuditGap` line saying how many were lost, since when and
//!   why. The gate reopens once the reserve is back (checked every second).
//! - **Damaged tail.** At start, a last line written in part (a full disk, a crash) is moved
//!   to `audit.log.damaged-<time>` for inspection, `audit.log` is cut back to its last good
//!   line, and an `AuditGap` line records it; the server starts.

use std::io::{BufRead, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::error::KmsError;
use crate::keystore::Keystore;
use crate::private_fs;

pub const CURRENT: &str = "audit.log";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Lines written in one go at most.
const MAX_BATCH: usize = 4096;
/// How often the writer drains the queue while it collects a batch.
const POLL: Duration = Duration::from_millis(1);
/// How often a closed gate checks whether the trail can be written again.
const RETRY: Duration = Duration::from_secs(1);

/// Rotate `audit.log` at this size by default.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Rotated files kept by default.
pub const DEFAULT_RETAIN_FILES: u64 = 64;
/// Bytes of audit files kept by default (current file included).
pub const DEFAULT_RETAIN_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Space kept allocated past the end of `audit.log` by default.
pub const DEFAULT_RESERVE_BYTES: u64 = 4 * 1024 * 1024;

/// Action names of the lines the trail writes about itself.
pub const GAP_ACTION: &str = "AuditGap";
pub const RETENTION_ACTION: &str = "AuditRetention";
pub const HANDOVER_ACTION: &str = "AuditKeyHandover";
/// Web console events recorded besides API actions.
/// Console events that are not API actions (sign-in, sign-out, a refused session cookie).
pub const CONSOLE_EVENTS: [&str; 3] = ["ConsoleSignIn", "ConsoleSignOut", "ConsoleSession"];

/// Where and how the trail is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub dir: PathBuf,
    /// Rotate `audit.log` when it reaches this size (0: never).
    pub max_bytes: u64,
    /// Most rotated files kept (0: no limit).
    pub retain_files: u64,
    /// Most bytes of audit files kept, the current file included (0: no limit).
    pub retain_bytes: u64,
    /// Space kept allocated past the end of `audit.log` (0: none).
    pub reserve_bytes: u64,
}

impl Settings {
    /// Default settings for a trail in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            retain_files: DEFAULT_RETAIN_FILES,
            retain_bytes: DEFAULT_RETAIN_BYTES,
            reserve_bytes: DEFAULT_RESERVE_BYTES,
        }
    }

    /// The server's settings: `audit_dir`, else `<data dir>/audit`.
    pub fn of(config: &crate::config::ServerConfig) -> Self {
        Self {
            dir: config
                .audit_dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("audit")),
            max_bytes: config.audit_max_bytes,
            retain_files: config.audit_retain_files,
            retain_bytes: config.audit_retain_bytes,
            reserve_bytes: config.audit_reserve_bytes,
        }
    }
}

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
    /// Who called, as an ARN (`acs:ram::<account>:root`, `…:user/<name>`,
    /// `…:assumed-role/<role>/<session>`); empty where nobody was authenticated.
    pub principal: String,
}

/// `s` cut to `max` characters, each outside printable ASCII replaced by `?` (so that
/// escaping cannot make it longer than twice `max` bytes in JSON).
fn clip(s: &mut String, max: usize) {
    if let std::borrow::Cow::Owned(clipped) = clipped(s, max) {
        *s = clipped;
    }
}

/// [`clip`] without owning `s`: borrowed as it is when already within bounds (the common
/// case), built only otherwise.
fn clipped(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    // Every byte checked without an early exit, so that the check runs on whole vectors
    // (the common case: a value already within bounds).
    if s.len() <= max && s.bytes().fold(true, |ok, b| ok & (0x20..0x7f).contains(&b)) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .take(max)
            .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
            .collect(),
    )
}

/// The canonical name of a known API action or console event.
fn known_action(name: &str) -> Option<&'static str> {
    crate::action::kms::Action::from_name(name)
        .map(|a| a.name())
        .or_else(|| crate::action::ram::Action::from_name(name).map(|a| a.name()))
        .or_else(|| crate::action::sts::Action::from_name(name).map(|a| a.name()))
        .or_else(|| CONSOLE_EVENTS.iter().copied().find(|e| *e == name))
}

impl AuditRecord {
    /// The record with every field bounded. Without an authenticated account the caller is
    /// unknown, so the action is a known name or `unknown` and the echoed values (access key
    /// id, key id) are cut to 64 characters; with one, values are cut to 256.
    pub fn bounded(mut self) -> Self {
        let authenticated = !self.account_id.is_empty();
        if authenticated {
            clip(&mut self.action, 64);
        } else {
            self.action = known_action(&self.action).unwrap_or("unknown").to_string();
        }
        let echoed = if authenticated { 256 } else { 64 };
        clip(&mut self.time, 32);
        clip(&mut self.request_id, 64);
        clip(&mut self.account_id, 64);
        clip(&mut self.access_key_id, 128.min(echoed));
        clip(&mut self.source, 64);
        clip(&mut self.key_id, echoed);
        clip(&mut self.key_version_id, 64);
        clip(&mut self.result, 64);
        clip(&mut self.principal, 256);
        self
    }
}

/// The fields of an audited call, borrowed: what an [`AuditRecord`] holds, without owning
/// it (the request path hands these to [`AuditLog::record_call`] straight from its outcome).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fields<'a> {
    pub time: &'a str,
    pub request_id: &'a str,
    pub account_id: &'a str,
    pub access_key_id: &'a str,
    pub source: &'a str,
    pub action: &'a str,
    pub key_id: &'a str,
    pub key_version_id: &'a str,
    pub result: &'a str,
    pub status: u16,
    pub principal: &'a str,
}

impl AuditRecord {
    /// The record's fields, borrowed.
    pub fn fields(&self) -> Fields<'_> {
        Fields {
            time: &self.time,
            request_id: &self.request_id,
            account_id: &self.account_id,
            access_key_id: &self.access_key_id,
            source: &self.source,
            action: &self.action,
            key_id: &self.key_id,
            key_version_id: &self.key_version_id,
            result: &self.result,
            status: self.status,
            principal: &self.principal,
        }
    }
}

/// Appends the fields of a line between its `seq` and its `event` or `prev`:
/// `,"time":…,"status":N[,"principal":…]`, exactly as [`Stored`] serializes them. With
/// `bound`, each value is first bounded as [`AuditRecord::bounded`] bounds it (the same
/// bytes as bounding a record, then writing it), without building the record.
fn push_fields(out: &mut Vec<u8>, f: &Fields<'_>, bound: bool) -> Result<(), String> {
    use std::borrow::Cow;
    let authenticated = !f.account_id.is_empty();
    let echoed = if authenticated { 256 } else { 64 };
    fn bounded_to(s: &str, max: usize, bound: bool) -> Cow<'_, str> {
        if bound {
            clipped(s, max)
        } else {
            Cow::Borrowed(s)
        }
    }
    let lim = |s, max| bounded_to(s, max, bound);
    // The common case, checked in one pass: the value is within its bound and printable
    // ASCII without `"` or `\\`, so it is written as it is (bounding and escaping would both
    // leave it unchanged).
    let quick = |out: &mut Vec<u8>, s: &str, max: usize| {
        let plain = s.len() <= max
            && s.bytes().fold(true, |ok, b| {
                ok & (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\')
            });
        if plain {
            out.reserve(s.len() + 2);
            out.push(b'"');
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        }
        plain
    };
    let (action, action_max) = if !bound || authenticated {
        (f.action, 64)
    } else {
        (known_action(f.action).unwrap_or("unknown"), usize::MAX)
    };
    for (name, value, max) in [
        (&b",\"time\":"[..], f.time, 32),
        (b",\"request_id\":", f.request_id, 64),
        (b",\"account_id\":", f.account_id, 64),
        (b",\"access_key_id\":", f.access_key_id, 128.min(echoed)),
        (b",\"source\":", f.source, 64),
        (b",\"action\":", action, action_max),
        (b",\"key_id\":", f.key_id, echoed),
        (b",\"key_version_id\":", f.key_version_id, 64),
        (b",\"result\":", f.result, 64),
    ] {
        out.extend_from_slice(name);
        if !quick(out, value, if bound { max } else { usize::MAX }) {
            push_json_str(out, &lim(value, max))?;
        }
    }
    out.extend_from_slice(b",\"status\":");
    push_decimal_bytes(out, f.status.into());
    let principal = lim(f.principal, 256);
    if !principal.is_empty() {
        out.extend_from_slice(b",\"principal\":");
        push_json_str(out, &principal)?;
    }
    Ok(())
}

/// A line's fields, bounded, as [`push_fields`] writes them: what the request path queues
/// for the writer (one allocation of exactly its size; the writer adds `seq`, `prev` and
/// the mac). Rendered in a per-thread buffer kept from call to call.
fn fragment(f: &Fields<'_>) -> Result<Box<[u8]>, String> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let render = |buf: &mut Vec<u8>| {
        buf.clear();
        push_fields(buf, f, true).map(|()| Box::<[u8]>::from(&buf[..]))
    };
    SCRATCH
        .try_with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buf) => {
                if buf.capacity() == 0 {
                    buf.reserve(512);
                }
                render(&mut buf)
            }
            Err(_) => render(&mut Vec::with_capacity(512)),
        })
        .unwrap_or_else(|_| render(&mut Vec::with_capacity(512)))
}

/// What a line the trail writes about itself records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// `lost` lines could not be written (or were damaged) from `since`, for `reason`.
    Gap {
        since: String,
        lost: u64,
        reason: String,
    },
    /// Files up to and including line `through_seq` (mac `through_mac`) were removed.
    Retention {
        through_seq: u64,
        through_mac: String,
        files: u64,
        bytes: u64,
    },
    /// A root-key rotation: this line is chained under the audit key in force so far; every
    /// line after it under the key named `next_key` ([`Keystore::audit_key_id`]).
    /// `sealed_key` (base64) is the previous key sealed under one derived from the next, so
    /// that `verify` with today's root key can walk back through every handover.
    KeyHandover {
        next_key: String,
        sealed_key: String,
    },
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
    /// Absent in lines written before principals were recorded (and where nobody was
    /// authenticated), so those lines still verify.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    principal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<Event>,
    prev: String,
}

impl Stored {
    /// The line to write for this stored line (the tests' reference serialization).
    #[cfg(test)]
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
            principal: r.principal,
            event: None,
            prev,
        }
    }
}

/// A line to write, borrowed from its record, its event and the previous mac: the writer
/// serializes it without moving or cloning a field. Its fields, their order and their
/// omissions are exactly [`Stored`]'s, and [`Line::write_json`] writes the bytes a `Stored`
/// serializes to (tested in `written_bytes_are_the_stored_serialization`).
struct Line<'a> {
    seq: u64,
    fields: Fields<'a>,
    /// Left out when `None`.
    event: Option<&'a Event>,
    prev: &'a str,
}

impl<'a> Line<'a> {
    fn of(seq: u64, r: &'a AuditRecord, event: Option<&'a Event>, prev: &'a Mac) -> Self {
        Self {
            seq,
            fields: r.fields(),
            event,
            prev: prev.as_str(),
        }
    }
}

impl Line<'_> {
    /// Appends the line's JSON (without the mac) to `out`: the bytes serde_json writes for
    /// the same [`Stored`], field names written as the constants they are and values copied
    /// whole when they need no escaping (after [`AuditRecord::bounded`], all of them but
    /// the rare `"` and `\`). Written by hand because serde's derived serializer escapes
    /// every field name and every value byte by byte, and this runs once per API call; the
    /// event, rare, goes through serde.
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), String> {
        push_head(out, self.seq);
        push_fields(out, &self.fields, false)?;
        if let Some(event) = self.event {
            out.extend_from_slice(b",\"event\":");
            serde_json::to_writer(&mut *out, event).map_err(|e| e.to_string())?;
        }
        push_tail(out, self.prev)
    }
}

/// `{"seq":N`: how every line starts.
fn push_head(out: &mut Vec<u8>, seq: u64) {
    out.extend_from_slice(b"{\"seq\":");
    push_decimal_bytes(out, seq);
}

/// `,"prev":"…"}`: how every line ends, before its mac.
fn push_tail(out: &mut Vec<u8>, prev: &str) -> Result<(), String> {
    out.extend_from_slice(b",\"prev\":");
    push_json_str(out, prev)?;
    out.push(b'}');
    Ok(())
}

/// `n` in decimal, as serde_json writes an integer (with the same `itoa`).
fn push_decimal_bytes(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `s` as a JSON string, as serde_json writes it: it escapes `"`, `\` and the
/// control characters below 0x20, nothing else (not DEL, not non-ASCII). A string without
/// them (checked over every byte, no early exit, so on whole vectors) is copied as it is.
fn push_json_str(out: &mut Vec<u8>, s: &str) -> Result<(), String> {
    let plain = s
        .bytes()
        .fold(true, |ok, b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if plain {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(&mut *out, s).map_err(|e| e.to_string())
    }
}

/// The record of a line the trail writes about itself (its time is now).
fn event_record(event: &Event) -> AuditRecord {
    let action = match event {
        Event::Gap { .. } => GAP_ACTION,
        Event::Retention { .. } => RETENTION_ACTION,
        Event::KeyHandover { .. } => HANDOVER_ACTION,
    };
    AuditRecord {
        time: now_text(),
        action: action.into(),
        result: "OK".into(),
        ..AuditRecord::default()
    }
}

/// A line's mac as written: 64 lowercase hex digits, kept inline (the writer chains one per
/// line, so it is copied rather than allocated).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Mac([u8; 64]);

impl Mac {
    #[cfg(test)]
    const GENESIS: Mac = Mac([b'0'; 64]);

    /// A mac as read back (64 ASCII characters).
    fn parse(text: &str) -> Option<Mac> {
        <[u8; 64]>::try_from(text.as_bytes())
            .ok()
            .filter(|b| b.is_ascii())
            .map(Mac)
    }

    fn as_str(&self) -> &str {
        // ASCII by construction (hex digits, or checked by `parse`).
        std::str::from_utf8(&self.0).unwrap_or(GENESIS)
    }
}

impl std::fmt::Debug for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `peer` as `SocketAddr`'s `Display` writes it (`1.2.3.4:5`, `[::1]:5`): an IPv4 peer
/// written digit by digit, without the formatting machinery (a tenth of its cost, paid on
/// every API call); IPv6 through `Display`.
pub fn source_text(peer: &std::net::SocketAddr) -> String {
    match peer {
        std::net::SocketAddr::V4(v4) => SmallText::ipv4(v4).as_str().to_owned(),
        std::net::SocketAddr::V6(_) => peer.to_string(),
    }
}

/// A short ASCII text kept inline (an IPv4 peer, a time): no allocation.
#[derive(Clone, Copy)]
struct SmallText {
    buf: [u8; 32],
    len: usize,
}

impl SmallText {
    fn new() -> Self {
        Self {
            buf: [0; 32],
            len: 0,
        }
    }

    /// `v4` as `SocketAddrV4`'s `Display` writes it (at most 21 characters).
    fn ipv4(v4: &std::net::SocketAddrV4) -> Self {
        let mut t = Self::new();
        for (i, octet) in v4.ip().octets().into_iter().enumerate() {
            if i > 0 {
                t.push(b'.');
            }
            t.push_decimal(octet.into());
        }
        t.push(b':');
        t.push_decimal(v4.port().into());
        t
    }

    /// The first 32 bytes of `s` at most (the cached time: 20 ASCII characters).
    fn of(s: &str) -> Self {
        let mut t = Self::new();
        let n = s.len().min(t.buf.len());
        t.buf[..n].copy_from_slice(&s.as_bytes()[..n]);
        t.len = n;
        t
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn push_decimal(&mut self, n: u32) {
        for &d in itoa::Buffer::new().format(n).as_bytes() {
            self.push(d);
        }
    }

    fn as_str(&self) -> &str {
        // ASCII by construction, cut at a character boundary (see `of`) or empty.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// [`now_text`] inline: the text of the current second, formatted once per second on each
/// thread and copied from there.
fn now_time_text() -> SmallText {
    thread_local! {
        static LAST: std::cell::Cell<Option<(i64, SmallText)>> = const { std::cell::Cell::new(None) };
    }
    let now = crate::clock::system_now();
    LAST.try_with(|last| match last.get() {
        Some((at, text)) if at == now => text,
        _ => {
            let text = SmallText::of(&crate::timefmt::format_unix(now));
            last.set(Some((now, text)));
            text
        }
    })
    .unwrap_or_else(|_| SmallText::of(&crate::timefmt::format_unix(now)))
}

/// The current time as the trail records it (`yyyy-MM-ddTHH:mm:ssZ`): formatted once per
/// second on each thread and copied for every line of that second, since the formatting
/// costs about twenty times the copy.
pub fn now_text() -> String {
    crate::timefmt::format_unix_cached(crate::clock::system_now())
}

/// A line for the writer (its bounded fields, rendered by the request path: [`fragment`]),
/// and who waits for it on disk. The line is boxed so that the queue's 65,536 slots are a
/// few words each (about 2 MB) rather than a whole record each (~17 MB, all resident once
/// the ring has gone round; measured in docs/performance-notes.md).
type Queued = (Box<[u8]>, Option<oneshot::Sender<bool>>);

/// What the writer thread is sent.
enum Job {
    /// A line's bounded fields, rendered by the request path ([`fragment`]).
    Line(Box<[u8]>, Option<oneshot::Sender<bool>>),
    /// Write every line queued before this one (and fsync), answer, and end the thread: the
    /// end of a graceful stop ([`AuditLog::stop`]).
    Stop(oneshot::Sender<()>),
}

/// Whether state changes may proceed: closed while the trail cannot be written for sure.
/// Shared by the writer (which opens and closes it) and the request path (which asks it).
#[derive(Clone, Default)]
pub struct AuditGate(Arc<GateState>);

#[derive(Default)]
struct GateState {
    closed: AtomicBool,
    refused: AtomicU64,
    /// Lines handed to the writer and not yet taken by it (for the metrics).
    queued: AtomicU64,
    /// Lines never written since start: lost to a write failure, or dropped from a full
    /// queue (for the metrics).
    lost: AtomicU64,
}

impl AuditGate {
    /// `Ok` unless the request changes state and the trail cannot be written, then
    /// 503 `ServiceUnavailableTemporary` (and the request must not be applied).
    pub fn admit(&self, changes_state: bool) -> Result<(), KmsError> {
        if changes_state && self.0.closed.load(Ordering::Acquire) {
            self.0.refused.fetch_add(1, Ordering::Relaxed);
            return Err(KmsError::AuditUnavailable);
        }
        Ok(())
    }

    pub fn is_open(&self) -> bool {
        !self.0.closed.load(Ordering::Acquire)
    }

    /// Lines waiting for the writer thread.
    pub fn queued(&self) -> u64 {
        self.0.queued.load(Ordering::Relaxed)
    }

    /// Lines that could not be written (or were dropped from a full queue) since start.
    pub fn lost(&self) -> u64 {
        self.0.lost.load(Ordering::Relaxed)
    }

    fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
    }

    /// Opens the gate; returns how many state changes it refused while closed.
    fn open(&self) -> u64 {
        self.0.closed.store(false, Ordering::Release);
        self.0.refused.swap(0, Ordering::Relaxed)
    }
}

/// The handle the request path uses.
#[derive(Clone)]
pub struct AuditLog {
    tx: std::sync::mpsc::SyncSender<Job>,
    gate: AuditGate,
    /// The writer thread, woken by a line that waits for the disk (see [`Writer::run`]).
    writer: std::thread::Thread,
    /// The writer thread's handle, taken by [`AuditLog::stop`].
    joined: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl AuditLog {
    /// Opens (or creates) the trail, repairs a damaged tail (see the module doc), and starts
    /// the writer thread. Errors name the directory or file at fault and what to do.
    pub fn start(settings: Settings, keystore: Arc<Keystore>) -> Result<AuditLog, String> {
        let dir = settings.dir.clone();
        private_fs::create_dir(&dir).map_err(|e| {
            format!(
                "cannot use {} as the audit directory: {e}. Make it a directory this user can write, or choose another with --audit-dir (KMS_AUDIT_DIR, audit_dir in the config file)",
                dir.display()
            )
        })?;
        for f in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let _ = private_fs::narrow(&f.path(), private_fs::FILE_MODE);
        }
        // Best effort: a second server on one trail is not refused here (it never was), but
        // a rotation refuses to run while the lock is held.
        let lock = try_lock_writer(&dir).ok().flatten();
        let (seq, prev, repaired) = repair_tail(&dir, &keystore)?;
        let prev = Mac::parse(&prev).ok_or("the audit trail's last mac is not 64 characters")?;
        let gate = AuditGate::default();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(65_536);
        let mut writer = Writer {
            s: settings,
            keystore,
            seq,
            prev,
            buf: Vec::new(),
            file: None,
            gate: gate.clone(),
            closed_since: None,
            gap: repaired,
            _lock: lock,
        };
        writer.open();
        if writer.gap.is_some() {
            writer.write_records(Vec::new());
        }
        let handle = std::thread::Builder::new()
            .name("kms-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| format!("cannot start the audit writer thread: {e}"))?;
        Ok(AuditLog {
            tx,
            gate,
            writer: handle.thread().clone(),
            joined: Arc::new(std::sync::Mutex::new(Some(handle))),
        })
    }

    /// The gate state changes must pass before they are applied.
    pub fn gate(&self) -> AuditGate {
        self.gate.clone()
    }

    /// Records a call (bounded, see [`AuditRecord::bounded`]). With `durable`, returns once
    /// the line is on disk; `false` if it could not be written (the gap is recorded later).
    pub async fn record(&self, record: AuditRecord, durable: bool) -> bool {
        self.record_fields(&record.fields(), durable).await
    }

    /// [`Self::record`] for an API call, from borrowed fields: the time (now) and the
    /// source (`peer`) are set here, written without building a string (whatever `call`
    /// holds in those two is not used), and the line's fields are rendered here, bounded,
    /// into one allocation (the writer thread frees one block per line rather than a
    /// record's eleven strings allocated on other threads).
    pub async fn record_call(
        &self,
        call: Fields<'_>,
        peer: &std::net::SocketAddr,
        durable: bool,
    ) -> bool {
        let time = now_time_text();
        let v4;
        let v6;
        let source = match peer {
            std::net::SocketAddr::V4(a) => {
                v4 = SmallText::ipv4(a);
                v4.as_str()
            }
            std::net::SocketAddr::V6(_) => {
                v6 = peer.to_string();
                v6.as_str()
            }
        };
        let fields = Fields {
            time: time.as_str(),
            source,
            ..call
        };
        self.record_fields(&fields, durable).await
    }

    /// Records a line with these fields (bounded here, see [`AuditRecord::bounded`]).
    pub async fn record_fields(&self, fields: &Fields<'_>, durable: bool) -> bool {
        let state = &self.gate.0;
        state.queued.fetch_add(1, Ordering::Relaxed);
        let sent = match fragment(fields) {
            Ok(line) => self.send(line, durable).await,
            Err(e) => {
                tracing::error!(error = %e, "audit line not rendered");
                (false, false)
            }
        };
        if !sent.0 {
            // Never reached the writer (which counts the lines it loses itself).
            state.queued.fetch_sub(1, Ordering::Relaxed);
            state.lost.fetch_add(1, Ordering::Relaxed);
        }
        sent.1
    }

    /// (whether the line reached the writer's queue, what [`Self::record`] returns).
    async fn send(&self, line: Box<[u8]>, durable: bool) -> (bool, bool) {
        if durable {
            let (done, wait) = oneshot::channel();
            let sent = match self.tx.try_send(Job::Line(line, Some(done))) {
                Ok(()) => {
                    // The writer may be collecting a batch: this line must not wait for it.
                    self.writer.unpark();
                    true
                }
                Err(std::sync::mpsc::TrySendError::Full(job)) => {
                    // A full queue blocks: wait for room off the runtime's worker threads.
                    let tx = self.tx.clone();
                    let writer = self.writer.clone();
                    matches!(
                        tokio::task::spawn_blocking(move || {
                            let sent = tx.send(job).is_ok();
                            writer.unpark();
                            sent
                        })
                        .await,
                        Ok(true)
                    )
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => false,
            };
            let written = sent && wait.await.unwrap_or(false);
            if !written {
                tracing::error!("a state change was applied but its audit line could not be written (recorded as a gap)");
            }
            (sent, written)
        } else if self.tx.try_send(Job::Line(line, None)).is_err() {
            tracing::warn!("audit queue full: a read-only call was not recorded");
            (false, false)
        } else {
            (true, true)
        }
    }

    /// The end of a graceful stop: the writer writes every line recorded so far (fsynced),
    /// and its thread ends; waits for it at most `timeout`. `true` once the thread is
    /// joined. Lines recorded afterwards are not written (counted as lost in the metrics).
    /// Any clone may call it; a second call returns `true` at once.
    pub async fn stop(&self, timeout: Duration) -> bool {
        let Some(handle) = self.joined.lock().ok().and_then(|mut j| j.take()) else {
            return true;
        };
        let (done, wait) = oneshot::channel();
        let tx = self.tx.clone();
        let writer = self.writer.clone();
        // `send` blocks while the queue is full: off the runtime's worker threads.
        let sent = tokio::task::spawn_blocking(move || {
            let sent = tx.send(Job::Stop(done)).is_ok();
            writer.unpark();
            sent
        });
        let stopped = async {
            // Not sent: the thread has ended already (and dropped the receiver).
            if matches!(sent.await, Ok(true)) {
                let _ = wait.await;
            }
            tokio::task::spawn_blocking(move || handle.join().is_ok())
                .await
                .unwrap_or(false)
        };
        match tokio::time::timeout(timeout, stopped).await {
            Ok(joined) => joined,
            Err(_) => {
                tracing::error!(
                    queued = self.gate.queued(),
                    "the audit writer did not finish in {} s: the last lines may be lost",
                    timeout.as_secs()
                );
                false
            }
        }
    }
}

/// The open `audit.log` and its size.
struct Current {
    f: std::fs::File,
    size: u64,
}

struct Writer {
    s: Settings,
    keystore: Arc<Keystore>,
    /// The last line on disk: its sequence number and mac.
    seq: u64,
    prev: Mac,
    /// The batch's lines, serialized here: kept from batch to batch, so that the writer
    /// allocates nothing per line.
    buf: Vec<u8>,
    file: Option<Current>,
    gate: AuditGate,
    /// Since when the gate is closed, and why.
    closed_since: Option<(String, String)>,
    /// Lines lost and not yet recorded: (since, count, reason).
    gap: Option<(String, u64, String)>,
    /// Held while the writer lives, so that `kms admin rotate-root-key` sees a running server.
    _lock: Option<WriterLock>,
}

/// The advisory lock file of a trail's writer, in the audit directory.
pub const WRITER_LOCK: &str = "writer.lock";

/// An exclusive `flock` on `<audit dir>/writer.lock`, released when dropped (or when the
/// process dies).
pub struct WriterLock(#[allow(dead_code)] std::fs::File);

/// Takes the writer lock of the trail in `dir`: `Ok(None)` when another process holds it (a
/// running server).
pub fn try_lock_writer(dir: &Path) -> Result<Option<WriterLock>, String> {
    use std::os::fd::AsRawFd;
    let path = dir.join(WRITER_LOCK);
    let f = private_fs::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on a file descriptor we own; no memory is passed.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(Some(WriterLock(f)));
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        Ok(None)
    } else {
        Err(format!("cannot lock {}: {e}", path.display()))
    }
}

/// The line for `line` (without its newline) and its mac.
#[cfg(test)]
fn seal_line(key: &hmac::Key, line: &Line<'_>) -> Result<(String, Mac), String> {
    let mut out = Vec::with_capacity(512);
    let mac = seal_into(key, line, &mut out)?;
    let text = String::from_utf8(out).map_err(|e| e.to_string())?;
    Ok((text, mac))
}

/// Appends the line for `line` (without its newline) to `out`; returns its mac. The JSON is
/// serialized straight into `out` (the writer's reused batch buffer), MACed there, and its
/// closing brace gives way to the `mac` field: no allocation per line.
fn seal_into(key: &hmac::Key, line: &Line<'_>, out: &mut Vec<u8>) -> Result<Mac, String> {
    let start = out.len();
    if let Err(e) = line.write_json(out) {
        out.truncate(start);
        return Err(e);
    }
    seal_written(key, line.prev, start, out)
}

/// [`seal_into`] for a line whose fields the request path rendered already ([`fragment`]):
/// `{"seq":N` ‖ fragment ‖ `,"prev":"…"}`, the same bytes as the [`Line`] of the same
/// bounded record (tested in `fragments_seal_to_the_bounded_records_lines`).
fn seal_fragment(
    key: &hmac::Key,
    seq: u64,
    fragment: &[u8],
    prev: &Mac,
    out: &mut Vec<u8>,
) -> Result<Mac, String> {
    let start = out.len();
    push_head(out, seq);
    out.extend_from_slice(fragment);
    if let Err(e) = push_tail(out, prev.as_str()) {
        out.truncate(start);
        return Err(e);
    }
    seal_written(key, prev.as_str(), start, out)
}

/// MACs the line written in `out` from `start` (chained to `prev`) and adds its mac field.
fn seal_written(
    key: &hmac::Key,
    prev: &str,
    start: usize,
    out: &mut Vec<u8>,
) -> Result<Mac, String> {
    if out.last() != Some(&b'}') {
        out.truncate(start);
        return Err("an audit line is not a JSON object".into());
    }
    let mac = mac_bytes(key, prev.as_bytes(), &out[start..]);
    out.pop();
    out.extend_from_slice(b",\"mac\":\"");
    out.extend_from_slice(&mac.0);
    out.extend_from_slice(b"\"}");
    Ok(mac)
}

/// `HMAC-SHA256(key, prev ‖ "\n" ‖ body)` in hex. (The key's prepared inner and outer
/// states are copied by `Context::with_key`, not derived again.)
fn mac_bytes(key: &hmac::Key, prev: &[u8], body: &[u8]) -> Mac {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(prev);
    ctx.update(b"\n");
    ctx.update(body);
    let tag = ctx.sign();
    let mut text = [b'0'; 64];
    // Cannot fail: 32 bytes always fill 64 hex digits.
    let _ = hex::encode_to_slice(tag.as_ref(), &mut text);
    Mac(text)
}

fn mac_of(key: &hmac::Key, prev: &str, body: &str) -> String {
    mac_bytes(key, prev.as_bytes(), body.as_bytes())
        .as_str()
        .to_owned()
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

/// A line that parses and whose mac matches its own content: (seq, mac).
fn sound_line(key: &hmac::Key, line: &[u8]) -> Option<(u64, String)> {
    let line = std::str::from_utf8(line).ok()?;
    let (body, mac) = split_line(line)?;
    let stored: Stored = serde_json::from_str(&body).ok()?;
    (mac_of(key, &stored.prev, &body) == mac).then_some((stored.seq, mac))
}

/// A line the chain can continue from with `keystore`: one sound under its audit key, or
/// the handover line of a root-key rotation to that key (sound under the previous key,
/// which it carries sealed). (seq, mac).
fn link_line(keystore: &Keystore, line: &[u8]) -> Option<(u64, String)> {
    if let Some(l) = sound_line(keystore.audit_key(), line) {
        return Some(l);
    }
    let text = std::str::from_utf8(line).ok()?;
    let (body, mac) = split_line(text)?;
    let stored: Stored = serde_json::from_str(&body).ok()?;
    let Some(Event::KeyHandover {
        next_key,
        sealed_key,
    }) = &stored.event
    else {
        return None;
    };
    if *next_key != keystore.audit_key_id() {
        return None;
    }
    let previous = previous_key(keystore.audit_key_bytes(), sealed_key)?;
    let previous = hmac::Key::new(hmac::HMAC_SHA256, &previous);
    (mac_of(&previous, &stored.prev, &body) == mac).then_some((stored.seq, mac))
}

/// The audit key before a handover, from the handover's `sealed_key` and the raw key after.
fn previous_key(next_raw: &[u8], sealed_key: &str) -> Option<crate::keystore::Secret> {
    use base64::Engine;
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(sealed_key)
        .ok()?;
    crate::keystore::open_handover(next_raw, &sealed)
}

/// The files of the trail, oldest first.
pub fn files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    Ok(rotated(dir)?
        .into_iter()
        .map(|(_, p)| p)
        .chain(Some(dir.join(CURRENT)).filter(|c| c.exists()))
        .collect())
}

/// The rotated files `audit-<last seq>.log`, oldest first.
fn rotated(dir: &Path) -> Result<Vec<(u64, PathBuf)>, String> {
    let mut out: Vec<(u64, PathBuf)> = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(format!(
                "cannot read the audit directory {}: {e}",
                dir.display()
            ))
        }
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(n) = name
            .strip_prefix("audit-")
            .and_then(|n| n.strip_suffix(".log"))
        {
            if let Ok(n) = n.parse() {
                out.push((n, e.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The end of the file at `path` holding at least its whole last line: the last 64 KiB
/// (lines are under 1 KiB), or more, doubling, until a line break comes before that line
/// (or the whole file). Retention reads a 64 MiB rotated file's last line on every rotation:
/// reading it whole put 64 MiB in memory for a moment each time.
fn read_tail(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut window: u64 = 64 * 1024;
    loop {
        let from = len.saturating_sub(window);
        let mut bytes = vec![0u8; usize::try_from(len - from).unwrap_or(0)];
        file.read_exact_at(&mut bytes, from)?;
        if from == 0 {
            return Ok(bytes);
        }
        // A line break before the last line's start: that line is whole in the window.
        let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        if body.contains(&b'\n') {
            return Ok(bytes);
        }
        window = window.saturating_mul(2);
    }
}

/// The last line of a file, if any.
fn last_line(bytes: &[u8]) -> Option<&[u8]> {
    let trimmed = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if trimmed.is_empty() {
        return None;
    }
    let start = trimmed
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    Some(&trimmed[start..])
}

/// Finds where the chain continues: the last sound line of the trail. A damaged end of
/// `audit.log` (lines written in part, or not audit lines) is moved to
/// `audit.log.damaged-<time>` and cut off; the gap to record is returned with the link.
#[allow(clippy::type_complexity)]
fn repair_tail(
    dir: &Path,
    keystore: &Keystore,
) -> Result<(u64, String, Option<(String, u64, String)>), String> {
    let current = dir.join(CURRENT);
    let mut gap = None;
    if current.exists() {
        let read_err = |e: std::io::Error| format!("cannot read {}: {e}", current.display());
        let mut bytes = Vec::new();
        std::fs::File::open(&current)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(read_err)?;
        // The end of the last sound line, scanning back from the end.
        let mut good = bytes.len();
        let mut link = None;
        while good > 0 {
            let before = &bytes[..good];
            let body = before.strip_suffix(b"\n").unwrap_or(before);
            let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if let Some(l) = link_line(keystore, &body[start..]) {
                link = Some(l);
                break;
            }
            good = start;
        }
        if link.is_none() {
            // Whole audit lines, none chained under this root key: the trail of a root key
            // rotated away without handing it over (another node ran the rotation). Setting
            // it all aside would cut the chain; refuse and say how to hand it over.
            let foreign = bytes
                .split(|b| *b == b'\n')
                .rfind(|l| !l.is_empty())
                .and_then(|l| std::str::from_utf8(l).ok())
                .and_then(split_line)
                .is_some_and(|(body, _)| serde_json::from_str::<Stored>(&body).is_ok());
            if foreign {
                return Err(format!(
                    "{}: no line is chained under this root key's audit key: the root key was rotated without handing this trail over. Put the previous root key back in place, the new one at root.key.next beside it, and run `kms admin rotate-root-key --data-dir …` (it finds the database rotated and only hands this trail over)",
                    current.display()
                ));
            }
        }
        let complete = link.is_some() && bytes[..good].ends_with(b"\n");
        if good < bytes.len() || (link.is_some() && !complete) {
            let mut f = private_fs::options()
                .read(true)
                .write(true)
                .open(&current)
                .map_err(read_err)?;
            let repair_err = |e: std::io::Error| {
                format!(
                    "{}: cannot set aside its damaged end: {e}. Free some space (or fix the permissions) in {} and start again",
                    current.display(),
                    dir.display()
                )
            };
            if good < bytes.len() {
                let damaged = &bytes[good..];
                let name = format!("{CURRENT}.damaged-{}", now_text().replace([':', '-'], ""));
                let aside = dir.join(&name);
                let mut out = private_fs::options()
                    .write(true)
                    .create_new(true)
                    .open(&aside)
                    .map_err(repair_err)?;
                out.write_all(damaged)
                    .and_then(|_| out.sync_all())
                    .map_err(repair_err)?;
                f.set_len(good as u64).map_err(repair_err)?;
                let pieces = damaged
                    .split(|b| *b == b'\n')
                    .filter(|p| !p.is_empty())
                    .count() as u64;
                tracing::warn!(file = %aside.display(), bytes = damaged.len(), "the end of the audit trail was damaged (a write cut short?): kept aside, the chain continues with a gap line");
                gap = Some((
                    now_text(),
                    pieces.max(1),
                    format!(
                        "the end of {CURRENT} ({} bytes) was not sound audit lines at start-up (a write cut short, e.g. by a full disk); it was kept in {name}",
                        damaged.len()
                    ),
                ));
            }
            if link.is_some() && !complete {
                f.seek(std::io::SeekFrom::End(0))
                    .and_then(|_| f.write_all(b"\n"))
                    .map_err(repair_err)?;
            }
            f.sync_all().map_err(repair_err)?;
        }
        if let Some((seq, mac)) = link {
            return Ok((seq, mac, gap));
        }
    }
    // The current file holds no line: continue from the newest rotated file.
    for (_, f) in rotated(dir)?.iter().rev() {
        let bytes = std::fs::read(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        if let Some(line) = last_line(&bytes) {
            let (seq, mac) = link_line(keystore, line).ok_or_else(|| {
                format!(
                    "{}: its last line is not a sound audit line (changed, or written with another root key). Run `kms admin audit verify`, then move the file out of {} to start the server",
                    f.display(),
                    dir.display()
                )
            })?;
            return Ok((seq, mac, gap));
        }
    }
    Ok((0, GENESIS.to_string(), gap))
}

/// Allocates `len` bytes past `offset` without changing the file's size.
#[cfg(target_os = "linux")]
fn reserve(f: &std::fs::File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return Ok(());
    }
    let (Ok(off), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    };
    loop {
        // SAFETY: fallocate on a file descriptor we own; no memory is passed.
        let r = unsafe { libc::fallocate(f.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, off, len) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // Filesystems without fallocate: no reserve, the gate closes on a failed write.
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => return Ok(()),
            _ => return Err(e),
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn reserve(_f: &std::fs::File, _offset: u64, _len: u64) -> std::io::Result<()> {
    Ok(())
}

impl Writer {
    /// Opens `audit.log` (0600) for appending and renews the reserve; on failure the gate
    /// closes.
    fn open(&mut self) {
        if self.file.is_none() {
            let path = self.s.dir.join(CURRENT);
            match private_fs::options()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|f| Ok((f.metadata()?.len(), f)))
            {
                Ok((size, f)) => self.file = Some(Current { f, size }),
                Err(e) => {
                    self.close(format!("cannot open {}: {e}", path.display()));
                    return;
                }
            }
        }
        self.renew();
    }

    /// Renews the reserve past the end of the file: opens the gate if it can, closes it if not.
    /// A closed gate opens again only with room for twice the reserve: on a full disk, the
    /// blocks a failed write gave back when it was cut off would otherwise reopen the gate
    /// for a moment (and let one state change through) before the next line closes it again.
    fn renew(&mut self) {
        let Some(cur) = &self.file else { return };
        let want = if self.closed_since.is_some() {
            self.s.reserve_bytes.saturating_mul(2)
        } else {
            self.s.reserve_bytes
        };
        match reserve(&cur.f, cur.size, want) {
            Ok(()) => {
                if let Some((since, reason)) = self.closed_since.take() {
                    let refused = self.gate.open();
                    tracing::warn!(%since, %reason, refused, "the audit trail can be written again: state changes are accepted");
                }
            }
            Err(e) => self.close(format!(
                "cannot keep {} bytes free for {}: {e}",
                self.s.reserve_bytes,
                self.s.dir.join(CURRENT).display()
            )),
        }
    }

    fn close(&mut self, reason: String) {
        if self.closed_since.is_none() {
            tracing::error!(%reason, "the audit trail cannot be written for sure: state changes are refused (503) until it can");
            self.gate.close();
            self.closed_since = Some((now_text(), reason));
        }
    }

    fn lose(&mut self, n: u64, reason: &str) {
        if n == 0 {
            return;
        }
        self.gate.0.lost.fetch_add(n, Ordering::Relaxed);
        match &mut self.gap {
            Some((_, lost, _)) => *lost += n,
            None => self.gap = Some((now_text(), n, reason.to_string())),
        }
    }

    /// The writer thread: collects lines for up to 20 ms (or at once when a state change is
    /// waiting for its line), writes them, fsyncs when a state change waits. While the gate
    /// is closed it checks every second whether the trail can be written again.
    fn run(mut self, rx: std::sync::mpsc::Receiver<Job>) {
        use std::sync::mpsc::RecvTimeoutError;
        let mut batch: Vec<Queued> = Vec::with_capacity(1024);
        let mut stop = None;
        loop {
            match rx.recv_timeout(RETRY) {
                Ok(Job::Line(record, ack)) => batch.push((record, ack)),
                Ok(Job::Stop(done)) => stop = Some(done),
                Err(RecvTimeoutError::Timeout) => {
                    if self.closed_since.is_some() || self.gap.is_some() {
                        self.open();
                        self.write_records(Vec::new());
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    if self.gap.is_some() {
                        self.open();
                        self.write_records(Vec::new());
                    }
                    return;
                }
            }
            // Collect a batch for up to 20 ms, or until a line waits for the disk. The queue
            // is drained every millisecond rather than waited on: a receiver blocked on the
            // channel is woken by every line sent (a futex wake and a context switch per
            // request under load); a parked writer is woken only by the lines that wait
            // (their senders unpark it) and by its own timer.
            let deadline = Instant::now() + Duration::from_millis(20);
            let mut waits = stop.is_some() || batch.iter().any(|(_, ack)| ack.is_some());
            while stop.is_none() {
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(Job::Line(record, ack)) => {
                            waits |= ack.is_some();
                            batch.push((record, ack));
                        }
                        // Nothing after it is written: stop collecting.
                        Ok(Job::Stop(done)) => {
                            stop = Some(done);
                            waits = true;
                            break;
                        }
                        Err(std::sync::mpsc::TryRecvError::Empty) => break,
                        // Every sender is gone (the server is stopping): write what there is
                        // now, before the process exits, rather than at the deadline.
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                            waits = true;
                            break;
                        }
                    }
                }
                let now = Instant::now();
                if batch.len() >= MAX_BATCH || now >= deadline || waits {
                    break;
                }
                std::thread::park_timeout(POLL.min(deadline - now));
            }
            if self.closed_since.is_some() || self.file.is_none() {
                self.open();
            }
            self.write_records(std::mem::take(&mut batch));
            if let Some(done) = stop.take() {
                self.finish();
                // Lines sent after the stop are not written: count them lost.
                let mut late = 0;
                while let Ok(job) = rx.try_recv() {
                    if let Job::Line(_, ack) = job {
                        late += 1;
                        if let Some(a) = ack {
                            let _ = a.send(false);
                        }
                    }
                }
                self.gate.0.queued.fetch_sub(late, Ordering::Relaxed);
                self.gate.0.lost.fetch_add(late, Ordering::Relaxed);
                let _ = done.send(());
                return;
            }
        }
    }

    /// Before the thread ends on [`Job::Stop`]: a gap still to record is written, and the
    /// file is synced (lines that no state change waited for included).
    fn finish(&mut self) {
        if self.gap.is_some() {
            self.open();
            self.write_records(Vec::new());
        }
        if let Some(cur) = &self.file {
            if let Err(e) = cur.f.sync_data() {
                tracing::error!(error = %e, "the audit trail could not be synced at stop");
            }
        }
    }

    /// Writes `batch` (after a gap line if lines were lost), rotating as soon as the file
    /// reaches its limit, then answers the waiting state changes.
    fn write_records(&mut self, batch: Vec<Queued>) {
        self.gate
            .0
            .queued
            .fetch_sub(batch.len() as u64, Ordering::Relaxed);
        if self.gap.is_some() && self.closed_since.is_some() {
            // Lines were lost and the reserve is not back: count these too, so that the
            // episode ends in one gap line rather than lines and gaps interleaved.
            let reason = self
                .closed_since
                .as_ref()
                .map(|c| c.1.clone())
                .unwrap_or_default();
            self.lose(batch.len() as u64, &reason);
            for (_, ack) in batch {
                if let Some(a) = ack {
                    let _ = a.send(false);
                }
            }
            return;
        }
        let mut acks: Vec<(oneshot::Sender<bool>, bool)> = Vec::new();
        let mut chunk = std::mem::take(&mut self.buf);
        chunk.clear();
        let mut chunk_acks: Vec<oneshot::Sender<bool>> = Vec::new();
        let mut chunk_records = 0u64;
        let mut chunk_gap = false;
        let (mut seq, mut prev) = (self.seq, self.prev);
        let mut failed: Option<String> = None;
        let mut records = batch.into_iter().peekable();
        loop {
            if failed.is_none() && chunk.is_empty() {
                if let Some((since, lost, reason)) = self.gap.clone() {
                    let event = Event::Gap {
                        since,
                        lost,
                        reason,
                    };
                    let record = event_record(&event);
                    let line = Line::of(seq + 1, &record, Some(&event), &prev);
                    if let Ok(mac) = seal_into(self.keystore.audit_key(), &line, &mut chunk) {
                        chunk.push(b'\n');
                        (seq, prev) = (seq + 1, mac);
                        chunk_gap = true;
                    }
                }
            }
            let next = records.next();
            let last = next.is_none();
            if let Some((record, ack)) = next {
                if let Some(reason) = &failed {
                    let reason = reason.clone();
                    self.lose(1, &reason);
                    if let Some(a) = ack {
                        acks.push((a, false));
                    }
                    continue;
                }
                match seal_fragment(
                    self.keystore.audit_key(),
                    seq + 1,
                    &record,
                    &prev,
                    &mut chunk,
                ) {
                    Ok(mac) => {
                        chunk.push(b'\n');
                        (seq, prev) = (seq + 1, mac);
                        chunk_records += 1;
                    }
                    Err(e) => tracing::error!(error = %e, "audit line not sealed"),
                }
                if let Some(a) = ack {
                    chunk_acks.push(a);
                }
            }
            let size = self.file.as_ref().map_or(0, |c| c.size);
            let full = self.s.max_bytes > 0 && size + chunk.len() as u64 >= self.s.max_bytes;
            if chunk.is_empty() || (!last && !full) {
                if last {
                    break;
                }
                continue;
            }
            // Flush the chunk: at the end of the batch, or as soon as the file is full.
            let durable = !chunk_acks.is_empty() || full || chunk_gap;
            match self.append(&chunk, durable) {
                Ok(()) => {
                    (self.seq, self.prev) = (seq, prev);
                    if chunk_gap {
                        self.gap = None;
                    }
                    acks.extend(chunk_acks.drain(..).map(|a| (a, true)));
                    if full {
                        self.rotate();
                        (seq, prev) = (self.seq, self.prev);
                    }
                }
                Err(e) => {
                    (seq, prev) = (self.seq, self.prev);
                    self.lose(chunk_records, &e);
                    acks.extend(chunk_acks.drain(..).map(|a| (a, false)));
                    self.close(e.clone());
                    failed = Some(e);
                }
            }
            chunk.clear();
            chunk_records = 0;
            chunk_gap = false;
            if last {
                break;
            }
        }
        // Keep the buffer for the next batch, unless a rotation or a huge batch made it big.
        if chunk.capacity() <= 1 << 20 {
            self.buf = chunk;
        }
        if failed.is_none() && self.file.is_some() {
            self.renew();
        }
        for (a, ok) in acks {
            let _ = a.send(ok);
        }
    }

    /// Appends `lines`; on failure cuts the file back so that no line is left in part.
    fn append(&mut self, lines: &[u8], durable: bool) -> Result<(), String> {
        let path = self.s.dir.join(CURRENT);
        let Some(cur) = self.file.as_mut() else {
            return Err(format!("{} is not open", path.display()));
        };
        let written =
            cur.f
                .write_all(lines)
                .and_then(|_| if durable { cur.f.sync_data() } else { Ok(()) });
        match written {
            Ok(()) => {
                cur.size += lines.len() as u64;
                Ok(())
            }
            Err(e) => {
                if let Err(cut) = cur.f.set_len(cur.size) {
                    tracing::error!(error = %cut, "cannot cut a partly written audit batch back; the next start sets it aside");
                    self.file = None;
                }
                Err(format!("cannot write {}: {e}", path.display()))
            }
        }
    }

    /// `audit.log` becomes `audit-<last seq>.log` (its reserve released first); old files
    /// beyond the retention limits are removed.
    fn rotate(&mut self) {
        let Some(cur) = self.file.take() else { return };
        let current = self.s.dir.join(CURRENT);
        let rotated = self.s.dir.join(format!("audit-{:012}.log", self.seq));
        let done = cur
            .f
            .set_len(cur.size)
            .and_then(|_| cur.f.sync_all())
            .and_then(|_| std::fs::rename(&current, &rotated));
        drop(cur);
        if let Err(e) = done {
            tracing::error!(error = %e, file = %current.display(), "audit rotation failed");
        }
        self.open();
        self.apply_retention();
    }

    /// Removes the oldest rotated files while more than `retain_files` are kept or all files
    /// hold more than `retain_bytes`, after a chained line naming the last line removed.
    fn apply_retention(&mut self) {
        let (files, bytes) = (self.s.retain_files, self.s.retain_bytes);
        if files == 0 && bytes == 0 {
            return;
        }
        let Ok(rotated) = rotated(&self.s.dir) else {
            return;
        };
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let sizes: Vec<u64> = rotated.iter().map(|(_, p)| size(p)).collect();
        let mut total: u64 = sizes.iter().sum::<u64>() + self.file.as_ref().map_or(0, |c| c.size);
        let mut remove = 0;
        while remove < rotated.len()
            && ((files > 0 && (rotated.len() - remove) as u64 > files)
                || (bytes > 0 && total > bytes))
        {
            total -= sizes[remove];
            remove += 1;
        }
        if remove == 0 {
            return;
        }
        let (through_seq, through_path) = &rotated[remove - 1];
        let Some(through_mac) = read_tail(through_path)
            .ok()
            .and_then(|b| {
                // A file from before a root-key rotation ends under an earlier key: its
                // link is taken as written (`verify` checks the whole chain).
                last_line(&b).and_then(|l| {
                    link_line(&self.keystore, l).or_else(|| {
                        let (body, mac) = split_line(std::str::from_utf8(l).ok()?)?;
                        let stored: Stored = serde_json::from_str(&body).ok()?;
                        Some((stored.seq, mac))
                    })
                })
            })
            .filter(|(s, _)| s == through_seq)
            .map(|(_, mac)| mac)
        else {
            tracing::error!(file = %through_path.display(), "audit retention skipped: the file's last line is not sound");
            return;
        };
        let event = Event::Retention {
            through_seq: *through_seq,
            through_mac,
            files: remove as u64,
            bytes: sizes[..remove].iter().sum(),
        };
        let record = event_record(&event);
        let mut line = Vec::with_capacity(512);
        let Ok(mac) = seal_into(
            self.keystore.audit_key(),
            &Line::of(self.seq + 1, &record, Some(&event), &self.prev),
            &mut line,
        ) else {
            return;
        };
        line.push(b'\n');
        if self.append(&line, true).is_err() {
            return;
        }
        (self.seq, self.prev) = (self.seq + 1, mac);
        for (_, p) in &rotated[..remove] {
            if let Err(e) = std::fs::remove_file(p) {
                tracing::error!(error = %e, file = %p.display(), "audit retention could not remove a file");
            }
        }
    }
}

/// A gap the trail records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapReport {
    pub seq: u64,
    pub time: String,
    pub since: String,
    pub lost: u64,
    pub reason: String,
}

/// The outcome of a chain check.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub files: usize,
    pub lines: u64,
    /// The first line's sequence number (above 1 when retention removed older files).
    pub first_seq: u64,
    pub gaps: Vec<GapReport>,
    /// Root-key rotations the trail hands its chain over through.
    pub handovers: usize,
    /// The last handover names a root key not yet in place (an unfinished rotation).
    pub pending_handover: bool,
}

/// Checks every line of every file of the trail, in order. A trail whose oldest files were
/// removed by retention starts after line 1; a chained retention line must then name exactly
/// the line before its first.
pub fn verify(dir: &Path, keystore: &Keystore) -> Result<Verified, String> {
    let files = files(dir)?;
    let (keys, pending) = chain_keys(&files, keystore)?;
    let mut segment = 0usize;
    let mut prev: Option<String> = None;
    let mut expected_seq = 0u64;
    let mut first_seq = 1u64;
    let mut start_explained = true;
    let mut start_place = String::new();
    let mut start_prev = String::new();
    let mut gaps = Vec::new();
    let mut lines = 0u64;
    let mut handovers = 0usize;
    for f in &files {
        let file =
            std::fs::File::open(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        for (n, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
            let line = line.map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            let place = format!("{} line {}", f.display(), n + 1);
            let line =
                String::from_utf8(line).map_err(|_| format!("{place}: not an audit line"))?;
            let (body, mac) =
                split_line(&line).ok_or_else(|| format!("{place}: not an audit line"))?;
            let stored: Stored =
                serde_json::from_str(&body).map_err(|_| format!("{place}: not an audit line"))?;
            let want_prev = match &prev {
                Some(p) => p.clone(),
                None => {
                    // The first line of the trail.
                    if stored.seq != 1 || stored.prev != GENESIS {
                        first_seq = stored.seq;
                        start_explained = false;
                        start_place = place.clone();
                        start_prev = stored.prev.clone();
                    }
                    expected_seq = stored.seq;
                    stored.prev.clone()
                }
            };
            if stored.prev != want_prev {
                return Err(format!("{place}: the chain is broken (a line before it was removed, reordered or changed)"));
            }
            if stored.seq != expected_seq {
                return Err(format!(
                    "{place}: sequence {} where {expected_seq} was expected",
                    stored.seq
                ));
            }
            let key = keys
                .get(segment)
                .ok_or_else(|| format!("{place}: no audit key"))?;
            if mac_of(key, &want_prev, &body) != mac {
                return Err(format!(
                    "{place}: the line was changed (its mac does not match)"
                ));
            }
            if matches!(stored.event, Some(Event::KeyHandover { .. })) {
                handovers += 1;
                // Lines after a pending handover (its root key not yet in root.key) are not
                // expected: the server does not start half-way through a rotation.
                if !(pending && handovers == keys.len()) {
                    segment += 1;
                }
            }
            match stored.event {
                Some(Event::Gap {
                    since,
                    lost,
                    reason,
                }) => gaps.push(GapReport {
                    seq: stored.seq,
                    time: stored.time,
                    since,
                    lost,
                    reason,
                }),
                Some(Event::Retention {
                    through_seq,
                    through_mac,
                    ..
                }) if through_seq + 1 == first_seq && through_mac == start_prev => {
                    start_explained = true;
                }
                _ => {}
            }
            prev = Some(mac);
            expected_seq += 1;
            lines += 1;
        }
    }
    if !start_explained {
        return Err(format!(
            "{start_place}: the trail starts at line {first_seq}, and no retention line accounts for the lines before it (files were removed or the first one was changed)"
        ));
    }
    Ok(Verified {
        files: files.len(),
        lines,
        first_seq,
        gaps,
        handovers,
        pending_handover: pending,
    })
}

/// The audit keys of the trail's segments, oldest first: the root key's own last, and before
/// it each key a handover line names, opened from the handover after it (see
/// [`Event::KeyHandover`]). `pending`: the last handover names a key that is not yet this
/// root key's (a rotation stopped before retiring the old root key); the current key then
/// chains every line, the handover included.
fn chain_keys(files: &[PathBuf], keystore: &Keystore) -> Result<(Vec<hmac::Key>, bool), String> {
    let mut handovers = Vec::new();
    let mut last_is_handover = false;
    for f in files {
        let file =
            std::fs::File::open(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        for line in std::io::BufReader::new(file).split(b'\n') {
            let line = line.map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            let event = std::str::from_utf8(&line)
                .ok()
                .and_then(split_line)
                .and_then(|(body, _)| serde_json::from_str::<Stored>(&body).ok())
                .and_then(|s| s.event);
            last_is_handover = false;
            if let Some(Event::KeyHandover {
                next_key,
                sealed_key,
            }) = event
            {
                handovers.push((next_key, sealed_key));
                last_is_handover = true;
            }
        }
    }
    let mut raw = zeroize::Zeroizing::new(keystore.audit_key_bytes().to_vec());
    let mut keys = vec![hmac::Key::new(hmac::HMAC_SHA256, &raw)];
    let mut pending = false;
    for (i, (next_key, sealed_key)) in handovers.iter().enumerate().rev() {
        let id = crate::keystore::audit_key_id(&hmac::Key::new(hmac::HMAC_SHA256, &raw));
        if *next_key != id {
            if i + 1 == handovers.len() && last_is_handover {
                pending = true;
                continue;
            }
            return Err(format!(
                "the audit trail hands its chain over to audit key {next_key}, which is not this root key's ({id}) nor one a later handover names: verify with the root key of this trail"
            ));
        }
        let previous = previous_key(&raw, sealed_key).ok_or_else(|| {
            format!("the handover to audit key {next_key} carries a previous key that does not open (the line was changed)")
        })?;
        raw = zeroize::Zeroizing::new(previous.to_vec());
        keys.push(hmac::Key::new(hmac::HMAC_SHA256, &raw));
    }
    keys.reverse();
    Ok((keys, pending))
}

/// What [`hand_over`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// The handover line is written (and on disk).
    Written,
    /// The trail already continues under the new key (a resumed rotation).
    AlreadyDone,
}

/// The audit side of a root-key rotation: appends (durably) a chained `AuditKeyHandover`
/// line under `old`'s audit key naming `new`'s, carrying `old`'s key sealed for `new` (see
/// [`Event::KeyHandover`]). A damaged end is set aside first (with its gap line), as at
/// start. Idempotent: when the trail's last line already links under `new`, nothing is
/// written. No server may be writing the trail meanwhile.
pub fn hand_over(dir: &Path, old: &Keystore, new: &Keystore) -> Result<Handover, String> {
    use base64::Engine;
    private_fs::create_dir(dir)
        .map_err(|e| format!("cannot use {} as the audit directory: {e}", dir.display()))?;
    if let Some(last) = last_line_of_trail(dir)? {
        if link_line(new, &last).is_some() {
            return Ok(Handover::AlreadyDone);
        }
    }
    let (mut seq, prev, gap) = repair_tail(dir, old)?;
    let mut prev = Mac::parse(&prev).ok_or("the audit trail's last mac is not 64 characters")?;
    let mut lines = Vec::new();
    if let Some((since, lost, reason)) = gap {
        let event = Event::Gap {
            since,
            lost,
            reason,
        };
        let record = event_record(&event);
        let mac = seal_into(
            old.audit_key(),
            &Line::of(seq + 1, &record, Some(&event), &prev),
            &mut lines,
        )?;
        lines.push(b'\n');
        (seq, prev) = (seq + 1, mac);
    }
    let sealed = new
        .seal_for_handover(old.audit_key_bytes())
        .map_err(|e| e.to_string())?;
    let event = Event::KeyHandover {
        next_key: new.audit_key_id(),
        sealed_key: base64::engine::general_purpose::STANDARD.encode(sealed),
    };
    let record = event_record(&event);
    seal_into(
        old.audit_key(),
        &Line::of(seq + 1, &record, Some(&event), &prev),
        &mut lines,
    )?;
    lines.push(b'\n');
    let path = dir.join(CURRENT);
    let mut f = private_fs::options()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let size = f
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if let Err(e) = f.write_all(&lines).and_then(|_| f.sync_all()) {
        // Leave no line in part: the next attempt starts from a sound end.
        let _ = f.set_len(size).and_then(|_| f.sync_all());
        return Err(format!(
            "cannot write the audit key handover to {}: {e}. Free some space there and run the command again",
            path.display()
        ));
    }
    Ok(Handover::Written)
}

/// The last line of the trail (of `audit.log`, else of the newest rotated file).
fn last_line_of_trail(dir: &Path) -> Result<Option<Vec<u8>>, String> {
    for f in files(dir)?.iter().rev() {
        let bytes = read_tail(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        if let Some(line) = last_line(&bytes) {
            return Ok(Some(line.to_vec()));
        }
    }
    Ok(None)
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
        let file =
            std::fs::File::open(&f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        for line in std::io::BufReader::new(file).split(b'\n') {
            let line = line.map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            let Ok(line) = String::from_utf8(line) else {
                continue;
            };
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

    #[test]
    fn the_last_line_is_read_from_the_end_of_a_file_only() {
        let dir = std::env::temp_dir().join(format!("kms-audit-tail-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.log");
        // Many lines: the last one comes from a 64 KiB window.
        let mut text = String::new();
        for i in 0..50_000 {
            text.push_str(&format!("line {i} {}\n", "x".repeat(40)));
        }
        std::fs::write(&path, &text).unwrap();
        let tail = read_tail(&path).unwrap();
        assert_eq!(tail.len(), 64 * 1024);
        assert_eq!(
            last_line(&tail),
            Some(format!("line 49999 {}", "x".repeat(40)).as_bytes())
        );
        // A last line longer than the window: the window doubles until it is whole.
        let long = "y".repeat(300 * 1024);
        std::fs::write(&path, format!("first\n{long}\n")).unwrap();
        let tail = read_tail(&path).unwrap();
        assert_eq!(last_line(&tail), Some(long.as_bytes()));
        assert!(tail.len() < 300 * 1024 + 64 * 1024 * 8);
        // One line, no break before it: the whole file.
        std::fs::write(&path, &long).unwrap();
        assert_eq!(read_tail(&path).unwrap(), long.as_bytes());
        std::fs::write(&path, b"").unwrap();
        assert!(read_tail(&path).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What the request path queues for `r`.
    fn queued(r: &AuditRecord) -> Box<[u8]> {
        fragment(&r.fields()).unwrap()
    }

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
            principal: String::new(),
        }
    }

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!(
            "kms-audit-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ))
    }

    fn settings(dir: &Path, max_bytes: u64) -> Settings {
        Settings {
            max_bytes,
            retain_files: 0,
            retain_bytes: 0,
            reserve_bytes: 64 * 1024,
            ..Settings::new(dir)
        }
    }

    fn keystore() -> Arc<Keystore> {
        Arc::new(Keystore::from_root(&[4u8; 32]).unwrap())
    }

    #[tokio::test]
    async fn the_chain_verifies_across_root_key_handovers_and_refuses_forged_ones() {
        let dir = temp_dir();
        let k1 = keystore();
        let k2 = Arc::new(Keystore::from_root(&[6u8; 32]).unwrap());
        let k3 = Arc::new(Keystore::from_root(&[7u8; 32]).unwrap());
        let log = AuditLog::start(settings(&dir, 2_000), k1.clone()).unwrap();
        for i in 0..30 {
            log.record(rec(i), true).await;
        }
        drop(log);
        assert_eq!(hand_over(&dir, &k1, &k2).unwrap(), Handover::Written);
        // Resumed: nothing more; the old key still verifies (the handover is pending).
        assert_eq!(hand_over(&dir, &k1, &k2).unwrap(), Handover::AlreadyDone);
        let v = verify(&dir, &k1).unwrap();
        assert_eq!((v.lines, v.handovers, v.pending_handover), (31, 1, true));
        let v = verify(&dir, &k2).unwrap();
        assert_eq!((v.lines, v.handovers, v.pending_handover), (31, 1, false));
        // The writer continues from the handover under the new key.
        let log = AuditLog::start(settings(&dir, 2_000), k2.clone()).unwrap();
        for i in 30..40 {
            log.record(rec(i), true).await;
        }
        drop(log);
        assert_eq!(hand_over(&dir, &k2, &k3).unwrap(), Handover::Written);
        let log = AuditLog::start(settings(&dir, 2_000), k3.clone()).unwrap();
        log.record(rec(40), true).await;
        drop(log);
        let v = verify(&dir, &k3).unwrap();
        assert_eq!((v.lines, v.handovers, v.gaps.len()), (43, 2, 0));
        // k1 alone cannot verify lines chained under k2 and k3.
        assert!(verify(&dir, &k1).is_err());
        // A trail never handed over is not set aside by a server with another root key.
        let other = temp_dir();
        let log = AuditLog::start(settings(&other, 0), k1.clone()).unwrap();
        log.record(rec(1), true).await;
        drop(log);
        let refused = AuditLog::start(settings(&other, 0), k2.clone())
            .err()
            .unwrap();
        assert!(refused.contains("rotate-root-key"), "{refused}");
        assert_eq!(verify(&other, &k1).unwrap().lines, 1);
        let _ = std::fs::remove_dir_all(&other);
        // A line before the first handover changed: caught under the oldest key.
        let first = files(&dir).unwrap().remove(0);
        let original = std::fs::read_to_string(&first).unwrap();
        std::fs::write(
            &first,
            original.replacen("\"result\":\"OK\"", "\"result\":\"NO\"", 1),
        )
        .unwrap();
        assert!(verify(&dir, &k3).unwrap_err().contains("changed"));
        std::fs::write(&first, &original).unwrap();
        // A handover forged without the keys (its sealed key replaced) is refused.
        let all: Vec<PathBuf> = files(&dir).unwrap();
        let with_handover = all
            .iter()
            .find(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .contains(HANDOVER_ACTION)
            })
            .unwrap();
        let text = std::fs::read_to_string(with_handover).unwrap();
        let forged = text.replacen("\"sealed_key\":\"", "\"sealed_key\":\"AAAA", 1);
        std::fs::write(with_handover, forged).unwrap();
        assert!(verify(&dir, &k3).is_err());
        std::fs::write(with_handover, text).unwrap();
        assert!(verify(&dir, &k3).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn chain_detects_removal_edit_and_reorder_and_survives_rotation() {
        let dir = temp_dir();
        let ks = keystore();
        let log = AuditLog::start(settings(&dir, 2_000), ks.clone()).unwrap();
        for i in 0..40 {
            log.record(rec(i), i.is_multiple_of(5)).await;
        }
        assert!(log.record(rec(40), true).await);
        let v = verify(&dir, &ks).unwrap();
        assert_eq!(v.lines, 41);
        assert!(v.files > 1, "rotation by size happened");
        assert!(v.gaps.is_empty());
        // A restart continues the chain.
        drop(log);
        let log = AuditLog::start(settings(&dir, 2_000), ks.clone()).unwrap();
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
        // Remove a whole rotated file: without a retention line, that is detected.
        std::fs::write(&current, &original).unwrap();
        assert!(verify(&dir, &ks).is_ok());
        let first = files(&dir).unwrap()[0].clone();
        std::fs::remove_file(first).unwrap();
        assert!(verify(&dir, &ks)
            .unwrap_err()
            .contains("no retention line accounts"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lines_split_back() {
        let ks = Keystore::from_root(&[4u8; 32]).unwrap();
        let s = Stored::new(1, rec(1), GENESIS.into());
        let r = rec(1);
        let (line, mac) = seal_line(ks.audit_key(), &Line::of(1, &r, None, &Mac::GENESIS)).unwrap();
        let mac = mac.as_str().to_string();
        let (body, got) = split_line(&line).unwrap();
        assert_eq!(got, mac);
        assert_eq!(body, serde_json::to_string(&s).unwrap());
        assert!(split_line("{}").is_none());
        assert_eq!(sound_line(ks.audit_key(), line.as_bytes()), Some((1, mac)));
        assert_eq!(sound_line(ks.audit_key(), &line.as_bytes()[..50]), None);
    }

    /// The line as written before the writer serialized borrowed [`Line`]s into a reused
    /// buffer: a [`Stored`] serialized on its own, its brace giving way to the mac.
    fn reference_line(key: &hmac::Key, stored: &Stored) -> String {
        let body = serde_json::to_string(stored).unwrap();
        let mac = mac_of(key, &stored.prev, &body);
        format!("{},\"mac\":\"{mac}\"}}", body.strip_suffix('}').unwrap())
    }

    /// What the request path queues (its fields rendered and bounded in one go) seals to
    /// exactly the line of the record bounded first and written by the writer, for values
    /// within and beyond every bound, escaped or not, authenticated or not.
    #[test]
    fn fragments_seal_to_the_bounded_records_lines() {
        let ks = Keystore::from_root(&[5u8; 32]).unwrap();
        let key = ks.audit_key();
        let odd = "quote \" backslash \\ tab \t nl \n nul \u{0} del \u{7f} é 中文 🔑 \u{2028}";
        let long: String = "ab\"c\\é中".repeat(60);
        let every_ascii: String = (0u8..=0x7f).map(char::from).collect();
        let mut records = vec![rec(1), rec(2), AuditRecord::default()];
        for v in [
            odd,
            long.as_str(),
            every_ascii.as_str(),
            "x".repeat(300).as_str(),
        ] {
            for account in ["", "1234567890123456", v] {
                for action in ["Encrypt", "NoSuchAction", v] {
                    records.push(AuditRecord {
                        time: v.into(),
                        request_id: v.into(),
                        account_id: account.into(),
                        access_key_id: v.into(),
                        source: v.into(),
                        action: action.into(),
                        key_id: v.into(),
                        key_version_id: v.into(),
                        result: v.into(),
                        status: 503,
                        principal: v.into(),
                    });
                }
            }
        }
        records.push(AuditRecord {
            principal: "acs:ram::1:user/alice".into(),
            action: "ConsoleSignIn".into(),
            account_id: String::new(),
            ..rec(3)
        });
        let mut prev = Mac::GENESIS;
        for (i, r) in records.iter().enumerate() {
            let seq = [1, 9, 10, 12_345, u64::MAX][i % 5];
            let mut want = Vec::new();
            let want_mac = seal_into(
                key,
                &Line::of(seq, &r.clone().bounded(), None, &prev),
                &mut want,
            )
            .unwrap();
            let mut got = b"earlier line\n".to_vec();
            let line = fragment(&r.fields()).unwrap();
            let mac = seal_fragment(key, seq, &line, &prev, &mut got).unwrap();
            assert_eq!(mac, want_mac, "{r:?}");
            assert_eq!(
                String::from_utf8_lossy(&got[13..]),
                String::from_utf8_lossy(&want),
                "{r:?}"
            );
            prev = mac;
        }
    }

    #[test]
    fn inline_source_and_time_are_the_formatted_ones() {
        for addr in [
            "0.0.0.0:0",
            "1.2.3.4:5",
            "255.255.255.255:65535",
            "10.0.200.7:8443",
        ] {
            let a: std::net::SocketAddr = addr.parse().unwrap();
            assert_eq!(source_text(&a), addr);
            let std::net::SocketAddr::V4(v4) = a else {
                unreachable!()
            };
            assert_eq!(SmallText::ipv4(&v4).as_str(), addr);
        }
        let v6: std::net::SocketAddr = "[::1]:443".parse().unwrap();
        assert_eq!(source_text(&v6), "[::1]:443");
        for _ in 0..3 {
            let before = crate::clock::system_now();
            let t = now_time_text();
            let after = crate::clock::system_now();
            if before == after {
                assert_eq!(t.as_str(), crate::timefmt::format_unix(before));
                return;
            }
        }
        panic!("the clock never held still for a call");
    }

    #[test]
    fn written_bytes_are_the_stored_serialization() {
        let ks = Keystore::from_root(&[4u8; 32]).unwrap();
        let key = ks.audit_key();
        let odd = "quote \" backslash \\ tab \t nl \n nul \u{0} del \u{7f} é 中文 🔑 \u{2028}";
        let mut records = vec![rec(1), rec(2), AuditRecord::default()];
        records.push(AuditRecord {
            time: odd.into(),
            request_id: odd.into(),
            account_id: odd.into(),
            access_key_id: odd.into(),
            source: "[::1]:443".into(),
            action: odd.into(),
            key_id: odd.into(),
            key_version_id: odd.into(),
            result: odd.into(),
            status: 503,
            principal: odd.into(),
        });
        records.push(AuditRecord {
            principal: "acs:ram::1:user/alice".into(),
            ..rec(3)
        });
        let every_ascii: String = (0u8..=0x7f).map(char::from).collect();
        records.push(AuditRecord {
            request_id: every_ascii.clone(),
            key_id: every_ascii.chars().rev().collect(),
            ..rec(4)
        });
        let bounded: Vec<AuditRecord> = records.iter().map(|r| r.clone().bounded()).collect();
        records.extend(bounded);
        let events = [
            Event::Gap {
                since: "2026-01-01T00:00:00Z".into(),
                lost: 3,
                reason: odd.into(),
            },
            Event::Retention {
                through_seq: 41,
                through_mac: "ab".repeat(32),
                files: 2,
                bytes: 12_345,
            },
            Event::KeyHandover {
                next_key: "k-\"1\"".into(),
                sealed_key: "c2VhbGVk+/==".into(),
            },
        ];
        let mut prev = Mac::GENESIS;
        let mut seq = u64::MAX - 100;
        let mut buf = Vec::new();
        let mut check = |r: &AuditRecord, event: Option<&Event>| {
            let mut stored = Stored::new(seq, r.clone(), prev.as_str().into());
            stored.event = event.cloned();
            let want = reference_line(key, &stored);
            let (line, mac) = seal_line(key, &Line::of(seq, r, event, &prev)).unwrap();
            assert_eq!(line, want);
            // Appended to a buffer that already holds lines: the same bytes after them.
            let before = buf.len();
            assert_eq!(
                seal_into(key, &Line::of(seq, r, event, &prev), &mut buf).unwrap(),
                mac
            );
            assert_eq!(&buf[before..], want.as_bytes());
            buf.push(b'\n');
            (seq, prev) = (seq + 1, mac);
        };
        for r in &records {
            check(r, None);
        }
        for e in &events {
            check(&event_record(e), Some(e));
            check(&records[3], Some(e));
        }
        // Every character alone, as serde_json writes it.
        for c in every_ascii
            .chars()
            .chain(['é', '中', '🔑', '\u{2028}', '\u{ffff}'])
        {
            for text in [c.to_string(), format!("a{c}b{c}")] {
                let mut out = b"x".to_vec();
                push_json_str(&mut out, &text).unwrap();
                assert_eq!(out[1..], serde_json::to_vec(&text).unwrap()[..], "{c:?}");
            }
        }
        // And what was written reads back as a chain.
        let text = String::from_utf8(buf).unwrap();
        let mut prev = GENESIS.to_string();
        for line in text.lines() {
            let (body, mac) = split_line(line).unwrap();
            let stored: Stored = serde_json::from_str(&body).unwrap();
            assert_eq!(stored.prev, prev);
            assert_eq!(mac_of(key, &prev, &body), mac);
            prev = mac;
        }
    }

    #[test]
    fn lines_are_bounded_before_and_after_authentication() {
        let control: String = (0..64 * 1024)
            .map(|i| char::from(1 + (i % 31) as u8))
            .collect();
        let attack = AuditRecord {
            action: control.clone(),
            access_key_id: control.clone(),
            key_id: control.clone(),
            ..AuditRecord::default()
        }
        .bounded();
        assert_eq!(attack.action, "unknown");
        assert_eq!(attack.access_key_id, "?".repeat(64));
        assert_eq!(attack.key_id.len(), 64);
        let known = AuditRecord {
            action: "DescribeKey".into(),
            ..AuditRecord::default()
        }
        .bounded();
        assert_eq!(known.action, "DescribeKey");
        let console = AuditRecord {
            action: "ConsoleSignIn".into(),
            access_key_id: "console-user:alice".into(),
            ..AuditRecord::default()
        }
        .bounded();
        assert_eq!(console.action, "ConsoleSignIn");
        assert_eq!(console.access_key_id, "console-user:alice");
        // Authenticated: the values are kept, cut to 256.
        let signed = AuditRecord {
            account_id: "1234567890123456".into(),
            action: "DescribeKey".into(),
            key_id: format!("alias/{}", "a".repeat(300)),
            ..AuditRecord::default()
        }
        .bounded();
        assert_eq!(signed.key_id.len(), 256);
        assert!(signed.key_id.starts_with("alias/aaa"));
        // A whole line stays under 1 KiB.
        let ks = Keystore::from_root(&[4u8; 32]).unwrap();
        let big = AuditRecord {
            time: control.clone(),
            request_id: control.clone(),
            account_id: control.clone(),
            access_key_id: control.clone(),
            source: control.clone(),
            action: control.clone(),
            key_id: control.clone(),
            key_version_id: control.clone(),
            result: control.clone(),
            status: 400,
            principal: control.clone(),
        };
        for r in [
            big.clone(),
            AuditRecord {
                account_id: String::new(),
                ..big
            },
        ] {
            let r = r.bounded();
            let (line, _) =
                seal_line(ks.audit_key(), &Line::of(1, &r, None, &Mac::GENESIS)).unwrap();
            assert!(line.len() < 1024 + 512, "{}", line.len());
        }
    }

    #[tokio::test]
    async fn rotation_happens_inside_a_batch_and_retention_keeps_the_chain_verifiable() {
        let dir = temp_dir();
        let ks = keystore();
        let s = Settings {
            retain_files: 3,
            retain_bytes: 0,
            ..settings(&dir, 4_096)
        };
        let log = AuditLog::start(s.clone(), ks.clone()).unwrap();
        // 600 lines queued at once form batches far larger than a file.
        for i in 0..600 {
            log.record(rec(i), false).await;
        }
        assert!(log.record(rec(600), true).await);
        let line_max = 400;
        for f in files(&dir).unwrap() {
            let size = std::fs::metadata(&f).unwrap().len();
            assert!(size < 4_096 + line_max, "{}: {size}", f.display());
        }
        assert_eq!(rotated(&dir).unwrap().len(), 3);
        let v = verify(&dir, &ks).unwrap();
        assert!(v.first_seq > 1 && v.gaps.is_empty());
        // The lines removed are accounted for by retention lines in the chain.
        let retention = query(&dir, None, Some(RETENTION_ACTION), None).unwrap();
        assert!(!retention.is_empty());
        // Removing one more file by hand is detected.
        std::fs::remove_file(&rotated(&dir).unwrap()[0].1).unwrap();
        assert!(verify(&dir, &ks)
            .unwrap_err()
            .contains("no retention line accounts"));
        drop(log);
        // By total size.
        let dir = temp_dir();
        let s = Settings {
            retain_files: 0,
            retain_bytes: 20_000,
            ..settings(&dir, 4_096)
        };
        let log = AuditLog::start(s, ks.clone()).unwrap();
        for i in 0..600 {
            log.record(rec(i), false).await;
        }
        assert!(log.record(rec(600), true).await);
        let total: u64 = files(&dir)
            .unwrap()
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert!(total <= 20_000 + 4_096 + line_max, "{total}");
        assert!(verify(&dir, &ks).unwrap().first_seq > 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_damaged_tail_is_set_aside_and_recorded_as_a_gap() {
        let dir = temp_dir();
        let ks = keystore();
        let log = AuditLog::start(settings(&dir, 0), ks.clone()).unwrap();
        for i in 0..5 {
            assert!(log.record(rec(i), true).await);
        }
        drop(log);
        let current = dir.join(CURRENT);
        let text = std::fs::read(&current).unwrap();
        // The last line written in part, as when the disk filled up mid-write.
        let cut = text.len() - 40;
        std::fs::write(&current, &text[..cut]).unwrap();
        let log = AuditLog::start(settings(&dir, 0), ks.clone()).unwrap();
        assert!(log.record(rec(9), true).await);
        let aside: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains(".damaged-"))
            .collect();
        assert_eq!(aside.len(), 1);
        let last_start = text[..text.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .unwrap()
            + 1;
        assert_eq!(std::fs::read(&aside[0]).unwrap(), &text[last_start..cut]);
        let v = verify(&dir, &ks).unwrap();
        assert_eq!(v.lines, 4 + 1 + 1);
        assert_eq!(v.gaps.len(), 1);
        assert_eq!(v.gaps[0].lost, 1);
        assert!(v.gaps[0]
            .reason
            .contains(&*aside[0].file_name().unwrap().to_string_lossy()));
        // A file that is all garbage: the chain continues from genesis, with a gap.
        drop(log);
        let dir = temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(CURRENT), b"{\"seq\":1,\"ti").unwrap();
        let log = AuditLog::start(settings(&dir, 0), ks.clone()).unwrap();
        assert!(log.record(rec(1), true).await);
        let v = verify(&dir, &ks).unwrap();
        assert_eq!((v.lines, v.gaps.len()), (2, 1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn source_text_is_the_display_of_the_address() {
        use std::net::SocketAddr;
        let mut peers: Vec<SocketAddr> = [
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "127.0.0.1:40000",
            "10.0.0.1:1",
            "192.168.100.9:8080",
            "[::1]:443",
            "[::ffff:1.2.3.4]:10",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        for n in 0..=255u8 {
            peers.push(SocketAddr::from((
                [n, n / 2, 255 - n, n % 10],
                u16::from(n) * 257,
            )));
        }
        for p in peers {
            assert_eq!(source_text(&p), p.to_string());
        }
    }

    #[test]
    fn now_text_is_the_formatted_current_second() {
        for _ in 0..3 {
            let before = crate::clock::system_now();
            let text = now_text();
            let after = crate::clock::system_now();
            let t = crate::timefmt::parse(&text).unwrap();
            assert!((before..=after).contains(&t), "{text}");
            assert_eq!(text, crate::timefmt::format_unix(t));
        }
    }

    #[tokio::test]
    async fn stop_writes_every_line_recorded_before_it_and_ends_the_writer() {
        let dir = temp_dir();
        let ks = keystore();
        let log = AuditLog::start(settings(&dir, 0), ks.clone()).unwrap();
        // Lines nobody waits for: without the stop they would sit in the batch for 20 ms.
        for i in 1..=500 {
            assert!(log.record(rec(i), false).await);
        }
        assert!(log.clone().stop(Duration::from_secs(10)).await);
        assert_eq!(query(&dir, None, None, None).unwrap().len(), 500);
        assert_eq!(verify(&dir, &ks).unwrap().lines, 500);
        assert_eq!((log.gate().queued(), log.gate().lost()), (0, 0));
        // After the stop nothing is written, and the line is counted lost; stopping again
        // is a no-op.
        assert!(!log.record(rec(501), true).await);
        assert!(log.stop(Duration::from_secs(1)).await);
        assert_eq!(log.gate().lost(), 1);
        assert_eq!(verify(&dir, &ks).unwrap().lines, 500);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_gate_closes_when_the_trail_cannot_be_written_and_the_gap_is_recorded() {
        let dir = temp_dir();
        let ks = keystore();
        let log = AuditLog::start(settings(&dir, 0), ks.clone()).unwrap();
        assert!(log.record(rec(1), true).await);
        assert!(log.gate().admit(true).is_ok());
        // Writes fail: the current file is replaced by a directory the writer cannot append
        // to once it reopens, and the open file is made read-only underneath.
        std::fs::remove_file(dir.join(CURRENT)).unwrap();
        std::fs::create_dir(dir.join(CURRENT)).unwrap();
        let mut w = Writer {
            s: settings(&dir, 0),
            keystore: ks.clone(),
            seq: 1,
            prev: Mac::GENESIS,
            buf: Vec::new(),
            file: None,
            gate: AuditGate::default(),
            closed_since: None,
            gap: None,
            _lock: None,
        };
        w.open();
        assert!(!w.gate.is_open());
        assert_eq!(w.gate.admit(true).unwrap_err(), KmsError::AuditUnavailable);
        assert!(w.gate.admit(false).is_ok(), "reads go on");
        let (tx, rx) = oneshot::channel();
        w.write_records(vec![(queued(&rec(2)), Some(tx)), (queued(&rec(3)), None)]);
        assert_eq!(rx.await, Ok(false));
        assert_eq!(w.gap.as_ref().map(|g| g.1), Some(2));
        // Writable again: the gap line comes first, then the gate opens.
        std::fs::remove_dir(dir.join(CURRENT)).unwrap();
        w.open();
        assert!(w.gate.is_open());
        w.write_records(vec![(queued(&rec(4)), None)]);
        let lines = query(&dir, None, None, None).unwrap();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("\"action\":\"AuditGap\"") && lines[0].contains("\"lost\":2"));
        drop(log);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
