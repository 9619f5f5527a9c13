/* SPDX-License-Identifier: MIT */
/* IPv4 prefix lists ("A.B.C.D/N, ..."), the syntax of the daemon's egress_allow. Apart from net.c so that
 * the config parser's fuzz target can compile it without libnl. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "common.h"
#include "isolate-internal.h"
#include "isolate.h"

/* One "A.B.C.D/N" (or "A.B.C.D", a /32) of N bytes, without host bits. */
static int prefix_check(const char *s, size_t n, const char **ret_why)
{
        char buf[INET_ADDRSTRLEN + 4];
        struct in_addr a;
        uint64_t len = 32;
        char *slash;

        if (n == 0 || n >= sizeof(buf)) {
                *ret_why = n == 0 ? "empty entry (expected A.B.C.D/N)" : "too long for an IPv4 prefix A.B.C.D/N";
                return -EINVAL;
        }
        memcpy(buf, s, n);
        buf[n] = 0;
        slash = strchr(buf, '/');
        if (slash)
                *slash = 0;
        if (inet_pton(AF_INET, buf, &a) != 1) {
                *ret_why = strchr(buf, ':') ? "IPv6 prefix (egress carries IPv4 only)" :
                                              "not an IPv4 prefix A.B.C.D/N";
                return -EINVAL;
        }
        if (slash && (parse_uint64(slash + 1, &len) < 0 || len > 32)) {
                *ret_why = "prefix length must be a number from 0 to 32";
                return -EINVAL;
        }
        if (len < 32 && (ntohl(a.s_addr) & ~(len == 0 ? 0U : ~0U << (32 - len))) != 0) {
                *ret_why = "host bits set after the prefix length (write the network address)";
                return -EINVAL;
        }
        return 0;
}

int prefix_list_foreach(const char *list, int (*fn)(const char *s, size_t n, void *userdata),
                               void *userdata, size_t *ret_offset)
{
        const char *p = list;

        for (;;) {
                size_t lead = strspn(p, " \t"), n = strcspn(p + lead, ",");
                int r;

                while (n > 0 && strchr(" \t", p[lead + n - 1]))
                        n--;
                r = fn(p + lead, n, userdata);
                if (r < 0) {
                        *ret_offset = (size_t) (p + lead - list);
                        return r;
                }
                p = strchr(p, ',');
                if (!p)
                        return 0;
                p++;
        }
}

static int prefix_check_cb(const char *s, size_t n, void *userdata)
{
        return prefix_check(s, n, userdata);
}

int isolate_net_prefix_list_check(const char *list, size_t *ret_offset, const char **ret_why)
{
        size_t off = 0;
        int r;

        if (isempty(list))
                return 0;
        r = prefix_list_foreach(list, prefix_check_cb, ret_why, &off);
        if (r < 0 && ret_offset)
                *ret_offset = off;
        return r;
}
