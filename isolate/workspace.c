/* SPDX-License-Identifier: MIT */
/* Workspaces on the host: their block and inode limit (a project quota on the filesystem that holds them,
 * or a filesystem image of their own on a loop device), and their removal. Everything in a workspace was
 * written by the sandbox: it is walked by fd, never by path, and never through a symlink. */
#include <dirent.h>
#include <inttypes.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <linux/quota.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include "common.h"
#include "isolate-internal.h"
#include "isolate.h"

#define LOOP_MAJOR_NUMBER 7
#define IMAGE_FSTYPE      "ext4"

extern char **environ;

const char *isolate_disk_mode_to_string(isolate_disk_mode m)
{
        static const char *const names[] = {
                [ISOLATE_DISK_NONE] = "none",
                [ISOLATE_DISK_PROJECT] = "project",
                [ISOLATE_DISK_IMAGE] = "image",
        };
        return (size_t) m < ELEMENTSOF(names) ? names[m] : NULL;
}

int isolate_disk_mode_from_string(const char *s)
{
        for (int m = ISOLATE_DISK_NONE; m <= ISOLATE_DISK_IMAGE; m++)
                if (streq_ptr(s, isolate_disk_mode_to_string(m)))
                        return m;
        return -EINVAL;
}

static int quotactl_fd(int fd, unsigned cmd, unsigned id, void *addr)
{
        return syscall(SYS_quotactl_fd, fd, cmd, id, addr) < 0 ? -errno : 0;
}

/* <sys/quota.h>'s QCMD() shifts an int: Q_GETINFO (0x800005) << 8 overflows it (undefined; UBSan stops). */
#define QCMD_PRJ(cmd) ((int) (((unsigned) (cmd) << SUBCMDSHIFT) | (PRJQUOTA & SUBCMDMASK)))

int isolate_disk_probe(const char *dir, isolate_disk_mode *ret)
{
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct if_dqinfo info;

        if (fd < 0)
                return -errno;
        /* Q_GETINFO answers only while project quotas are on (ext4 -O quota,project mounted with prjquota,
         * xfs with pquota); then the kernel enforces them. Images need loop devices, which a container
         * may not have: then there is no mechanism (NONE). */
        if (quotactl_fd(fd, QCMD_PRJ(Q_GETINFO), 0, &info) >= 0)
                *ret = ISOLATE_DISK_PROJECT;
        else
                *ret = access("/dev/loop-control", R_OK | W_OK) >= 0 ? ISOLATE_DISK_IMAGE : ISOLATE_DISK_NONE;
        return 0;
}

/* ---- project quotas ---- */

static int project_set(int wsfd, uint32_t projid, uint64_t disk_max, uint64_t inodes_max)
{
        struct fsxattr x;
        struct if_dqblk q = {
                /* In QIF_DQBLKSIZE (1 KiB) units, rounded up. */
                .dqb_bhardlimit = (disk_max + 1023) / 1024,
                .dqb_bsoftlimit = (disk_max + 1023) / 1024,
                .dqb_ihardlimit = inodes_max,
                .dqb_isoftlimit = inodes_max,
                .dqb_valid = QIF_LIMITS,
        };

        /* Every file made below inherits the project id. Only host root (init user namespace) may change
         * a file's project id, so the sandbox cannot step out of its quota. */
        if (ioctl(wsfd, FS_IOC_FSGETXATTR, &x) < 0)
                return -errno;
        x.fsx_projid = projid;
        x.fsx_xflags |= FS_XFLAG_PROJINHERIT;
        if (ioctl(wsfd, FS_IOC_FSSETXATTR, &x) < 0)
                return -errno;
        return quotactl_fd(wsfd, QCMD_PRJ(Q_SETQUOTA), projid, &q);
}

int isolate_disk_usage(const isolate_sandbox_config *cfg, uint64_t *ret_bytes, uint64_t *ret_inodes)
{
        _cleanup_close_ int fd = open(cfg->workspace, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct if_dqblk q = {};
        struct statvfs sv;
        int r;

        if (fd < 0)
                return -errno;
        switch (cfg->disk_mode) {
        case ISOLATE_DISK_PROJECT:
                r = quotactl_fd(fd, QCMD_PRJ(Q_GETQUOTA), cfg->uid_base, &q);
                if (r < 0)
                        return r;
                *ret_bytes = q.dqb_curspace;
                *ret_inodes = q.dqb_curinodes;
                return 0;
        case ISOLATE_DISK_IMAGE:
                if (fstatvfs(fd, &sv) < 0)
                        return -errno;
                *ret_bytes = (uint64_t) (sv.f_blocks - sv.f_bfree) * sv.f_frsize;
                *ret_inodes = (uint64_t) (sv.f_files - sv.f_ffree);
                return 0;
        default:
                return -ENODATA;
        }
}

/* ---- filesystem images ---- */

static int run_mkfs(const isolate_sandbox_config *cfg)
{
        char size_kib[32], inodes[32], owner[96];
        static const char *const paths[] = { "/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4" };
        _cleanup_free_ char *out = NULL;
        const char *argv[16];
        size_t n = 0;
        int r;

        snprintf(size_kib, sizeof(size_kib), "%" PRIu64 "k", cfg->disk_max / 1024);
        snprintf(owner, sizeof(owner), "root_owner=%u:%u,lazy_itable_init=1,lazy_journal_init=1,nodiscard",
                 (unsigned) (cfg->uid_base + ISOLATE_AGENT_UID), (unsigned) (cfg->uid_base + ISOLATE_AGENT_GID));
        argv[n++] = "mkfs.ext4";
        argv[n++] = "-q";
        argv[n++] = "-F";
        argv[n++] = "-m"; /* no blocks reserved for root: the whole limit is the agent's */
        argv[n++] = "0";
        argv[n++] = "-E";
        argv[n++] = owner;
        if (cfg->inodes_max > 0) {
                snprintf(inodes, sizeof(inodes), "%" PRIu64, cfg->inodes_max);
                argv[n++] = "-N";
                argv[n++] = inodes;
        }
        argv[n++] = cfg->disk_image;
        argv[n++] = size_kib;
        argv[n] = NULL;
        r = isolate_run_tool(paths, ELEMENTSOF(paths), (char *const *) argv, -EBADF, true, 64 * 1024, &out);
        if (r > 0)
                log_warning("sandbox %s: mkfs.ext4 failed: %s", cfg->name, strstrip(out));
        return r > 0 ? -EIO : r;
}

/* The image file; made (sparse, with its filesystem) only for a new workspace: a missing image of an
 * existing one held its files, and an empty one in its place would hide that. */
static int image_open(const isolate_sandbox_config *cfg, bool create, bool *ret_made, pc_error **reterr)
{
        _cleanup_close_ int fd = -EBADF;
        int r;

        *ret_made = false;
        fd = open(cfg->disk_image, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0)
                return TAKE_FD(fd);
        if (errno != ENOENT || !create)
                return pc_error_setf(reterr, errno, "workspace", "sandbox %s: cannot open disk image %s: %m%s",
                                     cfg->name, cfg->disk_image,
                                     errno == ENOENT ? " (the workspace's files were in it)" : "");
        fd = open(cfg->disk_image, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return pc_error_setf(reterr, errno, "workspace", "sandbox %s: cannot create disk image %s: %m",
                                     cfg->name, cfg->disk_image);
        *ret_made = true;
        if (ftruncate(fd, (off_t) cfg->disk_max) < 0)
                r = -errno;
        else
                r = run_mkfs(cfg);
        if (r < 0) {
                (void) unlink(cfg->disk_image);
                *ret_made = false;
                return pc_error_setf(reterr, -r, "workspace",
                                     "sandbox %s: cannot make a %" PRIu64 "-byte ext4 filesystem in %s: %s "
                                     "(mkfs.ext4 from e2fsprogs is needed)",
                                     cfg->name, cfg->disk_max, cfg->disk_image, strerror(-r));
        }
        return TAKE_FD(fd);
}

/* A loop device backed by image_fd, cleared by the kernel when its last user (the mount) goes. */
static int loop_attach(int image_fd, const char *image, char ret_path[static 32])
{
        _cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        struct loop_config c = { .fd = (uint32_t) image_fd, .info.lo_flags = LO_FLAGS_AUTOCLEAR };

        if (ctl < 0)
                return -errno;
        snprintf((char *) c.info.lo_file_name, sizeof(c.info.lo_file_name), "%s", image);
        /* GET_FREE and CONFIGURE are two steps: another process may take the device in between. */
        for (int attempt = 0; attempt < 64; attempt++) {
                _cleanup_close_ int fd = -EBADF;
                int n = ioctl(ctl, LOOP_CTL_GET_FREE);

                if (n < 0)
                        return -errno;
                snprintf(ret_path, 32, "/dev/loop%d", n);
                fd = open(ret_path, O_RDWR | O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                if (ioctl(fd, LOOP_CONFIGURE, &c) >= 0)
                        return TAKE_FD(fd);
                if (errno != EBUSY)
                        return -errno;
        }
        return -EBUSY;
}

/* Whether the workspace directory (wsfd) is the root of a mount of our image already. */
static int image_mounted(int wsfd, const char *image)
{
        struct statx sx;
        char path[96], *backing = NULL;
        _cleanup_free_ char *real = NULL;
        int r;

        if (statx(wsfd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx) < 0)
                return -errno;
        if (!statx_is_mount_root(&sx))
                return 0;
        if (sx.stx_dev_major != LOOP_MAJOR_NUMBER)
                return -EBUSY; /* something else is mounted there */
        snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/loop/backing_file", sx.stx_dev_major, sx.stx_dev_minor);
        r = read_full_file(path, PATH_MAX + 16, &backing, NULL);
        if (r < 0)
                return -EBUSY;
        real = realpath(image, NULL);
        r = real && streq(strstrip(backing), real) ? 1 : -EBUSY;
        free(backing);
        return r;
}

/* Mounts the image at the workspace (nodev, nosuid), unless it is there already (a restarted daemon, a
 * sandbox started again). */
static int image_mount(const isolate_sandbox_config *cfg, int wsfd, bool create, bool *ret_image_made,
                       pc_error **reterr)
{
        _cleanup_close_ int img = -EBADF, loop = -EBADF, fs = -EBADF, mnt = -EBADF;
        char dev[32];
        int r;

        r = image_mounted(wsfd, cfg->disk_image);
        if (r == -EBUSY)
                return pc_error_setf(reterr, EBUSY, "workspace",
                                     "sandbox %s: workspace %s is a mount point of something other than its disk "
                                     "image %s",
                                     cfg->name, cfg->workspace, cfg->disk_image);
        if (r < 0)
                return pc_error_setf(reterr, -r, "workspace", "sandbox %s: cannot inspect workspace %s: %s",
                                     cfg->name, cfg->workspace, strerror(-r));
        if (r > 0)
                return 0;
        img = image_open(cfg, create, ret_image_made, reterr);
        if (img < 0)
                return img;
        loop = loop_attach(img, cfg->disk_image, dev);
        if (loop < 0)
                return pc_error_setf(reterr, -loop, "workspace", "sandbox %s: cannot attach %s to a loop device: %s",
                                     cfg->name, cfg->disk_image, strerror(-loop));
        fs = fsopen(IMAGE_FSTYPE, FSOPEN_CLOEXEC);
        if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "source", dev, 0) < 0 ||
            fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return pc_error_setf(reterr, errno, "workspace", "sandbox %s: cannot mount %s (%s): %m", cfg->name,
                                     cfg->disk_image, dev);
        mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID);
        if (mnt < 0 || move_mount(mnt, "", wsfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                return pc_error_setf(reterr, errno, "workspace", "sandbox %s: cannot mount %s at %s: %m", cfg->name,
                                     cfg->disk_image, cfg->workspace);
        /* lost+found belongs to host root: the agent has no use for it. */
        (void) unlinkat(mnt, "lost+found", AT_REMOVEDIR);
        return 0; /* closing the loop fd is fine now: the mount holds the device */
}

int isolate_workspace_limit(const isolate_sandbox_config *cfg, int parentfd, const char *base, bool created,
                            bool *ret_image_made, pc_error **reterr)
{
        _cleanup_close_ int ws = -EBADF;
        int r;

        *ret_image_made = false;
        if (cfg->disk_mode == ISOLATE_DISK_NONE)
                return 0;
        ws = openat(parentfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (ws < 0)
                return pc_error_setf(reterr, errno, "workspace", "sandbox %s: cannot open workspace %s: %m",
                                     cfg->name, cfg->workspace);
        if (cfg->disk_mode == ISOLATE_DISK_IMAGE)
                return image_mount(cfg, ws, created, ret_image_made, reterr);
        r = project_set(ws, cfg->uid_base, cfg->disk_max, cfg->inodes_max);
        if (r < 0)
                return pc_error_setf(reterr, -r, "workspace",
                                     "sandbox %s: cannot set the project quota of workspace %s: %s", cfg->name,
                                     cfg->workspace, strerror(-r));
        return 0;
}

int isolate_workspace_mount(const isolate_sandbox_config *cfg, pc_error **reterr)
{
        _cleanup_free_ char *parent = NULL;
        _cleanup_close_ int pfd = -EBADF;
        const char *base;
        bool made;

        if (cfg->disk_mode != ISOLATE_DISK_IMAGE || isempty(cfg->workspace) || cfg->workspace[0] != '/')
                return 0;
        parent = strndup(cfg->workspace, strrchr(cfg->workspace, '/') - cfg->workspace);
        if (!parent)
                return -ENOMEM;
        base = strrchr(cfg->workspace, '/') + 1;
        pfd = open(isempty(parent) ? "/" : parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0)
                return pc_error_setf(reterr, errno, "workspace", "sandbox %s: cannot open %s: %m", cfg->name, parent);
        return isolate_workspace_limit(cfg, pfd, base, false, &made, reterr);
}

int isolate_workspace_release(const isolate_sandbox_config *cfg, bool purge)
{
        _cleanup_close_ int ws = -EBADF;
        int r = 0;

        if (cfg->disk_mode == ISOLATE_DISK_NONE || !cfg->workspace)
                return 0;
        ws = open(cfg->workspace, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (ws < 0 && errno != ENOENT)
                return -errno;
        if (cfg->disk_mode == ISOLATE_DISK_PROJECT) {
                /* A kept workspace keeps its limit (its files keep the project id); a purged one frees it. */
                if (purge && ws >= 0) {
                        r = project_set(ws, cfg->uid_base, 0, 0);
                        return r == -ESRCH ? 0 : r;
                }
                return 0;
        }
        /* Image: detached from the host's tree; the loop device goes with the last mount (autoclear). */
        if (ws >= 0 && image_mounted(ws, cfg->disk_image) > 0) {
                ws = safe_close(ws);
                if (umount2(cfg->workspace, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
                        return -errno;
        }
        if (purge && cfg->disk_image && unlink(cfg->disk_image) < 0 && errno != ENOENT)
                r = -errno;
        return r;
}

/* ---- removal ---- */

typedef struct dir_id {
        dev_t dev;
        ino_t ino;
} dir_id;

/* Removes every entry of the directory `fd` that is not a non-empty directory. Returns 1 and opens the
 * first non-empty subdirectory in *ret_sub when there is one, 0 when fd is empty now. */
static int remove_entries(int fd, dev_t dev, int *ret_sub)
{
        _cleanup_(closedirp) DIR *d = NULL;
        int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        struct dirent *de;

        if (dfd < 0)
                return -errno;
        d = fdopendir(dfd);
        if (!d) {
                safe_close(dfd);
                return -errno;
        }
        /* Start at the beginning: entries may have been removed since the duplicate's offset was used. */
        rewinddir(d);
        while ((errno = 0, de = readdir(d))) {
                struct stat st;
                int sub;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return -errno;
                if (!S_ISDIR(st.st_mode)) {
                        if (unlinkat(fd, de->d_name, 0) < 0)
                                return -errno;
                        continue;
                }
                if (st.st_dev != dev)
                        return -EXDEV; /* never into another mount */
                if (unlinkat(fd, de->d_name, AT_REMOVEDIR) >= 0)
                        continue;
                if (errno != ENOTEMPTY && errno != EEXIST)
                        return -errno;
                sub = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0)
                        return -errno;
                *ret_sub = sub;
                return 1;
        }
        return errno ? -errno : 0;
}

/* Empties the directory `top` without recursion: at most four fds are open at any depth. It walks down by
 * fd and back up through "..", which must be the directory it came from (device and inode recorded on the
 * way down), so a directory moved meanwhile stops the walk instead of leading it elsewhere. */
static int remove_children(int top)
{
        _cleanup_free_ dir_id *up = NULL;
        _cleanup_close_ int cur = fcntl(top, F_DUPFD_CLOEXEC, 3);
        size_t depth = 0, cap = 0;
        struct stat st;
        dev_t dev;
        int r;

        if (cur < 0)
                return -errno;
        if (fstat(cur, &st) < 0)
                return -errno;
        dev = st.st_dev;
        for (;;) {
                int sub = -EBADF;

                r = remove_entries(cur, dev, &sub);
                if (r < 0)
                        return r;
                if (r > 0) {
                        /* Down into a non-empty subdirectory. */
                        if (fstat(cur, &st) < 0) {
                                safe_close(sub);
                                return -errno;
                        }
                        if (depth == cap) {
                                dir_id *n = reallocarray(up, cap = MAX(cap * 2, 64u), sizeof(*n));
                                if (!n) {
                                        safe_close(sub);
                                        return -ENOMEM;
                                }
                                up = n;
                        }
                        up[depth++] = (dir_id){ st.st_dev, st.st_ino };
                        safe_close(cur);
                        cur = sub;
                        continue;
                }
                if (depth == 0)
                        return 0;
                /* Empty: back up; the parent's next pass removes it. */
                sub = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0)
                        return -errno;
                depth--;
                if (fstat(sub, &st) < 0 || st.st_dev != up[depth].dev || st.st_ino != up[depth].ino) {
                        safe_close(sub);
                        return -ESTALE;
                }
                safe_close(cur);
                cur = sub;
        }
}

int isolate_remove_tree(const char *path)
{
        _cleanup_free_ char *parent = NULL;
        _cleanup_close_ int pfd = -EBADF, fd = -EBADF;
        const char *base;
        int r;

        if (isempty(path) || path[0] != '/')
                return -EINVAL;
        parent = strdup(path);
        if (!parent)
                return -ENOMEM;
        base = strrchr(path, '/') + 1;
        parent[base - path - 1 == 0 ? 1 : base - path - 1] = 0;
        if (isempty(base))
                return -EINVAL;
        pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0)
                return errno == ENOENT ? 0 : -errno;
        fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        r = remove_children(fd);
        if (r < 0)
                return r;
        if (unlinkat(pfd, base, AT_REMOVEDIR) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}
