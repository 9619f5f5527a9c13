/* SPDX-License-Identifier: MIT */
/* pocketcoderd: configuration, state, the API server and the signal loop. */
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "api.h"
#include "daemon-internal.h"
#include "policy-manager.h"

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

/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET. Only used when systemd set it. */
static void notify(const char *state)
{
        const char *path = getenv("NOTIFY_SOCKET");
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        size_t n;

        if (isempty(path) || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(sa.sun_path))
                return;
        n = strlen(path);
        memcpy(sa.sun_path, path, n);
        if (sa.sun_path[0] == '@')
                sa.sun_path[0] = 0;
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return;
        if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *) &sa,
                   offsetof(struct sockaddr_un, sun_path) + n) < 0)
                log_debug_errno(errno, "sd_notify(\"%s\") failed: %m", state);
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

/* One daemon per state directory: a second one would corrupt nothing (sqlite locks) but would fight over
 * sandboxes and the socket. The lock dies with the process, so kill -9 never leaves it stale. */
static int lock_state_dir(const char *state_dir)
{
        _cleanup_free_ char *path = strjoin(state_dir, "/pocketcoderd.lock");
        _cleanup_close_ int fd = -EBADF;

        if (!path)
                return -ENOMEM;
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return log_error_errno(errno, "cannot open %s: %m", path);
        if (flock(fd, LOCK_EX | LOCK_NB) < 0)
                return log_error_errno(errno,
                                       "another pocketcoderd is using %s (lock %s held); stop it first or "
                                       "use another --state-dir",
                                       state_dir, path);
        return TAKE_FD(fd);
}

static int run(pc_daemon *d, int ready_fd)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        _cleanup_free_ char *socket_path = NULL, *db_path = NULL;
        _cleanup_close_ int lock_fd = -EBADF, sfd = -EBADF;
        struct sockaddr_storage tcp;
        socklen_t tcp_len = 0;
        api_server *srv = NULL;
        struct group *gr;
        sigset_t mask;
        bool loopback;
        int r;

        r = mkdir_p(d->config.state_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "cannot create state directory %s: %m", d->config.state_dir);
        r = mkdir_p(d->config.runtime_dir, 0755);
        if (r < 0)
                return log_error_errno(r, "cannot create runtime directory %s: %m", d->config.runtime_dir);
        lock_fd = lock_state_dir(d->config.state_dir);
        if (lock_fd < 0)
                return lock_fd;

        db_path = strjoin(d->config.state_dir, "/state.db");
        socket_path = strjoin(d->config.runtime_dir, "/api.sock");
        if (!db_path || !socket_path)
                return log_oom();
        r = pc_store_open(&d->store, db_path, &e);
        if (r < 0)
                return log_error_errno(r, "%s", e ? e->message : "cannot open the state database");
        r = mkdir_p(d->config.policy_dir, 0755);
        if (r < 0)
                log_warning_errno(r, "cannot create policy directory %s: %m, ignoring", d->config.policy_dir);
        r = pc_policy_manager_new(d->config.policy_dir, &d->policies);
        if (r < 0)
                return log_oom();
        r = pc_policy_manager_reload(d->policies);
        if (r < 0)
                return log_error_errno(r, "cannot load policies: %m");
        r = pc_daemon_probe_host(d);
        if (r < 0)
                log_warning_errno(r, "cannot probe host capabilities: %m, ignoring");
        d->event_fd = epoll_create1(EPOLL_CLOEXEC);
        if (d->event_fd < 0)
                return log_error_errno(errno, "epoll_create1(): %m");
        r = pc_sandbox_manager_new(d, &e);
        if (r < 0)
                return log_error_errno(r, "%s", e ? e->message : "cannot start the sandbox manager");

        /* Signals are read from a signalfd in this loop; block them first so no handler runs in the
         * API's threads (they inherit the mask). */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        sfd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (sfd < 0)
                return log_error_errno(errno, "signalfd(): %m");

        if (d->config.listen) {
                r = pc_listen_address(d->config.listen, &tcp, &tcp_len, &loopback);
                if (r < 0)
                        return log_error_errno(r, "invalid listen address \"%s\"", d->config.listen);
        }
        gr = d->config.socket_group ? getgrnam(d->config.socket_group) : NULL;
        r = api_server_start(d,
                             &(api_options){
                                     .socket_path = socket_path,
                                     .socket_gid = gr ? gr->gr_gid : (gid_t) -1,
                                     .tcp_address = d->config.listen ? (struct sockaddr *) &tcp : NULL,
                                     .tcp_address_len = tcp_len,
                                     .max_body_size = d->config.max_body_size,
                                     .threads = d->config.api_threads,
                             },
                             &srv, &e);
        if (r < 0)
                return log_error_errno(r, "%s", e ? e->message : "cannot start the API");

        log_info("pocketcoderd %s ready on %s", PACKAGE_VERSION, socket_path);
        if (d->config.listen)
                log_info("also serving HTTP on %s (port %u)", d->config.listen, api_server_tcp_port(srv));
        if (d->config.pid_file) {
                r = write_pid_file(d->config.pid_file);
                if (r < 0)
                        log_warning_errno(r, "cannot write pid file %s: %m, ignoring", d->config.pid_file);
        }
        if (ready_fd >= 0) {
                (void) write_all(ready_fd, "R", 1);
                safe_close(ready_fd);
        }
        notify("READY=1");

        /* The main thread waits on host events only: signals and policy-directory changes. */
        if (epoll_ctl(d->event_fd, EPOLL_CTL_ADD, sfd, &(struct epoll_event){ .events = EPOLLIN, .data.fd = sfd }) < 0)
                return log_error_errno(errno, "epoll: %m");
        int ifd = pc_policy_manager_inotify_fd(d->policies);
        if (ifd >= 0 && epoll_ctl(d->event_fd, EPOLL_CTL_ADD, ifd, &(struct epoll_event){ .events = EPOLLIN, .data.fd = ifd }) < 0)
                return log_error_errno(errno, "epoll: %m");

        for (bool running = true; running;) {
                struct epoll_event ev;
                struct signalfd_siginfo si;
                int n = epoll_wait(d->event_fd, &ev, 1, -1);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = log_error_errno(errno, "epoll_wait: %m");
                        break;
                }
                if (ev.data.fd == ifd) {
                        if (pc_policy_manager_process_inotify(d->policies) > 0)
                                (void) pc_policy_manager_reload(d->policies);
                        continue;
                }
                if (ev.data.fd != sfd) {
                        pc_sandboxes_reap(d); /* a sandbox init's pidfd */
                        continue;
                }
                if (read(sfd, &si, sizeof(si)) != sizeof(si))
                        continue;
                switch (si.ssi_signo) {
                case SIGHUP:
                        notify("RELOADING=1");
                        log_info("SIGHUP: reloading policies");
                        (void) pc_policy_manager_reload(d->policies);
                        notify("READY=1");
                        break;
                case SIGTERM:
                case SIGINT:
                        log_info("%s: stopping (sandboxes keep running)", strsignal((int) si.ssi_signo));
                        r = 0;
                        running = false;
                        break;
                }
        }
        notify("STOPPING=1");
        srv = api_server_free(srv);
        if (d->config.pid_file)
                (void) unlink(d->config.pid_file);
        return r;
}

int main(int argc, char **argv)
{
        _cleanup_fclose_ FILE *log_file = NULL;
        pc_daemon d = { .event_fd = -EBADF };
        bool daemon_mode = false;
        int ready_fd = -EBADF, r;

        pc_config_init(&d.config);
        r = parse_argv(argc, argv, &d.config, &daemon_mode);
        if (r <= 0) {
                pc_config_done(&d.config);
                return r < 0 ? 2 : 0;
        }
        log_max_level = d.config.log_level;
        if (d.config.log_file) {
                int fd = open(d.config.log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
                if (fd < 0 || !(log_file = fdopen(fd, "a"))) {
                        fprintf(stderr, "pocketcoderd: cannot open log file %s: %m\n", d.config.log_file);
                        safe_close(fd);
                        pc_config_done(&d.config);
                        return 1;
                }
                log_set_target_file(log_file);
        }
        if (daemon_mode) {
                ready_fd = daemonize(d.config.log_file);
                if (ready_fd < 0) {
                        pc_config_done(&d.config);
                        return 1;
                }
        }
        d.started_realtime_usec = now_usec(CLOCK_REALTIME);
        d.started_monotonic_usec = now_usec(CLOCK_MONOTONIC);

        r = run(&d, ready_fd);

        pc_store_close(&d.store);
        pc_sandbox_manager_free(&d);
        d.event_fd = safe_close(d.event_fd);
        d.policies = pc_policy_manager_free(d.policies);
        json_decref(d.host_caps);
        pc_config_done(&d.config);
        log_set_target_file(NULL);
        return r < 0 ? 1 : 0;
}
