#!/usr/bin/env bash
# What a user sees on the command line (issue 9), with hyperfine, all in one run:
#   1. the loader's share: `pocketcoder --version` against /bin/true;
#   2. `pocketcoder sandbox run X -- true` (a session: request, 101, pipes over SCM_RIGHTS, exec, exit status);
#   3. `pocketcoder sandbox create X` (returns when tmux is ready; `sandbox rm X` in --prepare, untimed);
#   4. the cycle `pocketcoder sandbox create X && pocketcoder sandbox rm X` side by side with bubblewrap
#      starting tmux + bash in a comparable sandbox and killing it again.
# With BASE_BUILD (a build of an earlier commit, e.g. the one before this change) steps 1-3 run against it
# too, with its own daemon, for a before/after comparison on the same machine state.
#   RUNS=30 [CONFIG='sandbox_disk = none\n'] bench/cli-cycle.sh BUILD_DIR [BASE_BUILD_DIR]
# CONFIG: extra lines for the daemons' config (e.g. without the default 10G workspace disk image).
# hyperfine prints means; the p50 table at the end is computed from its JSON exports. Needs root and
# hyperfine and bwrap (apt-get install hyperfine bubblewrap). Everything it starts is removed
# again (trap).
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
        echo "bench/cli-cycle.sh: needs root (sandboxes, cgroups)" >&2
        exit 77
fi
for tool in hyperfine bwrap tmux; do
        command -v "$tool" >/dev/null || { echo "bench/cli-cycle.sh: needs $tool" >&2; exit 77; }
done
build=$(cd "${1:-build}" && pwd)
base=${2:+$(cd "$2" && pwd)}
RUNS=${RUNS:-30}
tmp=$(mktemp -d /tmp/pc-bench-cycle.XXXXXX)
name=cy$$
pids=()

cleanup() {
        set +e
        for label in new base; do
                [ -S "$tmp/$label/run/api.sock" ] || continue
                curl -sS -o /dev/null --unix-socket "$tmp/$label/run/api.sock" -X DELETE \
                        "http://localhost/v1/sandboxes/$name?purge=true"
        done
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
        for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
        rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# A daemon of build $2 in $tmp/$1, with a cgroup parent and uid range of its own.
start_daemon() {
        local label=$1 b=$2 uid_base=$3
        mkdir -p "$tmp/$label"
        printf 'cgroup_parent = pc-bench-%s-%s\nuid_range_base = %s\n%b' "$label" "$$" "$uid_base" "${CONFIG:-}" \
                >"$tmp/$label/conf"
        local d=$b/pocketcoderd/pocketcoderd
        [ -x "$d" ] || d=$b/daemon/pocketcoderd # builds before issue 9
        "$d" --config "$tmp/$label/conf" --state-dir "$tmp/$label/state" \
                --runtime-dir "$tmp/$label/run" --policy-dir "$tmp/$label/pol" --log-file "$tmp/$label/log" \
                --pid-file "$tmp/$label/pid" --daemonize
        pids+=("$(cat "$tmp/$label/pid")")
}

# Steps 1-3 against one build.
measure() {
        local label=$1 b=$2 cli sock
        cli=$b/cli/pocketcoder
        sock=$tmp/$label/run/api.sock
        export POCKETCODER_SOCKET=$sock
        echo "## $label: $b ($(ldd "$cli" | wc -l) shared objects in ldd pocketcoder)"
        hyperfine -N -w 5 -r "$RUNS" --export-json "$tmp/$label-start.json" \
                -n "/bin/true" "/bin/true" -n "pocketcoder --version ($label)" "$cli --version"
        "$cli" sandbox create "$name" >/dev/null
        hyperfine -N -w 3 -r "$RUNS" --export-json "$tmp/$label-run.json" \
                -n "sandbox run X -- true ($label)" "$cli sandbox run $name -- true"
        hyperfine -w 1 -r "$RUNS" --export-json "$tmp/$label-create.json" \
                --prepare "$cli sandbox rm $name >/dev/null 2>&1 || true" \
                -n "sandbox create X ($label)" "$cli sandbox create $name >/dev/null"
        "$cli" sandbox rm "$name" >/dev/null
        for _ in 1 2 3; do
                LD_DEBUG=statistics "$cli" --version 2>&1 >/dev/null | sed -n 's/.*total startup time in dynamic loader: /# loader ('"$label"'): /p'
        done
}

echo "# $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(tmux -V), bubblewrap $(bwrap --version | cut -d' ' -f2), RUNS=$RUNS"
start_daemon new "$build" 1342177280
if [ -n "$base" ]; then
        start_daemon base "$base" 1476395008
        measure base "$base"
        kill "${pids[1]}"
fi
measure new "$build"

echo "## the cycle a user sees, side by side"
ws=$tmp/bwrap-ws
mkdir -p "$ws"
bwrap_cycle="bwrap --unshare-user --unshare-pid --unshare-net --unshare-uts --unshare-ipc --unshare-cgroup \
--uid 1000 --gid 1000 --hostname $name --new-session --cap-drop ALL --ro-bind /usr /usr --symlink usr/bin /bin \
--symlink usr/sbin /sbin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --ro-bind /etc /etc --proc /proc \
--dev /dev --tmpfs /tmp --tmpfs /run --bind $ws /workspace --chdir /workspace --clearenv \
--setenv PATH /usr/bin:/bin --setenv HOME /workspace --setenv TERM xterm-256color -- \
sh -c 'tmux -S /run/tmux.sock new-session -d -s $name bash && tmux -S /run/tmux.sock kill-server'"
cli=$build/cli/pocketcoder
hyperfine -w 3 -r "$RUNS" --export-json "$tmp/cycle.json" \
        -n "pocketcoder sandbox create X && pocketcoder sandbox rm X" \
        "$cli sandbox create $name >/dev/null && $cli sandbox rm $name >/dev/null" \
        -n "bwrap: tmux + bash started, then killed" "$bwrap_cycle"
# p50, p95 and mean of every command, from the JSON exports.
python3 - "$tmp"/*.json <<'PY'
import json, statistics, sys
print("| command | p50 | p95 | mean | runs |\n|---|---:|---:|---:|---:|")
for path in sys.argv[1:]:
    for r in json.load(open(path))["results"]:
        t = sorted(r["times"])
        p95 = t[min(len(t) - 1, int(0.95 * len(t)))]
        print(f"| {r['command']} | {statistics.median(t) * 1e3:.1f} ms | {p95 * 1e3:.1f} ms | {r['mean'] * 1e3:.1f} ms | {len(t)} |")
PY
