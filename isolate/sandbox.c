/* SPDX-License-Identifier: MIT */
/* Sandboxes: creation (clone3 into new namespaces), the privilege sequence, the sandbox's PID 1, exec into
 * a running sandbox, stop and adoption.
 *
 * Between clone and exec the children use raw syscalls only where glibc keeps per-thread state that a
 * raw clone3() does not reset (setresuid & co. broadcast to the parent's threads; fork() takes malloc
 * locks): the daemon is multi-threaded, its other threads do not exist in the child. Everything the
 * child needs is prepared by the parent before clone, so the child does not allocate. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common.h"
#include "isolate-private.h"
#include "isolate.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define SANDBOX_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SANDBOX_LANG "C.UTF-8"
#define DEFAULT_TERM "xterm-256color"
#define DEFAULT_READY_TIMEOUT_USEC (10ULL * 1000000ULL)
#define DEFAULT_STOP_TIMEOUT_USEC  (5ULL * 1000000ULL)
#define TMUX_OUTPUT_MAX            (4U * 1024U * 1024U)
#define TMUX_TIMEOUT_MSEC          10000

#define CAP_BIT(c) (UINT64_C(1) << (c))
/* The bounding set inside every sandbox. All of these act only inside the sandbox's user namespace, on
 * files and processes whose owners are mapped (the sandbox's own range): none of them reaches a host
 * file owned by host root or a host user. Not included, among others: SYS_ADMIN (mount, namespaces),
 * NET_ADMIN and NET_RAW (raw packets, spoofing), SYS_PTRACE, MKNOD, SYS_CHROOT, SETPCAP, SETFCAP,
 * AUDIT_WRITE, SYS_TIME, SYS_MODULE. The agent holds none of them: only sandbox root (sandbox run
 * --root) can have them, and init keeps just what it needs. */
static const uint64_t bounding_keep = CAP_BIT(CAP_CHOWN) | CAP_BIT(CAP_DAC_OVERRIDE) | CAP_BIT(CAP_FOWNER) |
                                      CAP_BIT(CAP_FSETID) | CAP_BIT(CAP_KILL) | CAP_BIT(CAP_SETGID) |
                                      CAP_BIT(CAP_SETUID) | CAP_BIT(CAP_NET_BIND_SERVICE);
/* init: switch the tmux child to the agent, signal the agent's processes. */
static const uint64_t init_caps = CAP_BIT(CAP_KILL) | CAP_BIT(CAP_SETGID) | CAP_BIT(CAP_SETUID);
/* What an exec helper needs between joining the namespaces and becoming the agent. */
static const uint64_t switch_caps = CAP_BIT(CAP_SETGID) | CAP_BIT(CAP_SETUID);

struct isolate_sandbox {
        char *name;
        pid_t pid;
        int pidfd;
        uint64_t starttime;
        uid_t uid_base;
        uint32_t uid_count;
        isolate_cgroup *cgroup; /* borrowed */
        isolate_bpf bpf;
        unsigned cap_last;
};

/* ---- parent <-> child messages (SOCK_SEQPACKET: one message per record) ---- */

enum {
        MSG_GO = 1,     /* parent -> child: maps written, cgroup joined, network configured */
        MSG_READY = 2,  /* init -> parent: tmux session exists */
        MSG_FAILED = 3, /* child -> parent: `step` failed with `error` */
        MSG_PID = 4,    /* exec helper -> parent: the process' pid, its pidfd as SCM_RIGHTS */
};

typedef struct sync_msg {
        int32_t kind;
        int32_t error; /* positive errno, or the exit status for "start tmux" */
        int32_t value;
        char step[160];
} sync_msg;

static void send_msg(int fd, int kind, int error, int value, const char *step)
{
        sync_msg m = { .kind = kind, .error = error, .value = value };

        if (step)
                snprintf(m.step, sizeof(m.step), "%s", step);
        (void) send(fd, &m, sizeof(m), MSG_NOSIGNAL);
}

_noreturn_ static void child_fail(int fd, const char *step, int r)
{
        send_msg(fd, MSG_FAILED, abs(r), 0, step);
        _exit(127);
}

/* Waits up to timeout_msec (-1: forever) for one message; -ETIMEDOUT, or -EPIPE on EOF. */
static int recv_msg(int fd, int timeout_msec, sync_msg *ret, int *ret_fd)
{
        struct pollfd p = { .fd = fd, .events = POLLIN };
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = ret, .iov_len = sizeof(*ret) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof(control) };
        ssize_t n;
        int r;

        for (;;) {
                r = poll(&p, 1, timeout_msec);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return -ETIMEDOUT;
                break;
        }
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        /* A peer that exited with our message unread leaves ECONNRESET pending, and seqpacket sockets
         * report it before queued data; the error is cleared by being reported, so read again to get
         * the peer's last message (its reason for failing). */
        if (n < 0 && errno == ECONNRESET)
                n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0)
                return errno == EAGAIN ? -EPIPE : -errno;
        if (n == 0)
                return -EPIPE;
        if ((size_t) n != sizeof(*ret))
                return -EBADMSG;
        ret->step[sizeof(ret->step) - 1] = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        int got;
                        memcpy(&got, CMSG_DATA(c), sizeof(int));
                        if (ret_fd)
                                *ret_fd = got;
                        else
                                safe_close(got);
                }
        return 0;
}

static int send_pidfd(int fd, pid_t pid, int pidfd)
{
        sync_msg m = { .kind = MSG_PID, .value = pid };
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof(control) };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pidfd, sizeof(int));
        return sendmsg(fd, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* ---- small syscall helpers usable between clone and exec ---- */

static pid_t raw_clone3(struct clone_args *args)
{
        return (pid_t) syscall(SYS_clone3, args, sizeof(*args));
}

/* fork() without glibc's atfork machinery (see the top of the file). Plain clone(), not clone3(): init
 * calls it under its own seccomp filter, which answers clone3 with ENOSYS. The pidfd goes to the
 * parent_tid argument, third on every architecture. */
static pid_t raw_fork(uint64_t flags, int *ret_pidfd)
{
        return (pid_t) syscall(SYS_clone, (unsigned long) flags | SIGCHLD, 0, ret_pidfd, 0, 0);
}

static int raw_pidfd_open(pid_t pid)
{
        int fd = (int) syscall(SYS_pidfd_open, pid, 0);
        return fd < 0 ? -errno : fd;
}

static int raw_pidfd_send_signal(int pidfd, int sig)
{
        return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

static void reset_signals(void)
{
        sigset_t empty;

        for (int sig = 1; sig < _NSIG; sig++) {
                struct sigaction sa = { .sa_handler = SIG_DFL };
                if (sig == SIGKILL || sig == SIGSTOP)
                        continue;
                (void) sigaction(sig, &sa, NULL);
        }
        sigemptyset(&empty);
        (void) sigprocmask(SIG_SETMASK, &empty, NULL);
}

/* Closes every fd >= 3 except those in keep[] (at most 2). */
static int close_all_except(int a, int b)
{
        int lo = MIN(a, b), hi = MAX(a, b), from = 3;
        int keep[2] = { lo, hi };

        for (size_t i = 0; i < 2; i++) {
                if (keep[i] < from)
                        continue;
                if (keep[i] > from && syscall(SYS_close_range, from, keep[i] - 1, 0) < 0)
                        return -errno;
                from = keep[i] + 1;
        }
        return syscall(SYS_close_range, from, ~0U, 0) < 0 ? -errno : 0;
}

static int stdio_to_devnull(void)
{
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        for (int i = 0; i < 3; i++)
                if (dup2(fd, i) < 0)
                        return -errno;
        if (fd > 2)
                close(fd);
        return 0;
}

static int drop_bounding_set(unsigned cap_last)
{
        for (unsigned c = 0; c <= cap_last && c < 64; c++) {
                if (bounding_keep & CAP_BIT(c))
                        continue;
                if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
                        return -errno;
        }
        return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 ? -errno : 0;
}

/* Sets effective = permitted = caps, inheritable = none. */
static int set_caps(uint64_t caps)
{
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2] = {
                { .effective = (uint32_t) caps, .permitted = (uint32_t) caps },
                { .effective = (uint32_t) (caps >> 32), .permitted = (uint32_t) (caps >> 32) },
        };
        return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

/* Drops supplementary groups, then gid, then uid (raw syscalls: see the top of the file). For a non-zero
 * uid the kernel clears permitted and effective capabilities. */
static int set_identity(uid_t uid, gid_t gid)
{
        if (syscall(SYS_setgroups, 0, NULL) < 0)
                return -errno;
        if (syscall(SYS_setresgid, gid, gid, gid) < 0)
                return -errno;
        if (syscall(SYS_setresuid, uid, uid, uid) < 0)
                return -errno;
        return 0;
}

/* execve() with a PATH search over the sandbox's fixed PATH (execvpe would use the caller's PATH). */
static int exec_search(const char *const *argv, char *const *envp)
{
        static const char *const dirs[] = { "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
                                            "/sbin", "/bin" };
        int saved = ENOENT;

        if (strchr(argv[0], '/')) {
                execve(argv[0], (char *const *) argv, envp);
                return -errno;
        }
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                char path[4096];

                if ((size_t) snprintf(path, sizeof(path), "%s/%s", dirs[i], argv[0]) >= sizeof(path))
                        return -ENAMETOOLONG;
                execve(path, (char *const *) argv, envp);
                if (errno != ENOENT && errno != ENOTDIR)
                        saved = errno;
        }
        return -saved;
}

static void make_env(char *envp[6], char bufs[5][128], bool as_root, const char *term)
{
        snprintf(bufs[0], sizeof(bufs[0]), "PATH=%s", SANDBOX_PATH);
        snprintf(bufs[1], sizeof(bufs[1]), "HOME=%s", ISOLATE_WORKSPACE);
        snprintf(bufs[2], sizeof(bufs[2]), "USER=%s", as_root ? "root" : "agent");
        snprintf(bufs[3], sizeof(bufs[3]), "LANG=%s", SANDBOX_LANG);
        snprintf(bufs[4], sizeof(bufs[4]), "TERM=%s", term ?: DEFAULT_TERM);
        for (size_t i = 0; i < 5; i++)
                envp[i] = bufs[i];
        envp[5] = NULL;
}

/* ---- the sandbox's PID 1 ---- */

typedef struct init_ctx {
        const char *name;
        const isolate_rootfs_plan *plan;
        const isolate_bpf *bpf;
        int sync_fd;
        isolate_cgroup_join *join; /* v1: the cgroup to move ourselves into, first thing */
        bool late_cgroupns; /* v1 or no cgroup: unshare the cgroup namespace once in the final cgroup */
        unsigned cap_last;
} init_ctx;

#define STEP(s) (step = (s))

/* The privilege sequence of the sandbox's PID 1, in order. Each step returns on failure; *ret_step names
 * it for the parent's error message. */
static int init_privilege_sequence(const init_ctx *c, const char **ret_step, char *detail, size_t detailsz,
                                   int *ret_workspace_fd, int *ret_api_dir_fd)
{
        const char *step = NULL;
        sync_msg go;
        int r;

        /* 1. v1: into the sandbox's cgroup, before anything is charged to the daemon's. */
        if (c->join->n > 0) {
                STEP("join the sandbox's cgroup");
                r = isolate_cgroup_join_self(c->join);
                if (r < 0)
                        goto fail;
        }

        /*    Then forget the daemon: only our sync socket and the image mount survive, stdio is /dev/null,
         *    signal dispositions were reset by CLONE_CLEAR_SIGHAND, the mask is cleared here. */
        STEP("close inherited file descriptors");
        r = close_all_except(c->sync_fd, c->plan->image_mount_fd);
        if (r < 0)
                goto fail;
        STEP("redirect stdio to /dev/null");
        r = stdio_to_devnull();
        if (r < 0)
                goto fail;
        reset_signals();
        /* Our memory is a copy of the daemon's: keep it unreadable (ptrace, /proc/1/mem, environ) even
         * for sandbox root, and name the process for ps inside. */
        STEP("set init non-dumpable");
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || prctl(PR_SET_NAME, "pc-init", 0, 0, 0) < 0) {
                r = -errno;
                goto fail;
        }
        /* Still host root as far as file ownership goes: open the workspace now, the sandbox's uid range
         * may not be able to traverse the directories above it. Its last component must not be a
         * symlink. */
        STEP("open the workspace");
        *ret_workspace_fd = open(c->plan->workspace, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (*ret_workspace_fd < 0) {
                r = -errno;
                goto fail;
        }
        if (c->plan->api_socket_dir) {
                STEP("open the agent socket directory");
                *ret_api_dir_fd = open(c->plan->api_socket_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (*ret_api_dir_fd < 0) {
                        r = -errno;
                        goto fail;
                }
        }

        /* 2. Namespaces exist (clone3). Wait for the parent: uid/gid maps written, network
         *    configured. */
        STEP("wait for the parent");
        r = recv_msg(c->sync_fd, -1, &go, NULL);
        if (r < 0)
                goto fail;
        if (go.kind != MSG_GO) {
                r = -EPROTO;
                goto fail;
        }

        /* 3. Become root of the new user namespace (host: uid_base), without the daemon's groups, and
         *    leave the daemon's session so that its death or terminal never reaches us. */
        STEP("become root of the user namespace");
        r = set_identity(0, 0);
        if (r < 0)
                goto fail;
        STEP("setsid");
        if (setsid() < 0) {
                r = -errno;
                goto fail;
        }

        /* 4. cgroup namespace rooted at the sandbox's own cgroup. With clone3(CLONE_INTO_CGROUP) it was
         *    created there already; otherwise the parent attached us before sending GO. */
        if (c->late_cgroupns) {
                STEP("unshare the cgroup namespace");
                if (unshare(CLONE_NEWCGROUP) < 0) {
                        r = -errno;
                        goto fail;
                }
        }

        /* 5. Hostname = sandbox name (own UTS namespace). */
        STEP("set the hostname");
        if (sethostname(c->name, strlen(c->name)) < 0) {
                r = -errno;
                goto fail;
        }

        /* 6. Mounts and pivot_root: the new root is assembled through fds (rootfs.c). */
        step = detail;
        r = isolate_rootfs_setup(c->plan, *ret_workspace_fd, *ret_api_dir_fd, detail, detailsz);
        if (r < 0)
                goto fail;

        /* 7. Capabilities: minimal bounding set, no ambient; init keeps only what it needs. */
        STEP("drop the capability bounding set");
        r = drop_bounding_set(c->cap_last);
        if (r < 0)
                goto fail;
        STEP("reduce init's capabilities");
        r = set_caps(init_caps);
        if (r < 0)
                goto fail;

        /* 8. No privilege gain through execve from here on (setuid binaries, file capabilities). */
        STEP("set no_new_privs");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
                r = -errno;
                goto fail;
        }

        /* 9. Identity: init stays sandbox root; its tmux child becomes the agent (spawn_agent). */

        /* 10. seccomp, last: every later syscall of init and of everything it starts is filtered. */
        STEP("load the seccomp filter");
        r = isolate_seccomp_install(c->bpf);
        if (r < 0)
                goto fail;
        return 0;

fail:
        *ret_step = step;
        return r;
}

/* Runs argv as the agent in /workspace with the clean environment; returns the child's pid. */
static pid_t spawn_agent(const char *const *argv)
{
        char *envp[6], bufs[5][128];
        pid_t pid;

        make_env(envp, bufs, false, NULL);
        pid = raw_fork(0, NULL);
        if (pid != 0)
                return pid < 0 ? -errno : pid;

        reset_signals();
        /* Becoming the agent clears all capabilities (no SECBIT_KEEP_CAPS). */
        if (set_identity(ISOLATE_AGENT_UID, ISOLATE_AGENT_GID) < 0 || chdir(ISOLATE_WORKSPACE) < 0 ||
            syscall(SYS_close_range, 3, ~0U, 0) < 0)
                _exit(126);
        (void) exec_search(argv, envp);
        _exit(127);
}

_noreturn_ static void init_main(const init_ctx *c)
{
        const char *const tmux_argv[] = { "tmux", "-S", ISOLATE_TMUX_SOCKET, "new-session", "-d",
                                          "-s", c->name, "-c", ISOLATE_WORKSPACE, NULL };
        int sync_fd = c->sync_fd, sfd;
        bool stopping = false;
        pid_t tmux;
        sigset_t mask;

        /* Signals arrive through a signalfd; being blocked, they are also delivered to PID 1 (a namespace's
         * init ignores signals that have the default action). */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                child_fail(sync_fd, "block signals", -errno);
        sfd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (sfd < 0)
                child_fail(sync_fd, "signalfd", -errno);

        tmux = spawn_agent(tmux_argv);
        if (tmux < 0)
                child_fail(sync_fd, "start tmux", tmux);

        for (;;) {
                struct signalfd_siginfo si;
                ssize_t n = read(sfd, &si, sizeof(si));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n != sizeof(si))
                        _exit(1);

                if (si.ssi_signo == SIGCHLD) {
                        for (;;) {
                                int status;
                                pid_t p = waitpid(-1, &status, WNOHANG);

                                if (p < 0 && errno == ECHILD && stopping)
                                        _exit(0);
                                if (p <= 0)
                                        break;
                                if (p != tmux)
                                        continue;
                                /* tmux new-session -d returns once the server has created the session. */
                                tmux = 0;
                                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                                        send_msg(sync_fd, MSG_FAILED,
                                                 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                                                 1, "start tmux");
                                        _exit(1);
                                }
                                send_msg(sync_fd, MSG_READY, 0, 0, NULL);
                                close(sync_fd);
                                sync_fd = -EBADF;
                        }
                        continue;
                }

                /* SIGTERM/SIGINT stop the sandbox: forward to everything inside (kill(-1) from a namespace
                 * init reaches every other process in it), exit when the last child is reaped. SIGHUP is
                 * only forwarded. */
                if (si.ssi_signo != SIGHUP)
                        stopping = true;
                (void) kill(-1, (int) si.ssi_signo);
                if (stopping && waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD)
                        _exit(0);
        }
}

_noreturn_ static void init_child(const init_ctx *c)
{
        const char *step = "start";
        char detail[160] = "";
        int r;

        int workspace_fd = -EBADF, api_dir_fd = -EBADF;

        r = init_privilege_sequence(c, &step, detail, sizeof(detail), &workspace_fd, &api_dir_fd);
        if (r < 0)
                child_fail(c->sync_fd, step, r);
        safe_close(workspace_fd);
        safe_close(api_dir_fd);
        init_main(c);
}

/* ---- parent side ---- */

static int read_cap_last(unsigned *ret)
{
        _cleanup_free_ char *s = NULL;
        uint64_t v;
        int r;

        r = read_full_file("/proc/sys/kernel/cap_last_cap", 64, &s, NULL);
        if (r < 0)
                return r;
        r = parse_uint64(strstrip(s), &v);
        if (r < 0)
                return r;
        if (v >= 64)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

int isolate_pid_starttime(pid_t pid, uint64_t *ret)
{
        _cleanup_free_ char *s = NULL;
        char path[64];
        const char *p;
        int r;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        r = read_full_file(path, 4096, &s, NULL);
        if (r == -ENOENT)
                return -ESRCH;
        if (r < 0)
                return r;
        /* comm (field 2) may contain anything, including ')': start after the last one. Field 3 follows. */
        p = strrchr(s, ')');
        if (!p)
                return -EBADMSG;
        p++;
        for (int field = 3; field < 22; field++) {
                p = strchr(p + 1, ' ');
                if (!p)
                        return -EBADMSG;
        }
        return parse_uint64(strndupa(p + 1, strcspn(p + 1, " ")), ret);
}

static int write_id_map(pid_t pid, const char *file, uid_t base, uint32_t count)
{
        char path[64], map[64];
        _cleanup_close_ int fd = -EBADF;

        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, file);
        snprintf(map, sizeof(map), "0 %u %u\n", (unsigned) base, count);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        /* One write(): the kernel accepts a map only once, whole. */
        if (write(fd, map, strlen(map)) != (ssize_t) strlen(map))
                return errno ? -errno : -EIO;
        return 0;
}

/* A half-built child: killed and reaped on scope exit unless taken over. */
typedef struct child_guard {
        pid_t pid;
        int pidfd;
} child_guard;

static void child_guard_done(child_guard *g)
{
        if (g->pid > 0) {
                if (g->pidfd >= 0) {
                        (void) raw_pidfd_send_signal(g->pidfd, SIGKILL);
                        (void) waitid(P_PIDFD, g->pidfd, NULL, WEXITED);
                } else {
                        (void) kill(g->pid, SIGKILL);
                        (void) waitpid(g->pid, NULL, 0);
                }
        }
        g->pidfd = safe_close(g->pidfd);
        g->pid = 0;
}

static int check_config(const isolate_sandbox_config *cfg, pc_error **reterr)
{
        if (!name_is_valid(cfg->name))
                return pc_error_setf(reterr, EINVAL, "invalid_name",
                                     "sandbox name \"%s\" is invalid (expected [a-z0-9-], at most 63 characters)",
                                     strna(cfg->name));
        if (isempty(cfg->workspace) || cfg->workspace[0] != '/')
                return pc_error_setf(reterr, EINVAL, "invalid_config",
                                     "sandbox %s: workspace must be an absolute path", cfg->name);
        /* Host root must never be inside the range; the agent (uid 1000) must be. */
        if (cfg->uid_base == 0 || cfg->uid_count <= ISOLATE_AGENT_UID ||
            (uint64_t) cfg->uid_base + cfg->uid_count > UINT32_MAX)
                return pc_error_setf(reterr, EINVAL, "invalid_config",
                                     "sandbox %s: uid range %u+%u is invalid (base must be > 0, size > %u)",
                                     cfg->name, (unsigned) cfg->uid_base, cfg->uid_count, ISOLATE_AGENT_UID);
        if (cfg->rootfs_image && (cfg->rootfs_image[0] != '/' || isempty(cfg->overlay_dir)))
                return pc_error_setf(reterr, EINVAL, "invalid_config",
                                     "sandbox %s: an image rootfs needs an absolute image path and an overlay directory",
                                     cfg->name);
        return 0;
}

static int load_filter(int seccomp_fd, isolate_bpf *ret, pc_error **reterr)
{
        _cleanup_close_ int own = -EBADF;
        int r;

        if (seccomp_fd < 0) {
                r = isolate_seccomp_compile(&own, reterr);
                if (r < 0)
                        return r;
                seccomp_fd = own;
        }
        r = isolate_seccomp_read(seccomp_fd, ret);
        if (r < 0)
                return pc_error_setf(reterr, r, "seccomp", "seccomp: cannot read the compiled filter: %s",
                                     strerror(-r));
        return 0;
}

isolate_sandbox *isolate_sandbox_free(isolate_sandbox *sb)
{
        if (!sb)
                return NULL;
        free(sb->name);
        safe_close(sb->pidfd);
        isolate_bpf_done(&sb->bpf);
        free(sb);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(isolate_sandbox *, isolate_sandbox_free);

/* The handle both start and adopt fill in: name, ids, cgroup, the loaded seccomp filter (exec installs
 * it in every command) and the host's last capability. */
static int sandbox_new(const isolate_sandbox_config *cfg, isolate_sandbox **ret, pc_error **reterr)
{
        _cleanup_(isolate_sandbox_freep) isolate_sandbox *sb = calloc(1, sizeof(*sb));
        int r;

        if (!sb || !(sb->name = strdup(cfg->name)))
                return -ENOMEM;
        sb->pidfd = -EBADF;
        sb->uid_base = cfg->uid_base;
        sb->uid_count = cfg->uid_count;
        sb->cgroup = cfg->cgroup;
        r = load_filter(cfg->seccomp_fd, &sb->bpf, reterr);
        if (r < 0)
                return r;
        r = read_cap_last(&sb->cap_last);
        if (r < 0)
                return pc_error_setf(reterr, r, "host", "cannot read /proc/sys/kernel/cap_last_cap: %s",
                                     strerror(-r));
        *ret = TAKE_PTR(sb);
        return 0;
}
static void plan_donep(isolate_rootfs_plan *p)
{
        isolate_rootfs_plan_done(p);
}

/* What every child of ours needs before clone: a sync socket pair, and the cgroup fd to clone into
 * (negative on v1, where the child is attached after clone instead). The cgroup fd belongs to cg. */
static int prepare_child(const char *name, isolate_cgroup *cg, int *ret_parent, int *ret_child, int *ret_cgroup_fd,
                         isolate_cgroup_join *ret_join, pc_error **reterr)
{
        int sv[2], cgroup_fd = -EBADF;

        if (cg) {
                /* v2: the child starts in its cgroup (CLONE_INTO_CGROUP); v1: it moves itself there first. */
                cgroup_fd = isolate_cgroup_fd(cg);
                if (cgroup_fd == -EOPNOTSUPP) {
                        int r = isolate_cgroup_join_open(cg, ret_join);
                        if (r < 0)
                                return pc_error_setf(reterr, r, "cgroup", "sandbox %s: cannot open %s/*/tasks: %s",
                                                     name, isolate_cgroup_path(cg), strerror(-r));
                } else if (cgroup_fd < 0)
                        return pc_error_setf(reterr, cgroup_fd, "cgroup", "sandbox %s: cannot open cgroup: %s", name,
                                             strerror(-cgroup_fd));
        }
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return pc_error_setf(reterr, errno, "internal", "socketpair: %m");
        *ret_parent = sv[0];
        *ret_child = sv[1];
        *ret_cgroup_fd = cgroup_fd < 0 ? -EBADF : cgroup_fd;
        return 0;
}

int isolate_sandbox_start(const isolate_sandbox_config *cfg, isolate_sandbox **ret, pc_error **reterr)
{
        _cleanup_(isolate_sandbox_freep) isolate_sandbox *sb = NULL;
        _cleanup_(plan_donep) isolate_rootfs_plan plan = { .image_mount_fd = -EBADF };
        _cleanup_(child_guard_done) child_guard child = { .pidfd = -EBADF };
        _cleanup_close_ int sync_parent = -EBADF, sync_child = -EBADF;
        _cleanup_(isolate_cgroup_join_close) isolate_cgroup_join join = {};
        uint64_t timeout = cfg->ready_timeout_usec ?: DEFAULT_READY_TIMEOUT_USEC;
        int cgroup_fd = -EBADF, pidfd = -EBADF, r;
        struct clone_args args = {};
        sync_msg m;

        r = check_config(cfg, reterr);
        if (r < 0)
                return r;
        r = sandbox_new(cfg, &sb, reterr);
        if (r < 0)
                return r;
        r = isolate_rootfs_plan_init(&plan, cfg->name, cfg->workspace, cfg->rootfs_image, cfg->resolv_conf);
        if (r < 0)
                return pc_error_setf(reterr, r, "rootfs", "sandbox %s: cannot prepare /etc: %s", cfg->name,
                                     strerror(-r));
        plan.api_socket_dir = cfg->api_socket_dir;
        if (cfg->rootfs_image) {
                r = isolate_rootfs_make_overlay(cfg->rootfs_image, cfg->overlay_dir, cfg->uid_base, cfg->uid_count,
                                                &plan.image_mount_fd);
                if (r < 0)
                        return pc_error_setf(reterr, r, "rootfs",
                                             "sandbox %s: cannot mount overlay of image %s in %s: %s", cfg->name,
                                             cfg->rootfs_image, cfg->overlay_dir, strerror(-r));
        }
        /* Start directly inside the sandbox's cgroup when the hierarchy allows (v2): the cgroup namespace
         * is then rooted there from the first instruction. */
        r = prepare_child(cfg->name, cfg->cgroup, &sync_parent, &sync_child, &cgroup_fd, &join, reterr);
        if (r < 0)
                return r;

        init_ctx ctx = {
                .name = cfg->name,
                .plan = &plan,
                .bpf = &sb->bpf,
                .sync_fd = sync_child,
                .join = &join,
                .late_cgroupns = cgroup_fd < 0,
                .cap_last = sb->cap_last,
        };
        args.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC |
                     CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
        if (cgroup_fd >= 0) {
                args.flags |= CLONE_NEWCGROUP | CLONE_INTO_CGROUP;
                args.cgroup = (uint64_t) cgroup_fd;
        }
        args.pidfd = (uint64_t) (uintptr_t) &pidfd;
        args.exit_signal = SIGCHLD;

        child.pid = raw_clone3(&args);
        if (child.pid < 0) {
                child.pid = 0;
                return pc_error_setf(reterr, errno, "clone",
                                     "sandbox %s: clone3 into new namespaces failed: %m (needs Linux >= 5.7 and "
                                     "user namespaces enabled)",
                                     cfg->name);
        }
        if (child.pid == 0)
                init_child(&ctx);
        child.pidfd = pidfd;
        sync_child = safe_close(sync_child);
        isolate_cgroup_join_close(&join);

        /* uid/gid maps: sandbox 0..count-1 -> host base..base+count-1. We hold CAP_SETUID/CAP_SETGID in the
         * parent namespace, so a ranged map is allowed and setgroups stays allowed inside: init uses it
         * to drop the supplementary groups inherited from the daemon. */
        r = write_id_map(child.pid, "uid_map", cfg->uid_base, cfg->uid_count);
        if (r >= 0)
                r = write_id_map(child.pid, "gid_map", cfg->uid_base, cfg->uid_count);
        if (r < 0)
                return pc_error_setf(reterr, r, "userns", "sandbox %s: cannot write uid/gid map: %s", cfg->name,
                                     strerror(-r));

        if (cfg->net) {
                char path[64];
                snprintf(path, sizeof(path), "/proc/%d/ns/net", (int) child.pid);
                _cleanup_close_ int netns = open(path, O_RDONLY | O_CLOEXEC);
                if (netns < 0)
                        return pc_error_setf(reterr, errno, "network", "sandbox %s: cannot open %s: %m",
                                             cfg->name, path);
                r = isolate_net_setup(netns, cfg->name, cfg->net, reterr);
                if (r < 0)
                        return r;
        }

        send_msg(sync_parent, MSG_GO, 0, 0, NULL);

        r = recv_msg(sync_parent, (int) (timeout / 1000), &m, NULL);
        if (r == -ETIMEDOUT)
                return pc_error_setf(reterr, ETIMEDOUT, "timeout",
                                     "sandbox %s: tmux session not ready after %llu ms", cfg->name,
                                     (unsigned long long) (timeout / 1000));
        if (r < 0)
                return pc_error_setf(reterr, r, "sandbox_init",
                                     "sandbox %s: init exited before reporting readiness: %s", cfg->name,
                                     strerror(-r));
        if (m.kind == MSG_FAILED && m.value == 1)
                return pc_error_setf(reterr, EIO, "sandbox_init", "sandbox %s: %s: tmux exited with status %d",
                                     cfg->name, m.step, m.error);
        if (m.kind == MSG_FAILED)
                return pc_error_setf(reterr, m.error, "sandbox_init", "sandbox %s: %s: %s", cfg->name, m.step,
                                     strerror(m.error));
        if (m.kind != MSG_READY)
                return pc_error_setf(reterr, EPROTO, "sandbox_init", "sandbox %s: unexpected message %d from init",
                                     cfg->name, m.kind);

        r = isolate_pid_starttime(child.pid, &sb->starttime);
        if (r < 0)
                return pc_error_setf(reterr, r, "sandbox_init", "sandbox %s: cannot read start time: %s",
                                     cfg->name, strerror(-r));
        sb->pid = child.pid;
        sb->pidfd = TAKE_FD(child.pidfd);
        child.pid = 0;
        *ret = TAKE_PTR(sb);
        return 0;
}

int isolate_sandbox_adopt(const isolate_sandbox_config *cfg, pid_t pid, uint64_t starttime,
                          isolate_sandbox **ret)
{
        _cleanup_(isolate_sandbox_freep) isolate_sandbox *sb = NULL;
        _cleanup_close_ int pidfd = -EBADF;
        uint64_t now;
        int r;

        if (pid <= 1 || !name_is_valid(cfg->name))
                return -EINVAL;
        pidfd = raw_pidfd_open(pid);
        if (pidfd < 0)
                return pidfd;
        /* The pidfd pins the process we opened; the start time proves it is the one we recorded. */
        r = isolate_pid_starttime(pid, &now);
        if (r < 0)
                return r;
        if (now != starttime)
                return -ESRCH;
        r = raw_pidfd_send_signal(pidfd, 0);
        if (r < 0)
                return r;

        r = sandbox_new(cfg, &sb, NULL);
        if (r < 0)
                return r;
        sb->pid = pid;
        sb->pidfd = TAKE_FD(pidfd);
        sb->starttime = starttime;
        *ret = TAKE_PTR(sb);
        return 0;
}

static int wait_exit(int pidfd, uint64_t timeout_usec)
{
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;

        for (;;) {
                uint64_t n = now_usec(CLOCK_MONOTONIC);
                int r;

                if (n >= deadline)
                        return -ETIMEDOUT;
                r = poll(&p, 1, (int) ((deadline - n + 999) / 1000));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r > 0)
                        return 0;
        }
}

int isolate_sandbox_stop(isolate_sandbox *sb, uint64_t timeout_usec)
{
        int r;

        if (!sb || sb->pidfd < 0)
                return -EINVAL;
        r = raw_pidfd_send_signal(sb->pidfd, SIGTERM);
        if (r >= 0)
                r = wait_exit(sb->pidfd, timeout_usec ?: DEFAULT_STOP_TIMEOUT_USEC);
        if (r == -ETIMEDOUT) {
                /* Killing a pid namespace's init kills everything in it. */
                r = raw_pidfd_send_signal(sb->pidfd, SIGKILL);
                if (r >= 0)
                        r = wait_exit(sb->pidfd, DEFAULT_STOP_TIMEOUT_USEC);
        }
        if (r < 0 && r != -ESRCH)
                return r;
        /* Reap when it is our child (not after adoption: then the host's init reaps it). */
        (void) waitid(P_PIDFD, sb->pidfd, NULL, WEXITED | WNOHANG);
        if (sb->cgroup) {
                r = isolate_cgroup_kill(sb->cgroup);
                if (r < 0)
                        return r;
        }
        return 0;
}

bool isolate_sandbox_is_running(const isolate_sandbox *sb)
{
        struct pollfd p = { .fd = sb->pidfd, .events = POLLIN };

        if (sb->pidfd < 0)
                return false;
        return poll(&p, 1, 0) == 0;
}

const char *isolate_sandbox_name(const isolate_sandbox *sb)
{
        return sb->name;
}
pid_t isolate_sandbox_pid(const isolate_sandbox *sb)
{
        return sb->pid;
}
int isolate_sandbox_pidfd(const isolate_sandbox *sb)
{
        return sb->pidfd;
}
uint64_t isolate_sandbox_starttime(const isolate_sandbox *sb)
{
        return sb->starttime;
}
uid_t isolate_sandbox_uid_base(const isolate_sandbox *sb)
{
        return sb->uid_base;
}

/* ---- exec into a running sandbox ---- */

typedef struct exec_ctx {
        const isolate_sandbox *sb;
        const isolate_exec_options *o;
        int sync_fd;
        isolate_cgroup_join *join; /* v1: the sandbox's cgroup, joined first */
        char *const *envp;
} exec_ctx;

/* Makes fds[0..2] the process' stdio (negative: /dev/null), whatever their numbers. */
static int setup_stdio(const int fds[3])
{
        int tmp[3];

        for (int i = 0; i < 3; i++) {
                tmp[i] = fds[i] >= 0 ? fcntl(fds[i], F_DUPFD_CLOEXEC, 3)
                                     : open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
                if (tmp[i] < 0)
                        return -errno;
        }
        for (int i = 0; i < 3; i++)
                if (dup2(tmp[i], i) < 0)
                        return -errno;
        return 0;
}

/* The privilege sequence of a process run inside an existing sandbox, in order. The caller (exec_helper)
 * already did step 1. */
static int exec_privilege_sequence(const exec_ctx *e, const char **ret_step)
{
        const isolate_exec_options *o = e->o;
        const int stdio[3] = { o->stdin_fd, o->stdout_fd, o->stderr_fd };
        const char *step = NULL;
        int r;

        /* 1. Namespaces and cgroup: joined by the helper before it forked us (cgroup join + setns). */

        /* 2. Own session, stdio from the caller, the terminal when asked. */
        STEP("setsid");
        if (setsid() < 0) {
                r = -errno;
                goto fail;
        }
        STEP("set up stdin/stdout/stderr");
        r = setup_stdio(stdio);
        if (r < 0)
                goto fail;
        if (o->tty) {
                STEP("acquire the controlling terminal");
                if (ioctl(0, TIOCSCTTY, 0) < 0) {
                        r = -errno;
                        goto fail;
                }
        }

        /* 3. Capabilities: the sandbox's bounding set, no ambient, only what the identity switch needs. */
        STEP("drop the capability bounding set");
        r = drop_bounding_set(e->sb->cap_last);
        if (r < 0)
                goto fail;
        STEP("reduce capabilities");
        r = set_caps(o->as_root ? bounding_keep : switch_caps);
        if (r < 0)
                goto fail;

        /* 4. No privilege gain through execve. */
        STEP("set no_new_privs");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
                r = -errno;
                goto fail;
        }

        /* 5. Identity: the agent (all capabilities cleared by the kernel) or sandbox root. */
        STEP(o->as_root ? "become sandbox root" : "become the agent");
        r = o->as_root ? set_identity(0, 0) : set_identity(ISOLATE_AGENT_UID, ISOLATE_AGENT_GID);
        if (r < 0)
                goto fail;

        /* 6. Working directory, resolved inside the sandbox's root with the new identity. */
        STEP("change to the working directory");
        if (chdir(o->cwd ?: ISOLATE_WORKSPACE) < 0) {
                r = -errno;
                goto fail;
        }

        /* 7. No inherited fds beyond stdio: everything else closes at exec (the sync socket stays open until
         *    then to report a failing exec). */
        STEP("close inherited file descriptors");
        if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
                r = -errno;
                goto fail;
        }

        /* 8. seccomp, last. */
        STEP("load the seccomp filter");
        r = isolate_seccomp_install(&e->sb->bpf);
        if (r < 0)
                goto fail;

        /* 9. exec (the caller does it). */
        return 0;
fail:
        *ret_step = step;
        return r;
}

_noreturn_ static void exec_helper(const exec_ctx *e)
{
        const char *step = "exec";
        sync_msg go;
        pid_t pid;
        int r, pidfd = -EBADF;

        reset_signals();
        r = recv_msg(e->sync_fd, -1, &go, NULL);
        if (r < 0 || go.kind != MSG_GO)
                _exit(1);

        /* 1. Join the sandbox's cgroup (v2: we started there), then every namespace of its init at once
         *    (pidfd setns, Linux >= 5.8). The pid namespace applies to our children: fork once more, with
         *    CLONE_PARENT so that the caller is the parent and can wait for it. */
        if (e->join->n > 0 && (r = isolate_cgroup_join_self(e->join)) < 0)
                child_fail(e->sync_fd, "join the sandbox's cgroup", r);
        if (setns(e->sb->pidfd, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS |
                                        CLONE_NEWIPC | CLONE_NEWCGROUP) < 0)
                child_fail(e->sync_fd, "join the sandbox's namespaces", -errno);

        pid = raw_fork(CLONE_PARENT | CLONE_PIDFD, &pidfd);
        if (pid < 0)
                child_fail(e->sync_fd, "fork inside the sandbox", -errno);
        if (pid > 0) {
                r = send_pidfd(e->sync_fd, pid, pidfd);
                _exit(r < 0 ? 1 : 0);
        }

        r = exec_privilege_sequence(e, &step);
        if (r < 0)
                child_fail(e->sync_fd, step, r);
        r = exec_search(e->o->argv, e->envp);
        child_fail(e->sync_fd, "execute the command", r);
}

int isolate_sandbox_exec(isolate_sandbox *sb, const isolate_exec_options *opts, pid_t *ret_pid,
                         int *ret_pidfd, pc_error **reterr)
{
        _cleanup_(child_guard_done) child_guard helper = { .pidfd = -EBADF }, target = { .pidfd = -EBADF };
        _cleanup_close_ int sync_parent = -EBADF, sync_child = -EBADF;
        _cleanup_(isolate_cgroup_join_close) isolate_cgroup_join join = {};
        struct clone_args args = { .exit_signal = SIGCHLD, .flags = CLONE_CLEAR_SIGHAND };
        char *envp[6], bufs[5][128];
        int cgroup_fd = -EBADF, r, status;
        siginfo_t si = {};
        sync_msg m;

        if (!opts->argv || !opts->argv[0])
                return pc_error_setf(reterr, EINVAL, "invalid_argument", "sandbox %s: empty command", sb->name);
        if (sb->pidfd < 0 || !isolate_sandbox_is_running(sb))
                return pc_error_setf(reterr, ESRCH, "not_running", "sandbox %s is not running", sb->name);

        make_env(envp, bufs, opts->as_root, opts->term);
        r = prepare_child(sb->name, sb->cgroup, &sync_parent, &sync_child, &cgroup_fd, &join, reterr);
        if (r < 0)
                return r;
        if (cgroup_fd >= 0) {
                args.flags |= CLONE_INTO_CGROUP;
                args.cgroup = (uint64_t) cgroup_fd;
        }

        exec_ctx e = { .sb = sb, .o = opts, .sync_fd = sync_child, .join = &join, .envp = envp };
        helper.pid = raw_clone3(&args);
        if (helper.pid < 0) {
                helper.pid = 0;
                return pc_error_setf(reterr, errno, "clone", "sandbox %s: clone3: %m", sb->name);
        }
        if (helper.pid == 0)
                exec_helper(&e);
        sync_child = safe_close(sync_child);
        isolate_cgroup_join_close(&join);
        send_msg(sync_parent, MSG_GO, 0, 0, NULL);

        /* The helper answers with the process' pidfd (or the step that failed) and exits. */
        r = recv_msg(sync_parent, -1, &m, &target.pidfd);
        if (r >= 0 && m.kind == MSG_PID)
                target.pid = m.value;
        (void) waitpid(helper.pid, &status, 0);
        helper.pid = 0;
        if (r < 0)
                return pc_error_setf(reterr, r, "exec", "sandbox %s: exec helper died: %s", sb->name, strerror(-r));
        if (m.kind == MSG_FAILED)
                return pc_error_setf(reterr, m.error, "exec", "sandbox %s: %s: %s", sb->name, m.step,
                                     strerror(m.error));
        if (m.kind != MSG_PID || target.pidfd < 0)
                return pc_error_setf(reterr, EPROTO, "exec", "sandbox %s: unexpected message %d from helper",
                                     sb->name, m.kind);

        /* EOF (the sync socket closed by exec) means the command runs; a message means it failed before. */
        r = recv_msg(sync_parent, -1, &m, NULL);
        if (r == -EPIPE) {
                *ret_pid = target.pid;
                *ret_pidfd = TAKE_FD(target.pidfd);
                target.pid = 0;
                return 0;
        }
        (void) waitid(P_PIDFD, target.pidfd, &si, WEXITED);
        target.pid = 0;
        if (r < 0)
                return pc_error_setf(reterr, r, "exec", "sandbox %s: %s", sb->name, strerror(-r));
        return pc_error_setf(reterr, m.error, "exec", "sandbox %s: %s %s: %s", sb->name, m.step, opts->argv[0],
                             strerror(m.error));
}

int isolate_sandbox_tmux(isolate_sandbox *sb, const char *const *args, char **ret_output, pc_error **reterr)
{
        _cleanup_free_ const char **argv = NULL;
        _cleanup_free_ char *out = NULL, *err = NULL;
        _cleanup_close_ int out_r = -EBADF, out_w = -EBADF, err_r = -EBADF, err_w = -EBADF, pidfd = -EBADF;
        size_t n = 0, out_len = 0, err_len = 0;
        siginfo_t si = {};
        pid_t pid;
        int p[2], r;

        while (args && args[n])
                n++;
        argv = calloc(n + 4, sizeof(char *));
        out = malloc(TMUX_OUTPUT_MAX + 1);
        err = malloc(4096);
        if (!argv || !out || !err)
                return -ENOMEM;
        argv[0] = "tmux";
        argv[1] = "-S";
        argv[2] = ISOLATE_TMUX_SOCKET;
        for (size_t i = 0; i < n; i++)
                argv[3 + i] = args[i];

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        out_r = p[0];
        out_w = p[1];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        err_r = p[0];
        err_w = p[1];

        isolate_exec_options o = { .argv = argv, .stdin_fd = -1, .stdout_fd = out_w, .stderr_fd = err_w };
        r = isolate_sandbox_exec(sb, &o, &pid, &pidfd, reterr);
        if (r < 0)
                return r;
        out_w = safe_close(out_w);
        err_w = safe_close(err_w);

        /* Read both pipes until EOF (bounded in time: a wedged tmux server must not hang the daemon). */
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + TMUX_TIMEOUT_MSEC * 1000ULL;
        while (out_r >= 0 || err_r >= 0) {
                struct pollfd pf[2] = { { .fd = out_r, .events = POLLIN }, { .fd = err_r, .events = POLLIN } };
                uint64_t now = now_usec(CLOCK_MONOTONIC);

                if (now >= deadline) {
                        (void) raw_pidfd_send_signal(pidfd, SIGKILL);
                        (void) waitid(P_PIDFD, pidfd, &si, WEXITED);
                        return pc_error_setf(reterr, ETIMEDOUT, "timeout", "sandbox %s: tmux %s timed out",
                                             sb->name, strna(args ? args[0] : NULL));
                }
                r = poll(pf, 2, (int) ((deadline - now) / 1000) + 1);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                for (int i = 0; i < 2; i++) {
                        int *fd = i == 0 ? &out_r : &err_r;
                        char *buf = i == 0 ? out : err;
                        size_t *len = i == 0 ? &out_len : &err_len, cap = i == 0 ? TMUX_OUTPUT_MAX : 4095;
                        char sink[4096];
                        ssize_t k;

                        if (*fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        /* Past the cap, keep draining (so tmux does not block) but drop the bytes. */
                        k = *len < cap ? read(*fd, buf + *len, cap - *len) : read(*fd, sink, sizeof(sink));
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0) {
                                *fd = safe_close(*fd);
                                continue;
                        }
                        if (*len < cap)
                                *len += (size_t) k;
                }
        }
        out[out_len] = 0;
        err[err_len] = 0;
        if (waitid(P_PIDFD, pidfd, &si, WEXITED) < 0)
                return -errno;
        if (si.si_code != CLD_EXITED)
                return pc_error_setf(reterr, EIO, "tmux", "sandbox %s: tmux killed by signal %d", sb->name,
                                     si.si_status);
        if (si.si_status != 0)
                log_debug("sandbox %s: tmux exited with %d: %s", sb->name, si.si_status, strstrip(err));
        if (ret_output)
                *ret_output = TAKE_PTR(out);
        return si.si_status;
}

/* Removes everything below dirfd without following symlinks or crossing into other mounts. */
static int rm_rf_children(int dirfd, dev_t dev)
{
        _cleanup_close_ int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d)
                return -errno;
        fd = -EBADF; /* owned by d now */
        while ((de = readdir(d))) {
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = r ?: -errno;
                        continue;
                }
                if (S_ISDIR(st.st_mode)) {
                        _cleanup_close_ int sub = -EBADF;

                        if (st.st_dev != dev) {
                                r = r ?: -EXDEV;
                                continue;
                        }
                        sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0) {
                                r = r ?: -errno;
                                continue;
                        }
                        /* overlayfs leaves its work/ subdirectory mode 000: we are root, fine. */
                        int q = rm_rf_children(sub, dev);
                        if (q < 0)
                                r = r ?: q;
                        if (unlinkat(dirfd, de->d_name, AT_REMOVEDIR) < 0)
                                r = r ?: -errno;
                } else if (unlinkat(dirfd, de->d_name, 0) < 0)
                        r = r ?: -errno;
        }
        closedir(d);
        return r;
}

int isolate_sandbox_remove_overlay(const char *overlay_dir)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        if (isempty(overlay_dir) || overlay_dir[0] != '/')
                return -EINVAL;
        fd = open(overlay_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        r = rm_rf_children(fd, st.st_dev);
        if (r < 0)
                return r;
        if (rmdir(overlay_dir) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}
