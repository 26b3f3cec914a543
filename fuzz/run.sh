#!/usr/bin/env bash
# Builds the libFuzzer targets on the stable toolchain (the coverage
# instrumentation cargo-fuzz asks rustc for is all stable `-C` options; only
# its sanitizers need nightly) and runs each for a while.
#
#   fuzz/run.sh [SECONDS per target, default 60] [TARGET...]
#
# New inputs go to $FUZZ_WORK (default /tmp/ledger-fuzz), never into the
# checked-in seed corpus; a crash leaves its input there and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(bundle checkpoint)
work=${FUZZ_WORK:-/tmp/ledger-fuzz}
triple=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps RUSTFLAGS off the build scripts, as cargo-fuzz does.
cargo build --release --bins --target "$triple"
for target in "${targets[@]}"; do
    mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
    echo "== fuzzing $target for ${seconds}s"
    "$CARGO_TARGET_DIR/$triple/release/$target" "$work/$target/corpus" "corpus/$target" \
        -max_total_time="$seconds" -rss_limit_mb=2048 \
        -artifact_prefix="$work/$target/artifacts/" -print_final_stats=1
done
