/* SPDX-License-Identifier: MIT */
/* pocketcoderd, the composition root: flags, the daemon (daemon/) and its HTTP surface (api/), wired
 * together here so that neither knows the other's insides: api/ calls the daemon's interface, and the
 * daemon reaches api/ only through the agent-connection callback set below. */
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <systemd/sd-daemon.h>

#include "api.h"
#include "common.h"
#include "daemon.h"

static void help(void)
{
        printf("Usage: pocketcoderd [OPTIONS]\n"
               "\n"
               "The PocketCoder daemon: kernel-isolated sandboxes for AI coding agents, a policy\n"
               "gatekeeper for every command, and the HTTP API for the relay, the engine and the CLI.\n"
               "\n"
               "Options:\n"
               "  --config FILE        configuration file (default %s; must exist when given)\n"
               "  --policy-dir DIR     policy files (default %s)\n"
               "  --state-dir DIR      state: state.db, workspaces, images (default %s)\n"
               "  --runtime-dir DIR    runtime: api.sock, per-sandbox sockets (default %s)\n"
               "  --listen ADDR:PORT   also serve HTTP on TCP (loopback unless allow_remote_listen)\n"
               "  --log-file FILE      append logs to FILE instead of stderr\n"
               "  --log-level LEVEL    error, warning, notice, info (default) or debug\n"
               "  --pid-file FILE      write the daemon's pid to FILE once it is ready\n"
               "  --daemonize          go to the background; exit 0 once the API answers\n"
               "  --reset-state        when the state database was lost while sandboxes of this\n"
               "                       daemon still run: stop them first, then start (see pocketcoderd(8))\n"
               "  -h --help            show this help\n"
               "  --version            show the version\n"
               "  --list-routes        print the HTTP routes served (METHOD PATH) and exit\n"
               "\n"
               "Signals: SIGTERM/SIGINT stop cleanly (sandboxes keep running), SIGHUP reloads.\n"
               "See pocketcoderd(8) in docs/man/pocketcoderd.md.\n",
               PC_DEFAULT_CONFIG, PC_DEFAULT_POLICY_DIR, PC_DEFAULT_STATE_DIR, PC_DEFAULT_RUNTIME_DIR);
}

/* Returns 1 to run, 0 to exit successfully (--help), negative on a usage error (already printed). */
static int parse_argv(int argc, char **argv, pc_config *c, bool *ret_daemonize)
{
        enum {
                ARG_CONFIG = 0x100,
                ARG_POLICY_DIR,
                ARG_STATE_DIR,
                ARG_RUNTIME_DIR,
                ARG_LISTEN,
                ARG_LOG_FILE,
                ARG_LOG_LEVEL,
                ARG_PID_FILE,
                _ARG_VALUE_MAX,
                ARG_DAEMONIZE,
                ARG_RESET_STATE,
                ARG_VERSION,
                ARG_LIST_ROUTES,
        };
        static const struct option options[] = {
                { "config", required_argument, NULL, ARG_CONFIG },
                { "policy-dir", required_argument, NULL, ARG_POLICY_DIR },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "log-file", required_argument, NULL, ARG_LOG_FILE },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "pid-file", required_argument, NULL, ARG_PID_FILE },
                { "daemonize", no_argument, NULL, ARG_DAEMONIZE },
                { "reset-state", no_argument, NULL, ARG_RESET_STATE },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "list-routes", no_argument, NULL, ARG_LIST_ROUTES },
                {},
        };
        /* The config-file key each value flag sets: flags win over the file, so they are applied after
         * it, through the same parser (one set of rules for both). */
        static const char *const keys[_ARG_VALUE_MAX - ARG_CONFIG] = {
                [ARG_POLICY_DIR - ARG_CONFIG] = "policy_dir",   [ARG_STATE_DIR - ARG_CONFIG] = "state_dir",
                [ARG_RUNTIME_DIR - ARG_CONFIG] = "runtime_dir", [ARG_LISTEN - ARG_CONFIG] = "listen",
                [ARG_LOG_FILE - ARG_CONFIG] = "log_file",       [ARG_LOG_LEVEL - ARG_CONFIG] = "log_level",
        };
        const char *given[_ARG_VALUE_MAX - ARG_CONFIG] = {};
        _cleanup_pc_error_ pc_error *e = NULL;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (opt >= ARG_CONFIG && opt < _ARG_VALUE_MAX) {
                        given[opt - ARG_CONFIG] = optarg;
                        continue;
                }
                switch (opt) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("pocketcoderd %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_LIST_ROUTES:
                        api_routes_print(stdout);
                        return 0;
                case ARG_DAEMONIZE:
                        *ret_daemonize = true;
                        break;
                case ARG_RESET_STATE:
                        c->reset_state = true;
                        break;
                default:
                        fprintf(stderr, "Try 'pocketcoderd --help'.\n");
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "pocketcoderd: unexpected argument \"%s\". Try 'pocketcoderd --help'.\n",
                        argv[optind]);
                return -EINVAL;
        }
        if (given[0]) {
                free(c->config_path);
                c->config_path = strdup(given[0]);
                if (!c->config_path)
                        return -ENOMEM;
        }
        r = pc_config_load(c, c->config_path, !!given[0], &e);
        if (r < 0) {
                fprintf(stderr, "pocketcoderd: %s\n", e ? e->message : strerror(-r));
                return r;
        }
        for (size_t i = 0; i < ELEMENTSOF(given); i++) {
                if (!given[i] || !keys[i])
                        continue;
                r = pc_config_apply(c, keys[i], given[i], &e);
                if (r < 0) {
                        fprintf(stderr, "pocketcoderd: --%s: %s\n", options[i].name, e ? e->message : strerror(-r));
                        return r;
                }
        }
        if (given[ARG_PID_FILE - ARG_CONFIG]) {
                free(c->pid_file);
                c->pid_file = strdup(given[ARG_PID_FILE - ARG_CONFIG]);
                if (!c->pid_file)
                        return -ENOMEM;
        }
        r = pc_config_validate(c, &e);
        if (r < 0) {
                fprintf(stderr, "pocketcoderd: %s\n", e ? e->message : strerror(-r));
                return r;
        }
        return 1;
}

/* Forks; the parent waits until the child reports readiness over a pipe and exits with its verdict, so
 * "pocketcoderd --daemonize && pocketcoder status" never races. Returns the write end in the child. */
static int daemonize(const char *log_file)
{
        int pipefd[2];
        pid_t pid;
        char c;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return log_error_errno(errno, "pipe2(): %m");
        pid = fork();
        if (pid < 0)
                return log_error_errno(errno, "fork(): %m");
        if (pid > 0) {
                ssize_t k;

                safe_close(pipefd[1]);
                do
                        k = read(pipefd[0], &c, 1);
                while (k < 0 && errno == EINTR);
                if (k == 1 && c == 'R')
                        _exit(EXIT_SUCCESS);
                fprintf(stderr, "pocketcoderd: failed to start%s%s\n", log_file ? "; see " : "",
                        log_file ?: "");
                _exit(EXIT_FAILURE);
        }
        safe_close(pipefd[0]);
        if (setsid() < 0)
                return log_error_errno(errno, "setsid(): %m");
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
                (void) dup2(null, STDIN_FILENO);
                if (log_file) {
                        (void) dup2(null, STDOUT_FILENO);
                        (void) dup2(null, STDERR_FILENO);
                }
                safe_close(null);
        }
        return pipefd[1];
}

static int write_pid_file(const char *path)
{
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%d\n", (int) getpid());

        return write_file_atomic(path, buf, (size_t) n, 0644);
}

/* The gid of the socket group, looked up before any thread exists; (gid_t) -1 when there is none. */
static gid_t socket_gid(const char *group)
{
        struct group gr, *res = NULL;
        char buf[4096];

        if (!group || getgrnam_r(group, &gr, buf, sizeof(buf), &res) != 0 || !res)
                return (gid_t) -1;
        return res->gr_gid;
}

static void on_agent_connection(void *userdata, int fd, const char *sandbox, const char *instance)
{
        (void) api_server_add_agent_connection(userdata, fd, sandbox, instance);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(pc_daemon *, pc_daemon_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(api_server *, api_server_free);

/* The order matters at both ends: the daemon exists before the HTTP threads start (they inherit its
 * signal mask and call into it) and outlives them: api_server_free() joins every HTTP thread before
 * pc_daemon_free() closes the store. The cleanups run in reverse order of declaration. */
static int run(pc_config *config, int ready_fd)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        _cleanup_free_ char *socket_path = NULL;
        _cleanup_(pc_daemon_freep) pc_daemon *d = NULL;
        _cleanup_(api_server_freep) api_server *srv = NULL;
        struct sockaddr_storage tcp;
        socklen_t tcp_len = 0;
        bool loopback;
        int r;

        r = pc_daemon_new(config, &d, &e);
        if (r < 0)
                return log_error_errno(r, "%s", e ? e->message : "cannot start: %m");
        const pc_config *c = pc_daemon_config(d);
        socket_path = strjoin(c->runtime_dir, "/api.sock");
        if (!socket_path)
                return log_oom();
        if (c->listen) {
                r = pc_listen_address(c->listen, &tcp, &tcp_len, &loopback);
                if (r < 0)
                        return log_error_errno(r, "invalid listen address \"%s\"", c->listen);
        }
        r = api_server_start(d,
                             &(api_options){
                                     .socket_path = socket_path,
                                     .socket_gid = socket_gid(c->socket_group),
                                     .tcp_address = c->listen ? (struct sockaddr *) &tcp : NULL,
                                     .tcp_address_len = tcp_len,
                                     .max_body_size = c->max_body_size,
                                     .threads = c->api_threads,
                                     .idle_timeout = c->http_idle_timeout,
                                     .tcp_connections_max = c->tcp_max_connections,
                                     .tcp_connections_per_address = c->tcp_max_connections_per_address,
                                     .tcp_auth_timeout = c->tcp_auth_timeout,
                                     .ssh_socket_path = c->ssh_socket,
                                     .ssh_socket_gid = socket_gid(c->ssh_group),
                             },
                             &srv, &e);
        if (r < 0)
                return log_error_errno(r, "%s", e ? e->message : "cannot start the API");
        pc_daemon_set_agent_handler(d, on_agent_connection, srv);

        log_info("pocketcoderd %s ready on %s", PACKAGE_VERSION, socket_path);
        if (c->listen)
                log_info("also serving HTTP on %s (port %u)", c->listen, api_server_tcp_port(srv));
        if (c->ssh_socket && socket_gid(c->ssh_group) != (gid_t) -1)
                log_info("SSH gateway on %s (group %s)", c->ssh_socket, c->ssh_group);
        if (c->pid_file) {
                r = write_pid_file(c->pid_file);
                if (r < 0)
                        log_warning_errno(r, "cannot write pid file %s: %m, ignoring", c->pid_file);
        }
        if (ready_fd >= 0) {
                (void) write_all(ready_fd, "R", 1);
                safe_close(ready_fd);
        }
        (void) sd_notify(0, "READY=1");

        r = pc_daemon_run(d);
        if (r < 0)
                log_error_errno(r, "event loop failed: %m");
        (void) sd_notify(0, "STOPPING=1");
        pc_daemon_set_agent_handler(d, NULL, NULL);
        srv = api_server_free(srv);
        if (c->pid_file)
                (void) unlink(c->pid_file);
        return r;
}

int main(int argc, char **argv)
{
        _cleanup_fclose_ FILE *log_file = NULL;
        pc_config config;
        bool daemon_mode = false;
        int ready_fd = -EBADF, r;

        pc_config_init(&config);
        r = parse_argv(argc, argv, &config, &daemon_mode);
        if (r <= 0) {
                pc_config_done(&config);
                return r < 0 ? 2 : 0;
        }
        log_max_level = config.log_level;
        if (config.log_file) {
                int fd = open(config.log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
                if (fd < 0 || !(log_file = fdopen(fd, "a"))) {
                        fprintf(stderr, "pocketcoderd: cannot open log file %s: %m\n", config.log_file);
                        safe_close(fd);
                        pc_config_done(&config);
                        return 1;
                }
                log_set_target_file(log_file);
        }
        if (daemon_mode) {
                ready_fd = daemonize(config.log_file);
                if (ready_fd < 0) {
                        pc_config_done(&config);
                        return 1;
                }
        }
        r = run(&config, ready_fd);
        pc_config_done(&config);
        log_set_target_file(NULL);
        return r < 0 ? 1 : 0;
}
