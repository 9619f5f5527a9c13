/* SPDX-License-Identifier: MIT */
/* libFuzzer target: any bytes through the files API's path parser (common/files-path.c). Besides memory
 * safety it checks the contract: an accepted path is at most PC_FILES_PATH_MAX bytes, not absolute, has no
 * NUL, control byte, backslash, empty, "." or ".." component, and a refused one comes with a reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "files-path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *p = (const char *) data, *reason = NULL;
        size_t n = size, start = 0;

        if (pc_files_path_check(p, size, &reason) < 0) {
                if (!reason || !*reason)
                        abort();
                return 0;
        }
        if (size > PC_FILES_PATH_MAX || (size > 0 && p[0] == '/'))
                abort();
        if (n > 0 && p[n - 1] == '/')
                n--;
        for (size_t i = 0; i <= n; i++) {
                if (i < n && ((unsigned char) p[i] < 0x20 || p[i] == '\\'))
                        abort();
                if (i < n && p[i] != '/')
                        continue;
                if (n > 0 && (i == start || (i - start == 1 && p[start] == '.') ||
                              (i - start == 2 && p[start] == '.' && p[start + 1] == '.')))
                        abort();
                start = i + 1;
        }
        return 0;
}
