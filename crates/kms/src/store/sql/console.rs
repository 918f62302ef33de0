//! Web console users and sessions.

use async_trait::async_trait;

use super::conn::args;
use super::table::Table;
use super::{run, sql, Backend, Mode, SqlStore};
use crate::model::{ConsoleSessionRecord, ConsoleUserRecord};
use crate::store::{ConsoleStore, StoreResult};

#[async_trait]
impl<B: Backend> ConsoleStore for SqlStore<B> {
    async fn insert_console_user(&self, user: ConsoleUserRecord) -> StoreResult<bool> {
        run!(self, Mode::Auto, |c| {
            let sql = sql!(
                c.dialect(),
                "{} ON CONFLICT (user_name) DO NOTHING",
                ConsoleUserRecord::insert()
            );
            Ok(c.execute(sql, &user.params()).await? > 0)
        })
    }

    async fn get_console_user(&self, name: &str) -> StoreResult<Option<ConsoleUserRecord>> {
        let name = name.to_string();
        run!(self, Mode::Auto, |c| {
            c.select_one::<ConsoleUserRecord>("WHERE user_name=$1", args![name])
                .await
        })
    }

    async fn list_console_users(&self) -> StoreResult<Vec<ConsoleUserRecord>> {
        run!(self, Mode::Auto, |c| {
            c.select_all::<ConsoleUserRecord>("ORDER BY user_name", &[])
                .await
        })
    }

    async fn delete_console_user(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_string();
        run!(self, Mode::Auto, |c| {
            let n = c
                .execute("DELETE FROM console_users WHERE user_name=$1", args![name])
                .await?;
            Ok(n > 0)
        })
    }

    async fn insert_console_session(&self, s: ConsoleSessionRecord) -> StoreResult<()> {
        run!(self, Mode::Auto, |c| {
            c.execute(ConsoleSessionRecord::insert(), &s.params())
                .await?;
            Ok(())
        })
    }

    async fn get_console_session(
        &self,
        id_hash: &str,
    ) -> StoreResult<Option<ConsoleSessionRecord>> {
        let id = id_hash.to_string();
        run!(self, Mode::Auto, |c| {
            c.select_one::<ConsoleSessionRecord>("WHERE id_hash=$1", args![id])
                .await
        })
    }

    async fn touch_console_session(&self, id_hash: &str, now: i64) -> StoreResult<()> {
        let id = id_hash.to_string();
        run!(self, Mode::Auto, |c| {
            c.execute(
                "UPDATE console_sessions SET last_seen=$2 WHERE id_hash=$1 AND last_seen < $2",
                args![id, now],
            )
            .await?;
            Ok(())
        })
    }

    async fn delete_console_session(&self, id_hash: &str) -> StoreResult<()> {
        let id = id_hash.to_string();
        run!(self, Mode::Auto, |c| {
            c.execute("DELETE FROM console_sessions WHERE id_hash=$1", args![id])
                .await?;
            Ok(())
        })
    }

    async fn purge_console_sessions(&self, idle_before: i64) -> StoreResult<u64> {
        run!(self, Mode::Auto, |c| {
            c.execute(
                "DELETE FROM console_sessions WHERE last_seen < $1",
                args![idle_before],
            )
            .await
        })
    }
}
