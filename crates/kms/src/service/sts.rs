//! STS (reference alibaba-ram-sts.md §2, §7): AssumeRole issues a session of a role (an
//! `STS.` access key, its secret and a security token, stored sealed and hashed), and every
//! signed request resolves its access key to a principal ([`Kms::authenticate`]): the
//! account's root key, a RAM user's key, or a role session whose token must match and be
//! unexpired (on the injectable clock) and whose role must still exist.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use base64::Engine;

use super::ram::{policy_error, Principal};
use super::{access_key_aad, Caller, Kms};
use crate::error::KmsError;
use crate::keystore::Secret;
use crate::policy::eval::{trust, Caller as TrustCaller};
use crate::policy::{Context, Policy, PolicyKind};
use crate::store::{RamKind, StsSessionRecord};

/// What [`Kms::authenticate`] looked up beyond the access key itself, cached per access
/// key while RAM data is unchanged (the store's RAM epoch) and for at most
/// [`crate::store::cache::ACCESS_KEY_TTL`]: a RAM user's name, or a session with its role's
/// name.
#[derive(Clone)]
pub(crate) enum Resolved {
    User {
        user_id: String,
        name: String,
    },
    Session {
        session: Box<StsSessionRecord>,
        role_name: String,
    },
}

type AuthEntry = (u64, std::time::Instant, Resolved);

/// The cache of [`Resolved`] lookups.
#[derive(Default)]
pub struct AuthCache {
    entries: std::sync::RwLock<std::collections::HashMap<String, AuthEntry>>,
}

impl AuthCache {
    fn get(&self, key: &str, epoch: Option<u64>) -> Option<Resolved> {
        let epoch = epoch?;
        let m = self.entries.read().ok()?;
        let (e, at, r) = m.get(key)?;
        (*e == epoch && at.elapsed() < crate::store::cache::ACCESS_KEY_TTL).then(|| r.clone())
    }
    fn put(&self, key: &str, epoch: Option<u64>, r: Resolved) {
        let Some(epoch) = epoch else { return };
        if let Ok(mut m) = self.entries.write() {
            if m.len() >= 100_000 {
                m.clear();
            }
            m.insert(key.to_string(), (epoch, std::time::Instant::now(), r));
        }
    }
}

/// Prefix of every temporary access key.
pub const STS_PREFIX: &str = "STS.";
pub const MIN_DURATION: i64 = 900;
pub const DEFAULT_DURATION: i64 = 3600;

/// An access key resolved to its account, secret and principal, before its signature and
/// (for a session) its token are checked.
pub struct Authenticated {
    pub account_id: String,
    pub secret: Secret,
    pub principal: Principal,
    /// A session's token hash and expiry.
    session: Option<(String, i64)>,
}

fn token_hash(token: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

fn mismatch() -> KmsError {
    KmsError::wire(
        "InvalidSecurityToken.MismatchWithAccessKey",
        403,
        "Specified SecurityToken mismatch with the AccessKey.",
    )
}

impl Authenticated {
    /// §7.2, after the signature: a session needs its own token, unexpired at `now`; a
    /// long-term key takes no token.
    pub fn check_token(&self, token: Option<&str>, now: i64) -> Result<(), KmsError> {
        let token = token.filter(|t| !t.is_empty());
        match (&self.session, token) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(mismatch()),
            (Some(_), None) => Err(KmsError::wire(
                "MissingSecurityToken",
                400,
                "SecurityToken is mandatory for this action.",
            )),
            (Some((hash, expiration)), Some(t)) => {
                if verify_slices_are_equal(token_hash(t).as_bytes(), hash.as_bytes()).is_err() {
                    return Err(mismatch());
                }
                if now >= *expiration {
                    return Err(KmsError::wire(
                        "InvalidSecurityToken.Expired",
                        403,
                        "Specified SecurityToken is expired.",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// What AssumeRole returns.
#[derive(Debug, Clone)]
pub struct AssumedRole {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub security_token: String,
    pub expiration: i64,
    pub arn: String,
    pub assumed_role_id: String,
}

/// AssumeRole's inputs.
#[derive(Debug, Clone, Default)]
pub struct AssumeRoleInput {
    pub role_arn: String,
    pub session_name: String,
    pub duration: Option<i64>,
    pub policy: Option<String>,
    pub external_id: Option<String>,
}

/// `acs:ram::<account digits>:role/<name>` → (account, name).
pub fn parse_role_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("acs:ram::")?;
    let (account, role) = rest.split_once(":role/")?;
    let ok = !account.is_empty()
        && account.len() <= 32
        && account.bytes().all(|b| b.is_ascii_digit())
        && !role.is_empty()
        && !role.contains('/');
    ok.then_some((account, role))
}

impl Kms {
    /// Resolves an access key (§7.2 first half): `STS.` keys to their session (unknown, or
    /// role deleted: `InvalidAccessKeyId.NotFound`), others to the account's root or a RAM
    /// user.
    pub async fn authenticate(&self, access_key_id: &str) -> Result<Authenticated, KmsError> {
        let epoch = self.store.ram_epoch();
        if access_key_id.starts_with(STS_PREFIX) {
            let (s, role_name) = match self.auth_cache.get(access_key_id, epoch) {
                Some(Resolved::Session { session, role_name }) => (*session, role_name),
                _ => {
                    let s = self
                        .store
                        .get_sts_session(access_key_id)
                        .await?
                        .ok_or(KmsError::AccessKeyNotFound)?;
                    let role = self
                        .store
                        .get_ram_entity_by_id(&s.role_id)
                        .await?
                        .filter(|r| {
                            r.account_id == s.account_id && r.kind == RamKind::Role.as_str()
                        })
                        .ok_or(KmsError::AccessKeyNotFound)?;
                    self.auth_cache.put(
                        access_key_id,
                        epoch,
                        Resolved::Session {
                            session: Box::new(s.clone()),
                            role_name: role.name.clone(),
                        },
                    );
                    (s, role.name)
                }
            };
            let secret = self
                .keystore
                .open(access_key_aad(access_key_id).as_bytes(), &s.sealed_secret)?;
            return Ok(Authenticated {
                account_id: s.account_id,
                secret,
                principal: Principal::Role {
                    role_id: s.role_id,
                    role_name,
                    session_name: s.session_name,
                    access_key_id: access_key_id.to_string(),
                    session_policy: s.session_policy,
                },
                session: Some((s.token_hash, s.expiration)),
            });
        }
        let rec = self
            .store
            .get_access_key(access_key_id)
            .await?
            .ok_or(KmsError::AccessKeyNotFound)?;
        if !rec.enabled {
            return Err(KmsError::AccessKeyInactive);
        }
        let principal = match &rec.user_id {
            None => Principal::Root,
            Some(id) => match self.auth_cache.get(access_key_id, epoch) {
                Some(Resolved::User { user_id, name }) if &user_id == id => Principal::User {
                    user_id,
                    user_name: name,
                },
                _ => {
                    let user = self
                        .store
                        .get_ram_entity_by_id(id)
                        .await?
                        .ok_or(KmsError::AccessKeyNotFound)?;
                    self.auth_cache.put(
                        access_key_id,
                        epoch,
                        Resolved::User {
                            user_id: id.clone(),
                            name: user.name.clone(),
                        },
                    );
                    Principal::User {
                        user_id: id.clone(),
                        user_name: user.name,
                    }
                }
            },
        };
        let secret = self
            .keystore
            .open(access_key_aad(access_key_id).as_bytes(), &rec.sealed_secret)?;
        Ok(Authenticated {
            account_id: rec.account_id,
            secret,
            principal,
            session: None,
        })
    }

    /// AssumeRole (§2.1). The caller's own policies were checked (`sts:AssumeRole` on the
    /// role ARN) before; here the role's trust policy must allow the caller.
    pub async fn assume_role(
        &self,
        caller: &Caller,
        principal: &Principal,
        input: AssumeRoleInput,
        ctx: &Context,
    ) -> Result<AssumedRole, KmsError> {
        let (trust_caller, caller_arn) = match principal {
            Principal::Root => {
                return Err(KmsError::wire(
                    "NoPermission",
                    403,
                    "Roles may not be assumed by root accounts.",
                ))
            }
            Principal::User { user_name, .. } => (
                TrustCaller::ram_user(&caller.account_id, user_name),
                principal.arn(&caller.account_id),
            ),
            Principal::Role { role_name, .. } => (
                TrustCaller::ram_role(&caller.account_id, role_name),
                principal.arn(&caller.account_id),
            ),
        };
        let (account, role_name) = parse_role_arn(&input.role_arn).ok_or_else(|| {
            KmsError::wire(
                "InvalidParameter.RoleArn",
                400,
                "The parameter RoleArn is wrongly formed.",
            )
        })?;
        let n = input.session_name.chars().count();
        let ok = (2..=64).contains(&n)
            && input
                .session_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".@_-".contains(c));
        if !ok {
            return Err(KmsError::wire(
                "InvalidParameter.RoleSessionName",
                400,
                "The parameter RoleSessionName is wrongly formed.",
            ));
        }
        if let Some(id) = &input.external_id {
            let n = id.chars().count();
            let ok = (2..=1224).contains(&n)
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
            if !ok {
                return Err(KmsError::invalid("ExternalId"));
            }
        }
        let session_policy = match &input.policy {
            Some(text) => {
                Policy::parse(text, PolicyKind::Session).map_err(policy_error)?;
                Some(text.clone())
            }
            None => None,
        };
        let role = self
            .store
            .get_ram_entity(account, RamKind::Role, role_name)
            .await?
            .ok_or_else(|| {
                KmsError::wire("EntityNotExist.Role", 404, "The specified Role not exists.")
            })?;
        let role_id = role.entity_id.clone();
        let body: super::ram::RoleBody =
            serde_json::from_str(&role.body).map_err(KmsError::internal)?;
        let duration = input.duration.unwrap_or(DEFAULT_DURATION);
        if !(MIN_DURATION..=body.max_session_duration.max(DEFAULT_DURATION)).contains(&duration) {
            return Err(KmsError::wire(
                "InvalidParameter.DurationSeconds",
                400,
                "The Min/Max value of DurationSeconds is 15min/1hr.",
            ));
        }
        let trust_policy =
            Policy::parse(&body.trust_policy, PolicyKind::Trust).map_err(policy_error)?;
        let mut ctx = ctx.clone();
        if let Some(id) = &input.external_id {
            ctx = ctx.string(crate::policy::condition::keys::EXTERNAL_ID, id);
        }
        if !trust(&trust_policy, &trust_caller, &ctx).is_allow() {
            return Err(KmsError::wire(
                "NoPermission",
                403,
                "You are not authorized to do this action. You should be authorized by RAM.",
            ));
        }
        let now = self.now();
        let access_key_id = format!("{STS_PREFIX}{}", self.random_alnum(25)?);
        let secret = self.random_alnum(40)?;
        let mut raw = [0u8; 48];
        aws_lc_rs::rand::SecureRandom::fill(self.keystore.rng(), &mut raw)
            .map_err(|_| KmsError::internal("rng"))?;
        let token = format!(
            "CAIS{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        );
        let sealed_secret = self
            .keystore
            .seal(access_key_aad(&access_key_id).as_bytes(), secret.as_bytes())?;
        let expiration = now + duration;
        self.store
            .insert_sts_session(StsSessionRecord {
                access_key_id: access_key_id.clone(),
                account_id: account.to_string(),
                role_id: role_id.clone(),
                session_name: input.session_name.clone(),
                sealed_secret,
                token_hash: token_hash(&token),
                session_policy,
                caller_arn,
                expiration,
                creation_date: now,
            })
            .await?;
        Ok(AssumedRole {
            access_key_id,
            access_key_secret: secret,
            security_token: token,
            expiration,
            arn: format!(
                "acs:ram::{account}:role/{}/{}",
                role.name, input.session_name
            ),
            assumed_role_id: format!("{role_id}:{}", input.session_name),
        })
    }
}
