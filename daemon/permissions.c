/* SPDX-License-Identifier: MIT */
/* The permission broker ("Always Ask"): an exec whose command the policy answers with `ask` becomes a
 * permission request that waits, stored, until a person approves or denies it or it expires. An approval may
 * be remembered for a while: `exact` (the same command in the same directory of the same sandbox) or `prefix`
 * (a simple command starting with the same words, anywhere in that sandbox). Remembered answers are consulted
 * only for `ask`: a policy `deny` is never overridden. Rules belong to the sandbox's instance, so a later
 * sandbox of the same name starts with none.
 *
 * The exec engine is told of every decision on the loop's thread (pc_execs_permission_decided()); a request
 * whose decision was stored but not yet handed over when the daemon died is handed over at the next start
 * (column `notified`). Expiry is one CLOCK_REALTIME timer on the loop, armed at the earliest deadline. */
#include <inttypes.h>
#include <systemd/sd-event.h>

#include "daemon-internal.h"
#include "requests-internal.h"

#define PERMISSION_COLUMNS                                                                                    \
        "id, sandbox, exec_id, command, cwd, decision, explanation, state, created, expires, decided_at, "     \
        "decided_by, scope, minutes, device, reason"
#define RULE_COLUMNS "id, sandbox, scope, command, argv, cwd, created, expires, permission, created_by"

static int64_t now_s(void)
{
        return (int64_t) (now_usec(CLOCK_REALTIME) / 1000000);
}

static json_t *column_or_null(sqlite3_stmt *st, int i)
{
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_NULL:
                return json_null();
        case SQLITE_INTEGER:
                return json_integer(sqlite3_column_int64(st, i));
        default:
                return json_string((const char *) sqlite3_column_text(st, i));
        }
}

static json_t *permission_json(sqlite3_stmt *st)
{
        json_t *decision = json_loads((const char *) sqlite3_column_text(st, 5) ?: "null", JSON_DECODE_ANY, NULL);

        return json_pack("{s:s, s:s, s:o, s:s, s:s, s:o, s:o, s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
                         sqlite3_column_text(st, 0), "sandbox", sqlite3_column_text(st, 1), "exec",
                         column_or_null(st, 2), "command", sqlite3_column_text(st, 3), "cwd",
                         sqlite3_column_text(st, 4), "decision", decision ?: json_null(), "explanation",
                         column_or_null(st, 6), "state", sqlite3_column_text(st, 7), "created",
                         (json_int_t) sqlite3_column_int64(st, 8), "expires", (json_int_t) sqlite3_column_int64(st, 9),
                         "decided_at", column_or_null(st, 10), "decided_by", column_or_null(st, 11), "scope",
                         column_or_null(st, 12), "minutes", column_or_null(st, 13), "device", column_or_null(st, 14),
                         "reason", column_or_null(st, 15));
}

static json_t *rule_json(sqlite3_stmt *st)
{
        const char *argv = (const char *) sqlite3_column_text(st, 4);
        json_t *words = argv ? json_loads(argv, 0, NULL) : NULL;
        bool prefix = streq((const char *) sqlite3_column_text(st, 2), "prefix");

        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:O, s:O, s:o, s:I, s:I, s:s, s:s}", "id",
                              sqlite3_column_text(st, 0), "sandbox", sqlite3_column_text(st, 1), "scope",
                              sqlite3_column_text(st, 2), "command", sqlite3_column_text(st, 3), "argv",
                              !prefix && words ? words : json_null(), "prefix", prefix && words ? words : json_null(),
                              "cwd", column_or_null(st, 5), "created", (json_int_t) sqlite3_column_int64(st, 6),
                              "expires", (json_int_t) sqlite3_column_int64(st, 7), "permission",
                              sqlite3_column_text(st, 8), "created_by", sqlite3_column_text(st, 9));

        json_decref(words);
        return j;
}

/* ---- what a remembered answer matches ---- */

/* The argv of a verdict that is one simple command, fully analysed, with no redirections or notes: the only
 * kind a `prefix` rule may cover and the kind `exact` compares word by word. NULL otherwise. */
static json_t *simple_argv(json_t *decision)
{
        json_t *cmds = json_object_get(decision, "commands"), *omitted = json_object_get(decision, "omitted");
        json_t *argv = json_object_get(json_array_get(cmds, 0), "argv");

        if (!json_is_true(json_object_get(decision, "complete")) || json_array_size(cmds) != 1 ||
            json_array_size(json_object_get(decision, "redirects")) != 0 ||
            json_array_size(json_object_get(decision, "notes")) != 0 ||
            json_integer_value(json_object_get(omitted, "commands")) != 0 ||
            json_integer_value(json_object_get(omitted, "redirects")) != 0 || json_array_size(argv) == 0)
                return NULL;
        return argv;
}

/* `exact` compares the words of a simple command (so quoting differences do not matter) and the command's
 * bytes otherwise. */
static char *exact_key(const char *command, json_t *decision)
{
        json_t *argv = simple_argv(decision);
        _cleanup_free_ char *words = argv ? json_dumps(argv, JSON_COMPACT) : NULL;
        char *key = NULL;

        if (argv && !words)
                return NULL;
        return asprintf_safe(&key, "%s%s", argv ? "argv:" : "cmd:", argv ? words : command) < 0 ? NULL : key;
}

/* Whether WORD looks like a sub-command ("push", "run", "install"): lowercase letters, digits, '-' and '_',
 * starting with a letter; not an option, a path or a file name. */
static bool subcommand_like(const char *word)
{
        if (!word || !(word[0] >= 'a' && word[0] <= 'z'))
                return false;
        return strspn(word, "abcdefghijklmnopqrstuvwxyz0123456789-_") == strlen(word);
}

/* The words a `prefix` rule keeps: the program and, when the next word is a sub-command, that word too
 * ("git push", "npm test"; "ls -la" and "touch notes.txt" keep only the program). */
static json_t *prefix_words(json_t *argv)
{
        json_t *w = json_array();

        if (!w)
                return NULL;
        json_array_append(w, json_array_get(argv, 0));
        if (subcommand_like(json_string_value(json_array_get(argv, 1))))
                json_array_append(w, json_array_get(argv, 1));
        return w;
}

static bool argv_has_prefix(json_t *argv, json_t *prefix)
{
        size_t i;
        json_t *v;

        if (json_array_size(prefix) == 0 || json_array_size(prefix) > json_array_size(argv))
                return false;
        json_array_foreach(prefix, i, v)
                if (!json_equal(v, json_array_get(argv, i)))
                        return false;
        return true;
}

bool pc_permissions_remembered(pc_daemon *d, const char *sandbox, const char *command, const char *cwd,
                               json_t *decision)
{
        _cleanup_free_ char *key = exact_key(command, decision);
        json_t *argv = simple_argv(decision);

        if (!key || !streq_ptr(json_string_value(json_object_get(decision, "decision")), "ask"))
                return false;

        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(d->store.db,
                               "SELECT r.scope, r.match_key, r.cwd, r.argv FROM permission_rules r "
                               "JOIN sandboxes s ON s.name = r.sandbox AND s.instance = r.instance "
                               "WHERE r.sandbox = ? AND r.expires > ?",
                               -1, &st, NULL) != SQLITE_OK)
                return false;
        sqlite3_bind_text(st, 1, sandbox, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now_s());
        while (sqlite3_step(st) == SQLITE_ROW) {
                const char *scope = (const char *) sqlite3_column_text(st, 0);

                if (streq(scope, "exact")) {
                        if (streq_ptr((const char *) sqlite3_column_text(st, 1), key) &&
                            streq_ptr((const char *) sqlite3_column_text(st, 2), cwd))
                                return true;
                } else if (argv) {
                        _cleanup_json_ json_t *prefix = json_loads((const char *) sqlite3_column_text(st, 3) ?: "",
                                                                   0, NULL);
                        if (argv_has_prefix(argv, prefix))
                                return true;
                }
        }
        return false;
}

/* ---- the expiry timer and handing decisions to the exec engine (loop thread) ---- */

typedef struct decided {
        char id[33];
        char *exec_id;
        bool approved;
        char *reason;
} decided;

static void decided_free(decided *x)
{
        if (!x)
                return;
        free(x->exec_id);
        free(x->reason);
        free(x);
}

/* Hands one decision to the exec engine and records that it did; when the loop has already stopped, the next
 * start does it (pc_permissions_start()). */
static void notify_exec(pc_daemon *d, void *userdata)
{
        decided *x = userdata;
        int state = 0;

        if (d->event)
                state = sd_event_get_state(d->event);
        if (x->exec_id && state != SD_EVENT_FINISHED && state >= 0) {
                pc_execs_permission_decided(d, x->exec_id, x->approved, x->reason);
                LOCK_GUARD(&d->store.lock);
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                if (sqlite3_prepare_v2(d->store.db, "UPDATE permissions SET notified = 1 WHERE id = ?", -1, &st,
                                       NULL) != SQLITE_OK ||
                    (sqlite3_bind_text(st, 1, x->id, -1, SQLITE_STATIC), sqlite3_step(st)) != SQLITE_DONE)
                        log_warning("permission %s: cannot record that exec %s was told: %s", x->id, x->exec_id,
                                    sqlite3_errmsg(d->store.db));
        }
        decided_free(x);
}

static int post_decided(pc_daemon *d, const char *id, const char *exec_id, bool approved, const char *reason)
{
        decided *x = calloc(1, sizeof(*x));
        int r;

        if (!x)
                return -ENOMEM;
        snprintf(x->id, sizeof(x->id), "%s", id);
        x->approved = approved;
        if ((exec_id && !(x->exec_id = strdup(exec_id))) || (reason && !(x->reason = strdup(reason)))) {
                decided_free(x);
                return -ENOMEM;
        }
        r = pc_daemon_post(d, notify_exec, x);
        if (r < 0)
                decided_free(x);
        return r;
}

/* The earliest deadline of a pending request or a remembered rule, 0 when there is none. */
static int64_t next_deadline(pc_daemon *d)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(d->store.db,
                               "SELECT min(e) FROM (SELECT min(expires) AS e FROM permissions WHERE state = 'pending' "
                               "UNION ALL SELECT min(expires) FROM permission_rules)",
                               -1, &st, NULL) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_ROW)
                return 0;
        return sqlite3_column_int64(st, 0);
}

static void arm(pc_daemon *d)
{
        int64_t at = next_deadline(d);

        if (!d->permission_timer)
                return;
        if (at <= 0) {
                (void) sd_event_source_set_enabled(d->permission_timer, SD_EVENT_OFF);
                return;
        }
        if (sd_event_source_set_time(d->permission_timer, (uint64_t) at * 1000000) < 0 ||
            sd_event_source_set_enabled(d->permission_timer, SD_EVENT_ONESHOT) < 0)
                log_warning("cannot arm the permission expiry timer, requests may expire late");
}

static void arm_post(pc_daemon *d, void *userdata)
{
        arm(d);
}

/* Expires pending requests whose time is up (denied as "expired"), drops rules past their expiry and decided
 * requests after a week: one transaction, then the events and the exec engine. */
static void sweep(pc_daemon *d)
{
        _cleanup_json_ json_t *expired = json_array();
        pc_event_pending *evs = NULL;
        size_t n = 0;

        if (!expired)
                return;
        {
                LOCK_GUARD(&d->store.lock);
                _cleanup_txn_ pc_txn txn = {};
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                int64_t now = now_s();
                json_t *e;
                size_t i;

                if (pc_txn_begin(&d->store, &txn) < 0 ||
                    sqlite3_prepare_v2(d->store.db,
                                       "UPDATE permissions SET state = 'expired', decided_at = ?1, decided_by = 'daemon', "
                                       "reason = 'expired' WHERE state = 'pending' AND expires <= ?1 "
                                       "RETURNING id, exec_id, sandbox, command",
                                       -1, &st, NULL) != SQLITE_OK) {
                        log_warning("cannot expire permission requests: %s", sqlite3_errmsg(d->store.db));
                        return;
                }
                sqlite3_bind_int64(st, 1, now);
                while (sqlite3_step(st) == SQLITE_ROW)
                        json_array_append_new(expired, json_pack("{s:s, s:o, s:s, s:s}", "id", sqlite3_column_text(st, 0),
                                                                 "exec", column_or_null(st, 1), "sandbox",
                                                                 sqlite3_column_text(st, 2), "command",
                                                                 sqlite3_column_text(st, 3)));
                sqlite3_finalize(TAKE_PTR(st));
                evs = calloc(json_array_size(expired) + 1, sizeof(*evs));
                if (!evs)
                        return;
                json_array_foreach(expired, i, e) {
                        const char *id = json_string_value(json_object_get(e, "id"));
                        const char *sandbox = json_string_value(json_object_get(e, "sandbox"));

                        if (pc_store_audit(&d->store, "daemon", "permission.expire", id,
                                           json_string_value(json_object_get(e, "command"))) < 0 ||
                            pc_event_record(d, PC_EVENT_PERMISSION_DECIDED, sandbox,
                                            json_pack("{s:s, s:s, s:n, s:n, s:s}", "id", id, "decision", "expired",
                                                      "scope", "device", "reason", "expired"),
                                            &evs[n++]) < 0)
                                goto fail;
                }
                if (sqlite3_exec(d->store.db,
                                 "DELETE FROM permission_rules WHERE expires <= unixepoch();"
                                 /* decided requests stay a week in GET /v1/permissions, for good in the ledger */
                                 "DELETE FROM permissions WHERE state != 'pending' AND notified = 1 AND decided_at <= "
                                 "unixepoch() - 7 * 24 * 3600;",
                                 NULL, NULL, NULL) != SQLITE_OK ||
                    pc_txn_commit(&txn) < 0)
                        goto fail;
        }
        for (size_t i = 0; i < n; i++)
                pc_event_deliver(d, &evs[i]);
        free(evs);
        {
                size_t i;
                json_t *e;
                json_array_foreach(expired, i, e)
                        (void) post_decided(d, json_string_value(json_object_get(e, "id")),
                                            json_string_value(json_object_get(e, "exec")), false, "expired");
        }
        return;
fail:
        log_warning("cannot expire permission requests: %s", sqlite3_errmsg(d->store.db));
        for (size_t i = 0; i < n; i++)
                pc_event_pending_done(&evs[i]);
        free(evs);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        pc_daemon *d = userdata;

        sweep(d);
        arm(d);
        return 0;
}

int pc_permissions_start(pc_daemon *d)
{
        _cleanup_json_ json_t *undelivered = json_array();
        int r;

        r = sd_event_add_time(d->event, &d->permission_timer, CLOCK_REALTIME, UINT64_MAX, 1000000, on_timer, d);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(d->permission_timer, "permission-expiry");
        /* Decisions stored before a crash that the exec engine may not have seen: hand them over again (it
         * ignores an exec that is no longer waiting). */
        {
                LOCK_GUARD(&d->store.lock);
                _cleanup_stmt_ sqlite3_stmt *st = NULL;

                if (sqlite3_prepare_v2(d->store.db,
                                       "SELECT id, exec_id, state = 'approved', reason FROM permissions "
                                       "WHERE state != 'pending' AND notified = 0 AND exec_id IS NOT NULL ORDER BY created",
                                       -1, &st, NULL) != SQLITE_OK)
                        return -EIO;
                while (sqlite3_step(st) == SQLITE_ROW)
                        json_array_append_new(undelivered,
                                              json_pack("{s:s, s:s, s:b, s:o}", "id", sqlite3_column_text(st, 0), "exec",
                                                        sqlite3_column_text(st, 1), "approved", sqlite3_column_int(st, 2),
                                                        "reason", column_or_null(st, 3)));
        }
        for (size_t i = 0; i < json_array_size(undelivered); i++) {
                json_t *u = json_array_get(undelivered, i);
                (void) post_decided(d, json_string_value(json_object_get(u, "id")),
                                    json_string_value(json_object_get(u, "exec")),
                                    json_is_true(json_object_get(u, "approved")),
                                    json_string_value(json_object_get(u, "reason")));
        }
        sweep(d); /* what expired while the daemon was down */
        arm(d);
        return 0;
}

void pc_permissions_stop(pc_daemon *d)
{
        d->permission_timer = sd_event_source_disable_unref(d->permission_timer);
}

/* ---- asking ---- */

int pc_permissions_ask(pc_daemon *d, const char *sandbox, const char *exec_id, const char *command, const char *cwd,
                       json_t *decision, char ret_id[static 33], pc_error **reterr)
{
        _cleanup_free_ char *decision_text = json_dumps(decision, JSON_COMPACT);
        const char *explanation = json_string_value(json_object_get(decision, "explanation"));
        _cleanup_event_pending_ pc_event_pending ev = {};
        int64_t now = now_s(), expires = now + (int64_t) d->config.permission_timeout;
        char id[33];
        int r;

        if (!decision_text)
                return -ENOMEM;
        r = pc_random_hex(id, 16);
        if (r < 0)
                return pc_error_setf(reterr, -r, "internal", "cannot read random bytes: %s", strerror(-r));
        {
                LOCK_GUARD(&d->store.lock);
                _cleanup_txn_ pc_txn txn = {};
                _cleanup_stmt_ sqlite3_stmt *st = NULL;

                if (pc_txn_begin(&d->store, &txn) < 0 ||
                    sqlite3_prepare_v2(d->store.db,
                                       "INSERT INTO permissions (id, sandbox, instance, exec_id, command, cwd, decision, "
                                       "explanation, state, created, expires) SELECT ?, name, instance, ?, ?, ?, ?, ?, "
                                       "'pending', ?, ? FROM sandboxes WHERE name = ?",
                                       -1, &st, NULL) != SQLITE_OK)
                        return pc_store_error(&d->store, reterr);
                sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, exec_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 3, command, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 4, cwd, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 5, decision_text, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 6, explanation, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 7, now);
                sqlite3_bind_int64(st, 8, expires);
                sqlite3_bind_text(st, 9, sandbox, -1, SQLITE_STATIC);
                if (sqlite3_step(st) != SQLITE_DONE)
                        return pc_store_error(&d->store, reterr);
                if (sqlite3_changes(d->store.db) == 0)
                        return pc_error_setf(reterr, ENOENT, "not_found", "sandbox \"%s\" does not exist", sandbox);
                r = pc_store_audit(&d->store, "daemon", "permission.request", id, command);
                if (r < 0)
                        return pc_store_errorf(r, reterr, "the request cannot be recorded in the audit ledger");
                r = pc_event_record(d, PC_EVENT_PERMISSION_REQUESTED, sandbox,
                                    json_pack("{s:s, s:s, s:s, s:o, s:o, s:I}", "id", id, "command", command, "cwd", cwd,
                                              "exec", exec_id ? json_string(exec_id) : json_null(), "explanation",
                                              explanation ? json_string(explanation) : json_null(), "expires",
                                              (json_int_t) expires),
                                    &ev);
                if (r < 0 || (r = pc_txn_commit(&txn)) < 0)
                        return pc_store_errorf(r, reterr, "the permission request cannot be stored");
        }
        pc_event_deliver(d, &ev);
        (void) pc_daemon_post(d, arm_post, NULL);
        memcpy(ret_id, id, sizeof(id));
        return 0;
}

/* ---- reading ---- */

int pc_permissions_list(pc_daemon *d, const char *state, const char *sandbox, json_t **ret, pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_json_ json_t *arr = json_array();
        int k;

        if (!arr)
                return -ENOMEM;
        if (state && !(streq(state, "pending") || streq(state, "approved") || streq(state, "denied") ||
                       streq(state, "expired") || streq(state, "all")))
                return pc_error_setf(reterr, EINVAL, "invalid_query",
                                     "query parameter state must be pending, approved, denied, expired or all");
        if (sqlite3_prepare_v2(d->store.db,
                               "SELECT " PERMISSION_COLUMNS " FROM permissions WHERE (?1 = 'all' OR state = ?1) "
                               "AND (?2 IS NULL OR sandbox = ?2) ORDER BY created, id",
                               -1, &st, NULL) != SQLITE_OK)
                return pc_store_error(&d->store, reterr);
        sqlite3_bind_text(st, 1, state ?: "pending", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, sandbox, -1, SQLITE_STATIC);
        while ((k = sqlite3_step(st)) == SQLITE_ROW)
                if (json_array_append_new(arr, permission_json(st)) < 0)
                        return -ENOMEM;
        if (k != SQLITE_DONE)
                return pc_store_error(&d->store, reterr);
        *ret = json_pack("{s:O}", "permissions", arr);
        return *ret ? 0 : -ENOMEM;
}

/* The request ID as JSON; call with the store lock held. */
static int load(pc_daemon *d, const char *id, json_t **ret, pc_error **reterr)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int k;

        if (sqlite3_prepare_v2(d->store.db, "SELECT " PERMISSION_COLUMNS " FROM permissions WHERE id = ?", -1, &st,
                               NULL) != SQLITE_OK)
                return pc_store_error(&d->store, reterr);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        k = sqlite3_step(st);
        if (k == SQLITE_DONE)
                return pc_error_setf(reterr, ENOENT, "not_found",
                                     "permission request \"%s\" does not exist (see GET /v1/permissions?state=all)", id);
        if (k != SQLITE_ROW)
                return pc_store_error(&d->store, reterr);
        *ret = permission_json(st);
        return *ret ? 0 : -ENOMEM;
}

int pc_permissions_show(pc_daemon *d, const char *id, json_t **ret, pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock);
        return load(d, id, ret, reterr);
}

/* ---- deciding ---- */

/* Stores the decision on pending request ID (the store lock and a transaction held by the caller), with its
 * audit row and event, and for an approval remembered as `scope` the rule. */
static int decide_locked(pc_daemon *d, json_t *p, const char *actor, bool approved, const pc_approve_request *q,
                         const char *reason, pc_event_pending *ev, pc_error **reterr)
{
        const char *id = json_string_value(json_object_get(p, "id"));
        const char *sandbox = json_string_value(json_object_get(p, "sandbox"));
        const char *command = json_string_value(json_object_get(p, "command"));
        const char *cwd = json_string_value(json_object_get(p, "cwd"));
        const char *scope = approved ? q->scope : NULL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *detail = NULL;
        int64_t now = now_s();
        int r;

        if (sqlite3_prepare_v2(d->store.db,
                               "UPDATE permissions SET state = ?, decided_at = ?, decided_by = ?, scope = ?, minutes = ?, "
                               "device = ?, reason = ? WHERE id = ? AND state = 'pending'",
                               -1, &st, NULL) != SQLITE_OK)
                return pc_store_error(&d->store, reterr);
        sqlite3_bind_text(st, 1, approved ? "approved" : "denied", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_text(st, 3, actor, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, scope, -1, SQLITE_STATIC);
        if (approved)
                sqlite3_bind_int64(st, 5, q->minutes);
        sqlite3_bind_text(st, 6, approved ? q->device : NULL, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, reason, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
                return pc_store_error(&d->store, reterr);
        if (sqlite3_changes(d->store.db) != 1)
                return pc_error_setf(reterr, EALREADY, "already_decided", "permission request %s was decided already",
                                     id);
        sqlite3_finalize(TAKE_PTR(st));

        if (approved && !streq(scope, "once")) {
                json_t *argv = simple_argv(json_object_get(p, "decision"));
                _cleanup_json_ json_t *words = NULL;
                _cleanup_free_ char *key = NULL, *words_text = NULL;
                char rule_id[33];

                if (streq(scope, "prefix")) {
                        if (!argv)
                                return pc_error_setf(reterr, EINVAL, "scope_unavailable",
                                                     "scope prefix needs one simple command (no pipes, lists, "
                                                     "redirections or anything the gatekeeper could not analyse); "
                                                     "approve with scope exact or once");
                        words = prefix_words(argv);
                } else
                        words = argv ? json_incref(argv) : NULL;
                key = streq(scope, "prefix") ? json_dumps(words, JSON_COMPACT)
                                             : exact_key(command, json_object_get(p, "decision"));
                words_text = words ? json_dumps(words, JSON_COMPACT) : NULL;
                if (!key || (words && !words_text))
                        return -ENOMEM;
                r = pc_random_hex(rule_id, 16);
                if (r < 0)
                        return pc_error_setf(reterr, -r, "internal", "cannot read random bytes: %s", strerror(-r));
                if (sqlite3_prepare_v2(d->store.db,
                                       "INSERT INTO permission_rules (id, sandbox, instance, scope, match_key, command, "
                                       "argv, cwd, created, expires, permission, created_by) SELECT ?, sandbox, instance, "
                                       "?, ?, ?, ?, ?, ?, ?, id, ? FROM permissions WHERE id = ?",
                                       -1, &st, NULL) != SQLITE_OK)
                        return pc_store_error(&d->store, reterr);
                sqlite3_bind_text(st, 1, rule_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, scope, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 4, command, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 5, words_text, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 6, streq(scope, "exact") ? cwd : NULL, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 7, now);
                sqlite3_bind_int64(st, 8, now + (int64_t) q->minutes * 60);
                sqlite3_bind_text(st, 9, actor, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 10, id, -1, SQLITE_STATIC);
                if (sqlite3_step(st) != SQLITE_DONE)
                        return pc_store_error(&d->store, reterr);
        }

        if (approved) {
                _cleanup_json_ json_t *dj = json_pack("{s:s, s:I, s:o}", "scope", scope, "minutes",
                                                      (json_int_t) q->minutes, "device",
                                                      q->device ? json_string(q->device) : json_null());
                detail = dj ? json_dumps(dj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        } else
                detail = strdup(reason ?: "");
        if (!detail)
                return -ENOMEM;
        r = pc_store_audit(&d->store, actor, approved ? "permission.approve" : "permission.deny", id, detail);
        if (r < 0)
                return pc_store_errorf(r, reterr, "the decision cannot be recorded in the audit ledger, so it was not made");
        r = pc_event_record(d, PC_EVENT_PERMISSION_DECIDED, sandbox,
                            json_pack("{s:s, s:s, s:o, s:o, s:o}", "id", id, "decision", approved ? "approved" : "denied",
                                      "scope", scope ? json_string(scope) : json_null(), "device",
                                      approved && q->device ? json_string(q->device) : json_null(), "reason",
                                      reason ? json_string(reason) : json_null()),
                            ev);
        return r < 0 ? pc_store_errorf(r, reterr, "the decision cannot be stored") : 0;
}

static int decide(pc_daemon *d, const pc_principal *who, const char *id, bool approved, const pc_approve_request *q,
                  const char *reason, json_t **ret, pc_error **reterr)
{
        _cleanup_event_pending_ pc_event_pending ev = {};
        _cleanup_json_ json_t *p = NULL;
        char actor[128];
        int r;

        pc_principal_describe(who, actor, sizeof(actor));
        {
                LOCK_GUARD(&d->store.lock);
                _cleanup_txn_ pc_txn txn = {};

                r = load(d, id, &p, reterr);
                if (r < 0)
                        return r;
                if (!streq(json_string_value(json_object_get(p, "state")), "pending"))
                        return pc_error_setf(reterr, EALREADY, "already_decided", "permission request %s is %s already",
                                             id, json_string_value(json_object_get(p, "state")));
                if (approved) {
                        if (json_integer_value(json_object_get(p, "expires")) <= now_s())
                                return pc_error_setf(reterr, EALREADY, "already_decided",
                                                     "permission request %s has expired", id);
                        if (d->config.require_signed_approvals && !q->signature)
                                return pc_error_setf(reterr, EPERM, "signature_required",
                                                     "require_signed_approvals is on: an approval must be signed by a "
                                                     "registered device (fields device, signature, expires; see "
                                                     "`pocketcoder permissions approve --key`)");
                        if (q->signature) {
                                r = pc_devices_verify_approval(d, q->device, q->signature, id,
                                                               json_string_value(json_object_get(p, "command")),
                                                               json_string_value(json_object_get(p, "cwd")), q->scope,
                                                               q->minutes, q->expires, reterr);
                                if (r < 0)
                                        return r;
                        }
                }
                r = pc_txn_begin(&d->store, &txn);
                if (r < 0)
                        return pc_store_error(&d->store, reterr);
                r = decide_locked(d, p, actor, approved, q, reason, &ev, reterr);
                if (r < 0)
                        return r;
                if (pc_txn_commit(&txn) < 0)
                        return pc_store_error(&d->store, reterr);
                json_decref(p);
                p = NULL;
                r = load(d, id, &p, reterr);
                if (r < 0)
                        return r;
        }
        pc_event_deliver(d, &ev);
        (void) post_decided(d, id, json_string_value(json_object_get(p, "exec")), approved, reason);
        (void) pc_daemon_post(d, arm_post, NULL);
        *ret = TAKE_PTR(p);
        return 0;
}

int pc_permissions_approve(pc_daemon *d, const pc_principal *who, const char *id, json_t *req, json_t **ret,
                           pc_error **reterr)
{
        pc_approve_request q;
        int r;

        r = pc_approve_request_parse(req, &q, reterr);
        if (r < 0)
                return r;
        return decide(d, who, id, true, &q, NULL, ret, reterr);
}

int pc_permissions_deny(pc_daemon *d, const pc_principal *who, const char *id, json_t *req, json_t **ret,
                        pc_error **reterr)
{
        const char *reason;
        int r;

        r = pc_deny_request_parse(req, &reason, reterr);
        if (r < 0)
                return r;
        return decide(d, who, id, false, &(pc_approve_request){}, reason ?: "denied by a person", ret, reterr);
}

/* ---- remembered rules ---- */

int pc_permission_rules_list(pc_daemon *d, const char *sandbox, json_t **ret, pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_json_ json_t *arr = json_array();
        int k;

        if (!arr)
                return -ENOMEM;
        if (sqlite3_prepare_v2(d->store.db,
                               "SELECT " RULE_COLUMNS " FROM permission_rules r WHERE expires > ?1 "
                               "AND (?2 IS NULL OR sandbox = ?2) AND EXISTS (SELECT 1 FROM sandboxes s "
                               "WHERE s.name = r.sandbox AND s.instance = r.instance) ORDER BY created, id",
                               -1, &st, NULL) != SQLITE_OK)
                return pc_store_error(&d->store, reterr);
        sqlite3_bind_int64(st, 1, now_s());
        sqlite3_bind_text(st, 2, sandbox, -1, SQLITE_STATIC);
        while ((k = sqlite3_step(st)) == SQLITE_ROW)
                if (json_array_append_new(arr, rule_json(st)) < 0)
                        return -ENOMEM;
        if (k != SQLITE_DONE)
                return pc_store_error(&d->store, reterr);
        *ret = json_pack("{s:O}", "rules", arr);
        return *ret ? 0 : -ENOMEM;
}

int pc_permission_rules_delete(pc_daemon *d, const pc_principal *who, const char *id, pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_txn_ pc_txn txn = {};
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char actor[128];

        pc_principal_describe(who, actor, sizeof(actor));
        if (pc_txn_begin(&d->store, &txn) < 0 ||
            sqlite3_prepare_v2(d->store.db, "DELETE FROM permission_rules WHERE id = ? AND expires > unixepoch()", -1,
                               &st, NULL) != SQLITE_OK ||
            (sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC), sqlite3_step(st)) != SQLITE_DONE)
                return pc_store_error(&d->store, reterr);
        if (sqlite3_changes(d->store.db) == 0)
                return pc_error_setf(reterr, ENOENT, "not_found",
                                     "remembered rule \"%s\" does not exist (see GET /v1/permissions/rules)", id);
        if (pc_store_audit(&d->store, actor, "permission.forget", id, NULL) < 0 || pc_txn_commit(&txn) < 0)
                return pc_store_error(&d->store, reterr);
        return 0;
}
