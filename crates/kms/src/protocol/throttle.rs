//! Per-account throttling by class of action: a token bucket per (account, class) that holds
//! one second of requests and refills continuously. Over the limit → 429 `Rejected.Throttling`,
//! so one noisy account cannot starve the others. Limits are configurable; 0 = unlimited.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::error::KmsError;

/// Classes of actions with their own limit: a fact of each action
/// ([`crate::action::kms::Action::throttle_class`]).
pub use crate::action::ThrottleClass as Class;

/// Requests per second per account, by class (0 = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub cryptographic: u32,
    pub import: u32,
    pub management: u32,
}

impl Limits {
    pub const UNLIMITED: Limits = Limits {
        cryptographic: 0,
        import: 0,
        management: 0,
    };
    fn of(&self, class: Class) -> u32 {
        match class {
            Class::Cryptographic => self.cryptographic,
            Class::Import => self.import,
            Class::Management => self.management,
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Throttle {
    limits: Limits,
    shards: Vec<Mutex<HashMap<(String, Class), Bucket>>>,
}

impl Throttle {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            shards: (0..16).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Takes one token for `account` in `class`, or answers `Rejected.Throttling`.
    pub fn check(&self, account: &str, class: Class) -> Result<(), KmsError> {
        self.check_at(account, class, Instant::now())
    }

    fn check_at(&self, account: &str, class: Class, now: Instant) -> Result<(), KmsError> {
        let limit = self.limits.of(class);
        if limit == 0 {
            return Ok(());
        }
        let rate = f64::from(limit);
        let idx = account.bytes().fold(class as usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(b as usize)
        }) % self.shards.len();
        let mut shard = self.shards[idx]
            .lock()
            .map_err(|_| KmsError::internal("throttle lock poisoned"))?;
        if shard.len() > 100_000 {
            shard.retain(|_, b| now.duration_since(b.at).as_secs() < 2);
        }
        let b = shard.entry((account.to_string(), class)).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate);
        b.at = now;
        if b.tokens < 1.0 {
            return Err(KmsError::Throttling);
        }
        b.tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_per_account_and_class() {
        let t = Throttle::new(Limits {
            cryptographic: 5,
            import: 1,
            management: 0,
        });
        let t0 = Instant::now();
        for _ in 0..5 {
            t.check_at("a", Class::Cryptographic, t0).unwrap();
        }
        assert_eq!(
            t.check_at("a", Class::Cryptographic, t0),
            Err(KmsError::Throttling)
        );
        // Another account and another class are not affected.
        t.check_at("b", Class::Cryptographic, t0).unwrap();
        t.check_at("a", Class::Import, t0).unwrap();
        assert_eq!(
            t.check_at("a", Class::Import, t0),
            Err(KmsError::Throttling)
        );
        for _ in 0..1000 {
            t.check_at("a", Class::Management, t0).unwrap();
        }
        // Refill: 5 per second → one more token after 200 ms.
        t.check_at("a", Class::Cryptographic, t0 + Duration::from_millis(200))
            .unwrap();
        assert_eq!(
            t.check_at("a", Class::Cryptographic, t0 + Duration::from_millis(200)),
            Err(KmsError::Throttling)
        );
        use crate::action::kms::Action;
        assert_eq!(Action::ReEncrypt.throttle_class(), Class::Cryptographic);
        assert_eq!(Action::ImportKeyMaterial.throttle_class(), Class::Import);
        assert_eq!(Action::CreateKey.throttle_class(), Class::Management);
    }
}
