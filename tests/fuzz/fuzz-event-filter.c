/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the hostile inputs of GET /v1/events. The bytes up to the first newline are a type
 * filter (?type=, webhook_*_events), the rest a Last-Event-ID header and the data of an SSE frame (what an
 * agent writes ends up in events). Besides memory safety it checks the contract: an accepted filter names
 * only known types, and every one of them matches an item; a refused one says why; an accepted
 * Last-Event-ID is exactly the decimal form of the number it yields; a frame is id/event/data lines and a
 * blank line, and its data lines joined with "\n" give the data back (line breaks as "\n"). */
#include <inttypes.h>

#include "api-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_frame(const char *data)
{
        _cleanup_free_ char *want = malloc(strlen(data) + 1), *got = malloc(strlen(data) + 1);
        static const char head[] = "id: 7\nevent: exec.output\n";
        sse_buf b = {};
        size_t w = 0, g = 0;
        bool first = true;
        char *line;

        if (!want || !got || sse_frame(&b, 7, "exec.output", data) < 0) {
                sse_buf_done(&b);
                return;
        }
        for (const char *p = data; *p; p++) /* CRLF and CR are line breaks too */
                if (*p != '\r')
                        want[w++] = *p;
                else if (p[1] != '\n')
                        want[w++] = '\n';
        want[w] = 0;
        if (b.len < 2 || !strneq(b.data, head, STRLEN(head)) || !streq(b.data + b.len - 2, "\n\n"))
                abort();
        b.data[b.len - 2] = 0; /* the blank line that ends the frame */
        line = b.data + STRLEN(head);
        for (char *next; line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if (!startswith(line, "data: ") || strchr(line, '\r'))
                        abort();
                if (!first)
                        got[g++] = '\n';
                first = false;
                memcpy(got + g, line + 6, strlen(line + 6));
                g += strlen(line + 6);
        }
        got[g] = 0;
        if (!streq(got, want))
                abort();
        sse_buf_done(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const uint8_t *nl = memchr(data, '\n', size);
        size_t n = nl ? (size_t) (nl - data) : size;
        _cleanup_free_ char *filter = strndup((const char *) data, n);
        _cleanup_free_ char *last = nl ? strndup((const char *) nl + 1, size - n - 1) : NULL;
        _cleanup_pc_error_ pc_error *e = NULL;
        uint64_t mask = 0, again = 0, id = 0;
        char buf[21];

        if (!filter || (nl && !last))
                return 0;
        /* A NUL cannot reach either (the server refuses %00 in a URI; header values end at it). */
        if (strlen(filter) != n || (last && strlen(last) != size - n - 1))
                return 0;
        if (pc_event_types_parse(filter, &mask, &e) == 0) {
                if (e || mask == 0 || (_PC_EVENT_TYPE_MAX < 64 && mask >> _PC_EVENT_TYPE_MAX))
                        abort();
                /* Each type is accepted alone, and the list of them is the same mask. */
                for (int t = 0; t < _PC_EVENT_TYPE_MAX; t++)
                        if ((mask >> t) & 1) {
                                uint64_t one = 0;
                                if (pc_event_types_parse(pc_event_type_to_string(t), &one, NULL) < 0 ||
                                    one != UINT64_C(1) << t)
                                        abort();
                                again |= one;
                        }
                if (again != mask)
                        abort();
        } else if (!e || !streq(e->code, "invalid_query") || isempty(e->message))
                abort();
        if (last && sse_parse_last_event_id(last, &id) == 0) {
                snprintf(buf, sizeof(buf), "%" PRIu64, id);
                if (!streq(buf, last) || id > INT64_MAX)
                        abort();
        }
        if (last)
                check_frame(last);
        return 0;
}
