//! PII field encryption: the `Pii<T>` wrapper, the v1 envelope, the key hierarchy and blind
//! indexes.
//!
//! Not built yet. This is the only crate in the workspace that will name `aes-gcm`.

#![forbid(unsafe_code)]
