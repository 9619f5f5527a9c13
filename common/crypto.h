/* SPDX-License-Identifier: MIT */
/* Hashes, Ed25519 and base64 (nettle/hogweed), and the exact bytes a device signs to approve a
 * permission request (docs/api.md). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SHA-256 of DATA: raw (32 bytes) or as 64 lowercase hex digits and a NUL. */
int pc_sha256(const void *data, size_t n, uint8_t ret[static 32]);
int pc_sha256_hex(const void *data, size_t n, char ret[static 65]);

/* Ed25519 (RFC 8032) with a 32-byte seed as the private key. */
int pc_ed25519_public(const uint8_t seed[32], uint8_t pub[32]);
int pc_ed25519_sign(const uint8_t seed[32], const void *msg, size_t n, uint8_t sig[64]);
bool pc_ed25519_verify(const uint8_t pub[32], const void *msg, size_t n, const uint8_t sig[64]);

/* Standard base64 with padding. Encoding returns a malloc'd string (NULL without memory). Decoding is
 * strict: only the canonical encoding of exactly N bytes is accepted (no whitespace, no missing or extra
 * padding, no stray bits), else -EINVAL. */
char *pc_base64_encode(const void *p, size_t n);
int pc_base64_decode_exact(const char *s, void *ret, size_t n);
/* The LEN characters of S decoded into *ret (malloc'd, NUL-terminated for convenience), its size in *ret_len. */
int pc_base64_decode(const char *s, size_t len, char **ret, size_t *ret_len);

/* "pocketcoder-approval-v1\n" ID "\n" sha256hex(COMMAND "\0" CWD) "\n" SCOPE "\n" MINUTES "\n" EXPIRES "\n"
 * (malloc'd; NULL without memory). */
char *pc_approval_message(const char *id, const char *command, const char *cwd, const char *scope,
                          unsigned minutes, int64_t expires);
