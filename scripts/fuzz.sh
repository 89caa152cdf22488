#!/bin/sh
# fuzz.sh - builds the libFuzzer targets in tests/fuzz with clang
# (cmake -DVMM_FUZZ=ON, in build-fuzz) and runs each for FUZZ_SECONDS
# (default 10) on a scratch copy of its seed corpus in tests/fuzz/corpus.
# A crash, leak, sanitizer report or refusal without a one-line reason stops
# the run; the input that caused it is kept in build-fuzz/artifacts and named
# on stderr. scripts/test.sh calls this; to fuzz longer:
#   FUZZ_SECONDS=600 ./scripts/fuzz.sh [config|size|elf ...]
set -eu
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-10}"
targets="${*:-config size elf}"

mkdir -p build-fuzz
log=build-fuzz/build.log
# The build's output (clang's warnings about the guests' flags included)
# goes to a log, shown only if the build fails.
if ! (cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
	-DVMM_FUZZ=ON && for t in $targets; do
		cmake --build build-fuzz --target "fuzz_$t" -j "$(nproc)" || exit 1
	done) >"$log" 2>&1; then
	tail -n 60 "$log" >&2
	echo "fuzz.sh: building the fuzzers failed (whole log: $log)" >&2
	exit 1
fi

scratch="$(mktemp -d /tmp/vmm-fuzz.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT INT TERM
mkdir -p build-fuzz/artifacts
for t in $targets; do
	mkdir "$scratch/$t"
	cp tests/fuzz/corpus/"$t"/* "$scratch/$t/"
	# the targets run side by side, one core each
	(build-fuzz/tests/fuzz/"fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$PWD/build-fuzz/artifacts/$t-" \
		"$scratch/$t" >"$scratch/$t.log" 2>&1
	echo $? >"$scratch/$t.rc") &
done
echo "fuzzing $targets for ${seconds}s each"
wait
status=0
for t in $targets; do
	if [ "$(cat "$scratch/$t.rc")" = 0 ]; then
		grep -m1 '^stat::number_of_executed_units' "$scratch/$t.log" |
			sed "s/.*: *\([0-9]*\)/fuzz_$t: \1 inputs, no findings/"
	else
		echo "fuzz_$t: FAILED" >&2
		tail -n 40 "$scratch/$t.log" >&2
		status=1
	fi
done
exit $status
