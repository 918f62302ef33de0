//! The web console at `/console`, served by `kms server` on its own port.
//!
//! Server-rendered pages (key list, key page, sign-in) and one JSON endpoint,
//! `POST /console/api/<Action>`, that the embedded JavaScript calls for every change. That
//! endpoint runs the action through [`Protocol::dispatch_principal`], the very code a signed
//! API request reaches after authentication (throttling, required parameters, RAM
//! authorisation, the `api` and `service` layers), as the signed-in principal: the account's
//! root for an access key or console user, the RAM user itself for a RAM user signed in with
//! its login profile (issue 16). The console can do nothing the API would refuse, and
//! answers with the API's error codes. Pages read through the same service functions with
//! the same account isolation, after checking the read action against a RAM user's
//! policies ([`extract::Signed::may`]); the RAM page ([`ram`]) dispatches RAM actions.
//!
//! How the modules fit:
//! - this file: the router, security headers, static assets and small response helpers;
//! - [`extract`]: the session extractor ([`extract::Signed`] for pages, [`extract::ApiSigned`]
//!   for the JSON API) on top of the console-sessions service
//!   ([`crate::service::console::ConsoleSessions`]): the console never touches the store;
//! - one module per page: [`signin`] (sign-in and sign-out), [`keys`] (key list and the
//!   create-key dialog), [`key`] (key page and the import dialogs), [`secrets`] (secret
//!   list and page), [`api`] (JSON API);
//! - [`view`]: what every page template shares; the templates themselves are askama files
//!   in `crates/kms/templates/console/`, compiled into the binary and escaped by default;
//! - [`audit`]: console events in the audit trail; [`session`]: passwords, session tokens
//!   and cookies, CSRF; [`guard`]: sign-in brute-force protection (attempts counted before
//!   the check, password checks bounded); [`i18n`]: the two languages.
//!
//! Every console action (sign-in, sign-out, page views, changes) is written to the audit
//! trail with the principal (`console-user:<name>`, `console:<access key id>`, or a RAM
//! user's ARN), never
//! secrets, material or tokens.

pub mod api;
pub mod audit;
pub mod extract;
pub mod guard;
pub mod i18n;
pub mod key;
pub mod keys;
pub mod ram;
pub mod secrets;
pub mod session;
pub mod signin;
pub mod view;

use std::sync::Arc;

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::audit::AuditLog;
use crate::error::KmsError;
use crate::protocol::Protocol;
use crate::service::console::{ConsoleSessions, SessionPolicy};
use crate::service::Kms;

const CSS: &str = include_str!("../../console/console.css");
const JS: &str = include_str!("../../console/console.js");

#[derive(Clone)]
pub struct ConsoleState {
    pub protocol: Arc<Protocol>,
    pub audit: Option<AuditLog>,
    /// Served over TLS: the session cookie is `__Host-kms_session` (Secure, Path=/).
    pub secure: bool,
    /// Seconds without a request before a session ends.
    pub idle_timeout: i64,
    /// Failed sign-in counts (brute-force protection).
    pub guard: Arc<guard::SigninGuard>,
}

impl ConsoleState {
    fn kms(&self) -> &Kms {
        &self.protocol.kms
    }

    /// The console-sessions service.
    fn sessions(&self) -> ConsoleSessions<'_> {
        ConsoleSessions::new(
            self.kms(),
            SessionPolicy {
                idle_timeout: self.idle_timeout,
            },
        )
    }
}

pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/", get(|| async { redirect("/console/keys") }))
        .route("/console", get(|| async { redirect("/console/keys") }))
        .route("/console/", get(|| async { redirect("/console/keys") }))
        .route(
            "/console/signin",
            get(signin::signin_get).post(signin::signin_post),
        )
        .route("/console/signout", post(signin::signout))
        .route("/console/keys", get(keys::keys_page))
        .route("/console/keys/{key_id}", get(key::key_page))
        .route(
            "/console/keys/{key_id}/versions/{version_id}/public-key",
            get(key::public_key_download),
        )
        .route("/console/secrets", get(secrets::secrets_page))
        .route("/console/secret", get(secrets::secret_page))
        .route("/console/ram", get(ram::ram_page).post(ram::ram_post))
        .route("/console/api/{action}", post(api::api))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .route("/healthz", get(|| async { "OK" }))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not found").into_response() })
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// A rendered page (askama escapes every value the template prints).
fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => internal(&KmsError::internal(e)),
    }
}

fn internal(e: &KmsError) -> Response {
    if let KmsError::Internal(detail) = e {
        tracing::error!(detail = %detail, "console: internal failure");
    }
    (StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response()
}

/// Adds a `Set-Cookie` header for the session cookie (see [`session::session_cookie`]).
fn set_session_cookie(r: &mut Response, value: &str, secure: bool, max_age: Option<i64>) {
    if let Ok(v) = HeaderValue::from_str(&session::session_cookie(value, secure, max_age)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}
