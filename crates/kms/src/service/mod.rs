//! The KMS itself: accounts and regions, access keys, the key lifecycle and the
//! key-state × action matrix ([`state`]), cryptographic operations ([`crypto`]) and
//! bring-your-own-key import ([`import`]). Knows nothing of HTTP, JSON or SQL: callers
//! pass typed inputs and get typed results or a [`KmsError`].

pub mod aliases;
pub mod asymmetric;
#[cfg(test)]
mod auth_cache_tests;
pub mod console;
pub mod crypto;
mod hsm_keys;
pub mod import;
pub mod keys;
#[cfg(test)]
mod model_tests;
pub mod ram;
#[cfg(test)]
mod ram_tests;
pub mod secrets;
#[cfg(test)]
mod sm_tests;
pub mod state;
pub mod sts;
pub mod tags;
pub mod versions;

use std::sync::Arc;

use aws_lc_rs::rand::SecureRandom;
use uuid::Uuid;

use crate::clock::Clock;
use crate::error::KmsError;
use crate::keystore::wrapping::Pool;
use crate::keystore::{Keystore, Secret};
use crate::store::{AccessKeyRecord, KeyLocator, KeyRecord, Store};

/// Settings of the service layer.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Regions served; the first is the default for requests that name none.
    pub regions: Vec<String>,
    /// Import token (and wrapping key) lifetime in seconds: 24 hours.
    pub import_token_lifetime: i64,
    /// ScheduleKeyDeletion's PendingWindowInDays range.
    pub min_pending_window_days: i64,
    pub max_pending_window_days: i64,
    /// Keys per account and region.
    pub max_keys: i64,
    pub max_aliases_per_key: i64,
    pub max_versions_per_key: i64,
    /// Tags per key (reference §3.17: 20).
    pub max_tags_per_key: usize,
    /// Failed unwraps with one import token's wrapping key before the token is withdrawn
    /// (defence in depth against adaptive chosen-ciphertext attacks on RSA padding).
    pub max_unwrap_failures: i64,
    /// Outstanding import tokens (wrapping keys) per key: a GetParametersForImport beyond it
    /// withdraws the oldest token of the key.
    pub max_import_tokens_per_key: i64,
    /// Secrets per account and region (Secrets Manager; Alibaba's quota is undisclosed).
    pub max_secrets: i64,
    /// Versions per secret: beyond it the oldest versions without a stage are deleted.
    pub max_versions_per_secret: usize,
}

/// [`ServiceConfig::max_import_tokens_per_key`] by default.
pub const DEFAULT_MAX_IMPORT_TOKENS_PER_KEY: i64 = 100;

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            regions: vec!["cn-hangzhou".into()],
            import_token_lifetime: 24 * 3600,
            min_pending_window_days: 7,
            max_pending_window_days: 366,
            max_keys: 1000,
            max_aliases_per_key: 50,
            max_versions_per_key: 100,
            max_tags_per_key: 20,
            max_unwrap_failures: 10,
            max_import_tokens_per_key: DEFAULT_MAX_IMPORT_TOKENS_PER_KEY,
            max_secrets: 1000,
            max_versions_per_secret: 100,
        }
    }
}

/// Who is calling: the account that owns the access key and the region addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account_id: String,
    pub region: String,
    pub access_key_id: String,
}

pub struct Kms {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) keystore: Arc<Keystore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) pool: Arc<Pool>,
    pub(crate) config: ServiceConfig,
    /// Compiled RAM policies per principal ([`ram::PolicyCache`]): what fills the entries of
    /// `auth_cache`, and the console's sessions read.
    pub(crate) policies: ram::PolicyCache,
    /// Per access key, everything a signed request needs: account, principal, compiled
    /// policies and prepared signature keys ([`sts::AuthCache`]).
    pub(crate) auth_cache: sts::AuthCache,
    /// The HSM for ProtectionLevel=HSM keys (issue 20; see `hsm_keys`), and the wrapping
    /// algorithms it was found to unwrap with.
    pub(crate) hsm: Option<Arc<crate::hsm::Hsm>>,
    pub(crate) hsm_unwrap: tokio::sync::OnceCell<Vec<crate::keystore::wrapping::WrappingAlgorithm>>,
}

/// A freshly created access key; the secret is shown once.
#[derive(Debug, Clone)]
pub struct NewAccessKey {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub account_id: String,
}

impl Kms {
    pub fn new(
        store: Arc<dyn Store>,
        keystore: Arc<Keystore>,
        clock: Arc<dyn Clock>,
        pool: Arc<Pool>,
        config: ServiceConfig,
    ) -> Self {
        Self {
            store,
            keystore,
            clock,
            pool,
            config,
            policies: ram::PolicyCache::default(),
            auth_cache: sts::AuthCache::default(),
            hsm: None,
            hsm_unwrap: tokio::sync::OnceCell::new(),
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn regions(&self) -> &[String] {
        &self.config.regions
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    // ---------------------------------------------------------------- access keys

    /// Looks up an access key's account and secret (the console's sign-in, `kms admin`;
    /// signed API requests use [`Kms::authenticate`], which keeps prepared HMAC keys instead).
    /// The record comes through the store's cache (secret sealed, at most
    /// [`crate::store::cache::ACCESS_KEY_TTL`] old, dropped at once when changed through the
    /// store or announced by another node) and the secret is unsealed per call.
    pub async fn access_key_secret(&self, id: &str) -> Result<(String, Secret), KmsError> {
        let rec = self
            .store
            .get_access_key(id)
            .await?
            .ok_or(KmsError::AccessKeyNotFound)?;
        if !rec.enabled {
            return Err(KmsError::AccessKeyInactive);
        }
        let secret = self
            .keystore
            .open(access_key_aad(id).as_bytes(), &rec.sealed_secret)?;
        Ok((rec.account_id, secret))
    }

    /// Creates an access key for `account_id` (creating the account if needed). With
    /// `given`, that id and secret are used; otherwise both are generated.
    pub async fn create_access_key(
        &self,
        account_id: &str,
        given: Option<(String, String)>,
    ) -> Result<NewAccessKey, KmsError> {
        validate_account_id(account_id)?;
        let (id, secret) = match given {
            Some(pair) => pair,
            None => (
                format!("LTAI{}", self.random_alnum(20)?),
                self.random_alnum(30)?,
            ),
        };
        if id.is_empty() || id.len() > 128 || secret.is_empty() || secret.len() > 256 {
            return Err(KmsError::invalid("AccessKey"));
        }
        let now = self.now();
        self.store.ensure_account(account_id, now).await?;
        let sealed_secret = self
            .keystore
            .seal(access_key_aad(&id).as_bytes(), secret.as_bytes())?;
        self.store
            .insert_access_key(AccessKeyRecord {
                access_key_id: id.clone(),
                account_id: account_id.to_string(),
                sealed_secret,
                enabled: true,
                creation_date: now,
                user_id: None,
            })
            .await?;
        Ok(NewAccessKey {
            access_key_id: id,
            access_key_secret: secret,
            account_id: account_id.to_string(),
        })
    }

    /// Random `[A-Za-z0-9]` string (rejection sampling, no modulo bias).
    fn random_alnum(&self, n: usize) -> Result<String, KmsError> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut out = String::with_capacity(n);
        let mut buf = [0u8; 64];
        while out.len() < n {
            self.keystore
                .rng()
                .fill(&mut buf)
                .map_err(|_| KmsError::internal("rng"))?;
            for b in buf {
                if (b as usize) < 248 && out.len() < n {
                    out.push(ALPHABET[b as usize % 62] as char);
                }
            }
        }
        Ok(out)
    }

    // ---------------------------------------------------------------- key lookup

    /// Resolves a `KeyId` parameter that may not be an alias: a key id, or an ARN
    /// `acs:kms:<region>:<account>:key/<id>`. Another account's or region's key is "not
    /// found"; an alias (`alias/…` or an alias ARN) is `Unsupported.Alias`.
    pub fn locate(&self, caller: &Caller, key_ref: &str) -> Result<KeyLocator, KmsError> {
        match parse_key_ref(caller, key_ref)? {
            KeyRef::Key(loc) => Ok(loc),
            KeyRef::Alias(_) => Err(KmsError::UnsupportedAlias),
        }
    }

    /// Resolves a `KeyId` parameter where an alias is allowed too (DescribeKey, Encrypt,
    /// GenerateDataKey(WithoutPlaintext), ReEncrypt's destination).
    pub async fn resolve(&self, caller: &Caller, key_ref: &str) -> Result<KeyLocator, KmsError> {
        match parse_key_ref(caller, key_ref)? {
            KeyRef::Key(loc) => Ok(loc),
            KeyRef::Alias(name) => {
                let alias = self
                    .store
                    .get_alias(&caller.account_id, &caller.region, &name)
                    .await?
                    .ok_or(KmsError::AliasNotFound)?;
                Ok(KeyLocator {
                    account_id: alias.account_id,
                    region: alias.region,
                    key_id: alias.key_id,
                })
            }
        }
    }

    /// Loads a key, applying lazily what time has made true: a key past its DeleteDate is
    /// gone, imported material past its expiry is removed.
    pub(crate) async fn load(&self, loc: &KeyLocator) -> Result<KeyRecord, KmsError> {
        let now = self.now();
        let key = self
            .store
            .get_key(loc)
            .await?
            .ok_or(KmsError::KeyNotFound)?;
        if key.state == state::KeyState::PendingDeletion
            && key.delete_date.is_some_and(|d| d <= now)
        {
            if self.store.delete_key_if_due(loc, now).await?
                && key.protection_level == crate::model::ProtectionLevel::Hsm
            {
                self.forget_hsm_objects(&key.key_id).await;
            }
            return Err(KmsError::KeyNotFound);
        }
        if key.material_expired(now) {
            let label = self.hsm_material_label(&key).await;
            let k = self.expire_material(loc).await?;
            if !k.material_present {
                self.forget_hsm_material(label).await;
            }
            return Ok(k);
        }
        Ok(key)
    }

    /// Opens the sealed material of one key version.
    pub(crate) fn open_material(
        &self,
        key_id: &str,
        version_id: &str,
        sealed: &[u8],
    ) -> Result<Secret, KmsError> {
        self.keystore
            .open(material_aad(key_id, version_id).as_bytes(), sealed)
    }

    pub(crate) fn seal_material(
        &self,
        key_id: &str,
        version_id: &str,
        material: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        self.keystore
            .seal(material_aad(key_id, version_id).as_bytes(), material)
    }

    /// One pass of background work: deletes keys past their DeleteDate, expires imported
    /// material, purges expired wrapping keys. Safe to run concurrently with requests.
    pub async fn sweep(&self) -> Result<(), KmsError> {
        let now = self.now();
        for loc in self.store.due_deletions(now).await? {
            if self.store.delete_key_if_due(&loc, now).await? {
                tracing::info!(key_id = %loc.key_id, "key deleted after its pending window");
                // An HSM key's objects go with it (a no-op for software keys).
                self.forget_hsm_objects(&loc.key_id).await;
            }
        }
        for loc in self.store.due_material_expiry(now).await? {
            let label = match self.store.get_key(&loc).await? {
                Some(k) => self.hsm_material_label(&k).await,
                None => None,
            };
            match self.expire_material(&loc).await {
                Ok(k) => {
                    if !k.material_present {
                        self.forget_hsm_material(label).await;
                    }
                }
                Err(KmsError::KeyNotFound) => {}
                Err(e) => return Err(e),
            }
            tracing::info!(key_id = %loc.key_id, "imported key material expired");
        }
        for loc in self.store.due_rotations(now).await? {
            match self.rotate_if_due(&loc).await {
                Ok(true) => tracing::info!(key_id = %loc.key_id, "key rotated automatically"),
                Ok(false) | Err(KmsError::KeyNotFound) => {}
                Err(e) => return Err(e),
            }
        }
        self.store.purge_wrapping_keys(now).await?;
        self.purge_secrets(now).await?;
        if let Some(hsm) = &self.hsm {
            // Wrapping keys in the token expire with their import tokens.
            if let Err(e) = crate::hsm::ops::purge_wrapping_keys(hsm, now).await {
                tracing::warn!(error = %e, "could not purge expired wrapping keys from the HSM");
            }
        }
        // Nonces live by the wall clock (request timestamps), not the lifecycle clock.
        self.store.purge_nonces(crate::clock::system_now()).await?;
        Ok(())
    }
}

/// A parsed `KeyId` parameter.
enum KeyRef {
    Key(KeyLocator),
    /// `alias/<name>`
    Alias(String),
}

fn parse_key_ref(caller: &Caller, key_ref: &str) -> Result<KeyRef, KmsError> {
    if let Some(rest) = key_ref.strip_prefix("acs:kms:") {
        let mut parts = rest.splitn(3, ':');
        let (region, account, resource) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let theirs = region != caller.region || account != caller.account_id;
        if let Some(id) = resource.strip_prefix("key/") {
            if theirs {
                return Err(KmsError::KeyNotFound);
            }
            return Ok(KeyRef::Key(KeyLocator {
                account_id: caller.account_id.clone(),
                region: caller.region.clone(),
                key_id: id.to_string(),
            }));
        }
        if resource.starts_with("alias/") {
            if theirs {
                return Err(KmsError::AliasNotFound);
            }
            return Ok(KeyRef::Alias(resource.to_string()));
        }
        return Err(KmsError::KeyNotFound);
    }
    if key_ref.starts_with("alias/") {
        return Ok(KeyRef::Alias(key_ref.to_string()));
    }
    Ok(KeyRef::Key(KeyLocator {
        account_id: caller.account_id.clone(),
        region: caller.region.clone(),
        key_id: key_ref.to_string(),
    }))
}

pub(crate) fn new_id() -> String {
    Uuid::new_v4().hyphenated().to_string()
}

pub(crate) fn access_key_aad(id: &str) -> String {
    format!("access-key:{id}")
}

pub(crate) fn material_aad(key_id: &str, version_id: &str) -> String {
    format!("key-material:{key_id}:{version_id}")
}

/// Account ids are digits (Alibaba account ids are 16 digits); we accept 1–32 digits.
pub fn validate_account_id(id: &str) -> Result<(), KmsError> {
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(KmsError::invalid_because(
            "AccountId",
            "An account id is 1 to 32 digits.",
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::sqlite::SqliteStore;

    pub const T0: i64 = 1_800_000_000;

    pub fn kms() -> (Kms, Arc<ManualClock>, Caller) {
        kms_with(ServiceConfig::default())
    }

    pub fn kms_with(config: ServiceConfig) -> (Kms, Arc<ManualClock>, Caller) {
        let clock = Arc::new(ManualClock::new(T0));
        let kms = Kms::new(
            Arc::new(SqliteStore::in_memory().unwrap()),
            Arc::new(Keystore::from_root(&[3u8; 32]).unwrap()),
            clock.clone(),
            Pool::new(0),
            config,
        );
        let caller = Caller {
            account_id: "1234567890123456".into(),
            region: "cn-hangzhou".into(),
            access_key_id: "ak".into(),
        };
        (kms, clock, caller)
    }
}

/// Secrets at rest: after a workload, the SQLite file and its WAL contain none of the key
/// material, data keys, plaintexts, access-key secrets or wrapping private keys used.
#[cfg(test)]
mod at_rest {
    use super::*;
    use crate::clock::ManualClock;
    use crate::keystore::wrapping::{self, WrappingAlgorithm};
    use crate::service::crypto::EncryptionContext;
    use crate::service::keys::CreateKeyInput;
    use crate::store::sqlite::SqliteStore;
    use base64::Engine;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        needle.len() >= 8 && haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[tokio::test]
    async fn no_secret_reaches_the_database_files_in_clear() {
        let dir =
            std::env::temp_dir().join(format!("kms-at-rest-{}-{}", std::process::id(), new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("kms.db");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).unwrap());
        let kms = Kms::new(
            store.clone(),
            Arc::new(Keystore::from_root(&[9u8; 32]).unwrap()),
            Arc::new(ManualClock::new(1_800_000_000)),
            Pool::new(0),
            ServiceConfig::default(),
        );
        let caller = Caller {
            account_id: "1234".into(),
            region: "cn-hangzhou".into(),
            access_key_id: "ak".into(),
        };
        let mut secrets: Vec<Vec<u8>> = Vec::new();

        let ak = kms.create_access_key("1234", None).await.unwrap();
        secrets.push(ak.access_key_secret.as_bytes().to_vec());
        let given = kms
            .create_access_key(
                "1234",
                Some(("GIVENAK".into(), "given-secret-0123456789".into())),
            )
            .await
            .unwrap();
        secrets.push(given.access_key_secret.as_bytes().to_vec());

        let ctx = EncryptionContext::default();
        let plain = kms
            .create_key(&caller, CreateKeyInput::default())
            .await
            .unwrap();
        kms.create_key_version(&caller, &plain.key_id)
            .await
            .unwrap();
        let pt = b"plaintext that must never be stored".to_vec();
        kms.encrypt(&caller, &plain.key_id, &pt, &ctx, false)
            .await
            .unwrap();
        secrets.push(pt);
        let (_, dk) = kms
            .generate_data_key(&caller, &plain.key_id, 32, &ctx, false, true)
            .await
            .unwrap();
        secrets.push(dk.to_vec());

        let ext = kms
            .create_key(
                &caller,
                CreateKeyInput {
                    origin: Some("EXTERNAL".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let material = [0x5Au8 ^ 0x13; 32]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ i as u8)
            .collect::<Vec<_>>();
        let p = kms
            .get_parameters_for_import(&caller, &ext.key_id, "RSAES_OAEP_SHA_256", "RSA_2048")
            .await
            .unwrap();
        let wrapped = wrapping::wrap(
            &p.public_key_der,
            WrappingAlgorithm::RsaesOaepSha256,
            &material,
        )
        .unwrap();
        kms.import_key_material(&caller, &ext.key_id, &p.import_token, &wrapped, None)
            .await
            .unwrap();
        secrets.push(material.clone());

        // An asymmetric key (issue 17): its private keys are sealed PKCS#8.
        let asym = kms
            .create_key(
                &caller,
                CreateKeyInput {
                    key_spec: Some("RSA_2048".into()),
                    key_usage: Some("ENCRYPT/DECRYPT".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();

        // Every key version's material and every wrapping private key, opened from the store.
        for key in [&plain, &ext, &asym] {
            for v in store.list_versions(&key.key_id).await.unwrap() {
                let sealed = v.sealed_material.unwrap();
                secrets.push(
                    kms.open_material(&key.key_id, &v.version_id, &sealed)
                        .unwrap()
                        .to_vec(),
                );
            }
        }
        let claims = kms.keystore.read_token(&p.import_token).unwrap();
        let wk = store
            .get_wrapping_key(&claims.wrapping_key_id)
            .await
            .unwrap()
            .unwrap();
        let pkcs8 = kms
            .keystore
            .open(
                format!("wrapping-key:{}:{}", wk.wrapping_key_id, ext.key_id).as_bytes(),
                &wk.sealed_private_key,
            )
            .unwrap();
        // The RSA private key of the asymmetric key: a run from the middle of its PKCS#8.
        for v in store.list_versions(&asym.key_id).await.unwrap() {
            let sealed = v.sealed_material.unwrap();
            let der = kms
                .open_material(&asym.key_id, &v.version_id, &sealed)
                .unwrap();
            secrets.push(der[600..640].to_vec());
        }
        // The PKCS#8 as a whole and a run from the middle of it (the private exponent).
        secrets.push(pkcs8.to_vec());
        secrets.push(pkcs8[600..640].to_vec());

        let mut files = Vec::new();
        for name in ["kms.db", "kms.db-wal"] {
            if let Ok(bytes) = std::fs::read(dir.join(name)) {
                files.push((name, bytes));
            }
        }
        assert!(!files.is_empty());
        // The search itself works: what is stored in clear (a key id) is found.
        assert!(files
            .iter()
            .any(|(_, b)| contains(b, plain.key_id.as_bytes())));
        for (name, bytes) in &files {
            for s in &secrets {
                let b64 = base64::engine::general_purpose::STANDARD.encode(s);
                assert!(!contains(bytes, s), "a secret is in {name} in clear");
                assert!(
                    !contains(bytes, b64.as_bytes()),
                    "a secret is in {name} in base64"
                );
                assert!(
                    !contains(bytes, hex::encode(s).as_bytes()),
                    "a secret is in {name} in hex"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
