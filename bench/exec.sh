#!/usr/bin/env bash
# Exec round trip, p50/p95: `true`, `echo hi` and 1 MiB of output over the unix socket, the agent socket and TCP,
# paced (THINK_MS before each, default 50: the sandbox's ready window is back) and back to back, side by side
# with the original method (tmux send-keys + sleep 300 ms + poll every 200 ms), `bwrap true` and the kernel's
# own floor (bench/exec-floor.c). Starts its own daemon in a temp dir (as root: it makes a sandbox).
#   bench/exec.sh [BUILD_DIR] [ROUND_TRIPS] [THINK_MS]
set -euo pipefail
exec python3 "$(dirname "$0")/exec-rtt.py" "${1:-build}" "${2:-200}" "${3:-50}"
