/* SPDX-License-Identifier: MIT */
/* OpenSSH public key lines (common/sshkey.c): keys ssh-keygen made are accepted with ssh-keygen -l's
 * fingerprint and size; everything else is refused with a message saying why. */
#include "sshkey.h"
#include "tap.h"

static const struct {
        const char *line, *type, *fingerprint, *comment;
        unsigned bits;
} good[] = {
        { "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID1HTDaUI12WoS/Co/ybGQdYQ9/Sh/R+J0jWbLoeUE3D me@host ked25519\n",
          "ssh-ed25519", "SHA256:ferpdB7XCNygC8yCxsZXqmmp7+ynS8/xu+WICptXITs", "me@host ked25519", 256 },
        { "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBKn9tp+mtm4wtSzlTQieLcEz4+98KBIgN6EfycEce7zndGm73uG8rpm4H8Cw8iMzMncDIro58I0cgWGEO1rKSDQ=",
          "ecdsa-sha2-nistp256", "SHA256:97GxXXVdTthUmgooQelnGod+LXTblZ5xG22tMIFNfIc", NULL, 256 },
        { "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBPk2SqSdWWcXgyiuaFPH/VamcSHSwp5IXAqoWi4vCm+ljefswR2x1hoDzWqY/BAe80wt4HzKMBmOhk/dyssQzft8up9CEawTwfpXxZO7GAoDCZhz/wQ8LkhPz3KTQqlYWA== me@host kecdsab384\r\n",
          "ecdsa-sha2-nistp384", "SHA256:ieEGD1R0/nEARwQ2HUVyWAPjmA3600eJpeX346E9cXo", "me@host kecdsab384", 384 },
        { "  ecdsa-sha2-nistp521\tAAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBABT+wRNhXjQnovVrkBlpz2LVm8UJPkvFieQGb7b6KuHJpA0DVNBPLJfQqk88l+u2SkAiG7A5ibV6+YkO1KO7uQzRADpD4Xxb+9xXe2qS+KCYiOSyr3Nt8AQv6Jva6cTjI9nRtYKlre6quaqF6aclfiPtV/4Sg/41rNRXt01OPqaZFSPVA==   caf\xc3\xa9 \xe6\x97\xa5  ",
          "ecdsa-sha2-nistp521", "SHA256:LK5oC2GmoDYf4jSNpfcvtfrEeddHHrQvJNxmms1kXos", "caf\xc3\xa9 \xe6\x97\xa5", 521 },
        { "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDHCTZu9ojXeRKDFCvwXhJEmgFmENgV1/qiTqmzboHMuwepuhvcAKwKfQNXEuYrTuuoJTC3zQ77++vF3IdPsZsOiDuk/YHwS+0puMNMSnyRIQxWOrT+SnvujP3QrFsphj92L23un/OpNazRkUXCKFY6lhWkNuGU4fnSQ/jzQ/8h0CJ13QyBqx+bggUAySUTxbTDlZ8YLVjvIpX+uooVCPn76OkKfH9doTXal+Fw2N8eyAIl2FXatRY96cpwm3h2DR1NbFWYRa7kFaocpzn555bLhqJk9T1gIFQDRpJJ3sGNTo5aywxP3zrF7WPosUcYiJ9Pdfy/ZDlDWFWRMb8KbV2N me@host krsab2048",
          "ssh-rsa", "SHA256:pwYK8syItvtwO3GI/A1/thrzRu6QYinX+YymrCBQCpI", "me@host krsab2048", 2048 },
        { "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fAAAABHNzaDo= fido",
          "sk-ssh-ed25519@openssh.com", "SHA256:/p0CbeE3dk2SyW1OXXsThGc12ezDVD8eGw2/vtztDfk", "fido", 256 },
        { "sk-ecdsa-sha2-nistp256@openssh.com AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAIbmlzdHAyNTYAAABBBKn9tp+mtm4wtSzlTQieLcEz4+98KBIgN6EfycEce7zndGm73uG8rpm4H8Cw8iMzMncDIro58I0cgWGEO1rKSDQAAAAEc3NoOg== fido2",
          "sk-ecdsa-sha2-nistp256@openssh.com", "SHA256:ccU+7PIW0QyUIQD4bLecPeHGrf32MJ0/TSjDJvl0yA0", "fido2", 256 },
};

TEST(keys_from_ssh_keygen_are_accepted)
{
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                _cleanup_pc_error_ pc_error *e = NULL;
                pc_sshkey k = {};
                int r = pc_sshkey_parse(good[i].line, strlen(good[i].line), &k, &e);

                CHECK(r == 0);
                if (r < 0) {
                        printf("#   %s: %s\n", good[i].type, e ? e->message : strerror(-r));
                        continue;
                }
                CHECK_STREQ(k.type, good[i].type);
                CHECK_STREQ(k.fingerprint, good[i].fingerprint);
                CHECK(k.bits == good[i].bits);
                CHECK(streq_ptr(k.comment, good[i].comment));
                pc_sshkey_done(&k);
        }
}

TEST(line_is_canonical)
{
        const char *in = " ssh-ed25519\t AAAAC3NzaC1lZDI1NTE5AAAAID1HTDaUI12WoS/Co/ybGQdYQ9/Sh/R+J0jWbLoeUE3D  a  b \n";
        pc_sshkey k = {};
        _cleanup_free_ char *line = NULL;

        CHECK(pc_sshkey_parse(in, strlen(in), &k, NULL) == 0);
        line = pc_sshkey_line(&k);
        CHECK_STREQ(line, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID1HTDaUI12WoS/Co/ybGQdYQ9/Sh/R+J0jWbLoeUE3D a  b");
        pc_sshkey_done(&k);
}

#define ED "AAAAC3NzaC1lZDI1NTE5AAAAID1HTDaUI12WoS/Co/ybGQdYQ9/Sh/R+J0jWbLoeUE3D"
/* An RSA-1024 key from ssh-keygen, and an ed25519 blob labelled as something else. */
#define RSA1024 "AAAAB3NzaC1yc2EAAAADAQABAAAAgQCvtaoezI6dc5qMatWAYULsN0KsjAtGGsUXoAfLTrv92Mvtmi+32ifssj1WzBZ3iXSAXRfE414LI8xpTCj7fzS1VQ1ZinVCqSAPMohVXRSyEC8PsOJ755BQreDo245yNJaJ4GeYUbT5RYvjNTGKig7PyClRiptE55rqN3B6grTz+w=="

static const struct {
        const char *line;
        size_t len; /* 0: strlen */
        const char *message; /* a part of the error message */
} bad_lines[] = {
        { "", 0, "empty" },
        { "   \n", 0, "empty" },
        { "ssh-ed25519", 0, "no base64" },
        { "ssh-ed25519   ", 0, "no base64" },
        { "ssh-foo " ED, 0, "unknown key type" },
        { "ssh-dss AAAAB3NzaC1kc3M=", 0, "DSA" },
        { "ssh-ed25519-cert-v01@openssh.com " ED, 0, "certificate" },
        { "command=\"/bin/sh\" ssh-ed25519 " ED, 0, "options" },
        { "from=\"10.0.0.1\",no-pty ssh-ed25519 " ED, 0, "options" },
        { "no-pty ssh-ed25519 " ED, 0, "unknown key type" },
        { "ssh-rsa " ED, 0, "not a ssh-rsa key" },
        { "ecdsa-sha2-nistp256 " ED, 0, "not a ecdsa-sha2-nistp256 key" },
        { "ssh-rsa " RSA1024 " old", 0, "1024 bits" },
        { "ssh-ed25519 " ED "x", 0, "base64" },
        { "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID1HTDaUI12WoS/Co/ybGQdYQ9/Sh/R+J0jWbLoeUE3=", 0, "base64" },
        { "ssh-ed25519 AAAA=AAA", 0, "base64" },
        { "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID1HTDaUI12WoS/Co/ybGQdYQ9/Sh/R+J0jWbLoeUE3D/w==", 0, "bytes after" },
        { "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAHz1HTDaUI12WoS/Co/ybGQdYQ9/Sh/R+J0jWbLoeUE0=", 0, "32 bytes" },
        { "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", 0, "32 bytes" },
        { "ssh-ed25519 AAAAAA==", 0, "differ" },
        { "ssh-ed25519 AAAA", 0, "start with its type" },
        { "ssh-ed25519 " ED " a\nb", 0, "printable" },
        { "ssh-ed25519 " ED " a\x1b]0;x\x07", 0, "printable" },
        { "ssh-ed25519 " ED " \xc0\xaf", 0, "printable" },
        { "ssh-ed25519 " ED " \xc2\x9b", 0, "printable" },
        { "ssh-ed25519 " ED "\n\n", 0, "printable" },
        { "ssh-ed25519 " ED " a\0b", STRLEN("ssh-ed25519 " ED " a\0b"), "printable" },
        /* sk key without the application string */
        { "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f", 0, "application" },
        /* a nistp256 point labelled nistp384 inside a nistp256 blob */
        { "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAzODQAAABBBKn9tp+mtm4wtSzlTQieLcEz4+98KBIgN6EfycEce7zndGm73uG8rpm4H8Cw8iMzMncDIro58I0cgWGEO1rKSDQ=", 0, "curve" },
        /* a compressed point (0x02) */
        { "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBAqn9tp+mtm4wtSzlTQieLcEz4+98KBIgN6EfycEce7zndGm73uG8rpm4H8Cw8iMzMncDIro58I0cgWGEO1rKSDQ=", 0, "uncompressed" },
        /* a nistp256 point whose Y is off by one bit: not on the curve */
        { "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBKn9tp+mtm4wtSzlTQieLcEz4+98KBIgN6EfycEce7zndGm73uG8rpm4H8Cw8iMzMncDIro58I0cgWGEO1rKSDU=", 0, "not a point on its curve" },
        /* RSA with a length prefix past the end */
        { "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAB", 0, "modulus" },
        /* RSA whose exponent has a needless leading zero */
        { "ssh-rsa AAAAB3NzaC1yc2EAAAAEAAEAAQ==", 0, "exponent" },
};

TEST(bad_lines_are_refused_with_a_reason)
{
        for (size_t i = 0; i < ELEMENTSOF(bad_lines); i++) {
                _cleanup_pc_error_ pc_error *e = NULL;
                pc_sshkey k = {};
                size_t n = bad_lines[i].len ?: strlen(bad_lines[i].line);
                int r = pc_sshkey_parse(bad_lines[i].line, n, &k, &e);

                CHECK(r == -EINVAL);
                CHECK(k.type == NULL);
                if (r != -EINVAL || !e || !strstr(e->message, bad_lines[i].message) || !streq(e->code, "invalid_key")) {
                        printf("#   case %zu (%s): r=%d message=%s\n", i, bad_lines[i].line, r, e ? e->message : "-");
                        tap_failed_checks++;
                }
        }
}

TEST(size_limits)
{
        _cleanup_free_ char *line = malloc(PC_SSHKEY_LINE_MAX + 2);
        _cleanup_pc_error_ pc_error *e = NULL, *e2 = NULL;
        pc_sshkey k = {};
        size_t n;

        /* A comment over the limit, and a line over the limit. */
        n = (size_t) sprintf(line, "ssh-ed25519 %s ", ED);
        memset(line + n, 'c', PC_SSHKEY_COMMENT_MAX + 1);
        CHECK(pc_sshkey_parse(line, n + PC_SSHKEY_COMMENT_MAX + 1, &k, &e) == -EINVAL);
        CHECK(e && strstr(e->message, "comment"));
        CHECK(pc_sshkey_parse(line, n + PC_SSHKEY_COMMENT_MAX, &k, NULL) == 0);
        pc_sshkey_done(&k);
        memset(line + n, 'c', PC_SSHKEY_LINE_MAX + 1 - n);
        CHECK(pc_sshkey_parse(line, PC_SSHKEY_LINE_MAX + 1, &k, &e2) == -EINVAL);
        CHECK(e2 && strstr(e2->message, "longer than"));
}

TAP_MAIN()
