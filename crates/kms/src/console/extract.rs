//! The session extractor: what every signed-in handler starts from.
//!
//! [`Signed`] (pages) and [`ApiSigned`] (the JSON API) read the session cookie, ask the
//! console-sessions service whether it is live (which resets its idle timer), and carry the
//! session with the browser's language, region and address. Without a live session a page
//! request is sent to the sign-in page (`?expired=1`, clearing the cookie, when it timed
//! out) and an API request gets 401 `Console.SessionExpired`.
//!
//! A request with more than one session cookie (another service on the same host name can
//! set cookies for it, whatever its port) is refused whichever of them is valid: a page is
//! sent to the sign-in page (`?dup=1`, which says what to do), an API request gets 401
//! `Console.DuplicateSessionCookie`, and the refusal is audited (`ConsoleSession`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use zeroize::Zeroizing;

use super::audit::AuditEvent;
use super::i18n::{Lang, LANG_COOKIE};
use super::session;
use super::view::Frame;
use super::{internal, redirect, set_session_cookie, ConsoleState};
use crate::action::ApiAction;
use crate::error::KmsError;
use crate::protocol::new_request_id;
use crate::protocol::params::Params;
use crate::service::console::{ConsolePrincipal, SessionLookup};
use crate::service::ram::Principal;
use crate::service::{Caller, Kms};
use crate::store::ConsoleSessionRecord;

const REGION_COOKIE: &str = "kms_region";
/// The audit action of a request refused for its session cookies.
const SESSION: &str = "ConsoleSession";
/// The result of a request with more than one session cookie.
pub const DUPLICATE_SESSION_COOKIE: &str = "Console.DuplicateSessionCookie";

/// The browser sent the session cookie more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuplicateSessionCookie;

/// The request's cookies (all `Cookie` headers).
pub struct Cookies(String);

impl Cookies {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Cookies(
            headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        session::cookie_value(&self.0, name)
    }

    /// The session token (`__Host-kms_session` over HTTPS, else `kms_session`), if it looks
    /// like one; an error if the cookie was sent more than once.
    pub fn session_token(&self, secure: bool) -> Result<Option<&str>, DuplicateSessionCookie> {
        let mut values = session::cookie_values(&self.0, session::session_cookie_name(secure));
        let first = values.next();
        if values.next().is_some() {
            return Err(DuplicateSessionCookie);
        }
        Ok(first.filter(|t| !t.is_empty() && t.len() <= 128))
    }
}

/// The region chosen in the selector (cookie), if this server serves it; else the first.
fn region_of(kms: &Kms, cookies: &Cookies) -> String {
    let wanted = cookies.get(REGION_COOKIE);
    kms.regions()
        .iter()
        .find(|r| Some(r.as_str()) == wanted)
        .or_else(|| kms.regions().first())
        .cloned()
        .unwrap_or_default()
}

/// A request from a browser with a live session.
pub struct Signed {
    pub record: ConsoleSessionRecord,
    token: Zeroizing<String>,
    pub lang: Lang,
    pub region: String,
    pub peer: SocketAddr,
}

impl Signed {
    /// The session's CSRF token.
    pub fn csrf(&self) -> String {
        session::csrf_token(&self.token)
    }

    /// The signed-in account, in the chosen region.
    pub fn caller(&self) -> Caller {
        Caller {
            account_id: self.record.account_id.clone(),
            region: self.region.clone(),
            access_key_id: self.record.principal.clone(),
        }
    }

    /// The principal the console acts as: a RAM user signed in with its login profile is
    /// authorised by its policies; console users and access keys act as the account's root.
    /// A RAM user that is gone yields `None` (its session ends at its next request anyway).
    pub async fn principal(&self, st: &ConsoleState) -> Result<Option<Principal>, KmsError> {
        match ConsolePrincipal::parse(&self.record.principal) {
            Some(ConsolePrincipal::RamUser(name)) => Ok(st
                .sessions()
                .ram_user_hash(&self.record.account_id, &name)
                .await?
                .map(|(user_id, _)| Principal::User {
                    user_id,
                    user_name: name,
                })),
            _ => Ok(Some(Principal::Root)),
        }
    }

    /// [`Signed::may`] for a page: on refusal the event is audited as failed and the answer
    /// is the refusal page (or the internal-error page), ready to return.
    pub async fn may_or_refuse(
        &self,
        st: &ConsoleState,
        event: &AuditEvent,
        action: ApiAction,
        params: &[(&str, &str)],
    ) -> Result<(), Response> {
        let Err(e) = self.may(st, action, params).await else {
            return Ok(());
        };
        st.audit_error(event, &e).await;
        if let KmsError::Internal(_) = e {
            return Err(internal(&e));
        }
        Err(super::view::Forbidden::response(self.frame(st), &e))
    }

    /// Whether the session's principal may run `action` with `params` (always, for the
    /// account's root): a page that reads without dispatching checks this first, so what a
    /// RAM user sees follows its policies as its changes do.
    pub async fn may(
        &self,
        st: &ConsoleState,
        action: ApiAction,
        params: &[(&str, &str)],
    ) -> Result<(), KmsError> {
        let Some(principal) = self.principal(st).await? else {
            return Err(KmsError::Forbidden);
        };
        if principal.is_root() {
            return Ok(());
        }
        let params = Params {
            body: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Params::default()
        };
        let transport = crate::api::authz::Transport {
            source_ip: Some(self.peer.ip()),
            secure: st.secure,
        };
        let ctx = crate::api::authz::context(st.kms(), transport);
        crate::api::authz::authorize(st.kms(), &self.caller(), &principal, action, &params, &ctx)
            .await
            .map(|_| ())
    }

    /// An audit event of this session (with a new request id).
    pub fn event(&self, action: &str) -> AuditEvent {
        AuditEvent::new(self.peer, action).by(&self.record.account_id, &self.record.principal)
    }

    /// What the page frame shows.
    pub fn frame(&self, st: &ConsoleState) -> Frame {
        Frame {
            lang: self.lang,
            csrf: self.csrf(),
            regions: st.kms().regions().to_vec(),
            region: self.region.clone(),
            principal: self.record.principal.clone(),
            account: self.record.account_id.clone(),
        }
    }
}

/// Why a request has no session.
enum NoSession {
    Missing,
    Expired,
    Duplicate,
    Failed(KmsError),
}

async fn signed(parts: &mut Parts, st: &ConsoleState) -> Result<Signed, NoSession> {
    let peer = ConnectInfo::<SocketAddr>::from_request_parts(parts, st)
        .await
        .map_err(|e| NoSession::Failed(KmsError::internal(e)))?
        .0;
    let cookies = Cookies::from_headers(&parts.headers);
    let token = match cookies.session_token(st.secure) {
        Ok(t) => t.ok_or(NoSession::Missing)?,
        Err(DuplicateSessionCookie) => {
            let event = AuditEvent::new(peer, SESSION);
            st.audit(&event, DUPLICATE_SESSION_COOKIE, 401).await;
            return Err(NoSession::Duplicate);
        }
    };
    let id = session::id_hash(token);
    let tag = session::credential_tag_of(token);
    let record = match st.sessions().check(&id, tag).await {
        Ok(SessionLookup::Live(r)) => r,
        Ok(SessionLookup::Expired) => return Err(NoSession::Expired),
        Ok(SessionLookup::Unknown) => return Err(NoSession::Missing),
        Err(e) => return Err(NoSession::Failed(e)),
    };
    Ok(Signed {
        record,
        token: Zeroizing::new(token.to_string()),
        lang: Lang::from_cookie(cookies.get(LANG_COOKIE)),
        region: region_of(st.kms(), &cookies),
        peer,
    })
}

impl FromRequestParts<ConsoleState> for Signed {
    /// The sign-in page (or an error page).
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &ConsoleState) -> Result<Self, Response> {
        signed(parts, st).await.map_err(|why| match why {
            NoSession::Missing => redirect("/console/signin"),
            // Nothing is cleared: deleting our cookie would leave the other one alone.
            NoSession::Duplicate => redirect("/console/signin?dup=1"),
            NoSession::Expired => {
                let mut r = redirect("/console/signin?expired=1");
                clear_session_cookie(&mut r, st.secure);
                r
            }
            NoSession::Failed(e) => internal(&e),
        })
    }
}

/// [`Signed`] for the JSON API: without a session, 401 `Console.SessionExpired`.
pub struct ApiSigned(pub Signed);

impl FromRequestParts<ConsoleState> for ApiSigned {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &ConsoleState) -> Result<Self, Response> {
        match signed(parts, st).await {
            Ok(s) => Ok(ApiSigned(s)),
            Err(NoSession::Failed(e)) => Err(internal(&e)),
            Err(NoSession::Duplicate) => Err(super::api::json_error(
                401,
                DUPLICATE_SESSION_COOKIE,
                "The browser sent more than one session cookie. Delete this site's cookies and sign in again.",
                &new_request_id(),
            )
            .into_response()),
            Err(NoSession::Missing | NoSession::Expired) => Err(super::api::json_error(
                401,
                "Console.SessionExpired",
                "Sign in to the console again.",
                &new_request_id(),
            )
            .into_response()),
        }
    }
}

pub fn clear_session_cookie(r: &mut Response, secure: bool) {
    set_session_cookie(r, "", secure, Some(0));
}
