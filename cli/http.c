/* SPDX-License-Identifier: MIT */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "common.h"

typedef struct buffer {
        char *data;
        size_t len;
} buffer;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        buffer *b = userdata;
        size_t n = size * nmemb;
        char *p = realloc(b->data, b->len + n + 1);

        if (!p)
                return 0;
        memcpy(p + b->len, ptr, n);
        b->len += n;
        p[b->len] = 0;
        b->data = p;
        return n;
}

static void curl_easy_cleanupp(CURL **c)
{
        if (*c)
                curl_easy_cleanup(*c);
}

static void curl_slist_free_allp(struct curl_slist **l)
{
        curl_slist_free_all(*l);
}

int cli_request(const cli_global *g, const char *method, const char *path, json_t *body, long *ret_status,
                json_t **ret_json)
{
        _cleanup_(curl_easy_cleanupp) CURL *c = curl_easy_init();
        _cleanup_(curl_slist_free_allp) struct curl_slist *headers = NULL;
        _cleanup_free_ char *url = NULL, *auth = NULL, *payload = NULL;
        _cleanup_free_ char *resp_data = NULL;
        buffer resp = {};
        CURLcode cc;
        long status = 0;

        if (!c)
                return -ENOMEM;
        url = strjoin(g->url ?: "http://localhost", path);
        if (!url)
                return -ENOMEM;
        curl_easy_setopt(c, CURLOPT_URL, url);
        if (!g->url)
                curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, g->socket);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        if (g->token) {
                auth = strjoin("Authorization: Bearer ", g->token);
                if (!auth)
                        return -ENOMEM;
                headers = curl_slist_append(headers, auth);
        }
        if (body) {
                payload = json_dumps(body, JSON_COMPACT);
                if (!payload)
                        return -ENOMEM;
                headers = curl_slist_append(headers, "Content-Type: application/json");
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);

        cc = curl_easy_perform(c);
        resp_data = resp.data;
        if (cc != CURLE_OK) {
                if (g->url)
                        fprintf(stderr, "pocketcoder: cannot reach pocketcoderd at %s: %s\n", g->url,
                                curl_easy_strerror(cc));
                else
                        fprintf(stderr,
                                "pocketcoder: cannot reach pocketcoderd at %s: %s.\n"
                                "Is it running? Start it with 'sudo systemctl start pocketcoderd' (or "
                                "'sudo pocketcoderd --daemonize'), or point --socket/--url at it.\n",
                                g->socket, curl_easy_strerror(cc));
                return -ECONNREFUSED;
        }
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        *ret_status = status;
        *ret_json = NULL;
        if (resp.len > 0) {
                json_error_t jerr;
                *ret_json = json_loadb(resp.data, resp.len, 0, &jerr);
                if (!*ret_json) {
                        fprintf(stderr, "pocketcoder: the daemon answered %ld with a body that is not JSON: %s\n",
                                status, jerr.text);
                        return -EBADMSG;
                }
        }
        return 0;
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
