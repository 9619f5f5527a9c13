#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Sessions (`sandbox run`, `enter`) through the daemon, attacked from inside the sandbox as in issue 9:
(1) a process the agent left behind steals the run's stdin and stdout with pidfd_getfd, writes OSC 52 while the
session runs and tries to read what the admin types after it ended; (2) through enter, the agent turns on tmux's
set-clipboard, allow-passthrough and set-titles and prints OSC 52, OSC 0 and DCS strings. The test's pty is the
admin's terminal: none of those bytes may reach it. Also: a session whose start cannot be audited does not
start, the end is audited with the status, sessions work for a member of the socket's group and are refused on
TCP, and the CLI links none of the sandbox libraries."""
import json
import os
import secrets
import select
import shutil
import sqlite3
import subprocess

from pclib import CLI, Daemon, Pty, Spec, Tap
from pclib import run_cmd

t = Tap()
if os.geteuid() != 0:
    t.skip("session tests", "need root (namespaces, cgroups, uid ranges)")
    t.done()

# A member of the socket's group is a local admin: nogroup (65534) here, so that setpriv can become one.
d = Daemon(spec=Spec(), config="uid_range_base = 1879048192\nsocket_group = nogroup\n")
A = "se" + secrets.token_hex(3)
TMUX = ["tmux", "-S", "/run/tmux/agent.sock"]
CONTROL = (b"\x1b]", b"\x1bP", b"\x1b_", b"\x1b^", b"\x1bX", b"\x9d", b"\x90", b"\xc2\x9d")

ATTACKER = r'''
import ctypes, json, os, select, sys
libc = ctypes.CDLL(None, use_errno=True)
def getfd(pidfd, fd):
    r = libc.syscall(438, pidfd, fd, 0)  # pidfd_getfd
    if r < 0:
        raise OSError(ctypes.get_errno(), "pidfd_getfd")
    return r
res = {}
out = os.open("/workspace/result.fifo", os.O_WRONLY)
try:
    # The victim: the session's shell, blocked until we release it.
    while True:
        victims = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()
                   and b"go.fifo" in open(f"/proc/{p}/cmdline", "rb").read()]
        if victims:
            break
        select.select([], [], [], 0.01)
    pidfd = os.pidfd_open(int(victims[0]))
    fd0, fd1 = getfd(pidfd, 0), getfd(pidfd, 1)
    res["stolen"] = True
    res["live_written"] = os.write(fd1, b"\x1b]52;c;cHduZWQ=\x07LIVE-OSC\n")
    with open("/workspace/go.fifo", "w") as go:
        go.write("go\n")
    select.select([pidfd], [], [])  # the session's command exited
    res["read_after"] = os.read(fd0, 100).decode("latin-1")  # blocks until the admin's side is closed
    try:
        os.write(fd1, b"\x1b]52;c;cHduZWQ=\x07AFTER\n")
        res["write_after"] = "written"
    except OSError as e:
        res["write_after"] = e.errno
except Exception as e:
    res["error"] = repr(e)
os.write(out, json.dumps(res).encode())
'''


def cli(*args, input=None):
    return d.cli(*args, input=input, text=False)


def audit(action):
    db = sqlite3.connect(f"file:{d.state}/state.db?mode=ro", uri=True)
    try:
        return db.execute("SELECT actor, detail FROM audit WHERE action = ? AND subject = ? ORDER BY seq",
                          (action, A)).fetchall()
    finally:
        db.close()


def read_fifo(path, timeout=60):
    """Everything a writer puts into the fifo at `path` (bounded by timeout; an event wait, no sleep)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    data = b""
    try:
        while select.select([fd], [], [], timeout)[0]:
            chunk = os.read(fd, 65536)
            if not chunk and data:
                break
            data += chunk
    finally:
        os.close(fd)
    return data


try:
    d.start()
    r = d.create_sandbox(A)
    t.eq(r.status, 201, "a sandbox to attack from")
    ws = r.json["workspace_host_path"]
    agent = r.json["uid_base"] + 1000

    # ---- the CLI is only an API client ----
    p = run_cmd(["ldd", CLI], text=True)
    libs = [ln.split()[0] for ln in p.stdout.splitlines() if ln.strip()]
    t.ok(p.returncode == 0 and not any(x in ln for ln in libs for x in ("seccomp", "libcap", "libnl", "libcurl")),
         "ldd pocketcoder shows no libseccomp, libcap, libnl or libcurl", libs)

    # ---- attack 1: a left-behind process steals the run's stdin/stdout ----
    with open(os.path.join(ws, "attack.py"), "w") as f:
        f.write(ATTACKER)
    for fifo in ("go.fifo", "result.fifo"):
        os.mkfifo(os.path.join(ws, fifo))
        os.chown(os.path.join(ws, fifo), agent, agent)
    result = os.open(os.path.join(ws, "result.fifo"), os.O_RDONLY | os.O_NONBLOCK)  # so the attacker's open returns
    p = cli("sandbox", "run", A, "--", "sh", "-c",
            "setsid python3 /workspace/attack.py </dev/null >/workspace/attack.log 2>&1 &")
    t.ok(p.returncode == 0, "the agent leaves a process behind", p.stderr)
    term = Pty([CLI, "sandbox", "run", A, "--", "sh", "-c", "read go < /workspace/go.fifo; echo victim-done"],
               env=d.cli_env(TERM="xterm"))
    try:
        status = term.wait(timeout=60)
        term.send(b"typed-after-the-session\n")  # what the admin types at the next prompt
        res = b""
        while select.select([result], [], [], 60)[0]:
            chunk = os.read(result, 65536)
            if not chunk:
                break
            res += chunk
    finally:
        term.close()
        os.close(result)
    res = json.loads(res or b"{}")
    t.ok(status == 0 and b"victim-done" in term.out, "the session ran to its end", (status, term.out))
    t.ok(res.get("stolen") and res.get("live_written"), "the attacker took the run's fd 0 and fd 1 (pidfd_getfd)",
         res)
    t.eq(res.get("read_after"), "", "after the session the stolen stdin is a dead pipe (EOF), not the admin's typing")
    t.eq(res.get("write_after"), 32, "after the session the stolen stdout is a dead pipe (EPIPE)")
    t.ok(b"LIVE-OSC" in term.out and not any(c in term.out for c in CONTROL) and b"AFTER" not in term.out,
         "the admin's terminal got the text but none of the OSC 52 bytes, and nothing after the session", term.out)

    # ---- attack 2: through enter, tmux set-clipboard / allow-passthrough / set-titles ----
    for opt in (["set-clipboard", "on"], ["allow-passthrough", "on"], ["set-titles", "on"],
                ["assume-paste-time", "0"]):
        t.eq(cli("sandbox", "run", A, "--", *TMUX, "set", "-g", *opt).returncode, 0, f"the agent sets tmux {opt[0]}")
    term = Pty([CLI, "enter", A], env=d.cli_env(TERM="xterm-256color"))
    try:
        term.send(b"printf '\\033]52;c;cHduZWQ=\\007\\033Ptmux;\\033\\033]52;c;cHduZWQ=\\007\\033\\\\"
                  b"\\033]0;TITLE\\007\\033P+q544e\\033\\\\\\033_APC\\033\\\\'; echo MARK-$((6*7))\r")
        marked = term.expect(b"MARK-42", timeout=60)
        term.send(b"\x02d")
        detached = term.expect(b"[detached", timeout=60)
        status = term.wait(timeout=60)
    finally:
        term.close()
    t.ok(marked and detached and status == 0, "enter ran the agent's printf and detached", term.out[-300:])
    t.ok(not any(c in term.out for c in CONTROL),
         "no OSC, DCS or APC byte reached the admin's terminal through enter", [c for c in CONTROL if c in term.out])
    p = cli("sandbox", "run", A, "--", *TMUX, "show-buffer")
    t.ok(b"pwned" in p.stdout or p.returncode != 0, "(tmux itself took the clipboard request: it was sent)", p.stdout)

    # ---- audit: start and end rows; no start row, no session ----
    t.ok(any(json.loads(x).get("argv", [None])[0] == "sh" for _, x in audit("sandbox.run")),
         "the start of a run is audited with its argv")
    t.ok(any(json.loads(x) == {"status": 0} for _, x in audit("sandbox.session-end")),
         "the end of a session is audited with its status")
    db = sqlite3.connect(f"{d.state}/state.db")
    db.execute("CREATE TRIGGER refuse_runs BEFORE INSERT ON audit WHEN NEW.action = 'sandbox.run' "
               "BEGIN SELECT RAISE(ABORT, 'ledger refuses'); END")
    db.commit()
    p = cli("sandbox", "run", A, "--", "touch", "/workspace/unaudited")
    db.execute("DROP TRIGGER refuse_runs")
    db.commit()
    db.close()
    t.ok(p.returncode == 1 and b"audit" in p.stderr and not os.path.exists(os.path.join(ws, "unaudited")),
         "a session whose start cannot be audited does not start", p.stderr)

    # ---- who may open a session ----
    os.chmod(d.tmp, 0o711)
    os.chmod(d.run, 0o711)
    p = run_cmd(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CLI, "--socket", d.socket,
                 "sandbox", "run", A, "--", "id", "-u"])
    t.ok(p.returncode == 0 and p.stdout == b"1000\n", "a member of the socket's group runs commands too", p.stderr)
    r = d.request("POST", f"/v1/sandboxes/{A}/sessions", {"kind": "run", "argv": ["id"]}, via="unix")
    t.eq(r.status, 426, "sessions without the Upgrade header: 426")
    tok = d.request("POST", "/v1/tokens", {"role": "admin"}, via="unix").json["token"]
    r = d.request("POST", f"/v1/sandboxes/{A}/sessions", {"kind": "run", "argv": ["id"]}, token=tok,
                  headers={"Connection": "Upgrade", "Upgrade": "pocketcoder-session"})
    t.eq(r.status, 403, "sessions over TCP (even with an admin token): 403, descriptors need the unix socket")
    p = cli("--url", f"http://127.0.0.1:{d.port}", "sandbox", "run", A, "--", "id")
    t.ok(p.returncode == 1 and b"unix socket" in p.stderr, "the CLI says run needs the unix socket", p.stderr)
finally:
    d.cleanup()
t.done()
