/* SPDX-License-Identifier: MIT */
/* Host capability probe: what this kernel lets us build a sandbox from. Each probe asks the kernel
 * directly (a syscall with harmless arguments, or an unshare in a short-lived child), because config
 * files and version numbers lie (backports, disabled sysctls, seccomp'd containers). */
#include <fcntl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#if HAVE_LINUX_OPENAT2_H
#include <linux/openat2.h>
#endif

#include "cgroup-internal.h"
#include "isolate-internal.h"
#include "common.h"
#include "isolate.h"

#ifndef SECCOMP_GET_ACTION_AVAIL
#define SECCOMP_GET_ACTION_AVAIL 2
#endif
#ifndef SECCOMP_GET_NOTIF_SIZES
#define SECCOMP_GET_NOTIF_SIZES 3
#endif
#ifndef SECCOMP_RET_USER_NOTIF
#define SECCOMP_RET_USER_NOTIF 0x7fc00000U
#endif

static const struct {
        const char *proc_name; /* /proc/self/ns/<name> */
        int flag;
        size_t offset;
} namespaces[] = {
        {"mnt", CLONE_NEWNS, offsetof(isolate_host_caps, ns_mount)},
        {"pid", CLONE_NEWPID, offsetof(isolate_host_caps, ns_pid)},
        {"net", CLONE_NEWNET, offsetof(isolate_host_caps, ns_net)},
        {"uts", CLONE_NEWUTS, offsetof(isolate_host_caps, ns_uts)},
        {"ipc", CLONE_NEWIPC, offsetof(isolate_host_caps, ns_ipc)},
        {"cgroup", CLONE_NEWCGROUP, offsetof(isolate_host_caps, ns_cgroup)},
        /* Last: once in a new user namespace, the child holds every capability there, which would let
         * the other unshare() calls succeed even where the host forbids them. */
        {"user", CLONE_NEWUSER, offsetof(isolate_host_caps, ns_user)},
};

/* One forked child tries to unshare each namespace type in turn and reports success as a bit in its
 * exit status. The child exists for a few microseconds; the namespaces die with it. */
static int probe_namespaces(isolate_host_caps *caps)
{
        unsigned present = 0;
        int status;
        pid_t pid;

        for (size_t i = 0; i < ELEMENTSOF(namespaces); i++) {
                char path[64];

                snprintf(path, sizeof(path), "/proc/self/ns/%s", namespaces[i].proc_name);
                if (access(path, F_OK) >= 0)
                        present |= 1U << i;
        }

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                unsigned ok = 0;

                for (size_t i = 0; i < ELEMENTSOF(namespaces); i++)
                        if ((present & (1U << i)) && unshare(namespaces[i].flag) >= 0)
                                ok |= 1U << i;
                _exit((int)ok);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (!WIFEXITED(status))
                return -EPROTO;
        for (size_t i = 0; i < ELEMENTSOF(namespaces); i++)
                *(bool *)((char *)caps + namespaces[i].offset) = (WEXITSTATUS(status) & (1U << i)) != 0;
        return 0;
}

static void probe_seccomp(isolate_host_caps *caps)
{
        uint32_t action = SECCOMP_RET_ERRNO;
        struct {
                uint16_t notif, resp, data;
        } sizes;

        /* PR_GET_SECCOMP fails with EINVAL on kernels without CONFIG_SECCOMP; ACTION_AVAIL confirms
         * filter mode (and the errno action we build on) is there. */
        caps->seccomp = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 &&
                        syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) >= 0;
        action = SECCOMP_RET_USER_NOTIF;
        caps->seccomp_user_notif = caps->seccomp &&
                                   syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) >= 0 &&
                                   syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) >= 0;
}

static bool probe_openat2(void)
{
#if HAVE_LINUX_OPENAT2_H && defined(SYS_openat2)
        struct open_how how = {
                .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        int fd = (int)syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how));

        if (fd < 0)
                return false;
        safe_close(fd);
        return true;
#else
        return false;
#endif
}

static bool probe_overlayfs(void)
{
        _cleanup_free_ char *s = NULL;

        if (read_full_file("/proc/filesystems", 1 << 20, &s, NULL) < 0)
                return false;
        /* Lines are "nodev\toverlay"; the module may also be loadable on demand, which we don't count:
         * the daemon must not rely on auto-loading. */
        return strstr(s, "\toverlay\n") != NULL;
}

static bool probe_idmapped_mounts(void)
{
#ifndef SYS_mount_setattr
        return false;
#else
        /* mount_setattr() (Linux 5.12) arrived with idmapped mounts. Invalid arguments reach the
         * syscall's argument checks (EINVAL/EBADF) only where it exists. */
        return !(syscall(SYS_mount_setattr, -1, "", 0, NULL, 0) < 0 && errno == ENOSYS);
#endif
}

static bool probe_pidfd(void)
{
        int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);

        if (fd < 0)
                return false;
        safe_close(fd);
        return true;
}

/* `tmux -V` says "tmux 3.3a". */
static int probe_tmux(char *ret, size_t size)
{
        static const char *const paths[] = { "/usr/bin/tmux", "/usr/local/bin/tmux", "/bin/tmux" };
        char *const argv[] = { (char *) "tmux", (char *) "-V", NULL };
        _cleanup_free_ char *out = NULL;
        char *v;
        int r;

        ret[0] = 0;
        r = isolate_run_tool(paths, ELEMENTSOF(paths), argv, -EBADF, false, 4096, &out);
        if (r < 0)
                return r;
        if (r != 0)
                return -EIO;
        v = strstrip(out);
        if (startswith(v, "tmux "))
                v += 5;
        if (isempty(v) || strlen(v) >= size)
                return -EBADMSG;
        strcpy(ret, v);
        return 0;
}

/* A controller is usable only where we may create groups: a container can show the host's hierarchies
 * mounted read-only (systemd-nspawn on a v1 host does), and saying "available" there would only move
 * the failure to the first sandbox. */
static bool cgroup_writable(const cgroup_layout *l, cgroup_v1_controller c)
{
        const char *dir = l->version == ISOLATE_CGROUP_V2 ? l->v2_base : l->v1_mount[c];

        return dir && access(dir, W_OK) == 0;
}

int isolate_host_caps_probe(isolate_host_caps *ret)
{
        isolate_host_caps caps = {};
        cgroup_layout l = {};
        struct utsname u;
        int r;

        r = probe_namespaces(&caps);
        if (r < 0)
                return r;

        r = cgroup_layout_detect(&l);
        if (r < 0)
                return r;
        caps.cgroup_version = l.version;
        caps.cgroup_memory = l.memory && cgroup_writable(&l, CGROUP_V1_MEMORY);
        caps.cgroup_pids = l.pids && cgroup_writable(&l, CGROUP_V1_PIDS);
        caps.cgroup_cpu = l.cpu && cgroup_writable(&l, CGROUP_V1_CPU);
        cgroup_layout_done(&l);

        probe_seccomp(&caps);
        caps.openat2 = probe_openat2();
        caps.overlayfs = probe_overlayfs();
        caps.idmapped_mounts = probe_idmapped_mounts();
        caps.pidfd = probe_pidfd();
        (void)probe_tmux(caps.tmux_version, sizeof(caps.tmux_version)); /* missing tmux: empty string */
        if (uname(&u) < 0)
                return -errno;
        snprintf(caps.kernel_release, sizeof(caps.kernel_release), "%s", u.release);
        *ret = caps;
        return 0;
}
