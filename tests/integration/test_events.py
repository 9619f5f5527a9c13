#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The event bus and suspended requests: GET /v1/events long-polls hold no server thread (more waiters than
threads, and other requests are still served), wake on the next event or at their bound, are not cut by the
idle timeout; sequence numbers only grow, also across a restart; retention; bad queries."""
import json
import os
import socket
import threading
import time

from pclib import Daemon, Spec, Tap

t = Tap()
spec = Spec()
THREADS = 2
d = Daemon(spec=spec, config=f"api_threads = {THREADS}\nhttp_idle_timeout = 2\nevents_keep = 5\nuid_range_base = 2030043136\n")


def events(query, via="unix", token=None):
    return d.request("GET", "/v1/events" + query, via=via, token=token)


def add_policy(n):
    """A new policy file: the daemon reloads (inotify), which is a policy.reloaded event."""
    with open(os.path.join(d.policies, f"ev{n}.policy"), "w") as f:
        f.write("version 1\ndefault ask\n")


def reload():
    r = d.request("POST", "/v1/policies/reload", via="unix")
    assert r.status == 200, r


try:
    d.start()
    r = events("")
    t.ok(r.status == 200 and r.json["events"] == [] and r.json["next"] == 0 and r.json["oldest"] is None,
         "a new daemon has no events; next is 0", r)

    # ---- more waiters than threads, and the daemon still answers ----
    N = THREADS * 4
    results = [None] * N

    def waiter(i):
        start = time.monotonic()
        resp = events("?since=0&wait=60")
        results[i] = (resp, time.monotonic() - start)

    threads = [threading.Thread(target=waiter, args=(i,)) for i in range(N)]
    for th in threads:
        th.start()
    time.sleep(0.5)  # let every waiter reach the daemon (there is nothing to wait on from here)
    t.ok(all(r is None for r in results), f"{N} long-polls wait (the server has {THREADS} threads per listener)")
    start = time.monotonic()
    st = d.request("GET", "/v1/status", via="unix")
    tcp = d.request("GET", "/v1/health")
    took = time.monotonic() - start
    t.ok(st.status == 200 and tcp.status == 200 and took < 2, f"other requests are served meanwhile ({took:.3f} s)")
    add_policy(1)
    for th in threads:
        th.join(30)
    woke = [r for r in results if r and r[0].status == 200 and r[0].json["events"]]
    t.eq(len(woke), N, "every waiter woke on the event")
    ev = woke[0][0].json["events"][0] if woke else {}
    t.ok(ev.get("type") == "policy.reloaded" and ev.get("seq") == 1 and ev.get("sandbox") is None
         and ev.get("data", {}).get("trigger") == "inotify",
         "the event is policy.reloaded, seq 1, with its trigger", ev)
    t.ok(all(r[1] < 15 for r in woke), "they woke at the event, not at their bound",
         [round(r[1], 2) for r in results if r])
    first = woke[0][0].json if woke else {"next": 0}
    t.eq(first["next"], 1, "next is the last event's seq")

    # ---- the wait bound: no event, an empty answer; longer than the idle timeout ----
    start = time.monotonic()
    r = events(f"?since={first['next']}&wait=3")
    took = time.monotonic() - start
    t.ok(r.status == 200 and r.json["events"] == [] and r.json["next"] == first["next"] and 2.9 <= took < 10,
         f"at the wait bound the answer has no events ({took:.2f} s, idle timeout 2 s)", r)

    # A filtered waiter is not woken by other events.
    box = {}

    def filtered():
        s0 = time.monotonic()
        box["r"] = events(f"?since={first['next']}&wait=3&type=sandbox.deleted")
        box["took"] = time.monotonic() - s0

    th = threading.Thread(target=filtered)
    th.start()
    time.sleep(0.5)
    reload_seq_before = events(f"?since={first['next']}").json["next"]
    add_policy(2)
    th.join(30)
    t.ok(box["r"].status == 200 and box["r"].json["events"] == [] and box["took"] >= 2.9,
         "a waiter for another type sleeps through a policy.reloaded", box)
    r = events(f"?since={reload_seq_before}&type=policy.reloaded")
    t.ok(r.status == 200 and [e["type"] for e in r.json["events"]] == ["policy.reloaded"],
         "type= filters the listing", r)

    # ---- idle keep-alive connections still time out ----
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(d.socket)
    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(4096)
    start = time.monotonic()
    rest = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
    except socket.timeout:
        pass
    took = time.monotonic() - start
    s.close()
    t.ok(got.startswith(b"HTTP/1.1 200") and 1 <= took < 10,
         f"an idle keep-alive connection is closed after the idle timeout ({took:.2f} s)")

    # ---- sequence numbers: monotonic, retained, and they survive a restart ----
    for i in range(3, 9):
        add_policy(i)
        reload()
    # inotify reloads too, a moment later: wait until a second passes with no event.
    cur = events("?since=0").json["next"]
    while True:
        r = events(f"?since={cur}&wait=1")
        if not r.json["events"]:
            break
        cur = r.json["next"]
    r = events("?since=0")
    seqs = [e["seq"] for e in r.json["events"]]
    t.ok(len(seqs) == 5 and seqs == list(range(seqs[0], seqs[0] + 5)) and r.json["oldest"] == seqs[0]
         and r.json["next"] == seqs[-1] and seqs[0] > 3,
         "events_keep = 5: the five newest are kept, in order", r)
    last = r.json["next"]
    d.stop()
    d.start()
    add_policy(99)
    r = events(f"?since={last}&wait=10")
    t.ok(r.status == 200 and r.json["events"] and r.json["events"][0]["seq"] == last + 1,
         "after a restart the next event continues the sequence", r)

    # ---- bad queries ----
    for q, why in (("?wait=3601", "wait above 3600"), ("?since=-1", "negative since"), ("?since=abc", "since not a number"),
                   ("?type=sandbox.exploded", "unknown type"), ("?sandbox=Bad_Name", "invalid sandbox name")):
        r = events(q)
        t.eq((r.status, (r.json or {}).get("error", {}).get("code")), (400, "invalid_query"), f"{why} is 400")

    # ---- an agent token sees only its own sandbox's events ----
    t.eq(d.create_sandbox("box1", network="none").status, 201, "a sandbox for an agent token")
    agent = d.request("POST", "/v1/tokens", {"role": "agent", "sandbox": "box1"}, via="unix").json["token"]
    r = events("?since=0", via="tcp", token=agent)
    t.ok(r.status == 200 and r.json["events"] and {e.get("sandbox") for e in r.json["events"]} == {"box1"},
         "an agent sees its own sandbox's events only (not policy reloads, not other sandboxes)", r)
    t.eq(events("?sandbox=box2", via="tcp", token=agent).status, 403, "an agent asking for another sandbox is 403")
    r = d.request("GET", "/v1/whoami", via="tcp", token=agent)
    t.ok(r.status == 200 and r.json["role"] == "agent" and r.json["sandbox"] == "box1" and r.json["via"] == "token"
         and r.json["token_id"], "whoami with an agent token", r)
    r = d.request("GET", "/v1/whoami", via="unix")
    t.ok(r.status == 200 and r.json == {"role": "admin", "sandbox": None, "token_id": None, "uid": 0,
                                        "via": "peer_credentials"}, "whoami as root on api.sock", r)

    # ---- a clean stop with a request waiting does not hang ----
    box = {}

    def late():
        try:
            box["r"] = events("?since=1000000000&wait=60")
        except Exception as e:  # noqa: BLE001 - the daemon closes the connection as it stops
            box["e"] = e

    th = threading.Thread(target=late)
    th.start()
    time.sleep(0.5)
    start = time.monotonic()
    d.stop()
    th.join(30)
    t.ok(d.pid is None and not th.is_alive() and time.monotonic() - start < 10,
         "SIGTERM with a suspended request stops the daemon promptly", box)
    t.ok("r" in box and box["r"].status == 200 and box["r"].json["events"] == []
         and box["r"].json["next"] == 1000000000,
         "and the waiting request is answered first (no events, its cursor), not dropped", box)
    t.ok("Terminated: stopping" in d.logtext() and "error:" not in d.logtext(), "and it logs a clean stop")

    t.ok(not spec.errors, f"all {spec.checked} responses validate against api/openapi.yaml", "\n".join(spec.errors[:20]))
finally:
    d.cleanup()
t.done()
