#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""pocketcoder as a person or a script uses it: help, exit codes, tables, --json, errors that say what to do."""
import json
import os

from pclib import CLI, Daemon, Tap, run_cmd

t = Tap()

for args in (["--help"], ["status", "--help"], ["token", "--help"], ["token", "create", "--help"], ["daemon", "--help"]):
    p = run_cmd([CLI, *args], text=True)
    t.ok(p.returncode == 0 and "Usage:" in p.stdout, f"pocketcoder {' '.join(args)} explains itself", p.stderr)
p = run_cmd([CLI, "frobnicate"], text=True)
t.ok(p.returncode == 2 and "unknown command" in p.stderr, "unknown command is a usage error (2)", p.stderr)
p = run_cmd([CLI, "token", "create"], text=True)
t.ok(p.returncode == 2 and "--role" in p.stderr, "missing --role is a usage error naming it", p.stderr)
p = run_cmd([CLI, "--socket", "/nonexistent/api.sock", "status"], text=True)
t.ok(p.returncode == 1 and "Is it running?" in p.stderr, "unreachable daemon: exit 1 and what to do", p.stderr)

d = Daemon().start()
try:
    p = d.cli("status")
    t.ok(p.returncode == 0 and "pocketcoderd" in p.stdout and "cgroup" in p.stdout and "namespaces" in p.stdout,
         "status prints health and capabilities", p.stdout + p.stderr)
    p = d.cli("--json", "status")
    t.ok(p.returncode == 0 and json.loads(p.stdout)["status"] == "ok", "status --json is the API's JSON", p.stdout)

    # Global options also follow the command, as people type them ("sandbox show NAME --json").
    p = d.cli("status", "--json")
    t.ok(p.returncode == 0 and json.loads(p.stdout)["status"] == "ok", "status --json after the command", p.stdout + p.stderr)
    p = d.cli("policy", "list", "--json")
    t.ok(p.returncode == 0 and "default" in {x["name"] for x in json.loads(p.stdout)["policies"]},
         "policy list --json after the subcommand", p.stdout + p.stderr)
    p = d.cli("sandbox", "list", "--json")
    t.ok(p.returncode == 0 and isinstance(json.loads(p.stdout)["sandboxes"], list), "sandbox list --json", p.stdout + p.stderr)
    p = d.cli("status", "--socket", "/nonexistent/api.sock")
    t.ok(p.returncode == 1 and "/nonexistent/api.sock" in p.stderr, "--socket PATH after the command is used", p.stderr)
    p = d.cli("status", "--socket=" + d.socket, "--json")
    t.ok(p.returncode == 0 and json.loads(p.stdout)["status"] == "ok", "--socket=PATH after the command", p.stdout + p.stderr)
    p = d.cli("status", "--socket")
    t.ok(p.returncode == 2 and "--socket requires an argument" in p.stderr, "--socket without PATH is a usage error", p.stderr)
    p = d.cli("status", "--json=yes")
    t.ok(p.returncode == 2 and "--json takes no argument" in p.stderr, "--json=VALUE is a usage error", p.stderr)
    # Words that belong to a command being decided (or run) are left alone, "--json" included.
    pol = os.path.join(d.tmp, "cli-global.policy")
    with open(pol, "w") as f:
        f.write("version 1\ndefault deny\nallow exec git status\n")
    p = d.cli("policy", "decide", "--policy", pol, "git", "status", "--json")
    t.ok(p.returncode == 0 and p.stdout.splitlines()[0] == "deny" and "--json" in p.stdout,
         "policy decide: --json among the decided words is a word of the command", p.stdout + p.stderr)
    p = d.cli("policy", "decide", "--policy", pol, "--", "git", "status", "--json")
    t.ok(p.returncode == 0 and p.stdout.splitlines()[0] == "deny", "policy decide: --json after -- is a word of the command",
         p.stdout + p.stderr)
    p = d.cli("policy", "decide", "--policy", pol, "--json", "git", "status")
    t.ok(p.returncode == 0 and json.loads(p.stdout)["decision"] == "allow", "policy decide --json before the command words",
         p.stdout + p.stderr)
    p = d.cli("policy", "decide", "--policy", pol, "--json", "--", "git", "status")
    t.ok(p.returncode == 0 and json.loads(p.stdout)["decision"] == "allow", "policy decide --json before --", p.stdout + p.stderr)

    p = d.cli("token", "create", "--role", "relay", "--label", "phone")
    tok = p.stdout.strip()
    t.ok(p.returncode == 0 and tok.startswith("pct_") and "shown only now" in p.stderr, "token create prints the token once", p.stderr)
    p = d.cli("token", "list")
    lines = p.stdout.splitlines()
    t.ok(p.returncode == 0 and lines[0].split() == ["ID", "ROLE", "SANDBOX", "LABEL", "CREATED", "BY", "EXPIRES"] and "phone" in p.stdout,
         "token list is an aligned table", p.stdout)
    t.ok(tok not in p.stdout, "token list never shows secrets")
    header = lines[0]
    t.ok(all(len(line) >= header.index("CREATED") and line[header.index("ROLE") - 2:header.index("ROLE")] == "  " for line in lines[1:]),
         "columns are aligned", p.stdout)
    p = d.cli("--json", "token", "list")
    ids = [x["id"] for x in json.loads(p.stdout)["tokens"]]
    t.ok(p.returncode == 0 and len(ids) == 1, "token list --json", p.stdout)

    # A relay token over the socket acts as relay, not as the local admin.
    p = d.cli("token", "list", token=tok)
    t.ok(p.returncode == 1 and "HTTP 403" in p.stderr, "a relay token may not list tokens (exit 1, 403)", p.stderr)
    p = d.cli("--url", f"http://127.0.0.1:{d.port}", "status")
    t.ok(p.returncode == 1 and "HTTP 401" in p.stderr and "--token" in p.stderr, "TCP without a token: 401 and a hint", p.stderr)
    p = d.cli("--url", f"http://127.0.0.1:{d.port}", "--token", tok, "status")
    t.ok(p.returncode == 0, "TCP with a relay token: status works", p.stderr)

    # Policies, online.
    p = d.cli("policy", "list")
    t.ok(p.returncode == 0 and p.stdout.split("\n")[0].split()[:3] == ["NAME", "HASH", "RULES"] and "default" in p.stdout,
         "policy list is a table of the loaded policies", p.stdout + p.stderr)
    p = d.cli("policy", "show", "strict")
    t.ok(p.returncode == 0 and "version 1" in p.stdout and "default deny" in p.stdout, "policy show prints the source", p.stdout)
    p = d.cli("--json", "policy", "reload")
    t.ok(p.returncode == 0 and {x["name"] for x in json.loads(p.stdout)["policies"]} >= {"default", "strict"},
         "policy reload --json lists the policies after the reload", p.stdout + p.stderr)
    p = d.cli("policy", "show", "nope")
    t.ok(p.returncode == 1 and "does not exist" in p.stderr, "policy show of a missing policy: exit 1 and why", p.stderr)

    p = d.cli("token", "rm", ids[0])
    t.ok(p.returncode == 0 and "Revoked" in p.stdout, "token rm revokes", p.stderr)
    p = d.cli("token", "rm", ids[0])
    t.ok(p.returncode == 1 and "does not exist" in p.stderr, "token rm of a missing id fails with the reason", p.stderr)
    p = d.cli("--url", f"http://127.0.0.1:{d.port}", "--token", tok, "status")
    t.ok(p.returncode == 1 and "HTTP 401" in p.stderr, "a revoked token stops working at once", p.stderr)
finally:
    d.cleanup()
t.done()
