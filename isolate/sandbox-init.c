/* SPDX-License-Identifier: MIT */
/* The sandbox's PID 1: its privilege sequence (namespaces were made by clone3), then a small init that
 * starts tmux as the agent, reaps and forwards signals. */
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

/* init: switch the tmux child to the agent, signal the agent's processes. */
static const uint64_t init_caps = CAP_BIT(CAP_KILL) | CAP_BIT(CAP_SETGID) | CAP_BIT(CAP_SETUID);


/* The sandbox's user namespace limits (/proc/sys/user/max_*), set by init as root of the namespace: the
 * agent (and sandbox root, without CAP_SYS_RESOURCE and with /proc/sys read-only) cannot raise them. The
 * kernel also counts everything inside against the namespace's owner on the host (the sandbox's own uid,
 * see clone_as_owner() in sandbox.c), within the host's fs.inotify.max_user_* and RLIMIT_MSGQUEUE.
 * Namespace creation is refused by the seccomp filter anyway; 0 makes sure of it, except for mount
 * namespaces: every detached mount (open_tree, fsmount) init makes while it builds the root is one. */
static const struct {
        const char *file;
        const char *value;
} userns_limits[] = {
        { "max_inotify_instances", "128" },  /* the host's per-user default */
        { "max_inotify_watches", "65536" },  /* enough for editors and file watchers on a large tree */
        { "max_fanotify_groups", "16" },
        { "max_fanotify_marks", "8192" },
        { "max_user_namespaces", "0" },
        { "max_mnt_namespaces", "16" },
        { "max_pid_namespaces", "0" },
        { "max_net_namespaces", "0" },
        { "max_uts_namespaces", "0" },
        { "max_ipc_namespaces", "0" },
        { "max_cgroup_namespaces", "0" },
        { "max_time_namespaces", "0" },
};

static int set_userns_limits(char *detail, size_t detailsz)
{
        for (size_t i = 0; i < ELEMENTSOF(userns_limits); i++) {
                _cleanup_close_ int fd = -EBADF;
                char path[64];
                int r;

                snprintf(path, sizeof(path), "/proc/sys/user/%s", userns_limits[i].file);
                fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0 && errno == ENOENT)
                        continue; /* an older kernel without this count */
                r = fd < 0 ? -errno : write_all(fd, userns_limits[i].value, strlen(userns_limits[i].value));
                if (r < 0) {
                        snprintf(detail, detailsz, "set %s", path);
                        return r;
                }
        }
        return 0;
}

/* The privilege sequence of the sandbox's PID 1, in order. Each step returns on failure; *ret_step names
 * it for the parent's error message. */
static int init_privilege_sequence(const init_ctx *c, const char **ret_step, char *detail, size_t detailsz)
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

        /*    Then forget the daemon: only our sync socket, the image mount and the directories the
         *    parent opened for us survive, stdio is /dev/null, signal dispositions were reset by
         *    CLONE_CLEAR_SIGHAND, the mask is cleared here. */
        STEP("close inherited file descriptors");
        r = close_all_except((const int[]) { c->sync_fd, c->plan->image_mount_fd, c->workspace_fd,
                                             c->api_socket_fd }, 4);
        if (r < 0)
                goto fail;
        /*    The file table: every process inside inherits init's limit. */
        STEP("set RLIMIT_NOFILE");
        r = set_rlimit(RLIMIT_NOFILE, c->nofile_max);
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

        /*    The user namespace's own limits, while /proc/sys is still writable for us. */
        step = detail;
        r = set_userns_limits(detail, detailsz);
        if (r < 0)
                goto fail;

        /* 6. Mounts and pivot_root: the new root is assembled through fds (rootfs.c). */
        step = detail;
        r = isolate_rootfs_setup(c->plan, c->workspace_fd, c->api_socket_fd, detail, detailsz);
        if (r < 0)
                goto fail;

        /* 7. Capabilities: empty bounding set (inherited by the agent), no ambient; init keeps only what it
         *    needs in its permitted and effective sets. */
        STEP("drop the capability bounding set");
        r = drop_bounding_set(c->cap_last, 0);
        if (r < 0)
                goto fail;
        STEP("reduce init's capabilities");
        r = set_caps(init_caps);
        if (r < 0)
                goto fail;

        /* 7b. No file larger than the workspace's disk limit (inherited by everything init starts). */
        STEP("set RLIMIT_FSIZE");
        r = set_rlimit(RLIMIT_FSIZE, c->fsize_max);
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

#define STR_(x) #x
#define STR(x) STR_(x)
/* OOM scores: the daemon gave init ISOLATE_OOM_SCORE_ADJ for tmux and its first window to inherit; once the
 * session is ready, the daemon lowers tmux's server to 0 (isolate_sandbox_create). Hooks raise every later
 * window, pane and session back up, so that an OOM kill takes the agent's processes and tmux survives it.
 * tmux has no hook for respawn-pane, pipe-pane or run-shell: what they start keeps the server's 0,
 * killable as ever. */
#define OOM_HOOK "run-shell '{ echo " STR(ISOLATE_OOM_SCORE_ADJ) " > /proc/#{pane_pid}/oom_score_adj; } 2>/dev/null || true'"

_noreturn_ static void init_main(const init_ctx *c)
{
        const char *const tmux_argv[] = {
                "tmux", "-S", ISOLATE_TMUX_SOCKET, "new-session", "-d", "-s", c->name, "-c", ISOLATE_WORKSPACE,
                ";", "set-hook", "-g", "after-new-window", OOM_HOOK,
                ";", "set-hook", "-g", "after-split-window", OOM_HOOK,
                ";", "set-hook", "-g", "after-new-session", OOM_HOOK,
                NULL
        };
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

_noreturn_ void init_child(const init_ctx *c)
{
        const char *step = "start";
        char detail[160] = "";
        int r;

        r = init_privilege_sequence(c, &step, detail, sizeof(detail));
        if (r < 0)
                child_fail(c->sync_fd, step, r);
        safe_close(c->workspace_fd);
        safe_close(c->api_socket_fd);
        init_main(c);
}
