#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HTTP abuse on the TCP listener and malformed requests: connections are limited per client address, idle
and slow (slowloris) unauthenticated connections are closed after tcp_auth_timeout, and neither a flood of
them nor the limit keeps other addresses or the unix socket from being served; a percent-encoded control
character in the URI and an invalid path parameter are 400, and so is HTTP/1.1 without Host."""
import http.client
import select
import socket
import time

from pclib import Daemon, Spec, Tap, read_response, run_cmd

t = Tap()
PER_ADDRESS, TIMEOUT = 4, 3
d = Daemon(spec=Spec(), config=f"api_threads = 2\ntcp_max_connections = 64\n"
           f"tcp_max_connections_per_address = {PER_ADDRESS}\ntcp_auth_timeout = {TIMEOUT}\n")


def connect(source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(30)
    s.connect(("127.0.0.1", d.port))
    return s


def closed_within(socks, seconds):
    """The sockets the server closed (EOF or reset) within `seconds`, waiting on them, not polling."""
    closed, end = set(), time.monotonic() + seconds
    while len(closed) < len(socks):
        left = end - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([s for s in socks if s not in closed], [], [], left)
        for s in ready:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                closed.add(s)
    return closed


def raw(request, source="127.0.0.1"):
    s = connect(source)
    try:
        s.sendall(request)
        return read_response(s)
    finally:
        s.close()


def timed_request(source, token, path="/v1/status"):
    start = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10, source_address=(source, 0))
    c.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    status = c.getresponse().status
    c.close()
    return status, time.monotonic() - start


try:
    d.start()
    admin = d.request("POST", "/v1/tokens", {"role": "admin"}, via="unix").json["token"]
    auth = f"Authorization: Bearer {admin}\r\n".encode()

    # ---- idle connections: the per-address limit, and they do not lock anyone else out ----
    opened = time.monotonic()
    idle = [connect("127.0.0.1") for _ in range(2 * PER_ADDRESS)]
    keep = connect("127.0.0.4")  # authenticates at once, then idles: not subject to tcp_auth_timeout
    keep.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
    t.eq(read_response(keep)[0], 200, "an authenticated keep-alive connection is served")
    refused = closed_within(idle, 1.0)
    t.eq(len(refused), PER_ADDRESS, f"of {2 * PER_ADDRESS} idle connections from one address, those over the "
         f"limit of {PER_ADDRESS} are closed at once")
    held = [s for s in idle if s not in refused]
    status, took = timed_request("127.0.0.2", admin)
    t.ok(status == 200 and took < 1.0, f"meanwhile another address is served promptly ({took:.2f} s)", status)
    start = time.monotonic()
    r = d.request("GET", "/v1/status", via="unix")
    t.ok(r.status == 200 and time.monotonic() - start < 1.0, "and the unix socket too", r.status)
    s = connect("127.0.0.1")
    t.eq(len(closed_within([s], 1.0)), 1, "a further connection from the full address is closed at once")
    s.close()

    # A slowloris from a third address: a header byte every 0.3 s, never silent for long.
    slow = connect("127.0.0.3")
    slow.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
    slow_start, cut = time.monotonic(), None
    while time.monotonic() - slow_start < 3 * TIMEOUT:
        try:
            slow.sendall(b"X")
        except OSError:
            cut = time.monotonic() - slow_start
            break
        if closed_within([slow], 0.3):
            cut = time.monotonic() - slow_start
            break
    t.ok(cut is not None and cut < TIMEOUT + 1.5, f"a slowloris is cut after tcp_auth_timeout ({cut} s)", cut)
    slow.close()

    gone = closed_within(held, TIMEOUT + 2.0 - (time.monotonic() - opened))
    took = time.monotonic() - opened
    t.ok(len(gone) == len(held) and TIMEOUT - 0.5 <= took, f"the idle connections are closed after "
         f"tcp_auth_timeout = {TIMEOUT} s (all {len(held)} within {took:.1f} s)", len(gone))
    for s in idle:
        s.close()
    keep.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
    t.eq(read_response(keep)[0], 200, "the authenticated connection still works after tcp_auth_timeout")
    keep.close()
    status, took = timed_request("127.0.0.1", admin)
    t.eq(status, 200, "the address that was full is served again once its idle connections are gone")

    # ---- control characters in the URI and path parameters ----
    for path, why in ((b"/v1/policies/default%00x", "NUL in a policy name"),
                      (b"/v1/policies/default%00", "trailing NUL"),
                      (b"/v1/sandboxes/a%0ab", "newline in a sandbox name"),
                      (b"/v1/sandboxes/a%1Bb", "ESC in a sandbox name"),
                      (b"/v1/images/x%7f", "DEL in an image name"),
                      (b"/v1/tokens/%00", "NUL as a token id"),
                      (b"/v1/events?sandbox=a%00b", "NUL in a query parameter"),
                      (b"/v1/policies/%64efault%00x", "NUL after another escape"),
                      (b"/v1/sandboxes/x%2Fstop", "an encoded '/' (one segment, not two)")):
        method = b"DELETE" if path.startswith((b"/v1/tokens/", b"/v1/images/")) else b"GET"
        status, body = raw(method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
        t.eq((status, (body or {}).get("error", {}).get("code")), (400, "invalid_path"), f"{why} is 400")
    for path, why in ((b"/v1/sandboxes/Bad_Name", "a sandbox name that is not a name"),
                      (b"/v1/policies/..", "'..' as a policy name"),
                      (b"/v1/policies/a%2Eb", "an encoded '.' in a policy name"),
                      (b"/v1/tokens/" + b"a" * 64, "a 64-character token id")):
        method = b"DELETE" if path.startswith(b"/v1/tokens/") else b"GET"
        status, body = raw(method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
        t.eq((status, (body or {}).get("error", {}).get("code")), (400, "invalid_path"), f"{why} is 400")
    status, body = raw(b"GET /v1/policies/default HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
    t.ok(status == 200 and body["name"] == "default", "the plain name still works", body)
    status, body = raw(b"GET /v1/policies/%64efault HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
    t.ok(status == 200 and body["name"] == "default", "so does a harmless escape", body)

    # ---- Host ----
    status, body = raw(b"GET /v1/status HTTP/1.1\r\n" + auth + b"\r\n")
    t.eq((status, (body or {}).get("error", {}).get("code")), (400, "missing_host"), "HTTP/1.1 without Host is 400")
    status, body = raw(b"GET /v1/health HTTP/1.1\r\n\r\n")
    t.eq(status, 400, "also on a route without authentication")
    status, body = raw(b"GET /v1/status HTTP/1.0\r\n" + auth + b"\r\n")
    t.eq(status, 200, "HTTP/1.0 may leave Host out")
finally:
    d.cleanup()

# ---- the total: idle connections from many addresses fill it, the unix socket is still served ----
TOTAL = 4
full = Daemon(config=f"tcp_max_connections = {TOTAL}\ntcp_max_connections_per_address = 64\n"
              f"tcp_auth_timeout = {TIMEOUT}\n")
try:
    full.start()
    token = full.request("POST", "/v1/tokens", {"role": "admin"}, via="unix").json["token"]
    idle = []
    for i in range(TOTAL):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((f"127.0.1.{i + 1}", 0))
        s.connect(("127.0.0.1", full.port))
        idle.append(s)
    extra = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    extra.bind(("127.0.2.1", 0))
    extra.settimeout(30)
    extra.connect(("127.0.0.1", full.port))  # completes in the kernel's backlog
    extra.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() + b"\r\n\r\n")
    ready, _, _ = select.select([extra], [], [], 1.0)
    t.ok(not ready, f"with {TOTAL} connections open (the total), one more is not served meanwhile")
    start = time.monotonic()
    st = full.request("GET", "/v1/status", via="unix")
    t.ok(st.status == 200 and time.monotonic() - start < 1.0, "... while the unix socket is served at once", st.status)
    # The idle ones are closed at tcp_auth_timeout; then the waiting request is answered.
    status, _ = read_response(extra)
    t.eq(status, 200, f"after the idle connections were closed ({TIMEOUT} s), the waiting request is served")
    for s in idle + [extra]:
        s.close()
finally:
    full.cleanup()

# The limits are configuration: bad values name the file, line and key.
for line in ("tcp_max_connections = 0", "tcp_max_connections_per_address = lots", "tcp_auth_timeout = 3601"):
    bad = Daemon(config=line + "\n")
    p = run_cmd(bad.argv(), text=True)
    key = line.split(" ")[0]
    t.ok(p.returncode != 0 and f"pocketcoder.conf:{bad.config_prefix_lines + 1}:" in p.stderr and key in p.stderr, f"{line!r} is refused", p.stderr)
    bad.cleanup()
t.done()
