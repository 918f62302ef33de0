//! The BYOK unwrap path (`keystore::wrapping::unwrap`) with each wrapping algorithm and one
//! fixed RSA-2048 key (`fuzz/keys/unwrap-fuzz-key.pk8.der`, a throwaway test key, so that
//! the corpus seeds, wrapped under it with openssl, and any crash reproduce). Invariants: no panic; whatever decrypts is at most 256 bytes; and
//! the input (cut to what the algorithm can carry) wrapped with the public key unwraps to
//! itself under its own algorithm.
#![no_main]

use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::PrivateDecryptingKey;
use kms::keystore::wrapping::{self, WrappingAlgorithm};
use libfuzzer_sys::fuzz_target;

struct Key {
    pkcs8: &'static [u8],
    public_der: Vec<u8>,
}

fn key() -> &'static Key {
    static K: OnceLock<Key> = OnceLock::new();
    K.get_or_init(|| {
        let pkcs8: &'static [u8] = include_bytes!("../keys/unwrap-fuzz-key.pk8.der");
        let public_der = PrivateDecryptingKey::from_pkcs8(pkcs8)
            .expect("fixed key")
            .public_key()
            .as_der()
            .expect("spki")
            .as_ref()
            .to_vec();
        Key { pkcs8, public_der }
    })
}

fuzz_target!(|data: &[u8]| {
    let kp = key();
    let (selector, ciphertext) = data.split_first().unwrap_or((&0, &[]));
    for alg in WrappingAlgorithm::ALL {
        if let Some(out) = wrapping::unwrap(kp.pkcs8, alg, ciphertext) {
            assert!(out.len() <= 256);
        }
        // A private key that is not a key is a clean failure too.
        assert!(wrapping::unwrap(ciphertext, alg, ciphertext).is_none());
    }
    // RSA_AES_KEY_WRAP_SHA_256 (asymmetric material, issue 17): any input is a clean
    // failure or a value; its own wrapping of any length round-trips.
    {
        let alg = WrappingAlgorithm::RsaAesKeyWrapSha256;
        let _ = wrapping::unwrap(kp.pkcs8, alg, ciphertext);
        if !ciphertext.is_empty() {
            let wrapped = wrapping::wrap(&kp.public_der, alg, ciphertext).expect("wrap");
            let back = wrapping::unwrap(kp.pkcs8, alg, &wrapped).expect("unwrap own wrapping");
            assert_eq!(back.as_slice(), ciphertext);
        }
    }
    // Round trip (RSA-2048: PKCS#1 v1.5 carries 245 bytes, OAEP-SHA1 214, OAEP-SHA256 190).
    let alg = WrappingAlgorithm::ALL[*selector as usize % 3];
    let max = match alg {
        WrappingAlgorithm::RsaesPkcs1V15 => 245,
        WrappingAlgorithm::RsaesOaepSha1 => 214,
        WrappingAlgorithm::RsaesOaepSha256 => 190,
        // Not in ALL (handled above).
        WrappingAlgorithm::RsaAesKeyWrapSha256 => 0,
    };
    let msg = &ciphertext[..ciphertext.len().min(max)];
    let wrapped = wrapping::wrap(&kp.public_der, alg, msg).expect("wrap");
    let back = wrapping::unwrap(kp.pkcs8, alg, &wrapped).expect("unwrap own wrapping");
    assert_eq!(back.as_slice(), msg);
});
