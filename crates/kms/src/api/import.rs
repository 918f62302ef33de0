//! GetParametersForImport, ImportKeyMaterial, DeleteKeyMaterial.

use serde::Serialize;
use serde_json::Value;

use super::{empty, to_value};
use crate::error::KmsError;
use crate::protocol::params::Params;
use crate::service::import::public_key_base64;
use crate::service::{Caller, Kms};
use crate::timefmt::format_unix;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetParametersForImportResponse {
    key_id: String,
    import_token: String,
    public_key: String,
    token_expire_time: String,
}

pub async fn get_parameters_for_import(
    kms: &Kms,
    caller: &Caller,
    p: &Params,
) -> Result<Value, KmsError> {
    let out = kms
        .get_parameters_for_import(
            caller,
            p.required("KeyId")?,
            p.required("WrappingAlgorithm")?,
            p.required("WrappingKeySpec")?,
        )
        .await?;
    to_value(&GetParametersForImportResponse {
        key_id: out.key_id,
        import_token: out.import_token,
        public_key: public_key_base64(&out.public_key_der),
        token_expire_time: format_unix(out.token_expire_time),
    })
}

/// Longest EncryptedKeyMaterial we decode: far above an RSA-2048 ciphertext in base64.
const MAX_ENCRYPTED_MATERIAL_CHARS: usize = 4096;

pub async fn import_key_material(
    kms: &Kms,
    caller: &Caller,
    p: &Params,
) -> Result<Value, KmsError> {
    let key_ref = p.required("KeyId")?;
    let token = p.required("ImportToken")?;
    if p.required("EncryptedKeyMaterial")?.len() > MAX_ENCRYPTED_MATERIAL_CHARS {
        return Err(KmsError::invalid_because(
            "EncryptedKeyMaterial",
            "The value is too long.",
        ));
    }
    let encrypted = p.base64_required("EncryptedKeyMaterial")?;
    let expire = p.int_opt("KeyMaterialExpireUnix", 0, i64::from(i32::MAX) * 16)?;
    kms.import_key_material(caller, key_ref, token, &encrypted, expire)
        .await?;
    empty()
}

pub async fn delete_key_material(
    kms: &Kms,
    caller: &Caller,
    p: &Params,
) -> Result<Value, KmsError> {
    kms.delete_key_material(caller, p.required("KeyId")?)
        .await?;
    empty()
}
