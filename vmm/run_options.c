/*
 * run_options.c - parsing `vmm run` options with getopt_long.
 */
#include "run_options.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "fleet_config.h"
#include "message.h"
#include "size.h"
#include "version.h"

void run_options_usage(FILE *out)
{
	fprintf(out,
		"usage: vmm run [options] GUEST [-- GUEST-ARGS...]\n"
		"       vmm run [options] --config FILE\n"
		"\n"
		"Runs small guests, each in its own VM with one vCPU, on KVM where /dev/kvm\n"
		"is usable and on the TCG emulator (unicorn) where it is not.\n"
		"GUEST is a path to a static ELF64 guest image or the name of a bundled\n"
		"guest: hello, pattern, touch, crash, readmem, compute. GUEST-ARGS are\n"
		"key=value words.\n"
		"SIZE takes a K, M, G or T suffix. Options given here override the\n"
		"config file's.\n"
		"\n"
		"options:\n"
		"  -n, --vms N         number of VMs to run (default 1)\n"
		"  -m, --mem SIZE      guest memory per VM, multiple of 2M (default 64M)\n"
		"  -c, --config FILE   run the fleet described in a JSON file (see configs/)\n"
		"  -j, --json FILE     write the final report as JSON to FILE ('-': stdout)\n"
		"  -q, --quiet         do not print guest console output\n"
		"  --accel auto|kvm|tcg  the CPU: KVM, the TCG emulator, or KVM when usable\n"
		"                      and TCG otherwise (auto, the default)\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"\n"
		"guest memory:\n"
		"  --host-mem SIZE     frame pool size (default: every guest's memory + 2M);\n"
		"                      smaller overcommits and needs --swap to make room\n"
		"  --backing pool|anon frames from the VMM's pool (default), or plain\n"
		"                      anonymous memory (no KSM, no swap)\n"
		"  --fault-around SIZE pages mapped per first-touch fault (default 64K)\n"
		"  --fault-ahead SIZE|off  map ahead of a sequential first touch (default 2M)\n"
		"  --thp always|never  2M blocks per fault (default never)\n"
		"  --min-free-kbytes N, --watermark-scale-factor N\n"
		"                      pool watermarks, as Linux's sysctls (derived by default)\n"
		"  --fault-spin-us N   fault thread busy-polls this long before sleeping (50)\n"
		"  --tcg-mmu owned|host  on TCG, the pool's sEPT is the CPU's page table\n"
		"                      (owned, the default), or guest RAM is host mappings\n"
		"                      served through userfaultfd, as on KVM (host)\n"
		"  --memory-image FILE guest RAM starts as FILE (raw RAM, offset = guest\n"
		"                      physical address), restored lazily on first touch\n"
		"\n"
		"KSM (same-page merging):\n"
		"  --ksm               merge identical pages of every VM (config: per group)\n"
		"  --ksm-rate normal|max  Linux's pacing below, or back to back (normal)\n"
		"  --ksm-pages-to-scan N, --ksm-sleep-ms N  pacing (Linux: 100, 20)\n"
		"  --ksm-max-page-sharing N  mappers per shared frame (256)\n"
		"  --ksm-zero-pages on|off   zero pages map the zero run (on)\n"
		"  --ksm-dirty-log on|off    skip pages the dirty log showed lately (on)\n"
		"  --ksm-start-ms N    delay before the first scan (0)\n"
		"  --ksm-sample-ms N   how often sharing over time is sampled (default 100)\n"
		"\n"
		"swap and limits:\n"
		"  --swap FILE         swap guest pages to FILE (created, preallocated,\n"
		"                      O_DIRECT, removed on exit)\n"
		"  --swap-size SIZE    swap file size (default: the pool size)\n"
		"  --keep-swap         leave the swap file in place on exit\n"
		"  --zswap SIZE        compressed (LZ4) cache of this size in front of the file\n"
		"  --page-cluster N    swap readahead, in pages (default 8; 0 or 1: none)\n"
		"  --memory-high SIZE  per VM: above it, reclaim that VM first and slow it\n"
		"  --memory-max SIZE   per VM: hard limit; reclaim from that VM, else OOM-kill it\n"
		"  --oom-score-adj N   per VM, -1000..1000 (-1000: never OOM-killed)\n"
		"\n"
		"Exit status: 0 if every guest exited with code 0, 1 if any did not,\n"
		"2 for bad input (options, guest image, config, --accel kvm without KVM).\n");
}

enum {
	OPT_BACKING = 256,
	OPT_HOST_MEM,
	OPT_FAULT_AROUND,
	OPT_FAULT_AHEAD,
	OPT_THP,
	OPT_MIN_FREE_KBYTES,
	OPT_WATERMARK_SCALE,
	OPT_FAULT_SPIN,
	OPT_TCG_MMU,
	OPT_KSM,
	OPT_KSM_PAGES,
	OPT_KSM_SLEEP,
	OPT_KSM_RATE,
	OPT_KSM_MAX_SHARING,
	OPT_KSM_ZERO,
	OPT_KSM_DIRTY,
	OPT_KSM_START,
	OPT_KSM_SAMPLE,
	OPT_SWAP,
	OPT_SWAP_SIZE,
	OPT_KEEP_SWAP,
	OPT_ZSWAP,
	OPT_PAGE_CLUSTER,
	OPT_MEMORY_HIGH,
	OPT_MEMORY_MAX,
	OPT_OOM_ADJ,
	OPT_MEMORY_IMAGE,
	OPT_ACCEL,
};

static int parse_on_off(const char *option, const char *text, bool *out, char *err, size_t errlen)
{
	if (strcmp(text, "on") == 0)
		*out = true;
	else if (strcmp(text, "off") == 0)
		*out = false;
	else {
		snprintf(err, errlen, "%s: '%s' is not on or off", option, text);
		return -1;
	}
	return 0;
}

static int parse_number(const char *option, const char *text, uint64_t max, uint64_t *out,
			char *err, size_t errlen)
{
	char *end;
	unsigned long long v = strtoull(text, &end, 10);
	if (!*text || *end || *text == '-' || v > max) {
		snprintf(err, errlen, "%s: bad value '%s': expected a whole number up to %llu",
			 option, text, (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_count(const char *text, unsigned *out, char *err, size_t errlen)
{
	char *end;
	long v = strtol(text, &end, 10);
	if (!*text || *end || v < 0 || v > 1000000) {
		snprintf(err, errlen, "bad VM count '%s': expected a positive whole number", text);
		return -1;
	}
	if (v == 0) {
		snprintf(err, errlen, "--vms 0: the VM count must be at least 1");
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static enum run_options_result
run_options_parse_argv(int argc, char **argv, struct fleet_spec *spec, char *err, size_t errlen)
{
	static const struct option options[] = {
		{"vms", required_argument, NULL, 'n'},
		{"mem", required_argument, NULL, 'm'},
		{"config", required_argument, NULL, 'c'},
		{"json", required_argument, NULL, 'j'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{"backing", required_argument, NULL, OPT_BACKING},
		{"host-mem", required_argument, NULL, OPT_HOST_MEM},
		{"fault-around", required_argument, NULL, OPT_FAULT_AROUND},
		{"fault-ahead", required_argument, NULL, OPT_FAULT_AHEAD},
		{"thp", required_argument, NULL, OPT_THP},
		{"min-free-kbytes", required_argument, NULL, OPT_MIN_FREE_KBYTES},
		{"watermark-scale-factor", required_argument, NULL, OPT_WATERMARK_SCALE},
		{"fault-spin-us", required_argument, NULL, OPT_FAULT_SPIN},
		{"tcg-mmu", required_argument, NULL, OPT_TCG_MMU},
		{"ksm", no_argument, NULL, OPT_KSM},
		{"ksm-pages-to-scan", required_argument, NULL, OPT_KSM_PAGES},
		{"ksm-sleep-ms", required_argument, NULL, OPT_KSM_SLEEP},
		{"ksm-rate", required_argument, NULL, OPT_KSM_RATE},
		{"ksm-max-page-sharing", required_argument, NULL, OPT_KSM_MAX_SHARING},
		{"ksm-zero-pages", required_argument, NULL, OPT_KSM_ZERO},
		{"ksm-dirty-log", required_argument, NULL, OPT_KSM_DIRTY},
		{"ksm-start-ms", required_argument, NULL, OPT_KSM_START},
		{"swap", required_argument, NULL, OPT_SWAP},
		{"swap-size", required_argument, NULL, OPT_SWAP_SIZE},
		{"keep-swap", no_argument, NULL, OPT_KEEP_SWAP},
		{"zswap", required_argument, NULL, OPT_ZSWAP},
		{"page-cluster", required_argument, NULL, OPT_PAGE_CLUSTER},
		{"memory-high", required_argument, NULL, OPT_MEMORY_HIGH},
		{"memory-max", required_argument, NULL, OPT_MEMORY_MAX},
		{"oom-score-adj", required_argument, NULL, OPT_OOM_ADJ},
		{"memory-image", required_argument, NULL, OPT_MEMORY_IMAGE},
		{"ksm-sample-ms", required_argument, NULL, OPT_KSM_SAMPLE},
		{"accel", required_argument, NULL, OPT_ACCEL},
		{NULL, 0, NULL, 0},
	};
	struct memory_settings memory;
	unsigned memory_given = 0;
	memory_settings_default(&memory);
	struct ksm_config ksm;
	unsigned ksm_given = 0;
	bool ksm_on = false;
	unsigned sample_ms = 0;
	ksm_config_default(&ksm);
	struct swap_settings swap;
	unsigned swap_given = 0;
	const char *swap_path = NULL, *memory_image = NULL;
	swap_settings_default(&swap);
	unsigned vms = 1;
	uint64_t mem = FLEET_DEFAULT_MEM;
	int vms_given = 0, mem_given = 0;
	const char *config = NULL;
	enum accel_choice accel = ACCEL_AUTO;
	bool accel_given = false;

	fleet_spec_init(spec);
	optind = 0; /* full re-initialisation, so tests can parse repeatedly */
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":n:m:c:j:qhV", options, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_count(optarg, &vms, err, errlen))
				return RUN_OPTIONS_ERROR;
			vms_given = 1;
			break;
		case 'm':
			if (size_parse(optarg, &mem, err, errlen))
				return RUN_OPTIONS_ERROR;
			mem_given = 1;
			break;
		case 'c':
			config = optarg;
			break;
		case 'j':
			free(spec->json_path);
			spec->json_path = strdup(optarg);
			break;
		case 'q':
			spec->quiet = true;
			break;
		case 'h':
			run_options_usage(stdout);
			return RUN_OPTIONS_EXIT;
		case 'V':
			printf("vmm %s\n", VMM_VERSION);
			return RUN_OPTIONS_EXIT;
		case OPT_BACKING:
			if (strcmp(optarg, "pool") == 0)
				memory.backing = BACKING_POOL;
			else if (strcmp(optarg, "anon") == 0)
				memory.backing = BACKING_ANON;
			else {
				snprintf(err, errlen, "--backing: '%s' is not pool or anon",
					 optarg);
				return RUN_OPTIONS_ERROR;
			}
			memory_given |= 1u << 0;
			break;
		case OPT_HOST_MEM:
			if (size_parse(optarg, &memory.host_mem_bytes, err, errlen))
				return RUN_OPTIONS_ERROR;
			memory_given |= 1u << 1;
			break;
		case OPT_FAULT_AROUND:
			if (size_parse(optarg, &memory.fault_around_bytes, err, errlen))
				return RUN_OPTIONS_ERROR;
			memory_given |= 1u << 2;
			break;
		case OPT_FAULT_AHEAD:
			if (strcmp(optarg, "off") == 0)
				memory.fault_ahead_bytes = 0;
			else if (size_parse(optarg, &memory.fault_ahead_bytes, err, errlen))
				return RUN_OPTIONS_ERROR;
			memory_given |= 1u << 7;
			break;
		case OPT_THP:
			if (strcmp(optarg, "always") == 0)
				memory.thp = true;
			else if (strcmp(optarg, "never") == 0)
				memory.thp = false;
			else {
				snprintf(err, errlen, "--thp: '%s' is not always or never", optarg);
				return RUN_OPTIONS_ERROR;
			}
			memory_given |= 1u << 3;
			break;
		case OPT_MIN_FREE_KBYTES:
			if (parse_number("--min-free-kbytes", optarg, 1ull << 40,
					 &memory.min_free_kbytes, err, errlen))
				return RUN_OPTIONS_ERROR;
			memory_given |= 1u << 4;
			break;
		case OPT_WATERMARK_SCALE: {
			uint64_t v;
			if (parse_number("--watermark-scale-factor", optarg, 3000, &v, err, errlen))
				return RUN_OPTIONS_ERROR;
			memory.watermark_scale_factor = (uint32_t)v;
			memory_given |= 1u << 5;
			break;
		}
		case OPT_FAULT_SPIN: {
			uint64_t v;
			if (parse_number("--fault-spin-us", optarg, 100000, &v, err, errlen))
				return RUN_OPTIONS_ERROR;
			memory.fault_spin_us = (unsigned)v;
			memory_given |= 1u << 6;
			break;
		}
		case OPT_TCG_MMU:
			if (tcg_mmu_parse(optarg, &memory.tcg_mmu)) {
				snprintf(err, errlen, "--tcg-mmu: '%s' is not owned or host",
					 optarg);
				return RUN_OPTIONS_ERROR;
			}
			memory_given |= 1u << 8;
			break;
		case OPT_KSM:
			ksm_on = true;
			break;
		case OPT_KSM_PAGES:
		case OPT_KSM_SLEEP:
		case OPT_KSM_MAX_SHARING: {
			uint64_t v;
			const char *name = c == OPT_KSM_PAGES	? "--ksm-pages-to-scan"
					   : c == OPT_KSM_SLEEP ? "--ksm-sleep-ms"
								: "--ksm-max-page-sharing";
			if (parse_number(name, optarg, 1u << 20, &v, err, errlen))
				return RUN_OPTIONS_ERROR;
			if (c == OPT_KSM_PAGES)
				ksm.pages_to_scan = (unsigned)v, ksm_given |= 1u << 0;
			else if (c == OPT_KSM_SLEEP)
				ksm.sleep_millisecs = (unsigned)v, ksm_given |= 1u << 1;
			else
				ksm.max_page_sharing = (unsigned)v, ksm_given |= 1u << 2;
			break;
		}
		case OPT_KSM_START:
		case OPT_KSM_SAMPLE: {
			uint64_t v;
			if (parse_number(c == OPT_KSM_START ? "--ksm-start-ms" : "--ksm-sample-ms",
					 optarg, 3600000, &v, err, errlen))
				return RUN_OPTIONS_ERROR;
			if (c == OPT_KSM_START)
				ksm.start_delay_ms = (unsigned)v, ksm_given |= 1u << 6;
			else
				sample_ms = (unsigned)(v ? v : 1);
			break;
		}
		case OPT_SWAP:
			swap_path = optarg; /* argv outlives the parse */
			swap_given |= 1u << 0;
			break;
		case OPT_SWAP_SIZE:
			if (size_parse(optarg, &swap.bytes, err, errlen))
				return RUN_OPTIONS_ERROR;
			swap_given |= 1u << 1;
			break;
		case OPT_KEEP_SWAP:
			swap.keep = true;
			swap_given |= 1u << 2;
			break;
		case OPT_ZSWAP:
			if (size_parse(optarg, &swap.zswap_bytes, err, errlen))
				return RUN_OPTIONS_ERROR;
			swap_given |= 1u << 3;
			break;
		case OPT_PAGE_CLUSTER: {
			uint64_t v;
			if (parse_number("--page-cluster", optarg, 64, &v, err, errlen))
				return RUN_OPTIONS_ERROR;
			swap.page_cluster = (unsigned)v;
			swap_given |= 1u << 4;
			break;
		}
		case OPT_MEMORY_HIGH:
			if (size_parse(optarg, &swap.memory_high, err, errlen))
				return RUN_OPTIONS_ERROR;
			swap_given |= 1u << 5;
			break;
		case OPT_MEMORY_MAX:
			if (size_parse(optarg, &swap.memory_max, err, errlen))
				return RUN_OPTIONS_ERROR;
			swap_given |= 1u << 6;
			break;
		case OPT_MEMORY_IMAGE:
			memory_image = optarg; /* argv outlives the parse */
			break;
		case OPT_ACCEL:
			if (accel_choice_parse(optarg, &accel)) {
				snprintf(err, errlen, "--accel: '%s' is not auto, kvm or tcg",
					 optarg);
				return RUN_OPTIONS_ERROR;
			}
			accel_given = true;
			break;
		case OPT_OOM_ADJ: {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (!*optarg || *end || v < -1000 || v > 1000) {
				snprintf(err, errlen,
					 "--oom-score-adj: bad value '%s': expected -1000..1000",
					 optarg);
				return RUN_OPTIONS_ERROR;
			}
			swap.oom_score_adj = (int)v;
			swap_given |= 1u << 7;
			break;
		}
		case OPT_KSM_RATE:
			if (strcmp(optarg, "max") == 0)
				ksm.max_rate = true;
			else if (strcmp(optarg, "normal") == 0)
				ksm.max_rate = false;
			else {
				snprintf(err, errlen, "--ksm-rate: '%s' is not max or normal",
					 optarg);
				return RUN_OPTIONS_ERROR;
			}
			ksm_given |= 1u << 3;
			break;
		case OPT_KSM_ZERO:
			if (parse_on_off("--ksm-zero-pages", optarg, &ksm.use_zero_pages, err,
					 errlen))
				return RUN_OPTIONS_ERROR;
			ksm_given |= 1u << 4;
			break;
		case OPT_KSM_DIRTY:
			if (parse_on_off("--ksm-dirty-log", optarg, &ksm.dirty_log, err, errlen))
				return RUN_OPTIONS_ERROR;
			ksm_given |= 1u << 5;
			break;
		case ':':
			snprintf(err, errlen, "option %s needs a value", argv[optind - 1]);
			return RUN_OPTIONS_ERROR;
		default:
			snprintf(err, errlen, "unknown option '%s' (see vmm run --help)",
				 argv[optind - 1]);
			return RUN_OPTIONS_ERROR;
		}
	}

	if (config) {
		if (optind < argc) {
			snprintf(err, errlen,
				 "--config describes the guests; '%s' on the command line is not "
				 "allowed with it",
				 argv[optind]);
			return RUN_OPTIONS_ERROR;
		}
		if (vms_given || mem_given) {
			snprintf(err, errlen,
				 "--vms and --mem do not combine with --config: set them per group "
				 "in the file");
			return RUN_OPTIONS_ERROR;
		}
		spec->config_path = strdup(config);
		if (fleet_config_load(config, spec, err, errlen))
			return RUN_OPTIONS_ERROR;
	} else {
		if (optind >= argc) {
			snprintf(err, errlen, "no guest given (see vmm run --help)");
			return RUN_OPTIONS_ERROR;
		}
		const char *guest = argv[optind++];
		size_t len = 1;
		for (int i = optind; i < argc; i++)
			len += strlen(argv[i]) + 1;
		char *args = calloc(1, len);
		for (int i = optind; i < argc; i++) {
			if (i > optind)
				strcat(args, " ");
			strcat(args, argv[i]);
		}
		struct vm_group_spec *g = fleet_spec_add_group(spec, "vm", guest, args, mem, vms);
		free(args);
		if (!g) {
			snprintf(err, errlen, "out of memory");
			return RUN_OPTIONS_ERROR;
		}
	}
	/* Options on the command line override the config file. */
	if (accel_given)
		spec->accel = accel;
	if (memory_given & (1u << 0))
		spec->memory.backing = memory.backing;
	if (memory_given & (1u << 1))
		spec->memory.host_mem_bytes = memory.host_mem_bytes;
	if (memory_given & (1u << 2))
		spec->memory.fault_around_bytes = memory.fault_around_bytes;
	if (memory_given & (1u << 3))
		spec->memory.thp = memory.thp;
	if (memory_given & (1u << 4))
		spec->memory.min_free_kbytes = memory.min_free_kbytes;
	if (memory_given & (1u << 5))
		spec->memory.watermark_scale_factor = memory.watermark_scale_factor;
	if (memory_given & (1u << 6))
		spec->memory.fault_spin_us = memory.fault_spin_us;
	if (memory_given & (1u << 7))
		spec->memory.fault_ahead_bytes = memory.fault_ahead_bytes;
	if (memory_given & (1u << 8))
		spec->memory.tcg_mmu = memory.tcg_mmu;
	if (ksm_on)
		spec->ksm_default = true;
	if (ksm_given & (1u << 0))
		spec->ksm.pages_to_scan = ksm.pages_to_scan;
	if (ksm_given & (1u << 1))
		spec->ksm.sleep_millisecs = ksm.sleep_millisecs;
	if (ksm_given & (1u << 2))
		spec->ksm.max_page_sharing = ksm.max_page_sharing;
	if (ksm_given & (1u << 3))
		spec->ksm.max_rate = ksm.max_rate;
	if (ksm_given & (1u << 4))
		spec->ksm.use_zero_pages = ksm.use_zero_pages;
	if (ksm_given & (1u << 5))
		spec->ksm.dirty_log = ksm.dirty_log;
	if (ksm_given & (1u << 6))
		spec->ksm.start_delay_ms = ksm.start_delay_ms;
	if (sample_ms)
		spec->ksm_sample_ms = sample_ms;
	if (swap_given & (1u << 0)) {
		free(spec->swap.path);
		spec->swap.path = strdup(swap_path);
	}
	if (swap_given & (1u << 1))
		spec->swap.bytes = swap.bytes;
	if (swap_given & (1u << 2))
		spec->swap.keep = swap.keep;
	if (swap_given & (1u << 3))
		spec->swap.zswap_bytes = swap.zswap_bytes;
	if (swap_given & (1u << 4))
		spec->swap.page_cluster = swap.page_cluster;
	if (swap_given & (1u << 5))
		spec->swap.memory_high = swap.memory_high;
	if (swap_given & (1u << 6))
		spec->swap.memory_max = swap.memory_max;
	if (swap_given & (1u << 7))
		spec->swap.oom_score_adj = swap.oom_score_adj;
	if (memory_image) {
		free(spec->memory_image);
		spec->memory_image = strdup(memory_image);
	}
	if (fleet_spec_validate(spec, err, errlen))
		return RUN_OPTIONS_ERROR;
	return RUN_OPTIONS_OK;
}

enum run_options_result run_options_parse(int argc, char **argv, struct fleet_spec *spec, char *err,
					  size_t errlen)
{
	enum run_options_result rc = run_options_parse_argv(argc, argv, spec, err, errlen);
	if (rc == RUN_OPTIONS_ERROR)
		message_one_line(err);
	return rc;
}
