/* SPDX-License-Identifier: MIT */
/* GET .../files/{path}?watch=1: a directory's changes (inotify) as server-sent events. No thread per
 * watcher: a watcher with nothing to send suspends its connection, and one shared thread waits (epoll) on
 * every watcher's inotify fd and resumes the connection whose fd became readable, or that owes a
 * keep-alive comment. Bounded: WATCHERS_MAX in all, WATCHERS_PER_SANDBOX for one sandbox. */
#include <inttypes.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "api-internal.h"

#define WATCHERS_MAX         64u
#define WATCHERS_PER_SANDBOX 8u
#define KEEPALIVE_USEC       (15 * 1000000ULL)

typedef struct watch {
        struct MHD_Connection *conn;
        int ifd;
        char sandbox[64];
        char *prefix;      /* the watched directory, "" for the workspace */
        bool suspended, ended, keepalive_due;
        uint64_t last_write;
        char out[8192];
        size_t len, off;
        char raw[4096] __attribute__((aligned(__alignof__(struct inotify_event)))); /* read, not yet sent */
        size_t raw_len, raw_off;
        struct watch *next;
} watch;

static struct {
        pthread_mutex_t lock;
        int epfd, wake; /* wake: an eventfd in epfd (data.ptr NULL) that the stop writes */
        pthread_t thread;
        bool running, stopping;
        watch *list;
        unsigned n;
} W = { .lock = PTHREAD_MUTEX_INITIALIZER, .epfd = -EBADF, .wake = -EBADF };

static bool listed(const watch *w)
{
        for (watch *i = W.list; i; i = i->next)
                if (i == w)
                        return true;
        return false;
}

/* With W.lock. */
static void resume(watch *w)
{
        if (!w->suspended)
                return;
        w->suspended = false;
        MHD_resume_connection(w->conn);
}

static void *watch_main(void *arg)
{
        struct epoll_event ev[16];

        int timeout = -1;

        for (;;) {
                int n = epoll_wait(W.epfd, ev, ELEMENTSOF(ev), timeout);
                uint64_t now = now_usec(CLOCK_MONOTONIC), next = UINT64_MAX;

                LOCK_GUARD(&W.lock);
                if (W.stopping) {
                        for (watch *w = W.list; w; w = w->next) {
                                w->ended = true;
                                resume(w);
                        }
                        W.running = false;
                        return NULL;
                }
                /* A watcher freed since epoll_wait returned is no longer listed: skipped. */
                for (int i = 0; i < n; i++)
                        if (ev[i].data.ptr && listed(ev[i].data.ptr))
                                resume(ev[i].data.ptr);
                /* Keep-alives as they fall due; the wait lasts until the next one (or an event). */
                for (watch *w = W.list; w; w = w->next) {
                        if (w->suspended && now - w->last_write >= KEEPALIVE_USEC) {
                                w->keepalive_due = true;
                                resume(w);
                        }
                        next = MIN(next, w->last_write + KEEPALIVE_USEC);
                }
                timeout = next == UINT64_MAX ? -1 : (int) ((MAX(next, now + 1000) - now + 999) / 1000);
        }
}

static const char *event_name(uint32_t m)
{
        if (m & IN_Q_OVERFLOW)
                return "overflow"; /* events were lost: list again */
        if (m & IN_CREATE)
                return "created";
        if (m & IN_DELETE)
                return "deleted";
        if (m & IN_MOVED_FROM)
                return "moved_from";
        if (m & IN_MOVED_TO)
                return "moved_to";
        if (m & (IN_MODIFY | IN_CLOSE_WRITE))
                return "modified";
        if (m & IN_ATTRIB)
                return "attrib";
        if (m & (IN_DELETE_SELF | IN_MOVE_SELF))
                return "gone"; /* the watched directory itself was removed or moved: the stream ends */
        return NULL;
}

/* Formats events into w->out, as many whole ones as fit; the rest stays in w->raw for the next call.
 * With W.lock. */
static void fill(watch *w)
{
        w->len = w->off = 0;
        if (w->raw_off == w->raw_len) {
                ssize_t k = read(w->ifd, w->raw, sizeof(w->raw));

                w->raw_off = 0;
                w->raw_len = k > 0 ? (size_t) k : 0;
        }
        while (w->raw_off < w->raw_len) {
                const struct inotify_event *e = (const struct inotify_event *) (w->raw + w->raw_off);
                const char *what = event_name(e->mask);
                _cleanup_free_ char *path = NULL, *data = NULL;
                json_t *j;
                int m;

                if (what && asprintf(&path, "%s%s%s", w->prefix, *w->prefix && e->len ? "/" : "",
                                     e->len ? e->name : "") < 0)
                        return;
                /* A name that is not UTF-8 (the API could not name it anyway) gives no event. */
                j = what ? json_pack("{s:s, s:s}", "event", what, "path", path) : NULL;
                data = j ? json_dumps(j, JSON_COMPACT) : NULL;
                json_decref(j);
                if (data) {
                        m = snprintf(w->out + w->len, sizeof(w->out) - w->len, "event: change\ndata: %s\n\n", data);
                        if (m < 0)
                                return;
                        if ((size_t) m >= sizeof(w->out) - w->len)
                                return; /* does not fit: it goes first next time */
                        w->len += (size_t) m;
                }
                if (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
                        w->ended = true;
                w->raw_off += sizeof(*e) + e->len;
        }
}

static ssize_t watch_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        watch *w = cls;
        struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.ptr = w };
        size_t n;

        LOCK_GUARD(&W.lock);
        if (w->off == w->len) {
                if (w->ended && w->raw_off == w->raw_len)
                        return MHD_CONTENT_READER_END_OF_STREAM;
                fill(w);
        }
        if (w->off == w->len && w->keepalive_due) {
                w->len = (size_t) snprintf(w->out, sizeof(w->out), ": keep-alive\n\n");
                w->off = 0;
        }
        w->keepalive_due = false;
        if (w->off == w->len) {
                if (w->ended || W.stopping)
                        return MHD_CONTENT_READER_END_OF_STREAM;
                if (w->raw_off < w->raw_len) /* an event that can never fit: dropped, not looped on */
                        w->raw_off = w->raw_len;
                /* Nothing to send: off libmicrohttpd's loop until the fd is readable or a keep-alive is due. */
                if (epoll_ctl(W.epfd, EPOLL_CTL_MOD, w->ifd, &ev) < 0)
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                w->suspended = true;
                MHD_suspend_connection(w->conn);
                return 0;
        }
        n = MIN(max, w->len - w->off);
        memcpy(buf, w->out + w->off, n);
        w->off += n;
        w->last_write = now_usec(CLOCK_MONOTONIC);
        return (ssize_t) n;
}

static void watch_free(void *cls)
{
        watch *w = cls;

        {
                LOCK_GUARD(&W.lock);
                for (watch **i = &W.list; *i; i = &(*i)->next)
                        if (*i == w) {
                                *i = w->next;
                                break;
                        }
                W.n--;
                (void) epoll_ctl(W.epfd, EPOLL_CTL_DEL, w->ifd, NULL);
        }
        safe_close(w->ifd);
        free(w->prefix);
        free(w);
}

static int start_thread(void)
{
        if (W.running)
                return 0;
        if (W.epfd < 0) {
                struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

                W.epfd = epoll_create1(EPOLL_CLOEXEC);
                if (W.epfd < 0)
                        return -errno;
                W.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (W.wake < 0 || epoll_ctl(W.epfd, EPOLL_CTL_ADD, W.wake, &ev) < 0) {
                        W.wake = safe_close(W.wake);
                        W.epfd = safe_close(W.epfd);
                        return -errno;
                }
        }
        if (pthread_create(&W.thread, NULL, watch_main, NULL) != 0)
                return -EAGAIN;
        W.running = true;
        return 0;
}

void api_files_watch_stop(void)
{
        bool join;

        {
                LOCK_GUARD(&W.lock);
                W.stopping = true;
                join = W.running;
                if (join)
                        (void) eventfd_write(W.wake, 1);
        }
        if (join)
                (void) pthread_join(W.thread, NULL);
}

int api_files_watch(api_request *rq, int dirfd, const char *path)
{
        _cleanup_close_ int ifd = -EBADF;
        struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT };
        struct MHD_Response *resp;
        char proc[64];
        unsigned mine = 0;
        watch *w;
        int r;

        ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (ifd < 0)
                return api_reply_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "watch", "cannot watch: inotify: %m");
        /* The directory already opened beneath the workspace (as the agent, which may read it), by its fd. */
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dirfd);
        if (inotify_add_watch(ifd, proc, IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM |
                                                 IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR) < 0)
                return api_reply_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "watch", "cannot watch \"%s\": %m", path);
        w = calloc(1, sizeof(*w));
        if (!w || !(w->prefix = strdup(path))) {
                free(w);
                return MHD_NO;
        }
        w->conn = rq->conn;
        w->last_write = now_usec(CLOCK_MONOTONIC);
        snprintf(w->sandbox, sizeof(w->sandbox), "%s", rq->params[0]);
        {
                LOCK_GUARD(&W.lock);
                for (watch *i = W.list; i; i = i->next)
                        mine += streq(i->sandbox, w->sandbox);
                r = W.stopping ? -ESHUTDOWN : W.n >= WATCHERS_MAX || mine >= WATCHERS_PER_SANDBOX ? -EBUSY : start_thread();
                ev.data.ptr = w;
                if (r >= 0 && epoll_ctl(W.epfd, EPOLL_CTL_ADD, ifd, &ev) < 0)
                        r = -errno;
                if (r >= 0) {
                        w->ifd = TAKE_FD(ifd);
                        w->next = W.list;
                        W.list = w;
                        W.n++;
                }
        }
        if (r < 0) {
                free(w->prefix);
                free(w);
                return api_reply_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "too_many_watchers",
                                       "no more watchers (%u in all, %u per sandbox): close one", WATCHERS_MAX,
                                       WATCHERS_PER_SANDBOX);
        }
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, watch_read, w, watch_free);
        if (!resp) {
                watch_free(w);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        /* A stream that runs until the client leaves does not hold up the daemon's stop. */
        api_request_uncount(rq);
        r = MHD_queue_response(rq->conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        rq->replied = true;
        return r;
}
