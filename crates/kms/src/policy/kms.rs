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

/// A resource ARN as the pieces it is made of (`acs:kms:`, region, `:`, account, `:key/`,
/// key id), so a request's ARN is matched against a policy's literal resources without
/// being concatenated (reference §5.2: the same text as [`Scope::key`] and the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    parts: [&'a str; 6],
}

impl<'a> Arn<'a> {
    fn of(pieces: &[&'a str]) -> Arn<'a> {
        let mut parts = [""; 6];
        for (slot, p) in parts.iter_mut().zip(pieces) {
            *slot = p;
        }
        Arn { parts }
    }

    /// An ARN of up to six pieces (unused ones empty).
    pub fn from_parts(parts: [&'a str; 6]) -> Arn<'a> {
        Arn { parts }
    }

    /// An ARN given whole (`*`, a `RoleArn`).
    pub fn whole(text: &'a str) -> Arn<'a> {
        Arn::of(&[text])
    }

    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| p.is_empty())
    }

    /// Whether the ARN is exactly `text`.
    pub fn eq_str(&self, text: &str) -> bool {
        if text.len() != self.len() {
            return false;
        }
        let mut rest = text.as_bytes();
        for p in self.parts {
            match rest.strip_prefix(p.as_bytes()) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        true
    }

    /// The ARN as one string.
    pub fn concat(&self) -> String {
        let mut s = String::with_capacity(self.len());
        for p in self.parts {
            s.push_str(p);
        }
        s
    }
}

impl std::fmt::Display for Arn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.parts.iter().try_for_each(|p| f.write_str(p))
    }
}

/// A [`Check`] borrowing its parts: the table's action name and the resource ARN's pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckRef<'a> {
    pub action: &'a str,
    pub resource: Arn<'a>,
}

impl CheckRef<'_> {
    pub fn to_check(&self) -> Check {
        Check {
            action: self.action.to_string(),
            resource: self.resource.concat(),
        }
    }
}

/// The RAM checks of `action` on the resolved ids, in table order (ReEncrypt: ReEncryptFrom
/// on the source key, then ReEncryptTo on the destination key). Empty: any authenticated
/// caller may call it (DescribeRegions).
pub fn checks(
    action: impl Into<ApiAction>,
    scope: Scope<'_>,
    ids: Ids<'_>,
) -> Result<Vec<Check>, MissingId> {
    let mut out = Vec::new();
    check_refs(action, scope, ids, &mut out)?;
    Ok(out.iter().map(CheckRef::to_check).collect())
}

/// [`checks`] without allocating: the checks are appended to `out` as [`CheckRef`]s
/// borrowing `scope` and `ids`.
pub fn check_refs<'a>(
    action: impl Into<ApiAction>,
    scope: Scope<'a>,
    ids: Ids<'a>,
    out: &mut Vec<CheckRef<'a>>,
) -> Result<(), MissingId> {
    let action: ApiAction = action.into();
    let mut keys = [ids.key_id, ids.destination_key_id].into_iter();
    let (region, account) = (scope.region, scope.account);
    let kms = |relative: &[&'a str]| {
        let mut pieces: [&'a str; 6] = ["acs:kms:", region, ":", account, ":", ""];
        for (slot, p) in pieces[4..].iter_mut().zip(relative) {
            *slot = p;
        }
        Arn { parts: pieces }
    };
    let ram = |kind: &'a str, name: &'a str| Arn::of(&["acs:ram::", account, kind, name]);
    for c in action.ram() {
        let missing = MissingId {
            action,
            resource: c.resource,
        };
        let resource = match c.resource {
            Resource::Key => kms(&[":key/", keys.next().flatten().ok_or(missing)?]),
            Resource::KeyContainer => kms(&[":key"]),
            Resource::Alias => {
                let alias = ids.alias_name.ok_or(missing)?;
                kms(&[":alias/", alias.strip_prefix("alias/").unwrap_or(alias)])
            }
            Resource::AliasContainer => kms(&[":alias"]),
            Resource::Secret => kms(&[":secret/", ids.secret_name.ok_or(missing)?]),
            Resource::SecretContainer => kms(&[":secret"]),
            Resource::Any => Arn::whole("*"),
            Resource::User => ram(":user/", ids.user_name.ok_or(missing)?),
            Resource::Group => ram(":group/", ids.group_name.ok_or(missing)?),
            Resource::Role => ram(":role/", ids.role_name.ok_or(missing)?),
            Resource::Policy => {
                let name = ids.policy_name.ok_or(missing)?;
                if ids.system_policy {
                    Arn::of(&["acs:ram::system:policy/", name])
                } else {
                    ram(":policy/", name)
                }
            }
            Resource::AnyUser => ram(":user/*", ""),
            Resource::AnyGroup => ram(":group/*", ""),
            Resource::AnyRole => ram(":role/*", ""),
            Resource::AnyPolicy => ram(":policy/*", ""),
            Resource::RoleArn => Arn::whole(ids.role_arn.ok_or(missing)?),
        };
        out.push(CheckRef {
            action: c.action,
            resource,
        });
    }
    Ok(())
}
