//! Prepared AES-256-GCM keys of key versions (issue 21): a node keeps, per software
//! `Aliyun_AES_256` key version it has used, the version's material opened once and turned
//! into an aws-lc AEAD key (its AES key schedule and GHASH table), with the 33-byte blob
//! header of the version. Encrypt, Decrypt and GenerateDataKey on a warm version then skip
//! unsealing the material (an AES-GCM open under the sealing key) and the key schedule.
//!
//! - **What an entry answers for.** An entry is the pure function of (key id, version id,
//!   sealed material) under this keystore's root key, and is found only when all three are
//!   byte-equal to the version row the request was authorised against. Every state check
//!   (key state, material present and unexpired, version exists) runs before the lookup,
//!   on the current row, exactly as without the cache. Material deleted and imported again
//!   is sealed anew (fresh random nonce), so the old entry no longer matches; a root-key
//!   rotation makes a new keystore, and with it a new, empty set.
//! - **Memory.** At most [`MAX_ENTRIES`] versions; beyond that one arbitrary entry goes for
//!   each new one (a node serving more hot versions than that opens some per call, as
//!   before). The opened material is never kept: only aws-lc's key state, which aws-lc
//!   wipes when it is freed (`OPENSSL_free` cleanses the allocation), and the sealed bytes
//!   (ciphertext) to compare against.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::error::KmsError;
use aws_lc_rs::aead::{LessSafeKey, UnboundKey, AES_256_GCM};

/// Versions kept per node.
pub const MAX_ENTRIES: usize = 4096;

/// One key version's prepared AES-256-GCM key.
pub struct PreparedKey {
    key_id: String,
    sealed: Vec<u8>,
    /// The blob header of this version: format byte, key id and version id as UUID bytes.
    header: [u8; super::blob::HEADER_LEN],
    key: LessSafeKey,
}

impl PreparedKey {
    pub(crate) fn header(&self) -> &[u8; super::blob::HEADER_LEN] {
        &self.header
    }
    pub(crate) fn key(&self) -> &LessSafeKey {
        &self.key
    }
}

impl std::fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The prepared keys of one keystore, by version id.
#[derive(Default)]
pub struct PreparedKeys {
    map: RwLock<HashMap<String, Arc<PreparedKey>>>,
}

impl PreparedKeys {
    /// The prepared key of `version_id` of `key_id` whose material is `sealed`; on a miss,
    /// `open` opens the material (a `Secret`, wiped when dropped) and the entry is made.
    pub fn get_or_prepare(
        &self,
        key_id: &str,
        version_id: &str,
        sealed: &[u8],
        open: impl FnOnce() -> Result<super::Secret, KmsError>,
    ) -> Result<Arc<PreparedKey>, KmsError> {
        if let Ok(map) = self.map.read() {
            if let Some(p) = map.get(version_id) {
                if p.key_id == key_id && p.sealed == sealed {
                    return Ok(p.clone());
                }
            }
        }
        let material = open()?;
        let key = UnboundKey::new(&AES_256_GCM, &material)
            .map(LessSafeKey::new)
            .map_err(|_| KmsError::internal("key material is not 32 bytes"))?;
        drop(material);
        let header =
            super::blob::header_bytes(super::blob::BlobCipher::Aes256Gcm, key_id, version_id)?;
        let p = Arc::new(PreparedKey {
            key_id: key_id.to_string(),
            sealed: sealed.to_vec(),
            header,
            key,
        });
        if let Ok(mut map) = self.map.write() {
            if map.len() >= MAX_ENTRIES && !map.contains_key(version_id) {
                if let Some(victim) = map.keys().next().cloned() {
                    map.remove(&victim);
                }
            }
            map.insert(version_id.to_string(), p.clone());
        }
        Ok(p)
    }

    /// Versions held now.
    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const K: &str = "05754286-3ba2-4fa6-8d41-4323aca6aaaa";
    const V: &str = "86a9efd9-3d16-4894-bd4f-1fc43f3f2abf";

    fn material() -> Result<super::super::Secret, KmsError> {
        Ok(zeroize::Zeroizing::new(vec![7u8; 32]))
    }

    #[test]
    fn opens_once_per_sealed_material_and_reopens_when_it_changes() {
        let keys = PreparedKeys::default();
        let opened = Cell::new(0);
        let open = || {
            opened.set(opened.get() + 1);
            material()
        };
        let a = keys.get_or_prepare(K, V, b"sealed-1", open).unwrap();
        let b = keys.get_or_prepare(K, V, b"sealed-1", open).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(opened.get(), 1);
        // Material sealed anew (deleted and imported again): opened again, not reused.
        let c = keys.get_or_prepare(K, V, b"sealed-2", open).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(opened.get(), 2);
        // The same version id under another key id never matches.
        let other = "15754286-3ba2-4fa6-8d41-4323aca6aaaa";
        keys.get_or_prepare(other, V, b"sealed-2", open).unwrap();
        assert_eq!(opened.get(), 3);
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn the_header_is_the_blob_header_of_the_version() {
        let keys = PreparedKeys::default();
        let p = keys.get_or_prepare(K, V, b"s", material).unwrap();
        assert_eq!(p.header()[0], super::super::blob::FORMAT_V1);
        assert_eq!(
            &p.header()[1..17],
            uuid::Uuid::parse_str(K).unwrap().as_bytes()
        );
        assert_eq!(
            &p.header()[17..33],
            uuid::Uuid::parse_str(V).unwrap().as_bytes()
        );
    }

    #[test]
    fn a_failed_open_or_bad_material_keeps_nothing() {
        let keys = PreparedKeys::default();
        assert!(keys
            .get_or_prepare(K, V, b"s", || Err(KmsError::internal("x")))
            .is_err());
        assert!(keys
            .get_or_prepare(K, V, b"s", || Ok(zeroize::Zeroizing::new(vec![1u8; 16])))
            .is_err());
        assert!(keys.is_empty());
    }

    #[test]
    fn the_set_is_bounded() {
        let keys = PreparedKeys::default();
        for i in 0..MAX_ENTRIES + 50 {
            let v = format!("86a9efd9-3d16-4894-bd4f-{i:012x}");
            keys.get_or_prepare(K, &v, b"s", material).unwrap();
        }
        assert_eq!(keys.len(), MAX_ENTRIES);
    }

    /// A blob made with the prepared key opens with the material and the other way round,
    /// and a blob of another cipher, a cut blob or another context does not open.
    #[test]
    fn prepared_blobs_are_the_blobs_of_the_material() {
        use super::super::blob;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let keys = PreparedKeys::default();
        let p = keys.get_or_prepare(K, V, b"s", material).unwrap();
        let m = [7u8; 32];
        let a = blob::encrypt_prepared(&rng, &p, b"ctx", b"hello", None).unwrap();
        assert_eq!(blob::decrypt(&m, b"ctx", &a).unwrap().as_slice(), b"hello");
        assert_eq!(blob::parse_header(&a).unwrap().version_id, V);
        let b = blob::encrypt(&rng, K, V, &m, b"ctx", b"world").unwrap();
        assert_eq!(&a[..blob::HEADER_LEN], &b[..blob::HEADER_LEN]);
        assert_eq!(
            blob::decrypt_prepared(&p, b"ctx", &b).unwrap().as_slice(),
            b"world"
        );
        assert!(blob::decrypt_prepared(&p, b"other", &b).is_none());
        assert!(blob::decrypt_prepared(&p, b"ctx", &b[..b.len() - 1]).is_none());
        assert!(blob::decrypt_prepared(&p, b"ctx", &b[..blob::OVERHEAD - 1]).is_none());
        let mut sm4 = b.clone();
        sm4[0] = blob::FORMAT_SM4_GCM;
        assert!(blob::decrypt_prepared(&p, b"ctx", &sm4).is_none());
    }
}
