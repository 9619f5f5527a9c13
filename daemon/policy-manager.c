/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "daemon-internal.h"
#include "policies.h"
#include "policy-manager-internal.h"
#include "requests-internal.h"

typedef struct loaded_policy {
        char *name;
        char *path;          /* NULL for an embedded policy */
        pc_policy *policy;   /* last good version; NULL if it never loaded */
        char hash[65];       /* of the last good version */
        uint64_t loaded_at;  /* realtime usec of the last good load */
        char *errors;        /* compiler-style errors of the latest attempt; NULL when it loaded */
        uint64_t failed_at;
        bool seen;           /* scratch for reload: still present */
} loaded_policy;

struct pc_policy_manager {
        pthread_mutex_t lock; /* guards everything below; decisions take a reference and run unlocked */
        char *dir;
        int inotify_fd;
        loaded_policy *items;
        size_t n_items;
};

static void loaded_policy_done(loaded_policy *l)
{
        free(l->name);
        free(l->path);
        pc_policy_free(l->policy);
        free(l->errors);
        *l = (loaded_policy){};
}

static loaded_policy *find(pc_policy_manager *m, const char *name)
{
        for (size_t i = 0; i < m->n_items; i++)
                if (streq(m->items[i].name, name))
                        return &m->items[i];
        return NULL;
}

static loaded_policy *find_or_add(pc_policy_manager *m, const char *name)
{
        loaded_policy *l = find(m, name), *n;

        if (l)
                return l;
        n = realloc(m->items, (m->n_items + 1) * sizeof(*n));
        if (!n)
                return NULL;
        m->items = n;
        l = &m->items[m->n_items];
        *l = (loaded_policy){ .name = strdup(name) };
        if (!l->name)
                return NULL;
        m->n_items++;
        return l;
}

/* Applies one load attempt: a good policy replaces the old one; a bad one keeps it and records why. */
static int apply(loaded_policy *l, const char *path, int r, pc_policy *p, char *errors)
{
        char hash[65];
        size_t len;
        const char *src;

        if (r < 0) {
                free(l->errors);
                l->errors = errors ?: strdup(strerror(-r));
                l->failed_at = now_usec(CLOCK_REALTIME);
                log_warning("policy %s: %s%s", path ?: l->name, l->policy ? "keeping the last good version: " : "",
                            l->errors ?: "");
                return 0;
        }
        src = pc_policy_source(p, &len);
        if (pc_sha256_hex(src, len, hash) < 0 || pc_policy_set_hash(p, hash) < 0) {
                pc_policy_free(p);
                return -ENOMEM;
        }
        l->errors = (free(l->errors), NULL);
        if (l->policy && streq(l->hash, hash) && streq_ptr(l->path, path)) {
                pc_policy_free(p); /* unchanged: keep load time */
                return 0;
        }
        pc_policy_free(l->policy);
        l->policy = p;
        memcpy(l->hash, hash, sizeof(hash));
        l->loaded_at = now_usec(CLOCK_REALTIME);
        free(l->path);
        l->path = path ? strdup(path) : NULL;
        log_info("policy %s loaded from %s (%zu rules, sha256 %.12s)", l->name, path ?: "embedded defaults",
                 pc_policy_n_rules(p), hash);
        return 1;
}

static bool policy_file_name(const char *fn, char *name, size_t n)
{
        size_t len = strlen(fn);

        if (len <= STRLEN(".policy") || !streq(fn + len - STRLEN(".policy"), ".policy") || fn[0] == '.')
                return false;
        len -= STRLEN(".policy");
        if (len >= n)
                return false;
        memcpy(name, fn, len);
        name[len] = 0;
        return name_is_valid(name);
}

int pc_policy_manager_reload(pc_policy_manager *m)
{
        _cleanup_(closedirp) DIR *dir = NULL;
        struct dirent *de;
        int changed = 0, r;
        LOCK_GUARD(&m->lock);

        for (size_t i = 0; i < m->n_items; i++)
                m->items[i].seen = false;

        dir = opendir(m->dir);
        if (!dir && errno != ENOENT)
                log_warning_errno(errno, "cannot read policy directory %s: %m, ignoring", m->dir);
        while (dir && (de = readdir(dir))) {
                _cleanup_free_ char *path = NULL;
                char name[64];
                pc_policy *p = NULL;
                char *errors = NULL;
                loaded_policy *l;

                if (!policy_file_name(de->d_name, name, sizeof(name)))
                        continue;
                path = strjoin(m->dir, "/", de->d_name);
                l = path ? find_or_add(m, name) : NULL;
                if (!l)
                        return -ENOMEM;
                l->seen = true;
                r = pc_policy_load_file(path, &p, &errors);
                r = apply(l, path, r, p, errors);
                if (r < 0)
                        return r;
                changed += r;
        }
        /* Embedded defaults fill in the names no file provides. */
        for (const pc_embedded_policy *e = pc_embedded_policies; e->name; e++) {
                loaded_policy *l = find(m, e->name);
                pc_policy *p = NULL;
                char *errors = NULL;

                if (l && l->seen)
                        continue;
                if (!(l = find_or_add(m, e->name)))
                        return -ENOMEM;
                l->seen = true;
                r = pc_policy_load_string(e->name, NULL, e->text, e->len, &p, &errors);
                r = apply(l, NULL, r, p, errors);
                if (r < 0)
                        return r;
                changed += r;
        }
        for (size_t i = 0; i < m->n_items;) {
                if (m->items[i].seen) {
                        i++;
                        continue;
                }
                log_info("policy %s removed (its file is gone)", m->items[i].name);
                loaded_policy_done(&m->items[i]);
                m->items[i] = m->items[--m->n_items];
                changed++;
        }
        return changed;
}

int pc_policy_manager_new(const char *dir, pc_policy_manager **ret)
{
        pc_policy_manager *m = calloc(1, sizeof(*m));

        if (!m)
                return -ENOMEM;
        mutex_init_recursive(&m->lock);
        m->dir = strdup(dir);
        m->inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (!m->dir) {
                pc_policy_manager_free(m);
                return -ENOMEM;
        }
        /* Editors save by writing in place (CLOSE_WRITE) or by renaming a temp file (MOVED_TO). */
        if (m->inotify_fd < 0 ||
            inotify_add_watch(m->inotify_fd, dir,
                              IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR) < 0) {
                log_warning_errno(errno, "cannot watch %s for changes: %m; reload with SIGHUP instead", dir);
                m->inotify_fd = safe_close(m->inotify_fd);
        }
        *ret = m;
        return 0;
}

pc_policy_manager *pc_policy_manager_free(pc_policy_manager *m)
{
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_items; i++)
                loaded_policy_done(&m->items[i]);
        free(m->items);
        free(m->dir);
        safe_close(m->inotify_fd);
        pthread_mutex_destroy(&m->lock);
        free(m);
        return NULL;
}

int pc_policy_manager_inotify_fd(pc_policy_manager *m)
{
        return m->inotify_fd;
}

int pc_policy_manager_process_inotify(pc_policy_manager *m)
{
        union {
                struct inotify_event ev;
                char buf[4096];
        } u;
        int due = 0;

        for (;;) {
                ssize_t k = read(m->inotify_fd, &u, sizeof(u));
                if (k < 0)
                        return errno == EAGAIN ? due : -errno;
                for (char *p = u.buf; p < u.buf + k;) {
                        struct inotify_event *e = (struct inotify_event *) p;
                        char name[64];

                        if (e->len > 0 && policy_file_name(e->name, name, sizeof(name)))
                                due = 1;
                        p += sizeof(*e) + e->len;
                }
        }
}

static json_t *policy_json(const loaded_policy *l, bool with_source)
{
        json_t *j = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}", "name", l->name, "path",
                              l->path ? json_string(l->path) : json_null(), "hash",
                              l->policy ? json_string(l->hash) : json_null(), "loaded_at",
                              l->policy ? json_integer((json_int_t) (l->loaded_at / 1000000)) : json_null(),
                              "errors", l->errors ? json_string(l->errors) : json_null(), "failed_at",
                              l->errors ? json_integer((json_int_t) (l->failed_at / 1000000)) : json_null());
        if (!j)
                return NULL;
        json_object_set_new(j, "rules", l->policy ? json_integer((json_int_t) pc_policy_n_rules(l->policy)) : json_null());
        json_object_set_new(j, "tests", l->policy ? json_integer((json_int_t) pc_policy_n_tests(l->policy)) : json_null());
        json_object_set_new(j, "default",
                            l->policy ? json_string(pc_decision_to_string(pc_policy_default(l->policy))) : json_null());
        if (with_source) {
                size_t len = 0;
                const char *src = l->policy ? pc_policy_source(l->policy, &len) : NULL;
                json_object_set_new(j, "source", src ? json_stringn(src, len) : json_null());
        }
        return j;
}

static int list_locked(pc_policy_manager *m, json_t **ret)
{
        json_t *arr = json_array();

        if (!arr)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_items; i++)
                json_array_append_new(arr, policy_json(&m->items[i], false));
        *ret = json_pack("{s:o}", "policies", arr);
        return *ret ? 0 : -ENOMEM;
}

int pc_policies_list(pc_daemon *d, json_t **ret)
{
        LOCK_GUARD(&d->policies->lock);
        return list_locked(d->policies, ret);
}

int pc_policies_reload(pc_daemon *d, json_t **ret)
{
        LOCK_GUARD(&d->policies->lock);
        int r = pc_daemon_reload_policies(d, "api");

        if (r < 0)
                return r;
        return list_locked(d->policies, ret);
}

int pc_policies_show(pc_daemon *d, const char *name, json_t **ret, pc_error **reterr)
{
        LOCK_GUARD(&d->policies->lock);
        loaded_policy *l = find(d->policies, name);

        if (!l)
                return pc_error_setf(reterr, ENOENT, "not_found", "policy \"%s\" does not exist (see GET /v1/policies)",
                                     name);
        *ret = policy_json(l, true);
        return *ret ? 0 : -ENOMEM;
}

static json_t *str_or_null(const char *s)
{
        return s ? json_string(s) : json_null();
}

json_t *pc_verdict_to_json(const pc_verdict *v)
{
        _cleanup_free_ char *text = NULL;
        json_t *cmds = json_array(), *redirs = json_array(), *notes = json_array();

        for (size_t i = 0; i < v->n_commands; i++) {
                const pc_verdict_command *c = &v->commands[i];
                json_t *argv = json_array();
                for (size_t k = 0; k < c->argc; k++)
                        json_array_append_new(argv, json_string(c->argv[k]));
                json_array_append_new(cmds, json_pack("{s:o, s:s, s:o, s:o, s:o, s:o}", "argv", argv, "decision",
                                                      pc_decision_to_string(c->decision), "rule",
                                                      str_or_null(c->rule), "rule_text", str_or_null(c->rule_text),
                                                      "reason", str_or_null(c->reason), "via", str_or_null(c->via)));
        }
        for (size_t i = 0; i < v->n_redirects; i++) {
                const pc_verdict_redirect *r = &v->redirects[i];
                json_array_append_new(redirs, json_pack("{s:s, s:s, s:b, s:b, s:s, s:o, s:o}", "op", r->op, "path",
                                                        r->path, "literal", r->literal, "output", r->output,
                                                        "decision", pc_decision_to_string(r->decision), "rule",
                                                        str_or_null(r->rule), "reason", str_or_null(r->reason)));
        }
        for (size_t i = 0; i < v->n_notes; i++)
                json_array_append_new(notes, json_string(v->notes[i]));
        (void) pc_verdict_format(v, &text);
        /* the lists stop at PC_VERDICT_ENTRIES_MAX entries; the decision covers the omitted ones too */
        return json_pack("{s:s, s:{s:s, s:o}, s:b, s:o, s:o, s:o, s:o, s:{s:I, s:I, s:I}}", "decision",
                         pc_decision_to_string(v->decision), "policy", "name", v->policy_name, "hash",
                         str_or_null(v->policy_hash), "complete", v->complete, "commands", cmds, "redirects",
                         redirs, "notes", notes, "explanation", str_or_null(text), "omitted", "commands",
                         (json_int_t) v->n_commands_omitted, "redirects", (json_int_t) v->n_redirects_omitted,
                         "notes", (json_int_t) v->n_notes_omitted);
}

/* A reference to the policy NAME as loaded now: a reload may replace it while a decision runs on it. */
static int snapshot(pc_daemon *d, const char *name, pc_policy **ret, pc_error **reterr)
{
        LOCK_GUARD(&d->policies->lock);
        loaded_policy *l = find(d->policies, name);

        if (!l)
                return pc_error_setf(reterr, ENOENT, "not_found", "policy \"%s\" does not exist", name);
        if (!l->policy)
                return pc_error_setf(reterr, EBADMSG, "invalid_policy",
                                     "policy \"%s\" has never loaded cleanly, so nothing is decided under it: %s",
                                     name, l->errors ?: "");
        *ret = pc_policy_ref(l->policy);
        return 0;
}

int pc_policies_decide_command(pc_daemon *d, const char *name, const char *command, size_t len,
                               pc_verdict **ret, pc_error **reterr)
{
        _cleanup_pc_policy_ pc_policy *p = NULL;
        int r;

        if (len > PC_COMMAND_MAX)
                return pc_error_setf(reterr, EFBIG, "too_large",
                                     "the command is %zu bytes; at most %u bytes are decided", len, PC_COMMAND_MAX);
        r = snapshot(d, name, &p, reterr);
        if (r < 0)
                return r;
        return pc_policy_decide(p, command, len, ret); /* no lock held: linear in LEN */
}

int pc_policies_decide(pc_daemon *d, const char *name, json_t *req, json_t **ret, pc_error **reterr)
{
        _cleanup_pc_verdict_ pc_verdict *v = NULL;
        const char *command;
        size_t len;
        int r;

        r = pc_decide_request_parse(req, &command, &len, reterr);
        if (r < 0)
                return r;
        r = pc_policies_decide_command(d, name, command, len, &v, reterr);
        if (r < 0)
                return r;
        *ret = pc_verdict_to_json(v);
        return *ret ? 0 : -ENOMEM;
}

int pc_policies_exists(pc_daemon *d, const char *name)
{
        LOCK_GUARD(&d->policies->lock);
        loaded_policy *l = find(d->policies, name);

        return l && l->policy ? 1 : 0;
}
