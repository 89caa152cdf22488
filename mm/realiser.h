/*
 * realiser.h - how a VM's vCPU comes to see its sEPT.
 *
 * The sEPT (mm/sept.h) is the authority on where each guest page lives. The
 * address space (guest_memory) changes it; a realiser makes the vCPU's
 * loads and stores follow the change. Two exist:
 *
 *   host   (host_realiser.c) guest RAM is one host virtual range, which KVM
 *          takes as the VM's memory slot and TCG maps as emulator RAM. A
 *          present page is a MAP_SHARED mapping of its pool frame there;
 *          every other page is an anonymous placeholder watched by the VM's
 *          userfaultfd, so a touch blocks the vCPU until mm's fault thread
 *          serves it (guest_memory_handle_fault). Write protection is
 *          uffd-wp. Each change costs an mmap and a re-registration.
 *   owned  (owned_realiser.c) TCG only: the sEPT's tables live in pool
 *          frames and are the x86 page table the emulated CPU walks (CR3 =
 *          the sEPT root, the whole pool mapped once at emulator-physical
 *          0). Changing an entry is all it takes; a not-present or
 *          read-only entry raises a #PF that the vCPU's own thread serves
 *          (guest_memory_cpu_fault) and the instruction runs again. No host
 *          mapping ever changes. The CPU sets the accessed and dirty bits,
 *          which the access log reads (GUEST_ACCESS_LOG_ACCESSED_BITS).
 *
 * The calls below are made with mem->lock held. `map` and `unmap` are told
 * about pages whose sEPT entries are being changed by the caller (host:
 * before or after the entry, whichever undoes more cleanly on failure;
 * owned: the entries are the mapping, so the call only asks for a TLB
 * flush where one is needed). The safety rule (guest_memory.h) holds for
 * both: a page's translation is only taken away or pointed elsewhere while
 * no vCPU of the VM can use it (the VM paused, or on the vCPU's own
 * thread); the owned realiser's TLB flush request (guest_memory_ops.
 * tlb_flush) is applied by the accelerator before the guest runs again.
 *
 *   map(gfn, frame, n, flags)  pages [gfn, gfn+n) map frames [frame, frame+n)
 *                              now; REALISE_REPLACES: they mapped other frames
 *                              before (copy-on-write, merge); REALISE_POPULATE:
 *                              the VMM wrote the frames (host: prefault);
 *                              REALISE_WRITE_PROTECT: writes must fault.
 *                              Returns 0 or -errno, and -ENOTRECOVERABLE when
 *                              the frames may still be reachable (never free
 *                              them then: guest_free_unmapped). A failure
 *                              after the frames were reachable has failed
 *                              the VM (a running vCPU may have used them).
 *   unmap(gfn, n)              the pages map no frame any more (evicted)
 *   write_protect(gfn, n, on)  arm or disarm write faults on private pages
 *                              (the write-protect access log; host only)
 *   wake(gfn, n)               a vCPU blocked on these pages may go on
 *   flush()                    the CPU must walk the entries again (their
 *                              accessed and dirty bits were cleared; a
 *                              translation it cached is stale)
 *   abandon()                  the VM failed: whatever its vCPU touches from
 *                              now on must not be a pool frame
 */
#ifndef MM_REALISER_H
#define MM_REALISER_H

#include <stddef.h>
#include <stdint.h>

struct guest_memory;
struct sept_table_source;

enum guest_realiser {
	GUEST_REALISER_HOST = 0,
	GUEST_REALISER_OWNED,
};

#define REALISE_POPULATE (1u << 0)
#define REALISE_WRITE_PROTECT (1u << 1)
#define REALISE_REPLACES (1u << 2)

struct realiser_ops {
	const char *name; /* "host", "owned" */
	/* Sets up the VM's side (host range, uffd) once the sEPT exists. */
	int (*init)(struct guest_memory *mem, char *err, size_t errlen);
	void (*exit)(struct guest_memory *mem);
	/* Where the sEPT's tables come from (NULL: malloc). */
	void (*table_source)(struct guest_memory *mem, struct sept_table_source *source);
	int (*map)(struct guest_memory *mem, uint64_t gfn, uint64_t frame, uint64_t n,
		   unsigned flags);
	int (*unmap)(struct guest_memory *mem, uint64_t gfn, uint64_t n);
	int (*write_protect)(struct guest_memory *mem, uint64_t gfn, uint64_t n, int on);
	void (*wake)(struct guest_memory *mem, uint64_t gfn, uint64_t n);
	void (*flush)(struct guest_memory *mem);
	void (*abandon)(struct guest_memory *mem);
};

extern const struct realiser_ops host_realiser_ops;
extern const struct realiser_ops owned_realiser_ops;

const char *guest_realiser_name(enum guest_realiser realiser);

#endif
