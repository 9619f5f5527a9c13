/* SPDX-License-Identifier: MIT */
/* Sandbox cgroups: memory, pids and cpu limits. cgroup v2 is the primary path: a subtree delegated to
 * the daemon under its own cgroup. cgroup v1 (memory, pids, cpu, cpuacct hierarchies) is the fallback
 * for hybrid hosts.
 *
 * Security: the agent must never be able to write a cgroup control file (raise its limits, or
 * migrate itself out). Every directory and file created here stays owned by host root, and a sandbox's
 * root is an unprivileged host uid through its user namespace, so the kernel's file permission check
 * refuses writes even if the files were visible. The sandbox additionally gets a cgroup namespace
 * rooted at its leaf (it sees no other group), and /sys is not mounted inside at all (sandbox core). We
 * deliberately do NOT chown the leaf to the sandbox's uid range the way "delegation to a container"
 * would: the agent needs no sub-groups. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/vfs.h>
#include <sched.h>
#include <time.h>

#include "cgroup-internal.h"
#include "common.h"
#include "isolate.h"

/* How long kill waits for a group to empty: SIGKILL is not ignorable, but a task in uninterruptible
 * wait (D state, e.g. on a stuck NFS mount) only dies when its I/O returns. */
#define CGROUP_KILL_TIMEOUT_USEC (30ULL * 1000000ULL)

static const char *const v1_controller_name[_CGROUP_V1_MAX] = {
        [CGROUP_V1_MEMORY] = "memory",
        [CGROUP_V1_PIDS] = "pids",
        [CGROUP_V1_CPU] = "cpu",
        [CGROUP_V1_CPUACCT] = "cpuacct",
};

struct isolate_cgroup {
        isolate_cgroup_version version;
        char *path;                   /* v2: the leaf; v1: the leaf in the memory hierarchy */
        int fd;                       /* v2: O_DIRECTORY fd of the leaf; -EBADF on v1 */
        char *v1_dir[_CGROUP_V1_MAX]; /* v1: the leaf in each controller's hierarchy, or NULL */
};

/* ---- small file helpers; cgroup files want one write() per value ---- */

static int cg_write(int dirfd, const char *file, const char *value)
{
        _cleanup_close_ int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        size_t n = strlen(value);
        ssize_t k;

        if (fd < 0)
                return -errno;
        k = write(fd, value, n);
        if (k < 0)
                return -errno;
        return (size_t)k == n ? 0 : -EIO;
}

static int cg_write_u64(int dirfd, const char *file, uint64_t v, bool zero_is_max, const char *max_word)
{
        char buf[32];

        if (zero_is_max && v == 0)
                return cg_write(dirfd, file, max_word);
        snprintf(buf, sizeof(buf), "%" PRIu64, v);
        return cg_write(dirfd, file, buf);
}

static int cg_read(int dirfd, const char *file, char **ret)
{
        _cleanup_close_ int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);

        if (fd < 0)
                return -errno;
        return read_full_fd(fd, 4 << 20, ret, NULL);
}

static int cg_read_u64(int dirfd, const char *file, uint64_t *ret)
{
        _cleanup_free_ char *s = NULL;
        char *v;
        int r;

        r = cg_read(dirfd, file, &s);
        if (r < 0)
                return r;
        v = strstrip(s);
        if (streq(v, "max")) {
                *ret = UINT64_MAX;
                return 0;
        }
        return parse_uint64(v, ret);
}

/* Reads "KEY VALUE" out of a flat-keyed file such as cpu.stat or memory.events. */
static int cg_read_key(int dirfd, const char *file, const char *key, uint64_t *ret)
{
        _cleanup_free_ char *s = NULL;
        size_t kl = strlen(key);
        int r;

        r = cg_read(dirfd, file, &s);
        if (r < 0)
                return r;
        for (char *line = s, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if (strneq(line, key, kl) && line[kl] == ' ')
                        return parse_uint64(strstrip(line + kl + 1), ret);
        }
        return -ENODATA;
}

static bool word_in_list(const char *list, const char *word, const char *seps)
{
        size_t wl = strlen(word);

        for (const char *p = list; *p;) {
                size_t n = strcspn(p, seps);
                if (n == wl && strneq(p, word, wl))
                        return true;
                p += n;
                p += strspn(p, seps);
        }
        return false;
}

static int open_dir(const char *path)
{
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

/* ---- detection ---- */

/* /proc/self/mounts escapes space, tab, newline and backslash as \ooo. */
static void unescape_mount_path(char *s)
{
        char *w = s;

        for (char *r = s; *r; r++) {
                if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
                    r[3] >= '0' && r[3] <= '7') {
                        *w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
                        r += 3;
                } else
                        *w++ = *r;
        }
        *w = 0;
}

/* Our path in the unified hierarchy, from the "0::/PATH" line of /proc/self/cgroup. */
static int own_v2_path(char **ret)
{
        _cleanup_free_ char *s = NULL;
        int r;

        r = read_full_file("/proc/self/cgroup", 1 << 20, &s, NULL);
        if (r < 0)
                return r;
        for (char *line = s, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if (startswith(line, "0::/")) {
                        char *p = strdup(line + 3);
                        if (!p)
                                return -ENOMEM;
                        *ret = p;
                        return 0;
                }
        }
        return -ENOENT;
}

void cgroup_layout_done(cgroup_layout *l)
{
        free(l->v2_base);
        for (size_t i = 0; i < _CGROUP_V1_MAX; i++)
                free(l->v1_mount[i]);
        *l = (cgroup_layout){};
}

static void cgroup_layout_donep(cgroup_layout *l)
{
        cgroup_layout_done(l);
}

/* Checks one cgroup2 mount: our delegated group under it, and the controllers it offers us. Returns 1
 * when memory, pids and cpu are all there. */
static int probe_v2_mount(const char *mnt, const char *own, cgroup_layout *l)
{
        _cleanup_free_ char *base = NULL, *controllers = NULL, *own_copy = strdup(own);
        _cleanup_close_ int fd = -EBADF;
        char *slash;
        int r;

        if (!own_copy)
                return -ENOMEM;
        /* Already moved into our own leaf by an earlier call (or an earlier daemon): the delegated
         * group is its parent. */
        slash = strrchr(own_copy, '/');
        if (slash && slash != own_copy && streq(slash + 1, CGROUP_DAEMON_LEAF))
                *slash = 0;
        base = streq(own_copy, "/") ? strdup(mnt) : strjoin(mnt, own_copy);
        if (!base)
                return -ENOMEM;
        fd = open_dir(base);
        if (fd < 0)
                return fd;
        r = cg_read(fd, "cgroup.controllers", &controllers);
        if (r < 0)
                return r;
        free(l->v2_base);
        l->v2_base = TAKE_PTR(base);
        l->v2_base_is_root = streq(own_copy, "/");
        l->memory = word_in_list(controllers, "memory", " \n");
        l->pids = word_in_list(controllers, "pids", " \n");
        l->cpu = word_in_list(controllers, "cpu", " \n");
        return l->memory && l->pids && l->cpu;
}

int cgroup_layout_detect(cgroup_layout *ret)
{
        _cleanup_(cgroup_layout_donep) cgroup_layout l = {}, v2_partial = {};
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL, *own = NULL, *v2_mounts = NULL;
        size_t cap = 0, v2_len = 0;
        int r;

        f = fopen("/proc/self/mounts", "re");
        if (!f)
                return -errno;
        while (getline(&line, &cap, f) > 0) {
                char *save = NULL, *mnt, *type, *opts;

                if (!strtok_r(line, " ", &save) || !(mnt = strtok_r(NULL, " ", &save)) ||
                    !(type = strtok_r(NULL, " ", &save)) || !(opts = strtok_r(NULL, " ", &save)))
                        continue;
                unescape_mount_path(mnt);
                if (streq(type, "cgroup2")) {
                        /* Collect as a NUL-separated list; /sys/fs/cgroup goes first: it is the
                         * canonical place and the only one that makes a host "pure v2". */
                        size_t n = strlen(mnt) + 1;
                        char *p = realloc(v2_mounts, v2_len + n + 1);
                        if (!p)
                                return -ENOMEM;
                        v2_mounts = p;
                        if (streq(mnt, "/sys/fs/cgroup")) {
                                memmove(v2_mounts + n, v2_mounts, v2_len);
                                memcpy(v2_mounts, mnt, n);
                        } else
                                memcpy(v2_mounts + v2_len, mnt, n);
                        v2_len += n;
                        v2_mounts[v2_len] = 0;
                } else if (streq(type, "cgroup")) {
                        for (size_t i = 0; i < _CGROUP_V1_MAX; i++)
                                if (!l.v1_mount[i] && word_in_list(opts, v1_controller_name[i], ",")) {
                                        l.v1_mount[i] = strdup(mnt);
                                        if (!l.v1_mount[i])
                                                return -ENOMEM;
                                }
                }
        }

        if (v2_mounts && own_v2_path(&own) >= 0)
                for (const char *m = v2_mounts; *m; m += strlen(m) + 1) {
                        cgroup_layout cand = {};

                        r = probe_v2_mount(m, own, &cand);
                        if (r > 0) {
                                for (size_t i = 0; i < _CGROUP_V1_MAX; i++)
                                        cand.v1_mount[i] = TAKE_PTR(l.v1_mount[i]);
                                cand.version = ISOLATE_CGROUP_V2;
                                cgroup_layout_done(&l);
                                *ret = cand;
                                return 0;
                        }
                        if (r == 0 && !v2_partial.v2_base) {
                                cand.version = ISOLATE_CGROUP_V2;
                                v2_partial = cand;
                        } else
                                cgroup_layout_done(&cand);
                }

        /* A hybrid host: the unified hierarchy exists but holds no (or not all) controllers, e.g. an
         * empty cgroup2 at /sys/fs/cgroup/unified. Use v1 if any of our controllers is there. */
        if (l.v1_mount[CGROUP_V1_MEMORY] || l.v1_mount[CGROUP_V1_PIDS] || l.v1_mount[CGROUP_V1_CPU]) {
                l.version = ISOLATE_CGROUP_V1;
                l.memory = l.v1_mount[CGROUP_V1_MEMORY];
                l.pids = l.v1_mount[CGROUP_V1_PIDS];
                l.cpu = l.v1_mount[CGROUP_V1_CPU];
                *ret = l;
                l = (cgroup_layout){};
                return 0;
        }
        if (v2_partial.v2_base) {
                *ret = v2_partial;
                v2_partial = (cgroup_layout){};
                return 0;
        }
        *ret = (cgroup_layout){.version = ISOLATE_CGROUP_NONE};
        return 0;
}

/* ---- object ---- */

isolate_cgroup *isolate_cgroup_free(isolate_cgroup *cg)
{
        if (!cg)
                return NULL;
        safe_close(cg->fd);
        free(cg->path);
        for (size_t i = 0; i < _CGROUP_V1_MAX; i++)
                free(cg->v1_dir[i]);
        free(cg);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(isolate_cgroup *, isolate_cgroup_free);

const char *isolate_cgroup_path(const isolate_cgroup *cg)
{
        return cg->path;
}

isolate_cgroup_version isolate_cgroup_get_version(const isolate_cgroup *cg)
{
        return cg->version;
}

int isolate_cgroup_fd(isolate_cgroup *cg)
{
        return cg->version == ISOLATE_CGROUP_V2 ? cg->fd : -EOPNOTSUPP;
}

/* v1: cpu and cpuacct are often co-mounted, so two controllers may share one directory; everything
 * that acts per directory skips the repeats. */
static bool v1_dir_is_repeat(const isolate_cgroup *cg, size_t i)
{
        for (size_t j = 0; j < i; j++)
                if (cg->v1_dir[j] && streq(cg->v1_dir[j], cg->v1_dir[i]))
                        return true;
        return false;
}

static int pid_list_has_any(int dirfd)
{
        _cleanup_free_ char *s = NULL;
        int r = cg_read(dirfd, "cgroup.procs", &s);

        if (r < 0)
                return r;
        return !isempty(strstrip(s));
}

/* mkdirat that accepts an existing, empty group (a leftover of a crash between create and destroy). */
static int mkdir_group(int dirfd, const char *name, bool must_be_empty)
{
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (mkdirat(dirfd, name, 0755) >= 0)
                return 0;
        if (errno != EEXIST)
                return -errno;
        if (!must_be_empty)
                return 0;
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        r = pid_list_has_any(fd);
        if (r < 0)
                return r;
        return r ? -EBUSY : 0;
}

/* v2: enable our controllers for the children of `dirfd`. Writing "+x" for an enabled controller is a
 * no-op, but checking first avoids a write that could fail for unrelated reasons. */
static int v2_enable_controllers(int dirfd)
{
        _cleanup_free_ char *s = NULL;
        int r;

        r = cg_read(dirfd, "cgroup.subtree_control", &s);
        if (r < 0)
                return r;
        if (word_in_list(s, "memory", " \n") && word_in_list(s, "pids", " \n") &&
            word_in_list(s, "cpu", " \n"))
                return 0;
        return cg_write(dirfd, "cgroup.subtree_control", "+memory +pids +cpu");
}

/* v2 "no internal processes": a non-root group with controllers enabled for its children may hold no
 * processes itself. Our delegated group holds the daemon, so move it into the leaf CGROUP_DAEMON_LEAF
 * first, as systemd's Delegate=yes services are expected to. Only the daemon moves: anything else in the
 * group (say, the admin's shell when the daemon was started by hand inside a session scope) is not ours,
 * and enabling the controllers then fails with EBUSY, reported with a hint. */
static int v2_evacuate(int base_fd)
{
        _cleanup_free_ char *procs = NULL;
        _cleanup_close_ int leaf_fd = -EBADF;
        char self[24];
        int r;

        r = cg_read(base_fd, "cgroup.procs", &procs);
        if (r < 0)
                return r;
        snprintf(self, sizeof(self), "%d", (int)getpid());
        if (!word_in_list(procs, self, "\n"))
                return 0;
        r = mkdir_group(base_fd, CGROUP_DAEMON_LEAF, false);
        if (r < 0)
                return r;
        leaf_fd = openat(base_fd, CGROUP_DAEMON_LEAF, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (leaf_fd < 0)
                return -errno;
        /* Moves the whole thread group. */
        return cg_write(leaf_fd, "cgroup.procs", self);
}

static int v2_make(const cgroup_layout *l, const char *parent_name, const char *sandbox_name, bool create,
                   isolate_cgroup **ret, pc_error **reterr)
{
        _cleanup_(isolate_cgroup_freep) isolate_cgroup *cg = NULL;
        _cleanup_close_ int base_fd = -EBADF, parent_fd = -EBADF;
        int r;

        base_fd = open_dir(l->v2_base);
        if (base_fd < 0)
                return pc_error_setf(reterr, -base_fd, "cgroup_failed", "cgroup: cannot open \"%s\": %s",
                                     l->v2_base, strerror(-base_fd));
        if (create) {
                if (!l->v2_base_is_root) {
                        r = v2_evacuate(base_fd);
                        if (r < 0)
                                return pc_error_setf(reterr, r, "cgroup_failed",
                                                     "cgroup: cannot move the daemon into \"%s/%s\": %s",
                                                     l->v2_base, CGROUP_DAEMON_LEAF, strerror(-r));
                }
                r = v2_enable_controllers(base_fd);
                if (r == -EBUSY)
                        return pc_error_setf(
                                reterr, r, "cgroup_failed",
                                "cgroup: \"%s\" holds processes other than the daemon, so it cannot "
                                "delegate controllers; run the daemon in a cgroup of its own "
                                "(systemd: Delegate=yes)",
                                l->v2_base);
                if (r < 0)
                        return pc_error_setf(reterr, r, "cgroup_failed",
                                             "cgroup: cannot enable memory, pids, cpu in "
                                             "\"%s/cgroup.subtree_control\": %s",
                                             l->v2_base, strerror(-r));
                r = mkdir_group(base_fd, parent_name, false);
                if (r < 0)
                        return pc_error_setf(reterr, r, "cgroup_failed",
                                             "cgroup: cannot create \"%s/%s\": %s", l->v2_base, parent_name,
                                             strerror(-r));
        }
        parent_fd = openat(base_fd, parent_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (parent_fd < 0)
                return pc_error_setf(reterr, errno, "cgroup_failed", "cgroup: cannot open \"%s/%s\": %m",
                                     l->v2_base, parent_name);
        if (create) {
                r = v2_enable_controllers(parent_fd);
                if (r < 0)
                        return pc_error_setf(reterr, r, "cgroup_failed",
                                             "cgroup: cannot enable memory, pids, cpu in "
                                             "\"%s/%s/cgroup.subtree_control\": %s",
                                             l->v2_base, parent_name, strerror(-r));
                r = mkdir_group(parent_fd, sandbox_name, true);
                if (r < 0)
                        return pc_error_setf(reterr, r, r == -EBUSY ? "cgroup_busy" : "cgroup_failed",
                                             "cgroup: cannot create \"%s/%s/%s\": %s", l->v2_base,
                                             parent_name, sandbox_name,
                                             r == -EBUSY ? "it exists and holds processes" : strerror(-r));
        }

        cg = calloc(1, sizeof(*cg));
        if (!cg)
                return -ENOMEM;
        cg->version = ISOLATE_CGROUP_V2;
        cg->fd = openat(parent_fd, sandbox_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (cg->fd < 0)
                return -errno;
        cg->path = strjoin(l->v2_base, "/", parent_name, "/", sandbox_name);
        if (!cg->path)
                return -ENOMEM;
        *ret = TAKE_PTR(cg);
        return 0;
}

static int v1_make(const cgroup_layout *l, const char *parent_name, const char *sandbox_name, bool create,
                   isolate_cgroup **ret, pc_error **reterr)
{
        _cleanup_(isolate_cgroup_freep) isolate_cgroup *cg = NULL;
        int r;

        cg = calloc(1, sizeof(*cg));
        if (!cg)
                return -ENOMEM;
        cg->version = ISOLATE_CGROUP_V1;
        cg->fd = -EBADF;
        for (size_t i = 0; i < _CGROUP_V1_MAX; i++) {
                _cleanup_close_ int mnt_fd = -EBADF, parent_fd = -EBADF;

                if (!l->v1_mount[i])
                        continue;
                cg->v1_dir[i] = strjoin(l->v1_mount[i], "/", parent_name, "/", sandbox_name);
                if (!cg->v1_dir[i])
                        return -ENOMEM;
                if (v1_dir_is_repeat(cg, i))
                        continue;
                if (!create) {
                        if (access(cg->v1_dir[i], F_OK) < 0)
                                return -errno;
                        continue;
                }
                mnt_fd = open_dir(l->v1_mount[i]);
                if (mnt_fd < 0)
                        return pc_error_setf(reterr, -mnt_fd, "cgroup_failed",
                                             "cgroup: cannot open \"%s\": %s", l->v1_mount[i],
                                             strerror(-mnt_fd));
                r = mkdir_group(mnt_fd, parent_name, false);
                if (r >= 0) {
                        parent_fd =
                                openat(mnt_fd, parent_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                        r = parent_fd < 0 ? -errno : mkdir_group(parent_fd, sandbox_name, true);
                }
                if (r < 0) {
                        pc_error_setf(reterr, r, r == -EBUSY ? "cgroup_busy" : "cgroup_failed",
                                      "cgroup: cannot create \"%s\": %s", cg->v1_dir[i],
                                      r == -EBUSY ? "it exists and holds processes" : strerror(-r));
                        (void)isolate_cgroup_destroy(cg);
                        return r;
                }
        }
        /* The memory hierarchy names the group: all three controllers are required to get here. */
        cg->path = strdup(cg->v1_dir[CGROUP_V1_MEMORY]);
        if (!cg->path)
                return -ENOMEM;
        *ret = TAKE_PTR(cg);
        return 0;
}

static int detect_usable(cgroup_layout *l, pc_error **reterr)
{
        int r;

        r = cgroup_layout_detect(l);
        if (r < 0)
                return pc_error_setf(reterr, r, "cgroup_unsupported",
                                     "cgroup: cannot inspect the hierarchies: %s", strerror(-r));
        if (l->version == ISOLATE_CGROUP_NONE)
                return pc_error_setf(
                        reterr, EOPNOTSUPP, "cgroup_unsupported",
                        "cgroup: neither cgroup v2 nor v1 memory/pids/cpu hierarchies are mounted");
        if (!l->memory || !l->pids || !l->cpu)
                return pc_error_setf(reterr, EOPNOTSUPP, "cgroup_unsupported",
                                     "cgroup v%d: controller \"%s\" is not available", (int)l->version,
                                     !l->memory ? "memory"
                                     : !l->pids ? "pids"
                                                : "cpu");
        return 0;
}

static bool names_valid(const char *parent_name, const char *sandbox_name)
{
        return name_is_valid(parent_name) && name_is_valid(sandbox_name) &&
               !streq(parent_name, CGROUP_DAEMON_LEAF);
}

int isolate_cgroup_new(const char *parent_name, const char *sandbox_name, const isolate_limits *limits,
                       isolate_cgroup **ret, pc_error **reterr)
{
        _cleanup_(cgroup_layout_donep) cgroup_layout l = {};
        _cleanup_(isolate_cgroup_freep) isolate_cgroup *cg = NULL;
        int r;

        if (!names_valid(parent_name, sandbox_name))
                return pc_error_setf(reterr, EINVAL, "invalid_name", "cgroup: invalid group name \"%s/%s\"",
                                     strna(parent_name), strna(sandbox_name));
        r = detect_usable(&l, reterr);
        if (r < 0)
                return r;
        if (l.version == ISOLATE_CGROUP_V2)
                r = v2_make(&l, parent_name, sandbox_name, true, &cg, reterr);
        else
                r = v1_make(&l, parent_name, sandbox_name, true, &cg, reterr);
        if (r < 0)
                return pc_error_setf(reterr, r, "cgroup_failed",
                                     "cgroup: cannot create group for \"%s\": %s", sandbox_name,
                                     strerror(-r));
        if (limits) {
                r = isolate_cgroup_set_limits(cg, limits);
                if (r < 0) {
                        pc_error_setf(reterr, r, "cgroup_failed", "cgroup: cannot set limits on \"%s\": %s",
                                      cg->path, strerror(-r));
                        (void)isolate_cgroup_destroy(cg);
                        return r;
                }
        }
        *ret = TAKE_PTR(cg);
        return 0;
}

int isolate_cgroup_open(const char *parent_name, const char *sandbox_name, isolate_cgroup **ret)
{
        _cleanup_(cgroup_layout_donep) cgroup_layout l = {};
        int r;

        if (!names_valid(parent_name, sandbox_name))
                return -EINVAL;
        r = detect_usable(&l, NULL);
        if (r < 0)
                return r;
        if (l.version == ISOLATE_CGROUP_V2)
                return v2_make(&l, parent_name, sandbox_name, false, ret, NULL);
        return v1_make(&l, parent_name, sandbox_name, false, ret, NULL);
}

/* Runs f on an O_DIRECTORY fd of every distinct directory of the group. */
static int for_each_dir(isolate_cgroup *cg, int (*f)(int dirfd, const char *path, void *userdata),
                        void *userdata)
{
        int r;

        if (cg->version == ISOLATE_CGROUP_V2)
                return f(cg->fd, cg->path, userdata);
        for (size_t i = 0; i < _CGROUP_V1_MAX; i++) {
                _cleanup_close_ int fd = -EBADF;

                if (!cg->v1_dir[i] || v1_dir_is_repeat(cg, i))
                        continue;
                fd = open_dir(cg->v1_dir[i]);
                if (fd < 0)
                        return fd;
                r = f(fd, cg->v1_dir[i], userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int attach_one(int dirfd, const char *path, void *userdata)
{
        return cg_write(dirfd, "cgroup.procs", userdata);
}

int isolate_cgroup_attach(isolate_cgroup *cg, pid_t pid)
{
        char buf[24];

        if (pid <= 0)
                return -EINVAL;
        snprintf(buf, sizeof(buf), "%d", (int)pid);
        return for_each_dir(cg, attach_one, buf);
}

_Static_assert(_CGROUP_V1_MAX <= ISOLATE_CGROUP_JOIN_MAX, "one join file per v1 hierarchy");

static int open_tasks(int dirfd, const char *path, void *userdata)
{
        isolate_cgroup_join *j = userdata;
        int fd = openat(dirfd, "tasks", O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);

        (void)path;
        if (fd < 0)
                return -errno;
        j->fd[j->n++] = fd;
        return 0;
}

int isolate_cgroup_join_open(isolate_cgroup *cg, isolate_cgroup_join *ret)
{
        int r;

        *ret = (isolate_cgroup_join){};
        if (cg->version == ISOLATE_CGROUP_V2)
                return -EOPNOTSUPP;
        r = for_each_dir(cg, open_tasks, ret);
        if (r < 0)
                isolate_cgroup_join_close(ret);
        return r;
}

int isolate_cgroup_join_self(isolate_cgroup_join *j)
{
        int r = 0;

        for (size_t i = 0; i < j->n && r == 0; i++)
                if (write(j->fd[i], "0", 1) != 1)
                        r = -errno;
        isolate_cgroup_join_close(j);
        return r;
}

void isolate_cgroup_join_close(isolate_cgroup_join *j)
{
        for (size_t i = 0; i < j->n; i++)
                safe_close(j->fd[i]);
        j->n = 0;
}

static int v1_dir_fd(const isolate_cgroup *cg, cgroup_v1_controller c)
{
        return cg->v1_dir[c] ? open_dir(cg->v1_dir[c]) : -ENOENT;
}

int isolate_cgroup_set_limits(isolate_cgroup *cg, const isolate_limits *limits)
{
        uint64_t period = limits->cpu_period_us ?: 100000;
        char buf[64];
        int r;

        if (cg->version == ISOLATE_CGROUP_V2) {
                r = cg_write_u64(cg->fd, "memory.max", limits->memory_max, true, "max");
                if (r < 0)
                        return r;
                /* Swap is bounded only together with memory: an unlimited group may swap freely. The file
                 * is missing when the kernel does no swap accounting (then there is no swap to bound). */
                r = cg_write_u64(cg->fd, "memory.swap.max", limits->memory_max ? limits->swap_max : 0,
                                 limits->memory_max == 0, "max");
                if (r < 0 && r != -ENOENT)
                        return r;
                /* 0: an OOM kill takes the biggest task (the hog), not the whole group with the
                 * sandbox's init and tmux. */
                r = cg_write(cg->fd, "memory.oom.group", "0");
                if (r < 0)
                        return r;
                r = cg_write_u64(cg->fd, "pids.max", limits->pids_max, true, "max");
                if (r < 0)
                        return r;
                if (limits->cpu_quota_us)
                        snprintf(buf, sizeof(buf), "%" PRIu64 " %" PRIu64, limits->cpu_quota_us, period);
                else
                        snprintf(buf, sizeof(buf), "max %" PRIu64, period);
                return cg_write(cg->fd, "cpu.max", buf);
        }

        {
                _cleanup_close_ int fd = v1_dir_fd(cg, CGROUP_V1_MEMORY);
                bool have_memsw;

                if (fd < 0)
                        return fd;
                /* memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes: lift memsw first,
                 * set the limit, then bound memsw. */
                r = cg_write(fd, "memory.memsw.limit_in_bytes", "-1");
                if (r < 0 && r != -ENOENT)
                        return r;
                have_memsw = r >= 0;
                r = cg_write_u64(fd, "memory.limit_in_bytes", limits->memory_max, true, "-1");
                if (r < 0)
                        return r;
                if (have_memsw && limits->memory_max) {
                        r = cg_write_u64(fd, "memory.memsw.limit_in_bytes",
                                         limits->memory_max + limits->swap_max, false, NULL);
                        if (r < 0)
                                return r;
                } else if (!have_memsw && limits->memory_max && limits->swap_max == 0)
                        /* No swap accounting: the best available bound is not to swap at all. */
                        (void)cg_write(fd, "memory.swappiness", "0");
                /* Keep the OOM killer enabled for the group (a disabled one would freeze the hog). */
                r = cg_write(fd, "memory.oom_control", "0");
                if (r < 0)
                        return r;
        }
        {
                _cleanup_close_ int fd = v1_dir_fd(cg, CGROUP_V1_PIDS);

                if (fd < 0)
                        return fd;
                r = cg_write_u64(fd, "pids.max", limits->pids_max, true, "max");
                if (r < 0)
                        return r;
        }
        {
                _cleanup_close_ int fd = v1_dir_fd(cg, CGROUP_V1_CPU);

                if (fd < 0)
                        return fd;
                /* Lift the quota first: a quota is validated against the period in force. */
                r = cg_write(fd, "cpu.cfs_quota_us", "-1");
                if (r < 0)
                        return r;
                r = cg_write_u64(fd, "cpu.cfs_period_us", period, false, NULL);
                if (r < 0)
                        return r;
                if (limits->cpu_quota_us)
                        return cg_write_u64(fd, "cpu.cfs_quota_us", limits->cpu_quota_us, false, NULL);
        }
        return 0;
}

int isolate_cgroup_usage(isolate_cgroup *cg, isolate_usage *ret)
{
        isolate_usage u = {};
        int r;

        if (cg->version == ISOLATE_CGROUP_V2) {
                r = cg_read_u64(cg->fd, "memory.current", &u.memory_current);
                if (r < 0)
                        return r;
                /* memory.peak appeared in Linux 5.19. */
                r = cg_read_u64(cg->fd, "memory.peak", &u.memory_peak);
                if (r == -ENOENT)
                        u.memory_peak = u.memory_current;
                else if (r < 0)
                        return r;
                r = cg_read_u64(cg->fd, "pids.current", &u.pids_current);
                if (r < 0)
                        return r;
                r = cg_read_key(cg->fd, "cpu.stat", "usage_usec", &u.cpu_usage_usec);
                if (r < 0)
                        return r;
                r = cg_read_key(cg->fd, "memory.events", "oom_kill", &u.oom_kills);
                if (r < 0)
                        return r;
                *ret = u;
                return 0;
        }

        {
                _cleanup_close_ int fd = v1_dir_fd(cg, CGROUP_V1_MEMORY);

                if (fd < 0)
                        return fd;
                r = cg_read_u64(fd, "memory.usage_in_bytes", &u.memory_current);
                if (r < 0)
                        return r;
                r = cg_read_u64(fd, "memory.max_usage_in_bytes", &u.memory_peak);
                if (r < 0)
                        return r;
                /* The oom_kill counter appeared in Linux 4.13; older kernels report none. */
                r = cg_read_key(fd, "memory.oom_control", "oom_kill", &u.oom_kills);
                if (r < 0 && r != -ENODATA)
                        return r;
        }
        {
                _cleanup_close_ int fd = v1_dir_fd(cg, CGROUP_V1_PIDS);

                if (fd < 0)
                        return fd;
                r = cg_read_u64(fd, "pids.current", &u.pids_current);
                if (r < 0)
                        return r;
        }
        if (cg->v1_dir[CGROUP_V1_CPUACCT]) {
                _cleanup_close_ int fd = v1_dir_fd(cg, CGROUP_V1_CPUACCT);
                uint64_t ns;

                if (fd < 0)
                        return fd;
                r = cg_read_u64(fd, "cpuacct.usage", &ns);
                if (r < 0)
                        return r;
                u.cpu_usage_usec = ns / 1000;
        }
        *ret = u;
        return 0;
}

/* ---- kill ---- */

static int usec_left_ms(uint64_t deadline)
{
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (now >= deadline)
                return 0;
        return (int)MIN((deadline - now + 999) / 1000, (uint64_t)INT32_MAX);
}

/* v2: the kernel flips "populated" in cgroup.events and reports a modification through inotify when the
 * last task has exited; wait for that event rather than polling. */
static int v2_wait_empty(isolate_cgroup *cg, uint64_t deadline)
{
        _cleanup_free_ char *events = strjoin(cg->path, "/cgroup.events");
        _cleanup_close_ int ifd = -EBADF;
        uint64_t populated;
        int r;

        if (!events)
                return -ENOMEM;
        ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (ifd < 0)
                return -errno;
        if (inotify_add_watch(ifd, events, IN_MODIFY) < 0)
                return -errno;
        for (;;) {
                struct pollfd p = {.fd = ifd, .events = POLLIN};
                char buf[sizeof(struct inotify_event) + 256];

                r = cg_read_key(cg->fd, "cgroup.events", "populated", &populated);
                if (r < 0)
                        return r;
                if (populated == 0)
                        return 0;
                r = poll(&p, 1, usec_left_ms(deadline));
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r == 0)
                        return -ETIMEDOUT;
                while (read(ifd, buf, sizeof(buf)) > 0)
                        ;
        }
}

static int collect_pids(int dirfd, const char *path, void *userdata)
{
        char **acc = userdata, *n;
        _cleanup_free_ char *s = NULL;
        int r;

        r = cg_read(dirfd, "cgroup.procs", &s);
        if (r < 0)
                return r;
        n = strjoin(*acc ?: "", s);
        if (!n)
                return -ENOMEM;
        free(*acc);
        *acc = n;
        return 0;
}

/* Without cgroup.kill (v1, or v2 before Linux 5.14): read the member list, SIGKILL each through a pidfd
 * (no pid-reuse race) and wait for the pidfds to report the exits; repeat, since a task may have forked
 * between the read and the kill. The pids limit bounds how often a fork bomb can outrun us. */
static int kill_loop(isolate_cgroup *cg, uint64_t deadline)
{
        for (;;) {
                _cleanup_free_ char *pids = NULL;
                struct pollfd *pfds = NULL;
                size_t n = 0, cap = 0;
                bool any = false;
                int r = 0;

                r = for_each_dir(cg, collect_pids, &pids);
                if (r < 0)
                        return r;
                for (char *line = pids, *next; line && *line; line = next) {
                        int pid, pfd;

                        next = strchr(line, '\n');
                        if (next)
                                *next++ = 0;
                        pid = atoi(line);
                        if (pid <= 0)
                                continue;
                        any = true;
                        pfd = (int)syscall(SYS_pidfd_open, pid, 0);
                        if (pfd < 0) {
                                if (errno == ESRCH)
                                        continue;
                                if (errno == ENOSYS) {
                                        /* Pre-5.3 kernel: no exit notification for a non-child;
                                         * kill and re-check after the scheduler ran the victims. */
                                        (void)kill(pid, SIGKILL);
                                        (void)sched_yield();
                                        continue;
                                }
                                r = -errno;
                                break;
                        }
                        if (syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH) {
                                r = -errno;
                                safe_close(pfd);
                                break;
                        }
                        if (n == cap) {
                                struct pollfd *p = realloc(pfds, (cap = cap ? cap * 2 : 16) * sizeof(*p));
                                if (!p) {
                                        r = -ENOMEM;
                                        safe_close(pfd);
                                        break;
                                }
                                pfds = p;
                        }
                        pfds[n++] = (struct pollfd){.fd = pfd, .events = POLLIN};
                }
                if (r >= 0 && !any) {
                        free(pfds);
                        return 0;
                }
                /* A pidfd turns readable when its process has exited. */
                for (size_t done = 0; r >= 0 && done < n;) {
                        int k = poll(pfds, n, usec_left_ms(deadline));
                        if (k < 0 && errno != EINTR)
                                r = -errno;
                        else if (k == 0)
                                r = -ETIMEDOUT;
                        for (size_t i = 0; k > 0 && i < n; i++)
                                if (pfds[i].fd >= 0 && pfds[i].revents) {
                                        pfds[i].fd = -1 - pfds[i].fd; /* poll ignores negative fds */
                                        done++;
                                }
                }
                for (size_t i = 0; i < n; i++)
                        safe_close(pfds[i].fd >= 0 ? pfds[i].fd : -1 - pfds[i].fd);
                free(pfds);
                if (r < 0)
                        return r;
                if (usec_left_ms(deadline) == 0)
                        return -ETIMEDOUT;
        }
}

int isolate_cgroup_kill(isolate_cgroup *cg)
{
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + CGROUP_KILL_TIMEOUT_USEC;
        int r;

        if (cg->version == ISOLATE_CGROUP_V2) {
                r = cg_write(cg->fd, "cgroup.kill", "1");
                if (r >= 0)
                        return v2_wait_empty(cg, deadline);
                if (r != -ENOENT)
                        return r;
        }
        return kill_loop(cg, deadline);
}

/* ---- removal and listing ---- */

int isolate_cgroup_destroy(isolate_cgroup *cg)
{
        int ret = 0;

        if (cg->version == ISOLATE_CGROUP_V2) {
                if (rmdir(cg->path) < 0 && errno != ENOENT)
                        return -errno;
                return 0;
        }
        for (size_t i = 0; i < _CGROUP_V1_MAX; i++)
                if (cg->v1_dir[i] && !v1_dir_is_repeat(cg, i) && rmdir(cg->v1_dir[i]) < 0 &&
                    errno != ENOENT && ret == 0)
                        ret = -errno;
        return ret;
}

static int list_dir_into(const char *path, char ***names, size_t *n)
{
        _cleanup_close_ int fd = open_dir(path);
        DIR *d;
        struct dirent *de;

        if (fd == -ENOENT)
                return 0;
        if (fd < 0)
                return fd;
        d = fdopendir(fd);
        if (!d)
                return -errno;
        TAKE_FD(fd);
        while ((de = readdir(d))) {
                bool seen = false;
                char **p;

                if (de->d_type != DT_DIR || !name_is_valid(de->d_name) ||
                    streq(de->d_name, CGROUP_DAEMON_LEAF))
                        continue;
                for (size_t i = 0; i < *n && !seen; i++)
                        seen = streq((*names)[i], de->d_name);
                if (seen)
                        continue;
                p = realloc(*names, (*n + 2) * sizeof(char *));
                if (!p) {
                        closedir(d);
                        return -ENOMEM;
                }
                *names = p;
                p[*n] = strdup(de->d_name);
                if (!p[*n]) {
                        closedir(d);
                        return -ENOMEM;
                }
                p[++*n] = NULL;
        }
        closedir(d);
        return 0;
}

static void strv_freep(char ***p)
{
        if (!*p)
                return;
        for (char **s = *p; *s; s++)
                free(*s);
        free(*p);
}

int isolate_cgroup_list(const char *parent_name, char ***ret_names)
{
        _cleanup_(cgroup_layout_donep) cgroup_layout l = {};
        _cleanup_(strv_freep) char **names = NULL;
        size_t n = 0;
        int r;

        if (!name_is_valid(parent_name))
                return -EINVAL;
        r = cgroup_layout_detect(&l);
        if (r < 0)
                return r;
        names = calloc(1, sizeof(char *));
        if (!names)
                return -ENOMEM;
        if (l.version == ISOLATE_CGROUP_V2) {
                _cleanup_free_ char *p = strjoin(l.v2_base, "/", parent_name);
                if (!p)
                        return -ENOMEM;
                r = list_dir_into(p, &names, &n);
                if (r < 0)
                        return r;
        } else
                for (size_t i = 0; i < _CGROUP_V1_MAX; i++) {
                        _cleanup_free_ char *p = NULL;

                        if (!l.v1_mount[i])
                                continue;
                        p = strjoin(l.v1_mount[i], "/", parent_name);
                        if (!p)
                                return -ENOMEM;
                        r = list_dir_into(p, &names, &n);
                        if (r < 0)
                                return r;
                }
        *ret_names = TAKE_PTR(names);
        return 0;
}

int isolate_cgroup_destroy_parent(const char *parent_name)
{
        _cleanup_(cgroup_layout_donep) cgroup_layout l = {};
        int r, ret = 0;

        if (!name_is_valid(parent_name))
                return -EINVAL;
        r = cgroup_layout_detect(&l);
        if (r < 0)
                return r;
        if (l.version == ISOLATE_CGROUP_V2) {
                _cleanup_free_ char *p = strjoin(l.v2_base, "/", parent_name);
                if (!p)
                        return -ENOMEM;
                if (rmdir(p) < 0 && errno != ENOENT)
                        return errno == ENOTEMPTY ? -EBUSY : -errno;
                return 0;
        }
        for (size_t i = 0; i < _CGROUP_V1_MAX; i++) {
                _cleanup_free_ char *p = NULL;
                bool repeat = false;

                if (!l.v1_mount[i])
                        continue;
                for (size_t j = 0; j < i; j++)
                        repeat = repeat || (l.v1_mount[j] && streq(l.v1_mount[j], l.v1_mount[i]));
                if (repeat)
                        continue;
                p = strjoin(l.v1_mount[i], "/", parent_name);
                if (!p)
                        return -ENOMEM;
                if (rmdir(p) < 0 && errno != ENOENT && ret == 0)
                        ret = errno == ENOTEMPTY ? -EBUSY : -errno;
        }
        return ret;
}
