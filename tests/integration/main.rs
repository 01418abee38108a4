//! Integration tests written only against the public `plenum` facade, as a service would use it.

mod audit;
mod backups;
mod claims;
mod consent;
mod datamap;
mod export;
mod fixtures;
mod holds;
mod plaintext_paths;
mod records;
mod reencrypt;
mod requests;
mod retention;
mod scaling;
mod vocabulary;
