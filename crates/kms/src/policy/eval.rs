//! The evaluation algorithm (reference §4.5).
//!
//! Not covered here, by design: the Alibaba Cloud account itself (root AK) is always allowed
//! (§4.5 first line), which the caller decides before asking; resource-based KMS key
//! policies (slot B) do not exist on this server yet.

use super::condition::Context;
use super::document::{Effect, Policy, PrincipalKind, Statement};
use super::kms::{Arn, CheckRef};

/// The outcome, named as RAM names it in `AccessDeniedDetail.NoPermissionType` (§5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Some Allow statement matched and no Deny did.
    Allow,
    /// A Deny statement matched: final, whatever else allows.
    ExplicitDeny,
    /// Nothing allowed it.
    ImplicitDeny,
}

impl Decision {
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "Allow",
            Decision::ExplicitDeny => "ExplicitDeny",
            Decision::ImplicitDeny => "ImplicitDeny",
        }
    }

    pub const fn is_allow(self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// One authorisation check: a RAM action (`kms:Encrypt`) on one resource ARN (`*` for an
/// action without a resource of its own, §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Check {
    pub action: String,
    pub resource: String,
}

impl Check {
    pub fn new(action: &str, resource: &str) -> Check {
        Check {
            action: action.to_string(),
            resource: resource.to_string(),
        }
    }
}

/// The policies in force for a principal: its identity policies (a user's own and its
/// groups', or a role's) and, for a role session, the session policy that can only narrow.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicySet<'a> {
    pub identity: &'a [Policy],
    pub session: Option<&'a Policy>,
}

impl<'a> PolicySet<'a> {
    pub fn new(identity: &'a [Policy]) -> PolicySet<'a> {
        PolicySet {
            identity,
            session: None,
        }
    }

    pub fn with_session(mut self, session: &'a Policy) -> PolicySet<'a> {
        self.session = Some(session);
        self
    }

    /// Decides a request made of several checks: allowed only if every check is (§4.5,
    /// \[inference\] for several resources); an explicit deny on any check wins.
    pub fn decide(&self, checks: &[Check], ctx: &Context) -> Decision {
        let refs: Vec<CheckRef<'_>> = checks.iter().map(Check::as_ref).collect();
        self.decide_refs(&refs, ctx)
    }

    /// [`PolicySet::decide`] of borrowed checks (the request path: nothing allocated unless
    /// a resource pattern has a wildcard).
    pub fn decide_refs(&self, checks: &[CheckRef<'_>], ctx: &Context) -> Decision {
        let mut all = Decision::Allow;
        for c in checks {
            match self.decide_one_ref(c, ctx) {
                Decision::ExplicitDeny => return Decision::ExplicitDeny,
                Decision::ImplicitDeny => all = Decision::ImplicitDeny,
                Decision::Allow => {}
            }
        }
        if checks.is_empty() {
            // Nothing to check means nothing was granted. Actions without a RAM check
            // (DescribeRegions) are the caller's to let through without asking.
            return Decision::ImplicitDeny;
        }
        all
    }

    /// One check: the session policy first, which must allow; then the identity policies.
    pub fn decide_one(&self, check: &Check, ctx: &Context) -> Decision {
        self.decide_one_ref(&check.as_ref(), ctx)
    }

    /// [`PolicySet::decide_one`] of a borrowed check.
    pub fn decide_one_ref(&self, check: &CheckRef<'_>, ctx: &Context) -> Decision {
        if let Some(s) = self.session {
            let d = basic_ref(std::slice::from_ref(s), check, ctx);
            if d != Decision::Allow {
                return d;
            }
        }
        basic_ref(self.identity, check, ctx)
    }
}

impl Check {
    /// The check as a [`CheckRef`] (its resource as one piece).
    pub fn as_ref(&self) -> CheckRef<'_> {
        CheckRef {
            action: &self.action,
            resource: Arn::whole(&self.resource),
        }
    }
}

/// The basic evaluation (§4.5): any matching Deny ⇒ explicit deny; else any matching Allow ⇒
/// allow; else implicit deny. Statement order and policy order do not matter.
pub fn basic(policies: &[Policy], check: &Check, ctx: &Context) -> Decision {
    basic_ref(policies, &check.as_ref(), ctx)
}

/// [`basic`] of a borrowed check: the action is folded while it is compared, the resource
/// compared piecewise (concatenated once if some pattern has a wildcard).
pub fn basic_ref(policies: &[Policy], check: &CheckRef<'_>, ctx: &Context) -> Decision {
    let mut joined = None;
    let mut allowed = false;
    for st in policies.iter().flat_map(|p| &p.statements) {
        if statement_matches(st, check, &mut joined, ctx) {
            match st.effect {
                Effect::Deny => return Decision::ExplicitDeny,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

fn statement_matches(
    st: &Statement,
    check: &CheckRef<'_>,
    joined: &mut Option<String>,
    ctx: &Context,
) -> bool {
    action_matches(st, check.action)
        && st
            .resources
            .iter()
            .any(|r| r.matches_arn(&check.resource, joined))
        && st.conditions.iter().all(|c| c.holds(ctx))
}

/// `action` as written (compared case-insensitively).
fn action_matches(st: &Statement, action: &str) -> bool {
    st.actions.iter().any(|a| a.matches_folding(action)) != st.not_action
}

/// Who is calling `AssumeRole`, as a trust policy sees it (§4.7): the caller's account root
/// ARN (`acs:ram::<account>:root`) and its own user or role ARN (not the session ARN), or a
/// service name, or a federated provider ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principals: Vec<(PrincipalKind, String)>,
}

impl Caller {
    /// A RAM user `name` of `account`.
    pub fn ram_user(account: &str, name: &str) -> Caller {
        Caller {
            principals: vec![
                (PrincipalKind::Ram, format!("acs:ram::{account}:root")),
                (
                    PrincipalKind::Ram,
                    format!("acs:ram::{account}:user/{name}"),
                ),
            ],
        }
    }

    /// A session of RAM role `name` of `account` (role chaining).
    pub fn ram_role(account: &str, name: &str) -> Caller {
        Caller {
            principals: vec![
                (PrincipalKind::Ram, format!("acs:ram::{account}:root")),
                (
                    PrincipalKind::Ram,
                    format!("acs:ram::{account}:role/{name}"),
                ),
            ],
        }
    }
}

/// The trust policy's basic evaluation for `sts:AssumeRole` by `caller` (the role is the
/// implicit resource). Principals are globbed **[inference, §4.7]**.
pub fn trust(trust: &Policy, caller: &Caller, ctx: &Context) -> Decision {
    let action = "sts:assumerole";
    let mut allowed = false;
    for st in &trust.statements {
        let principal = st.principals.iter().any(|(kind, pat)| {
            caller
                .principals
                .iter()
                .any(|(k, arn)| k == kind && pat.matches(arn))
        });
        if principal && action_matches(st, action) && st.conditions.iter().all(|c| c.holds(ctx)) {
            match st.effect {
                Effect::Deny => return Decision::ExplicitDeny,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// `AssumeRole` of the role `role_arn` (§4.5): the caller's own policies (A) **and** the
/// role's trust policy (B) must both allow; an explicit deny in either is reported as such.
pub fn assume_role(
    caller_policies: &PolicySet<'_>,
    caller: &Caller,
    role_arn: &str,
    trust_policy: &Policy,
    ctx: &Context,
) -> Decision {
    let a = caller_policies.decide_one(&Check::new("sts:AssumeRole", role_arn), ctx);
    let b = trust(trust_policy, caller, ctx);
    match (a, b) {
        (Decision::Allow, Decision::Allow) => Decision::Allow,
        (Decision::ExplicitDeny, _) | (_, Decision::ExplicitDeny) => Decision::ExplicitDeny,
        _ => Decision::ImplicitDeny,
    }
}
