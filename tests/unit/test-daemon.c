/* SPDX-License-Identifier: MIT */
/* The daemon's parts that need no running daemon: the config file, the API's request bodies and the event
 * bus over a store of its own. */

#include <inttypes.h>

#include "daemon-internal.h"
#include "requests-internal.h"
#include "tap.h"

/* Parses TEXT (LEN bytes) over the defaults; returns the error message, or NULL when it loaded. */
static char *parse(pc_config *c, const char *text, size_t len)
{
        _cleanup_pc_error_ pc_error *e = NULL;

        pc_config_init(c);
        if (pc_config_parse(c, "t.conf", text, len, &e) >= 0)
                return NULL;
        return e ? strdup(e->message) : strdup("(no message)");
}
#define PARSE(c, s) parse((c), (s), STRLEN(s))

/* An input that must be refused, and the exact message (or its start) it must be refused with. */
typedef struct refusal {
        const char *input, *message;
} refusal;

TEST(config_every_key_quoting_and_comments)
{
        pc_config c;
        _cleanup_free_ char *err =
                PARSE(&c, "listen = [::1]:7300\nallow_remote_listen = yes\n"
                          "policy_dir=\"/p\"   # quoted, then a comment\n"
                          "state_dir = \"/var/lib/pocket coder\"\r\nruntime_dir = /r\n"
                          "socket_group = \"wheel\nmax_body_size = 2K\napi_threads = 3\n"
                          "log_level = debug\nlog_file = \"\"\negress_subnet = 10.9.0.0/16\n"
                          "uid_range_base = 131072\ncgroup_parent = pc-t\nnft_table = pc_t\n"
                          "http_idle_timeout = 7\nevents_keep = 42\ntcp_max_connections = 100\n"
                          "tcp_max_connections_per_address = 5\ntcp_auth_timeout = 4\n"
                          "egress_allow = 10.1.2.0/24, 192.168.7.7\nsandbox_disk = 32M\nsandbox_inodes = 900\n"
                          "state_reserve = 5%\nssh_socket = /run/t-ssh.sock\nssh_group = t-ssh\n"
                          "state_sync = full\nexec_ready_windows = 0\n");

        CHECK_STREQ(err ?: "loaded", "loaded");
        CHECK_STREQ(c.listen, "[::1]:7300");
        CHECK(c.allow_remote_listen);
        CHECK_STREQ(c.policy_dir, "/p");
        CHECK_STREQ(c.state_dir, "/var/lib/pocket coder");
        CHECK_STREQ(c.runtime_dir, "/r");
        CHECK_STREQ(c.socket_group, "\"wheel"); /* an unbalanced quote is part of the value */
        CHECK_INTEQ(c.max_body_size, 2048);
        CHECK_INTEQ(c.api_threads, 3);
        CHECK_INTEQ(c.log_level, LOG_LEVEL_DEBUG);
        CHECK_STREQ(c.log_file, "");
        CHECK_STREQ(c.egress_subnet, "10.9.0.0/16");
        CHECK_INTEQ(c.uid_range_base, 131072);
        CHECK_STREQ(c.cgroup_parent, "pc-t");
        CHECK_STREQ(c.nft_table, "pc_t");
        CHECK_INTEQ(c.http_idle_timeout, 7);
        CHECK_INTEQ(c.events_keep, 42);
        CHECK_INTEQ(c.tcp_max_connections, 100);
        CHECK_INTEQ(c.tcp_max_connections_per_address, 5);
        CHECK_INTEQ(c.tcp_auth_timeout, 4);
        CHECK_STREQ(c.egress_allow, "10.1.2.0/24, 192.168.7.7");
        CHECK_INTEQ(c.sandbox_disk, 32 << 20);
        CHECK_INTEQ(c.sandbox_inodes, 900);
        CHECK(c.state_reserve_percent == 5 && c.state_reserve == 0);
        CHECK_STREQ(c.ssh_socket, "/run/t-ssh.sock");
        CHECK_STREQ(c.ssh_group, "t-ssh");
        CHECK(c.state_sync == PC_STATE_SYNC_FULL);
        CHECK_INTEQ(c.exec_ready_windows, 0);
        CHECK(pc_config_validate(&c, NULL) == 0);
        pc_config_done(&c);
        /* The default, and the other value. */
        for (const char *const *text = (const char *const[]){ "\n", "state_sync = full\nstate_sync = normal\n", NULL };
             *text; text++) {
                free(err);
                err = parse(&c, *text, strlen(*text));
                CHECK(!err && c.state_sync == PC_STATE_SYNC_NORMAL);
                CHECK_INTEQ(c.exec_ready_windows, 1);
                pc_config_done(&c);
        }
}

TEST(config_errors_name_the_line)
{
        static const refusal cases[] = {
                { "# comment\n\nlog_level = info\nbogus line\n",
                  "config t.conf:4: expected \"key = value\", got \"bogus line\"" },
                { "\n\ncolour = blue", "config t.conf:3: key \"colour\": unknown key" },
                { "max_body_size = 1K\r\nmax_body_size = lots\r\n",
                  "config t.conf:2: value for \"max_body_size\": expected a size between 1K and 64M" },
                { "  uid_range_base = 65537  # not a multiple\n",
                  "config t.conf:1: value for \"uid_range_base\": expected a multiple of 65536" },
                { "http_idle_timeout = 0\n",
                  "config t.conf:1: value for \"http_idle_timeout\": expected seconds from 1 to 3600" },
                { "events_keep = 0\n",
                  "config t.conf:1: value for \"events_keep\": expected a number of events from 1 to 10000000" },
                { "tcp_max_connections = 0\n",
                  "config t.conf:1: value for \"tcp_max_connections\": expected a number of connections from 1 "
                  "to 65536" },
                { "\ntcp_max_connections_per_address = many\n",
                  "config t.conf:2: value for \"tcp_max_connections_per_address\": expected a number of "
                  "connections from 1 to 65536" },
                { "tcp_auth_timeout = 0\n",
                  "config t.conf:1: value for \"tcp_auth_timeout\": expected seconds from 1 to 3600" },
                /* Lists point at the bad entry: line 2, column 28. */
                { "\negress_allow = 10.0.0.0/8, 172.16.1.1/12\n",
                  "config t.conf:2:28: value for \"egress_allow\": host bits set after the prefix length" },
                { "egress_allow = \"fd00::/8\"\n",
                  "config t.conf:1:17: value for \"egress_allow\": IPv6 prefix (egress carries IPv4 only)" },
                { "egress_allow = 10.0.0.0/8,,10.1.0.0/16\n",
                  "config t.conf:1:27: value for \"egress_allow\": empty entry" },
                { "egress_allow = 169.254.169.254/40\n",
                  "config t.conf:1:16: value for \"egress_allow\": prefix length must be a number from 0 to 32" },
                { "sandbox_disk = none\nsandbox_disk = 1M\n",
                  "config t.conf:2: value for \"sandbox_disk\": expected a size of at least 16M such as 10G, or none" },
                { "state_reserve = 1G\n\nstate_reserve = 95%\n",
                  "config t.conf:3: value for \"state_reserve\": expected a percentage from 0% to 90%, or a size such as 1G" },
                { "ssh_socket = none\nssh_socket = ssh.sock\n",
                  "config t.conf:2: value for \"ssh_socket\": expected an absolute path, or none" },
                { "state_sync = full\n# the next one is wrong\nstate_sync = off\n",
                  "config t.conf:3: value for \"state_sync\": expected normal (commits reach the disk within a "
                  "second) or full (before each commit returns)" },
                { "state_sync = FULL\n", "config t.conf:1: value for \"state_sync\": expected normal" },
                { "exec_ready_windows = 2\nexec_ready_windows = 17\n",
                  "config t.conf:2: value for \"exec_ready_windows\": expected a number of windows from 0 to 16" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                pc_config c;
                _cleanup_free_ char *err = parse(&c, cases[i].input, strlen(cases[i].input));

                CHECK(err && startswith(err, cases[i].message));
                if (err && !startswith(err, cases[i].message))
                        printf("#   got: %s\n", err);
                pc_config_done(&c);
        }
}

TEST(config_nul_byte_is_refused_and_changes_nothing)
{
        pc_config c;
        _cleanup_free_ char *err =
                PARSE(&c, "state_dir = /changed\nlog_level = debug\0 junk\nmax_body_size = 2K\n");

        CHECK_STREQ(err, "config t.conf:2: NUL byte (a config file is text)");
        /* the valid line before it was not applied either */
        CHECK_STREQ(c.state_dir, PC_DEFAULT_STATE_DIR);
        CHECK_INTEQ(c.log_level, LOG_LEVEL_INFO);
        pc_config_done(&c);
        free(err);
        err = PARSE(&c, "# a comment is no place for one either \0\n");
        CHECK_STREQ(err, "config t.conf:1: NUL byte (a config file is text)");
        pc_config_done(&c);
}

TEST(config_load_missing_file)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        pc_config c;

        pc_config_init(&c);
        CHECK(pc_config_load(&c, "/nonexistent/pocketcoder.conf", false, &e) == 0);
        CHECK(pc_config_load(&c, "/nonexistent/pocketcoder.conf", true, &e) == -ENOENT);
        CHECK(e && startswith(e->message, "config /nonexistent/pocketcoder.conf: cannot read"));
        pc_config_done(&c);
}

/* A request body parsed as the API parses it; kept until the next one, as results point into it. */
static json_t *req;
static json_t *body(const char *text)
{
        json_decref(req);
        return req = text ? json_loads(text, PC_JSON_REQUEST_FLAGS, NULL) : NULL;
}

/* Runs CALL (which sets pc_error *e) and returns its refusal message, or NULL when it accepted. */
#define REFUSAL(call)                                                                                     \
        ({                                                                                                \
                _cleanup_pc_error_ pc_error *e = NULL;                                                    \
                (call) < 0 ? strdup(e ? e->message : "(no message)") : NULL;                              \
        })

TEST(request_bodies)
{
        static const refusal refused[] = {
                { "{\"name\":\"dev\",\"memory\":\"8388608T\"}",
                  "field \"memory\" must be less than 8388608T (2^63 bytes)" },
                { "{\"name\":\"dev\",\"swap\":1}",
                  "unknown field \"swap\" in request body (expected name, policy, memory, pids, cpus, network, "
                  "rootfs, disk, inodes)" },
                { "{\"name\":\"dev\",\"disk\":\"1M\"}",
                  "field \"disk\" must be at least 16M and less than 2^63 bytes" },
                { "{\"name\":\"dev\",\"disk\":\"lots\"}",
                  "field \"disk\" must be a size such as \"10G\" (or bytes), or \"none\"" },
                { "{\"name\":\"dev\",\"inodes\":3}",
                  "field \"inodes\" must be a number of files from 16 to 4294967295" },
                { "[1]", "request body must be a JSON object" },
        };
        pc_sandbox_request s;
        pc_token_request t;
        pc_session_request sess = {};
        char *err;

        err = REFUSAL(pc_sandbox_request_parse(body("{\"name\":\"dev\",\"memory\":\"512M\",\"cpus\":1.5,"
                                                    "\"network\":\"egress\"}"), &s, &e));
        CHECK(!err && s.limits.memory_max == 512ULL << 20 && s.limits.cpu_quota_us == 150000 &&
              s.network == ISOLATE_NET_EGRESS && streq(s.policy, "default") && streq(s.rootfs, "host") &&
              !s.has_disk && !s.has_inodes);
        free(err);
        err = REFUSAL(pc_sandbox_request_parse(body("{\"name\":\"dev\",\"disk\":\"32M\",\"inodes\":500}"), &s, &e));
        CHECK(!err && s.has_disk && s.disk_max == 32ULL << 20 && s.has_inodes && s.inodes_max == 500);
        free(err);
        err = REFUSAL(pc_sandbox_request_parse(body("{\"name\":\"dev\",\"disk\":\"none\"}"), &s, &e));
        CHECK(!err && s.has_disk && s.disk_max == 0);
        free(err);
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                err = REFUSAL(pc_sandbox_request_parse(body(refused[i].input), &s, &e));
                CHECK_STREQ(err, refused[i].message);
                free(err);
        }
        err = REFUSAL(pc_token_request_parse(body("{\"role\":\"agent\",\"sandbox\":\"dev\"}"), &t, &e));
        CHECK(!err && t.role == PC_ROLE_AGENT && streq(t.sandbox, "dev") && !t.label && t.ttl_seconds == 0);
        free(err);
        err = REFUSAL(pc_token_request_parse(body("{\"role\":\"relay\",\"ttl_seconds\":90}"), &t, &e));
        CHECK(!err && t.role == PC_ROLE_RELAY && t.ttl_seconds == 90);
        free(err);
        err = REFUSAL(pc_token_request_parse(body("{\"role\":\"relay\",\"ttl_seconds\":0}"), &t, &e));
        CHECK_STREQ(err, "field \"ttl_seconds\" must be a whole number of seconds from 1 to 316224000");
        free(err);
        err = REFUSAL(pc_session_request_parse(body("{\"kind\":\"enter\",\"argv\":[],\"root\":true}"),
                                               &sess, &e));
        CHECK(!err && sess.enter && sess.tty && sess.as_root);
        free(err);
        err = REFUSAL(pc_session_request_parse(
                body("{\"kind\":\"run\",\"argv\":[\"id\"],\"cwd\":\"/tmp\",\"term\":\"xterm-256color\",\"rows\":50,\"cols\":132}"),
                &sess, &e));
        CHECK(!err && !sess.enter && !sess.tty && streq(sess.cwd, "/tmp") && streq(sess.term, "xterm-256color") &&
              sess.rows == 50 && sess.cols == 132);
        free(err);
        err = REFUSAL(pc_session_request_parse(body("{\"kind\":\"run\"}"), &sess, &e));
        CHECK_STREQ(err, "field \"argv\" must name the command to run");
        free(err);
        err = REFUSAL(pc_session_request_parse(body("{\"kind\":\"run\",\"argv\":[\"id\"],\"term\":\"x\\u001b]52\"}"),
                                               &sess, &e));
        CHECK_STREQ(err, "field \"term\" must be a terminal type such as xterm-256color");
        free(err);
        err = REFUSAL(pc_session_request_parse(body("{\"kind\":\"enter\",\"rows\":0}"), &sess, &e));
        CHECK_STREQ(err, "field \"rows\" must be an integer from 1 to 10000");
        free(err);
        err = REFUSAL(pc_session_request_parse(body("{\"kind\":\"run\",\"argv\":[\"id\",1]}"), &sess, &e));
        CHECK_STREQ(err, "field \"argv\" must be an array of strings");
        free(err);
        err = REFUSAL(pc_session_request_parse(body("{\"kind\":\"run\",\"argv\":[\"id\"],\"root\":\"yes\"}"), &sess, &e));
        CHECK_STREQ(err, "field \"root\" must be true or false");
        free(err);

        /* approvals and denials */
        pc_approve_request a;
        const char *reason;
        err = REFUSAL(pc_approve_request_parse(body("{}"), &a, &e));
        CHECK(!err && streq(a.scope, "once") && a.minutes == 0 && !a.device && !a.signature);
        free(err);
        err = REFUSAL(pc_approve_request_parse(body("{\"scope\":\"prefix\"}"), &a, &e));
        CHECK(!err && streq(a.scope, "prefix") && a.minutes == PC_APPROVE_MINUTES_DEFAULT);
        free(err);
        err = REFUSAL(pc_approve_request_parse(
                body("{\"scope\":\"exact\",\"minutes\":5,\"device\":\"d1\",\"signature\":\"AAAA\",\"expires\":9}"),
                &a, &e));
        CHECK(!err && a.minutes == 5 && streq(a.device, "d1") && streq(a.signature, "AAAA") && a.expires == 9);
        free(err);
        err = REFUSAL(pc_approve_request_parse(body("{\"scope\":\"always\"}"), &a, &e));
        CHECK_STREQ(err, "field \"scope\" must be once, exact or prefix");
        free(err);
        err = REFUSAL(pc_approve_request_parse(body("{\"scope\":\"once\",\"minutes\":5}"), &a, &e));
        CHECK_STREQ(err, "field \"minutes\" applies to scope exact or prefix only");
        free(err);
        err = REFUSAL(pc_approve_request_parse(body("{\"scope\":\"exact\",\"minutes\":10081}"), &a, &e));
        CHECK_STREQ(err, "field \"minutes\" must be an integer from 1 to 10080");
        free(err);
        err = REFUSAL(pc_approve_request_parse(body("{\"device\":\"d1\",\"signature\":\"AAAA\"}"), &a, &e));
        CHECK_STREQ(err, "a signed approval needs all of \"device\", \"signature\" and \"expires\"");
        free(err);
        err = REFUSAL(pc_deny_request_parse(body("{\"reason\":\"not now\"}"), &reason, &e));
        CHECK(!err && streq(reason, "not now"));
        free(err);
        err = REFUSAL(pc_deny_request_parse(body("{\"reason\":\"\"}"), &reason, &e));
        CHECK_STREQ(err, "field \"reason\" must be a text of 1 to 1024 bytes");
        free(err);
        err = REFUSAL(pc_deny_request_parse(body("{\"why\":\"x\"}"), &reason, &e));
        CHECK(err && strstr(err, "why"));
        free(err);
        body(NULL);
}

static unsigned n_seen, n_woken;
static uint64_t last_seen_seq;

static void count_event(const pc_event *e, void *userdata)
{
        n_seen++;
        last_seen_seq = e->seq;
}

static void count_wake(pc_event_waiter *w)
{
        n_woken++;
}

/* state_sync reaches the connection: sqlite reports synchronous 1 (NORMAL) by default and 2 (FULL) with
 * full; with normal the syncer counts every commit and fdatasync()s the WAL within about a second, and
 * closing syncs what is left. Cached statements are the same object each time, and a statement still
 * in use is not handed out twice. */
TEST(store_state_sync_and_statement_cache)
{
        char dir[] = "/tmp/pc-test-sync-XXXXXX";
        _cleanup_free_ char *db = NULL, *rm = NULL;
        pc_store_sync_stats st = {};
        sqlite3_stmt *a = NULL, *b = NULL;
        pc_store s;
        uint64_t deadline;

        CHECK(mkdtemp(dir));
        db = strjoin(dir, "/state.db");
        rm = strjoin("rm -rf ", dir);

        CHECK(pc_store_open_sync(&s, db, PC_STATE_SYNC_FULL, NULL) == 0);
        CHECK_INTEQ(pc_store_synchronous(&s), 2);
        CHECK(!pc_store_sync_stats_get(&s, &st)); /* no syncer */
        pc_store_close(&s);

        CHECK(pc_store_open(&s, db, NULL) == 0);
        CHECK_INTEQ(pc_store_synchronous(&s), 1);
        CHECK(pc_store_sync_stats_get(&s, &st));
        CHECK(pc_store_audit(&s, "test", "sync.one", NULL, NULL) == 0);
        CHECK(pc_store_audit(&s, "test", "sync.two", NULL, NULL) == 0);
        CHECK(pc_store_sync_stats_get(&s, &st) && st.commits >= 2);
        /* Synced within the interval (1 s), with time to spare for a loaded machine. */
        deadline = now_usec(CLOCK_MONOTONIC) + 5 * 1000 * 1000;
        while (pc_store_sync_stats_get(&s, &st) && st.synced < st.commits && now_usec(CLOCK_MONOTONIC) < deadline)
                (void) usleep(20 * 1000);
        CHECK(st.synced == st.commits && st.fdatasyncs >= 1);
        if (st.synced != st.commits || st.fdatasyncs < 1)
                printf("#   commits %" PRIu64 " synced %" PRIu64 " fdatasyncs %" PRIu64 "\n", st.commits, st.synced,
                       st.fdatasyncs);

        /* The cache: one statement per SQL text, reset and unbound when handed out again. */
        {
                LOCK_GUARD(&s.lock);

                CHECK(pc_store_prepare_cached(&s, "SELECT ?1", &a) == 0);
                CHECK(sqlite3_bind_int(a, 1, 7) == SQLITE_OK && sqlite3_step(a) == SQLITE_ROW &&
                      sqlite3_column_int(a, 0) == 7);
                CHECK(pc_store_prepare_cached(&s, "SELECT ?1", &b) == -EBUSY); /* still stepping */
                sqlite3_resetp(&a);
                CHECK(pc_store_prepare_cached(&s, (char[]){ "SELECT ?1" }, &b) == 0 && b == a);
                CHECK(sqlite3_step(b) == SQLITE_ROW && sqlite3_column_type(b, 0) == SQLITE_NULL);
                sqlite3_resetp(&b);
                CHECK(pc_store_prepare_cached(&s, "SELECT no_such_column", &b) < 0);
        }
        pc_store_close(&s);
        CHECK(system(rm) == 0);
}

static uint64_t json_seq(json_t *list, size_t i)
{
        return (uint64_t) json_integer_value(json_object_get(json_array_get(json_object_get(list, "events"), i), "seq"));
}

TEST(event_bus_publish_subscribe_wait_retention)
{
        char dir[] = "/tmp/pc-test-events-XXXXXX";
        _cleanup_free_ char *db = NULL;
        pc_event_subscription *sub = NULL;
        pc_daemon d = {};
        json_t *j = NULL;
        uint64_t seen = 0;

        CHECK(mkdtemp(dir));
        db = strjoin(dir, "/state.db");
        pc_config_init(&d.config);
        d.config.events_keep = 3;
        CHECK(pc_store_open(&d.store, db, NULL) == 0);
        CHECK(pc_event_bus_new(&d) == 0);
        CHECK(pc_event_subscribe(&d, count_event, NULL, &sub) == 0);

        /* A waiter for sandbox.deleted of "x" sleeps through other events and wakes once on its own. */
        pc_event_waiter w = { .filter = { .sandbox = "x", .type = PC_EVENT_SANDBOX_DELETED },
                              .deadline_usec = UINT64_MAX, .wake = count_wake };
        pc_event_wait(&d, &w);
        CHECK(w.registered && n_woken == 0);
        CHECK_INTEQ(pc_event_publish(&d, PC_EVENT_POLICY_RELOADED, NULL, NULL), 1);
        CHECK_INTEQ(pc_event_publish(&d, PC_EVENT_SANDBOX_DELETED, "y", json_pack("{s:b}", "purge", 1)), 2);
        CHECK(n_woken == 0 && n_seen == 2 && last_seen_seq == 2);
        CHECK_INTEQ(pc_event_publish(&d, PC_EVENT_SANDBOX_DELETED, "x", NULL), 3);
        CHECK(n_woken == 1 && !w.registered && !w.stopping);
        CHECK_INTEQ(pc_event_publish(&d, PC_EVENT_SANDBOX_CREATED, "x", NULL), 4);
        CHECK(n_woken == 1);
        CHECK(pc_event_publish(&d, _PC_EVENT_TYPE_MAX, "x", NULL) < 0);
        CHECK(pc_event_publish(&d, PC_EVENT_SANDBOX_CREATED, "x", json_string("not an object")) < 0);

        /* Retention keeps the newest three; the cursor is complete up to the bus position. */
        CHECK_INTEQ(pc_event_publish(&d, PC_EVENT_SANDBOX_STOPPED, "x", NULL), 5);
        CHECK(pc_events_list(&d, &(pc_event_filter){ .type = _PC_EVENT_TYPE_MAX }, 0, 100, &j, &seen, NULL) == 0);
        CHECK(json_array_size(json_object_get(j, "events")) == 3 && json_seq(j, 0) == 3 && json_seq(j, 2) == 5);
        CHECK(json_integer_value(json_object_get(j, "oldest")) == 3 && json_integer_value(json_object_get(j, "next")) == 5);
        CHECK_INTEQ(seen, 5);
        json_decref(j);
        /* A page that is full resumes after its last event; a filter narrows. */
        CHECK(pc_events_list(&d, &(pc_event_filter){ .type = _PC_EVENT_TYPE_MAX }, 0, 1, &j, &seen, NULL) == 0);
        CHECK(json_integer_value(json_object_get(j, "next")) == 3);
        json_decref(j);
        CHECK(pc_events_list(&d, &(pc_event_filter){ .sandbox = "x", .type = PC_EVENT_SANDBOX_CREATED }, 0, 100, &j,
                             &seen, NULL) == 0);
        CHECK(json_array_size(json_object_get(j, "events")) == 1 && json_seq(j, 0) == 4);
        json_decref(j);

        /* A waiter that has not seen the newest event wakes at once (no lost wake-up). */
        w = (pc_event_waiter){ .filter = { .type = _PC_EVENT_TYPE_MAX }, .seen = 4, .deadline_usec = UINT64_MAX,
                               .wake = count_wake };
        pc_event_wait(&d, &w);
        CHECK(n_woken == 2 && !w.registered);
        /* Stopping wakes the registered ones and every later one at once. */
        w.seen = 5;
        pc_event_wait(&d, &w);
        CHECK(n_woken == 2 && w.registered);
        pc_event_waiters_stop(&d);
        CHECK(n_woken == 3 && w.stopping && !w.registered);
        w = (pc_event_waiter){ .filter = { .type = _PC_EVENT_TYPE_MAX }, .seen = 5, .deadline_usec = UINT64_MAX,
                               .wake = count_wake };
        pc_event_wait(&d, &w);
        CHECK(n_woken == 4 && w.stopping);

        /* The sequence survives a restart, also past deleted events. */
        sub = pc_event_unsubscribe(&d, sub);
        pc_event_bus_free(&d);
        pc_store_close(&d.store);
        CHECK(pc_store_open(&d.store, db, NULL) == 0);
        CHECK(pc_event_bus_new(&d) == 0);
        CHECK_INTEQ(pc_event_publish(&d, PC_EVENT_POLICY_RELOADED, NULL, NULL), 6);
        CHECK(n_seen == 5);

        pc_event_bus_free(&d);
        pc_store_close(&d.store);
        pc_config_done(&d.config);
        (void) unlink(db);
        _cleanup_free_ char *wal = strjoin(db, "-wal"), *shm = strjoin(db, "-shm");
        (void) unlink(wal);
        (void) unlink(shm);
        CHECK(rmdir(dir) == 0);
}

/* A change and its event in one transaction: rolled back, neither is stored and nothing is delivered;
 * committed, both are. The schema accepts the 'creating' state (migration 5), nothing else new. */
TEST(event_recorded_with_its_change_or_not_at_all)
{
        char dir[] = "/tmp/pc-test-txn-XXXXXX";
        _cleanup_free_ char *db = NULL, *wal = NULL, *shm = NULL;
        pc_event_subscription *sub = NULL;
        pc_event_pending ev = {};
        pc_daemon d = {};
        json_t *j = NULL;
        uint64_t seen = 0;
        unsigned before = n_seen;

        CHECK(mkdtemp(dir));
        db = strjoin(dir, "/state.db");
        pc_config_init(&d.config);
        d.config.events_keep = 100;
        CHECK(pc_store_open(&d.store, db, NULL) == 0);
        CHECK(pc_event_bus_new(&d) == 0);
        CHECK(pc_event_subscribe(&d, count_event, NULL, &sub) == 0);
        {
                _cleanup_txn_ pc_txn txn = {};

                CHECK(pc_txn_begin(&d.store, &txn) == 0 && !txn.nested);
                CHECK(pc_store_exec(&d.store, "INSERT INTO settings (key, value) VALUES ('k', 'rolled back')") == 0);
                CHECK(pc_event_record(&d, PC_EVENT_SANDBOX_CREATED, "x", NULL, &ev) == 0 && ev.seq > 0);
                pc_event_pending_done(&ev); /* not committed: not delivered; the guard rolls back */
        }
        CHECK(n_seen == before);
        CHECK(pc_events_list(&d, &(pc_event_filter){ .type = _PC_EVENT_TYPE_MAX }, 0, 100, &j, &seen, NULL) == 0);
        CHECK(json_array_size(json_object_get(j, "events")) == 0);
        json_decref(j);
        {
                _cleanup_txn_ pc_txn txn = {};

                CHECK(pc_txn_begin(&d.store, &txn) == 0);
                CHECK(pc_store_exec(&d.store, "INSERT INTO settings (key, value) VALUES ('k', 'kept')") == 0);
                CHECK(pc_event_record(&d, PC_EVENT_SANDBOX_CREATED, "x", NULL, &ev) == 0);
                CHECK(pc_txn_commit(&txn) == 0);
                pc_event_deliver(&d, &ev);
        }
        CHECK(n_seen == before + 1);
        CHECK(pc_events_list(&d, &(pc_event_filter){ .type = _PC_EVENT_TYPE_MAX }, 0, 100, &j, &seen, NULL) == 0);
        CHECK(json_array_size(json_object_get(j, "events")) == 1);
        json_decref(j);
        CHECK(pc_store_exec(&d.store, "INSERT INTO sandboxes (name, policy, memory_max, swap_max, pids_max, "
                                      "cpu_quota_us, cpu_period_us, network, rootfs, uid_base, net_index, state, "
                                      "created_at) VALUES ('c', 'default', 0, 0, 0, 0, 0, 'none', 'host', 65536, "
                                      "0, 'creating', 0)") == 0);
        CHECK(pc_store_exec(&d.store, "UPDATE sandboxes SET state = 'gone'") < 0);

        sub = pc_event_unsubscribe(&d, sub);
        pc_event_bus_free(&d);
        pc_store_close(&d.store);
        pc_config_done(&d.config);
        wal = strjoin(db, "-wal");
        shm = strjoin(db, "-shm");
        (void) unlink(db);
        (void) unlink(wal);
        (void) unlink(shm);
        CHECK(rmdir(dir) == 0);
}

TAP_MAIN()
