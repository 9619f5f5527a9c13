/* SPDX-License-Identifier: MIT */
/* Private to isolate/: what the sandbox files (sandbox.c lifecycle, sandbox-spawn.c clone and sync,
 * sandbox-init.c PID 1, sandbox-exec.c exec, sandbox-tmux.c) share.
 *
 * Between clone and exec the children use raw syscalls only where glibc keeps per-thread state that a
 * raw clone3() does not reset (setresuid & co. broadcast to the parent's threads; fork() takes malloc
 * locks): the daemon is multi-threaded, its other threads do not exist in the child. Everything the
 * child needs is prepared by the parent before clone, so the child does not allocate. */
#pragma once

#include <linux/capability.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "isolate-internal.h"
#include "isolate.h"

struct clone_args;

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define SANDBOX_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SANDBOX_LANG "C.UTF-8"
#define DEFAULT_TERM "xterm-256color"

#define CAP_BIT(c) (UINT64_C(1) << (c))
/* The bounding set inside every sandbox. All of these act only inside the sandbox's user namespace, on
 * files and processes whose owners are mapped (the sandbox's own range): none of them reaches a host
 * file owned by host root or a host user. Not included, among others: SYS_ADMIN (mount, namespaces),
 * NET_ADMIN and NET_RAW (raw packets, spoofing), SYS_PTRACE, MKNOD, SYS_CHROOT, SETPCAP, SETFCAP,
 * AUDIT_WRITE, SYS_TIME, SYS_MODULE. Only sandbox root (sandbox run/enter --root) has this bounding set:
 * installing packages needs CHOWN, FOWNER, FSETID and DAC_OVERRIDE. init and the agent (the tmux session
 * and every non-root session) have an empty bounding set: no capability, and in particular none of the
 * file-permission overrides (DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID, CHOWN), can ever be regained
 * by anything they run, whatever gap no_new_privs might have. init keeps its few permitted capabilities
 * (it never executes anything itself): the bounding set only limits what execve() grants. */
#define SANDBOX_BOUNDING_KEEP                                                                             \
        (CAP_BIT(CAP_CHOWN) | CAP_BIT(CAP_DAC_OVERRIDE) | CAP_BIT(CAP_FOWNER) | CAP_BIT(CAP_FSETID) |     \
         CAP_BIT(CAP_KILL) | CAP_BIT(CAP_SETGID) | CAP_BIT(CAP_SETUID) | CAP_BIT(CAP_NET_BIND_SERVICE))

struct isolate_sandbox {
        char *name;
        pid_t pid;
        int pidfd;
        uint64_t starttime;
        uid_t uid_base;
        uint32_t uid_count;
        isolate_cgroup *cgroup;
        bool cgroup_owned; /* made or opened by us (freed with the handle), not cfg->cgroup */
        isolate_bpf bpf;
        unsigned cap_last;
        uint64_t nofile_max; /* RLIMIT_NOFILE of everything inside (cfg->nofile_max or the default) */
        uint64_t fsize_max; /* RLIMIT_FSIZE of every process (the disk limit); 0: unlimited */
};

/* ---- parent <-> child messages (SOCK_SEQPACKET: one message per record; sandbox-spawn.c) ---- */

enum {
        MSG_GO = 1,     /* parent -> child: maps written, cgroup joined, network configured */
        MSG_READY = 2,  /* init -> parent: tmux session exists */
        MSG_FAILED = 3, /* child -> parent: `step` failed with `error` */
        MSG_PID = 4,    /* exec helper -> parent: the process' pid, its pidfd as SCM_RIGHTS */
};

typedef struct sync_msg {
        int32_t kind;
        int32_t error; /* positive errno, or the exit status for "start tmux" */
        int32_t value;
        char step[160];
} sync_msg;

void send_msg(int fd, int kind, int error, int value, const char *step);
_noreturn_ void child_fail(int fd, const char *step, int r);
/* Waits up to timeout_msec (-1: forever) for one message; -ETIMEDOUT, or -EPIPE on EOF. */
int recv_msg(int fd, int timeout_msec, sync_msg *ret, int *ret_fd);
int send_pidfd(int fd, pid_t pid, int pidfd);

/* ---- small syscall helpers usable between clone and exec (sandbox-spawn.c) ---- */

pid_t raw_clone3(struct clone_args *args);
pid_t raw_fork(uint64_t flags, int *ret_pidfd);
int raw_pidfd_open(pid_t pid);
int raw_pidfd_send_signal(int pidfd, int sig);
void reset_signals(void);
int close_all_except(const int *keep, size_t n);
int stdio_to_devnull(void);
/* Drops every capability not in `keep` from the bounding set, clears the ambient set. */
int drop_bounding_set(unsigned cap_last, uint64_t keep);
int set_caps(uint64_t caps);
int set_identity(uid_t uid, gid_t gid);
/* Soft and hard limit of `resource` = max (nothing when 0): RLIMIT_NOFILE, RLIMIT_FSIZE (the disk limit). */
int set_rlimit(int resource, uint64_t max);
int write_oom_score_adj(pid_t pid, int adj);
int exec_search(const char *const *argv, char *const *envp);
void make_env(char *envp[6], char bufs[5][128], bool as_root, const char *term);

/* A half-built child: killed and reaped on scope exit unless taken over. */
typedef struct child_guard {
        pid_t pid;
        int pidfd;
} child_guard;
void child_guard_done(child_guard *g);

/* What every child of ours needs before clone: a sync socket pair, and the cgroup fd to clone into
 * (negative on v1, where the child joins after clone instead). The cgroup fd belongs to cg. */
int prepare_child(const char *name, isolate_cgroup *cg, int *ret_parent, int *ret_child, int *ret_cgroup_fd,
                  isolate_cgroup_join *ret_join, pc_error **reterr);

/* ---- the sandbox's PID 1 (sandbox-init.c) ---- */

typedef struct init_ctx {
        const char *name;
        const isolate_rootfs_plan *plan;
        const isolate_bpf *bpf;
        int sync_fd;
        int workspace_fd, api_socket_fd; /* isolate_rootfs_clone_dir() by the parent (api: < 0 = none) */
        isolate_cgroup_join *join; /* v1: the cgroup to move ourselves into, first thing */
        bool late_cgroupns; /* v1 or no cgroup: unshare the cgroup namespace once in the final cgroup */
        unsigned cap_last;
        uint64_t nofile_max;
        uint64_t fsize_max;
} init_ctx;

/* In the cloned child: the privilege sequence, then init's loop; never returns. */
_noreturn_ void init_child(const init_ctx *c);

#define STEP(s) (step = (s))
