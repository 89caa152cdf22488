/*
 * trap.c - what the shim does once the guest runs: emulate the ports the
 * guest may not use directly, report its exceptions, end the run.
 *
 * The guest runs at CPL 3 with IOPL 0 and a TSS I/O bitmap that allows only
 * the console port, so `out` to the hypercall port (0x500) or the exit port
 * (0xF4) raises #GP with error code 0 at the `out` itself. trap_dispatch()
 * decodes the instruction at the guest's RIP (prefixes, then one of the
 * in/out opcodes), performs the access the way our VMM would (vmm/vm_exit.c),
 * stores a hypercall's result in the saved %rax and resumes the guest after
 * the instruction. Hypercall arguments are %rdi, %rsi, %rcx as in the VMM;
 * guest buffers are checked against guest RAM before the shim reads them.
 *
 * Console protocol (each on a line of its own; see README.md):
 *   @report KEY VALUE     GUEST_HC_REPORT, VALUE in decimal
 *   @buffer GPA LENGTH    GUEST_HC_DECLARE_BUFFER, both 0x-prefixed hex
 *   @exit CODE            printed right before CODE goes to the exit port
 *
 * Anything else that traps from CPL 3 (a real #GP, #PF, #UD, an `in`, an
 * `out` to a port with no device) is printed with the words the VMM uses and
 * ends the run with exit code 3. An exception in the shim itself (CPL 0) is
 * a shim bug: it is printed and also ends the run with 3.
 */
#include "shim.h"

#include "x86_arch.h"

#define HYPERCALL_WRITE_MAX 4096
#define SLEEP_MAX_NS (3600ull * 1000000000ull)
#define MAX_INSN_BYTES 15

static uint64_t read_cr2(void)
{
	uint64_t v;
	__asm__ volatile("mov %%cr2, %0" : "=r"(v));
	return v;
}

void shim_exit(uint32_t code)
{
	con_line_start();
	con_printf("@exit %u\n", code);
	outl(GUEST_PORT_EXIT, code);
	/* Without an isa-debug-exit device QEMU goes on: idle forever. */
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* The guest did something the VMM would end it for: say what, exit 3. */
__attribute__((noreturn, format(printf, 1, 2))) static void guest_fail(const char *fmt, ...);

static void print_exception(const char *who, const struct trap_frame *f)
{
	unsigned v = (unsigned)f->vector;
	con_line_start();
	if (v == 14)
		con_printf("%s %s at rip=0x%lx cr2=0x%lx error=0x%lx\n", who, x86_vector_name(v),
			   f->rip, read_cr2(), f->error);
	else if (x86_vector_has_error_code(v))
		con_printf("%s %s at rip=0x%lx error=0x%lx\n", who, x86_vector_name(v), f->rip,
			   f->error);
	else
		con_printf("%s %s at rip=0x%lx\n", who, x86_vector_name(v), f->rip);
}

static uint64_t hypercall(struct trap_frame *f, uint32_t nr)
{
	switch (nr) {
	case GUEST_HC_WRITE: {
		uint64_t len = f->rsi < HYPERCALL_WRITE_MAX ? f->rsi : HYPERCALL_WRITE_MAX;
		if (len && !guest_range_ok(f->rdi, len))
			guest_fail("hypercall write: buffer 0x%lx+%lu is outside guest memory",
				   f->rdi, f->rsi);
		con_write((const char *)(uintptr_t)f->rdi, len);
		return len;
	}
	case GUEST_HC_SLEEP_NS:
		timer_sleep_ns(f->rdi < SLEEP_MAX_NS ? f->rdi : SLEEP_MAX_NS);
		return 0;
	case GUEST_HC_CLOCK_NS:
		return timer_clock_ns();
	case GUEST_HC_REPORT: {
		if (!guest_range_ok(f->rdi, 1))
			guest_fail("hypercall report: key pointer 0x%lx is outside guest memory",
				   f->rdi);
		char key[GUEST_REPORT_KEY_MAX];
		const char *src = (const char *)(uintptr_t)f->rdi;
		size_t n = 0;
		while (n < sizeof(key) - 1 && guest_range_ok(f->rdi + n, 1) && src[n]) {
			char c = src[n];
			key[n++] = c > ' ' && c < 0x7f ? c : '?'; /* one word, printable */
		}
		key[n] = 0;
		con_line_start();
		con_printf("@report %s %lu\n", key, f->rsi);
		return 0;
	}
	case SHIM_HC_BOOT_DONE:
		if (!boot_user_phase)
			guest_fail("unknown hypercall %u at rip=0x%lx", nr, f->rip);
		shim_boot_done();
	case GUEST_HC_DECLARE_BUFFER:
		if (f->rdi > guest_mem_bytes || f->rsi > guest_mem_bytes - f->rdi)
			guest_fail("hypercall declare-buffer: 0x%lx+%lu is outside guest memory",
				   f->rdi, f->rsi);
		con_line_start();
		con_printf("@buffer 0x%lx 0x%lx\n", f->rdi, f->rsi);
		return 0;
	default:
		guest_fail("unknown hypercall %u at rip=0x%lx", nr, f->rip);
	}
}

static int is_prefix(uint8_t b)
{
	return b == 0x66 || b == 0x67 || b == 0xf2 || b == 0xf3 || b == 0x26 || b == 0x2e ||
	       b == 0x36 || b == 0x3e || b == 0x64 || b == 0x65 || (b >= 0x40 && b <= 0x4f);
}

/* A #GP at CPL 3 with error code 0: if it is an in/out instruction, emulate
 * it and return 1; otherwise return 0 (a real #GP). */
static int emulate_io(struct trap_frame *f)
{
	if (!guest_range_ok(f->rip, MAX_INSN_BYTES))
		return 0;
	const uint8_t *insn = (const uint8_t *)(uintptr_t)f->rip;
	unsigned len = 0, operand16 = 0;
	while (len < MAX_INSN_BYTES - 2 && is_prefix(insn[len]))
		operand16 |= insn[len++] == 0x66;
	uint8_t op = insn[len++];
	uint16_t port;
	switch (op) {
	case 0xe4: /* in/out with an 8-bit port number */
	case 0xe5:
	case 0xe6:
	case 0xe7:
		port = insn[len++];
		break;
	case 0xec: /* in/out with the port in %dx */
	case 0xed:
	case 0xee:
	case 0xef:
		port = (uint16_t)f->rdx;
		break;
	case 0x6c: /* ins, outs */
	case 0x6d:
	case 0x6e:
	case 0x6f:
		guest_fail("guest used string I/O on port 0x%x, which the QEMU shim does not "
			   "emulate",
			   (unsigned)(uint16_t)f->rdx);
	default:
		return 0;
	}
	unsigned size = (op & 1) ? (operand16 ? 2 : 4) : 1;
	if (!(op & 2))
		guest_fail("guest read from I/O port 0x%x, which has no device", port);
	uint32_t value = (uint32_t)f->rax;
	if (size < 4)
		value &= (1u << (size * 8)) - 1;
	switch (port) {
	case GUEST_PORT_CONSOLE: /* a wider write than the bitmap lets through */
		con_write((const char *)&value, size);
		break;
	case GUEST_PORT_EXIT:
		shim_exit(value);
	case GUEST_PORT_HYPERCALL:
		f->rax = hypercall(f, value);
		break;
	default:
		guest_fail("guest wrote to I/O port 0x%x, which has no device", port);
	}
	f->rip += len;
	return 1;
}

static void guest_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	con_line_start();
	con_vprintf(fmt, ap);
	va_end(ap);
	con_write("\n", 1);
	shim_exit(SHIM_EXIT_EXCEPTION);
}

void trap_dispatch(struct trap_frame *f)
{
	static int in_fatal;
	if (f->vector >= SHIM_IRQ_BASE) {
		timer_irq((unsigned)(f->vector - SHIM_IRQ_BASE));
		return;
	}
	if ((f->cs & 3) != 3) {
		if (in_fatal) { /* faulted while reporting: just stop */
			outl(GUEST_PORT_EXIT, SHIM_EXIT_EXCEPTION);
			for (;;)
				__asm__ volatile("cli; hlt");
		}
		in_fatal = 1;
		print_exception("qemu_shim: exception in the shim (ring 0):", f);
		shim_exit(SHIM_EXIT_EXCEPTION);
	}
	if (f->vector == 13 && f->error == 0 && emulate_io(f))
		return;
	print_exception(boot_user_phase ? "qemu_shim: exception at CPL 3 during boot:"
					: "guest exception",
			f);
	shim_exit(SHIM_EXIT_EXCEPTION);
}
