//! `kms admin …`: offline administration of a data dir (works while a server runs on it;
//! the server notices access-key changes within seconds).

use std::sync::Arc;

use crate::clock::{Clock, OffsetClock};
use crate::config::AccessKeyCommand;
use crate::keystore::wrapping::Pool;
use crate::server::{default_account, DataDir};
use crate::service::ServiceConfig;
use crate::timefmt::format_unix;

pub async fn access_key(cmd: AccessKeyCommand) -> Result<(), String> {
    match cmd {
        AccessKeyCommand::Create { dir, account_id } => {
            let d = DataDir::open(&dir.data_dir, dir.database_url.as_deref()).await?;
            let clock: Arc<dyn Clock> = Arc::new(OffsetClock::new());
            let kms = d.service(clock, Pool::new(0), ServiceConfig::default());
            let account = match account_id {
                Some(a) => a,
                None => default_account(d.store.as_ref(), None).await?,
            };
            let ak = kms
                .create_access_key(&account, None)
                .await
                .map_err(|e| e.message())?;
            println!(
                "{}",
                serde_json::json!({
                    "AccessKeyId": ak.access_key_id,
                    "AccessKeySecret": ak.access_key_secret,
                    "AccountId": ak.account_id,
                })
            );
        }
        AccessKeyCommand::List { dir } => {
            let d = DataDir::open(&dir.data_dir, dir.database_url.as_deref()).await?;
            let keys = d
                .store
                .list_access_keys()
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{:<34} {:<20} {:<9} CREATED",
                "ACCESS KEY ID", "ACCOUNT", "STATUS"
            );
            for k in keys {
                println!(
                    "{:<34} {:<20} {:<9} {}",
                    k.access_key_id,
                    k.account_id,
                    if k.enabled { "Enabled" } else { "Disabled" },
                    format_unix(k.creation_date)
                );
            }
        }
        AccessKeyCommand::Disable { dir, access_key_id } => {
            set_enabled(&dir, &access_key_id, false).await?
        }
        AccessKeyCommand::Enable { dir, access_key_id } => {
            set_enabled(&dir, &access_key_id, true).await?
        }
        AccessKeyCommand::Delete { dir, access_key_id } => {
            let d = DataDir::open(&dir.data_dir, dir.database_url.as_deref()).await?;
            if !d
                .store
                .delete_access_key(&access_key_id)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("no access key {access_key_id}"));
            }
            println!("Deleted access key {access_key_id}.");
        }
    }
    Ok(())
}

async fn set_enabled(
    dir: &crate::config::DataDirArg,
    id: &str,
    enabled: bool,
) -> Result<(), String> {
    let d = DataDir::open(&dir.data_dir, dir.database_url.as_deref()).await?;
    if !d
        .store
        .set_access_key_enabled(id, enabled)
        .await
        .map_err(|e| e.to_string())?
    {
        return Err(format!("no access key {id}"));
    }
    println!(
        "Access key {id} {}.",
        if enabled { "enabled" } else { "disabled" }
    );
    Ok(())
}

/// `kms admin seed-keys`: `count` Enabled `Aliyun_KMS` keys, each with its own sealed material,
/// inserted in batches.
pub async fn seed_keys(
    dir: &crate::config::DataDirArg,
    count: usize,
    account_id: Option<String>,
    region: String,
) -> Result<(), String> {
    let d = DataDir::open(&dir.data_dir, dir.database_url.as_deref()).await?;
    let clock: Arc<dyn Clock> = Arc::new(OffsetClock::new());
    let kms = d.service(clock, Pool::new(0), ServiceConfig::default());
    let account = match account_id {
        Some(a) => a,
        None => default_account(d.store.as_ref(), None).await?,
    };
    let started = std::time::Instant::now();
    let mut done = 0;
    while done < count {
        let n = (count - done).min(50_000);
        let batch = kms
            .new_keys_for_seeding(&account, &region, n)
            .await
            .map_err(|e| e.message())?;
        d.store
            .insert_keys_bulk(batch)
            .await
            .map_err(|e| e.to_string())?;
        done += n;
        eprint!("\r{done} keys");
    }
    eprintln!();
    println!(
        "Created {count} keys in account {account}, region {region}, in {:.1} s.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `kms admin audit verify|query`. Verify exits 0 when the chain is intact, 3 when it is
/// intact but records gaps (lines that could not be written, a damaged end set aside), and
/// fails otherwise.
pub async fn audit(cmd: crate::config::AuditCommand) -> Result<(), crate::cli::Failure> {
    let audit_dir = |dir: &crate::config::DataDirArg, audit_dir: Option<std::path::PathBuf>| {
        audit_dir.unwrap_or_else(|| dir.data_dir.join("audit"))
    };
    match cmd {
        crate::config::AuditCommand::Verify { dir, audit_dir: a } => {
            let keystore = crate::server::open_keystore(&dir.data_dir)?;
            let v = crate::audit::verify(&audit_dir(&dir, a), &keystore)?;
            println!("{}", describe_verified(&v));
            if !v.gaps.is_empty() {
                return Err(crate::cli::Failure {
                    status: 3,
                    message: format!(
                        "the audit trail records {} gap{}: lines are missing there",
                        v.gaps.len(),
                        if v.gaps.len() == 1 { "" } else { "s" }
                    ),
                });
            }
        }
        crate::config::AuditCommand::Query {
            dir,
            audit_dir: a,
            key_id,
            action,
            since,
        } => {
            let since = match since {
                Some(s) => Some(crate::timefmt::parse(&s).ok_or_else(|| {
                    format!("--since {s:?} is not a time like 2026-01-01T00:00:00Z")
                })?),
                None => None,
            };
            for line in crate::audit::query(
                &audit_dir(&dir, a),
                key_id.as_deref(),
                action.as_deref(),
                since,
            )? {
                println!("{line}");
            }
        }
    }
    Ok(())
}

/// What `kms admin audit verify` prints for an intact chain.
fn describe_verified(v: &crate::audit::Verified) -> String {
    let mut out = format!(
        "The audit trail is intact: {} lines in {} files.",
        v.lines, v.files
    );
    if v.first_seq > 1 {
        out.push_str(&format!(
            " Lines 1 to {} were removed by retention.",
            v.first_seq - 1
        ));
    }
    if !v.gaps.is_empty() {
        out.push_str(&format!(
            "\nIt records {} gap{}:",
            v.gaps.len(),
            if v.gaps.len() == 1 { "" } else { "s" }
        ));
        for g in &v.gaps {
            out.push_str(&format!(
                "\n  line {} ({}): {} line{} could not be written from {}: {}",
                g.seq,
                g.time,
                g.lost,
                if g.lost == 1 { "" } else { "s" },
                g.since,
                g.reason
            ));
        }
    }
    out
}

/// `kms admin migrate-store --from … --to …`: copies every row of one store into an empty
/// other one (secrets stay sealed; no root key is needed), then reads both back and compares
/// them row by row.
pub async fn migrate_store(from: &str, to: &str) -> Result<(), String> {
    let source = open_store(from).await?;
    let target = open_store(to).await?;
    let started = std::time::Instant::now();
    let dump = source.export().await.map_err(|e| e.to_string())?;
    println!("Read {}.", dump.summary());
    target
        .import(dump.clone())
        .await
        .map_err(|e| e.to_string())?;
    let copy = target.export().await.map_err(|e| e.to_string())?;
    if copy != dump {
        return Err(describe_difference(&dump, &copy));
    }
    println!(
        "Copied and verified in {:.1} s: the target holds exactly the same rows.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn describe_difference(a: &crate::store::Dump, b: &crate::store::Dump) -> String {
    let parts = [
        ("metadata", a.meta.len(), b.meta.len(), a.meta == b.meta),
        (
            "accounts",
            a.accounts.len(),
            b.accounts.len(),
            a.accounts == b.accounts,
        ),
        (
            "access keys",
            a.access_keys.len(),
            b.access_keys.len(),
            a.access_keys == b.access_keys,
        ),
        ("keys", a.keys.len(), b.keys.len(), a.keys == b.keys),
        (
            "key versions",
            a.versions.len(),
            b.versions.len(),
            a.versions == b.versions,
        ),
        ("tags", a.tags.len(), b.tags.len(), a.tags == b.tags),
        (
            "aliases",
            a.aliases.len(),
            b.aliases.len(),
            a.aliases == b.aliases,
        ),
        (
            "wrapping keys",
            a.wrapping_keys.len(),
            b.wrapping_keys.len(),
            a.wrapping_keys == b.wrapping_keys,
        ),
        (
            "console users",
            a.console_users.len(),
            b.console_users.len(),
            a.console_users == b.console_users,
        ),
    ];
    let bad: Vec<String> = parts
        .iter()
        .filter(|p| !p.3)
        .map(|(name, x, y, _)| format!("{name} ({x} read, {y} in the copy)"))
        .collect();
    format!(
        "verification failed: the copy differs in {}",
        bad.join(", ")
    )
}

/// A store by URL without the cache or the root-key check: `sqlite:<file>` or `postgres://…`.
async fn open_store(url: &str) -> Result<std::sync::Arc<dyn crate::store::Store>, String> {
    use crate::store::DatabaseUrl;
    match DatabaseUrl::parse(url)? {
        DatabaseUrl::Postgres(pg) => {
            let s = crate::store::postgres::PostgresStore::connect(*pg, 4)
                .await
                .map_err(|e| format!("postgres: {e}"))?;
            Ok(std::sync::Arc::new(s))
        }
        DatabaseUrl::Sqlite(file) => {
            if !file.exists() {
                return Err(format!("no SQLite database at {}", file.display()));
            }
            let s = crate::store::sqlite::SqliteStore::open(&file)
                .map_err(|e| format!("sqlite: {e}"))?;
            Ok(std::sync::Arc::new(s))
        }
    }
}

/// `kms admin console-user create|list|delete`.
pub async fn console_user(cmd: crate::config::ConsoleUserCommand) -> Result<(), String> {
    use crate::config::ConsoleUserCommand;
    match cmd {
        ConsoleUserCommand::Create {
            dir,
            name,
            account_id,
        } => {
            crate::console::session::validate_user_name(&name)?;
            let password = read_console_password()?;
            let d = DataDir::open(&dir.data_dir, dir.database_url.as_deref()).await?;
            let account = match account_id {
                Some(a) => {
                    crate::service::validate_account_id(&a).map_err(|e| e.message())?;
                    a
                }
                None => default_account(d.store.as_ref(), None).await?,
            };
            let now = crate::clock::system_now();
            d.store
                .ensure_account(&account, now)
                .await
                .map_err(|e| e.to_string())?;
            let hash = crate::console::session::hash_password(&password)?;
            if !d
                .store
                .insert_console_user(crate::store::ConsoleUserRecord {
                    user_name: name.clone(),
                    account_id: account.clone(),
                    password_hash: hash,
                    creation_date: now,
                })
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("console user {name} already exists"));
            }
            println!("Created console user {name} in account {account}.");
        }
        ConsoleUserCommand::List { dir } => {
            let d = DataDir::open(&dir.data_dir, dir.database_url.as_deref()).await?;
            let users = d
                .store
                .list_console_users()
                .await
                .map_err(|e| e.to_string())?;
            println!("{:<32} {:<20} CREATED", "USER", "ACCOUNT");
            for u in users {
                println!(
                    "{:<32} {:<20} {}",
                    u.user_name,
                    u.account_id,
                    format_unix(u.creation_date)
                );
            }
        }
        ConsoleUserCommand::Delete { dir, name } => {
            let d = DataDir::open(&dir.data_dir, dir.database_url.as_deref()).await?;
            if !d
                .store
                .delete_console_user(&name)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("no console user {name}"));
            }
            println!("Deleted console user {name}.");
        }
        ConsoleUserCommand::SetPassword { dir, name } => {
            let password = read_console_password()?;
            let d = DataDir::open(&dir.data_dir, dir.database_url.as_deref()).await?;
            let hash = crate::console::session::hash_password(&password)?;
            if !crate::service::console::set_console_user_password(d.store.as_ref(), &name, hash)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("no console user {name}"));
            }
            println!("Changed the password of console user {name}; its sessions have ended.");
        }
    }
    Ok(())
}

/// A new console password: from KMS_CONSOLE_PASSWORD, else the first line of standard input;
/// at least 10 characters.
fn read_console_password() -> Result<zeroize::Zeroizing<String>, String> {
    let password = match std::env::var("KMS_CONSOLE_PASSWORD") {
        Ok(p) if !p.is_empty() => zeroize::Zeroizing::new(p),
        _ => {
            let mut line = zeroize::Zeroizing::new(String::new());
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the password: {e}"))?;
            zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string())
        }
    };
    crate::console::session::validate_password(&password)?;
    Ok(password)
}

/// `kms admin hsm-root …` (issue 20): the root key into an HSM's keeping, back, or its
/// status (the PKCS#11 work on a blocking thread).
pub async fn hsm_root(cmd: crate::hsm::root::HsmRootCommand) -> Result<(), String> {
    use crate::hsm::root::{self, HsmRootCommand};
    let out = tokio::task::spawn_blocking(move || match cmd {
        HsmRootCommand::ToHsm { data_dir } => {
            root::to_hsm(&data_dir, crate::server::data_dir::load_root_key)
        }
        HsmRootCommand::FromHsm { data_dir, confirm } => root::from_hsm(&data_dir, confirm),
        HsmRootCommand::Status { data_dir } => root::status(&data_dir),
    })
    .await
    .map_err(|e| format!("internal error: {e}"))??;
    println!("{out}");
    Ok(())
}
