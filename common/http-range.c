/* SPDX-License-Identifier: MIT */
/* The Range header of the files API (see http-range.h). */
#include <errno.h>
#include <strings.h>

#include "common.h"
#include "http-range.h"

int pc_http_ranges_parse(const char *h, uint64_t size, pc_range ret[static PC_RANGES_MAX])
{
        const char *p = h;
        int n = 0;

        if (strncasecmp(p, "bytes=", STRLEN("bytes=")) != 0) /* range units are case-insensitive */
                return -EINVAL;
        p += STRLEN("bytes=");
        for (;;) {
                uint64_t a = 0, b = 0;
                bool suffix = false, has_a = false, has_b = false;

                while (*p == ' ' || *p == '\t')
                        p++;
                if (*p == '-')
                        suffix = true;
                for (; *p >= '0' && *p <= '9'; p++, has_a = true) {
                        if (a > (UINT64_MAX - 9) / 10)
                                return -EINVAL;
                        a = a * 10 + (uint64_t) (*p - '0');
                }
                if (*p++ != '-')
                        return -EINVAL;
                for (; *p >= '0' && *p <= '9'; p++, has_b = true) {
                        if (b > (UINT64_MAX - 9) / 10)
                                return -EINVAL;
                        b = b * 10 + (uint64_t) (*p - '0');
                }
                if (suffix) {
                        if (!has_b)
                                return -EINVAL;
                        if (b > 0 && size > 0) { /* the last b bytes */
                                if (n >= (int) PC_RANGES_MAX)
                                        return -EINVAL;
                                ret[n++] = (pc_range){ size > b ? size - b : 0, size - 1 };
                        }
                } else {
                        if (!has_a || (has_b && b < a))
                                return -EINVAL;
                        if (a < size) {
                                if (n >= (int) PC_RANGES_MAX)
                                        return -EINVAL;
                                ret[n++] = (pc_range){ a, has_b && b < size ? b : size - 1 };
                        }
                }
                while (*p == ' ' || *p == '\t')
                        p++;
                if (*p == 0)
                        return n;
                if (*p++ != ',')
                        return -EINVAL;
        }
}

