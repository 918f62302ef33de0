//! The folded authentication cache ([`super::sts::AuthCache`]) attacked: every change that
//! may refuse a request is obeyed on the very next request on the node that made it, and on
//! another node once it hears the change (the notification a shared database sends,
//! applied here with [`CachedStore::apply_remote`]); role sessions end at expiry on the
//! injectable clock; and under a burst of concurrent requests, none that starts after a
//! policy change has returned is decided under the old policy.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use aws_lc_rs::hmac;

use super::ram::{Holder, PolicyType, Principal, UserFields};
use super::sts::{AssumeRoleInput, SigningKeys};
use super::testing::T0;
use super::*;
use crate::action::{kms::Action as K, ApiAction};
use crate::api::authz::{authorize_prepared, context, remembered, RequestContext, Transport};
use crate::clock::ManualClock;
use crate::keystore::wrapping::Pool;
use crate::protocol::params::Params;
use crate::store::cache::{CachedStore, Change};
use crate::store::sqlite::SqliteStore;

const ENCRYPT_K1: &str = r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"acs:kms:*:*:key/k1"}]}"#;

struct Node {
    kms: Kms,
    cache: Arc<CachedStore>,
}

/// Two nodes on one database, each with its own cache (as two servers on PostgreSQL),
/// sharing the clock and the root key.
fn two_nodes() -> (Node, Node, Arc<ManualClock>, Caller) {
    let db: Arc<dyn crate::store::Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let clock = Arc::new(ManualClock::new(T0));
    let keystore = Arc::new(Keystore::from_root(&[3u8; 32]).unwrap());
    let node = || {
        let cache = Arc::new(CachedStore::new(
            db.clone(),
            std::time::Duration::from_secs(60),
        ));
        let kms = Kms::new(
            cache.clone(),
            keystore.clone(),
            clock.clone(),
            Pool::new(0),
            ServiceConfig::default(),
        );
        Node { kms, cache }
    };
    let caller = Caller {
        account_id: "1234567890123456".into(),
        region: "cn-hangzhou".into(),
        access_key_id: "ak".into(),
    };
    (node(), node(), clock, caller)
}

fn params(query: &str) -> Params {
    Params::from_request(query, None, b"").unwrap()
}

/// A signed request's authentication and authorisation, as the protocol layer runs them:
/// one lookup of the access key, then its policies from the same entry.
async fn request(kms: &Kms, caller: &Caller, ak: &str, q: &str) -> Result<(), KmsError> {
    let auth = kms.authenticate(ak).await?;
    let caller = Caller {
        account_id: auth.account_id.clone(),
        ..caller.clone()
    };
    let (action, p) = (ApiAction::Kms(K::Encrypt), params(q));
    let policies = auth.policies.as_deref();
    if let Some(d) = remembered(&caller, &auth.principal, policies, action, &p) {
        return d.map(|_| ());
    }
    authorize_prepared(
        kms,
        &caller,
        &auth.principal,
        policies,
        action,
        &p,
        RequestContext::Transport(Transport::default()),
    )
    .await
    .map(|_| ())
}

/// A RAM user with one access key and, attached, the policy allowing Encrypt on k1.
async fn encrypt_user(kms: &Kms, caller: &Caller, name: &str) -> String {
    let u = kms
        .create_user(caller, name, UserFields::default())
        .await
        .unwrap();
    let (ak, _) = kms.create_user_access_key(caller, &u).await.unwrap();
    let policy = format!("{name}-encrypt");
    kms.create_policy(caller, &policy, ENCRYPT_K1, None)
        .await
        .unwrap();
    kms.attach_policy(caller, Holder::User, name, PolicyType::Custom, &policy)
        .await
        .unwrap();
    ak.access_key_id
}

fn code(e: KmsError) -> (&'static str, u16) {
    (e.code(), e.status())
}

#[test]
fn the_prepared_keys_sign_as_the_secret_does() {
    let secret = b"testsecret";
    let keys = SigningKeys::new(secret);
    let msg = b"POST&%2F&Action%3DEncrypt";
    let v1 = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"testsecret&");
    let v3 = hmac::Key::new(hmac::HMAC_SHA256, secret);
    assert_eq!(
        hmac::sign(keys.v1(), msg).as_ref(),
        hmac::sign(&v1, msg).as_ref()
    );
    assert_eq!(
        hmac::sign(keys.v3(), msg).as_ref(),
        hmac::sign(&v3, msg).as_ref()
    );
}

#[tokio::test]
async fn one_entry_carries_the_principal_its_policies_and_keys() {
    let (a, _, _, caller) = two_nodes();
    let ak = encrypt_user(&a.kms, &caller, "app").await;
    let first = a.kms.authenticate(&ak).await.unwrap();
    let again = a.kms.authenticate(&ak).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again), "served from the cache");
    assert_eq!(first.arn, "acs:ram::1234567890123456:user/app");
    let policies = first.policies.clone().unwrap();
    assert_eq!(policies.identity.len(), 1);
    assert!(Arc::ptr_eq(
        &policies,
        &a.kms.policies_of(&first.principal).await.unwrap()
    ));
    request(&a.kms, &caller, &ak, "KeyId=k1").await.unwrap();
    assert_eq!(
        code(request(&a.kms, &caller, &ak, "KeyId=k2").await.unwrap_err()),
        ("Forbidden.NoPermission", 403)
    );
    // The root credentials: no policies, allowed everything.
    let root = a
        .kms
        .create_access_key(&caller.account_id, None)
        .await
        .unwrap();
    let r = a.kms.authenticate(&root.access_key_id).await.unwrap();
    assert_eq!(r.principal, Principal::Root);
    assert!(r.policies.is_none());
    assert_eq!(r.arn, "acs:ram::1234567890123456:root");
    request(&a.kms, &caller, &root.access_key_id, "KeyId=k2")
        .await
        .unwrap();
    // Without a caching store (no RAM epoch) nothing is kept.
    let (plain, _, _) = testing::kms();
    let root = plain
        .create_access_key(&caller.account_id, None)
        .await
        .unwrap();
    plain.authenticate(&root.access_key_id).await.unwrap();
    assert_eq!(plain.auth_cache.len(), 0);
}

#[tokio::test]
async fn a_disabled_or_deleted_access_key_is_refused_on_the_next_request() {
    let (a, b, _, caller) = two_nodes();
    // A RAM user's key, through RAM's UpdateAccessKey and DeleteAccessKey.
    let ak = encrypt_user(&a.kms, &caller, "app").await;
    let user = a.kms.get_user(&caller, "app").await.unwrap();
    request(&a.kms, &caller, &ak, "KeyId=k1").await.unwrap();
    request(&b.kms, &caller, &ak, "KeyId=k1").await.unwrap();
    a.kms
        .set_user_access_key_status(&user, &ak, false)
        .await
        .unwrap();
    assert_eq!(
        request(&a.kms, &caller, &ak, "KeyId=k1").await.err(),
        Some(KmsError::AccessKeyInactive)
    );
    // Node B serves its entry until it hears of the change, then refuses too.
    request(&b.kms, &caller, &ak, "KeyId=k1").await.unwrap();
    b.cache
        .apply_remote(Some(&Change::AccessKey(&ak).payload()));
    assert_eq!(
        request(&b.kms, &caller, &ak, "KeyId=k1").await.err(),
        Some(KmsError::AccessKeyInactive)
    );
    a.kms
        .set_user_access_key_status(&user, &ak, true)
        .await
        .unwrap();
    request(&a.kms, &caller, &ak, "KeyId=k1").await.unwrap();
    a.kms.delete_user_access_key(&user, &ak).await.unwrap();
    assert_eq!(
        request(&a.kms, &caller, &ak, "KeyId=k1").await.err(),
        Some(KmsError::AccessKeyNotFound)
    );
    // The root credentials, disabled and deleted in the store (as `kms admin` does).
    let root = a
        .kms
        .create_access_key(&caller.account_id, None)
        .await
        .unwrap();
    let id = root.access_key_id;
    a.kms.authenticate(&id).await.unwrap();
    b.kms.authenticate(&id).await.unwrap();
    a.kms
        .store()
        .set_access_key_enabled(&id, false)
        .await
        .unwrap();
    assert_eq!(
        a.kms.authenticate(&id).await.err(),
        Some(KmsError::AccessKeyInactive)
    );
    b.cache
        .apply_remote(Some(&Change::AccessKey(&id).payload()));
    assert_eq!(
        b.kms.authenticate(&id).await.err(),
        Some(KmsError::AccessKeyInactive)
    );
    a.kms.store().delete_access_key(&id).await.unwrap();
    assert_eq!(
        a.kms.authenticate(&id).await.err(),
        Some(KmsError::AccessKeyNotFound)
    );
    // An announcement the node cannot name drops everything.
    b.cache.apply_remote(None);
    assert_eq!(
        b.kms.authenticate(&id).await.err(),
        Some(KmsError::AccessKeyNotFound)
    );
}

#[tokio::test]
async fn policy_membership_and_version_changes_are_obeyed_on_the_next_request() {
    let (a, b, _, caller) = two_nodes();
    let ak = encrypt_user(&a.kms, &caller, "app").await;
    request(&a.kms, &caller, &ak, "KeyId=k1").await.unwrap();
    request(&b.kms, &caller, &ak, "KeyId=k1").await.unwrap();
    // Detached: refused at once here, on node B once it hears `ram`.
    a.kms
        .detach_policy(
            &caller,
            Holder::User,
            "app",
            PolicyType::Custom,
            "app-encrypt",
        )
        .await
        .unwrap();
    let refused = ("Forbidden.NoPermission", 403);
    assert_eq!(
        code(request(&a.kms, &caller, &ak, "KeyId=k1").await.unwrap_err()),
        refused
    );
    request(&b.kms, &caller, &ak, "KeyId=k1").await.unwrap();
    b.cache.apply_remote(Some(&Change::Ram.payload()));
    assert_eq!(
        code(request(&b.kms, &caller, &ak, "KeyId=k1").await.unwrap_err()),
        refused
    );
    // Through a group: membership added, then removed.
    a.kms.create_group(&caller, "dev", None).await.unwrap();
    a.kms
        .attach_policy(
            &caller,
            Holder::Group,
            "dev",
            PolicyType::Custom,
            "app-encrypt",
        )
        .await
        .unwrap();
    assert!(request(&a.kms, &caller, &ak, "KeyId=k1").await.is_err());
    a.kms
        .add_user_to_group(&caller, "dev", "app")
        .await
        .unwrap();
    request(&a.kms, &caller, &ak, "KeyId=k1").await.unwrap();
    a.kms
        .remove_user_from_group(&caller, "dev", "app")
        .await
        .unwrap();
    assert_eq!(
        code(request(&a.kms, &caller, &ak, "KeyId=k1").await.unwrap_err()),
        refused
    );
    // A new default version of an attached policy.
    a.kms
        .add_user_to_group(&caller, "dev", "app")
        .await
        .unwrap();
    request(&a.kms, &caller, &ak, "KeyId=k1").await.unwrap();
    a.kms
        .create_policy_version(
            &caller,
            "app-encrypt",
            &ENCRYPT_K1.replace("key/k1", "key/k2"),
            true,
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        code(request(&a.kms, &caller, &ak, "KeyId=k1").await.unwrap_err()),
        refused
    );
    request(&a.kms, &caller, &ak, "KeyId=k2").await.unwrap();
}

#[tokio::test]
async fn a_role_session_ends_at_expiry_and_with_its_role() {
    let (a, b, clock, caller) = two_nodes();
    let assumer = a
        .kms
        .create_user(&caller, "assumer", UserFields::default())
        .await
        .unwrap();
    let (uk, _) = a
        .kms
        .create_user_access_key(&caller, &assumer)
        .await
        .unwrap();
    let p = a.kms.authenticate(&uk.access_key_id).await.unwrap();
    let trust = r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{"RAM":"acs:ram::1234567890123456:root"}}]}"#;
    a.kms
        .create_role(&caller, "app", trust, None, None)
        .await
        .unwrap();
    a.kms
        .create_policy(&caller, "enc", ENCRYPT_K1, None)
        .await
        .unwrap();
    a.kms
        .attach_policy(&caller, Holder::Role, "app", PolicyType::Custom, "enc")
        .await
        .unwrap();
    let input = AssumeRoleInput {
        role_arn: "acs:ram::1234567890123456:role/app".into(),
        session_name: "s1".into(),
        duration: Some(900),
        policy: None,
        external_id: None,
    };
    let ctx = context(&a.kms, Transport::default());
    let s = a
        .kms
        .assume_role(&caller, &p.principal, input, &ctx)
        .await
        .unwrap();
    let token = Some(s.security_token.as_str());
    let first = a.kms.authenticate(&s.access_key_id).await.unwrap();
    first.check_token(token, a.kms.now()).unwrap();
    request(&a.kms, &caller, &s.access_key_id, "KeyId=k1")
        .await
        .unwrap();
    b.kms.authenticate(&s.access_key_id).await.unwrap();
    // One second before expiry the cached entry serves; at expiry it is refused.
    clock.set(s.expiration - 1);
    let cached = a.kms.authenticate(&s.access_key_id).await.unwrap();
    assert!(Arc::ptr_eq(&first, &cached));
    cached.check_token(token, a.kms.now()).unwrap();
    clock.set(s.expiration);
    let cached = a.kms.authenticate(&s.access_key_id).await.unwrap();
    assert_eq!(
        code(cached.check_token(token, a.kms.now()).unwrap_err()),
        ("InvalidSecurityToken.Expired", 403)
    );
    clock.set(T0);
    // The role deleted (its policy detached first): the session's key is gone.
    a.kms
        .detach_policy(&caller, Holder::Role, "app", PolicyType::Custom, "enc")
        .await
        .unwrap();
    assert_eq!(
        code(
            request(&a.kms, &caller, &s.access_key_id, "KeyId=k1")
                .await
                .unwrap_err()
        ),
        ("Forbidden.NoPermission", 403)
    );
    a.kms.delete_role(&caller, "app").await.unwrap();
    assert_eq!(
        a.kms.authenticate(&s.access_key_id).await.err(),
        Some(KmsError::AccessKeyNotFound)
    );
    b.cache.apply_remote(Some(&Change::Ram.payload()));
    assert_eq!(
        b.kms.authenticate(&s.access_key_id).await.err(),
        Some(KmsError::AccessKeyNotFound)
    );
}

/// Requests run concurrently while the policy is detached; each notes whether the detach had
/// returned before it started. None that started after may be allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_after_a_policy_change_is_decided_under_the_old_policy() {
    let (a, _, _, caller) = two_nodes();
    let ak = encrypt_user(&a.kms, &caller, "app").await;
    let kms = Arc::new(a.kms);
    let changed = Arc::new(AtomicBool::new(false));
    let (late_allowed, late_refused) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (kms, caller, ak) = (kms.clone(), caller.clone(), ak.clone());
        let (changed, late_allowed, late_refused) =
            (changed.clone(), late_allowed.clone(), late_refused.clone());
        workers.push(tokio::spawn(async move {
            // Until 100 requests have started after the change (bounded, should it never come).
            let mut after_change = 0;
            for _ in 0..1_000_000 {
                let after = changed.load(Ordering::SeqCst);
                let ok = request(&kms, &caller, &ak, "KeyId=k1").await.is_ok();
                if after {
                    after_change += 1;
                    if ok {
                        late_allowed.fetch_add(1, Ordering::SeqCst);
                    } else {
                        late_refused.fetch_add(1, Ordering::SeqCst);
                    }
                    if after_change == 100 {
                        break;
                    }
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    kms.detach_policy(
        &caller,
        Holder::User,
        "app",
        PolicyType::Custom,
        "app-encrypt",
    )
    .await
    .unwrap();
    changed.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(late_allowed.load(Ordering::SeqCst), 0);
    assert!(
        late_refused.load(Ordering::SeqCst) > 0,
        "requests ran after the change"
    );
    assert!(request(&kms, &caller, &ak, "KeyId=k1").await.is_err());
}

#[tokio::test]
async fn decisions_are_remembered_only_where_one_key_decides_them() {
    let (a, _, _, caller) = two_nodes();
    let ak = encrypt_user(&a.kms, &caller, "app").await;
    let refused = ("Forbidden.NoPermission", 403);
    for _ in 0..2 {
        request(&a.kms, &caller, &ak, "KeyId=k1").await.unwrap();
        assert_eq!(
            code(request(&a.kms, &caller, &ak, "KeyId=k2").await.unwrap_err()),
            refused
        );
    }
    let auth = a.kms.authenticate(&ak).await.unwrap();
    let memo = &auth.policies.as_ref().unwrap().decisions;
    assert_eq!(memo.len(), 2);
    // Remembered: answered without the asynchronous authorisation; an alias goes through it.
    let policies = auth.policies.as_deref();
    let encrypt = ApiAction::Kms(K::Encrypt);
    let (p1, p2) = (params("KeyId=k1"), params("KeyId=k2"));
    assert!(matches!(
        remembered(&caller, &auth.principal, policies, encrypt, &p1),
        Some(Ok(_))
    ));
    assert!(matches!(
        remembered(&caller, &auth.principal, policies, encrypt, &p2),
        Some(Err(KmsError::Forbidden))
    ));
    let alias = params("KeyId=alias/k1");
    assert!(remembered(&caller, &auth.principal, policies, encrypt, &alias).is_none());
    assert!(remembered(&caller, &auth.principal, None, encrypt, &p1).is_none());
    // Bounded; a remembered decision is the one the policies take.
    for i in 0..20 {
        let q = format!("KeyId=x{i}");
        assert_eq!(
            code(request(&a.kms, &caller, &ak, &q).await.unwrap_err()),
            refused
        );
    }
    assert_eq!(memo.len(), super::ram::MEMO_SLOTS);
    request(&a.kms, &caller, &ak, "KeyId=k1").await.unwrap();
    // A policy with a condition: decided per request, nothing remembered.
    a.kms
        .create_policy(
            &caller,
            "tls-k2",
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"acs:kms:*:*:key/k2","Condition":{"Bool":{"acs:SecureTransport":"true"}}}]}"#,
            None,
        )
        .await
        .unwrap();
    a.kms
        .attach_policy(&caller, Holder::User, "app", PolicyType::Custom, "tls-k2")
        .await
        .unwrap();
    request(&a.kms, &caller, &ak, "KeyId=k1").await.unwrap();
    assert_eq!(
        code(request(&a.kms, &caller, &ak, "KeyId=k2").await.unwrap_err()),
        refused
    );
    let auth = a.kms.authenticate(&ak).await.unwrap();
    assert_eq!(auth.policies.as_ref().unwrap().decisions.len(), 0);
    let secure = RequestContext::Transport(Transport {
        source_ip: None,
        secure: true,
    });
    let caller_k2 = caller.clone();
    authorize_prepared(
        &a.kms,
        &caller_k2,
        &auth.principal,
        auth.policies.as_deref(),
        ApiAction::Kms(K::Encrypt),
        &params("KeyId=k2"),
        secure,
    )
    .await
    .unwrap();
}
