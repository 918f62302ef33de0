//! Encrypt, Decrypt, GenerateDataKey, GenerateDataKeyWithoutPlaintext, ReEncrypt.

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use super::{dry_run, to_value};
use crate::error::KmsError;
use crate::keystore::Secret;
use crate::protocol::params::Params;
use crate::protocol::render::{Fields, Reply, Typed};
use crate::service::crypto::{EncryptionContext, Sealed};
use crate::service::{Caller, Kms};

pub(crate) fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub(crate) fn context(p: &Params, name: &str) -> Result<EncryptionContext, KmsError> {
    match p.opt(name) {
        Some(text) => EncryptionContext::parse(name, text),
        None => Ok(EncryptionContext::default()),
    }
}

/// Encrypt's, GenerateDataKey's and ReEncrypt's answer. The blob and the data key are kept
/// as bytes and written in base64 straight into the response ([`Fields::base64`]): no
/// base64 string of either is built, so the data key exists only in its zeroizing buffer
/// and in the response bytes.
pub(crate) struct CiphertextResponse {
    pub(crate) ciphertext_blob: Vec<u8>,
    pub(crate) key_id: String,
    pub(crate) key_version_id: String,
    /// GenerateDataKey's data key (`Plaintext`).
    pub(crate) plaintext: Option<Secret>,
}

impl Typed for CiphertextResponse {
    fn write(&self, out: &mut dyn Fields) {
        out.base64("CiphertextBlob", &self.ciphertext_blob);
        out.string("KeyId", &self.key_id);
        out.string("KeyVersionId", &self.key_version_id);
        if let Some(p) = &self.plaintext {
            out.base64("Plaintext", p);
        }
    }
    fn to_value(&self) -> Result<Value, KmsError> {
        let mut m = serde_json::Map::new();
        m.insert("CiphertextBlob".into(), b64(&self.ciphertext_blob).into());
        m.insert("KeyId".into(), self.key_id.clone().into());
        m.insert("KeyVersionId".into(), self.key_version_id.clone().into());
        if let Some(p) = &self.plaintext {
            m.insert("Plaintext".into(), b64(p).into());
        }
        Ok(Value::Object(m))
    }
    fn key_ids(&self) -> (Option<&str>, Option<&str>) {
        (Some(&self.key_id), Some(&self.key_version_id))
    }
}

impl CiphertextResponse {
    fn new(s: Sealed, plaintext: Option<Secret>) -> Self {
        Self {
            ciphertext_blob: s.ciphertext_blob,
            key_id: s.key_id,
            key_version_id: s.key_version_id,
            plaintext,
        }
    }
}

pub async fn encrypt(kms: &Kms, caller: &Caller, p: &Params) -> Result<Reply, KmsError> {
    let key_ref = p.required("KeyId")?;
    let plaintext = zeroize::Zeroizing::new(p.base64_required("Plaintext")?);
    let ctx = context(p, "EncryptionContext")?;
    let sealed = kms
        .encrypt(caller, key_ref, &plaintext, &ctx, dry_run(p)?)
        .await?;
    Ok(Reply::Typed(Box::new(CiphertextResponse::new(
        sealed, None,
    ))))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DecryptResponse {
    pub(crate) plaintext: String,
    pub(crate) key_id: String,
    pub(crate) key_version_id: String,
}

impl Typed for DecryptResponse {
    fn write(&self, out: &mut dyn Fields) {
        out.string("Plaintext", &self.plaintext);
        out.string("KeyId", &self.key_id);
        out.string("KeyVersionId", &self.key_version_id);
    }
    fn to_value(&self) -> Result<Value, KmsError> {
        to_value(self)
    }
    fn key_ids(&self) -> (Option<&str>, Option<&str>) {
        (Some(&self.key_id), Some(&self.key_version_id))
    }
}

pub async fn decrypt(kms: &Kms, caller: &Caller, p: &Params) -> Result<Reply, KmsError> {
    let blob = p.base64_required("CiphertextBlob")?;
    let ctx = context(p, "EncryptionContext")?;
    let opened = kms.decrypt(caller, &blob, &ctx, dry_run(p)?).await?;
    Ok(Reply::Typed(Box::new(DecryptResponse {
        plaintext: b64(&opened.plaintext),
        key_id: opened.key_id,
        key_version_id: opened.key_version_id,
    })))
}

/// Data key length: NumberOfBytes wins; else KeySpec AES_256 → 32, AES_128 → 16; else 32.
pub(crate) fn data_key_len(p: &Params) -> Result<usize, KmsError> {
    if let Some(n) = p.int_opt("NumberOfBytes", 1, 1024)? {
        return Ok(n as usize);
    }
    match p.opt("KeySpec") {
        None | Some("AES_256") => Ok(32),
        Some("AES_128") => Ok(16),
        Some(_) => Err(KmsError::invalid_because(
            "KeySpec",
            "Use AES_256 or AES_128.",
        )),
    }
}

pub async fn generate_data_key(
    kms: &Kms,
    caller: &Caller,
    p: &Params,
    with_plaintext: bool,
) -> Result<Reply, KmsError> {
    let key_ref = p.required("KeyId")?;
    let n = data_key_len(p)?;
    let ctx = context(p, "EncryptionContext")?;
    let (sealed, data_key) = kms
        .generate_data_key(caller, key_ref, n, &ctx, dry_run(p)?, with_plaintext)
        .await?;
    let plaintext = with_plaintext.then_some(data_key);
    Ok(Reply::Typed(Box::new(CiphertextResponse::new(
        sealed, plaintext,
    ))))
}

pub async fn re_encrypt(kms: &Kms, caller: &Caller, p: &Params) -> Result<Reply, KmsError> {
    // A public-key ciphertext source (issue 17): see `api::asymmetric`.
    if super::asymmetric::has_asymmetric_source(p) {
        return super::asymmetric::re_encrypt_from_asymmetric(kms, caller, p)
            .await
            .map(Reply::Value);
    }
    let blob = p.base64_required("CiphertextBlob")?;
    let destination = p.required("DestinationKeyId")?;
    let source_ctx = context(p, "SourceEncryptionContext")?;
    let dest_ctx = context(p, "DestinationEncryptionContext")?;
    let sealed = kms
        .re_encrypt(
            caller,
            &blob,
            destination,
            &source_ctx,
            &dest_ctx,
            dry_run(p)?,
        )
        .await?;
    Ok(Reply::Typed(Box::new(CiphertextResponse::new(
        sealed, None,
    ))))
}
