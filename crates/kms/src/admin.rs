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
            let d = DataDir::open(&dir.data_dir)?;
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
            let d = DataDir::open(&dir.data_dir)?;
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
            set_enabled(&dir.data_dir, &access_key_id, false).await?
        }
        AccessKeyCommand::Enable { dir, access_key_id } => {
            set_enabled(&dir.data_dir, &access_key_id, true).await?
        }
        AccessKeyCommand::Delete { dir, access_key_id } => {
            let d = DataDir::open(&dir.data_dir)?;
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

async fn set_enabled(dir: &std::path::Path, id: &str, enabled: bool) -> Result<(), String> {
    let d = DataDir::open(dir)?;
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
    dir: &std::path::Path,
    count: usize,
    account_id: Option<String>,
    region: String,
) -> Result<(), String> {
    let d = DataDir::open(dir)?;
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

/// `kms admin audit verify|query`.
pub fn audit(cmd: crate::config::AuditCommand) -> Result<(), String> {
    match cmd {
        crate::config::AuditCommand::Verify { dir } => {
            let d = DataDir::open(&dir.data_dir)?;
            let v = crate::audit::verify(&d.path.join("audit"), &d.keystore)?;
            println!(
                "The audit trail is intact: {} lines in {} files.",
                v.lines, v.files
            );
        }
        crate::config::AuditCommand::Query {
            dir,
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
            let d = DataDir::open(&dir.data_dir)?;
            for line in crate::audit::query(
                &d.path.join("audit"),
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
            let d = DataDir::open(&dir.data_dir)?;
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
            let d = DataDir::open(&dir.data_dir)?;
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
            let d = DataDir::open(&dir.data_dir)?;
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
    }
    Ok(())
}
