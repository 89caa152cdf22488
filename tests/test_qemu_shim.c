/* test_qemu_shim.c - end-to-end: our guest ELF images booted by the QEMU
 * boot shim (guest/qemu_shim) under `qemu-system-x86_64 -accel tcg`, run
 * directly (no libvirt): console lines, exit codes through isa-debug-exit
 * (QEMU exits with (code << 1) | 1), hypercalls, a sleep that really idles,
 * guest exceptions, bad shim options, and the same guest layout as our VMM.
 *
 * QEMU is required: if it is missing the tests fail and say how to install
 * it, they are not skipped. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"

#define SHIM GUEST_DIR "/qemu_shim.bin"
#define QEMU_TIMEOUT_SECONDS 60

struct qemu_run {
	int status; /* QEMU's exit status, 128+signal, or -1 if it was killed on timeout */
	char *console;
	char *log; /* QEMU's own stdout and stderr */
	double wall_seconds, cpu_seconds;
};

static const char *qemu_binary(void)
{
	static char path[4096];
	const char *env = getenv("PATH");
	char dirs[4096];
	snprintf(dirs, sizeof(dirs), "%s:/usr/bin:/usr/local/bin", env ? env : "");
	for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(path, sizeof(path), "%s/qemu-system-x86_64", d);
		if (access(path, X_OK) == 0)
			return path;
	}
	cr_assert_fail("qemu-system-x86_64 is not installed: run scripts/install-deps.sh "
		       "qemu-system-x86 (scripts/test.sh does)");
	return NULL;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	cr_assert_not_null(buf);
	if (f) {
		size_t n;
		while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
			len += n;
			if (cap - len < 2) {
				cap *= 2;
				buf = realloc(buf, cap);
				cr_assert_not_null(buf);
			}
		}
		fclose(f);
	}
	buf[len] = 0;
	return buf;
}

/* Boots the shim with `guest` (a bundled guest's name or an absolute path;
 * NULL: no -initrd) in `mem` of RAM and the shim command line `append`. */
static void run_qemu(struct qemu_run *r, const char *mem, const char *guest, const char *append)
{
	const char *qemu = qemu_binary();
	cr_assert_not_null(qemu);
	cr_assert_eq(access(SHIM, R_OK), 0, "%s is missing: build the qemu_shim target", SHIM);
	char *console = write_temp_file(NULL, 0, ".console");
	char *log = write_temp_file(NULL, 0, ".log");
	char guest_path[512], chardev[600];
	if (guest)
		snprintf(guest_path, sizeof(guest_path), "%s%s%s", guest[0] == '/' ? "" : GUEST_DIR,
			 guest[0] == '/' ? "" : "/", guest);
	snprintf(chardev, sizeof(chardev), "file,id=con,path=%s", console);
	const char *argv[40];
	int n = 0;
	argv[n++] = qemu;
	const char *fixed[] = {"-accel",
			       "tcg",
			       "-machine",
			       "pc",
			       "-m",
			       mem,
			       "-display",
			       "none",
			       "-no-reboot",
			       "-kernel",
			       SHIM,
			       "-append",
			       append,
			       "-chardev",
			       chardev,
			       "-device",
			       "isa-debugcon,iobase=0xe9,chardev=con",
			       "-device",
			       "isa-debug-exit,iobase=0xf4,iosize=0x04"};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		argv[n++] = fixed[i];
	if (guest) {
		argv[n++] = "-initrd";
		argv[n++] = guest_path;
	}
	argv[n] = NULL;

	double t0 = monotonic_seconds();
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_TRUNC);
		int null = open("/dev/null", O_RDONLY);
		if (fd < 0 || null < 0)
			_exit(126);
		dup2(null, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(qemu, (char *const *)argv);
		_exit(127);
	}
	int status = 0;
	struct rusage ru = {0};
	for (;;) {
		pid_t w = wait4(pid, &status, WNOHANG, &ru);
		cr_assert_geq(w, 0, "wait4: %s", strerror(errno));
		if (w == pid)
			break;
		if (monotonic_seconds() - t0 > QEMU_TIMEOUT_SECONDS) {
			kill(pid, SIGKILL);
			cr_assert_eq(wait4(pid, &status, 0, &ru), pid);
			status = -1;
			break;
		}
		usleep(2000);
	}
	r->wall_seconds = monotonic_seconds() - t0;
	r->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
			 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
	r->status = status == -1	? -1
		    : WIFEXITED(status) ? WEXITSTATUS(status)
					: 128 + WTERMSIG(status);
	r->console = read_file(console);
	r->log = read_file(log);
	unlink(console);
	unlink(log);
	free(console);
	free(log);
}

static void qemu_run_free(struct qemu_run *r)
{
	free(r->console);
	free(r->log);
}

/* isa-debug-exit: the guest's exit code `code` makes QEMU exit with this. */
static int exit_status_of(int code)
{
	return (code << 1) | 1;
}

#define assert_console_has(r, text)                                                                \
	cr_assert(strstr((r)->console, (text)), "console lacks '%s':\n%s\nQEMU said:\n%s", (text), \
		  (r)->console, (r)->log)

Test(qemu_shim, hello_prints_and_exits_zero)
{
	struct qemu_run r;
	run_qemu(&r, "64M", "hello", "vm_index=0 vm_count=1 -- greeting=1");
	cr_assert_eq(r.status, exit_status_of(0), "status %d\nconsole:\n%s\nQEMU said:\n%s",
		     r.status, r.console, r.log);
	cr_assert_eq(strncmp(r.console, "@boot vm_index=0\n", 17), 0,
		     "the first console line is @boot:\n%s", r.console);
	assert_console_has(&r, "\nhello from vm0 of 1: 64 MiB of RAM, args 'greeting=1'\n");
	assert_console_has(&r, "\n@exit 0\n");
	qemu_run_free(&r);
}

Test(qemu_shim, vm_index_count_and_ram_size_reach_the_guest)
{
	struct qemu_run r;
	run_qemu(&r, "512M", "hello", "vm_index=2 vm_count=3 -- a=1  b=2 ");
	cr_assert_eq(r.status, exit_status_of(0), "console:\n%s\nQEMU said:\n%s", r.console, r.log);
	assert_console_has(&r, "@boot vm_index=2\n");
	assert_console_has(&r, "hello from vm2 of 3: 512 MiB of RAM, args 'a=1  b=2'\n");
	qemu_run_free(&r);

	run_qemu(&r, "32M", "hello", "");
	cr_assert_eq(r.status, exit_status_of(0), "console:\n%s", r.console);
	assert_console_has(&r, "hello from vm0 of 1: 32 MiB of RAM, args ''\n");
	qemu_run_free(&r);
}

Test(qemu_shim, pattern_reports_and_really_sleeps)
{
	struct qemu_run r;
	run_qemu(&r, "64M", "pattern", "vm_index=0 vm_count=2 -- mb=8 shared=50 hold=200");
	cr_assert_eq(r.status, exit_status_of(0), "console:\n%s\nQEMU said:\n%s", r.console, r.log);
	assert_console_has(&r, "\n@report pages 2048\n");
	assert_console_has(&r, "\n@report bad_pages 0\n");
	assert_console_has(&r, "\n@report rewritten_pages 0\n");
	assert_console_has(&r, "\n@buffer 0x103000 0x800000\n");
	assert_console_has(&r, "pattern: all 2048 pages verified\n");
	assert_console_has(&r, "\n@exit 0\n");
	/* The guest clock runs at the right speed: fill_done_ns is the time since
	 * the shim started, which is within QEMU's wall time. */
	const char *done = strstr(r.console, "@report fill_done_ns ");
	cr_assert_not_null(done);
	double fill_done = strtod(done + strlen("@report fill_done_ns "), NULL) * 1e-9;
	cr_assert(fill_done > 0 && fill_done < r.wall_seconds, "fill done at %.3f s, wall %.3f s",
		  fill_done, r.wall_seconds);
	/* The 200 ms hold idles the vCPU: QEMU spends it off the CPU. Booting
	 * and filling 8 MiB cost CPU time; busy-waiting would add ~0.2 s. */
	cr_assert_geq(r.wall_seconds, 0.2, "wall %.3f s", r.wall_seconds);
	cr_assert_lt(r.cpu_seconds, r.wall_seconds - 0.15,
		     "QEMU used %.3f s of CPU in %.3f s of wall time: the sleep did not idle",
		     r.cpu_seconds, r.wall_seconds);
	qemu_run_free(&r);
}

Test(qemu_shim, guest_exception_is_reported_with_exit_code_3)
{
	struct qemu_run r;
	run_qemu(&r, "32M", "crash", "-- kind=pf");
	cr_assert_eq(r.status, exit_status_of(3), "console:\n%s\nQEMU said:\n%s", r.console, r.log);
	assert_console_has(&r, "\nguest exception #PF at rip=0x");
	assert_console_has(&r, " cr2=0x8 error=0x6\n@exit 3\n");
	qemu_run_free(&r);

	run_qemu(&r, "32M", "crash", "-- kind=gp");
	cr_assert_eq(r.status, exit_status_of(3), "console:\n%s", r.console);
	assert_console_has(&r, "\nguest exception #GP at rip=0x");
	qemu_run_free(&r);

	run_qemu(&r, "32M", "crash", "-- kind=ud");
	cr_assert_eq(r.status, exit_status_of(3), "console:\n%s", r.console);
	assert_console_has(&r, "\nguest exception #UD at rip=0x");
	qemu_run_free(&r);
}

/* The line after `prefix` in `text`, up to its newline (malloc'd), or NULL. */
static char *line_after(const char *text, const char *prefix)
{
	const char *p = strstr(text, prefix);
	if (!p)
		return NULL;
	p += strlen(prefix);
	return strndup(p, strcspn(p, "\n"));
}

/* QEMU with the shim delivers a guest's exception through a real IDT: an
 * independent account of vector, RIP, CR2 and error code. The VMM must
 * report the same on TCG, and on KVM where it is usable. */
Test(qemu_shim, vmm_reports_exceptions_as_qemu_does)
{
	static const char *const kinds[] = {"kind=pf", "kind=gp", "kind=ud", "kind=de"};
	static const char *const accels[] = {"tcg", "kvm"};
	for (int k = 0; k < 4; k++) {
		char append[64];
		snprintf(append, sizeof(append), "-- %s", kinds[k]);
		struct qemu_run r;
		run_qemu(&r, "64M", "crash", append);
		char *want = line_after(r.console, "\nguest exception ");
		cr_assert_not_null(want, "QEMU's console:\n%s", r.console);
		qemu_run_free(&r);
		for (int a = 0; a < 2; a++) {
			struct vmm_output o;
			vmm_run(&o, "run", "--accel", accels[a], "--quiet", "crash", "--",
				kinds[k]);
			if (a == 1 && o.status == 2 && strstr(o.err, "--accel kvm: ")) {
				vmm_output_free(&o); /* no KVM here: the TCG side was checked */
				continue;
			}
			char *got = line_after(o.err, "vm0: guest exception ");
			cr_assert_not_null(got, "%s on %s: stderr %s", kinds[k], accels[a], o.err);
			cr_assert_str_eq(got, want, "%s on %s: vmm says '%s', QEMU '%s'", kinds[k],
					 accels[a], got, want);
			free(got);
			vmm_output_free(&o);
		}
		free(want);
	}
}

Test(qemu_shim, guest_exit_code_passes_through)
{
	struct qemu_run r;
	run_qemu(&r, "32M", "crash", "-- kind=exit code=5");
	cr_assert_eq(r.status, exit_status_of(5), "console:\n%s", r.console);
	assert_console_has(&r, "\n@exit 5\n");
	qemu_run_free(&r);

	/* A minimal image that writes 42 to the exit port itself. */
	struct crafted_elf e;
	size_t size = craft_elf(&e, 0x100000, 4096);
	char *path = write_temp_file(&e, size, ".elf");
	run_qemu(&r, "32M", path, "");
	cr_assert_eq(r.status, exit_status_of(42), "console:\n%s", r.console);
	cr_assert_str_eq(r.console, "@boot vm_index=0\n@exit 42\n");
	qemu_run_free(&r);
	unlink(path);
	free(path);
}

Test(qemu_shim, bad_shim_option_exits_2_with_a_message)
{
	struct qemu_run r;
	run_qemu(&r, "32M", "hello", "vm_index=0 bogus=1 -- greeting=1");
	cr_assert_eq(r.status, exit_status_of(2), "console:\n%s\nQEMU said:\n%s", r.console, r.log);
	assert_console_has(&r, "qemu_shim: unknown option 'bogus=1'");
	assert_console_has(&r, "\n@exit 2\n");
	cr_assert_null(strstr(r.console, "hello from"), "the guest must not run");
	qemu_run_free(&r);

	run_qemu(&r, "32M", "hello", "vm_index=3 vm_count=2");
	cr_assert_eq(r.status, exit_status_of(2), "console:\n%s", r.console);
	assert_console_has(&r, "qemu_shim: vm_index=3 is not below vm_count=2\n");
	qemu_run_free(&r);

	run_qemu(&r, "32M", "hello", "vm_index=x");
	cr_assert_eq(r.status, exit_status_of(2), "console:\n%s", r.console);
	assert_console_has(&r, "qemu_shim: option vm_index= needs a number\n");
	qemu_run_free(&r);

	run_qemu(&r, "32M", NULL, "-- greeting=1");
	cr_assert_eq(r.status, exit_status_of(2), "console:\n%s", r.console);
	assert_console_has(&r, "qemu_shim: no guest image");
	qemu_run_free(&r);

	/* Not an ELF file: the shim binary itself. */
	run_qemu(&r, "32M", "qemu_shim.bin", "");
	cr_assert_eq(r.status, exit_status_of(2), "console:\n%s", r.console);
	assert_console_has(&r, "qemu_shim: guest image: not an ELF file\n");
	qemu_run_free(&r);
}

/* The guest sees the layout our VMM gives it: the same heap start (where
 * pattern's buffer goes) and heap end. */
Test(qemu_shim, same_layout_as_the_vmm)
{
	struct vmm_output o;
	vmm_run_json(&o, "run", "--mem", "64M", "pattern", "--", "mb=4", "shared=50");
	cr_assert_eq(o.status, 0, "stderr: %s", o.err);
	json_object *vm = report_vm(o.report, 0);
	int64_t gpa = json_path_int(vm, "memory.buffer_gpa");
	int64_t bytes = json_path_int(vm, "memory.buffer_bytes");
	vmm_output_free(&o);
	cr_assert_eq(bytes, 4 << 20);

	struct qemu_run r;
	run_qemu(&r, "64M", "pattern", "-- mb=4 shared=50");
	cr_assert_eq(r.status, exit_status_of(0), "console:\n%s", r.console);
	char line[128];
	snprintf(line, sizeof(line), "\n@buffer 0x%llx 0x%llx\n", (unsigned long long)gpa,
		 (unsigned long long)bytes);
	assert_console_has(&r, line);
	qemu_run_free(&r);

	/* heap_end - heap_start, as pattern reports it when it does not fit. */
	vmm_run(&o, "run", "--mem", "64M", "pattern", "--", "mb=1000");
	const char *why = strstr(o.out, "error: pattern: mb=1000 does not fit");
	cr_assert_not_null(why, "stdout: %s", o.out);
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(why, "\n"), why);
	vmm_output_free(&o);
	run_qemu(&r, "64M", "pattern", "-- mb=1000");
	cr_assert_eq(r.status, exit_status_of(2), "console:\n%s", r.console);
	assert_console_has(&r, line);
	qemu_run_free(&r);
}

/* The flat binary is what the multiboot header says: QEMU reads exactly
 * load_end_addr - load_addr bytes of it. */
Test(qemu_shim, multiboot_header_matches_the_file)
{
	FILE *f = fopen(SHIM, "rb");
	cr_assert_not_null(f, "%s is missing: build the qemu_shim target", SHIM);
	static uint32_t words[2048];
	size_t n = fread(words, 1, sizeof(words), f);
	struct stat st;
	cr_assert_eq(fstat(fileno(f), &st), 0);
	fclose(f);
	int found = -1;
	for (size_t i = 0; i + 8 <= n / 4; i++)
		if (words[i] == 0x1BADB002 && words[i] + words[i + 1] + words[i + 2] == 0) {
			found = (int)i;
			break;
		}
	cr_assert_geq(found, 0, "no multiboot header in the first 8 KiB");
	const uint32_t *h = words + found;
	cr_assert(h[1] & (1u << 16), "the header has the address fields");
	uint32_t header_addr = h[3], load_addr = h[4], load_end = h[5], bss_end = h[6];
	uint32_t entry = h[7];
	cr_assert_eq(header_addr - load_addr, (uint32_t)found * 4);
	cr_assert_eq(load_end - load_addr, (uint32_t)st.st_size, "file size %lld",
		     (long long)st.st_size);
	cr_assert_geq(bss_end, load_end);
	cr_assert(entry >= load_addr && entry < load_end);
	cr_assert_geq(load_addr, 0x10000u, "above the boot area of guest_abi.h");
	cr_assert_leq(bss_end, 0x100000u, "below the guest image base");
}
