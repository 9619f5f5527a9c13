/* SPDX-License-Identifier: MIT */
/* Private to daemon/: the API's request bodies, checked and read without touching any state, so that bad
 * input is refused before anything is stored and the checks run alone (tests/fuzz/fuzz-api-request.c).
 * Each refuses a body that is not an object or has unknown fields first; strings in the results point into
 * the request, and the results are set only on success. */
#pragma once

#include "daemon.h"
#include "isolate.h"

/* POST /v1/sandboxes {"name", "policy", "memory", "pids", "cpus", "network", "rootfs", "disk", "inodes"}:
 * whether policy is loaded is for the caller to check. */
typedef struct pc_sandbox_request {
        const char *name, *policy, *rootfs;
        isolate_net_mode network;
        isolate_limits limits;
        bool has_disk, has_inodes; /* given: else the config's sandbox_disk / sandbox_inodes */
        uint64_t disk_max, inodes_max;
} pc_sandbox_request;
int pc_sandbox_request_parse(json_t *req, pc_sandbox_request *ret, pc_error **reterr);

/* POST /v1/tokens {"role", "sandbox", "label", "ttl_seconds"} */
#define TOKEN_TTL_MAX (10 * 366 * 24 * 3600) /* ten years */
typedef struct pc_token_request {
        pc_role role;
        const char *sandbox;  /* agent tokens only */
        const char *label;    /* NULL = none */
        uint64_t ttl_seconds; /* 0 = no expiry */
} pc_token_request;
int pc_token_request_parse(json_t *req, pc_token_request *ret, pc_error **reterr);

/* POST /v1/policies/{name}/decide {"command"} */
int pc_decide_request_parse(json_t *req, const char **ret_command, size_t *ret_len, pc_error **reterr);

/* POST /v1/sandboxes/{name}/sessions {"kind", "argv", "root", "tty", "cwd", "term", "rows", "cols"}: run needs
 * argv; enter without argv attaches to the sandbox's tmux session; tty defaults to true for enter only. */
typedef struct pc_session_request {
        bool enter, as_root, tty;
        json_t *argv;            /* array of strings, NULL when absent */
        const char *cwd, *term;  /* NULL when absent */
        unsigned rows, cols;     /* 0 when absent */
} pc_session_request;
int pc_session_request_parse(json_t *req, pc_session_request *ret, pc_error **reterr);

/* POST /v1/images {"name", "suite", "packages", "mirror", "variant"}: the same rules as
 * rootfs/build-image.sh, so that a bad request is refused before the build starts. */
typedef struct pc_image_request {
        const char *name, *suite, *mirror, *variant; /* NULL when absent (the script's defaults) */
        json_t *packages;                            /* array of package names, NULL when absent */
} pc_image_request;
int pc_image_request_parse(json_t *req, pc_image_request *ret, pc_error **reterr);

/* A network mode's name in the API and the store ("none", "loopback", "egress"). */
const char *pc_net_to_string(isolate_net_mode m);
int pc_net_from_string(const char *s);

/* POST /v1/permissions/{id}/approve {"scope", "minutes", "device", "signature", "expires"}: scope once (the
 * default), exact or prefix; minutes how long exact/prefix are remembered (default 60, 1..10080; 0 for once);
 * device + signature (base64) + expires (unix seconds) make a signed approval, all three or none. */
#define PC_APPROVE_MINUTES_DEFAULT 60u
#define PC_APPROVE_MINUTES_MAX     10080u /* a week */
typedef struct pc_approve_request {
        const char *scope;
        unsigned minutes;
        const char *device, *signature; /* NULL when unsigned */
        int64_t expires;
} pc_approve_request;
int pc_approve_request_parse(json_t *req, pc_approve_request *ret, pc_error **reterr);

/* POST /v1/permissions/{id}/deny {"reason"}: what the engine is told; NULL when absent. */
#define PC_DENY_REASON_MAX 1024u
int pc_deny_request_parse(json_t *req, const char **ret_reason, pc_error **reterr);
/* ---- keys (keys.c) ---- */
#include "sshkey.h"
/* POST /v1/keys {"key": "<OpenSSH public key line>", "sandboxes": [names]}: the key parsed (pc_sshkey_done()
 * it) and the scope, NULL for every sandbox (else 1..PC_KEY_SANDBOXES_MAX distinct valid names). */
#define PC_KEY_SANDBOXES_MAX 64u
typedef struct pc_key_request {
        pc_sshkey key;
        json_t *sandboxes;
} pc_key_request;
int pc_key_request_parse(json_t *req, pc_key_request *ret, pc_error **reterr);
