/* SPDX-License-Identifier: MIT */
/* /v1/keys: people's SSH public keys (daemon/keys.c). */
#include "api-internal.h"

int api_post_keys(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r;

        if (!rq->json)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_body",
                                       "request body must be a JSON object such as {\"key\":\"ssh-ed25519 AAAA... "
                                       "me@phone\"}");
        r = pc_keys_add(rq->daemon, &rq->principal, rq->json, &j, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        return api_reply_json(rq, MHD_HTTP_CREATED, j);
}

int api_get_keys(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r = pc_keys_list(rq->daemon, &j, &e);

        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        return api_reply_json(rq, MHD_HTTP_OK, j);
}

int api_delete_key(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        int r = pc_keys_delete(rq->daemon, &rq->principal, rq->params[0], &e);

        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        return api_reply_json(rq, MHD_HTTP_NO_CONTENT, NULL);
}
