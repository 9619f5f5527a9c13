#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Execs through the HTTP API only: exact bytes (binary stdout as stdout_base64), stderr apart from stdout, exit
codes 0-255 and signals, many execs at once in one sandbox and across sandboxes without mixing, a timeout that
kills a tree ignoring SIGTERM, a denied command that never reaches tmux, the output stream resumed with
Last-Event-ID after a disconnect, stdin, signal, output truncation, agent scoping, kill -9 of the daemon while an
exec runs (lost, with its partial output), and the CLI's `exec` (exit status, streaming, denial)."""
import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time

from pclib import CLI, SLOW, Daemon, Spec, Tap
from pclib import UnixHTTPConnection

t = Tap()
if os.geteuid() != 0:
    t.skip("exec tests", "need root (namespaces, cgroups, uid ranges)")
    t.done()

spec = Spec()
P = "ex" + secrets.token_hex(3)
d = Daemon(spec=spec, config="uid_range_base = 1090519040\nexec_output_max = 64K\n")
A, B, S = P + "a", P + "b", P + "s"
TMUX = ["tmux", "-S", "/run/tmux/agent.sock"]


def run(box, cmd, **kw):
    kw.setdefault("wait", min(3600, 60 * SLOW))
    return d.request("POST", f"/v1/sandboxes/{box}/execs", dict(cmd=cmd, **kw), via="unix")


def out_bytes(j, stream):
    if stream in j:
        return j[stream].encode()
    return base64.b64decode(j[stream + "_base64"])


class Stream:
    """GET /v1/execs/{id}/output over the unix socket: its events, read as they come."""

    def __init__(self, exec_id, last=None):
        self.conn = UnixHTTPConnection(d.socket, timeout=60 * SLOW)
        h = {"Last-Event-ID": last} if last else {}
        self.conn.request("GET", f"/v1/execs/{exec_id}/output", headers=h)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status

    def next(self):
        ev = {}
        while True:
            line = self.resp.fp.readline()
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line == "":
                if "event" in ev:
                    return ev
                continue
            if line.startswith(":"):
                continue
            k, _, v = line.partition(": ")
            ev[k] = json.loads(v) if k == "data" else v

    def close(self):
        self.conn.close()


def chunk_bytes(ev):
    data = ev["data"]
    return data["data"].encode() if "data" in data else base64.b64decode(data["data_base64"])


def test_setup():
    d.start()
    for name, policy in ((A, "permissive"), (B, "permissive"), (S, "strict")):
        t.eq(d.create_sandbox(name, policy=policy).status, 201, f"sandbox {name} ({policy})")


def test_bytes_and_streams():
    r = run(A, "printf 'a\\000b\\377\\n'; printf 'to stderr' >&2; exit 7")
    t.eq(r.status, 200, "an exec that ends within wait answers 200")
    j = r.json
    t.eq(j["state"], "finished", "state finished")
    t.eq(out_bytes(j, "stdout"), b"a\x00b\xff\n", "binary stdout is exact (stdout_base64)")
    t.ok("stdout" not in j, "no stdout string for bytes that are not UTF-8")
    t.eq(j["stderr"], "to stderr", "stderr apart from stdout")
    t.eq(j["exit_code"], 7, "exit code")
    t.eq(j["signal"], None, "no signal")
    t.eq(j["decision"]["decision"], "allow", "the decision is in the answer")
    r = run(A, "pwd; echo $FOO", cwd="/workspace/sub", env={"FOO": "b a r"})
    t.eq(r.json["stderr"].startswith("pocketcoder: cd /workspace/sub"), True, "a missing cwd is reported")
    t.eq(r.json["exit_code"], 126, "... with exit code 126")
    run(A, "mkdir -p /workspace/sub")
    r = run(A, "pwd; echo $FOO", cwd="/workspace/sub", env={"FOO": "b a r"})
    t.eq(r.json["stdout"], "/workspace/sub\nb a r\n", "cwd and env")
    g = d.request("GET", f"/v1/execs/{r.json['id']}", via="unix")
    t.eq((g.status, g.json["stdout"]), (200, "/workspace/sub\nb a r\n"), "GET /v1/execs/{id} has the output")


def test_audit_and_events():
    j = run(A, "echo audited; exit 4").json
    rows = sqlite3.connect(os.path.join(d.state, "state.db")).execute(
        "SELECT action, detail FROM audit WHERE subject = ? ORDER BY seq", (j["id"],)).fetchall()
    t.eq([r[0] for r in rows], ["exec.decision", "exec.start", "exec.end"], "audit rows: decision, start, end")
    end = json.loads(rows[-1][1])
    t.eq((end["exit_code"], end["stdout_sha256"]), (4, hashlib.sha256(b"audited\n").hexdigest()),
         "exec.end has the exit code and the sha256 of stdout")
    t.eq(end["stderr_sha256"], hashlib.sha256(b"").hexdigest(), "... and of stderr")
    evs = d.request("GET", f"/v1/events?sandbox={A}", via="unix").json["events"]
    mine = [(e["type"], e["data"].get("exit_code")) for e in evs if e["data"].get("id") == j["id"]]
    t.eq(mine, [("exec.started", None), ("exec.finished", 4)], "events exec.started and exec.finished")


def test_exit_codes_and_signals():
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        codes = list(ex.map(lambda n: run(A, f"exit {n}").json, range(256)))
    t.eq([c.get("exit_code") for c in codes], list(range(256)), "exit codes 0-255",)
    t.eq([c for c in codes if c.get("exit_code") is None], [], "... every one of them")
    for sig in (1, 2, 9, 15):
        j = run(A, f"kill -{sig} $$").json
        t.eq((j["exit_code"], j["signal"]), (None, sig), f"signal {sig} is a signal, not exit code {128 + sig}")
    j = run(A, "exit 137").json
    t.eq((j["exit_code"], j["signal"]), (137, None), "exit 137 is an exit code, not SIGKILL")


def test_concurrency():
    def one(i):
        tag = f"{i}-{secrets.token_hex(4)}"
        j = run(A, f"for k in $(seq 300); do echo {tag}-$k; done; echo err-{tag} >&2; exit {i % 256}").json
        want = "".join(f"{tag}-{k}\n" for k in range(1, 301))
        return j["stdout"] == want and j["stderr"] == f"err-{tag}\n" and j["exit_code"] == i % 256
    with concurrent.futures.ThreadPoolExecutor(50) as ex:
        ok = list(ex.map(one, range(50)))
    t.eq(ok.count(True), 50, "50 concurrent execs in one sandbox: each has exactly its own output")

    boxes = [P + f"m{i}" for i in range(10)]
    for b in boxes:
        t.eq(d.create_sandbox(b, policy="permissive").status, 201, f"sandbox {b}")

    def other(arg):
        b, i = arg
        j = run(b, f"echo $(hostname)-{i}; cat /workspace/mark 2>/dev/null; echo {b}-{i} > /workspace/mark").json
        return j["stdout"].split("\n")[0] == f"{b}-{i}"
    with concurrent.futures.ThreadPoolExecutor(50) as ex:
        ok = list(ex.map(other, [(b, i) for b in boxes for i in range(5)]))
    t.eq(ok.count(True), 50, "50 concurrent execs across 10 sandboxes: each ran in its own sandbox")
    for b in boxes:
        d.request("DELETE", f"/v1/sandboxes/{b}?purge=true", via="unix")
        d.sandboxes.remove(b)


def test_timeout_kills_tree():
    # four processes that ignore SIGTERM (perl: a command line with trap would be asked about)
    r = run(A, "perl -e '$SIG{TERM} = \"IGNORE\"; fork; fork; $| = 1; print \"s\"; sleep 1000'; echo after",
            timeout=2 * SLOW)
    j = r.json
    t.eq((r.status, j["state"]), (200, "finished"), "a timed-out exec ends")
    t.eq((j["timed_out"], j["signal"]), (True, 9), "timed_out, killed")
    t.eq(j["stdout"].count("s"), 4, "its output up to then is kept")
    t.ok("after" not in j["stdout"], "the command did not go on")
    left = run(A, "ps -eo args | grep -c '^perl -e .SIG' || true").json["stdout"].strip()
    t.eq(left, "0", "nothing of its tree is left (also what ignored SIGTERM)")


def test_denied_never_reaches_tmux():
    marker = "DENIED" + secrets.token_hex(4)
    r = run(S, f"printf {marker}")
    t.eq(r.status, 403, "strict policy: 403")
    t.eq(r.json["error"]["code"], "denied", "code denied")
    t.ok(r.json["error"]["message"], "with the reason")
    t.eq(r.json["exec"]["state"], "denied", "the exec is kept as denied")
    t.eq(r.json["decision"]["decision"], "deny", "with the decision")
    eid = r.json["exec"]["id"]
    t.ok(f"pc-{eid[:8]}" not in windows(S), "no window was made for it")
    p = d.sandbox_run(S, "sh", "-c", f"for w in $({' '.join(TMUX)} list-windows -a -F '#{{window_id}}'); do "
                      f"{' '.join(TMUX)} capture-pane -p -S - -t $w; done")
    t.ok(p.returncode == 0 and marker not in p.stdout, "no pane's history shows anything of it")
    g = d.request("GET", f"/v1/execs/{r.json['exec']['id']}", via="unix")
    t.eq(g.json["state"], "denied", "GET shows it denied")
    # an allowed exec does get a window of its own (visible to a person who attaches)
    r = run(A, "echo go; sleep 1000", wait=0)
    t.eq(r.status, 202, "wait 0: 202 while it runs")
    s = Stream(r.json["id"])
    t.eq(s.next()["data"]["data"], "go\n", "output streams while it runs")
    p = d.sandbox_run(A, *TMUX, "list-windows", "-a", "-F", "#{window_name}")
    t.ok(f"pc-{r.json['id'][:8]}" in p.stdout.split("\n"), "the running exec has its own tmux window")
    t.eq(d.request("POST", f"/v1/execs/{r.json['id']}/signal", {"signal": "TERM"}, via="unix").status, 200,
         "signal TERM")
    ev = s.next()
    while ev and ev["event"] != "exit":
        ev = s.next()
    t.eq((ev["event"], ev["data"]["signal"]), ("exit", 15), "the stream ends with the exit event: SIGTERM")
    s.close()


def windows(box):
    p = d.sandbox_run(box, *TMUX, "list-windows", "-a", "-F", "#{window_name}")
    return p.stdout.split("\n")


def ready_window(box, not_ids=()):
    """The id start of a ready window of BOX (one named pc-ID that no exec in not_ids has), waiting for it."""
    deadline = time.monotonic() + 30 * SLOW
    while time.monotonic() < deadline:
        w = [n[3:] for n in windows(box) if n.startswith("pc-") and not any(i.startswith(n[3:]) for i in not_ids)]
        if w:
            return w[0]
        time.sleep(0.05)
    return None


def exec_groups(box):
    path = d.request("GET", f"/v1/sandboxes/{box}", via="unix").json["cgroup_path"]
    return sorted(n[5:13] for n in os.listdir(path) if n.startswith("exec-"))


def test_ready_windows():
    # An exec takes a window made ahead of time, with a shim and a bash waiting (exec_ready_windows = 1), and
    # its id is that window's; a new one is made for the next.
    first = run(A, "echo one").json
    w = ready_window(A, [first["id"]])
    t.ok(w, "after an exec the sandbox keeps a ready window", windows(A))
    second = run(A, "echo two; pwd; echo $FOO", cwd="/workspace/sub", env={"FOO": "it's \"x\""}).json
    t.eq(second["id"][:8], w, "the next exec took it (its id is the window's)")
    t.eq(second["stdout"], "two\n/workspace/sub\nit's \"x\"\n", "... and ran exactly, in its cwd, with its env")
    w2 = ready_window(A, [first["id"], second["id"]])
    t.ok(w2 and w2 != w, "a new ready window follows")
    groups = exec_groups(A)
    t.ok(w2 in groups and first["id"][:8] not in groups and second["id"][:8] not in groups,
         "the execs' groups went; the ready window has its own", groups)
    # what the command sees is a fresh bash: no variable of the shim, no positional parameters, $0 bash
    j = run(A, "echo \"[$0] [$#] [${__pc_c-unset}]\"; set | grep -c '^__pc' || true").json
    t.eq(j["stdout"], "[bash] [0] [unset]\n0\n", "the command sees nothing of the shim")
    # (no pipeline: bash holds a pipeline's pipe itself for a moment, which ls could see)
    j = run(A, "exec 3<&0; ls -l /proc/$$/fd/").json
    t.ok(j["exit_code"] == 0 and "pipe:" not in j["stdout"], "... and no descriptor of it (its job's pipe is closed)",
         j["stdout"])
    # a ready window whose shim is killed is not taken
    w3 = ready_window(A, [first["id"], second["id"], j["id"]])
    tm = " ".join(TMUX)
    d.sandbox_run(A, "sh", "-c", f"kill -KILL $({tm} list-panes -a -F '#{{pane_pid}} #{{window_name}}' | "
                  f"awk '$2 == \"pc-{w3}\" {{ print $1 }}')")
    j = run(A, "echo after").json
    t.eq((j["state"], j["stdout"]), ("finished", "after\n"), "an exec runs when its ready window was killed")
    # ... nor one whose waiting bash was killed (its shim still waits for a job)
    w4 = ready_window(A, [j["id"]])
    p = d.sandbox_run(A, "sh", "-c", f"kill -KILL $(ps -o pid= --ppid $({tm} list-panes -a -F "
                      f"'#{{pane_pid}} #{{window_name}}' | awk '$2 == \"pc-{w4}\" {{ print $1 }}'))")
    t.eq(p.returncode, 0, "the waiting bash of a ready window is killed")
    # the daemon drops that window (its shim goes with it, and so does the window)
    deadline = time.monotonic() + 30 * SLOW
    while f"pc-{w4}" in windows(A) and time.monotonic() < deadline:
        time.sleep(0.05)
    t.ok(f"pc-{w4}" not in windows(A), "the window whose bash was killed goes")
    j = run(A, "echo again").json
    t.eq((j["state"], j["exit_code"], j["stdout"]), ("finished", 0, "again\n"),
         "an exec runs when the bash of its ready window was killed (not reported as killed itself)")


def test_stream_resume():
    r = run(A, "for i in $(seq 2000); do echo line-$i; echo err-$i >&2; done", wait=0)
    eid = r.json["id"]
    s = Stream(eid)
    got = {"stdout": b"", "stderr": b""}
    last = None
    for _ in range(3):
        ev = s.next()
        if ev["event"] == "exit":
            break
        got[ev["event"]] += chunk_bytes(ev)
        last = ev["id"]
    s.close()  # a disconnect mid-stream
    s = Stream(eid, last)
    while True:
        ev = s.next()
        if ev["event"] == "exit":
            break
        got[ev["event"]] += chunk_bytes(ev)
    s.close()
    t.eq(got["stdout"].decode(), "".join(f"line-{i}\n" for i in range(1, 2001)), "stdout resumed exactly")
    t.eq(got["stderr"].decode(), "".join(f"err-{i}\n" for i in range(1, 2001)), "stderr resumed exactly")
    t.eq(ev["data"]["exit_code"], 0, "exit event")
    bad = Stream(eid, "x,1")
    t.eq(bad.status, 400, "a bad Last-Event-ID is 400")
    bad.close()


def test_stdin_and_truncation():
    j = run(A, "cat; echo", stdin="hello\n").json
    t.eq(j["stdout"], "hello\n\n", "stdin")
    j = run(A, "od -An -tx1", stdin_base64=base64.b64encode(b"\x00\xff").decode()).json
    t.eq(j["stdout"].split(), ["00", "ff"], "stdin_base64")
    r = run(A, "cat", stdin_open=True, wait=0)
    eid = r.json["id"]
    t.eq(d.request("POST", f"/v1/execs/{eid}/stdin", {"data": "abc"}, via="unix").status, 200, "stdin data")
    t.eq(d.request("POST", f"/v1/execs/{eid}/stdin", {"data_base64": "AAE=", "eof": True}, via="unix").status, 200,
         "stdin eof")
    g = d.request("GET", f"/v1/execs/{eid}?wait=30", via="unix")
    t.eq(out_bytes(g.json, "stdout"), b"abc\x00\x01", "stdin arrives in order, then EOF")
    t.eq(d.request("POST", f"/v1/execs/{eid}/stdin", {"data": "x"}, via="unix").status, 409, "no stdin after the end")
    j = run(A, "head -c 100000 /dev/zero | tr '\\0' x; echo done >&2").json
    t.eq((len(j["stdout"]), j["stdout_truncated"]), (65536, True), "output bounded by exec_output_max, reported")
    t.eq((j["stderr"], j["stderr_truncated"]), ("done\n", False), "the other stream is whole")


def daemon_cpu():
    with open(f"/proc/{d.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_closed_stdin_costs_nothing():
    # A command that closes its stdin (and then runs on) leaves the daemon idle: the hang-up of its stdin
    # socket is handled once, not reported to the loop again and again while the command runs.
    before = daemon_cpu()
    j = run(A, "exec 0<&-; sleep 3; echo done").json
    used = daemon_cpu() - before
    t.eq((j["exit_code"], j["stdout"]), (0, "done\n"), "a command that closed its stdin runs to its end")
    t.ok(used < 1.0, f"the daemon used {used:.2f} s of CPU meanwhile (not a spinning loop)")


def test_bad_input():
    before = d.request("GET", "/v1/execs", via="unix").json["execs"]
    for body, what in (({}, "no cmd"), ({"cmd": ""}, "empty cmd"), ({"cmd": "ls", "x": 1}, "unknown field"),
                       ({"cmd": "ls", "cwd": "/etc"}, "cwd outside /workspace"),
                       ({"cmd": "ls", "cwd": "/workspace/../etc"}, "cwd with .."),
                       ({"cmd": "ls", "env": {"A-B": "x"}}, "bad env name"),
                       ({"cmd": "ls", "env": {"A": 1}}, "env value not a string"),
                       ({"cmd": "ls", "timeout": 0}, "timeout 0"), ({"cmd": "ls", "wait": 3601}, "wait too long"),
                       ({"cmd": "ls", "stdin": "a", "stdin_base64": "YQ=="}, "both stdins"),
                       ({"cmd": "ls", "stdin_base64": "Y"}, "bad base64"), ({"cmd": "a\u0000b"}, "NUL in cmd")):
        r = d.request("POST", f"/v1/sandboxes/{A}/execs", body, via="unix")
        t.eq(r.status, 400, f"400 for {what}")
    t.eq(len(d.request("GET", "/v1/execs", via="unix").json["execs"]), len(before), "bad input stored nothing")
    t.eq(run(P + "nosuch", "ls").status, 404, "unknown sandbox: 404")
    t.eq(d.request("GET", "/v1/execs?state=odd", via="unix").status, 400, "bad state filter: 400")


def test_agent_scope():
    tok = d.request("POST", "/v1/tokens", {"role": "agent", "sandbox": A}, via="unix").json["token"]
    r = d.request("POST", f"/v1/sandboxes/{A}/execs", {"cmd": "echo mine"}, token=tok)
    t.eq((r.status, r.json.get("stdout")), (200, "mine\n"), "an agent runs commands in its own sandbox")
    t.eq(d.request("POST", f"/v1/sandboxes/{B}/execs", {"cmd": "echo x"}, token=tok).status, 403,
         "... not in another one")
    other = run(B, "echo b").json["id"]
    t.eq(d.request("GET", f"/v1/execs/{other}", token=tok).status, 404, "nor sees another sandbox's execs")
    t.ok(all(x["sandbox"] == A for x in d.request("GET", "/v1/execs", token=tok).json["execs"]),
         "its list has its own sandbox's only")


def test_cli():
    p = subprocess.run([CLI, "exec", A, "--", "sh", "-c", "echo out; echo err >&2; exit 5"],
                       env=d.cli_env(), capture_output=True, timeout=60 * SLOW)
    t.eq((p.returncode, p.stdout, p.stderr), (5, b"out\n", b"err\n"), "pocketcoder exec: streams, exits with the status")
    p = subprocess.run([CLI, "exec", A, "--", "sh", "-c", "kill -9 $$"], env=d.cli_env(), capture_output=True,
                       timeout=60 * SLOW)
    t.eq(p.returncode, 137, "a signal N is exit status 128+N")
    p = subprocess.run([CLI, "exec", S, "--", "printf", "hi"], env=d.cli_env(), capture_output=True,
                       timeout=60 * SLOW)
    t.eq(p.returncode, 77, "denied: exit status 77")
    t.ok(b"denied" in p.stderr, "with the reason")
    p = subprocess.run([CLI, "exec", A, "--cwd", "/workspace/sub", "--env", "X=1", "--", "sh", "-c", "pwd; echo $X"],
                       env=d.cli_env(), capture_output=True, timeout=60 * SLOW)
    t.eq(p.stdout, b"/workspace/sub\n1\n", "--cwd and --env")


def test_delete_with_exec_running():
    box = P + "d"
    t.eq(d.create_sandbox(box, policy="permissive").status, 201, "sandbox to delete")
    r = run(box, "sleep 1000", wait=0)
    t.eq(r.status, 202, "an exec runs")
    t.eq(d.request("DELETE", f"/v1/sandboxes/{box}?purge=true", via="unix").status, 204,
         "the sandbox is deleted with an exec running (its group goes with the exec's)")
    d.sandboxes.remove(box)
    g = d.request("GET", f"/v1/execs/{r.json['id']}?wait=30", via="unix")
    # killed with it, or (deleted before its shim connected) recorded as lost: never left running
    t.ok(g.status == 200 and (g.json["signal"] == 9 or g.json["state"] == "lost"),
         "the exec ended with its sandbox", g.raw[:300])


def test_kill9_mid_exec():
    r = run(A, "echo partial; echo partial-err >&2; sleep 1000", wait=0)
    eid = r.json["id"]
    s = Stream(eid)
    s.next()
    s.next()
    s.close()
    d.kill9()
    d.start()
    g = d.request("GET", f"/v1/execs/{eid}", via="unix")
    t.eq(g.json["state"], "lost", "an exec running when the daemon died is lost, not dropped")
    t.eq((g.json["stdout"], g.json["stderr"]), ("partial\n", "partial-err\n"), "with its partial output")
    t.ok(g.json["reason"], "and why")
    left = run(A, "ps -eo args | grep -c '[s]leep 1000' || true").json["stdout"].strip()
    t.eq(left, "0", "what it left running was killed")
    # the ready window of the daemon that died went with it, and so did its group
    w = ready_window(A, [eid])
    t.eq(exec_groups(A), [w], "no exec group of the earlier daemon is left")


try:
    t.run_all([test_setup, test_bytes_and_streams, test_audit_and_events, test_exit_codes_and_signals, test_concurrency,
               test_timeout_kills_tree, test_denied_never_reaches_tmux, test_ready_windows,
               test_stream_resume, test_stdin_and_truncation,
               test_closed_stdin_costs_nothing,
               test_bad_input, test_agent_scope, test_cli, test_delete_with_exec_running, test_kill9_mid_exec], spec=spec)
finally:
    d.cleanup()
