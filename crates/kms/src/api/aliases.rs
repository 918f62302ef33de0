//! CreateAlias, UpdateAlias, DeleteAlias, ListAliases, ListAliasesByKeyId.

use serde::Serialize;
use serde_json::Value;

use super::{empty, page, paging, to_value};
use crate::error::KmsError;
use crate::protocol::params::Params;
use crate::service::aliases::alias_arn;
use crate::service::{Caller, Kms};

pub async fn create_alias(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    kms.create_alias(caller, p.required("AliasName")?, p.required("KeyId")?)
        .await?;
    empty()
}

pub async fn update_alias(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    kms.update_alias(caller, p.required("AliasName")?, p.required("KeyId")?)
        .await?;
    empty()
}

pub async fn delete_alias(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    kms.delete_alias(caller, p.required("AliasName")?).await?;
    empty()
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AliasEntry {
    alias_name: String,
    alias_arn: String,
    key_id: String,
}

#[derive(Serialize)]
struct AliasList {
    #[serde(rename = "Alias")]
    alias: Vec<AliasEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListAliasesResponse {
    aliases: AliasList,
    page_number: usize,
    page_size: usize,
    total_count: usize,
}

/// ListAliases, and ListAliasesByKeyId (`by_key`).
pub async fn list_aliases(
    kms: &Kms,
    caller: &Caller,
    p: &Params,
    by_key: bool,
) -> Result<Value, KmsError> {
    let (page_number, page_size) = paging(p)?;
    let key = if by_key {
        Some(p.required("KeyId")?)
    } else {
        None
    };
    let all = kms.list_aliases(caller, key).await?;
    let total_count = all.len();
    to_value(&ListAliasesResponse {
        aliases: AliasList {
            alias: page(all, page_number, page_size)
                .into_iter()
                .map(|a| AliasEntry {
                    alias_arn: alias_arn(&a),
                    alias_name: a.alias_name,
                    key_id: a.key_id,
                })
                .collect(),
        },
        page_number,
        page_size,
        total_count,
    })
}
