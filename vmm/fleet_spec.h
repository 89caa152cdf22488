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
#include <stdint.h>

#define FLEET_MAX_VMS 1024
#define FLEET_DEFAULT_MEM (64ull << 20)

struct vm_group_spec {
	char *name;  /* group name, for the report */
	char *guest; /* bundled guest name or path to an ELF */
	char *args;  /* guest argument string, "key=value ..." */
	uint64_t mem_bytes;
	unsigned count;
};

struct fleet_spec {
	struct vm_group_spec *groups;
	unsigned ngroups;
	char *config_path; /* set when the fleet came from --config */
	char *json_path;   /* --json FILE, or NULL */
	bool quiet;
};

/* Adds a group (strings are copied). Returns the group, or NULL. */
struct vm_group_spec *fleet_spec_add_group(struct fleet_spec *spec, const char *name,
					   const char *guest, const char *args, uint64_t mem_bytes,
					   unsigned count);
unsigned fleet_spec_vm_count(const struct fleet_spec *spec);
/* Checks sizes and counts; writes a one-line reason and returns -1. */
int fleet_spec_validate(const struct fleet_spec *spec, char *err, unsigned long errlen);
void fleet_spec_free(struct fleet_spec *spec);

#endif
