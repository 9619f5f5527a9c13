/* SPDX-License-Identifier: MIT */
/* Device key files and approval signatures: what a phone does, for 'devices sign' and
 * 'permissions approve --key'. A key file is the base64 of a 32-byte Ed25519 seed on one line, mode 0600. */
#include <fcntl.h>
#include <sys/random.h>

#include "cli.h"
#include "common.h"
#include "crypto.h"

int cli_key_generate(const char *keyfile, uint8_t pub[static 32])
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *line = NULL, *b64 = NULL;
        uint8_t seed[32];
        int r;

        if (getrandom(seed, sizeof(seed), 0) != (ssize_t) sizeof(seed))
                return -errno;
        b64 = pc_base64_encode(seed, sizeof(seed));
        line = b64 ? strjoin(b64, "\n") : NULL;
        if (!line) {
                explicit_bzero(seed, sizeof(seed));
                return -ENOMEM;
        }
        pc_ed25519_public(seed, pub);
        explicit_bzero(seed, sizeof(seed));
        fd = open(keyfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        r = fd < 0 ? -errno : write_all(fd, line, strlen(line));
        explicit_bzero(line, strlen(line));
        explicit_bzero(b64, strlen(b64));
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0 && fd >= 0)
                (void) unlink(keyfile);
        return r;
}

int cli_key_read(const char *keyfile, uint8_t seed[static 32])
{
        _cleanup_free_ char *data = NULL;
        size_t n = 0;
        int r = read_full_file(keyfile, 256, &data, &n);

        if (r < 0)
                return r;
        if (n > 0 && data[n - 1] == '\n')
                data[--n] = 0;
        r = strlen(data) == n ? pc_base64_decode_exact(data, seed, 32) : -EINVAL;
        explicit_bzero(data, n);
        return r;
}

int cli_sign_approval(const char *keyfile, const char *id, const char *command, const char *cwd, const char *scope,
                      unsigned minutes, int64_t expires, char **ret_sig_b64)
{
        _cleanup_free_ char *msg = pc_approval_message(id, command, cwd, scope, minutes, expires);
        uint8_t seed[32], sig[64];
        int r;

        if (!msg)
                return -ENOMEM;
        r = cli_key_read(keyfile, seed);
        if (r < 0)
                return r;
        pc_ed25519_sign(seed, msg, strlen(msg), sig);
        explicit_bzero(seed, sizeof(seed));
        *ret_sig_b64 = pc_base64_encode(sig, sizeof(sig));
        return *ret_sig_b64 ? 0 : -ENOMEM;
}
