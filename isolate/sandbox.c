/* SPDX-License-Identifier: MIT */
/* Sandboxes: the lifecycle (create, adopt, stop, destroy) and the host-side footprint of each. The child
 * processes are in sandbox-spawn.c (clone and sync), sandbox-init.c (PID 1), sandbox-exec.c and
 * sandbox-tmux.c. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <linux/securebits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common.h"
#include "isolate-internal.h"
#include "isolate.h"
#include "sandbox-internal.h"

#define DEFAULT_READY_TIMEOUT_USEC (10ULL * 1000000ULL)
#define DEFAULT_STOP_TIMEOUT_USEC  (5ULL * 1000000ULL)

/* ---- parent side ---- */

static int read_cap_last(unsigned *ret)
{
        _cleanup_free_ char *s = NULL;
        uint64_t v;
        int r;

        r = read_full_file("/proc/sys/kernel/cap_last_cap", 64, &s, NULL);
        if (r < 0)
                return r;
        r = parse_uint64(strstrip(s), &v);
        if (r < 0)
                return r;
        if (v >= 64)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

int isolate_pid_starttime(pid_t pid, uint64_t *ret)
{
        _cleanup_free_ char *s = NULL;
        char path[64];
        const char *p;
        int r;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        r = read_full_file(path, 4096, &s, NULL);
        if (r == -ENOENT)
                return -ESRCH;
        if (r < 0)
                return r;
        /* comm (field 2) may contain anything, including ')': start after the last one. Field 3 follows. */
        p = strrchr(s, ')');
        if (!p)
                return -EBADMSG;
        p++;
        for (int field = 3; field < 22; field++) {
                p = strchr(p + 1, ' ');
                if (!p)
                        return -EBADMSG;
        }
        return parse_uint64(strndupa(p + 1, strcspn(p + 1, " ")), ret);
}

static int write_id_map(pid_t pid, const char *file, uid_t base, uint32_t count)
{
        char path[64], map[64];
        _cleanup_close_ int fd = -EBADF;

        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, file);
        snprintf(map, sizeof(map), "0 %u %u\n", (unsigned) base, count);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        /* One write(): the kernel accepts a map only once, whole. */
        if (write(fd, map, strlen(map)) != (ssize_t) strlen(map))
                return errno ? -errno : -EIO;
        return 0;
}

/* clone3() for a new sandbox, with this thread's effective uid set to `owner` (the host uid that sandbox
 * root maps to) for the duration of the call. The kernel makes the creator's euid the owner of a new user
 * namespace, and charges the per-user counts of everything inside it (inotify instances and watches,
 * POSIX message queue bytes, nested namespaces; kernel/ucount.c) up the chain to that owner: to the
 * sandbox's own uid, not to host root, whose limits the sandbox could otherwise exhaust.
 *
 * Only this thread changes: the raw setresuid syscall (glibc's setresuid() changes every thread of the
 * daemon); securebits are per thread anyway. SECBIT_NO_SETUID_FIXUP keeps the
 * effective capabilities across the euid change, so CLONE_NEWUSER, CLONE_INTO_CGROUP and the opens of the
 * v1 cgroup files still pass; the saved uid follows so that the child (same credentials) may write "0"
 * into a v1 tasks file. Nothing is opened or created in between (the fsuid follows the euid). A thread
 * that cannot get its credentials back aborts the daemon: running on with a sandbox's uid would be worse. */
static pid_t clone_as_owner(struct clone_args *args, uid_t owner)
{
        int bits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0), saved_errno;
        uid_t ruid, euid, suid;
        pid_t pid;

        if (bits < 0 || syscall(SYS_getresuid, &ruid, &euid, &suid) < 0)
                return -1;
        if (prctl(PR_SET_SECUREBITS, (unsigned long) bits | SECBIT_NO_SETUID_FIXUP, 0, 0, 0) < 0)
                return -1;
        if (syscall(SYS_setresuid, -1, owner, owner) < 0) {
                saved_errno = errno;
                if (prctl(PR_SET_SECUREBITS, (unsigned long) bits, 0, 0, 0) < 0)
                        abort();
                errno = saved_errno;
                return -1;
        }
        pid = raw_clone3(args);
        if (pid == 0)
                return 0; /* the child: its credentials belong to the new user namespace already */
        saved_errno = errno;
        if (syscall(SYS_setresuid, ruid, euid, suid) < 0 ||
            prctl(PR_SET_SECUREBITS, (unsigned long) bits, 0, 0, 0) < 0)
                abort();
        errno = saved_errno;
        return pid;
}

/* Raises pid's OOM score. A write with CAP_SYS_RESOURCE in effect also sets the process' floor
 * (oom_score_adj_min) to the new value; without it the floor stays where it was, and the processes that
 * inherit the score may lower it again (tmux's server does). Capabilities are per thread: only this
 * thread drops it, for the one write, like clone_as_owner(). */
static int raise_oom_score_adj(pid_t pid, int adj)
{
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct saved[2], d[2];
        int r;

        if (syscall(SYS_capget, &h, saved) < 0)
                return -errno;
        memcpy(d, saved, sizeof(d));
        d[CAP_TO_INDEX(CAP_SYS_RESOURCE)].effective &= ~CAP_TO_MASK(CAP_SYS_RESOURCE);
        if (syscall(SYS_capset, &h, d) < 0)
                return -errno;
        r = write_oom_score_adj(pid, adj);
        if (syscall(SYS_capset, &h, saved) < 0)
                abort();
        return r;
}

static int copy_oom_score_adj(pid_t pid)
{
        _cleanup_free_ char *s = NULL;
        int r = read_full_file("/proc/self/oom_score_adj", 64, &s, NULL);
        if (r < 0)
                return r;
        return write_oom_score_adj(pid, atoi(s));
}

/* Init's children (at READY: tmux's server) to score 0, or to the daemon's own where lowering that far needs
 * CAP_SYS_RESOURCE. Best effort: a server left at the agent's score is merely killable with it. */
static void lower_children_oom_score_adj(pid_t init)
{
        _cleanup_free_ char *list = NULL;
        char path[64];

        snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int) init, (int) init);
        if (read_full_file(path, 4096, &list, NULL) < 0)
                return;
        for (char *save = NULL, *w = strtok_r(list, " \n", &save); w; w = strtok_r(NULL, " \n", &save)) {
                pid_t pid = (pid_t) atoi(w);
                if (pid > 0 && write_oom_score_adj(pid, 0) == -EACCES)
                        (void) copy_oom_score_adj(pid);
        }
}

uint64_t isolate_tmpfs_size(const isolate_limits *limits)
{
        if (!limits || limits->memory_max == 0)
                return ISOLATE_TMPFS_MAX;
        return MIN(limits->memory_max / ISOLATE_TMPFS_MEMORY_DIVISOR, ISOLATE_TMPFS_MAX);
}

static int check_config(const isolate_sandbox_config *cfg, pc_error **reterr)
{
        if (!name_is_valid(cfg->name))
                return pc_error_setf(reterr, EINVAL, "invalid_name",
                                     "sandbox name \"%s\" is invalid (expected [a-z0-9-], at most 63 characters)",
                                     strna(cfg->name));
        if (cfg->daemon_id && !isolate_daemon_id_is_valid(cfg->daemon_id))
                return pc_error_setf(reterr, EINVAL, "invalid_config",
                                     "sandbox %s: daemon id \"%s\" is invalid (expected %d hex digits)", cfg->name,
                                     cfg->daemon_id, ISOLATE_DAEMON_ID_LEN);
        if (isempty(cfg->workspace) || cfg->workspace[0] != '/')
                return pc_error_setf(reterr, EINVAL, "invalid_config",
                                     "sandbox %s: workspace must be an absolute path", cfg->name);
        /* Host root must never be inside the range; the agent (uid 1000) must be. */
        if (cfg->uid_base == 0 || cfg->uid_count <= ISOLATE_AGENT_UID ||
            (uint64_t) cfg->uid_base + cfg->uid_count > UINT32_MAX)
                return pc_error_setf(reterr, EINVAL, "invalid_config",
                                     "sandbox %s: uid range %u+%u is invalid (base must be > 0, size > %u)",
                                     cfg->name, (unsigned) cfg->uid_base, cfg->uid_count, ISOLATE_AGENT_UID);
        if (cfg->rootfs_image && (cfg->rootfs_image[0] != '/' || isempty(cfg->overlay_dir)))
                return pc_error_setf(reterr, EINVAL, "invalid_config",
                                     "sandbox %s: an image rootfs needs an absolute image path and an overlay directory",
                                     cfg->name);
        if (cfg->disk_mode == ISOLATE_DISK_IMAGE &&
            (isempty(cfg->disk_image) || cfg->disk_image[0] != '/' || cfg->disk_max < ISOLATE_DISK_MIN))
                return pc_error_setf(reterr, EINVAL, "invalid_config",
                                     "sandbox %s: a disk image needs an absolute path and at least %u bytes",
                                     cfg->name, ISOLATE_DISK_MIN);
        if (cfg->api_socket_dir && cfg->api_socket_dir[0] != '/')
                return pc_error_setf(reterr, EINVAL, "invalid_config",
                                     "sandbox %s: the API socket directory must be an absolute path", cfg->name);
        return 0;
}

static int load_filter(int seccomp_fd, isolate_bpf *ret, pc_error **reterr)
{
        _cleanup_close_ int own = -EBADF;
        int r;

        if (seccomp_fd < 0) {
                r = isolate_seccomp_compile(&own, reterr);
                if (r < 0)
                        return r;
                seccomp_fd = own;
        }
        r = isolate_seccomp_read(seccomp_fd, ret);
        if (r < 0)
                return pc_error_setf(reterr, r, "seccomp", "seccomp: cannot read the compiled filter: %s",
                                     strerror(-r));
        return 0;
}

isolate_sandbox *isolate_sandbox_free(isolate_sandbox *sb)
{
        if (!sb)
                return NULL;
        free(sb->name);
        safe_close(sb->pidfd);
        if (sb->cgroup_owned)
                isolate_cgroup_free(sb->cgroup);
        isolate_bpf_done(&sb->bpf);
        free(sb);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(isolate_sandbox *, isolate_sandbox_free);
static inline void isolate_cgroup_freep(isolate_cgroup **p)
{
        isolate_cgroup_free(*p);
}

/* The handle both create and adopt fill in: name, ids, the loaded seccomp filter (exec installs it in
 * every command) and the host's last capability. */
static int sandbox_new(const isolate_sandbox_config *cfg, isolate_sandbox **ret, pc_error **reterr)
{
        _cleanup_(isolate_sandbox_freep) isolate_sandbox *sb = calloc(1, sizeof(*sb));
        int r;

        if (!sb || !(sb->name = strdup(cfg->name)))
                return -ENOMEM;
        sb->pidfd = -EBADF;
        sb->uid_base = cfg->uid_base;
        sb->uid_count = cfg->uid_count;
        sb->nofile_max = cfg->nofile_max ?: ISOLATE_NOFILE_DEFAULT;
        sb->fsize_max = cfg->disk_max;
        r = load_filter(cfg->seccomp_fd, &sb->bpf, reterr);
        if (r < 0)
                return r;
        r = read_cap_last(&sb->cap_last);
        if (r < 0)
                return pc_error_setf(reterr, r, "host", "cannot read /proc/sys/kernel/cap_last_cap: %s",
                                     strerror(-r));
        *ret = TAKE_PTR(sb);
        return 0;
}

static void plan_donep(isolate_rootfs_plan *p)
{
        isolate_rootfs_plan_done(p);
}

/* ---- the host-side footprint: what create() makes and destroy() removes ---- */

/* Opens (create: makes, with the limits) the sandbox's own group PARENT-ID/NAME. NULL without
 * cgroup_parent. */
static int own_cgroup(const isolate_sandbox_config *cfg, bool create, isolate_cgroup **ret, pc_error **reterr)
{
        _cleanup_free_ char *parent = NULL;
        int r;

        *ret = NULL;
        if (!cfg->cgroup_parent || cfg->cgroup)
                return 0;
        r = isolate_cgroup_parent_name(cfg->cgroup_parent, cfg->daemon_id, &parent);
        if (r < 0)
                return pc_error_setf(reterr, -r, "invalid_config", "sandbox %s: invalid cgroup parent \"%s\"",
                                     cfg->name, cfg->cgroup_parent);
        if (create)
                return isolate_cgroup_new(parent, cfg->name, cfg->limits, ret, reterr);
        return isolate_cgroup_open(parent, cfg->name, ret);
}

/* The network config as isolate_net_*() get it: the daemon id names the host side. */
static bool net_config(const isolate_sandbox_config *cfg, isolate_net_config *ret)
{
        if (!cfg->net)
                return false;
        *ret = *cfg->net;
        ret->daemon_id = cfg->daemon_id;
        return true;
}

/* Makes the workspace when missing (parents 0750, root's) and hands its top to the agent. Only its last
 * component can have come from anyone but us, and it is never followed: mkdirat() does not follow a
 * final symlink, and the directory is opened O_NOFOLLOW and changed through that fd. */
static int workspace_prepare(const isolate_sandbox_config *cfg, bool *ret_made, bool *ret_image_made,
                             pc_error **reterr)
{
        _cleanup_free_ char *parent = strdup(cfg->workspace);
        _cleanup_close_ int pfd = -EBADF, fd = -EBADF;
        const char *base;
        struct stat st;
        char *slash;
        int r;

        if (!parent)
                return -ENOMEM;
        slash = strrchr(parent, '/');
        base = cfg->workspace + (slash - parent) + 1;
        if (isempty(base) || streq(base, ".") || streq(base, ".."))
                return pc_error_setf(reterr, EINVAL, "invalid_config", "sandbox %s: invalid workspace path %s",
                                     cfg->name, cfg->workspace);
        slash[slash == parent] = 0; /* "/ws" -> "/" */
        r = mkdir_p(parent, 0750);
        if (r < 0)
                return pc_error_setf(reterr, -r, "workspace", "sandbox %s: cannot create %s: %s", cfg->name,
                                     parent, strerror(-r));
        pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0)
                return pc_error_setf(reterr, errno, "workspace", "sandbox %s: cannot open %s: %m", cfg->name,
                                     parent);
        *ret_made = mkdirat(pfd, base, 0750) >= 0;
        if (!*ret_made && errno != EEXIST)
                return pc_error_setf(reterr, errno, "workspace", "sandbox %s: cannot create workspace %s: %m",
                                     cfg->name, cfg->workspace);
        /* Its limit first: with an image, the directory handed to the agent is the image's root. */
        r = isolate_workspace_limit(cfg, pfd, base, *ret_made, ret_image_made, reterr);
        if (r < 0) {
                if (*ret_made)
                        (void) unlinkat(pfd, base, AT_REMOVEDIR);
                return r;
        }
        fd = openat(pfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                r = -errno;
        else if (fstat(fd, &st) < 0)
                r = -errno;
        else if (!S_ISDIR(st.st_mode))
                r = -ENOTDIR;
        else if (fchown(fd, cfg->uid_base + ISOLATE_AGENT_UID, cfg->uid_base + ISOLATE_AGENT_GID) < 0 ||
                 fchmod(fd, 0750) < 0)
                r = -errno;
        if (r < 0) {
                fd = safe_close(fd);
                if (*ret_image_made || *ret_made)
                        (void) isolate_workspace_release(cfg, *ret_image_made);
                if (*ret_made)
                        (void) unlinkat(pfd, base, AT_REMOVEDIR);
                return pc_error_setf(reterr, -r, "workspace",
                                     "sandbox %s: cannot hand workspace %s to the agent: %s%s", cfg->name,
                                     cfg->workspace, strerror(-r), r == -ELOOP ? " (it is a symlink)" : "");
        }
        return 0;
}

/* What a create() has made so far; undone on scope exit unless disarmed (create succeeded). */
typedef struct footprint {
        const isolate_sandbox_config *cfg;
        bool workspace_made, image_made, overlay_made, net_made, armed;
        isolate_cgroup *cgroup; /* ours, until the handle takes it */
} footprint;

static void footprint_undo(footprint *f)
{
        isolate_net_config net;

        if (f->armed) {
                if (f->cgroup) {
                        (void) isolate_cgroup_kill(f->cgroup);
                        (void) isolate_cgroup_destroy(f->cgroup);
                }
                if (f->net_made && net_config(f->cfg, &net))
                        (void) isolate_net_teardown(f->cfg->name, &net);
                if (f->overlay_made)
                        (void) isolate_remove_tree(f->cfg->overlay_dir);
                /* A workspace or image made here goes again; one that existed before is only unmounted. */
                (void) isolate_workspace_release(f->cfg, f->image_made);
                if (f->workspace_made)
                        (void) rmdir(f->cfg->workspace);
        }
        f->cgroup = isolate_cgroup_free(f->cgroup);
}

int isolate_sandbox_create(const isolate_sandbox_config *cfg, isolate_sandbox **ret, pc_error **reterr)
{
        /* Cleanups run in reverse: the child dies before the footprint it lived in goes. */
        _cleanup_(footprint_undo) footprint fp = { .cfg = cfg, .armed = true };
        _cleanup_(isolate_sandbox_freep) isolate_sandbox *sb = NULL;
        _cleanup_(plan_donep) isolate_rootfs_plan plan = { .image_mount_fd = -EBADF };
        _cleanup_(child_guard_done) child_guard child = { .pidfd = -EBADF };
        _cleanup_close_ int sync_parent = -EBADF, sync_child = -EBADF, workspace_fd = -EBADF,
                            api_socket_fd = -EBADF;
        _cleanup_(isolate_cgroup_join_close) isolate_cgroup_join join = {};
        uint64_t timeout = cfg->ready_timeout_usec ?: DEFAULT_READY_TIMEOUT_USEC;
        int cgroup_fd = -EBADF, pidfd = -EBADF, r;
        struct clone_args args = {};
        isolate_net_config net;
        sync_msg m;

        r = check_config(cfg, reterr);
        if (r < 0)
                return r;
        r = sandbox_new(cfg, &sb, reterr);
        if (r < 0)
                return r;

        /* 1. The workspace, owned by the agent. */
        r = workspace_prepare(cfg, &fp.workspace_made, &fp.image_made, reterr);
        if (r < 0)
                return r;

        /* 2. The cgroup with its limits (or the caller's). */
        r = own_cgroup(cfg, true, &fp.cgroup, reterr);
        if (r < 0)
                return r;

        /* 3. The root: generated /etc, and in image mode the overlay, mounted detached for the child. */
        r = isolate_rootfs_plan_init(&plan, cfg->name, cfg->workspace, cfg->rootfs_image, cfg->resolv_conf);
        if (r < 0)
                return pc_error_setf(reterr, r, "rootfs", "sandbox %s: cannot prepare /etc: %s", cfg->name,
                                     strerror(-r));
        plan.api_socket_dir = cfg->api_socket_dir;
        plan.tmpfs_size = isolate_tmpfs_size(cfg->limits);
        if (cfg->rootfs_image) {
                fp.overlay_made = access(cfg->overlay_dir, F_OK) < 0 && errno == ENOENT;
                r = isolate_rootfs_make_overlay(cfg->rootfs_image, cfg->overlay_dir, cfg->uid_base, cfg->uid_count,
                                                &plan.image_mount_fd);
                if (r < 0)
                        return pc_error_setf(reterr, r, "rootfs",
                                             "sandbox %s: cannot mount overlay of image %s in %s: %s", cfg->name,
                                             cfg->rootfs_image, cfg->overlay_dir, strerror(-r));
        }

        /* 4. The child, in new namespaces. It starts directly inside the sandbox's cgroup when the
         *    hierarchy allows (v2): the cgroup namespace is then rooted there from the first instruction. */
        r = prepare_child(cfg->name, cfg->cgroup ?: fp.cgroup, &sync_parent, &sync_child, &cgroup_fd, &join, reterr);
        if (r < 0)
                return r;

        /*    The host directories init binds, cloned here as detached mounts: init's fsuid is the
         *    sandbox's (see clone_as_owner()), which may not traverse the root-owned directories above
         *    them. Final symlinks are not followed. The API socket directory is read-only: connect()
         *    needs no write access to the mount (sockets are exempt from EROFS), and nothing else is
         *    allowed. */
        workspace_fd = isolate_rootfs_clone_dir(cfg->workspace, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
        if (workspace_fd < 0)
                return pc_error_setf(reterr, -workspace_fd, "workspace", "sandbox %s: clone workspace %s: %s",
                                     cfg->name, cfg->workspace, strerror(-workspace_fd));
        if (cfg->api_socket_dir) {
                api_socket_fd = isolate_rootfs_clone_dir(cfg->api_socket_dir,
                                                         MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                                                 MOUNT_ATTR_NOEXEC);
                if (api_socket_fd < 0)
                        return pc_error_setf(reterr, -api_socket_fd, "api_socket",
                                             "sandbox %s: open the API socket directory %s: %s", cfg->name,
                                             cfg->api_socket_dir, strerror(-api_socket_fd));
        }

        init_ctx ctx = {
                .name = cfg->name,
                .plan = &plan,
                .bpf = &sb->bpf,
                .sync_fd = sync_child,
                .workspace_fd = workspace_fd,
                .api_socket_fd = api_socket_fd,
                .join = &join,
                .late_cgroupns = cgroup_fd < 0,
                .cap_last = sb->cap_last,
                .nofile_max = sb->nofile_max,
                .fsize_max = sb->fsize_max,
        };
        args.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC |
                     CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
        if (cgroup_fd >= 0) {
                args.flags |= CLONE_NEWCGROUP | CLONE_INTO_CGROUP;
                args.cgroup = (uint64_t) cgroup_fd;
        }
        args.pidfd = (uint64_t) (uintptr_t) &pidfd;
        args.exit_signal = SIGCHLD;

        child.pid = clone_as_owner(&args, cfg->uid_base);
        if (child.pid < 0) {
                child.pid = 0;
                return pc_error_setf(reterr, errno, "clone",
                                     "sandbox %s: clone3 into new namespaces failed: %m (needs Linux >= 5.7 and "
                                     "user namespaces enabled)",
                                     cfg->name);
        }
        if (child.pid == 0)
                init_child(&ctx);
        child.pidfd = pidfd;
        sync_child = safe_close(sync_child);
        workspace_fd = safe_close(workspace_fd);
        api_socket_fd = safe_close(api_socket_fd);
        isolate_cgroup_join_close(&join);

        /* 5. uid/gid maps: sandbox 0..count-1 -> host base..base+count-1. We hold CAP_SETUID/CAP_SETGID in
         *    the parent namespace, so a ranged map is allowed and setgroups stays allowed inside: init uses
         *    it to drop the supplementary groups inherited from the daemon. */
        r = write_id_map(child.pid, "uid_map", cfg->uid_base, cfg->uid_count);
        if (r >= 0)
                r = write_id_map(child.pid, "gid_map", cfg->uid_base, cfg->uid_count);
        if (r < 0)
                return pc_error_setf(reterr, r, "userns", "sandbox %s: cannot write uid/gid map: %s", cfg->name,
                                     strerror(-r));

        /* 6. The network, configured from outside while the child waits: veth and nftables elements on
         *    the host for EGRESS. */
        if (net_config(cfg, &net)) {
                char path[64];
                snprintf(path, sizeof(path), "/proc/%d/ns/net", (int) child.pid);
                _cleanup_close_ int netns = open(path, O_RDONLY | O_CLOEXEC);
                if (netns < 0)
                        return pc_error_setf(reterr, errno, "network", "sandbox %s: cannot open %s: %m",
                                             cfg->name, path);
                fp.net_made = true; /* teardown is idempotent: also after a half-done setup */
                r = isolate_net_setup(netns, cfg->name, &net, reterr);
                if (r < 0)
                        return r;
        }

        /* 7. The OOM score of everything init starts (they inherit it); init's own is set once it has
         *    started tmux (8.). */
        r = raise_oom_score_adj(child.pid, ISOLATE_OOM_SCORE_ADJ);
        if (r < 0)
                return pc_error_setf(reterr, r, "sandbox_init", "sandbox %s: cannot set oom_score_adj: %s",
                                     cfg->name, strerror(-r));

        /*    Go: the child builds its root, drops privileges and starts tmux (sandbox-init.c). */
        send_msg(sync_parent, MSG_GO, 0, 0, NULL);

        r = recv_msg(sync_parent, (int) (timeout / 1000), &m, NULL);
        if (r == -ETIMEDOUT)
                return pc_error_setf(reterr, ETIMEDOUT, "timeout",
                                     "sandbox %s: tmux session not ready after %llu ms", cfg->name,
                                     (unsigned long long) (timeout / 1000));
        if (r < 0)
                return pc_error_setf(reterr, r, "sandbox_init",
                                     "sandbox %s: init exited before reporting readiness: %s", cfg->name,
                                     strerror(-r));
        if (m.kind == MSG_FAILED && m.value == 1)
                return pc_error_setf(reterr, EIO, "sandbox_init", "sandbox %s: %s: tmux exited with status %d",
                                     cfg->name, m.step, m.error);
        if (m.kind == MSG_FAILED)
                return pc_error_setf(reterr, m.error, "sandbox_init", "sandbox %s: %s: %s", cfg->name, m.step,
                                     strerror(m.error));
        if (m.kind != MSG_READY)
                return pc_error_setf(reterr, EPROTO, "sandbox_init", "sandbox %s: unexpected message %d from init",
                                     cfg->name, m.kind);

        /* 8. An OOM kill in the sandbox takes the agent's processes, never init (its death would stop the
         *    sandbox): init is exempt where lowering is allowed (CAP_SYS_RESOURCE), else it gets the daemon's
         *    own score back, below that of everything it started. */
        r = write_oom_score_adj(child.pid, -1000);
        if (r == -EACCES)
                r = copy_oom_score_adj(child.pid);
        if (r < 0)
                return pc_error_setf(reterr, r, "sandbox_init",
                                     "sandbox %s: cannot protect init from the OOM killer: %s", cfg->name,
                                     strerror(-r));

        /*    tmux's server (init's child once it has daemonized; its first window has inherited the agent's
         *    score already) gets 0, so that it outlives an OOM kill of what runs in it: the daemon does it
         *    here, before anyone can attach, rather than tmux from inside at the cost of a shell. */
        lower_children_oom_score_adj(child.pid);

        r = isolate_pid_starttime(child.pid, &sb->starttime);
        if (r < 0)
                return pc_error_setf(reterr, r, "sandbox_init", "sandbox %s: cannot read start time: %s",
                                     cfg->name, strerror(-r));
        sb->pid = child.pid;
        sb->pidfd = TAKE_FD(child.pidfd);
        child.pid = 0;
        sb->cgroup = cfg->cgroup ?: TAKE_PTR(fp.cgroup);
        sb->cgroup_owned = !cfg->cgroup;
        fp.armed = false;
        *ret = TAKE_PTR(sb);
        return 0;
}

int isolate_sandbox_adopt(const isolate_sandbox_config *cfg, pid_t pid, uint64_t starttime,
                          isolate_sandbox **ret)
{
        _cleanup_(isolate_sandbox_freep) isolate_sandbox *sb = NULL;
        _cleanup_close_ int pidfd = -EBADF;
        uint64_t now;
        int r;

        if (pid <= 1 || !name_is_valid(cfg->name))
                return -EINVAL;
        pidfd = raw_pidfd_open(pid);
        if (pidfd < 0)
                return pidfd;
        /* The pidfd pins the process we opened; the start time proves it is the one we recorded. */
        r = isolate_pid_starttime(pid, &now);
        if (r < 0)
                return r;
        if (now != starttime)
                return -ESRCH;
        r = raw_pidfd_send_signal(pidfd, 0);
        if (r < 0)
                return r;

        r = sandbox_new(cfg, &sb, NULL);
        if (r < 0)
                return r;
        sb->pid = pid;
        sb->pidfd = TAKE_FD(pidfd);
        sb->starttime = starttime;
        /* A group that cannot be re-opened (removed by hand) only costs the limits' accounting. */
        sb->cgroup = cfg->cgroup;
        if (!sb->cgroup && own_cgroup(cfg, false, &sb->cgroup, NULL) >= 0)
                sb->cgroup_owned = true;
        *ret = TAKE_PTR(sb);
        return 0;
}

int isolate_sandbox_destroy(const isolate_sandbox_config *cfg, isolate_sandbox *sb, unsigned flags,
                            pc_error **reterr)
{
        _cleanup_(isolate_cgroup_freep) isolate_cgroup *cg = NULL;
        isolate_net_config net;
        int r, ret = 0;

        if (!name_is_valid(cfg->name))
                return pc_error_setf(reterr, EINVAL, "invalid_name", "sandbox name \"%s\" is invalid",
                                     strna(cfg->name));
#define KEEP_FIRST(r, ...) ((r) < 0 && ret == 0 ? (ret = pc_error_setf(reterr, -(r), __VA_ARGS__)) : 0)

        /* 1. Processes: init gracefully when we have it, then whatever is left in the cgroup. */
        if (sb) {
                r = isolate_sandbox_stop(sb, 0);
                KEEP_FIRST(r, "stop_failed", "sandbox %s: cannot stop: %s", cfg->name, strerror(-r));
        }
        /* 2. Its own cgroup (never a borrowed one), also when no handle survived a crash. */
        r = own_cgroup(cfg, false, &cg, NULL);
        if (r >= 0 && cg) {
                r = isolate_cgroup_kill(cg);
                if (r >= 0)
                        r = isolate_cgroup_destroy(cg);
                KEEP_FIRST(r, "cgroup_failed", "sandbox %s: cannot remove cgroup %s: %s", cfg->name,
                           isolate_cgroup_path(cg), strerror(-r));
        } else if (r < 0 && r != -ENOENT)
                KEEP_FIRST(r, "cgroup_failed", "sandbox %s: cannot open its cgroup: %s", cfg->name, strerror(-r));
        /* 3. Host side of the network. */
        if (net_config(cfg, &net)) {
                r = isolate_net_teardown(cfg->name, &net);
                KEEP_FIRST(r, "network_failed", "sandbox %s: cannot remove its network: %s", cfg->name,
                           strerror(-r));
        }
        /* 4. Data, when asked: written by the sandbox, removed without following its symlinks. */
        if ((flags & ISOLATE_DESTROY_ROOTFS) && cfg->overlay_dir) {
                r = isolate_remove_tree(cfg->overlay_dir);
                KEEP_FIRST(r, "rootfs", "sandbox %s: cannot remove %s: %s", cfg->name, cfg->overlay_dir,
                           strerror(-r));
        }
        if (flags & (ISOLATE_DESTROY_RELEASE_WORKSPACE | ISOLATE_DESTROY_PURGE_WORKSPACE)) {
                r = isolate_workspace_release(cfg, flags & ISOLATE_DESTROY_PURGE_WORKSPACE);
                KEEP_FIRST(r, "workspace", "sandbox %s: cannot release the disk of workspace %s: %s", cfg->name,
                           cfg->workspace, strerror(-r));
        }
        if ((flags & ISOLATE_DESTROY_PURGE_WORKSPACE) && cfg->workspace) {
                r = isolate_remove_tree(cfg->workspace);
                KEEP_FIRST(r, "workspace", "sandbox %s: cannot remove workspace %s: %s", cfg->name,
                           cfg->workspace, strerror(-r));
        }
#undef KEEP_FIRST
        return ret;
}

static int wait_exit(int pidfd, uint64_t timeout_usec)
{
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;

        for (;;) {
                uint64_t n = now_usec(CLOCK_MONOTONIC);
                int r;

                if (n >= deadline)
                        return -ETIMEDOUT;
                r = poll(&p, 1, (int) ((deadline - n + 999) / 1000));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r > 0)
                        return 0;
        }
}

int isolate_sandbox_stop(isolate_sandbox *sb, uint64_t timeout_usec)
{
        int r;

        if (!sb || sb->pidfd < 0)
                return -EINVAL;
        r = raw_pidfd_send_signal(sb->pidfd, SIGTERM);
        if (r >= 0)
                r = wait_exit(sb->pidfd, timeout_usec ?: DEFAULT_STOP_TIMEOUT_USEC);
        if (r == -ETIMEDOUT) {
                /* Killing a pid namespace's init kills everything in it. */
                r = raw_pidfd_send_signal(sb->pidfd, SIGKILL);
                if (r >= 0)
                        r = wait_exit(sb->pidfd, DEFAULT_STOP_TIMEOUT_USEC);
        }
        if (r < 0 && r != -ESRCH)
                return r;
        /* Reap when it is our child (not after adoption: then the host's init reaps it). */
        (void) waitid(P_PIDFD, sb->pidfd, NULL, WEXITED | WNOHANG);
        if (sb->cgroup) {
                r = isolate_cgroup_kill(sb->cgroup);
                if (r < 0)
                        return r;
        }
        return 0;
}

bool isolate_sandbox_is_running(const isolate_sandbox *sb)
{
        struct pollfd p = { .fd = sb->pidfd, .events = POLLIN };

        if (sb->pidfd < 0)
                return false;
        return poll(&p, 1, 0) == 0;
}

const char *isolate_sandbox_name(const isolate_sandbox *sb)
{
        return sb->name;
}
pid_t isolate_sandbox_pid(const isolate_sandbox *sb)
{
        return sb->pid;
}
int isolate_sandbox_pidfd(const isolate_sandbox *sb)
{
        return sb->pidfd;
}
uint64_t isolate_sandbox_starttime(const isolate_sandbox *sb)
{
        return sb->starttime;
}
uid_t isolate_sandbox_uid_base(const isolate_sandbox *sb)
{
        return sb->uid_base;
}

const char *isolate_sandbox_cgroup_path(const isolate_sandbox *sb)
{
        return sb->cgroup ? isolate_cgroup_path(sb->cgroup) : NULL;
}

int isolate_sandbox_usage(isolate_sandbox *sb, isolate_usage *ret)
{
        return sb->cgroup ? isolate_cgroup_usage(sb->cgroup, ret) : -ENODATA;
}
