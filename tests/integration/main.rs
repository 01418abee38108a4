//! Integration tests written only against the public `plenum` facade, as a service would use it.

mod audit;
mod backups;
mod claims;
mod consent;
mod datamap;
mod export;
mod fixtures;
mod holds;
mod http;
mod plaintext_paths;
mod records;
mod reencrypt;
mod requests;
mod retention;
mod scaling;
mod vocabulary;

/// The HVAC example service (`cargo run --example hvac_service`), driven over HTTP by `http.rs`.
#[path = "../../examples/hvac_service/app.rs"]
#[allow(dead_code, reason = "the example's app, included whole")]
mod hvac_app;
