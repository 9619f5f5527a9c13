/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common.h"

static const char *yesno(json_t *j)
{
        return json_is_true(j) ? "yes" : "no";
}

/* "user mount pid" from {"user":true,"mount":true,...}: the present ones, in the API's order. */
static void print_set(const char *label, json_t *obj)
{
        const char *key;
        json_t *v;
        bool any = false;

        printf("%-12s", label);
        json_object_foreach(obj, key, v) {
                if (json_is_true(v)) {
                        printf("%s%s", any ? " " : "", key);
                        any = true;
                }
        }
        printf("%s", any ? "" : "none");
        json_object_foreach(obj, key, v)
                if (!json_is_true(v))
                        printf(" (missing: %s)", key);
        printf("\n");
}

int cmd_status(int argc, char **argv, const cli_global *g)
{
        _cleanup_json_ json_t *j = NULL;
        json_t *host;

        if (argc > 1) {
                bool h = streq(argv[1], "--help") || streq(argv[1], "-h");
                printf("Usage: pocketcoder status\n\n"
                       "Shows whether pocketcoderd answers, its version and uptime, and what this host's\n"
                       "kernel offers sandboxes (cgroup version and controllers, namespaces, seccomp,\n"
                       "openat2, overlayfs, tmux). Exit status 0 when the daemon is healthy.\n");
                return h ? CLI_EXIT_OK : CLI_EXIT_USAGE;
        }
        if (cli_call(g, "GET", "/v1/status", NULL, 200, &j) < 0)
                return CLI_EXIT_FAILED;
        if (g->json) {
                cli_print_json(j);
                return CLI_EXIT_OK;
        }
        host = json_object_get(j, "host");
        json_t *state = json_object_get(j, "state");
        printf("pocketcoderd %s: %s (pid %lld, up %llds, schema v%lld)\n",
               json_string_value(json_object_get(j, "version")), json_string_value(json_object_get(j, "status")),
               json_integer_value(json_object_get(j, "pid")),
               json_integer_value(json_object_get(j, "uptime_seconds")),
               json_integer_value(json_object_get(j, "schema_version")));
        printf("%-12s%s\n", "api", g->url ?: g->socket);
        if (json_is_object(state))
                printf("%-12s%s: %lld MiB free of %lld MiB (reserve %lld MiB), workspaces bounded by %s\n", "state",
                       json_string_value(json_object_get(state, "path")),
                       json_integer_value(json_object_get(state, "free_bytes")) >> 20,
                       json_integer_value(json_object_get(state, "total_bytes")) >> 20,
                       json_integer_value(json_object_get(state, "reserve_bytes")) >> 20,
                       json_string_value(json_object_get(j, "workspace_quota")) ?: "?");
        if (!json_is_object(host)) {
                printf("%-12s%s\n", "host", "capabilities unknown (probe failed; see the daemon log)");
                return CLI_EXIT_OK;
        }
        printf("%-12s%s\n", "kernel", json_string_value(json_object_get(host, "kernel")));
        json_t *cg = json_object_get(host, "cgroup");
        printf("%-12s%s, ", "cgroup", json_string_value(json_object_get(cg, "version")));
        print_set("controllers", json_object_get(cg, "controllers"));
        print_set("namespaces", json_object_get(host, "namespaces"));
        json_t *sc = json_object_get(host, "seccomp");
        printf("%-12sfilter %s, user-notify %s\n", "seccomp", yesno(json_object_get(sc, "filter")),
               yesno(json_object_get(sc, "user_notif")));
        printf("%-12s%s\n", "openat2", yesno(json_object_get(host, "openat2")));
        printf("%-12s%s\n", "overlayfs", yesno(json_object_get(host, "overlayfs")));
        printf("%-12s%s\n", "idmapped", yesno(json_object_get(host, "idmapped_mounts")));
        printf("%-12s%s\n", "pidfd", yesno(json_object_get(host, "pidfd")));
        printf("%-12s%s\n", "tmux", json_string_value(json_object_get(host, "tmux")) ?: "missing");
        return CLI_EXIT_OK;
}
