/* SPDX-License-Identifier: MIT */
/* The policy-file parser: lines of shell-quoted words, compiler-style errors (all of them, with a caret),
 * includes contained in the policy's directory, and `test` lines run after a clean parse. */

#include <limits.h>

#include "policies-internal.h"

typedef struct pword {
        char *text;
        char *glob;
        bool quoted;
        unsigned col;  /* 1-based byte column */
        size_t start, end; /* raw extent in the line */
} pword;

typedef struct loader {
        pc_policy *p;
        strbuf errors;
        unsigned n_errors;
        char *top_real; /* realpath of the main file's directory; NULL: includes are not allowed */
        char *stack[PC_POLICY_INCLUDE_MAX + 1];
        size_t n_stack;
        bool seen_default;
        unsigned default_line;
} loader;

static const char *const keywords[] = { "version", "default", "allow", "ask", "deny", "include", "test" };
static const char *const kinds[] = { "exec", "write" };

static size_t edit_distance(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b), prev[32], curr[32];

        if (la >= 31 || lb >= 31)
                return SIZE_MAX;
        for (size_t j = 0; j <= lb; j++)
                prev[j] = j;
        for (size_t i = 1; i <= la; i++) {
                curr[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t c = prev[j - 1] + (a[i - 1] != b[j - 1]);
                        c = MIN(c, prev[j] + 1);
                        c = MIN(c, curr[j - 1] + 1);
                        curr[j] = c;
                }
                memcpy(prev, curr, sizeof(size_t) * (lb + 1));
        }
        return prev[lb];
}

static const char *suggest(const char *s, const char *const *list, size_t n)
{
        const char *best = NULL;
        size_t bd = 3;

        for (size_t i = 0; i < n; i++) {
                size_t d = edit_distance(s, list[i]);
                if (d < bd) {
                        bd = d;
                        best = list[i];
                }
        }
        return best;
}

static bool utf8_valid(const char *s, size_t n, size_t *ret_bad)
{
        const unsigned char *u = (const unsigned char *) s;
        size_t i = 0;

        while (i < n) {
                unsigned char c = u[i];
                size_t k;
                uint32_t cp;

                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xC2 && c <= 0xDF) {
                        k = 1;
                        cp = c & 0x1F;
                } else if (c >= 0xE0 && c <= 0xEF) {
                        k = 2;
                        cp = c & 0x0F;
                } else if (c >= 0xF0 && c <= 0xF4) {
                        k = 3;
                        cp = c & 0x07;
                } else {
                        *ret_bad = i;
                        return false;
                }
                for (size_t j = 1; j <= k; j++) {
                        if (i + j >= n || (u[i + j] & 0xC0) != 0x80) {
                                *ret_bad = i;
                                return false;
                        }
                        cp = (cp << 6) | (u[i + j] & 0x3F);
                }
                if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
                    (cp >= 0xD800 && cp <= 0xDFFF)) {
                        *ret_bad = i;
                        return false;
                }
                i += k + 1;
        }
        return true;
}

/* Appends "FILE:LINE:COL: error: MESSAGE", the line and a caret under COL. */
static int add_error(loader *l, const char *file, unsigned line, unsigned col, const char *src, size_t src_len,
                     const char *fmt, ...) _printf_(7, 8);
static int add_error(loader *l, const char *file, unsigned line, unsigned col, const char *src, size_t src_len,
                     const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        int r;

        l->n_errors++;
        if (l->n_errors > PC_POLICY_ERRORS_MAX) {
                if (l->n_errors == PC_POLICY_ERRORS_MAX + 1)
                        return sb_printf(&l->errors, "%s: error: too many errors, giving up\n", file);
                return 0;
        }
        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0) {
                msg = NULL;
                return -ENOMEM;
        }
        if (line == 0)
                return sb_printf(&l->errors, "%s: error: %s\n", file, msg);
        r = sb_printf(&l->errors, "%s:%u:%u: error: %s\n", file, line, col, msg);
        if (r < 0 || !src)
                return r;

        /* the source line, made printable, at most 160 bytes; then the caret */
        size_t shown = MIN(src_len, (size_t) 160), bad;
        bool valid = utf8_valid(src, shown, &bad);
        for (size_t i = 0; i < shown && r >= 0; i++) {
                unsigned char c = (unsigned char) src[i];
                if (c == '\t' || (c >= 0x20 && c != 0x7F && (c < 0x80 || valid)))
                        r = sb_putc(&l->errors, (char) c);
                else
                        r = sb_putc(&l->errors, '?');
        }
        if (r >= 0 && shown < src_len)
                r = sb_puts(&l->errors, "...");
        if (r >= 0)
                r = sb_putc(&l->errors, '\n');
        size_t caret = MIN((size_t) (col > 0 ? col - 1 : 0), shown);
        for (size_t i = 0; i < caret && r >= 0; i++) {
                unsigned char c = (unsigned char) src[i];
                /* keep the caret under the right column: tabs stay tabs, UTF-8 continuation bytes vanish */
                if (c == '\t')
                        r = sb_putc(&l->errors, '\t');
                else if (!(valid && (c & 0xC0) == 0x80))
                        r = sb_putc(&l->errors, ' ');
        }
        if (r >= 0)
                r = sb_puts(&l->errors, "^\n");
        return r;
}

static void pwords_free(pword *w, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(w[i].text);
                free(w[i].glob);
        }
        free(w);
}

/* Splits a line into shell-quoted words. On a quoting error returns -EINVAL with *ret_col set. */
static int split_words(const char *line, size_t n, pword **ret, size_t *ret_n, unsigned *ret_col,
                       const char **ret_msg)
{
        pword *words = NULL;
        size_t nw = 0, cap = 0, i = 0;
        int r = 0;

        for (;;) {
                while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
                        i++;
                if (i >= n || line[i] == '#')
                        break;
                if (nw >= PC_POLICY_WORDS_MAX) {
                        *ret_col = (unsigned) i + 1;
                        *ret_msg = "too many words on one line";
                        r = -EINVAL;
                        break;
                }
                strbuf text = {}, glob = {};
                bool quoted = false, has_glob = false;
                size_t start = i;

                while (i < n && r >= 0 && !(line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) {
                        char c = line[i];
                        if (c == '\'' || c == '"') {
                                size_t q = i;
                                quoted = true;
                                for (i++;; i++) {
                                        if (i >= n) {
                                                *ret_col = (unsigned) q + 1;
                                                *ret_msg = c == '\'' ? "unterminated '" : "unterminated \"";
                                                r = -EINVAL;
                                                break;
                                        }
                                        char d = line[i];
                                        if (d == c)
                                                break;
                                        if (c == '"' && d == '\\' && i + 1 < n && strchr("\"\\$`", line[i + 1]))
                                                d = line[++i];
                                        if (strchr("*?[]\\", d) && sb_putc(&glob, '\\') < 0)
                                                r = -ENOMEM;
                                        if (sb_putc(&text, d) < 0 || sb_putc(&glob, d) < 0)
                                                r = -ENOMEM;
                                        if (r < 0)
                                                break;
                                }
                                i++;
                        } else if (c == '\\' && i + 1 < n) {
                                quoted = true;
                                char d = line[i + 1];
                                if ((strchr("*?[]\\", d) && sb_putc(&glob, '\\') < 0) || sb_putc(&text, d) < 0 ||
                                    sb_putc(&glob, d) < 0)
                                        r = -ENOMEM;
                                i += 2;
                        } else {
                                if (c == '*' || c == '?' || c == '[')
                                        has_glob = true;
                                if (sb_putc(&text, c) < 0 || sb_putc(&glob, c) < 0)
                                        r = -ENOMEM;
                                i++;
                        }
                }
                if (r >= 0 && array_grow((void **) &words, &cap, nw, sizeof(pword)) < 0)
                        r = -ENOMEM;
                if (r < 0) {
                        sb_done(&text);
                        sb_done(&glob);
                        break;
                }
                words[nw] = (pword){ .quoted = quoted, .col = (unsigned) start + 1, .start = start, .end = i };
                words[nw].text = sb_steal(&text);
                words[nw].glob = has_glob ? sb_steal(&glob) : NULL;
                sb_done(&glob);
                nw++;
                if (!words[nw - 1].text || (has_glob && !words[nw - 1].glob)) {
                        r = -ENOMEM;
                        break;
                }
        }
        if (r < 0) {
                pwords_free(words, nw);
                return r;
        }
        *ret = words;
        *ret_n = nw;
        return 0;
}

static int parse_text(loader *l, const char *file, const char *dir, const char *text, size_t len, bool top);

static char *rule_text(const char *line, const pword *w, size_t n)
{
        strbuf b = {};

        for (size_t i = 0; i < n; i++)
                if ((i > 0 && sb_putc(&b, ' ') < 0) || sb_putn(&b, line + w[i].start, w[i].end - w[i].start) < 0) {
                        sb_done(&b);
                        return NULL;
                }
        return sb_steal(&b);
}

#define ERR(w, ...) add_error(l, file, lineno, (w) ? (w)->col : 1, line, ll, __VA_ARGS__)

static int do_include(loader *l, const char *file, unsigned lineno, const char *line, size_t ll, const pword *w,
                      const char *dir)
{
        _cleanup_free_ char *joined = NULL, *real = NULL, *data = NULL;
        size_t size;
        int r;

        if (!l->top_real || !dir)
                return ERR(w, "include is not allowed here (the policy was not loaded from a file)");
        if (w->text[0] == '/' || w->text[0] == 0)
                return ERR(w, "include path \"%s\" must be relative to the including file", w->text);
        joined = strjoin(dir, "/", w->text);
        if (!joined)
                return -ENOMEM;
        real = realpath(joined, NULL);
        if (!real)
                return ERR(w, "cannot include \"%s\": %s", w->text, strerror(errno));
        if (!startswith(real, l->top_real) || real[strlen(l->top_real)] != '/')
                return ERR(w, "include \"%s\" leaves the policy directory %s", w->text, l->top_real);
        for (size_t i = 0; i < l->n_stack; i++)
                if (streq(l->stack[i], real))
                        return ERR(w, "include cycle: \"%s\" is already being loaded", w->text);
        if (l->n_stack >= PC_POLICY_INCLUDE_MAX)
                return ERR(w, "includes are nested deeper than %u", PC_POLICY_INCLUDE_MAX);
        r = read_full_file(real, PC_POLICY_FILE_MAX, &data, &size);
        if (r == -EFBIG)
                return ERR(w, "cannot include \"%s\": larger than %u bytes", w->text, PC_POLICY_FILE_MAX);
        if (r < 0)
                return ERR(w, "cannot include \"%s\": %s", w->text, strerror(-r));

        pc_policy *p = l->p;
        if (array_grow((void **) &p->files, &p->cap_files, p->n_files, sizeof(char *)) < 0)
                return -ENOMEM;
        p->files[p->n_files++] = TAKE_PTR(joined);
        const char *disp = p->files[p->n_files - 1];
        r = sb_printf(&p->source, "%s# ==> included file: %s <==\n",
                      p->source.n > 0 && p->source.s[p->source.n - 1] != '\n' ? "\n" : "", disp);
        if (r < 0 || sb_putn(&p->source, data, size) < 0)
                return -ENOMEM;

        _cleanup_free_ char *subdir = strdup(disp);
        if (!subdir)
                return -ENOMEM;
        char *slash = strrchr(subdir, '/');
        if (slash)
                *slash = 0;
        l->stack[l->n_stack++] = TAKE_PTR(real);
        r = parse_text(l, disp, subdir, data, size, false);
        free(l->stack[--l->n_stack]);
        return r;
}

static int parse_action(loader *l, const char *file, unsigned lineno, const char *line, size_t ll, const pword *w,
                        pc_decision *ret)
{
        int d = pc_decision_from_string(w->text);
        if (d < 0) {
                int r = ERR(w, "unknown action \"%s\" (expected allow, ask, deny)", w->text);
                return r < 0 ? r : -EINVAL;
        }
        *ret = (pc_decision) d;
        return 0;
}

static int parse_line(loader *l, const char *file, const char *dir, unsigned lineno, const char *line, size_t ll,
                      pword *w, size_t n, bool top, bool *seen_version)
{
        pc_policy *p = l->p;
        const char *kw = w[0].text;
        pc_decision action;
        int r;

        if (w[0].quoted)
                return ERR(&w[0], "a keyword may not be quoted");
        if (streq(kw, "version")) {
                if (n != 2)
                        return ERR(&w[0], "\"version\" takes one value (version 1)");
                if (!streq(w[1].text, "1"))
                        return ERR(&w[1], "unsupported version \"%s\" (expected 1)", w[1].text);
                if (*seen_version)
                        return ERR(&w[0], "\"version\" given twice");
                *seen_version = true;
                return 0;
        }
        if (streq(kw, "default")) {
                if (n != 2)
                        return ERR(&w[0], "\"default\" takes one action (allow, ask or deny)");
                r = parse_action(l, file, lineno, line, ll, &w[1], &action);
                if (r < 0)
                        return r == -EINVAL ? 0 : r;
                if (!top)
                        return ERR(&w[0], "\"default\" may only be set in the main policy file");
                if (l->seen_default)
                        return ERR(&w[0], "\"default\" already set on line %u", l->default_line);
                l->seen_default = true;
                l->default_line = lineno;
                p->def = action;
                return 0;
        }
        if (streq(kw, "include")) {
                if (n != 2)
                        return ERR(&w[0], "\"include\" takes one file name");
                return do_include(l, file, lineno, line, ll, &w[1], dir);
        }
        if (streq(kw, "test")) {
                if (n < 3)
                        return ERR(&w[0], "\"test\" needs an action and a command (test deny \"rm -rf /\")");
                r = parse_action(l, file, lineno, line, ll, &w[1], &action);
                if (r < 0)
                        return r == -EINVAL ? 0 : r;
                strbuf cmd = {};
                for (size_t i = 2; i < n; i++)
                        if ((i > 2 && sb_putc(&cmd, ' ') < 0) || sb_puts(&cmd, w[i].text) < 0) {
                                sb_done(&cmd);
                                return -ENOMEM;
                        }
                if (array_grow((void **) &p->tests, &p->cap_tests, p->n_tests, sizeof(pc_test)) < 0) {
                        sb_done(&cmd);
                        return -ENOMEM;
                }
                pc_test *t = &p->tests[p->n_tests];
                *t = (pc_test){ .expect = action, .file = file, .line = lineno, .col = w[1].col };
                t->command = sb_steal(&cmd);
                t->line_text = strndup(line, ll);
                p->n_tests++;
                return t->command && t->line_text ? 0 : -ENOMEM;
        }
        if (pc_decision_from_string(kw) < 0) {
                const char *s = suggest(kw, keywords, ELEMENTSOF(keywords));
                if (s)
                        return ERR(&w[0], "unknown keyword \"%s\" (did you mean \"%s\"?)", kw, s);
                return ERR(&w[0], "unknown keyword \"%s\" (expected version, default, allow, ask, deny, include, test)",
                           kw);
        }

        /* ACTION exec WORD... / ACTION write PATH */
        action = (pc_decision) pc_decision_from_string(kw);
        if (n < 2)
                return ERR(&w[0], "\"%s\" needs a rule kind and words (%s exec COMMAND...)", kw, kw);
        rule_kind kind;
        if (streq(w[1].text, "exec") && !w[1].quoted)
                kind = RULE_EXEC;
        else if (streq(w[1].text, "write") && !w[1].quoted)
                kind = RULE_WRITE;
        else {
                const char *s = suggest(w[1].text, kinds, ELEMENTSOF(kinds));
                if (s)
                        return ERR(&w[1], "unknown rule kind \"%s\" (did you mean \"%s\"?)", w[1].text, s);
                return ERR(&w[1], "unknown rule kind \"%s\" (expected exec or write)", w[1].text);
        }
        if (n < 3)
                return ERR(&w[1], "\"%s %s\" needs at least one word", kw, w[1].text);
        if (kind == RULE_WRITE && n != 3)
                return ERR(&w[3], "\"%s write\" takes exactly one path pattern", kw);
        size_t nwords = n - 2;
        bool tail = false;
        for (size_t i = 2; i < n; i++)
                if (!w[i].quoted && streq(w[i].text, "...")) {
                        if (kind == RULE_WRITE)
                                return ERR(&w[i], "\"...\" is not allowed in a write rule");
                        if (i == 2)
                                return ERR(&w[i], "a rule needs a command word before \"...\" (use * ...)");
                        if (i != n - 1)
                                return ERR(&w[i], "\"...\" must be the last word of a rule");
                        tail = true;
                        nwords--;
                }
        if (p->n_rules >= PC_POLICY_RULES_MAX)
                return ERR(&w[0], "too many rules (at most %u)", PC_POLICY_RULES_MAX);
        if (array_grow((void **) &p->rules, &p->cap_rules, p->n_rules, sizeof(pc_rule)) < 0)
                return -ENOMEM;
        pc_rule *rule = &p->rules[p->n_rules];
        *rule = (pc_rule){ .action = action, .kind = kind, .tail = tail };
        rule->words = calloc(nwords, sizeof(pat_word));
        if (!rule->words)
                return -ENOMEM;
        p->n_rules++;
        rule->n_words = nwords;
        for (size_t i = 0; i < nwords; i++) {
                rule->words[i].text = TAKE_PTR(w[i + 2].text);
                rule->words[i].glob = TAKE_PTR(w[i + 2].glob);
        }
        const char *first = rule->words[0].text, *slash = strrchr(first, '/');
        rule->command = strdup(slash ? slash + 1 : first);
        if (!rule->command)
                return -ENOMEM;
        rule->whole_options = streq(rule->command, "find");
        for (size_t i = 1; i < nwords && kind == RULE_EXEC; i++) {
                pat_word *pw = &rule->words[i];
                pw->flag = !pw->glob && pw->text[0] == '-' && pw->text[1] && !streq(pw->text, "--");
        }
        /* paths in rules are compared after lexical normalisation, like the words they are matched with */
        for (size_t i = 0; i < nwords; i++) {
                pat_word *pw = &rule->words[i];
                if (!strchr(pw->text, '/') || pw->flag)
                        continue;
                char *t = path_normalize(pw->text), *g = pw->glob ? path_normalize(pw->glob) : NULL;
                if (!t || (pw->glob && !g)) {
                        free(t);
                        free(g);
                        return -ENOMEM;
                }
                free(pw->text);
                pw->text = t;
                if (g) {
                        free(pw->glob);
                        pw->glob = g;
                }
        }
        if (kind == RULE_EXEC) {
                const char *sub = NULL;
                if (streq(rule->command, "git"))
                        for (size_t i = 1; i < nwords && !sub; i++)
                                if (!rule->words[i].glob && !rule->words[i].flag)
                                        sub = rule->words[i].text;
                rule->spec = spec_find(rule->command, sub);
        }
        if (asprintf(&rule->loc, "%s:%u", file, lineno) < 0) {
                rule->loc = NULL;
                return -ENOMEM;
        }
        rule->text = rule_text(line, w, n);
        return rule->text ? 0 : -ENOMEM;
}

static int parse_text(loader *l, const char *file, const char *dir, const char *text, size_t len, bool top)
{
        bool seen_version = false;
        unsigned lineno = 0;
        size_t pos = 0;
        int r;

        while (pos < len) {
                const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
                size_t ll = nl ? (size_t) (nl - line) : len - pos, bad;
                pword *w = NULL;
                size_t n = 0;
                unsigned col;
                const char *msg;

                lineno++;
                pos += ll + (nl ? 1 : 0);
                if (ll > PC_POLICY_LINE_MAX) {
                        r = add_error(l, file, lineno, PC_POLICY_LINE_MAX + 1, line, ll, "line is longer than %u bytes", PC_POLICY_LINE_MAX);
                        if (r < 0)
                                return r;
                        continue;
                }
                const char *z = memchr(line, 0, ll);
                if (z) {
                        r = add_error(l, file, lineno, (unsigned) (z - line) + 1, line, ll, "NUL byte");
                        if (r < 0)
                                return r;
                        continue;
                }
                if (!utf8_valid(line, ll, &bad)) {
                        r = add_error(l, file, lineno, (unsigned) bad + 1, line, ll, "invalid UTF-8");
                        if (r < 0)
                                return r;
                        continue;
                }
                r = split_words(line, ll, &w, &n, &col, &msg);
                if (r == -EINVAL) {
                        r = add_error(l, file, lineno, col, line, ll, "%s", msg);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (r < 0)
                        return r;
                if (n > 0)
                        r = parse_line(l, file, dir, lineno, line, ll, w, n, top, &seen_version);
                pwords_free(w, n);
                if (r < 0)
                        return r;
        }
        if (top && !seen_version) {
                r = add_error(l, file, 1, 1, NULL, 0, "missing \"version 1\" line");
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The part of the verdict that decided it, for a failing test. */
static char *verdict_why(const pc_verdict *v)
{
        char *s = NULL;
        int r = 0;

        for (size_t i = 0; i < v->n_commands && !s; i++) {
                const pc_verdict_command *e = &v->commands[i];
                if (e->decision != v->decision)
                        continue;
                strbuf b = {};
                for (size_t k = 0; k < e->argc; k++)
                        if ((k > 0 && sb_putc(&b, ' ') < 0) || sb_puts(&b, e->argv[k]) < 0)
                                r = -ENOMEM;
                _cleanup_free_ char *a = sb_steal(&b);
                if (r < 0 || !a)
                        return NULL;
                if (asprintf(&s, "\"%s\" decided by %s%s%s%s%s%s", a, e->rule, e->rule_text ? " (" : "",
                             e->rule_text ?: "", e->rule_text ? ")" : "", e->reason ? ": " : "", e->reason ?: "") < 0)
                        return NULL;
        }
        for (size_t i = 0; i < v->n_redirects && !s; i++) {
                const pc_verdict_redirect *e = &v->redirects[i];
                if (e->decision != v->decision)
                        continue;
                if (asprintf(&s, "redirection %s %s decided by %s%s%s", e->op, e->path, e->rule ?: "input",
                             e->reason ? ": " : "", e->reason ?: "") < 0)
                        return NULL;
        }
        if (!s && v->n_notes > 0 && asprintf(&s, "%s", v->notes[0]) < 0)
                return NULL;
        if (!s)
                s = strdup(v->n_commands == 0 ? "no command to run" : "default");
        return s;
}

static int run_tests(loader *l)
{
        pc_policy *p = l->p;

        for (size_t i = 0; i < p->n_tests; i++) {
                const pc_test *t = &p->tests[i];
                _cleanup_pc_verdict_ pc_verdict *v = NULL;
                int r;

                r = pc_policy_decide(p, t->command, strlen(t->command), &v);
                if (r < 0)
                        return r;
                if (v->decision == t->expect)
                        continue;
                _cleanup_free_ char *why = verdict_why(v);
                if (!why)
                        return -ENOMEM;
                r = add_error(l, t->file, t->line, t->col, t->line_text, strlen(t->line_text),
                              "test failed: \"%s\" is decided %s, expected %s: %s", t->command,
                              pc_decision_to_string(v->decision), pc_decision_to_string(t->expect), why);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int load(const char *name, const char *path, const char *text, size_t len, pc_policy **ret,
                char **ret_errors)
{
        _cleanup_pc_policy_ pc_policy *p = calloc(1, sizeof(pc_policy));
        loader l = { .p = p };
        const char *file = path ?: name;
        _cleanup_free_ char *dir = NULL;
        int r;

        if (!p)
                return -ENOMEM;
        p->refs = 1;
        p->def = PC_DECISION_ASK;
        p->name = strdup(name);
        if (!p->name || array_grow((void **) &p->files, &p->cap_files, 0, sizeof(char *)) < 0 ||
            !(p->files[0] = strdup(file)))
                return -ENOMEM;
        p->n_files = 1;
        if (sb_putn(&p->source, text, len) < 0)
                return -ENOMEM;
        if (path) {
                dir = strdup(path);
                if (!dir)
                        return -ENOMEM;
                char *slash = strrchr(dir, '/');
                if (slash)
                        *(slash == dir ? slash + 1 : slash) = 0;
                else {
                        free(dir);
                        dir = strdup(".");
                        if (!dir)
                                return -ENOMEM;
                }
                l.top_real = realpath(dir, NULL);
                _cleanup_free_ char *self = realpath(path, NULL);
                if (self)
                        l.stack[l.n_stack++] = TAKE_PTR(self);
        }

        r = parse_text(&l, p->files[0], dir, text, len, true);
        if (r >= 0 && l.n_errors == 0)
                r = policy_compile(p);
        if (r >= 0 && l.n_errors == 0)
                r = run_tests(&l);

        free(l.top_real);
        for (size_t i = 0; i < l.n_stack; i++)
                free(l.stack[i]);
        if (r < 0) {
                sb_done(&l.errors);
                return r;
        }
        if (l.n_errors > 0) {
                if (ret_errors)
                        *ret_errors = sb_steal(&l.errors);
                sb_done(&l.errors);
                return -EINVAL;
        }
        sb_done(&l.errors);
        *ret = TAKE_PTR(p);
        return 0;
}

int pc_policy_load_string(const char *name, const char *path_for_messages, const char *text, size_t len,
                          pc_policy **ret, char **ret_errors)
{
        if (!name || !ret || (!text && len > 0))
                return -EINVAL;
        if (len > PC_POLICY_FILE_MAX) {
                if (ret_errors && asprintf(ret_errors, "%s: error: larger than %u bytes\n", path_for_messages ?: name,
                                           PC_POLICY_FILE_MAX) < 0)
                        *ret_errors = NULL;
                return -EFBIG;
        }
        return load(name, path_for_messages, text ?: "", len, ret, ret_errors);
}

int pc_policy_load_file(const char *path, pc_policy **ret, char **ret_errors)
{
        _cleanup_free_ char *data = NULL, *name = NULL;
        size_t size;
        int r;

        if (!path || !ret)
                return -EINVAL;
        r = read_full_file(path, PC_POLICY_FILE_MAX, &data, &size);
        if (r < 0) {
                if (ret_errors &&
                    asprintf(ret_errors, "%s: error: %s\n", path,
                             r == -EFBIG ? "larger than 1048576 bytes" : strerror(-r)) < 0)
                        *ret_errors = NULL;
                return r;
        }
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        size_t n = strlen(base);
        if (n > 7 && streq(base + n - 7, ".policy"))
                n -= 7;
        name = strndup(base, n);
        if (!name)
                return -ENOMEM;
        return load(name, path, data, size, ret, ret_errors);
}
