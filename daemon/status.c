/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <sys/statvfs.h>
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

/* Host capabilities and the workspaces' quota mechanism are probed once at start: they only change with a
 * reboot (or a remount), and probing forks. */
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
        /* Where workspaces live (the state directory itself while none exists yet). */
        {
                _cleanup_free_ char *ws = strjoin(d->config.state_dir, "/workspaces");
                isolate_disk_mode mode;

                if (ws && (isolate_disk_probe(ws, &mode) >= 0 || isolate_disk_probe(d->config.state_dir, &mode) >= 0))
                        d->workspace_quota = isolate_disk_mode_to_string(mode);
        }
        return 0;
}

/* Free and total bytes of the state directory's filesystem, and the reserve new work must leave. */
static int state_space(pc_daemon *d, uint64_t *ret_free, uint64_t *ret_total, uint64_t *ret_reserve)
{
        struct statvfs sv;

        if (statvfs(d->config.state_dir, &sv) < 0)
                return -errno;
        *ret_free = (uint64_t) sv.f_bavail * sv.f_frsize;
        *ret_total = (uint64_t) sv.f_blocks * sv.f_frsize;
        *ret_reserve = d->config.state_reserve_percent ? *ret_total / 100 * d->config.state_reserve_percent
                                                       : d->config.state_reserve;
        return 0;
}

int pc_state_space_check(pc_daemon *d, pc_error **reterr)
{
        uint64_t avail = 0, total = 0, reserve = 0;
        int r;

        r = state_space(d, &avail, &total, &reserve);
        if (r < 0)
                return pc_error_setf(reterr, -r, "internal", "state directory %s: %s", d->config.state_dir,
                                     strerror(-r));
        if (avail < reserve)
                return pc_error_setf(reterr, EDQUOT, "insufficient_storage",
                                     "the state directory's filesystem (%s) has %" PRIu64 " MiB free, less than the "
                                     "%" PRIu64 " MiB reserve (state_reserve): free space there before creating or "
                                     "starting sandboxes or building images",
                                     d->config.state_dir, avail >> 20, reserve >> 20);
        return 0;
}

/* "state": the state filesystem's space, now; "workspace_quota": how new workspaces' limits are enforced
 * (probed at start, like the host's capabilities: /v1/status is polled and must stay cheap). */
static void status_storage(pc_daemon *d, json_t *j)
{
        uint64_t avail = 0, total = 0, reserve = 0;

        if (state_space(d, &avail, &total, &reserve) >= 0)
                json_object_set_new(j, "state", json_pack("{s:s, s:I, s:I, s:I}", "path", d->config.state_dir,
                                                          "free_bytes", (json_int_t) avail, "total_bytes",
                                                          (json_int_t) total, "reserve_bytes", (json_int_t) reserve));
        if (d->workspace_quota)
                json_object_set_new(j, "workspace_quota", json_string(d->workspace_quota));
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
        status_storage(d, j);
        *ret = j;
        return 0;
}
