//! Brute-force protection for the console's sign-in form.
//!
//! Sign-in attempts are counted per principal (console user name or access key id) and per
//! source address within a window of [`WINDOW`] seconds (on the key-lifecycle clock, so the
//! test clock moves it). An attempt is counted **before** its credentials are checked
//! ([`SigninGuard::reserve`], under one lock), so concurrent attempts cannot all slip under
//! the limit: once a principal has [`MAX_PER_PRINCIPAL`] attempts, or an address
//! [`MAX_PER_SOURCE`], further attempts for it are refused with 429
//! `Console.TooManyAttempts` *without checking the credentials* until the window that began
//! with the first attempt has passed. A successful sign-in clears its principal's count and
//! takes its own attempt back from the address's; an attempt that was not checked (the node
//! was busy) is taken back too.
//!
//! Password checks (PBKDF2, 600,000 iterations) are also bounded node-wide: at most
//! [`SigninGuard::concurrent_checks`] run at once, and an attempt that finds them all busy is
//! answered at once with 429 `Rejected.Throttling` instead of queueing
//! ([`SigninGuard::check_permit`]). Counts live in the node's memory (bounded to
//! [`MAX_ENTRIES`]), so with several nodes each applies its own limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub const WINDOW: i64 = 15 * 60;
pub const MAX_PER_PRINCIPAL: u32 = 5;
pub const MAX_PER_SOURCE: u32 = 20;
const MAX_ENTRIES: usize = 100_000;
/// Password checks at once: half the cores, at least 2 and at most 4.
fn default_concurrent_checks() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get().div_ceil(2))
        .clamp(2, 4)
}

/// Why an attempt is not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The principal or the address has used up its attempts for the window.
    TooManyAttempts,
    /// Every password-check slot of the node is in use.
    Busy,
}

/// A count: attempts and the start of their window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Count {
    attempts: u32,
    start: i64,
}

pub struct SigninGuard {
    counts: Mutex<HashMap<String, Count>>,
    checks: Arc<Semaphore>,
    concurrent_checks: usize,
}

impl Default for SigninGuard {
    fn default() -> Self {
        Self::with_checks(default_concurrent_checks())
    }
}

fn principal_key(principal: &str) -> String {
    format!("p\u{0}{principal}")
}

fn source_key(source: &str) -> String {
    format!("s\u{0}{source}")
}

/// One counted attempt, until it is settled. Dropped without [`Attempt::succeeded`] or
/// [`Attempt::not_checked`] (a wrong credential, an error, or a client that went away
/// mid-check), it stays counted.
pub struct Attempt<'a> {
    guard: &'a SigninGuard,
    principal: (String, Count),
    source: (String, Count),
}

impl Attempt<'_> {
    /// The credentials were right: the principal starts afresh, and the address gets this
    /// attempt back.
    pub fn succeeded(self) {
        self.guard.settle(&self.principal.0, None);
        self.guard.settle(&self.source.0, Some(self.source.1));
    }

    /// The credentials were not checked (no check slot): the attempt is taken back.
    pub fn not_checked(self) {
        self.guard.settle(&self.principal.0, Some(self.principal.1));
        self.guard.settle(&self.source.0, Some(self.source.1));
    }
}

impl SigninGuard {
    /// A guard that runs at most `checks` password checks at once.
    pub fn with_checks(checks: usize) -> Self {
        let checks = checks.max(1);
        Self {
            counts: Mutex::default(),
            checks: Arc::new(Semaphore::new(checks)),
            concurrent_checks: checks,
        }
    }

    /// How many password checks run at once at most.
    pub fn concurrent_checks(&self) -> usize {
        self.concurrent_checks
    }

    fn current(m: &HashMap<String, Count>, key: &str, now: i64) -> u32 {
        match m.get(key) {
            Some(c) if now - c.start < WINDOW => c.attempts,
            _ => 0,
        }
    }

    /// Counts an attempt for `principal` from `source` at `now`, unless either has used up
    /// its attempts (then nothing is counted).
    pub fn reserve(&self, principal: &str, source: &str, now: i64) -> Result<Attempt<'_>, Refusal> {
        let (pk, sk) = (principal_key(principal), source_key(source));
        let Ok(mut m) = self.counts.lock() else {
            return Err(Refusal::TooManyAttempts);
        };
        if Self::current(&m, &pk, now) >= MAX_PER_PRINCIPAL
            || Self::current(&m, &sk, now) >= MAX_PER_SOURCE
        {
            return Err(Refusal::TooManyAttempts);
        }
        if m.len() >= MAX_ENTRIES {
            m.retain(|_, c| now - c.start < WINDOW);
            if m.len() >= MAX_ENTRIES {
                m.clear();
            }
        }
        let mut add = |key: &str| {
            let c = m.entry(key.to_string()).or_insert(Count {
                attempts: 0,
                start: now,
            });
            if now - c.start >= WINDOW {
                *c = Count {
                    attempts: 0,
                    start: now,
                };
            }
            c.attempts = c.attempts.saturating_add(1);
            *c
        };
        let (p, s) = (add(&pk), add(&sk));
        Ok(Attempt {
            guard: self,
            principal: (pk, p),
            source: (sk, s),
        })
    }

    /// Takes one attempt back from `key` (if its window is still the one `when` counted
    /// in), or with `None` removes the count.
    fn settle(&self, key: &str, when: Option<Count>) {
        let Ok(mut m) = self.counts.lock() else {
            return;
        };
        match when {
            None => {
                m.remove(key);
            }
            Some(counted) => {
                if let Some(c) = m.get_mut(key) {
                    if c.start == counted.start {
                        c.attempts = c.attempts.saturating_sub(1);
                    }
                }
            }
        }
    }

    /// A password-check slot, or [`Refusal::Busy`] at once. The permit is owned so that it
    /// can move into the blocking task that does the check and is released only when the
    /// check has ended, even if the request was dropped meanwhile.
    pub fn check_permit(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        self.checks
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(g: &SigninGuard, key: &str, now: i64) -> u32 {
        SigninGuard::current(&g.counts.lock().unwrap(), key, now)
    }

    #[test]
    fn principal_and_source_limits_and_window() {
        let g = SigninGuard::default();
        for _ in 0..MAX_PER_PRINCIPAL {
            drop(g.reserve("console-user:alice", "10.0.0.1", 100).unwrap());
        }
        let refused = |p: &str, s: &str, now| g.reserve(p, s, now).err();
        assert_eq!(
            refused("console-user:alice", "10.0.0.1", 101),
            Some(Refusal::TooManyAttempts)
        );
        // any source
        assert_eq!(
            refused("console-user:alice", "10.0.0.2", 101),
            Some(Refusal::TooManyAttempts)
        );
        assert_eq!(refused("console-user:bob", "10.0.0.2", 101), None);
        // the window began with the first attempt
        assert_eq!(
            refused("console-user:alice", "10.0.0.1", 100 + WINDOW),
            None
        );
        // One address trying many names.
        for i in 0..MAX_PER_SOURCE {
            drop(
                g.reserve(&format!("console-user:u{i}"), "10.9.9.9", 200)
                    .unwrap(),
            );
        }
        assert_eq!(
            refused("console-user:new", "10.9.9.9", 201),
            Some(Refusal::TooManyAttempts)
        );
        assert_eq!(refused("console-user:new", "10.9.9.8", 201), None);
    }

    #[test]
    fn success_clears_the_principal_and_returns_the_address_attempt() {
        let g = SigninGuard::default();
        drop(g.reserve("console-user:carol", "10.0.0.3", 300).unwrap());
        drop(g.reserve("console-user:carol", "10.0.0.3", 300).unwrap());
        g.reserve("console-user:carol", "10.0.0.3", 300)
            .unwrap()
            .succeeded();
        assert_eq!(count(&g, &principal_key("console-user:carol"), 300), 0);
        assert_eq!(count(&g, &source_key("10.0.0.3"), 300), 2);
        // not checked: nothing counted
        g.reserve("console-user:dan", "10.0.0.3", 300)
            .unwrap()
            .not_checked();
        assert_eq!(count(&g, &principal_key("console-user:dan"), 300), 0);
        assert_eq!(count(&g, &source_key("10.0.0.3"), 300), 2);
        // a settlement after the window rolled over leaves the new window alone
        let old = g.reserve("console-user:erin", "10.0.0.4", 300).unwrap();
        drop(
            g.reserve("console-user:erin", "10.0.0.4", 300 + WINDOW)
                .unwrap(),
        );
        old.not_checked();
        assert_eq!(
            count(&g, &principal_key("console-user:erin"), 300 + WINDOW),
            1
        );
    }

    /// Issue 14 item 5: the count is taken before the check, so threads racing on one
    /// principal get no more than the limit between them.
    #[test]
    fn the_limit_holds_under_concurrency() {
        let g = Arc::new(SigninGuard::default());
        let granted = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for i in 0..64 {
                let (g, granted) = (g.clone(), &granted);
                s.spawn(move || {
                    let source = format!("10.1.0.{}", i % 4);
                    if let Ok(a) = g.reserve("console-user:race", &source, 500) {
                        granted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        drop(a); // wrong password
                    }
                });
            }
        });
        assert_eq!(granted.into_inner(), MAX_PER_PRINCIPAL);
    }

    #[test]
    fn check_slots_are_bounded_and_refused_at_once() {
        let g = SigninGuard::with_checks(2);
        let a = g.check_permit().unwrap();
        let b = g.check_permit().unwrap();
        assert_eq!(g.check_permit().err(), Some(Refusal::Busy));
        drop(a);
        let c = g.check_permit().unwrap();
        drop((b, c));
        assert!((2..=4).contains(&SigninGuard::default().concurrent_checks()));
    }
}
