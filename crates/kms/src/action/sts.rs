//! The STS product (`Version=2015-04-01`, reference alibaba-ram-sts.md §2): AssumeRole
//! (checked as `sts:AssumeRole` on the role's ARN, plus the role's trust policy) and
//! GetCallerIdentity (no check).

use super::{ParamKind, ParamSpec};

const fn req(name: &'static str, help: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        required: true,
        help,
        kind: ParamKind::Single,
    }
}
const fn opt(name: &'static str, help: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        required: false,
        help,
        kind: ParamKind::Single,
    }
}

actions! {
    product: Sts, version: "2015-04-01", ram: "sts";

    AssumeRole {
        help: "Get temporary credentials of a RAM role (STS.… access key, secret, security token).",
        params: [
            req("RoleArn", "acs:ram::<account>:role/<RoleName>"),
            req("RoleSessionName", "2-64 chars [A-Za-z0-9.@_-]"),
            opt("DurationSeconds", "900 to the role's MaxSessionDuration (default 3600)"),
            opt("Policy", "session policy JSON: can only narrow the role's permissions"),
            opt("ExternalId", "checked against the trust policy's sts:ExternalId"),
        ],
        throttle: Management,
        changes_state: true,
        state: none,
        ram: [RoleArn],
    },
    GetCallerIdentity {
        help: "Show who the credentials belong to.",
        params: [],
        throttle: Management,
        changes_state: false,
        state: none,
        ram: [],
    },
}
