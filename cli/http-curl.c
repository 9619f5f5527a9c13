/* SPDX-License-Identifier: MIT */
/* https:// URLs (a daemon behind a TLS-terminating proxy) through libcurl, opened with dlopen() on first use:
 * the CLI's other paths (the unix socket, plain http://) never map libcurl's tree of shared objects. */
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"

static struct {
        CURLcode (*global_init)(long);
        CURL *(*easy_init)(void);
        CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
        CURLcode (*easy_perform)(CURL *);
        CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
        void (*easy_cleanup)(CURL *);
        const char *(*easy_strerror)(CURLcode);
        struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
        void (*slist_free_all)(struct curl_slist *);
} curl;

static int curl_load(void)
{
        static const char *const names[] = { "curl_global_init",  "curl_easy_init",     "curl_easy_setopt",
                                             "curl_easy_perform", "curl_easy_getinfo",  "curl_easy_cleanup",
                                             "curl_easy_strerror", "curl_slist_append", "curl_slist_free_all" };
        void **slots = (void **) &curl;
        void *h;

        if (curl.easy_init)
                return 0;
        h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                fprintf(stderr, "pocketcoder: https:// URLs need libcurl (libcurl4): %s\n", dlerror());
                return -EOPNOTSUPP;
        }
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                slots[i] = dlsym(h, names[i]);
                if (!slots[i]) {
                        fprintf(stderr, "pocketcoder: libcurl lacks %s\n", names[i]);
                        return -EOPNOTSUPP;
                }
        }
        curl.global_init(CURL_GLOBAL_DEFAULT);
        return 0;
}

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

int cli_curl_request(const cli_global *g, const char *method, const char *path, json_t *body, long *ret_status,
                     json_t **ret_json)
{
        _cleanup_free_ char *url = NULL, *auth = NULL, *payload = NULL, *resp_data = NULL;
        struct curl_slist *headers = NULL;
        buffer resp = {};
        CURLcode cc;
        CURL *c;
        long status = 0;
        int r;

        r = curl_load();
        if (r < 0)
                return r;
        url = strjoin(g->url, path);
        if (g->token)
                auth = strjoin("Authorization: Bearer ", g->token);
        if (body)
                payload = json_dumps(body, JSON_COMPACT);
        c = curl.easy_init();
        if (!url || (g->token && !auth) || (body && !payload) || !c) {
                if (c)
                        curl.easy_cleanup(c);
                return -ENOMEM;
        }
        curl.easy_setopt(c, CURLOPT_URL, url);
        curl.easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl.easy_setopt(c, CURLOPT_WRITEDATA, &resp);
        curl.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
        if (auth)
                headers = curl.slist_append(headers, auth);
        if (payload) {
                headers = curl.slist_append(headers, "Content-Type: application/json");
                curl.easy_setopt(c, CURLOPT_POSTFIELDS, payload);
        }
        curl.easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        cc = curl.easy_perform(c);
        resp_data = resp.data;
        curl.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl.easy_cleanup(c);
        curl.slist_free_all(headers);
        if (cc != CURLE_OK) {
                fprintf(stderr, "pocketcoder: cannot reach pocketcoderd at %s: %s\n", g->url, curl.easy_strerror(cc));
                return -ECONNREFUSED;
        }
        *ret_status = status;
        return cli_parse_body(status, resp.data, resp.len, ret_json);
}
