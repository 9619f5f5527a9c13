/* SPDX-License-Identifier: MIT */
/* A Range request header (RFC 9110 14.1.2, 14.2), as the files API serves it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define PC_RANGES_MAX 32u /* more ranges than this: the whole file (a server may ignore Range) */

typedef struct pc_range {
        uint64_t first, last; /* inclusive, first <= last < size */
} pc_range;

/* "bytes=a-b, c-, -n" against a representation of `size` bytes: the satisfiable ranges in ret (clamped to
 * the size, in the order given) and their count; 0 when none is satisfiable (416); -EINVAL when the header
 * is not a valid bytes range set or has more than PC_RANGES_MAX ranges (then it is ignored: 200). */
int pc_http_ranges_parse(const char *h, uint64_t size, pc_range ret[static PC_RANGES_MAX]);
