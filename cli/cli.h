/* SPDX-License-Identifier: MIT */
/* pocketcoder CLI: shared declarations between the dispatcher (main.c) and the command files. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Exit statuses of every command. */
enum {
        CLI_EXIT_OK = 0,
        CLI_EXIT_FAILED = 1,
        CLI_EXIT_USAGE = 2,
};

typedef struct cli_global {
        const char *socket; /* unix socket path (default RUNTIME_DIR/api.sock) */
        const char *url;    /* http://host:port, overrides socket */
        const char *token;  /* bearer token */
        bool json;          /* print the API's JSON instead of tables */
} cli_global;

/* Performs METHOD PATH (e.g. "/v1/status") with an optional JSON body. On transport success returns 0
 * and sets *ret_status to the HTTP status and *ret_json to the parsed body (NULL if empty). On failure
 * prints a message that says what to do and returns negative errno. */
int cli_request(const cli_global *g, const char *method, const char *path, json_t *body, long *ret_status,
                json_t **ret_json);

/* The same over https:// with libcurl, loaded on first use (http-curl.c). */
int cli_curl_request(const cli_global *g, const char *method, const char *path, json_t *body, long *ret_status,
                     json_t **ret_json);

/* Parses a response body (empty: *ret_json NULL); says so when it is not JSON. */
int cli_parse_body(long status, const char *body, size_t len, json_t **ret_json);

/* The pieces of cli_request() for the session upgrade (session.c): a connected socket to the daemon (unix
 * socket, or the host of an http:// URL, whose path becomes *ret_prefix), an HTTP/1.1 request on it
 * ("Connection: Upgrade, Upgrade: UPGRADE" when upgrade is set, else "Connection: close"), and the response
 * (with upgrade: read byte by byte up to the end of the head, so that nothing after a 101 is consumed). */
int cli_connect(const cli_global *g, const char **ret_prefix);
int cli_send_request(int fd, const cli_global *g, const char *prefix, const char *method, const char *path,
                     json_t *body, const char *upgrade);
int cli_read_response(int fd, bool upgrade, long *ret_status, json_t **ret_json);
void cli_print_unreachable(const cli_global *g, int r);

/* METHOD PATH whose 200 answer is newline-delimited JSON that arrives over time (an image build's progress):
 * calls on_event for each line as it comes; stops when on_event returns non-zero (returned) or at the end
 * (0). Any other status: prints the API's error and returns -EIO. */
int cli_stream(const cli_global *g, const char *method, const char *path, json_t *body,
               int (*on_event)(json_t *event, void *userdata), void *userdata);

/* cli_request() that expects status WANT: on anything else prints the API's error (or the transport
 * failure) and returns negative errno; on WANT sets *ret_json (may be NULL for an empty body). */
int cli_call(const cli_global *g, const char *method, const char *path, json_t *body, long want,
             json_t **ret_json);

/* Prints an API error body ({"error":{"code","message"}}) as "pocketcoder: MESSAGE" to stderr and
 * returns CLI_EXIT_FAILED. */
int cli_print_api_error(long status, json_t *body);

/* Prints JSON to stdout, indented. */
void cli_print_json(json_t *j);

/* Command entry points. argv[0] is the command name ("policy"); return a CLI_EXIT_* status. */
int cmd_status(int argc, char **argv, const cli_global *g);
int cmd_token(int argc, char **argv, const cli_global *g);
int cmd_policy(int argc, char **argv, const cli_global *g);
int cmd_sandbox(int argc, char **argv, const cli_global *g);
int cmd_enter(int argc, char **argv, const cli_global *g);
int cmd_image(int argc, char **argv, const cli_global *g);
int cmd_exec(int argc, char **argv, const cli_global *g);
int cmd_permissions(int argc, char **argv, const cli_global *g);
int cmd_keys(int argc, char **argv, const cli_global *g);
int cmd_ssh(int argc, char **argv, const cli_global *g);
int cmd_files(int argc, char **argv, const cli_global *g);

/* A session (enter, sandbox run; session.c): POSTs req to /v1/sandboxes/NAME/sessions with the upgrade,
 * relays until the process exits and returns its status (or CLI_EXIT_FAILED after saying why). */
int cli_session(const cli_global *g, const char *name, json_t *req, bool tty);
/* The same on another session route (the SSH gateway's /v1/ssh/sessions). */
int cli_session_path(const cli_global *g, const char *path, json_t *req, bool tty);

/* A Unix time from the API as "2026-11-25 12:45:00Z" in buf, or "-" when absent. */
const char *cli_format_time(json_t *t, char buf[static 32]);

/* Prints rows of cells (nrows * ncols, NULL shown as "-") under a header, columns aligned. */
void cli_table_print(const char *const *header, size_t ncols, char **cells, size_t nrows);

/* jansson ships json_decrefp() for cleanup attributes. */
#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))

/* ---- devaudit (cmd-devices.c, cmd-audit.c, sign.c) ---- */
int cmd_devices(int argc, char **argv, const cli_global *g);
int cmd_audit(int argc, char **argv, const cli_global *g);
/* A new device key: writes the seed to KEYFILE (base64, one line, mode 0600; never over an existing file)
 * and returns its public key. */
int cli_key_generate(const char *keyfile, uint8_t pub[static 32]);
/* Reads KEYFILE's seed; -EINVAL when it is not one line of base64 of 32 bytes. */
int cli_key_read(const char *keyfile, uint8_t seed[static 32]);
/* The base64 signature of pc_approval_message(ID, COMMAND, CWD, SCOPE, MINUTES, EXPIRES) with KEYFILE's key. */
int cli_sign_approval(const char *keyfile, const char *id, const char *command, const char *cwd, const char *scope,
                      unsigned minutes, int64_t expires, char **ret_sig_b64);
