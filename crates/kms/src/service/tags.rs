//! Tags: TagResource, UntagResource, ListResourceTags (one key), and TagResources,
//! UntagResources, ListTagResources (many) — reference §3.17.

use super::keys::validate_tag;
use super::state::{check, StateRow};
use super::{Caller, Kms};
use crate::error::KmsError;
use crate::store::{KeyRecord, Tag};

/// Rows per ListTagResources page.
pub const TAG_PAGE_SIZE: usize = 200;

/// One row of ListTagResources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRow {
    pub key_id: String,
    pub tag: Tag,
}

impl Kms {
    async fn taggable(
        &self,
        caller: &Caller,
        key_ref: &str,
        state_row: StateRow,
    ) -> Result<KeyRecord, KmsError> {
        let key = self.load(&self.locate(caller, key_ref)?).await?;
        check(state_row, key.state)?;
        Ok(key)
    }

    /// TagResource / TagResources (`state_row` says which): adds or replaces tags on each
    /// key.
    pub async fn tag_keys(
        &self,
        caller: &Caller,
        key_refs: &[String],
        tags: Vec<Tag>,
        state_row: StateRow,
    ) -> Result<(), KmsError> {
        for t in &tags {
            validate_tag(t)?;
        }
        let mut keys = Vec::with_capacity(key_refs.len());
        for r in key_refs {
            keys.push(self.taggable(caller, r, state_row).await?);
        }
        for k in keys {
            self.store
                .put_tags(&k.key_id, tags.clone(), self.config.max_tags_per_key)
                .await?;
        }
        Ok(())
    }

    /// UntagResource / UntagResources (`state_row` says which): removes the named tags (all
    /// with `None`).
    pub async fn untag_keys(
        &self,
        caller: &Caller,
        key_refs: &[String],
        tag_keys: Option<Vec<String>>,
        state_row: StateRow,
    ) -> Result<(), KmsError> {
        let mut keys = Vec::with_capacity(key_refs.len());
        for r in key_refs {
            keys.push(self.taggable(caller, r, state_row).await?);
        }
        for k in keys {
            self.store.remove_tags(&k.key_id, tag_keys.clone()).await?;
        }
        Ok(())
    }

    /// ListTagResources: the tags of the caller's keys, optionally only of `key_ids` and only
    /// tags matching one of `filters` (a filter with an empty value matches any value), by
    /// key id then tag key, from row `offset`; returns the page and the next offset.
    pub async fn list_tag_resources(
        &self,
        caller: &Caller,
        key_ids: &[String],
        filters: &[Tag],
        offset: usize,
    ) -> Result<(Vec<TagRow>, Option<usize>), KmsError> {
        let rows: Vec<TagRow> = self
            .store
            .list_account_tags(&caller.account_id, &caller.region)
            .await?
            .into_iter()
            .filter(|(k, _)| key_ids.is_empty() || key_ids.contains(k))
            .filter(|(_, t)| {
                filters.is_empty()
                    || filters
                        .iter()
                        .any(|f| f.key == t.key && (f.value.is_empty() || f.value == t.value))
            })
            .map(|(key_id, tag)| TagRow { key_id, tag })
            .collect();
        let total = rows.len();
        let page: Vec<TagRow> = rows.into_iter().skip(offset).take(TAG_PAGE_SIZE).collect();
        let next = (offset + page.len() < total).then_some(offset + page.len());
        Ok((page, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Rejection;
    use crate::service::keys::CreateKeyInput;
    use crate::service::state::row;
    use crate::service::testing::kms;

    fn tag(k: &str, v: &str) -> Tag {
        Tag {
            key: k.into(),
            value: v.into(),
        }
    }

    #[tokio::test]
    async fn tag_untag_list_and_limits() {
        let (kms, _c, caller) = kms();
        let k = kms
            .create_key(&caller, CreateKeyInput::default())
            .await
            .unwrap();
        let ids = vec![k.key_id.clone()];
        kms.tag_keys(
            &caller,
            &ids,
            vec![tag("a", "1"), tag("b", "2")],
            row::TagResource,
        )
        .await
        .unwrap();
        kms.tag_keys(&caller, &ids, vec![tag("a", "3")], row::TagResource)
            .await
            .unwrap();
        let (_, tags) = kms.list_tags(&caller, &k.key_id).await.unwrap();
        assert_eq!(tags, vec![tag("a", "3"), tag("b", "2")]);
        let many: Vec<Tag> = (0..19).map(|i| tag(&format!("t{i}"), "v")).collect();
        assert!(matches!(
            kms.tag_keys(&caller, &ids, many, row::TagResource).await,
            Err(KmsError::LimitExceeded(_))
        ));
        assert_eq!(kms.list_tags(&caller, &k.key_id).await.unwrap().1.len(), 2);
        kms.untag_keys(&caller, &ids, Some(vec!["a".into()]), row::UntagResource)
            .await
            .unwrap();
        assert_eq!(
            kms.list_tags(&caller, &k.key_id).await.unwrap().1,
            vec![tag("b", "2")]
        );
        assert!(kms
            .tag_keys(&caller, &ids, vec![tag("aliyun-x", "v")], row::TagResource)
            .await
            .is_err());
        kms.schedule_key_deletion(&caller, &k.key_id, 7)
            .await
            .unwrap();
        assert_eq!(
            kms.tag_keys(&caller, &ids, vec![tag("c", "1")], row::TagResource)
                .await,
            Err(KmsError::Rejected(Rejection::PendingDeletion))
        );
    }

    #[tokio::test]
    async fn list_tag_resources_pages() {
        let (kms, _c, caller) = kms();
        let mut ids = Vec::new();
        for _ in 0..11 {
            let k = kms
                .create_key(&caller, CreateKeyInput::default())
                .await
                .unwrap();
            let tags = (0..20).map(|i| tag(&format!("t{i:02}"), "v")).collect();
            kms.tag_keys(
                &caller,
                std::slice::from_ref(&k.key_id),
                tags,
                row::TagResource,
            )
            .await
            .unwrap();
            ids.push(k.key_id);
        }
        let (p1, next) = kms.list_tag_resources(&caller, &[], &[], 0).await.unwrap();
        assert_eq!((p1.len(), next), (200, Some(200)));
        let (p2, next) = kms
            .list_tag_resources(&caller, &[], &[], 200)
            .await
            .unwrap();
        assert_eq!((p2.len(), next), (20, None));
        let (only, _) = kms
            .list_tag_resources(&caller, &ids[..1], &[tag("t03", "")], 0)
            .await
            .unwrap();
        assert_eq!(only.len(), 1);
        let (none, next) = kms
            .list_tag_resources(&caller, &[], &[tag("zz", "")], 0)
            .await
            .unwrap();
        assert_eq!((none.len(), next), (0, None));
    }
}
