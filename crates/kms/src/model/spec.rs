//! A key's fixed attributes, as enums with their wire names (reference §3.1): what CreateKey
//! accepts, DescribeKey shows and the store keeps. Each lists the values this server
//! supports; anything else is refused where a request is parsed (with the API's own error),
//! and a stored row holding another value is corrupt.

/// Declares a fieldless enum with its wire names: `as_str`, `parse`, `ALL` and `Display`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }

            /// The value with this wire name (exact, case-sensitive).
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// `KeySpec`: the kind of key.
    pub enum KeySpec {
        /// A 256-bit AES key (the default).
        Aes256 = "Aliyun_AES_256",
        /// A 128-bit SM4 key (its cryptography is the SM helper's; see README).
        Sm4 = "Aliyun_SM4",
        /// RSA, 2048-bit modulus.
        Rsa2048 = "RSA_2048",
        /// RSA, 3072-bit modulus.
        Rsa3072 = "RSA_3072",
        /// ECDSA on NIST P-256 (secp256r1).
        EcP256 = "EC_P256",
        /// ECDSA on secp256k1.
        EcP256K = "EC_P256K",
        /// SM2 (GB/T 32918 curve; its cryptography is the SM helper's; see README).
        EcSm2 = "EC_SM2",
    }
}

wire_enum! {
    /// `KeyUsage`: what the key is for.
    pub enum KeyUsage {
        EncryptDecrypt = "ENCRYPT/DECRYPT",
        SignVerify = "SIGN/VERIFY",
    }
}

impl KeySpec {
    /// Whether the key is a key pair (RSA, EC, SM2) rather than a symmetric key.
    pub const fn is_asymmetric(self) -> bool {
        !matches!(self, KeySpec::Aes256 | KeySpec::Sm4)
    }

    /// The usages CreateKey accepts for this spec (reference asymmetric §2.1): symmetric
    /// keys encrypt; RSA and SM2 keys sign or encrypt (one usage per key, fixed at
    /// creation); the EC keys sign.
    pub const fn usages(self) -> &'static [KeyUsage] {
        match self {
            KeySpec::Aes256 | KeySpec::Sm4 => &[KeyUsage::EncryptDecrypt],
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::EcSm2 => {
                &[KeyUsage::EncryptDecrypt, KeyUsage::SignVerify]
            }
            KeySpec::EcP256 | KeySpec::EcP256K => &[KeyUsage::SignVerify],
        }
    }

    /// The usage when CreateKey names none: SIGN/VERIFY if the key can sign, else
    /// ENCRYPT/DECRYPT (tea-kms `CreateKeyRequest.key_usage`).
    pub const fn default_usage(self) -> KeyUsage {
        if self.is_asymmetric() {
            KeyUsage::SignVerify
        } else {
            KeyUsage::EncryptDecrypt
        }
    }

    /// Whether a key of this spec may have `usage`.
    pub fn allows(self, usage: KeyUsage) -> bool {
        self.usages().contains(&usage)
    }

    /// Length in bytes of a symmetric key version's material: 32 for AES-256, 16 for SM4
    /// (also the only size ImportKeyMaterial accepts, reference §3.5); `None` for key pairs.
    pub const fn symmetric_material_len(self) -> Option<usize> {
        match self {
            KeySpec::Aes256 => Some(32),
            KeySpec::Sm4 => Some(16),
            _ => None,
        }
    }
}

wire_enum! {
    /// `Algorithm` of the asymmetric actions (reference asymmetric §2.2), and
    /// `SourceEncryptionAlgorithm` of ReEncrypt / `WrappingAlgorithm` of the data-key export
    /// for the encryption ones.
    pub enum AsymmetricAlgorithm {
        /// RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32 bytes.
        RsaPssSha256 = "RSA_PSS_SHA_256",
        /// RSASSA-PKCS1-v1_5 with SHA-256.
        RsaPkcs1Sha256 = "RSA_PKCS1_SHA_256",
        /// ECDSA (P-256 or secp256k1) over a SHA-256 digest, DER signature.
        EcdsaSha256 = "ECDSA_SHA_256",
        /// SM2 signature over e = SM3(Z_A ‖ M).
        Sm2Dsa = "SM2DSA",
        /// RSAES-OAEP, SHA-1 and MGF1-SHA-1, empty label.
        RsaesOaepSha1 = "RSAES_OAEP_SHA_1",
        /// RSAES-OAEP, SHA-256 and MGF1-SHA-256, empty label.
        RsaesOaepSha256 = "RSAES_OAEP_SHA_256",
        /// SM2 public-key encryption (GB/T 32918.4).
        Sm2Pke = "SM2PKE",
    }
}

impl AsymmetricAlgorithm {
    /// The usage a key needs for this algorithm.
    pub const fn usage(self) -> KeyUsage {
        match self {
            Self::RsaPssSha256 | Self::RsaPkcs1Sha256 | Self::EcdsaSha256 | Self::Sm2Dsa => {
                KeyUsage::SignVerify
            }
            Self::RsaesOaepSha1 | Self::RsaesOaepSha256 | Self::Sm2Pke => KeyUsage::EncryptDecrypt,
        }
    }

    /// Whether the algorithm works with a key of `spec` (the algorithm table, §2.2).
    pub const fn fits(self, spec: KeySpec) -> bool {
        match self {
            Self::RsaPssSha256
            | Self::RsaPkcs1Sha256
            | Self::RsaesOaepSha1
            | Self::RsaesOaepSha256 => {
                matches!(spec, KeySpec::Rsa2048 | KeySpec::Rsa3072)
            }
            Self::EcdsaSha256 => matches!(spec, KeySpec::EcP256 | KeySpec::EcP256K),
            Self::Sm2Dsa | Self::Sm2Pke => matches!(spec, KeySpec::EcSm2),
        }
    }
}

wire_enum! {
    /// `Origin`: where the key material comes from.
    pub enum Origin {
        /// Generated by the service (the default).
        AliyunKms = "Aliyun_KMS",
        /// Imported by the user (bring your own key).
        External = "EXTERNAL",
    }
}

wire_enum! {
    /// `ProtectionLevel`: where the key material is protected.
    pub enum ProtectionLevel {
        Software = "SOFTWARE",
        /// Material generated or imported inside a PKCS#11 HSM (issue 20).
        Hsm = "HSM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_nothing_else_parses() {
        for o in Origin::ALL {
            assert_eq!(Origin::parse(o.as_str()), Some(*o));
            assert_eq!(o.to_string(), o.as_str());
        }
        assert_eq!(Origin::parse("EXTERNAL"), Some(Origin::External));
        assert_eq!(Origin::parse("Aliyun_KMS"), Some(Origin::AliyunKms));
        assert_eq!(Origin::parse("external"), None);
        assert_eq!(KeySpec::parse("Aliyun_AES_256"), Some(KeySpec::Aes256));
        assert_eq!(KeySpec::parse("RSA_2048"), Some(KeySpec::Rsa2048));
        assert_eq!(KeySpec::parse("RSA_4096"), None);
        assert_eq!(KeySpec::parse("rsa_2048"), None);
        assert_eq!(KeySpec::parse("Aliyun_SM4"), Some(KeySpec::Sm4));
        assert_eq!(KeySpec::parse("aliyun_sm4"), None);
        assert_eq!(KeySpec::Sm4.symmetric_material_len(), Some(16));
        assert_eq!(KeySpec::Aes256.symmetric_material_len(), Some(32));
        assert_eq!(KeySpec::EcSm2.symmetric_material_len(), None);
        assert_eq!(
            KeyUsage::parse("ENCRYPT/DECRYPT"),
            Some(KeyUsage::EncryptDecrypt)
        );
        assert_eq!(KeyUsage::parse("SIGN/VERIFY"), Some(KeyUsage::SignVerify));
        assert_eq!(KeyUsage::parse("SIGN/verify"), None);
        assert_eq!(
            ProtectionLevel::parse("SOFTWARE"),
            Some(ProtectionLevel::Software)
        );
        assert_eq!(ProtectionLevel::parse("HSM"), Some(ProtectionLevel::Hsm));
        assert_eq!(ProtectionLevel::parse("hsm"), None);
        assert_eq!(ProtectionLevel::parse(""), None);
    }

    /// The spec × usage table of CreateKey (reference asymmetric §2.1), cell by cell.
    #[test]
    fn spec_usage_table() {
        let table = [
            ("Aliyun_AES_256", true, false, "ENCRYPT/DECRYPT"),
            ("Aliyun_SM4", true, false, "ENCRYPT/DECRYPT"),
            ("RSA_2048", true, true, "SIGN/VERIFY"),
            ("RSA_3072", true, true, "SIGN/VERIFY"),
            ("EC_P256", false, true, "SIGN/VERIFY"),
            ("EC_P256K", false, true, "SIGN/VERIFY"),
            ("EC_SM2", true, true, "SIGN/VERIFY"),
        ];
        assert_eq!(table.len(), KeySpec::ALL.len());
        for (name, enc, sign, default) in table {
            let s = KeySpec::parse(name).unwrap();
            assert_eq!(s.allows(KeyUsage::EncryptDecrypt), enc, "{name}");
            assert_eq!(s.allows(KeyUsage::SignVerify), sign, "{name}");
            assert_eq!(s.default_usage().as_str(), default, "{name}");
            assert_eq!(s.is_asymmetric(), sign, "{name}");
        }
    }

    /// The algorithm table (reference asymmetric §2.2).
    #[test]
    fn algorithm_table() {
        use AsymmetricAlgorithm as A;
        let fits = |a: A| -> Vec<&str> {
            KeySpec::ALL
                .iter()
                .filter(|s| a.fits(**s))
                .map(|s| s.as_str())
                .collect()
        };
        assert_eq!(fits(A::RsaPssSha256), ["RSA_2048", "RSA_3072"]);
        assert_eq!(fits(A::RsaPkcs1Sha256), ["RSA_2048", "RSA_3072"]);
        assert_eq!(fits(A::RsaesOaepSha1), ["RSA_2048", "RSA_3072"]);
        assert_eq!(fits(A::RsaesOaepSha256), ["RSA_2048", "RSA_3072"]);
        assert_eq!(fits(A::EcdsaSha256), ["EC_P256", "EC_P256K"]);
        assert_eq!(fits(A::Sm2Dsa), ["EC_SM2"]);
        assert_eq!(fits(A::Sm2Pke), ["EC_SM2"]);
        for a in A::ALL {
            for s in KeySpec::ALL {
                // An algorithm fits only keys that allow its usage.
                assert!(!a.fits(*s) || s.allows(a.usage()), "{a} {s}");
            }
        }
        assert_eq!(A::parse("rsa_pss_sha_256"), None);
    }
}
