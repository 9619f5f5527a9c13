/* SPDX-License-Identifier: MIT */
/* A sandbox's agent socket. RUNTIME_DIR/sandboxes is 0700 root, so no host user reaches what is below it;
 * RUNTIME_DIR/sandboxes/NAME (0755) is bound into the sandbox at /run/pocketcoder, and its api.sock (0666)
 * is therefore reachable from inside that one sandbox only, by the agent, without a token and without any
 * network. The directory (a tmpfs of its own, so that the sandbox's mountinfo shows no host path), not the
 * socket file, is what the sandbox mounts: a daemon that restarts binds
 * a new socket (a new inode) in the same directory, and the running sandbox sees it. Accepting happens on
 * the event loop; each connection goes to the handler the composition root set (the HTTP server). */
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-event.h>

#include "daemon-internal.h"

#define AGENT_SOCKET_NAME "api.sock"

struct pc_agent_socket {
        pc_daemon *daemon;
        char name[64];
        char instance[33];
        char *dir;
        int dir_fd; /* O_PATH */
        int fd;     /* listening */
        sd_event_source *source; /* loop thread only */
};

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        pc_agent_socket *s = userdata;
        pc_daemon *d = s->daemon;

        for (;;) {
                int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (c < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_warning_errno(errno, "sandbox %s: accept on the agent socket: %m, ignoring",
                                                  s->name);
                        return 0;
                }
                if (!d->agent_fn) {
                        safe_close(c);
                        continue;
                }
                d->agent_fn(d->agent_userdata, c, s->name, s->instance);
        }
}

static void attach(pc_daemon *d, void *userdata)
{
        pc_agent_socket *s = userdata;
        int r;

        r = sd_event_add_io(d->event, &s->source, s->fd, EPOLLIN, on_accept, s);
        if (r < 0)
                log_error_errno(r, "sandbox %s: cannot accept on the agent socket: %m", s->name);
}

static void destroy(pc_daemon *d, void *userdata)
{
        pc_agent_socket *s = userdata;

        sd_event_source_disable_unref(s->source);
        safe_close(s->fd);
        safe_close(s->dir_fd);
        free(s->dir);
        free(s);
}

/* The directory is a tiny tmpfs of its own (once; a restarted daemon finds it mounted): bound into the
 * sandbox, its mountinfo line then shows the root of that tmpfs, "/", not where RUNTIME_DIR is on the
 * host. */
static int mount_private_tmpfs(const char *dir)
{
        struct statx sx;

        if (statx(AT_FDCWD, dir, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &sx) < 0)
                return -errno;
        if (statx_is_mount_root(&sx))
                return 0;
        if (mount("pocketcoder-agent", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "mode=0755,size=64k,nr_inodes=16") < 0)
                return -errno;
        return 0;
}

/* The tmpfs goes with the directory; an already unmounted one is fine. */
static void remove_dir(const char *name, const char *dir)
{
        if (umount2(dir, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT)
                log_warning_errno(errno, "sandbox %s: cannot unmount %s: %m, ignoring", name, dir);
        if (rmdir(dir) < 0 && errno != ENOENT)
                log_warning_errno(errno, "sandbox %s: cannot remove %s: %m, ignoring", name, dir);
}

/* Creates (or, after a restart, re-uses) the sandbox's directory and binds a fresh socket in it. */
static int bind_socket(pc_agent_socket *s, const char *parent, pc_error **reterr)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        int r;

        r = mkdir_p(parent, 0700);
        if (r < 0)
                return pc_error_setf(reterr, -r, "agent_socket", "cannot create %s: %s", parent, strerror(-r));
        if (chmod(parent, 0700) < 0)
                return pc_error_setf(reterr, errno, "agent_socket", "cannot make %s private: %m", parent);
        if (mkdir(s->dir, 0755) < 0 && errno != EEXIST)
                return pc_error_setf(reterr, errno, "agent_socket", "cannot create %s: %m", s->dir);
        r = mount_private_tmpfs(s->dir);
        if (r < 0)
                return pc_error_setf(reterr, -r, "agent_socket", "cannot mount a tmpfs on %s: %s", s->dir,
                                     strerror(-r));
        s->dir_fd = open(s->dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (s->dir_fd < 0)
                return pc_error_setf(reterr, errno, "agent_socket", "cannot open %s: %m", s->dir);
        if (fstat(s->dir_fd, &st) < 0 || st.st_uid != 0)
                return pc_error_setf(reterr, EPERM, "agent_socket", "%s is not owned by root", s->dir);
        /* Whatever the umask: the agent's uid inside must be able to search it. */
        if (chmod(s->dir, 0755) < 0)
                return pc_error_setf(reterr, errno, "agent_socket", "cannot set the mode of %s: %m", s->dir);
        /* A stale socket of a previous daemon (this one's inode cannot be re-used: bind makes a new one). */
        if (unlinkat(s->dir_fd, AGENT_SOCKET_NAME, 0) < 0 && errno != ENOENT)
                return pc_error_setf(reterr, errno, "agent_socket", "cannot remove the old %s/%s: %m", s->dir,
                                     AGENT_SOCKET_NAME);
        s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s->fd < 0)
                return pc_error_setf(reterr, errno, "agent_socket", "socket(): %m");
        /* Through the directory's fd: short whatever RUNTIME_DIR is, and no path walked twice. */
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/" AGENT_SOCKET_NAME, s->dir_fd);
        if (bind(s->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return pc_error_setf(reterr, errno, "agent_socket", "cannot bind %s/%s: %m", s->dir,
                                     AGENT_SOCKET_NAME);
        /* Anyone who can reach it may connect: only that sandbox's processes can. */
        if (fchmodat(s->dir_fd, AGENT_SOCKET_NAME, 0666, 0) < 0)
                return pc_error_setf(reterr, errno, "agent_socket", "cannot set the mode of %s/%s: %m", s->dir,
                                     AGENT_SOCKET_NAME);
        if (listen(s->fd, SOMAXCONN) < 0)
                return pc_error_setf(reterr, errno, "agent_socket", "cannot listen on %s/%s: %m", s->dir,
                                     AGENT_SOCKET_NAME);
        return 0;
}

int pc_agent_socket_new(pc_daemon *d, const char *sandbox, const char *instance, pc_agent_socket **ret,
                        pc_error **reterr)
{
        _cleanup_free_ char *parent = strjoin(d->config.runtime_dir, "/sandboxes");
        pc_agent_socket *s = calloc(1, sizeof(*s));
        int r;

        if (!s || !parent) {
                free(s);
                return -ENOMEM;
        }
        s->daemon = d;
        s->fd = s->dir_fd = -EBADF;
        snprintf(s->name, sizeof(s->name), "%s", sandbox);
        snprintf(s->instance, sizeof(s->instance), "%s", instance);
        s->dir = strjoin(parent, "/", sandbox);
        r = s->dir ? bind_socket(s, parent, reterr) : -ENOMEM;
        if (r >= 0)
                r = pc_daemon_post(d, attach, s);
        if (r < 0) {
                destroy(d, s);
                return r;
        }
        *ret = s;
        return 0;
}

const char *pc_agent_socket_dir(const pc_agent_socket *s)
{
        return s->dir;
}

pc_agent_socket *pc_agent_socket_free(pc_agent_socket *s, bool remove)
{
        if (!s)
                return NULL;
        /* The path goes now; the listening socket and its source go on the loop, after the attach. */
        (void) unlinkat(s->dir_fd, AGENT_SOCKET_NAME, 0);
        if (remove)
                remove_dir(s->name, s->dir);
        if (pc_daemon_post(s->daemon, destroy, s) < 0)
                log_error("sandbox %s: cannot release the agent socket (out of memory), leaking it", s->name);
        return NULL;
}

void pc_agent_socket_remove_stale(pc_daemon *d, const char *sandbox)
{
        _cleanup_free_ char *dir = strjoin(d->config.runtime_dir, "/sandboxes/", sandbox),
                            *sock = strjoin(d->config.runtime_dir, "/sandboxes/", sandbox, "/" AGENT_SOCKET_NAME);

        if (!dir || !sock)
                return;
        (void) unlink(sock);
        remove_dir(sandbox, dir);
}
