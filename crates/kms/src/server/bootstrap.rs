//! First start: the data dir's default account and its first access key. Later starts (and
//! other nodes sharing the database) reuse what is there.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use crate::config::ServerConfig;
use crate::service::{validate_account_id, Kms};
use crate::store::Store;

use super::DataDir;

const DEFAULT_ACCOUNT_META: &str = "default_account_id";
pub const INITIAL_KEY_FILE: &str = "initial-access-key.json";

/// What this start did about the first access key, for the banner's next steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstKey {
    /// Generated now: shown once and saved in the data dir's `initial-access-key.json`.
    Generated {
        id: String,
        secret: zeroize::Zeroizing<String>,
    },
    /// Created now from `KMS_ACCESS_KEY_ID` / `KMS_ACCESS_KEY_SECRET`.
    FromEnv { id: String },
    /// A later start (or another node made it): the access keys are already there.
    Existing,
}

/// The outcome of [`bootstrap`].
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The data dir's default account.
    pub account: String,
    pub first_key: FirstKey,
}

/// The data dir's default account: the one recorded on first start, else `configured`,
/// else a new random 16-digit id.
pub async fn default_account(
    store: &dyn Store,
    configured: Option<&str>,
) -> Result<String, String> {
    if let Some(a) = store
        .get_meta(DEFAULT_ACCOUNT_META)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(a);
    }
    let account = match configured {
        Some(a) => {
            validate_account_id(a).map_err(|e| e.message())?;
            a.to_string()
        }
        None => {
            let mut b = [0u8; 8];
            aws_lc_rs::rand::fill(&mut b).map_err(|_| "rng failed".to_string())?;
            format!(
                "{:016}",
                u64::from_be_bytes(b) % 9_000_000_000_000_000 + 1_000_000_000_000_000
            )
        }
    };
    // Several nodes starting at once on one database agree on the first one's choice.
    store
        .init_meta(DEFAULT_ACCOUNT_META, &account)
        .await
        .map_err(|e| e.to_string())
}

/// The access key given in `KMS_ACCESS_KEY_ID` and `KMS_ACCESS_KEY_SECRET` (each `None`
/// when unset or empty).
fn access_key_from_env() -> (Option<String>, Option<String>) {
    let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
    (var("KMS_ACCESS_KEY_ID"), var("KMS_ACCESS_KEY_SECRET"))
}

/// First start: the account and one access key (from `KMS_ACCESS_KEY_ID`/`_SECRET`, or
/// generated, printed once and written to a 0600 file). Later starts reuse what is there.
pub async fn bootstrap(
    dir: &DataDir,
    kms: &Kms,
    config: &ServerConfig,
) -> Result<Bootstrap, String> {
    bootstrap_with(
        dir,
        kms,
        config.account_id.as_deref(),
        access_key_from_env(),
    )
    .await
}

/// [`bootstrap`] with the configured account and the access key pair `(id, secret)` given.
/// Both the account and the access key are stamped with the service's clock.
async fn bootstrap_with(
    dir: &DataDir,
    kms: &Kms,
    account_id: Option<&str>,
    given: (Option<String>, Option<String>),
) -> Result<Bootstrap, String> {
    let account = match account_id {
        Some(a) => {
            validate_account_id(a).map_err(|e| e.message())?;
            default_account(dir.store.as_ref(), Some(a)).await?;
            a.to_string()
        }
        None => default_account(dir.store.as_ref(), None).await?,
    };
    kms.store()
        .ensure_account(&account, kms.now())
        .await
        .map_err(|e| e.to_string())?;
    let mut first_key = FirstKey::Existing;
    match given {
        (Some(id), Some(secret)) => {
            match dir
                .store
                .get_access_key(&id)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(existing) => {
                    let (_, stored) = kms.access_key_secret(&id).await.map_err(|e| e.message())?;
                    if stored.as_slice() != secret.as_bytes() {
                        tracing::warn!(access_key_id = %id, "KMS_ACCESS_KEY_SECRET differs from the stored secret of this access key; the stored one stays in force");
                    }
                    if existing.account_id != account {
                        tracing::warn!(access_key_id = %id, account = %existing.account_id, "KMS_ACCESS_KEY_ID belongs to another account");
                    }
                }
                None => match kms
                    .create_access_key(&account, Some((id.clone(), secret)))
                    .await
                {
                    Ok(_) => {
                        println!(
                            "Access key {id} (from KMS_ACCESS_KEY_ID) created for account {account}."
                        );
                        first_key = FirstKey::FromEnv { id: id.clone() };
                    }
                    // Another node sharing the database created it at the same moment.
                    Err(e) => {
                        if dir
                            .store
                            .get_access_key(&id)
                            .await
                            .map_err(|e| e.to_string())?
                            .is_none()
                        {
                            return Err(e.message());
                        }
                    }
                },
            }
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err("set both KMS_ACCESS_KEY_ID and KMS_ACCESS_KEY_SECRET, or neither".into())
        }
        (None, None) => {
            // Only one node of several starting at once on an empty database creates it.
            let ticket = uuid::Uuid::new_v4().to_string();
            if dir
                .store
                .list_access_keys()
                .await
                .map_err(|e| e.to_string())?
                .is_empty()
                && dir
                    .store
                    .init_meta("initial_access_key_creator", &ticket)
                    .await
                    .map_err(|e| e.to_string())?
                    == ticket
            {
                let ak = kms
                    .create_access_key(&account, None)
                    .await
                    .map_err(|e| e.message())?;
                let path = dir.path.join(INITIAL_KEY_FILE);
                let json = serde_json::json!({
                    "AccessKeyId": ak.access_key_id,
                    "AccessKeySecret": ak.access_key_secret,
                    "AccountId": ak.account_id,
                });
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                writeln!(f, "{json}").map_err(|e| e.to_string())?;
                println!(
                    "Created the first access key (shown once; also saved to {}):",
                    path.display()
                );
                println!("  AccessKeyId:     {}", ak.access_key_id);
                println!("  AccessKeySecret: {}", ak.access_key_secret);
                first_key = FirstKey::Generated {
                    id: ak.access_key_id.clone(),
                    secret: zeroize::Zeroizing::new(ak.access_key_secret.to_string()),
                };
            }
        }
    }
    Ok(Bootstrap { account, first_key })
}

/// Where the server can be reached, for the banner.
pub struct Addresses<'a> {
    /// The API's URL as a client on this machine uses it (`http://127.0.0.1:8080`).
    pub api: &'a str,
    /// The console's URL, when it is on.
    pub console: Option<&'a str>,
    /// The certificate clients should trust, with HTTPS.
    pub ca_cert: Option<&'a std::path::Path>,
    pub data_dir: &'a std::path::Path,
}

/// The lines printed once the server listens: on the first start, ready-to-copy next steps
/// (credentials for the command line, the console and what it signs in with); on later
/// starts, where the credentials are.
pub fn banner(first_key: &FirstKey, at: &Addresses) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let data_dir = at.data_dir.display();
    let endpoint = || {
        let mut s = format!("  export KMS_ENDPOINT={}", at.api);
        if let Some(ca) = at.ca_cert {
            s.push_str(&format!(" KMS_CA_CERT={}", ca.display()));
        }
        s
    };
    let console = |what: &str| {
        match at.console {
        Some(url) => format!("  Web console: open {url} and sign in with \"Access key\" ({what})."),
        None => "  Web console: not running (--console-listen off, or its default port was taken: see the warning above; --console-listen HOST:PORT moves it).".to_string(),
    }
    };
    match first_key {
        FirstKey::Generated { id, secret } => {
            line(String::new());
            line("Next steps (copy and paste):".into());
            line(format!(
                "  export ALIBABA_CLOUD_ACCESS_KEY_ID={id} ALIBABA_CLOUD_ACCESS_KEY_SECRET={}",
                secret.as_str()
            ));
            line(endpoint());
            line(
                "  kms DescribeRegions          # kms not found? cargo install --path crates/kms"
                    .into(),
            );
            line(format!(
                "  # or keep them in a profile: kms configure --access-key-id {id} --endpoint {}   (asks for the secret)",
                at.api
            ));
            line(console("the AccessKeyId and AccessKeySecret above"));
            line(format!(
                "  The credentials stay in {} (mode 0600); later starts point there.",
                at.data_dir.join(INITIAL_KEY_FILE).display()
            ));
        }
        FirstKey::FromEnv { id } => {
            line(String::new());
            line("Next steps (copy and paste):".into());
            line(format!(
                "  export ALIBABA_CLOUD_ACCESS_KEY_ID={id} ALIBABA_CLOUD_ACCESS_KEY_SECRET=\"$KMS_ACCESS_KEY_SECRET\""
            ));
            line(endpoint());
            line(
                "  kms DescribeRegions          # kms not found? cargo install --path crates/kms"
                    .into(),
            );
            line(console(
                "the KMS_ACCESS_KEY_ID and KMS_ACCESS_KEY_SECRET this server started with",
            ));
        }
        FirstKey::Existing => {
            let file = at.data_dir.join(INITIAL_KEY_FILE);
            if file.exists() {
                line(format!(
                    "Credentials: the first access key (AccessKeyId, AccessKeySecret) is in {}; \
                     use it with ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET, kms configure, or the web console's \"Access key\" sign-in.",
                    file.display()
                ));
            } else {
                line(format!(
                    "Credentials: kms admin access-key list --data-dir {data_dir} shows the access keys; \
                     kms admin access-key create --data-dir {data_dir} makes one (its secret is shown once)."
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::keystore::wrapping::Pool;
    use crate::service::ServiceConfig;

    /// 2001-09-09T01:46:40Z: far from the system clock, so a stray system time shows.
    const FIXED: i64 = 1_000_000_000;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "kms-bootstrap-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    async fn open(dir: &std::path::Path) -> (DataDir, Kms) {
        let d = DataDir::open(dir, None).await.unwrap();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(FIXED));
        let kms = d.service(clock, Pool::new(0), ServiceConfig::default());
        (d, kms)
    }

    /// The account's creation date, read from the SQLite file itself (the store has no
    /// reader for it).
    fn account_created(dir: &std::path::Path, account: &str) -> i64 {
        let db = rusqlite::Connection::open(dir.join("kms.db")).unwrap();
        db.query_row(
            "SELECT creation_date FROM accounts WHERE account_id=?1",
            [account],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn first_start_stamps_account_and_generated_key_with_the_clock() {
        let path = temp_dir("generated");
        let (dir, kms) = open(&path).await;
        let first = bootstrap_with(&dir, &kms, Some("1234567890123456"), (None, None))
            .await
            .unwrap();
        let account = first.account.clone();
        assert_eq!(account, "1234567890123456");
        assert_eq!(account_created(&path, &account), FIXED);
        let keys = dir.store.list_access_keys().await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].account_id, account);
        assert_eq!(keys[0].creation_date, FIXED);
        assert!(keys[0].enabled);
        // The generated key is saved once, readable by the owner only, and works.
        let file = path.join(INITIAL_KEY_FILE);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(saved["AccessKeyId"], keys[0].access_key_id.as_str());
        assert_eq!(saved["AccountId"], account.as_str());
        let (owner, secret) = kms.access_key_secret(&keys[0].access_key_id).await.unwrap();
        assert_eq!(owner, account);
        assert_eq!(
            Some(std::str::from_utf8(&secret).unwrap()),
            saved["AccessKeySecret"].as_str()
        );
        // A second start creates nothing more and keeps the account.
        let FirstKey::Generated { id, secret } = &first.first_key else {
            panic!("{:?}", first.first_key);
        };
        assert_eq!(id, &keys[0].access_key_id);
        assert_eq!(Some(secret.as_str()), saved["AccessKeySecret"].as_str());
        let again = bootstrap_with(&dir, &kms, None, (None, None))
            .await
            .unwrap();
        assert_eq!(again.account, account);
        assert_eq!(again.first_key, FirstKey::Existing);
        assert_eq!(dir.store.list_access_keys().await.unwrap().len(), 1);
        drop(dir);
        let _ = std::fs::remove_dir_all(&path);
    }

    #[tokio::test]
    async fn first_start_stamps_a_given_key_with_the_clock() {
        let path = temp_dir("given");
        let (dir, kms) = open(&path).await;
        let given = (
            Some("LTAIgivenkey000001".to_string()),
            Some("given-secret".to_string()),
        );
        let first = bootstrap_with(&dir, &kms, Some("1234567890123456"), given.clone())
            .await
            .unwrap();
        let account = first.account;
        assert_eq!(
            first.first_key,
            FirstKey::FromEnv {
                id: "LTAIgivenkey000001".into()
            }
        );
        assert_eq!(account_created(&path, &account), FIXED);
        let again = bootstrap_with(&dir, &kms, None, given).await.unwrap();
        assert_eq!(again.first_key, FirstKey::Existing);
        let key = dir
            .store
            .get_access_key("LTAIgivenkey000001")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(key.account_id, account);
        assert_eq!(key.creation_date, FIXED);
        assert!(!path.join(INITIAL_KEY_FILE).exists());
        drop(dir);
        let _ = std::fs::remove_dir_all(&path);
    }

    #[tokio::test]
    async fn half_a_given_key_is_refused() {
        let path = temp_dir("half");
        let (dir, kms) = open(&path).await;
        for given in [
            (Some("LTAIonlyid".to_string()), None),
            (None, Some("only-secret".to_string())),
        ] {
            assert_eq!(
                bootstrap_with(&dir, &kms, None, given).await.unwrap_err(),
                "set both KMS_ACCESS_KEY_ID and KMS_ACCESS_KEY_SECRET, or neither"
            );
        }
        assert!(dir.store.list_access_keys().await.unwrap().is_empty());
        drop(dir);
        let _ = std::fs::remove_dir_all(&path);
    }

    #[test]
    fn banner_gives_next_steps_once_and_a_pointer_later() {
        let path = temp_dir("banner");
        std::fs::create_dir_all(&path).unwrap();
        let at = Addresses {
            api: "http://127.0.0.1:8080",
            console: Some("http://127.0.0.1:8081/console"),
            ca_cert: None,
            data_dir: &path,
        };
        let first = banner(
            &FirstKey::Generated {
                id: "LTAIabc".into(),
                secret: zeroize::Zeroizing::new("s3cret".into()),
            },
            &at,
        );
        let lines: Vec<&str> = first.lines().collect();
        assert!(lines.contains(
            &"  export ALIBABA_CLOUD_ACCESS_KEY_ID=LTAIabc ALIBABA_CLOUD_ACCESS_KEY_SECRET=s3cret"
        ));
        assert!(lines.contains(&"  export KMS_ENDPOINT=http://127.0.0.1:8080"));
        assert!(first
            .contains("kms configure --access-key-id LTAIabc --endpoint http://127.0.0.1:8080"));
        assert!(
            first.contains("open http://127.0.0.1:8081/console and sign in with \"Access key\"")
        );
        // Given in the environment: the secret is referred to, never printed.
        let env = banner(
            &FirstKey::FromEnv {
                id: "LTAIenv".into(),
            },
            &at,
        );
        assert!(env.contains(
            "export ALIBABA_CLOUD_ACCESS_KEY_ID=LTAIenv ALIBABA_CLOUD_ACCESS_KEY_SECRET=\"$KMS_ACCESS_KEY_SECRET\""
        ));
        // Later starts: where the credentials are, and no secret.
        let later = banner(&FirstKey::Existing, &at);
        assert!(
            later.contains("kms admin access-key list --data-dir"),
            "{later}"
        );
        std::fs::write(path.join(INITIAL_KEY_FILE), "{}").unwrap();
        let later = banner(&FirstKey::Existing, &at);
        assert!(
            later.contains(&format!("is in {}", path.join(INITIAL_KEY_FILE).display())),
            "{later}"
        );
        // With HTTPS, the certificate to trust goes with the endpoint.
        let cert = path.join("tls/cert.pem");
        let tls = Addresses {
            api: "https://127.0.0.1:8080",
            ca_cert: Some(&cert),
            ..at
        };
        assert!(
            banner(&FirstKey::FromEnv { id: "x".into() }, &tls).contains(&format!(
                "export KMS_ENDPOINT=https://127.0.0.1:8080 KMS_CA_CERT={}",
                cert.display()
            ))
        );
        let _ = std::fs::remove_dir_all(&path);
    }
}
