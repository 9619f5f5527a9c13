#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What a sandbox may reach, tested from inside as the agent and as sandbox root:
- socket families: AF_VSOCK (not scoped by network namespaces), AF_PACKET, netlink other than NETLINK_ROUTE, ...
  fail with EAFNOSUPPORT in every network mode; UNIX, INET, INET6, NETLINK_ROUTE work; the agent's capability
  bounding set is empty (no DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, ...), sandbox root's holds only its small set
  (the in-sandbox probe, tests/probe, `pc-probe --sockets`).
- egress reaches the "public internet" but not the LAN: a LAN of our own (a network namespace holding 10.x,
  172.16.x, 192.168.x, 100.64.x and 169.254.169.254, routed there only for packets from our sandbox's veth by
  a policy rule) is refused, a "public" address (198.51.100.6, a documentation range the block list leaves
  out on purpose, in the same namespace) is reached, and an `egress_allow` entry opens its range.
- the daemon's nftables table: kept while an egress sandbox runs (also across a clean stop: the sandbox keeps
  running and needs it), rebuilt with the new config at start, removed at a clean stop with none running
  and at start when it is stale.
No packet leaves this machine: every address lives in a namespace this test makes. Needs nftables: host only."""
import os
import secrets
import shutil
import signal
import subprocess

from pclib import BUILD, Daemon, Spec, Tap, run_cmd

t = Tap()
if os.geteuid() != 0:
    t.skip("egress and socket-family tests", "need root (namespaces, veths, nftables)")
    t.done()

P = "eg" + secrets.token_hex(3)
LAN_NS = f"pcl{secrets.token_hex(3)}"
LAN_IF = LAN_NS
LAN_HOST, LAN_GW, PUBLIC = "198.51.100.9", "198.51.100.10", "198.51.100.10"
LAN = ["10.77.1.1", "172.16.77.1", "192.168.77.1", "100.64.77.1", "169.254.169.254"]
RT = "7365"
PORT = 8099
spec = Spec()
base_config = "uid_range_base = 2013265920\negress_subnet = 10.234.0.0/16\n"
d = Daemon(spec=spec, config=base_config)
PROBE = os.path.join(BUILD, "tests/probe/pc-probe")
server = None


def sh(cmd):
    return run_cmd(["sh", "-c", cmd], text=True)


def tables():
    return run_cmd(["nft", "list", "tables"], text=True).stdout


def veth():
    """The host side of our egress sandbox (its address is in 10.234.0.0/16)."""
    out = run_cmd(["ip", "-o", "-4", "addr", "show"], text=True).stdout
    for line in out.splitlines():
        f = line.split()
        if f[3].startswith("10.234."):
            return f[1].split("@")[0]
    return None


def connect(name, addr):
    """From inside the sandbox: CONNECTED, or why not."""
    p = d.sandbox_run(name, "bash", "-c", f"timeout 3 bash -c 'echo x > /dev/tcp/{addr}/{PORT}' && echo CONNECTED")
    return p.stdout.strip() or p.stderr.strip() or f"exit {p.returncode}"


def lan_refused(name, what, allowed=()):
    for a in LAN:
        got = connect(name, a)
        if a in allowed:
            t.ok(got == "CONNECTED", f"{what}: {a} is reached (egress_allow)", got)
        else:
            t.ok("CONNECTED" not in got and ("No route to host" in got or "exit 124" in got or got == ""),
                 f"{what}: the LAN address {a} is refused", got)
    t.eq(connect(name, PUBLIC), "CONNECTED", f"{what}: the public address {PUBLIC} is reached")


def probe(name, root=False):
    p = d.cli("sandbox", "run", name, *(["--root"] if root else []), "--", "/workspace/pc-probe", "--sockets")
    bad = [ln for ln in p.stdout.splitlines() if ln.startswith("not ok")]
    n = sum(1 for ln in p.stdout.splitlines() if ln.startswith("ok"))
    return p.returncode == 0 and not bad and n > 10, (bad or [p.stdout[-2000:]]) + [p.stderr[-500:]]


try:
    d.start()
    table = d.nft_table_name()
    t.ok(table != d.nft_table, f"the daemon's nftables table carries its daemon id ({table})")
    t.ok(table not in tables(), "no table before the first egress sandbox")

    # ---- socket families and capabilities, in every network mode ----
    for mode in ("none", "loopback", "egress"):
        name = f"{P}-{mode}"
        t.eq(d.create_sandbox(name, network=mode).status, 201, f"sandbox with network {mode}")
        ws = d.request("GET", f"/v1/sandboxes/{name}", via="unix").json["workspace_host_path"]
        shutil.copy(PROBE, os.path.join(ws, "pc-probe"))
        os.chmod(os.path.join(ws, "pc-probe"), 0o755)
        ok, diag = probe(name)
        t.ok(ok, f"{mode}: as the agent, vsock/packet/netlink-audit/uevent sockets fail with EAFNOSUPPORT, "
                 "unix/inet/inet6/netlink-route work, CapBnd/CapEff are empty", diag)
        ok, diag = probe(name, root=True)
        t.ok(ok, f"{mode}: the same as sandbox root (--root), whose bounding set is only root's small set", diag)
    p = d.sandbox_run(f"{P}-none", "grep", "^CapBnd", "/proc/self/status")
    t.eq(p.stdout.split(), ["CapBnd:", "0000000000000000"], "the agent's bounding set is empty")
    for n in ("none", "loopback"):
        t.eq(d.request("DELETE", f"/v1/sandboxes/{P}-{n}?purge=true", via="unix").status, 204, f"{n} sandbox removed")
        d.sandboxes.remove(f"{P}-{n}")

    # ---- the LAN of our own ----
    eg = f"{P}-egress"
    ifname = veth()
    t.ok(ifname is not None, f"the egress sandbox's host veth ({ifname})")
    t.ok(table in tables(), "an egress sandbox brings the daemon's table")
    lan_setup = (f"ip netns add {LAN_NS} && ip link add {LAN_IF} type veth peer name w0 netns {LAN_NS} && "
                 f"ip addr add {LAN_HOST}/30 dev {LAN_IF} && ip link set {LAN_IF} up && "
                 f"ip -n {LAN_NS} addr add {LAN_GW}/30 dev w0 && ip -n {LAN_NS} link set w0 up && "
                 f"ip -n {LAN_NS} link set lo up && ip -n {LAN_NS} route add default via {LAN_HOST} && "
                 f"for a in {' '.join(LAN)}; do ip -n {LAN_NS} addr add $a/32 dev lo && "
                 f"ip route add $a/32 via {LAN_GW} table {RT} || exit 1; done && "
                 f"ip rule add iif {ifname} lookup {RT}")
    p = sh(lan_setup)
    t.eq(p.returncode, 0, "the test's LAN namespace is set up" + (p.stderr and f" ({p.stderr.strip()})"))
    server = subprocess.Popen(["ip", "netns", "exec", LAN_NS, "python3", "-c",
                               "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                               f"s.bind(('0.0.0.0', {PORT}))\ns.listen(64)\nprint('up', flush=True)\n"
                               "while True:\n    s.accept()[0].close()\n"],
                              stdout=subprocess.PIPE, text=True)
    t.eq(server.stdout.readline().strip(), "up", "a TCP server listens on every LAN address")
    lan_refused(eg, "default")


    # ---- a clean stop with the egress sandbox running keeps the table (the sandbox needs it) ----
    init = d.request("GET", f"/v1/sandboxes/{eg}", via="unix").json["init_pid"]
    d.stop()
    t.ok(table in tables(), "SIGTERM with an egress sandbox running: the table stays (its NAT and walls)")
    # The daemon is down: connect from the sandbox's network namespace directly (the filter is the host's).
    nsrun = ["nsenter", f"--net=/proc/{init}/ns/net", "bash", "-c"]
    p = run_cmd(nsrun + [f"timeout 3 bash -c 'echo x > /dev/tcp/169.254.169.254/{PORT}' && echo CONNECTED"], text=True)
    t.ok("CONNECTED" not in p.stdout, "daemon stopped: the sandbox still cannot reach 169.254.169.254", p.stderr)
    p = run_cmd(nsrun + [f"timeout 3 bash -c 'echo x > /dev/tcp/{PUBLIC}/{PORT}' && echo CONNECTED"], text=True)
    t.ok("CONNECTED" in p.stdout, "daemon stopped: the sandbox still reaches the public address (NAT kept)", p.stderr)

    # ---- restart with egress_allow: the table is rebuilt with the new rules, the sandbox keeps running ----
    d.config = d.config + "egress_allow = 192.168.77.0/24, 10.77.0.0/16\n"
    d.start()
    t.eq(d.nft_table_name(), table, "the daemon id, and so the table, survives the restart")
    t.eq(d.request("GET", f"/v1/sandboxes/{eg}", via="unix").json["init_pid"], init, "the sandbox was re-adopted")
    lan_refused(eg, "egress_allow = 192.168.77.0/24, 10.77.0.0/16", allowed=("192.168.77.1", "10.77.1.1"))
    chain = run_cmd(["nft", "list", "chain", "inet", table, "forward"], text=True).stdout
    t.ok(chain.count("192.168.77.0/24") == 1, "one rule per allowed range, once (the table was replaced, not added to)",
         chain)

    # ---- no egress sandbox left: a clean stop removes the table ----
    t.eq(d.request("POST", f"/v1/sandboxes/{eg}/stop", via="unix").status, 200, "egress sandbox stopped")
    d.stop()
    t.ok(table not in tables(), "SIGTERM with no egress sandbox running: the daemon's table is gone", tables())

    # ---- a stale table (the daemon was killed after its last egress sandbox stopped) goes at start ----
    d.start()
    t.eq(d.request("POST", f"/v1/sandboxes/{eg}/start", via="unix").status, 200, "egress sandbox started again")
    t.ok(table in tables(), "the table is back with the sandbox")
    t.eq(d.request("POST", f"/v1/sandboxes/{eg}/stop", via="unix").status, 200, "and stopped")
    d.kill9()
    t.ok(table in tables(), "kill -9: the table is left behind")
    d.start()
    t.ok(table not in tables(), "at start the stale table is removed (no egress sandbox runs)", tables())
    t.ok(not spec.errors, f"all {spec.checked} responses validate against api/openapi.yaml", "\n".join(spec.errors[:20]))
finally:
    if server:
        server.kill()
        server.wait()
    sh(f"ip rule del lookup {RT}; ip route flush table {RT}; ip netns del {LAN_NS}; ip link del {LAN_IF}")
    d.cleanup()
t.done()
