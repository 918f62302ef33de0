//! Public random bytes whose repetition would be harmless (request ids, the CLI's signature
//! nonces: a repeated one is refused as a replay) drawn from aws-lc-rs's generator 512
//! bytes at a time per thread, instead of one generator call (~0.7-0.9 µs on this machine,
//! where it mixes in the CPU's RNG) or one `getrandom` system call (`Uuid::new_v4` with
//! this glibc) each. The bytes are the generator's, only buffered: nothing secret comes
//! from here (key material and data keys are drawn directly), and a byte handed out is
//! wiped from the pool. AES-GCM IVs are not drawn from here either: buffered bytes would be
//! handed out twice by two clones of one VM snapshot (see `keystore::blob::seal_body`).

use std::cell::RefCell;

struct Pool {
    bytes: [u8; 512],
    used: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { bytes: [0; 512], used: 512 }) };
}

/// Runs `f` on this thread's pool once it holds at least `n` unused bytes (refilled from the
/// generator if need be); `None` if the generator fails or `n` is too large.
fn with_room<T>(n: usize, f: impl FnOnce(&mut Pool) -> T) -> Option<T> {
    POOL.try_with(|pool| {
        let mut pool = pool.try_borrow_mut().ok()?;
        if n > pool.bytes.len() {
            return None;
        }
        if pool.used + n > pool.bytes.len() {
            aws_lc_rs::rand::fill(&mut pool.bytes).ok()?;
            pool.used = 0;
        }
        Some(f(&mut pool))
    })
    .ok()
    .flatten()
}

/// `N` (at most 512) random bytes from this thread's pool, refilled when it runs short;
/// `None` if the generator fails (or `N` is too large).
pub fn bytes<const N: usize>() -> Option<[u8; N]> {
    with_room(N, |pool| {
        let at = pool.used;
        let mut out = [0u8; N];
        out.copy_from_slice(&pool.bytes[at..at + N]);
        // Used bytes do not stay behind.
        pool.bytes[at..at + N].fill(0);
        pool.used += N;
        out
    })
}

/// The `N` bytes the next [`bytes`] call on this thread would hand out, left in the pool:
/// for tests that check what does not draw from it.
#[cfg(test)]
pub fn peek<const N: usize>() -> Option<[u8; N]> {
    with_room(N, |pool| {
        let mut out = [0u8; N];
        out.copy_from_slice(&pool.bytes[pool.used..pool.used + N]);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ_across_refills_and_sizes() {
        let mut seen = std::collections::HashSet::new();
        // 100 draws of 12 bytes cross two refills of the 512-byte pool.
        for _ in 0..100 {
            assert!(seen.insert(bytes::<12>().unwrap()));
        }
        assert!(bytes::<512>().is_some());
        assert!(bytes::<513>().is_none());
    }
}
