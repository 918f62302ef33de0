//! Brute-force protection for the console's sign-in form.
//!
//! Failed sign-ins are counted per principal (console user name or access key id) and per
//! source address within a window of [`WINDOW`] seconds (on the key-lifecycle clock). Once a
//! principal has [`MAX_PER_PRINCIPAL`] failures, or an address [`MAX_PER_SOURCE`], further
//! attempts for it are refused with 429 `Console.TooManyAttempts` *without checking the
//! credentials* (so guessing goes no further) until the window that began with the first
//! failure has passed. A successful sign-in clears its principal's count. Counts live in the
//! node's memory (bounded to [`MAX_ENTRIES`]), so with several nodes each applies its own
//! limit; PBKDF2's 600,000 iterations per attempt remain the second line.

use std::collections::HashMap;
use std::sync::Mutex;

pub const WINDOW: i64 = 15 * 60;
pub const MAX_PER_PRINCIPAL: u32 = 5;
pub const MAX_PER_SOURCE: u32 = 20;
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct SigninGuard {
    /// key → (failures, start of the window)
    failures: Mutex<HashMap<String, (u32, i64)>>,
}

fn principal_key(principal: &str) -> String {
    format!("p\u{0}{principal}")
}

fn source_key(source: &str) -> String {
    format!("s\u{0}{source}")
}

impl SigninGuard {
    fn count(&self, key: &str, now: i64) -> u32 {
        let Ok(m) = self.failures.lock() else {
            return 0;
        };
        match m.get(key) {
            Some((n, start)) if now - start < WINDOW => *n,
            _ => 0,
        }
    }

    /// Whether attempts for `principal` from `source` are refused at `now`.
    pub fn blocked(&self, principal: &str, source: &str, now: i64) -> bool {
        self.count(&principal_key(principal), now) >= MAX_PER_PRINCIPAL
            || self.count(&source_key(source), now) >= MAX_PER_SOURCE
    }

    /// Counts a failed attempt.
    pub fn failed(&self, principal: &str, source: &str, now: i64) {
        let Ok(mut m) = self.failures.lock() else {
            return;
        };
        if m.len() >= MAX_ENTRIES {
            m.retain(|_, (_, start)| now - *start < WINDOW);
            if m.len() >= MAX_ENTRIES {
                m.clear();
            }
        }
        for key in [principal_key(principal), source_key(source)] {
            let e = m.entry(key).or_insert((0, now));
            if now - e.1 >= WINDOW {
                *e = (0, now);
            }
            e.0 = e.0.saturating_add(1);
        }
    }

    /// A successful sign-in: the principal starts afresh.
    pub fn succeeded(&self, principal: &str) {
        if let Ok(mut m) = self.failures.lock() {
            m.remove(&principal_key(principal));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_and_source_limits_and_window() {
        let g = SigninGuard::default();
        for _ in 0..MAX_PER_PRINCIPAL - 1 {
            g.failed("console-user:alice", "10.0.0.1", 100);
        }
        assert!(!g.blocked("console-user:alice", "10.0.0.1", 100));
        g.failed("console-user:alice", "10.0.0.1", 100);
        assert!(g.blocked("console-user:alice", "10.0.0.1", 101));
        assert!(g.blocked("console-user:alice", "10.0.0.2", 101)); // any source
        assert!(!g.blocked("console-user:bob", "10.0.0.2", 101));
        assert!(!g.blocked("console-user:alice", "10.0.0.1", 100 + WINDOW));
        // One address trying many names.
        for i in 0..MAX_PER_SOURCE {
            g.failed(&format!("console-user:u{i}"), "10.9.9.9", 200);
        }
        assert!(g.blocked("console-user:new", "10.9.9.9", 201));
        assert!(!g.blocked("console-user:new", "10.9.9.8", 201));
        // Success clears the principal.
        g.failed("console-user:carol", "10.0.0.3", 300);
        g.succeeded("console-user:carol");
        assert_eq!(g.count(&principal_key("console-user:carol"), 300), 0);
    }
}
