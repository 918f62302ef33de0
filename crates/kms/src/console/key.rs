//! The key page (`GET /console/keys/<KeyId>`): state and the actions it allows, metadata,
//! description, key material and its import dialogs (EXTERNAL keys) or the rotation policy
//! (the others), deletion protection, versions, aliases and tags (`key.html`,
//! `material_dialogs.html`; `key_not_found.html` when the key cannot be shown).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::extract::Signed;
use super::i18n::Text as T;
use super::view::{Badge, Frame};
use super::{html, internal, ConsoleState};
use crate::action::kms::Action;
use crate::action::ApiAction;
use crate::api::keys::KeyMetadata;
use crate::error::KmsError;
use crate::keystore::wrapping::{Wrapping, WrappingAlgorithm};
use crate::model::KeyState;
use crate::service::{Caller, Kms};
use crate::store::{AliasRecord, KeyRecord, KeyVersionRecord};
use crate::timefmt::format_unix;

/// Metadata fields shown as written, wrapping between words; every other field is one
/// token (id, ARN, date, enum) that is never broken across lines.
const FREE_TEXT_FIELDS: [&str; 2] = ["Description", "DeletionProtectionDescription"];
/// Metadata fields given a whole row of the grid (long tokens).
const WIDE_FIELDS: [&str; 1] = ["Arn"];

/// Whether the key's material is imported by its owner (EXTERNAL origin).
fn is_external(key: &KeyRecord) -> bool {
    key.origin == crate::model::Origin::External
}

/// The state changes the page offers in a key state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Actions {
    enable: bool,
    disable: bool,
    /// Cancel deletion (else: schedule deletion).
    cancel_deletion: bool,
}

impl Actions {
    fn for_state(state: KeyState) -> Self {
        Actions {
            enable: state == KeyState::Disabled,
            disable: state == KeyState::Enabled,
            cancel_deletion: state == KeyState::PendingDeletion,
        }
    }
}

/// A metadata field (`KeyMetadata` as DescribeKey answers it).
struct Field {
    name: String,
    value: String,
    token: bool,
    wide: bool,
}

struct Material {
    present: bool,
    /// When the material expires (`None`: never).
    expire: Option<String>,
    /// The openssl commands that wrap material for each algorithm: `(algorithm, commands)`.
    commands: Vec<(&'static str, String)>,
    /// The algorithm chosen when the dialog opens.
    default_alg: &'static str,
}

/// The algorithm the import dialog offers first: the one of the README and of Alibaba
/// Cloud's import guide (`openssl rsautl -oaep`).
pub const DEFAULT_WRAPPING_ALGORITHM: WrappingAlgorithm = WrappingAlgorithm::RsaesOaepSha1;

/// The openssl commands (OpenSSL 3 `pkeyutl` forms) that turn 32 random bytes into
/// `EncryptedKeyMaterial_base64.txt` for `algorithm`, from the dialog's
/// `PublicKey_base64.txt`, ready to paste into a shell.
pub fn openssl_commands(algorithm: WrappingAlgorithm) -> String {
    openssl_commands_for(Wrapping::Rsa(algorithm), 32)
}

/// The openssl commands for any wrapping (SM2PKE included: plain `pkeyutl -encrypt` with
/// the EC_SM2 key writes the DER ciphertext the server takes) and material length (32 for
/// `Aliyun_AES_256`, 16 for `Aliyun_SM4`).
pub fn openssl_commands_for(wrapping: Wrapping, material_len: usize) -> String {
    if wrapping == Wrapping::Rsa(WrappingAlgorithm::RsaAesKeyWrapSha256) {
        // Asymmetric material (issue 17): the private key tak.pem, as unencrypted PKCS#8,
        // key-wrapped under a fresh AES key that RSA-OAEP-SHA256 wraps.
        return "openssl pkcs8 -topk8 -nocrypt -in tak.pem -outform DER -out tak.der    # tak.pem: the private key to import\n\
                openssl enc -d -base64 -A -in PublicKey_base64.txt -out PublicKey.bin\n\
                openssl rand -out esk.bin 32\n\
                openssl pkeyutl -encrypt -pubin -keyform DER -inkey PublicKey.bin -in esk.bin -out esk.enc -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256\n\
                openssl enc -id-aes256-wrap-pad -K \"$(xxd -p -c 64 esk.bin)\" -iv A65959A6 -in tak.der -out tak.wrapped\n\
                cat esk.enc tak.wrapped | openssl enc -e -base64 -A -out EncryptedKeyMaterial_base64.txt\n"
            .to_string();
    }
    let padding = match wrapping {
        Wrapping::Rsa(WrappingAlgorithm::RsaesOaepSha1) => {
            " -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1"
        }
        Wrapping::Rsa(WrappingAlgorithm::RsaesOaepSha256) => {
            " -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256"
        }
        Wrapping::Rsa(WrappingAlgorithm::RsaesPkcs1V15) => " -pkeyopt rsa_padding_mode:pkcs1",
        Wrapping::Sm2Pke => "",
        // Handled above (two-step wrap).
        Wrapping::Rsa(WrappingAlgorithm::RsaAesKeyWrapSha256) => "",
    };
    format!(
        "openssl rand -out KeyMaterial.bin {material_len}    # new material; to import again, skip this line and keep KeyMaterial.bin\n\
         openssl enc -d -base64 -A -in PublicKey_base64.txt -out PublicKey.bin\n\
         openssl pkeyutl -encrypt -pubin -keyform DER -inkey PublicKey.bin -in KeyMaterial.bin -out EncryptedKeyMaterial.bin{padding}\n\
         openssl enc -e -base64 -A -in EncryptedKeyMaterial.bin -out EncryptedKeyMaterial_base64.txt\n"
    )
}

struct Rotation {
    enabled: bool,
    days: i64,
}

struct Protection {
    enabled: bool,
    description: String,
}

struct Version {
    id: String,
    primary: bool,
    created: String,
    /// Asymmetric keys: the version's public key (PEM), when GetPublicKey answers it.
    public_key: Option<String>,
}

#[derive(Template)]
#[template(path = "console/key.html")]
struct KeyPage {
    frame: Frame,
    /// The first alias, else the key id.
    title: String,
    key_id: String,
    badge: Badge,
    actions: Actions,
    fields: Vec<Field>,
    description: String,
    material: Option<Material>,
    rotation: Option<Rotation>,
    arn: String,
    protection: Protection,
    versions: Vec<Version>,
    /// Asymmetric key (issue 17): the versions table shows public keys.
    asymmetric: bool,
    aliases: Vec<String>,
    tags: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "console/key_not_found.html")]
struct KeyNotFound {
    frame: Frame,
    title: &'static str,
    code: &'static str,
    message: String,
}

/// What the page shows, read through the service as the signed-in caller.
struct Loaded {
    key: KeyRecord,
    versions: Vec<KeyVersionRecord>,
    /// Asymmetric keys: each version's public key, as GetPublicKey answers it (None in a
    /// state where it refuses).
    public_keys: Vec<Option<String>>,
    aliases: Vec<AliasRecord>,
    tags: Vec<(String, String)>,
}

/// Which of the page's secondary reads the signed-in principal may make, each decided by
/// its policies as the API action would be (always all, for the account's root); a read it
/// may not make is left out of the page, as the API would refuse it.
#[derive(Debug, Clone, Copy)]
struct Reads {
    versions: bool,
    public_keys: bool,
    aliases: bool,
    tags: bool,
}

impl Reads {
    async fn of(st: &ConsoleState, s: &Signed, key_id: &str) -> Result<Reads, KmsError> {
        let may = |action: Action| async move {
            match s
                .may(st, ApiAction::Kms(action), &[("KeyId", key_id)])
                .await
            {
                Ok(()) => Ok(true),
                Err(KmsError::Internal(e)) => Err(KmsError::Internal(e)),
                Err(_) => Ok(false),
            }
        };
        Ok(Reads {
            versions: may(Action::ListKeyVersions).await?,
            public_keys: may(Action::GetPublicKey).await?,
            aliases: may(Action::ListAliasesByKeyId).await?,
            tags: may(Action::ListResourceTags).await?,
        })
    }
}

async fn load(kms: &Kms, caller: &Caller, key_id: &str, reads: Reads) -> Result<Loaded, KmsError> {
    let key = kms.describe_key(caller, key_id).await?;
    let versions = if reads.versions {
        kms.list_key_versions(caller, &key.key_id).await?
    } else {
        Vec::new()
    };
    let mut public_keys = Vec::new();
    if key.key_spec.is_asymmetric() && reads.public_keys {
        for v in &versions {
            let pem = kms
                .get_public_key(caller, &key.key_id, &v.version_id, false)
                .await
                .ok()
                .map(|(_, pem)| pem);
            public_keys.push(pem);
        }
    }
    let aliases = if reads.aliases {
        kms.list_aliases(caller, Some(&key.key_id)).await?
    } else {
        Vec::new()
    };
    let tags = if reads.tags {
        let (_, tags) = kms.list_tags(caller, &key.key_id).await?;
        tags.into_iter().map(|t| (t.key, t.value)).collect()
    } else {
        Vec::new()
    };
    Ok(Loaded {
        key,
        versions,
        public_keys,
        aliases,
        tags,
    })
}

pub async fn key_page(
    State(st): State<ConsoleState>,
    s: Signed,
    Path(key_id): Path<String>,
) -> Response {
    let event = s.event("DescribeKey").key(&key_id);
    if let Err(refused) = s
        .may_or_refuse(
            &st,
            &event,
            ApiAction::Kms(Action::DescribeKey),
            &[("KeyId", key_id.as_str())],
        )
        .await
    {
        return refused;
    }
    let loaded = match Reads::of(&st, &s, &key_id).await {
        Ok(reads) => load(st.kms(), &s.caller(), &key_id, reads).await,
        Err(e) => Err(e),
    };
    match loaded {
        Ok(l) => {
            st.audit_ok(&event).await;
            html(StatusCode::OK, &KeyPage::new(s.frame(&st), l))
        }
        Err(e) => {
            st.audit_error(&event, &e).await;
            if let KmsError::Internal(_) = e {
                return internal(&e);
            }
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::NOT_FOUND);
            let page = KeyNotFound {
                title: s.lang.t(T::NotFound),
                code: e.code(),
                message: e.message(),
                frame: s.frame(&st),
            };
            html(status, &page)
        }
    }
}

/// `GET /console/keys/{key_id}/versions/{version_id}/public-key`: the version's public key
/// as a PEM file (GetPublicKey as the signed-in caller, audited as GetPublicKey).
pub async fn public_key_download(
    State(st): State<ConsoleState>,
    s: Signed,
    Path((key_id, version_id)): Path<(String, String)>,
) -> Response {
    let event = s.event("GetPublicKey").key(&key_id);
    if let Err(refused) = s
        .may_or_refuse(
            &st,
            &event,
            ApiAction::Kms(Action::GetPublicKey),
            &[("KeyId", key_id.as_str())],
        )
        .await
    {
        return refused;
    }
    match st
        .kms()
        .get_public_key(&s.caller(), &key_id, &version_id, false)
        .await
    {
        Ok((v, pem)) => {
            st.audit_ok(&event).await;
            let disposition = format!(
                "attachment; filename=\"{}-{}.pem\"",
                v.key_id, v.key_version_id
            );
            (
                StatusCode::OK,
                [
                    (
                        axum::http::header::CONTENT_TYPE,
                        "application/x-pem-file".to_string(),
                    ),
                    (axum::http::header::CONTENT_DISPOSITION, disposition),
                ],
                pem,
            )
                .into_response()
        }
        Err(e) => {
            st.audit_error(&event, &e).await;
            if let KmsError::Internal(_) = e {
                return internal(&e);
            }
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::NOT_FOUND);
            (status, format!("{}: {}", e.code(), e.message())).into_response()
        }
    }
}

impl KeyPage {
    fn new(frame: Frame, l: Loaded) -> Self {
        let key = &l.key;
        let md = KeyMetadata::from_record(key);
        let external = is_external(key);
        KeyPage {
            title: l
                .aliases
                .first()
                .map(|a| a.alias_name.clone())
                .unwrap_or_else(|| key.key_id.clone()),
            badge: Badge::new(key.state),
            actions: Actions::for_state(key.state),
            fields: fields(&md),
            material: external.then(|| Material {
                present: key.material_present,
                expire: key.material_expire.map(format_unix),
                commands: match key.key_spec.symmetric_material_len() {
                    None => vec![(
                        WrappingAlgorithm::RsaAesKeyWrapSha256.as_str(),
                        openssl_commands(WrappingAlgorithm::RsaAesKeyWrapSha256),
                    )],
                    Some(len) => WrappingAlgorithm::ALL
                        .into_iter()
                        .map(Wrapping::Rsa)
                        .chain([Wrapping::Sm2Pke])
                        .map(|w| (w.as_str(), openssl_commands_for(w, len)))
                        .collect(),
                },
                default_alg: if key.key_spec.is_asymmetric() {
                    WrappingAlgorithm::RsaAesKeyWrapSha256.as_str()
                } else {
                    DEFAULT_WRAPPING_ALGORITHM.as_str()
                },
            }),
            rotation: (!external).then(|| Rotation {
                enabled: key.automatic_rotation,
                days: key.rotation_interval.map(|s| s / 86_400).unwrap_or(365),
            }),
            protection: Protection {
                enabled: key.deletion_protection,
                description: key.deletion_protection_description.clone(),
            },
            versions: l
                .versions
                .iter()
                .enumerate()
                .map(|(i, v)| Version {
                    id: v.version_id.clone(),
                    // Asymmetric keys have no primary version.
                    primary: v.version_id == key.primary_version && !key.key_spec.is_asymmetric(),
                    created: format_unix(v.creation_date),
                    public_key: l.public_keys.get(i).cloned().flatten(),
                })
                .collect(),
            asymmetric: key.key_spec.is_asymmetric(),
            aliases: l.aliases.into_iter().map(|a| a.alias_name).collect(),
            tags: l.tags,
            key_id: key.key_id.clone(),
            description: key.description.clone(),
            arn: md.arn,
            frame,
        }
    }
}

/// The metadata fields in DescribeKey's order.
fn fields(md: &KeyMetadata) -> Vec<Field> {
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(md) else {
        return Vec::new();
    };
    map.into_iter()
        .map(|(name, v)| Field {
            value: v.as_str().unwrap_or_default().to_string(),
            token: !FREE_TEXT_FIELDS.contains(&name.as_str()),
            wide: WIDE_FIELDS.contains(&name.as_str()),
            name,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_commands_name_the_algorithm_s_padding() {
        let c = openssl_commands(WrappingAlgorithm::RsaesOaepSha1);
        assert!(c.contains("-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1"));
        assert!(c.ends_with(
            "openssl enc -e -base64 -A -in EncryptedKeyMaterial.bin -out EncryptedKeyMaterial_base64.txt\n"
        ));
        assert_eq!(c.lines().count(), 4);
        assert!(openssl_commands(WrappingAlgorithm::RsaesOaepSha256).contains("rsa_mgf1_md:sha256"));
        assert!(openssl_commands(WrappingAlgorithm::RsaesPkcs1V15)
            .contains("-pkeyopt rsa_padding_mode:pkcs1\n"));
        assert_eq!(DEFAULT_WRAPPING_ALGORITHM.as_str(), "RSAES_OAEP_SHA_1");
        // Aliyun_SM4 material is 16 bytes; SM2PKE needs no padding options.
        let sm = openssl_commands_for(Wrapping::Sm2Pke, 16);
        assert!(sm.starts_with("openssl rand -out KeyMaterial.bin 16 "));
        assert!(sm.contains("-out EncryptedKeyMaterial.bin\n"));
        assert!(!sm.contains("-pkeyopt"));
        assert!(openssl_commands(WrappingAlgorithm::RsaesOaepSha1)
            .starts_with("openssl rand -out KeyMaterial.bin 32 "));
    }

    #[test]
    fn actions_follow_the_state() {
        let a = Actions::for_state(KeyState::Enabled);
        assert!(a.disable && !a.enable && !a.cancel_deletion);
        let a = Actions::for_state(KeyState::Disabled);
        assert!(a.enable && !a.disable && !a.cancel_deletion);
        let a = Actions::for_state(KeyState::PendingDeletion);
        assert!(a.cancel_deletion && !a.enable && !a.disable);
        let a = Actions::for_state(KeyState::PendingImport);
        assert!(!a.enable && !a.disable && !a.cancel_deletion);
    }
}
