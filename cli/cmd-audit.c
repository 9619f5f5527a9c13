/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common.h"

static int usage(bool ok)
{
        if (!ok)
                fprintf(stderr, "pocketcoder audit: missing or unknown subcommand.\n\n");
        printf("Usage: pocketcoder audit list [--since SEQ] [--limit N]\n"
               "       pocketcoder audit verify\n"
               "\n"
               "The daemon's hash-chained audit ledger. 'list' prints rows after SEQ (default: the first 100).\n"
               "'verify' checks every row's hash, the chain and the recorded head, and exits 1 when a row\n"
               "was edited, inserted or deleted, naming the first bad row.\n");
        return ok ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

static int audit_list(int argc, char **argv, const cli_global *g)
{
        static const char *const header[] = { "SEQ", "AT", "ACTOR", "ACTION", "SUBJECT", "DETAIL" };
        const char *since = "0", *limit = "100";
        _cleanup_json_ json_t *resp = NULL;
        _cleanup_free_ char *path = NULL, *times = NULL, *seqs = NULL;
        _cleanup_free_ char **cells = NULL;
        uint64_t u;
        json_t *rows, *v;
        size_t i, n;

        for (int k = 1; k < argc; k += 2) {
                if (k + 1 >= argc || parse_uint64(argv[k + 1], &u) < 0 ||
                    (!streq(argv[k], "--since") && !streq(argv[k], "--limit"))) {
                        fprintf(stderr, "pocketcoder audit list: expected --since SEQ and/or --limit N\n");
                        return CLI_EXIT_USAGE;
                }
                if (streq(argv[k], "--since"))
                        since = argv[k + 1];
                else
                        limit = argv[k + 1];
        }
        path = strjoin("/v1/audit?since=", since, "&limit=", limit);
        if (!path || cli_call(g, "GET", path, NULL, 200, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (g->json) {
                cli_print_json(resp);
                return CLI_EXIT_OK;
        }
        rows = json_object_get(resp, "audit");
        n = json_array_size(rows);
        cells = calloc(n * ELEMENTSOF(header) + 1, sizeof(char *));
        times = calloc(n + 1, 32);
        seqs = calloc(n + 1, 24);
        if (!cells || !times || !seqs)
                return CLI_EXIT_FAILED;
        json_array_foreach(rows, i, v) {
                char **row = cells + i * ELEMENTSOF(header);
                snprintf(seqs + i * 24, 24, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(v, "seq")));
                row[0] = seqs + i * 24;
                row[1] = (char *) cli_format_time(json_object_get(v, "at"), times + i * 32);
                row[2] = (char *) json_string_value(json_object_get(v, "actor"));
                row[3] = (char *) json_string_value(json_object_get(v, "action"));
                row[4] = (char *) json_string_value(json_object_get(v, "subject"));
                row[5] = (char *) json_string_value(json_object_get(v, "detail"));
        }
        cli_table_print(header, ELEMENTSOF(header), cells, n);
        return CLI_EXIT_OK;
}

static int audit_verify(const cli_global *g)
{
        _cleanup_json_ json_t *resp = NULL;
        json_int_t rows;

        if (cli_call(g, "GET", "/v1/audit/verify", NULL, 200, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (g->json)
                cli_print_json(resp);
        rows = json_integer_value(json_object_get(resp, "rows"));
        if (json_is_true(json_object_get(resp, "ok"))) {
                if (!g->json)
                        printf("The audit ledger verifies: %" JSON_INTEGER_FORMAT " rows, chain and head intact.\n",
                               rows);
                return CLI_EXIT_OK;
        }
        fprintf(stderr, "pocketcoder audit verify: the ledger is broken at row %" JSON_INTEGER_FORMAT
                        " (%" JSON_INTEGER_FORMAT " rows before it verify): %s\n",
                json_integer_value(json_object_get(resp, "first_bad")), rows,
                json_string_value(json_object_get(resp, "reason")) ?: "?");
        return CLI_EXIT_FAILED;
}

int cmd_audit(int argc, char **argv, const cli_global *g)
{
        if (argc < 2)
                return usage(false);
        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help") ||
            (argc > 2 && (streq(argv[2], "--help") || streq(argv[2], "-h"))))
                return usage(true);
        if (streq(argv[1], "list") || streq(argv[1], "ls"))
                return audit_list(argc - 1, argv + 1, g);
        if (streq(argv[1], "verify"))
                return argc == 2 ? audit_verify(g) : usage(false);
        return usage(false);
}
