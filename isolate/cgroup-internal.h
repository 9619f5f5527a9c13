/* SPDX-License-Identifier: MIT */
/* Private to isolate/: how the cgroup hierarchies of this host are laid out. Shared by cgroup.c (which
 * uses it) and hostcaps.c (which reports it). */
#pragma once

#include <stdbool.h>

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
