/* SPDX-License-Identifier: MIT */
/* pocketcoder sandbox create|list|show|stop|start|rm|run, and pocketcoder enter.
 *
 * Every subcommand only talks to the daemon. `run` and `enter` are sessions (cli/session.c): the daemon
 * starts the command inside the sandbox; this process gives it pipes of its own (run) or takes the master of
 * a pty allocated inside (enter), and relays. They work for any local admin on the unix socket. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"

/* The agent's uid inside every sandbox (isolate/isolate.h's ISOLATE_AGENT_UID, which the API does not
 * report): `show` prints which host uid it is. */
#define AGENT_UID 1000u

static const char usage_text[] =
        "Usage: pocketcoder sandbox create NAME [--policy P] [--memory 512M] [--pids 256] [--cpus 1.5]\n"
        "                                       [--network none|loopback|egress] [--rootfs host|IMAGE]\n"
        "                                       [--disk 10G|none] [--inodes N]\n"
        "       pocketcoder sandbox list\n"
        "       pocketcoder sandbox show NAME\n"
        "       pocketcoder sandbox stop NAME\n"
        "       pocketcoder sandbox start NAME\n"
        "       pocketcoder sandbox rm NAME [--purge]\n"
        "       pocketcoder sandbox run NAME [--root] -- COMMAND [ARGS...]\n"
        "\n"
        "Kernel-isolated sandboxes, each with a workspace at /workspace, an agent user and a tmux session\n"
        "named after it. 'create' returns when the tmux session is ready. 'rm' stops a running sandbox\n"
        "first and keeps its workspace unless --purge (a kept workspace comes back, with its uid range, when a\n"
        "sandbox of that name is created again). --disk/--inodes bound the workspace (default: the daemon's\n"
        "sandbox_disk/sandbox_inodes). 'run' (a local admin on the daemon's socket; recorded\n"
        "in the audit log) runs COMMAND inside as the agent, or as sandbox root with --root, with exactly the\n"
        "restrictions agent commands get; it pipes stdin/stdout/stderr and exits with COMMAND's status\n"
        "(128+N when killed by signal N). --json prints the API's JSON. 'pocketcoder sandbox SUBCOMMAND\n"
        "--help' shows one subcommand.\n";

static int usage(bool ok)
{
        if (!ok)
                fprintf(stderr, "pocketcoder sandbox: missing subcommand.\n\n");
        fputs(usage_text, ok ? stdout : stderr);
        return ok ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

static bool is_help(const char *a)
{
        return streq(a, "--help") || streq(a, "-h");
}

/* ---- formatting ---- */

/* 536870912 -> "512M", 1610612736 -> "1.5G"; 0 -> `zero`. */
static const char *format_bytes(uint64_t v, const char *zero, char buf[static 32])
{
        static const char units[] = "KMGT";
        int u = -1;

        if (v == 0)
                return zero;
        while (u < 3 && v >= (UINT64_C(1024) << (10 * (u + 1))))
                u++;
        if (u < 0)
                snprintf(buf, 32, "%" PRIu64, v);
        else if (v % (UINT64_C(1) << (10 * (u + 1))) == 0)
                snprintf(buf, 32, "%" PRIu64 "%c", v >> (10 * (u + 1)), units[u]);
        else
                snprintf(buf, 32, "%.1f%c", (double)v / (double)(UINT64_C(1) << (10 * (u + 1))), units[u]);
        return buf;
}

static const char *format_int(json_t *v, const char *null, char buf[static 32])
{
        if (!json_is_integer(v))
                return null;
        snprintf(buf, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
}

static const char *format_cpus(json_t *v, char buf[static 32])
{
        if (!json_is_number(v))
                return "unlimited";
        snprintf(buf, 32, "%g", json_number_value(v));
        return buf;
}

static const char *jstr(json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

static uint64_t juint(json_t *o, const char *key)
{
        json_int_t v = json_integer_value(json_object_get(o, key));
        return v > 0 ? (uint64_t)v : 0;
}

/* "key:  value" lines, the keys padded to one column. */
static void kv(const char *key, const char *value)
{
        printf("%s:%*s%s\n", key, (int)(16 - strlen(key)), "", value ?: "-");
}

static void print_sandbox(json_t *s)
{
        json_t *limits = json_object_get(s, "limits"), *usage = json_object_get(s, "usage");
        char a[32], b[32], line[160];

        kv("name", jstr(s, "name"));
        kv("state", jstr(s, "state"));
        kv("policy", jstr(s, "policy"));
        kv("network", jstr(s, "network"));
        kv("rootfs", jstr(s, "rootfs"));
        kv("memory limit", format_bytes(juint(limits, "memory_max"), "unlimited", a));
        kv("swap limit", format_bytes(juint(limits, "swap_max"), "0 (off)", a));
        kv("pids limit", format_int(json_object_get(limits, "pids_max"), "unlimited", a));
        kv("cpus", format_cpus(json_object_get(limits, "cpus"), a));
        kv("cpu weight", format_int(json_object_get(limits, "cpu_weight"), "-", a));
        kv("open files limit", format_int(json_object_get(limits, "nofile_max"), "-", a));
        kv("/tmp, /dev/shm size", format_bytes(juint(limits, "tmpfs_size"), "-", a));
        kv("disk limit", format_bytes(juint(limits, "disk_max"), "unlimited", a));
        kv("inodes limit", format_int(json_object_get(limits, "inodes_max"), "unlimited", a));
        kv("disk quota", jstr(json_object_get(s, "disk"), "quota"));
        if (json_object_get(json_object_get(s, "disk"), "used_bytes")) {
                snprintf(line, sizeof(line), "%s, %" PRIu64 " inodes",
                         format_bytes(juint(json_object_get(s, "disk"), "used_bytes"), "0", b),
                         juint(json_object_get(s, "disk"), "used_inodes"));
                kv("disk used", line);
        }
        kv("init pid", format_int(json_object_get(s, "init_pid"), "-", a));
        snprintf(line, sizeof(line), "%" PRIu64 " (agent is host uid %" PRIu64 ")", juint(s, "uid_base"),
                 juint(s, "uid_base") + AGENT_UID);
        kv("uid base", line);
        kv("tmux session", jstr(s, "tmux_session"));
        kv("workspace", jstr(s, "workspace_host_path"));
        kv("cgroup", jstr(s, "cgroup_path"));
        if (json_is_object(usage)) {
                snprintf(line, sizeof(line), "%s (peak %s)",
                         format_bytes(juint(usage, "memory_current"), "0", a),
                         format_bytes(juint(usage, "memory_peak"), "0", b));
                kv("memory", line);
                kv("pids", format_int(json_object_get(usage, "pids_current"), "-", a));
                snprintf(line, sizeof(line), "%.2fs", (double)juint(usage, "cpu_usage_usec") / 1e6);
                kv("cpu time", line);
                kv("oom kills", format_int(json_object_get(usage, "oom_kills"), "-", a));
        }
        kv("created", cli_format_time(json_object_get(s, "created_at"), a));
        kv("started", cli_format_time(json_object_get(s, "started_at"), a));
        kv("stopped", cli_format_time(json_object_get(s, "stopped_at"), a));
}

/* ---- requests ---- */

static int check_name(const char *cmd, const char *name)
{
        if (name_is_valid(name))
                return 0;
        fprintf(stderr,
                "pocketcoder %s: \"%s\" is not a sandbox name (1-63 lowercase letters, digits and '-', not "
                "starting or ending with '-')\n",
                cmd, name);
        return -EINVAL;
}

/* METHOD /v1/sandboxes/NAME[SUFFIX]; prints the API error unless the status is `want`. */
static int sandbox_request(const cli_global *g, const char *method, const char *name, const char *suffix,
                           json_t *body, long want, json_t **ret)
{
        _cleanup_free_ char *path = strjoin("/v1/sandboxes/", name, suffix ?: "");
        _cleanup_json_ json_t *resp = NULL;

        if (!path)
                return -ENOMEM;
        if (cli_call(g, method, path, body, want, &resp) < 0)
                return -EIO;
        if (ret)
                *ret = TAKE_PTR(resp);
        return 0;
}

/* A subcommand's options: --json and --help everywhere, the limits with create, --purge with rm. */
typedef struct sub_opts {
        bool json, help, purge;
        const char *policy, *memory, *network, *rootfs, *disk;
        json_int_t inodes;
        json_int_t pids;
        double cpus;
        bool has_pids, has_cpus;
} sub_opts;

/* Returns the index of the first positional argument, or -1 after saying what is wrong. */
static int parse_sub(const char *sub, int argc, char **argv, bool allow_create, bool allow_purge,
                     sub_opts *o)
{
        enum {
                ARG_JSON = 0x100,
                ARG_POLICY,
                ARG_MEMORY,
                ARG_PIDS,
                ARG_CPUS,
                ARG_NETWORK,
                ARG_DISK,
                ARG_INODES,
                ARG_ROOTFS,
                ARG_PURGE
        };
        static const struct option options[] = {
                {"json", no_argument, NULL, ARG_JSON},
                {"help", no_argument, NULL, 'h'},
                {"policy", required_argument, NULL, ARG_POLICY},
                {"memory", required_argument, NULL, ARG_MEMORY},
                {"pids", required_argument, NULL, ARG_PIDS},
                {"cpus", required_argument, NULL, ARG_CPUS},
                {"network", required_argument, NULL, ARG_NETWORK},
                {"rootfs", required_argument, NULL, ARG_ROOTFS},
                {"disk", required_argument, NULL, ARG_DISK},
                {"inodes", required_argument, NULL, ARG_INODES},
                {"purge", no_argument, NULL, ARG_PURGE},
                {},
        };
        int opt;

        optind = 0;
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                char *end = NULL;

                if (opt >= ARG_POLICY && opt <= ARG_ROOTFS && !allow_create) {
                        fprintf(stderr, "pocketcoder sandbox %s: %s applies to 'sandbox create' only\n", sub,
                                argv[optind - 1]);
                        return -1;
                }
                switch (opt) {
                case ARG_JSON:
                        o->json = true;
                        break;
                case 'h':
                        o->help = true;
                        break;
                case ARG_POLICY:
                        o->policy = optarg;
                        break;
                case ARG_MEMORY:
                        o->memory = optarg;
                        break;
                case ARG_DISK:
                        o->disk = optarg;
                        break;
                case ARG_INODES:
                        errno = 0;
                        o->inodes = strtoll(optarg, &end, 10);
                        if (errno != 0 || end == optarg || *end || o->inodes <= 0) {
                                fprintf(stderr,
                                        "pocketcoder sandbox create: --inodes wants a positive number of files, not "
                                        "\"%s\"\n",
                                        optarg);
                                return -1;
                        }
                        break;
                case ARG_PIDS:
                        errno = 0;
                        o->pids = strtoll(optarg, &end, 10);
                        if (errno != 0 || end == optarg || *end || o->pids <= 0) {
                                fprintf(stderr,
                                        "pocketcoder sandbox create: --pids wants a positive integer, not "
                                        "\"%s\"\n",
                                        optarg);
                                return -1;
                        }
                        o->has_pids = true;
                        break;
                case ARG_CPUS:
                        errno = 0;
                        o->cpus = strtod(optarg, &end);
                        if (errno != 0 || end == optarg || *end || !isfinite(o->cpus) || o->cpus <= 0) {
                                fprintf(stderr,
                                        "pocketcoder sandbox create: --cpus wants a number of CPUs such as "
                                        "1.5, "
                                        "not \"%s\"\n",
                                        optarg);
                                return -1;
                        }
                        o->has_cpus = true;
                        break;
                case ARG_NETWORK:
                        o->network = optarg;
                        break;
                case ARG_ROOTFS:
                        o->rootfs = optarg;
                        break;
                case ARG_PURGE:
                        if (!allow_purge) {
                                fprintf(stderr,
                                        "pocketcoder sandbox %s: --purge applies to 'sandbox rm' only\n",
                                        sub);
                                return -1;
                        }
                        o->purge = true;
                        break;
                default:
                        return -1;
                }
        }
        return optind;
}

/* The subcommands that take exactly one NAME. */
static int one_name(const char *sub, int argc, char **argv, int first, const char **ret)
{
        if (argc - first != 1) {
                fprintf(stderr,
                        "pocketcoder sandbox %s: expected exactly one sandbox NAME (see 'pocketcoder "
                        "sandbox list')\n",
                        sub);
                return -EINVAL;
        }
        if (check_name(sub, argv[first]) < 0)
                return -EINVAL;
        *ret = argv[first];
        return 0;
}

static int sandbox_create(int argc, char **argv, cli_global *g)
{
        _cleanup_json_ json_t *req = json_object(), *resp = NULL;
        sub_opts o = {};
        const char *name;
        char a[32];
        int first;

        first = parse_sub("create", argc, argv, true, false, &o);
        if (first < 0)
                return CLI_EXIT_USAGE;
        if (o.help)
                return usage(true);
        g->json |= o.json;
        if (one_name("create", argc, argv, first, &name) < 0)
                return CLI_EXIT_USAGE;
        if (!req)
                return CLI_EXIT_FAILED;
        json_object_set_new(req, "name", json_string(name));
        if (o.policy)
                json_object_set_new(req, "policy", json_string(o.policy));
        if (o.memory)
                json_object_set_new(req, "memory", json_string(o.memory));
        if (o.has_pids)
                json_object_set_new(req, "pids", json_integer(o.pids));
        if (o.has_cpus)
                json_object_set_new(req, "cpus", json_real(o.cpus));
        if (o.network)
                json_object_set_new(req, "network", json_string(o.network));
        if (o.rootfs)
                json_object_set_new(req, "rootfs", json_string(o.rootfs));
        if (o.disk)
                json_object_set_new(req, "disk", json_string(o.disk));
        if (o.inodes > 0)
                json_object_set_new(req, "inodes", json_integer(o.inodes));
        if (cli_call(g, "POST", "/v1/sandboxes", req, 201, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (g->json)
                cli_print_json(resp);
        else
                printf("Created sandbox %s: %s, init pid %s, tmux session \"%s\", workspace %s\n", name,
                       jstr(resp, "state"), format_int(json_object_get(resp, "init_pid"), "-", a),
                       jstr(resp, "tmux_session") ?: "-", jstr(resp, "workspace_host_path"));
        return CLI_EXIT_OK;
}

static int sandbox_list(int argc, char **argv, cli_global *g)
{
        static const char *const header[] = {"NAME",   "STATE", "POLICY", "NETWORK",
                                             "MEMORY", "PIDS",  "CPUS",   "INIT-PID"};
        enum { NCOLS = ELEMENTSOF(header) };
        _cleanup_json_ json_t *resp = NULL;
        _cleanup_free_ char **cells = NULL;
        _cleanup_free_ char(*bufs)[4][32] = NULL;
        json_t *list, *s;
        sub_opts o = {};
        size_t i, n;
        int first;

        first = parse_sub("list", argc, argv, false, false, &o);
        if (first < 0)
                return CLI_EXIT_USAGE;
        if (o.help)
                return usage(true);
        g->json |= o.json;
        if (first < argc) {
                fprintf(stderr, "pocketcoder sandbox list: unexpected argument \"%s\"\n", argv[first]);
                return CLI_EXIT_USAGE;
        }
        if (cli_call(g, "GET", "/v1/sandboxes", NULL, 200, &resp) < 0)
                return CLI_EXIT_FAILED;
        if (g->json) {
                cli_print_json(resp);
                return CLI_EXIT_OK;
        }
        list = json_object_get(resp, "sandboxes");
        n = json_array_size(list);
        cells = calloc(n * NCOLS + 1, sizeof(char *));
        bufs = calloc(n + 1, sizeof(*bufs));
        if (!cells || !bufs)
                return CLI_EXIT_FAILED;
        json_array_foreach(list, i, s)
        {
                json_t *limits = json_object_get(s, "limits");
                char **row = cells + i * NCOLS;

                row[0] = (char *)jstr(s, "name");
                row[1] = (char *)jstr(s, "state");
                row[2] = (char *)jstr(s, "policy");
                row[3] = (char *)jstr(s, "network");
                /* One buffer per formatted cell: the table is printed after the loop. */
                row[4] = (char *)format_bytes(juint(limits, "memory_max"), "unlimited", bufs[i][0]);
                row[5] = (char *)format_int(json_object_get(limits, "pids_max"), "unlimited", bufs[i][1]);
                row[6] = (char *)format_cpus(json_object_get(limits, "cpus"), bufs[i][2]);
                row[7] = (char *)format_int(json_object_get(s, "init_pid"), NULL, bufs[i][3]);
        }
        cli_table_print(header, NCOLS, cells, n);
        return CLI_EXIT_OK;
}

/* show, stop, start: one NAME, a Sandbox back. */
static int sandbox_one(const char *sub, int argc, char **argv, cli_global *g)
{
        _cleanup_json_ json_t *resp = NULL;
        sub_opts o = {};
        const char *name;
        char a[32];
        int first;

        first = parse_sub(sub, argc, argv, false, false, &o);
        if (first < 0)
                return CLI_EXIT_USAGE;
        if (o.help)
                return usage(true);
        g->json |= o.json;
        if (one_name(sub, argc, argv, first, &name) < 0)
                return CLI_EXIT_USAGE;
        if (streq(sub, "show")) {
                if (sandbox_request(g, "GET", name, NULL, NULL, 200, &resp) < 0)
                        return CLI_EXIT_FAILED;
        } else if (sandbox_request(g, "POST", name, streq(sub, "stop") ? "/stop" : "/start", NULL, 200,
                                   &resp) < 0)
                return CLI_EXIT_FAILED;
        if (g->json)
                cli_print_json(resp);
        else if (streq(sub, "show"))
                print_sandbox(resp);
        else if (streq(sub, "stop"))
                printf("Stopped sandbox %s; its workspace %s stays.\n", name,
                       jstr(resp, "workspace_host_path"));
        else
                printf("Started sandbox %s: init pid %s, tmux session \"%s\".\n", name,
                       format_int(json_object_get(resp, "init_pid"), "-", a),
                       jstr(resp, "tmux_session") ?: "-");
        return CLI_EXIT_OK;
}

static int sandbox_rm(int argc, char **argv, cli_global *g)
{
        sub_opts o = {};
        const char *name;
        int first;

        first = parse_sub("rm", argc, argv, false, true, &o);
        if (first < 0)
                return CLI_EXIT_USAGE;
        if (o.help)
                return usage(true);
        g->json |= o.json;
        if (one_name("rm", argc, argv, first, &name) < 0)
                return CLI_EXIT_USAGE;
        if (sandbox_request(g, "DELETE", name, o.purge ? "?purge=true" : NULL, NULL, 204, NULL) < 0)
                return CLI_EXIT_FAILED;
        if (!g->json)
                printf(o.purge ? "Deleted sandbox %s and its workspace.\n"
                               : "Deleted sandbox %s; its workspace was kept (rm --purge removes it).\n",
                       name);
        return CLI_EXIT_OK;
}

/* ---- joining a sandbox: run and enter ---- */

/* A session (cli/session.c): the daemon starts the command inside; this process relays. */
static int session(const cli_global *g, const char *cmd, const char *name, const char *kind,
                   const char *const *argv, bool as_root, bool tty)
{
        _cleanup_json_ json_t *req = json_pack("{s:s, s:b}", "kind", kind, "root", as_root);
        json_t *jargv = json_array();

        if (!req || !jargv || json_object_set_new(req, "argv", jargv) < 0)
                return CLI_EXIT_FAILED;
        for (size_t i = 0; argv && argv[i]; i++)
                json_array_append_new(jargv, json_string(argv[i]));
        if (!argv)
                json_object_del(req, "argv");
        if (tty && !isatty(STDIN_FILENO)) {
                fprintf(stderr,
                        "pocketcoder %s: standard input is not a terminal; tmux needs one to attach. Use "
                        "'pocketcoder sandbox run %s -- COMMAND' for commands.\n",
                        cmd, name);
                return CLI_EXIT_FAILED;
        }
        return cli_session(g, name, req, tty);
}

static int sandbox_run(int argc, char **argv, cli_global *g)
{
        const char *name = NULL;
        bool as_root = false;
        int i;

        /* Hand-parsed: everything from COMMAND on belongs to the command, with or without "--". */
        for (i = 1; i < argc; i++) {
                if (streq(argv[i], "--")) {
                        i++;
                        break;
                }
                if (is_help(argv[i]))
                        return usage(true);
                if (streq(argv[i], "--root"))
                        as_root = true;
                else if (streq(argv[i], "--json"))
                        continue; /* the command's output is the output */
                else if (argv[i][0] == '-') {
                        fprintf(stderr,
                                "pocketcoder sandbox run: unknown option \"%s\" (put the command after "
                                "--)\n",
                                argv[i]);
                        return CLI_EXIT_USAGE;
                } else if (!name)
                        name = argv[i];
                else
                        break;
        }
        if (!name || i >= argc) {
                fprintf(stderr,
                        "pocketcoder sandbox run: usage: pocketcoder sandbox run NAME [--root] -- COMMAND "
                        "[ARGS...]\n");
                return CLI_EXIT_USAGE;
        }
        if (check_name("sandbox run", name) < 0)
                return CLI_EXIT_USAGE;
        return session(g, "sandbox run", name, "run", (const char *const *)argv + i, as_root, false);
}

int cmd_sandbox(int argc, char **argv, const cli_global *gg)
{
        cli_global g = *gg;
        const char *sub;

        if (argc < 2)
                return usage(false);
        sub = argv[1];
        if (is_help(sub) || streq(sub, "help"))
                return usage(true);
        if (streq(sub, "create"))
                return sandbox_create(argc - 1, argv + 1, &g);
        if (streq(sub, "list") || streq(sub, "ls"))
                return sandbox_list(argc - 1, argv + 1, &g);
        if (streq(sub, "show") || streq(sub, "stop") || streq(sub, "start"))
                return sandbox_one(sub, argc - 1, argv + 1, &g);
        if (streq(sub, "rm") || streq(sub, "delete"))
                return sandbox_rm(argc - 1, argv + 1, &g);
        if (streq(sub, "run"))
                return sandbox_run(argc - 1, argv + 1, &g);
        fprintf(stderr,
                "pocketcoder sandbox: unknown subcommand \"%s\" (expected create, list, show, stop, start, "
                "rm, run)\n",
                sub);
        return CLI_EXIT_USAGE;
}

int cmd_enter(int argc, char **argv, const cli_global *g)
{
        const char *name;

        if (argc == 2 && is_help(argv[1])) {
                printf("Usage: pocketcoder enter NAME\n"
                       "\n"
                       "Attaches this terminal to sandbox NAME's tmux session, as the agent and with the "
                       "agent's\n"
                       "restrictions: you see and type into what the AI sees. Detach with the tmux prefix "
                       "and d\n"
                       "(Ctrl-b d); the sandbox keeps running. Admin only: root or a member of the daemon's socket\n"
                       "group, on its unix socket. The terminal inside is a pty the daemon allocates in the sandbox;\n"
                       "what it prints reaches yours through a filter that drops control strings (OSC, DCS, ...).\n"
                       "Recorded in the audit log.\n");
                return CLI_EXIT_OK;
        }
        if (argc != 2) {
                fprintf(stderr, "pocketcoder enter: expected exactly one sandbox NAME\n");
                return CLI_EXIT_USAGE;
        }
        name = argv[1];
        if (check_name("enter", name) < 0)
                return CLI_EXIT_USAGE;
        return session(g, "enter", name, "enter", NULL, false, true);
}
