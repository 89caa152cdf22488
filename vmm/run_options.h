/*
 * run_options.h - the `vmm run` command line.
 *
 *   vmm run [options] GUEST [-- GUEST-ARGS...]
 *   vmm run [options] --config FILE
 *
 * run_options_parse() turns argv into a fleet_spec. It prints nothing on
 * error: it returns RUN_OPTIONS_ERROR with a one-line reason, and the caller
 * exits with status 2. --help and --version return RUN_OPTIONS_EXIT after
 * printing.
 */
#ifndef VMM_RUN_OPTIONS_H
#define VMM_RUN_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "fleet_spec.h"

enum run_options_result {
	RUN_OPTIONS_OK = 0,
	RUN_OPTIONS_EXIT = 1,
	RUN_OPTIONS_ERROR = -1,
};

enum run_options_result run_options_parse(int argc, char **argv, struct fleet_spec *spec, char *err,
					  size_t errlen);
void run_options_usage(FILE *out);

#endif
