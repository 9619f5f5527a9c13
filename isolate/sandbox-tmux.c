/* SPDX-License-Identifier: MIT */
/* tmux inside a sandbox, run through isolate_sandbox_exec() as the agent. */
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
#include "isolate-internal.h"
#include "isolate.h"
#include "sandbox-internal.h"

#define TMUX_OUTPUT_MAX   (4U * 1024U * 1024U)
#define TMUX_TIMEOUT_MSEC 10000

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

        /* Read both pipes until EOF or until tmux exited (bounded in time: a wedged tmux server must not hang
         * the daemon). Not only EOF: tmux's server can pass a client's stdio on to a pane it starts meanwhile,
         * which then holds the pipes open after the client is gone. */
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + TMUX_TIMEOUT_MSEC * 1000ULL;
        bool exited = false;
        while ((out_r >= 0 || err_r >= 0) && !exited) {
                struct pollfd pf[3] = { { .fd = out_r, .events = POLLIN }, { .fd = err_r, .events = POLLIN },
                                        { .fd = pidfd, .events = POLLIN } };
                uint64_t now = now_usec(CLOCK_MONOTONIC);

                if (now >= deadline) {
                        (void) raw_pidfd_send_signal(pidfd, SIGKILL);
                        (void) waitid(P_PIDFD, pidfd, &si, WEXITED);
                        return pc_error_setf(reterr, ETIMEDOUT, "timeout", "sandbox %s: tmux %s timed out",
                                             sb->name, strna(args ? args[0] : NULL));
                }
                r = poll(pf, 3, (int) ((deadline - now) / 1000) + 1);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (pf[2].revents & POLLIN) {
                        /* what it wrote is in the pipes now: take it without waiting for their end */
                        exited = true;
                        for (int i = 0; i < 2; i++)
                                if ((i == 0 ? out_r : err_r) >= 0)
                                        (void) fcntl(i == 0 ? out_r : err_r, F_SETFL, O_NONBLOCK);
                        for (int i = 0; i < 2; i++)
                                pf[i].revents |= POLLIN;
                }
                for (int i = 0; i < 2; i++) {
                        int *fd = i == 0 ? &out_r : &err_r;
                        char *buf = i == 0 ? out : err;
                        size_t *len = i == 0 ? &out_len : &err_len, cap = i == 0 ? TMUX_OUTPUT_MAX : 4095;
                        char sink[4096];
                        ssize_t k;

                        if (*fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        /* Past the cap, keep draining (so tmux does not block) but drop the bytes. */
                        do {
                                k = *len < cap ? read(*fd, buf + *len, cap - *len) : read(*fd, sink, sizeof(sink));
                                if (k > 0 && *len < cap)
                                        *len += (size_t) k;
                        } while (exited && (k > 0 || (k < 0 && errno == EINTR)));
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0 && !(exited && k < 0 && errno == EAGAIN))
                                *fd = safe_close(*fd);
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

