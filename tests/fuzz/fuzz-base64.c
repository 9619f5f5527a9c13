/* SPDX-License-Identifier: MIT */
/* libFuzzer target: any bytes as the base64 of a device's public key (32 bytes) or of a signature (64) and
 * of any other length, as POST /v1/devices and an approval's "signature" decode them. Besides memory
 * safety it checks the contract: what is accepted is exactly the canonical encoding (re-encoding gives the
 * input back), and a refusal leaves the output untouched. */
#include <assert.h>

#include "common.h"
#include "crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_free_ char *s = malloc(size + 1);
        uint8_t out[96];

        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = 0; /* a NUL inside ends the string, as in a JSON string value it cannot */
        for (size_t n = 0; n <= sizeof(out); n++) {
                memset(out, 0xa5, sizeof(out));
                int r = pc_base64_decode_exact(s, out, n);
                if (r < 0) {
                        assert(r == -EINVAL);
                        for (size_t i = 0; i < sizeof(out); i++)
                                assert(out[i] == 0xa5);
                        continue;
                }
                _cleanup_free_ char *again = pc_base64_encode(out, n);
                assert(again && streq(again, s));
                for (size_t i = n; i < sizeof(out); i++)
                        assert(out[i] == 0xa5);
        }
        return 0;
}
