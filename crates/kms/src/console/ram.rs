//! RAM pages (issue 16): users, groups, roles and policies of the signed-in account, in one
//! server-rendered page (`GET /console/ram`) with plain forms posted to `POST /console/ram`.
//!
//! Every read and every change is a RAM action run through
//! [`crate::protocol::Protocol::dispatch_principal`] as the session's principal, exactly as
//! a signed RAM API request: a RAM user sees and changes only what its `ram:*` policies
//! allow, and a refusal (403 `NoPermission`) is shown in the page. The policy editor posts
//! the document as typed; the server validates it with the RAM policy grammar and the
//! page shows the error (with its position for invalid JSON) and keeps the text. An access
//! key's secret is shown once, in the answer to its creation. Forms carry the session's
//! CSRF token (a `csrf` field).

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::extract::Signed;
use super::i18n::Text as T;
use super::session;
use super::view::{CsrfRefused, Frame};
use super::{html, internal, ConsoleState};
use crate::action::ram::Action;
use crate::action::ApiAction;
use crate::error::KmsError;
use crate::protocol::params::Params;

/// Largest form body read.
const MAX_FORM: usize = 64 * 1024;

/// The changes the page offers.
pub const OPS: &[Action] = &[
    Action::CreateUser,
    Action::DeleteUser,
    Action::CreateAccessKey,
    Action::CreateLoginProfile,
    Action::UpdateLoginProfile,
    Action::CreateGroup,
    Action::AddUserToGroup,
    Action::RemoveUserFromGroup,
    Action::CreateRole,
    Action::CreatePolicy,
    Action::CreatePolicyVersion,
    Action::AttachPolicyToUser,
    Action::AttachPolicyToGroup,
    Action::AttachPolicyToRole,
    Action::DetachPolicyFromUser,
    Action::DetachPolicyFromGroup,
    Action::DetachPolicyFromRole,
];

/// The form fields passed to the RAM action (each is that action's wire parameter).
const FIELDS: &[&str] = &[
    "UserName",
    "Password",
    "GroupName",
    "RoleName",
    "AssumeRolePolicyDocument",
    "PolicyName",
    "PolicyDocument",
    "PolicyType",
    "Description",
];

/// One list of the page: its rows, or why it could not be read.
#[derive(Default)]
struct Section {
    rows: Vec<Vec<String>>,
    refused: Option<String>,
}

/// The line above the page after a change.
struct Outcome {
    is_error: bool,
    text: String,
}

#[derive(Template)]
#[template(path = "console/ram.html")]
struct RamPage {
    frame: Frame,
    title: &'static str,
    outcome: Option<Outcome>,
    /// A new access key: id and secret, shown once.
    secret: Option<(String, String)>,
    users: Section,
    groups: Section,
    roles: Section,
    policies: Section,
    /// The policy editor's name and text.
    policy_name: String,
    policy_document: String,
}

#[derive(Deserialize)]
pub struct RamQuery {
    /// A custom policy to load into the editor.
    edit: Option<String>,
    /// The change just made (post/redirect/get: the POST answers with a redirect here, so
    /// reloading the page does not make it again).
    done: Option<String>,
}

/// A RAM action as the session's principal (audited like the console's other actions).
async fn run(
    st: &ConsoleState,
    s: &Signed,
    action: Action,
    fields: Vec<(String, String)>,
) -> Result<Value, KmsError> {
    let event = s.event(action.name());
    let result = async {
        let principal = s.principal(st).await?.ok_or(KmsError::Forbidden)?;
        let params = Params {
            body: fields,
            ..Params::default()
        };
        let transport = crate::api::authz::Transport {
            source_ip: Some(s.peer.ip()),
            secure: st.secure,
        };
        st.protocol
            .dispatch_principal(
                &s.caller(),
                &principal,
                ApiAction::Ram(action),
                &params,
                transport,
            )
            .await
    }
    .await;
    match &result {
        Ok(_) => st.audit_ok(&event).await,
        Err(e) => st.audit_error(&event, e).await,
    }
    result
}

fn refusal(e: &KmsError) -> String {
    format!("{}: {}", e.code(), e.message())
}

fn items<'a>(v: &'a Value, outer: &str, inner: &str) -> &'a [Value] {
    v.get(outer)
        .and_then(|o| o.get(inner))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn field(v: &Value, name: &str) -> String {
    match v.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A list action's rows: `columns` of each item of `outer.inner`.
async fn section(
    st: &ConsoleState,
    s: &Signed,
    action: Action,
    fields: Vec<(String, String)>,
    (outer, inner): (&str, &str),
    columns: &[&str],
) -> Result<Section, KmsError> {
    match run(st, s, action, fields).await {
        Ok(v) => Ok(Section {
            rows: items(&v, outer, inner)
                .iter()
                .map(|i| columns.iter().map(|c| field(i, c)).collect())
                .collect(),
            refused: None,
        }),
        Err(e @ KmsError::Internal(_)) => Err(e),
        Err(e) => Ok(Section {
            rows: Vec::new(),
            refused: Some(refusal(&e)),
        }),
    }
}

fn max_items() -> Vec<(String, String)> {
    vec![("MaxItems".into(), "1000".into())]
}

/// The page, after `outcome` (if any).
async fn page(
    st: &ConsoleState,
    s: &Signed,
    outcome: Option<Outcome>,
    secret: Option<(String, String)>,
    editor: (String, String),
) -> Response {
    let lists = async {
        let users = section(
            st,
            s,
            Action::ListUsers,
            max_items(),
            ("Users", "User"),
            &["UserName", "UserId", "CreateDate"],
        )
        .await?;
        let groups = section(
            st,
            s,
            Action::ListGroups,
            max_items(),
            ("Groups", "Group"),
            &["GroupName", "Comments", "CreateDate"],
        )
        .await?;
        let roles = section(
            st,
            s,
            Action::ListRoles,
            max_items(),
            ("Roles", "Role"),
            &["RoleName", "Arn", "CreateDate"],
        )
        .await?;
        let policies = section(
            st,
            s,
            Action::ListPolicies,
            max_items(),
            ("Policies", "Policy"),
            &[
                "PolicyName",
                "PolicyType",
                "DefaultVersion",
                "AttachmentCount",
            ],
        )
        .await?;
        Ok::<_, KmsError>((users, groups, roles, policies))
    }
    .await;
    let (users, groups, roles, policies) = match lists {
        Ok(v) => v,
        Err(e) => return internal(&e),
    };
    let frame = s.frame(st);
    let status = match &outcome {
        Some(o) if o.is_error => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let page = RamPage {
        title: frame.t(T::Ram),
        frame,
        outcome,
        secret,
        users,
        groups,
        roles,
        policies,
        policy_name: editor.0,
        policy_document: editor.1,
    };
    html(status, &page)
}

/// `GET /console/ram` (`?edit=<policy>` loads a custom policy's default version into the
/// editor).
pub async fn ram_page(
    State(st): State<ConsoleState>,
    s: Signed,
    Query(q): Query<RamQuery>,
) -> Response {
    // Only an action this page makes is named back.
    let mut outcome = q
        .done
        .as_deref()
        .and_then(Action::from_name)
        .filter(|a| OPS.contains(a))
        .map(|a| Outcome {
            is_error: false,
            text: format!("{}: {}", a.name(), s.lang.t(T::Done)),
        });
    let mut editor = (String::new(), String::new());
    if let Some(name) = q.edit.filter(|n| !n.is_empty()) {
        let name: String = name.chars().take(128).collect();
        let fields = vec![
            ("PolicyName".to_string(), name.clone()),
            ("PolicyType".to_string(), "Custom".to_string()),
        ];
        match run(&st, &s, Action::GetPolicy, fields).await {
            Ok(v) => {
                let doc = v
                    .get("DefaultPolicyVersion")
                    .map(|d| field(d, "PolicyDocument"))
                    .unwrap_or_default();
                editor = (name, pretty(&doc));
            }
            Err(e @ KmsError::Internal(_)) => return internal(&e),
            Err(e) => {
                outcome = Some(Outcome {
                    is_error: true,
                    text: refusal(&e),
                })
            }
        }
    }
    page(&st, &s, outcome, None, editor).await
}

/// A JSON document indented for the editor (as stored if it is not JSON).
fn pretty(doc: &str) -> String {
    serde_json::from_str::<Value>(doc)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| doc.to_string())
}

/// A posted form: the operation, the CSRF token and the action's fields.
struct RamForm {
    csrf: String,
    op: String,
    fields: Vec<(String, String)>,
}

impl RamForm {
    fn parse(body: &[u8]) -> Option<Self> {
        if body.len() > MAX_FORM {
            return None;
        }
        let mut f = RamForm {
            csrf: String::new(),
            op: String::new(),
            fields: Vec::new(),
        };
        for (k, v) in form_urlencoded::parse(body) {
            match k.as_ref() {
                "csrf" => f.csrf = v.into_owned(),
                "op" => f.op = v.into_owned(),
                k if FIELDS.contains(&k) && !v.is_empty() => {
                    f.fields.push((k.to_string(), v.into_owned()))
                }
                _ => {}
            }
        }
        Some(f)
    }

    fn get(&self, name: &str) -> String {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// `POST /console/ram`: one change, then the page with its outcome.
pub async fn ram_post(State(st): State<ConsoleState>, s: Signed, body: Bytes) -> Response {
    let Some(form) = RamForm::parse(&body) else {
        return html(StatusCode::BAD_REQUEST, &CsrfRefused { lang: s.lang });
    };
    if !session::tokens_equal(&s.csrf(), &form.csrf) {
        let event = s.event(form.op.chars().take(64).collect::<String>().as_str());
        st.audit(&event, "Console.InvalidCsrfToken", 403).await;
        return html(StatusCode::FORBIDDEN, &CsrfRefused { lang: s.lang });
    }
    let editor = if form.op == "CreatePolicy" || form.op == "CreatePolicyVersion" {
        (form.get("PolicyName"), form.get("PolicyDocument"))
    } else {
        (String::new(), String::new())
    };
    let Some(action) = Action::from_name(&form.op).filter(|a| OPS.contains(a)) else {
        let e = KmsError::InvalidApi(form.op.chars().take(64).collect());
        let outcome = Outcome {
            is_error: true,
            text: refusal(&e),
        };
        return page(&st, &s, Some(outcome), None, editor).await;
    };
    let mut fields = form.fields.clone();
    if action == Action::CreatePolicyVersion {
        fields.retain(|(k, _)| k != "PolicyType");
        fields.push(("SetAsDefault".into(), "true".into()));
    }
    match run(&st, &s, action, fields).await {
        Ok(v) => {
            // Post/redirect/get, so that a reload does not make the change again; but a
            // new access key's secret is shown once, in this answer, and never put in a URL.
            if action != Action::CreateAccessKey {
                return super::redirect(&format!("/console/ram?done={}", action.name()));
            }
            let secret = (action == Action::CreateAccessKey)
                .then(|| {
                    v.get("AccessKey")
                        .map(|k| (field(k, "AccessKeyId"), field(k, "AccessKeySecret")))
                })
                .flatten();
            let outcome = Outcome {
                is_error: false,
                text: format!("{}: {}", action.name(), s.lang.t(T::Done)),
            };
            page(
                &st,
                &s,
                Some(outcome),
                secret,
                (String::new(), String::new()),
            )
            .await
        }
        Err(e @ KmsError::Internal(_)) => internal(&e),
        Err(e) => {
            let outcome = Outcome {
                is_error: true,
                text: refusal(&e),
            };
            page(&st, &s, Some(outcome), None, editor).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ram_page_escapes_what_it_shows() {
        let frame = Frame {
            lang: crate::console::i18n::Lang::Zh,
            csrf: "c\"t".into(),
            regions: vec!["cn-hangzhou".into()],
            region: "cn-hangzhou".into(),
            principal: "ram-user:a".into(),
            account: "1".into(),
        };
        let page = RamPage {
            frame,
            title: "t",
            outcome: Some(Outcome {
                is_error: true,
                text: "<b>".into(),
            }),
            secret: None,
            users: Section {
                rows: vec![vec!["<u>".into(), "1".into(), "d".into()]],
                refused: None,
            },
            groups: Section::default(),
            roles: Section::default(),
            policies: Section {
                rows: Vec::new(),
                refused: Some("NoPermission: x".into()),
            },
            policy_name: String::new(),
            policy_document: "</textarea>".into(),
        };
        let html = page.render().unwrap();
        assert!(
            html.contains("id=\"ram-outcome\">&#60;b&#62;</p>"),
            "{html}"
        );
        assert!(html.contains("data-user=\"&#60;u&#62;\""));
        assert!(html.contains("&#60;/textarea&#62;</textarea>"));
        assert!(html.contains("id=\"policies-refused\">NoPermission: x</p>"));
        assert!(html.contains("value=\"c&#34;t\""));
        assert!(html.contains("访问控制 (RAM)"));
    }

    #[test]
    fn only_the_offered_fields_reach_the_action() {
        let f =
            RamForm::parse(b"csrf=t&op=CreateUser&UserName=a&Action=Encrypt&MaxItems=1&Password=")
                .unwrap();
        assert_eq!(f.csrf, "t");
        assert_eq!(f.op, "CreateUser");
        assert_eq!(f.fields, vec![("UserName".to_string(), "a".to_string())]);
        for a in OPS {
            assert_eq!(Action::from_name(a.name()), Some(*a));
        }
    }
}
