//! The web console at `/console`, served by `kms server` on its own port.
//!
//! Server-rendered pages (key list, key page, sign-in) and one JSON endpoint,
//! `POST /console/api/<Action>`, that the embedded JavaScript calls for every change. That
//! endpoint runs the action through [`Protocol::dispatch_as`], the very code a signed API
//! request reaches after authentication (throttling, required parameters, the `api` and
//! `service` layers), as the signed-in account: the console can do nothing the API would
//! refuse, and answers with the API's error codes. Pages read through the same service
//! functions with the same account isolation.
//!
//! Sessions, passwords and CSRF: see [`session`]. Every console action (sign-in, sign-out,
//! page views, changes) is written to the audit trail with the principal
//! (`console-user:<name>` or `console:<access key id>`), never secrets, material or tokens.

pub mod guard;
pub mod html;
pub mod i18n;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use zeroize::Zeroizing;

use self::html::{badge, esc, url, Frame};
use self::i18n::{t, Lang, LANG_COOKIE};
use self::session::{SESSION_COOKIE, SIGNIN_CSRF_COOKIE};
use crate::api::keys::KeyMetadata;
use crate::api::spec;
use crate::audit::{AuditLog, AuditRecord};
use crate::error::KmsError;
use crate::protocol::params::Params;
use crate::protocol::{new_request_id, Protocol};
use crate::service::keys::{FilterField, KeyFilter};
use crate::service::{Caller, Kms};
use crate::store::{ConsoleSessionRecord, KeyRecord};
use crate::timefmt::format_unix;

const CSS: &str = include_str!("../../console/console.css");
const JS: &str = include_str!("../../console/console.js");
const REGION_COOKIE: &str = "kms_region";
const PAGE_SIZE: usize = 20;
const USER_PREFIX: &str = "console-user:";
const AK_PREFIX: &str = "console:";
/// A session ends 12 hours after sign-in however active it is.
const MAX_SESSION_SECONDS: i64 = 12 * 3600;

/// The actions the console offers (all through [`Protocol::dispatch_as`]).
const ACTIONS: &[&str] = &[
    "CreateKey",
    "DescribeKey",
    "EnableKey",
    "DisableKey",
    "UpdateKeyDescription",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "SetDeletionProtection",
    "GetParametersForImport",
    "ImportKeyMaterial",
    "DeleteKeyMaterial",
    "CreateAlias",
    "DeleteAlias",
    "CreateKeyVersion",
    "UpdateRotationPolicy",
    "TagResource",
    "UntagResource",
];

#[derive(Clone)]
pub struct ConsoleState {
    pub protocol: Arc<Protocol>,
    pub audit: Option<AuditLog>,
    /// Served over TLS: cookies get `Secure`.
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
}

pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/", get(|| async { redirect("/console/keys") }))
        .route("/console", get(|| async { redirect("/console/keys") }))
        .route("/console/", get(|| async { redirect("/console/keys") }))
        .route("/console/signin", get(signin_get).post(signin_post))
        .route("/console/signout", post(signout))
        .route("/console/keys", get(keys_page))
        .route("/console/keys/{key_id}", get(key_page))
        .route("/console/api/{action}", post(api))
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
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        JS,
    )
        .into_response()
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn cookies(headers: &HeaderMap) -> String {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ")
}

fn lang_of(headers: &HeaderMap) -> Lang {
    Lang::from_cookie(session::cookie_value(&cookies(headers), LANG_COOKIE))
}

/// The region chosen in the selector (cookie), if this server serves it; else the first.
fn region_of(kms: &Kms, headers: &HeaderMap) -> String {
    let c = cookies(headers);
    let wanted = session::cookie_value(&c, REGION_COOKIE);
    kms.regions()
        .iter()
        .find(|r| Some(r.as_str()) == wanted)
        .or_else(|| kms.regions().first())
        .cloned()
        .unwrap_or_default()
}

// ------------------------------------------------------------------------------ audit

struct Audit<'a> {
    peer: SocketAddr,
    request_id: &'a str,
    account: &'a str,
    principal: &'a str,
    action: &'a str,
    key_id: &'a str,
    result: &'a str,
    status: u16,
}

impl ConsoleState {
    async fn audit(&self, a: Audit<'_>) {
        if let Some(log) = &self.audit {
            let durable = a.result == "OK"
                && !(a.action.starts_with("Describe") || a.action.starts_with("List"));
            log.record(
                AuditRecord {
                    time: format_unix(crate::clock::system_now()),
                    request_id: a.request_id.to_string(),
                    account_id: a.account.to_string(),
                    access_key_id: a.principal.to_string(),
                    source: a.peer.to_string(),
                    action: a.action.to_string(),
                    key_id: a.key_id.chars().take(256).collect(),
                    key_version_id: String::new(),
                    result: a.result.to_string(),
                    status: a.status,
                },
                durable,
            )
            .await;
        }
    }
}

// ------------------------------------------------------------------------------ sessions

struct Session {
    token: Zeroizing<String>,
    record: ConsoleSessionRecord,
}

impl Session {
    fn csrf(&self) -> String {
        session::csrf_token(&self.token)
    }
    fn caller(&self, region: String) -> Caller {
        Caller {
            account_id: self.record.account_id.clone(),
            region,
            access_key_id: self.record.principal.clone(),
        }
    }
}

enum NoSession {
    Missing,
    Expired,
    Failed(KmsError),
}

impl ConsoleState {
    /// The request's live session: the cookie's token is known, not idle for longer than
    /// the timeout, and its principal (console user or access key) still exists and is
    /// enabled. Refreshes the idle timer.
    async fn session(&self, headers: &HeaderMap) -> Result<Session, NoSession> {
        let c = cookies(headers);
        let token = session::cookie_value(&c, SESSION_COOKIE)
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .ok_or(NoSession::Missing)?;
        let id = session::id_hash(token);
        let store = self.kms().store();
        let rec = store
            .get_console_session(&id)
            .await
            .map_err(|e| NoSession::Failed(e.into()))?
            .ok_or(NoSession::Missing)?;
        let now = self.kms().now();
        if now - rec.last_seen >= self.idle_timeout || now - rec.created >= MAX_SESSION_SECONDS {
            store
                .delete_console_session(&id)
                .await
                .map_err(|e| NoSession::Failed(e.into()))?;
            return Err(NoSession::Expired);
        }
        let principal_ok = if let Some(name) = rec.principal.strip_prefix(USER_PREFIX) {
            store
                .get_console_user(name)
                .await
                .map_err(|e| NoSession::Failed(e.into()))?
                .is_some_and(|u| u.account_id == rec.account_id)
        } else if let Some(ak) = rec.principal.strip_prefix(AK_PREFIX) {
            self.kms()
                .access_key_secret(ak)
                .await
                .is_ok_and(|(account, _)| account == rec.account_id)
        } else {
            false
        };
        if !principal_ok {
            store
                .delete_console_session(&id)
                .await
                .map_err(|e| NoSession::Failed(e.into()))?;
            return Err(NoSession::Missing);
        }
        store
            .touch_console_session(&id, now)
            .await
            .map_err(|e| NoSession::Failed(e.into()))?;
        Ok(Session {
            token: Zeroizing::new(token.to_string()),
            record: rec,
        })
    }

    /// Sign-in redirect (or an error page) for a request without a live session.
    fn to_signin(&self, why: NoSession) -> Response {
        match why {
            NoSession::Missing => redirect("/console/signin"),
            NoSession::Expired => {
                let mut r = redirect("/console/signin?expired=1");
                self.clear_session_cookie(&mut r);
                r
            }
            NoSession::Failed(e) => internal(&e),
        }
    }

    fn clear_session_cookie(&self, r: &mut Response) {
        if let Ok(v) =
            HeaderValue::from_str(&session::cookie(SESSION_COOKIE, "", self.secure, Some(0)))
        {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }

    fn frame<'a>(&'a self, headers: &HeaderMap, s: &'a Session, csrf: &'a str) -> FrameOwned<'a> {
        FrameOwned {
            lang: lang_of(headers),
            region: region_of(self.kms(), headers),
            regions: self.kms().regions(),
            principal: &s.record.principal,
            account: &s.record.account_id,
            csrf,
        }
    }
}

struct FrameOwned<'a> {
    lang: Lang,
    region: String,
    regions: &'a [String],
    principal: &'a str,
    account: &'a str,
    csrf: &'a str,
}

impl FrameOwned<'_> {
    fn render(&self, title: &str, main: &str) -> String {
        html::page(
            &Frame {
                lang: self.lang,
                regions: self.regions,
                region: &self.region,
                principal: self.principal,
                account: self.account,
                csrf: self.csrf,
            },
            title,
            main,
        )
    }
}

fn internal(e: &KmsError) -> Response {
    if let KmsError::Internal(detail) = e {
        tracing::error!(detail = %detail, "console: internal failure");
    }
    (StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response()
}

// ------------------------------------------------------------------------------ sign-in

#[derive(Deserialize)]
struct SigninQuery {
    expired: Option<String>,
    out: Option<String>,
}

async fn signin_get(
    State(st): State<ConsoleState>,
    headers: HeaderMap,
    Query(q): Query<SigninQuery>,
) -> Response {
    let lang = lang_of(&headers);
    let message = if q.expired.is_some() {
        Some((t(lang, "session_expired"), true))
    } else if q.out.is_some() {
        Some((t(lang, "signed_out"), false))
    } else {
        None
    };
    signin_form(&st, lang, message, StatusCode::OK)
}

fn signin_form(
    st: &ConsoleState,
    lang: Lang,
    message: Option<(&str, bool)>,
    status: StatusCode,
) -> Response {
    let csrf = match session::new_signin_csrf() {
        Ok(c) => c,
        Err(e) => return internal(&KmsError::internal(e)),
    };
    let mut r = html(status, html::signin_page(lang, &csrf, message));
    if let Ok(v) = HeaderValue::from_str(&session::cookie(
        SIGNIN_CSRF_COOKIE,
        &csrf,
        st.secure,
        Some(3600),
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Default)]
struct SigninForm {
    csrf: String,
    kind: String,
    user_name: String,
    password: Zeroizing<String>,
    access_key_id: String,
    access_key_secret: Zeroizing<String>,
}

impl SigninForm {
    fn parse(body: &[u8]) -> Option<Self> {
        if body.len() > 64 * 1024 {
            return None;
        }
        let mut f = SigninForm::default();
        for (k, v) in form_urlencoded::parse(body) {
            let v = Zeroizing::new(v.into_owned());
            match k.as_ref() {
                "csrf" => f.csrf = v.to_string(),
                "kind" => f.kind = v.to_string(),
                "user_name" => f.user_name = v.to_string(),
                "password" => f.password = v,
                "access_key_id" => f.access_key_id = v.to_string(),
                "access_key_secret" => f.access_key_secret = v,
                _ => {}
            }
        }
        Some(f)
    }
}

async fn signin_post(
    State(st): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let lang = lang_of(&headers);
    let request_id = new_request_id();
    let form = match SigninForm::parse(&body) {
        Some(f) => f,
        None => return signin_form(&st, lang, None, StatusCode::BAD_REQUEST),
    };
    let c = cookies(&headers);
    let expected = session::cookie_value(&c, SIGNIN_CSRF_COOKIE).unwrap_or_default();
    if !session::tokens_equal(expected, &form.csrf) {
        st.audit(Audit {
            peer,
            request_id: &request_id,
            account: "",
            principal: "",
            action: "ConsoleSignIn",
            key_id: "",
            result: "Console.InvalidCsrfToken",
            status: 403,
        })
        .await;
        return csrf_refused(lang);
    }
    let principal_hint = if form.kind == "ak" {
        format!(
            "{AK_PREFIX}{}",
            form.access_key_id.chars().take(128).collect::<String>()
        )
    } else {
        format!(
            "{USER_PREFIX}{}",
            form.user_name.chars().take(64).collect::<String>()
        )
    };
    let now = st.kms().now();
    let source = peer.ip().to_string();
    if st.guard.blocked(&principal_hint, &source, now) {
        st.audit(Audit {
            peer,
            request_id: &request_id,
            account: "",
            principal: &principal_hint,
            action: "ConsoleSignIn",
            key_id: "",
            result: "Console.TooManyAttempts",
            status: 429,
        })
        .await;
        return signin_form(
            &st,
            lang,
            Some((t(lang, "too_many_attempts"), true)),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let verified = match form.kind.as_str() {
        "ak" => verify_access_key(&st, &form.access_key_id, &form.access_key_secret).await,
        _ => verify_user(&st, &form.user_name, &form.password).await,
    };
    let (account, principal) = match verified {
        Ok(Some(v)) => {
            st.guard.succeeded(&principal_hint);
            v
        }
        Ok(None) => {
            st.guard.failed(&principal_hint, &source, now);
            st.audit(Audit {
                peer,
                request_id: &request_id,
                account: "",
                principal: &principal_hint,
                action: "ConsoleSignIn",
                key_id: "",
                result: "Console.InvalidCredentials",
                status: 401,
            })
            .await;
            return signin_form(
                &st,
                lang,
                Some((t(lang, "bad_credentials"), true)),
                StatusCode::UNAUTHORIZED,
            );
        }
        Err(e) => return internal(&e),
    };
    let (token, id) = match session::new_session_token() {
        Ok(v) => v,
        Err(e) => return internal(&KmsError::internal(e)),
    };
    let store = st.kms().store();
    // A new session on every sign-in; the browser's previous one (if any) ends.
    if let Some(old) = session::cookie_value(&c, SESSION_COOKIE).filter(|t| t.len() <= 128) {
        if let Err(e) = store.delete_console_session(&session::id_hash(old)).await {
            return internal(&e.into());
        }
    }
    if let Err(e) = store.purge_console_sessions(now - st.idle_timeout).await {
        tracing::warn!(error = %e, "console: purging idle sessions failed");
    }
    if let Err(e) = store
        .insert_console_session(ConsoleSessionRecord {
            id_hash: id,
            account_id: account.clone(),
            principal: principal.clone(),
            created: now,
            last_seen: now,
        })
        .await
    {
        return internal(&e.into());
    }
    st.audit(Audit {
        peer,
        request_id: &request_id,
        account: &account,
        principal: &principal,
        action: "ConsoleSignIn",
        key_id: "",
        result: "OK",
        status: 200,
    })
    .await;
    let mut r = redirect("/console/keys");
    for c in [
        session::cookie(SESSION_COOKIE, &token, st.secure, None),
        session::cookie(SIGNIN_CSRF_COOKIE, "", st.secure, Some(0)),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

fn serde_urlencoded_form<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Option<T> {
    if body.len() > 64 * 1024 {
        return None;
    }
    let pairs: serde_json::Map<String, serde_json::Value> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
        .collect();
    serde_json::from_value(serde_json::Value::Object(pairs)).ok()
}

fn csrf_refused(lang: Lang) -> Response {
    html(
        StatusCode::FORBIDDEN,
        format!(
            "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><title>403</title></head>\
             <body><h1>403</h1><p id=\"csrf-error\">Console.InvalidCsrfToken: the form has no valid CSRF token. \
             <a href=\"/console/signin\">{}</a></p></body></html>",
            lang.code(),
            esc(t(lang, "signin"))
        ),
    )
}

/// A console user's name and password: `(account, principal)` if right.
async fn verify_user(
    st: &ConsoleState,
    name: &str,
    password: &str,
) -> Result<Option<(String, String)>, KmsError> {
    let user = if session::validate_user_name(name).is_ok() {
        st.kms().store().get_console_user(name).await?
    } else {
        None
    };
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let password = Zeroizing::new(password.to_string());
    let ok =
        tokio::task::spawn_blocking(move || session::verify_password(stored.as_deref(), &password))
            .await
            .map_err(KmsError::internal)?;
    Ok(match (ok, user) {
        (true, Some(u)) => Some((u.account_id, format!("{USER_PREFIX}{}", u.user_name))),
        _ => None,
    })
}

/// An access key id and secret: `(account, principal)` if right and enabled.
async fn verify_access_key(
    st: &ConsoleState,
    id: &str,
    secret: &str,
) -> Result<Option<(String, String)>, KmsError> {
    if id.is_empty() || id.len() > 128 {
        return Ok(None);
    }
    match st.kms().access_key_secret(id).await {
        Ok((account, stored)) => {
            let ok = aws_lc_rs::constant_time::verify_slices_are_equal(
                stored.as_slice(),
                secret.as_bytes(),
            )
            .is_ok();
            Ok(ok.then(|| (account, format!("{AK_PREFIX}{id}"))))
        }
        Err(KmsError::AccessKeyNotFound) | Err(KmsError::AccessKeyInactive) => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn signout(
    State(st): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let lang = lang_of(&headers);
    let s = match st.session(&headers).await {
        Ok(s) => s,
        Err(why) => return st.to_signin(why),
    };
    let form: CsrfForm = serde_urlencoded_form(&body).unwrap_or(CsrfForm {
        csrf: String::new(),
    });
    let request_id = new_request_id();
    if !session::tokens_equal(&s.csrf(), &form.csrf) {
        st.audit(Audit {
            peer,
            request_id: &request_id,
            account: &s.record.account_id,
            principal: &s.record.principal,
            action: "ConsoleSignOut",
            key_id: "",
            result: "Console.InvalidCsrfToken",
            status: 403,
        })
        .await;
        return csrf_refused(lang);
    }
    if let Err(e) = st
        .kms()
        .store()
        .delete_console_session(&s.record.id_hash)
        .await
    {
        return internal(&e.into());
    }
    st.audit(Audit {
        peer,
        request_id: &request_id,
        account: &s.record.account_id,
        principal: &s.record.principal,
        action: "ConsoleSignOut",
        key_id: "",
        result: "OK",
        status: 200,
    })
    .await;
    let mut r = redirect("/console/signin?out=1");
    st.clear_session_cookie(&mut r);
    r
}

// ------------------------------------------------------------------------------ key list

#[derive(Deserialize, Default)]
struct ListQuery {
    state: Option<String>,
    origin: Option<String>,
    q: Option<String>,
    page: Option<usize>,
}

const STATES: &[&str] = &["Enabled", "Disabled", "PendingDeletion", "PendingImport"];
const ORIGINS: &[&str] = &["Aliyun_KMS", "EXTERNAL"];

async fn keys_page(
    State(st): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let s = match st.session(&headers).await {
        Ok(s) => s,
        Err(why) => return st.to_signin(why),
    };
    let csrf = s.csrf();
    let f = st.frame(&headers, &s, &csrf);
    let lang = f.lang;
    let caller = s.caller(f.region.clone());
    let state = q.state.filter(|v| STATES.contains(&v.as_str()));
    let origin = q
        .origin
        .filter(|v| crate::model::Origin::parse(v).is_some());
    let search =
        q.q.unwrap_or_default()
            .trim()
            .chars()
            .take(256)
            .collect::<String>();
    let mut filters = Vec::new();
    if let Some(v) = &state {
        filters.push(KeyFilter {
            field: FilterField::KeyState,
            values: vec![v.clone()],
        });
    }
    if let Some(v) = &origin {
        filters.push(KeyFilter {
            field: FilterField::Origin,
            values: vec![v.clone()],
        });
    }
    let request_id = new_request_id();
    let needle = search.to_lowercase();
    let listed = list_page(st.kms(), &caller, &filters, &needle, q.page.unwrap_or(1)).await;
    let (rows, total, page) = match listed {
        Ok(v) => v,
        Err(e) => {
            st.audit(Audit {
                peer,
                request_id: &request_id,
                account: &caller.account_id,
                principal: &caller.access_key_id,
                action: "ListKeys",
                key_id: "",
                result: e.code(),
                status: e.status(),
            })
            .await;
            return internal(&e);
        }
    };
    st.audit(Audit {
        peer,
        request_id: &request_id,
        account: &caller.account_id,
        principal: &caller.access_key_id,
        action: "ListKeys",
        key_id: "",
        result: "OK",
        status: 200,
    })
    .await;
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let tr = |k| esc(t(lang, k));

    let mut m = String::new();
    m.push_str(&format!(
        "<div class=\"bar\"><h1>{}</h1><button type=\"button\" data-open=\"dlg-create\" id=\"create-key\">{}</button></div>",
        tr("keys"),
        tr("create_key")
    ));
    // filters
    let select = |name: &str, label: &str, values: &[&str], cur: &Option<String>| {
        let mut s = format!(
            "<label>{}<select name=\"{name}\" id=\"filter-{name}\"><option value=\"\">{}</option>",
            esc(label),
            tr("all")
        );
        for v in values {
            s.push_str(&format!(
                "<option value=\"{0}\"{1}>{0}</option>",
                esc(v),
                if cur.as_deref() == Some(v) {
                    " selected"
                } else {
                    ""
                }
            ));
        }
        s.push_str("</select></label>");
        s
    };
    m.push_str(&format!(
        "<form method=\"get\" action=\"/console/keys\" class=\"filters\" role=\"search\">{}{}\
         <label>{}<input type=\"search\" name=\"q\" id=\"filter-q\" value=\"{}\"></label>\
         <button type=\"submit\" id=\"filter-submit\">{}</button></form>",
        select("state", t(lang, "state"), STATES, &state),
        select("origin", t(lang, "origin"), ORIGINS, &origin),
        tr("search"),
        esc(&search),
        tr("filter")
    ));
    if total == 0 {
        m.push_str(&format!("<p class=\"empty\">{}</p>", tr("no_keys")));
    } else {
        m.push_str(&format!(
            "<div class=\"table-wrap\"><table id=\"keys-table\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            tr("alias"), tr("key_id"), tr("spec"), tr("origin"), tr("state"), tr("protection"), tr("created")
        ));
        for (k, names) in &rows {
            let href = format!("/console/keys/{}", url(&k.key_id));
            let alias_cell = if names.is_empty() {
                "—".to_string()
            } else {
                names
                    .iter()
                    .map(|a| format!("<a href=\"{href}\" class=\"alias-link\">{}</a>", esc(a)))
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            m.push_str(&format!(
                "<tr data-key-id=\"{id}\"><td data-label=\"{la}\">{alias_cell}</td><td data-label=\"{lk}\"><a href=\"{href}\" class=\"key-link\"><code>{id}</code></a></td>\
                 <td data-label=\"{ls}\">{spec}</td><td data-label=\"{lo}\">{origin}</td><td data-label=\"{lst}\">{badge}</td><td data-label=\"{lp}\">{prot}</td><td data-label=\"{lc}\">{created}</td></tr>",
                id = esc(&k.key_id),
                spec = esc(k.key_spec.as_str()),
                origin = esc(k.origin.as_str()),
                badge = badge(k.state.as_str()),
                prot = esc(k.protection_level.as_str()),
                created = esc(&format_unix(k.creation_date)),
                la = tr("alias"), lk = tr("key_id"), ls = tr("spec"), lo = tr("origin"),
                lst = tr("state"), lp = tr("protection"), lc = tr("created"),
            ));
        }
        m.push_str("</tbody></table></div>");
    }
    // paging
    let link = |p: usize| {
        let mut qs = format!("page={p}");
        if let Some(v) = &state {
            qs.push_str(&format!("&state={}", url(v)));
        }
        if let Some(v) = &origin {
            qs.push_str(&format!("&origin={}", url(v)));
        }
        if !search.is_empty() {
            qs.push_str(&format!("&q={}", url(&search)));
        }
        format!("/console/keys?{qs}")
    };
    m.push_str(&format!(
        "<nav class=\"paging\" aria-label=\"paging\"><span id=\"paging-info\">{}</span>",
        esc(&t(lang, "page_of")
            .replace("{page}", &page.to_string())
            .replace("{pages}", &pages.to_string())
            .replace("{total}", &total.to_string()))
    ));
    if page > 1 {
        m.push_str(&format!(
            "<a href=\"{}\" id=\"page-prev\">{}</a>",
            esc(&link(page - 1)),
            tr("prev")
        ));
    }
    if page < pages {
        m.push_str(&format!(
            "<a href=\"{}\" id=\"page-next\">{}</a>",
            esc(&link(page + 1)),
            tr("next")
        ));
    }
    m.push_str("</nav>");
    m.push_str(&create_dialog(lang));
    html(StatusCode::OK, f.render(t(lang, "keys"), &m))
}

/// One page (from 1, clamped) of the caller's keys matching `filters`, newest first, each
/// with its aliases; the total; the page shown. Without a search the page is read from the
/// store directly (at most two store pages); a search (substring of the key id or an alias)
/// reads every matching key and the account's aliases.
async fn list_page(
    kms: &Kms,
    caller: &Caller,
    filters: &[KeyFilter],
    needle: &str,
    page: usize,
) -> Result<(Vec<(KeyRecord, Vec<String>)>, usize, usize), KmsError> {
    if needle.is_empty() {
        let (_, total) = kms.list_keys(caller, 1, 1, filters).await?;
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        let page = page.clamp(1, pages);
        // Newest first: creation-order positions [lo, hi).
        let hi = total.saturating_sub((page - 1) * PAGE_SIZE);
        let lo = hi.saturating_sub(PAGE_SIZE);
        let mut keys = Vec::new();
        if hi > lo {
            let first = lo / PAGE_SIZE + 1;
            let last = (hi - 1) / PAGE_SIZE + 1;
            for n in first..=last {
                let (batch, _) = kms.list_keys(caller, n, PAGE_SIZE, filters).await?;
                let base = (n - 1) * PAGE_SIZE;
                keys.extend(
                    batch
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| (lo..hi).contains(&(base + i)))
                        .map(|(_, k)| k),
                );
            }
        }
        keys.reverse();
        let mut rows = Vec::with_capacity(keys.len());
        for k in keys {
            let names = match kms.list_aliases(caller, Some(&k.key_id)).await {
                Ok(a) => a.into_iter().map(|a| a.alias_name).collect(),
                // deleted between the two reads
                Err(KmsError::KeyNotFound) => Vec::new(),
                Err(e) => return Err(e),
            };
            rows.push((k, names));
        }
        return Ok((rows, total, page));
    }
    let mut keys = Vec::new();
    let mut n = 1;
    loop {
        let (batch, total) = kms.list_keys(caller, n, 100, filters).await?;
        let got = batch.len();
        keys.extend(batch);
        if got == 0 || keys.len() >= total {
            break;
        }
        n += 1;
    }
    let aliases = kms.list_aliases(caller, None).await?;
    let mut matching: Vec<(KeyRecord, Vec<String>)> = keys
        .into_iter()
        .rev()
        .map(|k| {
            let names: Vec<String> = aliases
                .iter()
                .filter(|a| a.key_id == k.key_id)
                .map(|a| a.alias_name.clone())
                .collect();
            (k, names)
        })
        .filter(|(k, names)| {
            k.key_id.to_lowercase().contains(needle)
                || names.iter().any(|a| a.to_lowercase().contains(needle))
        })
        .collect();
    let total = matching.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = page.clamp(1, pages);
    let rows = matching
        .drain(..)
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    Ok((rows, total, page))
}

fn create_dialog(lang: Lang) -> String {
    let tr = |k| esc(t(lang, k));
    format!(
        "<dialog id=\"dlg-create\" aria-labelledby=\"dlg-create-title\"><form class=\"act\" data-action=\"CreateKey\" id=\"create-form\">\
         <h2 id=\"dlg-create-title\">{create}</h2>\
         <label for=\"ck-spec\">{spec}</label><select id=\"ck-spec\" name=\"KeySpec\"><option value=\"Aliyun_AES_256\" selected>Aliyun_AES_256</option></select>\
         <label for=\"ck-alias\">{alias}</label><input id=\"ck-alias\" name=\"AliasName\" data-then=\"CreateAlias\" placeholder=\"alias/my-key\">\
         <label for=\"ck-desc\">{desc}</label><input id=\"ck-desc\" name=\"Description\">\
         <label for=\"ck-rot\">{rot} ({days})</label><input id=\"ck-rot\" name=\"RotationDays\" type=\"number\" min=\"7\" max=\"730\" placeholder=\"{off}\">\
         <details id=\"ck-advanced\"><summary>{adv}</summary><fieldset><legend>{src}</legend>\
           <label><input type=\"radio\" name=\"Origin\" value=\"Aliyun_KMS\" id=\"ck-origin-kms\" checked> {kms}</label>\
           <label><input type=\"radio\" name=\"Origin\" value=\"EXTERNAL\" id=\"ck-origin-external\"> {ext}</label>\
           <label class=\"ack\" id=\"ck-ack-label\"><input type=\"checkbox\" id=\"ck-ack\" name=\"_ack\" data-required-for=\"ck-origin-external\"> {ack}</label>\
         </fieldset></details>\
         <p class=\"form-error\" role=\"alert\" hidden></p>\
         <div class=\"buttons\"><button type=\"button\" data-close>{cancel}</button><button type=\"submit\" id=\"ck-confirm\">{confirm}</button></div>\
         </form></dialog>",
        create = tr("create_key"),
        spec = tr("spec"),
        alias = tr("alias"),
        desc = tr("description"),
        rot = tr("rotation_period"),
        days = tr("days"),
        off = tr("rotation_off"),
        adv = tr("advanced"),
        src = tr("material_source"),
        kms = tr("source_kms"),
        ext = tr("source_external"),
        ack = tr("external_ack"),
        cancel = tr("cancel"),
        confirm = tr("confirm"),
    )
}

// ------------------------------------------------------------------------------ key page

async fn key_page(
    State(st): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(key_id): Path<String>,
) -> Response {
    let s = match st.session(&headers).await {
        Ok(s) => s,
        Err(why) => return st.to_signin(why),
    };
    let csrf = s.csrf();
    let f = st.frame(&headers, &s, &csrf);
    let lang = f.lang;
    let caller = s.caller(f.region.clone());
    let kms = st.kms();
    let request_id = new_request_id();
    let loaded = async {
        let key = kms.describe_key(&caller, &key_id).await?;
        let versions = kms.list_key_versions(&caller, &key.key_id).await?;
        let aliases = kms.list_aliases(&caller, Some(&key.key_id)).await?;
        let (_, tags) = kms.list_tags(&caller, &key.key_id).await?;
        Ok::<_, KmsError>((key, versions, aliases, tags))
    }
    .await;
    let (result, status) = match &loaded {
        Ok(_) => ("OK", 200),
        Err(e) => (e.code(), e.status()),
    };
    st.audit(Audit {
        peer,
        request_id: &request_id,
        account: &caller.account_id,
        principal: &caller.access_key_id,
        action: "DescribeKey",
        key_id: &key_id,
        result,
        status,
    })
    .await;
    let tr = |k| esc(t(lang, k));
    let (key, versions, aliases, tags) = match loaded {
        Ok(v) => v,
        Err(KmsError::Internal(d)) => return internal(&KmsError::Internal(d)),
        Err(e) => {
            let body = format!(
                "<h1>{}</h1><p class=\"error\" id=\"page-error\">{}: {}</p><p><a href=\"/console/keys\">{}</a></p>",
                tr("not_found"),
                esc(e.code()),
                esc(&e.message()),
                tr("back")
            );
            let code = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::NOT_FOUND);
            return html(code, f.render(t(lang, "not_found"), &body));
        }
    };
    let id = esc(&key.key_id);
    let md = KeyMetadata::from_record(&key);
    let title = aliases
        .first()
        .map(|a| a.alias_name.clone())
        .unwrap_or_else(|| key.key_id.clone());
    let state = key.state.as_str();
    let mut m = String::new();
    m.push_str(&format!(
        "<p class=\"crumb\"><a href=\"/console/keys\">← {}</a></p><div class=\"bar\"><h1>{}</h1><span id=\"key-state\">{}</span></div>",
        tr("back"),
        esc(&title),
        badge(state)
    ));

    // actions
    m.push_str(&format!(
        "<section aria-labelledby=\"h-actions\"><h2 id=\"h-actions\">{}</h2><div class=\"actions\">",
        tr("actions")
    ));
    let hidden_key = format!("<input type=\"hidden\" name=\"KeyId\" value=\"{id}\">");
    let button_form = |action: &str, label: &str, confirm: Option<&str>, elem_id: &str| {
        format!(
            "<form class=\"act\" data-action=\"{action}\"{}>{hidden_key}<button type=\"submit\" id=\"{elem_id}\">{}</button></form>",
            confirm
                .map(|c| format!(" data-confirm=\"{}\"", esc(c)))
                .unwrap_or_default(),
            esc(label)
        )
    };
    match state {
        "Disabled" => m.push_str(&button_form(
            "EnableKey",
            t(lang, "enable"),
            None,
            "btn-enable",
        )),
        "Enabled" => m.push_str(&button_form(
            "DisableKey",
            t(lang, "disable"),
            Some(t(lang, "confirm_disable")),
            "btn-disable",
        )),
        _ => {}
    }
    if state == "PendingDeletion" {
        m.push_str(&button_form(
            "CancelKeyDeletion",
            t(lang, "cancel_deletion"),
            None,
            "btn-cancel-deletion",
        ));
    } else {
        m.push_str(&format!(
            "<form class=\"act inline\" data-action=\"ScheduleKeyDeletion\" data-confirm=\"{}\">{hidden_key}\
             <label for=\"pending-days\">{}</label><input id=\"pending-days\" name=\"PendingWindowInDays\" type=\"number\" value=\"30\" required>\
             <button type=\"submit\" id=\"btn-schedule-deletion\" class=\"danger\">{}</button><p class=\"form-error\" role=\"alert\" hidden></p></form>",
            tr("confirm_schedule_deletion"),
            tr("pending_window"),
            tr("schedule_deletion")
        ));
    }
    m.push_str("</div></section>");

    // metadata
    m.push_str(&format!(
        "<section aria-labelledby=\"h-md\"><h2 id=\"h-md\">{}</h2><dl class=\"md\" id=\"metadata\">",
        tr("metadata")
    ));
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&md) {
        for (k, v) in map {
            let v = v.as_str().unwrap_or_default().to_string();
            m.push_str(&format!(
                "<div><dt>{}</dt><dd data-field=\"{}\">{}</dd></div>",
                esc(&k),
                esc(&k),
                if v.is_empty() {
                    "—".to_string()
                } else {
                    esc(&v)
                }
            ));
        }
    }
    m.push_str(&format!(
        "</dl><form class=\"act inline\" data-action=\"UpdateKeyDescription\" id=\"description-form\">{hidden_key}\
         <label for=\"new-description\">{}</label><input id=\"new-description\" name=\"Description\" value=\"{}\">\
         <button type=\"submit\" id=\"description-save\">{}</button><p class=\"form-error\" role=\"alert\" hidden></p></form></section>",
        tr("description"),
        esc(&key.description),
        tr("save")
    ));

    // key material
    if key.origin == crate::model::Origin::External {
        let expire = key
            .material_expire
            .map(format_unix)
            .unwrap_or_else(|| t(lang, "never").to_string());
        m.push_str(&format!(
            "<section aria-labelledby=\"h-material\" id=\"material\"><h2 id=\"h-material\">{}</h2>\
             <p><span id=\"material-status\">{}</span>{}</p><div class=\"actions\">\
             <button type=\"button\" data-open=\"dlg-params\" id=\"btn-get-params\">{}</button>\
             <button type=\"button\" data-open=\"dlg-import\" id=\"btn-import\">{}</button>",
            tr("key_material"),
            if key.material_present {
                tr("material_present")
            } else {
                tr("material_absent")
            },
            if key.material_present {
                format!(
                    " · {}: <span id=\"material-expire\">{}</span>",
                    tr("material_expires"),
                    esc(&expire)
                )
            } else {
                String::new()
            },
            tr("get_params"),
            tr("import_material"),
        ));
        m.push_str(&format!(
            "<form class=\"act\" data-action=\"DeleteKeyMaterial\" data-confirm=\"{}\">{hidden_key}<button type=\"submit\" class=\"danger\" id=\"btn-delete-material\">{}</button></form></div>",
            tr("confirm_delete_material"),
            tr("delete_material")
        ));
        m.push_str(&material_dialogs(lang, &key.key_id));
        m.push_str("</section>");
    } else {
        // rotation policy
        let days = key.rotation_interval.map(|s| s / 86_400).unwrap_or(365);
        m.push_str(&format!(
            "<section aria-labelledby=\"h-rot\"><h2 id=\"h-rot\">{}</h2>\
             <form class=\"act inline\" data-action=\"UpdateRotationPolicy\" id=\"rotation-form\">{hidden_key}\
             <label><input type=\"checkbox\" name=\"EnableAutomaticRotation\" value=\"true\" data-unchecked=\"false\" id=\"rot-enable\"{}> {}</label>\
             <label for=\"rot-days\">{}</label><input id=\"rot-days\" name=\"RotationDays\" type=\"number\" min=\"7\" max=\"730\" value=\"{days}\">\
             <button type=\"submit\" id=\"rot-save\">{}</button><p class=\"form-error\" role=\"alert\" hidden></p></form></section>",
            tr("rotation_policy"),
            if key.automatic_rotation { " checked" } else { "" },
            tr("rotation_enable"),
            tr("rotation_interval"),
            tr("save"),
        ));
    }

    // deletion protection
    m.push_str(&format!(
        "<section aria-labelledby=\"h-dp\"><h2 id=\"h-dp\">{}</h2>\
         <form class=\"act inline\" data-action=\"SetDeletionProtection\" id=\"protection-form\">\
         <input type=\"hidden\" name=\"ProtectedResourceArn\" value=\"{}\">\
         <label><input type=\"checkbox\" name=\"EnableDeletionProtection\" value=\"true\" data-unchecked=\"false\" id=\"dp-enable\"{}> {}</label>\
         <label for=\"dp-description\">{}</label><input id=\"dp-description\" name=\"DeletionProtectionDescription\" value=\"{}\">\
         <button type=\"submit\" id=\"dp-save\">{}</button><p class=\"form-error\" role=\"alert\" hidden></p></form></section>",
        tr("deletion_protection"),
        esc(&md.arn),
        if key.deletion_protection { " checked" } else { "" },
        tr("deletion_protection_on"),
        tr("description"),
        esc(&key.deletion_protection_description),
        tr("save"),
    ));

    // versions
    m.push_str(&format!(
        "<section aria-labelledby=\"h-ver\"><h2 id=\"h-ver\">{}</h2><div class=\"table-wrap\"><table id=\"versions\"><thead><tr><th>{}</th><th>{}</th></tr></thead><tbody>",
        tr("versions"),
        tr("version_id"),
        tr("created")
    ));
    for v in &versions {
        m.push_str(&format!(
            "<tr><td><code>{}</code>{}</td><td>{}</td></tr>",
            esc(&v.version_id),
            if v.version_id == key.primary_version {
                format!(" <span class=\"badge ok\">{}</span>", tr("primary"))
            } else {
                String::new()
            },
            esc(&format_unix(v.creation_date))
        ));
    }
    m.push_str("</tbody></table></div></section>");

    // aliases
    m.push_str(&format!(
        "<section aria-labelledby=\"h-al\"><h2 id=\"h-al\">{}</h2><ul class=\"list\" id=\"aliases\">",
        tr("aliases")
    ));
    if aliases.is_empty() {
        m.push_str(&format!("<li>{}</li>", tr("none")));
    }
    for a in &aliases {
        m.push_str(&format!(
            "<li><code>{0}</code><form class=\"act\" data-action=\"DeleteAlias\" data-confirm=\"{1}\"><input type=\"hidden\" name=\"AliasName\" value=\"{0}\"><button type=\"submit\" aria-label=\"{2} {0}\">{2}</button></form></li>",
            esc(&a.alias_name),
            tr("confirm_remove_alias"),
            tr("remove")
        ));
    }
    m.push_str(&format!(
        "</ul><form class=\"act inline\" data-action=\"CreateAlias\" id=\"alias-form\">{hidden_key}<label for=\"new-alias\">{}</label>\
         <input id=\"new-alias\" name=\"AliasName\" required placeholder=\"alias/…\"><button type=\"submit\" id=\"alias-add\">{}</button><p class=\"form-error\" role=\"alert\" hidden></p></form></section>",
        tr("alias_name"),
        tr("add_alias")
    ));

    // tags
    m.push_str(&format!(
        "<section aria-labelledby=\"h-tags\"><h2 id=\"h-tags\">{}</h2><ul class=\"list\" id=\"tags\">",
        tr("tags")
    ));
    if tags.is_empty() {
        m.push_str(&format!("<li>{}</li>", tr("none")));
    }
    for tg in &tags {
        m.push_str(&format!(
            "<li><code>{0}</code> = <code>{1}</code><form class=\"act\" data-action=\"UntagResource\" data-confirm=\"{2}\">{hidden_key}<input type=\"hidden\" name=\"TagKey\" value=\"{0}\"><button type=\"submit\" aria-label=\"{3} {0}\">{3}</button></form></li>",
            esc(&tg.key),
            esc(&tg.value),
            tr("confirm_remove_tag"),
            tr("remove")
        ));
    }
    m.push_str(&format!(
        "</ul><form class=\"act inline\" data-action=\"TagResource\" id=\"tag-form\">{hidden_key}<label for=\"tag-key\">{}</label><input id=\"tag-key\" name=\"TagKey\" required>\
         <label for=\"tag-value\">{}</label><input id=\"tag-value\" name=\"TagValue\"><button type=\"submit\" id=\"tag-add\">{}</button><p class=\"form-error\" role=\"alert\" hidden></p></form></section>",
        tr("tag_key"),
        tr("tag_value"),
        tr("add_tag")
    ));
    html(StatusCode::OK, f.render(&title, &m))
}

fn material_dialogs(lang: Lang, key_id: &str) -> String {
    let tr = |k| esc(t(lang, k));
    let id = esc(key_id);
    format!(
        "<dialog id=\"dlg-params\" aria-labelledby=\"dlg-params-title\"><form class=\"act\" data-action=\"GetParametersForImport\" data-result=\"params-result\" id=\"params-form\">\
         <h2 id=\"dlg-params-title\">{gp}</h2><input type=\"hidden\" name=\"KeyId\" value=\"{id}\">\
         <label for=\"wrap-alg\">{alg}</label><select id=\"wrap-alg\" name=\"WrappingAlgorithm\">\
           <option value=\"RSAES_PKCS1_V1_5\" selected>RSAES_PKCS1_V1_5</option><option value=\"RSAES_OAEP_SHA_1\">RSAES_OAEP_SHA_1</option><option value=\"RSAES_OAEP_SHA_256\">RSAES_OAEP_SHA_256</option></select>\
         <label for=\"wrap-spec\">{spec}</label><select id=\"wrap-spec\" name=\"WrappingKeySpec\"><option value=\"RSA_2048\">RSA_2048</option></select>\
         <p class=\"form-error\" role=\"alert\" hidden></p>\
         <div class=\"buttons\"><button type=\"button\" data-close>{close}</button><button type=\"submit\" id=\"params-next\">{next}</button></div>\
         <div id=\"params-result\" class=\"result\" hidden>\
           <p><a id=\"dl-public-key\" download=\"PublicKey_base64.txt\" href=\"#\">{dlp}</a></p>\
           <p><a id=\"dl-token\" download=\"ImportToken.txt\" href=\"#\">{dlt}</a></p>\
           <p>{exp}: <strong id=\"token-expire\"></strong></p></div>\
         </form></dialog>\
         <dialog id=\"dlg-import\" aria-labelledby=\"dlg-import-title\"><form class=\"act\" data-action=\"ImportKeyMaterial\" id=\"import-form\">\
         <h2 id=\"dlg-import-title\">{im}</h2><input type=\"hidden\" name=\"KeyId\" value=\"{id}\">\
         <label for=\"im-material\">{mf}</label><input id=\"im-material\" type=\"file\" data-file-param=\"EncryptedKeyMaterial\" required>\
         <label for=\"im-token\">{tf}</label><input id=\"im-token\" type=\"file\" data-file-param=\"ImportToken\" required>\
         <fieldset><legend>{me}</legend>\
           <label><input type=\"radio\" name=\"_expire\" value=\"never\" id=\"im-never\" checked> {never}</label>\
           <label><input type=\"radio\" name=\"_expire\" value=\"at\" id=\"im-at\"> {at}</label>\
           <input type=\"datetime-local\" id=\"im-expire\" name=\"_expire_at\" aria-label=\"{at}\"></fieldset>\
         <p class=\"form-error\" role=\"alert\" hidden></p>\
         <div class=\"buttons\"><button type=\"button\" data-close>{cancel}</button><button type=\"submit\" id=\"im-confirm\">{confirm}</button></div>\
         </form></dialog>",
        gp = tr("get_params"),
        alg = tr("wrapping_alg"),
        spec = tr("wrapping_spec"),
        close = tr("close"),
        next = tr("next_step"),
        dlp = tr("download_pub"),
        dlt = tr("download_token"),
        exp = tr("token_expires"),
        im = tr("import_material"),
        mf = tr("encrypted_material_file"),
        tf = tr("token_file"),
        me = tr("material_expiry"),
        never = tr("expire_never"),
        at = tr("expire_at"),
        cancel = tr("cancel"),
        confirm = tr("confirm"),
    )
}

// ------------------------------------------------------------------------------ actions

fn json(status: u16, body: serde_json::Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn json_error(status: u16, code: &str, message: &str, request_id: &str) -> Response {
    json(
        status,
        serde_json::json!({"Code": code, "Message": message, "RequestId": request_id}),
    )
}

/// `POST /console/api/<Action>`: a form-encoded action for the signed-in account, with the
/// session's CSRF token in `X-CSRF-Token` (or a `csrf` field). Answers the API's JSON body,
/// or `{Code, Message, RequestId}` with the API's status.
async fn api(
    State(st): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = new_request_id();
    let s = match st.session(&headers).await {
        Ok(s) => s,
        Err(NoSession::Failed(e)) => return internal(&e),
        Err(_) => {
            return json_error(
                401,
                "Console.SessionExpired",
                "Sign in to the console again.",
                &request_id,
            )
        }
    };
    let region = region_of(st.kms(), &headers);
    let caller = s.caller(region.clone());
    let action_name: String = action.chars().take(64).collect();
    let mut audit = Audit {
        peer,
        request_id: &request_id,
        account: &caller.account_id,
        principal: &caller.access_key_id,
        action: &action_name,
        key_id: "",
        result: "OK",
        status: 200,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let params = match Params::from_request("", content_type, &body) {
        Ok(p) => p,
        Err(e) => {
            audit.result = e.code();
            audit.status = e.status();
            st.audit(audit).await;
            return json_error(e.status(), e.code(), &e.message(), &request_id);
        }
    };
    let sent = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| params.get("csrf"))
        .unwrap_or_default();
    if !session::tokens_equal(&s.csrf(), sent) {
        audit.result = "Console.InvalidCsrfToken";
        audit.status = 403;
        st.audit(audit).await;
        return json_error(
            403,
            "Console.InvalidCsrfToken",
            "The request has no valid CSRF token.",
            &request_id,
        );
    }
    let key_hint: String = params
        .opt("KeyId")
        .unwrap_or_default()
        .chars()
        .take(256)
        .collect();
    audit.key_id = &key_hint;
    let spec = match spec::find(&action_name).filter(|a| ACTIONS.contains(&a.name)) {
        Some(s) => s,
        None => {
            let e = KmsError::InvalidApi(action_name.clone());
            audit.result = e.code();
            audit.status = e.status();
            st.audit(audit).await;
            return json_error(e.status(), e.code(), &e.message(), &request_id);
        }
    };
    // The region is the one chosen in the console; the CSRF field is not an API parameter.
    let mut clean = Params {
        body: params
            .body
            .into_iter()
            .filter(|(k, _)| k != "csrf" && k != "RegionId" && k != "Action")
            .collect(),
        ..Params::default()
    };
    clean.body.push(("RegionId".into(), region));
    match st.protocol.dispatch_as(&caller, spec, &clean).await {
        Ok(mut value) => {
            let key_id = value
                .get("KeyId")
                .or_else(|| value.get("KeyMetadata").and_then(|m| m.get("KeyId")))
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| key_hint.clone());
            audit.key_id = &key_id;
            st.audit(audit).await;
            if let serde_json::Value::Object(m) = &mut value {
                m.insert("RequestId".into(), request_id.clone().into());
            }
            json(200, value)
        }
        Err(e) => {
            if let KmsError::Internal(d) = &e {
                tracing::error!(request_id = %request_id, detail = %d, "console: internal failure");
            }
            audit.result = e.code();
            audit.status = e.status();
            st.audit(audit).await;
            json_error(e.status(), e.code(), &e.message(), &request_id)
        }
    }
}
