/* SPDX-License-Identifier: MIT */
/* POST /v1/webhooks/test and GET /v1/webhooks/deliveries (the delivery engine is daemon/webhooks.c). */
#include "api-internal.h"

#define DELIVERIES_MAX 1000u

int api_post_webhooks_test(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r = pc_webhooks_ping(rq->daemon, &rq->principal, &j, &e);

        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        return api_reply_json(rq, MHD_HTTP_ACCEPTED, j);
}

int api_get_webhook_deliveries(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        const char *state = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "state");
        const char *limit = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "limit");
        uint64_t n = 100;
        json_t *j = NULL;
        int r;

        if (limit && (parse_uint64(limit, &n) < 0 || n < 1 || n > DELIVERIES_MAX))
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_query",
                                       "query parameter limit must be a number from 1 to %u", DELIVERIES_MAX);
        r = pc_webhooks_deliveries(rq->daemon, state, (unsigned) n, &j, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        return api_reply_json(rq, MHD_HTTP_OK, j);
}
