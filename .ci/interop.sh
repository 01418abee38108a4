#!/usr/bin/env bash
# Independent implementations, driven only by the specs in docs/.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install --quiet 'cryptography>=42'
python3 .ci/interop/envelope_vectors.py crates/plenum-crypto/tests/data/vectors-v1.json
