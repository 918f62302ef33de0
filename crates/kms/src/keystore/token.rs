//! Import tokens. A token is opaque to clients:
//!
//! ```text
//! base64( 0x01 ‖ nonce (12) ‖ AES-256-GCM(token key, claims JSON) ‖ tag (16) )
//! associated data: "kms-import-token-v1"
//! ```
//!
//! The token key is derived from the root key, so a token cannot be forged or altered and a
//! token from another data dir (another root key) does not authenticate. The claims bind the
//! token to its account, region, key, wrapping key pair and wrapping algorithm, and carry its
//! expiry. The wrapping private key itself stays in the store, sealed.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{open_with, seal_with, Keystore};
use crate::error::KmsError;

const VERSION: u8 = 0x01;
const AAD: &[u8] = b"kms-import-token-v1";
/// Longest token we attempt to decode; real ones are about 250 characters.
pub const MAX_TOKEN_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    #[serde(rename = "a")]
    pub account_id: String,
    #[serde(rename = "r")]
    pub region: String,
    #[serde(rename = "k")]
    pub key_id: String,
    #[serde(rename = "w")]
    pub wrapping_key_id: String,
    #[serde(rename = "g")]
    pub algorithm: String,
    #[serde(rename = "e")]
    pub expires: i64,
}

impl Keystore {
    pub fn issue_token(&self, claims: &TokenClaims) -> Result<String, KmsError> {
        let json = serde_json::to_vec(claims).map_err(KmsError::internal)?;
        let mut raw = vec![VERSION];
        raw.extend_from_slice(&seal_with(self.token_key(), self.rng(), AAD, &json)?);
        Ok(base64::engine::general_purpose::STANDARD.encode(raw))
    }

    /// Authenticates and decodes a token. Every failure is `InvalidImportToken`; expiry is
    /// checked by the caller (it needs the clock).
    pub fn read_token(&self, token: &str) -> Result<TokenClaims, KmsError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(KmsError::InvalidImportToken);
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .map_err(|_| KmsError::InvalidImportToken)?;
        let (version, sealed) = raw.split_first().ok_or(KmsError::InvalidImportToken)?;
        if *version != VERSION {
            return Err(KmsError::InvalidImportToken);
        }
        let json = open_with(self.token_key(), AAD, sealed).ok_or(KmsError::InvalidImportToken)?;
        serde_json::from_slice(&json).map_err(|_| KmsError::InvalidImportToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> TokenClaims {
        TokenClaims {
            account_id: "1".into(),
            region: "cn-hangzhou".into(),
            key_id: "k".into(),
            wrapping_key_id: "w".into(),
            algorithm: "RSAES_OAEP_SHA_256".into(),
            expires: 100,
        }
    }

    #[test]
    fn round_trip() {
        let ks = Keystore::from_root(&[1u8; 32]).unwrap();
        let t = ks.issue_token(&claims()).unwrap();
        assert_eq!(ks.read_token(&t).unwrap(), claims());
    }

    #[test]
    fn altered_forged_or_foreign_tokens_fail() {
        let ks = Keystore::from_root(&[1u8; 32]).unwrap();
        let t = ks.issue_token(&claims()).unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&t)
            .unwrap();
        for i in 0..raw.len() {
            let mut r = raw.clone();
            r[i] ^= 0x10;
            let s = base64::engine::general_purpose::STANDARD.encode(&r);
            assert_eq!(
                ks.read_token(&s),
                Err(KmsError::InvalidImportToken),
                "byte {i}"
            );
        }
        let other = Keystore::from_root(&[2u8; 32]).unwrap();
        assert_eq!(other.read_token(&t), Err(KmsError::InvalidImportToken));
        for bad in ["", "!!!", "AA==", &"A".repeat(5000)] {
            assert_eq!(ks.read_token(bad), Err(KmsError::InvalidImportToken));
        }
    }
}
