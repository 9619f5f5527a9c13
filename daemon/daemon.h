/* SPDX-License-Identifier: MIT */
/* pocketcoderd's public interface for the HTTP layer (api/). The daemon owns state (sqlite), policies and
 * sandboxes; api/ only translates HTTP to these calls. Resources cross this boundary as jansson objects
 * so the API never re-encodes them. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct pc_error pc_error;
typedef struct pc_daemon pc_daemon;

typedef enum {
        PC_ROLE_ADMIN,
        PC_ROLE_RELAY,
        PC_ROLE_AGENT,
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
        uid_t uid;
} pc_principal;

/* Authenticates "Bearer <token>" (the part after "Bearer "). Returns 0 and fills *ret, -EACCES for an
 * unknown/revoked token, -EINVAL for a malformed one. Constant-time compare of the hash. */
int pc_daemon_authenticate(pc_daemon *d, const char *token, pc_principal *ret);

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
