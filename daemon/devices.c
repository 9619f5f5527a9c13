/* SPDX-License-Identifier: MIT */
/* Devices: the phones whose Ed25519 public keys may sign approvals of permission requests, and the
 * check of such a signature. A removed device keeps its row (removed set): the ledger's approvals still
 * name it, and its signatures are refused from then on. */
#include <inttypes.h>

#include "daemon-internal.h"

#define DEVICE_NAME_MAX 64
#define DEVICE_COLUMNS  "id, name, public_key, created"

static json_t *device_json(sqlite3_stmt *st)
{
        return json_pack("{s:s, s:s, s:s, s:I}", "id", sqlite3_column_text(st, 0), "name",
                         sqlite3_column_text(st, 1), "public_key", sqlite3_column_text(st, 2), "created",
                         (json_int_t) sqlite3_column_int64(st, 3));
}

static bool device_name_is_valid(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > DEVICE_NAME_MAX)
                return false;
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

int pc_devices_add(pc_daemon *d, const pc_principal *who, json_t *req, json_t **ret, pc_error **reterr)
{
        const char *name = NULL, *key = NULL, *k;
        uint8_t pub[32];
        char actor[128];
        json_t *v;

        if (!json_is_object(req))
                return pc_error_setf(reterr, EINVAL, "invalid_body",
                                     "request body must be a JSON object {\"name\", \"public_key\"}");
        json_object_foreach(req, k, v) {
                if (streq(k, "name") && json_is_string(v))
                        name = json_string_value(v);
                else if (streq(k, "public_key") && json_is_string(v))
                        key = json_string_value(v);
                else
                        return pc_error_setf(reterr, EINVAL, "invalid_body",
                                             "unexpected field \"%s\" (expected \"name\" and \"public_key\", "
                                             "both strings)",
                                             k);
        }
        if (!name || !device_name_is_valid(name))
                return pc_error_setf(reterr, EINVAL, "invalid_body",
                                     "\"name\" must be 1 to %d characters without control characters",
                                     DEVICE_NAME_MAX);
        if (!key || strlen(key) != 44 || pc_base64_decode_exact(key, pub, sizeof(pub)) < 0)
                return pc_error_setf(reterr, EINVAL, "invalid_body",
                                     "\"public_key\" must be the base64 of a 32-byte Ed25519 public key "
                                     "(44 characters; 'pocketcoder devices keygen' prints one)");
        explicit_bzero(pub, sizeof(pub));
        pc_principal_describe(who, actor, sizeof(actor));

        LOCK_GUARD(&d->store.lock);
        _cleanup_txn_ pc_txn txn = {};
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_json_ json_t *j = NULL;
        _cleanup_json_ json_t *dj = json_pack("{s:s, s:s}", "name", name, "public_key", key);
        _cleanup_free_ char *detail = dj ? json_dumps(dj, JSON_COMPACT) : NULL;

        if (!detail)
                return -ENOMEM;
        if (pc_txn_begin(&d->store, &txn) < 0 ||
            sqlite3_prepare_v2(d->store.db,
                               "INSERT INTO devices (id, name, public_key, created) "
                               "VALUES (lower(hex(randomblob(8))), ?, ?, unixepoch()) RETURNING " DEVICE_COLUMNS,
                               -1, &st, NULL) != SQLITE_OK)
                return pc_store_error(&d->store, reterr);
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW) {
                if (sqlite3_extended_errcode(d->store.db) == SQLITE_CONSTRAINT_UNIQUE)
                        return pc_error_setf(reterr, EEXIST, "conflict",
                                             "a device with this public key is already registered");
                return pc_store_error(&d->store, reterr);
        }
        j = device_json(st);
        if (!j || sqlite3_step(st) != SQLITE_DONE)
                return j ? pc_store_error(&d->store, reterr) : -ENOMEM;
        if (pc_store_audit(&d->store, actor, "device.add", json_string_value(json_object_get(j, "id")), detail) < 0 ||
            pc_txn_commit(&txn) < 0)
                return pc_store_error(&d->store, reterr);
        *ret = TAKE_PTR(j);
        return 0;
}

int pc_devices_list(pc_daemon *d, json_t **ret, pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_json_ json_t *arr = json_array();
        int k;

        if (!arr)
                return -ENOMEM;
        if (sqlite3_prepare_v2(d->store.db,
                               "SELECT " DEVICE_COLUMNS " FROM devices WHERE removed IS NULL ORDER BY created, id",
                               -1, &st, NULL) != SQLITE_OK)
                return pc_store_error(&d->store, reterr);
        while ((k = sqlite3_step(st)) == SQLITE_ROW)
                if (json_array_append_new(arr, device_json(st)) < 0)
                        return -ENOMEM;
        if (k != SQLITE_DONE)
                return pc_store_error(&d->store, reterr);
        *ret = json_pack("{s:O}", "devices", arr);
        return *ret ? 0 : -ENOMEM;
}

int pc_devices_remove(pc_daemon *d, const pc_principal *who, const char *id, pc_error **reterr)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_txn_ pc_txn txn = {};
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char actor[128];

        pc_principal_describe(who, actor, sizeof(actor));
        if (pc_txn_begin(&d->store, &txn) < 0 ||
            sqlite3_prepare_v2(d->store.db, "UPDATE devices SET removed = unixepoch() WHERE id = ? AND removed IS NULL",
                               -1, &st, NULL) != SQLITE_OK ||
            (sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC), sqlite3_step(st)) != SQLITE_DONE)
                return pc_store_error(&d->store, reterr);
        if (sqlite3_changes(d->store.db) == 0)
                return pc_error_setf(reterr, ENOENT, "not_found", "device \"%s\" does not exist", id);
        if (pc_store_audit(&d->store, actor, "device.remove", id, NULL) < 0 || pc_txn_commit(&txn) < 0)
                return pc_store_error(&d->store, reterr);
        return 0;
}

int pc_devices_verify_approval(pc_daemon *d, const char *device_id, const char *signature_b64, const char *id,
                               const char *command, const char *cwd, const char *scope, unsigned minutes,
                               int64_t expires, pc_error **reterr)
{
        _cleanup_free_ char *msg = NULL;
        uint8_t pub[32], sig[64];
        int k;

        if (!device_id || !signature_b64)
                return pc_error_setf(reterr, EPERM, "signature_required",
                                     "this daemon requires signed approvals: \"device\" and \"signature\" are needed");
        if (pc_base64_decode_exact(signature_b64, sig, sizeof(sig)) < 0)
                return pc_error_setf(reterr, EPERM, "bad_signature",
                                     "\"signature\" must be the base64 of a 64-byte Ed25519 signature");
        if ((int64_t) (now_usec(CLOCK_REALTIME) / 1000000) > expires)
                return pc_error_setf(reterr, EPERM, "signature_expired",
                                     "the signature expired at %" PRId64 " (unix seconds); sign again", expires);
        {
                LOCK_GUARD(&d->store.lock);
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                const char *key;

                if (sqlite3_prepare_v2(d->store.db, "SELECT public_key, removed FROM devices WHERE id = ?", -1, &st,
                                       NULL) != SQLITE_OK)
                        return pc_store_error(&d->store, reterr);
                sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
                k = sqlite3_step(st);
                if (k == SQLITE_DONE)
                        return pc_error_setf(reterr, EPERM, "unknown_device", "device \"%s\" is not registered",
                                             device_id);
                if (k != SQLITE_ROW)
                        return pc_store_error(&d->store, reterr);
                if (sqlite3_column_type(st, 1) != SQLITE_NULL)
                        return pc_error_setf(reterr, EPERM, "unknown_device", "device \"%s\" was removed",
                                             device_id);
                key = (const char *) sqlite3_column_text(st, 0);
                if (!key || pc_base64_decode_exact(key, pub, sizeof(pub)) < 0)
                        return pc_error_setf(reterr, EIO, "store_error", "device \"%s\" has a damaged key", device_id);
        }
        msg = pc_approval_message(id, command, cwd, scope, minutes, expires);
        if (!msg)
                return -ENOMEM;
        if (!pc_ed25519_verify(pub, msg, strlen(msg), sig))
                return pc_error_setf(reterr, EPERM, "bad_signature",
                                     "the signature is not device \"%s\"'s over this request, command, cwd, scope, "
                                     "minutes and expiry",
                                     device_id);
        return 0;
}
