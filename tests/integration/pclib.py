# SPDX-License-Identifier: MIT
"""Helpers for integration tests: start a real pocketcoderd in a temp dir, talk HTTP to it over its unix
socket or TCP, check every response against api/openapi.yaml, and print TAP."""
import fcntl
import http.client
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import traceback
import termios
import time

BUILD = os.environ.get("POCKETCODER_BUILD_DIR") or os.path.join(os.path.dirname(__file__), "../../build")
SOURCE = os.environ.get("POCKETCODER_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "../..")
DAEMON = os.path.join(BUILD, "pocketcoderd/pocketcoderd")
CLI = os.path.join(BUILD, "cli/pocketcoder")
# How much slower than this machine the tests run: tests/run sets it for the cgroup2 VM, whose CPU is
# emulated. Waits and timeouts that are about time (an HTTP answer, an exec's timeout) scale with it.
SLOW = max(1, int(os.environ.get("POCKETCODER_TEST_SLOW", "1") or 1))
MUST_WORK = os.environ.get("POCKETCODER_TESTS_MUST_WORK") == "1"


class Tap:
    """TAP producer; one line per check, plan printed at the end."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        if cond:
            print(f"ok {self.n} - {name}", flush=True)
        else:
            self.failed += 1
            print(f"not ok {self.n} - {name}", flush=True)
            if diag is not None:
                for line in str(diag).splitlines()[:30]:
                    print(f"#   {line}", flush=True)
        return cond

    def eq(self, got, want, name):
        return self.ok(got == want, name, f"got {got!r}, want {want!r}")

    def skip(self, name, why):
        self.n += 1
        if MUST_WORK:
            self.failed += 1
            print(f"not ok {self.n} - {name} # must work but skipped: {why}", flush=True)
        else:
            print(f"ok {self.n} - {name} # SKIP {why}", flush=True)

    def done(self):
        print(f"1..{self.n}", flush=True)
        sys.exit(1 if self.failed else 0)

    def run_all(self, tests, spec=None):
        """Runs each test function in turn: one that raises is a failure with its traceback, and the others
        still run. Then the responses' check against api/openapi.yaml (when a Spec was used), and done()."""
        try:
            for test in tests:
                try:
                    test()
                except Exception:  # noqa: BLE001 - reported as a failure, the other tests still run
                    self.ok(False, f"{test.__name__} ran to its end", traceback.format_exc())
        finally:
            if spec is not None and spec.errors:
                self.ok(False, "responses match api/openapi.yaml", "\n".join(spec.errors))
            self.done()


def read_response(sock):
    """One HTTP response read from a raw socket (keep-alive, Content-Length): (status, JSON body or None),
    or (None, None) when the server closed the connection first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None, None
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(b":", 1) for line in head.split(b"\r\n")[1:])}
    length = int(headers.get(b"content-length", b"0"))
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return int(head.split(b" ")[1]), json.loads(body) if body else None


def run_cmd(argv, timeout=120, input=None, text=False, env=None):
    """subprocess.run(capture_output=True) that cannot hang: the command runs in a process group of its own
    and, when it overstays `timeout`, that whole group (named by the pid we started) is killed, so that no
    grandchild keeps the output pipes open. A command that timed out comes back with returncode None and a
    note on stderr."""
    with subprocess.Popen(argv, start_new_session=True, text=text, env=env,
                          stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
        try:
            out, err = p.communicate(input, timeout=timeout)
            return subprocess.CompletedProcess(argv, p.returncode, out, err)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            try:
                out, err = p.communicate(timeout=10)
            except subprocess.TimeoutExpired:  # something outside the group holds the pipes: leave them
                out, err = None, None
            empty = "" if text else b""
            note = f"\n[killed after {timeout} s: {' '.join(map(str, argv))}]\n"
            return subprocess.CompletedProcess(argv, None, out or empty,
                                               (err or empty) + (note if text else note.encode()))


class Pty:
    """A command on a pseudo-terminal of its own, driven the way a person at a keyboard would: wait until
    the screen shows something (an event on the pty, never a sleep), then type. Everything is bounded by
    deadlines; close() kills the command by the pid we started if it is still there."""

    def __init__(self, argv, env=None, rows=24, cols=80):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(master)
                os.setsid()
                fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
                for fd in (0, 1, 2):
                    os.dup2(slave, fd)
                if slave > 2:
                    os.close(slave)
                os.execvpe(argv[0], argv, env if env is not None else os.environ)
            finally:
                os._exit(127)
        os.close(slave)
        self.fd, self.out, self.status = master, b"", None

    def expect(self, needle, timeout=30):
        """True once `needle` (bytes) has appeared in the output; False at the deadline or when the pty closed."""
        deadline = time.monotonic() + timeout
        while needle not in self.out:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return False
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: every slave is closed
                return False
            if not chunk:
                return False
            self.out += chunk
        return True

    def send(self, data):
        os.write(self.fd, data)

    def wait(self, timeout=30):
        """The command's exit code (128+N for signal N), or None if it is still running at the deadline."""
        if self.status is None:
            fd = os.pidfd_open(self.pid)
            try:
                if not select.select([fd], [], [], timeout)[0]:
                    return None
            finally:
                os.close(fd)
            _, st = os.waitpid(self.pid, 0)
            self.status = os.waitstatus_to_exitcode(st)
            self.status = self.status if self.status >= 0 else 128 - self.status
            # What it wrote last is still in the pty: take it without waiting for more.
            while select.select([self.fd], [], [], 0)[0]:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                self.out += chunk
        return self.status

    def close(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.status = -1
        os.close(self.fd)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30 * SLOW):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Response:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.json = json.loads(raw) if raw else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"<{self.status} {self.raw[:300]!r}>"


class Spec:
    """Validates responses against api/openapi.yaml (OpenAPI 3.0: 'nullable' is turned into JSON Schema)."""

    def __init__(self, path=None):
        import yaml
        import jsonschema

        self.jsonschema = jsonschema
        with open(path or os.path.join(SOURCE, "api/openapi.yaml")) as f:
            self.doc = self._convert(yaml.safe_load(f))
        self.templates = []
        for p in self.doc["paths"]:
            # {path*} (the files API) takes the rest of the path, slashes and all.
            rx = re.escape(p).replace(re.escape("{path*}"), "(?P<tail>.+)")
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", rx) + "$"
            self.templates.append((re.compile(rx), p))
        self.errors = []
        self.checked = 0

    def _convert(self, node):
        if isinstance(node, dict):
            node = {k: self._convert(v) for k, v in node.items()}
            if node.pop("nullable", False) and "type" in node:
                node["type"] = [node["type"], "null"]
                if "enum" in node:
                    node["enum"] = node["enum"] + [None]
            return node
        if isinstance(node, list):
            return [self._convert(v) for v in node]
        return node

    def template(self, path):
        path = path.split("?")[0]
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        for rx, p in self.templates:
            if rx.match(path):
                return p
        return None

    def methods(self, template):
        return sorted(m.upper() for m in self.doc["paths"][template] if m != "parameters")

    def check(self, method, path, resp):
        """Returns None if the response is allowed by the spec, else a message."""
        self.checked += 1
        t = self.template(path)
        if resp.status == 404 and t is None or resp.status == 405:
            problem = self._validate_schema({"$ref": "#/components/schemas/Error"}, resp)
            if resp.status == 405 and not problem:
                allow = sorted(x.strip() for x in (resp.headers.get("Allow") or "").split(","))
                if t is None or allow != [m for m in self.methods(t) if m != method]:
                    problem = f"405 Allow {allow} does not match the spec's methods for {t}"
            return self._record(method, path, problem)
        if t is None:
            return self._record(method, path, f"path {path} is not in the spec")
        op = self.doc["paths"][t].get(method.lower())
        if op is None:
            return self._record(method, path, f"{method} {t} is not in the spec")
        r = op["responses"].get(str(resp.status)) or op["responses"].get("default")
        if r is None:
            return self._record(method, path, f"{method} {t}: status {resp.status} is not in the spec")
        if "$ref" in r:
            r = self._resolve(r["$ref"])
        content = r.get("content")
        if not content:
            return self._record(method, path, None if not resp.raw else f"{resp.status} must have no body")
        ctype = (resp.headers.get("Content-Type") or "").split(";")[0]
        if ctype != "application/json" and any(k != "application/json" for k in content):
            return self._record(method, path, None)  # a body that is not JSON (a file's bytes)
        schema = content.get("application/json", {}).get("schema")
        return self._record(method, path, self._validate_schema(schema, resp))

    def _resolve(self, ref):
        node = self.doc
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return node

    def _validate_schema(self, schema, resp):
        if resp.json is None:
            return f"body is not JSON: {resp.raw[:200]!r}"
        if (resp.headers.get("Content-Type") or "").split(";")[0] != "application/json":
            return f"Content-Type is {resp.headers.get('Content-Type')!r}"
        full = dict(schema)
        full["components"] = self.doc["components"]
        try:
            self.jsonschema.validate(resp.json, full)
        except self.jsonschema.ValidationError as e:
            return f"body does not match the schema: {e.message} at {list(e.absolute_path)}"
        return None

    def _record(self, method, path, problem):
        if problem:
            self.errors.append(f"{method} {path}: {problem}")
        return problem


class Daemon:
    """A pocketcoderd in its own temp dir, started with --daemonize so start() returns when it is ready."""

    def __init__(self, spec=None, listen="127.0.0.1:0", config=None, tmp=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix="pc-it-")
        self.state = os.path.join(self.tmp, "state")
        self.run = os.path.join(self.tmp, "run")
        self.policies = os.path.join(self.tmp, "policies")
        self.log = os.path.join(self.tmp, "pocketcoderd.log")
        self.pidfile = os.path.join(self.run, "pocketcoderd.pid")
        self.socket = os.path.join(self.run, "api.sock")
        self.listen = listen
        # Sandboxes of every test daemon live under a cgroup parent of its own: a daemon removes groups
        # under its parent that it does not know, so daemons side by side must not share one.
        self.cgroup_parent = "pc-it-" + os.path.basename(self.tmp).split("-")[-1].lower().replace("_", "")
        self.nft_table = self.cgroup_parent.replace("-", "_")
        self.sandboxes = []  # made with create_sandbox(), deleted (purged) by cleanup()
        # No state reserve unless a test sets one: test directories may be on a small /tmp (the cgroup2 VM's
        # is a 1 GiB tmpfs, below the default reserve). A test's own lines come after these.
        prefix = f"cgroup_parent = {self.cgroup_parent}\nnft_table = {self.nft_table}\nstate_reserve = 0\n"
        self.config_prefix_lines = prefix.count("\n")
        self.config = prefix + (config or "")
        self.spec = spec
        self.pid = None
        self.port = None
        try:
            with open("/proc/sys/net/ipv4/ip_forward") as f:
                self._ip_forward = f.read().strip()
        except OSError:
            self._ip_forward = None
        os.makedirs(self.policies, exist_ok=True)
        src = os.path.join(SOURCE, "policies/defaults")
        if os.path.isdir(src):
            for f in os.listdir(src):
                shutil.copy(os.path.join(src, f), self.policies)

    def argv(self, *extra):
        a = [DAEMON, "--state-dir", self.state, "--runtime-dir", self.run, "--policy-dir", self.policies,
             "--log-file", self.log, "--pid-file", self.pidfile]
        if self.config is not None:
            path = os.path.join(self.tmp, "pocketcoder.conf")
            with open(path, "w") as f:
                f.write(self.config)
            a += ["--config", path]
        if self.listen:
            a += ["--listen", self.listen]
        return a + list(extra)

    def start(self):
        p = run_cmd(self.argv("--daemonize"), text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"pocketcoderd failed: {p.stderr}\n{self.logtext()}")
        with open(self.pidfile) as f:
            self.pid = int(f.read())
        if self.listen:
            ports = re.findall(r"\(port (\d+)\)", self.logtext())
            self.port = int(ports[-1])
        return self

    def logtext(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def nft_table_name(self):
        """The nftables table of this daemon's egress sandboxes: nft_table + "_" + its daemon id (from its log)."""
        ids = re.findall(r"daemon id ([0-9a-f]{6}):", self.logtext())
        return f"{self.nft_table}_{ids[-1]}" if ids else self.nft_table

    def _wait_exit(self, timeout=30):
        """Waits for our own child-less daemon to exit, using a pidfd (an event, not polling)."""
        import select

        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return True
        try:
            return bool(select.select([fd], [], [], timeout)[0])
        finally:
            os.close(fd)

    def stop(self, sig=signal.SIGTERM):
        if self.pid:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            self._wait_exit()
            self.pid = None

    def kill9(self):
        self.stop(signal.SIGKILL)

    def create_sandbox(self, name, **kw):
        """POST /v1/sandboxes over the unix socket; a sandbox it made is deleted again by cleanup()."""
        r = self.request("POST", "/v1/sandboxes", dict(name=name, **kw), via="unix")
        if r.status == 201:
            self.sandboxes.append(name)
        return r

    def sandbox_run(self, name, *cmd, timeout=120):
        """`pocketcoder sandbox run NAME -- CMD...` against this daemon, text in and out."""
        return self.cli("sandbox", "run", name, "--", *cmd, timeout=timeout)

    def cleanup(self):
        # Sandboxes outlive a stopped daemon: start it again to delete what the test made.
        if self.sandboxes and self.pid is None:
            try:
                self.start()
            except Exception:  # noqa: BLE001 - cleanup goes on (the state may be what the test broke)
                pass
        for name in self.sandboxes:
            try:
                self.request("DELETE", f"/v1/sandboxes/{name}?purge=true", via="unix", check=False)
            except Exception:  # noqa: BLE001 - cleanup goes on (the daemon may be gone)
                pass
        self.stop()
        # The nftables table of this daemon's egress sandboxes, should a failed test have left one.
        for table in {self.nft_table_name(), self.nft_table}:
            run_cmd(["nft", "delete", "table", "inet", table])
        # Mounts the daemon made below its directories (agent socket tmpfs, workspace images) and a failed
        # test left: lazily unmounted, deepest first, so that the directory goes.
        prefix = os.path.realpath(self.tmp) + "/"
        with open("/proc/self/mountinfo") as f:
            points = [ln.split()[4] for ln in f if ln.split()[4].startswith(prefix)]
        for point in sorted(points, key=len, reverse=True):
            run_cmd(["umount", "-l", point])
        shutil.rmtree(self.tmp, ignore_errors=True)
        # The group that held this daemon's sandboxes (cgroup_parent and the daemon id), also when the daemon
        # was killed rather than stopped: its empty groups, deepest first, in every hierarchy.
        roots = ["/sys/fs/cgroup"] + [os.path.join("/sys/fs/cgroup", x) for x in os.listdir("/sys/fs/cgroup")]
        for root in filter(os.path.isdir, roots):
            for name in os.listdir(root):
                if name.startswith(self.cgroup_parent + "-"):
                    for sub, _, _ in sorted(os.walk(os.path.join(root, name)), key=lambda x: -len(x[0])):
                        try:
                            os.rmdir(sub)
                        except OSError:
                            pass
        # An egress sandbox turns on IPv4 forwarding (the daemon never turns it off: other sandboxes may
        # need it); a test leaves the host as it found it.
        if self._ip_forward is not None:
            try:
                with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                    f.write(self._ip_forward)
            except OSError:
                pass

    def request(self, method, path, body=None, token=None, via="tcp", headers=None, raw=None, check=True):
        conn = UnixHTTPConnection(self.socket) if via == "unix" else \
            http.client.HTTPConnection("127.0.0.1", self.port, timeout=30 * SLOW)
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            resp = Response(r.status, r.headers, r.read().decode("utf-8", "replace"))
        finally:
            conn.close()
        if check and self.spec:
            self.spec.check(method, path, resp)
        return resp

    def cli_env(self, token=None, **extra):
        """The environment of a CLI that talks to this daemon (over TCP with `token`, else its unix socket)."""
        env = dict(os.environ)
        env.pop("POCKETCODER_URL", None)
        env.pop("POCKETCODER_TOKEN", None)
        env["POCKETCODER_SOCKET"] = self.socket
        if token:
            env["POCKETCODER_TOKEN"] = token
        env.update(extra)
        return env

    def cli(self, *args, token=None, input=None, text=True, timeout=120):
        return run_cmd([CLI, *args], env=self.cli_env(token), input=input, text=text, timeout=timeout)


class Foreground:
    """pocketcoderd as our child (its exit status is what some tests check), stderr captured, readiness from
    sd_notify's READY=1 on a socket of ours."""

    def __init__(self, d, *extra):
        self.nsock_path = os.path.join(d.tmp, f"notify-{secrets.token_hex(4)}")
        self.nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.nsock.bind(self.nsock_path)
        argv = d.argv(*extra)
        i = argv.index("--log-file")
        del argv[i:i + 2]  # stderr: sanitizer reports and the refusal go there
        self.err = open(os.path.join(d.tmp, "stderr"), "w+")
        env = dict(os.environ, NOTIFY_SOCKET=self.nsock_path)
        self.p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=self.err)
        self.pidfd = os.pidfd_open(self.p.pid)

    def ready(self, timeout=60):
        """True on READY=1, False when the daemon exited first (or at the deadline)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            r = select.select([self.nsock, self.pidfd], [], [], left)[0]
            if self.nsock in r and b"READY=1" in self.nsock.recv(4096):
                return True
            if self.pidfd in r:
                return False
        return False

    def wait(self, timeout=60):
        if not select.select([self.pidfd], [], [], timeout)[0]:
            self.p.kill()
        return self.p.wait()

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        os.close(self.pidfd)
        self.nsock.close()
        self.err.close()
        os.unlink(self.nsock_path)


def sanitizer_clean(text):
    """No AddressSanitizer, UBSan or LeakSanitizer report in a process' output."""
    return "AddressSanitizer" not in text and "runtime error:" not in text and "LeakSanitizer" not in text
