/*
 * bench_libvirt.c - the same guests under QEMU + libvirt with Linux's ksmd,
 * and under our VMM with its own KSM, side by side in one run.
 *
 *   bench_libvirt [--vms N] [--mb M] [--rate max|normal] [--json FILE]
 *                 [--out DIR] [--smoke] ...   (see --help)
 *
 * Linux side. A private libvirtd is started for the run: as root the
 * qemu:///session URI still reaches the system daemon's socket, so instead
 * the daemon runs in its own mount namespace in which a temporary directory
 * is bind-mounted over /etc/libvirt (our libvirtd.conf and qemu.conf only:
 * QEMU as root, no security driver, no cgroups, no per-domain namespaces,
 * QEMU's stdio to files instead of virtlogd, no networks), /run/libvirt,
 * /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt. It shares
 * nothing with a system libvirtd that may be running, and everything it
 * writes lands in the temporary directory. We connect with
 * qemu:///system?socket=TMP/run/libvirt-sock and create N transient domains
 * from XML written here: TCG (type='qemu': KVM here emulates guest ring 0 far
 * too slowly), machine pc, no disks, network or graphics, the boot shim as
 * kernel and our unmodified `pattern` ELF as initrd, and through
 * <qemu:commandline> the debug console (port 0xe9, to a file per guest), the
 * debug-exit device (port 0xf4) and `-machine mem-merge=on`, which makes the
 * guest RAM MADV_MERGEABLE explicitly (libvirt's default; checked in
 * /proc/PID/smaps). ksmd is stopped (run=2: everything unmerged) while the
 * guests boot and fill their memory; a guest has finished filling when its
 * vCPU thread has gone idle (the `pattern` hold is a hlt loop) after its
 * `@boot` line. When every guest has, ksmd is started at the chosen rate and
 * that moment is t=0. Every sample period we read /sys/kernel/mm/ksm, ksmd's
 * CPU time (/proc/PID/stat of the kernel thread) and the QEMU processes' Pss
 * (/proc/PID/smaps_rollup). The run ends when every guest has verified its
 * memory and exited (`@exit` on its console). Then the domains are destroyed,
 * the daemon stopped, any process left in its mount namespace killed, the
 * KSM knobs restored and the temporary directory removed - also after an
 * error or Ctrl-C.
 *
 * Our side. `vmm run --vms N --ksm --ksm-rate ... pattern -- SAME ARGS` with
 * the same guest memory size, on the accelerator --accel asks for (default
 * auto: KVM where /dev/kvm is usable, else TCG; the table names the one the
 * run used, the QEMU side is TCG either way); its scanner starts
 * (--ksm-start-ms) after the guests have filled (checked against the guests'
 * fill_done_ns reports) and that start is t=0. Sharing and scanner CPU come
 * from the report's KSM timeline, sampled at the same period; host memory is
 * the vmm process's Pss, sampled here.
 *
 * Ideal sharing, as bench_ksm states it: (N-1) x shared + N x zero pages of
 * the pattern content (pattern_content.h), counted as pages_sharing +
 * ksm_zero_pages on both sides. Every figure is printed for both sides and
 * as the ratio ours/theirs; --json has all of it, the timelines included,
 * and a gnuplot PNG of sharing over time is written to --out.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "bench_accel.h"
#include "ksm_curve.h"
#include "ksmd.h"
#include "pattern_content.h"
#include "vmm_process.h"

#ifndef GUEST_DIR
#error "GUEST_DIR must name the directory of the built guests and the QEMU shim"
#endif

#define MAX_VMS 64
#define ZERO_PCT 25
#define SHARED_PCT 50
#define MIB (1024.0 * 1024.0)

struct options {
	int vms, mb, mem_mb, hold_ms, sample_ms, scan_s, normal_rate, smoke, qemu_thp;
	const char *json_path, *out_dir, *shim, *guest, *vmm, *qemu;
};

/* One QEMU guest. */
struct guest {
	char name[32];
	char console[PATH_MAX];
	virDomainPtr dom;
	pid_t pid;	/* QEMU's pid, 0 before it is known */
	pid_t vcpu_tid; /* its "CPU 0/TCG" thread */
	/* console parsing */
	off_t consumed;
	char partial[512];
	size_t partial_len;
	int booted, exited, exit_code, verified, failed;
	char last_line[512];
	json_object *reports;
	/* fill detection */
	double boot_time, fill_time; /* seconds from the first domain's creation; -1 */
	double vcpu_cpu;
	int idle_streak, filled;
	int gone; /* the QEMU process is no more */
	double gone_time;
	int mergeable;		   /* the guest RAM mapping is VM_MERGEABLE (smaps "mg") */
	uint64_t ram_hva;	   /* where QEMU maps guest physical address 0 */
	uint64_t buf_gpa, buf_len; /* the pattern buffer (the shim's @buffer line) */
	int buffer_checked;	   /* its first pages hold the expected content */
	uint64_t anon_huge_bytes;  /* AnonHugePages of the QEMU process after the fill */
	uint64_t pss_end;
};

/* Everything teardown needs; global so that a signal handler can reach it. */
static struct run {
	char tmp[64]; /* the temporary directory, "" once removed */
	int made_run_libvirt;
	pid_t daemon;
	char daemon_ns[64];
	virConnectPtr conn;
	struct guest g[MAX_VMS];
	int nguests;
	pid_t vmm;
	/* what teardown found and did */
	int leftover_killed;
	int domains_destroyed;
} run = {.daemon = -1, .vmm = -1};

static volatile sig_atomic_t interrupted;
static int keep_qemu_thp; /* --qemu-thp */

static void sleep_ms(int ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void progress(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bench_libvirt: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* A second Ctrl-C does not wait for the orderly teardown: kill what we
 * started by pid, put the KSM knobs back, and go. */
static void on_signal(int sig)
{
	if (!interrupted) {
		interrupted = sig;
		return;
	}
	for (int i = 0; i < run.nguests; i++)
		if (run.g[i].pid > 0)
			kill(run.g[i].pid, SIGKILL);
	if (run.daemon > 0)
		kill(run.daemon, SIGKILL);
	if (run.vmm > 0)
		kill(run.vmm, SIGKILL);
	ksmd_restore();
	static const char msg[] = "bench_libvirt: killed on a second signal; the temporary "
				  "directory under /tmp/bench-libvirt-* may remain\n";
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(130);
	_exit(130);
}

/* --- files and processes --- */

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	int ok = fputs(text, f) >= 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int remove_tree(const char *path)
{
	return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The 1-minute load average: ksmd runs at nice 5, so a busy host slows it. */
static double loadavg(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static int pid_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH);
}

/* Pss of a process in bytes, from smaps_rollup; 0 if it is gone. */
static uint64_t proc_pss_bytes(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	uint64_t kb = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Pss: %" SCNu64 " kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

static int read_ns(pid_t pid, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", pid);
	ssize_t n = readlink(path, buf, len - 1);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return 0;
}

/* Processes other than the daemon in the daemon's mount namespace (QEMU,
 * helpers): SIGKILL each by pid and wait until they are gone. */
static int kill_namespace_leftovers(void)
{
	if (!run.daemon_ns[0])
		return 0;
	/* Never the host's namespace (ours, or init's): that would be every
	 * process on the machine. */
	char own[64], init[64];
	if (read_ns(getpid(), own, sizeof(own)) || read_ns(1, init, sizeof(init)) ||
	    !strcmp(run.daemon_ns, own) || !strcmp(run.daemon_ns, init)) {
		fprintf(stderr, "bench_libvirt: the daemon's mount namespace is not a private one; "
				"not killing anything by namespace\n");
		return 0;
	}
	int killed = 0;
	for (int round = 0; round < 50; round++) {
		int found = 0;
		DIR *d = opendir("/proc");
		if (!d)
			return killed;
		struct dirent *e;
		while ((e = readdir(d))) {
			char *end;
			long pid = strtol(e->d_name, &end, 10);
			if (*end || pid <= 1 || pid == getpid())
				continue;
			char ns[64];
			if (read_ns((pid_t)pid, ns, sizeof(ns)) || strcmp(ns, run.daemon_ns))
				continue;
			found++;
			if (kill((pid_t)pid, SIGKILL) == 0 && round == 0)
				killed++;
		}
		closedir(d);
		if (!found)
			break;
		sleep_ms(100);
	}
	return killed;
}

/* Finds the guest RAM of a QEMU process: the mapping of exactly mem_bytes
 * (pc.ram). Returns whether it is mergeable (smaps "mg"), -1 if not found. */
static int find_guest_ram(pid_t pid, uint64_t mem_bytes, uint64_t *hva)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	unsigned long long start = 0, end = 0;
	int found = -1;
	while (found < 0 && fgets(line, sizeof(line), f)) {
		unsigned long long a, b;
		if (sscanf(line, "%llx-%llx ", &a, &b) == 2) {
			start = a;
			end = b;
		} else if (strncmp(line, "VmFlags:", 8) == 0 && end - start == mem_bytes) {
			*hva = start;
			found = strstr(line, " mg") != NULL;
		}
	}
	fclose(f);
	return found;
}

static uint64_t smaps_rollup_field(pid_t pid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = strlen(field);
	uint64_t kb = 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			kb = strtoull(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kb * 1024;
}

/* The pfn of the zero page: what a read of untouched anonymous memory maps
 * (what KSM maps zero pages to with use_zero_pages). */
static uint64_t zero_page_pfn(void)
{
	uint8_t *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 0;
	volatile uint8_t c = p[0];
	(void)c;
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)p / 4096 * 8)) != sizeof(e))
			e = 0;
		close(fd);
	}
	munmap(p, 4096);
	return e >> 63 ? e & ((1ull << 55) - 1) : 0;
}

/* Checks that the first pages of a guest's pattern buffer, read through
 * /proc/PID/mem at ram_hva + gpa, hold the content the guest wrote. */
static int check_buffer(const struct guest *g, int index, int mb)
{
	struct pattern_params p = {.zero_pct = ZERO_PCT,
				   .shared_pct = SHARED_PCT,
				   .run_pages = 1,
				   .seed = (uint64_t)index};
	if (!g->ram_hva || !g->buf_len || g->buf_len < (uint64_t)mb << 20)
		return -1;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", g->pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int ok = 0;
	for (uint64_t i = 0; i < 16; i++) {
		uint64_t words[PATTERN_WORDS_PER_PAGE], want;
		off_t at = (off_t)(g->ram_hva + g->buf_gpa + i * 4096);
		if (pread(fd, words, sizeof(words), at) != (ssize_t)sizeof(words) ||
		    pattern_check_page(words, pattern_page_key(&p, i, 0), &want) >= 0) {
			ok = -1;
			break;
		}
	}
	close(fd);
	return ok;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sharing within the guests' pattern buffers, from the page frames QEMU's
 * page tables point at (/proc/PID/pagemap): a buffer page on the zero page
 * is one of ksm_zero_pages; k buffer pages on one frame are k-1 of
 * pages_sharing (only KSM makes private anonymous pages share a frame). */
static void buffer_sharing(const uint64_t *pfn_zero, uint64_t *sharing, uint64_t *zero,
			   uint64_t *pfns, size_t cap)
{
	size_t n = 0;
	*sharing = *zero = 0;
	for (int i = 0; i < run.nguests; i++) {
		struct guest *g = &run.g[i];
		if (!g->buffer_checked || g->gone)
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/pagemap", g->pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		size_t pages = g->buf_len / 4096;
		if (n + pages > cap)
			pages = cap - n;
		off_t at = (off_t)((g->ram_hva + g->buf_gpa) / 4096 * 8);
		ssize_t r = pread(fd, pfns + n, pages * 8, at);
		close(fd);
		if (r <= 0)
			continue;
		size_t got = (size_t)r / 8;
		for (size_t k = 0; k < got; k++) {
			uint64_t e = pfns[n + k];
			uint64_t pfn = e >> 63 ? e & ((1ull << 55) - 1) : 0;
			if (pfn && pfn == *pfn_zero) {
				(*zero)++;
				pfn = 0;
			}
			pfns[n + k] = pfn;
		}
		n += got;
	}
	qsort(pfns, n, sizeof(*pfns), cmp_u64);
	for (size_t k = 1; k < n; k++)
		if (pfns[k] && pfns[k] == pfns[k - 1])
			(*sharing)++;
}

/* The vCPU thread of a QEMU process (named "CPU 0/TCG" with debug-threads). */
static pid_t find_vcpu_thread(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	pid_t found = 0;
	struct dirent *e;
	while (!found && (e = readdir(d))) {
		char comm_path[320], comm[32] = "";
		snprintf(comm_path, sizeof(comm_path), "/proc/%d/task/%s/comm", pid, e->d_name);
		FILE *f = fopen(comm_path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && strncmp(comm, "CPU 0/", 6) == 0)
			found = (pid_t)atoi(e->d_name);
		fclose(f);
	}
	closedir(d);
	return found;
}

/* A thread's state letter and CPU seconds. */
static char thread_state(pid_t pid, pid_t tid, double *cpu)
{
	char path[96], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	char state = 0;
	unsigned long long utime = 0, stime = 0;
	if (!p || sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &state,
			 &utime, &stime) != 3)
		return 0;
	*cpu = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
	return state;
}

/* --- the guest console --- */

static void console_line(struct guest *g, const char *line)
{
	char key[64];
	long long value;
	int code;
	unsigned long long gpa, len;
	if (strncmp(line, "@boot", 5) == 0) {
		g->booted = 1;
	} else if (sscanf(line, "@buffer %llx %llx", &gpa, &len) == 2) {
		g->buf_gpa = gpa;
		g->buf_len = len;
	} else if (sscanf(line, "@report %63s %lld", key, &value) == 2) {
		json_object_object_add(g->reports, key, json_object_new_int64(value));
	} else if (sscanf(line, "@exit %d", &code) == 1) {
		g->exited = 1;
		g->exit_code = code;
	} else {
		if (strstr(line, "pages verified"))
			g->verified = 1;
		if (strstr(line, "FAILED") || strncmp(line, "error", 5) == 0)
			g->failed = 1;
	}
	if (line[0])
		snprintf(g->last_line, sizeof(g->last_line), "%s", line);
}

/* Reads what the guest wrote since the last call. */
static void console_poll(struct guest *g)
{
	int fd = open(g->console, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char buf[4096];
	ssize_t n;
	while ((n = pread(fd, buf, sizeof(buf), g->consumed)) > 0) {
		g->consumed += n;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n' || g->partial_len == sizeof(g->partial) - 1) {
				g->partial[g->partial_len] = 0;
				console_line(g, g->partial);
				g->partial_len = 0;
			} else if (buf[i] != '\r') {
				g->partial[g->partial_len++] = buf[i];
			}
		}
	}
	close(fd);
}

/* --- the private libvirt daemon --- */

static const char libvirtd_conf[] =
	"# bench_libvirt: a private daemon for one run (see bench/bench_libvirt.c)\n"
	"listen_tls = 0\n"
	"listen_tcp = 0\n"
	"unix_sock_rw_perms = \"0700\"\n"
	"unix_sock_ro_perms = \"0700\"\n"
	"unix_sock_admin_perms = \"0700\"\n"
	"auth_unix_rw = \"none\"\n"
	"auth_unix_ro = \"none\"\n"
	"log_outputs = \"3:stderr\"\n";

static const char qemu_conf[] = "# bench_libvirt: QEMU as root, nothing outside our directory\n"
				"user = \"root\"\n"
				"group = \"root\"\n"
				"dynamic_ownership = 0\n"
				"remember_owner = 0\n"
				"security_driver = \"none\"\n"
				"namespaces = [ ]\n"
				"cgroup_controllers = [ ]\n"
				"stdio_handler = \"file\"\n";

static const char *const bind_dirs[][2] = {
	{"etc", "/etc/libvirt"},	 {"run", "/run/libvirt"},     {"lib", "/var/lib/libvirt"},
	{"cache", "/var/cache/libvirt"}, {"log", "/var/log/libvirt"},
};
#define NBINDS (sizeof(bind_dirs) / sizeof(bind_dirs[0]))

static void tmp_path(char *buf, size_t len, const char *sub)
{
	snprintf(buf, len, "%s/%s", run.tmp, sub);
}

/* The daemon's child side: own mount namespace, our directories, exec. */
static void daemon_child(void)
{
	setsid();
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	/* Inherited by every QEMU the daemon starts: guest RAM in 4 KiB pages,
	 * as our VMM's (--thp never). QEMU would otherwise madvise it
	 * MADV_HUGEPAGE. */
	if (!keep_qemu_thp)
		prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	char path[PATH_MAX];
	tmp_path(path, sizeof(path), "libvirtd.log");
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int nul = open("/dev/null", O_RDONLY);
	if (fd < 0 || nul < 0)
		_exit(126);
	dup2(nul, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (unshare(CLONE_NEWNS)) {
		dprintf(2, "bench_libvirt: unshare(CLONE_NEWNS): %s\n", strerror(errno));
		_exit(126);
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		dprintf(2, "bench_libvirt: making / private: %s\n", strerror(errno));
		_exit(126);
	}
	for (size_t i = 0; i < NBINDS; i++) {
		tmp_path(path, sizeof(path), bind_dirs[i][0]);
		if (mount(path, bind_dirs[i][1], NULL, MS_BIND, NULL)) {
			dprintf(2, "bench_libvirt: bind %s on %s: %s\n", path, bind_dirs[i][1],
				strerror(errno));
			_exit(126);
		}
	}
	tmp_path(path, sizeof(path), "etc/libvirtd.conf");
	execl("/usr/sbin/libvirtd", "libvirtd", "-f", path, "-p", "/run/libvirt/libvirtd.pid",
	      (char *)NULL);
	dprintf(2, "bench_libvirt: exec /usr/sbin/libvirtd: %s\n", strerror(errno));
	_exit(127);
}

static void quiet_libvirt_errors(void *data, virErrorPtr err)
{
	(void)data;
	(void)err;
}

static void show_daemon_log(void)
{
	char path[PATH_MAX], line[512];
	tmp_path(path, sizeof(path), "libvirtd.log");
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "bench_libvirt") || strstr(line, "error"))
			fprintf(stderr, "  libvirtd: %s", line);
	fclose(f);
}

static int daemon_start(void)
{
	char path[PATH_MAX];
	static const char *const subdirs[] = {"etc", "run", "lib", "cache", "log", "console"};
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		tmp_path(path, sizeof(path), subdirs[i]);
		if (mkdir(path, 0700)) {
			fprintf(stderr, "bench_libvirt: mkdir %s: %s\n", path, strerror(errno));
			return -1;
		}
	}
	tmp_path(path, sizeof(path), "etc/libvirtd.conf");
	if (write_file(path, libvirtd_conf))
		return -1;
	tmp_path(path, sizeof(path), "etc/qemu.conf");
	if (write_file(path, qemu_conf))
		return -1;
	for (size_t i = 0; i < NBINDS; i++) {
		struct stat st;
		if (stat(bind_dirs[i][1], &st) == 0)
			continue;
		/* /run/libvirt appears with the first daemon; the others come with
		 * libvirt-daemon-system. */
		if (strcmp(bind_dirs[i][1], "/run/libvirt") == 0 &&
		    mkdir("/run/libvirt", 0755) == 0) {
			run.made_run_libvirt = 1;
			continue;
		}
		fprintf(stderr,
			"bench_libvirt: %s is missing: is libvirt-daemon-system installed? "
			"(scripts/install-deps.sh libvirt-daemon-system)\n",
			bind_dirs[i][1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0)
		daemon_child();
	run.daemon = pid;
	char sock[PATH_MAX], uri[PATH_MAX + 64];
	tmp_path(sock, sizeof(sock), "run/libvirt-sock");
	snprintf(uri, sizeof(uri), "qemu:///system?socket=%s", sock);
	virSetErrorFunc(NULL, quiet_libvirt_errors);
	double t0 = monotonic_seconds();
	while (!interrupted && monotonic_seconds() - t0 < 30) {
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			run.daemon = -1;
			fprintf(stderr, "bench_libvirt: libvirtd exited at start (status 0x%x)\n",
				status);
			show_daemon_log();
			return -1;
		}
		if (access(sock, F_OK) == 0) {
			run.conn = virConnectOpen(uri);
			if (run.conn)
				break;
		}
		sleep_ms(100);
	}
	if (!run.conn) {
		fprintf(stderr, "bench_libvirt: cannot connect to the private libvirtd at %s: %s\n",
			uri, virGetLastErrorMessage());
		show_daemon_log();
		return -1;
	}
	/* The namespace as the daemon has it now: it answers on its private
	 * socket, so it has unshared. Never read earlier: right after fork
	 * the child is still in the host's namespace. */
	read_ns(pid, run.daemon_ns, sizeof(run.daemon_ns));
	progress("private libvirtd %d up in %.1f s (%s)", pid, monotonic_seconds() - t0, uri);
	return 0;
}

/* Destroys the domains, stops the daemon, kills leftovers, removes the
 * temporary directory (after copying the logs to keep_logs, if set). Safe to
 * call more than once. */
static void teardown(const char *keep_logs)
{
	for (int i = 0; i < run.nguests; i++) {
		struct guest *g = &run.g[i];
		if (g->dom) {
			if (virDomainIsActive(g->dom) == 1 && virDomainDestroy(g->dom) == 0)
				run.domains_destroyed++;
			virDomainFree(g->dom);
			g->dom = NULL;
		}
	}
	if (run.conn) {
		virConnectClose(run.conn);
		run.conn = NULL;
	}
	if (run.daemon > 0) {
		kill(run.daemon, SIGTERM);
		int status;
		double t0 = monotonic_seconds();
		while (waitpid(run.daemon, &status, WNOHANG) == 0) {
			if (monotonic_seconds() - t0 > 15) {
				kill(run.daemon, SIGKILL);
				waitpid(run.daemon, &status, 0);
				break;
			}
			sleep_ms(50);
		}
		run.daemon = -1;
	}
	run.leftover_killed += kill_namespace_leftovers();
	if (run.made_run_libvirt) {
		rmdir("/run/libvirt");
		run.made_run_libvirt = 0;
	}
	ksmd_restore();
	if (run.tmp[0]) {
		if (keep_logs) {
			char cmd[3 * PATH_MAX];
			snprintf(cmd, sizeof(cmd),
				 "mkdir -p '%s' && for f in console log/qemu libvirtd.log "
				 "domain-0.xml; do [ ! -e '%s'/$f ] || cp -r '%s'/$f '%s/'; done",
				 keep_logs, run.tmp, run.tmp, keep_logs);
			if (system(cmd) != 0)
				progress("could not copy the logs to %s", keep_logs);
		}
		if (remove_tree(run.tmp))
			fprintf(stderr, "bench_libvirt: could not remove %s: %s\n", run.tmp,
				strerror(errno));
		else
			run.tmp[0] = 0;
	}
}

/* --- the QEMU side --- */

static void guest_args(const struct options *o, char *buf, size_t len)
{
	snprintf(buf, len, "mb=%d zero=%d shared=%d hold=%d", o->mb, ZERO_PCT, SHARED_PCT,
		 o->hold_ms);
}

static int domain_xml(const struct options *o, int i, const struct guest *g, char *buf, size_t len)
{
	char args[128];
	guest_args(o, args, sizeof(args));
	int n = snprintf(
		buf, len,
		"<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
		"  <name>%s</name>\n"
		"  <memory unit='MiB'>%d</memory>\n"
		"  <vcpu>1</vcpu>\n"
		"  <os>\n"
		"    <type arch='x86_64' machine='pc'>hvm</type>\n"
		"    <kernel>%s</kernel>\n"
		"    <initrd>%s</initrd>\n"
		"    <cmdline>vm_index=%d vm_count=%d -- %s</cmdline>\n"
		"  </os>\n"
		"  <clock offset='utc'/>\n"
		"  <on_poweroff>destroy</on_poweroff>\n"
		"  <on_reboot>destroy</on_reboot>\n"
		"  <on_crash>destroy</on_crash>\n"
		"  <devices>\n"
		"    <emulator>%s</emulator>\n"
		"    <controller type='usb' model='none'/>\n"
		"    <memballoon model='none'/>\n"
		"  </devices>\n"
		"  <qemu:commandline>\n"
		"    <qemu:arg value='-machine'/>\n"
		"    <qemu:arg value='mem-merge=on'/>\n"
		"    <qemu:arg value='-chardev'/>\n"
		"    <qemu:arg value='file,id=CON,path=%s'/>\n"
		"    <qemu:arg value='-device'/>\n"
		"    <qemu:arg value='isa-debugcon,iobase=0xe9,chardev=CON'/>\n"
		"    <qemu:arg value='-device'/>\n"
		"    <qemu:arg value='isa-debug-exit,iobase=0xf4,iosize=0x04'/>\n"
		"  </qemu:commandline>\n"
		"</domain>\n",
		g->name, o->mem_mb, o->shim, o->guest, i, o->vms, args, o->qemu, g->console);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

struct side {
	struct ksm_curve curve;
	struct ksm_milestones m;
	double t_end;	    /* last moment every guest still held its memory */
	double fill_end;    /* when the last guest finished filling, relative to t=0 */
	double cpu_total;   /* scanner CPU from t=0 to t_end */
	uint64_t saved_end; /* sharing at t_end */
	uint64_t pss_end, pss_peak;
	uint64_t max_pages_sharing; /* host-wide, /sys/kernel/mm/ksm */
	uint64_t sys_saved_end;	    /* host-wide pages_sharing + ksm_zero_pages at t_end */
	int buffers_exact;	    /* sharing measured on the pattern buffers only */
	uint64_t others_rmap_items; /* pages of other processes under ksmd's scan */
	double load_before;	    /* 1-minute load average when the side started */
	int guests_ok;
	int ran;
};

static uint64_t qemu_pss_sum(void)
{
	uint64_t sum = 0;
	for (int i = 0; i < run.nguests; i++)
		if (run.g[i].pid > 0 && !run.g[i].gone)
			sum += proc_pss_bytes(run.g[i].pid);
	return sum;
}

/* Starts the domains one after another, paused, then lets them all run at
 * once: starting a domain takes seconds (more on a loaded host), and a guest
 * started early would otherwise end its hold before the last had filled. */
static int start_domains(const struct options *o, double t_start)
{
	char xml[8192], path[PATH_MAX];
	for (int i = 0; i < o->vms && !interrupted; i++) {
		struct guest *g = &run.g[i];
		snprintf(g->name, sizeof(g->name), "bench-libvirt-%d", i);
		snprintf(g->console, sizeof(g->console), "%s/console/%s.log", run.tmp, g->name);
		g->reports = json_object_new_object();
		g->boot_time = g->fill_time = g->gone_time = -1;
		g->exit_code = -1;
		g->mergeable = -1;
		run.nguests = i + 1;
		if (domain_xml(o, i, g, xml, sizeof(xml))) {
			fprintf(stderr, "bench_libvirt: domain XML too long (paths?)\n");
			return -1;
		}
		if (i == 0) {
			snprintf(path, sizeof(path), "%s/domain-0.xml", run.tmp);
			write_file(path, xml);
		}
		g->dom = virDomainCreateXML(run.conn, xml, VIR_DOMAIN_START_PAUSED);
		if (!g->dom) {
			fprintf(stderr, "bench_libvirt: creating domain %s failed: %s\n", g->name,
				virGetLastErrorMessage());
			return -1;
		}
		snprintf(path, sizeof(path), "%s/run/qemu/%s.pid", run.tmp, g->name);
		FILE *f = fopen(path, "r");
		if (!f || fscanf(f, "%d", &g->pid) != 1) {
			fprintf(stderr, "bench_libvirt: no pid file %s for %s\n", path, g->name);
			if (f)
				fclose(f);
			return -1;
		}
		fclose(f);
		g->vcpu_tid = find_vcpu_thread(g->pid);
		g->mergeable = find_guest_ram(g->pid, (uint64_t)o->mem_mb << 20, &g->ram_hva);
		progress("started %s paused: QEMU pid %d, %d MiB, guest RAM %s (%.1f s)", g->name,
			 g->pid, o->mem_mb, g->mergeable == 1 ? "mergeable" : "NOT mergeable",
			 monotonic_seconds() - t_start);
	}
	for (int i = 0; i < run.nguests && !interrupted; i++) {
		if (virDomainResume(run.g[i].dom) != 0) {
			fprintf(stderr, "bench_libvirt: resuming domain %s failed: %s\n",
				run.g[i].name, virGetLastErrorMessage());
			return -1;
		}
	}
	progress("resumed the %d domains together (%.1f s)", run.nguests,
		 monotonic_seconds() - t_start);
	return interrupted ? -1 : 0;
}

static void guest_check_gone(struct guest *g, double t)
{
	if (!g->gone && g->pid > 0 && !pid_alive(g->pid)) {
		g->gone = 1;
		g->gone_time = t;
	}
}

/* Waits until every guest has booted and filled its memory: its vCPU thread
 * sleeping (state S, no CPU time) for `idle_samples` samples in a row. */
static int wait_for_fill(const struct options *o, double t_start)
{
	const int idle_samples = 3;
	const double timeout = 60 + 10.0 * o->vms * o->mb / 64;
	double period = o->sample_ms / 1000.0;
	for (;;) {
		if (interrupted)
			return -1;
		double t = monotonic_seconds() - t_start;
		int filled = 0;
		for (int i = 0; i < run.nguests; i++) {
			struct guest *g = &run.g[i];
			console_poll(g);
			guest_check_gone(g, t);
			if (g->exited || g->gone || g->failed) {
				console_poll(g);
				fprintf(stderr,
					"bench_libvirt: %s ended before it had filled its memory "
					"(exit %d); console: %s\n",
					g->name, g->exit_code, g->last_line);
				return -1;
			}
			if (g->booted && g->boot_time < 0) {
				g->boot_time = t;
				progress("%s booted (%.1f s)", g->name, t);
			}
			if (!g->vcpu_tid)
				g->vcpu_tid = find_vcpu_thread(g->pid);
			double cpu = 0;
			char state = g->vcpu_tid ? thread_state(g->pid, g->vcpu_tid, &cpu) : 0;
			if (!g->filled && g->booted && state) {
				int idle = state != 'R' && cpu - g->vcpu_cpu < 0.1 * period;
				g->idle_streak = idle ? g->idle_streak + 1 : 0;
				if (g->idle_streak >= idle_samples) {
					g->filled = 1;
					g->fill_time = t;
					progress("%s has filled its %d MiB and sleeps (%.1f s)",
						 g->name, o->mb, t);
				}
			}
			g->vcpu_cpu = cpu;
			filled += g->filled;
		}
		if (filled == run.nguests)
			return 0;
		if (t > timeout) {
			for (int i = 0; i < run.nguests; i++)
				if (!run.g[i].filled)
					fprintf(stderr,
						"bench_libvirt: %s did not finish filling within %.0f "
						"s; console: %s\n",
						run.g[i].name, timeout,
						run.g[i].booted ? run.g[i].last_line
								: "(no @boot)");
			return -1;
		}
		sleep_ms(o->sample_ms);
	}
}

static void print_sample_progress(const char *who, double t, uint64_t saved, uint64_t ideal,
				  double cpu)
{
	progress("%s: t=%5.1f s  saved %7.1f MiB (%5.1f%% of ideal)  scanner CPU %.2f s", who, t,
		 (double)saved * 4096 / MIB, ideal ? 100.0 * (double)saved / (double)ideal : 0,
		 cpu);
}

/* Other processes whose memory ksmd scans (KSM rmap items) or merged: they
 * share ksmd's CPU and the counters of /sys/kernel/mm/ksm with our guests.
 * Returns them as a JSON array and the total of their rmap items. */
static json_object *other_ksm_processes(uint64_t *rmap_items)
{
	json_object *a = json_object_new_array();
	*rmap_items = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return a;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		int ours = 0;
		for (int i = 0; i < run.nguests; i++)
			ours |= run.g[i].pid == pid;
		if (ours)
			continue;
		char path[64], line[128];
		snprintf(path, sizeof(path), "/proc/%ld/ksm_stat", pid);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		uint64_t items = 0, merging = 0, zero = 0, v;
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "ksm_rmap_items %" SCNu64, &v) == 1)
				items = v;
			else if (sscanf(line, "ksm_merging_pages %" SCNu64, &v) == 1)
				merging = v;
			else if (sscanf(line, "ksm_zero_pages %" SCNu64, &v) == 1)
				zero = v;
		}
		fclose(f);
		if (!items && !merging && !zero)
			continue;
		char comm[64] = "";
		snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
		f = fopen(path, "r");
		if (f) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = 0;
			comm[strcspn(comm, "\n")] = 0;
			fclose(f);
		}
		*rmap_items += items;
		json_object *o = json_object_new_object();
		json_object_object_add(o, "pid", json_object_new_int((int)pid));
		json_object_object_add(o, "comm", json_object_new_string(comm));
		json_object_object_add(o, "ksm_rmap_items", json_object_new_int64((int64_t)items));
		json_object_object_add(o, "ksm_merging_pages",
				       json_object_new_int64((int64_t)merging));
		json_object_object_add(o, "ksm_zero_pages", json_object_new_int64((int64_t)zero));
		json_object_array_add(a, o);
	}
	closedir(d);
	return a;
}

static int run_qemu_side(const struct options *o, const struct ksmd_settings *ks, uint64_t ideal,
			 struct side *s, json_object *out)
{
	if (ksmd_pid() < 0) {
		fprintf(stderr, "bench_libvirt: no ksmd thread: this kernel has no KSM\n");
		return -1;
	}
	s->load_before = loadavg();
	char tmpl[] = "/tmp/bench-libvirt-XXXXXX";
	if (!mkdtemp(tmpl)) {
		fprintf(stderr, "bench_libvirt: mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	snprintf(run.tmp, sizeof(run.tmp), "%s", tmpl);
	json_object_object_add(out, "temp_dir", json_object_new_string(run.tmp));
	if (ksmd_save() || ksmd_apply(ks))
		return -1;
	if (daemon_start())
		return -1;
	json_object_object_add(out, "daemon_pid", json_object_new_int(run.daemon));
	unsigned long libver = 0, hvver = 0;
	progress("libvirtd probes QEMU's capabilities (a fresh cache every run: some seconds)");
	double t_probe = monotonic_seconds();
	virConnectGetLibVersion(run.conn, &libver);
	virConnectGetVersion(run.conn, &hvver);
	json_object_object_add(out, "capabilities_probe_s",
			       json_object_new_double(monotonic_seconds() - t_probe));
	char ver[64];
	snprintf(ver, sizeof(ver), "%lu.%lu.%lu", libver / 1000000, libver / 1000 % 1000,
		 libver % 1000);
	json_object_object_add(out, "libvirt_version", json_object_new_string(ver));
	snprintf(ver, sizeof(ver), "%lu.%lu.%lu", hvver / 1000000, hvver / 1000 % 1000,
		 hvver % 1000);
	json_object_object_add(out, "qemu_version", json_object_new_string(ver));

	double t_start = monotonic_seconds();
	if (start_domains(o, t_start) || wait_for_fill(o, t_start))
		return -1;

	/* Where each pattern buffer is in its QEMU process, checked against the
	 * content; if that fails for any guest, the host-wide counters stand in. */
	int exact = 1;
	uint64_t pfn_zero = zero_page_pfn();
	for (int i = 0; i < run.nguests; i++) {
		struct guest *g = &run.g[i];
		g->buffer_checked = pfn_zero && check_buffer(g, i, o->mb) == 0;
		g->anon_huge_bytes = smaps_rollup_field(g->pid, "AnonHugePages");
		if (!g->buffer_checked) {
			fprintf(stderr,
				"bench_libvirt: %s: cannot find its pattern buffer in QEMU's "
				"memory (RAM at 0x%llx, @buffer 0x%llx+0x%llx); sharing is read "
				"from /sys/kernel/mm/ksm only\n",
				g->name, (unsigned long long)g->ram_hva,
				(unsigned long long)g->buf_gpa, (unsigned long long)g->buf_len);
			exact = 0;
		}
	}
	s->buffers_exact = exact;
	size_t pfn_cap = (size_t)run.nguests * ((size_t)o->mb << 8);
	uint64_t *pfns = malloc(pfn_cap * sizeof(uint64_t));
	if (!pfns)
		return -1;

	/* t=0: every guest has filled; ksmd starts now. */
	struct ksmd_counters before;
	ksmd_read(&before);
	double cpu0 = ksmd_cpu_seconds();
	if (ksmd_set_run(1)) {
		fprintf(stderr, "bench_libvirt: cannot start ksmd\n");
		return -1;
	}
	double t0 = monotonic_seconds();
	/* When the last guest was seen filled, relative to t=0 (its fill ended
	 * up to idle_samples periods before that). */
	s->fill_end = -1e9;
	for (int i = 0; i < run.nguests; i++)
		if (run.g[i].fill_time - (t0 - t_start) > s->fill_end)
			s->fill_end = run.g[i].fill_time - (t0 - t_start);
	progress("every guest has filled: ksmd started (t=0, %.1f s after the first domain)",
		 t0 - t_start);
	double first_exit = -1, last_print = -1;
	const double timeout = o->hold_ms / 1000.0 + 120.0 + 5.0 * o->vms * o->mb / 64;
	for (;;) {
		double t = monotonic_seconds() - t0;
		struct ksmd_counters c;
		ksmd_read(&c);
		struct ksm_point p = {.t = t,
				      .pages_shared = c.pages_shared,
				      .pages_sharing = c.pages_sharing,
				      .ksm_zero_pages = c.ksm_zero_pages,
				      .pages_volatile = c.pages_volatile,
				      .full_scans = c.full_scans,
				      .cpu = ksmd_cpu_seconds() - cpu0,
				      .pss_bytes = qemu_pss_sum(),
				      .sys_pages_sharing = c.pages_sharing,
				      .sys_ksm_zero_pages = c.ksm_zero_pages};
		if (exact)
			buffer_sharing(&pfn_zero, &p.pages_sharing, &p.ksm_zero_pages, pfns,
				       pfn_cap);
		int done = 0;
		for (int i = 0; i < run.nguests; i++) {
			struct guest *g = &run.g[i];
			console_poll(g);
			guest_check_gone(g, t);
			if ((g->exited || g->gone) && first_exit < 0)
				first_exit = t;
			if (!g->exited && !g->gone)
				g->pss_end = proc_pss_bytes(g->pid);
			done += g->exited || g->gone;
		}
		/* Keep only samples taken while every guest still held its memory. */
		if (first_exit < 0)
			ksm_curve_add(&s->curve, &p);
		if (c.pages_sharing > s->max_pages_sharing)
			s->max_pages_sharing = c.pages_sharing;
		if (first_exit < 0 && (last_print < 0 || t - last_print >= 1.0)) {
			print_sample_progress("ksmd", t, ksm_point_saved(&p), ideal, p.cpu);
			last_print = t;
			uint64_t items;
			json_object *others = other_ksm_processes(&items);
			if (items >= s->others_rmap_items) {
				s->others_rmap_items = items;
				json_object_object_add(out, "other_ksm_processes", others);
			} else {
				json_object_put(others);
			}
		}
		if (done == run.nguests || interrupted || t > timeout)
			break;
		/* Sample on a fixed grid: the sampling itself takes a few ms. */
		int next_ms = (int)(t * 1000 / o->sample_ms + 1) * o->sample_ms;
		sleep_ms(next_ms - (int)((monotonic_seconds() - t0) * 1000));
	}
	free(pfns);
	if (interrupted)
		return -1;
	if (first_exit < 0 || monotonic_seconds() - t0 > timeout) {
		fprintf(stderr, "bench_libvirt: the guests did not exit within %.0f s\n", timeout);
		return -1;
	}
	/* A guest's QEMU may be gone a moment before its last console bytes are
	 * read. */
	sleep_ms(100);
	s->guests_ok = 0;
	json_object *guests = json_object_new_array();
	for (int i = 0; i < run.nguests; i++) {
		struct guest *g = &run.g[i];
		console_poll(g);
		int ok = g->exited && g->exit_code == 0 && g->verified && !g->failed;
		s->guests_ok += ok;
		if (!ok)
			fprintf(stderr, "bench_libvirt: %s: exit %d%s; console: %s\n", g->name,
				g->exit_code, g->exited ? "" : " (no @exit line)", g->last_line);
		json_object *j = json_object_new_object();
		json_object_object_add(j, "name", json_object_new_string(g->name));
		json_object_object_add(j, "qemu_pid", json_object_new_int(g->pid));
		json_object_object_add(j, "booted", json_object_new_boolean(g->booted));
		json_object_object_add(j, "exited", json_object_new_boolean(g->exited));
		json_object_object_add(j, "exit_code", json_object_new_int(g->exit_code));
		json_object_object_add(j, "verified", json_object_new_boolean(g->verified));
		json_object_object_add(j, "guest_ram_mergeable",
				       json_object_new_boolean(g->mergeable == 1));
		json_object_object_add(j, "guest_ram_hva",
				       json_object_new_int64((int64_t)g->ram_hva));
		json_object_object_add(j, "buffer_gpa", json_object_new_int64((int64_t)g->buf_gpa));
		json_object_object_add(j, "buffer_bytes",
				       json_object_new_int64((int64_t)g->buf_len));
		json_object_object_add(j, "buffer_content_checked",
				       json_object_new_boolean(g->buffer_checked));
		json_object_object_add(j, "anon_huge_bytes_after_fill",
				       json_object_new_int64((int64_t)g->anon_huge_bytes));
		json_object_object_add(j, "boot_s", json_object_new_double(g->boot_time));
		json_object_object_add(j, "filled_s", json_object_new_double(g->fill_time));
		json_object_object_add(j, "pss_bytes_end",
				       json_object_new_int64((int64_t)g->pss_end));
		json_object_object_add(j, "guest_values", json_object_get(g->reports));
		json_object_object_add(j, "console_last_line",
				       json_object_new_string(g->last_line));
		json_object_array_add(guests, j);
	}
	json_object_object_add(out, "guests", guests);
	/* The end of the comparison: the scan window, the same on both sides,
	 * unless a guest exits earlier. */
	s->t_end = first_exit >= 0 && first_exit < o->scan_s ? first_exit : o->scan_s;
	ksm_curve_milestones(&s->curve, ideal, s->t_end, &s->m);
	const struct ksm_point *end = ksm_curve_at(&s->curve, s->t_end);
	if (end) {
		s->saved_end = ksm_point_saved(end);
		s->sys_saved_end = end->sys_pages_sharing + end->sys_ksm_zero_pages;
		s->cpu_total = end->cpu;
		s->pss_end = end->pss_bytes;
		s->t_end = end->t;
	}
	for (size_t i = 0; i < s->curve.n; i++)
		if (s->curve.p[i].pss_bytes > s->pss_peak)
			s->pss_peak = s->curve.p[i].pss_bytes;
	json_object_object_add(out, "counters_before_start",
			       json_object_new_int64((int64_t)ksmd_saved_pages(&before)));
	s->ran = 1;
	return 0;
}

/* --- our side --- */

static int run_vmm_side(const struct options *o, uint64_t ideal, struct side *s, json_object *out)
{
	s->load_before = loadavg();
	int start_ms = 1500 + o->vms * o->mb * 4; /* well after every guest has filled */
	int hold_ms = start_ms + o->scan_s * 1000;
	char vms[16], mem[16], start[16], sample[16], mbarg[32], hold[32],
		json_path[] = "/tmp/bench-libvirt-vmm-"
			      "XXXXXX.json";
	snprintf(vms, sizeof(vms), "%d", o->vms);
	snprintf(mem, sizeof(mem), "%dM", o->mem_mb);
	snprintf(start, sizeof(start), "%d", start_ms);
	snprintf(sample, sizeof(sample), "%d", o->sample_ms);
	snprintf(mbarg, sizeof(mbarg), "mb=%d", o->mb);
	snprintf(hold, sizeof(hold), "hold=%d", hold_ms);
	int jfd = mkstemps(json_path, 5);
	if (jfd < 0)
		return -1;
	close(jfd);
	char zero[16], shared[16];
	snprintf(zero, sizeof(zero), "zero=%d", ZERO_PCT);
	snprintf(shared, sizeof(shared), "shared=%d", SHARED_PCT);
	const char *argv[40] = {o->vmm,		  "run", "--quiet",	    "--vms",   vms,
				"--mem",	  mem,	 "--json",	    json_path, "--ksm",
				"--ksm-start-ms", start, "--ksm-sample-ms", sample};
	int n = 14;
	if (o->normal_rate) {
		argv[n++] = "--ksm-rate";
		argv[n++] = "normal";
		argv[n++] = "--ksm-pages-to-scan";
		argv[n++] = "100";
		argv[n++] = "--ksm-sleep-ms";
		argv[n++] = "20";
	} else {
		argv[n++] = "--ksm-rate";
		argv[n++] = "max";
	}
	/* --accel as asked; none for auto, so that vmm's own default decides. */
	if (vmm_process_accel()) {
		argv[n++] = "--accel";
		argv[n++] = vmm_process_accel();
	}
	argv[n++] = "pattern";
	argv[n++] = "--";
	argv[n++] = mbarg;
	argv[n++] = zero;
	argv[n++] = shared;
	argv[n++] = hold;
	argv[n] = NULL;
	char cmdline[1024] = "";
	for (int i = 0; argv[i]; i++)
		snprintf(cmdline + strlen(cmdline), sizeof(cmdline) - strlen(cmdline), "%s%s",
			 i ? " " : "", argv[i]);
	progress("vmm: %s", cmdline);
	json_object_object_add(out, "command", json_object_new_string(cmdline));

	char err_path[] = "/tmp/bench-libvirt-vmm-XXXXXX.err";
	int efd = mkstemps(err_path, 4);
	if (efd < 0) {
		unlink(json_path);
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(efd, 2);
		execv(o->vmm, (char *const *)argv);
		dprintf(2, "exec %s: %s\n", o->vmm, strerror(errno));
		_exit(127);
	}
	close(efd);
	run.vmm = pid;
	/* Pss of the vmm process over time, CLOCK_MONOTONIC stamped. */
	size_t npss = 0, cap = 1024;
	double *pss_t = malloc(cap * sizeof(double));
	uint64_t *pss_v = malloc(cap * sizeof(uint64_t));
	int status = 0, signalled = 0;
	double t_launch = monotonic_seconds(), last_print = -1;
	for (;;) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		if (interrupted && !signalled) {
			kill(pid, SIGINT);
			signalled = 1;
		}
		uint64_t pss = proc_pss_bytes(pid);
		if (pss) {
			if (npss == cap) {
				cap *= 2;
				pss_t = realloc(pss_t, cap * sizeof(double));
				pss_v = realloc(pss_v, cap * sizeof(uint64_t));
			}
			pss_t[npss] = monotonic_seconds();
			pss_v[npss++] = pss;
		}
		double t = monotonic_seconds() - t_launch;
		if (last_print < 0 || t - last_print >= 2.0) {
			progress("vmm: running, %.0f s, Pss %.1f MiB", t, (double)pss / MIB);
			last_print = t;
		}
		sleep_ms(o->sample_ms);
	}
	run.vmm = -1;
	json_object *report = json_object_from_file(json_path);
	bench_accel_note(report);
	unlink(json_path);
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (code != 0 || !report) {
		fprintf(stderr, "bench_libvirt: vmm exited with status %d:\n", code);
		FILE *f = fopen(err_path, "r");
		char line[512];
		while (f && fgets(line, sizeof(line), f))
			fprintf(stderr, "  %s", line);
		if (f)
			fclose(f);
	}
	unlink(err_path);
	if (!report) {
		free(pss_t);
		free(pss_v);
		return -1;
	}
	double start_s = start_ms / 1000.0;
	double fleet_start = (double)json_path_int(report, "ksm.start_monotonic_ns") * 1e-9;
	ksm_curve_from_vmm_report(report, start_s, &s->curve);
	/* Pss: the sample nearest in time to each timeline point. */
	size_t j = 0;
	for (size_t i = 0; i < s->curve.n; i++) {
		double mono = fleet_start + start_s + s->curve.p[i].t;
		while (j + 1 < npss && fabs(pss_t[j + 1] - mono) <= fabs(pss_t[j] - mono))
			j++;
		if (npss)
			s->curve.p[i].pss_bytes = pss_v[j];
	}
	for (size_t i = 0; i < npss; i++)
		if (pss_v[i] > s->pss_peak)
			s->pss_peak = pss_v[i];
	free(pss_t);
	free(pss_v);
	/* The end: the first guest's exit; its fill: the last fill_done_ns. */
	s->t_end = 1e9;
	s->fill_end = -1e9;
	s->guests_ok = 0;
	json_object *guests = json_object_new_array();
	for (int i = 0; i < o->vms; i++) {
		json_object *vm = report_vm(report, i);
		double wall = json_path_double(vm, "wall_seconds");
		if (wall > 0 && wall - start_s < s->t_end)
			s->t_end = wall - start_s;
		double done = (double)json_path_int(vm, "guest_values.fill_done_ns") * 1e-9;
		if (done - fleet_start - start_s > s->fill_end)
			s->fill_end = done - fleet_start - start_s;
		int ok = strcmp(json_str(vm, "status"), "exited") == 0 &&
			 json_int(vm, "exit_code") == 0 &&
			 json_path_int(vm, "guest_values.bad_pages") == 0;
		s->guests_ok += ok;
		json_object *g = json_object_new_object();
		json_object_object_add(g, "name", json_object_new_string(json_str(vm, "name")));
		json_object_object_add(g, "status", json_object_new_string(json_str(vm, "status")));
		json_object_object_add(g, "exit_code",
				       json_object_new_int((int)json_int(vm, "exit_code")));
		json_object *gv;
		if (json_object_object_get_ex(vm, "guest_values", &gv))
			json_object_object_add(g, "guest_values", json_object_get(gv));
		json_object_array_add(guests, g);
	}
	json_object_object_add(out, "guests", guests);
	json_object_object_add(out, "ksm_start_ms", json_object_new_int(start_ms));
	json_object_object_add(out, "hold_ms", json_object_new_int(hold_ms));
	json_object *settings;
	json_object *ksm = NULL;
	if (json_object_object_get_ex(report, "ksm", &ksm) &&
	    json_object_object_get_ex(ksm, "settings", &settings))
		json_object_object_add(out, "settings", json_object_get(settings));
	json_object_object_add(out, "scanner_cpu_seconds_whole_run",
			       json_object_new_double(json_path_double(report, "ksm.cpu_seconds")));
	json_object_object_add(
		out, "dedup_ratio_peak",
		json_object_new_double(json_path_double(report, "ksm.peak.dedup_ratio")));
	if (s->t_end > o->scan_s)
		s->t_end = o->scan_s; /* the scan window, as on the QEMU side */
	ksm_curve_milestones(&s->curve, ideal, s->t_end, &s->m);
	const struct ksm_point *end = ksm_curve_at(&s->curve, s->t_end);
	if (end) {
		s->saved_end = ksm_point_saved(end);
		s->cpu_total = end->cpu;
		s->pss_end = end->pss_bytes;
		s->t_end = end->t;
	}
	for (size_t i = 0; i < s->curve.n; i++)
		if (s->curve.p[i].pages_sharing > s->max_pages_sharing)
			s->max_pages_sharing = s->curve.p[i].pages_sharing;
	json_object_put(report);
	s->ran = 1;
	return code == 0 || code == 1 ? 0 : -1;
}

/* --- output --- */

static double ratio(double ours, double theirs)
{
	return ours >= 0 && theirs > 0 ? ours / theirs : NAN;
}

static void print_row(const char *what, double theirs, double ours, const char *fmt)
{
	char a[32] = "-", b[32] = "-", r[32] = "-";
	if (theirs >= 0)
		snprintf(a, sizeof(a), fmt, theirs);
	if (ours >= 0)
		snprintf(b, sizeof(b), fmt, ours);
	double q = ratio(ours, theirs);
	if (!isnan(q))
		snprintf(r, sizeof(r), "%.2fx", q);
	printf("  %-34s %16s %16s %10s\n", what, a, b, r);
}

static json_object *jdouble(double v)
{
	return isnan(v) || v < -1e8 || v > 1e8 ? NULL : json_object_new_double(v);
}

static json_object *side_json(const struct side *s, uint64_t ideal)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "t50_s", jdouble(s->m.t50));
	json_object_object_add(o, "t90_s", jdouble(s->m.t90));
	json_object_object_add(o, "t99_s", jdouble(s->m.t99));
	json_object_object_add(o, "cpu50_s", jdouble(s->m.cpu50));
	json_object_object_add(o, "cpu90_s", jdouble(s->m.cpu90));
	json_object_object_add(o, "cpu99_s", jdouble(s->m.cpu99));
	json_object_object_add(o, "cpu_to_end_s", jdouble(s->cpu_total));
	json_object_object_add(o, "t_end_s", jdouble(s->t_end));
	json_object_object_add(o, "fill_end_s", jdouble(s->fill_end));
	json_object_object_add(o, "saved_pages_end", json_object_new_int64((int64_t)s->saved_end));
	json_object_object_add(o, "saved_mib_end",
			       json_object_new_double((double)s->saved_end * 4096 / MIB));
	json_object_object_add(o, "pct_of_ideal_end",
			       jdouble(ideal ? 100.0 * (double)s->saved_end / (double)ideal : -1));
	json_object_object_add(o, "peak_saved_pages",
			       json_object_new_int64((int64_t)s->m.peak_saved));
	json_object_object_add(o, "max_pages_sharing",
			       json_object_new_int64((int64_t)s->max_pages_sharing));
	json_object_object_add(o, "host_pss_bytes_end", json_object_new_int64((int64_t)s->pss_end));
	json_object_object_add(o, "host_pss_bytes_peak",
			       json_object_new_int64((int64_t)s->pss_peak));
	json_object_object_add(o, "guests_ok", json_object_new_int(s->guests_ok));
	json_object_object_add(o, "sysfs_saved_pages_end",
			       json_object_new_int64((int64_t)s->sys_saved_end));
	json_object_object_add(o, "sharing_measured_on_buffers",
			       json_object_new_boolean(s->buffers_exact));
	json_object_object_add(o, "loadavg_1min_before", jdouble(s->load_before));
	json_object_object_add(o, "other_processes_rmap_items",
			       json_object_new_int64((int64_t)s->others_rmap_items));
	json_object_object_add(
		o, "timeline_columns",
		json_tokener_parse("[\"t\", \"saved_pages\", \"scanner_cpu_seconds\", "
				   "\"host_pss_bytes\", \"host_wide_saved_pages\"]"));
	json_object_object_add(o, "timeline", ksm_curve_json(&s->curve));
	return o;
}

static int write_plot(const struct options *o, const struct side *theirs, const struct side *ours,
		      uint64_t ideal, char *png, size_t png_len)
{
	char dat[2][PATH_MAX], gp[PATH_MAX];
	const struct side *sides[2] = {theirs, ours};
	const char *names[2] = {"ksmd", "vmm"};
	for (int k = 0; k < 2; k++) {
		snprintf(dat[k], sizeof(dat[k]), "%s/libvirt_%s.dat", o->out_dir, names[k]);
		FILE *f = fopen(dat[k], "w");
		if (!f) {
			fprintf(stderr, "bench_libvirt: cannot write %s: %s\n", dat[k],
				strerror(errno));
			return -1;
		}
		fprintf(f, "# t_s saved_MiB pct_of_ideal scanner_cpu_s host_pss_MiB "
			   "sysfs_saved_MiB\n");
		for (size_t i = 0; i < sides[k]->curve.n; i++) {
			const struct ksm_point *p = &sides[k]->curve.p[i];
			if (p->t < -0.5 || p->t > sides[k]->t_end)
				continue;
			fprintf(f, "%.3f %.3f %.2f %.3f %.2f %.3f\n", p->t,
				(double)ksm_point_saved(p) * 4096 / MIB,
				100.0 * (double)ksm_point_saved(p) / (double)ideal, p->cpu,
				(double)p->pss_bytes / MIB,
				(double)(p->sys_pages_sharing + p->sys_ksm_zero_pages) * 4096 /
					MIB);
		}
		fclose(f);
	}
	snprintf(png, png_len, "%s/libvirt_sharing.png", o->out_dir);
	/* Show the merging, not all of the hold: up to 2.5 times the slower
	 * side's time to 99%, if both got there. */
	double xmax = theirs->t_end > ours->t_end ? theirs->t_end : ours->t_end;
	if (theirs->m.t99 >= 0 && ours->m.t99 >= 0) {
		double t99 = theirs->m.t99 > ours->m.t99 ? theirs->m.t99 : ours->m.t99;
		if (2.5 * t99 + 1 < xmax)
			xmax = 2.5 * t99 + 1;
	}
	snprintf(gp, sizeof(gp), "%s/libvirt_sharing.gp", o->out_dir);
	FILE *f = fopen(gp, "w");
	if (!f)
		return -1;
	fprintf(f,
		"set terminal pngcairo noenhanced size 1000,600\n"
		"set output '%s'\n"
		"set title \"%d guests x pattern mb=%d zero=%d shared=%d, KSM at %s rate\"\n"
		"set xlabel 'seconds since the scanner started (t=0: every guest has filled)'\n"
		"set ylabel 'saved MiB (pages_sharing + ksm_zero_pages)'\n"
		"set key center right\n"
		"set grid\n"
		"set yrange [0:*]\n"
		"set xrange [-0.5:%.2f]\n"
		"plot '%s' using 1:2 with lines lw 2 title 'QEMU (TCG) under libvirt + Linux ksmd%s', "
		"\\\n"
		"     '%s' using 1:2 with lines lw 2 title 'vmm + its KSM', \\\n"
		"     %.3f with lines dt 2 lc rgb 'gray' title 'ideal'",
		png, o->vms, o->mb, ZERO_PCT, SHARED_PCT, o->normal_rate ? "normal" : "max", xmax,
		dat[0], theirs->buffers_exact ? " (pattern buffers)" : "", dat[1],
		(double)ideal * 4096 / MIB);
	if (theirs->buffers_exact)
		fprintf(f,
			", \\\n     '%s' using 1:6 with lines dt 3 title 'Linux ksmd, host-wide "
			"/sys/kernel/mm/ksm (QEMU platform pages, other processes)'",
			dat[0]);
	fputc('\n', f);
	fclose(f);
	return gnuplot_run(gp, "bench_libvirt");
}

static void print_table(const struct options *o, const char *args, const char *rate_text,
			const char *smart_scan, uint64_t ideal, const struct side *theirs,
			const struct side *ours)
{
	printf("bench_libvirt: %d guests x `pattern %s`, %d MiB guest RAM each\n", o->vms, args,
	       o->mem_mb);
	printf("  KSM %s; use_zero_pages 1, max_page_sharing 256 (both); smart_scan %s\n",
	       rate_text, smart_scan);
	printf("  QEMU domains: TCG (type='qemu'), always\n");
	bench_accel_print(stdout, "  vmm ");
	printf("  ideal sharing: %llu pages = %.1f MiB ((N-1) x shared + N x zero pages)\n",
	       (unsigned long long)ideal, (double)ideal * 4096 / MIB);
	printf("  t=0: the scanner is switched on, after every guest has finished filling\n"
	       "       (QEMU: a guest has filled when its vCPU thread sleeps - pattern's hold is a "
	       "hlt loop -\n        for 3 samples after @boot, the last seen %.2f s before t=0; "
	       "vmm: --ksm-start-ms,\n        the last guest's fill_done_ns %.2f s before t=0)\n",
	       theirs->ran ? -theirs->fill_end : 0, ours->ran ? -ours->fill_end : 0);
	printf("  sharing counted: QEMU: on the pattern buffers (pagemap); vmm: its whole guest "
	       "memory (pages_sharing\n        + ksm_zero_pages), so a few ELF and stack pages "
	       "that merge count for vmm\n");
	printf("  %-34s %16s %16s %10s\n", "", "QEMU+libvirt+ksmd", "vmm", "vmm/ksmd");
	print_row("time to 50% of ideal (s)", theirs->m.t50, ours->m.t50, "%.2f");
	print_row("time to 90% of ideal (s)", theirs->m.t90, ours->m.t90, "%.2f");
	print_row("time to 99% of ideal (s)", theirs->m.t99, ours->m.t99, "%.2f");
	print_row("scanner CPU to 99% (s)", theirs->m.cpu99, ours->m.cpu99, "%.2f");
	print_row("scanner CPU t=0..end (s)", theirs->ran ? theirs->cpu_total : -1,
		  ours->ran ? ours->cpu_total : -1, "%.2f");
	print_row("saved at the end (MiB)",
		  theirs->ran ? (double)theirs->saved_end * 4096 / MIB : -1,
		  ours->ran ? (double)ours->saved_end * 4096 / MIB : -1, "%.1f");
	print_row("  of ideal (%)",
		  theirs->ran ? 100.0 * (double)theirs->saved_end / (double)ideal : -1,
		  ours->ran ? 100.0 * (double)ours->saved_end / (double)ideal : -1, "%.1f");
	print_row("host memory at the end, Pss (MiB)",
		  theirs->ran ? (double)theirs->pss_end / MIB : -1,
		  ours->ran ? (double)ours->pss_end / MIB : -1, "%.1f");
	print_row("host memory peak, Pss (MiB)", theirs->ran ? (double)theirs->pss_peak / MIB : -1,
		  ours->ran ? (double)ours->pss_peak / MIB : -1, "%.1f");
	print_row("guests that exited 0, verified", theirs->guests_ok, ours->guests_ok, "%.0f");
	printf("  1-minute load average before each side: QEMU %.2f, vmm %.2f (ksmd runs at nice "
	       "5)\n",
	       theirs->load_before, ours->load_before);
	if (theirs->others_rmap_items)
		printf("  warning: ksmd also scanned %llu pages of other processes during the run "
		       "(--json: other_ksm_processes);\n           its CPU time includes them\n",
		       (unsigned long long)theirs->others_rmap_items);
	printf("  end: the last sample at or before t=%d s, the scan window (QEMU %.1f s, vmm %.1f "
	       "s), every guest still holding its memory\n  host memory: Pss of the %d QEMU "
	       "processes / of the one vmm process\n",
	       o->scan_s, theirs->t_end, ours->t_end, o->vms);
}

/* --- command line --- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_libvirt [options]\n"
		"\n"
		"N QEMU guests (TCG) under a private libvirtd with Linux's ksmd, then the same\n"
		"N guests under vmm with its KSM; one table, ratios ours/theirs, a plot.\n"
		"Needs root, libvirt-daemon-system, qemu-system-x86 and gnuplot-nox.\n"
		"\n"
		"  -n, --vms N        guests on each side (default 8, at most %d)\n"
		"  -m, --mb M         pattern mb=M: MiB each guest fills (default 64)\n"
		"      --mem MIB      guest RAM in MiB (default M + 32, rounded up to even)\n"
		"      --rate max|normal  max (default): ksmd pages_to_scan 100000,\n"
		"                     sleep_millisecs 0; vmm --ksm-rate max. normal: Linux's\n"
		"                     defaults, pages_to_scan 100, sleep_millisecs 20, both sides\n"
		"      --scan-seconds S  the scan window: the guests hold their memory S s after\n"
		"                     the scanner starts; CPU, sharing and memory are read at\n"
		"                     its end (default 10 at max rate, 120 at normal)\n"
		"      --sample-ms MS sampling period of the KSM counters (default 100)\n"
		"  -j, --json FILE    every figure, both timelines and the guests' results\n"
		"  -o, --out DIR      where the plot and its data go (default .)\n"
		"      --smoke        2 guests of pattern mb=8, a few seconds of scanning\n"
		"      --shim PATH    the QEMU boot shim (default %s/qemu_shim.bin)\n"
		"      --guest PATH   the guest ELF (default %s/pattern)\n"
		"      --qemu-thp     leave QEMU's guest RAM in transparent huge pages\n"
		"                     (default: 4 KiB pages, as vmm's default --thp never)\n"
		"      --accel auto|kvm|tcg  the accelerator of the vmm side (default auto:\n"
		"                     KVM where /dev/kvm is usable, else TCG); QEMU is TCG\n"
		"  -h, --help\n",
		MAX_VMS, GUEST_DIR, GUEST_DIR);
}

static int parse_int(const char *opt, const char *arg, int lo, int hi)
{
	char *end;
	errno = 0;
	long v = strtol(arg, &end, 10);
	if (errno || *end || end == arg || v < lo || v > hi) {
		fprintf(stderr, "bench_libvirt: %s needs a number from %d to %d, not '%s'\n", opt,
			lo, hi, arg);
		exit(2);
	}
	return (int)v;
}

static int check_file(const char *what, const char *path, int exec)
{
	if (access(path, exec ? X_OK : R_OK) == 0)
		return 0;
	fprintf(stderr, "bench_libvirt: %s %s: %s\n", what, path, strerror(errno));
	return -1;
}

int main(int argc, char **argv)
{
	struct options o = {.vms = 8,
			    .mb = 64,
			    .sample_ms = 100,
			    .scan_s = -1,
			    .out_dir = ".",
			    .shim = GUEST_DIR "/qemu_shim.bin",
			    .guest = GUEST_DIR "/pattern",
			    .vmm = VMM_BINARY,
			    .qemu = "/usr/bin/qemu-system-x86_64"};
	int vms_set = 0, mb_set = 0;
	enum {
		OPT_MEM = 256,
		OPT_RATE,
		OPT_SCAN,
		OPT_SAMPLE,
		OPT_SMOKE,
		OPT_SHIM,
		OPT_GUEST,
		OPT_THP,
		OPT_ACCEL
	};
	static const struct option options[] = {{"vms", required_argument, NULL, 'n'},
						{"mb", required_argument, NULL, 'm'},
						{"mem", required_argument, NULL, OPT_MEM},
						{"rate", required_argument, NULL, OPT_RATE},
						{"scan-seconds", required_argument, NULL, OPT_SCAN},
						{"sample-ms", required_argument, NULL, OPT_SAMPLE},
						{"json", required_argument, NULL, 'j'},
						{"out", required_argument, NULL, 'o'},
						{"smoke", no_argument, NULL, OPT_SMOKE},
						{"shim", required_argument, NULL, OPT_SHIM},
						{"guest", required_argument, NULL, OPT_GUEST},
						{"qemu-thp", no_argument, NULL, OPT_THP},
						{"accel", required_argument, NULL, OPT_ACCEL},
						{"help", no_argument, NULL, 'h'},
						{NULL, 0, NULL, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "n:m:j:o:h", options, NULL)) != -1) {
		switch (c) {
		case 'n':
			o.vms = parse_int("--vms", optarg, 1, MAX_VMS);
			vms_set = 1;
			break;
		case 'm':
			o.mb = parse_int("--mb", optarg, 1, 4096);
			mb_set = 1;
			break;
		case OPT_MEM:
			o.mem_mb = parse_int("--mem", optarg, 8, 65536);
			break;
		case OPT_RATE:
			if (strcmp(optarg, "max") && strcmp(optarg, "normal")) {
				fprintf(stderr,
					"bench_libvirt: --rate is max or normal, not '%s'\n",
					optarg);
				return 2;
			}
			o.normal_rate = strcmp(optarg, "normal") == 0;
			break;
		case OPT_SCAN:
			o.scan_s = parse_int("--scan-seconds", optarg, 1, 3600);
			break;
		case OPT_SAMPLE:
			o.sample_ms = parse_int("--sample-ms", optarg, 10, 10000);
			break;
		case 'j':
			o.json_path = optarg;
			break;
		case 'o':
			o.out_dir = optarg;
			break;
		case OPT_SMOKE:
			o.smoke = 1;
			break;
		case OPT_SHIM:
			o.shim = optarg;
			break;
		case OPT_GUEST:
			o.guest = optarg;
			break;
		case OPT_THP:
			o.qemu_thp = keep_qemu_thp = 1;
			break;
		case OPT_ACCEL:
			bench_accel_option("bench_libvirt", optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bench_libvirt: unexpected argument '%s' (see --help)\n",
			argv[optind]);
		return 2;
	}
	if (o.smoke) {
		if (!vms_set)
			o.vms = 2;
		if (!mb_set)
			o.mb = 8;
		if (o.scan_s < 0)
			o.scan_s = 3;
	}
	if (o.scan_s < 0)
		o.scan_s = o.normal_rate ? 120 : 10;
	if (!o.mem_mb)
		o.mem_mb = (o.mb + 32 + 1) & ~1;
	if (o.mem_mb < o.mb + 8) {
		fprintf(stderr,
			"bench_libvirt: --mem %d leaves no room for the guest beyond mb=%d\n",
			o.mem_mb, o.mb);
		return 2;
	}
	/* The QEMU guests' hold covers the scan time plus the spread of their fills. */
	o.hold_ms = o.scan_s * 1000 + (o.smoke ? 1000 : 3000 + 1000 * o.vms);
	if (geteuid() != 0) {
		fprintf(stderr, "bench_libvirt: needs root (libvirtd in its own mount namespace, "
				"/sys/kernel/mm/ksm)\n");
		return 2;
	}
	if (check_file("QEMU boot shim", o.shim, 0) || check_file("guest", o.guest, 0) ||
	    check_file("vmm", o.vmm, 1) ||
	    check_file("libvirtd (apt-get install libvirt-daemon-system)", "/usr/sbin/libvirtd",
		       1) ||
	    check_file("QEMU (apt-get install qemu-system-x86)", o.qemu, 1))
		return 2;
	struct stat st;
	if (stat(o.out_dir, &st) || !S_ISDIR(st.st_mode)) {
		if (mkdir(o.out_dir, 0755)) {
			fprintf(stderr, "bench_libvirt: --out %s: %s\n", o.out_dir,
				strerror(errno));
			return 2;
		}
	}
	for (const char *p = o.shim; *p; p++)
		if (strchr("<>&'\"", *p)) {
			fprintf(stderr, "bench_libvirt: the shim path may not contain XML "
					"metacharacters\n");
			return 2;
		}
	for (const char *p = o.guest; *p; p++)
		if (strchr("<>&'\"", *p)) {
			fprintf(stderr, "bench_libvirt: the guest path may not contain XML "
					"metacharacters\n");
			return 2;
		}

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	atexit(ksmd_restore);

	struct pattern_params pp = {.zero_pct = ZERO_PCT, .shared_pct = SHARED_PCT, .run_pages = 1};
	uint64_t ideal = ksmd_ideal_pages(&pp, (uint64_t)o.mb * 256, o.vms);
	const struct ksmd_settings *ks = o.normal_rate ? &ksmd_normal_rate : &ksmd_max_rate;
	char args[128];
	guest_args(&o, args, sizeof(args));
	progress("%d guests x `pattern %s`, %d MiB RAM each; ideal sharing %llu pages (%.1f MiB)",
		 o.vms, args, o.mem_mb, (unsigned long long)ideal, (double)ideal * 4096 / MIB);

	json_object *root = json_object_new_object();
	json_object *jq = json_object_new_object(), *jv = json_object_new_object();
	struct side theirs = {.m = {-1, -1, -1, -1, -1, -1, 0, -1}},
		    ours = {.m = {-1, -1, -1, -1, -1, -1, 0, -1}};
	int failed = 0;

	/* 1. QEMU + libvirt + ksmd. */
	char smart_scan[16] = "n/a";
	ksmd_read_knob("smart_scan", smart_scan, sizeof(smart_scan));
	if (run_qemu_side(&o, ks, ideal, &theirs, jq))
		failed = 1;
	char logs[PATH_MAX];
	snprintf(logs, sizeof(logs), "%s/libvirt_logs", o.out_dir);
	teardown(failed ? logs : NULL);
	json_object *td = json_object_new_object();
	json_object_object_add(td, "domains_destroyed", json_object_new_int(run.domains_destroyed));
	json_object_object_add(td, "leftover_processes_killed",
			       json_object_new_int(run.leftover_killed));
	json_object_object_add(td, "temp_dir_removed", json_object_new_boolean(run.tmp[0] == 0));
	json_object_object_add(jq, "teardown", td);
	if (failed)
		fprintf(stderr, "bench_libvirt: the QEMU side failed; its logs are in %s\n", logs);

	/* 2. Our VMM, unless interrupted. */
	if (!interrupted && run_vmm_side(&o, ideal, &ours, jv))
		failed = 1;
	if (interrupted) {
		fprintf(stderr, "bench_libvirt: interrupted; everything torn down\n");
		failed = 1;
	}

	/* 3. The table. */
	const char *rate_text =
		o.normal_rate ? "normal rate: ksmd pages_to_scan 100, sleep_millisecs 20; "
				"vmm --ksm-rate normal (100 pages / 20 ms)"
			      : "max rate: ksmd pages_to_scan 100000, sleep_millisecs 0; vmm "
				"--ksm-rate max (batches of 4096 back to back)";
	if (theirs.ran || ours.ran)
		print_table(&o, args, rate_text, smart_scan, ideal, &theirs, &ours);
	char png[PATH_MAX] = "";
	if (theirs.ran && ours.ran) {
		if (write_plot(&o, &theirs, &ours, ideal, png, sizeof(png)) == 0)
			printf("  plot: %s\n", png);
		else
			png[0] = 0;
	}

	if (o.json_path) {
		json_object *sc = json_object_new_object();
		json_object_object_add(sc, "vms", json_object_new_int(o.vms));
		json_object_object_add(sc, "mb", json_object_new_int(o.mb));
		json_object_object_add(sc, "mem_mib", json_object_new_int(o.mem_mb));
		json_object_object_add(sc, "guest_args", json_object_new_string(args));
		json_object_object_add(sc, "rate",
				       json_object_new_string(o.normal_rate ? "normal" : "max"));
		json_object_object_add(sc, "rate_settings", json_object_new_string(rate_text));
		json_object_object_add(sc, "smart_scan", json_object_new_string(smart_scan));
		json_object_object_add(sc, "sample_ms", json_object_new_int(o.sample_ms));
		json_object_object_add(sc, "scan_seconds", json_object_new_int(o.scan_s));
		json_object_object_add(sc, "smoke", json_object_new_boolean(o.smoke));
		/* The QEMU domains' accelerator; the vmm side's is "accel" below. */
		json_object_object_add(sc, "qemu_accel", json_object_new_string("tcg"));
		json_object_object_add(root, "scenario", sc);
		bench_accel_json_add(root);
		json_object_object_add(root, "ideal_pages", json_object_new_int64((int64_t)ideal));
		json_object_object_add(root, "t0",
				       json_object_new_string("the scanner is switched on, after "
							      "every guest has finished filling"));
		json_object *a = side_json(&theirs, ideal), *b = side_json(&ours, ideal);
		json_object_object_foreach (jq, k1, v1)
			json_object_object_add(a, k1, json_object_get(v1));
		json_object_object_foreach (jv, k2, v2)
			json_object_object_add(b, k2, json_object_get(v2));
		json_object_object_add(root, "ksmd", a);
		json_object_object_add(root, "vmm", b);
		json_object *r = json_object_new_object();
		json_object_object_add(r, "t50", jdouble(ratio(ours.m.t50, theirs.m.t50)));
		json_object_object_add(r, "t90", jdouble(ratio(ours.m.t90, theirs.m.t90)));
		json_object_object_add(r, "t99", jdouble(ratio(ours.m.t99, theirs.m.t99)));
		json_object_object_add(r, "cpu99", jdouble(ratio(ours.m.cpu99, theirs.m.cpu99)));
		json_object_object_add(r, "cpu_to_end",
				       jdouble(ratio(ours.cpu_total, theirs.cpu_total)));
		json_object_object_add(
			r, "saved_end",
			jdouble(ratio((double)ours.saved_end, (double)theirs.saved_end)));
		json_object_object_add(
			r, "host_pss_end",
			jdouble(ratio((double)ours.pss_end, (double)theirs.pss_end)));
		json_object_object_add(root, "ratios_vmm_over_ksmd", r);
		json_object_object_add(root, "plot", json_object_new_string(png));
		json_object_object_add(root, "ok", json_object_new_boolean(!failed));
		if (json_object_to_file_ext(o.json_path, root, JSON_C_TO_STRING_PRETTY)) {
			fprintf(stderr, "bench_libvirt: cannot write %s\n", o.json_path);
			failed = 1;
		}
	}
	json_object_put(root);
	json_object_put(jq);
	json_object_put(jv);
	for (int i = 0; i < run.nguests; i++)
		json_object_put(run.g[i].reports);
	ksm_curve_free(&theirs.curve);
	ksm_curve_free(&ours.curve);
	if (!failed && (theirs.guests_ok != o.vms || ours.guests_ok != o.vms))
		failed = 1;
	return failed ? 1 : 0;
}
