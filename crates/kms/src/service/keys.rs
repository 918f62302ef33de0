//! Key lifecycle: CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey,
//! UpdateKeyDescription, ScheduleKeyDeletion, CancelKeyDeletion, SetDeletionProtection,
//! and the tags given at creation.

use super::state::{check, row, KeyState, StateRow};
use super::{new_id, Caller, Kms};
use crate::error::KmsError;
use crate::model::{KeySpec, KeyUsage, Origin, ProtectionLevel};
use crate::store::{KeyField, KeyLocator, KeyRecord, KeyVersionRecord, Tag};

pub const MAX_DESCRIPTION: usize = 8192;

#[derive(Debug, Clone, Default)]
pub struct CreateKeyInput {
    pub description: Option<String>,
    pub key_spec: Option<String>,
    pub key_usage: Option<String>,
    pub origin: Option<String>,
    pub protection_level: Option<String>,
    pub enable_automatic_rotation: bool,
    /// `RotationInterval` as given (`30d`, `604800s`, …).
    pub rotation_interval: Option<String>,
    pub tags: Vec<Tag>,
}

/// A ListKeys filter: the field and the accepted values (OR within, AND across filters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFilter {
    pub field: FilterField,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterField {
    KeyState,
    KeySpec,
    KeyUsage,
    ProtectionLevel,
    CreatorType,
    Origin,
}

impl FilterField {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "KeyState" => Self::KeyState,
            "KeySpec" => Self::KeySpec,
            "KeyUsage" => Self::KeyUsage,
            "ProtectionLevel" => Self::ProtectionLevel,
            "CreatorType" => Self::CreatorType,
            // Not in the reference's list; offered because the console filters by origin.
            "Origin" => Self::Origin,
            _ => return None,
        })
    }
}

/// Validates a tag per the reference (§3.17): key 1–128 and value 0–128 characters of
/// letters, digits and `/ \ _ - . + = : @` (and spaces), key not starting with `aliyun` or
/// `acs:`.
pub fn validate_tag(tag: &Tag) -> Result<(), KmsError> {
    fn ok_chars(s: &str) -> bool {
        s.chars()
            .all(|c| c.is_alphanumeric() || " /\\_-.+=:@".contains(c))
    }
    let k = &tag.key;
    if k.is_empty() || k.chars().count() > 128 || !ok_chars(k) {
        return Err(KmsError::invalid_because(
            "Tags",
            "A tag key is 1 to 128 characters of letters, digits and / \\ _ - . + = : @.",
        ));
    }
    if k.starts_with("aliyun") || k.starts_with("acs:") {
        return Err(KmsError::invalid_because(
            "Tags",
            "A tag key must not start with aliyun or acs:.",
        ));
    }
    if tag.value.chars().count() > 128 || !ok_chars(&tag.value) {
        return Err(KmsError::invalid_because(
            "Tags",
            "A tag value is at most 128 characters of letters, digits and / \\ _ - . + = : @.",
        ));
    }
    Ok(())
}

/// A new key's row with the defaults of CreateKey: an `Aliyun_AES_256` `ENCRYPT/DECRYPT`
/// `SOFTWARE` key, `Enabled` (or `PendingImport`, without material, for `EXTERNAL`), one
/// version, no rotation, no deletion protection.
pub fn new_key_record(
    key_id: &str,
    account_id: &str,
    region: &str,
    origin: Origin,
    version_id: &str,
    now: i64,
) -> KeyRecord {
    let external = origin == Origin::External;
    KeyRecord {
        key_id: key_id.to_string(),
        account_id: account_id.to_string(),
        region: region.to_string(),
        description: String::new(),
        key_spec: KeySpec::Aes256,
        key_usage: KeyUsage::EncryptDecrypt,
        origin,
        protection_level: ProtectionLevel::Software,
        state: if external {
            KeyState::PendingImport
        } else {
            KeyState::Enabled
        },
        creation_date: now,
        creator: account_id.to_string(),
        primary_version: version_id.to_string(),
        delete_date: None,
        material_present: !external,
        material_expire: None,
        material_commitment: None,
        deletion_protection: false,
        deletion_protection_description: String::new(),
        automatic_rotation: false,
        rotation_interval: None,
        last_rotation_date: Some(now),
        version_count: 1,
    }
}

/// A CreateKey parameter: `default` if absent, else its value if this server supports it,
/// else `InvalidParameter` with `why`.
fn param_or<T>(
    given: Option<String>,
    default: T,
    parse: fn(&str) -> Option<T>,
    name: &str,
    why: &str,
) -> Result<T, KmsError> {
    match given {
        None => Ok(default),
        Some(v) => parse(&v).ok_or_else(|| KmsError::invalid_because(name, why)),
    }
}

impl Kms {
    pub async fn create_key(
        &self,
        caller: &Caller,
        input: CreateKeyInput,
    ) -> Result<KeyRecord, KmsError> {
        let key_spec = param_or(
            input.key_spec,
            KeySpec::Aes256,
            KeySpec::parse,
            "KeySpec",
            "KeySpec is Aliyun_AES_256, Aliyun_SM4, RSA_2048, RSA_3072, EC_P256, EC_P256K or EC_SM2.",
        )?;
        let key_usage = param_or(
            input.key_usage,
            key_spec.default_usage(),
            KeyUsage::parse,
            "KeyUsage",
            "KeyUsage is ENCRYPT/DECRYPT or SIGN/VERIFY.",
        )?;
        // The spec × usage table (reference asymmetric §2.1).
        if !key_spec.allows(key_usage) {
            let allowed: Vec<&str> = key_spec.usages().iter().map(|u| u.as_str()).collect();
            return Err(KmsError::invalid_because(
                "KeyUsage",
                format!("A {key_spec} key's usage is {}.", allowed.join(" or ")),
            ));
        }
        let origin = param_or(
            input.origin,
            Origin::AliyunKms,
            Origin::parse,
            "Origin",
            "Origin is Aliyun_KMS or EXTERNAL.",
        )?;
        let protection_level = param_or(
            input.protection_level,
            ProtectionLevel::Software,
            ProtectionLevel::parse,
            "ProtectionLevel",
            "ProtectionLevel is SOFTWARE or HSM.",
        )?;
        if key_spec.is_asymmetric() && input.enable_automatic_rotation {
            return Err(KmsError::invalid_because(
                "EnableAutomaticRotation",
                "Asymmetric keys are not rotated automatically; CreateKeyVersion makes a new key pair.",
            ));
        }
        if protection_level == ProtectionLevel::Hsm {
            self.hsm_for_create()?;
            // [inference] The token holds AES-256 keys only here (AES-GCM inside the token);
            // asymmetric and SM4 keys are software keys in this build.
            if key_spec != KeySpec::Aes256 {
                return Err(KmsError::invalid_because(
                    "ProtectionLevel",
                    "ProtectionLevel=HSM keys are Aliyun_AES_256 in this server; asymmetric and SM4 keys are SOFTWARE keys.",
                ));
            }
        }
        let description = input.description.unwrap_or_default();
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(KmsError::invalid("Description"));
        }
        // An interval given with rotation off is still checked (as UpdateRotationPolicy does).
        if let Some(text) = input
            .rotation_interval
            .as_deref()
            .filter(|_| !input.enable_automatic_rotation)
        {
            super::versions::parse_rotation_interval(text)?;
        }
        let rotation_interval = if input.enable_automatic_rotation {
            if origin == Origin::External {
                // Imported keys are never rotated (reference §3.16).
                return Err(KmsError::UnsupportedOrigin);
            }
            let text = input
                .rotation_interval
                .as_deref()
                .ok_or_else(|| KmsError::missing("RotationInterval"))?;
            Some(super::versions::parse_rotation_interval(text)?)
        } else {
            None
        };
        if input.tags.len() > self.config.max_tags_per_key {
            return Err(KmsError::LimitExceeded(format!(
                "at most {} tags per key",
                self.config.max_tags_per_key
            )));
        }
        let mut tags: Vec<Tag> = Vec::with_capacity(input.tags.len());
        for t in input.tags {
            validate_tag(&t)?;
            // A repeated tag key keeps the last value.
            tags.retain(|x| x.key != t.key);
            tags.push(t);
        }

        let now = self.now();
        let key_id = new_id();
        let first = if origin == Origin::External {
            KeyVersionRecord {
                key_id: key_id.clone(),
                version_id: new_id(),
                creation_date: now,
                sealed_material: None,
            }
        } else {
            self.new_version_at(&key_id, key_spec, protection_level)
                .await?
        };
        let key = KeyRecord {
            description,
            key_spec,
            key_usage,
            protection_level,
            automatic_rotation: rotation_interval.is_some(),
            rotation_interval,
            ..new_key_record(
                &key_id,
                &caller.account_id,
                &caller.region,
                origin,
                &first.version_id,
                now,
            )
        };
        let stored = async {
            self.store.ensure_account(&caller.account_id, now).await?;
            self.store
                .insert_key(key.clone(), first.clone(), tags, self.config.max_keys)
                .await
        }
        .await;
        if let Err(e) = stored {
            self.discard_version(protection_level, &first).await;
            return Err(e.into());
        }
        Ok(key)
    }

    /// `n` new Enabled keys for bulk seeding (benchmarks), built exactly like CreateKey's.
    pub async fn new_keys_for_seeding(
        &self,
        account_id: &str,
        region: &str,
        n: usize,
    ) -> Result<Vec<(KeyRecord, KeyVersionRecord)>, KmsError> {
        let now = self.now();
        self.store.ensure_account(account_id, now).await?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let key_id = new_id();
            let first = self.new_version(&key_id, KeySpec::Aes256)?;
            let key = new_key_record(
                &key_id,
                account_id,
                region,
                Origin::AliyunKms,
                &first.version_id,
                now,
            );
            out.push((key, first));
        }
        Ok(out)
    }

    /// DescribeKey: a key id, ARN or alias.
    pub async fn describe_key(
        &self,
        caller: &Caller,
        key_ref: &str,
    ) -> Result<KeyRecord, KmsError> {
        let loc = self.resolve(caller, key_ref).await?;
        self.load(&loc).await
    }

    pub async fn list_tags(
        &self,
        caller: &Caller,
        key_ref: &str,
    ) -> Result<(KeyRecord, Vec<Tag>), KmsError> {
        let key = self.load(&self.locate(caller, key_ref)?).await?;
        let tags = self.store.list_tags(&key.key_id).await?;
        Ok((key, tags))
    }

    /// One page of the caller's keys in creation order, and the total matching.
    pub async fn list_keys(
        &self,
        caller: &Caller,
        page_number: usize,
        page_size: usize,
        filters: &[KeyFilter],
    ) -> Result<(Vec<KeyRecord>, usize), KmsError> {
        let now = self.now();
        let mut store_filters = Vec::new();
        for f in filters {
            let field = match f.field {
                FilterField::KeyState => KeyField::State,
                FilterField::KeySpec => KeyField::Spec,
                FilterField::KeyUsage => KeyField::Usage,
                FilterField::ProtectionLevel => KeyField::ProtectionLevel,
                FilterField::Origin => KeyField::Origin,
                // Every key here is created by a user (no service-managed keys).
                FilterField::CreatorType => {
                    if f.values.iter().any(|v| v == "User") {
                        continue;
                    }
                    return Ok((Vec::new(), 0));
                }
            };
            store_filters.push((field, f.values.clone()));
        }
        let offset = page_number.saturating_sub(1).saturating_mul(page_size);
        // The store leaves out keys past their deletion date and shows expired material as
        // PendingImport whether or not the sweeper has run (`KeyRecord::as_of`).
        Ok(self
            .store
            .list_keys_page(
                &caller.account_id,
                &caller.region,
                now,
                &store_filters,
                offset,
                page_size,
            )
            .await?)
    }

    /// Applies `f` to the key under the store's lock, after the state matrix check with
    /// `state_row` (the row of the action).
    pub(crate) async fn update(
        &self,
        loc: &KeyLocator,
        state_row: StateRow,
        f: impl FnOnce(&mut KeyRecord) -> Result<(), KmsError> + Send + 'static,
    ) -> Result<KeyRecord, KmsError> {
        // Lazy expiry/deletion first, so the matrix sees the true state.
        self.load(loc).await?;
        self.store
            .update_key(
                loc,
                Box::new(move |k| {
                    check(state_row, k.state)?;
                    f(k)?;
                    Ok(Vec::new())
                }),
            )
            .await?
            .ok_or(KmsError::KeyNotFound)
    }

    pub async fn enable_key(&self, caller: &Caller, key_ref: &str) -> Result<(), KmsError> {
        let loc = self.locate(caller, key_ref)?;
        self.update(&loc, row::EnableKey, |k| {
            k.state = KeyState::Enabled;
            Ok(())
        })
        .await
        .map(drop)
    }

    pub async fn disable_key(&self, caller: &Caller, key_ref: &str) -> Result<(), KmsError> {
        let loc = self.locate(caller, key_ref)?;
        self.update(&loc, row::DisableKey, |k| {
            k.state = KeyState::Disabled;
            Ok(())
        })
        .await
        .map(drop)
    }

    pub async fn update_key_description(
        &self,
        caller: &Caller,
        key_ref: &str,
        description: String,
    ) -> Result<(), KmsError> {
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(KmsError::invalid("Description"));
        }
        let loc = self.locate(caller, key_ref)?;
        self.update(&loc, row::UpdateKeyDescription, move |k| {
            k.description = description;
            Ok(())
        })
        .await
        .map(drop)
    }

    pub async fn schedule_key_deletion(
        &self,
        caller: &Caller,
        key_ref: &str,
        pending_window_days: i64,
    ) -> Result<KeyRecord, KmsError> {
        let (lo, hi) = (
            self.config.min_pending_window_days,
            self.config.max_pending_window_days,
        );
        if !(lo..=hi).contains(&pending_window_days) {
            return Err(KmsError::invalid_because(
                "PendingWindowInDays",
                format!("The window is {lo} to {hi} days."),
            ));
        }
        let loc = self.locate(caller, key_ref)?;
        let now = self.now();
        self.update(&loc, row::ScheduleKeyDeletion, move |k| {
            if k.deletion_protection {
                return Err(KmsError::NoPermission(
                    "the key has deletion protection enabled".into(),
                ));
            }
            k.state = KeyState::PendingDeletion;
            k.delete_date = Some(now + pending_window_days * 86_400);
            Ok(())
        })
        .await
    }

    /// Cancels a scheduled deletion: the key returns to Enabled, or to PendingImport if it
    /// is an EXTERNAL key without material (\[inference\], reference §3.8).
    pub async fn cancel_key_deletion(
        &self,
        caller: &Caller,
        key_ref: &str,
    ) -> Result<(), KmsError> {
        let loc = self.locate(caller, key_ref)?;
        self.update(&loc, row::CancelKeyDeletion, |k| {
            k.delete_date = None;
            k.state = if k.material_present {
                KeyState::Enabled
            } else {
                KeyState::PendingImport
            };
            Ok(())
        })
        .await
        .map(drop)
    }

    pub async fn set_deletion_protection(
        &self,
        caller: &Caller,
        key_ref: &str,
        enabled: bool,
        description: Option<String>,
    ) -> Result<(), KmsError> {
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
        {
            return Err(KmsError::invalid("DeletionProtectionDescription"));
        }
        let loc = self.locate(caller, key_ref)?;
        self.update(&loc, row::SetDeletionProtection, move |k| {
            k.deletion_protection = enabled;
            k.deletion_protection_description = if enabled {
                description.unwrap_or_default()
            } else {
                String::new()
            };
            Ok(())
        })
        .await
        .map(drop)
    }
}

/// `acs:kms:<region>:<account>:key/<id>`
pub fn key_arn(k: &KeyRecord) -> String {
    format!("acs:kms:{}:{}:key/{}", k.region, k.account_id, k.key_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Rejection;
    use crate::service::testing::{kms, T0};

    #[tokio::test]
    async fn create_describe_and_states() {
        let (kms, _clock, caller) = kms();
        let k = kms
            .create_key(&caller, CreateKeyInput::default())
            .await
            .unwrap();
        assert_eq!(k.state, KeyState::Enabled);
        assert_eq!(k.origin, Origin::AliyunKms);
        let arn = key_arn(&k);
        assert_eq!(kms.describe_key(&caller, &arn).await.unwrap(), k);
        kms.disable_key(&caller, &k.key_id).await.unwrap();
        assert_eq!(
            kms.describe_key(&caller, &k.key_id).await.unwrap().state,
            KeyState::Disabled
        );
        kms.enable_key(&caller, &k.key_id).await.unwrap();
        let ext = kms
            .create_key(
                &caller,
                CreateKeyInput {
                    origin: Some("EXTERNAL".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(ext.state, KeyState::PendingImport);
        assert_eq!(
            kms.enable_key(&caller, &ext.key_id).await,
            Err(KmsError::Rejected(Rejection::StateModifiedFailed))
        );
    }

    #[tokio::test]
    async fn other_accounts_and_regions_do_not_see_the_key() {
        let (kms, _clock, caller) = kms();
        let k = kms
            .create_key(&caller, CreateKeyInput::default())
            .await
            .unwrap();
        let other = Caller {
            account_id: "42".into(),
            ..caller.clone()
        };
        assert_eq!(
            kms.describe_key(&other, &k.key_id).await,
            Err(KmsError::KeyNotFound)
        );
        assert_eq!(
            kms.describe_key(&other, &key_arn(&k)).await,
            Err(KmsError::KeyNotFound)
        );
        let arn_other_region = key_arn(&k).replace("cn-hangzhou", "cn-shanghai");
        assert_eq!(
            kms.describe_key(&caller, &arn_other_region).await,
            Err(KmsError::KeyNotFound)
        );
        assert_eq!(
            kms.describe_key(&caller, "alias/x").await,
            Err(KmsError::AliasNotFound)
        );
    }

    #[tokio::test]
    async fn deletion_is_driven_by_the_clock() {
        let (kms, clock, caller) = kms();
        let k = kms
            .create_key(&caller, CreateKeyInput::default())
            .await
            .unwrap();
        assert!(matches!(
            kms.schedule_key_deletion(&caller, &k.key_id, 6).await,
            Err(KmsError::InvalidParameter(..))
        ));
        assert!(matches!(
            kms.schedule_key_deletion(&caller, &k.key_id, 367).await,
            Err(KmsError::InvalidParameter(..))
        ));
        let s = kms
            .schedule_key_deletion(&caller, &k.key_id, 7)
            .await
            .unwrap();
        assert_eq!(s.delete_date, Some(T0 + 7 * 86_400));
        assert_eq!(
            kms.schedule_key_deletion(&caller, &k.key_id, 7).await,
            Err(KmsError::Rejected(Rejection::StateModifiedFailed))
        );
        clock.advance(7 * 86_400 - 1);
        kms.sweep().await.unwrap();
        assert_eq!(
            kms.describe_key(&caller, &k.key_id).await.unwrap().state,
            KeyState::PendingDeletion
        );
        clock.advance(1);
        // Lazily on access...
        assert_eq!(
            kms.describe_key(&caller, &k.key_id).await,
            Err(KmsError::KeyNotFound)
        );
        // ...and by the sweeper.
        let k2 = kms
            .create_key(&caller, CreateKeyInput::default())
            .await
            .unwrap();
        kms.schedule_key_deletion(&caller, &k2.key_id, 7)
            .await
            .unwrap();
        clock.advance(7 * 86_400);
        kms.sweep().await.unwrap();
        assert!(kms
            .store
            .get_key(&kms.locate(&caller, &k2.key_id).unwrap())
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn cancel_and_protection() {
        let (kms, _clock, caller) = kms();
        let k = kms
            .create_key(&caller, CreateKeyInput::default())
            .await
            .unwrap();
        kms.disable_key(&caller, &k.key_id).await.unwrap();
        kms.schedule_key_deletion(&caller, &k.key_id, 30)
            .await
            .unwrap();
        kms.cancel_key_deletion(&caller, &k.key_id).await.unwrap();
        let d = kms.describe_key(&caller, &k.key_id).await.unwrap();
        assert_eq!((d.state, d.delete_date), (KeyState::Enabled, None));
        assert_eq!(
            kms.cancel_key_deletion(&caller, &k.key_id).await,
            Err(KmsError::Rejected(Rejection::StateModifiedFailed))
        );
        kms.set_deletion_protection(&caller, &k.key_id, true, Some("keep".into()))
            .await
            .unwrap();
        assert!(matches!(
            kms.schedule_key_deletion(&caller, &k.key_id, 7).await,
            Err(KmsError::NoPermission(_))
        ));
        kms.set_deletion_protection(&caller, &k.key_id, false, None)
            .await
            .unwrap();
        kms.schedule_key_deletion(&caller, &k.key_id, 7)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn list_pages_and_filters() {
        let (kms, _clock, caller) = kms();
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(
                kms.create_key(&caller, CreateKeyInput::default())
                    .await
                    .unwrap()
                    .key_id,
            );
        }
        kms.disable_key(&caller, &ids[1]).await.unwrap();
        let (page, total) = kms.list_keys(&caller, 2, 2, &[]).await.unwrap();
        assert_eq!(total, 5);
        assert_eq!(page.len(), 2);
        let f = [KeyFilter {
            field: FilterField::KeyState,
            values: vec!["Disabled".into()],
        }];
        let (page, total) = kms.list_keys(&caller, 1, 10, &f).await.unwrap();
        assert_eq!((total, page[0].key_id.as_str()), (1, ids[1].as_str()));
    }

    #[tokio::test]
    async fn every_page_of_every_size_matches_the_full_list() {
        let (kms, clock, caller) = kms();
        let mut ids = Vec::new();
        for _ in 0..13 {
            ids.push(
                kms.create_key(&caller, CreateKeyInput::default())
                    .await
                    .unwrap()
                    .key_id,
            );
            clock.advance(1);
        }
        // One key past its deletion date (not yet swept) is left out of pages and totals.
        kms.schedule_key_deletion(&caller, &ids[5], 7)
            .await
            .unwrap();
        clock.advance(7 * 86_400);
        ids.remove(5);
        for size in 1..=14 {
            let mut seen = Vec::new();
            for page in 1..=15 {
                let (keys, total) = kms.list_keys(&caller, page, size, &[]).await.unwrap();
                assert_eq!(total, 12);
                seen.extend(keys.into_iter().map(|k| k.key_id));
            }
            assert_eq!(seen, ids, "page size {size}");
        }
        let f = [KeyFilter {
            field: FilterField::CreatorType,
            values: vec!["Service".into()],
        }];
        assert_eq!(kms.list_keys(&caller, 1, 10, &f).await.unwrap().1, 0);
    }

    #[tokio::test]
    async fn create_validates_inputs() {
        let (kms, _clock, caller) = kms();
        for input in [
            CreateKeyInput {
                key_spec: Some("RSA_4096".into()),
                ..Default::default()
            },
            // The spec × usage table: EC keys only sign, symmetric keys only encrypt.
            CreateKeyInput {
                key_spec: Some("EC_P256".into()),
                key_usage: Some("ENCRYPT/DECRYPT".into()),
                ..Default::default()
            },
            CreateKeyInput {
                key_usage: Some("SIGN/VERIFY".into()),
                ..Default::default()
            },
            CreateKeyInput {
                key_spec: Some("RSA_2048".into()),
                enable_automatic_rotation: true,
                rotation_interval: Some("30d".into()),
                ..Default::default()
            },
            CreateKeyInput {
                origin: Some("external".into()),
                ..Default::default()
            },
            CreateKeyInput {
                protection_level: Some("hsm".into()),
                ..Default::default()
            },
            CreateKeyInput {
                description: Some("x".repeat(8193)),
                ..Default::default()
            },
            CreateKeyInput {
                tags: vec![Tag {
                    key: "acs:x".into(),
                    value: "v".into(),
                }],
                ..Default::default()
            },
            CreateKeyInput {
                tags: vec![Tag {
                    key: "".into(),
                    value: "v".into(),
                }],
                ..Default::default()
            },
        ] {
            assert!(matches!(
                kms.create_key(&caller, input).await,
                Err(KmsError::InvalidParameter(..))
            ));
        }
    }
}

/// `kms admin migrate-store`'s building blocks: a store's export imported into an empty store
/// reads back identical, and an import into a store that already holds keys is refused.
#[cfg(test)]
mod migration {
    use super::*;
    use crate::service::testing::kms;
    use crate::store::sqlite::SqliteStore;
    use crate::store::DumpStore;

    #[tokio::test]
    async fn export_import_round_trip() {
        let (kms, _clock, caller) = kms();
        kms.create_access_key(&caller.account_id, None)
            .await
            .unwrap();
        let a = kms
            .create_key(
                &caller,
                CreateKeyInput {
                    description: Some("first".into()),
                    tags: vec![Tag {
                        key: "env".into(),
                        value: "prod".into(),
                    }],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        kms.create_key_version(&caller, &a.key_id).await.unwrap();
        kms.create_alias(&caller, "alias/one", &a.key_id)
            .await
            .unwrap();
        let ext = kms
            .create_key(
                &caller,
                CreateKeyInput {
                    origin: Some("EXTERNAL".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        kms.get_parameters_for_import(&caller, &ext.key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
            .await
            .unwrap();

        let dump = kms.store().export().await.unwrap();
        assert_eq!(dump.keys.len(), 2);
        assert_eq!(dump.versions.len(), 3);
        assert_eq!(dump.aliases.len(), 1);
        assert_eq!(dump.tags.len(), 1);
        assert_eq!(dump.wrapping_keys.len(), 1);
        assert_eq!(dump.access_keys.len(), 1);

        let target = SqliteStore::in_memory().unwrap();
        target.import(dump.clone()).await.unwrap();
        assert_eq!(target.export().await.unwrap(), dump);
        // A second copy into the same (now non-empty) store is refused, and changes nothing.
        assert!(target.import(dump.clone()).await.is_err());
        assert_eq!(target.export().await.unwrap(), dump);
    }
}
