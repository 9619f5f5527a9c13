/* SPDX-License-Identifier: MIT */
/* /v1/ssh/: the SSH login's gateway, on the ssh_socket only (role ssh). sshd's AuthorizedKeysCommand
 * asks whether a key is registered (authorize); the ForceCommand helper then asks for a session in a
 * sandbox for the key sshd authenticated (sessions): the key's scope is checked and the session is the one
 * `pocketcoder enter` gets (a pty allocated inside the sandbox, attached to its tmux session, audited with
 * the key as actor). See docs/ssh.md for the threat model. */
#include "api-internal.h"

/* {"key": "TYPE BASE64", ...}: the key, or a 400 already sent (NULL). */
static const char *body_key(api_request *rq)
{
        const char *key = json_string_value(json_object_get(rq->json, "key"));

        if (!json_is_object(rq->json) || !key) {
                api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_body",
                                "request body must be a JSON object such as {\"key\":\"ssh-ed25519 AAAA...\"}");
                return NULL;
        }
        return key;
}

int api_post_ssh_authorize(api_request *rq)
{
        static const char *const fields[] = { "key", NULL };
        _cleanup_pc_error_ pc_error *e = NULL;
        json_t *j = NULL;
        const char *key = body_key(rq);
        int r;

        if (!key)
                return rq->replied ? MHD_YES : MHD_NO;
        r = pc_json_check_fields(rq->json, fields, &e);
        if (r >= 0)
                r = pc_keys_ssh_check(rq->daemon, key, NULL, &j, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        return api_reply_json(rq, MHD_HTTP_OK, j);
}

int api_post_ssh_session(api_request *rq)
{
        static const char *const fields[] = { "key", "sandbox", "term", "rows", "cols", "tty", NULL };
        _cleanup_pc_error_ pc_error *e = NULL;
        _cleanup_(json_decrefp) json_t *k = NULL, *req = NULL;
        pc_session *s = NULL;
        const char *key = body_key(rq), *sandbox;
        pc_principal who;
        int r;

        if (!key)
                return rq->replied ? MHD_YES : MHD_NO;
        r = pc_json_check_fields(rq->json, fields, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        sandbox = json_string_value(json_object_get(rq->json, "sandbox"));
        if (!sandbox)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_field",
                                       "field \"sandbox\" must be the name of the sandbox to enter");
        r = pc_keys_ssh_check(rq->daemon, key, sandbox, &k, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);

        /* The session `pocketcoder enter` asks for: the sandbox's tmux session on a pty, with the client's
         * terminal type and size (checked by the session's own parser), always on a pty. */
        req = json_deep_copy(rq->json);
        if (!req || json_object_del(req, "key") < 0 || json_object_del(req, "sandbox") < 0 ||
            json_object_set_new(req, "kind", json_string("enter")) < 0 ||
            json_object_set_new(req, "tty", json_true()) < 0)
                return MHD_NO;
        who = rq->principal;
        snprintf(who.ssh_key, sizeof(who.ssh_key), "%s", json_string_value(json_object_get(k, "id")));
        r = pc_session_new(rq->daemon, &who, sandbox, req, &s, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        return api_session_upgrade(rq, s);
}
