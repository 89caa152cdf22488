/* fuzz_size.c - libFuzzer target: size_parse() on any text.
 *
 * Besides what the sanitizers catch: a refusal says why in one line, and an
 * accepted size formats to a non-empty string. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/size.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	uint64_t bytes = 0;
	char err[256] = "";
	if (size_parse(text, &bytes, err, sizeof(err)) != 0) {
		if (!err[0] || strchr(err, '\n'))
			abort(); /* a refusal names its reason, on one line */
	} else {
		char buf[64];
		const char *shown = size_format(bytes, buf, sizeof(buf));
		if (!shown || !shown[0])
			abort();
	}
	free(text);
	return 0;
}
