#!/usr/bin/env bash
# The load scenarios of `ledger bench`, each against a fresh ledgerd that
# `ledger bench` starts on a temporary directory (release builds, fsync
# on), printed as one markdown table. Usage:
#
#   benches/scenarios.sh [SECONDS]      # default 10 s per scenario
#
# Scenarios: steady ingest with 1, 8 and 64 streaming producers (batches
# of 100 256-byte events, 8 in flight each); signed ingest (8 producers,
# every event ed25519-signed by a key registered to the principal);
# unary appends of 10 events paced to half the 8-producer rate; fan-out:
# 1000 live subscribers, each following one stream, at 10 000 events/s.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
target="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -p ledger-client --bin ledger -p ledger-server --bin ledgerd
ledger="$target/release/ledger"
export LEDGERD_BIN="$target/release/ledgerd"

run() { "$ledger" --json bench --duration "$seconds" "$@"; }
field() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); v=d
for k in sys.argv[2].split('.'):
    v = v.get(k) if isinstance(v, dict) else None
print('-' if v is None else (f'{v:.0f}' if isinstance(v, float) and v > 100 else (f'{v:.2f}' if isinstance(v, float) else v)))" "$1" "$2"; }
row() {
  local name="$1" json="$2"
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" \
    "$(field "$json" events_per_sec)" "$(field "$json" ack_ms.p50)" "$(field "$json" ack_ms.p99)" \
    "$(field "$json" ack_ms.max)" "$(field "$json" delivery_ms.p99)" \
    "$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); r=d.get('server_rss_bytes') or {}; print(round(r.get('peak',0)/2**20))" "$json")" \
    "$(field "$json" disk_bytes_per_event)" "$(field "$json" errors)"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%Y-%m-%dT%H:%MZ); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "command: benches/scenarios.sh $seconds"
echo
echo '| scenario | events/s | ack p50 ms | ack p99 ms | ack max ms | delivery p99 ms | server peak RSS MiB | disk B/event | errors |'
echo '|---|---|---|---|---|---|---|---|---|'
for producers in 1 8 64; do
  row "steady ingest, $producers producers" "$(run --producers "$producers")"
done
eight="$(run --producers 8)"
row "signed ingest, 8 producers" "$(run --producers 8 --signed)"
half=$(python3 -c "import json,sys; print(int(json.loads(sys.argv[1])['events_per_sec']/2))" "$eight")
row "unary batches of 10, 8 producers at $half/s (half load)" "$(run --producers 8 --unary --batch 10 --rate "$half")"
row "fan-out: 1000 subscribers, 10 000 events/s" "$(run --producers 8 --batch 10 --rate 10000 --subscribers 1000)"
