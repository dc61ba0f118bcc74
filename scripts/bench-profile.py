#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# make bench's --profile report: where divert (F) spends what no
# interception (A) does not, symbol by symbol.
#
#   bench-profile.py DIR KVER...
#
# Reads DIR/KVER/raw.txt (the windows' costs) and the perf reports
# DIR/KVER/profile-WORKLOAD-VARIANT.txt written by bench-guest.sh profile.
# Each window runs the same number of transactions (or bytes) in A and in
# F, and under instruction counting a cpu-clock sample is a fixed slice of
# the guest's work, so samples compare directly: a symbol's F - A, over A's
# total, is its share of F/A - 1.  The idle loop's samples (the time perf
# ran outside the window, or waited) are left out.  Prints Markdown; exits
# 1 when a report is missing or has no samples.

import re
import sys
from pathlib import Path

IDLE = re.compile(r"idle|safe_halt|native_halt|mwait|cpu_startup_entry")
LINE = re.compile(r"^\s*([0-9.]+)%\s+(\d+)\s+\[(.)\]\s+(.+?)\s*$")
TOP = 12


def samples(path):
    """Samples per symbol of a perf report, the idle loop left out."""
    per = {}
    for line in path.read_text().splitlines():
        m = LINE.match(line)
        if not m:
            continue
        sym = m.group(4)
        if m.group(3) == "k" and IDLE.search(sym):
            continue
        key = ("" if m.group(3) == "k" else "[user] ") + sym
        per[key] = per.get(key, 0) + int(m.group(2))
    return per


def costs(raw):
    out = {}
    for line in raw.read_text().splitlines():
        f = line.split()
        if len(f) == 7 and f[0] == "fig" and f[1] == "profile":
            out[(f[2], f[3])] = (float(f[5]), f[6])
    return out


def report(kdir, kver):
    ok = True
    cost = costs(kdir / "raw.txt") if (kdir / "raw.txt").exists() else {}
    workloads = sorted({p.name.split("-")[1]
                        for p in kdir.glob("profile-*-A.txt")})
    if not workloads:
        print(f"{kver}: no profile reports in {kdir}")
        return False
    print(f"## {kver}\n")
    for w in workloads:
        a_path, f_path = kdir / f"profile-{w}-A.txt", kdir / f"profile-{w}-F.txt"
        if not f_path.exists():
            print(f"{w}: no report for F\n")
            ok = False
            continue
        a, f = samples(a_path), samples(f_path)
        ta, tf = sum(a.values()), sum(f.values())
        if not ta or not tf:
            print(f"{w}: no samples (A {ta}, F {tf})\n")
            ok = False
            continue
        line = f"### {w}: samples F/A {tf / ta:.3f} ({tf} against {ta})"
        if (w, "A") in cost and (w, "F") in cost:
            ca, unit = cost[(w, "A")]
            cf = cost[(w, "F")][0]
            line += f"; cost F/A {cf / ca:.3f} ({cf:.3f} against {ca:.3f} {unit})"
        print(line + "\n")
        diff = {s: f.get(s, 0) - a.get(s, 0) for s in set(a) | set(f)}
        print("| symbol | A | F | F - A, % of A |")
        print("|---|---:|---:|---:|")
        for s in sorted(diff, key=lambda s: -diff[s])[:TOP]:
            print(f"| {s} | {a.get(s, 0)} | {f.get(s, 0)} | "
                  f"{100 * diff[s] / ta:+.2f} |")
        rest = sum(sorted(diff.values(), reverse=True)[TOP:])
        print(f"| (all other symbols) | | | {100 * rest / ta:+.2f} |\n")
    return ok


def main():
    if len(sys.argv) < 3:
        print("usage: bench-profile.py DIR KVER...", file=sys.stderr)
        return 2
    d = Path(sys.argv[1])
    ok = True
    print("# Where F (divert) spends more than A (no interception)\n")
    for k in sys.argv[2:]:
        ok = report(d / k, k) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
