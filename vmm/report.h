/*
 * report.h - the final report of a run: a table on stdout and a JSON twin.
 *
 * JSON layout (keys are stable; later features add keys, never rename):
 *   { "vmm_version", "wall_seconds", "interrupted",
 *     "vms": [ { "name", "index", "group", "guest", "args", "status",
 *                "exit_code", "message", "mem_bytes", "wall_seconds",
 *                "guest": { key: value reported by the guest } } ],
 *     "totals": { "vms", "succeeded", "failed", "mem_bytes" } }
 */
#ifndef VMM_REPORT_H
#define VMM_REPORT_H

#include <stdio.h>

struct fleet;

void report_print_table(const struct fleet *fleet, FILE *out);
/* Writes the JSON report to an open stream. Returns 0 or -1. */
int report_write_json(const struct fleet *fleet, FILE *out);

#endif
