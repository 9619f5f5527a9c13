#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The API as a client sees it: routes vs. spec, auth matrix, bad input, concurrency, kill -9 durability."""
import os
import sqlite3
import stat
import threading

from pclib import DAEMON, Daemon, Spec, Tap, run_cmd

t = Tap()
spec = Spec()
d = Daemon(spec=spec, config="uid_range_base = 2013265920\n").start()  # a uid range of its own (agentbox)

try:
    # Every served route is in the spec, and every spec path/method is served.
    served = run_cmd([DAEMON, "--list-routes"], text=True).stdout.split("\n")
    served = {tuple(line.split(" ", 1)) for line in served if line}
    documented = {(m, p) for p in spec.doc["paths"] for m in spec.methods(p)}
    t.eq(sorted(served - documented), [], "every served route is in api/openapi.yaml")
    t.eq(sorted(documented - served), [], "every route in api/openapi.yaml is served")

    # Local admin on the unix socket (we are root), no token needed.
    r = d.request("GET", "/v1/status", via="unix")
    t.eq(r.status, 200, "unix socket: root peer is admin without a token")
    t.ok(r.json and r.json["host"] and r.json["host"]["cgroup"]["version"] in ("v1", "v2"),
         "status reports the host's cgroup version", r)
    mode = stat.S_IMODE(os.stat(d.socket).st_mode)
    t.ok(mode in (0o660, 0o600), f"api.sock mode is 0660 or 0600 (got {oct(mode)})")

    admin = d.request("POST", "/v1/tokens", {"role": "admin", "label": "it"}, via="unix").json["token"]
    relay = d.request("POST", "/v1/tokens", {"role": "relay"}, via="unix").json["token"]
    r = d.request("POST", "/v1/tokens", {"role": "agent", "sandbox": "box1"}, via="unix")
    t.eq((r.status, r.json["error"]["code"]), (404, "not_found"), "no agent token for a sandbox that does not exist")
    t.eq(d.create_sandbox("agentbox", network="none").status, 201, "a sandbox for an agent token")
    agent_resp = d.request("POST", "/v1/tokens", {"role": "agent", "sandbox": "agentbox"}, via="unix")
    t.eq(agent_resp.status, 201, "agent token scoped to a sandbox is created")
    agent = agent_resp.json["token"]
    revoked_resp = d.request("POST", "/v1/tokens", {"role": "admin"}, token=admin)
    t.eq(revoked_resp.status, 201, "admin token creates tokens over TCP")
    revoked = revoked_resp.json["token"]
    t.eq(d.request("DELETE", f"/v1/tokens/{revoked_resp.json['id']}", token=admin).status, 204,
         "admin revokes a token")
    t.eq(d.request("DELETE", f"/v1/tokens/{revoked_resp.json['id']}", token=admin).status, 404,
         "revoking twice is 404")

    # Auth matrix over TCP: every route x every kind of caller.
    callers = {"none": None, "garbage": "pct_zzz", "unknown": "pct_" + "0" * 12 + "_" + "0" * 64,
               "revoked": revoked, "agent": agent, "relay": relay, "admin": admin}
    # Who may call what, and what a successful call answers (with placeholders that exist or not).
    ADMIN, RELAY, AGENT = "admin", "relay", "agent"
    allowed = {
        ("GET", "/v1/status"): ({ADMIN, RELAY, AGENT}, "/v1/status", None, 200),
        ("GET", "/v1/whoami"): ({ADMIN, RELAY, AGENT}, "/v1/whoami", None, 200),
        ("GET", "/v1/events"): ({ADMIN, RELAY, AGENT}, "/v1/events", None, 200),
        ("POST", "/v1/tokens"): ({ADMIN}, "/v1/tokens", {"role": "relay"}, 201),
        ("GET", "/v1/tokens"): ({ADMIN}, "/v1/tokens", None, 200),
        ("DELETE", "/v1/tokens/{id}"): ({ADMIN}, "/v1/tokens/000000000000", None, 404),
        ("GET", "/v1/policies"): ({ADMIN, RELAY}, "/v1/policies", None, 200),
        ("POST", "/v1/policies/reload"): ({ADMIN}, "/v1/policies/reload", None, 200),
        ("GET", "/v1/policies/{name}"): ({ADMIN, RELAY}, "/v1/policies/default", None, 200),
        ("POST", "/v1/policies/{name}/decide"): ({ADMIN, RELAY, AGENT}, "/v1/policies/default/decide", {"command": "ls"}, 200),
        ("GET", "/v1/sandboxes"): ({ADMIN, RELAY, AGENT}, "/v1/sandboxes", None, 200),
        ("POST", "/v1/sandboxes"): ({ADMIN}, "/v1/sandboxes", {"name": "Bad_Name"}, 400),
        ("GET", "/v1/sandboxes/{name}"): ({ADMIN, RELAY, AGENT}, "/v1/sandboxes/box1", None, 404),
        ("DELETE", "/v1/sandboxes/{name}"): ({ADMIN}, "/v1/sandboxes/box1", None, 404),
        ("POST", "/v1/sandboxes/{name}/start"): ({ADMIN}, "/v1/sandboxes/box1/start", None, 404),
        ("POST", "/v1/sandboxes/{name}/stop"): ({ADMIN}, "/v1/sandboxes/box1/stop", None, 404),
        ("GET", "/v1/images"): ({ADMIN, RELAY}, "/v1/images", None, 200),
        ("POST", "/v1/images"): ({ADMIN}, "/v1/images", {"name": "x", "mirror": "ftp://example.org/"}, 400),
        ("DELETE", "/v1/images/{name}"): ({ADMIN}, "/v1/images/none", None, 404),
        ("GET", "/v1/permissions"): ({ADMIN, RELAY}, "/v1/permissions", None, 200),
        ("GET", "/v1/permissions/{id}"): ({ADMIN, RELAY}, "/v1/permissions/" + "0" * 32, None, 404),
        ("POST", "/v1/permissions/{id}/approve"): ({ADMIN, RELAY}, "/v1/permissions/" + "0" * 32 + "/approve", {}, 404),
        ("POST", "/v1/permissions/{id}/deny"): ({ADMIN, RELAY}, "/v1/permissions/" + "0" * 32 + "/deny", {}, 404),
        ("GET", "/v1/permissions/rules"): ({ADMIN, RELAY}, "/v1/permissions/rules", None, 200),
        ("DELETE", "/v1/permissions/rules/{id}"): ({ADMIN, RELAY}, "/v1/permissions/rules/" + "0" * 32, None, 404),
        ("GET", "/v1/audit"): ({ADMIN, RELAY}, "/v1/audit", None, 200),
        ("GET", "/v1/audit/verify"): ({ADMIN}, "/v1/audit/verify", None, 200),
        ("POST", "/v1/devices"): ({ADMIN}, "/v1/devices", {"name": "p", "public_key": "short"}, 400),
        ("GET", "/v1/devices"): ({ADMIN, RELAY}, "/v1/devices", None, 200),
        ("DELETE", "/v1/devices/{id}"): ({ADMIN}, "/v1/devices/0000000000000000", None, 404),
        # Sessions pass file descriptors: even an admin token over TCP is refused (test_sessions.py).
        ("POST", "/v1/sandboxes/{name}/sessions"): ({ADMIN}, "/v1/sandboxes/box1/sessions", {"kind": "run"}, 403),
        ("POST", "/v1/sandboxes/{name}/execs"): ({ADMIN, AGENT}, "/v1/sandboxes/box1/execs", {"cmd": "true"}, 404),
        ("GET", "/v1/execs"): ({ADMIN, RELAY, AGENT}, "/v1/execs", None, 200),
        ("GET", "/v1/execs/{id}"): ({ADMIN, RELAY, AGENT}, "/v1/execs/" + "0" * 32, None, 404),
        ("GET", "/v1/execs/{id}/output"): ({ADMIN, RELAY, AGENT}, "/v1/execs/" + "0" * 32 + "/output", None, 404),
        ("POST", "/v1/execs/{id}/signal"): ({ADMIN, AGENT}, "/v1/execs/" + "0" * 32 + "/signal", {"signal": "TERM"},
                                           404),
        ("POST", "/v1/execs/{id}/stdin"): ({ADMIN, AGENT}, "/v1/execs/" + "0" * 32 + "/stdin", {"data": "x"}, 404),
        ("POST", "/v1/keys"): ({ADMIN, RELAY}, "/v1/keys", {"key": "ssh-ed25519 AAAA"}, 400),
        ("GET", "/v1/keys"): ({ADMIN, RELAY}, "/v1/keys", None, 200),
        ("DELETE", "/v1/keys/{id}"): ({ADMIN, RELAY}, "/v1/keys/0000000000000000", None, 404),
        # The SSH gateway's routes: role ssh only, which no token has (RUNTIME_DIR/ssh.sock, test_ssh.py).
        ("POST", "/v1/ssh/authorize"): (set(), "/v1/ssh/authorize", {"key": "x"}, 400),
        ("POST", "/v1/ssh/sessions"): (set(), "/v1/ssh/sessions", {"key": "x", "sandbox": "box1"}, 400),
        # Files (test_files.py): admin, relay, and the agent for its own sandbox (box1 is not agentbox).
        ("GET", "/v1/sandboxes/{name}/files"): ({ADMIN, RELAY, AGENT}, "/v1/sandboxes/box1/files", None, 404),
        ("GET", "/v1/sandboxes/{name}/files/{path*}"): ({ADMIN, RELAY, AGENT}, "/v1/sandboxes/box1/files/a/b", None, 404),
        ("PUT", "/v1/sandboxes/{name}/files/{path*}"): ({ADMIN, RELAY, AGENT}, "/v1/sandboxes/box1/files/a/b", None, 404),
        ("DELETE", "/v1/sandboxes/{name}/files/{path*}"): ({ADMIN, RELAY, AGENT}, "/v1/sandboxes/box1/files/a", None, 404),
        ("POST", "/v1/sandboxes/{name}/files/{path*}"): ({ADMIN, RELAY, AGENT}, "/v1/sandboxes/box1/files/a:move", {"to": "b"}, 404),
    }
    t.eq(sorted(set(allowed) | {("GET", "/v1/health"), ("GET", "/v1/links/{name}/{path*}")}), sorted(served),
         "the auth matrix covers every served route")
    for (method, path) in sorted(served):
        if path == "/v1/links/{name}/{path*}":  # no token: the signature is the authorization (test_files.py)
            for who, tok in callers.items():
                t.eq(d.request(method, "/v1/links/box1/a", token=tok).status, 403, f"auth matrix: {who} {method} {path}")
            continue
        if path == "/v1/health":
            for who, tok in callers.items():
                t.eq(d.request(method, path, token=tok).status, 200, f"auth matrix: {who} {method} {path}")
            continue
        roles, concrete, body, ok_status = allowed[(method, path)]
        for who, tok in callers.items():
            r = d.request(method, concrete, body, token=tok)
            if who in ("none", "garbage", "unknown", "revoked"):
                want = 401
            elif who not in roles or (who == "agent" and "/box1" in concrete):  # scoped to agentbox
                want = 403
            else:
                want = ok_status
            t.eq(r.status, want, f"auth matrix: {who} {method} {path}")
            if want == 401:
                t.ok(r.headers.get("WWW-Authenticate", "").startswith("Bearer"),
                     f"401 carries WWW-Authenticate for {who} {method} {path}")

    # Bad input changes nothing.
    before = d.request("GET", "/v1/tokens", token=admin).json["tokens"]
    cases = [
        ("malformed JSON", dict(raw=b'{"role":', headers={"Content-Type": "application/json"}), 400, "malformed_json"),
        ("unknown field", dict(body={"role": "relay", "extra": 1}), 400, "unknown_field"),
        ("bad role", dict(body={"role": "root"}), 400, "invalid_field"),
        ("agent without sandbox", dict(body={"role": "agent"}), 400, "invalid_field"),
        ("relay with sandbox", dict(body={"role": "relay", "sandbox": "x"}), 400, "invalid_field"),
        ("bad sandbox name", dict(body={"role": "agent", "sandbox": "../etc"}), 400, "invalid_field"),
        ("array body", dict(raw=b"[1]", headers={"Content-Type": "application/json"}), 400, "invalid_body"),
        ("duplicate keys", dict(raw=b'{"role":"relay","role":"admin"}', headers={"Content-Type": "application/json"}), 400, "malformed_json"),
        ("wrong content type", dict(raw=b'{"role":"relay"}', headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
        ("no content type", dict(raw=b'{"role":"relay"}'), 415, "unsupported_media_type"),
        ("oversized body", dict(raw=b"[" + b"1," * 600000 + b"1]", headers={"Content-Type": "application/json"}), 413, "too_large"),
        ("NUL in JSON", dict(raw=b'{"role":"rel\x00ay"}', headers={"Content-Type": "application/json"}), 400, "malformed_json"),
        ("empty body", dict(raw=b"", headers={"Content-Type": "application/json"}), 400, "invalid_body"),
    ]
    for name, kw, want, code in cases:
        r = d.request("POST", "/v1/tokens", token=admin, **kw)
        t.eq((r.status, (r.json or {}).get("error", {}).get("code")), (want, code), f"bad input: {name}")
    after = d.request("GET", "/v1/tokens", token=admin).json["tokens"]
    t.eq(after, before, "bad input changed no stored token")

    r = d.request("PUT", "/v1/tokens", token=admin)
    t.eq(r.status, 405, "PUT /v1/tokens is 405")
    t.eq(sorted(x.strip() for x in r.headers.get("Allow", "").split(",")), ["GET", "POST"], "405 lists Allow")
    r = d.request("GET", "/v1/nope", token=admin)
    t.eq((r.status, r.json["error"]["code"]), (404, "not_found"), "unknown path is a JSON 404")
    r = d.request("GET", "/v1/tokens/", token=admin)
    t.eq(r.status, 200, "a trailing slash names the same resource")

    # 100 concurrent clients, each making several authenticated calls.
    results = []
    lock = threading.Lock()

    def client(i):
        local = []
        for j in range(5):
            try:
                local.append(d.request("GET", "/v1/status" if j % 2 else "/v1/health", token=relay).status)
            except Exception as e:  # noqa: BLE001 - a failure is what we count
                local.append(repr(e))
        with lock:
            results.extend(local)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(100)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t.eq((len(results), sorted(set(map(str, results)))), (500, ["200"]), "100 concurrent clients all served")

    # kill -9 in the middle of a stream of token creations: every acknowledged token survives.
    acked = []
    stop = threading.Event()

    def creator():
        while not stop.is_set():
            try:
                r = d.request("POST", "/v1/tokens", {"role": "relay", "label": "kill9"}, token=admin, check=False)
            except Exception:  # noqa: BLE001 - the daemon dies under us on purpose
                return
            if r.status == 201:
                acked.append(r.json["token"])

    workers = [threading.Thread(target=creator) for _ in range(4)]
    for w in workers:
        w.start()
    while len(acked) < 200:
        threading.Event().wait(0.005)
    d.kill9()
    stop.set()
    for w in workers:
        w.join()
    db = sqlite3.connect(os.path.join(d.state, "state.db"))
    t.eq(db.execute("PRAGMA integrity_check").fetchone()[0], "ok", "state.db passes integrity_check after kill -9")
    db.close()
    d.start()
    bad = [(tok[:16], r.status, r.raw[:80]) for tok in acked for r in [d.request("GET", "/v1/status", token=tok)] if r.status != 200][:5]
    t.eq(bad, [], f"all {len(acked)} acknowledged tokens work after kill -9 and restart")
    t.eq(d.request("GET", "/v1/status", token=revoked).status, 401, "a revoked token stays revoked after restart")

    # Every response given above matched the spec.
    t.ok(not spec.errors, f"all {spec.checked} responses validate against api/openapi.yaml", "\n".join(spec.errors[:20]))
finally:
    d.cleanup()

# Configuration: refusals name the problem.
bad = Daemon(listen="0.0.0.0:0")
p = run_cmd(bad.argv(), text=True)
t.ok(p.returncode != 0 and "allow_remote_listen" in p.stderr, "a non-loopback listen address needs allow_remote_listen", p.stderr)
bad.cleanup()
bad = Daemon(config="listen = 127.0.0.1:0\nmax_body_size = lots\n")
p = run_cmd(bad.argv(), text=True)
t.ok(p.returncode != 0 and f"pocketcoder.conf:{bad.config_prefix_lines + 2}:" in p.stderr and "max_body_size" in p.stderr, "config errors name file:line and key", p.stderr)
bad.cleanup()
bad = Daemon(config="colour = blue\n")
p = run_cmd(bad.argv(), text=True)
t.ok(p.returncode != 0 and f":{bad.config_prefix_lines + 1}:" in p.stderr and "colour" in p.stderr, "unknown config keys are refused", p.stderr)
bad.cleanup()
small = Daemon(config="max_body_size = 2K\n").start()
try:
    tok = small.request("POST", "/v1/tokens", {"role": "admin"}, via="unix").json["token"]
    r = small.request("POST", "/v1/tokens", {"role": "relay", "label": "x" * 100}, token=tok)
    t.eq(r.status, 201, "max_body_size from config: small body accepted")
    r = small.request("POST", "/v1/tokens", raw=b" " * 3000 + b'{"role":"relay"}', headers={"Content-Type": "application/json"}, token=tok)
    t.eq(r.status, 413, "max_body_size from config: 3 KB body refused")
    small.stop()  # SIGTERM, then waits on a pidfd until it has exited
    t.ok(not os.path.exists(small.socket) and not os.path.exists(small.pidfile),
         "SIGTERM: the daemon exits and removes its socket and pid file",
         [p for p in (small.socket, small.pidfile) if os.path.exists(p)])
    small.start()
    second = Daemon(tmp=small.tmp)
    p = run_cmd(second.argv(), text=True, timeout=30)
    t.ok(p.returncode != 0 and "another pocketcoderd" in (p.stderr + small.logtext()), "a second daemon on the same state dir is refused", p.stderr)
finally:
    small.cleanup()
t.done()
