#!/usr/bin/env bash
# The PostgreSQL peer of the gRPC ingest benchmark (issue 6), and our own
# ingest, in one run: builds `pg_peer` and `grpc_report`, runs our
# AppendStream ingest (1 and 8 producers, batches of 100, fsync on), starts a
# throwaway PostgreSQL on a free loopback port in a temp dir (fsync,
# synchronous_commit and full_page_writes on), runs the peer against it
# (per-event and 100-event transactions on a hash-chained audit table), stops
# and removes the server, and prints both with the ratios.
#
#   benches/pg/run.sh            # 10 s per peer workload, 1 M events per ours: ~2 min once built
#   benches/pg/run.sh --quick    # 3 s per peer workload, 200 k events per ours
#   benches/pg/run.sh --seconds 5
#
# Optional: nothing in .ci/run calls it. Needs PostgreSQL's server binaries
# (Debian's `postgresql` package; installed with apt-get if missing and we are
# root). PostgreSQL refuses to run as root, so as root the server runs as the
# `postgres` user if there is one, else as `nobody` (or as $LEDGER_PG_USER). The temp dir is under
# $LEDGER_BENCH_DIR, else $TMPDIR, else /tmp, and must be reachable by that
# user. Everything it creates is removed on exit, whatever the exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

quick=()
peer_seconds=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=(--quick) ;;
        --seconds) peer_seconds=(--seconds "$2"); shift ;;
        *) echo "usage: $0 [--quick] [--seconds N]" >&2; exit 2 ;;
    esac
    shift
done

say() { printf '%s\n' "$*" >&2; }

# --- PostgreSQL server binaries ---------------------------------------------
find_pg_bin() {
    local dir
    # Highest major version first.
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            echo "$dir"
            return 0
        fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null && command -v postgres >/dev/null; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}
if ! pg_bin=$(find_pg_bin); then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        say "PostgreSQL server binaries not found: installing Debian's postgresql package"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    pg_bin=$(find_pg_bin) || { say "no PostgreSQL server binaries (initdb, pg_ctl, postgres) in /usr/lib/postgresql/*/bin or PATH"; exit 1; }
fi

# --- who runs the server -----------------------------------------------------
if [ "$(id -u)" -eq 0 ]; then
    if [ -n "${LEDGER_PG_USER:-}" ]; then
        pg_user=$LEDGER_PG_USER
    elif id -u postgres >/dev/null 2>&1; then
        pg_user=postgres
    else
        pg_user=nobody
    fi
    as_pg() {
        if command -v runuser >/dev/null; then
            runuser -u "$pg_user" -- "$@"
        elif command -v setpriv >/dev/null; then
            setpriv --reuid="$pg_user" --regid="$(id -g "$pg_user")" --init-groups -- "$@"
        else
            su -s /bin/sh "$pg_user" -c "$(printf '%q ' "$@")"
        fi
    }
else
    pg_user=$(id -un)
    as_pg() { "$@"; }
fi

# --- build first, so no compile overlaps a measurement -----------------------
say "building pg_peer and grpc_report (release)"
cargo build -q --release -p ledger-benches --features grpc,pg --bin pg_peer --bin grpc_report
target_dir=$(cargo metadata -q --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target_dir/release"

# --- the temp dir and its removal ----------------------------------------------
base=${LEDGER_BENCH_DIR:-${TMPDIR:-/tmp}}
work=$(mktemp -d "$base/ledger-pg-peer.XXXXXX")
data="$work/data"
cleanup() {
    local status=$?
    if [ -f "$data/postmaster.pid" ]; then
        as_pg "$pg_bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 ||
            as_pg "$pg_bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ "$(id -u)" -eq 0 ]; then
    chown "$pg_user" "$work"
    chmod 700 "$work"
fi
as_pg test -w "$work" || { say "$pg_user cannot write $work: set LEDGER_BENCH_DIR to a directory it can reach"; exit 1; }
results="$work/results.tsv"
touch "$results"

load() { cut -d' ' -f1-3 /proc/loadavg; }
pg_version=$("$pg_bin/postgres" --version)
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; memory $(free -g | awk '/^Mem:/ {print $2}') GiB; $pg_version"
echo "temp dir: $work (ours and PostgreSQL's data on the same file system)"
echo

# --- ours ------------------------------------------------------------------------
echo "## ours (load average before: $(load))"
echo
"$bin/grpc_report" --peer "${quick[@]}" --tsv "$results"
echo

# --- the throwaway PostgreSQL ----------------------------------------------------
as_pg "$pg_bin/initdb" -D "$data" -U bench --auth=trust -E UTF8 --locale=C >"$work/initdb.log" 2>&1 ||
    { cat "$work/initdb.log" >&2; exit 1; }
started=
for _ in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 40000))
    # Something already listening there: try another.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
    cat >"$data/postgresql.auto.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$work'
fsync = on
synchronous_commit = on
full_page_writes = on
# Only so that pg_peer can report the mean WAL sync time (pg_stat_wal).
track_wal_io_timing = on
EOF
    if as_pg "$pg_bin/pg_ctl" -D "$data" -l "$work/server.log" -w -t 60 start >/dev/null 2>&1; then
        started=1
        break
    fi
    grep -q 'could not bind' "$work/server.log" 2>/dev/null || break
done
[ -n "$started" ] || { say "PostgreSQL did not start:"; cat "$work/server.log" >&2; exit 1; }

echo "## PostgreSQL peer on 127.0.0.1:$port (load average before: $(load))"
echo
"$bin/pg_peer" --conn "host=127.0.0.1 port=$port user=bench dbname=postgres" \
    "${quick[@]}" "${peer_seconds[@]}" --tsv "$results"
as_pg "$pg_bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
echo
echo "load average after: $(load)"
echo

# --- the comparison ----------------------------------------------------------------
# results.tsv: system, workload, producers, events per request/transaction,
# events, seconds, events/s, p50 ms, p99 ms.
echo "## ours vs the PostgreSQL peer"
echo
awk -F'\t' '
    function k(r) { return r >= 10000 ? sprintf("%.1fk", r / 1000) : sprintf("%.0f", r) }
    function ratio(a, b, target) {
        if (b <= 0) return "–"
        return sprintf("%.1f× (%s)", a / b, a / b >= target ? "met" : "not met")
    }
    !($3 in seen) { seen[$3] = 1; order[++n] = $3 }
    $1 == "ours" { ours[$3] = $7 }
    $1 == "peer" && $2 == "batched" { batched[$3] = $7 }
    $1 == "peer" && $2 == "per-event" { single[$3] = $7 }
    END {
        print "| producers | ours: gRPC AppendStream, batches of 100 | PostgreSQL, 100-event transactions | ours ÷ batched (target ≥ 5×) | PostgreSQL, per-event transactions | ours ÷ per-event (target ≥ 50×) |"
        print "|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= n; i++) {
            p = order[i]
            printf "| %s | %s | %s | %s | %s | %s |\n", p, k(ours[p]), k(batched[p]), ratio(ours[p], batched[p], 5), k(single[p]), ratio(ours[p], single[p], 50)
        }
    }' "$results"
