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
use crate::model::Origin;

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
    /// ListKeys, first page of 10.
    ListKeys,
    /// ListKeys, last page of 10 (the slowest to find in a large store).
    ListKeysLastPage,
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
    /// The action to load, or a weighted mix such as `Encrypt:3,Decrypt:1`. Actions:
    /// Healthz, DescribeRegions, DescribeKey, Encrypt, Decrypt, GenerateDataKey,
    /// GetParametersForImport, ImportKeyMaterial, ListKeys, ListKeysLastPage.
    #[arg(long, default_value = "Encrypt")]
    pub action: String,
    /// Also run Healthz and DescribeRegions with the same settings first, and print the
    /// action's throughput as a ratio of theirs (the ceilings, measured in the same run).
    #[arg(long)]
    pub compare: bool,
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
    /// For https endpoints: trust the certificates in this PEM file.
    #[arg(long, env = "KMS_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// For https endpoints: do not check the server's certificate (testing only).
    #[arg(long, conflicts_with = "ca_cert")]
    pub insecure: bool,
    /// ProtectionLevel of the keys the run creates: SOFTWARE, or HSM on a server started
    /// with --hsm-module (issue 20).
    #[arg(long, default_value = "SOFTWARE")]
    pub protection_level: String,
}

#[derive(Debug, Clone, Serialize)]
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

async fn create_key(client: &Client, origin: Origin, level: &str) -> Result<String, String> {
    let r = client
        .call(
            "CreateKey",
            &params(&[
                ("Origin", origin.as_str()),
                ("Description", "kms bench"),
                ("ProtectionLevel", level),
            ]),
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

/// Parses `Encrypt` or `Encrypt:3,Decrypt:1`.
pub fn parse_mix(text: &str) -> Result<Vec<(BenchAction, u32)>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = match part.split_once(':') {
            Some((n, w)) => (
                n,
                w.parse::<u32>()
                    .map_err(|_| format!("bad weight in {part:?}"))?,
            ),
            None => (part, 1),
        };
        let action =
            BenchAction::from_str(name, false).map_err(|_| format!("unknown action {name:?}"))?;
        if weight == 0 {
            return Err(format!("weight 0 in {part:?}"));
        }
        out.push((action, weight));
    }
    if out.is_empty() {
        return Err("--action is empty".into());
    }
    Ok(out)
}

async fn plan(client: &Client, args: &BenchArgs, action: BenchAction) -> Result<Plan, String> {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let payload = b64(&vec![0x5au8; args.payload]);
    Ok(match action {
        BenchAction::Healthz => Plan {
            action: "",
            params: vec![],
        },
        BenchAction::DescribeRegions => Plan {
            action: "DescribeRegions",
            params: vec![],
        },
        BenchAction::ListKeys => Plan {
            action: "ListKeys",
            params: params(&[("PageSize", "10")]),
        },
        BenchAction::ListKeysLastPage => {
            let r = client
                .call("ListKeys", &params(&[("PageSize", "10")]))
                .await?;
            let total = r
                .body
                .get("TotalCount")
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            let last = total.div_ceil(10).max(1).to_string();
            Plan {
                action: "ListKeys",
                params: params(&[("PageSize", "10"), ("PageNumber", &last)]),
            }
        }
        BenchAction::DescribeKey => {
            let k = create_key(client, Origin::AliyunKms, &args.protection_level).await?;
            Plan {
                action: "DescribeKey",
                params: params(&[("KeyId", &k)]),
            }
        }
        BenchAction::Encrypt => {
            let k = create_key(client, Origin::AliyunKms, &args.protection_level).await?;
            Plan {
                action: "Encrypt",
                params: params(&[("KeyId", &k), ("Plaintext", &payload)]),
            }
        }
        BenchAction::Decrypt => {
            let k = create_key(client, Origin::AliyunKms, &args.protection_level).await?;
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
            let k = create_key(client, Origin::AliyunKms, &args.protection_level).await?;
            Plan {
                action: "GenerateDataKey",
                params: params(&[("KeyId", &k)]),
            }
        }
        BenchAction::GetParametersForImport => {
            let k = create_key(client, Origin::External, &args.protection_level).await?;
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
            let k = create_key(client, Origin::External, &args.protection_level).await?;
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
    let mix = parse_mix(&args.action)?;
    let trust = match (&args.ca_cert, args.insecure) {
        (_, true) => crate::tls::Trust::Nothing,
        (Some(p), false) => crate::tls::Trust::CaFile(p.clone()),
        (None, false) => crate::tls::Trust::System,
    };
    let client = Arc::new(Client::with_trust(
        &args.endpoint,
        Credentials {
            access_key_id: args.access_key_id.clone(),
            access_key_secret: Zeroizing::new(args.access_key_secret.clone()),
        },
        signature,
        &args.region,
        &trust,
    )?);
    let mut reports = Vec::new();
    if args.compare {
        for ceiling in [BenchAction::Healthz, BenchAction::DescribeRegions] {
            reports.push(phase(&client, &args, &[(ceiling, 1)]).await?);
        }
    }
    reports.push(phase(&client, &args, &mix).await?);
    let main = reports.last().map(|r| r.throughput).unwrap_or(0.0);
    let ratios: BTreeMap<String, f64> = if args.compare {
        reports[..2]
            .iter()
            .map(|r| {
                (
                    format!("vs_{}", r.action),
                    if r.throughput > 0.0 {
                        main / r.throughput
                    } else {
                        0.0
                    },
                )
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    if args.json {
        let out = serde_json::json!({ "runs": reports, "ratios": ratios });
        println!("{out}");
    } else {
        for r in &reports {
            print_report(r);
        }
        for (k, v) in &ratios {
            println!("ratio {}: {v:.2}", k.trim_start_matches("vs_"));
        }
    }
    Ok(())
}

fn print_report(report: &Report) {
    println!(
        "{}: {} requests ({} ok) in {:.2} s with {} connections: {:.0} requests/s",
        report.action,
        report.requests,
        report.ok,
        report.seconds,
        report.concurrency,
        report.throughput
    );
    let p = |k: &str| report.latency_ms.get(k).copied().unwrap_or(0.0);
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}",
        p("p50"),
        p("p90"),
        p("p99"),
        p("p99.9")
    );
    for (code, n) in &report.errors {
        println!("errors: {code}: {n}");
    }
}

/// One measured run of a mix of actions.
async fn phase(
    client: &Arc<Client>,
    args: &BenchArgs,
    mix: &[(BenchAction, u32)],
) -> Result<Report, String> {
    let mut plans = Vec::new();
    let mut schedule = Vec::new();
    for (i, (action, weight)) in mix.iter().enumerate() {
        plans.push(plan(client, args, *action).await?);
        schedule.extend(std::iter::repeat_n(i, *weight as usize));
    }
    let name = mix
        .iter()
        .map(|(a, w)| {
            if mix.len() == 1 {
                format!("{a:?}")
            } else {
                format!("{a:?}:{w}")
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    let plans = Arc::new(plans);
    let schedule = Arc::new(schedule);
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
        let (client, plans, schedule, issued, done) = (
            client.clone(),
            plans.clone(),
            schedule.clone(),
            issued.clone(),
            done.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::new();
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut pace = per_worker_interval.map(tokio::time::interval);
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= limit {
                    break;
                }
                if let Some(p) = pace.as_mut() {
                    p.tick().await;
                }
                let plan = &plans[schedule[(n % schedule.len() as u64) as usize]];
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
    if !args.json {
        eprint!("\r{:60}\r", "");
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let total = latencies.len() as u64;
    let failed: u64 = errors.values().sum();
    let mut pct = BTreeMap::new();
    for (label, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)] {
        pct.insert(label.to_string(), percentile(&latencies, p));
    }
    Ok(Report {
        action: name,
        concurrency: args.concurrency,
        requests: total,
        ok: total - failed,
        errors,
        seconds,
        throughput: total as f64 / seconds,
        latency_ms: pct,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes() {
        assert_eq!(
            parse_mix("Encrypt").unwrap(),
            vec![(BenchAction::Encrypt, 1)]
        );
        assert_eq!(
            parse_mix("Encrypt:3, Decrypt:1").unwrap(),
            vec![(BenchAction::Encrypt, 3), (BenchAction::Decrypt, 1)]
        );
        for bad in ["", "Nope", "Encrypt:0", "Encrypt:x"] {
            assert!(parse_mix(bad).is_err(), "{bad}");
        }
        assert_eq!(percentile(&[1000, 2000, 3000], 50.0), 2.0);
    }
}
