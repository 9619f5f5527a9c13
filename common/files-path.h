/* SPDX-License-Identifier: MIT */
/* Paths inside a sandbox's workspace as the files API receives them (already percent-decoded once by the
 * HTTP server): relative, '/'-separated, each component a plain name. The parser only says whether a path
 * may be looked up at all; the lookup itself never leaves the workspace whatever the path (daemon/files.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define PC_FILES_PATH_MAX 1000u /* bytes of a whole path */
#define PC_FILES_NAME_MAX 255u  /* bytes of one component (NAME_MAX) */

/* 0 when `path` (n bytes, not necessarily NUL-terminated) is a valid workspace path; "" is the workspace
 * itself and one trailing '/' is allowed. Else -EINVAL (-ENAMETOOLONG for lengths) and *ret_reason, a
 * static message naming what is wrong: an absolute path, an empty, "." or ".." component, a NUL or other
 * control byte, a backslash, a percent-escape left after decoding (double encoding), bytes that are not
 * UTF-8 (overlong forms such as %c0%ae included), a component or path too long. */
int pc_files_path_check(const char *path, size_t n, const char **ret_reason);
