/* SPDX-License-Identifier: MIT */
/* Private to the exec engine (execs.c) and its fuzz target: the request parser. */
#pragma once

#include "crypto.h"
#include "daemon-internal.h"

#define PC_EXEC_COMMAND_MAX   (64u * 1024u) /* bytes of "cmd" */
#define PC_EXEC_CWD_MAX       4096u
#define PC_EXEC_ENV_MAX       64u           /* variables */
#define PC_EXEC_ENV_BYTES_MAX (64u * 1024u) /* all names and values together */
#define PC_EXEC_TIMEOUT_DEFAULT 60u
#define PC_EXEC_TIMEOUT_MAX   86400u        /* seconds */
#define PC_EXEC_WAIT_DEFAULT  30u
#define PC_EXEC_WAIT_MAX      3600u         /* seconds */

/* A parsed POST /v1/sandboxes/{name}/execs body. Strings are borrowed from the JSON object, except stdin. */
typedef struct pc_exec_request {
        const char *cmd;
        const char *cwd;   /* "/workspace" or below, no ".." component */
        json_t *env;       /* an object of string values (borrowed), or NULL */
        char *stdin_data;  /* "stdin" or decoded "stdin_base64" (owned), NULL: none */
        size_t stdin_len;
        bool stdin_open;   /* keep stdin open for POST /v1/execs/{id}/stdin after stdin_data */
        unsigned timeout;  /* seconds */
        unsigned wait;     /* seconds */
} pc_exec_request;

/* Checks every field (unknown ones too) and fills *ret; errors say which field and why ("invalid_request"). */
int pc_exec_request_parse(json_t *req, pc_exec_request *ret, pc_error **reterr);
void pc_exec_request_done(pc_exec_request *q);

/* Base64 (RFC 4648, with padding). decode rejects anything else (whitespace included): -EINVAL. */
