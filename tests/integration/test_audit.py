#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The hash-chained audit ledger and devices: every row chains onto the one before it, also when written
from many threads at once; GET /v1/audit/verify and 'pocketcoder audit verify' catch a row edited, inserted
or deleted with the sqlite3 CLI (after dropping the append-only triggers, as an attacker would) and rows cut
off the end; the devices API refuses bad keys, duplicates and unknown ids and changes nothing then; device
keys from 'devices keygen' sign the documented approval message."""
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading

from pclib import Daemon, Spec, Tap, run_cmd

t = Tap()
if os.geteuid() != 0:
    t.skip("audit ledger tests", "need root (the daemon runs as root)")
    t.done()

spec = Spec()
d = Daemon(spec=spec, config="uid_range_base = 1124073472\n")
GENESIS = "0" * 64


def field(v):
    if v is None:
        return b"-\n"
    b = v.encode()
    return b"+%d:" % len(b) + b + b"\n"


def row_hash(r):
    """docs/api.md: the canonical encoding, recomputed independently of the daemon."""
    data = b"pocketcoder-audit-v1\n%d\n%d\n" % (r["seq"], r["at"])
    for k in ("actor", "action", "subject", "detail", "prev_hash"):
        data += field(r[k])
    return hashlib.sha256(data).hexdigest()


def all_rows():
    rows, since = [], 0
    while True:
        r = d.request("GET", f"/v1/audit?since={since}&limit=1000", via="unix")
        page = r.json["audit"]
        if not page:
            return rows
        rows += page
        since = r.json["next"]


def verify():
    return d.request("GET", "/v1/audit/verify", via="unix").json


def sql(script):
    """The sqlite3 CLI on the stopped daemon's database."""
    p = subprocess.run(["sqlite3", os.path.join(d.state, "state.db")], input=script, text=True,
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(p.stderr)
    return p.stdout


def tampered(script, check):
    """Stops the daemon, applies SCRIPT to a copy-backed database, starts it, runs CHECK, then puts the
    untouched database back."""
    d.stop()
    backup = os.path.join(d.tmp, "backup")
    shutil.rmtree(backup, ignore_errors=True)
    os.makedirs(backup)
    for f in os.listdir(d.state):
        if f.startswith("state.db"):
            shutil.copy2(os.path.join(d.state, f), backup)
    try:
        sql(script)
        d.start()
        check()
    finally:
        d.stop()
        for f in os.listdir(d.state):
            if f.startswith("state.db"):
                os.unlink(os.path.join(d.state, f))
        for f in os.listdir(backup):
            shutil.copy2(os.path.join(backup, f), d.state)
        d.start()


def pubkey(seed=None):
    """A fresh key from 'devices keygen' (its public half)."""
    path = os.path.join(d.tmp, "key-" + os.urandom(4).hex())
    p = d.cli("devices", "keygen", path)
    assert p.returncode == 0, p.stderr
    return path, p.stdout.strip()


try:
    d.start()
    t.eq(verify()["ok"], True, "a new ledger verifies")

    # Many writers at once: tokens and devices created and removed from 8 threads.
    errors = []

    def writer(i):
        for k in range(10):
            r = d.request("POST", "/v1/tokens", {"role": "relay", "label": f"w{i}-{k}"}, via="unix")
            if r.status != 201 or d.request("DELETE", f"/v1/tokens/{r.json['id']}", via="unix").status != 204:
                errors.append(("token", r.status))
            key = base64.b64encode(os.urandom(32)).decode()
            r = d.request("POST", "/v1/devices", {"name": f"phone {i}/{k}", "public_key": key}, via="unix")
            if r.status != 201 or d.request("DELETE", f"/v1/devices/{r.json['id']}", via="unix").status != 204:
                errors.append(("device", r.status))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t.eq(errors, [], "320 audited changes from 8 threads succeeded")
    rows = all_rows()
    actions = [r["action"] for r in rows]
    t.ok(all(actions.count(a) == 80 for a in ("token.create", "token.delete", "device.add", "device.remove")),
         "each change is one row", {a: actions.count(a) for a in set(actions)})
    chained = all(r["prev_hash"] == (rows[i - 1]["hash"] if i else GENESIS) for i, r in enumerate(rows))
    t.ok(chained, "every row's prev_hash is the hash of the row before it")
    t.ok(all(row_hash(r) == r["hash"] for r in rows), "every hash is the documented encoding's SHA-256")
    v = verify()
    t.eq((v["ok"], v["rows"], v["first_bad"]), (True, len(rows), None), "the ledger verifies after concurrent writes")
    p = d.cli("audit", "verify")
    t.ok(p.returncode == 0 and f"{len(rows)} rows" in p.stdout, "pocketcoder audit verify exits 0", p.stdout + p.stderr)
    p = d.cli("audit", "list", "--since", str(rows[-3]["seq"]))
    t.ok(p.returncode == 0 and p.stdout.count("device.remove") + p.stdout.count("token.delete") +
         p.stdout.count("device.add") + p.stdout.count("token.create") == 2, "audit list --since pages", p.stdout)
    for q in ("since=-1", "since=x", "limit=0", "limit=1001"):
        r = d.request("GET", f"/v1/audit?{q}", via="unix")
        t.eq((r.status, r.json["error"]["code"]), (400, "invalid_query"), f"GET /v1/audit?{q} is refused")
    r = d.request("GET", "/v1/audit?limit=5", via="unix")
    t.ok(len(r.json["audit"]) == 5 and r.json["next"] == r.json["audit"][-1]["seq"], "limit bounds a page")

    # The database refuses edits while its triggers are in place.
    d.stop()
    for stmt, why in (("UPDATE audit SET detail = 'x' WHERE seq = 3;", "append-only"),
                      ("DELETE FROM audit WHERE seq = 3;", "append-only"),
                      ("INSERT INTO audit (at, actor, action) VALUES (1, 'x', 'y');", "pc_store_audit")):
        p = subprocess.run(["sqlite3", os.path.join(d.state, "state.db"), stmt], capture_output=True, text=True)
        t.ok(p.returncode != 0 and why in p.stderr, f"the triggers refuse: {stmt}", p.stderr)
    d.start()

    mid = rows[len(rows) // 2]

    def check_edit():
        v = verify()
        t.eq((v["ok"], v["first_bad"]), (False, mid["seq"]), "an edited row fails verification, named")
        t.ok("edited" in v["reason"], "the reason says so", v)
        p = d.cli("audit", "verify")
        t.ok(p.returncode == 1 and f"row {mid['seq']}" in p.stderr, "pocketcoder audit verify exits 1", p.stderr)
    tampered(f"DROP TRIGGER audit_no_update; UPDATE audit SET detail = 'admin' || coalesce(detail, '') WHERE seq = {mid['seq']};", check_edit)
    t.eq(verify()["ok"], True, "the untouched database verifies again")

    def check_delete():
        v = verify()
        t.eq((v["ok"], v["first_bad"]), (False, rows[len(rows) // 2 + 1]["seq"]),
             "a row deleted in the middle fails verification at the row after it")
    tampered(f"DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = {mid['seq']};", check_delete)

    # Inserted: a row whose hash is computed correctly by the attacker, in the middle (with a gap made)
    # and at the end.
    forged = dict(mid, seq=rows[-1]["seq"] + 1, prev_hash=rows[-1]["hash"], action="token.delete", detail=None)
    forged["hash"] = row_hash(forged)

    def check_insert_end():
        v = verify()
        t.eq((v["ok"], v["first_bad"]), (False, forged["seq"]), "a correctly hashed row appended by hand fails")
        t.ok("recorded head" in v["reason"], "as one after the recorded head", v)
    tampered(f"INSERT INTO audit (seq, at, actor, action, subject, detail, prev_hash, hash) VALUES "
             f"({forged['seq']}, {forged['at']}, '{forged['actor']}', 'token.delete', '{forged['subject']}', "
             f"NULL, '{forged['prev_hash']}', '{forged['hash']}');", check_insert_end)
    ins = dict(rows[5], action="policy.reload", subject=None, detail=None)
    ins["hash"] = row_hash(ins)

    def check_insert_mid():
        v = verify()
        t.eq((v["ok"], v["first_bad"]), (False, rows[6]["seq"]), "a row put in place of another fails at the next")
    tampered(f"DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = {ins['seq']};"
             f"INSERT INTO audit (seq, at, actor, action, subject, detail, prev_hash, hash) VALUES "
             f"({ins['seq']}, {ins['at']}, '{ins['actor']}', 'policy.reload', NULL, NULL, '{ins['prev_hash']}', "
             f"'{ins['hash']}');", check_insert_mid)

    def check_truncate():
        v = verify()
        t.eq((v["ok"], v["first_bad"]), (False, rows[-3]["seq"]), "rows cut off the end fail verification")
        t.ok("deleted from its end" in v["reason"], "the reason says so", v)
        p = d.cli("audit", "verify")
        t.eq(p.returncode, 1, "pocketcoder audit verify exits 1 on a truncated ledger")
    tampered(f"DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq >= {rows[-3]['seq']};", check_truncate)
    # The recorded head removed: the daemon does not start on the ledger (a new head would accept whatever
    # was done to it) and says how to accept it after looking.
    d.stop()
    shutil.copy2(os.path.join(d.state, "state.db"), os.path.join(d.tmp, "head.db"))
    sql("DELETE FROM settings WHERE key = 'audit_head';")
    try:
        d.start()
        t.ok(False, "the daemon refuses to start on a ledger without its head")
    except RuntimeError as e:
        t.ok("recorded head is missing" in str(e), "the daemon refuses to start on a ledger without its head",
             str(e)[-400:])
        accept = str(e).split('run: sqlite3 state.db "')[1].split('"')[0]
        sql(accept + ";")
        d.start()
        t.eq(verify()["ok"], True, "after the documented acceptance it starts and verifies")
        d.stop()
    shutil.copy2(os.path.join(d.tmp, "head.db"), os.path.join(d.state, "state.db"))
    d.start()
    v = verify()
    t.eq((v["ok"], v["rows"]), (True, len(rows)), "after all that the real ledger still verifies")

    # Devices: bad input is refused and changes nothing.
    before_devices = d.request("GET", "/v1/devices", via="unix").json["devices"]
    before_rows = len(all_rows())
    key_path, key = pubkey()
    good = base64.b64decode(key)
    bad = {
        "not base64": "@" * 44,
        "31 bytes": base64.b64encode(good[:31]).decode(),
        "33 bytes": base64.b64encode(good + b"x").decode(),
        "whitespace": key[:20] + " " + key[21:],
        "no padding": key.rstrip("="),
        "stray bits": key[:42] + chr(ord(key[42]) + 1) + "=",
        "number": 5,
    }
    for what, k in bad.items():
        r = d.request("POST", "/v1/devices", {"name": "phone", "public_key": k}, via="unix")
        t.eq((r.status, r.json["error"]["code"]), (400, "invalid_body"), f"a key that is {what} is refused")
    for what, body in {"empty name": {"name": "", "public_key": key},
                       "control character": {"name": "a\nb", "public_key": key},
                       "long name": {"name": "x" * 65, "public_key": key},
                       "extra field": {"name": "p", "public_key": key, "admin": True},
                       "no key": {"name": "p"}, "array": [key]}.items():
        r = d.request("POST", "/v1/devices", body, via="unix")
        t.eq((r.status, r.json["error"]["code"]), (400, "invalid_body"), f"a body with {what} is refused")
    r = d.request("POST", "/v1/devices", raw=b"{not json", via="unix", headers={"Content-Type": "application/json"})
    t.eq(r.status, 400, "a body that is not JSON is refused")
    t.eq(d.request("GET", "/v1/devices", via="unix").json["devices"], before_devices, "refusals added no device")
    t.eq(len(all_rows()), before_rows, "refusals wrote no audit row")

    p = d.cli("devices", "add", "phone one", key)
    t.eq(p.returncode, 0, "devices add registers a key")
    dev = p.stdout.strip()
    r = d.request("POST", "/v1/devices", {"name": "other", "public_key": key}, via="unix")
    t.eq((r.status, r.json["error"]["code"]), (409, "conflict"), "the same key twice is 409")
    lst = d.request("GET", "/v1/devices", via="unix").json["devices"]
    t.ok([x["id"] for x in lst] == [dev] and lst[0]["public_key"] == key and lst[0]["name"] == "phone one",
         "GET /v1/devices lists it", lst)
    last = all_rows()[-1]
    t.ok(last["action"] == "device.add" and last["subject"] == dev and key in last["detail"],
         "device.add is audited with the key", last)
    p = d.cli("devices", "keygen", key_path)
    t.ok(p.returncode != 0 and "exists" in p.stderr, "keygen never overwrites a key file", p.stderr)
    t.eq(os.stat(key_path).st_mode & 0o777, 0o600, "the key file is mode 0600")

    # The signature 'devices sign' makes is Ed25519 over the documented message, by the registered key.
    p = d.cli("devices", "sign", "--key", key_path, "--id", "req1", "--command", "rm -rf build",
              "--cwd", "/workspace", "--scope", "exact", "--minutes", "15", "--device", dev, "--json")
    t.eq(p.returncode, 0, "devices sign signs", )
    body = json.loads(p.stdout)
    t.ok(body["device"] == dev and body["scope"] == "exact" and body["minutes"] == 15, "it prints the approve body", body)
    msg = (b"pocketcoder-approval-v1\nreq1\n" + hashlib.sha256(b"rm -rf build\0/workspace").hexdigest().encode() +
           b"\nexact\n15\n%d\n" % body["expires"])
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        Ed25519PublicKey.from_public_bytes(good).verify(base64.b64decode(body["signature"]), msg)
        t.ok(True, "an independent Ed25519 verifies the signature over the documented message")
        try:
            Ed25519PublicKey.from_public_bytes(good).verify(base64.b64decode(body["signature"]), msg + b"x")
            t.ok(False, "a changed message fails")
        except Exception:  # noqa: BLE001 - InvalidSignature
            t.ok(True, "a changed message fails")
    except ImportError:
        t.skip("independent signature check", "python3-cryptography is not installed")

    bad_key = os.path.join(d.tmp, "bad.key")
    for what, content in (("31 bytes", base64.b64encode(os.urandom(31)).decode() + "\n"),
                          ("two lines", open(key_path).read() * 2), ("empty", "")):
        with open(bad_key, "w") as f:
            f.write(content)
        p = d.cli("devices", "sign", "--key", bad_key, "--id", "r", "--command", "c", "--cwd", "/")
        t.ok(p.returncode == 1 and "not a key file" in p.stderr, f"sign refuses a key file that is {what}", p.stderr)
    p = d.cli("devices", "sign", "--key", key_path, "--id", "r", "--command", "c", "--cwd", "/", "--scope", "all")
    t.eq(p.returncode, 2, "sign refuses an unknown scope")
    p = d.cli("devices", "rm", dev)
    t.eq(p.returncode, 0, "devices rm removes it")
    t.eq(d.request("GET", "/v1/devices", via="unix").json["devices"], before_devices, "it is gone from the list")
    t.eq(d.request("DELETE", f"/v1/devices/{dev}", via="unix").status, 404, "removing twice is 404")
    t.eq(d.request("POST", "/v1/devices", {"name": "again", "public_key": key}, via="unix").status, 201,
         "a removed device's key may be registered again")

    # A policy reload that changed something is a row.
    shutil.copy(os.path.join(d.policies, "default.policy"), os.path.join(d.policies, "extra.policy"))
    t.eq(d.request("POST", "/v1/policies/reload", via="unix").status, 200, "policies reloaded")
    last = all_rows()[-1]
    t.ok(last["action"] == "policy.reload" and json.loads(last["detail"])["changed"] >= 1,
         "a policy reload that changed something is audited", last)

    # Survives restart, kill -9 included: the chain and head are written with each row. With the default
    # state_sync (normal) a commit is in the WAL file when the request is answered, unsynced yet.
    def sync_logged():
        return re.findall(r"state_sync = (\w+) \(PRAGMA synchronous = (\d+)\)", d.logtext())[-1]

    t.eq(sync_logged(), ("normal", "1"), "state_sync is normal by default: the connection reports synchronous 1")
    d.kill9()
    d.start()
    v = verify()
    t.ok(v["ok"] and v["rows"] == len(all_rows()), "the ledger verifies after kill -9 and restart", v)
    t.ok(last in all_rows(), "the row written just before kill -9 is kept (state_sync = normal)", last)

    # state_sync = full: what the connection reports, and kill -9 again.
    config = d.config
    d.stop()
    d.config = config + "state_sync = full\n"
    d.start()
    t.eq(sync_logged(), ("full", "2"), "state_sync = full: the connection reports synchronous 2")
    t.eq(d.request("POST", "/v1/tokens", {"role": "relay", "label": "full"}, via="unix").status, 201, "a token")
    last = all_rows()[-1]
    d.kill9()
    d.start()
    v = verify()
    t.ok(v["ok"] and last in all_rows(), "its row is kept through kill -9 (state_sync = full)", v)
    d.stop()
    d.config = config + "state_sync = sometimes\n"
    p = run_cmd(d.argv(), text=True)
    t.ok(p.returncode != 0 and f'pocketcoder.conf:{config.count(chr(10)) + 1}: value for "state_sync": expected '
         f'normal' in p.stderr, "a bad state_sync is refused with file:line", p.stderr)
    d.config = config
    d.start()
finally:
    d.cleanup()
t.done()
