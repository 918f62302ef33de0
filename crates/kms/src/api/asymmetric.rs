//! GetPublicKey, AsymmetricSign, AsymmetricVerify, AsymmetricEncrypt, AsymmetricDecrypt,
//! ExportDataKey, GenerateAndExportDataKey, and ReEncrypt's public-key source (reference
//! alibaba-kms-asymmetric-secrets.md §3, §4). Binary values are standard base64;
//! `AsymmetricVerify.Value` is a JSON boolean.

use serde::Serialize;
use serde_json::Value;

use super::crypto::{b64, context, data_key_len};
use super::{dry_run, to_value};
use crate::error::KmsError;
use crate::model::AsymmetricAlgorithm;
use crate::protocol::params::Params;
use crate::service::asymmetric::{ExportTarget, Exported, VersionRef};
use crate::service::{Caller, Kms};

/// `Algorithm` (or `SourceEncryptionAlgorithm`): an unknown name is `InvalidParameter`; a
/// known one that does not fit the key is `Rejected.UnsupportedOperation` later.
fn algorithm(p: &Params, name: &str) -> Result<AsymmetricAlgorithm, KmsError> {
    AsymmetricAlgorithm::parse(p.required(name)?).ok_or_else(|| {
        KmsError::invalid_because(
            name,
            "Use RSA_PSS_SHA_256, RSA_PKCS1_SHA_256, ECDSA_SHA_256, SM2DSA, RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1 or SM2PKE.",
        )
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PublicKeyResponse {
    key_id: String,
    key_version_id: String,
    public_key: String,
}

pub async fn get_public_key(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let (v, pem) = kms
        .get_public_key(
            caller,
            p.required("KeyId")?,
            p.required("KeyVersionId")?,
            dry_run(p)?,
        )
        .await?;
    to_value(&PublicKeyResponse {
        key_id: v.key_id,
        key_version_id: v.key_version_id,
        public_key: pem,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SignResponse {
    key_id: String,
    key_version_id: String,
    value: String,
}

pub async fn asymmetric_sign(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let alg = algorithm(p, "Algorithm")?;
    let digest = p.base64_required("Digest")?;
    let (v, sig) = kms
        .asymmetric_sign(
            caller,
            p.required("KeyId")?,
            p.required("KeyVersionId")?,
            alg,
            &digest,
            dry_run(p)?,
        )
        .await?;
    to_value(&SignResponse {
        key_id: v.key_id,
        key_version_id: v.key_version_id,
        value: b64(&sig),
    })
}

/// `Value` is a JSON boolean (Go Tea declares `*bool`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct VerifyResponse {
    key_id: String,
    key_version_id: String,
    value: bool,
}

pub async fn asymmetric_verify(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let alg = algorithm(p, "Algorithm")?;
    let digest = p.base64_required("Digest")?;
    let signature = p.base64_required("Value")?;
    let (v, ok) = kms
        .asymmetric_verify(
            caller,
            p.required("KeyId")?,
            p.required("KeyVersionId")?,
            alg,
            &digest,
            &signature,
            dry_run(p)?,
        )
        .await?;
    to_value(&VerifyResponse {
        key_id: v.key_id,
        key_version_id: v.key_version_id,
        value: ok,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptResponse {
    key_id: String,
    key_version_id: String,
    ciphertext_blob: String,
}

pub async fn asymmetric_encrypt(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let alg = algorithm(p, "Algorithm")?;
    let plaintext = zeroize::Zeroizing::new(p.base64_required("Plaintext")?);
    let (v, ct) = kms
        .asymmetric_encrypt(
            caller,
            p.required("KeyId")?,
            p.required("KeyVersionId")?,
            alg,
            &plaintext,
            dry_run(p)?,
        )
        .await?;
    to_value(&EncryptResponse {
        key_id: v.key_id,
        key_version_id: v.key_version_id,
        ciphertext_blob: b64(&ct),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptResponse {
    key_id: String,
    key_version_id: String,
    plaintext: String,
}

pub async fn asymmetric_decrypt(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let alg = algorithm(p, "Algorithm")?;
    let ciphertext = p.base64_required("CiphertextBlob")?;
    // Recipient (enclave attestation, Tea only) is not supported: refused rather than
    // ignored, so a caller never receives plaintext it asked to have encrypted.
    if p.opt("Recipient").is_some() {
        return Err(KmsError::invalid_because(
            "Recipient",
            "Recipient (enclave attestation) is not supported by this server.",
        ));
    }
    let (v, plaintext) = kms
        .asymmetric_decrypt(
            caller,
            p.required("KeyId")?,
            p.required("KeyVersionId")?,
            alg,
            &ciphertext,
            dry_run(p)?,
        )
        .await?;
    let VersionRef {
        key_id,
        key_version_id,
    } = v;
    to_value(&DecryptResponse {
        key_id,
        key_version_id,
        plaintext: b64(&plaintext),
    })
}

fn export_target(p: &Params) -> Result<ExportTarget, KmsError> {
    let spec = p.required("WrappingKeySpec")?;
    let alg = p.required("WrappingAlgorithm")?;
    let public = p.base64_required("PublicKeyBlob")?;
    ExportTarget::parse(spec, alg, public)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ExportResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    ciphertext_blob: Option<String>,
    exported_data_key: String,
    key_id: String,
    key_version_id: String,
}

impl From<Exported> for ExportResponse {
    fn from(e: Exported) -> Self {
        Self {
            ciphertext_blob: e.ciphertext_blob.as_deref().map(b64),
            exported_data_key: b64(&e.exported_data_key),
            key_id: e.key_id,
            key_version_id: e.key_version_id,
        }
    }
}

pub async fn export_data_key(kms: &Kms, caller: &Caller, p: &Params) -> Result<Value, KmsError> {
    let blob = p.base64_required("CiphertextBlob")?;
    let target = export_target(p)?;
    let ctx = context(p, "EncryptionContext")?;
    let e = kms
        .export_data_key(caller, &blob, &ctx, &target, dry_run(p)?)
        .await?;
    to_value(&ExportResponse::from(e))
}

pub async fn generate_and_export_data_key(
    kms: &Kms,
    caller: &Caller,
    p: &Params,
) -> Result<Value, KmsError> {
    let key_ref = p.required("KeyId")?;
    let n = data_key_len(p)?;
    let target = export_target(p)?;
    let ctx = context(p, "EncryptionContext")?;
    let e = kms
        .generate_and_export_data_key(caller, key_ref, n, &ctx, &target, dry_run(p)?)
        .await?;
    to_value(&ExportResponse::from(e))
}

/// ReEncrypt takes the public-key path when any of its three source parameters is given
/// (reference asymmetric §3.6, \[inference\]); then all three are required.
pub fn has_asymmetric_source(p: &Params) -> bool {
    [
        "SourceKeyId",
        "SourceKeyVersionId",
        "SourceEncryptionAlgorithm",
    ]
    .iter()
    .any(|n| p.opt(n).is_some())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ReEncryptResponse {
    ciphertext_blob: String,
    key_id: String,
    key_version_id: String,
}

pub async fn re_encrypt_from_asymmetric(
    kms: &Kms,
    caller: &Caller,
    p: &Params,
) -> Result<Value, KmsError> {
    let blob = p.base64_required("CiphertextBlob")?;
    let destination = p.required("DestinationKeyId")?;
    let source_key = p.required("SourceKeyId")?;
    let source_version = p.required("SourceKeyVersionId")?;
    let alg = algorithm(p, "SourceEncryptionAlgorithm")?;
    let dest_ctx = context(p, "DestinationEncryptionContext")?;
    let sealed = kms
        .re_encrypt_from_asymmetric(
            caller,
            &blob,
            source_key,
            source_version,
            alg,
            destination,
            &dest_ctx,
            dry_run(p)?,
        )
        .await?;
    to_value(&ReEncryptResponse {
        ciphertext_blob: b64(&sealed.ciphertext_blob),
        key_id: sealed.key_id,
        key_version_id: sealed.key_version_id,
    })
}
