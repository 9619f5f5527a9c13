/* SPDX-License-Identifier: MIT */
/* The CLI's HTTP client. The daemon speaks plain HTTP/1.1 on its unix socket and (optionally) on TCP, so a
 * small client over a socket does for both: one request per connection ("Connection: close"), the answer
 * read to its end. Every CLI process used to link libcurl for this and spent most of its start in the
 * dynamic loader mapping libcurl's tree of shared objects (docs/benchmarks.md); libcurl is now opened with
 * dlopen() only for https:// URLs (a daemon behind a TLS proxy), see http-curl.c. The same connection code
 * makes the session upgrade of `enter` and `sandbox run` (session.c). */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"

#define RESPONSE_MAX (64u << 20)

/* "http://HOST[:PORT][/PREFIX]": host, port and the prefix of every path. */
static int parse_url(const char *url, char **ret_host, char **ret_port, const char **ret_prefix)
{
        const char *h = url + STRLEN("http://"), *end, *port = NULL;
        size_t hn;

        if (!startswith(url, "http://"))
                return -EPROTONOSUPPORT;
        if (*h == '[') {
                end = strchr(h, ']');
                if (!end)
                        return -EINVAL;
                hn = (size_t) (end - h - 1);
                h++;
                end++;
        } else {
                end = h + strcspn(h, ":/");
                hn = (size_t) (end - h);
        }
        if (*end == ':')
                port = end + 1;
        *ret_host = strndup(h, hn);
        *ret_port = strndup(port ?: "80", port ? strcspn(port, "/") : 2);
        *ret_prefix = end + strcspn(end, "/");
        if (!*ret_host || !*ret_port)
                return -ENOMEM;
        return hn > 0 ? 0 : -EINVAL;
}

int cli_connect(const cli_global *g, const char **ret_prefix)
{
        _cleanup_close_ int fd = -EBADF;

        if (!g->url) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };

                if (strlen(g->socket) >= sizeof(sa.sun_path))
                        return -ENAMETOOLONG;
                strcpy(sa.sun_path, g->socket);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                        return -errno;
                *ret_prefix = "";
                return TAKE_FD(fd);
        }

        _cleanup_free_ char *host = NULL, *port = NULL;
        struct addrinfo *ai = NULL, hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
        int r = parse_url(g->url, &host, &port, ret_prefix);

        if (r < 0)
                return r;
        if (getaddrinfo(host, port, &hints, &ai) != 0)
                return -EHOSTUNREACH;
        r = -ECONNREFUSED;
        for (struct addrinfo *a = ai; a; a = a->ai_next) {
                fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
                if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) >= 0)
                        break;
                r = -errno;
                fd = safe_close(fd);
        }
        freeaddrinfo(ai);
        return fd >= 0 ? TAKE_FD(fd) : r;
}

int cli_send_request(int fd, const cli_global *g, const char *prefix, const char *method, const char *path,
                     json_t *body, const char *upgrade)
{
        _cleanup_free_ char *payload = NULL, *head = NULL;
        int r;

        if (body) {
                payload = json_dumps(body, JSON_COMPACT);
                if (!payload)
                        return -ENOMEM;
        }
        r = asprintf_safe(&head,
                          "%s %s%s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: pocketcoder/" PACKAGE_VERSION "\r\n"
                          "%s%s%s%s%s%s%s"
                          "Content-Length: %zu\r\n\r\n",
                          method, prefix, path, g->token ? "Authorization: Bearer " : "", g->token ?: "",
                          g->token ? "\r\n" : "", upgrade ? "Connection: Upgrade\r\nUpgrade: " : "Connection: close\r\n",
                          upgrade ?: "", upgrade ? "\r\n" : "", body ? "Content-Type: application/json\r\n" : "",
                          payload ? strlen(payload) : 0);
        if (r < 0)
                return r;
        r = write_all(fd, head, strlen(head));
        if (r >= 0 && payload)
                r = write_all(fd, payload, strlen(payload));
        return r;
}

/* Reads until the end of the response head ("\r\n\r\n"). Returns the head's length in buf (buf holds
 * *ret_len bytes: the head and what came after it in the same reads). With stop_at_head the reads are a
 * byte at a time, so that nothing after the head (the session's frames and their descriptors) is taken. */
static int read_head(int fd, char **ret_buf, size_t *ret_len, bool stop_at_head)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;
        char *end;

        for (;;) {
                if (len + 4097 > cap) {
                        char *n = realloc(buf, cap = cap * 2 + 8192);
                        if (!n)
                                return -ENOMEM;
                        buf = n;
                }
                ssize_t k = read(fd, buf + len, stop_at_head ? 1 : cap - len - 1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -EBADMSG;
                len += (size_t) k;
                buf[len] = 0;
                end = strstr(buf, "\r\n\r\n");
                if (end) {
                        *ret_len = len;
                        *ret_buf = TAKE_PTR(buf);
                        return (int) (end - *ret_buf) + 4;
                }
                if (len > 65536)
                        return -EBADMSG;
        }
}

/* A header's value in a response head (case-insensitive name), or NULL. */
static const char *head_value(const char *head, const char *name, size_t *ret_len)
{
        size_t n = strlen(name);

        for (const char *l = strstr(head, "\r\n"); l && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
                const char *v = l + 2;
                if (strncasecmp(v, name, n) != 0 || v[n] != ':')
                        continue;
                v += n + 1;
                v += strspn(v, " \t");
                *ret_len = strcspn(v, "\r");
                return v;
        }
        return NULL;
}

/* Undoes Transfer-Encoding: chunked in place. */
static int dechunk(char *data, size_t len, size_t *ret_len)
{
        size_t in = 0, out = 0;

        for (;;) {
                char *end;
                unsigned long n = strtoul(data + in, &end, 16);
                char *crlf = memmem(end, len - (size_t) (end - data), "\r\n", 2);

                if (end == data + in || !crlf)
                        return -EBADMSG;
                in = (size_t) (crlf - data) + 2;
                if (n == 0)
                        break;
                if (n > len - in)
                        return -EBADMSG;
                memmove(data + out, data + in, n);
                out += n;
                in += n + 2;
                if (in > len)
                        return -EBADMSG;
        }
        data[out] = 0;
        *ret_len = out;
        return 0;
}

int cli_read_response(int fd, bool upgrade, long *ret_status, json_t **ret_json)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, vlen = 0;
        const char *v;
        int head, status;

        head = read_head(fd, &buf, &len, upgrade);
        if (head < 0)
                return head;
        if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
                return -EBADMSG;
        *ret_status = status;
        *ret_json = NULL;
        if (status == 101)
                return 0;
        /* The body: Content-Length bytes, else (chunked, or Connection: close) up to the end of the stream. */
        v = head_value(buf, "Content-Length", &vlen);
        size_t want = v ? (size_t) strtoull(v, NULL, 10) : SIZE_MAX;
        if (v && want > RESPONSE_MAX)
                return -EFBIG;
        while (len - (size_t) head < want) {
                if (len + 65537 > RESPONSE_MAX)
                        return -EFBIG;
                char *n = realloc(buf, len + 65537);
                if (!n)
                        return -ENOMEM;
                buf = n;
                ssize_t k = read(fd, buf + len, MIN(65536, want - (len - (size_t) head)));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                len += (size_t) k;
        }
        buf[len] = 0;
        char *body = buf + head;
        size_t blen = len - (size_t) head;
        v = head_value(buf, "Transfer-Encoding", &vlen);
        if (v && vlen == 7 && strncasecmp(v, "chunked", 7) == 0 && dechunk(body, blen, &blen) < 0)
                return -EBADMSG;
        return cli_parse_body(status, body, blen, ret_json);
}

int cli_parse_body(long status, const char *body, size_t len, json_t **ret_json)
{
        json_error_t jerr;

        *ret_json = NULL;
        if (len == 0)
                return 0;
        *ret_json = json_loadb(body, len, 0, &jerr);
        if (!*ret_json) {
                fprintf(stderr, "pocketcoder: the daemon answered %ld with a body that is not JSON: %s\n", status,
                        jerr.text);
                return -EBADMSG;
        }
        return 0;
}

/* A buffered reader over the connection, for a body that arrives over time. */
typedef struct reader {
        int fd;
        char buf[65536];
        size_t len, off;
} reader;

static int reader_fill(reader *r)
{
        ssize_t k;

        if (r->off > 0) {
                memmove(r->buf, r->buf + r->off, r->len - r->off);
                r->len -= r->off;
                r->off = 0;
        }
        if (r->len == sizeof(r->buf))
                return -E2BIG;
        do
                k = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        r->len += (size_t) k;
        return (int) k;
}

/* The next line ending in '\n' (without it, and without a '\r' before it), NUL-terminated in place; NULL at
 * the end of the stream (a last line without '\n' is still a line). */
static char *reader_line(reader *r, int *ret_error)
{
        char *nl;
        int k;

        *ret_error = 0;
        while (!(nl = memchr(r->buf + r->off, '\n', r->len - r->off))) {
                k = reader_fill(r);
                if (k < 0) {
                        *ret_error = k;
                        return NULL;
                }
                if (k == 0) {
                        if (r->off == r->len || r->len == sizeof(r->buf))
                                return NULL;
                        r->buf[r->len] = 0; /* room: len < sizeof(buf) */
                        char *line = r->buf + r->off;
                        r->off = r->len;
                        return line;
                }
        }
        char *line = r->buf + r->off;
        *nl = 0;
        if (nl > line && nl[-1] == '\r')
                nl[-1] = 0;
        r->off = (size_t) (nl - r->buf) + 1;
        return line;
}

int cli_stream(const cli_global *g, const char *method, const char *path, json_t *body,
               int (*on_event)(json_t *event, void *userdata), void *userdata)
{
        _cleanup_free_ char *head = NULL, *chunks = NULL, *event_line = NULL;
        _cleanup_free_ reader *r = calloc(1, sizeof(reader));
        size_t chunk_left = 0;
        _cleanup_close_ int fd = -EBADF;
        const char *prefix, *v;
        size_t len = 0, vlen, chunks_len = 0;
        int k, hl, status;
        bool chunked;

        if (!r)
                return -ENOMEM;
        if (g->url && startswith(g->url, "https://")) {
                fprintf(stderr, "pocketcoder: progress streams need the unix socket or an http:// URL\n");
                return -EOPNOTSUPP;
        }
        fd = cli_connect(g, &prefix);
        if (fd < 0) {
                cli_print_unreachable(g, fd);
                return -ECONNREFUSED;
        }
        k = cli_send_request(fd, g, prefix, method, path, body, NULL);
        if (k >= 0)
                k = hl = read_head(fd, &head, &len, false);
        if (k < 0) {
                cli_print_unreachable(g, k);
                return -ECONNREFUSED;
        }
        if (sscanf(head, "HTTP/1.%*d %d", &status) != 1)
                return -EBADMSG;
        r->fd = fd;
        r->len = len - (size_t) hl;
        memcpy(r->buf, head + hl, r->len);
        head[hl] = 0;
        v = head_value(head, "Transfer-Encoding", &vlen);
        chunked = v && vlen == 7 && strncasecmp(v, "chunked", 7) == 0;

        /* Undo the chunking into a second stream of lines: each chunk's data is appended to `chunks`, whose
         * whole lines are events. Without chunking the lines are the body's. */
        for (;;) {
                char *line;
                int err;

                if (!chunked) {
                        line = reader_line(r, &err);
                        if (!line && status != 200)
                                return cli_print_api_error(status, NULL), -EIO;
                        if (!line)
                                return err;
                } else {
                        char *nl = chunks ? memchr(chunks, '\n', chunks_len) : NULL;
                        if (!nl) {
                                /* More of the body: the rest of this chunk (as much as has arrived), or the
                                 * next chunk's size line. */
                                if (chunk_left == 0) {
                                        char *size_line = reader_line(r, &err);
                                        if (size_line && !*size_line) /* the CRLF after a chunk's data */
                                                size_line = reader_line(r, &err);
                                        if (!size_line)
                                                return err < 0 ? err : -EBADMSG;
                                        chunk_left = strtoul(size_line, NULL, 16);
                                        if (chunk_left == 0)
                                                return 0;
                                }
                                if (r->off == r->len && (k = reader_fill(r)) <= 0)
                                        return k < 0 ? k : -EBADMSG;
                                size_t n = MIN(chunk_left, r->len - r->off);
                                char *c = realloc(chunks, chunks_len + n + 1);
                                if (!c)
                                        return -ENOMEM;
                                chunks = c;
                                memcpy(chunks + chunks_len, r->buf + r->off, n);
                                chunks_len += n;
                                r->off += n;
                                chunk_left -= n;
                                continue;
                        }
                        *nl = 0;
                        free(event_line);
                        event_line = strdup(chunks);
                        if (!event_line)
                                return -ENOMEM;
                        line = event_line;
                        chunks_len -= (size_t) (nl + 1 - chunks);
                        memmove(chunks, nl + 1, chunks_len);
                }
                /* server-sent events (an exec's output): their data lines are the JSON events */
                if (startswith(line, "data: "))
                        line += STRLEN("data: ");
                _cleanup_json_ json_t *j = json_loads(line, 0, NULL);
                if (status != 200)
                        return cli_print_api_error(status, j), -EIO;
                if (!j)
                        continue;
                k = on_event(j, userdata);
                if (k != 0)
                        return k;
        }
}

void cli_print_unreachable(const cli_global *g, int r)
{
        if (g->url)
                fprintf(stderr, "pocketcoder: cannot reach pocketcoderd at %s: %s\n", g->url, strerror(-r));
        else
                fprintf(stderr,
                        "pocketcoder: cannot reach pocketcoderd at %s: %s.\n"
                        "Is it running? Start it with 'sudo systemctl start pocketcoderd' (or "
                        "'sudo pocketcoderd --daemonize'), or point --socket/--url at it.\n",
                        g->socket, strerror(-r));
}

int cli_request(const cli_global *g, const char *method, const char *path, json_t *body, long *ret_status,
                json_t **ret_json)
{
        _cleanup_close_ int fd = -EBADF;
        const char *prefix;
        int r;

        if (g->url && startswith(g->url, "https://"))
                return cli_curl_request(g, method, path, body, ret_status, ret_json);
        fd = cli_connect(g, &prefix);
        if (fd < 0) {
                cli_print_unreachable(g, fd);
                return -ECONNREFUSED;
        }
        r = cli_send_request(fd, g, prefix, method, path, body, NULL);
        if (r >= 0)
                r = cli_read_response(fd, false, ret_status, ret_json);
        if (r < 0 && r != -EBADMSG) {
                cli_print_unreachable(g, r);
                return -ECONNREFUSED;
        }
        return r;
}

int cli_call(const cli_global *g, const char *method, const char *path, json_t *body, long want,
             json_t **ret_json)
{
        json_t *j = NULL;
        long status;
        int r;

        r = cli_request(g, method, path, body, &status, &j);
        if (r < 0)
                return r;
        if (status != want) {
                cli_print_api_error(status, j);
                json_decref(j);
                return -EIO;
        }
        *ret_json = j;
        return 0;
}

int cli_print_api_error(long status, json_t *body)
{
        const char *msg = json_string_value(json_object_get(json_object_get(body, "error"), "message"));

        fprintf(stderr, "pocketcoder: %s (HTTP %ld)\n", msg ?: "request failed", status);
        if (status == 401)
                fprintf(stderr, "Give a token with --token or POCKETCODER_TOKEN, or run as root on the unix "
                                "socket.\n");
        return CLI_EXIT_FAILED;
}

void cli_print_json(json_t *j)
{
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
}

/* Aligned columns; column widths are measured over all rows first. */
void cli_table_print(const char *const *header, size_t ncols, char **cells, size_t nrows)
{
        size_t width[16] = {};

        for (size_t c = 0; c < ncols && c < ELEMENTSOF(width); c++) {
                width[c] = strlen(header[c]);
                for (size_t r = 0; r < nrows; r++)
                        width[c] = MAX(width[c], strlen(cells[r * ncols + c] ?: "-"));
        }
        for (size_t c = 0; c < ncols; c++)
                printf("%-*s%s", c + 1 < ncols ? (int) width[c] : 0, header[c], c + 1 < ncols ? "  " : "\n");
        for (size_t r = 0; r < nrows; r++)
                for (size_t c = 0; c < ncols; c++)
                        printf("%-*s%s", c + 1 < ncols ? (int) width[c] : 0, cells[r * ncols + c] ?: "-",
                               c + 1 < ncols ? "  " : "\n");
}

const char *cli_format_time(json_t *t, char buf[static 32])
{
        time_t s;
        struct tm tm;

        if (!json_is_integer(t))
                return "-";
        s = (time_t) json_integer_value(t);
        if (!gmtime_r(&s, &tm) || strftime(buf, 32, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
                return "-";
        return buf;
}
