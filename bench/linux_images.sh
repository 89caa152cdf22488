#!/bin/sh
# linux_images.sh - makes raw RAM images of real, running Linux systems.
#
# The memory-image benchmark (bench/bench_images.sh) restores VMs from RAM
# images and measures how much KSM merges across them. Synthetic pages say
# little about that; the pages of a real kernel with a real workload do. This
# script boots Debian's 6.1 cloud kernel with a busybox initramfs under QEMU
# TCG (a stock kernel cannot run under KVM on our machines, see
# ../shared/PLATFORM.md), with guest RAM in a file (memory-backend-file,
# share=on, so the file *is* the RAM: byte offset == guest physical address
# for RAM below 4 GiB). The initramfs /init runs a small workload that is
# seeded by the boot index and, by the index modulo 3, one of three kinds
# (a batch job, a file server, a log processor): boots differ in their data
# and in what ran (but share the kernel
# and busybox), prints a marker line on the serial console and idles; the
# script then freezes the VM through the QEMU monitor (`stop`, then `quit`),
# so the file holds the RAM of the running system at that moment. Nothing
# clears RAM on the way out: QEMU unmaps the file, the page cache keeps it.
#
# Kernel and busybox come from Debian's archive without installing a kernel
# on the host: the versioned linux-image-*-cloud-amd64 package that
# linux-image-cloud-amd64 depends on is fetched with `apt-get download` and
# unpacked with `dpkg-deb -x`; busybox is /bin/busybox of busybox-static.
#
# Images are made once and reused (a stamp records kernel, initramfs, memory
# size and command line); --force remakes them. Image paths are printed on
# stdout, one per line; progress goes to stderr.
set -eu

prog=linux_images.sh
dir=/var/tmp/vmm-images
count=4
mem_mib=128
timeout_s=60
force=0
kaslr=on

usage() {
	cat <<EOF
usage: $prog [options]

Makes COUNT raw RAM images of Debian's cloud kernel + a busybox initramfs,
each booted under QEMU TCG with a workload seeded by the boot index, and
prints their paths. Existing images that match are reused.

  -k, --count K       number of images (boots) to make (default $count)
  -d, --dir DIR       work directory for kernel, initramfs and images
                      (default $dir)
  -m, --mem MIB       guest RAM in MiB, the size of each image (default $mem_mib)
  -t, --timeout S     seconds to wait for each boot's marker (default $timeout_s)
      --kaslr on|off  boot with the kernel's address randomisation (default
                      $kaslr, as the kernel ships); off adds 'nokaslr'
  -f, --force         remake the initramfs and every image
  -h, --help          this text

Files in DIR: kernel/vmlinuz, initramfs.cpio.gz, boot-I.ram (the image of
boot I), boot-I.log (its serial console), boot-I.stamp.
Needs: qemu-system-x86_64, apt-get/dpkg-deb (Debian), root to install
busybox-static when it is missing.
EOF
}

say() { echo "$prog: $*" >&2; }
die() {
	echo "$prog: error: $*" >&2
	exit 1
}

need_arg() { [ $# -ge 2 ] || die "option $1 needs a value (see --help)"; }

while [ $# -gt 0 ]; do
	case $1 in
	-k | --count)
		need_arg "$@"
		count=$2
		shift 2
		;;
	-d | --dir)
		need_arg "$@"
		dir=$2
		shift 2
		;;
	-m | --mem)
		need_arg "$@"
		mem_mib=$2
		shift 2
		;;
	-t | --timeout)
		need_arg "$@"
		timeout_s=$2
		shift 2
		;;
	--kaslr)
		need_arg "$@"
		kaslr=$2
		shift 2
		;;
	-f | --force)
		force=1
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done

is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; esac }
if ! is_uint "$count" || [ "$count" -lt 1 ] || [ "$count" -gt 64 ]; then
	die "--count must be 1..64, not '$count'"
fi
if ! is_uint "$mem_mib" || [ "$mem_mib" -lt 64 ] || [ "$mem_mib" -gt 3072 ]; then
	die "--mem must be 64..3072 (MiB), not '$mem_mib'"
fi
if ! is_uint "$timeout_s" || [ "$timeout_s" -lt 1 ]; then
	die "--timeout must be a positive number of seconds, not '$timeout_s'"
fi
case $kaslr in on | off) ;; *) die "--kaslr must be on or off, not '$kaslr'" ;; esac

for tool in qemu-system-x86_64 apt-get apt-cache dpkg-deb dpkg-query gzip md5sum timeout; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found (Debian 12 with qemu-system-x86 is needed)"
done

# Paths go into QEMU's comma-separated options and a space-separated list of
# temporary files to remove: refuse what would split them.
case "$dir" in
*[[:space:],]*) die "--dir '$dir': a path without spaces or commas is needed" ;;
esac
mkdir -p "$dir" || die "cannot create $dir"
dir=$(cd "$dir" && pwd)
case "$dir" in
*[[:space:],]*) die "--dir resolves to '$dir': a path without spaces or commas is needed" ;;
esac

# Cleanup of whatever is in flight when we stop early.
qemu_pid=""
tmp_paths=""
cleanup() {
	if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
		kill "$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
	fi
	for p in $tmp_paths; do rm -rf "$p"; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { printf '%d.%02d' $(($1 / 1000)) $((($1 % 1000) / 10)); }

# --- the kernel: Debian's cloud kernel, unpacked, not installed ---
fetch_kernel() {
	kdir=$dir/kernel
	if [ -s "$kdir/vmlinuz" ] && [ -s "$kdir/version" ]; then
		return 0
	fi
	meta=linux-image-cloud-amd64
	pkg=$(apt-cache depends "$meta" 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -n 1)
	[ -n "$pkg" ] || die "apt-cache does not know $meta or its kernel package; run 'apt-get update' first"
	say "fetching $pkg (the kernel $meta depends on) with apt-get download"
	tmp=$(mktemp -d "$dir/kernel-fetch.XXXXXX")
	tmp_paths="$tmp_paths $tmp"
	# apt-get download drops privileges to _apt when that user can write here.
	chown _apt "$tmp" 2>/dev/null || true
	if ! (cd "$tmp" && apt-get download -q "$pkg") >"$tmp.log" 2>&1; then
		msg=$(tail -n 3 "$tmp.log")
		rm -f "$tmp.log"
		die "apt-get download $pkg failed: $msg"
	fi
	rm -f "$tmp.log"
	deb=$(find "$tmp" -maxdepth 1 -name "${pkg}_*.deb" | head -n 1)
	[ -n "$deb" ] || die "apt-get download left no ${pkg}_*.deb in $tmp"
	dpkg-deb -x "$deb" "$tmp/x" || die "dpkg-deb -x $deb failed"
	vmlinuz=$(find "$tmp/x/boot" -name 'vmlinuz-*' | head -n 1)
	[ -n "$vmlinuz" ] || die "$deb holds no boot/vmlinuz-*"
	mkdir -p "$kdir"
	cp "$vmlinuz" "$kdir/vmlinuz.tmp"
	mv "$kdir/vmlinuz.tmp" "$kdir/vmlinuz"
	echo "$pkg $(dpkg-deb -f "$deb" Version)" >"$kdir/version"
	rm -rf "$tmp"
	say "kernel: $(cat "$kdir/version") -> $kdir/vmlinuz"
}

# --- busybox: the static binary of busybox-static ---
ensure_busybox() {
	if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
		[ "$(id -u)" -eq 0 ] ||
			die "busybox-static is not installed; install it (apt-get install busybox-static) or run as root"
		say "installing busybox-static"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			busybox-static >/dev/null || die "apt-get install busybox-static failed"
	fi
	[ -x /bin/busybox ] || die "busybox-static is installed but /bin/busybox is missing"
}

# --- the initramfs: busybox and /init ---
# /init runs the workload of boot $vmm_boot (a kernel parameter; the kernel
# hands unknown name=value parameters to init as environment variables).
write_init() {
	cat <<'INIT'
#!/bin/busybox sh
# /init of bench/linux_images.sh: a small workload seeded by the boot index,
# then a marker line on the console, then idle until the host freezes the VM.
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin
export PATH=/bin
boot=${vmm_boot:-0}
token=${vmm_token:-none}
idle() { while :; do sleep 3600; done; }
fail() {
	echo "VMM-IMAGE-FAILED boot=$boot token=$token step: $*"
	idle
}
mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t tmpfs -o size=64m tmpfs /tmp || fail "mount /tmp"
cd /tmp || fail "cd /tmp"

# 1. Data of this boot only: records drawn from a PRNG seeded by the boot
#    index, sorted, deduplicated by key, compressed and checked.
lines=$((20000 + 4000 * (boot % 5)))
awk -v seed=$((boot + 1)) -v n=$lines 'BEGIN {
	srand(seed)
	for (i = 0; i < n; i++)
		printf "%09d key%04d %.6f %s\n", int(rand() * 1e9), int(rand() * 5000),
			rand(), (rand() < 0.5 ? "alpha" : "beta")
}' >records.txt || fail "awk"
sort -n records.txt >sorted.txt || fail "sort -n"
sort -k2,2 -u records.txt >keys.txt || fail "sort -u"

# 1b. Then one of three workloads, by boot index, so that boots differ the way
#     a fleet's machines do (not only in their data):
case $((boot % 3)) in
0)	# a batch job: compress, check, filter
	gzip -9 -c sorted.txt >sorted.txt.gz || fail "gzip"
	gzip -d -c sorted.txt.gz | cmp - sorted.txt || fail "gzip round trip"
	sed -n 's/ alpha$//p' sorted.txt | wc -l >alpha.count || fail "sed"
	;;
1)	# a file server: a tree of small files, walked, summed and archived
	mkdir -p tree || fail "mkdir"
	awk -v seed=$((boot + 7)) 'BEGIN {
		srand(seed)
		for (d = 0; d < 20; d++) {
			system("mkdir -p tree/d" d)
			for (f = 0; f < 60; f++) {
				file = "tree/d" d "/f" f ".txt"
				for (l = 0; l < 8 + int(rand() * 24); l++)
					printf "%s line %d value %d\n", file, l, int(rand() * 1e6) > file
				close(file)
			}
		}
	}' || fail "tree"
	find tree -type f | sort >tree.list || fail "find tree"
	xargs md5sum <tree.list >tree.sums || fail "md5sum tree"
	tar -czf tree.tar.gz tree || fail "tar tree"
	ls -lR tree >tree.ls || fail "ls tree"
	;;
2)	# a log processor: a web server log, parsed, counted and rotated
	awk -v seed=$((boot + 13)) -v n=$lines 'BEGIN {
		srand(seed)
		split("GET POST PUT DELETE", m, " ")
		split("200 200 200 304 404 500", c, " ")
		for (i = 0; i < n; i++)
			printf "10.%d.%d.%d - - [30/Nov/2026:%02d:%02d:%02d] \"%s /api/v%d/item/%d\" %s %d\n",
				int(rand() * 4), int(rand() * 256), int(rand() * 256), int(rand() * 24),
				int(rand() * 60), int(rand() * 60), m[1 + int(rand() * 4)],
				1 + int(rand() * 3), int(rand() * 10000), c[1 + int(rand() * 6)],
				int(rand() * 100000)
	}' >access.log || fail "log"
	cut -d' ' -f1 access.log | sort | uniq -c | sort -rn >top.ips || fail "top ips"
	grep -c '" 500 ' access.log >errors.count || fail "grep"
	awk '{ bytes[$9] += $10 } END { for (s in bytes) print s, bytes[s] }' access.log |
		sort >bytes.by.status || fail "awk sum"
	sed 's/item\/[0-9]*/item\/N/' access.log | sort | uniq -c >routes.txt || fail "sed routes"
	gzip -c access.log >access.log.1.gz || fail "rotate"
	;;
esac

# 2. Files every boot has alike: a copy of busybox in tmpfs, and a tar of it.
cp /bin/busybox busybox.copy || fail "cp"
tar -cf bin.tar /bin/busybox /init 2>/dev/null || fail "tar"

# 3. A few applets that read kernel state.
find / -xdev >files.txt || fail "find"
dmesg >dmesg.txt || fail "dmesg"
ps >ps.txt || fail "ps"
md5sum records.txt sorted.txt busybox.copy >sums.txt || fail "md5sum"

set -- $(md5sum sorted.txt)
echo "VMM-IMAGE-READY boot=$boot token=$token lines=$lines keys=$(wc -l <keys.txt)" \
	"sorted_md5=$1 uptime=$(cut -d' ' -f1 /proc/uptime)" \
	"memfree_kb=$(awk '/^MemFree/ { print $2 }' /proc/meminfo) done"
idle
INIT
}

build_initramfs() {
	initrd=$dir/initramfs.cpio.gz
	write_init >"$dir/init.new"
	bb_sum=$(md5sum </bin/busybox)
	bb_sum=${bb_sum%% *}
	if [ "$force" -eq 0 ] && [ -s "$initrd" ] && [ -f "$dir/init" ] &&
		cmp -s "$dir/init" "$dir/init.new" && [ "$(cat "$dir/busybox.md5" 2>/dev/null)" = "$bb_sum" ]; then
		rm -f "$dir/init.new"
		return 0
	fi
	stage=$(mktemp -d "$dir/initramfs.XXXXXX")
	tmp_paths="$tmp_paths $stage"
	mkdir -p "$stage/bin" "$stage/dev" "$stage/proc" "$stage/sys" "$stage/tmp"
	cp /bin/busybox "$stage/bin/busybox"
	cp "$dir/init.new" "$stage/init"
	chmod 0755 "$stage/init" "$stage/bin/busybox"
	(cd "$stage" && find . | sort | /bin/busybox cpio -o -H newc -R 0:0 2>/dev/null) |
		gzip -9 -n >"$initrd.tmp" || die "cannot build the initramfs"
	mv "$initrd.tmp" "$initrd"
	mv "$dir/init.new" "$dir/init"
	echo "$bb_sum" >"$dir/busybox.md5"
	rm -rf "$stage"
	say "initramfs: $initrd ($(($(wc -c <"$initrd") / 1024)) KiB: busybox $(/bin/busybox | head -n 1 | cut -d' ' -f2) + /init)"
}

# --- one boot: QEMU TCG with its RAM in the image file ---
boot_one() {
	i=$1
	image=$dir/boot-$i.ram
	log=$dir/boot-$i.log
	stamp_file=$dir/boot-$i.stamp
	append="console=ttyS0 quiet panic=-1"
	[ "$kaslr" = off ] && append="$append nokaslr"
	stamp="kernel=$(tr ' ' '_' <"$dir/kernel/version") initramfs=$initrd_sum mem=${mem_mib}M append=$(echo "$append" | tr ' ' ',') boot=$i"
	if [ "$force" -eq 0 ] && [ -f "$image" ] && [ "$(head -n 1 "$stamp_file" 2>/dev/null)" = "$stamp" ]; then
		say "boot $i: reusing $image ($(sed -n 's/^boot_seconds=//p' "$stamp_file") s when made)"
		echo "$image"
		return 0
	fi
	rm -f "$image" "$stamp_file"
	token=$$-$i-$(date +%s%N)
	mon=$dir/boot-$i.monitor
	rm -f "$image.tmp" "$mon.in" "$mon.out" "$log"
	mkfifo "$mon.in" "$mon.out"
	tmp_paths="$tmp_paths $image.tmp $mon.in $mon.out"
	# -display none with the serial console in a file and the monitor on a
	# pair of FIFOs (rather than -nographic's multiplexed stdio): the script
	# polls the log for the marker and sends `stop` + `quit` to the monitor.
	t0=$(now_ms)
	qemu-system-x86_64 -accel tcg -m "${mem_mib}M" -smp 1 -nodefaults -no-user-config \
		-display none -no-reboot \
		-kernel "$dir/kernel/vmlinuz" -initrd "$initrd" \
		-append "$append vmm_boot=$i vmm_token=$token" \
		-object "memory-backend-file,id=ram,size=${mem_mib}M,mem-path=$image.tmp,share=on" \
		-machine pc,memory-backend=ram \
		-serial "file:$log" -monitor "pipe:$mon" >"$log.qemu" 2>&1 &
	qemu_pid=$!
	marker=""
	while :; do
		if [ -f "$log" ]; then
			# The whole line: the host may see the log mid-line.
			marker=$(grep -a "VMM-IMAGE-READY boot=$i token=$token .* done" "$log" | tr -d '\r' || true)
			[ -n "$marker" ] && break
			failed=$(grep -a "VMM-IMAGE-FAILED boot=$i" "$log" || true)
			[ -n "$failed" ] && die "boot $i: the workload failed: $failed (console: $log)"
		fi
		if ! kill -0 "$qemu_pid" 2>/dev/null; then
			wait "$qemu_pid" 2>/dev/null || true
			qemu_pid=""
			die "boot $i: QEMU exited before the marker line (kernel panic or QEMU error); last lines:
$(tail -n 5 "$log.qemu" "$log" 2>/dev/null)"
		fi
		if [ $(($(now_ms) - t0)) -ge $((timeout_s * 1000)) ]; then
			die "boot $i: no marker line after ${timeout_s} s (--timeout); console so far: $log"
		fi
		sleep 0.05
	done
	t_marker=$(($(now_ms) - t0))
	# Freeze the vCPU first, then quit: the file keeps the RAM as it was.
	# (QEMU holds the FIFO open, so this open does not block unless QEMU has
	# just died: hence the timeout.)
	# shellcheck disable=SC2016 # $1 is expanded by the inner sh
	timeout 10 sh -c 'printf "stop\nquit\n" >"$1"' sh "$mon.in" ||
		die "boot $i: cannot reach the QEMU monitor ($mon.in)"
	n=0
	while kill -0 "$qemu_pid" 2>/dev/null; do
		n=$((n + 1))
		[ "$n" -le 200 ] || die "boot $i: QEMU did not quit within 10 s of 'quit'"
		sleep 0.05
	done
	status=0
	wait "$qemu_pid" || status=$?
	qemu_pid=""
	[ "$status" -eq 0 ] || die "boot $i: QEMU exited with status $status: $(tail -n 3 "$log.qemu")"
	rm -f "$mon.in" "$mon.out" "$log.qemu"
	size=$(wc -c <"$image.tmp")
	[ "$size" -eq $((mem_mib * 1048576)) ] ||
		die "boot $i: $image.tmp has $size bytes, not $((mem_mib * 1048576))"
	# The running system's RAM holds its own command line: a cleared or
	# stale file would not hold this boot's token.
	grep -q -a -F "vmm_token=$token" "$image.tmp" ||
		die "boot $i: the image does not hold this boot's command line; RAM was not captured"
	mv "$image.tmp" "$image"
	alloc_kib=$(du -k "$image" | cut -f1)
	printf '%s\nboot_seconds=%s\nmarker=%s\n' "$stamp" "$(secs "$t_marker")" "$marker" >"$stamp_file"
	marker=$(echo "${marker#VMM-IMAGE-READY }" | sed 's/ token=[^ ]*//')
	say "boot $i: marker after $(secs "$t_marker") s, $image: ${mem_mib} MiB, $((alloc_kib / 1024)) MiB written; ${marker% done}"
	echo "$image"
}

ensure_busybox
fetch_kernel
build_initramfs
initrd_sum=$(md5sum <"$initrd")
initrd_sum=${initrd_sum%% *}
say "making $count image(s) of $mem_mib MiB in $dir ($(cat "$dir/kernel/version"), kaslr $kaslr)"
i=0
while [ "$i" -lt "$count" ]; do
	boot_one "$i"
	i=$((i + 1))
done
