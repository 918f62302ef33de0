//! CreateKeyVersion, DescribeKeyVersion, ListKeyVersions, UpdateRotationPolicy.

use serde::Serialize;
use serde_json::Value;

use super::{empty, page, paging, to_value};
use crate::error::KmsError;
use crate::protocol::params::Params;
use crate::service::{Caller, Kms};
use crate::store::KeyVersionRecord;
use crate::timefmt::format_unix;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyVersion {
    key_id: String,
    key_version_id: String,
    creation_date: String,
}

impl From<KeyVersionRecord> for KeyVersion {
    fn from(v: KeyVersionRecord) -> Self {
        Self {
            key_id: v.key_id,
            key_version_id: v.version_id,
            creation_date: format_unix(v.creation_date),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyVersionResponse {
    key_version: KeyVersion,
}

pub async fn create_key_version(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let v = kms.create_key_version(caller, p.required("KeyId")?).await?;
    to_value(&KeyVersionResponse {
        key_version: v.into(),
    })
}

pub async fn describe_key_version(
    kms: &Kms,
    caller: &Caller,
    p: &Params,
) -> Result<Value, KmsError> {
    let v = kms
        .describe_key_version(caller, p.required("KeyId")?, p.required("KeyVersionId")?)
        .await?;
    to_value(&KeyVersionResponse {
        key_version: v.into(),
    })
}

#[derive(Serialize)]
struct KeyVersionList {
    #[serde(rename = "KeyVersion")]
    key_version: Vec<KeyVersion>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListKeyVersionsResponse {
    key_versions: KeyVersionList,
    page_number: usize,
    page_size: usize,
    total_count: usize,
}

pub async fn list_key_versions(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let (page_number, page_size) = paging(p)?;
    let all = kms.list_key_versions(caller, p.required("KeyId")?).await?;
    let total_count = all.len();
    to_value(&ListKeyVersionsResponse {
        key_versions: KeyVersionList {
            key_version: page(all, page_number, page_size)
                .into_iter()
                .map(Into::into)
                .collect(),
        },
        page_number,
        page_size,
        total_count,
    })
}

pub async fn update_rotation_policy(
    kms: &Kms,
    caller: &Caller,
    p: &Params,
) -> Result<Value, KmsError> {
    let enable = p.bool_required("EnableAutomaticRotation")?;
    kms.update_rotation_policy(
        caller,
        p.required("KeyId")?,
        enable,
        p.opt("RotationInterval"),
    )
    .await?;
    empty()
}
