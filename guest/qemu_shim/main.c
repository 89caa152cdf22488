/*
 * main.c - the shim's boot sequence: from QEMU's multiboot hand-off to the
 * guest's entry point, in the state our VMM starts guests in.
 *
 *  1. Copy what we need out of the multiboot info (command line, the first
 *     module, the memory map): QEMU put the info at 0x9000, where the guest
 *     page tables go.
 *  2. Parse the command line: `SHIM_PATH vm_index=I vm_count=N [verbose=1]
 *     -- GUEST ARGS` (QEMU puts the kernel's path first). An unknown or bad
 *     option prints `qemu_shim: ...` and exits with code 2. Then print
 *     `@boot vm_index=I`, the first line a good boot prints.
 *  3. Guest RAM size: QEMU's fw_cfg RAM size (exact), cross-checked with the
 *     multiboot memory map, whose usable RAM stops short of the ACPI tables
 *     at the top; without fw_cfg, the map's top rounded up to 2 MiB. It must
 *     be a multiple of 2 MiB from 4 MiB to 3 GiB (one hole-free range).
 *  4. Validate the guest ELF exactly as vmm/elf_loader.c does. The module
 *     must lie in conventional memory (QEMU loads it right after the shim's
 *     bss, below 640 KiB), so it never overlaps what we build or load.
 *  5. Build and load the guest_abi.h boot area (x86.c), remap the PICs and
 *     calibrate the TSC (timer.c).
 *  6. Make guest RAM from the image base up read as zeroes, as the VMM's
 *     fresh memory does: SeaBIOS leaves data in a few places above 1 MiB.
 *     Only pages that are not already zero are written, so the host does not
 *     have to back untouched guest memory (which matters for KSM).
 *  7. Load the PT_LOAD segments (zeroing their bss), write the boot info with
 *     heap_start/heap_end/stack_top computed as vmm/vm.c does, and enter the
 *     guest at CPL 3 with %rdi = the boot info (entry.S).
 *
 * Steps 6 and the segment copy of 7 touch every guest page: millions of
 * instructions, which is fine under TCG but takes minutes where ring 0 is
 * emulated (KVM on this platform). So they run at CPL 3: the shim's image
 * and the module are made user-accessible, user_phase() runs on a stack in
 * our bss and ends with an `out` of SHIM_HC_BOOT_DONE to the hypercall port,
 * which trap.c accepts only during that phase and answers by calling
 * shim_boot_done() on a fresh ring-0 stack. The pages go back to
 * supervisor-only before the guest starts. Ring-0 work stays a few thousand
 * instructions plus the 10 ms TSC calibration.
 */
#include <elf.h>

#include "shim.h"

#define MB_BOOT_MAGIC 0x2BADB002u
#define MB_INFO_MEMORY (1u << 0)
#define MB_INFO_CMDLINE (1u << 2)
#define MB_INFO_MODULES (1u << 3)
#define MB_INFO_MMAP (1u << 6)
#define E820_RAM 1
#define ONE_MIB (1ull << 20)
#define TWO_MIB (2ull << 20)
#define MAX_MEM_BYTES (3ull << 30)
#define CONVENTIONAL_END 0x9f000ull /* below the EBDA and the VGA window */
#define CMDLINE_MAX 4096
#define ELF_MAX_SEGMENTS 16
#define FW_CFG_PORT_SEL 0x510
#define FW_CFG_PORT_DATA 0x511
#define FW_CFG_SIGNATURE 0x0000
#define FW_CFG_RAM_SIZE 0x0003

#define PAGE_ALIGN_UP(x) (((x) + GUEST_PAGE_SIZE - 1) & ~(GUEST_PAGE_SIZE - 1))

struct __attribute__((packed)) mb_info {
	uint32_t flags;
	uint32_t mem_lower, mem_upper; /* KiB below 1 MiB, KiB from 1 MiB up */
	uint32_t boot_device;
	uint32_t cmdline;
	uint32_t mods_count, mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length, mmap_addr;
};

struct __attribute__((packed)) mb_module {
	uint32_t start, end, cmdline, reserved;
};

struct __attribute__((packed)) mb_mmap_entry {
	uint32_t size; /* of the rest of the entry */
	uint64_t addr, len;
	uint32_t type;
};

struct options {
	uint32_t vm_index, vm_count;
	int verbose;
	const char *args; /* into cmdline[] */
	size_t args_len;
};

struct segment {
	uint64_t gpa, file_offset, file_bytes, mem_bytes;
};

struct image {
	const uint8_t *data;
	uint64_t size, entry, lowest, end;
	unsigned nsegments;
	struct segment segments[ELF_MAX_SEGMENTS];
};

uint64_t guest_mem_bytes;
static char cmdline[CMDLINE_MAX];

int guest_range_ok(uint64_t gpa, uint64_t len)
{
	return gpa >= GUEST_PAGE_SIZE && len <= guest_mem_bytes && gpa <= guest_mem_bytes - len;
}

__attribute__((noreturn, format(printf, 1, 2))) static void usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	con_line_start();
	con_write("qemu_shim: ", 11);
	con_vprintf(fmt, ap);
	va_end(ap);
	con_write("\n", 1);
	shim_exit(SHIM_EXIT_USAGE);
}

/* --- 2. the command line --- */

static int word_is(const char *w, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(w, s, n) == 0;
}

static uint32_t option_number(const char *key, const char *v, size_t n)
{
	uint64_t x = 0;
	unsigned base = 10;
	if (n > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
		base = 16;
		v += 2;
		n -= 2;
	}
	if (n == 0 || n > 9)
		usage_error("option %s= needs a number", key);
	for (size_t i = 0; i < n; i++) {
		char c = v[i];
		unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
			     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
			     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
						    : 99;
		if (d >= base)
			usage_error("option %s= needs a number", key);
		x = x * base + d;
	}
	return (uint32_t)x;
}

static void parse_options(struct options *o)
{
	o->vm_index = 0;
	o->vm_count = 1;
	o->verbose = 0;
	o->args = "";
	o->args_len = 0;
	const char *p = cmdline;
	int first = 1;
	for (;;) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		const char *w = p;
		while (*p && *p != ' ')
			p++;
		size_t n = (size_t)(p - w);
		const char *eq = w;
		while (eq < p && *eq != '=')
			eq++;
		/* QEMU (and GRUB) pass the kernel's own path as the first word. */
		if (first && eq == p && !word_is(w, n, "--")) {
			first = 0;
			continue;
		}
		first = 0;
		if (word_is(w, n, "--")) {
			while (*p == ' ')
				p++;
			size_t len = strlen(p);
			while (len && p[len - 1] == ' ')
				len--;
			o->args = p;
			o->args_len = len;
			break;
		}
		size_t klen = (size_t)(eq - w), vlen = eq < p ? (size_t)(p - eq - 1) : 0;
		if (eq < p && word_is(w, klen, "vm_index"))
			o->vm_index = option_number("vm_index", eq + 1, vlen);
		else if (eq < p && word_is(w, klen, "vm_count"))
			o->vm_count = option_number("vm_count", eq + 1, vlen);
		else if (eq < p && word_is(w, klen, "verbose"))
			o->verbose = option_number("verbose", eq + 1, vlen) != 0;
		else {
			char word[64];
			size_t wn = n < sizeof(word) - 1 ? n : sizeof(word) - 1;
			memcpy(word, w, wn);
			word[wn] = 0;
			usage_error("unknown option '%s' (usage: -append \"vm_index=I vm_count=N "
				    "[verbose=1] -- GUEST ARGS\")",
				    word);
		}
	}
	if (o->vm_count == 0)
		usage_error("vm_count must be at least 1");
	if (o->vm_index >= o->vm_count)
		usage_error("vm_index=%u is not below vm_count=%u", o->vm_index, o->vm_count);
	if (o->args_len >= GUEST_ARGS_MAX)
		usage_error("the guest arguments are %lu bytes long, at most %llu fit", o->args_len,
			    GUEST_ARGS_MAX - 1ull);
}

/* --- 3. RAM size --- */

static uint64_t fw_cfg_read(uint16_t key, unsigned bytes)
{
	uint64_t v = 0;
	outw(FW_CFG_PORT_SEL, key);
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)inb(FW_CFG_PORT_DATA) << (8 * i);
	return v;
}

/* QEMU's RAM size from fw_cfg, or 0 if there is no fw_cfg. */
static uint64_t fw_cfg_ram_size(void)
{
	if (fw_cfg_read(FW_CFG_SIGNATURE, 4) != 0x554d4551) /* "QEMU" */
		return 0;
	return fw_cfg_read(FW_CFG_RAM_SIZE, 8);
}

/* End of the usable RAM that starts at 1 MiB, per multiboot. */
static uint64_t multiboot_ram_top(const struct mb_info *mbi)
{
	uint64_t top = 0;
	if (mbi->flags & MB_INFO_MMAP) {
		uint64_t p = mbi->mmap_addr, end = p + mbi->mmap_length;
		while (p + sizeof(struct mb_mmap_entry) <= end) {
			const struct mb_mmap_entry *e = (const void *)(uintptr_t)p;
			if (e->type == E820_RAM && e->addr <= ONE_MIB && e->addr + e->len > ONE_MIB)
				top = e->addr + e->len;
			p += e->size + 4;
		}
	}
	if (!top && (mbi->flags & MB_INFO_MEMORY))
		top = ONE_MIB + (uint64_t)mbi->mem_upper * 1024;
	return top;
}

static uint64_t guest_ram_size(const struct mb_info *mbi)
{
	uint64_t top = multiboot_ram_top(mbi), fw = fw_cfg_ram_size(), mem;
	if (!top)
		usage_error("the multiboot loader reported no memory");
	if (fw) {
		if (top > fw)
			usage_error("multiboot reports RAM up to 0x%lx but fw_cfg says %lu bytes",
				    top, fw);
		mem = fw;
	} else {
		mem = (top + TWO_MIB - 1) & ~(TWO_MIB - 1);
	}
	if (mem % TWO_MIB || mem < GUEST_MIN_MEM_BYTES || mem > MAX_MEM_BYTES)
		usage_error("%lu KiB of RAM: the shim needs a multiple of 2 MiB from 4 MiB to 3 "
			    "GiB (qemu -m)",
			    mem >> 10);
	return mem;
}

/* --- 4. the guest image: the checks of vmm/elf_loader.c --- */

static void parse_image(struct image *img, const uint8_t *data, uint64_t size, uint64_t mem)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)data;
	memset(img, 0, sizeof(*img));
	if (size < EI_NIDENT || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
		usage_error("guest image: not an ELF file");
	if (size < sizeof(*eh) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64)
		usage_error("guest image: not a 64-bit x86-64 ELF file");
	if (eh->e_type != ET_EXEC)
		usage_error("guest image: not a static executable (ELF type %u)", eh->e_type);
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 || eh->e_phoff > size ||
	    (size - eh->e_phoff) / sizeof(Elf64_Phdr) < eh->e_phnum)
		usage_error("guest image: program headers are missing or truncated");
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(data + eh->e_phoff);
	img->data = data;
	img->size = size;
	img->entry = eh->e_entry;
	img->lowest = UINT64_MAX;
	int entry_ok = 0;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD || ph[i].p_memsz == 0)
			continue;
		if (img->nsegments == ELF_MAX_SEGMENTS)
			usage_error("guest image: more than %d loadable segments",
				    ELF_MAX_SEGMENTS);
		if (ph[i].p_filesz > ph[i].p_memsz || ph[i].p_offset > size ||
		    size - ph[i].p_offset < ph[i].p_filesz)
			usage_error("guest image: segment %u lies outside the file", i);
		if (ph[i].p_vaddr + ph[i].p_memsz < ph[i].p_vaddr)
			usage_error("guest image: segment %u wraps around the address space", i);
		struct segment *s = &img->segments[img->nsegments++];
		s->gpa = ph[i].p_vaddr;
		s->file_offset = ph[i].p_offset;
		s->file_bytes = ph[i].p_filesz;
		s->mem_bytes = ph[i].p_memsz;
		if (s->gpa < img->lowest)
			img->lowest = s->gpa;
		if (s->gpa + s->mem_bytes > img->end)
			img->end = s->gpa + s->mem_bytes;
		if (img->entry >= s->gpa && img->entry < s->gpa + s->mem_bytes &&
		    (ph[i].p_flags & PF_X))
			entry_ok = 1;
	}
	if (img->nsegments == 0)
		usage_error("guest image: no loadable segments");
	if (!entry_ok)
		usage_error("guest image: entry point 0x%lx is not in an executable segment",
			    img->entry);
	if (img->lowest < GUEST_IMAGE_BASE)
		usage_error("guest image: loads at 0x%lx, below the guest image base 0x%llx",
			    img->lowest, GUEST_IMAGE_BASE);
	uint64_t limit = mem - GUEST_STACK_BYTES;
	if (img->end > limit || PAGE_ALIGN_UP(img->end) >= limit)
		usage_error("guest image: ends at 0x%lx and does not fit in %lu MiB of guest "
			    "memory (the stack takes the top %llu KiB)",
			    img->end, mem >> 20, GUEST_STACK_BYTES >> 10);
}

/* --- 6. zeroed RAM --- */

static int page_is_zero(const uint64_t *p)
{
	for (unsigned i = 0; i < GUEST_PAGE_SIZE / 8; i += 8)
		if (p[i] | p[i + 1] | p[i + 2] | p[i + 3] | p[i + 4] | p[i + 5] | p[i + 6] |
		    p[i + 7])
			return 0;
	return 1;
}

/* Zeroes the pages of [start, end) that are not zero; returns how many. */
static uint64_t clear_dirty_pages(uint64_t start, uint64_t end)
{
	uint64_t cleared = 0;
	for (uint64_t gpa = start; gpa < end; gpa += GUEST_PAGE_SIZE) {
		uint64_t *p = (uint64_t *)(uintptr_t)gpa;
		if (!page_is_zero(p)) {
			memset(p, 0, GUEST_PAGE_SIZE);
			cleared++;
		}
	}
	return cleared;
}

/* --- the whole sequence --- */

/* State that crosses the CPL-3 phase: the ring-0 stack restarts at its top
 * when the phase traps back, so none of it may live on the stack. */
static struct options opt;
static struct image img;
static uint64_t mod_start, mod_end, ns_timer;
static uint64_t user_cleared; /* written at CPL 3 */
static uint8_t user_stack[4096] __attribute__((aligned(16)));
int boot_user_phase;

/* Steps 6 and 7a at CPL 3, on the shim's image made user-accessible for the
 * while: these loops touch every guest page, far too many instructions for
 * an emulated ring 0 (KVM here). Ends with the SHIM_HC_BOOT_DONE trap. */
__attribute__((noreturn)) static void user_phase(void)
{
	user_cleared = clear_dirty_pages(GUEST_IMAGE_BASE, guest_mem_bytes);
	for (unsigned i = 0; i < img.nsegments; i++) {
		const struct segment *s = &img.segments[i];
		uint8_t *dst = (uint8_t *)(uintptr_t)s->gpa;
		memcpy(dst, img.data + s->file_offset, s->file_bytes);
		memset(dst + s->file_bytes, 0, s->mem_bytes - s->file_bytes);
	}
	__asm__ volatile("outl %%eax, %%dx"
			 :
			 : "a"(SHIM_HC_BOOT_DONE), "d"((uint16_t)GUEST_PORT_HYPERCALL)
			 : "memory");
	for (;;)
		;
}

void shim_main(void);

void shim_main(void)
{
	uint64_t tsc_entry = rdtsc();
	if (multiboot_magic != MB_BOOT_MAGIC)
		usage_error("not started by a multiboot loader (magic 0x%x)", multiboot_magic);

	/* 1. */
	const struct mb_info *mbi = (const void *)(uintptr_t)multiboot_info;
	if (mbi->flags & MB_INFO_CMDLINE) {
		const char *c = (const char *)(uintptr_t)mbi->cmdline;
		size_t n = strlen(c);
		if (n >= sizeof(cmdline))
			usage_error("the command line is longer than %d bytes", CMDLINE_MAX - 1);
		memcpy(cmdline, c, n + 1);
	}
	if ((mbi->flags & MB_INFO_MODULES) && mbi->mods_count > 0) {
		const struct mb_module *m = (const void *)(uintptr_t)mbi->mods_addr;
		mod_start = m->start;
		mod_end = m->end;
	}

	/* 2. */
	parse_options(&opt);
	con_printf("@boot vm_index=%u\n", opt.vm_index);

	/* 3. */
	uint64_t mem = guest_ram_size(mbi);
	guest_mem_bytes = mem;

	/* 4. */
	if (!mod_end)
		usage_error("no guest image: pass the guest ELF as the first multiboot module "
			    "(qemu -initrd GUEST)");
	if (mod_start < (uint64_t)(uintptr_t)__shim_bss_end || mod_end < mod_start ||
	    mod_end > CONVENTIONAL_END)
		usage_error("guest image at 0x%lx-0x%lx: it must lie between the shim and 0x%llx "
			    "(at most about %llu KiB)",
			    mod_start, mod_end, CONVENTIONAL_END,
			    (CONVENTIONAL_END - (uint64_t)(uintptr_t)__shim_bss_end) >> 10);
	parse_image(&img, (const uint8_t *)(uintptr_t)mod_start, mod_end - mod_start, mem);

	/* 5. The multiboot info is gone after this. */
	x86_build_boot_area(mem);
	x86_load_boot_area();
	timer_init(tsc_entry);
	ns_timer = timer_clock_ns();

	/* 6, 7a: at CPL 3, back in shim_boot_done(). */
	x86_set_user(SHIM_BASE, PAGE_ALIGN_UP(mod_end), 1);
	boot_user_phase = 1;
	enter_guest((uint64_t)(uintptr_t)user_phase,
		    (uint64_t)(uintptr_t)(user_stack + sizeof(user_stack) - 8), 0);
}

void shim_boot_done(void)
{
	boot_user_phase = 0;
	x86_set_user(SHIM_BASE, PAGE_ALIGN_UP(mod_end), 0);
	uint64_t ns_cleared = timer_clock_ns(), mem = guest_mem_bytes;

	/* 7b. */
	struct guest_boot_info *bi = (struct guest_boot_info *)(uintptr_t)GUEST_BOOT_INFO_GPA;
	memset(bi, 0, GUEST_PAGE_SIZE);
	bi->magic = GUEST_BOOT_MAGIC;
	bi->mem_bytes = mem;
	bi->heap_start = PAGE_ALIGN_UP(img.end);
	bi->heap_end = mem - GUEST_STACK_BYTES;
	bi->stack_top = mem;
	bi->vm_index = opt.vm_index;
	bi->vm_count = opt.vm_count;
	bi->tsc_khz = tsc_khz;
	memcpy(bi->args, opt.args, opt.args_len);
	bi->args[opt.args_len] = 0;

	if (opt.verbose) {
		con_printf("qemu_shim: %lu MiB of RAM; guest image %lu bytes at 0x%lx, loaded "
			   "0x%lx-0x%lx, entry 0x%lx; heap 0x%lx-0x%lx; tsc %lu kHz\n",
			   mem >> 20, mod_end - mod_start, mod_start, img.lowest, img.end,
			   img.entry, bi->heap_start, bi->heap_end, tsc_khz);
		con_printf("qemu_shim: timer calibrated at %lu us, RAM checked and image loaded "
			   "at %lu us (%lu of %lu pages were not zero), guest entered at %lu us "
			   "after shim entry\n",
			   ns_timer / 1000, ns_cleared / 1000, user_cleared,
			   (uint64_t)((mem - GUEST_IMAGE_BASE) / GUEST_PAGE_SIZE),
			   timer_clock_ns() / 1000);
	}
	if (!tsc_khz)
		con_printf("qemu_shim: warning: the PIT did not answer; the guest clock assumes "
			   "a 1 GHz TSC\n");
	enter_guest(img.entry, bi->stack_top, GUEST_BOOT_INFO_GPA);
}
