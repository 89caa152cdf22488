/*
 * sept.h - the software EPT: per VM, guest frame number -> 64-bit entry.
 *
 * It is the authority on where each guest page lives: in a host frame
 * (present), in a swap slot, or nowhere yet (0, never touched). It is a
 * 4-level radix table like x86's page tables, 9 bits of the gfn per level, so
 * gfns go up to SEPT_MAX_GFN = 2^36 - 1 (256 TiB of guest physical memory):
 *
 *   gfn bits  35..27   26..18   17..9    8..0
 *   level     3 (root) 2        1        0 (leaf: the entries)
 *
 * A table is 512 slots of 8 bytes, one 4 KiB page-aligned page. It is laid
 * out as x86-64's 4-level page tables are, so that an emulated CPU can walk
 * it (the owned page table realiser, mm/owned_realiser.c): a slot of levels
 * 3..1 is 0 or the next table's address | SEPT_TABLE_FLAGS (present,
 * writable, user); slots of level 0 are the entries. Where the tables live
 * is the table source's business (struct sept_table_source): by default
 * they are malloc'd and a table's address is its host pointer; the owned
 * realiser puts them in frames of the pool, addressed by their offset in
 * it, which is where the emulated CPU sees them. The root exists from
 * sept_init; the tables below it are
 * allocated, zeroed, the first time an entry under them is created (by
 * sept_set or sept_entry_slot(..., 1)), so untouched guest memory costs no
 * table. Tables then live until sept_destroy, even when all their entries
 * are cleared again. table_pages counts every table including the root: 1
 * after sept_init, 4 after the first entry is set.
 *
 * Entries, x86 PTEs:
 *   present  SEPT_PRESENT, host frame number in bits 12..51, flags in bits
 *            0..11 (the hardware's: present, writable, user, accessed,
 *            dirty; the software's, in bits x86 leaves to it: 9..11) and in
 *            bits 52..62 (software, ignored by x86). Bits 3, 4, 7 (caching,
 *            PAT) and 63 (NX; reserved while EFER.NXE is clear) stay 0.
 *   swap     SEPT_SWAP without SEPT_PRESENT, swap slot in bits 12..51.
 *   other    non-zero entries that are neither are allowed (flag bits only,
 *            e.g. a pinned page not yet populated) but are not counted.
 *
 * Invariants: present_pages and swap_entries count the present and swap
 * entries, and each change of present_pages is charged to `counter` (if
 * set: the owner's memory cgroup, page_counter.h), except that new present
 * entries first use up `precharged`, pages the owner charged ahead with
 * page_counter_try_charge() so that a limit holds (and so are swap_entries'
 * to swap_counter, with swap_precharged); table_pages counts the
 * tables reachable from the root. Only sept_set and sept_clear may change
 * an entry's present/swap state or its frame/slot field; code writing
 * through sept_entry_slot or a sept_walk callback may change its other flag
 * bits (SEPT_FLAGS_MASK except SEPT_PRESENT and SEPT_SWAP) only. An emulated
 * CPU walking the tables sets SEPT_ACCESSED and SEPT_DIRTY itself.
 *
 * gfns above SEPT_MAX_GFN are rejected: sept_lookup and sept_clear return 0,
 * sept_entry_slot returns NULL and sept_set fails with EINVAL.
 *
 * Locking: none inside. The caller serialises all access to one struct sept
 * (the owning VM's lock); sept_lookup may run concurrently with other
 * readers only.
 */
#ifndef MM_SEPT_H
#define MM_SEPT_H

#include <stdint.h>

#include "page_counter.h"

typedef uint64_t sept_entry; /* 0 = never touched */

/* Present entries, like an x86 PTE: frame number in bits 12..51. */
#define SEPT_PRESENT (1ull << 0)
#define SEPT_WRITABLE (1ull << 1)
#define SEPT_USER (1ull << 2) /* CPL 3 may access it (x86's U/S) */
#define SEPT_ACCESSED (1ull << 5)
#define SEPT_DIRTY (1ull << 6)
/* A KSM frame, write-protected. On a swap entry: a slot its former sharers
 * share (swapped out once for all of them). */
#define SEPT_SHARED (1ull << 9)
#define SEPT_PINNED (1ull << 10) /* VMM-owned page (boot area): never merged or evicted */
#define SEPT_ZERO (1ull << 11)	 /* maps the KSM zero run */
/* A page that came back from swap sooner than it was old when evicted: part
 * of a working set; its next eviction needs twice the age (mm/reclaim.h). */
#define SEPT_WORKINGSET (1ull << 52)
#define SEPT_HUGE (1ull << 53) /* part of a 2 MiB block of contiguous frames */
/* Not-present swap entries: SEPT_SWAP set, SEPT_PRESENT clear, slot in bits 12..51. */
#define SEPT_SWAP (1ull << 8)
#define SEPT_FLAGS_MASK (0xfffull | (0x7ffull << 52))
/* A slot of levels 3..1 that holds a table. */
#define SEPT_TABLE_FLAGS (SEPT_PRESENT | SEPT_WRITABLE | SEPT_USER)

#define SEPT_ADDR_SHIFT 12
#define SEPT_ADDR_BITS 40 /* frame numbers and swap slots: < 2^40 */
#define SEPT_ADDR_MASK (((1ull << SEPT_ADDR_BITS) - 1) << SEPT_ADDR_SHIFT)

#define SEPT_LEVELS 4
#define SEPT_LEVEL_BITS 9
#define SEPT_TABLE_ENTRIES 512
#define SEPT_TABLE_SIZE 4096
#define SEPT_GFN_BITS (SEPT_LEVELS * SEPT_LEVEL_BITS) /* 36 */
#define SEPT_MAX_GFN ((1ull << 36) - 1)

/* frame < 2^40 (higher bits are dropped); SEPT_SWAP in flags is ignored. */
static inline sept_entry sept_make_present(uint64_t frame, uint64_t flags)
{
	return ((frame << SEPT_ADDR_SHIFT) & SEPT_ADDR_MASK) |
	       (flags & SEPT_FLAGS_MASK & ~SEPT_SWAP) | SEPT_PRESENT;
}

static inline uint64_t sept_frame(sept_entry e)
{
	return (e & SEPT_ADDR_MASK) >> SEPT_ADDR_SHIFT;
}

/* slot < 2^40 (higher bits are dropped); SEPT_PRESENT in flags is ignored. */
static inline sept_entry sept_make_swap(uint64_t slot, uint64_t flags)
{
	return ((slot << SEPT_ADDR_SHIFT) & SEPT_ADDR_MASK) |
	       (flags & SEPT_FLAGS_MASK & ~SEPT_PRESENT) | SEPT_SWAP;
}

static inline uint64_t sept_swap_slot(sept_entry e)
{
	return (e & SEPT_ADDR_MASK) >> SEPT_ADDR_SHIFT;
}

static inline int sept_is_present(sept_entry e)
{
	return (e & SEPT_PRESENT) != 0;
}

static inline int sept_is_swap(sept_entry e)
{
	return (e & (SEPT_SWAP | SEPT_PRESENT)) == SEPT_SWAP;
}

union sept_table;

/*
 * Where tables come from. alloc returns a zeroed 4 KiB table's host pointer
 * and its address in *addr (page-aligned, < 2^52), or NULL; free gives one
 * back. The host pointer of the table at address a is base + a. A NULL
 * alloc means malloc'd tables whose address is their host pointer (base 0).
 */
struct sept_table_source {
	void *(*alloc)(void *ctx, uint64_t *addr);
	void (*free)(void *ctx, void *table, uint64_t addr);
	void *ctx;
	uintptr_t base;
};

struct sept {
	union sept_table *root;
	uint64_t root_addr;
	struct sept_table_source source;
	uint64_t table_pages;	      /* tables allocated, the root included */
	uint64_t present_pages;	      /* present entries */
	uint64_t swap_entries;	      /* swap entries */
	struct page_counter *counter; /* charged with present_pages' changes; may be NULL */
	uint64_t precharged;	      /* pages charged ahead: new present entries use them first */
	struct page_counter *swap_counter; /* the same for swap_entries (memory.swap.*) */
	uint64_t swap_precharged;
	uint64_t walk_tables; /* debug: tables sept_walk has looked into, cumulative */
};

/* Allocates the root table, malloc'd (sept_init) or from `source`.
 * Returns 0, or -1 (errno ENOMEM). */
int sept_init(struct sept *sept);
int sept_init_from(struct sept *sept, const struct sept_table_source *source);

/* The root table's address: what CR3 holds when a CPU walks these tables. */
static inline uint64_t sept_root_address(const struct sept *sept)
{
	return sept->root_addr;
}

/* Frees every table; *sept is left zeroed (destroying it again is a no-op). */
void sept_destroy(struct sept *sept);

/* The entry for gfn; 0 if none. */
sept_entry sept_lookup(const struct sept *sept, uint64_t gfn);

/*
 * Pointer to the entry for gfn, valid until sept_destroy. NULL if its table
 * does not exist and create == 0, or if create == 1 and a table cannot be
 * allocated (errno ENOMEM), or if gfn > SEPT_MAX_GFN.
 *
 * The counters are not updated through this pointer: to make an entry present,
 * swapped or absent, or to change its frame or slot, use sept_set/sept_clear.
 * It is for read-modify-write of the other flag bits only (e.g. clearing
 * SEPT_ACCESSED), and for reading.
 */
sept_entry *sept_entry_slot(struct sept *sept, uint64_t gfn, int create);

/*
 * Sets the entry for gfn to e, allocating tables as needed, and keeps the
 * counters. Setting 0 is sept_clear (and allocates nothing). Returns 0, or -1
 * with errno ENOMEM (the entry is unchanged) or EINVAL (gfn > SEPT_MAX_GFN).
 */
int sept_set(struct sept *sept, uint64_t gfn, sept_entry e);

/* Sets the entry for gfn to 0 and returns the old one; keeps the counters. */
sept_entry sept_clear(struct sept *sept, uint64_t gfn);

/*
 * Calls fn for every non-zero entry with first_gfn <= gfn < end_gfn in
 * ascending gfn order, skipping absent tables wholesale (cheap on sparse
 * ranges). end_gfn may exceed SEPT_MAX_GFN + 1 (e.g. UINT64_MAX for "to the
 * end"). fn may change *entry in place but only its flag bits other than
 * SEPT_PRESENT and SEPT_SWAP (the walk aborts with a message if it changes
 * anything else); it must not call sept_set or sept_clear. A non-zero return
 * from fn stops the walk and is returned; otherwise 0.
 */
typedef int (*sept_walk_fn)(void *ctx, uint64_t gfn, sept_entry *entry);
int sept_walk(struct sept *sept, uint64_t first_gfn, uint64_t end_gfn, sept_walk_fn fn, void *ctx);

/* Memory used by the tables: table_pages * 4096. */
uint64_t sept_table_bytes(const struct sept *sept);

#endif
