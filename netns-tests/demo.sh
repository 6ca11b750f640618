#!/usr/bin/env bash
# The mipcast demo: builds the workspace in release mode, then runs the whole system in network
# namespaces (correspondent, home agent, two sites with an MMA and pim-lite routers each, a
# mobile node with three links), a TCP connection to the home address, an intra-site and an
# inter-site move, explained step by step. Leaves nothing behind, also on Ctrl-C.
#
#   sudo ./netns-tests/demo.sh
#
# MIPCAST_KEEP_SITE_DIR=1 keeps the generated configs and daemon logs (the path is printed).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "The demo builds network namespaces: run it as root (sudo $0)." >&2
    exit 1
fi
for tool in ip nft tcpdump tshark; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool (see README: .ci/run installs the packages)" >&2; exit 1; }
done

# Build as the invoking user when run through sudo (root usually has no cargo on its PATH and
# should not own files in target/).
build=(cargo build --release --workspace --bins)
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    sudo -u "$SUDO_USER" -H bash -lc "cd '$PWD' && ${build[*]}" || echo "build as $SUDO_USER failed; trying the existing binaries" >&2
elif command -v cargo >/dev/null; then
    "${build[@]}"
fi
bin=target/release/demo
[ -x "$bin" ] || { echo "$bin not found: run \`cargo build --release --workspace\` first" >&2; exit 1; }
exec "$bin" "$@"
