/* SPDX-License-Identifier: MIT */
/* Sandbox networking (libnl-route-3 for links, addresses and routes; nft(8) for NAT and filtering).
 *
 * Modes:
 *  - NONE: the sandbox's fresh netns is left as the kernel made it: only `lo`, and it stays DOWN. With
 *    no interface up there is no route at all, so every connect() fails at once with ENETUNREACH,
 *    127.0.0.1 included: there is nothing to reach and nothing that could be mistaken for the host's
 *    loopback. Programs that need a loopback (language servers, test suites) ask for LOOPBACK.
 *  - LOOPBACK: `lo` up; the sandbox can talk to itself only.
 *  - EGRESS: a veth pair, host side "pcID-NAME" (ID: the daemon's, see isolate_net_host_ifname()), sandbox
 *    side eth0. Each sandbox gets the /30 number cfg->index of cfg->subnet: .1 on the host side, .2 in the
 *    sandbox, default route via .1. The host forwards and masquerades the sandbox's traffic; the
 *    daemon's nftables table (inet, "pocketcoder_ID": see table_name()) makes the host itself
 *    unreachable from any sandbox veth: every packet that arrives on one and is addressed to the host
 *    (any of its addresses, so also loopback-bound services via route tricks, the daemon's TCP
 *    listener, sshd, a local resolver) is rejected in the input hook. Forwarding is allowed sandbox ->
 *    public internet and established/related back; sandbox <-> sandbox, IPv6 and spoofed source
 *    addresses are dropped, the LAN and other special ranges (egress_blocked_table: private,
 *    link-local with cloud metadata, CGNAT, multicast, ...) rejected unless cfg->egress_allow lists
 *    them; the host's resolvers stay reachable on port 53. Per-sandbox state is a few set elements,
 *    so teardown removes exactly one sandbox's entries; isolate_net_table_reset() replaces or removes
 *    the whole table.
 *
 * Host unix sockets (including abstract ones, which are per-netns) are out of reach in every mode:
 * the sandbox has its own netns and sees no host filesystem socket (mount namespace, sandbox core).
 *
 * Caveat: a packet must pass every base chain of the host. If the host's own firewall drops forwarded
 * traffic (policy drop in another forward chain, e.g. iptables FORWARD DROP), egress stays blocked
 * until the admin allows the "pc-*" / "pc_*" interfaces there; our "accept" cannot override it.
 *
 * Enabling EGRESS switches on net.ipv4.ip_forward host-wide (as every container runtime does); our
 * forward chain only accepts sandbox flows, other forwarded traffic is left to the host's rules. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>

#include "common.h"
#include "isolate-internal.h"
#include "isolate.h"

#define NFT_TABLE_DEFAULT "pocketcoder"
#define NFT_TABLE_MAX     (64 + 1 + ISOLATE_DAEMON_ID_LEN + 1)
#define SANDBOX_IFNAME    "eth0"

static void nl_socket_freep(struct nl_sock **p)
{
        if (*p)
                nl_socket_free(*p);
}
static void rtnl_link_putp(struct rtnl_link **p)
{
        if (*p)
                rtnl_link_put(*p);
}
static void rtnl_addr_putp(struct rtnl_addr **p)
{
        if (*p)
                rtnl_addr_put(*p);
}
static void rtnl_route_putp(struct rtnl_route **p)
{
        if (*p)
                rtnl_route_put(*p);
}
static void nl_addr_putp(struct nl_addr **p)
{
        if (*p)
                nl_addr_put(*p);
}

/* libnl speaks NLE_* codes; callers of this library speak errno. */
static int nl_errno(int nlerr)
{
        switch (abs(nlerr)) {
        case 0:
                return 0;
        case NLE_NOMEM:
                return -ENOMEM;
        case NLE_EXIST:
                return -EEXIST;
        case NLE_INVAL:
        case NLE_MSG_TOOSHORT:
                return -EINVAL;
        case NLE_PERM:
                return -EPERM;
        case NLE_BUSY:
                return -EBUSY;
        case NLE_NODEV:
                return -ENODEV;
        case NLE_OBJ_NOTFOUND:
                return -ENOENT;
        case NLE_AGAIN:
                return -EAGAIN;
        case NLE_OPNOTSUPP:
                return -EOPNOTSUPP;
        case NLE_NOADDR:
                return -EADDRNOTAVAIL;
        case NLE_RANGE:
                return -ERANGE;
        case NLE_AF_NOSUPPORT:
                return -EAFNOSUPPORT;
        case NLE_NOACCESS:
                return -EACCES;
        default:
                return -EIO;
        }
}

/* ---- addressing ---- */

typedef struct net_plan {
        char host_ifname[IFNAMSIZ];
        struct in_addr host, sandbox; /* .1 and .2 of the sandbox's /30 */
        char host_str[INET_ADDRSTRLEN], sandbox_str[INET_ADDRSTRLEN];
        char table[NFT_TABLE_MAX];
        const char *egress_allow; /* validated list of IPv4 prefixes, or NULL */
} net_plan;

static uint64_t fnv1a64(const char *s)
{
        uint64_t h = 0xcbf29ce484222325ULL;

        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
        return h;
}

static bool ifname_is_valid(const char *s)
{
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n >= IFNAMSIZ || streq(s, ".") || streq(s, ".."))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
                        return false;
        return true;
}

static bool table_name_is_valid(const char *s)
{
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
                        return false;
        return true;
}

/* "TABLE_ID": one table per daemon, so that a daemon can remove its own table on a clean stop (and replace
 * it at start) without touching another daemon's rules, and each daemon's egress_allow stays its own. */
static int table_name(const isolate_net_config *cfg, char ret[static NFT_TABLE_MAX])
{
        const char *t = cfg->nft_table ?: NFT_TABLE_DEFAULT;

        if (!table_name_is_valid(t) || (cfg->daemon_id && !isolate_daemon_id_is_valid(cfg->daemon_id)))
                return -EINVAL;
        if (cfg->daemon_id)
                snprintf(ret, NFT_TABLE_MAX, "%s_%s", t, cfg->daemon_id);
        else
                snprintf(ret, NFT_TABLE_MAX, "%s", t);
        return 0;
}

int isolate_net_host_ifname(const char *sandbox_name, const isolate_net_config *cfg, char ret[static 16])
{
        if (cfg && cfg->host_ifname) {
                if (!ifname_is_valid(cfg->host_ifname))
                        return -EINVAL;
                snprintf(ret, IFNAMSIZ, "%s", cfg->host_ifname);
                return 0;
        }
        if (!name_is_valid(sandbox_name))
                return -EINVAL;
        if (cfg && cfg->daemon_id) {
                /* "pcID-" + name when it fits; otherwise "pcID_" + the sandbox's index, unique among the
                 * daemon's sandboxes. The id keeps two daemons' interfaces apart. */
                if (!isolate_daemon_id_is_valid(cfg->daemon_id))
                        return -EINVAL;
                if (STRLEN("pc-") + ISOLATE_DAEMON_ID_LEN + strlen(sandbox_name) < IFNAMSIZ)
                        snprintf(ret, IFNAMSIZ, "pc%s-%s", cfg->daemon_id, sandbox_name);
                else if (cfg->index <= 0xffffff)
                        snprintf(ret, IFNAMSIZ, "pc%s_%" PRIx32, cfg->daemon_id, cfg->index);
                else
                        return -ERANGE;
                return 0;
        }
        /* "pc-" + name when it fits; otherwise "pc_" + 48 bits of a hash. '_' never occurs in sandbox
         * names, so a hashed name cannot collide with a short one. */
        if (STRLEN("pc-") + strlen(sandbox_name) < IFNAMSIZ)
                snprintf(ret, IFNAMSIZ, "pc-%s", sandbox_name);
        else
                snprintf(ret, IFNAMSIZ, "pc_%012" PRIx64,
                         (uint64_t)(fnv1a64(sandbox_name) & 0xffffffffffffULL));
        return 0;
}

static int net_plan_make(const char *sandbox_name, const isolate_net_config *cfg, net_plan *ret,
                         pc_error **reterr)
{
        net_plan p = {};
        char buf[INET_ADDRSTRLEN + 4], *slash;
        struct in_addr base;
        uint64_t prefix, size, offset;
        uint32_t mask, b;

        if (isolate_net_host_ifname(sandbox_name, cfg, p.host_ifname) < 0)
                return pc_error_setf(reterr, EINVAL, "invalid_network",
                                     "network: invalid interface name for \"%s\"", strna(sandbox_name));
        if (table_name(cfg, p.table) < 0)
                return pc_error_setf(reterr, EINVAL, "invalid_network",
                                     "network: invalid nftables table \"%s\" or daemon id \"%s\"",
                                     strna(cfg->nft_table), strna(cfg->daemon_id));
        if (cfg->egress_allow) {
                size_t off;
                const char *why;

                if (isolate_net_prefix_list_check(cfg->egress_allow, &off, &why) < 0)
                        return pc_error_setf(reterr, EINVAL, "invalid_network",
                                             "network: egress_allow \"%s\", at character %zu: %s",
                                             cfg->egress_allow, off + 1, why);
                p.egress_allow = cfg->egress_allow;
        }
        if (isempty(cfg->subnet) || strlen(cfg->subnet) >= sizeof(buf))
                return pc_error_setf(reterr, EINVAL, "invalid_network",
                                     "network: no subnet configured for egress");
        strcpy(buf, cfg->subnet);
        slash = strchr(buf, '/');
        if (slash)
                *slash = 0;
        if (!slash || inet_pton(AF_INET, buf, &base) != 1 || parse_uint64(slash + 1, &prefix) < 0 ||
            prefix > 30)
                return pc_error_setf(reterr, EINVAL, "invalid_network",
                                     "network: subnet \"%s\" is not an IPv4 prefix A.B.C.D/N with N <= 30",
                                     cfg->subnet);
        size = 1ULL << (32 - prefix);
        offset = (uint64_t)cfg->index * 4;
        if (offset + 4 > size)
                return pc_error_setf(reterr, ERANGE, "invalid_network",
                                     "network: sandbox index %" PRIu32
                                     " does not fit in subnet \"%s\" (%" PRIu64 " sandboxes of /30)",
                                     cfg->index, cfg->subnet, size / 4);
        mask = prefix == 0 ? 0 : ~0U << (32 - prefix);
        b = (ntohl(base.s_addr) & mask) + (uint32_t)offset;
        p.host.s_addr = htonl(b + 1);
        p.sandbox.s_addr = htonl(b + 2);
        inet_ntop(AF_INET, &p.host, p.host_str, sizeof(p.host_str));
        inet_ntop(AF_INET, &p.sandbox, p.sandbox_str, sizeof(p.sandbox_str));
        *ret = p;
        return 0;
}

/* ---- what egress may reach ---- */

/* Destinations an egress sandbox is refused by default (rejected with ICMP admin-prohibited in the forward
 * hook: the packet never leaves the host and the program fails at once instead of timing out). The
 * sandbox is meant to reach the public internet, not the network the host sits in. The daemon's
 * egress_allow opens ranges of this list again. IPv6 needs no list: no IPv6 is forwarded at all, so
 * ULA (fc00::/7), link-local (fe80::/10), multicast (ff00::/8), ::1, IPv4-mapped and NAT64 (64:ff9b::/96)
 * addresses are unreachable too. Left out on purpose: the documentation ranges (192.0.2.0/24,
 * 198.51.100.0/24, 203.0.113.0/24), never routed anywhere, so there is nothing behind them to protect. */
static const struct {
        const char *prefix;
        const char *why;
} egress_blocked_table[] = {
        { "0.0.0.0/8", "\"this network\": 0.0.0.0 reaches local services on some stacks" },
        { "10.0.0.0/8", "private (RFC 1918): the LAN, other sandboxes' subnet" },
        { "100.64.0.0/10", "carrier-grade NAT (RFC 6598): the provider's internal network" },
        { "127.0.0.0/8", "loopback, never valid on a wire" },
        { "169.254.0.0/16", "link-local: cloud metadata (169.254.169.254) hands out credentials" },
        { "172.16.0.0/12", "private (RFC 1918)" },
        { "192.0.0.0/24", "IETF protocol assignments (DS-Lite, NAT64 discovery)" },
        { "192.168.0.0/16", "private (RFC 1918): routers, printers, NAS" },
        { "198.18.0.0/15", "benchmarking (RFC 2544): lab networks" },
        { "224.0.0.0/4", "multicast: LAN discovery (mDNS, SSDP) and routing protocols" },
        { "240.0.0.0/4", "reserved, and the 255.255.255.255 broadcast" },
};

/* Nameservers for a sandbox's /etc/resolv.conf: the host's IPv4 nameservers that are not on loopback.
 * A loopback resolver (systemd-resolved's 127.0.0.53, a local dnsmasq) lives on the host, which the
 * sandbox cannot reach by design; with systemd-resolved the real upstream servers are listed in
 * /run/systemd/resolve/resolv.conf, which we read instead. A resolver on one of the host's other
 * addresses is unreachable too (input hook) and must be replaced by an upstream one by the admin.
 * Link-local resolvers are skipped (169.254/16 stays closed). A resolver on the LAN (a private address,
 * the common case behind a home router or in a VM) is opened for DNS only: port 53, TCP and UDP. */
#define NAMESERVERS_MAX 3
static int collect_nameservers(const char *path, struct in_addr ret[static NAMESERVERS_MAX], unsigned *n)
{
        _cleanup_free_ char *s = NULL;
        int r;

        r = read_full_file(path, 1 << 20, &s, NULL);
        if (r < 0)
                return r;
        for (char *line = s, *next; line && *line && *n < NAMESERVERS_MAX; line = next) {
                struct in_addr a;
                char *v;

                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                v = strstrip(line);
                if (!startswith(v, "nameserver") || !strchr(" \t", v[STRLEN("nameserver")]))
                        continue;
                v = strstrip(v + STRLEN("nameserver"));
                if (inet_pton(AF_INET, v, &a) != 1)
                        continue; /* IPv6: the sandbox has no IPv6 route */
                if ((ntohl(a.s_addr) >> 24) == 127 || a.s_addr == 0 || (ntohl(a.s_addr) >> 16) == 0xa9fe)
                        continue;
                ret[(*n)++] = a;
        }
        return 0;
}

static unsigned host_nameservers(struct in_addr ret[static NAMESERVERS_MAX])
{
        unsigned n = 0;

        (void) collect_nameservers("/etc/resolv.conf", ret, &n);
        if (n == 0)
                (void) collect_nameservers("/run/systemd/resolve/resolv.conf", ret, &n);
        return n;
}

/* ---- netlink plumbing ---- */

static int host_rtnl(struct nl_sock **ret)
{
        _cleanup_(nl_socket_freep) struct nl_sock *sk = nl_socket_alloc();
        int r;

        if (!sk)
                return -ENOMEM;
        r = nl_connect(sk, NETLINK_ROUTE);
        if (r < 0)
                return nl_errno(r);
        *ret = TAKE_PTR(sk);
        return 0;
}

/* A route netlink socket that lives in the netns `netns_fd`: a forked child enters the netns, opens and
 * binds the socket there and passes it back over SCM_RIGHTS. A socket stays in the netns it was created
 * in, so the daemon can configure the sandbox without any of its own threads ever switching netns. The
 * child only makes async-signal-safe calls, so this is safe in a threaded daemon. */
static int netns_rtnl(int netns_fd, struct nl_sock **ret)
{
        _cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
        _cleanup_close_ int a = -EBADF, b = -EBADF, fd = -EBADF;
        char cbuf[CMSG_SPACE(sizeof(int))] = {}, dummy;
        struct iovec iov = {.iov_base = &dummy, .iov_len = 1};
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
        struct cmsghdr *cm;
        int sp[2], status, r;
        ssize_t n;
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
                return -errno;
        a = sp[0];
        b = sp[1];
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
                int s;

                if (setns(netns_fd, CLONE_NEWNET) < 0)
                        _exit(errno);
                s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
                if (s < 0)
                        _exit(errno);
                /* Bind here so the kernel assigns the port id libnl will read back. */
                if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                        _exit(errno);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(cm), &s, sizeof(int));
                _exit(sendmsg(b, &mh, MSG_NOSIGNAL) == 1 ? 0 : errno);
        }
        b = safe_close(b);
        n = recvmsg(a, &mh, MSG_CMSG_CLOEXEC);
        r = n < 0 ? -errno : 0;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
                return -WEXITSTATUS(status);
        if (r < 0)
                return r;
        cm = CMSG_FIRSTHDR(&mh);
        if (n != 1 || !cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(sizeof(int)))
                return -EPROTO;
        memcpy(&fd, CMSG_DATA(cm), sizeof(int));

        sk = nl_socket_alloc();
        if (!sk)
                return -ENOMEM;
        r = nl_socket_set_fd(sk, NETLINK_ROUTE, fd);
        if (r < 0)
                return nl_errno(r);
        TAKE_FD(fd); /* owned by sk now */
        *ret = TAKE_PTR(sk);
        return 0;
}

static int link_up(struct nl_sock *sk, const char *ifname, int *ret_ifindex)
{
        _cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL, *change = NULL;
        int r;

        r = rtnl_link_get_kernel(sk, 0, ifname, &link);
        if (r < 0)
                return nl_errno(r);
        change = rtnl_link_alloc();
        if (!change)
                return -ENOMEM;
        rtnl_link_set_flags(change, IFF_UP);
        r = rtnl_link_change(sk, link, change, 0);
        if (r < 0)
                return nl_errno(r);
        if (ret_ifindex)
                *ret_ifindex = rtnl_link_get_ifindex(link);
        return 0;
}

static int addr_add(struct nl_sock *sk, int ifindex, struct in_addr a, int prefixlen)
{
        _cleanup_(rtnl_addr_putp) struct rtnl_addr *addr = rtnl_addr_alloc();
        _cleanup_(nl_addr_putp) struct nl_addr *local = nl_addr_build(AF_INET, &a, sizeof(a));
        int r;

        if (!addr || !local)
                return -ENOMEM;
        nl_addr_set_prefixlen(local, prefixlen);
        rtnl_addr_set_ifindex(addr, ifindex);
        rtnl_addr_set_family(addr, AF_INET);
        r = rtnl_addr_set_local(addr, local);
        if (r < 0)
                return nl_errno(r);
        r = rtnl_addr_add(sk, addr, 0);
        return r == -NLE_EXIST ? 0 : nl_errno(r);
}

static int default_route_add(struct nl_sock *sk, int ifindex, struct in_addr gw)
{
        _cleanup_(rtnl_route_putp) struct rtnl_route *route = rtnl_route_alloc();
        _cleanup_(nl_addr_putp) struct nl_addr *dst = NULL, *gwa = nl_addr_build(AF_INET, &gw, sizeof(gw));
        struct in_addr any = {};
        struct rtnl_nexthop *nh;
        int r;

        dst = nl_addr_build(AF_INET, &any, sizeof(any));
        if (!route || !dst || !gwa)
                return -ENOMEM;
        nl_addr_set_prefixlen(dst, 0);
        rtnl_route_set_family(route, AF_INET);
        rtnl_route_set_table(route, RT_TABLE_MAIN);
        rtnl_route_set_protocol(route, RTPROT_STATIC);
        rtnl_route_set_scope(route, RT_SCOPE_UNIVERSE);
        r = rtnl_route_set_dst(route, dst);
        if (r < 0)
                return nl_errno(r);
        nh = rtnl_route_nh_alloc();
        if (!nh)
                return -ENOMEM;
        rtnl_route_nh_set_ifindex(nh, ifindex);
        rtnl_route_nh_set_gateway(nh, gwa);
        rtnl_route_add_nexthop(route, nh); /* the route owns nh now */
        r = rtnl_route_add(sk, route, NLM_F_CREATE);
        return r == -NLE_EXIST ? 0 : nl_errno(r);
}

static int link_delete(struct nl_sock *sk, const char *ifname)
{
        _cleanup_(rtnl_link_putp) struct rtnl_link *link = rtnl_link_alloc();
        int r;

        if (!link)
                return -ENOMEM;
        rtnl_link_set_name(link, ifname);
        r = rtnl_link_delete(sk, link);
        if (r == -NLE_NODEV || r == -NLE_OBJ_NOTFOUND)
                return 0;
        return nl_errno(r);
}

static int veth_create(struct nl_sock *sk, const char *host_ifname, int netns_fd)
{
        _cleanup_(rtnl_link_putp) struct rtnl_link *veth = rtnl_link_veth_alloc();
        struct rtnl_link *peer;
        int r;

        if (!veth)
                return -ENOMEM;
        rtnl_link_set_name(veth, host_ifname);
        /* The kernel creates the peer directly in the sandbox's netns, already named eth0: no rename,
         * and the name never appears on the host. */
        peer = rtnl_link_veth_get_peer(veth);
        rtnl_link_set_name(peer, SANDBOX_IFNAME);
        rtnl_link_set_ns_fd(peer, netns_fd);
        if (nl_has_capability(NL_CAPABILITY_ROUTE_LINK_VETH_GET_PEER_OWN_REFERENCE))
                rtnl_link_put(peer);
        r = rtnl_link_add(sk, veth, NLM_F_CREATE | NLM_F_EXCL);
        return nl_errno(r);
}

/* ---- host settings ---- */

static int enable_ip_forward(void)
{
        _cleanup_free_ char *v = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = read_full_file("/proc/sys/net/ipv4/ip_forward", 64, &v, NULL);
        if (r < 0)
                return r;
        if (streq(strstrip(v), "1"))
                return 0;
        fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return write_all(fd, "1\n", 2);
}

/* Runs `nft -f -` with the script on stdin (a sealed memfd: no pipe to fill, no SIGPIPE if nft dies
 * early). Returns nft's diagnostics in reterr. */
static int nft_run(const char *script, pc_error **reterr)
{
        static const char *const paths[] = { "/usr/sbin/nft", "/sbin/nft", "/usr/local/sbin/nft" };
        char *const argv[] = { (char *) "nft", (char *) "-f", (char *) "-", NULL };
        _cleanup_close_ int in = -EBADF;
        _cleanup_free_ char *out = NULL;
        int r;

        in = memfd_create("pc-nft-script", MFD_CLOEXEC);
        if (in < 0)
                return -errno;
        r = write_all(in, script, strlen(script));
        if (r < 0)
                return r;
        if (lseek(in, 0, SEEK_SET) < 0)
                return -errno;
        r = isolate_run_tool(paths, ELEMENTSOF(paths), argv, in, true, 64 * 1024, &out);
        if (r == -ENOENT)
                return pc_error_setf(reterr, ENOENT, "nft_missing",
                                     "network: nft(8) not found (install nftables for egress networking)");
        if (r < 0)
                return pc_error_setf(reterr, -r, "nft_failed", "network: cannot run nft: %s", strerror(-r));
        if (r != 0)
                return pc_error_setf(reterr, EIO, "nft_failed", "network: nft rejected the ruleset: %s",
                                     isempty(strstrip(out)) ? "(no message)" : strstrip(out));
        return 0;
}

typedef struct allow_ctx {
        FILE *f;
        const char *table;
} allow_ctx;

static int allow_rule_cb(const char *s, size_t n, void *userdata)
{
        allow_ctx *c = userdata;

        fprintf(c->f, "add rule inet %s forward iifname @sandbox_ifs ip daddr %.*s accept\n", c->table, (int) n,
                s);
        return 0;
}

/* Where a sandbox's packets may go (see egress_blocked_table): its resolvers for DNS, then the admin's
 * egress_allow, then everything but the blocked ranges. */
static void nft_script_destinations(FILE *f, const net_plan *p)
{
        struct in_addr ns[NAMESERVERS_MAX];
        unsigned n = host_nameservers(ns);
        char a[INET_ADDRSTRLEN];
        size_t off;

        if (n > 0) {
                fprintf(f, "add rule inet %s forward iifname @sandbox_ifs ip daddr { ", p->table);
                for (unsigned i = 0; i < n; i++)
                        fprintf(f, "%s%s", i > 0 ? ", " : "", inet_ntop(AF_INET, &ns[i], a, sizeof(a)));
                fputs(" } meta l4proto { tcp, udp } th dport 53 accept\n", f);
        }
        /* One rule per entry: an anonymous set would refuse overlapping entries. */
        if (!isempty(p->egress_allow))
                (void) prefix_list_foreach(p->egress_allow, allow_rule_cb, &(allow_ctx){ f, p->table }, &off);
        fprintf(f, "add rule inet %s forward iifname @sandbox_ifs ip daddr { ", p->table);
        for (size_t i = 0; i < ELEMENTSOF(egress_blocked_table); i++)
                fprintf(f, "%s%s", i > 0 ? ", " : "", egress_blocked_table[i].prefix);
        fputs(" } reject with icmpx type admin-prohibited\n", f);
}

/* The table is (re)declared on every setup: "add" of an existing table, set or chain is a no-op and
 * "flush chain" + rules replaces the rules atomically (nft -f is one transaction), so an upgraded
 * daemon fixes its rules and concurrent sandboxes keep their set elements. */
static void nft_script_setup(FILE *f, const net_plan *p)
{
        const char *t = p->table;

        fprintf(f,
                "add table inet %1$s\n"
                "add set inet %1$s sandbox_ifs { type ifname; }\n"
                "add set inet %1$s sandbox_srcs { type ifname . ipv4_addr; }\n"
                "add set inet %1$s sandbox_addrs { type ipv4_addr; }\n"
                /* Before the usual filter priority: decide about sandbox packets first. */
                "add chain inet %1$s input { type filter hook input priority filter - 10; policy accept; }\n"
                "add chain inet %1$s forward { type filter hook forward priority filter - 10; policy "
                "accept; }\n"
                "add chain inet %1$s postrouting { type nat hook postrouting priority srcnat; policy "
                "accept; }\n"
                "flush chain inet %1$s input\n"
                "flush chain inet %1$s forward\n"
                "flush chain inet %1$s postrouting\n"
                /* The host itself is off limits, on every address and port; reject so tools fail fast. */
                "add rule inet %1$s input iifname @sandbox_ifs reject with icmpx type admin-prohibited\n"
                /* Sandboxes cannot reach each other. */
                "add rule inet %1$s forward iifname @sandbox_ifs oifname @sandbox_ifs drop\n"
                /* Sandboxes get no IPv6 address; don't forward any. */
                "add rule inet %1$s forward iifname @sandbox_ifs meta nfproto ipv6 drop\n"
                /* Sandbox root owns its netns and could change eth0's address: only the assigned one
                 * leaves. */
                "add rule inet %1$s forward iifname @sandbox_ifs iifname . ip saddr != @sandbox_srcs drop\n",
                t);
        nft_script_destinations(f, p);
        fprintf(f,
                "add rule inet %1$s forward iifname @sandbox_ifs accept\n"
                "add rule inet %1$s forward oifname @sandbox_ifs ct state established,related accept\n"
                "add rule inet %1$s forward oifname @sandbox_ifs drop\n"
                "add rule inet %1$s postrouting ip saddr @sandbox_addrs masquerade\n",
                t);
}

static void nft_script_elements(FILE *f, const net_plan *p, const char *verb)
{
        fprintf(f,
                "%1$s element inet %2$s sandbox_ifs { \"%3$s\" }\n"
                "%1$s element inet %2$s sandbox_srcs { \"%3$s\" . %4$s }\n"
                "%1$s element inet %2$s sandbox_addrs { %4$s }\n",
                verb, p->table, p->host_ifname, p->sandbox_str);
}

static int nft_apply(const net_plan *p, bool add, pc_error **reterr)
{
        _cleanup_free_ char *script = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&script, &size);
        if (!f)
                return -ENOMEM;
        if (add)
                nft_script_setup(f, p);
        else
                /* Teardown must work whether or not setup ever ran: declare the sets, then add and
                 * delete our elements in one transaction (deleting a missing element would fail). */
                fprintf(f,
                        "add table inet %1$s\n"
                        "add set inet %1$s sandbox_ifs { type ifname; }\n"
                        "add set inet %1$s sandbox_srcs { type ifname . ipv4_addr; }\n"
                        "add set inet %1$s sandbox_addrs { type ipv4_addr; }\n",
                        p->table);
        nft_script_elements(f, p, "add");
        if (!add)
                nft_script_elements(f, p, "delete");
        if (fclose(f) != 0)
                return -ENOMEM;
        return nft_run(script, reterr);
}

/* ---- public ---- */

int isolate_net_table_reset(const isolate_net_config *cfg, const isolate_net_sandbox *running, size_t n,
                            pc_error **reterr)
{
        _cleanup_free_ char *script = NULL;
        char table[NFT_TABLE_MAX];
        size_t size = 0;
        FILE *f;
        int r = 0;

        if (!cfg || table_name(cfg, table) < 0)
                return pc_error_setf(reterr, EINVAL, "invalid_network", "network: invalid nftables table \"%s\"",
                                     strna(cfg ? cfg->nft_table : NULL));
        f = open_memstream(&script, &size);
        if (!f)
                return -ENOMEM;
        /* One transaction: "add" makes the delete work when there is no table, and a rebuilt table
         * replaces the old one without a moment in which the running sandboxes' packets pass unfiltered. */
        fprintf(f, "add table inet %1$s\ndelete table inet %1$s\n", table);
        for (size_t i = 0; i < n && r >= 0; i++) {
                isolate_net_config c = *cfg;
                net_plan p;

                c.mode = ISOLATE_NET_EGRESS;
                c.index = running[i].index;
                r = net_plan_make(running[i].name, &c, &p, reterr);
                if (r < 0)
                        break;
                if (i == 0)
                        nft_script_setup(f, &p);
                nft_script_elements(f, &p, "add");
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        if (r < 0)
                return r;
        return nft_run(script, reterr);
}

static int setup_loopback(int netns_fd, pc_error **reterr)
{
        _cleanup_(nl_socket_freep) struct nl_sock *ns = NULL;
        int r;

        r = netns_rtnl(netns_fd, &ns);
        if (r < 0)
                return pc_error_setf(reterr, r, "network_failed",
                                     "network: cannot enter the sandbox netns: %s", strerror(-r));
        r = link_up(ns, "lo", NULL);
        if (r < 0)
                return pc_error_setf(reterr, r, "network_failed", "network: cannot bring up lo: %s",
                                     strerror(-r));
        return 0;
}

static int setup_egress(int netns_fd, const net_plan *p, pc_error **reterr)
{
        _cleanup_(nl_socket_freep) struct nl_sock *host = NULL, *ns = NULL;
        int host_ifindex, ifindex, r;

        /* Rules first (the set matches by name, so the link need not exist yet): the host is closed
         * before the interface that could reach it comes up. */
        r = nft_apply(p, true, reterr);
        if (r < 0)
                return r;
        r = host_rtnl(&host);
        if (r < 0)
                return pc_error_setf(reterr, r, "network_failed", "network: cannot open netlink: %s",
                                     strerror(-r));
        r = veth_create(host, p->host_ifname, netns_fd);
        if (r == -EEXIST) {
                /* A leftover of a sandbox that died with the daemon down: its name is ours. */
                log_debug("network: replacing stale interface \"%s\"", p->host_ifname);
                r = link_delete(host, p->host_ifname);
                if (r >= 0)
                        r = veth_create(host, p->host_ifname, netns_fd);
        }
        if (r < 0)
                return pc_error_setf(reterr, r, "network_failed", "network: cannot create veth \"%s\": %s",
                                     p->host_ifname, strerror(-r));

        r = link_up(host, p->host_ifname, &host_ifindex);
        if (r >= 0)
                r = addr_add(host, host_ifindex, p->host, 30);
        if (r < 0)
                return pc_error_setf(reterr, r, "network_failed", "network: cannot configure \"%s\": %s",
                                     p->host_ifname, strerror(-r));

        r = netns_rtnl(netns_fd, &ns);
        if (r < 0)
                return pc_error_setf(reterr, r, "network_failed",
                                     "network: cannot enter the sandbox netns: %s", strerror(-r));
        r = link_up(ns, "lo", NULL);
        if (r >= 0)
                r = link_up(ns, SANDBOX_IFNAME, &ifindex);
        if (r >= 0)
                r = addr_add(ns, ifindex, p->sandbox, 30);
        if (r >= 0)
                r = default_route_add(ns, ifindex, p->host);
        if (r < 0)
                return pc_error_setf(reterr, r, "network_failed",
                                     "network: cannot configure the sandbox side: %s", strerror(-r));

        r = enable_ip_forward();
        if (r < 0)
                return pc_error_setf(reterr, r, "network_failed",
                                     "network: cannot enable net.ipv4.ip_forward: %s", strerror(-r));
        return 0;
}

int isolate_net_setup(int netns_fd, const char *sandbox_name, const isolate_net_config *cfg,
                      pc_error **reterr)
{
        net_plan p;
        int r;

        if (netns_fd < 0 || !cfg)
                return pc_error_setf(reterr, EINVAL, "invalid_network",
                                     "network: no network namespace given");
        switch (cfg->mode) {
        case ISOLATE_NET_NONE:
                /* A fresh netns has lo, down: exactly what NONE means (see the top of this file). */
                return 0;
        case ISOLATE_NET_LOOPBACK:
                return setup_loopback(netns_fd, reterr);
        case ISOLATE_NET_EGRESS:
                r = net_plan_make(sandbox_name, cfg, &p, reterr);
                if (r < 0)
                        return r;
                r = setup_egress(netns_fd, &p, reterr);
                if (r < 0)
                        (void)isolate_net_teardown(sandbox_name, cfg);
                return r;
        }
        return pc_error_setf(reterr, EINVAL, "invalid_network", "network: unknown mode %d", (int)cfg->mode);
}

int isolate_net_teardown(const char *sandbox_name, const isolate_net_config *cfg)
{
        _cleanup_(nl_socket_freep) struct nl_sock *host = NULL;
        _cleanup_pc_error_ pc_error *err = NULL;
        net_plan p;
        int r, ret = 0;

        if (!cfg || cfg->mode != ISOLATE_NET_EGRESS)
                return 0; /* the netns dies with the sandbox's last process; nothing on the host */
        r = net_plan_make(sandbox_name, cfg, &p, NULL);
        if (r < 0)
                return r;
        /* Deleting the host end removes the pair (the sandbox end goes with it). */
        r = host_rtnl(&host);
        if (r >= 0)
                r = link_delete(host, p.host_ifname);
        if (r < 0)
                ret = r;
        r = nft_apply(&p, false, &err);
        if (r < 0) {
                log_debug("network: teardown of \"%s\": %s", p.host_ifname,
                          err ? err->message : strerror(-r));
                if (ret == 0)
                        ret = r;
        }
        return ret;
}

int isolate_net_resolv_conf(const isolate_net_config *cfg, char **ret)
{
        _cleanup_free_ char *buf = NULL;
        unsigned n = 0;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        if (!cfg || cfg->mode != ISOLATE_NET_EGRESS)
                fputs("# pocketcoder: this sandbox has no network\n", f);
        else {
                struct in_addr ns[NAMESERVERS_MAX];
                char a[INET_ADDRSTRLEN];

                fputs("# pocketcoder: the host's upstream nameservers (the host itself is unreachable)\n",
                      f);
                n = host_nameservers(ns);
                for (unsigned i = 0; i < n; i++)
                        fprintf(f, "nameserver %s\n", inet_ntop(AF_INET, &ns[i], a, sizeof(a)));
                if (n == 0)
                        fputs("# no usable (non-loopback IPv4) nameserver on the host\n", f);
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}
