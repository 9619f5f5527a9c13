/* SPDX-License-Identifier: MIT */
/* The terminal filter (cli/termfilter.c): what a full-screen program needs passes byte for byte; control
 * strings (OSC, DCS, APC, PM, SOS), queries and 8-bit C1 controls never reach the terminal, whole or split
 * across reads at any byte. */
#include "tap.h"
#include "termfilter.h"

/* Filters `in` in one piece and a byte at a time; both must give the same. */
static char *filter(const char *in, size_t n)
{
        static char out[4096], out2[4096];
        termfilter f;
        size_t k, k2 = 0;

        termfilter_init(&f);
        k = termfilter_feed(&f, in, n, out);
        out[k] = 0;
        termfilter_init(&f);
        for (size_t i = 0; i < n; i++)
                k2 += termfilter_feed(&f, in + i, 1, out2 + k2);
        out2[k2] = 0;
        if (k != k2 || memcmp(out, out2, k) != 0) {
                printf("#   split input filters differently: \"%s\" vs \"%s\"\n", out, out2);
                tap_failed_checks++;
        }
        return out;
}
#define F(s) filter(s, sizeof(s) - 1)

TEST(text_and_utf8_pass)
{
        CHECK_STREQ(F("hello\r\n\tworld\b\a"), "hello\r\n\tworld\b\a");
        CHECK_STREQ(F("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82"), "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82");
        /* Invalid UTF-8 (a lone continuation byte, an overlong '/', a surrogate, a cut sequence) is U+FFFD. */
        CHECK_STREQ(F("a\xbf" "b\xc0\xaf" "c\xed\xa0\x80" "d\xe6\x97" "e"),
                    "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd" "c\xef\xbf\xbd" "d\xef\xbf\xbd" "e");
        /* NUL, SO/SI, DEL and other C0 controls are dropped. */
        CHECK_STREQ(F("a\x00\x0e\x0f\x7f\x01z"), "az");
}

TEST(screen_sequences_pass)
{
        static const char *const pass[] = {
                "\x1b[0m", "\x1b[1;38;5;196;48;2;10;20;30m", "\x1b[38:2::1:2:3m", "\x1b[H", "\x1b[12;40H",
                "\x1b[2J", "\x1b[K", "\x1b[3A", "\x1b[B", "\x1b[5C", "\x1b[D", "\x1b[4X", "\x1b[2L", "\x1b[M",
                "\x1b[P", "\x1b[@", "\x1b[1;24r", "\x1b[S", "\x1b[2T", "\x1b[?1049h", "\x1b[?1049l",
                "\x1b[?25l", "\x1b[?25h", "\x1b[?1;1000;1006h", "\x1b[?2004h", "\x1b[4h", "\x1b[4l", "\x1b[2 q",
                "\x1b" "7", "\x1b" "8", "\x1bM", "\x1b(0", "\x1b(B", "\x1b=", "\x1b>", "\x1b[>4;1m",
        };
        for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++)
                CHECK_STREQ(filter(pass[i], strlen(pass[i])), pass[i]);
}

TEST(control_strings_are_dropped)
{
        /* OSC 52 (clipboard), OSC 0 (title), OSC 8 (hyperlink): BEL or ST terminated. */
        CHECK_STREQ(F("a\x1b]52;c;cm0gLXJmIH4=\x07" "b"), "ab");
        CHECK_STREQ(F("a\x1b]0;pwned\x1b\\b"), "ab");
        CHECK_STREQ(F("\x1b]8;;http://evil/\x1b\\link\x1b]8;;\x1b\\"), "link");
        /* DCS (tmux passthrough wrapping an OSC 52), APC, PM, SOS. */
        CHECK_STREQ(F("a\x1bPtmux;\x1b\x1b]52;c;eA==\x07\x1b\\b"), "ab");
        CHECK_STREQ(F("a\x1b_Gf=100;AAAA\x1b\\b"), "ab");
        CHECK_STREQ(F("a\x1b^secret\x1b\\b\x1bXsos\x1b\\c"), "abc");
        /* DECRQSS/XTGETTCAP (DCS queries) whose answers would be typed into the sandbox. */
        CHECK_STREQ(F("\x1bP$qm\x1b\\\x1bP+q544e\x1b\\ok"), "ok");
        /* CAN and SUB cancel a string; an ESC inside one ends it and starts a new sequence. */
        CHECK_STREQ(F("\x1b]52;c;x\x18" "a"), "a");
        CHECK_STREQ(F("\x1b]0;t\x1b[31mred"), "\x1b[31mred");
}

TEST(c1_controls_in_8bit_and_utf8_form)
{
        /* Raw 8-bit OSC, DCS, APC up to ST (0x9c) or BEL. */
        CHECK_STREQ(F("a\x9d" "52;c;eA==\x07" "b"), "ab");
        CHECK_STREQ(F("a\x90qq\x9c" "b\x9f" "x\x9c" "c"), "abc");
        /* The same as UTF-8 encoded code points U+009D, U+0090. */
        CHECK_STREQ(F("a\xc2\x9d" "0;title\xc2\x9c" "b\xc2\x90" "x\xc2\x9c" "c"), "abc");
        /* 8-bit CSI: checked like ESC [ and passed in its 7-bit form. */
        CHECK_STREQ(F("\x9b" "31mred\x9b" "6n"), "\x1b[31mred");
        /* Other C1 controls are dropped. */
        CHECK_STREQ(F("a\x85\x8d\xc2\x85" "z"), "az");
}

TEST(queries_and_dangerous_modes_are_dropped)
{
        static const char *const drop[] = {
                "\x1b[6n",      "\x1b[c",         "\x1b[>c",    "\x1b[=c",     "\x1b[21t",  "\x1b[8;100;100t",
                "\x1b[?u",      "\x1b[?1;2$p",    "\x1b[>q",    "\x1b[?6n",    "\x1b[?3h",  "\x1b[?1049;3h",
                "\x1b[!p",      "\x1b[?5h",       "\x1b[20h",   "\x1b[?1;2c",  "\x1b\x63",     "\x1b%G",
                "\x1b#8",       "\x1b[?9h",       "\x1b[?2h",   "\x1b[>0u",    "\x1b[<u",   "\x1b[?12;25$p",
        };
        for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
                CHECK_STREQ(filter(drop[i], strlen(drop[i])), "");
        /* A sequence too long to check is dropped whole, then text goes on. */
        char longseq[300] = "\x1b[";
        memset(longseq + 2, '1', 250);
        strcpy(longseq + 252, "mok");
        CHECK_STREQ(filter(longseq, strlen(longseq)), "ok");
}

TAP_MAIN()
