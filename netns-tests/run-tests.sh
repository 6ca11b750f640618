#!/usr/bin/env bash
# The project's test command (see README): unit, property, golden-byte, tshark and
# network-namespace integration tests for the whole workspace. Needs root for the namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-}"
# Tests that need root or tshark/scapy are #[ignore]d for a plain `cargo test`; this command runs
# them too. Network-namespace tests are I/O bound; four test threads per binary keep a 2-core box responsive.
timeout 1500 cargo test --workspace --locked -- --include-ignored --test-threads=4
