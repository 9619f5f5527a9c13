/* SPDX-License-Identifier: MIT */
/* common: cleanup macros, fd helpers, error values and logging shared by every PocketCoder library. */
#pragma once

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _unused_       __attribute__((unused))
#define _noreturn_     __attribute__((noreturn))
#define _pure_         __attribute__((pure))
#define _likely_(x)    __builtin_expect(!!(x), 1)
#define _unlikely_(x)  __builtin_expect(!!(x), 0)

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define STRLEN(s)     (sizeof(s) - 1)
#define MIN(a, b)     ((a) < (b) ? (a) : (b))
#define MAX(a, b)     ((a) > (b) ? (a) : (b))

/* Hand over ownership: returns the value and leaves NULL / -EBADF behind so cleanup is a no-op. */
#define TAKE_GENERIC(var, type, nullvalue)                                                                \
        ({                                                                                                \
                type *_pvar_ = &(var);                                                                    \
                type _var_ = *_pvar_;                                                                     \
                type _nullvalue_ = nullvalue;                                                             \
                *_pvar_ = _nullvalue_;                                                                    \
                _var_;                                                                                    \
        })
#define TAKE_PTR_TYPE(ptr, type) TAKE_GENERIC(ptr, type, NULL)
#define TAKE_PTR(ptr)            TAKE_PTR_TYPE(ptr, __typeof__(ptr))
#define TAKE_FD(fd)              TAKE_GENERIC(fd, int, -EBADF)

/* Define foo_freep(foo **p) calling foo_free(*p) for use with _cleanup_. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                           \
        static inline void func##p(type *p)                                                               \
        {                                                                                                 \
                if (*p)                                                                                   \
                        func(*p);                                                                         \
        }

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

int safe_close(int fd);
static inline void closep(int *fd)
{
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

#define streq(a, b)        (strcmp((a), (b)) == 0)
#define strneq(a, b, n)    (strncmp((a), (b), (n)) == 0)
#define isempty(s)         (!(s) || !*(s))
#define strna(s)           ((s) ?: "n/a")
#define RET_NERRNO(expr)   ({ int _r_ = (expr); _r_ < 0 ? -errno : _r_; })
#define NEGATIVE_ERRNO(e)  ((e) > 0 ? -(e) : (e))

/* Error value for users: a stable machine code ("invalid_policy") and a human sentence. Functions that
 * can fail in ways a person must understand take `pc_error **reterr` last; they set it (when non-NULL)
 * and return a negative errno. */
typedef struct pc_error {
        int errnum;    /* positive errno */
        char *code;    /* short snake_case identifier, e.g. "not_found" */
        char *message; /* full sentence naming the thing and the reason */
} pc_error;

int pc_error_setf(pc_error **reterr, int errnum, const char *code, const char *fmt, ...) _printf_(4, 5);
pc_error *pc_error_free(pc_error *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(pc_error *, pc_error_free);
#define _cleanup_pc_error_ _cleanup_(pc_error_freep)

/* Logging. Libraries log at debug only; the daemon and CLI decide what the user sees. Messages are
 * prefixed with [file:line]; %m works because errno is set from the passed error first. */
enum {
        LOG_LEVEL_ERR = 3,
        LOG_LEVEL_WARNING = 4,
        LOG_LEVEL_NOTICE = 5,
        LOG_LEVEL_INFO = 6,
        LOG_LEVEL_DEBUG = 7,
};
extern int log_max_level;
void log_set_target_file(FILE *f);
int log_internal(int level, int error, const char *file, int line, const char *fmt, ...) _printf_(5, 6);

#define log_full_errno(level, error, ...)                                                                 \
        ({                                                                                                \
                int _level_ = (level), _e_ = (error);                                                     \
                _level_ <= log_max_level ? log_internal(_level_, _e_, __FILE__, __LINE__, __VA_ARGS__)    \
                                         : -abs(_e_);                                                     \
        })
#define log_debug(...)            log_full_errno(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_info(...)             log_full_errno(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_notice(...)           log_full_errno(LOG_LEVEL_NOTICE, 0, __VA_ARGS__)
#define log_warning(...)          log_full_errno(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_error(...)            log_full_errno(LOG_LEVEL_ERR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...)   log_full_errno(LOG_LEVEL_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_LEVEL_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_LEVEL_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_LEVEL_ERR, e, __VA_ARGS__)

/* fd and file helpers; all return 0/positive or negative errno. */
int read_full_fd(int fd, size_t max, char **ret_data, size_t *ret_size);
int read_full_file(const char *path, size_t max, char **ret_data, size_t *ret_size);
int write_all(int fd, const void *buf, size_t n);
int write_file_atomic(const char *path, const void *data, size_t n, mode_t mode);
int mkdir_p(const char *path, mode_t mode);

/* Strings. */
char *strjoin_va(const char *first, ...) __attribute__((sentinel));
#define strjoin(...) strjoin_va(__VA_ARGS__, NULL)
int asprintf_safe(char **ret, const char *fmt, ...) _printf_(2, 3);
bool startswith(const char *s, const char *prefix);
char *strstrip(char *s);
int parse_size(const char *s, uint64_t *ret);      /* "512M", "2G", "1024" -> bytes */
int parse_uint64(const char *s, uint64_t *ret);
int parse_duration(const char *s, uint64_t *ret);  /* "90", "90s", "15m", "12h", "30d" -> seconds */
int parse_bool(const char *s, bool *ret);
bool name_is_valid(const char *name);              /* DNS-label-like: [a-z0-9][a-z0-9-]{0,62} */
void explicit_bzero_safe(void *p, size_t n);
uint64_t now_usec(int clock);                       /* CLOCK_MONOTONIC or CLOCK_REALTIME */

#define log_oom() log_error_errno(ENOMEM, "out of memory")
#define _fallthrough_ __attribute__((fallthrough))

/* Whether statx() (asked for anything) found the root of a mount: a directory is mounted on. */
static inline bool statx_is_mount_root(const struct statx *sx)
{
        return (sx->stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (sx->stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

static inline bool streq_ptr(const char *a, const char *b)
{
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

#include <dirent.h>
static inline void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

static inline void mutex_unlockp(pthread_mutex_t **m)
{
        if (*m)
                pthread_mutex_unlock(*m);
}
/* Recursive: a function holding a lock may call another that takes it (e.g. the store's audit). */
static inline void mutex_init_recursive(pthread_mutex_t *m)
{
        pthread_mutexattr_t attr;

        pthread_mutexattr_init(&attr);
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
        pthread_mutex_init(m, &attr);
        pthread_mutexattr_destroy(&attr);
}

/* Locks `m` until the end of the scope (several guards may share a scope). */
#define LOCK_GUARD_CONCAT_(a, b) a##b
#define LOCK_GUARD_NAME_(n)      LOCK_GUARD_CONCAT_(_guard_, n)
#define LOCK_GUARD(m)                                                                                     \
        _cleanup_(mutex_unlockp) _unused_ pthread_mutex_t *LOCK_GUARD_NAME_(__COUNTER__) = ({             \
                pthread_mutex_lock(m);                                                                    \
                (m);                                                                                      \
        })
