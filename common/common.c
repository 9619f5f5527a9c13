/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common.h"

int log_max_level = LOG_LEVEL_INFO;
static FILE *log_target;

int safe_close(int fd)
{
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}

int pc_error_setf(pc_error **reterr, int errnum, const char *code, const char *fmt, ...)
{
        errnum = abs(errnum);
        if (reterr && !*reterr) {
                pc_error *e = calloc(1, sizeof(*e));
                va_list ap;

                if (!e)
                        return -ENOMEM;
                va_start(ap, fmt);
                if (vasprintf(&e->message, fmt, ap) < 0)
                        e->message = NULL;
                va_end(ap);
                e->code = strdup(code);
                e->errnum = errnum;
                if (!e->code || !e->message) {
                        pc_error_free(e);
                        return -ENOMEM;
                }
                *reterr = e;
        }
        return -errnum;
}

pc_error *pc_error_free(pc_error *e)
{
        if (!e)
                return NULL;
        free(e->code);
        free(e->message);
        free(e);
        return NULL;
}

void log_set_target_file(FILE *f)
{
        log_target = f;
}

int log_internal(int level, int error, const char *file, int line, const char *fmt, ...)
{
        static const char *const prefix[] = {
                [LOG_LEVEL_ERR] = "error",  [LOG_LEVEL_WARNING] = "warning", [LOG_LEVEL_NOTICE] = "notice",
                [LOG_LEVEL_INFO] = "info", [LOG_LEVEL_DEBUG] = "debug",
        };
        FILE *f = log_target ?: stderr;
        const char *base = strrchr(file, '/');
        va_list ap;
        int saved = errno;

        if (error != 0)
                errno = abs(error);
        flockfile(f);
        fprintf(f, "%s: [%s:%d] ", prefix[level], base ? base + 1 : file, line);
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
        fputc('\n', f);
        fflush(f);
        funlockfile(f);
        errno = saved;
        return -abs(error);
}

int read_full_fd(int fd, size_t max, char **ret_data, size_t *ret_size)
{
        _cleanup_free_ char *buf = NULL;
        size_t n = 0, cap = 0;

        for (;;) {
                if (n + 1 >= cap) {
                        size_t ncap = cap ? cap * 2 : 4096;
                        char *p;

                        if (cap > max + 1)
                                return -EFBIG;
                        p = realloc(buf, ncap);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        cap = ncap;
                }
                ssize_t k = read(fd, buf + n, cap - n - 1);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > max)
                        return -EFBIG;
        }
        if (!buf && !(buf = malloc(1)))
                return -ENOMEM;
        buf[n] = 0;
        *ret_data = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = n;
        return 0;
}

int read_full_file(const char *path, size_t max, char **ret_data, size_t *ret_size)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        return read_full_fd(fd, max, ret_data, ret_size);
}

int write_all(int fd, const void *buf, size_t n)
{
        const char *p = buf;

        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

int write_file_atomic(const char *path, const void *data, size_t n, mode_t mode)
{
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (asprintf(&tmp, "%s.tmpXXXXXX", path) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = write_all(fd, data, n);
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                (void) unlink(tmp);
        return r;
}

int mkdir_p(const char *path, mode_t mode)
{
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

char *strjoin_va(const char *first, ...)
{
        va_list ap;
        size_t len = 0;
        char *r, *p;

        va_start(ap, first);
        for (const char *s = first; s; s = va_arg(ap, const char *))
                len += strlen(s);
        va_end(ap);
        r = malloc(len + 1);
        if (!r)
                return NULL;
        p = r;
        va_start(ap, first);
        for (const char *s = first; s; s = va_arg(ap, const char *))
                p = stpcpy(p, s);
        va_end(ap);
        *p = 0;
        return r;
}

int asprintf_safe(char **ret, const char *fmt, ...)
{
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(ret, fmt, ap);
        va_end(ap);
        if (r < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return r;
}

bool startswith(const char *s, const char *prefix)
{
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

char *strstrip(char *s)
{
        char *e;

        while (isspace((unsigned char) *s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char) e[-1]))
                *--e = 0;
        return s;
}

/* The leading decimal digits of S; *ret_end points after them. No sign, no space, no empty number. */
static int parse_u64_prefix(const char *s, uint64_t *ret, char **ret_end)
{
        unsigned long long v;

        if (isempty(s) || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, ret_end, 10);
        if (errno != 0)
                return -errno;
        *ret = v;
        return 0;
}

int parse_uint64(const char *s, uint64_t *ret)
{
        char *end;
        uint64_t v = 0;
        int r = parse_u64_prefix(s, &v, &end);

        if (r < 0)
                return r;
        if (*end)
                return -EINVAL;
        *ret = v;
        return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
        static const struct {
                char suffix;
                unsigned shift;
        } units[] = { { 'K', 10 }, { 'M', 20 }, { 'G', 30 }, { 'T', 40 } };
        char *end;
        uint64_t v = 0;
        int r = parse_u64_prefix(s, &v, &end);

        if (r < 0)
                return r;
        if (*end == 0) {
                *ret = v;
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(units); i++) {
                char c = (char) toupper((unsigned char) *end);
                if (c != units[i].suffix)
                        continue;
                end++;
                if (*end == 'i')
                        end++;
                if (*end == 'B' || *end == 'b')
                        end++;
                if (*end)
                        return -EINVAL;
                if (v > (UINT64_MAX >> units[i].shift))
                        return -ERANGE;
                *ret = (uint64_t) v << units[i].shift;
                return 0;
        }
        return -EINVAL;
}

int parse_duration(const char *s, uint64_t *ret)
{
        static const char suffixes[] = "smhd";
        static const uint64_t seconds[] = { 1, 60, 3600, 86400 };
        const char *unit;
        uint64_t v = 0, scale;
        char *end;
        int r = parse_u64_prefix(s, &v, &end);

        if (r < 0)
                return r;
        unit = *end ? strchr(suffixes, *end) : NULL;
        if (*end && (!unit || end[1]))
                return -EINVAL;
        scale = unit ? seconds[unit - suffixes] : 1;
        if (v > UINT64_MAX / scale)
                return -ERANGE;
        *ret = v * scale;
        return 0;
}

int parse_bool(const char *s, bool *ret)
{
        static const char *const yes[] = { "1", "yes", "true", "on" }, *const no[] = { "0", "no", "false", "off" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcasecmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

bool name_is_valid(const char *name)
{
        size_t n = name ? strlen(name) : 0;

        if (n == 0 || n > 63 || name[0] == '-' || name[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(islower((unsigned char) name[i]) || isdigit((unsigned char) name[i]) || name[i] == '-'))
                        return false;
        return true;
}

void explicit_bzero_safe(void *p, size_t n)
{
        if (p && n > 0)
                explicit_bzero(p, n);
}

uint64_t now_usec(int clock)
{
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}
