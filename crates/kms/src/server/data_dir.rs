//! The data dir: the root key (loaded, or created on first start), the database it is
//! checked against, the cache in front of the store, and the keystore derived from the key.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::keystore::wrapping::Pool;
use crate::keystore::{Keystore, ROOT_KEY_LEN};
use crate::service::{Kms, ServiceConfig};
use crate::store::cache::CachedStore;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{DatabaseUrl, Store};

use super::root_key::{self, root_key_path, Facts};

/// Safety-net lifetime of cached key rows, versions and aliases (every change made through
/// this process invalidates them at once).
const CACHE_TTL: Duration = Duration::from_secs(10);

/// Connections in a node's PostgreSQL pool.
pub const DEFAULT_DATABASE_POOL: usize = 16;
const ROOT_KEY_CHECK_META: &str = root_key::CHECK_META;

/// Handles on the store for the metrics ([`DataDir::store_probes`]).
#[derive(Clone)]
pub struct StoreProbes {
    pub store: Arc<dyn Store>,
    pub cache: Arc<CachedStore>,
    pub postgres: Option<Arc<PostgresStore>>,
}

/// An opened data dir: the store and the keystore derived from the root key.
pub struct DataDir {
    pub path: PathBuf,
    pub store: Arc<dyn Store>,
    pub keystore: Arc<Keystore>,
    cache: Arc<CachedStore>,
    /// The connection settings when the database is PostgreSQL.
    postgres: Option<tokio_postgres::Config>,
    /// The PostgreSQL store itself (its pool's use is a metric).
    postgres_store: Option<Arc<PostgresStore>>,
}

pub(crate) fn parse_root_key(bytes: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    use base64::Engine;
    if bytes.len() == ROOT_KEY_LEN {
        return Some(Zeroizing::new(bytes.to_vec()));
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    if let Ok(v) = hex::decode(text) {
        if v.len() == ROOT_KEY_LEN {
            return Some(Zeroizing::new(v));
        }
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .filter(|v| v.len() == ROOT_KEY_LEN)
        .map(Zeroizing::new)
}

/// Reads the root key from `KMS_ROOT_KEY_FILE`, or from `root.key` in the data dir,
/// creating that file (mode 0600, 32 random bytes) on first start. A root key held by an
/// HSM (`root.key.hsm`, issue 20) is unsealed through the token instead. (A rotation's next
/// key: [`super::root_key::load_next_root_key`].)
pub(crate) fn load_root_key(dir: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    if let Some(root) = crate::hsm::root::unseal_if_present(dir)? {
        return Ok(root);
    }
    if let Some(path) = std::env::var_os("KMS_ROOT_KEY_FILE") {
        let shown = Path::new(&path).display().to_string();
        let bytes = Zeroizing::new(std::fs::read(&path).map_err(|e| {
            format!("cannot read the root key file {shown} named by KMS_ROOT_KEY_FILE: {e}. Point KMS_ROOT_KEY_FILE at the file that holds this deployment's root key")
        })?);
        return parse_root_key(&bytes).ok_or_else(|| {
            format!("{shown} (named by KMS_ROOT_KEY_FILE) is not a root key: it must hold 32 bytes (raw, 64 hex characters or base64)")
        });
    }
    let path = dir.join("root.key");
    if !path.exists() {
        let mut key = Zeroizing::new(vec![0u8; ROOT_KEY_LEN]);
        aws_lc_rs::rand::fill(&mut key)
            .map_err(|_| "random number generator failed".to_string())?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot create the root key file {}: {e}. Make the data dir writable, or set KMS_ROOT_KEY_FILE", path.display()))?;
        f.write_all(&key)
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("cannot write the root key file {}: {e}. Free some space and remove the file before starting again", path.display()))?;
        tracing::info!(path = %path.display(), "created a new root key");
    }
    if let Ok(meta) = std::fs::metadata(&path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the root key file is readable by others; chmod 600 it");
        }
    }
    let bytes = Zeroizing::new(std::fs::read(&path).map_err(|e| {
        format!("cannot read the root key file {}: {e}. Check its permissions, or set KMS_ROOT_KEY_FILE to the file that holds the root key", path.display())
    })?);
    parse_root_key(&bytes).ok_or_else(|| {
        format!("{} is not a root key: it must hold 32 bytes (raw, 64 hex characters or base64). Restore this data dir's root key there, or set KMS_ROOT_KEY_FILE to the file that holds it", path.display())
    })
}

/// The keystore of a data dir's root key alone (no database), e.g. to check the audit trail.
pub fn open_keystore(path: &Path) -> Result<Keystore, String> {
    let root = load_root_key(path)?;
    Keystore::from_root(&root).map_err(|e| e.to_string())
}

/// The database of a data dir (SQLite in `<data dir>/kms.db` unless `database_url` says
/// otherwise), without the cache or any root-key check; with its PostgreSQL settings and the
/// cache lifetime that suits it.
#[allow(clippy::type_complexity)]
pub async fn open_database(
    path: &Path,
    database_url: Option<&str>,
    pool_size: usize,
) -> Result<
    (
        Arc<dyn Store>,
        Option<(tokio_postgres::Config, Arc<PostgresStore>)>,
        Duration,
    ),
    String,
> {
    let url = match database_url {
        Some(url) => DatabaseUrl::parse(url)?,
        None => DatabaseUrl::Sqlite(path.join("kms.db")),
    };
    Ok(match url {
        DatabaseUrl::Postgres(pg) => {
            let store = PostgresStore::connect((*pg).clone(), pool_size)
                .await
                .map_err(|e| format!("cannot use the PostgreSQL database of --database-url (KMS_DATABASE_URL): {e}"))?;
            let store = Arc::new(store);
            (
                store.clone(),
                Some((*pg, store)),
                crate::store::postgres::CACHE_TTL,
            )
        }
        DatabaseUrl::Sqlite(file) => (
            Arc::new({
                crate::private_fs::prepare_sqlite(&file)?;
                SqliteStore::open(&file).map_err(|e| format!("cannot open the SQLite database {}: {e} (--database-url, or <data dir>/kms.db)", file.display()))?
            }),
            None,
            CACHE_TTL,
        ),
    })
}

/// `keystore` with the commitment key a root-key rotation carried over (sealed in the
/// database's metadata), if there is one.
pub async fn with_carried_commitment_key(
    keystore: Keystore,
    store: &dyn Store,
) -> Result<Keystore, String> {
    use base64::Engine;
    let Some(sealed) = store
        .get_meta(root_key::COMMITMENT_KEY_META)
        .await
        .map_err(|e| format!("database: {e}"))?
    else {
        return Ok(keystore);
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sealed.trim())
        .ok()
        .and_then(|b| keystore.open(root_key::COMMITMENT_KEY_AAD.as_bytes(), &b).ok())
        .ok_or_else(|| {
            format!(
                "the database's {} does not open with this root key (a damaged database, or a rotation left unfinished: run `kms admin rotate-root-key`)",
                root_key::COMMITMENT_KEY_META
            )
        })?;
    keystore
        .with_commitment_key(&raw)
        .map_err(|e| e.to_string())
}

impl DataDir {
    /// Opens the data dir (root key, audit log, TLS files) and the database: SQLite in
    /// `<data dir>/kms.db` unless `database_url` is a `postgres://` URL (or `sqlite:<path>`).
    /// Refuses a database first opened with another root key.
    pub async fn open(path: &Path, database_url: Option<&str>) -> Result<Self, String> {
        Self::open_with_pool(path, database_url, DEFAULT_DATABASE_POOL).await
    }

    pub async fn open_with_pool(
        path: &Path,
        database_url: Option<&str>,
        pool_size: usize,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(path)
            .map_err(|e| format!("cannot create the data dir {}: {e} (choose another with --data-dir or KMS_DATA_DIR)", path.display()))?;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
        let root = load_root_key(path)?;
        let keystore = Keystore::from_root(&root).map_err(|e| e.to_string())?;
        let (inner, postgres, ttl) = open_database(path, database_url, pool_size).await?;
        let (postgres, postgres_store) = match postgres {
            Some((config, store)) => (Some(config), Some(store)),
            None => (None, None),
        };
        let check = keystore.check_value();
        let recorded = inner
            .init_meta(ROOT_KEY_CHECK_META, &check)
            .await
            .map_err(|e| format!("database: {e}"))?;
        let root_path = root_key_path(path);
        let facts = Facts {
            current: check,
            next: root_key::load_next_root_key(&root_path)?
                .map(|n| Keystore::from_root(&n).map(|k| k.check_value()))
                .transpose()
                .map_err(|e| e.to_string())?,
            database: Some(recorded),
            rotation: inner
                .get_meta(root_key::ROTATION_META)
                .await
                .map_err(|e| format!("database: {e}"))?,
        };
        if let Some(why) = root_key::refusal(&facts, &root_path, path) {
            return Err(why);
        }
        let keystore = Arc::new(with_carried_commitment_key(keystore, inner.as_ref()).await?);
        let cache = Arc::new(CachedStore::new(inner, ttl));
        Ok(Self {
            path: path.to_path_buf(),
            store: cache.clone(),
            cache,
            postgres,
            postgres_store,
            keystore,
        })
    }

    /// What the metrics read from the store: the cache's hits and misses, the PostgreSQL
    /// pool's use.
    pub fn store_probes(&self) -> StoreProbes {
        StoreProbes {
            store: self.store.clone(),
            cache: self.cache.clone(),
            postgres: self.postgres_store.clone(),
        }
    }

    /// On PostgreSQL: listens for other nodes' changes and drops them from this node's cache
    /// (the task runs until aborted). On SQLite there is no other node: `None`.
    pub fn start_change_listener(&self) -> Option<tokio::task::JoinHandle<()>> {
        let pg = self.postgres.as_ref()?;
        let cache = self.cache.clone();
        Some(tokio::spawn(crate::store::postgres::listen(
            pg.clone(),
            move |p| cache.apply_remote(p),
        )))
    }

    /// A service over this data dir.
    pub fn service(&self, clock: Arc<dyn Clock>, pool: Arc<Pool>, config: ServiceConfig) -> Kms {
        Kms::new(
            self.store.clone(),
            self.keystore.clone(),
            clock,
            pool,
            config,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_key_is_read_raw_hex_or_base64_and_only_at_32_bytes() {
        use base64::Engine;
        let key: Vec<u8> = (0u8..32).collect();
        let hex_text = format!("{}\n", hex::encode(&key));
        let b64 = base64::engine::general_purpose::STANDARD.encode(&key);
        for form in [key.clone(), hex_text.into_bytes(), b64.into_bytes()] {
            assert_eq!(parse_root_key(&form).as_deref(), Some(&key));
        }
        assert!(parse_root_key(&key[..31]).is_none());
        assert!(parse_root_key(hex::encode(&key[..31]).as_bytes()).is_none());
        assert!(parse_root_key(b"not a key").is_none());
    }
}
