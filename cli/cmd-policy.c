/* SPDX-License-Identifier: MIT */
/* pocketcoder policy: offline check/decide with the policies library, and list/show/reload against the
 * daemon. */

#include <getopt.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "policies.h"

/* Loads FILE and records the SHA-256 of its source, as the daemon does, so that offline decisions carry
 * the same hash as the daemon's for the same file. */
static int load_policy(const char *file, pc_policy **ret, char **ret_errors)
{
        static const char digits[] = "0123456789abcdef";
        uint8_t md[SHA256_DIGEST_SIZE];
        struct sha256_ctx c;
        char hex[65];
        size_t n;
        int r;

        r = pc_policy_load_file(file, ret, ret_errors);
        if (r < 0)
                return r;
        const char *src = pc_policy_source(*ret, &n);
        sha256_init(&c);
        sha256_update(&c, n, (const uint8_t *) src);
        sha256_digest(&c, sizeof(md), md);
        for (size_t i = 0; i < sizeof(md); i++) {
                hex[2 * i] = digits[md[i] >> 4];
                hex[2 * i + 1] = digits[md[i] & 15];
        }
        hex[64] = 0;
        (void) pc_policy_set_hash(*ret, hex);
        return 0;
}

static const char usage_text[] =
        "Usage: pocketcoder policy check FILE...\n"
        "       pocketcoder policy decide --policy FILE [--json] -- 'COMMAND STRING'\n"
        "       pocketcoder policy list | show NAME | reload\n"
        "\n"
        "Offline (no daemon needed):\n"
        "  check FILE...     validate policy files and run their test lines; errors are printed\n"
        "                    compiler-style (FILE:LINE:COL). Exit 0 if all are valid, 1 if not.\n"
        "  decide            decide COMMAND STRING under the policy FILE without running it; the first\n"
        "                    output line is exactly allow, ask or deny, then the explanation.\n"
        "Online (talks to pocketcoderd):\n"
        "  list              the loaded policies with hash, rule count, load time and errors\n"
        "  show NAME         one policy: hash, load time, errors and source\n"
        "  reload            re-read the policy directory now (like SIGHUP), then list\n"
        "\n"
        "The language is described in docs/policies.md and pocketcoder-policy(1).\n";

static int usage(FILE *f, int status)
{
        fputs(usage_text, f);
        return status;
}

static bool is_help(const char *s)
{
        return streq(s, "--help") || streq(s, "-h");
}

/* ---- check ---- */

static int policy_check(int argc, char **argv, const cli_global *g)
{
        _cleanup_json_ json_t *out = json_array();
        int status = CLI_EXIT_OK;

        if (argc < 2) {
                fputs("pocketcoder policy check: expected at least one FILE\n", stderr);
                return CLI_EXIT_USAGE;
        }
        if (is_help(argv[1])) {
                printf("Usage: pocketcoder policy check FILE...\n\n"
                       "Loads each policy file (with its includes), reports every error as FILE:LINE:COL with\n"
                       "the line and a caret, and runs its test lines. Exit status 0 when every file is valid,\n"
                       "1 when one is not, 2 on bad usage. --json prints {\"files\":[...]}.\n");
                return CLI_EXIT_OK;
        }
        for (int i = 1; i < argc; i++) {
                _cleanup_pc_policy_ pc_policy *p = NULL;
                _cleanup_free_ char *errors = NULL;
                int r = load_policy(argv[i], &p, &errors);

                if (r == -ENOMEM)
                        return CLI_EXIT_FAILED;
                if (g->json) {
                        json_t *o = json_pack("{s:s, s:b}", "path", argv[i], "ok", r >= 0);
                        if (!o)
                                return CLI_EXIT_FAILED;
                        if (p) {
                                json_object_set_new(o, "name", json_string(pc_policy_name(p)));
                                json_object_set_new(o, "rules", json_integer((json_int_t) pc_policy_n_rules(p)));
                                json_object_set_new(o, "tests", json_integer((json_int_t) pc_policy_n_tests(p)));
                        }
                        json_object_set_new(o, "errors", errors ? json_string(errors) : json_null());
                        json_array_append_new(out, o);
                } else if (r >= 0)
                        printf("%s: ok (%zu rules, %zu tests passed, default %s)\n", argv[i], pc_policy_n_rules(p),
                               pc_policy_n_tests(p), pc_decision_to_string(pc_policy_default(p)));
                else
                        fputs(errors ?: "", stderr);
                if (r < 0)
                        status = CLI_EXIT_FAILED;
        }
        if (g->json) {
                json_t *o = json_pack("{s:O}", "files", out);
                cli_print_json(o);
                json_decref(o);
        }
        return status;
}

/* ---- decide ---- */

static json_t *string_or_null(const char *s)
{
        return s ? json_string(s) : json_null();
}

static json_t *verdict_to_json(const pc_verdict *v)
{
        json_t *o = json_object(), *cmds = json_array(), *redirs = json_array(), *notes = json_array();

        if (!o || !cmds || !redirs || !notes) {
                json_decref(o);
                json_decref(cmds);
                json_decref(redirs);
                json_decref(notes);
                return NULL;
        }
        json_object_set_new(o, "decision", json_string(pc_decision_to_string(v->decision)));
        json_object_set_new(o, "policy", json_string(v->policy_name));
        json_object_set_new(o, "hash", string_or_null(v->policy_hash));
        json_object_set_new(o, "complete", json_boolean(v->complete));
        for (size_t i = 0; i < v->n_commands; i++) {
                const pc_verdict_command *e = &v->commands[i];
                json_t *argv = json_array();
                for (size_t k = 0; k < e->argc; k++)
                        json_array_append_new(argv, json_string(e->argv[k]));
                json_array_append_new(cmds, json_pack("{s:o, s:s, s:s, s:o, s:o, s:o}", "argv", argv, "decision",
                                                      pc_decision_to_string(e->decision), "rule", e->rule,
                                                      "rule_text", string_or_null(e->rule_text), "reason",
                                                      string_or_null(e->reason), "via", string_or_null(e->via)));
        }
        for (size_t i = 0; i < v->n_redirects; i++) {
                const pc_verdict_redirect *e = &v->redirects[i];
                json_array_append_new(redirs,
                                      json_pack("{s:s, s:s, s:b, s:b, s:s, s:o, s:o, s:o}", "op", e->op, "path",
                                                e->path, "literal", e->literal, "output", e->output, "decision",
                                                pc_decision_to_string(e->decision), "rule", string_or_null(e->rule),
                                                "rule_text", string_or_null(e->rule_text), "reason",
                                                string_or_null(e->reason)));
        }
        for (size_t i = 0; i < v->n_notes; i++)
                json_array_append_new(notes, json_string(v->notes[i]));
        json_object_set_new(o, "commands", cmds);
        json_object_set_new(o, "redirects", redirs);
        json_object_set_new(o, "notes", notes);
        return o;
}

static int policy_decide(int argc, char **argv, const cli_global *g)
{
        static const struct option options[] = {
                { "policy", required_argument, NULL, 'p' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_pc_policy_ pc_policy *p = NULL;
        _cleanup_pc_verdict_ pc_verdict *v = NULL;
        _cleanup_free_ char *errors = NULL, *command = NULL;
        const char *file = NULL;
        bool json = g->json;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+p:jh", options, NULL)) >= 0)
                switch (c) {
                case 'p':
                        file = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        printf("Usage: pocketcoder policy decide --policy FILE [--json] -- 'COMMAND STRING'\n\n"
                               "Decides COMMAND STRING under the policy FILE without running anything. The first\n"
                               "output line is exactly allow, ask or deny; then every simple command found (after\n"
                               "looking through wrappers) with the rule that decided it (FILE:LINE or default),\n"
                               "redirections, and why anything could not be analysed. Several words after -- are\n"
                               "joined with spaces. --json prints the same as a JSON object.\n");
                        return CLI_EXIT_OK;
                default:
                        return usage(stderr, CLI_EXIT_USAGE);
                }
        if (!file) {
                fputs("pocketcoder policy decide: --policy FILE is required\n", stderr);
                return CLI_EXIT_USAGE;
        }
        if (optind >= argc) {
                fputs("pocketcoder policy decide: expected the command string after --\n", stderr);
                return CLI_EXIT_USAGE;
        }
        for (int i = optind; i < argc; i++) {
                char *n = command ? strjoin(command, " ", argv[i]) : strdup(argv[i]);
                if (!n)
                        return CLI_EXIT_FAILED;
                free(command);
                command = n;
        }
        r = load_policy(file, &p, &errors);
        if (r < 0) {
                fprintf(stderr, "pocketcoder: policy %s is not valid:\n%s", file, errors ?: "");
                return CLI_EXIT_FAILED;
        }
        if (pc_policy_decide(p, command, strlen(command), &v) < 0)
                return CLI_EXIT_FAILED;
        if (json) {
                json_t *o = verdict_to_json(v);
                if (!o)
                        return CLI_EXIT_FAILED;
                cli_print_json(o);
                json_decref(o);
                return CLI_EXIT_OK;
        }
        _cleanup_free_ char *text = NULL;
        if (pc_verdict_format(v, &text) < 0)
                return CLI_EXIT_FAILED;
        fputs(text, stdout);
        return CLI_EXIT_OK;
}

/* ---- online ---- */

static char *json_to_text(json_t *j)
{
        if (!j || json_is_null(j))
                return NULL;
        if (json_is_string(j))
                return strdup(json_string_value(j));
        if (json_is_integer(j)) {
                char *s = NULL;
                return asprintf(&s, "%lld", (long long) json_integer_value(j)) < 0 ? NULL : s;
        }
        return json_dumps(j, JSON_COMPACT);
}

/* Errors are reported by the daemon as a string (compiler-style lines) or an array of strings. */
static void print_errors(const char *name, json_t *errors)
{
        if (!errors || json_is_null(errors) || (json_is_string(errors) && !*json_string_value(errors)) ||
            (json_is_array(errors) && json_array_size(errors) == 0))
                return;
        printf("\nerrors in %s (the last good version stays in force):\n", name);
        if (json_is_string(errors))
                fputs(json_string_value(errors), stdout);
        else if (json_is_array(errors)) {
                size_t i;
                json_t *e;
                json_array_foreach(errors, i, e) {
                        _cleanup_free_ char *t = json_to_text(e);
                        printf("%s\n", strna(t));
                }
        } else {
                _cleanup_free_ char *t = json_to_text(errors);
                printf("%s\n", strna(t));
        }
}

static int print_list(json_t *j)
{
        static const char *const header[] = { "NAME", "HASH", "RULES", "LOADED", "ERRORS" };
        json_t *list = json_object_get(j, "policies"), *e;
        size_t n = json_array_size(list), i;
        _cleanup_free_ char **cells = calloc(n * ELEMENTSOF(header) + 1, sizeof(char *));

        if (!cells)
                return CLI_EXIT_FAILED;
        json_array_foreach(list, i, e) {
                char **row = cells + i * ELEMENTSOF(header);
                json_t *errs = json_object_get(e, "errors");
                _cleanup_free_ char *hash = json_to_text(json_object_get(e, "hash"));
                row[0] = json_to_text(json_object_get(e, "name"));
                row[1] = hash ? strndup(hash, 12) : NULL;
                row[2] = json_to_text(json_object_get(e, "rules"));
                row[3] = strdup(cli_format_time(json_object_get(e, "loaded_at"), (char[32]){}));
                if (json_is_array(errs))
                        asprintf_safe(&row[4], "%zu", json_array_size(errs));
                else if (json_is_string(errs) && *json_string_value(errs)) {
                        size_t lines = 0;
                        for (const char *s = json_string_value(errs); (s = strstr(s, ": error: ")); s++)
                                lines++;
                        asprintf_safe(&row[4], "%zu", lines ?: 1);
                } else
                        row[4] = strdup("0");
        }
        cli_table_print(header, ELEMENTSOF(header), cells, n);
        json_array_foreach(list, i, e) {
                const char *name = json_string_value(json_object_get(e, "name"));
                print_errors(name ?: "?", json_object_get(e, "errors"));
        }
        for (size_t k = 0; k < n * ELEMENTSOF(header); k++)
                free(cells[k]);
        return CLI_EXIT_OK;
}

static int policy_online(int argc, char **argv, const cli_global *g)
{
        _cleanup_json_ json_t *j = NULL;
        _cleanup_free_ char *path = NULL;
        const char *verb = argv[0], *method = "GET";

        if (argc > 1 && is_help(argv[1])) {
                if (streq(verb, "list"))
                        printf("Usage: pocketcoder policy list\n\nLists the policies the daemon has loaded: name, "
                               "content hash, rule count, load time\nand the errors of a broken file (the last good "
                               "version stays in force).\n");
                else if (streq(verb, "show"))
                        printf("Usage: pocketcoder policy show NAME\n\nShows one loaded policy: hash, load time, "
                               "errors and its source.\n");
                else
                        printf("Usage: pocketcoder policy reload\n\nMakes the daemon re-read its policy directory "
                               "now (as on SIGHUP or a file change)\nand prints the resulting list.\n");
                return CLI_EXIT_OK;
        }
        if (streq(verb, "show")) {
                if (argc != 2) {
                        fputs("pocketcoder policy show: expected one NAME\n", stderr);
                        return CLI_EXIT_USAGE;
                }
                for (const char *s = argv[1]; *s; s++)
                        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *s) ||
                            streq(argv[1], ".") || streq(argv[1], "..")) {
                                fprintf(stderr, "pocketcoder policy show: invalid policy name \"%s\"\n", argv[1]);
                                return CLI_EXIT_USAGE;
                        }
                path = strjoin("/v1/policies/", argv[1]);
        } else {
                if (argc != 1) {
                        fprintf(stderr, "pocketcoder policy %s: takes no arguments\n", verb);
                        return CLI_EXIT_USAGE;
                }
                if (streq(verb, "reload")) {
                        method = "POST";
                        path = strdup("/v1/policies/reload");
                } else
                        path = strdup("/v1/policies");
        }
        if (!path)
                return CLI_EXIT_FAILED;
        if (cli_call(g, method, path, NULL, 200, &j) < 0)
                return CLI_EXIT_FAILED;
        if (g->json) {
                cli_print_json(j);
                return CLI_EXIT_OK;
        }
        if (!streq(verb, "show"))
                return print_list(j);

        _cleanup_free_ char *name = json_to_text(json_object_get(j, "name")),
                            *hash = json_to_text(json_object_get(j, "hash")),
                            *loaded = strdup(cli_format_time(json_object_get(j, "loaded_at"), (char[32]){}));
        printf("%-8s%s\n%-8s%s\n%-8s%s\n", "name", strna(name), "hash", strna(hash), "loaded", strna(loaded));
        print_errors(name ?: argv[1], json_object_get(j, "errors"));
        const char *source = json_string_value(json_object_get(j, "source"));
        if (source)
                printf("\n%s%s", source, *source && source[strlen(source) - 1] != '\n' ? "\n" : "");
        return CLI_EXIT_OK;
}

int cmd_policy(int argc, char **argv, const cli_global *g)
{
        if (argc < 2)
                return usage(stderr, CLI_EXIT_USAGE);
        if (is_help(argv[1]))
                return usage(stdout, CLI_EXIT_OK);
        if (streq(argv[1], "check"))
                return policy_check(argc - 1, argv + 1, g);
        if (streq(argv[1], "decide"))
                return policy_decide(argc - 1, argv + 1, g);
        if (streq(argv[1], "list") || streq(argv[1], "show") || streq(argv[1], "reload"))
                return policy_online(argc - 1, argv + 1, g);
        fprintf(stderr, "pocketcoder policy: unknown subcommand \"%s\"\n", argv[1]);
        return usage(stderr, CLI_EXIT_USAGE);
}
