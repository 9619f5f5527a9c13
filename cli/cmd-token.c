/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "common.h"

static int usage(bool ok)
{
        if (!ok)
                fprintf(stderr, "pocketcoder token: missing subcommand.\n\n");
        printf("Usage: pocketcoder token create --role admin|relay|agent [--sandbox NAME] [--label TEXT]\n"
               "                                [--ttl DURATION]\n"
               "       pocketcoder token list\n"
               "       pocketcoder token rm ID\n"
               "\n"
               "API tokens. 'create' prints the token once: store it now, only its hash is kept.\n"
               "Roles: admin (everything), relay (the phone app's backend: approvals, keys, messages),\n"
               "agent (the reasoning engine; scoped to one existing sandbox with --sandbox, and removed\n"
               "with it). --ttl makes a token expire: 90s, 15m, 12h, 30d (plain numbers are seconds).\n"
               "Use a token with --token TOKEN or POCKETCODER_TOKEN=TOKEN.\n");
        return ok ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

static int token_create(int argc, char **argv, const cli_global *g)
{
        static const struct option options[] = {
                { "role", required_argument, NULL, 'r' },
                { "sandbox", required_argument, NULL, 's' },
                { "label", required_argument, NULL, 'l' },
                { "ttl", required_argument, NULL, 't' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_json_ json_t *req = json_object(), *resp = NULL;
        const char *role = NULL;
        uint64_t ttl;
        int opt;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
                case 'r':
                        role = optarg;
                        break;
                case 's':
                        json_object_set_new(req, "sandbox", json_string(optarg));
                        break;
                case 'l':
                        json_object_set_new(req, "label", json_string(optarg));
                        break;
                case 't':
                        if (parse_duration(optarg, &ttl) < 0 || ttl == 0 || ttl > INT64_MAX) {
                                fprintf(stderr,
                                        "pocketcoder token create: --ttl \"%s\" is not a duration (e.g. 90s, "
                                        "15m, 12h, 30d)\n",
                                        optarg);
                                return CLI_EXIT_USAGE;
                        }
                        json_object_set_new(req, "ttl_seconds", json_integer((json_int_t) ttl));
                        break;
                case 'h':
                        return usage(true);
                default:
                        return CLI_EXIT_USAGE;
                }
        }
        if (!role || optind < argc) {
                fprintf(stderr, "pocketcoder token create: %s\n",
                        role ? "unexpected argument" : "--role admin|relay|agent is required");
                return CLI_EXIT_USAGE;
        }
        json_object_set_new(req, "role", json_string(role));
        if (cli_call(g, "POST", "/v1/tokens", req, 201, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (g->json)
                cli_print_json(resp);
        else {
                printf("%s\n", json_string_value(json_object_get(resp, "token")));
                fprintf(stderr, "Created %s token %s. It is shown only now: store it safely.\n", role,
                        json_string_value(json_object_get(resp, "id")));
        }
        return CLI_EXIT_OK;
}

static int token_list(const cli_global *g)
{
        static const char *const header[] = { "ID", "ROLE", "SANDBOX", "LABEL", "CREATED", "BY", "EXPIRES" };
        _cleanup_json_ json_t *resp = NULL;
        _cleanup_free_ char **cells = NULL;
        _cleanup_free_ char *times = NULL;
        json_t *tokens, *t;
        size_t i, n;

        if (cli_call(g, "GET", "/v1/tokens", NULL, 200, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (g->json) {
                cli_print_json(resp);
                return CLI_EXIT_OK;
        }
        tokens = json_object_get(resp, "tokens");
        n = json_array_size(tokens);
        cells = calloc(n * ELEMENTSOF(header) + 1, sizeof(char *));
        times = calloc(2 * n + 1, 32);
        if (!cells || !times)
                return CLI_EXIT_FAILED;
        json_array_foreach(tokens, i, t) {
                char **row = cells + i * ELEMENTSOF(header);
                row[0] = (char *) json_string_value(json_object_get(t, "id"));
                row[1] = (char *) json_string_value(json_object_get(t, "role"));
                row[2] = (char *) json_string_value(json_object_get(t, "sandbox"));
                row[3] = (char *) json_string_value(json_object_get(t, "label"));
                row[4] = (char *) cli_format_time(json_object_get(t, "created_at"), times + 2 * i * 32);
                row[5] = (char *) json_string_value(json_object_get(t, "created_by"));
                row[6] = (char *) cli_format_time(json_object_get(t, "expires_at"), times + (2 * i + 1) * 32);
        }
        cli_table_print(header, ELEMENTSOF(header), cells, n);
        return CLI_EXIT_OK;
}

static int token_rm(int argc, char **argv, const cli_global *g)
{
        _cleanup_json_ json_t *resp = NULL;
        _cleanup_free_ char *path = NULL;

        if (argc != 2) {
                fprintf(stderr, "pocketcoder token rm: expected exactly one token ID (see 'pocketcoder token "
                                "list')\n");
                return CLI_EXIT_USAGE;
        }
        if (!name_is_valid(argv[1])) {
                fprintf(stderr, "pocketcoder token rm: \"%s\" is not a token ID (12 hex digits)\n", argv[1]);
                return CLI_EXIT_USAGE;
        }
        path = strjoin("/v1/tokens/", argv[1]);
        if (!path || cli_call(g, "DELETE", path, NULL, 204, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (!g->json)
                printf("Revoked token %s.\n", argv[1]);
        return CLI_EXIT_OK;
}

int cmd_token(int argc, char **argv, const cli_global *g)
{
        if (argc < 2)
                return usage(false);
        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help"))
                return usage(true);
        if (streq(argv[1], "create"))
                return token_create(argc - 1, argv + 1, g);
        if (streq(argv[1], "list") || streq(argv[1], "ls")) {
                if (argc > 2)
                        return usage(argc == 3 && (streq(argv[2], "--help") || streq(argv[2], "-h")));
                return token_list(g);
        }
        if (streq(argv[1], "rm") || streq(argv[1], "delete")) {
                if (argc > 2 && (streq(argv[2], "--help") || streq(argv[2], "-h")))
                        return usage(true);
                return token_rm(argc - 1, argv + 1, g);
        }
        fprintf(stderr, "pocketcoder token: unknown subcommand \"%s\" (expected create, list, rm)\n", argv[1]);
        return CLI_EXIT_USAGE;
}
