//! RAM and STS through the service and the authoriser (no HTTP): principals, conflicts,
//! sessions and their tokens on the manual clock, and the policy cache on a cached store.

use std::sync::Arc;

use super::ram::{Holder, PolicyType, Principal, UserFields};
use super::sts::AssumeRoleInput;
use super::testing::{kms, T0};
use super::*;
use crate::action::{kms::Action as K, ram::Action as R, ApiAction};
use crate::api::authz::{authorize, context, Transport};
use crate::clock::ManualClock;
use crate::protocol::params::Params;
use crate::store::cache::{CachedStore, Change};
use crate::store::sqlite::SqliteStore;

fn params(query: &str) -> Params {
    Params::from_request(query, None, b"").unwrap()
}

fn code(e: KmsError) -> (&'static str, u16) {
    (e.code(), e.status())
}

async fn user_principal(kms: &Kms, caller: &Caller, name: &str) -> (Principal, String) {
    let u = kms
        .create_user(caller, name, UserFields::default())
        .await
        .unwrap();
    let (ak, _) = kms.create_user_access_key(caller, &u).await.unwrap();
    let auth = kms.authenticate(&ak.access_key_id).await.unwrap();
    (auth.principal.clone(), ak.access_key_id)
}

async fn allowed(kms: &Kms, caller: &Caller, p: &Principal, a: ApiAction, q: &str) -> bool {
    let ctx = context(kms, Transport::default());
    authorize(kms, caller, p, a, &params(q), &ctx).await.is_ok()
}

#[tokio::test]
async fn users_keys_and_delete_conflicts() {
    let (kms, _, caller) = kms();
    let (p, ak) = user_principal(&kms, &caller, "alice").await;
    assert!(matches!(&p, Principal::User { user_name, .. } if user_name == "alice"));
    assert_eq!(
        p.arn("1234567890123456"),
        "acs:ram::1234567890123456:user/alice"
    );
    let dup = kms
        .create_user(&caller, "alice", UserFields::default())
        .await
        .unwrap_err();
    assert_eq!(code(dup), ("EntityAlreadyExists.User", 409));
    let e = kms.delete_user(&caller, "alice").await.unwrap_err();
    assert_eq!(code(e), ("DeleteConflict.User.AccessKey", 409));
    let u = kms.get_user(&caller, "alice").await.unwrap();
    kms.delete_user_access_key(&u, &ak).await.unwrap();
    kms.delete_user(&caller, "alice").await.unwrap();
    assert_eq!(
        code(kms.get_user(&caller, "alice").await.unwrap_err()),
        ("EntityNotExist.User", 404)
    );
    // The root account's keys stay root.
    let root = kms
        .create_access_key(&caller.account_id, None)
        .await
        .unwrap();
    let auth = kms.authenticate(&root.access_key_id).await.unwrap();
    assert_eq!(auth.principal, Principal::Root);
    assert!(
        allowed(
            &kms,
            &caller,
            &Principal::Root,
            ApiAction::Kms(K::ScheduleKeyDeletion),
            "KeyId=k"
        )
        .await
    );
}

#[tokio::test]
async fn policies_through_groups_deny_and_ram_actions() {
    let (kms, _, caller) = kms();
    let (p, _) = user_principal(&kms, &caller, "bob").await;
    let a = ApiAction::Kms(K::DescribeKey);
    assert!(!allowed(&kms, &caller, &p, a, "KeyId=k1").await);
    kms.create_policy(
        &caller,
        "read-k1",
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:Describe*","Resource":"acs:kms:*:*:key/k1"}]}"#,
        None,
    )
    .await
    .unwrap();
    kms.create_group(&caller, "dev", None).await.unwrap();
    kms.add_user_to_group(&caller, "dev", "bob").await.unwrap();
    kms.attach_policy(&caller, Holder::Group, "dev", PolicyType::Custom, "read-k1")
        .await
        .unwrap();
    assert!(allowed(&kms, &caller, &p, a, "KeyId=k1").await);
    assert!(!allowed(&kms, &caller, &p, a, "KeyId=k2").await);
    // An explicit deny, attached to the user, wins.
    kms.create_policy(
        &caller,
        "no-describe",
        r#"{"Version":"1","Statement":[{"Effect":"Deny","Action":"kms:DescribeKey","Resource":"*"}]}"#,
        None,
    )
    .await
    .unwrap();
    kms.attach_policy(
        &caller,
        Holder::User,
        "bob",
        PolicyType::Custom,
        "no-describe",
    )
    .await
    .unwrap();
    assert!(!allowed(&kms, &caller, &p, a, "KeyId=k1").await);
    // RAM actions: on the named user, the calling user without UserName.
    let r = ApiAction::Ram(R::ListAccessKeys);
    assert!(!allowed(&kms, &caller, &p, r, "").await);
    kms.create_policy(
        &caller,
        "own-keys",
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"ram:ListAccessKeys","Resource":"acs:ram:*:*:user/bob"}]}"#,
        None,
    )
    .await
    .unwrap();
    kms.attach_policy(&caller, Holder::User, "bob", PolicyType::Custom, "own-keys")
        .await
        .unwrap();
    assert!(allowed(&kms, &caller, &p, r, "").await);
    assert!(allowed(&kms, &caller, &p, r, "UserName=bob").await);
    assert!(!allowed(&kms, &caller, &p, r, "UserName=carol").await);
    // The refusal per product.
    let ctx = context(&kms, Transport::default());
    let e = authorize(&kms, &caller, &p, a, &params("KeyId=k1"), &ctx)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "Forbidden.NoPermission");
    assert_eq!(
        e.message(),
        "This operation is forbidden by permission system."
    );
    let e = authorize(
        &kms,
        &caller,
        &p,
        ApiAction::Ram(R::CreateUser),
        &params("UserName=x"),
        &ctx,
    )
    .await
    .unwrap_err();
    assert_eq!(code(e), ("NoPermission", 403));
    // Attached policies block deleting the policy and the group.
    let e = kms
        .delete_policy(&caller, "read-k1", false)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "DeleteConflict.Policy.User");
    let e = kms.delete_group(&caller, "dev").await.unwrap_err();
    assert_eq!(e.code(), "DeleteConflict.Group.User");
}

#[tokio::test]
async fn sessions_tokens_expiry_and_deleted_roles() {
    let (kms, clock, caller) = kms();
    let (p, _) = user_principal(&kms, &caller, "assumer").await;
    let trust = r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{"RAM":"acs:ram::1234567890123456:root"}}]}"#;
    kms.create_role(&caller, "app", trust, None, None)
        .await
        .unwrap();
    let input = AssumeRoleInput {
        role_arn: "acs:ram::1234567890123456:role/app".into(),
        session_name: "s1".into(),
        duration: Some(900),
        policy: None,
        external_id: None,
    };
    let ctx = context(&kms, Transport::default());
    let e = kms
        .assume_role(&caller, &Principal::Root, input.clone(), &ctx)
        .await
        .unwrap_err();
    assert_eq!(e.message(), "Roles may not be assumed by root accounts.");
    let s = kms
        .assume_role(&caller, &p, input.clone(), &ctx)
        .await
        .unwrap();
    assert!(s.access_key_id.starts_with("STS."));
    assert_eq!(s.expiration, T0 + 900);
    let auth = kms.authenticate(&s.access_key_id).await.unwrap();
    assert!(
        matches!(&auth.principal, Principal::Role { role_name, session_name, .. } if role_name == "app" && session_name == "s1")
    );
    auth.check_token(Some(&s.security_token), kms.now())
        .unwrap();
    assert_eq!(
        code(auth.check_token(None, kms.now()).unwrap_err()),
        ("MissingSecurityToken", 400)
    );
    assert_eq!(
        code(auth.check_token(Some("CAISx"), kms.now()).unwrap_err()),
        ("InvalidSecurityToken.MismatchWithAccessKey", 403)
    );
    clock.set(T0 + 900);
    assert_eq!(
        code(
            auth.check_token(Some(&s.security_token), kms.now())
                .unwrap_err()
        ),
        ("InvalidSecurityToken.Expired", 403)
    );
    // Out-of-range durations; a deleted role ends its sessions.
    let long = AssumeRoleInput {
        duration: Some(3601),
        ..input.clone()
    };
    assert_eq!(
        kms.assume_role(&caller, &p, long, &ctx)
            .await
            .unwrap_err()
            .code(),
        "InvalidParameter.DurationSeconds"
    );
    kms.delete_role(&caller, "app").await.unwrap();
    assert_eq!(
        kms.authenticate(&s.access_key_id).await.err(),
        Some(KmsError::AccessKeyNotFound)
    );
    assert_eq!(
        kms.assume_role(&caller, &p, input, &ctx)
            .await
            .unwrap_err()
            .code(),
        "EntityNotExist.Role"
    );
}

#[tokio::test]
async fn compiled_policies_are_cached_until_ram_data_changes() {
    let cached = Arc::new(CachedStore::new(
        Arc::new(SqliteStore::in_memory().unwrap()),
        std::time::Duration::from_secs(60),
    ));
    let store: Arc<dyn crate::store::Store> = cached.clone();
    let kms = Kms::new(
        store.clone(),
        Arc::new(crate::keystore::Keystore::from_root(&[3u8; 32]).unwrap()),
        Arc::new(ManualClock::new(T0)),
        crate::keystore::wrapping::Pool::new(0),
        ServiceConfig::default(),
    );
    let caller = Caller {
        account_id: "1234567890123456".into(),
        region: "cn-hangzhou".into(),
        access_key_id: "ak".into(),
    };
    let (p, _) = user_principal(&kms, &caller, "cached").await;
    let first = kms.policies_of(&p).await.unwrap();
    let again = kms.policies_of(&p).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again), "served from the cache");
    assert!(first.identity.is_empty());
    kms.attach_policy(
        &caller,
        Holder::User,
        "cached",
        PolicyType::System,
        "AliyunKMSFullAccess",
    )
    .await
    .unwrap();
    let after = kms.policies_of(&p).await.unwrap();
    assert_eq!(after.identity.len(), 1, "a RAM change drops the cache");
    // Another node's change, announced as `ram`, does too.
    let epoch = store.ram_epoch();
    assert_eq!(Change::parse("ram"), Change::Ram);
    assert_eq!(Change::parse(&Change::Ram.payload()), Change::Ram);
    cached.apply_remote(Some("ram"));
    assert_ne!(store.ram_epoch(), epoch);
    assert!(!Arc::ptr_eq(&after, &kms.policies_of(&p).await.unwrap()));
}
