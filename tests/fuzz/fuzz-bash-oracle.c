/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the differential test with bash as the oracle (tests/unit/bash-oracle.c). Each input
 * is run by real bash in a throwaway sandbox and decided by the analyser under "default allow"; a program
 * bash runs that the analyser did not see, in a string the analyser called complete and allowed, is a
 * crash. Needs root (namespaces); elsewhere every input passes untested. */

#include "common.h"
#include "bash-oracle.h"
#include "policies.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char text[] = "version 1\ndefault allow\n";
        static pc_policy *p;
        static int available = -1;
        _cleanup_free_ char *names = NULL, *diff = NULL, *cmd = NULL;
        pc_verdict *v = NULL;
        const char *why;
        size_t n = 0;

        if (available < 0)
                available = bash_oracle_available(&why);
        if (!available || size > 4096 || memchr(data, 0, size))
                return 0;
        if (!p && pc_policy_load_string("oracle", NULL, text, strlen(text), &p, NULL) < 0)
                abort();
        cmd = strndup((const char *) data, size);
        if (!cmd || pc_policy_decide(p, cmd, size, &v) < 0)
                return 0;
        /* only strings the analyser fully understood and allowed say something about it */
        if (v->complete && v->decision == PC_DECISION_ALLOW && bash_oracle_run(cmd, size, 500, &names, &n) >= 0) {
                diff = bash_oracle_compare(v, names, n);
                if (diff) {
                        fprintf(stderr, "%s\nin: %s\n", diff, cmd);
                        abort();
                }
        }
        pc_verdict_free(v);
        return 0;
}
