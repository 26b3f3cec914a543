//! Allocator settings for `ledgerd serve`, applied before any thread starts.
//!
//! glibc's malloc gives threads that allocate at the same time arenas of
//! their own, up to eight per core, and an arena hands memory back to the
//! kernel only from its top. ledgerd runs more threads than cores (the
//! runtime's workers, the group-commit writer, the indexer, the id-index
//! compactor, a fold thread per projection and the projection store
//! writer), each passing batches of records through, so most of them end up
//! holding an arena with a high-water mark of its own. Capping the arenas
//! at two cut the peak RSS of a 2 M-event ingest by a third at the same
//! throughput within noise (BENCHMARKS.md, "RSS while ingesting 10 M
//! events"). An operator's own `MALLOC_ARENA_MAX` wins: glibc reads it at
//! start, and this then leaves the setting alone.

/// The arena cap, unless `MALLOC_ARENA_MAX` is set.
pub const DEFAULT_MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at `arenas` unless the environment already
/// does. Must run before the process starts threads: a thread that has
/// already allocated keeps the arena it has. Returns the cap set, if any.
pub fn limit_malloc_arenas(arenas: i32) -> Option<i32> {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return None;
    }
    set_arena_max(arenas).then_some(arenas)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(arenas: i32) -> bool {
    // SAFETY: `mallopt` takes two integers and changes a malloc tunable;
    // glibc serialises it against allocation. No pointer crosses the call.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_arenas: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_arena_cap() {
        // The test binary may already run many threads; mallopt still
        // accepts the value (it bounds arenas created from now on).
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            assert_eq!(limit_malloc_arenas(4), Some(4));
        }
        assert!(set_arena_max(DEFAULT_MALLOC_ARENAS));
    }
}
