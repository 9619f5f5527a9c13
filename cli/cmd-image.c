/* SPDX-License-Identifier: MIT */
/* pocketcoder image build|list|rm: root filesystem images for sandboxes (rootfs/README.md). Building is
 * rootfs/build-image.sh's job; this file finds and runs it, lists what it produced from the image.json
 * files, and removes images no sandbox uses. Images live in STATE_DIR/images/NAME, read locally: the
 * daemon only ever reads them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"

#define BUILD_SCRIPT "build-image.sh"

static int usage(bool ok)
{
        if (!ok)
                fprintf(stderr, "pocketcoder image: missing or unknown subcommand.\n\n");
        printf("Usage: pocketcoder image build NAME [--suite SUITE] [--packages a,b] [--mirror URL]\n"
               "                               [--variant minbase|buildd|default] [--state-dir DIR]\n"
               "       pocketcoder image list [--state-dir DIR]\n"
               "       pocketcoder image rm NAME [--force] [--state-dir DIR]\n"
               "\n"
               "Debian root filesystems for sandboxes ('pocketcoder sandbox create NAME --rootfs IMAGE').\n"
               "'build' runs debootstrap from the mirror apt uses (root only; shows progress; a failed\n"
               "build leaves nothing). 'list' shows the images, 'rm' deletes one that no sandbox uses\n"
               "(the daemon is asked; --force deletes when the daemon cannot be reached).\n"
               "Images are in STATE_DIR/images (default %s/images).\n",
               PC_DEFAULT_STATE_DIR);
        return ok ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

/* The one NAME operand left after the options (argv[optind]), or NULL after saying what is wrong. */
static const char *image_name_arg(const char *cmd, int argc, char **argv)
{
        const char *name;

        if (optind + 1 != argc) {
                fprintf(stderr, "pocketcoder image %s: %s\n", cmd,
                        optind >= argc ? "the image NAME is required" : "unexpected argument after NAME");
                return NULL;
        }
        name = argv[optind];
        if (name_is_valid(name) && !streq(name, "host"))
                return name;
        fprintf(stderr,
                "pocketcoder image %s: image name \"%s\" is invalid (lowercase letters, digits and '-', "
                "at most 63 characters; \"host\" is reserved)\n",
                cmd, name);
        return NULL;
}

/* ---- build ---- */

static volatile sig_atomic_t build_pid;

/* The build script cleans up on INT/TERM (it removes its half-built tree): pass them on to its whole
 * process group (debootstrap and apt too, so the script's trap runs at once rather than after them) and
 * keep waiting, instead of dying first and leaving the terminal to a still-running build. */
static void forward_signal(int sig)
{
        if (build_pid > 0)
                (void) kill(-(pid_t) build_pid, sig);
}

static int image_build(int argc, char **argv, const char *state_dir)
{
        static const struct option options[] = {
                { "suite", required_argument, NULL, 's' },
                { "packages", required_argument, NULL, 'p' },
                { "mirror", required_argument, NULL, 'm' },
                { "variant", required_argument, NULL, 'v' },
                { "state-dir", required_argument, NULL, 'd' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *name, *suite = NULL, *packages = NULL, *mirror = NULL, *variant = NULL, *args[16];
        size_t n = 0;
        _cleanup_free_ char *script = NULL;
        const char *dir = getenv("POCKETCODER_ROOTFS_DIR");
        struct sigaction sa = { .sa_handler = forward_signal }, old_int, old_term;
        int opt, status;
        pid_t pid;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
                case 's':
                        suite = optarg;
                        break;
                case 'p':
                        packages = optarg;
                        break;
                case 'm':
                        mirror = optarg;
                        break;
                case 'v':
                        variant = optarg;
                        break;
                case 'd':
                        state_dir = optarg;
                        break;
                case 'h':
                        return usage(true);
                default:
                        return CLI_EXIT_USAGE;
                }
        }
        name = image_name_arg("build", argc, argv);
        if (!name)
                return CLI_EXIT_USAGE;
        if (geteuid() != 0) {
                fprintf(stderr, "pocketcoder image build: building an image needs root (debootstrap creates "
                                "device nodes and chroots); run it with sudo\n");
                return CLI_EXIT_FAILED;
        }
        /* The script validates suite, packages, mirror and variant itself, with the same messages for
         * every caller. */
        args[n++] = BUILD_SCRIPT;
        args[n++] = "--state-dir";
        args[n++] = state_dir;
        args[n++] = "--name";
        args[n++] = name;
        const struct {
                const char *flag, *value;
        } opts[] = {
                { "--suite", suite },
                { "--packages", packages },
                { "--mirror", mirror },
                { "--variant", variant },
        };
        for (size_t i = 0; i < ELEMENTSOF(opts); i++)
                if (opts[i].value) {
                        args[n++] = opts[i].flag;
                        args[n++] = opts[i].value;
                }
        args[n] = NULL;

        /* Tests run the script from the source tree; installs from libexecdir. */
        script = strjoin(!isempty(dir) ? dir : PC_LIBEXECDIR, "/" BUILD_SCRIPT);
        if (!script)
                return CLI_EXIT_FAILED;
        if (access(script, X_OK) < 0) {
                fprintf(stderr, "pocketcoder image build: cannot run %s: %m\n", script);
                return CLI_EXIT_FAILED;
        }

        fflush(NULL);
        (void) sigaction(SIGINT, &sa, &old_int);
        (void) sigaction(SIGTERM, &sa, &old_term);
        pid = fork();
        if (pid < 0) {
                fprintf(stderr, "pocketcoder image build: fork: %m\n");
                return CLI_EXIT_FAILED;
        }
        if (pid == 0) {
                /* Its own process group, which forward_signal() addresses as a whole. stdout and stderr
                 * are ours: progress streams straight to the user. */
                (void) setpgid(0, 0);
                (void) sigaction(SIGINT, &old_int, NULL);
                (void) sigaction(SIGTERM, &old_term, NULL);
                execv(script, (char *const *) args);
                fprintf(stderr, "pocketcoder image build: cannot run %s: %m\n", script);
                _exit(127);
        }
        build_pid = pid;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        fprintf(stderr, "pocketcoder image build: waitpid: %m\n");
                        return CLI_EXIT_FAILED;
                }
        build_pid = 0;
        (void) sigaction(SIGINT, &old_int, NULL);
        (void) sigaction(SIGTERM, &old_term, NULL);
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
}

/* ---- list ---- */

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Names of the images in DIR/images, sorted; entries that are not valid image names (the build's
 * ".build-*" temporaries, lock files) are not images. NULL-terminated; *ret is NULL when there is no
 * images directory yet. */
static int list_names(const char *state_dir, char ***ret)
{
        _cleanup_free_ char *path = strjoin(state_dir, "/images");
        _cleanup_(closedirp) DIR *d = NULL;
        char **names = NULL;
        size_t n = 0;
        struct dirent *de;

        if (!path)
                return -ENOMEM;
        d = opendir(path);
        if (!d) {
                *ret = NULL;
                return errno == ENOENT ? 0 : -errno;
        }
        while ((de = readdir(d))) {
                if (!name_is_valid(de->d_name) || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
                        continue;
                char **p = realloc(names, (n + 2) * sizeof(*names));
                if (!p)
                        break;
                names = p;
                names[n] = strdup(de->d_name);
                if (!names[n])
                        break;
                names[++n] = NULL;
        }
        if (names)
                qsort(names, n, sizeof(*names), cmp_str);
        *ret = names;
        return 0;
}

static void strv_free(char **v)
{
        for (size_t i = 0; v && v[i]; i++)
                free(v[i]);
        free(v);
}

static void strv_freep(char ***v)
{
        strv_free(*v);
}

/* The image's metadata; for a directory without a readable image.json (copied in by hand) just its name. */
static json_t *load_image(const char *state_dir, const char *name)
{
        _cleanup_free_ char *path = strjoin(state_dir, "/images/", name, "/image.json");
        json_t *j;

        j = path ? json_load_file(path, 0, NULL) : NULL;
        if (!json_is_object(j)) {
                json_decref(j);
                j = json_object();
        }
        /* The directory name is what sandboxes refer to, whatever the file says. */
        json_object_set_new(j, "name", json_string(name));
        return j;
}

static void format_size(uint64_t bytes, char *buf, size_t n)
{
        if (bytes >= 1024ULL * 1024 * 1024)
                snprintf(buf, n, "%.1fG", (double) bytes / (1024.0 * 1024 * 1024));
        else
                snprintf(buf, n, "%lluM", (unsigned long long) ((bytes + 512 * 1024) / (1024 * 1024)));
}

static int image_list(int argc, char **argv, const char *state_dir, const cli_global *g)
{
        static const struct option options[] = {
                { "state-dir", required_argument, NULL, 'd' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(strv_freep) char **names = NULL;
        _cleanup_json_ json_t *all = json_array();
        bool json = g->json;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
                case 'd':
                        state_dir = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        return usage(true);
                default:
                        return CLI_EXIT_USAGE;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "pocketcoder image list: unexpected argument \"%s\"\n", argv[optind]);
                return CLI_EXIT_USAGE;
        }
        r = list_names(state_dir, &names);
        if (r < 0) {
                fprintf(stderr, "pocketcoder image list: cannot read %s/images: %s\n", state_dir,
                        strerror(-r));
                return CLI_EXIT_FAILED;
        }
        for (size_t i = 0; names && names[i]; i++)
                json_array_append_new(all, load_image(state_dir, names[i]));

        if (json) {
                _cleanup_json_ json_t *out = json_pack("{s:O}", "images", all);
                cli_print_json(out);
                return CLI_EXIT_OK;
        }

        static const char *const header[] = { "NAME", "SUITE", "PACKAGES", "SIZE", "CREATED" };
        size_t nrows = json_array_size(all), ncols = ELEMENTSOF(header);
        _cleanup_free_ char **cells = calloc(nrows * ncols + 1, sizeof(char *));
        json_t *img;
        size_t i;

        if (!cells)
                return CLI_EXIT_FAILED;
        json_array_foreach(all, i, img) {
                json_t *pkgs = json_object_get(img, "packages"), *p, *size = json_object_get(img, "size");
                char buf[32];
                size_t k;

                cells[i * ncols + 0] = strdup(json_string_value(json_object_get(img, "name")));
                cells[i * ncols + 1] = json_is_string(json_object_get(img, "suite"))
                                               ? strdup(json_string_value(json_object_get(img, "suite")))
                                               : NULL;
                json_array_foreach(pkgs, k, p) {
                        char *joined = strjoin(cells[i * ncols + 2] ?: "", k > 0 ? "," : "",
                                               json_string_value(p) ?: "?");
                        free(cells[i * ncols + 2]);
                        cells[i * ncols + 2] = joined;
                }
                if (json_is_integer(size)) {
                        format_size((uint64_t) json_integer_value(size), buf, sizeof(buf));
                        cells[i * ncols + 3] = strdup(buf);
                }
                cells[i * ncols + 4] = json_is_string(json_object_get(img, "created"))
                                               ? strdup(json_string_value(json_object_get(img, "created")))
                                               : NULL;
        }
        cli_table_print(header, ncols, cells, nrows);
        for (i = 0; i < nrows * ncols; i++)
                free(cells[i]);
        return CLI_EXIT_OK;
}

/* ---- rm ---- */

/* Removes everything beneath dirfd without following symlinks or crossing into other filesystems (a
 * mount left inside must stop the removal, not be emptied). Consumes dirfd. */
static int remove_tree_at(int dirfd, dev_t dev)
{
        _cleanup_(closedirp) DIR *d = fdopendir(dirfd);
        struct dirent *de;
        int r = 0;

        if (!d) {
                r = -errno;
                (void) close(dirfd);
                return r;
        }
        while ((errno = 0, de = readdir(d))) {
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return -errno;
                if (S_ISDIR(st.st_mode)) {
                        if (st.st_dev != dev)
                                return -EXDEV;
                        int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0)
                                return -errno;
                        r = remove_tree_at(sub, dev);
                        if (r < 0)
                                return r;
                        if (unlinkat(dirfd, de->d_name, AT_REMOVEDIR) < 0)
                                return -errno;
                } else if (unlinkat(dirfd, de->d_name, 0) < 0)
                        return -errno;
        }
        return errno > 0 ? -errno : 0;
}

static int remove_tree(const char *path)
{
        struct stat st;
        int fd, r;

        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                (void) close(fd);
                return r;
        }
        r = remove_tree_at(fd, st.st_dev);
        if (r < 0)
                return r;
        return rmdir(path) < 0 ? -errno : 0;
}

/* Sandboxes the daemon knows that use image `name` (running or not: a stopped one needs its image to
 * start again), as "a, b" in *ret_users (NULL when none). Returns -ECONNREFUSED when the daemon cannot be
 * asked; the message was printed. */
static int image_users(const cli_global *g, const char *name, char **ret_users)
{
        _cleanup_json_ json_t *resp = NULL;
        _cleanup_free_ char *users = NULL;
        json_t *sb;
        long status;
        size_t i;
        int r;

        r = cli_request(g, "GET", "/v1/sandboxes", NULL, &status, &resp);
        if (r < 0)
                return -ECONNREFUSED;
        if (status != 200) {
                cli_print_api_error(status, resp);
                return -EPERM;
        }
        json_array_foreach(json_object_get(resp, "sandboxes"), i, sb) {
                if (!streq_ptr(json_string_value(json_object_get(sb, "rootfs")), name))
                        continue;
                char *u = strjoin(users ?: "", users ? ", " : "",
                                  json_string_value(json_object_get(sb, "name")) ?: "?");
                if (!u)
                        return -ENOMEM;
                free(users);
                users = u;
        }
        *ret_users = TAKE_PTR(users);
        return 0;
}

static int image_rm(int argc, char **argv, const char *state_dir, const cli_global *g)
{
        static const struct option options[] = {
                { "force", no_argument, NULL, 'f' },
                { "state-dir", required_argument, NULL, 'd' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_free_ char *path = NULL, *doomed = NULL, *users = NULL;
        const char *name;
        bool force = false;
        struct stat st;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "fh", options, NULL)) >= 0) {
                switch (opt) {
                case 'f':
                        force = true;
                        break;
                case 'd':
                        state_dir = optarg;
                        break;
                case 'h':
                        return usage(true);
                default:
                        return CLI_EXIT_USAGE;
                }
        }
        name = image_name_arg("rm", argc, argv);
        if (!name)
                return CLI_EXIT_USAGE;
        path = strjoin(state_dir, "/images/", name);
        if (!path)
                return CLI_EXIT_FAILED;
        if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
                fprintf(stderr, "pocketcoder image rm: image \"%s\" does not exist in %s/images\n", name,
                        state_dir);
                return CLI_EXIT_FAILED;
        }

        r = image_users(g, name, &users);
        if (r == -ECONNREFUSED && !force) {
                fprintf(stderr,
                        "pocketcoder image rm: cannot ask the daemon whether a sandbox uses image \"%s\"; "
                        "refusing. Start the daemon, or pass --force if no sandbox uses it.\n",
                        name);
                return CLI_EXIT_FAILED;
        }
        if (r < 0 && r != -ECONNREFUSED)
                return CLI_EXIT_FAILED;
        if (users) {
                fprintf(stderr,
                        "pocketcoder image rm: image \"%s\" is in use by sandbox%s %s; delete %s first "
                        "('pocketcoder sandbox rm NAME')\n",
                        name, strchr(users, ',') ? "es" : "", users, strchr(users, ',') ? "them" : "it");
                return CLI_EXIT_FAILED;
        }

        /* Take the name away first (one rename), so that no new sandbox can start on a half-removed tree
         * and a new image of the same name can be built at once; then delete at leisure. */
        if (asprintf_safe(&doomed, "%s/images/.rm-%s-%ld", state_dir, name, (long) getpid()) < 0)
                return CLI_EXIT_FAILED;
        if (rename(path, doomed) < 0) {
                fprintf(stderr, "pocketcoder image rm: cannot remove %s: %m\n", path);
                return CLI_EXIT_FAILED;
        }
        r = remove_tree(doomed);
        if (r < 0) {
                fprintf(stderr,
                        "pocketcoder image rm: image \"%s\" is gone, but removing its files in %s "
                        "failed: %s\n",
                        name, doomed, strerror(-r));
                return CLI_EXIT_FAILED;
        }
        printf("Removed image %s.\n", name);
        return CLI_EXIT_OK;
}

int cmd_image(int argc, char **argv, const cli_global *g)
{
        const char *state_dir = PC_DEFAULT_STATE_DIR;

        if (argc < 2)
                return usage(false);
        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help"))
                return usage(true);
        /* Subcommands parse their own options from argv[1] on ("build NAME --suite x"). */
        if (streq(argv[1], "build"))
                return image_build(argc - 1, argv + 1, state_dir);
        if (streq(argv[1], "list") || streq(argv[1], "ls"))
                return image_list(argc - 1, argv + 1, state_dir, g);
        if (streq(argv[1], "rm") || streq(argv[1], "remove"))
                return image_rm(argc - 1, argv + 1, state_dir, g);
        fprintf(stderr, "pocketcoder image: unknown subcommand \"%s\" (expected build, list or rm)\n",
                argv[1]);
        return CLI_EXIT_USAGE;
}
