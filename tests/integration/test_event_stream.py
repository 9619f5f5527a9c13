#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""GET /v1/events as Server-Sent Events: framing (id/event/data), keep-alive comments, filters by type list,
prefix and sandbox, resumption with Last-Event-ID (nothing missed) or ?since=, a gap event when the cursor is
older than what is kept, agent scoping, more streams than server threads while other requests are served,
bad cursors and filters refused, and a clean stop that ends every stream."""
import http.client
import json
import threading
import time

from pclib import Daemon, Spec, Tap, UnixHTTPConnection

t = Tap()
spec = Spec()
THREADS = 2
KEEP = 20
d = Daemon(spec=spec, config=f"api_threads = {THREADS}\nevents_keepalive = 1\nevents_keep = {KEEP}\n"
                             "uid_range_base = 1140850688\n")


class Stream:
    """An SSE client: frames as dicts {"id", "event", "data"} or {"comment"}, read as they arrive."""

    def __init__(self, query="", via="unix", token=None, headers=None, timeout=15):
        self.conn = UnixHTTPConnection(d.socket, timeout=timeout) if via == "unix" else \
            http.client.HTTPConnection("127.0.0.1", d.port, timeout=timeout)
        h = {"Accept": "text/event-stream", **(headers or {})}
        if token:
            h["Authorization"] = f"Bearer {token}"
        self.conn.request("GET", "/v1/events" + query, headers=h)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.body = None if self.status == 200 else json.loads(self.resp.read() or b"null")

    def frame(self):
        """The next frame, or None at the end of the stream."""
        f = {}
        while True:
            line = self.resp.readline()
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line == "":
                if f:
                    return f
                continue
            field, _, value = line.partition(": ")
            if field == "":
                f["comment"] = value
            elif field == "data":
                f["data"] = f["data"] + "\n" + value if "data" in f else value
            else:
                f[field] = value

    def event(self):
        """The next event frame (comments skipped), its data parsed."""
        while True:
            f = self.frame()
            if f is None or "comment" not in f:
                if f is not None:
                    f["json"] = json.loads(f["data"])
                return f

    def close(self):
        self.conn.close()


def reload():
    """One event (webhook.ping), no sandbox."""
    r = d.request("POST", "/v1/webhooks/test", via="unix")
    assert r.status == 202, r


def last_seq():
    return d.request("GET", "/v1/events?since=0", via="unix").json["next"]


def test_framing_and_keepalive():
    s = Stream("?since=0")
    t.ok(s.status == 200 and s.resp.getheader("Content-Type") == "text/event-stream",
         "Accept: text/event-stream gets a stream", (s.status, s.resp.getheaders()))
    first = s.frame()
    t.eq(first, {"comment": "pocketcoder events"}, "the stream opens with a comment")
    reload()
    reload()
    got = [s.event() for _ in range(2)]
    t.ok(all(f["event"] == "webhook.ping" and int(f["id"]) == f["json"]["seq"]
             and f["json"]["type"] == "webhook.ping" and f["json"]["data"]["by"] for f in got)
         and int(got[1]["id"]) == int(got[0]["id"]) + 1,
         "each event is id: SEQ, event: TYPE, data: the event's JSON", got)
    start = time.monotonic()
    f = s.frame()
    took = time.monotonic() - start
    t.ok(f == {"comment": "keep-alive"} and took < 5, f"a quiet stream gets keep-alive comments ({took:.2f} s)", f)
    s.close()


def test_filters():
    t.eq(d.create_sandbox("box1", network="none").status, 201, "a sandbox for sandbox events")
    since = last_seq()
    s = Stream(f"?since={since}&type=sandbox.*")
    lst = Stream(f"?since={since}&type=sandbox.stopped,%20webhook.ping")
    other = Stream(f"?since={since}&sandbox=box2")
    reload()
    r = d.request("POST", "/v1/sandboxes/box1/stop", via="unix")
    t.eq(r.status, 200, "sandbox stopped")
    f = s.event()
    t.ok(f["event"] == "sandbox.stopped" and f["json"]["sandbox"] == "box1",
         "type=sandbox.* skips the ping and gets sandbox.stopped", f)
    got = [lst.event()["event"] for _ in range(2)]
    t.eq(got, ["webhook.ping", "sandbox.stopped"], "a comma-separated list of types, in order")
    other.frame()  # the opening comment
    frames = [other.frame() for _ in range(2)]
    t.eq(frames, [{"comment": "keep-alive"}] * 2, "sandbox=box2 gets none of box1's events, only keep-alives")
    # Events the filter skips do not put the keep-alive off.
    other.frame()

    def pinger():
        for _ in range(12):
            reload()
            time.sleep(0.25)  # pacing: more often than the 1 s keep-alive

    th = threading.Thread(target=pinger)
    start = time.monotonic()
    th.start()
    f = other.frame()
    took = time.monotonic() - start
    th.join()
    t.ok(f == {"comment": "keep-alive"} and took < 2.5,
         f"a keep-alive comes although skipped events arrive every 0.25 s ({took:.2f} s)", f)
    for st in (s, lst, other):
        st.close()
    for q, why in (("?type=exec", "a type that does not exist"), ("?type=nope.*", "a prefix naming no type"),
                   ("?type=exec.*,,", "an empty item"), ("?type=*x", "a star that is not a prefix"),
                   ("?since=-1", "a negative since"), ("?sandbox=Bad_Name", "a bad sandbox name")):
        bad = Stream(q)
        t.ok(bad.status == 400 and bad.body["error"]["code"] == "invalid_query", f"{why}: 400", bad.body)
    for v in ("abc", "-1", "01", "1 ", "99999999999999999999", ""):
        bad = Stream("", headers={"Last-Event-ID": v})
        t.ok(bad.status == 400 and bad.body["error"]["code"] == "invalid_header", f"Last-Event-ID {v!r}: 400",
             bad.body)


def test_resume():
    start = last_seq()
    s = Stream(f"?since={start}")
    reload()
    reload()
    got = [int(s.event()["id"]) for _ in range(2)]
    s.close()
    # While disconnected: three more events.
    for _ in range(3):
        reload()
    s = Stream("?since=0", headers={"Last-Event-ID": str(got[-1])})
    again = [int(s.event()["id"]) for _ in range(3)]
    s.close()
    t.eq(again, [got[-1] + 1, got[-1] + 2, got[-1] + 3],
         "reconnecting with Last-Event-ID gets exactly the events after it (it wins over since=0)")
    s = Stream(f"?since={got[0]}")
    t.eq([int(s.event()["id"]) for _ in range(4)], list(range(got[0] + 1, got[0] + 5)), "?since= resumes too")
    s.close()


def test_gap():
    start = last_seq()
    for _ in range(KEEP + 5):
        reload()
    oldest = d.request("GET", "/v1/events?since=0", via="unix").json["oldest"]
    s = Stream("", headers={"Last-Event-ID": str(start)})
    f = s.event()
    t.ok(f["event"] == "gap" and f["json"] == {"from": start + 1, "to": oldest - 1} and int(f["id"]) == oldest - 1,
         f"a cursor older than the oldest kept event gets a gap event first (events {start + 1}..{oldest - 1} "
         "are gone)", f)
    f = s.event()
    t.ok(f["event"] == "webhook.ping" and int(f["id"]) == oldest, "then the stream goes on at the oldest kept", f)
    s.close()


def test_agent_scope():
    agent = d.request("POST", "/v1/tokens", {"role": "agent", "sandbox": "box1"}, via="unix").json["token"]
    s = Stream(f"?since={last_seq()}", via="tcp", token=agent)
    t.eq(s.status, 200, "an agent may open a stream")
    reload()
    r = d.request("POST", "/v1/sandboxes/box1/start", via="unix")
    t.eq(r.status, 200, "sandbox started")
    seen = []
    while True:
        f = s.event()
        seen.append((f["event"], f["json"].get("sandbox")))
        if f["event"] == "sandbox.started":
            break
    t.ok(all(sb == "box1" for _, sb in seen), "and never a ping or another sandbox's", seen)
    s.close()
    bad = Stream("?sandbox=box2", via="tcp", token=agent)
    t.eq(bad.status, 403, "an agent asking for another sandbox's stream is 403")


def test_many_streams_and_stop():
    n = THREADS * 6
    since = last_seq()
    streams = [Stream(f"?since={since}") for _ in range(n // 2)] + \
        [Stream(f"?since={since}", via="tcp", token=admin_token) for _ in range(n - n // 2)]
    for s in streams:
        s.frame()  # the opening comment: every stream is established
    start = time.monotonic()
    st = d.request("GET", "/v1/status", via="unix")
    tcp = d.request("GET", "/v1/status", via="tcp", token=admin_token)
    took = time.monotonic() - start
    t.ok(st.status == 200 and tcp.status == 200 and took < 2,
         f"{n} open streams ({THREADS} threads per listener): other requests are served ({took:.3f} s)")
    reload()
    got = [s.event() for s in streams]
    t.ok(all(f and f["event"] == "webhook.ping" and int(f["id"]) == since + 1 for f in got),
         f"all {n} streams get the event")
    start = time.monotonic()
    d.stop()
    ends = []
    for s in streams:
        f = s.frame()
        while f is not None and "comment" in f:
            f = s.frame()
        ends.append(f)
    t.ok(d.pid is None and ends == [None] * n and time.monotonic() - start < 10,
         "SIGTERM ends every stream (end of stream, not a hang) and the daemon stops promptly", ends)
    t.ok("error:" not in d.logtext(), "and it logs no error")
    d.start()


try:
    d.start()
    admin_token = d.request("POST", "/v1/tokens", {"role": "admin"}, via="unix").json["token"]
    t.run_all([test_framing_and_keepalive, test_filters, test_resume, test_gap, test_agent_scope,
               test_many_streams_and_stop], spec=spec)
finally:
    d.cleanup()
