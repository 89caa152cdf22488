/*
 * report.c - the run report, as a table and as JSON (json-c).
 */
#include "report.h"

#include <json-c/json.h>
#include <string.h>

#include "fleet.h"
#include "size.h"
#include "version.h"
#include "vm.h"

void report_print_table(const struct fleet *fleet, FILE *out)
{
	unsigned ok = 0;
	uint64_t mem = 0;
	char size[32];
	fprintf(out, "%-8s %-12s %-9s %5s %10s %9s\n", "VM", "GUEST", "STATUS", "EXIT", "MEM",
		"WALL");
	for (unsigned i = 0; i < fleet->nvms; i++) {
		const struct vm *vm = fleet->vms[i];
		ok += vm_succeeded(vm);
		mem += vm->group->mem_bytes;
		char code[16] = "-";
		if (vm->result.status == VM_STATUS_EXITED)
			snprintf(code, sizeof(code), "%d", vm->result.exit_code);
		fprintf(out, "%-8s %-12.12s %-9s %5s %10s %8.3fs\n", vm->name, vm->image->name,
			vm_status_name(vm->result.status), code,
			size_format(vm->group->mem_bytes, size, sizeof(size)),
			vm->result.wall_seconds);
	}
	fprintf(out, "total: %u VMs, %u succeeded, %u failed, %s of guest memory, wall %.3f s%s\n",
		fleet->nvms, ok, fleet->nvms - ok, size_format(mem, size, sizeof(size)),
		fleet->wall_seconds, fleet->interrupted ? " (interrupted)" : "");
}

static json_object *vm_json(const struct vm *vm)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(vm->name));
	json_object_object_add(o, "index", json_object_new_int(vm->index));
	json_object_object_add(o, "group", json_object_new_string(vm->group->name));
	json_object_object_add(o, "guest", json_object_new_string(vm->image->name));
	json_object_object_add(o, "args", json_object_new_string(vm->group->args));
	json_object_object_add(o, "status",
			       json_object_new_string(vm_status_name(vm->result.status)));
	json_object_object_add(o, "exit_code", json_object_new_int(vm->result.exit_code));
	json_object_object_add(o, "message", json_object_new_string(vm->result.message));
	json_object_object_add(o, "mem_bytes",
			       json_object_new_int64((int64_t)vm->group->mem_bytes));
	json_object_object_add(o, "wall_seconds", json_object_new_double(vm->result.wall_seconds));
	json_object *values = json_object_new_object();
	for (unsigned i = 0; i < vm->result.nvalues; i++)
		json_object_object_add(values, vm->result.values[i].key,
				       json_object_new_int64((int64_t)vm->result.values[i].value));
	json_object_object_add(o, "guest_values", values);
	return o;
}

int report_write_json(const struct fleet *fleet, FILE *out)
{
	json_object *root = json_object_new_object();
	json_object_object_add(root, "vmm_version", json_object_new_string(VMM_VERSION));
	json_object_object_add(root, "wall_seconds", json_object_new_double(fleet->wall_seconds));
	json_object_object_add(root, "interrupted", json_object_new_boolean(fleet->interrupted));
	json_object *vms = json_object_new_array();
	unsigned ok = 0;
	uint64_t mem = 0;
	for (unsigned i = 0; i < fleet->nvms; i++) {
		json_object_array_add(vms, vm_json(fleet->vms[i]));
		ok += vm_succeeded(fleet->vms[i]);
		mem += fleet->vms[i]->group->mem_bytes;
	}
	json_object_object_add(root, "vms", vms);
	json_object *totals = json_object_new_object();
	json_object_object_add(totals, "vms", json_object_new_int(fleet->nvms));
	json_object_object_add(totals, "succeeded", json_object_new_int(ok));
	json_object_object_add(totals, "failed", json_object_new_int(fleet->nvms - ok));
	json_object_object_add(totals, "mem_bytes", json_object_new_int64((int64_t)mem));
	json_object_object_add(root, "totals", totals);
	const char *text = json_object_to_json_string_ext(
		root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	int rc = fputs(text, out) < 0 || fputc('\n', out) < 0 ? -1 : 0;
	json_object_put(root);
	return rc;
}
