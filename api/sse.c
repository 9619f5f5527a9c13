/* SPDX-License-Identifier: MIT */
/* Server-Sent Events: the framing (id:/event:/data: lines, comments), the Last-Event-ID cursor, and
 * GET /v1/events as a stream. A stream holds no thread while it has nothing to send: its content reader
 * suspends the connection and registers a waiter on the event bus, whose wake resumes it (an event, the
 * keep-alive deadline, or the daemon stopping, which ends the stream). */
#include <inttypes.h>
#include <stdio.h>

#include "api-internal.h"

/* A stream reads the bus a page at a time. */
#define SSE_PAGE 500u

int sse_buf_append(sse_buf *b, const char *p, size_t n)
{
        if (b->len + n + 1 > b->size) {
                size_t size = MAX(b->size * 2, b->len + n + 1);
                char *q = realloc(b->data, size);

                if (!q)
                        return -ENOMEM;
                b->data = q;
                b->size = size;
        }
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = 0;
        return 0;
}

void sse_buf_done(sse_buf *b)
{
        free(b->data);
        *b = (sse_buf){};
}

/* One line "FIELD: VALUE\n"; VALUE must have no line break (callers split or pick the values). */
static int append_field(sse_buf *b, const char *field, const char *value, size_t n)
{
        int r = sse_buf_append(b, field, strlen(field));

        if (r >= 0)
                r = sse_buf_append(b, ": ", 2);
        if (r >= 0)
                r = sse_buf_append(b, value, n);
        return r < 0 ? r : sse_buf_append(b, "\n", 1);
}

int sse_frame(sse_buf *b, uint64_t id, const char *event, const char *data)
{
        char num[21];
        int r;

        snprintf(num, sizeof(num), "%" PRIu64, id);
        r = append_field(b, "id", num, strlen(num));
        if (r >= 0 && event)
                r = append_field(b, "event", event, strcspn(event, "\r\n"));
        /* A line break in the data becomes the next data: line, which the client joins with "\n" again. */
        for (const char *p = data; r >= 0;) {
                size_t n = strcspn(p, "\r\n");

                r = append_field(b, "data", p, n);
                p += n;
                if (!*p)
                        break;
                p += p[0] == '\r' && p[1] == '\n' ? 2 : 1;
        }
        return r < 0 ? r : sse_buf_append(b, "\n", 1);
}

int sse_comment(sse_buf *b, const char *text)
{
        int r = sse_buf_append(b, ": ", 2);

        if (r >= 0)
                r = sse_buf_append(b, text, strcspn(text, "\r\n"));
        return r < 0 ? r : sse_buf_append(b, "\n\n", 2);
}

int sse_parse_last_event_id(const char *s, uint64_t *ret)
{
        uint64_t u;

        /* Only what we send: a decimal sequence number, no sign, no blanks, no leading zeros but "0". */
        if (isempty(s) || strspn(s, "0123456789") != strlen(s) || (s[0] == '0' && s[1]) ||
            parse_uint64(s, &u) < 0 || u > INT64_MAX)
                return -EINVAL;
        *ret = u;
        return 0;
}

bool sse_accepted(struct MHD_Connection *conn)
{
        const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);

        return accept && strstr(accept, "text/event-stream");
}

/* ---- GET /v1/events as a stream ---- */

typedef struct events_stream {
        pc_daemon *daemon;
        struct MHD_Connection *conn;
        pc_event_waiter waiter;     /* its filter is the stream's */
        uint64_t cursor;            /* the last event sent (or skipped by the filter) */
        uint64_t keepalive_usec;
        bool suspended;
        sse_buf out;
        size_t sent;                /* of out */
} events_stream;

/* With the bus lock held, in whatever thread woke us: only resume. */
static void stream_wake(pc_event_waiter *w)
{
        events_stream *s = (events_stream *) ((char *) w - offsetof(events_stream, waiter));

        MHD_resume_connection(s->conn);
}

/* The next page after the cursor into s->out: a gap first when events after the cursor were dropped by
 * retention, then the events. *ret_seen: the bus position the page is complete up to. */
static int stream_frame_page(events_stream *s, json_t *j)
{
        json_t *oldest, *ev;
        size_t i;
        int r;

        oldest = json_object_get(j, "oldest");
        if (json_is_integer(oldest) && (uint64_t) json_integer_value(oldest) > s->cursor + 1) {
                uint64_t first = (uint64_t) json_integer_value(oldest);
                _cleanup_free_ char *data = NULL;

                /* The client's position is gone: say which events it cannot have, then go on after them. */
                if (asprintf_safe(&data, "{\"from\":%" PRIu64 ",\"to\":%" PRIu64 "}", s->cursor + 1, first - 1) < 0)
                        return -ENOMEM;
                r = sse_frame(&s->out, first - 1, "gap", data);
                if (r < 0)
                        return r;
        }
        json_array_foreach(json_object_get(j, "events"), i, ev) {
                _cleanup_free_ char *data = json_dumps(ev, JSON_COMPACT);

                if (!data)
                        return -ENOMEM;
                r = sse_frame(&s->out, (uint64_t) json_integer_value(json_object_get(ev, "seq")),
                              json_string_value(json_object_get(ev, "type")), data);
                if (r < 0)
                        return r;
        }
        s->cursor = (uint64_t) json_integer_value(json_object_get(j, "next"));
        return 0;
}

static int stream_fill(events_stream *s, uint64_t *ret_seen)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r;

        r = pc_events_list(s->daemon, &s->waiter.filter, s->cursor, SSE_PAGE, &j, ret_seen, &e);
        if (r < 0)
                return log_debug_errno(r, "event stream: cannot read events: %s", e ? e->message : "%m");
        r = stream_frame_page(s, j);
        json_decref(j);
        return r;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        events_stream *s = cls;
        uint64_t seen = 0, now;
        size_t n;

        if (s->suspended) {
                pc_event_wait_done(s->daemon, &s->waiter);
                s->suspended = false;
        }
        if (s->sent == s->out.len) {
                s->out.len = s->sent = 0;
                if (s->waiter.stopping)
                        return MHD_CONTENT_READER_END_OF_STREAM;
                if (stream_fill(s, &seen) < 0)
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                /* The keep-alive is due keepalive_usec after the last bytes sent, however many events
                 * the filter skipped meanwhile. */
                now = now_usec(CLOCK_MONOTONIC);
                if (s->out.len == 0 && now >= s->waiter.deadline_usec && sse_comment(&s->out, "keep-alive") < 0)
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                if (s->out.len > 0)
                        s->waiter.deadline_usec = now + s->keepalive_usec;
        }
        if (s->out.len == 0) {
                /* Nothing to send: no thread is held until an event, the keep-alive or the stop. */
                s->waiter.seen = seen;
                s->suspended = true;
                MHD_suspend_connection(s->conn);
                pc_event_wait(s->daemon, &s->waiter);
                return 0;
        }
        n = MIN(max, s->out.len - s->sent);
        memcpy(buf, s->out.data + s->sent, n);
        s->sent += n;
        return (ssize_t) n;
}

static void stream_free(void *cls)
{
        events_stream *s = cls;

        if (s->suspended)
                pc_event_wait_done(s->daemon, &s->waiter);
        sse_buf_done(&s->out);
        free(s);
}

int api_events_stream(api_request *rq, const pc_event_filter *f, uint64_t since)
{
        const char *last = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Last-Event-ID");
        struct MHD_Response *resp;
        events_stream *s;
        enum MHD_Result ok;

        /* A reconnecting EventSource sends where it was; that wins over the URL it was opened with. */
        if (last && sse_parse_last_event_id(last, &since) < 0)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_header",
                                       "Last-Event-ID must be the id of an event received (a sequence number)");
        s = calloc(1, sizeof(*s));
        if (!s)
                return MHD_NO;
        s->daemon = rq->daemon;
        s->conn = rq->conn;
        s->waiter.filter = *f;
        s->waiter.wake = stream_wake;
        s->cursor = since;
        s->keepalive_usec = (uint64_t) pc_daemon_config(rq->daemon)->events_keepalive * 1000000u;
        s->waiter.deadline_usec = now_usec(CLOCK_MONOTONIC) + s->keepalive_usec;
        /* The first bytes tell the client the stream is open, before any event. */
        if (sse_comment(&s->out, "pocketcoder events") < 0) {
                stream_free(s);
                return MHD_NO;
        }
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, s, stream_free);
        if (!resp) {
                stream_free(s);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        /* Keep-alive comments keep the stream from being idle; a suspended stream is never timed out. */
        MHD_set_connection_option(rq->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
        ok = MHD_queue_response(rq->conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        rq->replied = true;
        return ok;
}
