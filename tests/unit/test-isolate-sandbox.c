/* SPDX-License-Identifier: MIT */
/* Real sandboxes: create one, check tmux inside, run the static probe (tests/probe) in it as the agent and
 * as sandbox root, exec, adopt, stop; the API socket inside; what create() leaves behind when it fails.
 * Needs root, user namespaces and tmux; skips otherwise. */
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
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

/* Runs argv inside, returns the exit status and stdout. */
static int run(isolate_sandbox *s, const char *const *argv, bool as_root, char **ret_out)
{
        _cleanup_close_ int r_end = -EBADF, w_end = -EBADF, pidfd = -EBADF;
        _cleanup_(pc_error_freep) pc_error *err = NULL;
        _cleanup_free_ char *out = NULL;
        siginfo_t si = {};
        pid_t pid;
        int p[2], r;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        r_end = p[0];
        w_end = p[1];
        isolate_exec_options o = { .argv = argv, .as_root = as_root, .stdin_fd = -1, .stdout_fd = w_end,
                                   .stderr_fd = w_end };
        r = isolate_sandbox_exec(s, &o, &pid, &pidfd, &err);
        if (r < 0) {
                printf("# exec failed: %s\n", err ? err->message : strerror(-r));
                return r;
        }
        w_end = safe_close(w_end);
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
