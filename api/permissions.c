/* SPDX-License-Identifier: MIT */
/* The permission broker's routes: the relay (the phone's backend) and admins list pending requests,
 * approve or deny them, and see and drop remembered answers. */
#include "api-internal.h"

static const char *query(api_request *rq, const char *key)
{
        return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* ?sandbox=NAME, checked; *ret NULL when absent. */
static int query_sandbox(api_request *rq, const char **ret)
{
        *ret = query(rq, "sandbox");
        if (*ret && !name_is_valid(*ret))
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_query",
                                       "query parameter sandbox must be a sandbox name");
        return MHD_YES;
}

int api_get_permissions(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        const char *sandbox;
        json_t *j = NULL;
        int r = query_sandbox(rq, &sandbox);

        if (rq->replied)
                return r;
        r = pc_permissions_list(rq->daemon, query(rq, "state"), sandbox, &j, &e);
        return api_reply_result(rq, MHD_HTTP_OK, r, j, e);
}

int api_get_permission(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r = pc_permissions_show(rq->daemon, rq->params[0], &j, &e);
        return api_reply_result(rq, MHD_HTTP_OK, r, j, e);
}

static int decide(api_request *rq, const char *example,
                  int (*op)(pc_daemon *, const pc_principal *, const char *, json_t *, json_t **, pc_error **))
{
        _cleanup_pc_error_ pc_error *e = NULL;
        _cleanup_(json_decrefp) json_t *empty = NULL;
        json_t *j = NULL;
        int r;

        /* An empty body is the defaults (approve once; deny without a reason). */
        if (!rq->json && rq->body_len > 0)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_body",
                                       "request body must be a JSON object such as %s", example);
        if (!rq->json && !(empty = json_object()))
                return MHD_NO;
        r = op(rq->daemon, &rq->principal, rq->params[0], rq->json ?: empty, &j, &e);
        return api_reply_result(rq, MHD_HTTP_OK, r, j, e);
}

int api_post_permission_approve(api_request *rq)
{
        return decide(rq, "{\"scope\":\"exact\",\"minutes\":60}", pc_permissions_approve);
}

int api_post_permission_deny(api_request *rq)
{
        return decide(rq, "{\"reason\":\"not on the production database\"}", pc_permissions_deny);
}

int api_get_permission_rules(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        const char *sandbox;
        json_t *j = NULL;
        int r = query_sandbox(rq, &sandbox);

        if (rq->replied)
                return r;
        r = pc_permission_rules_list(rq->daemon, sandbox, &j, &e);
        return api_reply_result(rq, MHD_HTTP_OK, r, j, e);
}

int api_delete_permission_rule(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        int r = pc_permission_rules_delete(rq->daemon, &rq->principal, rq->params[0], &e);
        return api_reply_result(rq, MHD_HTTP_NO_CONTENT, r, NULL, e);
}
