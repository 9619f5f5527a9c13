/* SPDX-License-Identifier: MIT */
/* Private to daemon/: the daemon object, its configuration and state store. */
#pragma once

#include <pthread.h>
#include <sqlite3.h>
#include <sys/socket.h>

#include "common.h"
#include "crypto.h"
#include "daemon.h"


/* sqlite store: WAL, versioned migrations applied in one transaction each at open. One connection,
 * serialised by a mutex: statements are short and this keeps the threading model obvious. */
#define PC_STORE_CACHE_MAX 32
typedef struct pc_store_syncer pc_store_syncer;
typedef struct pc_store {
        sqlite3 *db;
        pthread_mutex_t lock;
        sqlite3_stmt *cache[PC_STORE_CACHE_MAX]; /* pc_store_prepare_cached(); unused slots NULL, at the end */
        pc_store_syncer *syncer; /* state_sync = normal: the thread that syncs the WAL */
} pc_store;

/* Opens (creates, migrates, checks) the database at PATH with durability SYNC (config state_sync); with
 * PC_STATE_SYNC_NORMAL this starts the WAL syncer thread. pc_store_open() is the default, normal. */
int pc_store_open_sync(pc_store *s, const char *path, pc_state_sync sync, pc_error **reterr);
int pc_store_open(pc_store *s, const char *path, pc_error **reterr);
/* Stops the syncer after a last sync, finalizes cached statements, closes. */
void pc_store_close(pc_store *s);
int pc_store_schema_version(pc_store *s);
/* PRAGMA synchronous of the connection as sqlite reports it (1 NORMAL, 2 FULL), or negative errno. */
int pc_store_synchronous(pc_store *s);
/* The syncer's counts (tests): commits seen, how many of them are synced, fdatasync() calls made. False
 * when there is no syncer (state_sync = full). */
typedef struct pc_store_sync_stats {
        uint64_t commits, synced, fdatasyncs;
} pc_store_sync_stats;
bool pc_store_sync_stats_get(pc_store *s, pc_store_sync_stats *ret);
/* Runs `sql` with no result rows (under the lock). */
int pc_store_exec(pc_store *s, const char *sql);

/* A statement of the connection's cache for SQL, prepared once (SQLITE_PREPARE_PERSISTENT), reset and with
 * no bindings: for statements that run per request. The store lock must be held from here until it is
 * reset; the cache owns it: reset it after use (_cleanup_reset_), never finalize it, and do not take the
 * same SQL again while it is in use (-EBUSY). -ENOBUFS when PC_STORE_CACHE_MAX different statements are
 * cached already. */
int pc_store_prepare_cached(pc_store *s, const char *sql, sqlite3_stmt **ret);
static inline void sqlite3_resetp(sqlite3_stmt **st)
{
        if (*st) {
                (void) sqlite3_reset(*st);
                (void) sqlite3_clear_bindings(*st);
        }
}
#define _cleanup_reset_ _cleanup_(sqlite3_resetp)

/* A write transaction (BEGIN IMMEDIATE) that rolls back on scope exit unless committed. Take the store
 * lock first, then the transaction, then statements: cleanups run in reverse, so statements are
 * finalized (or reset), then the transaction is rolled back, then the lock is released. */
typedef struct pc_txn {
        pc_store *store; /* NULL once committed or rolled back */
        bool nested; /* a savepoint inside the caller's transaction */
} pc_txn;
int pc_txn_begin(pc_store *s, pc_txn *ret);
int pc_txn_commit(pc_txn *t);
void pc_txn_rollbackp(pc_txn *t);
#define _cleanup_txn_ _cleanup_(pc_txn_rollbackp)
/* The last failure as -ENOSPC (SQLITE_FULL: the state filesystem is full) or -EIO. */
int pc_store_errno(pc_store *s);
/* The last failure as a pc_error: "store_full" (ENOSPC, the API's 507) or "store_error" (EIO, 500) with
 * sqlite's message; returns -ENOSPC or -EIO. */
int pc_store_error(pc_store *s, pc_error **reterr);
/* The same for a failure `r` (-ENOSPC or another errno) that was already mapped, with what failed. */
int pc_store_errorf(int r, pc_error **reterr, const char *what);

/* Appends to the audit ledger; caller may hold the lock (lock is recursive). */
int pc_store_audit(pc_store *s, const char *actor, const char *action, const char *subject, const char *detail);

/* The rows of ST (prepared, parameters bound; the store lock held), each made JSON by ROW, as {KEY: [...]}. */
int pc_store_list(pc_store *s, sqlite3_stmt *st, json_t *(*row)(sqlite3_stmt *st), const char *key, json_t **ret,
                  pc_error **reterr);
/* Runs SQL (a change of the row whose id is ?1) and its audit row (ACTION on ID by ACTOR) in one transaction.
 * When no row changed: ENOENT "not_found" with "WHAT \"ID\" does not exist" and HINT after it, nothing stored. */
int pc_store_change_by_id(pc_store *s, const char *sql, const char *id, const char *actor, const char *action,
                          const char *what, const char *hint, pc_error **reterr);

static inline void sqlite3_finalizep(sqlite3_stmt **s)
{
        if (*s)
                sqlite3_finalize(*s);
}
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

/* jansson ships json_decrefp() for exactly this. */
#define _cleanup_json_ _cleanup_(json_decrefp)


typedef struct sd_event sd_event;
typedef struct sd_event_source sd_event_source;
typedef struct pc_post pc_post;
typedef struct pc_event_bus pc_event_bus;

struct pc_daemon {
        pc_config config;
        pc_store store;
        int lock_fd; /* flock on STATE_DIR/pocketcoderd.lock */
        uint64_t started_realtime_usec;
        uint64_t started_monotonic_usec;
        json_t *host_caps; /* probed once at start */
        const char *workspace_quota; /* how new workspaces' limits are enforced, probed at start; NULL: unknown */
        struct pc_policy_manager *policies;
        struct pc_sandbox_manager *sandboxes;
        pc_event_bus *bus;

        /* The event loop (main thread only): signals, the policy directory, sandbox inits' pidfds, agent
         * sockets, timers, and the queue other threads post to through post_fd (an eventfd). */
        sd_event *event;
        int post_fd;
        pthread_mutex_t post_lock;
        pc_post *posts_head, *posts_tail;

        pc_agent_connection_fn agent_fn;
        void *agent_userdata;
        struct pc_execs *execs; /* the exec engine (execs.c) */

        sd_event_source *permission_timer; /* permissions.c: the earliest expiry */
        struct pc_webhooks *webhooks; /* webhooks.c */
};

/* A one-shot watch of a readable fd on the loop (a sandbox init's pidfd: readable once it exited), made
 * and freed from any thread. The fd is duplicated, so the caller may close its own at any time. fn gets
 * no pointer to the watched thing on purpose: it may run once more after pc_watch_free() was called (if
 * it was being dispatched), so it looks the state up itself. */
typedef struct pc_watch pc_watch;
int pc_watch_new(pc_daemon *d, int fd, pc_daemon_post_fn fn, pc_watch **ret);
pc_watch *pc_watch_free(pc_watch *w);

/* An event in two steps, for a change and its event in one transaction: record() stores it (inside the
 * caller's transaction, if one is open: it commits or rolls back with it), deliver() hands it to
 * subscribers and waiters once the caller committed, and frees it; pending_done() frees one that is not
 * delivered (the transaction rolled back). record() takes over `data` (an object or NULL) and logs its
 * failures; -ENOSPC when the state filesystem is full. */
typedef struct pc_event_pending {
        uint64_t seq; /* 0: nothing to deliver */
        pc_event_type type;
        char *sandbox;
        int64_t at;
        json_t *data;
} pc_event_pending;
int pc_event_record(pc_daemon *d, pc_event_type type, const char *sandbox, json_t *data, pc_event_pending *ret);
void pc_event_deliver(pc_daemon *d, pc_event_pending *p);
void pc_event_pending_done(pc_event_pending *p);
/* A change and its record in one transaction, all of it or nothing: ST (and ALSO, when given) stepped, the
 * audit row ACTION on SUBJECT by ACTOR (unless ACTION is NULL), the event TYPE about SANDBOX with DATA (unless
 * DATA is NULL; taken over); then the event is delivered. Called with the store lock held. */
int pc_change_record(pc_daemon *d, sqlite3_stmt *st, sqlite3_stmt *also, const char *subject, const char *actor,
                     const char *action, const char *detail, pc_event_type type, const char *sandbox, json_t *data);
#define _cleanup_event_pending_ _cleanup_(pc_event_pending_done)

/* The event bus's state (events.c). */
int pc_event_bus_new(pc_daemon *d);
void pc_event_bus_free(pc_daemon *d);

/* Policy reload with its event: rescans the directory and publishes policy.reloaded when something
 * changed. `trigger` says why ("inotify", "signal", "api"). Returns what pc_policy_manager_reload() does. */
int pc_daemon_reload_policies(pc_daemon *d, const char *trigger);

/* The agent socket of one sandbox (agent-socket.c): RUNTIME_DIR/sandboxes/NAME/ (the directory is what
 * the sandbox mounts at /run/pocketcoder, so a socket bound again after a daemon restart is seen inside)
 * with api.sock in it, accepted on from the loop. */
typedef struct pc_agent_socket pc_agent_socket;
/* `instance` is the sandbox's identity (sandboxes.instance): each connection is handed over with it, so a
 * connection never speaks for a later sandbox of the same name. */
int pc_agent_socket_new(pc_daemon *d, const char *sandbox, const char *instance, pc_agent_socket **ret,
                        pc_error **reterr);
const char *pc_agent_socket_dir(const pc_agent_socket *s);
/* Stops accepting. With `remove`, also removes the socket and its directory (the sandbox stopped); else
 * the directory stays for the next daemon to bind again (the sandbox keeps running). */
pc_agent_socket *pc_agent_socket_free(pc_agent_socket *s, bool remove);
/* Removes what a sandbox that is no longer running left in RUNTIME_DIR/sandboxes (after a crash). */
void pc_agent_socket_remove_stale(pc_daemon *d, const char *sandbox);

/* The daemon id (daemon-id.c) into ret (ISOLATE_DAEMON_ID_LEN + 1 bytes; "" for a database from before
 * ids): loaded from the store, or made and stored at the first start, and recorded in RUNTIME_DIR/daemon-id.
 * Refuses ("state_lost") a database without it while sandboxes of the recorded daemon still run, unless
 * config.reset_state, which stops those first. */
int pc_daemon_id_setup(pc_daemon *d, char *ret, pc_error **reterr);

typedef struct pc_sandbox_manager pc_sandbox_manager;
/* Compiles the seccomp filter and re-adopts running sandboxes (cleaning leftovers of dead ones). */
int pc_sandbox_manager_new(pc_daemon *d, pc_error **reterr);
/* A sandbox init's pidfd became readable (it exited): record it as stopped and clean up after it. Runs
 * on the loop (a pc_watch's function). */
void pc_sandboxes_reap(pc_daemon *d, void *userdata);
/* Frees handles; sandboxes keep running. */
void pc_sandbox_manager_free(pc_daemon *d);
/* Starts o->argv in running sandbox NAME (isolate_sandbox_exec()). With ret_master, on a pty allocated inside the
 * sandbox (its slave is the process' stdio and controlling terminal), whose master is returned. */
struct isolate_exec_options;
int pc_sandboxes_exec(pc_daemon *d, const char *name, struct isolate_exec_options *o, int *ret_master,
                      pid_t *ret_pid, int *ret_pidfd, pc_error **reterr);
/* > 0 when a policy named NAME is loaded. */
int pc_policies_exists(pc_daemon *d, const char *name);

/* SHA-256 of DATA: raw (32 bytes) or as 64 hex digits. */
int pc_sha256(const void *data, size_t n, uint8_t ret[static 32]);
int pc_sha256_hex(const void *data, size_t n, char ret[static 65]);

/* Decides COMMAND under the loaded policy NAME (for the exec engine and the decide endpoint). */
struct pc_verdict;
int pc_policies_decide_command(pc_daemon *d, const char *name, const char *command, size_t len,
                               struct pc_verdict **ret, pc_error **reterr);
json_t *pc_verdict_to_json(const struct pc_verdict *v);

int pc_daemon_probe_host(pc_daemon *d);
/* Refuses new work (EDQUOT, code insufficient_storage: HTTP 507) while the state directory's filesystem
 * has less free space than the configured reserve (state_reserve). */
int pc_state_space_check(pc_daemon *d, pc_error **reterr);

/* Audit actor string for a principal ("local:uid=0", "token:ID(role)"). */
void pc_principal_describe(const pc_principal *p, char *buf, size_t n);

/* ---- execs (execs.c) ---- */

/* What the exec engine needs of a running sandbox (sandboxes.c): its policy and identity, the host directory
 * bound at /run/pocketcoder inside it, and its cgroup (NULL without one). */
typedef struct pc_exec_target {
        char policy[64];
        char instance[33];
        uid_t uid_base;
        char *agent_dir;
        char *cgroup_path;
} pc_exec_target;
/* -EBUSY ("not_running") unless NAME runs; agents only for their own sandbox. */
int pc_sandboxes_exec_target(pc_daemon *d, const pc_principal *who, const char *name, pc_exec_target *ret,
                             pc_error **reterr);
void pc_exec_target_done(pc_exec_target *t);
/* Runs tmux ARGS in running sandbox NAME while it is the sandbox `instance`; a non-zero status is an error. */
int pc_sandboxes_tmux(pc_daemon *d, const char *name, const char *instance, const char *const *args,
                      pc_error **reterr);
/* The exec engine's state: made after the sandbox manager (running execs of a dead daemon are recorded as
 * lost with their partial output), freed before it. */
int pc_execs_new(pc_daemon *d, pc_error **reterr);
void pc_execs_free(pc_daemon *d);
/* The permission broker's expiry timer and the hand-over of decisions stored before a restart
 * (permissions.c); start once the loop exists, stop before it is freed. */
int pc_permissions_start(pc_daemon *d);
void pc_permissions_stop(pc_daemon *d);

/* N random bytes as 2N lowercase hex digits and a NUL (tokens.c). */
int pc_random_hex(char *ret, size_t n);
/* ---- devaudit (audit.c, devices.c) ---- */
/* Chains the rows of a ledger from before the hash chain and records its head (once; at store open). */
int pc_audit_chain_init(pc_store *s, pc_error **reterr);
/* Writes the keys that reach sandbox NAME (running, its agent uid_base + ISOLATE_AGENT_UID) to its
 * ~agent/.ssh/authorized_keys (keys.c); failures are logged (an agent that planted a symlink loses its keys,
 * nothing else). Called when a sandbox comes up. */
void pc_keys_sync_sandbox(pc_daemon *d, const char *name, uid_t uid_base);
/* ---- webhooks (webhooks.c) ---- */
/* The relay endpoint's events unless webhook_relay_events says otherwise. */
#define WEBHOOK_RELAY_EVENTS "permission.*,exec.*,sandbox.*,webhook.ping"
/* Starts the delivery thread when a webhook URL is configured (else only moves the queue's cursor to the
 * newest event); stop() ends it, leaving what is not delivered queued for the next start. */
int pc_webhooks_start(pc_daemon *d, pc_error **reterr);
void pc_webhooks_stop(pc_daemon *d);
