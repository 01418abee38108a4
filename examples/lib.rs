//! Examples for Plenum live beside this file as example targets; this library is empty.
//!
//! Start with `cargo run --example quickstart`.

#![forbid(unsafe_code)]
