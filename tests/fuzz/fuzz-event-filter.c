/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the hostile inputs of GET /v1/events. The bytes up to the first newline are a type
 * filter (?type=, webhook_*_events), the rest a Last-Event-ID header. Besides memory safety it checks the
 * contract: an accepted filter names only known types, and every one of them matches an item; a refused
 * one says why; an accepted Last-Event-ID is exactly the decimal form of the number it yields. */
#include <inttypes.h>

#include "api-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
        return 0;
}
