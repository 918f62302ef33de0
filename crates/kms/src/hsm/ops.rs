//! The key operations in the token. Objects this service creates:
//!
//! | object | CKA_ID | CKA_LABEL |
//! |---|---|---|
//! | AES-256 key of an HSM key version | `kms-key:<key id>` | `kms-key:<key id>:<version id>:<random>` |
//! | RSA-2048 BYOK wrapping private key | `kms-wrap:<key id>` | `kms-wrap:<expiry unix>:<wrapping key id>` |
//! | AES-256 root-sealing key | `kms-root` | `kms-root:<random>` |
//!
//! Every secret key is `CKA_SENSITIVE`, not `CKA_EXTRACTABLE`, a token object and private
//! (needs the user login). The database keeps only the label (sealed under the root key
//! like any material, so the root-key rotation re-seals it like the rest); the shared
//! `CKA_ID` lets a key's objects be destroyed together.

use std::sync::Arc;

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use zeroize::Zeroizing;

use super::{Hsm, HsmError};
use crate::error::KmsError;
use crate::keystore::wrapping::WrappingAlgorithm;
use crate::keystore::{blob, Secret};

const GCM_NONCE_LEN: usize = 12;
const GCM_TAG_BITS: u64 = 128;
/// The fixed nonce of the material commitment (a GMAC of a fixed label and the key id).
/// Random nonces of data encryption collide with it with probability 2^-96 per call.
const COMMIT_NONCE: [u8; GCM_NONCE_LEN] = *b"kms-commit-1";

pub fn key_id_attr(key_id: &str) -> Vec<u8> {
    format!("kms-key:{key_id}").into_bytes()
}

fn random_suffix() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

fn secret_key_template(label: &str, id: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ]
}

/// Finds one object by class and label.
fn find(session: &Session, class: ObjectClass, label: &str) -> Result<ObjectHandle, CkError> {
    session
        .find_objects(&[
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ])?
        .into_iter()
        .next()
        .ok_or(CkError::Pkcs11(
            RvError::KeyHandleInvalid,
            cryptoki::context::Function::FindObjects,
        ))
}

/// A secret key by label through the handle cache; the cached handle is used only while it
/// still carries that label.
fn find_key(hsm: &Hsm, session: &Session, label: &str) -> Result<ObjectHandle, CkError> {
    if let Some(h) = hsm.cached_handle(label) {
        let still = session
            .get_attributes(h, &[AttributeType::Label])
            .map(|a| a.first() == Some(&Attribute::Label(label.as_bytes().to_vec())))
            .unwrap_or(false);
        if still {
            return Ok(h);
        }
        hsm.forget_handle(label);
    }
    let h = find(session, ObjectClass::SECRET_KEY, label)?;
    hsm.remember_handle(label, h);
    Ok(h)
}

fn gcm_encrypt(
    session: &Session,
    key: ObjectHandle,
    nonce: &[u8; GCM_NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CkError> {
    let mut iv = *nonce;
    let params = GcmParams::new(&mut iv, aad, GCM_TAG_BITS.into())?;
    session.encrypt(&Mechanism::AesGcm(params), key, plaintext)
}

/// Generates a non-extractable AES-256 key for a key version; returns its label (the
/// handle the database keeps).
pub async fn generate_version_key(
    hsm: &Arc<Hsm>,
    key_id: &str,
    version_id: &str,
) -> Result<String, KmsError> {
    let label = format!("kms-key:{key_id}:{version_id}:{}", random_suffix());
    let id = key_id_attr(key_id);
    let l = label.clone();
    hsm.call("C_GenerateKey (AES-256)", move |s| {
        let mut t = secret_key_template(&l, &id);
        t.push(Attribute::ValueLen(32.into()));
        s.generate_key(&Mechanism::AesKeyGen, &t).map(|_| ())
    })
    .await?;
    Ok(label)
}

/// Encrypt in the token: the same blob as [`blob::encrypt`] with the token's key.
pub async fn encrypt_blob(
    hsm: &Arc<Hsm>,
    label: &str,
    key_id: &str,
    version_id: &str,
    context: &[u8],
    plaintext: &[u8],
    nonce: [u8; GCM_NONCE_LEN],
) -> Result<Vec<u8>, KmsError> {
    let header = blob::new_header(key_id, version_id)?;
    let aad = blob::associated_data(&header, context);
    let label = label.to_string();
    let plaintext = Zeroizing::new(plaintext.to_vec());
    let me = hsm.clone();
    let body = hsm
        .call("C_Encrypt (AES-GCM)", move |s| {
            let key = find_key(&me, s, &label)?;
            gcm_encrypt(s, key, &nonce, &aad, &plaintext)
        })
        .await
        .map_err(missing_object)?;
    let mut out = header;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decrypt in the token. `Ok(None)` for a blob that does not authenticate (the caller
/// answers the same error as for software keys); `Err` when the HSM fails.
pub async fn decrypt_blob(
    hsm: &Arc<Hsm>,
    label: &str,
    context: &[u8],
    ciphertext_blob: &[u8],
) -> Result<Option<Secret>, KmsError> {
    let Some((header, nonce, body)) = blob::split(ciphertext_blob) else {
        return Ok(None);
    };
    let aad = blob::associated_data(header, context);
    let mut iv = [0u8; GCM_NONCE_LEN];
    iv.copy_from_slice(nonce);
    let body = body.to_vec();
    let label = label.to_string();
    let me = hsm.clone();
    let r = hsm
        .call("C_Decrypt (AES-GCM)", move |s| {
            let key = find_key(&me, s, &label)?;
            let mut iv = iv;
            let params = GcmParams::new(&mut iv, &aad, GCM_TAG_BITS.into())?;
            s.decrypt(&Mechanism::AesGcm(params), key, &body)
                .map(Zeroizing::new)
        })
        .await;
    match r {
        Ok(p) => Ok(Some(p)),
        Err(e @ HsmError::Refused { .. }) if !e.refused_with(RvError::KeyHandleInvalid) => Ok(None),
        Err(e) => Err(missing_object(e)),
    }
}

/// A key object named by the database but absent from the token: the token is not the
/// one this data dir was used with, or the object was deleted behind the service's back.
fn missing_object(e: HsmError) -> KmsError {
    if e.refused_with(RvError::KeyHandleInvalid) {
        return KmsError::HsmUnavailable(
            "the key's object is not in the HSM token (the token was removed or replaced, or the object was deleted)"
                .into(),
        );
    }
    e.into()
}

/// Destroys the objects of a key: all versions, imported or generated, and with
/// `wrapping_keys` its BYOK wrapping keys too (a deleted key; not a deleted material, whose
/// outstanding import tokens stay usable as for software keys).
pub async fn destroy_key_objects(
    hsm: &Arc<Hsm>,
    key_id: &str,
    wrapping_keys: bool,
) -> Result<usize, KmsError> {
    let mut ids = vec![key_id_attr(key_id)];
    if wrapping_keys {
        ids.push(wrap_id(key_id));
    }
    Ok(hsm
        .call("C_DestroyObject", move |s| {
            let mut n = 0;
            for id in ids {
                for o in s.find_objects(&[Attribute::Id(id)])? {
                    s.destroy_object(o)?;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await?)
}

/// Destroys one object by label (a superseded import).
pub async fn destroy_label(hsm: &Arc<Hsm>, label: &str) -> Result<(), KmsError> {
    hsm.forget_handle(label);
    let label = label.to_string();
    Ok(hsm
        .call("C_DestroyObject", move |s| {
            for o in s.find_objects(&[Attribute::Label(label.into_bytes())])? {
                s.destroy_object(o)?;
            }
            Ok(())
        })
        .await?)
}

// ------------------------------------------------------------------ BYOK

/// The PKCS#11 mechanism of a wrapping algorithm; `None` for RSA_AES_KEY_WRAP_SHA_256,
/// which wraps asymmetric private keys (never HSM keys here).
fn unwrap_mechanism(algorithm: WrappingAlgorithm) -> Option<Mechanism<'static>> {
    Some(match algorithm {
        WrappingAlgorithm::RsaAesKeyWrapSha256 => return None,
        WrappingAlgorithm::RsaesPkcs1V15 => Mechanism::RsaPkcs,
        WrappingAlgorithm::RsaesOaepSha1 => Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
            MechanismType::SHA1,
            PkcsMgfType::MGF1_SHA1,
            PkcsOaepSource::empty(),
        )),
        WrappingAlgorithm::RsaesOaepSha256 => Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
            MechanismType::SHA256,
            PkcsMgfType::MGF1_SHA256,
            PkcsOaepSource::empty(),
        )),
    })
}

/// A wrapping key pair made in the token: the private key's label and the public key as
/// DER SubjectPublicKeyInfo.
pub struct TokenWrappingKey {
    pub label: String,
    pub public_der: Vec<u8>,
}

fn wrap_id(key_id: &str) -> Vec<u8> {
    format!("kms-wrap:{key_id}").into_bytes()
}

fn label_of_object(s: &Session, o: ObjectHandle) -> Result<String, CkError> {
    Ok(s.get_attributes(o, &[AttributeType::Label])?
        .into_iter()
        .find_map(|a| match a {
            Attribute::Label(l) => String::from_utf8(l).ok(),
            _ => None,
        })
        .unwrap_or_default())
}

/// `(expiry, wrapping key id)` of a wrapping key's label.
fn parse_wrap_label(label: &str) -> Option<(i64, &str)> {
    let (expires, id) = label.strip_prefix("kms-wrap:")?.split_once(':')?;
    Some((expires.parse().ok()?, id))
}

/// The wrapping key ids of a key's wrapping objects in the token, with their labels.
pub async fn wrapping_keys_of(
    hsm: &Arc<Hsm>,
    key_id: &str,
) -> Result<Vec<(String, String)>, KmsError> {
    let id = wrap_id(key_id);
    Ok(hsm
        .call("C_FindObjects (wrapping keys)", move |s| {
            let mut out = Vec::new();
            for o in s.find_objects(&[Attribute::Id(id)])? {
                let label = label_of_object(s, o)?;
                if let Some((_, wk)) = parse_wrap_label(&label) {
                    out.push((wk.to_string(), label.clone()));
                }
            }
            Ok(out)
        })
        .await?)
}

/// Generates an RSA-2048 pair in the token (private half sensitive, non-extractable, only
/// for unwrapping); the public object is read and destroyed.
pub async fn generate_wrapping_key(
    hsm: &Arc<Hsm>,
    key_id: &str,
    wrapping_key_id: &str,
    expires: i64,
) -> Result<TokenWrappingKey, KmsError> {
    let label = format!("kms-wrap:{expires}:{wrapping_key_id}");
    let id = wrap_id(key_id);
    let l = label.clone();
    let (n, e) = hsm
        .call("C_GenerateKeyPair (RSA-2048)", move |s| {
            let public = [
                Attribute::Token(false),
                Attribute::Private(false),
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Encrypt(true),
                Attribute::Wrap(true),
                Attribute::Verify(false),
            ];
            let private = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Decrypt(false),
                Attribute::Unwrap(true),
                Attribute::Sign(false),
                Attribute::Derive(false),
                Attribute::Label(l.into_bytes()),
                Attribute::Id(id),
            ];
            let (pubk, _) =
                s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)?;
            let attrs = s.get_attributes(
                pubk,
                &[AttributeType::Modulus, AttributeType::PublicExponent],
            )?;
            let _ = s.destroy_object(pubk);
            let mut n = Vec::new();
            let mut e = Vec::new();
            for a in attrs {
                match a {
                    Attribute::Modulus(v) => n = v,
                    Attribute::PublicExponent(v) => e = v,
                    _ => {}
                }
            }
            Ok((n, e))
        })
        .await?;
    let strip = |v: &[u8]| -> Vec<u8> {
        let i = v.iter().position(|b| *b != 0).unwrap_or(v.len());
        v[i..].to_vec()
    };
    use aws_lc_rs::encoding::AsDer;
    let public_der = aws_lc_rs::rsa::PublicKeyComponents {
        n: strip(&n),
        e: strip(&e),
    }
    .as_der()
    .map_err(|_| KmsError::internal("the HSM's RSA public key is not valid"))?
    .as_ref()
    .to_vec();
    Ok(TokenWrappingKey { label, public_der })
}

/// The wrapping algorithms this module can unwrap with (`C_UnwrapKey`), found once by
/// trying each on a throw-away session key pair: SoftHSM2 2.6 has no OAEP with SHA-256.
pub async fn probe_unwrap_support(hsm: &Arc<Hsm>) -> Result<Vec<WrappingAlgorithm>, KmsError> {
    let r = hsm
        .call("C_UnwrapKey (probe)", move |s| {
            let public = [
                Attribute::Token(false),
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Encrypt(true),
            ];
            let private = [
                Attribute::Token(false),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Unwrap(true),
            ];
            let (pubk, privk) =
                s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)?;
            let mut supported = Vec::new();
            for alg in WrappingAlgorithm::ALL {
                let Some(mech) = unwrap_mechanism(alg) else {
                    continue;
                };
                let ok = s
                    .encrypt(&mech, pubk, &[0x42u8; 32])
                    .and_then(|wrapped| {
                        s.unwrap_key(
                            &mech,
                            privk,
                            &wrapped,
                            &[
                                Attribute::Class(ObjectClass::SECRET_KEY),
                                Attribute::KeyType(KeyType::AES),
                                Attribute::Token(false),
                                Attribute::Sensitive(true),
                                Attribute::Extractable(false),
                            ],
                        )
                    })
                    .map(|k| {
                        let _ = s.destroy_object(k);
                    })
                    .is_ok();
                if ok {
                    supported.push(alg);
                }
            }
            let _ = s.destroy_object(pubk);
            let _ = s.destroy_object(privk);
            Ok(supported)
        })
        .await?;
    Ok(r)
}

/// The outcome of an unwrap: the new object's label and its commitment value (a GMAC under
/// the unwrapped key of the key id: equal for equal material, revealing nothing of it).
pub struct Unwrapped {
    pub label: String,
    pub commitment_input: Vec<u8>,
}

/// `C_UnwrapKey` of imported material into a new token object of key `key_id`, version
/// `version_id`. `Ok(None)` for every failure of the material itself (bad padding, wrong
/// length, wrong key or algorithm): one outcome, no oracle. `Err` only when the HSM fails.
pub async fn unwrap_material(
    hsm: &Arc<Hsm>,
    wrapping_label: &str,
    algorithm: WrappingAlgorithm,
    wrapped: &[u8],
    key_id: &str,
    version_id: &str,
) -> Result<Option<Unwrapped>, KmsError> {
    let label = format!("kms-key:{key_id}:{version_id}:{}", random_suffix());
    let id = key_id_attr(key_id);
    let wrapping_label = wrapping_label.to_string();
    let wrapped = wrapped.to_vec();
    let commit_aad = format!("kms material commitment v1:{key_id}").into_bytes();
    let l = label.clone();
    let r = hsm
        .call("C_UnwrapKey", move |s| {
            let wk = find(s, ObjectClass::PRIVATE_KEY, &wrapping_label)?;
            let Some(mech) = unwrap_mechanism(algorithm) else {
                return Ok(None);
            };
            // Unwrapped extractable for a moment (still sensitive), so that its length can
            // be measured by wrapping it under a throw-away session key inside the token
            // (SoftHSM2 sets no CKA_VALUE_LEN on unwrap and refuses one in the template);
            // then made non-extractable for good (true → false is the one allowed change).
            let mut t = secret_key_template(&l, &id);
            t.retain(|a| !matches!(a, Attribute::Extractable(_)));
            t.push(Attribute::Extractable(true));
            let obj = s.unwrap_key(&mech, wk, &wrapped, &t)?;
            match material_is_256_bits(s, obj) {
                Ok(true) => {}
                Ok(false) => {
                    let _ = s.destroy_object(obj);
                    return Ok(None);
                }
                Err(e) => {
                    let _ = s.destroy_object(obj);
                    return Err(e);
                }
            }
            match gcm_encrypt(s, obj, &COMMIT_NONCE, &commit_aad, &[]) {
                Ok(tag) => Ok(Some(tag)),
                Err(e) => {
                    let _ = s.destroy_object(obj);
                    Err(e)
                }
            }
        })
        .await;
    match r {
        Ok(Some(tag)) => Ok(Some(Unwrapped {
            label,
            commitment_input: tag,
        })),
        Ok(None) => Ok(None),
        Err(e @ HsmError::Refused { .. }) if e.refused_with(RvError::KeyHandleInvalid) => {
            // The wrapping key is gone from the token (purged or another token).
            Err(KmsError::InvalidImportToken)
        }
        Err(HsmError::Refused { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether a just-unwrapped (extractable, sensitive) key holds exactly 32 bytes, measured
/// as the length of its AES key wrap (RFC 3394: 40 bytes for 32) under a session key made
/// and destroyed here; then the key is made non-extractable and that is checked.
fn material_is_256_bits(s: &Session, obj: ObjectHandle) -> Result<bool, CkError> {
    let kek = s.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(false),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Wrap(true),
        ],
    )?;
    let wrapped_len = s
        .wrap_key(&Mechanism::AesKeyWrap, kek, obj)
        .map(|w| w.len());
    let _ = s.destroy_object(kek);
    let ok = matches!(wrapped_len, Ok(40));
    s.update_attributes(obj, &[Attribute::Extractable(false)])?;
    let extractable = s
        .get_attributes(obj, &[AttributeType::Extractable])?
        .into_iter()
        .any(|a| a == Attribute::Extractable(true));
    if extractable {
        return Err(CkError::Pkcs11(
            RvError::AttributeReadOnly,
            cryptoki::context::Function::SetAttributeValue,
        ));
    }
    Ok(ok)
}

/// Destroys wrapping private keys whose import token has expired.
pub async fn purge_wrapping_keys(hsm: &Arc<Hsm>, now: i64) -> Result<usize, KmsError> {
    Ok(hsm
        .call("C_DestroyObject (expired wrapping keys)", move |s| {
            let mut n = 0;
            for o in s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])? {
                let label = label_of_object(s, o)?;
                let expires = parse_wrap_label(&label).map(|(t, _)| t);
                if expires.is_some_and(|t| t <= now) {
                    s.destroy_object(o)?;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await?)
}

// ------------------------------------------------------------------ root sealing

pub(crate) const ROOT_ID: &[u8] = b"kms-root";

/// Generates the root-sealing AES-256 key (admin command).
pub(crate) fn generate_root_key_blocking(hsm: &Arc<Hsm>) -> Result<String, HsmError> {
    let label = format!("kms-root:{}", random_suffix());
    let l = label.clone();
    hsm.call_blocking("C_GenerateKey (root AES-256)", move |s| {
        let mut t = secret_key_template(&l, ROOT_ID);
        t.push(Attribute::ValueLen(32.into()));
        s.generate_key(&Mechanism::AesKeyGen, &t).map(|_| ())
    })?;
    Ok(label)
}

/// AES-GCM seal with a named token key (start-up and admin commands).
pub(crate) fn seal_blocking(
    hsm: &Arc<Hsm>,
    label: &str,
    nonce: [u8; GCM_NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, HsmError> {
    let (label, aad) = (label.to_string(), aad.to_vec());
    let plaintext = Zeroizing::new(plaintext.to_vec());
    hsm.call_blocking("C_Encrypt (root key)", move |s| {
        let key = find(s, ObjectClass::SECRET_KEY, &label)?;
        gcm_encrypt(s, key, &nonce, &aad, &plaintext)
    })
}

/// The opening half: `Ok(None)` when the value does not authenticate under that key.
pub(crate) fn open_blocking(
    hsm: &Arc<Hsm>,
    label: &str,
    nonce: [u8; GCM_NONCE_LEN],
    aad: &[u8],
    body: &[u8],
) -> Result<Option<Secret>, HsmError> {
    let (label, aad, body) = (label.to_string(), aad.to_vec(), body.to_vec());
    let r = hsm.call_blocking("C_Decrypt (root key)", move |s| {
        let key = find(s, ObjectClass::SECRET_KEY, &label)?;
        let mut iv = nonce;
        let params = GcmParams::new(&mut iv, &aad, GCM_TAG_BITS.into())?;
        s.decrypt(&Mechanism::AesGcm(params), key, &body)
            .map(Zeroizing::new)
    });
    match r {
        Ok(p) => Ok(Some(p)),
        Err(e @ HsmError::Refused { .. }) if !e.refused_with(RvError::KeyHandleInvalid) => Ok(None),
        Err(e) => Err(e),
    }
}
