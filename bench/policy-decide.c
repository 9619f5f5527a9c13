/* SPDX-License-Identifier: MIT */
/* Decision time of the gatekeeper: generates policies of 1, 100 and 1,000 rules and a realistic 1,000-rule
 * policy (200 git rules, globbed command words, option sets, write rules), decides realistic commands
 * (simple, compound, wrapped, with substitutions) many times, prints median, p99 and max per policy; then
 * the worst case: pathological inputs of 64 KiB to 1 MiB, time per byte (linear: the same for all sizes).
 * Usage: policy-decide [ITERATIONS]   (default 20000 decisions per policy) */

#include <inttypes.h>
#include <stdarg.h>
#include <time.h>

#include "common.h"
#include "policies.h"

static const char *const commands[] = {
        "git status --short",
        "ls -la src/",
        "grep -rn deprecated src/ | wc -l",
        "npm test -- --watch=false",
        "git log --oneline -n 10 | head -3",
        "cd src && make -j4 test 2>&1 | tee /tmp/build.log",
        "find . -name '*.o' -exec rm {} +",
        "sudo -u root env FOO=1 timeout 5 tool500 sub3 --flag value",
        "rm -rf build dist && mkdir -p build",
        "echo \"$(git rev-parse HEAD)\" > /tmp/rev",
        "bash -c 'tool10 sub1 x; tool20 sub2 y'",
        "for f in *.c; do gcc -c \"$f\"; done",
        "git log --oneline -n 20 -- src/ | grep -v Merge",
        "git -C sub diff --stat HEAD~3 > /tmp/diff.txt",
        "sort -k2,2 -t, data.csv | uniq -c | sort -rn | head",
        "find . -name '*.py' -newer setup.py -exec grep -l deprecated {} +",
};

typedef struct strbuf_t {
        char *s;
        size_t n, cap, lines;
} strbuf_t;

static void put(strbuf_t *b, const char *fmt, ...) _printf_(2, 3);
static void put(strbuf_t *b, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0 || (size_t) k >= b->cap - b->n)
                abort();
        b->n += (size_t) k;
        b->lines++;
}

static size_t b_rules(const strbuf_t *b)
{
        return b->lines; /* "version" and "default" included: 1,000 rules at 1,002 lines */
}

/* A policy as a team would write it: many rules share command names. */
static char *make_realistic_policy(void)
{
        static const char *const git_subs[] = {
                "status", "log", "diff", "show", "blame", "branch", "checkout", "switch", "add", "commit",
                "push", "pull", "fetch", "merge", "rebase", "reset", "restore", "stash", "tag", "remote",
                "clean", "cherry-pick", "revert", "bisect", "worktree", "submodule", "config", "describe",
                "shortlog", "grep", "ls-files", "rev-parse", "reflog", "notes", "archive", "apply", "am",
                "format-patch", "gc", "mv",
        };
        static const char *const progs[] = {
                "ls", "cat", "head", "tail", "grep", "rg", "find", "wc", "sort", "uniq", "cut", "tr", "sed",
                "awk", "jq", "make", "cmake", "ninja", "gcc", "clang", "npm", "npx", "node", "python3", "pip",
                "pytest", "cargo", "go", "docker", "kubectl", "terraform", "curl", "wget", "ssh", "scp", "rsync",
                "tar", "zip", "unzip", "chmod", "chown", "cp", "mv", "rm", "mkdir", "touch", "ln", "du", "df",
        };
        strbuf_t b = { .cap = 256 * 1024 };
        b.s = malloc(b.cap);
        put(&b, "version 1\ndefault ask\n");
        for (size_t i = 0; i < ELEMENTSOF(git_subs); i++) { /* 200 git rules */
                const char *g = git_subs[i];
                put(&b, "allow exec git %s ...\n", g);
                put(&b, "ask exec git %s --force ...\n", g);
                put(&b, "deny exec git %s -f --no-verify ...\n", g);
                put(&b, "allow exec git %s --help\n", g);
                put(&b, "ask exec git %s * --quiet ...\n", g);
        }
        for (unsigned i = 0; i < 100; i++) /* globbed command words */
                put(&b, "%s exec %s ...\n", i % 7 == 0 ? "deny" : "allow",
                    i % 4 == 0 ? "tool-*-lint" : i % 4 == 1 ? "./scripts/*.sh" : i % 4 == 2 ? "py*" : "*-admin%u");
        for (unsigned i = 0; i < 400; i++) { /* option sets over common programs */
                const char *p = progs[i % ELEMENTSOF(progs)];
                put(&b, "%s exec %s -%c%c --opt%u ...\n", i % 3 == 0 ? "deny" : i % 3 == 1 ? "ask" : "allow", p,
                    'a' + (char) (i % 26), 'A' + (char) (i % 26), i);
        }
        for (unsigned i = 0; i < 200; i++) /* write rules */
                put(&b, "%s write %s%u/**\n", i % 4 == 0 ? "deny" : "allow", i % 2 ? "/etc/app" : "build/out", i);
        for (unsigned i = 0; b_rules(&b) < 1002; i++) /* the rest: plain allows */
                put(&b, "allow exec %s sub%u ...\n", progs[i % ELEMENTSOF(progs)], i);
        return b.s;
}

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

static int run(const char *label, const char *text, unsigned iterations, uint64_t *samples)
{
        _cleanup_free_ char *errors = NULL;
        pc_policy *p = NULL;
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);

        if (pc_policy_load_string("bench", NULL, text, strlen(text), &p, &errors) < 0) {
                fprintf(stderr, "policy-decide: generated policy does not load:\n%s", errors ?: "");
                return -EINVAL;
        }
        uint64_t load_us = now_usec(CLOCK_MONOTONIC) - t0;
        for (unsigned i = 0; i < iterations; i++) {
                const char *c = commands[i % ELEMENTSOF(commands)];
                struct timespec a, b;
                pc_verdict *v = NULL;
                clock_gettime(CLOCK_MONOTONIC, &a);
                if (pc_policy_decide(p, c, strlen(c), &v) < 0)
                        return -ENOMEM;
                clock_gettime(CLOCK_MONOTONIC, &b);
                pc_verdict_free(v);
                samples[i] = (uint64_t) ((b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
        }
        qsort(samples, iterations, sizeof(uint64_t), cmp_u64);
        printf("%-16s %6zu %7" PRIu64 "us %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n", label, pc_policy_n_rules(p),
               load_us, samples[iterations / 2], samples[iterations * 99 / 100], samples[iterations - 1]);
        pc_policy_free(p);
        return 0;
}

/* Worst cases: each shape repeated to SIZE bytes, decided once under the realistic policy. */
static int worst_case(const char *text)
{
        static const char *const shapes[] = {
                "$(( ", "(( ", "\"$(", "${x:-", "ls;", "a=([i]=1) ", "echo $((1+2)) \"$(ls -l)\" > /dev/null; ",
                "cat <<E\n$x\nE\n", "git log --oneline -n 5 | head; ",
        };
        static const size_t sizes[] = { 64 * 1024, 256 * 1024, 1024 * 1024 };
        pc_policy *p = NULL;

        if (pc_policy_load_string("bench", NULL, text, strlen(text), &p, NULL) < 0)
                return -EINVAL;
        /* Wall time and the CPU time this thread spent: on a busy machine the first includes waiting for a
         * core, the second is the decision's own cost. */
        printf("\nworst case (realistic policy): ns per input byte at 64 KiB, 256 KiB, 1 MiB, and the 1 MiB time "
               "(wall, cpu)\n");
        for (size_t i = 0; i < ELEMENTSOF(shapes); i++) {
                printf("%-40.40s", shapes[i]);
                for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
                        size_t n = strlen(shapes[i]), reps = sizes[k] / n;
                        _cleanup_free_ char *cmd = malloc(reps * n + 1);
                        struct timespec a, b, ca, cb;
                        pc_verdict *v = NULL;
                        if (!cmd)
                                return -ENOMEM;
                        for (size_t r = 0; r < reps; r++)
                                memcpy(cmd + r * n, shapes[i], n);
                        cmd[reps * n] = 0;
                        clock_gettime(CLOCK_MONOTONIC, &a);
                        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ca);
                        if (pc_policy_decide(p, cmd, reps * n, &v) < 0)
                                return -ENOMEM;
                        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cb);
                        clock_gettime(CLOCK_MONOTONIC, &b);
                        pc_verdict_free(v);
                        double ns = (double) (b.tv_sec - a.tv_sec) * 1e9 + (double) (b.tv_nsec - a.tv_nsec);
                        printf(" %8.1f", ns / (double) (reps * n));
                        if (k == ELEMENTSOF(sizes) - 1)
                                printf("  %7.1f ms  %7.1f ms", ns / 1e6,
                                       ((double) (cb.tv_sec - ca.tv_sec) * 1e9 + (double) (cb.tv_nsec - ca.tv_nsec)) / 1e6);
                }
                printf("\n");
        }
        pc_policy_free(p);
        return 0;
}

int main(int argc, char **argv)
{
        static const unsigned sizes[] = { 1, 100, 1000 };
        unsigned iterations = argc > 1 ? (unsigned) atoi(argv[1]) : 20000;
        _cleanup_free_ uint64_t *samples = NULL;
        _cleanup_free_ char *realistic = make_realistic_policy();

        if (iterations < 100)
                iterations = 100;
        samples = calloc(iterations, sizeof(uint64_t));
        if (!samples)
                return 1;
        printf("%-16s %6s %9s %10s %10s %10s   (%u decisions of %zu commands, ns per decision)\n", "policy", "rules",
               "loaded", "median", "p99", "max", iterations, ELEMENTSOF(commands));
        for (size_t s = 0; s < ELEMENTSOF(sizes); s++) {
                _cleanup_free_ char *text = make_policy(sizes[s]);
                char label[32];
                snprintf(label, sizeof label, "generated-%u", sizes[s]);
                if (run(label, text, iterations, samples) < 0)
                        return 1;
        }
        if (run("realistic-1000", realistic, iterations, samples) < 0)
                return 1;
        return worst_case(realistic) < 0 ? 1 : 0;
}
