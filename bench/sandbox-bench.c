/* SPDX-License-Identifier: MIT */
/* sandbox-bench: the timer behind bench/sandbox.sh. Creates many sandboxes one way or another and prints
 * latency percentiles (nearest rank) of each step. Several drivers, so that the same run compares them:
 *
 *   sandbox-bench lib   --runs N --dir DIR [--parent NAME]
 *       isolate_sandbox_create() directly, as the daemon does it (workspace, cgroup, namespaces, rootfs,
 *       seccomp, tmux), then isolate_sandbox_destroy() (processes, cgroup): the library's own cost.
 *   sandbox-bench bwrap --runs N --dir DIR [--seccomp] [--cgroup NAME]
 *       bubblewrap with comparable isolation running `tmux new-session -d` (bwrap returns when tmux's
 *       client does, i.e. when the session exists); optionally our seccomp filter and a per-sandbox
 *       cgroup with the same limits, then SIGKILL of its namespace init.
 *   sandbox-bench crun  --runs N --dir DIR
 *       crun running `sh -c 'tmux new-session -d ... && echo ready && exec sleep infinity'` from an OCI bundle
 *       per sandbox (user, pid, net, uts, ipc, mount, cgroup namespaces; host /usr and /etc read-only), until
 *       the "ready" line; then crun kill + reap + crun delete.
 *   sandbox-bench firejail --runs N --dir DIR
 *       firejail, started as uid 1000 as it is meant to be, running the same shell line; then SIGKILL of its
 *       namespace init and reap of firejail. DIR must be reachable by uid 1000.
 *   sandbox-bench tmux  --runs N --dir DIR
 *       plain `tmux new-session -d` on the host: the floor every tmux-based sandbox pays.
 *   sandbox-bench api   --socket PATH --op create|stop|delete --prefix P --runs N [--clients C]
 *       the daemon's HTTP API over its unix socket, C clients in parallel.
 *
 * Everything a driver starts, it removes before it exits, also on SIGINT/SIGTERM (the loops stop early
 * and clean up). Exit status 0 only when every operation succeeded. */
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "common.h"
#include "isolate.h"

#define UID_BASE_LIB    0x90000000u /* away from the daemon's default range (1 << 30) */
#define UID_BASE_CRUN   0xa0000000u /* and from the library's (runs * 65536 above it) */
#define UID_COUNT       65536u
#define MEMORY_MAX      (1ULL << 30) /* the daemon's defaults: 1 GiB, swap off, 512 pids */
#define PIDS_MAX        512
#define READY_WAIT_MS   10000 /* a peer that has not printed "ready" by then has failed */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
        interrupted = 1;
}

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct_ms(const uint64_t *v, size_t n, double p)
{
        size_t rank = (size_t) (p * (double) n + 0.999999);
        return n == 0 ? 0 : (double) v[MIN(MAX(rank, 1), n) - 1] / 1e6;
}

static void print_stats(const char *label, uint64_t *v, size_t n)
{
        double sum = 0;

        if (n == 0) {
                printf("%-34s n=0\n", label);
                return;
        }
        qsort(v, n, sizeof(*v), cmp_u64);
        for (size_t i = 0; i < n; i++)
                sum += (double) v[i] / 1e6;
        printf("%-34s n=%-4zu p50 %8.2f ms  p95 %8.2f ms  min %8.2f  max %8.2f  mean %8.2f\n", label, n,
               pct_ms(v, n, 0.50), pct_ms(v, n, 0.95), (double) v[0] / 1e6, (double) v[n - 1] / 1e6, sum / (double) n);
        fflush(stdout);
}

static int make_workspace(const char *dir, const char *name, uid_t owner, char **ret)
{
        _cleanup_free_ char *ws = strjoin(dir, "/", name);
        int r;

        if (!ws)
                return -ENOMEM;
        r = mkdir_p(ws, 0750);
        if (r < 0)
                return r;
        if (chown(ws, owner, owner) < 0)
                return -errno;
        *ret = TAKE_PTR(ws);
        return 0;
}

/* ---- lib: the isolate library, as the daemon drives it ---- */

typedef struct lib_slot {
        isolate_sandbox *sb;
        char *ws;
        char name[32];
} lib_slot;

static int run_lib(unsigned runs, const char *dir, const char *parent)
{
        _cleanup_free_ lib_slot *slots = calloc(runs, sizeof(lib_slot));
        _cleanup_free_ uint64_t *create = calloc(runs, sizeof(uint64_t)), *stop = calloc(runs, sizeof(uint64_t));
        _cleanup_close_ int seccomp_fd = -EBADF;
        const isolate_limits limits = { .memory_max = MEMORY_MAX, .pids_max = PIDS_MAX, .cpu_period_us = 100000 };
        const isolate_net_config net = { .mode = ISOLATE_NET_NONE };
        uint64_t mem_sum = 0;
        size_t started = 0, stopped = 0;
        int ret = 0, r;

        if (!slots || !create || !stop)
                return -ENOMEM;
        {
                _cleanup_pc_error_ pc_error *err = NULL;
                r = isolate_seccomp_compile(&seccomp_fd, &err);
                if (r < 0) {
                        fprintf(stderr, "seccomp: %s\n", err ? err->message : strerror(-r));
                        return r;
                }
        }

#define LIB_CONFIG(i)                                                                                     \
        ((isolate_sandbox_config){ .name = slots[i].name,                                                 \
                                   .workspace = slots[i].ws,                                              \
                                   .uid_base = UID_BASE_LIB + (uid_t) (i) * UID_COUNT,                    \
                                   .uid_count = UID_COUNT,                                                \
                                   .cgroup_parent = parent,                                               \
                                   .limits = &limits,                                                     \
                                   .net = &net,                                                           \
                                   .seccomp_fd = seccomp_fd })
        for (unsigned i = 0; i < runs && !interrupted; i++) {
                _cleanup_pc_error_ pc_error *err = NULL;
                uint64_t t0, t1;

                snprintf(slots[i].name, sizeof(slots[i].name), "bl-%u", i);
                slots[i].ws = strjoin(dir, "/", slots[i].name);
                if (!slots[i].ws)
                        return -ENOMEM;
                /* The daemon's bring_up(): one call makes the workspace, the cgroup and the sandbox. */
                t0 = now_ns();
                r = isolate_sandbox_create(&LIB_CONFIG(i), &slots[i].sb, &err);
                t1 = now_ns();
                if (r < 0) {
                        fprintf(stderr, "lib create %s: %s\n", slots[i].name, err ? err->message : strerror(-r));
                        ret = r;
                        break;
                }
                create[started++] = t1 - t0;
        }

        /* Idle memory as the cgroups account it, once tmux and its shell have settled. */
        if (!interrupted && started > 0) {
                (void) usleep(500 * 1000);
                for (size_t i = 0; i < started; i++) {
                        isolate_usage u = {};
                        if (isolate_sandbox_usage(slots[i].sb, &u) >= 0)
                                mem_sum += u.memory_current;
                }
        }

        for (size_t i = 0; i < runs; i++) {
                uint64_t t0 = now_ns();

                if (!slots[i].ws)
                        continue;
                if (isolate_sandbox_destroy(&LIB_CONFIG(i), slots[i].sb, 0, NULL) < 0) {
                        fprintf(stderr, "lib stop bl-%zu failed\n", i);
                        ret = -EIO;
                }
                if (slots[i].sb)
                        stop[stopped++] = now_ns() - t0;
                slots[i].sb = isolate_sandbox_free(slots[i].sb);
                (void) rmdir(slots[i].ws);
                free(slots[i].ws);
        }
#undef LIB_CONFIG
        (void) isolate_cgroup_destroy_parent(parent);

        print_stats("lib create->tmux ready", create, started);
        print_stats("lib destroy (stop+cgroup removal)", stop, stopped);
        if (mem_sum > 0)
                printf("%-34s %.2f MiB per sandbox (%zu sandboxes, cgroup memory usage)\n", "lib idle memory",
                       (double) mem_sum / (double) started / 1048576.0, started);
        return interrupted ? -EINTR : ret;
}

/* ---- bwrap: bubblewrap + tmux, the peer ---- */

typedef struct bw_slot {
        pid_t init; /* bwrap's init in the sandbox's pid namespace (host pid), our child via subreaper */
        int pidfd;
        char cg[3][160]; /* per-sandbox cgroup directories, "" when unused */
} bw_slot;

static const char *const cg_roots[3] = { "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu" };

static int write_str(const char *dir, const char *file, const char *value)
{
        _cleanup_free_ char *p = strjoin(dir, "/", file);
        _cleanup_close_ int fd = -EBADF;

        if (!p)
                return -ENOMEM;
        fd = open(p, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return write_all(fd, value, strlen(value));
}

/* The cgroup a bwrap-based runner would create per sandbox, with the daemon's limits (v1 hierarchies, as on
 * this machine; v2: one unified directory). */
static int bw_cgroup_new(const char *parent, const char *name, bw_slot *s)
{
        char limit[32];
        bool v1 = access("/sys/fs/cgroup/memory/memory.limit_in_bytes", F_OK) == 0;
        int r;

        for (size_t h = 0; h < (v1 ? 3 : 1); h++) {
                char pdir[128];

                snprintf(pdir, sizeof(pdir), "%s/%s", v1 ? cg_roots[h] : "/sys/fs/cgroup", parent);
                if (mkdir(pdir, 0755) < 0 && errno != EEXIST)
                        return -errno;
                if (!v1)
                        (void) write_str(pdir, "cgroup.subtree_control", "+memory +pids +cpu");
                snprintf(s->cg[h], sizeof(s->cg[h]), "%s/%s", pdir, name);
                if (mkdir(s->cg[h], 0755) < 0 && errno != EEXIST)
                        return -errno;
        }
        snprintf(limit, sizeof(limit), "%llu", MEMORY_MAX);
        r = write_str(s->cg[0], v1 ? "memory.limit_in_bytes" : "memory.max", limit);
        if (r >= 0 && v1)
                r = write_str(s->cg[0], "memory.memsw.limit_in_bytes", limit);
        if (r >= 0)
                r = write_str(v1 ? s->cg[1] : s->cg[0], "pids.max", "512");
        if (r == -ENOENT && v1)
                r = 0; /* memsw needs swap accounting */
        return r;
}

static void bw_cgroup_remove(bw_slot *s)
{
        for (size_t h = 0; h < 3; h++)
                if (s->cg[h][0] && rmdir(s->cg[h]) < 0 && errno != ENOENT)
                        fprintf(stderr, "rmdir %s: %m\n", s->cg[h]);
}

static uint64_t bw_cgroup_memory(const bw_slot *s)
{
        const char *files[] = { "memory.usage_in_bytes", "memory.current" };
        uint64_t v = 0;

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *p = strjoin(s->cg[0], "/", files[i]), *data = NULL;
                if (p && read_full_file(p, 64, &data, NULL) >= 0 && parse_uint64(strstrip(data), &v) >= 0)
                        return v;
        }
        return 0;
}

static pid_t parse_child_pid(const char *json)
{
        const char *p = strstr(json, "\"child-pid\"");
        if (!p || !(p = strchr(p, ':')))
                return -1;
        return (pid_t) atoi(p + 1);
}

static int run_bwrap(unsigned runs, const char *dir, bool seccomp, const char *cgparent)
{
        _cleanup_free_ bw_slot *slots = calloc(runs, sizeof(bw_slot));
        _cleanup_free_ uint64_t *create = calloc(runs, sizeof(uint64_t)), *stop = calloc(runs, sizeof(uint64_t));
        _cleanup_close_ int seccomp_fd = -EBADF;
        uint64_t mem_sum = 0;
        size_t started = 0, stopped = 0;
        char label[64];
        int ret = 0, r;

        if (!slots || !create || !stop)
                return -ENOMEM;
        for (unsigned i = 0; i < runs; i++)
                slots[i].pidfd = -EBADF;
        if (seccomp) {
                _cleanup_pc_error_ pc_error *err = NULL;
                r = isolate_seccomp_compile(&seccomp_fd, &err);
                if (r < 0) {
                        fprintf(stderr, "seccomp: %s\n", err ? err->message : strerror(-r));
                        return r;
                }
        }
        /* bwrap's namespace init outlives the bwrap we start: become its reaper, so that we can wait for it. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
                return -errno;

        for (unsigned i = 0; i < runs && !interrupted; i++) {
                _cleanup_free_ char *ws = NULL;
                _cleanup_close_ int info_r = -EBADF, info_w = -EBADF;
                char name[32], info_fd[16], sc_fd[16], buf[512];
                int p[2], status;
                uint64_t t0;
                ssize_t n;
                pid_t pid;

                snprintf(name, sizeof(name), "bw-%u", i);
                /* Same uid inside as our agent; bwrap maps it to the caller's uid (root): it has no ranges. */
                r = make_workspace(dir, name, 0, &ws);
                if (r < 0) {
                        fprintf(stderr, "workspace %s: %s\n", name, strerror(-r));
                        ret = r;
                        break;
                }
                if (pipe2(p, O_CLOEXEC) < 0) {
                        ret = -errno;
                        break;
                }
                info_r = p[0];
                info_w = p[1];

                t0 = now_ns();
                if (cgparent) {
                        r = bw_cgroup_new(cgparent, name, &slots[i]);
                        if (r < 0) {
                                fprintf(stderr, "cgroup for %s: %s\n", name, strerror(-r));
                                ret = r;
                                break;
                        }
                }
                pid = fork();
                if (pid < 0) {
                        ret = -errno;
                        bw_cgroup_remove(&slots[i]);
                        break;
                }
                if (pid == 0) {
                        int sfd = -1;

                        for (size_t h = 0; h < 3; h++)
                                if (slots[i].cg[h][0] && write_str(slots[i].cg[h], "cgroup.procs", "0") < 0)
                                        _exit(125);
                        /* bwrap reads the filter to EOF: a fresh open file description, offset 0. */
                        if (seccomp_fd >= 0) {
                                char self[64];
                                snprintf(self, sizeof(self), "/proc/self/fd/%d", seccomp_fd);
                                sfd = open(self, O_RDONLY);
                                if (sfd < 0)
                                        _exit(125);
                        }
                        if (fcntl(info_w, F_SETFD, 0) < 0)
                                _exit(125);
                        snprintf(info_fd, sizeof(info_fd), "%d", info_w);
                        snprintf(sc_fd, sizeof(sc_fd), "%d", sfd);
                        const char *argv[96] = {
                                "bwrap", "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-uts",
                                "--unshare-ipc", "--unshare-cgroup", "--uid", "1000", "--gid", "1000",
                                "--hostname", name, "--new-session", "--cap-drop", "ALL",
                                "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin",
                                "/sbin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                                "--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                                "--tmpfs", "/run", "--bind", ws, "/workspace", "--chdir", "/workspace",
                                "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/workspace",
                                "--setenv", "USER", "agent", "--setenv", "LANG", "C.UTF-8", "--setenv", "TERM",
                                "xterm-256color", "--info-fd", info_fd,
                        };
                        size_t k = 0;
                        while (argv[k])
                                k++;
                        if (seccomp) {
                                argv[k++] = "--seccomp";
                                argv[k++] = sc_fd;
                        }
                        const char *tail[] = { "--", "tmux", "-S", "/run/tmux.sock", "new-session", "-d", "-s", name };
                        for (size_t t = 0; t < ELEMENTSOF(tail); t++)
                                argv[k++] = tail[t];
                        argv[k] = NULL;
                        int devnull = open("/dev/null", O_RDWR);
                        if (devnull >= 0) {
                                (void) dup2(devnull, 0);
                                (void) dup2(devnull, 1);
                        }
                        execvp("bwrap", (char *const *) argv);
                        _exit(127);
                }
                info_w = safe_close(info_w);
                /* A signal only ends the loop: this bwrap is waited for and removed like the others. */
                while (waitpid(pid, &status, 0) < 0)
                        if (errno != EINTR)
                                return -errno;
                create[started] = now_ns() - t0;
                n = read(info_r, buf, sizeof(buf) - 1);
                buf[MAX(n, 0)] = 0;
                slots[i].init = parse_child_pid(buf);
                if (slots[i].init > 0)
                        slots[i].pidfd = (int) syscall(SYS_pidfd_open, slots[i].init, 0);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || slots[i].pidfd < 0) {
                        fprintf(stderr, "bwrap %s failed (status 0x%x, info \"%s\")\n", name, status, buf);
                        ret = -EIO;
                        break;
                }
                started++;
        }

        if (!interrupted && started > 0 && cgparent) {
                (void) usleep(500 * 1000);
                for (size_t i = 0; i < started; i++)
                        mem_sum += bw_cgroup_memory(&slots[i]);
        }

        /* Stop: SIGKILL to the namespace init kills the whole pid namespace (it has no SIGTERM handler, and a
         * namespace init ignores unhandled signals), then reap it and remove the cgroup. */
        for (size_t i = 0; i < runs; i++) {
                uint64_t t0 = now_ns();
                bool had = slots[i].pidfd >= 0;

                if (had) {
                        (void) syscall(SYS_pidfd_send_signal, slots[i].pidfd, SIGKILL, NULL, 0);
                        (void) waitid(P_PIDFD, slots[i].pidfd, &(siginfo_t){}, WEXITED);
                        slots[i].pidfd = safe_close(slots[i].pidfd);
                }
                /* The tmux server is killed with the namespace; wait until the cgroup is empty (rmdir says
                 * EBUSY until then). */
                for (size_t h = 0; h < 3; h++)
                        for (int k = 0; slots[i].cg[h][0] && k < 10000 && rmdir(slots[i].cg[h]) < 0 && errno == EBUSY; k++)
                                (void) usleep(100);
                bw_cgroup_remove(&slots[i]);
                if (had)
                        stop[stopped++] = now_ns() - t0;
        }
        /* Any other orphan that became ours (none expected). */
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
        if (cgparent)
                for (size_t h = 0; h < 3; h++) {
                        char pdir[128];
                        snprintf(pdir, sizeof(pdir), "%s/%s", cg_roots[h], cgparent);
                        (void) rmdir(pdir);
                }
        for (unsigned i = 0; i < runs; i++) {
                char ws[4096];
                snprintf(ws, sizeof(ws), "%s/bw-%u", dir, i);
                (void) rmdir(ws);
        }

        snprintf(label, sizeof(label), "bwrap%s%s create->tmux ready", seccomp ? "+seccomp" : "",
                 cgparent ? "+cgroup" : "");
        print_stats(label, create, started);
        snprintf(label, sizeof(label), "bwrap%s%s kill+reap", seccomp ? "+seccomp" : "", cgparent ? "+cgroup" : "");
        print_stats(label, stop, stopped);
        if (mem_sum > 0)
                printf("%-34s %.2f MiB per sandbox (%zu sandboxes, cgroup memory usage)\n", "bwrap idle memory",
                       (double) mem_sum / (double) started / 1048576.0, started);
        return interrupted ? -EINTR : ret;
}

/* ---- child processes: the peers' command-line tools ---- */

/* Forks argv with the sandbox's clean environment (HOME without dotfiles), stdin on /dev/null and stdout on
 * out_fd (/dev/null when negative), as uid and gid `uid` unless that is 0. */
static int spawn(const char *const *argv, const char *home, int out_fd, uid_t uid, pid_t *ret_pid)
{
        char home_env[4096];
        snprintf(home_env, sizeof(home_env), "HOME=%s", home);
        char *const envp[] = { "PATH=/usr/bin:/bin", home_env, "USER=agent", "LANG=C.UTF-8", "TERM=xterm-256color",
                               "SHELL=/bin/bash", NULL };
        pid_t pid = fork();

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int devnull = open("/dev/null", O_RDWR);
                if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out_fd >= 0 ? out_fd : devnull, 1) < 0)
                        _exit(125);
                if (uid != 0 && (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0))
                        _exit(125);
                execvpe(argv[0], (char *const *) argv, envp);
                _exit(127);
        }
        *ret_pid = pid;
        return 0;
}

static int wait_pid(pid_t pid, int *ret_status)
{
        while (waitpid(pid, ret_status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

/* Runs argv (see spawn()) and waits for it; 0 only when it exited with 0. */
static int spawn_wait(const char *const *argv, const char *home)
{
        pid_t pid;
        int status, r;

        r = spawn(argv, home, -EBADF, 0, &pid);
        if (r >= 0)
                r = wait_pid(pid, &status);
        if (r >= 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
                r = -EIO;
        return r;
}

/* Runs argv (see spawn()) with stdout on a pipe and waits for the line "ready", which the sandboxed shell of the
 * crun and firejail peers prints once `tmux new-session -d` has returned, i.e. once the session exists. The
 * child may still run then (firejail stays in the foreground); the caller reaps it. On failure the child is
 * asked to stop (SIGTERM, so that firejail removes its files in /run/firejail) and reaped. */
static int spawn_ready(const char *const *argv, const char *home, uid_t uid, pid_t *ret_pid)
{
        _cleanup_close_ int rd = -EBADF, wr = -EBADF;
        uint64_t deadline = now_ns() + READY_WAIT_MS * 1000000ULL;
        char buf[64];
        size_t have = 0;
        pid_t pid;
        int p[2], r;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        rd = p[0];
        wr = p[1];
        r = spawn(argv, home, wr, uid, &pid);
        if (r < 0)
                return r;
        wr = safe_close(wr);
        for (;;) {
                struct pollfd pfd = { .fd = rd, .events = POLLIN };
                uint64_t now = now_ns();
                ssize_t n;

                if (now >= deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                /* A signal only ends the caller's loop: this child is waited for like the others. */
                r = poll(&pfd, 1, (int) ((deadline - now) / 1000000 + 1));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        r = -errno;
                        break;
                }
                if (r == 0)
                        continue;
                n = read(rd, buf + have, sizeof(buf) - 1 - have);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = n < 0 ? -errno : -EPIPE; /* EOF: it exited (or closed stdout) without "ready" */
                        break;
                }
                have += (size_t) n;
                buf[have] = 0;
                if (strchr(buf, '\n')) {
                        r = streq(buf, "ready\n") ? 0 : -EBADMSG;
                        break;
                }
                if (have == sizeof(buf) - 1) {
                        r = -EBADMSG;
                        break;
                }
        }
        if (r < 0) {
                (void) kill(pid, SIGTERM);
                (void) wait_pid(pid, NULL);
                return r;
        }
        *ret_pid = pid;
        return 0;
}

/* The sandboxed command of the crun and firejail peers: tmux's client returns once the session exists, the
 * shell then says so on stdout and stays as the sandbox's long-lived process (tmux's server daemonizes). */
static void ready_command(char *buf, size_t size, const char *sock, const char *name)
{
        snprintf(buf, size, "tmux -S %s new-session -d -s %s && echo ready && exec sleep infinity", sock, name);
}

/* ---- crun: an OCI runtime + tmux, the peer ---- */

typedef struct peer_slot {
        pid_t pid;    /* firejail: the firejail process, our child (crun run --detach has returned) */
        int pidfd;    /* the sandbox's namespace init */
        char *ws;     /* workspace directory */
        char *bundle; /* crun: the OCI bundle directory */
} peer_slot;

/* crun (1.8.1 here; current releases too) refuses every container on a hybrid cgroup host whose v2 hierarchy offers controllers, also with
 * --cgroup-manager=disabled ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"); this
 * machine's v2 mount offers hugetlb, which no v1 hierarchy holds. Hide that list from the crun processes we
 * start: in a mount namespace of our own (a slave, so the host sees nothing) /dev/null is bound over it. */
static int crun_hide_v2_controllers(void)
{
        static const char controllers[] = "/sys/fs/cgroup/unified/cgroup.controllers";
        _cleanup_free_ char *data = NULL;

        if (read_full_file(controllers, 4096, &data, NULL) < 0 || isempty(strstrip(data)))
                return 0; /* not hybrid, or an empty v2 hierarchy: crun is content */
        if (unshare(CLONE_NEWNS) < 0)
                return -errno;
        if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
                return -errno;
        if (mount("/dev/null", controllers, NULL, MS_BIND, NULL) < 0)
                return -errno;
        return 0;
}

static bool json_safe(const char *s)
{
        for (; *s; s++)
                if (*s == '"' || *s == '\\' || (unsigned char) *s < 0x20)
                        return false;
        return true;
}

/* Fills an OCI bundle directory (config.json and an empty rootfs owned by the container's root) for sandbox
 * `name` with the isolation of the bwrap row: the host's /usr and /etc read-only, /bin /sbin /lib /lib64 as the
 * host has them (symlinks into /usr here), /proc, a minimal /dev with devpts, tmpfs /tmp and /run, the
 * workspace at /workspace; uid range base..base+65535 (the agent is 1000 inside), no capabilities,
 * no_new_privs; no seccomp profile (crun has no default one: it applies what config.json lists). */
static int crun_bundle_fill(const char *bundle, const char *name, uid_t base, const char *ws)
{
        static const char *const top[] = { "bin", "sbin", "lib", "lib64" };
        _cleanup_free_ char *rootfs = strjoin(bundle, "/rootfs"), *config = strjoin(bundle, "/config.json");
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_close_ int rootfd = -EBADF;
        char cmd[256], binds[1024] = "";

        if (!rootfs || !config)
                return -ENOMEM;
        if (!json_safe(ws) || !json_safe(name))
                return -EINVAL;
        if (mkdir(rootfs, 0755) < 0)
                return -errno;
        /* Mount points are created by crun inside the user namespace, as the container's root. */
        if (chown(rootfs, base, base) < 0)
                return -errno;
        rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                return -errno;
        for (size_t i = 0; i < ELEMENTSOF(top); i++) {
                char src[16], target[256];
                struct stat st;
                ssize_t n;

                snprintf(src, sizeof(src), "/%s", top[i]);
                n = readlink(src, target, sizeof(target) - 1);
                if (n >= 0) {
                        target[n] = 0;
                        if (symlinkat(target, rootfd, top[i]) < 0)
                                return -errno;
                } else if (stat(src, &st) == 0 && S_ISDIR(st.st_mode)) {
                        size_t len = strlen(binds);
                        snprintf(binds + len, sizeof(binds) - len,
                                 "    { \"destination\": \"%s\", \"type\": \"bind\", \"source\": \"%s\", "
                                 "\"options\": [\"rbind\", \"ro\", \"nosuid\", \"nodev\"] },\n",
                                 src, src);
                }
        }
        ready_command(cmd, sizeof(cmd), "/run/tmux.sock", name);

        f = fopen(config, "we");
        if (!f)
                return -errno;
        fprintf(f,
                "{\n"
                "  \"ociVersion\": \"1.0.0\",\n"
                "  \"process\": {\n"
                "    \"terminal\": false,\n"
                "    \"user\": { \"uid\": %u, \"gid\": %u },\n"
                "    \"args\": [\"/bin/sh\", \"-c\", \"%s\"],\n"
                "    \"env\": [\"PATH=/usr/bin:/bin\", \"HOME=/workspace\", \"USER=agent\", \"LANG=C.UTF-8\", "
                "\"TERM=xterm-256color\"],\n"
                "    \"cwd\": \"/workspace\",\n"
                "    \"capabilities\": { \"bounding\": [], \"effective\": [], \"inheritable\": [], \"permitted\": [], "
                "\"ambient\": [] },\n"
                "    \"noNewPrivileges\": true\n"
                "  },\n"
                "  \"root\": { \"path\": \"rootfs\", \"readonly\": true },\n"
                "  \"hostname\": \"%s\",\n"
                "  \"mounts\": [\n"
                "    { \"destination\": \"/usr\", \"type\": \"bind\", \"source\": \"/usr\", "
                "\"options\": [\"rbind\", \"ro\", \"nosuid\", \"nodev\"] },\n"
                "%s"
                "    { \"destination\": \"/etc\", \"type\": \"bind\", \"source\": \"/etc\", "
                "\"options\": [\"rbind\", \"ro\", \"nosuid\", \"nodev\"] },\n"
                "    { \"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\" },\n"
                "    { \"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\", "
                "\"options\": [\"nosuid\", \"strictatime\", \"mode=755\", \"size=65536k\"] },\n"
                "    { \"destination\": \"/dev/pts\", \"type\": \"devpts\", \"source\": \"devpts\", "
                "\"options\": [\"nosuid\", \"noexec\", \"newinstance\", \"ptmxmode=0666\", \"mode=0620\"] },\n"
                "    { \"destination\": \"/tmp\", \"type\": \"tmpfs\", \"source\": \"tmpfs\", "
                "\"options\": [\"nosuid\", \"nodev\", \"mode=1777\"] },\n"
                "    { \"destination\": \"/run\", \"type\": \"tmpfs\", \"source\": \"tmpfs\", "
                "\"options\": [\"nosuid\", \"nodev\", \"mode=1777\"] },\n"
                "    { \"destination\": \"/workspace\", \"type\": \"bind\", \"source\": \"%s\", "
                "\"options\": [\"rbind\", \"rw\"] }\n"
                "  ],\n"
                "  \"linux\": {\n"
                "    \"uidMappings\": [ { \"containerID\": 0, \"hostID\": %u, \"size\": %u } ],\n"
                "    \"gidMappings\": [ { \"containerID\": 0, \"hostID\": %u, \"size\": %u } ],\n"
                "    \"namespaces\": [ { \"type\": \"user\" }, { \"type\": \"pid\" }, { \"type\": \"network\" }, "
                "{ \"type\": \"uts\" }, { \"type\": \"ipc\" }, { \"type\": \"mount\" }, { \"type\": \"cgroup\" } ],\n"
                "    \"maskedPaths\": [ \"/proc/acpi\", \"/proc/asound\", \"/proc/kcore\", \"/proc/keys\", "
                "\"/proc/latency_stats\", \"/proc/timer_list\", \"/proc/sched_debug\", \"/proc/scsi\" ],\n"
                "    \"readonlyPaths\": [ \"/proc/bus\", \"/proc/fs\", \"/proc/irq\", \"/proc/sys\", "
                "\"/proc/sysrq-trigger\" ]\n"
                "  }\n"
                "}\n",
                ISOLATE_AGENT_UID, ISOLATE_AGENT_UID, cmd, name, binds, ws, base, UID_COUNT, base, UID_COUNT);
        if (fflush(f) != 0 || ferror(f))
                return errno > 0 ? -errno : -EIO;
        return 0;
}

static int crun_bundle_new(const char *dir, const char *name, uid_t base, const char *ws, char **ret)
{
        _cleanup_free_ char *bundle = strjoin(dir, "/", name, ".oci");
        int r;

        if (!bundle)
                return -ENOMEM;
        /* Reachable by the container's root, which is not root on the host. */
        if (mkdir(bundle, 0711) < 0)
                return -errno;
        r = crun_bundle_fill(bundle, name, base, ws);
        if (r < 0) {
                (void) isolate_remove_tree(bundle);
                return r;
        }
        *ret = TAKE_PTR(bundle);
        return 0;
}

static int read_pid_file(const char *path, pid_t *ret)
{
        _cleanup_free_ char *data = NULL;
        uint64_t v;
        int r;

        r = read_full_file(path, 64, &data, NULL);
        if (r < 0)
                return r;
        r = parse_uint64(strstrip(data), &v);
        if (r < 0)
                return r;
        if (v == 0 || v > INT32_MAX)
                return -ERANGE;
        *ret = (pid_t) v;
        return 0;
}

static int run_crun(unsigned runs, const char *dir_arg)
{
        _cleanup_free_ char *dir = realpath(dir_arg, NULL), *state = NULL;
        _cleanup_free_ peer_slot *slots = calloc(runs, sizeof(peer_slot));
        _cleanup_free_ uint64_t *create = calloc(runs, sizeof(uint64_t)), *stop = calloc(runs, sizeof(uint64_t));
        size_t started = 0, stopped = 0;
        int ret = 0, r;

        if (!dir)
                return -errno;
        state = strjoin(dir, "/crun-state");
        if (!slots || !create || !stop || !state)
                return -ENOMEM;
        for (unsigned i = 0; i < runs; i++)
                slots[i].pidfd = -EBADF;
        /* crun run --detach returns once the container runs: its init becomes our child, so that we can reap it. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
                return -errno;
        r = crun_hide_v2_controllers();
        if (r < 0) {
                fprintf(stderr, "crun: hiding the cgroup v2 controllers: %s\n", strerror(-r));
                return r;
        }
        /* crun's own state (--root), away from other crun users' /run/crun. */
        if (mkdir(state, 0700) < 0)
                return -errno;

        for (unsigned i = 0; i < runs && !interrupted; i++) {
                _cleanup_free_ char *pidfile = NULL;
                char name[32];
                uid_t base = UID_BASE_CRUN + i * UID_COUNT;
                uint64_t t0, t;
                pid_t pid, init = 0;
                int status = 0;

                snprintf(name, sizeof(name), "cr-%u", i);
                r = make_workspace(dir, name, base + ISOLATE_AGENT_UID, &slots[i].ws);
                if (r >= 0)
                        r = crun_bundle_new(dir, name, base, slots[i].ws, &slots[i].bundle);
                if (r >= 0 && !(pidfile = strjoin(slots[i].bundle, "/init.pid")))
                        r = -ENOMEM;
                if (r < 0) {
                        fprintf(stderr, "workspace or bundle for %s: %s\n", name, strerror(-r));
                        ret = r;
                        break;
                }
                /* No cgroup, like the bwrap row without --cgroup: crun would otherwise create one in each of the nine
                 * v1 hierarchies. */
                const char *argv[] = { "crun", "--root", state, "--cgroup-manager=disabled", "run", "--detach",
                                       "--bundle", slots[i].bundle, "--pid-file", pidfile, name, NULL };
                t0 = now_ns();
                r = spawn_ready(argv, "/", 0, &pid);
                t = now_ns() - t0;
                if (r >= 0)
                        r = wait_pid(pid, &status);
                if (r >= 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
                        r = -EIO;
                if (r >= 0)
                        r = read_pid_file(pidfile, &init);
                if (r >= 0 && (slots[i].pidfd = (int) syscall(SYS_pidfd_open, init, 0)) < 0)
                        r = -errno;
                if (r < 0) {
                        fprintf(stderr, "crun %s failed: %s\n", name, strerror(-r));
                        ret = r;
                        break;
                }
                create[started++] = t;
        }

        /* Stop: crun kill (SIGKILL: the init is `sleep`, which as a namespace init ignores SIGTERM), reap the init
         * (our child), crun delete. A half-created container is only deleted (-f kills what is left). */
        for (unsigned i = 0; i < runs; i++) {
                char name[32];
                uint64_t t0 = now_ns();
                bool had = slots[i].pidfd >= 0;

                snprintf(name, sizeof(name), "cr-%u", i);
                const char *kill_argv[] = { "crun", "--root", state, "kill", name, "KILL", NULL };
                const char *delete_argv[] = { "crun", "--root", state, "delete", "-f", name, NULL };
                if (had) {
                        r = spawn_wait(kill_argv, "/");
                        if (r >= 0 && waitid(P_PIDFD, slots[i].pidfd, &(siginfo_t){}, WEXITED) < 0)
                                r = -errno;
                        if (r >= 0)
                                r = spawn_wait(delete_argv, "/");
                        stop[stopped++] = now_ns() - t0;
                        if (r < 0) {
                                fprintf(stderr, "crun stop %s failed: %s\n", name, strerror(-r));
                                ret = -EIO;
                        }
                        slots[i].pidfd = safe_close(slots[i].pidfd);
                }
                if (slots[i].bundle) {
                        (void) spawn_wait(delete_argv, "/"); /* a no-op after a good stop */
                        r = isolate_remove_tree(slots[i].bundle); /* any directory tree */
                        if (r < 0)
                                fprintf(stderr, "removing %s: %s\n", slots[i].bundle, strerror(-r));
                }
                if (slots[i].ws)
                        (void) rmdir(slots[i].ws);
                free(slots[i].bundle);
                free(slots[i].ws);
        }
        /* Inits of half-created containers, killed by crun delete -f. */
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
        (void) isolate_remove_tree(state);

        print_stats("crun create->tmux ready", create, started);
        print_stats("crun kill+reap+delete", stop, stopped);
        return interrupted ? -EINTR : ret;
}

/* ---- firejail + tmux, the peer ---- */

/* The firejail process has one child: the sandbox's namespace init. */
static int only_child(pid_t pid, pid_t *ret)
{
        _cleanup_free_ char *path = NULL, *data = NULL;
        char *end;
        long v;
        int r;

        if (asprintf_safe(&path, "/proc/%d/task/%d/children", (int) pid, (int) pid) < 0)
                return -ENOMEM;
        r = read_full_file(path, 256, &data, NULL);
        if (r < 0)
                return r;
        errno = 0;
        v = strtol(data, &end, 10);
        if (errno != 0 || v <= 0 || end == data || !isempty(strstrip(end)))
                return -ESRCH;
        *ret = (pid_t) v;
        return 0;
}

static int run_firejail(unsigned runs, const char *dir_arg)
{
        _cleanup_free_ char *dir = realpath(dir_arg, NULL), *home = NULL;
        _cleanup_free_ peer_slot *slots = calloc(runs, sizeof(peer_slot));
        _cleanup_free_ uint64_t *create = calloc(runs, sizeof(uint64_t)), *stop = calloc(runs, sizeof(uint64_t));
        const struct passwd *pw;
        size_t started = 0, stopped = 0;
        int ret = 0, r;

        if (!dir)
                return -errno;
        if (!slots || !create || !stop)
                return -ENOMEM;
        for (unsigned i = 0; i < runs; i++)
                slots[i].pidfd = -EBADF;
        /* firejail takes the sandbox's user and home from the user database; the workspace is mounted there. */
        pw = getpwuid(ISOLATE_AGENT_UID);
        if (!pw) {
                fprintf(stderr, "firejail: needs a host user with uid %u (its home becomes the workspace)\n",
                        ISOLATE_AGENT_UID);
                return -ENOENT;
        }
        home = strdup(pw->pw_dir);
        if (!home)
                return -ENOMEM;
        /* If firejail dies first, its namespace init (killed by its parent-death signal) becomes ours to reap. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
                return -errno;

        for (unsigned i = 0; i < runs && !interrupted; i++) {
                char name[32], hostname[64], private_home[4200], cmd[256];
                pid_t init = 0;
                uint64_t t0, t;

                snprintf(name, sizeof(name), "fj-%u", i);
                r = make_workspace(dir, name, ISOLATE_AGENT_UID, &slots[i].ws);
                if (r < 0) {
                        fprintf(stderr, "workspace %s: %s\n", name, strerror(-r));
                        ret = r;
                        break;
                }
                snprintf(hostname, sizeof(hostname), "--hostname=%s", name);
                snprintf(private_home, sizeof(private_home), "--private=%s", slots[i].ws);
                ready_command(cmd, sizeof(cmd), "/tmp/tmux.sock", name);
                /* firejail is setuid root and sandboxes the user who starts it: the agent, uid 1000. */
                const char *argv[] = { "firejail", "--quiet", "--noprofile", "--noroot", "--net=none", "--ipc-namespace",
                                       hostname, private_home, "--private-cwd", "--private-dev", "--private-tmp",
                                       "--caps.drop=all", "--nonewprivs", "--seccomp", "--", "/bin/sh", "-c", cmd,
                                       NULL };
                t0 = now_ns();
                r = spawn_ready(argv, home, ISOLATE_AGENT_UID, &slots[i].pid);
                t = now_ns() - t0;
                if (r >= 0)
                        r = only_child(slots[i].pid, &init);
                if (r >= 0 && (slots[i].pidfd = (int) syscall(SYS_pidfd_open, init, 0)) < 0)
                        r = -errno;
                if (r < 0) {
                        fprintf(stderr, "firejail %s failed: %s (is %s reachable by uid %u?)\n", name, strerror(-r),
                                dir, ISOLATE_AGENT_UID);
                        ret = r;
                        break;
                }
                create[started++] = t;
        }

        /* Stop: SIGKILL to the namespace init ends the pid namespace, as for bwrap; firejail notices, removes its
         * files in /run/firejail and exits, and we reap it. (Its graceful path, SIGTERM to firejail, sleeps a
         * fixed second inside the sandbox before it kills.) */
        for (unsigned i = 0; i < runs; i++) {
                uint64_t t0 = now_ns();
                bool had = slots[i].pidfd >= 0;

                if (had)
                        (void) syscall(SYS_pidfd_send_signal, slots[i].pidfd, SIGKILL, NULL, 0);
                else if (slots[i].pid > 0)
                        (void) kill(slots[i].pid, SIGTERM);
                if (slots[i].pid > 0)
                        (void) wait_pid(slots[i].pid, NULL);
                if (had)
                        stop[stopped++] = now_ns() - t0;
                slots[i].pidfd = safe_close(slots[i].pidfd);
                /* firejail copied .bashrc and .inputrc into the workspace it used as home. */
                if (slots[i].ws)
                        (void) isolate_remove_tree(slots[i].ws);
                free(slots[i].ws);
        }
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;

        print_stats("firejail create->tmux ready", create, started);
        print_stats("firejail kill+reap", stop, stopped);
        return interrupted ? -EINTR : ret;
}

/* ---- tmux: the floor, tmux new-session -d on the host without any isolation ---- */

static int run_tmux(unsigned runs, const char *dir)
{
        _cleanup_free_ uint64_t *create = calloc(runs, sizeof(uint64_t)), *stop = calloc(runs, sizeof(uint64_t));
        size_t started = 0, stopped = 0;
        int ret = 0, r;

        if (!create || !stop)
                return -ENOMEM;
        /* tmux's server daemonizes: become its reaper so that no zombie outlives the run. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
                return -errno;
        for (unsigned i = 0; i < runs && !interrupted; i++) {
                char sock[4096], name[32];
                uint64_t t0;

                snprintf(name, sizeof(name), "tm-%u", i);
                snprintf(sock, sizeof(sock), "%s/%s.sock", dir, name);
                const char *argv[] = { "tmux", "-S", sock, "new-session", "-d", "-s", name, "-c", dir, NULL };
                t0 = now_ns();
                r = spawn_wait(argv, dir);
                if (r < 0) {
                        fprintf(stderr, "tmux new-session %s failed\n", name);
                        ret = -EIO;
                        break;
                }
                create[started++] = now_ns() - t0;
        }
        for (size_t i = 0; i < started; i++) {
                char sock[4096];
                uint64_t t0 = now_ns();

                snprintf(sock, sizeof(sock), "%s/tm-%zu.sock", dir, i);
                const char *argv[] = { "tmux", "-S", sock, "kill-server", NULL };
                r = spawn_wait(argv, dir);
                stop[stopped++] = now_ns() - t0;
                (void) unlink(sock);
                if (r < 0)
                        ret = -EIO;
        }
        while (waitpid(-1, NULL, 0) > 0)
                ;
        print_stats("host tmux new-session -d (floor)", create, started);
        print_stats("host tmux kill-server", stop, stopped);
        return interrupted ? -EINTR : ret;
}

/* ---- api: the daemon's HTTP API over its unix socket ---- */

typedef enum { OP_CREATE, OP_STOP, OP_DELETE } api_op;

typedef struct api_ctx {
        const char *socket, *prefix;
        api_op op;
        unsigned runs;
        atomic_uint next;
        atomic_uint errors;
        uint64_t *lat; /* indexed by sandbox number */
} api_ctx;

/* One request on its own connection (Connection: close); returns the HTTP status or negative errno. */
static int http_request(const char *socket_path, const char *method, const char *path, const char *body,
                        char *resp, size_t respsz)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        char req[1024];
        size_t have = 0;
        int n, status;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", socket_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        if (body)
                n = snprintf(req, sizeof(req),
                             "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                             method, path, strlen(body), body);
        else
                n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                             method, path);
        if (n < 0 || (size_t) n >= sizeof(req))
                return -E2BIG;
        if (write_all(fd, req, (size_t) n) < 0)
                return -errno;
        for (;;) {
                ssize_t k = read(fd, resp + have, respsz - have - 1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                have += (size_t) k;
                if (have == respsz - 1)
                        break;
        }
        resp[have] = 0;
        if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
                return -EBADMSG;
        return status;
}

static void *api_worker(void *userdata)
{
        api_ctx *c = userdata;
        char resp[8192];

        for (;;) {
                unsigned i = atomic_fetch_add(&c->next, 1);
                char path[256], body[256];
                const char *method = "POST";
                int want, status;
                uint64_t t0;

                if (i >= c->runs || interrupted)
                        return NULL;
                switch (c->op) {
                case OP_CREATE:
                        snprintf(path, sizeof(path), "/v1/sandboxes");
                        snprintf(body, sizeof(body), "{\"name\":\"%s-%u\",\"network\":\"none\"}", c->prefix, i);
                        want = 201;
                        break;
                case OP_STOP:
                        snprintf(path, sizeof(path), "/v1/sandboxes/%s-%u/stop", c->prefix, i);
                        snprintf(body, sizeof(body), "{}");
                        want = 200;
                        break;
                default:
                        snprintf(path, sizeof(path), "/v1/sandboxes/%s-%u?purge=true", c->prefix, i);
                        method = "DELETE";
                        want = 204;
                        break;
                }
                t0 = now_ns();
                status = http_request(c->socket, method, path, c->op == OP_DELETE ? NULL : body, resp, sizeof(resp));
                c->lat[i] = now_ns() - t0;
                if (status != want) {
                        const char *b = strstr(resp, "\r\n\r\n");
                        fprintf(stderr, "%s %s: %d %s\n", method, path, status, status < 0 ? strerror(-status) : (b ? b + 4 : ""));
                        c->lat[i] = UINT64_MAX;
                        atomic_fetch_add(&c->errors, 1);
                }
        }
}

static int run_api(const char *socket_path, const char *op, const char *prefix, unsigned runs, unsigned clients)
{
        _cleanup_free_ pthread_t *threads = calloc(clients, sizeof(pthread_t));
        _cleanup_free_ uint64_t *lat = calloc(runs, sizeof(uint64_t));
        api_ctx c = { .socket = socket_path, .prefix = prefix, .runs = runs, .lat = lat };
        char label[64];
        size_t n = 0;
        uint64_t t0, wall;

        if (!threads || !lat)
                return -ENOMEM;
        if (streq(op, "create"))
                c.op = OP_CREATE;
        else if (streq(op, "stop"))
                c.op = OP_STOP;
        else if (streq(op, "delete"))
                c.op = OP_DELETE;
        else
                return -EINVAL;

        t0 = now_ns();
        for (unsigned i = 0; i < clients; i++)
                if (pthread_create(&threads[i], NULL, api_worker, &c) != 0)
                        return -EAGAIN;
        for (unsigned i = 0; i < clients; i++)
                pthread_join(threads[i], NULL);
        wall = now_ns() - t0;

        for (unsigned i = 0; i < runs; i++)
                if (lat[i] != UINT64_MAX && lat[i] != 0)
                        lat[n++] = lat[i];
        snprintf(label, sizeof(label), "api %s (%u client%s)", op, clients, clients == 1 ? "" : "s");
        print_stats(label, lat, n);
        printf("%-34s %.3f s for %u (%u failed), %.1f per second\n", "  wall time", (double) wall / 1e9, runs,
               (unsigned) c.errors, (double) n / ((double) wall / 1e9));
        return c.errors > 0 || interrupted ? -EIO : 0;
}

static void usage(void)
{
        fprintf(stderr, "usage: sandbox-bench lib --runs N --dir DIR [--parent NAME]\n"
                        "       sandbox-bench tmux --runs N --dir DIR\n"
                        "       sandbox-bench bwrap --runs N --dir DIR [--seccomp] [--cgroup NAME]\n"
                        "       sandbox-bench crun --runs N --dir DIR\n"
                        "       sandbox-bench firejail --runs N --dir DIR\n"
                        "       sandbox-bench api --socket PATH --op create|stop|delete --prefix P --runs N "
                        "[--clients C]\n");
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                { "runs", required_argument, NULL, 'n' },   { "dir", required_argument, NULL, 'd' },
                { "parent", required_argument, NULL, 'P' }, { "seccomp", no_argument, NULL, 's' },
                { "cgroup", required_argument, NULL, 'g' }, { "socket", required_argument, NULL, 'S' },
                { "op", required_argument, NULL, 'o' },     { "prefix", required_argument, NULL, 'p' },
                { "clients", required_argument, NULL, 'c' }, {},
        };
        const char *mode, *dir = NULL, *parent = "pc-bench", *cgroup = NULL, *socket_path = NULL, *op = NULL,
                   *prefix = "bench";
        unsigned runs = 100, clients = 1;
        bool seccomp = false;
        int c, r;

        if (argc < 2) {
                usage();
                return 2;
        }
        mode = argv[1];
        optind = 2;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'n':
                        runs = (unsigned) atoi(optarg);
                        break;
                case 'd':
                        dir = optarg;
                        break;
                case 'P':
                        parent = optarg;
                        break;
                case 's':
                        seccomp = true;
                        break;
                case 'g':
                        cgroup = optarg;
                        break;
                case 'S':
                        socket_path = optarg;
                        break;
                case 'o':
                        op = optarg;
                        break;
                case 'p':
                        prefix = optarg;
                        break;
                case 'c':
                        clients = MAX((unsigned) atoi(optarg), 1u);
                        break;
                default:
                        usage();
                        return 2;
                }

        struct sigaction sa = { .sa_handler = on_signal };
        (void) sigaction(SIGINT, &sa, NULL);
        (void) sigaction(SIGTERM, &sa, NULL);
        (void) sigaction(SIGHUP, &sa, NULL);

        if (streq(mode, "lib") && dir)
                r = run_lib(runs, dir, parent);
        else if (streq(mode, "tmux") && dir)
                r = run_tmux(runs, dir);
        else if (streq(mode, "bwrap") && dir)
                r = run_bwrap(runs, dir, seccomp, cgroup);
        else if (streq(mode, "crun") && dir)
                r = run_crun(runs, dir);
        else if (streq(mode, "firejail") && dir)
                r = run_firejail(runs, dir);
        else if (streq(mode, "api") && socket_path && op)
                r = run_api(socket_path, op, prefix, runs, clients);
        else {
                usage();
                return 2;
        }
        if (r < 0) {
                fprintf(stderr, "sandbox-bench %s: %s\n", mode, strerror(-r));
                return 1;
        }
        return 0;
}
