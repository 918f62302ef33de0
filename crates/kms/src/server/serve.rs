//! Serving an axum app on a bound listener: the HTTP limits, TLS, the accept loop and
//! graceful shutdown; and the listener of the web console.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::refusals::{Refusal, Refusals};
use crate::config::{ConsoleSetting, TlsSetting};

/// Limits of the HTTP layer, so that no client can make the server allocate or hold
/// resources without bound (see the README's configuration table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most connections served at once on one listener (plain and TLS alike). Further
    /// connections are not accepted until one closes: they wait in the kernel's listen backlog.
    pub max_connections: usize,
    /// Most connections open at once from one client IP address on one listener. A further
    /// connection from that address is closed as soon as it is accepted.
    pub max_connections_per_address: usize,
    /// Time allowed from accepting a connection (TLS handshake included) to a complete first
    /// request head; then the connection is closed.
    pub first_request_timeout: Duration,
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
            max_connections_per_address: 128,
            first_request_timeout: Duration::from_secs(10),
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
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    // Registered now, not when the future is first polled: the API port is open before the
    // data dir is, and a SIGTERM in that window must be a graceful stop, not the default
    // action (killed by the signal). Call it before binding.
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(int) => {},
            _ = wait(term) => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    }
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

/// Open connections per client IP address on one listener; a slot is given back when its
/// [`AddressSlot`] is dropped (and the address forgotten at zero, so the table holds at most
/// one entry per open connection).
#[derive(Debug)]
struct PerAddress {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in [`PerAddress`].
#[derive(Debug)]
struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more connection from `ip` (an IPv4 address seen as IPv6, `::ffff:a.b.c.d`,
    /// counts as the IPv4 address), or none when it already has `max` open.
    fn claim(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: self.clone(),
            ip,
        })
    }

    #[cfg(test)]
    fn open_from(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&ip.to_canonical()).copied().unwrap_or(0)
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The connection's stream as hyper sees it (after TLS), noting whether bytes arrived since
/// the server last wrote: when the header-read timeout closes the connection, that tells a
/// request head begun and not finished (counted) from a keep-alive connection merely idle
/// between requests (not counted).
struct Watched<I> {
    io: I,
    read_since_write: Arc<AtomicBool>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.read_since_write.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.read_since_write.store(false, Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.read_since_write.store(false, Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The app as hyper calls it, for one connection: signals the first complete request head
/// (which ends the first-request timer), and counts the refusals the app marks on its
/// responses (a [`Refusal`] in the response's extensions, e.g. 413 for a body too large).
#[derive(Clone)]
struct Tracked {
    inner: TowerToHyperService<Router>,
    first_request: Arc<Notify>,
    refusals: Arc<Refusals>,
    peer: SocketAddr,
}

pin_project_lite::pin_project! {
    struct TrackedFuture<F> {
        #[pin]
        inner: F,
        refusals: Arc<Refusals>,
        peer: SocketAddr,
    }
}

impl<F, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<axum::response::Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &out {
            if let Some(&reason) = response.extensions().get::<Refusal>() {
                this.refusals.record(reason, Some(*this.peer));
            }
        }
        Poll::Ready(out)
    }
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Tracked {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = TrackedFuture<
        <TowerToHyperService<Router> as hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
        >>::Future,
    >;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        self.first_request.notify_one();
        TrackedFuture {
            inner: self.inner.call(req),
            refusals: self.refusals.clone(),
            peer: self.peer,
        }
    }
}

/// The accept loop, for plain HTTP and HTTPS alike:
/// - at most `limits.max_connections` connections at once (a permit is taken before
///   `accept`, so excess connections wait in the kernel's backlog);
/// - at most `limits.max_connections_per_address` from one client IP address: a further one
///   is closed as soon as it is accepted, without a byte written (cheap, and the same for
///   TLS, where an HTTP answer would first need a handshake);
/// - the TLS handshake bounded by a timeout, and the first request head (handshake included)
///   by `limits.first_request_timeout`;
/// - then HTTP/1.1 on hyper with the header size, header count and header-read-timeout
///   limits.
///
/// Every refusal is counted in `refusals`. When `shutdown` completes, stops accepting and
/// lets open connections finish their requests (for up to 30 s).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: HttpLimits,
    refusals: Arc<Refusals>,
    shutdown: impl Future<Output = ()>,
) {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioTimer;
    use hyper_util::server::graceful::GracefulShutdown;
    use tokio::sync::TryAcquireError;

    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let per_address = PerAddress::new(limits.max_connections_per_address);
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
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => break,
            Err(TryAcquireError::NoPermits) => {
                refusals.record(Refusal::MaxConnections, None);
                tokio::select! {
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    _ = &mut shutdown => break,
                }
            }
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
        let Some(slot) = per_address.claim(peer.ip()) else {
            refusals.record(Refusal::ConnectionsPerAddress, Some(peer));
            drop(tcp);
            continue;
        };
        let deadline = Instant::now() + limits.first_request_timeout;
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let conn = Conn {
            service: Tracked {
                inner: TowerToHyperService::new(
                    app.clone().layer(axum::Extension(ConnectInfo(peer))),
                ),
                first_request: Arc::new(Notify::new()),
                refusals: refusals.clone(),
                peer,
            },
            builder: builder.clone(),
            watcher: graceful.watcher(),
            deadline,
        };
        tokio::spawn(async move {
            let _permit = permit;
            let _slot = slot;
            match acceptor {
                None => conn.serve(tcp).await,
                Some(acceptor) => {
                    let handshake_deadline = deadline.min(Instant::now() + TLS_HANDSHAKE_TIMEOUT);
                    match tokio::time::timeout_at(handshake_deadline, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => conn.serve(stream).await,
                        _ => conn
                            .service
                            .refusals
                            .record(Refusal::TlsHandshake, Some(peer)),
                    }
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

/// One accepted connection, ready to be served over its (plain or TLS) stream.
struct Conn {
    service: Tracked,
    builder: hyper::server::conn::http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    /// When the first request head must be complete.
    deadline: Instant,
}

impl Conn {
    /// Serves HTTP/1.1 until the connection ends; closes it if no complete request head has
    /// arrived by the deadline; counts the refusals hyper reports.
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        use hyper_util::rt::TokioIo;

        let read_since_write = Arc::new(AtomicBool::new(false));
        let io = Watched {
            io,
            read_since_write: read_since_write.clone(),
        };
        let first_request = self.service.first_request.clone();
        let refusals = self.service.refusals.clone();
        let peer = self.service.peer;
        let conn = self.watcher.watch(
            self.builder
                .serve_connection(TokioIo::new(io), self.service),
        );
        tokio::pin!(conn);
        let mut first_seen = false;
        let result = tokio::select! {
            biased;
            r = &mut conn => r,
            _ = first_request.notified() => {
                first_seen = true;
                conn.await
            }
            _ = tokio::time::sleep_until(self.deadline) => {
                // Dropping the connection closes it.
                refusals.record(Refusal::FirstRequestTimeout, Some(peer));
                return;
            }
        };
        let Err(e) = result else { return };
        // The first request may have arrived in the poll that ended the connection.
        let first_seen = first_seen || first_request_seen(&first_request);
        let reason = if e.is_timeout() {
            if !first_seen {
                Refusal::FirstRequestTimeout
            } else if read_since_write.load(Ordering::Relaxed) {
                Refusal::HeaderTimeout
            } else {
                return; // idle keep-alive connection closed: normal
            }
        } else if e.is_parse_too_large() {
            Refusal::HeaderTooLarge
        } else if e.is_parse() {
            Refusal::BadRequestHead
        } else {
            return; // the client went away, or similar: nothing refused
        };
        refusals.record(reason, Some(peer));
    }
}

/// Whether a request was signalled and not yet waited for (consumes the signal).
fn first_request_seen(n: &Notify) -> bool {
    use futures_util::FutureExt;
    n.notified().now_or_never().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_slots_are_capped_and_given_back() {
        let table = PerAddress::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = table.claim(a).unwrap();
        let s2 = table.claim(a).unwrap();
        assert!(table.claim(a).is_none());
        // An IPv4-mapped IPv6 address is the same client.
        assert!(table.claim("::ffff:127.0.0.1".parse().unwrap()).is_none());
        // Another address is not affected.
        let s3 = table.claim(b).unwrap();
        assert_eq!(table.open_from(a), 2);
        drop(s1);
        assert_eq!(table.open_from(a), 1);
        let s4 = table.claim(a).unwrap();
        drop((s2, s3, s4));
        // Nothing is kept for addresses with no open connection.
        assert_eq!(table.addresses(), 0);
    }
}
