/* SPDX-License-Identifier: MIT */
/* People's SSH public keys: registered through the API (each with an optional scope: the sandboxes it
 * reaches), kept in the store, and written to every running sandbox's ~agent/.ssh/authorized_keys whenever
 * they change or a sandbox comes up. The same set answers sshd's AuthorizedKeysCommand for the SSH login
 * into a sandbox's tmux (ssh.c, docs/ssh.md).
 *
 * The workspace is the agent's: everything in it may be a trap. .ssh is opened beneath the workspace
 * without following any symlink (a .ssh that points at /etc is refused, nothing is written), the file is
 * made anew under a name nobody else has (O_EXCL) and renamed over authorized_keys, so a planted symlink
 * or hard link named authorized_keys is replaced, never written through. */
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "daemon-internal.h"
#include "isolate.h"
#include "requests-internal.h"

#define KEY_COLUMNS "k.id, k.type, k.base64, k.comment, k.bits, k.fingerprint, k.created_at, k.created_by"

/* Syncs run one at a time, each reading the keys after the change it follows, so the last file written
 * is always the current set (two changes racing cannot leave the older set behind). */
static pthread_mutex_t sync_lock = PTHREAD_MUTEX_INITIALIZER;

/* The scope of key `id` as a JSON array, or null for every sandbox. Under the store lock. */
static json_t *key_scope(pc_daemon *d, const char *id)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_json_ json_t *arr = json_array();
        int k;

        if (!arr || sqlite3_prepare_v2(d->store.db,
                                       "SELECT sandbox FROM key_sandboxes WHERE key_id = ? ORDER BY sandbox", -1,
                                       &st, NULL) != SQLITE_OK)
                return NULL;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        while ((k = sqlite3_step(st)) == SQLITE_ROW)
                if (json_array_append_new(arr, json_string((const char *) sqlite3_column_text(st, 0))) < 0)
                        return NULL;
        if (k != SQLITE_DONE)
                return NULL;
        return json_array_size(arr) > 0 ? TAKE_PTR(arr) : json_null();
}

static json_t *key_json(pc_daemon *d, sqlite3_stmt *st)
{
        const char *id = (const char *) sqlite3_column_text(st, 0);
        const char *type = (const char *) sqlite3_column_text(st, 1);
        const char *b64 = (const char *) sqlite3_column_text(st, 2);
        const char *comment = (const char *) sqlite3_column_text(st, 3);
        _cleanup_free_ char *line = strjoin(type, " ", b64, comment ? " " : "", comment ?: "");
        json_t *scope = key_scope(d, id);

        if (!line || !scope) {
                json_decref(scope);
                return NULL;
        }
        return json_pack("{s:s, s:s, s:s, s:o, s:i, s:s, s:o, s:I, s:s}", "id", id, "type", type, "key", line,
                         "comment", comment ? json_string(comment) : json_null(), "bits", sqlite3_column_int(st, 4),
                         "fingerprint", sqlite3_column_text(st, 5), "sandboxes", scope, "created",
                         (json_int_t) sqlite3_column_int64(st, 6), "created_by", sqlite3_column_text(st, 7));
}

/* The keys that reach sandbox NAME (unscoped ones and those scoped to it), as authorized_keys text;
 * *ret_empty when there are none. */
static int authorized_keys_text(pc_daemon *d, const char *name, char **ret, size_t *ret_n, bool *ret_empty)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        char *buf = NULL;
        size_t n = 0;
        bool empty = true;
        int k;

        f = open_memstream(&buf, &n);
        if (!f)
                return -ENOMEM;
        fputs("# Written by pocketcoderd: the keys registered with 'pocketcoder keys add' that reach this sandbox.\n"
              "# Changes here are replaced at the next key change or start.\n",
              f);
        if (sqlite3_prepare_v2(d->store.db,
                               "SELECT type, base64, comment FROM keys k WHERE "
                               "NOT EXISTS (SELECT 1 FROM key_sandboxes s WHERE s.key_id = k.id) OR "
                               "EXISTS (SELECT 1 FROM key_sandboxes s WHERE s.key_id = k.id AND s.sandbox = ?) "
                               "ORDER BY created_at, id",
                               -1, &st, NULL) != SQLITE_OK) {
                fclose(TAKE_PTR(f));
                free(buf);
                return -EIO;
        }
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        while ((k = sqlite3_step(st)) == SQLITE_ROW) {
                const char *comment = (const char *) sqlite3_column_text(st, 2);
                fprintf(f, "%s %s%s%s\n", sqlite3_column_text(st, 0), sqlite3_column_text(st, 1), comment ? " " : "",
                        comment ?: "");
                empty = false;
        }
        if (fclose(TAKE_PTR(f)) != 0 || k != SQLITE_DONE) {
                free(buf);
                return k != SQLITE_DONE ? -EIO : -ENOMEM;
        }
        *ret = buf;
        *ret_n = n;
        *ret_empty = empty;
        return 0;
}

/* Replaces WORKSPACE/.ssh/authorized_keys with DATA, owned by the agent (uid_base + its uid), mode 0600 in
 * a 0700 .ssh. Without keys (`empty`) a workspace that has no .ssh is left as it is. */
static int write_authorized_keys(pc_daemon *d, const char *name, uid_t uid_base, const char *data, size_t n,
                                 bool empty)
{
        _cleanup_free_ char *ws = strjoin(d->config.state_dir, "/workspaces/", name);
        _cleanup_close_ int wsfd = -EBADF, sshfd = -EBADF, fd = -EBADF;
        uid_t uid = uid_base + ISOLATE_AGENT_UID;
        gid_t gid = (gid_t) uid_base + ISOLATE_AGENT_GID;
        char tmp[64];
        struct stat st;
        int r;

        if (!ws)
                return -ENOMEM;
        wsfd = open(ws, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (wsfd < 0)
                return -errno;
        if (empty && fstatat(wsfd, ".ssh", &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
                return 0;
        if (mkdirat(wsfd, ".ssh", 0700) < 0 && errno != EEXIST)
                return -errno;
        sshfd = isolate_openat_beneath(wsfd, ".ssh", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
        if (sshfd < 0)
                return sshfd;
        if (fstat(sshfd, &st) < 0)
                return -errno;
        /* The directory the daemon opened, whatever happens to the name meanwhile: the agent's. */
        if ((st.st_uid != uid && fchown(sshfd, uid, gid) < 0) ||
            ((st.st_mode & 07777) != 0700 && fchmod(sshfd, 0700) < 0))
                return -errno;
        for (unsigned attempt = 0;; attempt++) {
                uint32_t rnd;

                if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
                        return -EIO;
                snprintf(tmp, sizeof(tmp), ".authorized_keys.pocketcoder-%08x", rnd);
                fd = openat(sshfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd >= 0)
                        break;
                if (errno != EEXIST || attempt >= 8)
                        return -errno;
        }
        r = write_all(fd, data, n);
        if (r >= 0 && (fchown(fd, uid, gid) < 0 || fchmod(fd, 0600) < 0 || fsync(fd) < 0))
                r = -errno;
        if (r >= 0 && renameat(sshfd, tmp, sshfd, "authorized_keys") < 0)
                r = -errno;
        if (r < 0)
                (void) unlinkat(sshfd, tmp, 0);
        return r;
}

static int sync_one(pc_daemon *d, const char *name, uid_t uid_base)
{
        _cleanup_free_ char *text = NULL;
        size_t n;
        bool empty;
        int r;

        r = authorized_keys_text(d, name, &text, &n, &empty);
        if (r >= 0)
                r = write_authorized_keys(d, name, uid_base, text, n, empty);
        if (r == -ELOOP || r == -EXDEV || r == -ENOTDIR)
                log_warning_errno(-r, "sandbox %s: cannot write ~agent/.ssh/authorized_keys: %m (.ssh is not a "
                                      "directory of the workspace, e.g. a symlink the agent planted: refused)",
                                  name);
        else if (r < 0)
                log_warning_errno(-r, "sandbox %s: cannot write ~agent/.ssh/authorized_keys: %m", name);
        return r;
}

void pc_keys_sync_sandbox(pc_daemon *d, const char *name, uid_t uid_base)
{
        LOCK_GUARD(&sync_lock);
        (void) sync_one(d, name, uid_base);
}

/* Every running sandbox. A sandbox that cannot be written to (its agent planted a symlink) does not stop
 * the others. */
static void sync_all(pc_daemon *d)
{
        LOCK_GUARD(&sync_lock);
        _cleanup_json_ json_t *running = json_array();
        size_t i;
        json_t *v;

        if (!running)
                return;
        {
                LOCK_GUARD(&d->store.lock);
                _cleanup_stmt_ sqlite3_stmt *st = NULL;

                if (sqlite3_prepare_v2(d->store.db, "SELECT name, uid_base FROM sandboxes WHERE state = 'running'", -1,
                                       &st, NULL) != SQLITE_OK)
                        return;
                while (sqlite3_step(st) == SQLITE_ROW)
                        json_array_append_new(running, json_pack("[s, I]", sqlite3_column_text(st, 0),
                                                                 (json_int_t) sqlite3_column_int64(st, 1)));
        }
        json_array_foreach(running, i, v)
                (void) sync_one(d, json_string_value(json_array_get(v, 0)),
                                (uid_t) json_integer_value(json_array_get(v, 1)));
}

static void key_request_done(pc_key_request *q)
{
        pc_sshkey_done(&q->key);
}

int pc_keys_add(pc_daemon *d, const pc_principal *who, json_t *req, json_t **ret, pc_error **reterr)
{
        _cleanup_(key_request_done) pc_key_request q = {};
        char actor[128];
        size_t i;
        json_t *v;
        int r;

        r = pc_key_request_parse(req, &q, reterr);
        if (r < 0)
                return r;
        pc_principal_describe(who, actor, sizeof(actor));
        {
                LOCK_GUARD(&d->store.lock);
                _cleanup_txn_ pc_txn txn = {};
                _cleanup_stmt_ sqlite3_stmt *st = NULL, *scope = NULL;
                _cleanup_event_pending_ pc_event_pending ev = {};
                _cleanup_json_ json_t *j = NULL;
                _cleanup_free_ char *id = NULL;

                if (pc_txn_begin(&d->store, &txn) < 0)
                        return pc_store_error(&d->store, reterr);
                if (sqlite3_prepare_v2(d->store.db, "SELECT id FROM keys WHERE fingerprint = ?", -1, &st, NULL) !=
                    SQLITE_OK)
                        return pc_store_error(&d->store, reterr);
                sqlite3_bind_text(st, 1, q.key.fingerprint, -1, SQLITE_STATIC);
                if (sqlite3_step(st) == SQLITE_ROW)
                        return pc_error_setf(reterr, EEXIST, "conflict",
                                             "key %s is already registered (id %s); remove it first to change its "
                                             "scope",
                                             q.key.fingerprint, sqlite3_column_text(st, 0));
                sqlite3_finalize(TAKE_PTR(st));

                if (sqlite3_prepare_v2(d->store.db,
                                       "INSERT INTO keys (id, type, base64, comment, bits, fingerprint, created_at, "
                                       "created_by) VALUES (lower(hex(randomblob(8))), ?, ?, ?, ?, ?, unixepoch(), ?) "
                                       "RETURNING id",
                                       -1, &st, NULL) != SQLITE_OK)
                        return pc_store_error(&d->store, reterr);
                sqlite3_bind_text(st, 1, q.key.type, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, q.key.base64, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 3, q.key.comment, -1, SQLITE_STATIC);
                sqlite3_bind_int(st, 4, (int) q.key.bits);
                sqlite3_bind_text(st, 5, q.key.fingerprint, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 6, actor, -1, SQLITE_STATIC);
                if (sqlite3_step(st) != SQLITE_ROW || !(id = strdup((const char *) sqlite3_column_text(st, 0))) ||
                    sqlite3_step(st) != SQLITE_DONE)
                        return pc_store_error(&d->store, reterr);
                sqlite3_finalize(TAKE_PTR(st));

                json_array_foreach(q.sandboxes, i, v) {
                        const char *name = json_string_value(v);

                        if (sqlite3_prepare_v2(d->store.db, "SELECT 1 FROM sandboxes WHERE name = ?", -1, &st, NULL) !=
                            SQLITE_OK)
                                return pc_store_error(&d->store, reterr);
                        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
                        r = sqlite3_step(st);
                        if (r == SQLITE_DONE)
                                return pc_error_setf(reterr, ENOENT, "not_found",
                                                     "sandbox \"%s\" does not exist; a key is scoped to existing "
                                                     "sandboxes",
                                                     name);
                        if (r != SQLITE_ROW)
                                return pc_store_error(&d->store, reterr);
                        sqlite3_finalize(TAKE_PTR(st));
                        if (!scope &&
                            sqlite3_prepare_v2(d->store.db, "INSERT INTO key_sandboxes (key_id, sandbox) VALUES (?, ?)",
                                               -1, &scope, NULL) != SQLITE_OK)
                                return pc_store_error(&d->store, reterr);
                        sqlite3_reset(scope);
                        sqlite3_bind_text(scope, 1, id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(scope, 2, name, -1, SQLITE_STATIC);
                        if (sqlite3_step(scope) != SQLITE_DONE)
                                return pc_store_error(&d->store, reterr);
                }

                if (sqlite3_prepare_v2(d->store.db, "SELECT " KEY_COLUMNS " FROM keys k WHERE id = ?", -1, &st, NULL) !=
                            SQLITE_OK ||
                    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW ||
                    !(j = key_json(d, st)))
                        return pc_store_error(&d->store, reterr);
                r = pc_store_audit(&d->store, actor, "key.add", id, q.key.fingerprint);
                if (r < 0)
                        return pc_store_errorf(r, reterr, "the key cannot be recorded");
                r = pc_event_record(d, PC_EVENT_KEY_ADDED, NULL,
                                    json_pack("{s:s, s:s}", "id", id, "fingerprint", q.key.fingerprint), &ev);
                if (r < 0 || (r = pc_txn_commit(&txn)) < 0)
                        return pc_store_errorf(r, reterr, "the key cannot be recorded");
                pc_event_deliver(d, &ev);
                *ret = TAKE_PTR(j);
        }
        log_info("key %s (%s) added by %s", json_string_value(json_object_get(*ret, "id")), q.key.fingerprint, actor);
        sync_all(d);
        return 0;
}

int pc_keys_list(pc_daemon *d, json_t **ret, pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_json_ json_t *arr = json_array();
        int k;

        if (!arr)
                return -ENOMEM;
        if (sqlite3_prepare_v2(d->store.db, "SELECT " KEY_COLUMNS " FROM keys k ORDER BY created_at, id", -1, &st,
                               NULL) != SQLITE_OK)
                return pc_store_error(&d->store, reterr);
        while ((k = sqlite3_step(st)) == SQLITE_ROW) {
                json_t *j = key_json(d, st);
                if (!j || json_array_append_new(arr, j) < 0)
                        return pc_store_error(&d->store, reterr);
        }
        if (k != SQLITE_DONE)
                return pc_store_error(&d->store, reterr);
        *ret = json_pack("{s:O}", "keys", arr);
        return *ret ? 0 : -ENOMEM;
}

int pc_keys_delete(pc_daemon *d, const pc_principal *who, const char *id, pc_error **reterr)
{
        char actor[128];
        int r;

        pc_principal_describe(who, actor, sizeof(actor));
        {
                LOCK_GUARD(&d->store.lock);
                _cleanup_txn_ pc_txn txn = {};
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                _cleanup_event_pending_ pc_event_pending ev = {};
                _cleanup_free_ char *fingerprint = NULL;

                if (pc_txn_begin(&d->store, &txn) < 0 ||
                    sqlite3_prepare_v2(d->store.db, "DELETE FROM keys WHERE id = ? RETURNING fingerprint", -1, &st,
                                       NULL) != SQLITE_OK)
                        return pc_store_error(&d->store, reterr);
                sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
                r = sqlite3_step(st);
                if (r == SQLITE_DONE)
                        return pc_error_setf(reterr, ENOENT, "not_found", "key \"%s\" does not exist", id);
                if (r != SQLITE_ROW || !(fingerprint = strdup((const char *) sqlite3_column_text(st, 0))) ||
                    sqlite3_step(st) != SQLITE_DONE)
                        return pc_store_error(&d->store, reterr);
                r = pc_store_audit(&d->store, actor, "key.remove", id, fingerprint);
                if (r < 0)
                        return pc_store_errorf(r, reterr, "the removal cannot be recorded");
                r = pc_event_record(d, PC_EVENT_KEY_REMOVED, NULL,
                                    json_pack("{s:s, s:s}", "id", id, "fingerprint", fingerprint), &ev);
                if (r < 0 || (r = pc_txn_commit(&txn)) < 0)
                        return pc_store_errorf(r, reterr, "the removal cannot be recorded");
                pc_event_deliver(d, &ev);
                log_info("key %s (%s) removed by %s", id, fingerprint, actor);
        }
        sync_all(d);
        return 0;
}

int pc_keys_ssh_check(pc_daemon *d, const char *key, const char *sandbox, json_t **ret, pc_error **reterr)
{
        _cleanup_(pc_sshkey_done) pc_sshkey k = {};
        int r;

        r = pc_sshkey_parse(key, strlen(key), &k, reterr);
        if (r < 0)
                return r;
        if (sandbox && !name_is_valid(sandbox))
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "\"%s\" is not a sandbox name: log in with 'ssh -t pocketcoder@HOST SANDBOX'",
                                     sandbox);

        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_json_ json_t *j = NULL;
        json_t *scope;

        if (sqlite3_prepare_v2(d->store.db, "SELECT " KEY_COLUMNS " FROM keys k WHERE fingerprint = ?", -1, &st,
                               NULL) != SQLITE_OK)
                return pc_store_error(&d->store, reterr);
        sqlite3_bind_text(st, 1, k.fingerprint, -1, SQLITE_STATIC);
        r = sqlite3_step(st);
        if (r == SQLITE_DONE)
                return pc_error_setf(reterr, ENOENT, "not_found", "key %s is not registered", k.fingerprint);
        if (r != SQLITE_ROW || !(j = key_json(d, st)))
                return pc_store_error(&d->store, reterr);
        scope = json_object_get(j, "sandboxes");
        if (sandbox && json_is_array(scope)) {
                bool found = false;
                size_t i;
                json_t *v;

                json_array_foreach(scope, i, v)
                        found = found || streq(json_string_value(v), sandbox);
                if (!found)
                        return pc_error_setf(reterr, EACCES, "forbidden",
                                             "key %s may not log in to sandbox \"%s\"", k.fingerprint, sandbox);
        }
        *ret = TAKE_PTR(j);
        return 0;
}
