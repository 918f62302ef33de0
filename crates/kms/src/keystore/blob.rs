//! The ciphertext blob returned by Encrypt, GenerateDataKey(WithoutPlaintext) and ReEncrypt,
//! and taken by Decrypt and ReEncrypt. Our own versioned, self-describing format (the real
//! service's is proprietary; the reference only requires that a blob name its key version).
//!
//! ```text
//! offset  size  field
//! 0       1     format version, 0x01
//! 1       16    key id, the 16 bytes of its UUID
//! 17      16    key version id, the 16 bytes of its UUID
//! 33      12    AES-GCM nonce (random)
//! 45      n     AES-256-GCM ciphertext of the plaintext (n = plaintext length)
//! 45+n    16    AES-GCM tag
//! ```
//!
//! The AES key is the key version's 256-bit material. The associated data is
//!
//! ```text
//! "kms-blob-v1" ‖ bytes 0..33 of the blob ‖ u32be(len(ctx)) ‖ ctx
//! ```
//!
//! where `ctx` is the canonical encryption context (keys sorted, compact JSON; empty for
//! no context or `{}`). Since the key id is authenticated, a blob never decrypts under
//! another key, even one holding the same imported material; since the context is
//! authenticated but not stored, Decrypt must be given an equivalent context.
//!
//! Nonces are random 96-bit values: NIST SP 800-38D's bound of 2^32 encryptions per key
//! applies per key version (rotation, issue 5, resets it).

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::KmsError;

pub const FORMAT_V1: u8 = 0x01;
const HEADER_LEN: usize = 1 + 16 + 16;
const TAG_LEN: usize = 16;
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
const AAD_LABEL: &[u8] = b"kms-blob-v1";

/// The parsed header of a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobHeader {
    pub key_id: String,
    pub version_id: String,
}

fn uuid_bytes(id: &str) -> Result<[u8; 16], KmsError> {
    Uuid::parse_str(id)
        .map(|u| *u.as_bytes())
        .map_err(|_| KmsError::internal("key id is not a UUID"))
}

fn aad(header: &[u8], context: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_LABEL.len() + header.len() + 4 + context.len());
    a.extend_from_slice(AAD_LABEL);
    a.extend_from_slice(header);
    a.extend_from_slice(&(context.len() as u32).to_be_bytes());
    a.extend_from_slice(context);
    a
}

fn aes_key(material: &[u8]) -> Result<LessSafeKey, KmsError> {
    UnboundKey::new(&AES_256_GCM, material)
        .map(LessSafeKey::new)
        .map_err(|_| KmsError::internal("key material is not 32 bytes"))
}

/// Encrypts `plaintext` under one key version.
pub fn encrypt(
    rng: &SystemRandom,
    key_id: &str,
    version_id: &str,
    material: &[u8],
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, KmsError> {
    let key = aes_key(material)?;
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&uuid_bytes(key_id)?);
    out.extend_from_slice(&uuid_bytes(version_id)?);
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)
        .map_err(|_| KmsError::internal("rng"))?;
    out.extend_from_slice(&nonce);
    let associated = aad(&out[..HEADER_LEN], context);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&associated),
            &mut out[HEADER_LEN + NONCE_LEN..],
        )
        .map_err(|_| KmsError::internal("seal"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Reads the header without decrypting, so the caller can find the key version.
/// Any malformed blob is `None`; the caller answers one generic error for all of them.
pub fn parse_header(blob: &[u8]) -> Option<BlobHeader> {
    if blob.len() < OVERHEAD || blob[0] != FORMAT_V1 {
        return None;
    }
    let key = Uuid::from_slice(&blob[1..17]).ok()?;
    let ver = Uuid::from_slice(&blob[17..33]).ok()?;
    Some(BlobHeader {
        key_id: key.hyphenated().to_string(),
        version_id: ver.hyphenated().to_string(),
    })
}

/// Decrypts a blob whose header was parsed with [`parse_header`]. `None` for any failure
/// (tampered bytes, wrong context, wrong material).
pub fn decrypt(material: &[u8], context: &[u8], blob: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    parse_header(blob)?;
    let key = aes_key(material).ok()?;
    let nonce = Nonce::try_assume_unique_for_key(&blob[HEADER_LEN..HEADER_LEN + NONCE_LEN]).ok()?;
    let associated = aad(&blob[..HEADER_LEN], context);
    let mut buf = Zeroizing::new(blob[HEADER_LEN + NONCE_LEN..].to_vec());
    let n = key
        .open_in_place(nonce, Aad::from(&associated), buf.as_mut_slice())
        .ok()?
        .len();
    buf.truncate(n);
    Some(buf)
}

/// The pieces of a blob for an AES-GCM done elsewhere (in an HSM, `crate::hsm::ops`): the
/// 33-byte header of a new blob for `key_id`/`version_id`, and the associated data of a
/// header and context. The format and associated data are exactly those above.
pub fn new_header(key_id: &str, version_id: &str) -> Result<Vec<u8>, KmsError> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.push(FORMAT_V1);
    h.extend_from_slice(&uuid_bytes(key_id)?);
    h.extend_from_slice(&uuid_bytes(version_id)?);
    Ok(h)
}

/// The associated data of a blob with this header and canonical context.
pub fn associated_data(header: &[u8], context: &[u8]) -> Vec<u8> {
    aad(header, context)
}

/// Splits a well-formed blob into header, nonce and `ciphertext ‖ tag`.
pub fn split(blob: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    parse_header(blob)?;
    let (header, rest) = blob.split_at(HEADER_LEN);
    let (nonce, body) = rest.split_at(NONCE_LEN);
    Some((header, nonce, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "05754286-3ba2-4fa6-8d41-4323aca6aaaa";
    const V: &str = "86a9efd9-3d16-4894-bd4f-1fc43f3f2abf";

    fn sample() -> Vec<u8> {
        encrypt(
            &SystemRandom::new(),
            K,
            V,
            &[9u8; 32],
            b"{\"a\":\"b\"}",
            b"hello",
        )
        .unwrap()
    }

    #[test]
    fn layout_is_as_documented() {
        let b = sample();
        assert_eq!(b.len(), OVERHEAD + 5);
        assert_eq!(b[0], 1);
        assert_eq!(&b[1..17], Uuid::parse_str(K).unwrap().as_bytes());
        assert_eq!(&b[17..33], Uuid::parse_str(V).unwrap().as_bytes());
        let h = parse_header(&b).unwrap();
        assert_eq!(h.key_id, K);
        assert_eq!(h.version_id, V);
    }

    #[test]
    fn round_trip() {
        let b = sample();
        assert_eq!(
            decrypt(&[9u8; 32], b"{\"a\":\"b\"}", &b)
                .unwrap()
                .as_slice(),
            b"hello"
        );
    }

    #[test]
    fn tampering_any_byte_fails() {
        let b = sample();
        for i in 0..b.len() {
            for bit in [0x01u8, 0x80] {
                let mut t = b.clone();
                t[i] ^= bit;
                assert!(
                    decrypt(&[9u8; 32], b"{\"a\":\"b\"}", &t).is_none(),
                    "byte {i}"
                );
            }
        }
    }

    #[test]
    fn wrong_context_material_or_truncation_fails() {
        let b = sample();
        assert!(decrypt(&[9u8; 32], b"{\"a\":\"c\"}", &b).is_none());
        assert!(decrypt(&[9u8; 32], b"", &b).is_none());
        assert!(decrypt(&[8u8; 32], b"{\"a\":\"b\"}", &b).is_none());
        for n in 0..b.len() {
            assert!(decrypt(&[9u8; 32], b"{\"a\":\"b\"}", &b[..n]).is_none());
        }
        assert!(parse_header(&[]).is_none());
    }

    #[test]
    fn same_material_under_another_key_id_fails() {
        // Two keys holding the same material: re-labelling the blob with the other key's
        // id breaks the tag, because the key id is associated data.
        let mut b = sample();
        let other = Uuid::parse_str("11111111-2222-4333-8444-555555555555").unwrap();
        b[1..17].copy_from_slice(other.as_bytes());
        assert!(decrypt(&[9u8; 32], b"{\"a\":\"b\"}", &b).is_none());
    }
}
