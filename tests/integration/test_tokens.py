#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Agent tokens and agent-socket connections are bound to a sandbox's identity, not its name: deleting the
sandbox removes its tokens, and neither a token nor an open agent connection works for a new sandbox of the
same name; no agent token for a sandbox that does not exist; tokens may expire (--ttl / ttl_seconds)."""
import os
import secrets
import socket
import sqlite3
import time

from pclib import Daemon, Spec, Tap, read_response

t = Tap()
if os.geteuid() != 0:
    t.skip("token binding tests", "need root (namespaces, cgroups, uid ranges)")
    t.done()

spec = Spec()
A = "tk" + secrets.token_hex(3)
d = Daemon(spec=spec, config="uid_range_base = 2046820352\n")


def agent_connection(name):
    """A keep-alive connection on the sandbox's agent socket (root on the host reaches it)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(os.path.join(d.run, "sandboxes", name, "api.sock"))
    return s


def whoami_on(s):
    """GET /v1/whoami on an open connection: (status, body)."""
    s.sendall(b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\n\r\n")
    return read_response(s)


def token_ids():
    return [x["id"] for x in d.request("GET", "/v1/tokens", via="unix").json["tokens"]]


try:
    d.start()
    r = d.request("POST", "/v1/tokens", {"role": "agent", "sandbox": A}, via="unix")
    t.eq((r.status, r.json["error"]["code"]), (404, "not_found"), "no agent token for a sandbox that does not exist")
    p = d.cli("token", "create", "--role", "agent", "--sandbox", A)
    t.ok(p.returncode != 0 and "does not exist" in p.stderr, "the CLI says so too", p.stderr)

    t.eq(d.create_sandbox(A, network="none").status, 201, "sandbox created")
    r = d.request("POST", "/v1/tokens", {"role": "agent", "sandbox": A}, via="unix")
    t.eq(r.status, 201, "agent token for an existing sandbox")
    agent, agent_id = r.json["token"], r.json["id"]
    r = d.request("GET", "/v1/whoami", token=agent)
    t.ok(r.status == 200 and r.json["sandbox"] == A, "the agent token works", r)
    conn = agent_connection(A)
    status, body = whoami_on(conn)
    t.ok(status == 200 and body["sandbox"] == A and body["via"] == "agent_socket", "an agent-socket connection works", body)

    t.eq(d.request("DELETE", f"/v1/sandboxes/{A}", via="unix").status, 204, "sandbox deleted")
    t.eq(d.request("GET", "/v1/whoami", token=agent).status, 401, "the token of a deleted sandbox is refused")
    t.ok(agent_id not in token_ids(), "and it was removed with the sandbox", token_ids())
    status, body = whoami_on(conn)
    t.eq(status, 401, "an agent connection of the deleted sandbox is refused")

    t.eq(d.create_sandbox(A, network="none").status, 201, "a new sandbox with the same name")
    r = d.request("GET", "/v1/whoami", token=agent)
    t.eq(r.status, 401, "the old token does not work for the new sandbox of that name")
    r = d.request("GET", f"/v1/sandboxes/{A}", token=agent)
    t.eq(r.status, 401, "nor can it read the new sandbox")
    status, body = whoami_on(conn)
    t.eq(status, 401, "the old agent connection does not speak for the new sandbox either")
    conn.close()
    conn = agent_connection(A)
    status, body = whoami_on(conn)
    t.ok(status == 200 and body["sandbox"] == A, "a new connection on the new sandbox's socket works", body)
    conn.close()

    # The binding is in the store: a token row pointing at the old sandbox's identity stays refused.
    db = sqlite3.connect(os.path.join(d.state, "state.db"))
    t.eq(db.execute("SELECT count(*) FROM tokens WHERE role = 'agent'").fetchone()[0], 0, "no agent token row is left")
    db.close()

    # ---- expiry ----
    r = d.request("POST", "/v1/tokens", {"role": "relay", "ttl_seconds": 1}, via="unix")
    t.ok(r.status == 201 and isinstance(r.json["expires_at"], int) and
         r.json["expires_at"] - r.json["created_at"] in (1, 2), "a token with ttl_seconds has expires_at", r)
    short, short_id, expires = r.json["token"], r.json["id"], r.json["expires_at"]
    t.eq(d.request("GET", "/v1/status", token=short).status, 200, "it works before it expires")
    listed = {x["id"]: x for x in d.request("GET", "/v1/tokens", via="unix").json["tokens"]}
    t.eq(listed[short_id]["expires_at"], expires, "the list shows its expiry")
    time.sleep(max(0.0, expires - time.time()) + 0.05)  # until the daemon's clock passes expires_at
    r = d.request("GET", "/v1/status", token=short)
    t.eq(r.status, 401, "an expired token is refused")
    t.ok(short_id not in token_ids(), "and removed", token_ids())
    for bad in (0, -5, "10", 1.5, 400000000):
        r = d.request("POST", "/v1/tokens", {"role": "relay", "ttl_seconds": bad}, via="unix")
        t.eq((r.status, r.json["error"]["code"]), (400, "invalid_field"), f"ttl_seconds {bad!r} is refused")

    p = d.cli("token", "create", "--role", "relay", "--ttl", "2h", "--label", "ttl-cli")
    t.ok(p.returncode == 0 and p.stdout.startswith("pct_"), "token create --ttl 2h", p.stderr)
    tok = [x for x in d.request("GET", "/v1/tokens", via="unix").json["tokens"] if x["label"] == "ttl-cli"][0]
    t.ok(7200 <= tok["expires_at"] - tok["created_at"] <= 7201, "--ttl 2h is two hours", tok)
    p = d.cli("token", "list")
    line = [x for x in p.stdout.splitlines() if tok["id"] in x]
    t.ok(p.returncode == 0 and "EXPIRES" in p.stdout.splitlines()[0] and line and
         time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(tok["expires_at"])) in line[0],
         "token list shows the expiry", p.stdout)
    p = d.cli("token", "create", "--role", "relay", "--ttl", "soon")
    t.ok(p.returncode == 2 and "--ttl" in p.stderr, "a bad --ttl is a usage error", p.stderr)

    t.ok(not spec.errors, f"all {spec.checked} responses validate against api/openapi.yaml", "\n".join(spec.errors[:20]))
finally:
    d.cleanup()
t.done()
