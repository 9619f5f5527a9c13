/* SPDX-License-Identifier: MIT */
#include <sys/utsname.h>

#include "daemon-internal.h"
#include "isolate.h"

static const char *cgroup_version_string(isolate_cgroup_version v)
{
        switch (v) {
        case ISOLATE_CGROUP_V2:
                return "v2";
        case ISOLATE_CGROUP_V1:
                return "v1";
        default:
                return "none";
        }
}

/* Host capabilities are probed once at start: they only change with a reboot, and probing forks. */
int pc_daemon_probe_host(pc_daemon *d)
{
        isolate_host_caps c = {};
        json_t *j;
        int r;

        r = isolate_host_caps_probe(&c);
        if (r < 0)
                return r;
        j = json_pack("{s:s, s:{s:s, s:{s:b, s:b, s:b}}, s:{s:b, s:b, s:b, s:b, s:b, s:b, s:b}, s:{s:b, s:b}, "
                      "s:b, s:b, s:b, s:b, s:o}",
                      "kernel", c.kernel_release,
                      "cgroup", "version", cgroup_version_string(c.cgroup_version), "controllers", "memory",
                      c.cgroup_memory, "pids", c.cgroup_pids, "cpu", c.cgroup_cpu,
                      "namespaces", "user", c.ns_user, "mount", c.ns_mount, "pid", c.ns_pid, "net", c.ns_net,
                      "uts", c.ns_uts, "ipc", c.ns_ipc, "cgroup", c.ns_cgroup,
                      "seccomp", "filter", c.seccomp, "user_notif", c.seccomp_user_notif,
                      "openat2", c.openat2, "overlayfs", c.overlayfs, "idmapped_mounts", c.idmapped_mounts,
                      "pidfd", c.pidfd,
                      "tmux", c.tmux_version[0] ? json_string(c.tmux_version) : json_null());
        if (!j)
                return -ENOMEM;
        json_decref(d->host_caps);
        d->host_caps = j;
        return 0;
}

int pc_daemon_status(pc_daemon *d, json_t **ret)
{
        uint64_t up = (now_usec(CLOCK_MONOTONIC) - d->started_monotonic_usec) / 1000000;
        json_t *j;

        j = json_pack("{s:s, s:s, s:I, s:I, s:i, s:i, s:O}", "status", "ok", "version", PACKAGE_VERSION,
                      "uptime_seconds", (json_int_t) up, "started_at",
                      (json_int_t) (d->started_realtime_usec / 1000000), "pid", (int) getpid(),
                      "schema_version", pc_store_schema_version(&d->store), "host",
                      d->host_caps ?: json_null());
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}
