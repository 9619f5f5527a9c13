/* SPDX-License-Identifier: MIT */
/* Corpus test: every command of tests/corpus/commands.tsv is decided under the shipped policies and
 * tests/corpus/test.policy; one TAP line per command. */

#include "common.h"
#include "corpus.h"
#include "policies.h"

static const char *const policy_files[] = {
        "policies/defaults/default.policy",
        "policies/defaults/strict.policy",
        "policies/defaults/permissive.policy",
        "tests/corpus/test.policy",
};

static int letter_to_decision(char c)
{
        return c == 'a' ? PC_DECISION_ALLOW : c == 'q' ? PC_DECISION_ASK : c == 'd' ? PC_DECISION_DENY : -1;
}


int main(int argc, char **argv)
{
        const char *src = getenv("POCKETCODER_SOURCE_DIR") ?: ".";
        pc_policy *pols[ELEMENTSOF(policy_files)] = {};
        _cleanup_free_ char *corpus = NULL, *path = NULL;
        size_t size, n = 0, failed = 0;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(policy_files); i++) {
                _cleanup_free_ char *p = strjoin(src, "/", policy_files[i]), *errs = NULL;
                r = pc_policy_load_file(p, &pols[i], &errs);
                if (r < 0) {
                        printf("Bail out! cannot load %s: %s\n%s", p, strerror(-r), errs ?: "");
                        return 1;
                }
        }
        path = strjoin(src, "/tests/corpus/commands.tsv");
        r = read_full_file(path, 16 * 1024 * 1024, &corpus, &size);
        if (r < 0) {
                printf("Bail out! cannot read %s: %s\n", path, strerror(-r));
                return 1;
        }
        for (char *l = corpus; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l))
                if (*l != '#' && *l != '\n' && strchr(l, '\t'))
                        n++;
        printf("TAP version 13\n1..%zu\n", n);

        size_t i = 0;
        for (char *line = strtok(corpus, "\n"); line; line = strtok(NULL, "\n")) {
                char *tab = strchr(line, '\t');
                if (line[0] == '#' || !tab)
                        continue;
                *tab = 0;
                i++;
                _cleanup_free_ char *cmd = corpus_unescape(tab + 1);
                bool ok = strlen(line) == ELEMENTSOF(policy_files);
                char detail[4096] = "";
                size_t dl = 0;
                for (size_t k = 0; ok && k < ELEMENTSOF(policy_files); k++) {
                        pc_verdict *v = NULL;
                        int want = letter_to_decision(line[k]);
                        if (want < 0 || pc_policy_decide(pols[k], cmd, strlen(cmd), &v) < 0) {
                                ok = false;
                                break;
                        }
                        if ((int) v->decision != want) {
                                char *text = NULL;
                                ok = false;
                                if (pc_verdict_format(v, &text) >= 0)
                                        dl += (size_t) snprintf(detail + dl, sizeof detail - MIN(dl, sizeof detail),
                                                                "# under %s: got %s, want %s\n# %s",
                                                                pc_policy_name(pols[k]),
                                                                pc_decision_to_string(v->decision),
                                                                pc_decision_to_string(want), text);
                                free(text);
                                dl = MIN(dl, sizeof detail - 1);
                        }
                        pc_verdict_free(v);
                }
                /* the description is the command on one line */
                for (char *c = tab + 1; *c; c++)
                        if (*c == '#')
                                *c = '%';
                printf("%s %zu - %s %s\n", ok ? "ok" : "not ok", i, line, tab + 1);
                if (!ok) {
                        for (char *c = detail; *c; c++)
                                if (*c == '\n' && c[1] && c[1] != '#')
                                        *c = '\n';
                        fputs(detail, stdout);
                        failed++;
                }
        }
        for (size_t k = 0; k < ELEMENTSOF(policy_files); k++)
                pc_policy_free(pols[k]);
        (void) argc;
        (void) argv;
        return failed ? 1 : 0;
}
