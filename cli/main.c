/* SPDX-License-Identifier: MIT */
/* pocketcoder: the command-line client of pocketcoderd. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common.h"

static void help(void)
{
        printf("Usage: pocketcoder [GLOBAL OPTIONS] COMMAND [ARGS...]\n"
               "\n"
               "Command-line client of pocketcoderd, the PocketCoder daemon.\n"
               "\n"
               "Commands:\n"
               "  status                      daemon health and host capabilities\n"
               "  token create|list|rm        API tokens for the relay, agents and admins\n"
               "  policy check|decide         validate a policy file, decide a command (offline)\n"
               "  policy list|show|reload     policies loaded by the daemon\n"
               "  sandbox SUBCOMMAND          create, list, show, stop, start, rm sandboxes; run in one\n"
               "  enter NAME                  attach to a sandbox's tmux session (local admin)\n"
               "  image build|list|rm         Debian root filesystems for sandboxes (debootstrap)\n"
               "  daemon run [OPTIONS]        run pocketcoderd in the foreground\n"
               "\n"
               "Global options:\n"
               "  --socket PATH   daemon socket (default $POCKETCODER_SOCKET or %s/api.sock)\n"
               "  --url URL       talk to the daemon over HTTP instead (or $POCKETCODER_URL)\n"
               "  --token TOKEN   bearer token (or $POCKETCODER_TOKEN); root needs none on the socket\n"
               "  --json          print the API's JSON instead of tables\n"
               "  -h --help       show this help; 'pocketcoder COMMAND --help' for a command\n"
               "  --version       show the version\n"
               "\n"
               "Exit status: 0 ok, 1 failed, 2 usage error; 'sandbox run' exits with the command's own.\n",
               PC_DEFAULT_RUNTIME_DIR);
}

static int cmd_daemon(int argc, char **argv, const cli_global *g)
{
        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
                printf("Usage: pocketcoder daemon run [--config F] [--policy-dir D] [--state-dir D]\n"
                       "                              [--runtime-dir D] [--listen ADDR:PORT]\n"
                       "\n"
                       "Runs pocketcoderd in the foreground with the same flags (see pocketcoderd --help).\n");
                return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
        }
        if (!streq(argv[1], "run")) {
                fprintf(stderr, "pocketcoder daemon: unknown subcommand \"%s\" (expected run)\n", argv[1]);
                return CLI_EXIT_USAGE;
        }
        /* The daemon is its own binary; run the one installed beside us. */
        argv[1] = (char *) "pocketcoderd";
        execv(PC_BINDIR "/pocketcoderd", argv + 1);
        execvp("pocketcoderd", argv + 1);
        fprintf(stderr, "pocketcoder: cannot run pocketcoderd: %m\n");
        return CLI_EXIT_FAILED;
}

static const struct {
        const char *name;
        int (*fn)(int argc, char **argv, const cli_global *g);
} commands[] = {
        { "status", cmd_status },
        { "token", cmd_token },
        { "policy", cmd_policy },
        { "sandbox", cmd_sandbox },
        { "enter", cmd_enter },
        { "image", cmd_image },
        { "daemon", cmd_daemon },
};

int main(int argc, char **argv)
{
        enum { ARG_SOCKET = 0x100, ARG_URL, ARG_TOKEN, ARG_JSON, ARG_VERSION };
        static const struct option options[] = {
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "url", required_argument, NULL, ARG_URL },
                { "token", required_argument, NULL, ARG_TOKEN },
                { "json", no_argument, NULL, ARG_JSON },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        cli_global g = {
                .socket = getenv("POCKETCODER_SOCKET"),
                .url = getenv("POCKETCODER_URL"),
                .token = getenv("POCKETCODER_TOKEN"),
        };
        int opt;

        /* '+': stop at the command name; its options are its own. */
        while ((opt = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
                switch (opt) {
                case ARG_SOCKET:
                        g.socket = optarg;
                        g.url = NULL;
                        break;
                case ARG_URL:
                        g.url = optarg;
                        break;
                case ARG_TOKEN:
                        g.token = optarg;
                        break;
                case ARG_JSON:
                        g.json = true;
                        break;
                case 'h':
                        help();
                        return CLI_EXIT_OK;
                case ARG_VERSION:
                        printf("pocketcoder %s\n", PACKAGE_VERSION);
                        return CLI_EXIT_OK;
                default:
                        fprintf(stderr, "Try 'pocketcoder --help'.\n");
                        return CLI_EXIT_USAGE;
                }
        }
        if (isempty(g.socket))
                g.socket = PC_DEFAULT_RUNTIME_DIR "/api.sock";
        if (isempty(g.url))
                g.url = NULL;
        if (isempty(g.token))
                g.token = NULL;
        if (optind >= argc) {
                help();
                return CLI_EXIT_USAGE;
        }
        if (streq(argv[optind], "help")) {
                help();
                return CLI_EXIT_OK;
        }
        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                if (!streq(argv[optind], commands[i].name))
                        continue;
                /* Reset getopt for the command's own parsing. */
                int cargc = argc - optind;
                char **cargv = argv + optind;
                optind = 0;
                return commands[i].fn(cargc, cargv, &g);
        }
        fprintf(stderr, "pocketcoder: unknown command \"%s\". Try 'pocketcoder --help'.\n", argv[optind]);
        return CLI_EXIT_USAGE;
}
