/* SPDX-License-Identifier: MIT */
/* cgroup v1, the fallback for hybrid hosts: one directory per controller hierarchy (memory, pids, cpu,
 * cpuacct; cpu and cpuacct are often co-mounted), a child that writes itself into the groups' "tasks"
 * files, and a SIGKILL loop to empty them. */
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

/* v1: cpu and cpuacct are often co-mounted, so two controllers may share one directory; everything
 * that acts per directory skips the repeats. */
static bool v1_dir_is_repeat(const isolate_cgroup *cg, size_t i)
{
        for (size_t j = 0; j < i; j++)
                if (cg->v1_dir[j] && streq(cg->v1_dir[j], cg->v1_dir[i]))
                        return true;
        return false;
}

static int v1_make(const cgroup_layout *l, const char *parent_name, const char *sandbox_name, bool create,
                   isolate_cgroup **ret, pc_error **reterr)
{
        _cleanup_(isolate_cgroup_freep) isolate_cgroup *cg = NULL;
        int r;

        cg = cgroup_new(&cgroup_v1_ops);
        if (!cg)
                return -ENOMEM;
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
                        /* A create killed between two hierarchies left the group in some of them only:
                         * opened as it is, so that it can be killed and removed (destroy is idempotent). */
                        if (access(cg->v1_dir[i], F_OK) < 0) {
                                if (errno != ENOENT)
                                        return -errno;
                                free(cg->v1_dir[i]);
                                cg->v1_dir[i] = NULL;
                        }
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
        /* The memory hierarchy names the group (all three controllers are required to create it); one
         * opened in part is named by a hierarchy it is in. */
        for (size_t i = CGROUP_V1_MEMORY; !cg->path && i < CGROUP_V1_MEMORY + _CGROUP_V1_MAX; i++)
                if (cg->v1_dir[i % _CGROUP_V1_MAX] && !(cg->path = strdup(cg->v1_dir[i % _CGROUP_V1_MAX])))
                        return -ENOMEM;
        if (!cg->path)
                return -ENOENT;
        *ret = TAKE_PTR(cg);
        return 0;
}

static int v1_dir_fd(const isolate_cgroup *cg, cgroup_v1_controller c)
{
        return cg->v1_dir[c] ? open_dir(cg->v1_dir[c]) : -ENOENT;
}

static int v1_for_each_dir(isolate_cgroup *cg, cgroup_dir_func f, void *userdata)
{
        int r;

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

static int v1_clone_fd(isolate_cgroup *cg)
{
        return -EOPNOTSUPP; /* the child joins itself (isolate_cgroup_join_open()) */
}

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

static int v1_join_open(isolate_cgroup *cg, isolate_cgroup_join *ret)
{
        return v1_for_each_dir(cg, open_tasks, ret);
}

static int v1_set_limits(isolate_cgroup *cg, const isolate_limits *limits)
{
        uint64_t period = limits->cpu_period_us ?: 100000;
        int r;

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
                /* cpu.shares is weight * 1024 / 100 (1024 is v1's default as 100 is v2's), at least 2. */
                r = cg_write_u64(fd, "cpu.shares", MAX((limits->cpu_weight ?: 100) * 1024 / 100, 2), false,
                                 NULL);
                if (r < 0)
                        return r;
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

static int v1_usage(isolate_cgroup *cg, isolate_usage *ret)
{
        isolate_usage u = {};
        int r;

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

static int v1_destroy(isolate_cgroup *cg)
{
        int ret = 0;

        for (size_t i = 0; i < _CGROUP_V1_MAX; i++) {
                if (!cg->v1_dir[i] || v1_dir_is_repeat(cg, i))
                        continue;
                remove_child_groups(cg->v1_dir[i]);
                if (rmdir(cg->v1_dir[i]) < 0 && errno != ENOENT && ret == 0)
                        ret = -errno;
        }
        return ret;
}

static int v1_parent_dirs(const cgroup_layout *l, const char *parent_name, char *ret[_CGROUP_V1_MAX + 1])
{
        size_t n = 0;

        for (size_t i = 0; i < _CGROUP_V1_MAX; i++) {
                bool repeat = false;

                if (!l->v1_mount[i])
                        continue;
                for (size_t j = 0; j < i; j++)
                        repeat = repeat || (l->v1_mount[j] && streq(l->v1_mount[j], l->v1_mount[i]));
                if (repeat)
                        continue;
                ret[n] = strjoin(l->v1_mount[i], "/", parent_name);
                if (!ret[n++])
                        return -ENOMEM;
        }
        return 0;
}

const cgroup_ops cgroup_v1_ops = {
        .version = ISOLATE_CGROUP_V1,
        .make = v1_make,
        .for_each_dir = v1_for_each_dir,
        .clone_fd = v1_clone_fd,
        .join_open = v1_join_open,
        .set_limits = v1_set_limits,
        .usage = v1_usage,
        .kill = kill_loop,
        .destroy = v1_destroy,
        .parent_dirs = v1_parent_dirs,
};
