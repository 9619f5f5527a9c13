/* SPDX-License-Identifier: MIT */
/* Host tools the library runs (tmux -V, nft -f -, mkfs.ext4): one way to start them and read what they say. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "isolate-internal.h"

int isolate_run_tool(const char *const *paths, size_t n_paths, char *const *argv, int stdin_fd, bool with_stderr,
                     size_t max, char **ret_output)
{
        char *const envp[] = { (char *) "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                               (char *) "LC_ALL=C", NULL };
        _cleanup_close_ int rfd = -EBADF, wfd = -EBADF;
        _cleanup_free_ char *out = NULL;
        posix_spawn_file_actions_t fa;
        const char *bin = NULL;
        int p[2], status, r;
        pid_t pid;

        for (size_t i = 0; i < n_paths && !bin; i++)
                if (access(paths[i], X_OK) >= 0)
                        bin = paths[i];
        if (!bin)
                return -ENOENT;
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        rfd = p[0];
        wfd = p[1];

        r = posix_spawn_file_actions_init(&fa);
        if (r != 0)
                return -r;
        r = stdin_fd >= 0 ? posix_spawn_file_actions_adddup2(&fa, stdin_fd, 0)
                          : posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, wfd, 1);
        if (r == 0)
                r = with_stderr ? posix_spawn_file_actions_adddup2(&fa, wfd, 2)
                                : posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        if (r == 0)
                r = posix_spawn(&pid, bin, &fa, NULL, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0)
                return -r;
        wfd = safe_close(wfd);
        r = read_full_fd(rfd, max, &out, NULL);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (r < 0)
                return r;
        if (!WIFEXITED(status))
                return -ECHILD;
        if (ret_output)
                *ret_output = TAKE_PTR(out);
        return WEXITSTATUS(status);
}
