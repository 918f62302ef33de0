//! Frozen sets kept partly on disk (issue 21: memory flat under sustained load).
//!
//! A whole [`FrozenSet`] costs about 6 bytes a nonce, because it keeps every bit of each
//! 64-bit fingerprint, and no exact set of fingerprints can cost much less (its information
//! bound is 64 − log2 n + 1.44 bits a value). At 40,000 requests a second every nonce of the
//! last 15 to 30 minutes must be remembered, so memory would grow past 200 MB.
//!
//! A spilled set keeps in memory, for each value, its group (as before) and only the top
//! [`KEPT_BITS`] bits of its low part: about 12 bits a value, 1.5 bytes. The other low bits
//! (its *tail*, about 36 bits) go to a file of their own, packed in the same order, and are
//! read back with one `pread` only when a fingerprint matches a value's group and kept bits:
//! for a fingerprint never seen, with probability below 2^−8 per set searched (a request
//! searches the few live sets of its shard: measured, 1 request in 189 reads 16 bytes from the
//! page cache, `examples/nonce_memory.rs`); for a replay, always (one read). The answer is as exact as before:
//! every bit of every fingerprint is still compared.
//!
//! - **The files** are anonymous (`O_TMPFILE` in the nonce journal's directory, mode 0600):
//!   nothing else can open them, and the kernel frees them when the set is dropped or the
//!   process dies, SIGKILL included. They are a copy of what the journal already holds in
//!   another order, so losing them loses nothing: start-up rebuilds them from the journal.
//!   Their pages live in the page cache, which the kernel can write back and evict under
//!   memory pressure (a later read then goes to the disk); the process's own memory holds
//!   only the kept part.
//! - **Space** is allocated (`fallocate`) before a tail is written, so a full disk shows as
//!   an error at once. A tail that cannot be written (full disk, no `O_TMPFILE` support, no
//!   descriptor left) leaves the set whole in memory, as before: correctness never depends
//!   on the disk, only the memory saving does.
//! - **A tail that cannot be read** (an I/O error) is an error for the request: it is refused
//!   with 503, never served as if its nonce were new.
//! - **Merging** into a spilled set reads its tails back (sequential reads), merges whole
//!   values as before, and spills the result to a new file; the old file goes with the old
//!   set. Only sets of at least [`SPILL_MIN`] values are spilled: smaller ones cost little.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::{or_bits, read_bits, FrozenSet};

/// Bits of each value's low part a spilled set keeps in memory.
pub const KEPT_BITS: u32 = 8;
/// Sets with fewer values than this stay whole in memory.
pub const SPILL_MIN: usize = 16_384;
/// Bytes read or written at a time when a tail is moved.
const CHUNK_WORDS: usize = 8 * 1024;

/// Tails read by lookups since start (for measurements: `examples/nonce_memory.rs`).
static TAIL_READS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Tails read by lookups since start.
pub fn tail_reads() -> u64 {
    TAIL_READS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Where, and from what size, frozen sets are spilled.
#[derive(Clone, Debug)]
pub struct SpillDir {
    dir: PathBuf,
    kept_bits: u32,
    min_len: usize,
}

impl SpillDir {
    /// Spills into `dir` (which must exist) with the defaults.
    pub fn new(dir: &Path) -> Self {
        Self::with(dir, KEPT_BITS, SPILL_MIN)
    }

    /// Spills sets of `min_len` values or more, keeping `kept_bits` of each low part.
    pub fn with(dir: &Path, kept_bits: u32, min_len: usize) -> Self {
        Self {
            dir: dir.to_path_buf(),
            kept_bits,
            min_len,
        }
    }

    /// `set`, spilled if it is big enough and its tails can be written; whole otherwise.
    pub fn spill(&self, set: FrozenSet) -> Frozen {
        if set.len < self.min_len.max(1)
            || set.width != set.low_bits
            || set.low_bits <= self.kept_bits
        {
            return Frozen::Whole(set);
        }
        let tail_bits = set.low_bits - self.kept_bits;
        let (kept, tails) = split(&set, self.kept_bits);
        match write_tails(&self.dir, &tails) {
            Ok(file) => Frozen::Spilled(SpilledSet::new(
                FrozenSet {
                    len: set.len,
                    low_bits: set.low_bits,
                    width: self.kept_bits,
                    low: kept,
                    high: set.high,
                    starts: set.starts,
                },
                tail_bits,
                file,
            )),
            Err(_) => Frozen::Whole(set),
        }
    }

    /// A set already split (`kept`, and `tails` of `tail_bits` each), spilled; joined
    /// whole if its tails cannot be written.
    fn place_parts(&self, kept: FrozenSet, tails: &[u64], tail_bits: u32) -> Frozen {
        match write_tails(&self.dir, tails) {
            Ok(file) => Frozen::Spilled(SpilledSet::new(kept, tail_bits, file)),
            Err(_) => Frozen::Whole(join(&kept, tails, tail_bits)),
        }
    }
}

/// The low parts of a whole set split: the top `kept_bits` of each, and the rest (tails),
/// each packed in order.
fn split(set: &FrozenSet, kept_bits: u32) -> (Box<[u64]>, Box<[u64]>) {
    let kept = u64::from(kept_bits);
    let t = u64::from(set.low_bits - kept_bits);
    let n = set.len as u64;
    let mut low = vec![0u64; (n * kept).div_ceil(64) as usize].into_boxed_slice();
    let mut tails = vec![0u64; (n * t).div_ceil(64) as usize].into_boxed_slice();
    let mask = (1u64 << t) - 1;
    for i in 0..n {
        let v = set.low_at(i);
        or_bits(&mut low, i * kept, v >> t, kept);
        or_bits(&mut tails, i * t, v & mask, t);
    }
    (low, tails)
}

/// The whole set of a split one.
fn join(kept: &FrozenSet, tails: &[u64], tail_bits: u32) -> FrozenSet {
    let t = u64::from(tail_bits);
    let full = u64::from(kept.low_bits);
    let n = kept.len as u64;
    let mut low = vec![0u64; (n * full).div_ceil(64) as usize].into_boxed_slice();
    for i in 0..n {
        let v = (kept.low_at(i) << t) | read_bits(tails, i * t, t);
        or_bits(&mut low, i * full, v, full);
    }
    FrozenSet {
        len: kept.len,
        low_bits: kept.low_bits,
        width: kept.low_bits,
        low,
        high: kept.high.clone(),
        starts: kept.starts.clone(),
    }
}

/// `tails` written to a new anonymous file in `dir` (little-endian words), its space
/// allocated first.
fn write_tails(dir: &Path, tails: &[u64]) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)?;
    let bytes = (tails.len() * 8) as libc::off_t;
    // SAFETY: fallocate on a descriptor this function owns; no memory is passed.
    if bytes > 0 && unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, bytes) } != 0 {
        let err = io::Error::last_os_error();
        // Without fallocate support the writes below still report a full disk.
        if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(err);
        }
    }
    let mut buf = Vec::with_capacity(CHUNK_WORDS.min(tails.len()) * 8);
    for (c, words) in tails.chunks(CHUNK_WORDS).enumerate() {
        buf.clear();
        words
            .iter()
            .for_each(|w| buf.extend_from_slice(&w.to_le_bytes()));
        file.write_all_at(&buf, (c * CHUNK_WORDS * 8) as u64)?;
    }
    Ok(file)
}

/// A bucket's frozen set: whole in memory, or spilled.
pub enum Frozen {
    Whole(FrozenSet),
    Spilled(SpilledSet),
}

impl Frozen {
    pub fn len(&self) -> usize {
        match self {
            Frozen::Whole(s) => s.len,
            Frozen::Spilled(s) => s.kept.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `v` is in the set; an error if a spilled tail cannot be read.
    pub fn contains(&self, v: u64) -> io::Result<bool> {
        match self {
            Frozen::Whole(s) => Ok(s.contains(v)),
            Frozen::Spilled(s) => s.contains(v),
        }
    }

    /// Bytes held in memory.
    pub fn bytes(&self) -> usize {
        match self {
            Frozen::Whole(s) => s.bytes(),
            Frozen::Spilled(s) => s.kept.bytes(),
        }
    }

    /// Bytes held on disk.
    pub fn disk_bytes(&self) -> u64 {
        match self {
            Frozen::Whole(_) => 0,
            Frozen::Spilled(s) => s.tail_bytes,
        }
    }

    /// `f` of the whole set (a spilled one is read back from its file first).
    pub fn with_whole<R>(&self, f: impl FnOnce(&FrozenSet) -> R) -> io::Result<R> {
        match self {
            Frozen::Whole(s) => Ok(f(s)),
            Frozen::Spilled(s) => Ok(f(&s.whole()?)),
        }
    }
}

/// A frozen set whose tails are on disk (see the module).
pub struct SpilledSet {
    /// The groups and kept bits (its `width` is the kept bits).
    kept: FrozenSet,
    tail_bits: u32,
    file: File,
    /// Length of the file's data: the tails packed in whole words.
    tail_bytes: u64,
}

impl SpilledSet {
    fn new(kept: FrozenSet, tail_bits: u32, file: File) -> Self {
        let tail_bytes = (kept.len as u64 * u64::from(tail_bits)).div_ceil(64) * 8;
        Self {
            kept,
            tail_bits,
            file,
            tail_bytes,
        }
    }

    fn tail_mask(&self) -> u64 {
        (1u64 << self.tail_bits) - 1
    }

    /// The tail of value `i`: one read of the (at most) two words holding it.
    fn tail_at(&self, i: u64) -> io::Result<u64> {
        TAIL_READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = u64::from(self.tail_bits);
        let bit = i * t;
        let offset = bit / 64 * 8;
        let len = self.tail_bytes.saturating_sub(offset).min(16) as usize;
        let mut buf = [0u8; 16];
        let Some(dst) = buf.get_mut(..len) else {
            return Err(io::ErrorKind::InvalidData.into());
        };
        self.file.read_exact_at(dst, offset)?;
        let (a, b) = buf.split_at(8);
        let word = |x: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(x);
            u64::from_le_bytes(w)
        };
        Ok(read_bits(&[word(a), word(b)], bit % 64, t))
    }

    fn contains(&self, v: u64) -> io::Result<bool> {
        let tail = v & self.tail_mask();
        for i in self.kept.candidates(v) {
            if self.tail_at(i)? == tail {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every tail, read back from the file.
    fn read_tails(&self) -> io::Result<Box<[u64]>> {
        let words = (self.tail_bytes / 8) as usize;
        let mut tails = Vec::with_capacity(words);
        let mut bytes = vec![0u8; CHUNK_WORDS.min(words) * 8];
        while tails.len() < words {
            let take = (words - tails.len()).min(CHUNK_WORDS);
            let buf = bytes.get_mut(..take * 8).unwrap_or_default();
            self.file.read_exact_at(buf, tails.len() as u64 * 8)?;
            tails.extend(buf.chunks_exact(8).map(|b| {
                let mut x = [0u8; 8];
                x.copy_from_slice(b);
                u64::from_le_bytes(x)
            }));
        }
        Ok(tails.into_boxed_slice())
    }

    /// The whole set again: kept bits and tails joined.
    fn whole(&self) -> io::Result<FrozenSet> {
        Ok(join(&self.kept, &self.read_tails()?, self.tail_bits))
    }

    /// `self` and `more` (ascending) merged and spilled into `dir`: kept bits and tails
    /// are merged apart, as runs copied, unless the widths change.
    fn merged(&self, more: &[u64], dir: &SpillDir) -> io::Result<Frozen> {
        let tails = self.read_tails()?;
        Ok(match self.kept.merged_parts(&tails, self.tail_bits, more) {
            Some((kept, tails)) => dir.place_parts(kept, &tails, self.tail_bits),
            None => dir.spill(join(&self.kept, &tails, self.tail_bits).merged(more)),
        })
    }
}

impl Frozen {
    /// `self` and `more` (ascending) merged, spilled into `spill` if given.
    pub fn merged(&self, more: &[u64], spill: Option<&SpillDir>) -> io::Result<Frozen> {
        match (self, spill) {
            (Frozen::Spilled(s), Some(dir)) => s.merged(more, dir),
            (_, Some(dir)) => Ok(dir.spill(self.with_whole(|w| w.merged(more))?)),
            (_, None) => Ok(Frozen::Whole(self.with_whole(|w| w.merged(more))?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{tail_files, NonceSet, TempDir};
    use super::*;

    fn spread(i: u64) -> u64 {
        let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn sorted(n: u64, salt: u64) -> Vec<u64> {
        let mut v: Vec<u64> = (0..n).map(|i| spread(i ^ salt << 40)).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn a_spilled_set_answers_as_the_whole_set_in_under_two_bytes_a_value() {
        let dir = TempDir::new();
        for n in [16_384u64, 100_000, 300_000] {
            let values = sorted(n, n);
            let whole = FrozenSet::from_sorted(&values);
            let (low, high, starts) = (whole.low.clone(), whole.high.clone(), whole.starts.clone());
            let Frozen::Spilled(s) = SpillDir::new(&dir.0).spill(whole) else {
                panic!("{n} values are spilled");
            };
            let set = Frozen::Spilled(s);
            for &v in &values {
                assert!(set.contains(v).unwrap(), "{n}: {v}");
            }
            // Neighbours differ in their tail only (they share group and kept bits): the tail
            // read must tell them apart.
            let members: std::collections::HashSet<u64> = values.iter().copied().collect();
            for &v in values.iter().step_by(7) {
                for x in [v ^ 1, v ^ (1 << 20), v.wrapping_add(3)] {
                    assert_eq!(set.contains(x).unwrap(), members.contains(&x), "{x}");
                }
            }
            let strangers = sorted(n, n + 1);
            for &x in &strangers {
                assert_eq!(set.contains(x).unwrap(), members.contains(&x));
            }
            let per = set.bytes() as f64 / n as f64;
            assert!(per < 2.0, "{n}: {per} bytes a value in memory");
            let h = u64::BITS - n.leading_zeros();
            let tail_bits = 64 - u64::from(h) - u64::from(KEPT_BITS);
            assert_eq!(set.disk_bytes(), (n * tail_bits).div_ceil(64) * 8);
            // Read back whole, it is the set that was spilled, bit for bit.
            let back = set.with_whole(|w| (w.low.clone(), w.high.clone(), w.starts.clone()));
            assert_eq!(back.unwrap(), (low, high, starts), "{n}");
        }
    }

    #[test]
    fn small_sets_and_unwritable_places_stay_whole_and_exact() {
        let dir = TempDir::new();
        let values = sorted(20_000, 1);
        let small = FrozenSet::from_sorted(&values[..1_000]);
        assert!(matches!(
            SpillDir::new(&dir.0).spill(small),
            Frozen::Whole(_)
        ));
        let missing = dir.0.join("not-there");
        let set = SpillDir::new(&missing).spill(FrozenSet::from_sorted(&values));
        assert!(matches!(set, Frozen::Whole(_)), "no directory: kept whole");
        assert!(values.iter().all(|&v| set.contains(v).unwrap()));
        assert_eq!(set.disk_bytes(), 0);
        // A regular file is no directory to make a file in either.
        let file = dir.0.join("plain");
        std::fs::write(&file, b"x").unwrap();
        let set = SpillDir::new(&file).spill(FrozenSet::from_sorted(&values));
        assert!(matches!(set, Frozen::Whole(_)));
    }

    #[test]
    fn a_tail_that_cannot_be_read_refuses_never_accepts() {
        let dir = TempDir::new();
        let spill = SpillDir::with(&dir.0, KEPT_BITS, 1);
        let mut set = NonceSet::default();
        let values = sorted(5_000, 2);
        for &v in &values[..4_000] {
            assert!(set.insert(v).unwrap());
        }
        let m = set.start_merge(16).expect("a merge is due");
        drop(set.finish_merge(m.run(Some(&spill))));
        for &v in &values[4_000..] {
            assert!(set.insert(v).unwrap());
        }
        assert!(set.disk_bytes() > 0);
        let files = tail_files(&dir.0);
        assert_eq!(files.len(), 1, "{files:?}");
        // Nothing else can open the file by name; through this process's descriptor, cut it.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&files[0])
            .unwrap();
        f.set_len(0).unwrap();
        drop(f);
        assert!(
            set.contains(values[10]).is_err(),
            "a frozen nonce is not taken as new"
        );
        assert!(set.insert(values[10]).is_err());
        assert!(
            set.contains(values[4_500]).unwrap(),
            "the recent ones still answer"
        );
        // A merge that cannot read the frozen set back changes nothing and loses nothing.
        let m = set.start_merge(16).expect("a merge is due");
        let merged = m.run(Some(&spill));
        assert!(merged.failed());
        drop(set.finish_merge(merged));
        assert!(set.contains(values[4_500]).unwrap(), "still searched");
        assert!(set.start_merge(16).is_none(), "no merge over a failed one");
        assert!(set.contains(values[10]).is_err());
        // Dropping the set closes (and so frees) its file.
        drop(set);
        assert!(tail_files(&dir.0).is_empty());
    }
}
