//! Property test of the key state machine: random sequences of actions on an ordinary and
//! an EXTERNAL key, run against the service and against a small hand-written model of the
//! reference's rules (§3.5–3.8, §3.18). Every answer and every resulting state must agree.

use std::sync::Arc;

use proptest::prelude::*;

use super::crypto::EncryptionContext;
use super::keys::CreateKeyInput;
use super::state::KeyState;
use super::testing::kms;
use super::Kms;
use crate::error::{KmsError, Rejection};
use crate::keystore::wrapping::{self, WrappingAlgorithm};

#[derive(Debug, Clone, Copy)]
enum Op {
    Enable,
    Disable,
    Schedule,
    Cancel,
    Encrypt,
    DeleteMaterial,
    Import,
}

fn op() -> impl Strategy<Value = (Op, bool)> {
    (
        prop_oneof![
            Just(Op::Enable),
            Just(Op::Disable),
            Just(Op::Schedule),
            Just(Op::Cancel),
            Just(Op::Encrypt),
            Just(Op::DeleteMaterial),
            Just(Op::Import),
        ],
        any::<bool>(),
    )
}

/// The model of one key.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Model {
    state: KeyState,
    external: bool,
    material: bool,
}

fn reject(s: KeyState) -> KmsError {
    KmsError::Rejected(match s {
        KeyState::Disabled => Rejection::Disabled,
        KeyState::PendingDeletion => Rejection::PendingDeletion,
        KeyState::PendingImport => Rejection::PendingImport,
        KeyState::Enabled => Rejection::StateModifiedFailed,
    })
}

const SMF: KmsError = KmsError::Rejected(Rejection::StateModifiedFailed);

impl Model {
    /// The expected answer, and the model's new state.
    fn apply(&mut self, op: Op) -> Result<(), KmsError> {
        use KeyState::*;
        match op {
            Op::Enable | Op::Disable => match self.state {
                Enabled | Disabled => {
                    self.state = if matches!(op, Op::Enable) {
                        Enabled
                    } else {
                        Disabled
                    };
                    Ok(())
                }
                _ => Err(SMF),
            },
            Op::Schedule => match self.state {
                PendingDeletion => Err(SMF),
                _ => {
                    self.state = PendingDeletion;
                    Ok(())
                }
            },
            Op::Cancel => match self.state {
                PendingDeletion => {
                    self.state = if self.material {
                        Enabled
                    } else {
                        PendingImport
                    };
                    Ok(())
                }
                _ => Err(SMF),
            },
            Op::Encrypt => match self.state {
                Enabled => Ok(()),
                s => Err(reject(s)),
            },
            Op::DeleteMaterial => {
                if !self.external {
                    return Err(KmsError::UnsupportedOrigin);
                }
                self.material = false;
                if self.state != PendingDeletion {
                    self.state = PendingImport;
                }
                Ok(())
            }
            Op::Import => {
                if !self.external {
                    return Err(KmsError::UnsupportedOrigin);
                }
                if self.state == PendingDeletion {
                    return Err(SMF);
                }
                self.material = true;
                if self.state == PendingImport {
                    self.state = Enabled;
                }
                Ok(())
            }
        }
    }
}

struct Setup {
    kms: Kms,
    caller: super::Caller,
    plain: String,
    external: String,
    token: String,
    wrapped: Vec<u8>,
}

async fn setup() -> Setup {
    let (kms, _clock, caller) = kms();
    let plain = kms
        .create_key(&caller, CreateKeyInput::default())
        .await
        .unwrap()
        .key_id;
    let external = kms
        .create_key(
            &caller,
            CreateKeyInput {
                origin: Some("EXTERNAL".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .key_id;
    let p = kms
        .get_parameters_for_import(&caller, &external, "RSAES_OAEP_SHA_256", "RSA_2048")
        .await
        .unwrap();
    let wrapped = wrapping::wrap(
        &p.public_key_der,
        WrappingAlgorithm::RsaesOaepSha256,
        &[0x42u8; 32],
    )
    .unwrap();
    kms.import_key_material(&caller, &external, &p.import_token, &wrapped, None)
        .await
        .unwrap();
    Setup {
        kms,
        caller,
        plain,
        external,
        token: p.import_token,
        wrapped,
    }
}

async fn run(s: &Setup, key: &str, op: Op) -> Result<(), KmsError> {
    let (kms, c) = (&s.kms, &s.caller);
    match op {
        Op::Enable => kms.enable_key(c, key).await,
        Op::Disable => kms.disable_key(c, key).await,
        Op::Schedule => kms.schedule_key_deletion(c, key, 7).await.map(drop),
        Op::Cancel => kms.cancel_key_deletion(c, key).await,
        Op::Encrypt => kms
            .encrypt(c, key, b"x", &EncryptionContext::default(), false)
            .await
            .map(drop),
        Op::DeleteMaterial => kms.delete_key_material(c, key).await,
        Op::Import => {
            kms.import_key_material(c, key, &s.token, &s.wrapped, None)
                .await
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_service_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let s = Arc::new(setup().await);
            let mut plain = Model { state: KeyState::Enabled, external: false, material: true };
            let mut external = Model { state: KeyState::Enabled, external: true, material: true };
            for (op, on_external) in ops {
                let (key, model) = if on_external { (&s.external, &mut external) } else { (&s.plain, &mut plain) };
                let expected = model.apply(op);
                let got = run(&s, key, op).await;
                prop_assert_eq!(&got, &expected, "{:?} on {} key", op, if on_external { "EXTERNAL" } else { "ordinary" });
                let d = s.kms.describe_key(&s.caller, key).await.unwrap();
                prop_assert_eq!(d.state, model.state);
                prop_assert_eq!(d.material_present, model.material);
            }
            Ok(())
        })?;
    }
}
