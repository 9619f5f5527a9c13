/* SPDX-License-Identifier: MIT */
/* The framed protocol of a session (POST /v1/sandboxes/{name}/sessions, Upgrade: pocketcoder-session), shared
 * by the daemon's API (api/session.c) and the CLI (cli/session.c). After "101 Switching Protocols" the unix
 * socket carries fixed 8-byte frames; file descriptors ride on a frame as SCM_RIGHTS:
 *
 *   client -> daemon  START  value 0, fds: stdin, stdout, stderr (run) or none (tty: the daemon makes a pty)
 *   client -> daemon  SIGNAL value N: send signal N to the session's process
 *   daemon -> client  PTY    value 0, fd: the master of a pty allocated inside the sandbox (tty only)
 *   daemon -> client  ERROR  value LEN, then LEN bytes of message: the process did not start
 *   daemon -> client  EXIT   value STATUS (its exit code, or 128+N when killed by signal N); then close
 *
 * Both ends are on one host (fds only pass over a unix socket), so frames are in host byte order. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define PC_SESSION_UPGRADE "pocketcoder-session"
#define PC_SESSION_MAX_FDS 3

typedef enum pc_frame_type {
        PC_FRAME_START = 1,
        PC_FRAME_SIGNAL = 2,
        PC_FRAME_PTY = 3,
        PC_FRAME_ERROR = 4,
        PC_FRAME_EXIT = 5,
} pc_frame_type;

typedef struct pc_frame {
        uint32_t type;
        int32_t value;
} pc_frame;

/* Sends one frame with n_fds descriptors (n_fds <= PC_SESSION_MAX_FDS), then `extra` bytes when given.
 * Waits (poll) on a non-blocking socket. Returns 0 or negative errno. */
int pc_frame_send(int sock, pc_frame_type type, int32_t value, const int *fds, size_t n_fds, const void *extra,
                  size_t extra_len);
/* Receives one whole frame; descriptors that came with it (O_CLOEXEC) go to fds[] (at most max_fds, more
 * are closed: *ret_n_fds says how many). Returns 0, -EPIPE at a clean end of stream between frames, or
 * negative errno. */
int pc_frame_recv(int sock, pc_frame *ret, int *fds, size_t max_fds, size_t *ret_n_fds);
/* Reads exactly n bytes (after an ERROR frame). */
int pc_frame_recv_bytes(int sock, void *buf, size_t n);
