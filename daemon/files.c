/* SPDX-License-Identifier: MIT */
/* The files API's filesystem side: everything in a workspace was written by the sandbox's agent, so every
 * path is resolved beneath the workspace's fd with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
 * RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV) or, where openat2 is missing, by the equivalent walk (one
 * component at a time, O_NOFOLLOW, same device), and every lookup, read and write runs with the agent's
 * host uid/gid as the thread's filesystem identity. Files are opened O_PATH first and only reopened (through
 * /proc/self/fd, the same inode) for reading or writing once they are known to be regular files or
 * directories: a fifo, socket or device is never opened. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "daemon-internal.h"
#include "daemon.h"
#include "files-path.h"
#include "isolate.h"

/* The filesystem identity of the calling thread (setfsuid/setfsgid and the raw setgroups syscall are
 * per thread; glibc's setgroups() would change every thread). Becoming the agent drops the capabilities
 * that bypass permission checks (CAP_DAC_OVERRIDE, CAP_FOWNER, ...) from the thread; becoming root again
 * restores them. */
typedef struct identity {
        bool active;
        gid_t groups[64];
        int n_groups;
} identity;

static void identity_restore(identity *id)
{
        if (!id->active)
                return;
        (void) syscall(SYS_setgroups, (size_t) id->n_groups, id->groups);
        (void) setfsuid(0);
        (void) setfsgid(0);
        id->active = false;
}

static int identity_become(identity *id, const pc_files_ws *ws)
{
        id->n_groups = getgroups(ELEMENTSOF(id->groups), id->groups);
        if (id->n_groups < 0)
                return -errno;
        if (syscall(SYS_setgroups, (size_t) 1, &ws->gid) < 0)
                return -errno;
        id->active = true;
        (void) setfsgid(ws->gid);
        (void) setfsuid(ws->uid);
        if ((uid_t) setfsuid((uid_t) -1) != ws->uid || (gid_t) setfsgid((gid_t) -1) != ws->gid) {
                identity_restore(id);
                return -EPERM;
        }
        return 0;
}

#define _cleanup_identity_ _cleanup_(identity_restore)

int pc_files_ws_open(pc_daemon *d, const pc_principal *who, const char *sandbox, pc_files_ws *ret,
                     pc_error **reterr)
{
        _cleanup_(json_decrefp) json_t *sb = NULL;
        const char *path;
        json_int_t base;
        int r, fd;

        r = pc_sandboxes_show(d, who, sandbox, &sb, reterr);
        if (r < 0)
                return r;
        path = json_string_value(json_object_get(sb, "workspace_host_path"));
        base = json_integer_value(json_object_get(sb, "uid_base"));
        if (!path || !*path || base <= 0)
                return pc_error_setf(reterr, ENOENT, "no_workspace", "sandbox \"%s\" has no workspace", sandbox);
        fd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return pc_error_setf(reterr, errno, "no_workspace", "the workspace of sandbox \"%s\" is missing: %m",
                                     sandbox);
        *ret = (pc_files_ws){ .fd = fd, .uid = (uid_t) base + ISOLATE_AGENT_UID, .gid = (gid_t) base + ISOLATE_AGENT_GID };
        return 0;
}

void pc_files_ws_close(pc_files_ws *ws)
{
        ws->fd = safe_close(ws->fd);
}

/* Tests set PC_FILES_NO_OPENAT2=1 in the daemon's environment to run the fallback walk on a kernel that has
 * openat2 (the walk is what runs where openat2 gives ENOSYS). */
static bool use_openat2(void)
{
        static int cached = -1;

        if (cached < 0)
                cached = !streq_ptr(getenv("PC_FILES_NO_OPENAT2"), "1");
        return cached;
}

/* The mount fd is on: statx's mount id (5.8), else name_to_handle_at's (older kernels). A bind mount of
 * a directory of the same filesystem has the same st_dev, so the device alone would not do. Neither
 * answering refuses the lookup (-EXDEV): unknown is not "the same". */
static int mount_id(int fd, uint64_t *ret)
{
        struct statx sx;
        union {
                struct file_handle h;
                char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
        } fh = { .h.handle_bytes = MAX_HANDLE_SZ };
        int id;

        if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &sx) >= 0 && (sx.stx_mask & STATX_MNT_ID)) {
                *ret = sx.stx_mnt_id;
                return 0;
        }
        if (name_to_handle_at(fd, "", &fh.h, &id, AT_EMPTY_PATH) >= 0) {
                *ret = (uint64_t) id;
                return 0;
        }
        return -EXDEV;
}

static bool same_mount(int fd, uint64_t root_mnt)
{
        uint64_t m;

        return mount_id(fd, &m) >= 0 && m == root_mnt;
}

/* The fallback: every component opened relative to the previous one with O_NOFOLLOW, intermediate ones
 * as directories on the workspace's mount. The parser has refused "..", so nothing climbs. */
static int walk_open(int rootfd, const char *path, int flags)
{
        _cleanup_close_ int dfd = -EBADF;
        const char *p = path;
        uint64_t root_mnt;
        int cur = rootfd, r;

        r = mount_id(rootfd, &root_mnt);
        if (r < 0)
                return r;
        for (;;) {
                const char *slash = strchr(p, '/');
                char comp[PC_FILES_NAME_MAX + 1];
                size_t n = slash ? (size_t) (slash - p) : strlen(p);
                int fd;

                if (n > PC_FILES_NAME_MAX)
                        return -ENAMETOOLONG;
                memcpy(comp, p, n);
                comp[n] = 0;
                if (!slash || slash[1] == 0) {
                        fd = openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, 0);
                        if (fd < 0)
                                return -errno;
                        if (!same_mount(fd, root_mnt)) {
                                close(fd);
                                return -EXDEV;
                        }
                        return fd;
                }
                fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return errno == ENOTDIR ? -ELOOP : -errno; /* a symlink on the way, or a file */
                if (!same_mount(fd, root_mnt)) {
                        close(fd);
                        return -EXDEV;
                }
                safe_close(dfd);
                cur = dfd = fd;
                p = slash + 1;
        }
}

/* `path` ("" or "x/" is the workspace itself) opened beneath the workspace, as the current identity. */
static int beneath_open(const pc_files_ws *ws, const char *path, int flags, mode_t mode)
{
        struct open_how how = {
                .flags = (uint64_t) (flags | O_NOFOLLOW | O_CLOEXEC),
                .mode = (flags & O_CREAT) ? mode : 0,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
        };
        char buf[PC_FILES_PATH_MAX + 2];
        size_t n = strlen(path);
        long fd;

        if (n >= sizeof(buf))
                return -ENAMETOOLONG;
        memcpy(buf, path, n + 1);
        if (n > 0 && buf[n - 1] == '/')
                buf[--n] = 0;
        if (n == 0) {
                fd = openat(ws->fd, ".", flags | O_CLOEXEC);
                return fd < 0 ? -errno : (int) fd;
        }
        if (use_openat2()) {
                fd = syscall(SYS_openat2, ws->fd, buf, &how, sizeof(how));
                if (fd >= 0)
                        return (int) fd;
                if (errno != ENOSYS)
                        return -errno;
        }
        return walk_open(ws->fd, buf, flags);
}

/* The same inode as the O_PATH fd, opened for real (permission checked as the current identity). */
static int reopen(int pathfd, int flags)
{
        char p[64];
        int fd;

        snprintf(p, sizeof(p), "/proc/self/fd/%d", pathfd);
        fd = open(p, flags | O_CLOEXEC | O_NOCTTY);
        return fd < 0 ? -errno : fd;
}

static const char *type_name(mode_t m)
{
        switch (m & S_IFMT) {
        case S_IFREG: return "file";
        case S_IFDIR: return "directory";
        case S_IFLNK: return "symlink";
        case S_IFIFO: return "fifo";
        case S_IFSOCK: return "socket";
        case S_IFCHR: return "char-device";
        case S_IFBLK: return "block-device";
        default: return "unknown";
        }
}

/* An errno of a lookup as an error the API can show. */
static int lookup_error(pc_error **reterr, int r, const char *path)
{
        switch (-r) {
        case ELOOP:
                return pc_error_setf(reterr, EPERM, "symlink",
                                     "\"%s\" is or passes through a symlink: symlinks are listed, never followed",
                                     path);
        case EXDEV:
                return pc_error_setf(reterr, EPERM, "outside_workspace",
                                     "\"%s\" leads outside the workspace (another mount)", path);
        case ENOENT:
                return pc_error_setf(reterr, ENOENT, "not_found", "\"%s\" does not exist in the workspace", path);
        case ENOTDIR:
                return pc_error_setf(reterr, ENOENT, "not_found", "a component of \"%s\" is not a directory", path);
        case EACCES:
        case EPERM:
                return pc_error_setf(reterr, EACCES, "permission_denied",
                                     "the sandbox's agent may not access \"%s\"", path);
        case ENAMETOOLONG:
                return pc_error_setf(reterr, EINVAL, "invalid_path", "\"%s\" is too long", path);
        default:
                return pc_error_setf(reterr, -r, "files", "cannot open \"%s\": %s", path, strerror(-r));
        }
}

int pc_files_open_read(pc_files_ws *ws, const char *path, int *ret_fd, struct stat *ret_st, pc_error **reterr)
{
        _cleanup_identity_ identity id = {};
        _cleanup_close_ int pfd = -EBADF;
        struct stat st;
        int r, fd;

        r = identity_become(&id, ws);
        if (r < 0)
                return pc_error_setf(reterr, -r, "files", "cannot take the agent's identity: %s", strerror(-r));
        pfd = beneath_open(ws, path, O_PATH, 0);
        if (pfd < 0)
                return lookup_error(reterr, pfd, path);
        if (fstat(pfd, &st) < 0)
                return pc_error_setf(reterr, errno, "files", "cannot stat \"%s\": %m", path);
        if (S_ISLNK(st.st_mode))
                return lookup_error(reterr, -ELOOP, path);
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
                return pc_error_setf(reterr, EPERM, "not_a_file",
                                     "\"%s\" is a %s: only regular files and directories are served", path,
                                     type_name(st.st_mode));
        fd = reopen(pfd, S_ISDIR(st.st_mode) ? O_RDONLY | O_DIRECTORY : O_RDONLY);
        if (fd < 0)
                return lookup_error(reterr, fd, path);
        *ret_fd = fd;
        *ret_st = st;
        return 0;
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static void names_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

/* The names after `cursor` are collected and sorted; only the page's entries are stat'ed. */
static int list_recursive(pc_files_ws *ws, int fd, const char *path, const char *cursor, unsigned limit,
                          json_t **ret, pc_error **reterr);

int pc_files_list(pc_files_ws *ws, const char *path, const char *cursor, unsigned limit, bool recursive,
                  json_t **ret, pc_error **reterr)
{
        _cleanup_(json_decrefp) json_t *page = json_array();
        _cleanup_identity_ identity id = {};
        _cleanup_close_ int fd = -EBADF;
        char **names = NULL;
        size_t n = 0, cap = 0, i;
        DIR *dir;
        struct dirent *de;
        struct stat st;
        int r;

        r = pc_files_open_read(ws, path, &fd, &st, reterr);
        if (r < 0)
                return r;
        if (!S_ISDIR(st.st_mode))
                return pc_error_setf(reterr, ENOTDIR, "not_a_directory", "\"%s\" is not a directory", path);
        if (recursive)
                return list_recursive(ws, TAKE_FD(fd), path, cursor, limit, ret, reterr);
        if (!page)
                return -ENOMEM;
        r = identity_become(&id, ws);
        if (r < 0)
                return pc_error_setf(reterr, -r, "files", "cannot take the agent's identity: %s", strerror(-r));
        dir = fdopendir(fd);
        if (!dir)
                return pc_error_setf(reterr, errno, "files", "cannot read \"%s\": %m", path);
        fd = -EBADF;
        while ((errno = 0, de = readdir(dir))) {
                if (streq(de->d_name, ".") || streq(de->d_name, "..") || (cursor && strcmp(de->d_name, cursor) <= 0))
                        continue;
                if (n == cap) {
                        char **v = realloc(names, (cap = cap * 2 + 256) * sizeof(*v));
                        if (!v)
                                break;
                        names = v;
                }
                names[n] = strdup(de->d_name);
                if (!names[n])
                        break;
                n++;
        }
        r = errno;
        if (r) {
                closedir(dir);
                names_free(names, n);
                return pc_error_setf(reterr, r, "files", "cannot read \"%s\": %s", path, strerror(r));
        }
        qsort(names, n, sizeof(*names), name_cmp);
        for (i = 0; i < n && json_array_size(page) < limit; i++) {
                char mode[8];

                if (fstatat(dirfd(dir), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue; /* gone meanwhile */
                snprintf(mode, sizeof(mode), "%04o", (unsigned) (st.st_mode & 07777));
                /* A name that is not UTF-8 (which the API could not name in a path either) is left out. */
                json_t *e = json_pack("{s:s, s:s, s:I, s:s, s:I}", "name", names[i], "type", type_name(st.st_mode),
                                      "size", (json_int_t) st.st_size, "mode", mode, "mtime", (json_int_t) st.st_mtime);
                if (e && json_array_append_new(page, e) < 0)
                        break;
        }
        closedir(dir);
        *ret = json_pack("{s:s, s:O, s:s?}", "path", path, "entries", page, "next_cursor",
                         i < n && i > 0 ? names[i - 1] : NULL);
        names_free(names, n);
        return *ret ? 0 : -ENOMEM;
}

/* ?recursive=1: every entry below the directory (by fd, as the agent, never through a symlink or into
 * another mount), named by its path relative to it and sorted by that path; at most LIST_RECURSIVE_MAX. */
#define LIST_RECURSIVE_MAX 200000u
#define LIST_DEPTH_MAX     64

typedef struct rentry {
        char *path;
        struct stat st;
} rentry;

typedef struct rwalk {
        rentry *v;
        size_t n, cap;
        uint64_t mnt;
        int error;
} rwalk;

static int rentry_cmp(const void *a, const void *b)
{
        return strcmp(((const rentry *) a)->path, ((const rentry *) b)->path);
}

/* Takes dfd. */
static void rwalk_dir(rwalk *w, int dfd, const char *prefix, int depth)
{
        DIR *dir = fdopendir(dfd);
        struct dirent *de;

        if (!dir) {
                close(dfd);
                return;
        }
        while (!w->error && (de = readdir(dir))) {
                rentry e = {};
                uint64_t m;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd(dir), de->d_name, &e.st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (w->n >= LIST_RECURSIVE_MAX) {
                        w->error = E2BIG;
                        break;
                }
                if (asprintf(&e.path, "%s%s%s", prefix, *prefix ? "/" : "", de->d_name) < 0) {
                        w->error = ENOMEM;
                        break;
                }
                if (w->n == w->cap) {
                        rentry *v = realloc(w->v, (w->cap = w->cap * 2 + 1024) * sizeof(*v));
                        if (!v) {
                                free(e.path);
                                w->error = ENOMEM;
                                break;
                        }
                        w->v = v;
                }
                w->v[w->n++] = e;
                if (S_ISDIR(e.st.st_mode) && depth < LIST_DEPTH_MAX) {
                        int sub = openat(dirfd(dir), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

                        if (sub >= 0 && mount_id(sub, &m) >= 0 && m == w->mnt)
                                rwalk_dir(w, sub, e.path, depth + 1);
                        else if (sub >= 0)
                                close(sub); /* another mount: listed, not entered */
                }
        }
        closedir(dir);
}

static int list_recursive(pc_files_ws *ws, int fd, const char *path, const char *cursor, unsigned limit,
                          json_t **ret, pc_error **reterr)
{
        _cleanup_(json_decrefp) json_t *page = json_array();
        _cleanup_identity_ identity id = {};
        rwalk w = {};
        size_t i;
        int r;

        r = identity_become(&id, ws);
        if (r < 0 || !page || mount_id(fd, &w.mnt) < 0) {
                close(fd);
                return pc_error_setf(reterr, r < 0 ? -r : EIO, "files", "cannot list \"%s\"", path);
        }
        rwalk_dir(&w, fd, "", 0);
        if (w.error == E2BIG)
                r = pc_error_setf(reterr, E2BIG, "too_many_entries",
                                  "more than %u entries below \"%s\": list its subdirectories", LIST_RECURSIVE_MAX, path);
        else if (w.error)
                r = pc_error_setf(reterr, w.error, "files", "cannot list \"%s\": %s", path, strerror(w.error));
        else {
                qsort(w.v, w.n, sizeof(*w.v), rentry_cmp);
                for (i = 0; i < w.n && cursor && strcmp(w.v[i].path, cursor) <= 0; i++)
                        ;
                for (; i < w.n && json_array_size(page) < limit; i++) {
                        char mode[8];
                        json_t *e;

                        snprintf(mode, sizeof(mode), "%04o", (unsigned) (w.v[i].st.st_mode & 07777));
                        e = json_pack("{s:s, s:s, s:I, s:s, s:I}", "name", w.v[i].path, "type",
                                      type_name(w.v[i].st.st_mode), "size", (json_int_t) w.v[i].st.st_size, "mode",
                                      mode, "mtime", (json_int_t) w.v[i].st.st_mtime);
                        if (e && json_array_append_new(page, e) < 0)
                                break;
                }
                *ret = json_pack("{s:s, s:O, s:s?}", "path", path, "entries", page, "next_cursor",
                                 i < w.n && i > 0 ? w.v[i - 1].path : NULL);
                r = *ret ? 0 : -ENOMEM;
        }
        for (i = 0; i < w.n; i++)
                free(w.v[i].path);
        free(w.v);
        return r;
}

struct pc_files_upload {
        pc_files_ws *ws;
        int dirfd, fd;
        char tmp[40];
        char name[PC_FILES_NAME_MAX + 1];
        char *path;
        bool existed;
        int error; /* a write that failed: commit reports it */
};

/* The parent of `path` (made when `parents`) and its last component. */
static int open_parent(const pc_files_ws *ws, const char *path, bool parents, char name[static PC_FILES_NAME_MAX + 1],
                       pc_error **reterr)
{
        char buf[PC_FILES_PATH_MAX + 2], *slash;
        size_t n = strlen(path);
        int fd;

        if (n == 0 || n >= sizeof(buf))
                return pc_error_setf(reterr, EINVAL, "invalid_path", "a file path is needed, not the workspace");
        memcpy(buf, path, n + 1);
        if (buf[n - 1] == '/')
                buf[--n] = 0;
        slash = strrchr(buf, '/');
        if (strlen(slash ? slash + 1 : buf) > PC_FILES_NAME_MAX)
                return pc_error_setf(reterr, EINVAL, "invalid_path", "a component of \"%s\" is too long", path);
        strcpy(name, slash ? slash + 1 : buf);
        if (!slash)
                buf[0] = 0;
        else
                *slash = 0;
        if (parents && buf[0]) {
                /* One directory at a time, each resolved beneath the workspace like everything else. */
                for (char *p = buf;; p++) {
                        if (*p != '/' && *p != 0)
                                continue;
                        char c = *p;
                        *p = 0;
                        fd = beneath_open(ws, buf, O_PATH | O_DIRECTORY, 0);
                        if (fd == -ENOENT) {
                                _cleanup_close_ int pfd = -EBADF;
                                char *s = strrchr(buf, '/');
                                pfd = beneath_open(ws, s ? (*s = 0, buf) : "", O_PATH | O_DIRECTORY, 0);
                                if (s)
                                        *s = '/';
                                if (pfd < 0)
                                        return lookup_error(reterr, pfd, path);
                                if (mkdirat(pfd, s ? s + 1 : buf, 0755) < 0 && errno != EEXIST)
                                        return lookup_error(reterr, -errno, path);
                        } else if (fd < 0)
                                return lookup_error(reterr, fd, path);
                        else
                                close(fd);
                        *p = c;
                        if (c == 0)
                                break;
                }
        }
        fd = beneath_open(ws, buf, O_PATH | O_DIRECTORY, 0);
        if (fd < 0)
                return lookup_error(reterr, fd == -ENOENT ? -ENOENT : fd, path);
        return fd;
}

int pc_files_upload_begin(pc_files_ws *ws, const char *path, bool parents, pc_files_upload **ret,
                          pc_error **reterr)
{
        _cleanup_identity_ identity id = {};
        _cleanup_close_ int pfd = -EBADF, dfd = -EBADF;
        pc_files_upload *u;
        struct stat st;
        mode_t mode = 0644;
        uint8_t rnd[8];
        int r;

        r = identity_become(&id, ws);
        if (r < 0)
                return pc_error_setf(reterr, -r, "files", "cannot take the agent's identity: %s", strerror(-r));
        u = calloc(1, sizeof(*u));
        if (!u)
                return -ENOMEM;
        u->fd = u->dirfd = -EBADF;
        u->ws = ws;
        u->path = strdup(path);
        *ret = u; /* freed by the caller, also on failure */
        if (!u->path)
                return -ENOMEM;
        pfd = open_parent(ws, path, parents, u->name, reterr);
        if (pfd < 0)
                return pfd;
        /* The directory for real: creating the temporary file in it checks that the agent may write it. */
        dfd = reopen(pfd, O_RDONLY | O_DIRECTORY);
        if (dfd < 0)
                return lookup_error(reterr, dfd, path);
        if (fstatat(dfd, u->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                _cleanup_close_ int tfd = -EBADF, wfd = -EBADF;

                if (!S_ISREG(st.st_mode))
                        return pc_error_setf(reterr, EEXIST, "not_a_file",
                                             "\"%s\" exists and is a %s: only regular files are replaced", path,
                                             type_name(st.st_mode));
                /* Replacing a file takes what writing it takes: the agent may not replace a file it could
                 * not write (a root-owned 0644 file in its workspace), even where it may rename. */
                tfd = openat(dfd, u->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (tfd < 0)
                        return lookup_error(reterr, -errno, path);
                wfd = reopen(tfd, O_WRONLY);
                if (wfd < 0)
                        return lookup_error(reterr, wfd, path);
                mode = st.st_mode & 0777;
                u->existed = true;
        }
        if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
                return -errno;
        snprintf(u->tmp, sizeof(u->tmp), ".pc-upload-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3],
                 rnd[4], rnd[5], rnd[6], rnd[7]);
        u->fd = openat(dfd, u->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (u->fd < 0)
                return lookup_error(reterr, -errno, path);
        (void) fchmod(u->fd, mode);
        u->dirfd = TAKE_FD(dfd);
        return 0;
}

int pc_files_upload_write(pc_files_upload *u, const void *data, size_t n)
{
        const char *p = data;

        while (n > 0 && u->error == 0) {
                ssize_t k = write(u->fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        u->error = errno;
                else
                        p += k, n -= (size_t) k;
        }
        return -u->error;
}

int pc_files_upload_commit(pc_files_upload *u, bool *ret_created, pc_error **reterr)
{
        _cleanup_identity_ identity id = {};
        int r;

        if (u->error)
                return pc_error_setf(reterr, u->error, "write", "cannot write \"%s\": %s", u->path,
                                     strerror(u->error));
        if (fsync(u->fd) < 0)
                return pc_error_setf(reterr, errno, "write", "cannot write \"%s\": %m", u->path);
        r = identity_become(&id, u->ws);
        if (r < 0)
                return pc_error_setf(reterr, -r, "files", "cannot take the agent's identity: %s", strerror(-r));
        if (renameat(u->dirfd, u->tmp, u->dirfd, u->name) < 0)
                return lookup_error(reterr, -errno, u->path);
        u->tmp[0] = 0;
        (void) fsync(u->dirfd);
        *ret_created = !u->existed;
        return 0;
}

pc_files_upload *pc_files_upload_free(pc_files_upload *u)
{
        if (!u)
                return NULL;
        if (u->tmp[0] && u->dirfd >= 0) {
                identity id = {};
                if (identity_become(&id, u->ws) >= 0) {
                        (void) unlinkat(u->dirfd, u->tmp, 0);
                        identity_restore(&id);
                }
        }
        safe_close(u->fd);
        safe_close(u->dirfd);
        free(u->path);
        free(u);
        return NULL;
}

int pc_files_delete(pc_files_ws *ws, const char *path, pc_error **reterr)
{
        _cleanup_identity_ identity id = {};
        _cleanup_close_ int pfd = -EBADF, dfd = -EBADF;
        char name[PC_FILES_NAME_MAX + 1];
        int r;

        r = identity_become(&id, ws);
        if (r < 0)
                return pc_error_setf(reterr, -r, "files", "cannot take the agent's identity: %s", strerror(-r));
        pfd = open_parent(ws, path, false, name, reterr);
        if (pfd < 0)
                return pfd;
        dfd = reopen(pfd, O_RDONLY | O_DIRECTORY);
        if (dfd < 0)
                return lookup_error(reterr, dfd, path);
        if (unlinkat(dfd, name, 0) < 0) {
                if (errno != EISDIR)
                        return lookup_error(reterr, -errno, path);
                if (unlinkat(dfd, name, AT_REMOVEDIR) < 0)
                        return errno == ENOTEMPTY
                                       ? pc_error_setf(reterr, ENOTEMPTY, "not_empty", "directory \"%s\" is not empty",
                                                       path)
                                       : lookup_error(reterr, -errno, path);
        }
        return 0;
}

int pc_files_move(pc_files_ws *ws, const char *from, const char *to, pc_error **reterr)
{
        _cleanup_identity_ identity id = {};
        _cleanup_close_ int fp = -EBADF, tp = -EBADF, fd = -EBADF, td = -EBADF;
        char fname[PC_FILES_NAME_MAX + 1], tname[PC_FILES_NAME_MAX + 1];
        int r;

        r = identity_become(&id, ws);
        if (r < 0)
                return pc_error_setf(reterr, -r, "files", "cannot take the agent's identity: %s", strerror(-r));
        fp = open_parent(ws, from, false, fname, reterr);
        if (fp < 0)
                return fp;
        tp = open_parent(ws, to, false, tname, reterr);
        if (tp < 0)
                return tp;
        fd = reopen(fp, O_RDONLY | O_DIRECTORY);
        if (fd < 0)
                return lookup_error(reterr, fd, from);
        td = reopen(tp, O_RDONLY | O_DIRECTORY);
        if (td < 0)
                return lookup_error(reterr, td, to);
        if (renameat2(fd, fname, td, tname, RENAME_NOREPLACE) < 0)
                return errno == EEXIST ? pc_error_setf(reterr, EEXIST, "exists", "\"%s\" exists already", to)
                                       : lookup_error(reterr, -errno, errno == ENOENT ? from : to);
        return 0;
}

int pc_files_audit(pc_daemon *d, const pc_principal *who, const char *action, const char *sandbox, const char *detail)
{
        char actor[128];

        pc_principal_describe(who, actor, sizeof(actor));
        return pc_store_audit(&d->store, actor, action, sandbox, detail);
}

/* ---- signed download links ---- */

/* The links' HMAC key: 32 random bytes made at first use and kept in the settings table (so links
 * survive a restart; deleting the row revokes every link). */
static int link_key(pc_daemon *d, uint8_t ret[static 32], pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        uint8_t rnd[32];
        char hex[65];

        for (int pass = 0; pass < 2; pass++) {
                if (sqlite3_prepare_v2(d->store.db, "SELECT value FROM settings WHERE key = 'files_link_key'", -1,
                                       &st, NULL) != SQLITE_OK)
                        return pc_store_error(&d->store, reterr);
                if (sqlite3_step(st) == SQLITE_ROW) {
                        const char *v = (const char *) sqlite3_column_text(st, 0);

                        if (!v || strlen(v) != 64)
                                return pc_error_setf(reterr, EBADMSG, "store_corrupt",
                                                     "state database: the files link key is invalid");
                        for (size_t i = 0; i < 32; i++)
                                if (sscanf(v + 2 * i, "%2hhx", &ret[i]) != 1)
                                        return pc_error_setf(reterr, EBADMSG, "store_corrupt",
                                                             "state database: the files link key is invalid");
                        return 0;
                }
                sqlite3_finalize(TAKE_PTR(st));
                if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
                        return pc_error_setf(reterr, errno, "internal", "getrandom(): %m");
                for (size_t i = 0; i < 32; i++)
                        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
                if (sqlite3_prepare_v2(d->store.db,
                                       "INSERT OR IGNORE INTO settings (key, value) VALUES ('files_link_key', ?)", -1,
                                       &st, NULL) != SQLITE_OK ||
                    sqlite3_bind_text(st, 1, hex, -1, SQLITE_TRANSIENT) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
                        return pc_store_error(&d->store, reterr);
                sqlite3_finalize(TAKE_PTR(st));
        }
        return pc_error_setf(reterr, EIO, "store_error", "the files link key could not be stored");
}

/* HMAC-SHA256 over "pocketcoder-files-link-v1\n" sandbox "\n" path "\n" expires, hex. */
static int link_sign(pc_daemon *d, const char *sandbox, const char *path, int64_t expires, char ret[static 65],
                     pc_error **reterr)
{
        struct hmac_sha256_ctx c;
        uint8_t key[32], mac[SHA256_DIGEST_SIZE];
        char exp[24];
        int r;

        r = link_key(d, key, reterr);
        if (r < 0)
                return r;
        snprintf(exp, sizeof(exp), "%" PRId64, expires);
        hmac_sha256_set_key(&c, sizeof(key), key);
        hmac_sha256_update(&c, STRLEN("pocketcoder-files-link-v1\n"), (const uint8_t *) "pocketcoder-files-link-v1\n");
        hmac_sha256_update(&c, strlen(sandbox) + 1, (const uint8_t *) sandbox); /* with its NUL: unambiguous */
        hmac_sha256_update(&c, strlen(path) + 1, (const uint8_t *) path);
        hmac_sha256_update(&c, strlen(exp), (const uint8_t *) exp);
        hmac_sha256_digest(&c, sizeof(mac), mac);
        explicit_bzero_safe(key, sizeof(key));
        for (size_t i = 0; i < sizeof(mac); i++)
                snprintf(ret + 2 * i, 3, "%02x", mac[i]);
        return 0;
}

int pc_files_link_create(pc_daemon *d, const char *sandbox, const char *path, unsigned minutes, int64_t *ret_expires,
                         char ret_sig[static 65], pc_error **reterr)
{
        if (minutes < 1 || minutes > PC_FILES_LINK_MINUTES_MAX)
                return pc_error_setf(reterr, EINVAL, "invalid_field", "minutes must be from 1 to %u",
                                     PC_FILES_LINK_MINUTES_MAX);
        *ret_expires = (int64_t) (now_usec(CLOCK_REALTIME) / 1000000) + (int64_t) minutes * 60;
        return link_sign(d, sandbox, path, *ret_expires, ret_sig, reterr);
}

int pc_files_link_verify(pc_daemon *d, const char *sandbox, const char *path, const char *expires, const char *sig,
                         pc_error **reterr)
{
        char want[65];
        int64_t e;
        uint64_t u;
        int r;

        if (!expires || !sig || parse_uint64(expires, &u) < 0 || u > INT64_MAX || strlen(sig) != 64)
                return pc_error_setf(reterr, EACCES, "forbidden",
                                     "this link is not valid: it needs the expires and sig of POST .../files/PATH:link");
        e = (int64_t) u;
        r = link_sign(d, sandbox, path, e, want, reterr);
        if (r < 0)
                return r;
        if (!memeql_sec(want, sig, 64))
                return pc_error_setf(reterr, EACCES, "forbidden", "this link is not valid (its signature does not match)");
        if (e < (int64_t) (now_usec(CLOCK_REALTIME) / 1000000))
                return pc_error_setf(reterr, EACCES, "link_expired", "this link has expired");
        return 0;
}

/* ---- a directory as a tar stream ---- */

#define TAR_DEPTH_MAX 64

typedef struct tar_frame {
        DIR *dir;
        char *rel; /* the directory's path inside the archive, "" for its top */
} tar_frame;

struct pc_files_tar {
        pc_files_ws ws; /* the agent's identity, copied (fd unused): nothing here points into the request */
        uint64_t mnt;
        tar_frame stack[TAR_DEPTH_MAX];
        int depth;
        char out[3 * 512 + PC_FILES_PATH_MAX + 2 * 4096]; /* headers waiting to go */
        size_t len, off;
        int fd;              /* the file whose bytes go now */
        uint64_t left, pad;  /* its bytes still to send, then zeros to a 512-byte block */
        bool done;
};

/* V as N-1 octal digits and a NUL (a tar header's numeric field). A size too large for 11 digits (8 GiB)
 * takes GNU tar's base-256 form instead: the high bit of the first byte set, the value big-endian. */
static void tar_octal(char *field, size_t n, uint64_t v)
{
        if (n > 1 && (n - 1) * 3 < 64 && v >> ((n - 1) * 3)) {
                memset(field, 0, n);
                for (size_t i = n; i-- > 1 && v; v >>= 8)
                        field[i] = (char) (v & 0xff);
                field[0] = (char) 0x80;
                return;
        }
        field[n - 1] = 0;
        for (size_t i = n - 1; i-- > 0; v >>= 3)
                field[i] = (char) ('0' + (v & 7));
}

/* One 512-byte header (type, name up to 100 bytes, linkname up to 100) appended to t->out. */
static void tar_header(pc_files_tar *t, char type, const char *name, const char *link, uint64_t size,
                       const struct stat *st)
{
        char *h = t->out + t->len;
        unsigned sum = 0;
        uid_t base = t->ws.uid - ISOLATE_AGENT_UID;

        memset(h, 0, 512);
        memcpy(h, name, MIN(strlen(name), 100u));
        tar_octal(h + 100, 8, st ? st->st_mode & 07777 : 0644);
        tar_octal(h + 108, 8, st && st->st_uid >= base ? st->st_uid - base : 0);
        tar_octal(h + 116, 8, st && st->st_gid >= base ? st->st_gid - base : 0);
        tar_octal(h + 124, 12, size);
        tar_octal(h + 136, 12, st ? (uint64_t) MAX(st->st_mtime, 0) : 0);
        memset(h + 148, ' ', 8);
        h[156] = type;
        if (link)
                memcpy(h + 157, link, MIN(strlen(link), 100u));
        memcpy(h + 257, "ustar  ", 8); /* GNU magic: long names as ././@LongLink entries */
        for (int i = 0; i < 512; i++)
                sum += (unsigned char) h[i];
        snprintf(h + 148, 8, "%06o", sum);
        t->len += 512;
}

/* A GNU long-name ('L') or long-link ('K') entry before a header whose name or link exceeds 100 bytes. */
static void tar_long(pc_files_tar *t, char type, const char *s)
{
        size_t n = strlen(s) + 1;

        tar_header(t, type, "././@LongLink", NULL, n, NULL);
        memset(t->out + t->len, 0, (n + 511) / 512 * 512);
        memcpy(t->out + t->len, s, n);
        t->len += (n + 511) / 512 * 512;
}

static void tar_entry(pc_files_tar *t, char type, const char *name, const char *link, uint64_t size,
                      const struct stat *st)
{
        if (strlen(name) > 100)
                tar_long(t, 'L', name);
        if (link && strlen(link) > 100)
                tar_long(t, 'K', link);
        tar_header(t, type, name, link, size, st);
}

int pc_files_tar_new(pc_files_ws *ws, const char *path, pc_files_tar **ret, pc_error **reterr)
{
        _cleanup_close_ int fd = -EBADF;
        pc_files_tar *t;
        struct stat st;
        int r;

        r = pc_files_open_read(ws, path, &fd, &st, reterr);
        if (r < 0)
                return r;
        if (!S_ISDIR(st.st_mode))
                return pc_error_setf(reterr, ENOTDIR, "not_a_directory", "\"%s\" is not a directory", path);
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->ws = (pc_files_ws){ .fd = -EBADF, .uid = ws->uid, .gid = ws->gid };
        t->fd = -EBADF;
        if (mount_id(fd, &t->mnt) < 0 || !(t->stack[0].rel = strdup("")) || !(t->stack[0].dir = fdopendir(fd))) {
                free(t->stack[0].rel);
                free(t);
                return pc_error_setf(reterr, ENOMEM, "files", "cannot read \"%s\"", path);
        }
        fd = -EBADF;
        t->depth = 1;
        *ret = t;
        return 0;
}

pc_files_tar *pc_files_tar_free(pc_files_tar *t)
{
        if (!t)
                return NULL;
        for (int i = 0; i < t->depth; i++) {
                closedir(t->stack[i].dir);
                free(t->stack[i].rel);
        }
        safe_close(t->fd);
        free(t);
        return NULL;
}

/* Queues the next entry's headers (and opens its file). Returns false at the end of the archive. */
static bool tar_next(pc_files_tar *t)
{
        while (t->depth > 0) {
                tar_frame *f = &t->stack[t->depth - 1];
                struct dirent *de = readdir(f->dir);
                _cleanup_free_ char *rel = NULL;
                _cleanup_close_ int pfd = -EBADF;
                struct stat st;
                uint64_t m;

                if (!de) {
                        closedir(f->dir);
                        free(f->rel);
                        t->depth--;
                        continue;
                }
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (asprintf(&rel, "%s%s%s", f->rel, *f->rel ? "/" : "", de->d_name) < 0 ||
                    strlen(rel) > PC_FILES_PATH_MAX)
                        continue;
                /* Each entry by name in the directory's fd, never following it; other mounts are left out. */
                pfd = openat(dirfd(f->dir), de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (pfd < 0 || fstat(pfd, &st) < 0 || mount_id(pfd, &m) < 0 || m != t->mnt)
                        continue;
                if (S_ISLNK(st.st_mode)) {
                        char link[4096];
                        ssize_t n = readlinkat(dirfd(f->dir), de->d_name, link, sizeof(link) - 1);

                        if (n < 0)
                                continue;
                        link[n] = 0;
                        tar_entry(t, '2', rel, link, 0, &st);
                        return true;
                }
                if (S_ISDIR(st.st_mode)) {
                        int dfd = reopen(pfd, O_RDONLY | O_DIRECTORY);
                        DIR *d;
                        char *name;

                        if (dfd < 0)
                                continue; /* not readable by the agent: left out */
                        if (t->depth >= TAR_DEPTH_MAX || !(name = strjoin(rel, "/"))) {
                                close(dfd);
                                continue;
                        }
                        tar_entry(t, '5', name, NULL, 0, &st);
                        free(name);
                        d = fdopendir(dfd);
                        if (!d) {
                                close(dfd);
                                return true;
                        }
                        t->stack[t->depth++] = (tar_frame){ .dir = d, .rel = TAKE_PTR(rel) };
                        return true;
                }
                if (!S_ISREG(st.st_mode))
                        continue; /* fifos, sockets, devices: never opened, left out */
                t->fd = reopen(pfd, O_RDONLY);
                if (t->fd < 0)
                        continue; /* not readable by the agent: left out */
                tar_entry(t, '0', rel, NULL, (uint64_t) st.st_size, &st);
                t->left = (uint64_t) st.st_size;
                t->pad = (512 - st.st_size % 512) % 512;
                return true;
        }
        return false;
}

ssize_t pc_files_tar_read(pc_files_tar *t, char *buf, size_t max)
{
        _cleanup_identity_ identity id = {};

        if (identity_become(&id, &t->ws) < 0)
                return -EPERM;
        for (;;) {
                if (t->off < t->len) {
                        size_t n = MIN(max, t->len - t->off);
                        memcpy(buf, t->out + t->off, n);
                        t->off += n;
                        return (ssize_t) n;
                }
                t->off = t->len = 0;
                if (t->left > 0) {
                        ssize_t k = read(t->fd, buf, (size_t) MIN((uint64_t) max, t->left));

                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0) { /* shrunk meanwhile: zeros keep the archive's promised size */
                                k = (ssize_t) MIN((uint64_t) max, t->left);
                                memset(buf, 0, (size_t) k);
                        }
                        t->left -= (uint64_t) k;
                        return k;
                }
                if (t->pad > 0) {
                        memset(t->out, 0, t->pad);
                        t->len = t->pad;
                        t->pad = 0;
                        continue;
                }
                t->fd = safe_close(t->fd);
                if (t->done)
                        return 0;
                if (!tar_next(t)) {
                        memset(t->out, 0, 1024); /* two zero blocks end the archive */
                        t->len = 1024;
                        t->done = true;
                }
        }
}
