# SPDX-License-Identifier: MIT
"""The files API's attack corpus (used by test_files.py, against the openat2 resolver and the fallback
walk): every case must be refused (4xx) and nothing outside the workspace may be read or written. Canaries
outside the workspace are world-readable and -writable on purpose, so that only the resolver, not file
permissions, keeps them out; reads of files the agent could read itself (hard links it made) are as the
agent and checked against its permissions instead."""
import os
import shutil
import socket
import stat
import tempfile
import threading

CANARY = b"PC-CANARY-" + os.urandom(8).hex().encode()


class Outside:
    """Files outside every workspace: a canary file (0644), a writable directory (0777) and a 0600 one."""

    def __init__(self, d):
        self.dir = tempfile.mkdtemp(prefix="pc-files-outside-")
        os.chmod(self.dir, 0o755)
        self.canary = os.path.join(self.dir, "canary")
        with open(self.canary, "wb") as f:
            f.write(CANARY + b"\n")
        os.chmod(self.canary, 0o644)
        self.private = os.path.join(self.dir, "private")
        with open(self.private, "wb") as f:
            f.write(CANARY + b"-private\n")
        os.chmod(self.private, 0o600)
        self.victim = os.path.join(self.dir, "victim")
        os.mkdir(self.victim)
        os.chmod(self.victim, 0o777)
        self.state_db = next((os.path.join(d.state, x) for x in sorted(os.listdir(d.state)) if x.endswith(".db")),
                             d.state)

    def snapshot(self):
        out = {}
        for root, dirs, files in os.walk(self.dir):
            for n in files:
                p = os.path.join(root, n)
                with open(p, "rb") as f:
                    out[p] = f.read()
            for n in dirs:
                out[os.path.join(root, n)] = "dir"
        return out

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def raw(d, method, target, body=b"", headers=b""):
    """One request with the target's bytes exactly as given: (status, body)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(d.socket)
    if isinstance(target, str):
        target = target.encode()
    extra = b"Content-Type: application/json\r\n" if method == "POST" else b""
    s.sendall(method.encode() + b" " + target + b" HTTP/1.1\r\nHost: pc\r\nConnection: close\r\n" + extra + headers +
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    data = b""
    while True:
        try:
            chunk = s.recv(1 << 16)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    s.close()
    if not data.startswith(b"HTTP/"):
        return None, data
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), rest


def leaked(body):
    return CANARY in body or b"root:" in body or b"SQLite format" in body


def setup(ws, uid, o, d):
    def link(name, target):
        p = os.path.join(ws, name)
        if os.path.lexists(p):
            os.unlink(p)
        os.symlink(target, p)
        os.lchown(p, uid, uid)

    link("link-shadow", "/etc/shadow")
    link("link-canary", o.canary)
    link("link-state", o.state_db)
    link("link-statedir", os.path.dirname(o.state_db))
    link("link-outdir", o.dir)
    link("link-victim", o.victim)
    link("link-rel", "../../../../../../../../etc/shadow")
    link("link-proc", "/proc/self/root/etc/shadow")
    link("link-procfd", "/proc/self/fd/0")
    p = os.path.join(ws, "fifo")
    if not os.path.exists(p):
        os.mkfifo(p, 0o666)
    p = os.path.join(ws, "zero-dev")
    if not os.path.exists(p):
        os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    p = os.path.join(ws, "sock")
    if not os.path.exists(p):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(p)
        s.close()
    hl = {}
    for name, target in (("hard-private", o.private), ("hard-shadow", "/etc/shadow")):
        p = os.path.join(ws, name)
        if not os.path.exists(p):
            try:
                os.link(target, p)
                hl[name] = True
            except OSError:  # another filesystem: no hard link possible, so no case either
                hl[name] = False
        else:
            hl[name] = True
    mnt = os.path.join(ws, "mnt")
    os.makedirs(mnt, exist_ok=True)
    os.chown(mnt, uid, uid)
    with open("/proc/self/mountinfo") as f:
        mounted = any(line.split()[4] == os.path.realpath(mnt) for line in f)
    if not mounted:
        os.system(f"mount --bind {o.dir} {mnt}")
    return hl


def run(t, d, c, box, ws, uid, o, label):
    hl = setup(ws, uid, o, d)
    before = o.snapshot()
    base = f"/v1/sandboxes/{box}/files/"
    gets = [
        "../../../../etc/shadow", "%2e%2e/%2e%2e/%2e%2e/etc/shadow", "%2E%2E/%2E%2E/etc/passwd",
        "..%2fetc%2fshadow", "%2e%2e%2f%2e%2e%2fetc%2fshadow", "%252e%252e/%252e%252e/etc/shadow",
        "%252e%252e%252fetc%252fshadow", "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/shadow", "%c0%ae%c0%ae%c0%afetc%c0%afshadow",
        "%e0%80%ae%e0%80%ae/etc/shadow", "..%5c..%5cetc%5cshadow", "..\\..\\etc\\shadow", "/etc/shadow",
        "%2fetc%2fshadow", "./link-shadow", "many/../link-shadow", "hello.txt%00.png", "hello%0a.txt",
        "x%0d%0aSet-Cookie:%20a=b", "a" * 300, "/".join(["d" * 200] * 6), "link-shadow", "link-canary",
        "link-state", "link-statedir/" + os.path.basename(o.state_db), "link-outdir/canary", "link-rel",
        "link-proc", "link-procfd", "fifo", "zero-dev", "sock", "mnt/canary", "mnt", "%ff%fe/x",
        "link-outdir", "link-statedir", ".%2e/.%2e/etc/shadow", "%2e./etc/shadow",
    ]
    if hl.get("hard-private"):
        gets.append("hard-private")
    if hl.get("hard-shadow"):
        gets.append("hard-shadow")
    n = 0
    for g in gets:
        status, body = raw(d, "GET", base + g)
        n += 1
        t.ok(status is not None and 400 <= status < 500 and not leaked(body),
             f"{label}: GET {g[:60]!r} is refused ({status}) and leaks nothing", body[:200])
    writes = [
        ("PUT", "../escape", b"x"), ("PUT", "%2e%2e/escape", b"x"), ("PUT", "link-victim/new", b"x"),
        ("PUT", "link-outdir/canary", b"x"), ("PUT", "link-canary", b"x"), ("PUT", "mnt/victim/new", b"x"),
        ("PUT", "link-victim/deep/new?parents=1", b"x"), ("PUT", "/tmp/abs", b"x"), ("PUT", "fifo", b"x"),
        ("PUT", "zero-dev", b"x"),
        ("DELETE", "link-outdir/canary", b""), ("DELETE", "mnt/canary", b""), ("DELETE", "../../canary", b""),
        ("POST", "link-outdir/canary:move", b'{"to": "stolen"}'), ("POST", "hello.txt:move", b'{"to": "link-victim/x"}'),
        ("POST", "hello.txt:move", b'{"to": "../x"}'), ("POST", "hello.txt:move", b'{"to": "/tmp/x"}'),
    ]
    if hl.get("hard-private"):
        writes.append(("PUT", "hard-private", b"overwritten"))
    for method, p, body in writes:
        status, resp = raw(d, method, base + p, body)
        n += 1
        t.ok(status is not None and 400 <= status < 500 and not leaked(resp),
             f"{label}: {method} {p!r} is refused ({status})", resp[:200])
    t.eq(o.snapshot(), before, f"{label}: nothing outside the workspace changed")
    t.ok(n >= 40, f"{label}: the corpus has {n} cases (at least 40)")

    # Check-then-open races: a file swapped for a symlink (and back) while requests run.
    stop = threading.Event()
    race = os.path.join(ws, "race")

    def swapper():
        i = 0
        while not stop.is_set():
            tmp = os.path.join(ws, f".race-{i % 2}")
            if i % 2:
                if os.path.lexists(tmp):
                    os.unlink(tmp)
                os.symlink(o.canary, tmp)
            else:
                with open(tmp, "wb") as f:
                    f.write(b"inside\n")
                os.chown(tmp, uid, uid)
            os.rename(tmp, race)
            i += 1

    th = threading.Thread(target=swapper)
    th.start()
    statuses, bad = {}, 0
    try:
        for _ in range(300):
            status, body = raw(d, "GET", base + "race")
            statuses[status] = statuses.get(status, 0) + 1
            if leaked(body) or (status == 200 and body != b"inside\n"):
                bad += 1
    finally:
        stop.set()
        th.join()
    t.ok(bad == 0 and statuses.get(200, 0) > 0,
         f"{label}: a file swapped with a symlink 300 times while read: never outside content ({statuses})")

    # The same for a directory swapped with a symlink to a writable directory outside, while uploading.
    stop.clear()
    rdir = os.path.join(ws, "racedir")

    def dir_swapper():
        i = 0
        while not stop.is_set():
            tmp = os.path.join(ws, f".racedir-{i % 2}")
            if os.path.lexists(tmp):
                if os.path.islink(tmp):
                    os.unlink(tmp)
                else:
                    shutil.rmtree(tmp)
            if i % 2:
                os.symlink(o.victim, tmp)
            else:
                os.mkdir(tmp)
                os.chown(tmp, uid, uid)
            while True:  # the daemon may be creating a temporary file in it: remove until it is gone
                if os.path.islink(rdir):
                    os.unlink(rdir)
                elif os.path.isdir(rdir):
                    shutil.rmtree(rdir, ignore_errors=True)
                try:
                    os.rename(tmp, rdir)
                    break
                except OSError:
                    continue
            i += 1

    th = threading.Thread(target=dir_swapper)
    th.start()
    try:
        for i in range(200):
            raw(d, "PUT", base + f"racedir/up{i}", b"data")
    finally:
        stop.set()
        th.join()
    t.eq(os.listdir(o.victim), [], f"{label}: uploads into a directory swapped with a symlink never land outside")
    t.eq(o.snapshot(), before, f"{label}: nothing outside the workspace changed after the races")
    os.system(f"umount -l {os.path.join(ws, 'mnt')}")
