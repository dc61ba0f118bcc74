#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make userspace: libnftnl and nft with the patch series of libnftnl-patch/
# and nft-patch/, built and tested in build/userspace/.
#
#   scripts/userspace.sh             unpack, git am, build, check, tests/py
#   scripts/userspace.sh --install   build for PREFIX (default /usr/local)
#                                    and install there (DESTDIR honoured)
#
# Environment:
#   LIBNFTNL_SRC, NFT_SRC  a release tarball, a git checkout (its HEAD is
#                          used) or a plain source tree; default the release
#                          tarballs in ../shared/upstream beside the
#                          repository (UPSTREAM_DIR)
#   KVERS                  kernels for tests/py, default scripts/kernels.sh
#   USERSPACE_VM=0         no VM: tests/py are reported as skipped
#   PREFIX, DESTDIR        for --install
#
# Steps: unpack the trees, apply each series with git am (any failure
# stops the run), build libnftnl and nft into build/userspace/prefix (the
# patched nft finds the patched libnftnl through its RUNPATH), build a
# pristine nft to compare compiler warnings, count bison conflicts before
# and after, run libnftnl's make check, check that nft leaves divert's
# hook, chain type and family to the kernel and that "divert" is still a
# word wherever 1.1.6 accepts one (table, chain, set names, comments, log
# prefixes...), then
# per kernel boot a VM with our modules (scripts/vm-run.sh) and run nft's
# tests/py for the tproxy, socket and divert files and the ENOENT hints on
# a kernel without the modules.  (What Debian's stock nft lists for a divert
# rule is selftests/nft_divert_netlink.sh's.)
#
# Exit: 0 all passed, 1 a failure, 4 (kselftest skip) when the upstream
# trees are absent or the VM part could not run; every skip says why.
#
# To change a series: after a run, build/userspace/libnftnl and
# build/userspace/nftables are git trees, the release tree as first commit
# and a commit a patch; edit, commit (DEP-3 fields above Signed-off-by),
# then in that tree: git format-patch --zero-commit --no-signature
# -o <repo>/nft-patch (or libnftnl-patch) $(git rev-list --max-parents=0 HEAD)..

set -u

top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
out=$top/build/userspace
logs=$out/logs
prefix=$out/prefix
UPSTREAM_DIR=${UPSTREAM_DIR:-$(readlink -m "$top/../shared/upstream")}
LIBNFTNL_SRC=${LIBNFTNL_SRC:-$UPSTREAM_DIR/libnftnl-1.3.1.tar.xz}
NFT_SRC=${NFT_SRC:-$UPSTREAM_DIR/nftables-1.1.6.tar.xz}
HEADER=kernel/include/uapi/linux/netfilter/nft_tproxy_ext.h
JOBS=${JOBS:-$(nproc)}
KSFT_SKIP=4

# Debian's a2x runs "python3 -m asciidoc.a2x": the system python3 must come
# first, not a python3 of the user's that lacks the asciidoc module.
export PATH=/usr/bin:/bin:$PATH
export GIT_COMMITTER_NAME="nft-tproxy userspace.sh"
export GIT_COMMITTER_EMAIL="nft-tproxy@example.org"
export GIT_AUTHOR_NAME=$GIT_COMMITTER_NAME GIT_AUTHOR_EMAIL=$GIT_COMMITTER_EMAIL

summary=()
failed=0
skipped=0
kvers=""

say()
{
	printf 'userspace: %s\n' "$*"
}

note()
{
	summary+=("$*")
}

fail()
{
	say "FAIL: $*"
	note "FAIL: $*"
	failed=1
}

skip_all()
{
	echo "SKIP: $*"
	exit "$KSFT_SKIP"
}

# run LOG CMD...: run quietly into LOG; on failure show its end and stop.
run()
{
	local log=$1

	shift
	if ! "$@" >"$log" 2>&1; then
		say "FAIL: $* (in $PWD), last lines of $log:"
		tail -n 25 "$log" | sed 's/^/    /'
		print_summary
		exit 1
	fi
}

print_summary()
{
	local l

	echo
	echo "userspace: summary"
	for l in "${summary[@]}"; do
		echo "  $l"
	done
}

# unpack SRC DST: a tarball, a git checkout or a plain tree, as a git
# repository with one commit, the base the series is applied to.
unpack()
{
	local src=$1 dst=$2

	rm -rf "$dst"
	mkdir -p "$dst"
	if [ -f "$src" ]; then
		tar -xf "$src" -C "$dst" --strip-components=1 || return 1
	elif [ -d "$src" ] &&
	     [ "$(git -C "$src" rev-parse --show-toplevel 2>/dev/null)" = "$(cd "$src" && pwd -P)" ]; then
		rmdir "$dst"
		git -c advice.detachedHead=false clone -q --no-hardlinks "$src" "$dst" || return 1
		git -C "$dst" checkout -q -b nft-tproxy || return 1
		return 0
	elif [ -d "$src" ]; then
		cp -a "$src/." "$dst/" || return 1
		rm -rf "$dst/.git"
		# A tree that was built in: without its objects, so that every
		# file is compiled (and its warnings counted) again.
		[ ! -f "$dst/Makefile" ] || make -s -C "$dst" distclean >/dev/null 2>&1
	else
		return 1
	fi
	# Every file, .gitignore notwithstanding: release trees ship files
	# that their .gitignore names (m4/*.m4).
	git -C "$dst" init -q -b nft-tproxy &&
	git -C "$dst" add -A -f &&
	git -C "$dst" commit -q -m "release tree from $src"
}

# apply TREE SERIES: git am every patch; nothing else counts as clean.
apply()
{
	local tree=$1 series=$2 n

	n=$(find "$series" -maxdepth 1 -name '*.patch' | wc -l)
	if [ "$n" -eq 0 ]; then
		fail "no patches in $series"
		return 1
	fi
	if ! git -C "$tree" am -q --whitespace=error "$series"/*.patch \
		>"$logs/am-$(basename "$series").log" 2>&1; then
		say "FAIL: git am of $series onto $tree:"
		sed 's/^/    /' "$logs/am-$(basename "$series").log"
		git -C "$tree" am --abort >/dev/null 2>&1
		return 1
	fi
	note "git am $(basename "$series"): clean, $n patches"
}

# bison_grammar FILE: "CONFLICTS WARNINGS" for a grammar: the conflicts
# summed over its states, and the warnings bison prints for it as the
# build runs it.
bison_grammar()
{
	local d c w

	d=$(mktemp -d)
	w=$(bison -v -d -o "$d/p.c" "$1" 2>&1 | grep -c ': warning:')
	c=$(sed -n 's/^State [0-9]* conflicts: //p' "$d/p.output" |
		grep -oE '[0-9]+' | awk '{ n += $1 } END { print n + 0 }')
	rm -rf "$d"
	echo "$c $w"
}

# The compiler's warnings in a build log, one a line, without the tree's
# path and line numbers; bison's own are counted by bison_grammar (a tree
# may ship its parser already generated).
warnings()
{
	grep -E ': warning:' "$1" | grep -vE '\.[ly]:' |
		sed -e "s|$2/||g" -e 's/:[0-9]*:[0-9]*:/:/' | sort
}

build_libnftnl()
{
	local tree=$1 pfx=$2

	cd "$tree" || exit 1
	run "$logs/libnftnl-autogen.log" sh autogen.sh
	run "$logs/libnftnl-configure.log" ./configure --prefix="$pfx" --disable-static
	run "$logs/libnftnl-make.log" make -j"$JOBS"
}

# build_nft TREE LOGNAME CONFIGURE-ARGS...
build_nft()
{
	local tree=$1 name=$2

	shift 2
	cd "$tree" || exit 1
	run "$logs/$name-autogen.log" sh autogen.sh
	run "$logs/$name-configure.log" ./configure "$@"
	run "$logs/$name-make.log" make -j"$JOBS"
}

nft_configure_args()
{
	local pfx=$1

	echo "--prefix=$pfx --sysconfdir=$pfx/etc --with-json --with-cli=editline"
	[ "$man" = 1 ] || echo "--disable-man-doc"
}

prepare()
{
	local what

	for what in "$LIBNFTNL_SRC" "$NFT_SRC"; do
		if [ ! -e "$what" ]; then
			skip_all "userspace: no upstream tree at $what (set LIBNFTNL_SRC=/NFT_SRC= to a tarball or checkout, or provide $UPSTREAM_DIR)"
		fi
	done
	for what in autoconf automake libtoolize pkg-config bison flex; do
		command -v "$what" >/dev/null ||
			{ say "FAIL: $what not found: make deps"; exit 1; }
	done
	if [ -f "$UPSTREAM_DIR/SHA256SUMS" ] &&
	   [ "$(dirname "$(readlink -f "$LIBNFTNL_SRC")")" = "$UPSTREAM_DIR" ]; then
		if ! (cd "$UPSTREAM_DIR" && sha256sum --quiet -c SHA256SUMS) >"$logs/sha256.log" 2>&1; then
			say "FAIL: checksums in $UPSTREAM_DIR:"
			cat "$logs/sha256.log"
			exit 1
		fi
		note "upstream trees: $UPSTREAM_DIR, SHA256SUMS ok"
	else
		note "upstream trees: $LIBNFTNL_SRC, $NFT_SRC"
	fi

	man=0
	if command -v a2x >/dev/null && a2x --version >/dev/null 2>&1; then
		man=1
	fi
}

# ---------------------------------------------------------------------------
install_mode()
{
	local p=${PREFIX:-/usr/local} d=$out/install lib rpath

	mkdir -p "$logs"
	prepare
	say "install: building for prefix $p${DESTDIR:+ (DESTDIR $DESTDIR)}"
	unpack "$LIBNFTNL_SRC" "$d/libnftnl" || { say "FAIL: unpacking $LIBNFTNL_SRC"; exit 1; }
	unpack "$NFT_SRC" "$d/nftables" || { say "FAIL: unpacking $NFT_SRC"; exit 1; }
	apply "$d/libnftnl" "$top/libnftnl-patch" || exit 1
	apply "$d/nftables" "$top/nft-patch" || exit 1
	build_libnftnl "$d/libnftnl" "$p"
	run "$logs/install-libnftnl.log" make install
	lib=$d/libnftnl
	# nft links against the libnftnl just built, and finds the installed
	# one at run time; outside the default library path through RUNPATH.
	rpath=""
	case $p in /usr|/usr/local) ;; *) rpath="-Wl,-rpath,$p/lib" ;; esac
	# shellcheck disable=SC2046 # a list of arguments
	LIBNFTNL_CFLAGS="-I$lib/include" LIBNFTNL_LIBS="-L$lib/src/.libs -lnftnl" \
	LDFLAGS="$rpath" build_nft "$d/nftables" install-nft $(nft_configure_args "$p")
	run "$logs/install-nft.log" make install
	if [ -z "${DESTDIR:-}" ] && [ "$(id -u)" = 0 ]; then
		ldconfig
	fi
	say "installed libnftnl and nft with the nft-tproxy series into ${DESTDIR:-}$p"
	[ -n "${DESTDIR:-}" ] || "$p/sbin/nft" --version
	exit 0
}

[ "${1:-}" != --install ] || install_mode
[ $# -eq 0 ] || { sed -n 's/^#   //p' "$0" | head -n 3; exit 2; }

# ---------------------------------------------------------------------------
mkdir -p "$logs"
prepare
note "man pages: $([ "$man" = 1 ] && echo built || echo 'not built: a2x (asciidoc-base) missing, make deps')"

say "unpacking and applying the series"
unpack "$LIBNFTNL_SRC" "$out/libnftnl" || { say "FAIL: unpacking $LIBNFTNL_SRC"; exit 1; }
unpack "$NFT_SRC" "$out/nftables" || { say "FAIL: unpacking $NFT_SRC"; exit 1; }
unpack "$NFT_SRC" "$out/nftables-pristine" || { say "FAIL: unpacking $NFT_SRC"; exit 1; }
apply "$out/libnftnl" "$top/libnftnl-patch" || { print_summary; exit 1; }
apply "$out/nftables" "$top/nft-patch" || { print_summary; exit 1; }

# Both series carry a verbatim copy of our uapi header.
for t in libnftnl nftables; do
	if ! cmp -s "$top/$HEADER" "$out/$t/include/linux/netfilter/nft_tproxy_ext.h"; then
		fail "$t's copy of nft_tproxy_ext.h differs from $HEADER"
	fi
done
[ "$failed" = 1 ] || note "nft_tproxy_ext.h: both series carry $HEADER verbatim"

read -r before bwb <<<"$(bison_grammar "$out/nftables-pristine/src/parser_bison.y")"
read -r after bwa <<<"$(bison_grammar "$out/nftables/src/parser_bison.y")"
note "bison conflicts: before $before, after $after; bison warnings: before $bwb, after $bwa"
[ "$after" -le "$before" ] || fail "bison: $((after - before)) new conflicts"
[ "$bwa" -le "$bwb" ] || fail "bison: $((bwa - bwb)) new warnings"

say "building libnftnl"
rm -rf "$prefix"
build_libnftnl "$out/libnftnl" "$prefix"
run "$logs/libnftnl-install.log" make install
note "libnftnl: built, $(grep -c ': warning:' "$logs/libnftnl-make.log") compiler warnings"

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
say "building nft (patched, then pristine for the warning count)"
# shellcheck disable=SC2046 # a list of arguments
build_nft "$out/nftables" nft $(nft_configure_args "$prefix")
run "$logs/nft-install.log" make install
# shellcheck disable=SC2046
build_nft "$out/nftables-pristine" nft-pristine $(nft_configure_args "$out/prefix-pristine")
warnings "$logs/nft-pristine-make.log" "$out/nftables-pristine" >"$logs/warnings-before.txt"
warnings "$logs/nft-make.log" "$out/nftables" >"$logs/warnings-after.txt"
wb=$(wc -l <"$logs/warnings-before.txt")
wa=$(wc -l <"$logs/warnings-after.txt")
note "nft compiler warnings: pristine $wb, patched $wa"
new=$(comm -13 "$logs/warnings-before.txt" "$logs/warnings-after.txt")
if [ -n "$new" ] || [ "$wa" -gt "$wb" ]; then
	fail "new warnings in the patched nft: ${new:-(count only)}"
fi
if [ "$man" = 1 ]; then
	if grep -q 'DIVERT STATEMENT' "$out/nftables/doc/nft.8" &&
	   grep -q '"divert"' "$out/nftables/doc/libnftables-json.5"; then
		note "man pages: nft.8 and libnftables-json.5 built with the divert sections"
	else
		fail "man pages: the divert sections are missing from nft.8 or libnftables-json.5"
	fi
fi

nft=$prefix/sbin/nft
if ldd "$nft" | grep -q "libnftnl.so.* => $prefix/lib/"; then
	note "$nft: $("$nft" --version), libnftnl from $prefix/lib (RUNPATH)"
else
	fail "$nft does not use $prefix/lib/libnftnl.so"
fi

say "libnftnl make check"
cd "$out/libnftnl" || exit 1
if make -j"$JOBS" check >"$logs/libnftnl-check.log" 2>&1; then
	note "libnftnl make check: $(sed -n 's/^# \(PASS\|FAIL\|ERROR\): *//p' tests/test-suite.log 2>/dev/null |
		paste -sd' ' | awk '{ printf "%s pass, %s fail, %s error", $1, $2, $3 }')"
else
	fail "libnftnl make check, see $logs/libnftnl-check.log:"
	grep -E '^(FAIL|ERROR):' "$logs/libnftnl-check.log" | sed 's/^/    /'
fi

# What nft itself decides needs no kernel support: a network namespace of
# our own on this host, whose kernel has no divert.
say "nft: divert left to the kernel, \"divert\" still a word"

# nft_netns NFT: the ruleset on stdin, in a new network namespace.
nft_netns()
{
	unshare -n "$1" -f - 2>&1
}

# kernel_decides RULE: nft parses and evaluates a divert rule and leaves
# the hook, chain type and family to the kernel: the rule is sent, and
# any error is the kernel's ("Could not process rule"), never nft's.
kernel_decides()
{
	local got

	got=$(nft_netns "$nft" <<-EOF
	table inet t {
		chain pre { type filter hook prerouting priority -150; }
		chain out { type filter hook output priority 0; }
		chain in { type filter hook input priority 0; }
		chain fw { type filter hook forward priority 0; }
	}
	table ip n {
		chain c { type nat hook output priority 0; }
	}
	table bridge b {
		chain c { type filter hook prerouting priority 0; }
	}
	add rule $1
	EOF
	)
	if [ -z "$got" ]; then
		echo "ok: $1 -> accepted"
	elif grep -q 'Error: Could not process rule: ' <<<"$got" &&
	     ! grep -v 'Error: Could not process rule: ' <<<"$got" | grep -q 'Error:'; then
		echo "ok: $1 -> the kernel: $(grep -o 'Could not process rule: .*' <<<"$got")"
	else
		echo "not ok: $1: $got"
		return 1
	fi
}

# Parse regressions: each input that 1.1.6 accepts, with "divert" as a
# word, must load with the patched nft (and, as a control, the pristine
# one).  Each runs on its own after the same table and chain.
WORDS_BASE='add table ip t
add chain ip t c'
words_inputs()
{
	cat <<-'EOF'
	comment divert on a rule|add rule ip t c counter comment divert
	log prefix divert|add rule ip t c log prefix divert
	log prefix divert level info, comment divert|add rule ip t c log prefix divert level info comment divert
	a table named divert|add table ip divert
	a chain named divert|add chain ip t divert
	a set named divert|add set ip t divert { type ipv4_addr; }
	a counter named divert, counter name divert|add counter ip t divert; add rule ip t c counter name divert
	jump divert|add chain ip t divert; add rule ip t c jump divert
	goto divert from a verdict map|add chain ip t divert; add rule ip t c ip saddr vmap { 192.0.2.1 : goto divert }
	@divert, a set reference|add set ip t divert { type ipv4_addr; }; add rule ip t c ip saddr @divert
	iifname divert, oifname { divert, eth0 }|add rule ip t c iifname divert oifname { divert, eth0 }
	define divert, $divert|define divert = 192.0.2.1; add rule ip t c ip saddr $divert
	table { comment divert; }|add table ip t2 { comment divert; }
	chain { comment divert; }|add chain ip t c2 { comment divert; }
	set { comment divert; }|add set ip t s2 { type ipv4_addr; comment divert; }
	table block with divert names and comments|table ip divert { comment divert; set divert { type ipv4_addr; comment divert; }; chain divert { comment divert; ip saddr @divert jump divert2 comment divert; }; chain divert2 { log prefix divert; }; }
	EOF
}

# words_check NFT: "ok:"/"not ok:" a line for each input.
words_check()
{
	local nft=$1 nl=$'\n' what input got rc=0

	while IFS='|' read -r what input; do
		input=${input//; /$nl}
		if got=$(printf '%s\n%s\n' "$WORDS_BASE" "$input" | nft_netns "$nft"); then
			echo "ok: $what"
		else
			echo "not ok: $what: $got"
			rc=1
		fi
	done < <(words_inputs)
	return "$rc"
}

if unshare -n true 2>/dev/null; then
	if {
		kernel_decides "inet t pre divert"
		kernel_decides "inet t pre divert accept"
		kernel_decides "inet t pre meta l4proto { tcp, udp } divert accept"
		kernel_decides "inet t pre meta l4proto tcp tproxy to :8080 divert accept"
		kernel_decides "inet t out divert"
		kernel_decides "inet t in divert"
		kernel_decides "inet t fw divert accept"
		kernel_decides "ip n c divert"
		kernel_decides "bridge b c divert"
	} >"$logs/kernel-decides.log"; then
		note "nft passes divert to the kernel in every hook, chain type and family: 9 of 9 (errors only the kernel's)"
	else
		fail "nft refuses divert itself: $(grep -c '^not ok' "$logs/kernel-decides.log") of 9, see $logs/kernel-decides.log"
	fi

	n=$(words_inputs | wc -l)
	pristine_nft=$out/nftables-pristine/src/nft
	words_check "$pristine_nft" >"$logs/words-pristine.log"
	np=$(grep -c '^ok' "$logs/words-pristine.log")
	if words_check "$nft" >"$logs/words.log"; then
		note "parse regressions, \"divert\" as a word: $n of $n inputs accepted (pristine 1.1.6: $np of $n)"
	else
		fail "parse regressions, \"divert\" as a word: $(grep -c '^not ok' "$logs/words.log") of $n refused (pristine 1.1.6 accepts $np), see $logs/words.log:"
		grep '^not ok' "$logs/words.log" | sed 's/^/    /'
	fi

	# The series' own shell test of the same, with its dumps.
	if (cd "$out/nftables/tests/shell" &&
	    NFT=$nft ./run-tests.sh testcases/parsing/divert_names) \
		>"$logs/shell-divert_names.log" 2>&1; then
		note "tests/shell parsing/divert_names: $(grep -o '\[OK\] [0-9]* \[SKIPPED\] [0-9]* \[FAILED\] [0-9]* \[TOTAL\] [0-9]*' "$logs/shell-divert_names.log")"
	else
		fail "tests/shell parsing/divert_names, see $logs/shell-divert_names.log"
	fi
else
	note "SKIP: nft checks without a kernel: cannot create a network namespace here"
fi

# ---------------------------------------------------------------------------
# tests/py in a VM per kernel, against our modules.
PY_BASE="inet/tproxy.t ip/tproxy.t ip6/tproxy.t inet/socket.t"
PY_DIVERT="ip/divert.t ip/divert_output.t ip6/divert.t ip6/divert_output.t inet/divert.t inet/divert_output.t inet/divert_refused.t bridge/divert.t"

# The guest: tests/py from a writable copy (the guest sees /work read-only
# outside the result directory), one file a run; then the ENOENT hints
# with our modules unloaded and the in-tree ones blocked.
write_guest()
{
	local files=$1 dir=$2

	cat >"$dir/py-guest.sh" <<-EOF
	#!/bin/bash
	set -u
	tree=$out/nftables
	nft=$nft
	w=$dir
	files="$files"
	EOF
	cat >>"$dir/py-guest.sh" <<-'EOF'
	# Only the runner and our files and their expected outputs: the whole
	# tests/py is 440 files, half a minute to copy over 9p under TCG.
	rm -rf "$w/py"
	mkdir -p "$w/py/tests/py"
	cp -a "$tree/tests/py/nft-test.py" "$w/py/tests/py/"
	shopt -s nullglob
	for f in $files; do
		mkdir -p "$w/py/tests/py/${f%/*}"
		cp -a "$tree/tests/py/$f" "$tree/tests/py/$f".* "$w/py/tests/py/${f%/*}/"
	done
	shopt -u nullglob
	ln -s "$tree/py" "$w/py/py"
	cd "$w/py/tests/py" || exit 1
	rc=0
	: >"$w/results.txt"
	for f in $files; do
		python3 ./nft-test.py -j -l "$tree/src/.libs/libnftables.so.1" "$f" \
			>"$w/py-${f//\//_}.log" 2>&1
		r=$?
		# "ip/divert.t: 8 unit tests, 0 error, 0 warning"
		l=$(grep -E "^$f: [0-9]+ unit tests, [0-9]+ error, [0-9]+ warning" \
			"$w/py-${f//\//_}.log")
		# nft-test.py does not count every error it prints (a chain
		# it cannot create, for one): those lines fail the file too.
		e=$(grep -c ': ERROR: ' "$w/py-${f//\//_}.log")
		x=""
		[ "$e" = 0 ] || x=", $e ERROR lines"
		echo "py ${l:-$f: no result line}, rc $r$x" >>"$w/results.txt"
		case $l in
		*" 0 error, 0 warning") [ "$r" = 0 ] && [ "$e" = 0 ] || rc=1 ;;
		*) rc=1 ;;
		esac
	done

	# nft leaves divert's family, hook and chain type to the kernel: with
	# our modules, the kernel accepts divert in prerouting and output
	# and refuses it elsewhere with EOPNOTSUPP, as nft prints it.
	kernel()
	{
		local want=$1 fam=$2 chain=$3 rule=$4 got

		got=$(unshare -n sh -c "
			\$0 add table $fam t && \$0 add chain $fam t r &&
			\$0 add chain $fam t c '{ $chain; }' && \$0 add rule $fam t $rule" "$nft" 2>&1)
		case $want in
		accepted) [ -z "$got" ] ;;
		refused) printf '%s\n' "$got" |
			grep -q '^Error: Could not process rule: Operation not supported' ;;
		esac && { echo "kernel ok: $fam { $chain; } $rule: $want"; return 0; }
		echo "kernel not ok: $fam { $chain; } $rule: not $want: $got"
		return 1
	}
	{
		kernel accepted inet "type filter hook prerouting priority -150" "c divert" || rc=1
		kernel accepted inet "type filter hook prerouting priority -150" \
			"c meta l4proto { tcp, udp } divert accept" || rc=1
		kernel accepted ip "type filter hook output priority 0" "c divert" || rc=1
		kernel refused inet "type filter hook input priority 0" "c divert" || rc=1
		kernel refused ip6 "type filter hook forward priority 0" "c divert accept" || rc=1
		kernel refused inet "type nat hook prerouting priority -100" "c divert" || rc=1
		kernel refused ip "type nat hook output priority -100" "c divert" || rc=1
		kernel refused bridge "type filter hook prerouting priority 0" "c divert" || rc=1
		kernel refused inet "type filter hook input priority 0" \
			"r divert \\; add rule inet t c jump r" || rc=1
	} >>"$w/results.txt" 2>&1

	# A kernel without the modules: ours unloaded, the in-tree ones are
	# blocked by vm-run. Each ENOENT must name the module.
	sleep 1
	for m in nft_tproxy nft_socket; do
		for i in 1 2 3 4 5 6 7 8 9 10; do
			grep -q "^$m " /proc/modules || break
			rmmod "$m" 2>/dev/null || sleep 1
		done
	done
	hint()
	{
		local name=$1 hook=$2 rule=$3 got

		got=$(unshare -n sh -c "
			\$0 add table ip t && \$0 add chain ip t c '{ type filter hook $hook priority 0; }' &&
			\$0 add rule ip t c $rule" "$nft" 2>&1)
		if printf '%s\n' "$got" | grep -q "^$name needs kernel module"; then
			echo "hint ok: $rule"
		else
			echo "hint not ok: $rule: $got"
			return 1
		fi
	}
	if grep -qE '^nft_(tproxy|socket) ' /proc/modules; then
		echo "hint not ok: our modules could not be unloaded" >>"$w/results.txt"
		rc=1
	else
		{
			hint tproxy prerouting "meta l4proto tcp tproxy to :8080" || rc=1
			hint socket prerouting "socket transparent 1 accept" || rc=1
			hint divert output "meta l4proto tcp divert" || rc=1
		} >>"$w/results.txt" 2>&1
		{ echo '--- ENOENT for tproxy, as printed:'; unshare -n sh -c "
			\$0 add table ip t && \$0 add chain ip t c '{ type filter hook prerouting priority -150; }' &&
			\$0 add rule ip t c meta l4proto tcp tproxy to :8080" "$nft"; } >"$w/hint-example.txt" 2>&1
	fi
	exit "$rc"
	EOF
}

if [ "${USERSPACE_VM:-1}" = 0 ]; then
	note "SKIP: tests/py: USERSPACE_VM=0"
	skipped=1
elif ! command -v vng >/dev/null; then
	note "SKIP: tests/py: virtme-ng (vng) not installed: make deps"
	skipped=1
elif ! kvers=${KVERS:-$("$top/scripts/kernels.sh")} || [ -z "$kvers" ]; then
	note "SKIP: tests/py: no kernel to boot (scripts/kernels.sh): make deps"
	skipped=1
else
	# One guest per kernel, side by side, one vCPU each: nft runs one
	# command at a time, and two cores serve two guests.
	booted=""
	for k in $kvers; do
		# Incremental: up to date with this tree, never a stale build.
		if ! make -s -C "$top" KVER="$k" modules >"$logs/modules-$k.log" 2>&1; then
			fail "$k: building our modules, see $logs/modules-$k.log"
			continue
		fi
		say "tests/py on $k"
		vmdir=$out/vm/$k
		rm -rf "$vmdir"
		mkdir -p "$vmdir"
		write_guest "$PY_BASE $PY_DIVERT" "$vmdir"
		{
			VM_RUN_CPUS=1 "$top/scripts/vm-run.sh" --out "$vmdir" \
				--exec "bash $vmdir/py-guest.sh" "$k" >"$logs/vm-$k.log" 2>&1
			echo $? >"$vmdir/vm-rc"
		} &
		booted+=" $k"
	done
	wait
	for k in $booted; do
		vmdir=$out/vm/$k
		vrc=$(cat "$vmdir/vm-rc" 2>/dev/null || echo 1)
		if [ -s "$vmdir/results.txt" ]; then
			while read -r l; do
				note "$k: $l"
			done <"$vmdir/results.txt"
		fi
		grep -q 'not ok\|error, [1-9]\|warning, [1-9]\|no result line\|rc [1-9]\|ERROR lines' \
			"$vmdir/results.txt" 2>/dev/null && failed=1
		if [ "$vrc" != 0 ]; then
			fail "$k: VM run failed (rc $vrc), see $logs/vm-$k.log:"
			grep '^vm-run: FAIL' "$logs/vm-$k.log" | sed 's/^/    /'
		fi
	done
fi

print_summary
if [ "$failed" = 1 ]; then
	echo "userspace: FAILED"
	exit 1
fi
if [ "$skipped" = 1 ]; then
	echo "SKIP: userspace: built and checked, tests/py not run (see above)"
	exit "$KSFT_SKIP"
fi
echo "userspace: all passed"
exit 0
