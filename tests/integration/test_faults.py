#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Nothing acknowledged may be lost, nothing lost may be acknowledged: a full state filesystem (507 and the
host left as it was), kill -9 during creates (unfinished creates undone at start), SIGTERM during a create
(the 201 is still sent) and a lost state.db while this daemon's sandboxes run (refused; --reset-state).
A corrupt state.db is test_store_corruption.py."""
import ctypes
import errno
import os
import secrets
import select
import shutil
import signal
import struct
import threading
import time

from pclib import Daemon, Foreground, Spec, Tap
from pclib import run_cmd, sanitizer_clean

t = Tap()
if os.geteuid() != 0:
    t.skip("fault tests", "need root (sandboxes, tmpfs mounts)")
    t.done()

spec = Spec()
P = "ft" + secrets.token_hex(3)
UID_BASE = "uid_range_base = 1879048192\n"  # a range of our own, away from other tests' daemons
libc = ctypes.CDLL(None, use_errno=True)
IN_CREATE = 0x100


def name(s):
    return f"{P}-{s}"


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Watch:
    """inotify on a directory: wait for an entry to be created (the event, not polling)."""

    def __init__(self, path):
        self.fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, path.encode(), IN_CREATE) < 0:
            raise OSError(ctypes.get_errno(), f"inotify on {path}")

    def wait(self, entry, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return False
            buf = os.read(self.fd, 65536)
            off = 0
            while off < len(buf):
                _, _, _, n = struct.unpack_from("iIII", buf, off)
                got = buf[off + 16:off + 16 + n].rstrip(b"\0").decode()
                off += 16 + n
                if got == entry:
                    return True

    def close(self):
        os.close(self.fd)


def post_in_thread(d, n, out):
    """POST /v1/sandboxes in a thread; out gets the Response or the exception (a dropped connection)."""
    def run():
        try:
            out.append(d.request("POST", "/v1/sandboxes", dict(name=n), via="unix", check=False))
        except Exception as e:  # noqa: BLE001 - the daemon may die under the request: that is the test
            out.append(e)
    th = threading.Thread(target=run)
    th.start()
    return th


def cgroup_parent_dir(d, s):
    """The directory that holds this daemon's sandbox groups, from a sandbox's cgroup_path."""
    return os.path.dirname(s["cgroup_path"])


# ---- 11: a full state filesystem ----

def fill(path):
    """Fills the filesystem of `path` with one file; returns its path (remove it to free the space)."""
    f = os.path.join(path, "filler")
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        chunk = b"\xa5" * (1 << 20)
        while chunk:
            try:
                os.write(fd, chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                chunk = chunk[:len(chunk) // 2]
    finally:
        os.close(fd)
    return f


def test_full_state_fs():
    tmp = __import__("tempfile").mkdtemp(prefix="pc-it-")
    state = os.path.join(tmp, "state")
    os.makedirs(state)
    # A tmpfs of its own: filling it touches nothing else on this host.
    if run_cmd(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "pc-full", state]).returncode != 0:
        t.skip("full state filesystem", "cannot mount a tmpfs")
        return
    d = Daemon(spec=spec, config=UID_BASE, tmp=tmp)
    try:
        d.start()
        A, B, C = name("fa"), name("fb"), name("fc")
        r = d.create_sandbox(A)
        t.eq(r.status, 201, "a sandbox is created while there is space")
        pid = r.json["init_pid"]
        parent = cgroup_parent_dir(d, r.json)

        filler = fill(d.state)
        r = d.request("POST", f"/v1/sandboxes/{A}/stop", via="unix")
        t.eq((r.status, (r.json or {}).get("error", {}).get("code")), (507, "store_full"),
             "stop with the state filesystem full: 507 store_full")
        t.ok(alive(pid) and d.request("GET", f"/v1/sandboxes/{A}", via="unix").json["state"] == "running",
             "... and the sandbox runs on, untouched")
        r = d.request("POST", "/v1/sandboxes", dict(name=B), via="unix")
        t.eq(r.status, 507, "create with the state filesystem full: 507")
        t.ok(d.request("GET", f"/v1/sandboxes/{B}", via="unix").status == 404 and not os.path.exists(
            os.path.join(parent, B)), "... and nothing of it exists (no row, no cgroup)")
        r = d.request("POST", "/v1/tokens", dict(role="relay"), via="unix")
        t.eq(r.status, 507, "a token with the state filesystem full: 507")
        os.unlink(filler)

        t.eq(d.request("POST", f"/v1/sandboxes/{A}/stop", via="unix").status, 200, "with space again, stop works")
        filler = fill(d.state)
        r = d.request("POST", f"/v1/sandboxes/{A}/start", via="unix")
        t.eq(r.status, 507, "start with the state filesystem full: 507")
        s = d.request("GET", f"/v1/sandboxes/{A}", via="unix").json
        t.ok(s["state"] == "stopped" and not os.path.exists(os.path.join(parent, A)),
             "... and the sandbox is stopped again, no cgroup left", s)
        os.unlink(filler)

        # The last write of a create fails (the space goes while isolate/ builds it): it is undone.
        w = Watch(parent)
        out = []
        filler = None
        th = post_in_thread(d, C, out)
        if w.wait(C):
            filler = fill(d.state)
        th.join(60)
        w.close()
        r = out[0] if out else None
        t.ok(getattr(r, "status", None) == 507,
             "a create whose final state write fails: 507", r)
        t.ok(d.request("GET", f"/v1/sandboxes/{C}", via="unix").status == 404 and not os.path.exists(
            os.path.join(parent, C)), "... and the sandbox it made is gone (no cgroup, no visible row)")
        if filler:
            os.unlink(filler)
        r = d.create_sandbox(C)
        t.eq(r.status, 201, "with space again, the same name is created (the unfinished row was undone)")
        t.eq(d.request("POST", f"/v1/sandboxes/{A}/start", via="unix").status, 200, "... and start works again")
        events = d.request("GET", f"/v1/events?sandbox={C}", via="unix").json["events"]
        t.eq([e["type"] for e in events], ["sandbox.created"],
             "events: one sandbox.created for the create that succeeded, none for the one undone")
    finally:
        d.cleanup()  # deletes its sandboxes, stops it
        run_cmd(["umount", "-l", state])
        shutil.rmtree(tmp, ignore_errors=True)


# ---- 16: kill -9 during creates ----

def test_kill9_during_create(rounds=24):
    d = Daemon(spec=spec, config=UID_BASE)
    bad = []
    stats = {"acked": 0, "there": 0, "gone": 0}
    try:
        d.start()
        first = d.create_sandbox(name("k-first")).json
        parent = cgroup_parent_dir(d, first)
        for i in range(rounds):
            n = name(f"k{i}")
            out = []
            w = Watch(parent)
            th = post_in_thread(d, n, out)
            # The fault at varying points: before the cgroup exists, as it appears, and later while the
            # sandbox starts (i % 4 steps of 40 ms after the cgroup appeared).
            if i % 5 != 0:
                w.wait(n, timeout=10)
                time.sleep((i % 4) * 0.04)
            w.close()
            d.kill9()
            th.join(60)
            resp = out[0] if out else None
            acked = getattr(resp, "status", None) == 201
            d.start()
            s = d.request("GET", f"/v1/sandboxes/{n}", via="unix", check=False)
            if acked:
                stats["acked"] += 1
                if s.status != 200 or s.json["state"] != "running":
                    bad.append(f"{n}: acknowledged but {s}")
            elif s.status == 200:
                stats["there"] += 1
                if s.json["state"] != "running":
                    bad.append(f"{n}: unacknowledged and half there: {s}")
            else:
                stats["gone"] += 1
                if s.status != 404 or os.path.exists(os.path.join(parent, n)):
                    bad.append(f"{n}: unacknowledged, gone from the API but {s.status}, cgroup "
                               f"{os.path.exists(os.path.join(parent, n))}; log: " +
                               " | ".join(ln for ln in d.logtext().splitlines() if n in ln))
            r = d.create_sandbox(n)
            if not (r.status == 201 or (r.status == 409 and s.status == 200)):
                bad.append(f"{n}: retry got {r.status} although the sandbox was {'there' if s.status == 200 else 'gone'}")
            d.sandboxes.append(n)
        t.ok(not bad, f"kill -9 at {rounds} points during creates: acknowledged creates run, the others are "
                      f"whole or gone, a retry succeeds ({stats})", "\n".join(bad))
        t.ok(stats["gone"] > 0, "... some creates were really interrupted", stats)
    finally:
        d.cleanup()


# ---- 15: SIGTERM during a create ----

def test_sigterm_during_create():
    d = Daemon(spec=spec, config=UID_BASE)
    fg = Foreground(d)
    try:
        if not t.ok(fg.ready(), "the daemon starts in the foreground", fg.stderr()):
            return
        first = d.create_sandbox(name("t-first")).json
        parent = cgroup_parent_dir(d, first)
        n = name("t-during")
        w = Watch(parent)
        out = []
        th = post_in_thread(d, n, out)
        seen = w.wait(n)
        fg.p.send_signal(signal.SIGTERM)
        th.join(60)
        w.close()
        t.ok(seen, "the create was under way (its cgroup appeared) when SIGTERM came")
        r = out[0] if out else None
        t.eq(getattr(r, "status", r), 201, "the create in flight still gets its 201")
        t.eq(fg.wait(), 0, "the daemon exits 0 after answering")
        t.ok(sanitizer_clean(fg.stderr()), "no sanitizer report", fg.stderr())
        d.sandboxes.append(n)
        d.start()
        s = d.request("GET", f"/v1/sandboxes/{n}", via="unix")
        t.eq((s.status, s.json.get("state")), (200, "running"), "after a restart the sandbox is there, running")
    finally:
        fg.close()
        d.cleanup()


# ---- 14: the state database lost while sandboxes run ----

def test_lost_state():
    d = Daemon(spec=spec, config=UID_BASE)
    try:
        d.start()
        n = name("l")
        s = d.create_sandbox(n).json
        pid = s["init_pid"]
        d.stop()
        aside = os.path.join(d.tmp, "aside")
        os.makedirs(aside)
        for f in os.listdir(d.state):
            if f.startswith("state.db"):
                os.rename(os.path.join(d.state, f), os.path.join(aside, f))
        for what, prepare in (("missing", lambda: None),
                              ("empty", lambda: open(os.path.join(d.state, "state.db"), "w").close())):
            prepare()
            p = run_cmd(d.argv("--daemonize"), text=True, timeout=60)
            log = d.logtext()
            t.ok(p.returncode != 0 and "--reset-state" in log and n in log,
                 f"state.db {what} while a sandbox of this daemon runs: refused, naming it and how to recover",
                 log[-2000:])
            t.ok(alive(pid), "... and the sandbox runs on")
            for f in os.listdir(d.state):
                if f.startswith("state.db"):
                    os.unlink(os.path.join(d.state, f))
        # Recovery 1: put the database back.
        for f in os.listdir(aside):
            shutil.copy(os.path.join(aside, f), os.path.join(d.state, f))
        d.start()
        s2 = d.request("GET", f"/v1/sandboxes/{n}", via="unix").json
        t.ok(s2["state"] == "running" and s2["init_pid"] == pid, "with the database put back it starts and re-adopts")
        d.stop()
        # Recovery 2: --reset-state stops them and starts afresh.
        for f in os.listdir(d.state):
            if f.startswith("state.db"):
                os.unlink(os.path.join(d.state, f))
        p = run_cmd(d.argv("--daemonize", "--reset-state"), text=True, timeout=60)
        t.ok(p.returncode == 0, "--reset-state starts", d.logtext()[-2000:])
        with open(d.pidfile) as f:
            d.pid = int(f.read())
        t.ok(not alive(pid), "... after stopping the sandbox it could not have reached")
        t.eq(d.request("GET", "/v1/sandboxes", via="unix").json["sandboxes"], [], "... with an empty state")
        d.stop()
        d.start()
        t.ok(d.pid is not None, "a later start (same database) is not refused")
    finally:
        d.cleanup()


t.run_all((test_full_state_fs, test_sigterm_during_create, test_lost_state, test_kill9_during_create), spec)
