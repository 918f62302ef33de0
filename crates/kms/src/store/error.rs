//! The store's error type, and its one conversion into the API's [`KmsError`].

use crate::error::KmsError;

/// What a store operation can fail with. The domain outcomes a caller reacts to (a limit, a
/// taken alias name, a refused key change) are variants of their own; everything else is a
/// database failure, which the API reports as `InternalFailure`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A per-account or per-key limit would be exceeded (keys, aliases, tags).
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The alias name is taken in this account and region.
    #[error("alias already exists")]
    AliasExists,
    /// `import` was given a database that already holds keys or access keys.
    #[error("the target database already holds keys or access keys; migrate into an empty one")]
    NotEmpty,
    /// The service's read-modify-write step ([`super::KeyMutation`]) refused the change; its
    /// error is passed through unchanged and nothing was written.
    #[error("{0}")]
    Refused(KmsError),
    /// A row with the same primary or unique key exists (where the operation does not
    /// expect one).
    #[error("{0}")]
    Duplicate(String),
    /// The database failed (connection, I/O, SQL error), with the engine's message.
    #[error("{0}")]
    Database(String),
    /// A stored value this version cannot read.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<StoreError> for KmsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LimitExceeded(what) => KmsError::LimitExceeded(what),
            StoreError::AliasExists => KmsError::AliasAlreadyExists,
            StoreError::Refused(e) => e,
            other @ (StoreError::NotEmpty
            | StoreError::Duplicate(_)
            | StoreError::Database(_)
            | StoreError::Corrupt(_)) => KmsError::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_once_into_the_api_error() {
        let limit = KmsError::from(StoreError::LimitExceeded("at most 1 keys".into()));
        assert_eq!(limit.code(), "Rejected.LimitExceeded");
        assert_eq!(limit.message(), "Resource limit exceeded: at most 1 keys.");
        assert_eq!(
            KmsError::from(StoreError::AliasExists).code(),
            "AliasAlreadyExists"
        );
        let refused = KmsError::Rejected(crate::error::Rejection::Disabled);
        assert_eq!(
            KmsError::from(StoreError::Refused(refused.clone())),
            refused
        );
        for e in [
            StoreError::NotEmpty,
            StoreError::Duplicate("x".into()),
            StoreError::Database("sqlite: disk I/O error".into()),
            StoreError::Corrupt("column 8".into()),
        ] {
            let k = KmsError::from(e.clone());
            assert_eq!(k, KmsError::Internal(e.to_string()));
            assert_eq!((k.code(), k.status()), ("InternalFailure", 500));
        }
    }
}
