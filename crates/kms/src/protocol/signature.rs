//! Request signatures (reference §1.3, §1.4): v1 `HMAC-SHA1` over the parameters, and V3
//! `ACS3-HMAC-SHA256` over a canonical request named in the `Authorization` header.
//! [`parse`] reads what identifies the caller (access key id, timestamp, nonce) and builds
//! the server's string to sign; [`Pending::verify`] checks the signature against the
//! secret in constant time (aws-lc-rs `hmac::verify`).

use std::hash::BuildHasher;
use std::sync::Mutex;

use aws_lc_rs::{digest, hmac};
use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::nonce_journal::{NonceJournal, Restored};
use super::nonce_set::{Fingerprints, Merge, NonceSet, SpillDir, MERGE_MIN};
use super::params::Params;
use crate::error::KmsError;
use crate::timefmt;

/// RFC 3986: everything but `A–Z a–z 0–9 - _ . ~` is percent-encoded, uppercase hex.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// How far a request's timestamp may be from the server's time: 15 minutes.
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;
// Shared nonce claims are kept for the same window.
const _: () = assert!(MAX_SKEW_SECONDS == crate::store::NONCE_WINDOW_SECONDS);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    V1HmacSha1,
    V3HmacSha256,
}

/// A request whose signature has been read but not yet checked.
#[derive(Debug, Clone)]
pub struct Pending {
    pub scheme: Scheme,
    pub access_key_id: String,
    pub timestamp: i64,
    pub nonce: String,
    pub string_to_sign: String,
    /// The signature as sent: base64 (v1) or hex (V3).
    signature: String,
}

/// The HTTP request as the signature sees it.
pub struct RequestView<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub params: &'a Params,
    /// Header (lowercase name, value) pairs in the order received.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

impl RequestView<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }
}

fn parse_time(s: &str) -> Result<i64, KmsError> {
    timefmt::parse(s).ok_or(KmsError::TimeStampFormat)
}

/// Reads the signature of a request.
pub fn parse(req: &RequestView<'_>) -> Result<Pending, KmsError> {
    match req.header("authorization") {
        Some(auth) if auth.starts_with("ACS3-HMAC-SHA256") => parse_v3(req, auth),
        Some(auth) if auth.starts_with("ACS4-") => Err(KmsError::IncompleteSignature(
            "ACS4-HMAC-SHA256 is not supported; use ACS3-HMAC-SHA256 or HMAC-SHA1".into(),
        )),
        _ => parse_v1(req),
    }
}

/// Whether RFC 3986 leaves `b` as it is (`A–Z a–z 0–9 - _ . ~`; see [`RFC3986`]): one
/// table load per byte (the canonical forms ask it of every byte of every parameter).
fn unreserved(b: u8) -> bool {
    UNRESERVED[usize::from(b)]
}

const UNRESERVED: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~');
        b += 1;
    }
    t
};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The bytes of [`percent_encode`]`(s)`, one at a time, without building the string: what
/// the canonical forms sort by.
struct Encoded<'a> {
    bytes: std::slice::Iter<'a, u8>,
    /// The two hex digits still to come after a `%`, low one first.
    pending: [u8; 2],
    left: u8,
}

fn encoded(s: &str) -> Encoded<'_> {
    Encoded {
        bytes: s.as_bytes().iter(),
        pending: [0; 2],
        left: 0,
    }
}

impl Iterator for Encoded<'_> {
    type Item = u8;
    fn next(&mut self) -> Option<u8> {
        if self.left > 0 {
            self.left -= 1;
            return Some(self.pending[usize::from(self.left)]);
        }
        let b = *self.bytes.next()?;
        if unreserved(b) {
            return Some(b);
        }
        self.pending = [HEX[usize::from(b & 15)], HEX[usize::from(b >> 4)]];
        self.left = 2;
        Some(b'%')
    }
}

/// `percent_encode(a).cmp(&percent_encode(b))`, without allocating; `plain`: whether each
/// needs no encoding at all (then the encoded forms are the strings themselves).
fn cmp_encoded((a, a_plain): (&str, bool), (b, b_plain): (&str, bool)) -> std::cmp::Ordering {
    if a_plain && b_plain {
        return a.cmp(b);
    }
    encoded(a).cmp(encoded(b))
}

fn plain(s: &str) -> bool {
    s.bytes().all(unreserved)
}

/// A parameter with whether its name and its value need no encoding at all.
type Sorted<'a> = (&'a (String, String), bool, bool);

/// The parameters sorted as the canonical forms require: by encoded name, then encoded
/// value (what sorting the `(percent_encode(name), percent_encode(value))` pairs gives),
/// each with whether its name and value are plain (then they are copied as they are).
fn sorted_params<'a>(params: impl Iterator<Item = &'a (String, String)>) -> Vec<Sorted<'a>> {
    let mut sorted: Vec<Sorted<'a>> = params.map(|p| (p, plain(&p.0), plain(&p.1))).collect();
    sorted.sort_unstable_by(|(a, ak, av), (b, bk, bv)| {
        cmp_encoded((&a.0, *ak), (&b.0, *bk)).then_with(|| cmp_encoded((&a.1, *av), (&b.1, *bv)))
    });
    sorted
}

/// Appends `percent_encode(s)` (`twice`: `percent_encode(percent_encode(s))`: a byte RFC
/// 3986 keeps stays, any other becomes `%25XX`, its `%XX` with the `%` encoded again; hex
/// digits are unreserved). Runs of unreserved bytes are copied at once.
/// `plain`: whether `s` needs no encoding at all (then it is copied at once).
fn push_encoded(out: &mut Vec<u8>, s: &str, plain: bool, twice: bool) {
    if plain {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    let mut rest = s.as_bytes();
    while !rest.is_empty() {
        let run = rest
            .iter()
            .position(|&b| !unreserved(b))
            .unwrap_or(rest.len());
        out.extend_from_slice(&rest[..run]);
        if let Some(&b) = rest.get(run) {
            out.extend_from_slice(if twice { b"%25" } else { b"%" });
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
            rest = &rest[run + 1..];
        } else {
            rest = &[];
        }
    }
}

/// `out` as a string: what the canonical forms build is ASCII (escaped bytes, and the
/// method, path and header values as received, which are strings).
fn into_string(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Length of `percent_encode(s)` (`twice`: of `percent_encode(percent_encode(s))`).
fn encoded_len(s: &str, plain: bool, twice: bool) -> usize {
    if plain {
        return s.len();
    }
    let wide = if twice { 5 } else { 3 };
    s.bytes()
        .map(|b| if unreserved(b) { 1 } else { wide })
        .sum()
}

/// The v1 string to sign: `METHOD&%2F&` + encode(sorted `name=value` joined by `&`).
///
/// Built in one pass into one string: the pairs are sorted by their encoded forms without
/// building them, and each name and value is encoded twice at once (`=` and `&` of the
/// canonical query become `%3D` and `%26`).
pub fn v1_string_to_sign<'a>(
    method: &str,
    params: impl Iterator<Item = &'a (String, String)>,
) -> String {
    let sorted = sorted_params(params.filter(|(k, _)| k != "Signature"));
    let len = method.len()
        + 5
        + sorted
            .iter()
            .map(|((k, v), kp, vp)| encoded_len(k, *kp, true) + encoded_len(v, *vp, true) + 6)
            .sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(b"&%2F&");
    for (i, ((k, v), kp, vp)) in sorted.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"%26");
        }
        push_encoded(&mut out, k, *kp, true);
        out.extend_from_slice(b"%3D");
        push_encoded(&mut out, v, *vp, true);
    }
    into_string(out)
}

fn parse_v1(req: &RequestView<'_>) -> Result<Pending, KmsError> {
    let p = req.params;
    let signature = p
        .opt("Signature")
        .ok_or_else(|| KmsError::missing("Signature"))?;
    let access_key_id = p.required("AccessKeyId")?.to_string();
    match p.opt("SignatureMethod") {
        Some("HMAC-SHA1") => {}
        None => return Err(KmsError::missing("SignatureMethod")),
        Some(_) => {
            return Err(KmsError::invalid_because(
                "SignatureMethod",
                "Use HMAC-SHA1.",
            ))
        }
    }
    if let Some(v) = p.opt("SignatureVersion") {
        if v != "1.0" {
            return Err(KmsError::invalid_because("SignatureVersion", "Use 1.0."));
        }
    }
    let timestamp = parse_time(p.required("Timestamp")?)?;
    let nonce = p.required("SignatureNonce")?.to_string();
    Ok(Pending {
        scheme: Scheme::V1HmacSha1,
        access_key_id,
        timestamp,
        nonce,
        string_to_sign: v1_string_to_sign(req.method, p.all()),
        signature: signature.to_string(),
    })
}

/// Parts of `ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…`.
/// The fields of an `Authorization: ACS3-HMAC-SHA256 …` header that the server reads
/// (`Credential`, `SignedHeaders`, `Signature`); a field given twice counts by its last value.
#[derive(Default)]
struct AuthorizationFields<'a> {
    credential: Option<&'a str>,
    signed_headers: Option<&'a str>,
    signature: Option<&'a str>,
}

fn authorization_fields(auth: &str) -> AuthorizationFields<'_> {
    let mut f = AuthorizationFields::default();
    for (k, v) in auth
        .trim_start_matches("ACS3-HMAC-SHA256")
        .split(',')
        .filter_map(|part| part.trim().split_once('='))
    {
        match k {
            "Credential" => f.credential = Some(v),
            "SignedHeaders" => f.signed_headers = Some(v),
            "Signature" => f.signature = Some(v),
            _ => {}
        }
    }
    f
}

/// Appends the lowercase hex of SHA-256(`data`) to `out`.
fn push_sha256_hex(out: &mut Vec<u8>, data: &[u8]) {
    let d = digest::digest(&digest::SHA256, data);
    let mut hex = [0u8; 64];
    // 64 bytes is exactly twice the digest: this cannot fail.
    if hex::encode_to_slice(d.as_ref(), &mut hex).is_ok() {
        out.extend_from_slice(&hex);
    }
}

#[cfg(test)]
fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

/// The V3 canonical request (reference §1.4), built into one string.
pub fn v3_canonical_request(req: &RequestView<'_>, signed_headers: &[&str]) -> String {
    let sorted = sorted_params(req.params.query.iter());
    let mut out = Vec::with_capacity(
        256 + sorted
            .iter()
            .map(|((k, v), kp, vp)| encoded_len(k, *kp, false) + encoded_len(v, *vp, false) + 2)
            .sum::<usize>(),
    );
    out.extend_from_slice(req.method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(if req.path.is_empty() { "/" } else { req.path }.as_bytes());
    out.push(b'\n');
    for (i, ((k, v), kp, vp)) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        push_encoded(&mut out, k, *kp, false);
        out.push(b'=');
        push_encoded(&mut out, v, *vp, false);
    }
    out.push(b'\n');
    for name in signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let values = req
            .headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim());
        for (i, v) in values.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(v.as_bytes());
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    for (i, name) in signed_headers.iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.extend_from_slice(name.as_bytes());
    }
    out.push(b'\n');
    push_sha256_hex(&mut out, req.body);
    into_string(out)
}

fn parse_v3(req: &RequestView<'_>, auth: &str) -> Result<Pending, KmsError> {
    let fields = authorization_fields(auth);
    let incomplete = |why: &str| KmsError::IncompleteSignature(why.to_string());
    let access_key_id = fields
        .credential
        .filter(|c| !c.is_empty())
        .ok_or_else(|| incomplete("Authorization has no Credential"))?
        .to_string();
    let signature = fields
        .signature
        .filter(|s| !s.is_empty())
        .ok_or_else(|| incomplete("Authorization has no Signature"))?
        .to_string();
    let signed: Vec<&str> = fields
        .signed_headers
        .ok_or_else(|| incomplete("Authorization has no SignedHeaders"))?
        .split(';')
        .filter(|h| !h.is_empty())
        .collect();
    // The date and nonce must be signed, or a captured request could be replayed with new ones.
    for must in ["x-acs-date", "x-acs-signature-nonce"] {
        if !signed.contains(&must) {
            return Err(incomplete(&format!("{must} must be a signed header")));
        }
    }
    // So must everything else that says what the request is: the host and every x-acs-*
    // header present (action, version, content hash …), or a captured request could be
    // turned into another action.
    if let Some((name, _)) = req
        .headers
        .iter()
        .find(|(k, _)| (*k == "host" || k.starts_with("x-acs-")) && !signed.contains(k))
    {
        return Err(incomplete(&format!("{name} must be a signed header")));
    }
    let timestamp = parse_time(
        req.header("x-acs-date")
            .ok_or_else(|| KmsError::missing("x-acs-date"))?,
    )?;
    let nonce = req
        .header("x-acs-signature-nonce")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| KmsError::missing("x-acs-signature-nonce"))?
        .to_string();
    let canonical = v3_canonical_request(req, &signed);
    Ok(Pending {
        scheme: Scheme::V3HmacSha256,
        access_key_id,
        timestamp,
        nonce,
        string_to_sign: {
            let mut sts = Vec::with_capacity(17 + 64);
            sts.extend_from_slice(b"ACS3-HMAC-SHA256\n");
            push_sha256_hex(&mut sts, canonical.as_bytes());
            into_string(sts)
        },
        signature,
    })
}

impl Pending {
    /// Checks the timestamp against `now` (real time, Unix seconds).
    pub fn check_time(&self, now: i64) -> Result<(), KmsError> {
        if (now - self.timestamp).abs() > MAX_SKEW_SECONDS {
            return Err(KmsError::TimeStampExpired);
        }
        Ok(())
    }

    /// Verifies the signature with the access key secret, in constant time. Prepares the
    /// one HMAC key the scheme needs; [`Pending::verify_prepared`] takes keys prepared once.
    pub fn verify(&self, secret: &[u8]) -> Result<(), KmsError> {
        match self.scheme {
            Scheme::V1HmacSha1 => {
                let mut k = zeroize::Zeroizing::new(Vec::with_capacity(secret.len() + 1));
                k.extend_from_slice(secret);
                k.push(b'&');
                self.verify_v1(&hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &k))
            }
            Scheme::V3HmacSha256 => self.verify_v3(&hmac::Key::new(hmac::HMAC_SHA256, secret)),
        }
    }

    /// [`Pending::verify`] with the access key's HMAC keys prepared from its secret (no key
    /// schedule per request): `v1` is HMAC-SHA1 keyed with `secret&`, `v3` HMAC-SHA256 keyed
    /// with the secret.
    pub fn verify_prepared(&self, v1: &hmac::Key, v3: &hmac::Key) -> Result<(), KmsError> {
        match self.scheme {
            Scheme::V1HmacSha1 => self.verify_v1(v1),
            Scheme::V3HmacSha256 => self.verify_v3(v3),
        }
    }

    fn mismatch(&self) -> KmsError {
        KmsError::SignatureDoesNotMatch(self.string_to_sign.clone())
    }

    fn verify_v1(&self, key: &hmac::Key) -> Result<(), KmsError> {
        let given = base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .map_err(|_| self.mismatch())?;
        if hmac::verify(key, self.string_to_sign.as_bytes(), &given).is_ok() {
            return Ok(());
        }
        // The credentials library for Python signs AssumeRole with `quote_plus`: a space in
        // a value is `+` (`%2B` once encoded again) instead of `%20` (`%2520`), reference
        // alibaba-ram-sts.md §1.3. Only a space encodes to `%2520` in the string to sign (a
        // literal `%20` is `%252520`, which holds no `%2520` at a `%`), so the other form is
        // tried only for such requests.
        if self.string_to_sign.contains("%2520") {
            let plus = self.string_to_sign.replace("%2520", "%2B");
            return hmac::verify(key, plus.as_bytes(), &given).map_err(|_| self.mismatch());
        }
        Err(self.mismatch())
    }

    fn verify_v3(&self, key: &hmac::Key) -> Result<(), KmsError> {
        // An HMAC-SHA256 is 32 bytes: a signature of another length cannot match.
        let mut given = [0u8; 32];
        hex::decode_to_slice(&self.signature, &mut given).map_err(|_| self.mismatch())?;
        hmac::verify(key, self.string_to_sign.as_bytes(), &given).map_err(|_| self.mismatch())
    }
}

/// SHA-256(access key id ‖ 0 ‖ nonce): what the nonce cache, and a shared store's nonce
/// claims, remember of a nonce (computed once per request).
pub fn nonce_digest(access_key_id: &str, nonce: &str) -> [u8; 32] {
    let (ak, nonce) = (access_key_id.as_bytes(), nonce.as_bytes());
    let mut out = [0u8; 32];
    // Usually laid out on the stack and hashed in one call (aws-lc's one-shot SHA-256, not
    // a digest context: a third of the cost for these few blocks); long ones streamed.
    let mut buf = [0u8; 192];
    let len = ak.len() + 1 + nonce.len();
    let d = match buf.get_mut(..len) {
        Some(joined) => {
            joined[..ak.len()].copy_from_slice(ak);
            joined[ak.len() + 1..].copy_from_slice(nonce);
            digest::digest(&digest::SHA256, joined)
        }
        None => {
            let mut ctx = digest::Context::new(&digest::SHA256);
            ctx.update(ak);
            ctx.update(&[0]);
            ctx.update(nonce);
            ctx.finish()
        }
    };
    out.copy_from_slice(d.as_ref());
    out
}

/// Until when a nonce must be remembered: until its request's timestamp could no longer pass
/// the time check.
pub fn nonce_until(timestamp: i64, now: i64) -> i64 {
    timestamp.max(now).saturating_add(MAX_SKEW_SECONDS)
}

/// Nonces seen in the last window, sharded so concurrent requests rarely share a lock; with
/// a [`NonceJournal`] (SQLite), also on disk, so that they outlive a restart.
pub struct NonceCache {
    shards: Vec<Mutex<Shard>>,
    journal: Option<NonceJournal>,
    /// The seeded fingerprints every set keeps.
    fingerprints: Fingerprints,
    /// A bucket's recent nonces are merged into its frozen set from this many on (see
    /// [`NonceSet::start_merge`]).
    merge_min: usize,
    /// Where big frozen sets keep the tails of their fingerprints (with a journal: its
    /// directory; see `nonce_set::spill`). Without one, every set stays whole in memory.
    spill: Option<SpillDir>,
    /// The smallest frozen set [`Self::open_journal`] has spilled.
    spill_min: usize,
}

/// Width of a time bucket, in seconds. A nonce is filed under the bucket of the time until
/// which it must be remembered, and forgotten when that whole bucket has passed: at most
/// this long after its time (a replay is refused a little longer, never shorter).
pub const BUCKET_SECONDS: u32 = 256;
/// Buckets a shard cycles through: more than the 30 minutes (plus one bucket) a nonce can
/// be ahead of the clock, so a slot is reused only once its bucket has passed.
pub const BUCKETS: usize = 16;
const _: () =
    assert!(BUCKETS as u32 * BUCKET_SECONDS > 2 * MAX_SKEW_SECONDS as u32 + BUCKET_SECONDS);

/// A seen nonce is kept as a 64-bit fingerprint of the first 8 bytes of SHA-256(access key
/// id ‖ 0 ‖ nonce) in the set of its time bucket (a [`NonceSet`]: the latest few thousand in a
/// small open-addressing table, all others in a frozen Elias–Fano set of about 6 bytes a
/// nonce, exact). Expiry drops whole sets (a free, done outside the lock), so no request pays
/// for a sweep of the others. Every nonce is remembered until its timestamp could no longer
/// pass the time check (up to 30 minutes ahead when its timestamp is 15 minutes ahead) plus
/// at most one bucket, so memory grows with the request rate only: about 6.35 MB per million
/// nonces remembered (`examples/nonce_memory.rs`). A false "nonce used" needs a 64-bit
/// fingerprint collision within the request's shard: about 1 in 10^13 requests at 40,000
/// requests a second (see [`super::nonce_set`]). The fingerprints are seeded per process.
///
/// Merges of a bucket's recent table into its frozen set run on the thread of the request
/// that filled the table, after its lock is released and its nonce journaled (the table is
/// searched meanwhile), at most one per request: the shard is never held for a merge. A
/// bucket whose time the clock has passed by 15 minutes can receive no more nonces (a nonce
/// is filed at least 15 minutes ahead of the clock), so its recent table is merged whole by
/// the next request of the shard and freed.
#[derive(Default)]
struct Shard {
    buckets: [Bucket; BUCKETS],
}

/// A test hook: the number in the environment variable `name`, if set. End-to-end tests
/// make the nonce cache merge (`KMS_TEST_NONCE_MERGE_MIN`) and spill
/// (`KMS_TEST_NONCE_SPILL_MIN`) after a few nonces instead of thousands.
fn test_knob(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Unix seconds as the cache counts them (times before 1970 as 0, after 2106 as the last).
fn to_u32(t: i64) -> u32 {
    u32::try_from(t.max(0)).unwrap_or(u32::MAX)
}

#[derive(Default)]
struct Bucket {
    /// `until / BUCKET_SECONDS` of the nonces in `seen`.
    index: u32,
    seen: NonceSet,
}

impl Default for NonceCache {
    fn default() -> Self {
        Self::new()
    }
}

impl NonceCache {
    pub fn new() -> Self {
        Self::with_merge_min(MERGE_MIN)
    }

    /// A cache whose buckets merge their recent nonces from `merge_min` on (tests use small
    /// values to merge often).
    pub fn with_merge_min(merge_min: usize) -> Self {
        Self {
            shards: (0..32).map(|_| Mutex::new(Shard::default())).collect(),
            journal: None,
            fingerprints: Fingerprints::new(
                foldhash::fast::RandomState::default().hash_one(0x6b6d_735f_6e6f_6e63u64),
            ),
            merge_min,
            spill: None,
            spill_min: super::nonce_set::SPILL_MIN,
        }
    }

    /// Keeps the nonces in the journal in `dir` too (see [`NonceJournal`]): the nonces it
    /// holds that still matter at `now` are remembered at once, and every nonce recorded from
    /// here on is written there before the request goes on.
    pub fn open_journal(&mut self, dir: &std::path::Path, now: i64) -> Result<Restored, String> {
        if let Some(min) = test_knob("KMS_TEST_NONCE_SPILL_MIN") {
            self.spill_min = min;
        }
        if let Some(min) = test_knob("KMS_TEST_NONCE_MERGE_MIN") {
            self.merge_min = min.max(1);
        }
        self.spill = Some(SpillDir::with(
            dir,
            super::nonce_set::KEPT_BITS,
            self.spill_min,
        ));
        let (journal, restored) =
            NonceJournal::open(dir, BUCKET_SECONDS, BUCKETS, now, |bucket, keys| {
                self.restore(bucket, keys, now)
            })?;
        self.journal = Some(journal);
        Ok(restored)
    }

    /// Spills big frozen sets into `spill` (see `nonce_set::spill`). [`Self::open_journal`]
    /// spills into the journal's directory (see [`test_knob`] for the sizes tests use); this
    /// sets another place or size.
    pub fn set_spill(&mut self, spill: Option<SpillDir>) {
        self.spill = spill;
    }

    /// The shard of a nonce: from the bits of its key (the sets keep a seeded hash of it).
    fn shard(&self, key: u64) -> usize {
        (key % self.shards.len() as u64) as usize
    }

    /// Remembers `keys` as nonces of `bucket` (read back from the journal), without checks:
    /// straight into the buckets' frozen sets.
    fn restore(&self, bucket: u32, keys: &[u64], now: i64) {
        let now_bucket = to_u32(now) / BUCKET_SECONDS;
        if bucket < now_bucket {
            return;
        }
        let mut by_shard: Vec<Vec<u64>> = vec![Vec::new(); self.shards.len()];
        for &key in keys {
            by_shard[self.shard(key)].push(self.fingerprints.of(key));
        }
        let fill = |shard: &Mutex<Shard>, mut fps: Vec<u64>| {
            if fps.is_empty() {
                return;
            }
            fps.sort_unstable();
            fps.dedup();
            let mut guard = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let slot = &mut guard.buckets[bucket as usize % BUCKETS];
            if slot.index != bucket {
                slot.seen = NonceSet::default();
                slot.index = bucket;
            }
            slot.seen.extend_sorted(&fps, self.spill.as_ref());
        };
        // Start-up with a full journal: the shards fill in parallel, one thread per core.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut work: Vec<(&Mutex<Shard>, Vec<u64>)> = self.shards.iter().zip(by_shard).collect();
        let per_thread = work.len().div_ceil(threads);
        std::thread::scope(|scope| {
            while !work.is_empty() {
                let rest = work.split_off(work.len().saturating_sub(per_thread));
                scope.spawn(|| rest.into_iter().for_each(|(shard, keys)| fill(shard, keys)));
            }
        });
    }

    /// Records `nonce` of `access_key_id`; `SignatureNonceUsed` if it was seen within the
    /// window. A nonce is remembered until its request's timestamp could no longer pass the
    /// time check (timestamp + 15 min, rounded up to a bucket), so a replay is refused by one
    /// check or the other.
    pub fn check_and_record(
        &self,
        access_key_id: &str,
        nonce: &str,
        timestamp: i64,
        now: i64,
    ) -> Result<(), KmsError> {
        self.check_and_record_digest(&nonce_digest(access_key_id, nonce), timestamp, now)
    }

    /// [`Self::check_and_record`] for a nonce already hashed with [`nonce_digest`].
    pub fn check_and_record_digest(
        &self,
        digest: &[u8; 32],
        timestamp: i64,
        now: i64,
    ) -> Result<(), KmsError> {
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let key = u64::from_le_bytes(first);
        let fp = self.fingerprints.of(key);
        let idx = self.shard(key);
        let now_bucket = to_u32(now) / BUCKET_SECONDS;
        let bucket = to_u32(nonce_until(timestamp, now)) / BUCKET_SECONDS;
        // No nonce recorded from now on goes to a bucket before this one.
        let open_from = to_u32(nonce_until(now, now)) / BUCKET_SECONDS;
        let mut expired: Vec<NonceSet> = Vec::new();
        let merge = {
            let mut guard = self.shards[idx]
                .lock()
                .map_err(|_| KmsError::internal("nonce cache lock poisoned"))?;
            let shard = &mut *guard;
            let mut to_seal = None;
            for (i, b) in shard.buckets.iter_mut().enumerate() {
                if b.index < now_bucket {
                    if b.seen.holds_memory() {
                        expired.push(std::mem::take(&mut b.seen));
                    }
                    continue;
                }
                match b.seen.contains(fp) {
                    Ok(false) => {}
                    Ok(true) => return Err(KmsError::SignatureNonceUsed),
                    // A spilled tail that cannot be read: whether the nonce is new is unknown.
                    Err(_) => return Err(KmsError::NonceJournalUnavailable),
                }
                if b.index < open_from && to_seal.is_none() && b.seen.has_recent() {
                    to_seal = Some(i);
                }
            }
            let slot = &mut shard.buckets[bucket as usize % BUCKETS];
            if slot.index != bucket {
                // The slot's previous bucket has passed (see BUCKETS).
                expired.push(std::mem::take(&mut slot.seen));
                slot.index = bucket;
            }
            slot.seen.insert_new(fp);
            // At most one merge per request: the one this nonce makes due, or a passed
            // bucket's last one.
            slot.seen.start_merge(self.merge_min).or_else(|| {
                to_seal.and_then(|i| shard.buckets.get_mut(i).and_then(|b| b.seen.seal()))
            })
        };
        // Freeing whole sets happens outside the lock.
        drop(expired);
        // On disk before the request goes on (into the kernel: see NonceJournal). A nonce that
        // cannot be written stays remembered here, and its request is refused.
        let journaled = match &self.journal {
            Some(journal) => journal
                .append(bucket, key, now_bucket)
                .map_err(|_| KmsError::NonceJournalUnavailable),
            None => Ok(()),
        };
        if let Some(merge) = merge {
            self.finish(idx, merge);
        }
        journaled
    }

    /// Runs `merge` of shard `idx` outside its lock, then puts the result in place.
    fn finish(&self, idx: usize, merge: Merge) {
        let merged = merge.run(self.spill.as_ref());
        if merged.failed() {
            tracing::warn!(
                "a spilled nonce set could not be read back; its bucket keeps its recent nonces in memory"
            );
        }
        let replaced = {
            let mut guard = self.shards[idx]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match guard
                .buckets
                .iter_mut()
                .find(|b| b.seen.is_merging(&merged))
            {
                Some(b) => b.seen.finish_merge(merged),
                None => merged.discard(),
            }
        };
        drop(replaced);
    }

    /// Nonces remembered (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok())
            .map(|s| s.buckets.iter().map(|b| b.seen.len()).sum::<usize>())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held by the sets (their own allocation sizes; for measurements).
    pub fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok())
            .map(|s| s.buckets.iter().map(|b| b.seen.bytes()).sum::<usize>())
            .sum()
    }

    /// Bytes of spilled tails on disk (for measurements).
    pub fn disk_bytes(&self) -> u64 {
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok())
            .map(|s| s.buckets.iter().map(|b| b.seen.disk_bytes()).sum::<u64>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    /// Header pairs as the server hands them over: borrowed.
    fn borrow(h: &[(String, String)]) -> Vec<(&str, &str)> {
        h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn v1_sig(method: &str, secret: &str, params: &[(String, String)]) -> String {
        let sts = v1_string_to_sign(method, params.iter());
        let key = hmac::Key::new(
            hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            format!("{secret}&").as_bytes(),
        );
        base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, sts.as_bytes()))
    }

    /// The canonical forms as first written, with a string per step: the one-pass versions
    /// must give exactly these.
    fn v1_string_to_sign_by_steps(method: &str, params: &[(String, String)]) -> String {
        let mut pairs: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| k != "Signature")
            .map(|(k, v)| (percent_encode(k), percent_encode(v)))
            .collect();
        pairs.sort();
        let canonical = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        format!("{method}&%2F&{}", percent_encode(&canonical))
    }

    fn v3_canonical_request_by_steps(req: &RequestView<'_>, signed_headers: &[&str]) -> String {
        let mut query: Vec<(String, String)> = req
            .params
            .query
            .iter()
            .map(|(k, v)| (percent_encode(k), percent_encode(v)))
            .collect();
        query.sort();
        let canonical_query = query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let mut canonical_headers = String::new();
        for name in signed_headers {
            let values: Vec<&str> = req
                .headers
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.trim())
                .collect();
            canonical_headers.push_str(name);
            canonical_headers.push(':');
            canonical_headers.push_str(&values.join(","));
            canonical_headers.push('\n');
        }
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            req.method,
            if req.path.is_empty() { "/" } else { req.path },
            canonical_query,
            canonical_headers,
            signed_headers.join(";"),
            sha256_hex(req.body)
        )
    }

    /// Names and values that sort differently raw and encoded (`%` is below digits and
    /// letters, a space below `%`, non-ASCII above everything), equal names, empty values.
    fn awkward_params() -> Vec<(String, String)> {
        pairs(&[
            ("Signature", "ignored"),
            ("a b", "1"),
            ("a%b", "2"),
            ("a+b", "3"),
            ("a~b", "4"),
            ("aéb", "5"),
            ("a", "x y"),
            ("a", "x%y"),
            ("a", "x~y"),
            ("a", ""),
            ("A", "é\u{1F600}&=?/"),
            ("Z*", "'()!"),
            ("", "empty name"),
        ])
    }

    #[test]
    fn one_pass_canonical_forms_match_the_step_by_step_ones() {
        let p = awkward_params();
        for method in ["GET", "POST"] {
            assert_eq!(
                v1_string_to_sign(method, p.iter()),
                v1_string_to_sign_by_steps(method, &p)
            );
        }
        let params = Params {
            query: p,
            body: vec![],
        };
        let headers = pairs(&[
            ("host", " h "),
            ("x-acs-date", "2024-01-01T00:00:00Z"),
            ("x-acs-date", "second"),
            ("x-acs-signature-nonce", "n"),
        ]);
        for (path, body) in [("/", &b""[..]), ("", &b"a=b"[..])] {
            let view = RequestView {
                method: "POST",
                path,
                params: &params,
                headers: &borrow(&headers),
                body,
            };
            for signed in [
                &["host", "x-acs-date", "x-acs-signature-nonce"][..],
                &["x-acs-date", "absent"][..],
                &[][..],
            ] {
                assert_eq!(
                    v3_canonical_request(&view, signed),
                    v3_canonical_request_by_steps(&view, signed)
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn one_pass_v1_matches_for_any_parameters(
            raw in proptest::collection::vec(("[a-zA-Z0-9 %+~*é=&._-]{0,6}", "\\PC{0,8}"), 0..8)
        ) {
            let p: Vec<(String, String)> = raw;
            proptest::prop_assert_eq!(
                v1_string_to_sign("POST", p.iter()),
                v1_string_to_sign_by_steps("POST", &p)
            );
            let params = Params { query: p, body: vec![] };
            let view = RequestView { method: "GET", path: "/", params: &params, headers: &[], body: b"" };
            proptest::prop_assert_eq!(
                v3_canonical_request(&view, &["host"]),
                v3_canonical_request_by_steps(&view, &["host"])
            );
        }
    }

    #[test]
    fn nonce_digest_is_sha256_of_the_joined_parts() {
        for (ak, nonce) in [
            ("", ""),
            ("LTAI5tExample", "9f3c2a1b-0000-4000-8000-000000000001"),
            ("a".repeat(190).as_str(), ""),
            ("a".repeat(191).as_str(), ""),
            ("a".repeat(100).as_str(), "n".repeat(91).as_str()),
            ("a".repeat(100).as_str(), "n".repeat(92).as_str()),
            ("AK", "x".repeat(5000).as_str()),
        ] {
            let joined = [ak.as_bytes(), &[0], nonce.as_bytes()].concat();
            let want = digest::digest(&digest::SHA256, &joined);
            assert_eq!(
                &nonce_digest(ak, nonce)[..],
                want.as_ref(),
                "{} {}",
                ak.len(),
                nonce.len()
            );
        }
    }

    #[test]
    fn v1_doc_vector() {
        let p = pairs(&[
            ("AccessKeyId", "testid"),
            ("Action", "CreateKey"),
            ("Format", "json"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-03-28T03:13:08Z"),
            ("Version", "2016-01-20"),
        ]);
        assert_eq!(
            v1_sig("GET", "testsecret", &p),
            "41wk2SSX1GJh7fwnc5eqOfiJPFg="
        );
    }

    #[test]
    fn v1_special_characters_vector() {
        let p = pairs(&[
            ("AccessKeyId", "testid"),
            ("Action", "Encrypt"),
            ("Version", "2016-01-20"),
            ("Format", "JSON"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", "0123456789abcdef"),
            ("Timestamp", "2024-01-01T00:00:00Z"),
            ("RegionId", "cn-hangzhou"),
            ("KeyId", "alias/test key"),
            ("Plaintext", "aGVsbG8+/w=="),
            ("EncryptionContext", "{\"k\":\"v*~é\"}"),
        ]);
        assert_eq!(
            v1_sig("POST", "testsecret", &p),
            "rqdYqmmH2jgvgAkVpgVKvNntwWg="
        );
    }

    fn v1_request(params: Vec<(String, String)>) -> Params {
        Params {
            query: params,
            body: vec![],
        }
    }

    #[test]
    fn v1_accepts_the_quote_plus_signature_of_creds_py() {
        // Reference alibaba-ram-sts.md §1.3: both canonicalisations of one request.
        let base = pairs(&[
            ("AccessKeyId", "testid"),
            ("Action", "AssumeRole"),
            ("DurationSeconds", "3600"),
            ("Format", "JSON"),
            ("Policy", r#"{"Version": "1", "Statement": []}"#),
            ("RoleArn", "acs:ram::123456789012:role/kms-user"),
            ("RoleSessionName", "alice"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "11111111-2222-3333-4444-555555555555"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2024-01-01T00:00:00Z"),
            ("Version", "2015-04-01"),
        ]);
        assert_eq!(
            v1_sig("GET", "testsecret", &base),
            "zu2xZeZ7wT7RKpwJBBMOtMYExw4="
        );
        for sig in [
            "zu2xZeZ7wT7RKpwJBBMOtMYExw4=",
            "6+yj0NQm9aNOofRC2cTD/aw194Y=",
        ] {
            let mut p = base.clone();
            p.push(("Signature".into(), sig.into()));
            let params = v1_request(p);
            let view = RequestView {
                method: "GET",
                path: "/",
                params: &params,
                headers: &[],
                body: b"",
            };
            parse(&view).unwrap().verify(b"testsecret").unwrap();
            assert!(parse(&view).unwrap().verify(b"other").is_err());
        }
    }

    #[test]
    fn v1_verify_accepts_and_rejects() {
        let mut p = pairs(&[
            ("AccessKeyId", "testid"),
            ("Action", "Encrypt"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", "n1"),
            ("SignatureType", ""),
            ("Timestamp", "2024-01-01T00:00:00Z"),
        ]);
        let sig = v1_sig("POST", "testsecret", &p);
        p.push(("Signature".into(), sig));
        let params = v1_request(p.clone());
        let view = RequestView {
            method: "POST",
            path: "/",
            params: &params,
            headers: &[],
            body: b"",
        };
        let pending = parse(&view).unwrap();
        assert_eq!(pending.access_key_id, "testid");
        assert_eq!(pending.nonce, "n1");
        pending.verify(b"testsecret").unwrap();
        let err = pending.verify(b"othersecret").unwrap_err();
        assert_eq!(err.code(), "SignatureDoesNotMatch");
        assert!(err
            .message()
            .contains("server string to sign is:POST&%2F&AccessKeyId%3Dtestid"));
        // GET with the same parameters signs differently.
        let view = RequestView {
            method: "GET",
            path: "/",
            params: &params,
            headers: &[],
            body: b"",
        };
        assert!(parse(&view).unwrap().verify(b"testsecret").is_err());
    }

    #[test]
    fn v3_vector() {
        let params = Params {
            query: pairs(&[
                ("KeyId", "alias/test key"),
                ("Plaintext", "aGVsbG8="),
                ("EncryptionContext", "{\"a\":\"b\"}"),
            ]),
            body: vec![],
        };
        let mut headers = pairs(&[
            ("host", "127.0.0.1:8080"),
            ("x-acs-version", "2016-01-20"),
            ("x-acs-action", "Encrypt"),
            ("x-acs-date", "2024-01-01T00:00:00Z"),
            ("x-acs-signature-nonce", "0123456789abcdef0123456789abcdef"),
            ("accept", "application/json"),
            (
                "x-acs-content-sha256",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
        ]);
        let signed = "accept;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version";
        headers.push((
            "authorization".into(),
            format!("ACS3-HMAC-SHA256 Credential=testid,SignedHeaders={signed},Signature=7da68aaa98aaa1553cd74caf1a17df6b3155b13c23290fc58f60cc68b0f21773"),
        ));
        let view = RequestView {
            method: "POST",
            path: "/",
            params: &params,
            headers: &borrow(&headers),
            body: b"",
        };
        let canonical = v3_canonical_request(&view, &signed.split(';').collect::<Vec<_>>());
        assert!(canonical.contains("\nEncryptionContext=%7B%22a%22%3A%22b%22%7D&KeyId=alias%2Ftest%20key&Plaintext=aGVsbG8%3D\n"));
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "b799322d0c1f29a3dc5715f02357ea7dd2426656a47efa2df4dc9e27db006be4"
        );
        let pending = parse(&view).unwrap();
        assert_eq!(pending.scheme, Scheme::V3HmacSha256);
        assert_eq!(pending.access_key_id, "testid");
        pending.verify(b"testsecret").unwrap();
        assert_eq!(
            pending.verify(b"wrong").unwrap_err().code(),
            "SignatureDoesNotMatch"
        );
        // A different body changes the payload hash and breaks the signature.
        let view = RequestView {
            method: "POST",
            path: "/",
            params: &params,
            headers: &borrow(&headers),
            body: b"x=1",
        };
        assert!(parse(&view).unwrap().verify(b"testsecret").is_err());
    }

    #[test]
    fn v3_requires_signed_date_and_nonce() {
        let params = Params::default();
        let headers = pairs(&[
            ("x-acs-date", "2024-01-01T00:00:00Z"),
            ("x-acs-signature-nonce", "n"),
            (
                "authorization",
                "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host;x-acs-date,Signature=00",
            ),
        ]);
        let view = RequestView {
            method: "POST",
            path: "/",
            params: &params,
            headers: &borrow(&headers),
            body: b"",
        };
        assert_eq!(parse(&view).unwrap_err().code(), "IncompleteSignature");
    }

    #[test]
    fn v3_requires_host_and_every_acs_header_signed() {
        let params = Params::default();
        let all = [
            "host",
            "x-acs-action",
            "x-acs-version",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-content-sha256",
            "x-acs-security-token",
        ];
        for unsigned in all {
            let signed: Vec<&str> = all.iter().copied().filter(|h| *h != unsigned).collect();
            let mut headers: Vec<(String, String)> = all
                .iter()
                .map(|h| (h.to_string(), "v".to_string()))
                .collect();
            headers[3].1 = "2024-01-01T00:00:00Z".into();
            headers.push(("accept".into(), "application/json".into()));
            headers.push((
                "authorization".into(),
                format!(
                    "ACS3-HMAC-SHA256 Credential=a,SignedHeaders={},Signature=00",
                    signed.join(";")
                ),
            ));
            let view = RequestView {
                method: "POST",
                path: "/",
                params: &params,
                headers: &borrow(&headers),
                body: b"",
            };
            let err = parse(&view).unwrap_err();
            assert_eq!(err.code(), "IncompleteSignature", "{unsigned}");
            assert!(err.message().contains(unsigned), "{}", err.message());
            // `accept` may stay unsigned, as the SDKs leave it.
            if unsigned == "x-acs-security-token" {
                headers.retain(|(k, _)| k != unsigned);
                let view = RequestView {
                    method: "POST",
                    path: "/",
                    params: &params,
                    headers: &borrow(&headers),
                    body: b"",
                };
                assert!(parse(&view).is_ok());
            }
        }
    }

    #[test]
    fn timestamps_and_nonces() {
        let p = Pending {
            scheme: Scheme::V1HmacSha1,
            access_key_id: "a".into(),
            timestamp: 1000,
            nonce: "n".into(),
            string_to_sign: String::new(),
            signature: String::new(),
        };
        assert!(p.check_time(1000 + 900).is_ok());
        assert_eq!(p.check_time(1000 + 901), Err(KmsError::TimeStampExpired));
        assert_eq!(p.check_time(1000 - 901), Err(KmsError::TimeStampExpired));
        let c = NonceCache::new();
        c.check_and_record("a", "n", 1000, 1000).unwrap();
        assert_eq!(
            c.check_and_record("a", "n", 1000, 1500),
            Err(KmsError::SignatureNonceUsed)
        );
        c.check_and_record("b", "n", 1000, 1500).unwrap();
        // Within the window (and up to the end of its time bucket) the nonce is remembered.
        assert_eq!(
            c.check_and_record("a", "n", 1000, 1000 + 900),
            Err(KmsError::SignatureNonceUsed)
        );
        // After it the nonce is forgotten (and its timestamp would be refused anyway).
        c.check_and_record("a", "n", 1000, 1000 + 900 + i64::from(BUCKET_SECONDS))
            .unwrap();
    }

    #[test]
    fn a_journal_keeps_nonces_across_a_restart() {
        let dir = std::env::temp_dir().join(format!("kms-nonce-cache-{}", uuid::Uuid::new_v4()));
        let t0 = 1_800_000_000i64;
        let mut c = NonceCache::new();
        assert_eq!(c.open_journal(&dir, t0).unwrap(), Restored::default());
        for i in 0..5_000 {
            c.check_and_record("a", &format!("n{i}"), t0, t0).unwrap();
        }
        // One dated 15 minutes ahead is remembered until 30 minutes from now.
        c.check_and_record("a", "ahead", t0 + 900, t0).unwrap();
        drop(c);
        // A new process: everything seen is refused, in every shard.
        let mut c = NonceCache::new();
        let restored = c.open_journal(&dir, t0 + 60).unwrap();
        assert_eq!((restored.nonces, restored.removed), (5_001, 0));
        for i in 0..5_000 {
            assert_eq!(
                c.check_and_record("a", &format!("n{i}"), t0, t0 + 60),
                Err(KmsError::SignatureNonceUsed),
                "n{i}"
            );
        }
        c.check_and_record("b", "n1", t0, t0 + 60).unwrap();
        drop(c);
        // 20 minutes on: the nonces dated t0 are past their window (and their files gone);
        // the one dated ahead is still refused, and so is "b"/"n1" (recorded after restart).
        let mut c = NonceCache::new();
        let later = t0 + 1200;
        let restored = c.open_journal(&dir, later).unwrap();
        assert_eq!(restored.nonces, 1);
        assert!(restored.removed >= 1);
        assert_eq!(
            c.check_and_record("a", "ahead", t0 + 900, later),
            Err(KmsError::SignatureNonceUsed)
        );
        c.check_and_record("a", "n7", later, later).unwrap();
        drop(c);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nonces_expire_by_whole_buckets_and_memory_stays_bounded() {
        let c = NonceCache::new();
        let t0 = 1_800_000_000i64;
        // A nonce dated 15 minutes ahead is remembered until 30 minutes from now.
        c.check_and_record("a", "ahead", t0 + 900, t0).unwrap();
        for late in [t0 + 1000, t0 + 1799] {
            assert_eq!(
                c.check_and_record("a", "ahead", t0 + 900, late),
                Err(KmsError::SignatureNonceUsed)
            );
        }
        // One that is just in time is remembered for 15 minutes from now.
        c.check_and_record("a", "late", t0 - 900, t0).unwrap();
        assert_eq!(
            c.check_and_record("a", "late", t0 - 900, t0 + 899),
            Err(KmsError::SignatureNonceUsed)
        );
        // A wave of nonces, then a second wave once the first has expired: the first one's
        // buckets are dropped whole, so what is kept is the second wave alone.
        for i in 0..20_000 {
            c.check_and_record("w", &format!("first {i}"), t0, t0)
                .unwrap();
        }
        assert!(c.len() >= 20_000);
        let later = t0 + 2 * MAX_SKEW_SECONDS + 2 * i64::from(BUCKET_SECONDS);
        for i in 0..20_000 {
            c.check_and_record("w", &format!("second {i}"), later, later)
                .unwrap();
        }
        assert_eq!(c.len(), 20_000);
        // The first wave is forgotten, the second is not.
        c.check_and_record("w", "first 7", later, later).unwrap();
        assert_eq!(
            c.check_and_record("w", "second 7", later, later),
            Err(KmsError::SignatureNonceUsed)
        );
        // However the requests are dated, a shard holds at most BUCKETS sets.
        for i in 0..5_000i64 {
            let ts = later + (i % 1800) - 900;
            let _ = c.check_and_record("x", &i.to_string(), ts, later);
        }
        assert!(c.len() <= 20_000 + 5_000 + 1);
    }

    #[test]
    fn replays_are_refused_across_merges_seals_and_expiry() {
        // Merges every 8 nonces of a shard's bucket (and then every sixteenth of it).
        replays_across_merges(NonceCache::with_merge_min(8));
    }

    #[test]
    fn replays_are_refused_across_merges_of_spilled_sets() {
        // The same, every frozen set spilled (only 6 bits of each low part kept in memory,
        // so that tails are compared often), and the tails left on disk are checked.
        let dir = crate::protocol::nonce_set::TempDir::new();
        let mut c = NonceCache::with_merge_min(8);
        c.set_spill(Some(SpillDir::with(&dir.0, 6, 1)));
        let c = replays_across_merges(c);
        assert!(c.disk_bytes() > 0);
        drop(c);
        assert!(
            crate::protocol::nonce_set::tail_files(&dir.0).is_empty(),
            "every tail file closed"
        );
    }

    #[test]
    fn a_cut_tail_file_refuses_with_503_and_a_restart_rebuilds_it() {
        let dir = std::env::temp_dir().join(format!("kms-nonce-spill-{}", uuid::Uuid::new_v4()));
        let t0 = 1_800_000_000i64;
        let mut c = NonceCache::with_merge_min(16);
        c.spill_min = 64;
        c.open_journal(&dir, t0).unwrap();
        for i in 0..20_000 {
            c.check_and_record("s", &format!("n{i}"), t0, t0).unwrap();
        }
        let before = c.heap_bytes();
        let files = crate::protocol::nonce_set::tail_files(&dir);
        // The journal's own file, and one tail file per shard at least.
        assert!(files.len() > 32, "{files:?}");
        assert!(c.disk_bytes() > 20_000 * 3, "{}", c.disk_bytes());
        for i in (0..20_000).step_by(11) {
            assert_eq!(
                c.check_and_record("s", &format!("n{i}"), t0, t0 + 1),
                Err(KmsError::SignatureNonceUsed)
            );
        }
        // An attacker (or a failing disk) empties every tail file: a nonce only the tails
        // can confirm is refused with 503, never taken as new.
        for f in &files {
            let target = std::fs::read_link(f).unwrap();
            if !target.to_string_lossy().ends_with(".nonces") {
                let file = std::fs::OpenOptions::new().write(true).open(f).unwrap();
                file.set_len(0).unwrap();
            }
        }
        let mut unavailable = 0;
        for i in (0..20_000).step_by(11) {
            match c.check_and_record("s", &format!("n{i}"), t0, t0 + 2) {
                Err(KmsError::NonceJournalUnavailable) => unavailable += 1,
                Err(KmsError::SignatureNonceUsed) => {}
                other => panic!("n{i}: {other:?}"),
            }
        }
        assert!(unavailable > 1_000, "{unavailable}");
        drop(c);
        // A restart reads the journal and spills again: every nonce refused as used.
        let mut c = NonceCache::with_merge_min(16);
        c.spill_min = 64;
        let restored = c.open_journal(&dir, t0 + 10).unwrap();
        assert_eq!(restored.nonces, 20_000);
        assert!(c.disk_bytes() > 20_000 * 3);
        assert!(c.heap_bytes() < before, "{} < {before}", c.heap_bytes());
        for i in 0..20_000 {
            assert_eq!(
                c.check_and_record("s", &format!("n{i}"), t0, t0 + 10),
                Err(KmsError::SignatureNonceUsed),
                "n{i}"
            );
        }
        drop(c);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn replays_across_merges(c: NonceCache) -> NonceCache {
        let t0 = 1_800_000_000i64;
        let n = 20_000;
        for i in 0..n {
            c.check_and_record("m", &format!("n{i}"), t0, t0).unwrap();
            // Every nonce so far is refused, whatever merges have run since it came.
            if i % 997 == 0 {
                for j in (0..=i).step_by(13) {
                    assert_eq!(
                        c.check_and_record("m", &format!("n{j}"), t0, t0),
                        Err(KmsError::SignatureNonceUsed),
                        "n{j} after {i}"
                    );
                }
            }
        }
        assert_eq!(c.len(), n);
        // Most nonces are in frozen sets by now: far less than 8 bytes each.
        assert!(c.heap_bytes() < n * 8, "{} bytes", c.heap_bytes());
        // Five minutes on, the clock has passed the first bucket's opening: the next request
        // of a shard seals it (merged whole, recent table freed); replays are still refused.
        let later = t0 + 300;
        for i in 0..n {
            assert_eq!(
                c.check_and_record("m", &format!("n{i}"), t0, later),
                Err(KmsError::SignatureNonceUsed),
                "n{i}"
            );
        }
        for i in 0..200 {
            c.check_and_record("m", &format!("after {i}"), later, later)
                .unwrap();
        }
        for i in 0..n {
            assert_eq!(
                c.check_and_record("m", &format!("n{i}"), t0, later),
                Err(KmsError::SignatureNonceUsed),
                "n{i} after sealing"
            );
        }
        // Past the window plus a bucket, the first nonces are forgotten (their bucket and its
        // frozen set dropped), the later ones are not.
        let gone = t0 + 900 + i64::from(BUCKET_SECONDS);
        c.check_and_record("m", "n5", gone, gone).unwrap();
        assert_eq!(
            c.check_and_record("m", "after 5", later, gone),
            Err(KmsError::SignatureNonceUsed)
        );
        let past_all = later + 900 + i64::from(BUCKET_SECONDS);
        c.check_and_record("m", "after 5", past_all, past_all)
            .unwrap();
        c
    }

    #[test]
    fn a_restored_journal_refuses_its_nonces_and_merges_on() {
        let dir = std::env::temp_dir().join(format!("kms-nonce-merge-{}", uuid::Uuid::new_v4()));
        let t0 = 1_800_000_000i64;
        let mut c = NonceCache::with_merge_min(4);
        c.open_journal(&dir, t0).unwrap();
        for i in 0..3_000 {
            c.check_and_record("j", &format!("n{i}"), t0, t0).unwrap();
        }
        drop(c);
        let mut c = NonceCache::with_merge_min(4);
        let restored = c.open_journal(&dir, t0 + 10).unwrap();
        assert_eq!(restored.nonces, 3_000);
        assert_eq!(c.len(), 3_000);
        for i in 0..3_500 {
            let r = c.check_and_record("j", &format!("n{i}"), t0, t0 + 10);
            if i < 3_000 {
                assert_eq!(r, Err(KmsError::SignatureNonceUsed), "n{i}");
            } else {
                assert_eq!(r, Ok(()), "n{i}");
            }
        }
        for i in 0..3_500 {
            assert_eq!(
                c.check_and_record("j", &format!("n{i}"), t0, t0 + 20),
                Err(KmsError::SignatureNonceUsed),
                "n{i}"
            );
        }
        drop(c);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_concurrent_burst_refuses_every_replay_exactly_once() {
        concurrent_burst(NonceCache::with_merge_min(16));
    }

    #[test]
    fn a_concurrent_burst_over_spilled_sets_refuses_every_replay_exactly_once() {
        let dir = crate::protocol::nonce_set::TempDir::new();
        let mut c = NonceCache::with_merge_min(16);
        c.set_spill(Some(SpillDir::with(&dir.0, 4, 1)));
        concurrent_burst(c);
    }

    fn concurrent_burst(c: NonceCache) {
        // 8 threads each send 4,000 nonces of their own and replay those of their neighbour
        // as they go: every nonce is accepted exactly once, by whoever came first.
        let t0 = 1_800_000_000i64;
        let threads = 8;
        let per = 4_000;
        let accepted: Vec<std::collections::HashSet<String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let c = &c;
                    s.spawn(move || {
                        let mut ok = std::collections::HashSet::new();
                        for i in 0..per {
                            for owner in [t, (t + 1) % threads] {
                                let nonce = format!("{owner}-{i}");
                                match c.check_and_record("burst", &nonce, t0, t0 + (i as i64 % 3)) {
                                    Ok(()) => assert!(ok.insert(nonce)),
                                    Err(e) => assert_eq!(e, KmsError::SignatureNonceUsed),
                                }
                            }
                        }
                        ok
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let total: usize = accepted.iter().map(|a| a.len()).sum();
        assert_eq!(total, threads * per, "each nonce accepted once");
        let mut all = std::collections::HashSet::new();
        for a in accepted {
            for n in a {
                assert!(all.insert(n), "accepted twice");
            }
        }
        assert_eq!(c.len(), threads * per);
        // And every one is refused now.
        for t in 0..threads {
            for i in (0..per).step_by(7) {
                assert_eq!(
                    c.check_and_record("burst", &format!("{t}-{i}"), t0, t0 + 5),
                    Err(KmsError::SignatureNonceUsed)
                );
            }
        }
    }
}
