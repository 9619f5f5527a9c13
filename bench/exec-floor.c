/* SPDX-License-Identifier: MIT */
/* What this machine's kernel charges for the processes under an exec, without the daemon: the floor under
 * bench/exec.sh's round trips. Three rows, p50/p95 of N runs each:
 *   fork, _exit, reap             a process that does nothing
 *   fork, exec /bin/true, reap    a program started and ended (what a window per exec paid, and more)
 *   warm bash: job to reaped      a bash already started and waiting on a pipe (a ready window's), from the
 *                                 job written to it (the script an exec's shim hands on) to the bash reaped
 * Usage: exec-floor [N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double) t.tv_sec * 1e3 + (double) t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
        double x = *(const double *) a, y = *(const double *) b;

        return (x > y) - (x < y);
}

static void report(const char *what, double *t, int n)
{
        qsort(t, (size_t) n, sizeof(*t), cmp);
        printf("%-30s p50 %6.3f ms  p95 %6.3f ms\n", what, t[n / 2], t[n * 95 / 100]);
}

static int reap(pid_t pid)
{
        int st;

        return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
        int n = argc > 1 ? atoi(argv[1]) : 300;
        double *t = calloc((size_t) (n > 0 ? n : 1), sizeof(*t));
        static const char job[] = "__pc_c='true'\ncd -P -- '/' 2>&- || exit 126\n";

        if (n < 20 || !t) {
                fprintf(stderr, "usage: exec-floor [N >= 20]\n");
                return 2;
        }
        for (int mode = 0; mode < 3; mode++) {
                for (int i = 0; i < n; i++) {
                        int p[2] = {-1, -1};
                        char script[128];
                        double t0;
                        pid_t pid;

                        if (mode == 2 && pipe(p) < 0)
                                return 1;
                        if (mode < 2)
                                t0 = now_ms();
                        pid = fork();
                        if (pid < 0)
                                return 1;
                        if (pid == 0) {
                                if (mode == 0)
                                        _exit(0);
                                if (mode == 1)
                                        execl("/bin/true", "true", (char *) NULL);
                                close(p[1]);
                                snprintf(script, sizeof(script),
                                         ". /dev/fd/%d || exit 127; exec %d<&-; eval \"unset __pc_c; $__pc_c\"",
                                         p[0], p[0]);
                                execl("/bin/bash", "bash", "-c", script, (char *) NULL);
                                _exit(127);
                        }
                        if (mode == 2) {
                                close(p[0]);
                                usleep(20000); /* the bash is up and waiting, as in a ready window */
                                t0 = now_ms();
                                if (write(p[1], job, strlen(job)) != (ssize_t) strlen(job))
                                        return 1;
                                close(p[1]);
                        }
                        if (reap(pid) < 0)
                                return 1;
                        t[i] = now_ms() - t0;
                }
                report(mode == 0 ? "fork, _exit, reap" : mode == 1 ? "fork, exec /bin/true, reap" :
                                                                    "warm bash: job to reaped",
                       t, n);
        }
        free(t);
        return 0;
}
