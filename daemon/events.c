/* SPDX-License-Identifier: MIT */
/* The event bus: every event is stored (table `events`, its seq the cursor clients resume from) and then
 * handed to in-process subscribers and to waiters (suspended HTTP requests) in the publishing thread.
 * Waiters' deadlines are one timer on the event loop, armed at the earliest. */
#include <inttypes.h>
#include <systemd/sd-event.h>

#include "daemon-internal.h"

static const char *const event_type_table[_PC_EVENT_TYPE_MAX] = {
        [PC_EVENT_SANDBOX_CREATED] = "sandbox.created",
        [PC_EVENT_SANDBOX_STARTED] = "sandbox.started",
        [PC_EVENT_SANDBOX_STOPPED] = "sandbox.stopped",
        [PC_EVENT_SANDBOX_DELETED] = "sandbox.deleted",
        [PC_EVENT_POLICY_RELOADED] = "policy.reloaded",
        [PC_EVENT_IMAGE_PROGRESS] = "image.progress",
        [PC_EVENT_IMAGE_BUILT] = "image.built",
        [PC_EVENT_IMAGE_FAILED] = "image.failed",
        [PC_EVENT_EXEC_STARTED] = "exec.started",
        [PC_EVENT_EXEC_FINISHED] = "exec.finished",
        [PC_EVENT_PERMISSION_REQUESTED] = "permission.requested",
        [PC_EVENT_PERMISSION_DECIDED] = "permission.decided",
        [PC_EVENT_WEBHOOK_PING] = "webhook.ping",
        [PC_EVENT_KEY_ADDED] = "key.added",
        [PC_EVENT_KEY_REMOVED] = "key.removed",
};

const char *pc_event_type_to_string(pc_event_type t)
{
        return t >= 0 && t < _PC_EVENT_TYPE_MAX ? event_type_table[t] : NULL;
}

pc_event_type pc_event_type_from_string(const char *s)
{
        for (size_t i = 0; s && i < _PC_EVENT_TYPE_MAX; i++)
                if (streq(event_type_table[i], s))
                        return (pc_event_type) i;
        return PC_EVENT_TYPE_INVALID;
}

int pc_event_types_parse(const char *s, uint64_t *ret, pc_error **reterr)
{
        uint64_t mask = 0;

        _Static_assert(_PC_EVENT_TYPE_MAX <= 64, "event types must fit a uint64_t mask");
        if (!s)
                return pc_error_setf(reterr, EINVAL, "invalid_query", "no event types given");
        for (const char *p = s;;) {
                const char *end = p + strcspn(p, ",");
                const char *a = p, *b = end;
                uint64_t m = 0;
                size_t n;

                while (a < b && (*a == ' ' || *a == '\t'))
                        a++;
                while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                        b--;
                n = (size_t) (b - a);
                for (size_t i = 0; i < _PC_EVENT_TYPE_MAX; i++) {
                        const char *name = event_type_table[i];
                        /* "x.*" takes every type named "x.something"; "*" takes all. */
                        bool match = n > 0 && a[n - 1] == '*'
                                             ? (n == 1 || (a[n - 2] == '.' && strneq(name, a, n - 1)))
                                             : strlen(name) == n && strneq(name, a, n);
                        if (match)
                                m |= UINT64_C(1) << i;
                }
                if (m == 0)
                        return pc_error_setf(reterr, EINVAL, "invalid_query",
                                             "event type \"%.*s\" names no event type (expected a list such as "
                                             "\"exec.*,permission.requested\"; types are listed in "
                                             "api/openapi.yaml)",
                                             (int) MIN(n, (size_t) 64), a);
                mask |= m;
                if (!*end)
                        break;
                p = end + 1;
        }
        *ret = mask;
        return 0;
}

struct pc_event_subscription {
        pc_event_fn fn;
        void *userdata;
        pc_event_subscription *next;
};

struct pc_event_bus {
        pthread_mutex_t lock; /* taken after the store's, never before it */
        uint64_t last_seq;    /* every event up to it is committed */
        pc_event_subscription *subscriptions;
        pc_event_waiter *waiters;
        bool stopping;
        uint64_t armed_usec;  /* the deadline the timer is (about to be) set to; UINT64_MAX: none */
        sd_event_source *timer; /* loop thread only */
};

int pc_event_bus_new(pc_daemon *d)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        pc_event_bus *b = calloc(1, sizeof(*b));

        if (!b)
                return -ENOMEM;
        pthread_mutex_init(&b->lock, NULL);
        b->armed_usec = UINT64_MAX;
        d->bus = b;
        /* sqlite_sequence holds the largest seq ever handed out, also when that event was deleted. */
        LOCK_GUARD(&d->store.lock);
        if (sqlite3_prepare_v2(d->store.db, "SELECT seq FROM sqlite_sequence WHERE name = 'events'", -1, &st,
                               NULL) != SQLITE_OK)
                return -EIO;
        if (sqlite3_step(st) == SQLITE_ROW)
                b->last_seq = (uint64_t) sqlite3_column_int64(st, 0);
        return 0;
}

void pc_event_bus_free(pc_daemon *d)
{
        pc_event_bus *b = d->bus;

        if (!b)
                return;
        while (b->subscriptions) {
                pc_event_subscription *s = b->subscriptions;
                b->subscriptions = s->next;
                free(s);
        }
        sd_event_source_disable_unref(b->timer);
        pthread_mutex_destroy(&b->lock);
        free(b);
        d->bus = NULL;
}

static bool filter_matches(const pc_event_filter *f, pc_event_type type, const char *sandbox)
{
        if (f->type != _PC_EVENT_TYPE_MAX && f->type != type)
                return false;
        if (f->types != 0 && !(f->types & (UINT64_C(1) << type)))
                return false;
        return isempty(f->sandbox) || streq_ptr(f->sandbox, sandbox);
}

static void waiter_unlink(pc_event_bus *b, pc_event_waiter *w)
{
        if (w->prev)
                w->prev->next = w->next;
        else
                b->waiters = w->next;
        if (w->next)
                w->next->prev = w->prev;
        w->prev = w->next = NULL;
        w->registered = false;
}

/* Called with the bus lock held; w is not registered afterwards. */
static void waiter_fire(pc_event_bus *b, pc_event_waiter *w)
{
        if (w->registered)
                waiter_unlink(b, w);
        w->wake(w);
}

static int64_t store_event(pc_daemon *d, pc_event_type type, const char *sandbox, int64_t at, const char *text)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_txn_ pc_txn txn = {};
        _cleanup_reset_ sqlite3_stmt *ins = NULL, *del = NULL;
        int64_t seq;
        int r;

        r = pc_txn_begin(&d->store, &txn);
        if (r < 0)
                return r;
        r = pc_store_prepare_cached(&d->store, "INSERT INTO events (at, type, sandbox, data) VALUES (?, ?, ?, ?)",
                                    &ins);
        if (r < 0)
                return r;
        sqlite3_bind_int64(ins, 1, at);
        sqlite3_bind_text(ins, 2, pc_event_type_to_string(type), -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, sandbox, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, text, -1, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE)
                return pc_store_errno(&d->store);
        seq = sqlite3_last_insert_rowid(d->store.db);
        /* Bounded retention: a range delete on the primary key, cheap at every insert. */
        r = pc_store_prepare_cached(&d->store, "DELETE FROM events WHERE seq <= ?", &del);
        if (r < 0)
                return r;
        sqlite3_bind_int64(del, 1, seq - (int64_t) d->config.events_keep);
        if (sqlite3_step(del) != SQLITE_DONE)
                return pc_store_errno(&d->store);
        r = pc_txn_commit(&txn);
        if (r < 0)
                return r;
        return seq;
}

void pc_event_pending_done(pc_event_pending *p)
{
        json_decref(p->data);
        free(p->sandbox);
        *p = (pc_event_pending){};
}

int pc_event_record(pc_daemon *d, pc_event_type type, const char *sandbox, json_t *data, pc_event_pending *ret)
{
        _cleanup_json_ json_t *j = data ?: json_object();
        _cleanup_free_ char *text = NULL, *sb = NULL;
        int64_t at, seq;

        if (!j || !json_is_object(j) || !pc_event_type_to_string(type))
                return log_error_errno(EINVAL, "event %s for %s: invalid, not recorded",
                                       strna(pc_event_type_to_string(type)), strna(sandbox));
        text = json_dumps(j, JSON_COMPACT);
        if (!text || (sandbox && !(sb = strdup(sandbox))))
                return log_oom();
        at = (int64_t) (now_usec(CLOCK_REALTIME) / 1000000);
        seq = store_event(d, type, sandbox, at, text);
        if (seq < 0)
                return log_error_errno((int) -seq, "event %s for %s: cannot record it: %m",
                                       pc_event_type_to_string(type), strna(sandbox));
        *ret = (pc_event_pending){
                .seq = (uint64_t) seq, .type = type, .sandbox = TAKE_PTR(sb), .at = at, .data = TAKE_PTR(j),
        };
        return 0;
}

void pc_event_deliver(pc_daemon *d, pc_event_pending *p)
{
        pc_event_bus *b = d->bus;
        pc_event e = { .seq = p->seq, .type = p->type, .sandbox = p->sandbox, .at = p->at, .data = p->data };

        if (p->seq == 0)
                return;
        {
                LOCK_GUARD(&b->lock);
                if (e.seq > b->last_seq)
                        b->last_seq = e.seq;
                for (pc_event_subscription *s = b->subscriptions; s; s = s->next)
                        s->fn(&e, s->userdata);
                for (pc_event_waiter *w = b->waiters, *next; w; w = next) {
                        next = w->next;
                        if (filter_matches(&w->filter, e.type, e.sandbox))
                                waiter_fire(b, w);
                }
        }
        log_debug("event %" PRIu64 ": %s %s", e.seq, pc_event_type_to_string(e.type), strna(e.sandbox));
        pc_event_pending_done(p);
}

int64_t pc_event_publish(pc_daemon *d, pc_event_type type, const char *sandbox, json_t *data)
{
        pc_event_pending p = {};
        int64_t seq;
        int r;

        r = pc_event_record(d, type, sandbox, data, &p);
        if (r < 0)
                return r;
        seq = (int64_t) p.seq;
        pc_event_deliver(d, &p);
        return seq;
}

int pc_event_subscribe(pc_daemon *d, pc_event_fn fn, void *userdata, pc_event_subscription **ret)
{
        pc_event_subscription *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        s->fn = fn;
        s->userdata = userdata;
        LOCK_GUARD(&d->bus->lock);
        s->next = d->bus->subscriptions;
        d->bus->subscriptions = s;
        *ret = s;
        return 0;
}

pc_event_subscription *pc_event_unsubscribe(pc_daemon *d, pc_event_subscription *s)
{
        if (!s)
                return NULL;
        LOCK_GUARD(&d->bus->lock);
        for (pc_event_subscription **p = &d->bus->subscriptions; *p; p = &(*p)->next)
                if (*p == s) {
                        *p = s->next;
                        break;
                }
        free(s);
        return NULL;
}

static json_t *event_json(sqlite3_stmt *st)
{
        const char *sandbox = (const char *) sqlite3_column_text(st, 3);
        json_t *data = json_loads((const char *) sqlite3_column_text(st, 4), 0, NULL);

        return json_pack("{s:I, s:s, s:o, s:I, s:o}", "seq", (json_int_t) sqlite3_column_int64(st, 0), "type",
                         (const char *) sqlite3_column_text(st, 2), "sandbox",
                         sandbox ? json_string(sandbox) : json_null(), "at",
                         (json_int_t) sqlite3_column_int64(st, 1), "data", data ?: json_object());
}

/* ",a.b,c.d,": the names of a mask's types, for instr() in SQL. */
static char *types_csv(uint64_t mask)
{
        size_t n = 2;
        char *s, *p;

        for (size_t i = 0; i < _PC_EVENT_TYPE_MAX; i++)
                if (mask & (UINT64_C(1) << i))
                        n += strlen(event_type_table[i]) + 1;
        s = p = malloc(n);
        if (!s)
                return NULL;
        *p++ = ',';
        for (size_t i = 0; i < _PC_EVENT_TYPE_MAX; i++)
                if (mask & (UINT64_C(1) << i))
                        p = stpcpy(stpcpy(p, event_type_table[i]), ",");
        *p = 0;
        return s;
}

int pc_events_list(pc_daemon *d, const pc_event_filter *f, uint64_t since, unsigned limit, json_t **ret,
                   uint64_t *ret_seen, pc_error **reterr)
{
        _cleanup_json_ json_t *arr = json_array();
        _cleanup_free_ char *types = NULL;
        uint64_t seen, next = since;
        json_t *oldest = json_null();
        int k;

        if (!arr)
                return -ENOMEM;
        /* Read the bus position first: every event up to it is committed, so the answer below is complete
         * up to it, and a waiter registered with it misses nothing published later. */
        {
                LOCK_GUARD(&d->bus->lock);
                seen = d->bus->last_seq;
        }
        {
                LOCK_GUARD(&d->store.lock);
                _cleanup_stmt_ sqlite3_stmt *st = NULL, *min = NULL;

                if (sqlite3_prepare_v2(d->store.db,
                                       "SELECT seq, at, type, sandbox, data FROM events WHERE seq > ?1 AND seq <= ?2 "
                                       "AND (?3 IS NULL OR sandbox = ?3) AND (?4 IS NULL OR type = ?4) "
                                       "AND (?6 IS NULL OR instr(?6, ',' || type || ',') > 0) "
                                       "ORDER BY seq LIMIT ?5",
                                       -1, &st, NULL) != SQLITE_OK ||
                    sqlite3_prepare_v2(d->store.db, "SELECT min(seq) FROM events", -1, &min, NULL) != SQLITE_OK)
                        return pc_store_error(&d->store, reterr);
                sqlite3_bind_int64(st, 1, (sqlite3_int64) MIN(since, (uint64_t) INT64_MAX));
                sqlite3_bind_int64(st, 2, (sqlite3_int64) seen);
                if (!isempty(f->sandbox))
                        sqlite3_bind_text(st, 3, f->sandbox, -1, SQLITE_STATIC);
                if (f->type != _PC_EVENT_TYPE_MAX)
                        sqlite3_bind_text(st, 4, pc_event_type_to_string(f->type), -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 5, limit);
                if (f->types != 0) {
                        types = types_csv(f->types);
                        if (!types)
                                return -ENOMEM;
                        sqlite3_bind_text(st, 6, types, -1, SQLITE_STATIC);
                }
                while ((k = sqlite3_step(st)) == SQLITE_ROW) {
                        next = (uint64_t) sqlite3_column_int64(st, 0);
                        if (json_array_append_new(arr, event_json(st)) < 0)
                                return -ENOMEM;
                }
                if (k != SQLITE_DONE)
                        return pc_store_error(&d->store, reterr);
                if (sqlite3_step(min) == SQLITE_ROW && sqlite3_column_type(min, 0) != SQLITE_NULL)
                        oldest = json_integer(sqlite3_column_int64(min, 0));
        }
        /* A full page may have more behind it: resume after its last event. Otherwise everything up to
         * `seen` was looked at. */
        if (json_array_size(arr) < limit)
                next = MAX(next, seen);
        *ret = json_pack("{s:O, s:I, s:o}", "events", arr, "next", (json_int_t) next, "oldest", oldest);
        if (!*ret)
                return -ENOMEM;
        *ret_seen = seen;
        return 0;
}

/* ---- waiters' deadlines: one timer on the loop, at the earliest ---- */

static void arm_timer(pc_daemon *d);

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        pc_daemon *d = userdata;

        arm_timer(d);
        return 0;
}

/* Loop thread: fires waiters whose deadline passed and sets the timer to the next one. */
static void arm_timer(pc_daemon *d)
{
        pc_event_bus *b = d->bus;
        uint64_t now = now_usec(CLOCK_MONOTONIC), next = UINT64_MAX;
        int r;

        LOCK_GUARD(&b->lock);
        for (pc_event_waiter *w = b->waiters, *n; w; w = n) {
                n = w->next;
                if (w->deadline_usec <= now)
                        waiter_fire(b, w);
                else
                        next = MIN(next, w->deadline_usec);
        }
        b->armed_usec = next;
        if (next == UINT64_MAX) {
                (void) sd_event_source_set_enabled(b->timer, SD_EVENT_OFF);
                return;
        }
        if (!b->timer) {
                r = sd_event_add_time(d->event, &b->timer, CLOCK_MONOTONIC, next, 1000, on_timer, d);
                if (r < 0) {
                        log_error_errno(r, "cannot arm the waiters' timer: %m; waiters wake at the next event");
                        return;
                }
        } else
                (void) sd_event_source_set_time(b->timer, next);
        (void) sd_event_source_set_enabled(b->timer, SD_EVENT_ONESHOT);
}

static void arm_timer_posted(pc_daemon *d, void *userdata)
{
        arm_timer(d);
}

void pc_event_wait(pc_daemon *d, pc_event_waiter *w)
{
        pc_event_bus *b = d->bus;
        bool rearm = false;

        {
                LOCK_GUARD(&b->lock);
                w->prev = w->next = NULL;
                w->registered = false;
                if (b->stopping) {
                        w->stopping = true;
                        w->wake(w);
                        return;
                }
                if (b->last_seq > w->seen || w->deadline_usec <= now_usec(CLOCK_MONOTONIC)) {
                        w->wake(w);
                        return;
                }
                w->next = b->waiters;
                if (b->waiters)
                        b->waiters->prev = w;
                b->waiters = w;
                w->registered = true;
                if (w->deadline_usec < b->armed_usec) {
                        b->armed_usec = w->deadline_usec;
                        rearm = true;
                }
        }
        if (rearm && pc_daemon_post(d, arm_timer_posted, NULL) < 0)
                log_error("cannot arm a waiter's deadline (out of memory): it wakes at the next event");
}

void pc_event_wait_done(pc_daemon *d, pc_event_waiter *w)
{
        LOCK_GUARD(&d->bus->lock);
        if (w->registered)
                waiter_unlink(d->bus, w);
}

void pc_event_waiters_stop(pc_daemon *d)
{
        pc_event_bus *b = d->bus;

        LOCK_GUARD(&b->lock);
        b->stopping = true;
        while (b->waiters) {
                b->waiters->stopping = true;
                waiter_fire(b, b->waiters);
        }
}

int pc_change_record(pc_daemon *d, sqlite3_stmt *st, sqlite3_stmt *also, const char *subject, const char *actor,
                     const char *action, const char *detail, pc_event_type type, const char *sandbox, json_t *data)
{
        _cleanup_json_ json_t *owned = data;
        _cleanup_event_pending_ pc_event_pending ev = {};
        _cleanup_txn_ pc_txn txn = {};
        int r;

        r = pc_txn_begin(&d->store, &txn);
        if (r < 0)
                return r;
        if ((st && sqlite3_step(st) != SQLITE_DONE) || (also && sqlite3_step(also) != SQLITE_DONE))
                return pc_store_errno(&d->store);
        if (action) {
                r = pc_store_audit(&d->store, actor, action, subject, detail);
                if (r < 0)
                        return r;
        }
        if (owned) {
                r = pc_event_record(d, type, sandbox, TAKE_PTR(owned), &ev);
                if (r < 0)
                        return r;
        }
        r = pc_txn_commit(&txn);
        if (r < 0)
                return r;
        pc_event_deliver(d, &ev);
        return 0;
}
