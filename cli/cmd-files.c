/* SPDX-License-Identifier: MIT */
/* pocketcoder files ls|get|put|rm|mv NAME PATH ...: the files API. Downloads and uploads stream (never the
 * whole file in memory) over the unix socket or an http:// URL, with progress on stderr when it is a
 * terminal. */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"

#define HEAD_MAX     (64u * 1024)
#define ERROR_BODY_MAX (64u * 1024)
#define PROGRESS_MIN (4u << 20) /* smaller transfers show no progress */

static int usage(bool ok)
{
        if (!ok)
                fprintf(stderr, "pocketcoder files: missing or unknown subcommand.\n\n");
        printf("Usage: pocketcoder files ls NAME [PATH]\n"
               "       pocketcoder files get NAME PATH [OUTPUT|-]\n"
               "       pocketcoder files put [--parents] NAME PATH [INPUT|-]\n"
               "       pocketcoder files rm NAME PATH\n"
               "       pocketcoder files mv NAME PATH TO\n"
               "       pocketcoder files link [--minutes N] NAME PATH\n"
               "\n"
               "Files in sandbox NAME's workspace; PATH is relative to it. get writes to OUTPUT (default: the\n"
               "file's name in the current directory; - is stdout), put reads INPUT (default: PATH's name; -\n"
               "is stdin) and replaces PATH atomically; --parents creates missing directories. Symlinks are\n"
               "listed, never followed. Progress goes to stderr when it is a terminal. link prints a URL that\n"
               "downloads PATH without a token for N minutes (default 60, at most 10080).\n");
        return ok ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

/* PATH percent-encoded for the URL ('/' kept). */
static char *url_path(const char *name, const char *path)
{
        static const char hex[] = "0123456789ABCDEF";
        _cleanup_free_ char *enc = malloc(strlen(path) * 3 + 1);
        char *o = enc, *ret = NULL;

        if (!enc)
                return NULL;
        for (const unsigned char *p = (const unsigned char *) path; *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                    strchr("-._~/", *p))
                        *o++ = (char) *p;
                else {
                        *o++ = '%';
                        *o++ = hex[*p >> 4];
                        *o++ = hex[*p & 15];
                }
        }
        *o = 0;
        if (asprintf_safe(&ret, "/v1/sandboxes/%s/files%s%s", name, *enc ? "/" : "", enc) < 0)
                return NULL;
        return ret;
}

typedef struct progress {
        bool on;
        uint64_t total, done;
        uint64_t start, last;
} progress;

static void progress_init(progress *p, uint64_t total)
{
        *p = (progress){ .on = isatty(STDERR_FILENO) && total >= PROGRESS_MIN, .total = total,
                         .start = now_usec(CLOCK_MONOTONIC) };
}

static void progress_add(progress *p, uint64_t n, bool end)
{
        uint64_t now = now_usec(CLOCK_MONOTONIC), el;

        p->done += n;
        if (!p->on || (!end && now - p->last < 200000))
                return;
        p->last = now;
        el = MAX(now - p->start, 1u);
        fprintf(stderr, "\r%6.1f%%  %" PRIu64 " / %" PRIu64 " MiB  %.1f MiB/s%s",
                p->total ? 100.0 * (double) p->done / (double) p->total : 100.0, p->done >> 20, p->total >> 20,
                (double) p->done / (double) el * 1e6 / (1 << 20), end ? "\n" : "");
}

/* Reads the response head into buf (at most HEAD_MAX); returns its length, *ret_len what was read. */
static int read_head(int fd, char *buf, size_t *ret_len)
{
        size_t len = 0;

        for (;;) {
                ssize_t k = read(fd, buf + len, HEAD_MAX - 1 - len);
                char *end;

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EBADMSG;
                len += (size_t) k;
                buf[len] = 0;
                end = strstr(buf, "\r\n\r\n");
                if (end) {
                        *ret_len = len;
                        return (int) (end + 4 - buf);
                }
                if (len >= HEAD_MAX - 1)
                        return -EBADMSG;
        }
}

static uint64_t head_length(const char *head)
{
        const char *v = strcasestr(head, "\r\nContent-Length:");

        return v ? strtoull(v + STRLEN("\r\nContent-Length:"), NULL, 10) : UINT64_MAX;
}

/* The rest of an error response (buffered part plus what follows, bounded) shown as the API's error. */
static int print_error(int fd, long status, const char *buf, size_t have)
{
        _cleanup_free_ char *body = malloc(ERROR_BODY_MAX + 1);
        _cleanup_json_ json_t *j = NULL;
        size_t len = MIN(have, (size_t) ERROR_BODY_MAX);

        if (!body)
                return CLI_EXIT_FAILED;
        memcpy(body, buf, len);
        for (ssize_t k; len < ERROR_BODY_MAX && (k = read(fd, body + len, ERROR_BODY_MAX - len)) > 0;)
                len += (size_t) k;
        if (cli_parse_body(status, body, len, &j) < 0)
                return CLI_EXIT_FAILED;
        return cli_print_api_error(status, j);
}

/* Sends METHOD on the files URL (with a body of `length` bytes from in_fd, -1: chunked until EOF) and
 * reads the head; returns the connected fd and fills buf/len/head. */
static int transfer(const cli_global *g, const char *method, const char *url, int in_fd, uint64_t length,
                    char *buf, size_t *ret_len, int *ret_head, long *ret_status)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *head = NULL;
        const char *prefix;
        progress p;
        int r, status;

        fd = cli_connect(g, &prefix);
        if (fd < 0) {
                cli_print_unreachable(g, fd);
                return fd;
        }
        r = asprintf_safe(&head, "%s %s%s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: pocketcoder/" PACKAGE_VERSION
                          "\r\nConnection: close\r\n%s%s%s",
                          method, prefix, url, g->token ? "Authorization: Bearer " : "", g->token ?: "",
                          g->token ? "\r\n" : "");
        if (r < 0)
                return r;
        r = write_all(fd, head, strlen(head));
        if (r >= 0 && in_fd < 0)
                r = write_all(fd, "Content-Length: 0\r\n\r\n", STRLEN("Content-Length: 0\r\n\r\n"));
        if (r >= 0 && in_fd >= 0) {
                char line[64], *chunk = malloc(1 << 20);
                bool chunked = length == UINT64_MAX;

                if (!chunk)
                        return -ENOMEM;
                if (chunked)
                        snprintf(line, sizeof(line), "Transfer-Encoding: chunked\r\n\r\n");
                else
                        snprintf(line, sizeof(line), "Content-Length: %" PRIu64 "\r\n\r\n", length);
                r = write_all(fd, line, strlen(line));
                progress_init(&p, chunked ? 0 : length);
                while (r >= 0) {
                        ssize_t k = read(in_fd, chunk, 1 << 20);

                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0) {
                                r = -errno;
                                break;
                        }
                        if (chunked) {
                                snprintf(line, sizeof(line), "%zx\r\n", (size_t) k);
                                r = write_all(fd, line, strlen(line));
                        }
                        if (r >= 0 && k > 0)
                                r = write_all(fd, chunk, (size_t) k);
                        if (r >= 0 && chunked)
                                r = write_all(fd, "\r\n", 2);
                        if (k == 0)
                                break;
                        progress_add(&p, (uint64_t) k, false);
                }
                progress_add(&p, 0, true);
                free(chunk);
        }
        /* A refusal (401, 413, ...) may come before the whole body was taken: read it all the same. */
        if (r < 0 && r != -EPIPE && r != -ECONNRESET) {
                fprintf(stderr, "pocketcoder files: %s\n", strerror(-r));
                return r;
        }
        r = read_head(fd, buf, ret_len);
        if (r < 0 || sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
                fprintf(stderr, "pocketcoder files: the daemon's answer is not HTTP\n");
                return -EBADMSG;
        }
        *ret_head = r;
        *ret_status = status;
        return TAKE_FD(fd);
}

static int files_get(const cli_global *g, const char *name, const char *path, const char *out)
{
        _cleanup_free_ char *url = url_path(name, path), *buf = malloc(HEAD_MAX);
        _cleanup_close_ int fd = -EBADF, ofd = -EBADF;
        _cleanup_free_ char *tmp = NULL;
        const char *base = strrchr(path, '/');
        size_t len;
        uint64_t want;
        long status;
        int head, r;
        progress p;

        if (!url || !buf)
                return CLI_EXIT_FAILED;
        out = out ?: base ? base + 1 : path;
        fd = transfer(g, "GET", url, -1, 0, buf, &len, &head, &status);
        if (fd < 0)
                return CLI_EXIT_FAILED;
        if (status != 200)
                return print_error(fd, status, buf + head, len - (size_t) head);
        /* A file always comes with Accept-Ranges, a directory's listing never. */
        if (!strcasestr(buf, "\r\nAccept-Ranges:")) {
                fprintf(stderr, "pocketcoder files get: %s is a directory; use 'pocketcoder files ls'\n", path);
                return CLI_EXIT_FAILED;
        }
        if (streq(out, "-"))
                ofd = STDOUT_FILENO;
        else {
                /* Written next to OUTPUT and renamed at the end: a failed download leaves no half file. */
                if (asprintf_safe(&tmp, "%s.part", out) < 0)
                        return CLI_EXIT_FAILED;
                ofd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (ofd < 0) {
                        fprintf(stderr, "pocketcoder files get: cannot write %s: %m\n", tmp);
                        return CLI_EXIT_FAILED;
                }
        }
        want = head_length(buf);
        progress_init(&p, want == UINT64_MAX ? 0 : want);
        r = write_all(ofd, buf + head, len - (size_t) head);
        progress_add(&p, len - (size_t) head, false);
        while (r >= 0 && p.done < want) {
                ssize_t k = read(fd, buf, HEAD_MAX);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        r = k < 0 ? -errno : want == UINT64_MAX ? 0 : -EPIPE;
                        break;
                }
                r = write_all(ofd, buf, (size_t) k);
                progress_add(&p, (uint64_t) k, false);
        }
        progress_add(&p, 0, true);
        if (ofd == STDOUT_FILENO)
                ofd = -EBADF;
        if (r < 0 || (ofd >= 0 && fsync(ofd) < 0) || (tmp && rename(tmp, out) < 0)) {
                fprintf(stderr, "pocketcoder files get: %s: %s\n", path,
                        r == -EPIPE ? "the connection ended before the whole file came" : strerror(r < 0 ? -r : errno));
                if (tmp)
                        (void) unlink(tmp);
                return CLI_EXIT_FAILED;
        }
        return CLI_EXIT_OK;
}

static int files_put(const cli_global *g, const char *name, const char *path, const char *in, bool parents)
{
        _cleanup_free_ char *url0 = url_path(name, path), *url = NULL, *buf = malloc(HEAD_MAX);
        _cleanup_close_ int fd = -EBADF, ifd = -EBADF;
        const char *base = strrchr(path, '/');
        uint64_t length = UINT64_MAX;
        struct stat st;
        size_t len;
        long status;
        int head;

        if (!url0 || !buf || asprintf_safe(&url, "%s%s", url0, parents ? "?parents=1" : "") < 0)
                return CLI_EXIT_FAILED;
        in = in ?: base ? base + 1 : path;
        if (streq(in, "-"))
                ifd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
        else
                ifd = open(in, O_RDONLY | O_CLOEXEC);
        if (ifd < 0 || fstat(ifd, &st) < 0) {
                fprintf(stderr, "pocketcoder files put: cannot read %s: %m\n", in);
                return CLI_EXIT_FAILED;
        }
        if (S_ISREG(st.st_mode))
                length = (uint64_t) st.st_size;
        fd = transfer(g, "PUT", url, ifd, length, buf, &len, &head, &status);
        if (fd < 0)
                return CLI_EXIT_FAILED;
        if (status != 200 && status != 201)
                return print_error(fd, status, buf + head, len - (size_t) head);
        return CLI_EXIT_OK;
}

static int files_ls(const cli_global *g, const char *name, const char *path)
{
        static const char *const header[] = { "TYPE", "MODE", "SIZE", "MODIFIED", "NAME" };
        _cleanup_free_ char *url = url_path(name, path ?: ""), *cursor = NULL;
        _cleanup_json_ json_t *all = json_array();
        json_t *e;
        size_t i, n;

        if (!url || !all)
                return CLI_EXIT_FAILED;
        /* Every page (the daemon gives at most 10,000 entries at a time), then one table. */
        for (;;) {
                _cleanup_json_ json_t *resp = NULL;
                _cleanup_free_ char *page = NULL, *enc = NULL;

                if (cursor && !(enc = url_path("x", cursor))) /* the same escaping for the query value */
                        return CLI_EXIT_FAILED;
                if (asprintf_safe(&page, "%s?limit=10000%s%s", url, cursor ? "&cursor=" : "",
                                  cursor ? enc + STRLEN("/v1/sandboxes/x/files/") : "") < 0)
                        return CLI_EXIT_FAILED;
                if (cli_call(g, "GET", page, NULL, 200, &resp) < 0)
                        return CLI_EXIT_FAILED;
                json_array_extend(all, json_object_get(resp, "entries"));
                free(cursor);
                cursor = NULL;
                if (!json_is_string(json_object_get(resp, "next_cursor")))
                        break;
                cursor = strdup(json_string_value(json_object_get(resp, "next_cursor")));
                if (!cursor)
                        return CLI_EXIT_FAILED;
        }
        if (g->json) {
                cli_print_json(all);
                return CLI_EXIT_OK;
        }
        n = json_array_size(all);
        char **cells = calloc(MAX(n, 1u) * 5, sizeof(char *));
        if (!cells)
                return CLI_EXIT_FAILED;
        json_array_foreach(all, i, e) {
                char t[32];

                cells[i * 5] = strdup(json_string_value(json_object_get(e, "type")) ?: "?");
                cells[i * 5 + 1] = strdup(json_string_value(json_object_get(e, "mode")) ?: "?");
                (void) asprintf_safe(&cells[i * 5 + 2], "%" JSON_INTEGER_FORMAT,
                                     json_integer_value(json_object_get(e, "size")));
                cells[i * 5 + 3] = strdup(cli_format_time(json_object_get(e, "mtime"), t));
                cells[i * 5 + 4] = strdup(json_string_value(json_object_get(e, "name")) ?: "?");
        }
        cli_table_print(header, 5, cells, n);
        for (i = 0; i < n * 5; i++)
                free(cells[i]);
        free(cells);
        return CLI_EXIT_OK;
}

int cmd_files(int argc, char **argv, const cli_global *g)
{
        static const struct option options[] = {
                { "parents", no_argument, NULL, 'p' },
                { "minutes", required_argument, NULL, 'm' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *sub;
        bool parents = false;
        uint64_t minutes = 60;
        int opt;

        if (argc < 2)
                return usage(false);
        sub = argv[1];
        if (streq(sub, "help") || streq(sub, "--help") || streq(sub, "-h"))
                return usage(true);
        argc--, argv++;
        optind = 1;
        while ((opt = getopt_long(argc, argv, "hpm:", options, NULL)) >= 0) {
                if (opt == 'p' && streq(sub, "put"))
                        parents = true;
                else if (opt == 'm' && streq(sub, "link")) {
                        if (parse_uint64(optarg, &minutes) < 0 || minutes < 1 || minutes > 10080) {
                                fprintf(stderr, "pocketcoder files link: --minutes must be from 1 to 10080\n");
                                return CLI_EXIT_USAGE;
                        }
                } else
                        return usage(opt == 'h');
        }
        argc -= optind;
        argv += optind;
        (void) signal(SIGPIPE, SIG_IGN);
        if (streq(sub, "ls") && (argc == 1 || argc == 2))
                return files_ls(g, argv[0], argc == 2 ? argv[1] : NULL);
        if (streq(sub, "get") && (argc == 2 || argc == 3))
                return files_get(g, argv[0], argv[1], argc == 3 ? argv[2] : NULL);
        if (streq(sub, "put") && (argc == 2 || argc == 3))
                return files_put(g, argv[0], argv[1], argc == 3 ? argv[2] : NULL, parents);
        if (streq(sub, "rm") && argc == 2) {
                _cleanup_free_ char *url = url_path(argv[0], argv[1]);
                _cleanup_json_ json_t *resp = NULL;
                return url && cli_call(g, "DELETE", url, NULL, 204, &resp) >= 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
        }
        if (streq(sub, "mv") && argc == 3) {
                _cleanup_free_ char *url = url_path(argv[0], argv[1]), *act = NULL;
                _cleanup_json_ json_t *req = json_pack("{s:s}", "to", argv[2]), *resp = NULL;
                if (!url || !req || asprintf_safe(&act, "%s:move", url) < 0)
                        return CLI_EXIT_FAILED;
                return cli_call(g, "POST", act, req, 200, &resp) >= 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
        }
        if (streq(sub, "link") && argc == 2) {
                _cleanup_free_ char *url = url_path(argv[0], argv[1]), *act = NULL;
                _cleanup_json_ json_t *req = json_pack("{s:I}", "minutes", (json_int_t) minutes), *resp = NULL;
                if (!url || !req || asprintf_safe(&act, "%s:link", url) < 0 ||
                    cli_call(g, "POST", act, req, 201, &resp) < 0)
                        return CLI_EXIT_FAILED;
                if (g->json)
                        cli_print_json(resp);
                else /* over TCP the whole URL; on the unix socket the path (to put behind the daemon's address) */
                        printf("%s%s\n", g->url ?: "", json_string_value(json_object_get(resp, "url")) ?: "");
                return CLI_EXIT_OK;
        }
        return usage(false);
}
