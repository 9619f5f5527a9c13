/* SPDX-License-Identifier: MIT */
/* The sandbox manager: the sandboxes table, uid-range and subnet allocation, lifecycle through isolate/,
 * re-adoption after a daemon restart. The store is the truth for what exists; the in-memory entries hold
 * the live handles. isolate/ owns each sandbox's whole host footprint: a row becomes one
 * isolate_sandbox_config (sandbox_spec_init), and starting, stopping, deleting and cleaning up after a
 * crash are isolate_sandbox_create() and isolate_sandbox_destroy(). A per-sandbox "busy" flag lets slow
 * work (starting takes milliseconds, stopping up to seconds) run without holding the manager lock. */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "daemon-internal.h"
#include "isolate.h"
#include "policies.h"
#include "requests-internal.h"

#define UID_COUNT       65536u
#define MAX_SANDBOXES   4096u

typedef struct sandbox_entry {
        char name[64];
        isolate_sandbox *sb; /* NULL when stopped */
        pc_watch *watch;     /* the loop's watch of init's pidfd, while running */
        pc_agent_socket *agent; /* while running */
        bool busy;           /* a lifecycle operation is in progress */
} sandbox_entry;

struct pc_sandbox_manager {
        pthread_mutex_t lock;
        sandbox_entry *entries;
        size_t n_entries;
        int seccomp_fd; /* compiled once: every sandbox and exec loads the same filter */
        char daemon_id[ISOLATE_DAEMON_ID_LEN + 1]; /* in every host-side name (see daemon_id_load); "": none */
        char *cgroup_parent; /* the group that holds our sandboxes' groups: cgroup_parent-daemon_id */
        bool table_synced;   /* the nftables table was brought in line with the running sandboxes at start */
};

/* A row's state: 'creating' until the sandbox first runs (undone at the next start if the daemon died
 * meanwhile), then 'running' or 'stopped'. */
typedef enum {
        ROW_CREATING,
        ROW_RUNNING,
        ROW_STOPPED,
        _ROW_STATE_MAX,
} row_state;

static const char *const row_state_table[_ROW_STATE_MAX] = {
        [ROW_CREATING] = "creating",
        [ROW_RUNNING] = "running",
        [ROW_STOPPED] = "stopped",
};

/* One row, as stored. */
typedef struct sandbox_row {
        char name[64];
        char policy[64];
        isolate_limits limits;
        isolate_net_mode network;
        char rootfs[64];
        uid_t uid_base;
        uint32_t net_index;
        row_state state;
        pid_t init_pid;
        uint64_t init_starttime;
        int64_t created_at, started_at, stopped_at;
        char instance[33]; /* the identity agent tokens and agent connections are bound to */
        uint64_t disk_max, inodes_max; /* the workspace's limit (0: none) */
        isolate_disk_mode disk_mode;
} sandbox_row;

static const char *daemon_id_or_null(const pc_sandbox_manager *m)
{
        return m->daemon_id[0] ? m->daemon_id : NULL;
}

static sandbox_entry *entry_find(pc_sandbox_manager *m, const char *name)
{
        for (size_t i = 0; i < m->n_entries; i++)
                if (streq(m->entries[i].name, name))
                        return &m->entries[i];
        return NULL;
}

static sandbox_entry *entry_add(pc_sandbox_manager *m, const char *name)
{
        sandbox_entry *n = realloc(m->entries, (m->n_entries + 1) * sizeof(*n));

        if (!n)
                return NULL;
        m->entries = n;
        n = &m->entries[m->n_entries++];
        *n = (sandbox_entry){};
        snprintf(n->name, sizeof(n->name), "%s", name);
        return n;
}

static void entry_remove(pc_sandbox_manager *m, const char *name)
{
        sandbox_entry *e = entry_find(m, name);

        if (!e)
                return;
        isolate_sandbox_free(e->sb);
        pc_watch_free(e->watch);
        pc_agent_socket_free(e->agent, true);
        *e = m->entries[--m->n_entries];
}

#define ROW_COLUMNS                                                                                       \
        "name, policy, memory_max, swap_max, pids_max, cpu_quota_us, cpu_period_us, network, rootfs, "    \
        "uid_base, net_index, state, init_pid, init_starttime, created_at, started_at, stopped_at, instance, " \
        "disk_max, inodes_max, disk_mode, rowid"
#define ROW_ROWID 21
static const char *const row_column_names[] = {
        "name", "policy", "memory_max", "swap_max", "pids_max", "cpu_quota_us", "cpu_period_us", "network", "rootfs",
        "uid_base", "net_index", "state", "init_pid", "init_starttime", "created_at", "started_at", "stopped_at",
        "instance", "disk_max", "inodes_max", "disk_mode",
};

/* Column i as an integer in [min, max]; NULL (when `nullable`) is -1. Anything else is corrupt. */
static bool column_int(sqlite3_stmt *st, int i, int64_t min, int64_t max, bool nullable, int64_t *ret)
{
        int64_t v;

        if (sqlite3_column_type(st, i) == SQLITE_NULL) {
                *ret = -1;
                return nullable;
        }
        if (sqlite3_column_type(st, i) != SQLITE_INTEGER)
                return false;
        v = sqlite3_column_int64(st, i);
        *ret = v;
        return v >= min && v <= max;
}

/* Column i as a name (name_is_valid(), so also safe in paths) copied into buf[64]. */
static bool column_name(sqlite3_stmt *st, int i, char buf[static 64])
{
        const char *v = (const char *) sqlite3_column_text(st, i);

        if (sqlite3_column_type(st, i) != SQLITE_TEXT || !v || !name_is_valid(v) || strlen(v) >= 64)
                return false;
        strcpy(buf, v);
        return true;
}

/* Column i as a sandbox's identity: 32 lowercase hex digits, copied into buf[33]. */
static bool column_instance(sqlite3_stmt *st, int i, char buf[static 33])
{
        const char *v = (const char *) sqlite3_column_text(st, i);

        if (sqlite3_column_type(st, i) != SQLITE_TEXT || !v || strlen(v) != 32 ||
            strspn(v, "0123456789abcdef") != 32)
                return false;
        strcpy(buf, v);
        return true;
}

/* Column i as the index of its text in table[n], or -EBADMSG. */
static int column_enum(sqlite3_stmt *st, int i, const char *const *table, size_t n)
{
        const char *v = (const char *) sqlite3_column_text(st, i);

        for (size_t k = 0; sqlite3_column_type(st, i) == SQLITE_TEXT && v && k < n; k++)
                if (streq(v, table[k]))
                        return (int) k;
        return -EBADMSG;
}

/* Every column is untrusted: the file may have been damaged or edited by hand. A value that could not
 * have been written by us (NULL, another type, out of range, a name unsafe in a path) makes the row
 * corrupt: "store_corrupt" (-EIO: a 500 at the API) naming the row and the column, never a guess. */
static int row_from_stmt(sqlite3_stmt *st, sandbox_row *r, pc_error **reterr)
{
        static const char *const networks[] = { "none", "loopback", "egress" };
        static const char *const disk_modes[] = { "none", "project", "image" }; /* isolate_disk_mode */
        int64_t v[ROW_ROWID] = {};
        int bad = -1, net = -1, state = -1, disk = -1;

        *r = (sandbox_row){};
        if (!column_name(st, 0, r->name))
                bad = 0;
        else if (!column_name(st, 1, r->policy))
                bad = 1;
        for (int i = 2; bad < 0 && i <= 5; i++) /* limits */
                if (!column_int(st, i, 0, INT64_MAX, false, &v[i]))
                        bad = i;
        /* A CPU quota needs a period (it is divided by it). */
        if (bad < 0 && !column_int(st, 6, v[5] > 0 ? 1 : 0, INT64_MAX, false, &v[6]))
                bad = 6;
        if (bad < 0 && (net = column_enum(st, 7, networks, ELEMENTSOF(networks))) < 0)
                bad = 7;
        if (bad < 0 && !column_name(st, 8, r->rootfs))
                bad = 8;
        /* Never 0 (sandbox root would be host root), and the whole range fits in a uid_t. */
        if (bad < 0 && !column_int(st, 9, 1, (int64_t) UINT32_MAX - UID_COUNT, false, &v[9]))
                bad = 9;
        if (bad < 0 && !column_int(st, 10, 0, MAX_SANDBOXES - 1, false, &v[10]))
                bad = 10;
        if (bad < 0 && (state = column_enum(st, 11, row_state_table, _ROW_STATE_MAX)) < 0)
                bad = 11;
        /* A running sandbox's init: pid and start time, as adoption checks them. */
        if (bad < 0 && !column_int(st, 12, 1, INT32_MAX, state != ROW_RUNNING, &v[12]))
                bad = 12;
        if (bad < 0 && !column_int(st, 13, 0, INT64_MAX, state != ROW_RUNNING, &v[13]))
                bad = 13;
        for (int i = 14; bad < 0 && i <= 16; i++) /* times; only created_at is always set */
                if (!column_int(st, i, INT64_MIN, INT64_MAX, i > 14, &v[i]))
                        bad = i;
        if (bad < 0 && !column_instance(st, 17, r->instance))
                bad = 17;
        if (bad < 0 && !column_int(st, 18, 0, INT64_MAX, false, &v[18]))
                bad = 18;
        if (bad < 0 && !column_int(st, 19, 0, UINT32_MAX, false, &v[19]))
                bad = 19;
        if (bad < 0 && (disk = column_enum(st, 20, disk_modes, ELEMENTSOF(disk_modes))) < 0)
                bad = 20;
        if (bad >= 0)
                return pc_error_setf(reterr, EIO, "store_corrupt",
                                     "state database: sandbox row %lld (\"%s\") is corrupt: column %s holds an "
                                     "invalid value",
                                     (long long) sqlite3_column_int64(st, ROW_ROWID), bad == 0 ? "?" : r->name,
                                     row_column_names[bad]);
        r->limits.memory_max = (uint64_t) v[2];
        r->limits.swap_max = (uint64_t) v[3];
        r->limits.pids_max = (uint64_t) v[4];
        r->limits.cpu_quota_us = (uint64_t) v[5];
        r->limits.cpu_period_us = (uint64_t) v[6];
        r->network = (isolate_net_mode) net;
        r->uid_base = (uid_t) v[9];
        r->net_index = (uint32_t) v[10];
        r->state = (row_state) state;
        r->init_pid = r->state == ROW_RUNNING ? (pid_t) v[12] : 0;
        r->init_starttime = r->state == ROW_RUNNING ? (uint64_t) v[13] : 0;
        r->created_at = v[14];
        r->started_at = v[15];
        r->stopped_at = v[16];
        r->disk_max = (uint64_t) v[18];
        r->inodes_max = (uint64_t) v[19];
        r->disk_mode = (isolate_disk_mode) disk;
        return 0;
}

/* -ENOENT (*reterr untouched), or -EIO/-ENOSPC with *reterr set (a corrupt row included) */
static int row_load(pc_daemon *d, const char *name, sandbox_row *ret, pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int k;

        if (pc_store_prepare_cached(&d->store, "SELECT " ROW_COLUMNS " FROM sandboxes WHERE name = ?", &st) < 0)
                return pc_store_error(&d->store, reterr);
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        k = sqlite3_step(st);
        if (k == SQLITE_DONE)
                return -ENOENT;
        if (k != SQLITE_ROW)
                return pc_store_error(&d->store, reterr);
        return row_from_stmt(st, ret, reterr);
}


/* Records NAME's new state (sb: the running sandbox, for its init) with its audit entry and event. */
static int row_set_state(pc_daemon *d, const char *name, row_state state, isolate_sandbox *sb, const char *actor,
                         const char *action, pc_event_type event, json_t *event_data)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(d->store.db,
                               state == ROW_RUNNING ? "UPDATE sandboxes SET state = ?1, init_pid = ?2, init_starttime = ?3, "
                                                      "started_at = ?4 WHERE name = ?5"
                                                    : "UPDATE sandboxes SET state = ?1, init_pid = NULL, "
                                                      "init_starttime = NULL, stopped_at = ?4 WHERE name = ?5",
                               -1, &st, NULL) != SQLITE_OK) {
                json_decref(event_data);
                return pc_store_errno(&d->store);
        }
        sqlite3_bind_text(st, 1, row_state_table[state], -1, SQLITE_STATIC);
        if (state == ROW_RUNNING) {
                sqlite3_bind_int64(st, 2, isolate_sandbox_pid(sb));
                sqlite3_bind_int64(st, 3, (sqlite3_int64) isolate_sandbox_starttime(sb));
        }
        sqlite3_bind_int64(st, 4, (sqlite3_int64) (now_usec(CLOCK_REALTIME) / 1000000));
        sqlite3_bind_text(st, 5, name, -1, SQLITE_STATIC);
        return pc_change_record(d, st, NULL, name, actor, action, NULL, event, name, event_data);
}

/* Deletes NAME's row, with its audit entry and its sandbox.deleted event (see pc_change_record()). With
 * `kept` (the row of a sandbox whose workspace 'sandbox rm' keeps), the same transaction records the kept
 * workspace: its files belong to the sandbox's uid range, held back from other sandboxes until a sandbox
 * of the same name takes it back (with its disk limit). */
static int row_delete(pc_daemon *d, const char *name, const sandbox_row *kept, const char *actor,
                      const char *action, const char *detail, json_t *event_data)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *keep = NULL;

        if (sqlite3_prepare_v2(d->store.db, "DELETE FROM sandboxes WHERE name = ?", -1, &st, NULL) != SQLITE_OK ||
            (kept && sqlite3_prepare_v2(d->store.db,
                                        "INSERT OR REPLACE INTO kept_workspaces (name, uid_base, disk_max, inodes_max, "
                                        "disk_mode, kept_at) VALUES (?, ?, ?, ?, ?, ?)",
                                        -1, &keep, NULL) != SQLITE_OK)) {
                json_decref(event_data);
                return pc_store_errno(&d->store);
        }
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (kept) {
                sqlite3_bind_text(keep, 1, kept->name, -1, SQLITE_STATIC);
                sqlite3_bind_int64(keep, 2, kept->uid_base);
                sqlite3_bind_int64(keep, 3, (sqlite3_int64) kept->disk_max);
                sqlite3_bind_int64(keep, 4, (sqlite3_int64) kept->inodes_max);
                sqlite3_bind_text(keep, 5, isolate_disk_mode_to_string(kept->disk_mode), -1, SQLITE_STATIC);
                sqlite3_bind_int64(keep, 6, (sqlite3_int64) (now_usec(CLOCK_REALTIME) / 1000000));
        }
        return pc_change_record(d, st, keep, name, actor, action, detail, PC_EVENT_SANDBOX_DELETED, name,
                                event_data);
}

static char *workspace_path(pc_daemon *d, const char *name)
{
        return strjoin(d->config.state_dir, "/workspaces/", name);
}

static char *overlay_path(pc_daemon *d, const char *name)
{
        return strjoin(d->config.state_dir, "/overlays/", name);
}

static char *disk_image_path(pc_daemon *d, const char *name)
{
        return strjoin(d->config.state_dir, "/disks/", name, ".img");
}

static char *image_path(pc_daemon *d, const char *rootfs)
{
        return strjoin(d->config.state_dir, "/images/", rootfs);
}

/* Everything isolate/ needs to know about one sandbox, derived from its row. */
typedef struct sandbox_spec {
        isolate_sandbox_config cfg;
        isolate_net_config net;
        isolate_limits limits; /* the row's, with the config's cpu_weight */
        char *workspace, *image, *overlay, *disk_image;
} sandbox_spec;

static void sandbox_spec_done(sandbox_spec *s)
{
        free(s->workspace);
        free(s->image);
        free(s->overlay);
        free(s->disk_image);
        *s = (sandbox_spec){};
}

static int sandbox_spec_init(pc_daemon *d, const sandbox_row *row, sandbox_spec *ret)
{
        pc_sandbox_manager *m = d->sandboxes;

        *ret = (sandbox_spec){
                .net = {
                        .mode = row->network,
                        .index = row->net_index,
                        .subnet = d->config.egress_subnet,
                        .nft_table = d->config.nft_table,
                        .egress_allow = d->config.egress_allow,
                },
                .limits = row->limits,
                .workspace = workspace_path(d, row->name),
                .disk_image = disk_image_path(d, row->name),
        };
        ret->limits.cpu_weight = d->config.cpu_weight;
        if (!streq(row->rootfs, "host")) {
                ret->image = image_path(d, row->rootfs);
                ret->overlay = overlay_path(d, row->name);
        }
        if (!ret->workspace || !ret->disk_image || (!streq(row->rootfs, "host") && (!ret->image || !ret->overlay))) {
                sandbox_spec_done(ret);
                return -ENOMEM;
        }
        ret->cfg = (isolate_sandbox_config){
                .name = row->name,
                .daemon_id = daemon_id_or_null(m),
                .workspace = ret->workspace,
                .uid_base = row->uid_base,
                .uid_count = UID_COUNT,
                .rootfs_image = ret->image,
                .overlay_dir = ret->overlay,
                .cgroup_parent = d->config.cgroup_parent,
                .limits = &ret->limits,
                .net = &ret->net,
                .seccomp_fd = m->seccomp_fd,
                .nofile_max = d->config.nofile_max,
                .disk_mode = row->disk_mode,
                .disk_max = row->disk_max,
                .inodes_max = row->inodes_max,
                .disk_image = ret->disk_image,
        };
        return 0;
}

/* Missing kernel features are errors that name them, never a silently weaker sandbox. */
static int check_host(pc_daemon *d, const sandbox_row *row, pc_error **reterr)
{
        json_t *h = d->host_caps, *ns = json_object_get(h, "namespaces"), *cg = json_object_get(h, "cgroup");
        static const char *const namespaces[] = { "user", "mount", "pid", "net", "uts", "ipc", "cgroup" };
        const char *key;
        json_t *v;

        if (!h)
                return pc_error_setf(reterr, EOPNOTSUPP, "host_unsupported",
                                     "host capabilities could not be probed; see the daemon log");
        for (size_t i = 0; i < ELEMENTSOF(namespaces); i++)
                if (!json_is_true(json_object_get(ns, namespaces[i])))
                        return pc_error_setf(reterr, EOPNOTSUPP, "host_unsupported",
                                             "%s namespaces cannot be created here (the kernel, a sysctl, a "
                                             "chroot or a container forbids them), and sandboxes need them",
                                             namespaces[i]);
        if (!json_is_true(json_object_get(json_object_get(h, "seccomp"), "filter")))
                return pc_error_setf(reterr, EOPNOTSUPP, "host_unsupported",
                                     "this kernel has no seccomp filters, which sandboxes need");
        json_object_foreach(json_object_get(cg, "controllers"), key, v)
                if (!json_is_true(v))
                        return pc_error_setf(reterr, EOPNOTSUPP, "host_unsupported",
                                             "the cgroup %s controller is not available or not writable here "
                                             "(cgroup %s); sandboxes need it to enforce limits",
                                             key, json_string_value(json_object_get(cg, "version")));
        if (!streq(row->rootfs, "host") && !json_is_true(json_object_get(h, "overlayfs")))
                return pc_error_setf(reterr, EOPNOTSUPP, "host_unsupported",
                                     "image rootfs needs overlayfs, which this kernel lacks");
        return 0;
}

/* Brings a stored sandbox up (isolate/ builds all of it) with its agent socket. Called without the
 * manager lock, with the entry marked busy. */
static int bring_up(pc_daemon *d, const sandbox_row *row, isolate_sandbox **ret_sb, pc_agent_socket **ret_agent,
                    pc_error **reterr)
{
        _cleanup_(sandbox_spec_done) sandbox_spec spec = {};
        pc_agent_socket *agent = NULL;
        struct stat st;
        int r;

        r = check_host(d, row, reterr);
        if (r < 0)
                return r;
        r = sandbox_spec_init(d, row, &spec);
        if (r < 0)
                return r;
        if (spec.image && (stat(spec.image, &st) < 0 || !S_ISDIR(st.st_mode)))
                return pc_error_setf(reterr, ENOENT, "not_found",
                                     "image \"%s\" does not exist; build it with 'pocketcoder image build %s'",
                                     row->rootfs, row->rootfs);
        r = pc_agent_socket_new(d, row->name, row->instance, &agent, reterr);
        if (r < 0)
                return r;
        spec.cfg.api_socket_dir = pc_agent_socket_dir(agent);
        r = isolate_sandbox_create(&spec.cfg, ret_sb, reterr);
        if (r < 0) {
                pc_agent_socket_free(agent, true);
                return r;
        }
        *ret_agent = agent;
        return 0;
}

/* Tears a sandbox down to "stopped" (flags: also its data, see isolate_sandbox_destroy()). Idempotent;
 * `sb` may be NULL (leftovers of a crash). Failures are logged; with reterr they are the caller's to
 * report (a delete must not claim to have removed what is still there). */
static int bring_down(pc_daemon *d, const sandbox_row *row, isolate_sandbox *sb, unsigned flags, pc_error **reterr)
{
        _cleanup_(sandbox_spec_done) sandbox_spec spec = {};
        _cleanup_pc_error_ pc_error *err = NULL;
        int r;

        r = sandbox_spec_init(d, row, &spec);
        if (r >= 0)
                r = isolate_sandbox_destroy(&spec.cfg, sb, flags, &err);
        if (r >= 0)
                return 0;
        if (!reterr) {
                log_warning("sandbox %s: %s, ignoring", row->name, err ? err->message : strerror(-r));
                return r;
        }
        log_warning("sandbox %s: %s", row->name, err ? err->message : strerror(-r));
        if (err) {
                *reterr = TAKE_PTR(err);
                return r;
        }
        return pc_error_setf(reterr, -r, "internal", "sandbox %s: %s", row->name, strerror(-r));
}

/* Smallest free slot among those the rows of FROM use (EXPR over them), so ranges are reused after
 * deletion. The uid base is bound as ?1 where EXPR mentions it. Called with the store lock held. */
#define UID_RANGE_SQL "?1"
#define UID_RANGES_USED "(SELECT uid_base FROM sandboxes UNION ALL SELECT uid_base FROM kept_workspaces)"
static int allocate_slot(pc_daemon *d, const char *expr, const char *from, uint64_t *ret)
{
        _cleanup_free_ char *sql = NULL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        uint64_t want = 0;

        if (asprintf_safe(&sql, "SELECT %s AS slot FROM %s ORDER BY slot", expr, from) < 0)
                return -ENOMEM;
        if (sqlite3_prepare_v2(d->store.db, sql, -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        if (sqlite3_bind_parameter_count(st) > 0)
                sqlite3_bind_int64(st, 1, (sqlite3_int64) d->config.uid_range_base);
        while (sqlite3_step(st) == SQLITE_ROW) {
                uint64_t v = (uint64_t) sqlite3_column_int64(st, 0);
                if (v == want)
                        want++;
                else if (v > want)
                        break;
        }
        if (want >= MAX_SANDBOXES)
                return -ENOSPC;
        *ret = want;
        return 0;
}

/* The workspace's limit in "limits" and how it is enforced and used in "disk". */
static void disk_json(pc_daemon *d, const sandbox_row *row, json_t *limits, json_t *j)
{
        _cleanup_(sandbox_spec_done) sandbox_spec spec = {};
        uint64_t bytes, inodes;
        json_t *disk;

        json_object_set_new(limits, "disk_max", json_integer((json_int_t) row->disk_max));
        json_object_set_new(limits, "inodes_max", json_integer((json_int_t) row->inodes_max));
        disk = json_pack("{s:s}", "quota", isolate_disk_mode_to_string(row->disk_mode));
        if (disk && sandbox_spec_init(d, row, &spec) >= 0 && isolate_disk_usage(&spec.cfg, &bytes, &inodes) >= 0) {
                json_object_set_new(disk, "used_bytes", json_integer((json_int_t) bytes));
                json_object_set_new(disk, "used_inodes", json_integer((json_int_t) inodes));
        }
        if (disk && row->disk_mode == ISOLATE_DISK_IMAGE)
                json_object_set_new(disk, "image_host_path", json_string(spec.disk_image));
        json_object_set_new(j, "disk", disk ?: json_null());
}

static json_t *sandbox_json(pc_daemon *d, const sandbox_row *row, const sandbox_entry *e)
{
        _cleanup_free_ char *ws = workspace_path(d, row->name);
        isolate_usage u = {};
        json_t *usage = json_null(), *j;
        bool running = e && e->sb;

        if (running && isolate_sandbox_usage(e->sb, &u) >= 0)
                usage = json_pack("{s:I, s:I, s:I, s:I, s:I}", "memory_current", (json_int_t) u.memory_current,
                                  "memory_peak", (json_int_t) u.memory_peak, "pids_current",
                                  (json_int_t) u.pids_current, "cpu_usage_usec", (json_int_t) u.cpu_usage_usec,
                                  "oom_kills", (json_int_t) u.oom_kills);
        j = json_pack("{s:s, s:s, s:s, s:{s:I, s:I, s:I, s:o}, s:s, s:s, s:o, s:o, s:o, s:s, s:I, s:I, s:o, s:o, s:o}",
                      "name", row->name, "state", e && e->busy ? "busy" : running ? "running" : "stopped", "policy",
                      row->policy, "limits", "memory_max", (json_int_t) row->limits.memory_max, "swap_max",
                      (json_int_t) row->limits.swap_max, "pids_max", (json_int_t) row->limits.pids_max, "cpus",
                      row->limits.cpu_quota_us ? json_real((double) row->limits.cpu_quota_us /
                                                           (double) row->limits.cpu_period_us)
                                               : json_null(),
                      "network", pc_net_to_string(row->network), "rootfs", row->rootfs, "init_pid",
                      running ? json_integer(isolate_sandbox_pid(e->sb)) : json_null(), "cgroup_path",
                      running && isolate_sandbox_cgroup_path(e->sb) ? json_string(isolate_sandbox_cgroup_path(e->sb))
                                                                    : json_null(), "usage", usage,
                      "workspace_host_path", ws ?: "", "uid_base", (json_int_t) row->uid_base, "created_at",
                      (json_int_t) row->created_at, "started_at",
                      row->started_at >= 0 ? json_integer(row->started_at) : json_null(), "stopped_at",
                      row->stopped_at >= 0 ? json_integer(row->stopped_at) : json_null(), "tmux_session",
                      running ? json_string(row->name) : json_null());
        if (j)
                json_object_set_new(j, "cgroup_parent", json_string(d->sandboxes->cgroup_parent));
        /* Limits from the daemon's config, the same for every sandbox (applied when it starts). */
        if (j) {
                json_t *limits = json_object_get(j, "limits");
                json_object_set_new(limits, "nofile_max", json_integer((json_int_t) d->config.nofile_max));
                json_object_set_new(limits, "cpu_weight", json_integer((json_int_t) d->config.cpu_weight));
                json_object_set_new(limits, "tmpfs_size",
                                    json_integer((json_int_t) isolate_tmpfs_size(&row->limits)));
        }
        if (j)
                disk_json(d, row, json_object_get(j, "limits"), j);
        if (j && running)
                json_object_set_new(j, "init_starttime", json_integer((json_int_t) isolate_sandbox_starttime(e->sb)));
        return j;
}

/* A sandbox is up: its handles, the loop's watch of its init (so an exit is recorded at once, not at the
 * next request) and its agent socket. */
static void entry_up(pc_daemon *d, sandbox_entry *e, isolate_sandbox *sb, pc_agent_socket *agent)
{
        int r;

        e->sb = sb;
        e->agent = agent;
        r = pc_watch_new(d, isolate_sandbox_pidfd(sb), pc_sandboxes_reap, &e->watch);
        if (r < 0)
                log_warning_errno(r, "sandbox %s: cannot watch its init: %m; its exit is noticed at the next "
                                     "request, ignoring", e->name);
}

/* The loop-side companions of a sandbox that stopped: the watch, and the agent socket with its path. */
static void entry_down(sandbox_entry *e)
{
        e->watch = pc_watch_free(e->watch);
        e->agent = pc_agent_socket_free(e->agent, true);
}

/* Notices sandboxes whose init died since we last looked (the agent cannot kill it, but the OOM killer
 * or an admin can): they are recorded as stopped and their leftovers cleaned. A record that cannot be
 * written is retried at the next start (the row still says running, with an init that is gone). Called
 * with m->lock held. */
static void reap_dead(pc_daemon *d)
{
        pc_sandbox_manager *m = d->sandboxes;

        for (size_t i = 0; i < m->n_entries; i++) {
                sandbox_entry *e = &m->entries[i];
                sandbox_row row;
                int r;

                if (e->busy || !e->sb || isolate_sandbox_is_running(e->sb))
                        continue;
                pid_t pid = isolate_sandbox_pid(e->sb);

                if (row_load(d, e->name, &row, NULL) >= 0)
                        bring_down(d, &row, e->sb, 0, NULL);
                e->sb = isolate_sandbox_free(e->sb);
                entry_down(e);
                r = row_set_state(d, e->name, ROW_STOPPED, NULL, "daemon", "sandbox.exited", PC_EVENT_SANDBOX_STOPPED,
                                  json_pack("{s:s, s:s}", "reason", "exited", "actor", "daemon"));
                if (r < 0)
                        log_error_errno(r, "sandbox %s: init (pid %d) exited, but this cannot be recorded: %m; "
                                           "recorded at the next start", e->name, pid);
                else
                        log_notice("sandbox %s: init (pid %d) exited; recorded as stopped", e->name, pid);
        }
}

void pc_sandboxes_reap(pc_daemon *d, void *userdata)
{
        LOCK_GUARD(&d->sandboxes->lock);
        reap_dead(d);
}

/* A row that is 'creating' exists for clients only while its create runs (its entry is busy): one
 * whose create failed and could not remove it is undone at the next create of that name or start. */
static bool row_visible(pc_daemon *d, const sandbox_row *row)
{
        sandbox_entry *e = entry_find(d->sandboxes, row->name);

        return row->state != ROW_CREATING || (e && e->busy);
}

int pc_sandboxes_list(pc_daemon *d, const pc_principal *who, json_t **ret, pc_error **reterr)
{
        LOCK_GUARD(&d->sandboxes->lock);
        _cleanup_json_ json_t *arr = json_array();
        int k, r;

        reap_dead(d);
        {
                LOCK_GUARD(&d->store.lock);
                _cleanup_stmt_ sqlite3_stmt *st = NULL;

                if (sqlite3_prepare_v2(d->store.db, "SELECT " ROW_COLUMNS " FROM sandboxes ORDER BY name", -1, &st,
                                       NULL) != SQLITE_OK)
                        return pc_store_error(&d->store, reterr);
                while ((k = sqlite3_step(st)) == SQLITE_ROW) {
                        sandbox_row row;

                        r = row_from_stmt(st, &row, reterr);
                        if (r < 0)
                                return r;
                        if ((who->role == PC_ROLE_AGENT && !streq(row.name, who->sandbox)) || !row_visible(d, &row))
                                continue;
                        json_array_append_new(arr, sandbox_json(d, &row, entry_find(d->sandboxes, row.name)));
                }
                if (k != SQLITE_DONE)
                        return pc_store_error(&d->store, reterr);
        }
        *ret = json_pack("{s:O}", "sandboxes", arr);
        return *ret ? 0 : -ENOMEM;
}

static int may_touch(const pc_principal *who, const char *name, pc_error **reterr)
{
        if (who->role == PC_ROLE_AGENT && !streq(who->sandbox, name))
                return pc_error_setf(reterr, EACCES, "forbidden",
                                     "this agent token is scoped to sandbox \"%s\", not \"%s\"", who->sandbox, name);
        return 0;
}

/* NAME's row as clients see it (see row_visible()); errors are set. */
static int row_load_visible(pc_daemon *d, const char *name, sandbox_row *row, pc_error **reterr)
{
        int r = row_load(d, name, row, reterr);

        if (r == -ENOENT || (r >= 0 && !row_visible(d, row)))
                return pc_error_setf(reterr, ENOENT, "not_found", "sandbox \"%s\" does not exist", name);
        return r;
}

/* NAME's row for WHO, who may touch it, after the sandboxes whose init exited are recorded as stopped
 * (manager lock held). */
static int row_load_for(pc_daemon *d, const pc_principal *who, const char *name, sandbox_row *row,
                        pc_error **reterr)
{
        int r = may_touch(who, name, reterr);

        if (r < 0)
                return r;
        reap_dead(d);
        return row_load_visible(d, name, row, reterr);
}

int pc_sandboxes_show(pc_daemon *d, const pc_principal *who, const char *name, json_t **ret, pc_error **reterr)
{
        LOCK_GUARD(&d->sandboxes->lock);
        sandbox_row row;
        int r;

        r = row_load_for(d, who, name, &row, reterr);
        if (r < 0)
                return r;
        *ret = sandbox_json(d, &row, entry_find(d->sandboxes, name));
        return *ret ? 0 : -ENOMEM;
}

/* Marks NAME busy (it must exist in the store); returns the row. */
static int begin_op(pc_daemon *d, const char *name, sandbox_row *row, sandbox_entry **ret, pc_error **reterr)
{
        pc_sandbox_manager *m = d->sandboxes;
        sandbox_entry *e;
        int r;

        reap_dead(d);
        r = row_load_visible(d, name, row, reterr);
        if (r < 0)
                return r;
        e = entry_find(m, name) ?: entry_add(m, name);
        if (!e)
                return -ENOMEM;
        if (e->busy)
                return pc_error_setf(reterr, EBUSY, "busy",
                                     "sandbox \"%s\" is being started or stopped; try again when it is done", name);
        e->busy = true;
        *ret = e;
        return 0;
}

/* The workspace a new sandbox gets, decided with the store lock held: a workspace kept by 'sandbox rm' for
 * this name is taken back with its uid range (*ret_kept) and, for an image, its size; anything else found
 * at the workspace's place (a failed purge, a copy made by hand) is refused rather than handed to a new
 * sandbox. A new workspace gets the request's limit or the config's, enforced the way the state
 * filesystem allows. */
static int workspace_decide(pc_daemon *d, const pc_sandbox_request *q, sandbox_row *row, bool *ret_kept,
                            pc_error **reterr)
{
        _cleanup_free_ char *ws = workspace_path(d, row->name), *img = disk_image_path(d, row->name),
                            *disks = strjoin(d->config.state_dir, "/disks");
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        bool found;
        int k, r;

        if (!ws || !img || !disks)
                return -ENOMEM;
        found = access(ws, F_OK) >= 0 || access(img, F_OK) >= 0;
        if (sqlite3_prepare_v2(d->store.db,
                               "SELECT uid_base, disk_max, inodes_max, disk_mode FROM kept_workspaces WHERE name = ?",
                               -1, &st, NULL) != SQLITE_OK)
                return pc_store_error(&d->store, reterr);
        sqlite3_bind_text(st, 1, row->name, -1, SQLITE_STATIC);
        k = sqlite3_step(st);
        if (k != SQLITE_ROW && k != SQLITE_DONE)
                return pc_store_error(&d->store, reterr);
        *ret_kept = k == SQLITE_ROW && found;
        if (k == SQLITE_ROW && !found) {
                /* Removed by hand since: its uid range is free again. */
                sqlite3_finalize(TAKE_PTR(st));
                if (sqlite3_prepare_v2(d->store.db, "DELETE FROM kept_workspaces WHERE name = ?", -1, &st, NULL) !=
                            SQLITE_OK ||
                    sqlite3_bind_text(st, 1, row->name, -1, SQLITE_STATIC) != SQLITE_OK ||
                    sqlite3_step(st) != SQLITE_DONE)
                        return pc_store_error(&d->store, reterr);
        }
        if (*ret_kept) {
                row->uid_base = (uid_t) sqlite3_column_int64(st, 0);
                if (streq((const char *) sqlite3_column_text(st, 3), "image")) {
                        /* The image's filesystem has the size it was made with. */
                        row->disk_mode = ISOLATE_DISK_IMAGE;
                        row->disk_max = (uint64_t) sqlite3_column_int64(st, 1);
                        row->inodes_max = (uint64_t) sqlite3_column_int64(st, 2);
                        if ((q->has_disk && q->disk_max != row->disk_max) ||
                            (q->has_inodes && q->inodes_max != row->inodes_max))
                                return pc_error_setf(reterr, EEXIST, "workspace_kept",
                                                     "sandbox \"%s\" has a kept workspace on a %" PRIu64
                                                     "-byte disk image with %" PRIu64 " inodes; create it without "
                                                     "--disk/--inodes to take it back, or remove it first with "
                                                     "'pocketcoder sandbox create %s' and 'sandbox rm --purge %s'",
                                                     row->name, row->disk_max, row->inodes_max, row->name, row->name);
                        return 0;
                }
        } else if (found)
                return pc_error_setf(reterr, EEXIST, "workspace_exists",
                                     "a workspace for sandbox \"%s\" is left over at %s (or its disk image at %s) "
                                     "and was not kept by 'sandbox rm': a purge that failed, or files put there by "
                                     "hand. It is not given to a new sandbox: move it away or delete it",
                                     row->name, ws, img);
        row->disk_max = q->has_disk ? q->disk_max : d->config.sandbox_disk;
        if (row->disk_max == 0) {
                if (q->has_inodes)
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"inodes\" needs a disk limit (field \"disk\")");
                return 0;
        }
        row->inodes_max = q->has_inodes ? q->inodes_max : d->config.sandbox_inodes ?: row->disk_max / 16384;
        r = mkdir_p(ws, 0750); /* its parent, and itself: probed where it will be */
        if (r >= 0)
                r = isolate_disk_probe(ws, &row->disk_mode);
        if (r >= 0 && !*ret_kept)
                (void) rmdir(ws);
        if (r >= 0 && row->disk_mode == ISOLATE_DISK_IMAGE)
                r = mkdir_p(disks, 0700);
        if (r < 0)
                return pc_error_setf(reterr, -r, "workspace", "cannot prepare the workspaces of %s: %s",
                                     d->config.state_dir, strerror(-r));
        if (*ret_kept && row->disk_mode == ISOLATE_DISK_IMAGE) {
                /* The kept workspace is a plain directory: an image mounted over it would hide its files. */
                if (q->has_disk && row->disk_max > 0)
                        return pc_error_setf(reterr, EEXIST, "workspace_kept",
                                             "sandbox \"%s\" has a kept workspace without a disk limit at %s, and "
                                             "a disk image cannot take it over; create it with --disk none, or "
                                             "move its files away first",
                                             row->name, ws);
                row->disk_mode = ISOLATE_DISK_NONE;
                row->disk_max = row->inodes_max = 0;
                return 0;
        }
        if (row->disk_mode == ISOLATE_DISK_NONE) {
                /* No mechanism here (a container without loop devices, a filesystem without project
                 * quotas): an explicit limit is refused; the config's default is dropped, visibly. */
                if (q->has_disk)
                        return pc_error_setf(reterr, EOPNOTSUPP, "host_unsupported",
                                             "workspace disk limits need project quotas on the filesystem of %s "
                                             "or loop devices (/dev/loop-control), and this host has neither; "
                                             "create the sandbox with --disk none",
                                             d->config.state_dir);
                log_warning("sandbox %s: no disk limit for its workspace: this host has neither project quotas "
                            "nor loop devices (pocketcoder status shows workspace_quota none)", row->name);
                row->disk_max = row->inodes_max = 0;
        }
        return 0;
}

/* Whether a workspace of NAME is kept by 'sandbox rm' (1), or not (0). */
static int kept_exists(pc_daemon *d, const char *name)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int k;

        if (sqlite3_prepare_v2(d->store.db, "SELECT 1 FROM kept_workspaces WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
                return pc_store_errno(&d->store);
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        k = sqlite3_step(st);
        return k == SQLITE_ROW ? 1 : k == SQLITE_DONE ? 0 : pc_store_errno(&d->store);
}

/* Undoes a create that did not finish (the daemon died, or its failure could not be recorded): whatever
 * isolate/ made for it goes (destroying is idempotent; a workspace stays, as after any failed create),
 * then its row. */
static int undo_create(pc_daemon *d, const sandbox_row *row, isolate_sandbox *sb)
{
        int r;

        /* A workspace taken back from 'sandbox rm' stays kept; a new one (anything else at its place is
         * refused before the row exists) was made by this create and goes. */
        r = kept_exists(d, row->name);
        bring_down(d, row, sb, ISOLATE_DESTROY_ROOTFS |
                                       (r > 0 ? ISOLATE_DESTROY_RELEASE_WORKSPACE : ISOLATE_DESTROY_PURGE_WORKSPACE),
                   NULL);
        pc_agent_socket_remove_stale(d, row->name);
        r = row_delete(d, row->name, NULL, NULL, NULL, NULL, NULL);
        if (r < 0)
                return log_error_errno(r, "sandbox %s: its unfinished creation was undone, but its record cannot be "
                                          "removed: %m; it is removed at the next create of that name or start",
                                       row->name);
        log_notice("sandbox %s: unfinished creation undone", row->name);
        return 0;
}

/* Reserves the name, uid range and subnet in the store as a 'creating' row, so concurrent creates cannot
 * collide and a daemon killed before the sandbox runs undoes it at its next start. Fills in row's slots,
 * its workspace limit and its identity; *ret_kept: the workspace is one kept by 'sandbox rm'. Called with
 * the manager lock held. */
static int reserve(pc_daemon *d, const pc_sandbox_request *q, sandbox_row *row, bool *ret_kept, pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        sandbox_row old;
        uint64_t slot, net_index;
        int r;

        r = row_load(d, row->name, &old, reterr);
        if (r >= 0 && old.state == ROW_CREATING && !entry_find(d->sandboxes, row->name)) {
                r = undo_create(d, &old, NULL);
                if (r < 0)
                        return pc_store_errorf(r, reterr, "an unfinished earlier creation of this name cannot be removed");
                r = -ENOENT;
        }
        if (r >= 0 || entry_find(d->sandboxes, row->name))
                return pc_error_setf(reterr, EEXIST, "exists", "sandbox \"%s\" already exists", row->name);
        if (r != -ENOENT)
                return r;
        r = workspace_decide(d, q, row, ret_kept, reterr);
        if (r < 0)
                return r;
        if (!*ret_kept && allocate_slot(d, "(uid_base - " UID_RANGE_SQL ") / 65536", UID_RANGES_USED, &slot) < 0)
                return pc_error_setf(reterr, EUSERS, "no_space", "no free uid range for another sandbox");
        if (allocate_slot(d, "net_index", "sandboxes", &net_index) < 0)
                return pc_error_setf(reterr, EUSERS, "no_space", "no free subnet for another sandbox");
        if (!*ret_kept)
                row->uid_base = (uid_t) (d->config.uid_range_base + slot * UID_COUNT);
        row->net_index = (uint32_t) net_index;
        if (sqlite3_prepare_v2(d->store.db,
                               "INSERT INTO sandboxes (name, policy, memory_max, swap_max, pids_max, "
                               "cpu_quota_us, cpu_period_us, network, rootfs, uid_base, net_index, state, "
                               "created_at, disk_max, inodes_max, disk_mode, instance) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'creating', ?, ?, ?, ?, "
                               "lower(hex(randomblob(16)))) RETURNING instance",
                               -1, &st, NULL) != SQLITE_OK)
                return pc_store_error(&d->store, reterr);
        sqlite3_bind_text(st, 1, row->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, row->policy, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64) row->limits.memory_max);
        sqlite3_bind_int64(st, 4, (sqlite3_int64) row->limits.swap_max);
        sqlite3_bind_int64(st, 5, (sqlite3_int64) row->limits.pids_max);
        sqlite3_bind_int64(st, 6, (sqlite3_int64) row->limits.cpu_quota_us);
        sqlite3_bind_int64(st, 7, (sqlite3_int64) row->limits.cpu_period_us);
        sqlite3_bind_text(st, 8, pc_net_to_string(row->network), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 9, row->rootfs, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 10, row->uid_base);
        sqlite3_bind_int64(st, 11, row->net_index);
        sqlite3_bind_int64(st, 12, (sqlite3_int64) (now_usec(CLOCK_REALTIME) / 1000000));
        sqlite3_bind_int64(st, 13, (sqlite3_int64) row->disk_max);
        sqlite3_bind_int64(st, 14, (sqlite3_int64) row->inodes_max);
        sqlite3_bind_text(st, 15, isolate_disk_mode_to_string(row->disk_mode), -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW)
                return pc_store_error(&d->store, reterr);
        snprintf(row->instance, sizeof(row->instance), "%s", sqlite3_column_text(st, 0));
        if (sqlite3_step(st) != SQLITE_DONE)
                return pc_store_error(&d->store, reterr);
        row->state = ROW_CREATING;
        return 0;
}

int pc_sandboxes_create(pc_daemon *d, const pc_principal *who, json_t *req, json_t **ret, pc_error **reterr)
{
        pc_sandbox_manager *m = d->sandboxes;
        sandbox_row row = {};
        pc_sandbox_request q;
        const char *name, *network;
        char actor[128];
        isolate_sandbox *sb = NULL;
        pc_agent_socket *agent = NULL;
        sandbox_entry *e;
        bool kept = false;
        int r;

        r = pc_sandbox_request_parse(req, &q, reterr);
        if (r < 0)
                return r;
        r = pc_state_space_check(d, reterr);
        if (r < 0)
                return r;
        r = pc_policies_exists(d, q.policy);
        if (r <= 0)
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "policy \"%s\" is not loaded (see 'pocketcoder policy list')", q.policy);
        name = q.name;
        network = pc_net_to_string(q.network);
        snprintf(row.name, sizeof(row.name), "%s", q.name);
        snprintf(row.policy, sizeof(row.policy), "%s", q.policy);
        snprintf(row.rootfs, sizeof(row.rootfs), "%s", q.rootfs);
        row.network = q.network;
        row.limits = q.limits;
        pc_principal_describe(who, actor, sizeof(actor));

        {
                LOCK_GUARD(&m->lock);

                r = reserve(d, &q, &row, &kept, reterr);
                if (r < 0)
                        return r;
                e = entry_add(m, name);
                if (!e) {
                        (void) undo_create(d, &row, NULL);
                        return -ENOMEM;
                }
                e->busy = true;
        }

        r = bring_up(d, &row, &sb, &agent, reterr);
        /* The sandbox exists for clients once this is stored: the 201 never precedes it, and a failure
         * undoes the sandbox (a create is all or nothing). */
        if (r >= 0) {
                r = row_set_state(d, name, ROW_RUNNING, sb, actor, "sandbox.create", PC_EVENT_SANDBOX_CREATED,
                                  json_pack("{s:s, s:s, s:s, s:s, s:i}", "actor", actor, "policy", row.policy,
                                            "network", network, "rootfs", row.rootfs, "init_pid",
                                            (int) isolate_sandbox_pid(sb)));
                if (r < 0) {
                        pc_store_errorf(r, reterr, "the new sandbox cannot be recorded, so it was removed again");
                        pc_agent_socket_free(TAKE_PTR(agent), true);
                        bring_down(d, &row, sb, ISOLATE_DESTROY_ROOTFS, NULL);
                        sb = isolate_sandbox_free(sb);
                }
        }

        LOCK_GUARD(&m->lock);
        e = entry_find(m, name);
        if (r < 0) {
                /* isolate/ removed what it made (or bring_down above did); the reservation goes too. */
                entry_remove(m, name);
                (void) undo_create(d, &row, NULL);
                log_warning("sandbox %s: creation failed: %s", name, reterr && *reterr ? (*reterr)->message : strerror(-r));
                return r;
        }
        e->busy = false;
        entry_up(d, e, sb, agent);
        pc_keys_sync_sandbox(d, name, row.uid_base);
        if (kept) { /* the workspace (and its uid range) is the sandbox's again */
                LOCK_GUARD(&d->store.lock);
                _cleanup_stmt_ sqlite3_stmt *st = NULL;

                /* A record left behind is harmless (the same uid range, replaced at the next rm). */
                if (sqlite3_prepare_v2(d->store.db, "DELETE FROM kept_workspaces WHERE name = ?", -1, &st, NULL) !=
                            SQLITE_OK ||
                    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
                        log_warning("sandbox %s: cannot forget its kept workspace's record: %s, ignoring", name,
                                    sqlite3_errmsg(d->store.db));
        }
        log_info("sandbox %s: created (init pid %d, uid base %u, policy %s, network %s)", name,
                 isolate_sandbox_pid(sb), (unsigned) row.uid_base, row.policy, network);
        r = row_load(d, name, &row, reterr);
        if (r < 0)
                return r;
        *ret = sandbox_json(d, &row, e);
        return *ret ? 0 : -ENOMEM;
}

int pc_sandboxes_start(pc_daemon *d, const pc_principal *who, const char *name, json_t **ret, pc_error **reterr)
{
        pc_sandbox_manager *m = d->sandboxes;
        isolate_sandbox *sb = NULL;
        pc_agent_socket *agent = NULL;
        sandbox_entry *e;
        sandbox_row row;
        char actor[128];
        int r;

        r = pc_state_space_check(d, reterr);
        if (r < 0)
                return r;
        pc_principal_describe(who, actor, sizeof(actor));
        {
                LOCK_GUARD(&m->lock);
                r = begin_op(d, name, &row, &e, reterr);
                if (r < 0)
                        return r;
                if (e->sb) {
                        e->busy = false;
                        *ret = sandbox_json(d, &row, e);
                        return *ret ? 0 : -ENOMEM; /* already running: starting is idempotent */
                }
        }
        r = bring_up(d, &row, &sb, &agent, reterr);
        if (r >= 0) {
                r = row_set_state(d, name, ROW_RUNNING, sb, actor, "sandbox.start", PC_EVENT_SANDBOX_STARTED,
                                  json_pack("{s:s, s:i}", "actor", actor, "init_pid", (int) isolate_sandbox_pid(sb)));
                if (r < 0) {
                        /* Not recorded as running: it must not run (the host stays as it was). */
                        pc_store_errorf(r, reterr, "the start cannot be recorded, so the sandbox was stopped again");
                        pc_agent_socket_free(agent, true);
                        bring_down(d, &row, sb, 0, NULL);
                        isolate_sandbox_free(sb);
                }
        }
        LOCK_GUARD(&m->lock);
        e = entry_find(m, name);
        e->busy = false;
        if (r < 0)
                return r;
        entry_up(d, e, sb, agent);
        pc_keys_sync_sandbox(d, name, row.uid_base);
        log_info("sandbox %s: started (init pid %d)", name, isolate_sandbox_pid(sb));
        r = row_load(d, name, &row, reterr);
        if (r < 0)
                return r;
        *ret = sandbox_json(d, &row, e);
        return *ret ? 0 : -ENOMEM;
}

/* Stop (and with `remove`, delete). The new state is stored before the sandbox is touched: when it cannot
 * be, the request fails and the sandbox runs on untouched. A daemon that dies after the record and before
 * the teardown finishes it at its next start (a row that is not running gets its leftovers removed). A
 * delete whose final row removal fails leaves a stopped sandbox (said so in the error): deleting again
 * finishes it. */
static int stop_locked_entry(pc_daemon *d, const char *name, const char *actor, const char *action, bool remove,
                             bool purge, json_t **ret, pc_error **reterr)
{
        pc_sandbox_manager *m = d->sandboxes;
        isolate_sandbox *sb;
        sandbox_entry *e;
        sandbox_row row;
        int r;

        {
                LOCK_GUARD(&m->lock);
                r = begin_op(d, name, &row, &e, reterr);
                if (r < 0)
                        return r;
                if (row.state == ROW_RUNNING) {
                        r = row_set_state(d, name, ROW_STOPPED, NULL, actor, remove ? NULL : action,
                                          PC_EVENT_SANDBOX_STOPPED,
                                          json_pack("{s:s, s:s}", "reason", remove ? "delete" : "stop", "actor", actor));
                        if (r < 0) {
                                e->busy = false;
                                return pc_store_errorf(r, reterr, "the stop cannot be recorded, so the sandbox was "
                                                                  "left running");
                        }
                }
                sb = TAKE_PTR(e->sb);
                entry_down(e);
        }
        /* Also a stopped sandbox may have leftovers from a crash: bring_down is idempotent. A delete unmounts
         * the workspace's disk image, or with purge removes the workspace with its image or quota. */
        _cleanup_pc_error_ pc_error *err = NULL;
        r = bring_down(d, &row, sb,
                       remove ? ISOLATE_DESTROY_ROOTFS |
                                        (purge ? ISOLATE_DESTROY_PURGE_WORKSPACE : ISOLATE_DESTROY_RELEASE_WORKSPACE)
                              : 0,
                       remove ? &err : NULL);
        isolate_sandbox_free(sb);

        LOCK_GUARD(&m->lock);
        if (remove && r < 0) {
                /* What could not be removed is still there, and so is the sandbox (recorded as stopped above):
                 * nothing claims success, and its name cannot be taken over a leftover workspace. */
                e = entry_find(m, name);
                if (e)
                        e->busy = false;
                return pc_error_setf(reterr, EIO, purge ? "purge_failed" : "delete_failed",
                                     "%s; the sandbox is kept (stopped): fix the cause and run 'pocketcoder sandbox "
                                     "rm%s %s' again",
                                     err ? err->message : strerror(-r), purge ? " --purge" : "", name);
        }
        if (remove) {
                entry_remove(m, name);
                r = row_delete(d, name, purge ? NULL : &row, actor, action, purge ? "purge" : NULL,
                               json_pack("{s:s, s:b}", "actor", actor, "purge", purge));
                if (r < 0)
                        return pc_store_errorf(r, reterr, "the sandbox was stopped, but its deletion cannot be "
                                                          "recorded; delete it again");
                log_info("sandbox %s: deleted%s", name, purge ? " with its workspace" : " (workspace kept)");
                return 0;
        }
        e = entry_find(m, name);
        if (e)
                e->busy = false;
        log_info("sandbox %s: stopped", name);
        r = row_load(d, name, &row, reterr);
        if (r < 0)
                return r;
        *ret = sandbox_json(d, &row, e);
        return *ret ? 0 : -ENOMEM;
}

int pc_sandboxes_stop(pc_daemon *d, const pc_principal *who, const char *name, json_t **ret, pc_error **reterr)
{
        char actor[128];

        pc_principal_describe(who, actor, sizeof(actor));
        return stop_locked_entry(d, name, actor, "sandbox.stop", false, false, ret, reterr);
}

int pc_sandboxes_delete(pc_daemon *d, const pc_principal *who, const char *name, bool purge, pc_error **reterr)
{
        char actor[128];

        pc_principal_describe(who, actor, sizeof(actor));
        return stop_locked_entry(d, name, actor, "sandbox.delete", true, purge, NULL, reterr);
}

/* The daemon's nftables table exists exactly while one of its EGRESS sandboxes runs. At start (`rebuild`)
 * it is replaced by one with the current rules (egress_allow, resolvers) and the running sandboxes'
 * elements, which also drops a stale table a crashed daemon left. At a clean stop it is deleted when no
 * EGRESS sandbox runs; otherwise it stays, since sandboxes outlive the daemon and their NAT and the rules
 * that keep them off the host and the LAN are in it. Called with no request in flight (before the API
 * starts, after it stopped). */
static void net_table_sync(pc_daemon *d, bool rebuild)
{
        pc_sandbox_manager *m = d->sandboxes;
        _cleanup_free_ isolate_net_sandbox *running = calloc(m->n_entries + 1, sizeof(*running));
        _cleanup_free_ sandbox_row *rows = calloc(m->n_entries + 1, sizeof(*rows));
        _cleanup_pc_error_ pc_error *err = NULL;
        isolate_net_config cfg = {
                .nft_table = d->config.nft_table,
                .subnet = d->config.egress_subnet,
                .egress_allow = d->config.egress_allow,
                .daemon_id = daemon_id_or_null(m),
        };
        size_t n = 0;
        int r;

        if (!running || !rows) {
                log_oom();
                return;
        }
        for (size_t i = 0; i < m->n_entries; i++) {
                if (!m->entries[i].sb)
                        continue;
                /* Unsure whether a running sandbox uses the table: keep it. */
                if (row_load(d, m->entries[i].name, &rows[n], NULL) < 0)
                        return;
                if (rows[n].network != ISOLATE_NET_EGRESS)
                        continue;
                running[n] = (isolate_net_sandbox){ .name = rows[n].name, .index = rows[n].net_index };
                n++;
        }
        if (n > 0 && !rebuild)
                return;
        r = isolate_net_table_reset(&cfg, running, n, &err);
        if (r == -ENOENT && n == 0)
                log_debug("nftables table: no nft(8), so no table to remove");
        else if (r < 0)
                log_warning("nftables table: %s, ignoring", err ? err->message : strerror(-r));
        else
                log_debug("nftables table: %s with %zu egress sandboxes", n > 0 ? "rebuilt" : "removed", n);
        m->table_synced = true;
}

static int corrupt_row_refusal(pc_daemon *d, const pc_error *e, int64_t rowid, pc_error **reterr)
{
        return pc_error_setf(reterr, EBADMSG, "store_corrupt",
                             "%s; pocketcoderd does not start on it (a guess could stop or expose a sandbox), and "
                             "running sandboxes are left alone. To recover, stop every pocketcoderd using it, then "
                             "look at the row with\n"
                             "  sqlite3 %s/state.db 'SELECT * FROM sandboxes WHERE rowid = %lld'\n"
                             "and correct the value, or delete the row (its sandbox, if it runs, is stopped at the "
                             "next start) with\n"
                             "  sqlite3 %s/state.db 'DELETE FROM sandboxes WHERE rowid = %lld'\n"
                             "and start pocketcoderd again. Or put back a backup of state.db.",
                             e->message, d->config.state_dir, (long long) rowid, d->config.state_dir,
                             (long long) rowid);
}

/* At start: undo unfinished creates; re-adopt every sandbox recorded as running whose init is still the
 * same process; record the dead ones as stopped; clean cgroups and veths of sandboxes that no longer
 * exist. A corrupt row stops the start (see pc_store_recovery_hint()): guessing could kill or expose a
 * sandbox. */
static int adopt_all(pc_daemon *d, pc_error **reterr)
{
        _cleanup_pc_error_ pc_error *corrupt = NULL;
        pc_sandbox_manager *m = d->sandboxes;
        _cleanup_free_ sandbox_row *rows = NULL;
        size_t n = 0, adopted = 0;
        char **leftover = NULL;
        int r, k;

        {
                LOCK_GUARD(&d->store.lock);
                _cleanup_stmt_ sqlite3_stmt *st = NULL;

                if (sqlite3_prepare_v2(d->store.db, "SELECT " ROW_COLUMNS " FROM sandboxes", -1, &st, NULL) != SQLITE_OK)
                        return pc_store_error(&d->store, reterr);
                while ((k = sqlite3_step(st)) == SQLITE_ROW) {
                        sandbox_row *nr = realloc(rows, (n + 1) * sizeof(*nr));
                        if (!nr)
                                return -ENOMEM;
                        rows = nr;
                        r = row_from_stmt(st, &rows[n++], &corrupt);
                        if (r < 0)
                                return corrupt_row_refusal(d, corrupt, sqlite3_column_int64(st, ROW_ROWID), reterr);
                }
                if (k != SQLITE_DONE)
                        return pc_store_error(&d->store, reterr);
        }
        for (size_t i = 0; i < n; i++) {
                _cleanup_(sandbox_spec_done) sandbox_spec spec = {};
                sandbox_row *row = &rows[i];
                isolate_sandbox *sb = NULL;

                if (row->state == ROW_CREATING) {
                        (void) undo_create(d, row, NULL);
                        continue;
                }
                if (row->state != ROW_RUNNING) {
                        _cleanup_pc_error_ pc_error *err = NULL;

                        /* A crash between creating the host side and recording the sandbox as running, or
                         * between recording a stop and finishing it, leaves objects behind; destroying is
                         * idempotent. */
                        bring_down(d, row, NULL, 0, NULL);
                        pc_agent_socket_remove_stale(d, row->name);
                        /* Its workspace image stays mounted while it exists (after a reboot: again). */
                        r = sandbox_spec_init(d, row, &spec);
                        if (r >= 0)
                                r = isolate_workspace_mount(&spec.cfg, &err);
                        if (r < 0)
                                log_warning("sandbox %s: %s, ignoring", row->name, err ? err->message : strerror(-r));
                        continue;
                }
                r = sandbox_spec_init(d, row, &spec);
                if (r < 0)
                        return r;
                r = isolate_sandbox_adopt(&spec.cfg, row->init_pid, row->init_starttime, &sb);
                if (r < 0) {
                        log_notice("sandbox %s: init (pid %d) is gone; recording it as stopped", row->name, row->init_pid);
                        bring_down(d, row, NULL, 0, NULL);
                        pc_agent_socket_remove_stale(d, row->name);
                        r = row_set_state(d, row->name, ROW_STOPPED, NULL, "daemon", "sandbox.exited",
                                          PC_EVENT_SANDBOX_STOPPED,
                                          json_pack("{s:s, s:s}", "reason", "exited", "actor", "daemon"));
                        if (r < 0)
                                log_error_errno(r, "sandbox %s: cannot record it as stopped: %m; it shows as "
                                                   "stopped and is recorded at the next start", row->name);
                        continue;
                }
                sandbox_entry *e = entry_add(m, row->name);
                pc_agent_socket *agent = NULL;
                _cleanup_pc_error_ pc_error *err = NULL;

                if (!e)
                        return -ENOMEM;
                /* Bound again in the directory the running sandbox has mounted. */
                r = pc_agent_socket_new(d, row->name, row->instance, &agent, &err);
                if (r < 0)
                        log_warning_errno(r, "sandbox %s: no agent socket: %s, ignoring", row->name,
                                          err ? err->message : strerror(-r));
                entry_up(d, e, sb, agent);
                adopted++;
                log_info("sandbox %s: re-adopted (init pid %d)", row->name, row->init_pid);
        }
        /* Leftovers: groups under our parent of sandboxes that are not running according to the store
         * (the parent is this daemon's own: another daemon's groups are never in it). */
        if (isolate_cgroup_list(m->cgroup_parent, &leftover) >= 0 && leftover) {
                for (char **l = leftover; *l; l++) {
                        sandbox_entry *e = entry_find(m, *l);

                        if (!(e && e->sb)) {
                                isolate_sandbox_config cfg = {
                                        .name = *l,
                                        .daemon_id = daemon_id_or_null(m),
                                        .cgroup_parent = d->config.cgroup_parent,
                                };
                                log_notice("cleaning leftover cgroup of sandbox %s", *l);
                                (void) isolate_sandbox_destroy(&cfg, NULL, 0, NULL);
                        }
                        free(*l);
                }
                free(leftover);
        }
        if (n > 0)
                log_info("%zu sandboxes recorded, %zu running and re-adopted", n, adopted);
        net_table_sync(d, true);
        return 0;
}

int pc_sandbox_manager_new(pc_daemon *d, pc_error **reterr)
{
        pc_sandbox_manager *m = calloc(1, sizeof(*m));
        int r;

        if (!m)
                return -ENOMEM;
        mutex_init_recursive(&m->lock);
        m->seccomp_fd = -EBADF;
        d->sandboxes = m;
        r = isolate_seccomp_compile(&m->seccomp_fd, reterr);
        if (r < 0)
                return r;
        r = pc_daemon_id_setup(d, m->daemon_id, reterr);
        if (r < 0)
                return r;
        r = isolate_cgroup_parent_name(d->config.cgroup_parent, daemon_id_or_null(m), &m->cgroup_parent);
        if (r < 0)
                return pc_error_setf(reterr, -r, "invalid_config", "cgroup_parent \"%s\" is invalid",
                                     d->config.cgroup_parent);
        log_info("daemon id %s: sandboxes' cgroups under %s, host interfaces pc%s-*",
                 strna(daemon_id_or_null(m)), m->cgroup_parent, m->daemon_id);
        return adopt_all(d, reterr);
}

void pc_sandbox_manager_free(pc_daemon *d)
{
        pc_sandbox_manager *m = d->sandboxes;

        if (!m)
                return;
        /* Frees handles only: the sandboxes keep running for the next daemon to adopt. With none left,
         * the parent group goes too (-EBUSY otherwise: fine). */
        if (m->n_entries == 0)
                (void) isolate_cgroup_destroy_parent(m->cgroup_parent);
        /* Only a manager that started completely knows which sandboxes run. */
        if (m->table_synced)
                net_table_sync(d, false);
        for (size_t i = 0; i < m->n_entries; i++) {
                isolate_sandbox_free(m->entries[i].sb);
                pc_watch_free(m->entries[i].watch);
                /* The directory stays: the running sandbox has it mounted. */
                pc_agent_socket_free(m->entries[i].agent, false);
        }
        free(m->entries);
        free(m->cgroup_parent);
        safe_close(m->seccomp_fd);
        pthread_mutex_destroy(&m->lock);
        free(m);
        d->sandboxes = NULL;
}

int pc_sandboxes_exec(pc_daemon *d, const char *name, isolate_exec_options *o, int *ret_master, pid_t *ret_pid,
                      int *ret_pidfd, pc_error **reterr)
{
        LOCK_GUARD(&d->sandboxes->lock);
        _cleanup_close_ int master = -EBADF, slave = -EBADF;
        sandbox_entry *e;
        int r;

        /* Under the manager lock: a stop or delete waits until the process is started (and then kills it). */
        reap_dead(d);
        e = entry_find(d->sandboxes, name);
        if (!e || !e->sb || e->busy)
                return pc_error_setf(reterr, EBUSY, "not_running",
                                     "sandbox \"%s\" is not running; start it with 'pocketcoder sandbox start %s'",
                                     name, name);
        if (ret_master) {
                r = isolate_sandbox_openpt(e->sb, &master, reterr);
                if (r < 0)
                        return r;
                slave = isolate_pty_peer(master);
                if (slave < 0)
                        return pc_error_setf(reterr, -slave, "pty", "sandbox %s: cannot open the terminal's slave: %s",
                                             name, strerror(-slave));
                o->stdin_fd = o->stdout_fd = o->stderr_fd = slave;
        }
        r = isolate_sandbox_exec(e->sb, o, ret_pid, ret_pidfd, reterr);
        if (r < 0)
                return r;
        if (ret_master)
                *ret_master = TAKE_FD(master);
        return 0;
}

int pc_sandboxes_exec_target(pc_daemon *d, const pc_principal *who, const char *name, pc_exec_target *ret,
                             pc_error **reterr)
{
        LOCK_GUARD(&d->sandboxes->lock);
        _cleanup_free_ char *dir = NULL, *cg = NULL;
        sandbox_row row;
        sandbox_entry *e;
        int r;

        r = row_load_for(d, who, name, &row, reterr);
        if (r < 0)
                return r;
        e = entry_find(d->sandboxes, name);
        if (!e || !e->sb || !e->agent || e->busy)
                return pc_error_setf(reterr, EBUSY, "not_running",
                                     "sandbox \"%s\" is not running; start it with 'pocketcoder sandbox start %s'",
                                     name, name);
        dir = strdup(pc_agent_socket_dir(e->agent));
        if (!dir || (isolate_sandbox_cgroup_path(e->sb) && !(cg = strdup(isolate_sandbox_cgroup_path(e->sb)))))
                return -ENOMEM;
        *ret = (pc_exec_target){ .uid_base = row.uid_base, .agent_dir = TAKE_PTR(dir), .cgroup_path = TAKE_PTR(cg) };
        strcpy(ret->policy, row.policy);
        strcpy(ret->instance, row.instance);
        return 0;
}

void pc_exec_target_done(pc_exec_target *t)
{
        free(t->agent_dir);
        free(t->cgroup_path);
        *t = (pc_exec_target){};
}

int pc_sandboxes_tmux(pc_daemon *d, const char *name, const char *instance, const char *const *args,
                      pc_error **reterr)
{
        LOCK_GUARD(&d->sandboxes->lock);
        sandbox_row row;
        sandbox_entry *e;
        int r;

        /* Under the manager lock, like pc_sandboxes_exec(); the same sandbox, not a later one of its name. */
        reap_dead(d);
        e = entry_find(d->sandboxes, name);
        if (!e || !e->sb || e->busy || row_load(d, name, &row, NULL) < 0 || !streq(row.instance, instance))
                return pc_error_setf(reterr, EBUSY, "not_running", "sandbox \"%s\" is not running", name);
        r = isolate_sandbox_tmux(e->sb, args, NULL, reterr);
        if (r > 0)
                return pc_error_setf(reterr, EIO, "tmux", "sandbox %s: tmux %s failed (status %d)", name,
                                     strna(args[0]), r);
        return r;
}
