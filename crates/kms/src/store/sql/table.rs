//! Records and their tables: each record's column list (its field names, in order), its
//! `INSERT`, its parameters in that order, and reading it back from a row selected with the
//! column list. Declared once per record with [`table!`], so the three can never disagree.

use super::conn::{Conn, Param, Row, ToParam};
use crate::model::{
    AccessKeyRecord, AliasRecord, ConsoleSessionRecord, ConsoleUserRecord, KeyRecord,
    KeyVersionRecord, SecretRecord, SecretVersionRecord, WrappingKeyRecord,
};
use crate::store::StoreError;

/// A record stored as one row of a table whose columns are named like its fields.
pub trait Table: Sized {
    /// The table.
    const TABLE: &'static str;
    /// `a, b, c`: the columns, in field order.
    fn columns() -> &'static str;
    /// `INSERT INTO t (a, b, c) VALUES ($1,$2,$3)`.
    fn insert() -> &'static str;
    /// `UPDATE t SET b=$2, c=$3 WHERE a=$1`: every column by the first.
    fn update() -> &'static str;
    /// The values of [`Table::columns`], in order.
    fn params(&self) -> Vec<Param<'_>>;
    /// Reads the record from a row that starts with [`Table::columns`].
    fn read(r: &mut Row) -> Result<Self, StoreError>;
}

fn insert_statement(table: &str, columns: &str) -> String {
    let marks: Vec<String> = (1..=columns.split(", ").count())
        .map(|i| format!("${i}"))
        .collect();
    format!(
        "INSERT INTO {table} ({columns}) VALUES ({})",
        marks.join(",")
    )
}

fn update_statement(table: &str, columns: &str) -> String {
    let mut names = columns.split(", ");
    let first = names.next().unwrap_or_default();
    let set: Vec<String> = names
        .enumerate()
        .map(|(i, c)| format!("{c}=${}", i + 2))
        .collect();
    format!("UPDATE {table} SET {} WHERE {first}=$1", set.join(", "))
}

macro_rules! table {
    ($record:ty => $table:literal { $first:ident $(, $field:ident)* $(,)? }) => {
        impl Table for $record {
            const TABLE: &'static str = $table;
            fn columns() -> &'static str {
                concat!(stringify!($first) $(, ", ", stringify!($field))*)
            }
            fn insert() -> &'static str {
                static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                TEXT.get_or_init(|| insert_statement($table, Self::columns()))
            }
            fn update() -> &'static str {
                static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                TEXT.get_or_init(|| update_statement($table, Self::columns()))
            }
            fn params(&self) -> Vec<Param<'_>> {
                vec![self.$first.param() $(, self.$field.param())*]
            }
            fn read(r: &mut Row) -> Result<Self, StoreError> {
                Ok(Self {
                    $first: r.get()?,
                    $($field: r.get()?,)*
                })
            }
        }
    };
}

table!(KeyRecord => "keys" {
    key_id, account_id, region, description, key_spec, key_usage, origin, protection_level,
    state, creation_date, creator, primary_version, delete_date, material_present,
    material_expire, material_commitment, deletion_protection, deletion_protection_description,
    automatic_rotation, rotation_interval, last_rotation_date, version_count,
});
table!(KeyVersionRecord => "key_versions" { key_id, version_id, creation_date, sealed_material });
table!(AccessKeyRecord => "access_keys" {
    access_key_id, account_id, sealed_secret, enabled, creation_date, user_id,
});
table!(crate::model::RamEntityRecord => "ram_entities" { entity_id, account_id, kind, name, body });
table!(crate::model::RamLinkRecord => "ram_links" { kind, source_id, target_id, account_id, created });
table!(crate::model::StsSessionRecord => "sts_sessions" {
    access_key_id, account_id, role_id, session_name, sealed_secret, token_hash, session_policy,
    caller_arn, expiration, creation_date,
});
table!(AliasRecord => "aliases" { account_id, region, alias_name, key_id, creation_date });
table!(WrappingKeyRecord => "wrapping_keys" {
    wrapping_key_id, key_id, account_id, algorithm, sealed_private_key, expires,
});
table!(ConsoleUserRecord => "console_users" { user_name, account_id, password_hash, creation_date });
table!(ConsoleSessionRecord => "console_sessions" {
    id_hash, account_id, principal, created, last_seen,
});
// Secrets Manager (issue 18).
table!(SecretRecord => "secrets" {
    secret_id, account_id, region, secret_name, secret_type, description, encryption_key_id,
    extended_config, creation_date, update_date, planned_delete_time, automatic_rotation,
    rotation_interval, last_rotation_date, next_rotation_date,
});
table!(SecretVersionRecord => "secret_versions" {
    secret_id, version_id, creation_date, data_type, sealed_data_key, sealed_value,
});

impl dyn Conn + '_ {
    /// `SELECT <columns of T> FROM <table of T> <rest>`: the first row, if any.
    pub async fn select_one<T: Table>(
        &mut self,
        rest: &str,
        params: &[Param<'_>],
    ) -> Result<Option<T>, StoreError> {
        let sql = format!("SELECT {} FROM {} {rest}", T::columns(), T::TABLE);
        self.query_opt(&sql, params)
            .await?
            .map(|mut r| T::read(&mut r))
            .transpose()
    }

    /// `SELECT <columns of T> FROM <table of T> <rest>`: every row.
    pub async fn select_all<T: Table>(
        &mut self,
        rest: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<T>, StoreError> {
        let sql = format!("SELECT {} FROM {} {rest}", T::columns(), T::TABLE);
        self.query_all(&sql, params, T::read).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_follow_the_field_order() {
        assert_eq!(
            AliasRecord::insert(),
            "INSERT INTO aliases (account_id, region, alias_name, key_id, creation_date) VALUES ($1,$2,$3,$4,$5)"
        );
        assert_eq!(
            KeyVersionRecord::update(),
            "UPDATE key_versions SET version_id=$2, creation_date=$3, sealed_material=$4 WHERE key_id=$1"
        );
        assert_eq!(KeyRecord::columns().split(", ").count(), 22);
        assert!(KeyRecord::insert().ends_with("$21,$22)"));
    }
}
