/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>
#include <sys/random.h>

#include "daemon-internal.h"
#include "requests-internal.h"

/* A token is "pct_" + 12 hex id + "_" + 64 hex secret. The id finds the row without revealing anything;
 * only SHA-256(token) is stored, so the database alone never yields a usable token. The secret has 256
 * bits of entropy, which is why a fast hash (not a password KDF) is right here. */
#define TOKEN_PREFIX     "pct_"
#define TOKEN_ID_BYTES   6
#define TOKEN_SECRET_BYTES 32
#define TOKEN_ID_HEX     (TOKEN_ID_BYTES * 2)
#define TOKEN_LEN        (STRLEN(TOKEN_PREFIX) + TOKEN_ID_HEX + 1 + TOKEN_SECRET_BYTES * 2)

void pc_principal_describe(const pc_principal *p, char *buf, size_t n)
{
        if (p->agent_socket)
                snprintf(buf, n, "agent-socket:%s", p->sandbox);
        else if (p->role == PC_ROLE_SSH)
                snprintf(buf, n, "ssh:uid=%u:key=%s", (unsigned) p->uid, p->ssh_key[0] ? p->ssh_key : "-");
        else if (p->local_peer && !p->token_id[0])
                snprintf(buf, n, "local:uid=%u", (unsigned) p->uid);
        else
                snprintf(buf, n, "token:%s(%s)", p->token_id, pc_role_to_string(p->role));
}

json_t *pc_principal_to_json(const pc_principal *p)
{
        return json_pack("{s:s, s:o, s:o, s:o, s:s}", "role", pc_role_to_string(p->role), "sandbox",
                         p->role == PC_ROLE_AGENT ? json_string(p->sandbox) : json_null(), "token_id",
                         p->token_id[0] ? json_string(p->token_id) : json_null(), "uid",
                         p->local_peer ? json_integer((json_int_t) p->uid) : json_null(), "via",
                         p->agent_socket ? "agent_socket" : p->token_id[0] ? "token" : "peer_credentials");
}

static void hex(const uint8_t *in, size_t n, char *out)
{
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[in[i] >> 4];
                out[2 * i + 1] = digits[in[i] & 15];
        }
        out[2 * n] = 0;
}

static int random_bytes(uint8_t *buf, size_t n)
{
        ssize_t k = getrandom(buf, n, 0);
        if (k < 0)
                return -errno;
        return (size_t) k == n ? 0 : -EIO;
}

int pc_random_hex(char *ret, size_t n)
{
        uint8_t buf[64];
        int r;

        assert(n <= sizeof(buf));
        r = random_bytes(buf, n);
        if (r < 0)
                return r;
        hex(buf, n, ret);
        return 0;
}

static bool is_hex(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

/* Removes the tokens whose expiry has passed, each with an audit entry, in one transaction. The same
 * clock and rule as pc_daemon_authenticate(): expired from the second expires_at on. */
static void tokens_expire(pc_daemon *d)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_txn_ pc_txn txn = {};
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int k = SQLITE_ERROR;

        if (pc_txn_begin(&d->store, &txn) < 0 ||
            sqlite3_prepare_v2(d->store.db, "SELECT id FROM tokens WHERE expires_at <= unixepoch()", -1, &st,
                               NULL) != SQLITE_OK)
                goto fail;
        while ((k = sqlite3_step(st)) == SQLITE_ROW)
                if (pc_store_audit(&d->store, "daemon", "token.expire", (const char *) sqlite3_column_text(st, 0),
                                   NULL) < 0)
                        goto fail;
        if (k != SQLITE_DONE ||
            sqlite3_exec(d->store.db, "DELETE FROM tokens WHERE expires_at <= unixepoch()", NULL, NULL, NULL) !=
                    SQLITE_OK ||
            pc_txn_commit(&txn) < 0)
                goto fail;
        return;
fail:
        log_warning("cannot remove expired tokens: %s, ignoring", sqlite3_errmsg(d->store.db));
}

int pc_daemon_authenticate(pc_daemon *d, const char *token, pc_principal *ret)
{
        char id[TOKEN_ID_HEX + 1];
        uint8_t want[32], got[32] = {};
        bool found = false, expired = false, orphan = false;
        pc_principal p = {};

        if (strlen(token) != TOKEN_LEN || !startswith(token, TOKEN_PREFIX) ||
            token[STRLEN(TOKEN_PREFIX) + TOKEN_ID_HEX] != '_' ||
            !is_hex(token + STRLEN(TOKEN_PREFIX), TOKEN_ID_HEX) ||
            !is_hex(token + STRLEN(TOKEN_PREFIX) + TOKEN_ID_HEX + 1, TOKEN_SECRET_BYTES * 2))
                return -EINVAL;
        memcpy(id, token + STRLEN(TOKEN_PREFIX), TOKEN_ID_HEX);
        id[TOKEN_ID_HEX] = 0;
        if (pc_sha256(token, TOKEN_LEN, want) < 0)
                return -EIO;

        {
                /* The guard is declared first so the statement is finalized before the lock is released:
                 * the connection is shared and sqlite runs here without its own mutex. */
                LOCK_GUARD(&d->store.lock);
                _cleanup_stmt_ sqlite3_stmt *st = NULL;

                /* An agent token speaks for the sandbox it was made for (its instance), never for a later
                 * one of the same name: the join finds no sandbox once that one was deleted. */
                if (sqlite3_prepare_v2(d->store.db,
                                       "SELECT t.hash, t.role, s.name, t.expires_at FROM tokens t "
                                       "LEFT JOIN sandboxes s ON s.instance = t.sandbox_instance WHERE t.id = ?",
                                       -1, &st, NULL) != SQLITE_OK)
                        return -EIO;
                sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
                if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
                        const char *sb = (const char *) sqlite3_column_text(st, 2);

                        memcpy(got, sqlite3_column_blob(st, 0), 32);
                        p.role = pc_role_from_string((const char *) sqlite3_column_text(st, 1));
                        if (sb)
                                snprintf(p.sandbox, sizeof(p.sandbox), "%s", sb);
                        orphan = p.role == PC_ROLE_AGENT && !sb;
                        expired = sqlite3_column_type(st, 3) != SQLITE_NULL &&
                                  now_usec(CLOCK_REALTIME) >= (uint64_t) sqlite3_column_int64(st, 3) * 1000000;
                        found = true;
                }
        }
        /* Compare even when the id is unknown so timing does not tell which ids exist. */
        if (!memeql_sec(want, got, 32) || !found || p.role < 0 || orphan)
                return -EACCES;
        if (expired) {
                tokens_expire(d);
                return -EACCES;
        }
        snprintf(p.token_id, sizeof(p.token_id), "%s", id);
        p.uid = (uid_t) -1;
        *ret = p;
        return 0;
}

int pc_daemon_authenticate_agent(pc_daemon *d, const char *sandbox, const char *instance, pc_principal *ret)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(d->store.db, "SELECT 1 FROM sandboxes WHERE name = ? AND instance = ?", -1, &st,
                               NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_text(st, 1, sandbox, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, instance, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW)
                return -EACCES;
        *ret = (pc_principal){ .role = PC_ROLE_AGENT, .agent_socket = true };
        snprintf(ret->sandbox, sizeof(ret->sandbox), "%s", sandbox);
        return 0;
}

#define TOKEN_COLUMNS "id, role, sandbox, label, created_at, created_by, expires_at"

static json_t *token_json(sqlite3_stmt *st)
{
        const char *sandbox = (const char *) sqlite3_column_text(st, 2);
        const char *label = (const char *) sqlite3_column_text(st, 3);
        bool expires = sqlite3_column_type(st, 6) != SQLITE_NULL;

        return json_pack("{s:s, s:s, s:o, s:o, s:I, s:s, s:o}", "id", sqlite3_column_text(st, 0), "role",
                         sqlite3_column_text(st, 1), "sandbox", sandbox ? json_string(sandbox) : json_null(),
                         "label", label ? json_string(label) : json_null(), "created_at",
                         (json_int_t) sqlite3_column_int64(st, 4), "created_by", sqlite3_column_text(st, 5),
                         "expires_at", expires ? json_integer(sqlite3_column_int64(st, 6)) : json_null());
}

int pc_tokens_create(pc_daemon *d, const pc_principal *who, json_t *req, json_t **ret, pc_error **reterr)
{
        uint8_t raw[TOKEN_ID_BYTES + TOKEN_SECRET_BYTES], digest[32];
        char id[TOKEN_ID_HEX + 1], secret[TOKEN_SECRET_BYTES * 2 + 1], token[TOKEN_LEN + 1], actor[128];
        const char *role_s;
        pc_token_request q;
        int r;

        r = pc_token_request_parse(req, &q, reterr);
        if (r < 0)
                return r;
        role_s = pc_role_to_string(q.role);

        r = random_bytes(raw, sizeof(raw));
        if (r < 0)
                return pc_error_setf(reterr, -r, "internal", "cannot read random bytes: %s", strerror(-r));
        hex(raw, TOKEN_ID_BYTES, id);
        hex(raw + TOKEN_ID_BYTES, TOKEN_SECRET_BYTES, secret);
        explicit_bzero(raw, sizeof(raw));
        snprintf(token, sizeof(token), TOKEN_PREFIX "%s_%s", id, secret);
        explicit_bzero(secret, sizeof(secret));
        if (pc_sha256(token, TOKEN_LEN, digest) < 0)
                return pc_error_setf(reterr, EIO, "internal", "cannot hash token");
        pc_principal_describe(who, actor, sizeof(actor));

        LOCK_GUARD(&d->store.lock);
        _cleanup_txn_ pc_txn txn = {};
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_json_ json_t *j = NULL;
        _cleanup_free_ char *instance = NULL;
        uint64_t now = now_usec(CLOCK_REALTIME);

        if (pc_txn_begin(&d->store, &txn) < 0)
                return pc_store_error(&d->store, reterr);
        if (q.sandbox) {
                /* Bound to the sandbox as it is now: its identity, not its name. */
                if (sqlite3_prepare_v2(d->store.db, "SELECT instance FROM sandboxes WHERE name = ?", -1, &st,
                                       NULL) != SQLITE_OK)
                        return pc_store_error(&d->store, reterr);
                sqlite3_bind_text(st, 1, q.sandbox, -1, SQLITE_STATIC);
                r = sqlite3_step(st);
                if (r == SQLITE_DONE)
                        return pc_error_setf(reterr, ENOENT, "not_found",
                                             "sandbox \"%s\" does not exist; an agent token is for an existing "
                                             "sandbox and is removed with it",
                                             q.sandbox);
                if (r != SQLITE_ROW || !(instance = strdup((const char *) sqlite3_column_text(st, 0) ?: "")))
                        return pc_store_error(&d->store, reterr);
                sqlite3_finalize(TAKE_PTR(st));
        }
        if (sqlite3_prepare_v2(d->store.db,
                               "INSERT INTO tokens (id, role, sandbox, label, hash, created_at, created_by, "
                               "sandbox_instance, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                               "RETURNING " TOKEN_COLUMNS,
                               -1, &st, NULL) != SQLITE_OK)
                return pc_store_error(&d->store, reterr);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, role_s, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, q.sandbox, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, q.label, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 5, digest, 32, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, (sqlite3_int64) (now / 1000000));
        sqlite3_bind_text(st, 7, actor, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, instance, -1, SQLITE_STATIC);
        /* Rounded up to the second: a token lives at least its ttl. */
        if (q.ttl_seconds > 0)
                sqlite3_bind_int64(st, 9, (sqlite3_int64) ((now + q.ttl_seconds * 1000000 + 999999) / 1000000));
        if (sqlite3_step(st) != SQLITE_ROW || !(j = token_json(st)) || sqlite3_step(st) != SQLITE_DONE)
                return pc_store_error(&d->store, reterr);
        if (pc_store_audit(&d->store, actor, "token.create", id, role_s) < 0 || pc_txn_commit(&txn) < 0)
                return pc_store_error(&d->store, reterr);
        /* Shown once: the caller must keep it; we cannot show it again. */
        json_object_set_new(j, "token", json_string(token));
        explicit_bzero(token, sizeof(token));
        *ret = TAKE_PTR(j);
        return 0;
}

int pc_tokens_list(pc_daemon *d, json_t **ret, pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock); /* first: cleanups run in reverse, so the statement dies under the lock */
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_json_ json_t *arr = json_array();
        int k;

        if (!arr)
                return -ENOMEM;
        tokens_expire(d);
        if (sqlite3_prepare_v2(d->store.db, "SELECT " TOKEN_COLUMNS " FROM tokens ORDER BY created_at, id",
                               -1, &st, NULL) != SQLITE_OK)
                return pc_store_error(&d->store, reterr);
        while ((k = sqlite3_step(st)) == SQLITE_ROW)
                if (json_array_append_new(arr, token_json(st)) < 0)
                        return -ENOMEM;
        if (k != SQLITE_DONE)
                return pc_store_error(&d->store, reterr);
        *ret = json_pack("{s:O}", "tokens", arr);
        return *ret ? 0 : -ENOMEM;
}

int pc_tokens_delete(pc_daemon *d, const pc_principal *who, const char *id, pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_txn_ pc_txn txn = {};
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char actor[128];

        pc_principal_describe(who, actor, sizeof(actor));
        if (pc_txn_begin(&d->store, &txn) < 0 ||
            sqlite3_prepare_v2(d->store.db, "DELETE FROM tokens WHERE id = ?", -1, &st, NULL) != SQLITE_OK ||
            (sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC), sqlite3_step(st)) != SQLITE_DONE)
                return pc_store_error(&d->store, reterr);
        if (sqlite3_changes(d->store.db) == 0)
                return pc_error_setf(reterr, ENOENT, "not_found", "token \"%s\" does not exist", id);
        if (pc_store_audit(&d->store, actor, "token.delete", id, NULL) < 0 || pc_txn_commit(&txn) < 0)
                return pc_store_error(&d->store, reterr);
        return 0;
}
