//! `kms sign` and `kms verify` (issue 17): hash a file locally and call AsymmetricSign /
//! AsymmetricVerify, so only the digest leaves the machine. The signature is a raw file (DER
//! for ECDSA, as `openssl dgst -verify -signature` reads it).

use std::io::Read;
use std::path::PathBuf;

use base64::Engine;
use clap::Args;

use super::{call, str_of, ClientArgs, Failure};
use crate::model::AsymmetricAlgorithm;

#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// The SIGN/VERIFY key (id, ARN or alias/<name>)
    #[arg(long)]
    pub key_id: String,
    /// The key version (asymmetric keys have no primary version)
    #[arg(long)]
    pub key_version_id: String,
    /// RSA_PSS_SHA_256, RSA_PKCS1_SHA_256, ECDSA_SHA_256 or SM2DSA (e = SM3(Z_A ‖ M))
    #[arg(long)]
    pub algorithm: String,
    /// The message (`-` for standard input); its SHA-256 (SM2DSA: SM3 with Z_A) is signed
    #[arg(long)]
    pub file: String,
    /// Write the raw signature to this file [default: print its base64]
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The SIGN/VERIFY key (id, ARN or alias/<name>)
    #[arg(long)]
    pub key_id: String,
    /// The key version that made the signature
    #[arg(long)]
    pub key_version_id: String,
    /// RSA_PSS_SHA_256, RSA_PKCS1_SHA_256, ECDSA_SHA_256 or SM2DSA (e = SM3(Z_A ‖ M))
    #[arg(long)]
    pub algorithm: String,
    /// The message (`-` for standard input)
    #[arg(long)]
    pub file: String,
    /// The raw signature file (as `kms sign --out` writes it)
    #[arg(long)]
    pub signature: PathBuf,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn read_message(path: &str) -> Result<Vec<u8>, Failure> {
    if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::usage(format!("cannot read standard input: {e}")))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read {path}: {e}")))
}

/// The `Digest` of a message for `algorithm` (one arm per algorithm family). SM2DSA needs
/// the key version's public key (`sm2_public`, DER SubjectPublicKeyInfo) for Z_A.
fn digest(algorithm: &str, message: &[u8], sm2_public: Option<&[u8]>) -> Result<String, Failure> {
    let alg = AsymmetricAlgorithm::parse(algorithm).ok_or_else(|| {
        Failure::usage(format!(
            "unknown algorithm {algorithm:?}: use RSA_PSS_SHA_256, RSA_PKCS1_SHA_256, ECDSA_SHA_256 or SM2DSA"
        ))
    })?;
    let d = match alg {
        AsymmetricAlgorithm::RsaPssSha256
        | AsymmetricAlgorithm::RsaPkcs1Sha256
        | AsymmetricAlgorithm::EcdsaSha256 => {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message)
        }
        // SM2DSA signs e = SM3(Z_A || M), Z_A with the identifier 1234567812345678 and the
        // key version's public key (reference asymmetric §6.4).
        AsymmetricAlgorithm::Sm2Dsa => {
            let public = sm2_public
                .ok_or_else(|| Failure::usage("SM2DSA needs the key version's public key"))?;
            let e = crate::keystore::sm::sm2_message_digest(public, message).ok_or_else(|| {
                Failure::usage("SM2DSA signs with EC_SM2 keys; this key is not one")
            })?;
            return Ok(base64::engine::general_purpose::STANDARD.encode(e));
        }
        AsymmetricAlgorithm::RsaesOaepSha1
        | AsymmetricAlgorithm::RsaesOaepSha256
        | AsymmetricAlgorithm::Sm2Pke => {
            return Err(Failure::usage(format!(
                "{algorithm} encrypts; kms sign/verify take a signing algorithm"
            )))
        }
    };
    Ok(base64::engine::general_purpose::STANDARD.encode(d.as_ref()))
}

/// The `Digest` parameter: computed before any call, except for SM2DSA, which first asks
/// GetPublicKey for the key version's public key (Z_A depends on it).
async fn digest_for(
    algorithm: &str,
    message: &[u8],
    client: &crate::client::Client,
    endpoint: &str,
    key_id: &str,
    key_version_id: &str,
) -> Result<String, Failure> {
    if algorithm != AsymmetricAlgorithm::Sm2Dsa.as_str() {
        return digest(algorithm, message, None);
    }
    let r = call(
        client,
        endpoint,
        "GetPublicKey",
        &crate::client::params(&[("KeyId", key_id), ("KeyVersionId", key_version_id)]),
    )
    .await?;
    let public = super::parse_public_key(str_of(&r, &["PublicKey"]).as_bytes())
        .ok_or_else(|| Failure::api("the server's PublicKey is not PEM"))?;
    digest(algorithm, message, Some(&public))
}

pub async fn sign(a: SignArgs) -> Result<(), Failure> {
    let message = read_message(&a.file)?;
    if a.algorithm != AsymmetricAlgorithm::Sm2Dsa.as_str() {
        digest(&a.algorithm, &message, None)?; // usage errors before any call
    }
    let (client, endpoint) = a.client.client()?;
    let digest = digest_for(
        &a.algorithm,
        &message,
        &client,
        &endpoint,
        &a.key_id,
        &a.key_version_id,
    )
    .await?;
    let r = call(
        &client,
        &endpoint,
        "AsymmetricSign",
        &crate::client::params(&[
            ("KeyId", &a.key_id),
            ("KeyVersionId", &a.key_version_id),
            ("Algorithm", &a.algorithm),
            ("Digest", &digest),
        ]),
    )
    .await?;
    let value = str_of(&r, &["Value"]);
    match a.out {
        Some(path) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(value)
                .map_err(|_| Failure::api("the server's Value is not base64"))?;
            std::fs::write(&path, raw)
                .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
        }
        None => println!("{value}"),
    }
    Ok(())
}

/// Prints `Verified OK` (exit 0) or `Verification failure` (exit 1), like `openssl dgst`.
pub async fn verify(a: VerifyArgs) -> Result<(), Failure> {
    let message = read_message(&a.file)?;
    if a.algorithm != AsymmetricAlgorithm::Sm2Dsa.as_str() {
        digest(&a.algorithm, &message, None)?; // usage errors before any call
    }
    let signature = std::fs::read(&a.signature)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", a.signature.display())))?;
    let value = base64::engine::general_purpose::STANDARD.encode(signature);
    let (client, endpoint) = a.client.client()?;
    let digest = digest_for(
        &a.algorithm,
        &message,
        &client,
        &endpoint,
        &a.key_id,
        &a.key_version_id,
    )
    .await?;
    let r = call(
        &client,
        &endpoint,
        "AsymmetricVerify",
        &crate::client::params(&[
            ("KeyId", &a.key_id),
            ("KeyVersionId", &a.key_version_id),
            ("Algorithm", &a.algorithm),
            ("Digest", &digest),
            ("Value", &value),
        ]),
    )
    .await?;
    if r["Value"].as_bool() == Some(true) {
        println!("Verified OK");
        Ok(())
    } else {
        Err(Failure::api("Verification failure"))
    }
}

/// A private key file for `kms wrap` / `kms import-material` with RSA_AES_KEY_WRAP_SHA_256:
/// PKCS#8 DER as is, or the base64 body of a `-----BEGIN PRIVATE KEY-----` PEM. Encrypted
/// PKCS#8 and the traditional `BEGIN RSA/EC PRIVATE KEY` forms are refused with the
/// openssl command that converts them.
pub(super) fn private_key_der(
    path: &str,
    buf: zeroize::Zeroizing<Vec<u8>>,
) -> Result<zeroize::Zeroizing<Vec<u8>>, Failure> {
    let convert = || {
        Failure::usage(format!(
            "{path} is not an unencrypted PKCS#8 private key; convert it with: \
             openssl pkcs8 -topk8 -nocrypt -in {path} -outform DER -out key.der"
        ))
    };
    if buf.first() == Some(&0x30) {
        return Ok(buf);
    }
    let text = std::str::from_utf8(&buf).map_err(|_| convert())?;
    let begin = "-----BEGIN PRIVATE KEY-----";
    let end = "-----END PRIVATE KEY-----";
    let start = text.find(begin).ok_or_else(convert)? + begin.len();
    let stop = text[start..].find(end).ok_or_else(convert)? + start;
    let body: zeroize::Zeroizing<String> = zeroize::Zeroizing::new(
        text[start..stop]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect(),
    );
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map(zeroize::Zeroizing::new)
        .map_err(|_| convert())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_the_sha256_of_the_message() {
        assert_eq!(
            digest("ECDSA_SHA_256", b"abc", None).unwrap(),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        assert!(digest("RSAES_OAEP_SHA_256", b"abc", None).is_err());
        assert!(digest("SM2DSA", b"abc", None).is_err());
        assert!(digest("ecdsa_sha_256", b"abc", None).is_err());
        // SM2DSA: e = SM3(Z_A || M) with the key's public key.
        let kp = crate::keystore::sm::sm2_generate().unwrap();
        let e = crate::keystore::sm::sm2_message_digest(&kp.public_der, b"abc").unwrap();
        assert_eq!(
            digest("SM2DSA", b"abc", Some(&kp.public_der)).unwrap(),
            base64::engine::general_purpose::STANDARD.encode(e)
        );
    }
}
