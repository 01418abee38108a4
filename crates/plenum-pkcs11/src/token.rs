//! Reaching the token: one initialised PKCS#11 context per module per process (modules crash
//! or refuse when initialised twice, and concurrent initialisation has crashed SoftHSM), the
//! slot found by token label, and a logged-in read-write session.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::session::{Session, UserType};
use secrecy::SecretString;

use crate::error::Error;

/// The process's contexts, by module path.
fn contexts() -> &'static Mutex<HashMap<PathBuf, Pkcs11>> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    CONTEXTS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The initialised context of `module`, loading and initialising it on first use.
pub(crate) fn context(module: &Path) -> Result<Pkcs11, Error> {
    // A poisoned lock only means another thread panicked while holding the map; the map itself
    // is never left half-updated.
    let mut map = contexts()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(ctx) = map.get(module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module).map_err(Error::Module)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(Error::Module(e)),
    }
    map.insert(module.to_owned(), ctx.clone());
    Ok(ctx)
}

/// A read-write session on the token labelled `label`, logged in as the user with `pin`.
pub(crate) fn open_session(
    ctx: &Pkcs11,
    label: &str,
    pin: &SecretString,
) -> Result<Session, Error> {
    let mut found = None;
    for slot in ctx.get_slots_with_token().map_err(Error::Token)? {
        let info = ctx.get_token_info(slot).map_err(Error::Token)?;
        if info.label().trim_end() == label {
            if info.user_pin_locked() || !info.user_pin_initialized() {
                return Err(Error::TokenLocked);
            }
            found = Some(slot);
            break;
        }
    }
    let slot = found.ok_or_else(|| Error::TokenNotFound {
        label: label.to_owned(),
    })?;
    let session = ctx.open_rw_session(slot).map_err(Error::Token)?;
    match session.login(UserType::User, Some(pin)) {
        // Login is per application and token: another provider of this process may have
        // logged in already.
        Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
            Ok(session)
        }
        Err(cryptoki::error::Error::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
            Err(Error::PinRejected)
        }
        Err(cryptoki::error::Error::Pkcs11(RvError::PinLocked | RvError::PinExpired, _)) => {
            Err(Error::TokenLocked)
        }
        Err(e) => Err(Error::Token(e)),
    }
}
