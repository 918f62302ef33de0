//! Domain types shared by every layer below the protocol: key states, key specs, usages,
//! origins, protection levels and the records the store keeps. They depend on nothing else in
//! the crate, so service, store, console and protocol can all use them without circles.

pub mod key;
pub mod ram;
pub mod records;
pub mod secret;
pub mod spec;
pub mod state;

pub use key::{KeyLocator, KeyRecord, KeyVersionRecord, Tag};
pub use ram::{RamEntityRecord, RamKind, RamLinkKind, RamLinkRecord, StsSessionRecord};
pub use records::{
    AccessKeyRecord, AliasRecord, ConsoleSessionRecord, ConsoleUserRecord, WrappingKeyRecord,
};
pub use secret::{SecretRecord, SecretVersionMeta, SecretVersionRecord};
pub use spec::{AsymmetricAlgorithm, KeySpec, KeyUsage, Origin, ProtectionLevel};
pub use state::KeyState;
