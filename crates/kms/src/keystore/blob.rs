//! The ciphertext blob returned by Encrypt, GenerateDataKey(WithoutPlaintext) and ReEncrypt,
//! and taken by Decrypt and ReEncrypt. Our own versioned, self-describing format (the real
//! service's is proprietary; the reference only requires that a blob name its key version).
//!
//! ```text
//! offset  size  field
//! 0       1     format version: 0x01 AES-256-GCM, 0x02 SM4-GCM
//! 1       16    key id, the 16 bytes of its UUID
//! 17      16    key version id, the 16 bytes of its UUID
//! 33      12    AES-GCM nonce (random)
//! 45      n     AES-256-GCM ciphertext of the plaintext (n = plaintext length)
//! 45+n    16    AES-GCM tag
//! ```
//!
//! The AES key is the key version's 256-bit material. `Aliyun_SM4` keys use the same
//! framing with format byte 0x02 and SM4-GCM (RFC 8998: SM4 in GCM, 96-bit nonce, 128-bit
//! tag) under the version's 128-bit material (\[inference\]: the reference leaves the SM4
//! blob to the server; §6.7 proposes SM4-GCM). The format byte is authenticated and must
//! match the key's spec, so a blob cannot be replayed as the other cipher. The associated
//! data is
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
/// Format byte of SM4-GCM blobs (`Aliyun_SM4` keys).
pub const FORMAT_SM4_GCM: u8 = 0x02;
pub(crate) const HEADER_LEN: usize = 1 + 16 + 16;
const TAG_LEN: usize = 16;
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
const AAD_LABEL: &[u8] = b"kms-blob-v1";

/// The cipher of a blob, set by the key's spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobCipher {
    /// AES-256-GCM (`Aliyun_AES_256`), format byte 0x01.
    Aes256Gcm,
    /// SM4-GCM (`Aliyun_SM4`), format byte 0x02.
    Sm4Gcm,
}

impl BlobCipher {
    pub const fn format_byte(self) -> u8 {
        match self {
            BlobCipher::Aes256Gcm => FORMAT_V1,
            BlobCipher::Sm4Gcm => FORMAT_SM4_GCM,
        }
    }
    fn from_format_byte(b: u8) -> Option<Self> {
        match b {
            FORMAT_V1 => Some(BlobCipher::Aes256Gcm),
            FORMAT_SM4_GCM => Some(BlobCipher::Sm4Gcm),
            _ => None,
        }
    }
    /// The cipher of a symmetric key spec; `None` for key pairs.
    pub const fn for_spec(spec: crate::model::KeySpec) -> Option<Self> {
        match spec {
            crate::model::KeySpec::Aes256 => Some(BlobCipher::Aes256Gcm),
            crate::model::KeySpec::Sm4 => Some(BlobCipher::Sm4Gcm),
            _ => None,
        }
    }
}

/// The parsed header of a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobHeader {
    pub key_id: String,
    pub version_id: String,
    pub cipher: BlobCipher,
}

fn uuid_bytes(id: &str) -> Result<[u8; 16], KmsError> {
    Uuid::parse_str(id)
        .map(|u| *u.as_bytes())
        .map_err(|_| KmsError::internal("key id is not a UUID"))
}

/// The 33-byte header of a blob of `cipher` under `key_id`'s `version_id`.
pub(crate) fn header_bytes(
    cipher: BlobCipher,
    key_id: &str,
    version_id: &str,
) -> Result<[u8; HEADER_LEN], KmsError> {
    let mut h = [0u8; HEADER_LEN];
    h[0] = cipher.format_byte();
    h[1..17].copy_from_slice(&uuid_bytes(key_id)?);
    h[17..33].copy_from_slice(&uuid_bytes(version_id)?);
    Ok(h)
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

/// Encrypts `plaintext` under one AES-256 key version.
pub fn encrypt(
    rng: &SystemRandom,
    key_id: &str,
    version_id: &str,
    material: &[u8],
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, KmsError> {
    encrypt_with(
        BlobCipher::Aes256Gcm,
        rng,
        key_id,
        version_id,
        material,
        context,
        plaintext,
    )
}

/// Encrypts `plaintext` under one key version with the given cipher.
pub fn encrypt_with(
    cipher: BlobCipher,
    rng: &SystemRandom,
    key_id: &str,
    version_id: &str,
    material: &[u8],
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, KmsError> {
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(&header_bytes(cipher, key_id, version_id)?);
    match cipher {
        BlobCipher::Aes256Gcm => seal_body(
            out,
            rng,
            BodyKey::Aes(&aes_key(material)?),
            context,
            plaintext,
            None,
        ),
        BlobCipher::Sm4Gcm => seal_body(out, rng, BodyKey::Sm4(material), context, plaintext, None),
    }
}

/// A blob's IV drawn from the generator in the same call as a data key
/// ([`super::Keystore::random_with_iv`]: one generator call instead of two, each ~0.8 µs
/// here). Only the keystore makes one, so an IV is always the generator's fresh output.
pub struct FreshIv(pub(super) [u8; NONCE_LEN]);

/// Encrypts `plaintext` under a prepared AES-256 key version ([`super::prepared`]): the
/// same blob as [`encrypt_with`] makes for [`BlobCipher::Aes256Gcm`], without unsealing the
/// material or running the key schedule. The IV is `iv`, else drawn here.
pub fn encrypt_prepared(
    rng: &SystemRandom,
    prepared: &super::prepared::PreparedKey,
    context: &[u8],
    plaintext: &[u8],
    iv: Option<FreshIv>,
) -> Result<Vec<u8>, KmsError> {
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(prepared.header());
    seal_body(
        out,
        rng,
        BodyKey::Aes(prepared.key()),
        context,
        plaintext,
        iv,
    )
}

/// The key a blob body is sealed or opened with.
enum BodyKey<'a> {
    Aes(&'a LessSafeKey),
    Sm4(&'a [u8]),
}

/// Appends nonce, ciphertext and tag to `out`, which holds the blob's header.
fn seal_body(
    mut out: Vec<u8>,
    rng: &SystemRandom,
    key: BodyKey<'_>,
    context: &[u8],
    plaintext: &[u8],
    iv: Option<FreshIv>,
) -> Result<Vec<u8>, KmsError> {
    // A fresh random IV (`iv`, drawn with the data key, or drawn now), straight from aws-lc's generator on every call, never from a
    // buffer (crate::random_pool): the generator reseeds after a fork or a VM snapshot it
    // detects and mixes the CPU's RNG into every call where there is one, so two clones of
    // one restored snapshot draw different IVs, whereas bytes buffered before the snapshot
    // would be handed out by both. An AES-GCM (or SM4-GCM) IV used twice under one key
    // gives away the XOR of the two plaintexts and the key that authenticates them. The
    // call costs about 0.7-0.9 µs here (docs/performance-notes.md, 2026-12-01 20:50).
    let nonce = match iv {
        Some(FreshIv(n)) => n,
        None => {
            let mut n = [0u8; NONCE_LEN];
            rng.fill(&mut n).map_err(|_| KmsError::internal("rng"))?;
            n
        }
    };
    out.extend_from_slice(&nonce);
    let associated = aad(&out[..HEADER_LEN], context);
    out.extend_from_slice(plaintext);
    let body = &mut out[HEADER_LEN + NONCE_LEN..];
    match key {
        BodyKey::Aes(key) => {
            let tag = key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&associated),
                    body,
                )
                .map_err(|_| KmsError::internal("seal"))?;
            out.extend_from_slice(tag.as_ref());
        }
        BodyKey::Sm4(material) => {
            let tag = super::sm::sm4_gcm_seal(material, &nonce, &associated, body)?;
            out.extend_from_slice(&tag);
        }
    }
    Ok(out)
}

/// Reads the header without decrypting, so the caller can find the key version.
/// Any malformed blob is `None`; the caller answers one generic error for all of them.
pub fn parse_header(blob: &[u8]) -> Option<BlobHeader> {
    if blob.len() < OVERHEAD {
        return None;
    }
    let cipher = BlobCipher::from_format_byte(blob[0])?;
    let key = Uuid::from_slice(&blob[1..17]).ok()?;
    let ver = Uuid::from_slice(&blob[17..33]).ok()?;
    Some(BlobHeader {
        key_id: key.hyphenated().to_string(),
        version_id: ver.hyphenated().to_string(),
        cipher,
    })
}

/// Decrypts an AES-256-GCM blob whose header was parsed with [`parse_header`]. `None` for
/// any failure (tampered bytes, wrong context, wrong material, another cipher).
pub fn decrypt(material: &[u8], context: &[u8], blob: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    decrypt_with(BlobCipher::Aes256Gcm, material, context, blob)
}

/// Decrypts a blob made with `cipher` (the key's). `None` for any failure, including a
/// blob whose format byte names the other cipher.
pub fn decrypt_with(
    cipher: BlobCipher,
    material: &[u8],
    context: &[u8],
    blob: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    if parse_header(blob)?.cipher != cipher {
        return None;
    }
    match cipher {
        BlobCipher::Aes256Gcm => open_aes(&aes_key(material).ok()?, context, blob),
        BlobCipher::Sm4Gcm => {
            let nonce_bytes: [u8; NONCE_LEN] =
                blob[HEADER_LEN..HEADER_LEN + NONCE_LEN].try_into().ok()?;
            let associated = aad(&blob[..HEADER_LEN], context);
            let (body, tag) = blob[HEADER_LEN + NONCE_LEN..].split_at(blob.len() - OVERHEAD);
            let mut buf = Zeroizing::new(body.to_vec());
            super::sm::sm4_gcm_open(material, &nonce_bytes, &associated, &mut buf, tag)
                .then_some(buf)
        }
    }
}

/// Decrypts an AES-256-GCM blob under a prepared key version ([`super::prepared`]), which
/// the caller found from the blob's header. `None` for any failure, as [`decrypt_with`].
pub fn decrypt_prepared(
    prepared: &super::prepared::PreparedKey,
    context: &[u8],
    blob: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    if blob.len() < OVERHEAD || blob[0] != FORMAT_V1 {
        return None;
    }
    open_aes(prepared.key(), context, blob)
}

/// Opens the body of a well-formed (length-checked) AES-256-GCM blob.
fn open_aes(key: &LessSafeKey, context: &[u8], blob: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let nonce_bytes: [u8; NONCE_LEN] = blob[HEADER_LEN..HEADER_LEN + NONCE_LEN].try_into().ok()?;
    let associated = aad(&blob[..HEADER_LEN], context);
    let nonce = Nonce::assume_unique_for_key(nonce_bytes);
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
    header_bytes(BlobCipher::Aes256Gcm, key_id, version_id).map(|h| h.to_vec())
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

    /// The IV comes from the generator itself, not from this thread's buffer of its output
    /// (which two clones of one VM snapshot would both hand out): the bytes the buffer would
    /// give next are neither the IV nor taken.
    #[test]
    fn ivs_are_not_drawn_from_the_buffered_pool() {
        for _ in 0..64 {
            let next = crate::random_pool::peek::<NONCE_LEN>().unwrap();
            let b = sample();
            assert_ne!(&b[HEADER_LEN..HEADER_LEN + NONCE_LEN], &next[..]);
            assert_eq!(crate::random_pool::bytes::<NONCE_LEN>().unwrap(), next);
        }
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

    fn sm4_sample() -> Vec<u8> {
        encrypt_with(
            BlobCipher::Sm4Gcm,
            &SystemRandom::new(),
            K,
            V,
            &[9u8; 16],
            b"{\"a\":\"b\"}",
            b"hello",
        )
        .unwrap()
    }

    #[test]
    fn sm4_blobs_round_trip_and_resist_tampering_and_cipher_swaps() {
        let b = sm4_sample();
        assert_eq!(b.len(), OVERHEAD + 5);
        assert_eq!(b[0], FORMAT_SM4_GCM);
        let h = parse_header(&b).unwrap();
        assert_eq!((h.key_id.as_str(), h.cipher), (K, BlobCipher::Sm4Gcm));
        let ctx = b"{\"a\":\"b\"}";
        assert_eq!(
            decrypt_with(BlobCipher::Sm4Gcm, &[9u8; 16], ctx, &b)
                .unwrap()
                .as_slice(),
            b"hello"
        );
        for i in 0..b.len() {
            let mut t = b.clone();
            t[i] ^= 1;
            assert!(
                decrypt_with(BlobCipher::Sm4Gcm, &[9u8; 16], ctx, &t).is_none(),
                "byte {i}"
            );
        }
        for n in 0..b.len() {
            assert!(decrypt_with(BlobCipher::Sm4Gcm, &[9u8; 16], ctx, &b[..n]).is_none());
        }
        assert!(decrypt_with(BlobCipher::Sm4Gcm, &[8u8; 16], ctx, &b).is_none());
        assert!(decrypt_with(BlobCipher::Sm4Gcm, &[9u8; 16], b"", &b).is_none());
        // An SM4 blob is not opened as AES and vice versa, even with the byte flipped.
        assert!(decrypt(&[9u8; 32], ctx, &b).is_none());
        let aes = sample();
        assert!(decrypt_with(BlobCipher::Sm4Gcm, &[9u8; 16], ctx, &aes).is_none());
        let mut relabelled = b.clone();
        relabelled[0] = FORMAT_V1;
        assert!(decrypt(&[9u8; 32], ctx, &relabelled).is_none());
        assert!(encrypt_with(
            BlobCipher::Sm4Gcm,
            &SystemRandom::new(),
            K,
            V,
            &[9u8; 32],
            ctx,
            b"x"
        )
        .is_err());
        assert!(parse_header(&[3u8; 80]).is_none());
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
