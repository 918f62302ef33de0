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
use crate::protocol::render::Reply;
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
        Action::DescribeRegions => keys::describe_regions(kms).and_then(Reply::into_value),
        Action::ListResourceTags => keys::list_resource_tags(kms, caller, p).await,
        Action::Encrypt => crypto::encrypt(kms, caller, p).await?.into_value(),
        Action::Decrypt => crypto::decrypt(kms, caller, p).await?.into_value(),
        Action::GenerateDataKey => crypto::generate_data_key(kms, caller, p, true)
            .await?
            .into_value(),
        Action::GenerateDataKeyWithoutPlaintext => crypto::generate_data_key(kms, caller, p, false)
            .await?
            .into_value(),
        Action::ReEncrypt => crypto::re_encrypt(kms, caller, p).await?.into_value(),
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
        Action::GetSecretValue => secrets::get_secret_value(kms, caller, p)
            .await?
            .into_value(),
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

/// [`dispatch`] for the signed API: the hot actions answer a typed body that the protocol
/// layer writes straight into the response bytes ([`Reply::Typed`]); every other action
/// goes through [`dispatch`] and answers its `Value`.
pub async fn dispatch_reply(
    kms: &Kms,
    caller: &Caller,
    action: Action,
    p: &Params,
) -> Result<Reply, KmsError> {
    match action {
        Action::DescribeRegions => keys::describe_regions(kms),
        Action::Encrypt => crypto::encrypt(kms, caller, p).await,
        Action::Decrypt => crypto::decrypt(kms, caller, p).await,
        Action::GenerateDataKey => crypto::generate_data_key(kms, caller, p, true).await,
        Action::GenerateDataKeyWithoutPlaintext => {
            crypto::generate_data_key(kms, caller, p, false).await
        }
        Action::ReEncrypt => crypto::re_encrypt(kms, caller, p).await,
        Action::GetSecretValue => secrets::get_secret_value(kms, caller, p).await,
        other => dispatch(kms, caller, other, p).await.map(Reply::Value),
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

#[cfg(test)]
mod typed_render_tests {
    //! Each typed body renders exactly the bytes the generic path renders for the `Value`
    //! the action answered before it was typed (same fields, same order), in both formats.

    use serde_json::json;

    use super::crypto::{CiphertextResponse, DecryptResponse};
    use super::keys::Regions;
    use super::secrets::SecretValueResponse;
    use crate::model::{SecretRecord, SecretVersionRecord};
    use crate::protocol::render::{success, success_typed, Format, Typed};
    use crate::service::secrets::SecretValue;

    /// Strings that need escaping somewhere: quotes, backslash, control characters,
    /// non-ASCII, XML's specials, CDATA's end, spaces, and the empty string.
    const NASTY: &[&str] = &[
        "plain-ASCII_0123",
        "quote\" apos' back\\slash /slash",
        "ctl \u{0}\u{1}\u{8}\u{b}\u{c}\u{1f}\u{7f} tab\t nl\n cr\r crlf\r\n",
        "non-ASCII é ß 中文 🎉 \u{2028}\u{2029} \u{feff}",
        "<xml> & </xml> &amp; ]]> <![CDATA[x]]>",
        "  leading and trailing spaces  ",
        "",
    ];

    /// `body` rendered typed and through the generic `Value` path (both `expected`, the
    /// `Value` the action built before, and the body's own `to_value`) must be the same bytes.
    fn same(action: &str, body: &dyn Typed, expected: &serde_json::Value) {
        for format in [Format::Json, Format::Xml] {
            for rid in ["6B9A0C86-5E6A-4B1F-9A43-2D3B0A1C9E77", "<&\"\\\r>"] {
                let typed = success_typed(format, action, body, rid);
                let generic = success(format, action, expected.clone(), rid);
                let own = success(format, action, body.to_value().unwrap(), rid);
                assert_eq!(typed.status, generic.status);
                assert_eq!(typed.content_type, generic.content_type);
                assert_eq!(
                    String::from_utf8_lossy(&typed.body),
                    String::from_utf8_lossy(&generic.body),
                    "{action} {format:?}"
                );
                assert_eq!(typed.body, generic.body, "{action} {format:?}");
                assert_eq!(own.body, generic.body, "{action} {format:?} to_value");
            }
        }
    }

    #[test]
    fn ciphertext_responses() {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let blobs: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0xff, 0xfe],
            (0..=255u8).collect(),
            b"blob".to_vec(),
        ];
        for s in NASTY {
            for blob in &blobs {
                let keys = [None, Some(s.as_bytes().to_vec()), Some(vec![7u8; 32])];
                for plaintext in keys {
                    let body = CiphertextResponse {
                        ciphertext_blob: blob.clone(),
                        key_id: s.to_string(),
                        key_version_id: format!("{s}v"),
                        plaintext: plaintext.clone().map(zeroize::Zeroizing::new),
                    };
                    let mut expected = json!({
                        "CiphertextBlob": b64(blob),
                        "KeyId": s,
                        "KeyVersionId": format!("{s}v"),
                    });
                    if let Some(p) = &plaintext {
                        expected["Plaintext"] = json!(b64(p));
                    }
                    for action in ["Encrypt", "GenerateDataKey", "ReEncrypt"] {
                        same(action, &body, &expected);
                    }
                    assert_eq!(body.key_ids(), (Some(*s), Some(format!("{s}v").as_str())));
                }
            }
        }
    }

    #[test]
    fn decrypt_response() {
        for s in NASTY {
            let body = DecryptResponse {
                plaintext: s.to_string(),
                key_id: format!("k{s}"),
                key_version_id: s.to_string(),
            };
            let expected = json!({
                "Plaintext": s,
                "KeyId": format!("k{s}"),
                "KeyVersionId": s,
            });
            same("Decrypt", &body, &expected);
        }
    }

    /// What "the same bytes" are, spelled out once for each format.
    #[test]
    fn escaping_pinned() {
        let body = DecryptResponse {
            plaintext: "a<&>\r\"\\\u{1}é".into(),
            key_id: String::new(),
            key_version_id: "v".into(),
        };
        let xml = success_typed(Format::Xml, "Decrypt", &body, "R").body;
        assert_eq!(
            String::from_utf8(xml).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><DecryptResponse>\
             <Plaintext>a&lt;&amp;&gt;&#13;\"\\\u{1}é</Plaintext><KeyId/>\
             <KeyVersionId>v</KeyVersionId><RequestId>R</RequestId></DecryptResponse>"
        );
        let json = success_typed(Format::Json, "Decrypt", &body, "R").body;
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"Plaintext":"a<&>\r\"\\\u0001é","KeyId":"","KeyVersionId":"v","RequestId":"R"}"#
        );
    }

    #[test]
    fn describe_regions_response() {
        let lists: Vec<Vec<String>> = vec![
            vec!["cn-hangzhou".into()],
            vec![
                "cn-hangzhou".into(),
                "cn-shanghai".into(),
                "ap-southeast-1".into(),
            ],
            NASTY.iter().map(|s| s.to_string()).collect(),
            vec![],
        ];
        for regions in lists {
            let expected = json!({
                "Regions": {
                    "Region": regions.iter().map(|r| json!({"RegionId": r})).collect::<Vec<_>>()
                }
            });
            same("DescribeRegions", &Regions(regions.clone()), &expected);
        }
    }

    #[test]
    fn secret_value_response() {
        let stage_lists: Vec<Vec<String>> = vec![
            vec!["ACSCurrent".into()],
            vec![
                "ACSCurrent".into(),
                "ACSPrevious".into(),
                "my<stage>&\"".into(),
            ],
            vec![],
            NASTY.iter().map(|s| s.to_string()).collect(),
        ];
        for s in NASTY {
            for stages in &stage_lists {
                let secret = SecretRecord {
                    secret_id: "id".into(),
                    account_id: "1234567890123456".into(),
                    region: "cn-hangzhou".into(),
                    secret_name: format!("name{s}"),
                    secret_type: "Generic".into(),
                    description: String::new(),
                    encryption_key_id: "k".into(),
                    extended_config: None,
                    creation_date: 0,
                    update_date: 0,
                    planned_delete_time: None,
                    automatic_rotation: false,
                    rotation_interval: None,
                    last_rotation_date: None,
                    next_rotation_date: None,
                };
                let version = SecretVersionRecord {
                    secret_id: "id".into(),
                    version_id: s.to_string(),
                    creation_date: 1_700_000_000,
                    data_type: "text".into(),
                    sealed_data_key: vec![],
                    sealed_value: vec![],
                };
                let value = SecretValue::for_test(secret, version, stages.clone(), s.as_bytes());
                let body = SecretValueResponse {
                    value,
                    create_time: "2023-11-14T22:13:20Z".into(),
                };
                let expected = json!({
                    "SecretName": format!("name{s}"),
                    "SecretType": "Generic",
                    "VersionId": s,
                    "CreateTime": "2023-11-14T22:13:20Z",
                    "SecretData": s,
                    "SecretDataType": "text",
                    "VersionStages": {"VersionStage": stages},
                });
                same("GetSecretValue", &body, &expected);
                assert_eq!(body.key_ids(), (None, None));
            }
        }
    }
}
