/* SPDX-License-Identifier: MIT */
/* policies: private declarations shared by the parser, the shell analyser and the matcher. */
#pragma once

#include "common.h"
#include "policies.h"

/* Growable string. */
typedef struct strbuf {
        char *s;
        size_t n, cap;
} strbuf;

int sb_putn(strbuf *b, const char *s, size_t n);
int sb_puts(strbuf *b, const char *s);
int sb_putc(strbuf *b, char c);
int sb_printf(strbuf *b, const char *fmt, ...) _printf_(2, 3);
char *sb_steal(strbuf *b); /* returns the string ("" if empty) and resets b; NULL on ENOMEM */
static inline void sb_done(strbuf *b)
{
        free(b->s);
        *b = (strbuf){};
}

/* ---- shell analysis (shell-parse.c) ---- */

typedef struct sh_word {
        char *value;  /* after quote removal when literal; source text otherwise */
        bool literal; /* no expansion, substitution or glob: the value is exactly what the program gets */
} sh_word;

typedef struct sh_cmd {
        sh_word *words;
        size_t n_words;
        char *reason; /* fail-closed reason found by the parser (e.g. assignment to PATH), or NULL */
} sh_cmd;

typedef struct sh_redir {
        char *op;
        char *target;
        bool literal;
        bool output;
} sh_redir;

typedef struct sh_result {
        sh_cmd *cmds;
        size_t n_cmds, cap_cmds;
        sh_redir *redirs;
        size_t n_redirs, cap_redirs;
        char **problems;
        size_t n_problems, cap_problems;
} sh_result;

/* Parses TEXT as a bash command string and appends every simple command (in $(), backticks, process
 * substitutions, here-documents, compound commands, function bodies...) to RES, plus redirections and
 * problems. A syntax error is recorded as a problem and returns -EINVAL (commands found before it stay in
 * RES). Returns -ENOMEM on allocation failure. DEPTH is the nesting level of the caller (bash -c). */
int sh_parse(const char *text, size_t len, unsigned depth, sh_result *res);
void sh_result_done(sh_result *r);
int sh_result_add_problem(sh_result *r, const char *fmt, ...) _printf_(2, 3);
void sh_words_free(sh_word *w, size_t n);

/* True for NAME (an environment variable) when setting it changes which program runs or what a program
 * executes (PATH, LD_PRELOAD, BASH_ENV, GIT_SSH_COMMAND, ...). */
bool sh_dangerous_variable(const char *name, size_t len);

#define SH_DEPTH_MAX 200U

/* ---- compiled policies (policy-parse.c builds them, decide.c reads them) ---- */

typedef enum {
        RULE_EXEC,
        RULE_WRITE,
} rule_kind;

typedef struct pat_word {
        char *text; /* after quote removal */
        char *glob; /* fnmatch() pattern (quoted metacharacters escaped), NULL when the word is literal */
        bool flag;  /* an option word (-rf, --force): matched as a set, see docs/policies.md */
} pat_word;

typedef struct pc_rule {
        pc_decision action;
        rule_kind kind;
        pat_word *words; /* exec: the command words without the "..." tail; write: one path pattern */
        size_t n_words;
        bool tail;          /* ended with "...": any further words */
        bool whole_options; /* options are whole words ("-delete"), not clusters of letters (find) */
        char *command;      /* basename of the first word, for option aliases */
        char *loc;          /* "FILE:LINE" */
        char *text;         /* the rule as written, normalised */
} pc_rule;

typedef struct pc_test {
        pc_decision expect;
        char *command;
        const char *file;
        unsigned line, col;
        char *line_text;
} pc_test;

typedef struct rule_bucket {
        const char *key; /* the literal first word */
        size_t *idx;     /* rule indices, in file order */
        size_t n, cap;
} rule_bucket;

struct pc_policy {
        char *name;
        char *hash;
        strbuf source;
        pc_decision def;
        pc_rule *rules;
        size_t n_rules, cap_rules;
        pc_test *tests;
        size_t n_tests, cap_tests;
        char **files; /* display paths of the main file and includes; pc_test.file points here */
        size_t n_files, cap_files;

        /* the index, built by policy_compile() */
        rule_bucket *buckets; /* open addressing, n_buckets is a power of two */
        size_t n_buckets;
        size_t *glob_rules; /* exec rules whose first word is a glob */
        size_t n_glob;
        size_t *write_rules;
        size_t n_write;
};

int policy_compile(pc_policy *p);
/* Grows *p (an array of elements of SIZE bytes) so that index n fits. */
int array_grow(void **p, size_t *cap, size_t n, size_t size);
