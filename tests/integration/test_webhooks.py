#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Webhooks: deliveries signed with HMAC-SHA256 over "TIMESTAMP.BODY" that a receiver verifies, the relay's
event types only, a failed attempt retried, a receiver down for a minute then up receives every event in order
while the daemon answers normally, a receiver that accepts and never answers (blackhole) blocks nothing,
queued deliveries survive a kill -9 and are delivered after the restart, the delivery log, bad queries, and a
webhook URL without a secret refused."""
import hashlib
import hmac
import http.server
import json
import os
import socket
import threading
import time

from pclib import SLOW, Daemon, Spec, Tap

t = Tap()
spec = Spec()
SECRET = "test-secret-0123456789abcdef"
DOWN_SECONDS = int(os.environ.get("PC_WEBHOOK_DOWN", "60"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Receiver:
    """An HTTP receiver on loopback that records every POST; answers with the codes in `codes` first, then 200."""

    def __init__(self, port):
        self.port = port
        self.got = []
        self.codes = []
        self.cond = threading.Condition()
        self.server = None

    def start(self):
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with rec.cond:
                    code = rec.codes.pop(0) if rec.codes else 200
                    if code == 200:
                        rec.got.append((dict(self.headers), body))
                    rec.cond.notify_all()
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def wait(self, n, timeout=30):
        """Until n deliveries were received (or the timeout): the deliveries."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.got) >= n, timeout)
            return list(self.got)


def verify(headers, body, secret=SECRET):
    ts = headers.get("X-PocketCoder-Timestamp", "")
    want = "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, headers.get("X-PocketCoder-Signature", ""))


relay = Receiver(free_port())
# The admin endpoint is a blackhole: it accepts connections (the kernel's backlog) and never answers.
blackhole = socket.socket()
blackhole.bind(("127.0.0.1", 0))
blackhole.listen(64)
d = Daemon(spec=spec, config=f"webhook_relay = http://127.0.0.1:{relay.port}/hook\n"
                             f"webhook_admin = http://127.0.0.1:{blackhole.getsockname()[1]}/hook\n"
                             f"webhook_secret = {SECRET}\nwebhook_relay_events = webhook.ping, sandbox.*\n"
                             "webhook_timeout = 2\nwebhook_retry_min = 1\nwebhook_retry_max = 4\n"
                             "webhook_max_attempts = 100\nuid_range_base = 1157627904\n")


def ping():
    r = d.request("POST", "/v1/webhooks/test", via="unix")
    assert r.status == 202, r
    return r.json["seq"]


def deliveries(query=""):
    r = d.request("GET", "/v1/webhooks/deliveries" + query, via="unix")
    assert r.status == 200, r
    return r.json["deliveries"]


def log_until(pred, query="", timeout=20):
    """The delivery log once pred(log) holds (or at the timeout): a receiver has the body before the daemon
    records its answer, and nothing tells a client when it did but the log itself."""
    deadline = time.monotonic() + timeout
    while True:
        log = deliveries(query)
        if pred(log) or time.monotonic() > deadline:
            return log
        time.sleep(0.1)


def test_signed_delivery():
    relay.start()
    seq = ping()
    got = relay.wait(1)
    t.eq(len(got), 1, "the receiver gets the ping")
    headers, body = got[0]
    ev = json.loads(body)
    t.ok(verify(headers, body), "X-PocketCoder-Signature is HMAC-SHA256(secret, timestamp '.' body)", headers)
    t.ok(not verify(headers, body + b" ") and not verify(headers, body, secret="another-secret-0123456789"),
         "a changed body or another secret does not verify")
    t.ok(headers.get("X-PocketCoder-Event") == "webhook.ping" and headers.get("X-PocketCoder-Seq") == str(seq)
         and ev["seq"] == seq and ev["type"] == "webhook.ping" and ev["data"]["by"]
         and abs(int(headers["X-PocketCoder-Timestamp"]) - time.time()) < 60
         and headers.get("Content-Type") == "application/json",
         "headers and body name the event", (headers, ev))
    log = [x for x in log_until(lambda lg: any(x["seq"] == seq and x["state"] == "delivered" for x in lg))
           if x["endpoint"] == "relay"]
    t.ok(log and log[0]["state"] == "delivered" and log[0]["attempts"] == 1 and log[0]["last_status"] == 200
         and log[0]["seq"] == seq and str(log[0]["id"]) == headers.get("X-PocketCoder-Delivery")
         and log[0]["next_attempt"] is None and log[0]["finished"],
         "the delivery log says delivered, 1 attempt, HTTP 200", log[:1])


def test_retry_and_types():
    n = len(relay.got)
    relay.codes = [500, 503]
    seq = ping()
    got = relay.wait(n + 1)
    t.ok(len(got) == n + 1 and json.loads(got[-1][1])["seq"] == seq, "answered 500 and 503 first: delivered on the third attempt")
    log = [x for x in log_until(lambda lg: any(x["seq"] == seq and x["state"] == "delivered" for x in lg))
           if x["endpoint"] == "relay" and x["seq"] == seq]
    t.ok(log and log[0]["attempts"] == 3 and log[0]["state"] == "delivered", "the log counts 3 attempts", log)
    # A policy reload is not a relay event (webhook_relay_events), but an admin one.
    with open(os.path.join(d.policies, "wh.policy"), "w") as f:
        f.write("version 1\ndefault ask\n")
    r = d.request("GET", "/v1/events?type=policy.reloaded&wait=10", via="unix")
    t.ok(r.status == 200 and r.json["events"], "a policy.reloaded event", r)
    seqs = {e["seq"] for e in r.json["events"]}
    ping()  # queued after the reload: once it is in the log, the reload was considered too
    relay.wait(n + 2)
    log = deliveries()
    t.ok(not [x for x in log if x["endpoint"] == "relay" and x["seq"] in seqs]
         and [x for x in log if x["endpoint"] == "admin" and x["seq"] in seqs],
         "policy.reloaded goes to the admin endpoint only", log[:6])


def test_blackhole_blocks_nothing():
    # Every admin delivery hangs until webhook_timeout (2 s): the API is as quick as ever meanwhile.
    start = time.monotonic()
    for _ in range(20):
        assert d.request("GET", "/v1/status", via="unix").status == 200
    took = time.monotonic() - start
    t.ok(took < 2, f"20 API calls while the admin receiver never answers ({took:.3f} s)")
    log = [x for x in log_until(lambda lg: [x for x in lg if x["endpoint"] == "admin"][-1]["attempts"] >= 1,
                                "?state=pending") if x["endpoint"] == "admin"]
    head = log[-1] if log else {}
    t.ok(head.get("attempts", 0) >= 1 and "imeout" in (head.get("last_error") or "") and head["next_attempt"]
         and all(x["attempts"] == 0 for x in log[:-1]),
         "the admin's oldest delivery timed out and is retried; the later ones wait behind it, in order",
         [(x["id"], x["attempts"], x["last_error"]) for x in log])


def test_down_for_a_minute():
    relay.stop()
    n = len(relay.got)
    seqs = [ping()]
    start = time.monotonic()
    calls = 0
    slowest = 0
    # While the receiver is down: more events, and the API answers normally.
    deadline = start + DOWN_SECONDS
    for i in range(5):
        # Spread over the minute; nothing to wait on here but the clock (the test's own pacing).
        time.sleep(max(0, start + (i + 1) * DOWN_SECONDS / 6 - time.monotonic()))
        seqs.append(ping())
        s0 = time.monotonic()
        assert d.request("GET", "/v1/status", via="unix").status == 200
        slowest = max(slowest, time.monotonic() - s0)
        calls += 1
    time.sleep(max(0, deadline - time.monotonic()))
    pending = [x for x in deliveries("?state=pending") if x["endpoint"] == "relay"]
    # Backoff 1, 2, 4, 4, ... s: about DOWN_SECONDS / 4 attempts of the oldest; the others wait behind it.
    t.ok(len(pending) == len(seqs) and pending[-1]["attempts"] >= DOWN_SECONDS // 4 - 1
         and pending[-1]["attempts"] <= DOWN_SECONDS + 1 and "connect" in pending[-1]["last_error"]
         and all(x["attempts"] == 0 for x in pending[:-1]),
         f"after {DOWN_SECONDS} s down: {len(seqs)} relay deliveries pending, the oldest retried with backoff",
         [(x["seq"], x["attempts"], x["last_error"]) for x in pending])
    t.ok(slowest < 1, f"the daemon answered normally while the receiver was down (slowest {slowest:.3f} s)")
    relay.start()
    got = relay.wait(n + len(seqs), timeout=30)
    t.eq([json.loads(b)["seq"] for _, b in got[n:]], seqs, "back up: it receives every event, in order")


def test_restart_with_queue():
    relay.stop()
    n = len(relay.got)
    seqs = [ping() for _ in range(3)]
    d.kill9()
    d.start()
    relay.start()
    got = relay.wait(n + 3, timeout=30)
    t.eq([json.loads(b)["seq"] for _, b in got[n:]][:3], seqs, "deliveries queued before a kill -9 arrive after the restart")


def test_bad_queries_and_config():
    for q in ("?state=bogus", "?limit=0", "?limit=1001", "?limit=x"):
        r = d.request("GET", "/v1/webhooks/deliveries" + q, via="unix")
        t.ok(r.status == 400 and r.json["error"]["code"] == "invalid_query", f"deliveries{q}: 400", r)
    t.eq(len(deliveries("?limit=2")), 2, "limit bounds the answer")
    for cfg, why in ((f"webhook_relay = http://127.0.0.1:{relay.port}/\n", "a URL without webhook_secret"),
                     ("webhook_relay = ftp://example.org/\nwebhook_secret = " + SECRET + "\n", "an ftp:// URL"),
                     ("webhook_secret = short\n", "a short secret"),
                     (f"webhook_relay = http://127.0.0.1:{relay.port}/\nwebhook_secret = {SECRET}\n"
                      "webhook_relay_events = exec\n", "an unknown event type")):
        bad = Daemon(config=cfg + "uid_range_base = 1157627904\n")
        try:
            bad.start()
            ok = False
        except RuntimeError as e:
            ok = "webhook" in str(e)
        finally:
            bad.cleanup()
        t.ok(ok, f"{why} is refused at start")


def test_queue_bound():
    down = free_port()  # nothing listens there: every attempt is refused
    q = Daemon(spec=spec, config=f"webhook_relay = http://127.0.0.1:{down}/\nwebhook_secret = {SECRET}\n"
                                 "webhook_retry_min = 3600\nwebhook_retry_max = 3600\nwebhook_deliveries_keep = 3\n"
                                 "uid_range_base = 1157627904\n")
    try:
        q.start()
        seqs = [q.request("POST", "/v1/webhooks/test", via="unix").json["seq"] for _ in range(5)]
        # the delivery thread queues events as it wakes: nothing to wait on from here but the log itself
        deadline = time.monotonic() + 20 * SLOW
        while True:
            log = q.request("GET", "/v1/webhooks/deliveries", via="unix").json["deliveries"]
            if len(log) >= 5 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        pending = sorted(x["seq"] for x in log if x["state"] == "pending")
        failed = sorted(x["seq"] for x in log if x["state"] == "failed")
        t.ok(pending == seqs[2:] and failed == seqs[:2]
             and all("webhook_deliveries_keep" in x["last_error"] for x in log if x["state"] == "failed"),
             "a receiver that stays down: at most webhook_deliveries_keep pending, the oldest are dropped and say so",
             log)
    finally:
        q.cleanup()


try:
    d.start()
    t.run_all([test_signed_delivery, test_retry_and_types, test_blackhole_blocks_nothing, test_down_for_a_minute,
               test_restart_with_queue, test_bad_queries_and_config, test_queue_bound], spec=spec)
finally:
    relay.stop()
    blackhole.close()
    d.cleanup()
