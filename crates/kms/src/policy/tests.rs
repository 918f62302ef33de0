//! Unit and property tests of the policy language (reference §4–§6).

use std::net::IpAddr;

use proptest::prelude::*;
use serde_json::{json, Value};
use time::macros::datetime;

use super::condition::keys;
use super::document::Malformed as M;
use super::eval::{assume_role, basic};
use super::kms::{checks, Ids, MissingId, Scope};
use super::pattern::Pattern;
use super::system::{self, SYSTEM_POLICIES};
use super::*;
use crate::action::kms::Action;
use crate::action::Resource;

fn policy(v: Value) -> Policy {
    match Policy::parse(&v.to_string(), PolicyKind::Identity) {
        Ok(p) => p,
        Err(e) => panic!("{e}: {v}"),
    }
}

fn allow(action: Value, resource: Value) -> Policy {
    policy(
        json!({"Version":"1","Statement":[{"Effect":"Allow","Action":action,"Resource":resource}]}),
    )
}

fn decide(ps: &[Policy], action: &str, resource: &str, ctx: &Context) -> Decision {
    PolicySet::new(ps).decide_one(&Check::new(action, resource), ctx)
}

const K1: &str = "acs:kms:cn-hangzhou:1234:key/k1";
const K2: &str = "acs:kms:cn-hangzhou:1234:key/k2";
const KC: &str = "acs:kms:cn-hangzhou:1234:key";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// k1 is tagged Project=apollo.
fn k1_ctx() -> Context {
    Context::new().tag("Project", "apollo")
}

fn sys(p: &system::SystemPolicy) -> Policy {
    match p.policy() {
        Ok(p) => p,
        Err(e) => panic!("{}: {e}", p.name),
    }
}

// ---------------------------------------------------------------- patterns

#[test]
fn glob_star_and_question_mark() {
    let p = Pattern::exact("acs:kms:*:*:key*");
    assert!(p.matches("acs:kms:cn-hangzhou:1234:key"));
    assert!(p.matches("acs:kms:cn-hangzhou:1234:key/k1"));
    assert!(!p.matches("acs:kms:cn-hangzhou:1234:alias/a"));
    let q = Pattern::exact("key/k?");
    assert!(q.matches("key/k1"));
    assert!(!q.matches("key/k"));
    assert!(!q.matches("key/k12"));
    assert!(Pattern::exact("a*b*c").matches("abbbc"));
    assert!(Pattern::exact("a*b*c").matches("abc"));
    assert!(!Pattern::exact("a*b*c").matches("abcd"));
    assert!(Pattern::exact("*").matches(""));
    assert!(Pattern::exact("**").matches("x"));
    assert!(Pattern::exact("?é").matches("xé"));
    // Empty segment (global RAM ARNs) is matched by `*`.
    assert!(Pattern::exact("acs:ram:*:1234:role/*").matches("acs:ram::1234:role/r"));
}

#[test]
fn resources_are_case_sensitive_actions_are_not() {
    let p = allow(json!("KMS:encrypt"), json!("acs:kms:*:*:key/K1"));
    let c = Context::new();
    assert_eq!(
        decide(
            std::slice::from_ref(&p),
            "kms:Encrypt",
            "acs:kms:r:1:key/K1",
            &c
        ),
        Decision::Allow
    );
    assert_eq!(
        decide(
            std::slice::from_ref(&p),
            "kms:ENCRYPT",
            "acs:kms:r:1:key/K1",
            &c
        ),
        Decision::Allow
    );
    assert_eq!(
        decide(&[p], "kms:Encrypt", "acs:kms:r:1:key/k1", &c),
        Decision::ImplicitDeny
    );
    let w = allow(json!("kms:describe*"), json!("*"));
    assert_eq!(decide(&[w], "kms:DescribeKey", K1, &c), Decision::Allow);
}

#[test]
fn action_star_matches_every_service() {
    let p = allow(json!("*"), json!("*"));
    let c = Context::new();
    assert_eq!(
        decide(std::slice::from_ref(&p), "kms:Encrypt", K1, &c),
        Decision::Allow
    );
    assert_eq!(
        decide(&[p], "sts:AssumeRole", "acs:ram::1:role/r", &c),
        Decision::Allow
    );
    let k = allow(json!("kms:*"), json!("*"));
    assert_eq!(
        decide(&[k], "ram:CreateUser", "*", &c),
        Decision::ImplicitDeny
    );
}

#[test]
fn not_action_with_deny_denies_all_but_the_listed() {
    let p = policy(json!({"Version":"1","Statement":[
        {"Effect":"Allow","Action":"*","Resource":"*"},
        {"Effect":"Deny","NotAction":["kms:Encrypt","kms:Decrypt"],"Resource":"*"}]}));
    let c = Context::new();
    assert_eq!(
        decide(std::slice::from_ref(&p), "kms:Encrypt", K1, &c),
        Decision::Allow
    );
    assert_eq!(
        decide(&[p], "kms:DescribeKey", K1, &c),
        Decision::ExplicitDeny
    );
}

#[test]
fn multi_value_elements_match_any() {
    let p = allow(json!(["kms:Encrypt", "kms:Decrypt"]), json!([K2, K1]));
    let c = Context::new();
    assert_eq!(
        decide(std::slice::from_ref(&p), "kms:Decrypt", K1, &c),
        Decision::Allow
    );
    assert_eq!(decide(&[p], "kms:Decrypt", KC, &c), Decision::ImplicitDeny);
}

// ---------------------------------------------------------------- operators

/// Evaluates `{"<op>": {"<key>": values}}` on an allow-all statement.
fn cond(op: &str, key: &str, values: Value, ctx: &Context) -> bool {
    let p = policy(
        json!({"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*",
        "Condition":{op:{key:values}}}]}),
    );
    decide(&[p], "kms:Encrypt", K1, ctx).is_allow()
}

#[test]
fn string_operators() {
    let c = Context::new().string("k", "Apollo");
    assert!(cond("StringEquals", "k", json!("Apollo"), &c));
    assert!(!cond("StringEquals", "k", json!("apollo"), &c));
    assert!(cond("StringEquals", "k", json!(["x", "Apollo"]), &c));
    assert!(cond("StringNotEquals", "k", json!(["x", "y"]), &c));
    assert!(!cond("StringNotEquals", "k", json!(["x", "Apollo"]), &c));
    assert!(cond("StringEqualsIgnoreCase", "k", json!("APOLLO"), &c));
    assert!(!cond("StringEqualsIgnoreCase", "k", json!("gemini"), &c));
    assert!(cond("StringNotEqualsIgnoreCase", "k", json!("gemini"), &c));
    assert!(!cond("StringNotEqualsIgnoreCase", "k", json!("apollo"), &c));
    assert!(cond("StringLike", "k", json!("Ap*o"), &c));
    assert!(cond("StringLike", "k", json!("Apoll?"), &c));
    assert!(!cond("StringLike", "k", json!("ap*"), &c)); // case-sensitive
    assert!(cond("StringNotLike", "k", json!("ap*"), &c));
    assert!(!cond("StringNotLike", "k", json!(["x", "A*"]), &c));
}

#[test]
fn numeric_operators() {
    let c = Context::new().string("n", "10");
    assert!(cond("NumericEquals", "n", json!(10), &c));
    assert!(cond("NumericEquals", "n", json!("10.0"), &c));
    assert!(!cond("NumericEquals", "n", json!(11), &c));
    assert!(cond("NumericNotEquals", "n", json!(11), &c));
    assert!(!cond("NumericNotEquals", "n", json!(10), &c));
    assert!(cond("NumericLessThan", "n", json!(11), &c));
    assert!(!cond("NumericLessThan", "n", json!(10), &c));
    assert!(cond("NumericLessThanEquals", "n", json!(10), &c));
    assert!(cond("NumericGreaterThan", "n", json!(9), &c));
    assert!(!cond("NumericGreaterThan", "n", json!(10), &c));
    assert!(cond("NumericGreaterThanEquals", "n", json!(10), &c));
    // A request value that is not a number: false, for the negated operator too.
    let bad = Context::new().string("n", "ten");
    assert!(!cond("NumericEquals", "n", json!(10), &bad));
    assert!(!cond("NumericNotEquals", "n", json!(10), &bad));
}

#[test]
fn date_operators() {
    let c = Context::new().current_time(datetime!(2026-12-01 10:00:00 UTC));
    let t = keys::CURRENT_TIME;
    assert!(cond(
        "DateEquals",
        t,
        json!("2026-12-01T18:00:00+08:00"),
        &c
    ));
    assert!(!cond("DateEquals", t, json!("2026-12-01T10:00:01Z"), &c));
    assert!(cond("DateNotEquals", t, json!("2026-12-01T10:00:01Z"), &c));
    assert!(cond("DateLessThan", t, json!("2026-12-01T10:00:01Z"), &c));
    assert!(!cond("DateLessThan", t, json!("2026-12-01T10:00:00Z"), &c));
    assert!(cond(
        "DateLessThanEquals",
        t,
        json!("2026-12-01T10:00:00Z"),
        &c
    ));
    assert!(cond(
        "DateGreaterThan",
        t,
        json!("2012-11-11T23:59:59Z"),
        &c
    ));
    assert!(!cond(
        "DateGreaterThan",
        t,
        json!("2026-12-01T10:00:00Z"),
        &c
    ));
    assert!(cond(
        "DateGreaterThanEquals",
        t,
        json!("2026-12-01T10:00:00Z"),
        &c
    ));
    let s = Context::new().string(t, "2026-12-01T10:00:00Z");
    assert!(cond("DateEquals", t, json!("2026-12-01T10:00:00Z"), &s));
}

#[test]
fn bool_operator() {
    let https = Context::new().secure_transport(true);
    let http = Context::new().secure_transport(false);
    let k = keys::SECURE_TRANSPORT;
    assert!(cond("Bool", k, json!("true"), &https));
    assert!(cond("Bool", k, json!(true), &https));
    assert!(!cond("Bool", k, json!("true"), &http));
    assert!(cond("Bool", k, json!(false), &http));
    assert!(!cond("Bool", k, json!("true"), &Context::new()));
}

#[test]
fn ip_operators() {
    let k = keys::SOURCE_IP;
    let c = Context::new().source_ip(ip("192.168.3.4"));
    assert!(cond("IpAddress", k, json!("192.168.0.0/16"), &c));
    assert!(cond(
        "IpAddress",
        k,
        json!(["10.0.0.0/8", "192.168.3.4"]),
        &c
    ));
    assert!(!cond("IpAddress", k, json!("192.168.3.5"), &c));
    assert!(cond("IpAddress", k, json!("0.0.0.0/0"), &c));
    assert!(!cond("IpAddress", k, json!("2001:db8::/32"), &c));
    assert!(cond("NotIpAddress", k, json!("10.0.0.0/8"), &c));
    assert!(!cond(
        "NotIpAddress",
        k,
        json!(["10.0.0.0/8", "192.168.0.0/16"]),
        &c
    ));
    let v6 = Context::new().source_ip(ip("2001:db8::1"));
    assert!(cond("IpAddress", k, json!("2001:db8::/32"), &v6));
    assert!(!cond("IpAddress", k, json!("2001:db9::/32"), &v6));
    assert!(cond("IpAddress", k, json!("::/0"), &v6));
}

#[test]
fn missing_key_positive_false_negated_true() {
    let c = Context::new();
    for op in Operator::ALL {
        let v = match op.name() {
            n if n.starts_with("Numeric") => json!(1),
            n if n.starts_with("Date") => json!("2026-01-01T00:00:00Z"),
            "Bool" => json!("true"),
            n if n.contains("Ip") => json!("10.0.0.0/8"),
            _ => json!("x"),
        };
        assert_eq!(
            cond(op.name(), "absent", v, &c),
            op.negated(),
            "{}",
            op.name()
        );
    }
}

#[test]
fn several_keys_and_operators_are_anded() {
    let doc = json!({"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*",
        "Condition":{"StringEquals":{"a":"1","b":"2"},"Bool":{"c":"true"}}}]});
    let p = policy(doc);
    let full = Context::new()
        .string("a", "1")
        .string("b", "2")
        .secure_transport(true);
    let full = full.set("c", ContextValue::Bool(true));
    assert!(decide(std::slice::from_ref(&p), "kms:Encrypt", K1, &full).is_allow());
    let no_b = Context::new()
        .string("a", "1")
        .set("c", ContextValue::Bool(true));
    assert!(!decide(std::slice::from_ref(&p), "kms:Encrypt", K1, &no_b).is_allow());
    let no_c = Context::new().string("a", "1").string("b", "2");
    assert!(!decide(&[p], "kms:Encrypt", K1, &no_c).is_allow());
}

// ---------------------------------------------------------------- §4.6 worked examples

#[test]
fn example_1_crypto_user_encrypts() {
    let p = [sys(&system::ALIYUN_KMS_CRYPTO_USER_ACCESS)];
    assert_eq!(decide(&p, "kms:Encrypt", K1, &k1_ctx()), Decision::Allow);
}

#[test]
fn example_2_crypto_user_cannot_create_key() {
    let p = [sys(&system::ALIYUN_KMS_CRYPTO_USER_ACCESS)];
    assert_eq!(
        decide(&p, "kms:CreateKey", KC, &Context::new()),
        Decision::ImplicitDeny
    );
}

#[test]
fn example_3_deny_wins_regardless_of_order_or_policy() {
    let a = allow(json!("kms:*"), json!("*"));
    let d = policy(json!({"Version":"1","Statement":[
        {"Effect":"Deny","Action":"kms:ScheduleKeyDeletion","Resource":"acs:kms:*:*:key/*"}]}));
    let c = k1_ctx();
    let one = [a.clone(), d.clone()];
    let other = [d, a];
    assert_eq!(
        decide(&one, "kms:ScheduleKeyDeletion", K1, &c),
        Decision::ExplicitDeny
    );
    assert_eq!(
        decide(&other, "kms:ScheduleKeyDeletion", K1, &c),
        Decision::ExplicitDeny
    );
    assert_eq!(decide(&one, "kms:DescribeKey", K1, &c), Decision::Allow);
}

#[test]
fn example_4_not_action_allow_does_not_deny() {
    let p = [policy(json!({"Version":"1","Statement":[{"Effect":"Allow",
        "NotAction":["kms:Delete*","kms:ScheduleKeyDeletion"],"Resource":"*"}]}))];
    let c = Context::new();
    assert_eq!(decide(&p, "kms:DescribeKey", K1, &c), Decision::Allow);
    let alias = "acs:kms:cn-hangzhou:1234:alias/a";
    assert_eq!(
        decide(&p, "kms:DeleteAlias", alias, &c),
        Decision::ImplicitDeny
    );
}

#[test]
fn example_5_one_false_operator_and_the_statement_does_not_match() {
    let p = [policy(
        json!({"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*",
        "Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":["192.168.0.0/16"]},
        "Bool":{"acs:SecureTransport":"true"}}}]}),
    )];
    let c = Context::new()
        .source_ip(ip("10.0.0.7"))
        .secure_transport(true);
    assert_eq!(decide(&p, "kms:Encrypt", K1, &c), Decision::ImplicitDeny);
    let inside = Context::new()
        .source_ip(ip("192.168.1.1"))
        .secure_transport(true);
    assert_eq!(decide(&p, "kms:Encrypt", K1, &inside), Decision::Allow);
}

#[test]
fn example_6_tag_condition() {
    let p = [policy(json!({"Version":"1","Statement":[{"Effect":"Allow",
        "Action":["kms:Encrypt","kms:Decrypt","kms:GenerateDataKey"],"Resource":["*"],
        "Condition":{"StringEqualsIgnoreCase":{"kms:tag/Project":["Apollo"]}}}]}))];
    assert_eq!(decide(&p, "kms:Encrypt", K1, &k1_ctx()), Decision::Allow);
    assert_eq!(
        decide(&p, "kms:Encrypt", K2, &Context::new()),
        Decision::ImplicitDeny
    );
}

#[test]
fn example_7_session_policy_narrows() {
    let role = [allow(json!("kms:*"), json!("*"))];
    let session = match Policy::parse(
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"acs:kms:*:*:key/k1"}]}"#,
        PolicyKind::Session,
    ) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let set = PolicySet::new(&role).with_session(&session);
    let c = Context::new();
    assert_eq!(
        set.decide_one(&Check::new("kms:Decrypt", K1), &c),
        Decision::Allow
    );
    assert_eq!(
        set.decide_one(&Check::new("kms:Decrypt", K2), &c),
        Decision::ImplicitDeny
    );
    assert_eq!(
        set.decide_one(&Check::new("kms:Encrypt", K1), &c),
        Decision::ImplicitDeny
    );
}

fn trust_doc(principal: &str) -> Policy {
    let doc = json!({"Statement":[{"Action":"sts:AssumeRole","Effect":"Allow",
        "Principal":{"RAM":[principal]}}],"Version":"1"});
    match Policy::parse(&doc.to_string(), PolicyKind::Trust) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

const ROLE: &str = "acs:ram::1234:role/kms-user";

fn alice_policies() -> Vec<Policy> {
    vec![allow(
        json!("sts:AssumeRole"),
        json!("acs:ram:*:1234:role/kms-user"),
    )]
}

#[test]
fn example_8_assume_role_both_allow() {
    let a = alice_policies();
    let alice = Caller::ram_user("1234", "alice");
    let t = trust_doc("acs:ram::1234:root");
    let d = assume_role(&PolicySet::new(&a), &alice, ROLE, &t, &Context::new());
    assert_eq!(d, Decision::Allow);
}

#[test]
fn example_9_trust_names_someone_else() {
    let a = alice_policies();
    let alice = Caller::ram_user("1234", "alice");
    let t = trust_doc("acs:ram::1234:user/bob");
    let d = assume_role(&PolicySet::new(&a), &alice, ROLE, &t, &Context::new());
    assert_eq!(d, Decision::ImplicitDeny);
    let bob = Caller::ram_user("1234", "bob");
    let d = assume_role(&PolicySet::new(&a), &bob, ROLE, &t, &Context::new());
    assert_eq!(d, Decision::Allow);
}

#[test]
fn example_10_trust_alone_is_not_enough() {
    let alice = Caller::ram_user("1234", "alice");
    let t = trust_doc("acs:ram::1234:root");
    let d = assume_role(&PolicySet::new(&[]), &alice, ROLE, &t, &Context::new());
    assert_eq!(d, Decision::ImplicitDeny);
}

#[test]
fn example_11_group_policies_count() {
    // The user's own policies (none) and its group's, evaluated together.
    let p = [sys(&system::ALIYUN_KMS_READ_ONLY_ACCESS)];
    assert_eq!(
        decide(&p, "kms:ListKeys", KC, &Context::new()),
        Decision::Allow
    );
    assert_eq!(
        decide(&p, "kms:Encrypt", K1, &k1_ctx()),
        Decision::ImplicitDeny
    );
}

#[test]
fn several_checks_all_must_allow() {
    let p = [allow(json!("kms:*"), json!("acs:kms:*:*:key/*"))];
    let set = PolicySet::new(&p);
    let c = Context::new();
    let key_only = [Check::new("kms:CreateAlias", K1)];
    assert_eq!(set.decide(&key_only, &c), Decision::Allow);
    let both = [
        Check::new("kms:CreateAlias", "acs:kms:cn-hangzhou:1234:alias/a"),
        Check::new("kms:CreateAlias", K1),
    ];
    assert_eq!(set.decide(&both, &c), Decision::ImplicitDeny);
    assert_eq!(set.decide(&[], &c), Decision::ImplicitDeny);
}

// ---------------------------------------------------------------- system policies

#[test]
fn every_system_policy_parses() {
    for p in SYSTEM_POLICIES {
        let compiled = sys(p);
        assert!(!compiled.statements.is_empty(), "{}", p.name);
        assert_eq!(system::SystemPolicy::by_name(p.name), Some(p));
    }
}

#[test]
fn crypto_admin_matches_containers_but_not_resourceless_actions() {
    let p = [sys(&system::ALIYUN_KMS_CRYPTO_ADMIN_ACCESS)];
    let c = Context::new();
    assert_eq!(decide(&p, "kms:CreateKey", KC, &c), Decision::Allow);
    let ac = "acs:kms:cn-hangzhou:1234:alias";
    assert_eq!(decide(&p, "kms:ListAliases", ac, &c), Decision::Allow);
    assert_eq!(
        decide(&p, "kms:GetRandomPassword", "*", &c),
        Decision::ImplicitDeny
    );
    let full = [sys(&system::ALIYUN_KMS_FULL_ACCESS)];
    assert_eq!(
        decide(&full, "kms:GetRandomPassword", "*", &c),
        Decision::Allow
    );
}

// ---------------------------------------------------------------- KMS checks

#[test]
fn kms_checks_from_the_action_table() {
    let s = Scope {
        region: "cn-hangzhou",
        account: "1234",
    };
    let k = Ids {
        key_id: Some("k1"),
        ..Ids::default()
    };
    assert_eq!(
        checks(Action::Encrypt, s, k),
        Ok(vec![Check::new("kms:Encrypt", K1)])
    );
    assert_eq!(
        checks(Action::CreateKey, s, Ids::default()),
        Ok(vec![Check::new("kms:CreateKey", KC)])
    );
    assert_eq!(
        checks(Action::ListAliases, s, Ids::default()),
        Ok(vec![Check::new(
            "kms:ListAliases",
            "acs:kms:cn-hangzhou:1234:alias"
        )])
    );
    let alias = Ids {
        key_id: Some("k1"),
        alias_name: Some("alias/a"),
        ..Ids::default()
    };
    assert_eq!(
        checks(Action::CreateAlias, s, alias),
        Ok(vec![
            Check::new("kms:CreateAlias", "acs:kms:cn-hangzhou:1234:alias/a"),
            Check::new("kms:CreateAlias", K1),
        ])
    );
    let re = Ids {
        key_id: Some("k1"),
        destination_key_id: Some("k2"),
        ..Ids::default()
    };
    assert_eq!(
        checks(Action::ReEncrypt, s, re),
        Ok(vec![
            Check::new("kms:ReEncryptFrom", K1),
            Check::new("kms:ReEncryptTo", K2),
        ])
    );
    assert_eq!(
        checks(Action::Encrypt, s, Ids::default()),
        Err(MissingId {
            action: crate::action::ApiAction::Kms(Action::Encrypt),
            resource: Resource::Key
        })
    );
    assert_eq!(
        checks(Action::DescribeRegions, s, Ids::default()),
        Ok(vec![])
    );
    assert_eq!(s.alias("a"), s.alias("alias/a"));
    assert_eq!(s.secret("db"), "acs:kms:cn-hangzhou:1234:secret/db");
    assert_eq!(s.secret_container(), "acs:kms:cn-hangzhou:1234:secret");
    assert_eq!(s.key_container(), KC);
}

#[test]
fn every_action_with_ids_yields_its_checks() {
    let s = Scope {
        region: "r",
        account: "1",
    };
    let ids = Ids {
        key_id: Some("k"),
        destination_key_id: Some("k2"),
        alias_name: Some("alias/a"),
        secret_name: Some("s"),
        ..Ids::default()
    };
    for a in Action::ALL {
        let cs = checks(*a, s, ids).unwrap_or_default();
        assert_eq!(cs.len(), a.ram().len(), "{a}");
        for c in &cs {
            assert!(c.action.starts_with("kms:"), "{a}");
            assert!(
                c.resource == "*" || c.resource.starts_with("acs:kms:r:1:"),
                "{a}"
            );
        }
    }
}

// ---------------------------------------------------------------- malformed documents

fn refused(kind: PolicyKind, text: &str) -> PolicyError {
    match Policy::parse(text, kind) {
        Ok(p) => panic!("accepted {text}: {p:?}"),
        Err(e) => e,
    }
}

fn malformed(text: &str) -> Malformed {
    let e = refused(PolicyKind::Identity, text);
    assert_eq!(e.code(), "MalformedPolicyDocument", "{text}");
    match e.reason() {
        Some(r) => r.clone(),
        None => panic!("not malformed: {e}"),
    }
}

const ST: &str = r#""Effect":"Allow","Action":"kms:Encrypt","Resource":"*""#;

#[test]
fn malformed_documents_each_with_its_reason() {
    assert!(matches!(malformed("{"), M::InvalidJson(_)));
    assert_eq!(malformed("[]"), M::NotAnObject);
    assert_eq!(malformed(r#"{"Statement":[{}]}"#), M::MissingVersion);
    assert_eq!(
        malformed(&format!(r#"{{"Version":1,"Statement":[{{{ST}}}]}}"#)),
        M::UnsupportedVersion("1".into())
    );
    assert_eq!(
        malformed(&format!(r#"{{"Version":"2","Statement":[{{{ST}}}]}}"#)),
        M::UnsupportedVersion("\"2\"".into())
    );
    assert_eq!(malformed(r#"{"Version":"1"}"#), M::MissingStatement);
    assert_eq!(
        malformed(r#"{"Version":"1","Statement":[]}"#),
        M::EmptyStatement
    );
    assert_eq!(
        malformed(&format!(
            r#"{{"Version":"1","Id":"x","Statement":[{{{ST}}}]}}"#
        )),
        M::UnknownTopLevelKey("Id".into())
    );
    let one = |s: &str| format!(r#"{{"Version":"1","Statement":[{{{ST}}},{{{s}}}]}}"#);
    assert_eq!(
        malformed(r#"{"Version":"1","Statement":["x"]}"#),
        M::StatementNotObject { statement: 0 }
    );
    assert_eq!(
        malformed(&one(
            r#""Effect":"Allow","Action":"*","Resource":"*","Foo":1"#
        )),
        M::UnknownStatementKey {
            statement: 1,
            key: "Foo".into()
        }
    );
    assert_eq!(
        malformed(&one(r#""Action":"*","Resource":"*""#)),
        M::MissingEffect { statement: 1 }
    );
    assert_eq!(
        malformed(&one(r#""Effect":"allow","Action":"*","Resource":"*""#)),
        M::BadEffect {
            statement: 1,
            value: "\"allow\"".into()
        }
    );
    assert_eq!(
        malformed(&one(
            r#""Effect":"Allow","Action":"*","NotAction":"kms:X","Resource":"*""#
        )),
        M::ActionAndNotAction { statement: 1 }
    );
    assert_eq!(
        malformed(&one(r#""Effect":"Allow","Resource":"*""#)),
        M::MissingAction { statement: 1 }
    );
    assert_eq!(
        malformed(&one(
            r#""Effect":"Allow","Action":["kms:A",3],"Resource":"*""#
        )),
        M::NotStringOrArray {
            statement: 1,
            field: "Action"
        }
    );
    assert_eq!(
        malformed(&one(r#""Effect":"Allow","Action":"*","Resource":[]"#)),
        M::EmptyArray {
            statement: 1,
            field: "Resource"
        }
    );
    assert_eq!(
        malformed(&one(
            r#""Effect":"Allow","Action":"Encrypt","Resource":"*""#
        )),
        M::BadAction {
            statement: 1,
            value: "Encrypt".into()
        }
    );
    assert_eq!(
        malformed(&one(r#""Effect":"Allow","Action":"*","NotResource":"*""#)),
        M::NotResource { statement: 1 }
    );
    assert_eq!(
        malformed(&one(r#""Effect":"Allow","Action":"*""#)),
        M::MissingResource { statement: 1 }
    );
    assert_eq!(
        malformed(&one(
            r#""Effect":"Allow","Action":"*","Resource":"*","Principal":{"RAM":"x"}"#
        )),
        M::UnexpectedPrincipal { statement: 1 }
    );
    assert_eq!(
        malformed(&one(
            r#""Effect":"Allow","Action":"*","Resource":"*","Condition":[]"#
        )),
        M::ConditionNotObject { statement: 1 }
    );
    assert_eq!(
        malformed(&one(
            r#""Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualsIfExists":{"a":"b"}}"#
        )),
        M::UnknownOperator {
            statement: 1,
            operator: "StringEqualsIfExists".into()
        }
    );
    assert_eq!(
        malformed(&one(
            r#""Effect":"Allow","Action":"*","Resource":"*","Condition":{"stringequals":{"a":"b"}}"#
        )),
        M::UnknownOperator {
            statement: 1,
            operator: "stringequals".into()
        }
    );
    assert_eq!(
        malformed(&one(
            r#""Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":"x"}"#
        )),
        M::OperatorNotObject {
            statement: 1,
            operator: "Bool".into()
        }
    );
    let bad_value = |op: &str, v: &str| {
        malformed(&one(&format!(
            r#""Effect":"Allow","Action":"*","Resource":"*","Condition":{{"{op}":{{"k":{v}}}}}"#
        )))
    };
    let bv = |op: &str, value: &str| M::BadConditionValue {
        statement: 1,
        operator: op.into(),
        key: "k".into(),
        value: value.into(),
    };
    assert_eq!(
        bad_value("IpAddress", r#""10.0.0.0/33""#),
        bv("IpAddress", "\"10.0.0.0/33\"")
    );
    assert_eq!(
        bad_value("IpAddress", r#""10.0.0/8""#),
        bv("IpAddress", "\"10.0.0/8\"")
    );
    assert_eq!(
        bad_value("DateLessThan", r#""yesterday""#),
        bv("DateLessThan", "\"yesterday\"")
    );
    assert_eq!(
        bad_value("NumericEquals", r#""1e""#),
        bv("NumericEquals", "\"1e\"")
    );
    assert_eq!(bad_value("Bool", r#""yes""#), bv("Bool", "\"yes\""));
    assert_eq!(
        bad_value("StringEquals", r#"{"a":1}"#),
        bv("StringEquals", r#"{"a":1}"#)
    );
    assert_eq!(bad_value("StringEquals", "[]"), bv("StringEquals", "[]"));
    assert_eq!(
        malformed(&one(
            r#""Sid":1,"Effect":"Allow","Action":"*","Resource":"*""#
        )),
        M::BadSid { statement: 1 }
    );
}

#[test]
fn duplicate_keys_are_refused_not_last_wins() {
    let text = r#"{"Version":"1","Statement":[{"Effect":"Deny","Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    match malformed(text) {
        M::InvalidJson(m) => assert!(m.contains("duplicate key \"Effect\""), "{m}"),
        other => panic!("{other:?}"),
    }
    let nested = r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"k":"true","k":"false"}}}]}"#;
    assert!(matches!(malformed(nested), M::InvalidJson(_)));
}

#[test]
fn hostile_documents_are_refused_or_cheap() {
    // Deep nesting stops at serde_json's recursion limit, as invalid JSON.
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    assert!(matches!(malformed(&deep), M::InvalidJson(_)));
    // A many-star pattern against a long resource is matched without blowing up.
    let pattern = format!("{}b", "*a".repeat(40));
    let p = policy(
        json!({"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":pattern}]}),
    );
    let resource = "a".repeat(5000);
    let started = std::time::Instant::now();
    assert_eq!(
        decide(&[p], "kms:Encrypt", &resource, &Context::new()),
        Decision::ImplicitDeny
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn messages_name_the_statement_and_field() {
    let e = refused(
        PolicyKind::Identity,
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*"}]}"#,
    );
    assert_eq!(e.to_string(), "Statement[0].Resource is missing");
    assert_eq!(e.message(), "Statement[0].Resource is missing");
    let s = refused(
        PolicyKind::Session,
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*"}]}"#,
    );
    assert_eq!(
        s.message(),
        "The parameter Policy has not passed grammar check."
    );
    assert_eq!(s.to_string(), "Statement[0].Resource is missing");
}

#[test]
fn trust_and_session_documents() {
    let r = refused(
        PolicyKind::Trust,
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*","Principal":{"RAM":"x"}}]}"#,
    );
    assert_eq!(r.reason(), Some(&M::ResourceInTrust { statement: 0 }));
    let r = refused(
        PolicyKind::Trust,
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}"#,
    );
    assert_eq!(r.reason(), Some(&M::MissingPrincipal { statement: 0 }));
    let r = refused(
        PolicyKind::Trust,
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{"User":"x"}}]}"#,
    );
    assert!(matches!(
        r.reason(),
        Some(M::BadPrincipal { statement: 0, .. })
    ));
    // The CreateRole sample: Principal value as a single string, Statement as an object.
    let ok = Policy::parse(
        r#"{"Statement":{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"RAM":"acs:ram::1234:root"}},"Version":"1"}"#,
        PolicyKind::Trust,
    );
    assert!(ok.is_ok(), "{ok:?}");
    // Session policies refuse with the STS codes.
    let s = refused(PolicyKind::Session, r#"{"Version":"1"}"#);
    assert_eq!(s.code(), "InvalidParameter.PolicyGrammar");
}

#[test]
fn length_limits_per_kind() {
    let pad = " ".repeat(2049);
    let text = format!(r#"{{"Version":"1","Statement":[{{{ST}}}]}}{pad}"#);
    let s = refused(PolicyKind::Session, &text);
    assert_eq!(s.code(), "InvalidParameter.PolicySize");
    assert_eq!(
        s.message(),
        "The size of Policy must be smaller than 1024 bytes."
    );
    assert!(matches!(s, PolicyError::TooLong { chars, .. } if chars == text.chars().count()));
    assert!(Policy::parse(&text, PolicyKind::Identity).is_ok());
    let long = format!(
        r#"{{"Version":"1","Statement":[{{{ST}}}]}}{}"#,
        " ".repeat(6144)
    );
    assert_eq!(
        refused(PolicyKind::Identity, &long).code(),
        "InvalidParameter.PolicyDocument.Length"
    );
    assert_eq!(
        refused(PolicyKind::Trust, &long).code(),
        "InvalidParameter.AssumeRolePolicyDocument.Length"
    );
}

// ---------------------------------------------------------------- properties

const ACTIONS: &[&str] = &[
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:CreateKey",
    "kms:ScheduleKeyDeletion",
    "sts:AssumeRole",
];
const ACTION_PATTERNS: &[&str] = &[
    "*",
    "kms:*",
    "kms:Encrypt",
    "kms:?ncrypt",
    "KMS:describe*",
    "kms:Create*",
    "sts:AssumeRole",
];
const RESOURCES: &[&str] = &[K1, K2, KC, "*", "acs:ram::1234:role/r"];
const RESOURCE_PATTERNS: &[&str] = &[
    "*",
    "acs:kms:*:*:key/*",
    "acs:kms:*:*:key*",
    K1,
    "acs:kms:cn-hangzhou:1234:key/k?",
];
const CONDITIONS: &[&str] = &[
    r#"{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"}}"#,
    r#"{"NotIpAddress":{"acs:SourceIp":"10.1.0.0/16"}}"#,
    r#"{"Bool":{"acs:SecureTransport":"true"}}"#,
    r#"{"StringEqualsIgnoreCase":{"kms:tag/Project":"Apollo"}}"#,
    r#"{"StringNotEquals":{"kms:tag/Project":"gemini"}}"#,
    r#"{"DateLessThan":{"acs:CurrentTime":"2026-06-01T00:00:00Z"}}"#,
];

fn arb_statement() -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        any::<bool>(),
        proptest::sample::subsequence(ACTION_PATTERNS, 1..3),
        proptest::sample::subsequence(RESOURCE_PATTERNS, 1..3),
        proptest::option::of(proptest::sample::select(CONDITIONS)),
    )
        .prop_map(|(deny, not_action, actions, resources, condition)| {
            let mut st = json!({
                "Effect": if deny { "Deny" } else { "Allow" },
                "Resource": resources,
            });
            st[if not_action { "NotAction" } else { "Action" }] = json!(actions);
            if let Some(c) = condition {
                st["Condition"] = serde_json::from_str(c).unwrap_or(Value::Null);
            }
            st
        })
}

fn doc(statements: &[Value], kind: PolicyKind) -> Policy {
    let v = json!({"Version":"1","Statement":statements});
    match Policy::parse(&v.to_string(), kind) {
        Ok(p) => p,
        Err(e) => panic!("{e}: {v}"),
    }
}

fn arb_context() -> impl Strategy<Value = Context> {
    (
        proptest::sample::select(&["10.1.2.3", "10.9.9.9", "192.168.0.1", "2001:db8::1"][..]),
        any::<bool>(),
        proptest::option::of(proptest::sample::select(&["apollo", "gemini", "x"][..])),
        any::<bool>(),
    )
        .prop_map(|(addr, https, tag, early)| {
            let now = if early {
                datetime!(2026-01-01 00:00:00 UTC)
            } else {
                datetime!(2027-01-01 00:00:00 UTC)
            };
            let c = Context::new()
                .source_ip(ip(addr))
                .secure_transport(https)
                .current_time(now);
            match tag {
                Some(t) => c.tag("Project", t),
                None => c,
            }
        })
}

fn arb_check() -> impl Strategy<Value = Check> {
    (
        proptest::sample::select(ACTIONS),
        proptest::sample::select(RESOURCES),
    )
        .prop_map(|(a, r)| Check::new(a, r))
}

fn allow_stmt(st: &Value) -> bool {
    st["Effect"] == "Allow"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Adding a Deny statement never turns a non-Allow into Allow; adding one that matches
    /// everything turns any decision into ExplicitDeny.
    #[test]
    fn deny_always_wins(
        sts in proptest::collection::vec(arb_statement(), 1..5),
        extra in arb_statement(),
        check in arb_check(),
        ctx in arb_context(),
    ) {
        let before = basic(&[doc(&sts, PolicyKind::Identity)], &check, &ctx);
        let mut deny = extra.clone();
        deny["Effect"] = json!("Deny");
        let mut with = sts.clone();
        with.push(deny);
        let after = basic(&[doc(&with, PolicyKind::Identity)], &check, &ctx);
        if before != Decision::Allow {
            prop_assert_ne!(after, Decision::Allow);
        }
        if before == Decision::ExplicitDeny {
            prop_assert_eq!(after, Decision::ExplicitDeny);
        }
        let mut all = sts;
        all.push(json!({"Effect":"Deny","Action":"*","Resource":"*"}));
        prop_assert_eq!(basic(&[doc(&all, PolicyKind::Identity)], &check, &ctx), Decision::ExplicitDeny);
    }

    /// A policy grants nothing its statements do not: an Allow comes from some Allow
    /// statement that allows on its own, and removing an Allow statement never adds an Allow.
    #[test]
    fn never_grants_more_than_its_statements(
        sts in proptest::collection::vec(arb_statement(), 1..5),
        check in arb_check(),
        ctx in arb_context(),
    ) {
        let whole = basic(&[doc(&sts, PolicyKind::Identity)], &check, &ctx);
        if whole == Decision::Allow {
            let some = sts.iter().filter(|s| allow_stmt(s)).any(|s| {
                basic(&[doc(std::slice::from_ref(s), PolicyKind::Identity)], &check, &ctx)
                    == Decision::Allow
            });
            prop_assert!(some);
        }
        for i in 0..sts.len() {
            if !allow_stmt(&sts[i]) || sts.len() == 1 {
                continue;
            }
            let mut fewer = sts.clone();
            fewer.remove(i);
            let d = basic(&[doc(&fewer, PolicyKind::Identity)], &check, &ctx);
            if whole != Decision::Allow {
                prop_assert_ne!(d, Decision::Allow);
            }
        }
    }

    /// A session policy never widens: allowed with it ⇒ allowed by the identity policies
    /// alone and by the session policy alone.
    #[test]
    fn session_policy_never_widens(
        identity in proptest::collection::vec(arb_statement(), 1..4),
        session in proptest::collection::vec(arb_statement(), 1..3),
        check in arb_check(),
        ctx in arb_context(),
    ) {
        let id = [doc(&identity, PolicyKind::Identity)];
        let s = doc(&session, PolicyKind::Session);
        let with = PolicySet::new(&id).with_session(&s).decide_one(&check, &ctx);
        let alone = PolicySet::new(&id).decide_one(&check, &ctx);
        if with == Decision::Allow {
            prop_assert_eq!(alone, Decision::Allow);
            prop_assert_eq!(basic(std::slice::from_ref(&s), &check, &ctx), Decision::Allow);
        }
        if alone == Decision::ExplicitDeny {
            prop_assert_ne!(with, Decision::Allow);
        }
    }

    /// `*` matches every string; a pattern without wildcards matches only itself (exactly
    /// for resources, case-insensitively for actions).
    #[test]
    fn star_matches_all_literal_only_itself(a in "[a-zA-Z0-9:/._-]{0,24}", b in "[a-zA-Z0-9:/._-]{0,24}") {
        prop_assert!(Pattern::exact("*").matches(&a));
        prop_assert!(Pattern::exact(&a).matches(&a));
        prop_assert_eq!(Pattern::exact(&a).matches(&b), a == b);
        prop_assert_eq!(
            Pattern::folded(&a).matches(&b.to_lowercase()),
            a.to_lowercase() == b.to_lowercase()
        );
        let pre = a.clone() + "*";
        let joined = a.clone() + &b;
        prop_assert!(Pattern::exact(&pre).matches(&joined));
    }

    /// Parsing never panics on arbitrary text, and anything it refuses has a code.
    #[test]
    fn parser_total(text in ".{0,200}") {
        if let Err(e) = Policy::parse(&text, PolicyKind::Identity) {
            prop_assert!(!e.code().is_empty());
        }
    }
}

// ------------------------------------------------ the request path's matching (wave6/ramperf)
//
// The request path matches borrowed checks ([`CheckRef`]: the table's action name, the ARN
// in pieces) without allocating. These tests hold it to the evaluator it replaced, kept
// here as written before: actions lower-cased into a new string, resources whole, globs
// over a `Vec<char>`.

mod reference {
    use super::super::condition::Context;
    use super::super::document::{Effect, Policy, Statement};
    use super::super::pattern::Pattern;
    use super::{Check, Decision};

    fn glob(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, _) => t.is_empty(),
            (Some('*'), _) => glob(&p[1..], t) || (!t.is_empty() && glob(p, &t[1..])),
            (Some('?'), Some(_)) => glob(&p[1..], &t[1..]),
            (Some(c), Some(d)) if c == d => glob(&p[1..], &t[1..]),
            _ => false,
        }
    }

    pub fn matches(p: &Pattern, text: &str) -> bool {
        match p {
            Pattern::Any => true,
            Pattern::Literal(l) => l == text,
            Pattern::Glob(g) => glob(g, &text.chars().collect::<Vec<_>>()),
        }
    }

    fn statement_matches(st: &Statement, action: &str, resource: &str, ctx: &Context) -> bool {
        (st.actions.iter().any(|a| matches(a, action)) != st.not_action)
            && st.resources.iter().any(|r| matches(r, resource))
            && st.conditions.iter().all(|c| c.holds(ctx))
    }

    pub fn basic(policies: &[Policy], check: &Check, ctx: &Context) -> Decision {
        let action = check.action.to_lowercase();
        let mut allowed = false;
        for st in policies.iter().flat_map(|p| &p.statements) {
            if statement_matches(st, &action, &check.resource, ctx) {
                match st.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }

    /// The checks as they were built: each ARN formatted whole by [`super::Scope`].
    pub fn checks(
        action: crate::action::ApiAction,
        scope: super::Scope<'_>,
        ids: super::Ids<'_>,
    ) -> Option<Vec<Check>> {
        use crate::action::Resource as R;
        let mut keys = [ids.key_id, ids.destination_key_id].into_iter();
        action
            .ram()
            .iter()
            .map(|c| {
                let resource = match c.resource {
                    R::Key => scope.key(keys.next().flatten()?),
                    R::KeyContainer => scope.key_container(),
                    R::Alias => scope.alias(ids.alias_name?),
                    R::AliasContainer => scope.alias_container(),
                    R::Secret => scope.secret(ids.secret_name?),
                    R::SecretContainer => scope.secret_container(),
                    R::Any => "*".to_string(),
                    R::User => scope.ram(&format!("user/{}", ids.user_name?)),
                    R::Group => scope.ram(&format!("group/{}", ids.group_name?)),
                    R::Role => scope.ram(&format!("role/{}", ids.role_name?)),
                    R::Policy => {
                        let name = ids.policy_name?;
                        if ids.system_policy {
                            format!("acs:ram::system:policy/{name}")
                        } else {
                            scope.ram(&format!("policy/{name}"))
                        }
                    }
                    R::AnyUser => scope.ram("user/*"),
                    R::AnyGroup => scope.ram("group/*"),
                    R::AnyRole => scope.ram("role/*"),
                    R::AnyPolicy => scope.ram("policy/*"),
                    R::RoleArn => ids.role_arn?.to_string(),
                };
                Some(Check::new(c.action, &resource))
            })
            .collect()
    }
}

/// Every action of every product's table, for the check builders.
fn every_api_action() -> Vec<crate::action::ApiAction> {
    use crate::action::ApiAction;
    let mut v: Vec<ApiAction> = Action::ALL.iter().map(|a| ApiAction::Kms(*a)).collect();
    v.extend(
        crate::action::ram::Action::ALL
            .iter()
            .map(|a| ApiAction::Ram(*a)),
    );
    v.extend(
        crate::action::sts::Action::ALL
            .iter()
            .map(|a| ApiAction::Sts(*a)),
    );
    v
}

#[test]
fn arn_pieces_compare_as_their_concatenation() {
    use super::kms::Arn;
    let s = Scope {
        region: "cn-hangzhou",
        account: "1234",
    };
    let mut out = Vec::new();
    let ids = Ids {
        key_id: Some("k1"),
        ..Ids::default()
    };
    assert!(super::kms::check_refs(Action::Encrypt, s, ids, &mut out).is_ok());
    let arn = out[0].resource;
    assert_eq!(arn.concat(), K1);
    assert_eq!(arn.to_string(), K1);
    assert_eq!(arn.len(), K1.len());
    assert!(arn.eq_str(K1));
    for other in [
        K2,
        KC,
        "acs:kms:cn-hangzhou:1234:key/k12",
        "",
        "*",
        "acs:kms:cn-hangzhou:1234:key/K1",
    ] {
        assert!(!arn.eq_str(other), "{other}");
    }
    assert!(Arn::whole("").is_empty());
    assert!(!arn.is_empty());
    let mut joined = None;
    assert!(Pattern::exact("acs:kms:*:1234:key/k?").matches_arn(&arn, &mut joined));
    assert_eq!(joined.as_deref(), Some(K1), "a glob joins the pieces once");
    assert!(!Pattern::exact("acs:kms:*:1234:key/k").matches_arn(&arn, &mut joined));
}

/// For every action of every table, with every id given or missing: the borrowed checks
/// are the checks formatted whole, and refused exactly when those were.
#[test]
fn check_refs_are_the_formatted_checks() {
    let s = Scope {
        region: "cn-hangzhou",
        account: "1234",
    };
    let full = Ids {
        key_id: Some("k1"),
        destination_key_id: Some("k2"),
        alias_name: Some("alias/a"),
        secret_name: Some("s"),
        user_name: Some("u"),
        group_name: Some("g"),
        role_name: Some("r"),
        policy_name: Some("p"),
        system_policy: false,
        role_arn: Some("acs:ram::1234:role/r"),
    };
    let bare = Ids {
        alias_name: Some("a"),
        system_policy: true,
        ..full
    };
    for a in every_api_action() {
        for ids in [full, bare, Ids::default()] {
            let new = checks(a, s, ids).ok();
            assert_eq!(new, reference::checks(a, s, ids), "{a:?} {ids:?}");
        }
    }
}

fn arb_case(s: &'static str) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<bool>(), s.len()).prop_map(move |up| {
        s.chars()
            .zip(up)
            .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The request path's evaluator decides as the one it replaced, on random policies,
    /// actions in any case, resources in random pieces and contexts.
    #[test]
    fn borrowed_checks_decide_as_before(
        sts in proptest::collection::vec(arb_statement(), 1..5),
        action in proptest::sample::select(ACTIONS).prop_flat_map(arb_case),
        resource in proptest::sample::select(RESOURCES),
        cuts in proptest::collection::vec(0usize..40, 0..5),
        ctx in arb_context(),
    ) {
        use super::kms::{Arn, CheckRef};
        let ps = [doc(&sts, PolicyKind::Identity)];
        let check = Check::new(&action, resource);
        let before = reference::basic(&ps, &check, &ctx);
        prop_assert_eq!(basic(&ps, &check, &ctx), before);
        // The same ARN cut into pieces at random places.
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(resource.len())).collect();
        cuts.sort_unstable();
        let mut pieces = Vec::new();
        let mut at = 0;
        for c in cuts.into_iter().take(5) {
            pieces.push(&resource[at..c]);
            at = c;
        }
        pieces.push(&resource[at..]);
        let mut parts = [""; 6];
        for (slot, p) in parts.iter_mut().zip(&pieces) {
            *slot = p;
        }
        let arn = Arn::from_parts(parts);
        prop_assert_eq!(arn.concat(), resource);
        let r = CheckRef { action: &action, resource: arn };
        prop_assert_eq!(super::eval::basic_ref(&ps, &r, &ctx), before);
        prop_assert_eq!(PolicySet::new(&ps).decide_refs(&[r], &ctx), PolicySet::new(&ps).decide(&[check], &ctx));
    }

    /// Folding while comparing is lower-casing first, for any text (non-ASCII included).
    #[test]
    fn matches_folding_is_matching_the_lowercase(
        pat in "[a-zA-Z:*?İK]{0,8}",
        text in "[a-zA-Z:İKı]{0,8}",
    ) {
        let p = Pattern::folded(&pat);
        prop_assert_eq!(p.matches_folding(&text), reference::matches(&p, &text.to_lowercase()));
        let e = Pattern::exact(&pat);
        prop_assert_eq!(e.matches(&text), reference::matches(&e, &text));
    }
}
