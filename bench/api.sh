#!/usr/bin/env bash
# API throughput and latency: GET /v1/health (no auth) and an authenticated GET /v1/status, over the unix
# socket and TCP, plus the idle daemon's RSS. Starts its own daemon in a temp dir.
#   bench/api.sh [BUILD_DIR] [SECONDS] [CONNECTIONS]
set -euo pipefail
build=${1:-build}
secs=${2:-5}
conns=${3:-16}
tmp=$(mktemp -d /tmp/pc-bench-api.XXXXXX)
pidfile=$tmp/run/pocketcoderd.pid
cleanup() {
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT

"$build/pocketcoderd/pocketcoderd" --state-dir "$tmp/state" --runtime-dir "$tmp/run" --policy-dir "$tmp/pol" \
        --listen 127.0.0.1:0 --log-file "$tmp/log" --pid-file "$pidfile" --daemonize
pid=$(cat "$pidfile")
port=$(grep -o '(port [0-9]*)' "$tmp/log" | tail -1 | tr -dc 0-9)
token=$(POCKETCODER_SOCKET=$tmp/run/api.sock "$build/cli/pocketcoder" token create --role relay 2>/dev/null)

echo "pocketcoderd pid $pid; idle RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
echo "$(nproc) CPUs, $conns connections, ${secs}s per run"
for target in "--unix $tmp/run/api.sock" "--tcp 127.0.0.1:$port"; do
        for path in /v1/health /v1/status; do
                printf '%-6s %-11s ' "${target%% *}" "$path" | sed 's/--//'
                "$build/bench/http-load" $target --path "$path" --token "$token" --connections "$conns" \
                        --seconds "$secs"
        done
done
echo "RSS after load: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
