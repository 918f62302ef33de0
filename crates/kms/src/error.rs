//! The one error type of the API. Every failure a request can meet is a variant here, and
//! the mapping to the wire `Code`, HTTP status and `Message` is written once, in
//! [`KmsError::code`], [`KmsError::status`] and [`KmsError::message`].

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsError {
    // ---- gateway / protocol ----
    #[error("missing parameter {0}")]
    MissingParameter(String),
    /// A parameter is present but not valid; the second field is an optional detail.
    #[error("invalid parameter {0}")]
    InvalidParameter(String, Option<String>),
    #[error("unknown action {0}")]
    InvalidApi(String),
    #[error("invalid version")]
    InvalidVersion,
    #[error("invalid format")]
    InvalidFormat,
    #[error("unsupported http method")]
    UnsupportedHttpMethod,
    #[error("incomplete signature")]
    IncompleteSignature(String),
    /// The field is the server's string to sign, echoed as the SDKs expect.
    #[error("signature does not match")]
    SignatureDoesNotMatch(String),
    #[error("signature nonce used")]
    SignatureNonceUsed,
    #[error("timestamp expired")]
    TimeStampExpired,
    #[error("timestamp format")]
    TimeStampFormat,
    #[error("access key not found")]
    AccessKeyNotFound,
    #[error("access key inactive")]
    AccessKeyInactive,
    #[error("request too large")]
    RequestTooLarge,

    // ---- KMS ----
    #[error("key not found")]
    KeyNotFound,
    #[error("key version not found")]
    KeyVersionNotFound,
    #[error("alias not found")]
    AliasNotFound,
    #[error("alias already exists")]
    AliasAlreadyExists,
    /// 409 for a key in the wrong state; the code comes from the state matrix.
    #[error("rejected: {0:?}")]
    Rejected(Rejection),
    #[error("unsupported origin")]
    UnsupportedOrigin,
    #[error("unsupported alias")]
    UnsupportedAlias,
    #[error("unsupported operation")]
    UnsupportedOperation,
    #[error("invalid import token")]
    InvalidImportToken,
    #[error("expired import token")]
    ExpiredImportToken,
    #[error("invalid key material")]
    InvalidKeyMaterial,
    // ---- Secrets Manager ----
    /// A secret (or its version or stage) that does not exist.
    #[error("resource not found")]
    ResourceNotFound,
    /// CreateSecret with a name in use.
    #[error("resource exists")]
    ResourceExist,
    /// The secret is in its recovery window (DeleteSecret without force).
    #[error("resource in delete window")]
    ResourceInDeleteWindow,

    #[error("no permission: {0}")]
    NoPermission(String),
    /// A KMS call refused by the RAM policies of its principal (reference
    /// alibaba-ram-sts.md §5.3).
    #[error("forbidden by the permission system")]
    Forbidden,
    /// An error of the RAM or STS products, or of security tokens, with its documented code,
    /// HTTP status and message (reference alibaba-ram-sts.md §3.9, §7.2).
    #[error("{code}")]
    Wire {
        code: &'static str,
        status: u16,
        message: String,
    },
    #[error("dry run")]
    DryRun,
    #[error("throttled")]
    Throttling,
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    #[error("internal: {0}")]
    Internal(String),
    /// The audit trail cannot be written for sure (full or failing disk): state changes are
    /// refused before they are applied (see [`crate::audit::AuditGate`]).
    #[error("audit trail unavailable")]
    AuditUnavailable,
    /// The nonce journal cannot be written (full or failing disk): a request whose nonce
    /// would be forgotten by a restart is refused before it is served (see
    /// [`crate::protocol::nonce_journal`]).
    #[error("nonce journal unavailable")]
    NonceJournalUnavailable,
    /// The database's root key was rotated away from this node's (see `crate::rotation`):
    /// every request is refused until the node restarts with the new root key.
    #[error("root key rotated")]
    RootKeyRotated,
    /// The HSM (PKCS#11) failed or did not answer within its deadline (issue 20).
    #[error("HSM unavailable: {0}")]
    HsmUnavailable(String),
    /// ProtectionLevel=HSM without an HSM configured (issue 20).
    #[error("unsupported protection level")]
    UnsupportedProtectionLevel(String),
}

/// The 409 codes of the key-state × action matrix (reference §3.18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Disabled,
    PendingDeletion,
    PendingImport,
    StateModifiedFailed,
}

impl Rejection {
    pub fn code(self) -> &'static str {
        match self {
            Rejection::Disabled => "Rejected.Disabled",
            Rejection::PendingDeletion => "Rejected.PendingDeletion",
            Rejection::PendingImport => "Rejected.PendingImport",
            Rejection::StateModifiedFailed => "Rejected.StateModifiedFailed",
        }
    }
}

impl KmsError {
    pub fn invalid(name: &str) -> Self {
        KmsError::InvalidParameter(name.to_string(), None)
    }
    pub fn invalid_because(name: &str, why: impl Into<String>) -> Self {
        KmsError::InvalidParameter(name.to_string(), Some(why.into()))
    }
    pub fn missing(name: &str) -> Self {
        KmsError::MissingParameter(name.to_string())
    }
    /// A RAM/STS/security-token error (see [`KmsError::Wire`]).
    pub fn wire(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        KmsError::Wire {
            code,
            status,
            message: message.into(),
        }
    }
    pub fn internal(what: impl std::fmt::Display) -> Self {
        KmsError::Internal(what.to_string())
    }

    /// The wire `Code`.
    pub fn code(&self) -> &'static str {
        use KmsError::*;
        match self {
            MissingParameter(_) => "MissingParameter",
            InvalidParameter(..) => "InvalidParameter",
            InvalidApi(_) => "InvalidApi.NotFound",
            InvalidVersion => "InvalidVersion",
            InvalidFormat => "InvalidParameter.Format",
            UnsupportedHttpMethod => "UnsupportedHTTPMethod",
            IncompleteSignature(_) => "IncompleteSignature",
            SignatureDoesNotMatch(_) => "SignatureDoesNotMatch",
            SignatureNonceUsed => "SignatureNonceUsed",
            TimeStampExpired => "InvalidTimeStamp.Expired",
            TimeStampFormat => "InvalidTimeStamp.Format",
            AccessKeyNotFound => "InvalidAccessKeyId.NotFound",
            AccessKeyInactive => "InvalidAccessKeyId.Inactive",
            RequestTooLarge => "InvalidParameter.TooLarge",
            KeyNotFound => "Forbidden.KeyNotFound",
            KeyVersionNotFound => "Forbidden.KeyVersionNotFound",
            AliasNotFound => "Forbidden.AliasNotFound",
            AliasAlreadyExists => "AliasAlreadyExists",
            Rejected(r) => r.code(),
            UnsupportedOrigin => "Unsupported.Origin",
            UnsupportedAlias => "Unsupported.Alias",
            UnsupportedOperation => "Rejected.UnsupportedOperation",
            InvalidImportToken => "InvalidImportToken",
            ExpiredImportToken => "ExpiredImportToken",
            InvalidKeyMaterial => "InvalidKeyMaterial",
            ResourceNotFound => "Forbidden.ResourceNotFound",
            ResourceExist => "Rejected.ResourceExist",
            ResourceInDeleteWindow => "Rejected.ResourceInDeleteWindow",
            NoPermission(_) | Forbidden => "Forbidden.NoPermission",
            Wire { code, .. } => code,
            DryRun => "DryRunOperationError",
            Throttling => "Rejected.Throttling",
            LimitExceeded(_) => "Rejected.LimitExceeded",
            Internal(_) => "InternalFailure",
            AuditUnavailable | NonceJournalUnavailable | RootKeyRotated => {
                "ServiceUnavailableTemporary"
            }
            HsmUnavailable(_) => "ServiceUnavailableTemporary",
            UnsupportedProtectionLevel(_) => "Unsupported.ProtectionLevel",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        use KmsError::*;
        match self {
            InvalidApi(_) | AccessKeyNotFound | KeyNotFound | KeyVersionNotFound
            | AliasNotFound | ResourceNotFound => 404,
            UnsupportedHttpMethod | NoPermission(_) | Forbidden => 403,
            Wire { status, .. } => *status,
            RequestTooLarge => 413,
            Throttling => 429,
            Rejected(_) | ResourceExist | ResourceInDeleteWindow => 409,
            Internal(_) => 500,
            AuditUnavailable | NonceJournalUnavailable | RootKeyRotated => 503,
            HsmUnavailable(_) => 503,
            _ => 400,
        }
    }

    /// The wire `Message`. Never contains key material, tokens or secrets.
    pub fn message(&self) -> String {
        use KmsError::*;
        match self {
            MissingParameter(n) => format!("The parameter \"{n}\" is needed but not provided."),
            InvalidParameter(n, None) => format!("The specified parameter \"{n}\" is not valid."),
            InvalidParameter(n, Some(why)) => {
                format!("The specified parameter \"{n}\" is not valid. {why}")
            }
            InvalidApi(a) => format!(
                "Specified api \"{a}\" is not found, please check your url and method."
            ),
            InvalidVersion => "Specified parameter Version is not valid.".into(),
            InvalidFormat => "Specified parameter Format is not valid.".into(),
            UnsupportedHttpMethod => "This http method is not supported.".into(),
            IncompleteSignature(s) => format!(
                "The request signature does not conform to Aliyun standards. server string to sign is:{s}"
            ),
            SignatureDoesNotMatch(s) => format!(
                "Specified signature is not matched with our calculation. server string to sign is:{s}"
            ),
            SignatureNonceUsed => "Specified signature nonce was used already.".into(),
            TimeStampExpired => {
                "Specified time stamp or date value is expired (more than 15 minutes from server time).".into()
            }
            TimeStampFormat => "Specified time stamp or date value is not well formatted.".into(),
            AccessKeyNotFound => "Specified access key is not found.".into(),
            AccessKeyInactive => "Specified access key is disabled.".into(),
            RequestTooLarge => "The request is too large.".into(),
            KeyNotFound => "The specified Key is not found.".into(),
            KeyVersionNotFound => "The specified Key version is not found.".into(),
            AliasNotFound => "The specified Alias is not found.".into(),
            AliasAlreadyExists => "AliasName Already Exists.".into(),
            Rejected(Rejection::StateModifiedFailed) => "Keystate modified failed.".into(),
            Rejected(Rejection::Disabled) => {
                "The request was rejected because the key state is Disabled.".into()
            }
            Rejected(Rejection::PendingDeletion) => {
                "The request was rejected because the key state is PendingDeletion.".into()
            }
            Rejected(Rejection::PendingImport) => {
                "The request was rejected because the key state is PendingImport.".into()
            }
            UnsupportedOrigin => "This key origin is not valid for this api.".into(),
            UnsupportedAlias => "Alias is not valid for this api.".into(),
            UnsupportedOperation => "Unsupported operation.".into(),
            InvalidImportToken => "import token is invalid.".into(),
            ExpiredImportToken => "import token is expired.".into(),
            InvalidKeyMaterial => "key material is invalid.".into(),
            ResourceNotFound => "Resource not found.".into(),
            ResourceExist => "The resource already exists.".into(),
            ResourceInDeleteWindow => "The secret is planned to be deleted.".into(),
            NoPermission(why) => format!("forbidden by permission system: {why}"),
            Forbidden => "This operation is forbidden by permission system.".into(),
            Wire { message, .. } => message.clone(),
            DryRun => "The request would have succeeded, but the DryRun flag is set.".into(),
            Throttling => "QPS upper limit exceeded.".into(),
            LimitExceeded(what) => format!("Resource limit exceeded: {what}."),
            Internal(_) => "Internal Failure.".into(),
            AuditUnavailable => "Service Unavailable Temporary. The audit trail cannot be written at the moment (for example its disk is full), so changes are refused until it can; reads and cryptographic calls still work.".into(),
            RootKeyRotated => "Service Unavailable Temporary. The root key of this deployment is being rotated (kms admin rotate-root-key): this node refuses requests until it is restarted with the new root key.".into(),
            NonceJournalUnavailable => "Service Unavailable Temporary. The server cannot record the request's signature nonce at the moment (for example its disk is full), so that a replay after a restart could not be refused; the request was not served.".into(),
            HsmUnavailable(why) => format!("Service Unavailable Temporary. The HSM that holds this key is unavailable: {why}."),
            UnsupportedProtectionLevel(why) => format!("protection level not valid for this region. {why}"),
        }
    }
}

pub type Result<T, E = KmsError> = std::result::Result<T, E>;
