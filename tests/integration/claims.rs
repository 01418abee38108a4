//! README.md and SECURITY.md name the test behind each claim as `` `module::test_name` ``:
//! every such name must be a function that exists in the workspace, so a claim cannot outlive
//! the test that held it (renamed, deleted) unnoticed.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::HashSet;
use std::path::Path;

use crate::fixtures::rust_files;

/// Every `fn name(` in the workspace's Rust sources.
fn functions(root: &Path) -> HashSet<String> {
    let mut files = Vec::new();
    for dir in ["crates", "tests", "benches", "examples"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut names = HashSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for piece in text.split("fn ").skip(1) {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if piece[name.len()..].trim_start().starts_with(['(', '<']) {
                names.insert(name);
            }
        }
    }
    names
}

/// The `` `a::b_c_d` `` references of `text` whose last segment reads like a test's name.
fn test_references(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.contains("::")
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':')
        })
        .filter(|s| {
            s.rsplit("::")
                .next()
                .is_some_and(|last| last.matches('_').count() >= 2)
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_test_a_claim_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let names = functions(&root);
    let mut checked = 0;
    let mut missing = Vec::new();
    for doc in ["README.md", "SECURITY.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for reference in test_references(&text) {
            let last = reference.rsplit("::").next().unwrap_or_default();
            checked += 1;
            if !names.contains(last) {
                missing.push(format!("{doc}: {reference}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "claims naming tests that do not exist: {missing:#?}"
    );
    assert!(checked > 40, "the scan found the claims: {checked}");
}
