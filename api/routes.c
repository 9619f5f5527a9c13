/* SPDX-License-Identifier: MIT */
/* The routes: one handler per method and path, and the table server.c dispatches on. A handler
 * translates HTTP to one call of the daemon's interface and its answer back. */
#include <inttypes.h>

#include "api-internal.h"

/* GET /v1/events: a page is at most this many events; a long-poll waits at most this long. */
#define EVENTS_PAGE     500u
#define EVENTS_MAX_WAIT 3600u

#define reply_result api_reply_result

static int get_health(api_request *rq)
{
        /* Minimal on purpose: unauthenticated callers learn only that the daemon answers. */
        return api_reply_json(rq, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
}

static int get_status(api_request *rq)
{
        json_t *j = NULL;
        int r = pc_daemon_status(rq->daemon, &j);
        return reply_result(rq, MHD_HTTP_OK, r, j, NULL);
}

static int post_tokens(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r;

        if (!rq->json)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_body",
                                       "request body must be a JSON object such as {\"role\":\"relay\"}");
        r = pc_tokens_create(rq->daemon, &rq->principal, rq->json, &j, &e);
        return reply_result(rq, MHD_HTTP_CREATED, r, j, e);
}

static int get_tokens(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r = pc_tokens_list(rq->daemon, &j, &e);
        return reply_result(rq, MHD_HTTP_OK, r, j, e);
}

static int delete_token(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        int r = pc_tokens_delete(rq->daemon, &rq->principal, rq->params[0], &e);
        return reply_result(rq, MHD_HTTP_NO_CONTENT, r, NULL, e);
}

static int get_policies(api_request *rq)
{
        json_t *j = NULL;
        int r = pc_policies_list(rq->daemon, &j);
        return reply_result(rq, MHD_HTTP_OK, r, j, NULL);
}

static int post_policies_reload(api_request *rq)
{
        json_t *j = NULL;
        int r = pc_policies_reload(rq->daemon, &j);
        return reply_result(rq, MHD_HTTP_OK, r, j, NULL);
}

static int get_policy(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r = pc_policies_show(rq->daemon, rq->params[0], &j, &e);
        return reply_result(rq, MHD_HTTP_OK, r, j, e);
}

static int post_policy_decide(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r;

        if (!rq->json)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_body",
                                       "request body must be a JSON object such as {\"command\":\"ls -la\"}");
        r = pc_policies_decide(rq->daemon, rq->params[0], rq->json, &j, &e);
        return reply_result(rq, MHD_HTTP_OK, r, j, e);
}

static int post_sandboxes(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r;

        if (!rq->json)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_body",
                                       "request body must be a JSON object such as {\"name\":\"dev\"}");
        r = pc_sandboxes_create(rq->daemon, &rq->principal, rq->json, &j, &e);
        return reply_result(rq, MHD_HTTP_CREATED, r, j, e);
}

static int get_sandboxes(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r = pc_sandboxes_list(rq->daemon, &rq->principal, &j, &e);
        return reply_result(rq, MHD_HTTP_OK, r, j, e);
}

/* GET/start/stop of one sandbox: the same call shape, the sandbox as the answer. */
static int sandbox_op(api_request *rq,
                      int (*op)(pc_daemon *, const pc_principal *, const char *, json_t **, pc_error **))
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r = op(rq->daemon, &rq->principal, rq->params[0], &j, &e);
        return reply_result(rq, MHD_HTTP_OK, r, j, e);
}

static int get_sandbox(api_request *rq)
{
        return sandbox_op(rq, pc_sandboxes_show);
}

static int post_sandbox_start(api_request *rq)
{
        return sandbox_op(rq, pc_sandboxes_start);
}

static int post_sandbox_stop(api_request *rq)
{
        return sandbox_op(rq, pc_sandboxes_stop);
}

static int delete_sandbox(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        const char *purge = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "purge");
        bool p = false;
        int r;

        if (purge && parse_bool(purge, &p) < 0)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_query",
                                       "query parameter purge must be true or false");
        r = pc_sandboxes_delete(rq->daemon, &rq->principal, rq->params[0], p, &e);
        return reply_result(rq, MHD_HTTP_NO_CONTENT, r, NULL, e);
}

static int get_images(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r = pc_images_list(rq->daemon, &j, &e);
        return reply_result(rq, MHD_HTTP_OK, r, j, e);
}

static int delete_image(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        int r = pc_images_delete(rq->daemon, &rq->principal, rq->params[0], &e);
        return reply_result(rq, MHD_HTTP_NO_CONTENT, r, NULL, e);
}

/* The build's events as the response body, read as libmicrohttpd sends it (blocking this pool thread while
 * the script is quiet; a build is rare and admin-only). */
static ssize_t image_build_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
        ssize_t n = pc_image_build_read(cls, buf, max);
        return n > 0 ? n : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void image_build_done(void *cls)
{
        pc_image_build_free(cls);
}

static int post_images(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        struct MHD_Response *resp;
        pc_image_build *b = NULL;
        enum MHD_Result ok;
        int r;

        if (!rq->json)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_body",
                                       "request body must be a JSON object such as {\"name\":\"base\"}");
        r = pc_images_build(rq->daemon, &rq->principal, rq->json, &b, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, image_build_reader, b, image_build_done);
        if (!resp) {
                pc_image_build_free(b);
                return MHD_NO;
        }
        /* debootstrap may be quiet for minutes (downloads): no idle timeout for this answer. */
        MHD_set_connection_option(rq->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson");
        api_request_uncount(rq);
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        ok = MHD_queue_response(rq->conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        rq->replied = true;
        return ok;
}

static int get_whoami(api_request *rq)
{
        json_t *j = pc_principal_to_json(&rq->principal);
        return j ? api_reply_json(rq, MHD_HTTP_OK, j) : MHD_NO;
}

int query_uint(api_request *rq, const char *key, uint64_t max, uint64_t *ret)
{
        const char *v = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
        uint64_t u;

        if (!v)
                return 0;
        if (parse_uint64(v, &u) < 0 || u > max)
                return -EINVAL;
        *ret = u;
        return 0;
}

/* First call: the query becomes the waiter's filter and deadline. */
static int events_begin(api_request *rq)
{
        const char *sandbox = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "sandbox");
        const char *type = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "type");
        pc_event_filter *f = &rq->waiter.filter;
        uint64_t wait = 0;

        if (query_uint(rq, "since", INT64_MAX, &rq->since) < 0)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_query",
                                       "query parameter since must be a sequence number (0 or more)");
        if (query_uint(rq, "wait", EVENTS_MAX_WAIT, &wait) < 0)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_query",
                                       "query parameter wait must be seconds from 0 to %u", EVENTS_MAX_WAIT);
        f->type = _PC_EVENT_TYPE_MAX;
        if (type) {
                f->type = pc_event_type_from_string(type);
                if (f->type < 0)
                        return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_query",
                                               "unknown event type \"%s\" (see GET /v1/events in api/openapi.yaml)",
                                               type);
        }
        if (sandbox && !name_is_valid(sandbox))
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_query",
                                       "query parameter sandbox must be a sandbox name");
        /* An agent sees its own sandbox's events only. */
        if (rq->principal.role == PC_ROLE_AGENT) {
                if (sandbox && !streq(sandbox, rq->principal.sandbox))
                        return api_reply_error(rq, MHD_HTTP_FORBIDDEN, "forbidden",
                                               "this agent is scoped to sandbox \"%s\", not \"%s\"",
                                               rq->principal.sandbox, sandbox);
                sandbox = rq->principal.sandbox;
        }
        snprintf(f->sandbox, sizeof(f->sandbox), "%s", sandbox ?: "");
        rq->waiter.deadline_usec = now_usec(CLOCK_MONOTONIC) + wait * 1000000u;
        rq->wait_started = true;
        return MHD_YES;
}

/* The long-poll: answers at once when events after `since` exist (or wait is 0), else suspends until
 * one arrives or the wait bound passes (then the answer has no events). */
static int get_events(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        uint64_t seen = 0;
        json_t *j = NULL;
        int r;

        if (!rq->wait_started) {
                r = events_begin(rq);
                if (rq->replied || r != MHD_YES)
                        return r;
        }
        r = pc_events_list(rq->daemon, &rq->waiter.filter, rq->since, EVENTS_PAGE, &j, &seen, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        if (json_array_size(json_object_get(j, "events")) > 0 || rq->waiter.stopping ||
            now_usec(CLOCK_MONOTONIC) >= rq->waiter.deadline_usec)
                return api_reply_json(rq, MHD_HTTP_OK, j);
        json_decref(j);
        return api_suspend_until_event(rq, seen);
}

/* Every route the server serves; tests/integration check this table against api/openapi.yaml. */
const api_route api_routes[] = {
        { "GET", "/v1/health", API_NO_AUTH, get_health },
        { "GET", "/v1/status", API_ANY_ROLE, get_status },
        { "GET", "/v1/whoami", API_ANY_ROLE, get_whoami },
        { "GET", "/v1/events", API_ANY_ROLE, get_events },
        { "POST", "/v1/tokens", API_ROLE(PC_ROLE_ADMIN), post_tokens },
        { "GET", "/v1/tokens", API_ROLE(PC_ROLE_ADMIN), get_tokens },
        { "DELETE", "/v1/tokens/{id}", API_ROLE(PC_ROLE_ADMIN), delete_token },
        { "GET", "/v1/policies", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY), get_policies },
        { "POST", "/v1/policies/reload", API_ROLE(PC_ROLE_ADMIN), post_policies_reload },
        { "GET", "/v1/policies/{name}", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY), get_policy },
        { "POST", "/v1/policies/{name}/decide", API_ANY_ROLE, post_policy_decide },
        { "POST", "/v1/sandboxes", API_ROLE(PC_ROLE_ADMIN), post_sandboxes },
        { "GET", "/v1/sandboxes", API_ANY_ROLE, get_sandboxes },
        { "GET", "/v1/sandboxes/{name}", API_ANY_ROLE, get_sandbox },
        { "DELETE", "/v1/sandboxes/{name}", API_ROLE(PC_ROLE_ADMIN), delete_sandbox },
        { "POST", "/v1/sandboxes/{name}/start", API_ROLE(PC_ROLE_ADMIN), post_sandbox_start },
        { "POST", "/v1/sandboxes/{name}/stop", API_ROLE(PC_ROLE_ADMIN), post_sandbox_stop },
        { "POST", "/v1/sandboxes/{name}/sessions", API_ROLE(PC_ROLE_ADMIN), api_post_sandbox_session },
        { "GET", "/v1/permissions", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY), api_get_permissions },
        { "GET", "/v1/permissions/rules", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY), api_get_permission_rules },
        { "DELETE", "/v1/permissions/rules/{id}", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY),
          api_delete_permission_rule },
        { "GET", "/v1/permissions/{id}", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY), api_get_permission },
        { "POST", "/v1/permissions/{id}/approve", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY),
          api_post_permission_approve },
        { "POST", "/v1/permissions/{id}/deny", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY), api_post_permission_deny },
        { "GET", "/v1/sandboxes/{name}/files", API_ANY_ROLE, api_get_files_root },
        { "GET", "/v1/sandboxes/{name}/files/{path*}", API_ANY_ROLE, api_get_file },
        { "PUT", "/v1/sandboxes/{name}/files/{path*}", API_ANY_ROLE, api_put_file },
        { "DELETE", "/v1/sandboxes/{name}/files/{path*}", API_ANY_ROLE, api_delete_file },
        { "POST", "/v1/sandboxes/{name}/files/{path*}", API_ANY_ROLE, api_post_file },
        { "GET", "/v1/links/{name}/{path*}", API_NO_AUTH, api_get_link },
        { "GET", "/v1/images", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY), get_images },
        { "POST", "/v1/images", API_ROLE(PC_ROLE_ADMIN), post_images },
        { "DELETE", "/v1/images/{name}", API_ROLE(PC_ROLE_ADMIN), delete_image },
        { "POST", "/v1/sandboxes/{name}/execs", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_AGENT), api_post_sandbox_exec },
        { "GET", "/v1/execs", API_ANY_ROLE, api_get_execs },
        { "GET", "/v1/execs/{id}", API_ANY_ROLE, api_get_exec },
        { "GET", "/v1/execs/{id}/output", API_ANY_ROLE, api_get_exec_output },
        { "POST", "/v1/execs/{id}/signal", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_AGENT), api_post_exec_signal },
        { "POST", "/v1/execs/{id}/stdin", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_AGENT), api_post_exec_stdin },
        { "GET", "/v1/audit", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY), api_get_audit },
        { "GET", "/v1/audit/verify", API_ROLE(PC_ROLE_ADMIN), api_get_audit_verify },
        { "POST", "/v1/devices", API_ROLE(PC_ROLE_ADMIN), api_post_devices },
        { "GET", "/v1/devices", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY), api_get_devices },
        { "DELETE", "/v1/devices/{id}", API_ROLE(PC_ROLE_ADMIN), api_delete_device },
        { "POST", "/v1/keys", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY), api_post_keys },
        { "GET", "/v1/keys", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY), api_get_keys },
        { "DELETE", "/v1/keys/{id}", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY), api_delete_key },
        { "POST", "/v1/ssh/authorize", API_ROLE(PC_ROLE_SSH), api_post_ssh_authorize },
        { "POST", "/v1/ssh/sessions", API_ROLE(PC_ROLE_SSH), api_post_ssh_session },
};
const size_t api_routes_n = ELEMENTSOF(api_routes);
