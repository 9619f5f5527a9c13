/* SPDX-License-Identifier: MIT */
/* pocketcoder image build|list|rm: root filesystem images for sandboxes (rootfs/README.md), through the API:
 * the daemon runs rootfs/build-image.sh and owns STATE_DIR/images; this file shows the build's progress as it
 * streams in (POST /v1/images), lists (GET /v1/images) and removes (DELETE /v1/images/NAME). The CLI never
 * writes the daemon's state directory. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"

#define BUILD_SCRIPT "build-image.sh"

static int usage(bool ok)
{
        if (!ok)
                fprintf(stderr, "pocketcoder image: missing or unknown subcommand.\n\n");
        printf("Usage: pocketcoder image build NAME [--suite SUITE] [--packages a,b] [--mirror URL]\n"
               "                               [--variant minbase|buildd|default]\n"
               "       pocketcoder image list\n"
               "       pocketcoder image rm NAME\n"
               "\n"
               "Debian root filesystems for sandboxes ('pocketcoder sandbox create NAME --rootfs IMAGE').\n"
               "'build' asks the daemon to run debootstrap from the mirror apt uses and shows its progress\n"
               "(admin; a failed build leaves nothing). 'list' shows the images, 'rm' deletes one that no\n"
               "sandbox uses. Images are in the daemon's STATE_DIR/images (default %s/images).\n",
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

/* The script's own lines, to our stdout or stderr as it printed them; the last event gives the status. */
static int on_build_event(json_t *ev, void *userdata)
{
        const char *event = json_string_value(json_object_get(ev, "event"));
        int *status = userdata;

        if (streq_ptr(event, "progress")) {
                bool err = streq_ptr(json_string_value(json_object_get(ev, "stream")), "stderr");
                fprintf(err ? stderr : stdout, "%s\n", json_string_value(json_object_get(ev, "line")) ?: "");
                fflush(err ? stderr : stdout);
                return 0;
        }
        if (streq_ptr(event, "done") || streq_ptr(event, "failed")) {
                *status = (int) json_integer_value(json_object_get(ev, "status"));
                return 1;
        }
        return 0;
}

static int image_build(int argc, char **argv, const cli_global *g)
{
        static const struct option options[] = {
                { "suite", required_argument, NULL, 's' },
                { "packages", required_argument, NULL, 'p' },
                { "mirror", required_argument, NULL, 'm' },
                { "variant", required_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_json_ json_t *req = json_object();
        const char *name;
        int opt, status = -1, r;

        if (!req)
                return CLI_EXIT_FAILED;
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
                case 's':
                        json_object_set_new(req, "suite", json_string(optarg));
                        break;
                case 'p': {
                        /* "a, b,c" -> ["a","b","c"]: the daemon checks each name. */
                        json_t *pkgs = json_array();
                        for (char *w = optarg; pkgs && *w;) {
                                size_t n = strcspn(w, ",");
                                _cleanup_free_ char *word = strndup(w, n);
                                if (word && *strstrip(word))
                                        json_array_append_new(pkgs, json_string(strstrip(word)));
                                w += n + (w[n] == ',');
                        }
                        json_object_set_new(req, "packages", pkgs);
                        break;
                }
                case 'm':
                        json_object_set_new(req, "mirror", json_string(optarg));
                        break;
                case 'v':
                        json_object_set_new(req, "variant", json_string(optarg));
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
        json_object_set_new(req, "name", json_string(name));
        r = cli_stream(g, "POST", "/v1/images", req, on_build_event, &status);
        if (r < 0) {
                if (r != -EIO && r != -ECONNREFUSED)
                        fprintf(stderr, "pocketcoder image build: lost the daemon's progress stream: %s\n",
                                strerror(-r));
                return CLI_EXIT_FAILED;
        }
        if (status < 0) {
                fprintf(stderr, "pocketcoder image build: the daemon ended the build without saying how it went\n");
                return CLI_EXIT_FAILED;
        }
        return status;
}

/* ---- list ---- */

static void format_size(uint64_t bytes, char *buf, size_t n)
{
        if (bytes >= 1024ULL * 1024 * 1024)
                snprintf(buf, n, "%.1fG", (double) bytes / (1024.0 * 1024 * 1024));
        else
                snprintf(buf, n, "%lluM", (unsigned long long) ((bytes + 512 * 1024) / (1024 * 1024)));
}

static int image_list(int argc, char **argv, const cli_global *g)
{
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_json_ json_t *resp = NULL;
        json_t *all;
        bool json = g->json;
        int opt;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
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
        if (cli_call(g, "GET", "/v1/images", NULL, 200, &resp) < 0)
                return CLI_EXIT_FAILED;
        all = json_object_get(resp, "images");
        if (json) {
                cli_print_json(resp);
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

static int image_rm(int argc, char **argv, const cli_global *g)
{
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_free_ char *path = NULL;
        _cleanup_json_ json_t *resp = NULL;
        const char *name;
        int opt;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (opt == 'h')
                        return usage(true);
                return CLI_EXIT_USAGE;
        }
        name = image_name_arg("rm", argc, argv);
        if (!name)
                return CLI_EXIT_USAGE;
        path = strjoin("/v1/images/", name);
        if (!path || cli_call(g, "DELETE", path, NULL, 204, &resp) < 0)
                return CLI_EXIT_FAILED;
        printf("Removed image %s\n", name);
        return CLI_EXIT_OK;
}

int cmd_image(int argc, char **argv, const cli_global *g)
{
        if (argc < 2)
                return usage(false);
        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help"))
                return usage(true);
        /* Subcommands parse their own options from argv[1] on ("build NAME --suite x"). */
        if (streq(argv[1], "build"))
                return image_build(argc - 1, argv + 1, g);
        if (streq(argv[1], "list") || streq(argv[1], "ls"))
                return image_list(argc - 1, argv + 1, g);
        if (streq(argv[1], "rm") || streq(argv[1], "remove"))
                return image_rm(argc - 1, argv + 1, g);
        fprintf(stderr, "pocketcoder image: unknown subcommand \"%s\" (expected build, list or rm)\n",
                argv[1]);
        return CLI_EXIT_USAGE;
}
