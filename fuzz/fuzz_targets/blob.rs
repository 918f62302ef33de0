//! The ciphertext blob decoder: `parse_header` and `decrypt` on arbitrary bytes (raw and
//! as the base64 text Decrypt receives), under a fixed key and context. Invariants: no
//! panic; a blob that decrypts stops decrypting when its tag changes; and any input used as
//! a plaintext round-trips through `encrypt`/`decrypt` with its header intact.
#![no_main]

use aws_lc_rs::rand::SystemRandom;
use base64::Engine;
use kms::keystore::blob;
use kms::service::crypto::EncryptionContext;
use libfuzzer_sys::fuzz_target;

const KEY: &str = "05754286-3ba2-4fa6-8d41-4323aca6aaaa";
const VERSION: &str = "86a9efd9-3d16-4894-bd4f-1fc43f3f2abf";
const MATERIAL: [u8; 32] = [9u8; 32];

fuzz_target!(|data: &[u8]| {
    let context = EncryptionContext::parse("EncryptionContext", "{\"a\":\"b\"}")
        .map(|c| c.canonical())
        .unwrap_or_default();
    // Raw bytes, and the same bytes read as the base64 text of a CiphertextBlob parameter.
    let mut inputs = vec![data.to_vec()];
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(text.trim()) {
            inputs.push(raw);
        }
    }
    for raw in &inputs {
        if let Some(h) = blob::parse_header(raw) {
            assert_eq!(h.key_id.len(), 36);
            assert_eq!(h.version_id.len(), 36);
            // Only a real blob (such as the corpus seeds) decrypts; then any change to its
            // tag makes it fail.
            if let Some(pt) = blob::decrypt(&MATERIAL, &context, raw) {
                assert_eq!(pt.len(), raw.len() - blob::OVERHEAD);
                let mut t = raw.clone();
                if let Some(last) = t.last_mut() {
                    *last ^= 0x80;
                }
                assert!(blob::decrypt(&MATERIAL, &context, &t).is_none());
            }
        } else {
            assert!(blob::decrypt(&MATERIAL, &context, raw).is_none());
        }
        // Wrong-length material must fail cleanly, not panic.
        assert!(blob::decrypt(&MATERIAL[..16], &context, raw).is_none());
    }

    // Round trip with the input as plaintext and as context.
    let rng = SystemRandom::new();
    let sealed = blob::encrypt(&rng, KEY, VERSION, &MATERIAL, data, data).expect("encrypt");
    let h = blob::parse_header(&sealed).expect("header");
    assert_eq!((h.key_id.as_str(), h.version_id.as_str()), (KEY, VERSION));
    let opened = blob::decrypt(&MATERIAL, data, &sealed).expect("decrypt");
    assert_eq!(opened.as_slice(), data);
    if !data.is_empty() {
        let mut tampered = sealed.clone();
        let i = data[0] as usize % tampered.len();
        tampered[i] ^= 1;
        assert!(blob::decrypt(&MATERIAL, data, &tampered).is_none());
    }
});
