/* SPDX-License-Identifier: MIT */
/* Images: root filesystems in STATE_DIR/images/NAME, built by rootfs/build-image.sh (debootstrap) which the
 * daemon runs itself, so that nothing but the daemon writes its state directory. A build streams its
 * progress: each line the script prints becomes an event (pc_images_progress(), and a line of the POST's
 * newline-delimited JSON answer), the last one says how it ended. Removal refuses while a sandbox (running
 * or not) uses the image. */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "daemon-internal.h"
#include "isolate.h"
#include "requests-internal.h"

#define BUILD_SCRIPT "build-image.sh"

struct pc_image_build {
        pc_daemon *daemon;
        char name[64];
        pid_t pid;         /* the script, leader of its own process group; 0 once reaped */
        int fd[2];         /* its stdout and stderr; -1 at EOF */
        char partial[2][4096]; /* a line not yet ended */
        size_t partial_len[2];
        int64_t started_usec;
        bool done;
        char *pending;     /* event lines not yet taken by the client */
        size_t pending_len, pending_off;
};

/* Every line of the build's answer is also an event on the bus (image.progress, image.built,
 * image.failed, with the image's name), so a client that lost the answer can follow it on GET /v1/events. */
void pc_images_progress(pc_daemon *d, const char *image, json_t *event)
{
        const char *kind = json_string_value(json_object_get(event, "event"));
        pc_event_type t = streq_ptr(kind, "done")   ? PC_EVENT_IMAGE_BUILT :
                          streq_ptr(kind, "failed") ? PC_EVENT_IMAGE_FAILED :
                                                      PC_EVENT_IMAGE_PROGRESS;
        json_t *data = json_deep_copy(event);

        if (data)
                (void) json_object_set_new(data, "image", json_string(image));
        (void) pc_event_publish(d, t, NULL, data);
}

static char *images_dir(pc_daemon *d)
{
        return strjoin(d->config.state_dir, "/images");
}

/* The image's metadata; for a directory without a readable image.json (copied in by hand) just its name. */
static json_t *image_json(pc_daemon *d, const char *name)
{
        _cleanup_free_ char *path = strjoin(d->config.state_dir, "/images/", name, "/image.json");
        json_t *j = path ? json_load_file(path, 0, NULL) : NULL;

        if (!json_is_object(j)) {
                json_decref(j);
                j = json_object();
        }
        /* The directory name is what sandboxes refer to, whatever the file says. */
        json_object_set_new(j, "name", json_string(name));
        return j;
}

static int cmp_name(const void *a, const void *b)
{
        return strcmp(json_string_value(json_object_get(*(json_t *const *) a, "name")),
                      json_string_value(json_object_get(*(json_t *const *) b, "name")));
}

int pc_images_list(pc_daemon *d, json_t **ret, pc_error **reterr)
{
        _cleanup_free_ char *dir = images_dir(d);
        _cleanup_(closedirp) DIR *dd = NULL;
        _cleanup_json_ json_t *arr = json_array();
        _cleanup_free_ json_t **items = NULL;
        struct dirent *de;
        size_t n = 0;

        if (!dir || !arr)
                return -ENOMEM;
        dd = opendir(dir);
        if (!dd && errno != ENOENT)
                return pc_error_setf(reterr, errno, "io", "cannot read %s: %m", dir);
        /* Entries that are not valid image names (".build-*" temporaries, lock files) are not images. */
        while (dd && (de = readdir(dd))) {
                if (!name_is_valid(de->d_name) || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
                        continue;
                json_t **m = reallocarray(items, n + 1, sizeof(*items));
                if (!m)
                        break;
                items = m;
                items[n++] = image_json(d, de->d_name);
        }
        if (n > 0)
                qsort(items, n, sizeof(*items), cmp_name);
        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, items[i]);
        *ret = json_pack("{s:O}", "images", arr);
        return *ret ? 0 : -ENOMEM;
}

/* Sandboxes that use image NAME (running or not: a stopped one needs it to start again), "a, b". */
static int image_users(pc_daemon *d, const char *name, char **ret)
{
        LOCK_GUARD(&d->store.lock);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *users = NULL;

        if (sqlite3_prepare_v2(d->store.db, "SELECT name FROM sandboxes WHERE rootfs = ? ORDER BY name", -1, &st,
                               NULL) != SQLITE_OK)
                return -EIO;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW) {
                char *u = strjoin(users ?: "", users ? ", " : "", (const char *) sqlite3_column_text(st, 0));
                if (!u)
                        return -ENOMEM;
                free(users);
                users = u;
        }
        *ret = TAKE_PTR(users);
        return 0;
}

int pc_images_delete(pc_daemon *d, const pc_principal *who, const char *name, pc_error **reterr)
{
        _cleanup_free_ char *dir = images_dir(d), *path = NULL, *doomed = NULL, *users = NULL;
        char actor[128];
        struct stat st;
        int r;

        if (!name_is_valid(name) || streq(name, "host"))
                return pc_error_setf(reterr, EINVAL, "invalid_name", "\"%s\" is not an image name", name);
        if (!dir)
                return -ENOMEM;
        path = strjoin(dir, "/", name);
        if (asprintf_safe(&doomed, "%s/.rm-%s", dir, name) < 0 || !path)
                return -ENOMEM;
        if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
                return pc_error_setf(reterr, ENOENT, "not_found", "image \"%s\" does not exist", name);
        r = image_users(d, name, &users);
        if (r < 0)
                return pc_error_setf(reterr, -r, "store_error", "state database: cannot list the sandboxes");
        if (users)
                return pc_error_setf(reterr, EBUSY, "in_use",
                                     "image \"%s\" is in use by sandbox %s; delete those first (pocketcoder sandbox "
                                     "rm)",
                                     name, users);
        /* Recorded first: a deletion the ledger cannot hold is not made. */
        pc_principal_describe(who, actor, sizeof(actor));
        r = pc_store_audit(&d->store, actor, "image.delete", name, NULL);
        if (r < 0)
                return pc_store_errorf(r, reterr, "the deletion cannot be recorded in the audit ledger, so the image "
                                                  "was kept");
        /* Out of sight first, atomically (a half-removed image is never listed or used), then gone. */
        if (rename(path, doomed) < 0)
                return pc_error_setf(reterr, errno, "io", "cannot remove image \"%s\": %m", name);
        r = isolate_remove_tree(doomed);
        if (r < 0)
                return pc_error_setf(reterr, -r, "io", "image \"%s\" was unlisted but %s could not be removed: %s",
                                     name, doomed, strerror(-r));
        return 0;
}

pc_image_build *pc_image_build_free(pc_image_build *b)
{
        int status;

        if (!b)
                return NULL;
        /* The client went away mid-build: the script removes its half-built tree on TERM. */
        if (b->pid > 0) {
                (void) kill(-b->pid, SIGTERM);
                while (waitpid(b->pid, &status, 0) < 0 && errno == EINTR)
                        ;
                log_info("image %s: build stopped (the client went away)", b->name);
        }
        safe_close(b->fd[0]);
        safe_close(b->fd[1]);
        free(b->pending);
        free(b);
        return NULL;
}

static void image_build_freep(pc_image_build **b)
{
        pc_image_build_free(*b);
}

int pc_images_build(pc_daemon *d, const pc_principal *who, json_t *req, pc_image_build **ret, pc_error **reterr)
{
        _cleanup_(image_build_freep) pc_image_build *b = NULL;
        _cleanup_free_ char *script = NULL, *target = NULL, *packages = NULL, *detail = NULL;
        const char *dir = getenv("POCKETCODER_ROOTFS_DIR"), *argv[16];
        _cleanup_close_ int out_w = -EBADF, err_w = -EBADF, null = -EBADF;
        pc_image_request im;
        char actor[128];
        size_t n = 0, i;
        json_t *v;
        int p[2], r;

        r = pc_image_request_parse(req, &im, reterr);
        if (r < 0)
                return r;
        r = pc_state_space_check(d, reterr);
        if (r < 0)
                return r;
        target = strjoin(d->config.state_dir, "/images/", im.name);
        /* Tests run the script from the source tree; installs from libexecdir. */
        script = strjoin(!isempty(dir) ? dir : PC_LIBEXECDIR, "/" BUILD_SCRIPT);
        if (!target || !script)
                return -ENOMEM;
        if (access(target, F_OK) == 0)
                return pc_error_setf(reterr, EEXIST, "exists", "image \"%s\" already exists", im.name);
        if (access(script, X_OK) < 0)
                return pc_error_setf(reterr, errno, "not_installed", "cannot run %s: %m", script);
        json_array_foreach(im.packages, i, v) {
                char *j = strjoin(packages ?: "", packages ? "," : "", json_string_value(v));
                if (!j)
                        return -ENOMEM;
                free(packages);
                packages = j;
        }
        argv[n++] = BUILD_SCRIPT;
        argv[n++] = "--state-dir";
        argv[n++] = d->config.state_dir;
        argv[n++] = "--name";
        argv[n++] = im.name;
        const struct {
                const char *flag, *value;
        } opts[] = { { "--suite", im.suite }, { "--packages", packages }, { "--mirror", im.mirror },
                     { "--variant", im.variant } };
        for (i = 0; i < ELEMENTSOF(opts); i++)
                if (opts[i].value) {
                        argv[n++] = opts[i].flag;
                        argv[n++] = opts[i].value;
                }
        argv[n] = NULL;

        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->daemon = d;
        b->fd[0] = b->fd[1] = -EBADF;
        snprintf(b->name, sizeof(b->name), "%s", im.name);
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        b->fd[0] = p[0], out_w = p[1];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        b->fd[1] = p[0], err_w = p[1];
        null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null < 0)
                return -errno;

        pc_principal_describe(who, actor, sizeof(actor));
        detail = json_dumps(req, JSON_COMPACT);
        r = pc_store_audit(&d->store, actor, "image.build", im.name, detail);
        if (r < 0)
                return pc_store_errorf(r, reterr, "the build cannot be recorded in the audit ledger, so it was not started");
        b->started_usec = (int64_t) now_usec(CLOCK_MONOTONIC);
        b->pid = fork();
        if (b->pid < 0) {
                b->pid = 0;
                return pc_error_setf(reterr, errno, "fork", "cannot start the build: %m");
        }
        if (b->pid == 0) {
                /* Its own process group: a stopped build signals debootstrap and apt too. Only async-signal-
                 * safe calls between fork and exec (the daemon has threads). */
                (void) setpgid(0, 0);
                if (dup2(null, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
                        _exit(127);
                execv(script, (char *const *) argv);
                _exit(127);
        }
        log_info("image %s: build started (pid %d)", im.name, b->pid);
        *ret = TAKE_PTR(b);
        return 0;
}

/* Queues one event as a JSON line for the client (and hands it to the progress hook). */
static int queue(pc_image_build *b, json_t *event)
{
        _cleanup_free_ char *text = NULL;
        size_t n;
        char *p;

        if (!event)
                return -ENOMEM;
        pc_images_progress(b->daemon, b->name, event);
        text = json_dumps(event, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(event);
        if (!text)
                return -ENOMEM;
        n = strlen(text);
        p = realloc(b->pending, b->pending_len + n + 1);
        if (!p)
                return -ENOMEM;
        b->pending = p;
        memcpy(p + b->pending_len, text, n);
        p[b->pending_len + n] = '\n';
        b->pending_len += n + 1;
        return 0;
}

/* JSON strings are UTF-8: a byte that does not belong to a valid sequence (apt and debootstrap print what
 * package maintainers wrote, in whatever encoding) becomes '?'. */
static void utf8_sanitize(char *s, size_t n)
{
        for (size_t i = 0; i < n;) {
                unsigned char c = (unsigned char) s[i];
                size_t len = c < 0x80 ? 1 : (c >= 0xc2 && c <= 0xdf) ? 2 : (c >= 0xe0 && c <= 0xef) ? 3 :
                             (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
                bool ok = len > 0 && i + len <= n;
                uint32_t cp = len == 1 ? c : c & (0x7f >> len);

                for (size_t k = 1; ok && k < len; k++) {
                        ok = ((unsigned char) s[i + k] & 0xc0) == 0x80;
                        cp = (cp << 6) | ((unsigned char) s[i + k] & 0x3f);
                }
                /* Overlong forms, surrogates, beyond U+10FFFF. */
                ok = ok && !(len == 3 && cp < 0x800) && !(len == 4 && (cp < 0x10000 || cp > 0x10ffff)) &&
                     !(cp >= 0xd800 && cp <= 0xdfff);
                if (!ok) {
                        s[i++] = '?';
                        continue;
                }
                i += len;
        }
}

static int queue_line(pc_image_build *b, int stream)
{
        utf8_sanitize(b->partial[stream], b->partial_len[stream]);
        int r = queue(b, json_pack("{s:s, s:s, s:s%}", "event", "progress", "stream", stream ? "stderr" : "stdout",
                                   "line", b->partial[stream], b->partial_len[stream]));
        b->partial_len[stream] = 0;
        return r;
}

/* Reads what the script printed (waiting for it) and turns whole lines into events. */
static int collect(pc_image_build *b)
{
        struct pollfd p[2] = { { .fd = b->fd[0], .events = POLLIN }, { .fd = b->fd[1], .events = POLLIN } };
        char buf[4096];
        int r;

        if (b->fd[0] < 0 && b->fd[1] < 0) {
                int status = 0, code;

                while (waitpid(b->pid, &status, 0) < 0 && errno == EINTR)
                        ;
                b->pid = 0;
                b->done = true;
                code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                log_info("image %s: build %s (status %d)", b->name, code == 0 ? "done" : "failed", code);
                if (code == 0)
                        return queue(b, json_pack("{s:s, s:i, s:o, s:f}", "event", "done", "status", 0, "image",
                                                  image_json(b->daemon, b->name), "seconds",
                                                  (double) ((int64_t) now_usec(CLOCK_MONOTONIC) - b->started_usec) / 1e6));
                return queue(b, json_pack("{s:s, s:i}", "event", "failed", "status", code));
        }
        if (poll(p, 2, -1) < 0)
                return errno == EINTR ? 0 : -errno;
        for (int s = 0; s < 2; s++) {
                if (!(p[s].revents & (POLLIN | POLLHUP | POLLERR)))
                        continue;
                ssize_t k = read(b->fd[s], buf, sizeof(buf));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        /* EOF: what is left of the last line is a line. */
                        if (b->partial_len[s] > 0 && (r = queue_line(b, s)) < 0)
                                return r;
                        b->fd[s] = safe_close(b->fd[s]);
                        continue;
                }
                for (ssize_t i = 0; i < k; i++) {
                        if (buf[i] != '\n')
                                b->partial[s][b->partial_len[s]++] = buf[i];
                        /* A line ends, or one too long for the buffer goes in pieces. */
                        if ((buf[i] == '\n' || b->partial_len[s] == sizeof(b->partial[s])) && (r = queue_line(b, s)) < 0)
                                return r;
                }
        }
        return 0;
}

ssize_t pc_image_build_read(pc_image_build *b, char *out, size_t max)
{
        size_t n;
        int r;

        while (b->pending_off == b->pending_len) {
                b->pending_off = b->pending_len = 0;
                if (b->done)
                        return 0;
                r = collect(b);
                if (r < 0)
                        return log_warning_errno(r, "image %s: cannot read the build's progress: %m", b->name);
        }
        n = MIN(max, b->pending_len - b->pending_off);
        memcpy(out, b->pending + b->pending_off, n);
        b->pending_off += n;
        return (ssize_t) n;
}
