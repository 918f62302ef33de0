//! Sign-in and sign-out (`signin.html`).
//!
//! The sign-in form carries a token from the console-sessions service
//! ([`crate::service::console::ConsoleSessions::signin_token`]: an HMAC under a root-derived
//! key over an expiry ten minutes ahead, a nonce and the browser's address), checked without
//! any cookie, so a cookie set by another service on the same host cannot stand in for it. A
//! form posted from another site or another origin of the same site (`Sec-Fetch-Site`
//! `cross-site` or `same-site`) is refused too.
//!
//! Brute force ([`super::guard`]): the attempt is counted before the credentials are checked,
//! so a principal or address with too many attempts is refused without a check however many
//! arrive at once, and password checks run in a few slots, an attempt finding them all busy
//! being refused at once. A successful sign-in starts a new session (the browser's previous
//! one ends) through the console-sessions service, bound to the credential it used.

use std::net::{IpAddr, SocketAddr};

use askama::Template;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::audit::AuditEvent;
use super::extract::{clear_session_cookie, Cookies, Signed};
use super::guard::Refusal;
use super::i18n::{Lang, Text as T};
use super::session;
use super::view::CsrfRefused;
use super::{html, internal, redirect, set_session_cookie, ConsoleState};
use crate::error::KmsError;
use crate::service::console::{ConsolePrincipal, SigninTokenCheck};

const SIGNIN: &str = "ConsoleSignIn";
const SIGNOUT: &str = "ConsoleSignOut";
/// Largest sign-in or sign-out form body read.
const MAX_FORM: usize = 64 * 1024;
const INVALID_CSRF: &str = "Console.InvalidCsrfToken";

/// A line above the sign-in form.
struct Message {
    text: &'static str,
    is_error: bool,
}

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SigninPage {
    lang: Lang,
    title: &'static str,
    csrf: String,
    message: Option<Message>,
    /// A second line under the message (a hint), if any.
    hint: Option<&'static str>,
    form: Shown,
}

/// What the form shows: the kind of credential chosen, and (after a failed attempt) what
/// was tried, never the secret or password.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    /// `"ak"` or `"user"`.
    kind: &'static str,
    /// The server chose the kind from a failed attempt: the page keeps it (the browser's
    /// remembered kind does not override it).
    kept: bool,
    user_name: String,
    access_key_id: String,
}

impl Shown {
    /// A fresh form: a console user first if any exists, else an access key (the only
    /// credential a new data dir has).
    fn fresh(has_users: bool) -> Self {
        Shown {
            kind: if has_users { "user" } else { "ak" },
            kept: false,
            user_name: String::new(),
            access_key_id: String::new(),
        }
    }

    /// The form again after a failed attempt: the same kind and name or id.
    fn again(form: &SigninForm) -> Self {
        let ak = form.is_access_key();
        Shown {
            kind: if ak { "ak" } else { "user" },
            kept: true,
            user_name: if ak {
                String::new()
            } else {
                form.user_name.chars().take(64).collect()
            },
            access_key_id: if ak {
                form.access_key_id.chars().take(128).collect()
            } else {
                String::new()
            },
        }
    }
}

#[derive(Deserialize)]
pub struct SigninQuery {
    expired: Option<String>,
    out: Option<String>,
    dup: Option<String>,
}

pub async fn signin_get(
    State(st): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    lang: Lang,
    Query(q): Query<SigninQuery>,
) -> Response {
    let message = if q.dup.is_some() {
        Some(error(lang, T::DuplicateSessionCookie))
    } else if q.expired.is_some() {
        Some(error(lang, T::SessionExpired))
    } else if q.out.is_some() {
        Some(Message {
            text: lang.t(T::SignedOut),
            is_error: false,
        })
    } else {
        None
    };
    // A store error only loses the default: show the console-user form as before.
    let has_users = st.sessions().has_users().await.unwrap_or(true);
    let form = Shown::fresh(has_users);
    signin_form(&st, lang, peer.ip(), message, form, StatusCode::OK)
}

fn error(lang: Lang, text: T) -> Message {
    Message {
        text: lang.t(text),
        is_error: true,
    }
}

/// The sign-in page with a fresh sign-in token for `client` in the form.
fn signin_form(
    st: &ConsoleState,
    lang: Lang,
    client: IpAddr,
    message: Option<Message>,
    form: Shown,
    status: StatusCode,
) -> Response {
    let csrf = match st.sessions().signin_token(client) {
        Ok(c) => c,
        Err(e) => return internal(&e),
    };
    // An AccessKey ID typed as a user name: say so (a fact about the text typed, not
    // about any account).
    let hint =
        (form.kind == "user" && form.user_name.starts_with("LTAI")).then(|| lang.t(T::LooksLikeAk));
    let page = SigninPage {
        lang,
        title: lang.t(T::Signin),
        csrf,
        message,
        hint,
        form,
    };
    html(status, &page)
}

fn csrf_refused(lang: Lang) -> Response {
    html(StatusCode::FORBIDDEN, &CsrfRefused { lang })
}

/// Whether the browser says the form was posted from another site, or from another origin
/// of this site (another port of the same host). Browsers that send no `Sec-Fetch-Site`
/// (and non-browser clients) rely on the token alone.
fn posted_from_elsewhere(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| !matches!(v.as_bytes(), b"same-origin" | b"none"))
}

/// The credentials of a sign-in form.
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
        if body.len() > MAX_FORM {
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

    fn is_access_key(&self) -> bool {
        self.kind == "ak"
    }

    /// Who the form claims to be (bounded), for the guard and the audit trail.
    fn claimed(&self) -> ConsolePrincipal {
        if self.is_access_key() {
            ConsolePrincipal::AccessKey(self.access_key_id.chars().take(128).collect())
        } else {
            // Both forms of a RAM user's principal name count as one principal.
            let name = match ram_principal_name(&self.user_name) {
                Some((user, account)) => format!("{user}@{account}"),
                None => self.user_name.clone(),
            };
            ConsolePrincipal::User(name.chars().take(64).collect())
        }
    }
}

/// A principal whose credentials were right.
struct Verified {
    account: String,
    principal: ConsolePrincipal,
    /// The credential tag of the credential checked (see `service::console`).
    credential_tag: String,
}

pub async fn signin_post(
    State(st): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    lang: Lang,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = peer.ip();
    let Some(form) = SigninForm::parse(&body) else {
        return signin_form(
            &st,
            lang,
            client,
            None,
            Shown::fresh(true),
            StatusCode::BAD_REQUEST,
        );
    };
    let cookies = Cookies::from_headers(&headers);
    let mut event = AuditEvent::new(peer, SIGNIN);
    if posted_from_elsewhere(&headers) {
        st.audit(&event, INVALID_CSRF, 403).await;
        return csrf_refused(lang);
    }
    match st.sessions().check_signin_token(&form.csrf, client) {
        SigninTokenCheck::Valid => {}
        SigninTokenCheck::Expired => {
            st.audit(&event, INVALID_CSRF, 403).await;
            let message = Some(error(lang, T::SigninFormExpired));
            let shown = Shown::again(&form);
            return signin_form(&st, lang, client, message, shown, StatusCode::FORBIDDEN);
        }
        SigninTokenCheck::Invalid => {
            st.audit(&event, INVALID_CSRF, 403).await;
            return csrf_refused(lang);
        }
    }
    let claimed = form.claimed().to_string();
    event.principal.clone_from(&claimed);
    let now = st.kms().now();
    let source = client.to_string();
    // Counted now, before any check: racing attempts cannot pass the limit together.
    let attempt = match st.guard.reserve(&claimed, &source, now) {
        Ok(a) => a,
        Err(_) => {
            st.audit(&event, "Console.TooManyAttempts", 429).await;
            let message = Some(error(lang, T::TooManyAttempts));
            let shown = Shown::again(&form);
            return signin_form(
                &st,
                lang,
                client,
                message,
                shown,
                StatusCode::TOO_MANY_REQUESTS,
            );
        }
    };
    let verified = if form.is_access_key() {
        verify_access_key(&st, &form.access_key_id, &form.access_key_secret).await
    } else {
        match st.guard.check_permit() {
            Ok(permit) => verify_user(&st, &form.user_name, &form.password, permit).await,
            Err(Refusal::Busy | Refusal::TooManyAttempts) => {
                attempt.not_checked();
                st.audit_error(&event, &KmsError::Throttling).await;
                return busy(&st, lang, client, Shown::again(&form));
            }
        }
    };
    let verified = match verified {
        Ok(Some(v)) => v,
        Ok(None) => {
            // the attempt stays counted
            st.audit(&event, "Console.InvalidCredentials", 401).await;
            let message = Some(error(lang, T::BadCredentials));
            let shown = Shown::again(&form);
            return signin_form(&st, lang, client, message, shown, StatusCode::UNAUTHORIZED);
        }
        Err(e) => return internal(&e),
    };
    attempt.succeeded();
    let event = event.by(&verified.account, &verified.principal.to_string());
    start_session(&st, &cookies, &event, &verified).await
}

/// Every password-check slot is in use: 429 at once, with the form to try again.
fn busy(st: &ConsoleState, lang: Lang, client: IpAddr, form: Shown) -> Response {
    let message = Some(error(lang, T::SigninBusy));
    let mut r = signin_form(
        st,
        lang,
        client,
        message,
        form,
        StatusCode::TOO_MANY_REQUESTS,
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// Starts the session of a verified principal and sends the browser to the key list.
async fn start_session(
    st: &ConsoleState,
    cookies: &Cookies,
    event: &AuditEvent,
    verified: &Verified,
) -> Response {
    let (token, id) = match session::new_session_token(&verified.credential_tag) {
        Ok(v) => v,
        Err(e) => return internal(&KmsError::internal(e)),
    };
    // With duplicate session cookies there is no one previous session to end.
    let replaces = cookies
        .session_token(st.secure)
        .ok()
        .flatten()
        .map(session::id_hash);
    let started = st
        .sessions()
        .start(
            id,
            &verified.account,
            &verified.principal,
            replaces.as_deref(),
        )
        .await;
    if let Err(e) = started {
        return internal(&e);
    }
    st.audit_ok(event).await;
    let mut r = redirect("/console/keys");
    set_session_cookie(&mut r, &token, st.secure, None);
    r
}

/// A console user's name and password (checked while holding `permit`, one of the guard's
/// password-check slots): the verified principal if right.
async fn verify_user(
    st: &ConsoleState,
    name: &str,
    password: &str,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<Option<Verified>, KmsError> {
    let user = if session::validate_user_name(name).is_ok() {
        st.sessions().user(name).await?
    } else {
        None
    };
    // No console user by that name: a RAM user's principal name (`<user>@<account>`, or
    // `<user>@<account>.onaliyun.com`) with its login profile (issue 16).
    let ram = match (&user, ram_principal_name(name)) {
        (None, Some((user_name, account))) => st
            .sessions()
            .ram_user_hash(account, user_name)
            .await?
            .map(|(_, hash)| (user_name.to_string(), account.to_string(), hash)),
        _ => None,
    };
    let stored = match (&user, &ram) {
        (Some(u), _) => Some(u.password_hash.clone()),
        (None, Some((_, _, hash))) => Some(hash.clone()),
        (None, None) => None,
    };
    let password = Zeroizing::new(password.to_string());
    // PBKDF2 (600,000 iterations) off the async workers; an unknown name costs the same. The
    // permit moves into the task, so the slot is busy until the check ends even if this
    // request is dropped meanwhile.
    let ok = tokio::task::spawn_blocking(move || {
        let ok = session::verify_password(stored.as_deref(), &password);
        drop(permit);
        ok
    })
    .await
    .map_err(KmsError::internal)?;
    if let (true, None, Some((user_name, account, hash))) = (ok, &user, ram) {
        let principal = ConsolePrincipal::RamUser(user_name);
        let credential_tag = st.sessions().credential_tag(&principal, hash.as_bytes());
        return Ok(Some(Verified {
            account,
            principal,
            credential_tag,
        }));
    }
    Ok(match (ok, user) {
        (true, Some(u)) => {
            let principal = ConsolePrincipal::User(u.user_name);
            let credential_tag = st
                .sessions()
                .credential_tag(&principal, u.password_hash.as_bytes());
            Some(Verified {
                account: u.account_id,
                principal,
                credential_tag,
            })
        }
        _ => None,
    })
}

/// A RAM user's principal name as typed at sign-in: `<user>@<account>` or
/// `<user>@<account>.onaliyun.com` → (user name, account id).
fn ram_principal_name(name: &str) -> Option<(&str, &str)> {
    let (user, account) = name.split_once('@')?;
    let account = account.strip_suffix(".onaliyun.com").unwrap_or(account);
    (!user.is_empty() && !account.is_empty() && !account.contains('@')).then_some((user, account))
}

/// An access key id and secret: the verified principal if right and enabled.
async fn verify_access_key(
    st: &ConsoleState,
    id: &str,
    secret: &str,
) -> Result<Option<Verified>, KmsError> {
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
            Ok(ok.then(|| {
                let principal = ConsolePrincipal::AccessKey(id.to_string());
                let credential_tag = st.sessions().credential_tag(&principal, &stored);
                Verified {
                    account,
                    principal,
                    credential_tag,
                }
            }))
        }
        Err(KmsError::AccessKeyNotFound) | Err(KmsError::AccessKeyInactive) => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn signout(State(st): State<ConsoleState>, s: Signed, body: Bytes) -> Response {
    let event = s.event(SIGNOUT);
    let sent = if body.len() > MAX_FORM {
        None
    } else {
        form_urlencoded::parse(&body).find_map(|(k, v)| (k == "csrf").then(|| v.into_owned()))
    };
    if !session::tokens_equal(&s.csrf(), sent.as_deref().unwrap_or_default()) {
        st.audit(&event, "Console.InvalidCsrfToken", 403).await;
        return csrf_refused(s.lang);
    }
    if let Err(e) = st.sessions().end(&s.record.id_hash).await {
        return internal(&e);
    }
    st.audit_ok(&event).await;
    let mut r = redirect("/console/signin?out=1");
    clear_session_cookie(&mut r, st.secure);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_principal_names() {
        assert_eq!(ram_principal_name("alice@1234"), Some(("alice", "1234")));
        assert_eq!(
            ram_principal_name("alice@1234.onaliyun.com"),
            Some(("alice", "1234"))
        );
        assert_eq!(ram_principal_name("alice"), None);
        assert_eq!(ram_principal_name("@1234"), None);
        assert_eq!(ram_principal_name("alice@"), None);
        assert_eq!(ram_principal_name("a@b@c"), None);
    }

    #[test]
    fn the_sign_in_page_escapes_and_carries_the_token() {
        let page = SigninPage {
            lang: Lang::En,
            title: "Sign in",
            csrf: "tok\"en".into(),
            message: Some(error(Lang::En, T::BadCredentials)),
            hint: None,
            form: Shown::fresh(true),
        };
        let html = page.render().unwrap();
        assert!(
            html.contains("name=\"csrf\" value=\"tok&#34;en\""),
            "{html}"
        );
        assert!(html.contains(
            "<p class=\"error\" role=\"alert\" id=\"signin-message\">The sign-in details are not correct.</p>"
        ));
    }

    #[test]
    fn the_form_defaults_to_access_key_without_users_and_keeps_a_failed_attempt() {
        let render = |form: Shown| {
            SigninPage {
                lang: Lang::En,
                title: "Sign in",
                csrf: "t".into(),
                message: None,
                hint: None,
                form,
            }
            .render()
            .unwrap()
        };
        let html = render(Shown::fresh(false));
        assert!(
            html.contains("value=\"ak\" id=\"kind-ak\" checked"),
            "{html}"
        );
        assert!(!html.contains("id=\"kind-user\" checked"), "{html}");
        assert!(!html.contains("data-kept"), "{html}");
        let html = render(Shown::fresh(true));
        assert!(
            html.contains("value=\"user\" id=\"kind-user\" checked"),
            "{html}"
        );
        // A failed access-key attempt: same kind, same id (escaped), never the secret.
        let f = SigninForm::parse(b"kind=ak&access_key_id=LTAI%3Cb%3E&access_key_secret=s3cret")
            .unwrap();
        let html = render(Shown::again(&f));
        assert!(html.contains("id=\"kind-ak\" checked"), "{html}");
        assert!(html.contains("data-kept"), "{html}");
        assert!(
            html.contains("id=\"access_key_id\" name=\"access_key_id\" value=\"LTAI&#60;b&#62;\""),
            "{html}"
        );
        assert!(!html.contains("s3cret"));
        let f = SigninForm::parse(b"kind=user&user_name=alice&password=pw").unwrap();
        let html = render(Shown::again(&f));
        assert!(html.contains("id=\"kind-user\" checked"), "{html}");
        assert!(html.contains("value=\"alice\""), "{html}");
        assert!(!html.contains("value=\"pw\""));
    }

    #[test]
    fn claimed_principal_is_bounded() {
        let f = SigninForm::parse(format!("kind=ak&access_key_id={}", "A".repeat(300)).as_bytes())
            .unwrap();
        assert_eq!(f.claimed().to_string().len(), "console:".len() + 128);
        let f = SigninForm::parse(b"user_name=alice&password=x").unwrap();
        assert_eq!(f.claimed(), ConsolePrincipal::User("alice".into()));
        assert!(SigninForm::parse(&vec![b'a'; MAX_FORM + 1]).is_none());
    }
}
