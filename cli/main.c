/* SPDX-License-Identifier: MIT */
/* pocketcoder: the command-line client of pocketcoderd. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
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
               "  exec NAME -- COMMAND...     run a command through the sandbox's policy, streaming its output\n"
               "  image build|list|rm         Debian root filesystems for sandboxes (debootstrap)\n"
               "  permissions SUBCOMMAND      commands waiting for a person: list, approve, deny, rules\n"
               "  keys add|list|rm            SSH public keys that reach sandboxes and log in to them\n"
               "  ssh authorized-keys|attach  helpers sshd runs for 'ssh -t pocketcoder@HOST SANDBOX'\n"
               "  devices SUBCOMMAND          keygen, add, list, rm, sign: phones that sign approvals\n"
               "  audit list|verify           the hash-chained audit ledger\n"
               "  files SUBCOMMAND            ls, get, put, rm, mv, link: files in a sandbox's workspace\n"
               "  daemon run [OPTIONS]        run pocketcoderd in the foreground\n"
               "\n"
               "Global options (before or after the command, up to its \"--\" or COMMAND words):\n"
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
        { "exec", cmd_exec },
        { "permissions", cmd_permissions },
        { "keys", cmd_keys },
        { "ssh", cmd_ssh },
        { "devices", cmd_devices },
        { "audit", cmd_audit },
        { "files", cmd_files },
        { "daemon", cmd_daemon },
};

enum { ARG_SOCKET = 0x100, ARG_URL, ARG_TOKEN, ARG_JSON, ARG_VERSION };

/* The global options that may also follow the command ("sandbox show NAME --json"). */
static const struct option global_options[] = {
        { "socket", required_argument, NULL, ARG_SOCKET },
        { "url", required_argument, NULL, ARG_URL },
        { "token", required_argument, NULL, ARG_TOKEN },
        { "json", no_argument, NULL, ARG_JSON },
        {},
};

/* Where a command's words stop being options and operands and become someone else's: at the operand
 * after the first OPERANDS (its subcommand counted), the rest is left as it is, "--json" included.
 * ARG_OPTIONS are the command's options that take the next word as their argument (not an operand).
 * "--" always ends the search. A command not listed here has no such words. */
static const struct {
        const char *command, *sub; /* sub NULL: any subcommand */
        unsigned operands;
        const char *const *arg_options;
} verbatim_words[] = {
        /* sandbox run NAME COMMAND...: COMMAND's own words, with or without "--" */
        { "sandbox", "run", 2, NULL },
        /* policy decide --policy FILE COMMAND STRING: the command string decided */
        { "policy", "decide", 1, (const char *const[]){ "--policy", "-p", NULL } },
        /* pocketcoderd's own flags */
        { "daemon", NULL, 0, NULL },
        /* exec NAME COMMAND...: COMMAND's own words, with or without "--" */
        { "exec", NULL, 1, (const char *const[]){ "--cwd", "--timeout", "--env", NULL } },
};

static void apply_global_option(cli_global *g, int opt, const char *arg)
{
        switch (opt) {
        case ARG_SOCKET:
                g->socket = arg;
                g->url = NULL;
                break;
        case ARG_URL:
                g->url = arg;
                break;
        case ARG_TOKEN:
                g->token = arg;
                break;
        case ARG_JSON:
                g->json = true;
                break;
        }
}

static bool strv_contains(const char *const *l, const char *s)
{
        for (; l && *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

/* Takes the global options out of a command's words ARGV[1..*ARGC-1] (ARGV[0] is the command) and
 * applies them, so that every command sees only its own. Returns 0, or -EINVAL after saying which
 * option lacks its argument. */
static int take_global_options(int *argc, char **argv, cli_global *g)
{
        unsigned limit = UINT_MAX, operands = 0;
        const char *const *arg_options = NULL;
        int n = 1;

        for (size_t i = 0; i < ELEMENTSOF(verbatim_words); i++)
                if (streq(argv[0], verbatim_words[i].command) &&
                    (!verbatim_words[i].sub || (*argc > 1 && streq(argv[1], verbatim_words[i].sub)))) {
                        limit = verbatim_words[i].operands;
                        arg_options = verbatim_words[i].arg_options;
                }

        for (int i = 1; i < *argc; i++) {
                const struct option *o = NULL;
                const char *w = argv[i], *value = NULL;
                size_t len = 0;

                if (streq(w, "--") || (w[0] != '-' && operands >= limit)) {
                        /* The rest is not ours: keep it as it is. */
                        memmove(argv + n, argv + i, (*argc - i) * sizeof(char *));
                        n += *argc - i;
                        break;
                }
                if (startswith(w, "--")) {
                        len = strcspn(w + 2, "=");
                        for (o = global_options; o->name; o++)
                                if (strlen(o->name) == len && strneq(w + 2, o->name, len))
                                        break;
                        if (!o->name)
                                o = NULL;
                }
                if (!o) {
                        argv[n++] = argv[i];
                        if (w[0] != '-')
                                operands++;
                        else if (strv_contains(arg_options, w) && i + 1 < *argc)
                                argv[n++] = argv[++i];
                        continue;
                }
                if (o->has_arg == required_argument) {
                        if (w[2 + len] == '=')
                                value = w + 2 + len + 1;
                        else if (i + 1 < *argc)
                                value = argv[++i];
                        else {
                                fprintf(stderr, "pocketcoder %s: option --%s requires an argument\n", argv[0],
                                        o->name);
                                return -EINVAL;
                        }
                } else if (w[2 + len] == '=') {
                        fprintf(stderr, "pocketcoder %s: option --%s takes no argument\n", argv[0], o->name);
                        return -EINVAL;
                }
                apply_global_option(g, o->val, value);
        }
        argv[n] = NULL;
        *argc = n;
        return 0;
}

int main(int argc, char **argv)
{
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
                case ARG_URL:
                case ARG_TOKEN:
                case ARG_JSON:
                        apply_global_option(&g, opt, optarg);
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
                int cargc = argc - optind;
                char **cargv = argv + optind;
                if (take_global_options(&cargc, cargv, &g) < 0)
                        return CLI_EXIT_USAGE;
                if (isempty(g.socket))
                        g.socket = PC_DEFAULT_RUNTIME_DIR "/api.sock";
                if (isempty(g.url))
                        g.url = NULL;
                if (isempty(g.token))
                        g.token = NULL;
                /* Reset getopt for the command's own parsing. */
                optind = 0;
                return commands[i].fn(cargc, cargv, &g);
        }
        fprintf(stderr, "pocketcoder: unknown command \"%s\". Try 'pocketcoder --help'.\n", argv[optind]);
        return CLI_EXIT_USAGE;
}
