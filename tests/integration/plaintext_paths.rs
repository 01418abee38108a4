//! Every public way to plaintext or to raw SQL is named: a function of the workspace's library
//! crates that hands out an opened value (`Pii<_>`), a field key, or a database connection is
//! named `dangerous_*`, or is on the short list below with the reason it needs no such name.
//! The audited, purpose-bound path is the repository; this keeps the others greppable
//! (`grep -rn dangerous_`), as SECURITY.md ("Unaudited access") says.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::path::Path;

use crate::fixtures::rust_files;

/// Public functions that return plaintext, a key or a connection without `dangerous_`, by
/// (file, name), and why.
const ALLOWED: [(&str, &str, &str); 5] = [
    (
        "plenum-store/src/encrypted.rs",
        "open",
        "`Encrypted::open` opens what a repository returned under a grant (and audited)",
    ),
    (
        "plenum-crypto/src/envelope.rs",
        "open",
        "`FieldKey::open` needs a `FieldKey`, which only `dangerous_*` calls hand out",
    ),
    (
        "plenum-crypto/src/envelope.rs",
        "open_bytes",
        "`FieldKey::open_bytes`: as `FieldKey::open`",
    ),
    (
        "plenum-crypto/src/pii.rs",
        "serialize_exposed",
        "serde helper over a `Pii` the caller already holds: it opens nothing",
    ),
    (
        "plenum-store/src/postgres/admin.rs",
        "connection",
        "`AdminTx::connection`: the admin session, whose reads the database refuses until its \
         audit row is committed; ciphertext only",
    ),
];

/// What a returned type must not be, unless the function is named for it.
const SENSITIVE: [&str; 5] = [
    "Pii<",
    "FieldKey",
    "PgConnection",
    "SqliteConnection",
    "[FieldKey]",
];

#[test]
fn every_public_path_to_plaintext_or_raw_sql_is_named_dangerous() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let mut files = Vec::new();
    for krate in std::fs::read_dir(&crates).unwrap().flatten() {
        let src = krate.path().join("src");
        if src.is_dir() && !krate.path().ends_with("plenum-test") {
            rust_files(&src, &mut files);
        }
    }
    assert!(files.len() > 50, "found the sources: {}", files.len());
    let mut found = Vec::new();
    let mut offenders = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let t = line.trim_start();
            let Some(rest) = t
                .strip_prefix("pub fn ")
                .or_else(|| t.strip_prefix("pub async fn "))
                .or_else(|| t.strip_prefix("pub const fn "))
            else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // The signature runs to the body's brace or the declaration's semicolon.
            let signature: String = text.lines().skip(i).take(12).collect::<Vec<_>>().join(" ");
            let signature = signature
                .split(['{', ';'])
                .next()
                .unwrap_or_default()
                .to_owned();
            let returns = signature.split("->").nth(1).unwrap_or_default();
            if !SENSITIVE.iter().any(|s| returns.contains(s)) {
                continue;
            }
            found.push(name.clone());
            let path = file.to_string_lossy().replace('\\', "/");
            let allowed = ALLOWED
                .iter()
                .any(|(f, n, _)| path.ends_with(f) && *n == name);
            if !name.starts_with("dangerous_") && !allowed {
                offenders.push(format!("{}:{}: {name}", file.display(), i + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "unnamed paths to plaintext or raw SQL: {offenders:#?}"
    );
    // The scan sees the paths it is about (it would pass vacuously otherwise).
    for expected in [
        "dangerous_open",
        "dangerous_field_key",
        "dangerous_opening_key",
        "dangerous_field_keys",
        "dangerous_postgres",
        "dangerous_sqlite",
        "open",
    ] {
        assert!(
            found.iter().any(|n| n == expected),
            "{expected} not seen: {found:?}"
        );
    }
}
