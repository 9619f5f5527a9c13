#!/usr/bin/env bash
# Exec round trip, p50/p95: `true`, `echo hi` and 1 MiB of output over the unix socket, the agent socket and TCP,
# side by side with the original method (tmux send-keys + sleep 300 ms + poll every 200 ms) and `bwrap true`.
# Starts its own daemon in a temp dir (as root: it makes a sandbox).
#   bench/exec.sh [BUILD_DIR] [ROUND_TRIPS]
set -euo pipefail
exec python3 "$(dirname "$0")/exec-rtt.py" "${1:-build}" "${2:-200}"
