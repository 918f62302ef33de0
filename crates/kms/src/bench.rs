//! `kms bench`: a load generator for any endpoint that speaks the API. It signs every
//! request with a fresh nonce, keeps connections alive, and reports throughput, latency
//! percentiles and errors by code.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use clap::{Args, ValueEnum};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::client::{params, Client, Credentials, SignatureVersion};
use crate::keystore::wrapping::{self, WrappingAlgorithm};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "verbatim")]
pub enum BenchAction {
    /// GET /healthz, unsigned: the HTTP ceiling.
    Healthz,
    /// Signed DescribeRegions: signature, nonce, routing, rendering, no key work.
    DescribeRegions,
    DescribeKey,
    Encrypt,
    Decrypt,
    GenerateDataKey,
    GetParametersForImport,
    ImportKeyMaterial,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Endpoint, e.g. http://127.0.0.1:8080.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub endpoint: String,
    #[arg(long, env = "ALIBABA_CLOUD_ACCESS_KEY_ID")]
    pub access_key_id: String,
    #[arg(long, env = "ALIBABA_CLOUD_ACCESS_KEY_SECRET", hide_env_values = true)]
    pub access_key_secret: String,
    #[arg(long, env = "ALIBABA_CLOUD_REGION_ID", default_value = "cn-hangzhou")]
    pub region: String,
    /// The action to load.
    #[arg(long, value_enum, default_value = "Encrypt")]
    pub action: BenchAction,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Total requests (ignored when --duration is given).
    #[arg(long, default_value_t = 1000)]
    pub requests: u64,
    /// Run for this many seconds instead of a request count.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Limit to this many requests per second in total (0 = as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Plaintext size in bytes for Encrypt/Decrypt.
    #[arg(long, default_value_t = 256)]
    pub payload: usize,
    /// 3 = ACS3-HMAC-SHA256 (default), 1 = HMAC-SHA1.
    #[arg(long, default_value_t = 3)]
    pub signature_version: u8,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct Report {
    pub action: String,
    pub concurrency: usize,
    pub requests: u64,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub seconds: f64,
    pub throughput: f64,
    pub latency_ms: BTreeMap<String, f64>,
}

/// What each request of the run sends.
struct Plan {
    action: &'static str,
    params: Vec<(String, String)>,
}

fn ok_str(r: &crate::client::ApiResponse, field: &str) -> Result<String, String> {
    if !r.is_ok() {
        return Err(format!("setup failed: {} {}", r.status, r.body));
    }
    r.str_field(field)
        .map(str::to_string)
        .ok_or_else(|| format!("setup: no {field} in {}", r.body))
}

async fn create_key(client: &Client, origin: &str) -> Result<String, String> {
    let r = client
        .call(
            "CreateKey",
            &params(&[("Origin", origin), ("Description", "kms bench")]),
        )
        .await?;
    if !r.is_ok() {
        return Err(format!("setup CreateKey failed: {} {}", r.status, r.body));
    }
    r.body["KeyMetadata"]["KeyId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "setup: no KeyId".to_string())
}

async fn plan(client: &Client, args: &BenchArgs) -> Result<Plan, String> {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let payload = b64(&vec![0x5au8; args.payload]);
    Ok(match args.action {
        BenchAction::Healthz => Plan {
            action: "",
            params: vec![],
        },
        BenchAction::DescribeRegions => Plan {
            action: "DescribeRegions",
            params: vec![],
        },
        BenchAction::DescribeKey => {
            let k = create_key(client, "Aliyun_KMS").await?;
            Plan {
                action: "DescribeKey",
                params: params(&[("KeyId", &k)]),
            }
        }
        BenchAction::Encrypt => {
            let k = create_key(client, "Aliyun_KMS").await?;
            Plan {
                action: "Encrypt",
                params: params(&[("KeyId", &k), ("Plaintext", &payload)]),
            }
        }
        BenchAction::Decrypt => {
            let k = create_key(client, "Aliyun_KMS").await?;
            let r = client
                .call(
                    "Encrypt",
                    &params(&[("KeyId", &k), ("Plaintext", &payload)]),
                )
                .await?;
            let blob = ok_str(&r, "CiphertextBlob")?;
            Plan {
                action: "Decrypt",
                params: params(&[("CiphertextBlob", &blob)]),
            }
        }
        BenchAction::GenerateDataKey => {
            let k = create_key(client, "Aliyun_KMS").await?;
            Plan {
                action: "GenerateDataKey",
                params: params(&[("KeyId", &k)]),
            }
        }
        BenchAction::GetParametersForImport => {
            let k = create_key(client, "EXTERNAL").await?;
            Plan {
                action: "GetParametersForImport",
                params: params(&[
                    ("KeyId", &k),
                    ("WrappingAlgorithm", "RSAES_OAEP_SHA_256"),
                    ("WrappingKeySpec", "RSA_2048"),
                ]),
            }
        }
        BenchAction::ImportKeyMaterial => {
            // One token and one wrapped material, imported again and again (re-importing
            // the same material is allowed): each request unwraps, checks the commitment
            // and writes the key.
            let k = create_key(client, "EXTERNAL").await?;
            let r = client
                .call(
                    "GetParametersForImport",
                    &params(&[
                        ("KeyId", &k),
                        ("WrappingAlgorithm", "RSAES_OAEP_SHA_256"),
                        ("WrappingKeySpec", "RSA_2048"),
                    ]),
                )
                .await?;
            let token = ok_str(&r, "ImportToken")?;
            let public = base64::engine::general_purpose::STANDARD
                .decode(ok_str(&r, "PublicKey")?)
                .map_err(|e| e.to_string())?;
            let mut material = Zeroizing::new([0u8; 32]);
            aws_lc_rs::rand::fill(material.as_mut()).map_err(|_| "rng".to_string())?;
            let wrapped = wrapping::wrap(
                &public,
                WrappingAlgorithm::RsaesOaepSha256,
                material.as_ref(),
            )?;
            Plan {
                action: "ImportKeyMaterial",
                params: params(&[
                    ("KeyId", &k),
                    ("ImportToken", &token),
                    ("EncryptedKeyMaterial", &b64(&wrapped)),
                    ("KeyMaterialExpireUnix", "0"),
                ]),
            }
        }
    })
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

pub async fn run(args: BenchArgs) -> Result<(), String> {
    let signature = match args.signature_version {
        1 => SignatureVersion::V1,
        3 => SignatureVersion::V3,
        v => return Err(format!("--signature-version is 1 or 3, not {v}")),
    };
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    let client = Arc::new(Client::new(
        &args.endpoint,
        Credentials {
            access_key_id: args.access_key_id.clone(),
            access_key_secret: Zeroizing::new(args.access_key_secret.clone()),
        },
        signature,
        &args.region,
    )?);
    let plan = Arc::new(plan(&client, &args).await?);
    let issued = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = args.duration.map(|d| start + Duration::from_secs_f64(d));
    let limit = if deadline.is_some() {
        u64::MAX
    } else {
        args.requests
    };
    let per_worker_interval =
        (args.rate > 0.0).then(|| Duration::from_secs_f64(args.concurrency as f64 / args.rate));

    let progress = {
        let done = done.clone();
        let quiet = args.json;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                if !quiet {
                    let n = done.load(Ordering::Relaxed);
                    eprint!(
                        "\r{n} requests, {:.0}/s   ",
                        n as f64 / start.elapsed().as_secs_f64()
                    );
                }
            }
        })
    };

    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, plan, issued, done) =
            (client.clone(), plan.clone(), issued.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::new();
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut pace = per_worker_interval.map(tokio::time::interval);
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                if issued.fetch_add(1, Ordering::Relaxed) >= limit {
                    break;
                }
                if let Some(p) = pace.as_mut() {
                    p.tick().await;
                }
                let t = Instant::now();
                let r = if plan.action.is_empty() {
                    client.get("/healthz").await
                } else {
                    client.call(plan.action, &plan.params).await
                };
                latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                done.fetch_add(1, Ordering::Relaxed);
                match r {
                    Ok(r) => {
                        if let Some(code) = r.code() {
                            *errors.entry(code.to_string()).or_default() += 1;
                        }
                    }
                    Err(_) => *errors.entry("ConnectionError".into()).or_default() += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for w in workers {
        let (l, e) = w.await.map_err(|e| e.to_string())?;
        latencies.extend(l);
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
    }
    progress.abort();
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let total = latencies.len() as u64;
    let failed: u64 = errors.values().sum();
    let mut pct = BTreeMap::new();
    for (name, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)] {
        pct.insert(name.to_string(), percentile(&latencies, p));
    }
    let report = Report {
        action: format!("{:?}", args.action),
        concurrency: args.concurrency,
        requests: total,
        ok: total - failed,
        errors,
        seconds,
        throughput: total as f64 / seconds,
        latency_ms: pct,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        eprintln!();
        println!(
            "{}: {} requests ({} ok) in {:.2} s with {} connections: {:.0} requests/s",
            report.action,
            report.requests,
            report.ok,
            report.seconds,
            report.concurrency,
            report.throughput
        );
        println!(
            "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}",
            report.latency_ms["p50"],
            report.latency_ms["p90"],
            report.latency_ms["p99"],
            report.latency_ms["p99.9"]
        );
        for (code, n) in &report.errors {
            println!("errors: {code}: {n}");
        }
    }
    Ok(())
}
