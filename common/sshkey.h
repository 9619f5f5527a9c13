/* SPDX-License-Identifier: MIT */
/* OpenSSH public key lines ("TYPE BASE64 [COMMENT]", as in id_ed25519.pub and authorized_keys) from people
 * who hand them to the API: the type is one OpenSSH accepts today, the base64 is strict and its blob is a
 * well-formed key of that very type (RSA of at least PC_SSHKEY_RSA_MIN_BITS), with nothing after it. An
 * options prefix (from="...",command="...") is refused: the daemon decides what a key may do. */
#pragma once

#include <stddef.h>

#include "common.h"

#define PC_SSHKEY_LINE_MAX     8192u /* bytes, the whole line (an RSA-16384 line is ~2.8 KiB) */
#define PC_SSHKEY_COMMENT_MAX  256u
#define PC_SSHKEY_RSA_MIN_BITS 2048u
#define PC_SSHKEY_RSA_MAX_BITS 16384u
/* "SHA256:" + 43 characters of unpadded base64 (what `ssh-keygen -l` prints) + NUL */
#define PC_SSHKEY_FINGERPRINT_LEN (7 + 43 + 1)

typedef struct pc_sshkey {
        char *type;    /* "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa", "sk-ssh-ed25519@openssh.com", ... */
        char *base64;  /* the blob, as given (strict base64 is canonical) */
        char *comment; /* NULL when there is none */
        unsigned bits;
        char fingerprint[PC_SSHKEY_FINGERPRINT_LEN];
} pc_sshkey;

/* Parses one line of LEN bytes; one trailing "\n" or "\r\n" is allowed, nothing else that is not
 * printable (a NUL, other controls, invalid UTF-8 in the comment). Errors are "invalid_key" with a message
 * that says what is wrong; *ret is filled only on success. */
int pc_sshkey_parse(const char *line, size_t len, pc_sshkey *ret, pc_error **reterr);
void pc_sshkey_done(pc_sshkey *k);
/* "TYPE BASE64[ COMMENT]" (malloc'd): the line as it goes into authorized_keys. */
char *pc_sshkey_line(const pc_sshkey *k);
