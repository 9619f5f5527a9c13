/* SPDX-License-Identifier: MIT */
/* OpenSSH public key lines: see sshkey.h. The blob is the RFC 4253 wire encoding (uint32 length-prefixed
 * strings and mpints); every field is checked, so what is stored is a key OpenSSH would load. */
#include <nettle/base64.h>
#include <nettle/bignum.h>
#include <nettle/ecc-curve.h>
#include <nettle/ecc.h>
#include <nettle/sha2.h>

#include "sshkey.h"

typedef enum {
        KIND_ED25519,
        KIND_ECDSA,
        KIND_RSA,
} key_kind;

static const struct key_type {
        const char *name;
        key_kind kind;
        const char *curve; /* ECDSA: the curve name inside the blob */
        size_t point;      /* ED25519: key bytes; ECDSA: bytes of the uncompressed point */
        unsigned bits;
        bool sk;           /* a FIDO key: an application string follows */
} key_types[] = {
        { "ssh-ed25519", KIND_ED25519, NULL, 32, 256, false },
        { "sk-ssh-ed25519@openssh.com", KIND_ED25519, NULL, 32, 256, true },
        { "ecdsa-sha2-nistp256", KIND_ECDSA, "nistp256", 65, 256, false },
        { "ecdsa-sha2-nistp384", KIND_ECDSA, "nistp384", 97, 384, false },
        { "ecdsa-sha2-nistp521", KIND_ECDSA, "nistp521", 133, 521, false },
        { "sk-ecdsa-sha2-nistp256@openssh.com", KIND_ECDSA, "nistp256", 65, 256, true },
        { "ssh-rsa", KIND_RSA, NULL, 0, 0, false },
};

#define invalid(reterr, ...) pc_error_setf(reterr, EINVAL, "invalid_key", __VA_ARGS__)

/* A reader of the blob's fields. */
typedef struct blob {
        const uint8_t *p;
        size_t n;
} blob;

static int read_string(blob *b, const uint8_t **ret, size_t *ret_n)
{
        uint32_t len;

        if (b->n < 4)
                return -EINVAL;
        len = (uint32_t) b->p[0] << 24 | (uint32_t) b->p[1] << 16 | (uint32_t) b->p[2] << 8 | b->p[3];
        if (len > b->n - 4)
                return -EINVAL;
        *ret = b->p + 4;
        *ret_n = len;
        b->p += 4 + len;
        b->n -= 4 + len;
        return 0;
}

static bool string_is(const uint8_t *s, size_t n, const char *want)
{
        return n == strlen(want) && memcmp(s, want, n) == 0;
}

/* A positive mpint in its minimal encoding (RFC 4251 5): no needless leading zero byte, no sign bit. Its
 * size in bits. */
static int read_mpint_positive(blob *b, unsigned *ret_bits)
{
        const uint8_t *s;
        size_t n;
        unsigned bits;

        if (read_string(b, &s, &n) < 0 || n == 0 || (s[0] & 0x80))
                return -EINVAL;
        if (s[0] == 0) {
                if (n == 1 || !(s[1] & 0x80))
                        return -EINVAL;
                s++;
                n--;
        }
        if (n > PC_SSHKEY_RSA_MAX_BITS / 8 + 1)
                return -EINVAL;
        bits = (unsigned) (n - 1) * 8;
        for (uint8_t c = s[0]; c; c >>= 1)
                bits++;
        *ret_bits = bits;
        return 0;
}

/* Whether the uncompressed point Q (0x04 X Y, N bytes) lies on CURVE (what OpenSSH checks when it loads
 * the key: a point that does not could never authenticate). */
static bool ecdsa_point_valid(const char *curve, const uint8_t *q, size_t n)
{
        const struct ecc_curve *c = streq(curve, "nistp256")   ? nettle_get_secp_256r1()
                                    : streq(curve, "nistp384") ? nettle_get_secp_384r1()
                                                               : nettle_get_secp_521r1();
        size_t k = (n - 1) / 2;
        struct ecc_point p;
        mpz_t x, y;
        bool ok;

        mpz_init(x);
        mpz_init(y);
        nettle_mpz_set_str_256_u(x, k, q + 1);
        nettle_mpz_set_str_256_u(y, k, q + 1 + k);
        ecc_point_init(&p, c);
        ok = ecc_point_set(&p, x, y) == 1;
        ecc_point_clear(&p);
        mpz_clear(x);
        mpz_clear(y);
        return ok;
}

/* The key fields after the type string, for `t`; the blob must end with them. */
static int check_blob(const struct key_type *t, blob *b, unsigned *ret_bits, pc_error **reterr)
{
        const uint8_t *s;
        size_t n;
        unsigned e_bits, n_bits;

        switch (t->kind) {
        case KIND_ED25519:
                if (read_string(b, &s, &n) < 0 || n != t->point)
                        return invalid(reterr, "the %s key is not 32 bytes", t->name);
                *ret_bits = t->bits;
                break;
        case KIND_ECDSA:
                if (read_string(b, &s, &n) < 0 || !string_is(s, n, t->curve))
                        return invalid(reterr, "the %s key does not name its curve", t->name);
                /* An uncompressed point (0x04 X Y) of the curve's size: what OpenSSH writes. */
                if (read_string(b, &s, &n) < 0 || n != t->point || s[0] != 0x04)
                        return invalid(reterr, "the %s key is not an uncompressed point of its curve", t->name);
                if (!ecdsa_point_valid(t->curve, s, n))
                        return invalid(reterr, "the %s key is not a point on its curve", t->name);
                *ret_bits = t->bits;
                break;
        case KIND_RSA:
                if (read_mpint_positive(b, &e_bits) < 0 || e_bits < 2 || e_bits > 64)
                        return invalid(reterr, "the %s key's public exponent is malformed", t->name);
                if (read_mpint_positive(b, &n_bits) < 0 || n_bits > PC_SSHKEY_RSA_MAX_BITS)
                        return invalid(reterr, "the %s key's modulus is malformed", t->name);
                if (n_bits < PC_SSHKEY_RSA_MIN_BITS)
                        return pc_error_setf(reterr, EINVAL, "invalid_key",
                                             "the RSA key has %u bits; at least %u are needed", n_bits,
                                             PC_SSHKEY_RSA_MIN_BITS);
                *ret_bits = n_bits;
                break;
        }
        if (t->sk && (read_string(b, &s, &n) < 0 || n == 0))
                return invalid(reterr, "the %s key has no application string", t->name);
        if (b->n != 0)
                return invalid(reterr, "the %s key has bytes after its last field", t->name);
        return 0;
}

/* Strict base64: the alphabet, '=' only as padding, a length that is a multiple of 4. */
static int decode_base64(const char *s, size_t n, uint8_t **ret, size_t *ret_n)
{
        struct base64_decode_ctx ctx;
        _cleanup_free_ uint8_t *out = NULL;
        size_t pad = 0, k;

        if (n == 0 || n % 4 != 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '=') {
                        pad++;
                        continue;
                }
                if (pad > 0 || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                                 c == '+' || c == '/'))
                        return -EINVAL;
        }
        if (pad > 2)
                return -EINVAL;
        out = malloc(BASE64_DECODE_LENGTH(n));
        if (!out)
                return -ENOMEM;
        k = BASE64_DECODE_LENGTH(n);
        base64_decode_init(&ctx);
        if (!base64_decode_update(&ctx, &k, out, n, s) || !base64_decode_final(&ctx))
                return -EINVAL;
        /* Canonical: the bits padding leaves over are zero (re-encoding gives the same text). */
        {
                _cleanup_free_ char *again = malloc(BASE64_ENCODE_RAW_LENGTH(k) + 1);
                if (!again)
                        return -ENOMEM;
                base64_encode_raw(again, k, out);
                if (BASE64_ENCODE_RAW_LENGTH(k) != n || memcmp(again, s, n) != 0)
                        return -EINVAL;
        }
        *ret = TAKE_PTR(out);
        *ret_n = k;
        return 0;
}

/* Printable text: no ASCII control (tab excepted) or DEL, and well-formed UTF-8 (no overlong forms,
 * surrogates or code points past U+10FFFF). */
static bool printable_utf8(const char *s, size_t n)
{
        const unsigned char *p = (const unsigned char *) s;

        for (size_t i = 0; i < n;) {
                unsigned c = p[i], len, cp;

                if (c < 0x80) {
                        if ((c < 0x20 && c != '\t') || c == 0x7f)
                                return false;
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf)
                        len = 2, cp = c & 0x1f;
                else if (c >= 0xe0 && c <= 0xef)
                        len = 3, cp = c & 0x0f;
                else if (c >= 0xf0 && c <= 0xf4)
                        len = 4, cp = c & 0x07;
                else
                        return false;
                if (n - i < len)
                        return false;
                for (unsigned k = 1; k < len; k++) {
                        if ((p[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (p[i + k] & 0x3f);
                }
                if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0x80 && cp <= 0x9f))
                        return false;
                i += len;
        }
        return true;
}

static size_t span_of(const char *s, size_t n, bool blanks)
{
        size_t i = 0;

        while (i < n && ((s[i] == ' ' || s[i] == '\t') == blanks))
                i++;
        return i;
}

int pc_sshkey_parse(const char *line, size_t len, pc_sshkey *ret, pc_error **reterr)
{
        _cleanup_free_ uint8_t *raw = NULL;
        const struct key_type *t = NULL;
        const char *type, *b64, *comment;
        size_t type_n, b64_n, comment_n, raw_n, i;
        const uint8_t *inner;
        size_t inner_n;
        uint8_t md[SHA256_DIGEST_SIZE];
        char fp[BASE64_ENCODE_RAW_LENGTH(SHA256_DIGEST_SIZE)];
        struct sha256_ctx c;
        unsigned bits = 0;
        blob b;
        int r;

        if (len > PC_SSHKEY_LINE_MAX)
                return pc_error_setf(reterr, EINVAL, "invalid_key", "the key line is longer than %u bytes",
                                     PC_SSHKEY_LINE_MAX);
        if (len > 0 && line[len - 1] == '\n')
                len -= len > 1 && line[len - 2] == '\r' ? 2 : 1;
        if (!printable_utf8(line, len))
                return pc_error_setf(reterr, EINVAL, "invalid_key",
                                     "the key must be one line of printable UTF-8 text (no NUL, newline or "
                                     "other control character)");
        /* Leading and trailing blanks are dropped, as ssh-keygen does. */
        i = span_of(line, len, true);
        line += i;
        len -= i;
        while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
                len--;
        if (len == 0)
                return pc_error_setf(reterr, EINVAL, "invalid_key", "the key is empty; give the contents of "
                                                                     "a .pub file such as ~/.ssh/id_ed25519.pub");

        type = line;
        type_n = span_of(line, len, false);
        for (size_t k = 0; k < ELEMENTSOF(key_types); k++)
                if (strlen(key_types[k].name) == type_n && memcmp(key_types[k].name, type, type_n) == 0)
                        t = &key_types[k];
        if (!t) {
                _cleanup_free_ char *name = strndup(type, MIN(type_n, (size_t) 64));
                if (!name)
                        return -ENOMEM;
                if (memchr(type, '=', type_n) || memchr(type, ',', type_n) || memchr(type, '"', type_n))
                        return invalid(reterr, "options before the key (\"%s\") are not accepted: give the key "
                                               "alone, its scope is the \"sandboxes\" of the request", name);
                if (strstr(name, "-cert-v01@openssh.com"))
                        return invalid(reterr, "\"%s\" is a certificate; give a plain public key", name);
                if (streq(name, "ssh-dss"))
                        return invalid(reterr, "%s (DSA) keys are not accepted: OpenSSH disabled them; use "
                                               "ssh-ed25519", name);
                return invalid(reterr, "unknown key type \"%s\" (accepted: ssh-ed25519, ecdsa-sha2-nistp256/384/"
                                       "521, ssh-rsa of 2048 bits or more, and their sk-* FIDO variants)",
                               name);
        }
        i = type_n + span_of(line + type_n, len - type_n, true);
        if (i == type_n || i == len)
                return invalid(reterr, "the %s key has no base64 data after its type", t->name);
        b64 = line + i;
        b64_n = span_of(b64, len - i, false);
        i += b64_n;
        comment = line + i + span_of(line + i, len - i, true);
        comment_n = len - (size_t) (comment - line);
        if (comment_n > PC_SSHKEY_COMMENT_MAX)
                return pc_error_setf(reterr, EINVAL, "invalid_key", "the key's comment is longer than %u bytes",
                                     PC_SSHKEY_COMMENT_MAX);

        r = decode_base64(b64, b64_n, &raw, &raw_n);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return invalid(reterr, "the %s key's data is not valid base64", t->name);
        b = (blob){ raw, raw_n };
        if (read_string(&b, &inner, &inner_n) < 0)
                return invalid(reterr, "the %s key's data does not start with its type", t->name);
        if (!string_is(inner, inner_n, t->name))
                return invalid(reterr, "the key's data is not a %s key (the type in the line and in the data "
                                       "differ)", t->name);
        r = check_blob(t, &b, &bits, reterr);
        if (r < 0)
                return r;

        sha256_init(&c);
        sha256_update(&c, raw_n, raw);
        sha256_digest(&c, sizeof(md), md);
        base64_encode_raw(fp, sizeof(md), md);

        pc_sshkey k = { .bits = bits };
        k.type = strdup(t->name);
        k.base64 = strndup(b64, b64_n);
        k.comment = comment_n > 0 ? strndup(comment, comment_n) : NULL;
        if (!k.type || !k.base64 || (comment_n > 0 && !k.comment)) {
                pc_sshkey_done(&k);
                return -ENOMEM;
        }
        memcpy(k.fingerprint, "SHA256:", 7);
        memcpy(k.fingerprint + 7, fp, PC_SSHKEY_FINGERPRINT_LEN - 8); /* 43: the digest without padding */
        k.fingerprint[PC_SSHKEY_FINGERPRINT_LEN - 1] = 0;
        *ret = k;
        return 0;
}

void pc_sshkey_done(pc_sshkey *k)
{
        free(k->type);
        free(k->base64);
        free(k->comment);
        *k = (pc_sshkey){};
}

char *pc_sshkey_line(const pc_sshkey *k)
{
        return strjoin(k->type, " ", k->base64, k->comment ? " " : "", k->comment ?: "");
}
