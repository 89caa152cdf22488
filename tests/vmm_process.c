/*
 * vmm_process.c - running the vmm binary as a child process.
 */
#include "vmm_process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct buffer {
	char *data;
	size_t len, cap;
};

static void buffer_append(struct buffer *b, const char *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->data = realloc(b->data, b->cap);
	}
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = 0;
}

#define REMOVE_MAX 64
static char remove_paths[REMOVE_MAX][256];
static int nremove;

static void remove_registered(void)
{
	for (int i = 0; i < nremove; i++)
		unlink(remove_paths[i]);
}

void remove_at_exit(const char *path)
{
	if (nremove == 0)
		atexit(remove_registered);
	if (nremove < REMOVE_MAX)
		snprintf(remove_paths[nremove++], sizeof(remove_paths[0]), "%s", path);
}

char *write_temp_file(const void *data, size_t len, const char *suffix)
{
	char *path = malloc(256);
	snprintf(path, 256, "/tmp/vmm-test-XXXXXX%s", suffix ? suffix : "");
	int fd = mkstemps(path, suffix ? (int)strlen(suffix) : 0);
	if (fd < 0) {
		perror("mkstemps");
		abort();
	}
	remove_at_exit(path);
	if (len && write(fd, data, len) != (ssize_t)len)
		abort();
	close(fd);
	return path;
}

double monotonic_seconds(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static const char *default_accel;

void vmm_process_set_accel(const char *accel)
{
	default_accel = accel;
}

const char *vmm_process_accel(void)
{
	return default_accel;
}

static const char *default_tcg_mmu;

void vmm_process_set_tcg_mmu(const char *mmu)
{
	default_tcg_mmu = mmu;
}

/* Whether argv already gives the option (--name or --name=...). */
static int names_option(const char *const *argv, const char *name)
{
	size_t len = strlen(name);
	for (int i = 0; argv[i] && strcmp(argv[i], "--") != 0; i++)
		if (strncmp(argv[i], name, len) == 0 && (argv[i][len] == 0 || argv[i][len] == '='))
			return 1;
	return 0;
}

void vmm_process_run(struct vmm_output *out, const char *binary, const char *const *argv, int json,
		     const char *const *env, uid_t uid)
{
	memset(out, 0, sizeof(*out));
	char *json_path = NULL;
	const char *args[128];
	int n = 0;
	args[n++] = binary;
	if (argv[0])
		args[n++] = argv[0]; /* the subcommand comes first */
	int run = argv[0] && strcmp(argv[0], "run") == 0;
	if (default_accel && run && !names_option(argv, "--accel")) {
		args[n++] = "--accel";
		args[n++] = default_accel;
	}
	if (default_tcg_mmu && run && !names_option(argv, "--tcg-mmu")) {
		args[n++] = "--tcg-mmu";
		args[n++] = default_tcg_mmu;
	}
	if (json) {
		json_path = write_temp_file(NULL, 0, ".json");
		args[n++] = "--json";
		args[n++] = json_path;
	}
	for (int i = argv[0] ? 1 : 0; argv[i] && n < 126; i++)
		args[n++] = argv[i];
	args[n] = NULL;

	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC))
		abort();
	double t0 = monotonic_seconds();
	pid_t pid = fork();
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		for (int i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		if (uid && (setgid(uid) || setuid(uid)))
			_exit(126);
		execv(binary, (char *const *)args);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	struct buffer bo = {0}, be = {0};
	buffer_append(&bo, "", 0);
	buffer_append(&be, "", 0);
	struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
	int open_fds = 2;
	while (open_fds) {
		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP)))
				continue;
			char chunk[8192];
			ssize_t r = read(fds[i].fd, chunk, sizeof(chunk));
			if (r <= 0) {
				close(fds[i].fd);
				fds[i].fd = -1;
				open_fds--;
			} else {
				buffer_append(i ? &be : &bo, chunk, (size_t)r);
			}
		}
	}
	int status;
	waitpid(pid, &status, 0);
	out->wall_seconds = monotonic_seconds() - t0;
	out->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	out->out = bo.data;
	out->err = be.data;
	if (json_path) {
		out->report = json_object_from_file(json_path);
		unlink(json_path);
		free(json_path);
	}
}

void vmm_output_free(struct vmm_output *out)
{
	free(out->out);
	free(out->err);
	if (out->report)
		json_object_put(out->report);
	memset(out, 0, sizeof(*out));
}

json_object *report_vm(json_object *report, int i)
{
	json_object *vms;
	if (!report || !json_object_object_get_ex(report, "vms", &vms))
		return NULL;
	return json_object_array_get_idx(vms, (size_t)i);
}

int64_t json_int(json_object *obj, const char *key)
{
	json_object *v;
	if (!obj || !json_object_object_get_ex(obj, key, &v))
		return INT64_MIN;
	return json_object_get_int64(v);
}

int64_t json_path_int(json_object *root, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	json_object *cur = root;
	for (char *save, *tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save))
		if (!cur || !json_object_object_get_ex(cur, tok, &cur))
			return INT64_MIN;
	return cur ? json_object_get_int64(cur) : INT64_MIN;
}

double json_path_double(json_object *root, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	json_object *cur = root;
	for (char *save, *tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save))
		if (!cur || !json_object_object_get_ex(cur, tok, &cur))
			return -1.0;
	return cur ? json_object_get_double(cur) : -1.0;
}

const char *json_str(json_object *obj, const char *key)
{
	json_object *v;
	if (!obj || !json_object_object_get_ex(obj, key, &v))
		return "";
	return json_object_get_string(v);
}

int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}
