/* SPDX-License-Identifier: MIT */
/* sandbox-bench: the timer behind bench/sandbox.sh. Creates many sandboxes one way or another and prints
 * latency percentiles (nearest rank) of each step. Three drivers, so that the same run compares them:
 *
 *   sandbox-bench lib   --runs N --dir DIR [--parent NAME]
 *       isolate_sandbox_start() directly, as the daemon does it (workspace, cgroup, namespaces, rootfs,
 *       seccomp, tmux), then isolate_sandbox_stop() + cgroup removal: the library's own cost.
 *   sandbox-bench bwrap --runs N --dir DIR [--seccomp] [--cgroup NAME]
 *       bubblewrap with comparable isolation running `tmux new-session -d` (bwrap returns when tmux's
 *       client does, i.e. when the session exists); optionally our seccomp filter and a per-sandbox
 *       cgroup with the same limits, then SIGKILL of its namespace init.
 *   sandbox-bench tmux  --runs N --dir DIR
 *       plain `tmux new-session -d` on the host: the floor every tmux-based sandbox pays.
 *   sandbox-bench api   --socket PATH --op create|stop|delete --prefix P --runs N [--clients C]
 *       the daemon's HTTP API over its unix socket, C clients in parallel.
 *
 * Everything a driver starts, it removes before it exits, also on SIGINT/SIGTERM (the loops stop early
 * and clean up). Exit status 0 only when every operation succeeded. */
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "common.h"
#include "isolate.h"

#define UID_BASE_LIB    0x90000000u /* away from the daemon's default range (1 << 30) */
#define UID_COUNT       65536u
#define MEMORY_MAX      (1ULL << 30) /* the daemon's defaults: 1 GiB, swap off, 512 pids */
#define PIDS_MAX        512

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
        isolate_cgroup *cg;
        char *ws;
} lib_slot;

static int run_lib(unsigned runs, const char *dir, const char *parent)
{
        _cleanup_free_ lib_slot *slots = calloc(runs, sizeof(lib_slot));
        _cleanup_free_ uint64_t *create = calloc(runs, sizeof(uint64_t)), *cgroup = calloc(runs, sizeof(uint64_t)),
                                *stop = calloc(runs, sizeof(uint64_t));
        _cleanup_close_ int seccomp_fd = -EBADF;
        const isolate_limits limits = { .memory_max = MEMORY_MAX, .pids_max = PIDS_MAX, .cpu_period_us = 100000 };
        const isolate_net_config net = { .mode = ISOLATE_NET_NONE };
        uint64_t mem_sum = 0;
        size_t started = 0, stopped = 0;
        int ret = 0, r;

        if (!slots || !create || !cgroup || !stop)
                return -ENOMEM;
        {
                _cleanup_pc_error_ pc_error *err = NULL;
                r = isolate_seccomp_compile(&seccomp_fd, &err);
                if (r < 0) {
                        fprintf(stderr, "seccomp: %s\n", err ? err->message : strerror(-r));
                        return r;
                }
        }

        for (unsigned i = 0; i < runs && !interrupted; i++) {
                _cleanup_pc_error_ pc_error *err = NULL;
                char name[32];
                uid_t base = UID_BASE_LIB + i * UID_COUNT;
                uint64_t t0, t1, t2;

                snprintf(name, sizeof(name), "bl-%u", i);
                t0 = now_ns();
                /* The daemon's bring_up(): workspace owned by the agent, cgroup, then the sandbox. */
                r = make_workspace(dir, name, base + ISOLATE_AGENT_UID, &slots[i].ws);
                if (r >= 0)
                        r = isolate_cgroup_new(parent, name, &limits, &slots[i].cg, &err);
                t1 = now_ns();
                if (r >= 0)
                        r = isolate_sandbox_start(&(isolate_sandbox_config){ .name = name,
                                                                             .workspace = slots[i].ws,
                                                                             .uid_base = base,
                                                                             .uid_count = UID_COUNT,
                                                                             .cgroup = slots[i].cg,
                                                                             .net = &net,
                                                                             .seccomp_fd = seccomp_fd },
                                                  &slots[i].sb, &err);
                t2 = now_ns();
                if (r < 0) {
                        fprintf(stderr, "lib create %s: %s\n", name, err ? err->message : strerror(-r));
                        ret = r;
                        break;
                }
                create[started] = t2 - t0;
                cgroup[started] = t1 - t0;
                started++;
        }

        /* Idle memory as the cgroups account it, once tmux and its shell have settled. */
        if (!interrupted && started > 0) {
                (void) usleep(500 * 1000);
                for (size_t i = 0; i < started; i++) {
                        isolate_usage u = {};
                        if (isolate_cgroup_usage(slots[i].cg, &u) >= 0)
                                mem_sum += u.memory_current;
                }
        }

        for (size_t i = 0; i < runs; i++) {
                uint64_t t0 = now_ns();
                bool ok = true;

                if (slots[i].sb && isolate_sandbox_stop(slots[i].sb, 0) < 0)
                        ok = false;
                if (slots[i].cg) {
                        if (!slots[i].sb)
                                (void) isolate_cgroup_kill(slots[i].cg);
                        if (isolate_cgroup_destroy(slots[i].cg) < 0)
                                ok = false;
                }
                if (slots[i].sb)
                        stop[stopped++] = now_ns() - t0;
                if (!ok) {
                        fprintf(stderr, "lib stop bl-%zu failed\n", i);
                        ret = -EIO;
                }
                slots[i].sb = isolate_sandbox_free(slots[i].sb);
                slots[i].cg = isolate_cgroup_free(slots[i].cg);
                if (slots[i].ws)
                        (void) rmdir(slots[i].ws);
                free(slots[i].ws);
        }
        (void) isolate_cgroup_destroy_parent(parent);

        print_stats("lib create->tmux ready", create, started);
        print_stats("  of which workspace+cgroup", cgroup, started);
        print_stats("lib stop+cgroup removal", stop, stopped);
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

/* ---- tmux: the floor, tmux new-session -d on the host without any isolation ---- */

/* Runs argv with the sandbox's clean environment (HOME without dotfiles), waits for it. */
static int spawn_wait(const char *const *argv, const char *home, int *ret_status)
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
                if (devnull >= 0) {
                        (void) dup2(devnull, 0);
                        (void) dup2(devnull, 1);
                }
                execvpe(argv[0], (char *const *) argv, envp);
                _exit(127);
        }
        while (waitpid(pid, ret_status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

static int run_tmux(unsigned runs, const char *dir)
{
        _cleanup_free_ uint64_t *create = calloc(runs, sizeof(uint64_t)), *stop = calloc(runs, sizeof(uint64_t));
        size_t started = 0, stopped = 0;
        int ret = 0, status, r;

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
                r = spawn_wait(argv, dir, &status);
                if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
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
                r = spawn_wait(argv, dir, &status);
                stop[stopped++] = now_ns() - t0;
                (void) unlink(sock);
                if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
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
