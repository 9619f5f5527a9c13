/* SPDX-License-Identifier: MIT */
/* libFuzzer target: any bytes as a POST /v1/sandboxes/{name}/execs body, parsed as api/server.c parses it
 * and checked by the exec engine's parser (daemon/exec-request.c). Besides memory safety it checks the
 * contract: a refusal is a 400 with a code and a message; what is accepted has a command without NUL, a cwd
 * at or below /workspace without "..", bounds kept; and base64 gives back the bytes it was given. */

#include "common.h"
#include "execs-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_base64(const uint8_t *data, size_t size)
{
        _cleanup_free_ char *enc = pc_base64_encode(data, size), *dec = NULL;
        size_t n = 0;

        if (!enc)
                return;
        if (pc_base64_decode(enc, strlen(enc), &dec, &n) < 0 || n != size || memcmp(dec, data, size) != 0)
                abort();
        free(dec);
        dec = NULL;
        /* and any text either decodes or is refused, never read past */
        (void)pc_base64_decode((const char *)data, size, &dec, &n);
}

/* Every component of an accepted cwd is a name: not empty, "." or "..". */
static bool cwd_components_ok(const char *cwd)
{
        _cleanup_free_ char *c = strdup(cwd);
        char *save = NULL;

        if (!c)
                return true;
        for (char *w = strtok_r(c, "/", &save); w; w = strtok_r(NULL, "/", &save))
                if (streq(w, ".") || streq(w, ".."))
                        return false;
        return !strstr(cwd, "//") && cwd[strlen(cwd) - 1] != '/';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_json_ json_t *req = json_loadb((const char *)data, size, PC_JSON_REQUEST_FLAGS, NULL);
        _cleanup_pc_error_ pc_error *e = NULL;
        pc_exec_request q;
        int r;

        check_base64(data, size);
        if (!req)
                return 0;
        r = pc_exec_request_parse(req, &q, &e);
        if (r < 0) {
                if (r != -ENOMEM && !(e && e->errnum == EINVAL && !isempty(e->code) && !isempty(e->message)))
                        abort();
                return 0;
        }
        if (e || !q.cmd || !*q.cmd || strlen(q.cmd) > PC_EXEC_COMMAND_MAX ||
            !startswith(q.cwd, "/workspace") || !cwd_components_ok(q.cwd) ||
            (q.cwd[10] != 0 && q.cwd[10] != '/') || q.timeout < 1 || q.timeout > PC_EXEC_TIMEOUT_MAX ||
            q.wait > PC_EXEC_WAIT_MAX || (q.stdin_len > 0 && !q.stdin_data) ||
            (q.env && !json_is_object(q.env)))
                abort();
        pc_exec_request_done(&q);
        return 0;
}
