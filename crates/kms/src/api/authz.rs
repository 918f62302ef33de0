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

use std::net::IpAddr;

use crate::action::{ApiAction, Product};
use crate::error::KmsError;
use crate::keystore::blob::parse_header;
use crate::policy::kms::{checks, Ids, Scope};
use crate::policy::{Check, Context, Decision, PolicySet};
use crate::protocol::params::Params;
use crate::service::ram::{err, Principal};
use crate::service::{Caller, Kms};
use crate::store::KeyLocator;

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
/// resolve is checked on every key.
async fn key_of(kms: &Kms, caller: &Caller, key_ref: &str) -> Option<KeyLocator> {
    kms.resolve(caller, key_ref).await.ok()
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
    if principal.is_root() || action.ram().is_empty() {
        return Ok(Decision::Allow);
    }
    let scope = Scope {
        region: &caller.region,
        account: &caller.account_id,
    };
    // Keys: the primary ones (several for ResourceId.N), then the destination.
    let mut keys: Vec<String> = Vec::new();
    let mut tag_key: Option<KeyLocator> = None;
    if action.product() == Product::Kms {
        let mut refs: Vec<String> = Vec::new();
        if let Some(k) = p.opt("KeyId") {
            refs.push(k.to_string());
        } else if let Some(k) = p.opt("ProtectedResourceArn") {
            refs.push(k.to_string());
        } else if p.opt("CiphertextBlob").is_some() {
            let id = p
                .base64_required("CiphertextBlob")
                .ok()
                .and_then(|b| parse_header(&b))
                .map(|h| h.key_id);
            refs.push(id.unwrap_or_else(|| "*".to_string()));
        } else if let Some(a) = p.opt("AliasName") {
            // DeleteAlias: the key the alias points at.
            let a = if a.starts_with("alias/") {
                a.to_string()
            } else {
                format!("alias/{a}")
            };
            refs.push(a);
        }
        refs.extend(p.list("ResourceId"));
        for r in refs {
            match key_of(kms, caller, &r).await {
                Some(loc) => {
                    keys.push(loc.key_id.clone());
                    if tag_key.is_none() {
                        tag_key = Some(loc);
                    }
                }
                None => keys.push("*".to_string()),
            }
        }
    }
    let destination = match p.opt("DestinationKeyId") {
        Some(d) => Some(
            key_of(kms, caller, d)
                .await
                .map_or_else(|| "*".to_string(), |l| l.key_id),
        ),
        None => None,
    };
    let own_name = match principal {
        Principal::User { user_name, .. } => Some(user_name.as_str()),
        _ => None,
    };
    let base = Ids {
        key_id: None,
        destination_key_id: destination.as_deref(),
        alias_name: p.opt("AliasName"),
        secret_name: p.opt("SecretName"),
        user_name: p.opt("UserName").or(own_name),
        group_name: p.opt("GroupName"),
        role_name: p.opt("RoleName"),
        policy_name: p.opt("PolicyName"),
        system_policy: p.opt("PolicyType") == Some("System"),
        role_arn: p.opt("RoleArn"),
    };
    fn star(r: Option<&str>) -> Option<&str> {
        r.or(Some("*"))
    }
    let mut all: Vec<Check> = Vec::new();
    let firsts: Vec<Option<&str>> = if keys.is_empty() {
        vec![None]
    } else {
        keys.iter().map(|k| Some(k.as_str())).collect()
    };
    for key in firsts {
        let ids = Ids {
            key_id: star(key),
            destination_key_id: star(base.destination_key_id),
            alias_name: star(base.alias_name),
            secret_name: star(base.secret_name),
            user_name: star(base.user_name),
            group_name: star(base.group_name),
            role_name: star(base.role_name),
            policy_name: star(base.policy_name),
            role_arn: star(base.role_arn),
            ..base
        };
        match checks(action, scope, ids) {
            Ok(cs) => all.extend(cs),
            Err(_) => return Err(denied(action.product())),
        }
    }
    let compiled = kms.policies_of(principal).await?;
    let ctx_with_tags;
    let mut ctx = ctx;
    if compiled.uses_tags {
        if let Some(loc) = &tag_key {
            let mut c = ctx.clone();
            for t in kms.store().list_tags(&loc.key_id).await? {
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
    let d = set.decide(&all, ctx);
    if d.is_allow() {
        Ok(d)
    } else {
        Err(denied(action.product()))
    }
}
