//! Test support for the Plenum workspace. Unpublished; never a dependency of library code.
//!
//! - PII canaries that tests seal and then search for in every formatted value, error and log.
//! - [`pg::TestDb`]: a fresh PostgreSQL database with its own set of contract roles, for tests
//!   that must run against the real server as the unprivileged runtime role.
//! - [`softhsm::Token`]: a SoftHSM2 token of one run, for the PKCS#11 provider's tests and bench.

#![forbid(unsafe_code)]
#![allow(
    clippy::panic,
    clippy::expect_used,
    reason = "test support: a panic is how a test (or its set-up) fails, with a message"
)]

pub mod pg;
pub mod softhsm;

/// A string that looks like PII and appears nowhere else: tests seal it and then assert that it
/// never shows up in `Debug`/`Display` output, error messages or logs.
pub const CANARY_EMAIL: &str = "canary.7f3a91@plenum-test.invalid";

/// A second canary of another shape (a phone number), for tests that need two distinct values.
pub const CANARY_PHONE: &str = "+1 (555) 010-7391";

/// Asserts that `haystack` contains none of the canaries, naming the context on failure.
///
/// # Panics
///
/// When a canary is found: that is the test failing.
pub fn assert_no_canary(context: &str, haystack: &str) {
    for canary in [CANARY_EMAIL, CANARY_PHONE] {
        if haystack.contains(canary) {
            panic!("{context}: a PII canary leaked into formatted output");
        }
    }
}
