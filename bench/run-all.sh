#!/bin/sh
# run-all.sh - every benchmark in one run, one report.
#
#   bench/run-all.sh [--build DIR] [--out DIR] [--quick] [--only LIST]
#                    [--accel auto|kvm|tcg]
#
# Runs the benchmarks built in DIR/bench (default ./build), each printing its
# figures next to a baseline measured in the same run, and gathers them:
# OUT/NAME.txt and OUT/NAME.json per benchmark, OUT/report.txt (all tables)
# and OUT/report.json ({"NAME": <its JSON>, ...}), plus the plots some of them
# draw. OUT defaults to ./bench-results. LIST is a comma-separated subset of
# the names below, in any order.
#
# The fault and swap suite (the memory-ownership and swap benchmarks):
#   launch       vmm run --vms 64 hello; pattern guest vs a host fill loop
#   first_touch  first-touch cost per page on the pool vs anonymous memory
#   swap         swap-out/in throughput and latency vs raw O_DIRECT io_uring;
#                touch under 2x overcommit
# Deduplication:
#   ksm          our KSM vs ksmd on identical content in a host process
#   libvirt      QEMU guests under libvirt with ksmd vs the same guests here
#   scaling      1..64 VMs: dedup ratio and scanner CPU
#   advisor      the scan-time advisor against Linux's, targets 1, 2, 4 s
#   images       VMs restored from RAM images of real Linux boots (made under
#                QEMU TCG by bench/linux_images.sh) vs an exact offline count
#
# --quick shrinks every benchmark (smaller guests, fewer repeats) for a
# smoke run of the whole set; its figures are not the ones to quote.
#
# --accel is passed to every benchmark, which passes it to every vmm run:
# auto (the default) is KVM where /dev/kvm is usable and TCG where it is not,
# so on a machine without /dev/kvm everything runs on TCG. Each benchmark
# names the accelerator its runs used ("accelerator: ..." in its table,
# "accel" in its JSON); report.txt and report.json name them too.
set -eu

build=build
out=bench-results
quick=0
only=""
accel=auto
usage() {
	sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=${2:?--build needs a directory}; shift 2 ;;
	--out) out=${2:?--out needs a directory}; shift 2 ;;
	--quick) quick=1; shift ;;
	--only) only=${2:?--only needs a list}; shift 2 ;;
	--accel) accel=${2:?--accel needs auto, kvm or tcg}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run-all.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
done

case "$accel" in
auto | kvm | tcg) ;;
*) echo "run-all.sh: --accel is auto, kvm or tcg, not '$accel'" >&2; exit 2 ;;
esac

all="launch first_touch swap ksm libvirt scaling advisor images"
if [ -n "$only" ]; then
	for name in $(echo "$only" | tr ',' ' '); do
		case " $all " in
		*" $name "*) ;;
		*) echo "run-all.sh: unknown benchmark '$name' (known: $all)" >&2; exit 2 ;;
		esac
	done
	selected=$(echo "$only" | tr ',' ' ')
else
	selected=$all
fi
if [ ! -x "$build/vmm/vmm" ]; then
	echo "run-all.sh: no vmm in $build (build first: scripts/build.sh $build)" >&2
	exit 2
fi
case "$out$build" in
*[[:space:]\'\"]*) echo "run-all.sh: --out and --build need paths without spaces or quotes" >&2; exit 2 ;;
esac
mkdir -p "$out"

# The arguments of each benchmark, full and quick.
bench_args() {
	case "$1:$quick" in
	launch:0) echo "--repeat 5" ;;
	launch:1) echo "--repeat 1" ;;
	first_touch:0) echo "--mb 256 --repeat 5" ;;
	first_touch:1) echo "--mb 32 --repeat 1" ;;
	swap:0) echo "--mb 256" ;;
	swap:1) echo "--mb 64" ;;
	ksm:0) echo "" ;;
	ksm:1) echo "--vms 4 --mb 32" ;;
	libvirt:0) echo "--out $out" ;;
	libvirt:1) echo "--smoke --out $out" ;;
	scaling:0) echo "--out $out" ;;
	scaling:1) echo "--max-vms 8 --out $out" ;;
	advisor:0) echo "--vms 8 --mb 64 --seconds 40" ;;
	advisor:1) echo "--vms 2 --mb 16 --targets 1 --seconds 8" ;;
	images:0) echo "--out $out" ;;
	images:1) echo "--vms 4 --images 1,2 --hold-ms 3000 --out $out" ;;
	esac
}

# The accelerator a benchmark's JSON names ("accel"), or "-" without one.
bench_accel() {
	a=$(grep -o '"accel": *"[a-z]*"' "$out/$1.json" 2>/dev/null | head -n 1 | sed 's/.*"\([a-z]*\)"$/\1/')
	echo "${a:--}"
}

failed=""
echo "run-all.sh: --accel $accel (auto: KVM where /dev/kvm is usable, else TCG)" >"$out/report.txt"
echo >>"$out/report.txt"
for name in $selected; do
	exe="$build/bench/bench_$name"
	rm -f "$out/$name.json" "$out/$name.txt" "$out/$name.err"
	if [ ! -x "$exe" ]; then
		echo "== $name: $exe is not built (see bench/CMakeLists.txt)" | tee -a "$out/report.txt"
		failed="$failed $name"
		continue
	fi
	echo "== $name: $exe $(bench_args "$name") --accel $accel"
	# shellcheck disable=SC2046
	if "$exe" $(bench_args "$name") --accel "$accel" --json "$out/$name.json" >"$out/$name.txt" 2>"$out/$name.err"; then
		{ echo "== $name"; cat "$out/$name.txt"; echo; } | tee -a "$out/report.txt"
	else
		echo "== $name FAILED (exit $?): $(tail -n 3 "$out/$name.err")" | tee -a "$out/report.txt"
		failed="$failed $name"
		rm -f "$out/$name.json"
	fi
done

# The accelerators the benchmarks ran on: one name, or "mixed".
used=""
summary=""
for name in $selected; do
	[ -s "$out/$name.json" ] || continue
	a=$(bench_accel "$name")
	summary="$summary $name=$a"
	case " $used " in *" $a "*) ;; *) used="$used $a" ;; esac
done
used=${used# }
case "$used" in
"") used_name="none" ;;
*" "*) used_name="mixed" ;;
*) used_name=$used ;;
esac
echo "accelerators used (--accel $accel):${summary:- none}" | tee -a "$out/report.txt"

# One JSON document: the accelerator, and each benchmark's own JSON under its name.
{
	printf '{"accel": "%s", "accel_requested": "%s"' "$used_name" "$accel"
	sep=","
	for name in $selected; do
		[ -s "$out/$name.json" ] || continue
		printf '%s\n "%s": ' "$sep" "$name"
		cat "$out/$name.json"
		sep=","
	done
	printf '\n}\n'
} >"$out/report.json"

echo "report: $out/report.txt, $out/report.json"
if [ -n "$failed" ]; then
	echo "run-all.sh: failed:$failed" >&2
	exit 1
fi
