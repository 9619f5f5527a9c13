/* SPDX-License-Identifier: MIT */
/* Private to isolate/: the seccomp program and the rootfs plan, shared between seccomp.c, rootfs.c and the
 * sandbox files. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sock_filter;

/* A seccomp program read out of the memfd in the parent, so the child only calls seccomp(2). */
typedef struct isolate_bpf {
        struct sock_filter *insns;
        unsigned short len;
} isolate_bpf;

int isolate_seccomp_read(int memfd, isolate_bpf *ret);
void isolate_bpf_done(isolate_bpf *b);
int isolate_seccomp_install(const isolate_bpf *b); /* async-signal-safe */

/* Everything the child needs to assemble the root, prepared in the parent so that the child does not
 * allocate. */
typedef struct isolate_rootfs_plan {
        const char *name;             /* hostname */
        const char *workspace;        /* host path (for messages; the parent opens it for the child) */
        const char *image;            /* NULL = host layout */
        int image_mount_fd;           /* image mode: detached overlay mount made by the parent */
        const char *api_socket_dir;   /* host directory bound at /run/pocketcoder, or NULL */
        uint64_t tmpfs_size;          /* bytes, each of /tmp and /dev/shm */
        char *etc_passwd, *etc_group, *etc_hosts, *etc_hostname, *etc_resolv, *etc_nsswitch;
        char localtime_target[256];   /* readlink of the host's /etc/localtime, "" when none */
} isolate_rootfs_plan;

/* Parent side: a detached, private clone of the host directory `path` (a final symlink is not followed:
 * -ENOTDIR) with the MOUNT_ATTR_* `attrs`, for the child to attach. The child cannot open host paths
 * itself: its fsuid is the sandbox's, which may not traverse root's directories. */
int isolate_rootfs_clone_dir(const char *path, uint64_t attrs);
/* Child side: builds the new root and pivots into it; `workspace` is isolate_rootfs_clone_dir() of the
 * host workspace, `api_socket_dir` one of plan->api_socket_dir (negative: none). On failure returns
 * negative errno and writes what failed into step (e.g. "attach /usr"). */
int isolate_rootfs_setup(const isolate_rootfs_plan *plan, int workspace, int api_socket_dir, char *step,
                         size_t stepsz);
/* Parent side: fills the generated /etc contents. */
int isolate_rootfs_plan_init(isolate_rootfs_plan *plan, const char *name, const char *workspace,
                             const char *image, const char *resolv_conf);
void isolate_rootfs_plan_done(isolate_rootfs_plan *plan);
/* Parent side, image mode: builds the overlay (lower = image, upper/work in overlay_dir) as a detached
 * mount; the child attaches it as its root. */
int isolate_rootfs_make_overlay(const char *image, const char *overlay_dir, uid_t uid_base, uint32_t uid_count,
                                int *ret_fd);

/* Calls fn on each entry of a comma-separated list, blanks trimmed; stops at the first error, whose entry's
 * offset goes to *ret_offset (net-prefix.c). */
int prefix_list_foreach(const char *list, int (*fn)(const char *s, size_t n, void *userdata), void *userdata,
                        size_t *ret_offset);

/* Runs the first of `paths` that exists (argv[0] names it) with a fixed PATH and LC_ALL=C: stdin from stdin_fd
 * (-1: /dev/null), stdout and, with `with_stderr`, stderr (else /dev/null) read into *ret_output (at most `max`
 * bytes). posix_spawn is vfork-fast and leaves no window where the caller's fds (all O_CLOEXEC) could leak.
 * Returns the exit status (0..255), -ENOENT when none of `paths` exists, -ECHILD when killed by a signal. */
int isolate_run_tool(const char *const *paths, size_t n_paths, char *const *argv, int stdin_fd, bool with_stderr,
                     size_t max, char **ret_output);

