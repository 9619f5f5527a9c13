#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The files API (issue 12): byte-exact downloads (text, binary, a 200 MiB file with the daemon's memory
flat), RFC 9110 conditional and range requests, HEAD, a 10,000-file listing in pages, uploads (atomic,
size limit, parents, a file the agent may not write), delete, move, roles and agent scoping; and an attack
corpus (files_attacks.py) run against the openat2 resolver and again against the fallback walk."""
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
import urllib.parse

from pclib import CLI, Daemon, Pty, Spec, Tap, UnixHTTPConnection, run_cmd, sanitizer_clean
import files_attacks

t = Tap()
if os.geteuid() != 0:
    t.skip("files API tests", "need root (namespaces, uid ranges)")
    t.done()

spec = Spec()
P = "fi" + secrets.token_hex(3)
A, B = P + "-a", P + "-b"
M = 1 << 20


class Client:
    """Raw bytes over the unix socket (pclib's request() decodes bodies as text)."""

    def __init__(self, d, token=None, via="unix"):
        self.d, self.token, self.via = d, token, via

    def conn(self):
        if self.via == "unix":
            return UnixHTTPConnection(self.d.socket, timeout=120)
        return http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=120)

    def req(self, method, path, body=None, headers=None):
        if method == "PUT" and body:
            return self.put(path, body, headers)
        c = self.conn()
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, r.headers, r.read()
        finally:
            c.close()

    def put(self, path, body, headers=None):
        """PUT with Expect: 100-continue (as curl sends large bodies): the body goes only once the daemon
        accepted the headers; a refusal before it (401, 404, 413) comes without the body being sent."""
        c = self.conn()
        c.connect()
        sock = c.sock
        h = {"Host": "pc", "Content-Length": str(len(body)), "Expect": "100-continue", **(headers or {})}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        sock.sendall(f"PUT {path} HTTP/1.1\r\n".encode() + "".join(f"{k}: {v}\r\n" for k, v in h.items()).encode() +
                     b"\r\n")
        peek = b""
        while b"\r\n\r\n" not in peek:
            peek = sock.recv(4096, socket.MSG_PEEK)
        if peek.startswith(b"HTTP/1.1 100"):
            sock.recv(peek.index(b"\r\n\r\n") + 4)
            sock.sendall(body)
        r = http.client.HTTPResponse(sock, method="PUT")
        r.begin()
        data = r.read()
        c.close()
        return r.status, r.headers, data

    def url(self, box, path):
        return f"/v1/sandboxes/{box}/files/{path}"


def ws_of(d, box):
    return d.request("GET", f"/v1/sandboxes/{box}", via="unix").json["workspace_host_path"]


def agent_ids(d, box):
    base = d.request("GET", f"/v1/sandboxes/{box}", via="unix").json["uid_base"]
    return base + 1000, base + 1000


def plant(ws, rel, data, uid):
    p = os.path.join(ws, rel)
    parts = rel.split("/")[:-1]
    for i in range(len(parts)):  # directories as the agent would have made them
        sub = os.path.join(ws, *parts[:i + 1])
        if not os.path.isdir(sub):
            os.mkdir(sub)
            os.chown(sub, uid, uid)
    with open(p, "wb") as f:
        f.write(data)
    os.chown(p, uid, uid)
    return p


def vm(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def streamed_sha256(c, path, headers=None):
    """Downloads without holding the body: (status, bytes, sha256)."""
    conn = c.conn()
    h = dict(headers or {})
    if c.token:
        h["Authorization"] = f"Bearer {c.token}"
    conn.request("GET", path, headers=h)
    r = conn.getresponse()
    sha, n = hashlib.sha256(), 0
    while True:
        chunk = r.read(1 << 20)
        if not chunk:
            break
        sha.update(chunk)
        n += len(chunk)
    conn.close()
    return r.status, n, sha.hexdigest()


def test_basics(d, c, ws, uid):
    s, h, body = c.req("PUT", c.url(A, "hello.txt"), b"hello\n")
    t.eq(s, 201, "PUT creates a file (201)")
    s, h, body = c.req("PUT", c.url(A, "hello.txt"), b"hello again\n")
    t.eq(s, 200, "PUT replaces a file (200)")
    st = os.stat(os.path.join(ws, "hello.txt"))
    t.eq((st.st_uid, st.st_gid), (uid, uid), "an uploaded file belongs to the sandbox's agent")
    s, h, body = c.req("GET", c.url(A, "hello.txt"))
    t.eq((s, body), (200, b"hello again\n"), "GET gives the uploaded bytes")
    t.eq(h["Content-Type"], "text/plain; charset=utf-8", "Content-Type from the extension")
    t.ok(h.get("X-Content-Type-Options") == "nosniff" and h.get("Content-Security-Policy") == "sandbox",
         "agent-written files are served with nosniff and a sandboxing CSP")
    t.eq(sorted(x for x in os.listdir(ws) if x.startswith(".pc-upload-")), [], "no temporary file is left")

    blob = os.urandom(3 * M + 17)
    s, h, body = c.req("PUT", c.url(A, "bin/blob"), blob)
    t.eq(s, 404, "PUT into a missing directory without parents=1 is 404")
    s, h, body = c.req("PUT", c.url(A, "bin/deep/blob") + "?parents=1", blob)
    t.eq(s, 201, "PUT with parents=1 creates the directories")
    s, h, body = c.req("GET", c.url(A, "bin/deep/blob"))
    t.ok(s == 200 and body == blob, "binary round trip is byte-exact (3 MiB + 17 random bytes)")
    t.eq(h["Content-Type"], "application/octet-stream", "binary content is sniffed as application/octet-stream")
    plant(ws, "notes", b"plain words\n", uid)
    t.eq(c.req("GET", c.url(A, "notes"))[1]["Content-Type"], "text/plain; charset=utf-8",
         "text without an extension is sniffed as text/plain")

    s, h, body = c.req("HEAD", c.url(A, "bin/deep/blob"))
    t.ok(s == 200 and body == b"" and int(h["Content-Length"]) == len(blob),
         "HEAD: status, Content-Length and no body", (s, h.get("Content-Length")))

    # Root-owned 0644 file in the workspace: the agent could not write it, neither can the API.
    root_file = plant(ws, "rootfile", b"root's\n", 0)
    os.chmod(root_file, 0o644)
    s, h, body = c.req("PUT", c.url(A, "rootfile"), b"overwritten\n")
    t.eq(s, 403, "PUT over a root-owned 0644 file is refused (403)")
    t.eq(open(root_file, "rb").read(), b"root's\n", "the root-owned file is unchanged")
    os.makedirs(os.path.join(ws, "rootdir"))
    os.chmod(os.path.join(ws, "rootdir"), 0o755)
    s, h, body = c.req("PUT", c.url(A, "rootdir/new"), b"x")
    t.eq(s, 403, "PUT into a root-owned directory is refused (403)")
    t.ok(not os.path.exists(os.path.join(ws, "rootdir/new")), "nothing was created in the root-owned directory")
    secret = plant(ws, "secret", b"0600 root\n", 0)
    os.chmod(secret, 0o600)
    t.eq(c.req("GET", c.url(A, "secret"))[0], 403, "GET of a root-owned 0600 file is refused (403)")

    # Delete and move.
    plant(ws, "mv/src", b"moving\n", uid)
    s, h, body = c.req("POST", c.url(A, "mv/src:move"), b'{"to": "mv/dst"}', {"Content-Type": "application/json"})
    t.eq(s, 200, "POST :move renames")
    t.ok(not os.path.exists(os.path.join(ws, "mv/src")) and open(os.path.join(ws, "mv/dst"), "rb").read() == b"moving\n",
         "the file moved")
    plant(ws, "mv/other", b"o\n", uid)
    s, h, body = c.req("POST", c.url(A, "mv/other:move"), b'{"to": "mv/dst"}', {"Content-Type": "application/json"})
    t.eq(s, 409, "a move never replaces an existing file (409)")
    s, h, body = c.req("POST", c.url(A, "mv/other:move"), b'{"to": "../x"}', {"Content-Type": "application/json"})
    t.eq(s, 400, "a move to \"../x\" is 400")
    s, h, body = c.req("POST", c.url(A, "mv/other:move"), b'{"to": "y", "mode": 1}', {"Content-Type": "application/json"})
    t.eq(s, 400, "a move body with an unknown field is 400")
    t.eq(c.req("DELETE", c.url(A, "mv/dst"))[0], 204, "DELETE removes a file")
    t.ok(not os.path.exists(os.path.join(ws, "mv/dst")), "the file is gone")
    t.eq(c.req("DELETE", c.url(A, "mv"))[0], 409, "DELETE of a non-empty directory is 409")
    t.eq(c.req("DELETE", c.url(A, "mv/dst"))[0], 404, "DELETE of a missing file is 404")
    t.eq(c.req("DELETE", c.url(A, "rootfile"))[0], 204,
         "DELETE of a root-owned file in the agent's own directory works (the agent could rm it too)")


def test_limits(d, c, ws):
    big = b"z" * (4 * M + 1)
    s, h, body = c.req("PUT", c.url(A, "toobig"), big)
    t.eq(s, 413, "PUT larger than files_max_upload (announced length) is 413")

    def chunks():
        for _ in range(5):
            yield b"y" * M
    conn = UnixHTTPConnection(d.socket, timeout=60)
    conn.request("PUT", c.url(A, "toobig2"), body=chunks(), encode_chunked=True)
    r = conn.getresponse()
    r.read()
    conn.close()
    t.eq(r.status, 413, "PUT larger than files_max_upload (chunked, no length) is 413")
    t.ok(not os.path.exists(os.path.join(ws, "toobig")) and not os.path.exists(os.path.join(ws, "toobig2")) and
         not [x for x in os.listdir(ws) if x.startswith(".pc-upload-")], "nothing is left of a refused upload")


def test_conditional(d, c, ws, uid):
    data = bytes(range(256)) * 4  # 1024 bytes
    plant(ws, "r.bin", data, uid)
    u = c.url(A, "r.bin")
    s, h, _ = c.req("GET", u)
    etag, lm = h["ETag"], h["Last-Modified"]
    t.ok(re.fullmatch(r'"[0-9a-f.\-]+"', etag) is not None, "a strong ETag", etag)
    t.ok(lm.endswith(" GMT"), "Last-Modified is an HTTP date", lm)
    t.eq(h["Accept-Ranges"], "bytes", "Accept-Ranges: bytes")
    s, h, body = c.req("GET", u, headers={"If-None-Match": etag})
    t.ok(s == 304 and body == b"" and h["ETag"] == etag, "If-None-Match with the ETag: 304 with the ETag, no body")
    t.eq(c.req("GET", u, headers={"If-None-Match": f'"other", W/{etag}'})[0], 304,
         "If-None-Match uses weak comparison (W/ and lists)")
    t.eq(c.req("GET", u, headers={"If-None-Match": "*"})[0], 304, "If-None-Match: * on an existing file is 304")
    t.eq(c.req("GET", u, headers={"If-None-Match": '"nope"'})[0], 200, "If-None-Match with another tag: 200")
    t.eq(c.req("GET", u, headers={"If-Modified-Since": lm})[0], 304, "If-Modified-Since the mtime: 304")
    t.eq(c.req("GET", u, headers={"If-None-Match": '"nope"', "If-Modified-Since": lm})[0], 200,
         "If-None-Match takes precedence over If-Modified-Since (RFC 9110 13.2.2)")
    t.eq(c.req("HEAD", u, headers={"If-None-Match": etag})[0], 304, "HEAD honours If-None-Match")

    s, h, body = c.req("GET", u, headers={"Range": "bytes=0-9"})
    t.ok(s == 206 and body == data[0:10] and h["Content-Range"] == "bytes 0-9/1024", "single range 0-9", (s, h.get("Content-Range")))
    s, h, body = c.req("GET", u, headers={"Range": "bytes=1000-"})
    t.ok(s == 206 and body == data[1000:] and h["Content-Range"] == "bytes 1000-1023/1024", "open range 1000-")
    s, h, body = c.req("GET", u, headers={"Range": "bytes=-24"})
    t.ok(s == 206 and body == data[-24:] and h["Content-Range"] == "bytes 1000-1023/1024", "suffix range -24")
    s, h, body = c.req("GET", u, headers={"Range": "bytes=-5000"})
    t.ok(s == 206 and body == data, "a suffix longer than the file is the whole file (206)")
    s, h, body = c.req("GET", u, headers={"Range": "bytes=1020-5000"})
    t.ok(s == 206 and body == data[1020:], "a last-pos beyond the end is clamped")
    s, h, body = c.req("GET", u, headers={"Range": "bytes=1024-"})
    t.ok(s == 416 and h["Content-Range"] == "bytes */1024", "an unsatisfiable range: 416 with bytes */size")
    s, h, body = c.req("GET", u, headers={"Range": "bytes=5-2"})
    t.ok(s == 200 and body == data, "an invalid range header is ignored (200, whole file)")
    s, h, body = c.req("GET", u, headers={"Range": "items=0-1"})
    t.eq(s, 200, "another range unit is ignored (200)")

    s, h, body = c.req("GET", u, headers={"Range": "bytes=0-1, 10-12, -2"})
    ctype = h["Content-Type"]
    t.ok(s == 206 and ctype.startswith("multipart/byteranges; boundary="), "several ranges: 206 multipart/byteranges")
    boundary = ctype.split("boundary=")[1].encode()
    parts = body.split(b"--" + boundary)
    got = []
    for part in parts[1:-1]:
        head, payload = part.split(b"\r\n\r\n", 1)
        if payload.endswith(b"\r\n"):
            payload = payload[:-2]
        cr = re.search(rb"Content-Range: bytes (\d+)-(\d+)/1024", head)
        got.append((int(cr.group(1)), int(cr.group(2)), payload))
    t.eq([(a, b_) for a, b_, _ in got], [(0, 1), (10, 12), (1022, 1023)], "the parts' Content-Range headers")
    t.ok(all(p == data[a:b_ + 1] for a, b_, p in got), "the parts' bytes")
    t.eq(parts[-1], b"--\r\n", "the multipart body ends with the closing boundary")
    t.eq(int(h["Content-Length"]), len(body), "the multipart Content-Length is exact")

    s, h, body = c.req("GET", u, headers={"Range": "bytes=0-9", "If-Range": etag})
    t.eq(s, 206, "If-Range with the current ETag: the range (206)")
    s, h, body = c.req("GET", u, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    t.ok(s == 200 and body == data, "If-Range with a stale ETag: the whole file (200)")
    s, h, body = c.req("GET", u, headers={"Range": "bytes=0-9", "If-Range": "W/" + etag})
    t.eq(s, 200, "If-Range never matches a weak ETag (strong comparison)")
    s, h, body = c.req("GET", u, headers={"Range": "bytes=0-9", "If-Range": lm})
    t.eq(s, 206, "If-Range with the Last-Modified date: the range")
    os.utime(os.path.join(ws, "r.bin"), ns=(time.time_ns(), time.time_ns() + 5 * 10**9))
    s, h, body = c.req("GET", u, headers={"If-None-Match": etag})
    t.eq(s, 200, "after the file changed, the old ETag no longer matches")


def test_listing(d, c, ws, uid):
    big = os.path.join(ws, "many")
    os.makedirs(big)
    os.chown(big, uid, uid)
    names = sorted(f"f{i:05d}" for i in range(10000))
    for n in names:
        fd = os.open(os.path.join(big, n), os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)
    os.symlink("/etc/shadow", os.path.join(big, "zz-link"))
    seen, cursor, pages = [], None, 0
    while True:
        q = "?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        r = d.request("GET", f"/v1/sandboxes/{A}/files/many{q}", via="unix")
        if r.status != 200:
            t.ok(False, "listing page", r)
            break
        pages += 1
        seen += [e["name"] for e in r.json["entries"]]
        cursor = r.json.get("next_cursor")
        if not cursor:
            break
    t.eq(pages, 11, "10,001 entries in pages of 1000: 11 pages")
    t.eq(seen, names + ["zz-link"], "every entry exactly once, sorted by name")
    r = d.request("GET", f"/v1/sandboxes/{A}/files/many?cursor=f09998", via="unix")
    e = {x["name"]: x for x in r.json["entries"]}
    t.eq(e["zz-link"]["type"], "symlink", "a symlink is listed as a symlink (not followed)")
    t.eq((e["f09999"]["type"], e["f09999"]["size"], e["f09999"]["mode"]), ("file", 0, "0644"),
         "an entry has type, size and mode")
    r = d.request("GET", f"/v1/sandboxes/{A}/files", via="unix")
    t.ok(r.status == 200 and "many" in [x["name"] for x in r.json["entries"]], "GET .../files lists the workspace's top")
    t.eq(d.request("GET", f"/v1/sandboxes/{A}/files/many?limit=0", via="unix").status, 400, "limit=0 is 400")
    t.eq(d.request("GET", f"/v1/sandboxes/{A}/files/many?limit=10001", via="unix").status, 400, "limit above 10000 is 400")


def test_big(d, c, ws, uid):
    p = os.path.join(ws, "big.bin")
    block = os.urandom(M)
    sha = hashlib.sha256()
    with open(p, "wb") as f:
        for i in range(200):
            b = bytes([i]) + block[1:]
            f.write(b)
            sha.update(b)
    os.chown(p, uid, uid)
    before = vm(d.pid, "VmRSS")
    s, n, digest = streamed_sha256(c, c.url(A, "big.bin"))
    after_hwm, after = vm(d.pid, "VmHWM"), vm(d.pid, "VmRSS")
    t.ok(s == 200 and n == 200 * M and digest == sha.hexdigest(), "200 MiB download is byte-exact (sha256)", (s, n))
    t.ok(after - before < 32 * M and after_hwm < before + 64 * M,
         f"the daemon's memory stays flat: RSS {before >> 20} -> {after >> 20} MiB, peak {after_hwm >> 20} MiB")
    s, n, digest = streamed_sha256(c, c.url(A, "big.bin"), {"Range": f"bytes={100 * M}-{100 * M + 9}"})
    with open(p, "rb") as f:
        f.seek(100 * M)
        want = hashlib.sha256(f.read(10)).hexdigest()
    t.ok(s == 206 and n == 10 and digest == want, "a range in the middle of the 200 MiB file")
    os.unlink(p)


def test_roles(d, ws_a):
    relay = d.request("POST", "/v1/tokens", {"role": "relay"}, via="unix").json["token"]
    agent_a = d.request("POST", "/v1/tokens", {"role": "agent", "sandbox": A}, via="unix").json["token"]
    r = Client(d, relay, via="tcp")
    a = Client(d, agent_a, via="tcp")
    t.eq(r.req("GET", r.url(A, "hello.txt"))[0], 200, "a relay token reads files")
    t.eq(r.req("PUT", r.url(A, "from-relay"), b"r")[0], 201, "a relay token uploads files")
    t.eq(a.req("GET", a.url(A, "hello.txt"))[0], 200, "the agent token reads its own sandbox's files")
    t.eq(a.req("GET", a.url(B, "b.txt"))[0], 403, "the agent token of A may not read B's files")
    t.eq(a.req("PUT", a.url(B, "x"), b"x")[0], 403, "the agent token of A may not write B's files")
    t.eq(a.req("DELETE", a.url(B, "b.txt"))[0], 403, "the agent token of A may not delete B's files")
    # The agent socket (a sandbox's /run/pocketcoder/api.sock, reached here from the host by its path): no
    # token, the agent of that sandbox.
    class AgentSocket(Client):
        def __init__(self, box):
            super().__init__(d)
            self.path = os.path.join(d.run, "sandboxes", box, "api.sock")

        def conn(self):
            return UnixHTTPConnection(self.path, timeout=60)
    s_ = AgentSocket(A)
    t.eq(s_.req("GET", s_.url(A, "hello.txt"))[0], 200, "the agent socket of A reads A's files")
    t.eq(s_.req("PUT", s_.url(A, "from-agent-socket"), b"a")[0], 201, "the agent socket of A writes A's files")
    t.eq(s_.req("GET", s_.url(B, "b.txt"))[0], 403, "the agent socket of A may not read B's files")
    t.eq(s_.req("GET", f"/v1/links/{B}/b.txt?expires=1&sig=" + "0" * 64)[0], 403,
         "a forged link is refused on the agent socket too")
    t.eq(Client(d, None, via="tcp").req("GET", r.url(A, "hello.txt"))[0], 401, "no token: 401")
    t.eq(Client(d, None, via="tcp").req("PUT", r.url(A, "anon"), b"x")[0], 401, "no token: PUT is 401")
    t.ok(not os.path.exists(os.path.join(ws_a, "anon")), "an unauthenticated PUT writes nothing")
    t.eq(Client(d).req("GET", f"/v1/sandboxes/{P}-none/files/x")[0], 404, "files of a missing sandbox: 404")


def test_cli(d, ws, uid):
    tmp = tempfile.mkdtemp(prefix="pc-files-cli-")
    try:
        src = os.path.join(tmp, "src.bin")
        data = os.urandom(3 * M + 3)  # files_max_upload is 4M here
        with open(src, "wb") as f:
            f.write(data)
        p = d.cli("files", "put", "--parents", A, "cli/dir/up.bin", src)
        t.ok(p.returncode == 0, "pocketcoder files put --parents uploads", p.stderr)
        t.ok(open(os.path.join(ws, "cli/dir/up.bin"), "rb").read() == data, "the uploaded file is byte-exact")
        out = os.path.join(tmp, "out.bin")
        p = d.cli("files", "get", A, "cli/dir/up.bin", out)
        t.ok(p.returncode == 0 and open(out, "rb").read() == data, "pocketcoder files get downloads byte-exact", p.stderr)
        p = run_cmd([CLI, "files", "put", A, "cli/stdin.txt", "-"], env=d.cli_env(), input=b"from stdin\n")
        t.ok(p.returncode == 0 and open(os.path.join(ws, "cli/stdin.txt"), "rb").read() == b"from stdin\n",
             "pocketcoder files put - reads stdin (chunked upload)", p.stderr)
        p = d.cli("files", "ls", A, "cli/dir")
        t.ok(p.returncode == 0 and "up.bin" in p.stdout and "NAME" in p.stdout, "pocketcoder files ls lists", p.stdout)
        p = d.cli("files", "mv", A, "cli/dir/up.bin", "cli/moved.bin")
        t.ok(p.returncode == 0 and os.path.exists(os.path.join(ws, "cli/moved.bin")), "pocketcoder files mv", p.stderr)
        p = d.cli("files", "rm", A, "cli/moved.bin")
        t.ok(p.returncode == 0 and not os.path.exists(os.path.join(ws, "cli/moved.bin")), "pocketcoder files rm", p.stderr)
        p = d.cli("files", "get", A, "link-shadow-cli", os.path.join(tmp, "x"))
        t.ok(p.returncode == 1 and "does not exist" in p.stderr and not os.path.exists(os.path.join(tmp, "x")),
             "a failed get says why and leaves no file", p.stderr)
        # Progress on a terminal (stderr is the pty), and none on a pipe (above: stderr was captured).
        plant(ws, "cli/six.bin", b"6" * (6 * M), uid)
        out6 = os.path.join(tmp, "six.bin")
        pty = Pty([CLI, "files", "get", A, "cli/six.bin", out6], env=d.cli_env())
        try:
            t.ok(pty.wait(60) == 0 and b"100.0%" in pty.out and b"MiB/s" in pty.out,
                 "a 6 MiB download shows its progress on a terminal", pty.out[-200:])
        finally:
            pty.close()
        t.eq(os.path.getsize(out6), 6 * M, "the download under a terminal is complete")
        p = d.cli("files", "get", A, "cli/six.bin", os.path.join(tmp, "six2.bin"))
        t.ok(p.returncode == 0 and p.stderr == "", "no progress when stderr is not a terminal", p.stderr)
        p = d.cli("files", "get", A, "../etc/shadow", os.path.join(tmp, "x"))
        t.ok(p.returncode == 1 and "invalid path" in p.stderr, "the CLI shows the daemon's 400 for ..", p.stderr)
    finally:
        shutil.rmtree(tmp)


def test_links(d, c, ws, uid):
    import hmac
    import sqlite3
    import urllib.parse

    plant(ws, "out/report.txt", b"the report\n", uid)
    s, h, body = c.req("POST", c.url(A, "out/report.txt:link"), b'{"minutes": 5}', {"Content-Type": "application/json"})
    t.eq(s, 201, "POST :link makes a link (201)")
    link = json.loads(body)
    t.ok(link["url"].startswith(f"/v1/links/{A}/out/report.txt?") and link["expires"] > time.time() + 240,
         "the link names the file and expires in 5 minutes", link)
    anon = Client(d, None, via="tcp")
    s, h, body = anon.req("GET", link["url"])
    t.eq((s, body), (200, b"the report\n"), "the link downloads the file without a token")
    t.eq(anon.req("GET", link["url"], headers={"Range": "bytes=4-9"})[2], b"report", "a link honours Range")
    q = urllib.parse.parse_qs(urllib.parse.urlparse(link["url"]).query)
    sig, exp = q["sig"][0], int(q["expires"][0])
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    cases = [
        ("a tampered signature", f"/v1/links/{A}/out/report.txt?expires={exp}&sig={flipped}"),
        ("a later expiry with the same signature", f"/v1/links/{A}/out/report.txt?expires={exp + 3600}&sig={sig}"),
        ("another file with the same signature", f"/v1/links/{A}/hello.txt?expires={exp}&sig={sig}"),
        ("another sandbox with the same signature", f"/v1/links/{B}/out/report.txt?expires={exp}&sig={sig}"),
        ("no signature", f"/v1/links/{A}/out/report.txt?expires={exp}"),
        ("a short signature", f"/v1/links/{A}/out/report.txt?expires={exp}&sig={sig[:10]}"),
    ]
    for what, url in cases:
        s, h, body = anon.req("GET", url)
        t.ok(s == 403 and b"the report" not in body, f"a link with {what} is refused (403)", (s, body[:200]))
    # An expired link: signed with the daemon's own key (read from its settings table) for a past time.
    db = sqlite3.connect(os.path.join(d.state, "state.db"))
    key = bytes.fromhex(db.execute("SELECT value FROM settings WHERE key = 'files_link_key'").fetchone()[0])
    db.close()
    past = int(time.time()) - 10
    msg = b"pocketcoder-files-link-v1\n" + A.encode() + b"\0" + b"out/report.txt\0" + str(past).encode()
    good_but_old = hmac.new(key, msg, "sha256").hexdigest()
    s, h, body = anon.req("GET", f"/v1/links/{A}/out/report.txt?expires={past}&sig={good_but_old}")
    t.ok(s == 403 and json.loads(body)["error"]["code"] == "link_expired", "an expired link is refused (403 link_expired)")
    msg = b"pocketcoder-files-link-v1\n" + A.encode() + b"\0" + b"out/report.txt\0" + str(exp).encode()
    t.eq(hmac.new(key, msg, "sha256").hexdigest(), sig, "the signature is the documented HMAC-SHA256")
    t.eq(c.req("POST", c.url(A, "out:link"), b'{}', {"Content-Type": "application/json"})[0], 400,
         "a link to a directory is 400")
    t.eq(c.req("POST", c.url(A, "out/report.txt:link"), b'{"minutes": 0}', {"Content-Type": "application/json"})[0], 400,
         "minutes 0 is 400")
    t.eq(c.req("POST", c.url(A, "out/report.txt:link"), b'{"minutes": 20000}', {"Content-Type": "application/json"})[0],
         400, "minutes above a week is 400")
    os.symlink("/etc/shadow", os.path.join(ws, "out/lnk"))
    t.eq(c.req("POST", c.url(A, "out/lnk:link"), b'{}', {"Content-Type": "application/json"})[0], 403,
         "no link to a symlink")
    t.eq(c.req("POST", c.url(A, "out/report.txt:copy"), b'{}', {"Content-Type": "application/json"})[0], 404,
         "an unknown action is 404")
    p = d.cli("files", "link", "--minutes", "2", A, "out/report.txt")
    t.ok(p.returncode == 0 and p.stdout.startswith(f"/v1/links/{A}/out/report.txt?expires="),
         "pocketcoder files link prints the link", p.stdout + p.stderr)
    t.eq(anon.req("GET", p.stdout.strip())[2], b"the report\n", "the CLI's link downloads the file")
    os.unlink(os.path.join(ws, "out/report.txt"))
    t.eq(anon.req("GET", link["url"])[0], 404, "a link to a file removed since is 404")
    db = sqlite3.connect(os.path.join(d.state, "state.db"))
    actions = {a for (a,) in db.execute("SELECT action FROM audit WHERE action LIKE 'file.%'")}
    db.close()
    t.eq(actions, {"file.put", "file.delete", "file.move"}, "uploads, deletes and moves are in the audit ledger")


class Watch:
    """GET .../files/PATH?watch=1 on a raw socket: the SSE events as they come."""

    def __init__(self, d, box, path, token=None):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(20)
        self.s.connect(d.socket)
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.s.sendall(f"GET /v1/sandboxes/{box}/files/{path}?watch=1 HTTP/1.1\r\nHost: pc\r\n{auth}\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1]) if head else None
        self.head = head

    def events(self, until):
        """Events until one matches `until` (an event dict predicate); the socket's timeout bounds the wait."""
        got = []
        while True:
            for block in re.findall(rb"data: (\{.*?\})\n", self.buf):
                ev = json.loads(block)
                got.append(ev)
                if until(ev):
                    self.buf = self.buf[self.buf.index(block) + len(block):]
                    return got
            try:
                chunk = self.s.recv(4096)
            except socket.timeout:
                return got
            if not chunk:
                return got
            self.buf += chunk

    def ended(self):
        try:
            while True:
                chunk = self.s.recv(4096)
                if not chunk:
                    return True
                self.buf += chunk
                if self.buf.endswith(b"0\r\n\r\n"):
                    return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def test_watch(d, ws, uid):
    os.makedirs(os.path.join(ws, "w/sub"))
    for p in ("w", "w/sub"):
        os.chown(os.path.join(ws, p), uid, uid)
    w = Watch(d, A, "w")
    t.ok(w.status == 200 and b"text/event-stream" in w.head, "?watch=1 answers an event stream", w.head)
    plant(ws, "w/new.txt", b"1", uid)
    ev = w.events(lambda e: e["event"] == "created" and e["path"] == "w/new.txt")
    t.ok(ev and ev[-1] == {"event": "created", "path": "w/new.txt"}, "a created file is an event", ev)
    ev = w.events(lambda e: e["event"] == "modified" and e["path"] == "w/new.txt")
    t.ok(ev and ev[-1]["event"] == "modified", "a written file is a modified event", ev)
    os.rename(os.path.join(ws, "w/new.txt"), os.path.join(ws, "w/renamed.txt"))
    ev = w.events(lambda e: e["event"] == "moved_to")
    t.ok([e["event"] for e in ev][-2:] == ["moved_from", "moved_to"] and ev[-1]["path"] == "w/renamed.txt",
         "a rename is moved_from then moved_to", ev)
    c = Client(d)
    c.req("DELETE", c.url(A, "w/renamed.txt"))
    ev = w.events(lambda e: e["event"] == "deleted")
    t.ok(ev and ev[-1] == {"event": "deleted", "path": "w/renamed.txt"}, "a delete through the API is an event", ev)
    top = Watch(d, A, "")
    t.eq(top.status, 200, "the workspace's top can be watched too (.../files?watch=1)")
    top.close()
    t.eq(Watch(d, A, "hello.txt").status, 400, "watch=1 on a file is 400")
    t.eq(Watch(d, A, "link-shadow-w").status, 404, "watch=1 on something missing is 404")
    os.symlink(os.path.join(ws, "w"), os.path.join(ws, "wlink"))
    t.eq(Watch(d, A, "wlink").status, 403, "watch=1 through a symlink is 403")
    agent_b = d.request("POST", "/v1/tokens", {"role": "agent", "sandbox": B}, via="unix").json["token"]
    t.eq(Watch(d, A, "w", token=agent_b).status, 403, "the agent of B may not watch A")
    more = [Watch(d, A, "w/sub") for _ in range(7)]
    t.ok(all(x.status == 200 for x in more), "8 watchers on one sandbox")
    ninth = Watch(d, A, "w/sub")
    t.eq(ninth.status, 503, "a 9th watcher on one sandbox is refused (bounded)")
    ninth.close()
    for x in more:
        x.close()
    os.rmdir(os.path.join(ws, "w/sub"))
    ev = w.events(lambda e: e["event"] == "deleted" and e["path"] == "w/sub")
    t.ok(ev and ev[-1]["path"] == "w/sub", "a removed subdirectory is an event", ev)
    # Closed watchers are gone once their connection ends: a new one is accepted again.
    deadline = time.monotonic() + 30
    while True:
        again = Watch(d, A, "w")
        if again.status == 200 or time.monotonic() > deadline:
            break
        again.close()
        time.sleep(0.5)  # closed watchers are noticed at their next event or keep-alive (no event to wait on)
    t.eq(again.status, 200, "watchers of closed connections are released")
    again.close()
    return w


def test_tar(d, c, ws, uid, outside):
    import io
    import tarfile

    long_name = "n" * 150
    files = {"t/a.txt": b"alpha\n", "t/sub/b.bin": os.urandom(70000), f"t/sub/{long_name}": b"long\n"}
    for rel, data in files.items():
        plant(ws, rel, data, uid)
    os.symlink(outside.canary, os.path.join(ws, "t/canary-link"))
    os.mkfifo(os.path.join(ws, "t/fifo"))
    os.makedirs(os.path.join(ws, "t/mnt"))
    os.system(f"mount --bind {outside.dir} {os.path.join(ws, 't/mnt')}")
    secret = plant(ws, "t/secret", b"root only\n", 0)
    os.chmod(secret, 0o600)
    try:
        s, h, body = c.req("GET", c.url(A, "t"), headers={"Accept": "application/x-tar"})
    finally:
        os.system(f"umount -l {os.path.join(ws, 't/mnt')}")
    t.ok(s == 200 and h["Content-Type"] == "application/x-tar" and 'filename="t.tar"' in h["Content-Disposition"],
         "Accept: application/x-tar gives the directory as a tar", (s, dict(h)))
    tf = tarfile.open(fileobj=io.BytesIO(body))
    members = {m.name.rstrip("/"): m for m in tf.getmembers()}
    got = {n: tf.extractfile(m).read() for n, m in members.items() if m.isfile()}
    want = {rel[2:]: data for rel, data in files.items()}
    t.eq(got, want, "the tar holds every regular file byte-exact (a 150-byte name included)")
    t.ok("sub" in members and members["sub"].isdir(), "directories are in the tar")
    t.ok(members.get("canary-link") is not None and members["canary-link"].issym() and
         members["canary-link"].linkname == outside.canary, "a symlink is stored as a symlink, not followed")
    t.ok("fifo" not in members and "secret" not in members and not any(n.startswith("mnt/") for n in members),
         "fifos, files the agent may not read and other mounts are left out", sorted(members))
    t.ok(files_attacks.CANARY not in body, "nothing from outside the workspace is in the tar")
    s, h, body = c.req("GET", c.url(A, "t/a.txt"), headers={"Accept": "application/x-tar"})
    t.eq(body, b"alpha\n", "Accept: application/x-tar on a file gives the file")


def test_recursive(d, ws):
    want = []
    for root, dirs, files in os.walk(os.path.join(ws, "t")):
        for n in dirs + files:
            want.append(os.path.relpath(os.path.join(root, n), os.path.join(ws, "t")))
    seen, cursor = [], None
    for _ in range(100):
        q = "?recursive=1&limit=3" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        r = d.request("GET", f"/v1/sandboxes/{A}/files/t{q}", via="unix")
        if r.status != 200:
            t.ok(False, "recursive page", r)
            break
        seen += [e["name"] for e in r.json["entries"]]
        cursor = r.json.get("next_cursor")
        if not cursor:
            break
    t.eq(seen, sorted(want), "?recursive=1 lists every entry below, by relative path, sorted, in pages of 3")
    r = d.request("GET", f"/v1/sandboxes/{A}/files/t?recursive=1", via="unix")
    types = {e["name"]: e["type"] for e in r.json["entries"]}
    t.ok(types.get("canary-link") == "symlink" and types.get("fifo") == "fifo" and types.get("sub") == "directory",
         "recursive entries keep their types; symlinks are not entered", types)
    t.eq(d.request("GET", f"/v1/sandboxes/{A}/files/t?recursive=2", via="unix").status, 400, "recursive=2 is 400")
    t.eq(d.request("GET", f"/v1/sandboxes/{A}/files/t?recursive=1&cursor=../x", via="unix").status, 400,
         "a cursor with .. is 400")


def test_slow_link(d, c, ws, uid):
    """A download through a link that takes longer than tcp_auth_timeout (1 s here) is not cut: the link
    is the request's authorization. The client reads slowly on purpose (a phone on a slow network)."""
    data = os.urandom(M) * 16
    plant(ws, "slow.bin", data, uid)
    s, h, body = c.req("POST", c.url(A, "slow.bin:link"), b'{}', {"Content-Type": "application/json"})
    url = json.loads(body)["url"]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", d.port))
    sock.sendall(f"GET {url} HTTP/1.1\r\nHost: pc\r\nConnection: close\r\n\r\n".encode())
    got, t0 = b"", time.monotonic()
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        got += chunk
        time.sleep(0.01)  # the slow reader is what is tested
    sock.close()
    took = time.monotonic() - t0
    body = got.partition(b"\r\n\r\n")[2]
    t.ok(body == data and took > 1.5, f"a 16 MiB link download taking {took:.1f} s (tcp_auth_timeout 1 s) is complete",
         (len(body), took))
    os.unlink(os.path.join(ws, "slow.bin"))


def main():
    d = Daemon(spec=spec, config="uid_range_base = 1174405120\nfiles_max_upload = 4M\n").start()
    d2 = None
    outside = None
    try:
        t.eq(d.create_sandbox(A, network="none").status, 201, "sandbox A")
        t.eq(d.create_sandbox(B, network="none").status, 201, "sandbox B")
        ws = ws_of(d, A)
        uid, _ = agent_ids(d, A)
        plant(ws_of(d, B), "b.txt", b"b\n", agent_ids(d, B)[0])
        c = Client(d)
        test_basics(d, c, ws, uid)
        test_limits(d, c, ws)
        test_conditional(d, c, ws, uid)
        test_listing(d, c, ws, uid)
        test_big(d, c, ws, uid)
        test_roles(d, ws)
        test_cli(d, ws, uid)
        test_links(d, c, ws, uid)
        watcher = test_watch(d, ws, uid)
        outside = files_attacks.Outside(d)
        test_tar(d, c, ws, uid, outside)
        test_recursive(d, ws)
        files_attacks.run(t, d, c, A, ws, uid, outside, "openat2")
        r = d.request("GET", "/v1/sandboxes/" + A + "/files/hello.txt", via="unix")
        t.eq(r.status, 200, "the daemon still serves after the attacks")

        # The fallback resolver (what runs where openat2 is missing), forced in a second daemon.
        os.environ["PC_FILES_NO_OPENAT2"] = "1"
        try:
            # Workspaces as plain directories on the test's filesystem (no image of their own), so that
            # hard links to files outside the workspace can be planted too.
            # tcp_auth_timeout 1: a link download must outlive the watchdog for unauthenticated connections.
            d2 = Daemon(spec=spec, config="uid_range_base = 1191182336\nsandbox_disk = none\ntcp_auth_timeout = 1\n").start()
        finally:
            del os.environ["PC_FILES_NO_OPENAT2"]
        t.eq(d2.create_sandbox(A, network="none").status, 201, "sandbox A on the fallback daemon")
        ws2 = ws_of(d2, A)
        uid2, _ = agent_ids(d2, A)
        c2 = Client(d2)
        plant(ws2, "hello.txt", b"fallback\n", uid2)
        s, _, body = c2.req("GET", c2.url(A, "hello.txt"))
        t.eq((s, body), (200, b"fallback\n"), "the fallback walk serves a plain file")
        t.eq(c2.req("PUT", c2.url(A, "sub/dir/up") + "?parents=1", b"up")[0], 201, "the fallback walk uploads with parents")
        files_attacks.run(t, d2, c2, A, ws2, uid2, outside, "fallback walk")
        test_slow_link(d2, c2, ws2, uid2)
        # A daemon stopping with a watcher open ends the stream (and stops at once).
        w2 = Watch(d2, A, "sub")
        t.eq(w2.status, 200, "a watcher on the fallback daemon")
        t0 = time.monotonic()
        d2.stop()
        t.ok(w2.ended() and time.monotonic() - t0 < 10, "stopping the daemon ends an open watch stream")
        w2.close()
        watcher.close()
        t.ok(sanitizer_clean(d.logtext()) and sanitizer_clean(d2.logtext()), "no sanitizer report in the daemons' logs")
        t.ok(not spec.errors, f"all {spec.checked} responses validate against api/openapi.yaml", "\n".join(spec.errors[:20]))
    finally:
        if outside:
            outside.cleanup()
        if d2:
            d2.cleanup()
        d.cleanup()
    t.done()


main()
