/* SPDX-License-Identifier: MIT */
/* api: the HTTP surface of pocketcoderd (libmicrohttpd + jansson). Knows nothing of namespaces or SQL:
 * every route calls the daemon's public interface (daemon/daemon.h). */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef struct pc_daemon pc_daemon;
typedef struct pc_error pc_error;
typedef struct api_server api_server;

typedef struct api_options {
        const char *socket_path;            /* unix socket, always served */
        gid_t socket_gid;                   /* group owning the socket (mode 0660); (gid_t)-1 = root only */
        const struct sockaddr *tcp_address; /* NULL = no TCP listener */
        socklen_t tcp_address_len;
        uint64_t max_body_size;
        unsigned threads;      /* 0 = one per CPU */
        unsigned idle_timeout; /* seconds an idle keep-alive connection is kept; 0 = 120 */
        /* TCP only (the unix socket and agent sockets have their own libmicrohttpd daemons, so a flood here
         * leaves them usable): open connections in all and per client address, and the seconds a
         * connection has to complete its first authenticated request (also a slow one); 0 = defaults. */
        unsigned tcp_connections_max;
        unsigned tcp_connections_per_address;
        unsigned tcp_auth_timeout;
        /* The SSH login's gateway socket (mode 0660, this group), served when the group exists: whoever
         * connects has role ssh, which reaches /v1/ssh/ only. NULL / (gid_t)-1: none. */
        const char *ssh_socket_path;
        gid_t ssh_socket_gid;
} api_options;

/* Binds and starts serving; returns once both listeners accept connections. */
int api_server_start(pc_daemon *d, const api_options *o, api_server **ret, pc_error **reterr);
/* Serves a connection accepted on a sandbox's agent socket (fd, owned from here on) as that sandbox's
 * agent. Any thread. The fit for pc_daemon_set_agent_handler(), which pocketcoderd wires. */
int api_server_add_agent_connection(api_server *s, int fd, const char *sandbox, const char *instance);
/* Stops accepting, wakes suspended requests, finishes in-flight requests, joins the threads, frees:
 * nothing calls into the daemon afterwards. Accepts NULL, returns NULL. */
api_server *api_server_free(api_server *s);
/* Prints "METHOD PATTERN" per served route (pocketcoderd --list-routes; tests compare with openapi.yaml). */
void api_routes_print(FILE *f);

/* The TCP port actually bound (for "listen = 127.0.0.1:0"), 0 without TCP. */
unsigned api_server_tcp_port(const api_server *s);
