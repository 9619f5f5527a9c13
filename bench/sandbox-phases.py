#!/usr/bin/env python3
# Splits isolate_sandbox_start() into phases from a `perf trace` of `sandbox-bench lib` (bench/sandbox.sh
# records it): per sandbox, the syscalls that mark each step's boundary, then the median and p95 of each
# phase over all sandboxes. perf trace uses tracepoints, so it slows the run far less than strace.
#   perf trace -o TRACE -e clone3,clone,pivot_root,seccomp,execve,sendto,exit_group -- \
#       sandbox-bench lib --runs 30 --dir DIR
#   bench/sandbox-phases.py TRACE
import re
import sys

# "T ( D ms): COMM/PID CALL(ARGS) = RET", or, when another line came in between, "T ( ): COMM/PID CALL(ARGS) ..."
# followed later by "T ( D ms): COMM/PID  ... [continued]: CALL()) = RET" with the same start time T.
ENTRY = re.compile(r"\s*([0-9.]+) \(\s*\): (.*?)/(\d+)\s+(\w+)\(.*\.\.\.\s*$")
UNTIMED = re.compile(r"\s*\? \(\s*\): (.*?)/(\d+)\s+\.\.\. \[continued\]: (\w+)\(\)\)\s+= (\S+)")
LINE = re.compile(r"\s*([0-9.]+) \(\s*([0-9.]*)(?: ms)?\s*\): (.*?)/(\d+)\s+(?:\.\.\. \[continued\]: )?(\w+)\((.*)\)\s+= (\S+)\s*$")

PHASES = [
    ("clone3 into new user/mnt/pid/net/uts/ipc namespaces", "clone_start", "clone_end"),
    ("parent: uid/gid maps, GO (v1: the child joins its cgroup)", "clone_end", "go"),
    ("child: rootfs assembly through fds + pivot_root", "go", "pivot"),
    ("child: caps, no_new_privs, seccomp load", "pivot", "seccomp"),
    ("init: fork + PATH search + exec tmux", "seccomp", "tmux_exec"),
    ("tmux new-session -d (client, server, session)", "tmux_exec", "ready"),
    ("  of which the utempter helper", "utempter_start", "utempter_end"),
    ("total, clone3 to READY", "clone_start", "ready"),
]


def pct(values, p):
    values = sorted(values)
    rank = max(1, min(len(values), int(p * len(values) + 0.999999)))
    return values[rank - 1]


def main(path):
    # sandbox-bench lib starts one sandbox at a time, so every event between two clone3 calls of the
    # driver belongs to the earlier sandbox (processes inside report namespace pids, useless for matching).
    sandboxes = []
    bench_pid = None
    # perf prints a call interrupted by another line in two halves, in either order: an entry with its
    # time ("T ( ): COMM/PID CALL(...) ...") and a continuation with the result, timed or "?".
    halves = {}  # (pid, call) -> ("entry", t) or ("result", comm, ret)
    for line in open(path, errors="replace"):
        e = ENTRY.match(line)
        u = UNTIMED.match(line)
        if e:
            key = (e.group(3), e.group(4))
            if halves.get(key, ("",))[0] != "result":
                halves[key] = ("entry", float(e.group(1)))
                continue
            _, comm, ret = halves.pop(key)
            t, dur, pid, call, args = float(e.group(1)), 0.0, key[0], key[1], ""
        elif u:
            comm, pid, call, ret = u.groups()
            if halves.get((pid, call), ("",))[0] != "entry":
                halves[(pid, call)] = ("result", comm, ret)
                continue
            t, dur, args = halves.pop((pid, call))[1], 0.0, ""
        else:
            m = LINE.match(line)
            if not m:
                continue
            t, dur, comm, pid, call, args, ret = m.groups()
            t, dur = float(t), float(dur or 0)
            halves.pop((pid, call), None)
        if call == "clone3" and comm == "sandbox-bench" and ret.isdigit() and ret != "0":
            bench_pid = pid
            sandboxes.append({"clone_start": t, "clone_end": t + dur, "init": ret})
            continue
        if not sandboxes:
            continue
        sb = sandboxes[-1]
        if pid == bench_pid:
            if call == "sendto" and "go" not in sb:
                sb["go"] = t
        elif pid == sb["init"]:
            if call == "pivot_root":
                sb["pivot"] = t + dur
            elif call == "seccomp" and "FILTER" in args and ret == "0":
                sb["seccomp"] = t + dur
            elif call == "sendto" and "go" in sb and "ready" not in sb:
                sb["ready"] = t
        elif call == "execve" and ret == "0" and comm not in ("bash", "utempter") and "seccomp" in sb and "tmux_exec" not in sb:
            sb["tmux_exec"] = t
        elif call == "execve" and comm == "utempter" and "utempter_start" not in sb:
            sb["utempter_start"] = t
        elif call == "exit_group" and comm == "utempter" and "utempter_end" not in sb:
            sb["utempter_end"] = t

    rows = [s for s in sandboxes if all(k in s for k in ("clone_end", "go", "pivot", "seccomp", "tmux_exec", "ready"))]
    print(f"phases of isolate_sandbox_start(), {len(rows)} sandboxes (perf trace; median and p95, ms)")
    for label, a, b in PHASES:
        vals = [s[b] - s[a] for s in rows if a in s and b in s]
        if vals:
            print(f"  {label:<52} {pct(vals, 0.5):7.2f} {pct(vals, 0.95):7.2f}   (n={len(vals)})")


if __name__ == "__main__":
    main(sys.argv[1])
