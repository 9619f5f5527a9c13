/* SPDX-License-Identifier: MIT */
/* The audit ledger's routes (GET /v1/audit, GET /v1/audit/verify) and the devices' (/v1/devices). */
#include "api-internal.h"

#define AUDIT_PAGE_DEFAULT 100u
#define AUDIT_PAGE_MAX     1000u

static int reply(api_request *rq, unsigned status, int r, json_t *j, pc_error *e)
{
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        return api_reply_json(rq, status, j);
}

int api_get_audit(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        uint64_t since = 0, limit = AUDIT_PAGE_DEFAULT;
        json_t *j = NULL;
        int r;

        if (query_uint(rq, "since", INT64_MAX, &since) < 0)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_query",
                                       "query parameter since must be a sequence number (0 or more)");
        if (query_uint(rq, "limit", AUDIT_PAGE_MAX, &limit) < 0 || limit == 0)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_query",
                                       "query parameter limit must be from 1 to %u", AUDIT_PAGE_MAX);
        r = pc_audit_list(rq->daemon, since, (unsigned) limit, &j, &e);
        return reply(rq, MHD_HTTP_OK, r, j, e);
}

int api_get_audit_verify(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r = pc_audit_verify(rq->daemon, &j, &e);
        return reply(rq, MHD_HTTP_OK, r, j, e);
}

int api_post_devices(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r;

        if (!rq->json)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_body",
                                       "request body must be a JSON object such as "
                                       "{\"name\":\"phone\",\"public_key\":\"BASE64\"}");
        r = pc_devices_add(rq->daemon, &rq->principal, rq->json, &j, &e);
        return reply(rq, MHD_HTTP_CREATED, r, j, e);
}

int api_get_devices(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r = pc_devices_list(rq->daemon, &j, &e);
        return reply(rq, MHD_HTTP_OK, r, j, e);
}

int api_delete_device(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        int r = pc_devices_remove(rq->daemon, &rq->principal, rq->params[0], &e);
        return reply(rq, MHD_HTTP_NO_CONTENT, r, NULL, e);
}
