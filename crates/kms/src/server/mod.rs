//! The binary's server, one job per module: [`data_dir`] opens the data dir (root key,
//! database, cache), [`bootstrap`] creates the account and first access key on first
//! start, [`app`] is the API's axum app (the API handler, `/healthz`, the test clock) and
//! [`serve`] the accept loop (HTTP limits, TLS, graceful shutdown). [`run`] wires them
//! together on a listener the caller has bound, and returns once its shutdown future
//! completes and open connections have finished.

pub mod app;
pub mod bootstrap;
pub mod data_dir;
pub mod metrics;
pub mod refusals;
pub mod root_key;
pub mod serve;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::audit::AuditLog;
use crate::clock::OffsetClock;
use crate::config::ServerConfig;
use crate::keystore::wrapping::Pool;
use crate::protocol::Protocol;
use crate::service::ServiceConfig;

pub use app::{router, TestClock, MAX_BODY_BYTES};
pub use bootstrap::default_account;
pub use data_dir::{open_keystore, DataDir, DEFAULT_DATABASE_POOL};
pub use serve::{shutdown_signal, HttpLimits};

/// Time the audit writer gets to write its last lines at a graceful stop.
const AUDIT_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the server on `listener` (the API; the web console listens where `config.console`
/// says) until `shutdown` completes (then every line of the audit trail is written before it
/// returns); the binary passes [`shutdown_signal`].
pub async fn run<F>(listener: TcpListener, config: ServerConfig, shutdown: F) -> Result<(), String>
where
    F: Future<Output = ()> + Send + 'static,
{
    run_with_clock(listener, config, Arc::new(OffsetClock::new()), shutdown).await
}

/// [`run`] with the given key-lifecycle clock (tests pass a fixed one).
pub async fn run_with_clock<C, F>(
    listener: TcpListener,
    config: ServerConfig,
    clock: Arc<C>,
    shutdown: F,
) -> Result<(), String>
where
    C: TestClock,
    F: Future<Output = ()> + Send + 'static,
{
    // The HSM first: the root key may be sealed by it (issue 20).
    if let Some(settings) = config.hsm.clone() {
        let deadline = settings.timeout * 3;
        let module = settings.module.display().to_string();
        let opening = tokio::task::spawn_blocking(move || crate::hsm::Hsm::open(&settings));
        let hsm = tokio::time::timeout(deadline, opening)
            .await
            .map_err(|_| {
                format!(
                    "the HSM (PKCS#11 module {module}) did not answer within {} s at start-up",
                    deadline.as_secs()
                )
            })?
            .map_err(|e| format!("cannot open the HSM: {e}"))??;
        crate::hsm::install(hsm);
    }
    let dir = DataDir::open_with_pool(
        &config.data_dir,
        config.database_url.as_deref(),
        config.database_pool_size,
    )
    .await?;
    let mut background: Vec<JoinHandle<()>> = dir.start_change_listener().into_iter().collect();
    let pool = Pool::new(config.wrapping_key_pool);
    let kms = Arc::new(
        dir.service(
            clock.clone(),
            pool.clone(),
            ServiceConfig {
                regions: config.regions.clone(),
                max_keys: config.max_keys,
                max_aliases_per_key: config.max_aliases_per_key,
                max_versions_per_key: config.max_versions_per_key,
                max_import_tokens_per_key: config.max_import_tokens_per_key,
                ..ServiceConfig::default()
            },
        )
        .with_hsm(crate::hsm::installed()),
    );
    let first = bootstrap::bootstrap(&dir, &kms, &config).await?;

    background.push(tokio::spawn(pool.clone().refill_forever()));
    let sweeper = kms.clone();
    background.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Err(e) = sweeper.sweep().await {
                tracing::error!(error = %e, "background sweep failed");
            }
        }
    }));
    // From here on, an early return must not leave the background tasks running.
    let result = serve_api(
        listener,
        &config,
        &dir,
        clock,
        (kms, pool),
        &first,
        shutdown,
    )
    .await;
    for task in background {
        task.abort();
    }
    if result.is_ok() {
        tracing::info!("stopped");
    }
    result
}

/// Checks every second that the database is still sealed under this node's root key and no
/// rotation is under way (`kms admin rotate-root-key`, perhaps from another node); otherwise
/// closes `gate` for good: every request is refused (503) until a restart with the new key.
async fn watch_root_key(
    store: Arc<dyn crate::store::Store>,
    check: String,
    gate: crate::protocol::RootKeyGate,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let (Ok(recorded), Ok(rotation)) = (
            store.get_meta(root_key::CHECK_META).await,
            store.get_meta(root_key::ROTATION_META).await,
        ) else {
            continue;
        };
        let rotated = recorded.is_some_and(|r| r != check);
        if (rotated || rotation.is_some()) && gate.close() {
            tracing::error!(
                rotating_to = rotation.as_deref().unwrap_or_default(),
                "the root key is being rotated away from this node's: every request is refused (503) until this node is restarted with the new root key (see `kms admin rotate-root-key`)"
            );
        }
    }
}

/// `addr` as a client on this machine reaches it: a wildcard address becomes loopback.
fn local(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// TLS, the audit trail, the console's listener and app, then both accept loops until
/// `shutdown` completes.
async fn serve_api<C, F>(
    listener: TcpListener,
    config: &ServerConfig,
    dir: &DataDir,
    clock: Arc<C>,
    // The service and its wrapping-key pool (whose level the metrics report).
    (kms, pool): (Arc<crate::service::Kms>, Arc<Pool>),
    first: &bootstrap::Bootstrap,
    shutdown: F,
) -> Result<(), String>
where
    C: TestClock,
    F: Future<Output = ()> + Send + 'static,
{
    let tls = serve::tls_config(&config.tls, &dir.path)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "serving plain HTTP on a non-loopback address: requests and responses (including data keys) travel unencrypted");
    }
    if config.enable_test_clock {
        tracing::warn!("--enable-test-clock is on: anyone who can reach this port can move the key-lifecycle clock. Never use it in production.");
    }
    println!(
        "KMS listening on {scheme}://{addr} (regions: {}; default account {account}; data dir {})",
        config.regions.join(","),
        dir.path.display(),
        account = first.account,
    );
    let _ = std::io::stdout().flush();

    let audit = AuditLog::start(crate::audit::Settings::of(config), dir.keystore.clone())?;
    let mut protocol = Protocol::with_limits(kms, config.throttle)
        .with_audit_gate(audit.gate())
        .with_secure(tls.is_some());
    // One process per SQLite database: its nonces outlive a restart in the nonce journal
    // (nodes on PostgreSQL claim theirs in the database).
    if !dir.store.shares_nonces() {
        let started = std::time::Instant::now();
        let restored = protocol
            .nonces
            .open_journal(&dir.path.join("nonces"), crate::clock::system_now())?;
        tracing::info!(
            files = restored.files,
            nonces = restored.nonces,
            removed = restored.removed,
            ms = started.elapsed().as_millis() as u64,
            "nonce journal opened"
        );
    }
    let root_key_watch = tokio::spawn(watch_root_key(
        dir.store.clone(),
        dir.keystore.check_value(),
        protocol.root_key_gate.clone(),
    ));
    let protocol = Arc::new(protocol);
    // Both accept loops stop on the one shutdown, and count their refusals together.
    let shutdown = shutdown.boxed().shared();
    let mut console_url = None;
    let refusals = Arc::new(refusals::Refusals::default());
    let refusal_log = tokio::spawn(refusals.clone().log_forever());
    let console = match serve::console_listener(&config.console).await? {
        Some(listener) => {
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            println!("Web console on {scheme}://{addr}/console");
            console_url = Some(format!("{scheme}://{}/console", local(addr)));
            let _ = std::io::stdout().flush();
            let app = crate::console::router(crate::console::ConsoleState {
                protocol: protocol.clone(),
                audit: Some(audit.clone()),
                secure: tls.is_some(),
                idle_timeout: config.console_idle_timeout,
                guard: Arc::new(crate::console::guard::SigninGuard::default()),
            });
            Some(tokio::spawn(serve::serve(
                listener,
                app,
                tls.clone(),
                config.http,
                refusals.clone(),
                shutdown.clone(),
            )))
        }
        None => None,
    };
    let data_dir = std::fs::canonicalize(&dir.path).unwrap_or_else(|_| dir.path.clone());
    let ca_cert = match &config.tls {
        crate::config::TlsSetting::Off => None,
        crate::config::TlsSetting::Files { cert, .. } => Some(cert.clone()),
        crate::config::TlsSetting::SelfSigned => Some(data_dir.join("tls").join("cert.pem")),
    };
    print!(
        "{}",
        bootstrap::banner(
            &first.first_key,
            &bootstrap::Addresses {
                api: &format!("{scheme}://{}", local(addr)),
                console: console_url.as_deref(),
                ca_cert: ca_cert.as_deref(),
                data_dir: &data_dir,
            },
        )
    );
    let _ = std::io::stdout().flush();
    let metrics = Arc::new(metrics::Metrics::new(
        metrics::Sources {
            protocol: protocol.clone(),
            pool: pool.clone(),
            audit: Some(audit.gate()),
            refusals: refusals.clone(),
            store: Some(dir.store_probes()),
        },
        config.metrics_allow_remote,
    ));
    // Kept to stop the writer once the listeners are done.
    let audit_writer = audit.clone();
    let app = router(
        protocol,
        clock,
        Some(audit),
        config.enable_test_clock,
        config.http.body_read_timeout,
        Some(metrics),
    );
    serve::serve(listener, app, tls, config.http, refusals.clone(), shutdown).await;
    if let Some(console) = console {
        let _ = console.await;
    }
    refusal_log.abort();
    root_key_watch.abort();
    // Every answered request's line on disk before the process exits.
    audit_writer.stop(AUDIT_STOP_GRACE).await;
    tracing::info!("refused before the API since start: {}", refusals.summary());
    Ok(())
}
