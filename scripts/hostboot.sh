#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# What decides how this host boots, as far as our commands could touch it:
# the kernel image packages dpkg knows and the contents of /boot.
#
#   scripts/hostboot.sh FILE           write the snapshot to FILE
#   scripts/hostboot.sh --same FILE [PREFIX]   compare the host with FILE:
#       prints a summary, or the difference and exits 1; each line begins
#       with PREFIX

set -u

snapshot()
{
	echo "# dpkg -l 'linux-image*'"
	dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' 'linux-image*' 2>/dev/null |
		grep -v '^un ' | sort
	echo "# find /boot"
	if [ -d /boot ]; then
		find /boot -printf '%y %s %T@ %p %l\n' | sort -k4
	else
		echo "(no /boot)"
	fi
}

case ${1:-} in
--same)
	before=${2:?usage: hostboot.sh --same FILE [PREFIX]}
	p=${3:-}
	if ! out=$(diff "$before" <(snapshot)); then
		echo "${p}the host's boot changed (linux-image packages, /boot): < before, > now:"
		printf '%s\n' "$out" | sed "s|^|$p|"
		exit 1
	fi
	echo "${p}the host's boot is unchanged: $(sed -n '/^# dpkg/,/^# find/p' "$before" | grep -c '^[a-z][a-z] ') linux-image packages, $(sed -n '/^# find/,$p' "$before" | grep -c '^[a-z] ') entries under /boot, as before"
	;;
""|-*)
	sed -n 's/^#   //p' "$0" >&2
	exit 2
	;;
*)
	snapshot >"$1"
	;;
esac
