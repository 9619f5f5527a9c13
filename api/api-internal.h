/* SPDX-License-Identifier: MIT */
/* Private to api/: the request, the route table and the reply helpers. Calls run one way: server.c
 * (libmicrohttpd, authentication, dispatch) uses the route table of routes.c, whose handlers use reply.c;
 * nothing calls back into server.c. */
#pragma once

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>

#include "api.h"
#include "common.h"
#include "daemon.h"

typedef enum {
        API_LISTENER_UNIX,  /* RUNTIME_DIR/api.sock: peer credentials or a token */
        API_LISTENER_TCP,   /* tokens only */
        API_LISTENER_AGENT, /* a sandbox's agent socket: the principal is fixed to that sandbox's agent */
        API_LISTENER_SSH,   /* the ssh_socket (ssh_group): the principal is the SSH gateway (role ssh) */
} api_listener_kind;

typedef struct api_route api_route;

/* Whose agent a connection on an agent socket is: the sandbox's name and its identity (instance). */
typedef struct api_agent_identity {
        char sandbox[64];
        char instance[33];
} api_agent_identity;

/* Requests in flight (from their first byte until their answer was sent): a stopping server lets them
 * finish and answer first, so that a client gets its 201 or its cursor rather than a dropped connection
 * (and a retry that finds the sandbox it was never told about). Once `stopping`, new requests on open
 * connections get 503. */
typedef struct api_waiting {
        pthread_mutex_t lock;
        pthread_cond_t done;
        unsigned n;
        bool stopping;
} api_waiting;

typedef struct api_request {
        struct MHD_Connection *conn;
        pc_daemon *daemon;
        uint64_t max_body_size;
        api_listener_kind listener;
        gid_t socket_gid;       /* unix listener: members of this group are local admins */
        const api_agent_identity *agent; /* agent listener: whose agent this connection is */
        const char *method;
        const char *url;
        char *body;
        size_t body_len;
        bool too_large;
        bool bad_uri;           /* the raw URI has a control character or an encoded '/' (see on_uri) */
        bool replied;
        bool authenticated;
        json_t *json;           /* parsed body, NULL when empty */
        pc_principal principal; /* valid when authenticated */
        const char *params[4];  /* {name} segments of the matched route, in order */
        char path_buf[1024];    /* storage for params */
        const char *allow;      /* Allow header for 405 */
        const api_route *route; /* the matched route, once dispatched */
        /* The handler suspended (api_suspend_until_event): on resume it runs again, without routing and
         * authentication again. */
        bool suspended;
        bool waited;            /* counted in *waiting until the request completes */
        api_waiting *waiting;
        struct tcp_watchdog *watchdog; /* TCP listener: connections not authenticated yet (server.c) */
        pc_event_waiter waiter;
        uint64_t since;         /* GET /v1/events: the cursor */
        bool wait_started;
        struct api_session *session; /* a session between its 101 and the upgrade (session.c) */
        struct api_sessions *sessions; /* the server's registry of upgraded sessions (session.c) */
        char exec_id[33];       /* execs.c: the exec a suspended request waits for */
        const char *tail;       /* the {path*} segment of the matched route (in path_buf), or NULL */
        bool stream_body;       /* the body goes to api_files_upload_data(), not into body */
        bool body_complete;     /* stream_body: all of it was received; the handler runs once more */
        struct api_files *files; /* the files API's state of this request (files.c) */
} api_request;

/* Bit per role a route admits; API_NO_AUTH skips authentication entirely (health). */
#define API_ROLE(r)  (1u << (r))
#define API_ANY_ROLE (API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY) | API_ROLE(PC_ROLE_AGENT))
#define API_NO_AUTH  0u

struct api_route {
        const char *method;
        const char *pattern; /* "/v1/tokens/{id}" */
        unsigned roles;
        int (*handler)(api_request *rq); /* returns an MHD_Result */
};

/* Every route served, in routes.c. */
extern const api_route api_routes[];
extern const size_t api_routes_n;

/* Replies (reply.c); each returns an MHD_Result. api_reply_json takes ownership of body (may be NULL). */
int api_reply_json(api_request *rq, unsigned status, json_t *body);
int api_reply_error(api_request *rq, unsigned status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
int api_reply_pc_error(api_request *rq, int r, pc_error *e);
unsigned api_status_for_errno(int errnum);
/* Stops counting the request as in flight: a stream that runs until it is stopped (an image build's
 * events) does not hold up the daemon's stop. */
void api_request_uncount(api_request *rq);
/* Suspends the request until an event matching rq->waiter's filter arrives after `seen`, its deadline
 * passes or the daemon stops; the handler then runs again. Holds no thread meanwhile. */
int api_suspend_until_event(api_request *rq, uint64_t seen);

/* Sessions (session.c): the upgraded connections of POST /v1/sandboxes/{name}/sessions, each served by a
 * thread of its own; done() ends them all and waits before libmicrohttpd stops. */
typedef struct api_session api_session;
typedef struct api_sessions {
        pthread_mutex_t lock;
        pthread_cond_t empty;
        api_session *list;
        bool stopping;
} api_sessions;
void api_sessions_init(api_sessions *r);
void api_sessions_done(api_sessions *r);
int api_post_sandbox_session(api_request *rq);
/* Frees a session whose upgrade never happened (the request ended first). */
void api_session_abandon(api_request *rq);

/* Execs (execs.c): POST /v1/sandboxes/{name}/execs, GET /v1/execs[/{id}[/output]], POST /v1/execs/{id}/signal
 * and /stdin. */
int api_post_sandbox_exec(api_request *rq);
int api_get_execs(api_request *rq);
int api_get_exec(api_request *rq);
int api_get_exec_output(api_request *rq);
int api_post_exec_signal(api_request *rq);
int api_post_exec_stdin(api_request *rq);
/* Answers with the daemon's JSON j (status) or, when r < 0, its error: the shape of most routes. */
int api_reply_result(api_request *rq, unsigned status, int r, json_t *j, pc_error *e);

/* The permission broker's routes (permissions.c). */
int api_get_permissions(api_request *rq);
int api_get_permission(api_request *rq);
int api_post_permission_approve(api_request *rq);
int api_post_permission_deny(api_request *rq);
int api_get_permission_rules(api_request *rq);
int api_delete_permission_rule(api_request *rq);
/* ---- devaudit (audit.c) ---- */
/* Query parameter KEY as a number up to MAX into *ret (left alone when absent); -EINVAL otherwise. */
int query_uint(api_request *rq, const char *key, uint64_t max, uint64_t *ret);
int api_get_audit(api_request *rq);
int api_get_audit_verify(api_request *rq);
int api_post_devices(api_request *rq);
int api_get_devices(api_request *rq);
int api_delete_device(api_request *rq);
/* /v1/keys (keys.c) */
int api_post_keys(api_request *rq);
int api_get_keys(api_request *rq);
int api_delete_key(api_request *rq);

/* The rest of a session request once pc_session_new() accepted it (session.c): the upgrade headers, the
 * audited start, the 101 and the session's thread. Takes over `s`. */
int api_session_upgrade(api_request *rq, pc_session *s);

/* /v1/ssh/ (ssh.c): the SSH login's gateway (role ssh only) */
int api_post_ssh_authorize(api_request *rq);
int api_post_ssh_session(api_request *rq);
/* ---- files (files.c) ---- */
/* GET/HEAD/PUT/DELETE/POST /v1/sandboxes/{name}/files/{path*}; a PUT's body is streamed: the handler runs
 * once when the headers are in (it routes, authenticates and opens the upload), the body goes to
 * api_files_upload_data, and the handler runs again with body_complete. */
int api_get_files_root(api_request *rq);
int api_get_file(api_request *rq);
int api_put_file(api_request *rq);
int api_delete_file(api_request *rq);
int api_post_file(api_request *rq);
int api_get_link(api_request *rq);
void api_files_upload_data(api_request *rq, const char *data, size_t n);
void api_files_free(api_request *rq);
/* Server-Sent Events (sse.c): frames appended to a growing buffer. */
typedef struct sse_buf {
        char *data;
        size_t len, size;
} sse_buf;
int sse_buf_append(sse_buf *b, const char *p, size_t n);
void sse_buf_done(sse_buf *b);
/* "id: ID\nevent: EVENT\ndata: ...\n\n"; event may be NULL; a line break in data starts another data: line. */
int sse_frame(sse_buf *b, uint64_t id, const char *event, const char *data);
/* ": TEXT\n\n", which clients ignore (keep-alive). */
int sse_comment(sse_buf *b, const char *text);
/* A Last-Event-ID we sent: a decimal sequence number up to INT64_MAX; else -EINVAL. */
int sse_parse_last_event_id(const char *s, uint64_t *ret);
/* The client asked for text/event-stream. */
bool sse_accepted(struct MHD_Connection *conn);
/* GET /v1/events as a stream of the events matching f after `since` (or the Last-Event-ID header). */
int api_events_stream(api_request *rq, const pc_event_filter *f, uint64_t since);

/* Webhooks (webhooks.c). */
int api_post_webhooks_test(api_request *rq);
int api_get_webhook_deliveries(api_request *rq);
/* ?watch=1 (files-watch.c): the directory open as dirfd streamed as SSE "change" events; stop ends them all
 * (before libmicrohttpd stops: no connection may stay suspended). */
int api_files_watch(api_request *rq, int dirfd, const char *path);
void api_files_watch_stop(void);
/* A request that proved itself without a token (a signed files link): off the TCP watchdog, like an
 * authenticated one, so a long download is not cut at tcp_auth_timeout (server.c). */
void api_request_trusted(api_request *rq);
