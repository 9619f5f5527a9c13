/* SPDX-License-Identifier: MIT */
/* tests/corpus/commands.tsv as the unit tests read it. */
#pragma once

#include <stdlib.h>
#include <string.h>

#include "common.h"

/* "⏎" (U+23CE) in the corpus stands for a newline. Returns a new string, NULL without memory. */
static inline char *corpus_unescape(const char *s)
{
        char *r = malloc(strlen(s) + 1), *o = r;
        if (!r)
                return NULL;
        while (*s) {
                if (strneq(s, "\xe2\x8f\x8e", 3)) {
                        *o++ = '\n';
                        s += 3;
                } else
                        *o++ = *s++;
        }
        *o = 0;
        return r;
}
