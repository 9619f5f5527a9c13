/* SPDX-License-Identifier: MIT */
/* Answers: JSON bodies, errors as {"error":{"code","message"}}, and suspension until an event. */
#include "api-internal.h"

int api_reply_json(api_request *rq, unsigned status, json_t *body)
{
        struct MHD_Response *resp;
        char *text = NULL;
        size_t len = 0;
        enum MHD_Result ok;

        if (body) {
                text = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
                json_decref(body);
                if (!text)
                        return MHD_NO;
                len = strlen(text);
                /* Newline-terminated bodies read better with curl and in logs. */
                char *t = realloc(text, len + 2);
                if (!t) {
                        free(text);
                        return MHD_NO;
                }
                text = t;
                text[len++] = '\n';
                text[len] = 0;
        }
        resp = MHD_create_response_from_buffer(len, text ?: (char *) "", text ? MHD_RESPMEM_MUST_FREE
                                                                              : MHD_RESPMEM_PERSISTENT);
        if (!resp) {
                free(text);
                return MHD_NO;
        }
        if (text)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        if (rq->allow)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rq->allow);
        if (status == MHD_HTTP_UNAUTHORIZED)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"pocketcoder\"");
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        ok = MHD_queue_response(rq->conn, status, resp);
        MHD_destroy_response(resp);
        rq->replied = true;
        return ok;
}

int api_reply_error(api_request *rq, unsigned status, const char *code, const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return MHD_NO;
        return api_reply_json(rq, status, json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg));
}

unsigned api_status_for_errno(int errnum)
{
        switch (abs(errnum)) {
        case EINVAL:
        case EDOM:
        case ERANGE:
                return MHD_HTTP_BAD_REQUEST;
        case EACCES:
        case EPERM:
                return MHD_HTTP_FORBIDDEN;
        case ENOENT:
        case ESRCH:
                return MHD_HTTP_NOT_FOUND;
        case EEXIST:
        case EBUSY:
        case EALREADY:
        case EUSERS: /* every uid range or subnet is taken */
        case ENOTEMPTY:
                return MHD_HTTP_CONFLICT;
        case EFBIG:
        case E2BIG:
                return MHD_HTTP_CONTENT_TOO_LARGE;
        case EBADMSG:
                return MHD_HTTP_UNPROCESSABLE_CONTENT;
        case EDQUOT:
        case ENOSPC: /* the state filesystem is full: the change was not made */
                return MHD_HTTP_INSUFFICIENT_STORAGE;
        case EAGAIN:
        case EOPNOTSUPP:
        case ENOTCONN:
        case ECONNREFUSED:
                return MHD_HTTP_SERVICE_UNAVAILABLE;
        default:
                return MHD_HTTP_INTERNAL_SERVER_ERROR;
        }
}

int api_reply_pc_error(api_request *rq, int r, pc_error *e)
{
        if (e)
                return api_reply_error(rq, api_status_for_errno(e->errnum), e->code, "%s", e->message);
        if (r == -ENOMEM)
                return api_reply_error(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory");
        return api_reply_error(rq, api_status_for_errno(r), "internal", "%s", strerror(-r));
}

void api_request_uncount(api_request *rq)
{
        if (!rq->waited)
                return;
        LOCK_GUARD(&rq->waiting->lock);
        rq->waiting->n--;
        rq->waited = false;
        pthread_cond_broadcast(&rq->waiting->done);
}

/* Runs with the event bus's lock held, in whatever thread woke us: only resume. */
static void wake(pc_event_waiter *w)
{
        api_request *rq = (api_request *) ((char *) w - offsetof(api_request, waiter));

        MHD_resume_connection(rq->conn);
}

int api_suspend_until_event(api_request *rq, uint64_t seen)
{
        rq->waiter.seen = seen;
        rq->waiter.wake = wake;
        rq->suspended = true;
        /* Suspended first: the waiter may be woken (resumed) as soon as it is registered, even at once. */
        MHD_suspend_connection(rq->conn);
        pc_event_wait(rq->daemon, &rq->waiter);
        return MHD_YES;
}

int api_reply_result(api_request *rq, unsigned status, int r, json_t *j, pc_error *e)
{
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        return api_reply_json(rq, status, j);
}
