#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The "Always Ask" flow through the HTTP API: an exec the policy answers with `ask` waits as a permission
request (listed for the relay, nothing run), approve runs it, deny returns the reason to the engine, requests
expire, remembered scopes (exact, prefix) skip the question until they expire or are forgotten and never
override a policy deny, requests survive a kill -9, and signed approvals (require_signed_approvals) refuse
unsigned, forged, replayed and altered signatures while a real device key approves."""
import json
import os
import secrets
import subprocess
import time

from pclib import CLI, Daemon, Spec, Tap, run_cmd

t = Tap()
if os.geteuid() != 0:
    t.skip("permission tests", "need root (namespaces, cgroups, uid ranges)")
    t.done()

spec = Spec()
P = "pm" + secrets.token_hex(3)
BOX, OTHER = f"{P}-a", f"{P}-b"
TIMEOUT = 10  # permission_timeout: long enough for a person (this test), short enough to watch one expire
d = Daemon(spec=spec, config=f"uid_range_base = 1107296256\npermission_timeout = {TIMEOUT}\n")
POLICY = """version 1
default deny
allow exec echo ...
allow exec cat ...
allow exec test ...
ask exec touch ...
ask exec mkdir ...
ask exec git ...
deny exec mkdir -p /workspace/forbidden
test ask "touch /workspace/x"
test deny "mkdir -p /workspace/forbidden"
test ask "mkdir -p /workspace/fine"
"""
with open(os.path.join(d.policies, "asking.policy"), "w") as f:
    f.write(POLICY)


def execs(box, cmd, cwd="/workspace", wait=0, **kw):
    body = {"cmd": cmd, "cwd": cwd, "wait": wait}
    body.update(kw)
    return d.request("POST", f"/v1/sandboxes/{box}/execs", body, via="unix")


def exec_get(eid, wait=0):
    return d.request("GET", f"/v1/execs/{eid}?wait={wait}", via="unix")


def pending(box=None):
    q = "?state=pending" + (f"&sandbox={box}" if box else "")
    return d.request("GET", "/v1/permissions" + q, via="unix").json["permissions"]


def exists(box, path):
    return d.sandbox_run(box, "test", "-e", path).returncode == 0


def ask(cmd, box=BOX, cwd="/workspace"):
    """Proposes CMD; returns (exec id, permission id) of the request it became."""
    r = execs(box, cmd, cwd)
    t.eq(r.status, 202, f"ask: {cmd!r} is accepted as waiting (202)")
    t.eq(r.json.get("state"), "pending", f"ask: {cmd!r} waits for a person")
    return r.json["id"], r.json.get("permission")


def finished(eid):
    r = exec_get(eid, wait=60)
    return r.json


def test_ask_approve():
    eid, pid = ask("touch /workspace/approved")
    t.ok(pid and len(pid) == 32, "the exec names its permission request", pid)
    p = [x for x in pending() if x["id"] == pid]
    t.eq(len(p), 1, "the request is listed as pending")
    if p:
        p = p[0]
        for k in ("id", "sandbox", "command", "cwd", "explanation", "created", "expires"):
            t.ok(k in p, f"a pending request has {k}")
        t.eq((p["sandbox"], p["command"], p["cwd"], p["exec"]), (BOX, "touch /workspace/approved", "/workspace", eid),
             "the request says what would run where")
        t.ok(p["expires"] - p["created"] == TIMEOUT, "it expires after permission_timeout", p)
        t.ok("ask" in (p["explanation"] or ""), "its explanation says why the policy asks", p["explanation"])
    t.ok(not exists(BOX, "/workspace/approved"), "nothing ran before the approval")
    relay = d.request("POST", "/v1/tokens", {"role": "relay"}, via="unix").json["token"]
    r = d.request("POST", f"/v1/permissions/{pid}/approve", {"scope": "once"}, token=relay)
    t.eq((r.status, r.json.get("state"), r.json.get("scope")), (200, "approved", "once"), "the relay approves once")
    e = finished(eid)
    t.eq((e.get("state"), e.get("exit_code")), ("finished", 0), "the approved exec ran to its end")
    t.ok(exists(BOX, "/workspace/approved"), "the approved command did its work")
    r = d.request("POST", f"/v1/permissions/{pid}/approve", {}, via="unix")
    t.eq((r.status, r.json["error"]["code"]), (409, "already_decided"), "a request is decided once")
    r = d.request("POST", f"/v1/permissions/{pid}/deny", {}, via="unix")
    t.eq(r.status, 409, "a decided request cannot be denied afterwards")
    t.eq([x for x in pending() if x["id"] == pid], [], "an approved request is no longer pending")
    # once is once: the same command asks again
    eid2, pid2 = ask("touch /workspace/approved")
    t.ok(pid2 != pid, "scope once remembers nothing")
    d.request("POST", f"/v1/permissions/{pid2}/deny", {"reason": "enough"}, via="unix")


def test_ask_deny():
    eid, pid = ask("touch /workspace/denied")
    r = d.request("POST", f"/v1/permissions/{pid}/deny", {"reason": "not in this repository"}, via="unix")
    t.eq((r.status, r.json.get("state"), r.json.get("reason")), (200, "denied", "not in this repository"),
         "deny records the reason")
    e = finished(eid)
    t.eq(e.get("state"), "denied", "the exec is denied")
    t.ok("not in this repository" in str(e), "the engine gets the person's reason", e)
    t.ok(not exists(BOX, "/workspace/denied"), "a denied command never ran")
    # the engine waiting on POST gets the reason as a 403 when the decision comes within its wait
    import threading
    res = {}
    th = threading.Thread(target=lambda: res.update(r=execs(BOX, "touch /workspace/denied2", wait=30)))
    th.start()
    deadline = time.monotonic() + 20
    pid2 = None
    while pid2 is None and time.monotonic() < deadline:
        # the request appears once the POST is suspended; an event would do, but the id is what we need
        r = d.request("GET", f"/v1/events?type=permission.requested&sandbox={BOX}&wait=5&since={since_seq()}",
                      via="unix")
        for ev in r.json["events"]:
            if ev["data"]["command"] == "touch /workspace/denied2":
                pid2 = ev["data"]["id"]
    t.ok(pid2, "the waiting exec's request is published as permission.requested")
    d.request("POST", f"/v1/permissions/{pid2}/deny", {"reason": "use a branch"}, via="unix")
    th.join(40)
    r = res.get("r")
    t.ok(r is not None and r.status == 403 and "use a branch" in r.raw,
         "a waiting POST answers 403 with the reason", r)


_since = [0]


def since_seq():
    return _since[0]


def test_expiry():
    r = d.request("GET", "/v1/events?since=0&wait=0", via="unix")
    start = r.json["next"]
    eid, pid = ask("touch /workspace/expired")
    r = d.request("GET", f"/v1/events?type=permission.decided&sandbox={BOX}&since={start}&wait={TIMEOUT + 20}",
                  via="unix")
    evs = [e for e in r.json["events"] if e["data"]["id"] == pid]
    t.ok(evs and evs[0]["data"]["decision"] == "expired", "an unanswered request expires (event)", r.json)
    p = d.request("GET", f"/v1/permissions/{pid}", via="unix").json
    t.eq((p["state"], p["reason"]), ("expired", "expired"), "the request is expired")
    e = finished(eid)
    t.eq(e.get("state"), "denied", "an expired request denies its exec")
    t.ok("expired" in str(e), "the engine is told it expired", e)
    t.ok(not exists(BOX, "/workspace/expired"), "an expired command never ran")
    r = d.request("POST", f"/v1/permissions/{pid}/approve", {}, via="unix")
    t.eq(r.status, 409, "an expired request cannot be approved")


def test_remember_exact():
    eid, pid = ask("mkdir -p /workspace/ex")
    r = d.request("POST", f"/v1/permissions/{pid}/approve", {"scope": "exact", "minutes": 5}, via="unix")
    t.eq(r.status, 200, "approve with scope exact")
    finished(eid)
    rules = d.request("GET", f"/v1/permissions/rules?sandbox={BOX}", via="unix").json["rules"]
    mine = [x for x in rules if x["permission"] == pid]
    t.eq(len(mine), 1, "an exact approval is a remembered rule")
    if mine:
        t.eq((mine[0]["scope"], mine[0]["cwd"], mine[0]["argv"]), ("exact", "/workspace", ["mkdir", "-p", "/workspace/ex"]),
             "the rule holds the words and the directory")
        t.ok(290 <= mine[0]["expires"] - mine[0]["created"] <= 300, "it expires after the minutes given", mine[0])
    r = execs(BOX, "mkdir -p /workspace/ex", wait=30)
    t.eq((r.status, r.json.get("state")), (200, "finished"), "the same command in the same place runs at once")
    t.ok(r.json.get("remembered") is True, "and says it ran on a remembered approval", r.json)
    r = execs(BOX, "mkdir  -p  '/workspace/ex'", wait=30)
    t.eq(r.json.get("state"), "finished", "exact compares words, not spacing or quoting")
    d.sandbox_run(BOX, "mkdir", "-p", "/workspace/other")
    r = execs(BOX, "mkdir -p /workspace/ex", cwd="/workspace/other", wait=0)
    t.eq(r.status, 202, "the same command in another directory asks again")
    d.request("POST", f"/v1/permissions/{r.json['permission']}/deny", {}, via="unix")
    r = execs(BOX, "mkdir -p /workspace/ex2", wait=0)
    t.eq(r.status, 202, "another command asks again")
    d.request("POST", f"/v1/permissions/{r.json['permission']}/deny", {}, via="unix")
    t.ok(exists(BOX, "/workspace/ex"), "the remembered command did its work")
    if mine:
        t.eq(d.request("DELETE", f"/v1/permissions/rules/{mine[0]['id']}", via="unix").status, 204, "forget the rule")
        t.eq(d.request("DELETE", f"/v1/permissions/rules/{mine[0]['id']}", via="unix").status, 404, "forgotten once")
        r = execs(BOX, "mkdir -p /workspace/ex", wait=0)
        t.eq(r.status, 202, "a forgotten rule asks again")
        d.request("POST", f"/v1/permissions/{r.json['permission']}/deny", {}, via="unix")


def test_remember_prefix():
    eid, pid = ask("mkdir -p /workspace/pre/a")
    r = d.request("POST", f"/v1/permissions/{pid}/approve", {"scope": "prefix", "minutes": 1}, via="unix")
    t.eq(r.status, 200, "approve with scope prefix")
    finished(eid)
    rule = [x for x in d.request("GET", "/v1/permissions/rules", via="unix").json["rules"] if x["permission"] == pid]
    t.ok(rule and rule[0]["prefix"] == ["mkdir"], "prefix keeps the program (its next word is an option)", rule)
    r = execs(BOX, "mkdir /workspace/pre-b", cwd="/workspace/other", wait=30)
    t.eq(r.json.get("state"), "finished", "a simple command with the prefix runs anywhere in the sandbox")
    r = execs(BOX, "mkdir -p /workspace/forbidden", wait=30)
    t.eq(r.status, 403, "a remembered prefix never overrides a policy deny")
    t.ok(not exists(BOX, "/workspace/forbidden"), "the denied command did not run")
    r = execs(BOX, "mkdir /workspace/pc1 && touch /workspace/pc1/x", wait=0)
    t.eq(r.status, 202, "a compound command is not covered by a prefix")
    d.request("POST", f"/v1/permissions/{r.json['permission']}/deny", {}, via="unix")
    r = execs(OTHER, "mkdir /workspace/pre-c", wait=0)
    t.eq(r.status, 202, "a rule belongs to its sandbox only")
    d.request("POST", f"/v1/permissions/{r.json['permission']}/deny", {}, via="unix")
    # prefix needs a simple command
    eid, pid = ask("touch /workspace/a /workspace/b > /dev/null")
    r = d.request("POST", f"/v1/permissions/{pid}/approve", {"scope": "prefix"}, via="unix")
    t.ok(r.status in (400, 403) and r.json["error"]["code"] in ("scope_unavailable", "denied"),
         "scope prefix is refused for a command with a redirection", r.json)
    d.request("POST", f"/v1/permissions/{pid}/deny", {}, via="unix")
    # sub-command prefixes
    eid, pid = ask("git init /workspace/repo")
    d.request("POST", f"/v1/permissions/{pid}/approve", {"scope": "prefix", "minutes": 1}, via="unix")
    rule = [x for x in d.request("GET", "/v1/permissions/rules", via="unix").json["rules"] if x["permission"] == pid]
    t.ok(rule and rule[0]["prefix"] == ["git", "init"], "prefix keeps a sub-command", rule)
    r = execs(BOX, "git status", cwd="/workspace", wait=0)
    t.eq(r.status, 202, "another sub-command asks again")
    d.request("POST", f"/v1/permissions/{r.json['permission']}/deny", {}, via="unix")


def test_bad_input():
    eid, pid = ask("touch /workspace/bad")
    for body, what in (({"scope": "always"}, "unknown scope"), ({"scope": "exact", "minutes": 0}, "zero minutes"),
                       ({"scope": "exact", "minutes": 10081}, "more than a week"), ({"sign": 1}, "unknown field"),
                       ({"device": "x", "signature": "AAAA"}, "a signature without expiry")):
        r = d.request("POST", f"/v1/permissions/{pid}/approve", body, via="unix")
        t.eq(r.status, 400, f"approve refuses {what}")
    r = d.request("POST", f"/v1/permissions/{pid}/approve", raw=b"{not json", via="unix",
                  headers={"Content-Type": "application/json"})
    t.eq(r.status, 400, "approve refuses malformed JSON")
    r = d.request("POST", f"/v1/permissions/{pid}/deny", {"reason": "x" * 1025}, via="unix")
    t.eq(r.status, 400, "deny refuses an over-long reason")
    t.eq(d.request("GET", f"/v1/permissions/{pid}", via="unix").json["state"], "pending",
         "refused decisions changed nothing")
    t.eq(d.request("GET", "/v1/permissions?state=bogus", via="unix").status, 400, "an unknown state filter is 400")
    agent = d.request("POST", "/v1/tokens", {"role": "agent", "sandbox": BOX}, via="unix").json["token"]
    r = d.request("POST", f"/v1/permissions/{pid}/approve", {}, token=agent)
    t.eq(r.status, 403, "an agent cannot approve its own request")
    d.request("POST", f"/v1/permissions/{pid}/deny", {}, via="unix")


def test_restart():
    eid, pid = ask("touch /workspace/restarted")
    d.kill9()
    d.start()
    p = d.request("GET", f"/v1/permissions/{pid}", via="unix").json
    t.eq(p.get("state"), "pending", "a pending request survives kill -9")
    t.eq(exec_get(eid).json.get("state"), "pending", "its exec still waits")
    r = d.request("POST", f"/v1/permissions/{pid}/approve", {}, via="unix")
    t.eq(r.status, 200, "and is approved after the restart")
    e = finished(eid)
    t.eq((e.get("state"), e.get("exit_code")), ("finished", 0), "the exec approved after a restart runs")


def test_cli():
    eid, pid = ask("touch /workspace/cli")
    r = d.cli("permissions", "list")
    t.ok(r.returncode == 0 and pid in r.stdout and "touch /workspace/cli" in r.stdout, "permissions list shows it",
         r.stdout + r.stderr)
    r = d.cli("permissions", "show", pid)
    t.ok(r.returncode == 0 and "ask" in r.stdout, "permissions show explains it", r.stdout + r.stderr)
    r = d.cli("permissions", "approve", pid, "--remember", "exact", "--minutes", "2")
    t.eq(r.returncode, 0, "permissions approve --remember exact")
    t.eq(finished(eid).get("exit_code"), 0, "the exec approved from the CLI ran")
    r = d.cli("permissions", "rules", "--sandbox", BOX)
    t.ok(r.returncode == 0 and "exact" in r.stdout, "permissions rules lists the rule", r.stdout)
    r = d.cli("permissions", "approve", pid)
    t.eq(r.returncode, 1, "approving a decided request fails")
    r = d.cli("permissions", "approve", "nothex")
    t.eq(r.returncode, 2, "a malformed id is a usage error")
    eid, pid = ask("touch /workspace/cli2")
    r = d.cli("permissions", "deny", pid, "--reason", "from the terminal")
    t.eq(r.returncode, 0, "permissions deny --reason")
    t.ok("from the terminal" in str(finished(eid)), "the reason reaches the engine")


def test_signed():
    # a second daemon that requires signed approvals (and keeps no ready exec window: exec_ready_windows = 0)
    s = Daemon(spec=spec, config=f"uid_range_base = 1115684864\nrequire_signed_approvals = yes\n"
               "exec_ready_windows = 0\n")
    with open(os.path.join(s.policies, "asking.policy"), "w") as f:
        f.write(POLICY)
    try:
        s.start()
        box = f"{P}-s"
        t.eq(s.create_sandbox(box, network="none", policy="asking").status, 201, "signed: a sandbox")
        key = os.path.join(s.tmp, "phone.key")
        r = s.cli("devices", "keygen", key)
        t.ok(r.returncode == 0, "devices keygen writes a key", r.stderr)
        pub = r.stdout.strip().split()[-1]
        r = s.request("POST", "/v1/devices", {"name": "phone", "public_key": pub}, via="unix")
        t.ok(r.status == 201, "the phone's public key is registered", r)
        dev = r.json["id"]
        other_key = os.path.join(s.tmp, "other.key")
        s.cli("devices", "keygen", other_key)

        def s_ask(cmd):
            r = s.request("POST", f"/v1/sandboxes/{box}/execs", {"cmd": cmd, "cwd": "/workspace", "wait": 0},
                          via="unix")
            return r.json["id"], r.json["permission"]

        def sign(keyfile, pid, command, scope="once", ttl="5m"):
            """The approval body `pocketcoder devices sign` makes (the phone's side)."""
            r = s.cli("devices", "sign", "--key", keyfile, "--id", pid, "--command", command, "--cwd", "/workspace",
                      "--scope", scope, "--ttl", ttl, "--device", dev)
            return json.loads(r.stdout)

        def approve(pid, body):
            return s.request("POST", f"/v1/permissions/{pid}/approve", body, via="unix")

        eid, pid = s_ask("touch /workspace/signed")
        r = approve(pid, {})
        t.eq((r.status, r.json["error"]["code"]), (403, "signature_required"), "signed: an unsigned approval is refused")
        r = approve(pid, sign(other_key, pid, "touch /workspace/signed"))
        t.eq(r.status, 403, "signed: a signature by an unregistered key is refused")
        r = approve(pid, sign(key, pid, "touch /workspace/other"))
        t.eq(r.status, 403, "signed: a signature over another command is refused")
        body = sign(key, pid, "touch /workspace/signed")
        r = approve(pid, dict(body, scope="prefix", minutes=60))
        t.eq(r.status, 403, "signed: a signature for scope once does not approve scope prefix")
        r = approve(pid, dict(body, expires=body["expires"] + 3600))
        t.eq(r.status, 403, "signed: a signature whose expiry was moved is refused")
        short = sign(key, pid, "touch /workspace/signed", ttl="1s")
        time.sleep(2)  # a signature valid for one second, used after it: the clock is the point here
        r = approve(pid, short)
        t.eq(r.status, 403, "signed: an expired signature is refused")
        t.eq(s.request("GET", f"/v1/permissions/{pid}", via="unix").json["state"], "pending",
             "signed: refused approvals changed nothing")
        r = approve(pid, body)
        t.eq((r.status, r.json.get("device")), (200, dev), "signed: the device's signature approves")
        e = s.request("GET", f"/v1/execs/{eid}?wait=60", via="unix").json
        t.eq(e.get("exit_code"), 0, "signed: the approved exec ran")
        sig = body
        eid2, pid2 = s_ask("touch /workspace/signed")
        r = approve(pid2, sig)
        t.eq(r.status, 403, "signed: a replayed signature does not approve another request")
        r = s.cli("permissions", "approve", pid2, "--key", key, "--device", dev)
        t.ok(r.returncode == 0, "signed: pocketcoder permissions approve --key signs and approves", r.stderr)
        e = s.request("GET", f"/v1/execs/{eid2}?wait=60", via="unix").json
        t.eq(e.get("exit_code"), 0, "signed: the CLI-approved exec ran")
        w = s.sandbox_run(box, "tmux", "-S", "/run/tmux/agent.sock", "list-windows", "-a", "-F", "#{window_name}")
        t.eq([n for n in w.stdout.split() if n.startswith("pc-")], [],
             "exec_ready_windows = 0: no window is kept ready after the execs ended")
        audit = s.request("GET", "/v1/audit?limit=1000", via="unix").json
        approvals = [a for a in audit.get("entries", audit.get("audit", [])) if a.get("action") == "permission.approve"]
        t.ok(approvals and all(dev in (a.get("detail") or "") for a in approvals),
             "signed: the ledger names the approving device", approvals)
    finally:
        s.cleanup()


try:
    d.start()
    for b in (BOX, OTHER):
        t.eq(d.create_sandbox(b, network="none", policy="asking").status, 201, f"sandbox {b}")
    r = d.request("GET", "/v1/events?since=0&wait=0", via="unix")
    _since[0] = r.json["next"]
    t.run_all([test_ask_approve, test_ask_deny, test_expiry, test_remember_exact, test_remember_prefix,
               test_bad_input, test_restart, test_cli, test_signed], spec=spec)
finally:
    d.cleanup()
