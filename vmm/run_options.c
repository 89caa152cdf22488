/*
 * run_options.c - parsing `vmm run` options with getopt_long: the few that
 * shape the fleet (--vms, --mem, --config, ...) by hand, every other one
 * from a table of (name, kind, fleet_spec field).
 */
#include "run_options.h"

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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
		"  --name NAME         the fleet's name for `vmm ctl` (default vmm-PID)\n"
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
		"  --ksm-smart-scan on|off  skip pages that did not merge lately, as Linux 6.7\n"
		"                      (default on)\n"
		"  --ksm-advisor none|scan-time  Linux 6.9's advisor: pages_to_scan set so\n"
		"                      a full scan takes --ksm-advisor-target-scan-time S (200)\n"
		"                      within --ksm-advisor-max-cpu PCT (70), between\n"
		"                      --ksm-advisor-min-pages N (500) and -max-pages N (30000)\n"
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
		"  Limits over groups of VMs (cgroup v2's memory.max, .high, .low, .min,\n"
		"  .oom.group, with memory.pressure): a config's \"cgroups\" (README).\n"
		"\n"
		"Exit status: 0 if every guest exited with code 0, 1 if any did not,\n"
		"2 for bad input (options, guest image, config, --accel kvm without KVM).\n");
}

/* --- the options that set one fleet_spec field each, as a table ---
 *
 * Each is parsed into a staged value as it comes, and applied to the spec
 * after the config file (if any) is loaded, so the command line overrides
 * the file; a later occurrence overrides an earlier one. */

enum option_kind {
	OPTION_SIZE,	    /* SIZE (size_parse) */
	OPTION_SIZE_OR_OFF, /* SIZE, or off = 0 */
	OPTION_NUMBER,	    /* 0..max */
	OPTION_NUMBER_MIN1, /* 0..max, 0 taken as 1 */
	OPTION_SECONDS_MS,  /* whole seconds 1..max, stored as milliseconds */
	OPTION_SIGNED,	    /* -max..max */
	OPTION_CHOICE,	    /* one of choices[] */
	OPTION_FLAG,	    /* no value: true */
	OPTION_STRING,	    /* a copy of the text (a path) */
};

struct option_choice {
	const char *name;
	int value;
};

struct run_option {
	const char *name;
	enum option_kind kind;
	size_t offset, width; /* the fleet_spec field */
	uint64_t max;
	const struct option_choice *choices; /* NULL-terminated, in help order */
};

#define FIELD(f) offsetof(struct fleet_spec, f), sizeof(((struct fleet_spec *)0)->f)

static const struct option_choice backing_choices[] = {
	{"pool", BACKING_POOL}, {"anon", BACKING_ANON}, {NULL, 0}};
static const struct option_choice thp_choices[] = {{"always", 1}, {"never", 0}, {NULL, 0}};
static const struct option_choice rate_choices[] = {{"max", 1}, {"normal", 0}, {NULL, 0}};
static const struct option_choice on_off_choices[] = {{"on", 1}, {"off", 0}, {NULL, 0}};
static const struct option_choice mmu_choices[] = {
	{"owned", TCG_MMU_OWNED}, {"host", TCG_MMU_HOST}, {NULL, 0}};
static const struct option_choice advisor_choices[] = {{"none", 0}, {"scan-time", 1}, {NULL, 0}};
static const struct option_choice accel_choices[] = {
	{"auto", ACCEL_AUTO}, {"kvm", ACCEL_KVM}, {"tcg", ACCEL_TCG}, {NULL, 0}};

static const struct run_option run_options[] = {
	{"backing", OPTION_CHOICE, FIELD(memory.backing), 0, backing_choices},
	{"host-mem", OPTION_SIZE, FIELD(memory.host_mem_bytes), 0, NULL},
	{"fault-around", OPTION_SIZE, FIELD(memory.fault_around_bytes), 0, NULL},
	{"fault-ahead", OPTION_SIZE_OR_OFF, FIELD(memory.fault_ahead_bytes), 0, NULL},
	{"thp", OPTION_CHOICE, FIELD(memory.thp), 0, thp_choices},
	{"min-free-kbytes", OPTION_NUMBER, FIELD(memory.min_free_kbytes), 1ull << 40, NULL},
	{"watermark-scale-factor", OPTION_NUMBER, FIELD(memory.watermark_scale_factor), 3000, NULL},
	{"fault-spin-us", OPTION_NUMBER, FIELD(memory.fault_spin_us), 100000, NULL},
	{"tcg-mmu", OPTION_CHOICE, FIELD(memory.tcg_mmu), 0, mmu_choices},
	{"ksm", OPTION_FLAG, FIELD(ksm_default), 0, NULL},
	{"ksm-pages-to-scan", OPTION_NUMBER, FIELD(ksm.pages_to_scan), 1u << 20, NULL},
	{"ksm-sleep-ms", OPTION_NUMBER, FIELD(ksm.sleep_millisecs), 1u << 20, NULL},
	{"ksm-rate", OPTION_CHOICE, FIELD(ksm.max_rate), 0, rate_choices},
	{"ksm-max-page-sharing", OPTION_NUMBER, FIELD(ksm.max_page_sharing), 1u << 20, NULL},
	{"ksm-zero-pages", OPTION_CHOICE, FIELD(ksm.use_zero_pages), 0, on_off_choices},
	{"ksm-dirty-log", OPTION_CHOICE, FIELD(ksm.dirty_log), 0, on_off_choices},
	{"ksm-smart-scan", OPTION_CHOICE, FIELD(ksm.smart_scan), 0, on_off_choices},
	{"ksm-advisor", OPTION_CHOICE, FIELD(ksm.advisor), 0, advisor_choices},
	{"ksm-advisor-target-scan-time", OPTION_SECONDS_MS, FIELD(ksm.advisor_target_scan_ms),
	 86400, NULL},
	{"ksm-advisor-max-cpu", OPTION_NUMBER, FIELD(ksm.advisor_max_cpu), 100, NULL},
	{"ksm-advisor-min-pages", OPTION_NUMBER, FIELD(ksm.advisor_min_pages), 1u << 20, NULL},
	{"ksm-advisor-max-pages", OPTION_NUMBER, FIELD(ksm.advisor_max_pages), 1u << 20, NULL},
	{"ksm-start-ms", OPTION_NUMBER, FIELD(ksm.start_delay_ms), 3600000, NULL},
	{"ksm-sample-ms", OPTION_NUMBER_MIN1, FIELD(ksm_sample_ms), 3600000, NULL},
	{"swap", OPTION_STRING, FIELD(swap.path), 0, NULL},
	{"swap-size", OPTION_SIZE, FIELD(swap.bytes), 0, NULL},
	{"keep-swap", OPTION_FLAG, FIELD(swap.keep), 0, NULL},
	{"zswap", OPTION_SIZE, FIELD(swap.zswap_bytes), 0, NULL},
	{"page-cluster", OPTION_NUMBER, FIELD(swap.page_cluster), 64, NULL},
	{"memory-high", OPTION_SIZE, FIELD(swap.memory_high), 0, NULL},
	{"memory-max", OPTION_SIZE, FIELD(swap.memory_max), 0, NULL},
	{"oom-score-adj", OPTION_SIGNED, FIELD(swap.oom_score_adj), 1000, NULL},
	{"memory-image", OPTION_STRING, FIELD(memory_image), 0, NULL},
	{"accel", OPTION_CHOICE, FIELD(accel), 0, accel_choices},
	{"name", OPTION_STRING, FIELD(name), 0, NULL},
};
#define NOPTIONS (sizeof(run_options) / sizeof(run_options[0]))
#define OPTION_BASE 256 /* getopt value of run_options[0] */

/* "'x' is not a, b or c" for a choice option. */
static void choice_error(const struct run_option *o, const char *text, char *err, size_t errlen)
{
	size_t n = 0, off = 0;
	while (o->choices[n].name)
		n++;
	off += (size_t)snprintf(err, errlen, "--%s: '%s' is not ", o->name, text);
	for (size_t i = 0; i < n && off < errlen; i++)
		off += (size_t)snprintf(err + off, errlen - off, "%s%s", o->choices[i].name,
					i + 2 < n   ? ", "
					: i + 1 < n ? " or "
						    : "");
}

/* Parses the text of option o into *value. Returns 0 or -1 with err set. */
static int option_value(const struct run_option *o, const char *text, uint64_t *value, char *err,
			size_t errlen)
{
	char name[64];
	snprintf(name, sizeof(name), "--%s", o->name);
	switch (o->kind) {
	case OPTION_SIZE_OR_OFF:
		if (strcmp(text, "off") == 0) {
			*value = 0;
			return 0;
		}
		/* fall through */
	case OPTION_SIZE:
		return size_parse(text, value, err, errlen);
	case OPTION_SECONDS_MS:
	case OPTION_NUMBER:
	case OPTION_NUMBER_MIN1: {
		char *end;
		unsigned long long v = strtoull(text, &end, 10);
		if (!*text || *end || *text == '-' || v > o->max) {
			snprintf(err, errlen,
				 "%s: bad value '%s': expected a whole number up to %llu", name,
				 text, (unsigned long long)o->max);
			return -1;
		}
		if (o->kind == OPTION_SECONDS_MS && v == 0) {
			snprintf(err, errlen, "%s: bad value '0': expected 1..%llu seconds", name,
				 (unsigned long long)o->max);
			return -1;
		}
		*value = o->kind == OPTION_NUMBER_MIN1 && v == 0 ? 1
			 : o->kind == OPTION_SECONDS_MS		 ? v * 1000
								 : v;
		return 0;
	}
	case OPTION_SIGNED: {
		char *end;
		long long v = strtoll(text, &end, 10);
		if (!*text || *end || v < -(long long)o->max || v > (long long)o->max) {
			snprintf(err, errlen, "%s: bad value '%s': expected -%llu..%llu", name,
				 text, (unsigned long long)o->max, (unsigned long long)o->max);
			return -1;
		}
		*value = (uint64_t)v;
		return 0;
	}
	case OPTION_CHOICE:
		for (const struct option_choice *c = o->choices; c->name; c++)
			if (strcmp(text, c->name) == 0) {
				*value = (uint64_t)c->value;
				return 0;
			}
		choice_error(o, text, err, errlen);
		return -1;
	case OPTION_FLAG:
		*value = 1;
		return 0;
	case OPTION_STRING:
		*value = 0; /* the text itself is kept (argv outlives the parse) */
		return 0;
	}
	return -1;
}

/* Stores a staged value into its fleet_spec field. */
static int option_apply(struct fleet_spec *spec, const struct run_option *o, uint64_t value,
			const char *text)
{
	void *field = (char *)spec + o->offset;
	if (o->kind == OPTION_STRING) {
		char *copy = strdup(text), **slot = field;
		if (!copy)
			return -1;
		free(*slot);
		*slot = copy;
		return 0;
	}
	switch (o->width) {
	case 1: {
		bool b = value != 0;
		memcpy(field, &b, 1);
		break;
	}
	case 4: {
		uint32_t v = (uint32_t)value; /* unsigned, int and enum fields */
		memcpy(field, &v, 4);
		break;
	}
	case 8:
		memcpy(field, &value, 8);
		break;
	default:
		return -1;
	}
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
	struct option options[8 + NOPTIONS] = {
		{"vms", required_argument, NULL, 'n'},	  {"mem", required_argument, NULL, 'm'},
		{"config", required_argument, NULL, 'c'}, {"json", required_argument, NULL, 'j'},
		{"quiet", no_argument, NULL, 'q'},	  {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
	};
	for (size_t i = 0; i < NOPTIONS; i++)
		options[7 + i] = (struct option){
			run_options[i].name,
			run_options[i].kind == OPTION_FLAG ? no_argument : required_argument, NULL,
			OPTION_BASE + (int)i};
	options[7 + NOPTIONS] = (struct option){NULL, 0, NULL, 0};
	struct staged {
		const struct run_option *option;
		uint64_t value;
		const char *text;
	} staged[128];
	size_t nstaged = 0;
	unsigned vms = 1;
	uint64_t mem = FLEET_DEFAULT_MEM;
	int vms_given = 0, mem_given = 0;
	const char *config = NULL;

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
		case ':':
			snprintf(err, errlen, "option %s needs a value", argv[optind - 1]);
			return RUN_OPTIONS_ERROR;
		default:
			if (c >= OPTION_BASE && c < OPTION_BASE + (int)NOPTIONS &&
			    nstaged < sizeof(staged) / sizeof(staged[0])) {
				const struct run_option *o = &run_options[c - OPTION_BASE];
				uint64_t value;
				if (option_value(o, optarg ? optarg : "", &value, err, errlen))
					return RUN_OPTIONS_ERROR;
				staged[nstaged++] = (struct staged){o, value, optarg};
				break;
			}
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
	for (size_t i = 0; i < nstaged; i++) {
		if (option_apply(spec, staged[i].option, staged[i].value, staged[i].text)) {
			snprintf(err, errlen, "--%s: cannot store the value (out of memory?)",
				 staged[i].option->name);
			return RUN_OPTIONS_ERROR;
		}
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
