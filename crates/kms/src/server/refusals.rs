//! Counts of the requests and connections the HTTP layer refused before they reached the
//! protocol (so before any audit line could be written): over a connection cap, too slow,
//! too large, malformed. One `tracing` warning per reason at most every
//! [`LOG_INTERVAL`] (the first of a quiet period at once, the rest summed up by
//! [`Refusals::log_pending`] once the interval is over), and the totals at shutdown. The counters are kept here so that
//! a metrics endpoint can export them ([`Refusals::totals`]).

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// At most one warning per reason in this time.
pub const LOG_INTERVAL: Duration = Duration::from_secs(60);
/// How often [`Refusals::log_forever`] looks for counts not logged yet, so that the end of
/// a burst is reported at most this long after its reason's interval is over.
const PENDING_CHECK: Duration = Duration::from_secs(10);

/// Why a connection or request was refused before reaching the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every connection slot (`max_connections`) was taken: the accept loop waited for one
    /// to close (the client waited in the listen backlog; nothing was refused outright).
    MaxConnections,
    /// A new connection from an address that already had `max_connections_per_address`
    /// open: closed at once.
    ConnectionsPerAddress,
    /// A TLS handshake that failed or did not finish in time.
    TlsHandshake,
    /// A new connection that sent no complete request head within `first_request_timeout`
    /// (or `header_read_timeout` if shorter): closed.
    FirstRequestTimeout,
    /// A later request head on a kept-alive connection, begun but not finished within
    /// `header_read_timeout`: closed. (A connection merely idle between requests is closed
    /// by the same timeout without being counted.)
    HeaderTimeout,
    /// A request head over `max_header_bytes` or `max_headers`: 431.
    HeaderTooLarge,
    /// A request head that is not HTTP/1.x: 400 by hyper, connection closed.
    BadRequestHead,
    /// A body over the 1 MiB limit: 413.
    BodyTooLarge,
    /// A body not received within `body_read_timeout`: 400.
    BodyTimeout,
    /// A body that ended early or is not valid chunked encoding: 400.
    BadBody,
}

impl Refusal {
    pub const ALL: [Refusal; 10] = [
        Refusal::MaxConnections,
        Refusal::ConnectionsPerAddress,
        Refusal::TlsHandshake,
        Refusal::FirstRequestTimeout,
        Refusal::HeaderTimeout,
        Refusal::HeaderTooLarge,
        Refusal::BadRequestHead,
        Refusal::BodyTooLarge,
        Refusal::BodyTimeout,
        Refusal::BadBody,
    ];

    /// The name in log lines (and a future metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::ConnectionsPerAddress => "connections_per_address",
            Refusal::TlsHandshake => "tls_handshake",
            Refusal::FirstRequestTimeout => "first_request_timeout",
            Refusal::HeaderTimeout => "header_timeout",
            Refusal::HeaderTooLarge => "header_too_large",
            Refusal::BadRequestHead => "bad_request_head",
            Refusal::BodyTooLarge => "body_too_large",
            Refusal::BodyTimeout => "body_timeout",
            Refusal::BadBody => "bad_body",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const N: usize = Refusal::ALL.len();

/// The counters, shared by the API's and the console's accept loops.
#[derive(Debug)]
pub struct Refusals {
    totals: [AtomicU64; N],
    log: Mutex<[LogState; N]>,
}

#[derive(Debug, Clone, Copy, Default)]
struct LogState {
    /// The total when the last line for this reason was written.
    logged: u64,
    last: Option<Instant>,
}

/// A warning line due: the reason, how many since the last line, the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Line {
    reason: Refusal,
    count: u64,
    total: u64,
}

impl Default for Refusals {
    fn default() -> Self {
        Self {
            totals: std::array::from_fn(|_| AtomicU64::new(0)),
            log: Mutex::new([LogState::default(); N]),
        }
    }
}

impl Refusals {
    /// Counts one refusal; writes a warning at once if none was written for this reason in
    /// the last [`LOG_INTERVAL`] (`peer` is the client, when known).
    pub fn record(&self, reason: Refusal, peer: Option<SocketAddr>) {
        if let Some(line) = self.record_at(reason, Instant::now()) {
            match peer {
                Some(peer) => tracing::warn!(
                    reason = %line.reason,
                    count = line.count,
                    total = line.total,
                    %peer,
                    "refused before the API"
                ),
                None => tracing::warn!(
                    reason = %line.reason,
                    count = line.count,
                    total = line.total,
                    "refused before the API"
                ),
            }
        }
    }

    fn record_at(&self, reason: Refusal, now: Instant) -> Option<Line> {
        let total = self.totals[reason.index()].fetch_add(1, Ordering::Relaxed) + 1;
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut log[reason.index()];
        if state
            .last
            .is_some_and(|last| now.duration_since(last) < LOG_INTERVAL)
        {
            return None;
        }
        Some(Self::take_line(state, reason, total, now))
    }

    fn take_line(state: &mut LogState, reason: Refusal, total: u64, now: Instant) -> Line {
        let line = Line {
            reason,
            count: total.saturating_sub(state.logged),
            total,
        };
        state.logged = total;
        state.last = Some(now);
        line
    }

    /// Writes a warning for every reason counted since its last line and not logged for
    /// [`LOG_INTERVAL`], so that the end of a burst is reported too.
    pub fn log_pending(&self) {
        for line in self.pending_at(Instant::now()) {
            tracing::warn!(
                reason = %line.reason,
                count = line.count,
                total = line.total,
                "refused before the API"
            );
        }
    }

    fn pending_at(&self, now: Instant) -> Vec<Line> {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let mut lines = Vec::new();
        for reason in Refusal::ALL {
            let total = self.totals[reason.index()].load(Ordering::Relaxed);
            let state = &mut log[reason.index()];
            let quiet = state
                .last
                .is_none_or(|last| now.duration_since(last) >= LOG_INTERVAL);
            if total > state.logged && quiet {
                lines.push(Self::take_line(state, reason, total, now));
            }
        }
        lines
    }

    /// Every reason with its total since start.
    pub fn totals(&self) -> Vec<(Refusal, u64)> {
        Refusal::ALL
            .iter()
            .map(|&r| (r, self.totals[r.index()].load(Ordering::Relaxed)))
            .collect()
    }

    /// The count of one reason since start.
    pub fn total(&self, reason: Refusal) -> u64 {
        self.totals[reason.index()].load(Ordering::Relaxed)
    }

    /// `reason=total` for every reason counted at least once, in [`Refusal::ALL`] order;
    /// `none` when nothing was refused.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .totals()
            .into_iter()
            .filter(|&(_, n)| n > 0)
            .map(|(r, n)| format!("{r}={n}"))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(" ")
        }
    }

    /// Runs [`Refusals::log_pending`] every few seconds, forever (abort the task).
    pub async fn log_forever(self: std::sync::Arc<Self>) {
        let mut tick = tokio::time::interval_at(Instant::now() + PENDING_CHECK, PENDING_CHECK);
        loop {
            tick.tick().await;
            self.log_pending();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_in_order() {
        let names: std::collections::HashSet<_> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), N);
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn first_refusal_logs_at_once_then_one_line_per_interval() {
        let r = Refusals::default();
        let t0 = Instant::now();
        let first = Line {
            reason: Refusal::BodyTooLarge,
            count: 1,
            total: 1,
        };
        assert_eq!(r.record_at(Refusal::BodyTooLarge, t0), Some(first));
        // Within the interval: counted, not logged.
        for i in 1..=4 {
            assert_eq!(
                r.record_at(Refusal::BodyTooLarge, t0 + Duration::from_secs(i)),
                None
            );
        }
        // Another reason has its own interval.
        assert_eq!(
            r.record_at(Refusal::HeaderTooLarge, t0 + Duration::from_secs(5)),
            Some(Line {
                reason: Refusal::HeaderTooLarge,
                count: 1,
                total: 1
            })
        );
        // The periodic pass logs nothing before the interval has passed...
        assert_eq!(r.pending_at(t0 + Duration::from_secs(30)), vec![]);
        // ...then the four held back, once.
        let later = t0 + LOG_INTERVAL;
        assert_eq!(
            r.pending_at(later),
            vec![Line {
                reason: Refusal::BodyTooLarge,
                count: 4,
                total: 5
            }]
        );
        assert_eq!(r.pending_at(later + LOG_INTERVAL), vec![]);
        // After a quiet interval the next one is logged at once, with the count since.
        assert_eq!(
            r.record_at(Refusal::BodyTooLarge, later + LOG_INTERVAL * 2),
            Some(Line {
                reason: Refusal::BodyTooLarge,
                count: 1,
                total: 6
            })
        );
        assert_eq!(r.total(Refusal::BodyTooLarge), 6);
        assert_eq!(r.summary(), "header_too_large=1 body_too_large=6");
        assert_eq!(Refusals::default().summary(), "none");
    }

    #[test]
    fn counts_under_concurrency_are_exact() {
        let r = std::sync::Arc::new(Refusals::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        r.record(Refusal::ConnectionsPerAddress, None);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(r.total(Refusal::ConnectionsPerAddress), 8000);
    }
}
