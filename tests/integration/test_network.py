#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Network isolation of sandboxes created by the daemon, tested from inside as the agent: in every mode
(none, loopback, egress) the host's services are unreachable (its loopback, its own address, the egress
veth's host side), and so are the host's abstract unix sockets. Needs nftables for egress, which the
cgroup2 VM lacks: host only."""
import os
import secrets
import socket
import threading

from pclib import Daemon, Spec, Tap, run_cmd

t = Tap()
if os.geteuid() != 0:
    t.skip("network isolation tests", "need root (namespaces, veths, nftables)")
    t.done()

spec = Spec()
P = "net" + secrets.token_hex(3)
d = Daemon(spec=spec, config="uid_range_base = 1946157056\negress_subnet = 10.231.0.0/16\n")


def api(method, path, body=None):
    return d.request(method, path, body, via="unix")


create, run = d.create_sandbox, d.sandbox_run
listener = None
abstract = None
try:
    d.start()

    # ---- network: the host is unreachable in every mode ----
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("0.0.0.0", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    accepted = []

    def accept_loop():
        while True:
            try:
                c, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            c.close()

    threading.Thread(target=accept_loop, daemon=True).start()
    # The host's own address on its default route, as a sandbox might guess it.
    host_ip = run_cmd(["ip", "-4", "-o", "route", "get", "1.1.1.1"], text=True).stdout
    host_ip = host_ip.split(" src ")[1].split()[0] if " src " in host_ip else "127.0.0.1"
    probe = "timeout 5 bash -c 'echo x > /dev/tcp/{}/{}' 2>/dev/null && echo CONNECTED || echo refused"

    mem = f"{P}-none"
    t.eq(create(mem).status, 201, "sandbox with no network (the default)")
    t.ok("refused" in run(mem, "sh", "-c", probe.format("127.0.0.1", port)).stdout,
         "network none: 127.0.0.1 is not the host's loopback")
    t.ok("refused" in run(mem, "sh", "-c", probe.format(host_ip, port)).stdout,
         f"network none: the host's address {host_ip} is unreachable")
    p = run(mem, "cat", "/proc/net/dev")
    t.ok("eth0" not in p.stdout and " lo:" in p.stdout, "network none: only lo exists", p.stdout)

    lo = f"{P}-lo"
    t.eq(create(lo, network="loopback").status, 201, "sandbox with loopback network")
    t.ok("refused" in run(lo, "sh", "-c", probe.format(host_ip, port)).stdout,
         "network loopback: the host's address is unreachable")
    t.ok("refused" in run(lo, "sh", "-c", probe.format("127.0.0.1", port)).stdout,
         "network loopback: 127.0.0.1 is the sandbox's own loopback, not the host's")

    eg = f"{P}-eg"
    r = create(eg, network="egress")
    t.eq(r.status, 201, "sandbox with egress network")
    p = run(eg, "sh", "-c", "ip -4 -o addr show eth0 2>/dev/null || cat /proc/net/fib_trie | head -5; cat /proc/net/route")
    gw = None
    for line in p.stdout.splitlines()[1:]:
        f = line.split()
        if len(f) > 2 and f[1] == "00000000" and f[2] != "00000000":
            g = bytes.fromhex(f[2])[::-1]
            gw = ".".join(str(b) for b in g)
    t.ok(gw is not None and gw.startswith("10.231."), f"egress: a default route via the host side ({gw})", p.stdout)
    if gw:
        t.ok("refused" in run(eg, "sh", "-c", probe.format(gw, port)).stdout,
             "egress: the host's veth address does not reach host services")
    t.ok("refused" in run(eg, "sh", "-c", probe.format(host_ip, port)).stdout,
         f"egress: the host's own address {host_ip} does not reach host services")
    t.ok("refused" in run(eg, "sh", "-c", probe.format("127.0.0.1", port)).stdout,
         "egress: 127.0.0.1 is not the host's loopback")
    t.eq(accepted, [], "the host listener never accepted a connection from a sandbox")

    # ---- abstract unix sockets of the host are unreachable ----
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    aname = f"pc-test-{P}"
    abstract.bind("\0" + aname)
    abstract.listen(4)
    code = f"import socket; s=socket.socket(socket.AF_UNIX); s.connect('\\0{aname}'); print('CONNECTED')"
    for n in (mem, lo, eg):
        p = run(n, "python3", "-c", code)
        t.ok("CONNECTED" not in p.stdout and "ConnectionRefusedError" in p.stderr,
             f"{n.split('-')[-1]}: the host's abstract unix socket is unreachable", p.stdout + p.stderr)

    t.ok(not spec.errors, f"all {spec.checked} responses validate against api/openapi.yaml", "\n".join(spec.errors[:20]))
finally:
    if listener:
        listener.close()
    if abstract:
        abstract.close()
    d.cleanup()
t.done()
