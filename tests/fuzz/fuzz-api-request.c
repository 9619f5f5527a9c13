/* SPDX-License-Identifier: MIT */
/* libFuzzer target: any bytes as an API request body, parsed as api/server.c parses it and run through
 * every endpoint's validator (daemon/requests-internal.h). Besides memory safety it checks the contract: a refusal
 * is a 400 with a code and a message, and what is accepted is what api/openapi.yaml allows. */

#include "common.h"
#include "requests-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* r and e agree, a refusal is what the API answers with 400, and what is accepted keeps the contract. */
static void require(int r, const pc_error *e, bool contract)
{
        bool ok = r >= 0 ? !e && contract
                         : r == -ENOMEM ||
                                   (e && e->errnum == EINVAL && !isempty(e->code) && !isempty(e->message));

        if (!ok)
                abort();
}

static bool is_string_array(json_t *a)
{
        size_t i;
        json_t *v;

        if (!json_is_array(a))
                return false;
        json_array_foreach(a, i, v)
                if (!json_is_string(v))
                        return false;
        return true;
}

static void check_sandbox(json_t *req)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        pc_sandbox_request q;
        int r = pc_sandbox_request_parse(req, &q, &e);

        require(r, e,
                r < 0 || (name_is_valid(q.name) && name_is_valid(q.policy) && name_is_valid(q.rootfs) &&
                          pc_net_to_string(q.network) && q.limits.memory_max >= (16u << 20) &&
                          q.limits.memory_max <= INT64_MAX && q.limits.pids_max >= 8 &&
                          q.limits.pids_max <= 1000000 &&
                          q.limits.cpu_quota_us <= 1024 * q.limits.cpu_period_us));
}

static void check_token(json_t *req)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        pc_token_request q;
        int r = pc_token_request_parse(req, &q, &e);

        require(r, e,
                r < 0 || (pc_role_to_string(q.role) && q.role != PC_ROLE_SSH && (q.role == PC_ROLE_AGENT) == !!q.sandbox &&
                          (!q.sandbox || name_is_valid(q.sandbox)) && (!q.label || strlen(q.label) <= 200) &&
                          q.ttl_seconds <= TOKEN_TTL_MAX));
}

static void check_decide(json_t *req)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        const char *command = NULL;
        size_t len = 0;
        int r = pc_decide_request_parse(req, &command, &len, &e);

        /* Without JSON_ALLOW_NUL no string holds a NUL: the policy sees the whole command. */
        require(r, e, r < 0 || (command && strlen(command) == len));
}

static void check_session(json_t *req)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *argv = json_object_get(req, "argv"), *root = json_object_get(req, "root");
        pc_session_request s;
        int r = pc_session_request_parse(req, &s, &e);

        require(r, e, r < 0 || ((!argv || is_string_array(argv)) && (!root || json_is_boolean(root)) &&
                                (s.enter || json_array_size(s.argv) > 0) && (!s.cwd || s.cwd[0] == '/') &&
                                (!s.term || (*s.term && !strpbrk(s.term, "\n\x1b =")))));
}

static void check_image(json_t *req)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        pc_image_request im;
        int r = pc_image_request_parse(req, &im, &e);

        /* What reaches build-image.sh's command line never holds a space, a quote or a shell character. */
        require(r, e, r < 0 || (name_is_valid(im.name) && (!im.mirror || !strpbrk(im.mirror, " \"\\`<>|\n")) &&
                                (!im.suite || !strpbrk(im.suite, " ,;"))));
}

static void check_approve(json_t *req)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        pc_approve_request q;
        int r = pc_approve_request_parse(req, &q, &e);

        /* A signed approval has all three parts or none; remembered scopes always have a lifetime. */
        require(r, e,
                r < 0 || ((!!q.device == !!q.signature && !!q.signature == (q.expires > 0)) &&
                          (streq(q.scope, "once") ? q.minutes == 0
                                                  : q.minutes >= 1 && q.minutes <= PC_APPROVE_MINUTES_MAX)));
}

static void check_deny(json_t *req)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        const char *reason = NULL;
        int r = pc_deny_request_parse(req, &reason, &e);

        require(r, e, r < 0 || !reason || (*reason && strlen(reason) <= PC_DENY_REASON_MAX));
}

static void check_key(json_t *req)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        pc_key_request q = {};
        int r = pc_key_request_parse(req, &q, &e);

        require(r, e,
                r < 0 || (q.key.type && strlen(q.key.fingerprint) == PC_SSHKEY_FINGERPRINT_LEN - 1 &&
                          (!q.sandboxes || (json_array_size(q.sandboxes) >= 1 &&
                                            json_array_size(q.sandboxes) <= PC_KEY_SANDBOXES_MAX))));
        pc_sshkey_done(&q.key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        json_error_t jerr;
        json_t *req = json_loadb((const char *) data, size, PC_JSON_REQUEST_FLAGS, &jerr);

        /* Malformed JSON never reaches a validator (the server answers "malformed_json"). */
        if (!req)
                return 0;
        check_sandbox(req);
        check_token(req);
        check_decide(req);
        check_session(req);
        check_image(req);
        check_approve(req);
        check_deny(req);
        check_key(req);
        json_decref(req);
        return 0;
}
