/* SPDX-License-Identifier: MIT */
/* The sandbox's syscall filter: compiled here, in the parent, with libseccomp and exported as classic
 * BPF into a sealed memfd. The child never runs libseccomp (no allocation between clone and exec):
 * it only hands the program to the kernel. */
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>

#include "common.h"
#include "isolate-internal.h"
#include "isolate.h"

static void seccomp_releasep(scmp_filter_ctx *ctx)
{
        if (*ctx)
                seccomp_release(*ctx);
}

/* Syscalls refused outright (EPERM). The list covers Docker's default profile for a container without
 * extra capabilities, plus the newer interfaces Docker also refuses (io_uring, the fd-based mount
 * API). Names the running architecture does not know are skipped: they cannot be called. */
static const struct {
        const char *name;
        const char *why;
} deny_table[] = {
        /* The filesystem view is fixed by the parent: no re-arranging it from inside. */
        { "mount", "mounting could hide our masks or expose host paths" },
        { "umount2", "unmounting would uncover masked /proc files" },
        { "umount", "old name of umount2 on some ABIs" },
        { "pivot_root", "changing the root is the parent's job" },
        { "chroot", "nested roots only help escapes, never agents" },
        { "fsopen", "new mount API: same power as mount" },
        { "fsconfig", "new mount API" },
        { "fsmount", "new mount API" },
        { "fspick", "new mount API: reconfigures existing mounts" },
        { "move_mount", "new mount API" },
        { "open_tree", "new mount API: clones mounts" },
        { "mount_setattr", "could clear read-only flags on our own mounts" },
        /* Namespaces: nested user namespaces are the largest source of kernel privilege bugs. */
        { "setns", "joining other namespaces (only the parent may)" },
        /* Kernel keyrings are not namespaced. */
        { "keyctl", "keyrings are global: cross-sandbox secrets" },
        { "add_key", "keyrings are global" },
        { "request_key", "keyrings are global and can call usermode helpers" },
        /* Kernel attack surface with a long CVE history, not needed by development tools. */
        { "bpf", "eBPF verifier and maps: large kernel attack surface" },
        { "perf_event_open", "leaks kernel addresses and has frequent CVEs" },
        { "userfaultfd", "turns kernel race windows into reliable exploits" },
        { "io_uring_setup", "io_uring bypasses seccomp for its operations and has many CVEs" },
        { "io_uring_enter", "io_uring" },
        { "io_uring_register", "io_uring" },
        { "fanotify_init", "filesystem-wide monitoring" },
        { "lookup_dcookie", "profiling interface, leaks kernel state" },
        /* Host control. */
        { "kexec_load", "loads a new kernel" },
        { "kexec_file_load", "loads a new kernel" },
        { "init_module", "loads kernel code" },
        { "finit_module", "loads kernel code" },
        { "delete_module", "unloads kernel code" },
        { "create_module", "obsolete module interface" },
        { "reboot", "reboots the host (or the pid namespace)" },
        { "swapon", "host memory configuration" },
        { "swapoff", "host memory configuration" },
        { "acct", "process accounting writes host files" },
        { "quotactl", "filesystem quotas are host configuration" },
        { "quotactl_fd", "filesystem quotas are host configuration" },
        { "syslog", "kernel log leaks addresses and host activity" },
        { "vhangup", "hangs up terminals" },
        { "sethostname", "the hostname is the sandbox name" },
        { "setdomainname", "set by the parent" },
        { "nfsservctl", "kernel NFS server control" },
        /* Clocks are not namespaced (except offsets in time namespaces). */
        { "settimeofday", "the host clock is global" },
        { "clock_settime", "the host clock is global" },
        { "clock_adjtime", "the host clock is global" },
        { "adjtimex", "the host clock is global" },
        { "stime", "the host clock is global" },
        /* File handles bypass path-based confinement: the "shocker" escape. */
        { "open_by_handle_at", "opens files by handle, outside the mount tree" },
        { "name_to_handle_at", "companion of open_by_handle_at" },
        /* Hardware and legacy. */
        { "iopl", "raw I/O port access" },
        { "ioperm", "raw I/O port access" },
        { "vm86", "legacy mode with past kernel bugs" },
        { "vm86old", "legacy mode with past kernel bugs" },
        { "uselib", "obsolete loader interface" },
        { "_sysctl", "obsolete sysctl interface" },
        { "sysfs", "obsolete filesystem-type query" },
        { "ustat", "obsolete" },
        /* NUMA placement of memory: Docker refuses without CAP_SYS_NICE. */
        { "mbind", "NUMA policy (CAP_SYS_NICE in Docker)" },
        { "set_mempolicy", "NUMA policy (CAP_SYS_NICE in Docker)" },
        { "get_mempolicy", "NUMA policy (CAP_SYS_NICE in Docker)" },
        { "move_pages", "moves other processes' memory" },
        { "migrate_pages", "moves other processes' memory" },
        /* ptrace, process_vm_* and pidfd_getfd stay allowed: the kernel (>= 4.8) re-checks seccomp after a
         * tracer changes a syscall, and all of them are limited to processes of the same uid inside the
         * sandbox (the agent cannot trace init or root-owned processes); debuggers need them. */
};

/* Namespace-creating flags refused in clone() and unshare(). */
static const struct {
        uint64_t flag;
        const char *why;
} ns_flag_table[] = {
        { CLONE_NEWUSER, "nested user namespaces give full capabilities over new namespaces" },
        { CLONE_NEWNS, "a new mount namespace would allow re-arranging mounts" },
        { CLONE_NEWPID, "nested pid namespaces hide processes from our init" },
        { CLONE_NEWNET, "new network namespaces are attack surface (netfilter, ...)" },
        { CLONE_NEWUTS, "hostname is fixed" },
        { CLONE_NEWIPC, "no need" },
        { CLONE_NEWCGROUP, "cgroup view is fixed" },
        { 0x00000080 /* CLONE_NEWTIME */, "time namespaces: clock offsets" },
};

/* ioctl commands refused (EPERM), compared on the low 32 bits because the kernel truncates the command
 * to unsigned int: a value with garbage in the upper half would otherwise slip through. */
static const struct {
        unsigned long cmd;
        const char *why;
} ioctl_table[] = {
        { TIOCSTI, "pushes input into a terminal another process reads: escapes to the attached person" },
        { TIOCLINUX, "virtual console control, can also inject input" },
};

/* personality() flags refused. Docker allows only a fixed list of values; libseccomp cannot express
 * "none of these values" (one comparison per argument), so we refuse every flag that changes memory layout
 * or semantics instead. The execution-domain byte (PER_LINUX32 etc.) stays allowed: the kernel ignores
 * it apart from uname. Side effect: the query value 0xffffffff has these bits set and is refused too, which
 * is stricter than Docker. */
static const struct {
        unsigned long flag;
        const char *why;
} personality_table[] = {
        { 0x0100000 /* MMAP_PAGE_ZERO */, "maps page 0: turns kernel NULL dereferences into exploits" },
        { 0x0400000 /* READ_IMPLIES_EXEC */, "makes every readable mapping executable" },
        { 0x0040000 /* ADDR_NO_RANDOMIZE */, "disables ASLR (Docker refuses it as well)" },
        { 0x0200000 /* ADDR_COMPAT_LAYOUT */, "legacy, predictable memory layout" },
        { 0x0800000 /* ADDR_LIMIT_32BIT */, "legacy address-space limit" },
        { 0x8000000 /* ADDR_LIMIT_3GB */, "legacy address-space limit" },
        { 0x1000000 /* SHORT_INODE */, "legacy semantics" },
        { 0x2000000 /* WHOLE_SECONDS */, "legacy semantics" },
        { 0x4000000 /* STICKY_TIMEOUTS */, "legacy semantics" },
        { 0x0080000 /* FDPIC_FUNCPTRS */, "FDPIC ABI, not ours" },
};

/* Socket address families a sandbox may create (socket() and socketpair()); every other family fails with
 * EAFNOSUPPORT, the errno of a kernel built without it, so programs take their "not available here" path
 * (Docker refuses AF_VSOCK with its profile's default EPERM; flatpak answers EAFNOSUPPORT as we do).
 * Families are small integers: values up to the largest allowed one are refused one by one, everything
 * above with a single comparison (the full 64-bit argument is compared, so garbage in the upper half of
 * an allowed family is refused too, never let through). */
static const struct {
        int family;
        const char *why;
} socket_family_table[] = {
        { AF_UNIX, "local IPC: tmux, language servers, the agent API socket" },
        { AF_INET, "the network of the sandbox's own namespace (egress mode), loopback" },
        { AF_INET6, "as AF_INET; egress forwards no IPv6, but programs open v6 sockets by default" },
        { AF_NETLINK, "only NETLINK_ROUTE (see below): ip addr/route, getifaddrs()" },
        /* Refused, among others: AF_VSOCK (not scoped by network namespaces: reaches the hypervisor and
         * host services), AF_PACKET (raw frames), AF_KEY and AF_ALG (kernel crypto with a CVE history),
         * AF_BLUETOOTH, AF_XDP, AF_TIPC, AF_RDS, AF_CAN. */
};
#define SOCKET_FAMILY_MAX AF_NETLINK

static int add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
                    const struct scmp_arg_cmp *cmps, pc_error **reterr)
{
        int nr = seccomp_syscall_resolve_name(name);
        int r;

        if (nr == __NR_SCMP_ERROR) {
                log_debug("seccomp: syscall %s unknown on this architecture, skipping", name);
                return 0;
        }
        r = seccomp_rule_add_array(ctx, action, nr, n, cmps);
        /* Pseudo-syscalls (negative numbers) on this ABI cannot be filtered exactly and do not exist. */
        if (r == -EDOM)
                return 0;
        if (r < 0)
                return pc_error_setf(reterr, -r, "seccomp", "seccomp: cannot add rule for %s: %s", name,
                                     strerror(-r));
        return 0;
}

static bool socket_family_allowed(int family)
{
        for (size_t i = 0; i < ELEMENTSOF(socket_family_table); i++)
                if (socket_family_table[i].family == family)
                        return true;
        return false;
}

/* socket() and socketpair() take the family in argument 0. The i386/x32 socketcall() multiplexer needs no
 * rule: only the native ABI is in the filter, other ABIs kill the process (see isolate_seccomp_compile). */
static int add_socket_rules(scmp_filter_ctx ctx, pc_error **reterr)
{
        static const char *const calls[] = { "socket", "socketpair" };
        const uint32_t refuse = SCMP_ACT_ERRNO(EAFNOSUPPORT);
        int r;

        for (size_t i = 0; i < ELEMENTSOF(calls); i++) {
                struct scmp_arg_cmp above = SCMP_A0(SCMP_CMP_GT, SOCKET_FAMILY_MAX);

                r = add_rule(ctx, refuse, calls[i], 1, &above, reterr);
                if (r < 0)
                        return r;
                for (int f = 0; f <= SOCKET_FAMILY_MAX; f++) {
                        struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t) f);

                        if (socket_family_allowed(f))
                                continue;
                        r = add_rule(ctx, refuse, calls[i], 1, &c, reterr);
                        if (r < 0)
                                return r;
                }
        }

        /* Netlink: NETLINK_ROUTE only (reading links, addresses and routes; changing them needs
         * CAP_NET_ADMIN, which nobody inside has). NETLINK_AUDIT, NETLINK_KOBJECT_UEVENT (host device
         * events), NETLINK_SOCK_DIAG, NETFILTER, ... are host-wide or attack surface. */
        struct scmp_arg_cmp nl[2] = { SCMP_A0(SCMP_CMP_EQ, AF_NETLINK), SCMP_A2(SCMP_CMP_NE, NETLINK_ROUTE) };
        return add_rule(ctx, refuse, "socket", 2, nl, reterr);
}

static int build_filter(scmp_filter_ctx ctx, pc_error **reterr)
{
        int r;

        for (size_t i = 0; i < ELEMENTSOF(deny_table); i++) {
                r = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), deny_table[i].name, 0, NULL, reterr);
                if (r < 0)
                        return r;
        }

        /* clone3() passes flags in a struct the filter cannot read: answer ENOSYS so glibc falls back to
         * clone(), whose flags we can check. */
        r = add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL, reterr);
        if (r < 0)
                return r;

        for (size_t i = 0; i < ELEMENTSOF(ns_flag_table); i++) {
                struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flag_table[i].flag, ns_flag_table[i].flag);

                r = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), "unshare", 1, &c, reterr);
                if (r < 0)
                        return r;
                /* clone's flags are argument 0 on every ABI we build for (x86_64, aarch64). */
                r = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), "clone", 1, &c, reterr);
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < ELEMENTSOF(ioctl_table); i++) {
                struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, ioctl_table[i].cmd);

                r = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), "ioctl", 1, &c, reterr);
                if (r < 0)
                        return r;
        }

        /* Device nodes: mknod of character or block devices is refused; FIFOs and sockets stay possible
         * (mkfifo is common in scripts). Both also need CAP_MKNOD, which nobody inside has. */
        static const mode_t dev_types[] = { S_IFCHR, S_IFBLK };
        for (size_t i = 0; i < ELEMENTSOF(dev_types); i++) {
                struct scmp_arg_cmp a1 = SCMP_A1(SCMP_CMP_MASKED_EQ, S_IFMT, dev_types[i]);
                struct scmp_arg_cmp a2 = SCMP_A2(SCMP_CMP_MASKED_EQ, S_IFMT, dev_types[i]);

                r = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), "mknod", 1, &a1, reterr);
                if (r < 0)
                        return r;
                r = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), "mknodat", 1, &a2, reterr);
                if (r < 0)
                        return r;
        }

        r = add_socket_rules(ctx, reterr);
        if (r < 0)
                return r;

        for (size_t i = 0; i < ELEMENTSOF(personality_table); i++) {
                struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, personality_table[i].flag,
                                                personality_table[i].flag);

                r = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), "personality", 1, &c, reterr);
                if (r < 0)
                        return r;
        }

        return 0;
}

int isolate_seccomp_compile(int *ret_memfd, pc_error **reterr)
{
        _cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        /* Default allow, then the deny-list. Only the native ABI is in the filter: a 32-bit (int 0x80) or
         * x32 syscall hits the bad-architecture action and kills the process. */
        ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                return pc_error_setf(reterr, ENOMEM, "seccomp", "seccomp: cannot create filter context");
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        if (r < 0)
                return pc_error_setf(reterr, -r, "seccomp", "seccomp: cannot set bad-architecture action: %s",
                                     strerror(-r));
        /* NO_NEW_PRIVS is set explicitly by the privilege sequence, before the filter is loaded. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
        if (r < 0)
                return pc_error_setf(reterr, -r, "seccomp", "seccomp: cannot clear NNP attribute: %s",
                                     strerror(-r));

        r = build_filter(ctx, reterr);
        if (r < 0)
                return r;

        fd = memfd_create("pocketcoder-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return pc_error_setf(reterr, errno, "seccomp", "seccomp: memfd_create: %m");
        r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return pc_error_setf(reterr, -r, "seccomp", "seccomp: cannot export BPF: %s", strerror(-r));
        /* Sealed: the program can be shared by every sandbox and nobody can change it afterwards. */
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return pc_error_setf(reterr, errno, "seccomp", "seccomp: cannot seal filter memfd: %m");

        *ret_memfd = TAKE_FD(fd);
        return 0;
}

int isolate_seccomp_read(int memfd, isolate_bpf *ret)
{
        _cleanup_free_ struct sock_filter *insns = NULL;
        struct stat st;
        ssize_t n;

        if (fstat(memfd, &st) < 0)
                return -errno;
        if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0 ||
            st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return -EBADMSG;
        insns = malloc(st.st_size);
        if (!insns)
                return -ENOMEM;
        /* pread: the offset of a shared memfd is shared too. */
        n = pread(memfd, insns, st.st_size, 0);
        if (n < 0)
                return -errno;
        if (n != st.st_size)
                return -EIO;
        ret->len = (unsigned short) (st.st_size / sizeof(struct sock_filter));
        ret->insns = TAKE_PTR(insns);
        return 0;
}

void isolate_bpf_done(isolate_bpf *b)
{
        free(b->insns);
        b->insns = NULL;
        b->len = 0;
}

int isolate_seccomp_install(const isolate_bpf *b)
{
        struct sock_fprog prog = { .len = b->len, .filter = b->insns };

        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
                return -errno;
        return 0;
}
