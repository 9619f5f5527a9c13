/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include "daemon-internal.h"

/* Schema migrations, applied in order; entry i brings the schema from version i to i+1. Never edit a
 * shipped entry: append a new one. PRAGMA user_version records how far a database has come. */
static const char *const migrations[] = {
        /* 1: tokens and the append-only audit ledger. */
        "CREATE TABLE tokens ("
        "  id TEXT PRIMARY KEY,"
        "  role TEXT NOT NULL CHECK (role IN ('admin', 'relay', 'agent')),"
        "  sandbox TEXT,"
        "  label TEXT,"
        "  hash BLOB NOT NULL,"
        "  created_at INTEGER NOT NULL,"
        "  created_by TEXT NOT NULL"
        ");"
        "CREATE TABLE audit ("
        "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  at INTEGER NOT NULL,"
        "  actor TEXT NOT NULL,"
        "  action TEXT NOT NULL,"
        "  subject TEXT,"
        "  detail TEXT"
        ");"
        /* The ledger is append-only: the database itself refuses edits. */
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;"
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;",
        /* 2: sandboxes. uid_base and net_index are unique: two sandboxes never share ids or a subnet. */
        "CREATE TABLE sandboxes ("
        "  name TEXT PRIMARY KEY,"
        "  policy TEXT NOT NULL,"
        "  memory_max INTEGER NOT NULL,"
        "  swap_max INTEGER NOT NULL,"
        "  pids_max INTEGER NOT NULL,"
        "  cpu_quota_us INTEGER NOT NULL,"
        "  cpu_period_us INTEGER NOT NULL,"
        "  network TEXT NOT NULL CHECK (network IN ('none', 'loopback', 'egress')),"
        "  rootfs TEXT NOT NULL,"
        "  uid_base INTEGER NOT NULL UNIQUE,"
        "  net_index INTEGER NOT NULL UNIQUE,"
        "  state TEXT NOT NULL CHECK (state IN ('running', 'stopped')),"
        "  init_pid INTEGER,"
        "  init_starttime INTEGER,"
        "  created_at INTEGER NOT NULL,"
        "  started_at INTEGER,"
        "  stopped_at INTEGER"
        ");",
        /* 3: the event bus's log. AUTOINCREMENT: a sequence number is never handed out twice, also after
         * old events were deleted, so it is a cursor a client can resume from across restarts. */
        "CREATE TABLE events ("
        "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  at INTEGER NOT NULL,"
        "  type TEXT NOT NULL,"
        "  sandbox TEXT,"
        "  data TEXT NOT NULL"
        ");",
        /* 4: daemon-wide settings, e.g. the daemon id in every host-side name of its sandboxes. */
        "CREATE TABLE settings ("
        "  key TEXT PRIMARY KEY,"
        "  value TEXT NOT NULL"
        ");",
        /* 5: a sandbox's identity (instance: random, never re-used, unlike its name) and agent tokens bound
         * to it, removed with it (the trigger runs in the deleting statement, so in its transaction), and
         * optional token expiry. Agent tokens of sandboxes that no longer exist go now: they would
         * otherwise read the next sandbox of that name. */
        "ALTER TABLE sandboxes ADD COLUMN instance TEXT;"
        "UPDATE sandboxes SET instance = lower(hex(randomblob(16)));"
        "CREATE UNIQUE INDEX sandboxes_instance ON sandboxes (instance);"
        "ALTER TABLE tokens ADD COLUMN sandbox_instance TEXT;"
        "ALTER TABLE tokens ADD COLUMN expires_at INTEGER;"
        "UPDATE tokens SET sandbox_instance = (SELECT instance FROM sandboxes WHERE name = tokens.sandbox);"
        "DELETE FROM tokens WHERE role = 'agent' AND sandbox_instance IS NULL;"
        "CREATE TRIGGER sandboxes_delete_tokens AFTER DELETE ON sandboxes BEGIN"
        "  DELETE FROM tokens WHERE sandbox_instance = OLD.instance; END;",
        /* 6: each sandbox's workspace limit and how it is enforced. Rows from before have none. */
        "ALTER TABLE sandboxes ADD COLUMN disk_max INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE sandboxes ADD COLUMN inodes_max INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE sandboxes ADD COLUMN disk_mode TEXT NOT NULL DEFAULT 'none'"
        "  CHECK (disk_mode IN ('none', 'project', 'image'));",
        /* 7: workspaces kept by 'sandbox rm' without --purge: their files belong to uid_base's range,
         * which no other sandbox gets until a sandbox of that name takes the workspace back. */
        "CREATE TABLE kept_workspaces ("
        "  name TEXT PRIMARY KEY,"
        "  uid_base INTEGER NOT NULL UNIQUE,"
        "  disk_max INTEGER NOT NULL,"
        "  inodes_max INTEGER NOT NULL,"
        "  disk_mode TEXT NOT NULL,"
        "  kept_at INTEGER NOT NULL"
        ");",
        /* 8: a sandbox whose creation is in progress is recorded as 'creating' until it runs, so a daemon
         * killed mid-create undoes it at the next start instead of keeping a "stopped" sandbox nobody
         * was told about. SQLite cannot alter a CHECK constraint; widening one in the stored schema text
         * is its documented procedure for that (existing rows stay valid), and unlike rebuilding the
         * table it keeps whatever columns and indexes other migrations added. */
        "PRAGMA writable_schema = ON;"
        "UPDATE sqlite_schema SET sql = replace(sql, 'CHECK (state IN (''running'', ''stopped''))', "
        "  'CHECK (state IN (''creating'', ''running'', ''stopped''))') WHERE type = 'table' AND name = 'sandboxes';"
        "PRAGMA writable_schema = RESET;",
        /* 9: execs. Each is one row from its decision on: what ran (command, cwd, env, stdin: enough to start
         * a pending one after a restart), how it ended and its output, bounded by exec_output_max. */
        "CREATE TABLE execs ("
        "  id TEXT PRIMARY KEY,"
        "  sandbox TEXT NOT NULL,"
        "  instance TEXT NOT NULL,"
        "  actor TEXT NOT NULL,"
        "  command TEXT NOT NULL,"
        "  cwd TEXT NOT NULL,"
        "  env TEXT NOT NULL,"
        "  stdin BLOB,"
        "  stdin_open INTEGER NOT NULL,"
        "  timeout INTEGER NOT NULL,"
        "  state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'finished', 'denied', 'lost')),"
        "  decision TEXT NOT NULL,"
        "  remembered INTEGER NOT NULL DEFAULT 0,"
        "  permission TEXT,"
        "  reason TEXT,"
        "  exit_code INTEGER,"
        "  signal INTEGER,"
        "  timed_out INTEGER NOT NULL DEFAULT 0,"
        "  created INTEGER NOT NULL,"
        "  started INTEGER,"
        "  finished INTEGER,"
        "  duration_ms INTEGER,"
        "  cpu_user_us INTEGER,"
        "  cpu_system_us INTEGER,"
        "  memory_peak INTEGER,"
        "  stdout BLOB,"
        "  stderr BLOB,"
        "  stdout_truncated INTEGER NOT NULL DEFAULT 0,"
        "  stderr_truncated INTEGER NOT NULL DEFAULT 0"
        ");"
        "CREATE INDEX execs_sandbox ON execs (sandbox, created);"
        "CREATE INDEX execs_state ON execs (state);",
        /* 10: permission requests (an `ask` waiting for a person) and the answers remembered for a while,
         * bound to the sandbox's instance: a later sandbox of the same name does not inherit them.
         * `notified`: the exec engine was told of the decision (else it is told at the next start). */
        "CREATE TABLE permissions ("
        "  id TEXT PRIMARY KEY,"
        "  sandbox TEXT NOT NULL,"
        "  instance TEXT NOT NULL,"
        "  exec_id TEXT,"
        "  command TEXT NOT NULL,"
        "  cwd TEXT NOT NULL,"
        "  decision TEXT NOT NULL,"
        "  explanation TEXT,"
        "  state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired')),"
        "  created INTEGER NOT NULL,"
        "  expires INTEGER NOT NULL,"
        "  decided_at INTEGER,"
        "  decided_by TEXT,"
        "  scope TEXT CHECK (scope IN ('once', 'exact', 'prefix')),"
        "  minutes INTEGER,"
        "  device TEXT,"
        "  reason TEXT,"
        "  notified INTEGER NOT NULL DEFAULT 0"
        ");"
        "CREATE INDEX permissions_state ON permissions (state, expires);"
        "CREATE TABLE permission_rules ("
        "  id TEXT PRIMARY KEY,"
        "  sandbox TEXT NOT NULL,"
        "  instance TEXT NOT NULL,"
        "  scope TEXT NOT NULL CHECK (scope IN ('exact', 'prefix')),"
        "  match_key TEXT NOT NULL,"
        "  command TEXT NOT NULL,"
        "  argv TEXT,"
        "  cwd TEXT,"
        "  created INTEGER NOT NULL,"
        "  expires INTEGER NOT NULL,"
        "  permission TEXT NOT NULL,"
        "  created_by TEXT NOT NULL"
        ");"
        "CREATE INDEX permission_rules_sandbox ON permission_rules (sandbox, expires);",
        /* 11: devices and the audit hash chain. Each audit row gets the hash of the row before it and its own
         * (daemon/audit.c chains the rows that exist once, at the first start, then every new row as it is
         * written). A row may be updated only while it has no hash yet: to get one; and no row without
         * one may be inserted, so code that bypassed pc_store_audit() fails at once. A device's key is
         * unique among the devices not removed; removed ones stay, for the ledger. */
        "ALTER TABLE audit ADD COLUMN prev_hash TEXT;"
        "ALTER TABLE audit ADD COLUMN hash TEXT;"
        "DROP TRIGGER audit_no_update;"
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit WHEN OLD.hash IS NOT NULL BEGIN"
        "  SELECT RAISE(ABORT, 'audit is append-only'); END;"
        "CREATE TRIGGER audit_chained BEFORE INSERT ON audit WHEN NEW.hash IS NULL OR NEW.prev_hash IS NULL BEGIN"
        "  SELECT RAISE(ABORT, 'audit rows are written by pc_store_audit(), which chains them'); END;"
        "CREATE TABLE devices ("
        "  id TEXT PRIMARY KEY,"
        "  name TEXT NOT NULL,"
        "  public_key TEXT NOT NULL,"
        "  created INTEGER NOT NULL,"
        "  removed INTEGER"
        ");"
        "CREATE UNIQUE INDEX devices_public_key ON devices (public_key) WHERE removed IS NULL;",
        /* 12: keys: people's SSH public keys (fingerprint unique: a key is registered once) and the sandboxes
         * a scoped key reaches, by name (none: every sandbox). */
        "CREATE TABLE keys ("
        "  id TEXT PRIMARY KEY,"
        "  type TEXT NOT NULL,"
        "  base64 TEXT NOT NULL,"
        "  comment TEXT,"
        "  bits INTEGER NOT NULL,"
        "  fingerprint TEXT NOT NULL UNIQUE,"
        "  created_at INTEGER NOT NULL,"
        "  created_by TEXT NOT NULL"
        ");"
        "CREATE TABLE key_sandboxes ("
        "  key_id TEXT NOT NULL,"
        "  sandbox TEXT NOT NULL,"
        "  PRIMARY KEY (key_id, sandbox)"
        ");"
        "CREATE TRIGGER keys_delete_scope AFTER DELETE ON keys BEGIN"
        "  DELETE FROM key_sandboxes WHERE key_id = OLD.id; END;",
        /* 13: webhook deliveries (webhooks.c): one row per event and endpoint, queued from the events table
         * after `webhook_cursor`, which moves in the same transaction, so a kill -9 loses none (a delivery
         * made but not yet marked is made again: at least once). A new database starts at the newest event. */
        "CREATE TABLE webhook_deliveries ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  endpoint TEXT NOT NULL,"
        "  url TEXT NOT NULL,"
        "  seq INTEGER NOT NULL,"
        "  type TEXT NOT NULL,"
        "  body TEXT NOT NULL,"
        "  created INTEGER NOT NULL,"
        "  attempts INTEGER NOT NULL DEFAULT 0,"
        "  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),"
        "  last_status INTEGER,"
        "  last_error TEXT,"
        "  next_attempt INTEGER NOT NULL,"
        "  finished INTEGER);"
        "CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (url, state, id);"
        "CREATE TABLE webhook_cursor (seq INTEGER NOT NULL);"
        "INSERT INTO webhook_cursor SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0);",
};

/* A full filesystem is its own error (507 at the API): the admin can do something about it. */
static int sqlite_errno(sqlite3 *db)
{
        return (sqlite3_extended_errcode(db) & 0xff) == SQLITE_FULL ? -ENOSPC : -EIO;
}

/* A PRAGMA that answers one integer. */
static int pragma_int(pc_store *s, const char *sql)
{
        LOCK_GUARD(&s->lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
                return -EIO;
        return sqlite3_column_int(st, 0);
}

int pc_store_schema_version(pc_store *s)
{
        return pragma_int(s, "PRAGMA user_version");
}

static int migrate(pc_store *s, pc_error **reterr)
{
        int v = pc_store_schema_version(s);

        if (v < 0)
                return pc_error_setf(reterr, EIO, "store_error", "state database: cannot read schema version: %s",
                                     sqlite3_errmsg(s->db));
        if ((size_t) v > ELEMENTSOF(migrations))
                return pc_error_setf(reterr, EPROTO, "store_too_new",
                                     "state database has schema version %d but this pocketcoderd knows only "
                                     "up to %zu; upgrade pocketcoderd or restore a backup",
                                     v, ELEMENTSOF(migrations));
        for (size_t i = (size_t) v; i < ELEMENTSOF(migrations); i++) {
                _cleanup_free_ char *sql = NULL;
                char *err = NULL;

                if (asprintf_safe(&sql, "BEGIN IMMEDIATE; %s PRAGMA user_version = %zu; COMMIT;", migrations[i],
                                  i + 1) < 0)
                        return -ENOMEM;
                if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK) {
                        int r = pc_error_setf(reterr, EIO, "store_error",
                                              "state database: migration to version %zu failed: %s", i + 1,
                                              err ?: sqlite3_errmsg(s->db));
                        sqlite3_free(err);
                        (void) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                        return r;
                }
        }
        return 0;
}

/* The error for a database we must not start on, with the steps that get a working one back: dump what
 * can be read into a new file (.dump goes on past damaged pages; .recover would need sqlite's dbpage
 * extension, which distributions' sqlite3 lacks) and set the schema version, which .dump leaves out. */
static int store_damaged(pc_store *s, const char *path, const char *what, pc_error **reterr)
{
        _cleanup_free_ char *dir = strdup(path);
        int v = s->db ? pc_store_schema_version(s) : -1;
        char *slash = dir ? strrchr(dir, '/') : NULL;

        if (!dir)
                return -ENOMEM;
        if (slash)
                *slash = 0;
        return pc_error_setf(reterr, EBADMSG, "store_corrupt",
                             "state database %s is damaged (%s); pocketcoderd does not start on it, and running "
                             "sandboxes are left alone. To recover, stop every pocketcoderd using it, then in %s run:\n"
                             "  mkdir damaged && mv state.db* damaged/\n"
                             "  sqlite3 damaged/state.db .dump | sed 's/^ROLLBACK; -- due to errors$/COMMIT;/' | "
                             "sqlite3 state.db\n"
                             "  sqlite3 state.db 'PRAGMA user_version = %d'\n"
                             "and start pocketcoderd again: what could be read is kept, sandboxes whose rows were lost "
                             "are stopped at that start. Or put back a backup of state.db.",
                             path, what, slash ? dir : ".", v >= 0 ? v : (int) ELEMENTSOF(migrations));
}

/* Every page, record and constraint: ~30 ms for 100,000 audit rows (docs/architecture.md), so at every
 * start. integrity_check, not quick_check: it also checks indexes and UNIQUE, at no measurable extra
 * cost on this schema. */
static int check_integrity(pc_store *s, const char *path, pc_error **reterr)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *first = NULL;
        int k;

        if (sqlite3_prepare_v2(s->db, "PRAGMA integrity_check(5)", -1, &st, NULL) != SQLITE_OK)
                return store_damaged(s, path, sqlite3_errmsg(s->db), reterr);
        while ((k = sqlite3_step(st)) == SQLITE_ROW) {
                const char *line = (const char *) sqlite3_column_text(st, 0);

                if (streq_ptr(line, "ok"))
                        return 0;
                if (!first && !(first = strjoin("integrity check: ", strna(line))))
                        return -ENOMEM;
        }
        if (k != SQLITE_DONE)
                return store_damaged(s, path, sqlite3_errmsg(s->db), reterr);
        return store_damaged(s, path, first ?: "integrity check failed", reterr);
}

/* ---- state_sync = normal: the WAL syncer ----
 *
 * With WAL and synchronous=NORMAL a commit's pages are in the WAL file (write(2)) when COMMIT returns, so it
 * survives the death of this process, kill -9 included; sqlite fsyncs the WAL only before a checkpoint. An
 * OS crash or power cut may take the commits since then. This thread bounds that window, as auditd's
 * flush = INCREMENTAL_ASYNC and journald's SyncIntervalSec= do: STORE_SYNC_INTERVAL_USEC after the first
 * commit it has not synced, it fdatasync()s the WAL on an fd of its own, holding neither the store lock nor
 * anything a committer waits for; the commits of that interval share the one sync. A quiet daemon costs
 * no wake-ups. */
#define STORE_SYNC_INTERVAL_USEC (1000 * 1000)
/* sqlite's default wal_autocheckpoint (SQLITE_DEFAULT_WAL_AUTOCHECKPOINT), which a WAL hook replaces. */
#define STORE_WAL_AUTOCHECKPOINT 1000

struct pc_store_syncer {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond; /* on CLOCK_MONOTONIC */
        uint64_t commits;    /* counted by the WAL hook, after the commit's frames were written */
        uint64_t synced;     /* the commits up to this count are on disk */
        uint64_t fdatasyncs; /* made (none when there was no WAL to sync) */
        bool idle;           /* waiting for a commit: the next one wakes it */
        bool stop;
        bool failing;        /* the last sync failed (logged once) */
        char *wal_path, *dir_path;
        int fd;              /* the thread's own fd of the WAL, or -EBADF */
};

/* 1: synced; 0: there is no WAL. */
static int syncer_sync(pc_store_syncer *y)
{
        struct stat st, fst;
        int r;

        if (stat(y->wal_path, &st) < 0) {
                /* No WAL: sqlite removes it only after a checkpoint, which synced the database. */
                if (errno == ENOENT) {
                        y->fd = safe_close(y->fd);
                        return 0;
                }
                return -errno;
        }
        if (y->fd < 0 || fstat(y->fd, &fst) < 0 || fst.st_ino != st.st_ino || fst.st_dev != st.st_dev) {
                _cleanup_close_ int dfd = -EBADF;

                y->fd = safe_close(y->fd);
                y->fd = open(y->wal_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
                if (y->fd < 0)
                        return errno == ENOENT ? 0 : -errno;
                /* A new WAL file: its name must be durable too (tried again next time if not). */
                dfd = open(y->dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0 || fsync(dfd) < 0) {
                        r = -errno;
                        y->fd = safe_close(y->fd);
                        return r;
                }
        }
        return fdatasync(y->fd) < 0 ? -errno : 1;
}

static void *syncer_main(void *userdata)
{
        pc_store_syncer *y = userdata;

        pthread_mutex_lock(&y->lock);
        for (;;) {
                uint64_t target;
                bool stopping;
                int r;

                y->idle = true;
                while (!y->stop && y->commits == y->synced)
                        pthread_cond_wait(&y->cond, &y->lock);
                y->idle = false;
                /* The commits of the next interval share this sync; stopping cuts the wait short. */
                if (!y->stop) {
                        uint64_t at = now_usec(CLOCK_MONOTONIC) + STORE_SYNC_INTERVAL_USEC;
                        struct timespec ts = { .tv_sec = (time_t) (at / 1000000),
                                               .tv_nsec = (long) (at % 1000000) * 1000 };

                        while (!y->stop && pthread_cond_timedwait(&y->cond, &y->lock, &ts) != ETIMEDOUT)
                                ;
                }
                stopping = y->stop;
                target = y->commits;
                if (target != y->synced) {
                        pthread_mutex_unlock(&y->lock);
                        r = syncer_sync(y);
                        pthread_mutex_lock(&y->lock);
                        if (r < 0 && !y->failing)
                                log_error_errno(r, "state database: cannot sync %s: %m; commits since the last "
                                                   "sync may be lost to an OS crash or power cut, retrying",
                                                y->wal_path);
                        else if (r >= 0 && y->failing)
                                log_info("state database: %s synced again", y->wal_path);
                        y->failing = r < 0;
                        if (r >= 0)
                                y->synced = target;
                        if (r > 0)
                                y->fdatasyncs++;
                }
                if (stopping)
                        break;
        }
        pthread_mutex_unlock(&y->lock);
        return NULL;
}

/* Runs in the committing thread, with the store lock held, after every commit (in WAL mode). */
static int on_wal_commit(void *userdata, sqlite3 *db, const char *schema, int frames)
{
        pc_store_syncer *y = userdata;

        if (frames >= STORE_WAL_AUTOCHECKPOINT)
                (void) sqlite3_wal_checkpoint(db, schema); /* what sqlite's own hook does */
        LOCK_GUARD(&y->lock);
        y->commits++;
        if (y->idle)
                pthread_cond_signal(&y->cond);
        return SQLITE_OK;
}

static pc_store_syncer *syncer_free(pc_store_syncer *y)
{
        if (!y)
                return NULL;
        pthread_cond_destroy(&y->cond);
        pthread_mutex_destroy(&y->lock);
        safe_close(y->fd);
        free(y->wal_path);
        free(y->dir_path);
        free(y);
        return NULL;
}

static int syncer_start(pc_store *s, const char *path)
{
        pc_store_syncer *y = calloc(1, sizeof(*y));
        pthread_condattr_t attr;
        sigset_t all, old;
        char *slash;
        int r;

        if (!y)
                return -ENOMEM;
        y->fd = -EBADF;
        pthread_mutex_init(&y->lock, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&y->cond, &attr);
        pthread_condattr_destroy(&attr);
        y->wal_path = strdup(sqlite3_filename_wal(sqlite3_db_filename(s->db, "main")));
        y->dir_path = strdup(path);
        if (!y->wal_path || !y->dir_path) {
                syncer_free(y);
                return -ENOMEM;
        }
        slash = strrchr(y->dir_path, '/');
        if (slash)
                *(slash == y->dir_path ? slash + 1 : slash) = 0;
        else
                strcpy(y->dir_path, ".");
        /* No signal is ever handled in it (the daemon reads them from its loop's signalfd), and it may
         * start before the loop blocks them. */
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        r = -pthread_create(&y->thread, NULL, syncer_main, y);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
                syncer_free(y);
                return r;
        }
        s->syncer = y;
        sqlite3_wal_hook(s->db, on_wal_commit, y);
        return 0;
}

/* A last sync of whatever was committed, then the thread ends. */
static void syncer_stop(pc_store *s)
{
        pc_store_syncer *y = s->syncer;

        if (!y)
                return;
        sqlite3_wal_autocheckpoint(s->db, STORE_WAL_AUTOCHECKPOINT); /* replaces our hook */
        {
                LOCK_GUARD(&y->lock);
                y->stop = true;
                pthread_cond_signal(&y->cond);
        }
        (void) pthread_join(y->thread, NULL);
        s->syncer = syncer_free(y);
}

bool pc_store_sync_stats_get(pc_store *s, pc_store_sync_stats *ret)
{
        if (!s->syncer)
                return false;
        LOCK_GUARD(&s->syncer->lock);
        *ret = (pc_store_sync_stats){ s->syncer->commits, s->syncer->synced, s->syncer->fdatasyncs };
        return true;
}

int pc_store_synchronous(pc_store *s)
{
        return pragma_int(s, "PRAGMA synchronous");
}

int pc_store_open_sync(pc_store *s, const char *path, pc_state_sync sync, pc_error **reterr)
{
        char *err = NULL;
        int r;

        *s = (pc_store){};
        mutex_init_recursive(&s->lock);
        /* SQLITE_OPEN_NOMUTEX: we serialise ourselves; EXRESCODE for precise errors. */
        r = sqlite3_open_v2(path, &s->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                    SQLITE_OPEN_EXRESCODE,
                            NULL);
        if (r != SQLITE_OK) {
                r = pc_error_setf(reterr, EIO, "store_error", "state database %s: cannot open: %s", path,
                                  s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(r));
                pc_store_close(s);
                return r;
        }
        (void) chmod(path, 0600);
        sqlite3_busy_timeout(s->db, 5000);
        /* WAL: readers never block the writer. In both synchronous settings a commit is in the WAL file
         * (write(2)) when COMMIT returns, so an acknowledged write survives kill -9 of the daemon. FULL also
         * fsyncs the WAL at every commit (~0.3 ms here): nothing acknowledged is lost to power loss either.
         * NORMAL leaves that to the syncer thread above, which bounds what an OS crash or power cut can take
         * to the commits of about the last second; the database stays consistent in both. */
        if (sqlite3_exec(s->db,
                         sync == PC_STATE_SYNC_FULL
                                 ? "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
                                 : "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                         NULL, NULL, &err) != SQLITE_OK) {
                int c = sqlite3_extended_errcode(s->db) & 0xff;

                r = c == SQLITE_CORRUPT || c == SQLITE_NOTADB
                            ? store_damaged(s, path, err ?: sqlite3_errmsg(s->db), reterr)
                            : pc_error_setf(reterr, EIO, "store_error", "state database %s: %s", path,
                                            err ?: sqlite3_errmsg(s->db));
                sqlite3_free(err);
                pc_store_close(s);
                return r;
        }
        if (sync != PC_STATE_SYNC_FULL) {
                r = syncer_start(s, path);
                if (r < 0) {
                        pc_store_close(s);
                        return pc_error_setf(reterr, -r, "store_error",
                                             "state database %s: cannot start the WAL syncer: %s", path,
                                             strerror(-r));
                }
        }
        r = check_integrity(s, path, reterr);
        if (r >= 0)
                r = migrate(s, reterr);
        if (r >= 0)
                r = pc_audit_chain_init(s, reterr);
        if (r < 0) {
                pc_store_close(s);
                return r;
        }
        return 0;
}

int pc_store_open(pc_store *s, const char *path, pc_error **reterr)
{
        return pc_store_open_sync(s, path, PC_STATE_SYNC_NORMAL, reterr);
}

void pc_store_close(pc_store *s)
{
        syncer_stop(s);
        for (size_t i = 0; i < ELEMENTSOF(s->cache) && s->cache[i]; i++)
                sqlite3_finalize(s->cache[i]);
        if (s->db)
                sqlite3_close_v2(s->db);
        pthread_mutex_destroy(&s->lock);
        *s = (pc_store){};
}

/* Looked up by the text sqlite keeps: a caller's SQL need not outlive the call. A linear search over a
 * few dozen strings that differ early costs far less than the step that follows. */
int pc_store_prepare_cached(pc_store *s, const char *sql, sqlite3_stmt **ret)
{
        size_t i;

        for (i = 0; i < ELEMENTSOF(s->cache) && s->cache[i]; i++)
                if (streq(sqlite3_sql(s->cache[i]), sql)) {
                        if (sqlite3_stmt_busy(s->cache[i]))
                                return -EBUSY;
                        *ret = s->cache[i];
                        return 0;
                }
        if (i == ELEMENTSOF(s->cache))
                return log_error_errno(ENOBUFS, "state database: more than %d statements to cache (raise "
                                                "PC_STORE_CACHE_MAX)",
                                       PC_STORE_CACHE_MAX);
        if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->cache[i], NULL) != SQLITE_OK)
                return sqlite_errno(s->db);
        *ret = s->cache[i];
        return 0;
}

/* One cached statement without result rows. */
static int step_cached(pc_store *s, const char *sql)
{
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        r = pc_store_prepare_cached(s, sql, &st);
        if (r < 0)
                return r;
        return sqlite3_step(st) == SQLITE_DONE ? 0 : sqlite_errno(s->db);
}

/* Inside another transaction (a caller that records a change and its event together) a transaction is a
 * savepoint: it commits or rolls back with the outer one. */
int pc_txn_begin(pc_store *s, pc_txn *ret)
{
        bool nested = !sqlite3_get_autocommit(s->db);
        int r;

        r = step_cached(s, nested ? "SAVEPOINT txn" : "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        ret->store = s;
        ret->nested = nested;
        return 0;
}

int pc_txn_commit(pc_txn *t)
{
        int r;

        r = step_cached(t->store, t->nested ? "RELEASE txn" : "COMMIT");
        if (r < 0)
                return r; /* the guard rolls back */
        t->store = NULL;
        return 0;
}

void pc_txn_rollbackp(pc_txn *t)
{
        if (t->store)
                (void) sqlite3_exec(t->store->db, t->nested ? "ROLLBACK TO txn; RELEASE txn" : "ROLLBACK", NULL,
                                    NULL, NULL);
        t->store = NULL;
}

int pc_store_errno(pc_store *s)
{
        return sqlite_errno(s->db);
}

int pc_store_error(pc_store *s, pc_error **reterr)
{
        if (pc_store_errno(s) == -ENOSPC)
                return pc_error_setf(reterr, ENOSPC, "store_full",
                                     "state database: the state filesystem is full (%s); free space on it and "
                                     "try again",
                                     sqlite3_errmsg(s->db));
        return pc_error_setf(reterr, EIO, "store_error", "state database: %s", sqlite3_errmsg(s->db));
}

int pc_store_errorf(int r, pc_error **reterr, const char *what)
{
        if (r == -ENOSPC)
                return pc_error_setf(reterr, ENOSPC, "store_full",
                                     "state database: the state filesystem is full: %s. Free space on it and "
                                     "try again",
                                     what);
        return pc_error_setf(reterr, EIO, "store_error", "state database: %s: %s", what, strerror(-r));
}

int pc_store_exec(pc_store *s, const char *sql)
{
        LOCK_GUARD(&s->lock);
        return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

int pc_store_list(pc_store *s, sqlite3_stmt *st, json_t *(*row)(sqlite3_stmt *st), const char *key, json_t **ret,
                  pc_error **reterr)
{
        json_t *arr = json_array();
        int k;

        if (!arr)
                return -ENOMEM;
        while ((k = sqlite3_step(st)) == SQLITE_ROW)
                if (json_array_append_new(arr, row(st)) < 0) {
                        json_decref(arr);
                        return -ENOMEM;
                }
        if (k != SQLITE_DONE) {
                json_decref(arr);
                return pc_store_error(s, reterr);
        }
        *ret = json_pack("{s:o}", key, arr);
        return *ret ? 0 : -ENOMEM;
}

int pc_store_change_by_id(pc_store *s, const char *sql, const char *id, const char *actor, const char *action,
                          const char *what, const char *hint, pc_error **reterr)
{
        LOCK_GUARD(&s->lock);
        _cleanup_txn_ pc_txn txn = {};
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (pc_txn_begin(s, &txn) < 0 || sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK ||
            (sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC), sqlite3_step(st)) != SQLITE_DONE)
                return pc_store_error(s, reterr);
        if (sqlite3_changes(s->db) == 0)
                return pc_error_setf(reterr, ENOENT, "not_found", "%s \"%s\" does not exist%s", what, id, hint ?: "");
        if (pc_store_audit(s, actor, action, id, NULL) < 0 || pc_txn_commit(&txn) < 0)
                return pc_store_error(s, reterr);
        return 0;
}
