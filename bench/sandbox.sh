#!/usr/bin/env bash
# Sandbox lifecycle benchmarks (issue 5), all in one run so the peers see the same machine state:
#   1. create -> tmux-ready latency over N sandboxes each: plain host tmux (the floor), bubblewrap + tmux
#      (bare, then with our seccomp filter and a per-sandbox cgroup), crun + tmux and firejail + tmux (the
#      other peers), our isolate library directly, and the daemon's API (POST /v1/sandboxes returns when the
#      tmux session exists); then stop and delete latency.
#      With PHASES=1 (default; needs perf) a perf trace of more library starts, split into phases by
#      bench/sandbox-phases.py: where the time goes.
#   2. CONCURRENT sandboxes created through the API by CLIENTS parallel clients: time until all are ready,
#      idle memory per sandbox (cgroup accounting, and RSS/PSS of the processes inside), daemon RSS; then
#      stop and delete latency with that many running.
# Needs root; installs missing tools with apt-get. Everything it starts is removed again, also on failure or
# Ctrl-C (trap). The whole run is bounded by MAX_SECONDS (default 600; each step gets what is left); it takes
# ~22 s on the project machine.
#   N=100 CONCURRENT=200 CLIENTS=8 PHASES=1 bench/sandbox.sh [BUILD_DIR]
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
        echo "bench/sandbox.sh: needs root (sandboxes, cgroups)" >&2
        exit 77
fi
# The peers and helpers, as tool:package; missing ones are installed.
missing=()
for tp in bwrap:bubblewrap tmux:tmux curl:curl jq:jq timeout:coreutils crun:crun firejail:firejail; do
        command -v "${tp%%:*}" >/dev/null || missing+=("${tp#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
        echo "# installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt_install() { apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
        # A stale package list may not know a package yet: update it once and retry.
        if ! apt_install && ! { apt-get update -q >&2 && apt_install; }; then
                echo "bench/sandbox.sh: could not install ${missing[*]}" >&2
                exit 77
        fi
fi
build=$(cd "${1:-build}" && pwd)
N=${N:-100}
CONCURRENT=${CONCURRENT:-200}
CLIENTS=${CLIENTS:-8}
MAX_SECONDS=${MAX_SECONDS:-600}
bench=$build/bench/sandbox-bench
tmp=$(mktemp -d /tmp/pc-bench-sandbox.XXXXXX)
# firejail sandboxes uid 1000, which resolves its workspace path itself: it gets a directory it can reach.
fjdir=$(mktemp -d /tmp/pc-bench-firejail.XXXXXX)
chmod 0711 "$fjdir"
pidfile=$tmp/run/pocketcoderd.pid
sock=$tmp/run/api.sock
# Sandbox names are per run, so a leftover of another run or of the tests is never touched.
seq_prefix=bs$$
conc_prefix=bc$$
lib_parent=pc-bench-lib-$$
bw_parent=pc-bench-bwrap-$$

api() { curl -sS --max-time 60 --unix-socket "$sock" "$@"; }

# Removes whatever a step left behind (normally nothing: sandbox-bench cleans up after itself).
cleanup() {
        set +e
        trap - EXIT INT TERM
        if [ -S "$sock" ]; then
                for name in $(api http://localhost/v1/sandboxes 2>/dev/null | jq -r '.sandboxes[].name' 2>/dev/null |
                        grep -E "^($seq_prefix|$conc_prefix)-"); do
                        api -o /dev/null -X DELETE "http://localhost/v1/sandboxes/$name?purge=true"
                done
        fi
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
        # Belt and braces for a crashed driver or daemon: kill and remove this run's cgroups only.
        for dir in /sys/fs/cgroup/*/pocketcoder/"$seq_prefix"-* /sys/fs/cgroup/*/pocketcoder/"$conc_prefix"-* \
                /sys/fs/cgroup/*/"$lib_parent"/* /sys/fs/cgroup/*/"$bw_parent"/*; do
                [ -d "$dir" ] || continue
                xargs -r kill -9 <"$dir/cgroup.procs" 2>/dev/null
        done
        sleep 0.2
        for dir in /sys/fs/cgroup/*/pocketcoder/"$seq_prefix"-* /sys/fs/cgroup/*/pocketcoder/"$conc_prefix"-* \
                /sys/fs/cgroup/*/"$lib_parent"/* /sys/fs/cgroup/*/"$bw_parent"/* /sys/fs/cgroup/*/"$lib_parent" \
                /sys/fs/cgroup/*/"$bw_parent"; do
                [ -d "$dir" ] && rmdir "$dir"
        done
        rm -rf "$tmp" "$fjdir"
}
# A signal stops the running step first (sandbox-bench removes what it started), then cleanup runs.
child=
on_signal() {
        [ -n "$child" ] && kill -TERM "$child" 2>/dev/null && wait "$child"
        exit 130
}
trap cleanup EXIT
trap on_signal INT TERM

# Runs a step with what is left of the time budget; on SIGTERM sandbox-bench stops and removes its sandboxes.
left() {
        local l=$((MAX_SECONDS - SECONDS))
        if [ "$l" -le 0 ]; then
                echo "bench/sandbox.sh: time budget of ${MAX_SECONDS}s used up" >&2
                exit 1
        fi
        echo "$l"
}
run_step() {
        timeout --foreground --kill-after=20 "$(left)" "$@" &
        child=$!
        wait "$child"
        child=
}
step() { run_step "$bench" "$@"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

echo "# $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(tmux -V), bubblewrap $(bwrap --version | cut -d' ' -f2), $(crun --version | head -n1), $(firejail --version | head -n1)"
echo "# N=$N CONCURRENT=$CONCURRENT CLIENTS=$CLIENTS, build $build"

mkdir -p "$tmp/ws"
"$build/pocketcoderd/pocketcoderd" --state-dir "$tmp/state" --runtime-dir "$tmp/run" --policy-dir "$tmp/pol" \
        --log-file "$tmp/log" --pid-file "$pidfile" --daemonize
dpid=$(cat "$pidfile")
echo "# cgroup $(api http://localhost/v1/status | jq -r '.host.cgroup.version // .cgroup.version // "?"' 2>/dev/null), daemon idle RSS $(rss_kib "$dpid") KiB"

echo
echo "## 1. create -> tmux ready, $N sandboxes each (all kept running, then stopped)"
step tmux --runs "$N" --dir "$tmp/ws"
step bwrap --runs "$N" --dir "$tmp/ws"
step bwrap --runs "$N" --dir "$tmp/ws" --seccomp --cgroup "$bw_parent"
step crun --runs "$N" --dir "$tmp/ws"
step firejail --runs "$N" --dir "$fjdir"
step lib --runs "$N" --dir "$tmp/ws" --parent "$lib_parent"
step api --socket "$sock" --op create --prefix "$seq_prefix" --runs "$N" --clients 1
step api --socket "$sock" --op stop --prefix "$seq_prefix" --runs "$N" --clients 1
step api --socket "$sock" --op delete --prefix "$seq_prefix" --runs "$N" --clients 1

# Where the library's time goes: perf trace (tracepoints, light) of another lib run, split into phases.
if [ "${PHASES:-1}" = 1 ] && command -v perf >/dev/null && command -v python3 >/dev/null; then
        echo
        run_step perf trace -o "$tmp/trace.txt" \
                -e clone3,clone,pivot_root,seccomp,execve,sendto,exit_group -- \
                "$bench" lib --runs "${PHASE_RUNS:-30}" --dir "$tmp/ws" --parent "$lib_parent" >/dev/null
        python3 "$(dirname "$0")/sandbox-phases.py" "$tmp/trace.txt"
fi

echo
echo "## 2. $CONCURRENT sandboxes through the API, $CLIENTS clients in parallel"
step api --socket "$sock" --op create --prefix "$conc_prefix" --runs "$CONCURRENT" --clients "$CLIENTS"
sleep 2 # let every tmux server and shell settle before measuring idle memory
api http://localhost/v1/sandboxes >"$tmp/list.json"
running=$(jq "[.sandboxes[] | select(.name | startswith(\"$conc_prefix-\")) | select(.state == \"running\")] | length" "$tmp/list.json")
cg_bytes=$(jq "[.sandboxes[] | select(.name | startswith(\"$conc_prefix-\")) | .usage.memory_current] | add" "$tmp/list.json")
# RSS counts shared library pages once per process; PSS splits them between the processes sharing them.
read -r nproc_in rss_kib_sum pss_kib_sum < <(
        jq -r ".sandboxes[] | select(.name | startswith(\"$conc_prefix-\")) | .cgroup_path" "$tmp/list.json" |
                while read -r cg; do cat "$cg/cgroup.procs"; done |
                while read -r pid; do
                        awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} END {print r, p}' "/proc/$pid/smaps_rollup" 2>/dev/null
                done | awk '{n++; r+=$1; p+=$2} END {print n, r, p}')
echo "sandboxes running                  $running"
awk -v b="$cg_bytes" -v n="$running" 'BEGIN {printf "idle memory (cgroup)               %.2f MiB per sandbox (%.1f MiB total)\n", b/n/1048576, b/1048576}'
awk -v r="$rss_kib_sum" -v p="$pss_kib_sum" -v n="$running" -v k="$nproc_in" \
        'BEGIN {printf "processes inside                   %d (%.1f per sandbox)\nRSS of processes inside            %.2f MiB per sandbox\nPSS of processes inside            %.2f MiB per sandbox\n", k, k/n, r/n/1024, p/n/1024}'
echo "daemon RSS with $running sandboxes    $(rss_kib "$dpid") KiB"
step api --socket "$sock" --op stop --prefix "$conc_prefix" --runs "$CONCURRENT" --clients 1
step api --socket "$sock" --op delete --prefix "$conc_prefix" --runs "$CONCURRENT" --clients 1
echo "daemon RSS after deleting them     $(rss_kib "$dpid") KiB"
