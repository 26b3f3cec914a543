//! `ledgerd`: the evidence ledger daemon (see `ledger_server::cli`).

/// mimalloc, not glibc's malloc. ledgerd runs more threads than cores (the
/// runtime's workers, the group-commit writer, the indexer, a fold thread
/// per projection, the projection store writer), and records allocated on
/// one thread are freed on another. glibc gives such threads arenas of
/// their own, each with a high-water mark it hands back only from its top:
/// capped at two arenas (what ledgerd did before) a 10 M-record catch-up
/// of the four built-ins cost 5.18 µs of CPU per record and peaked at
/// 676 MiB; uncapped 4.13 µs and 912 MiB. mimalloc's thread-free lists and
/// page purging did it in 3.88 µs and 639 MiB, and held a 10 M-event ingest
/// at 217-224 MB RSS against glibc's 207 MB (BENCHMARKS.md, "Projection
/// replay", session 14).
///
/// Without transparent huge pages on its arenas (the workspace's `no_thp`
/// feature): with them the same ingest peaked at 257 MB. On a machine whose
/// THP mode is `always` rather than `madvise`, `MIMALLOC_ALLOW_THP=0` in
/// the environment turns them off for the process.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    ledger_server::cli::main()
}
