#!/usr/bin/env bash
# Independent implementations, driven only by the specs in docs/.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install --quiet 'cryptography>=42'
python3 .ci/interop/envelope_vectors.py crates/plenum-crypto/tests/data/vectors-v1.json crates/plenum-crypto/tests/data/pseudonym-vectors-v1.json \
    crates/plenum-crypto/tests/data/subject-wrap-vectors-v1.json
# The audit log: the published vectors, then a log exported by the PostgreSQL integration test
# (audit::checkpoints_are_issued_when_idle_and_bodies_expire_without_breaking_the_log, after
# retention deleted some bodies), and a copy of it with one event rewritten.
python3 .ci/interop/audit_verify.py vectors crates/plenum-audit/tests/data/audit-vectors-v1.json
python3 .ci/interop/audit_verify.py log target/audit-interop/export.json target/audit-interop/key.txt
python3 .ci/interop/audit_verify.py log target/audit-interop/tampered.json target/audit-interop/key.txt --expect-tampered
# The subject export: the rights example writes a JSON export, a CSV directory and the values it
# inserted; a reader written from docs/subject-export.md checks them (json and csv modules only).
export_dir=$(mktemp -d)
cargo run --quiet --example rights -- "$export_dir" > /dev/null
python3 .ci/interop/check_export.py "$export_dir"
rm -rf "$export_dir"
