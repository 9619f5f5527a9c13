/* SPDX-License-Identifier: MIT */
/* POST /v1/sandboxes/{name}/sessions: an HTTP Upgrade to the session protocol (common/session-proto.h) on
 * the unix socket. The request is checked, the sandbox must run and the start is recorded in the audit ledger
 * before "101 Switching Protocols"; after it, a thread of the session's own relays the frames: the client's
 * START (with its pipes, or none for a pty), SIGNALs, and the EXIT status when the process ends. A thread
 * per session because a session lasts as long as a person works in it and must not hold one of
 * libmicrohttpd's pool threads. */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include "api-internal.h"
#include "session-proto.h"

struct api_session {
        api_sessions *registry;
        pc_session *session;
        int sock;
        struct MHD_UpgradeResponseHandle *urh;
        struct api_session *next;
};

static api_session *api_session_free(api_session *as)
{
        if (!as)
                return NULL;
        pc_session_free(as->session);
        free(as);
        return NULL;
}

void api_sessions_init(api_sessions *r)
{
        *r = (api_sessions){};
        pthread_mutex_init(&r->lock, NULL);
        pthread_cond_init(&r->empty, NULL);
}

void api_sessions_done(api_sessions *r)
{
        /* Ends every session (its process is killed when the client's side is gone) and waits for their
         * threads: libmicrohttpd must not stop under an upgraded connection. */
        pthread_mutex_lock(&r->lock);
        r->stopping = true;
        for (api_session *as = r->list; as; as = as->next)
                (void) shutdown(as->sock, SHUT_RDWR);
        while (r->list)
                pthread_cond_wait(&r->empty, &r->lock);
        pthread_mutex_unlock(&r->lock);
        pthread_cond_destroy(&r->empty);
        pthread_mutex_destroy(&r->lock);
}

static void send_error(int sock, int r, pc_error *e)
{
        const char *msg = e ? e->message : strerror(-r);

        (void) pc_frame_send(sock, PC_FRAME_ERROR, (int32_t) strlen(msg), NULL, 0, msg, strlen(msg));
}

/* The whole session after the 101: start, relay signals, report the exit. */
static void session_run(api_session *as)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        _cleanup_close_ int master = -EBADF;
        bool tty = pc_session_is_tty(as->session), client = true;
        int fds[PC_SESSION_MAX_FDS], status, r;
        size_t n = 0;
        pc_frame f;

        r = pc_frame_recv(as->sock, &f, fds, ELEMENTSOF(fds), &n);
        if (r < 0)
                return;
        if (f.type != PC_FRAME_START || n != (tty ? 0 : 3)) {
                for (size_t i = 0; i < n; i++)
                        safe_close(fds[i]);
                send_error(as->sock, -EPROTO, NULL);
                return;
        }
        r = pc_session_start(as->session, tty ? NULL : fds, tty ? &master : NULL, &e);
        if (r < 0) {
                send_error(as->sock, r, e);
                return;
        }
        /* The master goes to the client; the daemon's copy closes now (the client's is the only one). */
        if (tty && pc_frame_send(as->sock, PC_FRAME_PTY, 0, &master, 1, NULL, 0) < 0)
                client = false;
        master = safe_close(master);

        for (;;) {
                struct pollfd p[2] = {
                        { .fd = pc_session_pidfd(as->session), .events = POLLIN },
                        { .fd = client ? as->sock : -1, .events = POLLIN },
                };

                if (!client)
                        /* The client is gone (or the daemon stops): its command goes with it. */
                        (void) pc_session_signal(as->session, SIGKILL);
                if (poll(p, ELEMENTSOF(p), -1) < 0 && errno != EINTR)
                        break;
                if (p[0].revents & POLLIN)
                        break;
                if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
                        if (pc_frame_recv(as->sock, &f, fds, 0, NULL) < 0 || f.type != PC_FRAME_SIGNAL)
                                client = false;
                        else
                                (void) pc_session_signal(as->session, f.value);
                }
        }
        status = pc_session_wait(as->session);
        if (status >= 0 && client)
                (void) pc_frame_send(as->sock, PC_FRAME_EXIT, status, NULL, 0, NULL, 0);
}

static void *session_thread(void *p)
{
        api_session *as = p;
        api_sessions *r = as->registry;

        session_run(as);
        MHD_upgrade_action(as->urh, MHD_UPGRADE_ACTION_CLOSE);
        pthread_mutex_lock(&r->lock);
        for (api_session **i = &r->list; *i; i = &(*i)->next)
                if (*i == as) {
                        *i = as->next;
                        break;
                }
        pthread_cond_broadcast(&r->empty);
        pthread_mutex_unlock(&r->lock);
        api_session_free(as);
        return NULL;
}

static void on_upgrade(void *cls, struct MHD_Connection *c, void *req_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
        api_request *rq = req_cls;
        api_session *as = TAKE_PTR(rq->session);
        api_sessions *r = as->registry;
        pthread_attr_t attr;
        pthread_t t;
        int k;

        as->sock = sock;
        as->urh = urh;
        pthread_mutex_lock(&r->lock);
        /* Frames sent before the 101 would have lost their descriptors in libmicrohttpd's read: refused. */
        if (extra_in_size > 0 || r->stopping) {
                pthread_mutex_unlock(&r->lock);
                MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
                api_session_free(as);
                return;
        }
        as->next = r->list;
        r->list = as;
        pthread_mutex_unlock(&r->lock);

        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        k = pthread_create(&t, &attr, session_thread, as);
        pthread_attr_destroy(&attr);
        if (k != 0) {
                log_warning_errno(k, "cannot start a session thread: %m");
                (void) shutdown(sock, SHUT_RDWR);
                session_thread(as); /* unregisters and frees: the session never started */
        }
}

/* "Connection: keep-alive, Upgrade" lists tokens. */
static bool header_has_token(const char *h, const char *token)
{
        size_t n = strlen(token);

        for (const char *p = h; p && *p; p += strcspn(p, ",")) {
                p += strspn(p, ", \t");
                if (strncasecmp(p, token, n) == 0 && strchr(", \t", p[n]))
                        return true;
        }
        return false;
}

int api_post_sandbox_session(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        pc_session *s = NULL;
        int r;

        if (!rq->json)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_body",
                                       "request body must be a JSON object such as {\"kind\":\"run\",\"argv\":[\"id\"]}");
        /* File descriptors pass only over a unix socket, and only to a local admin. */
        if (rq->listener != API_LISTENER_UNIX || !rq->principal.local_peer)
                return api_reply_error(rq, MHD_HTTP_FORBIDDEN, "forbidden",
                                       "sessions need the daemon's unix socket as root or a member of its group "
                                       "(file descriptors pass over it)");
        r = pc_session_new(rq->daemon, &rq->principal, rq->params[0], rq->json, &s, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        return api_session_upgrade(rq, s);
}

int api_session_upgrade(api_request *rq, pc_session *session)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        _cleanup_(pc_session_freep) pc_session *s = session;
        const char *conn_h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION);
        const char *upg_h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_UPGRADE);
        struct MHD_Response *resp;
        enum MHD_Result ok;
        int r;

        if (!conn_h || !upg_h || !header_has_token(conn_h, "upgrade") || strcasecmp(upg_h, PC_SESSION_UPGRADE) != 0)
                return api_reply_error(rq, MHD_HTTP_UPGRADE_REQUIRED, "upgrade_required",
                                       "sessions need \"Connection: Upgrade\" and \"Upgrade: " PC_SESSION_UPGRADE
                                       "\" (see api/openapi.yaml)");
        r = pc_session_record_start(s, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);

        rq->session = calloc(1, sizeof(api_session));
        if (!rq->session)
                return MHD_NO;
        rq->session->registry = rq->sessions;
        rq->session->session = TAKE_PTR(s);
        rq->session->sock = -EBADF;
        resp = MHD_create_response_for_upgrade(on_upgrade, NULL);
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, PC_SESSION_UPGRADE);
        ok = MHD_queue_response(rq->conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
        MHD_destroy_response(resp);
        rq->replied = true;
        return ok;
}

void api_session_abandon(api_request *rq)
{
        rq->session = api_session_free(rq->session);
}
