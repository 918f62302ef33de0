//! The RAM actions (`Version=2015-05-01`, reference alibaba-ram-sts.md §3): parameters in,
//! [`crate::service::ram`] calls, responses as RAM shapes them (double-wrapped lists, JSON
//! booleans and numbers where the SDK models say so, ids as strings, dates without
//! fractions, `IsTruncated`/`Marker` paging).

use serde_json::{json, Map, Value};

use crate::action::ram::Action;
use crate::error::KmsError;
use crate::protocol::params::Params;
use crate::service::ram::{
    Attached, Entity, GroupBody, Holder, LoginProfile, PolicyType, PolicyView, RoleBody, UserBody,
    UserFields,
};
use crate::service::{ram::Principal, Caller, Kms};
use crate::store::RamKind;
use crate::timefmt::format_unix;

fn date(t: i64) -> Value {
    Value::String(format_unix(t))
}

fn opt_string(p: &Params, name: &str) -> Option<String> {
    p.opt(name).map(str::to_string)
}

fn policy_type(p: &Params, name: &str) -> Result<PolicyType, KmsError> {
    PolicyType::parse(p.required(name)?)
}

/// One page by `Marker` (an offset this server issued) and `MaxItems` (1..=`max`, default
/// 100): the items, and the marker of the next page when truncated.
fn page<T>(p: &Params, items: Vec<T>, max: i64) -> Result<(Vec<T>, Option<String>), KmsError> {
    let size = p.int_opt("MaxItems", 1, max)?.unwrap_or(100) as usize;
    let start = match p.opt("Marker") {
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| KmsError::invalid("Marker"))?,
        None => 0,
    };
    let total = items.len();
    let items: Vec<T> = items.into_iter().skip(start).take(size).collect();
    let next = start.saturating_add(size);
    Ok((items, (next < total).then(|| next.to_string())))
}

/// A page of a RAM list: `{"<list>": {"<item>": [...]}, "IsTruncated": …, "Marker": …}`.
fn paged(list: &str, item: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut body = Map::new();
    body.insert(list.into(), json!({ item: items }));
    body.insert("IsTruncated".into(), Value::Bool(next.is_some()));
    if let Some(m) = next {
        body.insert("Marker".into(), Value::String(m));
    }
    Value::Object(body)
}

fn user_json(u: &Entity<UserBody>, full: bool) -> Value {
    let b = &u.body;
    let mut v = json!({
        "UserId": u.id,
        "UserName": u.name,
        "DisplayName": b.display_name,
        "MobilePhone": b.mobile_phone,
        "Email": b.email,
        "Comments": b.comments,
        "CreateDate": date(b.create_date),
    });
    if full {
        v["UpdateDate"] = date(b.update_date);
    }
    v
}

fn group_json(g: &Entity<GroupBody>, full: bool) -> Value {
    let mut v = json!({
        "GroupId": g.id,
        "GroupName": g.name,
        "Comments": g.body.comments,
        "CreateDate": date(g.body.create_date),
    });
    if full {
        v["UpdateDate"] = date(g.body.update_date);
    }
    v
}

fn role_arn(account: &str, name: &str) -> String {
    format!("acs:ram::{account}:role/{name}")
}

fn role_json(account: &str, r: &Entity<RoleBody>, document: bool) -> Value {
    let b = &r.body;
    let mut v = json!({
        "RoleId": r.id,
        "RoleName": r.name,
        "Arn": role_arn(account, &r.name),
        "Description": b.description,
        "MaxSessionDuration": b.max_session_duration,
        "AllowConsoleLogin": false,
        "CreateDate": date(b.create_date),
        "UpdateDate": date(b.update_date),
    });
    if document {
        v["AssumeRolePolicyDocument"] = Value::String(b.trust_policy.clone());
    }
    v
}

fn policy_json(p: &PolicyView) -> Value {
    json!({
        "PolicyName": p.name,
        "PolicyType": p.policy_type.as_str(),
        "Description": p.description,
        "DefaultVersion": p.default_version,
        "CreateDate": date(p.create_date),
        "UpdateDate": date(p.update_date),
    })
}

fn version_json(v: &crate::service::ram::PolicyVersion, is_default: bool) -> Value {
    json!({
        "VersionId": v.version_id,
        "IsDefaultVersion": is_default,
        "PolicyDocument": v.document,
        "CreateDate": date(v.create_date),
    })
}

fn login_json(user: &str, l: &LoginProfile) -> Value {
    json!({"LoginProfile": {
        "UserName": user,
        "PasswordResetRequired": l.password_reset_required,
        "MFABindRequired": l.mfa_bind_required,
        "CreateDate": date(l.create_date),
    }})
}

fn attached_json(list: Vec<Attached>) -> Value {
    let items: Vec<Value> = list
        .iter()
        .map(|a| {
            json!({
                "PolicyName": a.policy.name,
                "PolicyType": a.policy.policy_type.as_str(),
                "Description": a.policy.description,
                "DefaultVersion": a.policy.default_version,
                "AttachDate": date(a.attach_date),
            })
        })
        .collect();
    json!({"Policies": {"Policy": items}})
}

fn user_fields(p: &Params, prefix: &str) -> UserFields {
    UserFields {
        display_name: opt_string(p, &format!("{prefix}DisplayName")),
        comments: opt_string(p, &format!("{prefix}Comments")),
        email: opt_string(p, &format!("{prefix}Email")),
        mobile_phone: opt_string(p, &format!("{prefix}MobilePhone")),
    }
}

fn empty() -> Result<Value, KmsError> {
    super::empty()
}

/// Runs one RAM action; its required parameters and the caller's permission were checked.
pub async fn dispatch(
    kms: &Kms,
    caller: &Caller,
    principal: &Principal,
    action: Action,
    p: &Params,
) -> Result<Value, KmsError> {
    let account = caller.account_id.as_str();
    match action {
        Action::CreateUser => {
            let u = kms
                .create_user(caller, p.required("UserName")?, user_fields(p, ""))
                .await?;
            Ok(json!({ "User": user_json(&u, false) }))
        }
        Action::GetUser => {
            let u = kms.get_user(caller, p.required("UserName")?).await?;
            let mut v = user_json(&u, true);
            if let Some(t) = u.body.last_login_date {
                v["LastLoginDate"] = date(t);
            }
            Ok(json!({ "User": v }))
        }
        Action::UpdateUser => {
            let u = kms
                .update_user(
                    caller,
                    p.required("UserName")?,
                    opt_string(p, "NewUserName"),
                    user_fields(p, "New"),
                )
                .await?;
            Ok(json!({ "User": user_json(&u, true) }))
        }
        Action::ListUsers => {
            let (users, next) = page(p, kms.list_users(caller).await?, 1000)?;
            let items: Vec<Value> = users.iter().map(|u| user_json(u, true)).collect();
            Ok(paged("Users", "User", items, next))
        }
        Action::DeleteUser => {
            kms.delete_user(caller, p.required("UserName")?).await?;
            empty()
        }
        Action::CreateAccessKey => {
            let user = kms.key_owner(caller, principal, p.opt("UserName")).await?;
            let (ak, secret) = kms.create_user_access_key(caller, &user).await?;
            Ok(json!({"AccessKey": {
                "AccessKeyId": ak.access_key_id,
                "AccessKeySecret": secret,
                "Status": "Active",
                "CreateDate": date(ak.creation_date),
            }}))
        }
        Action::ListAccessKeys => {
            let user = kms.key_owner(caller, principal, p.opt("UserName")).await?;
            let keys: Vec<Value> = kms
                .list_user_access_keys(&user)
                .await?
                .iter()
                .map(|k| {
                    json!({
                        "AccessKeyId": k.access_key_id,
                        "Status": if k.enabled { "Active" } else { "Inactive" },
                        "CreateDate": date(k.creation_date),
                    })
                })
                .collect();
            Ok(json!({"AccessKeys": {"AccessKey": keys}}))
        }
        Action::UpdateAccessKey => {
            let active = match p.required("Status")? {
                "Active" => true,
                "Inactive" => false,
                _ => return Err(KmsError::invalid("Status")),
            };
            let user = kms.key_owner(caller, principal, p.opt("UserName")).await?;
            kms.set_user_access_key_status(&user, p.required("UserAccessKeyId")?, active)
                .await?;
            empty()
        }
        Action::DeleteAccessKey => {
            let user = kms.key_owner(caller, principal, p.opt("UserName")).await?;
            kms.delete_user_access_key(&user, p.required("UserAccessKeyId")?)
                .await?;
            empty()
        }
        Action::CreateLoginProfile | Action::UpdateLoginProfile => {
            let create = action == Action::CreateLoginProfile;
            let password = if create {
                Some(p.required("Password")?.to_string())
            } else {
                opt_string(p, "Password")
            };
            let (u, l) = kms
                .set_login_profile(
                    caller,
                    p.required("UserName")?,
                    create,
                    password,
                    p.bool_opt("PasswordResetRequired")?,
                    p.bool_opt("MFABindRequired")?,
                )
                .await?;
            if create {
                Ok(login_json(&u.name, &l))
            } else {
                empty()
            }
        }
        Action::GetLoginProfile => {
            let (u, l) = kms
                .get_login_profile(caller, p.required("UserName")?)
                .await?;
            Ok(login_json(&u.name, &l))
        }
        Action::DeleteLoginProfile => {
            kms.delete_login_profile(caller, p.required("UserName")?)
                .await?;
            empty()
        }
        Action::CreateGroup => {
            let g = kms
                .create_group(caller, p.required("GroupName")?, opt_string(p, "Comments"))
                .await?;
            Ok(json!({ "Group": group_json(&g, false) }))
        }
        Action::GetGroup => {
            let g = kms.get_group(caller, p.required("GroupName")?).await?;
            Ok(json!({ "Group": group_json(&g, true) }))
        }
        Action::UpdateGroup => {
            let g = kms
                .update_group(
                    caller,
                    p.required("GroupName")?,
                    opt_string(p, "NewGroupName"),
                    opt_string(p, "NewComments"),
                )
                .await?;
            Ok(json!({ "Group": group_json(&g, true) }))
        }
        Action::ListGroups => {
            let (groups, next) = page(p, kms.list_groups(caller).await?, 100)?;
            let items: Vec<Value> = groups.iter().map(|g| group_json(g, true)).collect();
            Ok(paged("Groups", "Group", items, next))
        }
        Action::DeleteGroup => {
            kms.delete_group(caller, p.required("GroupName")?).await?;
            empty()
        }
        Action::AddUserToGroup => {
            kms.add_user_to_group(caller, p.required("GroupName")?, p.required("UserName")?)
                .await?;
            empty()
        }
        Action::RemoveUserFromGroup => {
            kms.remove_user_from_group(caller, p.required("GroupName")?, p.required("UserName")?)
                .await?;
            empty()
        }
        Action::ListGroupsForUser => {
            let u = kms.get_user(caller, p.required("UserName")?).await?;
            let items: Vec<Value> = kms
                .groups_for_user(&u)
                .await?
                .iter()
                .map(|(g, joined)| {
                    json!({
                        "GroupId": g.id,
                        "GroupName": g.name,
                        "Comments": g.body.comments,
                        "JoinDate": date(*joined),
                    })
                })
                .collect();
            Ok(json!({"Groups": {"Group": items}}))
        }
        Action::ListUsersForGroup => {
            let g = kms.get_group(caller, p.required("GroupName")?).await?;
            let (users, next) = page(p, kms.users_for_group(&g).await?, 1000)?;
            let items: Vec<Value> = users
                .iter()
                .map(|(u, joined)| {
                    json!({
                        "UserName": u.name,
                        "DisplayName": u.body.display_name,
                        "JoinDate": date(*joined),
                    })
                })
                .collect();
            Ok(paged("Users", "User", items, next))
        }
        Action::CreatePolicy => {
            let v = kms
                .create_policy(
                    caller,
                    p.required("PolicyName")?,
                    p.required("PolicyDocument")?,
                    opt_string(p, "Description"),
                )
                .await?;
            let mut j = policy_json(&v);
            if let Some(m) = j.as_object_mut() {
                m.remove("UpdateDate");
            }
            Ok(json!({ "Policy": j }))
        }
        Action::GetPolicy => {
            let v = kms
                .get_policy(
                    caller,
                    policy_type(p, "PolicyType")?,
                    p.required("PolicyName")?,
                )
                .await?;
            let count = kms.attachment_count(&v).await?;
            let default = v
                .versions
                .iter()
                .find(|x| x.version_id == v.default_version)
                .cloned()
                .unwrap_or_default();
            let mut j = policy_json(&v);
            j["AttachmentCount"] = json!(count);
            j["PolicyDocument"] = Value::String(default.document.clone());
            Ok(json!({
                "Policy": j,
                "DefaultPolicyVersion": version_json(&default, true),
            }))
        }
        Action::ListPolicies => {
            let t = match p.opt("PolicyType") {
                Some(t) => Some(PolicyType::parse(t)?),
                None => None,
            };
            let (list, next) = page(p, kms.list_policies(caller, t).await?, 1000)?;
            let mut items = Vec::with_capacity(list.len());
            for v in &list {
                let mut j = policy_json(v);
                j["AttachmentCount"] = json!(kms.attachment_count(v).await?);
                items.push(j);
            }
            Ok(paged("Policies", "Policy", items, next))
        }
        Action::DeletePolicy => {
            kms.delete_policy(
                caller,
                p.required("PolicyName")?,
                p.bool_opt("CascadingDelete")?.unwrap_or(false),
            )
            .await?;
            empty()
        }
        Action::CreatePolicyVersion => {
            let rotate = match p.opt("RotateStrategy") {
                None | Some("None") => false,
                Some("DeleteOldestNonDefaultVersionWhenLimitExceeded") => true,
                Some(_) => return Err(KmsError::invalid("RotateStrategy")),
            };
            let (v, is_default) = kms
                .create_policy_version(
                    caller,
                    p.required("PolicyName")?,
                    p.required("PolicyDocument")?,
                    p.bool_opt("SetAsDefault")?.unwrap_or(false),
                    rotate,
                )
                .await?;
            Ok(json!({ "PolicyVersion": version_json(&v, is_default) }))
        }
        Action::GetPolicyVersion => {
            let (v, is_default) = kms
                .get_policy_version(
                    caller,
                    policy_type(p, "PolicyType")?,
                    p.required("PolicyName")?,
                    p.required("VersionId")?,
                )
                .await?;
            Ok(json!({ "PolicyVersion": version_json(&v, is_default) }))
        }
        Action::ListPolicyVersions => {
            let v = kms
                .get_policy(
                    caller,
                    policy_type(p, "PolicyType")?,
                    p.required("PolicyName")?,
                )
                .await?;
            let items: Vec<Value> = v
                .versions
                .iter()
                .map(|x| version_json(x, x.version_id == v.default_version))
                .collect();
            Ok(json!({"PolicyVersions": {"PolicyVersion": items}}))
        }
        Action::DeletePolicyVersion => {
            kms.delete_policy_version(caller, p.required("PolicyName")?, p.required("VersionId")?)
                .await?;
            empty()
        }
        Action::SetDefaultPolicyVersion => {
            kms.set_default_policy_version(
                caller,
                p.required("PolicyName")?,
                p.required("VersionId")?,
            )
            .await?;
            empty()
        }
        Action::AttachPolicyToUser
        | Action::AttachPolicyToGroup
        | Action::AttachPolicyToRole
        | Action::DetachPolicyFromUser
        | Action::DetachPolicyFromGroup
        | Action::DetachPolicyFromRole => {
            let (h, param) = match action {
                Action::AttachPolicyToUser | Action::DetachPolicyFromUser => {
                    (Holder::User, "UserName")
                }
                Action::AttachPolicyToGroup | Action::DetachPolicyFromGroup => {
                    (Holder::Group, "GroupName")
                }
                _ => (Holder::Role, "RoleName"),
            };
            let t = policy_type(p, "PolicyType")?;
            let (name, policy) = (p.required(param)?, p.required("PolicyName")?);
            let attach = matches!(
                action,
                Action::AttachPolicyToUser
                    | Action::AttachPolicyToGroup
                    | Action::AttachPolicyToRole
            );
            if attach {
                kms.attach_policy(caller, h, name, t, policy).await?;
            } else {
                kms.detach_policy(caller, h, name, t, policy).await?;
            }
            empty()
        }
        Action::ListPoliciesForUser => Ok(attached_json(
            kms.policies_for(caller, Holder::User, p.required("UserName")?)
                .await?,
        )),
        Action::ListPoliciesForGroup => Ok(attached_json(
            kms.policies_for(caller, Holder::Group, p.required("GroupName")?)
                .await?,
        )),
        Action::ListPoliciesForRole => Ok(attached_json(
            kms.policies_for(caller, Holder::Role, p.required("RoleName")?)
                .await?,
        )),
        Action::ListEntitiesForPolicy => {
            let v = kms
                .get_policy(
                    caller,
                    policy_type(p, "PolicyType")?,
                    p.required("PolicyName")?,
                )
                .await?;
            let (mut users, mut groups, mut roles) = (Vec::new(), Vec::new(), Vec::new());
            for (e, at) in kms.entities_for_policy(&v).await? {
                if e.kind == RamKind::User.as_str() {
                    let u: UserBody = serde_json::from_str(&e.body).map_err(KmsError::internal)?;
                    users.push(json!({"UserId": e.entity_id, "UserName": e.name, "DisplayName": u.display_name, "AttachDate": date(at)}));
                } else if e.kind == RamKind::Group.as_str() {
                    let g: GroupBody = serde_json::from_str(&e.body).map_err(KmsError::internal)?;
                    groups.push(json!({"GroupName": e.name, "Comments": g.comments, "AttachDate": date(at)}));
                } else if e.kind == RamKind::Role.as_str() {
                    let r: RoleBody = serde_json::from_str(&e.body).map_err(KmsError::internal)?;
                    roles.push(json!({"RoleId": e.entity_id, "RoleName": e.name, "Arn": role_arn(account, &e.name), "Description": r.description, "AttachDate": date(at)}));
                }
            }
            Ok(json!({
                "Users": {"User": users},
                "Groups": {"Group": groups},
                "Roles": {"Role": roles},
            }))
        }
        Action::CreateRole => {
            let r = kms
                .create_role(
                    caller,
                    p.required("RoleName")?,
                    p.required("AssumeRolePolicyDocument")?,
                    opt_string(p, "Description"),
                    p.int_opt("MaxSessionDuration", 3600, 43200)?,
                )
                .await?;
            let mut j = role_json(account, &r, true);
            if let Some(m) = j.as_object_mut() {
                m.remove("UpdateDate");
            }
            Ok(json!({ "Role": j }))
        }
        Action::GetRole => {
            let r = kms.get_role(account, p.required("RoleName")?).await?;
            let mut j = role_json(account, &r, true);
            j["RolePrincipalName"] =
                Value::String(format!("{}@role.{account}.onaliyunservice.com", r.name));
            j["IsServiceLinkedRole"] = Value::Bool(false);
            Ok(json!({ "Role": j }))
        }
        Action::UpdateRole => {
            let r = kms
                .update_role(
                    caller,
                    p.required("RoleName")?,
                    opt_string(p, "NewAssumeRolePolicyDocument"),
                    opt_string(p, "NewDescription"),
                    p.int_opt("NewMaxSessionDuration", 3600, 43200)?,
                )
                .await?;
            Ok(json!({ "Role": role_json(account, &r, true) }))
        }
        Action::ListRoles => {
            let (roles, next) = page(p, kms.list_roles(caller).await?, 1000)?;
            let items: Vec<Value> = roles.iter().map(|r| role_json(account, r, false)).collect();
            Ok(paged("Roles", "Role", items, next))
        }
        Action::DeleteRole => {
            kms.delete_role(caller, p.required("RoleName")?).await?;
            empty()
        }
    }
}
