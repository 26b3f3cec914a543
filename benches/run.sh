#!/usr/bin/env bash
# The one-command benchmark report (issue 6): builds what it needs in
# release, records the machine, measures the physical baselines and every
# scenario in ONE run on this machine, writes each step's JSON into an
# output directory, then regenerates the tables between the
# `<!-- generated:begin NAME -->` / `<!-- generated:end NAME -->` markers in
# BENCHMARKS.md and the plots in docs/bench/ from those files
# (benches/report/render.py). Figures are only comparable within one run:
# that is why the baselines are measured here too, not copied.
#
#   benches/run.sh --quick           # small counts (a smoke run, not a measurement): ~1 min once built
#   benches/run.sh                   # full: ~3 min once built
#   benches/run.sh --with-pg         # also the PostgreSQL peer (benches/pg/run.sh), if its binaries exist
#   benches/run.sh --out DIR         # output directory [target/bench-report/<UTC timestamp>]
#   benches/run.sh --seconds N       # seconds per `ledger bench` scenario [quick 3, full 10]
#   benches/run.sh --replay-records N   # projection replay size [quick 100000, full 1000000]
#   benches/run.sh --no-write        # measure and render into DIR only; leave BENCHMARKS.md and docs/bench alone
#
# Not run by CI (.ci/run only checks the renderer: render.py --self-test).
# The cargo target dir is $CARGO_TARGET_DIR, else ./target.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

quick=0 with_pg=0 write=1 out="" seconds="" replay_records=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --with-pg) with_pg=1 ;;
        --no-write) write=0 ;;
        --out) out="$2"; shift ;;
        --seconds) seconds="$2"; shift ;;
        --replay-records) replay_records="$2"; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "usage: $0 [--quick] [--with-pg] [--no-write] [--out DIR] [--seconds N] [--replay-records N]" >&2; exit 2 ;;
    esac
    shift
done
# The exact command, as the tables quote it.
invocation="benches/run.sh"
[ "$quick" = 1 ] && invocation="$invocation --quick"
[ "$with_pg" = 1 ] && invocation="$invocation --with-pg"
[ -n "$seconds" ] && invocation="$invocation --seconds $seconds"
[ -n "$replay_records" ] && invocation="$invocation --replay-records $replay_records"
if [ "$quick" = 1 ]; then
    seconds=${seconds:-3} replay_records=${replay_records:-100000} quick_flag=(--quick) mode=quick
else
    seconds=${seconds:-10} replay_records=${replay_records:-1000000} quick_flag=() mode=full
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
target=${CARGO_TARGET_DIR:-$repo/target}
out=${out:-$target/bench-report/$stamp}
mkdir -p "$out"
out=$(cd "$out" && pwd)
say() { printf '%s\n' "$*" >&2; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# --- build first, so no compile overlaps a measurement (one cargo call, so
# features unify the same way every time) ----------------------------------
say "building (release): ledger-benches bins, ledger, ledgerd"
cargo build -q --release -p ledger-benches -p ledger-client -p ledger-server --bins
bin="$target/release"
export LEDGERD_BIN="$bin/ledgerd"

# --- the machine ---------------------------------------------------------------
load_before=$(load)
machine() {
    MODE="$mode" INVOCATION="$invocation" STAMP="$stamp" LOAD_BEFORE="$load_before" \
    NPROC="$(nproc)" KERNEL="$(uname -sr)" DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" \
    COMMIT="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" \
    DIRTY="$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo yes || echo no)" \
    RUSTC="$(rustc --version 2>/dev/null || echo unknown)" \
    SECONDS_PER_SCENARIO="$seconds" REPLAY_RECORDS="$replay_records" WITH_PG="$with_pg" \
    python3 - "$out/machine.json" <<'EOF'
import json, os, sys
def meminfo(key):
    for line in open("/proc/meminfo"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.lower().startswith(("model name", "cpu model", "hardware")):
            return line.split(":", 1)[1].strip()
    return "unknown"
e = os.environ
json.dump({
    "mode": e["MODE"], "command": e["INVOCATION"], "stamp": e["STAMP"], "date": e["DATE"],
    "nproc": int(e["NPROC"]), "mem_total_bytes": meminfo("MemTotal"),
    "mem_available_bytes": meminfo("MemAvailable"), "cpu_model": cpu_model(),
    "kernel": e["KERNEL"], "commit": e["COMMIT"], "dirty": e["DIRTY"] == "yes",
    "rustc": e["RUSTC"], "load_before": e["LOAD_BEFORE"],
    "seconds_per_scenario": float(e["SECONDS_PER_SCENARIO"]),
    "replay_records": int(e["REPLAY_RECORDS"]), "with_pg": e["WITH_PG"] == "1",
}, open(sys.argv[1], "w"), indent=2)
EOF
}
machine
say "machine: $(nproc) cores, $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -r); load average before: $load_before"
say "output: $out"

# --- the steps -------------------------------------------------------------------
# step NAME OUTFILE CMD...: runs CMD with stdout to OUTFILE (in $out) and
# stderr to NAME.log, and appends to steps.jsonl what ran, for how long, and
# the load average before and after, so that each table can quote its command.
step() {
    local name=$1 file=$2; shift 2
    local quoted="" before after start status
    quoted=$(printf '%q ' "$@"); quoted=${quoted% }
    quoted=${quoted//"$bin"/'$CARGO_TARGET_DIR/release'}
    quoted=${quoted//"$out"/'$OUT'}
    before=$(load); start=$(date +%s.%N)
    say "[$name] $quoted  (load $before)"
    status=0
    "$@" >"$out/$file" 2>"$out/$name.log" || status=$?
    after=$(load)
    NAME="$name" FILE="$file" CMD="$quoted" BEFORE="$before" AFTER="$after" START="$start" STATUS="$status" \
        python3 -c 'import json, os, time; e = os.environ
print(json.dumps({"name": e["NAME"], "file": e["FILE"], "command": e["CMD"], "load_before": e["BEFORE"],
    "load_after": e["AFTER"], "seconds": round(time.time() - float(e["START"]), 1), "status": int(e["STATUS"])}))' \
        >>"$out/steps.jsonl"
    if [ "$status" != 0 ]; then
        say "[$name] failed (exit $status):"; tail -n 20 "$out/$name.log" >&2
        return "$status"
    fi
}
: >"$out/steps.jsonl"

# Physical baselines: ed25519, raw append at batch 100, sled (baselines);
# raw append at batches 1/64/1024 and BLAKE3 come with the in-process
# append (report), which measures them interleaved with the ledger.
step baselines baselines.json "$bin/baselines" "${quick_flag[@]}"
step report report.md "$bin/report" "${quick_flag[@]}" --json "$out/report.json"

# gRPC scenarios: `ledger bench` starts its own ledgerd (fsync on, live
# projections, secret scan) on a fresh temp dir each time.
bench() { step "$1" "$1.json" "$bin/ledger" --json bench --duration "$seconds" "${@:2}"; }
for producers in 1 8 64; do
    bench "ingest_$producers" --producers "$producers"
done
bench signed --producers 8 --signed
# The same with every request signed before the clock starts, so the
# measured seconds are the server verifying rather than the client signing
# on the same two cores; `server_cpu_seconds` gives the cores it used.
presign_count=$([ "$quick" = 1 ] && echo 50000 || echo 400000)
bench signed_presigned --producers 8 --signed --presign --count "$presign_count"
bench unary_max --producers 8 --unary --batch 10
half=$(python3 -c 'import json, sys; print(max(1, int(json.load(open(sys.argv[1]))["events_per_sec"] / 2)))' "$out/unary_max.json")
bench unary_half --producers 8 --unary --batch 10 --rate "$half"
bench fanout --producers 8 --batch 10 --rate 10000 --subscribers 1000

step replay replay.md "$bin/replay_report" --records "$replay_records" --time-travel --json "$out/replay.json"
step bundle bundle.md "$bin/bundle_report" "${quick_flag[@]}" --json "$out/bundle.json"

if [ "$with_pg" = 1 ]; then
    if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then
        step pg pg.md benches/pg/run.sh "${quick_flag[@]}"
    else
        say "--with-pg: no PostgreSQL server binaries; skipping the peer"
        echo "skipped: no PostgreSQL server binaries (initdb) on this machine" >"$out/pg.skipped"
    fi
fi

load_after=$(load)
python3 - "$out/machine.json" "$load_after" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
m["load_after"] = sys.argv[2]
json.dump(m, open(sys.argv[1], "w"), indent=2)
EOF
say "load average after: $load_after"

# --- render --------------------------------------------------------------------
if [ "$write" = 1 ]; then
    python3 benches/report/render.py --in "$out" --benchmarks BENCHMARKS.md --svg-dir docs/bench
    say "updated BENCHMARKS.md (section \"One-command report\") and docs/bench/*.svg from $out"
else
    cp BENCHMARKS.md "$out/BENCHMARKS.md"
    python3 benches/report/render.py --in "$out" --benchmarks "$out/BENCHMARKS.md" --svg-dir "$out"
    say "rendered into $out (BENCHMARKS.md, *.svg); the repository is unchanged"
fi
