//! Every sealed value, page by page, and replacing them: what a root-key rotation
//! (`crate::rotation`) needs. The statements are built from the [`SealedColumn`] named (a
//! fixed list in the code, never input).

use async_trait::async_trait;

use super::conn::{args, Param};
use super::{run, Backend, Mode, SqlStore};
use crate::store::{SealedColumn, SealedStore, SealedValue, StoreError, StoreResult};

/// `(k1, k2) > ($1, $2)` for the key columns, numbering parameters from `first`.
fn key_tuple(col: &SealedColumn, first: usize) -> (String, String) {
    let cols = col.key.join(", ");
    let params: Vec<String> = (0..col.key.len())
        .map(|i| format!("${}", first + i))
        .collect();
    (format!("({cols})"), format!("({})", params.join(", ")))
}

#[async_trait]
impl<B: Backend> SealedStore for SqlStore<B> {
    async fn sealed_page(
        &self,
        col: SealedColumn,
        after: Option<Vec<String>>,
        limit: i64,
    ) -> StoreResult<Vec<SealedValue>> {
        if after.as_ref().is_some_and(|a| a.len() != col.key.len()) {
            return Err(StoreError::Corrupt(
                "sealed page cursor of another table".into(),
            ));
        }
        let keys = col.key.join(", ");
        let (table, column) = (col.table, col.column);
        run!(self, Mode::Snapshot, |c| {
            let (sql, mut params): (String, Vec<Param<'_>>) = match &after {
                None => (
                    format!(
                        "SELECT {keys}, {column} FROM {table} WHERE {column} IS NOT NULL \
                         ORDER BY {keys} LIMIT $1"
                    ),
                    Vec::new(),
                ),
                Some(after) => {
                    let (cols, ps) = key_tuple(&col, 2);
                    (
                        format!(
                            "SELECT {keys}, {column} FROM {table} WHERE {column} IS NOT NULL \
                             AND {cols} > {ps} ORDER BY {keys} LIMIT $1"
                        ),
                        after.iter().map(|k| Param::Text(k)).collect(),
                    )
                }
            };
            params.insert(0, Param::Int(limit));
            let rows = c.query_once(&sql, &params).await?;
            rows.into_iter()
                .map(|mut r| {
                    let mut key = Vec::with_capacity(col.key.len());
                    for _ in col.key {
                        key.push(r.get::<String>()?);
                    }
                    Ok(SealedValue {
                        key,
                        sealed: r.get()?,
                    })
                })
                .collect()
        })
    }

    async fn reseal(
        &self,
        col: SealedColumn,
        changes: Vec<(SealedValue, Vec<u8>)>,
    ) -> StoreResult<u64> {
        let (table, column) = (col.table, col.column);
        let (cols, ps) = key_tuple(&col, 3);
        let sql = format!("UPDATE {table} SET {column}=$1 WHERE {column}=$2 AND {cols} = {ps}");
        run!(self, Mode::Write, |c| {
            let mut n = 0;
            for (old, new) in &changes {
                if old.key.len() != col.key.len() {
                    return Err(StoreError::Corrupt("sealed value of another table".into()));
                }
                let mut params = vec![Param::Blob(new), Param::Blob(&old.sealed)];
                params.extend(old.key.iter().map(|k| Param::Text(k)));
                n += c.execute(&sql, &params).await?;
            }
            Ok(n)
        })
    }

    async fn change_meta(
        &self,
        set: Vec<(String, String)>,
        remove: Vec<String>,
    ) -> StoreResult<()> {
        run!(self, Mode::Write, |c| {
            for (name, value) in &set {
                c.execute(
                    "INSERT INTO meta (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET value=excluded.value",
                    args![name, value],
                )
                .await?;
            }
            for name in &remove {
                c.execute("DELETE FROM meta WHERE name=$1", args![name])
                    .await?;
            }
            Ok(())
        })
    }
}
