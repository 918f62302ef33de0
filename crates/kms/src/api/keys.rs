//! CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey, UpdateKeyDescription,
//! ScheduleKeyDeletion, CancelKeyDeletion, SetDeletionProtection, DescribeRegions,
//! ListResourceTags.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{empty, to_value};
use crate::error::KmsError;
use crate::protocol::params::Params;
use crate::protocol::render::{Fields, Reply, Typed};
use crate::service::keys::{key_arn, CreateKeyInput, FilterField, KeyFilter};
use crate::service::{Caller, Kms};
use crate::store::{KeyRecord, Tag};
use crate::timefmt::{format_opt, format_unix};

/// `KeyMetadata` of CreateKey and DescribeKey: every field, all strings (reference §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadata {
    pub key_id: String,
    pub arn: String,
    pub creation_date: String,
    pub creator: String,
    pub description: String,
    pub key_state: String,
    pub key_usage: String,
    pub key_spec: String,
    pub origin: String,
    pub protection_level: String,
    pub primary_key_version: String,
    pub automatic_rotation: String,
    pub rotation_interval: String,
    pub last_rotation_date: String,
    pub next_rotation_date: String,
    pub delete_date: String,
    pub material_expire_time: String,
    pub deletion_protection: String,
    pub deletion_protection_description: String,
    #[serde(rename = "DKMSInstanceId")]
    pub dkms_instance_id: String,
}

fn enabled_disabled(b: bool) -> String {
    if b { "Enabled" } else { "Disabled" }.to_string()
}

impl KeyMetadata {
    pub fn from_record(k: &KeyRecord) -> Self {
        let rotation = if !k.automatic_rotation {
            "Disabled"
        } else if k.state == crate::service::state::KeyState::Enabled {
            "Enabled"
        } else {
            "Suspended"
        };
        let interval = k.rotation_interval.filter(|_| k.automatic_rotation);
        Self {
            key_id: k.key_id.clone(),
            arn: key_arn(k),
            creation_date: format_unix(k.creation_date),
            creator: k.creator.clone(),
            description: k.description.clone(),
            key_state: k.state.as_str().to_string(),
            key_usage: k.key_usage.as_str().to_string(),
            key_spec: k.key_spec.as_str().to_string(),
            origin: k.origin.as_str().to_string(),
            protection_level: k.protection_level.as_str().to_string(),
            // "Unavailable for asymmetric CMKs" (reference asymmetric §2.1).
            primary_key_version: if k.key_spec.is_asymmetric() {
                String::new()
            } else {
                k.primary_version.clone()
            },
            automatic_rotation: rotation.to_string(),
            rotation_interval: interval.map(|s| format!("{s}s")).unwrap_or_default(),
            last_rotation_date: format_opt(k.last_rotation_date),
            next_rotation_date: format_opt(
                interval.and_then(|i| k.last_rotation_date.map(|l| l + i)),
            ),
            delete_date: format_opt(k.delete_date),
            material_expire_time: format_opt(k.material_expire),
            deletion_protection: enabled_disabled(k.deletion_protection),
            deletion_protection_description: k.deletion_protection_description.clone(),
            dkms_instance_id: String::new(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyMetadataResponse {
    key_metadata: KeyMetadata,
}

/// One entry of a CreateKey/TagResource `Tags` JSON array.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagJson {
    tag_key: String,
    #[serde(default)]
    tag_value: String,
}

pub fn parse_tags(name: &str, text: &str) -> Result<Vec<Tag>, KmsError> {
    let tags: Vec<TagJson> = serde_json::from_str(text).map_err(|_| {
        KmsError::invalid_because(
            name,
            "Expected a JSON array of {\"TagKey\":…,\"TagValue\":…}.",
        )
    })?;
    Ok(tags
        .into_iter()
        .map(|t| Tag {
            key: t.tag_key,
            value: t.tag_value,
        })
        .collect())
}

pub async fn create_key(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let tags = match p.opt("Tags") {
        Some(t) => parse_tags("Tags", t)?,
        None => Vec::new(),
    };
    let input = CreateKeyInput {
        description: p.get("Description").map(str::to_string),
        key_spec: p.opt("KeySpec").map(str::to_string),
        key_usage: p.opt("KeyUsage").map(str::to_string),
        origin: p.opt("Origin").map(str::to_string),
        protection_level: p.opt("ProtectionLevel").map(str::to_string),
        enable_automatic_rotation: p.bool_opt("EnableAutomaticRotation")?.unwrap_or(false),
        rotation_interval: p.opt("RotationInterval").map(str::to_string),
        tags,
    };
    let key = kms.create_key(caller, input).await?;
    to_value(&KeyMetadataResponse {
        key_metadata: KeyMetadata::from_record(&key),
    })
}

pub async fn describe_key(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let key = kms.describe_key(caller, p.required("KeyId")?).await?;
    to_value(&KeyMetadataResponse {
        key_metadata: KeyMetadata::from_record(&key),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyEntry {
    key_id: String,
    key_arn: String,
}

#[derive(Serialize)]
struct KeyList {
    #[serde(rename = "Key")]
    key: Vec<KeyEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListKeysResponse {
    keys: KeyList,
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

pub fn parse_filters(text: &str) -> Result<Vec<KeyFilter>, KmsError> {
    let raw: Vec<FilterJson> = serde_json::from_str(text).map_err(|_| {
        KmsError::invalid_because(
            "Filters",
            "Expected a JSON array of {\"Key\":…,\"Values\":[…]}.",
        )
    })?;
    if raw.len() > 10 {
        return Err(KmsError::invalid_because("Filters", "At most 10 filters."));
    }
    raw.into_iter()
        .map(|f| {
            let field = FilterField::parse(&f.key).ok_or_else(|| {
                KmsError::invalid_because(
                    "Filters",
                    format!("Unknown filter key {:?}; use KeyState, KeySpec, KeyUsage, ProtectionLevel, CreatorType or Origin.", f.key),
                )
            })?;
            if f.values.is_empty() || f.values.len() > 10 {
                return Err(KmsError::invalid_because("Filters", "Each filter has 1 to 10 values."));
            }
            Ok(KeyFilter { field, values: f.values })
        })
        .collect()
}

pub async fn list_keys(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let page_number = p
        .int_opt("PageNumber", 1, i64::from(u32::MAX))?
        .unwrap_or(1) as usize;
    let page_size = p.int_opt("PageSize", 1, 100)?.unwrap_or(10) as usize;
    let filters = match p.opt("Filters") {
        Some(f) => parse_filters(f)?,
        None => Vec::new(),
    };
    let (keys, total) = kms
        .list_keys(caller, page_number, page_size, &filters)
        .await?;
    to_value(&ListKeysResponse {
        keys: KeyList {
            key: keys
                .iter()
                .map(|k| KeyEntry {
                    key_id: k.key_id.clone(),
                    key_arn: key_arn(k),
                })
                .collect(),
        },
        page_number,
        page_size,
        total_count: total,
    })
}

pub async fn enable_key(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    kms.enable_key(caller, p.required("KeyId")?).await?;
    empty()
}

pub async fn disable_key(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    kms.disable_key(caller, p.required("KeyId")?).await?;
    empty()
}

pub async fn update_key_description(
    kms: &Kms,
    caller: &Caller,
    p: &Params,
) -> Result<Value, KmsError> {
    let description = p.required("Description")?.to_string();
    kms.update_key_description(caller, p.required("KeyId")?, description)
        .await?;
    empty()
}

pub async fn schedule_key_deletion(
    kms: &Kms,
    caller: &Caller,
    p: &Params,
) -> Result<Value, KmsError> {
    let days = p
        .int_opt("PendingWindowInDays", i64::MIN, i64::MAX)?
        .ok_or_else(|| KmsError::missing("PendingWindowInDays"))?;
    kms.schedule_key_deletion(caller, p.required("KeyId")?, days)
        .await?;
    empty()
}

pub async fn cancel_key_deletion(
    kms: &Kms,
    caller: &Caller,
    p: &Params,
) -> Result<Value, KmsError> {
    kms.cancel_key_deletion(caller, p.required("KeyId")?)
        .await?;
    empty()
}

pub async fn set_deletion_protection(
    kms: &Kms,
    caller: &Caller,
    p: &Params,
) -> Result<Value, KmsError> {
    let enabled = p.bool_required("EnableDeletionProtection")?;
    let key_ref = p
        .opt("ProtectedResourceArn")
        .or_else(|| p.opt("KeyId"))
        .ok_or_else(|| KmsError::missing("ProtectedResourceArn"))?;
    kms.set_deletion_protection(
        caller,
        key_ref,
        enabled,
        p.get("DeletionProtectionDescription").map(str::to_string),
    )
    .await?;
    empty()
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Region {
    region_id: String,
}

#[derive(Serialize)]
struct RegionList {
    #[serde(rename = "Region")]
    region: Vec<Region>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeRegionsResponse {
    regions: RegionList,
}

pub fn describe_regions(kms: &Kms) -> Result<Reply, KmsError> {
    Ok(Reply::Typed(Box::new(Regions(kms.regions().to_vec()))))
}

/// DescribeRegions' answer, written directly (the hot path's unsigned-work baseline).
pub(crate) struct Regions(pub(crate) Vec<String>);

impl Typed for Regions {
    fn write(&self, out: &mut dyn Fields) {
        out.open("Regions");
        out.begin_list("Region");
        for r in &self.0 {
            out.open_item("Region");
            out.string("RegionId", r);
            out.close_item("Region");
        }
        out.end_list("Region");
        out.close("Regions");
    }
    fn to_value(&self) -> Result<Value, KmsError> {
        to_value(&DescribeRegionsResponse {
            regions: RegionList {
                region: self
                    .0
                    .iter()
                    .map(|r| Region {
                        region_id: r.clone(),
                    })
                    .collect(),
            },
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TagEntry {
    key_id: String,
    tag_key: String,
    tag_value: String,
}

#[derive(Serialize)]
struct TagList {
    #[serde(rename = "Tag")]
    tag: Vec<TagEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListResourceTagsResponse {
    tags: TagList,
}

pub async fn list_resource_tags(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let (key, tags) = kms.list_tags(caller, p.required("KeyId")?).await?;
    to_value(&ListResourceTagsResponse {
        tags: TagList {
            tag: tags
                .into_iter()
                .map(|t| TagEntry {
                    key_id: key.key_id.clone(),
                    tag_key: t.key,
                    tag_value: t.value,
                })
                .collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_tags_parse() {
        let f = parse_filters(r#"[{"Key":"KeyState","Values":["Enabled","Disabled"]}, {"Key":"Origin","Values":["EXTERNAL"]}]"#).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].field, FilterField::KeyState);
        for bad in [
            "",
            "{}",
            r#"[{"Key":"Nope","Values":["x"]}]"#,
            r#"[{"Key":"KeyState","Values":[]}]"#,
        ] {
            assert!(parse_filters(bad).is_err(), "{bad}");
        }
        let t = parse_tags("Tags", r#"[{"TagKey":"k","TagValue":"v"}]"#).unwrap();
        assert_eq!(
            t,
            vec![Tag {
                key: "k".into(),
                value: "v".into()
            }]
        );
        assert!(parse_tags("Tags", r#"{"k":"v"}"#).is_err());
    }

    #[test]
    fn metadata_has_every_field_as_a_string() {
        let k = crate::service::keys::new_key_record(
            "k",
            "1",
            "cn-hangzhou",
            crate::model::Origin::AliyunKms,
            "v",
            0,
        );
        let v = serde_json::to_value(KeyMetadata::from_record(&k)).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 20);
        assert!(obj.values().all(|v| v.is_string()));
        assert_eq!(obj["Arn"], "acs:kms:cn-hangzhou:1:key/k");
        assert_eq!(obj["CreationDate"], "1970-01-01T00:00:00Z");
        assert_eq!(obj["DeleteDate"], "");
        assert_eq!(obj["DeletionProtection"], "Disabled");
        assert!(obj.contains_key("DKMSInstanceId"));
    }
}
