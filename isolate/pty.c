/* SPDX-License-Identifier: MIT */
/* A pseudo-terminal inside a sandbox, as systemd-machined's OpenMachinePTY makes one: a helper process joins
 * the sandbox's user and mount namespaces, opens the ptmx of the sandbox's own devpts instance and sends the
 * master back over a socketpair. The terminal then belongs to the sandbox: nothing of the host's (the
 * admin's terminal, the host's devpts) is ever handed to a process inside. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "common.h"
#include "isolate.h"
#include "session-proto.h"

#ifndef DEVPTS_SUPER_MAGIC
#define DEVPTS_SUPER_MAGIC 0x1cd1
#endif
/* Bounds the helper: a sandbox that made its /dev/pts something slow to open must not wedge the daemon. */
#define PTY_HELPER_TIMEOUT_MSEC 5000

/* In the helper, between fork and _exit: only async-signal-safe calls. */
_noreturn_ static void pty_helper(int pidfd, int sock)
{
        struct statfs sfs;
        unsigned n;
        int fd;

        if (setns(pidfd, CLONE_NEWUSER | CLONE_NEWNS) < 0)
                _exit(10);
        /* Sandbox root (an unprivileged host uid): the terminal's slave is owned inside the sandbox. */
        if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
                _exit(11);
        /* /dev/pts is the sandbox's devpts mount, but sandbox root could have mounted something else there:
         * no symlinks, never block on a fifo, and it must be a devpts ptmx. */
        fd = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0)
                _exit(12);
        if (fstatfs(fd, &sfs) < 0 || sfs.f_type != DEVPTS_SUPER_MAGIC || ioctl(fd, TIOCGPTN, &n) < 0)
                _exit(13);
        _exit(pc_frame_send(sock, PC_FRAME_PTY, 0, &fd, 1, NULL, 0) < 0 ? 14 : 0);
}

int isolate_sandbox_openpt(isolate_sandbox *sb, int *ret_master, pc_error **reterr)
{
        _cleanup_close_ int ours = -EBADF, theirs = -EBADF, master = -EBADF;
        static const char *const steps[] = { [10] = "join the sandbox's namespaces", [11] = "become sandbox root",
                                             [12] = "open /dev/pts/ptmx", [13] = "check /dev/pts/ptmx is a devpts ptmx",
                                             [14] = "send the terminal" };
        struct pollfd p;
        pc_frame f = {};
        size_t n = 0;
        int sp[2], status, r, unlock = 0;
        pid_t pid;

        if (!isolate_sandbox_is_running(sb))
                return pc_error_setf(reterr, ESRCH, "not_running", "sandbox %s is not running",
                                     isolate_sandbox_name(sb));
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                return -errno;
        ours = sp[0];
        theirs = sp[1];
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                pty_helper(isolate_sandbox_pidfd(sb), theirs);
        theirs = safe_close(theirs);

        p = (struct pollfd){ .fd = ours, .events = POLLIN };
        r = poll(&p, 1, PTY_HELPER_TIMEOUT_MSEC);
        if (r == 0) {
                (void) kill(pid, SIGKILL);
                r = -ETIMEDOUT;
        } else
                r = r < 0 ? -errno : pc_frame_recv(ours, &f, &master, 1, &n);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (WIFEXITED(status) && WEXITSTATUS(status) >= 10 && WEXITSTATUS(status) <= 14)
                return pc_error_setf(reterr, EIO, "pty", "sandbox %s: cannot allocate a terminal inside: %s failed",
                                     isolate_sandbox_name(sb), steps[WEXITSTATUS(status)]);
        if (r < 0 || f.type != PC_FRAME_PTY || n != 1)
                return pc_error_setf(reterr, r < 0 ? -r : EPROTO, "pty",
                                     "sandbox %s: cannot allocate a terminal inside: %s", isolate_sandbox_name(sb),
                                     strerror(r < 0 ? -r : EPROTO));
        if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || fcntl(master, F_SETFL, O_RDWR) < 0)
                return -errno;
        *ret_master = TAKE_FD(master);
        return 0;
}

int isolate_pty_peer(int master)
{
        int fd = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);

        return fd < 0 ? -errno : fd;
}
