//! The import token decoder (`Keystore::read_token`) on arbitrary text. Invariants: no
//! panic; every failure is `InvalidImportToken`; arbitrary text never authenticates; and
//! claims built from the input round-trip through `issue_token`/`read_token`, while a token
//! with any one byte changed is refused.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use kms::error::KmsError;
use kms::keystore::token::TokenClaims;
use kms::keystore::Keystore;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    token: String,
    account_id: String,
    region: String,
    key_id: String,
    wrapping_key_id: String,
    algorithm: String,
    expires: i64,
    flip: u16,
}

fn keystore() -> &'static Keystore {
    static K: OnceLock<Keystore> = OnceLock::new();
    K.get_or_init(|| Keystore::from_root(&[3u8; 32]).expect("keystore"))
}

fuzz_target!(|input: Input| {
    let ks = keystore();
    match ks.read_token(&input.token) {
        Ok(claims) => panic!("an arbitrary token authenticated: {claims:?}"),
        Err(e) => assert_eq!(e, KmsError::InvalidImportToken),
    }

    let claims = TokenClaims {
        account_id: input.account_id,
        region: input.region,
        key_id: input.key_id,
        wrapping_key_id: input.wrapping_key_id,
        algorithm: input.algorithm,
        expires: input.expires,
    };
    let token = ks.issue_token(&claims).expect("issue");
    if token.len() <= kms::keystore::token::MAX_TOKEN_LEN {
        assert_eq!(ks.read_token(&token).as_ref(), Ok(&claims));
    } else {
        assert_eq!(ks.read_token(&token), Err(KmsError::InvalidImportToken));
    }
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(&token)
        .expect("own token is base64");
    let i = input.flip as usize % raw.len();
    raw[i] ^= 0x01;
    let altered = base64::engine::general_purpose::STANDARD.encode(&raw);
    assert_eq!(ks.read_token(&altered), Err(KmsError::InvalidImportToken));
});
