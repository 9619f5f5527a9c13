#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Sandboxes through a real daemon: lifecycle over HTTP and the CLI, validation, limits in the cgroup files,
agent-token scoping, `sandbox run` (exit codes, exact bytes, stdin, --root, audit), `enter`, what a
sandbox must not see, re-adoption after kill -9 of the daemon, and cleanup of leftover cgroups."""
import hashlib
import json
import os
import secrets
import select
import signal
import sqlite3

from pclib import CLI, Daemon, Pty, Spec, Tap
from pclib import run_cmd

t = Tap()
if os.geteuid() != 0:
    t.skip("sandbox integration tests", "need root (namespaces, cgroups, uid ranges)")
    t.done()

spec = Spec()
# Sandbox names are host-wide (veth names, nft elements): a random prefix keeps runs apart.
P = "it" + secrets.token_hex(3)
# A uid range of our own, away from the default one other daemons on this host use.
d = Daemon(spec=spec, config="uid_range_base = 1610612736\n")
TMUX = ["tmux", "-S", "/run/tmux/agent.sock"]
made = set()
strays = []


def name(s):
    return f"{P}-{s}"


def api(method, path, body=None, token=None):
    return d.request(method, path, body, token=token, via="tcp" if token else "unix")


def create(n, **kw):
    r = api("POST", "/v1/sandboxes", dict(name=n, **kw))
    if r.status == 201:
        made.add(n)
    return r


def cli(*args, token=None, input=None):
    """The CLI with bytes in and out (run's output must be exact)."""
    return d.cli(*args, token=token, input=input, text=False)


def run(n, *cmd, root=False, input=None):
    return cli("sandbox", "run", n, *(["--root"] if root else []), "--", *cmd, input=input)


def show(n):
    return api("GET", f"/v1/sandboxes/{n}")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie nobody reaps is dead for our purposes.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def wait_dead(pid, timeout=10):
    """Waits on a pidfd (an event, not polling) until pid has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def cgroup_dir(pid, controller):
    """The host directory of pid's cgroup for a v1 controller, or its v2 group (controller None)."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fields, rfields = left.split(), right.split()
            mounts.append((fields[4], rfields[0], rfields[2].split(",")))
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller is None and ctrls == "":
                for mp, fstype, _ in mounts:
                    if fstype == "cgroup2":
                        return mp + path
            if controller and controller in ctrls.split(","):
                for mp, fstype, opts in mounts:
                    if fstype == "cgroup" and controller in opts:
                        return mp + path
    return None


def cgroup_dirs(pid):
    """Every host directory of pid's cgroups, one per mounted hierarchy."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fields, rfields = left.split(), right.split()
            if rfields[0] in ("cgroup", "cgroup2"):
                mounts.append((fields[4], rfields[0], set(rfields[2].split(","))))
    out = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for mp, fstype, opts in mounts:
                if (fstype == "cgroup2" and ctrls == "") or (fstype == "cgroup" and ctrls and set(ctrls.split(",")) <= opts):
                    out.append(mp + path)
    return out


def read(path):
    with open(path) as f:
        return f.read().strip()


def audit_rows(action, subject):
    db = sqlite3.connect(f"file:{d.state}/state.db?mode=ro", uri=True)
    try:
        return db.execute("SELECT actor, detail FROM audit WHERE action = ? AND subject = ? ORDER BY seq",
                          (action, subject)).fetchall()
    finally:
        db.close()


try:
    d.start()
    A, B = name("a"), name("b")

    # ---- create ----
    r = create(A, memory="256M", pids=100, cpus=1.5, policy="default")
    t.eq(r.status, 201, "POST /v1/sandboxes creates a sandbox")
    sa = r.json or {}
    t.ok(sa.get("state") == "running" and isinstance(sa.get("init_pid"), int) and sa.get("tmux_session") == A,
         "a new sandbox is running, with an init pid and a tmux session named after it", r)
    p = run(A, *TMUX, "has-session", "-t", A)
    t.eq(p.returncode, 0, "tmux is ready when create returns (has-session exits 0)")

    # ---- validation: 400/409 and nothing left behind ----
    for bad, why in (("Bad_Name", "uppercase and _"), ("-x", "leading -"), ("a" * 64, "64 characters"),
                     ("x-", "trailing -"), ("", "empty"), ("a/b", "slash")):
        r = create(bad)
        t.eq((r.status, (r.json or {}).get("error", {}).get("code")), (400, "invalid_field"),
             f"name {why} is refused with 400")
    r = create(A)
    t.eq((r.status, r.json["error"]["code"] if r.json else None), (409, "exists"), "creating an existing name is 409")
    for field, value, why in (("policy", "no-such-policy", "unknown policy"), ("memory", "lots", "memory not a size"),
                              ("memory", "1K", "memory below 16M"), ("memory", -5, "negative memory"),
                              ("memory", "8388608T", "memory of 2^63 bytes, which would be stored negative"),
                              ("pids", "many", "pids not an integer"), ("pids", 0, "pids 0"),
                              ("pids", 3, "pids below 8"), ("cpus", 0, "cpus 0"), ("cpus", "x", "cpus not a number"),
                              ("cpus", -1, "negative cpus"), ("network", "wifi", "unknown network"),
                              ("rootfs", "../etc", "rootfs path"), ("colour", "blue", "unknown field")):
        r = create(name("bad"), **{field: value})
        t.eq(r.status, 400, f"create with {why} is 400")
    r = api("GET", "/v1/sandboxes")
    t.eq(sorted(s["name"] for s in r.json["sandboxes"] if s["name"].startswith(P)), [A],
         "refused creates left no sandbox behind")
    t.ok(not os.path.exists(f"{d.state}/workspaces/{name('bad')}"), "refused creates left no workspace behind")

    # ---- the CLI: create, help, usage errors ----
    p = cli("sandbox", "create", B, "--network", "loopback", "--memory", "128M", "--pids", "64")
    if p.returncode == 0:
        made.add(B)
    t.ok(p.returncode == 0 and B.encode() in p.stdout and b"running" in p.stdout, "sandbox create via the CLI",
         p.stdout + p.stderr)
    for sub in ("create", "list", "show", "stop", "start", "rm", "run"):
        p = cli("sandbox", sub, "--help")
        t.ok(p.returncode == 0 and b"Usage:" in p.stdout, f"sandbox {sub} --help explains itself", p.stderr)
    p = cli("enter", "--help")
    t.ok(p.returncode == 0 and b"Usage:" in p.stdout and b"root" in p.stdout, "enter --help explains itself")
    for args, why in ((["sandbox"], "no subcommand"), (["sandbox", "frob"], "unknown subcommand"),
                      (["sandbox", "show"], "missing NAME"), (["sandbox", "show", "Bad_Name"], "invalid NAME"),
                      (["sandbox", "create", name("c"), "--pids", "many"], "--pids not a number"),
                      (["sandbox", "create", name("c"), "--cpus", "x"], "--cpus not a number"),
                      (["sandbox", "run", A], "run without a command"), (["enter"], "enter without NAME")):
        p = cli(*args)
        t.eq(p.returncode, 2, f"usage error ({why}) exits 2")
    p = cli("sandbox", "create", name("c"), "--network", "wifi")
    t.ok(p.returncode == 1 and b"network" in p.stderr, "a refused create exits 1 and names the field", p.stderr)
    p = cli("sandbox", "show", name("nope"))
    t.ok(p.returncode == 1 and b"does not exist" in p.stderr, "show of an unknown sandbox exits 1", p.stderr)

    # ---- list and show ----
    p = cli("sandbox", "list")
    lines = p.stdout.decode().splitlines()
    t.ok(p.returncode == 0 and lines and lines[0].split() == ["NAME", "STATE", "POLICY", "NETWORK", "MEMORY", "PIDS",
                                                               "CPUS", "INIT-PID"], "sandbox list prints a table",
         p.stdout)
    row = next((ln.split() for ln in lines if ln.startswith(A + " ")), [])
    t.eq(row, [A, "running", "default", "none", "256M", "100", "1.5", str(sa.get("init_pid"))],
         "list shows state, policy, network and the limits as requested")
    cols = [lines[0].index(h) for h in ("STATE", "POLICY", "MEMORY", "INIT-PID")]
    t.ok(all(ln[c - 2:c] == "  " for ln in lines[1:] for c in cols), "list columns are aligned", p.stdout)
    p = cli("--json", "sandbox", "list")
    t.ok(p.returncode == 0 and {A, B} <= {s["name"] for s in json.loads(p.stdout)["sandboxes"]},
         "sandbox list --json is the API's JSON")

    s = show(A).json
    t.eq((s["limits"]["memory_max"], s["limits"]["pids_max"], s["limits"]["cpus"], s["network"], s["rootfs"]),
         (256 << 20, 100, 1.5, "none", "host"), "show has the limits as requested")
    ws = s["workspace_host_path"]
    st = os.stat(ws) if os.path.isdir(ws) else None
    t.ok(st is not None and (st.st_uid, st.st_gid) == (s["uid_base"] + 1000, s["uid_base"] + 1000),
         "the workspace exists on the host and belongs to uid_base+1000 (the agent)", f"{ws}: {st}")
    t.ok(s["uid_base"] >= 1610612736 and s["uid_base"] % 65536 == 0, "uid_base comes from the configured range",
         s["uid_base"])
    t.ok(s["cgroup_path"] and os.path.isdir(s["cgroup_path"]), "cgroup_path exists", s["cgroup_path"])
    init = s["init_pid"]
    uids = [ln.split()[1:] for ln in read(f"/proc/{init}/status").splitlines() if ln.startswith("Uid:")][0]
    t.ok(all(int(u) == s["uid_base"] for u in uids), "init runs as the sandbox's root, an unprivileged host uid",
         uids)
    v1 = os.path.exists(os.path.join(s["cgroup_path"], "memory.limit_in_bytes"))
    if v1:
        mem = read(os.path.join(cgroup_dir(init, "memory"), "memory.limit_in_bytes"))
        pids = read(os.path.join(cgroup_dir(init, "pids"), "pids.max"))
        cpu = read(os.path.join(cgroup_dir(init, "cpu"), "cpu.cfs_quota_us")) + " " + \
            read(os.path.join(cgroup_dir(init, "cpu"), "cpu.cfs_period_us"))
    else:
        g = cgroup_dir(init, None)
        mem, pids, cpu = read(f"{g}/memory.max"), read(f"{g}/pids.max"), read(f"{g}/cpu.max")
    t.eq((mem, pids, cpu), (str(256 << 20), "100", "150000 100000"),
         f"the kernel enforces the limits (cgroup {'v1' if v1 else 'v2'} files)")
    t.ok(isinstance(s["usage"], dict) and s["usage"]["pids_current"] >= 2 and s["usage"]["memory_current"] > 0,
         "show reports usage of a running sandbox", s["usage"])
    p = cli("sandbox", "show", A)
    kv = dict(ln.split(":", 1) for ln in p.stdout.decode().splitlines() if ":" in ln)
    kv = {k: v.strip() for k, v in kv.items()}
    t.ok(p.returncode == 0 and kv.get("state") == "running" and kv.get("workspace") == ws and
         kv.get("cgroup") == s["cgroup_path"] and kv.get("memory limit") == "256M" and kv.get("init pid") == str(init)
         and "memory" in kv and "created" in kv and "started" in kv,
         "sandbox show prints key: value lines with usage, paths and times", p.stdout)
    p = cli("sandbox", "show", A, "--json")
    t.ok(p.returncode == 0 and json.loads(p.stdout)["workspace_host_path"] == ws, "sandbox show NAME --json")

    # ---- sandbox run ----
    p = run(A, "sh", "-c", "exit 7")
    t.eq(p.returncode, 7, "sandbox run exits with the command's status")
    p = run(A, "sh", "-c", "kill -9 $$")
    t.eq(p.returncode, 137, "a command killed by SIGKILL gives 128+9")
    p = run(A, "sh", "-c", r"printf 'out\000\377\n'; printf 'err\001\n' >&2")
    t.eq((p.stdout, p.stderr), (b"out\x00\xff\n", b"err\x01\n"), "stdout and stderr bytes are exact and separate")
    p = run(A, "cat", input=b"hi\n")
    t.eq((p.returncode, p.stdout), (0, b"hi\n"), "stdin is piped (echo hi | sandbox run X -- cat)")
    big = os.urandom(1 << 20)
    p = run(A, "sha256sum", input=big)
    t.eq(p.stdout.split()[:1], [hashlib.sha256(big).hexdigest().encode()], "1 MiB of stdin arrives intact")
    p = run(A, "id", "-u", root=True)
    t.eq(p.stdout, b"0\n", "--root runs as uid 0 inside")
    p = run(A, "id", "-u")
    t.eq(p.stdout, b"1000\n", "without --root the command runs as the agent (1000)")
    p = run(A, "sh", "-c", "grep -E '^Cap(Eff|Prm|Inh|Amb)' /proc/self/status | awk '{print $2}' | sort -u")
    t.eq(p.stdout, b"0000000000000000\n", "the agent has no capabilities")
    p = run(A, "env")
    t.eq(sorted(ln.split("=")[0] for ln in p.stdout.decode().splitlines()), ["HOME", "LANG", "PATH", "TERM", "USER"],
         "the environment is clean")
    p = run(A, "no-such-command-xyz")
    t.ok(p.returncode == 1 and b"no-such-command-xyz" in p.stderr, "a missing command is reported", p.stderr)
    rows = audit_rows("sandbox.run", A)
    t.ok(any(json.loads(det).get("argv") == ["sh", "-c", "exit 7"] for _, det in rows),
         "every run is recorded in the audit ledger with its argv", rows[-3:])
    t.ok(any(json.loads(det).get("root") is True for _, det in rows), "the audit entry records --root")
    p = run(A, "sh", "-c", "echo made-inside > /workspace/inside.txt")
    st = os.stat(os.path.join(ws, "inside.txt"))
    t.eq(st.st_uid, s["uid_base"] + 1000, "a file the agent writes is owned by uid_base+1000 on the host")
    p = run_cmd(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CLI, "--socket", d.socket,
               "sandbox", "run", A, "--", "true"], text=True)
    t.ok(p.returncode == 1 and "Permission denied" in p.stderr,
         "sandbox run: a caller who is neither root nor in the socket's group cannot reach the daemon", p.stderr)

    # ---- enter (on a pty of the test's own, typed into as an admin would) ----
    # tmux takes keys that arrive within assume-paste-time (1 ms) of each other for a paste and then runs no
    # key binding: a test types in bursts, faster than any person, so that time-based guess is turned off.
    t.eq(run(A, *TMUX, "set", "-g", "assume-paste-time", "0").returncode, 0, "tmux options can be set")
    term = Pty([CLI, "enter", A], env=d.cli_env(TERM="xterm"))
    try:
        term.send(b"echo ent''ered-$((6*7))\r")
        typed = term.expect(b"entered-42", timeout=60)
        term.send(b"\x02d")  # the tmux prefix, then d: detach
        detached = term.expect(f"[detached (from session {A})]".encode(), timeout=60)
        status = term.wait(timeout=60)
    finally:
        term.close()
    t.ok(typed and detached and status == 0, "enter attaches to the sandbox's tmux session; detaching exits 0",
         f"typed={typed} detached={detached} status={status} output={term.out[-400:]!r}")
    p = run(A, *TMUX, "capture-pane", "-p", "-t", A)
    t.ok(b"entered-42" in p.stdout, "what was typed in enter ran in the agent's tmux pane", p.stdout)
    t.ok(len(audit_rows("sandbox.enter", A)) == 1, "enter is recorded in the audit ledger")
    p = cli("enter", A, input=b"")
    t.ok(p.returncode == 1 and b"not a terminal" in p.stderr, "enter without a terminal says so", p.stderr)
    term = Pty(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CLI, "--socket", d.socket, "enter", A])
    try:
        status = term.wait(timeout=60)
    finally:
        term.close()
    t.ok(status == 1 and b"Permission denied" in term.out,
         "enter: a caller who is neither root nor in the socket's group cannot reach the daemon", term.out)

    # ---- what a sandbox must not see or change ----
    p = run(A, "cat", "/etc/shadow")
    t.ok(p.returncode != 0 and not p.stdout, "/etc/shadow is not readable inside", p.stderr)
    p = run(A, "cat", "/proc/1/environ")
    t.ok(p.returncode != 0 and not p.stdout, "the agent cannot read init's environment", p.stderr)
    p = run(A, "touch", "/usr/pwned")
    t.ok(p.returncode != 0 and b"Read-only file system" in p.stderr, "writes to /usr fail with EROFS", p.stderr)
    p = run(A, "touch", "/usr/pwned", root=True)
    t.ok(p.returncode != 0 and b"Read-only file system" in p.stderr, "even sandbox root cannot write /usr", p.stderr)
    t.ok(not os.path.exists("/usr/pwned"), "nothing appeared in the host's /usr")
    # The host's /run/pocketcoder is not there: /run/pocketcoder inside is the sandbox's own agent socket
    # directory (test_agent_socket.py), with nothing of the daemon's runtime directory in it.
    p = run(A, "ls", "-A", "/run/pocketcoder", root=True)
    t.eq(p.stdout, b"api.sock\n", "/run/pocketcoder inside holds only the sandbox's agent socket")
    for path in (d.state, d.run, d.tmp, os.path.join(d.state, "state.db"), "/root"):
        p = run(A, "ls", "-d", path, root=True)
        t.ok(p.returncode != 0, f"{path} is absent inside", p.stdout)
    # /run/pocketcoder inside is the sandbox's own: at most the agent's API socket, nothing of the host's.
    p = run(A, "ls", "-A", "/run/pocketcoder", root=True)
    t.ok(p.returncode == 0 and set(p.stdout.split()) <= {b"api.sock"}, "/run/pocketcoder inside holds at most api.sock",
         p.stdout)
    p = run(A, "sh", "-c", "ls /dev")
    t.ok(not any(x.startswith(("sd", "vd", "nvme", "loop")) for x in p.stdout.decode().split()),
         "no block devices in /dev", p.stdout)
    p = run(A, "sh", "-c", "echo -1000 > /proc/self/oom_score_adj")
    t.ok(p.returncode != 0, "the agent cannot lower its oom_score_adj", p.stderr)
    p = run(A, "hostname")
    t.eq(p.stdout, (A + "\n").encode(), "the hostname is the sandbox's name")

    # ---- agent tokens are scoped to one sandbox ----
    agent = api("POST", "/v1/tokens", {"role": "agent", "sandbox": A}).json["token"]
    t.eq(api("GET", f"/v1/sandboxes/{A}", token=agent).status, 200, "agent token: GET its own sandbox is 200")
    t.eq(api("GET", f"/v1/sandboxes/{B}", token=agent).status, 403, "agent token: GET another sandbox is 403")
    r = api("GET", "/v1/sandboxes", token=agent)
    t.eq([x["name"] for x in r.json["sandboxes"]], [A], "agent token: list shows only its own sandbox")
    t.eq(api("POST", "/v1/sandboxes", {"name": name("x")}, token=agent).status, 403, "agent token: create is 403")
    for method, path in (("DELETE", f"/v1/sandboxes/{A}"), ("POST", f"/v1/sandboxes/{A}/stop"),
                         ("POST", f"/v1/sandboxes/{A}/start")):
        t.eq(api(method, path, token=agent).status, 403, f"agent token: {method} {path.replace(A, 'OWN')} is 403")
    r = api("POST", f"/v1/sandboxes/{A}/sessions", {"kind": "run", "argv": ["id"]}, token=agent)
    t.eq(r.status, 403, "agent token: sessions (run/enter) is 403")
    p = cli("sandbox", "list", token=agent)
    t.ok(p.returncode == 0 and A.encode() in p.stdout and B.encode() not in p.stdout, "the CLI with an agent token",
         p.stdout)
    p = cli("sandbox", "rm", A, token=agent)
    t.ok(p.returncode == 1 and b"403" in p.stderr, "the CLI reports 403 and exits 1", p.stderr)
    for body, why in (({"kind": "shell"}, "unknown kind"), ({"kind": "run", "argv": ["id", 1]}, "argv not all strings"),
                      ({"kind": "enter", "root": "yes"}, "root not a boolean")):
        r = api("POST", f"/v1/sandboxes/{A}/sessions", body)
        t.eq((r.status, (r.json or {}).get("error", {}).get("code")), (400, "invalid_field"), f"sessions: {why} is 400")

    # ---- stop and start ----
    old_init = show(A).json["init_pid"]
    r = api("POST", f"/v1/sandboxes/{A}/stop")
    t.ok(r.status == 200 and r.json["state"] == "stopped" and r.json["init_pid"] is None and r.json["usage"] is None,
         "stop: state stopped, no init pid", r)
    t.ok(wait_dead(old_init) and not alive(old_init), "stop: the init process is gone")
    t.ok(os.path.exists(os.path.join(ws, "inside.txt")), "stop keeps the workspace")
    t.eq(api("POST", f"/v1/sandboxes/{A}/stop").status, 200, "stop is idempotent")
    r = api("POST", f"/v1/sandboxes/{A}/sessions", {"kind": "run", "argv": ["true"]})
    t.eq(r.status, 409, "sessions on a stopped sandbox is 409")
    p = run(A, "true")
    t.ok(p.returncode == 1 and b"not running" in p.stderr, "sandbox run on a stopped sandbox exits 1", p.stderr)
    p = cli("sandbox", "start", A)
    s = show(A).json
    t.ok(p.returncode == 0 and s["state"] == "running" and s["init_pid"] not in (None, old_init),
         "start: running again with a new init", s)
    p = run(A, "cat", "/workspace/inside.txt")
    t.eq(p.stdout, b"made-inside\n", "start: the workspace is the same")
    p = run(A, *TMUX, "has-session", "-t", A)
    t.eq(p.returncode, 0, "start: tmux is ready")
    p = cli("sandbox", "stop", A)
    t.ok(p.returncode == 0 and show(A).json["state"] == "stopped", "sandbox stop via the CLI", p.stderr)
    t.eq(api("POST", f"/v1/sandboxes/{A}/start").json["state"], "running", "POST start")

    # ---- delete ----
    with open(os.path.join(show(B).json["workspace_host_path"], "keep.txt"), "w") as f:
        f.write("kept\n")
    b_init = show(B).json["init_pid"]
    b_ws = show(B).json["workspace_host_path"]
    b_cg = show(B).json["cgroup_path"]
    b_img = (show(B).json["disk"] or {}).get("image_host_path")
    r = api("DELETE", f"/v1/sandboxes/{B}")
    t.eq(r.status, 204, "deleting a running sandbox is 204")
    t.ok(wait_dead(b_init) and not alive(b_init), "delete stopped the sandbox first")
    t.ok(not os.path.exists(b_cg), "delete removed the cgroup", b_cg)
    t.eq(show(B).status, 404, "a deleted sandbox is 404")
    t.eq(api("DELETE", f"/v1/sandboxes/{B}").status, 404, "deleting twice is 404")
    # A workspace on a disk image of its own is kept as the image (unmounted from the host's tree).
    t.ok(os.path.exists(b_img) if b_img else os.path.exists(os.path.join(b_ws, "keep.txt")),
         "delete keeps the workspace", b_img)
    r = create(B)
    p = run(B, "cat", "/workspace/keep.txt")
    t.ok(r.status == 201 and p.stdout == b"kept\n", "a re-created sandbox finds its kept workspace", p.stderr)
    t.eq(api("DELETE", f"/v1/sandboxes/{B}?purge=maybe").status, 400, "purge must be a boolean")
    p = cli("sandbox", "rm", B, "--purge")
    t.ok(p.returncode == 0 and not os.path.exists(b_ws) and not (b_img and os.path.exists(b_img)),
         "rm --purge removes the workspace", p.stderr)
    made.discard(B)

    # ---- daemon restart: kill -9, adoption, a sandbox that died meanwhile ----
    R = [name(f"r{i}") for i in range(5)]
    for n in R:
        create(n)
    before = {}
    for n in R:
        run(n, *TMUX, "new-window", "-d", "-t", n, "sleep 1000")
        s = show(n).json
        p = run(n, *TMUX, "list-windows", "-t", n, "-F", "#{window_index}:#{pane_current_command}")
        before[n] = (s["init_pid"], s["init_starttime"], p.stdout)
    t.ok(all(st["state"] == "running" for st in (show(n).json for n in R)) and
         all(b"sleep" in v[2] and len(v[2].splitlines()) == 2 for v in before.values()),
         "5 running sandboxes, each with a second tmux window running sleep", before)
    d.kill9()
    victim = R[2]
    os.kill(before[victim][0], signal.SIGKILL)
    wait_dead(before[victim][0])
    t.ok(all(alive(before[n][0]) for n in R if n != victim), "the sandboxes outlive kill -9 of the daemon")
    d.start()
    for n in R:
        s = show(n).json
        if n == victim:
            t.ok(s["state"] == "stopped" and s["init_pid"] is None, "a sandbox killed meanwhile shows as stopped", s)
            continue
        p = run(n, *TMUX, "list-windows", "-t", n, "-F", "#{window_index}:#{pane_current_command}")
        t.ok(s["state"] == "running" and s["init_pid"] == before[n][0] and s["init_starttime"] == before[n][1]
             and p.stdout == before[n][2],
             f"{n} was re-adopted: same init, its tmux windows untouched", (s, p.stdout, before[n]))
    t.ok("re-adopted" in d.logtext(), "the daemon logs the re-adoption")
    r = api("POST", f"/v1/sandboxes/{victim}/start")
    t.eq((r.status, (r.json or {}).get("state")), (200, "running"), "the dead sandbox starts again")

    # An init that dies while the daemon runs is noticed through its pidfd, with no request asking.
    pid = r.json["init_pid"]
    os.kill(pid, signal.SIGKILL)
    wait_dead(pid)
    line = f"sandbox {victim}: init (pid {pid}) exited"
    seen = False
    for _ in range(250):  # bounded: the daemon logs it within milliseconds
        if line in d.logtext():
            seen = True
            break
        select.select([], [], [], 0.02)
    t.ok(seen, "the daemon notices a dead init by itself (pidfd event) and logs it", d.logtext()[-600:])
    db = sqlite3.connect(os.path.join(d.state, "state.db"))
    state = db.execute("SELECT state FROM sandboxes WHERE name = ?", (victim,)).fetchone()
    db.close()
    t.eq(state, ("stopped",), "and records it as stopped in the state database")
    r = api("POST", f"/v1/sandboxes/{victim}/start")
    t.eq((r.status, (r.json or {}).get("state")), (200, "running"), "it starts again")

    # ---- leftovers: a stray cgroup under our parent is removed at start ----
    s = show(A).json
    # Every hierarchy the daemon uses (v1: memory, pids, cpu, cpuacct, each possibly its own mount).
    parents = {os.path.dirname(x) for x in cgroup_dirs(s["init_pid"]) if x.endswith(f"/{s['cgroup_parent']}/{A}")}
    stray = name("stray")
    d.stop()
    for parent in sorted(parents):
        path = os.path.join(parent, stray)
        os.mkdir(path)
        strays.append(path)
    t.ok(len(strays) >= (3 if v1 else 1) and all(os.path.isdir(x) for x in strays),
         "a stray cgroup is made in every hierarchy the daemon uses", strays)
    d.start()
    t.ok(not any(os.path.exists(x) for x in strays), "the daemon removes leftover cgroups at start", strays)
    t.ok(show(A).json["init_pid"] == s["init_pid"], "a clean daemon stop leaves sandboxes running for re-adoption")

    t.ok(not spec.errors, f"all {spec.checked} responses validate against api/openapi.yaml", "\n".join(spec.errors[:20]))
finally:
    # Everything we made goes, even after a failure.
    try:
        if not d.pid:
            d.start()
        for n in sorted(made | {name(f"r{i}") for i in range(5)}):
            api("DELETE", f"/v1/sandboxes/{n}?purge=true")
    except Exception as e:  # noqa: BLE001 - cleanup must go on
        print(f"# cleanup: {e}")
    if t.failed:
        for line in d.logtext().splitlines()[-40:]:
            print(f"# daemon: {line}")
    for x in strays:
        try:
            os.rmdir(x)
        except OSError:
            pass
    d.cleanup()
t.done()
