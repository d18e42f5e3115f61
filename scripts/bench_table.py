#!/usr/bin/env python3
"""Turn criterion's output into markdown tables: wsio beside its peers and the ceiling.

Reads target/criterion/**/new/{benchmark.json,estimates.json} (written by `cargo bench --bench
compare` and `--bench micro`) and prints, per benchmark group, one row per function with its
throughput, the ratio to the best peer and the ratio to the ceiling; then a summary of the
end-to-end cases with the targets of the benchmark issue.

Who is who, by function name:
  - ours: `wsio` and `wsio_*`;
  - ceiling: `raw_tcp` (end to end), `memcpy` (masking);
  - peers: the three peer crates (end to end), `ref_*` (reference maskers), `std_*` (UTF-8);
  - anything else (`raw_tcp_copy`) is shown for context, without ratios of its own.
In the stream groups, wsio runs its stream API and the peers (which have none) their bulk transfer
of the same bytes; an older run without peers there falls back on the bulk group's peers.

Usage: python3 scripts/bench_table.py [--stat median|mean|slope] [--criterion DIR] [FILTER...]
FILTERs keep only groups whose name contains one of them (e.g. `echo_ bulk_ stream_`).
"""

import argparse
import json
import os
import sys

PEERS = ("tokio-tungstenite", "fastwebsockets", "tokio-websockets")
CEILINGS = ("raw_tcp", "raw_tls", "memcpy")

TARGETS = {
    # group prefix -> (what, wsio must reach at least this ratio, of what)
    "echo_64B_": (1.2, "peer"),
    "echo_1KiB_": (1.2, "peer"),
    "bulk_1MiB_": (0.95, "raw"),
    "stream_": (0.9, "raw"),
    "flood_": (1.5, "peer"),
    "wss_bulk_1MiB_": (0.9, "raw"),
}


def role(function_id):
    if function_id == "wsio" or function_id.startswith("wsio_"):
        return "ours"
    if function_id in CEILINGS:
        return "ceiling"
    if function_id in PEERS or function_id.startswith(("ref_", "std_")):
        return "peer"
    return "context"


def load(root, stat):
    groups = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        point = (est.get(stat) or est["mean"])["point_estimate"]  # ns per iteration
        throughput = bench.get("throughput") or {}
        if "Bytes" in throughput:
            unit, amount = "B/s", throughput["Bytes"]
        elif "Elements" in throughput:
            unit, amount = "elem/s", throughput["Elements"]
        else:
            unit, amount = "iter/s", 1
        per_second = amount / point * 1e9
        fid = bench["function_id"]
        if bench.get("value_str"):
            fid = f"{fid}/{bench['value_str']}"
        groups.setdefault(bench["group_id"], {})[fid] = (per_second, unit)
    return groups


def human(value, unit, group=""):
    if unit == "B/s":
        for scale, name in ((1 << 30, "GiB/s"), (1 << 20, "MiB/s"), (1 << 10, "KiB/s")):
            if value >= scale:
                return f"{value / scale:.2f} {name}"
        return f"{value:.0f} B/s"
    name = "msg/s" if group.startswith("echo_") else "op/s"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.2f} {prefix}{name}"
    return f"{value:.1f} {name}"


def best_peer(groups, group):
    rows = groups[group]
    peers = {f: v for f, (v, _u) in rows.items() if role(f) == "peer"}
    if not peers and group.startswith("stream_"):
        bulk = "bulk_1MiB_" + group[len("stream_"):]
        if bulk in groups:
            peers = {f"{f} (bulk)": v for f, (v, _u) in groups[bulk].items() if role(f) == "peer"}
    if not peers:
        return None, None
    name = max(peers, key=peers.get)
    return name, peers[name]


def ceiling(rows):
    for f in CEILINGS:
        if f in rows:
            return rows[f][0]
    return None


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "–"


ORDER = {"ours": 0, "peer": 1, "ceiling": 2, "context": 3}


def group_table(groups, group):
    rows = groups[group]
    peer_name, peer = best_peer(groups, group)
    ceil = ceiling(rows)
    out = [f"### {group}", ""]
    if peer_name and peer_name not in rows:
        out.append(f"Best peer: {peer_name}, {human(peer, next(iter(rows.values()))[1], group)}.")
        out.append("")
    out.append("| | throughput | / best peer | / ceiling |")
    out.append("|---|---:|---:|---:|")
    for f in sorted(rows, key=lambda f: (ORDER[role(f)], -rows[f][0])):
        value, unit = rows[f]
        bold = "**" if role(f) == "ours" else ""
        out.append(
            f"| {bold}{f}{bold} | {human(value, unit, group)} | {ratio(value, peer)} | {ratio(value, ceil)} |"
        )
    out.append("")
    return "\n".join(out)


def summary(groups):
    e2e = [g for g in groups if g.startswith(("echo_", "bulk_", "wss_bulk_", "flood_", "stream_"))]
    if not e2e:
        return ""
    out = [
        "| case | wsio | best peer | wsio / best peer | raw TCP | wsio / raw | target |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for group in sort_groups(e2e):
        rows = groups[group]
        if "wsio" not in rows:
            continue
        value, unit = rows["wsio"]
        peer_name, peer = best_peer(groups, group)
        raw = ceiling(rows)
        target = ""
        for prefix, (goal, of) in TARGETS.items():
            if group.startswith(prefix):
                got = value / peer if of == "peer" and peer else (value / raw if raw else None)
                if got is not None:
                    mark = "met" if got >= goal else "**missed**"
                    target = f"≥{goal}x {'best peer' if of == 'peer' else 'raw'}: {mark}"
        out.append(
            f"| {group} | {human(value, unit, group)} | {peer_name or '–'} {human(peer, unit, group) if peer else ''} "
            f"| {ratio(value, peer)} | {human(raw, unit, group) if raw else '–'} | {ratio(value, raw)} | {target} |"
        )
    return "\n".join(out) + "\n"


def mask_summary(groups):
    masks = [g for g in groups if g.startswith("mask_in_place/")]
    if not masks:
        return ""
    out = [
        "| size | wsio aligned | wsio worst variant | fastest variant | wsio aligned / fastest | worst / fastest | memcpy |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for group in sort_groups(masks):
        rows = groups[group]
        ours = {f: v for f, (v, _u) in rows.items() if role(f) == "ours"}
        if not ours:
            continue
        candidates = {f: v for f, (v, _u) in rows.items() if role(f) in ("ours", "peer")}
        fastest = max(candidates, key=candidates.get)
        worst = min(ours, key=ours.get)
        aligned = ours.get("wsio_aligned", max(ours.values()))
        unit = "B/s"
        out.append(
            f"| {group.split('/', 1)[1]} | {human(aligned, unit)} | {worst} {human(ours[worst], unit)} "
            f"| {fastest} {human(candidates[fastest], unit)} | {ratio(aligned, candidates[fastest])} "
            f"| {ratio(ours[worst], candidates[fastest])} | {human(rows['memcpy'][0], unit) if 'memcpy' in rows else '–'} |"
        )
    return "\n".join(out) + "\n"


def size_key(text):
    for suffix, mult in (("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)):
        if text.endswith(suffix) and text[: -len(suffix)].isdigit():
            return int(text[: -len(suffix)]) * mult
    return None


def sort_groups(names):
    def key(name):
        parts = name.replace("/", "_").split("_")
        return [(0, size_key(p), "") if size_key(p) is not None else
                (0, int(p[:-4]), "") if p.endswith("conn") and p[:-4].isdigit() else
                (1, 0, p) for p in parts]
    return sorted(names, key=key)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--criterion", default=None, help="criterion output directory")
    parser.add_argument("--stat", default="median", choices=["median", "mean", "slope"])
    parser.add_argument("--no-groups", action="store_true", help="only the summaries")
    parser.add_argument("filters", nargs="*")
    args = parser.parse_args()
    root = args.criterion or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target")),
        "criterion",
    )
    if not os.path.isdir(root):
        sys.exit(f"no criterion output in {root}: run `cargo bench --bench compare` first")
    groups = load(root, args.stat)
    if args.filters:
        groups = {g: r for g, r in groups.items() if any(f in g for f in args.filters)}
    text = summary(groups)
    if text:
        print("## End to end: wsio vs the best peer vs raw TCP\n")
        print(text)
    text = mask_summary(groups)
    if text:
        print("## Masking in place\n")
        print(text)
    if not args.no_groups:
        print("## Every group\n")
        for group in sort_groups(groups):
            print(group_table(groups, group))


if __name__ == "__main__":
    main()
