/* SPDX-License-Identifier: MIT */
/* The per-daemon id (isolate/daemon-id.c makes it) and what a start checks with it: a state database that
 * lost it while this daemon's sandboxes still run on the host is not taken for a fresh start. */
#include "daemon-internal.h"
#include "isolate.h"

/* The per-daemon id: generated at the first start and kept in the store, so it survives restarts (the
 * names of running sandboxes' host objects contain it). A database that already holds sandboxes made
 * before ids existed keeps the unprefixed names ("" is stored), so its running sandboxes are re-adopted
 * and cleaned up under the names they have. *ret_new: not stored yet (daemon_id_store() does that). */
static int daemon_id_load(pc_daemon *d, char ret[static ISOLATE_DAEMON_ID_LEN + 1], bool *ret_new,
                          pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        const char *v;
        int r;

        if (sqlite3_prepare_v2(d->store.db, "SELECT value FROM settings WHERE key = 'daemon_id'", -1, &st, NULL) !=
            SQLITE_OK)
                return pc_store_error(&d->store, reterr);
        r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
                v = (const char *) sqlite3_column_text(st, 0);
                if (sqlite3_column_type(st, 0) != SQLITE_TEXT || !v || (!isempty(v) && !isolate_daemon_id_is_valid(v)))
                        return pc_error_setf(reterr, EBADMSG, "store_corrupt",
                                             "state database: the stored daemon id is invalid; pocketcoderd does "
                                             "not start on it. Put back a backup of state.db");
                snprintf(ret, ISOLATE_DAEMON_ID_LEN + 1, "%s", v);
                *ret_new = false;
                return 0;
        }
        if (r != SQLITE_DONE)
                return pc_store_error(&d->store, reterr);
        sqlite3_finalize(TAKE_PTR(st));
        if (sqlite3_prepare_v2(d->store.db, "SELECT count(*) FROM sandboxes", -1, &st, NULL) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_ROW)
                return pc_store_error(&d->store, reterr);
        if (sqlite3_column_int64(st, 0) > 0) {
                log_notice("the state database predates daemon ids: host-side names stay without one, so another "
                           "daemon on this host needs a different cgroup_parent");
                ret[0] = 0;
        } else {
                r = isolate_daemon_id_new(ret);
                if (r < 0)
                        return pc_error_setf(reterr, -r, "internal", "cannot generate a daemon id: %s", strerror(-r));
        }
        *ret_new = true;
        return 0;
}

static int daemon_id_store(pc_daemon *d, const char *id, pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(d->store.db, "INSERT INTO settings (key, value) VALUES ('daemon_id', ?)", -1, &st,
                               NULL) != SQLITE_OK ||
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
                return pc_store_error(&d->store, reterr);
        return 0;
}

/* The id of the daemon that last ran with this runtime directory, kept outside the database: when the
 * database is lost (missing, emptied, replaced by another daemon's), its running sandboxes are found
 * by it. The runtime directory lives as long as those sandboxes can (until reboot). */
static char *daemon_id_record_path(pc_daemon *d)
{
        return strjoin(d->config.runtime_dir, "/daemon-id");
}

/* A database without our id while sandboxes of the recorded daemon still run on this host: starting
 * would leave them running out of reach, or (same id) kill them as leftovers. Refused, unless
 * --reset-state, which stops and removes them first (their workspaces stay). */
static int check_lost_state(pc_daemon *d, const char *id, bool id_is_new, pc_error **reterr)
{
        _cleanup_free_ char *path = daemon_id_record_path(d), *old = NULL, *parent = NULL, *names = NULL;
        char **groups = NULL;
        size_t n = 0;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_full_file(path, 64, &old, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return pc_error_setf(reterr, -r, "runtime_dir", "cannot read %s: %s", path, strerror(-r));
        old[strcspn(old, "\n")] = 0;
        if (!isolate_daemon_id_is_valid(old) || (streq(old, id) && !id_is_new))
                return 0;
        r = isolate_cgroup_parent_name(d->config.cgroup_parent, old, &parent);
        if (r < 0)
                return 0;
        if (isolate_cgroup_list(parent, &groups) < 0 || !groups || !groups[0]) {
                free(groups);
                return 0;
        }
        for (char **g = groups; *g; g++) {
                n++;
                if (!d->config.reset_state) {
                        char *j = names ? strjoin(names, ", ", *g) : strdup(*g);
                        free(names);
                        names = j;
                } else {
                        isolate_sandbox_config cfg = { .name = *g, .daemon_id = old, .cgroup_parent = d->config.cgroup_parent };
                        _cleanup_pc_error_ pc_error *err = NULL;

                        log_notice("--reset-state: stopping sandbox %s of daemon %s", *g, old);
                        if (isolate_sandbox_destroy(&cfg, NULL, 0, &err) < 0)
                                log_warning("sandbox %s: %s, ignoring", *g, err ? err->message : "cannot stop it");
                        pc_agent_socket_remove_stale(d, *g);
                }
                free(*g);
        }
        free(groups);
        if (d->config.reset_state) {
                (void) isolate_cgroup_destroy_parent(parent);
                log_notice("--reset-state: %zu sandboxes of daemon %s stopped; starting with the state in %s/state.db",
                           n, old, d->config.state_dir);
                return 0;
        }
        return pc_error_setf(reterr, EEXIST, "state_lost",
                             "state database %s/state.db %s, but %zu sandboxes of daemon %s (recorded in %s) still "
                             "run on this host: %s (cgroup %s). Starting would leave them out of reach. Either stop "
                             "pocketcoderd, put back the state database (a backup of state.db) and start it again; "
                             "or start it once with --reset-state, which stops and removes those sandboxes (their "
                             "workspaces are kept) and starts with the state database as it is.",
                             d->config.state_dir, id_is_new ? "has no record of this daemon (it is missing or empty)"
                                                            : "belongs to another daemon",
                             n, old, path, strna(names), parent);
}

int pc_daemon_id_setup(pc_daemon *d, char *ret, pc_error **reterr)
{
        _cleanup_free_ char *record = NULL;
        bool is_new = false;
        int r;

        r = daemon_id_load(d, ret, &is_new, reterr);
        if (r < 0)
                return r;
        r = check_lost_state(d, ret, is_new, reterr);
        if (r < 0)
                return r;
        if (is_new) {
                r = daemon_id_store(d, ret, reterr);
                if (r < 0)
                        return r;
        }
        record = daemon_id_record_path(d);
        if (!record)
                return -ENOMEM;
        r = write_file_atomic(record, ret, strlen(ret), 0644);
        if (r < 0)
                return pc_error_setf(reterr, -r, "runtime_dir", "cannot write %s: %s", record, strerror(-r));
        return 0;
}
