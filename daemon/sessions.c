/* SPDX-License-Identifier: MIT */
/* Sessions: `pocketcoder enter` and `sandbox run` as processes the daemon starts in a sandbox. The client never
 * hands its terminal over: for run it gives pipes of its own, for enter it gets the master of a pty the
 * daemon allocated inside the sandbox. Once the process runs the daemon holds no copy of its stdio, so what
 * the agent leaves behind (a process that took fd 0 with pidfd_getfd) holds a dead end when the session
 * ends. Start and end are in the audit ledger; a session whose start cannot be recorded does not start. */
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>

#include "daemon-internal.h"
#include "isolate.h"
#include "requests-internal.h"

struct pc_session {
        pc_daemon *daemon;
        char name[64];
        char actor[128];
        json_t *req;             /* the request, kept for the audit rows */
        pc_session_request r;    /* points into req */
        const char **argv;       /* NULL-terminated, points into req */
        pid_t pid;
        int pidfd;
};

/* What a terminal or a shell delivers to a foreground job: nothing else is forwarded. */
static bool signal_forwardable(int sig)
{
        return sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT || sig == SIGKILL;
}

int pc_session_new(pc_daemon *d, const pc_principal *who, const char *name, json_t *req, pc_session **ret,
                   pc_error **reterr)
{
        _cleanup_(pc_session_freep) pc_session *s = NULL;
        _cleanup_json_ json_t *sb = NULL;
        json_t *v;
        size_t i;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->daemon = d;
        s->pidfd = -EBADF;
        s->req = json_incref(req);
        r = pc_session_request_parse(req, &s->r, reterr);
        if (r < 0)
                return r;
        r = pc_sandboxes_show(d, who, name, &sb, reterr);
        if (r < 0)
                return r;
        if (!json_is_integer(json_object_get(sb, "init_pid")))
                return pc_error_setf(reterr, EBUSY, "not_running",
                                     "sandbox \"%s\" is not running; start it with 'pocketcoder sandbox start %s'",
                                     name, name);
        snprintf(s->name, sizeof(s->name), "%s", name);
        pc_principal_describe(who, s->actor, sizeof(s->actor));

        if (s->r.argv) {
                s->argv = calloc(json_array_size(s->r.argv) + 1, sizeof(char *));
                if (!s->argv)
                        return -ENOMEM;
                json_array_foreach(s->r.argv, i, v)
                        s->argv[i] = json_string_value(v);
        }
        *ret = TAKE_PTR(s);
        return 0;
}

int pc_session_record_start(pc_session *s, pc_error **reterr)
{
        _cleanup_free_ char *detail = json_dumps(s->req, JSON_COMPACT);
        int r;

        if (!detail)
                return -ENOMEM;
        r = pc_store_audit(&s->daemon->store, s->actor, s->r.enter ? "sandbox.enter" : "sandbox.run", s->name,
                           detail);
        if (r < 0)
                return pc_store_errorf(r, reterr,
                                       "the session cannot be recorded in the audit ledger, so it was not started");
        return 0;
}

bool pc_session_is_tty(const pc_session *s)
{
        return s->r.tty;
}

int pc_session_start(pc_session *s, int stdio[3], int *ret_master, pc_error **reterr)
{
        /* stdio is ours from here: the client's copies stay with the client, ours close on every path. */
        _cleanup_close_ int in = stdio ? stdio[0] : -EBADF, out = stdio ? stdio[1] : -EBADF,
                            err = stdio ? stdio[2] : -EBADF, master = -EBADF;
        const char *attach[] = { "tmux", "-S", ISOLATE_TMUX_SOCKET, "attach", "-t", s->name, NULL };
        isolate_exec_options o = {
                .argv = s->argv ?: attach,
                .cwd = s->r.cwd,
                .as_root = s->r.as_root,
                .tty = s->r.tty,
                .term = s->r.term,
                .stdin_fd = in,
                .stdout_fd = out,
                .stderr_fd = err,
        };
        int r;

        if (s->pidfd >= 0)
                return -EALREADY;
        r = pc_sandboxes_exec(s->daemon, s->name, &o, s->r.tty ? &master : NULL, &s->pid, &s->pidfd, reterr);
        if (r < 0)
                return r;
        if (master >= 0 && s->r.rows > 0 && s->r.cols > 0)
                (void) ioctl(master, TIOCSWINSZ,
                             &(struct winsize){ .ws_row = (unsigned short) s->r.rows, .ws_col = (unsigned short) s->r.cols });
        if (ret_master)
                *ret_master = TAKE_FD(master);
        return 0;
}

int pc_session_pidfd(const pc_session *s)
{
        return s->pidfd;
}

int pc_session_signal(pc_session *s, int sig)
{
        if (!signal_forwardable(sig) || s->pidfd < 0)
                return -EINVAL;
        return syscall(SYS_pidfd_send_signal, s->pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

int pc_session_wait(pc_session *s)
{
        siginfo_t si = {};
        char detail[64];
        int status;

        if (s->pidfd < 0)
                return -ECHILD;
        while (waitid(P_PIDFD, (id_t) s->pidfd, &si, WEXITED) < 0)
                if (errno != EINTR)
                        return -errno;
        s->pidfd = safe_close(s->pidfd);
        status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
        snprintf(detail, sizeof(detail), "{\"status\":%d}", status);
        if (pc_store_audit(&s->daemon->store, s->actor, "sandbox.session-end", s->name, detail) < 0)
                log_warning("sandbox %s: cannot record the end of a session (status %d) in the audit ledger, "
                            "ignoring", s->name, status);
        return status;
}

pc_session *pc_session_free(pc_session *s)
{
        if (!s)
                return NULL;
        if (s->pidfd >= 0) {
                (void) syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
                (void) pc_session_wait(s);
        }
        json_decref(s->req);
        free(s->argv);
        free(s);
        return NULL;
}
