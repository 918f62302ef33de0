//! `GET /metrics`: the Prometheus exposition (OpenMetrics text) of the server's counters.
//!
//! Built on `prometheus-client` (the Prometheus project's own Rust client): typed metric
//! families, histograms with explicit buckets, no global recorder and no HTTP listener of
//! its own, so the endpoint is one more route on the API listener. Label values come from
//! closed sets only: the action enum's names (`unknown` when the request named no known
//! action), the `&'static` error codes the protocol answers with, and the refusal reasons,
//! so no request can grow the label space.
//!
//! The request path pays one read-locked map lookup for the counter and one for the
//! histogram (the handles per label set are created on first use). Everything else (pool
//! level, audit queue, nonce cache, refusals, the store's cache hits and PostgreSQL pool) is
//! read when Prometheus scrapes; the key counts by state and origin (one aggregate query) at
//! most every [`KEY_COUNT_TTL`].
//!
//! Answered only to loopback peers (127.0.0.1, ::1) unless `--metrics-allow-remote`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::refusals::Refusals;
use crate::audit::AuditGate;
use crate::keystore::wrapping::Pool;
use crate::protocol::Protocol;

/// Latency buckets, in seconds: symmetric crypto answers in well under a millisecond,
/// RSA signing and key creation take milliseconds, a durable audited change waits for an
/// fsync (1–25 ms on most disks).
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    action: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    state: &'static str,
    origin: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabel {
    state: &'static str,
}

/// How long the key counts read on a scrape are reused: they cost one aggregate query over
/// the keys table, which several Prometheus servers scraping every few seconds should not
/// repeat each time.
pub const KEY_COUNT_TTL: Duration = Duration::from_secs(30);

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// What is read at scrape time.
pub struct Sources {
    pub protocol: Arc<Protocol>,
    pub pool: Arc<Pool>,
    pub audit: Option<AuditGate>,
    pub refusals: Arc<Refusals>,
    /// The store: key counts, cache hits and misses, the PostgreSQL pool.
    pub store: Option<super::data_dir::StoreProbes>,
}

/// The server's metrics: the request counters (updated on the request path) and the
/// gauges read from [`Sources`] on each scrape.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<ActionLabel, Histogram, fn() -> Histogram>,
    pool_level: Gauge,
    audit_queue: Gauge,
    audit_lost: Counter,
    audit_writable: Gauge,
    nonces: Gauge,
    refused: Family<ReasonLabel, Counter>,
    keys: Family<KeyLabels, Gauge>,
    keys_read_errors: Counter,
    /// When the key counts were last read (None: never).
    keys_read: tokio::sync::Mutex<Option<std::time::Instant>>,
    cache_hits: Counter,
    cache_misses: Counter,
    db_connections: Family<ConnectionLabel, Gauge>,
    db_connections_max: Gauge,
    db_waiting: Gauge,
    sources: Sources,
    /// One scrape at a time (the counters copied from elsewhere are advanced by deltas).
    scrape: Mutex<()>,
    allow_remote: bool,
    /// This instance among the process's (the key of the per-thread handle cache).
    id: u64,
}

/// One `(action, code)`'s request counter and the action's latency histogram, as the
/// families hold them (clones share the values), kept per thread: a request is counted
/// without hashing its labels or taking the families' locks.
struct Handles {
    metrics: u64,
    action: &'static str,
    code: &'static str,
    requests: Counter,
    latency: Histogram,
}

/// Most handles a thread keeps (then it starts over): the actions and codes it has seen.
const MAX_HANDLES: usize = 64;

thread_local! {
    static HANDLES: std::cell::RefCell<Vec<Handles>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Numbers the instances (tests run several servers in one process).
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Metrics {
    pub fn new(sources: Sources, allow_remote: bool) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "kms_requests",
            "API requests answered, by action (unknown when none was recognised) and result code (OK or the error code)",
            requests.clone(),
        );
        let latency = Family::<ActionLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "kms_request_duration_seconds",
            "Time from the request body read to the response, audit line included, by action",
            latency.clone(),
        );
        let pool_level = Gauge::default();
        registry.register(
            "kms_wrapping_key_pool_keys",
            "RSA wrapping keys generated ahead for GetParametersForImport",
            pool_level.clone(),
        );
        let audit_queue = Gauge::default();
        registry.register(
            "kms_audit_queue_lines",
            "Audit lines waiting for the writer thread",
            audit_queue.clone(),
        );
        let audit_lost = Counter::default();
        registry.register(
            "kms_audit_lost_lines",
            "Audit lines not written since start (write failure, or dropped from a full queue); recorded as gaps in the trail",
            audit_lost.clone(),
        );
        let audit_writable = Gauge::default();
        registry.register(
            "kms_audit_writable",
            "1 while the audit trail can be written; 0 while state changes are refused for it",
            audit_writable.clone(),
        );
        let nonces = Gauge::default();
        registry.register(
            "kms_nonce_cache_entries",
            "Signature nonces remembered against replay",
            nonces.clone(),
        );
        let refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "kms_http_refused",
            "Connections and requests refused by the HTTP layer before the protocol, by reason",
            refused.clone(),
        );
        let keys = Family::<KeyLabels, Gauge>::default();
        registry.register(
            "kms_keys",
            "Keys by state and origin over every account (read at most every 30 s)",
            keys.clone(),
        );
        let keys_read_errors = Counter::default();
        registry.register(
            "kms_keys_read_errors",
            "Scrapes on which the key counts could not be read from the store (kms_keys keeps its last values)",
            keys_read_errors.clone(),
        );
        let cache_hits = Counter::default();
        registry.register(
            "kms_store_cache_hits",
            "Lookups of keys, versions, aliases and access keys answered from the node's cache",
            cache_hits.clone(),
        );
        let cache_misses = Counter::default();
        registry.register(
            "kms_store_cache_misses",
            "Lookups of keys, versions, aliases and access keys that went to the database",
            cache_misses.clone(),
        );
        let db_connections = Family::<ConnectionLabel, Gauge>::default();
        registry.register(
            "kms_db_pool_connections",
            "PostgreSQL pool connections by state (in_use, idle); absent on SQLite",
            db_connections.clone(),
        );
        let db_connections_max = Gauge::default();
        registry.register(
            "kms_db_pool_max_connections",
            "The most connections the PostgreSQL pool opens (--database-pool); 0 on SQLite",
            db_connections_max.clone(),
        );
        let db_waiting = Gauge::default();
        registry.register(
            "kms_db_pool_waiting",
            "Operations waiting for a PostgreSQL pool connection",
            db_waiting.clone(),
        );
        Metrics {
            registry,
            keys,
            keys_read_errors,
            keys_read: tokio::sync::Mutex::new(None),
            cache_hits,
            cache_misses,
            db_connections,
            db_connections_max,
            db_waiting,
            requests,
            latency,
            pool_level,
            audit_queue,
            audit_lost,
            audit_writable,
            nonces,
            refused,
            sources,
            scrape: Mutex::new(()),
            allow_remote,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Counts one answered request.
    pub fn observe(
        &self,
        action: Option<&'static str>,
        code: Option<&'static str>,
        took: Duration,
    ) {
        let action = action.unwrap_or("unknown");
        let code = code.unwrap_or("OK");
        let cached = HANDLES.try_with(|handles| {
            let mut handles = handles.try_borrow_mut().ok()?;
            // The names are the action table's and the error codes' constants: the same
            // pointer each time (another copy of an equal text only adds an entry).
            let at = match handles.iter().position(|h| {
                h.metrics == self.id && std::ptr::eq(h.action, action) && std::ptr::eq(h.code, code)
            }) {
                Some(at) => at,
                None => {
                    if handles.len() >= MAX_HANDLES {
                        handles.clear();
                    }
                    handles.push(Handles {
                        metrics: self.id,
                        action,
                        code,
                        requests: self
                            .requests
                            .get_or_create(&RequestLabels { action, code })
                            .clone(),
                        latency: self.latency.get_or_create(&ActionLabel { action }).clone(),
                    });
                    handles.len() - 1
                }
            };
            let h = handles.get(at)?;
            h.requests.inc();
            h.latency.observe(took.as_secs_f64());
            Some(())
        });
        if !matches!(cached, Ok(Some(()))) {
            self.requests
                .get_or_create(&RequestLabels { action, code })
                .inc();
            self.latency
                .get_or_create(&ActionLabel { action })
                .observe(took.as_secs_f64());
        }
    }

    /// Whether `peer` may read the metrics.
    pub fn allows(&self, peer: SocketAddr) -> bool {
        self.allow_remote || is_local_peer(peer)
    }

    /// The key counts, read from the store unless read less than [`KEY_COUNT_TTL`] ago
    /// (one reader at a time; the others wait for its result).
    pub async fn refresh_key_counts(&self) {
        let Some(probes) = &self.sources.store else {
            return;
        };
        let mut read = self.keys_read.lock().await;
        if read.is_some_and(|at| at.elapsed() < KEY_COUNT_TTL) {
            return;
        }
        match probes.store.count_keys_by_state().await {
            Ok(counts) => {
                self.keys.clear();
                for c in counts {
                    self.keys
                        .get_or_create(&KeyLabels {
                            state: c.state.as_str(),
                            origin: c.origin.as_str(),
                        })
                        .set(i64::try_from(c.keys).unwrap_or(i64::MAX));
                }
                *read = Some(std::time::Instant::now());
            }
            Err(e) => {
                self.keys_read_errors.inc();
                tracing::warn!(error = %e, "metrics: cannot count the keys");
            }
        }
    }

    /// The exposition, after reading the gauges.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        let s = &self.sources;
        if let Some(probes) = &s.store {
            let (hits, misses) = probes.cache.hits_and_misses();
            advance(&self.cache_hits, hits);
            advance(&self.cache_misses, misses);
            if let Some(pg) = &probes.postgres {
                let u = pg.pool_use();
                let gauge = |state| {
                    self.db_connections
                        .get_or_create(&ConnectionLabel { state })
                };
                gauge("in_use").set(u.in_use as i64);
                gauge("idle").set(u.idle as i64);
                self.db_connections_max.set(u.max as i64);
                self.db_waiting.set(u.waiting as i64);
            }
        }
        self.pool_level.set(s.pool.len() as i64);
        self.nonces.set(s.protocol.nonces.len() as i64);
        if let Some(audit) = &s.audit {
            self.audit_queue.set(audit.queued() as i64);
            self.audit_writable.set(i64::from(audit.is_open()));
            advance(&self.audit_lost, audit.lost());
        }
        for (reason, total) in s.refusals.totals() {
            advance(
                &self.refused.get_or_create(&ReasonLabel {
                    reason: reason.as_str(),
                }),
                total,
            );
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Brings `counter` up to `total` (a monotonic count kept elsewhere).
fn advance(counter: &Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

/// 127.0.0.1 or ::1 exactly (also as an IPv4-mapped IPv6 address): the rule is testable
/// from 127.0.0.2, and a proxy on this machine that forwards remote clients should use
/// another loopback address or keep the default refusal.
pub fn is_local_peer(peer: SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
        std::net::IpAddr::V6(ip) => {
            ip == std::net::Ipv6Addr::LOCALHOST
                || ip.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        let (kms, _, _) = crate::service::testing::kms();
        Metrics::new(
            Sources {
                protocol: Arc::new(Protocol::new(Arc::new(kms))),
                pool: crate::keystore::wrapping::Pool::new(0),
                audit: None,
                refusals: Arc::new(Refusals::default()),
                store: None,
            },
            false,
        )
    }

    fn count(text: &str, labels: &str) -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("kms_requests_total{{{labels}}} ")))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The per-thread handles count each request once, in its own instance's families, for
    /// every action and code, on this thread and others, and past the cache's size.
    #[test]
    fn requests_are_counted_per_instance_and_label() {
        let (a, b) = (Arc::new(metrics()), metrics());
        let took = Duration::from_millis(1);
        for _ in 0..3 {
            a.observe(Some("Encrypt"), None, took);
        }
        b.observe(Some("Encrypt"), None, took);
        a.observe(Some("Encrypt"), Some("Forbidden.KeyNotFound"), took);
        a.observe(None, Some("InvalidAction.NotFound"), took);
        let other = a.clone();
        std::thread::spawn(move || other.observe(Some("Encrypt"), None, took))
            .join()
            .unwrap();
        // More labels than a thread keeps handles for.
        let names: Vec<&'static str> = (0..MAX_HANDLES + 10)
            .map(|i| &*Box::leak(format!("Action{i}").into_boxed_str()))
            .collect();
        for _ in 0..2 {
            for n in &names {
                a.observe(Some(n), None, took);
            }
        }
        a.observe(Some("Encrypt"), None, took);
        let text = a.render().unwrap();
        assert_eq!(
            count(&text, r#"action="Encrypt",code="OK""#),
            Some(5),
            "{text}"
        );
        assert_eq!(
            count(&text, r#"action="Encrypt",code="Forbidden.KeyNotFound""#),
            Some(1)
        );
        assert_eq!(
            count(&text, r#"action="unknown",code="InvalidAction.NotFound""#),
            Some(1)
        );
        for n in &names {
            assert_eq!(
                count(&text, &format!(r#"action="{n}",code="OK""#)),
                Some(2),
                "{n}"
            );
        }
        assert!(
            text.contains(r#"kms_request_duration_seconds_count{action="Encrypt"} 6"#),
            "{text}"
        );
        let text = b.render().unwrap();
        assert_eq!(
            count(&text, r#"action="Encrypt",code="OK""#),
            Some(1),
            "{text}"
        );
    }

    #[test]
    fn only_the_loopback_host_address_is_local() {
        assert!(is_local_peer("127.0.0.1:5".parse().unwrap()));
        assert!(is_local_peer("[::1]:5".parse().unwrap()));
        assert!(is_local_peer("[::ffff:127.0.0.1]:5".parse().unwrap()));
        assert!(!is_local_peer("127.0.0.2:5".parse().unwrap()));
        assert!(!is_local_peer("10.0.0.1:5".parse().unwrap()));
        assert!(!is_local_peer("[::ffff:127.0.0.2]:5".parse().unwrap()));
    }
}
