/*
 * bench_first_touch.c - what first touch of a guest page costs through the
 * VMM's frame pool, against the same guest on plain anonymous memory.
 *
 *   bench_first_touch [--mb M] [--repeat N] [--accel auto|kvm|tcg] [--json FILE]
 *
 * The guest is `touch mb=M passes=1`: it writes one word to each page of M
 * MiB, so its pass time is first-touch cost. Pages are touched in ascending
 * order (the case fault-ahead serves) and in a random permutation (where
 * only fault-around helps). Configurations run interleaved N times each; the
 * medians are compared with the anonymous baseline of the same order in the
 * same run. Every run uses --accel (default auto), and the output names the
 * accelerator the runs used: on TCG the baseline is the same guest on TCG.
 * The "3 cgroups deep" configurations run the guest under three nested
 * cgroups with limits that never bind (a config file): what charging every
 * new page up the tree (mm/memcg.h) adds to a fault.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_accel.h"
#include "vmm_process.h"

struct config {
	const char *name;
	const char *order;
	const char *backing;
	const char *fault_around;
	const char *fault_ahead;
	bool cgroups; /* under three nested cgroups with limits */
	double us_per_page[64];
	double events_per_page;
	double serve_us_per_event;
};

static double median(double *v, int n)
{
	double sorted[64];
	memcpy(sorted, v, n * sizeof(*v));
	qsort(sorted, n, sizeof(*sorted), compare_doubles);
	return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_first_touch [options]\n"
		"\n"
		"First-touch cost per guest page on the frame pool (fault-around, fault-ahead)\n"
		"against the same guest on anonymous memory.\n"
		"\n"
		"  -m, --mb M         MiB the touch guest writes (default 256)\n"
		"  -r, --repeat N     runs of each configuration, medians (default 5)\n" BENCH_ACCEL_HELP
		"  -j, --json FILE    every figure as JSON\n"
		"  -h, --help\n");
}

int main(int argc, char **argv)
{
	int repeat = 5, mb = 256;
	const char *json_path = NULL;
	enum { OPT_ACCEL = 256 };
	static const struct option options[] = {{"mb", required_argument, NULL, 'm'},
						{"repeat", required_argument, NULL, 'r'},
						{"accel", required_argument, NULL, OPT_ACCEL},
						{"json", required_argument, NULL, 'j'},
						{"help", no_argument, NULL, 'h'},
						{NULL, 0, NULL, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "m:r:j:h", options, NULL)) != -1) {
		if (c == 'm')
			mb = atoi(optarg) > 0 ? atoi(optarg) : 256;
		else if (c == 'r')
			repeat = atoi(optarg) > 0 ? atoi(optarg) : 1;
		else if (c == OPT_ACCEL)
			bench_accel_option("bench_first_touch", optarg);
		else if (c == 'j')
			json_path = optarg;
		else {
			usage(c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	if (repeat > 64)
		repeat = 64;
	struct config configs[] = {
		{"anonymous memory (baseline)", "seq", "anon", "64K", "off", false, {0}, 0, 0},
		{"pool, fault-around off (4K)", "seq", "pool", "4K", "off", false, {0}, 0, 0},
		{"pool, 4K, 3 cgroups deep", "seq", "pool", "4K", "off", true, {0}, 0, 0},
		{"pool, fault-around 64K", "seq", "pool", "64K", "off", false, {0}, 0, 0},
		{"pool, fault-around 2M", "seq", "pool", "2M", "off", false, {0}, 0, 0},
		{"pool, 64K + fault-ahead 2M", "seq", "pool", "64K", "2M", false, {0}, 0, 0},
		{"anonymous memory (baseline)", "random", "anon", "64K", "off", false, {0}, 0, 0},
		{"pool, fault-around 64K", "random", "pool", "64K", "off", false, {0}, 0, 0},
		{"pool, 64K, 3 cgroups deep", "random", "pool", "64K", "off", true, {0}, 0, 0},
		{"pool, 64K + fault-ahead 2M", "random", "pool", "64K", "2M", false, {0}, 0, 0},
	};
	const int nconfigs = sizeof(configs) / sizeof(configs[0]);
	char mem[32], args[64];
	snprintf(mem, sizeof(mem), "%dM", ((mb + 64) + 1) & ~1);
	snprintf(args, sizeof(args), "mb=%d", mb);
	uint64_t pages = (uint64_t)mb * 256;
	/* The cgroup configurations' fleet: one touch guest in a/b/c, each
	 * level limited to twice what it needs (the order comes later). */
	char cgroup_config[1024], *config_path[2] = {NULL, NULL};
	for (int k = 0; k < 2; k++) {
		snprintf(cgroup_config, sizeof(cgroup_config),
			 "{\"cgroups\": {\"a\": {\"memory.max\": \"%dM\"}, \"a/b\": "
			 "{\"memory.max\": \"%dM\", \"memory.high\": \"%dM\"}, \"a/b/c\": "
			 "{\"memory.max\": \"%dM\"}},"
			 " \"groups\": [{\"guest\": \"touch\", \"mem\": \"%s\", \"cgroup\": "
			 "\"a/b/c\", \"args\": \"%s passes=1 order=%s\"}]}",
			 4 * mb + 256, 4 * mb + 256, 4 * mb + 256, 4 * mb + 256, mem, args,
			 k ? "random" : "seq");
		config_path[k] = write_temp_file(cgroup_config, strlen(cgroup_config), ".json");
	}

	for (int r = 0; r < repeat; r++) {
		for (int i = 0; i < nconfigs; i++) {
			struct config *cfg = &configs[i];
			char order[32];
			snprintf(order, sizeof(order), "order=%s", cfg->order);
			const char *argv_run[] = {"run",
						  "--quiet",
						  "--mem",
						  mem,
						  "--backing",
						  cfg->backing,
						  "--fault-around",
						  cfg->fault_around,
						  "--fault-ahead",
						  cfg->fault_ahead,
						  "touch",
						  "--",
						  args,
						  "passes=1",
						  order,
						  NULL};
			const char *argv_cgroups[] = {
				"run",
				"--quiet",
				"--config",
				config_path[strcmp(cfg->order, "random") == 0],
				"--fault-around",
				cfg->fault_around,
				"--fault-ahead",
				cfg->fault_ahead,
				NULL};
			struct vmm_output o;
			vmm_process_run(&o, VMM_BINARY, cfg->cgroups ? argv_cgroups : argv_run, 1,
					NULL, 0);
			bench_accel_note(o.report);
			json_object *vm = report_vm(o.report, 0);
			if (o.status != 0 || !vm) {
				fprintf(stderr, "bench_first_touch: %s failed: %s\n", cfg->name,
					o.err);
				return 1;
			}
			cfg->us_per_page[r] = (double)json_path_int(vm, "guest_values.pass1_ns") /
					      1e3 / (double)pages;
			if (strcmp(cfg->backing, "pool") == 0) {
				double events = (double)json_path_int(o.report,
								      "memory.fault_thread.events");
				cfg->events_per_page = events / (double)pages;
				cfg->serve_us_per_event =
					(double)json_path_int(o.report,
							      "memory.fault_thread.serve_us") /
					(events > 0 ? events : 1);
			}
			vmm_output_free(&o);
		}
	}

	unlink(config_path[0]);
	unlink(config_path[1]);
	free(config_path[0]);
	free(config_path[1]);
	double ratio[16];
	printf("bench_first_touch: touch mb=%d passes=1 (%llu pages), median of %d runs\n", mb,
	       (unsigned long long)pages, repeat);
	bench_accel_print(stdout, "  ");
	printf("  %-7s %-30s %10s %8s %12s %14s\n", "order", "configuration", "us/page", "ratio",
	       "faults/page", "handler us/fault");
	for (int i = 0; i < nconfigs; i++) {
		double base = 0;
		for (int j = 0; j < nconfigs; j++)
			if (strcmp(configs[j].backing, "anon") == 0 &&
			    strcmp(configs[j].order, configs[i].order) == 0)
				base = median(configs[j].us_per_page, repeat);
		double m = median(configs[i].us_per_page, repeat);
		ratio[i] = m / base;
		printf("  %-7s %-30s %10.2f %7.2fx %12.4f %14.1f\n", configs[i].order,
		       configs[i].name, m, ratio[i], configs[i].events_per_page,
		       configs[i].serve_us_per_event);
	}
	if (json_path) {
		FILE *f = fopen(json_path, "w");
		if (!f) {
			perror(json_path);
			return 1;
		}
		fprintf(f, "{%s,\n \"mb\": %d, \"repeat\": %d, \"configs\": [",
			bench_accel_json_members(), mb, repeat);
		for (int i = 0; i < nconfigs; i++) {
			double m = median(configs[i].us_per_page, repeat);
			fprintf(f,
				"%s\n {\"name\": \"%s\", \"order\": \"%s\", \"backing\": \"%s\", "
				"\"fault_around\": \"%s\", \"fault_ahead\": \"%s\", "
				"\"us_per_page\": %.4f, \"ratio\": %.4f, \"faults_per_page\": %.5f, "
				"\"handler_us_per_fault\": %.2f}",
				i ? "," : "", configs[i].name, configs[i].order, configs[i].backing,
				configs[i].fault_around, configs[i].fault_ahead, m, ratio[i],
				configs[i].events_per_page, configs[i].serve_us_per_event);
		}
		fprintf(f, "]}\n");
		fclose(f);
	}
	return 0;
}
