/* SPDX-License-Identifier: MIT */
/* The exec request's parser (execs-internal.h): no state, so that the fuzz target
 * (tests/fuzz/fuzz-exec-request.c) runs it alone. */
#include "execs-internal.h"
#include "crypto.h"
#include "isolate.h"


static bool env_name_is_valid(const char *k)
{
        if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
                return false;
        for (k++; *k; k++)
                if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') ||
                      *k == '_'))
                        return false;
        return true;
}

/* /workspace or below it, absolute, without "." or ".." components or empty ones ("//", a trailing '/'). */
static bool cwd_is_valid(const char *s, size_t len)
{
        if (len >= PC_EXEC_CWD_MAX || strlen(s) != len || !startswith(s, ISOLATE_WORKSPACE))
                return false;
        s += STRLEN(ISOLATE_WORKSPACE);
        if (*s == 0)
                return true;
        while (*s == '/') {
                const char *e = strchrnul(s + 1, '/');
                size_t n = (size_t)(e - s - 1);

                if (n == 0 || (n == 1 && s[1] == '.') || (n == 2 && s[1] == '.' && s[2] == '.'))
                        return false;
                s = e;
        }
        return *s == 0;
}

static int uint_field(json_t *req, const char *key, unsigned min, unsigned max, unsigned def, unsigned *ret,
                      pc_error **reterr)
{
        json_t *v = json_object_get(req, key);

        if (!v) {
                *ret = def;
                return 0;
        }
        if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
                return pc_error_setf(reterr, EINVAL, "invalid_request",
                                     "\"%s\" must be a whole number from %u to %u", key, min, max);
        *ret = (unsigned)json_integer_value(v);
        return 0;
}

void pc_exec_request_done(pc_exec_request *q)
{
        free(q->stdin_data);
        *q = (pc_exec_request){};
}

int pc_exec_request_parse(json_t *req, pc_exec_request *ret, pc_error **reterr)
{
        static const char *const fields[] = {"cmd",        "cwd",     "env",  "stdin", "stdin_base64",
                                             "stdin_open", "timeout", "wait", NULL};
        _cleanup_(pc_exec_request_done) pc_exec_request q = {};
        json_t *v, *in, *in64;
        size_t env_bytes = 0;
        const char *k;
        int r;

        if (!json_is_object(req))
                return pc_error_setf(reterr, EINVAL, "invalid_body",
                                     "request body must be a JSON object such as {\"cmd\":\"ls -la\"}");
        r = pc_json_check_fields(req, fields, reterr);
        if (r < 0)
                return r;
        v = json_object_get(req, "cmd");
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > PC_EXEC_COMMAND_MAX ||
            strlen(json_string_value(v)) != json_string_length(v))
                return pc_error_setf(reterr, EINVAL, "invalid_request",
                                     "\"cmd\" must be a non-empty string of at most %u bytes without NUL",
                                     PC_EXEC_COMMAND_MAX);
        q.cmd = json_string_value(v);
        v = json_object_get(req, "cwd");
        q.cwd = ISOLATE_WORKSPACE;
        if (v) {
                if (!json_is_string(v) || !cwd_is_valid(json_string_value(v), json_string_length(v)))
                        return pc_error_setf(
                                reterr, EINVAL, "invalid_request",
                                "\"cwd\" must be %s or a directory below it, without \".\", \"..\" "
                                "or empty components",
                                ISOLATE_WORKSPACE);
                q.cwd = json_string_value(v);
        }
        v = json_object_get(req, "env");
        if (v) {
                if (!json_is_object(v) || json_object_size(v) > PC_EXEC_ENV_MAX)
                        return pc_error_setf(reterr, EINVAL, "invalid_request",
                                             "\"env\" must be an object of at most %u variables",
                                             PC_EXEC_ENV_MAX);
                json_object_foreach(v, k, in)
                {
                        if (!env_name_is_valid(k))
                                return pc_error_setf(
                                        reterr, EINVAL, "invalid_request",
                                        "\"env\": \"%s\" is not a variable name ([A-Za-z_][A-Za-z0-9_]*)",
                                        k);
                        if (!json_is_string(in) || strlen(json_string_value(in)) != json_string_length(in))
                                return pc_error_setf(reterr, EINVAL, "invalid_request",
                                                     "\"env\": the value of %s must be a string without NUL",
                                                     k);
                        env_bytes += strlen(k) + json_string_length(in) + 2;
                }
                if (env_bytes > PC_EXEC_ENV_BYTES_MAX)
                        return pc_error_setf(reterr, EINVAL, "invalid_request",
                                             "\"env\" is larger than %u bytes in all",
                                             PC_EXEC_ENV_BYTES_MAX);
                q.env = v;
        }
        in = json_object_get(req, "stdin");
        in64 = json_object_get(req, "stdin_base64");
        if (in && in64)
                return pc_error_setf(reterr, EINVAL, "invalid_request", "%s",
                                     "give \"stdin\" or \"stdin_base64\", not both");
        if (in) {
                if (!json_is_string(in))
                        return pc_error_setf(reterr, EINVAL, "invalid_request", "%s",
                                             "\"stdin\" must be a string");
                q.stdin_data = malloc(json_string_length(in) + 1);
                if (!q.stdin_data)
                        return -ENOMEM;
                memcpy(q.stdin_data, json_string_value(in), json_string_length(in) + 1);
                q.stdin_len = json_string_length(in);
        } else if (in64) {
                if (!json_is_string(in64) ||
                    pc_base64_decode(json_string_value(in64), json_string_length(in64), &q.stdin_data,
                                     &q.stdin_len) < 0)
                        return pc_error_setf(reterr, EINVAL, "invalid_request", "%s",
                                             "\"stdin_base64\" must be a base64 string (RFC 4648, padded)");
        }
        v = json_object_get(req, "stdin_open");
        if (v && !json_is_boolean(v))
                return pc_error_setf(reterr, EINVAL, "invalid_request", "%s",
                                     "\"stdin_open\" must be true or false");
        q.stdin_open = json_is_true(v);
        r = uint_field(req, "timeout", 1, PC_EXEC_TIMEOUT_MAX, PC_EXEC_TIMEOUT_DEFAULT, &q.timeout, reterr);
        if (r < 0)
                return r;
        r = uint_field(req, "wait", 0, PC_EXEC_WAIT_MAX, PC_EXEC_WAIT_DEFAULT, &q.wait, reterr);
        if (r < 0)
                return r;
        *ret = q;
        q = (pc_exec_request){};
        return 0;
}
