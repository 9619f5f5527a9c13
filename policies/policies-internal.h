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
        size_t n_problems_omitted; /* problems beyond SH_PROBLEMS_MAX, counted only */
        size_t steps; /* units of work done, for the linearity test */
        /* When set, each command and redirection is handed over as soon as it is parsed and not kept in
         * cmds/redirs: memory stays proportional to the nesting, not to the length of the string. */
        int (*on_cmd)(void *userdata, const sh_cmd *cmd);
        int (*on_redir)(void *userdata, const sh_redir *redir);
        void *userdata;
} sh_result;

#define SH_PROBLEMS_MAX 100U

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
/* Why binding NAME (LEN bytes, maybe with a "[subscript]") by "for", "read", "printf -v", "declare"... needs
 * a person: NULL when it is safe (a lower-case name or REPLY, OPTARG, ... that is not dangerous, with no
 * subscript or a literal number as subscript). */
const char *sh_binding_problem(const char *name, size_t len);
/* True for "[123]" at the start of S: an array index that is a literal number. */
bool sh_subscript_literal(const char *s, size_t len);

#define SH_DEPTH_MAX 200U

/* ---- what programs can do (options.c) ---- */

enum {
        PS_ANY = 1 << 0,        /* every argument is data: no option can write or run anything */
        PS_WHOLE = 1 << 1,      /* options are whole words, never clusters or abbreviations (find, xxd) */
        PS_NUMERIC = 1 << 2,    /* "-5" is an option (head -5, git log -3) */
        PS_OUT2 = 1 << 3,       /* the second operand is a file that is written (uniq IN OUT, xxd IN OUT) */
        PS_SED = 1 << 4,        /* operands and -e values are sed scripts */
        PS_NOABBREV = 1 << 5,   /* long options are not abbreviated */
        PS_NOPERMUTE = 1 << 6,  /* options stop at the first operand (git before its subcommand) */
        PS_OPERANDS_X = 1 << 7, /* an operand changes the system (hostname NAME) */
};

typedef struct prog_spec {
        const char *name;
        const char *sub;  /* git subcommand, or NULL */
        const char *opts; /* the option table, see options.c */
        unsigned flags;
} prog_spec;

typedef struct spec_opt {
        const char *canon; /* canonical name (no dashes), not NUL-terminated */
        size_t canon_len;
        bool canon_short;  /* the canonical name is a short option letter */
        char arg;          /* 0, '=' (takes a value) or '?' (only an attached one) */
        unsigned nvals;    /* words of value (find -fprintf FILE FORMAT: 2) */
        char effect;       /* 0, 'W' (writes files) or 'X' (runs programs, changes the system) */
        bool found;
} spec_opt;

/* The table of NAME (a basename) or of git's subcommand SUB; NULL when there is none. */
const prog_spec *spec_find(const char *name, const char *sub);
/* Looks the option NAME (LEN bytes, DASHES dashes) up, resolving unique abbreviations of long options.
 * Returns 1 and fills *ret, 0 when the table does not know it, -EAGAIN when it is ambiguous. */
int spec_lookup(const prog_spec *ps, const char *name, size_t len, unsigned dashes, spec_opt *ret);
/* True when some option or operand of the program writes files or runs programs. */
bool spec_has_effects(const prog_spec *ps);
/* 'W' if the sed script writes files, 'X' if it runs commands or cannot be read, else 0. */
char sed_script_effect(const char *script);
/* Lexical normalisation: "." and empty components removed, ".." resolved ("/.." is "/"). */
char *path_normalize(const char *path);
/* Glob match where "*", "?" and [...] do not match "/" and "**" matches anything; "\" escapes. */
bool glob_match(const char *pattern, const char *s);

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
        const prog_spec *spec; /* the option table of the command (and git subcommand) the rule names */
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
        unsigned refs; /* atomic */
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
/* pc_policy_decide() that also returns the parsers' units of work (the linearity test reads them). */
int policy_decide_counted(const pc_policy *p, const char *command, size_t len, pc_verdict **ret, size_t *ret_steps);
/* Grows *p (an array of elements of SIZE bytes) so that index n fits. */
int array_grow(void **p, size_t *cap, size_t n, size_t size);
