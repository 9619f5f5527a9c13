/* SPDX-License-Identifier: MIT */
/* libFuzzer target: any bytes as pocketcoderd's config file, parsed over the defaults as the daemon does
 * (a NUL byte is an error, not the end of the file), then checked with pc_config_validate(). Besides
 * memory safety it checks the contract: a refused file names fuzz.conf:LINE and changes nothing, and an
 * accepted one holds only values its keys allow. */

#include "daemon-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool config_equal(const pc_config *a, const pc_config *b)
{
        return streq_ptr(a->config_path, b->config_path) && streq_ptr(a->policy_dir, b->policy_dir) &&
               streq_ptr(a->state_dir, b->state_dir) && streq_ptr(a->runtime_dir, b->runtime_dir) &&
               streq_ptr(a->listen, b->listen) && a->allow_remote_listen == b->allow_remote_listen &&
               streq_ptr(a->socket_group, b->socket_group) && a->max_body_size == b->max_body_size &&
               a->api_threads == b->api_threads && a->log_level == b->log_level &&
               streq_ptr(a->log_file, b->log_file) && streq_ptr(a->pid_file, b->pid_file) &&
               streq_ptr(a->egress_subnet, b->egress_subnet) &&
               streq_ptr(a->cgroup_parent, b->cgroup_parent) && streq_ptr(a->nft_table, b->nft_table) &&
               a->uid_range_base == b->uid_range_base && a->nofile_max == b->nofile_max &&
               a->cpu_weight == b->cpu_weight;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_pc_error_ pc_error *e = NULL, *ve = NULL;
        pc_config c, defaults;
        int r;

        pc_config_init(&c);
        pc_config_init(&defaults);
        r = pc_config_parse(&c, "fuzz.conf", (const char *) data, size, &e);
        if (r < 0) {
                if (r != -ENOMEM && (!e || !startswith(e->message, "config fuzz.conf:")))
                        abort();
                if (!config_equal(&c, &defaults))
                        abort();
        } else {
                if (e || memchr(data, 0, size))
                        abort();
                if (c.max_body_size < 1024 || c.max_body_size > (64u << 20) || c.api_threads > 64 ||
                    c.uid_range_base % 65536 != 0 || !name_is_valid(c.cgroup_parent) ||
                    isempty(c.nft_table) || c.log_level < LOG_LEVEL_ERR || c.log_level > LOG_LEVEL_DEBUG ||
                    c.nofile_max < 64 || c.nofile_max > 1048576 || c.cpu_weight < 1 || c.cpu_weight > 10000)
                        abort();
                r = pc_config_validate(&c, &ve);
                if ((r < 0) != !!ve)
                        abort();
        }
        pc_config_done(&defaults);
        pc_config_done(&c);
        return 0;
}
