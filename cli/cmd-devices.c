/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "common.h"
#include "crypto.h"

static int usage(bool ok)
{
        if (!ok)
                fprintf(stderr, "pocketcoder devices: missing subcommand.\n\n");
        printf("Usage: pocketcoder devices keygen FILE\n"
               "       pocketcoder devices add NAME PUBLIC_KEY\n"
               "       pocketcoder devices list\n"
               "       pocketcoder devices rm ID\n"
               "       pocketcoder devices sign --key FILE --id REQUEST --command CMD --cwd DIR\n"
               "                                [--scope once|exact|prefix] [--minutes N] [--ttl DURATION]\n"
               "                                [--device ID]\n"
               "\n"
               "Devices (phones) whose Ed25519 keys may sign approvals of permission requests; with\n"
               "require_signed_approvals = yes the daemon accepts no other. 'keygen' writes a new private\n"
               "key to FILE (mode 0600, never overwritten) and prints its public key for 'add'. 'sign' prints\n"
               "the body of POST /v1/permissions/REQUEST/approve, signed with FILE's key; the signature may be\n"
               "used for --ttl (default 5m).\n");
        return ok ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

static int devices_keygen(int argc, char **argv)
{
        _cleanup_free_ char *b64 = NULL;
        uint8_t pub[32];
        int r;

        if (argc != 2) {
                fprintf(stderr, "pocketcoder devices keygen: expected exactly one FILE\n");
                return CLI_EXIT_USAGE;
        }
        r = cli_key_generate(argv[1], pub);
        if (r < 0) {
                fprintf(stderr, "pocketcoder devices keygen: cannot write %s: %s\n", argv[1], strerror(-r));
                return CLI_EXIT_FAILED;
        }
        b64 = pc_base64_encode(pub, sizeof(pub));
        if (!b64)
                return CLI_EXIT_FAILED;
        printf("%s\n", b64);
        return CLI_EXIT_OK;
}

static int devices_add(int argc, char **argv, const cli_global *g)
{
        _cleanup_json_ json_t *req = NULL, *resp = NULL;

        if (argc != 3) {
                fprintf(stderr, "pocketcoder devices add: expected NAME and PUBLIC_KEY (from 'devices keygen')\n");
                return CLI_EXIT_USAGE;
        }
        req = json_pack("{s:s, s:s}", "name", argv[1], "public_key", argv[2]);
        if (!req || cli_call(g, "POST", "/v1/devices", req, 201, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (g->json)
                cli_print_json(resp);
        else
                printf("%s\n", json_string_value(json_object_get(resp, "id")));
        return CLI_EXIT_OK;
}

static int devices_list(const cli_global *g)
{
        static const char *const header[] = { "ID", "NAME", "PUBLIC KEY", "CREATED" };
        _cleanup_json_ json_t *resp = NULL;
        _cleanup_free_ char **cells = NULL;
        _cleanup_free_ char *times = NULL;
        json_t *devices, *v;
        size_t i, n;

        if (cli_call(g, "GET", "/v1/devices", NULL, 200, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (g->json) {
                cli_print_json(resp);
                return CLI_EXIT_OK;
        }
        devices = json_object_get(resp, "devices");
        n = json_array_size(devices);
        cells = calloc(n * ELEMENTSOF(header) + 1, sizeof(char *));
        times = calloc(n + 1, 32);
        if (!cells || !times)
                return CLI_EXIT_FAILED;
        json_array_foreach(devices, i, v) {
                char **row = cells + i * ELEMENTSOF(header);
                row[0] = (char *) json_string_value(json_object_get(v, "id"));
                row[1] = (char *) json_string_value(json_object_get(v, "name"));
                row[2] = (char *) json_string_value(json_object_get(v, "public_key"));
                row[3] = (char *) cli_format_time(json_object_get(v, "created"), times + i * 32);
        }
        cli_table_print(header, ELEMENTSOF(header), cells, n);
        return CLI_EXIT_OK;
}

static int devices_rm(int argc, char **argv, const cli_global *g)
{
        _cleanup_json_ json_t *resp = NULL;
        _cleanup_free_ char *path = NULL;

        if (argc != 2 || !name_is_valid(argv[1])) {
                fprintf(stderr, "pocketcoder devices rm: expected one device ID (see 'pocketcoder devices list')\n");
                return CLI_EXIT_USAGE;
        }
        path = strjoin("/v1/devices/", argv[1]);
        if (!path || cli_call(g, "DELETE", path, NULL, 204, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (!g->json)
                printf("Removed device %s.\n", argv[1]);
        return CLI_EXIT_OK;
}

static int devices_sign(int argc, char **argv)
{
        static const struct option options[] = {
                { "key", required_argument, NULL, 'k' },     { "id", required_argument, NULL, 'i' },
                { "command", required_argument, NULL, 'c' }, { "cwd", required_argument, NULL, 'w' },
                { "scope", required_argument, NULL, 's' },   { "minutes", required_argument, NULL, 'm' },
                { "ttl", required_argument, NULL, 't' },     { "device", required_argument, NULL, 'd' },
                { "help", no_argument, NULL, 'h' },          {},
        };
        const char *key = NULL, *id = NULL, *command = NULL, *cwd = NULL, *scope = "once", *device = NULL;
        uint64_t minutes = 0, ttl = 300;
        _cleanup_free_ char *sig = NULL, *out = NULL;
        _cleanup_json_ json_t *body = NULL;
        int64_t expires;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
                case 'k': key = optarg; break;
                case 'i': id = optarg; break;
                case 'c': command = optarg; break;
                case 'w': cwd = optarg; break;
                case 's': scope = optarg; break;
                case 'd': device = optarg; break;
                case 'm':
                        if (parse_uint64(optarg, &minutes) < 0 || minutes > UINT32_MAX) {
                                fprintf(stderr, "pocketcoder devices sign: --minutes \"%s\" is not a number\n", optarg);
                                return CLI_EXIT_USAGE;
                        }
                        break;
                case 't':
                        if (parse_duration(optarg, &ttl) < 0 || ttl == 0 || ttl > INT32_MAX) {
                                fprintf(stderr, "pocketcoder devices sign: --ttl \"%s\" is not a duration (e.g. 90s, 5m)\n",
                                        optarg);
                                return CLI_EXIT_USAGE;
                        }
                        break;
                case 'h':
                        return usage(true);
                default:
                        return CLI_EXIT_USAGE;
                }
        }
        if (!key || !id || !command || !cwd || optind < argc) {
                fprintf(stderr, "pocketcoder devices sign: %s\n",
                        optind < argc ? "unexpected argument" : "--key, --id, --command and --cwd are required");
                return CLI_EXIT_USAGE;
        }
        if (!streq(scope, "once") && !streq(scope, "exact") && !streq(scope, "prefix")) {
                fprintf(stderr, "pocketcoder devices sign: --scope must be once, exact or prefix\n");
                return CLI_EXIT_USAGE;
        }
        if (streq(scope, "once"))
                minutes = 0;
        expires = (int64_t) time(NULL) + (int64_t) ttl;
        r = cli_sign_approval(key, id, command, cwd, scope, (unsigned) minutes, expires, &sig);
        if (r < 0) {
                fprintf(stderr, "pocketcoder devices sign: cannot sign with %s: %s\n", key,
                        r == -EINVAL ? "not a key file (one line: base64 of 32 bytes)" : strerror(-r));
                return CLI_EXIT_FAILED;
        }
        body = json_pack("{s:s, s:I, s:s, s:I}", "scope", scope, "minutes", (json_int_t) minutes, "signature", sig,
                         "expires", (json_int_t) expires);
        if (!body || (device && json_object_set_new(body, "device", json_string(device)) < 0))
                return CLI_EXIT_FAILED;
        out = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
        if (!out)
                return CLI_EXIT_FAILED;
        printf("%s\n", out);
        return CLI_EXIT_OK;
}

int cmd_devices(int argc, char **argv, const cli_global *g)
{
        if (argc < 2)
                return usage(false);
        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help"))
                return usage(true);
        if (argc > 2 && (streq(argv[2], "--help") || streq(argv[2], "-h")))
                return usage(true);
        if (streq(argv[1], "keygen"))
                return devices_keygen(argc - 1, argv + 1);
        if (streq(argv[1], "add"))
                return devices_add(argc - 1, argv + 1, g);
        if (streq(argv[1], "list") || streq(argv[1], "ls"))
                return argc == 2 ? devices_list(g) : usage(false);
        if (streq(argv[1], "rm") || streq(argv[1], "delete"))
                return devices_rm(argc - 1, argv + 1, g);
        if (streq(argv[1], "sign"))
                return devices_sign(argc - 1, argv + 1);
        fprintf(stderr, "pocketcoder devices: unknown subcommand \"%s\" (expected keygen, add, list, rm, sign)\n",
                argv[1]);
        return CLI_EXIT_USAGE;
}
