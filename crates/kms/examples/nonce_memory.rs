//! Bytes a remembered nonce costs in the nonce cache, counted deterministically: `N` fresh
//! nonces go through `NonceCache::check_and_record_digest` at `RATE` a second of simulated
//! time (every request dated "now", as the SDKs date them), and the heap bytes the cache's
//! sets hold (their own allocation sizes, `NonceCache::heap_bytes`) are reported as they grow,
//! with the peak. No wall clock, no sleeping: the figures are the same on a loaded machine.
//!
//! Usage: `cargo run --release --example nonce_memory [N=10000000] [RATE=15000] [DIR]`
//!
//! With `DIR` (an existing directory), big frozen sets spill the tails of their fingerprints
//! into anonymous files there, as the server does in its journal's directory, and the bytes
//! on disk are reported too.
//!
//! Under callgrind it also gives instructions per request spent in the cache (merges
//! included): `valgrind --tool=callgrind --toggle-collect='*check_and_record_digest*'
//! target/release/examples/nonce_memory 2000000`.

use kms::protocol::signature::NonceCache;

/// splitmix64: the digests' first 8 bytes (all the cache reads of them), distinct and spread.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let rate: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(15_000);
    let t0 = 1_800_000_000i64;
    let mut cache = NonceCache::new();
    if let Some(dir) = args.next() {
        cache.set_spill(Some(kms::protocol::nonce_set::SpillDir::new(
            std::path::Path::new(&dir),
        )));
    }
    let mut digest = [0u8; 32];
    let mut peak = 0usize;
    let report_every = (n / 20).max(1);
    println!("nonces,simulated_s,heap_bytes,bytes_per_nonce,disk_bytes");
    for i in 0..n {
        let now = t0 + i64::try_from(i / rate).unwrap_or(i64::MAX);
        digest[..8].copy_from_slice(&mix(i).to_le_bytes());
        if cache.check_and_record_digest(&digest, now, now).is_err() {
            eprintln!("nonce {i} refused");
            std::process::exit(1);
        }
        if (i + 1) % 1_000 == 0 || i + 1 == n {
            let bytes = cache.heap_bytes();
            peak = peak.max(bytes);
            if (i + 1) % report_every == 0 {
                let held = cache.len();
                println!(
                    "{},{},{},{:.2},{}",
                    held,
                    now - t0,
                    bytes,
                    bytes as f64 / held as f64,
                    cache.disk_bytes()
                );
            }
        }
    }
    let held = cache.len();
    let bytes = cache.heap_bytes();
    println!(
        "# {n} nonces at {rate}/s: {held} remembered, {bytes} bytes held ({:.2} a nonce), peak {peak} bytes ({:.2} a nonce), {} bytes on disk, {} tails read",
        bytes as f64 / held as f64,
        peak as f64 / held as f64,
        cache.disk_bytes(),
        kms::protocol::nonce_set::tail_reads()
    );
}
