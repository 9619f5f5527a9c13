/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"
#include "session-proto.h"

/* After a failed send/recv on a possibly non-blocking socket: 0 when it is worth another try (EINTR, or
 * EAGAIN and the socket became ready), else the error. */
static int retry_wait(int fd, short events)
{
        struct pollfd p = { .fd = fd, .events = events };

        if (errno != EAGAIN && errno != EINTR)
                return -errno;
        if (errno == EAGAIN && poll(&p, 1, -1) < 0 && errno != EINTR)
                return -errno;
        return 0;
}

int pc_frame_send(int sock, pc_frame_type type, int32_t value, const int *fds, size_t n_fds, const void *extra,
                  size_t extra_len)
{
        pc_frame f = { .type = type, .value = value };
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * PC_SESSION_MAX_FDS)];
        } control = {};
        struct iovec iov = { .iov_base = &f, .iov_len = sizeof(f) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        const char *p = extra;
        ssize_t k;
        int r;

        if (n_fds > PC_SESSION_MAX_FDS)
                return -EINVAL;
        if (n_fds > 0) {
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        /* The frame and its fds in one sendmsg (a unix stream socket takes 8 bytes whole); then the rest. */
        while ((k = sendmsg(sock, &mh, MSG_NOSIGNAL)) < 0)
                if ((r = retry_wait(sock, POLLOUT)) < 0)
                        return r;
        if ((size_t) k != sizeof(f))
                return -EIO;
        while (extra_len > 0) {
                k = send(sock, p, extra_len, MSG_NOSIGNAL);
                if (k < 0) {
                        if ((r = retry_wait(sock, POLLOUT)) < 0)
                                return r;
                        continue;
                }
                p += k;
                extra_len -= (size_t) k;
        }
        return 0;
}

int pc_frame_recv(int sock, pc_frame *ret, int *fds, size_t max_fds, size_t *ret_n_fds)
{
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * PC_SESSION_MAX_FDS)];
        } control;
        pc_frame f;
        size_t got = 0, n = 0;
        int r;

        while (got < sizeof(f)) {
                struct iovec iov = { .iov_base = (char *) &f + got, .iov_len = sizeof(f) - got };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                                     .msg_controllen = sizeof(control.buf) };
                ssize_t k = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

                if (k < 0) {
                        if ((r = retry_wait(sock, POLLIN)) < 0)
                                return r;
                        continue;
                }
                if (k == 0)
                        return got == 0 ? -EPIPE : -EPROTO;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                                continue;
                        size_t m = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        int *in = (int *) CMSG_DATA(c);
                        for (size_t i = 0; i < m; i++) {
                                if (n < max_fds)
                                        fds[n++] = in[i];
                                else
                                        safe_close(in[i]);
                        }
                }
                got += (size_t) k;
        }
        *ret = f;
        if (ret_n_fds)
                *ret_n_fds = n;
        else
                for (size_t i = 0; i < n; i++)
                        safe_close(fds[i]);
        return 0;
}

int pc_frame_recv_bytes(int sock, void *buf, size_t n)
{
        char *p = buf;
        int r;

        while (n > 0) {
                ssize_t k = recv(sock, p, n, 0);
                if (k < 0) {
                        if ((r = retry_wait(sock, POLLIN)) < 0)
                                return r;
                        continue;
                }
                if (k == 0)
                        return -EPROTO;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}
