//! A hardware root of trust through PKCS#11 (issue 20): any HSM with a PKCS#11 module
//! (SoftHSM2 in the tests).
//!
//! - [`Hsm`]: the loaded module, the token (found by label) and a pool of logged-in
//!   sessions. Every PKCS#11 call runs on a blocking thread under a deadline
//!   ([`HsmSettings::timeout`]): a slow or failing HSM answers a clear error
//!   (503 `ServiceUnavailableTemporary`, "the HSM …") and never hangs a request. At most
//!   [`MAX_IN_FLIGHT`] calls are outstanding at once, so a hung module cannot take every
//!   blocking thread either. A session that meets a token error (device removed, session
//!   closed, token absent, device error) is dropped with every idle one, and the next call
//!   opens fresh sessions (logging in again).
//! - [`ops`]: the key operations: AES-256 keys generated in the token (sensitive,
//!   non-extractable), AES-GCM in the token in the service's own blob format, RSA-2048
//!   wrapping pairs whose private half never leaves the token, and `C_UnwrapKey` of
//!   imported material straight into a token object.
//! - [`root`]: the root key sealed under a non-extractable AES-256 key in the token, and
//!   the `kms admin hsm-root` migration both ways.

pub mod ops;
pub mod root;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::error::KmsError;

/// Default deadline of one PKCS#11 call, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 5;
/// Most PKCS#11 calls outstanding at once (each holds a blocking thread while it runs).
pub const MAX_IN_FLIGHT: usize = 32;
/// Most idle sessions kept open.
const MAX_IDLE: usize = 16;

/// The `--hsm-*` flags of `kms server` (and the same environment variables for `kms admin`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HsmArgs {
    /// Path of the HSM's PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so). With it,
    /// keys may be created with ProtectionLevel=HSM, and a root key sealed by the HSM
    /// (`kms admin hsm-root to-hsm`) can be opened.
    #[arg(long, env = "KMS_HSM_MODULE")]
    pub hsm_module: Option<PathBuf>,
    /// Label of the token (the HSM partition) to use.
    #[arg(long, env = "KMS_HSM_TOKEN_LABEL")]
    pub hsm_token_label: Option<String>,
    /// File holding the token's user PIN (first line; keep it 0600).
    #[arg(long, env = "KMS_HSM_PIN_FILE")]
    pub hsm_pin_file: Option<PathBuf>,
    /// Seconds one PKCS#11 call may take before the request fails with 503 [default: 5].
    #[arg(long, env = "KMS_HSM_TIMEOUT")]
    pub hsm_timeout: Option<u64>,
}

/// The HSM settings after merging flag, environment and config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmSettings {
    pub module: PathBuf,
    pub token_label: String,
    pub pin_file: PathBuf,
    pub timeout: Duration,
}

impl HsmArgs {
    /// Merges the flags (or their environment variables) over the config file's values.
    /// `None` when no module is named; an error when a module is named without the rest.
    pub fn resolve(
        self,
        module: Option<PathBuf>,
        token_label: Option<String>,
        pin_file: Option<PathBuf>,
        timeout: Option<u64>,
    ) -> Result<Option<HsmSettings>, String> {
        let module = self.hsm_module.or(module);
        let token_label = self.hsm_token_label.or(token_label);
        let pin_file = self.hsm_pin_file.or(pin_file);
        let timeout = self.hsm_timeout.or(timeout).unwrap_or(DEFAULT_TIMEOUT_SECS);
        let Some(module) = module else {
            if token_label.is_some() || pin_file.is_some() {
                return Err("hsm_token_label and hsm_pin_file need hsm_module (--hsm-module, KMS_HSM_MODULE): the path of the HSM's PKCS#11 module".into());
            }
            return Ok(None);
        };
        let token_label = token_label.ok_or("hsm_module needs hsm_token_label (--hsm-token-label, KMS_HSM_TOKEN_LABEL): the label of the token to use")?;
        let pin_file = pin_file.ok_or("hsm_module needs hsm_pin_file (--hsm-pin-file, KMS_HSM_PIN_FILE): a file holding the token's user PIN")?;
        if timeout == 0 {
            return Err("hsm_timeout must be at least 1 second".into());
        }
        Ok(Some(HsmSettings {
            module,
            token_label,
            pin_file,
            timeout: Duration::from_secs(timeout),
        }))
    }
}

/// What can go wrong with the HSM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HsmError {
    /// A call did not finish within the deadline.
    #[error("the HSM did not answer {what} within {secs} s")]
    Timeout { what: &'static str, secs: u64 },
    /// The token or module failed (removed, closed, device error, not logged in).
    #[error("the HSM failed during {what}: {detail}")]
    Device { what: &'static str, detail: String },
    /// The operation itself was refused (bad ciphertext, unsupported parameter, …).
    #[error("the HSM refused {what}: {detail}")]
    Refused {
        what: &'static str,
        detail: String,
        rv: Option<RvError>,
    },
}

impl HsmError {
    pub fn refused_with(&self, rv: RvError) -> bool {
        matches!(self, HsmError::Refused { rv: Some(r), .. } if *r == rv)
    }
}

impl From<HsmError> for KmsError {
    fn from(e: HsmError) -> Self {
        match e {
            HsmError::Timeout { .. } | HsmError::Device { .. } => {
                KmsError::HsmUnavailable(e.to_string())
            }
            HsmError::Refused { .. } => KmsError::internal(e),
        }
    }
}

/// Errors after which a session (and likely every session) is unusable. Not
/// CKR_GENERAL_ERROR: SoftHSM2 answers it for an AES-GCM tag mismatch and a bad unwrap.
fn is_token_error(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::DeviceMemory
                | RvError::SessionClosed
                | RvError::SessionHandleInvalid
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::UserNotLoggedIn
                | RvError::CryptokiNotInitialized
                | RvError::OperationActive,
            _
        )
    )
}

fn rv_of(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// The loaded PKCS#11 module, its token and a pool of sessions.
pub struct Hsm {
    ctx: Pkcs11,
    slot: Slot,
    pin: AuthPin,
    settings: HsmSettings,
    idle: Mutex<Vec<Session>>,
    permits: Arc<tokio::sync::Semaphore>,
    /// Object handles by label, so the hot path does not search the token per call (each
    /// use re-checks the handle's label: a handle may be reused once its object is gone).
    handles: Mutex<std::collections::HashMap<String, cryptoki::object::ObjectHandle>>,
}

/// Most object handles remembered (the map is emptied when it grows beyond).
const MAX_HANDLES: usize = 65_536;

impl std::fmt::Debug for Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm")
            .field("module", &self.settings.module)
            .field("token_label", &self.settings.token_label)
            .finish()
    }
}

/// Reads the PIN: the first line of the file, without its line ending.
fn read_pin(path: &Path) -> Result<AuthPin, String> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the HSM PIN file {} (--hsm-pin-file, KMS_HSM_PIN_FILE): {e}",
            path.display()
        )
    })?);
    let pin = text.lines().next().unwrap_or_default();
    if pin.is_empty() {
        return Err(format!(
            "the HSM PIN file {} is empty: write the token's user PIN on its first line",
            path.display()
        ));
    }
    Ok(AuthPin::from(pin.to_string()))
}

impl Hsm {
    /// Loads the module, finds the token by label and logs in, with start-up errors that
    /// name what is wrong (module missing or not PKCS#11, token absent, wrong PIN). Blocking:
    /// call it before serving (or from a blocking thread).
    pub fn open(settings: &HsmSettings) -> Result<Arc<Self>, String> {
        let module = settings.module.display();
        if !settings.module.exists() {
            return Err(format!("the PKCS#11 module {module} (--hsm-module, KMS_HSM_MODULE) does not exist: install the HSM's client library or fix the path"));
        }
        let pin = read_pin(&settings.pin_file)?;
        let ctx = Pkcs11::new(&settings.module)
            .map_err(|e| format!("cannot load the PKCS#11 module {module}: {e}"))?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => {
                return Err(format!(
                    "the PKCS#11 module {module} failed to initialise: {e}"
                ))
            }
        }
        let slots = ctx
            .get_slots_with_initialized_token()
            .map_err(|e| format!("the PKCS#11 module {module} cannot list its tokens: {e}"))?;
        let mut labels = Vec::new();
        let mut found = None;
        for slot in slots {
            if let Ok(info) = ctx.get_token_info(slot) {
                let label = info.label().trim_end().to_string();
                if label == settings.token_label {
                    found = Some(slot);
                    break;
                }
                labels.push(label);
            }
        }
        let Some(slot) = found else {
            let present = if labels.is_empty() {
                "no initialised token at all".to_string()
            } else {
                format!("tokens present: {}", labels.join(", "))
            };
            return Err(format!(
                "the HSM token {:?} is absent from the PKCS#11 module {module} ({present}); connect the HSM or fix --hsm-token-label (KMS_HSM_TOKEN_LABEL)",
                settings.token_label
            ));
        };
        let hsm = Arc::new(Self {
            ctx,
            slot,
            pin,
            settings: settings.clone(),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            handles: Mutex::new(Default::default()),
        });
        let session = hsm.open_session().map_err(|e| match rv_of(&e) {
            Some(RvError::PinIncorrect) => format!(
                "the HSM token {:?} refused the PIN in {} (CKR_PIN_INCORRECT): put the token's user PIN in that file",
                settings.token_label,
                settings.pin_file.display()
            ),
            Some(RvError::PinLocked) => format!(
                "the HSM token {:?} has locked its user PIN (CKR_PIN_LOCKED): the security officer must unlock it",
                settings.token_label
            ),
            _ => format!(
                "cannot log in to the HSM token {:?}: {e}",
                settings.token_label
            ),
        })?;
        hsm.give_back(session);
        tracing::info!(module = %module, token = %settings.token_label, "HSM token opened");
        Ok(hsm)
    }

    pub(crate) fn cached_handle(&self, label: &str) -> Option<cryptoki::object::ObjectHandle> {
        self.handles.lock().ok()?.get(label).copied()
    }

    pub(crate) fn remember_handle(&self, label: &str, h: cryptoki::object::ObjectHandle) {
        if let Ok(mut m) = self.handles.lock() {
            if m.len() >= MAX_HANDLES {
                m.clear();
            }
            m.insert(label.to_string(), h);
        }
    }

    pub(crate) fn forget_handle(&self, label: &str) {
        if let Ok(mut m) = self.handles.lock() {
            m.remove(label);
        }
    }

    pub fn settings(&self) -> &HsmSettings {
        &self.settings
    }

    /// A new read-write session, logged in as the user (a login already made by another
    /// session of this process is fine).
    fn open_session(&self) -> Result<Session, CkError> {
        let session = self.ctx.open_rw_session(self.slot)?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(e),
        }
    }

    fn give_back(&self, session: Session) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push(session);
            }
        }
    }

    /// Runs `f` with a pooled session on this thread (blocking).
    fn with_session<T>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Session) -> Result<T, CkError>,
    ) -> Result<T, HsmError> {
        let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
        let session = match pooled {
            Some(s) => s,
            None => self.open_session().map_err(|e| HsmError::Device {
                what,
                detail: format!(
                    "cannot open a session with token {:?}: {e}",
                    self.settings.token_label
                ),
            })?,
        };
        match f(&session) {
            Ok(v) => {
                self.give_back(session);
                Ok(v)
            }
            Err(e) if is_token_error(&e) => {
                // The token went away or the sessions died: drop them all; the next call
                // opens new ones (and logs in again).
                drop(session);
                if let Ok(mut idle) = self.idle.lock() {
                    idle.clear();
                }
                if let Ok(mut handles) = self.handles.lock() {
                    handles.clear();
                }
                tracing::warn!(what, error = %e, "HSM token error; its sessions will be re-opened");
                Err(HsmError::Device {
                    what,
                    detail: e.to_string(),
                })
            }
            Err(e) => {
                self.give_back(session);
                Err(HsmError::Refused {
                    what,
                    detail: e.to_string(),
                    rv: rv_of(&e),
                })
            }
        }
    }

    /// Runs one PKCS#11 operation on a blocking thread under the deadline. The work keeps
    /// its thread until the module returns, but the caller is answered at the deadline.
    pub async fn call<T, F>(self: &Arc<Self>, what: &'static str, f: F) -> Result<T, HsmError>
    where
        T: Send + 'static,
        F: FnOnce(&Session) -> Result<T, CkError> + Send + 'static,
    {
        let timeout = self.settings.timeout;
        let expired = || HsmError::Timeout {
            what,
            secs: timeout.as_secs(),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| expired())?
            .map_err(|_| expired())?;
        let me = self.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            me.with_session(what, f)
        });
        match tokio::time::timeout_at(deadline, task).await {
            Err(_) => {
                tracing::error!(what, secs = timeout.as_secs(), "HSM call timed out");
                Err(expired())
            }
            Ok(Err(_)) => Err(HsmError::Device {
                what,
                detail: "the PKCS#11 call panicked".into(),
            }),
            Ok(Ok(r)) => r,
        }
    }

    /// Runs a PKCS#11 operation from synchronous code (start-up and admin commands) on its
    /// own thread, under the same deadline.
    pub fn call_blocking<T, F>(self: &Arc<Self>, what: &'static str, f: F) -> Result<T, HsmError>
    where
        T: Send + 'static,
        F: FnOnce(&Session) -> Result<T, CkError> + Send + 'static,
    {
        let timeout = self.settings.timeout;
        let (tx, rx) = std::sync::mpsc::channel();
        let me = self.clone();
        std::thread::spawn(move || {
            let _ = tx.send(me.with_session(what, f));
        });
        rx.recv_timeout(timeout).map_err(|_| HsmError::Timeout {
            what,
            secs: timeout.as_secs(),
        })?
    }
}

/// The HSM of this process, once opened (the server opens it before the data dir, so the
/// root-key hook and the service share it).
static INSTALLED: OnceLock<Arc<Hsm>> = OnceLock::new();

/// Makes `hsm` the process's HSM (first call wins).
pub fn install(hsm: Arc<Hsm>) {
    let _ = INSTALLED.set(hsm);
}

/// The installed HSM, if any.
pub fn installed() -> Option<Arc<Hsm>> {
    INSTALLED.get().cloned()
}

/// The installed HSM, or one opened from the environment (`KMS_HSM_MODULE`,
/// `KMS_HSM_TOKEN_LABEL`, `KMS_HSM_PIN_FILE`, `KMS_HSM_TIMEOUT`) for the admin commands.
pub fn installed_or_from_env() -> Result<Option<Arc<Hsm>>, String> {
    if let Some(h) = installed() {
        return Ok(Some(h));
    }
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let args = HsmArgs {
        hsm_module: env("KMS_HSM_MODULE").map(PathBuf::from),
        hsm_token_label: env("KMS_HSM_TOKEN_LABEL").and_then(|v| v.into_string().ok()),
        hsm_pin_file: env("KMS_HSM_PIN_FILE").map(PathBuf::from),
        hsm_timeout: env("KMS_HSM_TIMEOUT")
            .and_then(|v| v.into_string().ok())
            .and_then(|v| v.parse().ok()),
    };
    match args.resolve(None, None, None, None)? {
        None => Ok(None),
        Some(settings) => {
            let hsm = Hsm::open(&settings)?;
            install(hsm.clone());
            Ok(Some(hsm))
        }
    }
}
