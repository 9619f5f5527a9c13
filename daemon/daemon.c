/* SPDX-License-Identifier: MIT */
/* The daemon object and its event loop (sd-event, see docs/architecture.md): signals, the policy
 * directory's inotify, sandbox inits' pidfds, agent sockets and timers all run on the main thread; other
 * threads post work to it through an eventfd. */
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "daemon-internal.h"
#include "policy-manager-internal.h"

struct pc_post {
        pc_daemon_post_fn fn;
        void *userdata;
        pc_post *next;
};

int pc_daemon_post(pc_daemon *d, pc_daemon_post_fn fn, void *userdata)
{
        pc_post *p = malloc(sizeof(*p));

        if (!p)
                return -ENOMEM;
        *p = (pc_post){ .fn = fn, .userdata = userdata };
        {
                LOCK_GUARD(&d->post_lock);
                if (d->posts_tail)
                        d->posts_tail->next = p;
                else
                        d->posts_head = p;
                d->posts_tail = p;
        }
        /* An eventfd counter: concurrent posts coalesce into one wake-up, and a write never blocks. */
        if (eventfd_write(d->post_fd, 1) < 0)
                log_warning_errno(errno, "cannot wake the event loop: %m, ignoring");
        return 0;
}

/* Runs what was posted, in order; posts made meanwhile run in the same pass. */
static void run_posts(pc_daemon *d)
{
        for (;;) {
                pc_post *p;
                {
                        LOCK_GUARD(&d->post_lock);
                        p = d->posts_head;
                        if (!p)
                                return;
                        d->posts_head = p->next;
                        if (!d->posts_head)
                                d->posts_tail = NULL;
                }
                p->fn(d, p->userdata);
                free(p);
        }
}

static int on_post(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        eventfd_t v;

        (void) eventfd_read(fd, &v);
        run_posts(userdata);
        return 0;
}

/* ---- one-shot fd watches ---- */

struct pc_watch {
        pc_daemon *daemon;
        int fd;
        pc_daemon_post_fn fn;
        sd_event_source *source; /* loop thread only */
        atomic_bool cancelled;
};

static int on_watch(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        pc_watch *w = userdata;

        /* One-shot: an init exits once; the source stays (disabled) until pc_watch_free(). */
        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        if (!atomic_load(&w->cancelled))
                w->fn(w->daemon, NULL);
        return 0;
}

static void watch_attach(pc_daemon *d, void *userdata)
{
        pc_watch *w = userdata;
        int r;

        if (atomic_load(&w->cancelled))
                return; /* freed before it was attached: the destroy post follows */
        r = sd_event_add_io(d->event, &w->source, w->fd, EPOLLIN, on_watch, w);
        if (r < 0)
                log_warning_errno(r, "cannot watch fd %d on the event loop: %m; the exit is noticed at the "
                                     "next request, ignoring", w->fd);
}

static void watch_destroy(pc_daemon *d, void *userdata)
{
        pc_watch *w = userdata;

        sd_event_source_disable_unref(w->source);
        safe_close(w->fd);
        free(w);
}

int pc_watch_new(pc_daemon *d, int fd, pc_daemon_post_fn fn, pc_watch **ret)
{
        pc_watch *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        w->daemon = d;
        w->fn = fn;
        w->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (w->fd < 0) {
                r = -errno;
                free(w);
                return r;
        }
        r = pc_daemon_post(d, watch_attach, w);
        if (r < 0) {
                safe_close(w->fd);
                free(w);
                return r;
        }
        *ret = w;
        return 0;
}

pc_watch *pc_watch_free(pc_watch *w)
{
        if (!w)
                return NULL;
        atomic_store(&w->cancelled, true);
        /* The source belongs to the loop: it is removed there, after the attach posted earlier. */
        if (pc_daemon_post(w->daemon, watch_destroy, w) < 0)
                log_error("cannot release an fd watch (out of memory), leaking it");
        return NULL;
}

/* ---- signals and the policy directory ---- */

int pc_daemon_reload_policies(pc_daemon *d, const char *trigger)
{
        int r;

        r = pc_policy_manager_reload(d->policies);
        if (r > 0) {
                char detail[64];

                /* What was in force when is part of the ledger: GET /v1/policies has the new versions. */
                snprintf(detail, sizeof(detail), "{\"changed\":%d,\"trigger\":\"%s\"}", r, trigger);
                if (pc_store_audit(&d->store, "daemon", "policy.reload", NULL, detail) < 0)
                        log_warning("cannot record the policy reload in the audit ledger");
                (void) pc_event_publish(d, PC_EVENT_POLICY_RELOADED, NULL,
                                        json_pack("{s:i, s:s}", "changed", r, "trigger", trigger));
        }
        return r;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        pc_daemon *d = userdata;

        if (si->ssi_signo == SIGHUP) {
                (void) sd_notify(0, "RELOADING=1");
                log_info("SIGHUP: reloading policies");
                (void) pc_daemon_reload_policies(d, "signal");
                (void) sd_notify(0, "READY=1");
                return 0;
        }
        log_info("%s: stopping (sandboxes keep running)", strsignal((int) si->ssi_signo));
        return sd_event_exit(d->event, 0);
}

static int on_policy_dir(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        pc_daemon *d = userdata;

        if (pc_policy_manager_process_inotify(d->policies) > 0)
                (void) pc_daemon_reload_policies(d, "inotify");
        return 0;
}

static int loop_new(pc_daemon *d, pc_error **reterr)
{
        static const int signals[] = { SIGTERM, SIGINT, SIGHUP };
        sigset_t mask;
        int r, ifd;

        /* Blocked before any thread starts, so that threads inherit the mask: signals are read from the
         * loop's signalfd only. SIGPIPE too: a peer that went away is an EPIPE, not the end of us. */
        sigemptyset(&mask);
        for (size_t i = 0; i < ELEMENTSOF(signals); i++)
                sigaddset(&mask, signals[i]);
        sigaddset(&mask, SIGPIPE);
        r = -pthread_sigmask(SIG_BLOCK, &mask, NULL);
        if (r < 0)
                return pc_error_setf(reterr, -r, "event_loop", "cannot block signals: %s", strerror(-r));

        r = sd_event_new(&d->event);
        if (r < 0)
                return pc_error_setf(reterr, -r, "event_loop", "cannot create the event loop: %s", strerror(-r));
        for (size_t i = 0; i < ELEMENTSOF(signals); i++) {
                r = sd_event_add_signal(d->event, NULL, signals[i], on_signal, d);
                if (r < 0)
                        return pc_error_setf(reterr, -r, "event_loop", "cannot watch signal %s: %s",
                                             strsignal(signals[i]), strerror(-r));
        }
        d->post_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (d->post_fd < 0)
                return pc_error_setf(reterr, errno, "event_loop", "eventfd(): %m");
        r = sd_event_add_io(d->event, NULL, d->post_fd, EPOLLIN, on_post, d);
        if (r < 0)
                return pc_error_setf(reterr, -r, "event_loop", "cannot watch the post queue: %s", strerror(-r));
        ifd = pc_policy_manager_inotify_fd(d->policies);
        if (ifd >= 0) {
                r = sd_event_add_io(d->event, NULL, ifd, EPOLLIN, on_policy_dir, d);
                if (r < 0)
                        return pc_error_setf(reterr, -r, "event_loop", "cannot watch the policy directory: %s",
                                             strerror(-r));
        }
        return 0;
}

/* ---- lifecycle ---- */

/* One daemon per state directory: a second one would corrupt nothing (sqlite locks) but would fight over
 * sandboxes and the socket. The lock dies with the process, so kill -9 never leaves it stale. */
static int lock_state_dir(const char *state_dir, pc_error **reterr)
{
        _cleanup_free_ char *path = strjoin(state_dir, "/pocketcoderd.lock");
        _cleanup_close_ int fd = -EBADF;

        if (!path)
                return -ENOMEM;
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return pc_error_setf(reterr, errno, "state_dir", "cannot open %s: %m", path);
        if (flock(fd, LOCK_EX | LOCK_NB) < 0)
                return pc_error_setf(reterr, errno, "state_dir",
                                     "another pocketcoderd is using %s (lock %s held); stop it first or use "
                                     "another --state-dir",
                                     state_dir, path);
        return TAKE_FD(fd);
}

static int daemon_init(pc_daemon *d, pc_error **reterr)
{
        _cleanup_free_ char *db_path = NULL;
        int r;

        r = mkdir_p(d->config.state_dir, 0700);
        if (r < 0)
                return pc_error_setf(reterr, -r, "state_dir", "cannot create state directory %s: %s",
                                     d->config.state_dir, strerror(-r));
        r = mkdir_p(d->config.runtime_dir, 0755);
        if (r < 0)
                return pc_error_setf(reterr, -r, "runtime_dir", "cannot create runtime directory %s: %s",
                                     d->config.runtime_dir, strerror(-r));
        d->lock_fd = lock_state_dir(d->config.state_dir, reterr);
        if (d->lock_fd < 0)
                return d->lock_fd;
        db_path = strjoin(d->config.state_dir, "/state.db");
        if (!db_path)
                return -ENOMEM;
        r = pc_store_open_sync(&d->store, db_path, d->config.state_sync, reterr);
        if (r < 0)
                return r;
        /* What the connection reports, not what was asked for: tests and admins read it here. */
        log_info("state database %s: state_sync = %s (PRAGMA synchronous = %d)%s", db_path,
                 pc_state_sync_to_string(d->config.state_sync), pc_store_synchronous(&d->store),
                 d->config.state_sync == PC_STATE_SYNC_NORMAL ? ", the WAL is synced within a second of a commit"
                                                              : "");
        r = pc_event_bus_new(d);
        if (r < 0)
                return pc_error_setf(reterr, -r, "event_bus", "cannot read the last event's sequence number: %s",
                                     strerror(-r));
        r = mkdir_p(d->config.policy_dir, 0755);
        if (r < 0)
                log_warning_errno(r, "cannot create policy directory %s: %m, ignoring", d->config.policy_dir);
        r = pc_policy_manager_new(d->config.policy_dir, &d->policies);
        if (r < 0)
                return r;
        r = pc_policy_manager_reload(d->policies);
        if (r < 0)
                return pc_error_setf(reterr, -r, "policies", "cannot load policies: %s", strerror(-r));
        r = pc_daemon_probe_host(d);
        if (r < 0)
                log_warning_errno(r, "cannot probe host capabilities: %m, ignoring");
        r = loop_new(d, reterr);
        if (r < 0)
                return r;
        r = pc_webhooks_start(d, reterr);
        if (r < 0)
                return r;
        r = pc_sandbox_manager_new(d, reterr);
        if (r < 0)
                return r;
        r = pc_execs_new(d, reterr);
        if (r < 0)
                return r;
        r = pc_permissions_start(d);
        if (r < 0)
                return pc_error_setf(reterr, -r, "permissions", "cannot start the permission broker: %s", strerror(-r));
        return 0;
}

int pc_daemon_new(pc_config *config, pc_daemon **ret, pc_error **reterr)
{
        pc_daemon *d = calloc(1, sizeof(*d));
        int r;

        if (!d)
                return -ENOMEM;
        d->config = *config;
        *config = (pc_config){};
        d->lock_fd = d->post_fd = -EBADF;
        pthread_mutex_init(&d->post_lock, NULL);
        d->started_realtime_usec = now_usec(CLOCK_REALTIME);
        d->started_monotonic_usec = now_usec(CLOCK_MONOTONIC);
        r = daemon_init(d, reterr);
        if (r < 0) {
                pc_daemon_free(d);
                return r;
        }
        *ret = d;
        return 0;
}

int pc_daemon_run(pc_daemon *d)
{
        return sd_event_loop(d->event);
}

pc_daemon *pc_daemon_free(pc_daemon *d)
{
        if (!d)
                return NULL;
        pc_permissions_stop(d);
        pc_execs_free(d);
        pc_sandbox_manager_free(d);
        /* What threads posted after the loop stopped (and the sandbox manager's releases just now). */
        run_posts(d);
        pc_webhooks_stop(d);
        pc_event_bus_free(d);
        d->event = sd_event_unref(d->event);
        safe_close(d->post_fd);
        d->policies = pc_policy_manager_free(d->policies);
        pc_store_close(&d->store);
        json_decref(d->host_caps);
        safe_close(d->lock_fd);
        pthread_mutex_destroy(&d->post_lock);
        pc_config_done(&d->config);
        free(d);
        return NULL;
}

const pc_config *pc_daemon_config(const pc_daemon *d)
{
        return &d->config;
}

void pc_daemon_set_agent_handler(pc_daemon *d, pc_agent_connection_fn fn, void *userdata)
{
        d->agent_fn = fn;
        d->agent_userdata = userdata;
}
