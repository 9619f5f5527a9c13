/* SPDX-License-Identifier: MIT */
/* Bash as the oracle of the gatekeeper (see bash-oracle.h). Nothing the command string says can reach
 * the host: bash runs as nobody, in its own mount, network and PID namespaces, with empty directories
 * where programs live (so only bash's builtins can run; every external program, looked up through a
 * PATH that points nowhere, ends in command_not_found_handle, which records its name), with its own empty
 * /tmp, and it is killed with its whole PID namespace after a timeout. */

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "common.h"
#include "bash-oracle.h"

#define BASH "/bin/bash"
#define NOBODY 65534

static const char prelude[] =
        "command_not_found_handle() { printf '%s\\0' \"$1\" >&9; return 127; }\n"
        "readonly -f command_not_found_handle\n";

/* Directories hidden under empty tmpfs: where programs live, and everything writable. */
static const char *const masked[] = {
        "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/bin", "/sbin", "/usr/libexec",
        "/tmp", "/var/tmp", "/dev/shm", "/home", "/root", "/run", "/work", "/opt", "/srv", "/mnt", "/media",
};

int bash_oracle_available(const char **ret_why)
{
        if (geteuid() != 0) {
                *ret_why = "needs root (namespaces, mounts, switching to nobody)";
                return 0;
        }
        if (access(BASH, X_OK) < 0) {
                *ret_why = BASH " is missing";
                return 0;
        }
        return 1;
}

/* In the child: never returns. */
_noreturn_ static void child(const char *command, size_t len, int log_fd, int bash_fd, int pid_fd)
{
        _cleanup_free_ char *cmd = strndup(command, len);
        int env_fd, null_fd;
        char fdpath[64];

        if (!cmd || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                _exit(120);
        if (unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
                _exit(121);
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                _exit(122);
        for (size_t i = 0; i < ELEMENTSOF(masked); i++) {
                struct stat st;
                if (lstat(masked[i], &st) < 0 || !S_ISDIR(st.st_mode))
                        continue; /* a symlink (/bin -> usr/bin) follows its target */
                if (mount("pc-oracle", masked[i], "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") < 0)
                        _exit(123);
        }
        /* the children of this process live in the new PID namespace: when its init dies, all die */
        pid_t pid = fork();
        if (pid < 0)
                _exit(124);
        if (pid > 0) {
                int st = 0;
                /* Tell the test who the namespace's init is, so it can wait for the namespace to end. */
                if (write(pid_fd, &pid, sizeof(pid)) != (ssize_t) sizeof(pid))
                        (void) kill(pid, SIGKILL); /* nobody could wait for it: it must not run */
                while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                        ;
                _exit(0);
        }
        env_fd = memfd_create("bash-env", 0);
        if (env_fd < 0 || write(env_fd, prelude, sizeof prelude - 1) != (ssize_t) (sizeof prelude - 1))
                _exit(126);
        null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(null_fd, 1) < 0 || dup2(null_fd, 2) < 0 ||
            dup2(log_fd, 9) < 0 || dup2(env_fd, 8) < 0 || chdir("/tmp") < 0)
                _exit(127);
        if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 || setresuid(NOBODY, NOBODY, NOBODY) < 0)
                _exit(128);
        /* After the credentials change, which clears it: when the test kills our parent (the timeout), this
         * process, init of the new PID namespace, and with it everything bash started, dies too. Set before,
         * a script that loops forever outlived the test. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                _exit(125);
        snprintf(fdpath, sizeof fdpath, "BASH_ENV=/proc/self/fd/8");
        char *const argv[] = { (char *) "bash", (char *) "--norc", (char *) "--noprofile", (char *) "-c", cmd, NULL };
        char *const envp[] = { fdpath, (char *) "PATH=/nonexistent-pocketcoder-oracle", (char *) "HOME=/tmp",
                               (char *) "LC_ALL=C", NULL };
        execveat(bash_fd, "", argv, envp, AT_EMPTY_PATH);
        _exit(129);
}

static uint64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

int bash_oracle_run(const char *command, size_t len, unsigned timeout_ms, char **ret, size_t *ret_len)
{
        _cleanup_close_ int bash_fd = -EBADF, rfd = -EBADF;
        _cleanup_free_ char *out = NULL;
        size_t out_n = 0;
        _cleanup_close_ int init_pidfd = -EBADF;
        int pipefd[2], pidpipe[2];
        pid_t pid, init_pid;

        if (memchr(command, 0, len))
                len = strnlen(command, len); /* bash -c stops at a NUL as well */
        bash_fd = open(BASH, O_PATH | O_CLOEXEC);
        if (bash_fd < 0)
                return -errno;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        rfd = pipefd[0];
        if (pipe2(pidpipe, O_CLOEXEC) < 0) {
                close(pipefd[1]);
                return -errno;
        }
        pid = fork();
        if (pid < 0) {
                close(pipefd[1]);
                close(pidpipe[0]);
                close(pidpipe[1]);
                return -errno;
        }
        if (pid == 0) {
                close(pipefd[0]);
                close(pidpipe[0]);
                child(command, len, pipefd[1], bash_fd, pidpipe[1]);
        }
        close(pipefd[1]);
        close(pidpipe[1]);
        /* The init of bash's PID namespace: its parent (our child) has not reaped it yet, so the pid is
         * still its own. Without it (the setup failed) there is nothing to wait for. */
        if (read(pidpipe[0], &init_pid, sizeof(init_pid)) == (ssize_t) sizeof(init_pid))
                init_pidfd = (int) syscall(SYS_pidfd_open, init_pid, 0);
        close(pidpipe[0]);

        uint64_t deadline = now_ms() + timeout_ms;
        for (;;) {
                struct pollfd pfd = { .fd = rfd, .events = POLLIN };
                uint64_t t = now_ms();
                int k = t >= deadline ? 0 : poll(&pfd, 1, (int) (deadline - t));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break; /* timeout: what was recorded so far counts */
                char buf[4096];
                ssize_t n = read(rfd, buf, sizeof buf);
                if (n <= 0)
                        break;
                if (out_n < 1024 * 1024) {
                        char *grown = realloc(out, out_n + (size_t) n + 1);
                        if (!grown) {
                                kill(pid, SIGKILL);
                                waitpid(pid, NULL, 0);
                                return -ENOMEM;
                        }
                        out = grown;
                        memcpy(out + out_n, buf, (size_t) n);
                        out_n += (size_t) n;
                        out[out_n] = 0;
                }
        }
        kill(pid, SIGKILL); /* its PID namespace goes with it (the init's parent-death signal) */
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        /* ... and is gone when its init has exited: nothing bash started outlives this call. */
        if (init_pidfd >= 0) {
                struct pollfd pfd = { .fd = init_pidfd, .events = POLLIN };
                while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
                        ;
        }
        if (WIFEXITED(st) && WEXITSTATUS(st) >= 120)
                return -EPROTO; /* the sandbox could not be set up */
        *ret_len = out_n;
        *ret = out ? TAKE_PTR(out) : strdup("");
        return *ret ? 0 : -ENOMEM;
}

/* Is NAME among the commands of V, or among the wrappers they were found in ("sudo > bash -c > env")? */
static bool seen(const pc_verdict *v, const char *name)
{
        const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
        size_t blen = strlen(base);

        for (size_t i = 0; i < v->n_commands; i++) {
                const pc_verdict_command *e = &v->commands[i];
                const char *a = e->argv[0], *b = strrchr(a, '/') ? strrchr(a, '/') + 1 : a;
                if (streq(a, name) || streq(b, base))
                        return true;
                for (const char *w = e->via; w;) {
                        size_t k = strcspn(w, " ");
                        if (k == blen && strneq(w, base, k))
                                return true;
                        w = strstr(w, " > ");
                        if (w)
                                w += 3;
                }
        }
        return false;
}

char *bash_oracle_compare(const pc_verdict *v, const char *names, size_t names_len)
{
        if (!v->complete || v->decision != PC_DECISION_ALLOW || v->n_commands_omitted > 0)
                return NULL; /* the analyser said it cannot see everything: a person decides */
        for (size_t i = 0; i < names_len; i += strlen(names + i) + 1) {
                const char *name = names + i;
                if (!seen(v, name)) {
                        char *m = NULL;
                        if (asprintf(&m, "bash ran \"%s\", which the analyser did not see", name) < 0)
                                return NULL;
                        return m;
                }
        }
        return NULL;
}
