/* SPDX-License-Identifier: MIT */
/* pocketcoder ssh: what sshd runs for 'ssh -t pocketcoder@HOST SANDBOX' (docs/ssh.md), as the SSH user,
 * talking to the daemon's gateway socket (the ssh_socket, role ssh) only:
 *   authorized-keys USER TYPE KEY  sshd's AuthorizedKeysCommand: prints the key (with "restrict,pty") when
 *                                  it is registered, nothing when not;
 *   attach                         sshd's ForceCommand: the key sshd authenticated (ExposeAuthInfo's
 *                                  $SSH_USER_AUTH) and the sandbox asked for ($SSH_ORIGINAL_COMMAND) go to
 *                                  the daemon, which checks the key's scope and attaches this terminal to
 *                                  the sandbox's tmux session, as 'pocketcoder enter' does (filtered).
 * Nothing from the environment but those two variables is used: a client's SendEnv cannot redirect it. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"

#define GATEWAY_DEFAULT "/run/pocketcoder-ssh.sock" /* the daemon's default ssh_socket */

static int usage(bool ok)
{
        if (!ok)
                fprintf(stderr, "pocketcoder ssh: missing subcommand.\n\n");
        printf("Usage: pocketcoder ssh [--gateway PATH] authorized-keys USER TYPE KEY\n"
               "       pocketcoder ssh [--gateway PATH] attach\n"
               "\n"
               "Run by sshd for 'ssh -t pocketcoder@HOST SANDBOX' (see /etc/ssh/sshd_config.d/pocketcoder.conf\n"
               "and docs/ssh.md), not by people. --gateway is the daemon's SSH socket (default %s).\n",
               GATEWAY_DEFAULT);
        return ok ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

/* sshd's "%t %k": a key type and its base64, nothing else. */
static bool key_word(const char *s)
{
        return !isempty(s) && strlen(s) < 8192 &&
               s[strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=@.-")] == 0;
}

static int authorized_keys(int argc, char **argv, const cli_global *g)
{
        _cleanup_json_ json_t *req = NULL, *resp = NULL;
        _cleanup_free_ char *key = NULL;
        long status;

        if (argc != 4 || !key_word(argv[2]) || !key_word(argv[3])) {
                fprintf(stderr, "pocketcoder ssh authorized-keys: expected USER TYPE KEY (sshd's %%u %%t %%k)\n");
                return CLI_EXIT_USAGE;
        }
        key = strjoin(argv[2], " ", argv[3]);
        if (!key || !(req = json_pack("{s:s}", "key", key)) ||
            cli_request(g, "POST", "/v1/ssh/authorize", req, &status, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (status == 404 || status == 400) /* not registered (or not a key we take): no line, no login */
                return CLI_EXIT_OK;
        if (status != 200)
                return cli_print_api_error(status, resp);
        /* restrict: no forwarding of any kind, no ~/.ssh/rc, no X11; pty: the one thing a login needs. */
        printf("restrict,pty %s\n", key);
        return CLI_EXIT_OK;
}

/* The key sshd authenticated: the last "publickey TYPE BASE64" line of ExposeAuthInfo's file. */
static char *authenticated_key(void)
{
        const char *path = getenv("SSH_USER_AUTH");
        _cleanup_free_ char *data = NULL;
        char *key = NULL;
        size_t n;

        if (isempty(path) || read_full_file(path, 65536, &data, &n) < 0)
                return NULL;
        for (char *line = data, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if (startswith(line, "publickey ")) {
                        free(key);
                        key = strdup(line + STRLEN("publickey "));
                }
        }
        return key;
}

static int attach(const cli_global *g)
{
        _cleanup_free_ char *key = authenticated_key(), *sandbox = NULL;
        _cleanup_json_ json_t *req = NULL;
        const char *cmd = getenv("SSH_ORIGINAL_COMMAND");

        if (!key) {
                fprintf(stderr, "pocketcoder: this login was not made with a registered SSH key (sshd must run with "
                                "ExposeAuthInfo yes)\n");
                return CLI_EXIT_FAILED;
        }
        sandbox = strdup(cmd ?: "");
        if (!sandbox)
                return CLI_EXIT_FAILED;
        strstrip(sandbox);
        if (isempty(sandbox)) {
                fprintf(stderr, "pocketcoder: name the sandbox to enter: ssh -t pocketcoder@HOST SANDBOX\n");
                return CLI_EXIT_USAGE;
        }
        if (!name_is_valid(sandbox)) {
                fprintf(stderr, "pocketcoder: \"%s\" is not a sandbox name: ssh -t pocketcoder@HOST SANDBOX\n",
                        sandbox);
                return CLI_EXIT_USAGE;
        }
        /* sshd's pty is stdin and stdout: the sandbox's output always goes through the terminal filter. */
        if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
                fprintf(stderr, "pocketcoder: a sandbox's tmux session needs a terminal: use ssh -t\n");
                return CLI_EXIT_USAGE;
        }
        req = json_pack("{s:s, s:s}", "key", key, "sandbox", sandbox);
        if (!req)
                return CLI_EXIT_FAILED;
        return cli_session_path(g, "/v1/ssh/sessions", req, true);
}

int cmd_ssh(int argc, char **argv, const cli_global *global)
{
        static const struct option options[] = {
                { "gateway", required_argument, NULL, 'g' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        /* Only the gateway socket: never a URL, a token or the admins' socket from the environment. */
        cli_global g = { .socket = GATEWAY_DEFAULT, .json = global->json };
        int opt;

        while ((opt = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
                switch (opt) {
                case 'g':
                        g.socket = optarg;
                        break;
                case 'h':
                        return usage(true);
                default:
                        return CLI_EXIT_USAGE;
                }
        }
        if (optind >= argc)
                return usage(false);
        if (streq(argv[optind], "authorized-keys"))
                return authorized_keys(argc - optind, argv + optind, &g);
        if (streq(argv[optind], "attach") && optind + 1 == argc)
                return attach(&g);
        fprintf(stderr, "pocketcoder ssh: unknown subcommand \"%s\" (expected authorized-keys or attach)\n",
                argv[optind]);
        return CLI_EXIT_USAGE;
}
