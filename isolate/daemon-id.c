/* SPDX-License-Identifier: MIT */
/* The per-daemon id that every host-side name of a sandbox carries (see isolate.h). */
#include <sys/random.h>

#include "common.h"
#include "isolate.h"

int isolate_daemon_id_new(char ret[static ISOLATE_DAEMON_ID_LEN + 1])
{
        static const char hex[] = "0123456789abcdef";
        uint8_t b[ISOLATE_DAEMON_ID_LEN];

        if (getrandom(b, sizeof(b), 0) != (ssize_t) sizeof(b))
                return errno ? -errno : -EIO;
        for (size_t i = 0; i < ISOLATE_DAEMON_ID_LEN; i++)
                ret[i] = hex[b[i] & 15];
        ret[ISOLATE_DAEMON_ID_LEN] = 0;
        return 0;
}

bool isolate_daemon_id_is_valid(const char *id)
{
        if (!id || strlen(id) != ISOLATE_DAEMON_ID_LEN)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

int isolate_cgroup_parent_name(const char *parent, const char *daemon_id, char **ret)
{
        char *s;

        if (daemon_id && !isolate_daemon_id_is_valid(daemon_id))
                return -EINVAL;
        s = daemon_id ? strjoin(parent, "-", daemon_id) : strdup(parent);
        if (!s)
                return -ENOMEM;
        if (!name_is_valid(s)) {
                free(s);
                return -EINVAL;
        }
        *ret = s;
        return 0;
}
