//! The KMS product (`Version=2016-01-20`): the one table of its actions.
//!
//! Columns, per row: help line; parameters (server's required-parameter check and the CLI);
//! throttle class; whether a successful call changes state (durable audit line); the row of
//! the key-state × action matrix (reference alibaba-kms-api.md §3.18; columns Enabled,
//! Disabled, PendingDeletion, PendingImport; `none` for an action that touches no key); the
//! RAM checks (reference alibaba-ram-sts.md §5.1: RAM action `kms:<Name>` unless named in
//! parentheses, on a resource of the given kind).
//!
//! Rows the reference's matrix lacks are marked "not in the matrix" with the rule chosen.
//! RAM rows the reference marks as inferred, or where it is silent, say so.

use super::{Cell, ParamKind, ParamSpec};
use crate::error::Rejection;

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
const RESOURCE_TYPE: ParamSpec = req("ResourceType", "key or secret");

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
const DATA_KEY_SPEC: ParamSpec = opt("KeySpec", "AES_256 (default) or AES_128");
const NUMBER_OF_BYTES: ParamSpec = opt("NumberOfBytes", "1 to 1024 (wins over KeySpec)");
const CIPHERTEXT_BLOB: ParamSpec = req("CiphertextBlob", "base64 ciphertext blob");
const ALIAS_NAME: ParamSpec = req("AliasName", "alias/<name>");
const TAGS_JSON: &str = "JSON [{\"TagKey\":\"k\",\"TagValue\":\"v\"}]";
// Asymmetric keys (issue 17).
const KEY_VERSION_ID: ParamSpec = req("KeyVersionId", "the key version id");
const PUBLIC_KEY_BLOB: ParamSpec = req(
    "PublicKeyBlob",
    "base64 of the DER SubjectPublicKeyInfo to encrypt the data key to",
);
const WRAPPING_KEY_SPEC: ParamSpec = req("WrappingKeySpec", "RSA_2048 or EC_SM2");
const WRAPPING_ALGORITHM: ParamSpec = req(
    "WrappingAlgorithm",
    "RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1 (RSA_2048), SM2PKE (EC_SM2)",
);
const SECRET_NAME: ParamSpec = opt("SecretName", "the secret (instead of KeyId)");
const SECRET: ParamSpec = req(
    "SecretName",
    "name or ARN acs:kms:<region>:<account>:secret/<name>",
);
const FETCH_TAGS: ParamSpec = opt("FetchTags", "true: include the tags");
const CERTIFICATE_ID: ParamSpec = opt("CertificateId", "not supported: keys only");

// The cells of the matrix.
const OK: Cell = Cell::Ok;
const DIS: Cell = Cell::Reject(Rejection::Disabled);
const PDEL: Cell = Cell::Reject(Rejection::PendingDeletion);
const PIMP: Cell = Cell::Reject(Rejection::PendingImport);
const SMF: Cell = Cell::Reject(Rejection::StateModifiedFailed);

actions! {
    product: Kms, version: "2016-01-20", ram: "kms";

    CreateKey {
        help: "Create a customer master key (Origin=EXTERNAL for bring-your-own-key).",
        params: [
            opt("Description", "up to 8192 characters"),
            opt("KeySpec", "Aliyun_AES_256 (default) or Aliyun_SM4"),
            opt("KeyUsage", "ENCRYPT/DECRYPT (default)"),
            opt("Origin", "Aliyun_KMS (default) or EXTERNAL"),
            opt("ProtectionLevel", "SOFTWARE (default)"),
            opt(
                "EnableAutomaticRotation",
                "true: rotate automatically (needs RotationInterval)",
            ),
            opt("RotationInterval", "7d to 730d, in d, h, m or s (e.g. 365d)"),
            opt("Tags", "JSON array [{\"TagKey\":\"k\",\"TagValue\":\"v\"}]"),
            opt("DKMSInstanceId", "ignored"),
            opt("Policy", "ignored"),
        ],
        throttle: Management,
        changes_state: true,
        state: [OK, OK, OK, OK],
        ram: [KeyContainer],
    },
    DescribeKey {
        help: "Show a key's metadata.",
        params: [KEY_OR_ALIAS],
        throttle: Management,
        changes_state: false,
        state: [OK, OK, OK, OK],
        ram: [Key],
    },
    ListKeys {
        help: "List the keys of the account in this region.",
        params: [
            PAGE_NUMBER,
            PAGE_SIZE,
            opt("Filters", "JSON [{\"Key\":\"KeyState\",\"Values\":[\"Enabled\"]}]"),
        ],
        throttle: Management,
        changes_state: false,
        state: [OK, OK, OK, OK],
        ram: [KeyContainer],
    },
    EnableKey {
        help: "Enable a key.",
        params: [KEY_ID],
        throttle: Management,
        changes_state: true,
        state: [OK, OK, SMF, SMF],
        ram: [Key],
    },
    DisableKey {
        help: "Disable a key.",
        params: [KEY_ID],
        throttle: Management,
        changes_state: true,
        state: [OK, OK, SMF, SMF],
        ram: [Key],
    },
    UpdateKeyDescription {
        help: "Change a key's description.",
        params: [KEY_ID, req("Description", "up to 8192 characters")],
        throttle: Management,
        changes_state: true,
        state: [OK, OK, PDEL, OK],
        ram: [Key],
    },
    ScheduleKeyDeletion {
        help: "Delete a key after a waiting period.",
        params: [KEY_ID, req("PendingWindowInDays", "7 to 366")],
        throttle: Management,
        changes_state: true,
        state: [OK, OK, SMF, OK],
        ram: [Key],
    },
    CancelKeyDeletion {
        help: "Cancel a scheduled deletion.",
        params: [KEY_ID],
        throttle: Management,
        changes_state: true,
        state: [SMF, SMF, OK, SMF],
        ram: [Key],
    },
    /// Not in the matrix: the reference says "not allowed in PendingDeletion" without a code;
    /// we answer Rejected.PendingDeletion like the other metadata updates. RAM: name doc, K
    /// (S when ProtectedResourceArn is a secret, which this server does not support).
    SetDeletionProtection {
        help: "Turn deletion protection on or off.",
        params: [
            req("EnableDeletionProtection", "true or false"),
            opt("ProtectedResourceArn", "the key's ARN"),
            opt("KeyId", "the key (instead of ProtectedResourceArn)"),
            opt("DeletionProtectionDescription", "why the key is protected"),
        ],
        throttle: Management,
        changes_state: true,
        state: [OK, OK, PDEL, OK],
        ram: [Key],
    },
    /// Touches no key. RAM: none, any authenticated caller.
    DescribeRegions {
        help: "List the regions this server serves.",
        params: [],
        throttle: Management,
        changes_state: false,
        state: none,
        ram: [],
    },
    /// RAM: K (or S for a secret, not supported here).
    ListResourceTags {
        help: "List a key's tags.",
        params: [KEY_ID],
        throttle: Management,
        changes_state: false,
        state: [OK, OK, OK, OK],
        ram: [Key],
    },
    Encrypt {
        help: "Encrypt up to 6 KiB with a key's primary version.",
        params: [KEY_OR_ALIAS, req("Plaintext", "base64 of the data"), CONTEXT, DRY_RUN],
        throttle: Cryptographic,
        changes_state: false,
        state: [OK, DIS, PDEL, PIMP],
        ram: [Key],
    },
    /// RAM: the key is the one named inside the ciphertext blob.
    Decrypt {
        help: "Decrypt a ciphertext blob.",
        params: [CIPHERTEXT_BLOB, CONTEXT, DRY_RUN],
        throttle: Cryptographic,
        changes_state: false,
        state: [OK, DIS, PDEL, PIMP],
        ram: [Key],
    },
    GenerateDataKey {
        help: "Make a random data key; returns it in clear and encrypted.",
        params: [KEY_OR_ALIAS, DATA_KEY_SPEC, NUMBER_OF_BYTES, CONTEXT, DRY_RUN],
        throttle: Cryptographic,
        changes_state: false,
        state: [OK, DIS, PDEL, PIMP],
        ram: [Key],
    },
    GenerateDataKeyWithoutPlaintext {
        help: "Make a random data key; returns it encrypted only.",
        params: [KEY_OR_ALIAS, DATA_KEY_SPEC, NUMBER_OF_BYTES, CONTEXT, DRY_RUN],
        throttle: Cryptographic,
        changes_state: false,
        state: [OK, DIS, PDEL, PIMP],
        ram: [Key],
    },
    /// Not in the matrix: the Encrypt/Decrypt rule applies to both the source and the
    /// destination key (\[inference\], reference §3.18). RAM: kms:ReEncryptFrom on the source
    /// key (named inside the blob) and kms:ReEncryptTo on DestinationKeyId.
    ReEncrypt {
        help: "Decrypt a blob and encrypt it again under another key or context.",
        params: [
            CIPHERTEXT_BLOB,
            req("DestinationKeyId", "key id, ARN or alias/<name> to encrypt under"),
            opt("SourceEncryptionContext", "context the blob was made with"),
            opt("DestinationEncryptionContext", "context for the new blob"),
            opt("SourceKeyId", "asymmetric source: the key that decrypts CiphertextBlob"),
            opt("SourceKeyVersionId", "asymmetric source: its version"),
            opt(
                "SourceEncryptionAlgorithm",
                "asymmetric source: RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1 or SM2PKE",
            ),
            DRY_RUN,
        ],
        throttle: Cryptographic,
        changes_state: false,
        state: [OK, DIS, PDEL, PIMP],
        ram: [Key(ReEncryptFrom), Key(ReEncryptTo)],
    },
    GetParametersForImport {
        help: "Get a wrapping public key and an import token (24 h) for an EXTERNAL key.",
        params: [
            KEY_ID,
            req(
                "WrappingAlgorithm",
                "RSAES_PKCS1_V1_5, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256 (RSA_2048) or SM2PKE (EC_SM2)",
            ),
            req("WrappingKeySpec", "RSA_2048 or EC_SM2"),
        ],
        throttle: Import,
        changes_state: true,
        state: [OK, OK, OK, OK],
        ram: [Key],
    },
    ImportKeyMaterial {
        help: "Import wrapped key material into an EXTERNAL key.",
        params: [
            KEY_ID,
            req("ImportToken", "token from GetParametersForImport"),
            req("EncryptedKeyMaterial", "base64 of the wrapped 32-byte material"),
            opt("KeyMaterialExpireUnix", "expiry in Unix seconds; 0 or absent = never"),
        ],
        throttle: Import,
        changes_state: true,
        state: [OK, OK, SMF, OK],
        ram: [Key],
    },
    DeleteKeyMaterial {
        help: "Delete imported key material (the key stays, PendingImport).",
        params: [KEY_ID],
        throttle: Management,
        changes_state: true,
        state: [OK, OK, OK, OK],
        ram: [Key],
    },
    /// RAM: K (or S for a secret, not supported here).
    TagResource {
        help: "Add or replace tags on a key.",
        params: [
            opt("KeyId", "key id or ARN"),
            req("Tags", TAGS_JSON),
            SECRET_NAME,
            CERTIFICATE_ID,
        ],
        throttle: Management,
        changes_state: true,
        state: [OK, OK, PDEL, OK],
        ram: [Key],
    },
    /// RAM: K (or S for a secret, not supported here).
    UntagResource {
        help: "Remove tags from a key.",
        params: [
            opt("KeyId", "key id or ARN"),
            req("TagKeys", "JSON [\"k1\",\"k2\"] or k1,k2"),
            SECRET_NAME,
            CERTIFICATE_ID,
        ],
        throttle: Management,
        changes_state: true,
        state: [OK, OK, PDEL, OK],
        ram: [Key],
    },
    /// Not in the matrix: TagResource's rule for each key (\[inference\]). RAM: name doc, K per
    /// ResourceId.N.
    TagResources {
        help: "Add or replace tags on several keys.",
        params: [
            REGION_ID,
            RESOURCE_TYPE,
            list("ResourceId", true, "key ids or secret names (up to 50)"),
            tag_list(true, "tags, Key=Value (up to 20)"),
        ],
        throttle: Management,
        changes_state: true,
        state: [OK, OK, PDEL, OK],
        ram: [Key],
    },
    /// Not in the matrix: UntagResource's rule for each key (\[inference\]). RAM: name doc, K
    /// per ResourceId.N.
    UntagResources {
        help: "Remove tags from several keys.",
        params: [
            REGION_ID,
            RESOURCE_TYPE,
            list("ResourceId", true, "key ids or secret names (up to 50)"),
            list("TagKey", false, "tag keys to remove (up to 20)"),
            opt("All", "true: remove all tags (when no TagKey is given)"),
        ],
        throttle: Management,
        changes_state: true,
        state: [OK, OK, PDEL, OK],
        ram: [Key],
    },
    /// Not in the matrix: a read, allowed in every state like ListResourceTags (\[inference\]).
    /// RAM: K per ResourceId.N (\[inference\] in the reference, covered by kms:List*); the
    /// reference is silent on a call without ResourceId (all the caller's keys).
    ListTagResources {
        help: "List the tags of keys, 200 rows a page.",
        params: [
            REGION_ID,
            RESOURCE_TYPE,
            list("ResourceId", false, "only these key ids or secret names"),
            tag_list(false, "only these tags, Key=Value (empty value: any)"),
            opt("NextToken", "from the previous page"),
        ],
        throttle: Management,
        changes_state: false,
        state: [OK, OK, OK, OK],
        ram: [Key],
    },
    /// RAM: on the alias and on the key.
    CreateAlias {
        help: "Give a key an alias.",
        params: [ALIAS_NAME, KEY_ID],
        throttle: Management,
        changes_state: true,
        state: [OK, OK, SMF, OK],
        ram: [Alias, Key],
    },
    /// RAM: on the alias and on the key. The reference does not say whether the key is the
    /// new target (KeyId) or the old one, or both; we record the kind only.
    UpdateAlias {
        help: "Point an alias at another key.",
        params: [ALIAS_NAME, KEY_ID],
        throttle: Management,
        changes_state: true,
        state: [OK, OK, PDEL, OK],
        ram: [Alias, Key],
    },
    /// RAM: on the alias and on the key; the request names no key, so the key is the alias's
    /// target (the reference is silent on which key).
    DeleteAlias {
        help: "Delete an alias (not its key).",
        params: [ALIAS_NAME],
        throttle: Management,
        changes_state: true,
        state: [OK, OK, OK, OK],
        ram: [Alias, Key],
    },
    ListAliases {
        help: "List the account's aliases.",
        params: [PAGE_NUMBER, PAGE_SIZE],
        throttle: Management,
        changes_state: false,
        state: [OK, OK, OK, OK],
        ram: [AliasContainer],
    },
    ListAliasesByKeyId {
        help: "List a key's aliases.",
        params: [KEY_ID, PAGE_NUMBER, PAGE_SIZE],
        throttle: Management,
        changes_state: false,
        state: [OK, OK, OK, OK],
        ram: [Key],
    },
    CreateKeyVersion {
        help: "Rotate a key now: a new primary version.",
        params: [KEY_ID],
        throttle: Management,
        changes_state: true,
        state: [OK, DIS, PDEL, PIMP],
        ram: [Key],
    },
    DescribeKeyVersion {
        help: "Show a key version.",
        params: [KEY_ID, req("KeyVersionId", "version id")],
        throttle: Management,
        changes_state: false,
        state: [OK, OK, OK, OK],
        ram: [Key],
    },
    ListKeyVersions {
        help: "List a key's versions, oldest first.",
        params: [KEY_ID, PAGE_NUMBER, PAGE_SIZE],
        throttle: Management,
        changes_state: false,
        state: [OK, OK, OK, OK],
        ram: [Key],
    },
    UpdateRotationPolicy {
        help: "Turn automatic rotation on or off.",
        params: [
            KEY_ID,
            req("EnableAutomaticRotation", "true or false"),
            opt("RotationInterval", "7d to 730d, in d, h, m or s (needed when enabling)"),
        ],
        throttle: Management,
        changes_state: true,
        state: [OK, DIS, PDEL, PIMP],
        ram: [Key],
    },

    // ---- Asymmetric keys (issue 17, RSA/EC half): reference alibaba-kms-asymmetric-secrets.md
    // §3, §4, §11.1. Their state rows are the Encrypt row (\[inference\] there, except where
    // noted); RAM: kms:<Name> on the key (§5.1 of the RAM reference, doc).
    /// Not in the matrix (\[inference\]: the Encrypt row).
    GetPublicKey {
        help: "Show the public key of an asymmetric key version (PEM).",
        params: [KEY_OR_ALIAS, KEY_VERSION_ID, DRY_RUN],
        throttle: Cryptographic,
        changes_state: false,
        state: [OK, DIS, PDEL, PIMP],
        ram: [Key],
    },
    /// Not in the matrix (\[inference\]: the Encrypt row).
    AsymmetricSign {
        help: "Sign a 32-byte digest with a SIGN/VERIFY key version.",
        params: [
            KEY_OR_ALIAS,
            KEY_VERSION_ID,
            req(
                "Algorithm",
                "RSA_PSS_SHA_256, RSA_PKCS1_SHA_256, ECDSA_SHA_256 or SM2DSA",
            ),
            req("Digest", "base64 of the 32-byte digest (SHA-256; SM3(Z||M) for SM2DSA)"),
            DRY_RUN,
        ],
        throttle: Cryptographic,
        changes_state: false,
        state: [OK, DIS, PDEL, PIMP],
        ram: [Key],
    },
    /// Not in the matrix (\[inference\]: the Encrypt row).
    AsymmetricVerify {
        help: "Check a signature over a 32-byte digest.",
        params: [
            KEY_OR_ALIAS,
            KEY_VERSION_ID,
            req(
                "Algorithm",
                "RSA_PSS_SHA_256, RSA_PKCS1_SHA_256, ECDSA_SHA_256 or SM2DSA",
            ),
            req("Digest", "base64 of the 32-byte digest"),
            req("Value", "base64 of the signature"),
            DRY_RUN,
        ],
        throttle: Cryptographic,
        changes_state: false,
        state: [OK, DIS, PDEL, PIMP],
        ram: [Key],
    },
    /// Not in the matrix (\[inference\]: the Encrypt row).
    AsymmetricEncrypt {
        help: "Encrypt a short plaintext with an ENCRYPT/DECRYPT key version's public key.",
        params: [
            KEY_OR_ALIAS,
            KEY_VERSION_ID,
            req("Algorithm", "RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1 or SM2PKE"),
            req("Plaintext", "base64 of the data (RSA_2048: up to 190/214 bytes)"),
            DRY_RUN,
        ],
        throttle: Cryptographic,
        changes_state: false,
        state: [OK, DIS, PDEL, PIMP],
        ram: [Key],
    },
    /// Not in the matrix (\[inference\]: the Encrypt row).
    AsymmetricDecrypt {
        help: "Decrypt a public-key ciphertext with an ENCRYPT/DECRYPT key version.",
        params: [
            KEY_OR_ALIAS,
            KEY_VERSION_ID,
            req("Algorithm", "RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1 or SM2PKE"),
            req("CiphertextBlob", "base64 of the raw ciphertext"),
            opt("Recipient", "not supported (enclave attestation)"),
            DRY_RUN,
        ],
        throttle: Cryptographic,
        changes_state: false,
        state: [OK, DIS, PDEL, PIMP],
        ram: [Key],
    },
    /// Not in the matrix (\[inference\]: the Decrypt row). RAM: the key named inside the blob.
    ExportDataKey {
        help: "Re-encrypt a data key from its ciphertext blob under a caller's public key.",
        params: [
            CIPHERTEXT_BLOB,
            PUBLIC_KEY_BLOB,
            WRAPPING_KEY_SPEC,
            WRAPPING_ALGORITHM,
            CONTEXT,
            DRY_RUN,
        ],
        throttle: Cryptographic,
        changes_state: false,
        state: [OK, DIS, PDEL, PIMP],
        ram: [Key],
    },
    /// Not in the matrix (\[inference\]: the GenerateDataKey row).
    GenerateAndExportDataKey {
        help: "Make a random data key; returns it encrypted under the key and under a public key.",
        params: [
            KEY_OR_ALIAS,
            DATA_KEY_SPEC,
            NUMBER_OF_BYTES,
            PUBLIC_KEY_BLOB,
            WRAPPING_KEY_SPEC,
            WRAPPING_ALGORITHM,
            CONTEXT,
            DRY_RUN,
        ],
        throttle: Cryptographic,
        changes_state: false,
        state: [OK, DIS, PDEL, PIMP],
        ram: [Key],
    },

    // ------------------------------------------------------------ Secrets Manager (issue 18)
    // No key-state row: these actions name a secret, not a key (the secret's EncryptionKeyId
    // is checked with the GenerateDataKey/Decrypt rows inside the service). RAM: S or SC
    // (reference alibaba-ram-sts.md §5.1); GetSecretValue/PutSecretValue also need
    // kms:Decrypt/kms:GenerateDataKey on the secret's key, which the request does not name.
    /// RAM: SC.
    CreateSecret {
        help: "Create a secret with its first value (stage ACSCurrent).",
        params: [
            SECRET,
            req("VersionId", "id of the first version (up to 64 characters)"),
            req("SecretData", "the value (up to 30720 bytes; base64 when binary)"),
            opt("SecretDataType", "text (default) or binary"),
            opt("SecretType", "Generic (the only type this server stores)"),
            opt("EncryptionKeyId", "symmetric key id, ARN or alias (default: the account's secrets key)"),
            opt("Description", "up to 8192 characters"),
            opt("Tags", TAGS_JSON),
            opt("ExtendedConfig", "JSON object, up to 1024 characters"),
            opt("EnableAutomaticRotation", "managed secrets only (refused here)"),
            opt("RotationInterval", "6h to 365d"),
            opt("Policy", "ignored"),
            opt("DKMSInstanceId", "ignored"),
        ],
        throttle: Management,
        changes_state: true,
        state: none,
        ram: [SecretContainer],
    },
    /// Changes no state, but is not a Describe/List: audited without waiting.
    GetSecretValue {
        help: "Get a secret's value (ACSCurrent unless VersionId or VersionStage).",
        params: [
            SECRET,
            opt("VersionId", "this version"),
            opt("VersionStage", "the version with this stage (default ACSCurrent)"),
            opt("FetchExtendedConfig", "true or false (managed secrets only)"),
            DRY_RUN,
        ],
        throttle: Management,
        changes_state: false,
        state: none,
        ram: [Secret],
    },
    PutSecretValue {
        help: "Store a new version of a secret's value.",
        params: [
            SECRET,
            req("VersionId", "id of the new version (up to 64 characters)"),
            req("SecretData", "the value (up to 30720 bytes; base64 when binary)"),
            opt("SecretDataType", "text (default) or binary"),
            opt("VersionStages", "JSON array of stages (default [\"ACSCurrent\"])"),
        ],
        throttle: Management,
        changes_state: true,
        state: none,
        ram: [Secret],
    },
    DescribeSecret {
        help: "Show a secret's metadata (never its value).",
        params: [SECRET, FETCH_TAGS],
        throttle: Management,
        changes_state: false,
        state: none,
        ram: [Secret],
    },
    /// RAM: SC.
    ListSecrets {
        help: "List the account's secrets in this region.",
        params: [
            PAGE_NUMBER,
            PAGE_SIZE,
            FETCH_TAGS,
            opt("Filters", "JSON [{\"Key\":\"SecretName\",\"Values\":[\"s1\"]}]"),
        ],
        throttle: Management,
        changes_state: false,
        state: none,
        ram: [SecretContainer],
    },
    UpdateSecret {
        help: "Change a secret's description.",
        params: [
            SECRET,
            opt("Description", "up to 8192 characters"),
            opt("ExtendedConfig.CustomData", "managed secrets only (refused here)"),
        ],
        throttle: Management,
        changes_state: true,
        state: none,
        ram: [Secret],
    },
    DeleteSecret {
        help: "Delete a secret after a recovery window, or at once.",
        params: [
            SECRET,
            opt("RecoveryWindowInDays", "7 to 30 (default 30)"),
            opt("ForceDeleteWithoutRecovery", "true: delete now, no recovery"),
        ],
        throttle: Management,
        changes_state: true,
        state: none,
        ram: [Secret],
    },
    RestoreSecret {
        help: "Cancel a secret's deletion during its recovery window.",
        params: [SECRET],
        throttle: Management,
        changes_state: true,
        state: none,
        ram: [Secret],
    },
    ListSecretVersionIds {
        help: "List a secret's versions, newest first.",
        params: [
            SECRET,
            opt("IncludeDeprecated", "true: also versions without a stage"),
            PAGE_NUMBER,
            PAGE_SIZE,
        ],
        throttle: Management,
        changes_state: false,
        state: none,
        ram: [Secret],
    },
    UpdateSecretVersionStage {
        help: "Attach, move or remove a version stage.",
        params: [
            SECRET,
            req("VersionStage", "ACSCurrent, ACSPrevious or a custom stage"),
            opt("MoveToVersion", "version to put the stage on"),
            opt("RemoveFromVersion", "version to take the stage from"),
        ],
        throttle: Management,
        changes_state: true,
        state: none,
        ram: [Secret],
    },
    /// RAM: inf (reference §5.1).
    RotateSecret {
        help: "Rotate a managed secret (Generic secrets: use PutSecretValue).",
        params: [SECRET, req("VersionId", "id of the new version")],
        throttle: Management,
        changes_state: true,
        state: none,
        ram: [Secret],
    },
    /// RAM: inf (reference §5.1).
    UpdateSecretRotationPolicy {
        help: "Turn a managed secret's automatic rotation on or off.",
        params: [
            SECRET,
            req("EnableAutomaticRotation", "true or false"),
            opt("RotationInterval", "6h to 365d (needed when enabling)"),
        ],
        throttle: Management,
        changes_state: true,
        state: none,
        ram: [Secret],
    },
    /// Changes no state. RAM: on `*` (AliyunKMSSecretAdminAccess grants it on `*`).
    GetRandomPassword {
        help: "Generate a random password.",
        params: [
            opt("PasswordLength", "8 to 128 (default 32)"),
            opt("ExcludeCharacters", "characters never to use"),
            opt("ExcludeLowercase", "true: no a-z"),
            opt("ExcludeUppercase", "true: no A-Z"),
            opt("ExcludeNumbers", "true: no 0-9"),
            opt("ExcludePunctuation", "true: no punctuation"),
            opt("RequireEachIncludedType", "true: at least one of each class used"),
        ],
        throttle: Management,
        changes_state: false,
        state: none,
        ram: [Any],
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{Resource, ThrottleClass};

    #[test]
    fn every_name_round_trips_and_is_unique() {
        for a in Action::ALL {
            assert_eq!(Action::from_name(a.name()), Some(*a));
            assert_eq!(a.to_string(), a.name());
            assert!(!a.help().is_empty(), "{a}");
        }
        let mut names: Vec<_> = Action::ALL.iter().map(|a| a.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Action::ALL.len());
        assert_eq!(Action::ALL.len(), 40 + SECRET_ACTIONS.len());
        assert_eq!(Action::from_name("NoSuchAction"), None);
        assert_eq!(Action::from_name("encrypt"), None);
        assert_eq!(Action::PRODUCT.version(), VERSION);
    }

    #[test]
    fn parameter_names_are_unique_per_action() {
        for a in Action::ALL {
            let mut names: Vec<_> = a.params().iter().map(|p| p.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), a.params().len(), "{a}");
        }
    }

    /// The Secrets Manager rows (issue 18).
    const SECRET_ACTIONS: [&str; 13] = [
        "CreateSecret",
        "GetSecretValue",
        "PutSecretValue",
        "DescribeSecret",
        "ListSecrets",
        "UpdateSecret",
        "DeleteSecret",
        "RestoreSecret",
        "ListSecretVersionIds",
        "UpdateSecretVersionStage",
        "RotateSecret",
        "UpdateSecretRotationPolicy",
        "GetRandomPassword",
    ];

    /// Every action that names a key (or a ciphertext blob, which names one) has a row of its
    /// own, and that row belongs to it; only DescribeRegions touches no key.
    #[test]
    fn rows_belong_to_their_action() {
        for a in Action::ALL {
            let names_key = a.params().iter().any(|p| {
                matches!(
                    p.name,
                    "KeyId" | "CiphertextBlob" | "ResourceId" | "AliasName"
                )
            });
            match a.state_row() {
                Some(row) => assert_eq!(row.action, *a),
                None => assert!(!names_key, "{a} names a key but has no state row"),
            }
        }
        let without: Vec<_> = Action::ALL
            .iter()
            .filter(|a| a.state_row().is_none())
            .filter(|a| !SECRET_ACTIONS.contains(&a.name()))
            .collect();
        assert_eq!(without, [&Action::DescribeRegions]);
        for n in SECRET_ACTIONS {
            let a = Action::from_name(n).unwrap();
            assert_eq!(a.state_row(), None, "{n}");
        }
        assert_eq!(row::Encrypt.cells, [OK, DIS, PDEL, PIMP]);
    }

    /// The classes and the durability the server used before the table (string rules in the
    /// throttle and the server), so moving them into the table changed nothing.
    #[test]
    fn throttle_class_and_durability_are_unchanged() {
        let crypto = [
            "Encrypt",
            "Decrypt",
            "GenerateDataKey",
            "GenerateDataKeyWithoutPlaintext",
            "ReEncrypt",
            // Asymmetric keys (issue 17): new rows, all cryptographic reads.
            "GetPublicKey",
            "AsymmetricSign",
            "AsymmetricVerify",
            "AsymmetricEncrypt",
            "AsymmetricDecrypt",
            "ExportDataKey",
            "GenerateAndExportDataKey",
        ];
        for a in Action::ALL {
            let n = a.name();
            let class = if crypto.contains(&n) {
                ThrottleClass::Cryptographic
            } else if matches!(n, "GetParametersForImport" | "ImportKeyMaterial") {
                ThrottleClass::Import
            } else {
                ThrottleClass::Management
            };
            assert_eq!(a.throttle_class(), class, "{n}");
            let changes = !(n.starts_with("Describe")
                || n.starts_with("List")
                || crypto.contains(&n)
                || matches!(n, "GetSecretValue" | "GetRandomPassword"));
            assert_eq!(a.changes_state(), changes, "{n}");
        }
    }

    /// The RAM column against the reference's table (alibaba-ram-sts.md §5.1).
    #[test]
    fn ram_checks_match_the_reference() {
        use Resource::*;
        let expected: &[(&str, &[(&str, Resource)])] = &[
            ("ListKeys", &[("kms:ListKeys", KeyContainer)]),
            ("CreateKey", &[("kms:CreateKey", KeyContainer)]),
            (
                "ReEncrypt",
                &[("kms:ReEncryptFrom", Key), ("kms:ReEncryptTo", Key)],
            ),
            ("ListAliases", &[("kms:ListAliases", AliasContainer)]),
            (
                "CreateAlias",
                &[("kms:CreateAlias", Alias), ("kms:CreateAlias", Key)],
            ),
            (
                "UpdateAlias",
                &[("kms:UpdateAlias", Alias), ("kms:UpdateAlias", Key)],
            ),
            (
                "DeleteAlias",
                &[("kms:DeleteAlias", Alias), ("kms:DeleteAlias", Key)],
            ),
            ("DescribeRegions", &[]),
            ("CreateSecret", &[("kms:CreateSecret", SecretContainer)]),
            ("ListSecrets", &[("kms:ListSecrets", SecretContainer)]),
            ("GetRandomPassword", &[("kms:GetRandomPassword", Any)]),
        ];
        for a in Action::ALL {
            let got: Vec<(&str, Resource)> =
                a.ram().iter().map(|c| (c.action, c.resource)).collect();
            match expected.iter().find(|(n, _)| *n == a.name()) {
                Some((_, want)) => assert_eq!(got, want.to_vec(), "{a}"),
                // The other secret actions: kms:<Name> on the secret.
                None if SECRET_ACTIONS.contains(&a.name()) => {
                    assert_eq!(got, [(format!("kms:{a}").as_str(), Secret)], "{a}")
                }
                // Every other action: kms:<Name> on the key.
                None => assert_eq!(got, [(format!("kms:{a}").as_str(), Key)], "{a}"),
            }
            for c in a.ram() {
                assert!(c.action.starts_with("kms:"), "{a}");
            }
        }
    }
}
