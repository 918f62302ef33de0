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
                "{:<34} {:<20} {:<9} {:<20} CREATED",
                "ACCESS KEY ID", "ACCOUNT", "STATUS", "OWNER"
            );
            for k in keys {
                let owner = match &k.user_id {
                    None => "root".to_string(),
                    Some(id) => match d.store.get_ram_entity_by_id(id).await {
                        Ok(Some(u)) => format!("user/{}", u.name),
                        _ => format!("user id {id}"),
                    },
                };
                println!(
                    "{:<34} {:<20} {:<9} {:<20} {}",
                    k.access_key_id,
                    k.account_id,
                    if k.enabled { "Enabled" } else { "Disabled" },
                    owner,
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

/// Keys `seed-keys` creates and inserts at once.
const SEED_BATCH: usize = 10_000;

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
    let progress = crate::progress::Progress::new("Creating keys", count as u64);
    let mut done = 0;
    while done < count {
        let n = (count - done).min(SEED_BATCH);
        let batch = kms
            .new_keys_for_seeding(&account, &region, n)
            .await
            .map_err(|e| e.message())?;
        d.store
            .insert_keys_bulk(batch)
            .await
            .map_err(|e| e.to_string())?;
        done += n;
        progress.inc(n as u64);
    }
    progress.finish();
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
    if v.handovers > 0 {
        out.push_str(&format!(
            " It hands its chain over {} time{} at root-key rotations{}.",
            v.handovers,
            if v.handovers == 1 { "" } else { "s" },
            if v.pending_handover {
                " (the last rotation is unfinished: run `kms admin rotate-root-key`)"
            } else {
                ""
            }
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
    let progress = crate::progress::Progress::new("Copying rows", dump.rows());
    target
        .import_with_progress(dump.clone(), progress.clone())
        .await
        .map_err(|e| e.to_string())?;
    progress.finish();
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

/// `kms admin identities`: the RAM identities of an account, as JSON.
pub async fn identities(
    dir: crate::config::DataDirArg,
    account_id: Option<String>,
) -> Result<(), String> {
    use crate::store::{RamKind, RamLinkKind};
    let d = DataDir::open(&dir.data_dir, dir.database_url.as_deref()).await?;
    let account = match account_id {
        Some(a) => a,
        None => default_account(d.store.as_ref(), None).await?,
    };
    let s = d.store.as_ref();
    let e = |x: crate::store::StoreError| x.to_string();
    let mut out = serde_json::Map::new();
    let mut names = std::collections::HashMap::new();
    for kind in [
        RamKind::User,
        RamKind::Group,
        RamKind::Role,
        RamKind::Policy,
    ] {
        for ent in s.list_ram_entities(&account, kind).await.map_err(e)? {
            names.insert(
                ent.entity_id.clone(),
                format!("{}/{}", kind.as_str(), ent.name),
            );
        }
    }
    for kind in [
        RamKind::User,
        RamKind::Group,
        RamKind::Role,
        RamKind::Policy,
    ] {
        let mut list = Vec::new();
        for ent in s.list_ram_entities(&account, kind).await.map_err(e)? {
            let mut item = serde_json::json!({"Name": ent.name, "Id": ent.entity_id});
            let name_of = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_string());
            let policies: Vec<String> = s
                .list_ram_links(RamLinkKind::Attachment, Some(&ent.entity_id), None)
                .await
                .map_err(e)?
                .iter()
                .map(|l| name_of(&l.target_id))
                .collect();
            if kind != RamKind::Policy {
                item["Policies"] = serde_json::json!(policies);
            }
            if kind == RamKind::User {
                let groups: Vec<String> = s
                    .list_ram_links(RamLinkKind::Member, Some(&ent.entity_id), None)
                    .await
                    .map_err(e)?
                    .iter()
                    .map(|l| name_of(&l.target_id))
                    .collect();
                let keys: Vec<String> = s
                    .list_user_access_keys(&ent.entity_id)
                    .await
                    .map_err(e)?
                    .into_iter()
                    .map(|k| k.access_key_id)
                    .collect();
                item["Groups"] = serde_json::json!(groups);
                item["AccessKeys"] = serde_json::json!(keys);
            }
            list.push(item);
        }
        let key = match kind {
            RamKind::User => "Users",
            RamKind::Group => "Groups",
            RamKind::Role => "Roles",
            RamKind::Policy => "CustomPolicies",
        };
        out.insert(key.into(), serde_json::Value::Array(list));
    }
    let roots: Vec<String> = s
        .list_access_keys()
        .await
        .map_err(e)?
        .into_iter()
        .filter(|k| k.account_id == account && k.user_id.is_none())
        .map(|k| k.access_key_id)
        .collect();
    out.insert("AccountId".into(), serde_json::json!(account));
    out.insert("RootAccessKeys".into(), serde_json::json!(roots));
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::Value::Object(out)).map_err(|x| x.to_string())?
    );
    Ok(())
}

/// `kms admin action-table`: every product's actions with their parameters and RAM checks,
/// as JSON (the end-to-end tests generate their authorisation cases from it).
pub fn action_table() {
    use crate::action::{kms, ram, sts, ApiAction};
    let all: Vec<ApiAction> = kms::Action::ALL
        .iter()
        .map(|a| ApiAction::Kms(*a))
        .chain(ram::Action::ALL.iter().map(|a| ApiAction::Ram(*a)))
        .chain(sts::Action::ALL.iter().map(|a| ApiAction::Sts(*a)))
        .collect();
    let rows: Vec<serde_json::Value> = all
        .iter()
        .map(|a| {
            serde_json::json!({
                "Version": a.product().version(),
                "Action": a.name(),
                "ChangesState": a.changes_state(),
                "Params": a.params().iter().map(|p| serde_json::json!({
                    "Name": p.name,
                    "Required": p.required,
                    "Kind": format!("{:?}", p.kind),
                })).collect::<Vec<_>>(),
                "Ram": a.ram().iter().map(|c| serde_json::json!({
                    "Action": c.action,
                    "Resource": c.resource.arn_resource(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    println!("{}", serde_json::Value::Array(rows));
}

/// `kms admin backup --to FILE`.
pub async fn backup(dir: &crate::config::DataDirArg, to: &std::path::Path) -> Result<(), String> {
    let source = crate::backup::Source::of(&dir.data_dir, dir.database_url.as_deref())?;
    let m = crate::backup::backup(source, to).await?;
    println!(
        "Backed up {} keys, {} key versions and {} access keys ({} database, schema {}) to {} ({} bytes, SHA-256 checked on restore).",
        m.keys,
        m.key_versions,
        m.access_keys,
        m.source_engine,
        m.source_schema_version,
        to.display(),
        m.payload_bytes
    );
    println!("Root key fingerprint: {}", m.root_key_fingerprint);
    println!("The file holds {}.", crate::backup::CONTENTS);
    eprintln!("{}", crate::backup::ROOT_KEY_WARNING);
    Ok(())
}

/// `kms admin restore --from FILE --data-dir DIR [--database-url postgres://…]`.
pub async fn restore(
    from: &std::path::Path,
    data_dir: &std::path::Path,
    database_url: Option<&str>,
) -> Result<(), String> {
    let m = crate::backup::restore(from, data_dir, database_url).await?;
    match database_url {
        Some(_) => println!(
            "Restored the backup of {} into the PostgreSQL database; the data dir {} is for the root key, the audit trail and TLS files.",
            m.created_at,
            data_dir.display()
        ),
        None => println!(
            "Restored the backup of {} into {}.",
            m.created_at,
            data_dir.join("kms.db").display()
        ),
    }
    println!(
        "Next: put the root key with fingerprint {} at {} (mode 0600) or point KMS_ROOT_KEY_FILE at it, then start the server. A server started without it creates a new root key and refuses this database.",
        m.root_key_fingerprint,
        data_dir.join("root.key").display()
    );
    println!("The audit trail is not part of a backup: the restored server starts a new one (keep the old audit files with their backups).");
    Ok(())
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
