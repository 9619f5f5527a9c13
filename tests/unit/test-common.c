/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "common.h"
#include "tap.h"

TEST(parse_size_units)
{
        uint64_t v = 0;

        CHECK(parse_size("512M", &v) == 0 && v == 512ULL << 20);
        CHECK(parse_size("2G", &v) == 0 && v == 2ULL << 30);
        CHECK(parse_size("1KiB", &v) == 0 && v == 1024);
        CHECK(parse_size("100", &v) == 0 && v == 100);
        CHECK(parse_size("", &v) == -EINVAL);
        CHECK(parse_size("12X", &v) == -EINVAL);
        CHECK(parse_size("-1", &v) == -EINVAL);
        CHECK(parse_size("99999999999999999999T", &v) < 0);
}

TEST(parse_duration_units)
{
        uint64_t v = 0;

        CHECK(parse_duration("90", &v) == 0 && v == 90);
        CHECK(parse_duration("90s", &v) == 0 && v == 90);
        CHECK(parse_duration("15m", &v) == 0 && v == 900);
        CHECK(parse_duration("12h", &v) == 0 && v == 43200);
        CHECK(parse_duration("30d", &v) == 0 && v == 2592000);
        CHECK(parse_duration("", &v) == -EINVAL);
        CHECK(parse_duration("1w", &v) == -EINVAL);
        CHECK(parse_duration("1hh", &v) == -EINVAL);
        CHECK(parse_duration("-1", &v) == -EINVAL);
        CHECK(parse_duration("99999999999999999999d", &v) < 0);
}

TEST(name_validation)
{
        CHECK(name_is_valid("dev"));
        CHECK(name_is_valid("a-1"));
        CHECK(!name_is_valid(""));
        CHECK(!name_is_valid("-a"));
        CHECK(!name_is_valid("a-"));
        CHECK(!name_is_valid("A"));
        CHECK(!name_is_valid("a/b"));
        CHECK(!name_is_valid("../x"));
        CHECK(!name_is_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

TEST(pc_error_first_wins)
{
        _cleanup_pc_error_ pc_error *e = NULL;

        CHECK(pc_error_setf(&e, ENOENT, "not_found", "sandbox \"%s\" does not exist", "x") == -ENOENT);
        CHECK(pc_error_setf(&e, EINVAL, "other", "ignored") == -EINVAL);
        CHECK_STREQ(e->code, "not_found");
        CHECK_STREQ(e->message, "sandbox \"x\" does not exist");
        CHECK(pc_error_setf(NULL, EPERM, "x", "y") == -EPERM);
}

TEST(file_roundtrip)
{
        char dir[] = "/tmp/pc-test-XXXXXX";
        _cleanup_free_ char *path = NULL, *data = NULL;
        size_t n = 0;

        CHECK(mkdtemp(dir) != NULL);
        path = strjoin(dir, "/a/b/c");
        CHECK(mkdir_p(path, 0755) == 0);
        free(path);
        path = strjoin(dir, "/a/file");
        CHECK(write_file_atomic(path, "hello", 5, 0600) == 0);
        CHECK(read_full_file(path, 100, &data, &n) == 0);
        CHECK(n == 5 && memcmp(data, "hello", 5) == 0);
        CHECK(read_full_file(path, 2, &(char *){ NULL }, NULL) == -EFBIG);
        _cleanup_free_ char *rm = strjoin("rm -rf ", dir);
        CHECK(system(rm) == 0);
}

TAP_MAIN()
