/* SPDX-License-Identifier: MIT */
#include "common.h"
#include "crypto.h"
#include "tap.h"

static void unhex(const char *s, uint8_t *out)
{
        for (size_t i = 0; s[2 * i]; i++)
                sscanf(s + 2 * i, "%2hhx", &out[i]);
}

/* RFC 8032 section 7.1, tests 1 to 3. */
static const struct {
        const char *seed, *pub, *msg, *sig;
} rfc8032[] = {
        { "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
          "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
          "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b"
          "d25bf5f0595bbe24655141438e7a100b" },
        { "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
          "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
          "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c"
          "387b2eaeb4302aeeb00d291612bb0c00" },
        { "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
          "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
          "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc659"
          "4a7c15e9716ed28dc027beceea1ec40a" },
};

TEST(ed25519_rfc8032_vectors)
{
        for (size_t i = 0; i < ELEMENTSOF(rfc8032); i++) {
                uint8_t seed[32], pub[32], want_pub[32], sig[64], want_sig[64], msg[2];
                size_t n = strlen(rfc8032[i].msg) / 2;

                unhex(rfc8032[i].seed, seed);
                unhex(rfc8032[i].pub, want_pub);
                unhex(rfc8032[i].sig, want_sig);
                unhex(rfc8032[i].msg, msg);
                CHECK(pc_ed25519_public(seed, pub) == 0 && memcmp(pub, want_pub, 32) == 0);
                CHECK(pc_ed25519_sign(seed, msg, n, sig) == 0 && memcmp(sig, want_sig, 64) == 0);
                CHECK(pc_ed25519_verify(pub, msg, n, sig));
                /* Any flipped bit of the signature, the message or the key fails. */
                sig[i * 7] ^= 1;
                CHECK(!pc_ed25519_verify(pub, msg, n, sig));
                sig[i * 7] ^= 1;
                pub[31 - i] ^= 0x10;
                CHECK(!pc_ed25519_verify(pub, msg, n, sig));
                pub[31 - i] ^= 0x10;
                msg[0] ^= 1;
                CHECK(!pc_ed25519_verify(pub, msg, n + (n == 0), sig));
        }
}

TEST(sha256_hex)
{
        char h[65];

        CHECK(pc_sha256_hex("abc", 3, h) == 0);
        CHECK_STREQ(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        CHECK(pc_sha256_hex("", 0, h) == 0);
        CHECK_STREQ(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(base64_strict)
{
        uint8_t b[4];
        _cleanup_free_ char *s = pc_base64_encode("\x00\xff\x10", 3);

        CHECK_STREQ(s, "AP8Q");
        CHECK(pc_base64_decode_exact("AP8Q", b, 3) == 0 && memcmp(b, "\x00\xff\x10", 3) == 0);
        CHECK(pc_base64_decode_exact("AP8=", b, 2) == 0 && memcmp(b, "\x00\xff", 2) == 0);
        CHECK(pc_base64_decode_exact("AP8Q", b, 2) == -EINVAL);  /* wrong length */
        CHECK(pc_base64_decode_exact("AP8", b, 2) == -EINVAL);   /* padding missing */
        CHECK(pc_base64_decode_exact("AP9=", b, 2) == -EINVAL);  /* stray bits */
        CHECK(pc_base64_decode_exact("AP 8Q", b, 3) == -EINVAL); /* whitespace */
        CHECK(pc_base64_decode_exact("AP8*", b, 3) == -EINVAL);
        CHECK(pc_base64_decode_exact("", b, 0) == 0);
        CHECK(pc_base64_decode_exact("====", b, 3) == -EINVAL);
}

TEST(approval_message_format)
{
        _cleanup_free_ char *m = pc_approval_message("0123abcd", "ls -l", "/workspace", "exact", 15, 1900000000);
        char h[65];

        CHECK(pc_sha256_hex("ls -l\0/workspace", 16, h) == 0);
        _cleanup_free_ char *want = NULL;
        CHECK(asprintf_safe(&want, "pocketcoder-approval-v1\n0123abcd\n%s\nexact\n15\n1900000000\n", h) >= 0);
        CHECK_STREQ(m, want);
        /* The NUL between command and cwd: "a" in "b c" differs from "a b" in "c". */
        _cleanup_free_ char *x = pc_approval_message("i", "a", "b c", "once", 0, 1);
        _cleanup_free_ char *y = pc_approval_message("i", "a b", "c", "once", 0, 1);
        CHECK(x && y && !streq(x, y));
        _cleanup_free_ char *neg = pc_approval_message("i", "", "", "once", 0, -5);
        CHECK(neg && strstr(neg, "\nonce\n0\n-5\n"));
}

TAP_MAIN()
