/* SPDX-License-Identifier: MIT */
/* policies: the gatekeeper. Parses admin-written policy files, analyses shell command strings the way
 * bash would parse them, and decides allow / ask / deny with an explanation. libc only; the language is
 * documented in docs/policies.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Ordered by strictness: the strictest decision of all parts of a command wins. */
typedef enum {
        PC_DECISION_ALLOW = 0,
        PC_DECISION_ASK = 1,
        PC_DECISION_DENY = 2,
} pc_decision;

/* "allow", "ask", "deny" (NULL for out-of-range values). */
const char *pc_decision_to_string(pc_decision d);
/* Returns the pc_decision for "allow" / "ask" / "deny", or -EINVAL. */
int pc_decision_from_string(const char *s);

/* Limits (documented in docs/policies.md). */
#define PC_POLICY_FILE_MAX    (1024U * 1024U) /* bytes per policy file, includes counted separately */
#define PC_POLICY_LINE_MAX    4096U           /* bytes per line */
#define PC_POLICY_WORDS_MAX   256U            /* words per line */
#define PC_POLICY_RULES_MAX   100000U         /* rules per policy, includes counted */
#define PC_POLICY_INCLUDE_MAX 16U             /* include nesting depth */
#define PC_POLICY_ERRORS_MAX  100U            /* errors reported before giving up */
#define PC_COMMAND_MAX        (1024U * 1024U) /* bytes of a command string that will be analysed */

typedef struct pc_policy pc_policy;

/* Loads PATH; the policy's name is the file's basename without ".policy". `include FILE` is resolved
 * relative to the including file and may not leave the directory of PATH; cycles are errors. On failure
 * returns a negative errno (-EINVAL for bad content, -EFBIG for an oversized file, or the error of
 * open/read) and, when ret_errors is non-NULL, sets it to every error found, compiler-style: per error a
 * line "PATH:LINE:COL: error: MESSAGE", then the source line, then a caret line. `test` lines are run
 * after a clean parse; a failing one is an error that names the rule that decided ("FILE:LINE" or
 * "default"). */
int pc_policy_load_file(const char *path, pc_policy **ret, char **ret_errors);

/* Same as pc_policy_load_file() on a buffer (which may contain NUL bytes: they are reported). NAME is the
 * policy name; PATH_FOR_MESSAGES prefixes errors and rule locations (NAME is used when NULL). `include`
 * is resolved relative to the directory of PATH_FOR_MESSAGES and may not leave it; when
 * PATH_FOR_MESSAGES is NULL, `include` is an error. */
int pc_policy_load_string(const char *name, const char *path_for_messages, const char *text, size_t len,
                          pc_policy **ret, char **ret_errors);

/* Policies are reference counted: pc_policy_ref() takes a reference (so that a caller can decide on a
 * snapshot outside any lock while the owner replaces it), pc_policy_free() drops one and frees the policy
 * with the last. Both are thread-safe; a policy is immutable once loaded (except pc_policy_set_hash(),
 * which only its loader calls, before sharing it). */
pc_policy *pc_policy_ref(pc_policy *p);
pc_policy *pc_policy_free(pc_policy *p);
static inline void pc_policy_freep(pc_policy **p)
{
        if (*p)
                pc_policy_free(*p);
}
#define _cleanup_pc_policy_ __attribute__((cleanup(pc_policy_freep)))

const char *pc_policy_name(const pc_policy *p);
/* Number of allow/ask/deny rules (exec and write), includes counted. */
size_t pc_policy_n_rules(const pc_policy *p);
/* Number of `test` lines, includes counted. */
size_t pc_policy_n_tests(const pc_policy *p);
/* The decision when no rule matches. */
pc_decision pc_policy_default(const pc_policy *p);
/* The bytes that were loaded, for hashing and display: the main file exactly; when the policy includes
 * other files, each included file follows, introduced by a line "# ==> included file: PATH <==". */
const char *pc_policy_source(const pc_policy *p, size_t *ret_len);
/* The caller (the daemon) hashes pc_policy_source() and records the hex digest here; decisions carry
 * it. pc_policy_hash() is NULL until set. Returns 0 or -ENOMEM. */
int pc_policy_set_hash(pc_policy *p, const char *hex);
const char *pc_policy_hash(const pc_policy *p);

/* One simple command found in the command string, after looking through wrappers. */
typedef struct pc_verdict_command {
        char **argv;          /* NULL-terminated words after quote removal; a word that is not a literal
                               * (contains an expansion or a glob) keeps its source text */
        size_t argc;
        pc_decision decision; /* for this command alone */
        char *rule;           /* "FILE:LINE" of the rule that decided, or "default" */
        char *rule_text;      /* that rule as written (normalised), NULL for "default" */
        char *reason;         /* why this command was escalated to at least ask, NULL if it was not */
        char *via;            /* wrappers looked through, e.g. "sudo > bash -c", NULL if none */
} pc_verdict_command;

/* A redirection target. Output redirections (>, >>, >|, &>, &>>, <>, >& FILE) are decided by `write`
 * rules; input ones (<, <<, <<-, <<<) are reported with decision allow. */
typedef struct pc_verdict_redirect {
        char *op;             /* ">", ">>", ">|", "&>", "&>>", "<>", "<", "<<", "<<-", "<<<" */
        char *path;           /* target after quote removal; source text when not literal; the
                               * delimiter for here-documents, the string for here-strings */
        bool literal;
        bool output;
        pc_decision decision;
        char *rule;           /* "FILE:LINE" or "default" (output redirections only) */
        char *rule_text;
        char *reason;
} pc_verdict_redirect;

typedef struct pc_verdict {
        pc_decision decision;  /* strictest of everything below */
        char *policy_name;
        char *policy_hash;     /* NULL when the policy has no hash */
        pc_verdict_command *commands;
        size_t n_commands;
        pc_verdict_redirect *redirects;
        size_t n_redirects;
        char **notes;          /* problems not tied to one command (syntax errors, arithmetic on variables,
                                * dangerous assignments, function definitions); each forces >= ask */
        size_t n_notes;
        bool complete;         /* false when anything could not be analysed (then decision >= ask) */
        /* At most PC_VERDICT_ENTRIES_MAX commands, redirections and notes are listed; the others are decided
         * all the same (their strictest decision is in omitted_decision and in decision) and counted here. */
        size_t n_commands_omitted, n_redirects_omitted, n_notes_omitted;
        pc_decision omitted_decision;
} pc_verdict;

#define PC_VERDICT_ENTRIES_MAX 1000U

/* Decides COMMAND (LEN bytes, need not be NUL-terminated) under P. Never fails on bad input (it is at
 * least "ask" with a reason); returns -ENOMEM only. */
int pc_policy_decide(const pc_policy *p, const char *command, size_t len, pc_verdict **ret);

pc_verdict *pc_verdict_free(pc_verdict *v);
static inline void pc_verdict_freep(pc_verdict **v)
{
        if (*v)
                pc_verdict_free(*v);
}
#define _cleanup_pc_verdict_ __attribute__((cleanup(pc_verdict_freep)))

/* Human explanation; its first line is exactly "allow", "ask" or "deny". Returns 0 or -ENOMEM. */
int pc_verdict_format(const pc_verdict *v, char **ret_text);

/* Shell-quotes WORD for display when it needs it (returns a new string or NULL on ENOMEM). */
char *pc_shell_quote(const char *word);
