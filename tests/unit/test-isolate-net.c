/* SPDX-License-Identifier: MIT */
/* isolate network modes, in network namespaces this test creates: NONE (lo down, nothing reachable),
 * LOOPBACK (lo up, only itself), EGRESS (veth + NAT to a "world" netns we also create; the host's own
 * addresses, its loopback and other sandboxes unreachable; spoofed sources dropped), what egress may reach
 * (a "LAN" netns of ours with private, link-local, CGNAT addresses: refused unless allowed; the resolver on
 * port 53 only) and teardown. Every address lives in a namespace this test makes: the world is
 * 198.51.100.0/24 (documentation, never routed, deliberately not in the blocked list: our "public internet")
 * and the LAN's addresses are routed to our LAN netns only for packets coming from our sandbox's veth
 * (policy routing), so even the host's own traffic to 169.254.169.254 is untouched. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "common.h"
#include "isolate.h"
#include "tap.h"

#define SUBNET     "10.231.0.0/24"
#define WORLD_HOST "198.51.100.1"
#define WORLD_ADDR "198.51.100.2"
#define LAN_HOST   "198.51.100.5"
#define LAN_GW     "198.51.100.6"
#define LAN_RT     "7364" /* routing table of the policy rule for our sandbox's packets */

static char table[64], world_ns[32], world_if[32], lan_ns[32], lan_if[32], host_addr[INET_ADDRSTRLEN];
static char saved_ip_forward[8];
static const char *unusable;
static bool world_ready;
static int host_listener = -EBADF, host_port;

static int run(const char *fmt, ...) _printf_(1, 2);
static int run(const char *fmt, ...)
{
        _cleanup_free_ char *cmd = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&cmd, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        r = system(cmd);
        return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

/* The host's first non-loopback IPv4 address: a host service bound there must stay unreachable. */
static void find_host_addr(void)
{
        struct ifaddrs *ifa = NULL;

        if (getifaddrs(&ifa) < 0)
                return;
        for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
                if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && !(i->ifa_flags & IFF_LOOPBACK) &&
                    !startswith(i->ifa_name, "pc") && !host_addr[0])
                        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, host_addr,
                                  sizeof(host_addr));
        freeifaddrs(ifa);
}

__attribute__((constructor)) static void setup(void)
{
        _cleanup_free_ char *fwd = NULL;
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t sl = sizeof(sa);

        snprintf(table, sizeof(table), "pctest_%d", (int)getpid());
        snprintf(world_ns, sizeof(world_ns), "pctw%d", (int)getpid());
        snprintf(world_if, sizeof(world_if), "pctw%d", (int)getpid());
        snprintf(lan_ns, sizeof(lan_ns), "pctl%d", (int)getpid());
        snprintf(lan_if, sizeof(lan_if), "pctl%d", (int)getpid());
        if (geteuid() != 0) {
                unusable = "needs root";
                return;
        }
        if (access("/usr/sbin/nft", X_OK) < 0) {
                unusable = "needs nft (nftables)";
                return;
        }
        if (read_full_file("/proc/sys/net/ipv4/ip_forward", 64, &fwd, NULL) >= 0)
                snprintf(saved_ip_forward, sizeof(saved_ip_forward), "%s", strstrip(fwd));
        find_host_addr();

        /* A host service on every address: the sandbox must not reach it on any of them. */
        host_listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (host_listener < 0 || bind(host_listener, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            listen(host_listener, 16) < 0 || getsockname(host_listener, (struct sockaddr *)&sa, &sl) < 0) {
                unusable = "cannot listen on the host";
                return;
        }
        host_port = ntohs(sa.sin_port);

        /* "The world": a netns behind its own veth, reached only through the host's forwarding + NAT. */
        world_ready = run("ip netns add %1$s && ip link add %2$s type veth peer name w0 netns %1$s && "
                          "ip addr add " WORLD_HOST "/30 dev %2$s && ip link set %2$s up && "
                          "ip -n %1$s addr add " WORLD_ADDR "/30 dev w0 && ip -n %1$s link set w0 up && "
                          "ip -n %1$s link set lo up && ip -n %1$s route add default via " WORLD_HOST,
                          world_ns, world_if) == 0;
        if (!world_ready)
                unusable = "cannot create the test's world netns";
}

__attribute__((destructor)) static void teardown(void)
{
        if (geteuid() != 0)
                return;
        (void)run("ip netns del %s 2>/dev/null; ip link del %s 2>/dev/null; nft delete table inet %s "
                  "2>/dev/null; ip netns del %s 2>/dev/null; ip link del %s 2>/dev/null; "
                  "ip rule del lookup " LAN_RT " 2>/dev/null; ip route flush table " LAN_RT " 2>/dev/null",
                  world_ns, world_if, table, lan_ns, lan_if);
        if (saved_ip_forward[0]) {
                int fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
                if (fd >= 0) {
                        if (write(fd, saved_ip_forward, strlen(saved_ip_forward)) < 0)
                                perror("restore ip_forward");
                        close(fd);
                }
        }
}

/* A fresh netns held by an fd only (no process needed). */
static int netns_new(void)
{
        _cleanup_close_ int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        int fd;

        if (self < 0 || unshare(CLONE_NEWNET) < 0)
                return -errno;
        fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (setns(self, CLONE_NEWNET) < 0)
                abort();
        return fd;
}

/* Runs fn in a child inside the netns; returns fn's small result (0 or an errno). */
static int in_netns(int nsfd, int (*fn)(void *), void *arg)
{
        int status;
        pid_t pid = fork();

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                if (setns(nsfd, CLONE_NEWNET) < 0)
                        _exit(255);
                _exit(fn(arg));
        }
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
                return -1;
        return WEXITSTATUS(status);
}

static int lo_state(void *arg)
{
        struct ifreq ifr = {};
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        snprintf(ifr.ifr_name, IFNAMSIZ, "lo");
        if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
                return 2;
        return (ifr.ifr_flags & IFF_UP) ? 1 : 0;
}

/* 0 when ifname exists, is up and carries `arg` as its IPv4 address; 2 when it does not exist. */
static int check_addr(const char *ifname, const char *want)
{
        struct ifreq ifr = {};
        char got[INET_ADDRSTRLEN];
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
        if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
                return 2;
        if (!(ifr.ifr_flags & IFF_UP))
                return 3;
        if (ioctl(s, SIOCGIFADDR, &ifr) < 0)
                return 4;
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr, got, sizeof(got));
        return streq(got, want) ? 0 : 1;
}

static int eth0_addr(void *arg)
{
        return check_addr("eth0", arg);
}

/* 0 when /proc/net/route (of the netns we are in) has a default route via `arg`. */
static int default_route(void *arg)
{
        _cleanup_free_ char *s = NULL;
        struct in_addr gw;
        char want[32];

        if (read_full_file("/proc/net/route", 1 << 16, &s, NULL) < 0 || inet_pton(AF_INET, arg, &gw) != 1)
                return 2;
        snprintf(want, sizeof(want), "\t00000000\t%08X\t", gw.s_addr);
        return strstr(s, want) ? 0 : 1;
}

typedef struct target {
        const char *addr;
        int port;
        const char *src; /* bind to this source first (spoofing test) */
        int timeout_ms;
} target;

static int tcp_connect(void *arg)
{
        const target *t = arg;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port)};
        struct pollfd p;
        socklen_t l = sizeof(int);
        int s, err = 0;

        s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s < 0)
                return errno;
        if (t->src) {
                struct sockaddr_in src = {.sin_family = AF_INET};
                inet_pton(AF_INET, t->src, &src.sin_addr);
                if (bind(s, (struct sockaddr *)&src, sizeof(src)) < 0)
                        return 250;
        }
        inet_pton(AF_INET, t->addr, &sa.sin_addr);
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) >= 0)
                return 0;
        if (errno != EINPROGRESS)
                return errno;
        p = (struct pollfd){.fd = s, .events = POLLOUT};
        if (poll(&p, 1, t->timeout_ms ?: 2000) == 0)
                return ETIMEDOUT;
        if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
                return errno;
        return err;
}

static int loopback_selftest(void *arg)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof(sa);
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        char addr[] = "127.0.0.1";
        target t = {.addr = addr};

        if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 1) < 0 ||
            getsockname(s, (struct sockaddr *)&sa, &sl) < 0)
                return 251;
        t.port = ntohs(sa.sin_port);
        return tcp_connect(&t);
}

static uint16_t icmp_checksum(const void *data, size_t n)
{
        const uint16_t *w = data;
        uint32_t sum = 0;

        for (; n > 1; n -= 2)
                sum += *w++;
        if (n)
                sum += *(const uint8_t *)w;
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return (uint16_t)~sum;
}

/* 0 when an echo reply comes back within a second. */
static int ping(void *arg)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        struct icmphdr h = {.type = ICMP_ECHO};
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + 1000000;
        int s = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);

        if (s < 0)
                return 252;
        inet_pton(AF_INET, arg, &sa.sin_addr);
        h.un.echo.id = htons((uint16_t)getpid());
        h.un.echo.sequence = htons(1);
        h.checksum = icmp_checksum(&h, sizeof(h));
        if (sendto(s, &h, sizeof(h), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return errno;
        for (;;) {
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                struct pollfd p = {.fd = s, .events = POLLIN};
                unsigned char buf[1500];
                ssize_t n;

                if (now >= deadline || poll(&p, 1, (int)((deadline - now) / 1000) + 1) <= 0)
                        return ETIMEDOUT;
                n = recv(s, buf, sizeof(buf), 0);
                if (n < 20 || n < (buf[0] & 0xf) * 4 + 8)
                        continue;
                const struct icmphdr *r = (const void *)(buf + (buf[0] & 0xf) * 4);
                if (r->type == ICMP_ECHOREPLY && r->un.echo.id == h.un.echo.id)
                        return 0;
                if (r->type == ICMP_DEST_UNREACH)
                        return EHOSTUNREACH;
        }
}

/* A TCP server in the netns `nsfd` (world or another sandbox): reports its port, accepts once within
 * `timeout_ms` and reports the peer address it saw ("" when nobody came). */
typedef struct server {
        pid_t pid;
        int port;
        int fd; /* read end: the peer address */
} server;

static int server_start_port(int nsfd, int want_port, server *ret)
{
        int p[2];
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)want_port)};
                socklen_t sl = sizeof(sa);
                char peer[INET_ADDRSTRLEN + 1] = "";
                int s, c, port;
                struct pollfd pf;

                if (setns(nsfd, CLONE_NEWNET) < 0)
                        _exit(1);
                s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 4) < 0 ||
                    getsockname(s, (struct sockaddr *)&sa, &sl) < 0)
                        _exit(2);
                port = ntohs(sa.sin_port);
                if (write(p[1], &port, sizeof(port)) != sizeof(port))
                        _exit(3);
                pf = (struct pollfd){.fd = s, .events = POLLIN};
                if (poll(&pf, 1, 4000) > 0 &&
                    (c = accept4(s, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC)) >= 0)
                        inet_ntop(AF_INET, &sa.sin_addr, peer, sizeof(peer));
                if (write(p[1], peer, sizeof(peer)) != sizeof(peer))
                        _exit(4);
                _exit(0);
        }
        close(p[1]);
        *ret = (server){.pid = pid, .fd = p[0]};
        if (read(p[0], &ret->port, sizeof(int)) != sizeof(int))
                return -EIO;
        return 0;
}

static int server_start(int nsfd, server *ret)
{
        return server_start_port(nsfd, 0, ret);
}

static void server_done(server *s, char peer[static INET_ADDRSTRLEN + 1])
{
        peer[0] = 0;
        if (read(s->fd, peer, INET_ADDRSTRLEN + 1) != INET_ADDRSTRLEN + 1)
                peer[0] = 0;
        (void)waitpid(s->pid, NULL, 0);
        close(s->fd);
}

static bool host_listener_untouched(void)
{
        int c = accept4(host_listener, NULL, NULL, SOCK_CLOEXEC);

        if (c >= 0) {
                close(c);
                return false;
        }
        return errno == EAGAIN;
}

static bool nft_set_mentions(const char *set, const char *what)
{
        _cleanup_free_ char *cmd = NULL;
        char buf[4096];
        size_t n;
        FILE *p;

        if (asprintf_safe(&cmd, "nft list set inet %s %s 2>/dev/null", table, set) < 0 ||
            !(p = popen(cmd, "re")))
                return true;
        n = fread(buf, 1, sizeof(buf) - 1, p);
        buf[n] = 0;
        pclose(p);
        return strstr(buf, what) != NULL;
}

TEST(none_mode_lo_down_nothing_reachable)
{
        isolate_net_config cfg = {.mode = ISOLATE_NET_NONE, .nft_table = table};
        _cleanup_close_ int ns = -EBADF;
        char lo[] = "127.0.0.1";
        target t = {.addr = lo, .port = host_port};

        if (unusable)
                SKIP(unusable);
        ns = netns_new();
        CHECK(ns >= 0);
        CHECK_INTEQ(isolate_net_setup(ns, "none", &cfg, NULL), 0);
        CHECK_INTEQ(in_netns(ns, lo_state, NULL), 0);
        CHECK_INTEQ(in_netns(ns, tcp_connect, &t), ENETUNREACH);
        t.addr = host_addr;
        if (host_addr[0])
                CHECK_INTEQ(in_netns(ns, tcp_connect, &t), ENETUNREACH);
        CHECK_INTEQ(in_netns(ns, eth0_addr, (void *)""), 2);
        CHECK(host_listener_untouched());
        CHECK_INTEQ(isolate_net_teardown("none", &cfg), 0);
}

TEST(loopback_mode_reaches_only_itself)
{
        isolate_net_config cfg = {.mode = ISOLATE_NET_LOOPBACK, .nft_table = table};
        _cleanup_close_ int ns = -EBADF;
        char lo[] = "127.0.0.1";
        target t = {.addr = lo, .port = host_port};

        if (unusable)
                SKIP(unusable);
        ns = netns_new();
        CHECK(ns >= 0);
        CHECK_INTEQ(isolate_net_setup(ns, "lo", &cfg, NULL), 0);
        CHECK_INTEQ(in_netns(ns, lo_state, NULL), 1);
        CHECK_INTEQ(in_netns(ns, loopback_selftest, NULL), 0);
        /* 127.0.0.1 is the sandbox's own: the host's listener on 0.0.0.0 is not there. */
        CHECK_INTEQ(in_netns(ns, tcp_connect, &t), ECONNREFUSED);
        t.addr = host_addr;
        if (host_addr[0]) /* a host without any non-loopback address has nothing to test here */
                CHECK_INTEQ(in_netns(ns, tcp_connect, &t), ENETUNREACH);
        CHECK_INTEQ(in_netns(ns, eth0_addr, (void *)""), 2);
        CHECK(host_listener_untouched());
        CHECK_INTEQ(isolate_net_teardown("lo", &cfg), 0);
}

static int spoofed_connect(void *arg)
{
        /* Sandbox root holds CAP_NET_ADMIN in its netns: it may add any address to eth0. */
        if (system("ip addr add 10.99.99.99/32 dev eth0") != 0)
                return 253;
        return tcp_connect(arg);
}

TEST(egress_mode_nat_out_host_closed)
{
        char name[32], other[32], ifname[16], peer[INET_ADDRSTRLEN + 1];
        isolate_net_config cfg = {
                .mode = ISOLATE_NET_EGRESS, .index = 1, .subnet = SUBNET, .nft_table = table};
        isolate_net_config cfg2 = {
                .mode = ISOLATE_NET_EGRESS, .index = 2, .subnet = SUBNET, .nft_table = table};
        _cleanup_pc_error_ pc_error *err = NULL;
        _cleanup_close_ int ns = -EBADF, ns2 = -EBADF, world = -EBADF;
        char world_addr[] = WORLD_ADDR, gw[] = "10.231.0.5", me[] = "10.231.0.6", lo[] = "127.0.0.1";
        char other_addr[] = "10.231.0.10", spoof[] = "10.99.99.99";
        _cleanup_free_ char *resolv = NULL, *world_path = NULL;
        target t;
        server srv;
        uint64_t t0;
        int r;

        if (unusable)
                SKIP(unusable);
        snprintf(name, sizeof(name), "t%d", (int)getpid());
        snprintf(other, sizeof(other), "u%d", (int)getpid());
        CHECK_INTEQ(isolate_net_host_ifname(name, &cfg, ifname), 0);
        CHECK(startswith(ifname, "pc-t"));

        ns = netns_new();
        ns2 = netns_new();
        CHECK(ns >= 0 && ns2 >= 0);
        t0 = now_usec(CLOCK_MONOTONIC);
        r = isolate_net_setup(ns, name, &cfg, &err);
        printf("# egress setup took %.1f ms\n", (now_usec(CLOCK_MONOTONIC) - t0) / 1000.0);
        CHECK_INTEQ(r, 0);
        if (r < 0) {
                printf("# %s\n", err ? err->message : "?");
                return;
        }
        CHECK_INTEQ(isolate_net_setup(ns2, other, &cfg2, NULL), 0);

        /* Host side .5, sandbox side .6 on eth0, default route via the host side, lo up. */
        CHECK_INTEQ(check_addr(ifname, gw), 0);
        CHECK_INTEQ(in_netns(ns, eth0_addr, me), 0);
        CHECK_INTEQ(in_netns(ns, default_route, gw), 0);
        CHECK_INTEQ(in_netns(ns, lo_state, NULL), 1);
        CHECK(nft_set_mentions("sandbox_ifs", ifname));
        CHECK(nft_set_mentions("sandbox_addrs", me));

        /* Out to the world through NAT: the world sees the host's address on its link, not ours. */
        CHECK(asprintf_safe(&world_path, "/run/netns/%s", world_ns) > 0);
        world = open(world_path, O_RDONLY | O_CLOEXEC);
        CHECK(world >= 0);
        CHECK_INTEQ(server_start(world, &srv), 0);
        t = (target){.addr = world_addr, .port = srv.port};
        CHECK_INTEQ(in_netns(ns, tcp_connect, &t), 0);
        server_done(&srv, peer);
        CHECK_STREQ(peer, WORLD_HOST);
        CHECK_INTEQ(in_netns(ns, ping, world_addr), 0);

        /* The host is closed: its veth address, its other addresses, ping; and 127.0.0.1 is our own. */
        t = (target){.addr = gw, .port = host_port};
        CHECK_INTEQ(in_netns(ns, tcp_connect, &t), EHOSTUNREACH);
        t.addr = host_addr;
        if (host_addr[0])
                CHECK_INTEQ(in_netns(ns, tcp_connect, &t), EHOSTUNREACH);
        t.addr = lo;
        CHECK_INTEQ(in_netns(ns, tcp_connect, &t), ECONNREFUSED);
        CHECK(in_netns(ns, ping, gw) != 0);
        CHECK(host_listener_untouched());

        /* Another sandbox is unreachable. */
        CHECK_INTEQ(server_start(ns2, &srv), 0);
        t = (target){.addr = other_addr, .port = srv.port, .timeout_ms = 1000};
        CHECK_INTEQ(in_netns(ns, tcp_connect, &t), ETIMEDOUT);
        (void)kill(srv.pid, SIGKILL);
        server_done(&srv, peer);
        CHECK_STREQ(peer, "");

        /* A forged source address does not leave the sandbox. The host routes the forged address back
         * to the sandbox, so without the anti-spoofing rule this connection would succeed. */
        CHECK_INTEQ(run("ip route add %s/32 dev %s", spoof, ifname), 0);
        CHECK_INTEQ(server_start(world, &srv), 0);
        t = (target){.addr = world_addr, .port = srv.port, .src = spoof, .timeout_ms = 1000};
        CHECK_INTEQ(in_netns(ns, spoofed_connect, &t), ETIMEDOUT);
        (void)kill(srv.pid, SIGKILL);
        server_done(&srv, peer);
        CHECK_STREQ(peer, "");

        CHECK_INTEQ(isolate_net_resolv_conf(&cfg, &resolv), 0);
        CHECK(resolv && !strstr(resolv, "nameserver 127.") && !strstr(resolv, "nameserver ::1"));
        printf("# resolv.conf: %s", resolv ? strchr(resolv, '\n') + 1 : "");

        /* Teardown removes the pair and exactly this sandbox's elements; it is idempotent. */
        t0 = now_usec(CLOCK_MONOTONIC);
        CHECK_INTEQ(isolate_net_teardown(name, &cfg), 0);
        printf("# egress teardown took %.1f ms\n", (now_usec(CLOCK_MONOTONIC) - t0) / 1000.0);
        CHECK_INTEQ(if_nametoindex(ifname), 0);
        CHECK_INTEQ(in_netns(ns, eth0_addr, me), 2);
        CHECK(!nft_set_mentions("sandbox_ifs", ifname));
        CHECK(!nft_set_mentions("sandbox_addrs", me));
        CHECK(!nft_set_mentions("sandbox_srcs", me));
        CHECK(nft_set_mentions("sandbox_addrs", "10.231.0.10")); /* the other sandbox stays */
        CHECK_INTEQ(isolate_net_teardown(name, &cfg), 0);
        CHECK_INTEQ(isolate_net_teardown(other, &cfg2), 0);
        CHECK(!nft_set_mentions("sandbox_addrs", "10.231.0.10"));
        {
                char ifname2[16];
                CHECK_INTEQ(isolate_net_host_ifname(other, &cfg2, ifname2), 0);
                CHECK_INTEQ(if_nametoindex(ifname2), 0);
        }
}

/* A TCP server in the LAN netns: the `n` refused addresses must not reach it (EHOSTUNREACH from our reject
 * rule; ETIMEDOUT once the kernel's ICMP error rate limit, a burst of 6, has been used up: the packet is
 * refused all the same, the server never sees it), `open` must be reached. */
static void lan_check(int ns, int lan, const char *const *refused, size_t n, const char *open)
{
        char peer[INET_ADDRSTRLEN + 1];
        server srv;
        target t;

        CHECK_INTEQ(server_start(lan, &srv), 0);
        for (size_t i = 0; i < n; i++) {
                t = (target){.addr = refused[i], .port = srv.port, .timeout_ms = 1000};
                int r = in_netns(ns, tcp_connect, &t);

                printf("# %s: %s\n", refused[i], strerror(r));
                CHECK(r == EHOSTUNREACH || r == ETIMEDOUT);
        }
        if (open) {
                t = (target){.addr = open, .port = srv.port, .timeout_ms = 2000};
                printf("# %s (open)\n", open);
                CHECK_INTEQ(in_netns(ns, tcp_connect, &t), 0);
        } else
                (void)kill(srv.pid, SIGKILL);
        server_done(&srv, peer);
        CHECK_STREQ(peer, open ? LAN_HOST : ""); /* masqueraded to the host's address on that link */
}

/* The resolver's address from the sandbox's resolv.conf, if the host has a usable one. */
static bool first_nameserver(const char *resolv, char ret[static INET_ADDRSTRLEN])
{
        const char *p = strstr(resolv, "\nnameserver ");

        return p && sscanf(p + STRLEN("\nnameserver "), "%15[0-9.]", ret) == 1;
}

TEST(egress_lan_blocked_unless_allowed)
{
        static const char *const lan_addrs[] = {
                "10.77.0.1", "172.16.77.1", "192.168.77.1", "169.254.169.254", "100.64.77.1",
                "198.18.0.1", "192.0.0.77",
        };
        char name[32], third[32], ifname[16], resolver[INET_ADDRSTRLEN] = "";
        isolate_net_config cfg = {.mode = ISOLATE_NET_EGRESS, .index = 3, .subnet = SUBNET, .nft_table = table};
        isolate_net_config allow = {.mode = ISOLATE_NET_EGRESS, .index = 4, .subnet = SUBNET, .nft_table = table,
                                    .egress_allow = " 192.168.77.0/24,10.0.0.0/8 , 10.77.0.1"};
        _cleanup_pc_error_ pc_error *err = NULL;
        _cleanup_close_ int ns = -EBADF, ns2 = -EBADF, lan = -EBADF;
        _cleanup_free_ char *lan_path = NULL, *resolv = NULL, *addrs = NULL;
        size_t off = 0;
        const char *why = NULL;

        /* The list syntax, also what the daemon's config parser uses. */
        CHECK_INTEQ(isolate_net_prefix_list_check(allow.egress_allow, NULL, NULL), 0);
        CHECK_INTEQ(isolate_net_prefix_list_check("", NULL, NULL), 0);
        CHECK_INTEQ(isolate_net_prefix_list_check("10.0.0.0/8, 10.1.2.3/24", &off, &why), -EINVAL);
        CHECK_INTEQ(off, 12);
        CHECK(why && strstr(why, "host bits"));
        CHECK_INTEQ(isolate_net_prefix_list_check("10.0.0.0/33", &off, &why), -EINVAL);
        CHECK_INTEQ(isolate_net_prefix_list_check("fd00::/8", &off, &why), -EINVAL);
        CHECK(why && strstr(why, "IPv6"));
        CHECK_INTEQ(isolate_net_prefix_list_check("10.0.0.0/8,", &off, &why), -EINVAL);
        CHECK_INTEQ(off, 11);
        CHECK_INTEQ(isolate_net_prefix_list_check("10.0.0.0/8; rm -rf", &off, &why), -EINVAL);

        if (unusable)
                SKIP(unusable);
        CHECK_INTEQ(isolate_net_resolv_conf(&cfg, &resolv), 0);
        (void)first_nameserver(resolv ?: "", resolver);
        snprintf(name, sizeof(name), "l%d", (int)getpid());
        snprintf(third, sizeof(third), "m%d", (int)getpid());
        CHECK_INTEQ(isolate_net_host_ifname(name, &cfg, ifname), 0);
        ns = netns_new();
        ns2 = netns_new();
        CHECK(ns >= 0 && ns2 >= 0);
        CHECK_INTEQ(isolate_net_setup(ns, name, &cfg, &err), 0);
        if (err)
                printf("# %s\n", err->message);

        /* The LAN: one netns holding every address, reached through a veth of its own; only packets that
         * arrive from our sandbox's veth are routed there. The resolver too, when the host has one. */
        CHECK(asprintf_safe(&addrs, "%s%s", resolver[0] ? " " : "", resolver) >= 0);
        CHECK_INTEQ(run("ip netns add %1$s && ip link add %2$s type veth peer name w0 netns %1$s && "
                        "ip addr add " LAN_HOST "/30 dev %2$s && ip link set %2$s up && "
                        "ip -n %1$s addr add " LAN_GW "/30 dev w0 && ip -n %1$s link set w0 up && "
                        "ip -n %1$s link set lo up && ip -n %1$s route add default via " LAN_HOST " && "
                        "for a in 10.77.0.1 172.16.77.1 192.168.77.1 169.254.169.254 100.64.77.1 198.18.0.1 "
                        "192.0.0.77 %4$s; do ip -n %1$s addr add $a/32 dev lo && "
                        "ip route add $a/32 via " LAN_GW " table " LAN_RT " || exit 1; done && "
                        "ip rule add iif %3$s lookup " LAN_RT,
                        lan_ns, lan_if, ifname, addrs ?: ""),
                    0);
        CHECK(asprintf_safe(&lan_path, "/run/netns/%s", lan_ns) > 0);
        lan = open(lan_path, O_RDONLY | O_CLOEXEC);
        CHECK(lan >= 0);
        if (lan < 0)
                return;

        /* The LAN link address itself is "public" (not in the blocked list): the LAN netns works. */
        lan_check(ns, lan, lan_addrs, ELEMENTSOF(lan_addrs), LAN_GW);
        CHECK(in_netns(ns, ping, (void *)"10.77.0.1") != 0);
        CHECK(in_netns(ns, ping, (void *)"169.254.169.254") != 0);

        /* The resolver: port 53 only. */
        if (resolver[0]) {
                char peer[INET_ADDRSTRLEN + 1];
                const char *r1[] = {resolver};
                server srv;
                target t;

                printf("# resolver %s\n", resolver);
                CHECK_INTEQ(server_start_port(lan, 53, &srv), 0);
                t = (target){.addr = resolver, .port = 53, .timeout_ms = 2000};
                CHECK_INTEQ(in_netns(ns, tcp_connect, &t), 0);
                server_done(&srv, peer);
                CHECK_STREQ(peer, LAN_HOST);
                /* Other ports of the resolver stay closed. */
                CHECK_INTEQ(server_start(lan, &srv), 0);
                t = (target){.addr = r1[0], .port = srv.port, .timeout_ms = 1000};
                if (strncmp(resolver, "10.", 3) == 0 || strncmp(resolver, "192.168.", 8) == 0 ||
                    strncmp(resolver, "172.", 4) == 0) {
                        /* Refused: EHOSTUNREACH, or ETIMEDOUT past the ICMP rate limit (see lan_check). */
                        int r = in_netns(ns, tcp_connect, &t);
                        CHECK(r == EHOSTUNREACH || r == ETIMEDOUT);
                }
                (void)kill(srv.pid, SIGKILL);
                server_done(&srv, peer);
        } else
                printf("# the host has no non-loopback IPv4 resolver: DNS exception not exercised\n");

        /* egress_allow opens its ranges (rules are table-wide: another sandbox's setup installs them);
         * the rest of the list stays refused. */
        CHECK_INTEQ(isolate_net_setup(ns2, third, &allow, NULL), 0);
        lan_check(ns, lan, (const char *const[]){"169.254.169.254", "172.16.77.1", "100.64.77.1"}, 3,
                  "192.168.77.1");
        lan_check(ns, lan, NULL, 0, "10.77.0.1");

        /* Reset with no sandbox removes the table; with ours it is rebuilt with our elements and the
         * default rules again (no egress_allow in cfg). */
        isolate_net_sandbox keep = {.name = name, .index = cfg.index};
        CHECK_INTEQ(isolate_net_table_reset(&cfg, &keep, 1, NULL), 0);
        CHECK(nft_set_mentions("sandbox_ifs", ifname));
        CHECK(!nft_set_mentions("sandbox_addrs", "10.231.0.18")); /* the other sandbox's element is gone */
        lan_check(ns, lan, (const char *const[]){"192.168.77.1"}, 1, LAN_GW);

        CHECK_INTEQ(isolate_net_teardown(name, &cfg), 0);
        CHECK_INTEQ(isolate_net_teardown(third, &allow), 0);
        CHECK_INTEQ(isolate_net_table_reset(&cfg, NULL, 0, NULL), 0);
        CHECK_INTEQ(run("nft list table inet %s >/dev/null 2>&1", table), 1);
        CHECK_INTEQ(isolate_net_table_reset(&cfg, NULL, 0, NULL), 0); /* idempotent */
        (void)run("ip rule del iif %s lookup " LAN_RT "; ip route flush table " LAN_RT "; ip netns del %s; "
                  "ip link del %s 2>/dev/null",
                  ifname, lan_ns, lan_if);
}

TEST(egress_config_validation)
{
        isolate_net_config cfg = {
                .mode = ISOLATE_NET_EGRESS, .subnet = "10.231.0.0/29", .index = 2, .nft_table = table};
        _cleanup_pc_error_ pc_error *err = NULL, *err2 = NULL;
        char ifname[16];
        _cleanup_close_ int ns = -EBADF;
        _cleanup_free_ char *resolv = NULL;

        /* Long names are hashed into 15 characters, with a '_' no sandbox name can contain. */
        CHECK_INTEQ(isolate_net_host_ifname("a-very-long-sandbox-name", NULL, ifname), 0);
        CHECK_INTEQ(strlen(ifname), 15);
        CHECK(startswith(ifname, "pc_"));
        CHECK_INTEQ(isolate_net_host_ifname("short", NULL, ifname), 0);
        CHECK_STREQ(ifname, "pc-short");
        CHECK_INTEQ(isolate_net_host_ifname("Bad/Name", NULL, ifname), -EINVAL);
        /* With a daemon id: "pcID-NAME", or "pcID_INDEX" (unique within the daemon) when too long. */
        isolate_net_config idcfg = { .daemon_id = "0a1b2c", .index = 4095 };
        CHECK_INTEQ(isolate_net_host_ifname("short", &idcfg, ifname), 0);
        CHECK_STREQ(ifname, "pc0a1b2c-short");
        CHECK_INTEQ(isolate_net_host_ifname("a-very-long-sandbox-name", &idcfg, ifname), 0);
        CHECK_STREQ(ifname, "pc0a1b2c_fff");
        idcfg.daemon_id = "0A1B2C";
        CHECK_INTEQ(isolate_net_host_ifname("short", &idcfg, ifname), -EINVAL);
        CHECK_INTEQ(isolate_net_resolv_conf(&(isolate_net_config){.mode = ISOLATE_NET_NONE}, &resolv), 0);
        CHECK(resolv && !strstr(resolv, "nameserver"));

        if (unusable)
                SKIP(unusable);
        ns = netns_new();
        /* /29 holds two /30s: index 2 is out of range, nothing is created. */
        CHECK_INTEQ(isolate_net_setup(ns, "val", &cfg, &err), -ERANGE);
        CHECK(err && streq(err->code, "invalid_network"));
        if (err)
                printf("# %s\n", err->message);
        CHECK_INTEQ(if_nametoindex("pc-val"), 0);
        cfg.subnet = "10.231.0.0";
        CHECK_INTEQ(isolate_net_setup(ns, "val", &cfg, &err2), -EINVAL);
        cfg.subnet = "10.231.0.0/24";
        cfg.nft_table = "bad table";
        CHECK_INTEQ(isolate_net_setup(ns, "val", &cfg, NULL), -EINVAL);
        CHECK_INTEQ(if_nametoindex("pc-val"), 0);
}

TAP_MAIN()
