/* SPDX-License-Identifier: MIT */
#include "api-internal.h"

/* Handlers that answer with the daemon's JSON or its error: the shape of most routes. */
static int reply_result(api_request *rq, unsigned status, int r, json_t *j, pc_error *e)
{
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        return api_reply_json(rq, status, j);
}

static int get_health(api_request *rq)
{
        /* Minimal on purpose: unauthenticated callers learn only that the daemon answers. */
        return api_reply_json(rq, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
}

static int get_status(api_request *rq)
{
        json_t *j = NULL;
        int r = pc_daemon_status(api_request_daemon(rq), &j);
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
        r = pc_tokens_create(api_request_daemon(rq), &rq->principal, rq->json, &j, &e);
        return reply_result(rq, MHD_HTTP_CREATED, r, j, e);
}

static int get_tokens(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r = pc_tokens_list(api_request_daemon(rq), &j, &e);
        return reply_result(rq, MHD_HTTP_OK, r, j, e);
}

static int delete_token(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        int r = pc_tokens_delete(api_request_daemon(rq), &rq->principal, rq->params[0], &e);
        return reply_result(rq, MHD_HTTP_NO_CONTENT, r, NULL, e);
}

static int get_policies(api_request *rq)
{
        json_t *j = NULL;
        int r = pc_policies_list(api_request_daemon(rq), &j);
        return reply_result(rq, MHD_HTTP_OK, r, j, NULL);
}

static int post_policies_reload(api_request *rq)
{
        json_t *j = NULL;
        int r = pc_policies_reload(api_request_daemon(rq), &j);
        return reply_result(rq, MHD_HTTP_OK, r, j, NULL);
}

static int get_policy(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r = pc_policies_show(api_request_daemon(rq), rq->params[0], &j, &e);
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
        r = pc_policies_decide(api_request_daemon(rq), rq->params[0], rq->json, &j, &e);
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
        r = pc_sandboxes_create(api_request_daemon(rq), &rq->principal, rq->json, &j, &e);
        return reply_result(rq, MHD_HTTP_CREATED, r, j, e);
}

static int get_sandboxes(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r = pc_sandboxes_list(api_request_daemon(rq), &rq->principal, &j, &e);
        return reply_result(rq, MHD_HTTP_OK, r, j, e);
}

/* GET/start/stop of one sandbox: the same call shape, the sandbox as the answer. */
static int sandbox_op(api_request *rq,
                      int (*op)(pc_daemon *, const pc_principal *, const char *, json_t **, pc_error **))
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r = op(api_request_daemon(rq), &rq->principal, rq->params[0], &j, &e);
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
        r = pc_sandboxes_delete(api_request_daemon(rq), &rq->principal, rq->params[0], p, &e);
        return reply_result(rq, MHD_HTTP_NO_CONTENT, r, NULL, e);
}

static int get_images(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r = pc_images_list(api_request_daemon(rq), &j, &e);
        return reply_result(rq, MHD_HTTP_OK, r, j, e);
}

static int delete_image(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        int r = pc_images_delete(api_request_daemon(rq), &rq->principal, rq->params[0], &e);
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
        r = pc_images_build(api_request_daemon(rq), &rq->principal, rq->json, &b, &e);
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
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        ok = MHD_queue_response(rq->conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        rq->replied = true;
        return ok;
}

/* Every route the server serves; tests/integration check this table against api/openapi.yaml. */
static const api_route routes[] = {
        { "GET", "/v1/health", API_NO_AUTH, get_health },
        { "GET", "/v1/status", API_ANY_ROLE, get_status },
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
        { "GET", "/v1/images", API_ROLE(PC_ROLE_ADMIN) | API_ROLE(PC_ROLE_RELAY), get_images },
        { "POST", "/v1/images", API_ROLE(PC_ROLE_ADMIN), post_images },
        { "DELETE", "/v1/images/{name}", API_ROLE(PC_ROLE_ADMIN), delete_image },
};

void api_routes_print(FILE *f)
{
        for (size_t i = 0; i < ELEMENTSOF(routes); i++)
                fprintf(f, "%s %s\n", routes[i].method, routes[i].pattern);
}

/* Matches `path` against `pattern` segment by segment; {x} takes one non-empty segment. Parameters are
 * copied into rq->path_buf so handlers get NUL-terminated strings. */
static bool match(api_request *rq, const char *pattern, const char *path)
{
        char *out = rq->path_buf, *end = rq->path_buf + sizeof(rq->path_buf);
        size_t np = 0;

        for (;;) {
                if (*pattern == '{') {
                        const char *seg_end = strchrnul(path, '/');
                        size_t n = (size_t) (seg_end - path);

                        if (n == 0 || np >= ELEMENTSOF(rq->params) || out + n + 1 > end)
                                return false;
                        memcpy(out, path, n);
                        out[n] = 0;
                        rq->params[np++] = out;
                        out += n + 1;
                        path = seg_end;
                        pattern = strchr(pattern, '}') + 1;
                        continue;
                }
                if (*pattern != *path)
                        return false;
                if (*pattern == 0)
                        return true;
                pattern++;
                path++;
        }
}

int api_dispatch(api_request *rq)
{
        char allow[128] = "";
        const char *path = rq->url;
        size_t n = strlen(path);

        /* A trailing slash names the same resource. */
        if (n > 1 && path[n - 1] == '/' && n < sizeof(rq->path_buf)) {
                static __thread char trimmed[1024];
                memcpy(trimmed, path, n - 1);
                trimmed[n - 1] = 0;
                path = trimmed;
        }
        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                if (!match(rq, routes[i].pattern, path))
                        continue;
                if (streq(routes[i].method, rq->method) ||
                    (streq(rq->method, "HEAD") && streq(routes[i].method, "GET")))
                        return api_run_route(rq, &routes[i]);
                if (!strstr(allow, routes[i].method)) {
                        if (allow[0])
                                strncat(allow, ", ", sizeof(allow) - strlen(allow) - 1);
                        strncat(allow, routes[i].method, sizeof(allow) - strlen(allow) - 1);
                }
        }
        if (allow[0]) {
                rq->allow = allow;
                return api_reply_error(rq, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                       "%s is not allowed on %s (allowed: %s)", rq->method, path, allow);
        }
        return api_reply_error(rq, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint: %s %s", rq->method,
                               path);
}
