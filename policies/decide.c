/* SPDX-License-Identifier: MIT */
/* The matcher: compiled rule index, option-set matching, wrappers, fail-closed builtins, verdicts. */

#include <fnmatch.h>

#include "policies-internal.h"

#define WRAP_DEPTH_MAX  32U /* nested wrappers (env nice timeout ...) looked through */
#define SHELL_DEPTH_MAX 8U  /* nested "bash -c" scripts re-parsed */

static const char *const decision_names[] = {
        [PC_DECISION_ALLOW] = "allow",
        [PC_DECISION_ASK] = "ask",
        [PC_DECISION_DENY] = "deny",
};

const char *pc_decision_to_string(pc_decision d)
{
        if ((unsigned) d >= ELEMENTSOF(decision_names))
                return NULL;
        return decision_names[d];
}

int pc_decision_from_string(const char *s)
{
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(decision_names); i++)
                if (streq(s, decision_names[i]))
                        return (int) i;
        return -EINVAL;
}

int array_grow(void **p, size_t *cap, size_t n, size_t size)
{
        if (n < *cap)
                return 0;
        size_t ncap = MAX(*cap * 2, n + 8);
        void *q = reallocarray(*p, ncap, size);
        if (!q)
                return -ENOMEM;
        *p = q;
        *cap = ncap;
        return 0;
}

/* ---- policy object ---- */

pc_policy *pc_policy_ref(pc_policy *p)
{
        if (p)
                __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
        return p;
}

pc_policy *pc_policy_free(pc_policy *p)
{
        if (!p || __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) > 0)
                return NULL;
        free(p->name);
        free(p->hash);
        sb_done(&p->source);
        for (size_t i = 0; i < p->n_rules; i++) {
                pc_rule *r = &p->rules[i];
                for (size_t k = 0; k < r->n_words; k++) {
                        free(r->words[k].text);
                        free(r->words[k].glob);
                }
                free(r->words);
                free(r->command);
                free(r->loc);
                free(r->text);
        }
        free(p->rules);
        for (size_t i = 0; i < p->n_tests; i++) {
                free(p->tests[i].command);
                free(p->tests[i].line_text);
        }
        free(p->tests);
        for (size_t i = 0; i < p->n_files; i++)
                free(p->files[i]);
        free(p->files);
        for (size_t i = 0; i < p->n_buckets; i++)
                free(p->buckets[i].idx);
        free(p->buckets);
        free(p->glob_rules);
        free(p->write_rules);
        free(p);
        return NULL;
}

const char *pc_policy_name(const pc_policy *p)
{
        return p->name;
}

size_t pc_policy_n_rules(const pc_policy *p)
{
        return p->n_rules;
}

size_t pc_policy_n_tests(const pc_policy *p)
{
        return p->n_tests;
}

pc_decision pc_policy_default(const pc_policy *p)
{
        return p->def;
}

const char *pc_policy_source(const pc_policy *p, size_t *ret_len)
{
        if (ret_len)
                *ret_len = p->source.n;
        return p->source.s ?: "";
}

int pc_policy_set_hash(pc_policy *p, const char *hex)
{
        char *h = NULL;

        if (hex && !(h = strdup(hex)))
                return -ENOMEM;
        free(p->hash);
        p->hash = h;
        return 0;
}

const char *pc_policy_hash(const pc_policy *p)
{
        return p->hash;
}

/* ---- index ---- */

static uint64_t hash_str(const char *s)
{
        uint64_t h = 1469598103934665603ULL; /* FNV-1a */
        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * 1099511628211ULL;
        return h;
}

static rule_bucket *bucket_find(const pc_policy *p, const char *key, bool create)
{
        if (p->n_buckets == 0)
                return NULL;
        size_t mask = p->n_buckets - 1, i = hash_str(key) & mask;
        for (;;) {
                rule_bucket *b = &p->buckets[i];
                if (!b->key)
                        return create ? b : NULL;
                if (streq(b->key, key))
                        return b;
                i = (i + 1) & mask;
        }
}

int policy_compile(pc_policy *p)
{
        size_t n_exec = 0, size = 16;

        for (size_t i = 0; i < p->n_rules; i++)
                if (p->rules[i].kind == RULE_EXEC)
                        n_exec++;
        while (size < n_exec * 2)
                size *= 2;
        p->buckets = calloc(size, sizeof(rule_bucket));
        p->glob_rules = calloc(p->n_rules + 1, sizeof(size_t));
        p->write_rules = calloc(p->n_rules + 1, sizeof(size_t));
        if (!p->buckets || !p->glob_rules || !p->write_rules)
                return -ENOMEM;
        p->n_buckets = size;
        for (size_t i = 0; i < p->n_rules; i++) {
                pc_rule *r = &p->rules[i];
                if (r->kind == RULE_WRITE) {
                        p->write_rules[p->n_write++] = i;
                        continue;
                }
                if (r->words[0].glob) {
                        p->glob_rules[p->n_glob++] = i;
                        continue;
                }
                rule_bucket *b = bucket_find(p, r->words[0].text, true);
                b->key = r->words[0].text;
                if (array_grow((void **) &b->idx, &b->cap, b->n, sizeof(size_t)) < 0)
                        return -ENOMEM;
                b->idx[b->n++] = i;
        }
        return 0;
}

/* ---- option sets ---- */

typedef struct optset {
        uint64_t bits[2];        /* short options by character */
        const char *longs[16];   /* long option names, not NUL-terminated: see long_len */
        size_t long_len[16];
        size_t n_longs;
        bool unknown;            /* something we could not represent: never equal, always contains */
} optset;

/* Long options and capital letters that mean the same as a short option, per command. */
static const struct {
        const char *command;
        const char *name; /* long option, or a single letter for a short alias */
        char letter;
} option_aliases[] = {
        { "rm", "recursive", 'r' }, { "rm", "R", 'r' }, { "rm", "force", 'f' },
        { "cp", "recursive", 'r' }, { "cp", "R", 'r' }, { "cp", "force", 'f' },
        { "mv", "force", 'f' },     { "ln", "force", 'f' }, { "ln", "symbolic", 's' },
        { "chmod", "recursive", 'R' }, { "chown", "recursive", 'R' }, { "chgrp", "recursive", 'R' },
        { "git", "force", 'f' }, { "sed", "in-place", 'i' },
        { "shred", "remove", 'u' }, { "tar", "extract", 'x' }, { "tar", "create", 'c' },
};

static char alias_letter(const char *command, const char *name, size_t len)
{
        if (!command)
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(option_aliases); i++)
                if (streq(option_aliases[i].command, command) &&
                    strlen(option_aliases[i].name) == len && strneq(option_aliases[i].name, name, len))
                        return option_aliases[i].letter;
        return 0;
}

static void optset_add_short(optset *s, unsigned char c)
{
        if (c >= 128) {
                s->unknown = true;
                return;
        }
        s->bits[c / 64] |= 1ULL << (c % 64);
}

static void optset_add_long(optset *s, const char *command, const char *name, size_t len)
{
        char l = command ? alias_letter(command, name, len) : 0;
        if (l) {
                optset_add_short(s, (unsigned char) l);
                return;
        }
        for (size_t i = 0; i < s->n_longs; i++)
                if (s->long_len[i] == len && strneq(s->longs[i], name, len))
                        return;
        if (s->n_longs >= ELEMENTSOF(s->longs)) {
                s->unknown = true;
                return;
        }
        s->longs[s->n_longs] = name;
        s->long_len[s->n_longs++] = len;
}

static bool is_option_word(const char *s)
{
        return s[0] == '-' && s[1] && !streq(s, "--");
}

/* Adds the option word W. With a table (PS) options are resolved to their canonical names as the program
 * reads them: aliases (-R = -r = --recursive), unique abbreviations (--f = --force), values (-k1,1). */
static void optset_add_word(optset *s, const char *command, const prog_spec *ps, bool whole, const char *w)
{
        spec_opt o;
        int k;

        if (ps && ps->opts && !(ps->flags & PS_ANY)) {
                if (w[1] == '-' || (ps->flags & PS_WHOLE)) {
                        unsigned dashes = w[1] == '-' ? 2 : 1;
                        const char *name = w + dashes;
                        size_t len = strcspn(name, "=");
                        k = spec_lookup(ps, name, len, dashes, &o);
                        if (k < 0) {
                                s->unknown = true; /* an ambiguous abbreviation */
                                return;
                        }
                        if (k == 0)
                                optset_add_long(s, NULL, name, len);
                        else if (o.canon_short)
                                optset_add_short(s, (unsigned char) o.canon[0]);
                        else
                                optset_add_long(s, NULL, o.canon, o.canon_len);
                        return;
                }
                if ((ps->flags & PS_NUMERIC) && w[1] >= '0' && w[1] <= '9' && w[strspn(w + 1, "0123456789") + 1] == 0)
                        return;
                for (const char *c = w + 1; *c; c++) {
                        k = spec_lookup(ps, c, 1, 1, &o);
                        if (k <= 0) {
                                optset_add_short(s, (unsigned char) *c);
                                continue;
                        }
                        if (o.canon_short)
                                optset_add_short(s, (unsigned char) o.canon[0]);
                        else
                                optset_add_long(s, NULL, o.canon, o.canon_len);
                        if (o.arg)
                                return; /* the rest of the word is its value */
                }
                return;
        }
        if (w[1] == '-' || whole) {
                const char *name = w + (w[1] == '-' ? 2 : 1);
                optset_add_long(s, command, name, strcspn(name, "="));
                return;
        }
        for (const char *c = w + 1; *c; c++) {
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))) {
                        /* "-n=5", "-I{}": an attached value we cannot classify */
                        s->unknown = true;
                        return;
                }
                char l = alias_letter(command, c, 1);
                optset_add_short(s, (unsigned char) (l ?: *c));
        }
}

static bool optset_has_long(const optset *s, const char *name, size_t len)
{
        for (size_t i = 0; i < s->n_longs; i++)
                if (s->long_len[i] == len && strneq(s->longs[i], name, len))
                        return true;
        return false;
}

static bool optset_contains(const optset *have, const optset *need)
{
        if (have->unknown)
                return true;
        if ((need->bits[0] & ~have->bits[0]) || (need->bits[1] & ~have->bits[1]))
                return false;
        for (size_t i = 0; i < need->n_longs; i++)
                if (!optset_has_long(have, need->longs[i], need->long_len[i]))
                        return false;
        return true;
}

static bool optset_equal(const optset *a, const optset *b)
{
        if (a->unknown || b->unknown)
                return false;
        if (a->bits[0] != b->bits[0] || a->bits[1] != b->bits[1] || a->n_longs != b->n_longs)
                return false;
        for (size_t i = 0; i < a->n_longs; i++)
                if (!optset_has_long(b, a->longs[i], a->long_len[i]))
                        return false;
        return true;
}

/* ---- matching ---- */

typedef enum {
        M_NO,
        M_YES,
        M_MAYBE, /* could match once an expansion is known */
} mres;

/* A rule word with a "/" is a path: the word is compared after lexical normalisation ("a/../b" is "b"). */
static bool word_matches(const pat_word *pw, const char *s)
{
        _cleanup_free_ char *norm = NULL;

        if (strchr(s, '/')) {
                norm = path_normalize(s);
                if (norm)
                        s = norm;
        }
        if (pw->glob)
                return glob_match(pw->glob, s);
        return streq(pw->text, s);
}

/* Could the non-literal word SRC (source text) be RULE_WORD once expanded? Only a plain glob (no quotes, no
 * expansions) is known well enough to say no. */
static bool maybe_same(const char *src, const char *rule_word)
{
        if (strpbrk(src, "$`'\"\\{"))
                return true;
        return fnmatch(src, rule_word, FNM_PERIOD) == 0;
}

/* Could the non-literal word SRC expand to one of the options the rule R names? */
static bool maybe_option(const char *src, const pc_rule *r)
{
        if (strpbrk(src, "$`'\"\\{"))
                return true;
        if (!strchr("-*?[", src[0]))
                return false; /* a glob that starts with a literal character other than "-" */
        for (size_t k = 1; k < r->n_words; k++) {
                const char *t = r->words[k].text;
                if (!r->words[k].flag)
                        continue;
                if (fnmatch(src, t, 0) == 0)
                        return true;
                for (const char *c = t + 1; t[1] != '-' && *c; c++)
                        if (fnmatch(src, (char[]){ '-', *c, 0 }, 0) == 0)
                                return true;
        }
        return false;
}

/* Matches the rule's words after the first against argv[1..]. Allow rules need the exact option set,
 * deny/ask rules need the options to contain the rule's. */
static mres match_rule(const pc_rule *r, const sh_word *argv, size_t argc)
{
        bool exact = r->action == PC_DECISION_ALLOW;
        size_t pi = 1, ai = 1;

        while (pi < r->n_words) {
                const pat_word *pw = &r->words[pi];

                if (pw->flag) {
                        optset need = {}, have = {};
                        bool maybe = false, tail_mode;
                        size_t pj = pi;

                        while (pj < r->n_words && r->words[pj].flag) {
                                optset_add_word(&need, r->command, r->spec, r->whole_options, r->words[pj].text);
                                pj++;
                        }
                        tail_mode = r->tail && pj == r->n_words;
                        if (tail_mode) {
                                /* options may come anywhere before "--" (GNU getopt permutes) */
                                for (size_t k = ai; k < argc; k++) {
                                        if (!argv[k].literal) {
                                                maybe = maybe || maybe_option(argv[k].value, r);
                                                continue;
                                        }
                                        if (streq(argv[k].value, "--"))
                                                break;
                                        if (is_option_word(argv[k].value))
                                                optset_add_word(&have, r->command, r->spec, r->whole_options,
                                                                argv[k].value);
                                }
                        } else
                                while (ai < argc) {
                                        if (!argv[ai].literal) {
                                                maybe = maybe_option(argv[ai].value, r);
                                                break;
                                        }
                                        if (!is_option_word(argv[ai].value))
                                                break;
                                        optset_add_word(&have, r->command, r->spec, r->whole_options, argv[ai].value);
                                        ai++;
                                }
                        bool ok = exact ? optset_equal(&need, &have) : optset_contains(&have, &need);
                        if (!ok)
                                return maybe ? M_MAYBE : M_NO;
                        if (tail_mode)
                                return exact && maybe ? M_MAYBE : M_YES;
                        pi = pj;
                        continue;
                }
                if (ai >= argc)
                        return M_NO;
                if (!argv[ai].literal) {
                        /* a quoted rule word matches an expansion written exactly the same way */
                        if (!pw->glob && streq(pw->text, argv[ai].value)) {
                                pi++;
                                ai++;
                                continue;
                        }
                        return pw->glob || maybe_same(argv[ai].value, pw->text) ? M_MAYBE : M_NO;
                }
                if (!word_matches(pw, argv[ai].value))
                        return M_NO;
                pi++;
                ai++;
        }
        if (r->tail || ai == argc)
                return M_YES;
        for (size_t k = ai; k < argc; k++)
                if (argv[k].literal)
                        return M_NO;
        return M_MAYBE; /* the remaining expansions may expand to nothing */
}

/* Second reading for deny/ask rules: options anywhere (GNU getopt permutes "rm / -rf"), the rule's other
 * words matched against the operands in order. */
static mres match_rule_operands(const pc_rule *r, const sh_word *argv, size_t argc)
{
        optset need = {}, have = {};
        bool maybe = false, after_dashdash = false;
        size_t pi = 1, ai = 1;

        /* the words before the first option (a subcommand: "git diff --output") must match first */
        for (size_t k = 1; k < r->n_words && !r->words[k].flag; k++) {
                if (k >= argc)
                        return M_NO;
                if (!argv[k].literal) {
                        if (r->words[k].glob || maybe_same(argv[k].value, r->words[k].text))
                                return M_MAYBE;
                        return M_NO;
                }
                if (is_option_word(argv[k].value))
                        break;
                if (!word_matches(&r->words[k], argv[k].value))
                        return M_NO;
        }
        for (size_t k = 1; k < r->n_words; k++)
                if (r->words[k].flag)
                        optset_add_word(&need, r->command, r->spec, r->whole_options, r->words[k].text);
        for (size_t k = 1; k < argc && !after_dashdash; k++) {
                if (!argv[k].literal)
                        maybe = maybe || maybe_option(argv[k].value, r);
                else if (streq(argv[k].value, "--"))
                        after_dashdash = true;
                else if (is_option_word(argv[k].value))
                        optset_add_word(&have, r->command, r->spec, r->whole_options, argv[k].value);
        }
        if (!optset_contains(&have, &need))
                return maybe ? M_MAYBE : M_NO;

        after_dashdash = false;
        for (;;) {
                /* skip to the next operand */
                while (ai < argc && argv[ai].literal && !after_dashdash &&
                       (is_option_word(argv[ai].value) || streq(argv[ai].value, "--"))) {
                        if (streq(argv[ai].value, "--"))
                                after_dashdash = true;
                        ai++;
                }
                while (pi < r->n_words && r->words[pi].flag)
                        pi++;
                if (pi >= r->n_words)
                        break;
                if (ai >= argc)
                        return M_NO;
                if (!argv[ai].literal) {
                        if (!r->words[pi].glob && streq(r->words[pi].text, argv[ai].value)) {
                                pi++;
                                ai++;
                                continue;
                        }
                        return M_MAYBE;
                }
                if (!word_matches(&r->words[pi], argv[ai].value))
                        return M_NO;
                pi++;
                ai++;
        }
        if (r->tail || ai >= argc)
                return M_YES;
        for (size_t k = ai; k < argc; k++)
                if (argv[k].literal && (after_dashdash || !is_option_word(argv[k].value)))
                        return M_NO;
        return M_MAYBE;
}

static const char *const trusted_dirs[] = {
        "/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin",
};

static bool in_trusted_dir(const char *path, const char *base)
{
        size_t n = (size_t) (base - path) - 1; /* without the last slash */
        for (size_t i = 0; i < ELEMENTSOF(trusted_dirs); i++)
                if (strlen(trusted_dirs[i]) == n && strneq(trusted_dirs[i], path, n))
                        return true;
        return false;
}

#define ALLOWS_MAX 16U

typedef struct match_state {
        const pc_rule *best, *maybe;
        size_t best_idx, maybe_idx;
        const pc_rule *allows[ALLOWS_MAX]; /* allow rules that matched: any of them may name an option */
        size_t n_allows;
} match_state;

static void consider(const pc_policy *p, size_t idx, const sh_word *argv, size_t argc, bool by_basename,
                     bool trusted, match_state *st)
{
        const pc_rule *r = &p->rules[idx];

        /* a program named like an allowed one but outside the system directories is not that program */
        if (by_basename && !trusted && r->action == PC_DECISION_ALLOW)
                return;
        mres m = match_rule(r, argv, argc);
        if (m != M_YES && r->action != PC_DECISION_ALLOW) {
                bool has_flags = false;
                for (size_t k = 1; k < r->n_words; k++)
                        has_flags = has_flags || r->words[k].flag;
                if (has_flags) {
                        mres m2 = match_rule_operands(r, argv, argc);
                        if (m2 == M_YES || (m2 == M_MAYBE && m == M_NO))
                                m = m2;
                }
        }
        if (m == M_YES && r->action == PC_DECISION_ALLOW && st->n_allows < ALLOWS_MAX)
                st->allows[st->n_allows++] = r;
        if (m == M_YES) {
                if (!st->best || r->action > st->best->action ||
                    (r->action == st->best->action && idx < st->best_idx)) {
                        st->best = r;
                        st->best_idx = idx;
                }
        } else if (m == M_MAYBE && r->action >= PC_DECISION_ASK) {
                if (!st->maybe || r->action > st->maybe->action ||
                    (r->action == st->maybe->action && idx < st->maybe_idx)) {
                        st->maybe = r;
                        st->maybe_idx = idx;
                }
        }
}

/* Runs every exec rule that can match argv[0] (which must be literal). */
static void match_all(const pc_policy *p, const sh_word *argv, size_t argc, match_state *st)
{
        const char *name = argv[0].value, *slash = strrchr(name, '/');
        const char *base = slash ? slash + 1 : name;
        _cleanup_free_ char *norm = slash ? path_normalize(name) : NULL;
        const char *nslash = norm ? strrchr(norm, '/') : NULL;
        bool trusted = nslash && in_trusted_dir(norm, nslash + 1) && streq(nslash + 1, base);
        rule_bucket *b;

        b = bucket_find(p, name, false);
        if (b)
                for (size_t i = 0; i < b->n; i++)
                        consider(p, b->idx[i], argv, argc, false, true, st);
        if (slash && *base) {
                b = bucket_find(p, base, false);
                if (b)
                        for (size_t i = 0; i < b->n; i++)
                                consider(p, b->idx[i], argv, argc, true, trusted, st);
        }
        for (size_t i = 0; i < p->n_glob; i++) {
                const pc_rule *r = &p->rules[p->glob_rules[i]];
                if (word_matches(&r->words[0], name))
                        consider(p, p->glob_rules[i], argv, argc, false, true, st);
                else if (slash && *base && !strchr(r->words[0].text, '/') && glob_match(r->words[0].glob, base))
                        consider(p, p->glob_rules[i], argv, argc, true, trusted, st);
        }
}

/* ---- verdict building ---- */

typedef struct ctx {
        const pc_policy *p;
        pc_verdict *v;
        size_t cap_commands, cap_redirects, cap_notes;
        const char *splice; /* inside xargs or find -exec: the placeholder pasted at run time ("" for none) */
        bool incomplete;    /* something left out of the verdict's lists could not be analysed */
        bool changes_dir;   /* a cd, pushd or popd runs: relative paths may point anywhere */
        size_t steps;       /* the parsers' work, for the linearity test */
        pc_decision cmd_max; /* strictest decision of the unlisted commands since it was reset */
        struct memo *memo;  /* decisions of unlisted simple commands, by their words */
        size_t n_memo;
} ctx;

/* Once the lists are full, a simple command seen before (same words, same context) is decided as
 * before without matching the rules again: 1 MiB of "ls;" costs one decision per distinct command. */
#define MEMO_SIZE 4096U

typedef struct memo {
        uint64_t hash;
        char *key;
        pc_decision d;
        bool incomplete;
} memo;

static char *memo_key(const sh_cmd *cmd, const char *via, const char *splice)
{
        strbuf b = {};
        int r = sb_printf(&b, "%s\x1f%s\x1f%s\x1f", cmd->reason ?: "", via ?: "", splice ?: "\x1e");
        for (size_t i = 0; r >= 0 && i < cmd->n_words; i++)
                r = sb_printf(&b, "%c%s\x1f", cmd->words[i].literal ? 'L' : 'X', cmd->words[i].value);
        if (r < 0) {
                sb_done(&b);
                return NULL;
        }
        return sb_steal(&b);
}

static pc_decision dmax(pc_decision a, pc_decision b)
{
        return a > b ? a : b;
}

static int add_note(ctx *c, const char *via, const char *text)
{
        char *s;

        if (c->v->n_notes >= PC_VERDICT_ENTRIES_MAX) {
                c->v->n_notes_omitted++;
                return 0;
        }
        if (array_grow((void **) &c->v->notes, &c->cap_notes, c->v->n_notes, sizeof(char *)) < 0)
                return -ENOMEM;
        s = via ? strjoin("in ", via, ": ", text) : strdup(text);
        if (!s)
                return -ENOMEM;
        c->v->notes[c->v->n_notes++] = s;
        return 0;
}

static bool in_list(const char *s, const char *const *list)
{
        for (; list && *list; list++)
                if (streq(s, *list))
                        return true;
        return false;
}

/* ---- what an allowed command can do (option tables) ---- */

static const char *const harmless_targets[] = { "/dev/null", "/dev/stdout", "/dev/stderr", NULL };

/* The decision of the write rules for writing PATH (normalised before matching); *RET_RULE is the rule
 * that decided (NULL for the default or the built-in harmless targets). */
static pc_decision write_decision(const pc_policy *p, const char *path, const pc_rule **ret_rule)
{
        _cleanup_free_ char *norm = path_normalize(path);
        const pc_rule *best = NULL;

        if (!norm)
                return dmax(p->def, PC_DECISION_ASK);
        for (size_t i = 0; i < p->n_write; i++) {
                const pc_rule *r = &p->rules[p->write_rules[i]];
                if (word_matches(&r->words[0], norm) && (!best || r->action > best->action))
                        best = r;
        }
        *ret_rule = best;
        if (best)
                return best->action;
        if (in_list(norm, harmless_targets))
                return PC_DECISION_ALLOW;
        return p->def;
}

/* Can the non-literal word SRC (its source text) become an option once expanded: it starts with "-" or
 * an expansion or glob, or an unquoted expansion in it can split it into several words? */
static bool word_may_be_option(const char *src)
{
        bool dq = false, first = true;

        for (const char *s = src; *s; s++) {
                char c = *s;
                if (c == '"') {
                        dq = !dq;
                        continue;
                }
                if (c == '\'' && !dq) {
                        const char *q = strchr(s + 1, '\'');
                        if (first && q && q > s + 1 && s[1] == '-')
                                return true;
                        first = first && q == s + 1;
                        s = q ? q : s + strlen(s) - 1;
                        continue;
                }
                if (c == '$' || c == '`') {
                        if (!dq || first)
                                return true;
                } else if (!dq && strchr("*?[", c) && first)
                        return true;
                else if (first && c == '-')
                        return true;
                if (c == '\\' && s[1])
                        s++;
                first = false;
        }
        return false;
}

/* Does the rule name option O of table PS among its option words? */
static bool one_rule_names_option(const pc_rule *r, const prog_spec *ps, const spec_opt *o)
{
        if (!r || r->spec != ps)
                return false;
        for (size_t k = 1; k < r->n_words; k++) {
                const char *t = r->words[k].text;
                spec_opt ro;
                if (!r->words[k].flag)
                        continue;
                if (t[1] == '-' || (ps->flags & PS_WHOLE)) {
                        unsigned dashes = t[1] == '-' ? 2 : 1;
                        if (spec_lookup(ps, t + dashes, strcspn(t + dashes, "="), dashes, &ro) > 0 && ro.canon == o->canon)
                                return true;
                        continue;
                }
                for (const char *ch = t + 1; *ch; ch++)
                        if (spec_lookup(ps, ch, 1, 1, &ro) > 0 && ro.canon == o->canon)
                                return true;
        }
        return false;
}

typedef struct allow_set {
        const pc_rule *const *rules;
        size_t n;
} allow_set;

/* Does one of the allow rules that matched name option O? */
static bool rule_names_option(const allow_set *rules, const prog_spec *ps, const spec_opt *o)
{
        for (size_t i = 0; rules && i < rules->n; i++)
                if (one_rule_names_option(rules->rules[i], ps, o))
                        return true;
        return false;
}

typedef struct effects {
        pc_decision d;
        char *why;
} effects;

static int effect(effects *e, pc_decision d, const char *fmt, ...) _printf_(3, 4);
static int effect(effects *e, pc_decision d, const char *fmt, ...)
{
        va_list ap;
        char *t;

        if (d <= e->d && e->why)
                return 0;
        va_start(ap, fmt);
        int k = vasprintf(&t, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        free(e->why);
        e->why = t;
        e->d = dmax(e->d, d);
        return 0;
}

/* A file the command writes: decided by the write rules like a redirection. */
static int effect_write(ctx *c, effects *e, const char *prog, const char *what, const sh_word *file)
{
        const pc_rule *wr = NULL;
        pc_decision d;

        if (!file)
                return effect(e, dmax(c->p->def, PC_DECISION_ASK), "%s %s writes files", prog, what);
        if (!file->literal)
                return effect(e, dmax(c->p->def, PC_DECISION_ASK), "%s %s writes a file whose name is not literal",
                              prog, what);
        d = write_decision(c->p, file->value, &wr);
        if (d == PC_DECISION_ALLOW)
                return 0;
        return effect(e, d, "%s %s writes %s (%s)", prog, what, file->value, wr ? wr->loc : "write default");
}

static bool sed_has_script_option(const sh_word *argv, size_t argc)
{
        for (size_t i = 1; i < argc; i++) {
                const char *a = argv[i].value;
                if (!argv[i].literal || a[0] != '-')
                        continue;
                if (streq(a, "--"))
                        break;
                if (a[1] == '-' ? startswith(a, "--e") || startswith(a, "--f") : strpbrk(a + 1, "ef") != NULL)
                        return true;
        }
        return false;
}

/* Reads ARGV (from FIRST on) with the program's table PS the way the program will, and finds what an
 * allow must not cover: unknown or ambiguous options, options that write files (decided by the write
 * rules, unless RULE names them) or run programs (ask, unless RULE names them), output operands, sed
 * scripts that write or run. */
static int check_effects(ctx *c, const prog_spec *ps, const allow_set *rule, const sh_word *argv, size_t argc,
                         size_t first, effects *e)
{
        const char *prog = argv[0].value;
        bool opts_done = false, sed_script_seen = (ps->flags & PS_SED) && sed_has_script_option(argv, argc);
        bool has_effects = spec_has_effects(ps);
        size_t nop = 0;
        pc_decision ask = dmax(c->p->def, PC_DECISION_ASK);
        int r = 0;

        if (ps->flags & PS_ANY)
                return 0;
        for (size_t i = first; i < argc && r >= 0; i++) {
                const char *a = argv[i].value;
                spec_opt o;

                if (!argv[i].literal) {
                        if (!opts_done && has_effects && word_may_be_option(a)) {
                                r = effect(e, ask, "%s: the expansion %s may become an option that writes files or "
                                                   "runs programs", prog, a);
                                continue;
                        }
                        nop++;
                        if (((ps->flags & PS_OUT2) && nop <= 2) || ((ps->flags & PS_SED) && !sed_script_seen) ||
                            (ps->flags & PS_OPERANDS_X))
                                r = effect(e, ask, "%s: the operand %s is not literal", prog, a);
                        sed_script_seen = true;
                        continue;
                }
                if (opts_done || a[0] != '-' || a[1] == 0) {
                        nop++;
                        if ((ps->flags & PS_SED) && !sed_script_seen) {
                                char k = sed_script_effect(a);
                                sed_script_seen = true;
                                if (k)
                                        r = effect(e, ask, "the sed script %s %s", a,
                                                   k == 'W' ? "writes files" : "runs commands or cannot be read");
                        } else if ((ps->flags & PS_OUT2) && nop == 2)
                                r = effect_write(c, e, prog, "output operand", &argv[i]);
                        else if (ps->flags & PS_OPERANDS_X)
                                r = effect(e, ask, "%s %s changes the system", prog, a);
                        if (ps->flags & PS_NOPERMUTE)
                                opts_done = true;
                        continue;
                }
                if (streq(a, "--")) {
                        opts_done = true;
                        continue;
                }
                const sh_word *value = NULL;
                sh_word attached = {};
                int k;
                if (a[1] == '-' || (ps->flags & PS_WHOLE)) {
                        unsigned dashes = a[1] == '-' ? 2 : 1;
                        const char *name = a + dashes;
                        size_t len = strcspn(name, "=");
                        k = spec_lookup(ps, name, len, dashes, &o);
                        if (k < 0) {
                                r = effect(e, ask, "%s: %s is an ambiguous abbreviation", prog, a);
                                continue;
                        }
                        if (k == 0) {
                                r = effect(e, ask, "%s: unknown option %s", prog, a);
                                continue;
                        }
                        if (o.arg == '=' && !name[len]) {
                                value = i + 1 < argc ? &argv[i + 1] : NULL;
                                i += o.nvals;
                        } else if (name[len]) {
                                attached = (sh_word){ .value = (char *) name + len + 1, .literal = true };
                                value = &attached;
                        }
                } else {
                        if ((ps->flags & PS_NUMERIC) && a[strspn(a + 1, "0123456789") + 1] == 0)
                                continue;
                        o = (spec_opt){};
                        for (const char *ch = a + 1; *ch; ch++) {
                                spec_opt x;
                                k = spec_lookup(ps, ch, 1, 1, &x);
                                if (k <= 0) {
                                        r = effect(e, ask, "%s: unknown option -%c", prog, *ch);
                                        break;
                                }
                                if (x.effect && !rule_names_option(rule, ps, &x)) {
                                        if (x.effect == 'X')
                                                r = effect(e, ask, "%s -%c runs programs", prog, *ch);
                                        else if (x.arg && ch[1])
                                                r = effect_write(c, e, prog, a, &(const sh_word){ .value = (char *) ch + 1, .literal = true });
                                        else if (x.arg == '=')
                                                r = effect_write(c, e, prog, a, i + 1 < argc ? &argv[i + 1] : NULL);
                                        else
                                                r = effect(e, ask, "%s -%c writes files", prog, *ch);
                                }
                                if ((ps->flags & PS_SED) && *ch == 'e') {
                                        const char *scr = ch[1] ? ch + 1 : i + 1 < argc && argv[i + 1].literal ? argv[i + 1].value : NULL;
                                        char se = scr ? sed_script_effect(scr) : 'X';
                                        if (se)
                                                r = effect(e, ask, "the sed script %s %s", scr ?: "(not literal)",
                                                           se == 'W' ? "writes files" : "runs commands or cannot be read");
                                }
                                if (x.arg) {
                                        if (x.arg == '=' && !ch[1])
                                                i += x.nvals;
                                        break;
                                }
                        }
                        continue;
                }
                if ((ps->flags & PS_SED) && o.canon_short && o.canon[0] == 'e') {
                        char se = value && value->literal ? sed_script_effect(value->value) : 'X';
                        if (se)
                                r = effect(e, ask, "the sed script %s %s", value ? value->value : "(missing)",
                                           se == 'W' ? "writes files" : "runs commands or cannot be read");
                }
                if (!o.effect || rule_names_option(rule, ps, &o))
                        continue;
                if (o.effect == 'X')
                        r = effect(e, ask, "%s %s runs programs or changes the system", prog, a);
                else
                        r = effect_write(c, e, prog, a, o.arg ? value : NULL);
        }
        return r;
}

/* Decides one simple command by the rules (no wrapper logic). REASON, when set, forces at least ask.
 * With ONLY_IF_MATCHED the command is recorded only when a rule matches definitely (wrappers). */
static int decide_argv(ctx *c, const sh_word *argv, size_t argc, const char *via, const char *reason,
                       bool only_if_matched)
{
        const pc_policy *p = c->p;
        pc_verdict_command *e;
        match_state st = {};
        _cleanup_free_ char *why = NULL;
        pc_decision d;
        const pc_rule *decider = NULL;

        if (!argv[0].literal) {
                if (only_if_matched)
                        return 0;
                d = dmax(p->def, PC_DECISION_ASK);
                if (!reason)
                        reason = "the command name is not a literal word (it comes from an expansion or a glob)";
        } else {
                match_all(p, argv, argc, &st);
                if (only_if_matched && !st.best)
                        return 0;
                d = st.best ? st.best->action : p->def;
                decider = st.best;
                /* what cannot be analysed is never allowed, and under "default deny" it is denied */
                if (reason)
                        d = dmax(d, dmax(p->def, PC_DECISION_ASK));
                if (st.maybe && d <= PC_DECISION_ASK && (!st.best || st.best->action < PC_DECISION_ASK)) {
                        d = PC_DECISION_ASK;
                        decider = st.maybe;
                        if (asprintf(&why, "an expansion may make it match %s (%s)", st.maybe->loc,
                                     st.maybe->text) < 0) {
                                why = NULL;
                                return -ENOMEM;
                        }
                        if (!reason)
                                reason = why;
                }
                if (d == PC_DECISION_ALLOW && st.best) {
                        /* an allow rule covers only what the program's table says is harmless (a "default
                         * allow" covers everything, as it says) */
                        const char *base = strrchr(argv[0].value, '/') ? strrchr(argv[0].value, '/') + 1 : argv[0].value;
                        bool git = streq(base, "git");
                        const prog_spec *ps = spec_find(base, git ? (argc > 1 && argv[1].literal ? argv[1].value : "") : NULL);
                        effects eff = {};
                        if (ps) {
                                allow_set as = { .rules = st.allows, .n = st.n_allows };
                                int r = check_effects(c, ps, &as, argv, argc, git ? 2 : 1, &eff);
                                if (r < 0) {
                                        free(eff.why);
                                        return r;
                                }
                        }
                        if (eff.d > d) {
                                d = eff.d;
                                free(why);
                                why = eff.why;
                                eff.why = NULL;
                                reason = why;
                        }
                        free(eff.why);
                }
        }

        if (argv[0].literal) {
                const char *b = strrchr(argv[0].value, '/') ? strrchr(argv[0].value, '/') + 1 : argv[0].value;
                if (streq(b, "cd") || streq(b, "pushd") || streq(b, "popd"))
                        c->changes_dir = true;
        }
        if (c->v->n_commands >= PC_VERDICT_ENTRIES_MAX) {
                c->v->n_commands_omitted++;
                c->v->omitted_decision = dmax(c->v->omitted_decision, d);
                c->cmd_max = dmax(c->cmd_max, d);
                c->incomplete = c->incomplete || reason;
                return 0;
        }
        if (array_grow((void **) &c->v->commands, &c->cap_commands, c->v->n_commands, sizeof(*e)) < 0)
                return -ENOMEM;
        e = &c->v->commands[c->v->n_commands];
        *e = (pc_verdict_command){ .decision = d, .argc = argc };
        c->v->n_commands++;
        e->argv = calloc(argc + 1, sizeof(char *));
        if (!e->argv)
                return -ENOMEM;
        for (size_t i = 0; i < argc; i++)
                if (!(e->argv[i] = strdup(argv[i].value)))
                        return -ENOMEM;
        e->rule = strdup(decider ? decider->loc : "default");
        if (!e->rule)
                return -ENOMEM;
        if (decider && !(e->rule_text = strdup(decider->text)))
                return -ENOMEM;
        if (reason && !(e->reason = strdup(reason)))
                return -ENOMEM;
        if (via && !(e->via = strdup(via)))
                return -ENOMEM;
        return 0;
}

static int analyse(ctx *c, const char *text, size_t len, const char *via, unsigned depth);
static int decide_redirect(ctx *c, const sh_redir *rd, const char *via);
static int decide_words(ctx *c, const sh_word *w, size_t n, const char *via, const char *reason, unsigned depth);

static char *via_push(const char *via, const char *what)
{
        return via ? strjoin(via, " > ", what) : strdup(what);
}


typedef struct wrapper {
        const char *name;
        const char *short_noarg;
        const char *short_arg;
        const char *short_optarg; /* value only when attached (xargs -i{}) */
        const char *const *long_noarg; /* "--x" or "--x=VALUE" */
        const char *const *long_arg;   /* "--x VALUE" or "--x=VALUE" */
        unsigned positional;           /* words between the options and the command */
        bool assignments;              /* VAR=value words may precede the command */
        bool numeric;                  /* "-10" is an option (nice) */
        bool appends_input;            /* the command gets more words at run time (xargs) */
        const char *short_write;       /* options whose value is a file the wrapper writes (time -o) */
        const char *const *long_write;
        const char *no_command;        /* options after which the operands are not a command (ionice -p) */
} wrapper;

#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })

static const wrapper wrappers[] = {
        { .name = "env", .short_noarg = "i0v", .short_arg = "uC",
          .long_noarg = L("ignore-environment", "null", "debug"), .long_arg = L("unset", "chdir"),
          .assignments = true },
        { .name = "nice", .short_arg = "n", .long_arg = L("adjustment"), .numeric = true },
        { .name = "nohup" },
        { .name = "timeout", .short_noarg = "v", .short_arg = "sk",
          .long_noarg = L("preserve-status", "foreground", "verbose"), .long_arg = L("signal", "kill-after"),
          .positional = 1 },
        { .name = "stdbuf", .short_arg = "ioe", .long_arg = L("input", "output", "error") },
        { .name = "time", .short_noarg = "pvaq", .short_arg = "fo",
          .long_noarg = L("portability", "verbose", "append", "quiet"), .long_arg = L("format", "output"),
          .short_write = "o", .long_write = L("output") },
        { .name = "setsid", .short_noarg = "cfw", .long_noarg = L("ctty", "fork", "wait") },
        { .name = "ionice", .short_noarg = "t", .short_arg = "cnpPu",
          .long_noarg = L("ignore"), .long_arg = L("class", "classdata", "pid", "pgid", "uid"), .no_command = "pPu" },
        { .name = "chrt", .short_noarg = "abdefiormRv", .short_arg = "TPD",
          .long_noarg = L("all-tasks", "batch", "deadline", "fifo", "idle", "other", "rr", "reset-on-fork",
                          "max", "verbose", "ext"),
          .long_arg = L("sched-runtime", "sched-period", "sched-deadline"), .positional = 1, .no_command = "p" },
        { .name = "flock", .short_noarg = "sxunoFv", .short_arg = "wEc",
          .long_noarg = L("shared", "exclusive", "unlock", "nonblock", "nb", "close", "no-fork", "verbose"),
          .long_arg = L("timeout", "wait", "conflict-exit-code", "command"), .positional = 1 },
        { .name = "busybox" },
        { .name = "command", .short_noarg = "pvV" },
        { .name = "builtin" },
        { .name = "exec", .short_noarg = "cl", .short_arg = "a" },
        { .name = "sudo", .short_noarg = "AbEHiknPSs", .short_arg = "CDghpRTuU",
          .long_noarg = L("login", "shell", "preserve-env", "non-interactive", "background", "askpass",
                          "stdin", "set-home", "reset-timestamp"),
          .long_arg = L("user", "group", "chdir", "prompt", "close-from", "host", "chroot", "command-timeout",
                        "other-user"),
          .assignments = true },
        { .name = "doas", .short_noarg = "ns", .short_arg = "u" },
        { .name = "xargs", .short_noarg = "0rtpxo", .short_arg = "adEILnPs", .short_optarg = "iel",
          .long_noarg = L("null", "no-run-if-empty", "verbose", "interactive", "exit", "open-tty", "eof",
                          "max-lines", "replace"),
          .long_arg = L("arg-file", "delimiter", "max-args", "max-procs", "max-chars", "process-slot-var"),
          .appends_input = true },
};

/* Builtins whose effect depends on strings or state the analyser cannot see. */
static const char *const fail_closed[] = {
        "eval", "source", ".", "trap", "alias", "enable", "fc", "let", "hash", "bind", "complete", "compgen",
        NULL,
};

/* Builtins that bind variables without a NAME= word. */
static const struct binder {
        const char *name;
        const char *arg_opts;  /* options that take a value */
        const char *bind_opts; /* options whose value is a name that is bound (printf -v, read -a) */
        const char *bad_opts;  /* options that are never allowed (declare -n nameref, -i arithmetic) */
        unsigned skip;         /* operands before the names (getopts OPTSTRING) */
        int names;             /* operands that are names: -1 all, 0 none, N the first N after skip */
        bool subscript_only;   /* the names are not bound, but their subscripts are evaluated */
} binders[] = {
        { "read", "dinNptu", "a", NULL, 0, -1 },
        { "printf", "v", "v", NULL, 0, 0 },
        { "mapfile", "dnOsuc", NULL, "C", 0, 1 },
        { "readarray", "dnOsuc", NULL, "C", 0, 1 },
        { "getopts", NULL, NULL, NULL, 1, 1 },
        { "declare", NULL, NULL, "ni", 0, -1 },
        { "typeset", NULL, NULL, "ni", 0, -1 },
        { "local", NULL, NULL, "ni", 0, -1 },
        { "export", NULL, NULL, "n", 0, -1 },
        { "readonly", NULL, NULL, "n", 0, -1 },
        { "wait", "p", "p", NULL, 0, 0 },
        { "unset", NULL, NULL, NULL, 0, -1, true },
        { "test", NULL, "v", NULL, 0, 0, true },
        { "[", NULL, "v", NULL, 0, 0, true },
        { "set", "o", NULL, "k", 0, 0 },
};

static int check_binding(const char *base, const sh_word *w, bool subscript_only, char **ret)
{
        const char *name = w->value, *why;
        size_t len = strcspn(name, "=+");

        if (!w->literal)
                return asprintf(ret, "\"%s\" binds a variable whose name is not literal: %s", base, name) < 0 ? -ENOMEM : 0;
        if (subscript_only) {
                const char *b = memchr(name, '[', len);
                if (!b || sh_subscript_literal(b, len - (size_t) (b - name)))
                        return 0;
                why = "its array subscript is evaluated as arithmetic";
        } else if (!(why = sh_binding_problem(name, len)))
                return 0;
        return asprintf(ret, "\"%s\" binds %.*s: %s", base, (int) len, name, why) < 0 ? -ENOMEM : 0;
}

/* Why the builtin BASE binds a variable it should not (read, printf -v, declare, set -k ...); *ret NULL if
 * it does not. */
static int binding_reason(const char *base, const sh_word *w, size_t n, char **ret)
{
        const struct binder *b = NULL;
        size_t i = 1, operand = 0;
        int r;

        *ret = NULL;
        for (size_t k = 0; k < ELEMENTSOF(binders); k++)
                if (streq(binders[k].name, base))
                        b = &binders[k];
        if (!b)
                return 0;
        for (; i < n; i++) {
                const char *a = w[i].value;
                if (!w[i].literal || streq(a, "--") || (a[0] != '-' && a[0] != '+') || !a[1] ||
                    (b->subscript_only && !b->bind_opts))
                        break;
                for (const char *ch = a + 1; *ch; ch++) {
                        if (b->bad_opts && strchr(b->bad_opts, *ch))
                                return asprintf(ret, "\"%s -%c\" cannot be analysed statically", base, *ch) < 0 ? -ENOMEM : 0;
                        if (b->arg_opts && strchr(b->arg_opts, *ch)) {
                                const sh_word *v = ch[1] ? &(const sh_word){ .value = (char *) ch + 1, .literal = true }
                                                         : i + 1 < n ? &w[++i] : NULL;
                                if (streq(base, "set") && v && (!v->literal || streq(v->value, "keyword")))
                                        return asprintf(ret, "\"set -o keyword\" makes NAME=value words anywhere "
                                                             "assignments") < 0 ? -ENOMEM : 0;
                                if (v && b->bind_opts && strchr(b->bind_opts, *ch) &&
                                    (r = check_binding(base, v, false, ret)) < 0)
                                        return r;
                                break;
                        }
                        if (b->bind_opts && strchr(b->bind_opts, *ch) && i + 1 < n) {
                                /* test -v NAME */
                                if ((r = check_binding(base, &w[++i], true, ret)) < 0)
                                        return r;
                                break;
                        }
                }
                if (*ret)
                        return 0;
        }
        if (streq(base, "test") || streq(base, "[")) {
                for (; i + 1 < n; i++)
                        if (w[i].literal && streq(w[i].value, "-v"))
                                return check_binding(base, &w[i + 1], true, ret);
                return 0;
        }
        if (i < n && w[i].literal && streq(w[i].value, "--"))
                i++;
        for (; i < n && !*ret; i++, operand++) {
                if (operand < b->skip)
                        continue;
                if (b->names >= 0 && operand >= b->skip + (size_t) b->names)
                        break;
                r = check_binding(base, &w[i], b->subscript_only, ret);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* git: its own options before the subcommand are read with its table and removed, so that rules see
 * "git SUBCOMMAND ..." (git --no-pager log, git -C dir push --force); -c, --git-dir, --exec-path ... run
 * programs or change what git reads: at least ask. */
static int decide_git(ctx *c, const sh_word *w, size_t n, const char *via, const char *reason)
{
        const prog_spec *ps = spec_find("git", NULL);
        _cleanup_free_ sh_word *argv = calloc(n, sizeof(sh_word));
        _cleanup_free_ char *why = NULL;
        size_t i = 1, m = 1;

        if (!argv)
                return -ENOMEM;
        argv[0] = w[0];
        for (; i < n && !why; i++) {
                const char *a = w[i].value;
                spec_opt o;
                int k;
                if (!w[i].literal) {
                        if (asprintf(&why, "git: %s may be an option of git itself", a) < 0)
                                return -ENOMEM;
                        break;
                }
                if (a[0] != '-' || !a[1])
                        break;
                unsigned dashes = a[1] == '-' ? 2 : 1;
                size_t len = dashes == 2 ? strcspn(a + 2, "=") : 1;
                k = spec_lookup(ps, a + dashes, len, dashes, &o);
                if (k <= 0) {
                        if (asprintf(&why, "git: unknown option %s before the subcommand", a) < 0)
                                return -ENOMEM;
                        break;
                }
                if (o.effect && asprintf(&why, "git %s runs programs or changes what git reads", a) < 0)
                        return -ENOMEM;
                if (o.arg == '=' && !a[dashes + len] && !(dashes == 1 && a[2]))
                        i++;
        }
        if (why)
                return decide_argv(c, w, n, via, why, false);
        for (; i < n; i++)
                argv[m++] = w[i];
        return decide_argv(c, argv, m, via, reason, false);
}

/* script [options] [file]: -c COMMAND is run by a shell; without it an interactive shell runs. */
static int decide_script(ctx *c, const sh_word *w, size_t n, const char *via, const char *reason, unsigned depth)
{
        for (size_t i = 1; i + 1 < n; i++)
                if (w[i].literal && (streq(w[i].value, "-c") || streq(w[i].value, "--command"))) {
                        sh_word sh[3] = { { .value = (char *) "sh", .literal = true },
                                          { .value = (char *) "-c", .literal = true }, w[i + 1] };
                        _cleanup_free_ char *via2 = via_push(via, "script -c");
                        int r = decide_argv(c, w, n, via, reason, false);
                        if (r < 0 || !via2)
                                return r < 0 ? r : -ENOMEM;
                        return decide_words(c, sh, 3, via2, NULL, depth + 1);
                }
        return decide_argv(c, w, n, via, reason ?: "script runs a shell on a terminal, or with options that are not understood", false);
}

static const char *const shells[] = { "sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", NULL };

/* Parses the wrapper's options; returns the index of the inner command (n if none), or -EINVAL with
 * *ret_why set. */
static int wrapper_skip_options(const wrapper *wr, const sh_word *w, size_t n, const char **ret_why,
                                char **ret_assign_reason, sh_word *ret_written)
{
        size_t i = 1;

        while (i < n) {
                const char *a = w[i].value;

                if (!w[i].literal) {
                        *ret_why = "an option of the wrapper is not a literal word";
                        return -EINVAL;
                }
                if (streq(a, "--")) {
                        i++;
                        break;
                }
                if (a[0] != '-' || a[1] == 0)
                        break;
                if (a[1] == '-') {
                        const char *name = a + 2;
                        size_t len = strcspn(name, "=");
                        char buf[64];
                        if (len >= sizeof buf) {
                                *ret_why = "unknown option of the wrapper";
                                return -EINVAL;
                        }
                        memcpy(buf, name, len);
                        buf[len] = 0;
                        if (in_list(buf, wr->long_noarg)) {
                                i++;
                                continue;
                        }
                        if (in_list(buf, wr->long_arg)) {
                                if (in_list(buf, wr->long_write))
                                        *ret_written = name[len] == '=' ? (sh_word){ .value = (char *) name + len + 1, .literal = true }
                                                     : i + 1 < n ? w[i + 1] : (sh_word){};
                                i += name[len] == '=' ? 1 : 2;
                                continue;
                        }
                        *ret_why = "unknown option of the wrapper";
                        return -EINVAL;
                }
                if (wr->numeric && a[1] >= '0' && a[1] <= '9') {
                        i++;
                        continue;
                }
                bool consumed_next = false;
                for (const char *ch = a + 1; *ch; ch++) {
                        if (wr->short_noarg && strchr(wr->short_noarg, *ch)) {
                                if (wr->no_command && strchr(wr->no_command, *ch))
                                        return (int) n;
                                continue;
                        }
                        if (wr->short_optarg && strchr(wr->short_optarg, *ch))
                                break;
                        if (wr->short_arg && strchr(wr->short_arg, *ch)) {
                                if (wr->no_command && strchr(wr->no_command, *ch))
                                        return (int) n; /* ionice -p PID: the operands are not a command */
                                if (wr->short_write && strchr(wr->short_write, *ch))
                                        *ret_written = ch[1] ? (sh_word){ .value = (char *) ch + 1, .literal = true }
                                                     : i + 1 < n ? w[i + 1] : (sh_word){};
                                if (ch[1] == 0)
                                        consumed_next = true;
                                break;
                        }
                        *ret_why = "unknown option of the wrapper";
                        return -EINVAL;
                }
                i += consumed_next ? 2 : 1;
        }
        if (i > n) {
                *ret_why = "an option of the wrapper is missing its value";
                return -EINVAL;
        }
        if (wr->assignments)
                for (; i < n; i++) {
                        const char *a = w[i].value, *eq = strchr(a, '=');
                        size_t k = 0;
                        if (!eq || eq == a)
                                break;
                        while (a + k < eq && (a[k] == '_' || (a[k] >= 'A' && a[k] <= 'Z') ||
                                              (a[k] >= 'a' && a[k] <= 'z') || (k > 0 && a[k] >= '0' && a[k] <= '9')))
                                k++;
                        if (a + k != eq)
                                break;
                        if (sh_dangerous_variable(a, k) && !*ret_assign_reason)
                                if (asprintf(ret_assign_reason, "sets %.*s, which changes what programs run",
                                             (int) k, a) < 0) {
                                        *ret_assign_reason = NULL;
                                        return -ENOMEM;
                                }
                }
        for (unsigned k = 0; k < wr->positional && i < n; k++) {
                if (!w[i].literal) {
                        *ret_why = "an argument of the wrapper is not a literal word";
                        return -EINVAL;
                }
                i++;
        }
        return (int) i;
}

static int decide_wrapper(ctx *c, const wrapper *wr, const sh_word *w, size_t n, const char *via,
                          const char *reason, unsigned depth)
{
        _cleanup_free_ char *assign_reason = NULL, *via2 = NULL, *splice_why = NULL;
        _cleanup_free_ sh_word *inner = NULL;
        const char *why = NULL;
        sh_word written = {};
        int r, i;

        i = wrapper_skip_options(wr, w, n, &why, &assign_reason, &written);
        if (i == -ENOMEM)
                return i;
        if (i < 0) {
                _cleanup_free_ char *m = NULL;
                if (asprintf(&m, "cannot see through \"%s\": %s", wr->name, why) < 0)
                        return -ENOMEM;
                return decide_argv(c, w, n, via, m, false);
        }
        if (streq(wr->name, "sudo"))
                for (int k = 1; k < i && !assign_reason; k++) {
                        const char *a = w[k].value;
                        bool shell = a[0] == '-' && (a[1] == '-' ? streq(a, "--login") || streq(a, "--shell")
                                                                 : strpbrk(a + 1, "is") != NULL);
                        if (shell && !(assign_reason = strdup("sudo -i/-s runs the command through a shell that "
                                                              "reads startup files")))
                                return -ENOMEM;
                }
        if ((size_t) i >= n) /* no inner command: the wrapper is an ordinary command */
                return decide_argv(c, w, n, via, reason ?: assign_reason, false);

        /* the wrapper itself only counts when a rule names it (deny exec sudo ...), or when it writes a file */
        if (written.value) {
                /* time -o FILE: decided like a redirection */
                _cleanup_free_ char *op = strjoin(wr->name, " -o");
                if (!op)
                        return -ENOMEM;
                r = decide_redirect(c, &(const sh_redir){ .op = op, .target = written.value, .literal = written.literal,
                                                          .output = true }, via);
                if (r < 0)
                        return r;
        }
        r = decide_argv(c, w, n, via, NULL, true);
        if (r < 0)
                return r;
        via2 = via_push(via, wr->name);
        if (!via2)
                return -ENOMEM;
        size_t m = n - (size_t) i;
        if (streq(wr->name, "flock") && m > 0 && w[i].literal && (streq(w[i].value, "-c") || streq(w[i].value, "--command"))) {
                /* flock FILE -c 'command line': run by "sh -c" */
                sh_word sh[3] = { { .value = (char *) "sh", .literal = true }, { .value = (char *) "-c", .literal = true } };
                if (m < 2)
                        return decide_argv(c, w, n, via, "flock -c without a command", false);
                sh[2] = w[i + 1];
                return decide_words(c, sh, 3, via2, reason ?: assign_reason, depth + 1);
        }
        if (wr->appends_input) {
                /* xargs: the input becomes more words, or is pasted in place of -I's placeholder */
                const char *placeholder = "";
                for (int k = 1; k < i; k++) {
                        const char *a = w[k].value;
                        if (streq(a, "--"))
                                break;
                        if (streq(a, "-I") && k + 1 < i)
                                placeholder = w[k + 1].value;
                        else if (startswith(a, "-I") || startswith(a, "-i"))
                                placeholder = a[2] ? a + 2 : "{}";
                        else if (startswith(a, "--replace"))
                                placeholder = a[9] == '=' ? a + 10 : "{}";
                        else if (startswith(a, "--process-slot-var")) {
                                const char *name = a[18] == '=' ? a + 19 : k + 1 < i ? w[k + 1].value : "";
                                const char *bad = sh_binding_problem(name, strlen(name));
                                if (bad && asprintf(&splice_why, "xargs binds %s: %s", name, bad) < 0)
                                        return -ENOMEM;
                        }
                }
                inner = calloc(m + 1, sizeof(sh_word));
                if (!inner)
                        return -ENOMEM;
                memcpy(inner, w + i, m * sizeof(sh_word));
                inner[m] = (sh_word){ .value = (char *) "{input}", .literal = false };
                const char *saved = c->splice;
                c->splice = placeholder;
                r = decide_words(c, inner, *placeholder ? m : m + 1, via2, reason ?: assign_reason ?: splice_why,
                                 depth + 1);
                c->splice = saved;
                return r;
        }
        return decide_words(c, w + i, m, via2, reason ?: assign_reason, depth + 1);
}

static int decide_find(ctx *c, const sh_word *w, size_t n, const char *via, const char *reason, unsigned depth)
{
        _cleanup_free_ sh_word *stripped = calloc(n, sizeof(sh_word));
        size_t m = 0;
        int r;

        if (!stripped)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (i > 0 && w[i].literal &&
                    (streq(w[i].value, "-exec") || streq(w[i].value, "-execdir") || streq(w[i].value, "-ok") ||
                     streq(w[i].value, "-okdir"))) {
                        size_t k = i + 1;
                        while (k < n && !(w[k].literal && (streq(w[k].value, ";") || streq(w[k].value, "+"))))
                                k++;
                        if (k >= n || k == i + 1)
                                return decide_argv(c, w, n, via,
                                                   "find -exec without a command or without its \";\" or \"+\"",
                                                   false);
                        _cleanup_free_ char *via2 = via_push(via, "find -exec");
                        if (!via2)
                                return -ENOMEM;
                        const char *saved = c->splice;
                        c->splice = "{}";
                        r = decide_words(c, w + i + 1, k - i - 1, via2, reason, depth + 1);
                        c->splice = saved;
                        if (r < 0)
                                return r;
                        i = k;
                        continue;
                }
                stripped[m++] = w[i];
        }
        return decide_argv(c, stripped, m, via, reason, false);
}

/* Does SCRIPT contain PLACEHOLDER, or read its arguments ($0..$9, ${N}, $@, $*)? */
static bool script_reads_splice(const char *script, const char *placeholder)
{
        if (*placeholder && strstr(script, placeholder))
                return true;
        for (const char *d = strchr(script, '$'); d; d = strchr(d + 1, '$')) {
                const char *x = d + 1 + (d[1] == '{');
                if ((*x >= '0' && *x <= '9') || *x == '@' || *x == '*' || *x == '#' || (*x == '!' && d[1] == '{'))
                        return true;
        }
        return false;
}

static int decide_shell(ctx *c, const sh_word *w, size_t n, const char *via, const char *reason, unsigned depth)
{
        static const char *const long_ok[] = { "norc", "noprofile", "posix", "noediting", NULL };
        const char *base = strrchr(w[0].value, '/') ? strrchr(w[0].value, '/') + 1 : w[0].value;
        bool has_c = false, unknown = false;
        size_t i = 1;
        int r;

        for (; i < n; i++) {
                const char *a = w[i].value;
                if (!w[i].literal) {
                        unknown = true;
                        break;
                }
                if (streq(a, "--") || streq(a, "-")) {
                        i++;
                        break;
                }
                if ((a[0] != '-' && a[0] != '+') || a[1] == 0)
                        break;
                if (a[0] == '-' && a[1] == '-') {
                        if (!in_list(a + 2, long_ok))
                                unknown = true;
                        continue;
                }
                if (streq(a + 1, "o") || streq(a + 1, "O")) {
                        if (i + 1 < n && (streq(w[i + 1].value, "keyword") || !w[i + 1].literal))
                                unknown = true; /* assignments after the command name */
                        i++;
                        continue;
                }
                for (const char *ch = a + 1; *ch; ch++) {
                        if (*ch == 'c' && a[0] == '-')
                                has_c = true;
                        else if (!strchr("abefhmnptuvxBCEHPT", *ch)) /* not -k: NAME=value anywhere */
                                unknown = true;
                }
        }
        if (!has_c) {
                /* "bash script.sh", "curl | sh", "bash <<EOF": the shell runs code the analyser never sees */
                _cleanup_free_ char *why = NULL;
                if (i < n && asprintf(&why, "the shell runs the script file %s, which is not analysed",
                                      w[i].value) < 0)
                        return -ENOMEM;
                return decide_argv(c, w, n, via,
                                   reason ?: why ?: "the shell reads commands from its standard input, "
                                                    "which is not analysed",
                                   false);
        }
        if (unknown || i >= n || !w[i].literal) {
                const char *why = unknown ? "cannot see through the shell: unknown option (e.g. -i or -l "
                                            "reads startup files)"
                                          : i >= n ? "the shell has -c but no script"
                                                   : "the -c script is not a literal string";
                return decide_argv(c, w, n, via, why, false);
        }
        if (depth >= SHELL_DEPTH_MAX)
                return decide_argv(c, w, n, via, "too many nested shells", false);
        if (c->splice && script_reads_splice(w[i].value, c->splice))
                return decide_argv(c, w, n, via,
                                   "the script gets text pasted in at run time (a placeholder or its arguments): "
                                   "file names or input become code",
                                   false);
        r = decide_argv(c, w, n, via, NULL, true);
        if (r < 0)
                return r;
        if (reason) {
                r = add_note(c, via, reason);
                if (r < 0)
                        return r;
        }
        char what[32];
        snprintf(what, sizeof what, "%s -c", base);
        _cleanup_free_ char *via2 = via_push(via, what);
        if (!via2)
                return -ENOMEM;
        const char *saved = c->splice;
        c->splice = NULL;
        r = analyse(c, w[i].value, strlen(w[i].value), via2, depth + 1);
        c->splice = saved;
        return r;
}

static int decide_words(ctx *c, const sh_word *w, size_t n, const char *via, const char *reason, unsigned depth)
{
        const char *base;
        _cleanup_free_ char *why = NULL;
        int r;

        if (n == 0)
                return 0;
        if (depth > WRAP_DEPTH_MAX)
                return decide_argv(c, w, n, via, "too many nested wrappers", false);
        if (!w[0].literal)
                return decide_argv(c, w, n, via, reason, false);
        base = strrchr(w[0].value, '/') ? strrchr(w[0].value, '/') + 1 : w[0].value;

        if (in_list(base, fail_closed)) {
                if (asprintf(&why, "\"%s\" cannot be analysed statically", base) < 0)
                        return -ENOMEM;
                return decide_argv(c, w, n, via, why, false);
        }
        r = binding_reason(base, w, n, &why);
        if (r < 0)
                return r;
        if (why)
                return decide_argv(c, w, n, via, why, false);
        if (streq(base, "command") && n > 1 && w[1].literal && w[1].value[0] == '-' && strpbrk(w[1].value, "vV"))
                return decide_argv(c, w, n, via, reason, false); /* command -v NAME runs nothing */
        if (streq(base, "git"))
                return decide_git(c, w, n, via, reason);
        if (streq(base, "busybox") && n > 1 && w[1].literal && w[1].value[0] != '-') {
                _cleanup_free_ char *via2 = via_push(via, "busybox");
                if (!via2)
                        return -ENOMEM;
                r = decide_argv(c, w, n, via, NULL, true);
                return r < 0 ? r : decide_words(c, w + 1, n - 1, via2, reason, depth + 1);
        }
        if (streq(base, "script"))
                return decide_script(c, w, n, via, reason, depth);
        for (size_t i = 0; i < ELEMENTSOF(wrappers); i++)
                if (streq(base, wrappers[i].name))
                        return decide_wrapper(c, &wrappers[i], w, n, via, reason, depth);
        if (streq(base, "find"))
                return decide_find(c, w, n, via, reason, depth);
        if (in_list(base, shells))
                return decide_shell(c, w, n, via, reason, depth);
        return decide_argv(c, w, n, via, reason, false);
}

static bool is_network_path(const char *norm)
{
        return startswith(norm, "/dev/tcp/") || startswith(norm, "/dev/udp/");
}

/* Output redirections are decided by the write rules; input ones are reads (allowed) unless they open a
 * network connection (/dev/tcp, /dev/udp: decided by the write rules too, and at least ask) or the target
 * is not known. Here-documents and here-strings name no file. */
static int decide_redirect(ctx *c, const sh_redir *rd, const char *via)
{
        const pc_policy *p = c->p;
        const pc_rule *best = NULL;
        const char *reason = NULL, *rule = NULL;
        pc_decision d = PC_DECISION_ALLOW;
        pc_verdict_redirect *e;
        bool heredoc = startswith(rd->op, "<<");
        _cleanup_free_ char *norm = NULL;

        if (heredoc)
                ;
        else if (!rd->literal) {
                d = dmax(p->def, PC_DECISION_ASK);
                rule = "default";
                reason = rd->output ? "the target is not a literal word"
                                    : "the source is not a literal word (it may be /dev/tcp/...)";
        } else {
                norm = path_normalize(rd->target);
                if (!norm)
                        return -ENOMEM;
                bool net = is_network_path(norm);
                if (rd->output || net) {
                        d = write_decision(p, norm, &best);
                        rule = best ? best->loc : in_list(norm, harmless_targets) ? "built-in" : "default";
                }
                if (net) {
                        d = dmax(d, PC_DECISION_ASK);
                        reason = "opens a network connection";
                }
        }
        if (c->v->n_redirects >= PC_VERDICT_ENTRIES_MAX) {
                c->v->n_redirects_omitted++;
                c->v->omitted_decision = dmax(c->v->omitted_decision, d);
                c->incomplete = c->incomplete || reason;
                return 0;
        }
        if (array_grow((void **) &c->v->redirects, &c->cap_redirects, c->v->n_redirects, sizeof(*e)) < 0)
                return -ENOMEM;
        e = &c->v->redirects[c->v->n_redirects++];
        *e = (pc_verdict_redirect){ .literal = rd->literal, .output = rd->output, .decision = d };
        e->op = strdup(rd->op);
        e->path = strdup(rd->target);
        if (!e->op || !e->path)
                return -ENOMEM;
        if (rule && !(e->rule = strdup(rule)))
                return -ENOMEM;
        if (best && !(e->rule_text = strdup(best->text)))
                return -ENOMEM;
        if (reason && !(e->reason = via ? strjoin(reason, " (in ", via, ")") : strdup(reason)))
                return -ENOMEM;
        return 0;
}

typedef struct analysis {
        ctx *c;
        const char *via;
        unsigned depth;
} analysis;

static int on_cmd(void *userdata, const sh_cmd *cmd)
{
        analysis *a = userdata;
        ctx *c = a->c;
        pc_verdict *v = c->v;
        int r;

        if (v->n_commands < PC_VERDICT_ENTRIES_MAX)
                return decide_words(c, cmd->words, cmd->n_words, a->via, cmd->reason, a->depth);

        _cleanup_free_ char *key = memo_key(cmd, a->via, c->splice);
        if (!key)
                return -ENOMEM;
        uint64_t h = hash_str(key);
        if (!c->memo && !(c->memo = calloc(MEMO_SIZE, sizeof(memo))))
                return -ENOMEM;
        memo *m = &c->memo[h & (MEMO_SIZE - 1)];
        if (m->key && m->hash == h && streq(m->key, key)) {
                v->n_commands_omitted++;
                v->omitted_decision = dmax(v->omitted_decision, m->d);
                c->incomplete = c->incomplete || m->incomplete;
                return 0;
        }
        /* remember it only when it left nothing but unlisted commands behind */
        size_t notes = v->n_notes + v->n_notes_omitted, redirs = v->n_redirects + v->n_redirects_omitted;
        bool incomplete = c->incomplete, dir = c->changes_dir;
        c->cmd_max = PC_DECISION_ALLOW;
        c->incomplete = false;
        r = decide_words(c, cmd->words, cmd->n_words, a->via, cmd->reason, a->depth);
        if (r < 0)
                return r;
        if (notes == v->n_notes + v->n_notes_omitted && redirs == v->n_redirects + v->n_redirects_omitted &&
            dir == c->changes_dir) {
                free(m->key);
                *m = (memo){ .hash = h, .key = TAKE_PTR(key), .d = c->cmd_max, .incomplete = c->incomplete };
        }
        c->incomplete = c->incomplete || incomplete;
        return 0;
}

static int on_redir(void *userdata, const sh_redir *rd)
{
        analysis *a = userdata;
        return decide_redirect(a->c, rd, a->via);
}

/* Parses TEXT and decides each command and redirection as soon as the parser finds it. */
static int analyse(ctx *c, const char *text, size_t len, const char *via, unsigned depth)
{
        analysis a = { .c = c, .via = via, .depth = depth };
        _cleanup_(sh_result_done) sh_result res = { .on_cmd = on_cmd, .on_redir = on_redir, .userdata = &a };
        int r;

        r = sh_parse(text, len, depth, &res);
        if (r == -ENOMEM)
                return r;
        c->steps += res.steps;
        for (size_t i = 0; i < res.n_problems; i++) {
                r = add_note(c, via, res.problems[i]);
                if (r < 0)
                        return r;
        }
        if (res.n_problems_omitted > 0) {
                c->v->n_notes_omitted += res.n_problems_omitted;
                c->incomplete = true;
        }
        return 0;
}

pc_verdict *pc_verdict_free(pc_verdict *v)
{
        if (!v)
                return NULL;
        free(v->policy_name);
        free(v->policy_hash);
        for (size_t i = 0; i < v->n_commands; i++) {
                pc_verdict_command *e = &v->commands[i];
                if (e->argv)
                        for (size_t k = 0; k < e->argc; k++)
                                free(e->argv[k]);
                free(e->argv);
                free(e->rule);
                free(e->rule_text);
                free(e->reason);
                free(e->via);
        }
        free(v->commands);
        for (size_t i = 0; i < v->n_redirects; i++) {
                pc_verdict_redirect *e = &v->redirects[i];
                free(e->op);
                free(e->path);
                free(e->rule);
                free(e->rule_text);
                free(e->reason);
        }
        free(v->redirects);
        for (size_t i = 0; i < v->n_notes; i++)
                free(v->notes[i]);
        free(v->notes);
        free(v);
        return NULL;
}

static void ctx_done(ctx *c)
{
        for (size_t i = 0; c->memo && i < MEMO_SIZE; i++)
                free(c->memo[i].key);
        free(c->memo);
}

int policy_decide_counted(const pc_policy *p, const char *command, size_t len, pc_verdict **ret, size_t *ret_steps)
{
        _cleanup_pc_verdict_ pc_verdict *v = calloc(1, sizeof(pc_verdict));
        _cleanup_(ctx_done) ctx c = { .p = p, .v = v };
        int r;

        if (!v)
                return -ENOMEM;
        v->policy_name = strdup(p->name);
        if (!v->policy_name || (p->hash && !(v->policy_hash = strdup(p->hash))))
                return -ENOMEM;
        if (len > PC_COMMAND_MAX)
                r = add_note(&c, NULL, "the command is too long to be analysed");
        else
                r = analyse(&c, command ?: "", command ? len : 0, NULL, 0);
        if (r < 0)
                return r;

        /* after a cd, a relative path names a file somewhere else than the write rules think */
        for (size_t i = 0; c.changes_dir && i < v->n_redirects; i++) {
                pc_verdict_redirect *e = &v->redirects[i];
                if (e->output && e->literal && e->path[0] != '/' && e->decision < PC_DECISION_ASK &&
                    !(e->rule_text && strstr(e->rule_text, " write **") &&
                      streq(strstr(e->rule_text, " write **"), " write **"))) {
                        e->decision = PC_DECISION_ASK;
                        free(e->reason);
                        e->reason = strdup("a cd runs before: the relative path may name another file");
                        if (!e->reason)
                                return -ENOMEM;
                }
        }

        pc_decision d = v->omitted_decision;
        bool complete = v->n_notes == 0 && v->n_notes_omitted == 0 && !c.incomplete;
        for (size_t i = 0; i < v->n_commands; i++) {
                d = dmax(d, v->commands[i].decision);
                if (v->commands[i].reason)
                        complete = false;
        }
        for (size_t i = 0; i < v->n_redirects; i++) {
                d = dmax(d, v->redirects[i].decision);
                if (v->redirects[i].reason)
                        complete = false;
        }
        if (c.changes_dir && v->n_redirects_omitted > 0)
                d = dmax(d, PC_DECISION_ASK);
        if (v->n_notes > 0 || v->n_notes_omitted > 0)
                d = dmax(d, dmax(p->def, PC_DECISION_ASK));
        v->decision = d;
        v->complete = complete;
        if (ret_steps)
                *ret_steps = c.steps;

        *ret = TAKE_PTR(v);
        return 0;
}

int pc_policy_decide(const pc_policy *p, const char *command, size_t len, pc_verdict **ret)
{
        return policy_decide_counted(p, command, len, ret, NULL);
}

/* ---- explanation ---- */

char *pc_shell_quote(const char *word)
{
        _cleanup_(sb_done) strbuf b = {};
        bool plain = *word != 0;

        for (const char *s = word; *s; s++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+%@^", *s)) {
                        plain = false;
                        break;
                }
        if (plain)
                return strdup(word);
        if (sb_putc(&b, '\'') < 0)
                return NULL;
        for (const char *s = word; *s; s++)
                if ((*s == '\'' ? sb_puts(&b, "'\\''") : sb_putc(&b, *s)) < 0)
                        return NULL;
        if (sb_putc(&b, '\'') < 0)
                return NULL;
        return sb_steal(&b);
}

static int put_argv(strbuf *b, char *const *argv, size_t argc)
{
        for (size_t i = 0; i < argc; i++) {
                _cleanup_free_ char *q = pc_shell_quote(argv[i]);
                if (!q)
                        return -ENOMEM;
                if ((i > 0 && sb_putc(b, ' ') < 0) || sb_puts(b, q) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int pc_verdict_format(const pc_verdict *v, char **ret_text)
{
        _cleanup_(sb_done) strbuf b = {};
        int r = 0;

        r |= sb_printf(&b, "%s\n", pc_decision_to_string(v->decision));
        r |= sb_printf(&b, "policy: %s (hash %s)\n", v->policy_name, v->policy_hash ?: "none");
        for (size_t i = 0; i < v->n_commands; i++) {
                const pc_verdict_command *e = &v->commands[i];
                r |= sb_printf(&b, "%-5s  ", pc_decision_to_string(e->decision));
                r |= put_argv(&b, e->argv, e->argc);
                r |= sb_puts(&b, "\n       rule: ");
                r |= sb_puts(&b, e->rule);
                if (e->rule_text)
                        r |= sb_printf(&b, " (%s)", e->rule_text);
                r |= sb_putc(&b, '\n');
                if (e->via)
                        r |= sb_printf(&b, "       via: %s\n", e->via);
                if (e->reason)
                        r |= sb_printf(&b, "       reason: %s\n", e->reason);
        }
        for (size_t i = 0; i < v->n_redirects; i++) {
                const pc_verdict_redirect *e = &v->redirects[i];
                _cleanup_free_ char *q = pc_shell_quote(e->path);
                if (!q)
                        return -ENOMEM;
                r |= sb_printf(&b, "%-5s  redirect %s %s", pc_decision_to_string(e->decision), e->op, q);
                if (e->rule)
                        r |= sb_printf(&b, "\n       rule: %s%s%s%s", e->rule, e->rule_text ? " (" : "",
                                       e->rule_text ?: "", e->rule_text ? ")" : "");
                else
                        r |= sb_puts(&b, " (input)");
                r |= sb_putc(&b, '\n');
                if (e->reason)
                        r |= sb_printf(&b, "       reason: %s\n", e->reason);
        }
        for (size_t i = 0; i < v->n_notes; i++)
                r |= sb_printf(&b, "note: %s\n", v->notes[i]);
        if (v->n_commands_omitted + v->n_redirects_omitted + v->n_notes_omitted > 0)
                r |= sb_printf(&b, "note: %zu more commands, %zu more redirections and %zu more notes are not listed "
                                   "(decided: %s at most)\n",
                               v->n_commands_omitted, v->n_redirects_omitted, v->n_notes_omitted,
                               pc_decision_to_string(dmax(v->omitted_decision, v->n_notes_omitted ? PC_DECISION_ASK : 0)));
        if (v->n_commands == 0 && v->n_redirects == 0 && v->n_notes == 0)
                r |= sb_puts(&b, "note: no command to run\n");
        r |= sb_printf(&b, "analysis: %s\n", v->complete ? "complete" : "incomplete (decided at least ask)");
        if (r < 0)
                return -ENOMEM;
        *ret_text = sb_steal(&b);
        return *ret_text ? 0 : -ENOMEM;
}
