/* SPDX-License-Identifier: MIT */
/* The workspace path parser of the files API (see files-path.h). */
#include <errno.h>
#include <stdint.h>

#include "files-path.h"

static bool is_hex(unsigned char c)
{
        return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), 0 when it is not one: shortest form
 * only, no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
        size_t len;
        uint32_t cp;

        if (p[0] < 0x80)
                return 1;
        if (p[0] >= 0xc2 && p[0] <= 0xdf)
                len = 2, cp = p[0] & 0x1f;
        else if (p[0] >= 0xe0 && p[0] <= 0xef)
                len = 3, cp = p[0] & 0x0f;
        else if (p[0] >= 0xf0 && p[0] <= 0xf4)
                len = 4, cp = p[0] & 0x07;
        else
                return 0;
        if (len > n)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (p[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return len;
}

static int fail(const char **ret_reason, const char *reason, int r)
{
        *ret_reason = reason;
        return r;
}

/* The component p[0..n) (n > 0, no '/'). */
static int check_component(const unsigned char *p, size_t n, const char **ret_reason)
{
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
                return fail(ret_reason, "the path has a \".\" or \"..\" component", -EINVAL);
        if (n > PC_FILES_NAME_MAX)
                return fail(ret_reason, "a component of the path is longer than 255 bytes", -ENAMETOOLONG);
        for (size_t i = 0; i < n;) {
                size_t len;

                if (p[i] < 0x20 || p[i] == 0x7f)
                        return fail(ret_reason, "the path contains a NUL, newline or other control character",
                                    -EINVAL);
                if (p[i] == '\\')
                        return fail(ret_reason, "the path contains a backslash", -EINVAL);
                if (p[i] == '%' && i + 2 < n && is_hex(p[i + 1]) && is_hex(p[i + 2]))
                        return fail(ret_reason,
                                    "the path still contains a percent-escape after decoding (double encoding)",
                                    -EINVAL);
                len = utf8_len(p + i, n - i);
                if (len == 0)
                        return fail(ret_reason, "the path is not valid UTF-8 (overlong or truncated sequence)",
                                    -EINVAL);
                i += len;
        }
        return 0;
}

int pc_files_path_check(const char *path, size_t n, const char **ret_reason)
{
        const unsigned char *p = (const unsigned char *) path;
        size_t start = 0;
        int r;

        if (n > PC_FILES_PATH_MAX)
                return fail(ret_reason, "the path is longer than 1000 bytes", -ENAMETOOLONG);
        if (n > 0 && p[0] == '/')
                return fail(ret_reason, "absolute paths are not accepted: paths are relative to the workspace",
                            -EINVAL);
        if (n > 0 && p[n - 1] == '/')
                n--;
        for (size_t i = 0; i <= n; i++) {
                if (i < n && p[i] != '/')
                        continue;
                if (i == start && n > 0)
                        return fail(ret_reason, "the path has an empty component (\"//\")", -EINVAL);
                if (i > start) {
                        r = check_component(p + start, i - start, ret_reason);
                        if (r < 0)
                                return r;
                }
                start = i + 1;
        }
        return 0;
}
