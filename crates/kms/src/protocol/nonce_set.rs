//! The set of nonces of one time bucket of one shard of the nonce cache, in 8 bytes a slot.
//!
//! Written by hand because no maintained crate offers this trade: an open-addressing table
//! (linear probing) of 64-bit fingerprints, with no control bytes and no stored hashes, an
//! all-zero slot meaning empty, and growth by half again (not doubling) once three quarters
//! full, so that a table is between 1/2 and 3/4 full: 10.7 to 16 bytes a nonce, against the
//! 10 to 21 (by doubling, 9-byte slots, at most 7/8 full) of a `HashSet<u64>`. Nothing is ever
//! removed: whole sets are dropped as their bucket passes.
//!
//! **What a fingerprint costs.** The fingerprint is a 64-bit hash of the nonce's 64-bit key,
//! seeded per process (so that signers cannot choose nonces that pile up in one place). The
//! home slot is computed from the fingerprint itself (growing must place entries again from
//! what is stored), so two keys with the same fingerprint always meet: a request never seen
//! before is refused as a replay with probability about n / 2^64, n the nonces remembered in
//! its shard (1/32 of all). At 40,000 requests a second, each nonce remembered about 19
//! minutes, n is about 1.4 million: one false refusal in about 10^13 requests (once in
//! about 10 years at that rate). Narrower slots were measured and rejected for this reason:
//! 48-bit fingerprints (6-byte slots, 8 to 12 bytes a nonce) would refuse one new request in
//! about 2 × 10^8 at that rate, several times a day. A nonce seen before is always found
//! (its fingerprint is equal).

use std::hash::BuildHasher;

/// The table grows once this many slots in four are taken.
const MAX_LOAD_QUARTERS: usize = 3;
/// The smallest table, in slots.
const MIN_SLOTS: usize = 16;

/// A set of nonce keys (see the module documentation).
pub struct NonceSet {
    /// The slots: a fingerprint each, 0 = empty.
    table: Box<[u64]>,
    len: usize,
    hasher: foldhash::fast::FixedState,
}

impl Default for NonceSet {
    fn default() -> Self {
        Self {
            table: Box::default(),
            len: 0,
            hasher: foldhash::fast::FixedState::with_seed(0),
        }
    }
}

impl NonceSet {
    /// An empty set with room for `n` keys before it grows, hashing with `seed`.
    pub fn with_capacity(n: usize, seed: u64) -> Self {
        let mut s = Self {
            table: Box::default(),
            len: 0,
            hasher: foldhash::fast::FixedState::with_seed(seed),
        };
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

    fn slots(&self) -> usize {
        self.table.len()
    }

    /// The key's fingerprint: its seeded hash, never 0.
    fn fingerprint(&self, key: u64) -> u64 {
        self.hasher.hash_one(key).max(1)
    }

    /// The home slot of a fingerprint in a table of `slots`: its place in the fingerprints'
    /// range, scaled (no power-of-two size needed, and growing keeps the order).
    fn home(fp: u64, slots: usize) -> usize {
        ((u128::from(fp) * slots as u128) >> 64) as usize
    }

    fn get(&self, i: usize) -> u64 {
        self.table[i]
    }

    fn set(&mut self, i: usize, fp: u64) {
        self.table[i] = fp;
    }

    /// The slot holding `fp`, or the empty slot where it would go.
    fn find(&self, fp: u64) -> (usize, bool) {
        let n = self.slots();
        let mut i = Self::home(fp, n);
        loop {
            match self.get(i) {
                0 => return (i, false),
                v if v == fp => return (i, true),
                _ => i = if i + 1 == n { 0 } else { i + 1 },
            }
        }
    }

    /// Whether `key` is in the set (or one with the same fingerprint: see the module).
    pub fn contains(&self, key: u64) -> bool {
        self.len > 0 && self.find(self.fingerprint(key)).1
    }

    /// Adds `key`; `false` if it (or its fingerprint) was already there.
    pub fn insert(&mut self, key: u64) -> bool {
        if (self.len + 1) * 4 > self.slots() * MAX_LOAD_QUARTERS {
            self.grow();
        }
        let fp = self.fingerprint(key);
        let (i, found) = self.find(fp);
        if found {
            return false;
        }
        self.set(i, fp);
        self.len += 1;
        true
    }

    /// Adds every key of `keys`.
    pub fn extend(&mut self, keys: impl IntoIterator<Item = u64>) {
        for k in keys {
            self.insert(k);
        }
    }

    fn grow(&mut self) {
        let slots = slots_for((self.len + 1).max(self.len + self.len / 2));
        let old = std::mem::replace(&mut self.table, vec![0u64; slots].into_boxed_slice());
        for &fp in old.iter() {
            if fp != 0 {
                let (i, _) = self.find(fp);
                self.set(i, fp);
            }
        }
    }
}

/// Slots for `n` keys at the largest load.
fn slots_for(n: usize) -> usize {
    (n.saturating_mul(4) / MAX_LOAD_QUARTERS + 1).max(MIN_SLOTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_inserted_is_found_and_others_are_not() {
        let mut s = NonceSet::with_capacity(0, 7);
        assert!(!s.contains(1));
        let keys: Vec<u64> = (0..200_000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
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
    }

    #[test]
    fn a_set_sized_ahead_does_not_grow() {
        let mut s = NonceSet::with_capacity(10_000, 1);
        let bytes = s.bytes();
        s.extend((0..10_000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 5));
        assert_eq!((s.len(), s.bytes()), (10_000, bytes));
        assert!(NonceSet::default().is_empty());
        assert!(!NonceSet::default().contains(0));
    }

    #[test]
    fn keys_that_share_high_bits_still_spread() {
        // Seeded hashing: keys chosen to share their top bits do not share a home slot.
        let mut s = NonceSet::with_capacity(0, 99);
        for i in 0..50_000u64 {
            assert!(s.insert(0xABCD_EF00_0000_0000 | i));
        }
        for i in 0..50_000u64 {
            assert!(s.contains(0xABCD_EF00_0000_0000 | i));
        }
    }
}
