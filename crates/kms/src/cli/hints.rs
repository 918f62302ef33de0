//! Hint lines printed under a server error, from what the client side knows and the
//! server's one answer does not say: the parameters this command sent, the key's
//! `DescribeKey`, the key id inside a ciphertext. The server's `Code` and `Message` are
//! printed unchanged above them (the import stays no oracle: these hints only repeat what
//! the user's side already knows).

use base64::Engine;
use serde_json::Value;

use crate::client::Client;

/// Parameters that carry base64: a line break inside one is openssl's 64-column wrapping.
const BASE64_PARAMS: [&str; 4] = [
    "EncryptedKeyMaterial",
    "ImportToken",
    "CiphertextBlob",
    "Plaintext",
];

/// `InvalidImportToken`: every cause the client cannot tell apart, and the one remedy.
pub const INVALID_TOKEN: &str =
    "hint: the import token is not usable: it was withdrawn (10 failed imports with it), \
is another key's or another server's, or the token and public key files are swapped. \
Get new import parameters (GetParametersForImport), wrap the material with the new public key, \
and import with the new token.";

pub const EXPIRED_TOKEN: &str = "hint: import tokens last 24 hours: get new import parameters \
(GetParametersForImport), wrap the material with the new public key, and import with the new token.";

/// `InvalidKeyMaterial` from `ImportKeyMaterial`: the checklist (the server says which of
/// these failed to nobody, on purpose).
pub const MATERIAL_CHECKLIST: [&str; 4] = [
    "hint: the server does not say which of these failed (so the import is no padding oracle); check:",
    "  - the material was wrapped with the WrappingAlgorithm of this token's GetParametersForImport, and with the PublicKey of that same call",
    "  - the material is exactly 32 bytes before wrapping (openssl rand -out KeyMaterial.bin 32)",
    "  - if the key had material before (expired or deleted), this is the same material: a key takes only the material of its first import",
];

fn line_break_hint(name: &str) -> String {
    format!(
        "hint: {name} has line breaks: openssl's base64 wraps every 64 characters unless given -A. \
         Make it one line: openssl enc -e -base64 -A -in <file>.bin -out <file>_base64.txt (or: tr -d '\\n' < <file>_base64.txt)"
    )
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or("")
}

/// The hints for `code`, answered to `action` sent with `params`. Looks the key up with
/// `DescribeKey` where that tells more (`Rejected.PendingImport`).
pub async fn for_error(
    client: &Client,
    action: &str,
    params: &[(String, String)],
    code: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut broken = false;
    if code.starts_with("Invalid") {
        for (name, value) in params {
            if BASE64_PARAMS.contains(&name.as_str()) && value.trim().contains(['\n', '\r']) {
                out.push(line_break_hint(name));
                broken = true;
            }
        }
    }
    match code {
        "InvalidImportToken" if !broken => out.push(INVALID_TOKEN.into()),
        "ExpiredImportToken" => out.push(EXPIRED_TOKEN.into()),
        "InvalidKeyMaterial" if !broken && action == "ImportKeyMaterial" => {
            out.extend(MATERIAL_CHECKLIST.iter().map(|s| s.to_string()))
        }
        "Rejected.PendingImport" => out.extend(pending_import(client, params).await),
        _ => {}
    }
    out
}

/// The keys a request named: `KeyId`, `DestinationKeyId`, and the key inside a
/// `CiphertextBlob` (its header names the key; reading it needs no secret).
fn keys_named(params: &[(String, String)]) -> Vec<(String, bool)> {
    let mut keys = Vec::new();
    for (name, value) in params {
        match name.as_str() {
            "KeyId" | "DestinationKeyId" => keys.push((value.clone(), false)),
            "CiphertextBlob" => {
                if let Some(h) = base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .ok()
                    .and_then(|b| crate::keystore::blob::parse_header(&b))
                {
                    keys.push((h.key_id, true));
                }
            }
            _ => {}
        }
    }
    keys
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `Rejected.PendingImport`: which key has no material, and whether it had some before
/// (an expiry in the past, a ciphertext made with it, or a record of an import from here).
async fn pending_import(client: &Client, params: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (key, from_ciphertext) in keys_named(params) {
        let Ok(r) = client
            .call("DescribeKey", &crate::client::params(&[("KeyId", &key)]))
            .await
        else {
            continue;
        };
        if !r.is_ok() || str_at(&r.body, &["KeyMetadata", "KeyState"]) != "PendingImport" {
            continue;
        }
        let id = str_at(&r.body, &["KeyMetadata", "KeyId"]).to_string();
        let again = format!(
            "import the same material again (kms import-material --key-id {id} --material-file KeyMaterial.bin): \
             a key takes only the material of its first import, and with it every old ciphertext decrypts again."
        );
        let expire = str_at(&r.body, &["KeyMetadata", "MaterialExpireTime"]);
        let expired = crate::timefmt::parse(expire).filter(|t| *t <= now_unix());
        let imported_here = super::fingerprint::has_record(&id);
        out.push(if let Some(t) = expired {
            format!(
                "hint: the material of key {id} expired at {}; {again}",
                crate::timefmt::format_unix(t)
            )
        } else if from_ciphertext {
            format!(
                "hint: key {id} held material when this ciphertext was made; it has since expired or been deleted (DeleteKeyMaterial): {again}"
            )
        } else if imported_here {
            format!(
                "hint: material was imported into key {id} from this machine before; it has since expired or been deleted (DeleteKeyMaterial): {again}"
            )
        } else {
            format!(
                "hint: key {id} has no key material: import it (kms import-material --key-id {id} --material-file KeyMaterial.bin, \
                 or GetParametersForImport, wrap, ImportKeyMaterial). If it had material before that expired or was deleted, \
                 import the same material again: a key takes only the material of its first import."
            )
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_named_reads_the_ciphertext_header() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = "6f0e5d4c-3b2a-4190-8877-665544332211";
        let blob = crate::keystore::blob::encrypt(
            &rng,
            key,
            "11111111-2222-4333-8444-555555555555",
            &[1u8; 32],
            b"",
            b"x",
        )
        .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(blob);
        let params = crate::client::params(&[("CiphertextBlob", &b64), ("DestinationKeyId", "k2")]);
        assert_eq!(
            keys_named(&params),
            vec![(key.to_string(), true), ("k2".to_string(), false)]
        );
        assert!(keys_named(&crate::client::params(&[("CiphertextBlob", "bm9wZQ==")])).is_empty());
    }
}
