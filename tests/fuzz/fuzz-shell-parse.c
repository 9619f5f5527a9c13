/* SPDX-License-Identifier: MIT */
/* libFuzzer target: any bytes as a command string, decided under a policy with exec, option, glob and
 * write rules. Besides memory safety it checks the contract that matters: the first line of the
 * explanation is the decision, and a command with notes is never allowed. */

#include "common.h"
#include "policies.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char policy_text[] =
        "version 1\n"
        "default allow\n"
        "deny exec rm -rf ...\n"
        "ask exec git push ...\n"
        "deny exec curl ...\n"
        "allow exec ls ...\n"
        "ask exec find -delete ...\n"
        "deny exec * --danger ...\n"
        "deny write /etc/*\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static pc_policy *p;
        pc_verdict *v = NULL;
        char *text = NULL;

        if (!p && pc_policy_load_string("fuzz", NULL, policy_text, strlen(policy_text), &p, NULL) < 0)
                abort();
        if (pc_policy_decide(p, (const char *) data, size, &v) < 0)
                return 0;
        if ((v->n_notes > 0 || !v->complete) && v->decision == PC_DECISION_ALLOW)
                abort();
        if (pc_verdict_format(v, &text) >= 0) {
                const char *d = pc_decision_to_string(v->decision);
                if (!startswith(text, d) || text[strlen(d)] != '\n')
                        abort();
                free(text);
        }
        pc_verdict_free(v);
        return 0;
}
