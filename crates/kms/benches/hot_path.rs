//! Micro-benchmarks of the request hot path: signature verification (v1 and V3), parameter
//! parsing, the nonce cache (in memory, and with its journal on disk), the ciphertext blob,
//! and RSA unwrapping. Run with `cargo bench -p kms`.

use aws_lc_rs::rand::SystemRandom;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

use kms::keystore::{blob, wrapping};
use kms::protocol::params::Params;
use kms::protocol::signature::{self, RequestView};

const QUERY_V1: &str = "AccessKeyId=testid&Action=Encrypt&Format=JSON&KeyId=05754286-3ba2-4fa6-8d41-4323aca6aaaa&Plaintext=aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQ%3D&RegionId=cn-hangzhou&SignatureMethod=HMAC-SHA1&SignatureNonce=0123456789abcdef0123456789abcdef&SignatureType=&SignatureVersion=1.0&Timestamp=2024-01-01T00%3A00%3A00Z&Version=2016-01-20";

fn v1_signed() -> Params {
    let p = Params::from_request(QUERY_V1, None, b"").unwrap();
    let sts = signature::v1_string_to_sign("POST", p.all());
    let key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        b"testsecret&",
    );
    let sig = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        aws_lc_rs::hmac::sign(&key, sts.as_bytes()),
    );
    let mut q = p.query.clone();
    q.push(("Signature".into(), sig));
    Params {
        query: q,
        body: vec![],
    }
}

fn bench_signatures(c: &mut Criterion) {
    let params = v1_signed();
    c.bench_function("signature v1 parse+verify", |b| {
        b.iter(|| {
            let view = RequestView {
                method: "POST",
                path: "/",
                params: &params,
                headers: &[],
                body: b"",
            };
            let pending = signature::parse(black_box(&view)).unwrap();
            pending.verify(b"testsecret").unwrap();
        })
    });

    let v3_params = Params::from_request(
        "EncryptionContext=%7B%22a%22%3A%22b%22%7D&KeyId=alias%2Ftest%20key&Plaintext=aGVsbG8%3D",
        None,
        b"",
    )
    .unwrap();
    let headers: Vec<(&str, &str)> = [
        ("host", "127.0.0.1:8080"),
        ("x-acs-version", "2016-01-20"),
        ("x-acs-action", "Encrypt"),
        ("x-acs-date", "2024-01-01T00:00:00Z"),
        ("x-acs-signature-nonce", "0123456789abcdef0123456789abcdef"),
        ("accept", "application/json"),
        ("x-acs-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("authorization", "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=accept;host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=7da68aaa98aaa1553cd74caf1a17df6b3155b13c23290fc58f60cc68b0f21773"),
    ]
    .to_vec();
    c.bench_function("signature v3 parse+verify", |b| {
        b.iter(|| {
            let view = RequestView {
                method: "POST",
                path: "/",
                params: &v3_params,
                headers: &headers,
                body: b"",
            };
            let pending = signature::parse(black_box(&view)).unwrap();
            pending.verify(b"testsecret").unwrap();
        })
    });
}

/// A new nonce each time (digest included, as a request pays it), into the cache alone and
/// into the cache with its journal (one pwrite per nonce): the difference is the journal's
/// cost on every signed request.
fn bench_nonces(c: &mut Criterion) {
    let now = kms::clock::system_now();
    let mut n = 0u64;
    let memory = signature::NonceCache::new();
    c.bench_function("nonce check+record (memory)", |b| {
        b.iter(|| {
            n += 1;
            let d = signature::nonce_digest("testid", black_box(&n.to_string()));
            memory.check_and_record_digest(&d, now, now).unwrap();
        })
    });
    let dir = std::env::temp_dir().join(format!("kms-bench-nonces-{}", std::process::id()));
    let mut journaled = signature::NonceCache::new();
    journaled.open_journal(&dir, now).unwrap();
    c.bench_function("nonce check+record (memory + journal)", |b| {
        b.iter(|| {
            n += 1;
            let d = signature::nonce_digest("testid", black_box(&n.to_string()));
            journaled.check_and_record_digest(&d, now, now).unwrap();
        })
    });
    drop(journaled);
    let _ = std::fs::remove_dir_all(&dir);
}

fn bench_params(c: &mut Criterion) {
    c.bench_function("params parse (v1 Encrypt query)", |b| {
        b.iter(|| Params::from_request(black_box(QUERY_V1), None, b"").unwrap())
    });
}

fn bench_blob(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let key = "05754286-3ba2-4fa6-8d41-4323aca6aaaa";
    let ver = "86a9efd9-3d16-4894-bd4f-1fc43f3f2abf";
    let material = [7u8; 32];
    let pt = [1u8; 64];
    c.bench_function("blob encrypt 64 B", |b| {
        b.iter(|| {
            blob::encrypt(&rng, key, ver, &material, b"{\"a\":\"b\"}", black_box(&pt)).unwrap()
        })
    });
    let ct = blob::encrypt(&rng, key, ver, &material, b"{\"a\":\"b\"}", &pt).unwrap();
    c.bench_function("blob decrypt 64 B", |b| {
        b.iter(|| blob::decrypt(&material, b"{\"a\":\"b\"}", black_box(&ct)).unwrap())
    });
}

fn bench_unwrap(c: &mut Criterion) {
    let kp = wrapping::generate().unwrap();
    for alg in wrapping::WrappingAlgorithm::ALL {
        let ct = wrapping::wrap(&kp.public_der, alg, &[9u8; 32]).unwrap();
        c.bench_function(&format!("unwrap {}", alg.as_str()), |b| {
            b.iter(|| wrapping::unwrap(&kp.pkcs8, alg, black_box(&ct)).unwrap())
        });
    }
}

criterion_group!(
    benches,
    bench_signatures,
    bench_nonces,
    bench_params,
    bench_blob,
    bench_unwrap
);
criterion_main!(benches);
