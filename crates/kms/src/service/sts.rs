//! STS (reference alibaba-ram-sts.md §2, §7): AssumeRole issues a session of a role (an
//! `STS.` access key, its secret and a security token, stored sealed and hashed), and every
//! signed request resolves its access key to a principal ([`Kms::authenticate`]): the
//! account's root key, a RAM user's key, or a role session whose token must match and be
//! unexpired (on the injectable clock) and whose role must still exist.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::{digest, hmac};
use base64::Engine;

use super::ram::{policy_error, Compiled, Principal};
use super::{access_key_aad, Caller, Kms};
use crate::error::KmsError;
use crate::policy::eval::{trust, Caller as TrustCaller};
use crate::policy::{Context, Policy, PolicyKind};
use crate::store::{RamKind, StsSessionRecord};

/// The signature keys of an access key, prepared once from its secret (the HMAC key
/// schedule is not redone per request): v1's HMAC-SHA1 keyed with `secret&` and V3's
/// HMAC-SHA256 keyed with the secret. aws-lc keeps only the padded key states (its HMAC
/// context, cleansed when dropped); the secret itself is kept nowhere.
pub struct SigningKeys {
    v1: hmac::Key,
    v3: hmac::Key,
}

impl SigningKeys {
    pub fn new(secret: &[u8]) -> SigningKeys {
        let mut k = zeroize::Zeroizing::new(Vec::with_capacity(secret.len() + 1));
        k.extend_from_slice(secret);
        k.push(b'&');
        SigningKeys {
            v1: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &k),
            v3: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }
    /// v1 `HMAC-SHA1`'s key (`secret&`).
    pub fn v1(&self) -> &hmac::Key {
        &self.v1
    }
    /// V3 `ACS3-HMAC-SHA256`'s key (the secret).
    pub fn v3(&self) -> &hmac::Key {
        &self.v3
    }
}

/// Everything a signed request needs of its access key, resolved once and cached
/// ([`AuthCache`]): the account, the principal (and its ARN for the audit trail), the
/// principal's compiled policies, the prepared signature keys, and for a role session its
/// token hash and expiry (checked per request, on the injectable clock).
pub struct Authenticated {
    pub account_id: String,
    pub principal: Principal,
    /// `principal.arn(account_id)`.
    pub arn: String,
    /// The policies in force for a RAM user or role session (shared with
    /// [`super::ram::PolicyCache`]); None for the root credentials, or when they could not
    /// be compiled (then the authoriser looks them up itself and meets the error there).
    pub policies: Option<Arc<Compiled>>,
    pub keys: SigningKeys,
    /// A session's token hash and expiry.
    session: Option<(String, i64)>,
}

/// Without the keys.
impl std::fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticated")
            .field("account_id", &self.account_id)
            .field("principal", &self.principal)
            .field("session_expiration", &self.session.as_ref().map(|s| s.1))
            .finish_non_exhaustive()
    }
}

/// (store RAM epoch when filled, filled at, entry).
type AuthEntry = (u64, Instant, Arc<Authenticated>);

/// One entry per access key: [`Kms::authenticate`]'s whole answer, so a signed request does
/// one lookup here, no store lookup, no unsealing and no HMAC key schedule.
///
/// Valid while the store's RAM epoch is unchanged and for at most
/// [`crate::store::cache::ACCESS_KEY_TTL`] (the safety net for a change made by another
/// process that announces nothing, e.g. `kms admin` on a SQLite data dir). The epoch moves
/// on every change that could alter an entry, made on this node or announced by another
/// (see [`crate::store::cache::CachedStore`]): RAM data (users, groups and membership,
/// roles, policies, their versions and attachments) and access keys (enabled, disabled,
/// deleted). An entry is filled with the epoch read *before* the store was, so a fill racing
/// a change is stored under the old epoch and never served. Without a caching store (no
/// epoch) nothing is cached.
#[derive(Default)]
pub struct AuthCache {
    entries: RwLock<HashMap<String, AuthEntry, foldhash::fast::RandomState>>,
}

const MAX_CACHED: usize = 100_000;

impl AuthCache {
    fn get(&self, key: &str, epoch: Option<u64>) -> Option<Arc<Authenticated>> {
        let epoch = epoch?;
        let m = self.entries.read().ok()?;
        let (e, at, a) = m.get(key)?;
        (*e == epoch && at.elapsed() < crate::store::cache::ACCESS_KEY_TTL).then(|| a.clone())
    }
    fn put(&self, key: &str, epoch: Option<u64>, a: Arc<Authenticated>) {
        let Some(epoch) = epoch else { return };
        if let Ok(mut m) = self.entries.write() {
            if m.len() >= MAX_CACHED {
                m.clear();
            }
            m.insert(key.to_string(), (epoch, Instant::now(), a));
        }
    }
    /// How many entries are held (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.read().map_or(0, |m| m.len())
    }
}

/// Prefix of every temporary access key.
pub const STS_PREFIX: &str = "STS.";
pub const MIN_DURATION: i64 = 900;
pub const DEFAULT_DURATION: i64 = 3600;

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
    /// user (unknown: `InvalidAccessKeyId.NotFound`, disabled: `InvalidAccessKeyId.Inactive`).
    /// Served from [`AuthCache`] while nothing it depends on changed.
    pub async fn authenticate(&self, access_key_id: &str) -> Result<Arc<Authenticated>, KmsError> {
        // Read before the store: a change after this point moves the epoch, so what the
        // store answers is never served under a newer one.
        let epoch = self.store.ram_epoch();
        if let Some(a) = self.auth_cache.get(access_key_id, epoch) {
            return Ok(a);
        }
        let a = Arc::new(self.resolve_access_key(access_key_id).await?);
        self.auth_cache.put(access_key_id, epoch, a.clone());
        Ok(a)
    }

    /// [`Kms::authenticate`] from the store.
    async fn resolve_access_key(&self, access_key_id: &str) -> Result<Authenticated, KmsError> {
        let (account_id, principal, sealed_secret, session) =
            if access_key_id.starts_with(STS_PREFIX) {
                let s = self
                    .store
                    .get_sts_session(access_key_id)
                    .await?
                    .ok_or(KmsError::AccessKeyNotFound)?;
                let role = self
                    .store
                    .get_ram_entity_by_id(&s.role_id)
                    .await?
                    .filter(|r| r.account_id == s.account_id && r.kind == RamKind::Role.as_str())
                    .ok_or(KmsError::AccessKeyNotFound)?;
                (
                    s.account_id,
                    Principal::Role {
                        role_id: s.role_id,
                        role_name: role.name,
                        session_name: s.session_name,
                        access_key_id: access_key_id.to_string(),
                        session_policy: s.session_policy,
                    },
                    s.sealed_secret,
                    Some((s.token_hash, s.expiration)),
                )
            } else {
                let rec = self
                    .store
                    .get_access_key(access_key_id)
                    .await?
                    .ok_or(KmsError::AccessKeyNotFound)?;
                if !rec.enabled {
                    return Err(KmsError::AccessKeyInactive);
                }
                let principal = match rec.user_id {
                    None => Principal::Root,
                    Some(user_id) => {
                        let user = self
                            .store
                            .get_ram_entity_by_id(&user_id)
                            .await?
                            .ok_or(KmsError::AccessKeyNotFound)?;
                        Principal::User {
                            user_id,
                            user_name: user.name,
                        }
                    }
                };
                (rec.account_id, principal, rec.sealed_secret, None)
            };
        let secret = self
            .keystore
            .open(access_key_aad(access_key_id).as_bytes(), &sealed_secret)?;
        let keys = SigningKeys::new(&secret);
        drop(secret);
        let policies = if principal.is_root() {
            None
        } else {
            self.policies_of(&principal).await.ok()
        };
        Ok(Authenticated {
            arn: principal.arn(&account_id),
            account_id,
            principal,
            policies,
            keys,
            session,
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
