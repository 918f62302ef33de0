//! The STS actions (`Version=2015-04-01`, reference alibaba-ram-sts.md §2).

use serde_json::{json, Value};

use crate::action::sts::Action;
use crate::error::KmsError;
use crate::policy::Context;
use crate::protocol::params::Params;
use crate::service::ram::Principal;
use crate::service::sts::AssumeRoleInput;
use crate::service::{Caller, Kms};
use crate::timefmt::format_unix;

/// Runs one STS action for an authenticated caller whose own permission was checked;
/// `ctx` is the request's condition context (the trust policy's conditions see it).
pub async fn dispatch(
    kms: &Kms,
    caller: &Caller,
    principal: &Principal,
    action: Action,
    p: &Params,
    ctx: &Context,
) -> Result<Value, KmsError> {
    match action {
        Action::AssumeRole => {
            let duration = match p.opt("DurationSeconds") {
                Some(v) => Some(v.parse::<i64>().map_err(|_| {
                    KmsError::wire(
                        "InvalidParameter.DurationSeconds",
                        400,
                        "The Min/Max value of DurationSeconds is 15min/1hr.",
                    )
                })?),
                None => None,
            };
            let input = AssumeRoleInput {
                role_arn: p.required("RoleArn")?.to_string(),
                session_name: p.required("RoleSessionName")?.to_string(),
                duration,
                policy: p.opt("Policy").map(str::to_string),
                external_id: p.opt("ExternalId").map(str::to_string),
            };
            let a = kms.assume_role(caller, principal, input, ctx).await?;
            Ok(json!({
                "AssumedRoleUser": {"Arn": a.arn, "AssumedRoleId": a.assumed_role_id},
                "Credentials": {
                    "AccessKeyId": a.access_key_id,
                    "AccessKeySecret": a.access_key_secret,
                    "SecurityToken": a.security_token,
                    "Expiration": format_unix(a.expiration),
                },
            }))
        }
        Action::GetCallerIdentity => {
            let account = caller.account_id.as_str();
            let arn = principal.arn(account);
            Ok(match principal {
                Principal::Root => json!({
                    "IdentityType": "Account",
                    "AccountId": account,
                    "PrincipalId": account,
                    "UserId": account,
                    "Arn": arn,
                }),
                Principal::User { user_id, .. } => json!({
                    "IdentityType": "RAMUser",
                    "AccountId": account,
                    "PrincipalId": user_id,
                    "UserId": user_id,
                    "Arn": arn,
                }),
                Principal::Role {
                    role_id,
                    session_name,
                    ..
                } => json!({
                    "IdentityType": "AssumedRoleUser",
                    "AccountId": account,
                    "PrincipalId": format!("{role_id}:{session_name}"),
                    "RoleId": role_id,
                    "Arn": arn,
                }),
            })
        }
    }
}
