#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Each sandbox's agent socket: /run/pocketcoder/api.sock inside a `--network none` sandbox reaches the daemon
with no token, as that sandbox's agent and nothing more (not another sandbox, not admin routes, not even with
an admin token in hand); host users cannot reach it; it comes back after a daemon restart (clean or kill -9)
without restarting the sandbox, and goes with the sandbox. Sandbox lifecycle events on the bus."""
import json
import os
import secrets
import signal
import stat
import subprocess

from pclib import CLI, Daemon, Spec, Tap, run_cmd

t = Tap()
if os.geteuid() != 0:
    t.skip("agent socket tests", "need root (namespaces, cgroups, uid ranges)")
    t.done()

spec = Spec()
P = "as" + secrets.token_hex(3)
A, B = f"{P}-a", f"{P}-b"
# A uid range of our own, away from the other tests' daemons.
d = Daemon(spec=spec, config="uid_range_base = 1744830464\n")

# Runs inside the sandbox as the agent: one HTTP request on the agent socket, the answer as JSON on stdout.
CLIENT = r"""
import http.client, json, socket, sys
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect("/run/pocketcoder/api.sock")
method, path, headers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
c = C("localhost", timeout=30)
c.request(method, path, headers=headers)
r = c.getresponse()
body = r.read().decode()
print(json.dumps({"status": r.status, "body": json.loads(body) if body else None}))
"""


# Opens 80 connections on the agent socket and sends a request on each: how many were answered, and how
# many closed unanswered; holds them until stdin closes.
HOG = r"""
import socket, sys
socks = []
for i in range(80):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("/run/pocketcoder/api.sock")  # blocking: waits for room in the backlog
    s.settimeout(30)
    socks.append(s)
answered = closed = 0
for s in socks:
    try:
        s.sendall(b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\n\r\n")
        data = s.recv(4096)
    except OSError:
        data = b""
    if data.startswith(b"HTTP/1.1 200"):
        answered += 1
    else:
        closed += 1
print("answered", answered, "closed", closed, flush=True)
sys.stdin.read()
"""


def inside(n, method, path, headers=None):
    p = d.cli("sandbox", "run", n, "--", "python3", "-c", CLIENT, method, path, json.dumps(headers or {}))
    try:
        return json.loads(p.stdout)
    except ValueError:
        return {"status": None, "body": None, "stdout": p.stdout, "stderr": p.stderr}


def sock_path(n):
    return os.path.join(d.run, "sandboxes", n, "api.sock")


try:
    d.start()
    t.eq(d.create_sandbox(A, network="none").status, 201, "a sandbox with --network none")
    t.eq(d.create_sandbox(B, network="loopback").status, 201, "and a second sandbox")

    # ---- the socket, from inside ----
    r = inside(A, "GET", "/v1/whoami")
    t.ok(r["status"] == 200 and r["body"] == {"role": "agent", "sandbox": A, "token_id": None, "uid": None,
                                              "via": "agent_socket"},
         "inside a --network none sandbox, whoami on /run/pocketcoder/api.sock: agent of this sandbox, no token", r)
    p = d.cli("sandbox", "run", A, "--", "python3", "-c",
              "import socket; s = socket.socket(); s.settimeout(5); s.connect(('127.0.0.1', %d))" % d.port)
    t.ok(p.returncode != 0, "and that sandbox has no network (TCP to the daemon's port fails)", p.stderr)
    r = inside(B, "GET", "/v1/whoami")
    t.ok(r["status"] == 200 and r["body"]["sandbox"] == B, "each sandbox's socket names its own sandbox", r)
    p = d.cli("sandbox", "run", A, "--", "ls", "-A", "/run/pocketcoder")
    t.eq(p.stdout, "api.sock\n", "/run/pocketcoder inside holds the agent socket only")
    # The socket's directory is a tmpfs of its own and the workspace a disk image (the default limit): the
    # sandbox's mountinfo names no directory of the daemon on the host (its temp dir is in all of them).
    p = d.cli("sandbox", "run", A, "--", "cat", "/proc/self/mountinfo")
    leaks = [ln for ln in p.stdout.splitlines() if os.path.basename(d.tmp) in ln]
    t.ok(p.returncode == 0 and " /run/pocketcoder " in p.stdout and not leaks,
         "mountinfo inside shows no host path of the daemon's (runtime dir, state dir, workspace)",
         leaks or p.stderr)

    # ---- what the agent may not do ----
    r = inside(A, "GET", "/v1/sandboxes")
    t.ok(r["status"] == 200 and [s["name"] for s in r["body"]["sandboxes"]] == [A],
         "the agent lists only its own sandbox", r)
    t.eq(inside(A, "GET", f"/v1/sandboxes/{A}")["status"], 200, "it reads its own sandbox")
    for method, path, why in (("GET", f"/v1/sandboxes/{B}", "read another sandbox"),
                              ("DELETE", f"/v1/sandboxes/{B}", "delete another sandbox"),
                              ("POST", f"/v1/sandboxes/{B}/stop", "stop another sandbox"),
                              ("GET", f"/v1/events?sandbox={B}", "read another sandbox's events"),
                              ("POST", "/v1/sandboxes", "create a sandbox"),
                              ("DELETE", f"/v1/sandboxes/{A}", "delete its own sandbox"),
                              ("POST", f"/v1/sandboxes/{A}/sessions", "open a session"),
                              ("GET", "/v1/tokens", "list tokens"),
                              ("POST", "/v1/tokens", "create a token"),
                              ("POST", "/v1/policies/reload", "reload policies"),
                              ("GET", "/v1/policies", "list policies")):
        r = inside(A, method, path)
        t.eq(r["status"], 403, f"the agent may not {why} ({method} {path.replace(A, 'OWN').replace(B, 'OTHER')})")
    t.ok(d.request("GET", f"/v1/sandboxes/{B}", via="unix").json["state"] == "running",
         "the other sandbox is untouched")
    admin = d.request("POST", "/v1/tokens", {"role": "admin"}, via="unix").json["token"]
    r = inside(A, "GET", "/v1/whoami", {"Authorization": f"Bearer {admin}"})
    t.ok(r["status"] == 200 and r["body"]["role"] == "agent" and r["body"]["token_id"] is None,
         "an admin token sent on the agent socket changes nothing", r)
    r = inside(A, "GET", "/v1/tokens", {"Authorization": f"Bearer {admin}"})
    t.ok(r["status"] == 403 and r["body"]["error"]["message"] == f'the agent of sandbox "{A}" may not GET /v1/tokens',
         "not even for admin-only routes, and the refusal says who asked", r)
    r = inside(A, "GET", "/v1/events?since=0")
    t.ok(r["status"] == 200 and [(e["type"], e["sandbox"]) for e in r["body"]["events"]] == [("sandbox.created", A)],
         "the agent sees its own sandbox's events only", r)

    # ---- one sandbox cannot use up the connections every sandbox's agent shares ----
    hog = subprocess.Popen([CLI, "sandbox", "run", A, "--", "python3", "-c", HOG], env=d.cli_env(),
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        line = hog.stdout.readline().split()
        t.ok(line[:1] == ["answered"] and int(line[1]) == 64 and int(line[3]) == 16,
             "a sandbox gets 64 agent connections at once, the rest are closed", line)
        r = inside(B, "GET", "/v1/whoami")
        t.ok(r["status"] == 200 and r["body"]["sandbox"] == B, "meanwhile another sandbox's agent is served", r)
        hog.stdin.close()
        t.eq(hog.wait(60), 0, "the sandbox that held them exits cleanly")
    finally:
        if hog.poll() is None:
            os.killpg(hog.pid, signal.SIGKILL)
            hog.wait()
    r = inside(A, "GET", "/v1/whoami")
    t.ok(r["status"] == 200 and r["body"]["sandbox"] == A, "once they are closed it is served again", r)

    # ---- from the host ----
    st = os.stat(os.path.join(d.run, "sandboxes"))
    t.ok(stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == 0, "RUNTIME_DIR/sandboxes is 0700 root")
    t.eq(stat.S_IMODE(os.stat(sock_path(A)).st_mode), 0o666, "the socket itself is 0666 (reachable only inside)")
    p = run_cmd(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "python3", "-c",
                 "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])", sock_path(A)],
                text=True)
    t.ok(p.returncode != 0 and "Permission denied" in p.stderr, "a host user cannot reach it", p.stderr)

    # ---- daemon restarts: the running sandbox gets its socket back ----
    init = d.request("GET", f"/v1/sandboxes/{A}", via="unix").json["init_pid"]
    d.stop()
    t.ok(not os.path.exists(sock_path(A)) and os.path.isdir(os.path.dirname(sock_path(A))),
         "a stopped daemon leaves no socket but keeps the directory the sandbox has mounted")
    d.start()
    r = inside(A, "GET", "/v1/whoami")
    t.ok(r["status"] == 200 and r["body"]["sandbox"] == A, "after a restart the agent socket works again", r)
    d.kill9()
    d.start()
    r = inside(A, "GET", "/v1/whoami")
    t.ok(r["status"] == 200 and r["body"]["sandbox"] == A, "and after kill -9 of the daemon", r)
    t.eq(d.request("GET", f"/v1/sandboxes/{A}", via="unix").json["init_pid"], init, "the sandbox was not restarted")

    # ---- the socket goes with the sandbox ----
    t.eq(d.request("POST", f"/v1/sandboxes/{A}/stop", via="unix").status, 200, "stop")
    t.ok(not os.path.exists(os.path.dirname(sock_path(A))), "a stopped sandbox has no socket directory")
    t.eq(d.request("POST", f"/v1/sandboxes/{A}/start", via="unix").status, 200, "start")
    r = inside(A, "GET", "/v1/whoami")
    t.ok(r["status"] == 200 and r["body"]["sandbox"] == A, "a started sandbox has its socket again", r)
    t.eq(d.request("DELETE", f"/v1/sandboxes/{A}?purge=true", via="unix").status, 204, "delete")
    d.sandboxes.remove(A)
    t.ok(not os.path.exists(os.path.dirname(sock_path(A))), "a deleted sandbox has no socket directory")

    r = d.request("GET", f"/v1/events?sandbox={A}", via="unix")
    t.eq([(e["type"], e["data"].get("reason")) for e in r.json["events"]],
         [("sandbox.created", None), ("sandbox.stopped", "stop"), ("sandbox.started", None),
          ("sandbox.stopped", "delete"), ("sandbox.deleted", None)],
         "the bus recorded the sandbox's life: created, stopped, started, stopped, deleted")

    t.ok(not spec.errors, f"all {spec.checked} responses validate against api/openapi.yaml", "\n".join(spec.errors[:20]))
finally:
    d.cleanup()
t.done()
