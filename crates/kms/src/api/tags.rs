//! TagResource, UntagResource, TagResources, UntagResources, ListTagResources
//! (ListResourceTags is with the key actions).

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use super::keys::parse_tags;
use super::{empty, to_value};
use crate::action::kms::row;
use crate::error::KmsError;
use crate::protocol::params::Params;
use crate::service::{Caller, Kms};
use crate::store::Tag;

const MAX_RESOURCES: usize = 50;
const MAX_TAGS: usize = 20;

/// What TagResource/UntagResource tag: a key (`KeyId`) or a secret (`SecretName`, issue 18).
enum Taggable {
    Key(String),
    Secret(String),
}

/// The resource of TagResource/UntagResource: exactly one of KeyId and SecretName
/// (certificates do not exist here).
fn single_resource(p: &Params) -> Result<Taggable, KmsError> {
    if p.opt("CertificateId").is_some() {
        return Err(KmsError::invalid_because(
            "CertificateId",
            "This server tags keys and secrets only; use KeyId or SecretName.",
        ));
    }
    match (p.opt("KeyId"), p.opt("SecretName")) {
        (Some(k), None) => Ok(Taggable::Key(k.to_string())),
        (None, Some(s)) => Ok(Taggable::Secret(s.to_string())),
        (Some(_), Some(_)) => Err(KmsError::invalid_because(
            "SecretName",
            "Give KeyId or SecretName, not both.",
        )),
        (None, None) => Err(KmsError::missing("KeyId")),
    }
}

pub async fn tag_resource(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let resource = single_resource(p)?;
    let tags = parse_tags("Tags", p.required("Tags")?)?;
    if tags.is_empty() {
        return Err(KmsError::invalid_because("Tags", "Give at least one tag."));
    }
    match resource {
        Taggable::Key(key) => kms.tag_keys(caller, &[key], tags, row::TagResource).await?,
        Taggable::Secret(name) => kms.tag_secret(caller, &name, tags).await?,
    }
    empty()
}

/// `TagKeys`: a JSON array of strings, or a comma-separated list.
pub fn parse_tag_keys(text: &str) -> Result<Vec<String>, KmsError> {
    let t = text.trim();
    let keys: Vec<String> = if t.starts_with('[') {
        serde_json::from_str(t).map_err(|_| {
            KmsError::invalid_because("TagKeys", "Expected a JSON array of strings or k1,k2.")
        })?
    } else {
        t.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    if keys.is_empty() || keys.len() > MAX_TAGS {
        return Err(KmsError::invalid_because(
            "TagKeys",
            "Give 1 to 20 tag keys.",
        ));
    }
    Ok(keys)
}

pub async fn untag_resource(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let resource = single_resource(p)?;
    let keys = parse_tag_keys(p.required("TagKeys")?)?;
    match resource {
        Taggable::Key(key) => {
            kms.untag_keys(caller, &[key], Some(keys), row::UntagResource)
                .await?
        }
        Taggable::Secret(name) => kms.untag_secret(caller, &name, Some(keys)).await?,
    }
    empty()
}

/// What the plural tag actions tag: keys, or (issue 18) secrets by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResourceType {
    Key,
    Secret,
}

fn resource_type(p: &Params) -> Result<ResourceType, KmsError> {
    match p.required("ResourceType")? {
        "key" | "Key" => Ok(ResourceType::Key),
        "secret" | "Secret" => Ok(ResourceType::Secret),
        _ => Err(KmsError::invalid_because(
            "ResourceType",
            "This server tags keys and secrets: ResourceType=key or secret.",
        )),
    }
}

fn resource_ids(p: &Params, required: bool) -> Result<Vec<String>, KmsError> {
    let ids = p.list("ResourceId");
    if required && ids.is_empty() {
        return Err(KmsError::missing("ResourceId.1"));
    }
    if ids.len() > MAX_RESOURCES {
        return Err(KmsError::invalid_because(
            "ResourceId",
            "At most 50 resources.",
        ));
    }
    Ok(ids)
}

fn tag_pairs(p: &Params) -> Result<Vec<Tag>, KmsError> {
    let tags: Vec<Tag> = p
        .tag_list("Tag")
        .into_iter()
        .map(|(key, value)| Tag { key, value })
        .collect();
    if tags.len() > MAX_TAGS {
        return Err(KmsError::invalid_because("Tag", "At most 20 tags."));
    }
    Ok(tags)
}

pub async fn tag_resources(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let rtype = resource_type(p)?;
    let ids = resource_ids(p, true)?;
    let tags = tag_pairs(p)?;
    if tags.is_empty() {
        return Err(KmsError::missing("Tag.1.Key"));
    }
    match rtype {
        ResourceType::Key => kms.tag_keys(caller, &ids, tags, row::TagResources).await?,
        ResourceType::Secret => kms.tag_secrets(caller, &ids, tags).await?,
    }
    empty()
}

pub async fn untag_resources(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let rtype = resource_type(p)?;
    let ids = resource_ids(p, true)?;
    let keys = p.list("TagKey");
    if keys.len() > MAX_TAGS {
        return Err(KmsError::invalid_because("TagKey", "At most 20 tag keys."));
    }
    let all = p.bool_opt("All")?.unwrap_or(false);
    let which = match (keys.is_empty(), all) {
        (false, _) => Some(keys),
        (true, true) => None,
        (true, false) => return Err(KmsError::missing("TagKey.1")),
    };
    match rtype {
        ResourceType::Key => {
            kms.untag_keys(caller, &ids, which, row::UntagResources)
                .await?
        }
        ResourceType::Secret => kms.untag_secrets(caller, &ids, which).await?,
    }
    empty()
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceEntry {
    resource_id: String,
    resource_type: String,
    tag_key: String,
    tag_value: String,
}

#[derive(Serialize)]
struct TagResourceList {
    #[serde(rename = "TagResource")]
    tag_resource: Vec<TagResourceEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListTagResourcesResponse {
    tag_resources: TagResourceList,
    next_token: String,
}

const TOKEN_PREFIX: &str = "kms-tags-v1:";

fn encode_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{offset}"))
}

fn decode_token(token: &str) -> Result<usize, KmsError> {
    let bad = || KmsError::invalid_because("NextToken", "Use the NextToken of the previous page.");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    text.strip_prefix(TOKEN_PREFIX)
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)
}

pub async fn list_tag_resources(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let rtype = resource_type(p)?;
    let ids = resource_ids(p, false)?;
    let filters = tag_pairs(p)?;
    let offset = match p.opt("NextToken") {
        Some(t) => decode_token(t)?,
        None => 0,
    };
    let (rows, next, kind): (Vec<(String, Tag)>, _, &str) = match rtype {
        ResourceType::Key => {
            let (rows, next) = kms
                .list_tag_resources(caller, &ids, &filters, offset)
                .await?;
            let rows = rows.into_iter().map(|r| (r.key_id, r.tag)).collect();
            (rows, next, "key")
        }
        ResourceType::Secret => {
            let (rows, next) = kms
                .list_secret_tag_resources(caller, &ids, &filters, offset)
                .await?;
            (rows, next, "secret")
        }
    };
    to_value(&ListTagResourcesResponse {
        tag_resources: TagResourceList {
            tag_resource: rows
                .into_iter()
                .map(|(id, tag)| TagResourceEntry {
                    resource_id: id,
                    resource_type: kind.into(),
                    tag_key: tag.key,
                    tag_value: tag.value,
                })
                .collect(),
        },
        next_token: next.map(encode_token).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_keys_both_forms() {
        assert_eq!(parse_tag_keys(r#"["a","b"]"#).unwrap(), vec!["a", "b"]);
        assert_eq!(parse_tag_keys("a, b").unwrap(), vec!["a", "b"]);
        assert!(parse_tag_keys("").is_err());
        assert!(parse_tag_keys("[1]").is_err());
    }

    #[test]
    fn tokens() {
        assert_eq!(decode_token(&encode_token(200)).unwrap(), 200);
        assert!(decode_token("garbage!").is_err());
        assert!(
            decode_token(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("x:1")).is_err()
        );
    }
}
