//! The event-id index: event id → seq of every committed record, in memory
//! only for the most recent ids.
//!
//! Why not one map of every id: at 28–57 bytes per record it was most of
//! the server's memory after a few million events (0.6–1.1 GB per 20 M),
//! and it grows forever. Why not sled: one sled key per record capped the
//! indexer at 60–70 k records/s (BENCHMARKS.md). So a small log-structured
//! merge index of our own:
//!
//! - a **memtable** ([`IdMap`]) takes each group's ids after its fsync;
//! - when it holds `memtable_limit` ids it is **frozen** and replaced by an
//!   empty table, and a flusher thread writes the frozen one out, sorted, as
//!   a **run** file (`run.rs`): ~1.3 bytes per id stay in memory (a Bloom
//!   filter, block fences). The sort and write of a full table took the
//!   writer ~100 ms per flush when it did them itself; frozen, they stall
//!   nothing. Two tables are all the index allocates: the frozen one's,
//!   emptied, becomes the next spare;
//! - a **compactor** thread merges the newest two runs whenever the older
//!   is at most twice the newer, so there are about log2(records / limit)
//!   runs and a new id costs one filter probe per run.
//!
//! A lookup checks the runs oldest first, then the frozen table, then the
//! memtable, and returns
//! the first hit: an id's first record is its original (the writer never
//! records an id twice; only a damaged log could).
//!
//! Nothing here is durable. The directory is emptied and the index rebuilt
//! from the log by the open scan, which decodes every record anyway, so a
//! crash can leave no stale or half-written run behind that matters.
//!
//! Concurrency: one mutator at a time (the open scan, then the writer
//! thread), enforced by a mutex; readers take the state's read lock, and a
//! run being written is not visible until it replaces the frozen table.

use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, mpsc};
use std::thread::JoinHandle;

use super::run::Run;
use super::{IdKey, IdMap, KeyedHash};
use crate::error::{LedgerError, Result};

/// Default ids held in memory before a run is written: 7/8 of 2^18 slots,
/// so the memtable's table (~6.5 MiB; two of them, with the frozen one)
/// never grows.
pub(crate) const DEFAULT_MEMTABLE_IDS: usize = 229_376;

/// The index. See the module documentation.
#[derive(Debug)]
pub(crate) struct IdIndex {
    shared: Arc<Shared>,
    /// Serialises mutators (the open scan, then the writer).
    mutating: Mutex<()>,
    compactor: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
    flusher: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    key: KeyedHash,
    memtable_limit: usize,
    /// Run file names: a per-index random prefix, so a compactor of an
    /// earlier open of the same directory can never touch this one's files.
    file_prefix: u64,
    next_file: AtomicU64,
    state: RwLock<State>,
    /// Held while the frozen table is written out (by the flusher, or by
    /// the writer when it needs the slot and the flusher has not started).
    flushing: Mutex<()>,
}

#[derive(Debug)]
struct State {
    memtable: IdMap<u64>,
    /// A full memtable being written out as a run: older than `memtable`,
    /// newer than every run.
    frozen: Option<Arc<IdMap<u64>>>,
    /// The last frozen table once written out, emptied: the next memtable.
    spare: Option<IdMap<u64>>,
    /// Oldest first.
    runs: Vec<Arc<Run>>,
    /// A run that failed to write is retried once the memtable has grown
    /// by another `memtable_limit` ids (it keeps every id meanwhile).
    flush_at: usize,
}

/// Sizes of the event-id index ([`crate::Ledger::id_index_stats`]): what it
/// holds in memory and on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdIndexStats {
    /// Ids in memory: the memtable (written out at `id_memtable_ids`) and
    /// a frozen table being written out.
    pub memtable_ids: usize,
    /// Run files.
    pub runs: usize,
    /// Ids in run files.
    pub run_ids: usize,
    /// Memory the runs hold (Bloom filters and block fences), in bytes.
    pub run_memory_bytes: usize,
}

impl IdIndex {
    /// An empty index in `dir`, which is emptied first (whatever an earlier
    /// open left there is rebuilt from the log).
    pub(crate) fn create(dir: &Path, memtable_limit: usize) -> Result<IdIndex> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LedgerError::io(format!("emptying {}", dir.display()), e)),
        }
        std::fs::create_dir_all(dir).map_err(|e| LedgerError::io(format!("creating {}", dir.display()), e))?;
        let memtable_limit = memtable_limit.max(1);
        let key = KeyedHash::random();
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            key,
            memtable_limit,
            file_prefix: key.hash_one(IdKey([0x5a; 16])),
            next_file: AtomicU64::new(0),
            state: RwLock::new(State {
                memtable: IdMap::with_capacity(memtable_limit),
                frozen: None,
                spare: None,
                runs: Vec::new(),
                flush_at: memtable_limit,
            }),
            flushing: Mutex::new(()),
        });
        let (tx, rx) = mpsc::channel();
        let compactor_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ledger-id-compactor".to_string())
            .spawn(move || compact(&compactor_shared, &rx))
            .map_err(|e| LedgerError::io("spawning the id compactor thread", e))?;
        let (flush_tx, flush_rx) = mpsc::channel::<()>();
        let flusher_shared = Arc::clone(&shared);
        let wake_compactor = tx.clone();
        let flusher = std::thread::Builder::new()
            .name("ledger-id-flusher".to_string())
            .spawn(move || {
                while flush_rx.recv().is_ok() {
                    if flush_frozen(&flusher_shared) {
                        let _ = wake_compactor.send(());
                    }
                }
            })
            .map_err(|e| LedgerError::io("spawning the id flusher thread", e))?;
        Ok(IdIndex {
            shared,
            mutating: Mutex::new(()),
            compactor: Mutex::new(Some((tx, thread))),
            flusher: Mutex::new(Some((flush_tx, flusher))),
        })
    }

    /// A consistent view for lookups, held for as long as the caller needs
    /// one (the writer: one group's state checks).
    pub(crate) fn reader(&self) -> IdReader<'_> {
        IdReader {
            state: match self.shared.state.read() {
                Ok(state) => state,
                Err(poisoned) => poisoned.into_inner(),
            },
            key: &self.shared.key,
        }
    }

    /// Adds one id unless the memtable already holds it; returns the seq it
    /// already had there. For the open scan: it only notices a repeat
    /// within the memtable's window, which is enough to warn about a
    /// damaged log without a lookup per record.
    pub(crate) fn insert_first(&self, id: [u8; 16], seq: u64) -> Option<u64> {
        let _mutating = self.lock_mutating();
        let first = self.write_state().memtable.insert_first(id, seq);
        self.maybe_flush(0);
        first
    }

    /// Adds a committed group's ids (the writer, after the fsync).
    pub(crate) fn insert_all(&self, ids: impl Iterator<Item = ([u8; 16], u64)>) {
        let _mutating = self.lock_mutating();
        let incoming = ids.size_hint().0;
        // First, so that the group fits: a memtable that grew past its limit
        // by part of a group would double its table (the limit's default is
        // exactly 7/8 of a power-of-two bucket count, hashbrown's full load)
        // and, since `clear` keeps the allocation, stay doubled for good.
        self.maybe_flush(incoming);
        {
            let mut state = self.write_state();
            state.memtable.reserve(incoming);
            for (id, seq) in ids {
                state.memtable.insert(id, seq);
            }
        }
        self.maybe_flush(0);
    }

    /// Sizes now.
    pub(crate) fn stats(&self) -> IdIndexStats {
        let state = self.reader().state;
        IdIndexStats {
            memtable_ids: state.memtable.len() + state.frozen.as_ref().map_or(0, |frozen| frozen.len()),
            runs: state.runs.len(),
            run_ids: state.runs.iter().map(|run| run.count()).sum(),
            run_memory_bytes: state.runs.iter().map(|run| run.memory_bytes()).sum(),
        }
    }

    /// Stops the flusher and the compactor (an unfinished merge is
    /// abandoned; its file is removed with the directory at the next open;
    /// a frozen table not yet written out keeps answering lookups).
    pub(crate) fn close(&self) {
        let flusher = match self.flusher.lock() {
            Ok(mut flusher) => flusher.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some((tx, thread)) = flusher {
            drop(tx);
            let _ = thread.join();
        }
        let compactor = match self.compactor.lock() {
            Ok(mut compactor) => compactor.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some((tx, thread)) = compactor {
            drop(tx);
            let _ = thread.join();
        }
    }

    /// Waits until no flush or merge is pending (tests: deterministic
    /// counts).
    #[cfg(test)]
    pub(crate) fn settle(&self) {
        while self.reader().state.frozen.is_some() || pick_pair(&self.shared).is_some() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    fn lock_mutating(&self) -> std::sync::MutexGuard<'_, ()> {
        match self.mutating.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        match self.shared.state.write() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Freezes the memtable once it is full and hands it to the flusher.
    /// A previous frozen table still unwritten is written out first, here
    /// (it is rare: the flusher has a whole memtable's filling to do it).
    ///
    /// With `incoming` ids about to be added, it freezes a non-empty
    /// memtable they would take past the limit; with none, a full one.
    fn maybe_flush(&self, incoming: usize) {
        let full = {
            let state = self.reader().state;
            let len = state.memtable.len();
            if incoming == 0 {
                len >= state.flush_at
            } else {
                len > 0 && len + incoming > state.flush_at
            }
        };
        if !full {
            return;
        }
        if self.reader().state.frozen.is_some() && flush_frozen(&self.shared) {
            self.wake_compactor();
        }
        {
            let mut state = self.write_state();
            let fresh = state
                .spare
                .take()
                .unwrap_or_else(|| IdMap::with_capacity(self.shared.memtable_limit));
            let full = std::mem::replace(&mut state.memtable, fresh);
            state.frozen = Some(Arc::new(full));
            state.flush_at = self.shared.memtable_limit;
        }
        let handed = match self.flusher.lock() {
            Ok(flusher) => flusher.as_ref().is_some_and(|(tx, _)| tx.send(()).is_ok()),
            Err(_) => false,
        };
        if !handed && flush_frozen(&self.shared) {
            self.wake_compactor();
        }
    }

    fn wake_compactor(&self) {
        if let Ok(compactor) = self.compactor.lock()
            && let Some((tx, _)) = compactor.as_ref()
        {
            let _ = tx.send(());
        }
    }
}

/// Writes the frozen table out as a run and makes the run replace it, in
/// one write-locked step (lookups see its ids throughout); its emptied
/// table becomes the spare. If the run cannot be written, the ids go back
/// into the memtable, and the next flush is tried once it has grown by
/// another `memtable_limit` ids. True when a run was added.
fn flush_frozen(shared: &Shared) -> bool {
    let _flushing = match shared.flushing.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    let frozen = match shared.state.read() {
        Ok(state) => state.frozen.clone(),
        Err(poisoned) => poisoned.into_inner().frozen.clone(),
    };
    let Some(frozen) = frozen else { return false };
    let mut entries: Vec<([u8; 16], u64)> = frozen.iter().collect();
    entries.sort_unstable();
    let path = shared.new_path();
    let written = Run::write(path.clone(), &entries, &shared.key);
    let mut state = match shared.state.write() {
        Ok(state) => state,
        Err(poisoned) => poisoned.into_inner(),
    };
    state.frozen = None;
    let added = match written {
        Ok(run) => {
            state.runs.push(Arc::new(run));
            true
        }
        Err(err) => {
            let _ = std::fs::remove_file(&path);
            // The frozen ids are the older ones: they win over a repeat.
            for (id, seq) in entries {
                state.memtable.insert(id, seq);
            }
            state.flush_at = state.memtable.len() + shared.memtable_limit;
            tracing::warn!(error = %err, path = %path.display(), ids = frozen.len(), "could not write an id index run; keeping its ids in memory");
            false
        }
    };
    drop(state);
    // Readers reach the frozen table only through the state, so this is
    // now the last reference: its allocation is the next memtable's.
    if let Ok(mut table) = Arc::try_unwrap(frozen) {
        table.clear();
        let mut state = match shared.state.write() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        if state.spare.is_none() && table.capacity() >= shared.memtable_limit {
            state.spare = Some(table);
        }
    }
    added
}

impl Drop for IdIndex {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    fn new_path(&self) -> PathBuf {
        let n = self.next_file.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{:016x}-{n:08}.run", self.file_prefix))
    }
}

/// A read-locked view of the index.
pub(crate) struct IdReader<'a> {
    state: RwLockReadGuard<'a, State>,
    key: &'a KeyedHash,
}

impl IdReader<'_> {
    /// The seq of `id`'s record, if it has one.
    pub(crate) fn get(&self, id: &[u8; 16]) -> Result<Option<u64>> {
        if !self.state.runs.is_empty() {
            let hash = self.key.hash_one(IdKey(*id));
            for run in &self.state.runs {
                let found = run
                    .get(hash, id)
                    .map_err(|e| LedgerError::io(format!("reading the id index run {}", run.path().display()), e))?;
                if found.is_some() {
                    return Ok(found);
                }
            }
        }
        if let Some(seq) = self.state.frozen.as_ref().and_then(|frozen| frozen.get(id)) {
            return Ok(Some(seq));
        }
        Ok(self.state.memtable.get(id))
    }
}

/// The newest adjacent pair of runs to merge: the older at most twice the
/// newer, which keeps run sizes falling geometrically from oldest to newest.
fn pick_pair(shared: &Shared) -> Option<(Arc<Run>, Arc<Run>)> {
    let state = match shared.state.read() {
        Ok(state) => state,
        Err(poisoned) => poisoned.into_inner(),
    };
    state
        .runs
        .windows(2)
        .rev()
        .find(|pair| pair[0].count() <= 2 * pair[1].count())
        .map(|pair| (Arc::clone(&pair[0]), Arc::clone(&pair[1])))
}

/// The compactor thread: merges until no pair qualifies, then waits for the
/// next run; stops when the index is closed.
fn compact(shared: &Shared, wake: &mpsc::Receiver<()>) {
    while wake.recv().is_ok() {
        while wake.try_recv().is_ok() {}
        while let Some((older, newer)) = pick_pair(shared) {
            let path = shared.new_path();
            let merged = match Run::merge(&older, &newer, path.clone(), &shared.key) {
                Ok(merged) => merged,
                Err(err) => {
                    let _ = std::fs::remove_file(&path);
                    tracing::warn!(error = %err, "could not merge id index runs; lookups stay correct, only slower");
                    break;
                }
            };
            // Lookups read through the runs' open handles, and only this
            // thread opens run files by name: the names can go first.
            let _ = std::fs::remove_file(older.path());
            let _ = std::fs::remove_file(newer.path());
            {
                let mut state = match shared.state.write() {
                    Ok(state) => state,
                    Err(poisoned) => poisoned.into_inner(),
                };
                // Only the compactor removes runs, so the pair is still
                // there and adjacent; new runs only arrive after it.
                if let Some(at) = state.runs.iter().position(|run| Arc::ptr_eq(run, &older))
                    && state.runs.get(at + 1).is_some_and(|run| Arc::ptr_eq(run, &newer))
                {
                    state.runs.splice(at..at + 2, [Arc::new(merged)]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ids::test_id as id;

    #[test]
    fn finds_every_id_across_memtable_runs_and_merges() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| LedgerError::io("tempdir", e))?;
        let index = IdIndex::create(&dir.path().join("ids"), 100)?;
        for group in 0..50u64 {
            index.insert_all((group * 64..(group + 1) * 64).map(|n| (id(n), n)));
        }
        index.settle();
        let stats = index.stats();
        assert_eq!(stats.memtable_ids + stats.run_ids, 3200);
        assert!(stats.memtable_ids < 100, "{stats:?}");
        // 3,200 ids in runs of >= 100: merged down to a few, not 30.
        assert!(stats.runs <= 6, "{stats:?}");
        let reader = index.reader();
        for n in 0..3200 {
            assert_eq!(reader.get(&id(n))?, Some(n), "id {n}");
        }
        for n in 3200..6400 {
            assert_eq!(reader.get(&id(n))?, None, "id {n}");
        }
        drop(reader);
        // Only live runs have files.
        let files = std::fs::read_dir(dir.path().join("ids"))
            .map_err(|e| LedgerError::io("listing", e))?
            .count();
        assert_eq!(files, stats.runs);
        Ok(())
    }

    #[test]
    fn a_group_that_would_overfill_the_memtable_flushes_it_first() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| LedgerError::io("tempdir", e))?;
        let index = IdIndex::create(&dir.path().join("ids"), 100)?;
        index.insert_all((0..64).map(|n| (id(n), n)));
        index.settle();
        assert_eq!((index.stats().memtable_ids, index.stats().runs), (64, 0));
        // 64 + 64 > 100: the first 64 go to a run before the group is added,
        // so the memtable never holds more than its limit.
        index.insert_all((64..128).map(|n| (id(n), n)));
        index.settle();
        let stats = index.stats();
        assert_eq!(
            (stats.memtable_ids, stats.runs, stats.run_ids),
            (64, 1, 64),
            "{stats:?}"
        );
        // A group that fits exactly fills it and is flushed after.
        index.insert_all((128..164).map(|n| (id(n), n)));
        index.settle();
        let stats = index.stats();
        assert_eq!((stats.memtable_ids, stats.run_ids), (0, 164), "{stats:?}");
        // A group larger than the limit still goes in whole.
        index.insert_all((164..464).map(|n| (id(n), n)));
        index.settle();
        assert_eq!(index.stats().memtable_ids + index.stats().run_ids, 464);
        for n in [0, 63, 64, 127, 128, 163, 164, 463] {
            assert_eq!(index.reader().get(&id(n))?, Some(n));
        }
        Ok(())
    }

    #[test]
    fn a_frozen_table_answers_lookups_until_its_run_replaces_it() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| LedgerError::io("tempdir", e))?;
        let index = IdIndex::create(&dir.path().join("ids"), 100)?;
        // Holding the flush lock keeps the flusher from writing the run.
        let flushing = index.shared.flushing.lock().map_err(|_| LedgerError::Closed)?;
        index.insert_all((0..100).map(|n| (id(n), n)));
        index.insert_all((100..150).map(|n| (id(n), n)));
        let stats = index.stats();
        assert_eq!((stats.memtable_ids, stats.runs), (150, 0), "{stats:?}");
        assert!(index.reader().state.frozen.is_some());
        for n in 0..150 {
            assert_eq!(index.reader().get(&id(n))?, Some(n), "id {n}");
        }
        drop(flushing);
        index.settle();
        let stats = index.stats();
        assert_eq!(
            (stats.memtable_ids, stats.runs, stats.run_ids),
            (50, 1, 100),
            "{stats:?}"
        );
        // The written table, emptied, is the spare the next freeze takes.
        assert!(index.reader().state.spare.is_some());
        index.insert_all((150..200).map(|n| (id(n), n)));
        // Two freezes in a row: the second writes the first out itself if
        // the flusher has not.
        index.insert_all((200..400).map(|n| (id(n), n)));
        index.settle();
        for n in 0..400 {
            assert_eq!(index.reader().get(&id(n))?, Some(n), "id {n}");
        }
        assert_eq!(index.stats().memtable_ids + index.stats().run_ids, 400);
        Ok(())
    }

    #[test]
    fn keeps_the_first_seq_of_a_repeated_id() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| LedgerError::io("tempdir", e))?;
        let index = IdIndex::create(&dir.path().join("ids"), 10)?;
        assert_eq!(index.insert_first(id(1), 1), None);
        assert_eq!(
            index.insert_first(id(1), 2),
            Some(1),
            "a repeat within the memtable is noticed"
        );
        for n in 2..30 {
            index.insert_first(id(n), n);
        }
        // id 1 is now in a run; a later record of it lands in the memtable.
        index.insert_all([(id(1), 99)].into_iter());
        index.settle();
        assert_eq!(index.reader().get(&id(1))?, Some(1));
        Ok(())
    }

    #[test]
    fn a_second_open_starts_empty() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| LedgerError::io("tempdir", e))?;
        let path = dir.path().join("ids");
        let first = IdIndex::create(&path, 4)?;
        first.insert_all((0..40).map(|n| (id(n), n)));
        first.close();
        drop(first);
        let second = IdIndex::create(&path, 4)?;
        assert_eq!(second.reader().get(&id(3))?, None);
        assert_eq!(second.stats().runs, 0);
        Ok(())
    }

    #[test]
    fn a_run_that_cannot_be_written_keeps_its_ids_in_memory() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| LedgerError::io("tempdir", e))?;
        let path = dir.path().join("ids");
        let index = IdIndex::create(&path, 8)?;
        std::fs::remove_dir_all(&path).map_err(|e| LedgerError::io("removing", e))?;
        index.insert_all((0..20).map(|n| (id(n), n)));
        index.settle();
        let stats = index.stats();
        assert_eq!((stats.memtable_ids, stats.runs), (20, 0));
        for n in 0..20 {
            assert_eq!(index.reader().get(&id(n))?, Some(n));
        }
        // Once the directory is back, the next flush writes them all.
        std::fs::create_dir_all(&path).map_err(|e| LedgerError::io("creating", e))?;
        index.insert_all((20..30).map(|n| (id(n), n)));
        index.settle();
        assert_eq!(index.stats().memtable_ids, 0);
        for n in 0..30 {
            assert_eq!(index.reader().get(&id(n))?, Some(n));
        }
        Ok(())
    }
}
