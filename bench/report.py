#!/usr/bin/env python3
"""Writes the measured tables of bench/RESULTS.md from the benchmark's JSON results.

    .cache/venv/bin/python bench/report.py [--dir build/bench] [--out bench/RESULTS.md]

Reads throughput.json, airtime.json, cpu.json, size.json and heap.json (written by `make bench`) and replaces
the part of RESULTS.md between the `<!-- measured -->` and `<!-- /measured -->` markers; the
hand-written text around them (targets, history, caveats) stays. Fails if a result file is
missing or marks itself incomplete, so the table never mixes fresh and stale numbers silently:
every table names the commit and firmware it measured.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- measured -->", "<!-- /measured -->"


def load(directory: Path, name: str) -> dict:
    path = directory / f"{name}.json"
    data = json.loads(path.read_text())
    if not data.get("complete", False):
        raise SystemExit(f"{path}: the run did not complete ({data.get('error')})")
    return data


def n(v: float, digits: int = 0) -> str:
    return f"{v:,.{digits}f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def throughput_table(d: dict) -> list[str]:
    out = [
        f"Medians of {d['rounds']} alternating rounds (ours<->ours, then C<->C, per test), "
        f"commit `{d['commit'][:7]}`. Higher is faster; target ours/C >= 1.0.",
        "",
        "| test | unit | ours | C | ours/C | target |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for row in d["summary"]:
        r = row["ratio_ours_over_C"]
        digits = 1 if row["median_ours"] < 1000 else 0
        out.append(f"| {row['metric']} | {row['unit']} | {n(row['median_ours'], digits)} | "
                   f"{n(row['median_C'], digits)} | {r:.2f} | {verdict(r >= 1.0)} |")
    return out


def airtime_table(d: dict) -> list[str]:
    """Bulk throughput on the radio model, as a share of each setting's limit (bench/AIRTIME.md)."""
    out = [
        f"Medians of {d['rounds']} alternating rounds on the radio model (bench/AIRTIME.md), commit "
        f"`{d['commit'][:7]}`: bytes/s from the first arrival to the end marker, and the share of "
        "the most the link can carry. Target: ours >= 90 % of the limit for notify and L2CAP at "
        "7.5 ms and 30 ms, and not behind the C module (within 1 %: where both fill the link, "
        "neither can be ahead).",
        "",
        "| setting | workload | limit B/s | ours B/s | ours % | C B/s | C % | ours/C | target |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in d["summary"]:
        lim, o, c = row["limit"], row["ours"], row["C"]
        share_o, share_c = 100 * o / lim, 100 * c / lim
        target = "-"
        if row["workload"] in ("notify", "l2cap"):
            target = verdict(share_o >= 90 and o >= 0.99 * c)
        out.append(f"| `{row['setting']}` | {row['workload']} | {n(lim)} | {n(o)} | {share_o:.1f} | "
                   f"{n(c)} | {share_c:.1f} | {o / c:.2f} | {target} |")
    return out


def cpu_table(d: dict) -> list[str]:
    out = [
        f"callgrind instructions (Ir) per event, whole process, (Ir(N_hi) - Ir(N_lo)) / events, "
        f"median of {d['rounds']} rounds, commit `{d['commit'][:7]}`. Lower is better; "
        "target ours/C <= 0.8.",
        "",
        "| workload | per | ours | C | ours/C | GC bytes per event (ours / C) | target |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for r in d["results"]:
        if r["workload"] in ("idle", "gated"):
            continue
        ratio = r["ratio_ours_over_C"]
        alloc = r["alloc_per_event"]
        out.append(f"| {r['workload']} | {r['unit']} | {n(r['per_event']['ours'])} | "
                   f"{n(r['per_event']['C'])} | {ratio:.2f} | {n(alloc['ours'])} / {n(alloc['C'])} | "
                   f"{verdict(ratio <= 0.8)} |")
    for r in d["results"]:
        if r["workload"] in ("idle", "gated"):
            out.append("")
            out.append(f"Calibration `{r['workload']}` ({r['describe']}): ours "
                       f"{n(r['per_event']['ours'] * 1000)} Ir/s, C {n(r['per_event']['C'] * 1000)} Ir/s.")
    out.append("")
    out.append("Top functions of ours (exclusive Ir per event):")
    out.append("")
    for r in d["results"]:
        top = r.get("top_ours_exclusive") or []
        if not top:
            continue
        items = ", ".join(f"`{t['function']}` {n(t['ir_per_event'])}" for t in top[:6])
        out.append(f"- {r['workload']}: {items}")
    return out


def size_table(d: dict) -> list[str]:
    out = [
        f"Bytes of module + NimBLE, commit `{d['commit'][:7]}`. flash = text + rodata + data, "
        "RAM = data + bss. Target (thumbv7em): ours text <= C's.",
        "",
        "| target | side | text | rodata | data | bss | flash | RAM |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    ratios = []
    for t in d["targets"]:
        totals = {}
        for side in t["sides"]:
            s = side["total"]
            flash = s["text"] + s["rodata"] + s["data"]
            ram = s["data"] + s["bss"]
            totals[side["label"]] = (s["text"], flash, ram)
            out.append(f"| {t['name'].split(' (')[0]} | {side['label']} | {n(s['text'])} | "
                       f"{n(s['rodata'])} | {n(s['data'])} | {n(s['bss'])} | {n(flash)} | {n(ram)} |")
        o, c = totals["ours"], totals["C"]
        ratios.append(f"{t['name'].split(' (')[0]}: text {o[0] / c[0]:.2f}, flash {o[1] / c[1]:.2f}, "
                      f"RAM {o[2] / c[2]:.2f}" + (f" ({verdict(o[0] <= c[0])})" if "thumb" in t["name"] else ""))
    out.append("")
    out.append("ours/C: " + "; ".join(ratios) + ".")
    profiles = d.get("profiles") or []
    if profiles:
        c_flash = next(sum(side["total"][k] for k in ("text", "rodata", "data"))
                       for t in d["targets"] if "thumb" in t["name"]
                       for side in t["sides"] if side["label"] == "C")
        out += ["", "Feature profiles, thumbv7em (tools/feature-profiles.txt, docs/building.md): ours with only "
                "some parts, against the C module's full build. Target: a peripheral-only GATT server "
                "<= 0.7 times.", "",
                "| profile | parts | flash | RAM (static) | flash / C |", "| --- | --- | ---: | ---: | ---: |"]
        for p in profiles:
            t = p["total"]
            flash = t["text"] + t["rodata"] + t["data"]
            out.append(f"| {p['name']} | {' '.join(p['features'])} | {n(flash)} | {n(t['data'] + t['bss'])} | "
                       f"{flash / c_flash:.2f}" + (f" ({verdict(flash <= 0.7 * c_flash)})"
                                                    if p["name"] == "peripheral" else "") + " |")
    w = d["whole_unix_firmwares"]
    out.append("")
    out.append(f"Whole Unix firmwares (`size`): ours text {n(w['ours']['text'])}, data "
               f"{n(w['ours']['data'])}, bss {n(w['ours']['bss'])}; C text {n(w['C']['text'])}, "
               f"data {n(w['C']['data'])}, bss {n(w['C']['bss'])}.")
    return out


def heap_table(d: dict) -> list[str]:
    out = [
        f"Bytes in use over the baseline (before `import bluetooth`), median of the runs, commit "
        f"`{d['commit'][:7]}`. Target: GC heap, and GC heap + malloc, after start <= C's.",
        "",
        "| stage | GC heap ours | GC heap C | malloc ours | malloc C | RSS KiB ours | RSS KiB C |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    s = d["summary"]
    for stage in s["ours"]:
        o, c = s["ours"][stage], s["C"][stage]
        out.append(f"| {stage} | {n(o['gc_delta'])} | {n(c['gc_delta'])} | {n(o['malloc_delta'])} | "
                   f"{n(c['malloc_delta'])} | {n(o['rss_delta_kib'])} | {n(c['rss_delta_kib'])} |")
    last = list(s["ours"])[-1]
    o, c = s["ours"][last], s["C"][last]
    out.append("")
    out.append(f"After start + Nordic UART service: GC heap ours {n(o['gc_delta'])} B vs C "
               f"{n(c['gc_delta'])} B ({verdict(o['gc_delta'] <= c['gc_delta'])}); GC + malloc ours "
               f"{n(o['gc_delta'] + o['malloc_delta'])} B vs C {n(c['gc_delta'] + c['malloc_delta'])} B "
               f"({verdict(o['gc_delta'] + o['malloc_delta'] <= c['gc_delta'] + c['malloc_delta'])}).")
    return out


def heap_qemu_lines(d: dict, size: dict) -> list[str]:
    """The bare-metal figure: our GC heap on the qemu board plus static RAM from the size table."""
    static = {side["label"]: side["total"]["data"] + side["total"]["bss"]
              for t in size["targets"] if "thumb" in t["name"] for side in t["sides"]}
    h = d["gc_heap_over_baseline"]
    out = [
        f"On the emulated Cortex-M4F board (`bench/heap_qemu.py`, commit `{d['commit'][:7]}`), where every "
        "heap block of ours is on the GC heap: GC heap bytes in use over the baseline.",
        "",
        "| stage | GC heap ours |",
        "| --- | ---: |",
        *(f"| {k} | {n(v)} |" for k, v in h.items()),
        "",
        f"Bare metal after start + Nordic UART service: ours {n(static['ours'])} B static (.data + .bss, "
        f"the size table) + {n(h['registered'])} B heap = {n(static['ours'] + h['registered'])} B; the C "
        f"module's static RAM on the same port configuration is {n(static['C'])} B (its heap cannot be "
        "measured on this board: MicroPython has no HCI port of its own for it).",
    ]
    return out


def attempts_table(results: dict[str, dict]) -> list[str]:
    """Failed attempts per benchmark and side: each was retried, and a failure of ours is a
    finding (its first line is listed), not noise."""
    out = [
        "Each measurement gets up to three attempts; a round is lost only when all fail.",
        "",
        "| benchmark | failed attempts ours | rounds lost ours | failed attempts C | rounds lost C |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    ours_failures = []
    for name, d in results.items():
        a = d.get("attempts")
        if a is None:
            out.append(f"| {name} | n/a | n/a | n/a | n/a |")
            continue
        by = a["by_side"]
        out.append(f"| {name} | {by['ours']['failed_attempts']} | {by['ours']['lost_rounds']} | "
                   f"{by['C']['failed_attempts']} | {by['C']['lost_rounds']} |")
        for f in a["failures"]:
            if f["side"] == "ours":
                first = (f["error"].strip().splitlines() or [""])[0][:160]
                ours_failures.append(f"- {name}, {f['what']}, round {f['round']} attempt {f['attempt']}: {first}")
    if ours_failures:
        out += ["", "Failures of ours (findings; the full output is in build/bench/*.json):", "", *ours_failures]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=ROOT / "build" / "bench")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = ap.parse_args()
    tp, air, cpu, size, heap = (
        load(args.dir, name) for name in ("throughput", "airtime", "cpu", "size", "heap")
    )
    heap_qemu_path = args.dir / "heap_qemu.json"
    heap_qemu = load(args.dir, "heap_qemu") if heap_qemu_path.exists() else None
    host = cpu.get("host", {})
    lines = [
        BEGIN,
        f"Measured {cpu['finished'][:10]} on {platform.machine()} Linux, {host.get('cpus', '?')} cores "
        f"(`{platform.node() or 'unknown'}`), `make bench`.",
        "",
        "### Throughput",
        "",
        *throughput_table(tp),
        "",
        "### Throughput on a link with air time",
        "",
        *airtime_table(air),
        "",
        "### CPU per event",
        "",
        *cpu_table(cpu),
        "",
        "### Size",
        "",
        *size_table(size),
        "",
        "### Memory after start",
        "",
        *heap_table(heap),
        *(["", *heap_qemu_lines(heap_qemu, size)] if heap_qemu else []),
        "",
        "### Failed attempts",
        "",
        *attempts_table({"throughput": tp, "airtime": air, "cpu": cpu, "heap": heap}),
        END,
    ]
    text = args.out.read_text() if args.out.exists() else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{args.out}: no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    args.out.write_text(head + "\n".join(lines) + tail)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
