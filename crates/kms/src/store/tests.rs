//! One suite for every store: each case runs on SQLite (in memory) always, and on PostgreSQL
//! (a fresh database per case) whenever `KMS_TEST_DATABASE_URL` names a server
//! (`postgres://user@host:port`, as `scripts/postgres.sh` prints; `scripts/test.sh` sets it).
//! Cases go through `dyn Store`, so they test exactly what the service sees.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::*;
use crate::error::Rejection;
use crate::model::{KeySpec, KeyState, KeyUsage, Origin, ProtectionLevel};

pub(super) const ACCOUNT: &str = "1234567890123456";
const REGION: &str = "cn-hangzhou";

// ---- engines ----

fn sqlite() -> Arc<dyn Store> {
    Arc::new(sqlite::SqliteStore::in_memory().expect("in-memory SQLite"))
}

/// A fresh PostgreSQL database on the server `KMS_TEST_DATABASE_URL` names, dropped when the
/// case passes (a failed case leaves it for inspection).
struct TestDatabase {
    admin: tokio_postgres::Client,
    name: String,
    store: Arc<dyn Store>,
}

impl TestDatabase {
    async fn create() -> Option<Self> {
        let url = std::env::var("KMS_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        let mut config = postgres::parse_url(&url).expect("KMS_TEST_DATABASE_URL");
        config.dbname("postgres");
        let (admin, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect to KMS_TEST_DATABASE_URL");
        tokio::spawn(connection);
        let name = format!("kms_store_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        config.dbname(&name);
        let store = postgres::PostgresStore::connect(config, 8)
            .await
            .expect("connect the store");
        Some(Self {
            admin,
            name,
            store: Arc::new(store),
        })
    }

    /// A database with the migrations up to `version` only (then connect_again applies
    /// the rest, as an upgrade does).
    async fn create_at(version: i64) -> Option<Self> {
        let url = std::env::var("KMS_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        let mut config = postgres::parse_url(&url).expect("KMS_TEST_DATABASE_URL");
        config.dbname("postgres");
        let (admin, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let name = format!("kms_store_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let db = Self {
            admin,
            name,
            store: Arc::new(sqlite::SqliteStore::in_memory().unwrap()),
        };
        let c = db.admin_on_db().await;
        c.batch_execute(
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied BIGINT NOT NULL)",
        )
        .await
        .unwrap();
        for (v, sql) in postgres::MIGRATIONS.iter().filter(|(v, _)| *v <= version) {
            c.batch_execute(sql).await.unwrap();
            c.execute(
                "INSERT INTO schema_migrations (version, applied) VALUES ($1, 0)",
                &[v],
            )
            .await
            .unwrap();
        }
        Some(db)
    }

    /// A client on the case's database.
    async fn admin_on_db(&self) -> tokio_postgres::Client {
        let url = std::env::var("KMS_TEST_DATABASE_URL").unwrap();
        let mut config = postgres::parse_url(&url).unwrap();
        config.dbname(&self.name);
        let (c, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        c
    }

    /// Another store (another node) on the case's database.
    async fn connect_again(&self) -> Arc<dyn Store> {
        let url = std::env::var("KMS_TEST_DATABASE_URL").unwrap();
        let mut config = postgres::parse_url(&url).unwrap();
        config.dbname(&self.name);
        Arc::new(postgres::PostgresStore::connect(config, 4).await.unwrap())
    }

    async fn drop(self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await;
    }
}

/// `async fn case(store: Arc<dyn Store>)` runs as `sqlite::case` and `postgres::case`.
macro_rules! on_both_engines {
    ($($case:ident),+ $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(super::sqlite()).await;
                }
            )+
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if let Some(db) = super::TestDatabase::create().await {
                        super::$case(db.store.clone()).await;
                        db.drop().await;
                    }
                }
            )+
        }
    };
}

on_both_engines!(
    ram_entities_links_and_sessions,
    meta,
    accounts_and_access_keys,
    keys_round_trip_every_field,
    key_limit_per_account_and_region,
    update_key_commits_or_changes_nothing,
    deletion_only_when_still_due,
    sweeper_queries,
    list_keys_pages_and_filters,
    shown_state_agrees_with_the_model,
    tags,
    aliases,
    wrapping_keys,
    racing_unwrap_claims_never_exceed_the_limit,
    outstanding_wrapping_keys_per_key_are_bounded,
    console_users_and_sessions,
    nonces,
    export_import_round_trip,
    keys_are_counted_by_state_and_origin,
    concurrent_inserts_respect_the_key_limit,
    concurrent_updates_serialise,
    concurrent_aliases_respect_the_limits,
    // Secrets Manager (issue 18).
    secrets_round_trip,
    secret_updates_commit_or_change_nothing,
    secret_deletion_only_when_due,
    secret_tags,
    secrets_export_import_round_trip,
    concurrent_secret_puts_serialise,
);

// ---- records ----

fn key(id: &str, created: i64) -> KeyRecord {
    KeyRecord {
        key_id: id.into(),
        account_id: ACCOUNT.into(),
        region: REGION.into(),
        description: String::new(),
        key_spec: KeySpec::Aes256,
        key_usage: KeyUsage::EncryptDecrypt,
        origin: Origin::AliyunKms,
        protection_level: ProtectionLevel::Software,
        state: KeyState::Enabled,
        creation_date: created,
        creator: ACCOUNT.into(),
        primary_version: format!("{id}-v1"),
        delete_date: None,
        material_present: true,
        material_expire: None,
        material_commitment: None,
        deletion_protection: false,
        deletion_protection_description: String::new(),
        automatic_rotation: false,
        rotation_interval: None,
        last_rotation_date: Some(created),
        version_count: 1,
    }
}

fn first_version(k: &KeyRecord) -> KeyVersionRecord {
    KeyVersionRecord {
        key_id: k.key_id.clone(),
        version_id: k.primary_version.clone(),
        creation_date: k.creation_date,
        sealed_material: Some(vec![1, 2, 3]),
    }
}

fn loc(k: &KeyRecord) -> KeyLocator {
    KeyLocator {
        account_id: k.account_id.clone(),
        region: k.region.clone(),
        key_id: k.key_id.clone(),
    }
}

fn tag(k: &str, v: &str) -> Tag {
    Tag {
        key: k.into(),
        value: v.into(),
    }
}

async fn add(s: &dyn Store, k: &KeyRecord) {
    s.ensure_account(&k.account_id, 0).await.unwrap();
    s.insert_key(k.clone(), first_version(k), vec![], 1000)
        .await
        .unwrap();
}

fn alias(name: &str, key_id: &str) -> AliasRecord {
    AliasRecord {
        account_id: ACCOUNT.into(),
        region: REGION.into(),
        alias_name: name.into(),
        key_id: key_id.into(),
        creation_date: 5,
    }
}

fn ids(keys: &[KeyRecord]) -> Vec<&str> {
    keys.iter().map(|k| k.key_id.as_str()).collect()
}

// ---- cases ----

async fn meta(s: Arc<dyn Store>) {
    assert_eq!(s.get_meta("m").await.unwrap(), None);
    assert_eq!(s.init_meta("m", "first").await.unwrap(), "first");
    assert_eq!(s.init_meta("m", "second").await.unwrap(), "first");
    s.set_meta("m", "third").await.unwrap();
    assert_eq!(s.get_meta("m").await.unwrap().as_deref(), Some("third"));
}

async fn accounts_and_access_keys(s: Arc<dyn Store>) {
    s.ensure_account(ACCOUNT, 1).await.unwrap();
    s.ensure_account(ACCOUNT, 2).await.unwrap();
    let ak = |id: &str, created| AccessKeyRecord {
        access_key_id: id.into(),
        account_id: ACCOUNT.into(),
        sealed_secret: vec![0, 255, 7],
        enabled: true,
        creation_date: created,
        user_id: None,
    };
    s.insert_access_key(ak("B", 10)).await.unwrap();
    s.insert_access_key(ak("A", 20)).await.unwrap();
    s.insert_access_key(ak("C", 10)).await.unwrap();
    assert!(matches!(
        s.insert_access_key(ak("A", 30)).await,
        Err(StoreError::Duplicate(_))
    ));
    assert_eq!(s.get_access_key("A").await.unwrap(), Some(ak("A", 20)));
    assert_eq!(s.get_access_key("Z").await.unwrap(), None);
    let listed: Vec<String> = s
        .list_access_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.access_key_id)
        .collect();
    assert_eq!(listed, ["B", "C", "A"]);
    assert!(s.set_access_key_enabled("A", false).await.unwrap());
    assert!(!s.get_access_key("A").await.unwrap().unwrap().enabled);
    assert!(s.set_access_key_enabled("A", true).await.unwrap());
    assert!(s.get_access_key("A").await.unwrap().unwrap().enabled);
    assert!(!s.set_access_key_enabled("Z", true).await.unwrap());
    assert!(s.delete_access_key("A").await.unwrap());
    assert!(!s.delete_access_key("A").await.unwrap());
    assert_eq!(s.get_access_key("A").await.unwrap(), None);
}

async fn keys_round_trip_every_field(s: Arc<dyn Store>) {
    let mut k = key("k1", 100);
    k.description = "multi\nline — ünïcode".into();
    k.origin = Origin::External;
    k.state = KeyState::PendingDeletion;
    k.delete_date = Some(999);
    k.material_expire = Some(5000);
    k.material_commitment = Some(vec![0; 32]);
    k.deletion_protection = true;
    k.deletion_protection_description = "keep".into();
    k.automatic_rotation = true;
    k.rotation_interval = Some(604_800);
    k.last_rotation_date = None;
    let mut v = first_version(&k);
    v.sealed_material = None;
    s.ensure_account(ACCOUNT, 0).await.unwrap();
    s.insert_key(k.clone(), v.clone(), vec![tag("t", "v")], 10)
        .await
        .unwrap();
    assert_eq!(s.get_key(&loc(&k)).await.unwrap(), Some(k.clone()));
    assert_eq!(s.list_keys(ACCOUNT, REGION).await.unwrap(), vec![k.clone()]);
    assert_eq!(
        s.get_version(&k.key_id, &v.version_id).await.unwrap(),
        Some(v.clone())
    );
    assert_eq!(s.get_version(&k.key_id, "nope").await.unwrap(), None);
    assert_eq!(s.list_tags(&k.key_id).await.unwrap(), vec![tag("t", "v")]);
    // Only the owner's account and region find it.
    for other in [
        KeyLocator {
            account_id: "9999999999999999".into(),
            ..loc(&k)
        },
        KeyLocator {
            region: "cn-shanghai".into(),
            ..loc(&k)
        },
    ] {
        assert_eq!(s.get_key(&other).await.unwrap(), None);
    }
    assert!(s
        .list_keys(ACCOUNT, "cn-shanghai")
        .await
        .unwrap()
        .is_empty());
}

async fn key_limit_per_account_and_region(s: Arc<dyn Store>) {
    s.ensure_account(ACCOUNT, 0).await.unwrap();
    for i in 0..2 {
        let k = key(&format!("k{i}"), i);
        s.insert_key(k.clone(), first_version(&k), vec![], 2)
            .await
            .unwrap();
    }
    let third = key("k2", 2);
    let refused = s
        .insert_key(third.clone(), first_version(&third), vec![tag("a", "b")], 2)
        .await;
    assert_eq!(
        refused,
        Err(StoreError::LimitExceeded(
            "at most 2 keys per account and region".into()
        ))
    );
    assert_eq!(s.get_key(&loc(&third)).await.unwrap(), None);
    assert!(s.list_tags("k2").await.unwrap().is_empty());
    // Another region has its own count.
    let elsewhere = KeyRecord {
        region: "cn-shanghai".into(),
        ..third
    };
    s.insert_key(elsewhere.clone(), first_version(&elsewhere), vec![], 2)
        .await
        .unwrap();
}

async fn update_key_commits_or_changes_nothing(s: Arc<dyn Store>) {
    let k = key("k", 1);
    add(s.as_ref(), &k).await;
    // A change with a new version and new material on the first.
    let updated = s
        .update_key(
            &loc(&k),
            Box::new(|k| {
                k.description = "changed".into();
                k.version_count = 2;
                k.primary_version = "k-v2".into();
                Ok(vec![
                    VersionChange::Insert(KeyVersionRecord {
                        key_id: "k".into(),
                        version_id: "k-v2".into(),
                        creation_date: 1,
                        sealed_material: Some(vec![9]),
                    }),
                    VersionChange::SetMaterial {
                        version_id: "k-v1".into(),
                        sealed_material: None,
                    },
                ])
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.description, "changed");
    assert_eq!(s.get_key(&loc(&k)).await.unwrap(), Some(updated.clone()));
    let versions = s.list_versions("k").await.unwrap();
    // Same creation second: insertion order.
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version_id.as_str(), v.sealed_material.clone()))
            .collect::<Vec<_>>(),
        [("k-v1", None), ("k-v2", Some(vec![9]))]
    );
    // A refused change writes nothing, not even what the closure did before refusing.
    let refused = s
        .update_key(
            &loc(&k),
            Box::new(|k| {
                k.description = "never".into();
                Err(KmsError::Rejected(Rejection::Disabled))
            }),
        )
        .await;
    assert_eq!(
        refused,
        Err(StoreError::Refused(KmsError::Rejected(Rejection::Disabled)))
    );
    assert_eq!(s.get_key(&loc(&k)).await.unwrap(), Some(updated));
    // A failing version change rolls back the key row too (the version exists already).
    let failed = s
        .update_key(
            &loc(&k),
            Box::new(|k| {
                k.description = "never".into();
                Ok(vec![VersionChange::Insert(KeyVersionRecord {
                    key_id: "k".into(),
                    version_id: "k-v2".into(),
                    creation_date: 2,
                    sealed_material: None,
                })])
            }),
        )
        .await;
    assert!(
        matches!(failed, Err(StoreError::Duplicate(_))),
        "{failed:?}"
    );
    assert_eq!(
        s.get_key(&loc(&k)).await.unwrap().unwrap().description,
        "changed"
    );
    // No such key: no call.
    let missing = KeyLocator {
        key_id: "nope".into(),
        ..loc(&k)
    };
    let called = s
        .update_key(&missing, Box::new(|_| panic!("called for a missing key")))
        .await;
    assert_eq!(called, Ok(None));
}

async fn deletion_only_when_still_due(s: Arc<dyn Store>) {
    let mut k = key("k", 1);
    k.state = KeyState::PendingDeletion;
    k.delete_date = Some(100);
    add(s.as_ref(), &k).await;
    s.put_tags("k", vec![tag("a", "b")], 10).await.unwrap();
    s.create_alias(alias("alias/k", "k"), 10).await.unwrap();
    s.insert_wrapping_key(
        WrappingKeyRecord {
            wrapping_key_id: "w".into(),
            key_id: "k".into(),
            account_id: ACCOUNT.into(),
            algorithm: "RSAES_OAEP_SHA_256".into(),
            sealed_private_key: vec![1],
            expires: 1000,
        },
        100,
    )
    .await
    .unwrap();
    assert!(s.due_deletions(99).await.unwrap().is_empty());
    assert!(!s.delete_key_if_due(&loc(&k), 99).await.unwrap());
    assert_eq!(s.due_deletions(100).await.unwrap(), vec![loc(&k)]);
    // A cancellation that wins the race is never undone.
    s.update_key(
        &loc(&k),
        Box::new(|k| {
            k.state = KeyState::Enabled;
            k.delete_date = None;
            Ok(vec![])
        }),
    )
    .await
    .unwrap();
    assert!(!s.delete_key_if_due(&loc(&k), 200).await.unwrap());
    assert!(s.due_deletions(200).await.unwrap().is_empty());
    s.update_key(
        &loc(&k),
        Box::new(|k| {
            k.state = KeyState::PendingDeletion;
            k.delete_date = Some(150);
            Ok(vec![])
        }),
    )
    .await
    .unwrap();
    assert!(s.delete_key_if_due(&loc(&k), 200).await.unwrap());
    assert!(!s.delete_key_if_due(&loc(&k), 200).await.unwrap());
    // Versions, tags, aliases and wrapping keys go with it, and the count drops.
    assert_eq!(s.get_key(&loc(&k)).await.unwrap(), None);
    assert!(s.list_versions("k").await.unwrap().is_empty());
    assert!(s.list_tags("k").await.unwrap().is_empty());
    assert_eq!(s.get_alias(ACCOUNT, REGION, "alias/k").await.unwrap(), None);
    assert_eq!(s.get_wrapping_key("w").await.unwrap(), None);
    let again = key("k2", 2);
    s.insert_key(again.clone(), first_version(&again), vec![], 1)
        .await
        .unwrap();
}

async fn sweeper_queries(s: Arc<dyn Store>) {
    let mut rotating = key("rot", 0);
    rotating.automatic_rotation = true;
    rotating.rotation_interval = Some(100);
    rotating.last_rotation_date = Some(50);
    let disabled = KeyRecord {
        key_id: "rot-disabled".into(),
        state: KeyState::Disabled,
        ..rotating.clone()
    };
    let mut expiring = key("ext", 0);
    expiring.origin = Origin::External;
    expiring.material_expire = Some(300);
    let mut removed = expiring.clone();
    removed.key_id = "ext-removed".into();
    removed.material_present = false;
    for k in [&rotating, &disabled, &expiring, &removed, &key("plain", 0)] {
        add(s.as_ref(), k).await;
    }
    assert!(s.due_rotations(149).await.unwrap().is_empty());
    assert_eq!(s.due_rotations(150).await.unwrap(), vec![loc(&rotating)]);
    assert!(s.due_material_expiry(299).await.unwrap().is_empty());
    assert_eq!(
        s.due_material_expiry(300).await.unwrap(),
        vec![loc(&expiring)]
    );
}

async fn list_keys_pages_and_filters(s: Arc<dyn Store>) {
    // k0..k8 created in that order; k4 is past its deletion date at `NOW`, k6 is EXTERNAL.
    const NOW: i64 = 1000;
    for i in 0..9 {
        let mut k = key(&format!("k{i}"), i);
        if i == 4 {
            k.state = KeyState::PendingDeletion;
            k.delete_date = Some(NOW);
        }
        if i == 6 {
            k.origin = Origin::External;
        }
        add(s.as_ref(), &k).await;
    }
    let listed = ["k0", "k1", "k2", "k3", "k5", "k6", "k7", "k8"];
    let page = |offset, limit| {
        let s = s.clone();
        async move {
            let (keys, total) = s
                .list_keys_page(ACCOUNT, REGION, NOW, &[], offset, limit)
                .await
                .unwrap();
            (
                keys.into_iter().map(|k| k.key_id).collect::<Vec<_>>(),
                total,
            )
        }
    };
    // Every page of every size, from the front and (second half) from the back.
    for size in 1..=9 {
        for offset in (0..10).step_by(size) {
            let (got, total) = page(offset, size).await;
            assert_eq!(total, listed.len());
            let want: Vec<&str> = listed.iter().skip(offset).take(size).copied().collect();
            assert_eq!(got, want, "offset {offset} size {size}");
        }
    }
    // One second earlier k4 is still listed.
    let (keys, total) = s
        .list_keys_page(ACCOUNT, REGION, NOW - 1, &[], 0, 100)
        .await
        .unwrap();
    assert_eq!((keys.len(), total), (9, 9));
    // Filters: OR within, AND across.
    let filtered = |filters: Vec<(KeyField, Vec<&'static str>)>| {
        let s = s.clone();
        let filters: Vec<(KeyField, Vec<String>)> = filters
            .into_iter()
            .map(|(f, v)| (f, v.into_iter().map(str::to_string).collect()))
            .collect();
        async move {
            let (keys, total) = s
                .list_keys_page(ACCOUNT, REGION, NOW, &filters, 0, 100)
                .await
                .unwrap();
            assert_eq!(keys.len(), total);
            keys.into_iter().map(|k| k.key_id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        filtered(vec![(KeyField::Origin, vec!["EXTERNAL"])]).await,
        ["k6"]
    );
    assert_eq!(
        filtered(vec![(KeyField::Origin, vec!["EXTERNAL", "Aliyun_KMS"])])
            .await
            .len(),
        8
    );
    assert_eq!(
        filtered(vec![
            (KeyField::Spec, vec!["Aliyun_AES_256"]),
            (KeyField::Usage, vec!["ENCRYPT/DECRYPT"]),
            (KeyField::ProtectionLevel, vec!["SOFTWARE"]),
            (KeyField::Origin, vec!["Aliyun_KMS"]),
        ])
        .await,
        ["k0", "k1", "k2", "k3", "k5", "k7", "k8"]
    );
    assert!(filtered(vec![(KeyField::ProtectionLevel, vec!["HSM"])])
        .await
        .is_empty());
    // A value that looks like SQL is just a value.
    assert!(filtered(vec![(KeyField::Spec, vec!["x') OR ('1'='1"])])
        .await
        .is_empty());
    // With a filter, past-due keys are left out too.
    assert!(filtered(vec![(KeyField::State, vec!["PendingDeletion"])])
        .await
        .is_empty());
    // Filtered paging.
    let filters = vec![(KeyField::Origin, vec!["Aliyun_KMS".to_string()])];
    let (keys, total) = s
        .list_keys_page(ACCOUNT, REGION, NOW, &filters, 5, 3)
        .await
        .unwrap();
    assert_eq!((ids(&keys), total), (vec!["k7", "k8"], 7));
}

async fn shown_state_agrees_with_the_model(s: Arc<dyn Store>) {
    // Every combination of state, material presence and expiry (none, past, exactly now,
    // future): filtering by each state in SQL finds exactly the keys whose state reads so
    // by KeyRecord::as_of, and the rows come back as they read.
    const NOW: i64 = 500;
    let mut all = Vec::new();
    for (si, state) in KeyState::ALL.into_iter().enumerate() {
        for present in [false, true] {
            for (ei, expire) in [None, Some(NOW - 1), Some(NOW), Some(NOW + 1)]
                .into_iter()
                .enumerate()
            {
                let mut k = key(&format!("k{si}{}{ei}", u8::from(present)), all.len() as i64);
                k.origin = Origin::External;
                k.state = state;
                k.material_present = present;
                k.material_expire = expire;
                if state == KeyState::PendingDeletion {
                    k.delete_date = Some(NOW + 100);
                }
                add(s.as_ref(), &k).await;
                all.push(k);
            }
        }
    }
    for state in KeyState::ALL {
        let want: BTreeSet<String> = all
            .iter()
            .cloned()
            .filter_map(|mut k| {
                k.as_of(NOW);
                (k.state == state).then_some(k.key_id)
            })
            .collect();
        let (keys, total) = s
            .list_keys_page(
                ACCOUNT,
                REGION,
                NOW,
                &[(KeyField::State, vec![state.as_str().to_string()])],
                0,
                1000,
            )
            .await
            .unwrap();
        assert_eq!(total, want.len(), "{state:?}");
        for k in &keys {
            assert_eq!(k.state, state, "{} as {state:?}", k.key_id);
            assert!(!k.material_expired(NOW), "{}", k.key_id);
        }
        assert_eq!(
            keys.into_iter().map(|k| k.key_id).collect::<BTreeSet<_>>(),
            want,
            "{state:?}"
        );
    }
    // Unfiltered rows read the same way.
    let (keys, _) = s
        .list_keys_page(ACCOUNT, REGION, NOW, &[], 0, 1000)
        .await
        .unwrap();
    let expected: Vec<KeyRecord> = all
        .into_iter()
        .map(|mut k| {
            k.as_of(NOW);
            k
        })
        .collect();
    assert_eq!(keys, expected);
}

async fn tags(s: Arc<dyn Store>) {
    add(s.as_ref(), &key("k1", 1)).await;
    add(s.as_ref(), &key("k2", 2)).await;
    let mut other = key("k3", 3);
    other.region = "cn-shanghai".into();
    add(s.as_ref(), &other).await;
    s.put_tags("k1", vec![tag("b", "1"), tag("a", "1")], 3)
        .await
        .unwrap();
    s.put_tags("k1", vec![tag("a", "2")], 3).await.unwrap();
    assert_eq!(
        s.list_tags("k1").await.unwrap(),
        [tag("a", "2"), tag("b", "1")]
    );
    // Over the limit: refused, and none of the batch is written.
    assert_eq!(
        s.put_tags("k1", vec![tag("a", "3"), tag("c", "1"), tag("d", "1")], 3)
            .await,
        Err(StoreError::LimitExceeded("at most 3 tags per key".into()))
    );
    assert_eq!(
        s.list_tags("k1").await.unwrap(),
        [tag("a", "2"), tag("b", "1")]
    );
    s.put_tags("k2", vec![tag("z", "")], 3).await.unwrap();
    s.put_tags("k3", vec![tag("elsewhere", "x")], 3)
        .await
        .unwrap();
    assert_eq!(
        s.list_account_tags(ACCOUNT, REGION).await.unwrap(),
        [
            ("k1".to_string(), tag("a", "2")),
            ("k1".to_string(), tag("b", "1")),
            ("k2".to_string(), tag("z", "")),
        ]
    );
    s.remove_tags("k1", Some(vec!["a".into(), "missing".into()]))
        .await
        .unwrap();
    assert_eq!(s.list_tags("k1").await.unwrap(), [tag("b", "1")]);
    s.remove_tags("k1", None).await.unwrap();
    assert!(s.list_tags("k1").await.unwrap().is_empty());
    assert_eq!(s.list_tags("k2").await.unwrap(), [tag("z", "")]);
}

async fn aliases(s: Arc<dyn Store>) {
    add(s.as_ref(), &key("k1", 1)).await;
    add(s.as_ref(), &key("k2", 2)).await;
    s.create_alias(alias("alias/b", "k1"), 2).await.unwrap();
    s.create_alias(alias("alias/a", "k1"), 2).await.unwrap();
    // The name is checked before the limit.
    assert_eq!(
        s.create_alias(alias("alias/a", "k1"), 2).await,
        Err(StoreError::AliasExists)
    );
    assert_eq!(
        s.create_alias(alias("alias/c", "k1"), 2).await,
        Err(StoreError::LimitExceeded(
            "at most 2 aliases per key".into()
        ))
    );
    assert_eq!(
        s.get_alias(ACCOUNT, REGION, "alias/a").await.unwrap(),
        Some(alias("alias/a", "k1"))
    );
    assert_eq!(
        s.get_alias(ACCOUNT, "cn-shanghai", "alias/a")
            .await
            .unwrap(),
        None
    );
    // The same name in another region is another alias.
    s.create_alias(
        AliasRecord {
            region: "cn-shanghai".into(),
            ..alias("alias/a", "k1")
        },
        10,
    )
    .await
    .unwrap();
    // Re-pointing: the limit counts on the new key only.
    assert!(s
        .update_alias(ACCOUNT, REGION, "alias/a", "k1", 2)
        .await
        .unwrap());
    assert!(s
        .update_alias(ACCOUNT, REGION, "alias/a", "k2", 1)
        .await
        .unwrap());
    assert_eq!(
        s.update_alias(ACCOUNT, REGION, "alias/b", "k2", 1).await,
        Err(StoreError::LimitExceeded(
            "at most 1 aliases per key".into()
        ))
    );
    assert!(!s
        .update_alias(ACCOUNT, REGION, "alias/none", "k2", 10)
        .await
        .unwrap());
    let names = |v: Vec<AliasRecord>| v.into_iter().map(|a| a.alias_name).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_aliases(ACCOUNT, REGION, None).await.unwrap()),
        ["alias/a", "alias/b"]
    );
    assert_eq!(
        names(s.list_aliases(ACCOUNT, REGION, Some("k2")).await.unwrap()),
        ["alias/a"]
    );
    assert!(s
        .list_aliases(ACCOUNT, REGION, Some("k3"))
        .await
        .unwrap()
        .is_empty());
    assert!(s.delete_alias(ACCOUNT, REGION, "alias/a").await.unwrap());
    assert!(!s.delete_alias(ACCOUNT, REGION, "alias/a").await.unwrap());
    assert_eq!(
        names(s.list_aliases(ACCOUNT, REGION, None).await.unwrap()),
        ["alias/b"]
    );
}

/// 200 claims at once on one wrapping key with a limit of 10: exactly 10 are granted, on
/// every engine; failures then withdraw it.
async fn racing_unwrap_claims_never_exceed_the_limit(s: Arc<dyn Store>) {
    add(s.as_ref(), &key("k", 1)).await;
    let wk = WrappingKeyRecord {
        wrapping_key_id: "w".into(),
        key_id: "k".into(),
        account_id: ACCOUNT.into(),
        algorithm: "RSAES_OAEP_SHA_256".into(),
        sealed_private_key: vec![7; 64],
        expires: 100,
    };
    s.insert_wrapping_key(wk.clone(), 100).await.unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.claim_unwrap_attempt("w", "k", "RSAES_OAEP_SHA_256", 10)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        if let Some(got) = t.await.unwrap() {
            assert_eq!(got, wk);
            granted += 1;
        }
    }
    assert_eq!(granted, 10);
    // Every granted attempt fails: the last one withdraws the wrapping key, exactly once.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.finish_unwrap_attempt("w", false, 10).await.unwrap() })
        })
        .collect();
    let mut withdrawn = 0;
    for t in tasks {
        withdrawn += usize::from(t.await.unwrap());
    }
    assert_eq!(withdrawn, 1);
    assert_eq!(s.get_wrapping_key("w").await.unwrap(), None);
}

/// A key keeps its newest `max` wrapping keys: each one beyond withdraws the oldest (never
/// the new one), also when issued at once; other keys are untouched.
async fn outstanding_wrapping_keys_per_key_are_bounded(s: Arc<dyn Store>) {
    add(s.as_ref(), &key("k", 1)).await;
    add(s.as_ref(), &key("other", 2)).await;
    let wk = |id: String, key: &str| WrappingKeyRecord {
        wrapping_key_id: id,
        key_id: key.into(),
        account_id: ACCOUNT.into(),
        algorithm: "RSAES_OAEP_SHA_256".into(),
        sealed_private_key: vec![7; 8],
        // All in the same second: the order of issue is not a matter of the clock.
        expires: 1000,
    };
    s.insert_wrapping_key(wk("o".into(), "other"), 3)
        .await
        .unwrap();
    // Ids that sort against the order of issue.
    let ids: Vec<String> = (0..6).map(|i| format!("w{}", 9 - i)).collect();
    let mut withdrawn = 0;
    for id in &ids {
        withdrawn += s.insert_wrapping_key(wk(id.clone(), "k"), 3).await.unwrap();
    }
    assert_eq!(withdrawn, 3);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            s.get_wrapping_key(id).await.unwrap().is_some(),
            i >= 3,
            "{id}"
        );
    }
    assert!(s.get_wrapping_key("o").await.unwrap().is_some());
    // A burst: 40 at once still leaves exactly 3, all of them from the burst.
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = s.clone();
            let w = wk(format!("b{i:02}"), "k");
            tokio::spawn(async move { s.insert_wrapping_key(w, 3).await.unwrap() })
        })
        .collect();
    let mut withdrawn = 0;
    for t in tasks {
        withdrawn += t.await.unwrap();
    }
    assert_eq!(withdrawn, 40);
    let dump = s.export().await.unwrap();
    let left: Vec<&str> = dump
        .wrapping_keys
        .iter()
        .filter(|(w, _)| w.key_id == "k")
        .map(|(w, _)| w.wrapping_key_id.as_str())
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.iter().all(|id| id.starts_with('b')), "{left:?}");
    // The newest issue survives its own insert.
    s.insert_wrapping_key(wk("last".into(), "k"), 1)
        .await
        .unwrap();
    assert!(s.get_wrapping_key("last").await.unwrap().is_some());
    assert_eq!(
        s.export()
            .await
            .unwrap()
            .wrapping_keys
            .iter()
            .filter(|(w, _)| w.key_id == "k")
            .count(),
        1
    );
}

async fn wrapping_keys(s: Arc<dyn Store>) {
    add(s.as_ref(), &key("k", 1)).await;
    let wk = |id: &str, expires| WrappingKeyRecord {
        wrapping_key_id: id.into(),
        key_id: "k".into(),
        account_id: ACCOUNT.into(),
        algorithm: "RSAES_OAEP_SHA_256".into(),
        sealed_private_key: vec![7; 64],
        expires,
    };
    for (id, expires) in [("w1", 100), ("w2", 200), ("w3", 300)] {
        assert_eq!(
            s.insert_wrapping_key(wk(id, expires), 100).await.unwrap(),
            0
        );
    }
    assert_eq!(s.get_wrapping_key("w1").await.unwrap(), Some(wk("w1", 100)));
    assert_eq!(s.get_wrapping_key("none").await.unwrap(), None);
    let claim = |id: &'static str, key: &'static str, alg: &'static str| {
        let s = s.clone();
        async move { s.claim_unwrap_attempt(id, key, alg, 3).await.unwrap() }
    };
    const OAEP: &str = "RSAES_OAEP_SHA_256";
    // A claim names the wrapping key, its key and its algorithm; anything else claims nothing.
    assert_eq!(claim("w1", "k", OAEP).await, Some(wk("w1", 100)));
    assert_eq!(claim("w1", "other", OAEP).await, None);
    assert_eq!(claim("w1", "k", "RSAES_PKCS1_V1_5").await, None);
    assert_eq!(claim("none", "k", OAEP).await, None);
    // A success is given back: it never uses up the token.
    for _ in 0..5 {
        assert!(!s.finish_unwrap_attempt("w1", true, 3).await.unwrap());
        assert_eq!(claim("w1", "k", OAEP).await, Some(wk("w1", 100)));
    }
    // Failures stay counted; at the third the wrapping key is withdrawn.
    assert!(!s.finish_unwrap_attempt("w1", false, 3).await.unwrap());
    assert!(claim("w1", "k", OAEP).await.is_some());
    assert!(!s.finish_unwrap_attempt("w1", false, 3).await.unwrap());
    assert!(claim("w1", "k", OAEP).await.is_some());
    assert!(s.finish_unwrap_attempt("w1", false, 3).await.unwrap());
    assert_eq!(s.get_wrapping_key("w1").await.unwrap(), None);
    assert_eq!(claim("w1", "k", OAEP).await, None);
    assert!(!s.finish_unwrap_attempt("w1", false, 3).await.unwrap());
    // Claims in flight count: with three taken, a fourth is refused until one is settled.
    for _ in 0..3 {
        assert!(claim("w2", "k", OAEP).await.is_some());
    }
    assert_eq!(claim("w2", "k", OAEP).await, None);
    assert!(!s.finish_unwrap_attempt("w2", true, 3).await.unwrap());
    assert!(claim("w2", "k", OAEP).await.is_some());
    for _ in 0..3 {
        s.finish_unwrap_attempt("w2", true, 3).await.unwrap();
    }
    // Expired before `now`: purged; expiring at `now`: kept.
    assert_eq!(s.purge_wrapping_keys(200).await.unwrap(), 0);
    assert_eq!(s.purge_wrapping_keys(201).await.unwrap(), 1);
    assert_eq!(s.get_wrapping_key("w3").await.unwrap(), Some(wk("w3", 300)));
}

async fn console_users_and_sessions(s: Arc<dyn Store>) {
    let user = ConsoleUserRecord {
        user_name: "alice".into(),
        account_id: ACCOUNT.into(),
        password_hash: "pbkdf2-sha256$1$AA==$AA==".into(),
        creation_date: 10,
    };
    assert!(s.insert_console_user(user.clone()).await.unwrap());
    assert!(!s
        .insert_console_user(ConsoleUserRecord {
            password_hash: "other".into(),
            ..user.clone()
        })
        .await
        .unwrap());
    assert_eq!(
        s.get_console_user("alice").await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(s.list_console_users().await.unwrap(), vec![user]);
    assert!(s.delete_console_user("alice").await.unwrap());
    assert!(!s.delete_console_user("alice").await.unwrap());
    assert_eq!(s.get_console_user("alice").await.unwrap(), None);

    let sess = |id: &str, last_seen| ConsoleSessionRecord {
        id_hash: id.into(),
        account_id: ACCOUNT.into(),
        principal: "console-user:alice".into(),
        created: 100,
        last_seen,
    };
    s.insert_console_session(sess("a", 100)).await.unwrap();
    s.insert_console_session(sess("b", 200)).await.unwrap();
    s.touch_console_session("a", 150).await.unwrap();
    s.touch_console_session("a", 120).await.unwrap(); // never moves back
    s.touch_console_session("gone", 120).await.unwrap();
    assert_eq!(
        s.get_console_session("a").await.unwrap(),
        Some(sess("a", 150))
    );
    assert_eq!(s.purge_console_sessions(160).await.unwrap(), 1);
    assert_eq!(s.get_console_session("a").await.unwrap(), None);
    s.delete_console_session("b").await.unwrap();
    s.delete_console_session("b").await.unwrap();
    assert_eq!(s.get_console_session("b").await.unwrap(), None);
}

async fn nonces(s: Arc<dyn Store>) {
    let now = crate::clock::system_now();
    if !s.shares_nonces() {
        // One process: the in-memory cache decides; the store always says yes.
        assert!(s.claim_nonce(b"n", now).await.unwrap());
        assert!(s.claim_nonce(b"n", now).await.unwrap());
        assert_eq!(s.purge_nonces(now).await.unwrap(), 0);
        return;
    }
    assert!(s.claim_nonce(b"n1", now).await.unwrap());
    assert!(!s.claim_nonce(b"n1", now).await.unwrap());
    // Many claims at once (batched): each digest is granted exactly once.
    let claims = (0..200).map(|i| {
        let s = s.clone();
        async move { s.claim_nonce(&[(i % 50) as u8, 0xAA], now).await }
    });
    let granted = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(granted, 50);
    // The oldest and the newest timestamps the time check accepts are held through every
    // purge while they could still pass it (plus the clock margin): purges that drop the
    // neighbouring buckets' partitions never take theirs.
    let window = NONCE_WINDOW_SECONDS;
    let (old, new) = (now - window, now + window);
    assert!(s.claim_nonce(b"oldest", old).await.unwrap());
    // (The margin: a partition is kept 5 minutes longer, for the nodes' clocks.)
    let margin = 300;
    for later in (old..=now + window + margin).step_by(20) {
        s.purge_nonces(later).await.unwrap();
        if later <= old + window + margin {
            assert!(!s.claim_nonce(b"oldest", old).await.unwrap(), "at {later}");
        }
        assert!(!s.claim_nonce(b"n1", now).await.unwrap(), "at {later}");
    }
    assert!(s.claim_nonce(b"newest", new).await.unwrap());
    for later in (now..=new + window + margin).step_by(20) {
        s.purge_nonces(later).await.unwrap();
        assert!(!s.claim_nonce(b"newest", new).await.unwrap(), "at {later}");
    }
    // Long after its window (the time check's 15 minutes, the 5-minute clock margin and the
    // rest of its bucket) a claim's partition is truncated and the claim forgotten.
    // The last purges above were past n1's: forgotten already.
    assert!(s.claim_nonce(b"n1", now).await.unwrap());
    let long_after = now + window + 1050;
    assert!(s.purge_nonces(long_after).await.unwrap() >= 1);
    assert!(s.claim_nonce(b"n1", now).await.unwrap());
}

/// Two nodes (two stores, each with its own pools and nonce worker) on one database: the
/// same claim sent to both at once is granted to exactly one, every time; a replay after a
/// node "restarts" (a third store on the same database) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_nonce_claims_across_nodes() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let second = db.connect_again().await;
    let now = crate::clock::system_now();
    let mut claims = Vec::new();
    for i in 0u32..300 {
        let digest = i.to_be_bytes();
        let ts = now - 900 + i64::from(i) * 6;
        let (a, b) = (db.store.clone(), second.clone());
        claims.push(async move {
            let (x, y) = tokio::join!(a.claim_nonce(&digest, ts), b.claim_nonce(&digest, ts));
            (x.unwrap(), y.unwrap())
        });
    }
    for (i, (x, y)) in futures_util::future::join_all(claims)
        .await
        .into_iter()
        .enumerate()
    {
        assert!(x ^ y, "claim {i}: {x} {y}");
    }
    drop(second);
    let restarted = db.connect_again().await;
    for i in 0u32..300 {
        let ts = now - 900 + i64::from(i) * 6;
        assert!(!restarted.claim_nonce(&i.to_be_bytes(), ts).await.unwrap());
    }
    db.drop().await;
}

/// The claims of `BURST_TASKS` tasks of `BURST_EACH` claims each (2,048 in all) on 700
/// digests (each claimed two or three times, from different tasks, in two tables), sent
/// alternately to `stores`; returns (digest index, answer) for every claim.
const BURST_TASKS: u32 = 64;
const BURST_EACH: u32 = 32;
const BURST_DISTINCT: u32 = 700;

/// Claim `j` of task `t`, signed at `now` or five minutes before it (two tables). `now` is
/// read once per test: read per claim, a bucket boundary crossed between the burst and the
/// re-check would move the re-check to another table, where it is (rightly) new.
fn burst_claim(now: i64, t: u32, j: u32) -> (u32, [u8; 8], i64) {
    let d = ((t * BURST_EACH + j) * 389) % BURST_DISTINCT;
    let mut digest = [0xB5u8; 8];
    digest[4..].copy_from_slice(&d.to_be_bytes());
    let ts = now - i64::from(d % 2) * 300;
    (d, digest, ts)
}

/// The hand-off under a concurrent burst on two nodes: 2,048 claims (64 tasks, duplicates
/// across tasks and nodes, two tables) are all answered, without error, and each digest is
/// granted exactly once; claimed again on either node, every one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_nonce_burst_on_two_nodes() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let stores = [db.store.clone(), db.connect_again().await];
    let now = crate::clock::system_now();
    let tasks: Vec<_> = (0..BURST_TASKS)
        .map(|t| {
            let stores = stores.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                for j in 0..BURST_EACH {
                    let (d, digest, ts) = burst_claim(now, t, j);
                    let store = &stores[((t + j) % 2) as usize];
                    out.push((d, store.claim_nonce(&digest, ts).await));
                }
                out
            })
        })
        .collect();
    let mut granted = vec![0u32; BURST_DISTINCT as usize];
    let mut answered = 0;
    for task in tasks {
        for (d, answer) in task.await.unwrap() {
            answered += 1;
            if answer.unwrap() {
                granted[d as usize] += 1;
            }
        }
    }
    assert_eq!(answered, BURST_TASKS * BURST_EACH);
    assert!(granted.iter().all(|&n| n == 1), "{granted:?}");
    for t in 0..BURST_TASKS {
        for j in 0..BURST_EACH {
            let (d, digest, ts) = burst_claim(now, t, j);
            for store in &stores {
                assert!(!store.claim_nonce(&digest, ts).await.unwrap(), "digest {d}");
            }
        }
    }
    db.drop().await;
}

/// The database goes away in the middle of a burst (connections refused, every session
/// terminated): every claim is still answered (within the pool's timeouts), those made
/// after are errors, and no digest is ever granted twice; once the database is back, every
/// claim that was granted is refused as a replay (it was committed before it was answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_nonce_burst_fails_closed_when_the_database_goes() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = db.store.clone();
    let now = crate::clock::system_now();
    let done = Arc::new(AtomicU32::new(0));
    // Each task stops a quarter of the way in until the database is gone, so that part of
    // the burst always comes after (on a fast machine it could otherwise finish first).
    let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> = (0..BURST_TASKS)
        .map(|t| {
            let (store, done, gone) = (store.clone(), done.clone(), gone.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                for j in 0..BURST_EACH {
                    if j == BURST_EACH / 4 {
                        while !gone.load(Ordering::Relaxed) {
                            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        }
                    }
                    let (d, digest, ts) = burst_claim(now, t, j);
                    let answer = tokio::time::timeout(
                        std::time::Duration::from_secs(60),
                        store.claim_nonce(&digest, ts),
                    )
                    .await
                    .expect("every claim is answered");
                    done.fetch_add(1, Ordering::Relaxed);
                    out.push((d, answer));
                    // Slow enough for the database to go mid-burst.
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
                out
            })
        })
        .collect();
    while done.load(Ordering::Relaxed) < 300 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let name = db.name.clone();
    db.admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await
        .unwrap();
    // Terminating is asynchronous, and a session that was starting may still get in: again
    // until no session of the database is left.
    loop {
        let left: i64 = db
            .admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let after_kill = done.load(Ordering::Relaxed);
    gone.store(true, Ordering::Relaxed);
    let mut granted = vec![0u32; BURST_DISTINCT as usize];
    let (mut answered, mut errors) = (0, 0);
    for task in tasks {
        for (d, answer) in task.await.unwrap() {
            answered += 1;
            match answer {
                Ok(true) => granted[d as usize] += 1,
                Ok(false) => {}
                Err(e) => {
                    assert!(matches!(e, StoreError::Database(_)), "{e:?}");
                    errors += 1;
                }
            }
        }
    }
    assert_eq!(answered, BURST_TASKS * BURST_EACH);
    assert!(after_kill < answered, "the database went mid-burst");
    assert!(
        errors >= answered - after_kill - 64,
        "{errors} errors, {after_kill} answered before, {answered} in all"
    );
    assert!(granted.iter().all(|&n| n <= 1), "{granted:?}");
    assert!(granted.contains(&1));
    db.admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    let again = db.connect_again().await;
    for t in 0..BURST_TASKS {
        for j in 0..BURST_EACH {
            let (d, digest, ts) = burst_claim(now, t, j);
            if granted[d as usize] == 1 {
                assert!(!again.claim_nonce(&digest, ts).await.unwrap(), "digest {d}");
                assert!(!store.claim_nonce(&digest, ts).await.unwrap(), "digest {d}");
            }
        }
    }
    db.drop().await;
}

/// Upgrading a database whose claims are in the old `nonces` table (BYTEA digest, `until`):
/// after migration 0009 their replays are refused, whatever timestamp in the window the
/// original request carried.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_nonce_claims_survive_the_upgrade() {
    let Some(db) = TestDatabase::create_at(8).await else {
        return;
    };
    let now = crate::clock::system_now();
    let digest = [7u8; 16];
    // A request signed at `ts` and claimed at `now` kept until max(ts, now) + 900.
    let signed = [now - 900, now - 450, now, now + 900];
    for (i, ts) in signed.iter().enumerate() {
        let mut d = digest;
        d[0] = i as u8;
        let until = (*ts).max(now) + 900;
        db.admin_on_db()
            .await
            .execute(
                "INSERT INTO nonces (digest, until) VALUES ($1, $2)",
                &[&d.to_vec(), &until],
            )
            .await
            .unwrap();
    }
    let upgraded = db.connect_again().await;
    for (i, ts) in signed.iter().enumerate() {
        let mut d = digest;
        d[0] = i as u8;
        assert!(!upgraded.claim_nonce(&d, *ts).await.unwrap(), "claim {i}");
    }
    assert!(upgraded.claim_nonce(&[9u8; 16], now).await.unwrap());
    db.drop().await;
}

/// Fills a store through its operations, with every kind of row.
async fn fill(s: &dyn Store) {
    s.set_meta("root_key_check", "abc").await.unwrap();
    s.ensure_account(ACCOUNT, 7).await.unwrap();
    s.insert_access_key(AccessKeyRecord {
        access_key_id: "LTAI1".into(),
        account_id: ACCOUNT.into(),
        sealed_secret: vec![1, 2],
        enabled: false,
        creation_date: 8,
        user_id: None,
    })
    .await
    .unwrap();
    let mut ext = key("k-ext", 2);
    ext.origin = Origin::External;
    ext.material_present = false;
    ext.state = KeyState::PendingImport;
    let mut v = first_version(&ext);
    v.sealed_material = None;
    s.insert_key(ext.clone(), v, vec![tag("env", "prod")], 10)
        .await
        .unwrap();
    let k = key("k-kms", 1);
    s.insert_key(k.clone(), first_version(&k), vec![], 10)
        .await
        .unwrap();
    s.update_key(
        &loc(&k),
        Box::new(|k| {
            k.version_count = 2;
            Ok(vec![VersionChange::Insert(KeyVersionRecord {
                key_id: "k-kms".into(),
                version_id: "k-kms-v2".into(),
                creation_date: 1,
                sealed_material: Some(vec![4]),
            })])
        }),
    )
    .await
    .unwrap();
    s.create_alias(alias("alias/x", "k-kms"), 10).await.unwrap();
    s.insert_wrapping_key(
        WrappingKeyRecord {
            wrapping_key_id: "w".into(),
            key_id: "k-ext".into(),
            account_id: ACCOUNT.into(),
            algorithm: "RSAES_PKCS1_V1_5".into(),
            sealed_private_key: vec![3; 10],
            expires: 99,
        },
        100,
    )
    .await
    .unwrap();
    s.claim_unwrap_attempt("w", "k-ext", "RSAES_PKCS1_V1_5", 10)
        .await
        .unwrap()
        .unwrap();
    s.insert_console_user(ConsoleUserRecord {
        user_name: "bob".into(),
        account_id: ACCOUNT.into(),
        password_hash: "h".into(),
        creation_date: 3,
    })
    .await
    .unwrap();
    s.insert_ram_entity(ram_entity("u1", RamKind::User, "alice"), 10)
        .await
        .unwrap();
    s.insert_ram_entity(ram_entity("g1", RamKind::Group, "dev"), 10)
        .await
        .unwrap();
    s.add_ram_link(ram_link(RamLinkKind::Member, "u1", "g1"), 10)
        .await
        .unwrap();
    s.insert_sts_session(sts_session("STS.a", 100))
        .await
        .unwrap();
}

fn ram_entity(id: &str, kind: RamKind, name: &str) -> RamEntityRecord {
    RamEntityRecord {
        entity_id: id.into(),
        account_id: ACCOUNT.into(),
        kind: kind.as_str().into(),
        name: name.into(),
        body: format!("{{\"n\":\"{name}\"}}"),
    }
}

fn ram_link(kind: RamLinkKind, from: &str, to: &str) -> RamLinkRecord {
    RamLinkRecord {
        kind: kind.as_str().into(),
        source_id: from.into(),
        target_id: to.into(),
        account_id: ACCOUNT.into(),
        created: 5,
    }
}

fn sts_session(id: &str, expiration: i64) -> StsSessionRecord {
    StsSessionRecord {
        access_key_id: id.into(),
        account_id: ACCOUNT.into(),
        role_id: "r1".into(),
        session_name: "s".into(),
        sealed_secret: vec![1, 2, 3],
        token_hash: "ab".into(),
        session_policy: Some("{}".into()),
        caller_arn: "acs:ram::1:user/alice".into(),
        expiration,
        creation_date: 1,
    }
}

async fn ram_entities_links_and_sessions(s: Arc<dyn Store>) {
    s.ensure_account(ACCOUNT, 1).await.unwrap();
    let alice = ram_entity("u1", RamKind::User, "alice");
    s.insert_ram_entity(alice.clone(), 2).await.unwrap();
    // The name is unique per account and kind; a group may share it.
    assert!(matches!(
        s.insert_ram_entity(ram_entity("u2", RamKind::User, "alice"), 2)
            .await,
        Err(StoreError::Duplicate(_))
    ));
    s.insert_ram_entity(ram_entity("g1", RamKind::Group, "alice"), 2)
        .await
        .unwrap();
    s.insert_ram_entity(ram_entity("u3", RamKind::User, "bob"), 2)
        .await
        .unwrap();
    assert!(matches!(
        s.insert_ram_entity(ram_entity("u4", RamKind::User, "carol"), 2)
            .await,
        Err(StoreError::LimitExceeded(_))
    ));
    assert_eq!(
        s.get_ram_entity(ACCOUNT, RamKind::User, "alice")
            .await
            .unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        s.get_ram_entity_by_id("u1").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        s.get_ram_entity(ACCOUNT, RamKind::Role, "alice")
            .await
            .unwrap(),
        None
    );
    let names: Vec<String> = s
        .list_ram_entities(ACCOUNT, RamKind::User)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    // Links: duplicates refused, limits counted apart for system and custom targets.
    s.add_ram_link(ram_link(RamLinkKind::Member, "u1", "g1"), 1)
        .await
        .unwrap();
    assert!(matches!(
        s.add_ram_link(ram_link(RamLinkKind::Member, "u1", "g1"), 5)
            .await,
        Err(StoreError::Duplicate(_))
    ));
    s.add_ram_link(ram_link(RamLinkKind::Attachment, "u1", "system:A"), 1)
        .await
        .unwrap();
    s.add_ram_link(ram_link(RamLinkKind::Attachment, "u1", "p1"), 1)
        .await
        .unwrap();
    assert!(matches!(
        s.add_ram_link(ram_link(RamLinkKind::Attachment, "u1", "system:B"), 1)
            .await,
        Err(StoreError::LimitExceeded(_))
    ));
    let to_g1 = s
        .list_ram_links(RamLinkKind::Member, None, Some("g1"))
        .await
        .unwrap();
    assert_eq!(to_g1, vec![ram_link(RamLinkKind::Member, "u1", "g1")]);
    assert_eq!(
        s.list_ram_links(RamLinkKind::Attachment, Some("u1"), None)
            .await
            .unwrap()
            .len(),
        2
    );

    // A user's access keys, limited per user.
    let ak = |id: &str| AccessKeyRecord {
        access_key_id: id.into(),
        account_id: ACCOUNT.into(),
        sealed_secret: vec![1],
        enabled: true,
        creation_date: 3,
        user_id: Some("u1".into()),
    };
    s.insert_user_access_key(ak("LTAIu1"), 1).await.unwrap();
    assert!(matches!(
        s.insert_user_access_key(ak("LTAIu2"), 1).await,
        Err(StoreError::LimitExceeded(_))
    ));
    assert_eq!(
        s.list_user_access_keys("u1").await.unwrap(),
        vec![ak("LTAIu1")]
    );
    assert_eq!(
        s.get_access_key("LTAIu1").await.unwrap(),
        Some(ak("LTAIu1"))
    );

    // Read-modify-write sees the usage; a refusal changes nothing; a rename to a taken name
    // is a duplicate; a delete takes links and access keys with it.
    let seen = s
        .update_ram_entity(
            ACCOUNT,
            RamKind::User,
            "alice",
            Box::new(|_, usage| {
                assert_eq!(usage.links.len(), 3);
                assert_eq!(usage.access_keys, 1);
                Err(KmsError::UnsupportedOperation)
            }),
        )
        .await;
    assert_eq!(
        seen,
        Err(StoreError::Refused(KmsError::UnsupportedOperation))
    );
    let renamed = s
        .update_ram_entity(
            ACCOUNT,
            RamKind::User,
            "alice",
            Box::new(|e, _| {
                e.name = "bob".into();
                Ok(RamWrite::Update)
            }),
        )
        .await;
    assert!(matches!(renamed, Err(StoreError::Duplicate(_))));
    let renamed = s
        .update_ram_entity(
            ACCOUNT,
            RamKind::User,
            "alice",
            Box::new(|e, _| {
                e.name = "alice2".into();
                e.entity_id = "ignored".into();
                Ok(RamWrite::Update)
            }),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (renamed.entity_id.as_str(), renamed.name.as_str()),
        ("u1", "alice2")
    );
    assert_eq!(
        s.update_ram_entity(
            ACCOUNT,
            RamKind::User,
            "alice",
            Box::new(|_, _| Ok(RamWrite::Delete))
        )
        .await
        .unwrap(),
        None
    );
    s.update_ram_entity(
        ACCOUNT,
        RamKind::User,
        "alice2",
        Box::new(|_, _| Ok(RamWrite::Delete)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(s.get_ram_entity_by_id("u1").await.unwrap(), None);
    assert_eq!(s.get_access_key("LTAIu1").await.unwrap(), None);
    assert!(s
        .list_ram_links(RamLinkKind::Member, None, Some("g1"))
        .await
        .unwrap()
        .is_empty());
    assert!(!s
        .remove_ram_link(RamLinkKind::Member, "u1", "g1")
        .await
        .unwrap());

    // STS sessions: read back, purged once expired.
    s.insert_sts_session(sts_session("STS.a", 100))
        .await
        .unwrap();
    s.insert_sts_session(sts_session("STS.b", 300))
        .await
        .unwrap();
    assert_eq!(
        s.get_sts_session("STS.a").await.unwrap(),
        Some(sts_session("STS.a", 100))
    );
    assert_eq!(s.purge_sts_sessions(200).await.unwrap(), 1);
    assert_eq!(s.get_sts_session("STS.a").await.unwrap(), None);
    assert!(s.get_sts_session("STS.b").await.unwrap().is_some());
}

async fn keys_are_counted_by_state_and_origin(s: Arc<dyn Store>) {
    assert_eq!(s.count_keys_by_state().await.unwrap(), vec![]);
    fill(s.as_ref()).await;
    let k = key("k-off", 3);
    s.insert_key(k.clone(), first_version(&k), vec![], 10)
        .await
        .unwrap();
    s.update_key(
        &loc(&k),
        Box::new(|k| {
            k.state = KeyState::Disabled;
            Ok(vec![])
        }),
    )
    .await
    .unwrap();
    let mut counts = s.count_keys_by_state().await.unwrap();
    counts.sort_by_key(|c| (c.state.as_str(), c.origin.as_str()));
    let count = |state, origin, keys| KeyCount {
        state,
        origin,
        keys,
    };
    assert_eq!(
        counts,
        vec![
            count(KeyState::Disabled, Origin::AliyunKms, 1),
            count(KeyState::Enabled, Origin::AliyunKms, 1),
            count(KeyState::PendingImport, Origin::External, 1),
        ]
    );
}

async fn export_import_round_trip(s: Arc<dyn Store>) {
    fill(s.as_ref()).await;
    let dump = s.export().await.unwrap();
    assert_eq!(
        dump.summary(),
        "1 accounts, 1 access keys, 2 keys, 3 key versions, 1 aliases, 1 tags, 1 wrapping keys (import tokens), 1 console users, 2 RAM entities, 1 RAM links, 1 STS sessions, 1 metadata entries"
    );
    assert_eq!(dump.wrapping_keys[0].1, 1);
    assert_eq!(
        dump.versions
            .iter()
            .map(|v| v.version_id.as_str())
            .collect::<Vec<_>>(),
        ["k-ext-v1", "k-kms-v1", "k-kms-v2"]
    );
    // Into an empty SQLite store, and (when the suite runs on PostgreSQL) an empty
    // PostgreSQL database: both read back exactly the same rows.
    let mut targets = vec![sqlite()];
    let db = TestDatabase::create().await;
    if let Some(db) = &db {
        targets.push(db.store.clone());
    }
    for target in targets {
        target.import(dump.clone()).await.unwrap();
        assert_eq!(target.export().await.unwrap(), dump);
        // A second copy is refused and changes nothing.
        assert_eq!(target.import(dump.clone()).await, Err(StoreError::NotEmpty));
        assert_eq!(target.export().await.unwrap(), dump);
    }
    if let Some(db) = db {
        db.drop().await;
    }
}

async fn concurrent_inserts_respect_the_key_limit(s: Arc<dyn Store>) {
    s.ensure_account(ACCOUNT, 0).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let k = key(&format!("k{i:02}"), i);
                s.insert_key(k.clone(), first_version(&k), vec![], 5).await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => assert!(matches!(e, StoreError::LimitExceeded(_)), "{e:?}"),
        }
    }
    assert_eq!(ok, 5);
    let (keys, total) = s
        .list_keys_page(ACCOUNT, REGION, 0, &[], 0, 100)
        .await
        .unwrap();
    assert_eq!((keys.len(), total), (5, 5));
}

async fn concurrent_updates_serialise(s: Arc<dyn Store>) {
    let k = key("k", 0);
    add(s.as_ref(), &k).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (s, l) = (s.clone(), loc(&k));
            tokio::spawn(async move {
                s.update_key(
                    &l,
                    Box::new(|k| {
                        k.version_count += 1;
                        Ok(vec![])
                    }),
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        s.get_key(&loc(&k)).await.unwrap().unwrap().version_count,
        21
    );
}

async fn concurrent_aliases_respect_the_limits(s: Arc<dyn Store>) {
    add(s.as_ref(), &key("k", 0)).await;
    let outcomes = |names: Vec<String>| {
        let s = s.clone();
        async move {
            let tasks: Vec<_> = names
                .into_iter()
                .map(|n| {
                    let s = s.clone();
                    tokio::spawn(async move { s.create_alias(alias(&n, "k"), 3).await })
                })
                .collect();
            let mut results = Vec::new();
            for t in tasks {
                results.push(t.await.unwrap());
            }
            results
        }
    };
    // One name, many creators: one wins, the rest find it taken.
    let same = outcomes(vec!["alias/same".to_string(); 10]).await;
    assert_eq!(same.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(same
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(StoreError::AliasExists))));
    // Many names for one key: two more places under the limit of three.
    let many = outcomes((0..10).map(|i| format!("alias/n{i}")).collect()).await;
    assert_eq!(many.iter().filter(|r| r.is_ok()).count(), 2);
    assert!(many
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(StoreError::LimitExceeded(_)))));
    assert_eq!(
        s.list_aliases(ACCOUNT, REGION, Some("k"))
            .await
            .unwrap()
            .len(),
        3
    );
}

// ---- secrets (Secrets Manager, issue 18) ----

pub(super) fn secret(id: &str, name: &str) -> SecretRecord {
    SecretRecord {
        secret_id: id.into(),
        account_id: ACCOUNT.into(),
        region: REGION.into(),
        secret_name: name.into(),
        secret_type: "Generic".into(),
        description: "d".into(),
        encryption_key_id: "k".into(),
        extended_config: Some("{\"a\":1}".into()),
        creation_date: 10,
        update_date: 11,
        planned_delete_time: None,
        automatic_rotation: false,
        rotation_interval: Some(3600),
        last_rotation_date: None,
        next_rotation_date: Some(12),
    }
}

pub(super) fn secret_version(
    secret_id: &str,
    version_id: &str,
    created: i64,
) -> SecretVersionRecord {
    SecretVersionRecord {
        secret_id: secret_id.into(),
        version_id: version_id.into(),
        creation_date: created,
        data_type: "text".into(),
        sealed_data_key: vec![1, 2, 3],
        sealed_value: vec![4, 5, 6, 0, 255],
    }
}

fn current() -> Vec<String> {
    vec!["ACSCurrent".to_string()]
}

/// A mutation that adds `version` and moves `stage` to it.
fn put_version(version: SecretVersionRecord, stage: &'static str) -> SecretMutation {
    Box::new(move |_, versions| {
        versions.insert(
            0,
            SecretVersionMeta {
                version_id: version.version_id.clone(),
                creation_date: version.creation_date,
                stages: vec![],
            },
        );
        crate::service::secrets::attach_stage(versions, stage, &version.version_id);
        Ok(vec![SecretChange::InsertVersion(version)])
    })
}

async fn secrets_round_trip(s: Arc<dyn Store>) {
    let a = secret("id-a", "app/db");
    s.insert_secret(
        a.clone(),
        secret_version("id-a", "v1", 10),
        current(),
        vec![],
        2,
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_secret(ACCOUNT, REGION, "app/db").await.unwrap(),
        Some(a.clone())
    );
    // Names are per account and region.
    assert_eq!(s.get_secret("other", REGION, "app/db").await.unwrap(), None);
    assert_eq!(
        s.get_secret(ACCOUNT, "cn-shanghai", "app/db")
            .await
            .unwrap(),
        None
    );
    // The same name again: a duplicate, nothing written.
    let dup = s
        .insert_secret(
            secret("id-x", "app/db"),
            secret_version("id-x", "v1", 1),
            current(),
            vec![],
            9,
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Duplicate(_))), "{dup:?}");
    let mut b = secret("id-b", "b");
    b.creation_date = 5;
    s.insert_secret(b, secret_version("id-b", "v1", 1), current(), vec![], 2)
        .await
        .unwrap();
    // The limit per account and region.
    let over = s
        .insert_secret(
            secret("id-c", "c"),
            secret_version("id-c", "v1", 1),
            current(),
            vec![],
            2,
        )
        .await;
    assert!(
        matches!(over, Err(StoreError::LimitExceeded(_))),
        "{over:?}"
    );
    assert_eq!(s.get_secret(ACCOUNT, REGION, "c").await.unwrap(), None);
    let names: Vec<String> = s
        .list_secrets(ACCOUNT, REGION)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.secret_name)
        .collect();
    assert_eq!(names, ["b", "app/db"]); // by creation date
    assert_eq!(
        s.get_secret_version("id-a", "v1").await.unwrap(),
        Some(secret_version("id-a", "v1", 10))
    );
    assert_eq!(
        s.get_secret_version_by_stage("id-a", "ACSCurrent")
            .await
            .unwrap(),
        Some(secret_version("id-a", "v1", 10))
    );
    assert_eq!(
        s.get_secret_version_by_stage("id-a", "ACSPrevious")
            .await
            .unwrap(),
        None
    );
    // A new version (same second) takes ACSCurrent; the old one gets ACSPrevious.
    let (after, versions) = s
        .update_secret(
            ACCOUNT,
            REGION,
            "app/db",
            put_version(secret_version("id-a", "v2", 10), "ACSCurrent"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after, a);
    let want = vec![
        SecretVersionMeta {
            version_id: "v2".into(),
            creation_date: 10,
            stages: current(),
        },
        SecretVersionMeta {
            version_id: "v1".into(),
            creation_date: 10,
            stages: vec!["ACSPrevious".into()],
        },
    ];
    assert_eq!(versions, want);
    assert_eq!(s.list_secret_versions("id-a").await.unwrap(), want);
    assert_eq!(
        s.get_secret_version_by_stage("id-a", "ACSPrevious")
            .await
            .unwrap()
            .map(|v| v.version_id),
        Some("v1".into())
    );
    assert!(s
        .update_secret(ACCOUNT, REGION, "nope", Box::new(|_, _| Ok(vec![])))
        .await
        .unwrap()
        .is_none());
}

async fn secret_updates_commit_or_change_nothing(s: Arc<dyn Store>) {
    s.insert_secret(
        secret("id", "n"),
        secret_version("id", "v1", 1),
        current(),
        vec![],
        9,
    )
    .await
    .unwrap();
    let before = (
        s.get_secret(ACCOUNT, REGION, "n").await.unwrap(),
        s.list_secret_versions("id").await.unwrap(),
    );
    // A refused mutation writes nothing, not even the version or stages it touched.
    let refused = s
        .update_secret(
            ACCOUNT,
            REGION,
            "n",
            Box::new(|sec, versions| {
                sec.description = "changed".into();
                versions[0].stages.clear();
                Err(crate::error::KmsError::ResourceInDeleteWindow)
            }),
        )
        .await;
    assert_eq!(
        refused,
        Err(StoreError::Refused(
            crate::error::KmsError::ResourceInDeleteWindow
        ))
    );
    // A failing write (a version id taken) rolls back the whole change.
    let failed = s
        .update_secret(ACCOUNT, REGION, "n", {
            let first = put_version(secret_version("id", "v1", 2), "Other");
            Box::new(move |sec, versions| {
                sec.description = "changed".into();
                first(sec, versions)
            })
        })
        .await;
    assert!(failed.is_err());
    let after = (
        s.get_secret(ACCOUNT, REGION, "n").await.unwrap(),
        s.list_secret_versions("id").await.unwrap(),
    );
    assert_eq!(before, after);
    // Deleting a version.
    s.update_secret(
        ACCOUNT,
        REGION,
        "n",
        put_version(secret_version("id", "v2", 2), "ACSCurrent"),
    )
    .await
    .unwrap();
    s.update_secret(
        ACCOUNT,
        REGION,
        "n",
        Box::new(|_, versions| {
            versions.retain(|v| v.version_id != "v1");
            Ok(vec![SecretChange::DeleteVersion("v1".into())])
        }),
    )
    .await
    .unwrap();
    assert_eq!(s.get_secret_version("id", "v1").await.unwrap(), None);
    assert_eq!(s.list_secret_versions("id").await.unwrap().len(), 1);
}

async fn secret_deletion_only_when_due(s: Arc<dyn Store>) {
    let mut a = secret("id-a", "a");
    a.planned_delete_time = Some(100);
    s.insert_secret(
        a,
        secret_version("id-a", "v1", 1),
        current(),
        vec![tag("k", "v")],
        9,
    )
    .await
    .unwrap();
    s.insert_secret(
        secret("id-b", "b"),
        secret_version("id-b", "v1", 1),
        current(),
        vec![],
        9,
    )
    .await
    .unwrap();
    assert_eq!(
        s.due_secret_deletions(99).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(s.due_secret_deletions(100).await.unwrap(), ["id-a"]);
    assert!(!s.delete_secret_if_due("id-a", 99).await.unwrap());
    assert!(!s.delete_secret_if_due("id-b", 1000).await.unwrap()); // not in a window
    assert!(s.delete_secret_if_due("id-a", 100).await.unwrap());
    // Versions, stages and tags went with it.
    assert_eq!(s.get_secret_version("id-a", "v1").await.unwrap(), None);
    assert!(s.list_secret_versions("id-a").await.unwrap().is_empty());
    assert!(s.list_secret_tags("id-a").await.unwrap().is_empty());
    assert!(s.delete_secret("id-b").await.unwrap());
    assert!(!s.delete_secret("id-b").await.unwrap());
    assert!(s.list_secrets(ACCOUNT, REGION).await.unwrap().is_empty());
}

async fn secret_tags(s: Arc<dyn Store>) {
    s.insert_secret(
        secret("id", "n"),
        secret_version("id", "v1", 1),
        current(),
        vec![tag("a", "1")],
        9,
    )
    .await
    .unwrap();
    s.put_secret_tags("id", vec![tag("b", "2"), tag("a", "3")], 2)
        .await
        .unwrap();
    assert_eq!(
        s.list_secret_tags("id").await.unwrap(),
        [tag("a", "3"), tag("b", "2")]
    );
    let over = s.put_secret_tags("id", vec![tag("c", "3")], 2).await;
    assert!(matches!(over, Err(StoreError::LimitExceeded(_))));
    assert_eq!(s.list_secret_tags("id").await.unwrap().len(), 2);
    assert_eq!(
        s.list_account_secret_tags(ACCOUNT, REGION).await.unwrap(),
        [
            ("id".to_string(), tag("a", "3")),
            ("id".to_string(), tag("b", "2"))
        ]
    );
    assert!(s
        .list_account_secret_tags("other", REGION)
        .await
        .unwrap()
        .is_empty());
    s.remove_secret_tags("id", Some(vec!["a".into()]))
        .await
        .unwrap();
    assert_eq!(s.list_secret_tags("id").await.unwrap(), [tag("b", "2")]);
    s.remove_secret_tags("id", None).await.unwrap();
    assert!(s.list_secret_tags("id").await.unwrap().is_empty());
}

async fn secrets_export_import_round_trip(s: Arc<dyn Store>) {
    s.ensure_account(ACCOUNT, 7).await.unwrap();
    s.insert_access_key(AccessKeyRecord {
        access_key_id: "LTAI1".into(),
        account_id: ACCOUNT.into(),
        sealed_secret: vec![1, 2],
        enabled: true,
        creation_date: 8,
        user_id: None,
    })
    .await
    .unwrap();
    let mut w = secret("id-w", "in/window");
    w.planned_delete_time = Some(500);
    s.insert_secret(
        w,
        secret_version("id-w", "v1", 1),
        current(),
        vec![tag("t", "1")],
        9,
    )
    .await
    .unwrap();
    s.insert_secret(
        secret("id-a", "a"),
        secret_version("id-a", "v1", 1),
        current(),
        vec![],
        9,
    )
    .await
    .unwrap();
    s.update_secret(
        ACCOUNT,
        REGION,
        "a",
        put_version(secret_version("id-a", "v2", 1), "Custom"),
    )
    .await
    .unwrap();
    let dump = s.export().await.unwrap();
    assert_eq!(
        (
            dump.secrets.len(),
            dump.secret_versions.len(),
            dump.secret_stages.len(),
            dump.secret_tags.len()
        ),
        (2, 3, 3, 1)
    );
    assert!(dump.summary().contains("2 secrets, 3 secret versions"));
    let mut targets = vec![sqlite()];
    let db = TestDatabase::create().await;
    if let Some(db) = &db {
        targets.push(db.store.clone());
    }
    for target in targets {
        target.import(dump.clone()).await.unwrap();
        assert_eq!(target.export().await.unwrap(), dump);
        assert_eq!(
            target.list_secret_versions("id-a").await.unwrap(),
            s.list_secret_versions("id-a").await.unwrap()
        );
    }
    if let Some(db) = db {
        db.drop().await;
    }
}

async fn concurrent_secret_puts_serialise(s: Arc<dyn Store>) {
    s.insert_secret(
        secret("id", "n"),
        secret_version("id", "v0", 1),
        current(),
        vec![],
        9,
    )
    .await
    .unwrap();
    let tasks: Vec<_> = (1..=10)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.update_secret(
                    ACCOUNT,
                    REGION,
                    "n",
                    put_version(secret_version("id", &format!("v{i}"), 1 + i), "ACSCurrent"),
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let versions = s.list_secret_versions("id").await.unwrap();
    assert_eq!(versions.len(), 11);
    let with = |stage: &str| {
        versions
            .iter()
            .filter(|v| v.stages.iter().any(|x| x == stage))
            .count()
    };
    // Every put saw the one before it: one current, one previous, the rest without a stage.
    assert_eq!((with("ACSCurrent"), with("ACSPrevious")), (1, 1));
    assert_eq!(versions.iter().filter(|v| v.stages.is_empty()).count(), 9);
}
