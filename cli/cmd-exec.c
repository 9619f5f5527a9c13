/* SPDX-License-Identifier: MIT */
/* pocketcoder exec NAME [--cwd DIR] [--timeout S] [--env K=V]... -- COMMAND...: through the sandbox's
 * policy, like the agent's commands. The output streams live (GET /v1/execs/{id}/output): stdout to stdout,
 * stderr to stderr, through the terminal filter where they are terminals; the exit status is the command's
 * (128+N for signal N), CLI_EXIT_DENIED when the policy or a person said no. */
#include <errno.h>
#include <inttypes.h>
#include <nettle/base64.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "policies.h"
#include "termfilter.h"

#define CLI_EXIT_DENIED 77

static void usage(FILE *f)
{
        fprintf(f, "Usage: pocketcoder exec NAME [--cwd DIR] [--timeout S] [--env K=V]... -- COMMAND...\n"
                   "\n"
                   "Runs COMMAND in sandbox NAME through its policy, in a tmux window of the sandbox's "
                   "session, and\n"
                   "streams its output (stdout to stdout, stderr to stderr). One COMMAND word is a bash "
                   "command line\n"
                   "as it is; several are shell-quoted and joined.\n"
                   "\n"
                   "  --cwd DIR      /workspace (default) or a directory below it\n"
                   "  --timeout S    kill the command's whole process tree after S seconds (default 60)\n"
                   "  --env K=V      add a variable (repeatable)\n"
                   "\n"
                   "Exit status: the command's, 128+N when signal N ended it, 77 when it was denied (by the "
                   "policy\n"
                   "or a person; the reason is printed), 1 when it could not run or was lost.\n");
}

static int base64_decode(const char *b, char **ret, size_t *ret_len)
{
        struct base64_decode_ctx ctx;
        size_t len = strlen(b), n = BASE64_DECODE_LENGTH(len);
        _cleanup_free_ char *out = malloc(n + 1);

        if (!out)
                return -ENOMEM;
        base64_decode_init(&ctx);
        if (!base64_decode_update(&ctx, &n, (uint8_t *)out, len, b) || !base64_decode_final(&ctx))
                return -EINVAL;
        *ret = TAKE_PTR(out);
        *ret_len = n;
        return 0;
}

typedef struct exec_stream {
        termfilter filter[2];
        bool tty[2];
        int status;
} exec_stream;

static int write_stream(exec_stream *s, int i, const char *p, size_t n)
{
        _cleanup_free_ char *out = NULL;
        int fd = i ? STDERR_FILENO : STDOUT_FILENO;

        if (s->tty[i]) {
                out = malloc(TERMFILTER_OUT_MAX(n));
                if (!out)
                        return -ENOMEM;
                n = termfilter_feed(&s->filter[i], p, n, out);
                p = out;
        }
        return write_all(fd, p, n);
}

/* One event's data: output {"stream", "data"|"data_base64"} or the end {"state", "exit_code", "signal",
 * ...}. */
static int on_event(json_t *ev, void *userdata)
{
        exec_stream *s = userdata;
        const char *stream = json_string_value(json_object_get(ev, "stream"));
        const char *state = json_string_value(json_object_get(ev, "state"));
        json_t *data = json_object_get(ev, "data");

        if (stream) {
                int i = streq(stream, "stderr");
                if (json_is_string(data))
                        return write_stream(s, i, json_string_value(data), json_string_length(data)) < 0;
                /* not UTF-8: the exact bytes */
                const char *b = json_string_value(json_object_get(ev, "data_base64"));
                _cleanup_free_ char *bytes = NULL;
                size_t n = 0;
                if (!b || base64_decode(b, &bytes, &n) < 0)
                        return 0;
                return write_stream(s, i, bytes, n) < 0;
        }
        if (!state)
                return 0;
        if (json_is_integer(json_object_get(ev, "exit_code")))
                s->status = (int)json_integer_value(json_object_get(ev, "exit_code"));
        else if (json_is_integer(json_object_get(ev, "signal")))
                s->status = 128 + (int)json_integer_value(json_object_get(ev, "signal"));
        else if (streq(state, "denied")) {
                fprintf(stderr, "pocketcoder: denied: %s\n",
                        json_string_value(json_object_get(ev, "reason")) ?: "no reason given");
                s->status = CLI_EXIT_DENIED;
        } else {
                fprintf(stderr, "pocketcoder: the exec was %s: %s\n", state,
                        json_string_value(json_object_get(ev, "reason")) ?: "no reason given");
                s->status = CLI_EXIT_FAILED;
        }
        if (json_is_true(json_object_get(ev, "timed_out")))
                fprintf(stderr, "pocketcoder: timed out: its process tree was killed\n");
        return 1; /* the end */
}

static char *join_command(int argc, char **argv)
{
        _cleanup_free_ char *cmd = NULL;

        if (argc == 1)
                return strdup(argv[0]);
        for (int i = 0; i < argc; i++) {
                _cleanup_free_ char *q = pc_shell_quote(argv[i]);
                char *n;
                if (!q)
                        return NULL;
                n = cmd ? strjoin(cmd, " ", q) : strdup(q);
                if (!n)
                        return NULL;
                free(cmd);
                cmd = n;
        }
        return TAKE_PTR(cmd);
}

int cmd_exec(int argc, char **argv, const cli_global *g)
{
        _cleanup_json_ json_t *req = json_object(), *env = json_object(), *resp = NULL;
        _cleanup_free_ char *cmd = NULL, *path = NULL;
        const char *name = NULL, *state;
        exec_stream s = {.status = CLI_EXIT_FAILED};
        long status;
        int i, r;

        if (!req || !env)
                return CLI_EXIT_FAILED;
        for (i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (streq(a, "--")) {
                        i++;
                        break;
                }
                if (streq(a, "-h") || streq(a, "--help")) {
                        usage(stdout);
                        return CLI_EXIT_OK;
                }
                if ((streq(a, "--cwd") || streq(a, "--timeout") || streq(a, "--env")) && i + 1 >= argc) {
                        fprintf(stderr, "pocketcoder exec: %s needs a value\n", a);
                        return CLI_EXIT_USAGE;
                }
                if (streq(a, "--cwd"))
                        json_object_set_new(req, "cwd", json_string(argv[++i]));
                else if (streq(a, "--timeout")) {
                        uint64_t t;
                        if (parse_uint64(argv[++i], &t) < 0 || t < 1 || t > 86400) {
                                fprintf(stderr,
                                        "pocketcoder exec: --timeout takes seconds from 1 to 86400\n");
                                return CLI_EXIT_USAGE;
                        }
                        json_object_set_new(req, "timeout", json_integer((json_int_t)t));
                } else if (streq(a, "--env")) {
                        const char *kv = argv[++i], *eq = strchr(kv, '=');
                        if (!eq || eq == kv) {
                                fprintf(stderr, "pocketcoder exec: --env takes NAME=VALUE, not \"%s\"\n",
                                        kv);
                                return CLI_EXIT_USAGE;
                        }
                        json_object_set_new(env, strndupa(kv, (size_t)(eq - kv)), json_string(eq + 1));
                } else if (a[0] == '-') {
                        fprintf(stderr,
                                "pocketcoder exec: unknown option \"%s\" (the command goes after --)\n", a);
                        return CLI_EXIT_USAGE;
                } else if (!name)
                        name = a;
                else
                        break; /* COMMAND without "--" */
        }
        if (!name || i >= argc) {
                usage(stderr);
                return CLI_EXIT_USAGE;
        }
        cmd = join_command(argc - i, argv + i);
        if (!cmd)
                return CLI_EXIT_FAILED;
        json_object_set_new(req, "cmd", json_string(cmd));
        if (json_object_size(env) > 0)
                json_object_set(req, "env", env);
        json_object_set_new(req, "wait", json_integer(0));
        path = strjoin("/v1/sandboxes/", name, "/execs");
        if (!path)
                return CLI_EXIT_FAILED;
        r = cli_request(g, "POST", path, req, &status, &resp);
        if (r < 0)
                return CLI_EXIT_FAILED;
        if (status == 403 &&
            streq_ptr(json_string_value(json_object_get(json_object_get(resp, "error"), "code")),
                      "denied")) {
                json_t *err = json_object_get(resp, "error");
                const char *rule = json_string_value(json_object_get(err, "rule"));
                fprintf(stderr, "pocketcoder: denied by the policy: %s%s%s%s\n",
                        json_string_value(json_object_get(err, "message")) ?: "", rule ? " (rule: " : "",
                        rule ?: "", rule ? ")" : "");
                return CLI_EXIT_DENIED;
        }
        if (status != 200 && status != 202)
                return cli_print_api_error(status, resp);
        state = json_string_value(json_object_get(resp, "state"));
        if (streq_ptr(state, "pending"))
                fprintf(stderr,
                        "pocketcoder: this command needs a person's approval (permission %s); waiting...\n",
                        json_string_value(json_object_get(resp, "permission")) ?: "?");
        free(path);
        path = strjoin("/v1/execs/", json_string_value(json_object_get(resp, "id")) ?: "", "/output");
        if (!path)
                return CLI_EXIT_FAILED;
        s.tty[0] = isatty(STDOUT_FILENO);
        s.tty[1] = isatty(STDERR_FILENO);
        termfilter_init(&s.filter[0]);
        termfilter_init(&s.filter[1]);
        r = cli_stream(g, "GET", path, NULL, on_event, &s);
        if (r < 0 && r != -EIO)
                fprintf(stderr, "pocketcoder: the output stream broke: %s\n", strerror(-r));
        return s.status;
}
