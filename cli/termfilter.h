/* SPDX-License-Identifier: MIT */
/* What of a sandbox's output may reach the admin's terminal (docs/security.md, "Terminal filter"). A small
 * state machine over the byte stream, resumable at any byte (sequences split across reads are handled):
 * printable text and valid UTF-8, the C0 controls a screen needs (BEL, BS, HT, LF, VT, FF, CR), and escape
 * and CSI sequences from an allow-list (SGR, cursor movement, erase, insert/delete, scroll, the screen
 * modes a full-screen program sets) pass; OSC (titles, clipboard, hyperlinks), DCS, APC, PM and SOS strings,
 * every query (their reports would be typed into the sandbox) and everything else are dropped, C1 controls
 * in 8-bit or UTF-8 form included. Invalid UTF-8 becomes U+FFFD. Output only ever holds whole sequences. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define TERMFILTER_SEQ_MAX 64

typedef struct termfilter {
        int state;
        uint32_t cp;          /* UTF-8 code point being decoded */
        unsigned need;        /* continuation bytes still expected */
        unsigned have;        /* continuation bytes seen */
        char seq[TERMFILTER_SEQ_MAX]; /* parameters, intermediates and final byte of the current sequence */
        size_t len;
        unsigned char utf8[4]; /* the raw bytes of the code point being decoded */
} termfilter;

void termfilter_init(termfilter *f);
/* The most bytes termfilter_feed() writes for n input bytes. */
#define TERMFILTER_OUT_MAX(n) (3 * (n) + TERMFILTER_SEQ_MAX + 8)
/* Filters n bytes into out (TERMFILTER_OUT_MAX(n) bytes) and returns how many were written. */
size_t termfilter_feed(termfilter *f, const void *in, size_t n, char *out);
