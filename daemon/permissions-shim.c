/* SPDX-License-Identifier: MIT */
/* Stand-in for the permission broker until permissions.c is merged: nothing is remembered, and an "ask"
 * cannot be put to a person yet. Deleted at that merge. */
#include "daemon-internal.h"

bool pc_permissions_remembered(pc_daemon *d, const char *sandbox, const char *command, const char *cwd,
                               json_t *decision)
{
        return false;
}

int pc_permissions_ask(pc_daemon *d, const char *sandbox, const char *exec_id, const char *command, const char *cwd,
                       json_t *decision, char ret_id[static 33], pc_error **reterr)
{
        return pc_error_setf(reterr, EOPNOTSUPP, "ask_unavailable", "ask decisions need the permission broker");
}
