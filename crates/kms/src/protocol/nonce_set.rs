//! The set of nonces of one time bucket of one shard of the nonce cache: a small mutable
//! table for the latest nonces in front of a frozen, succinct sorted set of all the others,
//! about 6 bytes a nonce, every 64-bit fingerprint kept exactly.
//!
//! Written by hand because no maintained crate offers this trade: exact 64-bit values over the
//! whole `u64` range, allocations of exactly the size needed (so that a dropped bucket gives
//! back all it held), a streaming merge of a sorted run into the frozen set, and nothing but
//! `contains` asked of it. (`sucds` and `vers-vecs` have Elias–Fano sequences, with rank and
//! select directories sized for general queries, growable `Vec`s, and panicking accessors.)
//!
//! **What is kept of a nonce.** Its fingerprint: a 64-bit hash of the nonce's 64-bit key,
//! seeded per process (so that signers cannot choose nonces that pile up in one place),
//! computed once by the cache ([`Fingerprints`]). Every part of the set keeps fingerprints
//! exactly, so a request never seen before is refused as a replay only when its fingerprint
//! equals one remembered in its shard: probability about n / 2^64, n the nonces remembered in
//! the shard (1/32 of all; the shard is chosen from other bits of the key). At 40,000
//! requests a second, each nonce remembered about 19 minutes, n is about 1.4 million: one
//! false refusal in about 10^13 requests (once in about 10 years at that rate). Narrower
//! fingerprints were measured and rejected for this reason: 48 bits would refuse one new
//! request in about 2 × 10^8 at that rate, several times a day. A nonce seen before is always
//! found (its fingerprint is equal).
//!
//! **The two parts.**
//! - [`RecentSet`]: the latest nonces, an open-addressing table (linear probing) of
//!   fingerprints with no control bytes (an all-zero slot is empty; the fingerprint 0 is kept
//!   by a flag), grown by half once three quarters full: 10.7 to 16 bytes a nonce, but only for
//!   the few thousand latest nonces of the bucket that is being filled.
//! - [`FrozenSet`]: all the others, sorted and stored Elias–Fano: with `n` values, the top
//!   `h = bit length of n` bits of each value (its group) in unary in a bit vector of
//!   `n + 2^h` bits (a one per value, a zero closing each group), the other `64 − h` bits
//!   packed at exactly that width, and the bit position where every 64th group starts
//!   (`u32`). That is `64 − h + 1 + 2^h/n` bits a value plus about `2^h/(2n)` bits of
//!   directory: 5.9 to 6.4 bytes a nonce for the 50,000 to 500,000 nonces a shard's bucket
//!   holds under full load (6.9 at 4,096). A lookup reads the directory entry, skips at most
//!   63 groups' bits with popcounts (usually one or two words), and compares the one or two
//!   low parts of its group.
//!
//! **Merging.** Once the recent table holds [`MERGE_MIN`] nonces, or a sixteenth of the
//! frozen set if that is more, it is frozen in turn: [`NonceSet::start_merge`] moves it
//! aside (it is still searched, read-only) and hands back a [`Merge`], which sorts it (one
//! insertion pass: the table is nearly in order) and merges it with the frozen set into a new
//! one outside any lock ([`Merge::run`]); [`NonceSet::finish_merge`] then swaps the new set
//! in, unless the bucket was dropped meanwhile. While the number of values keeps its bit
//! length (so the layout's widths stay), the frozen set's runs between two new values are
//! copied as shifted words (about 25 instructions a value); when it gains a bit every value
//! is decoded and coded again (about 130). A merge costs O(bucket) but comes once per 4,096
//! nonces, then per 1/16 of the bucket's growth, so each nonce is rewritten 7 to 17 times
//! over its bucket's life; the merge of one shard's bucket, at most a few hundred thousand
//! values (well under a millisecond), holds no lock: it delays only the request that made it
//! due (one in thousands), never the shard's other requests.
//! A bucket that can receive no more nonces (the clock has
//! passed it: see `NonceCache`) is merged whole ([`NonceSet::seal`]), so the only nonces that
//! cost more than the frozen set's 6 bytes are the few thousand latest of each shard. Nothing
//! is ever removed: whole sets are dropped as their bucket passes, and every allocation is of
//! the exact size it needs (boxed slices), so dropping returns all of it.

use std::hash::BuildHasher;
use std::sync::Arc;

mod spill;

pub use spill::{tail_reads, Frozen, SpillDir, SpilledSet, KEPT_BITS, SPILL_MIN};

/// The recent table is frozen once it holds this many nonces (or a sixteenth of the frozen
/// set, if that is more).
pub const MERGE_MIN: usize = 4096;

/// The seeded fingerprint of nonce keys (see the module documentation).
#[derive(Clone)]
pub struct Fingerprints(foldhash::fast::FixedState);

impl Fingerprints {
    pub fn new(seed: u64) -> Self {
        Self(foldhash::fast::FixedState::with_seed(seed))
    }

    /// The fingerprint of `key`.
    pub fn of(&self, key: u64) -> u64 {
        self.0.hash_one(key)
    }
}

/// The table grows once this many slots in four are taken.
const MAX_LOAD_QUARTERS: usize = 3;
/// The smallest table, in slots.
const MIN_SLOTS: usize = 16;

/// The latest fingerprints of a bucket, in an open-addressing table (see the module).
#[derive(Default)]
pub struct RecentSet {
    /// The slots: a fingerprint each, 0 = empty.
    table: Box<[u64]>,
    /// Whether the fingerprint 0 is in the set (it has no slot).
    zero: bool,
    len: usize,
}

impl RecentSet {
    /// An empty set with room for `n` fingerprints before it grows.
    pub fn with_capacity(n: usize) -> Self {
        let mut s = Self::default();
        if n > 0 {
            s.table = vec![0u64; slots_for(n)].into_boxed_slice();
        }
        s
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the table.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.table)
    }

    /// The home slot of a fingerprint in a table of `slots`: its place in the fingerprints'
    /// range, scaled (no power-of-two size needed, and growing keeps the order).
    fn home(fp: u64, slots: usize) -> usize {
        ((u128::from(fp) * slots as u128) >> 64) as usize
    }

    /// The slot holding `fp` (not 0), or the empty slot where it would go; `None` with no
    /// table.
    fn find(&self, fp: u64) -> Option<(usize, bool)> {
        let n = self.table.len();
        if n == 0 {
            return None;
        }
        let mut i = Self::home(fp, n);
        loop {
            match self.table.get(i).copied() {
                Some(0) | None => return Some((i, false)),
                Some(v) if v == fp => return Some((i, true)),
                _ => i = if i + 1 == n { 0 } else { i + 1 },
            }
        }
    }

    pub fn contains(&self, fp: u64) -> bool {
        if fp == 0 {
            return self.zero;
        }
        self.len > 0 && self.find(fp).is_some_and(|(_, found)| found)
    }

    /// Adds `fp`; `false` if it was already there.
    pub fn insert(&mut self, fp: u64) -> bool {
        if fp == 0 {
            let new = !self.zero;
            self.zero = true;
            self.len += usize::from(new);
            return new;
        }
        if (self.len + 1) * 4 > self.table.len() * MAX_LOAD_QUARTERS {
            self.grow();
        }
        match self.find(fp) {
            Some((_, true)) => false,
            Some((i, false)) => {
                if let Some(slot) = self.table.get_mut(i) {
                    *slot = fp;
                }
                self.len += 1;
                true
            }
            None => false,
        }
    }

    fn grow(&mut self) {
        let slots = slots_for((self.len + 1).max(self.len + self.len / 2));
        let old = std::mem::replace(&mut self.table, vec![0u64; slots].into_boxed_slice());
        for &fp in old.iter().filter(|&&fp| fp != 0) {
            if let Some((i, _)) = self.find(fp) {
                if let Some(slot) = self.table.get_mut(i) {
                    *slot = fp;
                }
            }
        }
    }

    /// The fingerprints, in ascending order. The table is nearly in order already (a
    /// fingerprint's home slot is its place in the range, and probing moves it only within
    /// its cluster): those that wrapped past the end are put last, and an insertion sort
    /// fixes the rest in about one pass.
    pub fn sorted(&self) -> Vec<u64> {
        let mut v = Vec::with_capacity(self.len);
        if self.zero {
            v.push(0);
        }
        let n = self.table.len();
        let wrapped = |(i, &fp): &(usize, &u64)| fp != 0 && Self::home(fp, n) > *i;
        let slots = || self.table.iter().enumerate();
        v.extend(
            slots()
                .filter(|s| s.1 != &0 && !wrapped(s))
                .map(|(_, &fp)| fp),
        );
        v.extend(slots().filter(wrapped).map(|(_, &fp)| fp));
        for i in 1..v.len() {
            let x = v[i];
            let mut j = i;
            while j > 0 && v[j - 1] > x {
                v[j] = v[j - 1];
                j -= 1;
            }
            v[j] = x;
        }
        v
    }
}

/// Slots for `n` fingerprints at the largest load.
fn slots_for(n: usize) -> usize {
    (n.saturating_mul(4) / MAX_LOAD_QUARTERS + 1).max(MIN_SLOTS)
}

/// Every `1 << SAMPLE_SHIFT`-th group's start is kept in the directory.
const SAMPLE_SHIFT: u32 = 6;

/// Sorted fingerprints, Elias–Fano coded (see the module). Equal values may repeat.
#[derive(Default)]
pub struct FrozenSet {
    len: usize,
    /// Bits of a value below its group: `64 − h`, `h` the bit length of `len`.
    low_bits: u32,
    /// Bits of those kept in `low`: the top `width` of the `low_bits` (all of them, but in the
    /// kept part of a spilled set: see [`SpilledSet`]).
    width: u32,
    /// The kept low bits of every value, packed, in order.
    low: Box<[u64]>,
    /// A one per value at `group + index`, so that each group's ones are closed by a zero.
    high: Box<[u64]>,
    /// The position in `high` where group `k << SAMPLE_SHIFT` starts.
    starts: Box<[u32]>,
}

impl FrozenSet {
    /// The set of `values`, which must be in ascending order. At most `u32::MAX / 3`
    /// values (a shard's bucket holds a few hundred thousand): any more are left out.
    pub fn from_sorted(values: &[u64]) -> Self {
        let mut b = Builder::new(values.len());
        values.iter().for_each(|&v| b.push(v));
        b.finish()
    }

    /// The values of `self` and of `more` (ascending), merged. While the number of values
    /// keeps its bit length (the layout's widths stay), the runs of `self` between two new
    /// values are copied as shifted words (about 10 instructions a value); otherwise every
    /// value is decoded and coded again ([`Self::recoded`]).
    pub fn merged(&self, more: &[u64]) -> Self {
        match self.merged_parts(&[], 0, more) {
            Some((set, _)) => set,
            None => self.recoded(more),
        }
    }

    /// [`Self::merged`] by copying runs, for a set whose low parts are split in two: the top
    /// `width` bits in `self.low`, the other `t` bits (`tails`, packed in the same order) kept
    /// elsewhere (a spilled set's; `t` = 0 for a whole set). Both halves are merged as runs,
    /// and the merged tails are handed back. `None` when the widths would change (the number
    /// of values gains a bit), or the parts do not add up: the caller then recodes.
    fn merged_parts(&self, tails: &[u64], t: u32, more: &[u64]) -> Option<(Self, Box<[u64]>)> {
        let n = self.len + more.len();
        if self.len == 0
            || self.width + t != self.low_bits
            || more.is_empty()
            || n > u32::MAX as usize / 3
            || n.leading_zeros() != self.len.leading_zeros()
        {
            return None;
        }
        let width = u64::from(self.width);
        let tw = u64::from(t);
        let mask = self.low_mask();
        let tail_mask = (1u64 << t) - 1;
        let groups = 1u64 << (64 - self.low_bits);
        let mut out = FrozenSet {
            len: n,
            low_bits: self.low_bits,
            width: self.width,
            low: vec![0u64; (n * width as usize).div_ceil(64)].into_boxed_slice(),
            high: vec![0u64; (n as u64 + groups).div_ceil(64) as usize].into_boxed_slice(),
            starts: vec![0u32; self.starts.len()].into_boxed_slice(),
        };
        let mut out_tails = vec![0u64; (n * t as usize).div_ceil(64)].into_boxed_slice();
        // Old values (and high bits) consumed so far.
        let (mut index, mut pos) = (0u64, 0u64);
        for (j, &v) in (0u64..).zip(more) {
            let (k, q) = self.rank(v, tails, t);
            let run = k - index;
            copy_bits(
                &self.low,
                index * width,
                &mut out.low,
                (index + j) * width,
                run * width,
            );
            copy_bits(
                tails,
                index * tw,
                &mut out_tails,
                (index + j) * tw,
                run * tw,
            );
            copy_bits(&self.high, pos, &mut out.high, pos + j, q - pos);
            let low = v & mask;
            or_bits(&mut out.low, (k + j) * width, low >> t, width);
            or_bits(&mut out_tails, (k + j) * tw, low & tail_mask, tw);
            or_bits(&mut out.high, q + j, 1, 1);
            (index, pos) = (k, q);
        }
        let (m, old) = (more.len() as u64, self.len as u64);
        copy_bits(
            &self.low,
            index * width,
            &mut out.low,
            (index + m) * width,
            (old - index) * width,
        );
        copy_bits(
            tails,
            index * tw,
            &mut out_tails,
            (index + m) * tw,
            (old - index) * tw,
        );
        copy_bits(&self.high, pos, &mut out.high, pos + m, old + groups - pos);
        // A group starts after the new values of the groups before it too.
        let mut before = 0usize;
        for (k, (entry, &start)) in out.starts.iter_mut().zip(self.starts.iter()).enumerate() {
            let first = (k as u64) << SAMPLE_SHIFT;
            while more
                .get(before)
                .is_some_and(|&v| v >> self.low_bits < first)
            {
                before += 1;
            }
            *entry = start + before as u32;
        }
        Some((out, out_tails))
    }

    /// How many values are less than `v`, and where in `high` a value `v` would go (with
    /// the low parts split as [`Self::merged_parts`] says).
    fn rank(&self, v: u64, tails: &[u64], t: u32) -> (u64, u64) {
        let group = v >> self.low_bits;
        let low = v & self.low_mask();
        let k = group >> SAMPLE_SHIFT;
        let mut pos = self.starts.get(k as usize).map_or(0, |&s| u64::from(s));
        let skip = group - (k << SAMPLE_SHIFT);
        if skip > 0 {
            pos = self.past_zeros(pos, skip).unwrap_or(pos);
        }
        let tw = u64::from(t);
        let full_at = |i: u64| {
            if t == 0 {
                self.low_at(i)
            } else {
                (self.low_at(i) << t) | read_bits(tails, i * tw, tw)
            }
        };
        while self.bit(pos) && full_at(pos - group) < low {
            pos += 1;
        }
        (pos - group, pos)
    }

    /// [`Self::merged`] by decoding and coding every value.
    fn recoded(&self, more: &[u64]) -> Self {
        let mut b = Builder::new(self.len + more.len());
        let mut mine = self.iter().peekable();
        let mut theirs = more.iter().copied().peekable();
        loop {
            let next = match (mine.peek(), theirs.peek()) {
                (Some(&a), Some(&t)) if a <= t => mine.next(),
                (_, Some(_)) => theirs.next(),
                (Some(_), None) => mine.next(),
                (None, None) => break,
            };
            if let Some(v) = next {
                b.push(v);
            }
        }
        b.finish()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the three arrays.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.low)
            + std::mem::size_of_val(&*self.high)
            + std::mem::size_of_val(&*self.starts)
    }

    fn low_mask(&self) -> u64 {
        (1u64 << self.low_bits) - 1
    }

    /// The kept low bits of value `i`.
    fn low_at(&self, i: u64) -> u64 {
        let width = u64::from(self.width);
        if width == 0 {
            return 0;
        }
        let bit = i * width;
        let w = (bit / 64) as usize;
        let s = bit % 64;
        let mut v = self.low.get(w).copied().unwrap_or(0) >> s;
        if s + width > 64 {
            v |= self.low.get(w + 1).copied().unwrap_or(0) << (64 - s);
        }
        v & ((1u64 << self.width) - 1)
    }

    /// Bits of a value's low part that are not kept.
    fn dropped(&self) -> u32 {
        self.low_bits - self.width
    }

    /// The position just past the `r`-th zero (counting from 1) at or after `pos`.
    fn past_zeros(&self, pos: u64, mut r: u64) -> Option<u64> {
        let mut w = (pos / 64) as usize;
        let mut zeros = !*self.high.get(w)? & (!0u64 << (pos % 64));
        loop {
            let c = u64::from(zeros.count_ones());
            if r <= c {
                return Some(w as u64 * 64 + u64::from(select_in_word(zeros, (r - 1) as u32)) + 1);
            }
            r -= c;
            w += 1;
            zeros = !*self.high.get(w)?;
        }
    }

    fn bit(&self, pos: u64) -> bool {
        self.high
            .get((pos / 64) as usize)
            .is_some_and(|w| w >> (pos % 64) & 1 == 1)
    }

    pub fn contains(&self, v: u64) -> bool {
        !self.candidates(v).is_empty()
    }

    /// The indices of the values whose group and kept bits are those of `v` (for a full
    /// set, at most the one value equal to `v`).
    fn candidates(&self, v: u64) -> std::ops::Range<u64> {
        if self.len == 0 {
            return 0..0;
        }
        let group = v >> self.low_bits;
        let low = (v & self.low_mask()) >> self.dropped();
        let k = group >> SAMPLE_SHIFT;
        let Some(&start) = self.starts.get(k as usize) else {
            return 0..0;
        };
        let skip = group - (k << SAMPLE_SHIFT);
        let mut pos = u64::from(start);
        if skip > 0 {
            match self.past_zeros(pos, skip) {
                Some(p) => pos = p,
                None => return 0..0,
            }
        }
        // The group's values: the ones from `pos` on, value `pos − group` first, ascending.
        while self.bit(pos) {
            let x = self.low_at(pos - group);
            if x > low {
                return 0..0;
            }
            if x == low {
                let first = pos - group;
                let mut end = pos + 1;
                while self.bit(end) && self.low_at(end - group) == low {
                    end += 1;
                }
                return first..end - group;
            }
            pos += 1;
        }
        0..0
    }

    /// The values in ascending order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            set: self,
            index: 0,
            word: 0,
            bits: self.high.first().copied().unwrap_or(0),
        }
    }
}

/// The values of a [`FrozenSet`], in order.
pub struct Iter<'a> {
    set: &'a FrozenSet,
    index: u64,
    /// The word of `high` being read, and its ones not yet read.
    word: usize,
    bits: u64,
}

impl Iterator for Iter<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.index >= self.set.len as u64 {
            return None;
        }
        while self.bits == 0 {
            self.word += 1;
            self.bits = *self.set.high.get(self.word)?;
        }
        let pos = self.word as u64 * 64 + u64::from(self.bits.trailing_zeros());
        self.bits &= self.bits - 1;
        let group = pos - self.index;
        let v = (group << self.set.low_bits) | self.set.low_at(self.index);
        self.index += 1;
        Some(v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.set.len - self.index as usize;
        (left, Some(left))
    }
}

/// Fills a [`FrozenSet`] of a known size from ascending values.
struct Builder {
    set: FrozenSet,
    /// Values planned.
    capacity: usize,
    /// The next directory entry to fill.
    sample: usize,
}

impl Builder {
    fn new(n: usize) -> Self {
        let n = n.min(u32::MAX as usize / 3);
        if n == 0 {
            return Self {
                set: FrozenSet::default(),
                capacity: 0,
                sample: 0,
            };
        }
        let high_bits = usize::BITS - n.leading_zeros();
        let low_bits = 64 - high_bits;
        let groups = 1usize << high_bits;
        let low_words = (n * low_bits as usize).div_ceil(64);
        let high_words = (n + groups).div_ceil(64);
        let samples = groups.div_ceil(1 << SAMPLE_SHIFT);
        Self {
            set: FrozenSet {
                len: 0,
                low_bits,
                width: low_bits,
                low: vec![0u64; low_words].into_boxed_slice(),
                high: vec![0u64; high_words].into_boxed_slice(),
                starts: vec![0u32; samples].into_boxed_slice(),
            },
            capacity: n,
            sample: 0,
        }
    }

    fn push(&mut self, v: u64) {
        let s = &mut self.set;
        if s.len >= self.capacity {
            return;
        }
        let i = s.len as u64;
        let group = v >> s.low_bits;
        // Directory entries of the groups up to this one: they start after the values so far.
        while let Some(entry) = s.starts.get_mut(self.sample) {
            let first = (self.sample as u64) << SAMPLE_SHIFT;
            if first > group {
                break;
            }
            *entry = (i + first) as u32;
            self.sample += 1;
        }
        let pos = group + i;
        if let Some(w) = s.high.get_mut((pos / 64) as usize) {
            *w |= 1 << (pos % 64);
        }
        let width = u64::from(s.low_bits);
        let low = v & s.low_mask();
        let bit = i * width;
        let w = (bit / 64) as usize;
        let sh = bit % 64;
        if let Some(word) = s.low.get_mut(w) {
            *word |= low << sh;
        }
        if sh + width > 64 {
            if let Some(word) = s.low.get_mut(w + 1) {
                *word |= low >> (64 - sh);
            }
        }
        s.len += 1;
    }

    fn finish(mut self) -> FrozenSet {
        let n = self.set.len as u64;
        for (k, entry) in self.set.starts.iter_mut().enumerate().skip(self.sample) {
            *entry = (n + ((k as u64) << SAMPLE_SHIFT)) as u32;
        }
        self.set
    }
}

/// Copies `len` bits of `src` from bit `from` into `dst` (zeros there) at bit `to`.
fn copy_bits(src: &[u64], mut from: u64, dst: &mut [u64], mut to: u64, mut len: u64) {
    while len > 0 {
        let take = len.min(64);
        or_bits(dst, to, read_bits(src, from, take), take);
        from += take;
        to += take;
        len -= take;
    }
}

/// The `width` (1 to 64) bits of `src` from bit `from`.
fn read_bits(src: &[u64], from: u64, width: u64) -> u64 {
    let w = (from / 64) as usize;
    let s = from % 64;
    let mut v = src.get(w).copied().unwrap_or(0) >> s;
    if s + width > 64 {
        v |= src.get(w + 1).copied().unwrap_or(0) << (64 - s);
    }
    if width < 64 {
        v &= (1u64 << width) - 1;
    }
    v
}

/// ORs `v`, `width` bits wide, into `dst` at bit `to`.
fn or_bits(dst: &mut [u64], to: u64, v: u64, width: u64) {
    let w = (to / 64) as usize;
    let s = to % 64;
    if let Some(word) = dst.get_mut(w) {
        *word |= v << s;
    }
    if s + width > 64 {
        if let Some(word) = dst.get_mut(w + 1) {
            *word |= v >> (64 - s);
        }
    }
}

/// The position of the `r`-th (from 0) set bit of `x`, which has more than `r`.
fn select_in_word(x: u64, r: u32) -> u32 {
    // Set bits per byte, then running totals per byte (byte j: bytes 0..=j).
    let mut s = x - ((x >> 1) & 0x5555_5555_5555_5555);
    s = (s & 0x3333_3333_3333_3333) + ((s >> 2) & 0x3333_3333_3333_3333);
    s = (s + (s >> 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    let totals = s.wrapping_mul(0x0101_0101_0101_0101);
    let mut byte = 0;
    while byte < 7 && ((totals >> (8 * byte)) & 0xFF) as u32 <= r {
        byte += 1;
    }
    let before = if byte == 0 {
        0
    } else {
        ((totals >> (8 * (byte - 1))) & 0xFF) as u32
    };
    let mut b = (x >> (8 * byte)) & 0xFF;
    for _ in 0..r.saturating_sub(before) {
        b &= b.wrapping_sub(1);
    }
    8 * byte + b.trailing_zeros()
}

/// The nonces of one bucket of one shard (see the module).
#[derive(Default)]
pub struct NonceSet {
    recent: RecentSet,
    /// A recent table being merged into `frozen` (searched meanwhile).
    merging: Option<Arc<RecentSet>>,
    frozen: Option<Arc<Frozen>>,
}

/// A merge to run outside the shard's lock: [`Merge::run`], then [`NonceSet::finish_merge`].
pub struct Merge {
    from: Arc<RecentSet>,
    into: Option<Arc<Frozen>>,
}

/// A merge's result, for [`NonceSet::finish_merge`]: `None` if the frozen set's spilled
/// tails could not be read back (the recent nonces then stay where they are, searched).
pub struct Merged {
    from: Arc<RecentSet>,
    set: Option<Frozen>,
}

/// What a finished merge replaced (to drop outside the lock: closing a spilled set's file
/// frees its pages).
pub struct Replaced {
    _from: Option<Arc<RecentSet>>,
    _old: Option<Arc<Frozen>>,
    _unused: Option<Frozen>,
}

impl Merged {
    /// A merge no set expects any more (its bucket was dropped), to drop outside the lock.
    pub fn discard(self) -> Replaced {
        Replaced {
            _from: Some(self.from),
            _old: None,
            _unused: self.set,
        }
    }

    /// Whether the merge failed (a spilled tail could not be read).
    pub fn failed(&self) -> bool {
        self.set.is_none()
    }
}

/// `set`, spilled into `spill` if one is given (see [`spill`]).
fn place(set: FrozenSet, spill: Option<&SpillDir>) -> Frozen {
    match spill {
        Some(dir) => dir.spill(set),
        None => Frozen::Whole(set),
    }
}

impl Merge {
    /// Builds the merged frozen set (no lock needed: both inputs are shared read-only),
    /// spilled into `spill` if one is given.
    pub fn run(self, spill: Option<&SpillDir>) -> Merged {
        let more = self.from.sorted();
        let set = match &self.into {
            Some(frozen) => frozen.merged(&more, spill).ok(),
            None => Some(place(FrozenSet::from_sorted(&more), spill)),
        };
        Merged {
            from: self.from,
            set,
        }
    }
}

impl NonceSet {
    /// Whether `fp` is in the set; an error if a spilled tail cannot be read (the caller
    /// must then refuse the request: it cannot tell whether the nonce is new).
    pub fn contains(&self, fp: u64) -> std::io::Result<bool> {
        if self.recent.contains(fp) || self.merging.as_ref().is_some_and(|m| m.contains(fp)) {
            return Ok(true);
        }
        match &self.frozen {
            Some(f) => f.contains(fp),
            None => Ok(false),
        }
    }

    /// Adds `fp`, which the caller has checked is not in the set.
    pub fn insert_new(&mut self, fp: u64) {
        self.recent.insert(fp);
    }

    /// Adds `fp`; `Ok(false)` if it was already there.
    pub fn insert(&mut self, fp: u64) -> std::io::Result<bool> {
        Ok(!self.contains(fp)? && self.recent.insert(fp))
    }

    /// Nonces held.
    pub fn len(&self) -> usize {
        self.recent.len()
            + self.merging.as_ref().map_or(0, |m| m.len())
            + self.frozen.as_ref().map_or(0, |f| f.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held: the tables and arrays, and the shared parts' own allocations.
    pub fn bytes(&self) -> usize {
        const ARC: usize = 2 * std::mem::size_of::<usize>();
        self.recent.bytes()
            + self
                .merging
                .as_ref()
                .map_or(0, |m| m.bytes() + ARC + std::mem::size_of::<RecentSet>())
            + self
                .frozen
                .as_ref()
                .map_or(0, |f| f.bytes() + ARC + std::mem::size_of::<Frozen>())
    }

    /// Bytes of spilled tails on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.frozen.as_ref().map_or(0, |f| f.disk_bytes())
    }

    /// Whether anything is allocated.
    pub fn holds_memory(&self) -> bool {
        self.recent.bytes() > 0 || self.merging.is_some() || self.frozen.is_some()
    }

    /// Whether the recent table holds memory (a passed bucket's is merged or freed: [`Self::seal`]).
    pub fn has_recent(&self) -> bool {
        self.recent.bytes() > 0 || self.recent.zero
    }

    /// Whether `merged` was started on this set and is still expected.
    pub fn is_merging(&self, merged: &Merged) -> bool {
        self.merging
            .as_ref()
            .is_some_and(|m| Arc::ptr_eq(m, &merged.from))
    }

    /// The recent nonces to freeze now, if they are `merge_min` or more (or a sixteenth of
    /// the frozen set, if that is more) and no merge is running.
    pub fn start_merge(&mut self, merge_min: usize) -> Option<Merge> {
        let frozen = self.frozen.as_ref().map_or(0, |f| f.len());
        let threshold = merge_min.max(frozen / 16);
        if self.recent.len() < threshold {
            return None;
        }
        let next = merge_min.max((frozen + self.recent.len()) / 16);
        self.freeze(RecentSet::with_capacity(next))
    }

    /// For a bucket that can receive no more nonces: frees an empty recent table, and hands
    /// back the merge of a non-empty one (if no merge is running).
    pub fn seal(&mut self) -> Option<Merge> {
        if self.recent.is_empty() {
            self.recent = RecentSet::default();
            return None;
        }
        self.freeze(RecentSet::default())
    }

    fn freeze(&mut self, next: RecentSet) -> Option<Merge> {
        let total = self.len();
        if self.merging.is_some() || self.recent.is_empty() || total > u32::MAX as usize / 3 {
            return None;
        }
        let from = Arc::new(std::mem::replace(&mut self.recent, next));
        self.merging = Some(Arc::clone(&from));
        Some(Merge {
            from,
            into: self.frozen.clone(),
        })
    }

    /// Puts the merged set in place, unless this set is not the one the merge was started on
    /// (its bucket was dropped meanwhile).
    /// A failed merge (see [`Merged`]) leaves the set as it was, the frozen nonces still
    /// merging: they stay searched, and no further merge starts on this bucket, whose recent
    /// table just grows until the bucket passes.
    pub fn finish_merge(&mut self, merged: Merged) -> Replaced {
        if !self.is_merging(&merged) {
            return merged.discard();
        }
        let Some(set) = merged.set else {
            return Replaced {
                _from: Some(merged.from),
                _old: None,
                _unused: None,
            };
        };
        self.merging = None;
        let old = self.frozen.replace(Arc::new(set));
        Replaced {
            _from: Some(merged.from),
            _old: old,
            _unused: None,
        }
    }

    /// Adds ascending, distinct fingerprints straight to the frozen set (start-up: the
    /// journal's nonces), merging in place and spilling into `spill` if given. If the
    /// frozen set's tails cannot be read back, they go to the recent table instead.
    pub fn extend_sorted(&mut self, fps: &[u64], spill: Option<&SpillDir>) {
        if fps.is_empty() {
            return;
        }
        let set = match &self.frozen {
            Some(f) => f.merged(fps, spill).ok(),
            None => Some(place(FrozenSet::from_sorted(fps), spill)),
        };
        match set {
            Some(set) => self.frozen = Some(Arc::new(set)),
            None => fps.iter().for_each(|&fp| {
                self.recent.insert(fp);
            }),
        }
    }
}

/// A directory removed when dropped (tests).
#[cfg(test)]
pub(crate) struct TempDir(pub std::path::PathBuf);

#[cfg(test)]
impl TempDir {
    pub(crate) fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("kms-nonce-set-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

/// The descriptors of this process that point into `dir` (spilled tails are anonymous files
/// there, which /proc shows as `<dir>/#<inode> (deleted)`; tests).
#[cfg(test)]
pub(crate) fn tail_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let prefix = dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|t| t.to_string_lossy().starts_with(&prefix))
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn spread(i: u64) -> u64 {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    #[test]
    fn recent_set_finds_every_key_inserted_and_no_other() {
        let mut s = RecentSet::with_capacity(0);
        assert!(!s.contains(1));
        let keys: Vec<u64> = (0..200_000u64).map(spread).collect();
        for &k in &keys {
            assert!(s.insert(k));
        }
        assert_eq!(s.len(), keys.len());
        for &k in &keys {
            assert!(s.contains(k));
            assert!(!s.insert(k), "a second insert is refused");
        }
        let absent = (0..200_000u64)
            .map(|i| (i + 1_000_000).wrapping_mul(0xD1B5_4A32_D192_ED03))
            .filter(|k| s.contains(*k))
            .count();
        assert_eq!(absent, 0);
        // Between half and three quarters full: 10.7 to 16 bytes a key.
        let per_key = s.bytes() as f64 / s.len() as f64;
        assert!((10.66..=16.01).contains(&per_key), "{per_key} bytes a key");
        let sorted = s.sorted();
        assert_eq!(sorted.len(), keys.len());
        assert!(sorted.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn recent_set_sized_ahead_does_not_grow_and_keeps_zero() {
        let mut s = RecentSet::with_capacity(10_000);
        let bytes = s.bytes();
        for i in 0..10_000u64 {
            assert!(s.insert(spread(i) ^ 5));
        }
        assert_eq!((s.len(), s.bytes()), (10_000, bytes));
        assert!(RecentSet::default().is_empty());
        assert!(!RecentSet::default().contains(0));
        let mut z = RecentSet::default();
        assert!(z.insert(0) && !z.insert(0) && z.contains(0) && !z.contains(1));
        assert!(z.insert(u64::MAX) && z.contains(u64::MAX));
        assert_eq!(z.len(), 2);
        assert_eq!(z.sorted(), vec![0, u64::MAX]);
    }

    #[test]
    fn frozen_set_of_every_small_size_and_the_edges() {
        for n in 0..300usize {
            let mut v: Vec<u64> = (0..n as u64).map(|i| spread(i + 1)).collect();
            if n > 0 {
                v[0] = 0;
            }
            if n > 1 {
                v[1] = u64::MAX;
            }
            v.sort_unstable();
            let f = FrozenSet::from_sorted(&v);
            assert_eq!(f.len(), n);
            assert_eq!(f.iter().collect::<Vec<_>>(), v, "n = {n}");
            for &x in &v {
                assert!(f.contains(x), "n = {n}, {x}");
            }
            for x in [1, 2, u64::MAX - 1, spread(10_000), 1 << 63] {
                assert_eq!(f.contains(x), v.contains(&x), "n = {n}, {x}");
            }
        }
        // Values crowded in one group, and in neighbouring ones.
        let v: Vec<u64> = (0..5_000u64).collect();
        let f = FrozenSet::from_sorted(&v);
        assert!(v.iter().all(|&x| f.contains(x)));
        assert!(!f.contains(5_000) && !f.contains(u64::MAX));
        let v: Vec<u64> = (0..5_000u64).map(|i| u64::MAX - 5_000 + i).collect();
        let f = FrozenSet::from_sorted(&v);
        assert!(v.iter().all(|&x| f.contains(x)));
        assert!(!f.contains(0) && !f.contains(u64::MAX));
    }

    #[test]
    fn frozen_set_size_is_exact_and_about_six_bytes_a_value() {
        for n in [4_096usize, 50_000, 120_000, 500_000] {
            let mut v: Vec<u64> = (0..n as u64).map(|i| spread(i) ^ 0x5555).collect();
            v.sort_unstable();
            let f = FrozenSet::from_sorted(&v);
            let h = usize::BITS - n.leading_zeros();
            let bits = n * (64 - h as usize);
            let expected = bits.div_ceil(64) * 8
                + (n + (1 << h)).div_ceil(64) * 8
                + (1usize << h).div_ceil(64) * 4;
            assert_eq!(f.bytes(), expected);
            let per = f.bytes() as f64 / n as f64;
            assert!(per < if n >= 50_000 { 6.4 } else { 6.9 }, "{n}: {per}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Frozen sets built and merged at random boundaries answer as a `HashSet` does.
        #[test]
        fn frozen_and_merged_sets_match_a_hash_set(
            batches in prop::collection::vec(prop::collection::vec(any::<u64>(), 0..600), 1..6),
            edges in any::<bool>(),
            probes in prop::collection::vec(any::<u64>(), 0..200),
            spilled in any::<bool>(),
            kept in 0u32..20,
        ) {
            // Half the cases spill every frozen set, keeping 0 to 19 bits in memory.
            let dir = TempDir::new();
            let spill = spilled.then(|| SpillDir::with(&dir.0, kept, 1));
            let mut model: HashSet<u64> = HashSet::new();
            let mut set = NonceSet::default();
            let mut batches = batches;
            if edges {
                batches[0].extend([0, u64::MAX, 1, u64::MAX - 1]);
            }
            for batch in &batches {
                for &k in batch {
                    prop_assert_eq!(set.insert(k).unwrap(), model.insert(k));
                }
                // A merge at every batch's end (whatever its size), checked before and after.
                if let Some(m) = set.start_merge(0) {
                    for &k in &model {
                        prop_assert!(set.contains(k).unwrap());
                    }
                    let merged = m.run(spill.as_ref());
                    drop(set.finish_merge(merged));
                }
                prop_assert_eq!(set.len(), model.len());
                for &k in &model {
                    prop_assert!(set.contains(k).unwrap());
                }
                for &p in &probes {
                    prop_assert_eq!(set.contains(p).unwrap(), model.contains(&p));
                }
            }
            let mut all: Vec<u64> = model.iter().copied().collect();
            all.sort_unstable();
            if let Some(f) = &set.frozen {
                let mut frozen: Vec<u64> = f.with_whole(|w| w.iter().collect()).unwrap();
                frozen.extend(set.recent.sorted());
                frozen.sort_unstable();
                prop_assert_eq!(frozen, all);
            }
        }
    }

    #[test]
    fn merging_by_copied_runs_equals_coding_every_value() {
        let mut fast = 0;
        for (n, m) in [
            (1usize, 1usize),
            (5, 2),
            (100, 27),
            (600, 400),
            (4_096, 3_000),
            (70_000, 4_096),
            (1 << 16, 100),
            (9_999, 9_999),
        ] {
            let mut old: Vec<u64> = (0..n as u64).map(|i| spread(i + 3)).collect();
            let mut more: Vec<u64> = (0..m as u64).map(|i| spread(i + 1_000_000)).collect();
            old[0] = 0;
            *more.last_mut().unwrap() = u64::MAX;
            old.sort_unstable();
            more.sort_unstable();
            let f = FrozenSet::from_sorted(&old);
            let a = f.merged(&more);
            let b = f.recoded(&more);
            fast += usize::from((n + m).leading_zeros() == n.leading_zeros());
            assert_eq!(
                (a.len, a.low_bits, &a.low, &a.high, &a.starts),
                (b.len, b.low_bits, &b.low, &b.high, &b.starts),
                "{n} + {m}"
            );
            let mut all = [old, more].concat();
            all.sort_unstable();
            assert_eq!(a.iter().collect::<Vec<_>>(), all);
        }
        assert!(fast >= 4, "{fast} merges took the copying path");
    }

    #[test]
    fn merges_at_the_threshold_and_a_stale_merge_is_dropped() {
        let mut s = NonceSet::default();
        for i in 0..(MERGE_MIN as u64 - 1) {
            assert!(s.insert(spread(i)).unwrap());
        }
        assert!(s.start_merge(MERGE_MIN).is_none());
        assert!(s.insert(spread(MERGE_MIN as u64)).unwrap());
        let m = s
            .start_merge(MERGE_MIN)
            .expect("a full recent table is frozen");
        assert!(s.start_merge(MERGE_MIN).is_none(), "one merge at a time");
        // Inserts and lookups go on during the merge.
        assert!(s.insert(7).unwrap() && !s.insert(spread(3)).unwrap());
        drop(s.finish_merge(m.run(None)));
        assert_eq!(s.len(), MERGE_MIN + 1);
        assert_eq!(s.frozen.as_ref().map(|f| f.len()), Some(MERGE_MIN));
        assert!(
            s.contains(7).unwrap()
                && s.contains(spread(3)).unwrap()
                && !s.contains(spread(MERGE_MIN as u64 + 1)).unwrap()
        );
        // Sealing merges the rest and frees the recent table.
        let m = s.seal().expect("the rest is merged");
        drop(s.finish_merge(m.run(None)));
        assert!(s.recent.bytes() == 0 && s.merging.is_none());
        assert!(s.contains(7).unwrap());
        // A merge started on a set that was replaced meanwhile changes nothing.
        assert!(s.insert(8).unwrap());
        let m = s.seal().expect("merge");
        let mut other = NonceSet::default();
        let before = other.len();
        drop(other.finish_merge(m.run(None)));
        assert_eq!(other.len(), before);
        assert!(
            s.contains(8).unwrap(),
            "still searched while its merge is pending"
        );
    }
}
