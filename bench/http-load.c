/* SPDX-License-Identifier: MIT */
/* http-load: closed-loop HTTP/1.1 keep-alive load over a unix socket or TCP, reporting requests/s and
 * latency percentiles. wrk cannot speak to unix sockets, so both transports use this one client to keep
 * the comparison fair.
 *
 *   http-load (--unix PATH | --tcp HOST:PORT) [--path /v1/health] [--token T] [--connections N]
 *             [--seconds S]
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common.h"

typedef struct worker {
        pthread_t thread;
        uint64_t *lat_ns;
        size_t n, cap;
        uint64_t errors;
} worker;

static const char *opt_unix, *opt_tcp, *opt_path = "/v1/health", *opt_token;
static unsigned opt_connections = 16;
static double opt_seconds = 5;
static uint64_t deadline_ns;
static char request[1024];
static size_t request_len;

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int connect_server(void)
{
        int fd;

        if (opt_unix) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", opt_unix);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                        return safe_close(fd), -errno;
                return fd;
        }
        char host[64];
        const char *colon = strrchr(opt_tcp, ':');
        struct sockaddr_in sa = { .sin_family = AF_INET };
        int one = 1;

        if (!colon || (size_t) (colon - opt_tcp) >= sizeof(host))
                return -EINVAL;
        memcpy(host, opt_tcp, colon - opt_tcp);
        host[colon - opt_tcp] = 0;
        sa.sin_port = htons((uint16_t) atoi(colon + 1));
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                return -EINVAL;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return safe_close(fd), -errno;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return fd;
}

/* Reads one response; returns its status or negative errno. */
static int read_response(int fd, char *buf, size_t size)
{
        size_t have = 0;
        char *end;

        for (;;) {
                ssize_t k = read(fd, buf + have, size - have - 1);
                if (k <= 0)
                        return k == 0 ? -ECONNRESET : -errno;
                have += (size_t) k;
                buf[have] = 0;
                end = strstr(buf, "\r\n\r\n");
                if (!end)
                        continue;
                const char *cl = strcasestr(buf, "\r\nContent-Length:");
                size_t body = cl ? strtoul(cl + 17, NULL, 10) : 0;
                size_t need = (size_t) (end + 4 - buf) + body;
                while (have < need) {
                        k = read(fd, buf + have, size - have - 1);
                        if (k <= 0)
                                return -EIO;
                        have += (size_t) k;
                }
                return atoi(buf + 9);
        }
}

static void *run_worker(void *arg)
{
        worker *w = arg;
        char buf[65536];
        int fd = connect_server();

        while (fd >= 0 && now_ns() < deadline_ns) {
                uint64_t t0 = now_ns();
                if (write_all(fd, request, request_len) < 0 || read_response(fd, buf, sizeof(buf)) != 200) {
                        w->errors++;
                        fd = safe_close(fd);
                        fd = connect_server();
                        continue;
                }
                if (w->n == w->cap) {
                        w->cap = w->cap ? w->cap * 2 : 65536;
                        w->lat_ns = realloc(w->lat_ns, w->cap * sizeof(uint64_t));
                        if (!w->lat_ns)
                                abort();
                }
                w->lat_ns[w->n++] = now_ns() - t0;
        }
        safe_close(fd);
        return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                { "unix", required_argument, NULL, 'u' },       { "tcp", required_argument, NULL, 't' },
                { "path", required_argument, NULL, 'p' },       { "token", required_argument, NULL, 'k' },
                { "connections", required_argument, NULL, 'c' }, { "seconds", required_argument, NULL, 's' },
                {},
        };
        _cleanup_free_ worker *workers = NULL;
        _cleanup_free_ uint64_t *all = NULL;
        size_t total = 0, k = 0;
        uint64_t errors = 0, t0;
        double elapsed;
        int opt;

        while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (opt) {
                case 'u': opt_unix = optarg; break;
                case 't': opt_tcp = optarg; break;
                case 'p': opt_path = optarg; break;
                case 'k': opt_token = optarg; break;
                case 'c': opt_connections = (unsigned) atoi(optarg); break;
                case 's': opt_seconds = atof(optarg); break;
                default: return 2;
                }
        }
        if (!opt_unix == !opt_tcp || opt_connections == 0) {
                fprintf(stderr, "usage: http-load (--unix PATH | --tcp HOST:PORT) [--path P] [--token T] "
                                "[--connections N] [--seconds S]\n");
                return 2;
        }
        request_len = (size_t) snprintf(request, sizeof(request),
                                        "GET %s HTTP/1.1\r\nHost: localhost\r\n%s%s%sConnection: keep-alive\r\n\r\n",
                                        opt_path, opt_token ? "Authorization: Bearer " : "", opt_token ?: "",
                                        opt_token ? "\r\n" : "");
        workers = calloc(opt_connections, sizeof(worker));
        t0 = now_ns();
        deadline_ns = t0 + (uint64_t) (opt_seconds * 1e9);
        for (unsigned i = 0; i < opt_connections; i++)
                pthread_create(&workers[i].thread, NULL, run_worker, &workers[i]);
        for (unsigned i = 0; i < opt_connections; i++) {
                pthread_join(workers[i].thread, NULL);
                total += workers[i].n;
                errors += workers[i].errors;
        }
        elapsed = (double) (now_ns() - t0) / 1e9;
        all = malloc((total + 1) * sizeof(uint64_t));
        for (unsigned i = 0; i < opt_connections; i++) {
                memcpy(all + k, workers[i].lat_ns, workers[i].n * sizeof(uint64_t));
                k += workers[i].n;
                free(workers[i].lat_ns);
        }
        qsort(all, total, sizeof(uint64_t), cmp_u64);
#define PCT(p) (total ? (double) all[(size_t) ((double) (total - 1) * (p))] / 1000.0 : 0.0)
        printf("requests=%zu errors=%" PRIu64 " seconds=%.2f rps=%.0f p50_us=%.1f p95_us=%.1f p99_us=%.1f max_us=%.1f\n",
               total, errors, elapsed, (double) total / elapsed, PCT(0.50), PCT(0.95), PCT(0.99), PCT(1.0));
        return errors ? 1 : 0;
}
