/* SPDX-License-Identifier: MIT */
/* cgroup v2: a subtree delegated to the daemon under its own cgroup (systemd: Delegate=yes); one directory
 * per group, clone3(CLONE_INTO_CGROUP) to start inside it, cgroup.kill to empty it. */
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

        cg = cgroup_new(&cgroup_v2_ops);
        if (!cg)
                return -ENOMEM;
        cg->fd = openat(parent_fd, sandbox_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (cg->fd < 0)
                return -errno;
        cg->path = strjoin(l->v2_base, "/", parent_name, "/", sandbox_name);
        if (!cg->path)
                return -ENOMEM;
        *ret = TAKE_PTR(cg);
        return 0;
}

static int v2_for_each_dir(isolate_cgroup *cg, cgroup_dir_func f, void *userdata)
{
        return f(cg->fd, cg->path, userdata);
}

static int v2_clone_fd(isolate_cgroup *cg)
{
        return cg->fd;
}

static int v2_join_open(isolate_cgroup *cg, isolate_cgroup_join *ret)
{
        return -EOPNOTSUPP; /* clone3(CLONE_INTO_CGROUP) instead */
}

static int v2_set_limits(isolate_cgroup *cg, const isolate_limits *limits)
{
        uint64_t period = limits->cpu_period_us ?: 100000;
        char buf[64];
        int r;

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
        r = cg_write_u64(cg->fd, "cpu.weight", limits->cpu_weight ?: 100, false, NULL);
        if (r < 0)
                return r;
        if (limits->cpu_quota_us)
                snprintf(buf, sizeof(buf), "%" PRIu64 " %" PRIu64, limits->cpu_quota_us, period);
        else
                snprintf(buf, sizeof(buf), "max %" PRIu64, period);
        return cg_write(cg->fd, "cpu.max", buf);
}

static int v2_usage(isolate_cgroup *cg, isolate_usage *ret)
{
        isolate_usage u = {};
        int r;

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

static int v2_kill(isolate_cgroup *cg, uint64_t deadline)
{
        int r = cg_write(cg->fd, "cgroup.kill", "1");

        if (r >= 0)
                return v2_wait_empty(cg, deadline);
        if (r != -ENOENT)
                return r;
        return kill_loop(cg, deadline); /* Linux < 5.14 */
}

static int v2_destroy(isolate_cgroup *cg)
{
        remove_child_groups(cg->path);
        if (rmdir(cg->path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

static int v2_parent_dirs(const cgroup_layout *l, const char *parent_name, char *ret[_CGROUP_V1_MAX + 1])
{
        ret[0] = strjoin(l->v2_base, "/", parent_name);
        return ret[0] ? 0 : -ENOMEM;
}

const cgroup_ops cgroup_v2_ops = {
        .version = ISOLATE_CGROUP_V2,
        .make = v2_make,
        .for_each_dir = v2_for_each_dir,
        .clone_fd = v2_clone_fd,
        .join_open = v2_join_open,
        .set_limits = v2_set_limits,
        .usage = v2_usage,
        .kill = v2_kill,
        .destroy = v2_destroy,
        .parent_dirs = v2_parent_dirs,
};
