/* SPDX-License-Identifier: MIT */
/* Real sandboxes: create one, check tmux inside, run the static probe (tests/probe) in it as the agent and
 * as sandbox root, exec, adopt, stop; the API socket inside; what create() leaves behind when it fails.
 * Needs root, user namespaces and tmux; skips otherwise. */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <linux/nsfs.h>
#include <mqueue.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "common.h"
#include "isolate.h"
#include "tap.h"

#define UID_BASE  300000u
#define UID_COUNT 65536u

static char tmpdir[64], workspace[128], secret[128], abstract_name[64];
static int seccomp_fd = -EBADF, abstract_fd = -EBADF;
static isolate_sandbox *sb;

static const char *skip_reason(void)
{
        if (geteuid() != 0)
                return "needs root";
        if (access("/usr/bin/tmux", X_OK) < 0)
                return "needs /usr/bin/tmux";
        if (access("/proc/self/ns/user", F_OK) < 0)
                return "needs user namespaces";
        return NULL;
}

static int copy_file(const char *from, const char *to, mode_t mode, uid_t uid)
{
        _cleanup_free_ char *data = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n;
        int r;

        r = read_full_file(from, 64 * 1024 * 1024, &data, &n);
        if (r < 0)
                return r;
        fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0)
                return -errno;
        r = write_all(fd, data, n);
        if (r < 0)
                return r;
        if (fchown(fd, uid, uid) < 0 || fchmod(fd, mode) < 0)
                return -errno;
        return 0;
}

static isolate_sandbox_config config(const char *name)
{
        return (isolate_sandbox_config) {
                .name = name,
                .workspace = workspace,
                .uid_base = UID_BASE,
                .uid_count = UID_COUNT,
                .resolv_conf = "nameserver 127.0.0.1\n",
                .seccomp_fd = seccomp_fd,
        };
}

static char *mfree_str(char *p)
{
        free(p);
        return NULL;
}

/* Starts argv inside with stdout and stderr into a pipe; returns its read end and the process' pidfd. */
static int start_piped(isolate_sandbox *s, const char *const *argv, bool as_root, int *ret_pidfd, int *ret_out)
{
        _cleanup_close_ int r_end = -EBADF, w_end = -EBADF;
        _cleanup_(pc_error_freep) pc_error *err = NULL;
        pid_t pid;
        int p[2], r;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        r_end = p[0];
        w_end = p[1];
        isolate_exec_options o = { .argv = argv, .as_root = as_root, .stdin_fd = -1, .stdout_fd = w_end,
                                   .stderr_fd = w_end };
        r = isolate_sandbox_exec(s, &o, &pid, ret_pidfd, &err);
        if (r < 0) {
                printf("# exec failed: %s\n", err ? err->message : strerror(-r));
                return r;
        }
        *ret_out = TAKE_FD(r_end);
        return 0;
}

/* Runs argv inside, returns the exit status and stdout. */
static int run(isolate_sandbox *s, const char *const *argv, bool as_root, char **ret_out)
{
        _cleanup_close_ int r_end = -EBADF, pidfd = -EBADF;
        _cleanup_free_ char *out = NULL;
        siginfo_t si = {};
        int r;

        r = start_piped(s, argv, as_root, &pidfd, &r_end);
        if (r < 0)
                return r;
        r = read_full_fd(r_end, 1024 * 1024, &out, NULL);
        if (r < 0)
                return r;
        if (waitid(P_PIDFD, pidfd, &si, WEXITED) < 0)
                return -errno;
        if (ret_out)
                *ret_out = TAKE_PTR(out);
        return si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
}

TEST(setup)
{
        const char *why = skip_reason();
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_free_ char *probe = NULL, *dest = NULL;

        if (why)
                SKIP(why);
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/pc-isotest-XXXXXX");
        CHECK(mkdtemp(tmpdir) != NULL);
        snprintf(workspace, sizeof(workspace), "%s/ws", tmpdir);
        snprintf(secret, sizeof(secret), "%s/host-secret", tmpdir);
        CHECK(mkdir(workspace, 0755) == 0);
        CHECK(chown(workspace, UID_BASE + ISOLATE_AGENT_UID, UID_BASE + ISOLATE_AGENT_GID) == 0);
        CHECK(write_file_atomic(secret, "secret\n", 7, 0644) == 0);

        probe = strjoin(getenv("POCKETCODER_BUILD_DIR") ?: ".", "/tests/probe/pc-probe");
        dest = strjoin(workspace, "/pc-probe");
        CHECK(probe && dest && copy_file(probe, dest, 0755, UID_BASE + ISOLATE_AGENT_UID) == 0);

        /* A host abstract unix socket: the sandbox (own netns) must not reach it. */
        snprintf(abstract_name, sizeof(abstract_name), "pc-isotest-%d", (int) getpid());
        memcpy(sa.sun_path + 1, abstract_name, strlen(abstract_name));
        abstract_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(abstract_fd >= 0);
        CHECK(bind(abstract_fd, (struct sockaddr *) &sa,
                   (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abstract_name))) == 0);
        CHECK(listen(abstract_fd, 1) == 0);
}

TEST(seccomp_compile)
{
        _cleanup_(pc_error_freep) pc_error *err = NULL;
        struct stat st;
        int seals;

        CHECK_INTEQ(isolate_seccomp_compile(&seccomp_fd, &err), 0);
        if (seccomp_fd < 0)
                return;
        CHECK(fstat(seccomp_fd, &st) == 0);
        CHECK(st.st_size > 0 && st.st_size % 8 == 0);
        seals = fcntl(seccomp_fd, F_GET_SEALS);
        CHECK(seals >= 0 && (seals & F_SEAL_WRITE) && (seals & F_SEAL_SEAL));
        /* Sealed: nobody can alter the shared program. */
        CHECK(pwrite(seccomp_fd, "x", 1, 0) < 0 && errno == EPERM);
        CHECK(fcntl(seccomp_fd, F_GETFD) & FD_CLOEXEC);
        printf("# filter: %lld BPF instructions\n", (long long) st.st_size / 8);
}

TEST(start_rejects_bad_config)
{
        _cleanup_(pc_error_freep) pc_error *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;
        isolate_sandbox *s = NULL;
        isolate_sandbox_config c;

        c = config("Bad_Name");
        CHECK_INTEQ(isolate_sandbox_create(&c, &s, &e1), -EINVAL);
        CHECK(e1 && streq(e1->code, "invalid_name"));
        c = config("ok");
        c.uid_base = 0; /* host root must never be mapped */
        CHECK_INTEQ(isolate_sandbox_create(&c, &s, &e2), -EINVAL);
        c = config("ok");
        c.uid_count = 1000; /* the agent (1000) would be unmapped */
        CHECK_INTEQ(isolate_sandbox_create(&c, &s, &e3), -EINVAL);
        c = config("ok");
        c.workspace = "relative/ws";
        CHECK_INTEQ(isolate_sandbox_create(&c, &s, &e4), -EINVAL);
        CHECK(s == NULL);
}

TEST(create_names_failed_step_and_leaves_nothing)
{
        _cleanup_(pc_error_freep) pc_error *err = NULL;
        _cleanup_free_ char *fresh = NULL;
        isolate_limits limits = { .pids_max = 64 };
        isolate_sandbox *s = NULL;
        isolate_sandbox_config c;
        char parent[64];

        if (skip_reason())
                SKIP(skip_reason());
        /* The API socket directory is a regular file: the child refuses it after the workspace and the
         * cgroup were made; both go again. */
        snprintf(parent, sizeof(parent), "pc-isotest-f%d", (int) getpid());
        fresh = strjoin(tmpdir, "/fresh-ws");
        c = config("pc-fail");
        c.workspace = fresh;
        c.api_socket_dir = secret;
        c.cgroup_parent = parent;
        c.limits = &limits;
        CHECK_INTEQ(isolate_sandbox_create(&c, &s, &err), -ENOTDIR);
        CHECK(err && strstr(err->message, "open the API socket directory"));
        if (err)
                printf("# %s\n", err->message);
        CHECK(s == NULL);
        CHECK(access(fresh, F_OK) < 0 && errno == ENOENT);
        CHECK_INTEQ(isolate_cgroup_open(parent, "pc-fail", &(isolate_cgroup *){ NULL }), -ENOENT);
        (void) isolate_cgroup_destroy_parent(parent);
}

TEST(create_refuses_symlinked_workspace)
{
        _cleanup_(pc_error_freep) pc_error *err = NULL;
        _cleanup_free_ char *link = NULL, *target = NULL;
        isolate_sandbox *s = NULL;
        isolate_sandbox_config c;
        struct stat st;

        if (skip_reason())
                SKIP(skip_reason());
        /* Whoever could plant a symlink must not get create() to hand its target to the agent. */
        link = strjoin(tmpdir, "/ws-link");
        target = strjoin(tmpdir, "/not-a-workspace");
        CHECK(link && target && mkdir(target, 0700) == 0 && symlink(target, link) == 0);
        c = config("pc-link");
        c.workspace = link;
        CHECK_INTEQ(isolate_sandbox_create(&c, &s, &err), -ELOOP);
        CHECK(err && strstr(err->message, "symlink"));
        CHECK(s == NULL);
        CHECK(stat(target, &st) == 0 && st.st_uid == 0 && (st.st_mode & 07777) == 0700);
        CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode));
}

TEST(start)
{
        _cleanup_(pc_error_freep) pc_error *err = NULL;
        isolate_sandbox_config c = config("pc-test-a");
        uint64_t t0, t1;
        int r;

        if (skip_reason())
                SKIP(skip_reason());
        t0 = now_usec(CLOCK_MONOTONIC);
        r = isolate_sandbox_create(&c, &sb, &err);
        t1 = now_usec(CLOCK_MONOTONIC);
        if (err)
                printf("# %s\n", err->message);
        CHECK_INTEQ(r, 0);
        if (r < 0)
                return;
        printf("# start -> tmux ready: %.2f ms\n", (t1 - t0) / 1000.0);
        CHECK(isolate_sandbox_is_running(sb));
        CHECK(isolate_sandbox_pid(sb) > 1);
        CHECK(isolate_sandbox_starttime(sb) > 0);
        CHECK_STREQ(isolate_sandbox_name(sb), "pc-test-a");
        /* Its own session: the caller's terminal or death does not reach it. */
        CHECK_INTEQ(getsid(isolate_sandbox_pid(sb)), isolate_sandbox_pid(sb));
}

TEST(tmux_session)
{
        _cleanup_(pc_error_freep) pc_error *err = NULL;
        _cleanup_free_ char *out = NULL;
        const char *const ls[] = { "list-sessions", "-F", "#{session_name} #{pane_current_path}", NULL };
        const char *const has[] = { "has-session", "-t", "nope", NULL };

        if (!sb)
                SKIP("no sandbox");
        CHECK_INTEQ(isolate_sandbox_tmux(sb, ls, &out, &err), 0);
        CHECK_STREQ(out, "pc-test-a /workspace\n");
        CHECK_INTEQ(isolate_sandbox_tmux(sb, has, NULL, &err), 1);
}

TEST(exec_basics)
{
        _cleanup_(pc_error_freep) pc_error *err = NULL;
        _cleanup_free_ char *out = NULL, *out2 = NULL;
        const char *const echo[] = { "sh", "-c", "echo hello $USER $(id -u) $(pwd)", NULL };
        const char *const root_id[] = { "id", "-u", NULL };
        const char *const fail[] = { "false", NULL };
        const char *const missing[] = { "no-such-command-xyz", NULL };
        isolate_exec_options o = { .argv = missing, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1 };
        pid_t pid;
        int pidfd = -1;

        if (!sb)
                SKIP("no sandbox");
        CHECK_INTEQ(run(sb, echo, false, &out), 0);
        CHECK_STREQ(out, "hello agent 1000 /workspace\n");
        CHECK_INTEQ(run(sb, root_id, true, &out2), 0);
        CHECK_STREQ(out2, "0\n");
        CHECK_INTEQ(run(sb, fail, false, NULL), 1);
        /* A failing exec is reported with the step and leaves no process. */
        CHECK_INTEQ(isolate_sandbox_exec(sb, &o, &pid, &pidfd, &err), -ENOENT);
        CHECK(err && strstr(err->message, "execute the command"));
        CHECK_INTEQ(pidfd, -1);
        /* Leaves no process, not even a zombie: the failed process is our child in the sandbox's pid
         * namespace, and one left unreaped would keep the sandbox's init from exiting. Its failure may
         * reach us before the helper's message with its pidfd; many tries make that race likely. */
        for (int i = 0; i < 100; i++) {
                _cleanup_(pc_error_freep) pc_error *e2 = NULL;
                CHECK_INTEQ(isolate_sandbox_exec(sb, &o, &pid, &pidfd, &e2), -ENOENT);
        }
        siginfo_t si = {};
        CHECK(waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0);
        if (si.si_pid)
                printf("# unreaped child %d\n", (int) si.si_pid);
}

static void run_probe(bool as_root)
{
        _cleanup_free_ char *out = NULL;
        char hostpid[16], base[16];
        const char *argv[] = { "/workspace/pc-probe", as_root ? "--root" : "pc-test-a", NULL, NULL, NULL, NULL,
                               NULL, NULL };
        int i = 2, oks = 0, bad = 0, r;

        snprintf(hostpid, sizeof(hostpid), "%d", (int) getpid());
        snprintf(base, sizeof(base), "%u", UID_BASE);
        if (as_root)
                argv[i++] = "pc-test-a";
        argv[i++] = base;
        argv[i++] = hostpid;
        argv[i++] = abstract_name;
        argv[i++] = secret;

        r = run(sb, argv, as_root, &out);
        for (char *line = out ? strtok(out, "\n") : NULL; line; line = strtok(NULL, "\n")) {
                if (startswith(line, "ok "))
                        oks++;
                else if (startswith(line, "not ok ")) {
                        bad++;
                        printf("#   FAIL probe%s: %s\n", as_root ? " --root" : "", line);
                        continue;
                }
                if (getenv("PROBE_VERBOSE"))
                        printf("#   probe: %s\n", line);
        }
        printf("# probe%s: %d properties hold, %d failed\n", as_root ? " --root" : "", oks, bad);
        CHECK_INTEQ(r, 0);
        CHECK_INTEQ(bad, 0);
        CHECK(oks > 80);
}

TEST(probe_as_agent)
{
        if (!sb)
                SKIP("no sandbox");
        run_probe(false);
}

TEST(probe_as_sandbox_root)
{
        if (!sb)
                SKIP("no sandbox");
        run_probe(true);
}

TEST(adopt)
{
        isolate_sandbox_config c = config("pc-test-a");
        isolate_sandbox *a = NULL;
        _cleanup_free_ char *out = NULL;
        const char *const ls[] = { "list-sessions", "-F", "#{session_name}", NULL };

        if (!sb)
                SKIP("no sandbox");
        /* A wrong start time means a reused pid: refused. */
        CHECK_INTEQ(isolate_sandbox_adopt(&c, isolate_sandbox_pid(sb), isolate_sandbox_starttime(sb) + 1, &a),
                    -ESRCH);
        CHECK_INTEQ(isolate_sandbox_adopt(&c, isolate_sandbox_pid(sb), isolate_sandbox_starttime(sb), &a), 0);
        if (!a)
                return;
        CHECK_INTEQ(isolate_sandbox_pid(a), isolate_sandbox_pid(sb));
        CHECK_INTEQ(isolate_sandbox_tmux(a, ls, &out, NULL), 0);
        CHECK_STREQ(out, "pc-test-a\n");
        a = isolate_sandbox_free(a);
        CHECK(isolate_sandbox_is_running(sb)); /* freeing an adopted handle does not stop it */
}

TEST(stop)
{
        isolate_sandbox_config c = config("pc-test-a");
        isolate_sandbox *a = NULL;
        pid_t pid;
        uint64_t st, t0;

        if (!sb)
                SKIP("no sandbox");
        pid = isolate_sandbox_pid(sb);
        st = isolate_sandbox_starttime(sb);
        t0 = now_usec(CLOCK_MONOTONIC);
        CHECK_INTEQ(isolate_sandbox_stop(sb, 0), 0);
        printf("# stop: %.2f ms\n", (now_usec(CLOCK_MONOTONIC) - t0) / 1000.0);
        CHECK(!isolate_sandbox_is_running(sb));
        CHECK(kill(pid, 0) < 0 && errno == ESRCH); /* reaped */
        CHECK_INTEQ(isolate_sandbox_adopt(&c, pid, st, &a), -ESRCH);
        CHECK_INTEQ(isolate_sandbox_stop(sb, 0), 0); /* idempotent */
        sb = isolate_sandbox_free(sb);
}

TEST(start_latency)
{
        enum { N = 20 };
        uint64_t t[N];
        int ok = 0;

        if (skip_reason())
                SKIP(skip_reason());
        for (int i = 0; i < N; i++) {
                _cleanup_(pc_error_freep) pc_error *err = NULL;
                isolate_sandbox_config c = config("pc-test-lat");
                isolate_sandbox *s = NULL;
                uint64_t t0 = now_usec(CLOCK_MONOTONIC);

                if (isolate_sandbox_create(&c, &s, &err) < 0) {
                        printf("# %s\n", err ? err->message : "start failed");
                        continue;
                }
                t[ok++] = now_usec(CLOCK_MONOTONIC) - t0;
                CHECK_INTEQ(isolate_sandbox_stop(s, 0), 0);
                isolate_sandbox_free(s);
        }
        CHECK_INTEQ(ok, N);
        for (int i = 1; i < ok; i++)
                for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
                        uint64_t x = t[j];
                        t[j] = t[j - 1];
                        t[j - 1] = x;
                }
        if (ok > 0)
                printf("# start->ready over %d sandboxes: p50 %.2f ms, max %.2f ms\n", ok, t[ok / 2] / 1000.0,
                       t[ok - 1] / 1000.0);
}

TEST(cgroup_and_network)
{
        _cleanup_(pc_error_freep) pc_error *err = NULL;
        _cleanup_free_ char *out = NULL, *procs = NULL, *path = NULL, *cgpath = NULL;
        isolate_limits limits = { .memory_max = 256ULL << 20, .pids_max = 64 };
        isolate_net_config net = { .mode = ISOLATE_NET_LOOPBACK };
        isolate_sandbox_config c = config("pc-test-cg");
        isolate_sandbox *s = NULL;
        char parent[64], pidstr[16];
        const char *const lo[] = { "cat", "/proc/net/if_inet6", NULL };
        const char *const self_cg[] = { "cat", "/proc/self/cgroup", NULL };
        bool v2 = false;

        if (skip_reason())
                SKIP(skip_reason());
        snprintf(parent, sizeof(parent), "pc-isotest-%d", (int) getpid());
        c.cgroup_parent = parent;
        c.limits = &limits;
        c.daemon_id = "0a1b2c";
        c.net = &net;
        CHECK_INTEQ(isolate_sandbox_create(&c, &s, &err), 0);
        if (err)
                printf("# %s\n", err->message);
        if (s) {
                /* init is in the sandbox's cgroup PARENT-ID/NAME, and so is every exec'd process. */
                cgpath = strdup(isolate_sandbox_cgroup_path(s));
                CHECK(cgpath && strstr(cgpath, "-0a1b2c/pc-test-cg"));
                v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) >= 0 && !strstr(cgpath, "/memory/");
                path = strjoin(cgpath, "/cgroup.procs");
                snprintf(pidstr, sizeof(pidstr), "%d\n", (int) isolate_sandbox_pid(s));
                CHECK(path && read_full_file(path, 65536, &procs, NULL) >= 0 && procs && strstr(procs, pidstr));
                /* The cgroup namespace is rooted at the sandbox's group: it sees "/" and nothing above
                 * (v2: the one line "0::/"; v1: the memory hierarchy's line). */
                CHECK_INTEQ(run(s, self_cg, false, &out), 0);
                CHECK(out && (v2 ? streq(out, "0::/\n") : !!strstr(out, ":memory:/\n")));
                if (out && v2 && !streq(out, "0::/\n"))
                        printf("# /proc/self/cgroup inside: %s", out);
                out = mfree_str(out);
                /* loopback mode: lo is up, so it has ::1 (absent while lo is down). */
                CHECK_INTEQ(run(s, lo, false, &out), 0);
                CHECK(out && strstr(out, " lo"));
        }
        /* destroy: processes, then the group; twice is fine, and so is without a handle. */
        CHECK_INTEQ(isolate_sandbox_destroy(&c, s, 0, &err), 0);
        CHECK(s && !isolate_sandbox_is_running(s));
        CHECK(cgpath && access(cgpath, F_OK) < 0 && errno == ENOENT);
        CHECK_INTEQ(isolate_sandbox_destroy(&c, NULL, 0, &err), 0);
        s = isolate_sandbox_free(s);
        /* The group the sandboxes' groups are in carries the daemon id. */
        snprintf(parent, sizeof(parent), "pc-isotest-%d-0a1b2c", (int) getpid());
        CHECK_INTEQ(isolate_cgroup_destroy_parent(parent), 0);
        CHECK(access(workspace, F_OK) == 0); /* kept without ISOLATE_DESTROY_PURGE_WORKSPACE */
}

/* The daemon's socket for the agent: bound on the host, reachable inside at ISOLATE_API_SOCKET, also
 * with no network at all; the agent cannot remove or replace it. */
static void api_socket_check(isolate_net_mode mode)
{
        _cleanup_(pc_error_freep) pc_error *err = NULL;
        _cleanup_free_ char *sockpath = NULL, *sockdir = NULL, *out = NULL, *out2 = NULL;
        _cleanup_close_ int lfd = -EBADF, cfd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        isolate_net_config net = { .mode = mode };
        isolate_sandbox_config c = config("pc-test-api");
        isolate_sandbox *s = NULL;
        struct pollfd p;
        char buf[64] = "";
        ssize_t n;
        const char *const client[] = {
                "python3", "-c",
                "import socket; s = socket.socket(socket.AF_UNIX); s.connect('" ISOLATE_API_SOCKET "'); "
                "s.sendall(b'hello from the agent'); s.close()",
                NULL
        };
        const char *const tamper[] = {
                "sh", "-c",
                "stat -c '%u %a' /run/pocketcoder; rm -f " ISOLATE_API_SOCKET " 2>/dev/null && echo removed; "
                "{ echo x > /run/pocketcoder/other; } 2>/dev/null && echo wrote; test -S " ISOLATE_API_SOCKET " && echo socket",
                NULL
        };

        /* The daemon's layout: a root-owned 0755 directory per sandbox, its socket "api.sock" in it. */
        sockdir = strjoin(tmpdir, "/api");
        CHECK(sockdir && (mkdir(sockdir, 0755) == 0 || errno == EEXIST));
        sockpath = strjoin(tmpdir, "/api/api.sock");
        (void) unlink(sockpath);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(lfd >= 0 && sockpath && strlen(sockpath) < sizeof(sa.sun_path));
        strcpy(sa.sun_path, sockpath);
        CHECK(bind(lfd, (struct sockaddr *) &sa, sizeof(sa)) == 0 && listen(lfd, 4) == 0);
        CHECK(chmod(sockpath, 0666) == 0); /* the agent's uid needs write permission to connect */
        c.api_socket_dir = sockdir;
        c.net = &net;
        CHECK_INTEQ(isolate_sandbox_create(&c, &s, &err), 0);
        if (err)
                printf("# %s\n", err->message);
        if (!s)
                return;
        CHECK_INTEQ(run(s, client, false, &out), 0);
        if (out && *out)
                printf("# client: %s", out);
        p = (struct pollfd){ .fd = lfd, .events = POLLIN };
        CHECK(poll(&p, 1, 5000) == 1);
        cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        CHECK(cfd >= 0);
        n = cfd >= 0 ? read(cfd, buf, sizeof(buf) - 1) : -1;
        CHECK(n == (ssize_t) strlen("hello from the agent") && streq(buf, "hello from the agent"));
        CHECK_INTEQ(run(s, tamper, false, &out2), 0);
        /* Host root owns the directory: unmapped inside, so neither the agent nor sandbox root can write. */
        CHECK_STREQ(out2, "65534 755\nsocket\n");
        CHECK_INTEQ(isolate_sandbox_destroy(&c, s, 0, NULL), 0);
        s = isolate_sandbox_free(s);
        (void) unlink(sockpath);
        (void) rmdir(sockdir);
}

TEST(api_socket_loopback)
{
        if (skip_reason())
                SKIP(skip_reason());
        api_socket_check(ISOLATE_NET_LOOPBACK);
}

TEST(api_socket_network_none)
{
        if (skip_reason())
                SKIP(skip_reason());
        api_socket_check(ISOLATE_NET_NONE);
}

/* Starts argv inside in the background and reads its first line of output (it reports, then waits). */
static int start_holder(isolate_sandbox *s, const char *const *argv, bool as_root, int *ret_pidfd, char **ret_line)
{
        _cleanup_close_ int r_end = -EBADF;
        char buf[512];
        size_t n = 0;
        int r;

        r = start_piped(s, argv, as_root, ret_pidfd, &r_end);
        if (r < 0)
                return r;
        while (n < sizeof(buf) - 1) {
                ssize_t k = read(r_end, buf + n, 1);
                if (k <= 0 || buf[n] == '\n')
                        break;
                n++;
        }
        buf[n] = 0;
        *ret_line = strdup(buf);
        return *ret_line ? 0 : -ENOMEM;
}

static void holder_kill(int pidfd)
{
        (void) syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        (void) waitid(P_PIDFD, (id_t) pidfd, NULL, WEXITED);
        safe_close(pidfd);
}

/* The kernel's per-user counts of everything inside a sandbox are charged to the owner of its user
 * namespace: the sandbox's own host uid, never host root. The agent takes all the inotify instances and
 * POSIX message queue bytes it can get and holds them; host root is unaffected. */
TEST(kernel_counts_not_charged_to_host_root)
{
        _cleanup_(pc_error_freep) pc_error *err = NULL;
        _cleanup_free_ char *line = NULL;
        isolate_sandbox_config c = config("pc-test-q");
        isolate_sandbox *s = NULL;
        int holder = -EBADF, fds[16], n = 0, held = -1, held_errno = 0, queues = -1, queues_errno = 0;
        char qname[64], nslimit[32] = "", inlimit[32] = "";
        const char *const hold[] = {
                "python3", "-c",
                "import ctypes, os, signal\n"
                "libc = ctypes.CDLL(None, use_errno=True)\n"
                "n = 0\n"
                "while libc.inotify_init1(0o2000000) >= 0: n += 1\n"
                "e1 = ctypes.get_errno()\n"
                "libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]\n"
                "q = 0\n"
                "while q < 1000 and libc.mq_open(b'/pc-q%d' % q, os.O_CREAT | os.O_RDWR, 0o600, None) >= 0: q += 1\n"
                "e2 = ctypes.get_errno()\n"
                "lim = [open('/proc/sys/user/' + f).read().strip() for f in ('max_inotify_instances', 'max_user_namespaces')]\n"
                "print(n, e1, q, e2, *lim, flush=True)\n"
                "signal.pause()\n",
                NULL
        };

        if (skip_reason())
                SKIP(skip_reason());
        CHECK_INTEQ(isolate_sandbox_create(&c, &s, &err), 0);
        if (err)
                printf("# %s\n", err->message);
        if (!s)
                return;

        /* The user namespace belongs to the sandbox's base uid. */
        {
                char path[64];
                uid_t owner = (uid_t) -1;
                snprintf(path, sizeof(path), "/proc/%d/ns/user", (int) isolate_sandbox_pid(s));
                _cleanup_close_ int ns = open(path, O_RDONLY | O_CLOEXEC);
                CHECK(ns >= 0 && ioctl(ns, NS_GET_OWNER_UID, &owner) == 0);
                CHECK_INTEQ((long long) owner, (long long) UID_BASE);
        }

        CHECK_INTEQ(start_holder(s, hold, false, &holder, &line), 0);
        if (line)
                printf("# agent holds: %s (inotify instances, errno, queues, errno, ns limits)\n", line);
        CHECK(line && sscanf(line, "%d %d %d %d %31s %31s", &held, &held_errno, &queues, &queues_errno, inlimit,
                             nslimit) == 6);
        CHECK(held >= 100 && held <= 128 && held_errno == EMFILE);
        CHECK(queues >= 1 && queues < 1000 && queues_errno == EMFILE);
        CHECK_STREQ(inlimit, "128");
        CHECK_STREQ(nslimit, "0");

        /* Host root still gets inotify instances and a message queue of the default size. */
        for (n = 0; n < (int) ELEMENTSOF(fds); n++) {
                fds[n] = inotify_init1(IN_CLOEXEC);
                if (fds[n] < 0)
                        break;
        }
        CHECK_INTEQ(n, (int) ELEMENTSOF(fds));
        while (n > 0)
                safe_close(fds[--n]);
        snprintf(qname, sizeof(qname), "/pc-isotest-%d", (int) getpid());
        mqd_t q = mq_open(qname, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, NULL);
        if (q == (mqd_t) -1)
                printf("# host root's mq_open: %m\n");
        CHECK(q != (mqd_t) -1);
        if (q != (mqd_t) -1) {
                mq_close(q);
                mq_unlink(qname);
        }

        if (holder >= 0)
                holder_kill(holder);
        CHECK_INTEQ(isolate_sandbox_destroy(&c, s, 0, NULL), 0);
        s = isolate_sandbox_free(s);
}

static bool ends_with(const char *s, const char *suffix)
{
        size_t n = strlen(s), k = strlen(suffix);
        return k > 0 && k <= n && streq(s + n - k, suffix);
}

static bool has_cap(int cap)
{
        _cleanup_free_ char *s = NULL;
        const char *p;
        uint64_t eff;

        if (read_full_file("/proc/self/status", 65536, &s, NULL) < 0 || !(p = strstr(s, "CapEff:\t")))
                return false;
        eff = strtoull(p + 8, NULL, 16);
        return eff & (UINT64_C(1) << cap);
}

/* Runs a shell command inside and returns its output with the exit status appended as "=STATUS". */
static char *sh(isolate_sandbox *s, const char *cmd, bool as_root)
{
        const char *const argv[] = { "sh", "-c", cmd, NULL };
        _cleanup_free_ char *out = NULL;
        char *ret = NULL;
        int r = run(s, argv, as_root, &out);

        if (asprintf(&ret, "%s=%d", out ?: "", r) < 0)
                return NULL;
        return ret;
}

static bool read_cg_u64(const char *cgpath, const char *from, const char *to, const char *file, uint64_t *ret)
{
        _cleanup_free_ char *dir = NULL, *path = NULL, *s = NULL;
        const char *p = strstr(cgpath, from);

        if (!p || asprintf(&dir, "%.*s%s%s", (int) (p - cgpath), cgpath, to, p + strlen(from)) < 0)
                return false;
        path = strjoin(dir, "/", file);
        return path && read_full_file(path, 4096, &s, NULL) >= 0 && parse_uint64(strstrip(s), ret) >= 0;
}

/* The limits every sandbox gets besides memory/pids/cpus: a hard RLIMIT_NOFILE nothing inside can raise,
 * sized /tmp and /dev/shm (ENOSPC before the memory limit), init out of the OOM killer's reach (a hog is
 * killed, the sandbox keeps running), and a CPU weight on its cgroup. */
TEST(limits_inside)
{
        _cleanup_(pc_error_freep) pc_error *err = NULL;
        isolate_limits limits = { .memory_max = 128ULL << 20, .pids_max = 64, .cpu_weight = 50 };
        isolate_sandbox_config c = config("pc-test-lim");
        const char *const ls[] = { "list-sessions", "-F", "#{session_name}", NULL };
        isolate_sandbox *s = NULL;
        char parent[64];
        uint64_t w = 0;
        bool v2;

        if (skip_reason())
                SKIP(skip_reason());
        snprintf(parent, sizeof(parent), "pc-isotest-l%d", (int) getpid());
        c.cgroup_parent = parent;
        c.limits = &limits;
        c.nofile_max = 256;
        CHECK_INTEQ(isolate_sandbox_create(&c, &s, &err), 0);
        if (err)
                printf("# %s\n", err->message);
        if (!s)
                goto out;

        /* RLIMIT_NOFILE: 256 hard and soft, for the agent, sandbox root and tmux's panes alike. */
        {
                _cleanup_free_ char *a = sh(s, "ulimit -Hn; ulimit -Sn; ulimit -Hn 257 2>/dev/null && echo raised; "
                                              "python3 -c 'import os\nn = 0\ntry:\n  while True: os.open(\"/dev/null\", 0); n += 1\n"
                                              "except OSError as e: print(n < 256, e.errno)'", false);
                _cleanup_free_ char *r = sh(s, "ulimit -Hn 257 2>/dev/null && echo raised; "
                                              "python3 -c 'import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))' "
                                              "2>/dev/null && echo raised; ulimit -Hn", true);
                _cleanup_free_ char *p = sh(s, "grep 'open files' /proc/1/limits | tr -s ' '", true);
                CHECK_STREQ(a, "256\n256\nTrue 24\n=0");
                CHECK_STREQ(r, "256\n=0");
                CHECK_STREQ(p, "Max open files 256 256 files \n=0");
        }
        /* /tmp and /dev/shm: a quarter of the memory limit each; filling them is ENOSPC. */
        {
                _cleanup_free_ char *t = sh(s, "for d in /tmp /dev/shm; do df -B1 --output=size $d | tail -1 | tr -d ' '; "
                                              "dd if=/dev/zero of=$d/fill bs=1M count=40 2>&1 | grep -o 'No space left'; "
                                              "rm -f $d/fill; done", false);
                CHECK_STREQ(t, "33554432\nNo space left\n33554432\nNo space left\n=0");
        }
        /* OOM: init is exempt (where this host lets root lower a score: CAP_SYS_RESOURCE) or at the daemon's
         * score, the agent's processes are preferred; a hog is killed and the sandbox runs on. */
        {
                char expect[64];
                int own = 0;
                _cleanup_free_ char *own_s = NULL;
                if (read_full_file("/proc/self/oom_score_adj", 64, &own_s, NULL) >= 0)
                        own = atoi(own_s);
                snprintf(expect, sizeof(expect), "%d\n%d\n=0", has_cap(CAP_SYS_RESOURCE) ? -1000 : own,
                         ISOLATE_OOM_SCORE_ADJ);
                _cleanup_free_ char *o = sh(s, "cat /proc/1/oom_score_adj /proc/self/oom_score_adj", false);
                _cleanup_free_ char *hog = sh(s, "exec 2>/dev/null; python3 -c 'x = bytearray(512 << 20); print(len(x))'; echo $?", false);
                _cleanup_free_ char *out = NULL;
                CHECK_STREQ(o, expect);
                /* tmux's server below its windows: the first one, and those made later (hooks). */
                _cleanup_free_ char *tm = sh(s, "T='tmux -S " ISOLATE_TMUX_SOCKET "'; $T new-window -d 'sleep 60'; "
                                               "$T split-window -d -t :1 'sleep 60'; "
                                               "for p in $($T list-panes -a -F '#{pane_pid}'); do cat /proc/$p/oom_score_adj; done; "
                                               "cat /proc/$($T display -p '#{pid}')/oom_score_adj; $T kill-window -t :1", false);
                CHECK_STREQ(tm, "500\n500\n500\n0\n=0");
                CHECK_STREQ(hog, "137\n=0");
                CHECK(isolate_sandbox_is_running(s));
                CHECK_INTEQ(isolate_sandbox_tmux(s, ls, &out, NULL), 0);
                CHECK_STREQ(out, "pc-test-lim\n");
        }
        /* CPU weight on the sandbox's group: v2 cpu.weight, v1 cpu.shares = weight * 1024 / 100. */
        v2 = !strstr(isolate_sandbox_cgroup_path(s), "/memory/");
        if (v2)
                CHECK(read_cg_u64(isolate_sandbox_cgroup_path(s), "/", "/", "cpu.weight", &w) && w == 50);
        else
                CHECK(read_cg_u64(isolate_sandbox_cgroup_path(s), "/memory/", "/cpu/", "cpu.shares", &w) && w == 512);
        printf("# cpu %s: %" PRIu64 "\n", v2 ? "weight" : "shares", w);

out:
        CHECK_INTEQ(isolate_sandbox_destroy(&c, s, 0, NULL), 0);
        s = isolate_sandbox_free(s);
        (void) isolate_cgroup_destroy_parent(parent);
}

/* The host's kernel command line stays outside, and so do host paths of our making (the test's directory
 * stands for the daemon's state and runtime directories), except in the "root" field of the /workspace and
 * /run/pocketcoder bind mounts: the kernel shows a bind's source path within its filesystem there
 * (docs/security.md). (Image mode's overlay: test_image.py.) */
TEST(no_host_paths_inside)
{
        _cleanup_(pc_error_freep) pc_error *err = NULL;
        _cleanup_free_ char *sockdir = NULL, *mi = NULL, *cmdline = NULL;
        isolate_sandbox_config c = config("pc-test-paths");
        const char *const cat_mi[] = { "cat", "/proc/self/mountinfo", NULL };
        const char *const cat_cmdline[] = { "sh", "-c", "wc -c < /proc/cmdline; cat /proc/cmdline", NULL };
        isolate_sandbox *s = NULL;

        if (skip_reason())
                SKIP(skip_reason());
        sockdir = strjoin(tmpdir, "/api-paths");
        CHECK(sockdir && mkdir(sockdir, 0755) == 0);
        c.api_socket_dir = sockdir;
        CHECK_INTEQ(isolate_sandbox_create(&c, &s, &err), 0);
        if (err)
                printf("# %s\n", err->message);
        if (!s)
                return;
        CHECK_INTEQ(run(s, cat_mi, false, &mi), 0);
        CHECK(mi && strstr(mi, " /workspace ") && strstr(mi, " /run/pocketcoder "));
        /* tmpdir is /tmp/pc-isotest-XXXXXX; its last component is in every path of ours. */
        for (char *line = mi ? strtok(mi, "\n") : NULL; line; line = strtok(NULL, "\n")) {
                char root[512] = "", point[512] = "";
                if (!strstr(line, tmpdir + strlen("/tmp/")))
                        continue;
                CHECK(sscanf(line, "%*s %*s %*s %511s %511s", root, point) == 2 &&
                      ((streq(point, "/workspace") && ends_with(workspace, root)) ||
                       (streq(point, "/run/pocketcoder") && ends_with(sockdir, root))));
                if (!strstr(line, " /workspace ") && !strstr(line, " /run/pocketcoder "))
                        printf("# mountinfo: %s\n", line);
                CHECK(!strstr(strstr(line, " - ") ?: "", tmpdir + strlen("/tmp/")));
        }
        CHECK_INTEQ(run(s, cat_cmdline, false, &cmdline), 0);
        CHECK_STREQ(cmdline, "0\n");
        CHECK_INTEQ(isolate_sandbox_destroy(&c, s, 0, NULL), 0);
        s = isolate_sandbox_free(s);
        (void) rmdir(sockdir);
}

/* A 12,000-level nest with symlinks planted at several depths (to a directory outside with a file in it,
 * and to /): removed with a limit of 16 open fds, nothing outside touched. */
TEST(remove_tree_deep_bounded_fds)
{
        char deep[160], outside[160], victim[192];
        struct rlimit old, low;
        _cleanup_close_ int fd = -EBADF;

        if (!tmpdir[0])
                SKIP("no temporary directory (setup skipped)");
        snprintf(deep, sizeof(deep), "%s/deep", tmpdir);
        snprintf(outside, sizeof(outside), "%s/outside", tmpdir);
        snprintf(victim, sizeof(victim), "%s/victim", outside);
        CHECK(mkdir(outside, 0755) == 0);
        CHECK(write_file_atomic(victim, "keep\n", 5, 0644) == 0);
        CHECK(mkdir(deep, 0755) == 0);
        fd = open(deep, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        CHECK(fd >= 0);
        for (int i = 0; i < 12000; i++) {
                int sub;

                if (i % 3000 == 5) {
                        CHECK(symlinkat(outside, fd, "link-out") == 0);
                        CHECK(symlinkat("/", fd, "link-root") == 0);
                }
                CHECK(mkdirat(fd, "d", 0755) == 0);
                sub = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                CHECK(sub >= 0);
                safe_close(fd);
                fd = sub;
        }
        CHECK(symlinkat(outside, fd, "bottom-link") == 0);
        fd = safe_close(fd);

        CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
        low = (struct rlimit){ .rlim_cur = 16, .rlim_max = old.rlim_max };
        CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
        int r = isolate_remove_tree(deep);
        CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
        CHECK_INTEQ(r, 0);
        CHECK(access(deep, F_OK) < 0 && errno == ENOENT);
        CHECK(access(victim, F_OK) == 0);
        CHECK(access("/usr/bin", F_OK) == 0);
}

/* A file that cannot be removed (immutable) makes the removal fail, and says so. */
TEST(remove_tree_reports_failure)
{
        char dir[160], file[192];
        _cleanup_close_ int fd = -EBADF;
        int flags = FS_IMMUTABLE_FL;

        if (!tmpdir[0])
                SKIP("no temporary directory (setup skipped)");
        snprintf(dir, sizeof(dir), "%s/stuck", tmpdir);
        snprintf(file, sizeof(file), "%s/immutable", dir);
        CHECK(mkdir(dir, 0755) == 0);
        CHECK(write_file_atomic(file, "x", 1, 0644) == 0);
        fd = open(file, O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0)
                SKIP("the filesystem of /tmp has no immutable flag");
        CHECK(isolate_remove_tree(dir) == -EPERM);
        CHECK(access(file, F_OK) == 0);
        flags = 0;
        CHECK(ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0);
        CHECK_INTEQ(isolate_remove_tree(dir), 0);
}

TEST(cleanup)
{
        if (!tmpdir[0])
                SKIP("nothing to clean");
        safe_close(abstract_fd);
        safe_close(seccomp_fd);
        CHECK_INTEQ(isolate_remove_tree(tmpdir), 0);
        CHECK(access(tmpdir, F_OK) < 0 && errno == ENOENT);
}

TAP_MAIN()
