#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Exec round trips (bench/exec.sh runs this): POST /v1/sandboxes/{name}/execs with wait, answered when the
command ended, for `true`, `echo hi` and 1 MiB of output, over the unix socket, the sandbox's agent socket and
TCP with a token. "paced": a pause of THINK ms before each round trip (an agent reads an answer before it sends
the next command), so the sandbox's ready window is back (exec_ready_windows); "back to back": none, so most
execs wait for the window made after the one before. Then the original PocketCoder method (tmux send-keys,
sleep 300 ms, poll an output file every 200 ms), `bwrap true`, and BUILD/bench/exec-floor (what the kernel
charges for the processes alone). Prints p50/p95 in ms."""
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

build, n = sys.argv[1], int(sys.argv[2])
think = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.05
tmp = tempfile.mkdtemp(prefix="pc-bench-exec.")
run, pidfile = f"{tmp}/run", f"{tmp}/run/pocketcoderd.pid"
conf = f"{tmp}/pc.conf"
with open(conf, "w") as f:
    f.write("uid_range_base = 1098907648\nstate_reserve = 0\ncgroup_parent = pc-bench-exec\nlog_level = debug\n")


class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def pct(xs):
    xs = sorted(xs)
    return statistics.median(xs), xs[min(len(xs) - 1, int(len(xs) * 0.95))]


def measure(conn, path, cmd, token=None, count=n, pause=0):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    body = json.dumps({"cmd": cmd, "wait": 60})
    times = []
    for _ in range(count):
        if pause:
            time.sleep(pause)
        t0 = time.perf_counter()
        conn.request("POST", path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        times.append((time.perf_counter() - t0) * 1000)
        if r.status != 200:
            eid = json.loads(data).get("id", "-")
            log = [ln for ln in open(f"{tmp}/log").read().split("\n") if eid in ln]
            raise SystemExit(f"{cmd}: {r.status} {data[:200]}\n" + "\n".join(log))
    return pct(times)


pc = f"{build}/pocketcoderd/pocketcoderd"
subprocess.run([pc, "--state-dir", f"{tmp}/state", "--runtime-dir", run, "--policy-dir", f"{tmp}/pol",
                "--config", conf, "--listen", "127.0.0.1:0", "--log-file", f"{tmp}/log", "--pid-file", pidfile,
                "--daemonize"], check=True)
try:
    port = int(open(f"{tmp}/log").read().split("(port ")[-1].split(")")[0])
    u = Unix(f"{run}/api.sock")
    u.request("POST", "/v1/sandboxes", body=json.dumps({"name": "bench", "policy": "permissive"}),
              headers={"Content-Type": "application/json"})
    assert u.getresponse().read() and True
    u.request("POST", "/v1/tokens", body=json.dumps({"role": "admin"}), headers={"Content-Type": "application/json"})
    token = json.loads(u.getresponse().read())["token"]
    transports = [("unix", Unix(f"{run}/api.sock"), None),
                  ("agent", Unix(f"{run}/sandboxes/bench/api.sock"), None),
                  ("tcp", http.client.HTTPConnection("127.0.0.1", port, timeout=60), token)]
    cases = [("true", "true"), ("echo hi", "echo hi"), ("1 MiB", "head -c 1048576 /dev/zero | tr '\\0' x")]
    measure(transports[0][1], "/v1/sandboxes/bench/execs", "true", count=5)  # warm up
    for label, cmd in cases:
        for pace, pause in (("paced", think), ("back to back", 0)):
            for name, conn, tok in transports:
                p50, p95 = measure(conn, "/v1/sandboxes/bench/execs", cmd, tok,
                                   n if label != "1 MiB" else max(n // 4, 5), pause)
                print(f"pocketcoder exec  {label:8} {name:6} {pace:12} p50 {p50:8.2f} ms  p95 {p95:8.2f} ms")

    # The original: type into tmux, sleep 300 ms, poll an output file every 200 ms.
    sock, out = f"{tmp}/orig.sock", f"{tmp}/orig.out"
    subprocess.run(["tmux", "-S", sock, "new-session", "-d", "-s", "orig"], check=True)
    times = []
    for _ in range(max(n // 10, 5)):
        if os.path.exists(out):
            os.unlink(out)
        t0 = time.perf_counter()
        subprocess.run(["tmux", "-S", sock, "send-keys", "-t", "orig", f"true > {out}.tmp; echo $? >> {out}.tmp; "
                        f"mv {out}.tmp {out}", "Enter"], check=True)
        time.sleep(0.3)
        while not os.path.exists(out):
            time.sleep(0.2)
        times.append((time.perf_counter() - t0) * 1000)
    subprocess.run(["tmux", "-S", sock, "kill-server"])
    p50, p95 = pct(times)
    print(f"original send-keys true            p50 {p50:8.2f} ms  p95 {p95:8.2f} ms")
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all",
                        "true"], check=True)
        times.append((time.perf_counter() - t0) * 1000)
    p50, p95 = pct(times)
    print(f"bwrap true                         p50 {p50:8.2f} ms  p95 {p95:8.2f} ms")
    floor = f"{build}/bench/exec-floor"
    if os.path.exists(floor):
        subprocess.run([floor, str(max(n, 20))], check=True)
finally:
    u = Unix(f"{run}/api.sock")
    u.request("DELETE", "/v1/sandboxes/bench?purge=true")
    u.getresponse().read()
    subprocess.run(["kill", open(pidfile).read().strip()])
    time.sleep(0.5)
    subprocess.run(["rm", "-rf", tmp])
