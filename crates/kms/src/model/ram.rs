//! RAM identities as the store keeps them (issue 16): users, groups, roles and custom
//! policies are *entities* of an account, each one row whose typed body the service
//! serialises as JSON ([`crate::service::ram`] owns the body types); memberships and policy
//! attachments are *links* between entity ids; STS sessions are rows of their own.

/// The kind of an entity. Names are unique per account and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RamKind {
    User,
    Group,
    Role,
    /// A custom policy with its versions.
    Policy,
}

impl RamKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            RamKind::User => "user",
            RamKind::Group => "group",
            RamKind::Role => "role",
            RamKind::Policy => "policy",
        }
    }
}

/// The kind of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RamLinkKind {
    /// user id → group id
    Member,
    /// user, group or role id → policy (a custom policy's entity id, or `system:<Name>`)
    Attachment,
}

impl RamLinkKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            RamLinkKind::Member => "member",
            RamLinkKind::Attachment => "attach",
        }
    }
}

/// One entity. `entity_id` is server-assigned (a decimal string, as RAM's ids are) and never
/// changes; `name` may (UpdateUser's NewUserName).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamEntityRecord {
    pub entity_id: String,
    pub account_id: String,
    /// [`RamKind::as_str`]
    pub kind: String,
    pub name: String,
    /// The typed record as JSON.
    pub body: String,
}

/// One link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamLinkRecord {
    /// [`RamLinkKind::as_str`]
    pub kind: String,
    pub source_id: String,
    pub target_id: String,
    pub account_id: String,
    pub created: i64,
}

/// A session of an assumed role: the temporary access key (`STS.…`), its sealed secret,
/// the SHA-256 (hex) of its security token, the role (by id: a deleted role ends the
/// session), the optional session policy and the expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsSessionRecord {
    pub access_key_id: String,
    /// The role's account (the session acts in it).
    pub account_id: String,
    pub role_id: String,
    pub session_name: String,
    pub sealed_secret: Vec<u8>,
    pub token_hash: String,
    pub session_policy: Option<String>,
    /// Who assumed the role (user or role ARN), for the audit trail.
    pub caller_arn: String,
    pub expiration: i64,
    pub creation_date: i64,
}
