/* SPDX-License-Identifier: MIT */
/* Minimal TAP harness: TEST(name) { ... } registers a case; CHECK() records failures; main() is
 * provided by TAP_MAIN(). Each TEST is one TAP line, so tests/run counts cases, not files. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tap_case {
        const char *name;
        void (*fn)(void);
        struct tap_case *next;
} tap_case;

extern tap_case *tap_cases;
extern int tap_failed_checks;
extern const char *tap_skip_reason;

#define TEST(n)                                                                                           \
        static void test_##n(void);                                                                       \
        static tap_case tap_case_##n = { #n, test_##n, NULL };                                            \
        __attribute__((constructor)) static void tap_register_##n(void)                                   \
        {                                                                                                 \
                tap_case **p = &tap_cases;                                                                \
                while (*p)                                                                                \
                        p = &(*p)->next;                                                                  \
                *p = &tap_case_##n;                                                                       \
        }                                                                                                 \
        static void test_##n(void)

#define CHECK(cond)                                                                                       \
        do {                                                                                              \
                if (!(cond)) {                                                                            \
                        printf("#   %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
                        tap_failed_checks++;                                                              \
                }                                                                                         \
        } while (0)

#define CHECK_STREQ(a, b)                                                                                 \
        do {                                                                                              \
                const char *_a_ = (a), *_b_ = (b);                                                        \
                if (!_a_ || !_b_ || strcmp(_a_, _b_) != 0) {                                              \
                        printf("#   %s:%d: \"%s\" != \"%s\" (%s vs %s)\n", __FILE__, __LINE__,            \
                               _a_ ? _a_ : "(null)", _b_ ? _b_ : "(null)", #a, #b);                       \
                        tap_failed_checks++;                                                              \
                }                                                                                         \
        } while (0)

#define CHECK_INTEQ(a, b)                                                                                 \
        do {                                                                                              \
                long long _a_ = (long long) (a), _b_ = (long long) (b);                                   \
                if (_a_ != _b_) {                                                                         \
                        printf("#   %s:%d: %lld != %lld (%s vs %s)\n", __FILE__, __LINE__, _a_, _b_, #a,  \
                               #b);                                                                       \
                        tap_failed_checks++;                                                              \
                }                                                                                         \
        } while (0)

/* Skip the current case (TAP "# SKIP"), e.g. when not root; tests/run turns skips into failures when
 * POCKETCODER_TESTS_MUST_WORK=1. */
#define SKIP(reason)                                                                                      \
        do {                                                                                              \
                tap_skip_reason = (reason);                                                               \
                return;                                                                                   \
        } while (0)

#define TAP_MAIN()                                                                                        \
        tap_case *tap_cases;                                                                              \
        int tap_failed_checks;                                                                            \
        const char *tap_skip_reason;                                                                      \
        int main(void)                                                                                    \
        {                                                                                                 \
                int n = 0, i = 0, bad = 0;                                                                \
                const char *must = getenv("POCKETCODER_TESTS_MUST_WORK");                                 \
                for (tap_case *c = tap_cases; c; c = c->next)                                             \
                        n++;                                                                              \
                printf("TAP version 13\n1..%d\n", n);                                                     \
                fflush(stdout);                                                                           \
                for (tap_case *c = tap_cases; c; c = c->next) {                                           \
                        int before = tap_failed_checks;                                                   \
                        tap_skip_reason = NULL;                                                           \
                        c->fn();                                                                          \
                        i++;                                                                              \
                        if (tap_skip_reason && !(must && strcmp(must, "1") == 0))                         \
                                printf("ok %d - %s # SKIP %s\n", i, c->name, tap_skip_reason);            \
                        else if (tap_skip_reason) {                                                       \
                                printf("not ok %d - %s # must work but skipped: %s\n", i, c->name,        \
                                       tap_skip_reason);                                                  \
                                bad++;                                                                    \
                        } else if (tap_failed_checks == before)                                           \
                                printf("ok %d - %s\n", i, c->name);                                       \
                        else {                                                                            \
                                printf("not ok %d - %s\n", i, c->name);                                   \
                                bad++;                                                                    \
                        }                                                                                 \
                        fflush(stdout);                                                                   \
                }                                                                                         \
                return bad ? 1 : 0;                                                                       \
        }
