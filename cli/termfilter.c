/* SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <string.h>

#include "termfilter.h"

enum {
        GROUND,
        ESCAPE,     /* after ESC */
        ESC_INTER,  /* ESC and intermediate bytes (0x20-0x2f), waiting for the final byte */
        CSI,        /* collecting a control sequence's bytes */
        CSI_IGNORE, /* a control sequence too long to check: dropped up to its final byte */
        STRING,     /* OSC, DCS, APC, PM, SOS: dropped up to ST, BEL, CAN or SUB */
        STRING_ESC, /* ESC inside a string: '\' ends it (ST), anything else starts a new escape */
};

#define ESC 0x1b
#define CAN 0x18
#define SUB 0x1a
#define BEL 0x07

void termfilter_init(termfilter *f)
{
        memset(f, 0, sizeof(*f));
}

static bool in_list(unsigned v, const unsigned *list, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (list[i] == v)
                        return true;
        return false;
}

/* Every ';'-separated parameter of p[0..n) is in the list (an empty parameter counts as 0). */
static bool params_in(const char *p, size_t n, const unsigned *list, size_t nlist)
{
        unsigned v = 0;

        for (size_t i = 0; i <= n; i++) {
                if (i == n || p[i] == ';') {
                        if (!in_list(v, list, nlist))
                                return false;
                        v = 0;
                } else if (p[i] >= '0' && p[i] <= '9') {
                        if (v > 100000)
                                return false;
                        v = v * 10 + (unsigned) (p[i] - '0');
                } else
                        return false;
        }
        return true;
}

/* The allow-list of control sequences: f->seq holds "PARAMS INTERMEDIATES FINAL". */
static bool csi_allowed(const termfilter *f)
{
        /* Private modes (CSI ? Pm h/l) a full-screen program sets: cursor keys (1), autowrap (7), cursor blink
         * (12), cursor visibility (25), alternate screen (47, 1047, 1048, 1049), mouse reporting (1000, 1002,
         * 1003, 1006), focus events (1004), bracketed paste (2004), synchronized output (2026). Not the
         * others (132 columns, reverse video, ...): none of them is needed and some have odd effects. */
        static const unsigned private_modes[] = { 1, 7, 12, 25, 47, 1047, 1048, 1049, 1000, 1002, 1003, 1006, 1004,
                                                 2004, 2026 };
        static const unsigned ansi_modes[] = { 4 }; /* insert mode (IRM), which tmux uses */
        const char *s = f->seq;
        size_t n = f->len;
        char final = s[n - 1], marker = 0;
        size_t inter = 0;

        if (n > 0 && (s[0] == '?' || s[0] == '>' || s[0] == '<' || s[0] == '=')) {
                marker = s[0];
                s++;
                n--;
        }
        while (inter + 1 < n && s[n - 2 - inter] >= 0x20 && s[n - 2 - inter] <= 0x2f)
                inter++;
        size_t np = n - 1 - inter; /* parameter bytes */
        for (size_t i = 0; i < np; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || s[i] == ';' || s[i] == ':'))
                        return false; /* a second private marker or other oddity */

        if (marker == '?')
                return inter == 0 && (final == 'h' || final == 'l') &&
                       params_in(s, np, private_modes, sizeof(private_modes) / sizeof(private_modes[0]));
        if (marker == '>')
                /* modifyOtherKeys (CSI > 4 ; Ps m): what the keyboard sends, as tmux asks for extended keys. */
                return inter == 0 && final == 'm';
        if (marker)
                return false;
        if (inter == 1 && s[np] == ' ')
                return final == 'q'; /* cursor style (DECSCUSR) */
        if (inter > 0)
                return false;
        switch (final) {
        case 'm':                                                 /* SGR: colours and attributes */
        case 'A': case 'B': case 'C': case 'D': case 'E': case 'F': /* cursor up, down, forward, back, lines */
        case 'G': case 'H': case 'f': case 'd': case 'e': case '`': case 'a': /* absolute and relative moves */
        case 'J': case 'K': case 'X':                             /* erase in display, line, characters */
        case 'L': case 'M': case 'P': case '@':                   /* insert/delete lines and characters */
        case 'S': case 'T': case 'r':                             /* scroll up, down, scroll region */
        case 'b':                                                 /* repeat the last character */
        case 'I': case 'Z': case 'g':                             /* tabs forward, back, clear */
        case 's': case 'u':                                       /* save/restore the cursor */
                return true;
        case 'h':
        case 'l':
                return params_in(s, np, ansi_modes, 1);
        default:
                /* Queries whose reports would be typed into the sandbox (DSR 'n', DA 'c', window ops 't',
                 * DECRQM, ...) and everything else. */
                return false;
        }
}

static size_t put(char *out, const void *p, size_t n)
{
        memcpy(out, p, n);
        return n;
}

static size_t put_replacement(char *out)
{
        return put(out, "\xef\xbf\xbd", 3);
}

/* One code point (or a raw byte 0x80-0x9f, the 8-bit C1 form) in the ground state or as a sequence's byte. */
static size_t feed_cp(termfilter *f, uint32_t c, const unsigned char *raw, size_t rawn, char *out);

static size_t begin_escape(termfilter *f)
{
        f->state = ESCAPE;
        f->len = 0;
        return 0;
}

/* C1 controls (U+0080-U+009F, or raw 0x80-0x9f): the string introducers start a dropped string, CSI a
 * control sequence, the rest are dropped. */
static size_t c1(termfilter *f, uint32_t c)
{
        switch (c) {
        case 0x90: case 0x98: case 0x9d: case 0x9e: case 0x9f: /* DCS, SOS, OSC, PM, APC */
                f->state = STRING;
                return 0;
        case 0x9b:
                f->state = CSI;
                f->len = 0;
                return 0;
        default:
                f->state = GROUND;
                return 0;
        }
}

static size_t feed_cp(termfilter *f, uint32_t c, const unsigned char *raw, size_t rawn, char *out)
{
        size_t o = 0;

        /* Anywhere: CAN and SUB cancel a sequence; C1 controls act as in the ground state. */
        if (c == CAN || c == SUB) {
                f->state = GROUND;
                return 0;
        }
        if (c >= 0x80 && c <= 0x9f) {
                if (f->state == STRING && c == 0x9c) { /* ST */
                        f->state = GROUND;
                        return 0;
                }
                if (f->state == STRING)
                        return 0;
                return c1(f, c);
        }
        switch (f->state) {
        case GROUND:
                if (c == ESC)
                        return begin_escape(f);
                if (c < 0x20)
                        /* BEL, BS, HT, LF, VT, FF, CR; not SO/SI (charset shifts) or the rest. */
                        return (c >= 0x07 && c <= 0x0d) ? put(out, raw, rawn) : 0;
                if (c == 0x7f)
                        return 0;
                return put(out, raw, rawn);
        case ESCAPE:
                f->state = GROUND;
                switch (c) {
                case '[':
                        f->state = CSI;
                        f->len = 0;
                        return 0;
                case ']': case 'P': case 'X': case '^': case '_': /* OSC, DCS, SOS, PM, APC */
                        f->state = STRING;
                        return 0;
                case ESC:
                        return begin_escape(f);
                case '7': case '8':           /* save/restore cursor */
                case 'D': case 'E': case 'M': /* index, next line, reverse index */
                case '=': case '>':           /* keypad modes */
                        o += put(out + o, "\x1b", 1);
                        o += put(out + o, raw, rawn);
                        return o;
                default:
                        if (c >= 0x20 && c <= 0x2f) {
                                f->state = ESC_INTER;
                                f->seq[0] = (char) c;
                                f->len = 1;
                        }
                        return 0; /* RIS, charset and mode switches (ESC % G), DECALN, ...: dropped */
                }
        case ESC_INTER:
                if (c == ESC)
                        return begin_escape(f);
                if (c >= 0x20 && c <= 0x2f) {
                        if (f->len < TERMFILTER_SEQ_MAX)
                                f->seq[f->len++] = (char) c;
                        return 0;
                }
                f->state = GROUND;
                /* Only the G0/G1 character sets ASCII and line drawing (tmux draws borders with them). */
                if (f->len == 1 && (f->seq[0] == '(' || f->seq[0] == ')') && (c == 'B' || c == '0')) {
                        char s[3] = { ESC, f->seq[0], (char) c };
                        return put(out, s, 3);
                }
                return 0;
        case CSI:
        case CSI_IGNORE:
                if (c == ESC)
                        return begin_escape(f);
                if (c < 0x20)
                        return 0; /* C0 controls inside a sequence: not executed, dropped */
                if (c >= 0x20 && c <= 0x3f) {
                        if (f->len < TERMFILTER_SEQ_MAX - 1)
                                f->seq[f->len++] = (char) c;
                        else
                                f->state = CSI_IGNORE;
                        return 0;
                }
                if (c >= 0x40 && c <= 0x7e && f->state == CSI) {
                        f->seq[f->len++] = (char) c;
                        f->state = GROUND;
                        if (!csi_allowed(f))
                                return 0;
                        o += put(out + o, "\x1b[", 2);
                        o += put(out + o, f->seq, f->len);
                        return o;
                }
                f->state = GROUND; /* the end of an ignored sequence, or a byte no sequence has: dropped */
                return 0;
        case STRING:
                if (c == ESC)
                        f->state = STRING_ESC;
                else if (c == BEL)
                        f->state = GROUND;
                return 0;
        case STRING_ESC:
                if (c == '\\') {
                        f->state = GROUND;
                        return 0;
                }
                f->state = ESCAPE;
                return feed_cp(f, c, raw, rawn, out);
        }
        return 0;
}

/* A code point being decoded ended early: the bytes so far are one U+FFFD (in the ground state). */
static size_t utf8_abort(termfilter *f, char *out)
{
        f->need = 0;
        return f->state == GROUND ? put_replacement(out) : 0;
}

size_t termfilter_feed(termfilter *f, const void *in, size_t n, char *out)
{
        const unsigned char *p = in;
        size_t o = 0;

        for (size_t i = 0; i < n; i++) {
                unsigned char b = p[i];

                if (f->need > 0) {
                        if ((b & 0xc0) == 0x80) {
                                f->utf8[++f->have] = b;
                                f->cp = (f->cp << 6) | (b & 0x3f);
                                if (--f->need > 0)
                                        continue;
                                uint32_t c = f->cp;
                                size_t len = f->have + 1;
                                /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
                                bool valid = c <= 0x10ffff && !(c >= 0xd800 && c <= 0xdfff) &&
                                             !(len == 2 && c < 0x80) && !(len == 3 && c < 0x800) &&
                                             !(len == 4 && c < 0x10000);
                                if (!valid)
                                        o += f->state == GROUND ? put_replacement(out + o) : 0;
                                else
                                        o += feed_cp(f, c, f->utf8, len, out + o);
                                continue;
                        }
                        o += utf8_abort(f, out + o);
                }
                if (b < 0x80)
                        o += feed_cp(f, b, &b, 1, out + o);
                else if (b >= 0xc2 && b <= 0xf4) {
                        f->need = b >= 0xf0 ? 3 : b >= 0xe0 ? 2 : 1;
                        f->have = 0;
                        f->utf8[0] = b;
                        f->cp = b & (b >= 0xf0 ? 0x07 : b >= 0xe0 ? 0x0f : 0x1f);
                } else if (b >= 0x80 && b <= 0x9f)
                        o += feed_cp(f, b, &b, 1, out + o); /* C1 in its 8-bit form */
                else
                        o += f->state == GROUND ? put_replacement(out + o) : 0;
        }
        return o;
}
