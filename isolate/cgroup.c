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

const char *const cgroup_v1_controller_name[_CGROUP_V1_MAX] = {
        [CGROUP_V1_MEMORY] = "memory",
        [CGROUP_V1_PIDS] = "pids",
        [CGROUP_V1_CPU] = "cpu",
        [CGROUP_V1_CPUACCT] = "cpuacct",
};

static const cgroup_ops *ops_for(isolate_cgroup_version v)
{
        return v == ISOLATE_CGROUP_V2 ? &cgroup_v2_ops : &cgroup_v1_ops;
}

/* ---- small file helpers ---- */

int cg_write(int dirfd, const char *file, const char *value)
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

int cg_write_u64(int dirfd, const char *file, uint64_t v, bool zero_is_max, const char *max_word)
{
        char buf[32];

        if (zero_is_max && v == 0)
                return cg_write(dirfd, file, max_word);
        snprintf(buf, sizeof(buf), "%" PRIu64, v);
        return cg_write(dirfd, file, buf);
}

int cg_read(int dirfd, const char *file, char **ret)
{
        _cleanup_close_ int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);

        if (fd < 0)
                return -errno;
        return read_full_fd(fd, 4 << 20, ret, NULL);
}

int cg_read_u64(int dirfd, const char *file, uint64_t *ret)
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
int cg_read_key(int dirfd, const char *file, const char *key, uint64_t *ret)
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

bool word_in_list(const char *list, const char *word, const char *seps)
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

int open_dir(const char *path)
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
                                if (!l.v1_mount[i] && word_in_list(opts, cgroup_v1_controller_name[i], ",")) {
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

isolate_cgroup *cgroup_new(const cgroup_ops *ops)
{
        isolate_cgroup *cg = calloc(1, sizeof(*cg));

        if (!cg)
                return NULL;
        cg->ops = ops;
        cg->fd = -EBADF;
        return cg;
}

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


const char *isolate_cgroup_path(const isolate_cgroup *cg)
{
        return cg->path;
}

isolate_cgroup_version isolate_cgroup_get_version(const isolate_cgroup *cg)
{
        return cg->ops->version;
}

int isolate_cgroup_fd(isolate_cgroup *cg)
{
        return cg->ops->clone_fd(cg);
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
int mkdir_group(int dirfd, const char *name, bool must_be_empty)
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
        r = ops_for(l.version)->make(&l, parent_name, sandbox_name, true, &cg, reterr);
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
        return ops_for(l.version)->make(&l, parent_name, sandbox_name, false, ret, NULL);
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
        return cg->ops->for_each_dir(cg, attach_one, buf);
}

int isolate_cgroup_join_open(isolate_cgroup *cg, isolate_cgroup_join *ret)
{
        int r;

        *ret = (isolate_cgroup_join){};
        r = cg->ops->join_open(cg, ret);
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

int isolate_cgroup_set_limits(isolate_cgroup *cg, const isolate_limits *limits)
{
        return cg->ops->set_limits(cg, limits);
}

int isolate_cgroup_usage(isolate_cgroup *cg, isolate_usage *ret)
{
        return cg->ops->usage(cg, ret);
}

/* ---- kill ---- */

int usec_left_ms(uint64_t deadline)
{
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (now >= deadline)
                return 0;
        return (int)MIN((deadline - now + 999) / 1000, (uint64_t)INT32_MAX);
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
int kill_loop(isolate_cgroup *cg, uint64_t deadline)
{
        for (;;) {
                _cleanup_free_ char *pids = NULL;
                struct pollfd *pfds = NULL;
                size_t n = 0, cap = 0;
                bool any = false;
                int r = 0;

                r = cg->ops->for_each_dir(cg, collect_pids, &pids);
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
        return cg->ops->kill(cg, now_usec(CLOCK_MONOTONIC) + CGROUP_KILL_TIMEOUT_USEC);
}

/* ---- removal and listing ---- */

int isolate_cgroup_destroy(isolate_cgroup *cg)
{
        return cg->ops->destroy(cg);
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

static void parent_dirs_free(char *dirs[_CGROUP_V1_MAX + 1])
{
        for (size_t i = 0; dirs[i]; i++) {
                free(dirs[i]);
                dirs[i] = NULL;
        }
}

int isolate_cgroup_list(const char *parent_name, char ***ret_names)
{
        _cleanup_(cgroup_layout_donep) cgroup_layout l = {};
        _cleanup_(strv_freep) char **names = NULL;
        char *dirs[_CGROUP_V1_MAX + 1] = {};
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
        r = ops_for(l.version)->parent_dirs(&l, parent_name, dirs);
        for (size_t i = 0; r >= 0 && dirs[i]; i++)
                r = list_dir_into(dirs[i], &names, &n);
        parent_dirs_free(dirs);
        if (r < 0)
                return r;
        *ret_names = TAKE_PTR(names);
        return 0;
}

int isolate_cgroup_destroy_parent(const char *parent_name)
{
        _cleanup_(cgroup_layout_donep) cgroup_layout l = {};
        char *dirs[_CGROUP_V1_MAX + 1] = {};
        int r, ret = 0;

        if (!name_is_valid(parent_name))
                return -EINVAL;
        r = cgroup_layout_detect(&l);
        if (r < 0)
                return r;
        r = ops_for(l.version)->parent_dirs(&l, parent_name, dirs);
        for (size_t i = 0; r >= 0 && dirs[i]; i++)
                if (rmdir(dirs[i]) < 0 && errno != ENOENT && ret == 0)
                        ret = errno == ENOTEMPTY ? -EBUSY : -errno;
        parent_dirs_free(dirs);
        return r < 0 ? r : ret;
}

void remove_child_groups(const char *path)
{
        _cleanup_(closedirp) DIR *dir = opendir(path);
        struct dirent *de;

        if (!dir)
                return;
        while ((de = readdir(dir)))
                if (de->d_type == DT_DIR && !streq(de->d_name, ".") && !streq(de->d_name, "..") &&
                    unlinkat(dirfd(dir), de->d_name, AT_REMOVEDIR) < 0)
                        log_debug("cgroup %s/%s: cannot remove it: %m", path, de->d_name);
}
