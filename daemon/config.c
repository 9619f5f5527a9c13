/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <ctype.h>

#include "daemon-internal.h"
#include "isolate.h"

void pc_config_init(pc_config *c)
{
        *c = (pc_config){
                .config_path = strdup(PC_DEFAULT_CONFIG),
                .policy_dir = strdup(PC_DEFAULT_POLICY_DIR),
                .state_dir = strdup(PC_DEFAULT_STATE_DIR),
                .runtime_dir = strdup(PC_DEFAULT_RUNTIME_DIR),
                .socket_group = strdup("pocketcoder"),
                .max_body_size = 1024 * 1024,
                .http_idle_timeout = 120,
                .tcp_max_connections = 1024,
                .tcp_max_connections_per_address = 128,
                .tcp_auth_timeout = 10,
                .events_keep = 10000,
                .state_sync = PC_STATE_SYNC_NORMAL,
                .exec_output_max = 16u << 20,
                .log_level = LOG_LEVEL_INFO,
                .egress_subnet = strdup("10.88.0.0/16"),
                .cgroup_parent = strdup("pocketcoder"),
                .nft_table = strdup("pocketcoder"),
                /* Far above /etc/subuid's usual 100000+ ranges and below systemd's dynamic container range
                 * (0x70000000): 0x40000000 + n * 65536. */
                .uid_range_base = 0x40000000,
                .nofile_max = 4096, /* ISOLATE_NOFILE_DEFAULT */
                .cpu_weight = 100,
                .files_max_upload = 1ULL << 30,
                .sandbox_disk = 10ULL << 30,
                .state_reserve = 1ULL << 30,
                .permission_timeout = 600,
                .exec_ready_windows = 1,
                .ssh_socket = strdup("/run/pocketcoder-ssh.sock"),
                .ssh_group = strdup("pocketcoder-ssh"),
                .events_keepalive = 15,
                .webhook_timeout = 10,
                .webhook_retry_min = 5,
                .webhook_retry_max = 600,
                .webhook_max_attempts = 20,
                .webhook_deliveries_keep = 10000,
                /* The relay is the phone's path: what a person decides on and follows. */
                .webhook_relay_events = strdup(WEBHOOK_RELAY_EVENTS),
                .webhook_admin_events = strdup("*"),
        };
}

void pc_config_done(pc_config *c)
{
        free(c->config_path);
        free(c->policy_dir);
        free(c->state_dir);
        free(c->runtime_dir);
        free(c->listen);
        free(c->socket_group);
        free(c->log_file);
        free(c->pid_file);
        free(c->egress_subnet);
        free(c->egress_allow);
        free(c->cgroup_parent);
        free(c->nft_table);
        free(c->ssh_socket);
        free(c->ssh_group);
        free(c->webhook_relay);
        free(c->webhook_admin);
        free(c->webhook_relay_events);
        free(c->webhook_admin_events);
        if (c->webhook_secret)
                explicit_bzero_safe(c->webhook_secret, strlen(c->webhook_secret));
        free(c->webhook_secret);
        *c = (pc_config){};
}

static int set_string(char **field, const char *value)
{
        char *s = strdup(value);
        if (!s)
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

static const char *const state_sync_table[_PC_STATE_SYNC_MAX] = {
        [PC_STATE_SYNC_NORMAL] = "normal",
        [PC_STATE_SYNC_FULL] = "full",
};

const char *pc_state_sync_to_string(pc_state_sync s)
{
        return s >= 0 && s < _PC_STATE_SYNC_MAX ? state_sync_table[s] : NULL;
}

static int parse_log_level(const char *s)
{
        static const struct {
                const char *name;
                int level;
        } levels[] = {
                { "error", LOG_LEVEL_ERR }, { "warning", LOG_LEVEL_WARNING }, { "notice", LOG_LEVEL_NOTICE },
                { "info", LOG_LEVEL_INFO }, { "debug", LOG_LEVEL_DEBUG },
        };
        for (size_t i = 0; i < ELEMENTSOF(levels); i++)
                if (streq(s, levels[i].name))
                        return levels[i].level;
        return -EINVAL;
}

/* The keys that take a number in a range, and where it goes (an unsigned or a uint64_t). */
#define NUMBER_KEY(k, lo, hi, why) { #k, offsetof(pc_config, k), sizeof(((pc_config *) 0)->k), lo, hi, why }
static const struct number_key {
        const char *key;
        size_t offset, size;
        uint64_t min, max;
        const char *why;
} number_keys[] = {
        NUMBER_KEY(api_threads, 0, 64, "expected a number from 0 (one per CPU) to 64"),
        NUMBER_KEY(http_idle_timeout, 1, 3600, "expected seconds from 1 to 3600"),
        NUMBER_KEY(tcp_auth_timeout, 1, 3600, "expected seconds from 1 to 3600"),
        NUMBER_KEY(tcp_max_connections, 1, 65536, "expected a number of connections from 1 to 65536"),
        NUMBER_KEY(tcp_max_connections_per_address, 1, 65536, "expected a number of connections from 1 to 65536"),
        NUMBER_KEY(events_keep, 1, 10000000, "expected a number of events from 1 to 10000000"),
        NUMBER_KEY(nofile_max, 64, 1048576, "expected a number of open files from 64 to 1048576"),
        NUMBER_KEY(cpu_weight, 1, 10000, "expected a weight from 1 to 10000 (100 is the kernel's default)"),
        NUMBER_KEY(sandbox_inodes, 0, UINT32_MAX, "expected a number of files up to 4294967295 (0: one per 16K of disk)"),
        NUMBER_KEY(permission_timeout, 10, 604800, "expected seconds from 10 to 604800 (a week)"),
        NUMBER_KEY(exec_ready_windows, 0, 16, "expected a number of windows from 0 to 16"),
        NUMBER_KEY(events_keepalive, 1, 3600, "expected seconds from 1 to 3600"),
        NUMBER_KEY(webhook_timeout, 1, 600, "expected seconds from 1 to 600"),
        NUMBER_KEY(webhook_retry_min, 1, 86400, "expected seconds from 1 to 86400"),
        NUMBER_KEY(webhook_retry_max, 1, 86400, "expected seconds from 1 to 86400"),
        NUMBER_KEY(webhook_max_attempts, 1, 1000, "expected a number of attempts from 1 to 1000"),
        NUMBER_KEY(webhook_deliveries_keep, 1, 10000000, "expected a number of deliveries from 1 to 10000000"),
};

static int apply_number_key(pc_config *c, const struct number_key *k, const char *value, const char **ret_why)
{
        uint64_t u;

        if (parse_uint64(value, &u) < 0 || u < k->min || u > k->max) {
                *ret_why = k->why;
                return -EINVAL;
        }
        if (k->size == sizeof(unsigned))
                *(unsigned *) ((char *) c + k->offset) = (unsigned) u;
        else
                *(uint64_t *) ((char *) c + k->offset) = u;
        return 0;
}

/* One table of keys keeps the file format, the error message and docs/config.md in step. */
static int apply_key(pc_config *c, const char *key, const char *value, const char **ret_why, size_t *ret_offset)
{
        uint64_t u;
        bool b;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(number_keys); i++)
                if (streq(key, number_keys[i].key))
                        return apply_number_key(c, &number_keys[i], value, ret_why);
        if (streq(key, "webhook_relay") || streq(key, "webhook_admin")) {
                char **field = streq(key, "webhook_relay") ? &c->webhook_relay : &c->webhook_admin;

                if (isempty(value)) { /* none */
                        free(*field);
                        *field = NULL;
                        return 0;
                }
                if ((!startswith(value, "http://") && !startswith(value, "https://")) ||
                    strcspn(value, " \t\r\n\"\\") != strlen(value) || strlen(value) > 2048) {
                        *ret_why = "expected an http:// or https:// URL without blanks (up to 2048 bytes)";
                        return -EINVAL;
                }
                return set_string(field, value);
        }
        /* Checked against the event types when the webhooks start (webhooks.c). */
        if (streq(key, "webhook_relay_events") || streq(key, "webhook_admin_events")) {
                if (isempty(value) || strlen(value) > 1024) {
                        *ret_why = "expected a comma-separated list of event types and prefixes such as "
                                   "\"exec.*, permission.*\"";
                        return -EINVAL;
                }
                return set_string(streq(key, "webhook_relay_events") ? &c->webhook_relay_events
                                                                     : &c->webhook_admin_events,
                                  value);
        }
        if (streq(key, "webhook_secret")) {
                if (strlen(value) < 16) {
                        *ret_why = "expected a secret of at least 16 characters";
                        return -EINVAL;
                }
                return set_string(&c->webhook_secret, value);
        }
        if (streq(key, "policy_dir"))
                return set_string(&c->policy_dir, value);
        if (streq(key, "state_dir"))
                return set_string(&c->state_dir, value);
        if (streq(key, "runtime_dir"))
                return set_string(&c->runtime_dir, value);
        if (streq(key, "socket_group"))
                return set_string(&c->socket_group, value);
        if (streq(key, "cgroup_parent")) {
                /* Every group under it that no sandbox owns is removed at start: two daemons on one host
                 * need different parents. */
                if (!name_is_valid(value)) {
                        *ret_why = "expected a group name of lowercase letters, digits and '-'";
                        return -EINVAL;
                }
                return set_string(&c->cgroup_parent, value);
        }
        if (streq(key, "nft_table")) {
                /* nft's bare identifiers: no '-'. */
                if (isempty(value) || strlen(value) > 64 || strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(value)) {
                        *ret_why = "expected a table name of lowercase letters, digits and '_'";
                        return -EINVAL;
                }
                return set_string(&c->nft_table, value);
        }
        if (streq(key, "egress_subnet"))
                return set_string(&c->egress_subnet, value);
        if (streq(key, "egress_allow")) {
                /* Ranges of the default-blocked ones (LAN, link-local, ...) egress sandboxes may reach. */
                r = isolate_net_prefix_list_check(value, ret_offset, ret_why);
                if (r < 0)
                        return r;
                if (isempty(value)) {
                        c->egress_allow = (free(c->egress_allow), NULL);
                        return 0;
                }
                return set_string(&c->egress_allow, value);
        }
        if (streq(key, "uid_range_base")) {
                if (parse_uint64(value, &u) < 0 || u < 65536 || u > 0xF0000000ULL || u % 65536 != 0) {
                        *ret_why = "expected a multiple of 65536 between 65536 and 4026531840";
                        return -EINVAL;
                }
                c->uid_range_base = u;
                return 0;
        }
        if (streq(key, "sandbox_disk")) {
                /* Sizes are stored as signed 64-bit integers (sqlite, JSON). */
                if (streq(value, "none"))
                        u = 0;
                else if (parse_size(value, &u) < 0 || (u != 0 && u < ISOLATE_DISK_MIN) || u > INT64_MAX) {
                        *ret_why = "expected a size of at least 16M such as 10G, or none";
                        return -EINVAL;
                }
                c->sandbox_disk = u;
                return 0;
        }
        if (streq(key, "state_reserve")) {
                size_t n = strlen(value);

                if (n > 1 && value[n - 1] == '%') {
                        if (parse_uint64(strndupa(value, n - 1), &u) < 0 || u > 90) {
                                *ret_why = "expected a percentage from 0% to 90%, or a size such as 1G";
                                return -EINVAL;
                        }
                        c->state_reserve_percent = (unsigned) u;
                        c->state_reserve = 0;
                        return 0;
                }
                if (parse_size(value, &u) < 0 || u > INT64_MAX) {
                        *ret_why = "expected a size such as 1G, or a percentage such as 5%";
                        return -EINVAL;
                }
                c->state_reserve = u;
                c->state_reserve_percent = 0;
                return 0;
        }
        if (streq(key, "log_file"))
                return set_string(&c->log_file, value);
        if (streq(key, "listen")) {
                if (isempty(value) || streq(value, "none")) {
                        c->listen = (free(c->listen), NULL);
                        return 0;
                }
                return set_string(&c->listen, value);
        }
        if (streq(key, "allow_remote_listen") || streq(key, "require_signed_approvals")) {
                if (parse_bool(value, &b) < 0) {
                        *ret_why = "expected yes or no";
                        return -EINVAL;
                }
                *(streq(key, "allow_remote_listen") ? &c->allow_remote_listen : &c->require_signed_approvals) = b;
                return 0;
        }
        if (streq(key, "max_body_size")) {
                if (parse_size(value, &u) < 0 || u < 1024 || u > (64ULL << 20)) {
                        *ret_why = "expected a size between 1K and 64M";
                        return -EINVAL;
                }
                c->max_body_size = u;
                return 0;
        }
        if (streq(key, "exec_output_max")) {
                if (parse_size(value, &u) < 0 || u < 1024 || u > (1ULL << 30)) {
                        *ret_why = "expected a size between 1K and 1G";
                        return -EINVAL;
                }
                c->exec_output_max = u;
                return 0;
        }
        if (streq(key, "ssh_socket")) {
                /* The SSH login's gateway: not in runtime_dir, which only the admins' group may enter. */
                if (isempty(value) || streq(value, "none")) {
                        c->ssh_socket = (free(c->ssh_socket), NULL);
                        return 0;
                }
                if (value[0] != '/') {
                        *ret_why = "expected an absolute path, or none";
                        return -EINVAL;
                }
                return set_string(&c->ssh_socket, value);
        }
        if (streq(key, "ssh_group"))
                return set_string(&c->ssh_group, value);
        if (streq(key, "files_max_upload")) {
                if (parse_size(value, &u) < 0 || u < 1024 || u > INT64_MAX) {
                        *ret_why = "expected a size of at least 1K such as 1G";
                        return -EINVAL;
                }
                c->files_max_upload = u;
                return 0;
        }
        if (streq(key, "state_sync")) {
                for (size_t i = 0; i < _PC_STATE_SYNC_MAX; i++)
                        if (streq(value, state_sync_table[i])) {
                                c->state_sync = (pc_state_sync) i;
                                return 0;
                        }
                *ret_why = "expected normal (commits reach the disk within a second) or full (before each "
                           "commit returns)";
                return -EINVAL;
        }
        if (streq(key, "log_level")) {
                r = parse_log_level(value);
                if (r < 0) {
                        *ret_why = "expected error, warning, notice, info or debug";
                        return r;
                }
                c->log_level = r;
                return 0;
        }
        *ret_why = "unknown key (expected listen, allow_remote_listen, policy_dir, state_dir, runtime_dir, "
                   "socket_group, max_body_size, api_threads, http_idle_timeout, tcp_max_connections, "
                   "tcp_max_connections_per_address, tcp_auth_timeout, events_keep, state_sync, log_level, log_file, "
                   "egress_subnet, egress_allow, uid_range_base, cgroup_parent, nft_table, nofile_max, cpu_weight, "
                   "sandbox_disk, sandbox_inodes, state_reserve, exec_output_max, exec_ready_windows, "
                   "permission_timeout, "
                   "require_signed_approvals, ssh_socket, ssh_group, files_max_upload, events_keepalive, webhook_relay, "
                   "webhook_admin, webhook_relay_events, webhook_admin_events, webhook_secret, webhook_timeout, "
                   "webhook_retry_min, webhook_retry_max, webhook_max_attempts, webhook_deliveries_keep)";
        return -ENOKEY;
}

int pc_config_apply(pc_config *c, const char *key, const char *value, pc_error **reterr)
{
        const char *why = NULL;
        size_t off = 0;
        int r = apply_key(c, key, value, &why, &off);

        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return pc_error_setf(reterr, EINVAL, "invalid_config", "\"%s\": %s", value, why);
        return 0;
}

/* One pass over the lines of TEXT, applying each key to *c as it comes. */
static int parse_lines(pc_config *c, const char *origin, const char *text, size_t len, pc_error **reterr)
{
        _cleanup_free_ char *data = malloc(len + 1);
        char *p, *next, *end;
        unsigned line = 0;
        int r;

        if (!data)
                return -ENOMEM;
        memcpy(data, text, len);
        data[len] = 0;
        end = data + len;
        for (p = data; p; p = next) {
                const char *why = NULL;
                size_t off = SIZE_MAX;
                char *eq, *key, *value;

                line++;
                next = memchr(p, '\n', end - p);
                /* A NUL would silently cut the line short: the file is text, or it is refused. */
                if (memchr(p, 0, (next ?: end) - p))
                        return pc_error_setf(reterr, EINVAL, "invalid_config",
                                             "config %s:%u: NUL byte (a config file is text)", origin, line);
                if (next)
                        *next++ = 0;
                if (strchr(p, '#'))
                        *strchr(p, '#') = 0;
                key = strstrip(p);
                if (*key == 0)
                        continue;
                eq = strchr(key, '=');
                if (!eq)
                        return pc_error_setf(reterr, EINVAL, "invalid_config",
                                             "config %s:%u: expected \"key = value\", got \"%s\"", origin, line,
                                             key);
                *eq = 0;
                value = strstrip(eq + 1);
                key = strstrip(key);
                /* Allow "value" quoting for paths with spaces. */
                size_t vl = strlen(value);
                if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
                        value[vl - 1] = 0;
                        value++;
                }
                r = apply_key(c, key, value, &why, &off);
                if (r == -ENOMEM)
                        return r;
                /* Values that are lists say where in the line the bad entry starts. */
                if (r < 0 && off != SIZE_MAX)
                        return pc_error_setf(reterr, EINVAL, "invalid_config",
                                             "config %s:%u:%zu: value for \"%s\": %s", origin, line,
                                             (size_t) (value - p) + off + 1, key, why);
                if (r < 0)
                        return pc_error_setf(reterr, EINVAL, "invalid_config", "config %s:%u: %s \"%s\": %s",
                                             origin, line, r == -ENOKEY ? "key" : "value for", key, why);
        }
        return 0;
}

int pc_config_parse(pc_config *c, const char *origin, const char *text, size_t len, pc_error **reterr)
{
        pc_config scratch;
        int r;

        /* Every line is checked against a scratch config first, so a bad file changes nothing in *c
         * (no key's validity depends on another's). */
        pc_config_init(&scratch);
        r = parse_lines(&scratch, origin, text, len, reterr);
        pc_config_done(&scratch);
        if (r < 0)
                return r;
        return parse_lines(c, origin, text, len, reterr);
}

int pc_config_load(pc_config *c, const char *path, bool must_exist, pc_error **reterr)
{
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        int r;

        r = read_full_file(path, 1024 * 1024, &data, &size);
        if (r == -ENOENT && !must_exist)
                return 0;
        if (r < 0)
                return pc_error_setf(reterr, -r, "config_unreadable", "config %s: cannot read: %s", path,
                                     strerror(-r));
        return pc_config_parse(c, path, data, size, reterr);
}

/* Splits "ADDR:PORT" or "[V6]:PORT". */
static int parse_listen(const char *s, char *addr, size_t n, unsigned *ret_port)
{
        const char *colon;
        uint64_t port;

        if (s[0] == '[') {
                const char *end = strchr(s, ']');
                if (!end || end[1] != ':' || (size_t) (end - s - 1) >= n)
                        return -EINVAL;
                memcpy(addr, s + 1, end - s - 1);
                addr[end - s - 1] = 0;
                colon = end + 1;
        } else {
                colon = strrchr(s, ':');
                if (!colon || (size_t) (colon - s) >= n)
                        return -EINVAL;
                memcpy(addr, s, colon - s);
                addr[colon - s] = 0;
        }
        if (parse_uint64(colon + 1, &port) < 0 || port > 65535)
                return -EINVAL;
        *ret_port = (unsigned) port;
        return 0;
}

int pc_listen_address(const char *listen, struct sockaddr_storage *ret, socklen_t *ret_len, bool *ret_loopback)
{
        char addr[INET6_ADDRSTRLEN + 1];
        unsigned port;
        struct sockaddr_in *in = (struct sockaddr_in *) ret;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ret;

        if (parse_listen(listen, addr, sizeof(addr), &port) < 0)
                return -EINVAL;
        memset(ret, 0, sizeof(*ret));
        if (streq(addr, "localhost"))
                strcpy(addr, "127.0.0.1");
        if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
                in->sin_family = AF_INET;
                in->sin_port = htons(port);
                *ret_len = sizeof(*in);
                *ret_loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
                return 0;
        }
        if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(port);
                *ret_len = sizeof(*in6);
                *ret_loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
                return 0;
        }
        return -EINVAL;
}

int pc_config_validate(const pc_config *c, pc_error **reterr)
{
        struct sockaddr_storage ss;
        socklen_t len;
        bool loopback;

        if (c->listen) {
                if (pc_listen_address(c->listen, &ss, &len, &loopback) < 0)
                        return pc_error_setf(reterr, EINVAL, "invalid_config",
                                             "listen \"%s\": expected ADDRESS:PORT with a numeric IPv4 or "
                                             "[IPv6] address, e.g. 127.0.0.1:7300",
                                             c->listen);
                if (!loopback && !c->allow_remote_listen)
                        return pc_error_setf(reterr, EPERM, "invalid_config",
                                             "listen \"%s\" is not a loopback address; the API would be "
                                             "reachable from the network. Set \"allow_remote_listen = yes\" "
                                             "in the config to allow it",
                                             c->listen);
        }
        for (const char *const *p = (const char *const[]){ c->policy_dir, c->state_dir, c->runtime_dir, NULL };
             *p; p++)
                if (**p != '/')
                        return pc_error_setf(reterr, EINVAL, "invalid_config",
                                             "path \"%s\" must be absolute", *p);
        if ((c->webhook_relay || c->webhook_admin) && !c->webhook_secret)
                return pc_error_setf(reterr, EINVAL, "invalid_config",
                                     "a webhook URL is set but no webhook_secret: receivers could not verify "
                                     "that a delivery comes from this daemon");
        if (c->webhook_retry_min > c->webhook_retry_max)
                return pc_error_setf(reterr, EINVAL, "invalid_config",
                                     "webhook_retry_min (%u s) is above webhook_retry_max (%u s)",
                                     c->webhook_retry_min, c->webhook_retry_max);
        return 0;
}
