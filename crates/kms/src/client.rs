//! A small client for the API, used by the command line, `kms bench` and the server's
//! integration tests: it signs requests exactly as the Alibaba SDKs do, V3
//! `ACS3-HMAC-SHA256` by default or v1 `HMAC-SHA1`, reusing the server's canonicalisation
//! code, over keep-alive HTTP/1.1.

use std::time::Duration;

use aws_lc_rs::{digest, hmac};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::action::kms::VERSION as API_VERSION;
use crate::clock::system_now;
use crate::protocol::params::Params;
use crate::protocol::signature::{
    percent_encode, v1_string_to_sign, v3_canonical_request, RequestView,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    V1,
    V3,
}

pub struct Credentials {
    pub access_key_id: String,
    pub access_key_secret: Zeroizing<String>,
}

/// A response: HTTP status and the parsed JSON body.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: serde_json::Value,
}

impl ApiResponse {
    /// A response from its status and body bytes (a body that is not JSON is `Null`).
    pub fn parse(status: u16, bytes: &[u8]) -> Self {
        let body = serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null);
        Self { status, body }
    }

    pub fn is_ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// The error `Code`, if this is an error.
    pub fn code(&self) -> Option<&str> {
        if self.is_ok() {
            None
        } else {
            Some(
                self.body
                    .get("Code")
                    .and_then(|c| c.as_str())
                    .unwrap_or("UnknownError"),
            )
        }
    }
    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.body.get(name).and_then(|v| v.as_str())
    }
}

/// A call prepared once and sent many times ([`Client::prepare`]).
pub struct Prepared {
    version: String,
    action: String,
    params: Vec<(String, String)>,
    /// `base/?<encoded query>`.
    uri: String,
    /// V3: the canonical query of the signature.
    canonical_query: Option<String>,
}

pub struct Client {
    http: HttpClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `http://host:port`
    base: String,
    /// `host:port`, the signed `host` header.
    host: String,
    creds: Credentials,
    /// The HMAC keys of both signature versions, prepared once (V3: the secret; V1: the
    /// secret and `&`), so that a request does not redo the key schedule.
    v3_key: hmac::Key,
    v1_key: hmac::Key,
    pub signature: SignatureVersion,
    pub region: String,
}

/// SHA-256 of the empty body, hex: what `x-acs-content-sha256` carries for every request
/// this client sends.
const EMPTY_SHA256_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A fresh signature nonce: 32 hex digits of 16 random bytes from the same per-thread
/// aws-lc-rs pool as the server's request ids (`Uuid::new_v4` costs a `getrandom` system
/// call per request, which `kms bench` would charge to every signed request it sends).
fn nonce() -> String {
    match crate::random_pool::bytes::<16>() {
        Some(bytes) => lower_hex(&bytes),
        None => Uuid::new_v4().simple().to_string(),
    }
}

/// Lower-case hex of up to 32 bytes (a digest, a MAC, a nonce) through a stack buffer:
/// `hex::encode` builds its String a char at a time.
fn lower_hex(bytes: &[u8]) -> String {
    let mut buf = [0u8; 64];
    let n = bytes.len().min(32);
    match hex::encode_to_slice(&bytes[..n], &mut buf[..2 * n]) {
        Ok(()) => String::from_utf8_lossy(&buf[..2 * n]).into_owned(),
        Err(_) => hex::encode(bytes),
    }
}

impl Client {
    /// `endpoint` is `http://host:port`, `https://host:port` (or `host:port`, plain HTTP).
    pub fn new(
        endpoint: &str,
        creds: Credentials,
        signature: SignatureVersion,
        region: &str,
    ) -> Result<Self, String> {
        Self::with_trust(
            endpoint,
            creds,
            signature,
            region,
            &crate::tls::Trust::System,
        )
    }

    /// Like [`Client::new`], with the given way to check an HTTPS server's certificate.
    pub fn with_trust(
        endpoint: &str,
        creds: Credentials,
        signature: SignatureVersion,
        region: &str,
        trust: &crate::tls::Trust,
    ) -> Result<Self, String> {
        let trimmed = endpoint.trim_end_matches('/');
        let (scheme, host) = if let Some(h) = trimmed.strip_prefix("http://") {
            ("http", h.to_string())
        } else if let Some(h) = trimmed.strip_prefix("https://") {
            ("https", h.to_string())
        } else {
            ("http", trimmed.to_string())
        };
        if host.is_empty() || host.contains('/') {
            return Err(format!(
                "endpoint {endpoint:?} is not like http://127.0.0.1:8080"
            ));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::tls::client_config(trust)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        let v3_key = hmac::Key::new(hmac::HMAC_SHA256, creds.access_key_secret.as_bytes());
        let mut v1 = Zeroizing::new(creds.access_key_secret.as_bytes().to_vec());
        v1.push(b'&');
        let v1_key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &v1);
        Ok(Self {
            http,
            base: format!("{scheme}://{host}"),
            host,
            creds,
            v3_key,
            v1_key,
            signature,
            region: region.to_string(),
        })
    }

    /// Builds the query string and headers of a signed request.
    fn sign(
        &self,
        version: &str,
        action: &str,
        params: &[(String, String)],
    ) -> (String, Vec<(String, String)>) {
        let now = crate::timefmt::format_unix_cached(system_now());
        self.sign_at(version, action, params, now, nonce())
    }

    /// [`Client::sign`] at the time `now` with the nonce `nonce`.
    fn sign_at(
        &self,
        version: &str,
        action: &str,
        params: &[(String, String)],
        now: String,
        nonce: String,
    ) -> (String, Vec<(String, String)>) {
        match self.signature {
            SignatureVersion::V3 => {
                let mut headers = vec![
                    ("host".to_string(), self.host.clone()),
                    ("x-acs-action".to_string(), action.to_string()),
                    (
                        "x-acs-content-sha256".to_string(),
                        EMPTY_SHA256_HEX.to_string(),
                    ),
                    ("x-acs-date".to_string(), now),
                    ("x-acs-signature-nonce".to_string(), nonce),
                    ("x-acs-version".to_string(), version.to_string()),
                ];
                let p = Params {
                    query: params.to_vec(),
                    body: vec![],
                };
                let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
                let borrowed: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let view = RequestView {
                    method: "POST",
                    path: "/",
                    params: &p,
                    headers: &borrowed,
                    body: b"",
                };
                let canonical = v3_canonical_request(&view, &names);
                let sts = format!(
                    "ACS3-HMAC-SHA256\n{}",
                    lower_hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
                );
                let sig = lower_hex(hmac::sign(&self.v3_key, sts.as_bytes()).as_ref());
                let auth = format!(
                    "ACS3-HMAC-SHA256 Credential={},SignedHeaders={},Signature={sig}",
                    self.creds.access_key_id,
                    names.join(";")
                );
                headers.push(("authorization".into(), auth));
                (encode_query(params), headers)
            }
            SignatureVersion::V1 => {
                let mut all = params.to_vec();
                for (k, v) in [
                    ("Action", action.to_string()),
                    ("Version", version.to_string()),
                    ("Format", "JSON".to_string()),
                    ("AccessKeyId", self.creds.access_key_id.clone()),
                    ("SignatureMethod", "HMAC-SHA1".to_string()),
                    ("SignatureVersion", "1.0".to_string()),
                    ("SignatureNonce", nonce),
                    ("Timestamp", now),
                    ("RegionId", self.region.clone()),
                ] {
                    all.push((k.to_string(), v));
                }
                let sts = v1_string_to_sign("POST", all.iter());
                let sig = base64::engine::general_purpose::STANDARD
                    .encode(hmac::sign(&self.v1_key, sts.as_bytes()));
                all.push(("Signature".into(), sig));
                (encode_query(&all), vec![("host".into(), self.host.clone())])
            }
        }
    }

    /// Calls an action with parameters; transport failures are `Err`, API errors are an
    /// `ApiResponse` with a non-2xx status.
    pub async fn call(
        &self,
        action: &str,
        params: &[(String, String)],
    ) -> Result<ApiResponse, String> {
        self.call_version(API_VERSION, action, params).await
    }

    /// Like [`Client::call`], for another product on the same endpoint: `version` is its
    /// API version, e.g. `2015-05-01` for RAM.
    pub async fn call_version(
        &self,
        version: &str,
        action: &str,
        params: &[(String, String)],
    ) -> Result<ApiResponse, String> {
        let (status, bytes) = self.call_raw(version, action, params).await?;
        Ok(ApiResponse::parse(status, &bytes))
    }

    /// Like [`Client::call_version`], without parsing the body: the status and the bytes
    /// (`kms bench` parses only the errors').
    pub async fn call_raw(
        &self,
        version: &str,
        action: &str,
        params: &[(String, String)],
    ) -> Result<(u16, Bytes), String> {
        let (query, headers) = self.sign(version, action, params);
        let mut req = hyper::Request::builder()
            .method("POST")
            .uri(format!("{}/?{query}", self.base));
        for (k, v) in &headers {
            if k != "host" {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        self.send(req).await
    }

    /// What is the same in every request of `action` with `params` (for `kms bench`, which
    /// sends one request many times with a fresh nonce and time): the encoded query and,
    /// for V3, the canonical query, computed once by the shared canonicalisation code.
    pub fn prepare(&self, version: &str, action: &str, params: &[(String, String)]) -> Prepared {
        let canonical_query = match self.signature {
            SignatureVersion::V3 => {
                let p = Params {
                    query: params.to_vec(),
                    body: vec![],
                };
                let view = RequestView {
                    method: "POST",
                    path: "/",
                    params: &p,
                    headers: &[],
                    body: b"",
                };
                // "POST\n/\n<canonical query>\n...": the query has no newline (encoded).
                v3_canonical_request(&view, &[])
                    .split('\n')
                    .nth(2)
                    .map(str::to_string)
            }
            SignatureVersion::V1 => None,
        };
        Prepared {
            version: version.to_string(),
            action: action.to_string(),
            params: params.to_vec(),
            uri: format!("{}/?{}", self.base, encode_query(params)),
            canonical_query,
        }
    }

    /// The headers of a signed V3 request for `p` at `now` with `nonce`, built around the
    /// prepared canonical query; `None` for V1 (whose string to sign sorts the nonce and the
    /// time in with the parameters).
    fn sign_prepared_at(
        &self,
        p: &Prepared,
        now: &str,
        nonce: &str,
    ) -> Option<Vec<(&'static str, String)>> {
        let cq = p.canonical_query.as_deref()?;
        const NAMES: &str =
            "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version";
        let canonical = format!(
            "POST\n/\n{cq}\nhost:{}\nx-acs-action:{}\nx-acs-content-sha256:{EMPTY_SHA256_HEX}\n\
             x-acs-date:{now}\nx-acs-signature-nonce:{nonce}\nx-acs-version:{}\n\n{NAMES}\n\
             {EMPTY_SHA256_HEX}",
            self.host.trim(),
            p.action.trim(),
            p.version.trim()
        );
        let sts = format!(
            "ACS3-HMAC-SHA256\n{}",
            lower_hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
        );
        let sig = lower_hex(hmac::sign(&self.v3_key, sts.as_bytes()).as_ref());
        Some(vec![
            ("x-acs-action", p.action.clone()),
            ("x-acs-content-sha256", EMPTY_SHA256_HEX.to_string()),
            ("x-acs-date", now.to_string()),
            ("x-acs-signature-nonce", nonce.to_string()),
            ("x-acs-version", p.version.clone()),
            (
                "authorization",
                format!(
                    "ACS3-HMAC-SHA256 Credential={},SignedHeaders={NAMES},Signature={sig}",
                    self.creds.access_key_id
                ),
            ),
        ])
    }

    /// Sends a prepared call signed now with a fresh nonce: the status and the body bytes.
    pub async fn call_prepared(&self, p: &Prepared) -> Result<(u16, Bytes), String> {
        let now = crate::timefmt::format_unix_cached(system_now());
        let Some(headers) = self.sign_prepared_at(p, &now, &nonce()) else {
            return self.call_raw(&p.version, &p.action, &p.params).await;
        };
        let mut req = hyper::Request::builder().method("POST").uri(p.uri.as_str());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        self.send(req).await
    }

    /// An unsigned GET of a path (for `/healthz`).
    pub async fn get(&self, path: &str) -> Result<ApiResponse, String> {
        let (status, bytes) = self.get_raw(path).await?;
        Ok(ApiResponse::parse(status, &bytes))
    }

    /// Like [`Client::get`], without parsing the body.
    pub async fn get_raw(&self, path: &str) -> Result<(u16, Bytes), String> {
        let req = hyper::Request::builder()
            .method("GET")
            .uri(format!("{}{path}", self.base))
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        self.send(req).await
    }

    async fn send(&self, req: hyper::Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
        let resp = self.http.request(req).await.map_err(|e| error_chain(&e))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, bytes))
    }
}

/// "outer: inner: innermost", without Debug noise.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

fn encode_query(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Parameters from `(name, value)` string pairs.
pub fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_and_hex_are_what_they_stand_for() {
        assert_eq!(
            EMPTY_SHA256_HEX,
            hex::encode(digest::digest(&digest::SHA256, b""))
        );
        for bytes in [&[][..], &[0u8, 0xff, 0x10][..], &[0xab; 32][..]] {
            assert_eq!(lower_hex(bytes), hex::encode(bytes));
        }
        let n = nonce();
        assert_eq!(n.len(), 32);
        assert!(n
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(n, nonce());
    }

    /// A prepared call is signed exactly as the general path signs the same request.
    #[test]
    fn prepared_signing_is_the_general_signing() {
        let creds = || Credentials {
            access_key_id: "LTAI-test".into(),
            access_key_secret: Zeroizing::new("s3cret".into()),
        };
        let c = Client::new("127.0.0.1:1", creds(), SignatureVersion::V3, "cn-hangzhou").unwrap();
        let params = params(&[
            ("KeyId", "key-1"),
            ("Plaintext", "aGVsbG8gd29ybGQ+Pz8/+/=="),
            ("EncryptionContext", "{\"a\": \"b c~*\"}"),
        ]);
        let p = c.prepare(API_VERSION, "Encrypt", &params);
        let (now, n) = ("2026-12-01T10:00:00Z", "0123456789abcdef0123456789abcdef");
        let (query, general) = c.sign_at(API_VERSION, "Encrypt", &params, now.into(), n.into());
        assert_eq!(p.uri, format!("http://127.0.0.1:1/?{query}"));
        let prepared = c.sign_prepared_at(&p, now, n).unwrap();
        let general: Vec<(String, String)> =
            general.into_iter().filter(|(k, _)| k != "host").collect();
        let prepared: Vec<(String, String)> = prepared
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(prepared, general);
        let v1 = Client::new("127.0.0.1:1", creds(), SignatureVersion::V1, "cn-hangzhou").unwrap();
        assert!(v1
            .sign_prepared_at(&v1.prepare(API_VERSION, "Encrypt", &params), now, n)
            .is_none());
    }
}
