//! Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases, ListAliasesByKeyId
//! (reference §3.15). Alias resolution for KeyId parameters is [`Kms::resolve`].

use super::state::{check, row};
use super::{Caller, Kms};
use crate::error::KmsError;
use crate::store::AliasRecord;

/// `alias/` followed by 1–255 letters, digits, `_`, `-` or `/`, not starting with
/// `alias/acs` (reserved for cloud services).
pub fn validate_alias_name(name: &str) -> Result<(), KmsError> {
    let rest = name.strip_prefix("alias/").unwrap_or("");
    let ok = (1..=255).contains(&rest.len())
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-/".contains(&b))
        && !name.starts_with("alias/acs");
    if !ok {
        return Err(KmsError::invalid_because(
            "AliasName",
            "An alias is alias/ followed by 1 to 255 letters, digits, _, - or /, and must not start with alias/acs.",
        ));
    }
    Ok(())
}

/// `acs:kms:<region>:<account>:alias/<name>`
pub fn alias_arn(a: &AliasRecord) -> String {
    format!("acs:kms:{}:{}:{}", a.region, a.account_id, a.alias_name)
}

impl Kms {
    pub async fn create_alias(
        &self,
        caller: &Caller,
        name: &str,
        key_ref: &str,
    ) -> Result<(), KmsError> {
        validate_alias_name(name)?;
        let loc = self.locate(caller, key_ref)?;
        let key = self.load(&loc).await?;
        check(row::CreateAlias, key.state)?;
        Ok(self
            .store
            .create_alias(
                AliasRecord {
                    account_id: key.account_id,
                    region: key.region,
                    alias_name: name.to_string(),
                    key_id: key.key_id,
                    creation_date: self.now(),
                },
                self.config.max_aliases_per_key,
            )
            .await?)
    }

    pub async fn update_alias(
        &self,
        caller: &Caller,
        name: &str,
        key_ref: &str,
    ) -> Result<(), KmsError> {
        let loc = self.locate(caller, key_ref)?;
        if self
            .store
            .get_alias(&caller.account_id, &caller.region, name)
            .await?
            .is_none()
        {
            return Err(KmsError::AliasNotFound);
        }
        let key = self.load(&loc).await?;
        check(row::UpdateAlias, key.state)?;
        if !self
            .store
            .update_alias(
                &caller.account_id,
                &caller.region,
                name,
                &key.key_id,
                self.config.max_aliases_per_key,
            )
            .await?
        {
            return Err(KmsError::AliasNotFound);
        }
        Ok(())
    }

    pub async fn delete_alias(&self, caller: &Caller, name: &str) -> Result<(), KmsError> {
        if !self
            .store
            .delete_alias(&caller.account_id, &caller.region, name)
            .await?
        {
            return Err(KmsError::AliasNotFound);
        }
        Ok(())
    }

    /// The caller's aliases, or one key's (`key_ref`), by name.
    pub async fn list_aliases(
        &self,
        caller: &Caller,
        key_ref: Option<&str>,
    ) -> Result<Vec<AliasRecord>, KmsError> {
        let key_id = match key_ref {
            Some(r) => Some(self.load(&self.locate(caller, r)?).await?.key_id),
            None => None,
        };
        let now = self.now();
        let aliases = self
            .store
            .list_aliases(&caller.account_id, &caller.region, key_id.as_deref())
            .await?;
        // Aliases of keys already past their deletion date are gone with them, whether or
        // not the sweeper has run.
        let mut out = Vec::with_capacity(aliases.len());
        for a in aliases {
            if key_id.is_some() {
                out.push(a);
                continue;
            }
            let loc = crate::store::KeyLocator {
                account_id: a.account_id.clone(),
                region: a.region.clone(),
                key_id: a.key_id.clone(),
            };
            match self.store.get_key(&loc).await? {
                Some(k)
                    if !(k.state == super::state::KeyState::PendingDeletion
                        && k.delete_date.is_some_and(|d| d <= now)) =>
                {
                    out.push(a)
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Rejection;
    use crate::service::crypto::EncryptionContext;
    use crate::service::keys::CreateKeyInput;
    use crate::service::testing::kms;

    #[test]
    fn names() {
        for ok in [
            "alias/a",
            "alias/my-key_1/x",
            &format!("alias/{}", "a".repeat(255)),
        ] {
            assert!(validate_alias_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a",
            "alias/",
            "alias/acs-x",
            "alias/sp ace",
            "alias/é",
            &format!("alias/{}", "a".repeat(256)),
        ] {
            assert!(validate_alias_name(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn aliases_resolve_where_allowed() {
        let (kms, _c, caller) = kms();
        let a = kms
            .create_key(&caller, CreateKeyInput::default())
            .await
            .unwrap();
        let b = kms
            .create_key(&caller, CreateKeyInput::default())
            .await
            .unwrap();
        kms.create_alias(&caller, "alias/app", &a.key_id)
            .await
            .unwrap();
        assert_eq!(
            kms.create_alias(&caller, "alias/app", &b.key_id).await,
            Err(KmsError::AliasAlreadyExists)
        );
        assert_eq!(
            kms.create_alias(&caller, "alias/x", "alias/app").await,
            Err(KmsError::UnsupportedAlias)
        );
        assert_eq!(
            kms.describe_key(&caller, "alias/app").await.unwrap().key_id,
            a.key_id
        );
        let arn = format!("acs:kms:cn-hangzhou:{}:alias/app", caller.account_id);
        assert_eq!(
            kms.describe_key(&caller, &arn).await.unwrap().key_id,
            a.key_id
        );
        assert_eq!(
            kms.enable_key(&caller, "alias/app").await,
            Err(KmsError::UnsupportedAlias)
        );
        let ctx = EncryptionContext::default();
        let s1 = kms
            .encrypt(&caller, "alias/app", b"1", &ctx, false)
            .await
            .unwrap();
        kms.update_alias(&caller, "alias/app", &b.key_id)
            .await
            .unwrap();
        let s2 = kms
            .encrypt(&caller, "alias/app", b"2", &ctx, false)
            .await
            .unwrap();
        assert_eq!(
            (s1.key_id.as_str(), s2.key_id.as_str()),
            (a.key_id.as_str(), b.key_id.as_str())
        );
        assert_eq!(
            kms.list_aliases(&caller, Some(&b.key_id))
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(kms
            .list_aliases(&caller, Some(&a.key_id))
            .await
            .unwrap()
            .is_empty());
        kms.schedule_key_deletion(&caller, &a.key_id, 7)
            .await
            .unwrap();
        assert_eq!(
            kms.update_alias(&caller, "alias/app", &a.key_id).await,
            Err(KmsError::Rejected(Rejection::PendingDeletion))
        );
        assert_eq!(
            kms.create_alias(&caller, "alias/other", &a.key_id).await,
            Err(KmsError::Rejected(Rejection::StateModifiedFailed))
        );
        kms.delete_alias(&caller, "alias/app").await.unwrap();
        assert_eq!(
            kms.delete_alias(&caller, "alias/app").await,
            Err(KmsError::AliasNotFound)
        );
        assert_eq!(
            kms.describe_key(&caller, "alias/app").await,
            Err(KmsError::AliasNotFound)
        );
    }
}
