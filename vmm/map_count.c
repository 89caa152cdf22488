/*
 * map_count.c - reading and raising vm.max_map_count (see map_count.h).
 *
 * The sysctl is host-wide but the need is per process, and several vmm runs
 * may overlap. So raising and restoring go through a small registry in
 * /run/vmm/max_map_count/, under an flock of its lock file:
 *
 *   original   the value before the first live run raised it
 *   <pid>      what that run needs
 *
 * map_count_ensure() prunes the entries of processes that are gone (a run
 * that was killed leaves its entry behind), adds its own, records the
 * original if there was none, and sets the limit to the largest of the
 * original and every live need. map_count_restore() removes its entry and
 * sets the limit to what the remaining live runs need, or back to the
 * original (deleting it) when it was the last. So a run never sees its
 * limit lowered under it by another run ending, and the last one out puts
 * the host's value back. Without root (the registry cannot be written) the
 * limit is only checked.
 */
#include "map_count.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *sysctl_path = "/proc/sys/vm/max_map_count";
static const char *registry_dir = "/run/vmm/max_map_count";
static int registered;

void map_count_set_paths(const char *sysctl, const char *registry)
{
	sysctl_path = sysctl;
	registry_dir = registry;
}

static uint64_t read_number(const char *path)
{
	unsigned long long v = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

static int write_number(const char *path, uint64_t value)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	int ok = fprintf(f, "%llu\n", (unsigned long long)value) > 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

uint64_t map_count_limit(void)
{
	return read_number(sysctl_path);
}

uint64_t map_count_vmas(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return 0;
	uint64_t lines = 0;
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		for (size_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	fclose(f);
	return lines;
}

/* Creates the registry (and its parents) and takes its lock. Returns the
 * lock's fd, or -1. Another run may remove the directories (the last one
 * out, or a fleet's control socket leaving /run/vmm) between the mkdir and
 * the open: then it starts again. */
static int lock_registry(void)
{
	char path[512];
	for (int attempt = 0;; attempt++) {
		snprintf(path, sizeof(path), "%s", registry_dir);
		for (char *p = path + 1; *p; p++) {
			if (*p != '/')
				continue;
			*p = 0;
			mkdir(path, 0755);
			*p = '/';
		}
		if (mkdir(path, 0755) && errno != EEXIST && !(errno == ENOENT && attempt < 8))
			return -1;
		snprintf(path, sizeof(path), "%s/lock", registry_dir);
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0) {
			if (errno == ENOENT && attempt < 8)
				continue;
			return -1;
		}
		while (flock(fd, LOCK_EX) && errno == EINTR)
			;
		/* The last run out removes the lock file (remove_if_empty):
		 * a lock taken on a file no longer at `path` guards nothing. */
		struct stat held, now;
		if (fstat(fd, &held) == 0 && stat(path, &now) == 0 && held.st_ino == now.st_ino &&
		    held.st_dev == now.st_dev)
			return fd;
		close(fd);
	}
}

/* With the lock held: when no run is registered any more, removes the
 * lock file and the registry's directories, so a host that is done with
 * vmm keeps nothing of it in /run. */
static void remove_if_empty(void)
{
	DIR *d = opendir(registry_dir);
	if (!d)
		return;
	struct dirent *e;
	int entries = 0;
	while ((e = readdir(d)))
		entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
			   strcmp(e->d_name, "lock");
	closedir(d);
	if (entries)
		return;
	char path[512];
	snprintf(path, sizeof(path), "%s/lock", registry_dir);
	unlink(path);
	/* The registry, and its parent (/run/vmm) if that is empty now. */
	snprintf(path, sizeof(path), "%s", registry_dir);
	char *slash = strrchr(path, '/');
	if (rmdir(path) == 0 && slash && slash != path) {
		*slash = 0;
		rmdir(path);
	}
}

/* Prunes dead runs; returns the largest need of the live ones (0: none). */
static uint64_t live_needs(void)
{
	uint64_t most = 0;
	DIR *d = opendir(registry_dir);
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", registry_dir, e->d_name);
		if (kill((pid_t)pid, 0) && errno == ESRCH) {
			unlink(path);
			continue;
		}
		uint64_t need = read_number(path);
		if (need > most)
			most = need;
	}
	closedir(d);
	return most;
}

static void entry_path(char *path, size_t len, const char *name)
{
	snprintf(path, len, "%s/%s", registry_dir, name);
}

int map_count_ensure(uint64_t needed, char *err, size_t errlen)
{
	uint64_t limit = map_count_limit();
	if (limit == 0)
		return 0; /* no such sysctl: nothing to check */
	int lock = lock_registry();
	if (lock < 0) {
		/* Not root: the limit can only be checked. */
		if (limit >= needed)
			return 0;
		snprintf(err, errlen,
			 "this fleet may need up to %llu host mappings but vm.max_map_count is "
			 "%llu and cannot be raised here; run as root or set 'sysctl "
			 "vm.max_map_count=%llu'",
			 (unsigned long long)needed, (unsigned long long)limit,
			 (unsigned long long)needed);
		return -1;
	}
	char original_path[512], own_path[512], pid[32];
	entry_path(original_path, sizeof(original_path), "original");
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	entry_path(own_path, sizeof(own_path), pid);
	uint64_t others = live_needs();
	uint64_t original = read_number(original_path);
	if (!original || !others) {
		/* No live run has raised it (or the one that did is gone and
		 * left its record): the current value is the host's, unless a
		 * dead run left it raised, in which case its record is right. */
		if (!original)
			original = limit;
		if (!others && limit >= needed && limit == original) {
			unlink(original_path);
			remove_if_empty();
			close(lock);
			return 0;
		}
	}
	int rc = 0;
	uint64_t target = needed > others ? needed : others;
	if (original > target)
		target = original;
	if (write_number(original_path, original) || write_number(own_path, needed) ||
	    (target != limit && write_number(sysctl_path, target))) {
		snprintf(err, errlen,
			 "this fleet may need up to %llu host mappings but vm.max_map_count is "
			 "%llu and cannot be raised (%s); set 'sysctl vm.max_map_count=%llu'",
			 (unsigned long long)needed, (unsigned long long)limit, strerror(errno),
			 (unsigned long long)needed);
		unlink(own_path);
		/* Nothing was raised: with no live run the record of the
		 * "original" would outlive the truth, and a later run would
		 * restore that stale value. */
		if (!others) {
			unlink(original_path);
			remove_if_empty();
		}
		rc = limit >= needed ? 0 : -1;
	} else {
		registered = 1;
	}
	close(lock);
	return rc;
}

void map_count_restore(void)
{
	if (!registered)
		return;
	int saved_errno = errno;
	int lock = lock_registry();
	if (lock < 0)
		return;
	char original_path[512], own_path[512], pid[32];
	entry_path(original_path, sizeof(original_path), "original");
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	entry_path(own_path, sizeof(own_path), pid);
	unlink(own_path);
	uint64_t others = live_needs(), original = read_number(original_path);
	if (original) {
		uint64_t target = others > original ? others : original;
		if (map_count_limit() != target)
			write_number(sysctl_path, target);
		if (!others)
			unlink(original_path);
	}
	remove_if_empty();
	registered = 0;
	close(lock);
	errno = saved_errno;
}
