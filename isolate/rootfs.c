/* SPDX-License-Identifier: MIT */
/* The sandbox's root filesystem, assembled through file descriptors with the new mount API:
 * a fresh tmpfs (or an image overlay) becomes the root; host directories are cloned with open_tree(),
 * made read-only with mount_setattr() and attached with move_mount() onto targets opened with openat2()
 * beneath the new root, so no path is ever resolved through something the sandbox could have made a
 * symlink. Runs in the cloned child, inside the new user and mount namespaces, before pivot_root. */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sched.h>
#include <unistd.h>

#include "common.h"
#include "isolate-internal.h"
#include "isolate.h"

#define RESOLVE_SAFE (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

/* Host directories that make up the "host" layout, read-only. On merged-/usr systems the top-level ones
 * are symlinks into /usr; those are recreated as the same symlinks. */
static const char *const host_dirs[] = { "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32" };

/* Host files and directories under /etc that programs need and that hold nothing secret. Missing ones
 * are skipped. Never /etc/ssl/private, shadow, ssh host keys or daemon configuration. */
static const struct {
        const char *path;
        bool dir;
} host_etc[] = {
        { "etc/ssl/certs", true },  /* CA certificates (symlinks into /usr/share/ca-certificates) */
        { "etc/ld.so.cache", false }, /* dynamic loader cache: faster startup, same libraries */
        { "etc/alternatives", true }, /* Debian's alternatives: /usr/bin/awk etc. point here */
};

/* /proc entries hidden behind /dev/null: kernel memory, addresses, keys, the kernel log, the sysrq
 * trigger, and the host's kernel command line (boot parameters, sometimes addresses or secrets). */
static const char *const proc_mask_files[] = {
        "kcore", "kallsyms", "keys", "key-users", "kmsg", "kpagecount", "kpageflags", "kpagecgroup",
        "latency_stats", "timer_list", "timer_stats", "sched_debug", "sysrq-trigger", "config.gz", "cmdline",
};
/* /proc directories hidden behind an empty read-only tmpfs: hardware interfaces. */
static const char *const proc_mask_dirs[] = { "acpi", "asound", "scsi" };
/* /proc directories left visible but read-only: sysctls (core_pattern, usermode helpers such as
 * modprobe and hotplug), interrupts, buses, filesystems. */
static const char *const proc_ro_dirs[] = { "sys", "irq", "bus", "fs" };

/* Host device nodes bound into the minimal /dev. No block devices. */
static const char *const dev_nodes[] = { "null", "zero", "full", "random", "urandom", "tty" };
static const struct {
        const char *name, *target;
} dev_links[] = {
        { "fd", "/proc/self/fd" },       { "stdin", "/proc/self/fd/0" }, { "stdout", "/proc/self/fd/1" },
        { "stderr", "/proc/self/fd/2" }, { "ptmx", "pts/ptmx" },
};

#define FAIL(r, ...)                                                                                      \
        ({                                                                                                \
                snprintf(step, stepsz, __VA_ARGS__);                                                      \
                (r);                                                                                      \
        })

static int openat2_safe(int dirfd, const char *path, int flags, mode_t mode)
{
        struct open_how how = { .flags = (uint64_t) flags | O_CLOEXEC, .mode = mode, .resolve = RESOLVE_SAFE };
        int fd = (int) syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
        return fd < 0 ? -errno : fd;
}

int isolate_openat_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
        return openat2_safe(dirfd, path, flags, mode);
}

/* Opens (creating if needed) a mount target beneath root: a directory, or an empty file for file binds. */
static int open_target(int rootfd, const char *path, bool dir)
{
        if (dir) {
                if (mkdirat(rootfd, path, 0755) < 0 && errno != EEXIST)
                        return -errno;
                return openat2_safe(rootfd, path, O_PATH | O_DIRECTORY, 0);
        }
        return openat2_safe(rootfd, path, O_RDONLY | O_CREAT | O_NOFOLLOW, 0644);
}

static int attach(int treefd, int rootfd, const char *path, bool dir)
{
        _cleanup_close_ int tfd = open_target(rootfd, path, dir);
        if (tfd < 0)
                return tfd;
        if (move_mount(treefd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                return -errno;
        return 0;
}

/* A clone of the mount tree at srcfd/srcpath with `attrs` added to every mount in it. */
static int clone_tree(int srcfd, const char *srcpath, uint64_t attrs)
{
        struct mount_attr a = { .attr_set = attrs };
        _cleanup_close_ int tree = open_tree(srcfd, srcpath,
                                             OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE |
                                                     (isempty(srcpath) ? AT_EMPTY_PATH : 0));
        if (tree < 0)
                return -errno;
        if (attrs != 0 && mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof(a)) < 0)
                return -errno;
        return TAKE_FD(tree);
}

int isolate_rootfs_clone_dir(const char *path, uint64_t attrs)
{
        struct mount_attr a = { .attr_set = attrs, .propagation = MS_PRIVATE };
        struct stat st;
        _cleanup_close_ int tree = open_tree(AT_FDCWD, path,
                                             OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE |
                                                     AT_SYMLINK_NOFOLLOW);
        if (tree < 0)
                return -errno;
        if (fstat(tree, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof(a)) < 0)
                return -errno;
        return TAKE_FD(tree);
}

/* A new detached superblock mount of `fstype` with string options (NULL-terminated key, value pairs). */
static int new_mount(const char *fstype, const char *const *opts, uint64_t attrs)
{
        _cleanup_close_ int fs = fsopen(fstype, FSOPEN_CLOEXEC);
        if (fs < 0)
                return -errno;
        for (size_t i = 0; opts && opts[i]; i += 2)
                if (fsconfig(fs, FSCONFIG_SET_STRING, opts[i], opts[i + 1], 0) < 0)
                        return -errno;
        if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return -errno;
        int m = fsmount(fs, FSMOUNT_CLOEXEC, (unsigned) attrs);
        return m < 0 ? -errno : m;
}

static int write_new_file(int dirfd, const char *name, const char *content, mode_t mode)
{
        _cleanup_close_ int fd = -EBADF;

        /* Replace whatever is there (image mode): never write through an existing file or symlink. */
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                return -errno;
        fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0)
                return -errno;
        return write_all(fd, content, strlen(content));
}

/* Host files hidden behind /dev/null in the "host" layout. tmux's server runs libutempter's setgid helper
 * for every new pane and waits for it; in a sandbox it can only fail (no utmp, and no_new_privs voids the
 * setgid bit), yet it costs about 0.9 ms of every create. Hidden, its exec fails at once. */
static const char *const host_masked_files[] = {
        "usr/lib/x86_64-linux-gnu/utempter/utempter",
        "usr/lib/aarch64-linux-gnu/utempter/utempter",
        "usr/libexec/utempter/utempter",
};

static int mask_host_files(int rootfd, char *step, size_t stepsz)
{
        _cleanup_close_ int devnull = -EBADF;

        for (size_t i = 0; i < ELEMENTSOF(host_masked_files); i++) {
                _cleanup_close_ int t = openat(rootfd, host_masked_files[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (t < 0 && errno == ENOENT)
                        continue;
                if (t < 0)
                        return FAIL(-errno, "open /%s", host_masked_files[i]);
                if (devnull < 0) {
                        devnull = open("/dev/null", O_PATH | O_CLOEXEC);
                        if (devnull < 0)
                                return FAIL(-errno, "open host /dev/null");
                }
                _cleanup_close_ int tree = open_tree(devnull, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
                if (tree < 0)
                        return FAIL(-errno, "clone /dev/null");
                if (move_mount(tree, "", t, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        return FAIL(-errno, "mask /%s", host_masked_files[i]);
        }
        return 0;
}

static int setup_host_layout(int rootfd, char *step, size_t stepsz)
{
        int r;

        for (size_t i = 0; i < ELEMENTSOF(host_dirs); i++) {
                char src[64], target[PATH_MAX];
                struct stat st;
                ssize_t n;

                snprintf(src, sizeof(src), "/%s", host_dirs[i]);
                if (fstatat(AT_FDCWD, src, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT)
                                continue;
                        return FAIL(-errno, "stat host %s", src);
                }
                if (S_ISLNK(st.st_mode)) {
                        n = readlinkat(AT_FDCWD, src, target, sizeof(target) - 1);
                        if (n < 0)
                                return FAIL(-errno, "readlink host %s", src);
                        target[n] = 0;
                        if (symlinkat(target, rootfd, host_dirs[i]) < 0)
                                return FAIL(-errno, "symlink /%s -> %s", host_dirs[i], target);
                        continue;
                }
                if (!S_ISDIR(st.st_mode))
                        continue;
                _cleanup_close_ int tree = clone_tree(AT_FDCWD, src,
                                                      MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
                if (tree < 0)
                        return FAIL(tree, "clone host %s read-only", src);
                r = attach(tree, rootfd, host_dirs[i], true);
                if (r < 0)
                        return FAIL(r, "attach /%s", host_dirs[i]);
        }

        r = mask_host_files(rootfd, step, stepsz);
        if (r < 0)
                return r;

        if (mkdirat(rootfd, "etc", 0755) < 0 && errno != EEXIST)
                return FAIL(-errno, "mkdir /etc");
        if (mkdirat(rootfd, "etc/ssl", 0755) < 0 && errno != EEXIST)
                return FAIL(-errno, "mkdir /etc/ssl");
        for (size_t i = 0; i < ELEMENTSOF(host_etc); i++) {
                char src[64];

                snprintf(src, sizeof(src), "/%s", host_etc[i].path);
                _cleanup_close_ int tree = clone_tree(AT_FDCWD, src,
                                                      MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
                if (tree == -ENOENT)
                        continue;
                if (tree < 0)
                        return FAIL(tree, "clone host %s read-only", src);
                r = attach(tree, rootfd, host_etc[i].path, host_etc[i].dir);
                if (r < 0)
                        return FAIL(r, "attach /%s", host_etc[i].path);
        }
        if (symlinkat("../usr/lib/os-release", rootfd, "etc/os-release") < 0)
                return FAIL(-errno, "symlink /etc/os-release");
        return 0;
}

static int write_etc(int rootfd, const isolate_rootfs_plan *plan, char *step, size_t stepsz)
{
        const struct {
                const char *name, *content;
        } files[] = {
                { "passwd", plan->etc_passwd },     { "group", plan->etc_group },
                { "hosts", plan->etc_hosts },       { "hostname", plan->etc_hostname },
                { "resolv.conf", plan->etc_resolv }, { "nsswitch.conf", plan->etc_nsswitch },
        };
        _cleanup_close_ int etc = -EBADF;
        int r;

        if (mkdirat(rootfd, "etc", 0755) < 0 && errno != EEXIST)
                return FAIL(-errno, "mkdir /etc");
        etc = openat2_safe(rootfd, "etc", O_PATH | O_DIRECTORY, 0);
        if (etc < 0)
                return FAIL(etc, "open /etc beneath the new root");
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                r = write_new_file(etc, files[i].name, files[i].content, 0644);
                if (r < 0)
                        return FAIL(r, "write /etc/%s", files[i].name);
        }
        if (plan->localtime_target[0]) {
                if (unlinkat(etc, "localtime", 0) < 0 && errno != ENOENT)
                        return FAIL(-errno, "remove /etc/localtime");
                if (symlinkat(plan->localtime_target, etc, "localtime") < 0)
                        return FAIL(-errno, "symlink /etc/localtime");
        }
        return 0;
}

static int setup_dev(int rootfd, const char *tmpfs_size, char *step, size_t stepsz)
{
        static const char *const dev_opts[] = { "mode", "0755", "size", "64k", NULL };
        const char *const shm_opts[] = { "mode", "01777", "size", tmpfs_size, NULL };
        /* A private devpts instance (every devpts mount is a new instance since Linux 4.7): the agent
         * sees only its own ptys; gid 5 is tty inside. */
        static const char *const pts_opts[] = { "ptmxmode", "0666", "mode", "0620",
                                                "gid", "5", NULL };
        _cleanup_close_ int dev = -EBADF, devdir = -EBADF;
        int r;

        dev = new_mount("tmpfs", dev_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
        if (dev < 0)
                return FAIL(dev, "mount tmpfs for /dev");
        r = attach(dev, rootfd, "dev", true);
        if (r < 0)
                return FAIL(r, "attach /dev");
        devdir = openat2_safe(rootfd, "dev", O_PATH | O_DIRECTORY, 0);
        if (devdir < 0)
                return FAIL(devdir, "open /dev");

        for (size_t i = 0; i < ELEMENTSOF(dev_nodes); i++) {
                char src[32];

                snprintf(src, sizeof(src), "/dev/%s", dev_nodes[i]);
                /* Device nodes cannot work on a filesystem mounted inside a user namespace, so the host's
                 * nodes are bound in (single files, not recursive: nothing is mounted on them). */
                _cleanup_close_ int tree = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
                if (tree < 0)
                        return FAIL(-errno, "clone host %s", src);
                struct mount_attr a = { .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC };
                if (mount_setattr(tree, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
                        return FAIL(-errno, "set nosuid,noexec on %s", src);
                r = attach(tree, devdir, dev_nodes[i], false);
                if (r < 0)
                        return FAIL(r, "attach %s", src);
        }
        for (size_t i = 0; i < ELEMENTSOF(dev_links); i++)
                if (symlinkat(dev_links[i].target, devdir, dev_links[i].name) < 0)
                        return FAIL(-errno, "symlink /dev/%s", dev_links[i].name);

        _cleanup_close_ int pts = new_mount("devpts", pts_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
        if (pts < 0)
                return FAIL(pts, "mount devpts");
        r = attach(pts, devdir, "pts", true);
        if (r < 0)
                return FAIL(r, "attach /dev/pts");

        _cleanup_close_ int shm = new_mount("tmpfs", shm_opts,
                                            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
        if (shm < 0)
                return FAIL(shm, "mount tmpfs for /dev/shm");
        r = attach(shm, devdir, "shm", true);
        if (r < 0)
                return FAIL(r, "attach /dev/shm");

        /* Nothing more is created in /dev: make its tmpfs read-only (the binds and mounts below keep
         * their own flags). */
        struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY };
        if (mount_setattr(devdir, "", AT_EMPTY_PATH, &ro, sizeof(ro)) < 0)
                return FAIL(-errno, "make /dev read-only");
        return 0;
}

static int setup_proc(int rootfd, int devnull, char *step, size_t stepsz)
{
        static const char *const mask_opts[] = { "size", "4k", "nr_inodes", "1", "mode", "0555", NULL };
        _cleanup_close_ int proc = -EBADF, procdir = -EBADF;
        int r;

        /* A fresh procfs: we are PID 1 of the new pid namespace, so it shows only the sandbox. */
        proc = new_mount("proc", NULL, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
        if (proc < 0)
                return FAIL(proc, "mount proc");
        r = attach(proc, rootfd, "proc", true);
        if (r < 0)
                return FAIL(r, "attach /proc");
        procdir = openat2_safe(rootfd, "proc", O_PATH | O_DIRECTORY, 0);
        if (procdir < 0)
                return FAIL(procdir, "open /proc");

        for (size_t i = 0; i < ELEMENTSOF(proc_ro_dirs); i++) {
                _cleanup_close_ int tree = clone_tree(procdir, proc_ro_dirs[i], MOUNT_ATTR_RDONLY);
                if (tree == -ENOENT)
                        continue;
                if (tree < 0)
                        return FAIL(tree, "clone /proc/%s read-only", proc_ro_dirs[i]);
                _cleanup_close_ int t = openat(procdir, proc_ro_dirs[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (t < 0)
                        return FAIL(-errno, "open /proc/%s", proc_ro_dirs[i]);
                if (move_mount(tree, "", t, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        return FAIL(-errno, "attach /proc/%s read-only", proc_ro_dirs[i]);
        }
        for (size_t i = 0; i < ELEMENTSOF(proc_mask_files); i++) {
                _cleanup_close_ int t = openat(procdir, proc_mask_files[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (t < 0 && errno == ENOENT)
                        continue;
                if (t < 0)
                        return FAIL(-errno, "open /proc/%s", proc_mask_files[i]);
                _cleanup_close_ int tree = open_tree(devnull, "",
                                                     OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
                if (tree < 0)
                        return FAIL(-errno, "clone /dev/null");
                if (move_mount(tree, "", t, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        return FAIL(-errno, "mask /proc/%s", proc_mask_files[i]);
        }
        for (size_t i = 0; i < ELEMENTSOF(proc_mask_dirs); i++) {
                _cleanup_close_ int t = openat(procdir, proc_mask_dirs[i],
                                               O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (t < 0 && errno == ENOENT)
                        continue;
                if (t < 0)
                        return FAIL(-errno, "open /proc/%s", proc_mask_dirs[i]);
                _cleanup_close_ int empty = new_mount("tmpfs", mask_opts,
                                                      MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                                              MOUNT_ATTR_NOEXEC);
                if (empty < 0)
                        return FAIL(empty, "mount empty tmpfs for /proc/%s", proc_mask_dirs[i]);
                if (move_mount(empty, "", t, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        return FAIL(-errno, "mask /proc/%s", proc_mask_dirs[i]);
        }
        return 0;
}

int isolate_rootfs_setup(const isolate_rootfs_plan *plan, int workspace, int api_socket_dir, char *step,
                         size_t stepsz)
{
        static const char *const root_opts[] = { "mode", "0755", "size", "1m", NULL };
        char tmpfs_size[32];
        snprintf(tmpfs_size, sizeof(tmpfs_size), "%" PRIu64, plan->tmpfs_size);
        const char *const tmp_opts[] = { "mode", "01777", "size", tmpfs_size, NULL };
        static const char *const run_opts[] = { "mode", "0755", "size", "1m", NULL };
        _cleanup_close_ int devnull = -EBADF, root = -EBADF;
        struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY };
        int r;

        /* Nothing we mount may propagate back to the host. */
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return FAIL(-errno, "make all mounts private");

        /* Sources are opened before anything is covered (the workspace, opened by the caller, may live
         * under /tmp). */
        devnull = open("/dev/null", O_PATH | O_CLOEXEC);
        if (devnull < 0)
                return FAIL(-errno, "open host /dev/null");

        /* The new root: the image overlay, or a small tmpfs for the host layout. It is attached at /tmp of
         * our private copy of the host's tree, only so that pivot_root has a mount point to use. */
        if (plan->image_mount_fd >= 0)
                root = fcntl(plan->image_mount_fd, F_DUPFD_CLOEXEC, 3);
        else
                root = new_mount("tmpfs", root_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
        if (root < 0)
                return FAIL(root == -1 ? -errno : root, "create the root filesystem");
        if (move_mount(root, "", AT_FDCWD, "/tmp", MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return FAIL(-errno, "attach the new root");

        if (!plan->image) {
                r = setup_host_layout(root, step, stepsz);
                if (r < 0)
                        return r;
        }
        r = write_etc(root, plan, step, stepsz);
        if (r < 0)
                return r;

        r = attach(workspace, root, "workspace", true);
        if (r < 0)
                return FAIL(r, "attach /workspace");

        _cleanup_close_ int tmp = new_mount("tmpfs", tmp_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
        if (tmp < 0)
                return FAIL(tmp, "mount tmpfs for /tmp");
        r = attach(tmp, root, "tmp", true);
        if (r < 0)
                return FAIL(r, "attach /tmp");

        /* /run holds tmux's socket directory, owned by the agent and private to it, and the daemon's API
         * socket in /run/pocketcoder, which belongs to sandbox root: the agent can neither remove nor
         * replace the socket, only connect to it. */
        _cleanup_close_ int run = new_mount("tmpfs", run_opts,
                                            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
        if (run < 0)
                return FAIL(run, "mount tmpfs for /run");
        if (mkdirat(run, "tmux", 0700) < 0)
                return FAIL(-errno, "mkdir /run/tmux");
        if (fchownat(run, "tmux", ISOLATE_AGENT_UID, ISOLATE_AGENT_GID, AT_SYMLINK_NOFOLLOW) < 0)
                return FAIL(-errno, "chown /run/tmux to the agent");
        if (mkdirat(run, "pocketcoder", 0755) < 0)
                return FAIL(-errno, "mkdir /run/pocketcoder");
        r = attach(run, root, "run", true);
        if (r < 0)
                return FAIL(r, "attach /run");
        if (api_socket_dir >= 0) {
                r = attach(api_socket_dir, root, "run/pocketcoder", true);
                if (r < 0)
                        return FAIL(r, "attach /run/pocketcoder");
        }

        r = setup_dev(root, tmpfs_size, step, stepsz);
        if (r < 0)
                return r;
        r = setup_proc(root, devnull, step, stepsz);
        if (r < 0)
                return r;

        /* Switch: the old root is stacked on "." by pivot_root and detached right away. /sys is not
         * mounted at all (see docs/security.md). */
        if (fchdir(root) < 0)
                return FAIL(-errno, "chdir into the new root");
        if (syscall(SYS_pivot_root, ".", ".") < 0)
                return FAIL(-errno, "pivot_root");
        if (umount2(".", MNT_DETACH) < 0)
                return FAIL(-errno, "detach the old root");
        if (chdir("/") < 0)
                return FAIL(-errno, "chdir /");

        /* The root tmpfs is complete: read-only from now on. The image overlay stays writable for sandbox
         * root (its upper layer is per sandbox). */
        if (!plan->image && mount_setattr(AT_FDCWD, "/", 0, &ro, sizeof(ro)) < 0)
                return FAIL(-errno, "make / read-only");
        return 0;
}

int isolate_rootfs_plan_init(isolate_rootfs_plan *plan, const char *name, const char *workspace,
                             const char *image, const char *resolv_conf)
{
        _cleanup_free_ char *host_resolv = NULL;
        ssize_t n;
        int r;

        *plan = (isolate_rootfs_plan) { .name = name, .workspace = workspace, .image = image,
                                        .image_mount_fd = -EBADF };

        if (!resolv_conf) {
                r = read_full_file("/etc/resolv.conf", 64 * 1024, &host_resolv, NULL);
                if (r < 0 && r != -ENOENT)
                        return r;
                resolv_conf = host_resolv ?: "";
        }
        if (asprintf_safe(&plan->etc_passwd,
                          "root:x:0:0:root:" ISOLATE_WORKSPACE ":/bin/bash\n"
                          "agent:x:%u:%u:agent:" ISOLATE_WORKSPACE ":/bin/bash\n"
                          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                          ISOLATE_AGENT_UID, ISOLATE_AGENT_GID) < 0 ||
            asprintf_safe(&plan->etc_group, "root:x:0:\ntty:x:5:\nagent:x:%u:\nnogroup:x:65534:\n",
                          ISOLATE_AGENT_GID) < 0 ||
            asprintf_safe(&plan->etc_hosts, "127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost\n",
                          name) < 0 ||
            asprintf_safe(&plan->etc_hostname, "%s\n", name) < 0 ||
            !(plan->etc_resolv = strdup(resolv_conf)) ||
            !(plan->etc_nsswitch = strdup("passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
                                          "networks: files\nprotocols: files\nservices: files\n"))) {
                isolate_rootfs_plan_done(plan);
                return -ENOMEM;
        }
        n = readlink("/etc/localtime", plan->localtime_target, sizeof(plan->localtime_target) - 1);
        plan->localtime_target[n > 0 ? n : 0] = 0;
        return 0;
}

void isolate_rootfs_plan_done(isolate_rootfs_plan *plan)
{
        free(plan->etc_passwd);
        free(plan->etc_group);
        free(plan->etc_hosts);
        free(plan->etc_hostname);
        free(plan->etc_resolv);
        free(plan->etc_nsswitch);
        plan->etc_passwd = plan->etc_group = plan->etc_hosts = plan->etc_hostname = plan->etc_resolv =
                plan->etc_nsswitch = NULL;
        plan->image_mount_fd = safe_close(plan->image_mount_fd);
}

/* A user namespace with the sandbox's mapping (0 -> uid_base, count ids), as an fd for MOUNT_ATTR_IDMAP.
 * A throwaway child creates it and waits; we write its maps, keep the namespace, and reap the child. */
static int userns_for_map(uid_t uid_base, uint32_t uid_count)
{
        static const char *const files[] = { "uid_map", "gid_map" };
        _cleanup_close_ int ns = -EBADF;
        char path[64], map[64], c;
        int ready[2], go[2], r = 0, status;
        pid_t pid;

        if (pipe2(ready, O_CLOEXEC) < 0)
                return -errno;
        if (pipe2(go, O_CLOEXEC) < 0) {
                r = -errno;
                (void) close(ready[0]);
                (void) close(ready[1]);
                return r;
        }
        pid = fork();
        if (pid == 0) {
                /* Says "unshared" (one byte) or fails (EOF), then waits until the parent is done. */
                (void) close(ready[0]);
                (void) close(go[1]);
                if (unshare(CLONE_NEWUSER) < 0)
                        _exit(1);
                if (write(ready[1], "u", 1) != 1)
                        _exit(1);
                _exit(read(go[0], &c, 1) < 0);
        }
        if (pid < 0)
                r = -errno;
        (void) close(ready[1]);
        (void) close(go[0]);
        if (r >= 0 && read(ready[0], &c, 1) != 1)
                r = -ECHILD;
        (void) close(ready[0]);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(files); i++) {
                _cleanup_close_ int fd = -EBADF;
                snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, files[i]);
                snprintf(map, sizeof(map), "0 %u %u\n", (unsigned) uid_base, uid_count);
                fd = open(path, O_WRONLY | O_CLOEXEC);
                if (fd < 0 || write(fd, map, strlen(map)) != (ssize_t) strlen(map))
                        r = errno ? -errno : -EIO;
        }
        if (r >= 0) {
                snprintf(path, sizeof(path), "/proc/%d/ns/user", (int) pid);
                ns = open(path, O_RDONLY | O_CLOEXEC);
                if (ns < 0)
                        r = -errno;
        }
        (void) close(go[1]);
        if (pid > 0)
                (void) waitpid(pid, &status, 0);
        return r < 0 ? r : TAKE_FD(ns);
}

int isolate_rootfs_make_overlay(const char *image, const char *overlay_dir, uid_t uid_base, uint32_t uid_count,
                                int *ret_fd)
{
        _cleanup_free_ char *upper = NULL, *work = NULL;
        _cleanup_close_ int fs = -EBADF, ns = -EBADF, lower = -EBADF, dir = -EBADF, upperfd = -EBADF,
                            workfd = -EBADF;
        int m, r;

        upper = strjoin(overlay_dir, "/upper");
        work = strjoin(overlay_dir, "/work");
        if (!upper || !work)
                return -ENOMEM;
        r = mkdir_p(upper, 0755);
        if (r < 0)
                return r;
        r = mkdir_p(work, 0700);
        if (r < 0)
                return r;
        /* The overlay's root directory takes its owner from upper/: sandbox root's. */
        if (chown(upper, uid_base, uid_base) < 0)
                return -errno;

        /* The image is shared and owned by host root, which is unmapped in every sandbox: seen directly,
         * all of it would belong to nobody and sandbox root could change nothing (not even /etc/passwd).
         * An idmapped view shifts it into this sandbox's range: host 0 appears as sandbox root, copy-ups
         * land in upper/ owned by the range, and the image itself stays untouched. */
        ns = userns_for_map(uid_base, uid_count);
        if (ns < 0)
                return ns;
        lower = open_tree(AT_FDCWD, image, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (lower < 0)
                return -errno;
        struct mount_attr a = { .attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY, .userns_fd = (uint64_t) ns };
        if (mount_setattr(lower, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
                return -errno;

        /* Every layer by fd, from detached clones: the overlay's options in the sandbox's mountinfo then
         * read "lowerdir+=/,upperdir=/upper,workdir=/work", not the host paths of the state directory.
         * upper/ and work/ come from one clone (overlayfs wants them on the same mount). */
        dir = open_tree(AT_FDCWD, overlay_dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
        if (dir < 0)
                return -errno;
        upperfd = openat(dir, "upper", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        workfd = openat(dir, "work", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (upperfd < 0 || workfd < 0)
                return -errno;
        fs = fsopen("overlay", FSOPEN_CLOEXEC);
        if (fs < 0)
                return -errno;
        if (fsconfig(fs, FSCONFIG_SET_FD, "lowerdir+", NULL, lower) < 0 ||
            fsconfig(fs, FSCONFIG_SET_FD, "upperdir", NULL, upperfd) < 0 ||
            fsconfig(fs, FSCONFIG_SET_FD, "workdir", NULL, workfd) < 0 ||
            fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return -errno;
        m = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
        if (m < 0)
                return -errno;
        *ret_fd = m;
        return 0;
}
