//! Secrets Manager: CreateSecret, GetSecretValue, PutSecretValue, DescribeSecret,
//! ListSecrets, UpdateSecret, DeleteSecret, RestoreSecret, ListSecretVersionIds,
//! UpdateSecretVersionStage, RotateSecret, UpdateSecretRotationPolicy, GetRandomPassword
//! (TagResource/UntagResource with `SecretName` are with the tag actions).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use super::keys::parse_tags;
use super::{paging, to_value};
use crate::error::KmsError;
use crate::model::{SecretRecord, Tag};
use crate::protocol::params::Params;
use crate::protocol::render::{Fields, Reply, Typed};
use crate::service::secrets::{
    secret_arn, CreateSecretInput, PasswordSpec, SecretFilter, SecretFilterKey, SecretValue,
};
use crate::service::{Caller, Kms};
use crate::timefmt::format_unix;

#[derive(Serialize)]
struct Stages {
    #[serde(rename = "VersionStage")]
    version_stage: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagJson {
    pub tag_key: String,
    pub tag_value: String,
}

#[derive(Serialize)]
struct TagList {
    #[serde(rename = "Tag")]
    tag: Vec<TagJson>,
}

fn tag_list(tags: Vec<Tag>) -> TagList {
    TagList {
        tag: tags
            .into_iter()
            .map(|t| TagJson {
                tag_key: t.key,
                tag_value: t.value,
            })
            .collect(),
    }
}

/// `SecretData`, verbatim (an empty value counts as absent). The parameter text is copied
/// into a buffer wiped on drop.
fn secret_data(p: &Params) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    p.opt("SecretData")
        .map(|d| Zeroizing::new(d.as_bytes().to_vec()))
        .ok_or_else(|| KmsError::missing("SecretData"))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateSecretResponse {
    arn: String,
    secret_name: String,
    secret_type: String,
    version_id: String,
}

pub async fn create_secret(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let tags = match p.opt("Tags") {
        Some(t) => parse_tags("Tags", t)?,
        None => Vec::new(),
    };
    let input = CreateSecretInput {
        secret_name: p.required("SecretName")?.to_string(),
        version_id: p.required("VersionId")?.to_string(),
        secret_data: secret_data(p)?,
        secret_data_type: p.opt("SecretDataType").map(str::to_string),
        secret_type: p.opt("SecretType").map(str::to_string),
        encryption_key_id: p.opt("EncryptionKeyId").map(str::to_string),
        description: p.get("Description").map(str::to_string),
        tags,
        extended_config: p.opt("ExtendedConfig").map(str::to_string),
        enable_automatic_rotation: p.bool_opt("EnableAutomaticRotation")?.unwrap_or(false),
        rotation_interval: p.opt("RotationInterval").map(str::to_string),
    };
    let version_id = input.version_id.clone();
    let s = kms.create_secret(caller, input).await?;
    to_value(&CreateSecretResponse {
        arn: secret_arn(&s),
        secret_name: s.secret_name,
        secret_type: s.secret_type,
        version_id,
    })
}

/// GetSecretValue's body, built as the JSON object directly (the hot read path of
/// Secrets Manager: no serializer pass, the strings moved in). The fields in this order:
/// SecretName, SecretType, VersionId, CreateTime, SecretData, SecretDataType,
/// VersionStages `{"VersionStage":[..]}`, the same bytes the derived form gave.
pub async fn get_secret_value(kms: &Kms, caller: &Caller, p: &Params) -> Result<Reply, KmsError> {
    // FetchExtendedConfig applies to managed secrets only; checked for form.
    p.bool_opt("FetchExtendedConfig")?;
    let dry_run = super::dry_run(p)?;
    let v = kms
        .get_secret_value(
            caller,
            p.required("SecretName")?,
            p.opt("VersionId"),
            p.opt("VersionStage"),
        )
        .await?;
    if dry_run {
        return Err(KmsError::DryRun);
    }
    // The value was stored as the UTF-8 text it came in.
    if std::str::from_utf8(&v.data).is_err() {
        return Err(KmsError::internal("stored secret value is not UTF-8"));
    }
    let create_time = create_time(v.version.creation_date);
    Ok(Reply::Typed(Box::new(SecretValueResponse {
        value: v,
        create_time,
    })))
}

/// GetSecretValue's answer, written from the shared rows and the opened value without
/// copying them into a `Value` (the value's UTF-8 was checked when it was built).
pub(crate) struct SecretValueResponse {
    pub(crate) value: SecretValue,
    pub(crate) create_time: String,
}

impl SecretValueResponse {
    fn data(&self) -> &str {
        std::str::from_utf8(&self.value.data).unwrap_or_default()
    }
}

impl Typed for SecretValueResponse {
    fn write(&self, out: &mut dyn Fields) {
        let v = &self.value;
        out.string("SecretName", &v.secret.secret_name);
        out.string("SecretType", &v.secret.secret_type);
        out.string("VersionId", &v.version.version_id);
        out.string("CreateTime", &self.create_time);
        out.string("SecretData", self.data());
        out.string("SecretDataType", &v.version.data_type);
        out.open("VersionStages");
        out.strings("VersionStage", v.stages());
        out.close("VersionStages");
    }

    fn to_value(&self) -> Result<Value, KmsError> {
        let v = &self.value;
        let stages = v
            .stages()
            .iter()
            .map(|s| Value::String(s.clone()))
            .collect::<Vec<_>>();
        let mut version_stages = serde_json::Map::with_capacity(1);
        version_stages.insert("VersionStage".into(), Value::Array(stages));
        let mut body = serde_json::Map::with_capacity(8);
        body.insert(
            "SecretName".into(),
            Value::String(v.secret.secret_name.clone()),
        );
        body.insert(
            "SecretType".into(),
            Value::String(v.secret.secret_type.clone()),
        );
        body.insert(
            "VersionId".into(),
            Value::String(v.version.version_id.clone()),
        );
        body.insert("CreateTime".into(), Value::String(self.create_time.clone()));
        body.insert("SecretData".into(), Value::String(self.data().to_string()));
        body.insert(
            "SecretDataType".into(),
            Value::String(v.version.data_type.clone()),
        );
        body.insert("VersionStages".into(), Value::Object(version_stages));
        Ok(Value::Object(body))
    }
}

/// `yyyy-MM-ddTHH:mm:ssZ`, as [`crate::timefmt::format_unix`] writes it, without the
/// generic formatter (about a tenth of its cost; written by hand for GetSecretValue's hot
/// path). Years outside 0..=9999 (never a secret's creation time) go to `format_unix`.
fn create_time(t: i64) -> String {
    let Ok(d) = time::OffsetDateTime::from_unix_timestamp(t) else {
        return crate::timefmt::format_unix(t);
    };
    let year = d.year();
    if !(0..=9999).contains(&year) {
        return crate::timefmt::format_unix(t);
    }
    // Every part is below 10_000, so each digit is one ASCII byte.
    fn push(out: &mut String, n: u32, width: u32) {
        for i in (0..width).rev() {
            let digit = (n / 10u32.pow(i)) % 10;
            out.push(char::from(b'0' + digit as u8));
        }
    }
    let mut out = String::with_capacity(20);
    push(&mut out, year.unsigned_abs(), 4);
    out.push('-');
    push(&mut out, u32::from(u8::from(d.month())), 2);
    out.push('-');
    push(&mut out, u32::from(d.day()), 2);
    out.push('T');
    push(&mut out, u32::from(d.hour()), 2);
    out.push(':');
    push(&mut out, u32::from(d.minute()), 2);
    out.push(':');
    push(&mut out, u32::from(d.second()), 2);
    out.push('Z');
    out
}

/// `VersionStages`: a JSON array (`["a","b"]`), the object form
/// `{"VersionStage":["a"]}`, or a comma-separated list.
pub fn parse_stages(text: &str) -> Result<Vec<String>, KmsError> {
    #[derive(Deserialize)]
    struct Wrapped {
        #[serde(rename = "VersionStage")]
        version_stage: Vec<String>,
    }
    let t = text.trim();
    let bad = || {
        KmsError::invalid_because(
            "VersionStages",
            "Expected a JSON array of stage names, e.g. [\"ACSCurrent\"].",
        )
    };
    if t.starts_with('[') {
        return serde_json::from_str(t).map_err(|_| bad());
    }
    if t.starts_with('{') {
        return serde_json::from_str::<Wrapped>(t)
            .map(|w| w.version_stage)
            .map_err(|_| bad());
    }
    Ok(t.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PutSecretValueResponse {
    secret_name: String,
    version_id: String,
    version_stages: Stages,
}

pub async fn put_secret_value(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let name = p.required("SecretName")?;
    let version_id = p.required("VersionId")?;
    let data = secret_data(p)?;
    let stages = p.opt("VersionStages").map(parse_stages).transpose()?;
    let stages = kms
        .put_secret_value(
            caller,
            name,
            version_id,
            data,
            p.opt("SecretDataType"),
            stages,
        )
        .await?;
    let (name, _) = kms.describe_secret(caller, name, false).await?;
    to_value(&PutSecretValueResponse {
        secret_name: name.secret_name,
        version_id: version_id.to_string(),
        version_stages: Stages {
            version_stage: stages,
        },
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeSecretResponse {
    arn: String,
    secret_name: String,
    secret_type: String,
    description: String,
    encryption_key_id: String,
    create_time: String,
    update_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    planned_delete_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extended_config: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<TagList>,
}

fn fetch_tags(p: &Params) -> Result<bool, KmsError> {
    Ok(p.bool_opt("FetchTags")?.unwrap_or(false))
}

pub async fn describe_secret(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let (s, tags) = kms
        .describe_secret(caller, p.required("SecretName")?, fetch_tags(p)?)
        .await?;
    to_value(&DescribeSecretResponse {
        arn: secret_arn(&s),
        secret_name: s.secret_name,
        secret_type: s.secret_type,
        description: s.description,
        encryption_key_id: s.encryption_key_id,
        create_time: format_unix(s.creation_date),
        update_time: format_unix(s.update_date),
        planned_delete_time: s.planned_delete_time.map(format_unix),
        extended_config: s.extended_config,
        tags: tags.map(tag_list),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SecretEntry {
    secret_name: String,
    secret_type: String,
    create_time: String,
    update_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    planned_delete_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<TagList>,
}

#[derive(Serialize)]
struct SecretList {
    #[serde(rename = "Secret")]
    secret: Vec<SecretEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListSecretsResponse {
    secret_list: SecretList,
    page_number: usize,
    page_size: usize,
    total_count: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FilterJson {
    key: String,
    values: Vec<String>,
}

/// `Filters`: `[{"Key":"SecretName","Values":["a","b"]}]`, at most 10 items.
pub fn parse_secret_filters(text: &str) -> Result<Vec<SecretFilter>, KmsError> {
    let items: Vec<FilterJson> = serde_json::from_str(text).map_err(|_| {
        KmsError::invalid_because(
            "Filters",
            "Expected [{\"Key\":\"SecretName\",\"Values\":[\"…\"]}].",
        )
    })?;
    if items.len() > 10 {
        return Err(KmsError::invalid_because("Filters", "At most 10 filters."));
    }
    items
        .into_iter()
        .map(|f| {
            let key = SecretFilterKey::parse(&f.key).ok_or_else(|| {
                KmsError::invalid_because(
                    "Filters",
                    "Key is SecretName, Description, TagKey, TagValue, SecretType, DKMSInstanceId or Creator.",
                )
            })?;
            let max = if key == SecretFilterKey::SecretName { 192 } else { 256 };
            if f.values.is_empty()
                || f.values.len() > 10
                || f.values.iter().any(|v| v.is_empty() || v.chars().count() > max)
            {
                return Err(KmsError::invalid_because(
                    "Filters",
                    "Each filter has 1 to 10 non-empty values.",
                ));
            }
            Ok(SecretFilter {
                key,
                values: f.values,
            })
        })
        .collect()
}

pub async fn list_secrets(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let (number, size) = paging(p)?;
    let filters = match p.opt("Filters") {
        Some(f) => parse_secret_filters(f)?,
        None => Vec::new(),
    };
    let page = kms
        .list_secrets(caller, &filters, fetch_tags(p)?, number, size)
        .await?;
    to_value(&ListSecretsResponse {
        secret_list: SecretList {
            secret: page
                .secrets
                .into_iter()
                .map(|(s, tags)| SecretEntry {
                    secret_name: s.secret_name,
                    secret_type: s.secret_type,
                    create_time: format_unix(s.creation_date),
                    update_time: format_unix(s.update_date),
                    planned_delete_time: s.planned_delete_time.map(format_unix),
                    tags: tags.map(tag_list),
                })
                .collect(),
        },
        page_number: number,
        page_size: size,
        total_count: page.total,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct NameResponse {
    secret_name: String,
}

fn name_response(s: SecretRecord) -> Result<Value, KmsError> {
    to_value(&NameResponse {
        secret_name: s.secret_name,
    })
}

/// Custom data of UpdateSecret: classic sends `ExtendedConfig.CustomData=<JSON>`, Tea one
/// `ExtendedConfig.CustomData.<key>=<value>` per key.
fn custom_data(p: &Params) -> Option<String> {
    if let Some(c) = p.opt("ExtendedConfig.CustomData") {
        return Some(c.to_string());
    }
    let pairs: serde_json::Map<String, Value> = p
        .all()
        .filter_map(|(k, v)| {
            k.strip_prefix("ExtendedConfig.CustomData.")
                .map(|k| (k.to_string(), Value::String(v.clone())))
        })
        .collect();
    (!pairs.is_empty()).then(|| Value::Object(pairs).to_string())
}

pub async fn update_secret(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let s = kms
        .update_secret(
            caller,
            p.required("SecretName")?,
            p.get("Description").map(str::to_string),
            custom_data(p),
        )
        .await?;
    name_response(s)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteSecretResponse {
    secret_name: String,
    planned_delete_time: String,
}

pub async fn delete_secret(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let force = p.bool_opt("ForceDeleteWithoutRecovery")?.unwrap_or(false);
    let days = p.int_opt(
        "RecoveryWindowInDays",
        crate::service::secrets::MIN_RECOVERY_DAYS,
        crate::service::secrets::MAX_RECOVERY_DAYS,
    )?;
    let (s, when) = kms
        .delete_secret(caller, p.required("SecretName")?, force, days)
        .await?;
    to_value(&DeleteSecretResponse {
        secret_name: s.secret_name,
        planned_delete_time: format_unix(when),
    })
}

pub async fn restore_secret(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    name_response(
        kms.restore_secret(caller, p.required("SecretName")?)
            .await?,
    )
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct VersionEntry {
    version_id: String,
    create_time: String,
    version_stages: Stages,
}

#[derive(Serialize)]
struct VersionIds {
    #[serde(rename = "VersionId")]
    version_id: Vec<VersionEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListSecretVersionIdsResponse {
    secret_name: String,
    version_ids: VersionIds,
    page_number: usize,
    page_size: usize,
    total_count: usize,
}

pub async fn list_secret_version_ids(
    kms: &Kms,
    caller: &Caller,
    p: &Params,
) -> Result<Value, KmsError> {
    let (number, size) = paging(p)?;
    let include = p.bool_opt("IncludeDeprecated")?.unwrap_or(false);
    let (s, versions) = kms
        .list_secret_version_ids(caller, p.required("SecretName")?, include)
        .await?;
    let total = versions.len();
    to_value(&ListSecretVersionIdsResponse {
        secret_name: s.secret_name,
        version_ids: VersionIds {
            version_id: super::page(versions, number, size)
                .into_iter()
                .map(|v| VersionEntry {
                    version_id: v.version_id,
                    create_time: format_unix(v.creation_date),
                    version_stages: Stages {
                        version_stage: v.stages,
                    },
                })
                .collect(),
        },
        page_number: number,
        page_size: size,
        total_count: total,
    })
}

pub async fn update_secret_version_stage(
    kms: &Kms,
    caller: &Caller,
    p: &Params,
) -> Result<Value, KmsError> {
    let s = kms
        .update_secret_version_stage(
            caller,
            p.required("SecretName")?,
            p.required("VersionStage")?,
            p.opt("MoveToVersion").map(str::to_string),
            p.opt("RemoveFromVersion").map(str::to_string),
        )
        .await?;
    name_response(s)
}

pub async fn rotate_secret(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let s = kms
        .rotate_secret(caller, p.required("SecretName")?, p.required("VersionId")?)
        .await?;
    name_response(s)
}

pub async fn update_secret_rotation_policy(
    kms: &Kms,
    caller: &Caller,
    p: &Params,
) -> Result<Value, KmsError> {
    let s = kms
        .update_secret_rotation_policy(
            caller,
            p.required("SecretName")?,
            p.bool_required("EnableAutomaticRotation")?,
            p.opt("RotationInterval"),
        )
        .await?;
    name_response(s)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RandomPasswordResponse {
    random_password: String,
}

pub async fn get_random_password(kms: &Kms, p: &Params) -> Result<Value, KmsError> {
    let flag = |n: &str| -> Result<bool, KmsError> { Ok(p.bool_opt(n)?.unwrap_or(false)) };
    let spec = PasswordSpec {
        length: p.int_opt("PasswordLength", 8, 128)?.map(|n| n as usize),
        exclude_characters: p.opt("ExcludeCharacters").unwrap_or_default().to_string(),
        exclude_lowercase: flag("ExcludeLowercase")?,
        exclude_uppercase: flag("ExcludeUppercase")?,
        exclude_numbers: flag("ExcludeNumbers")?,
        exclude_punctuation: flag("ExcludePunctuation")?,
        require_each_included_type: flag("RequireEachIncludedType")?,
    };
    let pw = kms.get_random_password(&spec)?;
    to_value(&RandomPasswordResponse {
        random_password: String::from_utf8_lossy(&pw).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written CreateTime is byte for byte `format_unix`, over the years a
    /// creation time can take and at the edges of days, months, leap years and the range.
    #[test]
    fn create_time_is_format_unix() {
        let mut t: i64 = -62_167_219_300; // just before 0000-01-01
        while t < 253_402_400_000 {
            // just past 9999-12-31
            for d in [0, 1, 59, 3_599, 86_399] {
                assert_eq!(
                    create_time(t + d),
                    crate::timefmt::format_unix(t + d),
                    "{t}"
                );
            }
            t += 86_400 * 13 + 7;
        }
        for t in [i64::MIN, i64::MAX, -1, 0, 951_782_400, 1_764_576_000] {
            assert_eq!(create_time(t), crate::timefmt::format_unix(t), "{t}");
        }
    }

    #[test]
    fn stages_in_every_form() {
        assert_eq!(parse_stages(r#"["a","b"]"#).unwrap(), vec!["a", "b"]);
        assert_eq!(
            parse_stages(r#"{"VersionStage":["ACSCurrent"]}"#).unwrap(),
            vec!["ACSCurrent"]
        );
        assert_eq!(parse_stages("a, b").unwrap(), vec!["a", "b"]);
        assert!(parse_stages("[1]").is_err());
        assert!(parse_stages("{}").is_err());
    }

    #[test]
    fn filters() {
        let f = parse_secret_filters(r#"[{"Key":"SecretName","Values":["a","b"]}]"#).unwrap();
        assert_eq!(f[0].key, SecretFilterKey::SecretName);
        assert_eq!(f[0].values, vec!["a", "b"]);
        for bad in [
            "x",
            r#"[{"Key":"Nope","Values":["a"]}]"#,
            r#"[{"Key":"SecretName","Values":[]}]"#,
            r#"[{"Key":"SecretName","Values":[""]}]"#,
        ] {
            assert_eq!(
                parse_secret_filters(bad).unwrap_err().code(),
                "InvalidParameter"
            );
        }
    }
}
