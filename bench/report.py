#!/usr/bin/env python3
"""Collects what bench/run.sh measured in WORK into OUT.json and OUT-latency.png, and prints a table.

    report.py WORK OUT
"""
import json
import re
import subprocess
import sys
from pathlib import Path

work, out = Path(sys.argv[1]), sys.argv[2]


def load(name):
    return json.loads((work / name).read_text())


def wrk_summary(text):
    """Requests/s, latency percentiles (ms) and errors from `wrk --latency` output."""

    def ms(value, unit):
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    result = {"requests_per_s": None, "non_2xx": 0, "socket_errors": 0}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        result["requests_per_s"] = float(m.group(1))
    for p in ("50", "90", "99"):
        if m := re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
            result[f"p{p}_ms"] = ms(m.group(1), m.group(2))
    if m := re.search(r"(\d+) requests in", text):
        result["requests"] = int(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        result["non_2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        result["socket_errors"] = sum(int(g) for g in m.groups())
    return result


create, start = load("latency-create.json"), load("latency-start.json")
scale = [json.loads(line) for line in (work / "scale.jsonl").read_text().splitlines() if line.strip()]
for s in scale:
    s["idle_cpu_percent"] = round(100.0 * s["idle_cpu_ticks"] / s["clk_tck"] / s["idle_seconds"], 3)
results = {
    "latency": {
        "create": {k: create[k] for k in ("call", "children", "ready")},
        "start": {k: start[k] for k in ("call", "children", "ready")},
    },
    "burst": load("burst.json"),
    "scale": scale,
    "shim": wrk_summary((work / "wrk.txt").read_text()),
    "real_node": load("real.json"),
}
Path(out + ".json").write_text(json.dumps(results, indent=2) + "\n")

# The chart: the distribution (CDF) of each latency series.
series = {
    "create -> children": create["children_series"],
    "create -> Ready": create["ready_series"],
    "/start -> children": start["children_series"],
    "/start -> Ready": start["ready_series"],
}
plots = []
for i, (title, values) in enumerate(series.items()):
    data = work / f"cdf-{i}.dat"
    values = sorted(values)
    data.write_text("".join(f"{v} {(j + 1) / len(values)}\n" for j, v in enumerate(values)))
    plots.append(f"'{data}' using 1:2 with steps lw 2 title '{title}'")
script = f"""set terminal png size 1000,600
set output '{out}-latency.png'
set title 'Repl latency, {len(create["children_series"])} Repls one after another (simulated cluster)'
set xlabel 'milliseconds (log scale)'
set ylabel 'fraction of Repls'
set logscale x
set key bottom right
set grid
plot {", ".join(plots)}
"""
subprocess.run(["gnuplot"], input=script, text=True, check=True)


def row(*cells):
    print("  ".join(str(c).ljust(w) for c, w in zip(cells, (34, 12, 12, 12, 12))))


print()
row("latency (ms)", "p50", "p90", "p99", "max")
for via in ("create", "start"):
    for what in ("call", "children", "ready"):
        p = results["latency"][via][what]
        row(f"{'Repl create' if via == 'create' else '/start'} -> {what}", p["p50"], p["p90"], p["p99"], p["max"])
b = results["burst"]
print()
print(f"burst: {b['repls']} Repls at concurrency {b['concurrency']}: operator {b['operator_ms'] / 1000:.2f} s, "
      f"baseline ({b['baseline_objects']} objects created directly) {b['baseline_ms'] / 1000:.2f} s, "
      f"ratio {b['ratio']:.2f}")
print()
row("scale", "sync (ms)", "peak RSS MB", "idle CPU %", "idle writes")
for s in scale:
    row(f"{s['repls']} Repls", s["sync_ms"], round(s["peak_rss_kb"] / 1024, 1), s["idle_cpu_percent"], s["idle_writes"])
w = results["shim"]
print()
print(f"shim /start under wrk: {w['requests_per_s']} requests/s, p50 {w.get('p50_ms')} ms, p99 {w.get('p99_ms')} ms, "
      f"non-2xx {w['non_2xx']}, socket errors {w['socket_errors']}")
r = results["real_node"]
print()
row(f"real node ({r['count']} repls, ms)", "p50", "", "p99")
row("/start -> Ready", r["ready_ms"]["p50"], "", r["ready_ms"]["p99"])
row("/start -> first websocket byte", r["first_byte_ms"]["p50"], "", r["first_byte_ms"]["p99"])
