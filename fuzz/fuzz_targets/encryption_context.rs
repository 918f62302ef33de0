//! EncryptionContext parsing and canonicalisation on arbitrary text. Invariants: no panic;
//! a refusal is `InvalidParameter` naming the parameter; an accepted context's canonical
//! form parses back to the same context and is a fixed point (canonical of canonical).
#![no_main]

use kms::error::KmsError;
use kms::service::crypto::EncryptionContext;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match EncryptionContext::parse("EncryptionContext", text) {
        Err(e) => {
            assert!(
                matches!(&e, KmsError::InvalidParameter(n, _) if n == "EncryptionContext"),
                "{e:?}"
            );
            assert_eq!(e.status(), 400);
        }
        Ok(ctx) => {
            let canonical = ctx.canonical();
            if canonical.is_empty() {
                assert_eq!(ctx, EncryptionContext::default());
                return;
            }
            let text2 = std::str::from_utf8(&canonical).expect("canonical is UTF-8");
            // Canonical form never needs more characters than the accepted text (whitespace
            // and redundant escapes go), so it is accepted too, as the same context.
            let again = EncryptionContext::parse("EncryptionContext", text2)
                .unwrap_or_else(|e| panic!("canonical {text2:?} of {text:?} refused: {e:?}"));
            assert_eq!(again, ctx);
            assert_eq!(again.canonical(), canonical);
        }
    }
});
