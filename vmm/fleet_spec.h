/*
 * fleet_spec.h - what the user asked to run: groups of identical VMs.
 *
 * Both the command line (`vmm run --vms N GUEST -- ARGS`, one group) and a
 * JSON config file (`vmm run --config FILE`, any number of groups) produce a
 * struct fleet_spec. VMs are numbered across groups in order: vm0, vm1, ...
 */
#ifndef VMM_FLEET_SPEC_H
#define VMM_FLEET_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "accel.h"
#include "ksm/ksm.h"

#define FLEET_MAX_VMS 1024
#define FLEET_DEFAULT_MEM (64ull << 20)

struct vm_group_spec {
	char *name;  /* group name, for the report */
	char *guest; /* bundled guest name or path to an ELF */
	char *args;  /* guest argument string, "key=value ..." */
	uint64_t mem_bytes;
	unsigned count;
	int ksm; /* merging for these VMs: 1 on, 0 off, -1 the fleet default */
	/* Per-VM limits (cgroup v2 names); 0 = none, or the fleet default. */
	uint64_t memory_high, memory_max;
	int oom_score_adj;
	bool oom_score_adj_set;
	char *memory_image; /* guest RAM starts as this file; NULL: the default */
	char *cgroup;	    /* the cgroup its VMs go under ("a/b"); NULL: the root */
};

/* A cgroup above the VMs (mm/memcg.h), by its path below the fleet's root
 * cgroup: "tenants", "tenants/a". Limits in bytes, 0 = none. */
struct cgroup_spec {
	char *path;
	uint64_t memory_min, memory_low, memory_high, memory_max;
	uint64_t memory_swap_max; /* bytes, if memory_swap_max_set (0: no swap) */
	bool memory_swap_max_set;
	bool oom_group; /* memory.oom.group */
};

/* Swap and reclaim, for the whole fleet. */
struct swap_settings {
	char *path;	       /* --swap FILE; NULL: no swap */
	uint64_t bytes;	       /* --swap-size; 0: the size of the pool */
	bool keep;	       /* --keep-swap */
	uint64_t zswap_bytes;  /* --zswap SIZE; 0: off */
	unsigned page_cluster; /* readahead pages (8) */
	/* Defaults for every VM (groups may override). */
	uint64_t memory_high, memory_max;
	int oom_score_adj;
};

enum memory_backing_choice {
	BACKING_POOL = 0, /* the VMM-owned frame pool (default) */
	BACKING_ANON = 1, /* plain anonymous memory, the baseline */
};

/* How a TCG vCPU reaches pool memory (mm/realiser.h). KVM always uses host
 * mappings. */
enum tcg_mmu_choice {
	TCG_MMU_OWNED = 0, /* mm's sEPT is the emulated CPU's page table (default) */
	TCG_MMU_HOST = 1,  /* host mappings + userfaultfd, as on KVM */
};

/* How guest memory is provided, for the whole fleet. */
struct memory_settings {
	enum memory_backing_choice backing;
	uint64_t host_mem_bytes;	 /* pool size; 0 = enough for every guest */
	uint64_t fault_around_bytes;	 /* first-touch block; 4K = off */
	uint64_t fault_ahead_bytes;	 /* largest fault-ahead window; 0 = off */
	bool thp;			 /* 2 MiB blocks (fault-around 2M) */
	uint64_t min_free_kbytes;	 /* 0 = derived as Linux does */
	uint32_t watermark_scale_factor; /* 0 = Linux's default 10 */
	unsigned fault_spin_us;		 /* fault thread spin before sleeping */
	enum tcg_mmu_choice tcg_mmu;	 /* --tcg-mmu */
};

/* "owned", "host"; and back (-1 if unknown). */
const char *tcg_mmu_name(enum tcg_mmu_choice choice);
int tcg_mmu_parse(const char *text, enum tcg_mmu_choice *out);

#define FLEET_DEFAULT_FAULT_AROUND (64ull << 10)
#define FLEET_DEFAULT_FAULT_AHEAD (2ull << 20)
#define FLEET_DEFAULT_FAULT_SPIN_US 50

struct fleet_spec {
	enum accel_choice accel; /* --accel: auto (default), kvm, tcg */
	struct vm_group_spec *groups;
	unsigned ngroups;
	char *config_path; /* set when the fleet came from --config */
	char *json_path;   /* --json FILE, or NULL */
	char *name;	   /* --name: the control socket's name; NULL: vmm-PID */
	bool quiet;
	struct memory_settings memory;
	bool ksm_default; /* --ksm: merging for every group that does not say */
	struct ksm_config ksm;
	unsigned ksm_sample_ms; /* timeline period; 0 = the default 100 */
	struct swap_settings swap;
	char *memory_image;	     /* --memory-image FILE: every group that names none */
	struct cgroup_spec *cgroups; /* the ones with settings (groups may name others) */
	unsigned ncgroups;
};

/* Whether a group's VMs take part in KSM. */
bool fleet_spec_group_ksm(const struct fleet_spec *spec, const struct vm_group_spec *group);
bool fleet_spec_any_ksm(const struct fleet_spec *spec);
/* Whether reclaim runs: swap, or any memory.high/max. */
bool fleet_spec_needs_reclaim(const struct fleet_spec *spec);
/* A group's effective limits. */
uint64_t fleet_spec_group_high(const struct fleet_spec *spec, const struct vm_group_spec *g);
uint64_t fleet_spec_group_max(const struct fleet_spec *spec, const struct vm_group_spec *g);
/* The memory image a group's VMs start from, or NULL. */
const char *fleet_spec_group_memory_image(const struct fleet_spec *spec,
					  const struct vm_group_spec *g);
int fleet_spec_group_oom_score_adj(const struct fleet_spec *spec, const struct vm_group_spec *g);

void swap_settings_default(struct swap_settings *s);

/* The cgroup of that path (a leading '/' is allowed), added with no limits
 * if new; NULL if the path is not valid (components of letters, digits, '_', '-' and '.', not "."
 * or
 * "..", at most 63 characters each) or out of memory, with err set. */
struct cgroup_spec *fleet_spec_cgroup(struct fleet_spec *spec, const char *path, char *err,
				      size_t errlen);
/* Whether `path` is a valid cgroup path (as above); err says why not. */
bool fleet_spec_cgroup_path_ok(const char *path, char *err, size_t errlen);

/* Default memory settings (pool backing, 64 KiB fault-around). */
void memory_settings_default(struct memory_settings *m);
/* The effective fault-around block in pages (512 with THP). */
unsigned memory_settings_fault_around_pages(const struct memory_settings *m);

/* An empty fleet with every setting at its default. */
void fleet_spec_init(struct fleet_spec *spec);
/* Adds a group (strings are copied). Returns the group, or NULL. */
struct vm_group_spec *fleet_spec_add_group(struct fleet_spec *spec, const char *name,
					   const char *guest, const char *args, uint64_t mem_bytes,
					   unsigned count);
unsigned fleet_spec_vm_count(const struct fleet_spec *spec);
/* Checks sizes and counts; writes a one-line reason and returns -1. */
int fleet_spec_validate(const struct fleet_spec *spec, char *err, unsigned long errlen);
void fleet_spec_free(struct fleet_spec *spec);

#endif
