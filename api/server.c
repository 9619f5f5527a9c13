/* SPDX-License-Identifier: MIT */
/* The HTTP server: libmicrohttpd daemons for the unix socket, TCP and the sandboxes' agent sockets,
 * authentication, and dispatch on the route table (routes.c). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "api-internal.h"

typedef struct api_listener {
        struct api_server *server;
        api_listener_kind kind;
} api_listener;

/* Agent connections handed over but not yet started by libmicrohttpd (which runs that in a pool
 * thread): their fd says whose agent they are until the connection takes the name over. */
typedef struct pending_agent {
        int fd;
        api_agent_identity id;
} pending_agent;

/* Open agent connections per sandbox: one sandbox must not use up the connections every sandbox's agent
 * shares (libmicrohttpd's limit is per daemon). */
#define AGENT_CONNECTIONS_MAX 64u
/* The unix socket's and the agent sockets' daemons: only local peers reach them. */
#define UNIX_CONNECTIONS_MAX 4096u
typedef struct agent_count {
        char sandbox[64];
        unsigned n;
} agent_count;

/* TCP connections that have not completed an authenticated request yet, each with the time it must have
 * by. libmicrohttpd's connection timeout only counts silence, so a client trickling a byte a second would
 * hold its connection for hours; the watchdog thread shuts such connections down at their deadline
 * (libmicrohttpd then sees the end of the stream and closes them). The entry goes under the lock in the
 * CLOSED notification, which libmicrohttpd sends before it closes the fd: an fd here is never re-used. */
typedef struct tcp_deadline {
        int fd;
        uint64_t deadline; /* CLOCK_MONOTONIC usec */
} tcp_deadline;

typedef struct tcp_watchdog {
        pthread_mutex_t lock;
        pthread_cond_t changed;
        pthread_t thread;
        bool running, stop;
        uint64_t timeout; /* usec */
        tcp_deadline *entries;
        size_t n;
} tcp_watchdog;
/* How long a stopping server waits for requests in flight: above a sandbox stop's 5 s grace period. */
#define API_STOP_TIMEOUT_USEC (15 * 1000000ULL)

struct api_server {
        pc_daemon *daemon;
        uint64_t max_body_size;
        gid_t socket_gid;
        struct MHD_Daemon *unix_httpd, *tcp_httpd, *agent_httpd, *ssh_httpd;
        api_listener unix_listener, tcp_listener, agent_listener, ssh_listener;
        char *ssh_socket_path;
        unsigned tcp_port;
        tcp_watchdog watchdog;
        char *socket_path;
        api_waiting waiting;
        pthread_mutex_t pending_lock; /* guards pending and counts */
        pending_agent *pending;
        size_t n_pending;
        agent_count *counts;
        size_t n_counts;
        api_sessions sessions;
};

/* The count of SANDBOX's agent connections (created at 0), or NULL without memory. With pending_lock. */
static agent_count *agent_count_get(api_server *s, const char *sandbox)
{
        agent_count *c;

        for (size_t i = 0; i < s->n_counts; i++)
                if (streq(s->counts[i].sandbox, sandbox))
                        return &s->counts[i];
        c = realloc(s->counts, (s->n_counts + 1) * sizeof(*c));
        if (!c)
                return NULL;
        s->counts = c;
        c = &s->counts[s->n_counts++];
        *c = (agent_count){};
        snprintf(c->sandbox, sizeof(c->sandbox), "%s", sandbox);
        return c;
}

static void request_free(api_request *rq)
{
        if (!rq)
                return;
        api_session_abandon(rq);
        api_files_free(rq);
        free(rq->body);
        json_decref(rq->json);
        free(rq);
}

static void on_request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                                 enum MHD_RequestTerminationCode toe)
{
        api_request *rq = *con_cls;
        api_listener *l = cls;

        /* A request is only ever freed resumed, but never leave a waiter registered behind. */
        if (rq && rq->suspended)
                pc_event_wait_done(l->server->daemon, &rq->waiter);
        if (rq)
                api_request_uncount(rq);
        request_free(rq);
        *con_cls = NULL;
}

static void *watchdog_main(void *userdata)
{
        tcp_watchdog *w = userdata;

        LOCK_GUARD(&w->lock);
        while (!w->stop) {
                uint64_t now = now_usec(CLOCK_MONOTONIC), next = UINT64_MAX;

                for (size_t i = 0; i < w->n;) {
                        if (w->entries[i].deadline <= now) {
                                log_debug("closing TCP connection (fd %d): no authenticated request in time",
                                          w->entries[i].fd);
                                (void) shutdown(w->entries[i].fd, SHUT_RDWR);
                                w->entries[i] = w->entries[--w->n];
                                continue;
                        }
                        next = MIN(next, w->entries[i].deadline);
                        i++;
                }
                if (next == UINT64_MAX)
                        pthread_cond_wait(&w->changed, &w->lock);
                else {
                        struct timespec ts = { .tv_sec = (time_t) (next / 1000000),
                                               .tv_nsec = (long) (next % 1000000) * 1000 };
                        (void) pthread_cond_timedwait(&w->changed, &w->lock, &ts);
                }
        }
        return NULL;
}

static void watchdog_add(tcp_watchdog *w, int fd)
{
        LOCK_GUARD(&w->lock);
        tcp_deadline *e = realloc(w->entries, (w->n + 1) * sizeof(*e));

        if (!e) { /* without memory the connection is cut now rather than left unbounded */
                (void) shutdown(fd, SHUT_RDWR);
                return;
        }
        w->entries = e;
        w->entries[w->n++] = (tcp_deadline){ .fd = fd, .deadline = now_usec(CLOCK_MONOTONIC) + w->timeout };
        pthread_cond_signal(&w->changed);
}

static void watchdog_remove(tcp_watchdog *w, int fd)
{
        LOCK_GUARD(&w->lock);
        for (size_t i = 0; i < w->n; i++)
                if (w->entries[i].fd == fd) {
                        w->entries[i] = w->entries[--w->n];
                        return;
                }
}

static int connection_fd(struct MHD_Connection *c)
{
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

        return info ? info->connect_fd : -EBADF;
}

void api_request_trusted(api_request *rq)
{
        if (rq->listener == API_LISTENER_TCP)
                watchdog_remove(rq->watchdog, connection_fd(rq->conn));
}

/* Who is on the other end of a unix-socket connection. */
static int peer_credentials(struct MHD_Connection *c, struct ucred *ret)
{
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        socklen_t len = sizeof(*ret);

        if (!info)
                return -EBADF;
        if (getsockopt(info->connect_fd, SOL_SOCKET, SO_PEERCRED, ret, &len) < 0)
                return -errno;
        return 0;
}

/* Called from pool threads: only the reentrant lookups (getpwuid() shares one static buffer between
 * threads; getgrouplist() is thread-safe). Looked up per connection, so a user added to the group later
 * needs no restart. */
static bool uid_in_group(uid_t uid, gid_t peer_gid, gid_t group)
{
        _cleanup_free_ char *buf = NULL;
        _cleanup_free_ gid_t *groups = NULL;
        struct passwd pw, *res = NULL;
        size_t bufsz = 1024;
        int n = 32, r;

        if (group == (gid_t) -1)
                return false;
        if (peer_gid == group)
                return true;
        /* Supplementary groups: the socket's mode already admits only members, but a member's primary
         * group need not be pocketcoder. */
        for (;;) {
                free(buf);
                buf = malloc(bufsz);
                if (!buf)
                        return false;
                r = getpwuid_r(uid, &pw, buf, bufsz, &res);
                if (r != ERANGE || bufsz >= 1024 * 1024)
                        break;
                bufsz *= 2;
        }
        if (r != 0 || !res)
                return false;
        for (;;) {
                int want = n;
                gid_t *g = realloc(groups, (size_t) n * sizeof(gid_t));

                if (!g)
                        return false;
                groups = g;
                if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) >= 0)
                        break;
                if (n <= want) /* no growth asked for: give up rather than loop */
                        return false;
        }
        for (int i = 0; i < n; i++)
                if (groups[i] == group)
                        return true;
        return false;
}

/* Fills rq->principal. Bearer tokens work on both listeners; on the unix socket, a peer that is root or
 * in the socket's group is a local admin without a token (like the docker group). */
static int authenticate(api_request *rq)
{
        const char *h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        int r;

        /* The SSH gateway socket: its group's members are the SSH login's helper, nothing more, whatever
         * they send. */
        if (rq->listener == API_LISTENER_SSH) {
                struct ucred cred;

                if (peer_credentials(rq->conn, &cred) < 0)
                        return api_reply_error(rq, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                                               "cannot read the peer's credentials");
                rq->principal = (pc_principal){ .role = PC_ROLE_SSH, .uid = cred.uid };
                rq->authenticated = true;
                return MHD_YES;
        }
        /* The agent socket is reachable from inside one sandbox only: whoever connects is its agent,
         * whatever they send (a token found inside changes nothing). */
        if (rq->listener == API_LISTENER_AGENT) {
                if (!rq->agent)
                        return api_reply_error(rq, MHD_HTTP_FORBIDDEN, "forbidden",
                                               "this agent connection belongs to no sandbox");
                /* Bound to the sandbox it was accepted for, not to its name: once that sandbox is
                 * deleted the connection speaks for no one, also if a new one of that name exists. */
                if (pc_daemon_authenticate_agent(rq->daemon, rq->agent->sandbox, rq->agent->instance,
                                                 &rq->principal) < 0)
                        return api_reply_error(rq, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                                               "sandbox \"%s\" this agent connection belonged to was deleted",
                                               rq->agent->sandbox);
                rq->authenticated = true;
                return MHD_YES;
        }
        if (h) {
                if (strncasecmp(h, "Bearer ", 7) != 0)
                        return api_reply_error(rq, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                                               "Authorization header must be \"Bearer TOKEN\"");
                r = pc_daemon_authenticate(rq->daemon, h + 7, &rq->principal);
                if (r < 0)
                        return api_reply_error(rq, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                                               "the token is not valid (revoked, expired, mistyped or from "
                                               "another daemon); create one with \"pocketcoder token create\"");
                rq->authenticated = true;
                /* A known client: off the watchdog; only the idle timeout applies from now on. */
                if (rq->listener == API_LISTENER_TCP)
                        watchdog_remove(rq->watchdog, connection_fd(rq->conn));
                return MHD_YES;
        }
        if (rq->listener == API_LISTENER_UNIX) {
                struct ucred cred;

                if (peer_credentials(rq->conn, &cred) >= 0 &&
                    (cred.uid == 0 || uid_in_group(cred.uid, cred.gid, rq->socket_gid))) {
                        rq->principal = (pc_principal){ .role = PC_ROLE_ADMIN, .local_peer = true, .uid = cred.uid };
                        rq->authenticated = true;
                        return MHD_YES;
                }
        }
        return api_reply_error(rq, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                               "this endpoint needs \"Authorization: Bearer TOKEN\"");
}

static int parse_body(api_request *rq)
{
        json_error_t jerr;

        if (rq->body_len == 0) {
                rq->json = NULL;
                return 0;
        }
        rq->json = json_loadb(rq->body, rq->body_len, PC_JSON_REQUEST_FLAGS, &jerr);
        if (!rq->json)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "malformed_json",
                                       "request body is not valid JSON: line %d column %d: %s", jerr.line,
                                       jerr.column, jerr.text) == MHD_YES
                               ? -EINVAL
                               : -EIO;
        return 0;
}

static bool content_type_is_json(const char *ct)
{
        size_t n = STRLEN("application/json");

        return ct && strncasecmp(ct, "application/json", n) == 0 && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

/* Matches `path` against `pattern` segment by segment; {x} takes one non-empty segment. Parameters are
 * copied into rq->path_buf so handlers get NUL-terminated strings. */
static bool match(api_request *rq, const char *pattern, const char *path)
{
        char *out = rq->path_buf, *end = rq->path_buf + sizeof(rq->path_buf);
        size_t np = 0;

        rq->tail = NULL;
        for (;;) {
                /* {path*}, the last segment: the rest of the path, slashes and all (the files API). */
                if (startswith(pattern, "{path*}")) {
                        size_t n = strlen(path);

                        if (n == 0 || out + n + 1 > end)
                                return false;
                        memcpy(out, path, n + 1);
                        rq->tail = out;
                        return pattern[STRLEN("{path*}")] == 0;
                }
                if (*pattern == '{') {
                        const char *seg_end = strchrnul(path, '/');
                        size_t n = (size_t) (seg_end - path);

                        if (n == 0 || np >= ELEMENTSOF(rq->params) || out + n + 1 > end)
                                return false;
                        memcpy(out, path, n);
                        out[n] = 0;
                        rq->params[np++] = out;
                        out += n + 1;
                        path = seg_end;
                        pattern = strchr(pattern, '}') + 1;
                        continue;
                }
                if (*pattern != *path)
                        return false;
                if (*pattern == 0)
                        return true;
                pattern++;
                path++;
        }
}

/* Authentication, path parameters, content type and body parsing, shared by every route; then the
 * handler. */
static int run_route(api_request *rq, const api_route *route)
{
        int r;

        rq->route = route;
        /* One check for every path parameter (sandbox, policy and image names, token ids): all are names. */
        for (size_t i = 0; i < ELEMENTSOF(rq->params) && rq->params[i]; i++)
                if (!name_is_valid(rq->params[i]))
                        return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_path",
                                               "\"%s\" in %s is not a valid name (lowercase letters, digits and "
                                               "'-', at most 63 characters)",
                                               rq->params[i], rq->url);
        if (route->roles != API_NO_AUTH) {
                r = authenticate(rq);
                if (!rq->authenticated)
                        return r;
                if (!(route->roles & (1u << rq->principal.role)) && rq->principal.agent_socket)
                        return api_reply_error(rq, MHD_HTTP_FORBIDDEN, "forbidden",
                                               "the agent of sandbox \"%s\" may not %s %s", rq->principal.sandbox,
                                               rq->method, rq->url);
                if (!(route->roles & (1u << rq->principal.role)))
                        return api_reply_error(rq, MHD_HTTP_FORBIDDEN, "forbidden",
                                               "a %s token may not %s %s", pc_role_to_string(rq->principal.role),
                                               rq->method, rq->url);
        }
        if (rq->body_len > 0) {
                const char *ct = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
                                                             MHD_HTTP_HEADER_CONTENT_TYPE);
                if (!content_type_is_json(ct))
                        return api_reply_error(rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                                               "request body must be sent as Content-Type: application/json");
                r = parse_body(rq);
                if (r < 0)
                        return r == -EINVAL ? MHD_YES : MHD_NO;
        }
        return route->handler(rq);
}

/* A PUT to a {path*} route (an upload to the files API): its body is streamed to the handler
 * (api_files_upload_data) rather than collected in memory, so it is routed and authenticated before it. */
static bool streams_body(api_request *rq)
{
        if (!streq(rq->method, MHD_HTTP_METHOD_PUT))
                return false;
        for (size_t i = 0; i < api_routes_n; i++)
                if (streq(api_routes[i].method, MHD_HTTP_METHOD_PUT) && strstr(api_routes[i].pattern, "{path*}") &&
                    match(rq, api_routes[i].pattern, rq->url))
                        return true;
        return false;
}

static int dispatch(api_request *rq)
{
        char allow[128] = "", trimmed[sizeof(rq->path_buf)];
        const char *path = rq->url;
        size_t n = strlen(path);

        /* A trailing slash names the same resource. */
        if (n > 1 && path[n - 1] == '/' && n < sizeof(trimmed)) {
                memcpy(trimmed, path, n - 1);
                trimmed[n - 1] = 0;
                path = trimmed;
        }
        for (size_t i = 0; i < api_routes_n; i++) {
                const api_route *route = &api_routes[i];

                if (!match(rq, route->pattern, path))
                        continue;
                if (streq(route->method, rq->method) || (streq(rq->method, "HEAD") && streq(route->method, "GET")))
                        return run_route(rq, route);
                if (!strstr(allow, route->method)) {
                        if (allow[0])
                                strncat(allow, ", ", sizeof(allow) - strlen(allow) - 1);
                        strncat(allow, route->method, sizeof(allow) - strlen(allow) - 1);
                }
        }
        if (allow[0]) {
                rq->allow = allow;
                return api_reply_error(rq, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                       "%s is not allowed on %s (allowed: %s)", rq->method, path, allow);
        }
        return api_reply_error(rq, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint: %s %s", rq->method, path);
}

void api_routes_print(FILE *f)
{
        for (size_t i = 0; i < api_routes_n; i++)
                fprintf(f, "%s %s\n", api_routes[i].method, api_routes[i].pattern);
}

static int unhex(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        c |= 0x20;
        return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -EINVAL;
}

/* The URI as received, before libmicrohttpd decodes it (which would cut "default%00x" to "default"): a
 * control character anywhere in it, encoded or not, is refused for every route (400 in on_access), and so
 * is an encoded '/', which would otherwise split one path segment into two ("x%2Fstop"). The request
 * object starts here and on_access fills it in. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
        api_request *rq = calloc(1, sizeof(*rq));

        if (!rq)
                return NULL;
        for (const char *p = uri; *p; p++) {
                int hi = *p == '%' ? unhex(p[1]) : -EINVAL, lo = hi >= 0 ? unhex(p[2]) : -EINVAL;
                unsigned char c = lo >= 0 ? (unsigned char) (hi * 16 + lo) : (unsigned char) *p;

                if (c < 0x20 || c == 0x7f || (lo >= 0 && c == '/'))
                        rq->bad_uri = true;
        }
        return rq;
}

static void request_init(api_request *rq, api_listener *l, struct MHD_Connection *conn, const char *url,
                         const char *method)
{
        rq->conn = conn;
        rq->daemon = l->server->daemon;
        rq->max_body_size = l->server->max_body_size;
        rq->listener = l->kind;
        rq->sessions = &l->server->sessions;
        rq->socket_gid = l->server->socket_gid;
        rq->waiting = &l->server->waiting;
        rq->watchdog = &l->server->watchdog;
        {
                LOCK_GUARD(&rq->waiting->lock);
                rq->waiting->n++;
                rq->waited = true;
        }
        rq->method = method;
        rq->url = url;
        if (l->kind == API_LISTENER_AGENT) {
                const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn,
                                                                               MHD_CONNECTION_INFO_SOCKET_CONTEXT);
                rq->agent = info ? info->socket_context : NULL;
        }
}

static bool stopping(api_waiting *w)
{
        LOCK_GUARD(&w->lock);
        return w->stopping;
}

static int checks_and_dispatch(api_request *rq, const char *version);

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
        api_listener *l = cls;
        api_request *rq = *con_cls;

        if (!rq) /* no memory in on_uri */
                return MHD_NO;
        if (!rq->conn) {
                const char *cl;

                request_init(rq, l, conn, url, method);
                if (stopping(rq->waiting))
                        return api_reply_error(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping",
                                               "pocketcoderd is stopping; try again when it is back");
                if (streams_body(rq)) {
                        rq->stream_body = true;
                        return checks_and_dispatch(rq, version);
                }
                /* Refuse an announced oversized body before reading it. */
                cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (cl && strtoull(cl, NULL, 10) > rq->max_body_size)
                        rq->too_large = true;
                return MHD_YES;
        }

        if (*upload_data_size > 0 && rq->stream_body) {
                if (!rq->replied)
                        api_files_upload_data(rq, upload_data, *upload_data_size);
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                if (!rq->too_large && rq->body_len + *upload_data_size <= rq->max_body_size) {
                        char *p = realloc(rq->body, rq->body_len + *upload_data_size + 1);
                        if (!p)
                                return MHD_NO;
                        rq->body = p;
                        memcpy(rq->body + rq->body_len, upload_data, *upload_data_size);
                        rq->body_len += *upload_data_size;
                        rq->body[rq->body_len] = 0;
                } else
                        rq->too_large = true;
                *upload_data_size = 0;
                return MHD_YES;
        }

        if (rq->replied)
                return MHD_YES;
        /* Resumed: the same handler looks again, as the same principal. */
        if (rq->suspended) {
                pc_event_wait_done(rq->daemon, &rq->waiter);
                rq->suspended = false;
                return rq->route->handler(rq);
        }
        if (rq->stream_body) { /* the whole body was streamed: the handler finishes */
                rq->body_complete = true;
                return rq->route->handler(rq);
        }
        return checks_and_dispatch(rq, version);
}

static int checks_and_dispatch(api_request *rq, const char *version)
{
        struct MHD_Connection *conn = rq->conn;

        if (rq->too_large)
                return api_reply_error(rq, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                                       "request body is larger than %" PRIu64 " bytes", rq->max_body_size);
        if (rq->bad_uri)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_path",
                                       "the request URI contains a control character (such as %%00) or an "
                                       "encoded '/'");
        /* HTTP/1.1 requires Host (RFC 9112 3.2); HTTP/1.0 may leave it out. */
        if (streq(version, MHD_HTTP_VERSION_1_1) &&
            !MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST))
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "missing_host",
                                       "an HTTP/1.1 request must carry a Host header");
        return dispatch(rq);
}

/* Agent connections: the name waiting for the fd becomes the connection's socket context. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
        api_listener *l = cls;
        api_server *s = l->server;

        if (l->kind == API_LISTENER_TCP) {
                int fd = connection_fd(c);

                if (fd < 0)
                        return;
                if (toe == MHD_CONNECTION_NOTIFY_STARTED)
                        watchdog_add(&s->watchdog, fd);
                else
                        watchdog_remove(&s->watchdog, fd);
                return;
        }
        if (l->kind != API_LISTENER_AGENT)
                return;
        if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
                if (*socket_context) {
                        api_agent_identity *id = *socket_context;
                        LOCK_GUARD(&s->pending_lock);
                        agent_count *n = agent_count_get(s, id->sandbox);
                        if (n && n->n > 0)
                                n->n--;
                }
                free(*socket_context);
                *socket_context = NULL;
                return;
        }
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!info)
                return;
        LOCK_GUARD(&s->pending_lock);
        for (size_t i = 0; i < s->n_pending; i++)
                if (s->pending[i].fd == info->connect_fd) {
                        api_agent_identity *id = malloc(sizeof(*id));

                        if (id)
                                *id = s->pending[i].id;
                        *socket_context = id;
                        if (!id) { /* refused as no one's (403): not counted */
                                agent_count *n = agent_count_get(s, s->pending[i].id.sandbox);
                                if (n && n->n > 0)
                                        n->n--;
                        }
                        s->pending[i] = s->pending[--s->n_pending];
                        return;
                }
}

int api_server_add_agent_connection(api_server *s, int fd, const char *sandbox, const char *instance)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t i;

        {
                LOCK_GUARD(&s->pending_lock);
                agent_count *n = agent_count_get(s, sandbox);

                if (!n || n->n >= AGENT_CONNECTIONS_MAX) {
                        safe_close(fd);
                        return log_warning_errno(n ? EMFILE : ENOMEM,
                                                 "sandbox %s: refusing an agent connection (%u open), ignoring",
                                                 sandbox, n ? n->n : 0);
                }
                /* A stale entry for a re-used fd number (a connection that never started) is replaced. */
                for (i = 0; i < s->n_pending && s->pending[i].fd != fd; i++)
                        ;
                if (i == s->n_pending) {
                        pending_agent *p = realloc(s->pending, (s->n_pending + 1) * sizeof(*p));
                        if (!p) {
                                safe_close(fd);
                                return -ENOMEM;
                        }
                        s->pending = p;
                        s->n_pending++;
                }
                s->pending[i].fd = fd;
                snprintf(s->pending[i].id.sandbox, sizeof(s->pending[i].id.sandbox), "%s", sandbox);
                snprintf(s->pending[i].id.instance, sizeof(s->pending[i].id.instance), "%s", instance);
                n->n++;
        }
        /* libmicrohttpd closes fd on failure too. */
        if (MHD_add_connection(s->agent_httpd, fd, (struct sockaddr *) &sa, sizeof(sa_family_t)) != MHD_YES)
                return log_warning_errno(errno, "sandbox %s: cannot serve an agent connection: %m, ignoring",
                                         sandbox);
        return 0;
}

static int make_unix_socket(const char *path, gid_t gid, pc_error **reterr)
{
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;

        if (strlen(path) >= sizeof(sa.sun_path))
                return pc_error_setf(reterr, ENAMETOOLONG, "invalid_config", "socket path %s is too long", path);
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return pc_error_setf(reterr, errno, "socket", "socket(): %m");
        /* A stale socket from a previous run (kill -9) is replaced; anything else at the path is not ours. */
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return pc_error_setf(reterr, EEXIST, "socket",
                                             "%s exists and is not a socket; remove it or choose another "
                                             "--runtime-dir",
                                             path);
                (void) unlink(path);
        }
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return pc_error_setf(reterr, errno, "socket", "cannot bind %s: %m", path);
        if (chmod(path, gid == (gid_t) -1 ? 0600 : 0660) < 0 || (gid != (gid_t) -1 && chown(path, 0, gid) < 0))
                return pc_error_setf(reterr, errno, "socket", "cannot set mode of %s: %m", path);
        if (listen(fd, SOMAXCONN) < 0)
                return pc_error_setf(reterr, errno, "socket", "cannot listen on %s: %m", path);
        return TAKE_FD(fd);
}

/* Whether something accepts connections on the unix socket PATH. */
static bool socket_in_use(const char *path)
{
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
                return false;
        strcpy(sa.sun_path, path);
        return connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;
}

static int make_tcp_socket(const struct sockaddr *sa, socklen_t len, unsigned *ret_port, pc_error **reterr)
{
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_storage bound;
        socklen_t blen = sizeof(bound);
        int one = 1;

        fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return pc_error_setf(reterr, errno, "socket", "socket(): %m");
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, sa, len) < 0)
                return pc_error_setf(reterr, errno, "socket", "cannot bind the TCP listen address: %m");
        if (listen(fd, SOMAXCONN) < 0)
                return pc_error_setf(reterr, errno, "socket", "cannot listen on TCP: %m");
        if (getsockname(fd, (struct sockaddr *) &bound, &blen) < 0)
                return pc_error_setf(reterr, errno, "socket", "getsockname(): %m");
        *ret_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &bound)->sin6_port
                                                       : ((struct sockaddr_in *) &bound)->sin_port);
        return TAKE_FD(fd);
}

/* libmicrohttpd's own epoll thread pool: each thread runs its own epoll loop over the shared listen socket
 * (or the connections handed over with MHD_add_connection: fd < 0), so requests are served in parallel.
 * A request that waits for an event is suspended: it holds no thread and is not subject to the idle
 * timeout, which only closes idle keep-alive connections (see docs/architecture.md). */
static struct MHD_Daemon *start_httpd(api_listener *l, int fd, unsigned threads, unsigned idle_timeout,
                                      unsigned connections_max, unsigned per_address)
{
        /* Upgrades (sessions: descriptors over SCM_RIGHTS) only on the admins' and the SSH gateway's unix
         * sockets. */
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_ITC |
                         MHD_ALLOW_SUSPEND_RESUME |
                         (l->kind == API_LISTENER_UNIX || l->kind == API_LISTENER_SSH ? MHD_ALLOW_UPGRADE : 0);
        /* Without a listen socket (agent connections are handed over) the listener options are left out. */
        struct MHD_OptionItem listen[] = {
                { MHD_OPTION_LISTEN_SOCKET, fd, NULL },
                { MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL },
                /* Over the limit, libmicrohttpd closes a new connection right after accepting it. */
                { per_address ? MHD_OPTION_PER_IP_CONNECTION_LIMIT : MHD_OPTION_END, per_address, NULL },
                { MHD_OPTION_END, 0, NULL },
        };

        if (fd < 0) {
                flags |= MHD_USE_NO_LISTEN_SOCKET;
                listen[0].option = MHD_OPTION_END;
        }
        return MHD_start_daemon(flags, 0, NULL, NULL, on_access, l, MHD_OPTION_THREAD_POOL_SIZE, threads,
                                MHD_OPTION_NOTIFY_COMPLETED, on_request_completed, l, MHD_OPTION_NOTIFY_CONNECTION,
                                on_connection, l, MHD_OPTION_CONNECTION_TIMEOUT, idle_timeout,
                                MHD_OPTION_CONNECTION_LIMIT, connections_max, MHD_OPTION_URI_LOG_CALLBACK, on_uri, l,
                                MHD_OPTION_ARRAY, listen, MHD_OPTION_END);
}

/* Quiescing hands the listen socket back to us (so it is closed exactly once) and stops new accepts
 * before in-flight requests are finished. */
static int quiesce_httpd(struct MHD_Daemon *h)
{
        return h ? MHD_quiesce_daemon(h) : -EBADF;
}

int api_server_start(pc_daemon *d, const api_options *o, api_server **ret, pc_error **reterr)
{
        api_server *s;
        unsigned threads = o->threads, idle = o->idle_timeout ?: 120;
        int fd;

        if (threads == 0) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                threads = n > 0 ? (unsigned) MIN(n, 16) : 2;
        }
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->daemon = d;
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        api_sessions_init(&s->sessions);
        s->max_body_size = o->max_body_size;
        s->socket_gid = o->socket_gid;
        pthread_mutex_init(&s->pending_lock, NULL);
        pthread_mutex_init(&s->watchdog.lock, NULL);
        pthread_cond_init(&s->watchdog.changed, &attr);
        pthread_mutex_init(&s->waiting.lock, NULL);
        pthread_cond_init(&s->waiting.done, &attr);
        pthread_condattr_destroy(&attr);
        s->unix_listener = (api_listener){ .server = s, .kind = API_LISTENER_UNIX };
        s->tcp_listener = (api_listener){ .server = s, .kind = API_LISTENER_TCP };
        s->agent_listener = (api_listener){ .server = s, .kind = API_LISTENER_AGENT };
        s->ssh_listener = (api_listener){ .server = s, .kind = API_LISTENER_SSH };
        s->socket_path = strdup(o->socket_path);
        if (!s->socket_path) {
                api_server_free(s);
                return -ENOMEM;
        }

        fd = make_unix_socket(o->socket_path, o->socket_gid, reterr);
        if (fd < 0) {
                api_server_free(s);
                return fd;
        }
        s->unix_httpd = start_httpd(&s->unix_listener, fd, threads, idle, UNIX_CONNECTIONS_MAX, 0);
        if (!s->unix_httpd) {
                safe_close(fd);
                api_server_free(s);
                return pc_error_setf(reterr, EIO, "http", "cannot start the HTTP server on %s", o->socket_path);
        }
        if (o->tcp_address) {
                fd = make_tcp_socket(o->tcp_address, o->tcp_address_len, &s->tcp_port, reterr);
                if (fd < 0) {
                        api_server_free(s);
                        return fd;
                }
                s->watchdog.timeout = (uint64_t) (o->tcp_auth_timeout ?: 10) * 1000000;
                if (pthread_create(&s->watchdog.thread, NULL, watchdog_main, &s->watchdog) != 0) {
                        safe_close(fd);
                        api_server_free(s);
                        return pc_error_setf(reterr, EAGAIN, "http", "cannot start the TCP connection watchdog");
                }
                s->watchdog.running = true;
                s->tcp_httpd = start_httpd(&s->tcp_listener, fd, threads, idle, o->tcp_connections_max ?: 1024,
                                           o->tcp_connections_per_address ?: 128);
                if (!s->tcp_httpd) {
                        safe_close(fd);
                        api_server_free(s);
                        return pc_error_setf(reterr, EIO, "http", "cannot start the HTTP server on TCP");
                }
        }
        s->agent_httpd = start_httpd(&s->agent_listener, -EBADF, threads, idle, UNIX_CONNECTIONS_MAX, 0);
        if (!s->agent_httpd) {
                api_server_free(s);
                return pc_error_setf(reterr, EIO, "http", "cannot start the HTTP server for agent sockets");
        }
        if (o->ssh_socket_path && o->ssh_socket_gid != (gid_t) -1) {
                s->ssh_socket_path = strdup(o->ssh_socket_path);
                if (!s->ssh_socket_path) {
                        api_server_free(s);
                        return -ENOMEM;
                }
                /* A path outside our runtime directory: another daemon on this host may serve it (a test's
                 * beside the installed one); it is not taken from it. */
                fd = socket_in_use(o->ssh_socket_path) ? -EADDRINUSE
                                                        : make_unix_socket(o->ssh_socket_path, o->ssh_socket_gid, reterr);
                if (fd == -EADDRINUSE) {
                        log_warning("%s is served by another daemon: no SSH gateway here", o->ssh_socket_path);
                        *ret = s;
                        return 0;
                }
                if (fd < 0) {
                        api_server_free(s);
                        return fd;
                }
                s->ssh_httpd = start_httpd(&s->ssh_listener, fd, 2, idle, UNIX_CONNECTIONS_MAX, 0);
                if (!s->ssh_httpd) {
                        safe_close(fd);
                        api_server_free(s);
                        return pc_error_setf(reterr, EIO, "http", "cannot start the HTTP server on %s",
                                             o->ssh_socket_path);
                }
        }
        *ret = s;
        return 0;
}

/* Until every request in flight has answered, or `usec` passed. */
static void wait_for_waited(api_waiting *w, uint64_t usec)
{
        uint64_t end = now_usec(CLOCK_MONOTONIC) + usec;
        struct timespec ts = { .tv_sec = (time_t) (end / 1000000), .tv_nsec = (long) (end % 1000000) * 1000 };

        LOCK_GUARD(&w->lock);
        while (w->n > 0)
                if (pthread_cond_timedwait(&w->done, &w->lock, &ts) == ETIMEDOUT) {
                        log_warning("%u requests did not finish within %" PRIu64 " s of the stop, closing them",
                                    w->n, usec / 1000000);
                        return;
                }
}

api_server *api_server_free(api_server *s)
{
        int unix_fd, tcp_fd, ssh_fd;

        if (!s)
                return NULL;
        /* 1. No new connections, and new requests on open ones get 503. 2. Every suspended request is
         * resumed (and none suspends any more): libmicrohttpd must not be stopped with suspended
         * connections; they answer with what they have and their cursor. Sessions end. 3. Every request
         * in flight finishes and its answer is sent (a create's 201 included), within a bound: stopping
         * libmicrohttpd closes connections without sending what is queued. 4. Stop, which joins the pool
         * threads: after this nothing calls into the daemon. */
        unix_fd = quiesce_httpd(s->unix_httpd);
        tcp_fd = quiesce_httpd(s->tcp_httpd);
        ssh_fd = quiesce_httpd(s->ssh_httpd);
        {
                LOCK_GUARD(&s->waiting.lock);
                s->waiting.stopping = true;
        }
        pc_event_waiters_stop(s->daemon);
        api_files_watch_stop();
        api_sessions_done(&s->sessions);
        wait_for_waited(&s->waiting, API_STOP_TIMEOUT_USEC);
        if (s->unix_httpd)
                MHD_stop_daemon(s->unix_httpd);
        if (s->tcp_httpd)
                MHD_stop_daemon(s->tcp_httpd);
        if (s->agent_httpd)
                MHD_stop_daemon(s->agent_httpd);
        if (s->ssh_httpd)
                MHD_stop_daemon(s->ssh_httpd);
        if (s->watchdog.running) {
                {
                        LOCK_GUARD(&s->watchdog.lock);
                        s->watchdog.stop = true;
                        pthread_cond_signal(&s->watchdog.changed);
                }
                (void) pthread_join(s->watchdog.thread, NULL);
        }
        safe_close(unix_fd);
        safe_close(tcp_fd);
        safe_close(ssh_fd);
        if (s->socket_path)
                (void) unlink(s->socket_path);
        free(s->socket_path);
        if (s->ssh_socket_path && s->ssh_httpd)
                (void) unlink(s->ssh_socket_path);
        free(s->ssh_socket_path);
        free(s->pending);
        free(s->counts);
        pthread_mutex_destroy(&s->pending_lock);
        free(s->watchdog.entries);
        pthread_mutex_destroy(&s->watchdog.lock);
        pthread_cond_destroy(&s->watchdog.changed);
        pthread_mutex_destroy(&s->waiting.lock);
        pthread_cond_destroy(&s->waiting.done);
        free(s);
        return NULL;
}

unsigned api_server_tcp_port(const api_server *s)
{
        return s->tcp_port;
}


