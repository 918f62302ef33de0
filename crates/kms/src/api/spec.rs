//! The actions this server implements and their parameters: one table, used by the server
//! (required-parameter checks, routing) and by the command line (`kms <Action> --help`).
//! Adding an action means adding a row here and a handler in [`super::dispatch`].

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub required: bool,
    pub help: &'static str,
    pub kind: ParamKind,
}

/// How a parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `Name=value`
    Single,
    /// `Name.1=a&Name.2=b` (the command line takes `--Name a --Name b`)
    List,
    /// `Tag.1.Key=k&Tag.1.Value=v` (the command line takes `--Tag k=v`)
    TagList,
}

impl ParamSpec {
    /// The wire name that must be present for a required parameter.
    pub fn first_wire_name(&self) -> String {
        match self.kind {
            ParamKind::Single => self.name.to_string(),
            ParamKind::List => format!("{}.1", self.name),
            ParamKind::TagList => format!("{}.1.Key", self.name),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionSpec {
    pub name: &'static str,
    pub help: &'static str,
    pub params: &'static [ParamSpec],
}

const fn req(name: &'static str, help: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        required: true,
        help,
        kind: ParamKind::Single,
    }
}
const fn opt(name: &'static str, help: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        required: false,
        help,
        kind: ParamKind::Single,
    }
}
const fn list(name: &'static str, required: bool, help: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        required,
        help,
        kind: ParamKind::List,
    }
}
const fn tag_list(required: bool, help: &'static str) -> ParamSpec {
    ParamSpec {
        name: "Tag",
        required,
        help,
        kind: ParamKind::TagList,
    }
}
const PAGE_NUMBER: ParamSpec = opt("PageNumber", "page, from 1 (default 1)");
const PAGE_SIZE: ParamSpec = opt("PageSize", "1 to 100 (default 10)");
const REGION_ID: ParamSpec = req("RegionId", "the region, e.g. cn-hangzhou");
const RESOURCE_TYPE: ParamSpec = req("ResourceType", "key");

const KEY_ID: ParamSpec = req("KeyId", "key id or ARN acs:kms:<region>:<account>:key/<id>");
const KEY_OR_ALIAS: ParamSpec = req("KeyId", "key id, ARN, or alias/<name>");
const CONTEXT: ParamSpec = opt(
    "EncryptionContext",
    "JSON object of string pairs bound to the ciphertext",
);
const DRY_RUN: ParamSpec = opt(
    "DryRun",
    "true: check the request only (answers DryRunOperationError)",
);

pub const API_VERSION: &str = "2016-01-20";

pub static ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "CreateKey",
        help: "Create a customer master key (Origin=EXTERNAL for bring-your-own-key).",
        params: &[
            opt("Description", "up to 8192 characters"),
            opt("KeySpec", "Aliyun_AES_256 (default)"),
            opt("KeyUsage", "ENCRYPT/DECRYPT (default)"),
            opt("Origin", "Aliyun_KMS (default) or EXTERNAL"),
            opt("ProtectionLevel", "SOFTWARE (default)"),
            opt(
                "EnableAutomaticRotation",
                "true: rotate automatically (needs RotationInterval)",
            ),
            opt(
                "RotationInterval",
                "7d to 730d, in d, h, m or s (e.g. 365d)",
            ),
            opt("Tags", "JSON array [{\"TagKey\":\"k\",\"TagValue\":\"v\"}]"),
            opt("DKMSInstanceId", "ignored"),
            opt("Policy", "ignored"),
        ],
    },
    ActionSpec {
        name: "DescribeKey",
        help: "Show a key's metadata.",
        params: &[KEY_OR_ALIAS],
    },
    ActionSpec {
        name: "ListKeys",
        help: "List the keys of the account in this region.",
        params: &[
            PAGE_NUMBER,
            PAGE_SIZE,
            opt(
                "Filters",
                "JSON [{\"Key\":\"KeyState\",\"Values\":[\"Enabled\"]}]",
            ),
        ],
    },
    ActionSpec {
        name: "EnableKey",
        help: "Enable a key.",
        params: &[KEY_ID],
    },
    ActionSpec {
        name: "DisableKey",
        help: "Disable a key.",
        params: &[KEY_ID],
    },
    ActionSpec {
        name: "UpdateKeyDescription",
        help: "Change a key's description.",
        params: &[KEY_ID, req("Description", "up to 8192 characters")],
    },
    ActionSpec {
        name: "ScheduleKeyDeletion",
        help: "Delete a key after a waiting period.",
        params: &[KEY_ID, req("PendingWindowInDays", "7 to 366")],
    },
    ActionSpec {
        name: "CancelKeyDeletion",
        help: "Cancel a scheduled deletion.",
        params: &[KEY_ID],
    },
    ActionSpec {
        name: "SetDeletionProtection",
        help: "Turn deletion protection on or off.",
        params: &[
            req("EnableDeletionProtection", "true or false"),
            opt("ProtectedResourceArn", "the key's ARN"),
            opt("KeyId", "the key (instead of ProtectedResourceArn)"),
            opt("DeletionProtectionDescription", "why the key is protected"),
        ],
    },
    ActionSpec {
        name: "DescribeRegions",
        help: "List the regions this server serves.",
        params: &[],
    },
    ActionSpec {
        name: "ListResourceTags",
        help: "List a key's tags.",
        params: &[KEY_ID],
    },
    ActionSpec {
        name: "Encrypt",
        help: "Encrypt up to 6 KiB with a key's primary version.",
        params: &[
            KEY_OR_ALIAS,
            req("Plaintext", "base64 of the data"),
            CONTEXT,
            DRY_RUN,
        ],
    },
    ActionSpec {
        name: "Decrypt",
        help: "Decrypt a ciphertext blob.",
        params: &[
            req("CiphertextBlob", "base64 ciphertext blob"),
            CONTEXT,
            DRY_RUN,
        ],
    },
    ActionSpec {
        name: "GenerateDataKey",
        help: "Make a random data key; returns it in clear and encrypted.",
        params: &[
            KEY_OR_ALIAS,
            opt("KeySpec", "AES_256 (default) or AES_128"),
            opt("NumberOfBytes", "1 to 1024 (wins over KeySpec)"),
            CONTEXT,
            DRY_RUN,
        ],
    },
    ActionSpec {
        name: "GenerateDataKeyWithoutPlaintext",
        help: "Make a random data key; returns it encrypted only.",
        params: &[
            KEY_OR_ALIAS,
            opt("KeySpec", "AES_256 (default) or AES_128"),
            opt("NumberOfBytes", "1 to 1024 (wins over KeySpec)"),
            CONTEXT,
            DRY_RUN,
        ],
    },
    ActionSpec {
        name: "ReEncrypt",
        help: "Decrypt a blob and encrypt it again under another key or context.",
        params: &[
            req("CiphertextBlob", "base64 ciphertext blob"),
            req(
                "DestinationKeyId",
                "key id, ARN or alias/<name> to encrypt under",
            ),
            opt("SourceEncryptionContext", "context the blob was made with"),
            opt("DestinationEncryptionContext", "context for the new blob"),
            DRY_RUN,
        ],
    },
    ActionSpec {
        name: "GetParametersForImport",
        help: "Get a wrapping public key and an import token (24 h) for an EXTERNAL key.",
        params: &[
            KEY_ID,
            req(
                "WrappingAlgorithm",
                "RSAES_PKCS1_V1_5, RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256",
            ),
            req("WrappingKeySpec", "RSA_2048"),
        ],
    },
    ActionSpec {
        name: "ImportKeyMaterial",
        help: "Import wrapped key material into an EXTERNAL key.",
        params: &[
            KEY_ID,
            req("ImportToken", "token from GetParametersForImport"),
            req(
                "EncryptedKeyMaterial",
                "base64 of the wrapped 32-byte material",
            ),
            opt(
                "KeyMaterialExpireUnix",
                "expiry in Unix seconds; 0 or absent = never",
            ),
        ],
    },
    ActionSpec {
        name: "DeleteKeyMaterial",
        help: "Delete imported key material (the key stays, PendingImport).",
        params: &[KEY_ID],
    },
    ActionSpec {
        name: "TagResource",
        help: "Add or replace tags on a key.",
        params: &[
            opt("KeyId", "key id or ARN"),
            req("Tags", "JSON [{\"TagKey\":\"k\",\"TagValue\":\"v\"}]"),
            opt("SecretName", "not supported: keys only"),
            opt("CertificateId", "not supported: keys only"),
        ],
    },
    ActionSpec {
        name: "UntagResource",
        help: "Remove tags from a key.",
        params: &[
            opt("KeyId", "key id or ARN"),
            req("TagKeys", "JSON [\"k1\",\"k2\"] or k1,k2"),
            opt("SecretName", "not supported: keys only"),
            opt("CertificateId", "not supported: keys only"),
        ],
    },
    ActionSpec {
        name: "TagResources",
        help: "Add or replace tags on several keys.",
        params: &[
            REGION_ID,
            RESOURCE_TYPE,
            list("ResourceId", true, "key ids (up to 50)"),
            tag_list(true, "tags, Key=Value (up to 20)"),
        ],
    },
    ActionSpec {
        name: "UntagResources",
        help: "Remove tags from several keys.",
        params: &[
            REGION_ID,
            RESOURCE_TYPE,
            list("ResourceId", true, "key ids (up to 50)"),
            list("TagKey", false, "tag keys to remove (up to 20)"),
            opt("All", "true: remove all tags (when no TagKey is given)"),
        ],
    },
    ActionSpec {
        name: "ListTagResources",
        help: "List the tags of keys, 200 rows a page.",
        params: &[
            REGION_ID,
            RESOURCE_TYPE,
            list("ResourceId", false, "only these key ids"),
            tag_list(false, "only these tags, Key=Value (empty value: any)"),
            opt("NextToken", "from the previous page"),
        ],
    },
    ActionSpec {
        name: "CreateAlias",
        help: "Give a key an alias.",
        params: &[req("AliasName", "alias/<name>"), KEY_ID],
    },
    ActionSpec {
        name: "UpdateAlias",
        help: "Point an alias at another key.",
        params: &[req("AliasName", "alias/<name>"), KEY_ID],
    },
    ActionSpec {
        name: "DeleteAlias",
        help: "Delete an alias (not its key).",
        params: &[req("AliasName", "alias/<name>")],
    },
    ActionSpec {
        name: "ListAliases",
        help: "List the account's aliases.",
        params: &[PAGE_NUMBER, PAGE_SIZE],
    },
    ActionSpec {
        name: "ListAliasesByKeyId",
        help: "List a key's aliases.",
        params: &[KEY_ID, PAGE_NUMBER, PAGE_SIZE],
    },
    ActionSpec {
        name: "CreateKeyVersion",
        help: "Rotate a key now: a new primary version.",
        params: &[KEY_ID],
    },
    ActionSpec {
        name: "DescribeKeyVersion",
        help: "Show a key version.",
        params: &[KEY_ID, req("KeyVersionId", "version id")],
    },
    ActionSpec {
        name: "ListKeyVersions",
        help: "List a key's versions, oldest first.",
        params: &[KEY_ID, PAGE_NUMBER, PAGE_SIZE],
    },
    ActionSpec {
        name: "UpdateRotationPolicy",
        help: "Turn automatic rotation on or off.",
        params: &[
            KEY_ID,
            req("EnableAutomaticRotation", "true or false"),
            opt(
                "RotationInterval",
                "7d to 730d, in d, h, m or s (needed when enabling)",
            ),
        ],
    },
];

pub fn find(name: &str) -> Option<&'static ActionSpec> {
    ACTIONS.iter().find(|a| a.name == name)
}

/// Actions that change state: their audit line must be on disk before the response, and
/// they are refused while the audit trail cannot be written. Reads and cryptographic calls
/// are recorded without waiting. (Moved here from `server.rs` so that the protocol layer can
/// ask it too.)
pub fn changes_state(action: &str) -> bool {
    !(action.starts_with("Describe")
        || action.starts_with("List")
        || matches!(
            action,
            "Encrypt"
                | "Decrypt"
                | "GenerateDataKey"
                | "GenerateDataKeyWithoutPlaintext"
                | "ReEncrypt"
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_have_state_rules_where_they_touch_keys() {
        let mut names: Vec<_> = ACTIONS.iter().map(|a| a.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ACTIONS.len());
        for a in ACTIONS {
            let touches_key = a
                .params
                .iter()
                .any(|p| p.name == "KeyId" || p.name == "CiphertextBlob");
            let reads_or_tags_only = [
                "ListResourceTags",
                "ListAliasesByKeyId",
                "DescribeKeyVersion",
                "ListKeyVersions",
            ];
            if touches_key && !reads_or_tags_only.contains(&a.name) {
                assert!(
                    crate::service::state::MATRIX
                        .iter()
                        .any(|(n, _)| *n == a.name),
                    "{} has no row in the state matrix",
                    a.name
                );
            }
        }
    }
}
