//! Key versions and rotation: CreateKeyVersion, DescribeKeyVersion, ListKeyVersions,
//! UpdateRotationPolicy, and the scheduler's due rotations (reference §3.16).
//!
//! A rotation is one transaction on the key row: re-check that it is due, insert the new
//! version, make it primary, move `LastRotationDate`. Whoever runs it (the scheduler on any
//! node, before or after a restart) sees the previous rotation's `LastRotationDate`, so a
//! due rotation happens exactly once.

use super::state::{check, row, KeyState};
use super::{new_id, Caller, Kms};
use crate::error::KmsError;
use crate::model::{KeySpec, Origin};
use crate::store::{KeyLocator, KeyRecord, KeyVersionRecord, VersionChange};

pub const MIN_ROTATION_SECONDS: i64 = 7 * 86_400;
pub const MAX_ROTATION_SECONDS: i64 = 730 * 86_400;

/// Parses `RotationInterval`: an integer with a unit `d`, `h`, `m` or `s`, 7 to 730 days.
pub fn parse_rotation_interval(text: &str) -> Result<i64, KmsError> {
    let bad = || {
        KmsError::invalid_because(
            "RotationInterval",
            "The interval is a number with a unit d, h, m or s (for example 30d or 604800s), from 7 to 730 days.",
        )
    };
    let t = text.trim();
    // The unit is the last character, which may be more than one byte long.
    let unit_at = t.char_indices().last().map_or(0, |(i, _)| i);
    let (num, unit) = t.split_at(unit_at);
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = num.parse().map_err(|_| bad())?;
    let factor = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(factor).ok_or_else(bad)?;
    if !(MIN_ROTATION_SECONDS..=MAX_ROTATION_SECONDS).contains(&secs) {
        return Err(bad());
    }
    Ok(secs)
}

impl Kms {
    /// A new version of `key_id`: fresh material of the spec's length (256-bit AES,
    /// 128-bit SM4), sealed.
    pub(crate) fn new_version(
        &self,
        key_id: &str,
        spec: KeySpec,
    ) -> Result<KeyVersionRecord, KmsError> {
        let len = spec
            .symmetric_material_len()
            .ok_or_else(|| KmsError::internal("a key pair has no symmetric material"))?;
        let version_id = new_id();
        let material = self.keystore.random(len)?;
        let sealed = self.seal_material(key_id, &version_id, &material)?;
        Ok(KeyVersionRecord {
            key_id: key_id.to_string(),
            version_id,
            creation_date: self.now(),
            sealed_material: Some(sealed),
        })
    }

    pub async fn create_key_version(
        &self,
        caller: &Caller,
        key_ref: &str,
    ) -> Result<KeyVersionRecord, KmsError> {
        let loc = self.locate(caller, key_ref)?;
        let key = self.load(&loc).await?;
        if key.origin == Origin::External {
            return Err(KmsError::UnsupportedOrigin);
        }
        // An HSM key's new version is a new key in the token (issue 20).
        let v = self
            .new_version_at(&key.key_id, key.key_spec, key.protection_level)
            .await?;
        let record = v.clone();
        let max = self.config.max_versions_per_key;
        let asymmetric = key.key_spec.is_asymmetric();
        let now = self.now();
        let stored = self
            .store
            .update_key(
                &loc,
                Box::new(move |k| {
                    check(row::CreateKeyVersion, k.state)?;
                    // An asymmetric key gets a new key pair at most every 7 days (reference
                    // asymmetric §2.3, doc: 400 Rejected.UnsupportedOperation).
                    if asymmetric
                        && k.last_rotation_date
                            .is_some_and(|l| now < l.saturating_add(MIN_ROTATION_SECONDS))
                    {
                        return Err(KmsError::UnsupportedOperation);
                    }
                    if k.version_count >= max {
                        return Err(KmsError::LimitExceeded(format!(
                            "at most {max} versions per key"
                        )));
                    }
                    Ok(add_version(k, v))
                }),
            )
            .await
            .map_err(KmsError::from)
            .and_then(|r| r.ok_or(KmsError::KeyNotFound));
        if let Err(e) = stored {
            self.discard_version(key.protection_level, &record).await;
            return Err(e);
        }
        Ok(record)
    }

    pub async fn describe_key_version(
        &self,
        caller: &Caller,
        key_ref: &str,
        version_id: &str,
    ) -> Result<KeyVersionRecord, KmsError> {
        let key = self.load(&self.locate(caller, key_ref)?).await?;
        self.store
            .get_version(&key.key_id, version_id)
            .await?
            .ok_or(KmsError::KeyVersionNotFound)
    }

    pub async fn list_key_versions(
        &self,
        caller: &Caller,
        key_ref: &str,
    ) -> Result<Vec<KeyVersionRecord>, KmsError> {
        let key = self.load(&self.locate(caller, key_ref)?).await?;
        Ok(self.store.list_versions(&key.key_id).await?)
    }

    /// UpdateRotationPolicy. Shortening the interval so that a rotation is already due
    /// rotates at once, in the same transaction.
    pub async fn update_rotation_policy(
        &self,
        caller: &Caller,
        key_ref: &str,
        enable: bool,
        interval: Option<&str>,
    ) -> Result<(), KmsError> {
        let loc = self.locate(caller, key_ref)?;
        let key = self.load(&loc).await?;
        if key.origin == Origin::External {
            return Err(KmsError::UnsupportedOrigin);
        }
        // Asymmetric keys are never rotated automatically (reference asymmetric §2.3).
        if enable && key.key_spec.is_asymmetric() {
            return Err(KmsError::UnsupportedOperation);
        }
        let interval = match (enable, interval) {
            (true, None) => return Err(KmsError::missing("RotationInterval")),
            (_, Some(t)) => Some(parse_rotation_interval(t)?),
            (false, None) => None,
        };
        let v = self
            .new_version_at(&key.key_id, key.key_spec, key.protection_level)
            .await?;
        let unused = v.clone();
        let now = self.now();
        let max = self.config.max_versions_per_key;
        let used = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = used.clone();
        let stored = self
            .store
            .update_key(
                &loc,
                Box::new(move |k| {
                    check(row::UpdateRotationPolicy, k.state)?;
                    k.automatic_rotation = enable;
                    if interval.is_some() {
                        k.rotation_interval = interval;
                    }
                    if is_due(k, now) && k.version_count < max {
                        flag.store(true, std::sync::atomic::Ordering::SeqCst);
                        return Ok(add_version(k, v));
                    }
                    Ok(Vec::new())
                }),
            )
            .await
            .map_err(KmsError::from)
            .and_then(|r| r.ok_or(KmsError::KeyNotFound));
        if stored.is_err() || !used.load(std::sync::atomic::Ordering::SeqCst) {
            self.discard_version(key.protection_level, &unused).await;
        }
        stored.map(|_| ())
    }

    /// Rotates a key if its automatic rotation is due; returns whether it did.
    pub(crate) async fn rotate_if_due(&self, loc: &KeyLocator) -> Result<bool, KmsError> {
        // The spec never changes after CreateKey; it sets the new material's length.
        let (spec, level) = match self.store.get_key(loc).await? {
            Some(k) => (k.key_spec, k.protection_level),
            None => return Err(KmsError::KeyNotFound),
        };
        if spec.is_asymmetric() {
            return Ok(false);
        }
        let v = self.new_version_at(&loc.key_id, spec, level).await?;
        let unused = v.clone();
        let now = self.now();
        let max = self.config.max_versions_per_key;
        let rotated = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = rotated.clone();
        let stored = self
            .store
            .update_key(
                loc,
                Box::new(move |k| {
                    if is_due(k, now) && k.key_spec == spec {
                        if k.version_count >= max {
                            tracing::debug!(key_id = %k.key_id, "automatic rotation skipped: the key has the most versions allowed");
                            return Ok(Vec::new());
                        }
                        flag.store(true, std::sync::atomic::Ordering::SeqCst);
                        return Ok(add_version(k, v));
                    }
                    Ok(Vec::new())
                }),
            )
            .await
            .map_err(KmsError::from)
            .and_then(|r| r.ok_or(KmsError::KeyNotFound));
        let rotated = rotated.load(std::sync::atomic::Ordering::SeqCst);
        if stored.is_err() || !rotated {
            self.discard_version(level, &unused).await;
        }
        stored.map(|_| rotated)
    }
}

/// Automatic rotation is due: enabled, the key Enabled (not Suspended), not EXTERNAL, and
/// `LastRotationDate + RotationInterval` reached.
fn is_due(k: &KeyRecord, now: i64) -> bool {
    k.automatic_rotation
        && !k.key_spec.is_asymmetric()
        && k.state == KeyState::Enabled
        && k.origin != Origin::External
        && matches!((k.last_rotation_date, k.rotation_interval), (Some(l), Some(i)) if l + i <= now)
}

fn add_version(k: &mut KeyRecord, v: KeyVersionRecord) -> Vec<VersionChange> {
    k.primary_version = v.version_id.clone();
    k.last_rotation_date = Some(v.creation_date);
    k.version_count += 1;
    vec![VersionChange::Insert(v)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Rejection;
    use crate::service::crypto::EncryptionContext;
    use crate::service::keys::CreateKeyInput;
    use crate::service::testing::{kms, T0};

    #[test]
    fn intervals() {
        assert_eq!(parse_rotation_interval("7d"), Ok(604_800));
        assert_eq!(parse_rotation_interval("604800s"), Ok(604_800));
        assert_eq!(parse_rotation_interval("168h"), Ok(604_800));
        assert_eq!(parse_rotation_interval("10080m"), Ok(604_800));
        assert_eq!(parse_rotation_interval("730d"), Ok(730 * 86_400));
        for bad in [
            "6d",
            "731d",
            "7",
            "d",
            "7w",
            "-7d",
            "",
            "99999999999999999999d",
        ] {
            assert!(parse_rotation_interval(bad).is_err(), "{bad}");
        }
    }

    /// Found by the `request` fuzz target: a last character of more than one byte made
    /// `split_at` panic inside a char (CreateKey/UpdateRotationPolicy with such a value).
    #[test]
    fn interval_ending_in_a_multibyte_character_is_refused_not_a_panic() {
        for bad in [
            "m\u{486}",
            "7\u{e9}",
            "30d\u{301}",
            "\u{e9}",
            "7\u{1f600}",
            "\u{1f600}d",
        ] {
            assert!(
                matches!(
                    parse_rotation_interval(bad),
                    Err(KmsError::InvalidParameter(ref n, _)) if n == "RotationInterval"
                ),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn rotation_is_clock_driven_and_happens_once() {
        let (kms, clock, caller) = kms();
        let k = kms
            .create_key(
                &caller,
                CreateKeyInput {
                    enable_automatic_rotation: true,
                    rotation_interval: Some("7d".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let ctx = EncryptionContext::default();
        let mut blobs = vec![kms
            .encrypt(&caller, &k.key_id, b"v1", &ctx, false)
            .await
            .unwrap()];
        for round in 0..3 {
            clock.advance(7 * 86_400);
            kms.sweep().await.unwrap();
            kms.sweep().await.unwrap();
            let versions = kms.list_key_versions(&caller, &k.key_id).await.unwrap();
            assert_eq!(versions.len(), round + 2);
            let d = kms.describe_key(&caller, &k.key_id).await.unwrap();
            assert_eq!(d.primary_version, versions.last().unwrap().version_id);
            assert_eq!(
                d.last_rotation_date,
                Some(T0 + 7 * 86_400 * (round as i64 + 1))
            );
            let s = kms
                .encrypt(&caller, &k.key_id, b"v", &ctx, false)
                .await
                .unwrap();
            assert_eq!(s.key_version_id, d.primary_version);
            blobs.push(s);
        }
        for b in &blobs {
            let o = kms
                .decrypt(&caller, &b.ciphertext_blob, &ctx, false)
                .await
                .unwrap();
            assert_eq!(o.key_version_id, b.key_version_id);
        }
        // Suspended while disabled.
        kms.disable_key(&caller, &k.key_id).await.unwrap();
        clock.advance(30 * 86_400);
        kms.sweep().await.unwrap();
        assert_eq!(
            kms.list_key_versions(&caller, &k.key_id)
                .await
                .unwrap()
                .len(),
            4
        );
        kms.enable_key(&caller, &k.key_id).await.unwrap();
        kms.sweep().await.unwrap();
        assert_eq!(
            kms.list_key_versions(&caller, &k.key_id)
                .await
                .unwrap()
                .len(),
            5
        );
    }

    #[tokio::test]
    async fn manual_versions_policy_and_rules() {
        let (kms, clock, caller) = kms();
        let k = kms
            .create_key(&caller, CreateKeyInput::default())
            .await
            .unwrap();
        let v = kms.create_key_version(&caller, &k.key_id).await.unwrap();
        assert_eq!(
            kms.describe_key(&caller, &k.key_id)
                .await
                .unwrap()
                .primary_version,
            v.version_id
        );
        assert_eq!(
            kms.describe_key_version(&caller, &k.key_id, &v.version_id)
                .await
                .unwrap(),
            v
        );
        assert_eq!(
            kms.describe_key_version(&caller, &k.key_id, "nope").await,
            Err(KmsError::KeyVersionNotFound)
        );
        // Shortening the interval when a rotation is already due rotates at once.
        clock.advance(10 * 86_400);
        kms.update_rotation_policy(&caller, &k.key_id, true, Some("7d"))
            .await
            .unwrap();
        assert_eq!(
            kms.list_key_versions(&caller, &k.key_id)
                .await
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            kms.update_rotation_policy(&caller, &k.key_id, true, None)
                .await,
            Err(KmsError::missing("RotationInterval"))
        );
        kms.disable_key(&caller, &k.key_id).await.unwrap();
        assert_eq!(
            kms.create_key_version(&caller, &k.key_id).await,
            Err(KmsError::Rejected(Rejection::Disabled))
        );
        assert_eq!(
            kms.update_rotation_policy(&caller, &k.key_id, false, None)
                .await,
            Err(KmsError::Rejected(Rejection::Disabled))
        );
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
        assert_eq!(
            kms.create_key_version(&caller, &ext.key_id).await,
            Err(KmsError::UnsupportedOrigin)
        );
        assert_eq!(
            kms.update_rotation_policy(&caller, &ext.key_id, true, Some("7d"))
                .await,
            Err(KmsError::UnsupportedOrigin)
        );
    }
}
