//! The command line client, shaped like `aliyun kms`: `kms <Action> --Param value …` for
//! every action of [`crate::action::kms::Action`] (the server's own table, so a new action is
//! one row), plus `kms configure`, `kms wrap`, `kms import-material`,
//! `kms create-external-key`, `kms sign`, `kms verify` ([`asymmetric`]) and `kms completion`.
//!
//! Credentials and endpoint: flag > environment (`ALIBABA_CLOUD_ACCESS_KEY_ID`,
//! `ALIBABA_CLOUD_ACCESS_KEY_SECRET`, `ALIBABA_CLOUD_REGION_ID`, `KMS_ENDPOINT`,
//! `KMS_PROFILE`) > profile in the config file (`~/.kms/config.toml`, or `KMS_CLI_CONFIG`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use base64::Engine;
use clap::{Arg, ArgMatches, Args, CommandFactory, FromArgMatches};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::action::kms::Action;
use crate::action::ParamKind;
use crate::client::{ApiResponse, Client, Credentials, SignatureVersion};
use crate::config::Cli;
use crate::keystore::wrapping::Wrapping;

pub mod asymmetric;
pub mod fingerprint;
pub mod hints;

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8080";

/// How a command ended: exit status and what to print on stderr.
#[derive(Debug)]
pub struct Failure {
    pub status: u8,
    pub message: String,
}

impl Failure {
    /// Bad usage or local problem (missing credentials, unreadable file): exit 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            status: 2,
            message: message.into(),
        }
    }
    /// The server answered an error: exit 1.
    pub fn api(message: impl Into<String>) -> Self {
        Self {
            status: 1,
            message: message.into(),
        }
    }
    /// Adds hint lines under the message (the server's answer stays the first line).
    fn with_hints(mut self, hints: impl IntoIterator<Item = String>) -> Self {
        for h in hints {
            self.message.push('\n');
            self.message.push_str(&h);
        }
        self
    }
}

/// A failed call: the failure to report, and the server's error `Code` if it answered one
/// (so a caller can add what it knows).
#[derive(Debug)]
struct CallError {
    failure: Failure,
    code: Option<String>,
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        e.failure
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::usage(message)
    }
}

/// Options of every command that talks to a server.
#[derive(Debug, Clone, Default, Args)]
pub struct ClientArgs {
    /// Server endpoint [env: KMS_ENDPOINT] [default: profile's, else http://127.0.0.1:8080]
    #[arg(long, env = "KMS_ENDPOINT", hide_env = true)]
    pub endpoint: Option<String>,
    /// Access key id [env: ALIBABA_CLOUD_ACCESS_KEY_ID]
    #[arg(long, env = "ALIBABA_CLOUD_ACCESS_KEY_ID", hide_env = true)]
    pub access_key_id: Option<String>,
    /// Access key secret [env: ALIBABA_CLOUD_ACCESS_KEY_SECRET]
    #[arg(
        long,
        env = "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        hide_env = true,
        hide_env_values = true
    )]
    pub access_key_secret: Option<String>,
    /// Region id [env: ALIBABA_CLOUD_REGION_ID] [default: profile's, else cn-hangzhou]
    #[arg(long, env = "ALIBABA_CLOUD_REGION_ID", hide_env = true)]
    pub region: Option<String>,
    /// Profile in the config file [env: KMS_PROFILE] [default: default]
    #[arg(long, env = "KMS_PROFILE", hide_env = true)]
    pub profile: Option<String>,
    /// 3 = ACS3-HMAC-SHA256 (default), 1 = HMAC-SHA1
    #[arg(long, value_parser = ["1", "3"])]
    pub signature_version: Option<String>,
    /// For https endpoints: trust the certificates in this PEM file (for example the server's
    /// <data dir>/tls/cert.pem) [env: KMS_CA_CERT] [default: the system's roots]
    #[arg(long, env = "KMS_CA_CERT", hide_env = true)]
    pub ca_cert: Option<PathBuf>,
    /// For https endpoints: do not check the server's certificate at all (testing only)
    #[arg(long, conflicts_with = "ca_cert")]
    pub insecure: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Profile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProfileFile {
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

pub fn config_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KMS_CLI_CONFIG") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".kms").join("config.toml")
}

fn load_profiles() -> Result<ProfileFile, String> {
    let path = config_path();
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProfileFile::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn save_profiles(file: &ProfileFile) -> Result<PathBuf, String> {
    let path = config_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let text = toml::to_string(file).map_err(|e| e.to_string())?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    Ok(path)
}

/// Everything needed to call a server, after applying precedence.
pub struct Resolved {
    pub endpoint: String,
    pub access_key_id: String,
    pub access_key_secret: Zeroizing<String>,
    pub region: String,
    pub signature: SignatureVersion,
}

impl ClientArgs {
    pub fn resolve(&self) -> Result<Resolved, Failure> {
        let file = load_profiles()?;
        let profile = match &self.profile {
            Some(name) => file.profiles.get(name).cloned().ok_or_else(|| {
                Failure::usage(format!(
                    "no profile {name:?} in {}; create it with: kms configure --profile {name}",
                    config_path().display()
                ))
            })?,
            None => file.profiles.get("default").cloned().unwrap_or_default(),
        };
        let access_key_id = self.access_key_id.clone().or(profile.access_key_id);
        let access_key_secret = self.access_key_secret.clone().or(profile.access_key_secret);
        let (Some(access_key_id), Some(access_key_secret)) = (access_key_id, access_key_secret)
        else {
            return Err(Failure::usage(
                "no credentials: pass --access-key-id and --access-key-secret, or set \
                 ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, or run `kms configure`",
            ));
        };
        Ok(Resolved {
            endpoint: self
                .endpoint
                .clone()
                .or(profile.endpoint)
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
            access_key_id,
            access_key_secret: Zeroizing::new(access_key_secret),
            region: self
                .region
                .clone()
                .or(profile.region)
                .unwrap_or_else(|| "cn-hangzhou".to_string()),
            signature: match self.signature_version.as_deref() {
                Some("1") => SignatureVersion::V1,
                _ => SignatureVersion::V3,
            },
        })
    }

    pub fn client(&self) -> Result<(Client, String), Failure> {
        let r = self.resolve()?;
        let endpoint = r.endpoint.clone();
        let trust = match (&self.ca_cert, self.insecure) {
            (_, true) => crate::tls::Trust::Nothing,
            (Some(p), false) => crate::tls::Trust::CaFile(p.clone()),
            (None, false) => crate::tls::Trust::System,
        };
        let client = Client::with_trust(
            &r.endpoint,
            Credentials {
                access_key_id: r.access_key_id,
                access_key_secret: r.access_key_secret,
            },
            r.signature,
            &r.region,
            &trust,
        )?;
        Ok((client, endpoint))
    }
}

/// One subcommand per API action, with a `--Name` option per parameter.
fn output_arg() -> Arg {
    Arg::new("output")
        .long("output")
        .num_args(1..=2)
        .value_name("SPEC")
        .help("value=Path[,Path]: print bare values; cols=A,B [rows=Path.To.List[]]: print a table")
}

fn action_command(action: Action) -> clap::Command {
    let mut c = clap::Command::new(action.name()).after_help(
        "Prints the response JSON. Errors print as `Code: Message (RequestId)` and exit with status 1.",
    );
    for p in action.params() {
        let help = if p.required {
            format!("{} (required)", p.help)
        } else {
            p.help.to_string()
        };
        let arg = Arg::new(p.name)
            .long(p.name)
            .help(help)
            .required(p.required);
        c = c.arg(match p.kind {
            ParamKind::Single => arg.value_name("VALUE"),
            ParamKind::List => arg.value_name("VALUE").action(clap::ArgAction::Append),
            ParamKind::TagList => arg.value_name("KEY=VALUE").action(clap::ArgAction::Append),
        });
    }
    // The about line last: `augment_args` would put ClientArgs' own doc line there.
    ClientArgs::augment_args(c.arg(output_arg())).about(action.help())
}

/// A usage line that names the required arguments and shows everything else, credentials
/// included, as `[OPTIONS]`. clap's own usage line lists the arguments it found, so with
/// credentials in the environment an error's usage line showed `--access-key-id <ID>
/// --access-key-secret <SECRET>` as if they had to be typed.
fn usage_line(cmd: &clap::Command) -> String {
    let mut usage = format!("kms {} [OPTIONS]", cmd.get_name());
    let credential = |a: &Arg| matches!(a.get_id().as_str(), "access_key_id" | "access_key_secret");
    for arg in cmd
        .get_arguments()
        .filter(|a| a.is_required_set() && !credential(a))
    {
        let value = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map(|v| v.to_string())
            .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
        match arg.get_long() {
            Some(long) => usage.push_str(&format!(" --{long} <{value}>")),
            None => usage.push_str(&format!(" <{value}>")),
        }
    }
    usage
}

/// The whole command line: the fixed commands plus one per API action.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    for action in Action::ALL {
        cmd = cmd.subcommand(action_command(*action));
    }
    // Every command that takes credentials gets the usage line above.
    let names: Vec<String> = cmd
        .get_subcommands()
        .filter(|c| c.get_arguments().any(|a| a.get_id() == "access_key_id"))
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |c| {
            let usage = usage_line(&c);
            c.override_usage(usage)
        });
    }
    cmd
}

fn call_failure(endpoint: &str, e: String) -> Failure {
    Failure::usage(format!("cannot reach {endpoint}: {e}"))
}

fn api_error(r: &ApiResponse) -> CallError {
    let field = |n: &str| {
        r.body
            .get(n)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if r.body.is_null() {
        return CallError {
            failure: Failure::api(format!(
                "HTTP {}: the server's answer is not JSON",
                r.status
            )),
            code: None,
        };
    }
    CallError {
        failure: Failure::api(format!(
            "{}: {} ({})",
            field("Code"),
            field("Message"),
            field("RequestId")
        )),
        code: r.code().map(str::to_string),
    }
}

/// One call; a server error comes back with the hint lines this side can add.
async fn call(
    client: &Client,
    endpoint: &str,
    action: &str,
    params: &[(String, String)],
) -> Result<Value, CallError> {
    let r = client.call(action, params).await.map_err(|e| CallError {
        failure: call_failure(endpoint, e),
        code: None,
    })?;
    if !r.is_ok() {
        let e = api_error(&r);
        let hints = match &e.code {
            Some(code) => hints::for_error(client, action, params, code).await,
            None => Vec::new(),
        };
        return Err(CallError {
            failure: e.failure.with_hints(hints),
            code: e.code,
        });
    }
    Ok(r.body)
}

/// Runs `kms <Action> …`.
pub async fn run_action(action: Action, m: &ArgMatches) -> Result<(), Failure> {
    let args = ClientArgs::from_arg_matches(m).map_err(|e| Failure::usage(e.to_string()))?;
    let mut params = Vec::new();
    for p in action.params() {
        let values: Vec<String> = m
            .get_many::<String>(p.name)
            .map(|v| v.cloned().collect())
            .unwrap_or_default();
        match p.kind {
            ParamKind::Single => {
                if let Some(v) = values.into_iter().next() {
                    params.push((p.name.to_string(), v));
                }
            }
            ParamKind::List => {
                for (i, v) in values.into_iter().enumerate() {
                    params.push((format!("{}.{}", p.name, i + 1), v));
                }
            }
            ParamKind::TagList => {
                for (i, v) in values.into_iter().enumerate() {
                    let (k, val) = v.split_once('=').unwrap_or((v.as_str(), ""));
                    params.push((format!("{}.{}.Key", p.name, i + 1), k.to_string()));
                    params.push((format!("{}.{}.Value", p.name, i + 1), val.to_string()));
                }
            }
        }
    }
    let (client, endpoint) = args.client()?;
    let body = call(&client, &endpoint, action.name(), &params).await?;
    let output: Option<Vec<String>> = m.get_many::<String>("output").map(|v| v.cloned().collect());
    print_body(&body, output.as_deref())
}

/// The value at a dotted path (`KeyMetadata.KeyId`), as text.
fn value_at(v: &Value, path: &str) -> Option<String> {
    let mut cur = v;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        cur = cur.get(seg)?;
    }
    Some(match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// `--output value=Path[,Path…]`: the bare values, one per line (for shell variables);
/// `--output cols=KeyId,KeyArn rows=Keys.Key[]`: a plain text table.
pub fn table(body: &Value, spec: &[String]) -> Result<String, Failure> {
    if let [only] = spec {
        if let Some(paths) = only.strip_prefix("value=") {
            let mut out = String::new();
            for p in paths.split(',') {
                let v = value_at(body, p)
                    .ok_or_else(|| Failure::usage(format!("the response has no {p}")))?;
                out.push_str(&v);
                out.push('\n');
            }
            return Ok(out);
        }
    }
    let mut cols: Vec<String> = Vec::new();
    let mut rows_path: Option<String> = None;
    for part in spec {
        if let Some(c) = part.strip_prefix("cols=") {
            cols = c
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
        } else if let Some(r) = part.strip_prefix("rows=") {
            rows_path = Some(r.to_string());
        } else {
            return Err(Failure::usage(format!(
                "--output takes cols=… and rows=…, not {part:?}"
            )));
        }
    }
    if cols.is_empty() {
        return Err(Failure::usage("--output needs cols=Name,Name"));
    }
    let rows: Vec<&Value> = match rows_path {
        None => vec![body],
        Some(path) => {
            let mut v = body;
            for seg in path
                .trim_end_matches("[]")
                .split('.')
                .filter(|s| !s.is_empty())
            {
                v = v.get(seg).ok_or_else(|| {
                    Failure::usage(format!("the response has no {seg:?} in rows={path}"))
                })?;
            }
            match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            }
        }
    };
    let cell = |row: &Value, col: &str| -> String { value_at(row, col).unwrap_or_default() };
    let data: Vec<Vec<String>> = rows
        .iter()
        .map(|r| cols.iter().map(|c| cell(r, c)).collect())
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            data.iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut out = line(&cols);
    out.push_str(&line(
        &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
    ));
    for r in &data {
        out.push_str(&line(r));
    }
    Ok(out)
}

#[derive(Debug, Clone, Args)]
pub struct ConfigureArgs {
    /// Profile to write [default: default]
    #[arg(long, default_value = "default")]
    pub profile: String,
    #[arg(long)]
    pub access_key_id: Option<String>,
    /// The secret; when absent it is read from standard input (one line), so it stays out of
    /// the shell history and the process list.
    #[arg(long)]
    pub access_key_secret: Option<String>,
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long)]
    pub endpoint: Option<String>,
}

fn read_line(prompt: &str) -> Result<String, Failure> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut s = String::new();
    std::io::stdin()
        .read_line(&mut s)
        .map_err(|e| Failure::usage(e.to_string()))?;
    Ok(s.trim().to_string())
}

pub fn configure(a: ConfigureArgs) -> Result<(), Failure> {
    let mut file = load_profiles()?;
    let existing = file.profiles.get(&a.profile).cloned().unwrap_or_default();
    let access_key_id = match a.access_key_id.or(existing.access_key_id.clone()) {
        Some(v) => v,
        None => read_line("Access Key Id: ")?,
    };
    let access_key_secret = match a.access_key_secret {
        Some(v) => v,
        None => read_line("Access Key Secret: ")?,
    };
    if access_key_id.is_empty() || access_key_secret.is_empty() {
        return Err(Failure::usage("an access key id and secret are needed"));
    }
    let profile = Profile {
        access_key_id: Some(access_key_id),
        access_key_secret: Some(access_key_secret),
        region: a.region.or(existing.region).or(Some("cn-hangzhou".into())),
        endpoint: a
            .endpoint
            .or(existing.endpoint)
            .or(Some(DEFAULT_ENDPOINT.into())),
    };
    file.profiles.insert(a.profile.clone(), profile);
    let path = save_profiles(&file)?;
    println!("Saved profile {:?} in {}", a.profile, path.display());
    Ok(())
}

fn algorithm(name: &str) -> Result<Wrapping, Failure> {
    Wrapping::parse(name).ok_or_else(|| {
        Failure::usage(format!(
            "unknown algorithm {name:?}: use RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1, RSAES_PKCS1_V1_5 or SM2PKE (RSA_AES_KEY_WRAP_SHA_256 for a private key)"
        ))
    })
}

/// Reads key material from a file, or standard input for `-`; never from an argument. With
/// `RSA_AES_KEY_WRAP_SHA_256` the material is a private key (issue 17): unencrypted PKCS#8,
/// DER or PEM (`-----BEGIN PRIVATE KEY-----`), passed on as DER.
fn read_material(path: &str, alg: Wrapping) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let mut buf = Zeroizing::new(Vec::new());
    if path == "-" {
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::usage(format!("cannot read standard input: {e}")))?;
    } else {
        *buf =
            std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read {path}: {e}")))?;
    }
    if alg.for_asymmetric() {
        return asymmetric::private_key_der(path, buf);
    }
    if buf.len() != 32 && buf.len() != 16 {
        return Err(Failure::usage(format!(
            "key material must be exactly 32 bytes (256 bits) for Aliyun_AES_256, or 16 bytes (128 bits) for Aliyun_SM4; {path} has {}",
            buf.len()
        )));
    }
    Ok(buf)
}

#[derive(Debug, Clone, Args)]
pub struct WrapArgs {
    /// The PublicKey from GetParametersForImport: a file with its base64 text
    /// (PublicKey_base64.txt), or the DER file openssl makes of it (PublicKey.bin), or PEM
    #[arg(long)]
    pub public_key: PathBuf,
    /// The WrappingAlgorithm named in GetParametersForImport
    #[arg(long, default_value = "RSAES_OAEP_SHA_256")]
    pub algorithm: String,
    /// The key material, 32 bytes (Aliyun_AES_256) or 16 (Aliyun_SM4) (`-` for standard input)
    #[arg(long = "in")]
    pub input: String,
    /// Where to write the base64 EncryptedKeyMaterial [default: standard output]
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// A public key file as the import guide leaves it: the base64 text of the PublicKey field
/// (line breaks allowed), the DER that `openssl enc -d -base64` makes of it, or PEM.
pub fn parse_public_key(bytes: &[u8]) -> Option<Vec<u8>> {
    // DER: a SEQUENCE with a long-form length (an RSA SubjectPublicKeyInfo is > 127 bytes),
    // or a short-form one that spans the whole file (an SM2 one is 91 bytes).
    if bytes.first() == Some(&0x30)
        && bytes
            .get(1)
            .is_some_and(|b| b & 0x80 != 0 || usize::from(*b) + 2 == bytes.len())
    {
        return Some(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()
        .filter(|d| !d.is_empty())
}

fn read_public_key(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    parse_public_key(&bytes).ok_or_else(|| {
        Failure::usage(format!(
            "{} is neither the PublicKey's base64 text (PublicKey_base64.txt) nor its DER (PublicKey.bin)",
            path.display()
        ))
    })
}

pub fn wrap(a: WrapArgs) -> Result<(), Failure> {
    let alg = algorithm(&a.algorithm)?;
    let public = read_public_key(&a.public_key)?;
    let material = read_material(&a.input, alg)?;
    let wrapped = alg
        .wrap(&public, &material)
        .map_err(|e| Failure::usage(format!("{}: {e}", a.public_key.display())))?;
    let text = base64::engine::general_purpose::STANDARD.encode(wrapped);
    match a.out {
        Some(p) => std::fs::write(&p, &text)
            .map_err(|e| Failure::usage(format!("cannot write {}: {e}", p.display())))?,
        None => println!("{text}"),
    }
    Ok(())
}

#[derive(Debug, Clone, Args)]
pub struct ImportMaterialArgs {
    /// The EXTERNAL key (id or ARN)
    #[arg(long)]
    pub key_id: String,
    /// The key material, 32 bytes (Aliyun_AES_256) or 16 (Aliyun_SM4) (`-` for standard input)
    #[arg(long)]
    pub material_file: String,
    /// The wrapping algorithm (with --import-token: the one its GetParametersForImport named)
    #[arg(long, default_value = "RSAES_OAEP_SHA_256")]
    pub algorithm: String,
    /// Use import parameters you already have (e.g. downloaded from the console) instead of
    /// asking for new ones: the PublicKey file (base64 text or DER), with --import-token
    #[arg(long, requires = "import_token")]
    pub public_key: Option<PathBuf>,
    /// The file holding the ImportToken that goes with --public-key
    #[arg(long, requires = "public_key")]
    pub import_token: Option<PathBuf>,
    /// When the material expires, e.g. 2027-01-01T00:00:00Z [default: never]
    #[arg(long, conflicts_with = "expire_unix")]
    pub expire: Option<String>,
    /// When the material expires, in Unix seconds (0 = never)
    #[arg(long)]
    pub expire_unix: Option<i64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or("")
}

/// The hint `kms import-material` adds to `InvalidKeyMaterial`: it knows what it wrapped,
/// and (from [`fingerprint`]) what it imported into this key before.
fn material_hint(key_id: &str, verdict: fingerprint::Verdict) -> Vec<String> {
    let file = fingerprint::path();
    match verdict {
        fingerprint::Verdict::Different => vec![format!(
            "hint: this is different material than the first import into key {key_id} from this machine \
             (kms import-material keeps a salted fingerprint of what it imported in {}): a key takes only \
             the material of its first import; import that material again.",
            file.display()
        )],
        fingerprint::Verdict::Same => vec![format!(
            "hint: this is the material kms import-material imported into key {key_id} before; \
             with --public-key and --import-token, check that both come from one GetParametersForImport \
             call and that --algorithm is the WrappingAlgorithm it named."
        )],
        fingerprint::Verdict::Unknown => vec![format!(
            "hint: kms import-material wrapped this material itself; if key {key_id} had material before \
             (expired or deleted), this must be the same material: a key takes only the material of its \
             first import. (No import into this key from this machine is on record in {}.)",
            file.display()
        )],
    }
}

pub async fn import_material(a: ImportMaterialArgs) -> Result<(), Failure> {
    let alg = algorithm(&a.algorithm)?;
    let expire = match (&a.expire, a.expire_unix) {
        (Some(t), _) => crate::timefmt::parse(t).ok_or_else(|| {
            Failure::usage(format!(
                "--expire {t:?} is not a time like 2027-01-01T00:00:00Z"
            ))
        })?,
        (None, Some(n)) => n,
        (None, None) => 0,
    };
    let material = read_material(&a.material_file, alg)?;
    let given = match (&a.public_key, &a.import_token) {
        (Some(public), Some(token)) => {
            let token = std::fs::read_to_string(token)
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", token.display())))?;
            Some((read_public_key(public)?, token.trim().to_string()))
        }
        _ => None,
    };
    let (client, endpoint) = a.client.client()?;
    let p = |pairs: &[(&str, &str)]| crate::client::params(pairs);
    let (public, token) = match given {
        Some(g) => g,
        None => {
            let params = call(
                &client,
                &endpoint,
                "GetParametersForImport",
                &p(&[
                    ("KeyId", &a.key_id),
                    ("WrappingAlgorithm", alg.as_str()),
                    ("WrappingKeySpec", alg.key_spec().as_str()),
                ]),
            )
            .await?;
            let public = base64::engine::general_purpose::STANDARD
                .decode(str_of(&params, &["PublicKey"]))
                .map_err(|_| Failure::api("the server's PublicKey is not base64"))?;
            (public, str_of(&params, &["ImportToken"]).to_string())
        }
    };
    let wrapped = base64::engine::general_purpose::STANDARD.encode(
        alg.wrap(&public, &material)
            .map_err(|e| Failure::usage(format!("the public key: {e}")))?,
    );
    let expire_s = expire.to_string();
    if let Err(e) = call(
        &client,
        &endpoint,
        "ImportKeyMaterial",
        &p(&[
            ("KeyId", &a.key_id),
            ("ImportToken", &token),
            ("EncryptedKeyMaterial", &wrapped),
            ("KeyMaterialExpireUnix", &expire_s),
        ]),
    )
    .await
    {
        if e.code.as_deref() == Some("InvalidKeyMaterial") {
            // Key ids may be ARNs: the record is under the bare id DescribeKey gives.
            let id = key_id_of(&client, &a.key_id).await;
            let verdict = fingerprint::compare(&id, &material);
            // This side knows more than the generic checklist: say that instead.
            let first = e.failure.message.lines().next().unwrap_or("").to_string();
            return Err(Failure::api(first).with_hints(material_hint(&id, verdict)));
        }
        return Err(e.into());
    }
    let d = call(
        &client,
        &endpoint,
        "DescribeKey",
        &p(&[("KeyId", &a.key_id)]),
    )
    .await?;
    let id = str_of(&d, &["KeyMetadata", "KeyId"]);
    if let Err(e) = fingerprint::record(id, &material) {
        tracing::debug!(error = %e, "material fingerprint not recorded");
    }
    let out = serde_json::json!({
        "KeyId": id,
        "KeyState": str_of(&d, &["KeyMetadata", "KeyState"]),
        "MaterialExpireTime": str_of(&d, &["KeyMetadata", "MaterialExpireTime"]),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// The bare key id of `key` (an id or an ARN), from DescribeKey; `key` itself if that fails.
async fn key_id_of(client: &Client, key: &str) -> String {
    match client
        .call("DescribeKey", &crate::client::params(&[("KeyId", key)]))
        .await
    {
        Ok(r) if r.is_ok() => str_of(&r.body, &["KeyMetadata", "KeyId"]).to_string(),
        _ => key.to_string(),
    }
}

#[derive(Debug, Clone, Args)]
pub struct CreateExternalKeyArgs {
    #[arg(long)]
    pub description: Option<String>,
    /// value=Path: print bare values; cols=A,B: print a table
    #[arg(long, num_args = 1..=2)]
    pub output: Option<Vec<String>>,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn create_external_key(a: CreateExternalKeyArgs) -> Result<(), Failure> {
    let (client, endpoint) = a.client.client()?;
    let mut params = crate::client::params(&[("Origin", crate::model::Origin::External.as_str())]);
    if let Some(d) = a.description {
        params.push(("Description".into(), d));
    }
    let body = call(&client, &endpoint, "CreateKey", &params).await?;
    print_body(&body, a.output.as_deref())
}

fn print_body(body: &Value, output: Option<&[String]>) -> Result<(), Failure> {
    match output {
        Some(spec) => print!("{}", table(body, spec)?),
        None => println!(
            "{}",
            serde_json::to_string_pretty(body).map_err(|e| e.to_string())?
        ),
    }
    Ok(())
}

pub fn completion(shell: clap_complete::Shell) {
    clap_complete::generate(shell, &mut command(), "kms", &mut std::io::stdout());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::wrapping;

    #[test]
    fn every_action_is_a_subcommand_with_its_parameters() {
        let cmd = command();
        for action in Action::ALL {
            let sub = cmd.find_subcommand(action.name()).unwrap();
            for p in action.params() {
                let arg = sub.get_arguments().find(|a| a.get_id() == p.name).unwrap();
                assert_eq!(arg.is_required_set(), p.required, "{action} {}", p.name);
            }
        }
        cmd.debug_assert();
    }

    #[test]
    fn parses_an_action_line() {
        let m = command()
            .try_get_matches_from([
                "kms",
                "CreateKey",
                "--Origin",
                "EXTERNAL",
                "--Description",
                "External key",
                "--endpoint",
                "http://x:1",
            ])
            .unwrap();
        let (name, sub) = m.subcommand().unwrap();
        assert_eq!(name, "CreateKey");
        assert_eq!(sub.get_one::<String>("Origin").unwrap(), "EXTERNAL");
        let err = command()
            .try_get_matches_from(["kms", "CreateKy"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CreateKey"), "{err}");
        let err = command()
            .try_get_matches_from(["kms", "DescribeKey", "--KeyID", "x"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--KeyId"), "{err}");
        assert!(command()
            .try_get_matches_from(["kms", "DescribeKey"])
            .is_err());
    }

    #[test]
    fn tables() {
        let body = serde_json::json!({"Keys":{"Key":[{"KeyId":"a","KeyArn":"arn-a"},{"KeyId":"bb","KeyArn":"arn-b"}]},"TotalCount":2});
        let t = table(
            &body,
            &["cols=KeyId,KeyArn".into(), "rows=Keys.Key[]".into()],
        )
        .unwrap();
        assert_eq!(
            t,
            "KeyId  KeyArn\n-----  ------\na      arn-a\nbb     arn-b\n"
        );
        let t = table(&body, &["cols=TotalCount".into()]).unwrap();
        assert_eq!(t, "TotalCount\n----------\n2\n");
        assert!(table(&body, &["rows=Nope[]".into(), "cols=A".into()]).is_err());
        assert_eq!(
            table(&body, &["value=TotalCount,Keys.Key".into()])
                .unwrap()
                .lines()
                .next(),
            Some("2")
        );
        assert!(table(&body, &["value=Nope".into()]).is_err());
    }

    #[test]
    fn every_action_help_line_is_its_own_and_credentials_are_options() {
        let cmd = command();
        for action in Action::ALL {
            let sub = cmd.find_subcommand(action.name()).unwrap();
            assert_eq!(
                sub.get_about().map(|a| a.to_string()),
                Some(action.help().to_string()),
                "{action}"
            );
        }
        let usage = command()
            .find_subcommand_mut("Encrypt")
            .unwrap()
            .render_usage()
            .to_string();
        assert_eq!(
            usage,
            "Usage: kms Encrypt [OPTIONS] --KeyId <VALUE> --Plaintext <VALUE>"
        );
        // Credentials given on the line still show as options in an error's usage line.
        let err = command()
            .try_get_matches_from([
                "kms",
                "DescribeKey",
                "--access-key-id",
                "LTAIx",
                "--access-key-secret",
                "y",
            ])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Usage: kms DescribeKey [OPTIONS] --KeyId <VALUE>\n"),
            "{err}"
        );
        assert!(!err.contains("<ACCESS_KEY_ID>"), "{err}");
        for name in ["import-material", "create-external-key", "bench"] {
            let usage = command()
                .find_subcommand_mut(name)
                .unwrap()
                .render_usage()
                .to_string();
            assert!(!usage.contains("access-key"), "{usage}");
        }
    }

    #[test]
    fn sm2_public_key_as_der_base64_or_pem() {
        let der = wrapping::generate_sm2().unwrap().public_der;
        assert_eq!(der.len(), 91);
        assert_eq!(parse_public_key(&der), Some(der.clone()));
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        assert_eq!(parse_public_key(b64.as_bytes()), Some(der.clone()));
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
        assert_eq!(parse_public_key(pem.as_bytes()), Some(der));
    }

    #[test]
    fn public_key_as_base64_der_or_pem() {
        let pair = wrapping::generate().unwrap();
        let der = pair.public_der.clone();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        assert_eq!(parse_public_key(&der), Some(der.clone()));
        assert_eq!(parse_public_key(b64.as_bytes()), Some(der.clone()));
        assert_eq!(
            parse_public_key(format!("{b64}\n").as_bytes()),
            Some(der.clone())
        );
        // Wrapped at 64 columns (openssl base64 without -A), and PEM.
        let wrapped: Vec<String> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let lines = wrapped.join("\n");
        assert_eq!(parse_public_key(lines.as_bytes()), Some(der.clone()));
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{lines}\n-----END PUBLIC KEY-----\n");
        assert_eq!(parse_public_key(pem.as_bytes()), Some(der.clone()));
        assert_eq!(parse_public_key(b"not a key at all!"), None);
        assert_eq!(parse_public_key(&[0xff, 0xfe, 0x00]), None);
        assert_eq!(parse_public_key(b""), None);
    }
}
