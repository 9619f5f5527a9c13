/* SPDX-License-Identifier: MIT */
/* The exec routes: translate HTTP to the exec engine (daemon/execs.c). A request that waits for an exec to
 * end is suspended on the event bus (exec.finished of its sandbox) and holds no thread; the output stream is
 * server-sent events whose ids are the byte offsets "STDOUT,STDERR" past them, so Last-Event-ID resumes it
 * exactly. */
#include <inttypes.h>
#include <stdatomic.h>

#include "api-internal.h"

#define OUTPUT_CHUNK   (64u * 1024u)
#define KEEPALIVE_USEC (15 * 1000000ULL)

static bool state_is_done(const char *s)
{
        return !streq_ptr(s, "pending") && !streq_ptr(s, "running");
}

/* A denied exec is the POST's 403 with the policy's (or the person's) reason and the decision. */
static int reply_denied(api_request *rq, json_t *j)
{
        const char *reason = json_string_value(json_object_get(j, "reason")) ?: "denied";
        const char *rule = json_string_value(json_object_get(j, "rule"));
        json_t *body;

        body = json_pack("{s:{s:s, s:s}, s:O, s:O}", "error", "code", "denied", "message", reason,
                         "decision", json_object_get(j, "decision") ?: json_null(), "exec", j);
        if (body && rule)
                json_object_set_new(json_object_get(body, "error"), "rule", json_string(rule));
        json_decref(j);
        return body ? api_reply_json(rq, MHD_HTTP_FORBIDDEN, body) : MHD_NO;
}

/* The bus position now: a waiter registered with it misses no later event. */
static int bus_position(api_request *rq, uint64_t *ret, pc_error **reterr)
{
        json_t *j = NULL;
        int r = pc_events_list(rq->daemon, &rq->waiter.filter, INT64_MAX, 1, &j, ret, reterr);

        json_decref(j);
        return r;
}

/* Answers with the exec when it ended or the wait is over, else suspends until its sandbox's next
 * exec.finished. `post`: the answer of POST .../execs (403 when denied). */
static int exec_wait(api_request *rq, bool post)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        uint64_t seen = 0;
        json_t *j = NULL;
        const char *state;
        int r;

        r = bus_position(rq, &seen, &e);
        if (r >= 0)
                r = pc_execs_show(rq->daemon, &rq->principal, rq->exec_id, &j, NULL, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        state = json_string_value(json_object_get(j, "state"));
        if (post && streq_ptr(state, "denied"))
                return reply_denied(rq, j);
        if (state_is_done(state) || rq->waiter.stopping ||
            now_usec(CLOCK_MONOTONIC) >= rq->waiter.deadline_usec)
                return api_reply_json(rq, state_is_done(state) ? MHD_HTTP_OK : MHD_HTTP_ACCEPTED, j);
        json_decref(j);
        return api_suspend_until_event(rq, seen);
}

/* What the request waits for: its sandbox's exec.finished events. */
static void wait_filter(api_request *rq, const char *sandbox)
{
        rq->waiter.filter.type = PC_EVENT_EXEC_FINISHED;
        snprintf(rq->waiter.filter.sandbox, sizeof(rq->waiter.filter.sandbox), "%s", sandbox);
}

static void wait_setup(api_request *rq, const char *id, const char *sandbox, unsigned wait)
{
        snprintf(rq->exec_id, sizeof(rq->exec_id), "%s", id);
        wait_filter(rq, sandbox);
        rq->waiter.deadline_usec = now_usec(CLOCK_MONOTONIC) + wait * 1000000ULL;
        rq->wait_started = true;
}

int api_post_sandbox_exec(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        uint64_t seen = 0;
        unsigned wait = 0;
        const char *state, *id;
        int r;

        if (rq->wait_started)
                return exec_wait(rq, true);
        if (!rq->json)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_body",
                                       "request body must be a JSON object such as {\"cmd\":\"ls -la\"}");
        /* the bus position before the exec starts: its exec.finished comes after it, however soon */
        wait_filter(rq, rq->params[0]);
        r = bus_position(rq, &seen, &e);
        if (r >= 0)
                r = pc_execs_create(rq->daemon, &rq->principal, rq->params[0], rq->json, &j, &wait, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        state = json_string_value(json_object_get(j, "state"));
        if (streq_ptr(state, "denied"))
                return reply_denied(rq, j);
        if (state_is_done(state) || wait == 0)
                return api_reply_json(rq, state_is_done(state) ? MHD_HTTP_OK : MHD_HTTP_ACCEPTED, j);
        id = json_string_value(json_object_get(j, "id"));
        wait_setup(rq, id, rq->params[0], wait);
        json_decref(j);
        return api_suspend_until_event(rq, seen);
}

int api_get_exec(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        const char *v;
        char sandbox[64];
        uint64_t wait = 0;
        json_t *j = NULL;
        int r;

        if (rq->wait_started)
                return exec_wait(rq, false);
        v = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "wait");
        if (v && (parse_uint64(v, &wait) < 0 || wait > 3600))
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_query",
                                       "query parameter wait must be seconds from 0 to 3600");
        r = pc_execs_show(rq->daemon, &rq->principal, rq->params[0], &j, sandbox, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        if (wait == 0 || state_is_done(json_string_value(json_object_get(j, "state"))))
                return api_reply_json(rq, MHD_HTTP_OK, j);
        json_decref(j);
        wait_setup(rq, rq->params[0], sandbox, (unsigned)wait);
        return exec_wait(rq, false);
}

int api_get_execs(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r = pc_execs_list(rq->daemon, &rq->principal,
                              MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "sandbox"),
                              MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "state"), &j, &e);
        return r < 0 ? api_reply_pc_error(rq, r, e) : api_reply_json(rq, MHD_HTTP_OK, j);
}

static int exec_op(api_request *rq, int (*op)(pc_daemon *, const pc_principal *, const char *, json_t *,
                                              json_t **, pc_error **))
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        int r;

        if (!rq->json)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_body",
                                       "request body must be a JSON object");
        r = op(rq->daemon, &rq->principal, rq->params[0], rq->json, &j, &e);
        return r < 0 ? api_reply_pc_error(rq, r, e) : api_reply_json(rq, MHD_HTTP_OK, j);
}

int api_post_exec_signal(api_request *rq)
{
        return exec_op(rq, pc_execs_signal);
}

int api_post_exec_stdin(api_request *rq)
{
        return exec_op(rq, pc_execs_stdin);
}

/* ---- GET /v1/execs/{id}/output: server-sent events ---- */

typedef struct output_stream {
        pc_daemon *daemon;
        struct MHD_Connection *conn;
        pc_principal principal;
        char id[33];
        uint64_t off[2];
        char *pending; /* framed bytes not sent yet */
        size_t pending_len, pending_off;
        bool ended, suspended;
        atomic_bool woken;
        pc_event_waiter waiter;       /* the daemon stopping, and the keep-alive's deadline */
        pc_exec_output_waiter output; /* more output or the end */
} output_stream;

static void stream_resume(output_stream *s)
{
        if (!atomic_exchange(&s->woken, true))
                MHD_resume_connection(s->conn);
}

static void on_bus_wake(pc_event_waiter *w)
{
        stream_resume((output_stream *)((char *)w - offsetof(output_stream, waiter)));
}

static void on_output_wake(pc_exec_output_waiter *w)
{
        stream_resume((output_stream *)((char *)w - offsetof(output_stream, output)));
}

/* One event: "id: A,B", "event: NAME", "data: JSON" (JSON has no newline). */
static int stream_frame(output_stream *s, const char *event, json_t *data)
{
        _cleanup_free_ char *text = json_dumps(data, JSON_COMPACT | JSON_ENSURE_ASCII);
        char *frame = NULL;

        if (!text || asprintf_safe(&frame, "id: %" PRIu64 ",%" PRIu64 "\nevent: %s\ndata: %s\n\n", s->off[0],
                                   s->off[1], event, text) < 0)
                return -ENOMEM;
        free(s->pending);
        s->pending = frame;
        s->pending_len = strlen(frame);
        s->pending_off = 0;
        return 0;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
        output_stream *s = cls;
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *chunk = NULL, *end = NULL;
        uint64_t seen = 0;
        int r;

        if (s->suspended) {
                pc_event_wait_done(s->daemon, &s->waiter);
                pc_execs_output_wait_done(s->daemon, &s->output);
                s->suspended = false;
                if (s->waiter.stopping)
                        return MHD_CONTENT_READER_END_OF_STREAM;
                if (now_usec(CLOCK_MONOTONIC) >= s->waiter.deadline_usec &&
                    s->pending_off >= s->pending_len) {
                        free(s->pending);
                        s->pending = strdup(": keep-alive\n\n");
                        if (!s->pending)
                                return MHD_CONTENT_READER_END_WITH_ERROR;
                        s->pending_len = strlen(s->pending);
                        s->pending_off = 0;
                }
        }
        if (s->pending_off >= s->pending_len) {
                if (s->ended)
                        return MHD_CONTENT_READER_END_OF_STREAM;
                {
                        json_t *j = NULL;
                        r = pc_events_list(s->daemon, &s->waiter.filter, INT64_MAX, 1, &j, &seen, &e);
                        json_decref(j);
                }
                if (r >= 0)
                        r = pc_execs_output(s->daemon, &s->principal, s->id, s->off, OUTPUT_CHUNK, &chunk,
                                            &end, &e);
                if (r < 0)
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                if (chunk) {
                        r = stream_frame(s, json_string_value(json_object_get(chunk, "stream")), chunk);
                        json_decref(chunk);
                } else if (end) {
                        r = stream_frame(s, "exit", end);
                        json_decref(end);
                        s->ended = true;
                } else {
                        /* nothing yet: sleep without a thread until output, the end, a keep-alive or a stop
                         */
                        atomic_store(&s->woken, false);
                        s->suspended = true;
                        s->waiter.seen = seen;
                        s->waiter.wake = on_bus_wake;
                        s->waiter.deadline_usec = now_usec(CLOCK_MONOTONIC) + KEEPALIVE_USEC;
                        s->output.wake = on_output_wake;
                        MHD_suspend_connection(s->conn);
                        pc_event_wait(s->daemon, &s->waiter);
                        pc_execs_output_wait(s->daemon, s->id, s->off, &s->output);
                        return 0;
                }
                if (r < 0)
                        return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        size_t n = MIN(max, s->pending_len - s->pending_off);
        memcpy(buf, s->pending + s->pending_off, n);
        s->pending_off += n;
        return (ssize_t)n;
}

static void stream_free(void *cls)
{
        output_stream *s = cls;

        if (s->suspended) {
                pc_event_wait_done(s->daemon, &s->waiter);
                pc_execs_output_wait_done(s->daemon, &s->output);
        }
        free(s->pending);
        free(s);
}

/* "A,B": two byte offsets. */
static int parse_cursor(const char *v, uint64_t off[2])
{
        const char *comma = strchr(v, ',');
        char a[24];

        if (!comma || (size_t)(comma - v) >= sizeof(a))
                return -EINVAL;
        memcpy(a, v, (size_t)(comma - v));
        a[comma - v] = 0;
        if (parse_uint64(a, &off[0]) < 0 || parse_uint64(comma + 1, &off[1]) < 0)
                return -EINVAL;
        return 0;
}

int api_get_exec_output(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        const char *last = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Last-Event-ID");
        const char *q = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "cursor");
        struct MHD_Response *resp;
        output_stream *s;
        char sandbox[64];
        enum MHD_Result ok;
        uint64_t off[2] = {};
        int r;

        if ((last && parse_cursor(last, off) < 0) || (!last && q && parse_cursor(q, off) < 0))
                return api_reply_error(
                        rq, MHD_HTTP_BAD_REQUEST, "invalid_cursor",
                        "Last-Event-ID (or ?cursor=) must be two byte offsets \"STDOUT,STDERR\"");
        r = pc_execs_show(rq->daemon, &rq->principal, rq->params[0], NULL, sandbox, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        s = calloc(1, sizeof(*s));
        if (!s)
                return MHD_NO;
        s->daemon = rq->daemon;
        s->conn = rq->conn;
        s->principal = rq->principal;
        snprintf(s->id, sizeof(s->id), "%s", rq->params[0]);
        s->off[0] = off[0];
        s->off[1] = off[1];
        s->waiter.filter.type = PC_EVENT_EXEC_FINISHED;
        snprintf(s->waiter.filter.sandbox, sizeof(s->waiter.filter.sandbox), "%s", sandbox);
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, OUTPUT_CHUNK + 1024, stream_reader, s,
                                                 stream_free);
        if (!resp) {
                free(s);
                return MHD_NO;
        }
        /* a quiet command may print nothing for long: keep-alive comments, no idle timeout */
        MHD_set_connection_option(rq->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        api_request_uncount(rq);
        ok = MHD_queue_response(rq->conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        rq->replied = true;
        return ok;
}
