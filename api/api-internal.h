/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>

#include "api.h"
#include "common.h"
#include "daemon.h"

typedef struct api_listener {
        struct api_server *server;
        bool is_unix;
} api_listener;

typedef struct api_request {
        struct MHD_Connection *conn;
        struct api_server *server;
        api_listener *listener;
        const char *method;
        const char *url;
        char *body;
        size_t body_len;
        bool too_large;
        bool replied;
        bool authenticated;
        json_t *json;           /* parsed body, NULL when empty */
        pc_principal principal; /* valid when authenticated */
        const char *params[4];  /* {name} segments of the matched route, in order */
        char path_buf[1024];    /* storage for params */
        const char *allow;      /* Allow header for 405 */
        struct api_session *session; /* a session between its 101 and the upgrade (session.c) */
} api_request;

/* Bit per role a route admits; API_NO_AUTH skips authentication entirely (health). */
#define API_ROLE(r)  (1u << (r))
#define API_ANY_ROLE (API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY) | API_ROLE(PC_ROLE_AGENT))
#define API_NO_AUTH  0u

typedef struct api_route {
        const char *method;
        const char *pattern; /* "/v1/tokens/{id}" */
        unsigned roles;
        int (*handler)(api_request *rq);
} api_route;

int api_dispatch(api_request *rq);
int api_run_route(api_request *rq, const api_route *route);

/* Replies; each returns an MHD_Result. api_reply_json takes ownership of body (may be NULL). */
int api_reply_json(api_request *rq, unsigned status, json_t *body);
int api_reply_error(api_request *rq, unsigned status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
int api_reply_pc_error(api_request *rq, int r, pc_error *e);
unsigned api_status_for_errno(int errnum);
pc_daemon *api_request_daemon(api_request *rq);

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
api_sessions *api_server_sessions(struct api_server *s);
int api_post_sandbox_session(api_request *rq);
/* Frees a session whose upgrade never happened (the request ended first). */
void api_session_abandon(api_request *rq);
