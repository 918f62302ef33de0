//! The nonce journal: what the nonce cache remembers, on disk, so that a request seen before
//! a restart (graceful or SIGKILL) is still refused after it (SQLite; on PostgreSQL the nodes
//! claim nonces in the database instead).
//!
//! Layout: one file per time bucket of the cache, `<data dir>/nonces/<bucket>.nonces`, made
//! of a 16-byte header (`KMSNONC1`, the bucket width and the bucket, little-endian u32s) and
//! fixed-size records: the 8 bytes the cache keeps of a nonce (the first 8 bytes of
//! SHA-256(access key id ‖ 0 ‖ nonce), little-endian), at an offset taken from a counter, so
//! records never straddle one another. A record of zeros (a slot whose write never happened)
//! means nothing. Every nonce of a file is remembered until the end of its bucket, so a
//! file is dropped whole once its bucket has passed; at most about 9 are live (30 minutes
//! plus a bucket), holding the last 15 to 30 minutes of traffic, and start-up reads only those.
//!
//! - **Durability.** A request's record is written before the request is dispatched, on the
//!   request's own thread, into the page cache: through a shared memory mapping of the file
//!   where the space is allocated (an 8-byte store, no system call; issue 21), otherwise with
//!   `pwrite`. Either way the record is in the kernel's page cache at once, and data there
//!   survives the death of the process, SIGKILL included. Power loss is another matter: a
//!   background thread `fdatasync`s the live files every second, so a power loss forgets at
//!   most about the last second of nonces (those requests could be replayed once, within
//!   their 15 minutes). Waiting for the disk on every request would cost far more than it
//!   buys.
//! - **A full disk.** Each live file keeps space allocated ahead of its records (`fallocate`,
//!   from 64 KiB up to 8 MiB, growing with the traffic; the file's size covers it, the
//!   unwritten tail reads as zeros), so records still fit when the disk fills.
//! - **The mapping.** Only space `fallocate` has allocated is written through the mapping
//!   (1 MiB windows mapped as the records reach them), so a store never needs a block the
//!   filesystem could refuse: that would be SIGBUS, where `pwrite` returns an error. Where
//!   `fallocate` is not supported, or past the allocated space, records go by `pwrite`.
//!   Windows the records have passed are handed back with `madvise(MADV_DONTNEED)` (their
//!   pages stay in the page cache, written back as usual), so the journal does not grow the
//!   process's resident memory; a late store into such a window just faults the page in
//!   again. Windows are unmapped when their file is dropped, which no request can still be
//!   writing to (requests hold the file). A record that cannot be written refuses its request with 503
//!   `ServiceUnavailableTemporary` before anything is done: a request the server could not
//!   remember is not served, so it cannot be replayed either.
//! - **Start-up** reads the live files whole and hands their records to the cache in one go
//!   per bucket; stale files are removed. A file whose header is not ours is moved aside to
//!   `<name>.damaged` for inspection (an error is logged) and the server starts.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use crate::private_fs;

const MAGIC: &[u8; 8] = b"KMSNONC1";
const HEADER: u64 = 16;
const RECORD: u64 = 8;
const SUFFIX: &str = ".nonces";
/// Space allocated ahead of the records of a file: at first, and at most.
const RESERVE_MIN: u64 = 64 * 1024;
const RESERVE_MAX: u64 = 8 * 1024 * 1024;
/// How often the live files are flushed to the disk (the power-loss window).
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// The journal of one nonce cache: live bucket files, by slot (`bucket % slots`).
pub struct NonceJournal {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    bucket_seconds: u32,
    slots: RwLock<Vec<Option<Arc<Segment>>>>,
    /// Set while records cannot be written (for logging the change once).
    failing: AtomicBool,
}

/// One bucket's file.
struct Segment {
    bucket: u32,
    path: PathBuf,
    file: File,
    /// Offset of the next record.
    next: AtomicU64,
    /// End of the space allocated for records.
    allocated: AtomicU64,
    /// Once `next` reaches this, more space is allocated.
    renew_at: AtomicU64,
    renewing: Mutex<()>,
    /// `next` at the last sync.
    synced: AtomicU64,
    /// Whether `fallocate` allocates space in this file (the records in it may then be
    /// written through the mapping).
    mappable: AtomicBool,
    /// The mapped windows of the file ([`WINDOW`] bytes each), null until mapped.
    windows: Box<[std::sync::atomic::AtomicPtr<u8>]>,
    mapping: Mutex<()>,
}

/// Size of a mapped window of a journal file, and how many a file may have (beyond them,
/// records go by `pwrite`).
const WINDOW: u64 = 1024 * 1024;
const MAX_WINDOWS: usize = 1024;
/// A window's pages are handed back once the records are this many windows past it: a
/// store into it would have to come from a request that took its offset that many windows
/// (3 × 131,072 records) earlier and has not yet written it. Such a late store is still
/// safe (the page faults in again), but it could meet the page between its write-back and
/// the `MADV_DONTNEED` and leave it clean with the record only in memory; the lag makes
/// that practically impossible.
const RELEASE_LAG: usize = 3;

/// What start-up found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Live files read.
    pub files: usize,
    /// Nonces handed to the cache.
    pub nonces: u64,
    /// Stale files removed.
    pub removed: usize,
    /// Files that were not journal files, moved aside to `<name>.damaged`.
    pub damaged: usize,
}

fn file_name(bucket: u32) -> String {
    format!("{bucket:010}{SUFFIX}")
}

fn header(bucket_seconds: u32, bucket: u32) -> [u8; HEADER as usize] {
    let mut h = [0u8; HEADER as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&bucket_seconds.to_le_bytes());
    h[12..16].copy_from_slice(&bucket.to_le_bytes());
    h
}

/// Allocates `len` bytes past `offset`, the file's size growing to cover them (zeros until
/// written). `Ok(false)` where nothing can be reserved: elsewhere than on Linux, and on
/// filesystems without `fallocate`.
#[cfg(target_os = "linux")]
fn reserve(f: &File, offset: u64, len: u64) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(std::io::Error::from(ErrorKind::InvalidInput));
    };
    loop {
        // SAFETY: fallocate on a file descriptor we own; no memory is passed.
        let r = unsafe { libc::fallocate(f.as_raw_fd(), 0, off, len) };
        if r == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => return Ok(false),
            _ => return Err(e),
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn reserve(_f: &File, _offset: u64, _len: u64) -> std::io::Result<bool> {
    Ok(false)
}

/// Maps `WINDOW` bytes of `f` from `offset` (a multiple of the page size), shared and
/// writable. Pages past the end of the file are never touched (only allocated space is
/// written through a window).
#[cfg(target_os = "linux")]
fn map_window(f: &File, offset: u64) -> Option<*mut u8> {
    use std::os::fd::AsRawFd;
    let off = libc::off_t::try_from(offset).ok()?;
    // SAFETY: a new shared mapping of a file we own, at an address the kernel chooses; no
    // existing memory is affected. It is unmapped in `Segment::drop`.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            WINDOW as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            off,
        )
    };
    (p != libc::MAP_FAILED).then_some(p.cast::<u8>())
}

#[cfg(not(target_os = "linux"))]
fn map_window(_f: &File, _offset: u64) -> Option<*mut u8> {
    None
}

impl Segment {
    /// Opens (creating if needed) the file of `bucket`, its records starting at `next`.
    fn open(dir: &Path, bucket_seconds: u32, bucket: u32, next: u64) -> std::io::Result<Self> {
        let path = dir.join(file_name(bucket));
        let file = private_fs::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        if next <= HEADER {
            file.write_all_at(&header(bucket_seconds, bucket), 0)?;
        }
        let next = next.max(HEADER);
        let seg = Segment {
            bucket,
            path,
            file,
            next: AtomicU64::new(next),
            allocated: AtomicU64::new(next),
            renew_at: AtomicU64::new(next),
            renewing: Mutex::new(()),
            synced: AtomicU64::new(next),
            mappable: AtomicBool::new(false),
            windows: (0..MAX_WINDOWS)
                .map(|_| std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            mapping: Mutex::new(()),
        };
        // Without room ahead (a full disk) the file still opens: records are written while
        // the filesystem takes them, and the reserve is tried again as they come.
        if let Err(e) = seg.renew(next) {
            tracing::warn!(file = %seg.path.display(), error = %e, "cannot allocate space ahead in the nonce journal");
        }
        Ok(seg)
    }

    /// Allocates more space past what is allocated: as much as has been written (between
    /// [`RESERVE_MIN`] and [`RESERVE_MAX`]), and renews again when half of it is used.
    fn renew(&self, at: u64) -> std::io::Result<()> {
        let Ok(_guard) = self.renewing.try_lock() else {
            return Ok(()); // another request is at it
        };
        let allocated = self.allocated.load(Ordering::Acquire);
        if at < self.renew_at.load(Ordering::Acquire) {
            return Ok(());
        }
        let grow = self
            .next
            .load(Ordering::Relaxed)
            .clamp(RESERVE_MIN, RESERVE_MAX);
        let from = allocated.max(at);
        match reserve(&self.file, from, grow) {
            Ok(reserved) => {
                // Only space really allocated may be written through the mapping.
                self.mappable.store(reserved, Ordering::Release);
                self.allocated.store(from + grow, Ordering::Release);
                self.renew_at.store(from + grow / 2, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                // Try again a filesystem block later; what is allocated still serves.
                self.renew_at.store(at + 4096, Ordering::Release);
                Err(e)
            }
        }
    }

    fn append(&self, key: u64) -> std::io::Result<()> {
        let at = self.next.fetch_add(RECORD, Ordering::Relaxed);
        if at >= self.renew_at.load(Ordering::Relaxed) {
            if let Err(e) = self.renew(at) {
                if at + RECORD > self.allocated.load(Ordering::Acquire) {
                    tracing::warn!(file = %self.path.display(), error = %e, "cannot allocate space ahead in the nonce journal");
                }
            }
        }
        if self.mappable.load(Ordering::Acquire)
            && at + RECORD <= self.allocated.load(Ordering::Acquire)
        {
            if let Some(slot) = self.slot(at) {
                // The record goes into the page cache through the mapping: one store.
                slot.store(key.to_le(), Ordering::Relaxed);
                return Ok(());
            }
        }
        self.file.write_all_at(&key.to_le_bytes(), at)
    }

    /// The 8 bytes of the record at `at` (allocated space) in its mapped window, mapping the
    /// window when the records first reach it and handing back the window [`RELEASE_LAG`]
    /// before it.
    fn slot(&self, at: u64) -> Option<&AtomicU64> {
        let index = usize::try_from(at / WINDOW).ok()?;
        let window = self.windows.get(index)?;
        let mut base = window.load(Ordering::Acquire);
        if base.is_null() {
            let _guard = self.mapping.lock().ok()?;
            base = window.load(Ordering::Acquire);
            if base.is_null() {
                base = map_window(&self.file, index as u64 * WINDOW)?;
                window.store(base, Ordering::Release);
                if let Some(passed) = index
                    .checked_sub(RELEASE_LAG)
                    .and_then(|i| self.windows.get(i))
                {
                    release_window(passed.load(Ordering::Acquire));
                }
            }
        }
        let offset = usize::try_from(at % WINDOW).ok()?;
        // SAFETY: `base` maps WINDOW bytes of the file and stays mapped while `self` lives
        // (unmapped only in Drop); `offset + 8 <= WINDOW` and `offset` is a multiple of 8
        // (records are 8 bytes from a 16-byte header, windows are page-aligned), so this is
        // an aligned 8-byte location. The page holding it is inside the file's allocated
        // space (the caller checked `at + 8 <= allocated`), so touching it cannot fault on
        // a full disk. Stores from several threads go through the atomic type; each record
        // offset is handed out once.
        Some(unsafe { &*base.add(offset).cast::<AtomicU64>() })
    }

    /// Flushes the records written since the last sync to the disk.
    fn sync(&self) -> std::io::Result<()> {
        let next = self.next.load(Ordering::Acquire);
        if self.synced.load(Ordering::Acquire) >= next {
            return Ok(());
        }
        self.file.sync_data()?;
        self.synced.fetch_max(next, Ordering::AcqRel);
        Ok(())
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        for w in self.windows.iter() {
            let base = w.load(Ordering::Acquire);
            if !base.is_null() {
                unmap_window(base);
            }
        }
    }
}

/// Drops a passed window's pages from the process (they stay in the page cache, dirty ones
/// written back as usual). A store into it later faults the page in again.
#[cfg(target_os = "linux")]
fn release_window(base: *mut u8) {
    if !base.is_null() {
        // SAFETY: `base` is a live WINDOW-byte shared file mapping of ours; MADV_DONTNEED on
        // a shared file mapping only drops page-table entries, the data stays in the file.
        unsafe { libc::madvise(base.cast(), WINDOW as usize, libc::MADV_DONTNEED) };
    }
}

#[cfg(not(target_os = "linux"))]
fn release_window(_base: *mut u8) {}

#[cfg(target_os = "linux")]
fn unmap_window(base: *mut u8) {
    // SAFETY: `base` was returned by mmap for WINDOW bytes and nothing can reach it any
    // more (its segment is being dropped, so no request holds it).
    unsafe { libc::munmap(base.cast(), WINDOW as usize) };
}

#[cfg(not(target_os = "linux"))]
fn unmap_window(_base: *mut u8) {}

/// Reads a bucket file: its records (zeros left out) and where the next record goes; `None`
/// if its header is not a journal header of this bucket (nor zeros, as a power loss may leave
/// it).
fn read_segment(
    path: &Path,
    bucket_seconds: u32,
    bucket: u32,
) -> Result<Option<(Vec<u64>, u64)>, String> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let Some((head, body)) = bytes.split_at_checked(HEADER as usize) else {
        return Ok(Some((Vec::new(), HEADER)));
    };
    if head != header(bucket_seconds, bucket) && head.iter().any(|b| *b != 0) {
        return Ok(None);
    }
    let mut keys = Vec::with_capacity(body.len() / RECORD as usize);
    let mut end = 0usize;
    for (i, chunk) in body.chunks_exact(RECORD as usize).enumerate() {
        let mut k = [0u8; RECORD as usize];
        k.copy_from_slice(chunk);
        let key = u64::from_le_bytes(k);
        if key != 0 {
            keys.push(key);
            end = i + 1;
        }
    }
    Ok(Some((keys, HEADER + end as u64 * RECORD)))
}

impl NonceJournal {
    /// Opens the journal in `dir` (created 0700 if missing) for a cache of `slots` buckets of
    /// `bucket_seconds`: removes the files of buckets before `now`'s, and hands the records of
    /// every other file to `restore` (bucket, keys), then keeps those files for appending.
    /// Starts the thread that syncs the files every second.
    pub fn open(
        dir: &Path,
        bucket_seconds: u32,
        slots: usize,
        now: i64,
        mut restore: impl FnMut(u32, &[u64]),
    ) -> Result<(Self, Restored), String> {
        private_fs::create_dir(dir).map_err(|e| {
            format!(
                "cannot create the nonce journal directory {}: {e} (check that the data dir is writable by this user)",
                dir.display()
            )
        })?;
        let now_bucket = u32::try_from(now.max(0)).unwrap_or(u32::MAX) / bucket_seconds;
        let mut found: Vec<(u32, PathBuf)> = Vec::new();
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot list the nonce journal {}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let Some(bucket) = name
                .to_str()
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            found.push((bucket, path));
        }
        found.sort();
        let mut report = Restored::default();
        let mut segments: Vec<Option<Arc<Segment>>> = (0..slots).map(|_| None).collect();
        for (bucket, path) in found {
            // A bucket that has passed, or one farther ahead than the cache can hold (a
            // clock set back): nothing in it can matter any more.
            let ahead = bucket.saturating_sub(now_bucket) as usize;
            if bucket < now_bucket || ahead >= slots {
                std::fs::remove_file(&path)
                    .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
                report.removed += 1;
                continue;
            }
            let (keys, next) = match read_segment(&path, bucket_seconds, bucket)? {
                Some(read) => read,
                None => {
                    let aside = path.with_extension("nonces.damaged");
                    std::fs::rename(&path, &aside)
                        .map_err(|e| format!("cannot move {} aside: {e}", path.display()))?;
                    tracing::error!(file = %aside.display(), "a file of the nonce journal has a header that is not a journal header: moved aside; nonces it may hold are not remembered");
                    report.damaged += 1;
                    (Vec::new(), HEADER)
                }
            };
            restore(bucket, &keys);
            report.files += 1;
            report.nonces += keys.len() as u64;
            let seg = Segment::open(dir, bucket_seconds, bucket, next)
                .map_err(|e| format!("cannot open {} for writing: {e}", path.display()))?;
            segments[bucket as usize % slots] = Some(Arc::new(seg));
        }
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            bucket_seconds,
            slots: RwLock::new(segments),
            failing: AtomicBool::new(false),
        });
        start_sync_thread(Arc::downgrade(&inner));
        Ok((Self { inner }, report))
    }

    /// Writes `key` into the file of `bucket` (created if needed; `now_bucket` tells which
    /// files have passed). Returns once the record is in the kernel.
    pub fn append(&self, bucket: u32, key: u64, now_bucket: u32) -> std::io::Result<()> {
        let result = self.try_append(bucket, key, now_bucket);
        match &result {
            Ok(()) => {
                if self.inner.failing.load(Ordering::Relaxed) {
                    self.inner.failing.store(false, Ordering::Relaxed);
                    tracing::warn!(dir = %self.inner.dir.display(), "the nonce journal can be written again");
                }
            }
            Err(e) => {
                if !self.inner.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(dir = %self.inner.dir.display(), error = %e, "the nonce journal cannot be written: signed requests are refused (503) until it can");
                }
            }
        }
        result
    }

    fn try_append(&self, bucket: u32, key: u64, now_bucket: u32) -> std::io::Result<()> {
        {
            let slots = self.inner.read_slots();
            let n = slots.len();
            if let Some(seg) = &slots[bucket as usize % n] {
                if seg.bucket == bucket {
                    return seg.append(key);
                }
            }
        }
        self.rotate(bucket, now_bucket)?.append(key)
    }

    /// Opens the file of `bucket` in its slot, dropping the files of buckets that have passed
    /// (the slot's previous one among them).
    fn rotate(&self, bucket: u32, now_bucket: u32) -> std::io::Result<Arc<Segment>> {
        let mut stale = Vec::new();
        let seg = {
            let mut slots = self
                .inner
                .slots
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = slots.len();
            let slot = bucket as usize % n;
            match &slots[slot] {
                Some(seg) if seg.bucket == bucket => seg.clone(),
                _ => {
                    let seg = Arc::new(Segment::open(
                        &self.inner.dir,
                        self.inner.bucket_seconds,
                        bucket,
                        HEADER,
                    )?);
                    if let Some(old) = slots[slot].replace(seg.clone()) {
                        stale.push(old);
                    }
                    for s in slots.iter_mut() {
                        if s.as_ref().is_some_and(|s| s.bucket < now_bucket) {
                            stale.extend(s.take());
                        }
                    }
                    seg
                }
            }
        };
        remove(stale);
        Ok(seg)
    }

    /// Syncs the live files and removes those whose bucket has passed.
    fn maintain(inner: &Inner, now_bucket: u32) {
        let live: Vec<Arc<Segment>> = inner.read_slots().iter().flatten().cloned().collect();
        if live.iter().any(|s| s.bucket < now_bucket) {
            let mut stale = Vec::new();
            {
                let mut slots = inner
                    .slots
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for s in slots.iter_mut() {
                    if s.as_ref().is_some_and(|s| s.bucket < now_bucket) {
                        stale.extend(s.take());
                    }
                }
            }
            remove(stale);
        }
        for seg in live.iter().filter(|s| s.bucket >= now_bucket) {
            if let Err(e) = seg.sync() {
                tracing::warn!(file = %seg.path.display(), error = %e, "cannot sync the nonce journal");
            }
        }
    }

    /// Live files (for tests and diagnostics).
    pub fn files(&self) -> Vec<PathBuf> {
        self.inner
            .read_slots()
            .iter()
            .flatten()
            .map(|s| s.path.clone())
            .collect()
    }
}

impl Inner {
    fn read_slots(&self) -> std::sync::RwLockReadGuard<'_, Vec<Option<Arc<Segment>>>> {
        self.slots
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn remove(stale: Vec<Arc<Segment>>) {
    for seg in stale {
        if let Err(e) = std::fs::remove_file(&seg.path) {
            if e.kind() != ErrorKind::NotFound {
                tracing::warn!(file = %seg.path.display(), error = %e, "cannot remove a stale nonce journal file");
            }
        }
    }
}

/// Every second while the journal lives: sync, and drop files whose bucket has passed.
fn start_sync_thread(inner: Weak<Inner>) {
    let spawned = std::thread::Builder::new()
        .name("nonce-journal".into())
        .spawn(move || loop {
            std::thread::sleep(SYNC_EVERY);
            let Some(inner) = inner.upgrade() else { return };
            let now = crate::clock::system_now();
            let now_bucket = u32::try_from(now.max(0)).unwrap_or(u32::MAX) / inner.bucket_seconds;
            NonceJournal::maintain(&inner, now_bucket);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the nonce journal's sync thread: records reach the disk when the kernel writes them back");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new() -> Self {
            Self(std::env::temp_dir().join(format!("kms-nonces-{}", uuid::Uuid::new_v4())))
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn open(dir: &Path, now: i64) -> (NonceJournal, Restored, Vec<(u32, u64)>) {
        let mut seen = Vec::new();
        let (j, r) = NonceJournal::open(dir, 256, 16, now, |b, keys| {
            seen.extend(keys.iter().map(|k| (b, *k)))
        })
        .unwrap();
        (j, r, seen)
    }

    #[test]
    fn records_survive_reopening_and_stale_buckets_go() {
        let tmp = TempDir::new();
        let dir = tmp.path().join("nonces");
        let now = 1_800_000_000i64;
        let nb = (now / 256) as u32;
        let (j, r, seen) = open(&dir, now);
        assert_eq!((r, seen.len()), (Restored::default(), 0));
        for k in 1..=1000u64 {
            j.append(nb + 3 + (k % 2) as u32, k, nb).unwrap();
        }
        assert_eq!(j.files().len(), 2);
        drop(j);
        let mode = std::fs::metadata(dir.join(file_name(nb + 3))).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        // Reopened: every record comes back, under its bucket.
        let (j, r, mut seen) = open(&dir, now);
        seen.sort();
        assert_eq!((r.files, r.nonces, r.removed, r.damaged), (2, 1000, 0, 0));
        let mut want: Vec<(u32, u64)> = (1..=1000u64)
            .map(|k| (nb + 3 + (k % 2) as u32, k))
            .collect();
        want.sort();
        assert_eq!(seen, want);
        // Appending goes on after the last record, not over it.
        j.append(nb + 3, 5000, nb).unwrap();
        drop(j);
        let (_, r, seen) = open(&dir, now);
        assert_eq!(r.nonces, 1001);
        assert!(seen.contains(&(nb + 3, 5000)));
        // Once bucket nb+3 has passed its file is removed at start; nb+4's stays.
        let (j, r, _) = open(&dir, (i64::from(nb) + 4) * 256);
        assert_eq!((r.files, r.nonces, r.removed), (1, 500, 1));
        // And while running: a new bucket's file drops the files that have passed.
        j.append(nb + 9, 1, nb + 5).unwrap();
        assert_eq!(j.files(), vec![dir.join(file_name(nb + 9))]);
        assert!(!dir.join(file_name(nb + 4)).exists());
    }

    #[test]
    fn zero_slots_and_a_torn_tail_are_skipped_and_a_foreign_file_is_set_aside() {
        let tmp = TempDir::new();
        let dir = tmp.path().join("nonces");
        let now = 1_800_000_000i64;
        let nb = (now / 256) as u32;
        let (j, _, _) = open(&dir, now);
        j.append(nb + 4, 7, nb).unwrap();
        drop(j);
        // A slot whose write never happened (zeros), then a record, then half a record at
        // the end of the file (cut there: no space allocated ahead, as by `pwrite` alone).
        let path = dir.join(file_name(nb + 4));
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(HEADER + 3 * RECORD).unwrap();
        f.write_all_at(&9u64.to_le_bytes(), HEADER + 2 * RECORD)
            .unwrap();
        f.write_all_at(&[1, 2, 3], HEADER + 3 * RECORD).unwrap();
        let (j, r, seen) = open(&dir, now);
        assert_eq!(r.nonces, 2);
        assert_eq!(seen, vec![(nb + 4, 7), (nb + 4, 9)]);
        // The next record goes after the last whole one.
        j.append(nb + 4, 11, nb).unwrap();
        drop(j);
        let (_, _, seen) = open(&dir, now);
        assert_eq!(seen, vec![(nb + 4, 7), (nb + 4, 9), (nb + 4, 11)]);
        // A file that is not ours is moved aside, unchanged, and the journal opens.
        let foreign = b"something else entirely";
        std::fs::write(dir.join(file_name(nb + 5)), foreign).unwrap();
        let (j, r, seen) = open(&dir, now);
        assert_eq!((r.files, r.nonces, r.damaged), (2, 3, 1));
        assert_eq!(seen.len(), 3);
        let aside = dir.join(format!("{}.damaged", file_name(nb + 5)));
        assert_eq!(std::fs::read(&aside).unwrap(), foreign);
        // Its bucket gets a fresh file.
        j.append(nb + 5, 3, nb).unwrap();
        drop(j);
        let (_, r, _) = open(&dir, now);
        assert_eq!((r.files, r.nonces, r.damaged), (2, 4, 0));
    }

    #[test]
    fn space_is_kept_allocated_ahead() {
        let tmp = TempDir::new();
        let dir = tmp.path().join("nonces");
        let now = 1_800_000_000i64;
        let nb = (now / 256) as u32;
        let (j, _, _) = open(&dir, now);
        for k in 1..=20_000u64 {
            j.append(nb + 3, k, nb).unwrap();
        }
        let slots = j.inner.read_slots();
        let seg = slots.iter().flatten().next().unwrap();
        let next = seg.next.load(Ordering::Relaxed);
        assert_eq!(next, HEADER + 20_000 * RECORD);
        let allocated = seg.allocated.load(Ordering::Relaxed);
        assert!(allocated > next);
        // The file's size covers the space allocated ahead (zeros, skipped on reading).
        assert_eq!(std::fs::metadata(&seg.path).unwrap().len(), allocated);
        assert!(
            seg.mappable.load(Ordering::Relaxed),
            "fallocate works on the test's filesystem"
        );
    }

    /// Records written through the mapping from several threads at once are in the file the
    /// moment `append` returns (read back through another descriptor while the journal is
    /// live, as a restart after SIGKILL would), across several windows, the handed-back ones
    /// included, and again after the journal is dropped and reopened.
    #[test]
    fn mapped_records_are_in_the_file_at_once_across_windows() {
        let tmp = TempDir::new();
        let dir = tmp.path().join("nonces");
        let now = 1_800_000_000i64;
        let nb = (now / 256) as u32;
        let (j, _, _) = open(&dir, now);
        let per_thread = 120_000u64;
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let j = &j;
                s.spawn(move || {
                    for k in 0..per_thread {
                        j.append(nb + 1, t * per_thread + k + 1, nb).unwrap();
                    }
                });
            }
        });
        let total = 4 * per_thread;
        let path = dir.join(file_name(nb + 1));
        {
            let slots = j.inner.read_slots();
            let seg = slots.iter().flatten().next().unwrap();
            assert!(seg.mappable.load(Ordering::Relaxed));
            let mapped = seg
                .windows
                .iter()
                .filter(|w| !w.load(Ordering::Relaxed).is_null());
            assert!(mapped.count() >= 4, "the records span several windows");
        }
        let (mut keys, next) = read_segment(&path, 256, nb + 1).unwrap().unwrap();
        keys.sort_unstable();
        assert_eq!(keys, (1..=total).collect::<Vec<_>>());
        assert_eq!(next, HEADER + total * RECORD);
        drop(j);
        let (_, r, seen) = open(&dir, now);
        assert_eq!(r.nonces, total);
        assert_eq!(seen.len() as u64, total);
    }
}
