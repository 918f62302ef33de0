//! The binary's server: opening the data dir (root key, SQLite), first-start bootstrap
//! (account and first access key), the axum app, background tasks, graceful shutdown.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use zeroize::Zeroizing;

use crate::audit::{AuditLog, AuditRecord};
use crate::clock::{Clock, OffsetClock};
use crate::config::{ConsoleSetting, ServerConfig, TlsSetting};
use crate::error::KmsError;
use crate::keystore::wrapping::Pool;
use crate::keystore::{Keystore, ROOT_KEY_LEN};
use crate::protocol::render::{self, Format};
use crate::protocol::{new_request_id, HttpRequest, Protocol};
use crate::service::{validate_account_id, Kms, ServiceConfig};
use crate::store::cache::CachedStore;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{DatabaseUrl, Store};

/// Safety-net lifetime of cached key rows, versions and aliases (every change made through
/// this process invalidates them at once).
const CACHE_TTL: Duration = Duration::from_secs(10);

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Limits of the HTTP layer, so that no client can make the server allocate or hold
/// resources without bound (see the README's configuration table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most connections served at once (plain and TLS alike). Further connections are not
    /// accepted until one closes: they wait in the kernel's listen backlog.
    pub max_connections: usize,
    /// Largest request head (request line and headers), in bytes; larger is answered 431.
    pub max_header_bytes: usize,
    /// Most headers in one request; more is answered 431.
    pub max_headers: usize,
    /// Time allowed to receive a request head, counted from when the server starts waiting
    /// for it (so it also closes idle keep-alive connections); then the connection is closed.
    pub header_read_timeout: Duration,
    /// Time allowed to receive a request body once its head has arrived; then 400.
    pub body_read_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
        }
    }
}
const DEFAULT_ACCOUNT_META: &str = "default_account_id";
const INITIAL_KEY_FILE: &str = "initial-access-key.json";

/// An opened data dir: the store and the keystore derived from the root key.
pub struct DataDir {
    pub path: PathBuf,
    pub store: Arc<dyn Store>,
    pub keystore: Arc<Keystore>,
    cache: Arc<CachedStore>,
    /// The connection settings when the database is PostgreSQL.
    postgres: Option<tokio_postgres::Config>,
}

fn parse_root_key(bytes: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    use base64::Engine;
    if bytes.len() == ROOT_KEY_LEN {
        return Some(Zeroizing::new(bytes.to_vec()));
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    if let Ok(v) = hex::decode(text) {
        if v.len() == ROOT_KEY_LEN {
            return Some(Zeroizing::new(v));
        }
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .filter(|v| v.len() == ROOT_KEY_LEN)
        .map(Zeroizing::new)
}

/// Reads the root key from `KMS_ROOT_KEY_FILE`, or from `root.key` in the data dir,
/// creating that file (mode 0600, 32 random bytes) on first start.
fn load_root_key(dir: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    if let Some(path) = std::env::var_os("KMS_ROOT_KEY_FILE") {
        let bytes = Zeroizing::new(
            std::fs::read(&path).map_err(|e| format!("cannot read KMS_ROOT_KEY_FILE: {e}"))?,
        );
        return parse_root_key(&bytes).ok_or_else(|| {
            "KMS_ROOT_KEY_FILE must hold 32 bytes (raw, 64 hex characters or base64)".to_string()
        });
    }
    let path = dir.join("root.key");
    if !path.exists() {
        let mut key = Zeroizing::new(vec![0u8; ROOT_KEY_LEN]);
        aws_lc_rs::rand::fill(&mut key)
            .map_err(|_| "random number generator failed".to_string())?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        f.write_all(&key)
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), "created a new root key");
    }
    if let Ok(meta) = std::fs::metadata(&path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the root key file is readable by others; chmod 600 it");
        }
    }
    let bytes = Zeroizing::new(
        std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    parse_root_key(&bytes).ok_or_else(|| format!("{} is not a 32-byte root key", path.display()))
}

/// The keystore of a data dir's root key alone (no database), e.g. to check the audit trail.
pub fn open_keystore(path: &Path) -> Result<Keystore, String> {
    let root = load_root_key(path)?;
    Keystore::from_root(&root).map_err(|e| e.to_string())
}

/// Connections in a node's PostgreSQL pool.
pub const DEFAULT_DATABASE_POOL: usize = 16;
const ROOT_KEY_CHECK_META: &str = "root_key_check";

impl DataDir {
    /// Opens the data dir (root key, audit log, TLS files) and the database: SQLite in
    /// `<data dir>/kms.db` unless `database_url` is a `postgres://` URL (or `sqlite:<path>`).
    /// Refuses a database first opened with another root key.
    pub async fn open(path: &Path, database_url: Option<&str>) -> Result<Self, String> {
        Self::open_with_pool(path, database_url, DEFAULT_DATABASE_POOL).await
    }

    pub async fn open_with_pool(
        path: &Path,
        database_url: Option<&str>,
        pool_size: usize,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(path)
            .map_err(|e| format!("cannot create data dir {}: {e}", path.display()))?;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
        let root = load_root_key(path)?;
        let keystore = Arc::new(Keystore::from_root(&root).map_err(|e| e.to_string())?);
        let url = match database_url {
            Some(url) => DatabaseUrl::parse(url)?,
            None => DatabaseUrl::Sqlite(path.join("kms.db")),
        };
        let (inner, postgres, ttl): (Arc<dyn Store>, _, _) = match url {
            DatabaseUrl::Postgres(pg) => {
                let store = PostgresStore::connect((*pg).clone(), pool_size)
                    .await
                    .map_err(|e| format!("database: {e}"))?;
                (
                    Arc::new(store),
                    Some(*pg),
                    crate::store::postgres::CACHE_TTL,
                )
            }
            DatabaseUrl::Sqlite(file) => (
                Arc::new(SqliteStore::open(&file).map_err(|e| format!("database: {e}"))?),
                None,
                CACHE_TTL,
            ),
        };
        let check = keystore.check_value();
        let recorded = inner
            .init_meta(ROOT_KEY_CHECK_META, &check)
            .await
            .map_err(|e| format!("database: {e}"))?;
        if recorded != check {
            return Err("this database was created with a different root key: every node must use the same root key (KMS_ROOT_KEY_FILE or <data dir>/root.key)".into());
        }
        let cache = Arc::new(CachedStore::new(inner, ttl));
        Ok(Self {
            path: path.to_path_buf(),
            store: cache.clone(),
            cache,
            postgres,
            keystore,
        })
    }

    /// On PostgreSQL: listens for other nodes' changes and drops them from this node's cache.
    pub fn start_change_listener(&self) {
        if let Some(pg) = &self.postgres {
            let cache = self.cache.clone();
            tokio::spawn(crate::store::postgres::listen(pg.clone(), move |p| {
                cache.apply_remote(p)
            }));
        }
    }

    /// A service over this data dir.
    pub fn service(&self, clock: Arc<dyn Clock>, pool: Arc<Pool>, config: ServiceConfig) -> Kms {
        Kms::new(
            self.store.clone(),
            self.keystore.clone(),
            clock,
            pool,
            config,
        )
    }
}

/// The data dir's default account: the one recorded on first start, else `configured`,
/// else a new random 16-digit id.
pub async fn default_account(
    store: &dyn Store,
    configured: Option<&str>,
) -> Result<String, String> {
    if let Some(a) = store
        .get_meta(DEFAULT_ACCOUNT_META)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(a);
    }
    let account = match configured {
        Some(a) => {
            validate_account_id(a).map_err(|e| e.message())?;
            a.to_string()
        }
        None => {
            let mut b = [0u8; 8];
            aws_lc_rs::rand::fill(&mut b).map_err(|_| "rng failed".to_string())?;
            format!(
                "{:016}",
                u64::from_be_bytes(b) % 9_000_000_000_000_000 + 1_000_000_000_000_000
            )
        }
    };
    // Several nodes starting at once on one database agree on the first one's choice.
    store
        .init_meta(DEFAULT_ACCOUNT_META, &account)
        .await
        .map_err(|e| e.to_string())
}

/// First start: the account and one access key (from `KMS_ACCESS_KEY_ID`/`_SECRET`, or
/// generated, printed once and written to a 0600 file). Later starts reuse what is there.
async fn bootstrap(dir: &DataDir, kms: &Kms, config: &ServerConfig) -> Result<String, String> {
    let account = match &config.account_id {
        Some(a) => {
            validate_account_id(a).map_err(|e| e.message())?;
            default_account(dir.store.as_ref(), Some(a)).await?;
            a.clone()
        }
        None => default_account(dir.store.as_ref(), None).await?,
    };
    kms.store()
        .ensure_account(&account, kms.now())
        .await
        .map_err(|e| e.to_string())?;
    let env_id = std::env::var("KMS_ACCESS_KEY_ID")
        .ok()
        .filter(|v| !v.is_empty());
    let env_secret = std::env::var("KMS_ACCESS_KEY_SECRET")
        .ok()
        .filter(|v| !v.is_empty());
    match (env_id, env_secret) {
        (Some(id), Some(secret)) => {
            match dir
                .store
                .get_access_key(&id)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(existing) => {
                    let (_, stored) = kms.access_key_secret(&id).await.map_err(|e| e.message())?;
                    if stored.as_slice() != secret.as_bytes() {
                        tracing::warn!(access_key_id = %id, "KMS_ACCESS_KEY_SECRET differs from the stored secret of this access key; the stored one stays in force");
                    }
                    if existing.account_id != account {
                        tracing::warn!(access_key_id = %id, account = %existing.account_id, "KMS_ACCESS_KEY_ID belongs to another account");
                    }
                }
                None => match kms
                    .create_access_key(&account, Some((id.clone(), secret)))
                    .await
                {
                    Ok(_) => println!(
                        "Access key {id} (from KMS_ACCESS_KEY_ID) created for account {account}."
                    ),
                    // Another node sharing the database created it at the same moment.
                    Err(e) => {
                        if dir
                            .store
                            .get_access_key(&id)
                            .await
                            .map_err(|e| e.to_string())?
                            .is_none()
                        {
                            return Err(e.message());
                        }
                    }
                },
            }
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err("set both KMS_ACCESS_KEY_ID and KMS_ACCESS_KEY_SECRET, or neither".into())
        }
        (None, None) => {
            // Only one node of several starting at once on an empty database creates it.
            let ticket = uuid::Uuid::new_v4().to_string();
            if dir
                .store
                .list_access_keys()
                .await
                .map_err(|e| e.to_string())?
                .is_empty()
                && dir
                    .store
                    .init_meta("initial_access_key_creator", &ticket)
                    .await
                    .map_err(|e| e.to_string())?
                    == ticket
            {
                let ak = kms
                    .create_access_key(&account, None)
                    .await
                    .map_err(|e| e.message())?;
                let path = dir.path.join(INITIAL_KEY_FILE);
                let json = serde_json::json!({
                    "AccessKeyId": ak.access_key_id,
                    "AccessKeySecret": ak.access_key_secret,
                    "AccountId": ak.account_id,
                });
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                writeln!(f, "{json}").map_err(|e| e.to_string())?;
                println!(
                    "Created the first access key (shown once; also saved to {}):",
                    path.display()
                );
                println!("  AccessKeyId:     {}", ak.access_key_id);
                println!("  AccessKeySecret: {}", ak.access_key_secret);
            }
        }
    }
    Ok(account)
}

#[derive(Clone)]
struct AppState {
    protocol: Arc<Protocol>,
    clock: Arc<OffsetClock>,
    audit: Option<AuditLog>,
    body_read_timeout: Duration,
}

/// Reads a request body of at most [`MAX_BODY_BYTES`] within `timeout`. A larger body is
/// `RequestTooLarge` (413, refused from its Content-Length before reading when it has one);
/// a body that ends early, is malformed chunked encoding, or is too slow is a 400.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    timeout: Duration,
) -> Result<bytes::Bytes, KmsError> {
    use http_body_util::BodyExt;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(KmsError::RequestTooLarge);
    }
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(KmsError::RequestTooLarge),
        Ok(Err(_)) => Err(KmsError::invalid_because(
            "Body",
            "The request body ended early or is not valid chunked encoding.",
        )),
        Err(_) => Err(KmsError::invalid_because(
            "Body",
            "The request body was not received in time.",
        )),
    }
}

/// Actions whose audit line must be on disk before the response: every state change.
/// Reads and cryptographic calls are recorded without waiting.
fn changes_state(action: &str) -> bool {
    !(action.starts_with("Describe")
        || action.starts_with("List")
        || matches!(
            action,
            "Encrypt"
                | "Decrypt"
                | "GenerateDataKey"
                | "GenerateDataKeyWithoutPlaintext"
                | "ReEncrypt"
        ))
}

async fn api_handler(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_body(&headers, body, state.body_read_timeout).await {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let req = HttpRequest {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &headers,
        body: &body,
    };
    let out = state.protocol.handle(&req).await;
    if let Some(audit) = &state.audit {
        let action = out.action.clone().unwrap_or_default();
        let durable = out.code.is_none() && changes_state(&action);
        audit
            .record(
                AuditRecord {
                    time: crate::timefmt::format_unix(crate::clock::system_now()),
                    request_id: out.request_id.clone(),
                    account_id: out.account_id.clone().unwrap_or_default(),
                    access_key_id: out.access_key_id.clone().unwrap_or_default(),
                    source: peer.to_string(),
                    action,
                    key_id: out.key_id.clone().unwrap_or_default(),
                    key_version_id: out.key_version_id.clone().unwrap_or_default(),
                    result: out.code.unwrap_or("OK").to_string(),
                    status: out.rendered.status,
                },
                durable,
            )
            .await;
    }
    tracing::debug!(
        request_id = %out.request_id,
        action = out.action.as_deref().unwrap_or("-"),
        access_key_id = out.access_key_id.as_deref().unwrap_or("-"),
        status = out.rendered.status,
        code = out.code.unwrap_or("OK"),
        "request"
    );
    let status =
        StatusCode::from_u16(out.rendered.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, out.rendered.content_type)],
        out.rendered.body,
    )
        .into_response()
}

fn error_response(err: &KmsError) -> Response {
    let r = render::error(Format::Json, err, &new_request_id(), "kms");
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, [(header::CONTENT_TYPE, r.content_type)], r.body).into_response()
}

async fn not_found(uri: Uri) -> Response {
    error_response(&KmsError::InvalidApi(uri.path().to_string()))
}

async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, render::JSON)],
        "{\"Status\":\"OK\"}",
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct AdvanceQuery {
    advance: i64,
}

/// Test-only: moves the key-lifecycle clock, then runs one sweep so that states reflect
/// the new time at once.
async fn test_clock(State(state): State<AppState>, Query(q): Query<AdvanceQuery>) -> Response {
    let offset = state.clock.advance(q.advance);
    if let Err(e) = state.protocol.kms.sweep().await {
        tracing::error!(error = %e, "sweep after clock advance failed");
    }
    let body = serde_json::json!({
        "OffsetSeconds": offset,
        "Now": crate::timefmt::format_unix(state.clock.now()),
    });
    ([(header::CONTENT_TYPE, render::JSON)], body.to_string()).into_response()
}

pub fn router(
    protocol: Arc<Protocol>,
    clock: Arc<OffsetClock>,
    audit: Option<AuditLog>,
    enable_test_clock: bool,
    body_read_timeout: Duration,
) -> Router {
    let state = AppState {
        protocol,
        clock,
        audit,
        body_read_timeout,
    };
    let mut app = Router::new()
        .route("/", any(api_handler))
        .route("/healthz", get(healthz));
    if enable_test_clock {
        app = app.route("/__test/clock", post(test_clock));
    }
    app.fallback(not_found).with_state(state)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(config: ServerConfig) -> Result<(), String> {
    let dir = DataDir::open_with_pool(
        &config.data_dir,
        config.database_url.as_deref(),
        config.database_pool_size,
    )
    .await?;
    dir.start_change_listener();
    let clock = Arc::new(OffsetClock::new());
    let pool = Pool::new(config.wrapping_key_pool);
    let kms = Arc::new(dir.service(
        clock.clone(),
        pool.clone(),
        ServiceConfig {
            regions: config.regions.clone(),
            max_keys: config.max_keys,
            max_aliases_per_key: config.max_aliases_per_key,
            max_versions_per_key: config.max_versions_per_key,
            ..ServiceConfig::default()
        },
    ));
    let account = bootstrap(&dir, &kms, &config).await?;

    tokio::spawn(pool.refill_forever());
    let sweeper = kms.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Err(e) = sweeper.sweep().await {
                tracing::error!(error = %e, "background sweep failed");
            }
        }
    });

    let tls = match &config.tls {
        TlsSetting::Off => None,
        TlsSetting::Files { cert, key } => Some(crate::tls::server_config(cert, key)?),
        TlsSetting::SelfSigned => {
            let (cert, key) = crate::tls::self_signed(&dir.path)?;
            Some(crate::tls::server_config(&cert, &key)?)
        }
    };
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "serving plain HTTP on a non-loopback address: requests and responses (including data keys) travel unencrypted");
    }
    if config.enable_test_clock {
        tracing::warn!("--enable-test-clock is on: anyone who can reach this port can move the key-lifecycle clock. Never use it in production.");
    }
    println!(
        "KMS listening on {}://{addr} (regions: {}; default account {account}; data dir {})",
        if tls.is_some() { "https" } else { "http" },
        config.regions.join(","),
        dir.path.display()
    );
    let _ = std::io::stdout().flush();

    let audit = AuditLog::start(
        &dir.path.join("audit"),
        dir.keystore.clone(),
        config.audit_max_bytes,
    )?;
    let protocol = Arc::new(Protocol::with_limits(kms, config.throttle));
    let console = console_listener(&config).await?;
    if let Some(listener) = console {
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!(
            "Web console on {}://{addr}/console",
            if tls.is_some() { "https" } else { "http" }
        );
        let _ = std::io::stdout().flush();
        let app = crate::console::router(crate::console::ConsoleState {
            protocol: protocol.clone(),
            audit: Some(audit.clone()),
            secure: tls.is_some(),
            idle_timeout: config.console_idle_timeout,
            guard: Arc::new(crate::console::guard::SigninGuard::default()),
        });
        let tls = tls.clone();
        let limits = config.http;
        tokio::spawn(async move { serve(listener, app, tls, limits).await });
    }
    let app = router(
        protocol,
        clock,
        Some(audit),
        config.enable_test_clock,
        config.http.body_read_timeout,
    );
    serve(listener, app, tls, config.http).await;
    tracing::info!("stopped");
    Ok(())
}

/// The web console's listener: none when off; when only defaulted (API port + 1) and the
/// port is taken, none with a warning; when set explicitly, failing to listen is an error.
async fn console_listener(
    config: &ServerConfig,
) -> Result<Option<tokio::net::TcpListener>, String> {
    match &config.console {
        ConsoleSetting::Off => Ok(None),
        ConsoleSetting::Listen(addr) => tokio::net::TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|e| format!("cannot listen on {addr} for the web console: {e}")),
        ConsoleSetting::Default(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Ok(Some(l)),
            Err(e) => {
                tracing::warn!(%addr, error = %e, "web console not started: its default address is not available (set --console-listen)");
                Ok(None)
            }
        },
    }
}

/// The accept loop, for plain HTTP and HTTPS alike: at most `limits.max_connections`
/// connections at once (a permit is taken before `accept`, so excess connections wait in the
/// kernel's backlog), the TLS handshake bounded by a timeout, then HTTP/1.1 on hyper with
/// the header size, header count and header-read-timeout limits. On SIGINT/SIGTERM stop
/// accepting and let open connections finish their requests.
async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: HttpLimits,
) {
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes)
        // hyper's minimum read buffer is 8 KiB; a head larger than the buffer is also 431.
        .max_buf_size(limits.max_header_bytes.max(8192));

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service =
            TowerToHyperService::new(app.clone().layer(axum::Extension(ConnectInfo(peer))));
        let watcher = graceful.watcher();
        let builder = builder.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(tcp), service);
                    let _ = watcher.watch(conn).await;
                }
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            _ => return,
                        };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 30 s; stopping anyway");
    }
}
