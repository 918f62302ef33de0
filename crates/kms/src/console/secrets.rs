//! Secrets Manager in the console (issue 18): the secret list (`GET /console/secrets`, with
//! the create-secret dialog) and the secret page (`GET /console/secret?name=<SecretName>`:
//! metadata, versions and their stages, reveal a value on request, put a new value, move a
//! stage, delete and restore). Pages show metadata only; a value is fetched only when the
//! user asks (`GetSecretValue` through the console API, audited like every console action)
//! and never rendered into a page (`secrets.html`, `secret.html`).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::extract::Signed;
use super::i18n::Text as T;
use super::view::Frame;
use super::{html, internal, ConsoleState};
use crate::action::kms::Action;
use crate::action::ApiAction;
use crate::error::KmsError;
use crate::model::SecretRecord;
use crate::service::secrets::secret_arn;
use crate::timefmt::format_unix;

/// Secrets a page of the list.
const PAGE_SIZE: usize = 100;

struct Row {
    name: String,
    created: String,
    updated: String,
    planned_delete: Option<String>,
}

#[derive(Template)]
#[template(path = "console/secrets.html")]
struct SecretsPage {
    frame: Frame,
    title: &'static str,
    rows: Vec<Row>,
    total: usize,
}

pub async fn secrets_page(State(st): State<ConsoleState>, s: Signed) -> Response {
    let event = s.event("ListSecrets");
    if let Err(refused) = s
        .may_or_refuse(&st, &event, ApiAction::Kms(Action::ListSecrets), &[])
        .await
    {
        return refused;
    }
    let listed = st
        .kms()
        .list_secrets(&s.caller(), &[], false, 1, PAGE_SIZE)
        .await;
    let page = match listed {
        Ok(p) => p,
        Err(e) => {
            st.audit_error(&event, &e).await;
            return internal(&e);
        }
    };
    st.audit_ok(&event).await;
    let mut rows: Vec<Row> = page
        .secrets
        .into_iter()
        .map(|(r, _)| Row {
            created: format_unix(r.creation_date),
            updated: format_unix(r.update_date),
            planned_delete: r.planned_delete_time.map(format_unix),
            name: r.secret_name,
        })
        .collect();
    rows.reverse(); // newest first
    html(
        StatusCode::OK,
        &SecretsPage {
            title: s.lang.t(T::Secrets),
            frame: s.frame(&st),
            rows,
            total: page.total,
        },
    )
}

#[derive(Deserialize)]
pub struct SecretQuery {
    name: Option<String>,
}

struct Field {
    name: &'static str,
    value: String,
}

struct VersionRow {
    version_id: String,
    created: String,
    stages: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/secret.html")]
struct SecretPage {
    frame: Frame,
    title: String,
    name: String,
    description: String,
    in_window: bool,
    fields: Vec<Field>,
    versions: Vec<VersionRow>,
}

#[derive(Template)]
#[template(path = "console/secret_not_found.html")]
struct SecretNotFound {
    frame: Frame,
    title: &'static str,
    code: &'static str,
    message: String,
}

fn fields(r: &SecretRecord) -> Vec<Field> {
    vec![
        Field {
            name: "SecretName",
            value: r.secret_name.clone(),
        },
        Field {
            name: "Arn",
            value: secret_arn(r),
        },
        Field {
            name: "SecretType",
            value: r.secret_type.clone(),
        },
        Field {
            name: "EncryptionKeyId",
            value: r.encryption_key_id.clone(),
        },
        Field {
            name: "Description",
            value: r.description.clone(),
        },
        Field {
            name: "CreateTime",
            value: format_unix(r.creation_date),
        },
        Field {
            name: "UpdateTime",
            value: format_unix(r.update_date),
        },
        Field {
            name: "PlannedDeleteTime",
            value: r.planned_delete_time.map(format_unix).unwrap_or_default(),
        },
    ]
}

pub async fn secret_page(
    State(st): State<ConsoleState>,
    s: Signed,
    Query(q): Query<SecretQuery>,
) -> Response {
    let name = q.name.unwrap_or_default();
    let caller = s.caller();
    let event = s.event("DescribeSecret").key(&format!(
        "secret/{}",
        name.chars().take(256).collect::<String>()
    ));
    if let Err(refused) = s
        .may_or_refuse(
            &st,
            &event,
            ApiAction::Kms(Action::DescribeSecret),
            &[("SecretName", name.as_str())],
        )
        .await
    {
        return refused;
    }
    let loaded = async {
        let (r, _) = st.kms().describe_secret(&caller, &name, false).await?;
        let (_, versions) = st
            .kms()
            .list_secret_version_ids(&caller, &name, true)
            .await?;
        Ok::<_, KmsError>((r, versions))
    }
    .await;
    match loaded {
        Ok((r, versions)) => {
            st.audit_ok(&event).await;
            let page = SecretPage {
                fields: fields(&r),
                in_window: r.planned_delete_time.is_some(),
                description: r.description,
                title: r.secret_name.clone(),
                name: r.secret_name,
                versions: versions
                    .into_iter()
                    .map(|v| VersionRow {
                        version_id: v.version_id,
                        created: format_unix(v.creation_date),
                        stages: v.stages,
                    })
                    .collect(),
                frame: s.frame(&st),
            };
            html(StatusCode::OK, &page)
        }
        Err(e) => {
            st.audit_error(&event, &e).await;
            if let KmsError::Internal(_) = e {
                return internal(&e);
            }
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::NOT_FOUND);
            html(
                status,
                &SecretNotFound {
                    title: s.lang.t(T::NotFound),
                    code: e.code(),
                    message: e.message(),
                    frame: s.frame(&st),
                },
            )
        }
    }
}
