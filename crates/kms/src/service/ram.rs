//! RAM (reference alibaba-ram-sts.md §3): users, their access keys and login profiles,
//! groups and membership, custom policies with versions, attachments of system and custom
//! policies, and roles with trust policies. Entities are stored as typed bodies (JSON) in
//! the store's RAM aggregate; every rule (names, limits, conflicts) is here.
//!
//! Also the principal of a request ([`Principal`]) and the policies in force for it,
//! compiled once and cached until RAM data changes ([`Kms::policies_of`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{access_key_aad, Caller, Kms};
use crate::action::ApiAction;
use crate::error::KmsError;
use crate::policy::system::{SystemPolicy, SYSTEM_POLICIES};
use crate::policy::{Decision, Policy, PolicyError, PolicyKind};
use crate::store::{
    AccessKeyRecord, RamEntityRecord, RamKind, RamLinkKind, RamLinkRecord, RamUsage, RamWrite,
    StoreError,
};

// ---------------------------------------------------------------- limits (§3.10)

pub const MAX_USERS: i64 = 5000;
pub const MAX_GROUPS: i64 = 300;
pub const MAX_ROLES: i64 = 1000;
pub const MAX_POLICIES: i64 = 1500;
pub const MAX_GROUPS_PER_USER: i64 = 10;
pub const MAX_ACCESS_KEYS_PER_USER: i64 = 2;
pub const MAX_SYSTEM_ATTACHMENTS: i64 = 20;
pub const MAX_CUSTOM_ATTACHMENTS: i64 = 10;
pub const MAX_POLICY_VERSIONS: usize = 5;

// ---------------------------------------------------------------- the principal

/// Who signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The account's root credentials: every access key created before RAM users, and
    /// those made with `kms admin`. Always allowed (§4.5).
    Root,
    /// A RAM user, by its access key.
    User { user_id: String, user_name: String },
    /// A session of an assumed role (an `STS.` access key with its security token).
    Role {
        role_id: String,
        role_name: String,
        session_name: String,
        access_key_id: String,
        session_policy: Option<String>,
    },
}

impl Principal {
    /// The ARN of §1.5 (GetCallerIdentity's; the assumed-role form for sessions).
    pub fn arn(&self, account: &str) -> String {
        match self {
            Principal::Root => format!("acs:ram::{account}:root"),
            Principal::User { user_name, .. } => format!("acs:ram::{account}:user/{user_name}"),
            Principal::Role {
                role_name,
                session_name,
                ..
            } => format!("acs:ram::{account}:assumed-role/{role_name}/{session_name}"),
        }
    }

    pub fn is_root(&self) -> bool {
        matches!(self, Principal::Root)
    }
}

// ---------------------------------------------------------------- stored bodies

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginProfile {
    pub password_hash: String,
    pub password_reset_required: bool,
    pub mfa_bind_required: bool,
    pub create_date: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserBody {
    pub display_name: String,
    pub comments: String,
    pub email: String,
    pub mobile_phone: String,
    pub create_date: i64,
    pub update_date: i64,
    #[serde(default)]
    pub last_login_date: Option<i64>,
    #[serde(default)]
    pub login_profile: Option<LoginProfile>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupBody {
    pub comments: String,
    pub create_date: i64,
    pub update_date: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleBody {
    pub description: String,
    pub trust_policy: String,
    pub max_session_duration: i64,
    pub create_date: i64,
    pub update_date: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    pub version_id: String,
    pub document: String,
    pub create_date: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyBody {
    pub description: String,
    pub default_version: String,
    /// The number of the next version (`v<n>`, never reused).
    pub next_version: u32,
    pub versions: Vec<PolicyVersion>,
    pub create_date: i64,
    pub update_date: i64,
}

impl PolicyBody {
    pub fn default_document(&self) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| v.version_id == self.default_version)
            .map(|v| v.document.as_str())
    }
}

/// An entity with its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity<B> {
    pub id: String,
    pub name: String,
    pub body: B,
}

fn decode<B: for<'de> Deserialize<'de>>(e: RamEntityRecord) -> Result<Entity<B>, KmsError> {
    let body = serde_json::from_str(&e.body).map_err(KmsError::internal)?;
    Ok(Entity {
        id: e.entity_id,
        name: e.name,
        body,
    })
}

fn encode<B: Serialize>(body: &B) -> Result<String, KmsError> {
    serde_json::to_string(body).map_err(KmsError::internal)
}

/// `PolicyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyType {
    System,
    Custom,
}

impl PolicyType {
    pub fn parse(v: &str) -> Result<PolicyType, KmsError> {
        match v {
            "System" => Ok(PolicyType::System),
            "Custom" => Ok(PolicyType::Custom),
            _ => Err(err::policy_type()),
        }
    }
    pub const fn as_str(self) -> &'static str {
        match self {
            PolicyType::System => "System",
            PolicyType::Custom => "Custom",
        }
    }
}

/// A policy as listed: its name, type, description, default version, dates and document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyView {
    pub name: String,
    pub policy_type: PolicyType,
    pub description: String,
    pub default_version: String,
    pub create_date: i64,
    pub update_date: i64,
    pub versions: Vec<PolicyVersion>,
    /// The attachment target: the custom policy's entity id, or `system:<Name>`.
    pub target: String,
}

/// An attachment as listed by ListPoliciesFor…: the policy and when it was attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub policy: PolicyView,
    pub attach_date: i64,
}

/// The principal kinds policies attach to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    User,
    Group,
    Role,
}

impl Holder {
    pub const fn kind(self) -> RamKind {
        match self {
            Holder::User => RamKind::User,
            Holder::Group => RamKind::Group,
            Holder::Role => RamKind::Role,
        }
    }
    const fn word(self) -> &'static str {
        match self {
            Holder::User => "User",
            Holder::Group => "Group",
            Holder::Role => "Role",
        }
    }
}

// ---------------------------------------------------------------- errors (§3.9)

pub mod err {
    use crate::error::KmsError;

    pub fn not_exist(kind: &str) -> KmsError {
        let (code, message) = match kind {
            "User" => ("EntityNotExist.User", "The user does not exist."),
            "Group" => ("EntityNotExist.Group", "The group does not exist."),
            "Role" => ("EntityNotExist.Role", "The role does not exist."),
            _ => ("EntityNotExist.Policy", "The policy does not exist."),
        };
        KmsError::wire(code, 404, message)
    }
    pub fn already_exists(kind: &str) -> KmsError {
        let (code, message) = match kind {
            "User" => ("EntityAlreadyExists.User", "The user does already EXIST."),
            "Group" => ("EntityAlreadyExists.Group", "The group does already EXIST."),
            "Role" => ("EntityAlreadyExists.Role", "The role does already EXIST."),
            // Sic: the documented text.
            _ => (
                "EntityAlreadyExists.Policy",
                "The group does already EXIST.",
            ),
        };
        KmsError::wire(code, 409, message)
    }
    pub fn limit(kind: &str) -> KmsError {
        let (code, message) = match kind {
            "User" => (
                "LimitExceeded.User",
                "The count of users beyond the current limits.",
            ),
            "Group" => (
                "LimitExceeded.Group",
                "The count of groups beyond the current limits.",
            ),
            "Role" => (
                "LimitExceeded.Role",
                "The count of roles beyond the current limits.",
            ),
            _ => (
                "LimitExceeded.Policy",
                "The count of policy beyond the current limits.",
            ),
        };
        KmsError::wire(code, 409, message)
    }
    pub fn policy_type() -> KmsError {
        KmsError::wire(
            "InvalidParameter.PolicyType",
            400,
            "The parameter - \"PolicyType\" is incorrect.",
        )
    }
    pub fn length(code: &'static str, param: &str) -> KmsError {
        KmsError::wire(
            code,
            400,
            format!("The parameter - \"{param}\" beyond the length limit."),
        )
    }
    pub fn chars(code: &'static str, param: &str) -> KmsError {
        KmsError::wire(
            code,
            400,
            format!("The parameter - \"{param}\" contains invalid chars."),
        )
    }
    pub fn format(code: &'static str, param: &str) -> KmsError {
        KmsError::wire(
            code,
            400,
            format!("The format of the parameter - \"{param}\" is incorrect."),
        )
    }
    pub fn conflict(code: &'static str, message: &'static str) -> KmsError {
        KmsError::wire(code, 409, message)
    }
    pub fn not_found(code: &'static str, message: &'static str) -> KmsError {
        KmsError::wire(code, 404, message)
    }
    /// RAM's own refusal (§3 caller rules).
    pub fn no_permission() -> KmsError {
        KmsError::wire(
            "NoPermission",
            403,
            "You are not authorized to do this action.",
        )
    }
    pub fn too_weak() -> KmsError {
        KmsError::wire(
            "InvalidParameter.Password.TooWeak",
            400,
            "The parameter - \"Password\" is not compliant with the password policy.",
        )
    }
}

/// A policy document error as the wire shows it.
pub fn policy_error(e: PolicyError) -> KmsError {
    KmsError::wire(e.code(), 400, e.message())
}

// ---------------------------------------------------------------- validation

/// Checks a name: 1..=`max` characters of `[A-Za-z0-9]` and `extra`.
pub fn check_name(
    param: &'static str,
    value: &str,
    max: usize,
    extra: &str,
    codes: (&'static str, &'static str),
) -> Result<(), KmsError> {
    let n = value.chars().count();
    if n == 0 || n > max {
        return Err(err::length(codes.0, param));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    {
        return Err(err::chars(codes.1, param));
    }
    Ok(())
}

pub fn check_len(
    param: &'static str,
    value: &str,
    max: usize,
    code: &'static str,
) -> Result<(), KmsError> {
    if value.chars().count() > max {
        return Err(err::length(code, param));
    }
    Ok(())
}

/// Names of `user`, `group`, `role` and `policy` entities and their codes.
pub fn check_user_name(param: &'static str, v: &str) -> Result<(), KmsError> {
    let codes = if param == "NewUserName" {
        (
            "InvalidParameter.NewUserName.Length",
            "InvalidParameter.NewUserName.InvalidChars",
        )
    } else {
        (
            "InvalidParameter.UserName.Length",
            "InvalidParameter.UserName.InvalidChars",
        )
    };
    check_name(param, v, 64, "._-", codes)
}

pub fn check_group_name(param: &'static str, v: &str) -> Result<(), KmsError> {
    let codes = if param == "NewGroupName" {
        (
            "InvalidParameter.NewGroupName.Length",
            "InvalidParameter.NewGroupName.InvalidChars",
        )
    } else {
        (
            "InvalidParameter.GroupName.Length",
            "InvalidParameter.GroupName.InvalidChars",
        )
    };
    check_name(param, v, 64, "._-", codes)
}

pub fn check_role_name(v: &str) -> Result<(), KmsError> {
    check_name(
        "RoleName",
        v,
        64,
        ".-",
        (
            "InvalidParameter.RoleName.Length",
            "InvalidParameter.RoleName.InvalidChars",
        ),
    )
}

pub fn check_policy_name(v: &str) -> Result<(), KmsError> {
    check_name(
        "PolicyName",
        v,
        128,
        "-",
        (
            "InvalidParameter.PolicyName.Length",
            "InvalidParameter.PolicyName.InvalidChars",
        ),
    )
}

fn check_version_id(v: &str) -> Result<(), KmsError> {
    let ok = v
        .strip_prefix('v')
        .is_some_and(|n| !n.is_empty() && n.len() < 10 && n.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(err::format(
            "InvalidParameter.VersionId.Format",
            "VersionId",
        ))
    }
}

// ---------------------------------------------------------------- inputs

/// CreateUser / UpdateUser fields (None: unchanged).
#[derive(Debug, Clone, Default)]
pub struct UserFields {
    pub display_name: Option<String>,
    pub comments: Option<String>,
    pub email: Option<String>,
    pub mobile_phone: Option<String>,
}

/// The compiled policies in force for a principal, cached.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    pub identity: Vec<Policy>,
    pub session: Option<Policy>,
    /// Whether a condition asks for `kms:tag/<TagKey>` (then the addressed key's tags are
    /// read for the context; otherwise they are not).
    pub uses_tags: bool,
    /// Whether any statement has a condition (otherwise the request's condition context
    /// is never read, and not built).
    pub uses_conditions: bool,
    /// Decisions already taken with these policies ([`DecisionMemo`]).
    pub decisions: DecisionMemo,
}

/// The last decisions a policy set without conditions took on requests whose checks
/// depend on one key alone, by (action, account, region, key id): the same request is then
/// decided without building and matching its checks again. Exact, not a heuristic: without
/// conditions a decision is a function of the policies (fixed for the life of their
/// [`Compiled`]) and of the checks, and those are a function of this tuple (the authoriser
/// asks only for actions whose checks name no other resource). At most [`MEMO_SLOTS`]
/// entries, the oldest replaced first; dropped with the policies when RAM data changes.
#[derive(Default)]
pub struct DecisionMemo {
    slots: RwLock<(usize, Vec<MemoSlot>)>,
}

/// (action, account, region, key id, decision).
type MemoSlot = (ApiAction, Box<str>, Box<str>, Box<str>, Decision);

pub const MEMO_SLOTS: usize = 16;

impl DecisionMemo {
    pub fn get(
        &self,
        action: ApiAction,
        account: &str,
        region: &str,
        key: &str,
    ) -> Option<Decision> {
        let m = self.slots.read().ok()?;
        m.1.iter()
            .find(|s| s.0 == action && &*s.3 == key && &*s.2 == region && &*s.1 == account)
            .map(|s| s.4)
    }
    pub fn put(&self, action: ApiAction, account: &str, region: &str, key: &str, d: Decision) {
        if let Ok(mut m) = self.slots.write() {
            let slot = (action, account.into(), region.into(), key.into(), d);
            if m.1.len() < MEMO_SLOTS {
                m.1.push(slot);
            } else {
                let i = m.0 % MEMO_SLOTS;
                m.1[i] = slot;
                m.0 = i + 1;
            }
        }
    }
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.read().map_or(0, |m| m.1.len())
    }
}

/// A copy starts with no decisions.
impl Clone for DecisionMemo {
    fn clone(&self) -> Self {
        DecisionMemo::default()
    }
}

impl std::fmt::Debug for DecisionMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionMemo").finish_non_exhaustive()
    }
}

impl Compiled {
    fn new(identity: Vec<Policy>, session: Option<Policy>) -> Compiled {
        let uses_tags = identity
            .iter()
            .chain(session.iter())
            .flat_map(|p| &p.statements)
            .flat_map(|s| &s.conditions)
            .any(|c| is_tag_key(&c.key));
        let uses_conditions = identity
            .iter()
            .chain(session.iter())
            .flat_map(|p| &p.statements)
            .any(|s| !s.conditions.is_empty());
        Compiled {
            identity,
            session,
            uses_tags,
            uses_conditions,
            decisions: DecisionMemo::default(),
        }
    }
}

/// Whether a condition key is a key tag (`kms:tag/<TagKey>`).
pub fn is_tag_key(key: &str) -> bool {
    let prefix = crate::policy::condition::keys::KMS_TAG_PREFIX;
    key.len() > prefix.len()
        && key.is_char_boundary(prefix.len())
        && key[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Compiled policies per principal (user id or STS access key id), valid while the store's
/// RAM epoch is unchanged, and at most [`POLICY_TTL`] old.
#[derive(Default)]
pub struct PolicyCache {
    entries: RwLock<HashMap<String, CacheEntry>>,
}

/// (RAM epoch, filled at, policies).
type CacheEntry = (u64, Instant, Arc<Compiled>);

/// The safety net for changes the cache did not hear about.
pub const POLICY_TTL: Duration = Duration::from_secs(5);
const MAX_CACHED: usize = 100_000;

impl PolicyCache {
    fn get(&self, key: &str, epoch: u64) -> Option<Arc<Compiled>> {
        let m = self.entries.read().ok()?;
        let (e, at, c) = m.get(key)?;
        (*e == epoch && at.elapsed() < POLICY_TTL).then(|| c.clone())
    }
    fn put(&self, key: &str, epoch: u64, c: Arc<Compiled>) {
        if let Ok(mut m) = self.entries.write() {
            if m.len() >= MAX_CACHED {
                m.clear();
            }
            m.insert(key.to_string(), (epoch, Instant::now(), c));
        }
    }
}

fn system_target(p: &SystemPolicy) -> String {
    format!("system:{}", p.name)
}

impl Kms {
    fn new_entity_id(&self) -> Result<String, KmsError> {
        // 16 decimal digits, like RAM's ids; from the same rejection sampler as access keys.
        let mut digits = String::with_capacity(16);
        while digits.len() < 16 {
            for c in self.random_alnum(32)?.chars() {
                if c.is_ascii_digit() && digits.len() < 16 {
                    digits.push(c);
                }
            }
        }
        if digits.starts_with('0') {
            digits.replace_range(0..1, "1");
        }
        Ok(digits)
    }

    async fn entity<B: for<'de> Deserialize<'de>>(
        &self,
        account: &str,
        kind: RamKind,
        name: &str,
        what: &str,
    ) -> Result<Entity<B>, KmsError> {
        let e = self
            .store
            .get_ram_entity(account, kind, name)
            .await?
            .ok_or_else(|| err::not_exist(what))?;
        decode(e)
    }

    pub async fn get_user(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<Entity<UserBody>, KmsError> {
        self.entity(&caller.account_id, RamKind::User, name, "User")
            .await
    }
    pub async fn get_group(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<Entity<GroupBody>, KmsError> {
        self.entity(&caller.account_id, RamKind::Group, name, "Group")
            .await
    }
    pub async fn get_role(&self, account: &str, name: &str) -> Result<Entity<RoleBody>, KmsError> {
        self.entity(account, RamKind::Role, name, "Role").await
    }

    async fn insert_entity<B: Serialize>(
        &self,
        caller: &Caller,
        kind: RamKind,
        name: &str,
        body: &B,
        max: i64,
        what: &str,
    ) -> Result<String, KmsError> {
        self.store
            .ensure_account(&caller.account_id, self.now())
            .await?;
        let id = self.new_entity_id()?;
        let rec = RamEntityRecord {
            entity_id: id.clone(),
            account_id: caller.account_id.clone(),
            kind: kind.as_str().to_string(),
            name: name.to_string(),
            body: encode(body)?,
        };
        match self.store.insert_ram_entity(rec, max).await {
            Ok(()) => Ok(id),
            Err(StoreError::Duplicate(_)) => Err(err::already_exists(what)),
            Err(StoreError::LimitExceeded(_)) => Err(err::limit(what)),
            Err(e) => Err(e.into()),
        }
    }

    /// Read-modify-write of an entity's body (and name). `f` may refuse.
    async fn modify<B, F>(
        &self,
        account: &str,
        kind: RamKind,
        name: &str,
        what: &'static str,
        f: F,
    ) -> Result<Entity<B>, KmsError>
    where
        B: Serialize + for<'de> Deserialize<'de> + Send + 'static,
        F: FnOnce(&mut String, &mut B, &RamUsage) -> Result<RamWrite, KmsError> + Send + 'static,
    {
        let mutation = Box::new(move |e: &mut RamEntityRecord, usage: &RamUsage| {
            let mut body: B = serde_json::from_str(&e.body).map_err(KmsError::internal)?;
            let w = f(&mut e.name, &mut body, usage)?;
            e.body = encode(&body)?;
            Ok(w)
        });
        match self
            .store
            .update_ram_entity(account, kind, name, mutation)
            .await
        {
            Ok(Some(rec)) => decode(rec),
            Ok(None) => Err(err::not_exist(what)),
            Err(StoreError::Duplicate(_)) => Err(err::already_exists(what)),
            Err(e) => Err(e.into()),
        }
    }

    // ------------------------------------------------------------ users

    pub async fn create_user(
        &self,
        caller: &Caller,
        name: &str,
        f: UserFields,
    ) -> Result<Entity<UserBody>, KmsError> {
        check_user_name("UserName", name)?;
        check_user_fields(&f, "")?;
        let now = self.now();
        let body = UserBody {
            display_name: f.display_name.unwrap_or_default(),
            comments: f.comments.unwrap_or_default(),
            email: f.email.unwrap_or_default(),
            mobile_phone: f.mobile_phone.unwrap_or_default(),
            create_date: now,
            update_date: now,
            last_login_date: None,
            login_profile: None,
        };
        let id = self
            .insert_entity(caller, RamKind::User, name, &body, MAX_USERS, "User")
            .await?;
        Ok(Entity {
            id,
            name: name.to_string(),
            body,
        })
    }

    pub async fn update_user(
        &self,
        caller: &Caller,
        name: &str,
        new_name: Option<String>,
        f: UserFields,
    ) -> Result<Entity<UserBody>, KmsError> {
        if let Some(n) = &new_name {
            check_user_name("NewUserName", n)?;
        }
        check_user_fields(&f, "New")?;
        let now = self.now();
        self.modify(
            &caller.account_id,
            RamKind::User,
            name,
            "User",
            move |n, b: &mut UserBody, _| {
                if let Some(v) = new_name {
                    *n = v;
                }
                if let Some(v) = f.display_name {
                    b.display_name = v;
                }
                if let Some(v) = f.comments {
                    b.comments = v;
                }
                if let Some(v) = f.email {
                    b.email = v;
                }
                if let Some(v) = f.mobile_phone {
                    b.mobile_phone = v;
                }
                b.update_date = now;
                Ok(RamWrite::Update)
            },
        )
        .await
    }

    pub async fn list_users(&self, caller: &Caller) -> Result<Vec<Entity<UserBody>>, KmsError> {
        self.list_entities(&caller.account_id, RamKind::User).await
    }

    async fn list_entities<B: for<'de> Deserialize<'de>>(
        &self,
        account: &str,
        kind: RamKind,
    ) -> Result<Vec<Entity<B>>, KmsError> {
        self.store
            .list_ram_entities(account, kind)
            .await?
            .into_iter()
            .map(decode)
            .collect()
    }

    pub async fn delete_user(&self, caller: &Caller, name: &str) -> Result<(), KmsError> {
        self.modify(
            &caller.account_id,
            RamKind::User,
            name,
            "User",
            |_, b: &mut UserBody, usage| {
                if usage.access_keys > 0 {
                    return Err(err::conflict(
                        "DeleteConflict.User.AccessKey",
                        "The user CAN NOT has any access key while deleting the user.",
                    ));
                }
                if b.login_profile.is_some() {
                    return Err(err::conflict(
                        "DeleteConflict.User.LoginProfile",
                        "The user CAN NOT has any login profile while deleting the user.",
                    ));
                }
                refuse_linked(
                    usage,
                    &[
                        (
                            RamLinkKind::Member,
                            "DeleteConflict.User.Group",
                            "The user CAN NOT be in any group while deleting the user.",
                        ),
                        (
                            RamLinkKind::Attachment,
                            "DeleteConflict.User.Policy",
                            "The user CAN NOT has any attached policy while deleting the user.",
                        ),
                    ],
                )?;
                Ok(RamWrite::Delete)
            },
        )
        .await
        .map(|_| ())
    }

    // ------------------------------------------------------------ access keys

    /// The user an access key action names: `UserName`, else the calling RAM user.
    pub async fn key_owner(
        &self,
        caller: &Caller,
        principal: &Principal,
        name: Option<&str>,
    ) -> Result<Entity<UserBody>, KmsError> {
        match (name, principal) {
            (Some(n), _) => self.get_user(caller, n).await,
            (None, Principal::User { user_name, .. }) => self.get_user(caller, user_name).await,
            // The root account's own keys are managed with `kms admin`.
            (None, _) => Err(KmsError::missing("UserName")),
        }
    }

    pub async fn create_user_access_key(
        &self,
        caller: &Caller,
        user: &Entity<UserBody>,
    ) -> Result<(AccessKeyRecord, String), KmsError> {
        let id = format!("LTAI{}", self.random_alnum(20)?);
        let secret = self.random_alnum(30)?;
        let sealed_secret = self
            .keystore
            .seal(access_key_aad(&id).as_bytes(), secret.as_bytes())?;
        let rec = AccessKeyRecord {
            access_key_id: id,
            account_id: caller.account_id.clone(),
            sealed_secret,
            enabled: true,
            creation_date: self.now(),
            user_id: Some(user.id.clone()),
        };
        match self
            .store
            .insert_user_access_key(rec.clone(), MAX_ACCESS_KEYS_PER_USER)
            .await
        {
            Ok(()) => Ok((rec, secret)),
            Err(StoreError::LimitExceeded(_)) => Err(err::conflict(
                "LimitExceeded.User.AccessKey",
                "The access key count of the user access keys beyond the current limits.",
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_user_access_keys(
        &self,
        user: &Entity<UserBody>,
    ) -> Result<Vec<AccessKeyRecord>, KmsError> {
        Ok(self.store.list_user_access_keys(&user.id).await?)
    }

    /// The access key `id` of `user`, or `EntityNotExist.User.AccessKey`.
    async fn user_key(&self, user: &Entity<UserBody>, id: &str) -> Result<(), KmsError> {
        let found = self
            .store
            .get_access_key(id)
            .await?
            .is_some_and(|k| k.user_id.as_deref() == Some(user.id.as_str()));
        if found {
            Ok(())
        } else {
            Err(err::not_found(
                "EntityNotExist.User.AccessKey",
                "The user access key does not exist.",
            ))
        }
    }

    pub async fn set_user_access_key_status(
        &self,
        user: &Entity<UserBody>,
        id: &str,
        active: bool,
    ) -> Result<(), KmsError> {
        self.user_key(user, id).await?;
        self.store.set_access_key_enabled(id, active).await?;
        Ok(())
    }

    pub async fn delete_user_access_key(
        &self,
        user: &Entity<UserBody>,
        id: &str,
    ) -> Result<(), KmsError> {
        self.user_key(user, id).await?;
        self.store.delete_access_key(id).await?;
        Ok(())
    }

    // ------------------------------------------------------------ login profiles

    pub async fn set_login_profile(
        &self,
        caller: &Caller,
        name: &str,
        create: bool,
        password: Option<String>,
        reset: Option<bool>,
        mfa: Option<bool>,
    ) -> Result<(Entity<UserBody>, LoginProfile), KmsError> {
        let hash = match &password {
            Some(p) => {
                crate::console::session::validate_password(p).map_err(|_| err::too_weak())?;
                Some(crate::console::session::hash_password(p).map_err(KmsError::internal)?)
            }
            None => None,
        };
        let now = self.now();
        let user = self
            .modify(
                &caller.account_id,
                RamKind::User,
                name,
                "User",
                move |_, b: &mut UserBody, _| {
                    match (&mut b.login_profile, create) {
                        (Some(_), true) => {
                            return Err(err::conflict(
                                "EntityAlreadyExists.User.LoginProfile",
                                "The user login profile does already EXIST.",
                            ))
                        }
                        (None, false) => return Err(no_login_profile()),
                        (None, true) => {
                            b.login_profile = Some(LoginProfile {
                                password_hash: hash.unwrap_or_default(),
                                password_reset_required: reset.unwrap_or(false),
                                mfa_bind_required: mfa.unwrap_or(false),
                                create_date: now,
                            })
                        }
                        (Some(p), false) => {
                            if let Some(h) = hash {
                                p.password_hash = h;
                            }
                            if let Some(r) = reset {
                                p.password_reset_required = r;
                            }
                            if let Some(m) = mfa {
                                p.mfa_bind_required = m;
                            }
                        }
                    }
                    Ok(RamWrite::Update)
                },
            )
            .await?;
        let profile = user
            .body
            .login_profile
            .clone()
            .ok_or_else(no_login_profile)?;
        Ok((user, profile))
    }

    pub async fn get_login_profile(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<(Entity<UserBody>, LoginProfile), KmsError> {
        let user = self.get_user(caller, name).await?;
        let p = user
            .body
            .login_profile
            .clone()
            .ok_or_else(no_login_profile)?;
        Ok((user, p))
    }

    pub async fn delete_login_profile(&self, caller: &Caller, name: &str) -> Result<(), KmsError> {
        self.modify(
            &caller.account_id,
            RamKind::User,
            name,
            "User",
            |_, b: &mut UserBody, _| {
                if b.login_profile.take().is_none() {
                    return Err(no_login_profile());
                }
                Ok(RamWrite::Update)
            },
        )
        .await
        .map(|_| ())
    }

    // ------------------------------------------------------------ groups

    pub async fn create_group(
        &self,
        caller: &Caller,
        name: &str,
        comments: Option<String>,
    ) -> Result<Entity<GroupBody>, KmsError> {
        check_group_name("GroupName", name)?;
        let comments = comments.unwrap_or_default();
        check_len(
            "Comments",
            &comments,
            128,
            "InvalidParameter.Comments.Length",
        )?;
        let now = self.now();
        let body = GroupBody {
            comments,
            create_date: now,
            update_date: now,
        };
        let id = self
            .insert_entity(caller, RamKind::Group, name, &body, MAX_GROUPS, "Group")
            .await?;
        Ok(Entity {
            id,
            name: name.to_string(),
            body,
        })
    }

    pub async fn update_group(
        &self,
        caller: &Caller,
        name: &str,
        new_name: Option<String>,
        new_comments: Option<String>,
    ) -> Result<Entity<GroupBody>, KmsError> {
        if let Some(n) = &new_name {
            check_group_name("NewGroupName", n)?;
        }
        if let Some(c) = &new_comments {
            check_len("NewComments", c, 128, "InvalidParameter.NewComments.Length")?;
        }
        let now = self.now();
        self.modify(
            &caller.account_id,
            RamKind::Group,
            name,
            "Group",
            move |n, b: &mut GroupBody, _| {
                if let Some(v) = new_name {
                    *n = v;
                }
                if let Some(v) = new_comments {
                    b.comments = v;
                }
                b.update_date = now;
                Ok(RamWrite::Update)
            },
        )
        .await
    }

    pub async fn list_groups(&self, caller: &Caller) -> Result<Vec<Entity<GroupBody>>, KmsError> {
        self.list_entities(&caller.account_id, RamKind::Group).await
    }

    pub async fn delete_group(&self, caller: &Caller, name: &str) -> Result<(), KmsError> {
        self.modify(
            &caller.account_id,
            RamKind::Group,
            name,
            "Group",
            |_, _: &mut GroupBody, usage| {
                refuse_linked(
                    usage,
                    &[
                        (
                            RamLinkKind::Member,
                            "DeleteConflict.Group.User",
                            "The group CAN NOT has any user member while deleting the group.",
                        ),
                        (
                            RamLinkKind::Attachment,
                            "DeleteConflict.Group.Policy",
                            "The entity CAN NOT has any attached policy while deleting the group.",
                        ),
                    ],
                )?;
                Ok(RamWrite::Delete)
            },
        )
        .await
        .map(|_| ())
    }

    pub async fn add_user_to_group(
        &self,
        caller: &Caller,
        group: &str,
        user: &str,
    ) -> Result<(), KmsError> {
        let g = self.get_group(caller, group).await?;
        let u = self.get_user(caller, user).await?;
        let link = RamLinkRecord {
            kind: RamLinkKind::Member.as_str().into(),
            source_id: u.id,
            target_id: g.id,
            account_id: caller.account_id.clone(),
            created: self.now(),
        };
        match self.store.add_ram_link(link, MAX_GROUPS_PER_USER).await {
            Ok(()) => Ok(()),
            Err(StoreError::Duplicate(_)) => Err(err::conflict(
                "EntityAlreadyExists.User.Group",
                "The user has already joined the group.",
            )),
            Err(StoreError::LimitExceeded(_)) => Err(err::conflict(
                "LimitExceeded.User.Group",
                "The count of groups the target user joined beyond the current limits.",
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn remove_user_from_group(
        &self,
        caller: &Caller,
        group: &str,
        user: &str,
    ) -> Result<(), KmsError> {
        let g = self.get_group(caller, group).await?;
        let u = self.get_user(caller, user).await?;
        if self
            .store
            .remove_ram_link(RamLinkKind::Member, &u.id, &g.id)
            .await?
        {
            Ok(())
        } else {
            Err(err::not_found(
                "EntityNotExist.User.Group",
                "The user has not joined the group.",
            ))
        }
    }

    /// The groups of a user with their join dates.
    pub async fn groups_for_user(
        &self,
        user: &Entity<UserBody>,
    ) -> Result<Vec<(Entity<GroupBody>, i64)>, KmsError> {
        let mut out = Vec::new();
        for l in self
            .store
            .list_ram_links(RamLinkKind::Member, Some(&user.id), None)
            .await?
        {
            if let Some(g) = self.store.get_ram_entity_by_id(&l.target_id).await? {
                out.push((decode(g)?, l.created));
            }
        }
        Ok(out)
    }

    /// The members of a group with their join dates.
    pub async fn users_for_group(
        &self,
        group: &Entity<GroupBody>,
    ) -> Result<Vec<(Entity<UserBody>, i64)>, KmsError> {
        let mut out = Vec::new();
        for l in self
            .store
            .list_ram_links(RamLinkKind::Member, None, Some(&group.id))
            .await?
        {
            if let Some(u) = self.store.get_ram_entity_by_id(&l.source_id).await? {
                out.push((decode(u)?, l.created));
            }
        }
        Ok(out)
    }

    // ------------------------------------------------------------ policies

    fn system_view(p: &SystemPolicy) -> PolicyView {
        PolicyView {
            name: p.name.to_string(),
            policy_type: PolicyType::System,
            description: p.name.to_string(),
            default_version: p.version.to_string(),
            create_date: 0,
            update_date: 0,
            versions: vec![PolicyVersion {
                version_id: p.version.to_string(),
                document: p.document.to_string(),
                create_date: 0,
            }],
            target: system_target(p),
        }
    }

    fn custom_view(e: Entity<PolicyBody>) -> PolicyView {
        PolicyView {
            name: e.name,
            policy_type: PolicyType::Custom,
            description: e.body.description,
            default_version: e.body.default_version,
            create_date: e.body.create_date,
            update_date: e.body.update_date,
            versions: e.body.versions,
            target: e.id,
        }
    }

    /// A policy by type and name.
    pub async fn get_policy(
        &self,
        caller: &Caller,
        policy_type: PolicyType,
        name: &str,
    ) -> Result<PolicyView, KmsError> {
        match policy_type {
            PolicyType::System => SystemPolicy::by_name(name)
                .map(Self::system_view)
                .ok_or_else(|| err::not_exist("Policy")),
            PolicyType::Custom => {
                let e = self
                    .entity(&caller.account_id, RamKind::Policy, name, "Policy")
                    .await?;
                Ok(Self::custom_view(e))
            }
        }
    }

    /// The policies of a type (both with None), system ones first.
    pub async fn list_policies(
        &self,
        caller: &Caller,
        policy_type: Option<PolicyType>,
    ) -> Result<Vec<PolicyView>, KmsError> {
        let mut out = Vec::new();
        if policy_type != Some(PolicyType::Custom) {
            out.extend(SYSTEM_POLICIES.iter().map(Self::system_view));
        }
        if policy_type != Some(PolicyType::System) {
            for e in self
                .list_entities::<PolicyBody>(&caller.account_id, RamKind::Policy)
                .await?
            {
                out.push(Self::custom_view(e));
            }
        }
        Ok(out)
    }

    /// How many principals a policy is attached to.
    pub async fn attachment_count(&self, p: &PolicyView) -> Result<usize, KmsError> {
        Ok(self
            .store
            .list_ram_links(RamLinkKind::Attachment, None, Some(&p.target))
            .await?
            .len())
    }

    pub async fn create_policy(
        &self,
        caller: &Caller,
        name: &str,
        document: &str,
        description: Option<String>,
    ) -> Result<PolicyView, KmsError> {
        check_policy_name(name)?;
        let description = description.unwrap_or_default();
        check_len(
            "Description",
            &description,
            1024,
            "InvalidParameter.Description.Length",
        )?;
        Policy::parse(document, PolicyKind::Identity).map_err(policy_error)?;
        let now = self.now();
        let body = PolicyBody {
            description,
            default_version: "v1".into(),
            next_version: 2,
            versions: vec![PolicyVersion {
                version_id: "v1".into(),
                document: document.to_string(),
                create_date: now,
            }],
            create_date: now,
            update_date: now,
        };
        // A custom policy may not take a system policy's name.
        if SystemPolicy::by_name(name).is_some() {
            return Err(err::already_exists("Policy"));
        }
        let id = self
            .insert_entity(caller, RamKind::Policy, name, &body, MAX_POLICIES, "Policy")
            .await?;
        Ok(Self::custom_view(Entity {
            id,
            name: name.to_string(),
            body,
        }))
    }

    pub async fn delete_policy(
        &self,
        caller: &Caller,
        name: &str,
        cascading: bool,
    ) -> Result<(), KmsError> {
        self.modify(
            &caller.account_id,
            RamKind::Policy,
            name,
            "Policy",
            move |_, b: &mut PolicyBody, usage| {
                if !usage.links.is_empty() {
                    return Err(err::conflict(
                        "DeleteConflict.Policy.User",
                        "The policy CAN NOT been attached to any user while deleting the policy.",
                    ));
                }
                if b.versions.len() > 1 && !cascading {
                    return Err(err::conflict(
                        "DeleteConflict.Policy.Version",
                        "The policy CAN NOT has any version except the default version.",
                    ));
                }
                Ok(RamWrite::Delete)
            },
        )
        .await
        .map(|_| ())
    }

    pub async fn create_policy_version(
        &self,
        caller: &Caller,
        name: &str,
        document: &str,
        set_default: bool,
        rotate: bool,
    ) -> Result<(PolicyVersion, bool), KmsError> {
        Policy::parse(document, PolicyKind::Identity).map_err(policy_error)?;
        let now = self.now();
        let doc = document.to_string();
        let e = self
            .modify(
                &caller.account_id,
                RamKind::Policy,
                name,
                "Policy",
                move |_, b: &mut PolicyBody, _| {
                    if b.versions.len() >= MAX_POLICY_VERSIONS {
                        let oldest = b
                            .versions
                            .iter()
                            .position(|v| v.version_id != b.default_version);
                        match (rotate, oldest) {
                            (true, Some(i)) => {
                                b.versions.remove(i);
                            }
                            _ => {
                                return Err(err::conflict(
                                    "LimitExceeded.Policy.Version",
                                    "The count of policy version beyond the current limits.",
                                ))
                            }
                        }
                    }
                    let id = format!("v{}", b.next_version);
                    b.next_version += 1;
                    b.versions.push(PolicyVersion {
                        version_id: id.clone(),
                        document: doc,
                        create_date: now,
                    });
                    if set_default {
                        b.default_version = id;
                    }
                    b.update_date = now;
                    Ok(RamWrite::Update)
                },
            )
            .await?;
        let v = e
            .body
            .versions
            .last()
            .cloned()
            .ok_or_else(|| KmsError::internal("no version"))?;
        let is_default = v.version_id == e.body.default_version;
        Ok((v, is_default))
    }

    pub async fn get_policy_version(
        &self,
        caller: &Caller,
        policy_type: PolicyType,
        name: &str,
        version: &str,
    ) -> Result<(PolicyVersion, bool), KmsError> {
        check_version_id(version)?;
        let p = self.get_policy(caller, policy_type, name).await?;
        let v = p
            .versions
            .iter()
            .find(|v| v.version_id == version)
            .cloned()
            .ok_or_else(no_version)?;
        let is_default = v.version_id == p.default_version;
        Ok((v, is_default))
    }

    pub async fn set_default_policy_version(
        &self,
        caller: &Caller,
        name: &str,
        version: &str,
    ) -> Result<(), KmsError> {
        check_version_id(version)?;
        let version = version.to_string();
        let now = self.now();
        self.modify(
            &caller.account_id,
            RamKind::Policy,
            name,
            "Policy",
            move |_, b: &mut PolicyBody, _| {
                if !b.versions.iter().any(|v| v.version_id == version) {
                    return Err(no_version());
                }
                b.default_version = version;
                b.update_date = now;
                Ok(RamWrite::Update)
            },
        )
        .await
        .map(|_| ())
    }

    pub async fn delete_policy_version(
        &self,
        caller: &Caller,
        name: &str,
        version: &str,
    ) -> Result<(), KmsError> {
        check_version_id(version)?;
        let version = version.to_string();
        self.modify(
            &caller.account_id,
            RamKind::Policy,
            name,
            "Policy",
            move |_, b: &mut PolicyBody, _| {
                let i = b
                    .versions
                    .iter()
                    .position(|v| v.version_id == version)
                    .ok_or_else(no_version)?;
                if b.default_version == version {
                    return Err(err::conflict(
                        "DeleteConflict.Policy.Version.Default",
                        "The default policy version CAN NOT been deleted directly.",
                    ));
                }
                b.versions.remove(i);
                Ok(RamWrite::Update)
            },
        )
        .await
        .map(|_| ())
    }

    // ------------------------------------------------------------ attachments

    async fn holder_id(&self, caller: &Caller, h: Holder, name: &str) -> Result<String, KmsError> {
        Ok(self
            .store
            .get_ram_entity(&caller.account_id, h.kind(), name)
            .await?
            .ok_or_else(|| err::not_exist(h.word()))?
            .entity_id)
    }

    pub async fn attach_policy(
        &self,
        caller: &Caller,
        h: Holder,
        name: &str,
        policy_type: PolicyType,
        policy: &str,
    ) -> Result<(), KmsError> {
        let holder = self.holder_id(caller, h, name).await?;
        let p = self.get_policy(caller, policy_type, policy).await?;
        let max = match policy_type {
            PolicyType::System => MAX_SYSTEM_ATTACHMENTS,
            PolicyType::Custom => MAX_CUSTOM_ATTACHMENTS,
        };
        let link = RamLinkRecord {
            kind: RamLinkKind::Attachment.as_str().into(),
            source_id: holder,
            target_id: p.target,
            account_id: caller.account_id.clone(),
            created: self.now(),
        };
        match self.store.add_ram_link(link, max).await {
            Ok(()) => Ok(()),
            Err(StoreError::Duplicate(_)) => Err(match h {
                Holder::User => err::conflict(
                    "EntityAlreadyExists.User.Policy",
                    "The user has already been attached this policy.",
                ),
                Holder::Group => err::conflict(
                    "EntityAlreadyExists.Group.Policy",
                    "The group has already been attached this policy.",
                ),
                Holder::Role => err::conflict(
                    "EntityAlreadyExists.Role.Policy",
                    "The policy has already been attached to the role.",
                ),
            }),
            Err(StoreError::LimitExceeded(_)) => Err(match h {
                Holder::User => err::conflict(
                    "LimitExceeded.User.Policy",
                    "The policy count of the user attached policies beyond the current limits.",
                ),
                Holder::Group => err::conflict(
                    "LimitExceeded.Group.Policy",
                    "The policy count of the group beyond the current limits.",
                ),
                Holder::Role => err::conflict(
                    "LimitExceeded.Role.Policy",
                    "The count of policies attached to the role beyond the current limits.",
                ),
            }),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn detach_policy(
        &self,
        caller: &Caller,
        h: Holder,
        name: &str,
        policy_type: PolicyType,
        policy: &str,
    ) -> Result<(), KmsError> {
        let holder = self.holder_id(caller, h, name).await?;
        let p = self.get_policy(caller, policy_type, policy).await?;
        if self
            .store
            .remove_ram_link(RamLinkKind::Attachment, &holder, &p.target)
            .await?
        {
            return Ok(());
        }
        Err(match h {
            Holder::User => err::not_found(
                "EntityNotExist.User.Policy",
                "The indicate policy of the user does not exist.",
            ),
            Holder::Group => err::not_found(
                "EntityNotExist.Group.Policy",
                "The indicate policy attached to the group does not exist.",
            ),
            Holder::Role => err::not_found(
                "EntityNotExist.Role.Policy",
                "The indicate policy attached to the role does not exist.",
            ),
        })
    }

    /// The policy behind an attachment target.
    async fn target_policy(&self, target: &str) -> Result<Option<PolicyView>, KmsError> {
        if let Some(name) = target.strip_prefix("system:") {
            return Ok(SystemPolicy::by_name(name).map(Self::system_view));
        }
        match self.store.get_ram_entity_by_id(target).await? {
            Some(e) => Ok(Some(Self::custom_view(decode(e)?))),
            None => Ok(None),
        }
    }

    /// The policies attached directly to an entity (by id), with attach dates.
    pub async fn attached_to(&self, holder_id: &str) -> Result<Vec<Attached>, KmsError> {
        let mut out = Vec::new();
        for l in self
            .store
            .list_ram_links(RamLinkKind::Attachment, Some(holder_id), None)
            .await?
        {
            if let Some(policy) = self.target_policy(&l.target_id).await? {
                out.push(Attached {
                    policy,
                    attach_date: l.created,
                });
            }
        }
        Ok(out)
    }

    pub async fn policies_for(
        &self,
        caller: &Caller,
        h: Holder,
        name: &str,
    ) -> Result<Vec<Attached>, KmsError> {
        let id = self.holder_id(caller, h, name).await?;
        self.attached_to(&id).await
    }

    /// The entities a policy is attached to: (kind, entity record, attach date).
    pub async fn entities_for_policy(
        &self,
        p: &PolicyView,
    ) -> Result<Vec<(RamEntityRecord, i64)>, KmsError> {
        let mut out = Vec::new();
        for l in self
            .store
            .list_ram_links(RamLinkKind::Attachment, None, Some(&p.target))
            .await?
        {
            if let Some(e) = self.store.get_ram_entity_by_id(&l.source_id).await? {
                out.push((e, l.created));
            }
        }
        Ok(out)
    }

    // ------------------------------------------------------------ roles

    pub async fn create_role(
        &self,
        caller: &Caller,
        name: &str,
        trust_policy: &str,
        description: Option<String>,
        max_session_duration: Option<i64>,
    ) -> Result<Entity<RoleBody>, KmsError> {
        check_role_name(name)?;
        Policy::parse(trust_policy, PolicyKind::Trust).map_err(policy_error)?;
        let description = description.unwrap_or_default();
        check_len(
            "Description",
            &description,
            1024,
            "InvalidParameter.Description.Length",
        )?;
        let now = self.now();
        let body = RoleBody {
            description,
            trust_policy: trust_policy.to_string(),
            max_session_duration: max_session_duration.unwrap_or(3600),
            create_date: now,
            update_date: now,
        };
        let id = self
            .insert_entity(caller, RamKind::Role, name, &body, MAX_ROLES, "Role")
            .await?;
        Ok(Entity {
            id,
            name: name.to_string(),
            body,
        })
    }

    pub async fn update_role(
        &self,
        caller: &Caller,
        name: &str,
        trust_policy: Option<String>,
        description: Option<String>,
        max_session_duration: Option<i64>,
    ) -> Result<Entity<RoleBody>, KmsError> {
        if let Some(t) = &trust_policy {
            Policy::parse(t, PolicyKind::Trust).map_err(policy_error)?;
        }
        if let Some(d) = &description {
            check_len(
                "NewDescription",
                d,
                1024,
                "InvalidParameter.Description.Length",
            )?;
        }
        let now = self.now();
        self.modify(
            &caller.account_id,
            RamKind::Role,
            name,
            "Role",
            move |_, b: &mut RoleBody, _| {
                if let Some(t) = trust_policy {
                    b.trust_policy = t;
                }
                if let Some(d) = description {
                    b.description = d;
                }
                if let Some(m) = max_session_duration {
                    b.max_session_duration = m;
                }
                b.update_date = now;
                Ok(RamWrite::Update)
            },
        )
        .await
    }

    pub async fn list_roles(&self, caller: &Caller) -> Result<Vec<Entity<RoleBody>>, KmsError> {
        self.list_entities(&caller.account_id, RamKind::Role).await
    }

    pub async fn delete_role(&self, caller: &Caller, name: &str) -> Result<(), KmsError> {
        self.modify(
            &caller.account_id,
            RamKind::Role,
            name,
            "Role",
            |_, _: &mut RoleBody, usage| {
                if !usage.links.is_empty() {
                    return Err(err::conflict(
                        "DeleteConflict.Role.Policy",
                        "The role CAN NOT has any attached policy while deleting the role.",
                    ));
                }
                Ok(RamWrite::Delete)
            },
        )
        .await
        .map(|_| ())
    }

    // ------------------------------------------------------------ policies in force

    /// The identity policies of a user (its own and its groups') or a role, compiled. A
    /// stored policy that no longer parses is left out (it grants nothing).
    async fn compile_identity(&self, holder_id: &str, user: bool) -> Result<Vec<Policy>, KmsError> {
        let mut holders = vec![holder_id.to_string()];
        if user {
            for l in self
                .store
                .list_ram_links(RamLinkKind::Member, Some(holder_id), None)
                .await?
            {
                holders.push(l.target_id);
            }
        }
        let mut out = Vec::new();
        for h in holders {
            for a in self.attached_to(&h).await? {
                let doc = a
                    .policy
                    .versions
                    .iter()
                    .find(|v| v.version_id == a.policy.default_version);
                if let Some(v) = doc {
                    match Policy::parse(&v.document, PolicyKind::Identity) {
                        Ok(p) => out.push(p),
                        Err(e) => {
                            tracing::warn!(policy = %a.policy.name, error = %e, "stored policy does not parse; ignored")
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// The compiled policies of a (non-root) principal, from the cache while RAM data is
    /// unchanged.
    pub async fn policies_of(&self, principal: &Principal) -> Result<Arc<Compiled>, KmsError> {
        let key = match principal {
            Principal::Root => return Ok(Arc::new(Compiled::default())),
            Principal::User { user_id, .. } => user_id.as_str(),
            Principal::Role { access_key_id, .. } => access_key_id.as_str(),
        };
        let epoch = self.store.ram_epoch();
        if let Some(e) = epoch {
            if let Some(c) = self.policies.get(key, e) {
                return Ok(c);
            }
        }
        let compiled = match principal {
            Principal::Root => Compiled::default(),
            Principal::User { user_id, .. } => {
                Compiled::new(self.compile_identity(user_id, true).await?, None)
            }
            Principal::Role {
                role_id,
                session_policy,
                ..
            } => {
                let session = match session_policy {
                    Some(text) => Some(
                        Policy::parse(text, PolicyKind::Session)
                            .map_err(|e| KmsError::internal(format!("session policy: {e}")))?,
                    ),
                    None => None,
                };
                Compiled::new(self.compile_identity(role_id, false).await?, session)
            }
        };
        let compiled = Arc::new(compiled);
        if let Some(e) = epoch {
            self.policies.put(key, e, compiled.clone());
        }
        Ok(compiled)
    }
}

fn no_login_profile() -> KmsError {
    err::not_found(
        "EntityNotExist.User.LoginProfile",
        "The user login profile does not exist.",
    )
}

fn no_version() -> KmsError {
    err::not_found(
        "EntityNotExist.Policy.Version",
        "The policy version does not exist.",
    )
}

fn check_user_fields(f: &UserFields, prefix: &str) -> Result<(), KmsError> {
    let new = !prefix.is_empty();
    if let Some(d) = &f.display_name {
        let n = d.chars().count();
        if n == 0 || n > 128 {
            return Err(if new {
                err::length("InvalidParameter.NewDisplayName.Length", "NewDisplayName")
            } else {
                err::length("InvalidParameter.DisplayName.Length", "DisplayName")
            });
        }
    }
    if let Some(c) = &f.comments {
        if c.chars().count() > 128 {
            return Err(if new {
                err::length("InvalidParameter.NewComments.Length", "NewComments")
            } else {
                err::length("InvalidParameter.Comments.Length", "Comments")
            });
        }
    }
    if let Some(e) = &f.email {
        let ok = e.len() <= 128
            && e.split_once('@')
                .is_some_and(|(a, b)| !a.is_empty() && b.contains('.'));
        if !ok {
            return Err(if new {
                err::format("InvalidParameter.NewEmail.Format", "NewEmail")
            } else {
                err::format("InvalidParameter.Email.Format", "Email")
            });
        }
    }
    if let Some(m) = &f.mobile_phone {
        let ok = m.split_once('-').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.len() <= 4
                && b.len() <= 20
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
        if !ok {
            return Err(if new {
                err::format("InvalidParameter.NewMobilePhone.Format", "NewMobilePhone")
            } else {
                err::format("InvalidParameter.MobilePhone.Format", "MobilePhone")
            });
        }
    }
    Ok(())
}

/// The DeleteConflict error of the first link kind in `refusals` that the entity being
/// deleted still has (RAM refuses to delete a user, group or role that is still linked).
fn refuse_linked(
    usage: &RamUsage,
    refusals: &[(RamLinkKind, &'static str, &'static str)],
) -> Result<(), KmsError> {
    for (kind, code, message) in refusals {
        if usage.links.iter().any(|l| l.kind == kind.as_str()) {
            return Err(err::conflict(code, message));
        }
    }
    Ok(())
}
