/* SPDX-License-Identifier: MIT */
/* isolate cgroups on whatever version this host runs (v1 here; v2 through tools/cgroup2-vm): limits
 * land in the control files, a memory hog dies at its limit while its neighbour lives, a fork bomb
 * stops at pids.max, usage is plausible, kill + destroy leave nothing behind. */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "common.h"
#include "isolate.h"
#include "tap.h"

static char parent[64];
static isolate_host_caps caps;
static const char *unusable;

__attribute__((constructor)) static void setup(void)
{
        snprintf(parent, sizeof(parent), "pc-test-%d", (int)getpid());
        if (geteuid() != 0)
                unusable = "needs root";
        else if (isolate_host_caps_probe(&caps) < 0)
                unusable = "host capability probe failed";
        else if (caps.cgroup_version == ISOLATE_CGROUP_NONE || !caps.cgroup_memory || !caps.cgroup_pids ||
                 !caps.cgroup_cpu)
                unusable = "no cgroup hierarchy with memory, pids and cpu controllers";
        /* Grandchildren of the fork bomb get reparented to us, so we can reap them. */
        (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

__attribute__((destructor)) static void teardown(void)
{
        if (!unusable)
                (void)isolate_cgroup_destroy_parent(parent);
}

static bool v2(void)
{
        return caps.cgroup_version == ISOLATE_CGROUP_V2;
}

/* The directory of one v1 controller for our group (this host and Debian mount them there). */
static char *v1_dir(const char *ctrl, const char *name)
{
        char *p = NULL;
        (void)asprintf_safe(&p, "/sys/fs/cgroup/%s/%s/%s", ctrl, parent, name);
        return p;
}

static char *read_value(const char *dir, const char *file)
{
        _cleanup_free_ char *path = strjoin(dir, "/", file), *s = NULL;

        if (!path || read_full_file(path, 1 << 20, &s, NULL) < 0)
                return NULL;
        return strdup(strstrip(s));
}

#define CHECK_FILE(dir, file, expected)                           \
        do {                                                      \
                _cleanup_free_ char *_v_ = read_value(dir, file); \
                CHECK_STREQ(_v_, expected);                       \
        } while (0)

typedef enum {
        CHILD_PAUSE,
        CHILD_HOG,
        CHILD_FORK_BOMB,
        CHILD_BURN,
} child_action;

typedef struct child {
        pid_t pid;
        int go;     /* write a byte: the child starts its action (after we attached it) */
        int report; /* the child's report (fork bomb count, burn done) */
} child;

static _noreturn_ void child_run(child_action a, int go, int report)
{
        char c;

        if (read(go, &c, 1) != 1)
                _exit(90);
        switch (a) {
        case CHILD_PAUSE:
                break;
        case CHILD_HOG:
                /* Touch 256 MiB page by page; the group allows far less. */
                for (size_t i = 0; i < 256; i++) {
                        char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                       -1, 0);
                        if (p == MAP_FAILED)
                                _exit(91);
                        for (size_t o = 0; o < (1 << 20); o += 4096)
                                p[o] = 1;
                }
                _exit(0); /* survived: the test fails */
        case CHILD_FORK_BOMB: {
                int n = 0, err = 0;
                for (;;) {
                        pid_t p = fork();
                        if (p < 0) {
                                err = errno;
                                break;
                        }
                        if (p == 0)
                                for (;;)
                                        pause();
                        if (++n > 10000)
                                break;
                }
                int msg[2] = {n, err};
                if (write(report, msg, sizeof(msg)) != sizeof(msg))
                        _exit(92);
                break;
        }
        case CHILD_BURN: {
                struct timespec ts;
                do
                        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
                while (ts.tv_sec == 0 && ts.tv_nsec < 300 * 1000 * 1000);
                if (write(report, "x", 1) != 1)
                        _exit(93);
                break;
        }
        }
        for (;;)
                pause();
}

static int child_start(child_action a, child *ret)
{
        int go[2], rep[2];
        pid_t pid;

        if (pipe2(go, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                child_run(a, go[0], rep[1]);
        close(go[0]);
        close(rep[1]);
        *ret = (child){.pid = pid, .go = go[1], .report = rep[0]};
        return 0;
}

static void child_go(child *c)
{
        CHECK(write(c->go, "g", 1) == 1);
}

/* Reaps a child and every reparented grandchild; returns the child's wait status. */
static int child_reap(child *c)
{
        int status = -1;

        while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
                ;
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
        close(c->go);
        close(c->report);
        return status;
}

static bool in_group(pid_t pid, const char *name)
{
        _cleanup_free_ char *path = NULL, *s = NULL, *tail = NULL;
        const char *line;

        if (asprintf_safe(&path, "/proc/%d/cgroup", (int)pid) < 0 ||
            read_full_file(path, 1 << 16, &s, NULL) < 0)
                return false;
        /* v2: the daemon's group may come first ("0::/some.service/pc-test-1/x"). */
        line = strstr(s, v2() ? "0::/" : ":memory:/");
        return line && asprintf_safe(&tail, "/%s/%s\n", parent, name) >= 0 && strstr(line, tail);
}

static bool gone(isolate_cgroup *cg, const char *name)
{
        if (v2())
                return access(isolate_cgroup_path(cg), F_OK) < 0 && errno == ENOENT;
        static const char *const ctrls[] = {"memory", "pids", "cpu", "cpuacct"};
        for (size_t i = 0; i < ELEMENTSOF(ctrls); i++) {
                _cleanup_free_ char *d = v1_dir(ctrls[i], name);
                if (access(d, F_OK) >= 0)
                        return false;
        }
        return true;
}

TEST(limits_attach_kill_destroy)
{
        isolate_limits lim = {
                .memory_max = 64 << 20,
                .swap_max = 0,
                .pids_max = 32,
                .cpu_quota_us = 50000,
                .cpu_period_us = 100000,
        };
        _cleanup_pc_error_ pc_error *err = NULL;
        isolate_cgroup *cg = NULL;
        isolate_usage u;
        child c;
        int r, status;

        if (unusable)
                SKIP(unusable);
        r = isolate_cgroup_new(parent, "limits", &lim, &cg, &err);
        CHECK_INTEQ(r, 0);
        if (r < 0) {
                printf("# %s\n", err ? err->message : "?");
                return;
        }
        CHECK_INTEQ(isolate_cgroup_get_version(cg), caps.cgroup_version);
        CHECK(startswith(isolate_cgroup_path(cg), "/sys/fs/cgroup/"));
        printf("# cgroup v%d, path %s\n", (int)caps.cgroup_version, isolate_cgroup_path(cg));

        if (v2()) {
                const char *d = isolate_cgroup_path(cg);
                CHECK_FILE(d, "memory.max", "67108864");
                if (access("/sys/fs/cgroup/memory.swap.max", F_OK) >= 0 || read_value(d, "memory.swap.max"))
                        CHECK_FILE(d, "memory.swap.max", "0");
                CHECK_FILE(d, "memory.oom.group", "0");
                CHECK_FILE(d, "pids.max", "32");
                CHECK_FILE(d, "cpu.max", "50000 100000");
        } else {
                _cleanup_free_ char *m = v1_dir("memory", "limits"), *p = v1_dir("pids", "limits"),
                                    *cpu = v1_dir("cpu", "limits"),
                                    *memsw = read_value(m, "memory.memsw.limit_in_bytes");
                CHECK_FILE(m, "memory.limit_in_bytes", "67108864");
                if (memsw)
                        CHECK_STREQ(memsw, "67108864");
                CHECK_FILE(p, "pids.max", "32");
                CHECK_FILE(cpu, "cpu.cfs_quota_us", "50000");
                CHECK_FILE(cpu, "cpu.cfs_period_us", "100000");
        }

        CHECK_INTEQ(child_start(CHILD_PAUSE, &c), 0);
        CHECK_INTEQ(isolate_cgroup_attach(cg, c.pid), 0);
        CHECK(in_group(c.pid, "limits"));
        CHECK_INTEQ(isolate_cgroup_usage(cg, &u), 0);
        CHECK_INTEQ(u.pids_current, 1);

        /* Raise and lift limits on a populated group. */
        lim = (isolate_limits){
                .memory_max = 128 << 20, .swap_max = 16 << 20, .pids_max = 0, .cpu_quota_us = 0};
        CHECK_INTEQ(isolate_cgroup_set_limits(cg, &lim), 0);
        if (v2()) {
                const char *d = isolate_cgroup_path(cg);
                CHECK_FILE(d, "memory.max", "134217728");
                CHECK_FILE(d, "pids.max", "max");
                CHECK_FILE(d, "cpu.max", "max 100000");
        } else {
                _cleanup_free_ char *m = v1_dir("memory", "limits"), *p = v1_dir("pids", "limits"),
                                    *cpu = v1_dir("cpu", "limits"),
                                    *memsw = read_value(m, "memory.memsw.limit_in_bytes");
                CHECK_FILE(m, "memory.limit_in_bytes", "134217728");
                if (memsw)
                        CHECK_STREQ(memsw, "150994944");
                CHECK_FILE(p, "pids.max", "max");
                CHECK_FILE(cpu, "cpu.cfs_quota_us", "-1");
        }

        /* Destroying a populated group is refused, and changes nothing. */
        CHECK_INTEQ(isolate_cgroup_destroy(cg), -EBUSY);
        CHECK(!gone(cg, "limits"));

        uint64_t t0 = now_usec(CLOCK_MONOTONIC);
        CHECK_INTEQ(isolate_cgroup_kill(cg), 0);
        printf("# kill took %.1f ms\n", (now_usec(CLOCK_MONOTONIC) - t0) / 1000.0);
        status = child_reap(&c);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        CHECK_INTEQ(isolate_cgroup_destroy(cg), 0);
        CHECK(gone(cg, "limits"));
        /* Idempotent. */
        CHECK_INTEQ(isolate_cgroup_destroy(cg), 0);
        isolate_cgroup_free(cg);
}

TEST(memory_hog_is_oom_killed_neighbour_survives)
{
        isolate_limits lim = {.memory_max = 32 << 20, .swap_max = 0, .pids_max = 16};
        _cleanup_pc_error_ pc_error *err = NULL;
        isolate_cgroup *cg = NULL;
        isolate_usage u;
        child neighbour, hog;
        int status;

        if (unusable)
                SKIP(unusable);
        CHECK_INTEQ(isolate_cgroup_new(parent, "hog", &lim, &cg, &err), 0);
        if (!cg)
                return;
        CHECK_INTEQ(child_start(CHILD_PAUSE, &neighbour), 0);
        CHECK_INTEQ(child_start(CHILD_HOG, &hog), 0);
        CHECK_INTEQ(isolate_cgroup_attach(cg, neighbour.pid), 0);
        CHECK_INTEQ(isolate_cgroup_attach(cg, hog.pid), 0);
        child_go(&neighbour);
        child_go(&hog);

        while (waitpid(hog.pid, &status, 0) < 0 && errno == EINTR)
                ;
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        /* The neighbour (think: the sandbox's init and tmux) is still running. */
        CHECK_INTEQ(waitpid(neighbour.pid, &status, WNOHANG), 0);
        CHECK(in_group(neighbour.pid, "hog"));
        CHECK_INTEQ(isolate_cgroup_usage(cg, &u), 0);
        printf("# oom_kills=%" PRIu64 " peak=%" PRIu64 " current=%" PRIu64 "\n", u.oom_kills, u.memory_peak,
               u.memory_current);
        CHECK(u.oom_kills >= 1);
        CHECK(u.memory_peak > (16 << 20) && u.memory_peak <= (32 << 20));
        CHECK_INTEQ(u.pids_current, 1);

        CHECK_INTEQ(isolate_cgroup_kill(cg), 0);
        status = child_reap(&neighbour);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        close(hog.go);
        close(hog.report);
        CHECK_INTEQ(isolate_cgroup_destroy(cg), 0);
        CHECK(gone(cg, "hog"));
        isolate_cgroup_free(cg);
}

TEST(fork_bomb_stops_at_pids_max)
{
        isolate_limits lim = {.memory_max = 256 << 20, .pids_max = 16};
        _cleanup_pc_error_ pc_error *err = NULL;
        isolate_cgroup *cg = NULL;
        isolate_usage u;
        int msg[2] = {-1, -1}, status;
        child bomb;

        if (unusable)
                SKIP(unusable);
        CHECK_INTEQ(isolate_cgroup_new(parent, "bomb", &lim, &cg, &err), 0);
        if (!cg)
                return;
        CHECK_INTEQ(child_start(CHILD_FORK_BOMB, &bomb), 0);
        CHECK_INTEQ(isolate_cgroup_attach(cg, bomb.pid), 0);
        child_go(&bomb);
        CHECK(read(bomb.report, msg, sizeof(msg)) == sizeof(msg));
        printf("# forks before failure: %d, errno %d\n", msg[0], msg[1]);
        CHECK_INTEQ(msg[1], EAGAIN);
        CHECK_INTEQ(msg[0], 15); /* 16 tasks: the bomb and 15 children */
        CHECK_INTEQ(isolate_cgroup_usage(cg, &u), 0);
        CHECK_INTEQ(u.pids_current, 16);

        CHECK_INTEQ(isolate_cgroup_kill(cg), 0);
        status = child_reap(&bomb);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        CHECK_INTEQ(isolate_cgroup_usage(cg, &u), 0);
        CHECK_INTEQ(u.pids_current, 0);
        CHECK_INTEQ(isolate_cgroup_destroy(cg), 0);
        CHECK(gone(cg, "bomb"));
        isolate_cgroup_free(cg);
}

TEST(usage_is_sane)
{
        isolate_limits lim = {.memory_max = 128 << 20, .pids_max = 8};
        _cleanup_pc_error_ pc_error *err = NULL;
        isolate_cgroup *cg = NULL;
        isolate_usage u;
        child burn, idle;
        char c;

        if (unusable)
                SKIP(unusable);
        CHECK_INTEQ(isolate_cgroup_new(parent, "usage", &lim, &cg, &err), 0);
        if (!cg)
                return;
        CHECK_INTEQ(isolate_cgroup_usage(cg, &u), 0);
        CHECK_INTEQ(u.pids_current, 0);
        CHECK_INTEQ(u.cpu_usage_usec, 0);
        CHECK_INTEQ(u.oom_kills, 0);

        CHECK_INTEQ(child_start(CHILD_BURN, &burn), 0);
        CHECK_INTEQ(child_start(CHILD_PAUSE, &idle), 0);
        CHECK_INTEQ(isolate_cgroup_attach(cg, burn.pid), 0);
        CHECK_INTEQ(isolate_cgroup_attach(cg, idle.pid), 0);
        child_go(&burn);
        CHECK(read(burn.report, &c, 1) == 1);
        CHECK_INTEQ(isolate_cgroup_usage(cg, &u), 0);
        printf("# cpu=%" PRIu64 "us memory current=%" PRIu64 " peak=%" PRIu64 " pids=%" PRIu64 "\n",
               u.cpu_usage_usec, u.memory_current, u.memory_peak, u.pids_current);
        CHECK(u.cpu_usage_usec >= 250000 && u.cpu_usage_usec < 30000000);
        CHECK(u.memory_current > 0 && u.memory_current < (128 << 20));
        CHECK(u.memory_peak >= u.memory_current);
        CHECK_INTEQ(u.pids_current, 2);
        CHECK_INTEQ(u.oom_kills, 0);

        CHECK_INTEQ(isolate_cgroup_kill(cg), 0);
        child_reap(&burn);
        child_reap(&idle);
        CHECK_INTEQ(isolate_cgroup_destroy(cg), 0);
        isolate_cgroup_free(cg);
}

TEST(open_list_busy_and_leftovers)
{
        isolate_limits lim = {.memory_max = 64 << 20, .pids_max = 8};
        _cleanup_pc_error_ pc_error *err = NULL;
        isolate_cgroup *a = NULL, *b = NULL, *again = NULL;
        char **names = NULL;
        child c;
        int n = 0;

        if (unusable)
                SKIP(unusable);
        CHECK_INTEQ(isolate_cgroup_new(parent, "aa", &lim, &a, NULL), 0);
        CHECK_INTEQ(isolate_cgroup_new(parent, "bb", &lim, &b, NULL), 0);
        if (!a || !b)
                return;
        CHECK_INTEQ(isolate_cgroup_list(parent, &names), 0);
        for (char **s = names; s && *s; s++, n++)
                CHECK(streq(*s, "aa") || streq(*s, "bb"));
        CHECK_INTEQ(n, 2);
        for (char **s = names; s && *s; s++)
                free(*s);
        free(names);

        /* Re-open after a "restart": same group, limits untouched. */
        CHECK_INTEQ(isolate_cgroup_open(parent, "aa", &again), 0);
        if (again) {
                CHECK_STREQ(isolate_cgroup_path(again), isolate_cgroup_path(a));
                CHECK_INTEQ(child_start(CHILD_PAUSE, &c), 0);
                CHECK_INTEQ(isolate_cgroup_attach(again, c.pid), 0);
                /* Creating over a group that holds processes is refused with a reason. */
                isolate_cgroup *dup = NULL;
                CHECK_INTEQ(isolate_cgroup_new(parent, "aa", &lim, &dup, &err), -EBUSY);
                CHECK(err && streq(err->code, "cgroup_busy"));
                if (err)
                        printf("# %s\n", err->message);
                CHECK_INTEQ(isolate_cgroup_kill(again), 0);
                child_reap(&c);
                isolate_cgroup_free(again);
        }
        CHECK_INTEQ(isolate_cgroup_open(parent, "nope", &again), -ENOENT);
        CHECK_INTEQ(isolate_cgroup_open(parent, "../x", &again), -EINVAL);
        CHECK_INTEQ(isolate_cgroup_new(parent, "Bad/Name", &lim, &again, NULL), -EINVAL);

        CHECK_INTEQ(isolate_cgroup_destroy_parent(parent), -EBUSY);
        CHECK_INTEQ(isolate_cgroup_destroy(a), 0);
        CHECK_INTEQ(isolate_cgroup_destroy(b), 0);
        CHECK_INTEQ(isolate_cgroup_list(parent, &names), 0);
        CHECK(names && !names[0]);
        free(names);
        CHECK_INTEQ(isolate_cgroup_destroy_parent(parent), 0);
        CHECK_INTEQ(isolate_cgroup_destroy_parent(parent), 0);
        isolate_cgroup_free(a);
        isolate_cgroup_free(b);
}

TEST(clone_into_cgroup)
{
        isolate_limits lim = {.pids_max = 8};
        isolate_cgroup *cg = NULL;
        int status;

        if (unusable)
                SKIP(unusable);
        CHECK_INTEQ(isolate_cgroup_new(parent, "clone", &lim, &cg, NULL), 0);
        if (!cg)
                return;
        if (!v2()) {
                /* v1: the child moves itself in through "tasks" files its parent opened, even after it
                 * gave up root (the kernel checks who opened them), and only into this group. */
                isolate_cgroup_join join = {};
                int done[2];
                char ok = 0;
                CHECK_INTEQ(isolate_cgroup_fd(cg), -EOPNOTSUPP);
                CHECK_INTEQ(isolate_cgroup_join_open(cg, &join), 0);
                CHECK(join.n >= 2);
                CHECK_INTEQ(pipe2(done, O_CLOEXEC), 0);
                pid_t pid = fork();
                if (pid == 0) {
                        /* One byte when joined; EOF (the child died) when not. */
                        if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0 ||
                            isolate_cgroup_join_self(&join) < 0 || write(done[1], "j", 1) != 1)
                                _exit(1);
                        for (;;)
                                pause();
                }
                isolate_cgroup_join_close(&join);
                CHECK_INTEQ(join.n, 0);
                close(done[1]);
                CHECK(pid > 0);
                if (pid > 0) {
                        CHECK(read(done[0], &ok, 1) == 1 && ok == 'j');
                        CHECK(in_group(pid, "clone"));
                        CHECK_INTEQ(isolate_cgroup_kill(cg), 0);
                        CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status));
                }
                close(done[0]);
        } else {
                isolate_cgroup_join join = {};
                CHECK_INTEQ(isolate_cgroup_join_open(cg, &join), -EOPNOTSUPP);
                struct clone_args args = {
                        .flags = CLONE_INTO_CGROUP,
                        .exit_signal = SIGCHLD,
                        .cgroup = (uint64_t)isolate_cgroup_fd(cg),
                };
                CHECK(isolate_cgroup_fd(cg) >= 0);
                pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
                if (pid == 0)
                        for (;;)
                                pause();
                CHECK(pid > 0);
                if (pid > 0) {
                        CHECK(in_group(pid, "clone"));
                        CHECK_INTEQ(isolate_cgroup_kill(cg), 0);
                        CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status));
                }
        }
        CHECK_INTEQ(isolate_cgroup_destroy(cg), 0);
        isolate_cgroup_free(cg);
}

/* v2: a group with processes cannot enable controllers for children, so the library moves the
 * daemon into a "daemon" leaf first. Simulate a service group holding us. v1 has no such rule: the
 * daemon must stay where it is. */
TEST(daemon_leaves_inner_node)
{
        isolate_limits lim = {.pids_max = 8};
        _cleanup_pc_error_ pc_error *err = NULL;
        _cleanup_free_ char *before = NULL, *after = NULL, *svc = NULL, *self = NULL;
        isolate_cgroup *cg = NULL;

        if (unusable)
                SKIP(unusable);
        if (!v2()) {
                CHECK_INTEQ(read_full_file("/proc/self/cgroup", 1 << 16, &before, NULL), 0);
                CHECK_INTEQ(isolate_cgroup_new(parent, "stay", &lim, &cg, NULL), 0);
                CHECK_INTEQ(read_full_file("/proc/self/cgroup", 1 << 16, &after, NULL), 0);
                CHECK_STREQ(before, after);
                if (cg) {
                        CHECK_INTEQ(isolate_cgroup_destroy(cg), 0);
                        isolate_cgroup_free(cg);
                }
                CHECK_INTEQ(isolate_cgroup_destroy_parent(parent), 0);
                return;
        }

        CHECK_INTEQ(asprintf_safe(&svc, "/sys/fs/cgroup/pc-svc-%d.service", (int)getpid()) > 0, 1);
        CHECK_INTEQ(asprintf_safe(&self, "%d", (int)getpid()) > 0, 1);
        CHECK(mkdir(svc, 0755) >= 0);
        child stranger;
        CHECK_INTEQ(child_start(CHILD_PAUSE, &stranger), 0);
        {
                _cleanup_close_ int fd = open(svc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                _cleanup_close_ int procs = openat(fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
                char other[24];
                snprintf(other, sizeof(other), "%d", (int)stranger.pid);
                CHECK(write(procs, self, strlen(self)) == (ssize_t)strlen(self));
                CHECK(write(procs, other, strlen(other)) == (ssize_t)strlen(other));
        }
        /* A process that is not the daemon stays where it is, and blocks delegation: refused with a hint. */
        CHECK_INTEQ(isolate_cgroup_new(parent, "inner", &lim, &cg, &err), -EBUSY);
        CHECK(err && strstr(err->message, "Delegate=yes"));
        if (err)
                printf("# %s\n", err->message);
        err = pc_error_free(err);
        (void)kill(stranger.pid, SIGKILL);
        child_reap(&stranger);
        CHECK_INTEQ(isolate_cgroup_new(parent, "inner", &lim, &cg, &err), 0);
        if (err)
                printf("# %s\n", err->message);
        CHECK_INTEQ(read_full_file("/proc/self/cgroup", 1 << 16, &after, NULL), 0);
        {
                _cleanup_free_ char *want = NULL, *leaf = NULL;
                CHECK(asprintf_safe(&want, "0::/pc-svc-%d.service/daemon\n", (int)getpid()) > 0);
                CHECK(after && strstr(after, want));
                CHECK(asprintf_safe(&leaf, "%s/%s/inner", svc, parent) > 0);
                CHECK(cg && streq(isolate_cgroup_path(cg), leaf));
                _cleanup_free_ char *sc = read_value(svc, "cgroup.subtree_control");
                CHECK(sc && strstr(sc, "memory") && strstr(sc, "pids") && strstr(sc, "cpu"));
        }
        /* A second group reuses the same layout: no "daemon/daemon" nesting. */
        {
                isolate_cgroup *cg2 = NULL;
                _cleanup_free_ char *again = NULL;
                CHECK_INTEQ(isolate_cgroup_new(parent, "inner2", &lim, &cg2, NULL), 0);
                CHECK_INTEQ(read_full_file("/proc/self/cgroup", 1 << 16, &again, NULL), 0);
                CHECK_STREQ(again, after);
                if (cg2) {
                        CHECK(strstr(isolate_cgroup_path(cg2), "/daemon/") == NULL);
                        CHECK_INTEQ(isolate_cgroup_destroy(cg2), 0);
                        isolate_cgroup_free(cg2);
                }
        }
        if (cg) {
                CHECK_INTEQ(isolate_cgroup_destroy(cg), 0);
                isolate_cgroup_free(cg);
        }
        CHECK_INTEQ(isolate_cgroup_destroy_parent(parent), 0);
        /* Back to where the VM started us; remove the simulated service. */
        {
                _cleanup_close_ int procs = open("/sys/fs/cgroup/cgroup.procs", O_WRONLY | O_CLOEXEC);
                _cleanup_free_ char *leaf = strjoin(svc, "/daemon");
                CHECK(write(procs, self, strlen(self)) == (ssize_t)strlen(self));
                CHECK(rmdir(leaf) >= 0);
                CHECK(rmdir(svc) >= 0);
        }
}

TEST(host_caps_match_proc)
{
        static const struct {
                const char *name;
                size_t off;
        } ns[] = {
                {"user", offsetof(isolate_host_caps, ns_user)},
                {"mnt", offsetof(isolate_host_caps, ns_mount)},
                {"pid", offsetof(isolate_host_caps, ns_pid)},
                {"net", offsetof(isolate_host_caps, ns_net)},
                {"uts", offsetof(isolate_host_caps, ns_uts)},
                {"ipc", offsetof(isolate_host_caps, ns_ipc)},
                {"cgroup", offsetof(isolate_host_caps, ns_cgroup)},
        };
        isolate_host_caps hc;
        _cleanup_free_ char *fs = NULL, *rel = NULL;

        if (geteuid() != 0)
                SKIP("needs root (namespace probes)");
        CHECK_INTEQ(isolate_host_caps_probe(&hc), 0);
        for (size_t i = 0; i < ELEMENTSOF(ns); i++) {
                char p[64];
                bool have = *(bool *)((char *)&hc + ns[i].off);
                snprintf(p, sizeof(p), "/proc/self/ns/%s", ns[i].name);
                /* As root on a kernel that has the namespace, unshare works. */
                CHECK(have == (access(p, F_OK) >= 0));
        }
        CHECK_INTEQ(read_full_file("/proc/filesystems", 1 << 20, &fs, NULL), 0);
        CHECK(hc.overlayfs == (fs && strstr(fs, "\toverlay\n") != NULL));
        CHECK_INTEQ(read_full_file("/proc/sys/kernel/osrelease", 4096, &rel, NULL), 0);
        CHECK_STREQ(hc.kernel_release, rel ? strstrip(rel) : NULL);
        CHECK(hc.pidfd);   /* this kernel is ≥ 5.3 */
        CHECK(hc.openat2); /* ≥ 5.6 */
        CHECK(hc.seccomp && hc.seccomp_user_notif);
        CHECK(hc.idmapped_mounts); /* ≥ 5.12 */
        /* The unified hierarchy at /sys/fs/cgroup means v2; the hybrid host's empty
         * /sys/fs/cgroup/unified must not. */
        {
                _cleanup_free_ char *ctrl = read_value("/sys/fs/cgroup", "cgroup.controllers");
                bool pure_v2 = ctrl && strstr(ctrl, "memory") && strstr(ctrl, "pids") && strstr(ctrl, "cpu");
                CHECK_INTEQ(hc.cgroup_version, pure_v2 ? ISOLATE_CGROUP_V2 : ISOLATE_CGROUP_V1);
                if (!pure_v2)
                        CHECK(access("/sys/fs/cgroup/memory/memory.limit_in_bytes", F_OK) >= 0);
        }
        CHECK(hc.cgroup_memory && hc.cgroup_pids && hc.cgroup_cpu);
        {
                FILE *p = popen("tmux -V 2>/dev/null", "re");
                char line[64] = "";
                if (p) {
                        if (!fgets(line, sizeof(line), p))
                                line[0] = 0;
                        pclose(p);
                }
                if (startswith(line, "tmux "))
                        CHECK_STREQ(hc.tmux_version, strstrip(line + 5));
                else
                        CHECK_STREQ(hc.tmux_version, "");
        }
        printf("# cgroup v%d, tmux \"%s\", kernel %s, user_notif %d, overlayfs %d\n", (int)hc.cgroup_version,
               hc.tmux_version, hc.kernel_release, hc.seccomp_user_notif, hc.overlayfs);
}

TAP_MAIN()
