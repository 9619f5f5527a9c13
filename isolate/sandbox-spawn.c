/* SPDX-License-Identifier: MIT */
/* Spawning and syncing: the parent <-> child message protocol, raw syscalls safe between clone and exec,
 * and the steps every child of ours shares (see sandbox-internal.h). */
#include <dirent.h>
#include <limits.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common.h"
#include "isolate-internal.h"
#include "isolate.h"
#include "sandbox-internal.h"

void send_msg(int fd, int kind, int error, int value, const char *step)
{
        sync_msg m = { .kind = kind, .error = error, .value = value };

        if (step)
                snprintf(m.step, sizeof(m.step), "%s", step);
        (void) send(fd, &m, sizeof(m), MSG_NOSIGNAL);
}

_noreturn_ void child_fail(int fd, const char *step, int r)
{
        send_msg(fd, MSG_FAILED, abs(r), 0, step);
        _exit(127);
}

/* Waits up to timeout_msec (-1: forever) for one message; -ETIMEDOUT, or -EPIPE on EOF. */
int recv_msg(int fd, int timeout_msec, sync_msg *ret, int *ret_fd)
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

int send_pidfd(int fd, pid_t pid, int pidfd)
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

pid_t raw_clone3(struct clone_args *args)
{
        return (pid_t) syscall(SYS_clone3, args, sizeof(*args));
}

/* fork() without glibc's atfork machinery (see the top of the file). Plain clone(), not clone3(): init
 * calls it under its own seccomp filter, which answers clone3 with ENOSYS. The pidfd goes to the
 * parent_tid argument, third on every architecture. */
pid_t raw_fork(uint64_t flags, int *ret_pidfd)
{
        return (pid_t) syscall(SYS_clone, (unsigned long) flags | SIGCHLD, 0, ret_pidfd, 0, 0);
}

int raw_pidfd_open(pid_t pid)
{
        int fd = (int) syscall(SYS_pidfd_open, pid, 0);
        return fd < 0 ? -errno : fd;
}

int raw_pidfd_send_signal(int pidfd, int sig)
{
        return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

void reset_signals(void)
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

/* Closes every fd >= 3 except those in keep[] (negative entries are ignored). */
int close_all_except(const int *keep, size_t n)
{
        int from = 3;

        for (;;) {
                int next = INT_MAX; /* the lowest kept fd >= from */
                for (size_t i = 0; i < n; i++)
                        if (keep[i] >= from && keep[i] < next)
                                next = keep[i];
                if (next == INT_MAX)
                        break;
                if (next > from && syscall(SYS_close_range, from, next - 1, 0) < 0)
                        return -errno;
                from = next + 1;
        }
        return syscall(SYS_close_range, from, ~0U, 0) < 0 ? -errno : 0;
}

int stdio_to_devnull(void)
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

int drop_bounding_set(unsigned cap_last, uint64_t keep)
{
        for (unsigned c = 0; c <= cap_last && c < 64; c++) {
                if (keep & CAP_BIT(c))
                        continue;
                if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
                        return -errno;
        }
        return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 ? -errno : 0;
}

/* Sets effective = permitted = caps, inheritable = none. */
int set_caps(uint64_t caps)
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
int set_identity(uid_t uid, gid_t gid)
{
        if (syscall(SYS_setgroups, 0, NULL) < 0)
                return -errno;
        if (syscall(SYS_setresgid, gid, gid, gid) < 0)
                return -errno;
        if (syscall(SYS_setresuid, uid, uid, uid) < 0)
                return -errno;
        return 0;
}

/* Soft and hard limit `resource` = max (nothing when 0). Lowering needs no privilege; raising it again takes
 * CAP_SYS_RESOURCE in the host's user namespace, which nothing inside a sandbox has. */
int set_rlimit(int resource, uint64_t max)
{
        struct rlimit rl = { .rlim_cur = max, .rlim_max = max };

        if (max == 0)
                return 0;
        return setrlimit(resource, &rl) < 0 ? -errno : 0;
}

/* pid 0: ourselves (through /proc/self, which must be the proc of our pid namespace). */
int write_oom_score_adj(pid_t pid, int adj)
{
        char path[64], value[16];
        _cleanup_close_ int fd = -EBADF;

        if (pid == 0)
                snprintf(path, sizeof(path), "/proc/self/oom_score_adj");
        else
                snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", (int) pid);
        snprintf(value, sizeof(value), "%d", adj);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return write_all(fd, value, strlen(value));
}

/* execve() with a PATH search over the sandbox's fixed PATH (execvpe would use the caller's PATH). */
int exec_search(const char *const *argv, char *const *envp)
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

void make_env(char *envp[6], char bufs[5][128], bool as_root, const char *term)
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

void child_guard_done(child_guard *g)
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

int prepare_child(const char *name, isolate_cgroup *cg, int *ret_parent, int *ret_child, int *ret_cgroup_fd,
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

