/* SPDX-License-Identifier: MIT */
/* The cost of one audit row: the hash-chained pc_store_audit() against the plain INSERT it replaced, each
 * as its own transaction (what a request pays: with the default state_sync = normal, no fsync; with full,
 * the WAL's fsync dominates) and many in one transaction (the CPU cost: head read, SHA-256, insert, head
 * update), and GET /v1/audit/verify's pass over the ledger.
 * Usage: audit-write [DIR [ROWS]] (DIR on the state filesystem; default /var/tmp). */
#include <inttypes.h>

#include "daemon-internal.h"

static double now_ms(void)
{
        return (double) now_usec(CLOCK_MONOTONIC) / 1000.0;
}

static int plain_insert(pc_store *s)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(s->db,
                               "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)", -1,
                               &st, NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_int64(st, 1, (sqlite3_int64) (now_usec(CLOCK_REALTIME) / 1000000));
        sqlite3_bind_text(st, 2, "token:5c0e9a3b7d21(admin)", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, "exec.end", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, "box1", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, "{\"exit_code\":0,\"duration_ms\":3}", -1, SQLITE_STATIC);
        return sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
}

static int chained_insert(pc_store *s)
{
        return pc_store_audit(s, "token:5c0e9a3b7d21(admin)", "exec.end", "box1",
                              "{\"exit_code\":0,\"duration_ms\":3}");
}

static double run(pc_store *s, int (*fn)(pc_store *), unsigned n, bool batch)
{
        _cleanup_txn_ pc_txn txn = {};
        double t0 = now_ms();

        if (batch && pc_txn_begin(s, &txn) < 0)
                return -1;
        for (unsigned i = 0; i < n; i++)
                if (fn(s) < 0)
                        return -1;
        if (batch && pc_txn_commit(&txn) < 0)
                return -1;
        return (now_ms() - t0) * 1000.0 / n; /* µs per row */
}

int main(int argc, char **argv)
{
        const char *base = argc > 1 ? argv[1] : "/var/tmp";
        unsigned rows = argc > 2 ? (unsigned) atoi(argv[2]) : 100000;
        _cleanup_free_ char *dir = strjoin(base, "/pc-audit-bench-XXXXXX"), *a = NULL, *b = NULL, *rm = NULL;
        pc_daemon d = {};
        pc_store plain = {};
        json_t *v = NULL;
        double t0;

        if (!dir || !mkdtemp(dir))
                return 1;
        a = strjoin(dir, "/chained.db");
        b = strjoin(dir, "/plain.db");
        /* The plain insert is what the chain's trigger now refuses. */
        if (pc_store_open(&d.store, a, NULL) < 0 || pc_store_open(&plain, b, NULL) < 0 ||
            pc_store_exec(&plain, "DROP TRIGGER audit_chained") < 0)
                return 1;
        printf("audit row write, µs per row (%s)\n", base);
        printf("  own transaction, 1000 rows:   plain %.1f  chained %.1f\n", run(&plain, plain_insert, 1000, false),
               run(&d.store, chained_insert, 1000, false));
        printf("  one transaction, %u rows: plain %.2f  chained %.2f\n", rows, run(&plain, plain_insert, rows, true),
               run(&d.store, chained_insert, rows, true));
        t0 = now_ms();
        if (pc_audit_verify(&d, &v, NULL) < 0 || !json_is_true(json_object_get(v, "ok")))
                return 1;
        printf("  verify %" JSON_INTEGER_FORMAT " rows: %.0f ms\n", json_integer_value(json_object_get(v, "rows")),
               now_ms() - t0);
        json_decref(v);
        pc_store_close(&d.store);
        pc_store_close(&plain);
        rm = strjoin("rm -rf ", dir);
        return rm && system(rm) == 0 ? 0 : 1;
}
