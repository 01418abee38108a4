//! What the command prints and how it exits: text or `--json` on stdout, failures on stderr
//! with the documented status (1 a finding or failure, 2 usage).

use std::process::ExitCode;

/// A failure: the exit status and what to say.
#[derive(Debug)]
pub struct Failure {
    /// 1 (a finding, a failed operation) or 2 (usage, unreadable input).
    pub code: u8,
    /// What went wrong, without secrets.
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A usage failure (status 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(2, message)
    }
}

impl From<plenum_store::Error> for Failure {
    fn from(e: plenum_store::Error) -> Self {
        // Store errors never carry values (SECURITY.md); the kind helps scripts.
        Self::new(1, format!("{e} ({})", e.kind().as_str()))
    }
}

impl From<plenum_crypto::Error> for Failure {
    fn from(e: plenum_crypto::Error) -> Self {
        Self::new(1, e.to_string())
    }
}

/// How to print.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    pub(crate) json: bool,
}

impl Output {
    /// Prints `text`, or `value` as JSON with `--json`.
    #[expect(clippy::print_stdout, reason = "a command's output is its interface")]
    pub(crate) fn print(&self, text: &str, value: &serde_json::Value) {
        if self.json {
            println!("{value}");
        } else {
            println!("{text}");
        }
    }

    /// Prints `failure` on stderr (as JSON with `--json`) and returns its status.
    #[expect(clippy::print_stderr, reason = "a command's errors are its interface")]
    pub(crate) fn fail(&self, failure: &Failure) -> ExitCode {
        if self.json {
            eprintln!(
                "{}",
                serde_json::json!({"error": failure.message, "status": failure.code})
            );
        } else {
            eprintln!("plenum: {}", failure.message);
        }
        ExitCode::from(failure.code)
    }
}
