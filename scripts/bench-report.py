#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# make bench's report: reads DIR/KVER/raw.txt (scripts/bench-guest.sh) for
# each kernel and writes DIR/results.json, DIR/results.md, DIR/ratios.png and
# DIR/scale.png (gnuplot).  Compares with DIR/results.prev.json when present.
#
#   bench-report.py DIR KVER ...
#
# Every figure is a cost (microseconds per connection or transaction,
# nanoseconds per byte): a ratio above 1 means dearer than the reference.
# Exit 1 if a group's spread (1.4826 * median absolute deviation / median,
# which estimates the CV without letting one disturbed window decide; the
# CV is printed too) is over 1 % under instruction counting, if a kernel
# has no complete run, if the module that served a variant is not the
# expected one (B: the kernel's nft_tproxy, C: its xt_TPROXY, E, F and the
# relay: our nft_tproxy), if a hook list shows conntrack where the ruleset
# needs none or the reverse, or if the guest noted a window that could not
# start settled.

import json
import os
import statistics
import subprocess
import sys

CV_LIMIT = 1.0          # percent, under instruction counting
MAIN_WL = ["conn", "tcp_rr", "udp_rr", "bulk"]
WL_TEXT = {
    "conn": "new connection (TCP_CRR)",
    "tcp_rr": "TCP request/response (TCP_RR)",
    "udp_rr": "UDP request/response (UDP_RR)",
    "bulk": "bulk, per byte (TCP_STREAM)",
}
VARIANT_TEXT = {
    "A": "no interception (floor)",
    "B": "in-tree nft_tproxy, policy routing",
    "C": "iptables xt_TPROXY, policy routing",
    "D": "nft redirect (NAT)",
    "E": "ours, policy routing",
    "F": "ours, divert",
    "B+ct": "B with conntrack active",
    "E+ct": "E with conntrack active",
}
# Variants whose rules need conntrack in the gateway.
EXPECT_CT = {"D", "B+ct", "E+ct"}
# What must serve each variant's rules (bench-guest.sh's facts).
EXPECT_MODULE = {"B": "nft_tproxy:intree", "B+ct": "nft_tproxy:intree",
                 "C": "xt_TPROXY:intree", "E": "nft_tproxy:ours",
                 "E+ct": "nft_tproxy:ours", "F": "nft_tproxy:ours",
                 "relay": "nft_tproxy:ours"}


def parse(path):
    run = {"figures": {}, "meta": {}, "tools": {}, "params": {}, "hooks": {},
           "skipped": {}, "notes": [], "complete": False}
    with open(path) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            if w[0] == "fig":
                phase, wl, var, _rep, val, unit = w[1:7]
                g = run["figures"].setdefault(f"{phase}|{wl}|{var}",
                                               {"unit": unit, "values": []})
                g["values"].append(float(val))
            elif w[0] == "meta":
                run["meta"][f"{w[1]}|{w[2]}"] = dict(x.split("=", 1)
                                                     for x in w[3:])
            elif w[0] == "hooks":
                run["hooks"][f"{w[1]}|{w[2]}"] = " ".join(w[3:])
            elif w[0] == "tool":
                run["tools"][w[1]] = " ".join(w[2:])
            elif w[0] == "param":
                run["params"][w[1]] = w[2]
            elif w[0] == "note":
                run["notes"].append(" ".join(w[1:]))
            elif w[0] == "skip":
                run["skipped"][w[1]] = " ".join(w[2:])
            elif w[0] in ("kernel", "vcpus", "clocksource"):
                run[w[0]] = w[1]
            elif w[0] == "done":
                run["complete"] = True
    return run


def summarize(run):
    groups = {}
    for key, g in run["figures"].items():
        v = g["values"]
        mean = statistics.fmean(v)
        m = statistics.median(v)
        cv = 100 * statistics.stdev(v) / mean if len(v) > 1 else 0.0
        # The spread of the median: 1.4826 * MAD estimates the standard
        # deviation of normal noise and ignores a single disturbed window.
        mad = statistics.median(abs(x - m) for x in v)
        groups[key] = {"unit": g["unit"], "n": len(v), "median": m,
                       "cv": cv, "robust_cv": 100 * 1.4826 * mad / m,
                       "outliers": [x for x in v if abs(x / m - 1) > 0.01],
                       "values": v}
    return groups


def med(groups, phase, wl, var):
    g = groups.get(f"{phase}|{wl}|{var}")
    return g["median"] if g else None


def ratio(a, b):
    return a / b if a is not None and b else None


def ratios(groups):
    """Every ratio the report states, keyed by a stable name."""
    r = {}
    variants = sorted({k.split("|")[2] for k in groups})
    for wl in MAIN_WL:
        for v in variants:
            x = ratio(med(groups, "main", wl, v), med(groups, "main", wl, "A"))
            if x is not None:
                r[f"main/{wl}/{v}:A"] = x
        for a, b in (("E", "B"), ("B", "D"), ("F", "E"), ("E+ct", "E"),
                     ("B+ct", "B"), ("C", "B"), ("F", "B")):
            x = ratio(med(groups, "main", wl, a), med(groups, "main", wl, b))
            if x is not None:
                r[f"main/{wl}/{a}:{b}"] = x
    phases = sorted({k.split("|")[0] for k in groups})
    for wl in MAIN_WL:
        x = ratio(med(groups, "fwd", wl, "F"), med(groups, "fwd", wl, "E"))
        if x is not None:
            r[f"fwd/{wl}/F:E"] = x
    for ph in phases:
        if ph in ("main", "relay", "fwd"):
            continue
        for v in variants:
            base = "A" if ph.startswith("estab") else None
            if base:
                x = ratio(med(groups, ph, "conn", v), med(groups, ph, "conn", base))
                if x is not None:
                    r[f"{ph}/conn/{v}:A"] = x
            first = ph.split(":")[0] + (":10" if ph.startswith("estab") else ":1")
            x = ratio(med(groups, ph, "conn", v), med(groups, first, "conn", v))
            if x is not None:
                r[f"{ph}/conn/{v}:{first}"] = x
        for a, b in (("E", "B"), ("B", "D"), ("F", "E")):
            x = ratio(med(groups, ph, "conn", a), med(groups, ph, "conn", b))
            if x is not None:
                r[f"{ph}/conn/{a}:{b}"] = x
    x = ratio(med(groups, "relay", "bulk", "direct"),
              med(groups, "relay", "bulk", "relay"))
    if x is not None:
        r["relay/bulk/throughput relay:direct"] = x
    return r


def hooked_ct(hooks):
    """Whether a gateway's hook list has conntrack's prerouting hook, None
    when the kernel lists no hooks (Debian's 6.1 has no nfnetlink_hook).
    ipv4_conntrack_defrag is defrag's, not conntrack's."""
    return "ipv4_conntrack_in" in hooks if hooks.strip() else None


def conntrack(res, phase, v):
    """yes/no from the gateway's hook list, or from the ruleset, marked."""
    ct = hooked_ct(res["hooks"].get(f"{phase}|{v}", ""))
    if ct is not None:
        return "yes" if ct else "no"
    return ("yes" if v in EXPECT_CT else "no") + " (ruleset; no hook list)"


def fmt(x, d=3):
    return "n/a" if x is None else f"{x:.{d}f}"


def kernel_md(k, res):
    g, r, out = res["groups"], res["ratios"], []
    mode = res["mode"]
    clock = ("guest instructions counted by QEMU (-icount shift=0, 1 vCPU): "
             "guest CPU work, not cache or lock contention across real cores"
             if mode == "icount" else
             "KVM, the real clock: wall-clock times, subject to the host's load")
    out.append(f"## {k}\n")
    out.append(f"Mode: {mode}; time is {clock}.  Medians of {res['params'].get('reps', '?')} "
               "windows; CV = coefficient of variation of those windows.\n")
    out.append("### Cost relative to A (no interception)\n")
    head = "| variant | conntrack | module |" + "".join(
        f" {WL_TEXT[w]} |" for w in MAIN_WL)
    out.append(head)
    out.append("|---|---|---|" + "---|" * len(MAIN_WL))
    variants = [v for v in VARIANT_TEXT if f"main|conn|{v}" in g]
    for v in variants:
        m = res["meta"].get(f"main|{v}", {})
        cells = []
        for w in MAIN_WL:
            gg = g.get(f"main|{w}|{v}")
            if not gg:
                cells.append(" n/a |")
                continue
            cells.append(f" {fmt(r.get(f'main/{w}/{v}:A'))} "
                         f"({gg['median']:.3f} {gg['unit']}, CV {gg['cv']:.2f} %) |")
        out.append(f"| {v}: {VARIANT_TEXT[v]} | {conntrack(res, 'main', v)} | "
                   f"{m.get('module', '?')} |" + "".join(cells))
    for v, why in res["skipped"].items():
        out.append(f"| {v}: {VARIANT_TEXT.get(v, v)} | | | SKIP: {why} |")
    out.append("")
    out.append("### Pairs\n")
    out.append("| pair | " + " | ".join(WL_TEXT[w] for w in MAIN_WL) + " |")
    out.append("|---|" + "---|" * len(MAIN_WL))
    for a, b, what in (("E", "B", "ours / in-tree (target <= 1.01)"),
                       ("B", "D", "TPROXY / REDIRECT"),
                       ("F", "E", "ours: divert / policy routing"),
                       ("C", "B", "xt_TPROXY / nft tproxy"),
                       ("B+ct", "B", "in-tree: conntrack / none"),
                       ("E+ct", "E", "ours: conntrack / none")):
        cells = [fmt(r.get(f"main/{w}/{a}:{b}")) for w in MAIN_WL]
        if any(c != "n/a" for c in cells):
            out.append(f"| {a}/{b}: {what} | " + " | ".join(cells) + " |")
    out.append("")
    for kind, ns, ref in (("estab", ("10", "1000", "10000"), "A"),
                          ("vmap", ("1", "100", "10000"), None)):
        phs = [f"{kind}:{n}" for n in ns if any(
            key.startswith(f"{kind}:{n}|") for key in g)]
        if not phs:
            continue
        if kind == "estab":
            out.append("### Scale: cost per new connection with N established flows\n")
        else:
            out.append("### Scale: cost per new connection with N ports in one verdict map\n")
        out.append("| variant | " + " | ".join(
            f"N = {p.split(':')[1]}" for p in phs) + " | growth, largest / smallest N |")
        out.append("|---|" + "---|" * (len(phs) + 1))
        vs = [v for v in VARIANT_TEXT if f"{phs[0]}|conn|{v}" in g]
        for v in vs:
            cells = []
            for p in phs:
                gg = g.get(f"{p}|conn|{v}")
                cells.append("n/a" if not gg else
                             f"{gg['median']:.2f} us (CV {gg['cv']:.2f} %)")
            grow = ratio(med(g, phs[-1], "conn", v), med(g, phs[0], "conn", v))
            out.append(f"| {v} | " + " | ".join(cells) + f" | {fmt(grow)} |")
        for a, b in (("E", "B"), ("B", "D"), ("F", "E")):
            cells = [fmt(r.get(f"{p}/conn/{a}:{b}")) for p in phs]
            out.append(f"| {a}/{b} | " + " | ".join(cells) + " | |")
        out.append("")
    if any(f"fwd/{w}/F:E" in r for w in MAIN_WL):
        out.append("### Forwarded, not intercepted\n")
        out.append("Y talks to a server on Z through X on ports no rule takes, X set "
                   "up as E (policy routing: its ip rule and table, tproxy rules for "
                   "other ports) and as F (divert's rules for other ports): what each "
                   "setup costs the gateway's other traffic.\n")
        out.append("| | " + " | ".join(WL_TEXT[w] for w in MAIN_WL) + " |")
        out.append("|---|" + "---|" * len(MAIN_WL))
        for v in ("E", "F"):
            cells = []
            for w in MAIN_WL:
                gg = g.get(f"fwd|{w}|{v}")
                cells.append("n/a" if not gg else
                             f"{gg['median']:.3f} {gg['unit']} (CV {gg['cv']:.2f} %)")
            out.append(f"| {v}: {VARIANT_TEXT[v]} | " + " | ".join(cells) + " |")
        out.append("| F/E | " + " | ".join(
            fmt(r.get(f"fwd/{w}/F:E")) for w in MAIN_WL) + " |")
        out.append("")
    rr = r.get("relay/bulk/throughput relay:direct")
    if rr is not None:
        d, p = g["relay|bulk|direct"], g["relay|bulk|relay"]
        out.append("### The reference proxy\n")
        out.append(f"tproxy-relay -t -T (ours, policy routing) against a direct, "
                   f"forwarded TCP transfer (netperf TCP_STREAM, Y to Z): throughput ratio "
                   f"**{rr:.3f}** (target >= 0.8); per byte {p['median']:.4f} ns "
                   f"(CV {p['cv']:.2f} %) against {d['median']:.4f} ns "
                   f"(CV {d['cv']:.2f} %).\n")
    odd = [(key, gg) for key, gg in g.items() if gg["outliers"]]
    if odd:
        out.append("### Windows more than 1 % from their median\n")
        out.append("The median ignores them; they are why a CV can exceed the "
                   "spread the bench gates on (1.4826 MAD / median).\n")
        out.append("| group | median | CV | MAD spread | windows off by more than 1 % |")
        out.append("|---|---|---|---|---|")
        for key, gg in sorted(odd):
            out.append(f"| {key.replace('|', ' ')} | {gg['median']:.4f} | "
                       f"{gg['cv']:.2f} % | {gg['robust_cv']:.2f} % | " +
                       ", ".join(f"{x:.4f}" for x in gg["outliers"]) + " |")
        out.append("")
    out.append("Tools: " + "; ".join(f"{t}: {v}" for t, v in res["tools"].items()) + "\n")
    return "\n".join(out)


def summary_txt(data):
    """The README's compact table: cost relative to A per workload, the
    pairs, the scale growth and the relay, one column per kernel."""
    ks = list(data["kernels"])
    w0 = 34
    out = ["cost relative to A".ljust(w0) + "".join(f"{k[:24]:>26}" for k in ks)]

    def row(label, name, d=3):
        cells = [fmt(data["kernels"][k]["ratios"].get(name), d) for k in ks]
        out.append(label.ljust(w0) + "".join(f"{c:>26}" for c in cells))

    for w in MAIN_WL:
        out.append(f"{WL_TEXT[w]}:")
        for v in VARIANT_TEXT:
            if v != "A":
                row(f"  {v}", f"main/{w}/{v}:A")
    out.append("pairs (conn / tcp_rr / udp_rr / bulk):")
    for a, b in (("E", "B"), ("B", "D"), ("F", "E"), ("C", "B"),
                 ("E+ct", "E")):
        cells = []
        for k in ks:
            r = data["kernels"][k]["ratios"]
            cells.append(" ".join(fmt(r.get(f"main/{w}/{a}:{b}")) for w in MAIN_WL))
        out.append(f"  {a}/{b}".ljust(w0) + "".join(f"{c:>26}" for c in cells))
    cells = []
    for k in ks:
        r = data["kernels"][k]["ratios"]
        cells.append(" ".join(fmt(r.get(f"fwd/{w}/F:E")) for w in MAIN_WL))
    if any(f"fwd/{w}/F:E" in data["kernels"][k]["ratios"] for k in ks for w in MAIN_WL):
        out.append("  forwarded, not intercepted F/E".ljust(w0) +
                   "".join(f"{c:>26}" for c in cells))
    out.append("scale, conn at the largest N / smallest N:")
    for kind, lo, hi in (("estab", "10", "10000"), ("vmap", "1", "10000")):
        for v in VARIANT_TEXT:
            name = f"{kind}:{hi}/conn/{v}:{kind}:{lo}"
            if any(name in data["kernels"][k]["ratios"] for k in ks):
                row(f"  {kind} {lo} -> {hi}: {v}", name)
    row("relay throughput / direct", "relay/bulk/throughput relay:direct")
    return "\n".join(out) + "\n"


def compare_md(prev, cur):
    details = []
    out = ["## Against the previous run (results.prev.json)\n",
           "| kernel | ratios compared | largest difference | ratio | previous | now | within 1 % |",
           "|---|---|---|---|---|---|---|"]
    for k, res in cur["kernels"].items():
        p = prev.get("kernels", {}).get(k)
        if not p:
            out.append(f"| {k} | 0 | | | | | no previous run |")
            continue
        diffs = []
        for name, x in res["ratios"].items():
            y = p["ratios"].get(name)
            if y:
                diffs.append((abs(x / y - 1) * 100, name, y, x))
        if not diffs:
            out.append(f"| {k} | 0 | | | | | |")
            continue
        worst = max(diffs)
        within = sum(1 for d in diffs if d[0] <= 1.0)
        out.append(f"| {k} | {len(diffs)} | {worst[0]:.2f} % | {worst[1]} | "
                   f"{worst[2]:.4f} | {worst[3]:.4f} | {within} of {len(diffs)} |")
        details.append((k, sorted(diffs, key=lambda d: d[1])))
    out.append("")
    for k, diffs in details:
        out.append(f"### {k}: every ratio, both runs\n")
        out.append("| ratio | previous | now | difference |")
        out.append("|---|---|---|---|")
        for d, name, y, x in diffs:
            out.append(f"| {name} | {y:.4f} | {x:.4f} | {d:.2f} % |")
        out.append("")
    return "\n".join(out)


def gnuplot(dirpath, data):
    """ratios.png: main workloads per variant relative to A, per kernel;
    scale.png: cost per connection against N."""
    kernels = list(data["kernels"])
    dat = os.path.join(dirpath, "ratios.dat")
    present = {}        # kernel: the workloads it has figures for
    with open(dat, "w") as f:
        for k in kernels:
            r = data["kernels"][k]["ratios"]
            vs = [v for v in VARIANT_TEXT if v != "A" and f"main/conn/{v}:A" in r]
            wl = [w for w in MAIN_WL if any(f"main/{w}/{v}:A" in r for v in vs)]
            present[k] = wl
            f.write("variant " + " ".join(wl) + "\n")
            for v in vs:
                f.write(f"{v} " + " ".join(
                    fmt(r.get(f"main/{w}/{v}:A"), 4).replace("n/a", "NaN")
                    for w in wl) + "\n")
            f.write("\n\n")
    sdat = os.path.join(dirpath, "scale.dat")
    panels = []         # (kernel, kind, [(block index, variant)])
    idx = 0
    with open(sdat, "w") as f:
        for k in kernels:
            g = data["kernels"][k]["groups"]
            for kind in ("estab", "vmap"):
                blocks = []
                for v in VARIANT_TEXT:
                    pts = sorted((int(key.split("|")[0].split(":")[1]),
                                  val["median"])
                                 for key, val in g.items()
                                 if key.startswith(f"{kind}:")
                                 and key.endswith(f"|conn|{v}"))
                    if not pts:
                        continue
                    f.write(f"# {k} {kind} {v}\n")
                    for n, m in pts:
                        f.write(f"{n} {m}\n")
                    f.write("\n\n")
                    blocks.append((idx, v))
                    idx += 1
                panels.append((k, kind, blocks))
    script = [
        'set terminal pngcairo size 1200,%d font "sans,10"' % (420 * len(kernels)),
        f'set output "{os.path.join(dirpath, "ratios.png")}"',
        f"set multiplot layout {len(kernels)},1",
        "set style data histograms", "set style histogram clustered gap 1",
        "set style fill solid 0.8 border -1", "set key outside right top",
        "set ylabel 'cost relative to A (no interception)'",
        "set grid ytics", "set yrange [0:*]", "set termoption noenhanced",
    ]
    for i, k in enumerate(kernels):
        script.append(f"set title '{k} ({data['kernels'][k]['mode']}): "
                      "guest CPU work per unit, relative to A'")
        cols = [f"'{dat}' index {i} using 2:xtic(1) title columnhead(2)"]
        cols += [f"'' index {i} using {c} title columnhead({c})"
                 for c in range(3, len(present[k]) + 2)]
        script.append("plot " + ", ".join(cols) + ", 1 notitle lc 'black'")
    script.append("unset multiplot")
    if not any(blocks for _, _, blocks in panels):
        panels = []
    script += [] if not panels else [
        'set terminal pngcairo size 1200,%d font "sans,10"' % (420 * len(kernels)),
        f'set output "{os.path.join(dirpath, "scale.png")}"',
        f"set multiplot layout {len(kernels)},2",
        "set style data linespoints", "set logscale x",
        "set key outside right top", "set xtics auto",
        "set ylabel 'us of guest work per new connection'", "set yrange [0:*]",
    ]
    xlabels = {"estab": "established flows present",
               "vmap": "ports in the verdict map"}
    for k, kind, blocks in panels:
        if not blocks:
            script.append("set multiplot next")
            continue
        script.append(f"set title '{k}: {xlabels[kind]}'")
        script.append(f"set xlabel '{xlabels[kind]}'")
        script.append("set xrange [0.5:20000]")
        script.append("plot " + ", ".join(
            f"'{sdat}' index {i} using 1:2 title '{v}' "
            f"lc {list(VARIANT_TEXT).index(v) + 1} pt {list(VARIANT_TEXT).index(v) + 1}"
            for i, v in blocks))
    script.append("unset multiplot")
    res = subprocess.run(["gnuplot"], input="\n".join(script), text=True,
                         capture_output=True)
    if res.returncode != 0:
        print("bench-report: gnuplot failed:\n" + res.stderr)
        return False
    return True


def main():
    if len(sys.argv) < 3:
        sys.stderr.write("usage: bench-report.py DIR KVER ...\n")
        return 2
    dirpath, kernels = sys.argv[1], sys.argv[2:]
    data = {"kernels": {}, "cv_limit_percent": CV_LIMIT}
    problems = []
    for k in kernels:
        path = os.path.join(dirpath, k, "raw.txt")
        if not os.path.exists(path):
            problems.append(f"{k}: no figures ({path})")
            continue
        run = parse(path)
        mode = open(os.path.join(dirpath, k, "mode")).read().strip() \
            if os.path.exists(os.path.join(dirpath, k, "mode")) else "?"
        if not run["complete"]:
            problems.append(f"{k}: the run did not finish")
        groups = summarize(run)
        res = {"kernel_release": run.get("kernel", k), "mode": mode,
               "vcpus": run.get("vcpus"), "clocksource": run.get("clocksource"),
               "tools": run["tools"], "params": run["params"],
               "meta": run["meta"], "hooks": run["hooks"],
               "skipped": run["skipped"],
               "groups": groups, "ratios": ratios(groups)}
        data["kernels"][k] = res
        for key, g in groups.items():
            if mode == "icount" and g["robust_cv"] > CV_LIMIT:
                problems.append(f"{k}: {key.replace('|', ' ')}: spread "
                                f"{g['robust_cv']:.2f} % (1.4826 MAD/median; CV "
                                f"{g['cv']:.2f} %) over {CV_LIMIT} %: too wide to "
                                "support its ratios")
        problems += [f"{k}: {n}" for n in run["notes"]]
        for key, m in run["meta"].items():
            v = key.split("|")[1]
            ct = hooked_ct(run["hooks"].get(key, ""))
            if ct is not None and ct != (v in EXPECT_CT):
                problems.append(f"{k}: {key}: conntrack {'' if ct else 'not '}"
                                "in the gateway's hooks, against its ruleset")
            want = EXPECT_MODULE.get(v)
            if want and m.get("module") != want:
                problems.append(f"{k}: {key}: served by '{m.get('module')}', "
                                f"expected {want}")
    data["problems"] = problems
    with open(os.path.join(dirpath, "results.json"), "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    md = ["# nft-tproxy bench results\n",
          "Made by `make bench`; every figure is a cost (guest microseconds per "
          "connection or transaction, nanoseconds per byte), a ratio above 1 is "
          "dearer than its reference.\n"]
    for k, res in data["kernels"].items():
        md.append(kernel_md(k, res))
    prev_path = os.path.join(dirpath, "results.prev.json")
    if os.path.exists(prev_path):
        with open(prev_path) as f:
            md.append(compare_md(json.load(f), data))
    if problems:
        md.append("## Problems\n")
        md += [f"- {p}" for p in problems]
    with open(os.path.join(dirpath, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(dirpath, "summary.txt"), "w") as f:
        f.write(summary_txt(data))
    if data["kernels"] and not gnuplot(dirpath, data):
        problems.append("no chart")
    print("\n".join(md))
    for p in problems:
        print(f"bench-report: FAIL: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
