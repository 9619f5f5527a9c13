/* SPDX-License-Identifier: MIT */
/* libFuzzer target: any bytes as a policy file. Must never crash, leak or read out of bounds; when the
 * bytes load, deciding commands with the result must not either. */

#include "common.h"
#include "policies.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const commands[] = {
                "ls -la", "git push --force origin main", "rm -rf /", "find . -exec rm {} \\;",
                "sudo env FOO=1 xargs rm -r", "echo $(curl x) > /tmp/y", "bash -c 'ls; cat x'",
        };
        _cleanup_free_ char *errors = NULL;
        pc_policy *p = NULL;

        if (pc_policy_load_string("fuzz", NULL, (const char *) data, size, &p, &errors) < 0)
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                pc_verdict *v = NULL;
                char *text = NULL;
                if (pc_policy_decide(p, commands[i], strlen(commands[i]), &v) < 0)
                        continue;
                if (pc_verdict_format(v, &text) >= 0)
                        free(text);
                pc_verdict_free(v);
        }
        pc_policy_free(p);
        return 0;
}
