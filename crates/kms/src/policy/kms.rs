//! KMS resource ARNs and the checks of a KMS action (reference §5.1, §5.2), built from the
//! `ram` column of the action table ([`crate::action::kms`]). Not used on the wire yet.

use crate::action::kms::Action;
use crate::action::Resource;

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
}

/// The ids a request resolved to. `key_id` is the key (after resolving an alias or ARN, §5.2);
/// `destination_key_id` the second key of ReEncrypt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ids<'a> {
    pub key_id: Option<&'a str>,
    pub destination_key_id: Option<&'a str>,
    pub alias_name: Option<&'a str>,
    pub secret_name: Option<&'a str>,
}

/// A resource kind of the table whose id the request did not resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingId {
    pub action: Action,
    pub resource: Resource,
}

/// The RAM checks of `action` on the resolved ids, in table order (ReEncrypt: ReEncryptFrom
/// on the source key, then ReEncryptTo on the destination key). Empty: any authenticated
/// caller may call it (DescribeRegions).
pub fn checks(action: Action, scope: Scope<'_>, ids: Ids<'_>) -> Result<Vec<Check>, MissingId> {
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
            };
            Ok(Check {
                action: c.action.to_string(),
                resource,
            })
        })
        .collect()
}
