//! The adversarial tenancy suite, against the real local PostgreSQL. Every database test logs in
//! as the contract's own roles over their own connections; the superuser only creates databases,
//! loads bulk fixtures and applies deliberate breaks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failed test"
)]

mod admin;
mod catalog;
mod concurrency;
mod fixtures;
mod keys;
mod paths;
mod plans;
mod pool_reuse;
mod raw_sql;
mod tls;
