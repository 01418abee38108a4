//! A SoftHSM2 token for one test or bench run: created with a random label and random PINs in
//! SoftHSM's configured token directory, deleted on drop (also when the run fails). Create it
//! before the process first initialises the PKCS#11 module: a module sees only the tokens
//! present at initialisation.

use std::path::PathBuf;
use std::process::Command;

/// The SoftHSM2 module: `PLENUM_PKCS11_MODULE`, or where Debian and Ubuntu install it.
///
/// # Panics
///
/// If SoftHSM2 is not installed, saying how to install it.
pub fn module() -> PathBuf {
    if let Ok(path) = std::env::var("PLENUM_PKCS11_MODULE") {
        return PathBuf::from(path);
    }
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect(
        "SoftHSM2 is not installed: `apt-get install softhsm2` (.ci/run does), or set PLENUM_PKCS11_MODULE",
    )
}

/// A token of this run, deleted on drop.
#[derive(Debug)]
pub struct Token {
    /// Its label.
    pub label: String,
    /// Its user PIN.
    pub pin: String,
}

impl Token {
    /// Initialises a fresh token with `softhsm2-util`.
    ///
    /// # Panics
    ///
    /// If `softhsm2-util` is missing or fails.
    pub fn create() -> Self {
        let random = || {
            plenum_crypto::digest::random_bytes::<8>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let token = Self {
            label: format!("plenum-test-{}", random()),
            pin: random(),
        };
        let so_pin = random();
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", &token.label])
            .args(["--pin", &token.pin, "--so-pin", &so_pin])
            .output()
            .expect("softhsm2-util runs (apt-get install softhsm2)");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        token
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        // Best effort: a token left behind holds test keys only, under a label no one reuses.
        let _ = Command::new("softhsm2-util")
            .args(["--delete-token", "--token", &self.label])
            .output();
    }
}
