//! The JSON API the console's JavaScript calls: `POST /console/api/<Action>`, a
//! form-encoded action for the signed-in account, with the session's CSRF token in
//! `X-CSRF-Token` (or a `csrf` field). It answers the API's JSON body, or
//! `{Code, Message, RequestId}` with the API's status.
//!
//! The action runs through [`crate::protocol::Protocol::dispatch_principal`] as the
//! session's principal (a RAM user's policies apply), exactly as a signed API request would
//! after authentication, in the region chosen in the console. Only
//! [`ACTIONS`] are offered (no cryptographic calls from the browser).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::audit::AuditEvent;
use super::extract::ApiSigned;
use super::session;
use super::ConsoleState;
use crate::action::kms::Action;
use crate::action::ApiAction;
use crate::error::KmsError;
use crate::protocol::params::Params;

/// The actions the console offers.
pub const ACTIONS: &[Action] = &[
    Action::CreateKey,
    Action::DescribeKey,
    Action::EnableKey,
    Action::DisableKey,
    Action::UpdateKeyDescription,
    Action::ScheduleKeyDeletion,
    Action::CancelKeyDeletion,
    Action::SetDeletionProtection,
    Action::GetParametersForImport,
    Action::ImportKeyMaterial,
    Action::DeleteKeyMaterial,
    Action::CreateAlias,
    Action::DeleteAlias,
    Action::CreateKeyVersion,
    Action::UpdateRotationPolicy,
    Action::TagResource,
    Action::UntagResource,
    // Secrets Manager (issue 18): GetSecretValue reveals a value on request (audited).
    Action::CreateSecret,
    Action::GetSecretValue,
    Action::PutSecretValue,
    Action::UpdateSecret,
    Action::DeleteSecret,
    Action::RestoreSecret,
    Action::UpdateSecretVersionStage,
];

fn json(status: u16, body: serde_json::Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

pub(super) fn json_error(status: u16, code: &str, message: &str, request_id: &str) -> Response {
    json(
        status,
        serde_json::json!({"Code": code, "Message": message, "RequestId": request_id}),
    )
}

/// A refusal: audited, then answered as JSON.
async fn refuse(st: &ConsoleState, event: &AuditEvent, e: &KmsError) -> Response {
    st.audit_error(event, e).await;
    json_error(e.status(), e.code(), &e.message(), &event.request_id)
}

/// The console action named in the path, if offered.
fn console_action(name: &str) -> Option<ApiAction> {
    Action::from_name(name)
        .filter(|a| ACTIONS.contains(a))
        .map(ApiAction::Kms)
}

/// The API parameters of a console request: the region is the one chosen in the console,
/// and the CSRF field is not an API parameter.
fn api_params(sent: Params, region: String) -> Params {
    let mut clean = Params {
        body: sent
            .body
            .into_iter()
            .filter(|(k, _)| k != "csrf" && k != "RegionId" && k != "Action")
            .collect(),
        ..Params::default()
    };
    clean.body.push(("RegionId".into(), region));
    clean
}

/// The key an answer is about (created or described), else the one the request named.
fn answered_key_id(value: &serde_json::Value) -> Option<&str> {
    value
        .get("KeyId")
        .or_else(|| value.get("KeyMetadata").and_then(|m| m.get("KeyId")))
        .and_then(|v| v.as_str())
}

pub async fn api(
    State(st): State<ConsoleState>,
    ApiSigned(s): ApiSigned,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let action: String = action.chars().take(64).collect();
    let mut event = s.event(&action);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let params = match Params::from_request("", content_type, &body) {
        Ok(p) => p,
        Err(e) => return refuse(&st, &event, &e).await,
    };
    let sent = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| params.get("csrf"))
        .unwrap_or_default();
    if !session::tokens_equal(&s.csrf(), sent) {
        let (code, status) = ("Console.InvalidCsrfToken", 403);
        st.audit(&event, code, status).await;
        let message = "The request has no valid CSRF token.";
        return json_error(status, code, message, &event.request_id);
    }
    event = match (params.opt("KeyId"), params.opt("SecretName")) {
        (Some(k), _) => event.key(k),
        // Secrets Manager: the audit line names the secret (never its value).
        (None, Some(name)) => event.key(&format!(
            "secret/{}",
            name.chars().take(256).collect::<String>()
        )),
        (None, None) => event.key(""),
    };
    let Some(spec) = console_action(&action) else {
        return refuse(&st, &event, &KmsError::InvalidApi(action.clone())).await;
    };
    let params = api_params(params, s.region.clone());
    let principal = match s.principal(&st).await {
        Ok(Some(p)) => p,
        Ok(None) => return refuse(&st, &event, &KmsError::Forbidden).await,
        Err(e) => return refuse(&st, &event, &e).await,
    };
    let transport = crate::api::authz::Transport {
        source_ip: Some(s.peer.ip()),
        secure: st.secure,
    };
    let result = st
        .protocol
        .dispatch_principal(&s.caller(), &principal, spec, &params, transport)
        .await;
    match result {
        Ok(mut value) => {
            if let Some(id) = answered_key_id(&value) {
                event = event.key(id);
            }
            st.audit_ok(&event).await;
            if let serde_json::Value::Object(m) = &mut value {
                m.insert("RequestId".into(), event.request_id.clone().into());
            }
            json(200, value)
        }
        Err(e) => {
            if let KmsError::Internal(d) = &e {
                tracing::error!(request_id = %event.request_id, detail = %d, "console: internal failure");
            }
            refuse(&st, &event, &e).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_actions_are_offered() {
        assert!(console_action("CreateKey").is_some());
        assert!(console_action("Encrypt").is_none());
        assert!(console_action("Nope").is_none());
        for a in ACTIONS {
            assert!(console_action(a.name()).is_some(), "{a} is offered");
        }
    }

    #[test]
    fn console_fields_do_not_reach_the_api() {
        let sent = Params {
            body: vec![
                ("csrf".into(), "t".into()),
                ("RegionId".into(), "elsewhere".into()),
                ("Action".into(), "Encrypt".into()),
                ("KeyId".into(), "k".into()),
            ],
            ..Params::default()
        };
        let p = api_params(sent, "cn-shanghai".into());
        assert_eq!(
            p.body,
            vec![
                ("KeyId".to_string(), "k".to_string()),
                ("RegionId".to_string(), "cn-shanghai".to_string())
            ]
        );
    }
}
