//! Resource ARNs and the checks of an action (reference §5.1, §5.2 for KMS, §3.11 for RAM
//! and STS), built from the `ram` column of each product's action table
//! ([`crate::action::kms`], [`crate::action::ram`], [`crate::action::sts`]).

use crate::action::{ApiAction, Resource};

use super::eval::Check;

/// Where the resources live: the server's region and the owner account (§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub account: &'a str,
}

impl Scope<'_> {
    fn arn(&self, relative: &str) -> String {
        format!("acs:kms:{}:{}:{relative}", self.region, self.account)
    }

    /// `acs:kms:<region>:<account>:key/<KeyId>`
    pub fn key(&self, key_id: &str) -> String {
        self.arn(&format!("key/{key_id}"))
    }

    /// `acs:kms:<region>:<account>:key`
    pub fn key_container(&self) -> String {
        self.arn("key")
    }

    /// `acs:kms:<region>:<account>:alias/<name>`; `alias` may be given with or without its
    /// `alias/` prefix (the wire's `AliasName` has it).
    pub fn alias(&self, alias: &str) -> String {
        let name = alias.strip_prefix("alias/").unwrap_or(alias);
        self.arn(&format!("alias/{name}"))
    }

    /// `acs:kms:<region>:<account>:alias`
    pub fn alias_container(&self) -> String {
        self.arn("alias")
    }

    /// `acs:kms:<region>:<account>:secret/<SecretName>`
    pub fn secret(&self, name: &str) -> String {
        self.arn(&format!("secret/{name}"))
    }

    /// `acs:kms:<region>:<account>:secret`
    pub fn secret_container(&self) -> String {
        self.arn("secret")
    }

    /// `acs:ram::<account>:<relative>`: RAM entities have no region (§1.5; `acs:ram:*:…`
    /// in a policy matches it, `*` matching the empty string).
    pub fn ram(&self, relative: &str) -> String {
        format!("acs:ram::{}:{relative}", self.account)
    }
}

/// The ids a request resolved to. `key_id` is the key (after resolving an alias or ARN, §5.2);
/// `destination_key_id` the second key of ReEncrypt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ids<'a> {
    pub key_id: Option<&'a str>,
    pub destination_key_id: Option<&'a str>,
    pub alias_name: Option<&'a str>,
    pub secret_name: Option<&'a str>,
    /// RAM: the user named (or the calling user), group, role, policy.
    pub user_name: Option<&'a str>,
    pub group_name: Option<&'a str>,
    pub role_name: Option<&'a str>,
    pub policy_name: Option<&'a str>,
    /// `PolicyType=System`: the policy's ARN is `acs:ram::system:policy/<name>`.
    pub system_policy: bool,
    /// STS AssumeRole's `RoleArn`.
    pub role_arn: Option<&'a str>,
}

/// A resource kind of the table whose id the request did not resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingId {
    pub action: ApiAction,
    pub resource: Resource,
}

/// The RAM checks of `action` on the resolved ids, in table order (ReEncrypt: ReEncryptFrom
/// on the source key, then ReEncryptTo on the destination key). Empty: any authenticated
/// caller may call it (DescribeRegions).
pub fn checks(
    action: impl Into<ApiAction>,
    scope: Scope<'_>,
    ids: Ids<'_>,
) -> Result<Vec<Check>, MissingId> {
    let action: ApiAction = action.into();
    let mut keys = [ids.key_id, ids.destination_key_id].into_iter();
    action
        .ram()
        .iter()
        .map(|c| {
            let missing = MissingId {
                action,
                resource: c.resource,
            };
            let resource = match c.resource {
                Resource::Key => scope.key(keys.next().flatten().ok_or(missing)?),
                Resource::KeyContainer => scope.key_container(),
                Resource::Alias => scope.alias(ids.alias_name.ok_or(missing)?),
                Resource::AliasContainer => scope.alias_container(),
                Resource::Secret => scope.secret(ids.secret_name.ok_or(missing)?),
                Resource::SecretContainer => scope.secret_container(),
                Resource::Any => "*".to_string(),
                Resource::User => scope.ram(&format!("user/{}", ids.user_name.ok_or(missing)?)),
                Resource::Group => scope.ram(&format!("group/{}", ids.group_name.ok_or(missing)?)),
                Resource::Role => scope.ram(&format!("role/{}", ids.role_name.ok_or(missing)?)),
                Resource::Policy => {
                    let name = ids.policy_name.ok_or(missing)?;
                    if ids.system_policy {
                        format!("acs:ram::system:policy/{name}")
                    } else {
                        scope.ram(&format!("policy/{name}"))
                    }
                }
                Resource::AnyUser => scope.ram("user/*"),
                Resource::AnyGroup => scope.ram("group/*"),
                Resource::AnyRole => scope.ram("role/*"),
                Resource::AnyPolicy => scope.ram("policy/*"),
                Resource::RoleArn => ids.role_arn.ok_or(missing)?.to_string(),
            };
            Ok(Check {
                action: c.action.to_string(),
                resource,
            })
        })
        .collect()
}
