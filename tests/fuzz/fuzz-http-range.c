/* SPDX-License-Identifier: MIT */
/* libFuzzer target: any bytes as a Range header (common/http-range.c) against sizes taken from the input.
 * Besides memory safety it checks the contract: at most PC_RANGES_MAX ranges, each within the
 * representation (first <= last < size), and none at all for an empty one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http-range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const uint64_t sizes[] = { 0, 1, 2, 1023, 1024, 1ULL << 40, UINT64_MAX - 1, UINT64_MAX };
        char *h = malloc(size + 1);
        pc_range r[PC_RANGES_MAX];

        if (!h)
                abort();
        memcpy(h, data, size);
        h[size] = 0;
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
                int n = pc_http_ranges_parse(h, sizes[s], r);

                if (n > (int) PC_RANGES_MAX || (sizes[s] == 0 && n > 0))
                        abort();
                for (int i = 0; i < n; i++)
                        if (r[i].first > r[i].last || r[i].last >= sizes[s])
                                abort();
        }
        free(h);
        return 0;
}
