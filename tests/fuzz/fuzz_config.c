/* fuzz_config.c - libFuzzer target: a fleet config (JSON with comments)
 * through fleet_config_parse() and fleet_spec_validate(), as `vmm run
 * --config` takes it. Besides what the sanitizers catch (leaks included):
 * every refusal says why in one non-empty line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/fleet_config.h"
#include "vmm/fleet_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reason(const char *err)
{
	if (!err[0] || strchr(err, '\n'))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	struct fleet_spec spec;
	char err[512] = "";
	fleet_spec_init(&spec);
	if (fleet_config_parse(text, "fuzz.json", &spec, err, sizeof(err)) != 0) {
		check_reason(err);
	} else {
		err[0] = 0;
		if (fleet_spec_validate(&spec, err, sizeof(err)) != 0)
			check_reason(err);
	}
	fleet_spec_free(&spec);
	free(text);
	return 0;
}
