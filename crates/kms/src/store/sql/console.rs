//! Web console users and sessions.

use async_trait::async_trait;

use super::conn::args;
use super::table::{select, Table};
use super::{sql, Backend, Mode, SqlStore};
use crate::model::{ConsoleSessionRecord, ConsoleUserRecord};
use crate::store::{ConsoleStore, StoreResult};

#[async_trait]
impl<B: Backend> ConsoleStore for SqlStore<B> {
    async fn insert_console_user(&self, user: ConsoleUserRecord) -> StoreResult<bool> {
        self.run(Mode::Auto, move |c| {
            Box::pin(async move {
                let sql = sql!(
                    c.dialect(),
                    "{} ON CONFLICT (user_name) DO NOTHING",
                    ConsoleUserRecord::insert()
                );
                Ok(c.execute(sql, &user.params()).await? > 0)
            })
        })
        .await
    }

    async fn get_console_user(&self, name: &str) -> StoreResult<Option<ConsoleUserRecord>> {
        let name = name.to_string();
        self.run(Mode::Auto, move |c| {
            Box::pin(async move {
                let sql = sql!(
                    c.dialect(),
                    "{}",
                    select::<ConsoleUserRecord>("console_users WHERE user_name=$1")
                );
                c.query_opt(sql, args![name])
                    .await?
                    .map(|mut r| ConsoleUserRecord::read(&mut r))
                    .transpose()
            })
        })
        .await
    }

    async fn list_console_users(&self) -> StoreResult<Vec<ConsoleUserRecord>> {
        self.run(Mode::Auto, move |c| {
            Box::pin(async move {
                let sql = sql!(
                    c.dialect(),
                    "{}",
                    select::<ConsoleUserRecord>("console_users ORDER BY user_name")
                );
                c.query_all(sql, &[], ConsoleUserRecord::read).await
            })
        })
        .await
    }

    async fn delete_console_user(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_string();
        self.run(Mode::Auto, move |c| {
            Box::pin(async move {
                let n = c
                    .execute("DELETE FROM console_users WHERE user_name=$1", args![name])
                    .await?;
                Ok(n > 0)
            })
        })
        .await
    }

    async fn insert_console_session(&self, s: ConsoleSessionRecord) -> StoreResult<()> {
        self.run(Mode::Auto, move |c| {
            Box::pin(async move {
                c.execute(ConsoleSessionRecord::insert(), &s.params())
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn get_console_session(
        &self,
        id_hash: &str,
    ) -> StoreResult<Option<ConsoleSessionRecord>> {
        let id = id_hash.to_string();
        self.run(Mode::Auto, move |c| {
            Box::pin(async move {
                let sql = sql!(
                    c.dialect(),
                    "{}",
                    select::<ConsoleSessionRecord>("console_sessions WHERE id_hash=$1")
                );
                c.query_opt(sql, args![id])
                    .await?
                    .map(|mut r| ConsoleSessionRecord::read(&mut r))
                    .transpose()
            })
        })
        .await
    }

    async fn touch_console_session(&self, id_hash: &str, now: i64) -> StoreResult<()> {
        let id = id_hash.to_string();
        self.run(Mode::Auto, move |c| {
            Box::pin(async move {
                c.execute(
                    "UPDATE console_sessions SET last_seen=$2 WHERE id_hash=$1 AND last_seen < $2",
                    args![id, now],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn delete_console_session(&self, id_hash: &str) -> StoreResult<()> {
        let id = id_hash.to_string();
        self.run(Mode::Auto, move |c| {
            Box::pin(async move {
                c.execute("DELETE FROM console_sessions WHERE id_hash=$1", args![id])
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn purge_console_sessions(&self, idle_before: i64) -> StoreResult<u64> {
        self.run(Mode::Auto, move |c| {
            Box::pin(async move {
                c.execute(
                    "DELETE FROM console_sessions WHERE last_seen < $1",
                    args![idle_before],
                )
                .await
            })
        })
        .await
    }
}
