//! An in-process harness for counting instructions per request with callgrind
//! (`scripts/callgrind.sh` runs it): the API's axum app exactly as the server builds it —
//! SQLite data dir with its read-through cache, the nonce journal, the audit trail and its
//! writer thread, the protocol layer — answers `N` pre-built signed (v1) requests of one
//! action, or `N` `GET /healthz` as the baseline. What is not in it: hyper's HTTP/1 codec,
//! the kernel's networking, the background sweeper.
//!
//! The requests are signed and built before `kms_callgrind_begin` and the audit trail has
//! written every line before `kms_callgrind_end`; the script zeroes the counters on entering
//! the first and dumps them on entering the second, so the dump holds the cost of exactly
//! `N` requests, every thread included (the audit writer runs on its own thread).
//!
//! Usage: `callgrind_hot_path <Healthz|DescribeRegions|Encrypt|Decrypt|GenerateDataKey|GetSecretValue|EncryptAsRamUser|EncryptAsRoot24> [N]`
//!
//! `EncryptAsRamUser`: `Encrypt` signed by a RAM user whose one custom policy allows exactly
//! `kms:Encrypt` on the one key (set up through the RAM API, signed by the root key, before
//! the warm-up), against `EncryptAsRoot24`: `Encrypt` signed by a root key whose id is as
//! long as the RAM user's (24 characters, as real ones; the harness's own is 20, which saves
//! a SHA-256 block in the nonce digest).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::Request;
use base64::Engine;
use http_body_util::BodyExt;
use tower_service::Service;

use kms::audit::{AuditLog, AuditRecord, Settings};
use kms::clock::{system_now, OffsetClock};
use kms::keystore::wrapping::Pool;
use kms::protocol::signature::{percent_encode, v1_string_to_sign};
use kms::protocol::{throttle, Protocol};
use kms::server::{router, DataDir};
use kms::service::ServiceConfig;

/// The allocator the server binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ACCOUNT: &str = "1234567890123456";
const AK_ID: &str = "LTAIcallgrindharness";
const AK_SECRET: &str = "callgrind-harness-secret-0123456789";
/// 64 bytes of plaintext, as `kms bench` sends.
const PLAINTEXT: [u8; 64] = [0x5a; 64];

// The two markers must have different bodies, or the optimiser folds them into one symbol.

/// Zeroing point for `--zero-before`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn kms_callgrind_begin(n: usize) -> usize {
    std::hint::black_box(n).wrapping_add(1)
}

/// Dump point for `--dump-before`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn kms_callgrind_end(n: usize) -> usize {
    std::hint::black_box(n).wrapping_mul(3)
}

/// A v1-signed POST of `action` with `params`, as the SDKs send it (all in the query).
fn signed(action: &str, params: &[(&str, &str)], seq: usize) -> Request<Body> {
    signed_as("2016-01-20", (AK_ID, AK_SECRET), action, params, seq)
}

// ---------------------------------------------------------------- EncryptAsRamUser (wave6/ramperf)

/// A root access key id of the length of a RAM user's (`LTAI` + 20): the length decides how
/// many SHA-256 blocks the nonce digest takes, so EncryptAsRamUser compares with this one.
const ROOT24_ID: &str = "LTAIcallgrindharness0024";

/// [`signed`] with another API version and access key (the RAM API, a RAM user's key).
fn signed_as(
    version: &str,
    (ak_id, ak_secret): (&str, &str),
    action: &str,
    params: &[(&str, &str)],
    seq: usize,
) -> Request<Body> {
    let nonce = format!("{:032x}", seq as u128 + 0x1000);
    let now = kms::timefmt::format_unix(system_now());
    let mut all: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in [
        ("Action", action),
        ("Version", version),
        ("Format", "JSON"),
        ("AccessKeyId", ak_id),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", &nonce),
        ("Timestamp", &now),
        ("RegionId", "cn-hangzhou"),
    ] {
        all.push((k.to_string(), v.to_string()));
    }
    let sts = v1_string_to_sign("POST", all.iter());
    let key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        format!("{ak_secret}&").as_bytes(),
    );
    let sig = base64::engine::general_purpose::STANDARD
        .encode(aws_lc_rs::hmac::sign(&key, sts.as_bytes()));
    all.push(("Signature".into(), sig));
    let query = all
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    Request::builder()
        .method("POST")
        .uri(format!("/?{query}"))
        .header("host", "127.0.0.1:8080")
        .header("user-agent", "callgrind-harness")
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("request: {e}"))
}

/// A RAM user with one access key and one custom policy allowing exactly `kms:Encrypt` on
/// `key_id`, made through the RAM API signed by the root key; returns (id, secret).
async fn ram_user_for_encrypt(
    app: &axum::Router,
    key_id: &str,
    next: &mut impl FnMut() -> usize,
) -> (String, String) {
    let root = (AK_ID, AK_SECRET);
    let ram = kms::action::ram::VERSION;
    let mut call_ram = async |action: &str, params: &[(&str, &str)]| {
        let (status, body) = call(app, signed_as(ram, root, action, params, next())).await;
        assert_eq!(status, 200, "{action}: {}", String::from_utf8_lossy(&body));
        body
    };
    call_ram("CreateUser", &[("UserName", "callgrind-app")]).await;
    let body = call_ram("CreateAccessKey", &[("UserName", "callgrind-app")]).await;
    let v: serde_json::Value =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("CreateAccessKey: {e}"));
    let id = v["AccessKey"]["AccessKeyId"].as_str().map(str::to_string);
    let secret = v["AccessKey"]["AccessKeySecret"]
        .as_str()
        .map(str::to_string);
    let (Some(id), Some(secret)) = (id, secret) else {
        panic!("no AccessKey in {v}")
    };
    let document = serde_json::json!({
        "Version": "1",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["kms:Encrypt"],
            "Resource": [format!("acs:kms:cn-hangzhou:{ACCOUNT}:key/{key_id}")],
        }],
    })
    .to_string();
    call_ram(
        "CreatePolicy",
        &[
            ("PolicyName", "callgrind-encrypt"),
            ("PolicyDocument", &document),
        ],
    )
    .await;
    call_ram(
        "AttachPolicyToUser",
        &[
            ("PolicyType", "Custom"),
            ("PolicyName", "callgrind-encrypt"),
            ("UserName", "callgrind-app"),
        ],
    )
    .await;
    (id, secret)
}

// ---------------------------------------------------------------- end EncryptAsRamUser

fn healthz() -> Request<Body> {
    Request::builder()
        .method("GET")
        .uri("/healthz")
        .header("host", "127.0.0.1:8080")
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("request: {e}"))
}

async fn call(app: &axum::Router, req: Request<Body>) -> (u16, bytes::Bytes) {
    // The router is always ready (its `poll_ready` returns `Ready` at once).
    let resp = app.clone().call(req).await.unwrap_or_else(|e| match e {});
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("body: {e}"))
        .to_bytes();
    (status, body)
}

fn field(body: &[u8], name: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(body).unwrap_or_else(|e| panic!("response: {e}"));
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {v}"))
        .to_string()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let action = args.next().unwrap_or_else(|| "Encrypt".into());
    let n: usize = args
        .next()
        .map(|s| s.parse().unwrap_or_else(|_| panic!("N: {s}")))
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    rt.block_on(run(&action, n));
}

async fn run(action: &str, n: usize) {
    let dir = std::env::temp_dir().join(format!("kms-callgrind-{}", std::process::id()));
    let data = DataDir::open(&dir, None)
        .await
        .unwrap_or_else(|e| panic!("data dir: {e}"));
    let clock = Arc::new(OffsetClock::new());
    let kms = Arc::new(data.service(clock.clone(), Pool::new(0), ServiceConfig::default()));
    let account = kms::server::default_account(data.store.as_ref(), Some(ACCOUNT))
        .await
        .unwrap_or_else(|e| panic!("account: {e}"));
    kms.store()
        .ensure_account(&account, kms.now())
        .await
        .unwrap_or_else(|e| panic!("account: {e}"));
    kms.create_access_key(&account, Some((AK_ID.into(), AK_SECRET.into())))
        .await
        .unwrap_or_else(|e| panic!("access key: {}", e.message()));
    // EncryptAsRoot24 (wave6/ramperf): a second root key whose id is as long as a RAM
    // user's (and as real ones: `LTAI` + 20), the baseline EncryptAsRamUser compares with.
    if action == "EncryptAsRoot24" {
        kms.create_access_key(&account, Some((ROOT24_ID.into(), AK_SECRET.into())))
            .await
            .unwrap_or_else(|e| panic!("access key: {}", e.message()));
    }
    let audit = AuditLog::start(Settings::new(dir.join("audit")), data.keystore.clone())
        .unwrap_or_else(|e| panic!("audit: {e}"));
    let mut protocol =
        Protocol::with_limits(kms, throttle::Limits::UNLIMITED).with_audit_gate(audit.gate());
    protocol
        .nonces
        .open_journal(&dir.join("nonces"), system_now())
        .unwrap_or_else(|e| panic!("nonce journal: {e}"));
    let peer: SocketAddr = ([127, 0, 0, 1], 40000).into();
    let app = router(
        Arc::new(protocol),
        clock,
        Some(audit.clone()),
        false,
        Duration::from_secs(10),
        None,
    )
    .layer(MockConnectInfo(peer));

    // Set-up through the API itself: a key, and a ciphertext of it for Decrypt.
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };
    let (status, body) = call(&app, signed("CreateKey", &[], next())).await;
    assert_eq!(status, 200, "CreateKey: {}", String::from_utf8_lossy(&body));
    let key_id = field(
        &serde_json::to_vec(
            &serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_else(|e| panic!("{e}"))
                ["KeyMetadata"],
        )
        .unwrap_or_else(|e| panic!("{e}")),
        "KeyId",
    );
    let plaintext = base64::engine::general_purpose::STANDARD.encode(PLAINTEXT);
    let (status, body) = call(
        &app,
        signed(
            "Encrypt",
            &[("KeyId", &key_id), ("Plaintext", &plaintext)],
            next(),
        ),
    )
    .await;
    assert_eq!(status, 200, "Encrypt: {}", String::from_utf8_lossy(&body));
    let blob = field(&body, "CiphertextBlob");
    // EncryptAsRamUser (wave6/ramperf): the RAM user, only for that action.
    let ram_user = if action == "EncryptAsRamUser" {
        Some(ram_user_for_encrypt(&app, &key_id, &mut next).await)
    } else {
        None
    };

    // ---- GetSecretValue (issue 18): a secret with a 64-byte value, as `kms bench` makes ----
    const SECRET_NAME: &str = "callgrind/secret";
    if action == "GetSecretValue" {
        let data = "s".repeat(64);
        let (status, body) = call(
            &app,
            signed(
                "CreateSecret",
                &[
                    ("SecretName", SECRET_NAME),
                    ("VersionId", "v1"),
                    ("SecretData", &data),
                ],
                next(),
            ),
        )
        .await;
        assert_eq!(
            status,
            200,
            "CreateSecret: {}",
            String::from_utf8_lossy(&body)
        );
    }
    // ---- end GetSecretValue ----

    let build = |seq: usize| match action {
        "Healthz" => healthz(),
        "DescribeRegions" => signed("DescribeRegions", &[], seq),
        "Encrypt" => signed(
            "Encrypt",
            &[("KeyId", &key_id), ("Plaintext", &plaintext)],
            seq,
        ),
        "Decrypt" => signed("Decrypt", &[("CiphertextBlob", &blob)], seq),
        "GenerateDataKey" => signed(
            "GenerateDataKey",
            &[("KeyId", &key_id), ("NumberOfBytes", "32")],
            seq,
        ),
        "GetSecretValue" => signed("GetSecretValue", &[("SecretName", SECRET_NAME)], seq),
        // EncryptAsRamUser (wave6/ramperf)
        "EncryptAsRamUser" => {
            let (id, secret) = ram_user.as_ref().unwrap_or_else(|| panic!("no RAM user"));
            signed_as(
                "2016-01-20",
                (id, secret),
                "Encrypt",
                &[("KeyId", &key_id), ("Plaintext", &plaintext)],
                seq,
            )
        }
        "EncryptAsRoot24" => signed_as(
            "2016-01-20",
            (ROOT24_ID, AK_SECRET),
            "Encrypt",
            &[("KeyId", &key_id), ("Plaintext", &plaintext)],
            seq,
        ),
        other => panic!("unknown action {other}"),
    };
    // Warm-up (caches, allocator, lazily initialised tables), then the measured requests.
    let warm: Vec<Request<Body>> = (0..50).map(|_| build(next())).collect();
    let measured: Vec<Request<Body>> = (0..n).map(|_| build(next())).collect();
    for req in warm {
        let (status, body) = call(&app, req).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    let marker = AuditRecord {
        time: kms::timefmt::format_unix(system_now()),
        action: "CallgrindMarker".into(),
        result: "OK".into(),
        ..AuditRecord::default()
    };
    assert!(audit.record(marker.clone(), true).await);

    kms_callgrind_begin(n);
    let mut ok = 0usize;
    for req in measured {
        let (status, body) = call(&app, req).await;
        ok += usize::from(status == 200);
        drop(body);
    }
    // Every line of the measured requests is on disk once this durable one is.
    assert!(audit.record(marker, true).await);
    kms_callgrind_end(n);

    assert_eq!(ok, n, "{} of {n} requests failed", n - ok);
    eprintln!("{action}: {n} requests, all 200");
    let _ = std::fs::remove_dir_all(&dir);
}
