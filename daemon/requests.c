/* SPDX-License-Identifier: MIT */
/* Request bodies and the names they use (roles, network modes): pure functions of jansson values, so the
 * API refuses bad input before anything is touched, and tests/fuzz/fuzz-api-request.c runs them alone. */
#include <math.h>

#include "common.h"
#include "requests-internal.h"

static const char *const role_names[_PC_ROLE_MAX] = {
        [PC_ROLE_ADMIN] = "admin",
        [PC_ROLE_RELAY] = "relay",
        [PC_ROLE_AGENT] = "agent",
        [PC_ROLE_SSH] = "ssh",
};

const char *pc_role_to_string(pc_role r)
{
        return r >= 0 && r < _PC_ROLE_MAX ? role_names[r] : NULL;
}

pc_role pc_role_from_string(const char *s)
{
        for (int i = 0; s && i < _PC_ROLE_MAX; i++)
                if (streq(s, role_names[i]))
                        return (pc_role) i;
        return PC_ROLE_INVALID;
}

static const char *const net_names[] = {
        [ISOLATE_NET_NONE] = "none",
        [ISOLATE_NET_LOOPBACK] = "loopback",
        [ISOLATE_NET_EGRESS] = "egress",
};

const char *pc_net_to_string(isolate_net_mode m)
{
        return (size_t) m < ELEMENTSOF(net_names) ? net_names[m] : NULL;
}

int pc_net_from_string(const char *s)
{
        for (size_t i = 0; s && i < ELEMENTSOF(net_names); i++)
                if (streq(s, net_names[i]))
                        return (int) i;
        return -EINVAL;
}

int pc_json_check_fields(json_t *obj, const char *const *allowed, pc_error **reterr)
{
        const char *key;
        json_t *value;

        if (!json_is_object(obj))
                return pc_error_setf(reterr, EINVAL, "invalid_body", "request body must be a JSON object");
        json_object_foreach(obj, key, value) {
                bool ok = false;

                for (const char *const *a = allowed; *a && !ok; a++)
                        ok = streq(*a, key);
                if (!ok) {
                        _cleanup_free_ char *expected = NULL;
                        size_t n = 0;

                        for (const char *const *a = allowed; *a; a++)
                                n += strlen(*a) + 2;
                        expected = calloc(1, n + 1);
                        if (!expected)
                                return -ENOMEM;
                        for (const char *const *a = allowed; *a; a++) {
                                if (a != allowed)
                                        strcat(expected, ", ");
                                strcat(expected, *a);
                        }
                        return pc_error_setf(reterr, EINVAL, "unknown_field",
                                             "unknown field \"%s\" in request body (expected %s)", key,
                                             expected);
                }
        }
        return 0;
}

static int parse_limits(json_t *req, isolate_limits *l, pc_error **reterr)
{
        json_t *v;
        uint64_t u;

        *l = (isolate_limits){ .memory_max = 1ULL << 30, .swap_max = 0, .pids_max = 512, .cpu_period_us = 100000 };
        v = json_object_get(req, "memory");
        if (v) {
                if (json_is_integer(v) && json_integer_value(v) > 0)
                        u = (uint64_t) json_integer_value(v);
                else if (!json_is_string(v) || parse_size(json_string_value(v), &u) < 0)
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"memory\" must be a size such as \"512M\" or \"2G\" (or bytes)");
                if (u < (16ULL << 20))
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"memory\" must be at least 16M: tmux and a shell need room");
                /* Stored as a signed 64-bit integer (sqlite, JSON): larger would come back negative. */
                if (u > INT64_MAX)
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"memory\" must be less than 8388608T (2^63 bytes)");
                l->memory_max = u;
        }
        v = json_object_get(req, "pids");
        if (v) {
                if (!json_is_integer(v) || json_integer_value(v) < 8 || json_integer_value(v) > 1000000)
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"pids\" must be an integer from 8 to 1000000");
                l->pids_max = (uint64_t) json_integer_value(v);
        }
        v = json_object_get(req, "cpus");
        if (v) {
                double c = json_number_value(v);
                if (!json_is_number(v) || !(c >= 0.01 && c <= 1024))
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"cpus\" must be a number of CPUs from 0.01 to 1024, e.g. 1.5");
                l->cpu_quota_us = (uint64_t) llround(c * (double) l->cpu_period_us);
        }
        return 0;
}

/* "disk": a size (string or bytes), 0 or "none" for no limit; "inodes": a number of files. Absent fields
 * keep the daemon's defaults (has_disk/has_inodes false). */
static int parse_disk(json_t *req, pc_sandbox_request *s, pc_error **reterr)
{
        json_t *v = json_object_get(req, "disk");
        uint64_t u;

        if (v) {
                if (json_is_integer(v) && json_integer_value(v) >= 0)
                        u = (uint64_t) json_integer_value(v);
                else if (json_is_string(v) && streq(json_string_value(v), "none"))
                        u = 0;
                else if (!json_is_string(v) || parse_size(json_string_value(v), &u) < 0)
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"disk\" must be a size such as \"10G\" (or bytes), or \"none\"");
                if ((u != 0 && u < ISOLATE_DISK_MIN) || u > INT64_MAX)
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"disk\" must be at least 16M and less than 2^63 bytes");
                s->has_disk = true;
                s->disk_max = u;
        }
        v = json_object_get(req, "inodes");
        if (v) {
                if (!json_is_integer(v) || json_integer_value(v) < 16 || json_integer_value(v) > UINT32_MAX)
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"inodes\" must be a number of files from 16 to 4294967295");
                s->has_inodes = true;
                s->inodes_max = (uint64_t) json_integer_value(v);
        }
        return 0;
}

/* A string field that may be left out for its default; NULL when it is there but not a string. */
static const char *string_or(json_t *req, const char *field, const char *def)
{
        json_t *v = json_object_get(req, field);

        return v ? json_string_value(v) : def;
}

int pc_sandbox_request_parse(json_t *req, pc_sandbox_request *ret, pc_error **reterr)
{
        static const char *const fields[] = { "name", "policy", "memory", "pids", "cpus", "network", "rootfs", "disk", "inodes", NULL };
        pc_sandbox_request s = {};
        int r;

        r = pc_json_check_fields(req, fields, reterr);
        if (r < 0)
                return r;
        s.name = json_string_value(json_object_get(req, "name"));
        if (!s.name || !name_is_valid(s.name))
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "field \"name\" must be a sandbox name: 1-63 lowercase letters, digits and "
                                     "'-', not starting or ending with '-'");
        s.policy = string_or(req, "policy", "default");
        s.rootfs = string_or(req, "rootfs", "host");
        if (!s.policy || !name_is_valid(s.policy))
                return pc_error_setf(reterr, EINVAL, "invalid_field", "field \"policy\" must be a policy name");
        r = pc_net_from_string(string_or(req, "network", "none"));
        if (r < 0)
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "field \"network\" must be none, loopback or egress");
        s.network = (isolate_net_mode) r;
        if (!s.rootfs || !name_is_valid(s.rootfs))
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "field \"rootfs\" must be \"host\" or the name of a built image");
        r = parse_limits(req, &s.limits, reterr);
        if (r < 0)
                return r;
        r = parse_disk(req, &s, reterr);
        if (r < 0)
                return r;
        *ret = s;
        return 0;
}

int pc_token_request_parse(json_t *req, pc_token_request *ret, pc_error **reterr)
{
        static const char *const fields[] = { "role", "sandbox", "label", "ttl_seconds", NULL };
        pc_token_request t = {};
        json_t *v;
        int r;

        r = pc_json_check_fields(req, fields, reterr);
        if (r < 0)
                return r;
        t.role = pc_role_from_string(json_string_value(json_object_get(req, "role")));
        /* ssh is the gateway socket's, never a token's. */
        if (t.role < 0 || t.role == PC_ROLE_SSH)
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "field \"role\" must be one of admin, relay, agent");
        v = json_object_get(req, "sandbox");
        if (v && !json_is_null(v)) {
                t.sandbox = json_string_value(v);
                if (!t.sandbox || !name_is_valid(t.sandbox))
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"sandbox\" must be a sandbox name (lowercase letters, "
                                             "digits and '-', at most 63 characters)");
        }
        if (t.role == PC_ROLE_AGENT && !t.sandbox)
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "an agent token is scoped to one sandbox: give \"sandbox\"");
        if (t.role != PC_ROLE_AGENT && t.sandbox)
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "only agent tokens take \"sandbox\"; %s tokens are not scoped",
                                     pc_role_to_string(t.role));
        v = json_object_get(req, "label");
        if (v && !json_is_null(v)) {
                t.label = json_string_value(v);
                if (!t.label || strlen(t.label) > 200)
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"label\" must be a string of at most 200 bytes");
        }
        v = json_object_get(req, "ttl_seconds");
        if (v && !json_is_null(v)) {
                if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > TOKEN_TTL_MAX)
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"ttl_seconds\" must be a whole number of seconds from 1 to %d",
                                             TOKEN_TTL_MAX);
                t.ttl_seconds = (uint64_t) json_integer_value(v);
        }
        *ret = t;
        return 0;
}

int pc_decide_request_parse(json_t *req, const char **ret_command, size_t *ret_len, pc_error **reterr)
{
        static const char *const fields[] = { "command", NULL };
        json_t *v;
        int r;

        r = pc_json_check_fields(req, fields, reterr);
        if (r < 0)
                return r;
        v = json_object_get(req, "command");
        if (!json_is_string(v))
                return pc_error_setf(reterr, EINVAL, "invalid_field", "field \"command\" must be a string");
        *ret_command = json_string_value(v);
        *ret_len = json_string_length(v);
        return 0;
}

/* A small whole number in [lo, hi] or absent (0). */
static int session_uint(json_t *req, const char *key, unsigned lo, unsigned hi, unsigned *ret, pc_error **reterr)
{
        json_t *v = json_object_get(req, key);

        *ret = 0;
        if (!v)
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
                return pc_error_setf(reterr, EINVAL, "invalid_field", "field \"%s\" must be an integer from %u to %u",
                                     key, lo, hi);
        *ret = (unsigned) json_integer_value(v);
        return 0;
}

int pc_session_request_parse(json_t *req, pc_session_request *ret, pc_error **reterr)
{
        static const char *const fields[] = { "kind", "argv", "root", "tty", "cwd", "term", "rows", "cols", NULL };
        pc_session_request s = {};
        const char *kind;
        json_t *v;
        bool strings;
        size_t i;
        int r;

        r = pc_json_check_fields(req, fields, reterr);
        if (r < 0)
                return r;
        kind = json_string_value(json_object_get(req, "kind"));
        if (!kind || !(streq(kind, "enter") || streq(kind, "run")))
                return pc_error_setf(reterr, EINVAL, "invalid_field", "field \"kind\" must be enter or run");
        s.enter = streq(kind, "enter");
        s.argv = json_object_get(req, "argv");
        strings = !s.argv || json_is_array(s.argv);
        json_array_foreach(s.argv, i, v)
                strings = strings && json_is_string(v);
        if (!strings)
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "field \"argv\" must be an array of strings");
        if (!s.enter && json_array_size(s.argv) == 0)
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "field \"argv\" must name the command to run");
        if (json_array_size(s.argv) > 4096)
                return pc_error_setf(reterr, E2BIG, "invalid_field", "field \"argv\" has too many words");
        for (const char *const *k = (const char *const[]){ "root", "tty", NULL }; *k; k++) {
                v = json_object_get(req, *k);
                if (v && !json_is_boolean(v))
                        return pc_error_setf(reterr, EINVAL, "invalid_field", "field \"%s\" must be true or false",
                                             *k);
        }
        s.as_root = json_is_true(json_object_get(req, "root"));
        v = json_object_get(req, "tty");
        s.tty = v ? json_is_true(v) : s.enter;
        s.cwd = json_string_value(json_object_get(req, "cwd"));
        if (json_object_get(req, "cwd") && (!s.cwd || s.cwd[0] != '/' || strlen(s.cwd) >= 4096))
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "field \"cwd\" must be an absolute path inside the sandbox");
        s.term = json_string_value(json_object_get(req, "term"));
        if (json_object_get(req, "term")) {
                /* It becomes an environment variable: a terminal type's name, nothing else. */
                bool ok = s.term && *s.term && strlen(s.term) < 64;
                for (const char *c = s.term; ok && *c; c++)
                        ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                             strchr("-_.+", *c);
                if (!ok)
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"term\" must be a terminal type such as xterm-256color");
        }
        r = session_uint(req, "rows", 1, 10000, &s.rows, reterr);
        if (r < 0)
                return r;
        r = session_uint(req, "cols", 1, 10000, &s.cols, reterr);
        if (r < 0)
                return r;
        *ret = s;
        return 0;
}

/* Every byte of s is in `set` or an ASCII alphanumeric of the allowed case; length in [min, max]. */
static bool word_ok(const char *s, size_t min, size_t max, bool upper, const char *set)
{
        size_t n = s ? strlen(s) : 0;

        if (n < min || n > max)
                return false;
        for (const char *c = s; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || (upper && *c >= 'A' && *c <= 'Z') ||
                      strchr(set, *c)))
                        return false;
        return true;
}

/* A Debian package name (policy 5.6.1), optionally with =version or /release: what build-image.sh takes. */
static bool package_ok(const char *p)
{
        size_t n = strcspn(p, "=/");

        if (n < 2 || !((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= '0' && p[0] <= '9')))
                return false;
        char name[128];
        if (n >= sizeof(name))
                return false;
        memcpy(name, p, n);
        name[n] = 0;
        return word_ok(name, 2, 127, false, "+.-") && (!p[n] || word_ok(p + n + 1, 1, 127, true, ".+~:-"));
}

int pc_image_request_parse(json_t *req, pc_image_request *ret, pc_error **reterr)
{
        static const char *const fields[] = { "name", "suite", "packages", "mirror", "variant", NULL };
        pc_image_request im = {};
        json_t *v;
        size_t i;
        int r;

        r = pc_json_check_fields(req, fields, reterr);
        if (r < 0)
                return r;
        im.name = json_string_value(json_object_get(req, "name"));
        if (!im.name || !name_is_valid(im.name) || streq(im.name, "host"))
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "field \"name\" must be an image name (lowercase letters, digits and '-', "
                                     "at most 63 characters; \"host\" is reserved)");
        for (const char *const *k = (const char *const[]){ "suite", "mirror", "variant", NULL }; *k; k++) {
                v = json_object_get(req, *k);
                if (v && !json_is_string(v))
                        return pc_error_setf(reterr, EINVAL, "invalid_field", "field \"%s\" must be a string", *k);
        }
        im.suite = json_string_value(json_object_get(req, "suite"));
        if (im.suite && (!word_ok(im.suite, 1, 32, false, ".-") || !(im.suite[0] >= 'a' && im.suite[0] <= 'z')))
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "field \"suite\" must be a Debian suite such as bookworm or trixie");
        im.variant = json_string_value(json_object_get(req, "variant"));
        if (im.variant && !(streq(im.variant, "minbase") || streq(im.variant, "buildd") || streq(im.variant, "default")))
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "field \"variant\" must be minbase, buildd or default");
        im.mirror = json_string_value(json_object_get(req, "mirror"));
        if (im.mirror && (!(startswith(im.mirror, "http://") || startswith(im.mirror, "https://")) ||
                          !word_ok(im.mirror, 8, 1024, true, ":/.-_~%?&=+@[]!$'()*,;")))
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "field \"mirror\" must be an http:// or https:// URL");
        im.packages = json_object_get(req, "packages");
        if (im.packages && (!json_is_array(im.packages) || json_array_size(im.packages) > 256))
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "field \"packages\" must be an array of at most 256 package names");
        json_array_foreach(im.packages, i, v)
                if (!json_is_string(v) || !package_ok(json_string_value(v)))
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"packages\": \"%s\" is not a Debian package name",
                                             json_is_string(v) ? json_string_value(v) : "(not a string)");
        *ret = im;
        return 0;
}

int pc_approve_request_parse(json_t *req, pc_approve_request *ret, pc_error **reterr)
{
        static const char *const fields[] = { "scope", "minutes", "device", "signature", "expires", NULL };
        pc_approve_request q = { .scope = "once" };
        json_t *v;
        int n_signed = 0;
        int r;

        r = pc_json_check_fields(req, fields, reterr);
        if (r < 0)
                return r;
        v = json_object_get(req, "scope");
        if (v) {
                q.scope = json_string_value(v);
                if (!q.scope || !(streq(q.scope, "once") || streq(q.scope, "exact") || streq(q.scope, "prefix")))
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"scope\" must be once, exact or prefix");
        }
        v = json_object_get(req, "minutes");
        if (streq(q.scope, "once")) {
                if (v && !(json_is_integer(v) && json_integer_value(v) == 0))
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"minutes\" applies to scope exact or prefix only");
        } else {
                q.minutes = PC_APPROVE_MINUTES_DEFAULT;
                if (v && (!json_is_integer(v) || json_integer_value(v) < 1 ||
                          json_integer_value(v) > PC_APPROVE_MINUTES_MAX))
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"minutes\" must be an integer from 1 to %u",
                                             PC_APPROVE_MINUTES_MAX);
                if (v)
                        q.minutes = (unsigned) json_integer_value(v);
        }
        v = json_object_get(req, "device");
        if (v) {
                q.device = json_string_value(v);
                if (!q.device || !*q.device || strlen(q.device) > 64)
                        return pc_error_setf(reterr, EINVAL, "invalid_field", "field \"device\" must be a device id");
                n_signed++;
        }
        v = json_object_get(req, "signature");
        if (v) {
                q.signature = json_string_value(v);
                if (!q.signature || !*q.signature || strlen(q.signature) > 256)
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"signature\" must be the base64 Ed25519 signature");
                n_signed++;
        }
        v = json_object_get(req, "expires");
        if (v) {
                if (!json_is_integer(v) || json_integer_value(v) <= 0)
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"expires\" must be the signature's expiry in unix seconds");
                q.expires = json_integer_value(v);
                n_signed++;
        }
        if (n_signed != 0 && n_signed != 3)
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "a signed approval needs all of \"device\", \"signature\" and \"expires\"");
        *ret = q;
        return 0;
}

int pc_deny_request_parse(json_t *req, const char **ret_reason, pc_error **reterr)
{
        static const char *const fields[] = { "reason", NULL };
        json_t *v;
        int r;

        r = pc_json_check_fields(req, fields, reterr);
        if (r < 0)
                return r;
        v = json_object_get(req, "reason");
        *ret_reason = NULL;
        if (!v)
                return 0;
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > PC_DENY_REASON_MAX ||
            memchr(json_string_value(v), 0, json_string_length(v)))
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "field \"reason\" must be a text of 1 to %u bytes", PC_DENY_REASON_MAX);
        *ret_reason = json_string_value(v);
        return 0;
}

int pc_key_request_parse(json_t *req, pc_key_request *ret, pc_error **reterr)
{
        static const char *const fields[] = { "key", "sandboxes", NULL };
        json_t *key, *sandboxes, *v;
        size_t i;
        int r;

        r = pc_json_check_fields(req, fields, reterr);
        if (r < 0)
                return r;
        key = json_object_get(req, "key");
        if (!json_is_string(key))
                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                     "field \"key\" must be a string: one OpenSSH public key line such as the "
                                     "contents of ~/.ssh/id_ed25519.pub");
        sandboxes = json_object_get(req, "sandboxes");
        if (sandboxes && !json_is_null(sandboxes)) {
                if (!json_is_array(sandboxes) || json_array_size(sandboxes) == 0 ||
                    json_array_size(sandboxes) > PC_KEY_SANDBOXES_MAX)
                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                             "field \"sandboxes\" must be a list of 1 to %u sandbox names (leave "
                                             "it out for a key that reaches every sandbox)",
                                             PC_KEY_SANDBOXES_MAX);
                json_array_foreach(sandboxes, i, v) {
                        if (!json_is_string(v) || !name_is_valid(json_string_value(v)))
                                return pc_error_setf(reterr, EINVAL, "invalid_field",
                                                     "field \"sandboxes\": entry %zu is not a sandbox name", i);
                        for (size_t k = 0; k < i; k++)
                                if (json_equal(v, json_array_get(sandboxes, k)))
                                        return pc_error_setf(reterr, EINVAL, "invalid_field",
                                                             "field \"sandboxes\" names \"%s\" twice",
                                                             json_string_value(v));
                }
        } else
                sandboxes = NULL;
        r = pc_sshkey_parse(json_string_value(key), json_string_length(key), &ret->key, reterr);
        if (r < 0)
                return r;
        ret->sandboxes = sandboxes;
        return 0;
}
