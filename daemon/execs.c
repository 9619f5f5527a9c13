/* SPDX-License-Identifier: MIT */
/* The exec engine: POST /v1/sandboxes/{name}/execs and what follows. The sandbox's policy decides; an
 * allowed command runs in a window of its own in the sandbox's tmux session, started by a small shim (perl,
 * from perl-base, inside the sandbox as the agent: tmux is its parent). The shim and its child connect back
 * to the daemon on RUNTIME_DIR/sandboxes/NAME/exec.sock (/run/pocketcoder/exec.sock inside), one connection
 * each for control, stdout, stderr and stdin, each opened with the exec's id and secret: the command's stdio
 * are those sockets, so its output arrives exactly and separately, and its end is the control connection's
 * status line (events on the loop: nothing is polled). The daemon moves the child into a cgroup of its own
 * under the sandbox's before it lets it become the bash that runs the command, so a timeout kills its whole
 * tree.
 *
 * Windows are made ahead: after an exec, the sandbox gets a ready window (exec_ready_windows) whose shim is
 * connected and whose bash waits for a job; the next exec takes it, and its id, so it costs no window, perl or
 * bash start (~5 ms here), only the job's write. One window-maker thread makes every window (a ready one, or
 * the own window of an exec that found none) through the sandbox's tmux control-mode client.
 *
 * Threads: requests come from the HTTP pool, sockets and timers are the loop's; the engine's lock guards the
 * list of running execs and everything in them. Output is kept in memory while an exec runs, appended to
 * spool files in STATE_DIR/execs (what a daemon killed meanwhile finds: the exec is then "lost", with that
 * output) and stored with the row when it ends. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/vfs.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "execs-internal.h"
#include "isolate.h"
#include "policies.h"

#define EXEC_SOCKET    "exec.sock"
#define EXEC_SOCKET_IN "/run/pocketcoder/" EXEC_SOCKET
#define HEADER_MAX     128u
#define READ_CHUNK     65536u

/* ---- the engine ---- */

typedef enum {
        CONN_CTL, /* the shim: the job (cwd, command, environment) in, "status W USER_US SYSTEM_US" out */
        CONN_OUT, /* the child's stdout; "go" to it once it is in its cgroup */
        CONN_ERR,
        CONN_IN,
        _CONN_MAX,
        CONN_NEW, /* before its header line named the exec */
} conn_kind;

static const char *const conn_kind_table[_CONN_MAX] = {
        [CONN_CTL] = "ctl",
        [CONN_OUT] = "out",
        [CONN_ERR] = "err",
        [CONN_IN] = "in",
};

typedef struct exec exec;
typedef struct listener listener;

typedef struct conn {
        pc_daemon *daemon;
        listener *listener;
        exec *x;
        conn_kind kind;
        int fd;
        sd_event_source *source;
        char buf[HEADER_MAX]; /* the header, then (ctl) the status line */
        size_t len;
        struct conn *next; /* unidentified connections */
} conn;

typedef struct outbuf {
        char *data;
        size_t len, cap;
        bool truncated, eof;
        bool spooled; /* its spool file was made (at the first output: an exec without output makes none) */
        int spool;
} outbuf;

struct exec {
        char id[33], secret[33], sandbox[64], instance[33];
        char *command, *cwd;
        json_t *env;
        char *in_data; /* stdin not written yet */
        size_t in_len;
        bool in_open; /* more may come (POST .../stdin) */
        uint64_t timeout_usec, started_mono;
        outbuf out[2];
        conn *c[_CONN_MAX];
        bool ctl_done, go_sent, got_status, timed_out;
        bool assigned; /* an exec's (command, cwd... set); else a ready window's, waiting for one */
        bool reserved; /* a request took this ready window: it becomes that request's exec */
        bool job_sent;
        int status;
        uint64_t cpu_user, cpu_system;
        char *cgroup; /* its own group, or NULL */
        bool cgroup_v2;
        pid_t pid; /* the command (host pid), once it connected */
        int pidfd;
        sd_event_source *timer;
        pc_exec_output_waiter *waiters;
        exec *next;
};

struct listener {
        pc_daemon *daemon;
        char sandbox[64], instance[33];
        int fd;
        sd_event_source *source;
        listener *next;
};

/* One tmux control-mode client per sandbox (`tmux -C attach`, started inside it once): a new window is one
 * command line to it, not a tmux process per exec. */
typedef struct tmux_client {
        char sandbox[64], instance[33];
        pthread_mutex_t lock; /* one command and its answer at a time */
        int fd;               /* its stdin and stdout */
        int pidfd;
        pc_watch *watch; /* its exit (a stopped sandbox's), to reap it */
        char buf[16384]; /* read, not parsed yet */
        size_t len;
        struct tmux_client *next;
} tmux_client;

/* A window to make, by the window maker's thread: the window of exec `id`, or (id "") a ready one. */
typedef struct window_job {
        char sandbox[64], id[33];
        struct window_job *next;
} window_job;

typedef struct pc_execs {
        pthread_mutex_t lock;
        exec *list; /* execs and ready windows */
        window_job *jobs;
        pthread_cond_t jobs_cond;
        pthread_t maker;
        bool maker_started, stopping;
        listener *listeners;
        tmux_client *clients;
        conn *pending;
        char *spool_dir;
} pc_execs;

/* The shim, as small as perl lets it be: no modules (Socket and POSIX cost ~15 ms to load), so the constants
 * are Linux's (AF_UNIX = SOCK_STREAM = 1; a sockaddr_un is the family and the path). A window and its shim are
 * made ahead of time (a sandbox keeps exec_ready_windows of them): the shim connects, forks the command's
 * process, which connects stdout, stderr and stdin, is moved into the exec's cgroup ("go") and becomes a `bash`
 * that waits for its job on a pipe. The job ("DISPLAY_LEN SCRIPT_LEN\n", what the pane shows, a bash script that
 * sets __pc_c, the directory and the environment) comes when an exec takes the window; the bash sources it and
 * evals the command, so an exec costs neither a window, nor a perl, nor a bash start. */
static const char *const shim_script =
        /* tmux's server may pass on descriptors of its clients (their stdio) to a new pane: dropped, so that
         * neither the command gets them nor the clients wait for their end */
        "opendir(my $fds, q{/proc/self/fd}) or die \"fds: $!\\n\";"
        "for (grep { /^\\d+$/ && $_ > 2 } readdir($fds)) { open(my $f, q{<&=}, $_) && close($f); } "
        "closedir($fds);"
        "my ($id, $secret) = @ARGV; $| = 1; $SIG{PIPE} = q{IGNORE};"
        "sub conn { socket(my $s, 1, 1, 0) or die \"socket: $!\\n\";"
        "  connect($s, pack(q{S Z*}, 1, q{" EXEC_SOCKET_IN "})) or die \"connect: $!\\n\";"
        "  syswrite($s, \"$id $secret $_[0]\\n\") or die \"write: $!\\n\"; return $s; }"
        "sub readn { my ($s, $n) = @_; my $b = q{}; while (length($b) < $n) {"
        "  my $k = sysread($s, $b, $n - length($b), length($b)); die \"job: $!\\n\" unless $k; } return $b; "
        "}"
        "my $c = conn(q{ctl});"
        /* the job's pipe outlives the bash's exec ($^F: descriptors above it are close-on-exec) */
        "$^F = 1000; pipe(my $r, my $w) or die \"pipe: $!\\n\"; $^F = 2;"
        "my $pid = fork(); die \"fork: $!\\n\" unless defined $pid;"
        "if (!$pid) { close($w); my $o = conn(q{out}); my $e = conn(q{err}); my $i = conn(q{in}); my $go = q{};"
        "  sysread($o, $go, 3); exit 127 unless $go eq \"go\\n\"; setpgrp(0, 0); delete @ENV{qw(TMUX TMUX_PANE)};"
        "  open(STDIN, q{<&}, $i) && open(STDOUT, q{>&}, $o) && open(STDERR, q{>&}, $e) or exit 127;"
        "  $SIG{PIPE} = q{DEFAULT}; my $n = fileno($r);"
        "  exec { q{/bin/bash} } q{bash}, q{-c}, \". /dev/fd/$n || exit 127; exec $n<&-; eval \\\"unset __pc_c; "
        "\\$__pc_c\\\"\"; syswrite(STDERR, \"pocketcoder: bash: $!\\n\"); exit 127; }"
        "close($r); my ($dl, $sl) = split(/ /, readn($c, 24)); my $job = readn($c, $dl + $sl);"
        "print(substr($job, 0, $dl)); syswrite($w, $job, $sl, $dl); close($w);"
        "waitpid($pid, 0); my $st = $?; my (undef, undef, $cu, $cs) = times;"
        "syswrite($c, sprintf(\"status %d %.0f %.0f\\n\", $st, $cu * 1e6, $cs * 1e6));"
        "print(($st & 127) ? q{[signal } . ($st & 127) . \"]\\n\" : q{[exit } . ($st >> 8) . \"]\\n\");"
        /* not ';' at the end: tmux takes an argument ending in ';' for the end of its command */
        "exit 0";

static void random_hex(char ret[static 33])
{
        static const char digits[] = "0123456789abcdef";
        uint8_t b[16];

        /* getrandom() of 16 bytes does not fail once the pool is initialised (it was: the daemon made
         * tokens) */
        if (getrandom(b, sizeof(b), 0) != sizeof(b))
                abort();
        for (size_t i = 0; i < 16; i++) {
                ret[2 * i] = digits[b[i] >> 4];
                ret[2 * i + 1] = digits[b[i] & 15];
        }
        ret[32] = 0;
}

static bool id_is_valid(const char *id)
{
        return strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32;
}

static exec *exec_find(pc_execs *m, const char *id)
{
        for (exec *x = m->list; x; x = x->next)
                if (streq(x->id, id))
                        return x;
        return NULL;
}

static void wake_waiters(exec *x)
{
        pc_exec_output_waiter *w = TAKE_PTR(x->waiters);

        while (w) {
                pc_exec_output_waiter *next = w->next;
                w->next = NULL;
                w->exec = NULL;
                w->wake(w);
                w = next;
        }
}

static conn *conn_free(conn *c)
{
        if (!c)
                return NULL;
        sd_event_source_disable_unref(c->source);
        safe_close(c->fd);
        free(c);
        return NULL;
}

static void exec_free(exec *x)
{
        for (size_t i = 0; i < _CONN_MAX; i++)
                conn_free(x->c[i]);
        for (size_t i = 0; i < 2; i++) {
                free(x->out[i].data);
                safe_close(x->out[i].spool);
        }
        sd_event_source_disable_unref(x->timer);
        safe_close(x->pidfd);
        free(x->command);
        free(x->cwd);
        json_decref(x->env);
        free(x->in_data);
        free(x->cgroup);
        free(x);
}

/* ---- cgroups of execs ---- */

static int cg_write(const char *dir, const char *file, const char *value)
{
        _cleanup_free_ char *p = strjoin(dir, "/", file);
        _cleanup_close_ int fd = -EBADF;

        if (!p)
                return -ENOMEM;
        fd = open(p, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        return write_all(fd, value, strlen(value));
}

/* The exec's group below the sandbox's (v2: the sandbox's leaf, which has no controllers for its children,
 * so the group counts and kills but keeps no memory peak; v1: in the memory hierarchy, with its peak). */
static int exec_cgroup_make(exec *x, const char *sandbox_cgroup)
{
        struct statfs sf;

        if (!sandbox_cgroup)
                return 0;
        if (statfs(sandbox_cgroup, &sf) < 0)
                return -errno;
        x->cgroup_v2 = (uint64_t)sf.f_type == (uint64_t)CGROUP2_SUPER_MAGIC;
        x->cgroup = strjoin(sandbox_cgroup, "/exec-", x->id);
        if (!x->cgroup)
                return -ENOMEM;
        if (mkdir(x->cgroup, 0755) < 0) {
                int r = -errno;
                x->cgroup = (free(x->cgroup), NULL);
                return r;
        }
        return 0;
}

/* Kills everything in the exec's group (and its process group, which a v1 group without freezer could miss
 * while it forks). */
static void exec_kill_tree(exec *x)
{
        if (x->pid > 0)
                (void)kill(-x->pid, SIGKILL);
        if (!x->cgroup)
                return;
        if (x->cgroup_v2) {
                (void)cg_write(x->cgroup, "cgroup.kill", "1");
                return;
        }
        /* v1: SIGKILL to every member; a member cannot fork once killed, so each pass leaves fewer. */
        for (unsigned pass = 0; pass < 64; pass++) {
                _cleanup_free_ char *p = strjoin(x->cgroup, "/cgroup.procs"), *data = NULL;
                size_t n = 0;
                bool any = false;

                if (!p || read_full_file(p, 1 << 20, &data, &n) < 0)
                        return;
                for (char *s = data, *e; s && *s; s = e) {
                        long pid = strtol(s, &e, 10);
                        if (e == s)
                                break;
                        if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0)
                                any = true;
                }
                if (!any)
                        return;
        }
}

static void exec_cgroup_usage(exec *x, int64_t *ret_peak)
{
        _cleanup_free_ char *p = NULL, *data = NULL;
        uint64_t u;

        *ret_peak = -1;
        if (!x->cgroup)
                return;
        p = strjoin(x->cgroup, x->cgroup_v2 ? "/memory.peak" : "/memory.max_usage_in_bytes");
        if (p && read_full_file(p, 64, &data, NULL) >= 0 && parse_uint64(strstrip(data), &u) >= 0 &&
            u <= INT64_MAX)
                *ret_peak = (int64_t)u;
}

/* The group goes when it is empty; until then (v2) inotify on cgroup.events tells when. */
static int on_cgroup_events(sd_event_source *s, const struct inotify_event *ev, void *userdata)
{
        char *dir = userdata;

        if (rmdir(dir) == 0 || errno == ENOENT) {
                free(dir);
                /* the loop's (floating) reference becomes ours, and goes */
                (void)sd_event_source_set_floating(s, 0);
                sd_event_source_disable_unref(s);
        }
        return 0;
}

static void exec_cgroup_remove(pc_daemon *d, exec *x)
{
        _cleanup_free_ char *events = NULL;

        if (!x->cgroup || rmdir(x->cgroup) == 0 || errno != EBUSY)
                return;
        events = strjoin(x->cgroup, "/cgroup.events");
        if (x->cgroup_v2 && events &&
            sd_event_add_inotify(d->event, NULL, events, IN_MODIFY, on_cgroup_events, x->cgroup) >= 0) {
                x->cgroup = NULL; /* the watch's now */
                return;
        }
        log_warning("exec %s: cannot remove its cgroup %s yet: still in use, ignoring", x->id, x->cgroup);
}

/* ---- the store ---- */

#define EXEC_COLUMNS                                                                                      \
        "id, sandbox, command, cwd, state, decision, remembered, permission, reason, exit_code, signal, " \
        "timed_out, created, started, finished, duration_ms, cpu_user_us, cpu_system_us, memory_peak, "   \
        "stdout_truncated, stderr_truncated, timeout, actor"

static json_t *column_json(sqlite3_stmt *st, int i)
{
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER:
                return json_integer(sqlite3_column_int64(st, i));
        case SQLITE_TEXT:
                return json_stringn((const char *)sqlite3_column_text(st, i),
                                    (size_t)sqlite3_column_bytes(st, i));
        default:
                return json_null();
        }
}

/* Output bytes as "NAME" when they are UTF-8 (jansson checks), else "NAME_base64". */
static int set_output(json_t *o, const char *name, const void *data, size_t n)
{
        _cleanup_free_ char *b = NULL, *key = NULL;
        json_t *s = json_stringn(n ? data : "", n);

        if (s)
                return json_object_set_new(o, name, s);
        b = pc_base64_encode(data, n);
        key = strjoin(name, "_base64");
        if (!b || !key)
                return -ENOMEM;
        return json_object_set_new(o, key, json_string(b));
}

/* One row as the API shows it (st from "SELECT " EXEC_COLUMNS [", stdout, stderr"]). */
static json_t *exec_json(sqlite3_stmt *st, bool with_output)
{
        _cleanup_json_ json_t *o = json_object(), *decision = NULL;
        const char *d = (const char *)sqlite3_column_text(st, 5);
        static const char *const names[] = {
                "id",     "sandbox",   "command", "cwd", "state",   NULL,      NULL,       "permission",
                "reason", "exit_code", "signal",  NULL,  "created", "started", "finished", "duration_ms",
        };

        if (!o)
                return NULL;
        for (int i = 0; i < (int)ELEMENTSOF(names); i++)
                if (names[i] && json_object_set_new(o, names[i], column_json(st, i)) < 0)
                        return NULL;
        decision = d ? json_loads(d, 0, NULL) : NULL;
        if (json_object_set(o, "decision", decision ?: json_null()) < 0 ||
            json_object_set_new(o, "remembered", json_boolean(sqlite3_column_int(st, 6))) < 0 ||
            json_object_set_new(o, "timed_out", json_boolean(sqlite3_column_int(st, 11))) < 0 ||
            json_object_set_new(o, "usage",
                                json_pack("{s:o, s:o, s:o}", "cpu_user_us", column_json(st, 16),
                                          "cpu_system_us", column_json(st, 17), "memory_peak",
                                          column_json(st, 18))) < 0 ||
            json_object_set_new(o, "stdout_truncated", json_boolean(sqlite3_column_int(st, 19))) < 0 ||
            json_object_set_new(o, "stderr_truncated", json_boolean(sqlite3_column_int(st, 20))) < 0 ||
            json_object_set_new(o, "timeout", column_json(st, 21)) < 0)
                return NULL;
        if (with_output)
                for (int i = 0; i < 2; i++)
                        if (sqlite3_column_type(st, 23 + i) != SQLITE_NULL &&
                            set_output(o, i == 0 ? "stdout" : "stderr", sqlite3_column_blob(st, 23 + i),
                                       (size_t)sqlite3_column_bytes(st, 23 + i)) < 0)
                                return NULL;
        return TAKE_PTR(o);
}

/* The row of ID (with output) as JSON; -ENOENT when there is none. */
static int exec_load_json(pc_daemon *d, const char *id, json_t **ret, char *ret_sandbox, pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int k;

        if (pc_store_prepare_cached(&d->store, "SELECT " EXEC_COLUMNS ", stdout, stderr FROM execs WHERE id = ?",
                                    &st) < 0)
                return pc_store_error(&d->store, reterr);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        k = sqlite3_step(st);
        if (k == SQLITE_DONE)
                return -ENOENT;
        if (k != SQLITE_ROW)
                return pc_store_error(&d->store, reterr);
        if (ret_sandbox)
                snprintf(ret_sandbox, 64, "%s", (const char *)sqlite3_column_text(st, 1));
        *ret = exec_json(st, true);
        return *ret ? 0 : -ENOMEM;
}


/* ---- the end of an exec (on the loop, engine lock held) ---- */

static void sha256_of(const outbuf *o, char ret[static 65])
{
        if (pc_sha256_hex(o->data ?: "", o->len, ret) < 0)
                strcpy(ret, "");
}

static char *spool_path(pc_execs *m, const char *id, int stream)
{
        return strjoin(m->spool_dir, "/", id, stream ? ".stderr" : ".stdout");
}

/* Stores how X ended (state "finished", or "lost" with `why_lost` when the shim gave no status) with its
 * output, the audit row exec.end and the event exec.finished, in one transaction. */
static int exec_record_end(pc_daemon *d, exec *x, const char *why_lost)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        _cleanup_json_ json_t *det = NULL;
        _cleanup_free_ char *detail = NULL;
        char h0[65], h1[65];
        int64_t peak, duration = (int64_t)((now_usec(CLOCK_MONOTONIC) - x->started_mono) / 1000);
        bool lost = !x->got_status;
        int code = -1, sig = 0;

        exec_cgroup_usage(x, &peak);
        if (!lost && WIFEXITED(x->status))
                code = WEXITSTATUS(x->status);
        else if (!lost && WIFSIGNALED(x->status))
                sig = WTERMSIG(x->status);
        sha256_of(&x->out[0], h0);
        sha256_of(&x->out[1], h1);
        det = json_pack("{s:o, s:o, s:b, s:I, s:{s:I, s:I, s:o}, s:s, s:s}", "exit_code",
                        code >= 0 ? json_integer(code) : json_null(), "signal",
                        sig ? json_integer(sig) : json_null(), "timed_out", x->timed_out, "duration_ms",
                        (json_int_t)duration, "usage", "cpu_user_us", (json_int_t)x->cpu_user,
                        "cpu_system_us", (json_int_t)x->cpu_system, "memory_peak",
                        peak >= 0 ? json_integer(peak) : json_null(), "stdout_sha256", h0, "stderr_sha256",
                        h1);
        detail = det ? json_dumps(det, JSON_COMPACT) : NULL;
        if (!detail)
                return -ENOMEM;
        if (pc_store_prepare_cached(&d->store,
                                    "UPDATE execs SET state = ?2, exit_code = ?3, signal = ?4, timed_out = ?5, "
                                    "finished = ?6, duration_ms = ?7, cpu_user_us = ?8, cpu_system_us = ?9, "
                                    "memory_peak = ?10, stdout = ?11, stderr = ?12, stdout_truncated = ?13, "
                                    "stderr_truncated = ?14, reason = coalesce(?15, reason) WHERE id = ?1",
                                    &st) < 0)
                return pc_store_errno(&d->store);
        sqlite3_bind_text(st, 1, x->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, lost ? "lost" : "finished", -1, SQLITE_STATIC);
        if (code >= 0)
                sqlite3_bind_int(st, 3, code);
        if (sig)
                sqlite3_bind_int(st, 4, sig);
        sqlite3_bind_int(st, 5, x->timed_out);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)(now_usec(CLOCK_REALTIME) / 1000000));
        sqlite3_bind_int64(st, 7, duration);
        if (!lost) {
                sqlite3_bind_int64(st, 8, (sqlite3_int64)x->cpu_user);
                sqlite3_bind_int64(st, 9, (sqlite3_int64)x->cpu_system);
        }
        if (peak >= 0)
                sqlite3_bind_int64(st, 10, peak);
        sqlite3_bind_blob(st, 11, x->out[0].data ?: "", (int)x->out[0].len, SQLITE_STATIC);
        sqlite3_bind_blob(st, 12, x->out[1].data ?: "", (int)x->out[1].len, SQLITE_STATIC);
        sqlite3_bind_int(st, 13, x->out[0].truncated);
        sqlite3_bind_int(st, 14, x->out[1].truncated);
        if (lost)
                sqlite3_bind_text(st, 15, why_lost, -1, SQLITE_STATIC);
        return pc_change_record(
                d, st, NULL, x->id, "daemon", "exec.end", detail, PC_EVENT_EXEC_FINISHED, x->sandbox,
                json_pack("{s:s, s:s, s:o, s:o, s:I, s:b}", "id", x->id, "state", lost ? "lost" : "finished",
                          "exit_code", code >= 0 ? json_integer(code) : json_null(), "signal",
                          sig ? json_integer(sig) : json_null(), "duration_ms", (json_int_t)duration,
                          "timed_out", x->timed_out));
}

/* X ended: kills what it left running, records it and forgets it (on the loop, engine lock held). */
static void window_job_queue(pc_execs *m, const char *sandbox, const char *id);

static void exec_unlink(pc_execs *m, exec *x)
{
        for (exec **pp = &m->list; *pp; pp = &(*pp)->next)
                if (*pp == x) {
                        *pp = x->next;
                        break;
                }
        exec_free(x);
}

static void exec_finish(pc_daemon *d, pc_execs *m, exec *x, const char *why_lost)
{
        int r;

        if (!x->assigned) { /* a ready window that ended unused (its sandbox stopped, or its shim was killed) */
                log_debug("exec window %.8s: ended unused", x->id);
                exec_kill_tree(x);
                exec_cgroup_remove(d, x);
                exec_unlink(m, x);
                return;
        }
        log_debug("exec %s: ended after %" PRIu64 " us", x->id, now_usec(CLOCK_MONOTONIC) - x->started_mono);
        exec_kill_tree(x); /* whatever it left running in the background */
        r = exec_record_end(d, x, why_lost);
        if (r < 0)
                /* the spool files stay: the next start records it as lost with them */
                log_error_errno(r, "exec %s: cannot record its end: %m", x->id);
        else
                for (int i = 0; i < 2; i++) {
                        _cleanup_free_ char *p = x->out[i].spooled ? spool_path(m, x->id, i) : NULL;
                        if (p)
                                (void)unlink(p);
                }
        exec_cgroup_remove(d, x);
        wake_waiters(x);
        /* a ready window for the next exec, made now that this one is over (not while it ran: on a small
         * machine, starting tmux's pane, perl and bash would take the CPU the command runs on) */
        if (d->config.exec_ready_windows > 0)
                window_job_queue(m, x->sandbox, "");
        exec_unlink(m, x);
}

static void exec_check_done(pc_daemon *d, pc_execs *m, exec *x)
{
        if (!x->ctl_done)
                return;
        if (x->go_sent && !(x->out[0].eof && x->out[1].eof))
                return;
        exec_finish(d, m, x, x->c[CONN_CTL] || x->got_status ? NULL : "the exec's shim never started");
}

/* ---- connections from the shim (on the loop) ---- */

static pc_execs *engine(pc_daemon *d)
{
        return d->execs;
}

static void conn_drop(conn *c, exec *x)
{
        if (x)
                for (size_t i = 0; i < _CONN_MAX; i++)
                        if (x->c[i] == c)
                                x->c[i] = NULL;
        conn_free(c);
}

static void outbuf_append(pc_daemon *d, exec *x, int stream, const char *p, size_t n)
{
        outbuf *o = &x->out[stream];
        size_t max = d->config.exec_output_max, keep = o->len < max ? MIN(n, max - o->len) : 0;

        if (keep < n)
                o->truncated = true;
        if (keep == 0)
                return;
        if (o->len + keep > o->cap) {
                size_t cap = MIN(MAX(o->cap * 2, o->len + keep), max);
                char *b = realloc(o->data, cap);
                if (!b) {
                        o->truncated = true;
                        return;
                }
                o->data = b;
                o->cap = cap;
        }
        memcpy(o->data + o->len, p, keep);
        o->len += keep;
        if (!o->spooled) {
                _cleanup_free_ char *path = spool_path(engine(d), x->id, stream);
                o->spooled = true;
                o->spool = path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600)
                                : -ENOMEM;
                if (o->spool < 0)
                        log_warning("exec %s: no spool file: a daemon crash would lose its output", x->id);
        }
        if (o->spool >= 0 && write_all(o->spool, p, keep) < 0)
                o->spool = safe_close(o->spool); /* the output is still kept; only a crash would lose it */
        wake_waiters(x);
}

/* stdin: writes what is queued; shuts the socket's sending side down at the end. */
static void in_flush(exec *x)
{
        conn *c = x->c[CONN_IN];

        if (!c)
                return;
        while (x->in_len > 0) {
                ssize_t k = send(c->fd, x->in_data, x->in_len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno == EAGAIN) {
                        (void)sd_event_source_set_io_events(c->source, EPOLLOUT);
                        return;
                }
                if (k < 0) { /* the command closed its stdin: nothing more goes there */
                        x->in_len = 0;
                        break;
                }
                memmove(x->in_data, x->in_data + k, x->in_len - (size_t)k);
                x->in_len -= (size_t)k;
        }
        (void)sd_event_source_set_io_events(c->source, 0);
        if (!x->in_open)
                (void)shutdown(c->fd, SHUT_WR);
}

/* The child is in its group (its pid came with its stdout connection): it may run. */
static void maybe_go(exec *x)
{
        if (x->go_sent || !x->c[CONN_CTL] || !x->c[CONN_OUT] || !x->c[CONN_ERR] || !x->c[CONN_IN] || x->pid <= 0)
                return;
        if (send(x->c[CONN_OUT]->fd, "go\n", 3, MSG_NOSIGNAL | MSG_DONTWAIT) != 3) {
                log_warning_errno(errno, "exec %s: cannot let it run: %m, ignoring", x->id);
                return;
        }
        x->go_sent = true;
        if (x->assigned)
                in_flush(x);
}

static int on_conn_data(sd_event_source *s, int fd, uint32_t revents, void *userdata);

/* `s` in single quotes for bash (a ' becomes '\'': every other byte stands for itself). */
static void squote(FILE *f, const char *s)
{
        fputc('\'', f);
        for (; *s; s++)
                if (*s == '\'')
                        fputs("'\\''", f);
                else
                        fputc(*s, f);
        fputc('\'', f);
}

/* The job for the shim: "DISPLAY_LEN SCRIPT_LEN\n" (24 bytes), what the pane shows ("$ COMMAND", control
 * characters as '?'), and the script the waiting bash sources: the command into __pc_c, the directory, the
 * environment. */
static int send_job(exec *x, int fd)
{
        _cleanup_free_ char *display = NULL, *script = NULL, *job = NULL;
        size_t dn = 0, sn = 0;
        FILE *f;
        const char *k;
        json_t *v;
        int flags, r;

        if (asprintf_safe(&display, "$ %s\n", x->command) < 0)
                return -ENOMEM;
        dn = strlen(display);
        for (size_t i = 2; i + 1 < dn; i++)
                if ((unsigned char)display[i] < 0x20 || display[i] == 0x7f)
                        display[i] = '?';
        f = open_memstream(&script, &sn);
        if (!f)
                return -ENOMEM;
        fputs("__pc_c=", f);
        squote(f, x->command);
        fputs("\ncd -P -- ", f);
        squote(f, x->cwd);
        fputs(" 2>&- || { printf 'pocketcoder: cd %s: no such directory, or not one it may enter\\n' ", f);
        squote(f, x->cwd);
        fputs(" >&2; exit 126; }\n", f);
        json_object_foreach(x->env, k, v) {
                _cleanup_free_ char *kv = strjoin(k, "=", json_string_value(v));
                if (!kv) {
                        fclose(f);
                        return -ENOMEM;
                }
                fputs("export -- ", f);
                squote(f, kv);
                fputs(" 2>&-\n", f);
        }
        if (fclose(f) != 0 || !script)
                return -ENOMEM;
        if (asprintf_safe(&job, "%011zu %011zu\n%s%s", dn, sn, display, script) < 0)
                return -ENOMEM;
        /* at most ~260 KiB, which the shim reads at once: write it blocking */
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
                return -errno;
        r = write_all(fd, job, 24 + dn + sn);
        if (fcntl(fd, F_SETFL, flags) < 0 && r >= 0)
                r = -errno;
        if (r >= 0)
                x->job_sent = true;
        return r;
}

static bool secret_equal(const char *a, const char *b)
{
        unsigned char diff = 0;

        for (size_t i = 0; i < 32; i++)
                diff |= (unsigned char)(a[i] ^ b[i]);
        return diff == 0;
}

/* The header "ID SECRET KIND" names the exec and what this connection is for. */
static int conn_identify(pc_daemon *d, pc_execs *m, conn *c)
{
        char id[33], secret[33], kind[8];
        struct ucred cred;
        socklen_t sl = sizeof(cred);
        exec *x;
        int k = -1;

        if (sscanf(c->buf, "%32s %32s %7s", id, secret, kind) != 3 || !id_is_valid(id) ||
            strlen(secret) != 32)
                return -EINVAL;
        for (int i = 0; i < _CONN_MAX; i++)
                if (streq(kind, conn_kind_table[i]))
                        k = i;
        x = exec_find(m, id);
        /* only from its own sandbox (this listener is that sandbox's), once per kind, with its secret */
        if (k < 0 || !x || !streq(x->sandbox, c->listener->sandbox) ||
            !streq(x->instance, c->listener->instance) || x->c[k] || !secret_equal(secret, x->secret) ||
            (k == CONN_CTL && x->ctl_done) || (k != CONN_CTL && x->go_sent))
                return -EPERM;
        log_debug("exec %s: %s connected after %" PRIu64 " us", x->id, kind,
                  now_usec(CLOCK_MONOTONIC) - x->started_mono);
        c->kind = k;
        c->x = x;
        c->len = 0;
        x->c[k] = c;
        switch (k) {
        case CONN_CTL:
                if (x->assigned) {
                        int r = send_job(x, c->fd);
                        if (r < 0)
                                return r;
                }
                break;
        case CONN_OUT:
                if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &sl) < 0 || cred.pid <= 0)
                        return -EPERM;
                if (x->cgroup) {
                        char pid[32];
                        snprintf(pid, sizeof(pid), "%d", (int)cred.pid);
                        int r = cg_write(x->cgroup, "cgroup.procs", pid);
                        if (r < 0)
                                return log_error_errno(r, "exec %s: cannot move it into %s: %m", x->id,
                                                       x->cgroup);
                }
                x->pid = cred.pid;
                x->pidfd = (int)syscall(SYS_pidfd_open, cred.pid, 0);
                break;
        case CONN_IN:
                (void)sd_event_source_set_io_events(c->source, 0);
                break;
        }
        maybe_go(x);
        return 0;
}

/* ctl's end: "status W USER_US SYSTEM_US\n" (the raw wait status) then EOF. */
static void ctl_parse(exec *x, conn *c)
{
        unsigned long long u, s;
        int w;

        c->buf[MIN(c->len, sizeof(c->buf) - 1)] = 0;
        if (sscanf(c->buf, "status %d %llu %llu", &w, &u, &s) == 3 && (WIFEXITED(w) || WIFSIGNALED(w))) {
                x->got_status = true;
                x->status = w;
                x->cpu_user = u;
                x->cpu_system = s;
        }
}

/* A ready window's shim or bash ended (or hung up) before an exec took it: it is not taken, and goes. */
static int window_lost(pc_daemon *d, pc_execs *m, exec *x)
{
        x->ctl_done = true;
        exec_finish(d, m, x, NULL);
        return 0;
}

static int on_conn_data(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        conn *c = userdata;
        pc_daemon *d = c->daemon;
        pc_execs *m = engine(d);
        LOCK_GUARD(&m->lock);
        exec *x = c->x;
        char buf[READ_CHUNK];
        ssize_t k;

        if (c->kind == CONN_NEW) {
                k = read(fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
                if (k < 0 && (errno == EAGAIN || errno == EINTR))
                        return 0;
                if (k > 0) {
                        c->len += (size_t)k;
                        c->buf[c->len] = 0;
                        if (!memchr(c->buf, '\n', c->len) && c->len < sizeof(c->buf) - 1)
                                return 0;
                }
                for (conn **pp = &m->pending; *pp; pp = &(*pp)->next)
                        if (*pp == c) {
                                *pp = c->next;
                                break;
                        }
                if (k <= 0 || conn_identify(d, m, c) < 0) {
                        conn_drop(c, c->x);
                        return 0;
                }
                return 0;
        }
        if (c->kind == CONN_IN) {
                /* the command closed its stdin (or ended): what is queued for it goes, and so does the socket
                 * (a hang-up is reported whatever events are asked for: kept, it would wake the loop for ever)
                 */
                if (revents & (EPOLLHUP | EPOLLERR)) {
                        if (!x->assigned)
                                return window_lost(d, m, x);
                        x->in_len = 0;
                        x->in_open = false;
                        conn_drop(c, x);
                } else
                        in_flush(x);
                return 0;
        }
        k = read(fd, buf,
                 c->kind == CONN_CTL ? sizeof(c->buf) - 1 - MIN(c->len, sizeof(c->buf) - 1) : sizeof(buf));
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (k > 0 && c->kind != CONN_CTL) {
                outbuf_append(d, x, c->kind == CONN_ERR, buf, (size_t)k);
                return 0;
        }
        if (k > 0 && c->len < sizeof(c->buf) - 1) {
                memcpy(c->buf + c->len, buf, (size_t)k);
                c->len += (size_t)k;
                /* the status line is the end: the shim's own exit is not waited for */
                if (!memchr(c->buf, '\n', c->len))
                        return 0;
        }
        /* the end of this stream (or garbage on ctl) */
        if (!x->assigned)
                return window_lost(d, m, x);
        if (c->kind == CONN_CTL) {
                ctl_parse(x, c);
                x->ctl_done = true;
                /* the command ended: what it left in the background goes too, so stdout and stderr end */
                exec_kill_tree(x);
        } else
                x->out[c->kind == CONN_ERR].eof = true;
        conn_drop(c, x);
        exec_check_done(d, m, x);
        return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        listener *l = userdata;
        pc_daemon *d = l->daemon;
        pc_execs *m = engine(d);
        LOCK_GUARD(&m->lock);

        for (;;) {
                _cleanup_close_ int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                conn *c;

                if (cfd < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_warning_errno(errno, "sandbox %s: accept on %s: %m, ignoring",
                                                  l->sandbox, EXEC_SOCKET);
                        return 0;
                }
                c = calloc(1, sizeof(*c));
                if (!c)
                        return 0;
                *c = (conn){.daemon = d, .listener = l, .kind = CONN_NEW, .fd = TAKE_FD(cfd)};
                if (sd_event_add_io(d->event, &c->source, c->fd, EPOLLIN, on_conn_data, c) < 0) {
                        conn_free(c);
                        continue;
                }
                c->next = m->pending;
                m->pending = c;
        }
}

static listener *listener_free(listener *l)
{
        if (!l)
                return NULL;
        sd_event_source_disable_unref(l->source);
        safe_close(l->fd);
        free(l);
        return NULL;
}

/* On the loop: starts accepting on a listener bound by a request's thread. */
static void listener_attach(pc_daemon *d, void *userdata)
{
        listener *l = userdata;
        pc_execs *m = engine(d);
        LOCK_GUARD(&m->lock);

        if (l->source || l->fd < 0)
                return;
        if (sd_event_add_io(d->event, &l->source, l->fd, EPOLLIN, on_accept, l) < 0)
                log_error("sandbox %s: cannot accept on %s", l->sandbox, EXEC_SOCKET);
}

static void listener_release(pc_daemon *d, void *userdata)
{
        listener_free(userdata);
}

/* Groups of execs and ready windows that an earlier daemon left in the sandbox's group (its ready windows'
 * shims end when their connections go, but their groups stay): what is still in them is killed, and they go.
 * Engine lock held, when this daemon first serves the sandbox instance. */
static void sweep_stale_groups(pc_daemon *d, pc_execs *m, const pc_exec_target *t)
{
        _cleanup_(closedirp) DIR *dir = t->cgroup_path ? opendir(t->cgroup_path) : NULL;
        struct statfs sf;
        struct dirent *de;
        bool v2;

        if (!dir)
                return;
        v2 = statfs(t->cgroup_path, &sf) >= 0 && (uint64_t)sf.f_type == (uint64_t)CGROUP2_SUPER_MAGIC;
        while ((de = readdir(dir))) {
                exec x = {.pidfd = -EBADF, .cgroup_v2 = v2};

                if (!startswith(de->d_name, "exec-") || !id_is_valid(de->d_name + 5) ||
                    exec_find(m, de->d_name + 5))
                        continue;
                snprintf(x.id, sizeof(x.id), "%s", de->d_name + 5);
                x.cgroup = strjoin(t->cgroup_path, "/", de->d_name);
                if (!x.cgroup)
                        return;
                log_debug("exec %s: removing its group, left by an earlier daemon", x.id);
                exec_kill_tree(&x);
                exec_cgroup_remove(d, &x);
                free(x.cgroup);
        }
}

/* The sandbox's exec socket (engine lock held): bound once per sandbox instance, in the directory the
 * sandbox sees at /run/pocketcoder (a socket left there by an earlier daemon or instance is replaced). */
static int listener_get(pc_daemon *d, pc_execs *m, const char *sandbox, const pc_exec_target *t,
                        pc_error **reterr)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -EBADF;
        listener *l;
        int r;

        for (listener **pp = &m->listeners; (l = *pp); pp = &l->next) {
                if (!streq(l->sandbox, sandbox))
                        continue;
                if (streq(l->instance, t->instance))
                        return 0;
                *pp = l->next; /* a stopped sandbox's: its loop source goes on the loop */
                if (pc_daemon_post(d, listener_release, l) < 0)
                        log_warning("sandbox %s: leaking the old exec socket", sandbox);
                break;
        }
        if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", t->agent_dir, EXEC_SOCKET) >=
            sizeof(sa.sun_path))
                return pc_error_setf(reterr, ENAMETOOLONG, "exec_socket", "%s/%s: path too long",
                                     t->agent_dir, EXEC_SOCKET);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (unlink(sa.sun_path) < 0 && errno != ENOENT)
                return pc_error_setf(reterr, errno, "exec_socket", "cannot replace %s: %m", sa.sun_path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(sa.sun_path, 0666) < 0 ||
            listen(fd, 256) < 0)
                return pc_error_setf(reterr, errno, "exec_socket", "cannot listen on %s: %m", sa.sun_path);
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        *l = (listener){.daemon = d, .fd = TAKE_FD(fd)};
        snprintf(l->sandbox, sizeof(l->sandbox), "%s", sandbox);
        strcpy(l->instance, t->instance);
        r = pc_daemon_post(d, listener_attach, l);
        if (r < 0) {
                listener_free(l);
                return r;
        }
        l->next = m->listeners;
        m->listeners = l;
        sweep_stale_groups(d, m, t);
        return 0;
}

/* ---- tmux control mode ---- */

#define TMUX_ANSWER_USEC (10 * 1000000ULL)

static void tmux_client_close(tmux_client *c)
{
        siginfo_t si;

        c->watch = pc_watch_free(c->watch);
        if (c->pidfd >= 0) {
                (void)syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
                (void)waitid(P_PIDFD, c->pidfd, &si, WEXITED);
        }
        c->pidfd = safe_close(c->pidfd);
        c->fd = safe_close(c->fd);
        c->len = 0;
}

/* The next line from the client (without '\n', NUL-terminated in c->buf's copy *ret), waiting at most until
 * `deadline`. */
static int tmux_read_line(tmux_client *c, uint64_t deadline, char *ret, size_t size)
{
        for (;;) {
                char *nl = memchr(c->buf, '\n', c->len);
                if (nl) {
                        size_t n = (size_t)(nl - c->buf);
                        snprintf(ret, size, "%.*s", (int)MIN(n, size - 1), c->buf);
                        memmove(c->buf, nl + 1, c->len - n - 1);
                        c->len -= n + 1;
                        return 0;
                }
                if (c->len == sizeof(c->buf))
                        c->len = 0; /* a line longer than the buffer (pane output is off): dropped */
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                if (now >= deadline)
                        return -ETIMEDOUT;
                struct pollfd pf = {.fd = c->fd, .events = POLLIN};
                int r = poll(&pf, 1, (int)((deadline - now) / 1000) + 1);
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r <= 0)
                        continue;
                ssize_t k = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -ECONNRESET;
                c->len += (size_t)k;
        }
}

/* Reads up to the end of the answer to this client's next command: a block "%begin TIME NUMBER FLAGS" ...
 * "%end ..." or "%error ..." whose FLAGS say it came from this client (bit 1), not one of a command the
 * server ran on its own (a hook such as the sandbox's after-new-window); notifications in between are
 * skipped. 0, or -EIO for %error (its first line in `error`). With `any`, the next block whatever its flags.
 */
static int tmux_read_answer(tmux_client *c, bool any, char *error, size_t size)
{
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + TMUX_ANSWER_USEC;
        bool in_block = false, ours = false;
        char line[1024];
        int r;

        error[0] = 0;
        for (;;) {
                r = tmux_read_line(c, deadline, line, sizeof(line));
                if (r < 0)
                        return r;
                if (!in_block) {
                        unsigned long long when, number;
                        unsigned flags;

                        in_block = sscanf(line, "%%begin %llu %llu %u", &when, &number, &flags) == 3;
                        ours = in_block && (any || (flags & 1));
                        continue;
                }
                if (startswith(line, "%end ") || startswith(line, "%error ")) {
                        if (ours)
                                return startswith(line, "%end ") ? 0 : -EIO;
                        in_block = false;
                        error[0] = 0;
                        continue;
                }
                if (ours && !error[0] && size > 0) {
                        /* tmux's message, cut to fit */
                        size_t n = MIN(strlen(line), size - 1);
                        memcpy(error, line, n);
                        error[n] = 0;
                }
        }
}

/* On the loop: a control client exited (its sandbox stopped): reaped now rather than at its next use, so no
 * zombie of the sandbox's is left (a client busy with a command reaps its own). */
static void tmux_clients_reap(pc_daemon *d, void *userdata)
{
        pc_execs *m = engine(d);
        LOCK_GUARD(&m->lock);

        for (tmux_client *c = m->clients; c; c = c->next) {
                siginfo_t si = {};

                if (pthread_mutex_trylock(&c->lock) != 0)
                        continue;
                if (c->pidfd >= 0 && waitid(P_PIDFD, c->pidfd, &si, WEXITED | WNOHANG) == 0 &&
                    si.si_pid != 0) {
                        c->pidfd = safe_close(c->pidfd);
                        tmux_client_close(c);
                        /* its sandbox stopped: an exec whose shim had not connected yet never will */
                        for (exec *x = m->list, *next; x; x = next) {
                                next = x->next;
                                if (streq(x->sandbox, c->sandbox) && streq(x->instance, c->instance) &&
                                    !x->c[CONN_CTL] && !x->ctl_done) {
                                        x->ctl_done = true;
                                        exec_finish(d, m, x, "its sandbox stopped before it started");
                                }
                        }
                }
                pthread_mutex_unlock(&c->lock);
        }
}

/* Starts the sandbox's control client (c->lock held): it attaches to the session, pane output off. */
static int tmux_client_start(pc_daemon *d, tmux_client *c, pc_error **reterr)
{
        char target[80], error[256];
        const char *argv[] = {"tmux", "-S", ISOLATE_TMUX_SOCKET, "-C", "attach-session", "-t", target, NULL};
        int sv[2], r;
        pid_t pid;

        snprintf(target, sizeof(target), "=%s", c->sandbox);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        isolate_exec_options o = {.argv = argv, .stdin_fd = sv[1], .stdout_fd = sv[1], .stderr_fd = -1};
        r = pc_sandboxes_exec(d, c->sandbox, &o, NULL, &pid, &c->pidfd, reterr);
        safe_close(sv[1]);
        if (r < 0) {
                safe_close(sv[0]);
                c->pidfd = -EBADF;
                return r;
        }
        c->fd = sv[0];
        c->len = 0;
        r = pc_watch_new(d, c->pidfd, tmux_clients_reap, &c->watch);
        if (r < 0) {
                tmux_client_close(c);
                return r;
        }
        /* the attach's own block (flags 0) first: commands before it find no client; then no %output lines:
         * nobody reads the panes through this client */
        r = tmux_read_answer(c, true, error, sizeof(error));
        if (r >= 0)
                r = write_all(c->fd, "refresh-client -f no-output\n",
                              STRLEN("refresh-client -f no-output\n"));
        if (r >= 0)
                r = tmux_read_answer(c, false, error, sizeof(error));
        if (r < 0) {
                tmux_client_close(c);
                return pc_error_setf(reterr, -r, "tmux", "sandbox %s: tmux control mode: %s", c->sandbox,
                                     error[0] ? error : strerror(-r));
        }
        return 0;
}

static tmux_client *tmux_client_get(pc_execs *m, const char *sandbox)
{
        LOCK_GUARD(&m->lock);
        tmux_client *c;

        for (c = m->clients; c; c = c->next)
                if (streq(c->sandbox, sandbox))
                        return c;
        c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        *c = (tmux_client){.fd = -EBADF, .pidfd = -EBADF};
        snprintf(c->sandbox, sizeof(c->sandbox), "%s", sandbox);
        pthread_mutex_init(&c->lock, NULL);
        c->next = m->clients;
        m->clients = c;
        return c;
}

/* Runs one tmux command line in running sandbox instance `t` through its control client (started or, for a
 * new instance of the sandbox, restarted as needed). */
static int tmux_command(pc_daemon *d, const char *sandbox, const pc_exec_target *t, const char *line,
                        pc_error **reterr)
{
        tmux_client *c = tmux_client_get(engine(d), sandbox);
        char error[256];
        int r;

        if (!c)
                return -ENOMEM;
        LOCK_GUARD(&c->lock);
        if (c->fd >= 0 && !streq(c->instance, t->instance))
                tmux_client_close(c);
        for (int attempt = 0; attempt < 2; attempt++) {
                if (c->fd < 0) {
                        r = tmux_client_start(d, c, reterr);
                        if (r < 0)
                                return r;
                        strcpy(c->instance, t->instance);
                }
                /* a client that died (its sandbox was restarted) fails the write: a new one gets the command
                 */
                r = write_all(c->fd, line, strlen(line));
                if (r >= 0)
                        break;
                tmux_client_close(c);
        }
        if (r < 0)
                return pc_error_setf(reterr, -r, "tmux", "sandbox %s: cannot talk to tmux: %s", sandbox,
                                     strerror(-r));
        r = tmux_read_answer(c, false, error, sizeof(error));
        if (r == -EIO)
                return pc_error_setf(reterr, EIO, "tmux", "sandbox %s: tmux: %s", sandbox, error);
        if (r < 0) {
                tmux_client_close(c);
                return pc_error_setf(reterr, -r, "tmux", "sandbox %s: tmux control mode: %s", sandbox,
                                     strerror(-r));
        }
        return 0;
}

/* ---- starting (a request's thread, or the loop for an approved exec) ---- */

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
        pc_daemon *d = userdata;
        pc_execs *m = engine(d);
        LOCK_GUARD(&m->lock);

        for (exec *x = m->list; x; x = x->next)
                if (x->timer == s) {
                        x->timed_out = true;
                        exec_kill_tree(x);
                        /* its shim reports the kill; one that never connected is finished here */
                        if (!x->c[CONN_CTL] && !x->ctl_done) {
                                x->ctl_done = true;
                                exec_check_done(d, m, x);
                        }
                        break;
                }
        return 0;
}

/* On the loop: the exec's timeout starts. */
static void exec_arm(pc_daemon *d, void *userdata)
{
        _cleanup_free_ char *id = userdata;
        pc_execs *m = engine(d);
        LOCK_GUARD(&m->lock);
        exec *x = exec_find(m, id);

        if (x && !x->timer &&
            sd_event_add_time_relative(d->event, &x->timer, CLOCK_MONOTONIC, x->timeout_usec, 1000,
                                       on_timeout, d) < 0)
                log_error("exec %s: cannot arm its timeout", x->id);
}

/* On the loop: stdin that a request queued. */
static void exec_stdin_flush(pc_daemon *d, void *userdata)
{
        _cleanup_free_ char *id = userdata;
        pc_execs *m = engine(d);
        LOCK_GUARD(&m->lock);
        exec *x = exec_find(m, id);

        if (x && x->go_sent)
                in_flush(x);
}

/* On the loop: an exec whose window could not be made. */
static void exec_abandon(pc_daemon *d, void *userdata)
{
        _cleanup_free_ char *id = userdata;
        pc_execs *m = engine(d);
        LOCK_GUARD(&m->lock);
        exec *x = exec_find(m, id);

        if (x) {
                x->ctl_done = true;
                x->go_sent = false;
                exec_finish(d, m, x, "its tmux window could not be made");
        }
}

static int post_id(pc_daemon *d, pc_daemon_post_fn fn, const char *id)
{
        char *p = strdup(id);
        int r;

        if (!p)
                return -ENOMEM;
        r = pc_daemon_post(d, fn, p);
        if (r < 0)
                free(p);
        return r;
}

typedef struct exec_spec {
        const char *id, *sandbox, *command, *cwd;
        json_t *env;
        const char *stdin_data;
        size_t stdin_len;
        bool stdin_open;
        unsigned timeout;
} exec_spec;

/* A new exec (or ready window) ID of sandbox instance `t` in the list, with its group (engine lock held). */
static int exec_new(pc_daemon *d, pc_execs *m, const char *id, const char *sandbox, const pc_exec_target *t,
                    exec **ret, pc_error **reterr)
{
        exec *x;
        int r;

        r = listener_get(d, m, sandbox, t, reterr);
        if (r < 0)
                return r;
        x = calloc(1, sizeof(*x));
        if (!x)
                return -ENOMEM;
        *x = (exec){.pidfd = -EBADF, .out = {{.spool = -EBADF}, {.spool = -EBADF}}};
        snprintf(x->id, sizeof(x->id), "%s", id);
        random_hex(x->secret);
        snprintf(x->sandbox, sizeof(x->sandbox), "%s", sandbox);
        strcpy(x->instance, t->instance);
        x->started_mono = now_usec(CLOCK_MONOTONIC);
        r = exec_cgroup_make(x, t->cgroup_path);
        if (r < 0)
                log_warning_errno(r, "exec %s: no cgroup of its own (a timeout kills its process group): %m",
                                  x->id);
        x->next = m->list;
        m->list = x;
        *ret = x;
        return 0;
}

/* Gives exec X its job (engine lock held). */
static int exec_assign(exec *x, const exec_spec *q)
{
        x->command = strdup(q->command);
        x->cwd = strdup(q->cwd);
        x->env = q->env ? json_deep_copy(q->env) : json_object();
        x->in_open = q->stdin_open;
        x->timeout_usec = q->timeout * 1000000ULL;
        x->started_mono = now_usec(CLOCK_MONOTONIC);
        if (q->stdin_len > 0 && (x->in_data = malloc(q->stdin_len)))
                memcpy(x->in_data, q->stdin_data, q->stdin_len);
        x->in_len = x->in_data ? q->stdin_len : 0;
        if (!x->command || !x->cwd || !x->env || (q->stdin_len > 0 && !x->in_data))
                return -ENOMEM;
        x->assigned = true;
        x->reserved = false;
        return 0;
}

/* Makes the tmux window of X (ID, SECRET): "pc-" + the id's start, in the session's directory; tmux runs the
 * shim itself (no shell). The script has no single quote (pc_execs_new() checks), so tmux's quotes hold it as
 * it is. The window maker's thread: this waits for tmux. */
static int window_make(pc_daemon *d, const char *sandbox, const pc_exec_target *t, const char *id,
                       const char *secret, pc_error **reterr)
{
        _cleanup_free_ char *line = NULL;
        _cleanup_pc_error_ pc_error *e = NULL;
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);
        int r;

        if (asprintf_safe(&line, "new-window -d -t '=%s:' -n pc-%.8s -c %s perl -e '%s' %s %s\n", sandbox, id,
                          ISOLATE_WORKSPACE, shim_script, id, secret) < 0)
                return -ENOMEM;
        r = tmux_command(d, sandbox, t, line, &e);
        if (r < 0 && r != -EIO) {
                /* No answer from the control client (it is restarted at the next exec): a tmux process of its
                 * own makes the window. Should the first window appear after all, its shim finds its
                 * connections taken and ends. */
                char window[16], target[80];
                const char *args[] = {"new-window", "-d",   "-t", target, "-n", window, "-c", ISOLATE_WORKSPACE,
                                      "--",         "perl", "-e", shim_script, id, secret, NULL};
                log_warning("exec %s: %s; making its window with a tmux process", id, e ? e->message : "");
                snprintf(window, sizeof(window), "pc-%.8s", id);
                snprintf(target, sizeof(target), "=%s:", sandbox);
                r = pc_sandboxes_tmux(d, sandbox, t->instance, args, reterr);
        } else if (r < 0 && reterr)
                *reterr = TAKE_PTR(e);
        log_debug("exec %s: tmux new-window took %" PRIu64 " us", id, now_usec(CLOCK_MONOTONIC) - t0);
        return r;
}

/* X is a ready window of sandbox instance SANDBOX/INSTANCE that no exec took (engine lock held). */
static bool window_is_free(const exec *x, const char *sandbox, const char *instance)
{
        return !x->assigned && !x->reserved && !x->ctl_done && streq(x->sandbox, sandbox) &&
               streq(x->instance, instance);
}

/* Its waiting bash ended, and the loop has not seen it yet (it drops the window when it does): an exec that
 * took it would be reported killed without having run. */
static bool window_is_dead(const exec *x)
{
        struct pollfd p = {.fd = x->pidfd, .events = POLLIN};

        return x->pidfd >= 0 && poll(&p, 1, 0) > 0;
}

static unsigned ready_windows(pc_execs *m, const char *sandbox, const char *instance)
{
        unsigned n = 0;

        for (exec *x = m->list; x; x = x->next)
                n += window_is_free(x, sandbox, instance);
        return n;
}

/* One job of the window maker: a new ready window when the sandbox has fewer than it keeps, or the window of
 * an exec that found none. */
static void window_job_run(pc_daemon *d, pc_execs *m, const window_job *j)
{
        _cleanup_(pc_exec_target_done) pc_exec_target t = {};
        _cleanup_pc_error_ pc_error *e = NULL;
        pc_principal admin = {.role = PC_ROLE_ADMIN};
        char id[33], secret[33];
        int r;

        r = pc_sandboxes_exec_target(d, &admin, j->sandbox, &t, NULL);
        if (r < 0)
                return; /* gone or stopped: an exec waiting for its window ends with the control client */
        {
                LOCK_GUARD(&m->lock);
                exec *x;

                if (j->id[0]) {
                        x = exec_find(m, j->id);
                        if (!x || x->c[CONN_CTL] || x->ctl_done)
                                return;
                } else {
                        if (ready_windows(m, j->sandbox, t.instance) >= d->config.exec_ready_windows)
                                return;
                        random_hex(id);
                        if (exec_new(d, m, id, j->sandbox, &t, &x, &e) < 0) {
                                log_warning("sandbox %s: cannot make a ready exec window: %s", j->sandbox,
                                            e ? e->message : "out of memory");
                                return;
                        }
                }
                strcpy(id, x->id);
                strcpy(secret, x->secret);
        }
        r = window_make(d, j->sandbox, &t, id, secret, &e);
        if (r < 0) {
                log_warning("exec %s: cannot make its tmux window: %s", id, e ? e->message : strerror(-r));
                (void)post_id(d, exec_abandon, id);
        }
}

static void *window_maker(void *userdata)
{
        pc_daemon *d = userdata;
        pc_execs *m = engine(d);

        for (;;) {
                window_job *j;
                {
                        LOCK_GUARD(&m->lock);
                        while (!m->jobs && !m->stopping)
                                pthread_cond_wait(&m->jobs_cond, &m->lock);
                        if (m->stopping)
                                return NULL;
                        j = m->jobs;
                        m->jobs = j->next;
                }
                window_job_run(d, m, j);
                free(j);
        }
}

/* Queues a window job (engine lock held); a sandbox's "ready window" job once. */
static void window_job_queue(pc_execs *m, const char *sandbox, const char *id)
{
        window_job **pp = &m->jobs, *j;

        for (; *pp; pp = &(*pp)->next)
                if (!id[0] && !(*pp)->id[0] && streq((*pp)->sandbox, sandbox))
                        return;
        j = calloc(1, sizeof(*j));
        if (!j) {
                log_warning("sandbox %s: no memory to queue an exec window", sandbox);
                return;
        }
        snprintf(j->sandbox, sizeof(j->sandbox), "%s", sandbox);
        snprintf(j->id, sizeof(j->id), "%s", id);
        *pp = j;
        pthread_cond_signal(&m->jobs_cond);
}

/* A ready window of sandbox instance `t` for a new exec, whose id becomes the exec's (*ret_id); false when
 * there is none (the exec gets a random id and a window of its own). */
static bool window_take(pc_daemon *d, const char *sandbox, const pc_exec_target *t, char ret_id[static 33])
{
        pc_execs *m = engine(d);
        LOCK_GUARD(&m->lock);
        exec *best = NULL;

        for (exec *x = m->list; x; x = x->next)
                if (window_is_free(x, sandbox, t->instance) && !window_is_dead(x) &&
                    (!best || (x->go_sent && !best->go_sent)))
                        best = x;
        if (!best) {
                random_hex(ret_id);
                return false;
        }
        best->reserved = true;
        strcpy(ret_id, best->id);
        return true;
}

static void window_give_back(pc_daemon *d, const char *id)
{
        pc_execs *m = engine(d);
        LOCK_GUARD(&m->lock);
        exec *x = exec_find(m, id);

        if (x && !x->assigned)
                x->reserved = false;
}

/* Starts a recorded exec: in the ready window it took (`taken`), else in a window the window maker makes for
 * it (the next ready window is queued when an exec ends). */
static int exec_start(pc_daemon *d, const exec_spec *q, const pc_exec_target *t, bool taken,
                      pc_error **reterr)
{
        pc_execs *m = engine(d);
        bool flush = false;
        int r;

        {
                LOCK_GUARD(&m->lock);
                exec *x = taken ? exec_find(m, q->id) : NULL;

                if (!x || x->ctl_done) { /* none, or it ended meanwhile: a window of its own */
                        taken = false;
                        r = exec_new(d, m, q->id, q->sandbox, t, &x, reterr);
                        if (r < 0)
                                return r;
                }
                r = exec_assign(x, q);
                if (r < 0) {
                        x->ctl_done = true;
                        exec_finish(d, m, x, "out of memory");
                        return r;
                }
                if (!taken)
                        window_job_queue(m, q->sandbox, q->id);
                /* A ready window's shim is connected: the job goes to it from here (a socket write; the loop
                 * only reads that socket); its stdin (data, or its end) through the loop, as the command runs.
                 * Else the shim gets the job when it connects. */
                if (x->c[CONN_CTL] && !x->job_sent) {
                        if (send_job(x, x->c[CONN_CTL]->fd) < 0) {
                                log_warning("exec %s: cannot hand its shim the job", x->id);
                                exec_kill_tree(x); /* the shim reports the kill, and it is over */
                        }
                        flush = x->go_sent;
                }
        }
        if (flush && post_id(d, exec_stdin_flush, q->id) < 0)
                log_error("exec %s: cannot hand it its stdin", q->id);
        r = post_id(d, exec_arm, q->id);
        if (r < 0)
                log_error_errno(r, "exec %s: cannot arm its timeout: %m", q->id);
        return 0;
}

/* ---- the interface ---- */

/* The first command or redirection the policy denied: its rule and reason, for the engine. */
static void deny_reason(json_t *decision, const char **ret_rule, const char **ret_reason)
{
        const char *lists[] = {"commands", "redirects"};
        json_t *e;
        size_t i;

        *ret_rule = *ret_reason = NULL;
        for (size_t k = 0; k < ELEMENTSOF(lists); k++)
                json_array_foreach(
                        json_object_get(decision, lists[k]), i,
                        e) if (streq_ptr(json_string_value(json_object_get(e, "decision")), "deny"))
                {
                        *ret_rule = json_string_value(json_object_get(e, "rule_text"))
                                            ?: json_string_value(json_object_get(e, "rule"));
                        *ret_reason = json_string_value(json_object_get(e, "reason"));
                        return;
                }
}

static int exec_insert(pc_daemon *d, const char *id, const char *sandbox, const char *instance,
                       const char *actor, const pc_exec_request *q, const char *state, json_t *decision,
                       bool remembered, const char *reason)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *env = NULL, *dec = NULL, *detail = NULL;
        int64_t now = (int64_t)(now_usec(CLOCK_REALTIME) / 1000000);
        bool running = streq(state, "running");
        int r;

        env = json_dumps(q->env ?: json_object(), JSON_COMPACT);
        dec = json_dumps(decision, JSON_COMPACT);
        detail = json_dumps(json_pack("{s:s, s:s, s:s, s:s, s:b}", "sandbox", sandbox, "command", q->cmd,
                                      "cwd", q->cwd, "decision",
                                      json_string_value(json_object_get(decision, "decision")), "remembered",
                                      remembered),
                            JSON_COMPACT | JSON_ENCODE_ANY);
        if (!env || !dec || !detail)
                return -ENOMEM;
        if (pc_store_prepare_cached(
                    &d->store,
                    "INSERT INTO execs (id, sandbox, instance, actor, command, cwd, env, stdin, stdin_open, "
                    "timeout, state, decision, remembered, reason, created, started) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    &st) < 0)
                return pc_store_errno(&d->store);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, sandbox, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, instance, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, actor, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, q->cmd, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, q->cwd, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, env, -1, SQLITE_STATIC);
        if (q->stdin_data)
                sqlite3_bind_blob(st, 8, q->stdin_data, (int)q->stdin_len, SQLITE_STATIC);
        sqlite3_bind_int(st, 9, q->stdin_open);
        sqlite3_bind_int(st, 10, (int)q->timeout);
        sqlite3_bind_text(st, 11, state, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 12, dec, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 13, remembered);
        if (reason)
                sqlite3_bind_text(st, 14, reason, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 15, now);
        if (running)
                sqlite3_bind_int64(st, 16, now);
        /* the decision, and for a running exec also its start, with exec.started: all or nothing */
        _cleanup_event_pending_ pc_event_pending ev = {};
        _cleanup_txn_ pc_txn txn = {};
        r = pc_txn_begin(&d->store, &txn);
        if (r < 0)
                return r;
        if (sqlite3_step(st) != SQLITE_DONE)
                return pc_store_errno(&d->store);
        r = pc_store_audit(&d->store, actor, "exec.decision", id, detail);
        if (r >= 0 && running)
                r = pc_store_audit(&d->store, actor, "exec.start", id, detail);
        if (r >= 0 && running)
                r = pc_event_record(d, PC_EVENT_EXEC_STARTED, sandbox,
                                    json_pack("{s:s, s:s, s:s, s:s}", "id", id, "command", q->cmd, "cwd",
                                              q->cwd, "actor", actor),
                                    &ev);
        if (r < 0)
                return r;
        r = pc_txn_commit(&txn);
        if (r < 0)
                return r;
        pc_event_deliver(d, &ev);
        return 0;
}

int pc_execs_create(pc_daemon *d, const pc_principal *who, const char *sandbox, json_t *req, json_t **ret,
                    unsigned *ret_wait, pc_error **reterr)
{
        _cleanup_(pc_exec_request_done) pc_exec_request q = {};
        _cleanup_(pc_exec_target_done) pc_exec_target t = {};
        _cleanup_(pc_verdict_freep) struct pc_verdict *v = NULL;
        _cleanup_json_ json_t *decision = NULL;
        const char *state = "running", *rule = NULL, *reason = NULL;
        char id[33], actor[128], permission[33] = "";
        bool remembered = false, taken = false;
        int r;

        r = pc_exec_request_parse(req, &q, reterr);
        if (r < 0)
                return r;
        r = pc_sandboxes_exec_target(d, who, sandbox, &t, reterr);
        if (r < 0)
                return r;
        r = pc_state_space_check(d, reterr);
        if (r < 0)
                return r;
        r = pc_policies_decide_command(d, t.policy, q.cmd, strlen(q.cmd), &v, reterr);
        if (r < 0)
                return r;
        decision = pc_verdict_to_json(v);
        if (!decision)
                return -ENOMEM;
        pc_principal_describe(who, actor, sizeof(actor));
        if (v->decision == PC_DECISION_DENY) {
                state = "denied";
                deny_reason(decision, &rule, &reason);
        } else if (v->decision == PC_DECISION_ASK) {
                remembered = pc_permissions_remembered(d, sandbox, q.cmd, q.cwd, decision);
                if (!remembered)
                        state = "pending";
        }
        /* an exec that runs now takes a ready window (and its id) when the sandbox has one */
        if (streq(state, "running"))
                taken = window_take(d, sandbox, &t, id);
        else
                random_hex(id);
        r = exec_insert(d, id, sandbox, t.instance, actor, &q, state, decision, remembered,
                        reason
                                ?: streq(state, "denied") ? "denied by the policy"
                                                          : NULL);
        if (r < 0) {
                if (taken)
                        window_give_back(d, id);
                return pc_store_errorf(r, reterr, "cannot record the exec");
        }
        if (streq(state, "pending")) {
                r = pc_permissions_ask(d, sandbox, id, q.cmd, q.cwd, decision, permission, reterr);
                if (r < 0) {
                        /* no request was made: the exec never was */
                        LOCK_GUARD(&d->store.lock);
                        _cleanup_stmt_ sqlite3_stmt *st = NULL;
                        if (sqlite3_prepare_v2(d->store.db, "DELETE FROM execs WHERE id = ?", -1, &st,
                                               NULL) == SQLITE_OK) {
                                sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
                                (void)sqlite3_step(st);
                        }
                        return r;
                }
                LOCK_GUARD(&d->store.lock);
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                if (sqlite3_prepare_v2(d->store.db, "UPDATE execs SET permission = ?2 WHERE id = ?1", -1,
                                       &st, NULL) != SQLITE_OK)
                        return pc_store_error(&d->store, reterr);
                sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, permission, -1, SQLITE_STATIC);
                if (sqlite3_step(st) != SQLITE_DONE)
                        return pc_store_error(&d->store, reterr);
        } else if (streq(state, "running")) {
                exec_spec s = {.id = id,
                               .sandbox = sandbox,
                               .command = q.cmd,
                               .cwd = q.cwd,
                               .env = q.env,
                               .stdin_data = q.stdin_data,
                               .stdin_len = q.stdin_len,
                               .stdin_open = q.stdin_open,
                               .timeout = q.timeout};
                r = exec_start(d, &s, &t, taken, reterr);
                if (r < 0)
                        return r;
        }
        *ret_wait = q.wait;
        r = exec_load_json(d, id, ret, NULL, reterr);
        if (r >= 0 && rule)
                json_object_set_new(*ret, "rule", json_string(rule));
        return r;
}

/* ID's row when `who` may see it: agents see their own sandbox's execs only. */
static int exec_visible(pc_daemon *d, const pc_principal *who, const char *id, json_t **ret,
                        char *ret_sandbox, pc_error **reterr)
{
        char sandbox[64];
        json_t *j = NULL;
        int r;

        if (!id_is_valid(id))
                return pc_error_setf(reterr, ENOENT, "not_found", "exec \"%s\" does not exist", id);
        r = exec_load_json(d, id, &j, sandbox, reterr);
        if (r == -ENOENT || (r >= 0 && who->role == PC_ROLE_AGENT && !streq(sandbox, who->sandbox))) {
                json_decref(j);
                return pc_error_setf(reterr, ENOENT, "not_found", "exec \"%s\" does not exist", id);
        }
        if (r < 0)
                return r;
        if (ret_sandbox)
                strcpy(ret_sandbox, sandbox);
        if (ret)
                *ret = j;
        else
                json_decref(j);
        return 0;
}

int pc_execs_show(pc_daemon *d, const pc_principal *who, const char *id, json_t **ret, char *ret_sandbox,
                  pc_error **reterr)
{
        return exec_visible(d, who, id, ret, ret_sandbox, reterr);
}

int pc_execs_list(pc_daemon *d, const pc_principal *who, const char *sandbox, const char *state,
                  json_t **ret, pc_error **reterr)
{
        static const char *const states[] = {"pending", "running", "finished", "denied", "lost"};
        _cleanup_json_ json_t *arr = json_array();
        bool known = !state;
        int k;

        for (size_t i = 0; state && i < ELEMENTSOF(states); i++)
                known = known || streq(state, states[i]);
        if (!known)
                return pc_error_setf(reterr, EINVAL, "invalid_query",
                                     "state must be pending, running, finished, denied or lost");
        if (sandbox && !name_is_valid(sandbox))
                return pc_error_setf(reterr, EINVAL, "invalid_query", "sandbox must be a sandbox name");
        if (who->role == PC_ROLE_AGENT) {
                if (sandbox && !streq(sandbox, who->sandbox))
                        return pc_error_setf(reterr, EACCES, "forbidden",
                                             "this agent is scoped to sandbox \"%s\", not \"%s\"",
                                             who->sandbox, sandbox);
                sandbox = who->sandbox;
        }
        if (!arr)
                return -ENOMEM;
        {
                LOCK_GUARD(&d->store.lock);
                _cleanup_stmt_ sqlite3_stmt *st = NULL;

                if (sqlite3_prepare_v2(
                            d->store.db,
                            "SELECT " EXEC_COLUMNS " FROM execs WHERE (?1 IS NULL OR sandbox = ?1) AND "
                            "(?2 IS NULL OR state = ?2) ORDER BY created DESC, rowid DESC LIMIT 1000",
                            -1, &st, NULL) != SQLITE_OK)
                        return pc_store_error(&d->store, reterr);
                if (sandbox)
                        sqlite3_bind_text(st, 1, sandbox, -1, SQLITE_STATIC);
                if (state)
                        sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
                while ((k = sqlite3_step(st)) == SQLITE_ROW)
                        if (json_array_append_new(arr, exec_json(st, false)) < 0)
                                return -ENOMEM;
                if (k != SQLITE_DONE)
                        return pc_store_error(&d->store, reterr);
        }
        *ret = json_pack("{s:O}", "execs", arr);
        return *ret ? 0 : -ENOMEM;
}

static const struct {
        const char *name;
        int sig;
} signals[] = {
        {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
        {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"CONT", SIGCONT},
        {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"ALRM", SIGALRM}, {"WINCH", SIGWINCH},
};

int pc_execs_signal(pc_daemon *d, const pc_principal *who, const char *id, json_t *req, json_t **ret,
                    pc_error **reterr)
{
        static const char *const fields[] = {"signal", NULL};
        pc_execs *m = engine(d);
        json_t *v;
        int sig = 0, r;

        if (!json_is_object(req))
                return pc_error_setf(reterr, EINVAL, "invalid_body",
                                     "request body must be a JSON object such as {\"signal\":\"TERM\"}");
        r = pc_json_check_fields(req, fields, reterr);
        if (r < 0)
                return r;
        v = json_object_get(req, "signal");
        if (json_is_string(v)) {
                const char *s = json_string_value(v);
                if (startswith(s, "SIG"))
                        s += 3;
                for (size_t i = 0; i < ELEMENTSOF(signals); i++)
                        if (streq(s, signals[i].name))
                                sig = signals[i].sig;
        } else if (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 64)
                sig = (int)json_integer_value(v);
        if (sig == 0)
                return pc_error_setf(
                        reterr, EINVAL, "invalid_request",
                        "\"signal\" must be a name (HUP, INT, QUIT, KILL, USR1, USR2, TERM, CONT, STOP, "
                        "TSTP, ALRM, WINCH) or a number from 1 to 64");
        r = exec_visible(d, who, id, NULL, NULL, reterr);
        if (r < 0)
                return r;
        {
                LOCK_GUARD(&m->lock);
                exec *x = exec_find(m, id);

                if (!x || x->pidfd < 0)
                        return pc_error_setf(reterr, EBUSY, "not_running",
                                             "exec %s is not running (or its command has not started yet)",
                                             id);
                if (syscall(SYS_pidfd_send_signal, x->pidfd, sig, NULL, 0) < 0 && errno != ESRCH)
                        return pc_error_setf(reterr, errno, "signal", "cannot signal exec %s: %m", id);
        }
        *ret = json_pack("{s:s, s:i}", "id", id, "signal", sig);
        return *ret ? 0 : -ENOMEM;
}

int pc_execs_stdin(pc_daemon *d, const pc_principal *who, const char *id, json_t *req, json_t **ret,
                   pc_error **reterr)
{
        static const char *const fields[] = {"data", "data_base64", "eof", NULL};
        _cleanup_free_ char *data = NULL;
        pc_execs *m = engine(d);
        json_t *v = NULL, *v64 = NULL, *eof;
        size_t n = 0, total;
        int r;

        if (!json_is_object(req))
                return pc_error_setf(
                        reterr, EINVAL, "invalid_body",
                        "request body must be a JSON object such as {\"data\":\"yes\\n\",\"eof\":true}");
        r = pc_json_check_fields(req, fields, reterr);
        if (r < 0)
                return r;
        v = json_object_get(req, "data");
        v64 = json_object_get(req, "data_base64");
        eof = json_object_get(req, "eof");
        if ((v && v64) || (v && !json_is_string(v)) || (eof && !json_is_boolean(eof)))
                return pc_error_setf(
                        reterr, EINVAL, "invalid_request",
                        "give \"data\" (a string) or \"data_base64\", and optionally \"eof\": true|false");
        if (v) {
                n = json_string_length(v);
                data = malloc(n + 1);
                if (!data)
                        return -ENOMEM;
                memcpy(data, json_string_value(v), n);
        } else if (v64 && (!json_is_string(v64) ||
                           pc_base64_decode(json_string_value(v64), json_string_length(v64), &data, &n) < 0))
                return pc_error_setf(reterr, EINVAL, "invalid_request",
                                     "\"data_base64\" must be a base64 string (RFC 4648, padded)");
        r = exec_visible(d, who, id, NULL, NULL, reterr);
        if (r < 0)
                return r;
        {
                LOCK_GUARD(&m->lock);
                exec *x = exec_find(m, id);
                char *p;

                if (!x || !x->in_open)
                        return pc_error_setf(reterr, EBUSY, "stdin_closed",
                                             "exec %s does not take stdin (it ended, or was made without "
                                             "\"stdin_open\": true, or its stdin got \"eof\" already)",
                                             id);
                total = x->in_len + n;
                if (total > 16u << 20)
                        return pc_error_setf(reterr, E2BIG, "too_large",
                                             "exec %s has 16 MiB of stdin not read yet", id);
                p = realloc(x->in_data, total ?: 1);
                if (!p)
                        return -ENOMEM;
                memcpy(p + x->in_len, data ?: "", n);
                x->in_data = p;
                x->in_len = total;
                if (json_is_true(eof))
                        x->in_open = false;
        }
        r = post_id(d, exec_stdin_flush, id);
        if (r < 0)
                return r;
        *ret = json_pack("{s:s, s:I, s:b}", "id", id, "written", (json_int_t)n, "eof", json_is_true(eof));
        return *ret ? 0 : -ENOMEM;
}

/* The next piece of output past off[] out of two streams' bytes, or NULL when there is none. */
static int output_chunk(const char *data[2], const size_t len[2], uint64_t off[2], size_t max, json_t **ret,
                        pc_error **reterr)
{
        _cleanup_json_ json_t *o = NULL;

        for (int i = 0; i < 2; i++)
                if (off[i] > len[i])
                        return pc_error_setf(reterr, EINVAL, "invalid_cursor",
                                             "the cursor is past the %s kept (%zu bytes)",
                                             i ? "stderr" : "stdout", len[i]);
        for (int i = 0; i < 2; i++) {
                size_t n = MIN(len[i] - off[i], max);

                if (n == 0)
                        continue;
                o = json_pack("{s:s}", "stream", i ? "stderr" : "stdout");
                if (!o || set_output(o, "data", data[i] + off[i], n) < 0)
                        return -ENOMEM;
                off[i] += n;
                break;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

int pc_execs_output(pc_daemon *d, const pc_principal *who, const char *id, uint64_t off[2], size_t max,
                    json_t **ret_chunk, json_t **ret_end, pc_error **reterr)
{
        static const char *const end_keys[] = {
                "id",          "state",  "exit_code",        "signal",          "timed_out",
                "duration_ms", "reason", "stdout_truncated", "stderr_truncated"};
        pc_execs *m = engine(d);
        _cleanup_json_ json_t *j = NULL, *end = NULL;
        _cleanup_free_ char *o0 = NULL, *o1 = NULL;
        size_t n0 = 0, n1 = 0;
        const char *state;
        int r;

        *ret_chunk = *ret_end = NULL;
        if (id_is_valid(id)) {
                LOCK_GUARD(&m->lock);
                exec *x = exec_find(m, id);

                if (x && (who->role != PC_ROLE_AGENT || streq(x->sandbox, who->sandbox))) {
                        const char *data[2] = {x->out[0].data, x->out[1].data};
                        size_t len[2] = {x->out[0].len, x->out[1].len};
                        return output_chunk(data, len, off, max, ret_chunk, reterr);
                }
        }
        /* not running (any more): what is stored */
        r = exec_visible(d, who, id, &j, NULL, reterr);
        if (r < 0)
                return r;
        state = json_string_value(json_object_get(j, "state"));
        if (streq_ptr(state, "pending") || streq_ptr(state, "running"))
                return 0; /* pending, or between its start and the engine knowing it: wait */
        for (int i = 0; i < 2; i++) {
                const char *name = i ? "stderr" : "stdout";
                json_t *s = json_object_get(j, name);
                _cleanup_free_ char *key = strjoin(name, "_base64");
                char **p = i ? &o1 : &o0;
                size_t *n = i ? &n1 : &n0;

                if (!key)
                        return -ENOMEM;
                if (s) {
                        *n = json_string_length(s);
                        *p = malloc(*n + 1);
                        if (!*p)
                                return -ENOMEM;
                        memcpy(*p, json_string_value(s), *n);
                } else if ((s = json_object_get(j, key)) &&
                           pc_base64_decode(json_string_value(s), json_string_length(s), p, n) < 0)
                        return -EIO;
        }
        {
                const char *data[2] = {o0, o1};
                size_t len[2] = {n0, n1};
                r = output_chunk(data, len, off, max, ret_chunk, reterr);
                if (r < 0 || *ret_chunk)
                        return r;
        }
        end = json_object();
        if (!end)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(end_keys); i++)
                if (json_object_set(end, end_keys[i], json_object_get(j, end_keys[i]) ?: json_null()) < 0)
                        return -ENOMEM;
        *ret_end = TAKE_PTR(end);
        return 0;
}

void pc_execs_output_wait(pc_daemon *d, const char *id, const uint64_t off[2], pc_exec_output_waiter *w)
{
        pc_execs *m = engine(d);
        LOCK_GUARD(&m->lock);
        exec *x = exec_find(m, id);

        w->next = NULL;
        w->exec = NULL;
        if (!x || x->out[0].len > off[0] || x->out[1].len > off[1]) {
                w->wake(w);
                return;
        }
        w->exec = x;
        w->next = x->waiters;
        x->waiters = w;
}

void pc_execs_output_wait_done(pc_daemon *d, pc_exec_output_waiter *w)
{
        pc_execs *m = engine(d);
        LOCK_GUARD(&m->lock);
        exec *x = w->exec;

        if (!x)
                return;
        for (pc_exec_output_waiter **pp = &x->waiters; *pp; pp = &(*pp)->next)
                if (*pp == w) {
                        *pp = w->next;
                        break;
                }
        w->exec = NULL;
        w->next = NULL;
}

/* A pending exec's row, enough to start it. */
static int pending_load(pc_daemon *d, const char *id, char sandbox[static 64], char instance[static 33],
                        pc_exec_request *q, json_t **ret_env, char **ret_strings)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *strings = NULL;
        const char *cmd, *cwd;
        size_t lc, lw;

        if (sqlite3_prepare_v2(
                    d->store.db,
                    "SELECT sandbox, instance, command, cwd, env, stdin, stdin_open, timeout FROM execs "
                    "WHERE id = ? AND state = 'pending'",
                    -1, &st, NULL) != SQLITE_OK)
                return pc_store_errno(&d->store);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW)
                return -ENOENT;
        snprintf(sandbox, 64, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(instance, 33, "%s", (const char *)sqlite3_column_text(st, 1));
        cmd = (const char *)sqlite3_column_text(st, 2);
        cwd = (const char *)sqlite3_column_text(st, 3);
        if (!cmd || !cwd)
                return -EBADMSG;
        lc = strlen(cmd);
        lw = strlen(cwd);
        strings = malloc(lc + lw + 2);
        if (!strings)
                return -ENOMEM;
        memcpy(strings, cmd, lc + 1);
        memcpy(strings + lc + 1, cwd, lw + 1);
        *ret_env = json_loads((const char *)sqlite3_column_text(st, 4) ?: "{}", 0, NULL);
        if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
                q->stdin_len = (size_t)sqlite3_column_bytes(st, 5);
                q->stdin_data = malloc(q->stdin_len + 1);
                if (!q->stdin_data)
                        return -ENOMEM;
                memcpy(q->stdin_data, sqlite3_column_blob(st, 5) ?: "", q->stdin_len);
        }
        q->stdin_open = sqlite3_column_int(st, 6);
        q->timeout = (unsigned)sqlite3_column_int(st, 7);
        q->cmd = strings;
        q->cwd = strings + lc + 1;
        *ret_strings = TAKE_PTR(strings);
        return 0;
}

/* A pending exec ends without running: denied by a person (or expired). */
static int pending_deny(pc_daemon *d, const char *id, const char *sandbox, const char *reason)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *detail =
                json_dumps(json_pack("{s:s}", "reason", reason), JSON_COMPACT | JSON_ENCODE_ANY);

        if (sqlite3_prepare_v2(
                    d->store.db,
                    "UPDATE execs SET state = 'denied', reason = ?2, finished = ?3 WHERE id = ?1 AND "
                    "state = 'pending'",
                    -1, &st, NULL) != SQLITE_OK)
                return pc_store_errno(&d->store);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)(now_usec(CLOCK_REALTIME) / 1000000));
        return pc_change_record(d, st, NULL, id, "daemon", "exec.end", detail, PC_EVENT_EXEC_FINISHED,
                                sandbox,
                                json_pack("{s:s, s:s, s:s}", "id", id, "state", "denied", "reason", reason));
}

void pc_execs_permission_decided(pc_daemon *d, const char *exec_id, bool approved, const char *reason)
{
        _cleanup_(pc_exec_request_done) pc_exec_request q = {};
        _cleanup_(pc_exec_target_done) pc_exec_target t = {};
        _cleanup_pc_error_ pc_error *e = NULL;
        _cleanup_json_ json_t *env = NULL;
        _cleanup_free_ char *strings = NULL;
        char sandbox[64], instance[33];
        pc_principal daemon = {.role = PC_ROLE_ADMIN};
        int r;

        r = pending_load(d, exec_id, sandbox, instance, &q, &env, &strings);
        if (r < 0) {
                log_warning_errno(r, "exec %s: no pending exec to decide: %m, ignoring", exec_id);
                return;
        }
        if (approved) {
                r = pc_sandboxes_exec_target(d, &daemon, sandbox, &t, &e);
                if (r >= 0 && !streq(t.instance, instance))
                        r = pc_error_setf(&e, EBUSY, "not_running", "sandbox %s was replaced", sandbox);
                if (r < 0) {
                        approved = false;
                        reason = e ? e->message : "its sandbox is not running";
                }
        }
        if (!approved) {
                r = pending_deny(d, exec_id, sandbox, reason ?: "denied");
                if (r < 0)
                        log_error_errno(r, "exec %s: cannot record its denial: %m", exec_id);
                return;
        }
        {
                LOCK_GUARD(&d->store.lock);
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                _cleanup_free_ char *detail = json_dumps(
                        json_pack("{s:s, s:s, s:s}", "sandbox", sandbox, "command", q.cmd, "cwd", q.cwd),
                        JSON_COMPACT | JSON_ENCODE_ANY);

                if (sqlite3_prepare_v2(d->store.db,
                                       "UPDATE execs SET state = 'running', started = ?2 WHERE id = ?1 AND "
                                       "state = 'pending'",
                                       -1, &st, NULL) != SQLITE_OK)
                        return (void)log_error("exec %s: cannot start it: %s", exec_id,
                                               sqlite3_errmsg(d->store.db));
                sqlite3_bind_text(st, 1, exec_id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, (sqlite3_int64)(now_usec(CLOCK_REALTIME) / 1000000));
                r = pc_change_record(d, st, NULL, exec_id, "daemon", "exec.start", detail,
                                     PC_EVENT_EXEC_STARTED, sandbox,
                                     json_pack("{s:s, s:s, s:s, s:s}", "id", exec_id, "command", q.cmd,
                                               "cwd", q.cwd, "actor", "permission"));
                if (r < 0)
                        return (void)log_error_errno(r, "exec %s: cannot start it: %m", exec_id);
        }
        exec_spec s = {.id = exec_id,
                       .sandbox = sandbox,
                       .command = q.cmd,
                       .cwd = q.cwd,
                       .env = env,
                       .stdin_data = q.stdin_data,
                       .stdin_len = q.stdin_len,
                       .stdin_open = q.stdin_open,
                       .timeout = q.timeout};
        r = exec_start(d, &s, &t, false, &e);
        if (r < 0)
                log_error("exec %s: cannot start it: %s", exec_id, e ? e->message : strerror(-r));
}

/* ---- start and stop of the daemon ---- */

/* An exec that ran when the daemon died cannot be re-attached exactly (its sockets went with the daemon), so
 * it is recorded as lost with the output the spool files hold, and what is left of it is killed. */
static int recover_running(pc_daemon *d, pc_execs *m)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char(*ids)[2][64] = NULL;
        size_t n = 0;
        int k;

        {
                LOCK_GUARD(&d->store.lock);
                if (sqlite3_prepare_v2(d->store.db, "SELECT id, sandbox FROM execs WHERE state = 'running'",
                                       -1, &st, NULL) != SQLITE_OK)
                        return pc_store_errno(&d->store);
                while ((k = sqlite3_step(st)) == SQLITE_ROW) {
                        void *p = realloc(ids, (n + 1) * sizeof(*ids));
                        if (!p) {
                                free(ids);
                                return -ENOMEM;
                        }
                        ids = p;
                        snprintf(ids[n][0], 64, "%s", (const char *)sqlite3_column_text(st, 0));
                        snprintf(ids[n][1], 64, "%s", (const char *)sqlite3_column_text(st, 1));
                        n++;
                }
                st = (sqlite3_finalize(st), NULL);
        }
        for (size_t i = 0; i < n; i++) {
                _cleanup_(pc_exec_target_done) pc_exec_target t = {};
                pc_principal admin = {.role = PC_ROLE_ADMIN};
                exec x = {.pidfd = -EBADF,
                          .out = {{.spool = -EBADF}, {.spool = -EBADF}},
                          .started_mono = now_usec(CLOCK_MONOTONIC)};
                int r;

                snprintf(x.id, sizeof(x.id), "%.32s", ids[i][0]);
                snprintf(x.sandbox, sizeof(x.sandbox), "%s", ids[i][1]);
                for (int s = 0; s < 2; s++) {
                        _cleanup_free_ char *p = spool_path(m, x.id, s);
                        if (p &&
                            read_full_file(p, d->config.exec_output_max, &x.out[s].data, &x.out[s].len) < 0)
                                x.out[s].len = 0;
                }
                if (pc_sandboxes_exec_target(d, &admin, x.sandbox, &t, NULL) >= 0 && t.cgroup_path) {
                        struct statfs sf;
                        x.cgroup = strjoin(t.cgroup_path, "/exec-", x.id);
                        x.cgroup_v2 = statfs(t.cgroup_path, &sf) >= 0 &&
                                      (uint64_t)sf.f_type == (uint64_t)CGROUP2_SUPER_MAGIC;
                }
                exec_kill_tree(&x);
                r = exec_record_end(d, &x, "the daemon stopped while it ran; output up to then is kept");
                if (r < 0)
                        log_error_errno(r, "exec %s: cannot record it as lost: %m", x.id);
                else
                        for (int s = 0; s < 2; s++) {
                                _cleanup_free_ char *p = spool_path(m, x.id, s);
                                if (p)
                                        (void)unlink(p);
                        }
                if (x.cgroup && rmdir(x.cgroup) < 0 && errno != ENOENT)
                        log_warning_errno(errno, "exec %s: cannot remove %s: %m, ignoring", x.id, x.cgroup);
                free(x.cgroup);
                free(x.out[0].data);
                free(x.out[1].data);
        }
        free(ids);
        return 0;
}

int pc_execs_new(pc_daemon *d, pc_error **reterr)
{
        pc_execs *m = calloc(1, sizeof(*m));
        int r;

        if (!m)
                return -ENOMEM;
        pthread_mutex_init(&m->lock, NULL);
        pthread_cond_init(&m->jobs_cond, NULL);
        d->execs = m;
        if (strchr(shim_script, '\''))
                return pc_error_setf(reterr, EINVAL, "execs",
                                     "the exec shim must not contain a single quote");
        m->spool_dir = strjoin(d->config.state_dir, "/execs");
        if (!m->spool_dir)
                return -ENOMEM;
        r = mkdir_p(m->spool_dir, 0700);
        if (r < 0)
                return pc_error_setf(reterr, -r, "execs", "cannot create %s: %s", m->spool_dir,
                                     strerror(-r));
        r = recover_running(d, m);
        if (r < 0)
                return pc_error_setf(reterr, -r, "execs", "cannot recover the execs of the last run: %s",
                                     strerror(-r));
        r = -pthread_create(&m->maker, NULL, window_maker, d);
        if (r < 0)
                return pc_error_setf(reterr, -r, "execs", "cannot start the exec window maker: %s",
                                     strerror(-r));
        m->maker_started = true;
        return 0;
}

void pc_execs_free(pc_daemon *d)
{
        pc_execs *m = d->execs;

        if (!m)
                return;
        if (m->maker_started) {
                {
                        LOCK_GUARD(&m->lock);
                        m->stopping = true;
                        pthread_cond_broadcast(&m->jobs_cond);
                }
                (void)pthread_join(m->maker, NULL);
        }
        while (m->jobs) {
                window_job *j = m->jobs;
                m->jobs = j->next;
                free(j);
        }
        /* running execs stay recorded as running: the next start records them as lost with their output */
        while (m->list) {
                exec *x = m->list;
                m->list = x->next;
                wake_waiters(x);
                exec_free(x);
        }
        while (m->pending) {
                conn *c = m->pending;
                m->pending = c->next;
                conn_free(c);
        }
        while (m->listeners) {
                listener *l = m->listeners;
                m->listeners = l->next;
                listener_free(l);
        }
        while (m->clients) {
                tmux_client *c = m->clients;
                m->clients = c->next;
                tmux_client_close(c);
                pthread_mutex_destroy(&c->lock);
                free(c);
        }
        pthread_cond_destroy(&m->jobs_cond);
        pthread_mutex_destroy(&m->lock);
        free(m->spool_dir);
        free(m);
        d->execs = NULL;
}
