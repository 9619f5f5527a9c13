/* SPDX-License-Identifier: MIT */
/* Differential test with bash 5 as the oracle: every command of tests/corpus/commands.tsv (and a set of
 * parser corner cases) is run by real bash in a throwaway sandbox (bash-oracle.c) and decided by the
 * analyser under a "default allow" policy; a program bash runs that the analyser did not see, in a string
 * it called complete, is a failure. One TAP line per corpus file. */

#include "common.h"
#include "bash-oracle.h"
#include "policies.h"
#include "corpus.h"
#include "tap.h"
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>

static pc_policy *policy(void)
{
        static pc_policy *p;
        static const char text[] = "version 1\ndefault allow\n";
        if (!p && pc_policy_load_string("oracle", NULL, text, strlen(text), &p, NULL) < 0)
                abort();
        return p;
}

/* Returns 1 when bash and the analyser agree, 0 (with a TAP comment) when not, -1 when bash could not run. */
static int differ(const char *cmd)
{
        _cleanup_pc_verdict_ pc_verdict *v = NULL;
        _cleanup_free_ char *names = NULL, *diff = NULL;
        size_t n = 0;
        int r;

        r = bash_oracle_run(cmd, strlen(cmd), 2000, &names, &n);
        if (r < 0) {
                printf("#   cannot run bash on \"%s\": %s\n", cmd, strerror(-r));
                return -1;
        }
        if (pc_policy_decide(policy(), cmd, strlen(cmd), &v) < 0)
                return -1;
        diff = bash_oracle_compare(v, names, n);
        if (diff) {
                printf("#   %s\n#   in: %s\n", diff, cmd);
                return 0;
        }
        return 1;
}

static const char *skip_why(void)
{
        const char *why = NULL;
        return bash_oracle_available(&why) ? NULL : why;
}


TEST(corpus_agrees_with_bash)
{
        const char *src = getenv("POCKETCODER_SOURCE_DIR") ?: ".";
        _cleanup_free_ char *path = strjoin(src, "/tests/corpus/commands.tsv"), *corpus = NULL;
        size_t size, n = 0;

        if ((tap_skip_reason = skip_why()))
                return;
        CHECK(read_full_file(path, 16 * 1024 * 1024, &corpus, &size) >= 0);
        for (char *line = corpus ? strtok(corpus, "\n") : NULL; line; line = strtok(NULL, "\n")) {
                char *tab = strchr(line, '\t');
                if (line[0] == '#' || !tab)
                        continue;
                _cleanup_free_ char *cmd = corpus_unescape(tab + 1);
                CHECK(differ(cmd) == 1);
                n++;
        }
        CHECK(n > 400);
}

TEST(parser_corner_cases_agree_with_bash)
{
        static const char *const cmds[] = {
                "cat <<\"a\\\"b\"\nx\na\"b\nid",
                "cat <<E\\\nOF\nbody\nEOF\nid",
                "cat <<EOF\nx\nEO\\\nF\nid",
                "cat <<'EOF'\nEO\\\nF\nid\nEOF\nwhoami",
                "cat <<$'\\x41'\nA\nid",
                "cat <<-EOF\n\t$(id)\n\tEOF\nwhoami",
                "cat <<EOF; cat <<'X'\n$(id)\nEOF\n$(whoami)\nX\nuname",
                "echo ${x:-{}; id; echo }",
                "echo \"${x:-{}\"; id",
                "echo $(( 1 ' )) $(id) ' ))",
                "(( 1 ' )) $(id) ' ))",
                "for (( i=' $(id) '; i<1; i++ )); do :; done",
                "echo ${x:' $(id) '}",
                "echo \"${x:-'}' $(id) '}\"",
                "echo ${x:-'$(id)'}",
                "echo $( (id) )",
                "echo $((id) )",
                "echo $(( $(( $(( id ) ) ) ) ) )",
                "echo `echo \\`id\\``",
                "echo \"$(echo \"$(id)\")\"",
                "case x in (x) id;; esac",
                "case x in x) id;; esac; echo ${y:-)}",
                "a=([0]=$(id))",
                "echo <(id) >(whoami)",
                "if id; then whoami; elif uname; then :; fi",
                "time -p -- id",
                "coproc X { id; }; wait",
                "f() { id; }; f",
                "echo $'\\'' ; id",
                "echo a\\\nb; id",
                "{ id; } 2>/dev/null",
                "! id | whoami |& uname",
                "x=$(id) y=`whoami` true",
                "[[ -n $(id) ]]",
                "echo ${#x} ${x/a/$(id)} ${x%%$(whoami)}",
                "echo $[ 1 + 2 ]; id",
                "id # $(whoami)",
                "echo x#$(id)",
        };
        if ((tap_skip_reason = skip_why()))
                return;
        for (size_t i = 0; i < ELEMENTSOF(cmds); i++)
                CHECK(differ(cmds[i]) == 1);
}

/* The oracle itself: it sees what bash runs, and nothing escapes its sandbox. */
TEST(oracle_sees_what_bash_runs)
{
        _cleanup_free_ char *names = NULL;
        size_t n = 0;

        if ((tap_skip_reason = skip_why()))
                return;
        CHECK(bash_oracle_run("id; echo $(whoami) >/tmp/x; /bin/true; ls -l", 46, 2000, &names, &n) >= 0);
        CHECK(names && n == strlen("id") + strlen("whoami") + strlen("ls") + 3);
        CHECK(names && streq(names, "id") && streq(names + 3, "whoami") && streq(names + 10, "ls"));
}

/* A script that never ends is gone with its whole PID namespace once the oracle's timeout passed: a corpus
 * line such as "while true; do rm -rf /; done" must not go on running (as nobody) after the test. */
static bool marker_running(const char *marker)
{
        _cleanup_(closedirp) DIR *d = opendir("/proc");
        struct dirent *de;

        while (d && (de = readdir(d))) {
                char path[300], buf[512] = "";
                _cleanup_close_ int fd = -EBADF;
                ssize_t k;

                if (!isdigit((unsigned char) de->d_name[0]))
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                k = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
                for (ssize_t i = 0; i < k; i++)
                        if (!buf[i])
                                buf[i] = ' ';
                if (k > 0 && strstr(buf, marker))
                        return true; /* a zombie has an empty cmdline: only the living count */
        }
        return false;
}

TEST(oracle_leaves_nothing_running)
{
        static const char loop[] = "while :; do : pc-oracle-marker-$$; done";
        _cleanup_free_ char *names = NULL;
        size_t n = 0;

        if ((tap_skip_reason = skip_why()))
                return;
        CHECK(bash_oracle_run(loop, strlen(loop), 200, &names, &n) >= 0);
        CHECK(!marker_running("pc-oracle-marker"));
}

TAP_MAIN()
