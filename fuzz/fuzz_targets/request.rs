//! Request parsing and signature verification, then the whole protocol layer.
//!
//! An arbitrary method, path, query, headers and body go through the same steps as
//! `Protocol::run`: form/query parsing, `Format`, v1 or V3 signature parsing, the time
//! check, HMAC verification and the nonce cache; every error is rendered (JSON and XML) and
//! must be a 4xx. Invariants checked on top of "no panic":
//! - a request whose signature is replaced by the correct HMAC of the server's own string
//!   to sign verifies (v1 and V3);
//! - a nonce is refused the second time;
//! - the full `Protocol::handle` (in-memory store, one access key) never answers 5xx, also
//!   for requests the harness signs itself so that they reach the actions.
#![no_main]

use std::sync::{Arc, OnceLock};

use aws_lc_rs::hmac;
use base64::Engine;
use kms::clock::OffsetClock;
use kms::error::KmsError;
use kms::keystore::wrapping::Pool;
use kms::keystore::Keystore;
use kms::protocol::params::Params;
use kms::protocol::render::{self, Format};
use kms::protocol::signature::{self, NonceCache, RequestView, Scheme};
use kms::protocol::{HttpRequest, Protocol};
use kms::service::{Kms, ServiceConfig};
use kms::store::sqlite::SqliteStore;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const AK: &str = "LTAIfuzzaccesskey";
const SECRET: &str = "fuzz-secret-0123456789";

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Sign {
    /// Sent as generated.
    AsIs,
    /// The harness adds v1 signature parameters (fresh timestamp and nonce) and signs.
    V1,
    /// As `V1`, plus one action of the spec table with its parameters (values from the
    /// input; the value `@k` stands for a key created at start-up), so that the fuzzer
    /// reaches every action's parameter handling.
    Action { index: u8, values: Vec<String> },
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: Method,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Offset of "now" from the request's time, for the time check.
    skew: i64,
    sign: Sign,
}

fn assert_client_error(e: &KmsError) {
    assert!(
        !matches!(e, KmsError::Internal(_)),
        "internal error from request parsing: {e:?}"
    );
    let status = e.status();
    assert!((400..500).contains(&status), "{e:?} -> {status}");
    for format in [Format::Json, Format::Xml] {
        let r = render::error(format, e, "id", "kms.cn-hangzhou.aliyuncs.com");
        assert_eq!(r.status, status);
    }
}

struct Harness {
    rt: tokio::runtime::Runtime,
    protocol: Protocol,
    /// A key created at start-up, for `@k`.
    key_id: String,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let (rt, protocol) = protocol();
        let query = sign_v1("POST", "Action=CreateKey", None, b"").expect("sign");
        let out = rt.block_on(protocol.handle(&HttpRequest {
            method: "POST",
            path: "/",
            query: &query,
            headers: &[],
            body: b"",
            peer: None,
        }));
        let body: serde_json::Value =
            serde_json::from_slice(out.rendered.body.as_ref()).expect("CreateKey JSON");
        let key_id = body["KeyMetadata"]["KeyId"]
            .as_str()
            .expect("CreateKey answered a key")
            .to_string();
        Harness {
            rt,
            protocol,
            key_id,
        }
    })
}

/// Query parameters for one action of the action table.
fn action_query(index: u8, values: &[String], key_id: &str) -> String {
    use kms::action::kms::Action;
    use kms::action::ParamKind;
    let action = Action::ALL[index as usize % Action::ALL.len()];
    let mut q = format!("Action={}", action.name());
    let mut values = values.iter();
    for p in action.params() {
        let Some(v) = values.next() else { break };
        let v = if v == "@k" { key_id } else { v.as_str() };
        let v = signature::percent_encode(v);
        match p.kind {
            ParamKind::Single => q.push_str(&format!("&{}={v}", p.name)),
            ParamKind::List => q.push_str(&format!("&{}.1={v}", p.name)),
            ParamKind::TagList => {
                q.push_str(&format!("&{}.1.Key={v}&{}.1.Value={v}", p.name, p.name))
            }
        }
    }
    q
}

fn protocol() -> (tokio::runtime::Runtime, Protocol) {
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let kms = rt.block_on(async {
            let kms = Kms::new(
                Arc::new(SqliteStore::in_memory().expect("store")),
                Arc::new(Keystore::from_root(&[7u8; 32]).expect("keystore")),
                Arc::new(OffsetClock::new()),
                Pool::new(0),
                ServiceConfig::default(),
            );
            kms.create_access_key("1234567890123456", Some((AK.into(), SECRET.into())))
                .await
                .expect("access key");
            kms
        });
        (rt, Protocol::new(Arc::new(kms)))
    }
}

/// Header pairs as the server hands them over: borrowed.
fn borrow(h: &[(String, String)]) -> Vec<(&str, &str)> {
    h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Checks the layer-by-layer path of `Protocol::run` on its own.
fn parse_and_verify(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    skew: i64,
) {
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str());
    let params = match Params::from_request(query, content_type, body) {
        Ok(p) => p,
        Err(e) => return assert_client_error(&e),
    };
    if let Err(e) = Format::parse(params.opt("Format")) {
        assert_client_error(&e);
    }
    // The typed readers the actions use.
    for (k, _) in params.all().take(8) {
        let _ = params.bool_opt(k).map_err(|e| assert_client_error(&e));
        let _ = params
            .int_opt(k, 1, 1024)
            .map_err(|e| assert_client_error(&e));
        let _ = params
            .base64_required(k)
            .map_err(|e| assert_client_error(&e));
        let _ = params.list(k);
        let _ = params.tag_list(k);
    }
    let borrowed = borrow(headers);
    let view = RequestView {
        method,
        path,
        params: &params,
        headers: &borrowed,
        body,
    };
    let pending = match signature::parse(&view) {
        Ok(p) => p,
        Err(e) => return assert_client_error(&e),
    };
    let now = pending.timestamp.saturating_add(skew);
    if let Err(e) = pending.check_time(now) {
        assert_client_error(&e);
    }
    if let Err(e) = pending.verify(SECRET.as_bytes()) {
        assert_client_error(&e);
    }

    // The correct signature of the server's own string to sign must verify.
    match pending.scheme {
        Scheme::V1HmacSha1 => {
            let key = hmac::Key::new(
                hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                format!("{SECRET}&").as_bytes(),
            );
            let good = base64::engine::general_purpose::STANDARD
                .encode(hmac::sign(&key, pending.string_to_sign.as_bytes()));
            let mut fixed = params.clone();
            for (k, v) in fixed.query.iter_mut().chain(fixed.body.iter_mut()) {
                if k == "Signature" {
                    *v = good.clone();
                }
            }
            let view = RequestView {
                method,
                path,
                params: &fixed,
                headers: &borrowed,
                body,
            };
            if let Ok(again) = signature::parse(&view) {
                if again.string_to_sign == pending.string_to_sign {
                    assert_eq!(again.verify(SECRET.as_bytes()), Ok(()), "v1 round trip");
                }
            }
        }
        Scheme::V3HmacSha256 => {
            let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
            let good = hex::encode(hmac::sign(&key, pending.string_to_sign.as_bytes()));
            let mut fixed = headers.to_vec();
            // The last Signature= field of the first Authorization header wins.
            if let Some((_, v)) = fixed.iter_mut().find(|(k, _)| k == "authorization") {
                v.push_str(",Signature=");
                v.push_str(&good);
            }
            let view = RequestView {
                method,
                path,
                params: &params,
                headers: &borrow(&fixed),
                body,
            };
            if let Ok(again) = signature::parse(&view) {
                if again.string_to_sign == pending.string_to_sign {
                    assert_eq!(again.verify(SECRET.as_bytes()), Ok(()), "V3 round trip");
                }
            }
        }
    }

    let nonces = NonceCache::new();
    if nonces
        .check_and_record(
            &pending.access_key_id,
            &pending.nonce,
            pending.timestamp,
            now,
        )
        .is_ok()
    {
        assert_eq!(
            nonces.check_and_record(
                &pending.access_key_id,
                &pending.nonce,
                pending.timestamp,
                now
            ),
            Err(KmsError::SignatureNonceUsed)
        );
    }
}

/// Adds v1 signature parameters to the query and signs the request as an SDK would.
fn sign_v1(method: &str, query: &str, content_type: Option<&str>, body: &[u8]) -> Option<String> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let extra = format!(
        "AccessKeyId={AK}&SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&SignatureNonce=fuzz-{}-{n}&Timestamp={}&Version=2016-01-20",
        std::process::id(),
        kms::timefmt::format_unix(kms::clock::system_now()),
    );
    let query = if query.is_empty() {
        extra
    } else {
        format!("{query}&{extra}")
    };
    let params = Params::from_request(&query, content_type, body).ok()?;
    let sts = signature::v1_string_to_sign(method, params.all());
    let key = hmac::Key::new(
        hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        format!("{SECRET}&").as_bytes(),
    );
    let sig = base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, sts.as_bytes()));
    Some(format!(
        "{query}&Signature={}",
        signature::percent_encode(&sig)
    ))
}

fuzz_target!(|input: Input| {
    let method = match &input.method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Other(m) => m.as_str(),
    };
    // Header names arrive lowercase from the HTTP layer.
    let headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    parse_and_verify(
        method,
        &input.path,
        &input.query,
        &headers,
        &input.body,
        input.skew,
    );

    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str());
    let h = harness();
    let query = match &input.sign {
        Sign::AsIs => Some(input.query.clone()),
        Sign::V1 => sign_v1(method, &input.query, content_type, &input.body),
        Sign::Action { index, values } => {
            let mut q = action_query(*index, values, &h.key_id);
            if !input.query.is_empty() {
                q.push('&');
                q.push_str(&input.query);
            }
            sign_v1(method, &q, content_type, &input.body)
        }
    };
    let Some(query) = query else { return };
    let (rt, protocol) = (&h.rt, &h.protocol);
    let req = HttpRequest {
        method,
        path: &input.path,
        query: &query,
        headers: &borrow(&headers),
        body: &input.body,
        peer: Some(std::net::Ipv4Addr::LOCALHOST.into()),
    };
    let out = rt.block_on(protocol.handle(&req));
    assert!(
        out.rendered.status < 500,
        "status {} code {:?} for {req_dbg}",
        out.rendered.status,
        out.code,
        req_dbg = query
    );
});
