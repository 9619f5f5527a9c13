/* SPDX-License-Identifier: MIT */
/* pocketcoder keys add|list|rm: people's SSH public keys (/v1/keys). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common.h"

static int usage(bool ok)
{
        if (!ok)
                fprintf(stderr, "pocketcoder keys: missing subcommand.\n\n");
        printf("Usage: pocketcoder keys add [--sandbox NAME]... FILE|-\n"
               "       pocketcoder keys list\n"
               "       pocketcoder keys rm ID\n"
               "\n"
               "SSH public keys (one OpenSSH line such as ~/.ssh/id_ed25519.pub; '-' reads it from stdin).\n"
               "A key reaches every running sandbox's ~agent/.ssh/authorized_keys at once, and lets its\n"
               "owner log in with 'ssh -t pocketcoder@HOST SANDBOX'; --sandbox (repeatable) limits it to\n"
               "those sandboxes. 'rm' takes it out everywhere; its next login is refused.\n");
        return ok ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

static int keys_add(int argc, char **argv, const cli_global *g)
{
        static const struct option options[] = {
                { "sandbox", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_json_ json_t *req = json_object(), *sandboxes = json_array(), *resp = NULL;
        _cleanup_free_ char *data = NULL;
        size_t n;
        int opt, r;

        if (!req || !sandboxes)
                return CLI_EXIT_FAILED;
        while ((opt = getopt_long(argc, argv, "s:h", options, NULL)) >= 0) {
                switch (opt) {
                case 's':
                        json_array_append_new(sandboxes, json_string(optarg));
                        break;
                case 'h':
                        return usage(true);
                default:
                        return CLI_EXIT_USAGE;
                }
        }
        if (optind + 1 != argc) {
                fprintf(stderr, "pocketcoder keys add: expected one FILE (a .pub file) or - for stdin\n");
                return CLI_EXIT_USAGE;
        }
        /* The daemon checks the line; the limit here only keeps a wrong file (a private key, an image)
         * from being sent whole. */
        r = streq(argv[optind], "-") ? read_full_fd(STDIN_FILENO, 16384, &data, &n)
                                     : read_full_file(argv[optind], 16384, &data, &n);
        if (r < 0) {
                fprintf(stderr, "pocketcoder keys add: cannot read %s: %s\n", argv[optind], strerror(-r));
                return CLI_EXIT_FAILED;
        }
        json_object_set_new(req, "key", json_stringn(data, n));
        if (!json_object_get(req, "key")) {
                fprintf(stderr, "pocketcoder keys add: %s is not text (UTF-8): give a public key (.pub) file\n",
                        argv[optind]);
                return CLI_EXIT_FAILED;
        }
        if (json_array_size(sandboxes) > 0)
                json_object_set(req, "sandboxes", sandboxes);
        if (cli_call(g, "POST", "/v1/keys", req, 201, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (g->json)
                cli_print_json(resp);
        else
                printf("Added key %s (%s %s).\n", json_string_value(json_object_get(resp, "id")),
                       json_string_value(json_object_get(resp, "type")),
                       json_string_value(json_object_get(resp, "fingerprint")));
        return CLI_EXIT_OK;
}

static int keys_list(const cli_global *g)
{
        static const char *const header[] = { "ID", "TYPE", "FINGERPRINT", "COMMENT", "SANDBOXES", "CREATED" };
        _cleanup_json_ json_t *resp = NULL;
        _cleanup_free_ char **cells = NULL;
        _cleanup_free_ char *times = NULL;
        json_t *keys, *k;
        size_t i, n;

        if (cli_call(g, "GET", "/v1/keys", NULL, 200, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (g->json) {
                cli_print_json(resp);
                return CLI_EXIT_OK;
        }
        keys = json_object_get(resp, "keys");
        n = json_array_size(keys);
        cells = calloc(n * ELEMENTSOF(header) + 1, sizeof(char *));
        times = calloc(n + 1, 32);
        if (!cells || !times)
                return CLI_EXIT_FAILED;
        json_array_foreach(keys, i, k) {
                char **row = cells + i * ELEMENTSOF(header);
                json_t *scope = json_object_get(k, "sandboxes");

                row[0] = (char *) json_string_value(json_object_get(k, "id"));
                row[1] = (char *) json_string_value(json_object_get(k, "type"));
                row[2] = (char *) json_string_value(json_object_get(k, "fingerprint"));
                row[3] = (char *) json_string_value(json_object_get(k, "comment"));
                /* Scoped keys show their first sandbox (--json has them all); unscoped ones "all". */
                row[4] = (char *) (json_array_size(scope) == 0 ? "all" : json_string_value(json_array_get(scope, 0)));
                row[5] = (char *) cli_format_time(json_object_get(k, "created"), times + i * 32);
        }
        cli_table_print(header, ELEMENTSOF(header), cells, n);
        return CLI_EXIT_OK;
}

static int keys_rm(int argc, char **argv, const cli_global *g)
{
        _cleanup_json_ json_t *resp = NULL;
        _cleanup_free_ char *path = NULL;

        if (argc != 2) {
                fprintf(stderr, "pocketcoder keys rm: expected exactly one key ID (see 'pocketcoder keys list')\n");
                return CLI_EXIT_USAGE;
        }
        if (strlen(argv[1]) != 16 || strspn(argv[1], "0123456789abcdef") != 16) {
                fprintf(stderr, "pocketcoder keys rm: \"%s\" is not a key ID (16 hex digits)\n", argv[1]);
                return CLI_EXIT_USAGE;
        }
        path = strjoin("/v1/keys/", argv[1]);
        if (!path || cli_call(g, "DELETE", path, NULL, 204, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (!g->json)
                printf("Removed key %s.\n", argv[1]);
        return CLI_EXIT_OK;
}

int cmd_keys(int argc, char **argv, const cli_global *g)
{
        if (argc < 2)
                return usage(false);
        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help"))
                return usage(true);
        if (streq(argv[1], "add"))
                return keys_add(argc - 1, argv + 1, g);
        if (streq(argv[1], "list") && argc == 2)
                return keys_list(g);
        if (streq(argv[1], "rm"))
                return keys_rm(argc - 1, argv + 1, g);
        fprintf(stderr, "pocketcoder keys: unknown subcommand \"%s\" (expected add, list or rm)\n", argv[1]);
        return CLI_EXIT_USAGE;
}
