#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A real SSH login into a sandbox's tmux: Debian's sshd on a loopback port with the drop-in install.sh
installs (daemon/pocketcoder-sshd.conf.in, rendered for this test's paths), a key registered through the
API, the real `ssh` client run under tmux (send-keys / capture-pane) landing in the sandbox's tmux session
(its hostname, its /workspace, the agent's uid); the key's scope, a removed key refused at the next login,
and what the login must never give: a password login, port forwarding, a session without a terminal; the
gateway socket's role reaches nothing but /v1/ssh/."""
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time

from pclib import CLI, SOURCE, Daemon, Pty, Spec, Tap, read_response, run_cmd

t = Tap()
if os.geteuid() != 0:
    t.skip("ssh login tests", "need root (sshd, a system user, sandboxes)")
    t.done()
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
if not os.path.exists(SSHD) or not shutil.which("ssh") or not shutil.which("tmux"):
    t.skip("ssh login tests", "need openssh-server, openssh-client and tmux")
    t.done()

USER = "pcssh" + secrets.token_hex(3)
P = "sh" + secrets.token_hex(3)
S, OTHER = f"{P}-a", f"{P}-b"
# sshd runs the AuthorizedKeysCommand only from a path whose every directory is root's and not writable by
# others: not /tmp. The gateway socket lives there too, reachable for the SSH user.
base = tempfile.mkdtemp(prefix="pc-ssh-", dir="/run")
os.chmod(base, 0o755)
gateway = os.path.join(base, "ssh.sock")
spec = Spec()
d = Daemon(spec=spec, config=f"uid_range_base = 1224736768\nssh_socket = {gateway}\nssh_group = {USER}\n")
sshd = None
port = None
TMUX = ["tmux", "-S", os.path.join(base, "tmux.sock")]


def api(method, path, body=None):
    return d.request(method, path, body, via="unix")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def setup():
    global sshd, port
    # The SSH user as install.sh makes it: a system user of its own group, no password that could match
    # ('*', not the locked '!', which sshd without PAM treats as a locked account), a shell for ForceCommand.
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                    "--shell", "/bin/sh", "--password", "*", USER], check=True)
    d.start()
    bindir = os.path.join(base, "bin")
    os.mkdir(bindir, 0o755)
    shutil.copy(CLI, os.path.join(bindir, "pocketcoder"))
    with open(os.path.join(SOURCE, "daemon/pocketcoder-sshd.conf.in")) as f:
        dropin = f.read().replace("@SSH_USER@", USER).replace("@BINDIR@", bindir).replace("@SSH_SOCKET@", gateway)
    with open(os.path.join(base, "pocketcoder.conf"), "w") as f:
        f.write(dropin)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(base, "hostkey")], check=True)
    port = free_port()
    # The host's main sshd_config is not ours to use (its port, its users): a minimal one that includes the
    # drop-in as Debian's includes /etc/ssh/sshd_config.d/*.conf.
    with open(os.path.join(base, "sshd_config"), "w") as f:
        f.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {base}/hostkey\nPidFile {base}/sshd.pid\n"
                f"UsePAM no\nStrictModes yes\nLogLevel VERBOSE\nAllowUsers {USER}\n"
                f"PasswordAuthentication yes\nKbdInteractiveAuthentication yes\n"
                f"Include {base}/pocketcoder.conf\n")
    os.makedirs("/run/sshd", exist_ok=True)
    r = run_cmd([SSHD, "-t", "-f", os.path.join(base, "sshd_config")], text=True)
    t.eq((r.returncode, r.stderr), (0, ""), "sshd accepts the drop-in (sshd -t)")
    sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", os.path.join(base, "sshd_config")],
                            stderr=open(os.path.join(base, "sshd.log"), "w"), start_new_session=True)
    # Ready once it listens: its log says so (a file: the test reads it with a deadline).
    deadline = time.monotonic() + 20
    while "Server listening" not in open(os.path.join(base, "sshd.log")).read():
        if time.monotonic() > deadline or sshd.poll() is not None:
            exit_early()
        time.sleep(0.05)
    for n in (S, OTHER):
        t.eq(d.create_sandbox(n).status, 201, f"sandbox {n} runs")
    r = d.sandbox_run(S, "sh", "-c", "echo marker-$(hostname) > /workspace/marker")
    t.eq(r.returncode, 0, "a file is written in the sandbox's /workspace")


def exit_early():
    raise RuntimeError("setup failed: " + open(os.path.join(base, "sshd.log")).read()[-2000:])


def keygen(name):
    path = os.path.join(base, name)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path, "-C", name], check=True)
    with open(path + ".pub") as f:
        return path, f.read()


def ssh_argv(key, *extra):
    return ["ssh", "-p", str(port), "-i", key, "-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "LogLevel=ERROR", *extra]


def pane():
    return run_cmd([*TMUX, "capture-pane", "-p", "-t", "login"], text=True).stdout


def wait_pane(pattern, timeout=20):
    """The client's screen until it matches (tmux has no event for 'this text appeared': poll, bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = pane()
        if re.search(pattern, text):
            return text
        time.sleep(0.1)
    return pane()


def test_login():
    key, pub = keygen("person")
    r = api("POST", "/v1/keys", {"key": pub, "sandboxes": [S]})
    t.eq(r.status, 201, "the person's key is registered through the API (scoped to one sandbox)")
    kid = r.json["id"]

    # The real client in a terminal of its own (a host tmux), as a person would use it.
    argv = " ".join(ssh_argv(key, "-t")) + f" {USER}@127.0.0.1 {S}"
    run_cmd([*TMUX, "new-session", "-d", "-s", "login", "-x", "120", "-y", "30", argv + "; sleep 600"])
    # Inside: the sandbox's tmux, whose status line shows its pane's title: the sandbox's hostname.
    text = wait_pane(f'"{S}"')
    t.ok(f'"{S}"' in text, "ssh lands in the sandbox's tmux session", text)
    run_cmd([*TMUX, "send-keys", "-t", "login", "clear; echo \"in=$(hostname):$(id -u):$(cat /workspace/marker)\"",
             "Enter"])
    text = wait_pane(r"in=\S+:\d+:marker-")
    t.ok(f"in={S}:1000:marker-{S}" in text, "commands run inside the sandbox: its hostname, the agent, its /workspace",
         text)
    # The login is audited as an enter by the key.
    db = sqlite3.connect(os.path.join(d.state, "state.db"))
    rows = db.execute("SELECT actor, subject FROM audit WHERE action = 'sandbox.enter'").fetchall()
    db.close()
    uid = pwd.getpwnam(USER).pw_uid
    t.ok((f"ssh:uid={uid}:key={kid}", S) in rows, "the login is in the audit ledger with the key as actor", rows)
    # Detach: the session ends, the sandbox's tmux keeps running.
    run_cmd([*TMUX, "send-keys", "-t", "login", "C-b", "d"])
    text = wait_pane(r"detached")
    t.ok("detached" in text, "detaching from tmux ends the login", text)
    run_cmd([*TMUX, "kill-session", "-t", "login"])

    # Scope: the key does not open another sandbox.
    r = run_cmd(ssh_argv(key, "-tt") + [f"{USER}@127.0.0.1", OTHER], text=True, timeout=60)
    t.ok(r.returncode != 0 and "may not log in to sandbox" in r.stdout + r.stderr,
         "the key cannot enter a sandbox outside its scope", r.stdout + r.stderr)
    # No terminal, no session (and no host shell: the sandbox name is the only command there is).
    r = run_cmd(ssh_argv(key, "-T") + [f"{USER}@127.0.0.1", S], text=True, timeout=60)
    t.ok(r.returncode == 2 and "needs a terminal" in r.stderr, "a login without a terminal is refused",
         r.stdout + r.stderr)
    r = run_cmd(ssh_argv(key, "-tt") + [f"{USER}@127.0.0.1", "cat /etc/shadow"], text=True, timeout=60)
    t.ok(r.returncode == 2 and "root:" not in r.stdout and "is not a sandbox name" in r.stdout + r.stderr,
         "a command for the host is not run", r.stdout + r.stderr)
    # No forwarding: a remote forward is refused by sshd.
    r = run_cmd(ssh_argv(key, "-N", "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22") +
                [f"{USER}@127.0.0.1"], text=True, timeout=60)
    t.ok(r.returncode == 255 and "forwarding failed" in r.stderr, "remote port forwarding is refused", r.stderr)
    r = run_cmd(ssh_argv(key, "-W", f"127.0.0.1:{port}") + [f"{USER}@127.0.0.1"], text=True, timeout=60, input="")
    t.ok(r.returncode == 255 and "forwarding failed" in r.stderr and "SSH-2.0" not in r.stdout,
         "a direct TCP connection through the login (ssh -W) is refused", r.stdout + r.stderr)

    # The key goes: the next login is refused by sshd itself.
    t.eq(api("DELETE", f"/v1/keys/{kid}").status, 204, "the key is removed through the API")
    r = run_cmd(ssh_argv(key, "-tt") + [f"{USER}@127.0.0.1", S], text=True, timeout=60)
    t.ok(r.returncode == 255 and "Permission denied (publickey)" in r.stderr,
         "the next login with the removed key is refused", r.stdout + r.stderr)


CONTROL = (b"\x1b]", b"\x1bP", b"\x1b_", b"\x1b^", b"\x1bX", b"\x9d", b"\x90", b"\xc2\x9d")


def test_filter():
    """The agent turns on tmux's clipboard, passthrough and titles and prints OSC 52, OSC 0, DCS and APC
    strings: none of it reaches the terminal of the person logged in over SSH (as with enter)."""
    key, pub = keygen("filter")
    kid = api("POST", "/v1/keys", {"key": pub}).json["id"]
    tmux = ["tmux", "-S", "/run/tmux/agent.sock"]
    for opt in (["set-clipboard", "on"], ["allow-passthrough", "on"], ["set-titles", "on"]):
        t.eq(d.sandbox_run(S, *tmux, "set", "-g", *opt).returncode, 0, f"the agent sets tmux {opt[0]}")
    term = Pty(ssh_argv(key, "-t") + [f"{USER}@127.0.0.1", S], env=dict(os.environ, TERM="xterm-256color"))
    try:
        t.ok(term.expect(f'"{S}"'.encode(), timeout=60), "the login shows the sandbox's tmux", term.out[-300:])
        term.send(b"printf '\\033]52;c;cHduZWQ=\\007\\033Ptmux;\\033\\033]52;c;cHduZWQ=\\007\\033\\\\"
                  b"\\033]0;TITLE\\007\\033P+q544e\\033\\\\\\033_APC\\033\\\\'; echo MARK-$((6*7))\r")
        marked = term.expect(b"MARK-42", timeout=60)
        term.send(b"\x02d")
        detached = term.expect(b"[detached", timeout=60)
        status = term.wait(timeout=60)
    finally:
        term.close()
    t.ok(marked and detached and status == 0, "the agent's printf ran and the login detached", term.out[-300:])
    t.ok(not any(c in term.out for c in CONTROL), "no OSC, DCS or APC byte reached the SSH client's terminal",
         [c for c in CONTROL if c in term.out])
    api("DELETE", f"/v1/keys/{kid}")


def test_no_password():
    # Only publickey is offered for the SSH user, even though the main config allows passwords.
    r = run_cmd(["ssh", "-p", str(port), "-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
                 "-o", "UserKnownHostsFile=/dev/null", "-o", "PubkeyAuthentication=no",
                 "-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "BatchMode=yes",
                 f"{USER}@127.0.0.1", S], text=True, timeout=60)
    t.ok(r.returncode == 255 and "Permission denied (publickey)" in r.stderr,
         "a password login is refused: publickey is the only method offered", r.stderr)


def test_gateway_role():
    """The gateway socket's principal (role ssh) reaches /v1/ssh/ only, whatever token it sends."""
    admin = api("POST", "/v1/tokens", {"role": "admin"}).json["token"]

    def gw(method, path, body=None, token=None):
        s = socket.socket(socket.AF_UNIX)
        s.connect(gateway)
        data = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: pc\r\nContent-Length: {len(data)}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        s.sendall(head.encode() + b"\r\n" + data)
        status, js = read_response(s)
        s.close()
        return status, js

    st = os.stat(gateway)
    t.eq((oct(st.st_mode & 0o777), st.st_gid), ("0o660", pwd.getpwnam(USER).pw_gid), "the gateway socket is 0660, the SSH group's")
    for method, path, body in (("GET", "/v1/status", None), ("GET", "/v1/keys", None), ("GET", "/v1/whoami", None),
                               ("POST", "/v1/keys", {"key": "x"}), ("POST", "/v1/tokens", {"role": "admin"}),
                               ("POST", "/v1/sandboxes/x/sessions", {"kind": "enter"})):
        t.eq(gw(method, path, body, token=admin)[0], 403, f"the gateway cannot {method} {path} (not even with a token)")
    status, js = gw("POST", "/v1/ssh/authorize", {"key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID1HTDaUI12WoS/Co/ybGQdYQ9/Sh/R+J0jWbLoeUE3D"})
    t.eq(status, 404, "an unregistered key is 404 on /v1/ssh/authorize")
    status, js = gw("POST", "/v1/ssh/authorize", {"key": "ssh-ed25519 AAAA"})
    t.eq(status, 400, "a malformed key is 400")
    # The admins' socket and TCP cannot reach the gateway's routes.
    t.eq(api("POST", "/v1/ssh/authorize", {"key": "x"}).status, 403, "an admin on api.sock cannot use /v1/ssh/")
    r = d.request("POST", "/v1/tokens", {"role": "ssh"}, via="unix")
    t.eq(r.status, 400, "no token can have role ssh")


try:
    setup()
    t.run_all([test_login, test_filter, test_no_password, test_gateway_role], spec=spec)
finally:
    run_cmd([*TMUX, "kill-server"])
    if sshd:
        os.killpg(sshd.pid, 15)
        sshd.wait(timeout=30)
    if t.failed:
        for ln in d.logtext().splitlines()[-30:]:
            print(f"# daemon: {ln}")
        try:
            for ln in open(os.path.join(base, "sshd.log")).read().splitlines()[-30:]:
                print(f"# sshd: {ln}")
        except OSError:
            pass
    d.cleanup()
    subprocess.run(["userdel", USER], stderr=subprocess.DEVNULL)
    subprocess.run(["groupdel", USER], stderr=subprocess.DEVNULL)
    shutil.rmtree(base, ignore_errors=True)
