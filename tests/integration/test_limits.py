#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Resource limits of a sandbox created by the daemon, tested from inside as the agent: it cannot exceed its
memory (the hog dies, init and tmux live), fork past its pids limit, or touch cgroup files. Also in suite
'cgroup2': tests/run runs it again under a cgroup-v2-only kernel. (Network isolation: test_network.py.)"""
import os
import secrets

from pclib import Daemon, Spec, Tap

t = Tap()
if os.geteuid() != 0:
    t.skip("sandbox limit tests", "need root (namespaces, cgroups, uid ranges)")
    t.done()

spec = Spec()
P = "lim" + secrets.token_hex(3)
d = Daemon(spec=spec, config="uid_range_base = 1879048192\nnofile_max = 512\ncpu_weight = 42\n")
TMUX = ["tmux", "-S", "/run/tmux/agent.sock"]


def api(method, path, body=None):
    return d.request(method, path, body, via="unix")


create, run = d.create_sandbox, d.sandbox_run
try:
    d.start()

    # ---- memory: a hog is OOM-killed inside; init and tmux survive ----
    mem = f"{P}-mem"
    r = create(mem, memory="64M")
    t.eq(r.status, 201, "sandbox with a 64M memory limit")
    init = r.json["init_pid"]
    # One 300 MB "line" (no newline in /dev/zero): tail -n 1 must hold all of it, which 64M cannot.
    p = run(mem, "sh", "-c", "head -c 300000000 /dev/zero | tail -n 1 > /dev/null; echo status $?")
    t.ok("status 137" in p.stdout, "the memory hog is killed (SIGKILL by the OOM killer)", p.stdout + p.stderr)
    s = api("GET", f"/v1/sandboxes/{mem}").json
    t.ok(s["state"] == "running" and s["init_pid"] == init, "the sandbox's init survives the OOM kill", s)
    t.ok(s["usage"]["oom_kills"] >= 1, "the OOM kill is counted in the sandbox's usage", s["usage"])
    t.ok(s["usage"]["memory_peak"] <= 64 * 1024 * 1024, "memory never exceeded the limit", s["usage"])
    t.eq(run(mem, *TMUX, "has-session", "-t", mem).returncode, 0, "tmux survives the OOM kill")

    # ---- the daemon-wide limits: open files, /tmp and /dev/shm sizes, CPU weight, OOM scores ----
    s = api("GET", f"/v1/sandboxes/{mem}").json
    t.eq((s["limits"]["nofile_max"], s["limits"]["cpu_weight"], s["limits"]["tmpfs_size"]), (512, 42, 16 << 20),
         "GET shows nofile_max and cpu_weight from the config and tmpfs_size = memory / 4")
    p = run(mem, "sh", "-c", "ulimit -Hn; ulimit -Sn; ulimit -Hn 513 2>/dev/null && echo raised; "
            "python3 -c 'import os\nn = 0\ntry:\n  while True: os.open(\"/dev/null\", 0); n += 1\n"
            "except OSError as e: print(n < 512, e.errno)'")
    t.eq(p.stdout, "512\n512\nTrue 24\n", "RLIMIT_NOFILE is 512 hard and soft: EMFILE past it, no raising")
    p = run(mem, "sh", "-c", "for d in /tmp /dev/shm; do dd if=/dev/zero of=$d/fill bs=1M count=20 2>&1 | "
            "grep -o 'No space left'; df -B1 --output=size $d | tail -1 | tr -d ' '; rm -f $d/fill; done")
    t.eq(p.stdout, "No space left\n16777216\n" * 2, "/tmp and /dev/shm are 16M (64M / 4): ENOSPC, no OOM kill")
    p = run(mem, "sh", "-c", "cat /proc/1/oom_score_adj /proc/self/oom_score_adj")
    lines = p.stdout.split()
    t.ok(len(lines) == 2 and int(lines[0]) < int(lines[1]) == 500,
         "the agent's processes are the OOM killer's choice (500), init is below them", p.stdout)
    cg = s["cgroup_path"]
    if "/memory/" in cg:
        weight = open(cg.replace("/memory/", "/cpu/") + "/cpu.shares").read().strip()
        t.eq(weight, str(42 * 1024 // 100), "v1: the sandbox's cpu.shares is cpu_weight * 1024 / 100")
    else:
        weight = open(cg + "/cpu.weight").read().strip()
        t.eq(weight, "42", "v2: the sandbox's cpu.weight is the config's cpu_weight")

    # ---- pids: a fork bomb stops at the limit ----
    pids = f"{P}-pids"
    r = create(pids, pids=32)
    t.eq(r.status, 201, "sandbox with a 32 pids limit")
    # The sleepers let go of the output pipe, so that the command returns as soon as the shell gives up.
    p = run(pids, "sh", "-c",
            "n=0; while [ $n -lt 100 ]; do sleep 30 </dev/null >/dev/null 2>&1 & n=$((n+1)); done; echo spawned",
            timeout=60)
    t.ok(p.returncode != 0 or "spawned" not in p.stdout or "fork" in p.stderr.lower(),
         "forking 100 processes fails at the limit", p.stdout + p.stderr)
    t.ok("Resource temporarily unavailable" in p.stderr or "fork" in p.stderr.lower() or "Cannot" in p.stderr,
         "fork reports EAGAIN", p.stderr)
    s = api("GET", f"/v1/sandboxes/{pids}").json
    t.ok(s["usage"]["pids_current"] <= 32, f"never more than 32 tasks (now {s['usage']['pids_current']})", s["usage"])
    t.eq(s["init_pid"], r.json["init_pid"], "init survives the fork bomb")
    api("POST", f"/v1/sandboxes/{pids}/stop")
    t.eq(api("POST", f"/v1/sandboxes/{pids}/start").status, 200, "a sandbox stopped after a fork bomb starts again")

    # ---- cgroup files are out of reach ----
    p = run(mem, "sh", "-c", "ls /sys/fs/cgroup; cat /proc/self/cgroup")
    t.ok("No such file" in p.stderr, "/sys/fs/cgroup does not exist inside", p.stdout + p.stderr)
    p = run(mem, "sh", "-c", "mkdir -p /tmp/cg && mount -t cgroup2 none /tmp/cg && echo mounted")
    t.ok("mounted" not in p.stdout, "the agent cannot mount a cgroup filesystem", p.stdout + p.stderr)
    p = run(mem, "sh", "-c", "mount -t cgroup -o memory none /tmp/cg && echo mounted")
    t.ok("mounted" not in p.stdout, "nor a v1 cgroup hierarchy", p.stdout + p.stderr)

    t.ok(not spec.errors, f"all {spec.checked} responses validate against api/openapi.yaml", "\n".join(spec.errors[:20]))
finally:
    d.cleanup()
t.done()
