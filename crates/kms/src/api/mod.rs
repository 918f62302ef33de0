//! The actions: request parsing from [`Params`], the call into the service, and the wire
//! response (PascalCase fields, string-typed values, double-wrapped lists, `RequestId`
//! added by the protocol layer). One file per group of actions.

pub mod aliases;
pub mod crypto;
pub mod import;
pub mod keys;
pub mod spec;
pub mod tags;
pub mod versions;

use serde::Serialize;
use serde_json::Value;

use crate::error::KmsError;
use crate::protocol::params::Params;
use crate::service::{Caller, Kms};

/// Runs one action. `name` must be a row of [`spec::ACTIONS`]; its required parameters
/// have been checked.
pub async fn dispatch(
    kms: &Kms,
    caller: &Caller,
    name: &str,
    p: &Params,
) -> Result<Value, KmsError> {
    match name {
        "CreateKey" => keys::create_key(kms, caller, p).await,
        "DescribeKey" => keys::describe_key(kms, caller, p).await,
        "ListKeys" => keys::list_keys(kms, caller, p).await,
        "EnableKey" => keys::enable_key(kms, caller, p).await,
        "DisableKey" => keys::disable_key(kms, caller, p).await,
        "UpdateKeyDescription" => keys::update_key_description(kms, caller, p).await,
        "ScheduleKeyDeletion" => keys::schedule_key_deletion(kms, caller, p).await,
        "CancelKeyDeletion" => keys::cancel_key_deletion(kms, caller, p).await,
        "SetDeletionProtection" => keys::set_deletion_protection(kms, caller, p).await,
        "DescribeRegions" => keys::describe_regions(kms),
        "ListResourceTags" => keys::list_resource_tags(kms, caller, p).await,
        "Encrypt" => crypto::encrypt(kms, caller, p).await,
        "Decrypt" => crypto::decrypt(kms, caller, p).await,
        "GenerateDataKey" => crypto::generate_data_key(kms, caller, p, true).await,
        "GenerateDataKeyWithoutPlaintext" => crypto::generate_data_key(kms, caller, p, false).await,
        "ReEncrypt" => crypto::re_encrypt(kms, caller, p).await,
        "GetParametersForImport" => import::get_parameters_for_import(kms, caller, p).await,
        "ImportKeyMaterial" => import::import_key_material(kms, caller, p).await,
        "DeleteKeyMaterial" => import::delete_key_material(kms, caller, p).await,
        "CreateAlias" => aliases::create_alias(kms, caller, p).await,
        "UpdateAlias" => aliases::update_alias(kms, caller, p).await,
        "DeleteAlias" => aliases::delete_alias(kms, caller, p).await,
        "ListAliases" => aliases::list_aliases(kms, caller, p, false).await,
        "ListAliasesByKeyId" => aliases::list_aliases(kms, caller, p, true).await,
        "CreateKeyVersion" => versions::create_key_version(kms, caller, p).await,
        "DescribeKeyVersion" => versions::describe_key_version(kms, caller, p).await,
        "ListKeyVersions" => versions::list_key_versions(kms, caller, p).await,
        "UpdateRotationPolicy" => versions::update_rotation_policy(kms, caller, p).await,
        "TagResource" => tags::tag_resource(kms, caller, p).await,
        "UntagResource" => tags::untag_resource(kms, caller, p).await,
        "TagResources" => tags::tag_resources(kms, caller, p).await,
        "UntagResources" => tags::untag_resources(kms, caller, p).await,
        "ListTagResources" => tags::list_tag_resources(kms, caller, p).await,
        other => Err(KmsError::InvalidApi(other.to_string())),
    }
}

/// Serialises a response body.
pub(crate) fn to_value<T: Serialize>(body: &T) -> Result<Value, KmsError> {
    serde_json::to_value(body).map_err(KmsError::internal)
}

/// The body of actions that answer only `RequestId`.
pub(crate) fn empty() -> Result<Value, KmsError> {
    Ok(Value::Object(serde_json::Map::new()))
}

/// `PageNumber` (from 1, default 1) and `PageSize` (1–100, default 10).
pub(crate) fn paging(p: &Params) -> Result<(usize, usize), KmsError> {
    let number = p
        .int_opt("PageNumber", 1, i64::from(u32::MAX))?
        .unwrap_or(1) as usize;
    let size = p.int_opt("PageSize", 1, 100)?.unwrap_or(10) as usize;
    Ok((number, size))
}

/// One page of `items`.
pub(crate) fn page<T>(items: Vec<T>, number: usize, size: usize) -> Vec<T> {
    items
        .into_iter()
        .skip(number.saturating_sub(1).saturating_mul(size))
        .take(size)
        .collect()
}

/// `DryRun`, default false.
pub(crate) fn dry_run(p: &Params) -> Result<bool, KmsError> {
    Ok(p.bool_opt("DryRun")?.unwrap_or(false))
}
