//! The actions: request parsing from [`Params`], the call into the service, and the wire
//! response (PascalCase fields, string-typed values, double-wrapped lists, `RequestId`
//! added by the protocol layer). One file per group of actions; [`dispatch`] maps each
//! [`Action`] of the table ([`crate::action::kms`]) to its handler.

pub mod aliases;
pub mod asymmetric;
pub mod authz;
pub mod crypto;
pub mod import;
pub mod keys;
pub mod ram;
pub mod secrets;
pub mod sts;
pub mod tags;
pub mod versions;

use serde::Serialize;
use serde_json::Value;

use crate::action::kms::Action;
use crate::error::KmsError;
use crate::protocol::params::Params;
use crate::service::{Caller, Kms};

/// Runs one KMS action; its required parameters have been checked. The `match` is
/// exhaustive: a new row in the action table does not compile until it has a handler here.
pub async fn dispatch(
    kms: &Kms,
    caller: &Caller,
    action: Action,
    p: &Params,
) -> Result<Value, KmsError> {
    match action {
        Action::CreateKey => keys::create_key(kms, caller, p).await,
        Action::DescribeKey => keys::describe_key(kms, caller, p).await,
        Action::ListKeys => keys::list_keys(kms, caller, p).await,
        Action::EnableKey => keys::enable_key(kms, caller, p).await,
        Action::DisableKey => keys::disable_key(kms, caller, p).await,
        Action::UpdateKeyDescription => keys::update_key_description(kms, caller, p).await,
        Action::ScheduleKeyDeletion => keys::schedule_key_deletion(kms, caller, p).await,
        Action::CancelKeyDeletion => keys::cancel_key_deletion(kms, caller, p).await,
        Action::SetDeletionProtection => keys::set_deletion_protection(kms, caller, p).await,
        Action::DescribeRegions => keys::describe_regions(kms),
        Action::ListResourceTags => keys::list_resource_tags(kms, caller, p).await,
        Action::Encrypt => crypto::encrypt(kms, caller, p).await,
        Action::Decrypt => crypto::decrypt(kms, caller, p).await,
        Action::GenerateDataKey => crypto::generate_data_key(kms, caller, p, true).await,
        Action::GenerateDataKeyWithoutPlaintext => {
            crypto::generate_data_key(kms, caller, p, false).await
        }
        Action::ReEncrypt => crypto::re_encrypt(kms, caller, p).await,
        Action::GetParametersForImport => import::get_parameters_for_import(kms, caller, p).await,
        Action::ImportKeyMaterial => import::import_key_material(kms, caller, p).await,
        Action::DeleteKeyMaterial => import::delete_key_material(kms, caller, p).await,
        Action::CreateAlias => aliases::create_alias(kms, caller, p).await,
        Action::UpdateAlias => aliases::update_alias(kms, caller, p).await,
        Action::DeleteAlias => aliases::delete_alias(kms, caller, p).await,
        Action::ListAliases => aliases::list_aliases(kms, caller, p, false).await,
        Action::ListAliasesByKeyId => aliases::list_aliases(kms, caller, p, true).await,
        Action::CreateKeyVersion => versions::create_key_version(kms, caller, p).await,
        Action::DescribeKeyVersion => versions::describe_key_version(kms, caller, p).await,
        Action::ListKeyVersions => versions::list_key_versions(kms, caller, p).await,
        Action::UpdateRotationPolicy => versions::update_rotation_policy(kms, caller, p).await,
        Action::TagResource => tags::tag_resource(kms, caller, p).await,
        Action::UntagResource => tags::untag_resource(kms, caller, p).await,
        Action::TagResources => tags::tag_resources(kms, caller, p).await,
        Action::UntagResources => tags::untag_resources(kms, caller, p).await,
        Action::ListTagResources => tags::list_tag_resources(kms, caller, p).await,
        // Asymmetric keys (issue 17).
        Action::GetPublicKey => asymmetric::get_public_key(kms, caller, p).await,
        Action::AsymmetricSign => asymmetric::asymmetric_sign(kms, caller, p).await,
        Action::AsymmetricVerify => asymmetric::asymmetric_verify(kms, caller, p).await,
        Action::AsymmetricEncrypt => asymmetric::asymmetric_encrypt(kms, caller, p).await,
        Action::AsymmetricDecrypt => asymmetric::asymmetric_decrypt(kms, caller, p).await,
        Action::ExportDataKey => asymmetric::export_data_key(kms, caller, p).await,
        Action::GenerateAndExportDataKey => {
            asymmetric::generate_and_export_data_key(kms, caller, p).await
        }
        // Secrets Manager (issue 18).
        Action::CreateSecret => secrets::create_secret(kms, caller, p).await,
        Action::GetSecretValue => secrets::get_secret_value(kms, caller, p).await,
        Action::PutSecretValue => secrets::put_secret_value(kms, caller, p).await,
        Action::DescribeSecret => secrets::describe_secret(kms, caller, p).await,
        Action::ListSecrets => secrets::list_secrets(kms, caller, p).await,
        Action::UpdateSecret => secrets::update_secret(kms, caller, p).await,
        Action::DeleteSecret => secrets::delete_secret(kms, caller, p).await,
        Action::RestoreSecret => secrets::restore_secret(kms, caller, p).await,
        Action::ListSecretVersionIds => secrets::list_secret_version_ids(kms, caller, p).await,
        Action::UpdateSecretVersionStage => {
            secrets::update_secret_version_stage(kms, caller, p).await
        }
        Action::RotateSecret => secrets::rotate_secret(kms, caller, p).await,
        Action::UpdateSecretRotationPolicy => {
            secrets::update_secret_rotation_policy(kms, caller, p).await
        }
        Action::GetRandomPassword => secrets::get_random_password(kms, p).await,
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
