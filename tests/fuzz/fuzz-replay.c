/* SPDX-License-Identifier: MIT */
/* Runs a fuzz target's LLVMFuzzerTestOneInput() over seed files (arguments; a directory means every file
 * in it), one TAP line per file, so builds without libFuzzer still exercise the seeds. */

#include <dirent.h>
#include <sys/stat.h>

#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int main(int argc, char **argv)
{
        char **files = NULL;
        size_t n = 0, cap = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        printf("Bail out! %s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                DIR *d = S_ISDIR(st.st_mode) ? opendir(argv[i]) : NULL;
                if (!d) {
                        if (n >= cap && !(files = reallocarray(files, cap = cap * 2 + 16, sizeof(char *))))
                                return 1;
                        files[n++] = strdup(argv[i]);
                        continue;
                }
                for (struct dirent *de; (de = readdir(d));) {
                        if (de->d_name[0] == '.')
                                continue;
                        if (n >= cap && !(files = reallocarray(files, cap = cap * 2 + 16, sizeof(char *))))
                                return 1;
                        files[n++] = strjoin(argv[i], "/", de->d_name);
                }
                closedir(d);
        }
        qsort(files, n, sizeof(char *), cmp);
        printf("TAP version 13\n1..%zu\n", n);
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *data = NULL;
                size_t size = 0;
                int r = read_full_file(files[i], 16 * 1024 * 1024, &data, &size);
                if (r < 0)
                        printf("not ok %zu - %s: %s\n", i + 1, files[i], strerror(-r));
                else {
                        LLVMFuzzerTestOneInput((const uint8_t *) data, size);
                        printf("ok %zu - %s\n", i + 1, strrchr(files[i], '/') ? strrchr(files[i], '/') + 1 : files[i]);
                }
                fflush(stdout);
                free(files[i]);
        }
        free(files);
        return 0;
}
