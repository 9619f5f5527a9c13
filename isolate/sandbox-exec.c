/* SPDX-License-Identifier: MIT */
/* Exec into a running sandbox: a helper joins its cgroup and namespaces, forks the process (a child of
 * the caller, CLONE_PARENT), which goes through the same privilege sequence as the agent's commands. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common.h"
#include "isolate-internal.h"
#include "isolate.h"
#include "sandbox-internal.h"

/* What an exec helper needs between joining the namespaces and becoming the agent. */
static const uint64_t switch_caps = CAP_BIT(CAP_SETGID) | CAP_BIT(CAP_SETUID);

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

        /*    Limits: the sandbox's file table, and the OOM score of everything but init (raising it needs
         *    no privilege). */
        STEP("set RLIMIT_NOFILE");
        r = set_rlimit(RLIMIT_NOFILE, e->sb->nofile_max);
        if (r < 0)
                goto fail;
        STEP("set oom_score_adj");
        r = write_oom_score_adj(0, ISOLATE_OOM_SCORE_ADJ);
        if (r < 0)
                goto fail;

        /* 3. Capabilities: sandbox root's bounding set for --root, none for the agent; no ambient; only what
         *    the identity switch needs. */
        STEP("drop the capability bounding set");
        r = drop_bounding_set(e->sb->cap_last, o->as_root ? SANDBOX_BOUNDING_KEEP : 0);
        if (r < 0)
                goto fail;
        STEP("reduce capabilities");
        r = set_caps(o->as_root ? SANDBOX_BOUNDING_KEEP : switch_caps);
        if (r < 0)
                goto fail;

        STEP("set RLIMIT_FSIZE");
        r = set_rlimit(RLIMIT_FSIZE, e->sb->fsize_max);
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
        /* The process may fail (and say so) before the helper, which forked it, sent its pidfd: the helper's
         * message is then queued behind, and it is the only handle on a process that is our child in the
         * sandbox's pid namespace. Unreaped, it would stay a zombie there, and the sandbox's init cannot
         * exit while its namespace holds one (stop would hang). The helper is gone: whatever it sent is
         * queued, so this does not wait. */
        if (r >= 0 && m.kind == MSG_FAILED) {
                sync_msg pm;

                if (recv_msg(sync_parent, 0, &pm, &target.pidfd) >= 0 && pm.kind == MSG_PID)
                        target.pid = pm.value;
        }
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

