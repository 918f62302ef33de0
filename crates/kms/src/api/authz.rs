//! Authorisation of a signed request by a RAM user or role session (reference
//! alibaba-ram-sts.md §4.5, §5.2, §3.11): the resources the request names are read from its
//! parameters *generically* (any action of any product's table: `KeyId` resolved through
//! aliases and ARNs, `CiphertextBlob`'s key, `DestinationKeyId`, `ResourceId.N`,
//! `ProtectedResourceArn`, `AliasName`, `SecretName`, `UserName`, `GroupName`, `RoleName`,
//! `PolicyName`/`PolicyType`, `RoleArn`), turned into checks by the table's `ram` column
//! ([`crate::policy::kms::checks`]) and decided by the principal's compiled policies with
//! the request's condition context. The account's root credentials never come here.
//!
//! A resource the request does not name in a form this server can resolve (a malformed
//! blob, an alias that does not exist) is checked as `…/*`: only a caller allowed on every
//! such resource gets past, and then meets the action's own error.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::action::{ApiAction, Product, Resource};
use crate::error::KmsError;
use crate::keystore::blob::parse_header;
use crate::policy::kms::{check_refs, CheckRef, Ids, Scope};
use crate::policy::{Context, Decision, PolicySet};
use crate::protocol::params::Params;
use crate::service::ram::{err, Compiled, Principal};
use crate::service::{Caller, Kms};

/// What the transport knows about a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Transport {
    pub source_ip: Option<IpAddr>,
    pub secure: bool,
}

/// The request's condition context (§4.4, §5.2).
pub fn context(kms: &Kms, t: Transport) -> Context {
    let mut ctx = Context::new().secure_transport(t.secure).mfa_present(false);
    if let Some(ip) = t.source_ip {
        ctx = ctx.source_ip(ip);
    }
    if let Ok(now) = time::OffsetDateTime::from_unix_timestamp(kms.now()) {
        ctx = ctx.current_time(now);
    }
    ctx
}

/// The key a `KeyId`-like value names: resolved through aliases and ARNs; what does not
/// resolve is checked on every key (`*`). A plain key id is its own key, as
/// [`Kms::resolve`] has it, and stays borrowed. Also whether it resolved.
async fn key_of<'p>(kms: &Kms, caller: &Caller, key_ref: Cow<'p, str>) -> (Cow<'p, str>, bool) {
    if !key_ref.starts_with("acs:kms:") && !key_ref.starts_with("alias/") {
        return (key_ref, true);
    }
    match kms.resolve(caller, &key_ref).await {
        Ok(loc) => (Cow::Owned(loc.key_id), true),
        Err(_) => (Cow::Borrowed("*"), false),
    }
}

/// The refusal each product answers.
fn denied(product: Product) -> KmsError {
    match product {
        Product::Kms => KmsError::Forbidden,
        Product::Ram => err::no_permission(),
        Product::Sts => KmsError::wire(
            "NoPermission",
            403,
            "You are not authorized to do this action. You should be authorized by RAM.",
        ),
    }
}

/// Where the request's condition context comes from.
#[derive(Debug, Clone, Copy)]
pub enum RequestContext<'a> {
    /// Built by the caller (the console, STS actions that need it anyway).
    Built(&'a Context),
    /// Built here from the transport, and only if a policy in force has a condition.
    Transport(Transport),
}

/// Decides whether `principal` (not root) may run `action` with `p`. `ctx` is the
/// request's context; the addressed key's tags are added to it when a policy asks for them.
pub async fn authorize(
    kms: &Kms,
    caller: &Caller,
    principal: &Principal,
    action: ApiAction,
    p: &Params,
    ctx: &Context,
) -> Result<Decision, KmsError> {
    authorize_in(
        kms,
        caller,
        principal,
        None,
        action,
        p,
        RequestContext::Built(ctx),
    )
    .await
}

/// [`authorize`], with the context built from `t` only when a policy in force has a
/// condition (most have none; then the context would never be read).
pub async fn authorize_transport(
    kms: &Kms,
    caller: &Caller,
    principal: &Principal,
    action: ApiAction,
    p: &Params,
    t: Transport,
) -> Result<Decision, KmsError> {
    authorize_in(
        kms,
        caller,
        principal,
        None,
        action,
        p,
        RequestContext::Transport(t),
    )
    .await
}

/// [`authorize`] or [`authorize_transport`] with the principal's compiled policies already
/// in hand (a signed request's, from its access key's entry in
/// [`crate::service::sts::AuthCache`]): no second lookup. `None`: looked up here.
pub async fn authorize_prepared(
    kms: &Kms,
    caller: &Caller,
    principal: &Principal,
    policies: Option<&Compiled>,
    action: ApiAction,
    p: &Params,
    rc: RequestContext<'_>,
) -> Result<Decision, KmsError> {
    authorize_in(kms, caller, principal, policies, action, p, rc).await
}

/// Whether a policy set may remember its decisions on `action` ([`crate::service::ram::DecisionMemo`]): it has
/// no condition, and the action's checks name at most one key and otherwise only containers
/// (no alias, secret, RAM name, destination or role ARN).
fn memo_applies(c: &Compiled, ram: &[crate::action::RamCheck]) -> bool {
    !c.uses_conditions
        && ram.iter().filter(|c| c.resource == Resource::Key).count() <= 1
        && ram.iter().all(|c| {
            matches!(
                c.resource,
                Resource::Key
                    | Resource::KeyContainer
                    | Resource::AliasContainer
                    | Resource::SecretContainer
                    | Resource::Any
            )
        })
}

/// The decision [`authorize_prepared`] would take, when it is already remembered for a
/// request naming its key by plain id (`KeyId`, no `ResourceId.N`): answered without
/// starting the asynchronous authorisation. None: run [`authorize_prepared`].
pub fn remembered(
    caller: &Caller,
    principal: &Principal,
    policies: Option<&Compiled>,
    action: ApiAction,
    p: &Params,
) -> Option<Result<Decision, KmsError>> {
    let c = policies?;
    if principal.is_root() || action.product() != Product::Kms {
        return None;
    }
    let ram = action.ram();
    if ram.is_empty() || !memo_applies(c, ram) {
        return None;
    }
    let key = p.opt("KeyId")?;
    if key.starts_with("acs:kms:") || key.starts_with("alias/") || p.opt("ResourceId.1").is_some() {
        return None;
    }
    let d = c
        .decisions
        .get(action, &caller.account_id, &caller.region, key)?;
    Some(allowed(d, action))
}

/// The checks are built borrowing the request (key ids, names) and matched piecewise
/// against the policies ([`check_refs`], [`PolicySet::decide_refs`]): on a request naming
/// its key by id, nothing here allocates beyond the one vector of checks.
async fn authorize_in(
    kms: &Kms,
    caller: &Caller,
    principal: &Principal,
    prepared: Option<&Compiled>,
    action: ApiAction,
    p: &Params,
    rc: RequestContext<'_>,
) -> Result<Decision, KmsError> {
    let ram = action.ram();
    if principal.is_root() || ram.is_empty() {
        return Ok(Decision::Allow);
    }
    let scope = Scope {
        region: &caller.region,
        account: &caller.account_id,
    };
    // Keys: the primary ones (several for ResourceId.N), then the destination. The first
    // that resolved is the one whose tags a condition may ask for.
    let mut keys: Vec<Cow<'_, str>> = Vec::new();
    let mut tag_key: Option<usize> = None;
    // The decision of the same request taken before with these policies, where it depends
    // on the one key alone ([`crate::service::ram::DecisionMemo`]).
    let memo = prepared.filter(|c| memo_applies(c, ram));
    let mut memo_key: Option<usize> = None;
    if action.product() == Product::Kms {
        let first: Option<Cow<'_, str>> = if let Some(k) = p.opt("KeyId") {
            Some(Cow::Borrowed(k))
        } else if let Some(k) = p.opt("ProtectedResourceArn") {
            Some(Cow::Borrowed(k))
        } else if p.opt("CiphertextBlob").is_some() {
            let id = p
                .base64_required("CiphertextBlob")
                .ok()
                .and_then(|b| parse_header(&b))
                .map(|h| h.key_id);
            Some(id.map_or(Cow::Borrowed("*"), Cow::Owned))
        } else if let Some(a) = p.opt("AliasName") {
            // DeleteAlias: the key the alias points at.
            Some(if a.starts_with("alias/") {
                Cow::Borrowed(a)
            } else {
                Cow::Owned(format!("alias/{a}"))
            })
        } else {
            None
        };
        let listed = if p.opt("ResourceId.1").is_some() {
            p.list("ResourceId")
        } else {
            Vec::new()
        };
        let single = listed.is_empty();
        for r in first.into_iter().chain(listed.into_iter().map(Cow::Owned)) {
            let (key, resolved) = key_of(kms, caller, r).await;
            if single {
                if let Some(c) = memo {
                    let d = c.decisions.get(action, scope.account, scope.region, &key);
                    if let Some(d) = d {
                        return allowed(d, action);
                    }
                    memo_key = Some(keys.len());
                }
            }
            if resolved && tag_key.is_none() {
                tag_key = Some(keys.len());
            }
            keys.push(key);
        }
    }
    // The other ids are read only where one of the action's checks uses them (each read
    // is a scan of the parameters; an id no check uses changes no decision).
    let uses = |r: Resource| ram.iter().any(|c| c.resource == r);
    let opt = |r: Resource, name: &str| if uses(r) { p.opt(name) } else { None };
    let second_key = ram.iter().filter(|c| c.resource == Resource::Key).count() > 1;
    let destination = match second_key.then(|| p.opt("DestinationKeyId")).flatten() {
        Some(d) => Some(key_of(kms, caller, Cow::Borrowed(d)).await.0),
        None => None,
    };
    let own_name = match principal {
        Principal::User { user_name, .. } => Some(user_name.as_str()),
        _ => None,
    };
    fn star(r: Option<&str>) -> Option<&str> {
        r.or(Some("*"))
    }
    let ids = Ids {
        key_id: None,
        destination_key_id: star(destination.as_deref()),
        alias_name: star(opt(Resource::Alias, "AliasName")),
        secret_name: star(opt(Resource::Secret, "SecretName")),
        user_name: star(opt(Resource::User, "UserName").or(own_name)),
        group_name: star(opt(Resource::Group, "GroupName")),
        role_name: star(opt(Resource::Role, "RoleName")),
        policy_name: star(opt(Resource::Policy, "PolicyName")),
        system_policy: opt(Resource::Policy, "PolicyType") == Some("System"),
        role_arn: star(opt(Resource::RoleArn, "RoleArn")),
    };
    let mut all: Vec<CheckRef<'_>> = Vec::with_capacity(ram.len() * keys.len().max(1));
    for i in 0..keys.len().max(1) {
        let ids = Ids {
            key_id: star(keys.get(i).map(|k| k.as_ref())),
            ..ids
        };
        if check_refs(action, scope, ids, &mut all).is_err() {
            return Err(denied(action.product()));
        }
    }
    let fetched;
    let compiled: &Compiled = match prepared {
        Some(c) => c,
        None => {
            fetched = kms.policies_of(principal).await?;
            &fetched
        }
    };
    let built;
    let mut ctx: &Context = match rc {
        // No condition anywhere: the context is never read.
        _ if !compiled.uses_conditions => &EMPTY,
        RequestContext::Built(c) => c,
        RequestContext::Transport(t) => {
            built = context(kms, t);
            &built
        }
    };
    let ctx_with_tags;
    if compiled.uses_tags {
        if let Some(key) = tag_key.and_then(|i| keys.get(i)) {
            let mut c = ctx.clone();
            for t in kms.store().list_tags(key).await? {
                c = c.tag(&t.key, &t.value);
            }
            ctx_with_tags = c;
            ctx = &ctx_with_tags;
        }
    }
    let set = PolicySet {
        identity: &compiled.identity,
        session: compiled.session.as_ref(),
    };
    let d = set.decide_refs(&all, ctx);
    if let (Some(c), Some(i)) = (memo, memo_key) {
        if let Some(key) = keys.get(i) {
            c.decisions.put(action, scope.account, scope.region, key, d);
        }
    }
    allowed(d, action)
}

/// The context of a policy set without conditions: never read.
static EMPTY: std::sync::LazyLock<Context> = std::sync::LazyLock::new(Context::new);

fn allowed(d: Decision, action: ApiAction) -> Result<Decision, KmsError> {
    if d.is_allow() {
        Ok(d)
    } else {
        Err(denied(action.product()))
    }
}
