//! `plenum audit ...` over the published vectors, with the arguments and exit statuses the
//! former `plenum-audit` binary had: verifies, proves, and refuses a tampered log with status 1.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test fixtures: a failed set-up is a failed test"
)]

use std::process::Command;

use serde_json::Value;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../plenum-audit/tests/data/audit-vectors-v1.json"
);

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_plenum"))
        .arg("audit")
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap(), text)
}

#[test]
fn the_command_verifies_proves_and_refuses_tampering() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(VECTORS).unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("plenum-audit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let export = dir.join("export.json");
    std::fs::write(&export, v["export"].to_string()).unwrap();
    let key = v["key"]["verifier"].as_str().unwrap();
    let export = export.to_str().unwrap();

    let (code, out) = run(&["verify", export, "--key", key]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("7 entries"), "{out}");

    let (code, proof) = run(&[
        "prove",
        export,
        "--seq",
        "4",
        "--checkpoint",
        "1",
        "--key",
        key,
    ]);
    assert_eq!(code, 0, "{proof}");
    let proof_path = dir.join("proof.json");
    std::fs::write(&proof_path, &proof).unwrap();
    let body_path = dir.join("body.json");
    std::fs::write(&body_path, v["events"][4]["canonical"].as_str().unwrap()).unwrap();
    let (code, out) = run(&[
        "check-proof",
        proof_path.to_str().unwrap(),
        "--body",
        body_path.to_str().unwrap(),
        "--key",
        key,
    ]);
    assert_eq!(code, 0, "{out}");
    std::fs::write(&body_path, v["events"][3]["canonical"].as_str().unwrap()).unwrap();
    let (code, out) = run(&[
        "check-proof",
        proof_path.to_str().unwrap(),
        "--body",
        body_path.to_str().unwrap(),
        "--key",
        key,
    ]);
    assert_eq!(code, 1, "another event's body: {out}");

    let (code, consistency) = run(&[
        "consistency",
        export,
        "--old",
        "0",
        "--new",
        "1",
        "--key",
        key,
    ]);
    assert_eq!(code, 0, "{consistency}");
    let c_path = dir.join("consistency.json");
    std::fs::write(&c_path, &consistency).unwrap();
    let (code, out) = run(&["check-consistency", c_path.to_str().unwrap(), "--key", key]);
    assert_eq!(code, 0, "{out}");

    let mut tampered = v["export"].clone();
    tampered["entries"].as_array_mut().unwrap().remove(2);
    let t_path = dir.join("tampered.json");
    std::fs::write(&t_path, tampered.to_string()).unwrap();
    let (code, out) = run(&["verify", t_path.to_str().unwrap(), "--key", key]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("sequence gap"), "{out}");

    let (code, out) = run(&["verify", export]);
    assert_eq!(code, 2, "no key: {out}");
    std::fs::remove_dir_all(&dir).unwrap();
}
