//! Serving an axum app on a bound listener: the HTTP limits, TLS, the accept loop and
//! graceful shutdown; and the listener of the web console.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use tokio::net::TcpListener;

use crate::config::{ConsoleSetting, TlsSetting};

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

/// Time allowed for a TLS handshake; then the connection is closed.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time open connections get to finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The server's TLS configuration, if any: from PEM files, or the data dir's self-signed
/// certificate (created on first use).
pub fn tls_config(
    setting: &TlsSetting,
    data_dir: &Path,
) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    Ok(match setting {
        TlsSetting::Off => None,
        TlsSetting::Files { cert, key } => Some(crate::tls::server_config(cert, key)?),
        TlsSetting::SelfSigned => {
            let (cert, key) = crate::tls::self_signed(data_dir)?;
            Some(crate::tls::server_config(&cert, &key)?)
        }
    })
}

/// Completes on SIGINT or SIGTERM: the binary's shutdown signal.
pub async fn shutdown_signal() {
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

/// The web console's listener: none when off; when only defaulted (API port + 1) and the
/// port is taken, none with a warning; when set explicitly, failing to listen is an error.
pub async fn console_listener(setting: &ConsoleSetting) -> Result<Option<TcpListener>, String> {
    match setting {
        ConsoleSetting::Off => Ok(None),
        ConsoleSetting::Listen(addr) => TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|e| format!("cannot listen on {addr} for the web console: {e}")),
        ConsoleSetting::Default(addr) => match TcpListener::bind(addr).await {
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
/// the header size, header count and header-read-timeout limits. When `shutdown` completes,
/// stops accepting and lets open connections finish their requests (for up to 30 s).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
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
        let (tcp, peer): (_, SocketAddr) = match accepted {
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
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
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
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 30 s; stopping anyway");
    }
}
