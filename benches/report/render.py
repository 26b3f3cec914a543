#!/usr/bin/env python3
"""Renders one `benches/run.sh` run into BENCHMARKS.md and SVG plots.

Reads the JSON files the run wrote into its output directory (machine.json,
steps.jsonl, baselines.json, report.json, ingest_*.json, signed.json,
unary_*.json, fanout.json, replay.json, bundle.json, optionally pg.md) and
replaces, in place, every section of BENCHMARKS.md between
``<!-- generated:begin NAME -->`` and ``<!-- generated:end NAME -->``; the
prose outside the markers is left alone. Every figure is put beside a
baseline measured in the same run, because on a shared 2-core VM figures
from different runs are not comparable.

Standard library only (Python 3.11), so that the report needs nothing
installed and CI can check it cheaply:

    python3 benches/report/render.py --in DIR --benchmarks BENCHMARKS.md --svg-dir docs/bench
    python3 benches/report/render.py --self-test   # renders fixtures/ into a temp copy; CI runs this
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SECTIONS = ("machine", "baselines", "append", "grpc", "replay", "bundle", "pg", "plots")
MARKER = re.compile(
    r"(<!-- generated:begin (?P<name>[a-z0-9_-]+) -->\n)(?P<body>.*?)(<!-- generated:end (?P=name) -->)",
    re.S,
)


class RenderError(Exception):
    """A run directory or a BENCHMARKS.md the renderer cannot use."""


# --- formatting ----------------------------------------------------------------


def rate(v: float | None) -> str:
    """Events (or operations) per second, short: 1.23 M, 145k, 8.1k, 950."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if v >= 1e6:
        return f"{v / 1e6:.2f} M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def ms(v: float | None) -> str:
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(a: float | None, b: float | None) -> str:
    """`a` as a share (or multiple) of the baseline `b`."""
    if not a or not b:
        return "–"
    r = a / b
    return f"{100 * r:.0f} %" if r < 10 else f"{r:.0f}×"


def mib(b: float | None) -> str:
    return "–" if b is None else f"{b / 2**20:.0f}"


def med(stats: dict | None) -> float | None:
    return None if stats is None else stats.get("median")


# --- the run -------------------------------------------------------------------


@dataclass
class Run:
    dir: Path
    machine: dict
    steps: dict
    data: dict

    @staticmethod
    def load(path: Path) -> "Run":
        if not (path / "machine.json").is_file():
            raise RenderError(f"{path}: no machine.json (not a benches/run.sh output directory?)")
        machine = json.loads((path / "machine.json").read_text())
        steps = {}
        if (path / "steps.jsonl").is_file():
            for line in (path / "steps.jsonl").read_text().splitlines():
                if line.strip():
                    s = json.loads(line)
                    steps[s["name"]] = s
        data = {}
        for f in sorted(path.glob("*.json")):
            if f.name != "machine.json":
                try:
                    data[f.stem] = json.loads(f.read_text())
                except json.JSONDecodeError as e:
                    raise RenderError(f"{f}: {e}") from e
        for need in ("baselines", "report", "ingest_1", "ingest_8", "ingest_64"):
            if need not in data:
                raise RenderError(f"{path}: {need}.json missing")
        return Run(path, machine, steps, data)

    def get(self, name: str) -> dict | None:
        return self.data.get(name)

    def command(self, *names: str) -> str:
        """The exact command of the run, and of each step a table comes from."""
        cmds = [f"`{self.steps[n]['command']}`" for n in names if n in self.steps]
        loads = [self.steps[n]["load_before"].split()[0] for n in names if n in self.steps]
        text = f"Command: `{self.machine['command']}`"
        if cmds:
            text += "; step" + ("s" if len(cmds) > 1 else "") + ": " + ", ".join(cmds)
        if loads:
            text += f" (1-min load average before: {', '.join(loads)})"
        return text + "."

    # Baselines, by what the ratios divide by.
    def raw_best(self, batch: int) -> float | None:
        """Raw append+fdatasync of the same bytes at `batch`: the faster of idle / one core busy."""
        if batch == 100:
            raw = self.data["baselines"]["raw_append"]["events_per_s"]
            return max(med(raw["idle"]), med(raw["busy"]))
        for w in self.data["report"]["workloads"]:
            if w["batch"] == batch and w["threads"] == 1:
                return max(med(w["raw_idle_events_per_s"]), med(w["raw_busy_events_per_s"]))
        return None

    def in_process(self, batch: int, threads: int) -> float | None:
        for w in self.data["report"]["workloads"]:
            if w["batch"] == batch and w["threads"] == threads:
                return med(w["ledger_events_per_s"])
        return None

    def verify_batch_per_core(self) -> float | None:
        return med(self.data["baselines"]["ed25519"]["verify_batch_per_s"].get("64"))

    def grouped_verify_per_core(self) -> float | None:
        return med(self.data["baselines"]["ed25519"].get("verify_batch_grouped_per_s", {}).get("64"))


# --- sections ------------------------------------------------------------------


def section_machine(run: Run) -> str:
    m = run.machine
    commit = m["commit"] + (" (with uncommitted changes)" if m.get("dirty") else "")
    lines = [
        f"{run.command()} Mode: **{m['mode']}** ({m['seconds_per_scenario']:g} s per `ledger bench` "
        f"scenario, replay of {m['replay_records']:,} records). Output directory: "
        f"`$CARGO_TARGET_DIR/bench-report/{m['stamp']}/`, `$OUT` in the step commands (JSON and logs per "
        "step, not committed).",
        "",
        "| | |",
        "|---|---|",
        f"| date | {m['date']} |",
        f"| CPU | {m['cpu_model']}, `nproc` = {m['nproc']} |",
        f"| memory | {m['mem_total_bytes'] / 2**30:.1f} GiB (MemTotal), "
        f"{m['mem_available_bytes'] / 2**30:.1f} GiB available at the start |",
        f"| kernel | `{m['kernel']}` |",
        f"| toolchain | `{m['rustc']}`, release profile |",
        f"| commit | `{commit}` |",
        f"| load average (1/5/15 min) | before: {m['load_before']}; after: {m.get('load_after', '–')} |",
        "",
        "**The machine is shared**: other engineers' builds and tests may run on the same "
        f"{m['nproc']} cores during the run (see the load averages, per step below too), and the "
        "`ledger bench` client runs on the same cores as the server it measures. Compare figures "
        "only with the baselines of the same run, as the ratios do; the disk's fdatasync latency "
        "also swings between two regimes on this VM (see [Machine](#machine)). The load average counts the "
        "run's own processes too (each `ledger bench` keeps both cores busy), so it rises during the run "
        "even on an otherwise idle machine.",
    ]
    return "\n".join(lines)


def section_baselines(run: Run) -> str:
    b = run.data["baselines"]
    r = run.data["report"]
    ed = b["ed25519"]
    raw = b["raw_append"]
    rows = []
    for w in r["workloads"]:
        if w["threads"] == 1:
            rows.append(
                (
                    f"raw append + fdatasync, batch {w['batch']}, idle / one core busy",
                    f"{rate(med(w['raw_idle_events_per_s']))} / {rate(med(w['raw_busy_events_per_s']))}",
                    f"events/s; {r['log_bytes_per_event']:.0f} B/event, the ledger's own frames",
                )
            )
    rows.append(
        (
            f"raw append + fdatasync, batch {raw['batch']}, idle / one core busy",
            f"{rate(med(raw['events_per_s']['idle']))} / {rate(med(raw['events_per_s']['busy']))}",
            f"events/s; the `ledger bench` request size, {raw['bytes_per_event']} B/event",
        )
    )
    rows.append(
        (
            f"BLAKE3 of a {r['payload_bytes']}-byte payload",
            rate(med(r["blake3_256b_per_s"])),
            "hashes/s, one thread",
        )
    )
    rows.append(("ed25519 `sign`", rate(med(ed["sign_per_s"])), f"signatures/s, one thread, {ed['message_bytes']} B signing bytes"))
    rows.append(("ed25519 `verify_strict`, one at a time", rate(med(ed["verify_per_s"])), "signatures/s, one thread"))
    for size, stats in sorted(ed["verify_batch_per_s"].items(), key=lambda kv: int(kv[0])):
        rows.append((f"ed25519 `verify_batch`, batches of {size}", rate(med(stats)), "signatures/s, one thread"))
    for size, stats in sorted(ed.get("verify_batch_grouped_per_s", {}).items(), key=lambda kv: int(kv[0])):
        rows.append(
            (
                f"`ledger_core::producer::verify_batch` (one term per key; the server's), batches of {size}",
                rate(med(stats)),
                "signatures/s, one thread, one key",
            )
        )
    sled = b["sled"]
    names = {
        "unbatched": "one `insert` per event, one `flush` at the end",
        "batched": f"`apply_batch` of {sled['batch']}, one `flush` at the end",
        "batched_flush_each": f"`apply_batch` of {sled['batch']} + `flush` after each (durable per batch)",
    }
    for mode, v in sled["modes"].items():
        rows.append(
            (
                f"sled: {names.get(mode, mode)}",
                rate(med(v["events_per_s"])),
                f"events/s, {sled['key_bytes']} B keys, {sled['value_bytes']} B values, {v['events']:,} events",
            )
        )
    lines = [
        run.command("baselines", "report") + " Median of the runs (`report`: "
        f"{r['runs']}, `baselines`: {b['runs']}).",
        "",
        "| baseline | rate | unit, notes |",
        "|---|---:|---|",
    ]
    lines += [f"| {a} | {v} | {n} |" for a, v, n in rows]
    return "\n".join(lines)


def section_append(run: Run) -> str:
    r = run.data["report"]
    lines = [
        run.command("report")
        + " Durable `Ledger::append` in process (default config, fsync on) vs raw append+fdatasync of the same "
        "bytes at the same batch size (for threaded rows: one writer at that batch size), median (min–max).",
        "",
        "| workload | events | ledger events/s | raw, idle | raw, one core busy | ledger ÷ faster raw |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for w in r["workloads"]:
        led = w["ledger_events_per_s"]
        idle, busy = med(w["raw_idle_events_per_s"]), med(w["raw_busy_events_per_s"])
        lines.append(
            f"| {w['label']} | {w['events']:,} | {rate(led['median'])} ({rate(led['min'])}–{rate(led['max'])}) "
            f"| {rate(idle)} | {rate(busy)} | {ratio(led['median'], max(idle, busy))} |"
        )
    s = r["sustained"]
    i = r["index_store"]
    ceiling = med(r["no_sync_batch_1024_events_per_s"])
    lines += [
        "",
        f"Diagnostics from the same step: batch 1024 with `unsafe_no_sync` (not durable: the CPU ceiling) "
        f"{rate(ceiling)} events/s, so durable batch 1024 is {ratio(run.in_process(1024, 1), ceiling)} of it; "
        f"the sled index store alone applies {rate(i['apply_events_per_s'])} events/s; sustained batch 1024 over "
        f"{s['events']:,} events: {rate(s['append_events_per_s'])} events/s acknowledged, "
        f"{rate(s['indexed_events_per_s'])} including index catch-up.",
    ]
    return "\n".join(lines)


def bench_row(d: dict) -> tuple[str, str, str, str, str, str, str]:
    rss = (d.get("server_rss_bytes") or {}).get("peak")
    delivery = (d.get("delivery_ms") or {}).get("p99")
    return (
        ms(d["ack_ms"]["p50"]),
        ms(d["ack_ms"]["p99"]),
        ms(d["ack_ms"]["max"]),
        ms(delivery),
        mib(rss),
        "–" if d.get("disk_bytes_per_event") is None else f"{d['disk_bytes_per_event']:.0f}",
        str(d["errors"]),
    )


def section_grpc(run: Run) -> str:
    nproc = run.machine["nproc"]
    inproc = run.in_process(64, 8)
    raw100 = run.raw_best(100)
    verify = run.verify_batch_per_core()
    grouped = run.grouped_verify_per_core()
    names = ["ingest_1", "ingest_8", "ingest_64", "signed", "signed_presigned", "unary_max", "unary_half", "fanout"]
    lines = [
        run.command(*[n for n in names if run.get(n)])
        + " Each `ledger bench` starts its own release `ledgerd` on a fresh temporary directory "
        "(development mode, fsync on, live projections and the secret scan on), 256-byte JSON payloads; "
        "the client runs on the same cores. Ack latency: per request, from handing it to the transport "
        "to its response; delivery: from the producer stamping the event to the subscriber receiving it.",
        "",
        "| scenario | events/s | baseline (same run) | ÷ baseline | ack p50 ms | ack p99 ms | ack max ms "
        "| delivery p99 ms | server peak RSS MiB | disk B/event | errors |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def row(label: str, d: dict, base_label: str, base: float | None, extra: str = "") -> None:
        eps = d["events_per_sec"]
        cells = " | ".join(bench_row(d))
        lines.append(
            f"| {label} | {rate(eps)} | {base_label} {rate(base)}{extra} | {ratio(eps, base)} | {cells} |"
        )

    for p in (1, 8, 64):
        d = run.get(f"ingest_{p}")
        if d:
            row(
                f"gRPC ingest, {p} producer{'s' if p > 1 else ''} (`AppendStream`, batches of {d['batch']})",
                d,
                "in-process append, batch 64 × 8 threads",
                inproc,
                f"; raw batch 100: {rate(raw100)} ({ratio(d['events_per_sec'], raw100)})",
            )
    if d := run.get("signed"):
        row(
            "signed ingest, 8 producers (every event ed25519-signed)",
            d,
            f"ed25519 `verify_batch` (64) × {nproc} cores",
            None if verify is None else verify * nproc,
            f"; unsigned 8 producers: {ratio(d['events_per_sec'], run.get('ingest_8')['events_per_sec'])}",
        )
    if d := run.get("signed_presigned"):
        per_cpu = d.get("events_per_server_cpu_second")
        row(
            "signed ingest, 8 producers, presigned (signing before the clock starts)",
            d,
            f"ed25519 `verify_batch` (64) × {nproc} cores",
            None if verify is None else verify * nproc,
            ""
            if per_cpu is None or verify is None
            else f"; per server CPU second: {rate(per_cpu)} = {ratio(per_cpu, verify)} of one core's "
            f"`verify_batch` ({d['server_cores_busy']:.2f} cores busy)"
            + (
                ""
                if grouped is None
                else f", {ratio(per_cpu, grouped)} of the server's own grouped batch verify ({rate(grouped)})"
            ),
        )
    if d := run.get("unary_max"):
        row(
            f"unary `Append`, batches of {d['batch']}, 8 producers, unpaced (the unary max)",
            d,
            "gRPC ingest, 8 producers",
            run.get("ingest_8")["events_per_sec"],
        )
    if d := run.get("unary_half"):
        row(
            f"unary `Append`, batches of {d['batch']}, 8 producers, paced to {d['target_rate']:,}/s "
            "(half the unary max)",
            d,
            "offered rate",
            float(d["target_rate"]),
        )
    if d := run.get("fanout"):
        row(
            f"fan-out: {d['subscribers']} subscribers, paced to {d['target_rate']:,} events/s",
            d,
            "offered rate",
            float(d["target_rate"]),
            f"; delivered {(d.get('delivery_ms') or {}).get('count', 0):,} of {d['events']:,}",
        )
    lines += [
        "",
        "Baselines: the in-process row is `report`'s *batch 64 × 8 threads* (the shape eight streaming "
        "producers give the writer); raw batch 100 is the faster of idle / one-core-busy from `baselines`. "
        f"The signed rows' baseline is one core's `verify_batch` rate times the {nproc} cores, the issue's "
        "\"batch-verify rate × cores used\"; in the first the producers sign on the same cores, so it is a "
        "lower bound; the presigned row signs every request before its clock starts and also divides its "
        "events by the server's own CPU seconds (user + system, from `/proc`), the rate per core the server "
        "used. Against the issue's targets: ≥ 50k durable events/s with 8 producers; unary p50 ≤ 1 ms and "
        "p99 ≤ 5 ms at half load; fan-out delivery p99 ≤ 50 ms; signed ≥ 80 % of the batch-verify rate.",
    ]
    return "\n".join(lines)


def section_replay(run: Run) -> str:
    d = run.get("replay")
    if not d:
        return "Not run."
    lines = [
        run.command("replay")
        + " The four built-in projections catching up together on a generated log, beside the raw segment "
        "read of the same log (length + CRC, no decoding) measured in the same step, on a warm page cache.",
        "",
        "| records | phase | time s | records/s | ÷ raw segment read |",
        "|---:|---|---:|---:|---:|",
    ]
    phases = [
        ("raw_read", "raw segment read (baseline)"),
        ("read_range", "`Ledger::read_range` (decode + record hash)"),
        ("scan_chunks", "engine reader `Ledger::scan_chunks`"),
        ("open_scan", "open scan (verifies CRC, hashes, chain)"),
        ("catch_up", "**all four built-ins, catch-up**"),
        ("catch_up_closed", "all four, catch-up + `close()`"),
    ]
    for s in d["sizes"]:
        raw = s["raw_read"]["records_per_s"]
        for key, label in phases:
            p = s[key]
            lines.append(
                f"| {s['records']:,} | {label} | {p['seconds']:.2f} | {rate(p['records_per_s'])} "
                f"| {ratio(p['records_per_s'], raw)} |"
            )
        for single in s["singles"]:
            flag = "" if single["same_digest"] else " **digest differs**"
            lines.append(
                f"| {s['records']:,} | `{single['name']}` alone (`replay(0)`){flag} | {single['seconds']:.2f} "
                f"| {rate(single['records_per_s'])} | {ratio(single['records_per_s'], raw)} |"
            )
        hwm = s.get("rss_hwm_bytes")
        lines += [
            "",
            f"{s['records']:,} records: log {mib(s['log_bytes'])} MiB, projection store {mib(s['store_bytes'])} MiB, "
            f"peak RSS during catch-up {mib(hwm if hwm is not None else s['rss_peak_sampled_bytes'])} MiB. "
            "Target: ≥ 500k records/s for the four together.",
        ]
    # Older runs (and `replay_report` without --time-travel) have none.
    travels = [(s, t) for s in d["sizes"] for t in s.get("time_travel", [])]
    if travels:
        lines += [
            "",
            "Time travel (`--time-travel`): each a scratch fold from seq 0, flushed to a scratch store and evicted "
            "down to the resident budget as it goes; "
            "RSS growth over the RSS before the fold.",
            "",
            "| records | projection | as of | records folded | time s | records/s | peak RSS growth MiB | held MiB |",
            "|---:|---|---|---:|---:|---:|---:|---:|",
        ]
        for s, t in travels:
            lines.append(
                f"| {s['records']:,} | `{t['name']}` | `{t['point']}` | {t['records']:,} | {t['seconds']:.2f} "
                f"| {rate(t['records_per_s'])} | {mib(t['rss_peak_growth_bytes'])} | {mib(t['rss_held_growth_bytes'])} |"
            )
    return "\n".join(lines)


def section_bundle(run: Run) -> str:
    d = run.get("bundle")
    if not d:
        return "Not run."
    lines = [
        run.command("bundle")
        + f" Bundles of up to {d['bundle_records']:,} records and a {d['chain_records']:,}-record chain; "
        "baselines (raw BLAKE3 of the same canonical bytes, ed25519 over the same signatures) from the same step.",
        "",
        "| what | records | time ms | records/s | ÷ baseline | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in d["rows"]:
        base = row.get("baseline")
        share = "" if not base else f"{ratio(row['records_per_s']['median'], base['records_per_s'])} of {base['name']}"
        lines.append(
            f"| {row['what']} | {row['records']:,} | {ms(row['ms'])} | {rate(row['records_per_s']['median'])} "
            f"| {share} | {row['target']} |"
        )
    return "\n".join(lines)


def section_pg(run: Run) -> str:
    if (run.dir / "pg.md").is_file():
        body = (run.dir / "pg.md").read_text().strip()
        # Its own headings would nest badly under ours: make them bold lines.
        body = re.sub(r"^#+ (.*)$", r"**\1**", body, flags=re.M)
        return run.command("pg") + "\n\n" + body
    if (run.dir / "pg.skipped").is_file():
        return "Not measured in this run: " + (run.dir / "pg.skipped").read_text().strip() + "."
    return "Not measured in this run (it runs only with `benches/run.sh --with-pg` and PostgreSQL's server binaries installed)."


def section_plots(run: Run, svg_rel: str) -> str:
    return "\n".join(
        [
            f"![gRPC ingest vs producers, with the in-process and raw baselines]({svg_rel}/throughput.svg)",
            "",
            f"![Ack latency percentiles per scenario]({svg_rel}/latency.svg)",
            "",
            "Throughput: events/s of gRPC ingest with 1, 8 and 64 streaming producers against the "
            "in-process and raw append+fdatasync baselines of the same run (horizontal lines). Latency: "
            "ack latency at each percentile (log scales; the right end is the max), per scenario, and "
            "append→delivery for the fan-out.",
        ]
    )


# --- SVG -----------------------------------------------------------------------

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
W, H = 840, 420
ML, MR, MT, MB = 80, 320, 40, 60  # plot margins; the legend sits on the right


def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_doc(title: str, body: list[str]) -> str:
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
            'font-family="sans-serif" font-size="12">',
            f'<rect width="{W}" height="{H}" fill="white"/>',
            f'<text x="{W / 2:.0f}" y="22" text-anchor="middle" font-size="14" font-weight="bold">{esc(title)}</text>',
            *body,
            "</svg>",
            "",
        ]
    )


def legend(items: list[tuple[str, str, bool]]) -> list[str]:
    """(label, colour, dashed) entries, stacked right of the plot area."""
    out = []
    x0, y0 = W - MR + 15, MT + 10
    for i, (label, colour, dashed) in enumerate(items):
        y = y0 + i * 20
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out.append(f'<line x1="{x0}" y1="{y}" x2="{x0 + 24}" y2="{y}" stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{x0 + 30}" y="{y + 4}">{esc(label)}</text>')
    return out


def nice_ceiling(v: float) -> tuple[float, float]:
    """An axis top at or above `v` and a tick step giving 4–8 ticks."""
    if v <= 0:
        return 1.0, 0.25
    mag = 10 ** math.floor(math.log10(v))
    for step in (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10):
        s = step * mag
        top = math.ceil(v / s) * s
        if top / s <= 8:
            return top, s
    return v, v / 4


def axes(x_label: str, y_label: str) -> list[str]:
    x0, y0, x1, y1 = ML, H - MB, W - MR, MT
    return [
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="black"/>',
        f'<text x="{(x0 + x1) / 2:.0f}" y="{H - 15}" text-anchor="middle">{esc(x_label)}</text>',
        f'<text x="18" y="{(y0 + y1) / 2:.0f}" text-anchor="middle" transform="rotate(-90 18 {(y0 + y1) / 2:.0f})">'
        f"{esc(y_label)}</text>",
    ]


def throughput_svg(run: Run) -> str:
    producers = [p for p in (1, 8, 64) if run.get(f"ingest_{p}")]
    ours = [run.get(f"ingest_{p}")["events_per_sec"] for p in producers]
    baselines = [
        ("in-process, batch 64 × 8 threads", run.in_process(64, 8)),
        ("in-process, batch 1024", run.in_process(1024, 1)),
        # Raw at batch 1024 (~1-2 M/s) would flatten everything else.
        ("raw append+fdatasync, batch 100", run.raw_best(100)),
    ]
    baselines = [(label, v) for label, v in baselines if v]
    top, step = nice_ceiling(max(ours + [v for _, v in baselines]) * 1.05)
    x0, y0, x1, y1 = ML, H - MB, W - MR, MT

    def xp(p: int) -> float:  # log2 scale over 1..64
        return x0 + 30 + (x1 - x0 - 60) * math.log2(p) / math.log2(64)

    def yp(v: float) -> float:
        return y0 - (y0 - y1) * v / top

    body = axes("producers (log scale)", "durable events/s")
    t = 0.0
    while t <= top + step / 2:
        y = yp(t)
        body.append(f'<line x1="{x0 - 5}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#ddd"/>')
        body.append(f'<text x="{x0 - 8}" y="{y + 4:.1f}" text-anchor="end">{esc(rate(t))}</text>')
        t += step
    for p in (1, 2, 4, 8, 16, 32, 64):
        x = xp(p)
        body.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + 5}" stroke="black"/>')
        body.append(f'<text x="{x:.1f}" y="{y0 + 20}" text-anchor="middle">{p}</text>')
    items = []
    for i, (label, v) in enumerate(baselines):
        colour = PALETTE[(i + 1) % len(PALETTE)]
        y = yp(v)
        body.append(
            f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="{colour}" stroke-width="2" stroke-dasharray="6 4"/>'
        )
        items.append((f"{label}: {rate(v)}", colour, True))
    points = " ".join(f"{xp(p):.1f},{yp(v):.1f}" for p, v in zip(producers, ours))
    body.append(f'<polyline points="{points}" fill="none" stroke="{PALETTE[0]}" stroke-width="2.5"/>')
    for p, v in zip(producers, ours):
        body.append(f'<circle cx="{xp(p):.1f}" cy="{yp(v):.1f}" r="4" fill="{PALETTE[0]}"/>')
        body.append(f'<text x="{xp(p):.1f}" y="{yp(v) - 9:.1f}" text-anchor="middle">{esc(rate(v))}</text>')
    items.insert(0, ("gRPC ingest (ours)", PALETTE[0], False))
    body += legend(items)
    title = f"gRPC ingest vs producers ({run.machine['date']}, {run.machine['mode']}, load {run.machine['load_before'].split()[0]})"
    return svg_doc(title, body)


def latency_svg(run: Run) -> str:
    series = []
    for name, label, key in [
        ("ingest_1", "ingest, 1 producer", "ack_percentiles_ms"),
        ("ingest_8", "ingest, 8 producers", "ack_percentiles_ms"),
        ("ingest_64", "ingest, 64 producers", "ack_percentiles_ms"),
        ("signed", "signed, 8 producers", "ack_percentiles_ms"),
        ("unary_half", "unary at half max", "ack_percentiles_ms"),
        ("fanout", "fan-out: ack", "ack_percentiles_ms"),
        ("fanout", "fan-out: delivery", "delivery_percentiles_ms"),
    ]:
        d = run.get(name)
        pts = [(q, v) for q, v in (d or {}).get(key) or [] if v > 0]
        if pts:
            series.append((label, pts))
    if not series:
        raise RenderError("no latency percentiles in the run (ledger bench --json without ack_percentiles_ms?)")
    # x: log10(1 / (1 - q)), so p90 = 1, p99 = 2, p99.9 = 3; the max (q = 1) one step right of p99.99.
    x_max = 5.0

    def xq(q: float) -> float:
        return x_max if q >= 1 else min(4.0, math.log10(1 / (1 - q)))

    lo = min(v for _, pts in series for _, v in pts)
    hi = max(v for _, pts in series for _, v in pts)
    d_lo, d_hi = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if d_hi == d_lo:
        d_hi += 1
    x0, y0, x1, y1 = ML, H - MB, W - MR, MT

    def xp(x: float) -> float:
        return x0 + (x1 - x0) * x / x_max

    def yp(v: float) -> float:
        return y0 - (y0 - y1) * (math.log10(v) - d_lo) / (d_hi - d_lo)

    body = axes("percentile (log scale of 1 / (1 − q))", "latency, ms (log scale)")
    for d in range(d_lo, d_hi + 1):
        y = yp(10**d)
        body.append(f'<line x1="{x0 - 5}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#ddd"/>')
        label = f"{10**d:g}"
        body.append(f'<text x="{x0 - 8}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    for x, label in [(math.log10(2), "p50"), (1, "p90"), (2, "p99"), (3, "p99.9"), (4, "p99.99"), (x_max, "max")]:
        body.append(f'<line x1="{xp(x):.1f}" y1="{y0}" x2="{xp(x):.1f}" y2="{y0 + 5}" stroke="black"/>')
        body.append(f'<text x="{xp(x):.1f}" y="{y0 + 20}" text-anchor="middle">{label}</text>')
    items = []
    for i, (label, pts) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        dashed = "delivery" in label
        path = " ".join(f"{xp(xq(q)):.1f},{yp(v):.1f}" for q, v in pts)
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        items.append((label, colour, dashed))
    body += legend(items)
    title = f"Ack latency percentiles ({run.machine['date']}, {run.machine['mode']}, load {run.machine['load_before'].split()[0]})"
    return svg_doc(title, body)


# --- BENCHMARKS.md -------------------------------------------------------------


def render_sections(run: Run, svg_rel: str) -> dict[str, str]:
    return {
        "machine": section_machine(run),
        "baselines": section_baselines(run),
        "append": section_append(run),
        "grpc": section_grpc(run),
        "replay": section_replay(run),
        "bundle": section_bundle(run),
        "pg": section_pg(run),
        "plots": section_plots(run, svg_rel),
    }


def replace_sections(text: str, sections: dict[str, str]) -> str:
    """Replaces the body of every generated section; all must be present."""
    found = {m.group("name") for m in MARKER.finditer(text)}
    missing = [name for name in sections if name not in found]
    if missing:
        raise RenderError(
            "BENCHMARKS.md lacks generated sections: "
            + ", ".join(f"<!-- generated:begin {n} --> … <!-- generated:end {n} -->" for n in missing)
        )

    def body(m: re.Match) -> str:
        name = m.group("name")
        if name not in sections:
            return m.group(0)
        return m.group(1) + sections[name].rstrip() + "\n" + m.group(4)

    return MARKER.sub(body, text)


def render(run_dir: Path, benchmarks: Path, svg_dir: Path) -> None:
    run = Run.load(run_dir)
    svg_dir.mkdir(parents=True, exist_ok=True)
    try:
        svg_rel = svg_dir.resolve().relative_to(benchmarks.resolve().parent).as_posix()
    except ValueError:
        svg_rel = svg_dir.resolve().as_posix()
    text = benchmarks.read_text()
    new = replace_sections(text, render_sections(run, svg_rel))
    for name, svg in (("throughput.svg", throughput_svg(run)), ("latency.svg", latency_svg(run))):
        ET.fromstring(svg)  # well-formed, or fail here rather than in a browser
        (svg_dir / name).write_text(svg)
    benchmarks.write_text(new)


def self_test() -> None:
    """Renders fixtures/ into a temporary copy of BENCHMARKS.md and checks the result."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bench = tmp / "BENCHMARKS.md"
        shutil.copy(REPO / "BENCHMARKS.md", bench)
        before = bench.read_text()
        render(HERE / "fixtures", bench, tmp / "docs" / "bench")
        after = bench.read_text()
        for name in SECTIONS:
            m = re.search(
                rf"<!-- generated:begin {name} -->\n(.*?)<!-- generated:end {name} -->", after, re.S
            )
            if not m or not m.group(1).strip():
                raise RenderError(f"self-test: section {name} empty after rendering")
        if "presigned" not in after or "per server CPU second" not in after:
            raise RenderError("self-test: the presigned signed-ingest row is missing")
        # Outside the markers nothing changes.
        strip = lambda t: MARKER.sub(lambda m: m.group(1) + m.group(4), t)  # noqa: E731
        if strip(before) != strip(after):
            raise RenderError("self-test: text outside the generated sections changed")
        # Rendering is idempotent.
        render(HERE / "fixtures", bench, tmp / "docs" / "bench")
        if bench.read_text() != after:
            raise RenderError("self-test: a second rendering differs from the first")
        for svg in ("throughput.svg", "latency.svg"):
            root = ET.parse(tmp / "docs" / "bench" / svg).getroot()
            if not root.tag.endswith("svg") or len(root) < 10:
                raise RenderError(f"self-test: {svg} looks empty")
        try:
            replace_sections("no markers here", {"machine": "x"})
        except RenderError:
            pass
        else:
            raise RenderError("self-test: missing markers were not reported")
    print("render.py self-test: ok")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--in", dest="run_dir", type=Path, help="a benches/run.sh output directory")
    ap.add_argument("--benchmarks", type=Path, default=REPO / "BENCHMARKS.md", help="the file to update in place")
    ap.add_argument("--svg-dir", type=Path, default=REPO / "docs" / "bench", help="where the plots go")
    ap.add_argument("--self-test", action="store_true", help="render fixtures/ into a temporary copy and check it")
    args = ap.parse_args()
    try:
        if args.self_test:
            self_test()
        elif args.run_dir:
            render(args.run_dir, args.benchmarks, args.svg_dir)
        else:
            ap.error("--in DIR or --self-test")
    except RenderError as e:
        print(f"render.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
