/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "api-internal.h"

struct api_server {
        pc_daemon *daemon;
        uint64_t max_body_size;
        gid_t socket_gid;
        struct MHD_Daemon *unix_httpd;
        struct MHD_Daemon *tcp_httpd;
        api_listener unix_listener, tcp_listener;
        unsigned tcp_port;
        char *socket_path;
        api_sessions sessions;
};

static void request_free(api_request *rq)
{
        if (!rq)
                return;
        api_session_abandon(rq);
        free(rq->body);
        free(rq);
}

static void on_request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                                 enum MHD_RequestTerminationCode toe)
{
        request_free(*con_cls);
        *con_cls = NULL;
}

int api_reply_json(api_request *rq, unsigned status, json_t *body)
{
        struct MHD_Response *resp;
        char *text = NULL;
        size_t len = 0;
        enum MHD_Result ok;

        if (body) {
                text = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
                json_decref(body);
                if (!text)
                        return MHD_NO;
                len = strlen(text);
                /* Newline-terminated bodies read better with curl and in logs. */
                char *t = realloc(text, len + 2);
                if (!t) {
                        free(text);
                        return MHD_NO;
                }
                text = t;
                text[len++] = '\n';
                text[len] = 0;
        }
        resp = MHD_create_response_from_buffer(len, text ?: (char *) "", text ? MHD_RESPMEM_MUST_FREE
                                                                              : MHD_RESPMEM_PERSISTENT);
        if (!resp) {
                free(text);
                return MHD_NO;
        }
        if (text)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        if (rq->allow)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rq->allow);
        if (status == MHD_HTTP_UNAUTHORIZED)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"pocketcoder\"");
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        ok = MHD_queue_response(rq->conn, status, resp);
        MHD_destroy_response(resp);
        rq->replied = true;
        return ok;
}

int api_reply_error(api_request *rq, unsigned status, const char *code, const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return MHD_NO;
        return api_reply_json(rq, status, json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg));
}

unsigned api_status_for_errno(int errnum)
{
        switch (abs(errnum)) {
        case EINVAL:
        case EDOM:
        case ERANGE:
                return MHD_HTTP_BAD_REQUEST;
        case EACCES:
        case EPERM:
                return MHD_HTTP_FORBIDDEN;
        case ENOENT:
        case ESRCH:
                return MHD_HTTP_NOT_FOUND;
        case EEXIST:
        case EBUSY:
        case EALREADY:
        case ENOSPC:
        case ENOTEMPTY:
                return MHD_HTTP_CONFLICT;
        case EFBIG:
        case E2BIG:
                return MHD_HTTP_CONTENT_TOO_LARGE;
        case EBADMSG:
                return MHD_HTTP_UNPROCESSABLE_CONTENT;
        case EAGAIN:
        case EOPNOTSUPP:
        case ENOTCONN:
        case ECONNREFUSED:
                return MHD_HTTP_SERVICE_UNAVAILABLE;
        default:
                return MHD_HTTP_INTERNAL_SERVER_ERROR;
        }
}

int api_reply_pc_error(api_request *rq, int r, pc_error *e)
{
        if (e)
                return api_reply_error(rq, api_status_for_errno(e->errnum), e->code, "%s", e->message);
        if (r == -ENOMEM)
                return api_reply_error(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory");
        return api_reply_error(rq, api_status_for_errno(r), "internal", "%s", strerror(-r));
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

static bool uid_in_group(uid_t uid, gid_t peer_gid, gid_t group)
{
        struct passwd *pw;

        if (group == (gid_t) -1)
                return false;
        if (peer_gid == group)
                return true;
        /* Supplementary groups: the socket's mode already admits only members, but a member's primary
         * group need not be pocketcoder. */
        pw = getpwuid(uid);
        if (!pw)
                return false;
        int n = 64;
        gid_t groups[64];
        if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
                return false;
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

        if (h) {
                if (strncasecmp(h, "Bearer ", 7) != 0)
                        return api_reply_error(rq, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                                               "Authorization header must be \"Bearer TOKEN\"");
                r = pc_daemon_authenticate(rq->server->daemon, h + 7, &rq->principal);
                if (r < 0)
                        return api_reply_error(rq, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                                               "the token is not valid (revoked, mistyped or from another "
                                               "daemon); create one with \"pocketcoder token create\"");
                rq->authenticated = true;
                return MHD_YES;
        }
        if (rq->listener->is_unix) {
                struct ucred cred;

                if (peer_credentials(rq->conn, &cred) >= 0 &&
                    (cred.uid == 0 || uid_in_group(cred.uid, cred.gid, rq->server->socket_gid))) {
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

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
        api_listener *l = cls;
        api_request *rq = *con_cls;

        if (!rq) {
                const char *cl;

                rq = calloc(1, sizeof(*rq));
                if (!rq)
                        return MHD_NO;
                rq->conn = conn;
                rq->server = l->server;
                rq->listener = l;
                rq->method = method;
                rq->url = url;
                *con_cls = rq;
                /* Refuse an announced oversized body before reading it. */
                cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (cl && strtoull(cl, NULL, 10) > l->server->max_body_size)
                        rq->too_large = true;
                return MHD_YES;
        }

        if (*upload_data_size > 0) {
                if (!rq->too_large && rq->body_len + *upload_data_size <= rq->server->max_body_size) {
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
        if (rq->too_large)
                return api_reply_error(rq, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                                       "request body is larger than %" PRIu64 " bytes",
                                       rq->server->max_body_size);
        return api_dispatch(rq);
}

/* Authentication, content type and body parsing, shared by every route; then the handler. */
int api_run_route(api_request *rq, const api_route *route)
{
        int r;

        if (route->roles != API_NO_AUTH) {
                r = authenticate(rq);
                if (!rq->authenticated)
                        return r;
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
        r = route->handler(rq);
        json_decref(rq->json);
        rq->json = NULL;
        return r;
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

static struct MHD_Daemon *start_httpd(api_listener *l, int fd, unsigned threads)
{
        /* libmicrohttpd's own epoll thread pool: each thread runs its own epoll loop over the shared listen
         * socket, so requests are served in parallel without a hand-written event loop (see
         * docs/architecture.md). */
        return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_ITC |
                                        (l->is_unix ? MHD_ALLOW_UPGRADE : 0), 0, NULL, NULL,
                                on_access, l, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE,
                                threads, MHD_OPTION_NOTIFY_COMPLETED, on_request_completed, NULL,
                                MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_CONNECTION_LIMIT, 4096u,
                                MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
}

/* Quiescing hands the listen socket back to us (so it is closed exactly once) and stops new accepts
 * before in-flight requests are finished. */
static void stop_httpd(struct MHD_Daemon *h)
{
        int fd;

        if (!h)
                return;
        fd = MHD_quiesce_daemon(h);
        MHD_stop_daemon(h);
        safe_close(fd);
}

int api_server_start(pc_daemon *d, const api_options *o, api_server **ret, pc_error **reterr)
{
        api_server *s;
        unsigned threads = o->threads;
        int fd;

        if (threads == 0) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                threads = n > 0 ? (unsigned) MIN(n, 16) : 2;
        }
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->daemon = d;
        api_sessions_init(&s->sessions);
        s->max_body_size = o->max_body_size;
        s->socket_gid = o->socket_gid;
        s->unix_listener = (api_listener){ .server = s, .is_unix = true };
        s->tcp_listener = (api_listener){ .server = s, .is_unix = false };
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
        s->unix_httpd = start_httpd(&s->unix_listener, fd, threads);
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
                s->tcp_httpd = start_httpd(&s->tcp_listener, fd, threads);
                if (!s->tcp_httpd) {
                        safe_close(fd);
                        api_server_free(s);
                        return pc_error_setf(reterr, EIO, "http", "cannot start the HTTP server on TCP");
                }
        }
        *ret = s;
        return 0;
}

api_server *api_server_free(api_server *s)
{
        if (!s)
                return NULL;
        api_sessions_done(&s->sessions);
        stop_httpd(s->unix_httpd);
        stop_httpd(s->tcp_httpd);
        if (s->socket_path)
                (void) unlink(s->socket_path);
        free(s->socket_path);
        free(s);
        return NULL;
}

unsigned api_server_tcp_port(const api_server *s)
{
        return s->tcp_port;
}

api_sessions *api_server_sessions(api_server *s)
{
        return &s->sessions;
}

pc_daemon *api_request_daemon(api_request *rq)
{
        return rq->server->daemon;
}
