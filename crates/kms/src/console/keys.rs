//! The key list (`GET /console/keys`): filters by state and origin, search by key id or
//! alias, 20 keys a page newest first, and the create-key dialog
//! (`keys.html`, `create_key_dialog.html`).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::extract::Signed;
use super::i18n::{Lang, Text as T};
use super::view::{Badge, Frame};
use super::{html, internal, ConsoleState};
use crate::action::kms::Action;
use crate::action::ApiAction;
use crate::error::KmsError;
use crate::model::KeyState;
use crate::model::Origin;
use crate::service::keys::{FilterField, KeyFilter};
use crate::service::{Caller, Kms};
use crate::store::KeyRecord;
use crate::timefmt::format_unix;

const PAGE_SIZE: usize = 20;

/// The origins the filter offers.
const ORIGINS: [&str; 2] = [Origin::AliyunKms.as_str(), Origin::External.as_str()];

#[derive(Deserialize, Default)]
pub struct ListQuery {
    state: Option<String>,
    origin: Option<String>,
    q: Option<String>,
    page: Option<usize>,
}

/// The list's filters, as understood (unknown values are ignored).
struct Filters {
    state: Option<KeyState>,
    origin: Option<&'static str>,
    /// Substring of a key id or alias (trimmed, at most 256 characters).
    search: String,
}

impl Filters {
    fn from_query(q: &ListQuery) -> Self {
        Filters {
            state: q.state.as_deref().and_then(KeyState::parse),
            origin: q
                .origin
                .as_deref()
                .and_then(|o| ORIGINS.into_iter().find(|v| *v == o)),
            search: q
                .q
                .as_deref()
                .unwrap_or_default()
                .trim()
                .chars()
                .take(256)
                .collect(),
        }
    }

    fn key_filters(&self) -> Vec<KeyFilter> {
        let state = self.state.map(|s| KeyFilter {
            field: FilterField::KeyState,
            values: vec![s.as_str().to_string()],
        });
        let origin = self.origin.map(|o| KeyFilter {
            field: FilterField::Origin,
            values: vec![o.to_string()],
        });
        state.into_iter().chain(origin).collect()
    }

    /// The list's address for page `page` with these filters.
    fn href(&self, page: usize) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("page", &page.to_string());
        if let Some(s) = self.state {
            q.append_pair("state", s.as_str());
        }
        if let Some(o) = self.origin {
            q.append_pair("origin", o);
        }
        if !self.search.is_empty() {
            q.append_pair("q", &self.search);
        }
        format!("/console/keys?{}", q.finish())
    }
}

/// An option of a filter's select.
struct Choice {
    value: &'static str,
    selected: bool,
}

/// A row of the table.
struct Row {
    key_id: String,
    aliases: Vec<String>,
    spec: String,
    origin: String,
    badge: Badge,
    protection: String,
    created: String,
}

impl Row {
    fn new(k: KeyRecord, aliases: Vec<String>) -> Self {
        Row {
            badge: Badge::new(k.state),
            created: format_unix(k.creation_date),
            key_id: k.key_id,
            aliases,
            spec: k.key_spec.to_string(),
            origin: k.origin.to_string(),
            protection: k.protection_level.to_string(),
        }
    }
}

struct Paging {
    info: String,
    prev: Option<String>,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    frame: Frame,
    title: &'static str,
    states: Vec<Choice>,
    origins: Vec<Choice>,
    search: String,
    total: usize,
    rows: Vec<Row>,
    paging: Paging,
}

pub async fn keys_page(
    State(st): State<ConsoleState>,
    s: Signed,
    Query(q): Query<ListQuery>,
) -> Response {
    let filters = Filters::from_query(&q);
    let caller = s.caller();
    let event = s.event("ListKeys");
    if let Err(refused) = s
        .may_or_refuse(&st, &event, ApiAction::Kms(Action::ListKeys), &[])
        .await
    {
        return refused;
    }
    let listed = list_page(
        st.kms(),
        &caller,
        &filters.key_filters(),
        &filters.search.to_lowercase(),
        q.page.unwrap_or(1),
    )
    .await;
    let (rows, total, page) = match listed {
        Ok(v) => v,
        Err(e) => {
            st.audit_error(&event, &e).await;
            return internal(&e);
        }
    };
    st.audit_ok(&event).await;
    let page = KeysPage {
        title: s.lang.t(T::Keys),
        states: choices(
            KeyState::ALL.map(KeyState::as_str),
            filters.state.map(KeyState::as_str),
        ),
        origins: choices(ORIGINS, filters.origin),
        total,
        rows: rows.into_iter().map(|(k, a)| Row::new(k, a)).collect(),
        paging: paging(s.lang, &filters, page, total),
        search: filters.search,
        frame: s.frame(&st),
    };
    html(StatusCode::OK, &page)
}

fn choices<const N: usize>(values: [&'static str; N], current: Option<&str>) -> Vec<Choice> {
    values
        .into_iter()
        .map(|value| Choice {
            value,
            selected: current == Some(value),
        })
        .collect()
}

fn paging(lang: Lang, filters: &Filters, page: usize, total: usize) -> Paging {
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    Paging {
        info: lang.paging(page, pages, total),
        prev: (page > 1).then(|| filters.href(page - 1)),
        next: (page < pages).then(|| filters.href(page + 1)),
    }
}

/// One page (from 1, clamped) of the caller's keys matching `filters`, newest first, each
/// with its aliases; the total; the page shown. Without a search the page is read through
/// the service directly (at most two service pages); a search (substring of the key id or
/// an alias) reads every matching key and the account's aliases.
async fn list_page(
    kms: &Kms,
    caller: &Caller,
    filters: &[KeyFilter],
    needle: &str,
    page: usize,
) -> Result<(Vec<(KeyRecord, Vec<String>)>, usize, usize), KmsError> {
    if needle.is_empty() {
        newest_page(kms, caller, filters, page).await
    } else {
        search_page(kms, caller, filters, needle, page).await
    }
}

async fn newest_page(
    kms: &Kms,
    caller: &Caller,
    filters: &[KeyFilter],
    page: usize,
) -> Result<(Vec<(KeyRecord, Vec<String>)>, usize, usize), KmsError> {
    let (_, total) = kms.list_keys(caller, 1, 1, filters).await?;
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = page.clamp(1, pages);
    // Newest first: creation-order positions [lo, hi).
    let hi = total.saturating_sub((page - 1) * PAGE_SIZE);
    let lo = hi.saturating_sub(PAGE_SIZE);
    let mut keys = Vec::new();
    if hi > lo {
        let first = lo / PAGE_SIZE + 1;
        let last = (hi - 1) / PAGE_SIZE + 1;
        for n in first..=last {
            let (batch, _) = kms.list_keys(caller, n, PAGE_SIZE, filters).await?;
            let base = (n - 1) * PAGE_SIZE;
            keys.extend(
                batch
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| (lo..hi).contains(&(base + i)))
                    .map(|(_, k)| k),
            );
        }
    }
    keys.reverse();
    let mut rows = Vec::with_capacity(keys.len());
    for k in keys {
        let names = match kms.list_aliases(caller, Some(&k.key_id)).await {
            Ok(a) => a.into_iter().map(|a| a.alias_name).collect(),
            // deleted between the two reads
            Err(KmsError::KeyNotFound) => Vec::new(),
            Err(e) => return Err(e),
        };
        rows.push((k, names));
    }
    Ok((rows, total, page))
}

async fn search_page(
    kms: &Kms,
    caller: &Caller,
    filters: &[KeyFilter],
    needle: &str,
    page: usize,
) -> Result<(Vec<(KeyRecord, Vec<String>)>, usize, usize), KmsError> {
    let mut keys = Vec::new();
    let mut n = 1;
    loop {
        let (batch, total) = kms.list_keys(caller, n, 100, filters).await?;
        let got = batch.len();
        keys.extend(batch);
        if got == 0 || keys.len() >= total {
            break;
        }
        n += 1;
    }
    let aliases = kms.list_aliases(caller, None).await?;
    let matching: Vec<(KeyRecord, Vec<String>)> = keys
        .into_iter()
        .rev()
        .map(|k| {
            let names: Vec<String> = aliases
                .iter()
                .filter(|a| a.key_id == k.key_id)
                .map(|a| a.alias_name.clone())
                .collect();
            (k, names)
        })
        .filter(|(k, names)| {
            k.key_id.to_lowercase().contains(needle)
                || names.iter().any(|a| a.to_lowercase().contains(needle))
        })
        .collect();
    let total = matching.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = page.clamp(1, pages);
    let rows = matching
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    Ok((rows, total, page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(state: &str, origin: &str, q: &str) -> ListQuery {
        ListQuery {
            state: Some(state.into()),
            origin: Some(origin.into()),
            q: Some(q.into()),
            page: None,
        }
    }

    #[test]
    fn filters_keep_only_known_values() {
        let f = Filters::from_query(&query("PendingImport", "EXTERNAL", "  a b  "));
        assert_eq!(f.state, Some(KeyState::PendingImport));
        assert_eq!(f.origin, Some(Origin::External.as_str()));
        assert_eq!(f.search, "a b");
        assert_eq!(f.key_filters().len(), 2);
        assert_eq!(
            f.href(2),
            "/console/keys?page=2&state=PendingImport&origin=EXTERNAL&q=a+b"
        );
        let f = Filters::from_query(&query("Gone", "<x>", ""));
        assert_eq!((f.state, f.origin), (None, None));
        assert!(f.key_filters().is_empty());
        assert_eq!(f.href(1), "/console/keys?page=1");
    }

    #[test]
    fn paging_links() {
        let f = Filters::from_query(&ListQuery::default());
        let p = paging(Lang::En, &f, 1, 1);
        assert_eq!(
            (p.info.as_str(), p.prev, p.next),
            ("Page 1/1 · 1 key", None, None)
        );
        let p = paging(Lang::En, &f, 2, 45);
        assert_eq!(p.info, "Page 2/3 · 45 keys");
        assert_eq!(p.prev.as_deref(), Some("/console/keys?page=1"));
        assert_eq!(p.next.as_deref(), Some("/console/keys?page=3"));
    }
}
