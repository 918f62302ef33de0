//! The cryptography of the service, from aws-lc-rs (and, for China's national algorithms,
//! which aws-lc-rs lacks, RustCrypto's `sm2`/`sm3`/`sm4`: [`sm`]).
//!
//! - A 32-byte **root key** (a 0600 file in the data dir, or `KMS_ROOT_KEY_FILE`) never
//!   encrypts data itself: HKDF-SHA256 derives one key per purpose from it
//!   ([`Keystore::from_root`]): sealing at rest, import tokens, material commitments, the
//!   audit chain and the web console's tokens.
//! - [`Keystore::seal`] / [`Keystore::open`]: AES-256-GCM with a random 96-bit nonce and
//!   caller-supplied associated data naming what is sealed (key id and version for key
//!   material, access key id for secrets, wrapping key id for RSA private keys), so a sealed
//!   value cannot be moved to another row.
//! - [`blob`]: the ciphertext blob format of Encrypt/GenerateDataKey.
//! - [`token`]: import tokens (authenticated, bound to key, wrapping key and algorithm).
//! - [`wrapping`]: RSA-2048 wrapping key pairs, their pool, and the one unwrap path (and
//!   SM2PKE under EC_SM2 wrapping keys).
//! - [`sm`]: SM2 signatures and encryption, SM3, SM4-GCM (`Aliyun_SM4` blobs).

pub mod asymmetric;
pub mod blob;
pub mod prepared;
pub mod sm;
pub mod token;
pub mod wrapping;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{hkdf, hmac};
use zeroize::Zeroizing;

use crate::error::KmsError;

pub const ROOT_KEY_LEN: usize = 32;

/// A secret byte buffer that is wiped when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

pub struct Keystore {
    seal_key: LessSafeKey,
    token_key: LessSafeKey,
    /// The key of material commitments: derived from this root key, or carried over from
    /// the first root key by a root-key rotation ([`Keystore::with_commitment_key`]).
    commit_raw: Zeroizing<[u8; 32]>,
    commit_key: hmac::Key,
    /// The commitment key derived from this root key itself: the check value's key.
    check_key: hmac::Key,
    audit_raw: Zeroizing<[u8; 32]>,
    audit_key: hmac::Key,
    console_key: hmac::Key,
    rng: SystemRandom,
    /// Prepared AES-256-GCM keys of the versions used on this node ([`prepared`]).
    prepared: prepared::PreparedKeys,
}

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive_aead(prk: &hkdf::Prk, info: &[u8]) -> Result<LessSafeKey, KmsError> {
    let info = [info];
    let okm = prk
        .expand(&info, &AES_256_GCM)
        .map_err(|_| KmsError::internal("hkdf expand"))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

impl Keystore {
    /// Derives the per-purpose keys from the root key.
    pub fn from_root(root: &[u8]) -> Result<Self, KmsError> {
        if root.len() != ROOT_KEY_LEN {
            return Err(KmsError::internal("root key must be 32 bytes"));
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"kms root key v1").extract(root);
        let seal_key = derive_aead(&prk, b"seal at rest v1")?;
        let token_key = derive_aead(&prk, b"import token v1")?;
        let mut commit = Zeroizing::new([0u8; 32]);
        prk.expand(&[b"material commitment v1"], Len(32))
            .and_then(|okm| okm.fill(commit.as_mut()))
            .map_err(|_| KmsError::internal("hkdf expand"))?;
        let commit_key = hmac::Key::new(hmac::HMAC_SHA256, commit.as_ref());
        let check_key = hmac::Key::new(hmac::HMAC_SHA256, commit.as_ref());
        let mut audit = Zeroizing::new([0u8; 32]);
        prk.expand(&[b"audit chain v1"], Len(32))
            .and_then(|okm| okm.fill(audit.as_mut()))
            .map_err(|_| KmsError::internal("hkdf expand"))?;
        let audit_key = hmac::Key::new(hmac::HMAC_SHA256, audit.as_ref());
        let mut console = Zeroizing::new([0u8; 32]);
        prk.expand(&[b"web console v1"], Len(32))
            .and_then(|okm| okm.fill(console.as_mut()))
            .map_err(|_| KmsError::internal("hkdf expand"))?;
        let console_key = hmac::Key::new(hmac::HMAC_SHA256, console.as_ref());
        Ok(Self {
            seal_key,
            token_key,
            commit_raw: commit,
            commit_key,
            check_key,
            audit_raw: audit,
            audit_key,
            console_key,
            rng: SystemRandom::new(),
            prepared: prepared::PreparedKeys::default(),
        })
    }

    /// This keystore with `raw` as the key of material commitments instead of the one
    /// derived from its root key: a root-key rotation carries the first commitment key over
    /// (sealed in the database), since a commitment cannot be recomputed once the material it
    /// commits to was deleted.
    pub fn with_commitment_key(mut self, raw: &[u8]) -> Result<Self, KmsError> {
        if raw.len() != 32 {
            return Err(KmsError::internal("commitment key must be 32 bytes"));
        }
        self.commit_raw.copy_from_slice(raw);
        self.commit_key = hmac::Key::new(hmac::HMAC_SHA256, raw);
        Ok(self)
    }

    /// The raw key of material commitments (for a root-key rotation to carry it over).
    pub fn commitment_key_bytes(&self) -> &[u8] {
        self.commit_raw.as_ref()
    }

    /// The raw audit chain key (for the audit trail's key handover at a root-key rotation).
    pub fn audit_key_bytes(&self) -> &[u8] {
        self.audit_raw.as_ref()
    }

    /// A public name of the audit chain key: 16 bytes of HMAC under it of a fixed label, hex.
    pub fn audit_key_id(&self) -> String {
        audit_key_id(&self.audit_key)
    }

    /// Seals `old_audit_key` (the raw audit chain key before a root-key rotation) for the
    /// audit trail's handover line, under a key derived from this keystore's audit chain key:
    /// whoever holds the new root key can open it, and from it the key before, and so on
    /// back through every handover of the trail.
    pub fn seal_for_handover(&self, old_audit_key: &[u8]) -> Result<Vec<u8>, KmsError> {
        let key = handover_key(self.audit_raw.as_ref())?;
        seal_with(
            &key,
            &self.rng,
            self.audit_key_id().as_bytes(),
            old_audit_key,
        )
    }

    /// Fresh random bytes (wiped on drop).
    pub fn random(&self, n: usize) -> Result<Secret, KmsError> {
        let mut v = Zeroizing::new(vec![0u8; n]);
        self.rng
            .fill(&mut v)
            .map_err(|_| KmsError::internal("rng"))?;
        Ok(v)
    }

    /// `n` fresh random bytes (wiped on drop) and a blob IV, from one generator call.
    pub fn random_with_iv(&self, n: usize) -> Result<(Secret, blob::FreshIv), KmsError> {
        let mut v = Zeroizing::new(vec![0u8; n + NONCE_LEN]);
        self.rng
            .fill(&mut v)
            .map_err(|_| KmsError::internal("rng"))?;
        let mut iv = [0u8; NONCE_LEN];
        iv.copy_from_slice(&v[n..]);
        // The IV's bytes stay in the spare capacity, zeroed with the rest on drop.
        v.truncate(n);
        Ok((v, blob::FreshIv(iv)))
    }

    /// Seals `plaintext` under the sealing key: `nonce (12) ‖ ciphertext ‖ tag (16)`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KmsError> {
        seal_with(&self.seal_key, &self.rng, aad, plaintext)
    }

    /// Opens a value made by [`Keystore::seal`] with the same associated data.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Secret, KmsError> {
        open_with(&self.seal_key, aad, sealed).ok_or_else(|| {
            KmsError::internal(
                "sealed value failed authentication (wrong root key or corrupted store)",
            )
        })
    }

    /// A keyed commitment to imported key material: HMAC-SHA256 over the key id and the
    /// material. Stored instead of the material so a later import can be checked for being
    /// byte-identical even after the material was deleted.
    pub fn commitment(&self, key_id: &str, material: &[u8]) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.commit_key);
        ctx.update(&(key_id.len() as u32).to_be_bytes());
        ctx.update(key_id.as_bytes());
        ctx.update(material);
        ctx.sign().as_ref().to_vec()
    }

    /// Constant-time check of material against a stored commitment.
    pub fn commitment_matches(&self, key_id: &str, material: &[u8], stored: &[u8]) -> bool {
        let mut msg = Vec::with_capacity(4 + key_id.len() + material.len());
        msg.extend_from_slice(&(key_id.len() as u32).to_be_bytes());
        msg.extend_from_slice(key_id.as_bytes());
        msg.extend_from_slice(material);
        let ok = hmac::verify(&self.commit_key, &msg, stored).is_ok();
        zeroize::Zeroize::zeroize(&mut msg);
        ok
    }

    /// A public fingerprint of the root key (HMAC under the commitment key of a fixed label),
    /// recorded in the database on first start so that a node with another root key refuses
    /// to serve it. It reveals nothing about the root key.
    pub fn check_value(&self) -> String {
        let tag = hmac::sign(&self.check_key, b"kms root key check v1");
        hex::encode(&tag.as_ref()[..16])
    }

    /// The key that chains audit log lines (HMAC-SHA256).
    pub fn audit_key(&self) -> &hmac::Key {
        &self.audit_key
    }

    /// The key of the web console's tokens (HMAC-SHA256): sign-in form tokens and the
    /// credential tags that bind sessions to a password (see `service::console`).
    pub fn console_key(&self) -> &hmac::Key {
        &self.console_key
    }

    pub(crate) fn token_key(&self) -> &LessSafeKey {
        &self.token_key
    }
    pub(crate) fn rng(&self) -> &SystemRandom {
        &self.rng
    }

    /// The prepared AES-256-GCM keys of the key versions used on this node.
    pub(crate) fn prepared(&self) -> &prepared::PreparedKeys {
        &self.prepared
    }

    /// Seals `plaintext` under a 32-byte data key (AES-256-GCM, random nonce):
    /// `nonce (12) ‖ ciphertext ‖ tag (16)`. Secrets Manager's envelope: the data key comes
    /// from GenerateDataKey under the secret's EncryptionKeyId. The plaintext is copied only
    /// into a buffer that is encrypted in place.
    pub fn seal_with_data_key(
        &self,
        data_key: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let key = UnboundKey::new(&AES_256_GCM, data_key)
            .map_err(|_| KmsError::internal("data key length"))?;
        let key = LessSafeKey::new(key);
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| KmsError::internal("rng"))?;
        let mut body = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| KmsError::internal("seal"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + body.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a value made by [`Keystore::seal_with_data_key`]; None if it fails
    /// authentication.
    pub fn open_with_data_key(data_key: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Secret> {
        let key = UnboundKey::new(&AES_256_GCM, data_key).ok()?;
        open_with(&LessSafeKey::new(key), aad, sealed)
    }
}

fn handover_key(audit_raw: &[u8]) -> Result<LessSafeKey, KmsError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"kms audit key handover v1").extract(audit_raw);
    derive_aead(&prk, b"previous audit key v1")
}

/// Opens a previous audit chain key sealed by [`Keystore::seal_for_handover`] with the raw
/// audit key `audit_raw` that followed it; `None` if it does not open.
pub fn open_handover(audit_raw: &[u8], sealed: &[u8]) -> Option<Secret> {
    let key = handover_key(audit_raw).ok()?;
    let id = audit_key_id(&hmac::Key::new(hmac::HMAC_SHA256, audit_raw));
    open_with(&key, id.as_bytes(), sealed)
}

/// The public name of an audit chain key (see [`Keystore::audit_key_id`]).
pub fn audit_key_id(key: &hmac::Key) -> String {
    hex::encode(&hmac::sign(key, b"kms audit key id v1").as_ref()[..16])
}

pub(crate) fn seal_with(
    key: &LessSafeKey,
    rng: &SystemRandom,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, KmsError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)
        .map_err(|_| KmsError::internal("rng"))?;
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let mut body = out.split_off(NONCE_LEN);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut body,
    )
    .map_err(|_| KmsError::internal("seal"))?;
    out.extend_from_slice(&body);
    Ok(out)
}

pub(crate) fn open_with(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Option<Secret> {
    if sealed.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = Zeroizing::new(body.to_vec());
    let n = key
        .open_in_place(nonce, Aad::from(aad), buf.as_mut_slice())
        .ok()?
        .len();
    buf.truncate(n);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let ks = Keystore::from_root(&[7u8; 32]).unwrap();
        let sealed = ks.seal(b"row-1", b"secret").unwrap();
        assert_eq!(ks.open(b"row-1", &sealed).unwrap().as_slice(), b"secret");
        assert!(ks.open(b"row-2", &sealed).is_err());
        let other = Keystore::from_root(&[8u8; 32]).unwrap();
        assert!(other.open(b"row-1", &sealed).is_err());
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(ks.open(b"row-1", &t).is_err(), "byte {i}");
        }
        assert!(ks.open(b"row-1", &sealed[..10]).is_err());
    }

    /// A data key and its blob's IV from one draw: the key has the length asked for, the
    /// blob carries exactly the IV it was given and opens to the key, and no two draws
    /// repeat a key or an IV.
    #[test]
    fn data_key_and_iv_from_one_draw() {
        let ks = Keystore::from_root(&[7u8; 32]).unwrap();
        let keys = prepared::PreparedKeys::default();
        let m = [7u8; 32];
        let p = keys
            .get_or_prepare(
                "05754286-3ba2-4fa6-8d41-4323aca6aaaa",
                "86a9efd9-3d16-4894-bd4f-1fc43f3f2abf",
                b"s",
                || Ok(Zeroizing::new(m.to_vec())),
            )
            .unwrap();
        let mut seen = std::collections::HashSet::new();
        for n in [1usize, 16, 32, 1024] {
            let (key, iv) = ks.random_with_iv(n).unwrap();
            assert_eq!(key.len(), n);
            let given = iv.0;
            let b = blob::encrypt_prepared(ks.rng(), &p, b"c", &key, Some(iv)).unwrap();
            assert_eq!(&b[blob::HEADER_LEN..blob::HEADER_LEN + NONCE_LEN], &given);
            assert_eq!(
                blob::decrypt(&m, b"c", &b).unwrap().as_slice(),
                key.as_slice()
            );
            assert!(seen.insert(given.to_vec()));
            assert!(seen.insert(key.to_vec()));
        }
    }

    #[test]
    fn commitment_is_keyed_and_bound_to_key_id() {
        let ks = Keystore::from_root(&[7u8; 32]).unwrap();
        let c = ks.commitment("k1", &[1u8; 32]);
        assert!(ks.commitment_matches("k1", &[1u8; 32], &c));
        assert!(!ks.commitment_matches("k1", &[2u8; 32], &c));
        assert!(!ks.commitment_matches("k2", &[1u8; 32], &c));
        let other = Keystore::from_root(&[8u8; 32]).unwrap();
        assert!(!other.commitment_matches("k1", &[1u8; 32], &c));
    }

    #[test]
    fn a_carried_commitment_key_keeps_commitments_and_not_the_check_value() {
        let old = Keystore::from_root(&[7u8; 32]).unwrap();
        let c = old.commitment("k1", &[1u8; 32]);
        let new = Keystore::from_root(&[8u8; 32]).unwrap();
        let check = new.check_value();
        let new = new.with_commitment_key(old.commitment_key_bytes()).unwrap();
        assert!(new.commitment_matches("k1", &[1u8; 32], &c));
        assert_eq!(new.check_value(), check);
        assert_ne!(new.check_value(), old.check_value());
        assert_ne!(new.audit_key_id(), old.audit_key_id());
        // The previous audit key opens with the next one only.
        let sealed = new.seal_for_handover(old.audit_key_bytes()).unwrap();
        assert_eq!(
            open_handover(new.audit_key_bytes(), &sealed)
                .unwrap()
                .as_slice(),
            old.audit_key_bytes()
        );
        assert!(open_handover(old.audit_key_bytes(), &sealed).is_none());
        assert!(new.with_commitment_key(&[0u8; 16]).is_err());
    }

    #[test]
    fn wrong_root_length_is_refused() {
        assert!(Keystore::from_root(&[0u8; 16]).is_err());
    }
}
