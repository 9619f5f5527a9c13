#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A corrupt state.db: every column of a sandbox row damaged in several ways (NULL, another type, out of
range, a name unsafe in a path) makes the daemon refuse to start with recovery steps, or start and answer;
it never crashes (the ASan build runs this too). A damaged page is refused with steps that, run as
printed, give back a database it starts on."""
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess

from pclib import Daemon, Foreground, Spec, Tap
from pclib import run_cmd, sanitizer_clean

t = Tap()
if os.geteuid() != 0:
    t.skip("state corruption tests", "need root (the daemon creates sandboxes)")
    t.done()

spec = Spec()
P = "sc" + secrets.token_hex(3)
UID_BASE = "uid_range_base = 1946157056\n"  # a range of our own, away from other tests' daemons


def name(s):
    return f"{P}-{s}"


CORRUPTIONS = [("NULL", None), ("text", "../x"), ("blob", b"\x00\xff"), ("huge", 2**63 - 1), ("negative", -5),
               ("real", 1e300)]
COLUMNS = ["name", "policy", "memory_max", "swap_max", "pids_max", "cpu_quota_us", "cpu_period_us", "network",
           "rootfs", "uid_base", "net_index", "state", "init_pid", "init_starttime", "created_at", "started_at",
           "stopped_at", "instance", "disk_max", "inodes_max", "disk_mode"]


def corrupt(db_path, column, value, state):
    """Writes `value` into `column` of the one sandbox row, bypassing the schema's constraints the way a damaged or
    hand-edited file would (the schema text is swapped for one without constraints and back)."""
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        orig = db.execute("SELECT sql FROM sqlite_schema WHERE name = 'sandboxes'").fetchone()[0]
        loose = "CREATE TABLE sandboxes (" + ", ".join(
            c + {"name": " PRIMARY KEY", "uid_base": " UNIQUE", "net_index": " UNIQUE"}.get(c, "") for c in COLUMNS) + ")"
        ver = db.execute("PRAGMA schema_version").fetchone()[0]
        db.execute("PRAGMA writable_schema = ON")
        db.execute("UPDATE sqlite_schema SET sql = ? WHERE name = 'sandboxes'", (loose,))
        db.execute(f"PRAGMA schema_version = {ver + 1}")
        db.close()
        db = sqlite3.connect(db_path, isolation_level=None)
        db.execute("UPDATE sandboxes SET state = ?", (state,))
        db.execute(f"UPDATE sandboxes SET {column} = ?", (value,))
        ver = db.execute("PRAGMA schema_version").fetchone()[0]
        db.execute("PRAGMA writable_schema = ON")
        db.execute("UPDATE sqlite_schema SET sql = ? WHERE name = 'sandboxes'", (orig,))
        db.execute(f"PRAGMA schema_version = {ver + 1}")
    finally:
        db.close()


def test_corrupt_rows():
    d = Daemon(spec=spec, config=UID_BASE)
    problems, refused, started = [], 0, 0
    try:
        d.start()
        n = name("c")
        d.create_sandbox(n)
        d.request("POST", f"/v1/sandboxes/{n}/stop", via="unix")
        d.stop()  # a clean stop checkpoints: state.db alone holds everything
        pristine = os.path.join(d.tmp, "pristine.db")
        shutil.copy(os.path.join(d.state, "state.db"), pristine)
        cases = [(c, k, v, "stopped") for c in COLUMNS for k, v in CORRUPTIONS]
        cases += [(c, k, v, "running") for c in ("init_pid", "init_starttime") for k, v in CORRUPTIONS]
        for column, kind, value, state in cases:
            db = os.path.join(d.state, "state.db")
            for f in os.listdir(d.state):
                if f.startswith("state.db"):
                    os.unlink(os.path.join(d.state, f))
            shutil.copy(pristine, db)
            corrupt(db, column, value, state)
            fg = Foreground(d)
            try:
                ok = fg.ready()
                if ok:
                    started += 1
                    r = d.request("GET", "/v1/sandboxes", via="unix", check=False)
                    if r.status != 200:
                        problems.append(f"{column}={kind} ({state}): started, but list answers {r.status}")
                    fg.p.send_signal(signal.SIGTERM)
                code = fg.wait()
                err = fg.stderr()
                if not sanitizer_clean(err):
                    problems.append(f"{column}={kind} ({state}): sanitizer report:\n{err[-1500:]}")
                elif not ok and (code != 1 or "To recover" not in err):
                    problems.append(f"{column}={kind} ({state}): exit {code} without recovery steps: {err[-500:]}")
                elif not ok:
                    refused += 1
                elif code != 0:
                    problems.append(f"{column}={kind} ({state}): exit {code} after a clean stop")
            finally:
                fg.close()
        t.ok(not problems, f"{len(cases)} corruptions of a sandbox row: every start refused with recovery steps "
                           f"({refused}) or started and answered ({started}); no crash", "\n".join(problems))
        t.ok(refused >= len(COLUMNS), "... a damaged value in any column is refused", (refused, started))

        # A corrupt row's recovery steps work: delete the row as the message says.
        for f in os.listdir(d.state):
            if f.startswith("state.db"):
                os.unlink(os.path.join(d.state, f))
        shutil.copy(pristine, os.path.join(d.state, "state.db"))
        corrupt(os.path.join(d.state, "state.db"), "uid_base", 0, "stopped")
        fg = Foreground(d)
        fg.ready()
        fg.wait()
        err = fg.stderr()
        fg.close()
        steps = [ln.strip() for ln in err.splitlines() if ln.startswith("  sqlite3 ") and "DELETE" in ln]
        t.ok("uid_base" in err and steps, "uid_base 0 (host root!) is refused, naming the column", err[-1500:])
        for s in steps:
            run_cmd(["sh", "-c", s], text=True)
        d.start()
        t.eq(d.request("GET", "/v1/sandboxes", via="unix").json["sandboxes"], [],
             "... and after the DELETE the message gives, the daemon starts")
        d.stop()
    finally:
        d.cleanup()


def test_damaged_file():
    """A damaged page: refused with steps that, run as written, give back a database the daemon starts on with
    everything that could be read."""
    d = Daemon(spec=spec, config=UID_BASE)
    try:
        d.start()
        n = name("d")
        d.create_sandbox(n)
        d.request("POST", f"/v1/sandboxes/{n}/stop", via="unix")
        tok = d.request("POST", "/v1/tokens", dict(role="relay", label="keep"), via="unix").json
        d.stop()
        db = os.path.join(d.state, "state.db")
        con = sqlite3.connect(db)
        page = con.execute("PRAGMA page_size").fetchone()[0]
        root = con.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'sqlite_autoindex_sandboxes_1'").fetchone()[0]
        con.close()
        with open(db, "r+b") as f:  # the index of the sandboxes' names: garbage over its page
            f.seek((root - 1) * page + 8)
            f.write(b"\xa5" * (page - 8))
        fg = Foreground(d)
        started = fg.ready()
        code = fg.wait()
        err = fg.stderr()
        fg.close()
        t.ok(not started and code == 1 and "damaged" in err and sanitizer_clean(err),
             "a damaged page in state.db: the start is refused, saying so", err[-2000:])
        steps = [ln.strip() for ln in err.splitlines() if ln.startswith("  ")]
        t.ok(len(steps) == 3, "... with the commands to recover", err[-2000:])
        for s in steps:
            p = subprocess.run(["sh", "-c", s], cwd=d.state, capture_output=True, text=True, timeout=60)
            t.ok(p.returncode == 0, f"recovery step runs: {s}", p.stderr)
        d.start()
        s = d.request("GET", f"/v1/sandboxes/{n}", via="unix")
        toks = [x["id"] for x in d.request("GET", "/v1/tokens", via="unix").json["tokens"]]
        t.ok(s.status == 200 and tok["id"] in toks, "... after which it starts with the sandbox and the token kept",
             (s, toks))
    finally:
        d.cleanup()


t.run_all((test_corrupt_rows, test_damaged_file), spec)
