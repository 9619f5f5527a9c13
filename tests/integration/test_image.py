#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Images: 'pocketcoder image build' asks the daemon (POST /v1/images) to make a Debian root filesystem with
debootstrap (from the mirror apt uses; the only network this test touches) and shows the progress it streams;
sandboxes use it read-only under a private overlay each, and 'image rm' (DELETE /v1/images/NAME) refuses while
a sandbox uses it. The CLI never writes the daemon's state directory. A minbase bookworm build takes about 35-50 s on the 2-core CI
machine, so it is built fresh every run (no cache)."""
import json
import os
import shutil
import time

from pclib import CLI, SOURCE, Daemon, Tap, run_cmd

t = Tap()
ROOTFS_DIR = os.path.join(SOURCE, "rootfs")


# The daemon runs the build script from the source tree.
os.environ["POCKETCODER_ROOTFS_DIR"] = ROOTFS_DIR


def cli(*args, daemon=None, timeout=900):
    env = dict(os.environ)
    env.pop("POCKETCODER_URL", None)
    env.pop("POCKETCODER_TOKEN", None)
    env["POCKETCODER_SOCKET"] = daemon.socket if daemon else "/nonexistent/pocketcoder-test/api.sock"
    return run_cmd([CLI, *args], text=True, env=env, timeout=timeout)


def leftovers(images):
    """Anything in images/ that is not a finished image: build temporaries, lock files, removals."""
    return sorted(x for x in os.listdir(images) if x.startswith("."))


# ---- usage errors need neither root nor a network ----
p = cli("image", "--help")
t.ok(p.returncode == 0 and "Usage:" in p.stdout and "image build NAME" in p.stdout, "image --help explains itself", p.stderr)
p = cli("image", "build", "Bad_Name")
t.ok(p.returncode == 2 and "invalid" in p.stderr, "an invalid image name is a usage error (2)", p.stderr)
p = cli("image", "build", "host")
t.ok(p.returncode == 2 and "reserved" in p.stderr, "\"host\" is reserved", p.stderr)
p = run_cmd([os.path.join(ROOTFS_DIR, "build-image.sh"), "--state-dir", "/nonexistent", "--name", "x",
             "--packages", "ok,not;ok"], text=True)
t.ok(p.returncode == 2 and "package name" in p.stderr, "build-image.sh refuses a bad package name before doing anything",
     p.stderr)

if os.geteuid() != 0 or not shutil.which("debootstrap"):
    t.skip("image build and sandboxes on it", "needs root and debootstrap")
    t.done()

# ---- the progress stream, with a stand-in for build-image.sh (fast, and bytes debootstrap may print) ----
fake = Daemon()
fake_dir = os.path.join(fake.tmp, "fake-rootfs")
os.makedirs(fake_dir)
with open(os.path.join(fake_dir, "build-image.sh"), "w") as f:
    f.write("#!/bin/sh\necho '==> fake build'\nprintf 'caf\\351 \\377 ok\\n'\necho 'to stderr' >&2\n"
            "i=0; while [ $i -lt 5000 ]; do echo \"  [$i] Extracting package-$i...\"; i=$((i+1)); done\nexit 3\n")
os.chmod(os.path.join(fake_dir, "build-image.sh"), 0o755)
os.environ["POCKETCODER_ROOTFS_DIR"] = fake_dir
try:
    fake.start()
    p = cli("image", "build", "fake", daemon=fake, timeout=120)
    lines = p.stdout.splitlines()
    t.ok(p.returncode == 3 and lines[:2] == ["==> fake build", "caf? ? ok"] and lines[-1] == "  [4999] Extracting package-4999..."
         and len(lines) == 5002 and p.stderr == "to stderr\n",
         "image build streams every line to stdout or stderr as printed (invalid UTF-8 as '?') and exits with the "
         "build's status", (p.returncode, lines[:3], lines[-1:], len(lines), p.stderr))
    # The same lines are events on the bus, for a client that lost the answer.
    ev = fake.request("GET", "/v1/events?type=image.failed", via="unix").json["events"]
    t.ok(len(ev) == 1 and ev[0]["data"].get("image") == "fake" and ev[0]["data"].get("status") == 3,
         "the build's end is an image.failed event with the image's name and status", ev)
    ev = fake.request("GET", "/v1/events?type=image.progress", via="unix").json["events"]
    t.ok(len(ev) > 0 and ev[0]["data"].get("image") == "fake" and ev[0]["data"].get("stream") == "stdout",
         "each line printed is an image.progress event", ev[:2])
finally:
    os.environ["POCKETCODER_ROOTFS_DIR"] = ROOTFS_DIR
    fake.cleanup()

d = Daemon()
images = os.path.join(d.state, "images")
image = os.path.join(images, "base")
sandboxes = []
try:
    d.start()
    p = cli("image", "list")
    t.ok(p.returncode == 1 and "cannot reach pocketcoderd" in p.stderr, "image list without a daemon says so", p.stderr)
    r = d.request("POST", "/v1/images", {"name": "x", "packages": ["ok,not;ok"]}, via="unix")
    t.ok(r.status == 400 and "package name" in r.raw, "the daemon refuses a bad package name before building", r)
    os.makedirs(images, exist_ok=True)
    # ---- a build that fails leaves nothing behind ----
    p = cli("image", "build", "broken", "--mirror", "http://127.0.0.1:9/debian", daemon=d, timeout=300)
    t.ok(p.returncode != 0 and "debootstrap failed" in p.stderr, "a build from an unreachable mirror fails", p.stdout + p.stderr)
    t.ok(not os.path.exists(os.path.join(images, "broken")) and leftovers(images) == [],
         "a failed build leaves nothing in images/", os.listdir(images))

    # ---- the real build ----
    start = time.monotonic()
    p = cli("image", "build", "base", "--suite", "bookworm", daemon=d)
    elapsed = time.monotonic() - start
    print(f"# image build base (minbase bookworm): {elapsed:.1f} s", flush=True)
    out = p.stdout
    t.ok(p.returncode == 0, "image build base succeeds", out[-3000:] + p.stderr)
    t.ok(out.startswith("==> debootstrap bookworm (minbase) from http"), "progress starts with what is built from where",
         out[:300])
    t.ok("  [  1] " in out and "\n==> done: base, " in out and out.rstrip().endswith(" s"),
         "progress: numbered debootstrap steps, then size and time", out[-500:])
    t.ok(os.path.isfile(os.path.join(image, "etc/debian_version")), "the image is a Debian root filesystem")
    with open(os.path.join(image, "image.json")) as f:
        meta = json.load(f)
    t.ok(meta["name"] == "base" and meta["suite"] == "bookworm" and meta["packages"] == ["tmux"] and
         meta["size"] > 50 << 20 and meta["created"].endswith("Z"), "image.json describes the image", meta)
    t.ok(all(os.path.isdir(os.path.join(image, x)) for x in ("workspace", "proc", "dev", "tmp", "run", "sys")),
         "the mount points sandboxes need exist in the image")
    t.ok(os.stat(os.path.join(image, "tmp")).st_mode & 0o7777 == 0o1777, "/tmp in the image is 1777")
    with open(os.path.join(image, "etc/passwd")) as f:
        passwd = f.read()
    t.ok("agent:x:1000:1000:agent:/workspace:/bin/bash" in passwd.splitlines(), "the image has the agent user", passwd)
    t.ok(os.listdir(os.path.join(image, "var/lib/apt/lists")) == ["partial"] and
         not any(x.endswith(".deb") for x in os.listdir(os.path.join(image, "var/cache/apt/archives"))),
         "apt caches and lists are removed")
    t.ok(leftovers(images) == [], "no build temporaries remain", os.listdir(images))
    with open("/proc/self/mountinfo") as f:
        t.ok(d.state not in f.read(), "no mount of the build is left on the host")

    p = cli("image", "build", "base", daemon=d)
    t.ok(p.returncode == 1 and "already exists" in p.stderr, "building an existing name fails and says so", p.stderr)

    # ---- list ----
    p = cli("image", "list", daemon=d)
    lines = p.stdout.splitlines()
    t.ok(p.returncode == 0 and lines[0].split() == ["NAME", "SUITE", "PACKAGES", "SIZE", "CREATED"] and
         lines[1].split()[:2] == ["base", "bookworm"] and len(lines) == 2, "image list is a table", p.stdout)
    p = cli("--json", "image", "list", daemon=d)
    t.ok(p.returncode == 0 and json.loads(p.stdout)["images"][0]["name"] == "base", "image list --json", p.stdout)

    # ---- sandboxes on the image ----
    for name in ("img-a", "img-b"):
        r = d.request("POST", "/v1/sandboxes", {"name": name, "rootfs": "base", "network": "none"}, via="unix")
        if t.ok(r.status == 201, f"sandbox {name} starts on image base", r):
            sandboxes.append(name)
    if len(sandboxes) == 2:
        def run(name, *cmd, root=False):
            return d.cli("sandbox", "run", name, *(["--root"] if root else []), "--", *cmd)

        with open(os.path.join(image, "etc/debian_version")) as f:
            version = f.read()
        p = run("img-a", "cat", "/etc/debian_version")
        t.ok(p.returncode == 0 and p.stdout == version, "the sandbox sees the image's /etc/debian_version",
             p.stdout + p.stderr)
        p = run("img-a", "id", "-un")
        t.ok(p.returncode == 0 and p.stdout.strip() == "agent", "the agent runs as 'agent' in the image", p.stdout + p.stderr)

        p = run("img-a", "sh", "-c", "echo from-a > /root/x && echo from-a > /etc/x", root=True)
        t.ok(p.returncode == 0, "sandbox root can write to / of its overlay", p.stderr)
        upper = os.path.join(d.state, "overlays/img-a/upper")
        t.ok(os.path.isfile(os.path.join(upper, "root/x")) and os.path.isfile(os.path.join(upper, "etc/x")),
             "the writes land in the sandbox's overlay upper layer", upper)
        t.ok(not os.path.exists(os.path.join(image, "root/x")) and not os.path.exists(os.path.join(image, "etc/x")),
             "the image itself is unchanged")

        p = run("img-b", "sh", "-c", "cat /root/x /etc/x", root=True)
        t.ok(p.returncode != 0 and "from-a" not in p.stdout, "another sandbox on the same image does not see them",
             p.stdout + p.stderr)
        p = run("img-b", "sh", "-c", "echo from-b > /etc/x && cat /etc/x", root=True)
        t.ok(p.returncode == 0 and p.stdout == "from-b\n", "it writes its own copy", p.stdout + p.stderr)
        p = run("img-a", "cat", "/etc/x")
        t.ok(p.returncode == 0 and p.stdout == "from-a\n", "and the first one still sees its own", p.stdout + p.stderr)
        p = run("img-a", "sh", "-c", "echo x > /etc/agent-was-here")
        t.ok(p.returncode != 0, "the agent (not root) cannot write to the image's /etc", p.stderr)
        p = run("img-a", "grep", " / / ", "/proc/self/mountinfo")
        t.ok(p.returncode == 0 and "upperdir=/upper," in p.stdout and d.state not in p.stdout,
             "the overlay's options inside name no host path of the state directory", p.stdout + p.stderr)

    # ---- rm refuses while a sandbox uses the image ----
    if sandboxes:
        p = cli("image", "rm", "base", daemon=d)
        t.ok(p.returncode == 1 and "in use" in p.stderr and sandboxes[0] in p.stderr and os.path.isdir(image),
             "image rm refuses while sandboxes use it, naming them", p.stderr)
    for name in list(sandboxes):
        r = d.request("DELETE", f"/v1/sandboxes/{name}?purge=true", via="unix")
        if t.ok(r.status in (200, 204), f"sandbox {name} deleted", r):
            sandboxes.remove(name)
            t.ok(not os.path.exists(os.path.join(d.state, "overlays", name)), f"deleting {name} removed its overlay")

    p = cli("image", "rm", "base", daemon=d)
    t.ok(p.returncode == 0 and not os.path.exists(image) and leftovers(images) == [],
         "image rm removes an unused image completely", f"{p.stdout}{p.stderr}{os.listdir(images)}")
    p = cli("image", "list", daemon=d)
    t.ok(p.returncode == 0 and len(p.stdout.splitlines()) == 1, "and it is no longer listed", p.stdout)

    p = cli("image", "rm", "base", daemon=d)
    t.ok(p.returncode == 1 and "does not exist" in p.stderr, "removing a missing image fails and says so", p.stderr)
finally:
    for name in sandboxes:
        d.request("DELETE", f"/v1/sandboxes/{name}?purge=true", via="unix", check=False)
    d.cleanup()
t.done()
