//! Service tests for `Aliyun_SM4` keys and SM2PKE import (issue 17).

use super::crypto::EncryptionContext;
use super::keys::CreateKeyInput;
use super::testing::kms;
use super::{Caller, Kms};
use crate::error::{KmsError, Rejection};
use crate::keystore::blob::{self, BlobCipher};
use crate::keystore::wrapping::{Wrapping, WrappingAlgorithm};
use crate::model::{KeySpec, KeyState};
use crate::store::KeyRecord;

fn ctx(s: &str) -> EncryptionContext {
    EncryptionContext::parse("EncryptionContext", s).unwrap()
}

async fn create(kms: &Kms, caller: &Caller, spec: &str, origin: Option<&str>) -> KeyRecord {
    kms.create_key(
        caller,
        CreateKeyInput {
            key_spec: Some(spec.into()),
            origin: origin.map(str::to_string),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn sm4_keys_encrypt_with_sm4_gcm_and_interoperate_with_aes_keys() {
    let (kms, _clock, caller) = kms();
    let sm4 = create(&kms, &caller, "Aliyun_SM4", None).await;
    assert_eq!(sm4.key_spec, KeySpec::Sm4);
    assert_eq!(sm4.state, KeyState::Enabled);
    let aes = create(&kms, &caller, "Aliyun_AES_256", None).await;
    let c = ctx(r#"{"app":"x"}"#);
    let s = kms
        .encrypt(&caller, &sm4.key_id, b"hello sm4", &c, false)
        .await
        .unwrap();
    assert_eq!(s.ciphertext_blob[0], blob::FORMAT_SM4_GCM);
    assert_eq!(s.ciphertext_blob.len(), blob::OVERHEAD + 9);
    let o = kms
        .decrypt(&caller, &s.ciphertext_blob, &c, false)
        .await
        .unwrap();
    assert_eq!(o.plaintext.as_slice(), b"hello sm4");
    assert_eq!(o.key_id, sm4.key_id);
    // Wrong context; relabelled as an AES blob: the same generic error.
    assert!(matches!(
        kms.decrypt(&caller, &s.ciphertext_blob, &ctx("{}"), false)
            .await,
        Err(KmsError::InvalidParameter(..))
    ));
    let mut relabelled = s.ciphertext_blob.clone();
    relabelled[0] = blob::FORMAT_V1;
    assert!(matches!(
        kms.decrypt(&caller, &relabelled, &c, false).await,
        Err(KmsError::InvalidParameter(..))
    ));
    // Data keys (AES_256 length by default) and ReEncrypt both ways.
    let (dk_blob, dk) = kms
        .generate_data_key(&caller, &sm4.key_id, 32, &c, false, true)
        .await
        .unwrap();
    assert_eq!(dk.len(), 32);
    let to_aes = kms
        .re_encrypt(
            &caller,
            &dk_blob.ciphertext_blob,
            &aes.key_id,
            &c,
            &ctx("{}"),
            false,
        )
        .await
        .unwrap();
    assert_eq!(to_aes.ciphertext_blob[0], blob::FORMAT_V1);
    let back = kms
        .re_encrypt(
            &caller,
            &to_aes.ciphertext_blob,
            &sm4.key_id,
            &ctx("{}"),
            &c,
            false,
        )
        .await
        .unwrap();
    assert_eq!(back.ciphertext_blob[0], blob::FORMAT_SM4_GCM);
    let o = kms
        .decrypt(&caller, &back.ciphertext_blob, &c, false)
        .await
        .unwrap();
    assert_eq!(o.plaintext.as_slice(), dk.as_slice());
    // A new version makes 16-byte material too; old blobs still decrypt.
    let v2 = kms.create_key_version(&caller, &sm4.key_id).await.unwrap();
    let s2 = kms
        .encrypt(&caller, &sm4.key_id, b"v2", &c, false)
        .await
        .unwrap();
    assert_eq!(s2.key_version_id, v2.version_id);
    assert_eq!(
        kms.decrypt(&caller, &s.ciphertext_blob, &c, false)
            .await
            .unwrap()
            .plaintext
            .as_slice(),
        b"hello sm4"
    );
    // State rules as for AES keys.
    kms.disable_key(&caller, &sm4.key_id).await.unwrap();
    assert_eq!(
        kms.encrypt(&caller, &sm4.key_id, b"x", &c, false)
            .await
            .unwrap_err(),
        KmsError::Rejected(Rejection::Disabled)
    );
}

#[tokio::test]
async fn sm4_material_is_16_bytes_and_imports_with_sm2pke_or_rsa() {
    let (kms, _clock, caller) = kms();
    let k = create(&kms, &caller, "Aliyun_SM4", Some("EXTERNAL")).await;
    assert_eq!(k.state, KeyState::PendingImport);
    let p = kms
        .get_parameters_for_import(&caller, &k.key_id, "SM2PKE", "EC_SM2")
        .await
        .unwrap();
    assert_eq!(p.public_key_der.len(), 91);
    // 32 bytes (AES-sized) material: the generic InvalidKeyMaterial.
    let too_long = Wrapping::Sm2Pke
        .wrap(&p.public_key_der, &[1u8; 32])
        .unwrap();
    assert_eq!(
        kms.import_key_material(&caller, &k.key_id, &p.import_token, &too_long, None)
            .await,
        Err(KmsError::InvalidKeyMaterial)
    );
    let material = [0x5au8; 16];
    let wrapped = Wrapping::Sm2Pke.wrap(&p.public_key_der, &material).unwrap();
    kms.import_key_material(&caller, &k.key_id, &p.import_token, &wrapped, None)
        .await
        .unwrap();
    let k2 = kms.describe_key(&caller, &k.key_id).await.unwrap();
    assert_eq!(k2.state, KeyState::Enabled);
    // The blob opens with the imported material through SM4-GCM: the material is used as is.
    let s = kms
        .encrypt(&caller, &k.key_id, b"byok", &ctx("{}"), false)
        .await
        .unwrap();
    assert_eq!(
        blob::decrypt_with(BlobCipher::Sm4Gcm, &material, b"", &s.ciphertext_blob)
            .unwrap()
            .as_slice(),
        b"byok"
    );
    // Re-import: RSA wrapping of the same material works; different material does not.
    let p_rsa = kms
        .get_parameters_for_import(&caller, &k.key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
        .await
        .unwrap();
    let rsa = Wrapping::Rsa(WrappingAlgorithm::RsaesOaepSha256);
    let other = rsa.wrap(&p_rsa.public_key_der, &[0x5bu8; 16]).unwrap();
    assert_eq!(
        kms.import_key_material(&caller, &k.key_id, &p_rsa.import_token, &other, None)
            .await,
        Err(KmsError::InvalidKeyMaterial)
    );
    let same = rsa.wrap(&p_rsa.public_key_der, &material).unwrap();
    kms.import_key_material(&caller, &k.key_id, &p_rsa.import_token, &same, None)
        .await
        .unwrap();
    // A token is bound to its algorithm: SM2PKE ciphertext under the RSA token (and the
    // reverse) is the same InvalidKeyMaterial as any failed unwrap.
    assert_eq!(
        kms.import_key_material(&caller, &k.key_id, &p_rsa.import_token, &wrapped, None)
            .await,
        Err(KmsError::InvalidKeyMaterial)
    );
    assert_eq!(
        kms.import_key_material(&caller, &k.key_id, &p.import_token, &same, None)
            .await,
        Err(KmsError::InvalidKeyMaterial)
    );
    // Mismatched spec/algorithm pairs and unknown names: InvalidParameter.
    for (alg, spec) in [
        ("SM2PKE", "RSA_2048"),
        ("RSAES_OAEP_SHA_256", "EC_SM2"),
        ("SM2PKE", "EC_SM3"),
        ("sm2pke", "EC_SM2"),
    ] {
        assert!(
            matches!(
                kms.get_parameters_for_import(&caller, &k.key_id, alg, spec)
                    .await,
                Err(KmsError::InvalidParameter(..))
            ),
            "{alg} {spec}"
        );
    }
}

#[tokio::test]
async fn aes_keys_take_sm2pke_wrapped_32_byte_material() {
    let (kms, _clock, caller) = kms();
    let k = create(&kms, &caller, "Aliyun_AES_256", Some("EXTERNAL")).await;
    let p = kms
        .get_parameters_for_import(&caller, &k.key_id, "SM2PKE", "EC_SM2")
        .await
        .unwrap();
    let short = Wrapping::Sm2Pke
        .wrap(&p.public_key_der, &[1u8; 16])
        .unwrap();
    assert_eq!(
        kms.import_key_material(&caller, &k.key_id, &p.import_token, &short, None)
            .await,
        Err(KmsError::InvalidKeyMaterial)
    );
    let ok = Wrapping::Sm2Pke
        .wrap(&p.public_key_der, &[1u8; 32])
        .unwrap();
    kms.import_key_material(&caller, &k.key_id, &p.import_token, &ok, None)
        .await
        .unwrap();
    let s = kms
        .encrypt(&caller, &k.key_id, b"aes", &ctx("{}"), false)
        .await
        .unwrap();
    assert_eq!(s.ciphertext_blob[0], blob::FORMAT_V1);
}
