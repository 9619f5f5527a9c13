/* SPDX-License-Identifier: MIT */
/* Signed approvals against a store of its own: pc_devices_verify_approval() accepts exactly a registered,
 * present device's signature over the request as signed, before its expiry; and the audit chain stays whole
 * when a transaction that wrote audit rows rolls back. */
#include <time.h>

#include "daemon-internal.h"
#include "tap.h"

typedef struct fixture {
        char dir[32];
        pc_daemon d;
} fixture;

static void fixture_open(fixture *f)
{
        _cleanup_free_ char *db = NULL;

        snprintf(f->dir, sizeof(f->dir), "/tmp/pc-test-dev-XXXXXX");
        CHECK(mkdtemp(f->dir));
        db = strjoin(f->dir, "/state.db");
        pc_config_init(&f->d.config);
        CHECK(pc_store_open(&f->d.store, db, NULL) == 0);
}

static void fixture_close(fixture *f)
{
        _cleanup_free_ char *rm = strjoin("rm -rf ", f->dir);

        pc_store_close(&f->d.store);
        pc_config_done(&f->d.config);
        CHECK(system(rm) == 0);
}

static char *device_add(fixture *f, const uint8_t seed[32])
{
        pc_principal admin = { .role = PC_ROLE_ADMIN, .local_peer = true };
        _cleanup_free_ char *b64 = NULL;
        _cleanup_json_ json_t *req = NULL, *dev = NULL;
        uint8_t pub[32];

        pc_ed25519_public(seed, pub);
        b64 = pc_base64_encode(pub, sizeof(pub));
        req = json_pack("{s:s, s:s}", "name", "phone", "public_key", b64);
        if (pc_devices_add(&f->d, &admin, req, &dev, NULL) < 0)
                return NULL;
        return strdup(json_string_value(json_object_get(dev, "id")));
}

static char *sign(const uint8_t seed[32], const char *id, const char *cmd, const char *cwd, const char *scope,
                  unsigned minutes, int64_t expires)
{
        _cleanup_free_ char *msg = pc_approval_message(id, cmd, cwd, scope, minutes, expires);
        uint8_t sig[64];

        pc_ed25519_sign(seed, msg, strlen(msg), sig);
        return pc_base64_encode(sig, sizeof(sig));
}

static const char *verify(fixture *f, const char *dev, const char *sig, const char *id, const char *cmd,
                          const char *scope, unsigned minutes, int64_t expires)
{
        static char code[64];
        pc_error *e = NULL;
        int r = pc_devices_verify_approval(&f->d, dev, sig, id, cmd, "/workspace", scope, minutes, expires, &e);

        snprintf(code, sizeof(code), "%s", r == 0 ? "ok" : e && r == -EPERM ? e->code : "other error");
        pc_error_free(e);
        return code;
}

TEST(signed_approvals)
{
        static const uint8_t seed[32] = { 1, 2, 3 }, other[32] = { 9, 9, 9 };
        fixture f = {};
        int64_t exp = (int64_t) time(NULL) + 300;

        fixture_open(&f);
        _cleanup_free_ char *dev = device_add(&f, seed);
        _cleanup_free_ char *good = sign(seed, "req1", "make test", "/workspace", "exact", 15, exp);
        _cleanup_free_ char *forged = sign(other, "req1", "make test", "/workspace", "exact", 15, exp);
        _cleanup_free_ char *old = sign(seed, "req1", "make test", "/workspace", "exact", 15, time(NULL) - 1);

        CHECK(dev);
        CHECK_STREQ(verify(&f, dev, good, "req1", "make test", "exact", 15, exp), "ok");
        /* Anything signed differs from what is approved: refused. A replay onto another request too. */
        CHECK_STREQ(verify(&f, dev, good, "req2", "make test", "exact", 15, exp), "bad_signature");
        CHECK_STREQ(verify(&f, dev, good, "req1", "make test; rm -rf /", "exact", 15, exp), "bad_signature");
        CHECK_STREQ(verify(&f, dev, good, "req1", "make test", "prefix", 15, exp), "bad_signature");
        CHECK_STREQ(verify(&f, dev, good, "req1", "make test", "exact", 16, exp), "bad_signature");
        CHECK_STREQ(verify(&f, dev, good, "req1", "make test", "exact", 15, exp + 1), "bad_signature");
        CHECK_STREQ(verify(&f, dev, forged, "req1", "make test", "exact", 15, exp), "bad_signature");
        CHECK_STREQ(verify(&f, dev, "AAAA", "req1", "make test", "exact", 15, exp), "bad_signature");
        CHECK_STREQ(verify(&f, dev, NULL, "req1", "make test", "exact", 15, exp), "signature_required");
        CHECK_STREQ(verify(&f, "0000000000000000", good, "req1", "make test", "exact", 15, exp), "unknown_device");
        CHECK_STREQ(verify(&f, dev, old, "req1", "make test", "exact", 15, time(NULL) - 1), "signature_expired");
        /* A removed device's signatures stop working. */
        CHECK(pc_devices_remove(&f.d, &(pc_principal){ .role = PC_ROLE_ADMIN }, dev, NULL) == 0);
        CHECK_STREQ(verify(&f, dev, good, "req1", "make test", "exact", 15, exp), "unknown_device");
        fixture_close(&f);
}

TEST(audit_chain_survives_rollback)
{
        fixture f = {};
        json_t *v = NULL;

        fixture_open(&f);
        CHECK(pc_store_audit(&f.d.store, "t", "a.one", NULL, NULL) == 0);
        {
                _cleanup_txn_ pc_txn txn = {};

                CHECK(pc_txn_begin(&f.d.store, &txn) == 0);
                CHECK(pc_store_audit(&f.d.store, "t", "a.rolled-back", "x", "y") == 0);
        }
        CHECK(pc_store_audit(&f.d.store, "t", "a.two", "", "") == 0);
        CHECK(pc_audit_verify(&f.d, &v, NULL) == 0);
        CHECK(json_is_true(json_object_get(v, "ok")));
        CHECK_INTEQ(json_integer_value(json_object_get(v, "rows")), 2);
        json_decref(v);
        fixture_close(&f);
}

TAP_MAIN()
