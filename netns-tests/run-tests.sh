#!/usr/bin/env bash
# The project's test command (see README): unit, property, golden-byte, tshark and
# network-namespace integration tests for the whole workspace. Needs root for the namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-}"
# The protocol cores build without the daemon around them, and then pull in no runtime, netlink,
# socket or HTTP crate: that is what lets the simulation harness run them as plain values.
for core in home-agent mma mobile-node correspondent pim-lite; do
    if cargo tree --locked -p "$core" --no-default-features -e normal --prefix none \
        | grep -qE '^(tokio|rtnetlink|netlink-sys|netlink-packet-route|hyper|socket2|nix) '; then
        echo "run-tests: the $core core pulls in an I/O crate without its shell feature" >&2
        exit 1
    fi
done
cargo build --locked -q -p home-agent -p mma -p mobile-node -p correspondent -p pim-lite --no-default-features --lib
# One set of lints for every crate ([workspace.lints]): nothing that can panic on input
# outside tests, no pub item that is not reachable.
cargo clippy --locked -q --workspace --all-targets -- -D warnings
# Tests that need root or tshark/scapy are #[ignore]d for a plain `cargo test`; this command runs
# them too. Network-namespace tests are I/O bound; four test threads per binary keep a 2-core box responsive.
timeout 1500 cargo test --workspace --locked -- --include-ignored --test-threads=4
