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
use crate::model::{AsymmetricAlgorithm, KeySpec, Origin};

pub mod server_cpu;

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
    /// AsymmetricSign of a fixed 32-byte digest with a SIGN/VERIFY key of --key-spec
    /// (RSA_2048: RSA_PSS_SHA_256, EC_P256: ECDSA_SHA_256, EC_SM2: SM2DSA).
    AsymmetricSign,
    /// AsymmetricVerify of a signature made once in the setup (same keys as AsymmetricSign).
    AsymmetricVerify,
    /// GetSecretValue of a secret with a 64-byte value, created in the setup.
    GetSecretValue,
}

impl BenchAction {
    /// The key spec the action's key gets when --key-spec is not given; `None` for the
    /// actions that use no key.
    fn default_key_spec(self) -> Option<KeySpec> {
        match self {
            BenchAction::DescribeKey
            | BenchAction::Encrypt
            | BenchAction::Decrypt
            | BenchAction::GenerateDataKey
            | BenchAction::GetParametersForImport
            | BenchAction::ImportKeyMaterial => Some(KeySpec::Aes256),
            BenchAction::AsymmetricSign | BenchAction::AsymmetricVerify => Some(KeySpec::EcP256),
            BenchAction::Healthz
            | BenchAction::DescribeRegions
            | BenchAction::ListKeys
            | BenchAction::ListKeysLastPage
            | BenchAction::GetSecretValue => None,
        }
    }
}

/// The key spec an action's key is created with: `--key-spec` if given and it fits the
/// action, else the action's default. `Ok(None)`: the action uses no key (--key-spec is
/// then ignored, so `--compare` ceilings run alongside).
pub fn key_spec_for(
    action: BenchAction,
    given: Option<KeySpec>,
) -> Result<Option<KeySpec>, String> {
    let Some(default) = action.default_key_spec() else {
        return Ok(None);
    };
    let Some(spec) = given else {
        return Ok(Some(default));
    };
    let fits = match action {
        BenchAction::DescribeKey => true,
        BenchAction::Encrypt | BenchAction::Decrypt | BenchAction::GenerateDataKey => {
            !spec.is_asymmetric()
        }
        // The import plans wrap 32 bytes of AES material with RSAES_OAEP_SHA_256.
        BenchAction::GetParametersForImport | BenchAction::ImportKeyMaterial => {
            spec == KeySpec::Aes256
        }
        BenchAction::AsymmetricSign | BenchAction::AsymmetricVerify => {
            sign_algorithm(spec).is_some()
        }
        _ => false,
    };
    if fits {
        Ok(Some(spec))
    } else {
        Err(format!("--key-spec {spec} does not fit action {action:?}"))
    }
}

/// The signing algorithm the bench uses with a key of `spec`.
pub fn sign_algorithm(spec: KeySpec) -> Option<AsymmetricAlgorithm> {
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => Some(AsymmetricAlgorithm::RsaPssSha256),
        KeySpec::EcP256 | KeySpec::EcP256K => Some(AsymmetricAlgorithm::EcdsaSha256),
        KeySpec::EcSm2 => Some(AsymmetricAlgorithm::Sm2Dsa),
        KeySpec::Aes256 | KeySpec::Sm4 => None,
    }
}

fn parse_key_spec(text: &str) -> Result<KeySpec, String> {
    KeySpec::parse(text).ok_or_else(|| {
        format!("unknown key spec {text:?} (Aliyun_AES_256, Aliyun_SM4, RSA_2048, RSA_3072, EC_P256, EC_P256K, EC_SM2)")
    })
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
    /// GetParametersForImport, ImportKeyMaterial, ListKeys, ListKeysLastPage,
    /// AsymmetricSign, AsymmetricVerify, GetSecretValue.
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
    /// KeySpec of the keys the run creates: Aliyun_AES_256 (default) or Aliyun_SM4 for
    /// Encrypt/Decrypt/GenerateDataKey; RSA_2048, EC_P256 (default) or EC_SM2 for
    /// AsymmetricSign/AsymmetricVerify.
    #[arg(long, value_parser = parse_key_spec)]
    pub key_spec: Option<KeySpec>,
    /// Sign the load with a RAM user's access key: the setup (signed with the key given)
    /// creates a RAM user, an access key and a policy allowing exactly kms:Encrypt and the
    /// benched actions on the run's key (or secret), attached to the user. The --compare
    /// ceilings stay signed with the key given.
    #[arg(long)]
    pub as_ram_user: bool,
    /// With --as-ram-user and --duration: alternate the root-signed and the RAM-user load
    /// this many times (each for duration / rounds), so that neither side always runs on a
    /// server the other has warmed or grown (its nonce sets, caches); the ratio is taken over
    /// the totals of each side.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// With --duration: run each phase's load this many seconds before measuring it (its
    /// connections opened, its key and user cached, its nonce sets grown).
    #[arg(long, default_value_t = 0.5)]
    pub warmup: f64,
    /// The server's process id, for its CPU time per request (read from /proc/PID/stat).
    /// Without it, a server on loopback is found by its listening socket.
    #[arg(long)]
    pub server_pid: Option<u32>,
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
    /// The server process's CPU time (user + system) over the phase, in seconds; `None`
    /// when the server could not be found.
    pub server_cpu_seconds: Option<f64>,
    /// `server_cpu_seconds` per request, in microseconds.
    pub server_cpu_us_per_request: Option<f64>,
    /// This load generator's own CPU time (user + system) per request over the phase, in
    /// microseconds: what signing and sending cost the machine the server shares.
    pub client_cpu_us_per_request: Option<f64>,
}

/// What each request of the run sends.
struct Plan {
    action: &'static str,
    params: Vec<(String, String)>,
    /// The resource a RAM policy must allow the action on (`*` when there is none).
    resource: String,
}

fn ok_str(r: &crate::client::ApiResponse, field: &str) -> Result<String, String> {
    if !r.is_ok() {
        return Err(format!("setup failed: {} {}", r.status, r.body));
    }
    r.str_field(field)
        .map(str::to_string)
        .ok_or_else(|| format!("setup: no {field} in {}", r.body))
}

async fn create_key(
    client: &Client,
    origin: Origin,
    level: &str,
    spec: Option<KeySpec>,
) -> Result<String, String> {
    let mut p = params(&[
        ("Origin", origin.as_str()),
        ("Description", "kms bench"),
        ("ProtectionLevel", level),
    ]);
    // Only when asked for: the default runs send exactly what they always sent.
    if let Some(spec) = spec.filter(|s| *s != KeySpec::Aes256) {
        p.push(("KeySpec".into(), spec.as_str().into()));
        if spec.is_asymmetric() {
            p.push(("KeyUsage".into(), "SIGN/VERIFY".into()));
        }
    }
    let r = client.call("CreateKey", &p).await?;
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

fn key_arn(key_id: &str) -> String {
    format!("acs:kms:*:*:key/{key_id}")
}

/// The fixed 32-byte digest the asymmetric actions sign (SHA-256 sized; for SM2DSA it
/// stands for e = SM3(Z_A || M)).
const DIGEST: [u8; 32] = [0x5a; 32];

async fn plan(client: &Client, args: &BenchArgs, action: BenchAction) -> Result<Plan, String> {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let payload = b64(&vec![0x5au8; args.payload]);
    let spec = key_spec_for(action, args.key_spec)?;
    let level = args.protection_level.as_str();
    let keyed = |action: &'static str, k: &str, extra: &[(&str, &str)]| {
        let mut p = params(&[("KeyId", k)]);
        p.extend(params(extra));
        Plan {
            action,
            params: p,
            resource: key_arn(k),
        }
    };
    let plain = |action: &'static str, p: Vec<(String, String)>| Plan {
        action,
        params: p,
        resource: "*".into(),
    };
    Ok(match action {
        BenchAction::Healthz => plain("", vec![]),
        BenchAction::DescribeRegions => plain("DescribeRegions", vec![]),
        BenchAction::ListKeys => plain("ListKeys", params(&[("PageSize", "10")])),
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
            plain(
                "ListKeys",
                params(&[("PageSize", "10"), ("PageNumber", &last)]),
            )
        }
        BenchAction::DescribeKey => {
            let k = create_key(client, Origin::AliyunKms, level, spec).await?;
            keyed("DescribeKey", &k, &[])
        }
        BenchAction::Encrypt => {
            let k = create_key(client, Origin::AliyunKms, level, spec).await?;
            keyed("Encrypt", &k, &[("Plaintext", &payload)])
        }
        BenchAction::Decrypt => {
            let k = create_key(client, Origin::AliyunKms, level, spec).await?;
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
                resource: key_arn(&k),
            }
        }
        BenchAction::GenerateDataKey => {
            let k = create_key(client, Origin::AliyunKms, level, spec).await?;
            keyed("GenerateDataKey", &k, &[])
        }
        BenchAction::AsymmetricSign | BenchAction::AsymmetricVerify => {
            let spec = spec.unwrap_or(KeySpec::EcP256);
            let alg = sign_algorithm(spec)
                .ok_or_else(|| format!("--key-spec {spec} cannot sign"))?
                .as_str();
            let k = create_key(client, Origin::AliyunKms, level, Some(spec)).await?;
            let r = client
                .call("ListKeyVersions", &params(&[("KeyId", &k)]))
                .await?;
            if !r.is_ok() {
                return Err(format!(
                    "setup ListKeyVersions failed: {} {}",
                    r.status, r.body
                ));
            }
            let version = r.body["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
                .as_str()
                .ok_or_else(|| format!("setup: no KeyVersionId in {}", r.body))?
                .to_string();
            let digest = b64(&DIGEST);
            let sign = [
                ("KeyVersionId", version.as_str()),
                ("Algorithm", alg),
                ("Digest", digest.as_str()),
            ];
            if action == BenchAction::AsymmetricSign {
                keyed("AsymmetricSign", &k, &sign)
            } else {
                let mut p = params(&[("KeyId", &k)]);
                p.extend(params(&sign));
                let r = client.call("AsymmetricSign", &p).await?;
                let value = ok_str(&r, "Value")?;
                let mut verify = sign.to_vec();
                verify.push(("Value", &value));
                keyed("AsymmetricVerify", &k, &verify)
            }
        }
        BenchAction::GetSecretValue => {
            let name = format!("kms-bench-{}", uuid::Uuid::new_v4().simple());
            let data = "s".repeat(64);
            let r = client
                .call(
                    "CreateSecret",
                    &params(&[
                        ("SecretName", &name),
                        ("VersionId", "v1"),
                        ("SecretData", &data),
                    ]),
                )
                .await?;
            ok_str(&r, "SecretName")?;
            Plan {
                action: "GetSecretValue",
                params: params(&[("SecretName", &name)]),
                resource: format!("acs:kms:*:*:secret/{name}"),
            }
        }
        BenchAction::GetParametersForImport => {
            let k = create_key(client, Origin::External, level, spec).await?;
            keyed(
                "GetParametersForImport",
                &k,
                &[
                    ("WrappingAlgorithm", "RSAES_OAEP_SHA_256"),
                    ("WrappingKeySpec", "RSA_2048"),
                ],
            )
        }
        BenchAction::ImportKeyMaterial => {
            // One token and one wrapped material, imported again and again (re-importing
            // the same material is allowed): each request unwraps, checks the commitment
            // and writes the key.
            let k = create_key(client, Origin::External, level, spec).await?;
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
            keyed(
                "ImportKeyMaterial",
                &k,
                &[
                    ("ImportToken", &token),
                    ("EncryptedKeyMaterial", &b64(&wrapped)),
                    ("KeyMaterialExpireUnix", "0"),
                ],
            )
        }
    })
}

/// The RAM policy document of an --as-ram-user run: exactly `kms:Encrypt` and the plans'
/// actions, on the plans' resources.
pub fn ram_policy(actions: &[&str], resources: &[&str]) -> String {
    let mut acts: Vec<String> = std::iter::once("Encrypt")
        .chain(actions.iter().copied().filter(|a| !a.is_empty()))
        .map(|a| format!("kms:{a}"))
        .collect();
    acts.sort();
    acts.dedup();
    let mut res: Vec<&str> = resources.to_vec();
    res.sort_unstable();
    res.dedup();
    serde_json::json!({
        "Version": "1",
        "Statement": [{ "Effect": "Allow", "Action": acts, "Resource": res }],
    })
    .to_string()
}

/// Creates a RAM user allowed exactly what `plans` need, and returns a client signing with
/// its new access key (same endpoint and settings as `root`).
async fn ram_user_client(
    root: &Client,
    args: &BenchArgs,
    trust: &crate::tls::Trust,
    plans: &[Plan],
) -> Result<Client, String> {
    const RAM: &str = crate::action::ram::VERSION;
    let ram = |action: &'static str, p: Vec<(String, String)>| async move {
        let r = root.call_version(RAM, action, &p).await?;
        if r.is_ok() {
            Ok(r)
        } else {
            Err(format!("setup {action} failed: {} {}", r.status, r.body))
        }
    };
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let user = format!("kms-bench-{}", &tag[..12]);
    let policy_name = format!("kms-bench-{}", &tag[..12]);
    let actions: Vec<&str> = plans.iter().map(|p| p.action).collect();
    let resources: Vec<&str> = plans.iter().map(|p| p.resource.as_str()).collect();
    ram("CreateUser", params(&[("UserName", &user)])).await?;
    let r = ram("CreateAccessKey", params(&[("UserName", &user)])).await?;
    let key = &r.body["AccessKey"];
    let (Some(id), Some(secret)) = (key["AccessKeyId"].as_str(), key["AccessKeySecret"].as_str())
    else {
        return Err(format!("setup: no AccessKey in {}", r.body));
    };
    let creds = Credentials {
        access_key_id: id.to_string(),
        access_key_secret: Zeroizing::new(secret.to_string()),
    };
    ram(
        "CreatePolicy",
        params(&[
            ("PolicyName", &policy_name),
            ("PolicyDocument", &ram_policy(&actions, &resources)),
            ("Description", "kms bench --as-ram-user"),
        ]),
    )
    .await?;
    ram(
        "AttachPolicyToUser",
        params(&[
            ("PolicyType", "Custom"),
            ("PolicyName", &policy_name),
            ("UserName", &user),
        ]),
    )
    .await?;
    Client::with_trust(&args.endpoint, creds, root.signature, &args.region, trust)
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
    for (action, _) in &mix {
        key_spec_for(*action, args.key_spec)?;
    }
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
    let probe = server_cpu::Probe::resolve(args.server_pid, &args.endpoint);
    let mut reports = Vec::new();
    if args.compare {
        for ceiling in [BenchAction::Healthz, BenchAction::DescribeRegions] {
            reports.push(phase(&client, &args, &[(ceiling, 1)], None, &probe).await?);
        }
    }
    // With --as-ram-user: the root-signed and RAM-user totals over every round.
    let mut sides = [(0u64, 0f64), (0u64, 0f64)];
    if args.as_ram_user && args.rounds > 1 && args.duration.is_some() {
        let mut slice = args.clone();
        slice.duration = args.duration.map(|d| d / f64::from(args.rounds));
        for _ in 0..args.rounds {
            for (i, ram) in [None, Some(&trust)].into_iter().enumerate() {
                let r = phase(&client, &slice, &mix, ram, &probe).await?;
                sides[i].0 += r.requests;
                sides[i].1 += r.seconds;
                reports.push(r);
            }
        }
    } else {
        reports.push(phase(&client, &args, &mix, None, &probe).await?);
        if args.as_ram_user {
            // The same load signed by a RAM user, right after the root-signed one.
            reports.push(phase(&client, &args, &mix, Some(&trust), &probe).await?);
        }
    }
    // The action's server CPU per request over that of /healthz (the same run).
    let cpu_vs_healthz = if args.compare {
        let main = reports.last().and_then(|r| r.server_cpu_us_per_request);
        match (main, reports[0].server_cpu_us_per_request) {
            (Some(m), Some(h)) if h > 0.0 => Some(m / h),
            _ => None,
        }
    } else {
        None
    };
    let (server_pid, server_note) = match &probe {
        server_cpu::Probe::Pid(pid) => (Some(*pid), None),
        server_cpu::Probe::Unavailable(why) => (None, Some(why.clone())),
    };
    let main = reports.last().map(|r| r.throughput).unwrap_or(0.0);
    let mut ratios: BTreeMap<String, f64> = if args.compare {
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
    if args.as_ram_user {
        let (root, ram) = if sides[0].1 > 0.0 && sides[1].1 > 0.0 {
            (
                sides[0].0 as f64 / sides[0].1,
                sides[1].0 as f64 / sides[1].1,
            )
        } else {
            (reports[reports.len() - 2].throughput, main)
        };
        ratios.insert(
            "vs_root_signed".into(),
            if root > 0.0 { ram / root } else { 0.0 },
        );
    }
    if args.json {
        let out = serde_json::json!({
            "runs": reports,
            "ratios": ratios,
            "server_cpu": {
                "pid": server_pid,
                "note": server_note,
                "vs_Healthz": cpu_vs_healthz,
            },
        });
        println!("{out}");
    } else {
        if let Some(why) = &server_note {
            println!("server CPU: not measured ({why})");
        }
        for r in &reports {
            print_report(r);
        }
        for (k, v) in &ratios {
            println!("ratio {}: {v:.2}", k.trim_start_matches("vs_"));
        }
        if let Some(r) = cpu_vs_healthz {
            println!("server CPU ratio Healthz: {r:.2}");
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
    if let Some(us) = report.server_cpu_us_per_request {
        println!("server CPU: {us:.1} µs/request");
    }
    if let Some(us) = report.client_cpu_us_per_request {
        println!("load generator CPU: {us:.1} µs/request");
    }
    for (code, n) in &report.errors {
        println!("errors: {code}: {n}");
    }
}

/// The load of a phase for `seconds`, unmeasured: the phase's connections are open, its key,
/// user and policies are in the server's caches and its nonce sets have grown before the
/// measured part starts (every phase creates its own key, and with --as-ram-user its own
/// user, so without this its first second would be slower than the rest).
async fn warm_up(
    client: &Arc<Client>,
    plans: &Arc<Vec<Option<crate::client::Prepared>>>,
    schedule: &Arc<Vec<usize>>,
    concurrency: usize,
    seconds: f64,
) {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (client, plans, schedule) = (client.clone(), plans.clone(), schedule.clone());
        workers.push(tokio::spawn(async move {
            let mut n = w;
            while Instant::now() < deadline {
                let plan = &plans[schedule[n % schedule.len()]];
                n += concurrency;
                let _ = match plan {
                    None => client.get_raw("/healthz").await,
                    Some(p) => client.call_prepared(p).await,
                };
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
}

/// One measured run of a mix of actions.
async fn phase(
    client: &Arc<Client>,
    args: &BenchArgs,
    mix: &[(BenchAction, u32)],
    ram_user: Option<&crate::tls::Trust>,
    probe: &server_cpu::Probe,
) -> Result<Report, String> {
    let mut plans = Vec::new();
    let mut schedule = Vec::new();
    for (i, (action, weight)) in mix.iter().enumerate() {
        plans.push(plan(client, args, *action).await?);
        schedule.extend(std::iter::repeat_n(i, *weight as usize));
    }
    let client = match ram_user {
        Some(trust) => Arc::new(ram_user_client(client, args, trust, &plans).await?),
        None => client.clone(),
    };
    let mut name = mix
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
    if ram_user.is_some() {
        name.push_str(" as RAM user");
    }
    // Each plan's request prepared once (its encoded and canonical query): every request
    // of the phase is the same but for its nonce and time.
    let prepared: Vec<Option<crate::client::Prepared>> = plans
        .iter()
        .map(|p| {
            (!p.action.is_empty())
                .then(|| client.prepare(crate::action::kms::VERSION, p.action, &p.params))
        })
        .collect();
    let plans = Arc::new(prepared);
    let schedule = Arc::new(schedule);
    if args.duration.is_some() && args.warmup > 0.0 {
        warm_up(&client, &plans, &schedule, args.concurrency, args.warmup).await;
    }
    let issued = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let cpu_before = probe.cpu_us();
    let me = server_cpu::Probe::Pid(std::process::id());
    let own_before = me.cpu_us();
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
                // The body is parsed only when the status says error (for its Code): the
                // load generator shares the machine with the server.
                let r = match plan {
                    None => client.get_raw("/healthz").await,
                    Some(p) => client.call_prepared(p).await,
                };
                latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                done.fetch_add(1, Ordering::Relaxed);
                match r {
                    Ok((status, _)) if (200..300).contains(&status) => {}
                    Ok((status, body)) => {
                        let r = crate::client::ApiResponse::parse(status, &body);
                        let code = r.code().unwrap_or("UnknownError");
                        *errors.entry(code.to_string()).or_default() += 1;
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
    let cpu_us = match (cpu_before, probe.cpu_us()) {
        (Some(a), Some(b)) => Some((b - a).max(0.0)),
        _ => None,
    };
    let own_us = match (own_before, me.cpu_us()) {
        (Some(a), Some(b)) => Some((b - a).max(0.0)),
        _ => None,
    };
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
        server_cpu_seconds: cpu_us.map(|us| us / 1e6),
        server_cpu_us_per_request: cpu_us.map(|us| if total > 0 { us / total as f64 } else { 0.0 }),
        client_cpu_us_per_request: own_us.map(|us| if total > 0 { us / total as f64 } else { 0.0 }),
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

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(extra: &[&str]) -> Result<BenchArgs, clap::Error> {
        use clap::Parser;
        let base = ["kms", "--access-key-id", "a", "--access-key-secret", "s"];
        Cli::try_parse_from(base.iter().chain(extra)).map(|c| c.bench)
    }

    #[test]
    fn new_options_parse() {
        let a = parse(&[]).unwrap();
        assert_eq!((a.key_spec, a.as_ram_user, a.rounds), (None, false, 1));
        let a = parse(&[
            "--action",
            "AsymmetricSign",
            "--key-spec",
            "EC_SM2",
            "--as-ram-user",
        ])
        .unwrap();
        assert_eq!(a.key_spec, Some(KeySpec::EcSm2));
        assert!(a.as_ram_user);
        assert_eq!(
            parse_mix(&a.action).unwrap(),
            vec![(BenchAction::AsymmetricSign, 1)]
        );
        for (text, spec) in [
            ("Aliyun_SM4", KeySpec::Sm4),
            ("RSA_2048", KeySpec::Rsa2048),
            ("EC_P256", KeySpec::EcP256),
        ] {
            assert_eq!(parse(&["--key-spec", text]).unwrap().key_spec, Some(spec));
        }
        for bad in ["sm4", "AES", ""] {
            assert!(parse(&["--key-spec", bad]).is_err(), "{bad}");
        }
        assert!(parse(&["--as-ram-user", "yes"]).is_err());
        for name in ["AsymmetricVerify", "GetSecretValue"] {
            assert_eq!(parse_mix(name).unwrap().len(), 1);
        }
    }

    #[test]
    fn key_specs_fit_actions() {
        use BenchAction as A;
        assert_eq!(key_spec_for(A::Encrypt, None), Ok(Some(KeySpec::Aes256)));
        assert_eq!(
            key_spec_for(A::AsymmetricSign, None),
            Ok(Some(KeySpec::EcP256))
        );
        assert_eq!(key_spec_for(A::GetSecretValue, None), Ok(None));
        for a in [A::Encrypt, A::Decrypt, A::GenerateDataKey, A::DescribeKey] {
            assert_eq!(key_spec_for(a, Some(KeySpec::Sm4)), Ok(Some(KeySpec::Sm4)));
        }
        for s in [KeySpec::Rsa2048, KeySpec::EcP256, KeySpec::EcSm2] {
            assert_eq!(key_spec_for(A::AsymmetricSign, Some(s)), Ok(Some(s)));
            assert_eq!(key_spec_for(A::AsymmetricVerify, Some(s)), Ok(Some(s)));
            assert!(key_spec_for(A::Encrypt, Some(s)).is_err());
        }
        assert_eq!(
            key_spec_for(A::AsymmetricSign, Some(KeySpec::Sm4)),
            Err("--key-spec Aliyun_SM4 does not fit action AsymmetricSign".into())
        );
        assert!(key_spec_for(A::ImportKeyMaterial, Some(KeySpec::Sm4)).is_err());
        // Ceilings ignore the key spec, so --compare runs beside any of them.
        assert_eq!(key_spec_for(A::Healthz, Some(KeySpec::EcSm2)), Ok(None));
        assert_eq!(
            key_spec_for(A::DescribeRegions, Some(KeySpec::Sm4)),
            Ok(None)
        );
        assert_eq!(
            sign_algorithm(KeySpec::Rsa2048),
            Some(AsymmetricAlgorithm::RsaPssSha256)
        );
        assert_eq!(
            sign_algorithm(KeySpec::EcP256),
            Some(AsymmetricAlgorithm::EcdsaSha256)
        );
        assert_eq!(
            sign_algorithm(KeySpec::EcSm2),
            Some(AsymmetricAlgorithm::Sm2Dsa)
        );
        assert_eq!(sign_algorithm(KeySpec::Aes256), None);
    }

    #[test]
    fn ram_policy_allows_exactly_the_benched_actions() {
        let doc: serde_json::Value =
            serde_json::from_str(&ram_policy(&["Decrypt"], &["acs:kms:*:*:key/k1"])).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"Version": "1", "Statement": [{"Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:Encrypt"], "Resource": ["acs:kms:*:*:key/k1"]}]})
        );
        let doc: serde_json::Value =
            serde_json::from_str(&ram_policy(&["Encrypt", "Encrypt"], &["k", "k"])).unwrap();
        assert_eq!(
            doc["Statement"][0]["Action"],
            serde_json::json!(["kms:Encrypt"])
        );
        assert_eq!(doc["Statement"][0]["Resource"], serde_json::json!(["k"]));
    }
}
