//! The server over a real socket: `kms::server::run_with_clock` on `127.0.0.1:0` with a
//! temporary data dir and a fixed key-lifecycle clock, driven with requests signed like the
//! SDKs sign them (`kms::client`). Bring your own key end to end — CreateKey(EXTERNAL),
//! GetParametersForImport, local RSA-OAEP wrapping with aws-lc-rs, ImportKeyMaterial,
//! Encrypt, Decrypt — then the refusals: bad signatures, an unknown access key, an expired
//! import token, other material, expired material; and a graceful stop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
use base64::Engine;
use clap::Parser;
use kms::client::{params, ApiResponse, Client, Credentials, SignatureVersion};
use kms::clock::{Clock, ManualClock};
use kms::config::{Cli, Command};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600;
const ACCOUNT: &str = "1234567890123456";
const REGION: &str = "cn-hangzhou";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

/// A server running in this process, stopped (and its data dir removed) by [`Server::stop`].
struct Server {
    endpoint: String,
    data_dir: PathBuf,
    clock: Arc<ManualClock>,
    access_key_id: String,
    access_key_secret: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), String>>,
}

impl Server {
    async fn start(name: &str) -> Server {
        let data_dir = std::env::temp_dir().join(format!(
            "kms-it-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let cli = Cli::try_parse_from([
            "kms",
            "server",
            "--listen",
            &addr.to_string(),
            "--data-dir",
            data_dir.to_str().expect("utf-8 path"),
            "--account-id",
            ACCOUNT,
            "--region",
            REGION,
            "--console-listen",
            "off",
            "--wrapping-key-pool",
            "1",
        ])
        .expect("server flags");
        let Command::Server(args) = cli.command else {
            panic!("not the server command")
        };
        let config = args.resolve().expect("config");
        let clock = Arc::new(ManualClock::new(T0));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(kms::server::run_with_clock(
            listener,
            config,
            clock.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        let endpoint = format!("http://{addr}");
        // The listener is bound already: this waits in the backlog until the accept loop
        // runs, which is after bootstrap has written the first access key.
        let probe = client(&endpoint, "-", "-", SignatureVersion::V3);
        let health = tokio::time::timeout(Duration::from_secs(10), probe.get("/healthz"))
            .await
            .expect("server ready in time")
            .expect("healthz");
        assert_eq!((health.status, health.body), (200, json!({"Status": "OK"})));
        let (access_key_id, access_key_secret) = initial_access_key(&data_dir);
        Server {
            endpoint,
            data_dir,
            clock,
            access_key_id,
            access_key_secret,
            stop,
            task,
        }
    }

    fn client(&self, signature: SignatureVersion) -> Client {
        client(
            &self.endpoint,
            &self.access_key_id,
            &self.access_key_secret,
            signature,
        )
    }

    /// Stops the server and waits for `run` to return, then removes the data dir.
    async fn stop(self) {
        let _ = self.stop.send(());
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops in time")
            .expect("the server task ends without panicking");
        assert_eq!(result, Ok(()));
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn client(endpoint: &str, id: &str, secret: &str, signature: SignatureVersion) -> Client {
    Client::new(
        endpoint,
        Credentials {
            access_key_id: id.to_string(),
            access_key_secret: Zeroizing::new(secret.to_string()),
        },
        signature,
        REGION,
    )
    .expect("client")
}

/// The access key bootstrap created on first start (the environment gives none here).
fn initial_access_key(data_dir: &Path) -> (String, String) {
    if let (Ok(id), Ok(secret)) = (
        std::env::var("KMS_ACCESS_KEY_ID"),
        std::env::var("KMS_ACCESS_KEY_SECRET"),
    ) {
        if !id.is_empty() && !secret.is_empty() {
            return (id, secret);
        }
    }
    let text = std::fs::read_to_string(data_dir.join("initial-access-key.json"))
        .expect("initial-access-key.json");
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["AccountId"], ACCOUNT);
    (
        v["AccessKeyId"].as_str().expect("id").to_string(),
        v["AccessKeySecret"].as_str().expect("secret").to_string(),
    )
}

async fn call(c: &Client, action: &str, pairs: &[(&str, &str)]) -> ApiResponse {
    c.call(action, &params(pairs)).await.expect("transport")
}

/// A success: status 200, a RequestId, and the other fields exactly `expected`.
fn ok_body(r: &ApiResponse, expected: Value) {
    assert_eq!(r.status, 200, "{}", r.body);
    let mut body = r.body.clone();
    let request_id = body
        .as_object_mut()
        .and_then(|o| o.remove("RequestId"))
        .expect("RequestId");
    assert_eq!(request_id.as_str().map(str::len), Some(36), "{request_id}");
    assert_eq!(body, expected);
}

/// A refusal: exactly this status and code, with a RequestId and a message.
fn refused(r: &ApiResponse, status: u16, code: &str) {
    assert_eq!((r.status, r.code()), (status, Some(code)), "{}", r.body);
    assert!(r.str_field("RequestId").is_some_and(|id| id.len() == 36));
    assert!(r.str_field("Message").is_some_and(|m| !m.is_empty()));
}

/// RSAES-OAEP-SHA256 wrapping of `material` under a DER SubjectPublicKeyInfo.
fn wrap(public_der: &[u8], material: &[u8]) -> String {
    let key = PublicEncryptingKey::from_der(public_der).expect("RSA public key");
    let key = OaepPublicEncryptingKey::new(key).expect("OAEP key");
    let mut out = vec![0u8; key.ciphertext_size()];
    let n = key
        .encrypt(&OAEP_SHA256_MGF1SHA256, material, &mut out, None)
        .expect("wrap")
        .len();
    b64(&out[..n])
}

/// GetParametersForImport for `key_id` at the current clock: (import token, public key DER).
async fn import_parameters(c: &Client, clock: &ManualClock, key_id: &str) -> (String, Vec<u8>) {
    let r = call(
        c,
        "GetParametersForImport",
        &[
            ("KeyId", key_id),
            ("WrappingAlgorithm", "RSAES_OAEP_SHA_256"),
            ("WrappingKeySpec", "RSA_2048"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.str_field("ImportToken").expect("ImportToken").to_string();
    let public = unb64(r.str_field("PublicKey").expect("PublicKey"));
    // The token lives a day by the service's clock.
    ok_body(
        &r,
        json!({
            "KeyId": key_id,
            "ImportToken": token,
            "PublicKey": b64(&public),
            "TokenExpireTime": kms::timefmt::format_unix(clock.now() + 86_400),
        }),
    );
    // RSA-2048 SubjectPublicKeyInfo.
    assert_eq!(public.len(), 294);
    (token, public)
}

async fn create_external_key(c: &Client) -> (String, Value) {
    let r = call(
        c,
        "CreateKey",
        &[("Origin", "EXTERNAL"), ("Description", "bring your own")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let meta = r.body["KeyMetadata"].clone();
    let key_id = meta["KeyId"].as_str().expect("KeyId").to_string();
    (key_id, meta)
}

#[tokio::test]
async fn bring_your_own_key_over_http() {
    let server = Server::start("byok").await;
    let c = server.client(SignatureVersion::V3);

    let (key_id, meta) = create_external_key(&c).await;
    assert_eq!(key_id.len(), 36, "{key_id}");
    let expected_meta = |state: &str, primary: &str, material_expire: &str| {
        json!({
            "KeyId": key_id,
            "Arn": format!("acs:kms:{REGION}:{ACCOUNT}:key/{key_id}"),
            "CreationDate": "2026-01-01T00:00:00Z",
            "Creator": ACCOUNT,
            "Description": "bring your own",
            "KeyState": state,
            "KeyUsage": "ENCRYPT/DECRYPT",
            "KeySpec": "Aliyun_AES_256",
            "Origin": "EXTERNAL",
            "ProtectionLevel": "SOFTWARE",
            "PrimaryKeyVersion": primary,
            "AutomaticRotation": "Disabled",
            "RotationInterval": "",
            "LastRotationDate": "2026-01-01T00:00:00Z",
            "NextRotationDate": "",
            "DeleteDate": "",
            "MaterialExpireTime": material_expire,
            "DeletionProtection": "Disabled",
            "DeletionProtectionDescription": "",
            "DKMSInstanceId": "",
        })
    };
    let primary = meta["PrimaryKeyVersion"]
        .as_str()
        .expect("PrimaryKeyVersion")
        .to_string();
    assert_eq!(meta, expected_meta("PendingImport", &primary, ""));

    // No material yet: nothing to encrypt with.
    let r = call(
        &c,
        "Encrypt",
        &[("KeyId", &key_id), ("Plaintext", &b64(b"x"))],
    )
    .await;
    refused(&r, 409, "Rejected.PendingImport");

    let (token, public) = import_parameters(&c, &server.clock, &key_id).await;
    let mut material = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(material.as_mut()).expect("rng");
    // Expires in one hour by the service's clock.
    let expire = (T0 + 3_600).to_string();
    let r = call(
        &c,
        "ImportKeyMaterial",
        &[
            ("KeyId", &key_id),
            ("ImportToken", &token),
            ("EncryptedKeyMaterial", &wrap(&public, material.as_ref())),
            ("KeyMaterialExpireUnix", &expire),
        ],
    )
    .await;
    ok_body(&r, json!({}));
    let r = call(&c, "DescribeKey", &[("KeyId", &key_id)]).await;
    ok_body(
        &r,
        json!({"KeyMetadata": expected_meta("Enabled", &primary, "2026-01-01T01:00:00Z")}),
    );

    let plaintext = b"attack at dawn";
    let context = r#"{"purpose":"integration test"}"#;
    let r = call(
        &c,
        "Encrypt",
        &[
            ("KeyId", &key_id),
            ("Plaintext", &b64(plaintext)),
            ("EncryptionContext", context),
        ],
    )
    .await;
    let blob = r.str_field("CiphertextBlob").expect("blob").to_string();
    ok_body(
        &r,
        json!({"CiphertextBlob": blob, "KeyId": key_id, "KeyVersionId": primary}),
    );
    // V1 (HMAC-SHA1) signing decrypts what V3 encrypted.
    let v1 = server.client(SignatureVersion::V1);
    let r = call(
        &v1,
        "Decrypt",
        &[("CiphertextBlob", &blob), ("EncryptionContext", context)],
    )
    .await;
    ok_body(
        &r,
        json!({"Plaintext": b64(plaintext), "KeyId": key_id, "KeyVersionId": primary}),
    );
    // The context is bound to the ciphertext.
    let r = call(
        &c,
        "Decrypt",
        &[
            ("CiphertextBlob", &blob),
            ("EncryptionContext", r#"{"purpose":"other"}"#),
        ],
    )
    .await;
    refused(&r, 400, "InvalidParameter");
    assert_eq!(
        r.str_field("Message"),
        Some("The specified parameter \"CiphertextBlob\" is not valid. The ciphertext is malformed, was altered, or the EncryptionContext differs from the one it was encrypted with.")
    );

    // The key is bound to its material: other material is refused, the same is taken again.
    let (token, public) = import_parameters(&c, &server.clock, &key_id).await;
    let r = call(
        &c,
        "ImportKeyMaterial",
        &[
            ("KeyId", &key_id),
            ("ImportToken", &token),
            ("EncryptedKeyMaterial", &wrap(&public, &[7u8; 32])),
        ],
    )
    .await;
    refused(&r, 400, "InvalidKeyMaterial");

    // An hour later the material has expired: the key reads as PendingImport.
    server.clock.advance(3_600);
    let r = call(
        &c,
        "Encrypt",
        &[("KeyId", &key_id), ("Plaintext", &b64(b"x"))],
    )
    .await;
    refused(&r, 409, "Rejected.PendingImport");
    let r = call(&c, "DescribeKey", &[("KeyId", &key_id)]).await;
    ok_body(
        &r,
        json!({"KeyMetadata": expected_meta("PendingImport", &primary, "")}),
    );
    // Re-importing the same material (with a fresh token) brings back the same key.
    let (token, public) = import_parameters(&c, &server.clock, &key_id).await;
    let r = call(
        &c,
        "ImportKeyMaterial",
        &[
            ("KeyId", &key_id),
            ("ImportToken", &token),
            ("EncryptedKeyMaterial", &wrap(&public, material.as_ref())),
        ],
    )
    .await;
    ok_body(&r, json!({}));
    let r = call(
        &c,
        "Decrypt",
        &[("CiphertextBlob", &blob), ("EncryptionContext", context)],
    )
    .await;
    ok_body(
        &r,
        json!({"Plaintext": b64(plaintext), "KeyId": key_id, "KeyVersionId": primary}),
    );

    server.stop().await;
}

#[tokio::test]
async fn refusals_over_http() {
    let server = Server::start("refusals").await;
    let c = server.client(SignatureVersion::V3);
    let (key_id, _) = create_external_key(&c).await;

    // A wrong secret, in either signature version: 400 SignatureDoesNotMatch, with the
    // server's string to sign that the SDKs parse.
    for version in [SignatureVersion::V3, SignatureVersion::V1] {
        let forged = client(
            &server.endpoint,
            &server.access_key_id,
            "not-the-secret",
            version,
        );
        let r = call(&forged, "DescribeKey", &[("KeyId", &key_id)]).await;
        refused(&r, 400, "SignatureDoesNotMatch");
        assert!(r.str_field("Message").is_some_and(|m| m.starts_with(
            "Specified signature is not matched with our calculation. server string to sign is:"
        )));
    }
    // An unknown access key: 404.
    let stranger = client(
        &server.endpoint,
        "LTAIunknownkey00000000",
        "whatever",
        SignatureVersion::V3,
    );
    let r = call(&stranger, "DescribeKey", &[("KeyId", &key_id)]).await;
    refused(&r, 404, "InvalidAccessKeyId.NotFound");
    // No signature at all.
    let r = stranger
        .get("/?Action=DescribeKey&Version=2016-01-20")
        .await
        .expect("transport");
    refused(&r, 400, "MissingParameter");
    assert_eq!(
        r.str_field("Message"),
        Some("The parameter \"Signature\" is needed but not provided.")
    );
    // Not the API's path.
    let r = c.get("/nowhere").await.expect("transport");
    refused(&r, 404, "InvalidApi.NotFound");

    // An import token older than a day by the service's clock.
    let (token, public) = import_parameters(&c, &server.clock, &key_id).await;
    server.clock.advance(86_400);
    let r = call(
        &c,
        "ImportKeyMaterial",
        &[
            ("KeyId", &key_id),
            ("ImportToken", &token),
            ("EncryptedKeyMaterial", &wrap(&public, &[1u8; 32])),
        ],
    )
    .await;
    refused(&r, 400, "ExpiredImportToken");
    // A token for another key.
    let (other_key, _) = create_external_key(&c).await;
    let (token, public) = import_parameters(&c, &server.clock, &key_id).await;
    let r = call(
        &c,
        "ImportKeyMaterial",
        &[
            ("KeyId", &other_key),
            ("ImportToken", &token),
            ("EncryptedKeyMaterial", &wrap(&public, &[1u8; 32])),
        ],
    )
    .await;
    refused(&r, 400, "InvalidImportToken");
    // Nothing was imported.
    let r = call(&c, "DescribeKey", &[("KeyId", &key_id)]).await;
    assert_eq!(r.body["KeyMetadata"]["KeyState"], "PendingImport");

    server.stop().await;
}
