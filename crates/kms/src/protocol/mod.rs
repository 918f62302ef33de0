//! The wire protocol: from an HTTP request to a rendered response, one way through.
//!
//! parameters ([`params`]) → format → action and version (an [`ApiAction`]: unknown ones are
//! refused here) → signature, timestamp and nonce ([`signature`]) → region → throttling and
//! required parameters (facts of the action, [`crate::action`]) → [`crate::api::dispatch`] →
//! [`render`].

pub mod nonce_journal;
pub mod nonce_set;
pub mod params;
pub mod render;
pub mod signature;
pub mod throttle;

use std::sync::Arc;

use uuid::Uuid;

use self::params::Params;
use self::render::{Format, Rendered, Reply};
use self::signature::{NonceCache, RequestView};
use crate::action::ApiAction;
use crate::api;
use crate::clock::system_now;
use crate::error::KmsError;
use crate::service::ram::Principal;
use crate::service::{Caller, Kms};

/// What the protocol layer needs from the HTTP server.
pub struct HttpRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// (lowercase name, value) in the order received, borrowed from the request.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    /// The peer's address (`acs:SourceIp`), when known.
    pub peer: Option<std::net::IpAddr>,
}

impl HttpRequest<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }
}

/// Shared state of the protocol layer.
pub struct Protocol {
    pub kms: Arc<Kms>,
    pub nonces: NonceCache,
    pub throttle: throttle::Throttle,
    /// Closed while the audit trail cannot be written: state changes are then refused.
    pub audit_gate: crate::audit::AuditGate,
    /// Whether requests arrive over TLS (`acs:SecureTransport`).
    pub secure: bool,
    /// Closed once the database's root key is being rotated away from this node's: every
    /// request is then refused (see `crate::rotation`).
    pub root_key_gate: RootKeyGate,
}

/// Whether this node's root key is still the database's. A node whose root key was rotated
/// away (another process runs `kms admin rotate-root-key` on the database) can no longer open
/// what is sealed: it refuses every request with 503 `ServiceUnavailableTemporary` until it
/// is restarted with the new root key.
#[derive(Clone, Default)]
pub struct RootKeyGate(Arc<std::sync::atomic::AtomicBool>);

impl RootKeyGate {
    /// `Ok` unless the root key was rotated away.
    pub fn admit(&self) -> Result<(), KmsError> {
        if self.is_closed() {
            return Err(KmsError::RootKeyRotated);
        }
        Ok(())
    }
    pub fn is_closed(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
    /// Closes the gate for good (until restart); returns whether it was open.
    pub fn close(&self) -> bool {
        !self.0.swap(true, std::sync::atomic::Ordering::AcqRel)
    }
}

/// The outcome of one request, for logging and auditing.
pub struct Outcome {
    pub rendered: Rendered,
    pub request_id: String,
    /// The `Action` as received (for the audit line), if any.
    pub action: Option<String>,
    /// The action, when `Version` and `Action` named one this server implements.
    pub api_action: Option<ApiAction>,
    pub access_key_id: Option<String>,
    /// The authenticated account (None if authentication failed).
    pub account_id: Option<String>,
    /// The key concerned: the response's KeyId, else the request's KeyId parameter.
    pub key_id: Option<String>,
    pub key_version_id: Option<String>,
    pub code: Option<&'static str>,
    /// The authenticated principal's ARN (None if authentication failed).
    pub principal: Option<String>,
}

/// A random (version 4) UUID, upper case with hyphens. The random bytes come from
/// aws-lc-rs's generator in user space, 512 bytes at a time per thread: `Uuid::new_v4` asks
/// the kernel (a `getrandom` system call on every request with this glibc), and one
/// aws-lc-rs call per id costs ~2,400 instructions.
pub fn new_request_id() -> String {
    let id = match crate::random_pool::bytes::<16>() {
        Some(bytes) => uuid::Builder::from_random_bytes(bytes).into_uuid(),
        None => Uuid::new_v4(),
    };
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_upper(&mut buf).to_string()
}

/// The first `n` characters of `s` (all of it when shorter).
fn first_chars(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    match s.char_indices().nth(n) {
        Some((at, _)) => s.get(..at).unwrap_or(s),
        None => s,
    }
}

struct Ctx {
    format: Format,
    /// The region addressed, once known (errors before that name the first served one).
    region: Option<String>,
    action: Option<String>,
    api_action: Option<ApiAction>,
    access_key_id: Option<String>,
    account_id: Option<String>,
    key_hint: Option<String>,
    principal: Option<String>,
}

impl Protocol {
    pub fn new(kms: Arc<Kms>) -> Self {
        Self::with_limits(kms, throttle::Limits::UNLIMITED)
    }

    pub fn with_limits(kms: Arc<Kms>, limits: throttle::Limits) -> Self {
        Self {
            kms,
            nonces: NonceCache::new(),
            throttle: throttle::Throttle::new(limits),
            audit_gate: crate::audit::AuditGate::default(),
            secure: false,
            root_key_gate: RootKeyGate::default(),
        }
    }

    /// The same, telling policies whether requests arrive over TLS.
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The same, refusing state changes while `gate` is closed.
    pub fn with_audit_gate(mut self, gate: crate::audit::AuditGate) -> Self {
        self.audit_gate = gate;
        self
    }

    pub async fn handle(&self, req: &HttpRequest<'_>) -> Outcome {
        let request_id = new_request_id();
        let mut ctx = Ctx {
            format: Format::Json,
            region: None,
            action: None,
            api_action: None,
            access_key_id: None,
            account_id: None,
            key_hint: None,
            principal: None,
        };
        let result = self.run(req, &mut ctx).await;
        let mut key_id = ctx.key_hint.take();
        let mut key_version_id = None;
        let (rendered, code) = match result {
            Ok(body) => {
                let action = ctx.action.as_deref().unwrap_or_default();
                let (k, v) = body.key_ids();
                if k.is_some() {
                    key_id = k;
                }
                key_version_id = v;
                (
                    render::success_reply(ctx.format, action, body, &request_id),
                    None,
                )
            }
            Err(e) => {
                if let KmsError::Internal(detail) = &e {
                    tracing::error!(request_id = %request_id, detail = %detail, "internal failure");
                }
                let host_id = ctx
                    .api_action
                    .map_or(crate::action::Product::Kms, |a| a.product())
                    .host_id(
                        ctx.region
                            .as_deref()
                            .or_else(|| self.kms.regions().first().map(String::as_str))
                            .unwrap_or_default(),
                    );
                (
                    render::error(ctx.format, &e, &request_id, &host_id),
                    Some(e.code()),
                )
            }
        };
        Outcome {
            rendered,
            request_id,
            action: ctx.action,
            api_action: ctx.api_action,
            access_key_id: ctx.access_key_id,
            account_id: ctx.account_id,
            key_id,
            key_version_id,
            code,
            principal: ctx.principal,
        }
    }

    async fn run(&self, req: &HttpRequest<'_>, ctx: &mut Ctx) -> Result<Reply, KmsError> {
        let params = Params::from_request(req.query, req.header("content-type"), req.body)?;
        ctx.format = Format::parse(params.opt("Format"))?;
        if req.method != "GET" && req.method != "POST" {
            return Err(KmsError::UnsupportedHttpMethod);
        }
        // The action and version headers count only in V3, which must sign them; a v1
        // signature covers the parameters alone.
        let v3 = req
            .header("authorization")
            .is_some_and(|a| a.starts_with("ACS3-HMAC-SHA256"));
        let header = |name: &str| req.header(name).filter(|v| v3 && !v.is_empty());
        let action = params
            .opt("Action")
            .or_else(|| header("x-acs-action"))
            .ok_or_else(|| KmsError::missing("Action"))?;
        ctx.action = Some(action.to_string());
        let version = params
            .opt("Version")
            .or_else(|| header("x-acs-version"))
            .ok_or_else(|| KmsError::missing("Version"))?;
        let api_action = ApiAction::parse(version, action)?;
        ctx.api_action = Some(api_action);
        ctx.key_hint = params
            .opt("KeyId")
            .or_else(|| params.opt("DestinationKeyId"))
            .map(|k| first_chars(k, 256).to_string())
            // Secrets Manager: the audit line names the secret (never its value).
            .or_else(|| {
                params
                    .opt("SecretName")
                    .map(|s| ["secret/", first_chars(s, 256)].concat())
            });
        // Kept in `ctx` (errors name it), lent to the caller below and given back after.
        ctx.region = Some(self.region(req, &params)?);
        self.root_key_gate.admit()?;

        // Authentication: signature, then time window, then nonce.
        let view = RequestView {
            method: req.method,
            path: req.path,
            params: &params,
            headers: req.headers,
            body: req.body,
        };
        let mut pending = signature::parse(&view)?;
        // The id moves into `ctx` (the audit line names it whatever happens next); checking
        // the signature does not read it.
        ctx.access_key_id = Some(std::mem::take(&mut pending.access_key_id));
        let access_key_id = ctx.access_key_id.as_deref().unwrap_or_default();
        let now = system_now();
        pending.check_time(now)?;
        // The access key resolves to its principal (root, RAM user or role session).
        if req
            .header("x-acs-accesskey-id")
            .is_some_and(|h| h != access_key_id)
        {
            return Err(KmsError::wire(
                "InvalidSecurityToken.MismatchWithAccessKey",
                403,
                "Specified SecurityToken mismatch with the AccessKey.",
            ));
        }
        // One cached entry: the principal, its compiled policies, the prepared HMAC keys.
        let auth = self.kms.authenticate(access_key_id).await?;
        pending.verify_prepared(auth.keys.v1(), auth.keys.v3())?;
        let digest = signature::nonce_digest(access_key_id, &pending.nonce);
        self.nonces
            .check_and_record_digest(&digest, pending.timestamp, now)?;
        // Nodes sharing a database also claim the nonce there (its first 8 bytes, filed by
        // the signed timestamp, which a replay carries unchanged), so a request replayed to
        // another node is refused too.
        let store = self.kms.store();
        if store.shares_nonces() && !store.claim_nonce(&digest[..8], pending.timestamp).await? {
            return Err(KmsError::SignatureNonceUsed);
        }
        let token = params
            .opt("SecurityToken")
            .or_else(|| req.header("x-acs-security-token"));
        auth.check_token(token, self.kms.now())?;

        ctx.principal = Some(auth.arn.clone());
        // The caller borrows the region and access key id from `ctx` for the call.
        let caller = Caller {
            account_id: auth.account_id.clone(),
            region: ctx.region.take().unwrap_or_default(),
            access_key_id: ctx.access_key_id.take().unwrap_or_default(),
        };
        let transport = api::authz::Transport {
            source_ip: req.peer,
            secure: self.secure,
        };
        let body = self
            .dispatch_prepared(
                &caller,
                &auth.principal,
                auth.policies.as_deref(),
                api_action,
                &params,
                transport,
            )
            .await;
        ctx.region = Some(caller.region);
        ctx.access_key_id = Some(caller.access_key_id);
        ctx.account_id = Some(caller.account_id);
        body
    }

    /// Runs an action for an authenticated caller: throttling, required parameters, then
    /// [`api::dispatch`]. Signed API requests end here, and so do web console actions, so
    /// both meet exactly the same rules. The console acts with the account's root rights.
    pub async fn dispatch_as(
        &self,
        caller: &Caller,
        action: ApiAction,
        params: &Params,
    ) -> Result<serde_json::Value, KmsError> {
        self.dispatch_principal(
            caller,
            &Principal::Root,
            action,
            params,
            api::authz::Transport::default(),
        )
        .await
    }

    /// [`Protocol::dispatch_as`] for a principal: a RAM user or role session is
    /// authorised by its policies ([`api::authz`]) before anything runs; the account's root
    /// credentials skip the evaluation.
    pub async fn dispatch_principal(
        &self,
        caller: &Caller,
        principal: &Principal,
        action: ApiAction,
        params: &Params,
        transport: api::authz::Transport,
    ) -> Result<serde_json::Value, KmsError> {
        self.dispatch_prepared(caller, principal, None, action, params, transport)
            .await?
            .into_value()
    }

    /// [`Protocol::dispatch_principal`] with the principal's compiled policies in hand (a
    /// signed request's, from its access key's cached entry; `None`: looked up), answering a
    /// [`Reply`]: the hot actions' typed bodies are rendered without a `Value`.
    async fn dispatch_prepared(
        &self,
        caller: &Caller,
        principal: &Principal,
        policies: Option<&crate::service::ram::Compiled>,
        action: ApiAction,
        params: &Params,
        transport: api::authz::Transport,
    ) -> Result<Reply, KmsError> {
        self.root_key_gate.admit()?;
        self.audit_gate.admit(action.changes_state())?;
        self.throttle
            .check(&caller.account_id, action.throttle_class())?;
        for p in action.params().iter().filter(|p| p.required) {
            params.required(&p.first_wire_name())?;
        }
        // STS actions read the context themselves (trust policies); for the others it is
        // built only if a policy in force has a condition ([`api::authz::authorize_transport`]).
        let sts = matches!(action, ApiAction::Sts(_));
        let context = if sts {
            api::authz::context(&self.kms, transport)
        } else {
            crate::policy::Context::new()
        };
        // A decision these policies already took on this request (a RAM user's or role
        // session's; signed requests naming a key by id) is answered at once.
        let remembered = api::authz::remembered(caller, principal, policies, action, params);
        if let Some(d) = remembered {
            d?;
        } else if !principal.is_root() {
            let rc = if sts {
                api::authz::RequestContext::Built(&context)
            } else {
                api::authz::RequestContext::Transport(transport)
            };
            api::authz::authorize_prepared(
                &self.kms, caller, principal, policies, action, params, rc,
            )
            .await?;
        }
        match action {
            ApiAction::Kms(a) => api::dispatch_reply(&self.kms, caller, a, params).await,
            ApiAction::Ram(a) => api::ram::dispatch(&self.kms, caller, principal, a, params)
                .await
                .map(Reply::Value),
            ApiAction::Sts(a) => {
                api::sts::dispatch(&self.kms, caller, principal, a, params, &context)
                    .await
                    .map(Reply::Value)
            }
        }
    }

    /// The region addressed: `RegionId` if given, else the `kms.<region>.…` host name, else
    /// the first configured region. A region this server does not serve is refused.
    fn region(&self, req: &HttpRequest<'_>, params: &Params) -> Result<String, KmsError> {
        let served = self.kms.regions();
        if let Some(r) = params.opt("RegionId") {
            return served
                .iter()
                .find(|s| s.as_str() == r)
                .cloned()
                .ok_or_else(|| {
                    KmsError::invalid_because(
                        "RegionId",
                        format!("This server serves {}.", served.join(", ")),
                    )
                });
        }
        if let Some(host) = req.header("host") {
            let name = host.split(':').next().unwrap_or_default();
            if let Some(r) = name.strip_prefix("kms.").and_then(|n| n.split('.').next()) {
                if let Some(s) = served.iter().find(|s| s.as_str() == r) {
                    return Ok(s.clone());
                }
            }
        }
        served
            .first()
            .cloned()
            .ok_or_else(|| KmsError::internal("no region configured"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn first_chars_is_take_n_chars() {
        for s in [
            "",
            "abc",
            "é中🎉x",
            &"é".repeat(300),
            &"a".repeat(300),
            &"中".repeat(100),
        ] {
            for n in [0, 1, 2, 3, 100, 256] {
                let want: String = s.chars().take(n).collect();
                assert_eq!(super::first_chars(s, n), want, "{s:?} {n}");
            }
        }
    }

    #[test]
    fn request_ids_are_upper_case_version_4_uuids() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = super::new_request_id();
            let parsed = uuid::Uuid::parse_str(&id).unwrap();
            assert_eq!(parsed.get_version_num(), 4, "{id}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(id, parsed.hyphenated().to_string().to_uppercase());
            assert!(seen.insert(id));
        }
    }
}
