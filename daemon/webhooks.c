/* SPDX-License-Identifier: MIT */
/* Webhooks: every event an endpoint (relay, admin) takes is POSTed to its URL, signed with HMAC-SHA256 over
 * "TIMESTAMP.BODY", in sequence order per endpoint, retried with exponential backoff, logged in
 * webhook_deliveries. One thread of its own runs libcurl's multi interface: a receiver that is slow, down or
 * never answers delays only its own deliveries, never the daemon. The queue is filled from the events table
 * after a stored cursor, in one transaction with the cursor, so a kill -9 loses nothing: what was not marked
 * delivered is sent again after the restart (at least once; receivers deduplicate by X-PocketCoder-Seq). */
#include <curl/curl.h>
#include <inttypes.h>
#include <nettle/hmac.h>
#include <stdatomic.h>

#include "daemon-internal.h"

#define ENQUEUE_PAGE 500

typedef struct endpoint {
        const char *name; /* "relay", "admin" */
        const char *url;
        uint64_t types;
        CURL *easy;       /* the transfer in flight, or NULL */
        int64_t delivery; /* its row */
        struct curl_slist *headers;
        char *body;
} endpoint;

typedef struct pc_webhooks {
        pc_daemon *d;
        CURLM *multi;
        pthread_t thread;
        atomic_bool stop;
        pc_event_subscription *subscription;
        endpoint endpoints[2];
        size_t n_endpoints;
} pc_webhooks;

static int64_t now_ms(void)
{
        return (int64_t) (now_usec(CLOCK_REALTIME) / 1000);
}

/* A receiver that stays down must not grow the queue without end: past webhook_deliveries_keep pending
 * rows of an endpoint, the oldest are failed. Called with the store lock held, in a transaction. */
static int bound_queue(pc_webhooks *w)
{
        pc_daemon *d = w->d;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(d->store.db,
                               "UPDATE webhook_deliveries SET state = 'failed', finished = ?3, "
                               "last_error = 'dropped: more than webhook_deliveries_keep deliveries were pending' "
                               "WHERE url = ?1 AND state = 'pending' AND id <= (SELECT id FROM webhook_deliveries "
                               "WHERE url = ?1 AND state = 'pending' ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                               -1, &st, NULL) != SQLITE_OK)
                return pc_store_errno(&d->store);
        for (size_t i = 0; i < w->n_endpoints; i++) {
                sqlite3_reset(st);
                sqlite3_bind_text(st, 1, w->endpoints[i].url, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, (int64_t) MIN(d->config.webhook_deliveries_keep, (uint64_t) INT64_MAX));
                sqlite3_bind_int64(st, 3, now_ms() / 1000);
                if (sqlite3_step(st) != SQLITE_DONE)
                        return pc_store_errno(&d->store);
                if (sqlite3_changes(d->store.db) > 0)
                        log_warning("webhook %s: %d undelivered deliveries dropped (more than %" PRIu64 " pending)",
                                    w->endpoints[i].name, sqlite3_changes(d->store.db),
                                    d->config.webhook_deliveries_keep);
        }
        return 0;
}

/* Queues a delivery per endpoint for every event after the cursor, and moves the cursor, in one transaction. */
static int enqueue(pc_webhooks *w)
{
        pc_daemon *d = w->d;
        int64_t cursor = 0, last;
        int k, r;

        do {
                LOCK_GUARD(&d->store.lock);
                _cleanup_txn_ pc_txn txn = {};
                _cleanup_stmt_ sqlite3_stmt *cur = NULL, *sel = NULL, *ins = NULL, *upd = NULL, *min = NULL;
                unsigned n = 0;

                r = pc_txn_begin(&d->store, &txn);
                if (r < 0)
                        return r;
                if (sqlite3_prepare_v2(d->store.db, "SELECT seq FROM webhook_cursor", -1, &cur, NULL) != SQLITE_OK ||
                    sqlite3_prepare_v2(d->store.db,
                                       "SELECT seq, at, type, sandbox, data FROM events WHERE seq > ? ORDER BY seq "
                                       "LIMIT ?",
                                       -1, &sel, NULL) != SQLITE_OK ||
                    sqlite3_prepare_v2(d->store.db,
                                       "INSERT INTO webhook_deliveries (endpoint, url, seq, type, body, created, "
                                       "next_attempt) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                       -1, &ins, NULL) != SQLITE_OK ||
                    sqlite3_prepare_v2(d->store.db, "UPDATE webhook_cursor SET seq = ?", -1, &upd, NULL) != SQLITE_OK ||
                    sqlite3_prepare_v2(d->store.db, "SELECT min(seq) FROM events", -1, &min, NULL) != SQLITE_OK)
                        return pc_store_errno(&d->store);
                if (sqlite3_step(cur) == SQLITE_ROW)
                        cursor = sqlite3_column_int64(cur, 0);
                if (sqlite3_step(min) == SQLITE_ROW && sqlite3_column_type(min, 0) != SQLITE_NULL &&
                    sqlite3_column_int64(min, 0) > cursor + 1)
                        log_warning("webhooks: events %" PRId64 "..%" PRId64 " were dropped by retention (events_keep) "
                                    "before they were queued; they are not delivered",
                                    cursor + 1, (int64_t) sqlite3_column_int64(min, 0) - 1);
                last = cursor;
                sqlite3_bind_int64(sel, 1, cursor);
                sqlite3_bind_int(sel, 2, ENQUEUE_PAGE);
                while ((k = sqlite3_step(sel)) == SQLITE_ROW) {
                        const char *type = (const char *) sqlite3_column_text(sel, 2);
                        pc_event_type t = pc_event_type_from_string(type);
                        _cleanup_free_ char *body = NULL;
                        json_t *j;

                        n++;
                        last = sqlite3_column_int64(sel, 0);
                        j = json_pack("{s:I, s:s, s:s?, s:I, s:o}", "seq", (json_int_t) last, "type", type, "sandbox",
                                      (const char *) sqlite3_column_text(sel, 3), "at",
                                      (json_int_t) sqlite3_column_int64(sel, 1), "data",
                                      json_loads((const char *) sqlite3_column_text(sel, 4), 0, NULL) ?: json_object());
                        body = j ? json_dumps(j, JSON_COMPACT) : NULL;
                        json_decref(j);
                        if (!body)
                                return -ENOMEM;
                        for (size_t i = 0; i < w->n_endpoints; i++) {
                                if (t < 0 || !(w->endpoints[i].types & (UINT64_C(1) << t)))
                                        continue;
                                sqlite3_reset(ins);
                                sqlite3_bind_text(ins, 1, w->endpoints[i].name, -1, SQLITE_STATIC);
                                sqlite3_bind_text(ins, 2, w->endpoints[i].url, -1, SQLITE_STATIC);
                                sqlite3_bind_int64(ins, 3, last);
                                sqlite3_bind_text(ins, 4, type, -1, SQLITE_TRANSIENT);
                                sqlite3_bind_text(ins, 5, body, -1, SQLITE_STATIC);
                                sqlite3_bind_int64(ins, 6, now_ms() / 1000);
                                sqlite3_bind_int64(ins, 7, 0);
                                if (sqlite3_step(ins) != SQLITE_DONE)
                                        return pc_store_errno(&d->store);
                        }
                }
                if (k != SQLITE_DONE)
                        return pc_store_errno(&d->store);
                if (last == cursor)
                        return 0;
                r = bound_queue(w);
                if (r < 0)
                        return r;
                sqlite3_bind_int64(upd, 1, last);
                if (sqlite3_step(upd) != SQLITE_DONE)
                        return pc_store_errno(&d->store);
                r = pc_txn_commit(&txn);
                if (r < 0)
                        return r;
                if (n < ENQUEUE_PAGE)
                        return 0;
        } while (!atomic_load(&w->stop));
        return 0;
}

static size_t discard(char *p, size_t size, size_t n, void *userdata)
{
        return size * n;
}

/* "sha256=" and the hex HMAC-SHA256 of "TIMESTAMP.BODY" under the secret. */
static void sign(const char *secret, const char *timestamp, const char *body, char ret[static 7 + 65])
{
        struct hmac_sha256_ctx ctx;
        uint8_t mac[SHA256_DIGEST_SIZE];

        hmac_sha256_set_key(&ctx, strlen(secret), (const uint8_t *) secret);
        hmac_sha256_update(&ctx, strlen(timestamp), (const uint8_t *) timestamp);
        hmac_sha256_update(&ctx, 1, (const uint8_t *) ".");
        hmac_sha256_update(&ctx, strlen(body), (const uint8_t *) body);
        hmac_sha256_digest(&ctx, sizeof(mac), mac);
        strcpy(ret, "sha256=");
        for (size_t i = 0; i < sizeof(mac); i++)
                sprintf(ret + 7 + 2 * i, "%02x", mac[i]);
        explicit_bzero_safe(&ctx, sizeof(ctx));
}

static void endpoint_reset(pc_webhooks *w, endpoint *e)
{
        if (e->easy) {
                curl_multi_remove_handle(w->multi, e->easy);
                curl_easy_cleanup(e->easy);
        }
        curl_slist_free_all(e->headers);
        free(e->body);
        e->easy = NULL;
        e->headers = NULL;
        e->body = NULL;
        e->delivery = 0;
}

static int add_header(struct curl_slist **l, const char *fmt, ...) _printf_(2, 3);
static int add_header(struct curl_slist **l, const char *fmt, ...)
{
        _cleanup_free_ char *s = NULL;
        struct curl_slist *n;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        n = curl_slist_append(*l, s);
        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

/* Starts the endpoint's oldest pending delivery when it is due; else lowers *next_ms to when it is. */
static int start_next(pc_webhooks *w, endpoint *e, int64_t *next_ms)
{
        pc_daemon *d = w->d;
        char timestamp[21], signature[7 + 65];
        int64_t id, seq, due;
        _cleanup_free_ char *type = NULL;
        int r;

        {
                LOCK_GUARD(&d->store.lock);
                _cleanup_stmt_ sqlite3_stmt *st = NULL;

                if (sqlite3_prepare_v2(d->store.db,
                                       "SELECT id, seq, type, body, next_attempt FROM webhook_deliveries "
                                       "WHERE url = ? AND state = 'pending' ORDER BY id LIMIT 1",
                                       -1, &st, NULL) != SQLITE_OK)
                        return pc_store_errno(&d->store);
                sqlite3_bind_text(st, 1, e->url, -1, SQLITE_STATIC);
                r = sqlite3_step(st);
                if (r == SQLITE_DONE)
                        return 0;
                if (r != SQLITE_ROW)
                        return pc_store_errno(&d->store);
                due = sqlite3_column_int64(st, 4);
                if (due > now_ms()) {
                        *next_ms = MIN(*next_ms, due);
                        return 0;
                }
                id = sqlite3_column_int64(st, 0);
                seq = sqlite3_column_int64(st, 1);
                type = strdup((const char *) sqlite3_column_text(st, 2));
                e->body = strdup((const char *) sqlite3_column_text(st, 3));
                if (!type || !e->body)
                        return -ENOMEM;
        }
        snprintf(timestamp, sizeof(timestamp), "%" PRId64, now_ms() / 1000);
        sign(d->config.webhook_secret, timestamp, e->body, signature);
        if (add_header(&e->headers, "Content-Type: application/json") < 0 ||
            add_header(&e->headers, "User-Agent: pocketcoderd/" PACKAGE_VERSION) < 0 ||
            add_header(&e->headers, "X-PocketCoder-Event: %s", type) < 0 ||
            add_header(&e->headers, "X-PocketCoder-Delivery: %" PRId64, id) < 0 ||
            add_header(&e->headers, "X-PocketCoder-Seq: %" PRId64, seq) < 0 ||
            add_header(&e->headers, "X-PocketCoder-Timestamp: %s", timestamp) < 0 ||
            add_header(&e->headers, "X-PocketCoder-Signature: %s", signature) < 0 ||
            add_header(&e->headers, "Expect:") < 0)
                return -ENOMEM;
        e->easy = curl_easy_init();
        if (!e->easy)
                return -ENOMEM;
        e->delivery = id;
        curl_easy_setopt(e->easy, CURLOPT_URL, e->url);
        curl_easy_setopt(e->easy, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e->easy, CURLOPT_HTTPHEADER, e->headers);
        curl_easy_setopt(e->easy, CURLOPT_POSTFIELDS, e->body);
        curl_easy_setopt(e->easy, CURLOPT_POSTFIELDSIZE, (long) strlen(e->body));
        curl_easy_setopt(e->easy, CURLOPT_TIMEOUT_MS, (long) d->config.webhook_timeout * 1000L);
        curl_easy_setopt(e->easy, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(e->easy, CURLOPT_PRIVATE, e);
        if (curl_multi_add_handle(w->multi, e->easy) != CURLM_OK)
                return -ENOMEM;
        return 0;
}

/* Records an attempt's outcome: delivered (2xx), retried after a backoff, or failed after the last attempt. */
static int finish(pc_webhooks *w, endpoint *e, CURLcode res)
{
        pc_daemon *d = w->d;
        const pc_config *c = &d->config;
        long status = 0;
        char error[128] = "";
        int r;

        if (res == CURLE_OK)
                curl_easy_getinfo(e->easy, CURLINFO_RESPONSE_CODE, &status);
        if (res != CURLE_OK)
                snprintf(error, sizeof(error), "%s", curl_easy_strerror(res));
        else if (status < 200 || status > 299)
                snprintf(error, sizeof(error), "HTTP status %ld", status);

        LOCK_GUARD(&d->store.lock);
        _cleanup_txn_ pc_txn txn = {};
        _cleanup_stmt_ sqlite3_stmt *upd = NULL, *del = NULL;

        r = pc_txn_begin(&d->store, &txn);
        if (r < 0)
                return r;
        /* Backoff before attempt n+1: retry_min * 2^(n-1) seconds, at most retry_max. */
        if (sqlite3_prepare_v2(d->store.db,
                               "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?2, "
                               "last_error = ?3, "
                               "state = CASE WHEN ?3 IS NULL THEN 'delivered' WHEN attempts + 1 >= ?4 THEN 'failed' "
                               "  ELSE 'pending' END, "
                               "finished = CASE WHEN ?3 IS NULL OR attempts + 1 >= ?4 THEN ?5 / 1000 END, "
                               "next_attempt = ?5 + 1000 * min(?7, ?6 << min(attempts, 20)) "
                               "WHERE id = ?1 AND state = 'pending'", /* not if it was dropped meanwhile */
                               -1, &upd, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(d->store.db,
                               "DELETE FROM webhook_deliveries WHERE state != 'pending' AND id <= (SELECT id FROM "
                               "webhook_deliveries WHERE state != 'pending' ORDER BY id DESC LIMIT 1 OFFSET ?)",
                               -1, &del, NULL) != SQLITE_OK)
                return pc_store_errno(&d->store);
        sqlite3_bind_int64(upd, 1, e->delivery);
        if (status > 0)
                sqlite3_bind_int64(upd, 2, status);
        if (*error)
                sqlite3_bind_text(upd, 3, error, -1, SQLITE_STATIC);
        sqlite3_bind_int64(upd, 4, c->webhook_max_attempts);
        sqlite3_bind_int64(upd, 5, now_ms());
        sqlite3_bind_int64(upd, 6, c->webhook_retry_min);
        sqlite3_bind_int64(upd, 7, c->webhook_retry_max);
        /* Bounded log: the newest webhook_deliveries_keep finished rows stay. */
        sqlite3_bind_int64(del, 1, (int64_t) MIN(c->webhook_deliveries_keep, (uint64_t) INT64_MAX));
        if (sqlite3_step(upd) != SQLITE_DONE || sqlite3_step(del) != SQLITE_DONE)
                return pc_store_errno(&d->store);
        if (*error)
                log_debug("webhook %s: delivery %" PRId64 " to %s: %s", e->name, e->delivery, e->url, error);
        return pc_txn_commit(&txn);
}

static void *webhooks_main(void *userdata)
{
        pc_webhooks *w = userdata;
        bool failing = false;

        while (!atomic_load(&w->stop)) {
                int64_t next = INT64_MAX, now;
                int running, timeout, r;
                CURLMsg *msg;

                r = enqueue(w);
                for (size_t i = 0; r >= 0 && i < w->n_endpoints; i++)
                        if (!w->endpoints[i].easy) {
                                r = start_next(w, &w->endpoints[i], &next);
                                if (r < 0)
                                        endpoint_reset(w, &w->endpoints[i]);
                        }
                /* The store failing (disk full, I/O error): say so once, and try again a little later. */
                if (r < 0 && !failing)
                        log_error_errno(r, "webhooks: cannot queue or start deliveries: %m; retrying");
                failing = r < 0;
                if (failing)
                        next = MIN(next, now_ms() + 1000);
                (void) curl_multi_perform(w->multi, &running);
                while ((msg = curl_multi_info_read(w->multi, &(int){ 0 })))
                        if (msg->msg == CURLMSG_DONE) {
                                endpoint *e = NULL;

                                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &e);
                                r = finish(w, e, msg->data.result);
                                if (r < 0)
                                        log_error_errno(r, "webhooks: cannot record delivery %" PRId64 ": %m; "
                                                        "it is sent again", e->delivery);
                                endpoint_reset(w, e);
                                next = 0; /* the endpoint's next delivery, now */
                        }
                /* Sleep until a transfer needs curl, a delivery is due, an event arrives or we stop. */
                now = now_ms();
                timeout = next <= now ? 0 : (int) MIN(next - now, (int64_t) 3600 * 1000);
                (void) curl_multi_poll(w->multi, NULL, 0, timeout, NULL);
        }
        return NULL;
}

/* Runs in the publisher's thread with the bus lock held: only wake the delivery thread. */
static void on_event(const pc_event *e, void *userdata)
{
        pc_webhooks *w = userdata;

        (void) curl_multi_wakeup(w->multi);
}

/* Without webhooks the queue's cursor follows the bus, so that configuring one later does not replay
 * history; pending rows of a URL no longer configured are failed (never sent elsewhere). */
static int queue_reset(pc_daemon *d, bool enabled)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *cur = NULL, *fail = NULL;

        if (sqlite3_prepare_v2(d->store.db,
                               "UPDATE webhook_cursor SET seq = coalesce((SELECT seq FROM sqlite_sequence WHERE "
                               "name = 'events'), 0) WHERE NOT ?",
                               -1, &cur, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(d->store.db,
                               "UPDATE webhook_deliveries SET state = 'failed', finished = ?3, "
                               "last_error = 'the endpoint''s URL is no longer configured' WHERE state = 'pending' "
                               "AND url IS NOT ?1 AND url IS NOT ?2",
                               -1, &fail, NULL) != SQLITE_OK)
                return pc_store_errno(&d->store);
        sqlite3_bind_int(cur, 1, enabled);
        sqlite3_bind_text(fail, 1, d->config.webhook_relay, -1, SQLITE_STATIC);
        sqlite3_bind_text(fail, 2, d->config.webhook_admin, -1, SQLITE_STATIC);
        sqlite3_bind_int64(fail, 3, now_ms() / 1000);
        if (sqlite3_step(cur) != SQLITE_DONE || sqlite3_step(fail) != SQLITE_DONE)
                return pc_store_errno(&d->store);
        return 0;
}

int pc_webhooks_start(pc_daemon *d, pc_error **reterr)
{
        const pc_config *c = &d->config;
        uint64_t relay_types = 0, admin_types = 0;
        pc_webhooks *w;
        int r;

        for (size_t i = 0; i < 2; i++) {
                _cleanup_pc_error_ pc_error *e = NULL;
                const char *name = i == 0 ? "relay" : "admin";
                const char *list = i == 0 ? c->webhook_relay_events : c->webhook_admin_events;

                if ((i == 0 ? c->webhook_relay : c->webhook_admin) &&
                    pc_event_types_parse(list, i == 0 ? &relay_types : &admin_types, &e) < 0)
                        return pc_error_setf(reterr, EINVAL, "invalid_config", "webhook_%s_events \"%s\": %s",
                                             name, list, e ? e->message : "out of memory");
        }
        r = queue_reset(d, c->webhook_relay || c->webhook_admin);
        if (r < 0)
                return pc_store_errorf(r, reterr, "cannot prepare the webhook queue");
        if (!c->webhook_relay && !c->webhook_admin)
                return 0;
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return pc_error_setf(reterr, EIO, "webhooks", "cannot initialize libcurl");
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->d = d;
        d->webhooks = w;
        if (c->webhook_relay)
                w->endpoints[w->n_endpoints++] = (endpoint){ "relay", c->webhook_relay, relay_types };
        if (c->webhook_admin)
                w->endpoints[w->n_endpoints++] = (endpoint){ "admin", c->webhook_admin, admin_types };
        w->multi = curl_multi_init();
        if (!w->multi)
                return pc_error_setf(reterr, ENOMEM, "webhooks", "cannot initialize libcurl");
        r = pc_event_subscribe(d, on_event, w, &w->subscription);
        if (r < 0)
                return pc_error_setf(reterr, -r, "webhooks", "cannot subscribe to events: %s", strerror(-r));
        r = pthread_create(&w->thread, NULL, webhooks_main, w);
        if (r != 0) {
                w->thread = 0;
                return pc_error_setf(reterr, r, "webhooks", "cannot start the delivery thread: %s", strerror(r));
        }
        for (size_t i = 0; i < w->n_endpoints; i++)
                log_info("webhooks: %s events go to %s", w->endpoints[i].name, w->endpoints[i].url);
        return 0;
}

void pc_webhooks_stop(pc_daemon *d)
{
        pc_webhooks *w = d->webhooks;

        if (!w)
                return;
        w->subscription = pc_event_unsubscribe(d, w->subscription);
        if (w->thread) {
                atomic_store(&w->stop, true);
                (void) curl_multi_wakeup(w->multi);
                (void) pthread_join(w->thread, NULL);
        }
        /* Transfers in flight stay pending: sent again at the next start. */
        for (size_t i = 0; i < w->n_endpoints; i++)
                endpoint_reset(w, &w->endpoints[i]);
        if (w->multi)
                curl_multi_cleanup(w->multi);
        free(w);
        d->webhooks = NULL;
        curl_global_cleanup();
}

int pc_webhooks_ping(pc_daemon *d, const pc_principal *who, json_t **ret, pc_error **reterr)
{
        char actor[128];
        int64_t seq;

        pc_principal_describe(who, actor, sizeof(actor));
        seq = pc_event_publish(d, PC_EVENT_WEBHOOK_PING, NULL, json_pack("{s:s}", "by", actor));
        if (seq < 0)
                return pc_store_errorf((int) seq, reterr, "cannot publish webhook.ping");
        *ret = json_pack("{s:I}", "seq", (json_int_t) seq);
        return *ret ? 0 : -ENOMEM;
}

int pc_webhooks_deliveries(pc_daemon *d, const char *state, unsigned limit, json_t **ret, pc_error **reterr)
{
        _cleanup_json_ json_t *arr = json_array();
        int k;

        if (state && !streq(state, "pending") && !streq(state, "delivered") && !streq(state, "failed"))
                return pc_error_setf(reterr, EINVAL, "invalid_query",
                                     "state \"%s\": expected pending, delivered or failed", state);
        if (!arr)
                return -ENOMEM;
        {
                LOCK_GUARD(&d->store.lock);
                _cleanup_stmt_ sqlite3_stmt *st = NULL;

                if (sqlite3_prepare_v2(d->store.db,
                                       "SELECT id, endpoint, url, seq, type, state, attempts, last_status, last_error, "
                                       "next_attempt, created, finished FROM webhook_deliveries "
                                       "WHERE ?1 IS NULL OR state = ?1 ORDER BY id DESC LIMIT ?2",
                                       -1, &st, NULL) != SQLITE_OK)
                        return pc_store_error(&d->store, reterr);
                if (state)
                        sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
                sqlite3_bind_int(st, 2, (int) limit);
                while ((k = sqlite3_step(st)) == SQLITE_ROW) {
                        bool pending = streq((const char *) sqlite3_column_text(st, 5), "pending");
                        json_t *j = json_pack(
                                "{s:I, s:s, s:s, s:I, s:s, s:s, s:I, s:o, s:o, s:o, s:I, s:o}", "id",
                                (json_int_t) sqlite3_column_int64(st, 0), "endpoint", sqlite3_column_text(st, 1),
                                "url", sqlite3_column_text(st, 2), "seq", (json_int_t) sqlite3_column_int64(st, 3),
                                "type", sqlite3_column_text(st, 4), "state", sqlite3_column_text(st, 5), "attempts",
                                (json_int_t) sqlite3_column_int64(st, 6), "last_status",
                                sqlite3_column_type(st, 7) == SQLITE_NULL ? json_null()
                                                                           : json_integer(sqlite3_column_int64(st, 7)),
                                "last_error",
                                sqlite3_column_type(st, 8) == SQLITE_NULL
                                        ? json_null()
                                        : json_string((const char *) sqlite3_column_text(st, 8)),
                                "next_attempt",
                                pending ? json_integer(sqlite3_column_int64(st, 9) / 1000) : json_null(), "created",
                                (json_int_t) sqlite3_column_int64(st, 10), "finished",
                                sqlite3_column_type(st, 11) == SQLITE_NULL ? json_null()
                                                                            : json_integer(sqlite3_column_int64(st, 11)));
                        if (!j || json_array_append_new(arr, j) < 0)
                                return -ENOMEM;
                }
                if (k != SQLITE_DONE)
                        return pc_store_error(&d->store, reterr);
        }
        *ret = json_pack("{s:O}", "deliveries", arr);
        return *ret ? 0 : -ENOMEM;
}
