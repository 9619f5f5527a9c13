/* SPDX-License-Identifier: MIT */
/* The files API: GET/HEAD (a file's bytes straight from its fd, with ETag, Last-Modified, conditional
 * requests and byte ranges per RFC 9110; a directory's listing), PUT (streamed to a temporary file, then
 * renamed), DELETE and POST {path}:move. The filesystem side (never outside the workspace, always as the
 * sandbox's agent) is daemon/files.c; paths are checked by common/files-path.c first. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api-internal.h"
#include "files-path.h"
#include "http-range.h"

#define LIST_LIMIT_DEFAULT 1000u
#define LIST_LIMIT_MAX     10000u

struct api_files {
        pc_files_ws ws;
        pc_files_upload *upload;
        uint64_t received, max;
        bool too_large;
        char path[PC_FILES_PATH_MAX + 1];
};

void api_files_free(api_request *rq)
{
        if (!rq->files)
                return;
        pc_files_upload_free(rq->files->upload);
        if (rq->files->ws.fd >= 0)
                pc_files_ws_close(&rq->files->ws);
        free(rq->files);
        rq->files = NULL;
}

/* The {path*} of the request checked, and the sandbox's workspace opened; replies itself on failure
 * (returns false then, with *ret_mhd the answer). */
static bool files_begin(api_request *rq, const char *path, int *ret_mhd)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        const char *why = NULL;
        int r;

        if (pc_files_path_check(path, strlen(path), &why) < 0) {
                *ret_mhd = api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_path", "invalid path: %s", why);
                return false;
        }
        rq->files = calloc(1, sizeof(*rq->files));
        if (!rq->files) {
                *ret_mhd = MHD_NO;
                return false;
        }
        rq->files->ws.fd = -EBADF;
        snprintf(rq->files->path, sizeof(rq->files->path), "%s", path);
        r = pc_files_ws_open(rq->daemon, &rq->principal, rq->params[0], &rq->files->ws, &e);
        if (r < 0) {
                *ret_mhd = api_reply_pc_error(rq, r, e);
                return false;
        }
        return true;
}

static const char *query(api_request *rq, const char *key)
{
        return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
}

static const char *header(api_request *rq, const char *key)
{
        return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, key);
}

static int reply_listing(api_request *rq, const char *path)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        const char *v = query(rq, "limit"), *cursor = query(rq, "cursor"), *rec = query(rq, "recursive"), *why;
        uint64_t limit = LIST_LIMIT_DEFAULT;
        json_t *j = NULL;
        int r;

        if (v && (parse_uint64(v, &limit) < 0 || limit < 1 || limit > LIST_LIMIT_MAX))
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_query",
                                       "limit must be a number from 1 to %u", LIST_LIMIT_MAX);
        if (rec && !streq(rec, "0") && !streq(rec, "1"))
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_query", "recursive must be 0 or 1");
        if (cursor && (*cursor == 0 || pc_files_path_check(cursor, strlen(cursor), &why) < 0 ||
                       (!streq_ptr(rec, "1") && strchr(cursor, '/'))))
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_query",
                                       "cursor must be the next_cursor of the previous page");
        r = pc_files_list(&rq->files->ws, path, cursor, (unsigned) limit, streq_ptr(rec, "1"), &j, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        return api_reply_json(rq, MHD_HTTP_OK, j);
}

/* Content-Type: by extension, else text or binary from the first bytes. */
static const char *content_type(const char *path, int fd)
{
        static const struct {
                const char *ext, *type;
        } table[] = {
                { "txt", "text/plain; charset=utf-8" },    { "md", "text/markdown; charset=utf-8" },
                { "html", "text/html; charset=utf-8" },    { "htm", "text/html; charset=utf-8" },
                { "css", "text/css; charset=utf-8" },      { "js", "text/javascript; charset=utf-8" },
                { "json", "application/json" },            { "csv", "text/csv; charset=utf-8" },
                { "xml", "application/xml" },              { "svg", "image/svg+xml" },
                { "png", "image/png" },                    { "jpg", "image/jpeg" },
                { "jpeg", "image/jpeg" },                  { "gif", "image/gif" },
                { "webp", "image/webp" },                  { "pdf", "application/pdf" },
                { "zip", "application/zip" },              { "gz", "application/gzip" },
                { "tar", "application/x-tar" },            { "wasm", "application/wasm" },
                { "mp4", "video/mp4" },                    { "mp3", "audio/mpeg" },
                { "c", "text/x-c; charset=utf-8" },        { "h", "text/x-c; charset=utf-8" },
                { "py", "text/x-python; charset=utf-8" },  { "sh", "text/x-shellscript; charset=utf-8" },
                { "log", "text/plain; charset=utf-8" },    { "yaml", "application/yaml" },
        };
        const char *base = strrchr(path, '/'), *dot;
        unsigned char buf[512];
        ssize_t n;

        base = base ? base + 1 : path;
        dot = strrchr(base, '.');
        if (dot && dot != base)
                for (size_t i = 0; i < ELEMENTSOF(table); i++)
                        if (strcasecmp(dot + 1, table[i].ext) == 0)
                                return table[i].type;
        n = pread(fd, buf, sizeof(buf), 0);
        if (n < 0)
                return "application/octet-stream";
        for (ssize_t i = 0; i < n; i++)
                if (buf[i] == 0 || (buf[i] < 0x20 && !strchr("\t\n\r\f\v\x1b", buf[i])))
                        return "application/octet-stream";
        return "text/plain; charset=utf-8";
}

/* RFC 9110 8.8.3.2 comparison of an entity-tag list (If-None-Match: weak; If-Range: strong). */
static bool etag_list_matches(const char *list, const char *etag, bool weak)
{
        size_t n = strlen(etag);

        for (const char *p = list; *p;) {
                while (*p == ' ' || *p == '\t' || *p == ',')
                        p++;
                if (*p == '*')
                        return true;
                if (startswith(p, "W/")) {
                        if (!weak) {
                                p += 2;
                                goto skip;
                        }
                        p += 2;
                }
                if (strncmp(p, etag, n) == 0 && (p[n] == 0 || p[n] == ',' || p[n] == ' ' || p[n] == '\t'))
                        return true;
        skip:
                while (*p && *p != ',')
                        p++;
        }
        return false;
}

static bool parse_http_date(const char *s, time_t *ret)
{
        struct tm tm = {};
        const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);

        if (!end || *end)
                return false;
        *ret = timegm(&tm);
        return true;
}

typedef struct api_files api_files;

/* multipart/byteranges: the parts' headers and the file's bytes, generated as libmicrohttpd asks. */
typedef struct multipart {
        int fd;
        size_t n;
        struct {
                char *head; /* "\r\n--BOUNDARY\r\nContent-Type: ...\r\nContent-Range: ...\r\n\r\n" (first without
                             * the leading CRLF) */
                size_t head_len;
                pc_range r;
        } parts[PC_RANGES_MAX];
        char tail[64];
        size_t tail_len;
        uint64_t total;
} multipart;

static void multipart_free(void *cls)
{
        multipart *m = cls;

        for (size_t i = 0; i < m->n; i++)
                free(m->parts[i].head);
        safe_close(m->fd);
        free(m);
}

static ssize_t multipart_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        multipart *m = cls;
        uint64_t at = 0;

        for (size_t i = 0; i < m->n; i++) {
                uint64_t dlen = m->parts[i].r.last - m->parts[i].r.first + 1;

                if (pos < at + m->parts[i].head_len) {
                        size_t k = MIN(max, m->parts[i].head_len - (size_t) (pos - at));
                        memcpy(buf, m->parts[i].head + (pos - at), k);
                        return (ssize_t) k;
                }
                at += m->parts[i].head_len;
                if (pos < at + dlen) {
                        size_t k = (size_t) MIN((uint64_t) max, at + dlen - pos);
                        ssize_t r = pread(m->fd, buf, k, (off_t) (m->parts[i].r.first + (pos - at)));
                        return r > 0 ? r : MHD_CONTENT_READER_END_WITH_ERROR;
                }
                at += dlen;
        }
        if (pos < at + m->tail_len) {
                size_t k = MIN(max, m->tail_len - (size_t) (pos - at));
                memcpy(buf, m->tail + (pos - at), k);
                return (ssize_t) k;
        }
        return MHD_CONTENT_READER_END_OF_STREAM;
}

static struct MHD_Response *multipart_response(int *fd, const pc_range *ranges, int n, uint64_t size,
                                               const char *type, char ret_ctype[static 96])
{
        multipart *m = calloc(1, sizeof(*m));
        struct MHD_Response *resp;
        uint8_t rnd[12];
        char boundary[32];

        if (!m || getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
                free(m);
                return NULL;
        }
        for (size_t i = 0; i < sizeof(rnd); i++)
                snprintf(boundary + 2 * i, 3, "%02x", rnd[i]);
        m->fd = -EBADF;
        for (int i = 0; i < n; i++) {
                int k = asprintf(&m->parts[i].head, "%s--%s\r\nContent-Type: %s\r\nContent-Range: bytes %" PRIu64 "-%" PRIu64
                                 "/%" PRIu64 "\r\n\r\n", i == 0 ? "" : "\r\n", boundary, type, ranges[i].first,
                                 ranges[i].last, size);
                if (k < 0) {
                        multipart_free(m);
                        return NULL;
                }
                m->n++;
                m->parts[i].head_len = (size_t) k;
                m->parts[i].r = ranges[i];
                m->total += (uint64_t) k + ranges[i].last - ranges[i].first + 1;
        }
        m->tail_len = (size_t) snprintf(m->tail, sizeof(m->tail), "\r\n--%s--\r\n", boundary);
        m->total += m->tail_len;
        m->fd = TAKE_FD(*fd);
        resp = MHD_create_response_from_callback(m->total, 64 * 1024, multipart_read, m, multipart_free);
        if (!resp) {
                multipart_free(m);
                return NULL;
        }
        snprintf(ret_ctype, 96, "multipart/byteranges; boundary=%s", boundary);
        return resp;
}

static int reply_file(api_request *rq, int *fd, const struct stat *st)
{
        const char *type = content_type(rq->files->path, *fd), *inm = header(rq, MHD_HTTP_HEADER_IF_NONE_MATCH),
                   *ims = header(rq, MHD_HTTP_HEADER_IF_MODIFIED_SINCE), *rh = header(rq, MHD_HTTP_HEADER_RANGE),
                   *ifr = header(rq, MHD_HTTP_HEADER_IF_RANGE);
        uint64_t size = (uint64_t) st->st_size;
        char etag[96], lastmod[64], crange[96], mtype[96];
        struct MHD_Response *resp = NULL;
        unsigned status = MHD_HTTP_OK;
        pc_range ranges[PC_RANGES_MAX];
        struct tm tm;
        time_t t;
        int n = -EINVAL;
        enum MHD_Result ok;

        snprintf(etag, sizeof(etag), "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 ".%09ld\"", (uint64_t) st->st_ino, size,
                 (uint64_t) st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
        strftime(lastmod, sizeof(lastmod), "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&st->st_mtime, &tm));
        /* RFC 9110 13.2.2: If-None-Match, else If-Modified-Since; then Range, subject to If-Range. */
        if ((inm && etag_list_matches(inm, etag, true)) ||
            (!inm && ims && parse_http_date(ims, &t) && st->st_mtime <= t))
                status = MHD_HTTP_NOT_MODIFIED;
        else if (rh && (!ifr || (ifr[0] == '"' ? etag_list_matches(ifr, etag, false) && !strchr(ifr, ',')
                                               : parse_http_date(ifr, &t) && t == st->st_mtime))) {
                n = pc_http_ranges_parse(rh, size, ranges);
                if (n == 0) {
                        snprintf(crange, sizeof(crange), "bytes */%" PRIu64, size);
                        resp = MHD_create_response_from_buffer(0, (char *) "", MHD_RESPMEM_PERSISTENT);
                        status = MHD_HTTP_RANGE_NOT_SATISFIABLE;
                } else if (n == 1) {
                        snprintf(crange, sizeof(crange), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, ranges[0].first,
                                 ranges[0].last, size);
                        resp = MHD_create_response_from_fd_at_offset64(ranges[0].last - ranges[0].first + 1, *fd,
                                                                       ranges[0].first);
                        if (resp)
                                *fd = -EBADF;
                        status = MHD_HTTP_PARTIAL_CONTENT;
                } else if (n > 1) {
                        resp = multipart_response(fd, ranges, n, size, type, mtype);
                        status = MHD_HTTP_PARTIAL_CONTENT;
                }
        }
        if (status == MHD_HTTP_NOT_MODIFIED)
                resp = MHD_create_response_from_buffer(0, (char *) "", MHD_RESPMEM_PERSISTENT);
        else if (status == MHD_HTTP_OK) {
                resp = MHD_create_response_from_fd64(size, *fd);
                if (resp)
                        *fd = -EBADF;
        }
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, lastmod);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        if (status != MHD_HTTP_NOT_MODIFIED) {
                /* What the agent wrote is never a page of this origin: no sniffing, no scripts. */
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                        status == MHD_HTTP_PARTIAL_CONTENT && n > 1 ? mtype : type);
                MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
                MHD_add_response_header(resp, "Content-Security-Policy", "sandbox");
        }
        if (status == MHD_HTTP_RANGE_NOT_SATISFIABLE || (status == MHD_HTTP_PARTIAL_CONTENT && n == 1))
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, crange);
        ok = MHD_queue_response(rq->conn, status, resp);
        MHD_destroy_response(resp);
        rq->replied = true;
        return ok;
}

static bool accepts_tar(api_request *rq)
{
        const char *a = header(rq, MHD_HTTP_HEADER_ACCEPT);

        return a && strcasestr(a, "application/x-tar");
}

static ssize_t tar_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        ssize_t n = pc_files_tar_read(cls, buf, max);

        return n > 0 ? n : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void tar_free(void *cls)
{
        pc_files_tar_free(cls);
}

/* A directory as a tar stream (Accept: application/x-tar), generated as it is sent. */
static int reply_tar(api_request *rq, const char *path)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        const char *base = strrchr(path, '/');
        struct MHD_Response *resp;
        pc_files_tar *t = NULL;
        char disp[PC_FILES_NAME_MAX + 64];
        int r;

        r = pc_files_tar_new(&rq->files->ws, path, &t, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, tar_read, t, tar_free);
        if (!resp) {
                pc_files_tar_free(t);
                return MHD_NO;
        }
        base = base ? base + 1 : *path ? path : rq->params[0];
        /* The name is a checked path component (no quote, backslash or control character). */
        snprintf(disp, sizeof(disp), "attachment; filename=\"%s.tar\"", strchr(base, '"') ? "files" : base);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-tar");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disp);
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        r = MHD_queue_response(rq->conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        rq->replied = true;
        return r;
}

static int files_get(api_request *rq, const char *path)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        if (!files_begin(rq, path, &r))
                return r;
        r = pc_files_open_read(&rq->files->ws, path, &fd, &st, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        if (streq_ptr(query(rq, "watch"), "1")) {
                if (!S_ISDIR(st.st_mode))
                        return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "not_a_directory",
                                               "watch=1 watches a directory; \"%s\" is a file", path);
                return api_files_watch(rq, fd, path);
        }
        if (S_ISDIR(st.st_mode) && accepts_tar(rq))
                return reply_tar(rq, path);
        if (S_ISDIR(st.st_mode))
                return reply_listing(rq, path);
        return reply_file(rq, &fd, &st);
}

int api_get_files_root(api_request *rq)
{
        return files_get(rq, "");
}

int api_get_file(api_request *rq)
{
        return files_get(rq, rq->tail);
}

int api_put_file(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        const char *cl, *parents;
        bool created;
        int r;

        if (!rq->files) { /* the headers are in: open the upload */
                uint64_t len;

                if (!files_begin(rq, rq->tail, &r))
                        return r;
                rq->files->max = pc_daemon_config(rq->daemon)->files_max_upload;
                cl = header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (cl && parse_uint64(cl, &len) >= 0 && len > rq->files->max)
                        return api_reply_error(rq, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                                               "the file is larger than files_max_upload (%" PRIu64 " bytes)",
                                               rq->files->max);
                parents = query(rq, "parents");
                if (parents && !streq(parents, "1") && !streq(parents, "0"))
                        return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_query", "parents must be 0 or 1");
                r = pc_files_upload_begin(&rq->files->ws, rq->files->path, streq_ptr(parents, "1"),
                                          &rq->files->upload, &e);
                if (r < 0)
                        return api_reply_pc_error(rq, r, e);
                if (!rq->body_complete)
                        return MHD_YES;
        }
        if (rq->files->too_large) {
                /* The temporary file goes before the answer: a client that got its 413 finds nothing. */
                rq->files->upload = pc_files_upload_free(rq->files->upload);
                return api_reply_error(rq, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                                       "the file is larger than files_max_upload (%" PRIu64 " bytes); nothing was "
                                       "written",
                                       rq->files->max);
        }
        r = pc_files_upload_commit(rq->files->upload, &created, &e);
        if (r < 0) {
                rq->files->upload = pc_files_upload_free(rq->files->upload);
                return api_reply_pc_error(rq, r, e);
        }
        (void) pc_files_audit(rq->daemon, &rq->principal, "file.put", rq->params[0], rq->files->path);
        return api_reply_json(rq, created ? MHD_HTTP_CREATED : MHD_HTTP_OK,
                              json_pack("{s:s, s:I, s:b}", "path", rq->files->path, "size",
                                        (json_int_t) rq->files->received, "created", created));
}

void api_files_upload_data(api_request *rq, const char *data, size_t n)
{
        api_files *f = rq->files;

        if (!f || !f->upload || f->too_large)
                return;
        if (f->received + n > f->max) {
                f->too_large = true;
                return;
        }
        f->received += n;
        (void) pc_files_upload_write(f->upload, data, n); /* a failure is reported by commit */
}

int api_delete_file(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        int r;

        if (!files_begin(rq, rq->tail, &r))
                return r;
        r = pc_files_delete(&rq->files->ws, rq->files->path, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        (void) pc_files_audit(rq->daemon, &rq->principal, "file.delete", rq->params[0], rq->files->path);
        return api_reply_json(rq, MHD_HTTP_NO_CONTENT, NULL);
}

static int post_move(api_request *rq, const char *from)
{
        static const char *const fields[] = { "to", NULL };
        _cleanup_pc_error_ pc_error *e = NULL;
        _cleanup_free_ char *detail = NULL;
        const char *to, *why = NULL;
        int r;

        if (!json_is_object(rq->json))
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_body", "the body must be {\"to\": \"PATH\"}");
        r = pc_json_check_fields(rq->json, fields, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        to = json_string_value(json_object_get(rq->json, "to"));
        if (!to)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_body", "the body must be {\"to\": \"PATH\"}");
        if (pc_files_path_check(to, strlen(to), &why) < 0 || !*to)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_path", "invalid \"to\": %s",
                                       why ?: "the workspace itself");
        if (!*from)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_path", "the workspace itself cannot move");
        if (!files_begin(rq, from, &r))
                return r;
        r = pc_files_move(&rq->files->ws, rq->files->path, to, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        if (asprintf(&detail, "%s -> %s", rq->files->path, to) >= 0)
                (void) pc_files_audit(rq->daemon, &rq->principal, "file.move", rq->params[0], detail);
        return api_reply_json(rq, MHD_HTTP_OK, json_pack("{s:s, s:s}", "from", rq->files->path, "to", to));
}

/* PATH percent-encoded for a URL ('/' kept). */
static char *url_encode(const char *path)
{
        static const char hex[] = "0123456789ABCDEF";
        char *enc = malloc(strlen(path) * 3 + 1), *o = enc;

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
        return enc;
}

/* POST .../files/{path}:link {"minutes": N}: a URL that downloads the file without a token until it
 * expires. The caller must be able to read the file now. */
static int post_link(api_request *rq, const char *path)
{
        static const char *const fields[] = { "minutes", NULL };
        _cleanup_pc_error_ pc_error *e = NULL;
        _cleanup_free_ char *enc = NULL, *url = NULL;
        _cleanup_close_ int fd = -EBADF;
        json_t *m = rq->json ? json_object_get(rq->json, "minutes") : NULL;
        json_int_t minutes = 60;
        struct stat st;
        int64_t expires;
        char sig[65];
        int r;

        if (rq->json) {
                if (!json_is_object(rq->json))
                        return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_body",
                                               "the body must be {\"minutes\": N}");
                r = pc_json_check_fields(rq->json, fields, &e);
                if (r < 0)
                        return api_reply_pc_error(rq, r, e);
        }
        if (m && (!json_is_integer(m) || json_integer_value(m) < 1 ||
                  json_integer_value(m) > (json_int_t) PC_FILES_LINK_MINUTES_MAX))
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_field",
                                       "minutes must be a whole number from 1 to %u", PC_FILES_LINK_MINUTES_MAX);
        if (m)
                minutes = json_integer_value(m);
        if (!files_begin(rq, path, &r))
                return r;
        r = pc_files_open_read(&rq->files->ws, rq->files->path, &fd, &st, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        if (!S_ISREG(st.st_mode))
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "not_a_file", "links are for files; \"%s\" is a directory",
                                       rq->files->path);
        r = pc_files_link_create(rq->daemon, rq->params[0], rq->files->path, (unsigned) minutes, &expires, sig, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        enc = url_encode(rq->files->path);
        if (!enc || asprintf(&url, "/v1/links/%s/%s?expires=%" PRId64 "&sig=%s", rq->params[0], enc, expires, sig) < 0)
                return MHD_NO;
        return api_reply_json(rq, MHD_HTTP_CREATED, json_pack("{s:s, s:I}", "url", url, "expires", (json_int_t) expires));
}

/* GET /v1/links/{name}/{path*}?expires=&sig=: no token; the signature is the authorization, for this one
 * file until it expires. Read as the sandbox's agent like every other read. */
int api_get_link(api_request *rq)
{
        _cleanup_pc_error_ pc_error *e = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *why = NULL;
        struct stat st;
        int r;

        if (pc_files_path_check(rq->tail, strlen(rq->tail), &why) < 0)
                return api_reply_error(rq, MHD_HTTP_BAD_REQUEST, "invalid_path", "invalid path: %s", why);
        r = pc_files_link_verify(rq->daemon, rq->params[0], rq->tail, query(rq, "expires"), query(rq, "sig"), &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        api_request_trusted(rq);
        rq->principal = (pc_principal){ .role = PC_ROLE_ADMIN };
        if (!files_begin(rq, rq->tail, &r))
                return r;
        r = pc_files_open_read(&rq->files->ws, rq->files->path, &fd, &st, &e);
        if (r < 0)
                return api_reply_pc_error(rq, r, e);
        if (!S_ISREG(st.st_mode))
                return api_reply_error(rq, MHD_HTTP_FORBIDDEN, "not_a_file", "links are for files");
        return reply_file(rq, &fd, &st);
}

/* POST .../files/{path}:move {"to": PATH}, POST .../files/{path}:link {"minutes": N}. */
int api_post_file(api_request *rq)
{
        _cleanup_free_ char *from = NULL;
        const char *colon = strrchr(rq->tail, ':');

        if (!colon || (!streq(colon, ":move") && !streq(colon, ":link")))
                return api_reply_error(rq, MHD_HTTP_NOT_FOUND, "not_found",
                                       "POST on a file takes an action: .../files/PATH:move or .../files/PATH:link");
        from = strndup(rq->tail, (size_t) (colon - rq->tail));
        if (!from)
                return MHD_NO;
        if (streq(colon, ":link"))
                return post_link(rq, from);
        return post_move(rq, from);
}
