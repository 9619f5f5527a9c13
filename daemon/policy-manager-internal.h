/* SPDX-License-Identifier: MIT */
/* The daemon's set of loaded policies: files in policy_dir over the embedded defaults, hot-reloaded. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct pc_daemon pc_daemon;

typedef struct pc_embedded_policy {
        const char *name;
        const char *text;
        size_t len;
} pc_embedded_policy;

extern const pc_embedded_policy pc_embedded_policies[]; /* terminated by an entry with name NULL */

typedef struct pc_policy_manager pc_policy_manager;

int pc_policy_manager_new(const char *dir, pc_policy_manager **ret);
pc_policy_manager *pc_policy_manager_free(pc_policy_manager *m);
/* Rescans the directory: changed files are reloaded, broken ones keep their last good version and record
 * the errors, removed ones are dropped. Returns the number of policies whose content changed. */
int pc_policy_manager_reload(pc_policy_manager *m);
/* inotify fd to watch (readable when the directory changed), or negative if watching failed. */
int pc_policy_manager_inotify_fd(pc_policy_manager *m);
/* Drains the inotify fd; returns > 0 when a reload is due. */
int pc_policy_manager_process_inotify(pc_policy_manager *m);
