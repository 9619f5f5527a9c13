/* SPDX-License-Identifier: MIT */
/* The daemon's public interface, for the HTTP layer (api/) and the composition root (pocketcoderd/). The
 * daemon owns state (sqlite), policies, sandboxes and the event loop; api/ only translates HTTP to these
 * calls. Resources cross this boundary as jansson objects so the API never re-encodes them. */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef struct pc_error pc_error;
typedef struct pc_daemon pc_daemon;

/* ---- configuration (config.c) ---- */

/* How state.db's commits reach the disk (state_sync; docs/config.md). Both survive kill -9 of the daemon. */
typedef enum pc_state_sync {
        PC_STATE_SYNC_NORMAL, /* synchronous=NORMAL; a background thread fdatasync()s the WAL within ~1 s */
        PC_STATE_SYNC_FULL,   /* synchronous=FULL: every commit fsyncs the WAL before it returns */
        _PC_STATE_SYNC_MAX,
} pc_state_sync;
const char *pc_state_sync_to_string(pc_state_sync s);

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
        unsigned http_idle_timeout; /* seconds an idle keep-alive connection is kept */
        unsigned tcp_max_connections;             /* open TCP connections in all */
        unsigned tcp_max_connections_per_address; /* open TCP connections per client address */
        unsigned tcp_auth_timeout; /* seconds a TCP connection has for its first authenticated request */
        uint64_t events_keep;     /* how many of the newest events the store keeps */
        pc_state_sync state_sync; /* state.db's durability on an OS crash or power cut */
        int log_level;
        char *log_file;
        char *pid_file;
        char *egress_subnet;      /* private range veth /30s are cut from */
        char *egress_allow;       /* IPv4 prefixes of the default-blocked ranges egress may reach, or NULL */
        char *cgroup_parent;      /* group (under the daemon's own on v2) that holds the sandboxes' groups */
        char *nft_table;          /* nftables inet table of the egress NAT and host-blocking rules */
        uint64_t uid_range_base;  /* host uid of the first sandbox's root; each takes 65536 */
        uint64_t nofile_max;      /* RLIMIT_NOFILE (hard) of every process in every sandbox */
        uint64_t cpu_weight;      /* every sandbox's cgroup cpu.weight (v1 cpu.shares = weight * 1024 / 100) */
        uint64_t sandbox_disk;    /* default workspace limit in bytes; 0 = none */
        uint64_t sandbox_inodes;  /* default inode limit; 0 = one per 16 KiB of the disk limit */
        uint64_t state_reserve;   /* refuse new work below this much free space in state_dir: bytes, or */
        unsigned state_reserve_percent; /* when non-zero, this percentage of its size */
        bool reset_state;         /* --reset-state: stop sandboxes whose state database is lost, then start */
        uint64_t exec_output_max; /* bytes of stdout and of stderr kept per exec (more is dropped and reported) */
        uint64_t permission_timeout; /* seconds a permission request waits for a person before it expires */
        unsigned exec_ready_windows; /* tmux windows with a waiting shim each sandbox keeps for its next execs */
        bool require_signed_approvals; /* approvals must carry a registered device's Ed25519 signature */
        char *ssh_socket;         /* the SSH login's gateway socket (api/ssh.c), outside runtime_dir; NULL: none */
        char *ssh_group;          /* the group that may use it (mode 0660) */
        uint64_t files_max_upload; /* largest file PUT /v1/sandboxes/NAME/files/PATH takes: bytes */
        unsigned events_keepalive; /* seconds between keep-alive comments on a quiet event stream */
        char *webhook_relay;      /* URL the relay's events are POSTed to, or NULL */
        char *webhook_admin;      /* URL the admin's events are POSTed to, or NULL */
        char *webhook_relay_events; /* the event types each takes (pc_event_types_parse) */
        char *webhook_admin_events;
        char *webhook_secret;     /* HMAC-SHA256 key of the signature header; needed with a webhook URL */
        unsigned webhook_timeout; /* seconds a delivery attempt may take */
        unsigned webhook_retry_min; /* seconds before the first retry; doubled each time up to */
        unsigned webhook_retry_max;
        unsigned webhook_max_attempts; /* then the delivery is failed */
        uint64_t webhook_deliveries_keep; /* delivered and failed rows kept in the delivery log */
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
int pc_listen_address(const char *listen, struct sockaddr_storage *ret, socklen_t *ret_len, bool *ret_loopback);

/* ---- lifecycle and the event loop (daemon.c) ---- */

/* Builds the daemon from *config (whose contents it takes over, leaving *config empty): state and
 * runtime directories, the state-directory lock, the store, policies, host probe, the sd-event loop with
 * its signal (SIGTERM, SIGINT, SIGHUP) and inotify sources, and the sandbox manager (which re-adopts
 * running sandboxes). Blocks those signals and SIGPIPE in the calling thread, so call it before any other
 * thread starts: threads inherit the mask and no handler ever runs in them. */
int pc_daemon_new(pc_config *config, pc_daemon **ret, pc_error **reterr);
/* Runs the event loop on the calling thread until SIGTERM or SIGINT. Returns 0 or negative errno. */
int pc_daemon_run(pc_daemon *d);
/* Frees everything (sandboxes keep running). Only once nothing else calls into d: stop the HTTP server
 * first. Accepts NULL, returns NULL. */
pc_daemon *pc_daemon_free(pc_daemon *d);
const pc_config *pc_daemon_config(const pc_daemon *d);

/* Runs fn(d, userdata) on the event loop's thread, soon; callable from any thread. Posted functions run
 * in the order they were posted; ones still queued when the loop has stopped run in pc_daemon_free().
 * This is how threads that are not the loop's add or remove loop sources (sd-event is single-threaded). */
typedef void (*pc_daemon_post_fn)(pc_daemon *d, void *userdata);
int pc_daemon_post(pc_daemon *d, pc_daemon_post_fn fn, void *userdata);

/* Each running sandbox has an agent socket (RUNTIME_DIR/sandboxes/NAME/api.sock, bound inside it at
 * /run/pocketcoder/api.sock). The daemon accepts on it from the loop and hands each connection (fd,
 * O_CLOEXEC|O_NONBLOCK, owned by the handler from then on) to this handler, with the sandbox's name: the
 * connection is that sandbox's agent, no token involved. Set by the composition root (pocketcoderd/),
 * which gives it to the HTTP server: the daemon never calls api/. Without a handler connections are
 * closed. */
typedef void (*pc_agent_connection_fn)(void *userdata, int fd, const char *sandbox, const char *instance);
void pc_daemon_set_agent_handler(pc_daemon *d, pc_agent_connection_fn fn, void *userdata);

/* ---- principals and roles ---- */

typedef enum {
        PC_ROLE_ADMIN,
        PC_ROLE_RELAY,
        PC_ROLE_AGENT,
        PC_ROLE_SSH, /* the ssh_socket: the SSH login's helper; only /v1/ssh/ (no token has it) */
        _PC_ROLE_MAX,
        PC_ROLE_INVALID = -EINVAL,
} pc_role;

const char *pc_role_to_string(pc_role r);
pc_role pc_role_from_string(const char *s);

/* Who is calling: set by authentication, checked by every route. */
typedef struct pc_principal {
        pc_role role;
        char token_id[32]; /* empty for a local peer authenticated by credentials */
        char sandbox[64];  /* agent tokens: the one sandbox they may touch */
        bool local_peer;   /* unix socket peer credentials (uid 0 or group pocketcoder) */
        bool agent_socket; /* a connection on a sandbox's agent socket: role agent, no token */
        uid_t uid;
        char ssh_key[17];  /* role ssh: the id of the key that logged in (a session), else empty */
} pc_principal;

/* GET /v1/whoami: {"role", "sandbox", "token_id", "uid", "via"}. */
json_t *pc_principal_to_json(const pc_principal *p);

/* Authenticates "Bearer <token>" (the part after "Bearer "). Returns 0 and fills *ret, -EACCES for an
 * unknown/revoked token, -EINVAL for a malformed one. Constant-time compare of the hash. */
int pc_daemon_authenticate(pc_daemon *d, const char *token, pc_principal *ret);
/* A connection on the agent socket of sandbox `sandbox` whose identity was `instance` when it connected:
 * 0 and the agent principal while that very sandbox exists, -EACCES once it was deleted (also when a new
 * sandbox of the same name exists). */
int pc_daemon_authenticate_agent(pc_daemon *d, const char *sandbox, const char *instance, pc_principal *ret);

/* Tokens. Creation returns the secret once in "token"; only its SHA-256 is stored. */
int pc_tokens_create(pc_daemon *d, const pc_principal *who, json_t *req, json_t **ret, pc_error **reterr);
int pc_tokens_list(pc_daemon *d, json_t **ret, pc_error **reterr);
int pc_tokens_delete(pc_daemon *d, const pc_principal *who, const char *id, pc_error **reterr);

/* Policies: the loaded set (files over embedded defaults), one with its source, a rescan, and a dry-run
 * decision {"command": "..."} with the full explanation. */
int pc_policies_list(pc_daemon *d, json_t **ret);
int pc_policies_show(pc_daemon *d, const char *name, json_t **ret, pc_error **reterr);
int pc_policies_reload(pc_daemon *d, json_t **ret);
int pc_policies_decide(pc_daemon *d, const char *name, json_t *req, json_t **ret, pc_error **reterr);

/* Sandboxes. Create returns when the sandbox's tmux session is ready (or fails leaving nothing behind);
 * agent principals see and touch only their own sandbox. Delete stops first and keeps the workspace
 * unless `purge`. */
int pc_sandboxes_create(pc_daemon *d, const pc_principal *who, json_t *req, json_t **ret, pc_error **reterr);
int pc_sandboxes_list(pc_daemon *d, const pc_principal *who, json_t **ret, pc_error **reterr);
int pc_sandboxes_show(pc_daemon *d, const pc_principal *who, const char *name, json_t **ret, pc_error **reterr);
int pc_sandboxes_start(pc_daemon *d, const pc_principal *who, const char *name, json_t **ret, pc_error **reterr);
int pc_sandboxes_stop(pc_daemon *d, const pc_principal *who, const char *name, json_t **ret, pc_error **reterr);
int pc_sandboxes_delete(pc_daemon *d, const pc_principal *who, const char *name, bool purge, pc_error **reterr);
/* Sessions (`pocketcoder enter`, `sandbox run`): an admin's process in a sandbox whose stdio the client gives
 * (pipes of its own) or takes (a pty allocated inside the sandbox). The daemon starts it, records its start
 * and end in the audit ledger and keeps no copy of its stdio once it runs.
 * new: validates the request and checks that the sandbox runs; nothing is recorded yet.
 * record_start: the audit row "sandbox.run"/"sandbox.enter" (who, argv); a session without it never starts.
 * start: without tty, stdio[3] are the client's descriptors (always consumed); with tty, *ret_master gets the
 *        pty's master. The process' pidfd (owned by the session) polls readable when it exits.
 * signal: forwards a signal the client got. wait: reaps it and records "sandbox.session-end" with the status
 *        (exit code, or 128+N for signal N), which it returns. free: kills a process still running. */
typedef struct pc_session pc_session;
int pc_session_new(pc_daemon *d, const pc_principal *who, const char *name, json_t *req, pc_session **ret,
                   pc_error **reterr);
int pc_session_record_start(pc_session *s, pc_error **reterr);
bool pc_session_is_tty(const pc_session *s);
int pc_session_start(pc_session *s, int stdio[3], int *ret_master, pc_error **reterr);
int pc_session_pidfd(const pc_session *s);
int pc_session_signal(pc_session *s, int sig);
int pc_session_wait(pc_session *s);
pc_session *pc_session_free(pc_session *s);
static inline void pc_session_freep(pc_session **s)
{
        if (*s)
                pc_session_free(*s);
}

/* Images (STATE_DIR/images): list; delete (refused while a sandbox uses it); build, which runs
 * rootfs/build-image.sh and returns a handle whose read() yields the build's events as newline-delimited JSON
 * ({"event":"progress","stream":"stdout|stderr","line":...}, then {"event":"done","image":...} or
 * {"event":"failed","status":N}), waiting for them; 0 at the end. Freeing a build that still runs stops it
 * (SIGTERM to its process group: the script removes what it made). */
typedef struct pc_image_build pc_image_build;
int pc_images_list(pc_daemon *d, json_t **ret, pc_error **reterr);
int pc_images_delete(pc_daemon *d, const pc_principal *who, const char *name, pc_error **reterr);
int pc_images_build(pc_daemon *d, const pc_principal *who, json_t *req, pc_image_build **ret, pc_error **reterr);
ssize_t pc_image_build_read(pc_image_build *b, char *out, size_t max);
pc_image_build *pc_image_build_free(pc_image_build *b);
/* Every build event also goes here: the hook the event bus connects to (images.c). */
void pc_images_progress(pc_daemon *d, const char *image, json_t *event);

/* Daemon status: version, uptime, host capabilities. */
int pc_daemon_status(pc_daemon *d, json_t **ret);

/* How the API parses a request body: a key given twice is malformed JSON, not "the last one wins".
 * tests/fuzz/fuzz-api-request.c parses with the same flags. */
#define PC_JSON_REQUEST_FLAGS JSON_REJECT_DUPLICATES

/* Request-body validation shared by every resource: rejects keys not in `allowed` (NULL-terminated) with
 * a message naming them. */
int pc_json_check_fields(json_t *obj, const char *const *allowed, pc_error **reterr);

/* ---- the event bus (events.c) ---- */

/* Everything that happens is an event with a sequence number that only grows, also across restarts
 * (stored with the event in the `events` table; the newest `events_keep` are kept). Add a type here and
 * to the name table in events.c; names are "resource.verb". */
typedef enum {
        PC_EVENT_SANDBOX_CREATED,
        PC_EVENT_SANDBOX_STARTED,
        PC_EVENT_SANDBOX_STOPPED,
        PC_EVENT_SANDBOX_DELETED,
        PC_EVENT_POLICY_RELOADED,
        PC_EVENT_IMAGE_PROGRESS, /* a line the build printed */
        PC_EVENT_IMAGE_BUILT,
        PC_EVENT_IMAGE_FAILED,
        PC_EVENT_EXEC_STARTED,        /* execs.c */
        PC_EVENT_EXEC_FINISHED,       /* execs.c */
        PC_EVENT_PERMISSION_REQUESTED, /* permissions.c */
        PC_EVENT_PERMISSION_DECIDED,  /* permissions.c */
        PC_EVENT_WEBHOOK_PING,        /* webhooks.c: POST /v1/webhooks/test */
        PC_EVENT_KEY_ADDED,           /* keys.c */
        PC_EVENT_KEY_REMOVED,         /* keys.c */
        _PC_EVENT_TYPE_MAX,
        PC_EVENT_TYPE_INVALID = -EINVAL,
} pc_event_type;

const char *pc_event_type_to_string(pc_event_type t);
pc_event_type pc_event_type_from_string(const char *s);

typedef struct pc_event {
        uint64_t seq;
        pc_event_type type;
        const char *sandbox; /* NULL: not about one sandbox */
        int64_t at;          /* unix seconds */
        json_t *data;        /* an object, borrowed */
} pc_event;

/* Records an event (taking over `data`, an object or NULL) and notifies subscribers and waiters, in the
 * calling thread. Call it after the change it reports is committed. Returns the sequence number (> 0) or
 * negative errno; a failure is logged and changes nothing else. */
int64_t pc_event_publish(pc_daemon *d, pc_event_type type, const char *sandbox, json_t *data);

/* In-process subscribers: fn runs in the publishing thread, with the bus lock held, for every event in
 * order. It must be quick and must not publish or wait: post real work to the loop (pc_daemon_post). */
typedef struct pc_event_subscription pc_event_subscription;
typedef void (*pc_event_fn)(const pc_event *e, void *userdata);
int pc_event_subscribe(pc_daemon *d, pc_event_fn fn, void *userdata, pc_event_subscription **ret);
pc_event_subscription *pc_event_unsubscribe(pc_daemon *d, pc_event_subscription *s);

typedef struct pc_event_filter {
        char sandbox[64];    /* "" = any */
        pc_event_type type;  /* _PC_EVENT_TYPE_MAX = any */
        uint64_t types;      /* when non-zero, only these: bit (1 << type) per type (pc_event_types_parse) */
} pc_event_filter;

/* Parses a comma-separated list of event types and prefixes ("exec.*", "*") into a mask of type bits.
 * Every item must name at least one known type; blanks around items are allowed, empty items are not. */
int pc_event_types_parse(const char *s, uint64_t *ret, pc_error **reterr);

/* Events with seq > since matching f, oldest first, at most `limit`, as {"events": [...], "next": N,
 * "oldest": N|null}: "next" is the cursor to pass as `since` next time. *ret_seen is the bus position the
 * answer is complete up to, for pc_event_wait(). */
int pc_events_list(pc_daemon *d, const pc_event_filter *f, uint64_t since, unsigned limit, json_t **ret,
                   uint64_t *ret_seen, pc_error **reterr);

/* A one-shot waiter for something that must not hold a thread (a suspended HTTP request). The caller
 * fills the first four fields and keeps the waiter alive until pc_event_wait_done(). wake(w) is called
 * exactly once, from any thread (the loop's at the deadline, a publisher's on an event), with the bus
 * lock held: it must only resume the request, which then looks again (pc_events_list). */
typedef struct pc_event_waiter pc_event_waiter;
struct pc_event_waiter {
        pc_event_filter filter;
        uint64_t seen;           /* *ret_seen of the caller's last pc_events_list() */
        uint64_t deadline_usec;  /* CLOCK_MONOTONIC */
        void (*wake)(pc_event_waiter *w);
        /* the bus's */
        pc_event_waiter *prev, *next;
        bool registered;
        bool stopping; /* woken because the daemon is stopping: answer now, do not wait again */
};
/* Registers w; wakes it at once when an event arrived after w->seen, the deadline has passed or the
 * daemon is stopping. */
void pc_event_wait(pc_daemon *d, pc_event_waiter *w);
/* Unregisters w if it is still waiting. */
void pc_event_wait_done(pc_daemon *d, pc_event_waiter *w);
/* Wakes every waiter with `stopping` set and refuses new ones (their wake runs at once). Before the HTTP
 * server stops: libmicrohttpd must have no suspended connection left then. */
void pc_event_waiters_stop(pc_daemon *d);

/* ---- execs (execs.c) ---- */

/* POST /v1/sandboxes/{name}/execs: parses and checks the request, has the sandbox's policy decide, records the
 * exec and, when allowed, starts it in a tmux window of the sandbox. *ret is the exec; its "state" is "denied"
 * (the policy said deny: nothing ran), "pending" (waiting for a person), "running" or already "finished".
 * *ret_wait is how long the caller may wait for it to end (the request's "wait", seconds). */
int pc_execs_create(pc_daemon *d, const pc_principal *who, const char *sandbox, json_t *req, json_t **ret,
                    unsigned *ret_wait, pc_error **reterr);
/* One exec, with its output when it ended ("stdout"/"stderr" when valid UTF-8, else "stdout_base64"/
 * "stderr_base64"). *ret_sandbox (64 bytes, may be NULL) gets its sandbox, for waiting on its events. */
int pc_execs_show(pc_daemon *d, const pc_principal *who, const char *id, json_t **ret, char *ret_sandbox,
                  pc_error **reterr);
/* {"execs": [...]} without output, newest first; sandbox and state may be NULL (any). */
int pc_execs_list(pc_daemon *d, const pc_principal *who, const char *sandbox, const char *state, json_t **ret,
                  pc_error **reterr);
/* {"signal": "TERM"|N} to a running exec's command. */
int pc_execs_signal(pc_daemon *d, const pc_principal *who, const char *id, json_t *req, json_t **ret,
                    pc_error **reterr);
/* {"data": "..."|"data_base64": "...", "eof": bool} to a running exec's stdin (opened with "stdin_open"). */
int pc_execs_stdin(pc_daemon *d, const pc_principal *who, const char *id, json_t *req, json_t **ret,
                   pc_error **reterr);
/* The output past byte offsets off[0] (stdout) and off[1] (stderr), for GET /v1/execs/{id}/output: *ret_chunk
 * is {"stream", "data"|"data_base64"} with at most `max` bytes of one stream (off[] advanced past it); else,
 * when the exec ended and nothing is left, *ret_end is its end {"state", "exit_code", "signal", ...}; else
 * both are NULL: wait (pc_execs_output_wait) and ask again. Offsets count the bytes kept (see
 * exec_output_max). */
int pc_execs_output(pc_daemon *d, const pc_principal *who, const char *id, uint64_t off[2], size_t max,
                    json_t **ret_chunk, json_t **ret_end, pc_error **reterr);
/* A one-shot waiter for more output of one exec (or its end); wake(w) runs once, from any thread, with the
 * engine's lock held: it must only resume the request. */
typedef struct pc_exec_output_waiter pc_exec_output_waiter;
struct pc_exec_output_waiter {
        void (*wake)(pc_exec_output_waiter *w);
        /* the engine's */
        pc_exec_output_waiter *next;
        void *exec;
};
/* Registers w for exec ID; wakes it at once when more than off[] is there already or the exec is not running. */
void pc_execs_output_wait(pc_daemon *d, const char *id, const uint64_t off[2], pc_exec_output_waiter *w);
void pc_execs_output_wait_done(pc_daemon *d, pc_exec_output_waiter *w);
/* ---- the permission broker (permissions.c) ---- */

/* For an `ask` decision (the verdict's JSON) of COMMAND in CWD of SANDBOX: whether a remembered approval
 * covers it (exact: same command and directory; prefix: a simple command starting with the rule's words).
 * Always false for any other decision: a policy `deny` is never overridden. */
bool pc_permissions_remembered(pc_daemon *d, const char *sandbox, const char *command, const char *cwd,
                               json_t *decision);
/* Makes the pending permission request for exec EXEC_ID (stored, audited, event permission.requested); it
 * expires after the config's permission_timeout. The exec engine learns the outcome from
 * pc_execs_permission_decided(), on the loop's thread, also after a daemon restart. */
int pc_permissions_ask(pc_daemon *d, const char *sandbox, const char *exec_id, const char *command, const char *cwd,
                       json_t *decision, char ret_id[static 33], pc_error **reterr);
/* Defined by the exec engine (execs.c): approved runs the exec, else it is denied with REASON ("expired" on
 * expiry). Called at most once per decision the engine has not acknowledged; an exec that is no longer
 * waiting is ignored. */
void pc_execs_permission_decided(pc_daemon *d, const char *exec_id, bool approved, const char *reason);
/* GET /v1/permissions?state=pending|approved|denied|expired|all&sandbox= -> {"permissions": [...]} */
int pc_permissions_list(pc_daemon *d, const char *state, const char *sandbox, json_t **ret, pc_error **reterr);
int pc_permissions_show(pc_daemon *d, const char *id, json_t **ret, pc_error **reterr);
/* POST .../approve {"scope", "minutes", "device", "signature", "expires"}, .../deny {"reason"}: the request
 * as decided. A signed approval is verified (pc_devices_verify_approval()) before anything is stored;
 * with require_signed_approvals an unsigned one is refused. */
int pc_permissions_approve(pc_daemon *d, const pc_principal *who, const char *id, json_t *req, json_t **ret,
                           pc_error **reterr);
int pc_permissions_deny(pc_daemon *d, const pc_principal *who, const char *id, json_t *req, json_t **ret,
                        pc_error **reterr);
/* GET /v1/permissions/rules?sandbox= -> {"rules": [...]} (unexpired, of existing sandboxes); DELETE one. */
int pc_permission_rules_list(pc_daemon *d, const char *sandbox, json_t **ret, pc_error **reterr);
int pc_permission_rules_delete(pc_daemon *d, const pc_principal *who, const char *id, pc_error **reterr);
/* ---- devaudit (audit.c, devices.c) ---- */
/* GET /v1/audit: rows after SINCE (at most LIMIT, 1..1000) as {"audit": [...], "next": last seq}. */
int pc_audit_list(pc_daemon *d, uint64_t since, unsigned limit, json_t **ret, pc_error **reterr);
/* GET /v1/audit/verify: {"ok", "rows", "first_bad", "reason"} after checking every row's hash, the chain and
 * the recorded head (edited, inserted, deleted and cut-off rows all fail). */
int pc_audit_verify(pc_daemon *d, json_t **ret, pc_error **reterr);
/* Devices: phones whose Ed25519 key may sign approvals. REQ is {"name", "public_key"} (base64, 32 bytes). */
int pc_devices_add(pc_daemon *d, const pc_principal *who, json_t *req, json_t **ret, pc_error **reterr);
int pc_devices_list(pc_daemon *d, json_t **ret, pc_error **reterr);
int pc_devices_remove(pc_daemon *d, const pc_principal *who, const char *id, pc_error **reterr);
/* 0 when SIGNATURE_B64 is DEVICE_ID's signature over pc_approval_message(ID, COMMAND, CWD, SCOPE, MINUTES,
 * EXPIRES) and EXPIRES has not passed; else -EPERM with the reason (unknown or removed device, malformed or
 * bad signature, expired). */
int pc_devices_verify_approval(pc_daemon *d, const char *device_id, const char *signature_b64, const char *id,
                               const char *command, const char *cwd, const char *scope, unsigned minutes,
                               int64_t expires, pc_error **reterr);
/* ---- keys (keys.c) ---- */

/* People's SSH public keys. add: {"key": "<OpenSSH public key line>", "sandboxes": [names] (optional: every
 * sandbox)} -> the key {"id", "type", "key", "comment", "bits", "fingerprint", "sandboxes", "created",
 * "created_by"}; a key registered already is EEXIST ("conflict"). Adding and removing reach every running
 * sandbox's ~agent/.ssh/authorized_keys before they return (key.added / key.removed events, audit rows
 * key.add / key.remove). */
int pc_keys_add(pc_daemon *d, const pc_principal *who, json_t *req, json_t **ret, pc_error **reterr);
int pc_keys_list(pc_daemon *d, json_t **ret, pc_error **reterr);
int pc_keys_delete(pc_daemon *d, const pc_principal *who, const char *id, pc_error **reterr);
/* The SSH login (role ssh): KEY ("TYPE BASE64", what sshd authenticated) is registered (else ENOENT) and,
 * with SANDBOX, may enter it (else EACCES); *ret is the key as add returns it. */
int pc_keys_ssh_check(pc_daemon *d, const char *key, const char *sandbox, json_t **ret, pc_error **reterr);
/* ---- files (files.c) ---- */
struct stat;

/* A sandbox's workspace as the files API sees it: a directory fd every path is resolved beneath (never
 * through a symlink, never across a mount, never above it) and the host uid/gid of the sandbox's agent,
 * as which every lookup, read and write is done (setfsuid/setfsgid in the calling thread), so the API can
 * do nothing the agent could not do itself. Paths are checked with pc_files_path_check() first. */
typedef struct pc_files_ws {
        int fd;
        uid_t uid;
        gid_t gid;
} pc_files_ws;
int pc_files_ws_open(pc_daemon *d, const pc_principal *who, const char *sandbox, pc_files_ws *ret,
                     pc_error **reterr);
void pc_files_ws_close(pc_files_ws *ws);
/* Opens `path` for reading: a regular file or a directory (O_RDONLY, *ret_st filled); a symlink gives
 * -ELOOP, a fifo, socket or device -EPERM, each with a message; the file itself is never opened then. */
int pc_files_open_read(pc_files_ws *ws, const char *path, int *ret_fd, struct stat *ret_st, pc_error **reterr);
/* The directory `path` as {"path", "entries": [{name, type, size, mode, mtime}], "next_cursor"}: entries
 * sorted by name, those after `cursor` (NULL: from the start), at most `limit`; `recursive`: every entry
 * below it, named by its relative path (not entering symlinks or other mounts). */
int pc_files_list(pc_files_ws *ws, const char *path, const char *cursor, unsigned limit, bool recursive,
                  json_t **ret, pc_error **reterr);
/* Uploads: a temporary file next to `path` (created as the agent; parents made when `parents`), filled by
 * write(), then fsync'd and renamed over `path` by commit; free removes a temporary file left over. */
typedef struct pc_files_upload pc_files_upload;
int pc_files_upload_begin(pc_files_ws *ws, const char *path, bool parents, pc_files_upload **ret,
                          pc_error **reterr);
int pc_files_upload_write(pc_files_upload *u, const void *data, size_t n);
int pc_files_upload_commit(pc_files_upload *u, bool *ret_created, pc_error **reterr);
pc_files_upload *pc_files_upload_free(pc_files_upload *u);
int pc_files_delete(pc_files_ws *ws, const char *path, pc_error **reterr);
int pc_files_move(pc_files_ws *ws, const char *from, const char *to, pc_error **reterr);
/* The audit row of a change made through the files API: action file.put, file.delete or file.move, the
 * sandbox as its target, the path(s) as detail. */
int pc_files_audit(pc_daemon *d, const pc_principal *who, const char *action, const char *sandbox, const char *detail);
/* Signed download links: GET /v1/links/SANDBOX/PATH?expires=E&sig=S, valid until E (unix seconds), S an
 * HMAC-SHA256 (key in the settings table) over sandbox, path and E; compared in constant time. */
#define PC_FILES_LINK_MINUTES_MAX 10080u /* a week */
int pc_files_link_create(pc_daemon *d, const char *sandbox, const char *path, unsigned minutes, int64_t *ret_expires,
                         char ret_sig[static 65], pc_error **reterr);
int pc_files_link_verify(pc_daemon *d, const char *sandbox, const char *path, const char *expires, const char *sig,
                         pc_error **reterr);
/* ---- webhooks (webhooks.c) ---- */
/* POST /v1/webhooks/test: publishes webhook.ping; {"seq": N}. */
int pc_webhooks_ping(pc_daemon *d, const pc_principal *who, json_t **ret, pc_error **reterr);
/* GET /v1/webhooks/deliveries: the delivery log, newest first: {"deliveries": [...]}; state NULL = any. */
int pc_webhooks_deliveries(pc_daemon *d, const char *state, unsigned limit, json_t **ret, pc_error **reterr);
/* A directory as a tar stream (GNU format, long names as ././@LongLink): read() gives the next bytes, 0 at
 * the end. Walked by fd, as the agent, never following a symlink (stored as one) or entering another mount;
 * fifos, sockets, devices and what the agent may not read are left out. */
typedef struct pc_files_tar pc_files_tar;
int pc_files_tar_new(pc_files_ws *ws, const char *path, pc_files_tar **ret, pc_error **reterr);
ssize_t pc_files_tar_read(pc_files_tar *t, char *buf, size_t max);
pc_files_tar *pc_files_tar_free(pc_files_tar *t);
