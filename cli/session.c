/* SPDX-License-Identifier: MIT */
/* `pocketcoder sandbox run` and `pocketcoder enter`: a session with a process the daemon starts in the
 * sandbox (common/session-proto.h). The CLI never hands its own terminal over. For run it creates pipes of
 * its own, gives the far ends to the daemon and copies between them and its stdio; for enter it receives the
 * master of a pty allocated inside the sandbox. Whatever the sandbox prints goes through the terminal
 * filter (termfilter.c) when it goes to a terminal; into a pipe or a file it is copied exactly. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "session-proto.h"
#include "termfilter.h"

#define BUF_SIZE 65536

/* One direction of the relay: from fd `in` to fd `out`, filtered when `out` is a terminal. */
typedef struct stream {
        int in, out;
        bool filter;
        size_t max; /* bytes per read */
        termfilter tf;
} stream;

static void stream_init(stream *s, int in, int out)
{
        *s = (stream){ .in = in, .out = out, .filter = isatty(out), .max = BUF_SIZE };
        termfilter_init(&s->tf);
}

/* Copies one read's worth. Returns > 0 while open, 0 at EOF (or EIO: a pty without a slave) or when
 * nothing is there (EAGAIN: with `drain`), negative errno on failure. */
static int stream_pump(stream *s)
{
        static char buf[BUF_SIZE], filtered[TERMFILTER_OUT_MAX(BUF_SIZE)];
        ssize_t n = read(s->in, buf, MIN(s->max, sizeof(buf)));

        if (n < 0)
                return errno == EINTR ? 1 : (errno == EIO || errno == EAGAIN) ? 0 : -errno;
        if (n == 0)
                return 0;
        if (s->filter) {
                size_t k = termfilter_feed(&s->tf, buf, (size_t) n, filtered);
                return write_all(s->out, filtered, k) < 0 ? -EIO : 1;
        }
        return write_all(s->out, buf, (size_t) n) < 0 ? -EIO : 1;
}

/* After the process exited: what it wrote is in the pipe or pty already (a writer blocks until it is read,
 * so it cannot have exited with more to write). Take it without waiting for more: a process it left behind
 * may hold the other end open. */
static void stream_drain(stream *s)
{
        if (s->in < 0 || fcntl(s->in, F_SETFL, fcntl(s->in, F_GETFL) | O_NONBLOCK) < 0)
                return;
        while (stream_pump(s) > 0)
                ;
}

typedef struct term_state {
        bool saved;
        struct termios tio;
} term_state;

static void term_restore(term_state *t)
{
        if (t->saved)
                (void) tcsetattr(STDIN_FILENO, TCSADRAIN, &t->tio);
}

/* A TERM worth passing on (the daemon takes terminal type names only). */
static const char *term_name(void)
{
        const char *t = getenv("TERM");

        if (isempty(t) || strlen(t) >= 64 || t[strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+")])
                return NULL;
        return t;
}

/* Sends the request and reads the 101; on anything else prints the daemon's error. */
static int session_open(const cli_global *g, const char *path, json_t *req)
{
        _cleanup_json_ json_t *resp = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *prefix;
        long status;
        int r;

        if (!path)
                return -ENOMEM;
        if (g->url) {
                fprintf(stderr, "pocketcoder: enter and sandbox run need the daemon's unix socket (--socket), not "
                                "--url: the terminal's file descriptors pass over it\n");
                return -EOPNOTSUPP;
        }
        fd = cli_connect(g, &prefix);
        if (fd < 0) {
                cli_print_unreachable(g, fd);
                return fd;
        }
        r = cli_send_request(fd, g, prefix, "POST", path, req, PC_SESSION_UPGRADE);
        if (r >= 0)
                r = cli_read_response(fd, true, &status, &resp);
        if (r < 0) {
                cli_print_unreachable(g, r);
                return r;
        }
        if (status != 101) {
                cli_print_api_error(status, resp);
                return -EIO;
        }
        return TAKE_FD(fd);
}

/* A frame from the daemon: EXIT sets *ret_status, PTY hands over the master, ERROR is printed. Returns 1
 * when the session is over. */
static int session_frame(int sock, int *ret_status, int *ret_master)
{
        pc_frame f;
        int fd = -EBADF, r;
        size_t n = 0;

        r = pc_frame_recv(sock, &f, &fd, 1, &n);
        if (r < 0) {
                fprintf(stderr, "pocketcoder: the daemon ended the session without an exit status\n");
                *ret_status = CLI_EXIT_FAILED;
                return 1;
        }
        switch (f.type) {
        case PC_FRAME_PTY:
                if (n == 1 && ret_master && *ret_master < 0) {
                        *ret_master = fd;
                        return 0;
                }
                break;
        case PC_FRAME_EXIT:
                *ret_status = f.value;
                return 1;
        case PC_FRAME_ERROR:
                if (f.value > 0 && f.value < 65536) {
                        _cleanup_free_ char *msg = calloc(1, (size_t) f.value + 1);
                        if (msg && pc_frame_recv_bytes(sock, msg, (size_t) f.value) >= 0) {
                                fprintf(stderr, "pocketcoder: %s\n", msg);
                                *ret_status = CLI_EXIT_FAILED;
                                return 1;
                        }
                }
                break;
        }
        safe_close(fd);
        fprintf(stderr, "pocketcoder: unexpected message %u from the daemon\n", f.type);
        *ret_status = CLI_EXIT_FAILED;
        return 1;
}

int cli_session(const cli_global *g, const char *name, json_t *req, bool tty)
{
        _cleanup_free_ char *path = strjoin("/v1/sandboxes/", name, "/sessions");

        if (!path)
                return CLI_EXIT_FAILED;
        return cli_session_path(g, path, req, tty);
}

int cli_session_path(const cli_global *g, const char *path, json_t *req, bool tty)
{
        static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH };
        _cleanup_close_ int sock = -EBADF, sigfd = -EBADF, master = -EBADF, in_w = -EBADF, out_r = -EBADF,
                            err_r = -EBADF;
        _cleanup_(term_restore) term_state term = {};
        stream out = { .in = -1 }, err = { .in = -1 }, in = { .in = -1 };
        int status = CLI_EXIT_FAILED, r;
        bool in_writable;
        struct winsize ws;
        sigset_t mask;

        if (tty && isatty(STDIN_FILENO) && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) >= 0 && ws.ws_row && ws.ws_col) {
                json_object_set_new(req, "rows", json_integer(ws.ws_row));
                json_object_set_new(req, "cols", json_integer(ws.ws_col));
        }
        if (term_name())
                json_object_set_new(req, "term", json_string(term_name()));
        json_object_set_new(req, "tty", json_boolean(tty));

        sock = session_open(g, path, req);
        if (sock < 0)
                return CLI_EXIT_FAILED;

        /* Signals become events from here on. */
        sigemptyset(&mask);
        for (size_t i = 0; i < ELEMENTSOF(forwarded); i++)
                sigaddset(&mask, forwarded[i]);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 || (sigfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
                fprintf(stderr, "pocketcoder: cannot set up signal forwarding: %m\n");
                return CLI_EXIT_FAILED;
        }

        if (tty)
                r = pc_frame_send(sock, PC_FRAME_START, 0, NULL, 0, NULL, 0);
        else {
                /* Pipes of our own: the far ends go to the daemon, which closes its copies once they are the
                 * process' stdio. */
                _cleanup_close_ int in_r = -EBADF, out_w = -EBADF, err_w = -EBADF;
                int p[2];

                if (pipe2(p, O_CLOEXEC) < 0)
                        return CLI_EXIT_FAILED;
                in_r = p[0], in_w = p[1];
                if (pipe2(p, O_CLOEXEC) < 0)
                        return CLI_EXIT_FAILED;
                out_r = p[0], out_w = p[1];
                if (pipe2(p, O_CLOEXEC) < 0)
                        return CLI_EXIT_FAILED;
                err_r = p[0], err_w = p[1];
                r = pc_frame_send(sock, PC_FRAME_START, 0, (const int[]){ in_r, out_w, err_w }, 3, NULL, 0);
        }
        if (r < 0) {
                fprintf(stderr, "pocketcoder: cannot start the session: %s\n", strerror(-r));
                return CLI_EXIT_FAILED;
        }
        in_writable = tty;
        if (tty) {
                /* The daemon answers with the pty's master, or with why the process did not start. */
                if (session_frame(sock, &status, &master) != 0)
                        return status;
                stream_init(&out, master, STDOUT_FILENO);
                stream_init(&in, STDIN_FILENO, master);
                in.filter = false; /* what the admin types goes in as typed */
                if (tcgetattr(STDIN_FILENO, &term.tio) >= 0) {
                        struct termios raw = term.tio;

                        term.saved = true;
                        /* Every key (Ctrl-C included) goes to the program inside, which has its own terminal. */
                        cfmakeraw(&raw);
                        (void) tcsetattr(STDIN_FILENO, TCSANOW, &raw);
                }
        } else {
                stream_init(&out, out_r, STDOUT_FILENO);
                stream_init(&err, err_r, STDERR_FILENO);
                stream_init(&in, STDIN_FILENO, in_w);
                /* A command that does not read its stdin must not stall the relay: stdin is read only while
                 * the pipe has room, a page at a time (a pipe that polls writable takes that much). */
                in.filter = false;
                in.max = 4096;
        }
        (void) signal(SIGPIPE, SIG_IGN);

        for (;;) {
                struct pollfd p[6] = {
                        { .fd = sock, .events = POLLIN },
                        { .fd = sigfd, .events = POLLIN },
                        { .fd = in_writable ? in.in : -1, .events = POLLIN },
                        { .fd = out.in, .events = POLLIN },
                        { .fd = err.in, .events = POLLIN },
                        { .fd = in.in >= 0 && !in_writable ? in_w : -1, .events = POLLOUT },
                };

                if (poll(p, ELEMENTSOF(p), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[1].revents & POLLIN) {
                        struct signalfd_siginfo si;

                        if (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
                                if (si.ssi_signo == SIGWINCH) {
                                        if (master >= 0 && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) >= 0)
                                                (void) ioctl(master, TIOCSWINSZ, &ws);
                                } else
                                        (void) pc_frame_send(sock, PC_FRAME_SIGNAL, (int32_t) si.ssi_signo, NULL,
                                                             0, NULL, 0);
                        }
                }
                if (p[5].revents & POLLOUT)
                        in_writable = true;
                if (p[2].revents & (POLLIN | POLLHUP | POLLERR)) {
                        if (stream_pump(&in) <= 0 || p[5].revents & POLLERR) {
                                in.in = -1;
                                if (!tty)
                                        in_w = safe_close(in_w); /* EOF for the command */
                        }
                        in_writable = tty;
                }
                if (p[5].revents & POLLERR) { /* nobody reads the command's stdin any more */
                        in.in = -1;
                        in_w = safe_close(in_w);
                }
                for (int i = 3; i < 5; i++) {
                        stream *s = i == 3 ? &out : &err;
                        if (p[i].revents & (POLLIN | POLLHUP | POLLERR) && stream_pump(s) <= 0)
                                s->in = -1;
                }
                if (p[0].revents & (POLLIN | POLLHUP | POLLERR) && session_frame(sock, &status, NULL) != 0)
                        break;
        }
        stream_drain(&out);
        stream_drain(&err);
        return status;
}
