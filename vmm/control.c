/*
 * control.c - the fleet's control socket (control.h): a table of keys, each
 * read from (and for knobs written to) the subsystem that owns it.
 */
#include "control.h"

#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control_cgroup.h"
#include "fleet.h"
#include "ksm/ksm.h"
#include "vm.h"

/* --- where the socket lives --- */

static void control_dir(char *dir, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (geteuid() == 0)
		snprintf(dir, len, "/run/vmm");
	else if (xdg && *xdg)
		snprintf(dir, len, "%s/vmm", xdg);
	else
		snprintf(dir, len, "/tmp/vmm-%u", (unsigned)geteuid());
}

int control_socket_path(const char *name, char *path, size_t len)
{
	if (strchr(name, '/'))
		return snprintf(path, len, "%s", name) < (int)len ? 0 : -1;
	char dir[80];
	control_dir(dir, sizeof(dir));
	return snprintf(path, len, "%s/%s.sock", dir, name) < (int)len ? 0 : -1;
}

/* --- the keys --- */

enum key_kind {
	KEY_KSM_STAT_U64, /* a uint64_t of struct ksm_stats */
	KEY_KSM_STAT_I64,
	KEY_KSM_STAT_DOUBLE,
	KEY_KSM_UNSIGNED, /* an unsigned knob of struct ksm_config */
	KEY_KSM_BOOL,	  /* a bool knob of struct ksm_config */
	KEY_KSM_RUN,
	KEY_POOL,  /* a figure of struct frame_pool_stats, in pages */
	KEY_FLEET, /* VM counts */
};

struct control_key {
	const char *name;
	enum key_kind kind;
	size_t offset;
	bool settable;
	unsigned max; /* unsigned knobs */
};

#define STAT(f) offsetof(struct ksm_stats, f)
#define CFG(f) offsetof(struct ksm_config, f)
#define POOL(f) offsetof(struct frame_pool_stats, f)

static const struct control_key keys[] = {
	{"ksm/run", KEY_KSM_RUN, 0, true, 2},
	{"ksm/pages_to_scan", KEY_KSM_UNSIGNED, CFG(pages_to_scan), true, 1u << 20},
	{"ksm/sleep_millisecs", KEY_KSM_UNSIGNED, CFG(sleep_millisecs), true, 1u << 20},
	{"ksm/max_page_sharing", KEY_KSM_UNSIGNED, CFG(max_page_sharing), true, 1u << 20},
	{"ksm/smart_scan", KEY_KSM_BOOL, CFG(smart_scan), true, 1},
	{"ksm/use_zero_pages", KEY_KSM_BOOL, CFG(use_zero_pages), true, 1},
	{"ksm/max_rate", KEY_KSM_BOOL, CFG(max_rate), true, 1},
	{"ksm/advisor", KEY_KSM_BOOL, CFG(advisor), true, 1}, /* 1: scan-time */
	{"ksm/advisor_target_scan_ms", KEY_KSM_UNSIGNED, CFG(advisor_target_scan_ms), true,
	 86400000},
	{"ksm/advisor_max_cpu", KEY_KSM_UNSIGNED, CFG(advisor_max_cpu), true, 100},
	{"ksm/advisor_min_pages_to_scan", KEY_KSM_UNSIGNED, CFG(advisor_min_pages), true, 1u << 20},
	{"ksm/advisor_max_pages_to_scan", KEY_KSM_UNSIGNED, CFG(advisor_max_pages), true, 1u << 20},
	{"ksm/pages_shared", KEY_KSM_STAT_U64, STAT(pages_shared), false, 0},
	{"ksm/pages_sharing", KEY_KSM_STAT_U64, STAT(pages_sharing), false, 0},
	{"ksm/pages_unshared", KEY_KSM_STAT_U64, STAT(pages_unshared), false, 0},
	{"ksm/pages_volatile", KEY_KSM_STAT_U64, STAT(pages_volatile), false, 0},
	{"ksm/ksm_zero_pages", KEY_KSM_STAT_U64, STAT(ksm_zero_pages), false, 0},
	{"ksm/full_scans", KEY_KSM_STAT_U64, STAT(full_scans), false, 0},
	{"ksm/pages_scanned", KEY_KSM_STAT_U64, STAT(pages_scanned), false, 0},
	{"ksm/pages_skipped", KEY_KSM_STAT_U64, STAT(pages_skipped), false, 0},
	{"ksm/general_profit", KEY_KSM_STAT_I64, STAT(general_profit), false, 0},
	{"ksm/stable_node_chains", KEY_KSM_STAT_U64, STAT(stable_node_chains), false, 0},
	{"ksm/stable_node_dups", KEY_KSM_STAT_U64, STAT(stable_node_dups), false, 0},
	{"ksm/merges", KEY_KSM_STAT_U64, STAT(merges), false, 0},
	{"ksm/hash_mismatches", KEY_KSM_STAT_U64, STAT(hash_mismatches), false, 0},
	{"ksm/scanner_cpu_seconds", KEY_KSM_STAT_DOUBLE, STAT(cpu_seconds), false, 0},
	{"pool/MemTotal", KEY_POOL, POOL(total_pages), false, 0},
	{"pool/MemFree", KEY_POOL, POOL(free_pages), false, 0},
	{"pool/used", KEY_POOL, POOL(used_pages), false, 0},
	{"fleet/vms", KEY_FLEET, 0, false, 0},
	{"fleet/running", KEY_FLEET, 1, false, 0},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static bool key_applies(const struct control_key *k, struct fleet *fleet)
{
	switch (k->kind) {
	case KEY_KSM_STAT_U64:
	case KEY_KSM_STAT_I64:
	case KEY_KSM_STAT_DOUBLE:
	case KEY_KSM_UNSIGNED:
	case KEY_KSM_BOOL:
	case KEY_KSM_RUN:
		return fleet->ksm != NULL;
	case KEY_POOL:
		return fleet->pool != NULL;
	case KEY_FLEET:
		return true;
	}
	return false;
}

static const struct control_key *find_key(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* The key's value as text. */
static void key_get(const struct control_key *k, struct fleet *fleet, char *out, size_t len)
{
	struct ksm_stats s;
	struct ksm_config cfg;
	struct frame_pool_stats ps;
	switch (k->kind) {
	case KEY_KSM_STAT_U64:
	case KEY_KSM_STAT_I64:
	case KEY_KSM_STAT_DOUBLE:
		ksm_get_stats(fleet->ksm, &s);
		if (k->kind == KEY_KSM_STAT_U64)
			snprintf(out, len, "%llu",
				 (unsigned long long)*(const uint64_t *)((const char *)&s +
									 k->offset));
		else if (k->kind == KEY_KSM_STAT_I64)
			snprintf(out, len, "%lld",
				 (long long)*(const int64_t *)((const char *)&s + k->offset));
		else
			snprintf(out, len, "%.6f", *(const double *)((const char *)&s + k->offset));
		return;
	case KEY_KSM_UNSIGNED:
		ksm_get_config(fleet->ksm, &cfg);
		snprintf(out, len, "%u", *(const unsigned *)((const char *)&cfg + k->offset));
		return;
	case KEY_KSM_BOOL:
		ksm_get_config(fleet->ksm, &cfg);
		snprintf(out, len, "%d", *(const bool *)((const char *)&cfg + k->offset) ? 1 : 0);
		return;
	case KEY_KSM_RUN:
		snprintf(out, len, "%d", ksm_get_run(fleet->ksm));
		return;
	case KEY_POOL:
		frame_pool_get_stats(fleet->pool, &ps);
		snprintf(out, len, "%llu",
			 (unsigned long long)*(const uint64_t *)((const char *)&ps + k->offset));
		return;
	case KEY_FLEET: {
		unsigned n = 0;
		for (unsigned i = 0; i < fleet->nvms; i++)
			n += k->offset == 0 || vm_memory_id(fleet->vms[i]) != 0;
		snprintf(out, len, "%u", n);
		return;
	}
	}
}

/* Sets a knob from text; 0, or -1 with err set. */
static int key_set(const struct control_key *k, struct fleet *fleet, const char *text, char *err,
		   size_t errlen)
{
	char *end;
	unsigned long v = strtoul(text, &end, 10);
	if (!*text || *end || *text == '-' || v > k->max) {
		snprintf(err, errlen, "%s: bad value '%s': expected a whole number up to %u",
			 k->name, text, k->max);
		return -1;
	}
	if (k->kind == KEY_KSM_RUN) {
		if (ksm_set_run(fleet->ksm, (int)v)) {
			snprintf(err, errlen, "%s: not every page could be unmerged (pool full)",
				 k->name);
			return -1;
		}
		return 0;
	}
	struct ksm_config cfg;
	ksm_get_config(fleet->ksm, &cfg);
	if (k->kind == KEY_KSM_UNSIGNED)
		*(unsigned *)((char *)&cfg + k->offset) = (unsigned)v;
	else
		*(bool *)((char *)&cfg + k->offset) = v != 0;
	if (ksm_set_config(fleet->ksm, &cfg)) {
		snprintf(err, errlen,
			 "%s: '%s' refused (pages_to_scan >= 1, max_page_sharing >= 2)", k->name,
			 text);
		return -1;
	}
	return 0;
}

/* --- requests --- */

static void reply(int fd, const char *text)
{
	size_t len = strlen(text);
	while (len) {
		ssize_t n = write(fd, text, len);
		if (n <= 0)
			return;
		text += n;
		len -= (size_t)n;
	}
}

static void replyf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void replyf(int fd, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	reply(fd, line);
}

struct stat_ctx {
	int fd;
	json_object *json; /* NULL: text */
};

/* A cgroup file for stat. */
static void stat_cgroup(void *arg, const char *key, const char *access, const char *text,
			json_object *json)
{
	struct stat_ctx *ctx = arg;
	(void)access;
	if (!text)
		return;
	if (ctx->json)
		json_object_object_add(ctx->json, key, json);
	else {
		replyf(ctx->fd, "%s %s\n", key, text);
		json_object_put(json);
	}
}

static void list_cgroup(void *arg, const char *key, const char *access, const char *text,
			json_object *json)
{
	(void)text;
	json_object_put(json);
	replyf(*(int *)arg, "%s %s\n", key, access);
}

static void serve_stat(int fd, struct fleet *fleet, bool json)
{
	json_object *o = json ? json_object_new_object() : NULL;
	char value[64];
	for (size_t i = 0; i < NKEYS; i++) {
		if (!key_applies(&keys[i], fleet))
			continue;
		key_get(&keys[i], fleet, value, sizeof(value));
		if (!json) {
			replyf(fd, "%s %s\n", keys[i].name, value);
			continue;
		}
		json_object *v = keys[i].kind == KEY_KSM_STAT_DOUBLE
					 ? json_object_new_double(strtod(value, NULL))
					 : json_object_new_int64(strtoll(value, NULL, 10));
		json_object_object_add(o, keys[i].name, v);
	}
	struct stat_ctx ctx = {fd, o};
	control_cgroup_each(fleet, stat_cgroup, &ctx);
	if (json) {
		reply(fd, json_object_to_json_string_ext(
				  o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		reply(fd, "\n");
		json_object_put(o);
	}
	reply(fd, "ok\n");
}

static void serve_request(int fd, struct fleet *fleet, char *line)
{
	char *save = NULL, *verb = strtok_r(line, " \t", &save);
	char *key = verb ? strtok_r(NULL, " \t", &save) : NULL;
	char *value = key ? strtok_r(NULL, " \t", &save) : NULL;
	char text[64], err[256];
	if (!verb) {
		reply(fd, "error empty request (get KEY, set KEY VALUE, stat [json], keys)\n");
		return;
	}
	if (strcmp(verb, "stat") == 0) {
		serve_stat(fd, fleet, key && strcmp(key, "json") == 0);
		return;
	}
	if (strcmp(verb, "keys") == 0) {
		for (size_t i = 0; i < NKEYS; i++)
			if (key_applies(&keys[i], fleet))
				replyf(fd, "%s %s\n", keys[i].name, keys[i].settable ? "rw" : "ro");
		control_cgroup_each(fleet, list_cgroup, &fd);
		reply(fd, "ok\n");
		return;
	}
	bool get = strcmp(verb, "get") == 0, set = strcmp(verb, "set") == 0;
	if (!get && !set) {
		replyf(fd,
		       "error unknown request '%s' (get KEY, set KEY VALUE, stat [json], keys)\n",
		       verb);
		return;
	}
	if (key && control_cgroup_is_key(key)) {
		char out[200];
		int rc = set && !value
				 ? (snprintf(err, sizeof(err), "set %s needs a value", key), -1)
			 : set ? control_cgroup_set(fleet, key, value, out, sizeof(out), err,
						    sizeof(err))
			       : control_cgroup_get(fleet, key, out, sizeof(out), err, sizeof(err));
		if (rc)
			replyf(fd, "error %s\n", err);
		else
			replyf(fd, "ok %s\n", out);
		return;
	}
	const struct control_key *k = key ? find_key(key) : NULL;
	if (!k || !key_applies(k, fleet)) {
		replyf(fd, "error no key '%s' in this fleet (see: keys)\n", key ? key : "");
		return;
	}
	if (set) {
		if (!k->settable) {
			replyf(fd, "error %s is read-only\n", k->name);
			return;
		}
		if (!value) {
			replyf(fd, "error set %s needs a value\n", k->name);
			return;
		}
		if (key_set(k, fleet, value, err, sizeof(err))) {
			replyf(fd, "error %s\n", err);
			return;
		}
	}
	key_get(k, fleet, text, sizeof(text));
	replyf(fd, "ok %s\n", text);
}

void control_serve(struct control *c, struct fleet *fleet)
{
	int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	char line[256];
	size_t len = 0;
	/* One line, within a second. */
	while (len < sizeof(line) - 1) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 1000) <= 0)
			break;
		ssize_t n = read(fd, line + len, sizeof(line) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(line, '\n', len))
			break;
	}
	line[len] = 0;
	char *nl = strchr(line, '\n');
	if (nl)
		*nl = 0;
	if (len)
		serve_request(fd, fleet, line);
	close(fd);
}

/* --- the socket --- */

/* 0 if something listens on the socket at addr, else why not (errno). */
static int socket_probe(const struct sockaddr_un *addr)
{
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return errno;
	int error = connect(probe, (const struct sockaddr *)addr, sizeof(*addr)) ? errno : 0;
	close(probe);
	return error;
}

/* Removes sockets that fleets under the default name (vmm-PID) left behind
 * when they could not clean up (killed with SIGKILL): the process is gone
 * and nothing listens. Such files would otherwise pile up, and keep the
 * directory from being removed. A fleet with a name of its own finds its
 * stale socket anyway (control_open). */
static void sweep_stale(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		unsigned pid;
		char tail[8];
		if (sscanf(e->d_name, "vmm-%u%7s", &pid, tail) != 2 || strcmp(tail, ".sock") ||
		    pid == 0 || (pid_t)pid == getpid() || kill((pid_t)pid, 0) == 0 ||
		    errno != ESRCH)
			continue;
		struct sockaddr_un addr = {.sun_family = AF_UNIX};
		if (snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", dir, e->d_name) >=
		    (int)sizeof(addr.sun_path))
			continue;
		if (socket_probe(&addr) == ECONNREFUSED)
			unlink(addr.sun_path);
	}
	closedir(d);
}

int control_open(struct control *c, const char *name, char *err, size_t errlen)
{
	c->fd = -1;
	c->path[0] = 0;
	char path[sizeof(c->path)];
	if (control_socket_path(name, path, sizeof(path))) {
		snprintf(err, errlen, "--name %s: the control socket's path is too long", name);
		return -1;
	}
	char dir[sizeof(path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = 0;
	else
		dir[0] = 0;
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "cannot make the control socket: %s", strerror(errno));
		return -1;
	}
	/* Another run may remove the (empty) directory between the mkdir and
	 * the bind (control_close, map_count.c): make it again. */
	int rc = -1;
	for (int attempt = 0; attempt < 8; attempt++) {
		if (dir[0] && mkdir(dir, 0700) && errno != EEXIST) {
			snprintf(err, errlen, "cannot make %s for the control socket: %s", dir,
				 strerror(errno));
			close(fd);
			return -1;
		}
		rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
		if (!rc || errno != ENOENT)
			break;
	}
	if (rc && errno == EADDRINUSE) {
		/* Someone listening: a fleet of that name runs. Else stale. */
		if (socket_probe(&addr) == 0) {
			close(fd);
			snprintf(err, errlen, "a fleet named '%s' is running (%s)", name, path);
			return -1;
		}
		unlink(path);
		rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	}
	if (rc || listen(fd, 8)) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	c->fd = fd;
	snprintf(c->path, sizeof(c->path), "%s", path);
	if (!strchr(name, '/'))
		sweep_stale(dir);
	return 0;
}

void control_close(struct control *c)
{
	if (c->fd < 0)
		return;
	close(c->fd);
	unlink(c->path);
	/* The directory too, if this was its last socket (best effort). */
	char dir[sizeof(c->path)];
	snprintf(dir, sizeof(dir), "%s", c->path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		rmdir(dir);
	}
	c->fd = -1;
}
