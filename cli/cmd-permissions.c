/* SPDX-License-Identifier: MIT */
/* pocketcoder permissions: the "Always Ask" queue from a terminal (what the phone does through the relay). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "common.h"

static int usage(bool ok)
{
        if (!ok)
                fprintf(stderr, "pocketcoder permissions: missing subcommand.\n\n");
        printf("Usage: pocketcoder permissions list [--state pending|approved|denied|expired|all] [--sandbox NAME]\n"
               "       pocketcoder permissions show ID\n"
               "       pocketcoder permissions approve ID [--remember exact|prefix] [--minutes N]\n"
               "                                          [--key FILE --device ID] [--valid DURATION]\n"
               "       pocketcoder permissions deny ID [--reason TEXT]\n"
               "       pocketcoder permissions rules [--sandbox NAME]\n"
               "       pocketcoder permissions forget RULE_ID\n"
               "\n"
               "Commands the policy answers with 'ask' wait here for a person. 'approve' runs the waiting\n"
               "command once; --remember exact also allows the same command in the same directory of that\n"
               "sandbox, --remember prefix any simple command starting with the same program and\n"
               "sub-command (\"git push ...\"), for --minutes (default 60, at most 10080). A remembered\n"
               "approval never overrides a policy's deny. 'deny' tells the agent --reason.\n"
               "\n"
               "Signed approvals (required when the daemon has require_signed_approvals = yes): --key is a\n"
               "device's private key file (pocketcoder devices keygen) and --device the id it was registered\n"
               "under; the signature covers the request id, the exact command and directory, the scope and\n"
               "an expiry (--valid, default 5m).\n");
        return ok ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

static bool is_help(const char *s)
{
        return streq(s, "--help") || streq(s, "-h");
}

/* "/v1/permissions/ID" + suffix, after checking ID is one (32 hex digits). */
static char *permission_path(const char *cmd, const char *id, const char *suffix)
{
        size_t n = strlen(id);

        if (n != 32 || strspn(id, "0123456789abcdef") != n) {
                fprintf(stderr, "pocketcoder permissions %s: \"%s\" is not a request or rule ID (32 hex digits; "
                                "see 'pocketcoder permissions list')\n",
                        cmd, id);
                return NULL;
        }
        return strjoin("/v1/permissions/", id, suffix);
}

static void print_permission(json_t *p)
{
        char created[32], expires[32];

        printf("Request:  %s (%s)\n", json_string_value(json_object_get(p, "id")),
               json_string_value(json_object_get(p, "state")));
        printf("Sandbox:  %s\n", json_string_value(json_object_get(p, "sandbox")));
        printf("Command:  %s\n", json_string_value(json_object_get(p, "command")));
        printf("In:       %s\n", json_string_value(json_object_get(p, "cwd")));
        printf("Asked:    %s, expires %s\n", cli_format_time(json_object_get(p, "created"), created),
               cli_format_time(json_object_get(p, "expires"), expires));
        if (json_is_string(json_object_get(p, "decided_by")))
                printf("Decided:  by %s%s%s%s%s\n", json_string_value(json_object_get(p, "decided_by")),
                       json_is_string(json_object_get(p, "scope")) ? ", scope " : "",
                       json_string_value(json_object_get(p, "scope")) ?: "",
                       json_is_string(json_object_get(p, "reason")) ? ": " : "",
                       json_string_value(json_object_get(p, "reason")) ?: "");
        if (json_is_string(json_object_get(p, "explanation")))
                printf("\n%s\n", json_string_value(json_object_get(p, "explanation")));
}

static int permissions_list(int argc, char **argv, const cli_global *g, bool rules)
{
        static const struct option options[] = {
                { "state", required_argument, NULL, 's' },
                { "sandbox", required_argument, NULL, 'b' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static const char *const pheader[] = { "ID", "SANDBOX", "STATE", "EXPIRES", "CWD", "COMMAND" };
        static const char *const rheader[] = { "ID", "SANDBOX", "SCOPE", "EXPIRES", "CWD", "COMMAND" };
        const char *state = NULL, *sandbox = NULL;
        _cleanup_json_ json_t *resp = NULL;
        _cleanup_free_ char *path = NULL, **cells = NULL, *times = NULL;
        json_t *items, *p;
        size_t i, n, ncols = ELEMENTSOF(pheader);
        int opt, r;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
                case 's':
                        if (rules)
                                return usage(false);
                        state = optarg;
                        break;
                case 'b':
                        sandbox = optarg;
                        break;
                case 'h':
                        return usage(true);
                default:
                        return CLI_EXIT_USAGE;
                }
        }
        if (optind < argc || (sandbox && !name_is_valid(sandbox))) {
                fprintf(stderr, "pocketcoder permissions: %s\n",
                        optind < argc ? "unexpected argument" : "--sandbox needs a sandbox name");
                return CLI_EXIT_USAGE;
        }
        if (state && strspn(state, "abcdefghijklmnopqrstuvwxyz") != strlen(state)) {
                fprintf(stderr, "pocketcoder permissions list: --state is pending, approved, denied, expired or all\n");
                return CLI_EXIT_USAGE;
        }
        r = rules ? asprintf_safe(&path, "/v1/permissions/rules%s%s", sandbox ? "?sandbox=" : "", sandbox ?: "")
                  : asprintf_safe(&path, "/v1/permissions?state=%s%s%s", state ?: "pending",
                                  sandbox ? "&sandbox=" : "", sandbox ?: "");
        if (r < 0)
                return CLI_EXIT_FAILED;
        if (cli_call(g, "GET", path, NULL, 200, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (g->json) {
                cli_print_json(resp);
                return CLI_EXIT_OK;
        }
        items = json_object_get(resp, rules ? "rules" : "permissions");
        n = json_array_size(items);
        cells = calloc(n * ncols + 1, sizeof(char *));
        times = calloc(n + 1, 32);
        if (!cells || !times)
                return CLI_EXIT_FAILED;
        json_array_foreach(items, i, p) {
                char **row = cells + i * ncols;
                row[0] = (char *) json_string_value(json_object_get(p, "id"));
                row[1] = (char *) json_string_value(json_object_get(p, "sandbox"));
                row[2] = (char *) json_string_value(json_object_get(p, rules ? "scope" : "state"));
                row[3] = (char *) cli_format_time(json_object_get(p, "expires"), times + i * 32);
                row[4] = (char *) json_string_value(json_object_get(p, "cwd"));
                row[5] = (char *) json_string_value(json_object_get(p, "command"));
        }
        cli_table_print(rules ? rheader : pheader, ncols, cells, n);
        return CLI_EXIT_OK;
}

static int permissions_show(int argc, char **argv, const cli_global *g)
{
        _cleanup_json_ json_t *resp = NULL;
        _cleanup_free_ char *path = NULL;

        if (argc != 2)
                return argc == 3 && is_help(argv[2]) ? usage(true) : usage(false);
        if (is_help(argv[1]))
                return usage(true);
        path = permission_path("show", argv[1], "");
        if (!path)
                return CLI_EXIT_USAGE;
        if (cli_call(g, "GET", path, NULL, 200, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (g->json)
                cli_print_json(resp);
        else
                print_permission(resp);
        return CLI_EXIT_OK;
}

/* Adds device, signature and expires to the approval REQ of request PATH (fetched for its command and cwd). */
static int sign(const cli_global *g, const char *path, const char *id, const char *key, const char *device,
                uint64_t valid, json_t *req)
{
        _cleanup_json_ json_t *p = NULL;
        _cleanup_free_ char *sig = NULL;
        const char *scope = json_string_value(json_object_get(req, "scope"));
        unsigned minutes = (unsigned) json_integer_value(json_object_get(req, "minutes"));
        int64_t expires = (int64_t) time(NULL) + (int64_t) valid;
        int r;

        if (cli_call(g, "GET", path, NULL, 200, &p) < 0)
                return -EIO;
        r = cli_sign_approval(key, id, json_string_value(json_object_get(p, "command")),
                              json_string_value(json_object_get(p, "cwd")), scope, minutes, expires, &sig);
        if (r < 0)
                return r; /* cli_sign_approval said why */
        json_object_set_new(req, "device", json_string(device));
        json_object_set_new(req, "signature", json_string(sig));
        json_object_set_new(req, "expires", json_integer(expires));
        return 0;
}

static int permissions_approve(int argc, char **argv, const cli_global *g)
{
        static const struct option options[] = {
                { "remember", required_argument, NULL, 'r' },
                { "scope", required_argument, NULL, 'r' },
                { "minutes", required_argument, NULL, 'm' },
                { "key", required_argument, NULL, 'k' },
                { "device", required_argument, NULL, 'd' },
                { "valid", required_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_json_ json_t *req = json_object(), *resp = NULL;
        _cleanup_free_ char *path = NULL;
        const char *scope = "once", *key = NULL, *device = NULL, *id;
        uint64_t minutes = 0, valid = 300;
        int opt;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
                case 'r':
                        scope = optarg;
                        break;
                case 'm':
                        if (parse_uint64(optarg, &minutes) < 0 || minutes < 1 || minutes > 10080) {
                                fprintf(stderr, "pocketcoder permissions approve: --minutes is 1 to 10080\n");
                                return CLI_EXIT_USAGE;
                        }
                        break;
                case 'k':
                        key = optarg;
                        break;
                case 'd':
                        device = optarg;
                        break;
                case 'v':
                        if (parse_duration(optarg, &valid) < 0 || valid == 0 || valid > 86400) {
                                fprintf(stderr, "pocketcoder permissions approve: --valid is a duration up to a "
                                                "day (e.g. 90s, 5m)\n");
                                return CLI_EXIT_USAGE;
                        }
                        break;
                case 'h':
                        return usage(true);
                default:
                        return CLI_EXIT_USAGE;
                }
        }
        if (optind + 1 != argc) {
                fprintf(stderr, "pocketcoder permissions approve: expected exactly one request ID\n");
                return CLI_EXIT_USAGE;
        }
        if (!streq(scope, "once") && !streq(scope, "exact") && !streq(scope, "prefix")) {
                fprintf(stderr, "pocketcoder permissions approve: --remember is exact or prefix\n");
                return CLI_EXIT_USAGE;
        }
        if (!!key != !!device) {
                fprintf(stderr, "pocketcoder permissions approve: a signed approval needs both --key FILE and "
                                "--device ID\n");
                return CLI_EXIT_USAGE;
        }
        if (minutes && streq(scope, "once")) {
                fprintf(stderr, "pocketcoder permissions approve: --minutes needs --remember exact|prefix\n");
                return CLI_EXIT_USAGE;
        }
        id = argv[optind];
        path = permission_path("approve", id, "");
        if (!path || !req)
                return CLI_EXIT_USAGE;
        json_object_set_new(req, "scope", json_string(scope));
        if (!streq(scope, "once"))
                json_object_set_new(req, "minutes", json_integer(minutes ? (json_int_t) minutes : 60));
        if (key && sign(g, path, id, key, device, valid, req) < 0)
                return CLI_EXIT_FAILED;
        free(path);
        path = permission_path("approve", id, "/approve");
        if (!path || cli_call(g, "POST", path, req, 200, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (g->json)
                cli_print_json(resp);
        else
                printf("Approved %s (%s%s): %s\n", id, scope, key ? ", signed" : "",
                       json_string_value(json_object_get(resp, "command")));
        return CLI_EXIT_OK;
}

static int permissions_deny(int argc, char **argv, const cli_global *g)
{
        static const struct option options[] = {
                { "reason", required_argument, NULL, 'r' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_json_ json_t *req = json_object(), *resp = NULL;
        _cleanup_free_ char *path = NULL;
        int opt;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
                case 'r':
                        json_object_set_new(req, "reason", json_string(optarg));
                        break;
                case 'h':
                        return usage(true);
                default:
                        return CLI_EXIT_USAGE;
                }
        }
        if (optind + 1 != argc) {
                fprintf(stderr, "pocketcoder permissions deny: expected exactly one request ID\n");
                return CLI_EXIT_USAGE;
        }
        path = permission_path("deny", argv[optind], "/deny");
        if (!path || !req)
                return CLI_EXIT_USAGE;
        if (cli_call(g, "POST", path, req, 200, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (g->json)
                cli_print_json(resp);
        else
                printf("Denied %s: %s\n", argv[optind], json_string_value(json_object_get(resp, "command")));
        return CLI_EXIT_OK;
}

static int permissions_forget(int argc, char **argv, const cli_global *g)
{
        _cleanup_free_ char *path = NULL;

        if (argc != 2)
                return argc == 3 && is_help(argv[2]) ? usage(true) : usage(false);
        if (is_help(argv[1]))
                return usage(true);
        path = permission_path("forget", argv[1], "");
        if (!path)
                return CLI_EXIT_USAGE;
        free(path);
        path = strjoin("/v1/permissions/rules/", argv[1]);
        if (!path || cli_call(g, "DELETE", path, NULL, 204, NULL) < 0)
                return CLI_EXIT_FAILED;
        if (!g->json)
                printf("Forgot rule %s: such commands ask again.\n", argv[1]);
        return CLI_EXIT_OK;
}

int cmd_permissions(int argc, char **argv, const cli_global *g)
{
        if (argc < 2)
                return usage(false);
        if (is_help(argv[1]) || streq(argv[1], "help"))
                return usage(true);
        if (streq(argv[1], "list") || streq(argv[1], "ls"))
                return permissions_list(argc - 1, argv + 1, g, false);
        if (streq(argv[1], "rules"))
                return permissions_list(argc - 1, argv + 1, g, true);
        if (streq(argv[1], "show"))
                return permissions_show(argc - 1, argv + 1, g);
        if (streq(argv[1], "approve"))
                return permissions_approve(argc - 1, argv + 1, g);
        if (streq(argv[1], "deny"))
                return permissions_deny(argc - 1, argv + 1, g);
        if (streq(argv[1], "forget"))
                return permissions_forget(argc - 1, argv + 1, g);
        fprintf(stderr,
                "pocketcoder permissions: unknown subcommand \"%s\" (expected list, show, approve, deny, rules, "
                "forget)\n",
                argv[1]);
        return CLI_EXIT_USAGE;
}
