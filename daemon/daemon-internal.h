/* SPDX-License-Identifier: MIT */
/* Private to daemon/: the daemon object, its configuration and state store. */
#pragma once

#include <pthread.h>
#include <sqlite3.h>
#include <sys/socket.h>

#include "common.h"
#include "daemon.h"

typedef struct pc_config {
        char *config_path;
        char *policy_dir;
        char *state_dir;
        char *runtime_dir;
        char *listen;             /* "ADDR:PORT" for TCP, NULL = unix socket only */
        bool allow_remote_listen; /* binding a non-loopback address needs this */
        char *socket_group;       /* group that may use api.sock (mode 0660) */
        uint64_t max_body_size;   /* bytes */
        unsigned api_threads;     /* libmicrohttpd thread pool size, 0 = number of CPUs */
        int log_level;
        char *log_file;
        char *pid_file;
        char *egress_subnet;      /* private range veth /30s are cut from */
        char *cgroup_parent;      /* group (under the daemon's own on v2) that holds the sandboxes' groups */
        char *nft_table;          /* nftables inet table of the egress NAT and host-blocking rules */
        uint64_t uid_range_base;  /* host uid of the first sandbox's root; each takes 65536 */
} pc_config;

void pc_config_init(pc_config *c);
void pc_config_done(pc_config *c);
/* Loads `path` over the defaults already in *c. A missing file is fine when `must_exist` is false.
 * Errors name FILE:LINE and the reason. */
int pc_config_load(pc_config *c, const char *path, bool must_exist, pc_error **reterr);
/* Parses the LEN bytes of TEXT ("key = value" lines, '#' comments, "quoted" values) over *c; errors
 * name ORIGIN:LINE. A NUL byte anywhere is an error, not the end of the text. On error *c is unchanged. */
int pc_config_parse(pc_config *c, const char *origin, const char *text, size_t len, pc_error **reterr);
/* Sets one key as if read from the file (used for command-line overrides). */
int pc_config_apply(pc_config *c, const char *key, const char *value, pc_error **reterr);
/* Checks the combination (e.g. a non-loopback listen address without allow_remote_listen). */
int pc_config_validate(const pc_config *c, pc_error **reterr);

/* Parses "ADDR:PORT" / "[V6]:PORT" into a socket address; tells whether it is loopback. */
struct sockaddr_storage;
int pc_listen_address(const char *listen, struct sockaddr_storage *ret, socklen_t *ret_len, bool *ret_loopback);

/* sqlite store: WAL, versioned migrations applied in one transaction each at open. One connection,
 * serialised by a mutex: statements are short and this keeps the threading model obvious. */
typedef struct pc_store {
        sqlite3 *db;
        pthread_mutex_t lock;
} pc_store;

int pc_store_open(pc_store *s, const char *path, pc_error **reterr);
void pc_store_close(pc_store *s);
int pc_store_schema_version(pc_store *s);
/* Runs `sql` with no result rows (under the lock). */
int pc_store_exec(pc_store *s, const char *sql);
/* A write transaction (BEGIN IMMEDIATE) that rolls back on scope exit unless committed. Take the store
 * lock first, then the transaction, then statements: cleanups run in reverse, so statements are
 * finalized, then the transaction is rolled back, then the lock is released. */
typedef struct pc_txn {
        sqlite3 *db;
} pc_txn;
int pc_txn_begin(pc_store *s, pc_txn *ret);
int pc_txn_commit(pc_txn *t);
void pc_txn_rollbackp(pc_txn *t);
#define _cleanup_txn_ _cleanup_(pc_txn_rollbackp)
/* "state database: <sqlite's message>" as a pc_error; returns -EIO. */
int pc_store_error(pc_store *s, pc_error **reterr);

/* Appends to the audit ledger; caller may hold the lock (lock is recursive). */
int pc_store_audit(pc_store *s, const char *actor, const char *action, const char *subject, const char *detail);

static inline void sqlite3_finalizep(sqlite3_stmt **s)
{
        if (*s)
                sqlite3_finalize(*s);
}
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

/* jansson ships json_decrefp() for exactly this. */
#define _cleanup_json_ _cleanup_(json_decrefp)

static inline void mutex_unlockp(pthread_mutex_t **m)
{
        if (*m)
                pthread_mutex_unlock(*m);
}
/* Recursive: a function holding a lock may call another that takes it (e.g. the store's audit). */
static inline void mutex_init_recursive(pthread_mutex_t *m)
{
        pthread_mutexattr_t attr;

        pthread_mutexattr_init(&attr);
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
        pthread_mutex_init(m, &attr);
        pthread_mutexattr_destroy(&attr);
}

/* Locks `m` until the end of the scope (several guards may share a scope). */
#define LOCK_GUARD_CONCAT_(a, b) a##b
#define LOCK_GUARD_NAME_(n)      LOCK_GUARD_CONCAT_(_guard_, n)
#define LOCK_GUARD(m)                                                                                     \
        _cleanup_(mutex_unlockp) _unused_ pthread_mutex_t *LOCK_GUARD_NAME_(__COUNTER__) = ({             \
                pthread_mutex_lock(m);                                                                    \
                (m);                                                                                      \
        })

struct pc_daemon {
        pc_config config;
        pc_store store;
        uint64_t started_realtime_usec;
        uint64_t started_monotonic_usec;
        json_t *host_caps; /* probed once at start */
        struct pc_policy_manager *policies;
        struct pc_sandbox_manager *sandboxes;
        int event_fd; /* the main thread's epoll: signals, policy directory, sandbox inits' pidfds */
};

typedef struct pc_sandbox_manager pc_sandbox_manager;
/* Compiles the seccomp filter and re-adopts running sandboxes (cleaning leftovers of dead ones). */
int pc_sandbox_manager_new(pc_daemon *d, pc_error **reterr);
/* A sandbox init's pidfd became readable (it exited): record it as stopped and clean up after it. */
void pc_sandboxes_reap(pc_daemon *d);
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

/* Audit actor string for a principal ("local:uid=0", "token:ID(role)"). */
void pc_principal_describe(const pc_principal *p, char *buf, size_t n);
