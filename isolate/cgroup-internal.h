/* SPDX-License-Identifier: MIT */
/* Private to isolate/: how the cgroup hierarchies of this host are laid out (shared with hostcaps.c, which
 * reports it), and the table of operations behind isolate_cgroup_*(): one implementation per version,
 * cgroup-v1.c and cgroup-v2.c, chosen once when a group is made or opened; cgroup.c holds what both
 * share (detection, file helpers, the public functions that dispatch). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "isolate.h"

/* The name of the leaf the daemon moves itself into on cgroup v2 when its own group has to become an
 * inner node ("no internal processes" rule), as systemd services with Delegate=yes do. */
#define CGROUP_DAEMON_LEAF "daemon"

typedef enum {
        CGROUP_V1_MEMORY,
        CGROUP_V1_PIDS,
        CGROUP_V1_CPU,
        CGROUP_V1_CPUACCT,
        _CGROUP_V1_MAX,
} cgroup_v1_controller;

typedef struct cgroup_layout {
        isolate_cgroup_version version;
        bool memory, pids, cpu; /* usable on `version` */
        /* v2: absolute directory of the group delegated to us: the daemon's own cgroup, or its parent
         * when the daemon already lives in the CGROUP_DAEMON_LEAF leaf. */
        char *v2_base;
        bool v2_base_is_root; /* the hierarchy's root: exempt from the no-internal-processes rule */
        char *v1_mount[_CGROUP_V1_MAX]; /* v1: mount point of each controller's hierarchy, or NULL */
} cgroup_layout;

int cgroup_layout_detect(cgroup_layout *ret);
void cgroup_layout_done(cgroup_layout *l);

extern const char *const cgroup_v1_controller_name[_CGROUP_V1_MAX];

typedef struct cgroup_ops cgroup_ops;

struct isolate_cgroup {
        const cgroup_ops *ops;
        char *path;                   /* v2: the leaf; v1: the leaf in the memory hierarchy */
        int fd;                       /* v2: O_DIRECTORY fd of the leaf; -EBADF on v1 */
        char *v1_dir[_CGROUP_V1_MAX]; /* v1: the leaf in each controller's hierarchy, or NULL */
};

typedef int (*cgroup_dir_func)(int dirfd, const char *path, void *userdata);

struct cgroup_ops {
        isolate_cgroup_version version;
        /* Makes (create: with the parent, as needed) or opens the group PARENT/NAME. */
        int (*make)(const cgroup_layout *l, const char *parent_name, const char *sandbox_name, bool create,
                    isolate_cgroup **ret, pc_error **reterr);
        /* Calls f on an O_DIRECTORY fd of every distinct directory of the group. */
        int (*for_each_dir)(isolate_cgroup *cg, cgroup_dir_func f, void *userdata);
        /* How a new process enters the group: an fd for clone3(CLONE_INTO_CGROUP) (v2), or files the
         * child writes itself into (v1); the other one is -EOPNOTSUPP. */
        int (*clone_fd)(isolate_cgroup *cg);
        int (*join_open)(isolate_cgroup *cg, isolate_cgroup_join *ret);
        int (*set_limits)(isolate_cgroup *cg, const isolate_limits *limits);
        int (*usage)(isolate_cgroup *cg, isolate_usage *ret);
        /* Kills every process and waits until the group is empty, until `deadline` (CLOCK_MONOTONIC). */
        int (*kill)(isolate_cgroup *cg, uint64_t deadline);
        int (*destroy)(isolate_cgroup *cg);
        /* The distinct directories of the parent group PARENT (one per hierarchy), NULL-terminated. */
        int (*parent_dirs)(const cgroup_layout *l, const char *parent_name, char *ret[_CGROUP_V1_MAX + 1]);
};

extern const cgroup_ops cgroup_v1_ops, cgroup_v2_ops;

/* ---- shared by both versions (cgroup.c) ---- */

/* Cgroup files want one write() per value. */
int cg_write(int dirfd, const char *file, const char *value);
int cg_write_u64(int dirfd, const char *file, uint64_t v, bool zero_is_max, const char *max_word);
int cg_read(int dirfd, const char *file, char **ret);
int cg_read_u64(int dirfd, const char *file, uint64_t *ret);
/* Reads "KEY VALUE" out of a flat-keyed file such as cpu.stat or memory.events. */
int cg_read_key(int dirfd, const char *file, const char *key, uint64_t *ret);
bool word_in_list(const char *list, const char *word, const char *seps);
int open_dir(const char *path);
int mkdir_group(int dirfd, const char *name, bool must_be_empty);
int usec_left_ms(uint64_t deadline);
/* SIGKILL through pidfds, repeated until the group is empty (v1, and v2 before cgroup.kill). */
int kill_loop(isolate_cgroup *cg, uint64_t deadline);
/* Removes the (empty) child groups of `path`, one level (the daemon's per-exec groups), so that it can go. */
void remove_child_groups(const char *path);
isolate_cgroup *cgroup_new(const cgroup_ops *ops);
DEFINE_TRIVIAL_CLEANUP_FUNC(isolate_cgroup *, isolate_cgroup_free);
