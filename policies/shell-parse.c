/* SPDX-License-Identifier: MIT */
/* A parser for the bash command language as AI agents write it. It does not build a tree: it walks the
 * text the way bash would tokenise and parse it and reports every simple command it finds (including
 * those inside $(), backticks, <(), here-documents, compound commands and function bodies), every
 * redirection, and every construct whose effect cannot be known statically. When in doubt it reports a
 * problem: the caller turns problems into "at least ask". */

#include "policies-internal.h"

typedef struct heredoc {
        char *delim;
        bool quoted;
        bool strip_tabs;
} heredoc;

#define HEREDOC_MAX 16

typedef struct parser {
        const char *s;
        size_t len, pos;
        unsigned depth;
        sh_result *res;
        heredoc hd[HEREDOC_MAX];
        size_t n_hd;
        uint32_t *close; /* paren_close() answers: 0 unknown, else one past the ")" (len + 1: none) */
        bool assignment_ok; /* the next word may be an assignment (scan_word: NAME[ ... ] is one word) */
} parser;

/* ---- strbuf ---- */

int sb_putn(strbuf *b, const char *s, size_t n)
{
        if (b->n + n + 1 > b->cap) {
                size_t ncap = MAX(b->cap * 2, b->n + n + 1);
                char *p;

                ncap = MAX(ncap, (size_t) 32);
                p = realloc(b->s, ncap);
                if (!p)
                        return -ENOMEM;
                b->s = p;
                b->cap = ncap;
        }
        memcpy(b->s + b->n, s, n);
        b->n += n;
        b->s[b->n] = 0;
        return 0;
}

int sb_puts(strbuf *b, const char *s)
{
        return sb_putn(b, s, strlen(s));
}

int sb_putc(strbuf *b, char c)
{
        return sb_putn(b, &c, 1);
}

int sb_printf(strbuf *b, const char *fmt, ...)
{
        _cleanup_free_ char *t = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&t, fmt, ap);
        va_end(ap);
        if (r < 0) {
                t = NULL;
                return -ENOMEM;
        }
        return sb_putn(b, t, (size_t) r);
}

char *sb_steal(strbuf *b)
{
        char *s = b->s;

        if (!s)
                s = strdup("");
        *b = (strbuf){};
        return s;
}

/* ---- results ---- */

void sh_words_free(sh_word *w, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(w[i].value);
        free(w);
}

void sh_result_done(sh_result *r)
{
        for (size_t i = 0; i < r->n_cmds; i++) {
                sh_words_free(r->cmds[i].words, r->cmds[i].n_words);
                free(r->cmds[i].reason);
        }
        free(r->cmds);
        for (size_t i = 0; i < r->n_redirs; i++) {
                free(r->redirs[i].op);
                free(r->redirs[i].target);
        }
        free(r->redirs);
        for (size_t i = 0; i < r->n_problems; i++)
                free(r->problems[i]);
        free(r->problems);
        *r = (sh_result){};
}

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
        if (n < *cap)
                return 0;
        size_t ncap = MAX(*cap * 2, (size_t) 8);
        void *q = reallocarray(*p, ncap, size);
        if (!q)
                return -ENOMEM;
        *p = q;
        *cap = ncap;
        return 0;
}

int sh_result_add_problem(sh_result *r, const char *fmt, ...)
{
        char *t;
        va_list ap;
        int k;

        if (r->n_problems >= SH_PROBLEMS_MAX) {
                r->n_problems_omitted++;
                return 0;
        }
        if (grow((void **) &r->problems, &r->cap_problems, r->n_problems, sizeof(char *)) < 0)
                return -ENOMEM;
        va_start(ap, fmt);
        k = vasprintf(&t, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        r->problems[r->n_problems++] = t;
        return 0;
}

static int add_redir(sh_result *r, const char *op, const char *target, bool literal, bool output)
{
        if (r->on_redir)
                return r->on_redir(r->userdata, &(const sh_redir){ .op = (char *) op, .target = (char *) target,
                                                                  .literal = literal, .output = output });
        if (grow((void **) &r->redirs, &r->cap_redirs, r->n_redirs, sizeof(sh_redir)) < 0)
                return -ENOMEM;
        sh_redir *d = &r->redirs[r->n_redirs];
        d->op = strdup(op);
        d->target = strdup(target);
        d->literal = literal;
        d->output = output;
        if (!d->op || !d->target) {
                free(d->op);
                free(d->target);
                return -ENOMEM;
        }
        r->n_redirs++;
        return 0;
}

static inline bool is_name_char_(char c);

/* Variables whose value changes which program runs or makes a program run something else. */
static const char *const dangerous_vars[] = {
        "PATH", "ENV", "IFS", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "CDPATH", "GLOBIGNORE",
        "EXECIGNORE", "HOME", "XDG_CONFIG_HOME", "SHELL", "GCONV_PATH", "HOSTALIASES", "PAGER", "MANPAGER",
        "EDITOR", "VISUAL", "SUDO_EDITOR", "LESSOPEN", "LESSCLOSE", "BROWSER", "RUBYOPT", "RUBYLIB",
        "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "SSH_ASKPASS", "TERMINFO", "MAKEFLAGS", "MFLAGS", "RIPGREP_CONFIG_PATH",
        "ZDOTDIR", "PERLLIB", "TMPDIR", "CC", "CXX", "LESS", "CURL_HOME", "WGETRC", "SSL_CERT_FILE",
        "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ftp_proxy", "all_proxy", "ALL_PROXY",
        "no_proxy", "NO_PROXY", "POSIXLY_CORRECT",
};
/* ... and whole families of them */
static const char *const dangerous_prefixes[] = {
        "LD_", "DYLD_", "GIT_", "BASH_", "PYTHON", "PERL5", "NODE_", "NPM_CONFIG_", "npm_config_", "CARGO_",
        "RUSTC", "GCC_", "DOCKER_",
};
/* Names that may be bound by "for", "read", "printf -v" ... besides lower-case ones */
static const char *const safe_upper_vars[] = { "REPLY", "OPTARG", "OPTIND", "MAPFILE", "COPROC", "COLUMNS", "LINES" };

static bool name_in(const char *name, size_t len, const char *const *list, size_t n, bool prefix)
{
        for (size_t i = 0; i < n; i++) {
                size_t k = strlen(list[i]);
                if ((prefix ? len >= k : len == k) && strneq(list[i], name, k))
                        return true;
        }
        return false;
}

bool sh_dangerous_variable(const char *name, size_t len)
{
        return name_in(name, len, dangerous_vars, ELEMENTSOF(dangerous_vars), false) ||
               name_in(name, len, dangerous_prefixes, ELEMENTSOF(dangerous_prefixes), true);
}

const char *sh_binding_problem(const char *name, size_t len)
{
        bool lower = len > 0 && !(name[0] >= '0' && name[0] <= '9');

        for (size_t i = 0; i < len; i++) {
                if (name[i] == '[')
                        return sh_subscript_literal(name + i, len - i) ? NULL : "its array subscript is evaluated as arithmetic";
                if (!is_name_char_(name[i]))
                        return "it is not a plain variable name";
                if (name[i] >= 'A' && name[i] <= 'Z')
                        lower = false;
        }
        if (sh_dangerous_variable(name, len))
                return "it changes what programs run";
        if (lower || name_in(name, len, safe_upper_vars, ELEMENTSOF(safe_upper_vars), false))
                return NULL;
        return "only lower-case names and REPLY, OPTARG, OPTIND, MAPFILE may be bound without asking";
}

bool sh_subscript_literal(const char *s, size_t len)
{
        /* "[123]" or "[123]..." */
        size_t i = 1;
        if (len < 3 || s[0] != '[')
                return false;
        while (i < len && s[i] >= '0' && s[i] <= '9')
                i++;
        return i > 1 && i < len && s[i] == ']';
}

/* ---- scanning helpers ---- */

static inline char at(const parser *p, size_t off)
{
        return p->pos + off < p->len ? p->s[p->pos + off] : 0;
}

static inline char cur(const parser *p)
{
        return at(p, 0);
}

static inline bool is_eof(const parser *p)
{
        return p->pos >= p->len;
}

static inline bool is_meta(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == ';' || c == '&' || c == '|' || c == '(' ||
               c == ')' || c == '<' || c == '>';
}

static inline bool is_delim(char c)
{
        return c == 0 || is_meta(c);
}

static inline bool is_name_char_(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (c >= '0' && c <= '9');
}

static inline bool is_name_start(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static inline bool is_name_char(char c)
{
        return is_name_start(c) || (c >= '0' && c <= '9');
}

static int syntax_error(parser *p, const char *what)
{
        int r = sh_result_add_problem(p->res, "syntax error at column %zu: %s", p->pos + 1, what);
        return r < 0 ? r : -EINVAL;
}

static int enter(parser *p)
{
        p->res->steps++;
        if (++p->depth > SH_DEPTH_MAX)
                return syntax_error(p, "nested too deeply");
        return 0;
}

static int parse_list(parser *p);
static int parse_command(parser *p);
static int scan_word(parser *p, sh_word *w);
static int scan_dollar(parser *p, strbuf *sb, bool *literal, bool in_dq);
static int scan_backtick(parser *p, bool in_dq);
static int scan_dquote(parser *p, strbuf *sb, bool *literal);

static int sub_parse(parser *p, const char *text, size_t len, bool heredoc_body);

/* Skips blanks, line continuations and a comment (which only starts where a word could start). */
static void skip_blank(parser *p)
{
        for (;;) {
                char c = cur(p);
                if (c == ' ' || c == '\t')
                        p->pos++;
                else if (c == '\\' && at(p, 1) == '\n')
                        p->pos += 2;
                else if (c == '#') {
                        while (!is_eof(p) && cur(p) != '\n')
                                p->pos++;
                } else
                        break;
        }
}

/* Reads the bodies of the here-documents announced on the line that just ended. Like bash, a line of an
 * unquoted here-document that ends in an unescaped backslash is joined with the next one before it is
 * compared with the delimiter, and the body's expansions are decided on the joined text. */
static int read_heredocs(parser *p)
{
        size_t n = p->n_hd;
        int r = 0;

        p->n_hd = 0;
        for (size_t i = 0; i < n; i++) {
                heredoc *h = &p->hd[i];
                size_t dlen = strlen(h->delim);
                _cleanup_(sb_done) strbuf body = {}, line = {};

                while (!is_eof(p) && r >= 0) {
                        bool first = true;

                        line.n = 0;
                        for (;;) {
                                size_t ls = p->pos, le = ls, l = ls, bs = 0;
                                while (le < p->len && p->s[le] != '\n')
                                        le++;
                                if (h->strip_tabs && first)
                                        while (l < le && p->s[l] == '\t')
                                                l++;
                                for (size_t k = le; k > l && p->s[k - 1] == '\\'; k--)
                                        bs++;
                                p->pos = le < p->len ? le + 1 : le;
                                p->res->steps += le - ls + 1;
                                first = false;
                                if (!h->quoted && bs % 2 == 1 && le < p->len) {
                                        r = sb_putn(&line, p->s + l, le - l - 1);
                                        if (r < 0)
                                                break;
                                        continue;
                                }
                                r = sb_putn(&line, p->s + l, le - l);
                                break;
                        }
                        if (r < 0)
                                break;
                        if (line.n == dlen && memcmp(line.s ?: "", h->delim, dlen) == 0)
                                break;
                        if (!h->quoted && (r = sb_putn(&body, line.s ?: "", line.n)) >= 0)
                                r = sb_putc(&body, '\n');
                }
                if (r >= 0 && !h->quoted && body.n > 0)
                        r = sub_parse(p, body.s, body.n, true);
                free(h->delim);
                h->delim = NULL;
        }
        return r;
}

static int consume_newline(parser *p)
{
        p->pos++;
        return read_heredocs(p);
}

static int skip_blank_nl(parser *p)
{
        for (;;) {
                skip_blank(p);
                if (cur(p) != '\n')
                        return 0;
                int r = consume_newline(p);
                if (r < 0)
                        return r;
        }
}

/* Is the (unquoted) reserved word KW at the current position? */
static bool at_kw(const parser *p, const char *kw)
{
        size_t n = strlen(kw);
        if (p->pos + n > p->len || memcmp(p->s + p->pos, kw, n) != 0)
                return false;
        return is_delim(p->pos + n < p->len ? p->s[p->pos + n] : 0);
}

static int expect_kw(parser *p, const char *kw)
{
        skip_blank(p);
        if (!at_kw(p, kw)) {
                char m[64];
                snprintf(m, sizeof m, "expected \"%s\"", kw);
                return syntax_error(p, m);
        }
        p->pos += strlen(kw);
        return 0;
}

/* ---- expansions ---- */

/* `...`: the text up to the matching unescaped backquote is unescaped and parsed as a command list. */
static int scan_backtick(parser *p, bool in_dq)
{
        strbuf content = {};
        size_t i = p->pos + 1;
        int r;

        for (;;) {
                if (i >= p->len) {
                        sb_done(&content);
                        return syntax_error(p, "unterminated `");
                }
                char c = p->s[i];
                if (c == '\\' && i + 1 < p->len) {
                        char n = p->s[i + 1];
                        if (n == '$' || n == '`' || n == '\\' || (in_dq && n == '"'))
                                r = sb_putc(&content, n);
                        else
                                r = sb_putn(&content, p->s + i, 2);
                        i += 2;
                } else if (c == '`')
                        break;
                else {
                        r = sb_putc(&content, c);
                        i++;
                }
                if (r < 0) {
                        sb_done(&content);
                        return r;
                }
        }
        p->pos = i + 1;
        r = sub_parse(p, content.s ?: "", content.n, false);
        sb_done(&content);
        return r;
}

/* $( ... ), <( ... ), >( ... ): the position is on the character before '('. */
static int scan_cmdsubst(parser *p)
{
        int r;

        p->pos += 2;
        r = enter(p);
        if (r < 0)
                return r;
        r = parse_list(p);
        if (r < 0)
                return r;
        r = skip_blank_nl(p);
        if (r < 0)
                return r;
        if (cur(p) != ')')
                return syntax_error(p, "missing \")\" to close \"$(\"");
        p->pos++;
        p->depth--;
        return 0;
}

/* Where the "(" at OPEN is closed (p->len if it is not), reading as bash's matched-pair reader does:
 * quotes and backslashes hide parentheses. Every "(" met on the way gets its answer recorded, so that
 * nested "((" asked later cost nothing: the whole analysis stays linear however deep "$(( $(( ..." nests. */
static size_t paren_close(parser *p, size_t open)
{
        _cleanup_free_ size_t *stack = NULL;
        size_t top = 0, cap = 0, i;

        if (!p->close) {
                p->close = calloc(p->len + 1, sizeof(uint32_t));
                if (!p->close)
                        return SIZE_MAX;
        }
        if (p->close[open])
                return p->close[open] - 1;
        if (grow((void **) &stack, &cap, top, sizeof(size_t)) < 0)
                return SIZE_MAX;
        stack[top++] = open;
        for (i = open + 1; i < p->len && top > 0;) {
                char c = p->s[i];
                const char *q;

                p->res->steps++;
                if (c == '(' && p->close[i]) {
                        i = p->close[i]; /* one past the known ")" */
                } else if (c == '(') {
                        if (grow((void **) &stack, &cap, top, sizeof(size_t)) < 0)
                                return SIZE_MAX;
                        stack[top++] = i++;
                } else if (c == ')') {
                        p->close[stack[--top]] = (uint32_t) (i + 1);
                        i++;
                } else if (c == '\\')
                        i += 2;
                else if (c == '\'' || c == '`') {
                        q = memchr(p->s + i + 1, c, p->len - i - 1);
                        i = q ? (size_t) (q - p->s) + 1 : p->len;
                } else if (c == '"') {
                        for (i++; i < p->len && p->s[i] != '"'; i++)
                                if (p->s[i] == '\\')
                                        i++;
                        i++;
                } else
                        i++;
        }
        while (top > 0)
                p->close[stack[--top]] = (uint32_t) (p->len + 1);
        return p->close[open] - 1;
}

/* Is "((" at OFF arithmetic? Like bash: yes when the inner "(" is closed by a ")" directly followed by
 * another ")". Returns the position of that first ")" or 0, or SIZE_MAX on ENOMEM. */
static size_t arith_end(parser *p, size_t off)
{
        size_t c = paren_close(p, off + 1);
        if (c == SIZE_MAX)
                return c;
        return c + 1 < p->len && p->s[c + 1] == ')' ? c : 0;
}

/* A quoted part of an arithmetic expression or of a "${...}" in double quotes: bash still expands
 * $(...), `...` and ${...} inside those single quotes. The position is on the "'". */
static int scan_quoted_region(parser *p, bool expands)
{
        const char *q = memchr(p->s + p->pos + 1, '\'', p->len - p->pos - 1);
        size_t from = p->pos + 1;

        if (!q)
                return syntax_error(p, "unterminated '");
        p->pos = (size_t) (q - p->s) + 1;
        if (!expands || (!memchr(p->s + from, '$', p->pos - 1 - from) && !memchr(p->s + from, '`', p->pos - 1 - from)))
                return 0;
        return sub_parse(p, p->s + from, p->pos - 1 - from, true);
}

/* (( ... )) and $(( ... )) once arith_end() said they are arithmetic: the position is on the first '(',
 * END on the first ')' of the closing "))". */
static int scan_arith(parser *p, size_t end)
{
        size_t start = p->pos;
        bool ident = false;
        int r;

        r = enter(p);
        if (r < 0)
                return r;
        p->pos += 2;
        while (p->pos < end) {
                char c = cur(p);

                p->res->steps++;
                if (c == '$') {
                        bool lit = true;
                        if (is_name_start(at(p, 1)))
                                ident = true;
                        r = scan_dollar(p, NULL, &lit, false);
                } else if (c == '`')
                        r = scan_backtick(p, false);
                else if (c == '"') {
                        bool lit = true;
                        r = scan_dquote(p, NULL, &lit);
                } else if (c == '\'') {
                        ident = true; /* the quotes stay in the expression: never a plain number */
                        r = scan_quoted_region(p, true);
                } else if (c == '\\')
                        p->pos += 2;
                else if (is_name_start(c)) {
                        ident = true;
                        while (is_name_char(cur(p)))
                                p->pos++;
                } else if (c >= '0' && c <= '9') {
                        while (is_name_char(cur(p)))
                                p->pos++;
                } else
                        p->pos++;
                if (r < 0)
                        return r;
        }
        if (p->pos != end)
                return syntax_error(p, "cannot find the end of \"((\"");
        p->pos = end + 2;
        p->depth--;
        if (ident) {
                r = sh_result_add_problem(p->res,
                                          "arithmetic at column %zu uses variables: their values are evaluated "
                                          "and can run commands (a[$(cmd)])",
                                          start + 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ${ ... }: the position is on '$'. */
static int scan_param(parser *p, bool in_dq)
{
        size_t start = p->pos;
        bool substr = false, problem = false;
        const char *why = NULL;
        int r;

        r = enter(p);
        if (r < 0)
                return r;
        p->pos += 2;
        if (cur(p) == '!') {
                why = "indirect expansion ${!...}";
                p->pos++;
        } else if (cur(p) == '#' && at(p, 1) != '}')
                p->pos++;
        if (is_name_start(cur(p)))
                while (is_name_char(cur(p)))
                        p->pos++;
        else if (cur(p) >= '0' && cur(p) <= '9')
                while (cur(p) >= '0' && cur(p) <= '9')
                        p->pos++;
        else if (cur(p) && strchr("@*#?$!-", cur(p)))
                p->pos++;
        else if (!why)
                why = "unusual parameter expansion";
        if (cur(p) == '[') {
                size_t k = 1;
                while (at(p, k) >= '0' && at(p, k) <= '9')
                        k++;
                if ((at(p, 1) == '@' || at(p, 1) == '*') && at(p, 2) == ']')
                        p->pos += 3;
                else if (k > 1 && at(p, k) == ']') /* ${a[0]}: a literal index */
                        p->pos += k + 1;
                else if (!why)
                        why = "array subscript in ${...} (evaluated as arithmetic)";
        }
        if (cur(p) == '@' && !why)
                why = "${...@...} transformation";
        if (cur(p) == ':' && !(at(p, 1) && strchr("-=?+", at(p, 1))))
                substr = true;

        for (;;) {
                char c = cur(p);

                if (is_eof(p))
                        return syntax_error(p, "unterminated \"${\"");
                p->res->steps++;
                if (c == '}') { /* bash does not nest a plain "{" here: ${x:-{} ends at the first "}" */
                        p->pos++;
                        break;
                } else if (c == '\\')
                        p->pos += at(p, 1) ? 2 : 1;
                else if (c == '\'') {
                        /* quotes hide "}"; in double quotes and in an offset they do not stop expansions */
                        if (substr)
                                problem = true;
                        r = scan_quoted_region(p, in_dq || substr);
                        if (r < 0)
                                return r;
                } else if (c == '"') {
                        bool lit = true;
                        r = scan_dquote(p, NULL, &lit);
                        if (r < 0)
                                return r;
                } else if (c == '$') {
                        bool lit = true;
                        r = scan_dollar(p, NULL, &lit, in_dq);
                        if (r < 0)
                                return r;
                } else if (c == '`') {
                        r = scan_backtick(p, in_dq);
                        if (r < 0)
                                return r;
                } else {
                        if (substr && is_name_start(c))
                                problem = true;
                        p->pos++;
                }
        }
        p->depth--;
        if (problem && !why)
                why = "substring offset uses variables (evaluated as arithmetic)";
        if (why) {
                r = sh_result_add_problem(p->res, "%s at column %zu cannot be analysed", why, start + 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int put_utf8(strbuf *sb, uint32_t c)
{
        char b[4];
        size_t n;

        if (c < 0x80) {
                b[0] = (char) c;
                n = 1;
        } else if (c < 0x800) {
                b[0] = (char) (0xC0 | (c >> 6));
                b[1] = (char) (0x80 | (c & 0x3F));
                n = 2;
        } else if (c < 0x10000) {
                b[0] = (char) (0xE0 | (c >> 12));
                b[1] = (char) (0x80 | ((c >> 6) & 0x3F));
                b[2] = (char) (0x80 | (c & 0x3F));
                n = 3;
        } else {
                c = MIN(c, (uint32_t) 0x10FFFF);
                b[0] = (char) (0xF0 | (c >> 18));
                b[1] = (char) (0x80 | ((c >> 12) & 0x3F));
                b[2] = (char) (0x80 | ((c >> 6) & 0x3F));
                b[3] = (char) (0x80 | (c & 0x3F));
                n = 4;
        }
        return sb ? sb_putn(sb, b, n) : 0;
}

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* $'...': decodes the ANSI-C escapes; a NUL byte makes the word not literal (bash cuts the string). */
static int scan_ansi_c(parser *p, strbuf *sb, bool *literal)
{
        p->pos += 2;
        for (;;) {
                char c = cur(p);
                uint32_t v;
                int r = 0;

                if (is_eof(p))
                        return syntax_error(p, "unterminated $'");
                if (c == '\'') {
                        p->pos++;
                        return 0;
                }
                if (c != '\\') {
                        if (sb)
                                r = sb_putc(sb, c);
                        p->pos++;
                        if (r < 0)
                                return r;
                        continue;
                }
                char n = at(p, 1);
                p->pos += 2;
                switch (n) {
                case 'n': v = '\n'; break;
                case 't': v = '\t'; break;
                case 'r': v = '\r'; break;
                case 'a': v = 7; break;
                case 'b': v = 8; break;
                case 'e':
                case 'E': v = 27; break;
                case 'f': v = 12; break;
                case 'v': v = 11; break;
                case '\\':
                case '\'':
                case '"':
                case '?': v = (unsigned char) n; break;
                case 'c':
                        v = (unsigned char) cur(p) & 0x1F;
                        if (!is_eof(p))
                                p->pos++;
                        break;
                case 'x':
                case 'u':
                case 'U': {
                        unsigned max = n == 'x' ? 2 : n == 'u' ? 4 : 8, k = 0;
                        v = 0;
                        while (k < max && hexval(cur(p)) >= 0) {
                                v = v * 16 + (uint32_t) hexval(cur(p));
                                p->pos++;
                                k++;
                        }
                        if (k == 0) {
                                if (sb && (r = sb_putc(sb, '\\')) < 0)
                                        return r;
                                v = (unsigned char) n;
                        } else if (n != 'x') {
                                if (v == 0)
                                        *literal = false;
                                r = put_utf8(sb, v);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        break;
                }
                default:
                        if (n >= '0' && n <= '7') {
                                unsigned k = 1;
                                v = (uint32_t) (n - '0');
                                while (k < 3 && cur(p) >= '0' && cur(p) <= '7') {
                                        v = v * 8 + (uint32_t) (cur(p) - '0');
                                        p->pos++;
                                        k++;
                                }
                                v &= 0xFF;
                        } else {
                                if (sb && (r = sb_putc(sb, '\\')) < 0)
                                        return r;
                                if (n == 0) {
                                        p->pos--;
                                        continue;
                                }
                                v = (unsigned char) n;
                        }
                }
                if (v == 0)
                        *literal = false;
                if (sb && (r = sb_putc(sb, (char) v)) < 0)
                        return r;
        }
}

/* '$' and what follows; SB (may be NULL) receives the literal text when it is one. */
static int scan_dollar(parser *p, strbuf *sb, bool *literal, bool in_dq)
{
        char c = at(p, 1);

        if (c == '(') {
                *literal = false;
                if (at(p, 2) == '(') {
                        size_t end = arith_end(p, p->pos + 1);
                        if (end == SIZE_MAX)
                                return -ENOMEM;
                        if (end > 0) {
                                p->pos++;
                                return scan_arith(p, end);
                        }
                }
                return scan_cmdsubst(p);
        }
        if (c == '{') {
                *literal = false;
                return scan_param(p, in_dq);
        }
        if (c == '[') {
                /* $[ expr ]: obsolete arithmetic, same concerns as $(( )) */
                size_t start = p->pos;
                unsigned nest = 0;
                *literal = false;
                p->pos += 2;
                for (;; p->pos++) {
                        if (is_eof(p))
                                return syntax_error(p, "unterminated \"$[\"");
                        if (cur(p) == '[')
                                nest++;
                        else if (cur(p) == ']' && nest-- == 0)
                                break;
                }
                p->pos++;
                return sh_result_add_problem(p->res, "$[...] arithmetic at column %zu cannot be analysed",
                                             start + 1);
        }
        if (c == '\'' && !in_dq)
                return scan_ansi_c(p, sb, literal);
        if (c == '"' && !in_dq) {
                p->pos++;
                return scan_dquote(p, sb, literal);
        }
        if (is_name_start(c)) {
                *literal = false;
                p->pos++;
                while (is_name_char(cur(p)))
                        p->pos++;
                return 0;
        }
        if (c && strchr("0123456789@*#?$!-", c)) {
                *literal = false;
                p->pos += 2;
                return 0;
        }
        p->pos++;
        return sb ? sb_putc(sb, '$') : 0;
}

static int scan_dquote(parser *p, strbuf *sb, bool *literal)
{
        int r = 0;

        p->pos++;
        for (;;) {
                char c = cur(p);

                if (is_eof(p))
                        return syntax_error(p, "unterminated \"");
                if (c == '"') {
                        p->pos++;
                        return 0;
                }
                if (c == '\\') {
                        char n = at(p, 1);
                        if (n == '$' || n == '`' || n == '"' || n == '\\') {
                                if (sb)
                                        r = sb_putc(sb, n);
                                p->pos += 2;
                        } else if (n == '\n')
                                p->pos += 2;
                        else {
                                if (sb)
                                        r = sb_putc(sb, '\\');
                                p->pos++;
                        }
                } else if (c == '$')
                        r = scan_dollar(p, sb, literal, true);
                else if (c == '`') {
                        *literal = false;
                        r = scan_backtick(p, true);
                } else {
                        if (sb)
                                r = sb_putc(sb, c);
                        p->pos++;
                }
                if (r < 0)
                        return r;
        }
}

/* NAME=( words ): the position is on '('. */
static int scan_array(parser *p)
{
        int r;

        r = enter(p);
        if (r < 0)
                return r;
        p->pos++;
        for (;;) {
                r = skip_blank_nl(p);
                if (r < 0)
                        return r;
                if (cur(p) == ')') {
                        p->pos++;
                        p->depth--;
                        return 0;
                }
                if (is_eof(p) || (is_meta(cur(p)) && !((cur(p) == '<' || cur(p) == '>') && at(p, 1) == '(')))
                        return syntax_error(p, "unterminated array assignment");
                size_t wstart = p->pos;
                sh_word w = {};
                r = scan_word(p, &w);
                free(w.value);
                if (r < 0)
                        return r;
                if (p->s[wstart] == '[' && !sh_subscript_literal(p->s + wstart, p->pos - wstart)) {
                        r = sh_result_add_problem(p->res, "array element [...]= at column %zu: the subscript is "
                                                          "evaluated as arithmetic", wstart + 1);
                        if (r < 0)
                                return r;
                }
        }
}

/* Length of "NAME=" / "NAME+=" / "NAME[...]=" at the start of S (0 if it is not an assignment); sets
 * *ret_subscript when the name has a subscript. */
static size_t assignment_prefix(const char *s, size_t n, size_t *ret_namelen, bool *ret_subscript)
{
        size_t i = 0;

        *ret_subscript = false;
        if (n == 0 || !is_name_start(s[0]))
                return 0;
        while (i < n && is_name_char(s[i]))
                i++;
        *ret_namelen = i;
        if (i < n && s[i] == '[') {
                unsigned nest = 0;
                for (; i < n; i++) {
                        if (s[i] == '[')
                                nest++;
                        else if (s[i] == ']' && --nest == 0)
                                break;
                }
                if (i >= n)
                        return 0;
                i++;
                *ret_subscript = true;
        }
        if (i < n && s[i] == '+')
                i++;
        if (i < n && s[i] == '=')
                return i + 1;
        return 0;
}

/* Whether s[0..n) is a NAME (where bash's lexer may be reading an assignment's NAME[subscript]). */
static bool is_name(const char *s, size_t n)
{
        if (n == 0 || !is_name_start(s[0]))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!is_name_char(s[i]))
                        return false;
        return true;
}

static int scan_word(parser *p, sh_word *w)
{
        _cleanup_(sb_done) strbuf sb = {};
        size_t start = p->pos;
        bool literal = true, glob = false, bracket = false, brace = false, brace_list = false;
        bool assignment_ok = TAKE_GENERIC(p->assignment_ok, bool, false);
        unsigned subscript = 0; /* depth of NAME[ ... ] */
        int r = 0;

        r = enter(p);
        if (r < 0)
                return r;
        for (;;) {
                char c = cur(p);

                p->res->steps++;
                if (is_eof(p)) {
                        if (subscript > 0)
                                return syntax_error(p, "unterminated subscript (missing \"]\")");
                        break;
                }
                if ((c == '<' || c == '>') && at(p, 1) == '(') {
                        literal = false;
                        r = scan_cmdsubst(p);
                        if (r < 0)
                                return r;
                        continue;
                }
                /* Where an assignment may stand, bash reads NAME[ ... ] up to the matching "]" as part of
                 * one word, blanks and operators included ("a[1 + 2]=x"; and "t[ -n $(id) ]]", which is
                 * no assignment, is one word too: a command named "t[ -n  ]]"). */
                if (c == '[' && assignment_ok && (subscript > 0 || is_name(p->s + start, p->pos - start)))
                        subscript++;
                else if (c == ']' && subscript > 0)
                        subscript--;
                else if (subscript > 0 && is_meta(c)) {
                        literal = false;
                        r = sb_putc(&sb, c);
                        p->pos++;
                        if (r < 0)
                                return r;
                        continue;
                }
                if (is_meta(c))
                        break;
                switch (c) {
                case '\\':
                        if (at(p, 1) == '\n')
                                p->pos += 2;
                        else if (at(p, 1) == 0) {
                                r = sb_putc(&sb, '\\');
                                p->pos++;
                        } else {
                                r = sb_putc(&sb, at(p, 1));
                                p->pos += 2;
                        }
                        break;
                case '\'': {
                        const char *q = memchr(p->s + p->pos + 1, '\'', p->len - p->pos - 1);
                        if (!q)
                                return syntax_error(p, "unterminated '");
                        r = sb_putn(&sb, p->s + p->pos + 1, (size_t) (q - p->s) - p->pos - 1);
                        p->pos = (size_t) (q - p->s) + 1;
                        break;
                }
                case '"':
                        r = scan_dquote(p, &sb, &literal);
                        break;
                case '$':
                        r = scan_dollar(p, &sb, &literal, false);
                        break;
                case '`':
                        literal = false;
                        r = scan_backtick(p, false);
                        break;
                case '=': {
                        size_t nl;
                        bool sub;
                        r = sb_putc(&sb, c);
                        p->pos++;
                        if (r >= 0 && cur(p) == '(' && assignment_prefix(p->s + start, p->pos - start, &nl, &sub) > 0) {
                                literal = false;
                                r = scan_array(p);
                        }
                        break;
                }
                default:
                        if (c == '*' || c == '?')
                                glob = true;
                        else if (c == '[')
                                bracket = true;
                        else if (c == ']' && bracket)
                                glob = true;
                        else if (c == '{')
                                brace = true;
                        else if (brace && (c == ',' || (c == '.' && at(p, 1) == '.')))
                                brace_list = true;
                        else if (c == '}' && brace_list)
                                glob = true;
                        r = sb_putc(&sb, c);
                        p->pos++;
                }
                if (r < 0)
                        return r;
        }
        p->depth--;
        w->literal = literal && !glob;
        if (w->literal)
                w->value = sb_steal(&sb);
        else
                w->value = strndup(p->s + start, p->pos - start);
        return w->value ? 0 : -ENOMEM;
}

/* ---- redirections ---- */

static const char *const redir_ops[] = {
        "<<<", "<<-", "<<", "<>", "<&", "<", ">>", ">|", ">&", ">", "&>>", "&>",
};

/* Returns the redirection operator at the current position (after an optional fd number), or NULL. */
static const char *at_redirect(const parser *p, size_t *ret_skip)
{
        size_t i = p->pos;

        while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
                i++;
        if (i == p->pos && i < p->len && p->s[i] == '{') { /* {NAME}>file binds NAME to the new fd */
                size_t k = i + 1;
                while (k < p->len && (is_name_char(p->s[k]) || p->s[k] == '[' || p->s[k] == ']'))
                        k++;
                if (k > i + 1 && k < p->len && p->s[k] == '}' && k + 1 < p->len &&
                    (p->s[k + 1] == '<' || p->s[k + 1] == '>'))
                        i = k + 1;
        }
        if (i >= p->len)
                return NULL;
        if ((p->s[i] == '<' || p->s[i] == '>') && i + 1 < p->len && p->s[i + 1] == '(')
                return NULL;
        if (p->s[i] == '&' && i != p->pos)
                return NULL;
        for (size_t k = 0; k < ELEMENTSOF(redir_ops); k++) {
                size_t n = strlen(redir_ops[k]);
                if (i + n <= p->len && memcmp(p->s + i, redir_ops[k], n) == 0) {
                        *ret_skip = i - p->pos + n;
                        return redir_ops[k];
                }
        }
        return NULL;
}

static int parse_redirect(parser *p, const char *op, size_t skip)
{
        sh_word w = {};
        size_t start;
        int r;

        if (cur(p) == '{') {
                size_t nl = strcspn(p->s + p->pos + 1, "}");
                const char *why = sh_binding_problem(p->s + p->pos + 1, nl);
                if (why && (r = sh_result_add_problem(p->res, "{%.*s}%s binds %.*s: %s", (int) nl, p->s + p->pos + 1,
                                                      op, (int) nl, p->s + p->pos + 1, why)) < 0)
                        return r;
        }
        p->pos += skip;
        skip_blank(p);
        if (is_eof(p) || (is_meta(cur(p)) && !((cur(p) == '<' || cur(p) == '>') && at(p, 1) == '('))) {
                char m[64];
                snprintf(m, sizeof m, "expected a word after \"%s\"", op);
                return syntax_error(p, m);
        }
        start = p->pos;
        r = scan_word(p, &w);
        if (r < 0)
                return r;
        _cleanup_free_ char *value = w.value;

        if (streq(op, "<<") || streq(op, "<<-")) {
                /* bash compares body lines with the delimiter word after quote removal ($'..' decoded,
                 * \-newline removed); any quoting makes the body data */
                bool quoted = false;
                char *delim;
                for (size_t i = start; i < p->pos; i++)
                        if (p->s[i] == '\'' || p->s[i] == '"' || p->s[i] == '\\')
                                quoted = true;
                if (w.literal)
                        delim = TAKE_PTR(value);
                else {
                        strbuf d = {};
                        r = sh_result_add_problem(p->res, "here-document delimiter at column %zu contains an "
                                                          "expansion", start + 1);
                        for (size_t i = start; r >= 0 && i < p->pos; i++)
                                if (!strchr("'\"\\", p->s[i]))
                                        r = sb_putc(&d, p->s[i]);
                        if (r < 0) {
                                sb_done(&d);
                                return r;
                        }
                        delim = sb_steal(&d);
                        if (!delim)
                                return -ENOMEM;
                }
                if (p->n_hd >= HEREDOC_MAX) {
                        free(delim);
                        return syntax_error(p, "too many here-documents on one line");
                }
                p->hd[p->n_hd++] = (heredoc){ .delim = delim, .quoted = quoted, .strip_tabs = op[2] == '-' };
                return add_redir(p->res, op, delim, true, false);
        }
        if (streq(op, "<&") || streq(op, ">&")) {
                /* duplicating or closing a file descriptor names no file */
                size_t k = 0;
                if (w.literal) {
                        while (value[k] >= '0' && value[k] <= '9')
                                k++;
                        if (value[k] == '-')
                                k++;
                        if (k > 0 && value[k] == 0)
                                return 0;
                }
                if (op[0] == '<')
                        return add_redir(p->res, op, value, w.literal, false);
                return add_redir(p->res, op, value, w.literal, true);
        }
        bool output = op[0] == '>' || op[0] == '&' || streq(op, "<>");
        return add_redir(p->res, op, value, w.literal, output);
}

static int parse_redirects(parser *p)
{
        for (;;) {
                size_t skip;
                const char *op;
                int r;

                skip_blank(p);
                op = at_redirect(p, &skip);
                if (!op)
                        return 0;
                r = parse_redirect(p, op, skip);
                if (r < 0)
                        return r;
        }
}

/* ---- commands ---- */

/* Hands the command over (to res->on_cmd or res->cmds); takes WORDS and REASON in any case. */
static int emit(parser *p, sh_word *words, size_t n, char *reason)
{
        sh_result *res = p->res;

        if (res->on_cmd) {
                int r = res->on_cmd(res->userdata, &(const sh_cmd){ .words = words, .n_words = n, .reason = reason });
                sh_words_free(words, n);
                free(reason);
                return r;
        }
        if (grow((void **) &res->cmds, &res->cap_cmds, res->n_cmds, sizeof(sh_cmd)) < 0) {
                sh_words_free(words, n);
                free(reason);
                return -ENOMEM;
        }
        res->cmds[res->n_cmds++] = (sh_cmd){ .words = words, .n_words = n, .reason = reason };
        return 0;
}

static int parse_function_body(parser *p, const char *name)
{
        int r;

        r = sh_result_add_problem(p->res, "defines shell function \"%s\": calls to it run its body", name);
        if (r < 0)
                return r;
        r = skip_blank_nl(p);
        if (r < 0)
                return r;
        r = parse_command(p);
        return r;
}

static int parse_simple(parser *p)
{
        sh_word *words = NULL;
        size_t n = 0, cap = 0;
        _cleanup_free_ char *reason = NULL;
        bool prefix = true;
        int r = 0;

        for (;;) {
                const char *op;
                size_t skip;

                skip_blank(p);
                if (is_eof(p) || cur(p) == '\n')
                        break;
                op = at_redirect(p, &skip);
                if (op) {
                        r = parse_redirect(p, op, skip);
                        if (r < 0)
                                break;
                        continue;
                }
                if (is_meta(cur(p)) && !((cur(p) == '<' || cur(p) == '>') && at(p, 1) == '(')) {
                        if (cur(p) == '(' && n == 1 && words[0].literal) {
                                /* NAME ( ) compound-command: a function definition */
                                p->pos++;
                                skip_blank(p);
                                if (cur(p) != ')') {
                                        r = syntax_error(p, "expected \")\" in function definition");
                                        break;
                                }
                                p->pos++;
                                r = parse_function_body(p, words[0].value);
                                sh_words_free(words, n);
                                return r;
                        }
                        if (cur(p) == '(') {
                                r = syntax_error(p, "unexpected \"(\"");
                                break;
                        }
                        break;
                }

                size_t start = p->pos, namelen = 0;
                bool subscript;
                sh_word w = {};
                p->assignment_ok = prefix;
                r = scan_word(p, &w);
                if (r < 0)
                        break;
                if (prefix && assignment_prefix(p->s + start, p->pos - start, &namelen, &subscript) > 0) {
                        if (subscript && !sh_subscript_literal(p->s + start + namelen, p->pos - start - namelen))
                                r = sh_result_add_problem(p->res,
                                                          "assignment to an array element at column %zu "
                                                          "(the subscript is evaluated as arithmetic)",
                                                          start + 1);
                        else if (sh_dangerous_variable(p->s + start, namelen) && !reason) {
                                if (asprintf(&reason, "sets %.*s, which changes what programs run",
                                             (int) namelen, p->s + start) < 0) {
                                        reason = NULL;
                                        r = -ENOMEM;
                                }
                        }
                        free(w.value);
                        if (r < 0)
                                break;
                        continue;
                }
                prefix = false;
                if (grow((void **) &words, &cap, n + 1, sizeof(sh_word)) < 0) {
                        free(w.value);
                        r = -ENOMEM;
                        break;
                }
                words[n++] = w;
        }
        if (r < 0) {
                sh_words_free(words, n);
                return r;
        }
        if (n == 0) {
                sh_words_free(words, n);
                if (reason)
                        return sh_result_add_problem(p->res, "assignment: %s", reason);
                return 0;
        }
        return emit(p, words, n, TAKE_PTR(reason)); /* takes the words */
}

/* A literal integer as bash's arithmetic reads it without evaluating anything: [+-]digits, 0xHEX, BASE#DIGITS. */
static bool is_number(const char *s)
{
        const char *hash;

        s += *s == '-' || *s == '+';
        if ((hash = strchr(s, '#'))) {
                if (hash == s || strspn(s, "0123456789") != (size_t) (hash - s) || !hash[1])
                        return false;
                for (s = hash + 1; *s; s++)
                        if (!is_name_char(*s) && *s != '@')
                                return false;
                return true;
        }
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
                return s[2] && strspn(s + 2, "0123456789abcdefABCDEF") == strlen(s + 2);
        return *s && strspn(s, "0123456789") == strlen(s);
}

/* "-v NAME": testing a variable evaluates its subscript */
static bool sh_name_test_safe(const sh_word *w)
{
        const char *b = strchr(w->value, '[');
        return w->literal && (!b || sh_subscript_literal(b, strlen(b)));
}

/* [[ ... ]]: operators inside are words; arithmetic comparisons of expansions evaluate them. */
static int parse_dbracket(parser *p)
{
        static const char *const arith_ops[] = { "-eq", "-ne", "-lt", "-le", "-gt", "-ge" };
        bool prev_number = false, pending_arith = false, prev_v = false;
        int r;

        p->pos += 2;
        for (;;) {
                r = skip_blank_nl(p);
                if (r < 0)
                        return r;
                if (is_eof(p))
                        return syntax_error(p, "missing \"]]\"");
                if (at_kw(p, "]]")) {
                        p->pos += 2;
                        break;
                }
                char c = cur(p);
                if (c == '&' && at(p, 1) == '&') {
                        p->pos += 2;
                        continue;
                }
                if (c == '|' || c == '(' || c == ')' || c == '<' || c == '>') {
                        if ((c == '<' || c == '>') && at(p, 1) == '(') {
                                r = scan_cmdsubst(p);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        p->pos += (c == '|' && at(p, 1) == '|') ? 2 : 1;
                        continue;
                }
                if (c == ';' || c == '&')
                        return syntax_error(p, "unexpected operator inside \"[[\"");
                sh_word w = {};
                r = scan_word(p, &w);
                if (r < 0)
                        return r;
                bool is_arith = false, number = w.literal && is_number(w.value);
                for (size_t k = 0; k < ELEMENTSOF(arith_ops); k++)
                        if (w.literal && streq(w.value, arith_ops[k]))
                                is_arith = true;
                /* both operands of -eq ... are arithmetic expressions: a name is evaluated, its value too */
                if ((is_arith && !prev_number) || (pending_arith && !number) ||
                    (prev_v && !sh_name_test_safe(&w)))
                        r = sh_result_add_problem(p->res,
                                                  "\"[[\" evaluates a word as arithmetic or as an array "
                                                  "subscript, which can run commands");
                pending_arith = is_arith;
                prev_number = number;
                prev_v = w.literal && streq(w.value, "-v");
                free(w.value);
                if (r < 0)
                        return r;
        }
        return parse_redirects(p);
}

static int parse_for(parser *p)
{
        int r;

        p->pos += 3 + (p->s[p->pos] == 's' ? 3 : 0); /* "for" or "select" */
        skip_blank(p);
        if (cur(p) == '(' && at(p, 1) == '(') {
                size_t end = arith_end(p, p->pos);
                if (end == SIZE_MAX)
                        return -ENOMEM;
                if (end == 0)
                        return syntax_error(p, "bad arithmetic for loop");
                r = scan_arith(p, end);
                if (r < 0)
                        return r;
        } else {
                sh_word w = {};
                r = scan_word(p, &w);
                if (r < 0)
                        return r;
                bool ok = w.literal && w.value[0];
                const char *why = ok ? sh_binding_problem(w.value, strlen(w.value)) : NULL;
                if (why)
                        r = sh_result_add_problem(p->res, "the loop binds %s: %s", w.value, why);
                free(w.value);
                if (r < 0)
                        return r;
                if (!ok)
                        return syntax_error(p, "expected a variable name after \"for\"");
                r = skip_blank_nl(p);
                if (r < 0)
                        return r;
                if (at_kw(p, "in")) {
                        p->pos += 2;
                        for (;;) {
                                skip_blank(p);
                                if (is_eof(p) || cur(p) == ';' || cur(p) == '\n')
                                        break;
                                if (is_meta(cur(p)) && !((cur(p) == '<' || cur(p) == '>') && at(p, 1) == '('))
                                        return syntax_error(p, "unexpected operator in \"for\" word list");
                                sh_word x = {};
                                r = scan_word(p, &x);
                                free(x.value);
                                if (r < 0)
                                        return r;
                        }
                }
        }
        skip_blank(p);
        if (cur(p) == ';')
                p->pos++;
        r = skip_blank_nl(p);
        if (r < 0)
                return r;
        if (at_kw(p, "{")) {
                p->pos++;
                r = parse_list(p);
                if (r < 0)
                        return r;
                r = expect_kw(p, "}");
        } else {
                r = expect_kw(p, "do");
                if (r < 0)
                        return r;
                r = parse_list(p);
                if (r < 0)
                        return r;
                r = expect_kw(p, "done");
        }
        if (r < 0)
                return r;
        return parse_redirects(p);
}

static int parse_case(parser *p)
{
        sh_word w = {};
        int r;

        p->pos += 4;
        skip_blank(p);
        if (is_eof(p) || is_meta(cur(p)))
                return syntax_error(p, "expected a word after \"case\"");
        r = scan_word(p, &w);
        free(w.value);
        if (r < 0)
                return r;
        r = skip_blank_nl(p);
        if (r < 0)
                return r;
        r = expect_kw(p, "in");
        if (r < 0)
                return r;
        for (;;) {
                r = skip_blank_nl(p);
                if (r < 0)
                        return r;
                if (at_kw(p, "esac")) {
                        p->pos += 4;
                        break;
                }
                if (is_eof(p))
                        return syntax_error(p, "missing \"esac\"");
                if (cur(p) == '(')
                        p->pos++;
                for (;;) {
                        skip_blank(p);
                        if (is_eof(p) || is_meta(cur(p)))
                                return syntax_error(p, "expected a pattern in \"case\"");
                        sh_word pat = {};
                        r = scan_word(p, &pat);
                        free(pat.value);
                        if (r < 0)
                                return r;
                        skip_blank(p);
                        if (cur(p) == '|') {
                                p->pos++;
                                continue;
                        }
                        if (cur(p) == ')') {
                                p->pos++;
                                break;
                        }
                        return syntax_error(p, "expected \")\" after a \"case\" pattern");
                }
                r = parse_list(p);
                if (r < 0)
                        return r;
                skip_blank(p);
                if (cur(p) == ';' && at(p, 1) == ';')
                        p->pos += at(p, 2) == '&' ? 3 : 2;
                else if (cur(p) == ';' && at(p, 1) == '&')
                        p->pos += 2;
                else if (!at_kw(p, "esac"))
                        return syntax_error(p, "expected \";;\" or \"esac\"");
        }
        return parse_redirects(p);
}

static int parse_command(parser *p)
{
        int r;

        skip_blank(p);
        r = enter(p);
        if (r < 0)
                return r;

        if (cur(p) == '(') {
                if (at(p, 1) == '(') {
                        size_t end = arith_end(p, p->pos);
                        if (end == SIZE_MAX)
                                return -ENOMEM;
                        if (end > 0) {
                                r = scan_arith(p, end);
                                if (r < 0)
                                        return r;
                                p->depth--;
                                return parse_redirects(p);
                        }
                }
                p->pos++;
                r = parse_list(p);
                if (r < 0)
                        return r;
                r = skip_blank_nl(p);
                if (r < 0)
                        return r;
                if (cur(p) != ')')
                        return syntax_error(p, "missing \")\"");
                p->pos++;
        } else if (at_kw(p, "{")) {
                p->pos++;
                r = parse_list(p);
                if (r < 0)
                        return r;
                r = expect_kw(p, "}");
        } else if (at_kw(p, "if")) {
                p->pos += 2;
                r = parse_list(p);
                if (r >= 0)
                        r = expect_kw(p, "then");
                if (r >= 0)
                        r = parse_list(p);
                while (r >= 0) {
                        skip_blank(p);
                        if (!at_kw(p, "elif"))
                                break;
                        p->pos += 4;
                        r = parse_list(p);
                        if (r >= 0)
                                r = expect_kw(p, "then");
                        if (r >= 0)
                                r = parse_list(p);
                }
                if (r >= 0 && at_kw(p, "else")) {
                        p->pos += 4;
                        r = parse_list(p);
                }
                if (r >= 0)
                        r = expect_kw(p, "fi");
        } else if (at_kw(p, "while") || at_kw(p, "until")) {
                p->pos += 5;
                r = parse_list(p);
                if (r >= 0)
                        r = expect_kw(p, "do");
                if (r >= 0)
                        r = parse_list(p);
                if (r >= 0)
                        r = expect_kw(p, "done");
        } else if (at_kw(p, "for") || at_kw(p, "select")) {
                r = parse_for(p);
                if (r >= 0)
                        p->depth--;
                return r;
        } else if (at_kw(p, "case")) {
                r = parse_case(p);
                if (r >= 0)
                        p->depth--;
                return r;
        } else if (at_kw(p, "[[")) {
                r = parse_dbracket(p);
                if (r >= 0)
                        p->depth--;
                return r;
        } else if (at_kw(p, "function")) {
                sh_word w = {};
                p->pos += 8;
                skip_blank(p);
                if (is_eof(p) || is_meta(cur(p)))
                        return syntax_error(p, "expected a name after \"function\"");
                r = scan_word(p, &w);
                if (r < 0)
                        return r;
                _cleanup_free_ char *name = w.value;
                skip_blank(p);
                if (cur(p) == '(') {
                        p->pos++;
                        skip_blank(p);
                        if (cur(p) != ')')
                                return syntax_error(p, "expected \")\" in function definition");
                        p->pos++;
                }
                r = parse_function_body(p, name);
                if (r >= 0)
                        p->depth--;
                return r;
        } else if (at_kw(p, "coproc")) {
                p->pos += 6;
                skip_blank(p);
                size_t k = p->pos, e;
                while (k < p->len && is_name_char(p->s[k]))
                        k++;
                e = k;
                while (k < p->len && (p->s[k] == ' ' || p->s[k] == '\t'))
                        k++;
                if (e > p->pos && k > e && k < p->len && strchr("{(", p->s[k])) {
                        /* coproc NAME { ...; }: binds NAME and NAME_PID */
                        const char *why = sh_binding_problem(p->s + p->pos, e - p->pos);
                        if (why && (r = sh_result_add_problem(p->res, "coproc binds %.*s: %s", (int) (e - p->pos),
                                                              p->s + p->pos, why)) < 0)
                                return r;
                        p->pos = k;
                }
                r = parse_command(p);
                if (r >= 0)
                        p->depth--;
                return r;
        } else if (at_kw(p, "then") || at_kw(p, "else") || at_kw(p, "elif") || at_kw(p, "fi") ||
                   at_kw(p, "do") || at_kw(p, "done") || at_kw(p, "esac") || at_kw(p, "}") ||
                   at_kw(p, "in") || at_kw(p, "]]")) {
                return syntax_error(p, "unexpected reserved word");
        } else if (is_eof(p) || (is_meta(cur(p)) && !at_redirect(p, &(size_t){ 0 }) &&
                                 !((cur(p) == '<' || cur(p) == '>') && at(p, 1) == '('))) {
                return syntax_error(p, "expected a command");
        } else {
                r = parse_simple(p);
                if (r >= 0)
                        p->depth--;
                return r;
        }
        if (r < 0)
                return r;
        p->depth--;
        return parse_redirects(p);
}

static int parse_pipeline(parser *p)
{
        int r;

        bool prefixed = false;

        skip_blank(p);
        if (at_kw(p, "time")) {
                p->pos += 4;
                for (;;) { /* bash takes "time -p", "time --", "time -p -- cmd" */
                        skip_blank(p);
                        if (at_kw(p, "-p") || at_kw(p, "--"))
                                p->pos += 2;
                        else
                                break;
                }
                prefixed = true;
        }
        while (at_kw(p, "!")) {
                p->pos++;
                skip_blank(p);
                prefixed = true;
        }
        if (prefixed && (is_eof(p) || cur(p) == '\n' || cur(p) == ';' || (cur(p) == '&' && at(p, 1) != '>') ||
                         cur(p) == ')'))
                return 0; /* "time" or "!" alone */
        for (;;) {
                r = parse_command(p);
                if (r < 0)
                        return r;
                skip_blank(p);
                if (cur(p) == '|' && at(p, 1) != '|') {
                        p->pos += at(p, 1) == '&' ? 2 : 1;
                        r = skip_blank_nl(p);
                        if (r < 0)
                                return r;
                        continue;
                }
                return 0;
        }
}

static int parse_and_or(parser *p)
{
        int r;

        for (;;) {
                r = parse_pipeline(p);
                if (r < 0)
                        return r;
                skip_blank(p);
                if ((cur(p) == '&' && at(p, 1) == '&') || (cur(p) == '|' && at(p, 1) == '|')) {
                        p->pos += 2;
                        r = skip_blank_nl(p);
                        if (r < 0)
                                return r;
                        continue;
                }
                return 0;
        }
}

static bool at_list_end(parser *p)
{
        skip_blank(p);
        if (is_eof(p) || cur(p) == ')')
                return true;
        if (cur(p) == ';' && (at(p, 1) == ';' || at(p, 1) == '&'))
                return true;
        static const char *const stops[] = { "then", "else", "elif", "fi", "do", "done", "esac", "}" };
        for (size_t i = 0; i < ELEMENTSOF(stops); i++)
                if (at_kw(p, stops[i]))
                        return true;
        return false;
}

static int parse_list(parser *p)
{
        int r;

        r = enter(p);
        if (r < 0)
                return r;
        for (;;) {
                r = skip_blank_nl(p);
                if (r < 0)
                        return r;
                if (at_list_end(p))
                        break;
                r = parse_and_or(p);
                if (r < 0)
                        return r;
                skip_blank(p);
                if (cur(p) == ';' && at(p, 1) != ';' && at(p, 1) != '&') {
                        p->pos++;
                        continue;
                }
                if (cur(p) == '&' && at(p, 1) != '&' && at(p, 1) != '>') {
                        p->pos++;
                        continue;
                }
                if (cur(p) == '\n') {
                        r = consume_newline(p);
                        if (r < 0)
                                return r;
                        continue;
                }
                break;
        }
        p->depth--;
        return 0;
}

/* Body of an unquoted here-document: only expansions matter. */
static int scan_heredoc_body(parser *p)
{
        while (!is_eof(p)) {
                char c = cur(p);
                int r = 0;

                if (c == '\\')
                        p->pos += at(p, 1) ? 2 : 1;
                else if (c == '$') {
                        bool lit = true;
                        r = scan_dollar(p, NULL, &lit, true);
                } else if (c == '`')
                        r = scan_backtick(p, true);
                else
                        p->pos++;
                if (r < 0)
                        return r;
        }
        return 0;
}

static void parser_done(parser *p)
{
        free(p->close);
        p->close = NULL;
        for (size_t i = 0; i < p->n_hd; i++)
                free(p->hd[i].delim);
        p->n_hd = 0;
}

static int run(const char *text, size_t len, unsigned depth, sh_result *res, bool heredoc_body)
{
        parser p = { .s = text, .len = len, .depth = depth, .res = res };
        int r;

        if (depth > SH_DEPTH_MAX)
                return syntax_error(&p, "nested too deeply");
        if (heredoc_body)
                r = scan_heredoc_body(&p);
        else {
                r = parse_list(&p);
                if (r >= 0) {
                        skip_blank(&p);
                        if (!is_eof(&p))
                                r = syntax_error(&p, cur(&p) == ')' ? "unexpected \")\""
                                                                    : "unexpected text");
                }
                /* here-documents announced on the last line without a newline have empty bodies */
        }
        parser_done(&p);
        return r;
}

static int sub_parse(parser *p, const char *text, size_t len, bool heredoc_body)
{
        return run(text, len, p->depth + 1, p->res, heredoc_body);
}

int sh_parse(const char *text, size_t len, unsigned depth, sh_result *res)
{
        if (memchr(text, 0, len)) {
                int r = sh_result_add_problem(res, "the command contains a NUL byte");
                return r < 0 ? r : -EINVAL;
        }
        return run(text, len, depth, res, false);
}
