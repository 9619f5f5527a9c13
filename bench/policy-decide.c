/* SPDX-License-Identifier: MIT */
/* Decision time of the gatekeeper: generates policies of 1, 100 and 1,000 rules, decides realistic
 * commands (simple, compound, wrapped, with substitutions) many times, prints median and p95 per size.
 * Usage: policy-decide [ITERATIONS]   (default 20000 decisions per policy size) */

#include <inttypes.h>
#include <time.h>

#include "common.h"
#include "policies.h"

static const char *const commands[] = {
        "git status --short",
        "ls -la src/",
        "grep -rn TODO src/ | wc -l",
        "npm test -- --watch=false",
        "git log --oneline -n 10 | head -3",
        "cd src && make -j4 test 2>&1 | tee /tmp/build.log",
        "find . -name '*.o' -exec rm {} +",
        "sudo -u root env FOO=1 timeout 5 tool500 sub3 --flag value",
        "rm -rf build dist && mkdir -p build",
        "echo \"$(git rev-parse HEAD)\" > /tmp/rev",
        "bash -c 'tool10 sub1 x; tool20 sub2 y'",
        "for f in *.c; do gcc -c \"$f\"; done",
};

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static char *make_policy(unsigned n_rules)
{
        static const char *const real[] = {
                "allow exec git status ...", "allow exec git log ...", "allow exec ls ...", "allow exec grep ...",
                "allow exec wc ...", "allow exec head ...", "allow exec npm test ...", "ask exec git push ...",
                "deny exec rm -rf ...", "allow exec make ...", "allow exec find ...", "ask exec find -delete ...",
                "allow exec mkdir -p *", "allow exec echo ...", "allow exec tee /tmp/*", "allow exec gcc -c *",
                "allow write /tmp/*", "deny write /etc/*", "allow exec cd ...", "allow exec * --version",
        };
        size_t cap = 64 + (size_t) n_rules * 64;
        char *t = malloc(cap);
        size_t len = (size_t) snprintf(t, cap, "version 1\ndefault ask\n");
        for (unsigned i = 0; i < n_rules; i++) {
                if (i < ELEMENTSOF(real))
                        len += (size_t) snprintf(t + len, cap - len, "%s\n", real[i]);
                else
                        /* filler rules: distinct commands, some with globs, flags and tails */
                        len += (size_t) snprintf(t + len, cap - len, "%s exec tool%u sub%u%s%s\n",
                                                 i % 5 == 0 ? "deny" : i % 3 == 0 ? "ask" : "allow", i, i % 9,
                                                 i % 4 == 0 ? " -rf" : "", i % 2 ? " ..." : " *");
        }
        return t;
}

int main(int argc, char **argv)
{
        static const unsigned sizes[] = { 1, 100, 1000 };
        unsigned iterations = argc > 1 ? (unsigned) atoi(argv[1]) : 20000;
        _cleanup_free_ uint64_t *samples = NULL;

        if (iterations < 100)
                iterations = 100;
        samples = calloc(iterations, sizeof(uint64_t));
        if (!samples)
                return 1;
        printf("%-6s %-8s %10s %10s %10s   (%u decisions of %zu commands, ns per decision)\n", "rules",
               "loaded", "median", "p95", "max", iterations, ELEMENTSOF(commands));
        for (size_t s = 0; s < ELEMENTSOF(sizes); s++) {
                _cleanup_free_ char *text = make_policy(sizes[s]), *errors = NULL;
                pc_policy *p = NULL;
                uint64_t t0 = now_usec(CLOCK_MONOTONIC);
                if (pc_policy_load_string("bench", NULL, text, strlen(text), &p, &errors) < 0) {
                        fprintf(stderr, "policy-decide: generated policy does not load:\n%s", errors ?: "");
                        return 1;
                }
                uint64_t load_us = now_usec(CLOCK_MONOTONIC) - t0;
                for (unsigned i = 0; i < iterations; i++) {
                        const char *c = commands[i % ELEMENTSOF(commands)];
                        struct timespec a, b;
                        pc_verdict *v = NULL;
                        clock_gettime(CLOCK_MONOTONIC, &a);
                        if (pc_policy_decide(p, c, strlen(c), &v) < 0)
                                return 1;
                        clock_gettime(CLOCK_MONOTONIC, &b);
                        pc_verdict_free(v);
                        samples[i] = (uint64_t) ((b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
                }
                qsort(samples, iterations, sizeof(uint64_t), cmp_u64);
                printf("%-6u %5" PRIu64 "us %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n", sizes[s], load_us,
                       samples[iterations / 2], samples[iterations * 95 / 100], samples[iterations - 1]);
                pc_policy_free(p);
        }
        return 0;
}
