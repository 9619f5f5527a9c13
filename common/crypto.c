/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <nettle/base64.h>
#include <nettle/eddsa.h>
#include <nettle/sha2.h>

#include "common.h"
#include "crypto.h"

int pc_sha256(const void *data, size_t n, uint8_t ret[static 32])
{
        struct sha256_ctx c;

        sha256_init(&c);
        sha256_update(&c, n, data);
        sha256_digest(&c, SHA256_DIGEST_SIZE, ret);
        return 0;
}

int pc_sha256_hex(const void *data, size_t n, char ret[static 65])
{
        static const char digits[] = "0123456789abcdef";
        uint8_t md[32];
        int r = pc_sha256(data, n, md);

        if (r < 0)
                return r;
        for (size_t i = 0; i < sizeof(md); i++) {
                ret[2 * i] = digits[md[i] >> 4];
                ret[2 * i + 1] = digits[md[i] & 15];
        }
        ret[64] = 0;
        return 0;
}

int pc_ed25519_public(const uint8_t seed[32], uint8_t pub[32])
{
        ed25519_sha512_public_key(pub, seed);
        return 0;
}

int pc_ed25519_sign(const uint8_t seed[32], const void *msg, size_t n, uint8_t sig[64])
{
        uint8_t pub[ED25519_KEY_SIZE];

        ed25519_sha512_public_key(pub, seed);
        ed25519_sha512_sign(pub, seed, n, msg, sig);
        return 0;
}

bool pc_ed25519_verify(const uint8_t pub[32], const void *msg, size_t n, const uint8_t sig[64])
{
        return ed25519_sha512_verify(pub, n, msg, sig) == 1;
}

char *pc_base64_encode(const void *p, size_t n)
{
        char *s;

        if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
                return NULL;
        s = malloc(BASE64_ENCODE_RAW_LENGTH(n) + 1);
        if (!s)
                return NULL;
        base64_encode_raw(s, n, p);
        s[BASE64_ENCODE_RAW_LENGTH(n)] = 0;
        return s;
}

/* nettle's decoder skips whitespace and accepts non-zero trailing bits; re-encoding what it decoded and
 * comparing with the input leaves the canonical form only. */
int pc_base64_decode(const char *s, size_t len, char **ret, size_t *ret_len)
{
        struct base64_decode_ctx c;
        _cleanup_free_ char *buf = NULL, *again = NULL;
        size_t got = 0;

        if (len % 4 != 0 || len > SIZE_MAX / 2)
                return -EINVAL;
        buf = malloc(BASE64_DECODE_LENGTH(len) + 1);
        if (!buf)
                return -ENOMEM;
        base64_decode_init(&c);
        if (!base64_decode_update(&c, &got, (uint8_t *) buf, len, s) || !base64_decode_final(&c))
                return -EINVAL;
        again = pc_base64_encode(buf, got);
        if (!again)
                return -ENOMEM;
        if (strlen(again) != len || memcmp(again, s, len) != 0)
                return -EINVAL;
        buf[got] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = got;
        return 0;
}

int pc_base64_decode_exact(const char *s, void *ret, size_t n)
{
        _cleanup_free_ char *buf = NULL;
        size_t got = 0;
        int r = pc_base64_decode(s, strlen(s), &buf, &got);

        if (r < 0)
                return r;
        if (got != n)
                return -EINVAL;
        memcpy(ret, buf, n);
        return 0;
}

char *pc_approval_message(const char *id, const char *command, const char *cwd, const char *scope,
                          unsigned minutes, int64_t expires)
{
        size_t lc = strlen(command), lw = strlen(cwd);
        _cleanup_free_ char *both = malloc(lc + 1 + lw);
        char hash[65], *msg;

        if (!both)
                return NULL;
        memcpy(both, command, lc + 1);
        memcpy(both + lc + 1, cwd, lw);
        if (pc_sha256_hex(both, lc + 1 + lw, hash) < 0)
                return NULL;
        if (asprintf_safe(&msg, "pocketcoder-approval-v1\n%s\n%s\n%s\n%u\n%" PRId64 "\n", id, hash, scope, minutes,
                          expires) < 0)
                return NULL;
        return msg;
}
