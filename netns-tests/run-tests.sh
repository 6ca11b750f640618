#!/usr/bin/env bash
# The project's test command (see README): unit, property, golden-byte, tshark and
# network-namespace integration tests for the whole workspace. Needs root for the namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-}"
# Network-namespace tests are I/O bound; two test threads per binary keep a 2-core box responsive.
timeout 1500 cargo test --workspace --locked -- --test-threads=4
