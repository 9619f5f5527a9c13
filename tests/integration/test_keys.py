#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""SSH keys (/v1/keys): registration with ssh-keygen's fingerprint, a validation corpus that stores nothing, 409
for a key registered twice, events and audit rows; the sync into every running sandbox's
~agent/.ssh/authorized_keys before the answer (owner, modes, scoped keys only where they belong), sandboxes
created or started later getting the current set, and an agent that plants symlinks (.ssh -> a host
directory, authorized_keys -> a host file) never making the daemon write outside its workspace."""
import json
import os
import secrets
import sqlite3
import stat
import subprocess
import tempfile

from pclib import Daemon, Spec, Tap

t = Tap()
if os.geteuid() != 0:
    t.skip("key tests", "need root (namespaces, cgroups, uid ranges)")
    t.done()

spec = Spec()
d = Daemon(spec=spec, config="uid_range_base = 1207959552\n")
P = "ky" + secrets.token_hex(3)
A, B, C, D = (f"{P}-{x}" for x in "abcd")
tmp = tempfile.mkdtemp(prefix="pc-keys-")


def api(method, path, body=None, token=None):
    return d.request(method, path, body, token=token, via="tcp" if token else "unix")


def keygen(name, kind="ed25519", bits=None, comment=None):
    path = os.path.join(tmp, name)
    argv = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", path, "-C", comment or f"{name}@test"]
    if bits:
        argv += ["-b", str(bits)]
    subprocess.run(argv, check=True)
    with open(path + ".pub") as f:
        line = f.read()
    fp = subprocess.run(["ssh-keygen", "-lf", path + ".pub"], check=True, capture_output=True, text=True).stdout.split()[1]
    return line, fp


def authorized(name):
    """The host's view of the sandbox's ~agent/.ssh/authorized_keys: (keys lines, stat of file, stat of dir)."""
    ssh = os.path.join(d.state, "workspaces", name, ".ssh")
    path = os.path.join(ssh, "authorized_keys")
    try:
        with open(path) as f:
            lines = [x for x in f.read().splitlines() if x and not x.startswith("#")]
        return lines, os.lstat(path), os.lstat(ssh)
    except OSError:
        return None, None, None


def keys_of(name):
    lines = authorized(name)[0]
    return {x.split()[1] for x in lines} if lines is not None else None


def b64(line):
    return line.split()[1]


def audit_rows(action):
    db = sqlite3.connect(os.path.join(d.state, "state.db"))
    try:
        return db.execute("SELECT subject, detail FROM audit WHERE action = ?", (action,)).fetchall()
    finally:
        db.close()


def test_api():
    line, fp = keygen("k1")
    r = api("POST", "/v1/keys", {"key": line})
    t.eq(r.status, 201, "POST /v1/keys registers an ed25519 key")
    k = r.json or {}
    t.eq((k.get("type"), k.get("fingerprint"), k.get("comment"), k.get("bits"), k.get("sandboxes")),
         ("ssh-ed25519", fp, "k1@test", 256, None), "with ssh-keygen -l's fingerprint, its comment and no scope")
    t.eq(k.get("key"), line.strip(), "the stored line is the canonical key line")
    r = api("GET", "/v1/keys")
    t.eq([x["id"] for x in r.json["keys"]], [k["id"]], "GET /v1/keys lists it")

    # The same key again (also with another comment) is a conflict; nothing is added.
    again = " ".join(line.split()[:2]) + " another comment"
    r = api("POST", "/v1/keys", {"key": again})
    t.eq((r.status, (r.json or {}).get("error", {}).get("code")), (409, "conflict"), "a key registered twice is 409")
    t.eq(len(api("GET", "/v1/keys").json["keys"]), 1, "and nothing is stored")

    for kind, bits, want in (("ecdsa", 256, 256), ("ecdsa", 384, 384), ("ecdsa", 521, 521), ("rsa", 3072, 3072)):
        ln, f = keygen(f"k-{kind}{bits}", kind, bits)
        r = api("POST", "/v1/keys", {"key": ln})
        t.eq((r.status, (r.json or {}).get("fingerprint"), (r.json or {}).get("bits")), (201, f, want),
             f"{kind}-{bits} keys are accepted with their fingerprint")
        if r.status == 201:
            t.eq(api("DELETE", f"/v1/keys/{r.json['id']}").status, 204, f"and removed ({kind}-{bits})")

    # The validation corpus: every one a 400 with a reason, nothing stored.
    small, _ = keygen("rsa1024", "rsa", 1024)
    ed = b64(line)
    corpus = [
        ({"key": ""}, "empty"),
        ({"key": "ssh-ed25519"}, "no base64"),
        ({"key": "ssh-ed25519 " + ed[:-4]}, "32 bytes"),
        ({"key": "ssh-ed25519 " + ed + "="}, "base64"),
        ({"key": "ssh-ed25519 " + ed.replace("A", "!", 1)}, "base64"),
        ({"key": "ssh-rsa " + ed}, "not a ssh-rsa key"),
        ({"key": "ecdsa-sha2-nistp256 " + ed}, "not a ecdsa-sha2-nistp256 key"),
        ({"key": small}, "1024 bits"),
        ({"key": "ssh-dss AAAAB3NzaC1kc3M="}, "DSA"),
        ({"key": 'command="/bin/sh" ' + line}, "options"),
        ({"key": "no-pty,from=\"1.2.3.4\" " + line}, "options"),
        ({"key": "ssh-ed25519-cert-v01@openssh.com " + ed}, "certificate"),
        ({"key": "ssh-ed25519 " + ed + " a\nssh-ed25519 " + ed}, "printable"),
        ({"key": "ssh-ed25519 " + ed + " \x1b]52;c;eA==\x07"}, "printable"),
        ({"key": "ssh-ed25519 " + ed + " " + "c" * 300}, "comment"),
        ({"key": "ssh-ed25519 " + "A" * 9000}, "longer than"),
        ({"key": 42}, "must be a string"),
        ({}, "must be a string"),
        ({"key": line, "extra": 1}, "extra"),
        ({"key": line, "sandboxes": []}, "1 to 64"),
        ({"key": line, "sandboxes": "all"}, "1 to 64"),
        ({"key": line, "sandboxes": ["Bad_Name"]}, "not a sandbox name"),
        ({"key": line, "sandboxes": [A, A]}, "twice"),
        ({"key": line, "sandboxes": [7]}, "not a sandbox name"),
    ]
    before = api("GET", "/v1/keys").json
    for body, reason in corpus:
        r = api("POST", "/v1/keys", body)
        msg = (r.json or {}).get("error", {}).get("message", "")
        t.ok(r.status == 400 and reason in msg, f"refused with 400 ({reason}): {json.dumps(body)[:60]}",
             f"{r.status} {msg}")
    r = api("POST", "/v1/keys", {"key": keygen("k-nosuch")[0], "sandboxes": ["nosuch"]})
    t.eq(r.status, 404, "a scope naming a sandbox that does not exist is 404")
    t.eq(api("GET", "/v1/keys").json, before, "no refused request stored anything")

    # Relay tokens may manage keys over TCP; an agent may not.
    relay = api("POST", "/v1/tokens", {"role": "relay"}).json["token"]
    rl, rfp = keygen("k-relay")
    r = api("POST", "/v1/keys", {"key": rl}, token=relay)
    t.eq(r.status, 201, "a relay registers a key over TCP")
    t.eq(api("DELETE", f"/v1/keys/{r.json['id']}", token=relay).status, 204, "and removes it")
    t.eq(api("DELETE", f"/v1/keys/{r.json['id']}", token=relay).status, 404, "removing it twice is 404")

    # Events and the audit ledger.
    ev = api("GET", "/v1/events?type=key.added").json["events"]
    t.ok(any(e["data"] == {"id": k["id"], "fingerprint": fp} for e in ev), "key.added carries id and fingerprint", ev)
    ev = api("GET", "/v1/events?type=key.removed").json["events"]
    t.ok(any(e["data"] == {"id": r.json["id"], "fingerprint": rfp} for e in ev), "key.removed likewise", ev)
    t.ok((k["id"], fp) in audit_rows("key.add"), "key.add is in the audit ledger")
    t.ok((r.json["id"], rfp) in audit_rows("key.remove"), "key.remove is in the audit ledger")
    api("DELETE", f"/v1/keys/{k['id']}")


def test_sync():
    for n in (A, B, C):
        t.eq(d.create_sandbox(n).status, 201, f"sandbox {n} runs")
    uid = {n: api("GET", f"/v1/sandboxes/{n}").json["uid_base"] + 1000 for n in (A, B, C)}
    t.eq((keys_of(A), keys_of(B)), (None, None), "a sandbox that no key reaches gets no ~/.ssh")

    l1, _ = keygen("s1")
    k1 = api("POST", "/v1/keys", {"key": l1}).json
    # Synchronous: the 201 comes after every running sandbox has the file.
    t.eq((keys_of(A), keys_of(B), keys_of(C)), ({b64(l1)},) * 3, "an unscoped key reaches every running sandbox at once")
    lines, st, dst = authorized(A)
    t.eq((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), stat.S_ISREG(st.st_mode)), (uid[A], uid[A], 0o600, True),
         "authorized_keys is the agent's, mode 0600")
    t.eq((dst.st_uid, stat.S_IMODE(dst.st_mode), stat.S_ISDIR(dst.st_mode)), (uid[A], 0o700, True),
         ".ssh is the agent's, mode 0700")
    r = d.sandbox_run(A, "sh", "-c", "id -u; stat -c '%a %U' ~/.ssh ~/.ssh/authorized_keys; cat ~/.ssh/authorized_keys")
    t.ok(r.returncode == 0 and "1000\n700 agent\n600 agent\n" in r.stdout and b64(l1) in r.stdout,
         "inside the sandbox the agent sees ~/.ssh/authorized_keys as its own", r.stdout + r.stderr)

    l2, _ = keygen("s2")
    k2 = api("POST", "/v1/keys", {"key": l2, "sandboxes": [B]}).json
    t.eq(k2.get("sandboxes"), [B], "a scoped key shows its scope")
    t.eq((keys_of(A), keys_of(B)), ({b64(l1)}, {b64(l1), b64(l2)}), "a scoped key reaches its sandbox only")

    # Removal reaches every sandbox too.
    t.eq(api("DELETE", f"/v1/keys/{k1['id']}").status, 204, "removing the unscoped key")
    t.eq((keys_of(A), keys_of(B), keys_of(C)), (set(), {b64(l2)}, set()), "is seen in every sandbox at once")

    # Later sandboxes: one created now, and one started again after a change while it was stopped.
    l3, _ = keygen("s3")
    t.eq(api("POST", f"/v1/sandboxes/{A}/stop").status, 200, "a sandbox stopped")
    k3 = api("POST", "/v1/keys", {"key": l3}).json
    t.eq(keys_of(A), set(), "a stopped sandbox is not written to")
    t.eq(api("POST", f"/v1/sandboxes/{A}/start").status, 200, "and started again")
    t.eq(keys_of(A), {b64(l3)}, "gets the current set when it starts")
    t.eq(d.create_sandbox(D).status, 201, "a new sandbox")
    t.eq(keys_of(D), {b64(l3)}, "gets the current set when it is created")

    # The agent rewrites the file: the next change puts the managed set back.
    r = d.sandbox_run(B, "sh", "-c", "echo 'ssh-ed25519 AAAAplanted' > ~/.ssh/authorized_keys")
    api("DELETE", f"/v1/keys/{k3['id']}")
    t.eq(keys_of(B), {b64(l2)}, "what the agent wrote into authorized_keys is replaced at the next change")
    api("DELETE", f"/v1/keys/{k2['id']}")


def test_symlinks():
    """The agent plants symlinks to host paths; the daemon (root on the host) must write nowhere but the
    workspace."""
    target = os.path.join(tmp, "host-dir")
    os.mkdir(target, 0o755)
    precious = os.path.join(tmp, "precious")
    with open(precious, "w") as f:
        f.write("precious\n")
    # C: .ssh is a symlink to a host directory (absolute: it would resolve on the host).
    r = d.sandbox_run(C, "sh", "-c", f"rm -rf ~/.ssh && ln -s {target} ~/.ssh && ls -la ~")
    t.eq(r.returncode, 0, "the agent replaces .ssh with a symlink to a host directory", )
    # A: authorized_keys is a symlink to a host file, B: .ssh/authorized_keys is a symlink to /etc/passwd's dir
    r = d.sandbox_run(A, "sh", "-c", f"rm -f ~/.ssh/authorized_keys && ln -s {precious} ~/.ssh/authorized_keys")
    t.eq(r.returncode, 0, "the agent replaces authorized_keys with a symlink to a host file")
    r = d.sandbox_run(B, "sh", "-c", "rm -rf ~/.ssh && ln -s ../../../../../../../etc ~/.ssh")
    t.eq(r.returncode, 0, "the agent replaces .ssh with a relative symlink climbing to /etc")
    etc_before = sorted(os.listdir("/etc"))

    l4, _ = keygen("s4")
    r = api("POST", "/v1/keys", {"key": l4})
    t.eq(r.status, 201, "adding a key still works")
    t.eq(os.listdir(target), [], "nothing is written through a .ssh symlink to a host directory")
    with open(precious) as f:
        t.eq(f.read(), "precious\n", "nothing is written through an authorized_keys symlink to a host file")
    t.eq(sorted(os.listdir("/etc")), etc_before, "nothing appears in /etc")
    t.ok(not os.path.exists("/etc/authorized_keys"), "no /etc/authorized_keys")
    t.ok(os.path.islink(os.path.join(d.state, "workspaces", C, ".ssh")), "the planted .ssh symlink is left alone")
    lines, st, _ = authorized(A)
    t.ok(st is not None and stat.S_ISREG(st.st_mode) and lines == [l4.strip()],
         "a planted authorized_keys symlink is replaced by the file (rename over it)", lines)
    t.eq(keys_of(D), {b64(l4)}, "a sandbox with a symlink trap does not stop the others")
    t.ok("(.ssh is not a directory of the workspace, e.g. a symlink the agent planted: refused)" in d.logtext(), "the refusal is logged")
    api("DELETE", f"/v1/keys/{r.json['id']}")


def test_cli():
    line, fp = keygen("c1")
    path = os.path.join(tmp, "c1.pub")
    r = d.cli("keys", "add", "--sandbox", D, path)
    t.ok(r.returncode == 0 and fp in r.stdout, "pocketcoder keys add FILE prints the fingerprint", r.stdout + r.stderr)
    kid = r.stdout.split()[2] if r.returncode == 0 else "0" * 16
    t.eq(keys_of(D), {b64(line)}, "and the key reaches its sandbox")
    r = d.cli("keys", "list")
    t.ok(r.returncode == 0 and kid in r.stdout and fp in r.stdout and D in r.stdout, "keys list shows it", r.stdout)
    r = d.cli("keys", "add", "-", input=line)
    t.ok(r.returncode == 1 and "already registered" in r.stderr, "adding it again says it is registered", r.stderr)
    r = d.cli("keys", "add", os.path.join(tmp, "c1"))
    t.ok(r.returncode == 1 and "key" in r.stderr, "a private key file is refused with a reason", r.stderr)
    r = d.cli("keys", "rm", "nothex")
    t.eq(r.returncode, 2, "keys rm with a malformed id is a usage error")
    r = d.cli("keys", "rm", kid)
    t.ok(r.returncode == 0 and keys_of(D) == set(), "keys rm removes it from the sandbox", r.stdout + r.stderr)


try:
    d.start()
    t.run_all([test_api, test_sync, test_symlinks, test_cli], spec=spec)
finally:
    if t.failed:
        for ln in d.logtext().splitlines()[-30:]:
            print(f"# daemon: {ln}")
    d.cleanup()
    subprocess.run(["rm", "-rf", tmp])
