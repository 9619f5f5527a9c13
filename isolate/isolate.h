/* SPDX-License-Identifier: MIT */
/* isolate: the sandbox mechanism (namespaces, mounts, cgroups, seccomp, capabilities, network). It knows
 * nothing of HTTP, JSON or SQL. Functions return 0/positive or negative errno; where a person needs
 * words they take a pc_error **reterr last. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct pc_error pc_error;

/* ---- host capabilities (hostcaps.c) ---- */

typedef enum {
        ISOLATE_CGROUP_NONE = 0,
        ISOLATE_CGROUP_V1 = 1,
        ISOLATE_CGROUP_V2 = 2,
} isolate_cgroup_version;

typedef struct isolate_host_caps {
        isolate_cgroup_version cgroup_version; /* v2 if a cgroup2 hierarchy with the needed controllers */
        bool cgroup_memory, cgroup_pids, cgroup_cpu; /* controllers usable on the chosen version */
        bool ns_user, ns_mount, ns_pid, ns_net, ns_uts, ns_ipc, ns_cgroup;
        bool seccomp, seccomp_user_notif;
        bool openat2;
        bool overlayfs;
        bool idmapped_mounts;
        bool pidfd;
        char tmux_version[32]; /* "3.3a", empty when tmux is missing */
        char kernel_release[65];
} isolate_host_caps;

/* Probes the running kernel once (cheap: no namespaces are created for long). */
int isolate_host_caps_probe(isolate_host_caps *ret);

/* ---- cgroups (cgroup.c): v2 primary, v1 fallback ---- */

typedef struct isolate_limits {
        uint64_t memory_max;  /* bytes, 0 = unlimited */
        uint64_t swap_max;    /* bytes; v2 memory.swap.max, v1 memsw = memory_max + swap_max */
        uint64_t pids_max;    /* 0 = unlimited */
        uint64_t cpu_quota_us; /* per cpu_period_us; 0 = unlimited (e.g. 1.5 cpus = 150000/100000) */
        uint64_t cpu_period_us;
        uint64_t cpu_weight;   /* share of CPU time against sibling groups when CPUs are contended, 1..10000
                                * (v2 cpu.weight; v1 cpu.shares = weight * 1024 / 100); 0 = 100, the
                                * kernel's default, written anyway so the group is weighted */
} isolate_limits;

typedef struct isolate_usage {
        uint64_t memory_current, memory_peak;
        uint64_t pids_current;
        uint64_t cpu_usage_usec;
        uint64_t oom_kills;
} isolate_usage;

typedef struct isolate_cgroup isolate_cgroup;

/* Detects the hierarchy to use: cgroup v2 when a unified hierarchy with memory+pids+cpu controllers
 * is available (delegated subtree under the daemon's own cgroup), else v1 (memory, pids, cpu
 * hierarchies). `parent_name` is our top-level group name (e.g. "pocketcoder"). */
int isolate_cgroup_new(const char *parent_name, const char *sandbox_name, const isolate_limits *limits,
                       isolate_cgroup **ret, pc_error **reterr);
/* Re-opens an existing sandbox cgroup (daemon restart) without changing limits. */
int isolate_cgroup_open(const char *parent_name, const char *sandbox_name, isolate_cgroup **ret);
int isolate_cgroup_attach(isolate_cgroup *cg, pid_t pid);
/* v2 only: an O_DIRECTORY fd of the leaf for clone3(CLONE_INTO_CGROUP); -EOPNOTSUPP on v1. The fd is
 * owned by cg (valid until isolate_cgroup_free(); do not close it). */
int isolate_cgroup_fd(isolate_cgroup *cg);
/* v1 only: how a new process joins cg without the cost of isolate_cgroup_attach(). Writing a pid to
 * cgroup.procs takes the kernel's global threadgroup lock for writing, which waits for an RCU grace period
 * (0.1-15 ms on a busy host); a thread that writes "0" (itself) to a hierarchy's "tasks" file skips that
 * lock. The privileged parent opens the files (the kernel checks the opener's credentials), the new,
 * still single-threaded child writes them, first thing. -EOPNOTSUPP on v2: use clone3(CLONE_INTO_CGROUP). */
#define ISOLATE_CGROUP_JOIN_MAX 4
typedef struct isolate_cgroup_join {
        int fd[ISOLATE_CGROUP_JOIN_MAX];
        size_t n;
} isolate_cgroup_join;
int isolate_cgroup_join_open(isolate_cgroup *cg, isolate_cgroup_join *ret);
int isolate_cgroup_join_self(isolate_cgroup_join *j); /* in the child; closes the files */
void isolate_cgroup_join_close(isolate_cgroup_join *j);
int isolate_cgroup_set_limits(isolate_cgroup *cg, const isolate_limits *limits);
int isolate_cgroup_usage(isolate_cgroup *cg, isolate_usage *ret);
/* Kills every process in the group (cgroup.kill on v2, SIGKILL loop on v1) and waits until empty. */
int isolate_cgroup_kill(isolate_cgroup *cg);
/* Removes the group (must be empty). */
int isolate_cgroup_destroy(isolate_cgroup *cg);
const char *isolate_cgroup_path(const isolate_cgroup *cg); /* e.g. "/sys/fs/cgroup/pocketcoder/NAME" */
isolate_cgroup_version isolate_cgroup_get_version(const isolate_cgroup *cg);
isolate_cgroup *isolate_cgroup_free(isolate_cgroup *cg); /* frees memory only; does not remove */
/* Lists sandbox names that have a cgroup under parent_name (for cleanup of leftovers). The result is a
 * NULL-terminated array; free each string and the array. */
int isolate_cgroup_list(const char *parent_name, char ***ret_names);
/* Removes the (empty) parent group in every hierarchy; -EBUSY while sandboxes remain. Idempotent. */
int isolate_cgroup_destroy_parent(const char *parent_name);

/* ---- the per-daemon id (daemon-id.c) ---- */

/* Every host-side name of a sandbox (cgroup group, veth, nftables set elements) contains the id of the
 * daemon that made it, so two daemons on one host, even with the same sandbox names, never touch each
 * other's objects. A daemon generates it once (6 random hex digits) and stores it. */
#define ISOLATE_DAEMON_ID_LEN 6
int isolate_daemon_id_new(char ret[static ISOLATE_DAEMON_ID_LEN + 1]);
bool isolate_daemon_id_is_valid(const char *id); /* exactly ISOLATE_DAEMON_ID_LEN of [0-9a-f] */
/* The cgroup group that holds one daemon's sandboxes: "PARENT-ID" (just PARENT without an id), in the
 * delegated subtree on v2, at the top of every hierarchy on v1. */
int isolate_cgroup_parent_name(const char *parent, const char *daemon_id, char **ret);

/* ---- network (net.c, libnl) ---- */

typedef enum {
        ISOLATE_NET_NONE = 0,     /* own netns, lo only and DOWN: no route at all, even 127.0.0.1 fails */
        ISOLATE_NET_LOOPBACK = 1, /* own netns, lo up */
        ISOLATE_NET_EGRESS = 2,   /* veth to the host, NAT out, host itself unreachable */
} isolate_net_mode;

typedef struct isolate_net_config {
        isolate_net_mode mode;
        uint32_t index;            /* per-sandbox number: the index-th /30 of subnet (.1 host, .2 sandbox) */
        const char *subnet;        /* e.g. "10.88.0.0/16" (configurable private range) */
        const char *host_ifname;   /* e.g. "pc-NAME" truncated to 15 chars; NULL = derived */
        const char *nft_table;     /* nftables inet table; NULL = "pocketcoder" (tests use their own) */
        const char *daemon_id;     /* isolate_daemon_id_is_valid() or NULL; names the host veth (see below)
                                    * and the table (nft_table + "_" + id); isolate_sandbox_create() fills it
                                    * in from its own config */
        const char *egress_allow;  /* comma-separated IPv4 prefixes EGRESS may reach although they are in the
                                    * default-blocked ranges (private, link-local, CGNAT, multicast, ...);
                                    * NULL or "": none. See isolate_net_prefix_list_check(). */
} isolate_net_config;

/* Checks a comma-separated list of IPv4 prefixes "A.B.C.D/N" (or "A.B.C.D" for a /32) without host bits,
 * blanks around entries allowed. -EINVAL with the offset of the bad entry and the reason. */
int isolate_net_prefix_list_check(const char *list, size_t *ret_offset, const char **ret_why);

/* A running EGRESS sandbox, for isolate_net_table_reset(). */
typedef struct isolate_net_sandbox {
        const char *name;
        uint32_t index;
} isolate_net_sandbox;

/* Replaces the daemon's nftables table (cfg->nft_table, cfg->daemon_id) in one transaction: with n == 0 it
 * is deleted (a clean stop with no EGRESS sandbox left, or a stale table at start); otherwise it is rebuilt
 * with the current rules (cfg->egress_allow, the host's resolvers) and exactly these sandboxes' elements. */
int isolate_net_table_reset(const isolate_net_config *cfg, const isolate_net_sandbox *running, size_t n,
                            pc_error **reterr);

/* Configures the network of the netns `netns_fd` (an fd of /proc/PID/ns/net). For EGRESS creates the
 * veth pair, moves one end inside as eth0, assigns addresses and default route, enables forwarding
 * and installs NAT + a filter that blocks the host itself (nftables table "pocketcoder"). */
int isolate_net_setup(int netns_fd, const char *sandbox_name, const isolate_net_config *cfg, pc_error **reterr);
/* Removes the host side (veth, NAT rules) of a sandbox; idempotent. */
int isolate_net_teardown(const char *sandbox_name, const isolate_net_config *cfg);
/* The host-side veth name: cfg->host_ifname if set. With a daemon id ID: "pcID-NAME" when it fits in 15
 * chars, else "pcID_" + cfg->index in hex (unique among one daemon's sandboxes). Without one: "pc-NAME"
 * when it fits, else "pc_" + 12 hex digits of a hash of NAME. '_' never occurs in sandbox names, so the
 * forms cannot collide, and two daemons with different ids never name the same interface. */
int isolate_net_host_ifname(const char *sandbox_name, const isolate_net_config *cfg, char ret[static 16]);
/* Contents for the sandbox's /etc/resolv.conf: for EGRESS the host's non-loopback IPv4 nameservers
 * (falling back to systemd-resolved's upstream list), since the host itself is unreachable; for the other
 * modes a comment only. */
int isolate_net_resolv_conf(const isolate_net_config *cfg, char **ret);

/* ---- sandboxes (sandbox.c etc.) ---- */

/* The syscall filter: a deny-list at least as strict as Docker's default profile (docs/security.md has
 * the table), native ABI only (32-bit and x32 syscalls kill the process). Compiled with libseccomp in
 * the parent and exported as classic BPF into a sealed memfd (`*ret_memfd`, O_CLOEXEC): compile once,
 * pass it to every sandbox; children only load it. */
int isolate_seccomp_compile(int *ret_memfd, pc_error **reterr);

#define ISOLATE_NOFILE_DEFAULT 4096u
/* /tmp and /dev/shm are tmpfs of min(memory_max / ISOLATE_TMPFS_MEMORY_DIVISOR, ISOLATE_TMPFS_MAX) bytes
 * each (ISOLATE_TMPFS_MAX without a memory limit): their pages are charged to the sandbox's memory, so
 * together they stay below the limit and a full /tmp is ENOSPC, not an OOM kill. */
#define ISOLATE_TMPFS_MEMORY_DIVISOR 4u
#define ISOLATE_TMPFS_MAX (1ULL << 30)
uint64_t isolate_tmpfs_size(const isolate_limits *limits); /* limits may be NULL (unlimited) */
/* The OOM killer's choice inside a sandbox: init gets -1000 (exempt) when the daemon holds CAP_SYS_RESOURCE,
 * otherwise it keeps the daemon's score; everything else inside (tmux, the agent's processes, execs) gets
 * this, so a memory hog is killed and init, whose death stops the sandbox, is not. */
#define ISOLATE_OOM_SCORE_ADJ 500
#define ISOLATE_AGENT_UID   1000u
#define ISOLATE_AGENT_GID   1000u
#define ISOLATE_WORKSPACE   "/workspace"
/* openat2() of PATH beneath DIRFD, never through a symlink, a magic link or "..": what the host uses for
 * anything a sandbox could have planted (O_CLOEXEC added). Negative errno (ELOOP: a symlink, EXDEV: out). */
int isolate_openat_beneath(int dirfd, const char *path, int flags, mode_t mode);
/* tmux's socket, a path inside the sandbox (a tmpfs /run; /run/tmux is the agent's, mode 0700). The host
 * never opens it by path: it runs tmux inside with isolate_sandbox_tmux()/isolate_sandbox_exec(). */
#define ISOLATE_TMUX_SOCKET "/run/tmux/agent.sock"

/* Inside every sandbox: the daemon's API socket for the agent (in a read-only bind mount of the daemon's
 * host directory for this sandbox at /run/pocketcoder). */
#define ISOLATE_API_SOCKET  "/run/pocketcoder/api.sock"

/* How a workspace's block and inode limit is enforced (workspace.c). */
typedef enum {
        ISOLATE_DISK_NONE = 0,    /* no limit */
        ISOLATE_DISK_PROJECT = 1, /* a project quota (id = uid_base) on the filesystem that holds the workspace */
        ISOLATE_DISK_IMAGE = 2,   /* an ext4 image of its own (sparse file) on a loop device, mounted as the
                                   * workspace (nodev, nosuid) */
} isolate_disk_mode;

#define ISOLATE_DISK_MIN (16u << 20) /* smallest disk limit: an ext4 image with a journal needs room */
const char *isolate_disk_mode_to_string(isolate_disk_mode m); /* "none", "project", "image" */
int isolate_disk_mode_from_string(const char *s);
/* PROJECT when the filesystem holding `dir` enforces project quotas (ext4 with the quota and project
 * features mounted with prjquota, xfs with pquota), else IMAGE when loop devices can be made, else NONE
 * (no mechanism on this host). */
int isolate_disk_probe(const char *dir, isolate_disk_mode *ret);

typedef struct isolate_sandbox_config {
        const char *name;      /* name_is_valid(); the hostname and the tmux session name */
        const char *daemon_id; /* isolate_daemon_id_is_valid(), or NULL (tests, tools): host-side names
                                * (cgroup group, veth, nftables elements) contain it */
        const char *workspace; /* absolute host directory, bound read-write at /workspace (nosuid,nodev).
                                * create() makes it when missing (parents 0750 root) and hands its top to
                                * uid_base + ISOLATE_AGENT_UID, mode 0750; its last component must not be
                                * a symlink. Kept by destroy() unless ISOLATE_DESTROY_PURGE_WORKSPACE */
        uid_t uid_base;        /* host uid and gid that sandbox uid/gid 0 maps to; never 0 */
        uint32_t uid_count;    /* size of the range (65536 recommended); must exceed ISOLATE_AGENT_UID */
        const char *rootfs_image; /* NULL: the "host" layout; else an image directory used read-only as
                                   * the lower layer of an overlay (image mode) */
        const char *overlay_dir;  /* image mode: per-sandbox directory for upper/ and work/ (the sandbox's
                                   * changes to its root: kept by destroy() unless ISOLATE_DESTROY_ROOTFS) */
        const char *resolv_conf;  /* contents of /etc/resolv.conf; NULL: copy the host's */
        const char *cgroup_parent; /* name_is_valid(): the sandbox's group is
                                    * isolate_cgroup_parent_name(cgroup_parent, daemon_id)/NAME, created
                                    * with `limits`; NULL: no cgroup of its own (no limits) */
        const isolate_limits *limits; /* with cgroup_parent; NULL: unlimited */
        isolate_cgroup *cgroup;   /* borrowed, overrides cgroup_parent: a group the caller opened itself
                                   * (adopt/exec by a tool); create() and destroy() never remove it */
        const isolate_net_config *net; /* NULL: own netns with lo only, nobody configures it */
        const char *api_socket_dir; /* host directory (root's, not writable by the sandbox) holding the
                                     * daemon's listening socket "api.sock", bind-mounted read-only at
                                     * /run/pocketcoder: the socket is ISOLATE_API_SOCKET inside. A
                                     * directory, not the socket: one bound again after a daemon restart is
                                     * seen inside. The agent needs write permission on the socket file
                                     * itself. NULL: none */
        int seccomp_fd;           /* from isolate_seccomp_compile(); negative: compile here */
        uint64_t nofile_max;      /* hard and soft RLIMIT_NOFILE of every process inside (init, tmux, execs);
                                   * 0: ISOLATE_NOFILE_DEFAULT. Nothing inside can raise it (that takes
                                   * CAP_SYS_RESOURCE on the host) */
        uint64_t ready_timeout_usec; /* bound on waiting for tmux; 0: 10 s */
        /* The workspace's limits, applied by create() before anything runs: disk_max bytes (also every
         * process' RLIMIT_FSIZE) and inodes_max files (0: the image's mkfs default; no inode limit with
         * a project quota). Kept with the workspace when it is kept. */
        isolate_disk_mode disk_mode;
        uint64_t disk_max, inodes_max;
        const char *disk_image; /* IMAGE: the image file (made on first use; removed when purged) */
} isolate_sandbox_config;

typedef struct isolate_sandbox isolate_sandbox;

/* Builds the whole sandbox, in this order: workspace, cgroup with its limits, overlay (image mode), then a
 * child in new user, mount, pid, net, uts, ipc and cgroup namespaces; its network (veth + nftables
 * elements for EGRESS) is configured from outside while it waits; it builds its root, drops privileges,
 * becomes PID 1 (a small init that reaps and forwards signals) and starts tmux as the agent with a session
 * named cfg->name in /workspace. Returns once the tmux session exists. On failure everything this call
 * made is removed again (a workspace or overlay that existed before is kept) and *reterr names the failed
 * step ("sandbox foo: attach /usr: ..."). The sandbox does not depend on the caller: it is in its own
 * session, without parent-death signal, and keeps running when the daemon exits. */
int isolate_sandbox_create(const isolate_sandbox_config *cfg, isolate_sandbox **ret, pc_error **reterr);

/* What isolate_sandbox_destroy() removes besides the runtime objects. */
enum {
        ISOLATE_DESTROY_ROOTFS = 1 << 0,            /* the overlay directory (image mode) */
        ISOLATE_DESTROY_PURGE_WORKSPACE = 1 << 1,   /* the workspace, without following its symlinks, and
                                                     * its disk image or quota */
        ISOLATE_DESTROY_RELEASE_WORKSPACE = 1 << 2, /* unmount its disk image from the host (kept) */
};

/* Stop and delete, one idempotent call that needs no handle (a daemon that crashed has none): kills
 * every process of the sandbox (gracefully through `sb`'s init when given: SIGTERM, up to 5 s, SIGKILL;
 * then whatever is left in its cgroup), removes its cgroup group, host veth and nftables elements, and,
 * with `flags`, its root overlay and workspace. Without flags it is "stopped": nothing runs and no runtime
 * object is left on the host, and create() with the same config brings it back with its data. Objects
 * already gone are fine; the first real failure is returned (the rest is still attempted). */
int isolate_sandbox_destroy(const isolate_sandbox_config *cfg, isolate_sandbox *sb, unsigned flags,
                            pc_error **reterr);

/* Re-attaches to a running sandbox (daemon restart): opens a pidfd for `pid` and checks that its start
 * time (field 22 of /proc/PID/stat) is `starttime`, so a reused pid is never adopted. -ESRCH when the
 * sandbox is gone. cfg supplies name, uid range, cgroup (re-opened, never re-created) and seccomp filter
 * for later execs; nothing on the host changes. */
int isolate_sandbox_adopt(const isolate_sandbox_config *cfg, pid_t pid, uint64_t starttime,
                          isolate_sandbox **ret);

/* Processes only: SIGTERM to init (which forwards it and exits when its children are gone), wait up to
 * timeout_usec (0: 5 s) on the pidfd, then SIGKILL; then kills what is left in the cgroup. Host objects
 * stay (see isolate_sandbox_destroy()). Idempotent. */
int isolate_sandbox_stop(isolate_sandbox *sb, uint64_t timeout_usec);
/* Frees memory and closes the pidfd; does not stop the sandbox. */
isolate_sandbox *isolate_sandbox_free(isolate_sandbox *sb);

bool isolate_sandbox_is_running(const isolate_sandbox *sb);
const char *isolate_sandbox_name(const isolate_sandbox *sb);
pid_t isolate_sandbox_pid(const isolate_sandbox *sb);     /* init, host pid namespace */
int isolate_sandbox_pidfd(const isolate_sandbox *sb);     /* owned by sb */
uint64_t isolate_sandbox_starttime(const isolate_sandbox *sb); /* record it for isolate_sandbox_adopt() */
uid_t isolate_sandbox_uid_base(const isolate_sandbox *sb);
/* The sandbox's cgroup (NULL without one): its path, and what it uses. */
const char *isolate_sandbox_cgroup_path(const isolate_sandbox *sb);
int isolate_sandbox_usage(isolate_sandbox *sb, isolate_usage *ret);

/* Field 22 of /proc/PID/stat (clock ticks since boot). */
int isolate_pid_starttime(pid_t pid, uint64_t *ret);

typedef struct isolate_exec_options {
        const char *const *argv; /* argv[0] without '/' is searched in the sandbox's PATH */
        const char *cwd;         /* inside the sandbox; NULL: /workspace */
        bool as_root;            /* sandbox root (still unprivileged on the host) instead of the agent */
        bool tty;                /* stdin is a terminal: make it the controlling terminal */
        const char *term;        /* TERM; NULL: "xterm-256color" */
        int stdin_fd, stdout_fd, stderr_fd; /* negative: /dev/null */
} isolate_exec_options;

/* Runs a process inside a running sandbox with exactly the restrictions the agent's commands get: it
 * joins all of the sandbox's namespaces and its cgroup, drops to the minimal bounding set, sets
 * no_new_privs, becomes the agent (or sandbox root), loads the same seccomp filter, closes every other
 * fd and execs with the clean environment (PATH, HOME, USER, LANG, TERM). The process is a child of the
 * caller: wait on *ret_pidfd (waitid(P_PIDFD, ...)). Fails (without leaving a process) when anything
 * before the exec fails, including the exec itself. */
int isolate_sandbox_exec(isolate_sandbox *sb, const isolate_exec_options *opts, pid_t *ret_pid,
                         int *ret_pidfd, pc_error **reterr);

/* Runs `tmux -S ISOLATE_TMUX_SOCKET ARGS...` inside as the agent, collecting stdout (up to 4 MiB).
 * Returns tmux's exit status (>= 0) and the output; negative errno when it could not run. */
int isolate_sandbox_tmux(isolate_sandbox *sb, const char *const *args, char **ret_output, pc_error **reterr);

/* Removes the directory `path` and everything below it (the workspace, an overlay) iteratively: a bounded
 * number of fds at any depth, no path lengths, never following a symlink or crossing a mount point. 0
 * when it does not exist; on failure what is left stays and the first error is returned. */
int isolate_remove_tree(const char *path);

/* Applies cfg's disk limit to the workspace `base` in the directory parentfd (workspace.c; create() calls
 * it); `created`: the workspace is new, so its image may be made (*ret_image_made). */
int isolate_workspace_limit(const isolate_sandbox_config *cfg, int parentfd, const char *base, bool created,
                            bool *ret_image_made, pc_error **reterr);
/* Mounts an existing workspace's image again where it is not mounted (a stopped sandbox after a reboot,
 * so that its files can be served); nothing for other modes. */
int isolate_workspace_mount(const isolate_sandbox_config *cfg, pc_error **reterr);
/* Unmounts the workspace's image; with purge also deletes the image or clears the project quota. */
int isolate_workspace_release(const isolate_sandbox_config *cfg, bool purge);
/* Bytes and inodes the workspace uses now; -ENODATA without a limit. */
int isolate_disk_usage(const isolate_sandbox_config *cfg, uint64_t *ret_bytes, uint64_t *ret_inodes);

/* ---- terminals inside a sandbox (pty.c) ---- */

/* Allocates a pseudo-terminal in the sandbox's own devpts (a helper joins its user and mount namespaces and
 * opens /dev/pts/ptmx, checked to be a devpts ptmx) and returns the unlocked master, O_CLOEXEC. */
int isolate_sandbox_openpt(isolate_sandbox *sb, int *ret_master, pc_error **reterr);
/* The slave of `master` (TIOCGPTPEER: no path is looked up), O_RDWR|O_NOCTTY|O_CLOEXEC. */
int isolate_pty_peer(int master);
