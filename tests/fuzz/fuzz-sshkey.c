/* SPDX-License-Identifier: MIT */
/* libFuzzer target: any bytes as an OpenSSH public key line (common/sshkey.c). Besides memory safety it
 * checks the contract: an accepted key's canonical line parses again to the same key (type, fingerprint,
 * size, comment), and a refused one always comes with an "invalid_key" message. */
#include <stdlib.h>
#include <string.h>

#include "sshkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        pc_error *e = NULL;
        pc_sshkey k = {}, again = {};
        char *line;
        int r = pc_sshkey_parse((const char *) data, size, &k, &e);

        if (r < 0) {
                if (r != -ENOMEM && (!e || !streq(e->code, "invalid_key") || k.type))
                        abort();
                pc_error_free(e);
                return 0;
        }
        if (e || !k.type || !k.base64 || strlen(k.fingerprint) != PC_SSHKEY_FINGERPRINT_LEN - 1)
                abort();
        line = pc_sshkey_line(&k);
        if (!line)
                abort();
        if (pc_sshkey_parse(line, strlen(line), &again, NULL) < 0 || !streq(again.type, k.type) ||
            !streq(again.fingerprint, k.fingerprint) || again.bits != k.bits || !streq_ptr(again.comment, k.comment))
                abort();
        free(line);
        pc_sshkey_done(&k);
        pc_sshkey_done(&again);
        return 0;
}
