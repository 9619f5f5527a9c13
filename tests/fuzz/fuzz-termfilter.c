/* SPDX-License-Identifier: MIT */
/* libFuzzer target: any bytes through the terminal filter (cli/termfilter.c). Besides memory safety it checks
 * the contract: the output stays within TERMFILTER_OUT_MAX, holds no control string introducer (ESC ] P X ^ _
 * or a C1 byte outside UTF-8), filtering it again changes nothing (it holds only what passes), and the same
 * input split at any point gives the same output (state carries across reads). */
#include <stdlib.h>
#include <string.h>

#include "termfilter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *out = malloc(TERMFILTER_OUT_MAX(size)), *again = NULL, *split = malloc(TERMFILTER_OUT_MAX(size));
        termfilter f;
        size_t n, n2, cut = size > 0 ? data[0] % (size + 1) : 0;

        if (!out || !split)
                abort();
        termfilter_init(&f);
        n = termfilter_feed(&f, data, size, out);
        if (n > TERMFILTER_OUT_MAX(size))
                abort();
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) out[i];
                if (c == 0x1b && i + 1 < n && strchr("]PX^_", out[i + 1]) && out[i + 1])
                        abort();
                /* 0x80-0x9f only as a continuation byte of a multi-byte UTF-8 sequence. */
                if (c >= 0x80 && c <= 0x9f && (i == 0 || (unsigned char) out[i - 1] < 0x80))
                        abort();
        }
        again = malloc(TERMFILTER_OUT_MAX(n));
        if (!again)
                abort();
        termfilter_init(&f);
        if (termfilter_feed(&f, out, n, again) != n || memcmp(out, again, n) != 0)
                abort();
        termfilter_init(&f);
        n2 = termfilter_feed(&f, data, cut, split);
        n2 += termfilter_feed(&f, data + cut, size - cut, split + n2);
        if (n2 != n || memcmp(out, split, n) != 0)
                abort();
        free(out);
        free(again);
        free(split);
        return 0;
}
