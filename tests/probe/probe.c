/* SPDX-License-Identifier: MIT */
/* In-sandbox probe: a static binary copied into a sandbox's workspace and run inside it (as the agent,
 * or as sandbox root with --root). It tries what the sandbox must forbid and prints one TAP line per
 * property. Standalone on purpose (no project headers): it must run in any sandbox rootfs.
 *
 * usage: pc-probe [--root] NAME UID_BASE HOST_PID ABSTRACT_SOCKET HOST_SECRET_PATH
 *        pc-probe --sockets      (only the socket families and capability sets: runs in any network mode) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Sandbox root's bounding set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID NET_BIND_SERVICE. The
 * agent's is empty. */
#define ROOT_CAPBND      0x00000000000004fbULL
#define EXPECTED_CAPBND  (as_root ? ROOT_CAPBND : 0ULL)

static int n_tests, n_failed;
static bool as_root;

__attribute__((format(printf, 2, 3))) static void result(bool ok, const char *fmt, ...)
{
        va_list ap;

        n_tests++;
        if (!ok)
                n_failed++;
        printf("%s %d - ", ok ? "ok" : "not ok", n_tests);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

/* Expects a syscall-like expression to fail (-1) with errno `want`. */
#define EXPECT_ERRNO(want, expr, what)                                                                    \
        do {                                                                                              \
                errno = 0;                                                                                \
                long _r_ = (long) (expr);                                                                 \
                int _e_ = errno;                                                                          \
                result(_r_ < 0 && _e_ == (want), "%s fails with %s (got %ld, %s)", what, strerrorname_np(want), \
                       _r_, _r_ < 0 ? strerrorname_np(_e_) : "success");                                  \
        } while (0)

static char *read_file(const char *path, char *buf, size_t size)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return NULL;
        n = read(fd, buf, size - 1);
        close(fd);
        if (n < 0)
                return NULL;
        buf[n] = 0;
        return buf;
}

static bool status_field(const char *key, char *out, size_t outsz)
{
        char buf[8192], *p;
        size_t k = strlen(key);

        if (!read_file("/proc/self/status", buf, sizeof(buf)))
                return false;
        for (p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
                if (strncmp(p, key, k) == 0 && p[k] == ':') {
                        p += k + 1;
                        p += strspn(p, " \t");
                        snprintf(out, outsz, "%.*s", (int) strcspn(p, "\n"), p);
                        return true;
                }
        return false;
}

static void check_identity(unsigned long uid_base)
{
        uid_t r, e, s;
        gid_t rg, eg, sg;
        char buf[4096];
        unsigned long in, out, cnt;
        bool host_root_mapped = false, base_ok = false;
        unsigned want = as_root ? 0 : 1000;

        getresuid(&r, &e, &s);
        getresgid(&rg, &eg, &sg);
        result(r == want && e == want && s == want, "uids are %u (got %u/%u/%u)", want, r, e, s);
        result(rg == want && eg == want && sg == want, "gids are %u (got %u/%u/%u)", want, rg, eg, sg);
        result(getgroups(0, NULL) == 0, "no supplementary groups");

        if (read_file("/proc/self/uid_map", buf, sizeof(buf))) {
                for (char *p = buf; *p;) {
                        if (sscanf(p, "%lu %lu %lu", &in, &out, &cnt) == 3) {
                                if (out == 0 || (out <= 0 && 0 < out + cnt))
                                        host_root_mapped = true;
                                if (in == 0 && out == uid_base)
                                        base_ok = true;
                        }
                        p = strchr(p, '\n');
                        if (!p)
                                break;
                        p++;
                }
        }
        result(!host_root_mapped && base_ok, "uid_map maps 0 to %lu and never host root", uid_base);
}

static void check_caps(void)
{
        static const char *const zero[] = { "CapInh", "CapPrm", "CapEff", "CapAmb" };
        char v[64];

        for (size_t i = 0; i < 4; i++) {
                bool ok = status_field(zero[i], v, sizeof(v));
                unsigned long long x = ok ? strtoull(v, NULL, 16) : ~0ULL;

                if (as_root && strcmp(zero[i], "CapInh") != 0 && strcmp(zero[i], "CapAmb") != 0)
                        result(x == EXPECTED_CAPBND, "%s is the minimal set (got %s)", zero[i], v);
                else
                        result(x == 0, "%s is zero (got %s)", zero[i], v);
        }
        result(status_field("CapBnd", v, sizeof(v)) && strtoull(v, NULL, 16) == EXPECTED_CAPBND,
               "CapBnd is the minimal set %llx (got %s)", EXPECTED_CAPBND, v);
        result(status_field("NoNewPrivs", v, sizeof(v)) && strcmp(v, "1") == 0, "NoNewPrivs is 1 (got %s)", v);
        result(status_field("Seccomp", v, sizeof(v)) && strcmp(v, "2") == 0, "Seccomp is 2 (filter) (got %s)",
               v);
}

static void check_files(const char *secret)
{
        static const char *const absent[] = { "/etc/shadow",   "/etc/gshadow", "/root",          "/home",
                                               "/var",          "/var/lib/pocketcoder",
                                               "/etc/ssh",      "/etc/ssl/private", "/boot",     "/sys",
                                               "/etc/pocketcoder", "/mnt", "/media", "/srv", "/opt" };
        struct stat st;
        char buf[256];

        for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
                EXPECT_ERRNO(ENOENT, access(absent[i], F_OK), absent[i]);
        EXPECT_ERRNO(ENOENT, access(secret, F_OK), "host /tmp file");
        /* /run/pocketcoder holds at most the agent's API socket, never the host's runtime directory (daemon
         * socket, pid file). */
        {
                DIR *d = opendir("/run/pocketcoder");
                struct dirent *de;
                bool only_api = d != NULL;

                while (d && (de = readdir(d)))
                        only_api = only_api && (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
                                                strcmp(de->d_name, "api.sock") == 0);
                if (d)
                        closedir(d);
                /* Without an agent socket it is the mount point in /run's tmpfs (sandbox root's); with one,
                 * the daemon's directory, owned by host root and so unmapped (65534) inside. */
                result(only_api && stat("/run/pocketcoder", &st) == 0 && (st.st_uid == 0 || st.st_uid == 65534) &&
                               (st.st_mode & 07777) == 0755,
                       "/run/pocketcoder is not the agent's (0755) and holds at most api.sock");
        }

        EXPECT_ERRNO(EROFS, open("/usr/probe-write", O_WRONLY | O_CREAT | O_CLOEXEC, 0644), "create in /usr");
        EXPECT_ERRNO(EROFS, mkdir("/probe-dir", 0755), "mkdir in /");
        EXPECT_ERRNO(EROFS, open("/etc/passwd", O_WRONLY | O_CLOEXEC | O_TRUNC), "truncate /etc/passwd");
        EXPECT_ERRNO(EROFS, open("/etc/probe", O_WRONLY | O_CREAT | O_CLOEXEC, 0644), "create in /etc");

        int fd = open("/workspace/.probe-write", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        result(fd >= 0 && write(fd, "x", 1) == 1 && unlink("/workspace/.probe-write") == 0, "/workspace is writable");
        if (fd >= 0)
                close(fd);
        fd = open("/tmp/.probe-write", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        result(fd >= 0 && write(fd, "x", 1) == 1 && unlink("/tmp/.probe-write") == 0, "/tmp is writable");
        if (fd >= 0)
                close(fd);

        result(read_file("/etc/passwd", buf, sizeof(buf)) && strstr(buf, "agent:x:1000:1000:"),
               "/etc/passwd has the agent");
        result(stat("/etc/ssl/certs", &st) == 0 && S_ISDIR(st.st_mode), "CA certificates are present");
        result(lstat("/bin", &st) == 0, "/bin exists");
}

static void check_proc(void)
{
        static const char *const masked[] = { "/proc/kcore", "/proc/kallsyms", "/proc/sysrq-trigger",
                                              "/proc/timer_list", "/proc/sched_debug", "/proc/keys", "/proc/kmsg" };
        char buf[256], v[64];

        for (size_t i = 0; i < sizeof(masked) / sizeof(masked[0]); i++) {
                int fd = open(masked[i], O_RDONLY | O_CLOEXEC | O_NONBLOCK);
                ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;

                if (access(masked[i], F_OK) < 0 && errno == ENOENT) {
                        result(true, "%s does not exist", masked[i]);
                        continue;
                }
                result(n <= 0, "%s reads nothing (got %zd)", masked[i], n);
                if (fd >= 0)
                        close(fd);
        }
        /* O_TRUNC makes the kernel check the mount's read-only flag before file permissions, so these prove
         * the read-only binds themselves (sysctl permissions would refuse the agent anyway). */
        EXPECT_ERRNO(EROFS, open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_TRUNC | O_CLOEXEC),
                     "write /proc/sys/net/ipv4/ip_forward");
        EXPECT_ERRNO(EROFS, open("/proc/sys/kernel/core_pattern", O_WRONLY | O_TRUNC | O_CLOEXEC),
                     "write /proc/sys/kernel/core_pattern");
        EXPECT_ERRNO(EROFS, open("/proc/sys/vm/overcommit_memory", O_WRONLY | O_TRUNC | O_CLOEXEC),
                     "write /proc/sys/vm/overcommit_memory");
        {
                int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
                ssize_t n = fd >= 0 ? write(fd, "-1000", 5) : -1;
                int e = errno;
                result(n < 0, "lowering oom_score_adj refused (%s)", n < 0 ? strerrorname_np(e) : "written");
                if (fd >= 0)
                        close(fd);
        }
        result(read_file("/proc/1/comm", buf, sizeof(buf)) && strcmp(buf, "pc-init\n") == 0,
               "pid 1 is our init (comm %s)", buf);
        result(status_field("NSpid", v, sizeof(v)), "NSpid readable");
}

static void check_processes(pid_t host_pid)
{
        DIR *d = opendir("/proc");
        struct dirent *de;
        int n = 0;
        char path[64];

        while (d && (de = readdir(d)))
                if (de->d_name[0] >= '1' && de->d_name[0] <= '9')
                        n++;
        if (d)
                closedir(d);
        result(n > 0 && n < 16, "only the sandbox's processes are visible (%d)", n);
        snprintf(path, sizeof(path), "/proc/%d/comm", (int) host_pid);
        {
                char buf[64];
                char *c = read_file(path, buf, sizeof(buf));
                result(!c || !strstr(c, "test-isolate"), "host test process invisible");
        }
        {
                int r = kill(host_pid, SIGTERM);
                int e = errno;
                /* That pid number may exist inside (then it is one of ours, and we are not allowed to signal
                 * root's processes) or not at all. */
                result(r < 0 && (e == ESRCH || e == EPERM), "kill host pid %d refused (%s)", (int) host_pid,
                       r < 0 ? strerrorname_np(e) : "delivered");
        }
        if (!as_root)
                EXPECT_ERRNO(EPERM, kill(1, 0), "signal init");
        EXPECT_ERRNO(EPERM, ptrace(PTRACE_ATTACH, 1, NULL, NULL), "ptrace init");
}


/* Exit status of a child whose int 0x80 faulted in the kernel's entry instead of reaching seccomp. */
#define I386_NO_ENTRY 42

static void i386_fault(int sig, siginfo_t *si, void *ctx)
{
        _exit(si->si_code == SI_KERNEL ? I386_NO_ENTRY : 1);
}

static void check_syscalls(void)
{
        struct clone_args ca = { .flags = CLONE_NEWUSER, .exit_signal = SIGCHLD };
        int fd;

        EXPECT_ERRNO(EPERM, mount("none", "/tmp", "tmpfs", 0, NULL), "mount");
        EXPECT_ERRNO(EPERM, umount2("/proc", MNT_DETACH), "umount2");
        EXPECT_ERRNO(EPERM, syscall(SYS_pivot_root, "/tmp", "/tmp"), "pivot_root");
        EXPECT_ERRNO(EPERM, chroot("/tmp"), "chroot");
        EXPECT_ERRNO(EPERM, unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)");
        EXPECT_ERRNO(EPERM, unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)");
        EXPECT_ERRNO(EPERM, unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)");
        EXPECT_ERRNO(EPERM, syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0), "clone(CLONE_NEWUSER)");
        EXPECT_ERRNO(ENOSYS, syscall(SYS_clone3, &ca, sizeof(ca)), "clone3");
        fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        EXPECT_ERRNO(EPERM, setns(fd, 0), "setns");
        if (fd >= 0)
                close(fd);
        EXPECT_ERRNO(EPERM, syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0), "keyctl");
        EXPECT_ERRNO(EPERM, syscall(SYS_add_key, "user", "probe", "x", 1, -3), "add_key");
        EXPECT_ERRNO(EPERM, syscall(SYS_request_key, "user", "probe", NULL, 0), "request_key");
        EXPECT_ERRNO(EPERM, syscall(SYS_bpf, 0, NULL, 0), "bpf");
        EXPECT_ERRNO(EPERM, syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0), "perf_event_open");
        EXPECT_ERRNO(EPERM, syscall(SYS_io_uring_setup, 1, NULL), "io_uring_setup");
        EXPECT_ERRNO(EPERM, syscall(SYS_userfaultfd, 0), "userfaultfd");
        EXPECT_ERRNO(EPERM, syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0), "open_by_handle_at");
        EXPECT_ERRNO(EPERM, syscall(SYS_name_to_handle_at, AT_FDCWD, "/", NULL, NULL, 0), "name_to_handle_at");
        EXPECT_ERRNO(EPERM, syscall(SYS_kexec_load, 0, 0, NULL, 0), "kexec_load");
        EXPECT_ERRNO(EPERM, syscall(SYS_init_module, NULL, 0, ""), "init_module");
        EXPECT_ERRNO(EPERM, syscall(SYS_finit_module, -1, "", 0), "finit_module");
        EXPECT_ERRNO(EPERM, syscall(SYS_reboot, 0, 0, 0, NULL), "reboot");
        EXPECT_ERRNO(EPERM, syscall(SYS_swapon, "/tmp/x", 0), "swapon");
        EXPECT_ERRNO(EPERM, syscall(SYS_syslog, 3, NULL, 0), "syslog");
        EXPECT_ERRNO(EPERM, syscall(SYS_settimeofday, NULL, NULL), "settimeofday");
        EXPECT_ERRNO(EPERM, syscall(SYS_clock_settime, 0, NULL), "clock_settime");
        EXPECT_ERRNO(EPERM, syscall(SYS_fsopen, "tmpfs", 0), "fsopen");
        EXPECT_ERRNO(EPERM, syscall(SYS_open_tree, AT_FDCWD, "/", 1), "open_tree");
        EXPECT_ERRNO(EPERM, syscall(SYS_iopl, 3), "iopl");
        EXPECT_ERRNO(EPERM, personality(0x0400000 /* READ_IMPLIES_EXEC */), "personality(READ_IMPLIES_EXEC)");
        EXPECT_ERRNO(EPERM, personality(0x0040000 /* ADDR_NO_RANDOMIZE */), "personality(ADDR_NO_RANDOMIZE)");
        result(personality(0) >= 0, "personality(PER_LINUX) allowed");
        EXPECT_ERRNO(EPERM, mknod("/tmp/probe-null", S_IFCHR | 0666, makedev(1, 3)), "mknod char device");
        EXPECT_ERRNO(EPERM, mknod("/tmp/probe-blk", S_IFBLK | 0666, makedev(8, 0)), "mknod block device");
        result(mknod("/tmp/probe-fifo", S_IFIFO | 0600, 0) == 0 && unlink("/tmp/probe-fifo") == 0, "mkfifo allowed");
        EXPECT_ERRNO(EPERM, sethostname("x", 1), "sethostname");

        /* TIOCSTI on our own pty: the filter compares the low 32 bits, so also try with high garbage. */
        int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        result(m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0, "private devpts: openpt works");
        if (m >= 0) {
                int s = open(ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC);
                char c = 'x';
                EXPECT_ERRNO(EPERM, ioctl(s, TIOCSTI, &c), "ioctl(TIOCSTI)");
                EXPECT_ERRNO(EPERM, syscall(SYS_ioctl, s, 0xffffffff00000000UL | TIOCSTI, &c),
                             "ioctl(TIOCSTI | high bits)");
                EXPECT_ERRNO(EPERM, ioctl(s, TIOCLINUX, &c), "ioctl(TIOCLINUX)");
                if (s >= 0)
                        close(s);
                close(m);
        }

        /* Only the native ABI is in the filter: an x32 syscall (the x32 bit in the number, which seccomp
         * sees on every x86-64 kernel) must kill the process. */
        pid_t pid = fork();
        if (pid == 0) {
                syscall(0x40000000L /* __X32_SYSCALL_BIT */ | SYS_getpid);
                _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        result(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "x32 syscall kills with SIGSYS (status %#x)", st);

        /* So must a 32-bit syscall (int 0x80). Some kernels have no i386 entry at all (a guest kernel
         * of this project's test machine faults on int 0x80 outside any sandbox too): the CPU raises a
         * general protection fault, SIGSEGV from the kernel (SI_KERNEL), and no i386 syscall can run. */
        pid = fork();
        if (pid == 0) {
                struct sigaction sa = { .sa_sigaction = i386_fault, .sa_flags = SA_SIGINFO };
                long ret;
                sigaction(SIGSEGV, &sa, NULL);
                __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L /* i386 getpid */) : "memory");
                _exit(0);
        }
        st = 0;
        waitpid(pid, &st, 0);
        result((WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS) || (WIFEXITED(st) && WEXITSTATUS(st) == I386_NO_ENTRY),
               "i386 syscall kills with SIGSYS%s (status %#x)",
               WIFEXITED(st) && WEXITSTATUS(st) == I386_NO_ENTRY ? ", or the kernel has no i386 entry (int 0x80 faults)" : "",
               st);
}

/* Families a sandbox must not open, whatever its network mode: vsock is not scoped by network namespaces. */
static void check_socket_families(void)
{
        static const struct {
                int family, type, protocol;
                const char *what;
        } refused[] = {
                { 40 /* AF_VSOCK */, SOCK_STREAM, 0, "socket(AF_VSOCK)" },
                { 40 /* AF_VSOCK */, SOCK_DGRAM, 0, "socket(AF_VSOCK, SOCK_DGRAM)" },
                { AF_PACKET, SOCK_RAW, 0, "socket(AF_PACKET)" },
                { AF_KEY, SOCK_RAW, 2, "socket(AF_KEY)" },
                { 38 /* AF_ALG */, SOCK_SEQPACKET, 0, "socket(AF_ALG)" },
                { 31 /* AF_BLUETOOTH */, SOCK_RAW, 0, "socket(AF_BLUETOOTH)" },
                { 44 /* AF_XDP */, SOCK_RAW, 0, "socket(AF_XDP)" },
                { AF_APPLETALK, SOCK_DGRAM, 0, "socket(AF_APPLETALK) (a family below AF_NETLINK)" },
                { AF_NETLINK, SOCK_RAW, NETLINK_AUDIT, "socket(AF_NETLINK, NETLINK_AUDIT)" },
                { AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT, "socket(AF_NETLINK, NETLINK_KOBJECT_UEVENT)" },
                { AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG, "socket(AF_NETLINK, NETLINK_SOCK_DIAG)" },
                { AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER, "socket(AF_NETLINK, NETLINK_NETFILTER)" },
        };
        static const struct {
                int family, type, protocol;
                const char *what;
        } allowed[] = {
                { AF_UNIX, SOCK_STREAM, 0, "socket(AF_UNIX)" },
                { AF_INET, SOCK_STREAM, 0, "socket(AF_INET, SOCK_STREAM)" },
                { AF_INET, SOCK_DGRAM, 0, "socket(AF_INET, SOCK_DGRAM)" },
                { AF_INET6, SOCK_STREAM, 0, "socket(AF_INET6)" },
                { AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, "socket(AF_NETLINK, NETLINK_ROUTE)" },
        };
        int sv[2], fd;

        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
                EXPECT_ERRNO(EAFNOSUPPORT, socket(refused[i].family, refused[i].type | SOCK_CLOEXEC, refused[i].protocol),
                             refused[i].what);
        EXPECT_ERRNO(EAFNOSUPPORT, socketpair(40 /* AF_VSOCK */, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair(AF_VSOCK)");
        /* The kernel reads the family as an int: garbage in the upper half must not turn a refused family into
         * an allowed one, nor an allowed value into a bypass. */
        EXPECT_ERRNO(EAFNOSUPPORT, syscall(SYS_socket, 0xffffffff00000000UL | 40, SOCK_STREAM, 0),
                     "socket(AF_VSOCK | high bits)");
        for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
                fd = socket(allowed[i].family, allowed[i].type | SOCK_CLOEXEC, allowed[i].protocol);
                /* A kernel without IPv6 has no /proc/net/if_inet6 and refuses AF_INET6 itself. */
                if (fd < 0 && errno == EAFNOSUPPORT && allowed[i].family == AF_INET6 &&
                    access("/proc/net/if_inet6", F_OK) < 0) {
                        result(true, "%s: the kernel has no IPv6", allowed[i].what);
                        continue;
                }
                result(fd >= 0, "%s works (%s)", allowed[i].what, fd >= 0 ? "ok" : strerrorname_np(errno));
                if (fd >= 0)
                        close(fd);
        }
        result(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair(AF_UNIX) works");
        close(sv[0]);
        close(sv[1]);
}

static void check_env_fds_dev(void)
{
        extern char **environ;
        static const char *const allowed_env[] = { "PATH=", "HOME=", "USER=", "LANG=", "TERM=" };
        static const char *const allowed_dev[] = { ".",      "..",    "null",   "zero", "full",   "random", "urandom",
                                                   "tty",    "fd",    "stdin",  "stdout", "stderr", "ptmx",  "pts",
                                                   "shm" };
        int n = 0, bad = 0;
        DIR *d;
        struct dirent *de;

        for (char **e = environ; *e; e++, n++) {
                bool ok = false;
                for (size_t i = 0; i < 5; i++)
                        ok = ok || strncmp(*e, allowed_env[i], strlen(allowed_env[i])) == 0;
                if (!ok) {
                        printf("# unexpected env %s\n", *e);
                        bad++;
                }
        }
        result(n == 5 && bad == 0, "environment is exactly PATH HOME USER LANG TERM (%d vars)", n);
        result(getenv("HOME") && strcmp(getenv("HOME"), "/workspace") == 0, "HOME=/workspace");

        d = opendir("/proc/self/fd");
        n = 0;
        bad = 0;
        while (d && (de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                int fd = atoi(de->d_name);
                if (fd > 2 && fd != dirfd(d))
                        bad++;
                n++;
        }
        if (d)
                closedir(d);
        result(bad == 0, "no inherited fds beyond 0,1,2 (%d extra)", bad);

        d = opendir("/dev");
        bad = 0;
        while (d && (de = readdir(d))) {
                bool ok = false;
                for (size_t i = 0; i < sizeof(allowed_dev) / sizeof(allowed_dev[0]); i++)
                        ok = ok || strcmp(de->d_name, allowed_dev[i]) == 0;
                if (!ok) {
                        printf("# unexpected /dev/%s\n", de->d_name);
                        bad++;
                }
        }
        if (d)
                closedir(d);
        result(d && bad == 0, "/dev holds only the minimal nodes");
        EXPECT_ERRNO(ENOENT, access("/dev/sda", F_OK), "/dev/sda");
        EXPECT_ERRNO(ENOENT, access("/dev/mem", F_OK), "/dev/mem");
        {
                int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
                result(fd >= 0 && write(fd, "x", 1) == 1, "/dev/null works");
                if (fd >= 0)
                        close(fd);
        }
}

static void check_network(const char *name, const char *abstract)
{
        char buf[4096], host[128] = "";
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd, lines = 0;

        gethostname(host, sizeof(host));
        result(strcmp(host, name) == 0, "hostname is the sandbox name (%s)", host);

        if (read_file("/proc/net/dev", buf, sizeof(buf))) {
                for (char *p = strchr(buf, '\n'); p && (p = strchr(p + 1, '\n'));)
                        if (p[1])
                                lines++;
                result(lines == 1 && strstr(buf, " lo:"), "only lo in /proc/net/dev (%d interfaces)", lines);
        } else
                result(false, "read /proc/net/dev");

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "%s", abstract);
        EXPECT_ERRNO(ECONNREFUSED,
                     connect(fd, (struct sockaddr *) &sa, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 +
                                                                      strlen(abstract))),
                     "connect to the host's abstract socket");
        close(fd);
}

int main(int argc, char **argv)
{
        int a = 1;

        if (argc == 2 && strcmp(argv[1], "--sockets") == 0) {
                printf("TAP version 13\n");
                as_root = getuid() == 0;
                check_caps();
                check_socket_families();
                printf("1..%d\n", n_tests);
                return n_failed ? 1 : 0;
        }
        if (argc > 1 && strcmp(argv[1], "--root") == 0) {
                as_root = true;
                a++;
        }
        if (argc - a != 5) {
                fprintf(stderr, "usage: pc-probe [--root] NAME UID_BASE HOST_PID ABSTRACT_SOCKET HOST_SECRET_PATH\n");
                return 2;
        }
        printf("TAP version 13\n");
        check_identity(strtoul(argv[a + 1], NULL, 10));
        check_caps();
        check_files(argv[a + 4]);
        check_proc();
        check_processes((pid_t) atoi(argv[a + 2]));
        check_syscalls();
        check_socket_families();
        check_env_fds_dev();
        check_network(argv[a], argv[a + 3]);
        printf("1..%d\n", n_tests);
        return n_failed ? 1 : 0;
}
