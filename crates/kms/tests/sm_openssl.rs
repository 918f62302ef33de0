//! SM2 interop with the `openssl` command line, both directions (issue 17): signatures over
//! e = SM3(Z_A ‖ M) with the identifier 1234567812345678, and SM2PKE ciphertexts.
//!
//! Skips (with a message on stderr) when `openssl` is missing or has no SM2, so the suite
//! stays green on a machine without it; Debian's OpenSSL 3 has SM2/SM3/SM4.

use std::path::PathBuf;
use std::process::Command;

use kms::keystore::sm;

fn openssl_has_sm2() -> bool {
    Command::new("openssl")
        .args(["list", "-public-key-algorithms"])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("SM2"))
        .unwrap_or(false)
}

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl").args(args).output().unwrap()
}

fn ok(args: &[&str]) -> Vec<u8> {
    let o = openssl(args);
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

struct Dir(PathBuf);
impl Dir {
    fn new() -> Self {
        let d = std::env::temp_dir().join(format!("kms-sm-openssl-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn p(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Our key pair written as PEM files openssl reads: (private, public).
fn our_key_as_pem(d: &Dir) -> (sm::Sm2KeyPair, String, String) {
    let kp = sm::sm2_generate().unwrap();
    std::fs::write(d.p("priv.der"), kp.pkcs8.as_slice()).unwrap();
    std::fs::write(d.p("pub.der"), &kp.public_der).unwrap();
    let (priv_pem, pub_pem) = (d.p("priv.pem"), d.p("pub.pem"));
    ok(&[
        "pkey",
        "-inform",
        "DER",
        "-in",
        &d.p("priv.der"),
        "-out",
        &priv_pem,
    ]);
    ok(&[
        "pkey",
        "-pubin",
        "-inform",
        "DER",
        "-in",
        &d.p("pub.der"),
        "-out",
        &pub_pem,
    ]);
    (kp, priv_pem, pub_pem)
}

fn skip() -> bool {
    if openssl_has_sm2() {
        return false;
    }
    eprintln!("SKIPPED: the openssl command line is missing or has no SM2");
    true
}

#[test]
fn sm2_signatures_interoperate_with_openssl_both_ways() {
    if skip() {
        return;
    }
    let d = Dir::new();
    let (kp, priv_pem, pub_pem) = our_key_as_pem(&d);
    let msg = b"the quick brown fox";
    std::fs::write(d.p("msg.txt"), msg).unwrap();
    let e = sm::sm2_message_digest(&kp.public_der, msg).unwrap();
    std::fs::write(d.p("e.bin"), e).unwrap();

    // Ours -> openssl: over the message with the distid (the documented client check), and
    // over e (the AsymmetricVerify equivalent).
    let sig = sm::sm2_sign_digest(&kp.pkcs8, &e).unwrap();
    std::fs::write(d.p("ours.sig"), &sig).unwrap();
    let out = ok(&[
        "dgst",
        "-sm3",
        "-verify",
        &pub_pem,
        "-sigopt",
        "distid:1234567812345678",
        "-signature",
        &d.p("ours.sig"),
        &d.p("msg.txt"),
    ]);
    assert!(String::from_utf8_lossy(&out).contains("Verified OK"));
    ok(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        &pub_pem,
        "-in",
        &d.p("e.bin"),
        "-sigfile",
        &d.p("ours.sig"),
    ]);
    // Without the identifier openssl 3.0 uses an empty one and must fail (reference §6.4).
    let no_id = openssl(&[
        "dgst",
        "-sm3",
        "-verify",
        &pub_pem,
        "-signature",
        &d.p("ours.sig"),
        &d.p("msg.txt"),
    ]);
    assert!(!no_id.status.success());

    // openssl -> ours.
    ok(&[
        "dgst",
        "-sm3",
        "-sign",
        &priv_pem,
        "-sigopt",
        "distid:1234567812345678",
        "-out",
        &d.p("theirs.sig"),
        &d.p("msg.txt"),
    ]);
    let theirs = std::fs::read(d.p("theirs.sig")).unwrap();
    assert!(sm::sm2_verify_digest(&kp.public_der, &e, &theirs));
    let mut other = e;
    other[31] ^= 1;
    assert!(!sm::sm2_verify_digest(&kp.public_der, &other, &theirs));
}

#[test]
fn sm2pke_interoperates_with_openssl_both_ways() {
    if skip() {
        return;
    }
    let d = Dir::new();
    let (kp, priv_pem, _pub_pem) = our_key_as_pem(&d);
    for (i, pt) in [&[0x11u8; 16][..], &[0x22u8; 32], &[0x33u8; 1024]]
        .iter()
        .enumerate()
    {
        // Ours (DER GM/T 0009) -> openssl decrypts.
        let ct = sm::sm2_encrypt(&kp.public_der, pt).unwrap();
        let f = d.p(&format!("ours{i}.ct"));
        std::fs::write(&f, &ct).unwrap();
        assert_eq!(
            ok(&["pkeyutl", "-decrypt", "-inkey", &priv_pem, "-in", &f]),
            *pt
        );
        // openssl -> ours, with the DER public key as GetParametersForImport hands it out.
        let pt_file = d.p(&format!("pt{i}.bin"));
        std::fs::write(&pt_file, pt).unwrap();
        let theirs = d.p(&format!("theirs{i}.ct"));
        ok(&[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-keyform",
            "DER",
            "-inkey",
            &d.p("pub.der"),
            "-in",
            &pt_file,
            "-out",
            &theirs,
        ]);
        let theirs = std::fs::read(theirs).unwrap();
        assert_eq!(theirs[0], 0x30);
        assert_eq!(sm::sm2_decrypt(&kp.pkcs8, &theirs).unwrap().as_slice(), *pt);
    }
    // A key openssl generated (its PKCS#8) works with our primitives too.
    ok(&["genpkey", "-algorithm", "SM2", "-out", &d.p("o.pem")]);
    ok(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        &d.p("o.pem"),
        "-outform",
        "DER",
        "-out",
        &d.p("o.der"),
    ]);
    let o_pkcs8 = std::fs::read(d.p("o.der")).unwrap();
    let o_pub = sm::sm2_public_der(&o_pkcs8).unwrap();
    let ct = sm::sm2_encrypt(&o_pub, b"to openssl's key").unwrap();
    assert_eq!(
        sm::sm2_decrypt(&o_pkcs8, &ct).unwrap().as_slice(),
        b"to openssl's key"
    );
}
