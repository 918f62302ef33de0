//! The API's axum app: the API handler (body limits, protocol, audit trail), `/healthz`,
//! the test-only clock endpoint, and the JSON error for unknown paths.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;

use super::refusals::Refusal;
use crate::audit::{AuditLog, Fields};
use crate::clock::{Clock, ManualClock, OffsetClock};
use crate::error::KmsError;
use crate::protocol::render::{self, Format};
use crate::protocol::{new_request_id, HttpRequest, Protocol};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The key-lifecycle clock as the test endpoint (`--enable-test-clock`) sees it: one that
/// can be moved.
pub trait TestClock: Clock {
    /// Moves the clock by `seconds` (back when negative); returns its total offset from the
    /// system clock.
    fn advance(&self, seconds: i64) -> i64;
}

impl TestClock for OffsetClock {
    fn advance(&self, seconds: i64) -> i64 {
        OffsetClock::advance(self, seconds)
    }
}

impl TestClock for ManualClock {
    fn advance(&self, seconds: i64) -> i64 {
        ManualClock::advance(self, seconds);
        self.now() - crate::clock::system_now()
    }
}

#[derive(Clone)]
struct AppState {
    protocol: Arc<Protocol>,
    clock: Arc<dyn TestClock>,
    audit: Option<AuditLog>,
    body_read_timeout: Duration,
    metrics: Option<Arc<super::metrics::Metrics>>,
}

/// Reads a request body of at most [`MAX_BODY_BYTES`] within `timeout`. A larger body is
/// `RequestTooLarge` (413, refused from its Content-Length before reading when it has one);
/// a body that ends early, is malformed chunked encoding, or is too slow is a 400. An error
/// comes with the reason the accept loop counts it under.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    timeout: Duration,
) -> Result<bytes::Bytes, (Refusal, KmsError)> {
    use http_body_util::BodyExt;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err((Refusal::BodyTooLarge, KmsError::RequestTooLarge));
    }
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err((Refusal::BodyTooLarge, KmsError::RequestTooLarge))
        }
        Ok(Err(_)) => Err((
            Refusal::BadBody,
            KmsError::invalid_because(
                "Body",
                "The request body ended early or is not valid chunked encoding.",
            ),
        )),
        Err(_) => Err((
            Refusal::BodyTimeout,
            KmsError::invalid_because("Body", "The request body was not received in time."),
        )),
    }
}

/// One API call: the body within its limits, then the protocol (signature, action,
/// response), then the audit trail, then the response.
async fn api_handler(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    // The request taken whole (the `HeaderMap` and `Uri` extractors would clone them).
    request: axum::extract::Request,
) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    let body = match read_body(headers, body, state.body_read_timeout).await {
        Ok(b) => b,
        Err((reason, e)) => {
            // Counted by the accept loop (it never reaches the protocol or the audit trail).
            let mut response = error_response(&e);
            response.extensions_mut().insert(reason);
            return response;
        }
    };
    // Header values are borrowed as they came; one that is not UTF-8 is read lossily into
    // `lossy` (kept alive beside the borrowed pairs).
    let lossy: Vec<String> = headers
        .values()
        .filter(|v| std::str::from_utf8(v.as_bytes()).is_err())
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let mut lossy_values = lossy.iter();
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| {
            let value = match std::str::from_utf8(v.as_bytes()) {
                Ok(s) => s,
                Err(_) => lossy_values.next().map_or("", String::as_str),
            };
            (k.as_str(), value)
        })
        .collect();
    let req = HttpRequest {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &pairs,
        body: &body,
        peer: Some(peer.ip()),
    };
    let out = state.protocol.handle(&req).await;
    tracing::debug!(
        request_id = %out.request_id,
        action = out.action.as_deref().unwrap_or("-"),
        access_key_id = out.access_key_id.as_deref().unwrap_or("-"),
        status = out.rendered.status,
        code = out.code.unwrap_or("OK"),
        "request"
    );
    let (api_action, code, rendered) = (out.api_action, out.code, out.rendered);
    if let Some(audit) = &state.audit {
        // Every successful state change is on disk before the answer (a fact of the action).
        let durable = code.is_none() && api_action.is_some_and(|a| a.changes_state());
        // The outcome's strings, borrowed: the line is rendered from them on this thread.
        audit
            .record_call(
                Fields {
                    request_id: &out.request_id,
                    account_id: out.account_id.as_deref().unwrap_or_default(),
                    access_key_id: out.access_key_id.as_deref().unwrap_or_default(),
                    action: out.action.as_deref().unwrap_or_default(),
                    key_id: out.key_id.as_deref().unwrap_or_default(),
                    key_version_id: out.key_version_id.as_deref().unwrap_or_default(),
                    result: code.unwrap_or("OK"),
                    status: rendered.status,
                    principal: out.principal.as_deref().unwrap_or_default(),
                    ..Fields::default()
                },
                &peer,
                durable,
            )
            .await;
    }
    if let Some(metrics) = &state.metrics {
        metrics.observe(api_action.map(|a| a.name()), code, started.elapsed());
    }
    let status = StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, rendered.content_type)],
        rendered.body,
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

/// `GET /metrics`: the exposition to loopback peers (or any, with
/// `--metrics-allow-remote`); others get 403 and the JSON error of a refused request.
async fn metrics_handler(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let Some(metrics) = &state.metrics else {
        return not_found(Uri::from_static("/metrics")).await;
    };
    if !metrics.allows(peer) {
        let body = serde_json::json!({
            "Code": "Forbidden.Metrics",
            "Message": "GET /metrics is answered only to 127.0.0.1 and ::1; start the server with --metrics-allow-remote to serve it to other peers.",
        });
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, render::JSON)],
            body.to_string(),
        )
            .into_response();
    }
    metrics.refresh_key_counts().await;
    match metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be rendered",
        )
            .into_response(),
    }
}

/// `GET /readyz`: 200 `{"Status":"READY",...}` when the store answers a read, the audit
/// trail can be written and the root key is loaded; otherwise 503 `{"Status":"NOT_READY"}`
/// with the failed checks. (`/healthz` says only that the process answers.)
async fn readyz(State(state): State<AppState>) -> Response {
    let store = tokio::time::timeout(
        Duration::from_secs(2),
        state.protocol.kms.store().get_meta("readyz"),
    )
    .await;
    let store_ok = matches!(store, Ok(Ok(_)));
    let audit_ok = state.audit.as_ref().is_none_or(|a| a.gate().is_open());
    // The server does not start without its root key, so a running one has it loaded; it
    // fails once the database's root key was rotated away from this node's.
    let root_key_ok = !state.protocol.root_key_gate.is_closed();
    let mut failed = Vec::new();
    if !store_ok {
        failed.push("Store");
    }
    if !audit_ok {
        failed.push("Audit");
    }
    if !root_key_ok {
        failed.push("RootKey");
    }
    let ready = failed.is_empty();
    let body = serde_json::json!({
        "Status": if ready { "READY" } else { "NOT_READY" },
        "Checks": {
            "Store": if store_ok { "OK" } else { "FAILED" },
            "Audit": if audit_ok { "OK" } else { "FAILED" },
            "RootKey": if root_key_ok { "OK" } else { "FAILED" },
        },
        "Failed": failed,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, render::JSON)],
        body.to_string(),
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

/// The API's routes: `/` (every action), `/healthz`, `/readyz`, `/metrics`, and `/__test/clock` when enabled.
pub fn router(
    protocol: Arc<Protocol>,
    clock: Arc<dyn TestClock>,
    audit: Option<AuditLog>,
    enable_test_clock: bool,
    body_read_timeout: Duration,
    metrics: Option<Arc<super::metrics::Metrics>>,
) -> Router {
    let state = AppState {
        protocol,
        clock,
        audit,
        body_read_timeout,
        metrics,
    };
    let mut app = Router::new()
        .route("/", any(api_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler));
    if enable_test_clock {
        app = app.route("/__test/clock", post(test_clock));
    }
    app.fallback(not_found).with_state(state)
}
