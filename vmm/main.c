/*
 * main.c - the `vmm` command.
 *
 *   vmm run [options] GUEST [-- GUEST-ARGS...]   run guests (see vmm run --help)
 *   vmm ctl FLEET get|set|stat|keys ...         a running fleet (vmm/ctl.c)
 *   vmm --help | --version
 *
 * Exit status: 0 when every guest exited with 0, 1 when any did not, 2 for
 * bad input, with a one-line message naming the problem.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "fleet.h"
#include "report.h"
#include "run_options.h"
#include "version.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: vmm run [options] GUEST [-- GUEST-ARGS...]\n"
		"       vmm run [options] --config FILE\n"
		"       vmm ctl FLEET get KEY | set KEY VALUE | stat [--json] | keys\n"
		"       vmm --help | --version\n"
		"\n"
		"A KVM-based VMM that owns guest memory. 'vmm run --help' lists the options.\n");
}

/* SIGINT and SIGTERM are blocked from the start, in every thread (threads
 * inherit the mask): one that comes during set-up waits until the fleet
 * exists, so that tearing it down removes the swap file and restores
 * vm.max_map_count; while guests run, fleet_run() reads them through a
 * signalfd and stops the VMs. (A thread with them unblocked would take the
 * default action: the process gone, nothing cleaned up.) */
static bool stop_signal_pending(void)
{
	sigset_t pending;
	return sigpending(&pending) == 0 &&
	       (sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM));
}

static int command_run(int argc, char **argv)
{
	sigset_t stop_signals;
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

	struct fleet_spec spec;
	char err[512];
	enum run_options_result r = run_options_parse(argc, argv, &spec, err, sizeof(err));
	if (r != RUN_OPTIONS_OK) {
		if (r == RUN_OPTIONS_ERROR)
			fprintf(stderr, "vmm: %s\n", err);
		fleet_spec_free(&spec);
		return r == RUN_OPTIONS_EXIT ? 0 : 2;
	}

	/* Open the JSON report early: a bad path fails before anything runs. */
	FILE *json = NULL;
	bool json_to_stdout = spec.json_path && strcmp(spec.json_path, "-") == 0;
	if (spec.json_path && !json_to_stdout) {
		json = fopen(spec.json_path, "w");
		if (!json) {
			fprintf(stderr, "vmm: cannot write the JSON report %s: %s\n",
				spec.json_path, strerror(errno));
			fleet_spec_free(&spec);
			return 2;
		}
	}

	struct fleet fleet;
	if (fleet_prepare(&fleet, &spec, err, sizeof(err))) {
		fprintf(stderr, "vmm: %s\n", err);
		fleet_destroy(&fleet);
		fleet_spec_free(&spec);
		if (json)
			fclose(json);
		return 2;
	}
	if (stop_signal_pending()) {
		fprintf(stderr, "vmm: interrupted during set-up: nothing ran\n");
		fleet_destroy(&fleet);
		fleet_spec_free(&spec);
		if (json)
			fclose(json);
		return 130;
	}
	fleet_run(&fleet);

	report_print_table(&fleet, json_to_stdout ? stderr : stdout);
	int status = fleet_exit_status(&fleet);
	if (json || json_to_stdout) {
		FILE *out = json ? json : stdout;
		if (report_write_json(&fleet, out) || (json && fclose(json))) {
			fprintf(stderr, "vmm: writing the JSON report failed: %s\n",
				strerror(errno));
			status = status ? status : 1;
		}
	}
	fleet_destroy(&fleet);
	fleet_spec_free(&spec);
	return status;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "run") == 0)
		return command_run(argc - 1, argv + 1);
	if (strcmp(argv[1], "ctl") == 0)
		return ctl_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("vmm %s\n", VMM_VERSION);
		return 0;
	}
	fprintf(stderr, "vmm: unknown command '%s' (see vmm --help)\n", argv[1]);
	return 2;
}
