#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Two daemons side by side on one host, with the same cgroup parent, the same nftables table and the same
sandbox names in egress mode: only their daemon ids keep their host objects apart. Creating, deleting and
crash-cleaning sandboxes in one must leave the other's sandbox, its veth, nftables elements, cgroup and
network untouched. (Before the per-daemon id, the second daemon's sandbox of the same name deleted the
first one's host veth.) Needs nftables: host only."""
import os
import re
import secrets
import sqlite3

from pclib import Daemon, Spec, Tap, run_cmd

t = Tap()
if os.geteuid() != 0:
    t.skip("two daemons side by side", "needs root (namespaces, veths, nftables, cgroups)")
    t.done()

spec = Spec()
P = "two" + secrets.token_hex(3)
NAME = f"{P}-same"
a = Daemon(spec=spec, config="uid_range_base = 1962934272\negress_subnet = 10.232.0.0/16\n")
b = Daemon(spec=spec, config="uid_range_base = 1979711488\negress_subnet = 10.233.0.0/16\n")
# What a default configuration shares: one cgroup parent, one nftables table.
b.cgroup_parent, b.nft_table = a.cgroup_parent, a.nft_table
b.config = f"cgroup_parent = {a.cgroup_parent}\nnft_table = {a.nft_table}\n" \
           "uid_range_base = 1979711488\negress_subnet = 10.233.0.0/16\n" \
           "sandbox_disk = none\n"  # its database is turned back into one from before disk limits below


def links():
    """Host interfaces: name -> its IPv4 addresses with prefix."""
    out = run_cmd(["ip", "-o", "-4", "addr", "show"], text=True).stdout
    res = {}
    for line in out.splitlines():
        f = line.split()
        res.setdefault(f[1].split("@")[0], []).append(f[3])
    return res


def veth_of(subnet_prefix):
    return [n for n, addrs in links().items() if any(x.startswith(subnet_prefix) for x in addrs)]


def set_elements(setname):
    return run_cmd(["nft", "list", "set", "inet", a.nft_table_name(), setname], text=True).stdout


def a_state(what):
    """Everything about a's sandbox that must survive whatever b does."""
    s = a.request("GET", f"/v1/sandboxes/{NAME}", via="unix").json
    veths = veth_of("10.232.")
    ifname = veths[0] if veths else None
    # From inside: eth0 is there with its address and route, and a connection to the gateway is rejected by
    # our nftables rule for this veth ("No route to host": the packet crossed the veth and matched a's set
    # element). Without the veth it would be "Network is unreachable"; without the element it would reach
    # the host.
    p = a.sandbox_run(NAME, "bash", "-c", "cat /proc/net/route; echo x > /dev/tcp/10.232.0.1/9")
    cg = s.get("cgroup_path") or ""
    procs = open(os.path.join(cg, "cgroup.procs")).read().split() if cg and os.path.isdir(cg) else []
    t.ok(s["state"] == "running" and str(s["init_pid"]) in procs, f"{what}: a's sandbox runs in its cgroup {cg}",
         (s, procs))
    t.ok(ifname is not None and ifname in set_elements("sandbox_ifs"),
         f"{what}: a's veth {ifname} exists with 10.232.0.1 and is in the nftables set", (links(), set_elements("sandbox_ifs")))
    t.ok("eth0" in p.stdout and "No route to host" in p.stderr,
         f"{what}: a's sandbox network works (eth0 routed, host side rejects by a's rule)", (p.stdout, p.stderr))
    return s, ifname


try:
    a.start()
    b.start()
    t.ok(a.pid != b.pid, "two daemons run with the same cgroup parent and nftables table")

    t.eq(a.create_sandbox(NAME, network="egress").status, 201, "a: sandbox created (egress)")
    s0, a_if = a_state("after a's create")
    t.ok(a_if is not None and re.fullmatch(r"pc[0-9a-f]{6}[-_][0-9a-z-]+", a_if) is not None,
         f"a's veth name {a_if} carries a's daemon id")

    t.eq(b.create_sandbox(NAME, network="egress").status, 201, "b: a sandbox with the same name is created too")
    b_ifs = veth_of("10.233.")
    t.ok(len(b_ifs) == 1 and b_ifs[0] != a_if, f"b's veth {b_ifs} is not a's {a_if}")
    sb = b.request("GET", f"/v1/sandboxes/{NAME}", via="unix").json
    t.ok(sb["cgroup_path"] != s0["cgroup_path"] and sb["cgroup_parent"] != s0["cgroup_parent"],
         "the two sandboxes have different cgroups", (sb["cgroup_path"], s0["cgroup_path"]))
    s1, a_if1 = a_state("after b's create")
    t.ok(s1["init_pid"] == s0["init_pid"] and a_if1 == a_if, "a's sandbox and veth are the same as before")

    r = b.request("POST", f"/v1/sandboxes/{NAME}/stop", via="unix")
    t.eq(r.status, 200, "b: stop")
    t.eq(veth_of("10.233."), [], "b's stop removed b's veth")
    a_state("after b's stop")

    r = b.request("DELETE", f"/v1/sandboxes/{NAME}?purge=true", via="unix")
    t.eq(r.status, 204, "b: delete")
    b.sandboxes.remove(NAME)
    a_state("after b's delete")

    # b crashes with a sandbox running; at restart it cleans up after itself only.
    t.eq(b.create_sandbox(NAME, network="egress").status, 201, "b: created again")
    b_init = b.request("GET", f"/v1/sandboxes/{NAME}", via="unix").json["init_pid"]
    b.kill9()
    os.kill(b_init, 9)
    b.start()
    sb = b.request("GET", f"/v1/sandboxes/{NAME}", via="unix").json
    t.eq(sb["state"], "stopped", "b: its dead sandbox is recorded as stopped after the restart")
    t.eq(veth_of("10.233."), [], "b's restart removed the dead sandbox's veth")
    s2, a_if2 = a_state("after b's crash and restart")
    t.ok(s2["init_pid"] == s0["init_pid"] and a_if2 == a_if, "a's sandbox was never touched")

    # A state database from before daemon ids, with a sandbox in it, keeps the names its sandboxes have.
    agent = b.request("POST", "/v1/tokens", {"role": "agent", "sandbox": NAME}, via="unix").json["token"]
    b.stop()
    db = sqlite3.connect(os.path.join(b.state, "state.db"))
    # An agent token of a sandbox deleted under the old schema: the upgrade drops it.
    db.execute("INSERT INTO tokens (id, role, sandbox, hash, created_at, created_by) "
               "VALUES ('0123456789ab', 'agent', 'gone', zeroblob(32), 0, 'test')")
    db.commit()
    # Back to version 3: drop what migrations after 8 made (their own tables), undo the audit chain (its
    # rows are chained again at the upgrade), 7 (kept workspaces), 6 (disk limits), 5 (sandbox identities,
    # token binding and expiry), then 4 (settings).
    v3_tables = {"tokens", "audit", "sandboxes", "events", "settings", "kept_workspaces", "sqlite_sequence"}
    for (table,) in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'").fetchall():
        if table not in v3_tables:
            db.execute(f'DROP TABLE "{table}"')
    db.executescript("DROP TRIGGER audit_no_update; ALTER TABLE audit DROP COLUMN prev_hash;"
                     "ALTER TABLE audit DROP COLUMN hash; CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
                     " BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;"
                     "DROP TABLE kept_workspaces; ALTER TABLE sandboxes DROP COLUMN disk_max;"
                     "ALTER TABLE sandboxes DROP COLUMN inodes_max; ALTER TABLE sandboxes DROP COLUMN disk_mode;"
                     "DROP TRIGGER sandboxes_delete_tokens; DROP INDEX sandboxes_instance;"
                     "ALTER TABLE sandboxes DROP COLUMN instance; ALTER TABLE tokens DROP COLUMN sandbox_instance;"
                     "ALTER TABLE tokens DROP COLUMN expires_at; DROP TABLE settings; PRAGMA user_version = 3;")
    db.close()
    b.start()
    t.ok("predates daemon ids" in b.logtext(), "an old state database with sandboxes gets no daemon id")
    ids = [x["id"] for x in b.request("GET", "/v1/tokens", via="unix").json["tokens"]]
    t.ok("0123456789ab" not in ids, "the upgrade removed the agent token of a sandbox that no longer exists", ids)
    r = b.request("GET", "/v1/whoami", token=agent)
    t.ok(r.status == 200 and r.json["sandbox"] == NAME, "the agent token of an existing sandbox is bound to it", r)
    r = b.request("POST", f"/v1/sandboxes/{NAME}/start", via="unix")
    t.ok(r.status == 200 and r.json["cgroup_parent"] == b.cgroup_parent and
         r.json["cgroup_path"].endswith(f"/{b.cgroup_parent}/{NAME}"),
         "its sandboxes keep the unprefixed cgroup names", r.json)
    t.ok(r.status == 200 and r.json["limits"]["disk_max"] == 0 and r.json["disk"]["quota"] == "none",
         "a sandbox from before disk limits keeps working without one", r.json)
    b.request("POST", f"/v1/sandboxes/{NAME}/stop", via="unix")
    a_state("after b's legacy start and stop")

    t.ok(not spec.errors, "all responses validate against api/openapi.yaml", "\n".join(spec.errors[:20]))
finally:
    b.cleanup()
    a.cleanup()
t.done()
