/* SPDX-License-Identifier: MIT */
/* The audit ledger, hash-chained. Every row carries the hash of the row before it (prev_hash) and its
 * own hash: SHA-256 over a canonical encoding of its fields and prev_hash. pc_store_audit() is the only
 * writer: it reads the head, hashes and inserts in one transaction under the store's lock, so writers
 * in any thread (or process) chain in order. The head's hash and the row count are also kept in settings,
 * which is how verification notices rows cut off the end. */
#include <inttypes.h>

#include "daemon-internal.h"

#define AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"
#define AUDIT_LIST_MAX 1000u

static int field(char **buf, const char *v)
{
        char *s;

        /* Length-prefixed, so no choice of field contents can make two rows encode alike; NULL differs from "". */
        if (!v)
                s = strjoin(*buf, "-\n");
        else if (asprintf_safe(&s, "%s+%zu:%s\n", *buf, strlen(v), v) < 0)
                s = NULL;
        if (!s)
                return -ENOMEM;
        free(*buf);
        *buf = s;
        return 0;
}

static int audit_hash(int64_t seq, int64_t at, const char *actor, const char *action, const char *subject,
                      const char *detail, const char *prev, char ret[static 65])
{
        _cleanup_free_ char *buf = NULL;

        if (asprintf_safe(&buf, "pocketcoder-audit-v1\n%" PRId64 "\n%" PRId64 "\n", seq, at) < 0 ||
            field(&buf, actor) < 0 || field(&buf, action) < 0 || field(&buf, subject) < 0 ||
            field(&buf, detail) < 0 || field(&buf, prev) < 0)
                return -ENOMEM;
        return pc_sha256_hex(buf, strlen(buf), ret);
}

/* The recorded head: hash of the last row and the number of rows, and the seq the next row gets (what
 * AUTOINCREMENT would hand out: a row's hash covers its seq). One statement, cached: this runs for every row.
 * -ENOENT when no head is recorded (a ledger from before the chain). */
static int head_get(pc_store *s, char head[static 65], int64_t *ret_rows, int64_t *ret_next)
{
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        const char *h;
        int r;

        r = pc_store_prepare_cached(s,
                                    "SELECT (SELECT value FROM settings WHERE key = 'audit_head'), "
                                    "(SELECT value FROM settings WHERE key = 'audit_rows'), "
                                    "max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0), "
                                    "coalesce((SELECT max(seq) FROM audit), 0)) + 1",
                                    &st);
        if (r < 0)
                return r;
        if (sqlite3_step(st) != SQLITE_ROW)
                return pc_store_errno(s);
        h = (const char *) sqlite3_column_text(st, 0);
        if (!h || strlen(h) != 64 || sqlite3_column_type(st, 1) == SQLITE_NULL)
                return -ENOENT;
        memcpy(head, h, 65);
        *ret_rows = sqlite3_column_int64(st, 1);
        if (ret_next)
                *ret_next = sqlite3_column_int64(st, 2);
        return 0;
}

static int head_set(pc_store *s, const char *head, int64_t rows)
{
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        r = pc_store_prepare_cached(s,
                                    "INSERT INTO settings (key, value) VALUES ('audit_head', ?1), ('audit_rows', ?2) "
                                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                                    &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, head, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, rows);
        return sqlite3_step(st) == SQLITE_DONE ? 0 : pc_store_errno(s);
}

int pc_store_audit(pc_store *s, const char *actor, const char *action, const char *subject, const char *detail)
{
        LOCK_GUARD(&s->lock);
        _cleanup_txn_ pc_txn txn = {};
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int64_t at = (int64_t) (now_usec(CLOCK_REALTIME) / 1000000), rows = 0, seq;
        char prev[65], hash[65];
        int r;

        r = pc_txn_begin(s, &txn);
        if (r < 0)
                return r;
        r = head_get(s, prev, &rows, &seq);
        if (r == -ENOENT)
                /* Someone removed it from settings: chaining on would hide what happened. */
                return log_error_errno(EBADMSG, "audit ledger: the recorded head is missing from settings; "
                                                "refusing to write (GET /v1/audit/verify)");
        if (r < 0)
                return r;
        r = audit_hash(seq, at, actor, action, subject, detail, prev, hash);
        if (r < 0)
                return r;
        r = pc_store_prepare_cached(s,
                                    "INSERT INTO audit (seq, at, actor, action, subject, detail, prev_hash, hash) "
                                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                    &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, seq);
        sqlite3_bind_int64(st, 2, at);
        sqlite3_bind_text(st, 3, actor, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, action, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, subject, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, detail, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, prev, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, hash, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
                return pc_store_errno(s);
        r = head_set(s, hash, rows + 1);
        if (r < 0)
                return r;
        return pc_txn_commit(&txn);
}

/* A ledger from before the chain (no head recorded yet): hash its rows in order, once, in one
 * transaction. The append-only trigger lets a row without a hash get one, and nothing else. */
int pc_audit_chain_init(pc_store *s, pc_error **reterr)
{
        LOCK_GUARD(&s->lock);
        _cleanup_txn_ pc_txn txn = {};
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *up = NULL;
        char prev[65] = AUDIT_GENESIS, hash[65];
        int64_t rows = 0;
        int r, k;

        r = head_get(s, prev, &rows, NULL);
        if (r != -ENOENT)
                return r < 0 ? pc_store_error(s, reterr) : 0;
        memcpy(prev, AUDIT_GENESIS, sizeof(prev));
        rows = 0;
        /* Chained rows but no head: someone removed it. Recording a new one would accept whatever was done
         * to the ledger; the admin decides, after looking. */
        if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM audit WHERE hash IS NOT NULL LIMIT 1", -1, &st, NULL) !=
                    SQLITE_OK ||
            (k = sqlite3_step(st)) == SQLITE_ERROR)
                return pc_store_error(s, reterr);
        if (k == SQLITE_ROW)
                return pc_error_setf(
                        reterr, EBADMSG, "audit_tampered",
                        "state database: the audit ledger's rows are hash-chained but its recorded head is missing "
                        "from the settings table: it was tampered with. Inspect it (sqlite3 state.db 'SELECT * "
                        "FROM audit ORDER BY seq'); to accept the ledger as it is now and start, stop every "
                        "pocketcoderd using it and run: sqlite3 state.db \"INSERT OR REPLACE INTO settings (key, value) "
                        "VALUES ('audit_head', (SELECT hash FROM audit ORDER BY seq DESC LIMIT 1)), "
                        "('audit_rows', (SELECT count(*) FROM audit))\"");
        sqlite3_finalize(TAKE_PTR(st));
        if (pc_txn_begin(s, &txn) < 0 ||
            sqlite3_prepare_v2(s->db, "SELECT seq, at, actor, action, subject, detail FROM audit ORDER BY seq", -1,
                               &st, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(s->db, "UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", -1, &up, NULL) !=
                    SQLITE_OK)
                return pc_store_error(s, reterr);
        while ((k = sqlite3_step(st)) == SQLITE_ROW) {
                r = audit_hash(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                               (const char *) sqlite3_column_text(st, 2), (const char *) sqlite3_column_text(st, 3),
                               (const char *) sqlite3_column_text(st, 4), (const char *) sqlite3_column_text(st, 5),
                               prev, hash);
                if (r < 0)
                        return r;
                sqlite3_reset(up);
                sqlite3_bind_text(up, 1, prev, -1, SQLITE_STATIC);
                sqlite3_bind_text(up, 2, hash, -1, SQLITE_STATIC);
                sqlite3_bind_int64(up, 3, sqlite3_column_int64(st, 0));
                if (sqlite3_step(up) != SQLITE_DONE)
                        return pc_store_error(s, reterr);
                memcpy(prev, hash, sizeof(prev));
                rows++;
        }
        if (k != SQLITE_DONE || head_set(s, prev, rows) < 0 || pc_txn_commit(&txn) < 0)
                return pc_store_error(s, reterr);
        if (rows > 0)
                log_info("audit ledger: chained %" PRId64 " existing rows", rows);
        return 0;
}

static json_t *audit_row_json(sqlite3_stmt *st)
{
        json_t *j = json_object();

        if (!j)
                return NULL;
        static const char *const names[] = { "seq", "at", "actor", "action", "subject", "detail", "prev_hash", "hash" };
        for (int i = 0; i < (int) ELEMENTSOF(names); i++) {
                json_t *v = sqlite3_column_type(st, i) == SQLITE_NULL ? json_null()
                            : i < 2 ? json_integer(sqlite3_column_int64(st, i))
                                    : json_string((const char *) sqlite3_column_text(st, i));

                if (json_object_set_new(j, names[i], v) < 0) {
                        json_decref(j);
                        return NULL;
                }
        }
        return j;
}

int pc_audit_list(pc_daemon *d, uint64_t since, unsigned limit, json_t **ret, pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_json_ json_t *arr = json_array();
        int64_t last = (int64_t) since;
        int k;

        if (!arr)
                return -ENOMEM;
        if (limit == 0 || limit > AUDIT_LIST_MAX)
                return pc_error_setf(reterr, EINVAL, "invalid_query", "limit must be from 1 to %u", AUDIT_LIST_MAX);
        if (sqlite3_prepare_v2(d->store.db,
                               "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit "
                               "WHERE seq > ? ORDER BY seq LIMIT ?",
                               -1, &st, NULL) != SQLITE_OK)
                return pc_store_error(&d->store, reterr);
        sqlite3_bind_int64(st, 1, (sqlite3_int64) since);
        sqlite3_bind_int(st, 2, (int) limit);
        while ((k = sqlite3_step(st)) == SQLITE_ROW) {
                last = sqlite3_column_int64(st, 0);
                if (json_array_append_new(arr, audit_row_json(st)) < 0)
                        return -ENOMEM;
        }
        if (k != SQLITE_DONE)
                return pc_store_error(&d->store, reterr);
        *ret = json_pack("{s:O, s:I}", "audit", arr, "next", (json_int_t) last);
        return *ret ? 0 : -ENOMEM;
}

static int verify_result(json_t **ret, bool ok, int64_t rows, int64_t first_bad, const char *reason)
{
        *ret = json_pack("{s:b, s:I, s:o, s:o}", "ok", ok, "rows", (json_int_t) rows, "first_bad",
                         first_bad > 0 ? json_integer(first_bad) : json_null(), "reason",
                         reason ? json_string(reason) : json_null());
        return *ret ? 0 : -ENOMEM;
}

int pc_audit_verify(pc_daemon *d, json_t **ret, pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_txn_ pc_txn txn = {}; /* one snapshot: the rows and the head agree */
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char prev[65] = AUDIT_GENESIS, head[65], hash[65];
        int64_t rows = 0, want_rows = 0, seq = 0;
        int r, k;

        if (pc_txn_begin(&d->store, &txn) < 0)
                return pc_store_error(&d->store, reterr);
        r = head_get(&d->store, head, &want_rows, NULL);
        if (r == -ENOENT)
                return verify_result(ret, false, 0, 0, "the ledger's recorded head is missing from settings");
        if (r < 0 ||
            sqlite3_prepare_v2(d->store.db,
                               "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit "
                               "ORDER BY seq",
                               -1, &st, NULL) != SQLITE_OK)
                return pc_store_error(&d->store, reterr);
        while ((k = sqlite3_step(st)) == SQLITE_ROW) {
                const char *stored_prev = (const char *) sqlite3_column_text(st, 6);
                const char *stored = (const char *) sqlite3_column_text(st, 7);

                seq = sqlite3_column_int64(st, 0);
                if (!streq_ptr(stored_prev, prev))
                        return verify_result(ret, false, rows, seq,
                                             "prev_hash is not the hash of the row before: a row before this one "
                                             "was deleted or inserted");
                r = audit_hash(seq, sqlite3_column_int64(st, 1), (const char *) sqlite3_column_text(st, 2),
                               (const char *) sqlite3_column_text(st, 3), (const char *) sqlite3_column_text(st, 4),
                               (const char *) sqlite3_column_text(st, 5), prev, hash);
                if (r < 0)
                        return r;
                if (!streq_ptr(stored, hash))
                        return verify_result(ret, false, rows, seq,
                                             "the row's contents do not match its hash: it was edited or inserted");
                if (rows == want_rows)
                        return verify_result(ret, false, rows, seq,
                                             "the row comes after the recorded head: it was appended outside "
                                             "pocketcoderd");
                memcpy(prev, hash, sizeof(prev));
                rows++;
        }
        if (k != SQLITE_DONE)
                return pc_store_error(&d->store, reterr);
        if (rows != want_rows || !streq(prev, head))
                return verify_result(ret, false, rows, seq + 1,
                                     "the ledger ends before its recorded head: rows were deleted from its end");
        return verify_result(ret, true, rows, 0, NULL);
}
