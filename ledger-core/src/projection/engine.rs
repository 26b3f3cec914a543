//! The projection engine: folds the log into every registered projection,
//! persists their state to sled atomically with the seq it reflects, follows
//! the log live, replays, digests and time-travels.
//!
//! Storage (a sled database of its own, all of it rebuildable):
//! - tree `meta`: projection name → `{"version": v, "generation": g,
//!   "layout": 2}`;
//! - tree `p/<name>/<g>`: the projection's entries (as its `take_changes`
//!   wrote them), packed into pages of consecutive keys (`pages`), plus
//!   engine keys under the `0xFF` prefix: the applied length (`0xFF
//!   "applied"`, u64 big-endian: records 0..applied are folded) and faults
//!   (`0xFF "fault" ‖ seq`, the reason). Every flush is one sled batch, so
//!   state and position never disagree after a crash.
//!
//! A replay folds a `fresh()` instance into generation g+1 while the live
//! state keeps serving; only when it has caught up with the log is it
//! swapped in and `meta` switched, in that order. A crash mid-replay leaves
//! `meta` on generation g; stray generations are dropped on open.
//!
//! Time travel folds a `fresh()` instance the same way, bounded by the same
//! resident budget, into a scratch file of its own under `scratch/` (see
//! `scratch`), which goes when the returned state is dropped; what a crash
//! leaves there is removed on open.
//!
//! Appends never wait on projections: the engine runs on its own thread and
//! reports its lag. Far behind the log (after open, a version bump, a new
//! projection) it catches up in rounds, every projection folding on a
//! thread of its own from one reader (`pipeline`) and flushing once per
//! round; within a chunk of the log it folds chunk by chunk. A round's
//! flush only serialises the changed rows: the sled batch is applied by a
//! store writer thread while the folds go on with the next round (sled
//! applies batches one at a time anyway); synchronous flushes, digests and
//! replays wait for a slot's queued batches first.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::pages::{self, PageError, PageIndex, PagedTree};
use super::pipeline::{CHUNK_RECORDS, SendFold, fold_range};
use super::{Changes, Effects, Fault, Projection, RowStore, scratch};
use crate::error::LedgerError;
use crate::event::{AppendRequest, timestamp_ns};
use crate::ledger::Ledger;
use crate::record::Record;

/// Records read from the log per fold step while following it live.
const CHUNK: usize = CHUNK_RECORDS;
/// Records folded between flushes while following the log and replaying.
const FLUSH_RECORDS: u64 = 65_536;
/// Further behind the log than this, the engine catches up in rounds:
/// every projection folds on a thread of its own while the log is read
/// (see `pipeline`), and flushes once per round.
const CATCH_UP_LAG: u64 = CHUNK as u64;
/// Records folded per catch-up round, between flushes. A bigger round
/// writes a row changed many times once, and a crash only loses the
/// round's folding, redone from the stored position; the rows it changes
/// stay in memory until its flush, on top of the resident bound.
const CATCH_UP_ROUND: u64 = 262_144;
/// Longest a folded record stays unpersisted while the log is live.
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// How often an idle engine looks for a stop request.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// After the log grows, how long the engine lets more commits gather before
/// folding. Under a trickle of small commits (unary appends) it would
/// otherwise wake, read and fold once per commit, thousands of times a
/// second, taking the cores the append path's acknowledgements need; views
/// lag the log by this much more.
const LIVE_LINGER: Duration = Duration::from_millis(5);
/// Faults kept in memory for status (all are stored).
const RECENT_FAULTS: usize = 16;
/// Batches queued for the store writer (see [`WriteJob`]) before a
/// catch-up fold waits for it: bounds the serialised rows held in memory.
const WRITE_QUEUE: usize = 2;

/// How often sled makes the projection store durable. Everything in it is
/// rebuilt from the log (a crash loses at most this much folding, redone
/// from the stored position), while each sync competes with the log's own
/// fsyncs for the disk, which acknowledgements wait on.
const PROJECTION_STORE_FSYNC_MS: u64 = 5_000;

/// Page cache of the projection store's sled database. 16 MiB rather than
/// 64: with rows packed into 8 KiB pages every flush rewrites whole pages,
/// and a 64 MiB cache filled up during a 10 M-event ingest, 28 MiB more
/// peak RSS for no measured gain (BENCHMARKS.md, "RSS while ingesting
/// 10 M events").
const PROJECTION_STORE_CACHE: u64 = 16 * 1024 * 1024;

/// Layout of a generation's tree: 2 packs the entries into pages
/// (`pages`), 1 (no `layout` in `meta`) stored one sled entry per row. A
/// generation of another layout is rebuilt from the log.
const STORE_LAYOUT: u32 = 2;

/// Default of [`ProjectionsConfig::resident_bytes`]: 16 MiB per
/// projection, 64 MiB for the four built-ins.
pub const DEFAULT_RESIDENT_BYTES: usize = 16 * 1024 * 1024;

/// Default of [`ProjectionsConfig::round_bytes`]: 16 MiB per projection.
pub const DEFAULT_ROUND_BYTES: usize = 16 * 1024 * 1024;

/// How the engine runs its projections.
#[derive(Clone, Debug)]
pub struct ProjectionsConfig {
    /// Rows each projection keeps in memory, in bytes (their stored size
    /// plus a fixed overhead per row), once its changes are stored: the
    /// least recently used beyond it are evicted after a flush and read
    /// back from the store when needed (see [`super::Table`]). Rows
    /// changed since the last flush always stay, so a catch-up round's
    /// changes come on top. Projections that list no tables
    /// ([`Projection::cached`]) keep everything.
    pub resident_bytes: usize,
    /// How far a catch-up round may grow a projection's resident rows (the
    /// rows it changes, which stay until flushed, and those it reads back
    /// from the store), in bytes, before that projection flushes early.
    /// A round otherwise ends after a fixed number of records, so what it
    /// holds would grow with the rows those records touch: with the state's
    /// size (more distinct rows per round as the log grows) and with the
    /// rows' own size. This bounds it: a projection holds at most about
    /// `resident_bytes + 2 × round_bytes` of rows, and one flush's store
    /// batch is at most about `round_bytes` of changes.
    pub round_bytes: usize,
}

impl Default for ProjectionsConfig {
    fn default() -> Self {
        ProjectionsConfig {
            resident_bytes: DEFAULT_RESIDENT_BYTES,
            round_bytes: DEFAULT_ROUND_BYTES,
        }
    }
}

const META_TREE: &str = "meta";
const ENGINE_PREFIX: u8 = 0xFF;
const APPLIED_KEY: &[u8] = b"\xFFapplied";
const FAULT_PREFIX: &[u8] = b"\xFFfault";

/// Why a projection operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// Reading the log failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The projection store failed.
    #[error("projection store: {0}")]
    Store(String),
    /// No projection of that name is registered.
    #[error("unknown projection {0:?}")]
    Unknown(String),
    /// A projection of that name is already registered.
    #[error("projection {0:?} is already registered")]
    Duplicate(String),
    /// A replay of that projection is already running.
    #[error("projection {0:?} is already replaying")]
    ReplayRunning(String),
    /// A projection's changes could not be serialised.
    #[error("projection {name:?}: {fault}")]
    Fault {
        /// Which projection.
        name: String,
        /// What it reported.
        fault: Fault,
    },
    /// Time travel to a seq the log does not hold yet.
    #[error("seq {seq} is beyond the log, which holds {len} records")]
    BeyondLog {
        /// Requested seq.
        seq: u64,
        /// Log length.
        len: u64,
    },
    /// A query names an unknown view or a bad filter.
    #[error("{field}: {reason}")]
    InvalidQuery {
        /// The request field or filter key.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A query for one thing found nothing.
    #[error("{0} not found")]
    NotFound(String),
    /// The engine has stopped.
    #[error("the projection engine is stopped")]
    Stopped,
}

/// Projection results.
pub type Result<T, E = ProjectionError> = std::result::Result<T, E>;

fn store_err(e: sled::Error) -> ProjectionError {
    ProjectionError::Store(e.to_string())
}

fn page_err(e: PageError) -> ProjectionError {
    ProjectionError::Store(e.to_string())
}

/// What the engine reports about one projection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProjectionStatus {
    /// Projection name.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// Records folded: seqs `0..applied`.
    pub applied: u64,
    /// Records committed to the log.
    pub log_len: u64,
    /// `log_len - applied`.
    pub lag: u64,
    /// Records that faulted (counted, listed, skipped).
    pub faults: u64,
    /// The latest faults: (seq, reason).
    pub recent_faults: Vec<(u64, String)>,
    /// Storage generation (bumped by every replay).
    pub generation: u64,
    /// Progress of a running replay.
    pub replay: Option<ReplayProgress>,
}

/// Progress of a replay.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplayProgress {
    /// Records folded so far.
    pub done: u64,
    /// Records to fold (the log length when last checked).
    pub total: u64,
    /// Records per second so far.
    pub rate: f64,
}

impl Eq for ReplayProgress {}

/// What a finished replay did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplayOutcome {
    /// Records folded.
    pub records: u64,
    /// Faults met.
    pub faults: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// The new state's digest.
    pub digest: StateDigest,
}

/// A digest of a projection's canonical state at a log length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDigest {
    /// Projection name.
    pub name: String,
    /// Records folded into the state.
    pub applied: u64,
    /// BLAKE3 over the stored entries (hex), see [`digest_entries`].
    pub digest: String,
    /// Number of stored entries.
    pub entries: u64,
}

/// BLAKE3 over entries in key order: for each, `u32 LE key length ‖ key ‖
/// u32 LE value length ‖ value`, prefixed by the domain tag
/// `evidence-ledger/projection-digest/v1\n`. Engine keys (0xFF prefix) are
/// not state and are skipped.
pub fn digest_entries<'a>(entries: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> (String, u64) {
    let mut digest = Digester::new();
    for (key, value) in entries {
        digest.add(key, value);
    }
    digest.finish()
}

/// [`digest_entries`] fed one entry at a time, so that a stored state can
/// be digested as it is read.
struct Digester {
    hasher: blake3::Hasher,
    entries: u64,
}

impl Digester {
    fn new() -> Digester {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"evidence-ledger/projection-digest/v1\n");
        Digester { hasher, entries: 0 }
    }

    /// Adds the next entry in key order (engine keys are skipped).
    fn add(&mut self, key: &[u8], value: &[u8]) {
        if key.first() == Some(&ENGINE_PREFIX) {
            return;
        }
        self.hasher.update(&(key.len() as u32).to_le_bytes());
        self.hasher.update(key);
        self.hasher.update(&(value.len() as u32).to_le_bytes());
        self.hasher.update(value);
        self.entries += 1;
    }

    fn finish(self) -> (String, u64) {
        (self.hasher.finalize().to_hex().to_string(), self.entries)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    version: u32,
    generation: u64,
    /// How the generation's tree is laid out ([`STORE_LAYOUT`]); absent
    /// in stores written before pages, which are rebuilt.
    #[serde(default)]
    layout: u32,
}

fn tree_name(name: &str, generation: u64) -> String {
    format!("p/{name}/{generation}")
}

fn fault_key(seq: u64) -> Vec<u8> {
    let mut key = FAULT_PREFIX.to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Position and bookkeeping of one projection's live state.
#[derive(Debug)]
struct Position {
    applied: u64,
    faults: u64,
    recent_faults: Vec<(u64, String)>,
    /// Faults met since the last flush, to store with it.
    unflushed_faults: Vec<(u64, String)>,
    generation: u64,
    tree: Arc<PagedTree>,
    /// Records folded since the last flush.
    unflushed: u64,
    /// The state's resident bytes after the last fold step, and right
    /// after the last catch-up flush took its changes: their difference is
    /// what the round has added since (see [`ProjectionsConfig::round_bytes`]).
    resident: usize,
    resident_at_flush: usize,
    /// The last flush's changes as (entries, bytes of keys and values):
    /// the next flush's buffer is sized from it (see [`build_batch`]).
    last_flush: (usize, usize),
    replay: Option<ReplayProgress>,
}

/// One registered projection: its live state and where it stands.
struct Slot<P> {
    name: &'static str,
    version: u32,
    db: sled::Db,
    state: RwLock<P>,
    position: Mutex<Position>,
    replaying: AtomicBool,
    /// Its batches queued for the store writer, not yet applied.
    writes: Arc<Writes>,
    /// [`ProjectionsConfig::resident_bytes`].
    resident_bytes: usize,
    /// [`ProjectionsConfig::round_bytes`].
    round_bytes: usize,
}

/// A batch handed to the store writer thread: the changed rows, faults
/// and `applied` of one flush, applied to `tree` as one sled batch, so
/// the stored state is still always exactly records `0..applied`. Only
/// the catch-up rounds write this way: sled applies batches one at a time
/// (a process-wide lock), so the projections' end-of-round flushes ran one
/// after the other while the folds waited; the writer applies them while
/// the folds go on with the next round.
struct WriteJob {
    name: &'static str,
    tree: Arc<PagedTree>,
    batch: Batch,
    writes: Arc<Writes>,
}

/// What one flush writes: the changed rows (packed into pages when
/// applied) and the engine keys (faults, `applied`).
struct Batch {
    changes: Changes,
    engine: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Batch {
    fn apply(self, tree: &PagedTree) -> Result<()> {
        tree.apply(&self.changes, self.engine).map_err(page_err)
    }
}

/// One slot's batches in the writer's queue.
#[derive(Debug, Default)]
struct Writes {
    state: Mutex<WritesState>,
    applied: Condvar,
}

#[derive(Debug, Default)]
struct WritesState {
    queued: u64,
    /// A queued batch that failed, reported by the next synchronous flush.
    failed: Option<String>,
}

impl Writes {
    fn queue(&self) -> Result<()> {
        self.state.lock().map_err(|_| poisoned())?.queued += 1;
        Ok(())
    }

    fn done(&self, outcome: std::result::Result<(), String>) {
        if let Ok(mut state) = self.state.lock() {
            state.queued = state.queued.saturating_sub(1);
            if let Err(err) = outcome {
                state.failed = Some(err);
            }
        }
        self.applied.notify_all();
    }

    /// Waits until every queued batch is applied; the first failure since
    /// the last wait is the error.
    fn wait(&self) -> Result<()> {
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        while state.queued > 0 {
            state = self.applied.wait(state).map_err(|_| poisoned())?;
        }
        match state.failed.take() {
            Some(err) => Err(ProjectionError::Store(err)),
            None => Ok(()),
        }
    }
}

/// The store writer thread: applies queued batches in order until every
/// sender is gone.
fn run_writer(jobs: &Receiver<WriteJob>) {
    for job in jobs {
        let outcome = job.batch.apply(&job.tree).map_err(|e| e.to_string());
        if let Err(err) = &outcome {
            tracing::error!(projection = job.name, error = %err, "persisting projection state failed");
        }
        job.writes.done(outcome);
    }
}

fn poisoned() -> ProjectionError {
    ProjectionError::Store("projection lock poisoned".to_string())
}

impl<P: Projection> Slot<P> {
    fn lock_position(&self) -> Result<std::sync::MutexGuard<'_, Position>> {
        self.position.lock().map_err(|_| poisoned())
    }

    /// Folds the records this projection has not applied yet.
    fn fold(&self, records: &[Record], effects: &mut Effects) -> Result<()> {
        let mut state = self.state.write().map_err(|_| poisoned())?;
        let mut position = self.lock_position()?;
        fold_into(&mut *state, &mut position, records, effects);
        position.resident = resident_of(&mut *state);
        Ok(())
    }

    /// Whether the rows this catch-up round added since its last flush
    /// have reached [`ProjectionsConfig::round_bytes`].
    fn round_full(&self) -> bool {
        self.position
            .lock()
            .is_ok_and(|p| p.resident.saturating_sub(p.resident_at_flush) >= self.round_bytes)
    }

    /// Writes the changed entries, the faults and the position in one
    /// batch, after any batch still queued for the writer.
    fn flush(&self) -> Result<()> {
        let mut state = self.state.write().map_err(|_| poisoned())?;
        let mut position = self.lock_position()?;
        self.writes.wait()?;
        write_batch(self.name, &mut *state, &mut position)?;
        evict(&mut *state, self.resident_bytes);
        Ok(())
    }

    /// [`Slot::flush`], the batch applied by the writer thread behind
    /// `writer` while this thread goes on.
    fn flush_behind(&self, writer: &SyncSender<WriteJob>) -> Result<()> {
        let job = {
            let mut state = self.state.write().map_err(|_| poisoned())?;
            let mut position = self.lock_position()?;
            // Rows may only be evicted once their writes are stored: wait
            // for the previous round's batch (applied while this round
            // folded), evict what is clean, then hand over this round's.
            self.writes.wait()?;
            evict(&mut *state, self.resident_bytes);
            let batch = build_batch(self.name, &mut *state, &mut position)?;
            position.resident = resident_of(&mut *state);
            position.resident_at_flush = position.resident;
            let Some(batch) = batch else {
                return Ok(());
            };
            // Counted before the locks are released, so a synchronous
            // flush or a digest taken meanwhile waits for it.
            self.writes.queue()?;
            WriteJob {
                name: self.name,
                tree: position.tree.clone(),
                batch,
                writes: Arc::clone(&self.writes),
            }
        };
        if let Err(std::sync::mpsc::SendError(job)) = writer.send(job) {
            // No writer (the engine is going away): apply it here.
            let outcome = job.batch.apply(&job.tree).map_err(|e| e.to_string());
            job.writes.done(outcome);
        }
        Ok(())
    }
}

fn note_fault(position: &mut Position, seq: u64, fault: Fault) {
    position.faults += 1;
    position.unflushed_faults.push((seq, fault.0.clone()));
    position.recent_faults.push((seq, fault.0));
    if position.recent_faults.len() > RECENT_FAULTS {
        position.recent_faults.remove(0);
    }
}

/// Backs the tables of `state` with `tree`.
fn attach<P: Projection>(state: &mut P, tree: &Arc<PagedTree>) {
    attach_to(state, &RowStore::new(Arc::clone(tree)));
}

fn attach_to<P: Projection>(state: &mut P, store: &RowStore) {
    for table in state.cached() {
        table.attach(store);
    }
}

/// The bytes of rows `state` holds in memory (see [`Cached::resident_bytes`]).
fn resident_of<P: Projection>(state: &mut P) -> usize {
    state.cached().iter().map(|table| table.resident_bytes()).sum()
}

/// Evicts rows of `state` beyond `budget` bytes, every table down to its
/// share of three quarters of it (so that the next eviction is some rows
/// away). Only call it when every batch taken from `state` is applied.
fn evict<P: Projection>(state: &mut P, budget: usize) {
    let mut tables = state.cached();
    let total: usize = tables.iter().map(|table| table.resident_bytes()).sum();
    let keep = if total <= budget { None } else { Some(budget / 4 * 3) };
    for table in &mut tables {
        let target = match keep {
            // Every call ages the rows, whether or not any go.
            None => usize::MAX,
            Some(keep) => (table.resident_bytes() as u128 * keep as u128 / total.max(1) as u128) as usize,
        };
        table.evict_to(target);
    }
}

fn write_batch<P: Projection>(name: &str, state: &mut P, position: &mut Position) -> Result<()> {
    if let Some(batch) = build_batch(name, state, position)? {
        batch.apply(&position.tree)?;
    }
    Ok(())
}

/// The batch of everything changed since the last flush (rows, faults and
/// the position), or `None` when nothing did. Counts it as flushed.
///
/// The changes' buffer is sized up front from the slot's last flush, an
/// eighth more: a catch-up's flushes are much alike, and grown by doubling
/// the buffer of a flush overshot by up to 2×, held until the store writer
/// applied it.
fn build_batch<P: Projection>(name: &str, state: &mut P, position: &mut Position) -> Result<Option<Batch>> {
    let (entries, bytes) = position.last_flush;
    let mut changes = Changes::with_capacity(entries + entries / 8, bytes + bytes / 8);
    state
        .take_changes(&mut changes)
        .map_err(|fault| ProjectionError::Fault {
            name: name.to_string(),
            fault,
        })?;
    position.last_flush = (changes.len(), changes.bytes());
    if changes.is_empty() && position.unflushed_faults.is_empty() && position.unflushed == 0 {
        return Ok(None);
    }
    let mut engine: Vec<(Vec<u8>, Vec<u8>)> = position
        .unflushed_faults
        .drain(..)
        .map(|(seq, reason)| (fault_key(seq), reason.into_bytes()))
        .collect();
    engine.push((APPLIED_KEY.to_vec(), position.applied.to_be_bytes().to_vec()));
    position.unflushed = 0;
    Ok(Some(Batch { changes, engine }))
}

/// What the engine thread needs of a slot, whatever its projection type.
trait ErasedSlot: Send + Sync {
    fn name(&self) -> &'static str;
    fn applied(&self) -> u64;
    fn unflushed(&self) -> u64;
    fn round_full(&self) -> bool;
    fn fold(&self, records: &[Record], effects: &mut Effects) -> Result<()>;
    fn flush(&self) -> Result<()>;
    fn flush_behind(&self, writer: &SyncSender<WriteJob>) -> Result<()>;
    fn status(&self, log_len: u64) -> Result<ProjectionStatus>;
    fn replay(
        &self,
        ledger: &Ledger,
        from_seq: u64,
        progress: &mut dyn FnMut(&ReplayProgress),
    ) -> Result<ReplayOutcome>;
    fn digest(&self) -> Result<StateDigest>;
    fn faults(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, String)>>;
}

impl<P: Projection> ErasedSlot for Slot<P> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn applied(&self) -> u64 {
        self.position.lock().map_or(0, |p| p.applied)
    }

    fn unflushed(&self) -> u64 {
        self.position.lock().map_or(0, |p| p.unflushed)
    }

    fn round_full(&self) -> bool {
        Slot::round_full(self)
    }

    fn fold(&self, records: &[Record], effects: &mut Effects) -> Result<()> {
        Slot::fold(self, records, effects)
    }

    fn flush(&self) -> Result<()> {
        Slot::flush(self)
    }

    fn flush_behind(&self, writer: &SyncSender<WriteJob>) -> Result<()> {
        Slot::flush_behind(self, writer)
    }

    fn status(&self, log_len: u64) -> Result<ProjectionStatus> {
        let position = self.lock_position()?;
        Ok(ProjectionStatus {
            name: self.name.to_string(),
            version: self.version,
            applied: position.applied,
            log_len,
            lag: log_len.saturating_sub(position.applied),
            faults: position.faults,
            recent_faults: position.recent_faults.clone(),
            generation: position.generation,
            replay: position.replay.clone(),
        })
    }

    fn replay(
        &self,
        ledger: &Ledger,
        from_seq: u64,
        progress: &mut dyn FnMut(&ReplayProgress),
    ) -> Result<ReplayOutcome> {
        if self.replaying.swap(true, Ordering::AcqRel) {
            return Err(ProjectionError::ReplayRunning(self.name.to_string()));
        }
        let outcome = self.replay_inner(ledger, from_seq, progress);
        if let Ok(mut position) = self.position.lock() {
            position.replay = None;
        }
        self.replaying.store(false, Ordering::Release);
        outcome
    }

    fn digest(&self) -> Result<StateDigest> {
        // Flush first: the stored entries are then exactly the state.
        let mut state = self.state.write().map_err(|_| poisoned())?;
        let mut position = self.lock_position()?;
        self.writes.wait()?;
        write_batch(self.name, &mut *state, &mut position)?;
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        pages::read_all(position.tree.tree(), |key, value| {
            entries.push((key.to_vec(), value.to_vec()));
            Ok(())
        })
        .map_err(page_err)?;
        let (digest, entries) = digest_entries(entries.iter().map(|(k, v)| (&k[..], &v[..])));
        Ok(StateDigest {
            name: self.name.to_string(),
            applied: position.applied,
            digest,
            entries,
        })
    }

    fn faults(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, String)>> {
        let tree = self.lock_position()?.tree.clone();
        self.writes.wait()?;
        let mut out = Vec::new();
        for entry in tree.tree().range(fault_key(from_seq)..) {
            let (key, value) = entry.map_err(store_err)?;
            let Some(seq) = key.strip_prefix(FAULT_PREFIX) else {
                break;
            };
            let Ok(seq) = <[u8; 8]>::try_from(seq) else { break };
            out.push((u64::from_be_bytes(seq), String::from_utf8_lossy(&value).into_owned()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

impl<P: Projection> Slot<P> {
    fn replay_inner(
        &self,
        ledger: &Ledger,
        from_seq: u64,
        progress: &mut dyn FnMut(&ReplayProgress),
    ) -> Result<ReplayOutcome> {
        let started = Instant::now();
        let fresh = self.state.read().map_err(|_| poisoned())?.fresh();
        let generation = self.lock_position()?.generation + 1;
        let name = tree_name(self.name, generation);
        self.db.drop_tree(name.as_bytes()).map_err(store_err)?;
        let tree = Arc::new(PagedTree::new(
            self.db.open_tree(name.as_bytes()).map_err(store_err)?,
            BTreeMap::new(),
        ));
        let mut fresh = fresh;
        attach(&mut fresh, &tree);
        let mut next = Position {
            applied: from_seq,
            faults: 0,
            recent_faults: Vec::new(),
            unflushed_faults: Vec::new(),
            generation,
            tree,
            unflushed: 0,
            resident: 0,
            resident_at_flush: 0,
            last_flush: (0, 0),
            replay: None,
        };
        let mut state = fresh;
        let report = |done: u64, total: u64, progress: &mut dyn FnMut(&ReplayProgress)| {
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            let p = ReplayProgress {
                done,
                total,
                rate: done as f64 / secs,
            };
            if let Ok(mut position) = self.position.lock() {
                position.replay = Some(p.clone());
            }
            progress(&p);
        };
        // Fold without holding the live state: it keeps serving.
        fold_to_end(ledger, &mut state, &mut next, |state, next, len| {
            if next.unflushed >= FLUSH_RECORDS {
                write_batch(self.name, state, next)?;
                evict(state, self.resident_bytes);
                report(next.applied - from_seq, len - from_seq, progress);
            }
            Ok(())
        })?;
        // Swap: stop the live fold, catch up the last records, persist, switch.
        let mut live = self.state.write().map_err(|_| poisoned())?;
        let mut position = self.lock_position()?;
        // Nothing may still be on its way to the generation being replaced.
        self.writes.wait()?;
        fold_to_end(ledger, &mut state, &mut next, |_, _, _| Ok(()))?;
        write_batch(self.name, &mut state, &mut next)?;
        next.tree.tree().flush().map_err(store_err)?;
        let meta = serde_json::to_vec(&Meta {
            version: self.version,
            generation,
            layout: STORE_LAYOUT,
        })
        .map_err(|e| ProjectionError::Store(e.to_string()))?;
        let meta_tree = self.db.open_tree(META_TREE).map_err(store_err)?;
        meta_tree.insert(self.name, meta).map_err(store_err)?;
        meta_tree.flush().map_err(store_err)?;
        let old = tree_name(self.name, position.generation);
        let records = next.applied - from_seq;
        let faults = next.faults;
        next.replay = None;
        *live = state;
        *position = next;
        drop(position);
        drop(live);
        if let Err(err) = self.db.drop_tree(old.as_bytes()) {
            tracing::warn!(projection = self.name, error = %err, "dropping the replaced state failed; it is dropped on next open");
        }
        report(records, records, progress);
        let digest = ErasedSlot::digest(self)?;
        Ok(ReplayOutcome {
            records,
            faults,
            seconds: started.elapsed().as_secs_f64(),
            digest,
        })
    }
}

/// Folds a replay's state up to the log's current end, calling
/// `after_chunk(state, position, log_len)` after each chunk. Replays never
/// emit: their effects are dropped.
fn fold_to_end<P: Projection>(
    ledger: &Ledger,
    state: &mut P,
    next: &mut Position,
    mut after_chunk: impl FnMut(&mut P, &mut Position, u64) -> Result<()>,
) -> Result<()> {
    let mut effects = Effects::default();
    loop {
        let len = ledger.len();
        if next.applied >= len {
            return Ok(());
        }
        // The log is read on another thread while this one folds.
        fold_range(ledger, next.applied, len, Vec::new(), &mut |records| {
            fold_into(state, next, records, &mut effects);
            effects.take();
            after_chunk(state, next, len)
        })?;
    }
}

/// Folds the records at `position.applied` onwards, noting faults.
fn fold_into<P: Projection>(state: &mut P, position: &mut Position, records: &[Record], effects: &mut Effects) {
    for record in records {
        if record.seq() != position.applied {
            continue;
        }
        if let Err(fault) = state.apply(record, effects) {
            tracing::debug!(projection = state.name(), seq = record.seq(), %fault, "record not folded");
            note_fault(position, record.seq(), fault);
        }
        position.applied += 1;
        position.unflushed += 1;
    }
}

/// A registered projection: read its state, ask where it stands, replay it,
/// travel in time.
pub struct ProjectionHandle<P> {
    slot: Arc<Slot<P>>,
    inner: Arc<Inner>,
}

impl<P> std::fmt::Debug for ProjectionHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionHandle")
            .field("name", &self.slot.name)
            .finish_non_exhaustive()
    }
}

impl<P> Clone for ProjectionHandle<P> {
    fn clone(&self) -> Self {
        ProjectionHandle {
            slot: Arc::clone(&self.slot),
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P: Projection> ProjectionHandle<P> {
    /// The live state, for queries. Hold the guard briefly: the engine's
    /// fold waits for it.
    pub fn read(&self) -> RwLockReadGuard<'_, P> {
        match self.slot.state.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Where the projection stands.
    pub fn status(&self) -> Result<ProjectionStatus> {
        ErasedSlot::status(&*self.slot, self.inner.ledger.len())
    }

    /// Digest of the current state (flushes it first).
    pub fn digest(&self) -> Result<StateDigest> {
        ErasedSlot::digest(&*self.slot)
    }

    /// Blocks until records `0..len` are folded, or `timeout` passes;
    /// returns whether they are.
    pub fn wait_applied(&self, len: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.slot.applied() >= len {
                return true;
            }
            if Instant::now() >= deadline || self.inner.stopped.load(Ordering::Acquire) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Rebuilds the state from `from_seq` (normally 0) into a fresh
    /// instance, swapped in only when complete.
    pub fn replay(&self, from_seq: u64, mut progress: impl FnMut(&ReplayProgress)) -> Result<ReplayOutcome> {
        ErasedSlot::replay(&*self.slot, &self.inner.ledger, from_seq, &mut progress)
    }

    /// The state as of `seq` (records `0..=seq` folded), in a scratch
    /// instance: nothing emitted, nothing stored in the projection store.
    /// Its tables keep the projection's resident budget
    /// ([`ProjectionsConfig::resident_bytes`]) in memory and the rest in a
    /// scratch store on disk, removed when the state is dropped.
    pub fn at_seq(&self, seq: u64) -> Result<P> {
        let len = self.inner.ledger.len();
        if seq >= len {
            return Err(ProjectionError::BeyondLog { seq, len });
        }
        self.fold_scratch(seq + 1)
    }

    /// The state as of time `at`: every record the ledger recorded at or
    /// before it (recorded_at never decreases along the log). `None` when
    /// the log holds nothing that early.
    pub fn at_time(&self, at: DateTime<Utc>) -> Result<Option<P>> {
        Ok(self.at_time_with_len(at)?.map(|(state, _)| state))
    }

    /// [`ProjectionHandle::at_time`], with the number of records folded.
    pub fn at_time_with_len(&self, at: DateTime<Utc>) -> Result<Option<(P, u64)>> {
        // `timestamp_ns` saturates at i64::MAX, right for a time after
        // 2262 but, for one before 1677, it would fold the whole log.
        let at_ns = match at.timestamp_nanos_opt() {
            None if at.timestamp() < 0 => i64::MIN,
            _ => timestamp_ns(at),
        };
        let end = seq_end_at(&self.inner.ledger, at_ns)?;
        if end == 0 {
            return Ok(None);
        }
        Ok(Some((self.fold_scratch(end)?, end)))
    }

    /// Stored faults from `from_seq`: (seq, reason).
    pub fn faults(&self, from_seq: u64, limit: usize) -> Result<Vec<(u64, String)>> {
        ErasedSlot::faults(&*self.slot, from_seq, limit)
    }

    /// Folds a `fresh()` instance over records `0..end`.
    ///
    /// Like a replay, its tables are attached to a store, flushed every
    /// [`FLUSH_RECORDS`] and evicted down to the slot's resident budget,
    /// and once more at the end, so that the state returned holds no more
    /// than a live one: held whole, it grew with `end` (BENCHMARKS.md,
    /// "Time travel"). The store is a scratch file of its own (`scratch`),
    /// which the tables keep open and remove when the last of them is
    /// dropped. A projection that lists no tables keeps its whole state in
    /// memory, as it does live.
    fn fold_scratch(&self, end: u64) -> Result<P> {
        let mut state = self.read().fresh();
        let ledger = &self.inner.ledger;
        let mut effects = Effects::default();
        if state.cached().is_empty() {
            fold_range(ledger, 0, end, Vec::new(), &mut |records| {
                fold_skipping_faults(&mut state, records, &mut effects);
                Ok(())
            })?;
            return Ok(state);
        }
        let pages = scratch::ScratchPages::create(&self.inner.scratch_root).map_err(|err| {
            ProjectionError::Store(format!(
                "creating a time-travel scratch store in {}: {err}",
                self.inner.scratch_root.display()
            ))
        })?;
        let store = RowStore::scratch(Arc::new(pages));
        attach_to(&mut state, &store);
        let budget = self.slot.resident_bytes;
        let mut unflushed = 0u64;
        fold_range(ledger, 0, end, Vec::new(), &mut |records| {
            fold_skipping_faults(&mut state, records, &mut effects);
            unflushed += records.len() as u64;
            if unflushed >= FLUSH_RECORDS {
                flush_scratch(&mut state, &store, budget)?;
                unflushed = 0;
            }
            Ok(())
        })?;
        flush_scratch(&mut state, &store, budget)?;
        Ok(state)
    }
}

/// Folds `records` into a scratch state. Faults are the live engine's to
/// list; effects its to append: a scratch fold drops both.
fn fold_skipping_faults<P: Projection>(state: &mut P, records: &[Record], effects: &mut Effects) {
    for record in records {
        let _ = state.apply(record, effects);
        effects.take();
    }
}

/// Writes a scratch state's changed rows to its store and evicts it down
/// to `budget`: a replay's flush, without position or faults.
fn flush_scratch<P: Projection>(state: &mut P, store: &RowStore, budget: usize) -> Result<()> {
    let mut changes = Changes::default();
    state
        .take_changes(&mut changes)
        .map_err(|fault| ProjectionError::Fault {
            name: state.name().to_string(),
            fault,
        })?;
    if !changes.is_empty() {
        store.apply(&changes).map_err(page_err)?;
    }
    evict(state, budget);
    Ok(())
}

/// The number of records recorded at or before `at_ns`, by binary search
/// (recorded_at is non-decreasing along the log).
pub fn seq_end_at(ledger: &Ledger, at_ns: i64) -> Result<u64> {
    let (mut lo, mut hi) = (0u64, ledger.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if ledger.read(mid)?.header.recorded_at_ns <= at_ns {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

struct Inner {
    ledger: Arc<Ledger>,
    config: ProjectionsConfig,
    db: sled::Db,
    /// Where time travel's scratch stores go (`<store>/scratch`).
    scratch_root: std::path::PathBuf,
    /// The store writer thread's queue (catch-up rounds' batches).
    writer: SyncSender<WriteJob>,
    slots: RwLock<Vec<Arc<dyn ErasedSlot>>>,
    stop: AtomicBool,
    stopped: AtomicBool,
}

/// The engine: registered projections and the thread that feeds them.
pub struct Projections {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projections").finish_non_exhaustive()
    }
}

impl Projections {
    /// Opens the projection store at `dir` (created if missing) and starts
    /// following `ledger`. Register projections next; each catches up from
    /// where its stored state left off.
    pub fn open(ledger: Arc<Ledger>, dir: impl AsRef<std::path::Path>) -> Result<Projections> {
        Projections::open_with(ledger, dir, ProjectionsConfig::default())
    }

    /// [`Projections::open`] with `config`.
    pub fn open_with(
        ledger: Arc<Ledger>,
        dir: impl AsRef<std::path::Path>,
        projections_config: ProjectionsConfig,
    ) -> Result<Projections> {
        // sled's default page cache is 1 GiB; the projections keep their
        // hot rows themselves (`resident_bytes`), so the store only needs
        // to cache what a flush and a read-back touch.
        let config = sled::Config::new()
            .path(dir.as_ref())
            .cache_capacity(PROJECTION_STORE_CACHE)
            .flush_every_ms(Some(PROJECTION_STORE_FSYNC_MS));
        let db = crate::store::open_sled(&config).map_err(store_err)?;
        // Scratch stores left by a crash; open ones (states still held by
        // whoever opened this store before) lock theirs and stay.
        let scratch_root = dir.as_ref().join(scratch::SCRATCH_DIR);
        match scratch::remove_stale(&scratch_root) {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(removed, dir = %scratch_root.display(), "removed stale time-travel scratch stores")
            }
            Err(err) => {
                tracing::warn!(dir = %scratch_root.display(), error = %err, "removing stale time-travel scratch stores failed")
            }
        }
        let (writer, jobs) = sync_channel(WRITE_QUEUE);
        // Detached: it ends when the last sender (in `Inner`) is dropped,
        // and whoever needs a slot's writes applied waits for them.
        std::thread::Builder::new()
            .name("ledger-proj-write".to_string())
            .spawn(move || run_writer(&jobs))
            .map_err(|e| ProjectionError::Store(format!("starting the projection store writer: {e}")))?;
        let inner = Arc::new(Inner {
            ledger,
            config: projections_config,
            db,
            scratch_root,
            writer,
            slots: RwLock::new(Vec::new()),
            stop: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        });
        let thread = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("ledger-projections".to_string())
                .spawn(move || run(&inner))
                .map_err(|e| ProjectionError::Store(format!("starting the projection thread: {e}")))?
        };
        Ok(Projections {
            inner,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Registers `projection`, restoring its stored state (or starting it
    /// from zero when none is stored, or stored by another version).
    pub fn register<P: Projection>(&self, mut projection: P) -> Result<ProjectionHandle<P>> {
        let name = projection.name();
        let version = projection.version();
        if self.slot(name).is_ok() {
            return Err(ProjectionError::Duplicate(name.to_string()));
        }
        let db = &self.inner.db;
        let meta_tree = db.open_tree(META_TREE).map_err(store_err)?;
        let stored: Option<Meta> = meta_tree
            .get(name)
            .map_err(store_err)?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let fresh = projection.fresh();
        let (generation, position) = match stored {
            Some(meta) if meta.version == version && meta.layout == STORE_LAYOUT => {
                let tree = db.open_tree(tree_name(name, meta.generation)).map_err(store_err)?;
                match restore(&mut projection, tree) {
                    Ok((tree, applied, faults)) => (meta.generation, Some((tree, applied, faults))),
                    Err(err) => {
                        tracing::warn!(projection = name, error = %err, "stored state does not restore; rebuilding from the log");
                        projection = fresh;
                        (meta.generation + 1, None)
                    }
                }
            }
            Some(meta) => {
                tracing::info!(
                    projection = name,
                    stored = meta.version,
                    version,
                    layout = meta.layout,
                    "projection version or store layout changed; rebuilding from the log"
                );
                (meta.generation + 1, None)
            }
            None => (0, None),
        };
        let (tree, applied, faults) = match position {
            Some(found) => found,
            None => {
                let tree_name = tree_name(name, generation);
                db.drop_tree(tree_name.as_bytes()).map_err(store_err)?;
                let tree = db.open_tree(tree_name.as_bytes()).map_err(store_err)?;
                let meta = serde_json::to_vec(&Meta {
                    version,
                    generation,
                    layout: STORE_LAYOUT,
                })
                .map_err(|e| ProjectionError::Store(e.to_string()))?;
                meta_tree.insert(name, meta).map_err(store_err)?;
                (Arc::new(PagedTree::new(tree, BTreeMap::new())), 0, 0)
            }
        };
        // Again for a restored projection (the same tree), first for a
        // fresh one.
        attach(&mut projection, &tree);
        // Generations other than the current one are leftovers of an
        // interrupted replay or of an older version.
        let prefix = format!("p/{name}/");
        for tree_name in db.tree_names() {
            if tree_name.starts_with(prefix.as_bytes()) && tree_name != tree.tree().name() {
                db.drop_tree(&tree_name).map_err(store_err)?;
            }
        }
        let slot = Arc::new(Slot {
            name,
            version,
            db: db.clone(),
            state: RwLock::new(projection),
            position: Mutex::new(Position {
                applied,
                faults,
                recent_faults: Vec::new(),
                unflushed_faults: Vec::new(),
                generation,
                tree,
                unflushed: 0,
                resident: 0,
                resident_at_flush: 0,
                last_flush: (0, 0),
                replay: None,
            }),
            replaying: AtomicBool::new(false),
            writes: Arc::default(),
            resident_bytes: self.inner.config.resident_bytes,
            round_bytes: self.inner.config.round_bytes,
        });
        self.inner
            .slots
            .write()
            .map_err(|_| poisoned())?
            .push(Arc::clone(&slot) as Arc<dyn ErasedSlot>);
        Ok(ProjectionHandle {
            slot,
            inner: Arc::clone(&self.inner),
        })
    }

    fn slot(&self, name: &str) -> Result<Arc<dyn ErasedSlot>> {
        self.inner
            .slots
            .read()
            .map_err(|_| poisoned())?
            .iter()
            .find(|slot| slot.name() == name)
            .cloned()
            .ok_or_else(|| ProjectionError::Unknown(name.to_string()))
    }

    /// The names of the registered projections, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.inner
            .slots
            .read()
            .map(|slots| slots.iter().map(|s| s.name()).collect())
            .unwrap_or_default()
    }

    /// Status of every registered projection.
    pub fn status(&self) -> Result<Vec<ProjectionStatus>> {
        let len = self.inner.ledger.len();
        let slots = self.inner.slots.read().map_err(|_| poisoned())?.clone();
        slots.iter().map(|slot| slot.status(len)).collect()
    }

    /// Replays the projection called `name` from `from_seq`.
    pub fn replay(
        &self,
        name: &str,
        from_seq: u64,
        mut progress: impl FnMut(&ReplayProgress),
    ) -> Result<ReplayOutcome> {
        self.slot(name)?.replay(&self.inner.ledger, from_seq, &mut progress)
    }

    /// Digest of the projection called `name`.
    pub fn digest(&self, name: &str) -> Result<StateDigest> {
        self.slot(name)?.digest()
    }

    /// Stored faults of the projection called `name`.
    pub fn faults(&self, name: &str, from_seq: u64, limit: usize) -> Result<Vec<(u64, String)>> {
        self.slot(name)?.faults(from_seq, limit)
    }

    /// Stops the engine thread after a final flush.
    pub fn close(&self) -> Result<()> {
        self.inner.stop.store(true, Ordering::Release);
        let thread = self.thread.lock().map_err(|_| poisoned())?.take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        self.inner.db.flush().map_err(store_err)?;
        Ok(())
    }
}

impl Drop for Projections {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Restores a projection from its tree (its tables attached to it first,
/// so they keep none of the rows): returns the tree with its page index,
/// applied and faults.
fn restore<P: Projection>(projection: &mut P, tree: sled::Tree) -> Result<(Arc<PagedTree>, u64, u64)> {
    let paged = Arc::new(PagedTree::new(tree, PageIndex::new()));
    attach(projection, &paged);
    let tree = paged.tree();
    let mut applied = 0;
    let mut faults = 0;
    let mut failed = None;
    let pages = pages::read_all(tree, |key, value| {
        if key.first() == Some(&ENGINE_PREFIX) {
            if key == APPLIED_KEY {
                match <[u8; 8]>::try_from(value) {
                    Ok(bytes) => applied = u64::from_be_bytes(bytes),
                    Err(_) => {
                        failed.get_or_insert(ProjectionError::Store(
                            "stored applied length is not 8 bytes".to_string(),
                        ));
                    }
                }
            } else if key.starts_with(FAULT_PREFIX) {
                faults += 1;
            }
        } else if failed.is_none()
            && let Err(fault) = projection.restore(key, value)
        {
            failed = Some(ProjectionError::Fault {
                name: projection.name().to_string(),
                fault,
            });
        }
        Ok(())
    })
    .map_err(page_err)?;
    if let Some(err) = failed {
        return Err(err);
    }
    paged.set_pages(pages).map_err(page_err)?;
    Ok((paged, applied, faults))
}

/// The engine thread: fold what is new, flush now and then, emit effects.
fn run(inner: &Inner) {
    let mut last_flush = Instant::now();
    let mut effects = Effects::default();
    while !inner.stop.load(Ordering::Acquire) {
        let slots = match inner.slots.read() {
            Ok(slots) => slots.clone(),
            Err(_) => break,
        };
        let len = inner.ledger.len();
        let from = slots.iter().map(|s| s.applied()).min().unwrap_or(len);
        if from >= len {
            if slots.iter().any(|s| s.unflushed() > 0) {
                flush_all(&slots);
                last_flush = Instant::now();
            }
            if inner.ledger.wait_len_beyond(len, IDLE_WAIT) > len && !inner.stop.load(Ordering::Acquire) {
                std::thread::sleep(LIVE_LINGER);
            }
            continue;
        }
        if len - from > CATCH_UP_LAG {
            let events = catch_up_round(inner, &slots, from, len.min(from + CATCH_UP_ROUND));
            append_effects(inner, events);
            last_flush = Instant::now();
            continue;
        }
        let records = match read_chunk(&inner.ledger, from, len) {
            Ok(records) => records,
            Err(err) => {
                tracing::error!(error = %err, from, "projections cannot read the log; retrying");
                std::thread::sleep(IDLE_WAIT);
                continue;
            }
        };
        for slot in &slots {
            if let Err(err) = slot.fold(&records, &mut effects) {
                tracing::error!(projection = slot.name(), error = %err, "fold failed");
            }
        }
        append_effects(inner, effects.take());
        if last_flush.elapsed() >= FLUSH_INTERVAL || slots.iter().any(|s| s.unflushed() >= FLUSH_RECORDS) {
            flush_all(&slots);
            last_flush = Instant::now();
        }
    }
    if let Ok(slots) = inner.slots.read() {
        flush_all(&slots);
    }
    inner.stopped.store(true, Ordering::Release);
}

/// Appends what the folds emitted. Ids are derived from the records that
/// caused them, so a re-emission after a restart is deduplicated by the
/// ledger. One event per append: a batch mixing already-logged and new
/// events would be refused whole (a partial duplicate), and chunk
/// boundaries differ between runs.
fn append_effects(inner: &Inner, events: Vec<crate::event::Event>) {
    for event in events {
        let id = event.id;
        if let Err(err) = inner.ledger.append(AppendRequest::new(vec![event])) {
            tracing::warn!(error = %err, event_id = %id, "appending projection output failed");
        }
    }
}

/// Up to [`CHUNK`] records from `from`, by the sequential reader.
fn read_chunk(ledger: &Ledger, from: u64, len: u64) -> Result<Vec<Record>, LedgerError> {
    let mut records = Vec::new();
    ledger.scan_chunks(from, len.min(from + CHUNK as u64), CHUNK, &mut |chunk| {
        records = chunk;
        false
    })?;
    Ok(records)
}

/// One catch-up round: folds records `from..end` into every slot, each on
/// a thread of its own fed by one reader (see `pipeline`), each slot
/// flushing once it has applied the round. Returns the events emitted, in
/// slot order (as the chunk-by-chunk loop appends them).
fn catch_up_round(inner: &Inner, slots: &[Arc<dyn ErasedSlot>], from: u64, end: u64) -> Vec<crate::event::Event> {
    let mut effects: Vec<Effects> = slots.iter().map(|_| Effects::default()).collect();
    let mut folds = slots.iter().zip(effects.iter_mut()).map(|(slot, effects)| {
        move |records: &[Record]| -> Result<()> {
            let folded = slot.fold(records, effects).and_then(|()| {
                // Early when the round has grown the rows past its bound:
                // the stored state is records 0..applied either way.
                if slot.applied() >= end || slot.round_full() {
                    slot.flush_behind(&inner.writer)
                } else {
                    Ok(())
                }
            });
            if let Err(err) = &folded {
                tracing::error!(projection = slot.name(), error = %err, "catch-up fold failed");
            }
            folded
        }
    });
    let Some(mut here) = folds.next() else {
        return Vec::new();
    };
    let others: Vec<SendFold<'_>> = folds.map(|fold| Box::new(fold) as SendFold<'_>).collect();
    if let Err(err) = fold_range(&inner.ledger, from, end, others, &mut here) {
        tracing::error!(error = %err, from, end, "projection catch-up round failed; retrying");
        std::thread::sleep(IDLE_WAIT);
    }
    effects.iter_mut().flat_map(Effects::take).collect()
}

fn flush_all(slots: &[Arc<dyn ErasedSlot>]) {
    for slot in slots {
        if let Err(err) = slot.flush() {
            tracing::error!(projection = slot.name(), error = %err, "persisting projection state failed");
        }
    }
}

/// The digest a scratch instance (time travel, a test fold) would have once
/// stored: the same function as the live digest. Takes its changes: a
/// state whose tables have a store (time travel's scratch store) stores
/// them and digests what is stored, as the live digest does; one without
/// is digested from its changes alone.
pub fn scratch_digest<P: Projection>(state: &mut P, applied: u64) -> Result<StateDigest> {
    let name = state.name().to_string();
    let mut changes = Changes::default();
    state
        .take_changes(&mut changes)
        .map_err(|fault| ProjectionError::Fault {
            name: name.clone(),
            fault,
        })?;
    // The engine attaches every table of a state to one store.
    let store = state.cached().iter().find_map(|table| table.store().cloned());
    let (digest, entries) = match store {
        Some(store) => {
            store.apply(&changes).map_err(page_err)?;
            let mut digest = Digester::new();
            store
                .for_each(|key, value| {
                    digest.add(key, value);
                    Ok(())
                })
                .map_err(page_err)?;
            digest.finish()
        }
        None => {
            let entries: BTreeMap<&[u8], &[u8]> = changes.iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
            digest_entries(entries)
        }
    };
    Ok(StateDigest {
        name,
        applied,
        digest,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LedgerConfig;
    use crate::event::Event;
    use crate::projection::Table;
    use crate::signer::LocalKeySigner;

    /// Counts events per stream; faults on payloads that are not objects;
    /// emits one `count.reached` event when a stream reaches 3 events.
    struct StreamCounts {
        counts: Table<u64>,
        version: u32,
    }

    impl StreamCounts {
        fn new(version: u32) -> StreamCounts {
            StreamCounts {
                counts: Table::new("counts"),
                version,
            }
        }

        fn count(&self, stream: &str) -> u64 {
            self.counts.get(stream).map_or(0, |count| *count)
        }
    }

    impl Projection for StreamCounts {
        fn name(&self) -> &'static str {
            "stream-counts"
        }

        fn version(&self) -> u32 {
            self.version
        }

        fn fresh(&self) -> Self {
            StreamCounts::new(self.version)
        }

        fn apply(&mut self, record: &Record, effects: &mut Effects) -> Result<(), Fault> {
            let event = &record.header.event;
            if event.event_type == "count.reached" {
                return Ok(());
            }
            if !record.payload.starts_with(b"{") {
                return Err(Fault::new("payload: not a JSON object"));
            }
            let count = self.counts.get_or_insert_with(&event.stream, || 0);
            *count += 1;
            if *count == 3 {
                let mut reached = Event::json(
                    "counts",
                    "count.reached",
                    format!("{{\"stream\":\"{}\"}}", event.stream),
                );
                reached.id =
                    uuid::Uuid::new_v8(*blake3::hash(event.stream.as_bytes()).as_bytes().first_chunk().unwrap());
                reached.occurred_at = crate::event::from_timestamp_ns(event.occurred_at_ns);
                effects.emit(reached);
            }
            Ok(())
        }

        fn take_changes(&mut self, changes: &mut Changes) -> Result<(), Fault> {
            self.counts.take_changes(changes)
        }

        fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), Fault> {
            if self.counts.restore(key, value)? {
                Ok(())
            } else {
                Err(Fault::new("unknown stored key"))
            }
        }
    }

    fn open_ledger(dir: &std::path::Path) -> Arc<Ledger> {
        let signer = Arc::new(LocalKeySigner::from_seed("test.example/ledger", [9; 32]).unwrap());
        let config = LedgerConfig {
            origin: "test.example/ledger".to_string(),
            ..LedgerConfig::default()
        };
        Arc::new(Ledger::open(dir.join("ledger"), config, signer).unwrap())
    }

    fn append(ledger: &Ledger, stream: &str, payload: &str) {
        ledger
            .append(AppendRequest::new(vec![Event::json(
                stream,
                "thing.happened",
                payload.as_bytes().to_vec(),
            )]))
            .unwrap();
    }

    const WAIT: Duration = Duration::from_secs(10);

    /// The digest of `state` folded over records `0..end` by `read_range`,
    /// record by record, with no store: what every other fold must reach.
    fn plain_digest<P: Projection>(ledger: &Ledger, mut state: P, end: u64) -> String {
        let mut effects = Effects::default();
        let mut seq = 0;
        while seq < end {
            let n = (end - seq).min(1000) as usize;
            for record in ledger.read_range(seq, n).unwrap() {
                let _ = state.apply(&record, &mut effects);
                seq += 1;
            }
        }
        scratch_digest(&mut state, seq).unwrap().digest
    }

    /// A ledger of `appends` x 1000 sample events.
    fn sample_ledger(dir: &std::path::Path, appends: usize) -> Arc<Ledger> {
        let ledger = open_ledger(dir);
        let mut source = crate::sample::SampleEvidence::new(5);
        for _ in 0..appends {
            ledger.append(AppendRequest::new(source.take_events(1000))).unwrap();
        }
        ledger
    }

    fn scratch_stores(proj: &std::path::Path) -> Vec<std::path::PathBuf> {
        match std::fs::read_dir(proj.join(scratch::SCRATCH_DIR)) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    #[test]
    fn catches_up_follows_live_persists_and_restores() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open_ledger(dir.path());
        append(&ledger, "a", "{}");
        append(&ledger, "b", "{}");
        let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
        let counts = engine.register(StreamCounts::new(1)).unwrap();
        assert!(counts.wait_applied(2, WAIT));
        append(&ledger, "a", "{}");
        append(&ledger, "a", "42");
        assert!(counts.wait_applied(4, WAIT));
        assert_eq!(counts.read().count("a"), 2);
        let status = counts.status().unwrap();
        assert_eq!((status.applied, status.lag, status.faults), (4, 0, 1));
        assert_eq!(
            status.recent_faults,
            vec![(3, "payload: not a JSON object".to_string())]
        );
        let digest = counts.digest().unwrap();
        engine.close().unwrap();
        drop((engine, counts));

        // Reopen: state and position come back from the store, faults too.
        let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
        let counts = engine.register(StreamCounts::new(1)).unwrap();
        let status = counts.status().unwrap();
        assert_eq!((status.applied, status.faults), (4, 1));
        assert_eq!(counts.read().count("a"), 2);
        assert_eq!(counts.digest().unwrap(), digest);
        assert_eq!(
            counts.faults(0, 10).unwrap(),
            vec![(3, "payload: not a JSON object".to_string())]
        );
        assert!(matches!(
            engine.register(StreamCounts::new(1)),
            Err(ProjectionError::Duplicate(_))
        ));
    }

    #[test]
    fn replay_gives_the_same_digest_and_a_version_bump_rebuilds() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open_ledger(dir.path());
        for i in 0..5_000 {
            append(&ledger, &format!("s{}", i % 37), "{}");
        }
        let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
        let counts = engine.register(StreamCounts::new(1)).unwrap();
        assert!(counts.wait_applied(ledger.len(), WAIT));
        let before = counts.digest().unwrap();
        let mut reports = 0;
        let outcome = counts.replay(0, |_| reports += 1).unwrap();
        assert!(reports >= 1);
        assert_eq!(outcome.digest.digest, before.digest);
        assert_eq!(counts.status().unwrap().generation, 1);
        // A scratch fold of the whole log digests the same.
        let mut scratch = counts.at_seq(ledger.len() - 1).unwrap();
        assert_eq!(
            scratch_digest(&mut scratch, ledger.len()).unwrap().digest,
            before.digest
        );
        engine.close().unwrap();
        drop((engine, counts));

        let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
        let counts = engine.register(StreamCounts::new(2)).unwrap();
        assert_eq!(counts.status().unwrap().generation, 2);
        assert!(counts.wait_applied(ledger.len(), WAIT));
        assert_eq!(counts.digest().unwrap().digest, before.digest);
    }

    /// The parallel catch-up and the pipelined replay must reach the state
    /// a plain fold of `read_range`, record by record, reaches: same
    /// digest, for every built-in, across chunk and segment boundaries.
    #[test]
    fn built_ins_caught_up_in_parallel_match_a_plain_sequential_fold() {
        use crate::projection::builtin::Builtins;
        use crate::projection::builtin::incidents::Incidents;
        use crate::projection::builtin::metrics::Metrics;
        use crate::projection::builtin::subjects::Subjects;
        use crate::projection::builtin::tasks::Tasks;

        fn plain<P: Projection>(ledger: &Ledger, state: P) -> String {
            plain_digest(ledger, state, ledger.len())
        }

        let dir = tempfile::tempdir().unwrap();
        let signer = Arc::new(LocalKeySigner::from_seed("test.example/ledger", [9; 32]).unwrap());
        let config = LedgerConfig {
            origin: "test.example/ledger".to_string(),
            segment_max_bytes: 1024 * 1024,
            ..LedgerConfig::default()
        };
        let ledger = Arc::new(Ledger::open(dir.path().join("ledger"), config, signer).unwrap());
        let mut source = crate::sample::SampleEvidence::new(5);
        for _ in 0..12 {
            ledger.append(AppendRequest::new(source.take_events(1000))).unwrap();
        }
        let len = ledger.len();
        assert!(len > CATCH_UP_LAG + CHUNK as u64, "the engine must catch up in rounds");
        let expected = [
            plain(&ledger, Tasks::default()),
            plain(&ledger, Incidents::default()),
            plain(&ledger, Subjects::default()),
            plain(&ledger, Metrics::default()),
        ];

        let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
        let builtins = Builtins::register(&engine).unwrap();
        let metrics = &builtins.metrics;
        assert!(builtins.tasks.wait_applied(len, WAIT));
        assert!(builtins.incidents.wait_applied(len, WAIT));
        assert!(builtins.subjects.wait_applied(len, WAIT));
        assert!(metrics.wait_applied(len, WAIT));
        let caught_up = [
            builtins.tasks.digest().unwrap().digest,
            builtins.incidents.digest().unwrap().digest,
            builtins.subjects.digest().unwrap().digest,
            metrics.digest().unwrap().digest,
        ];
        assert_eq!(caught_up, expected);
        let replayed = [
            builtins.tasks.replay(0, |_| {}).unwrap().digest.digest,
            builtins.incidents.replay(0, |_| {}).unwrap().digest.digest,
            builtins.subjects.replay(0, |_| {}).unwrap().digest.digest,
            metrics.replay(0, |_| {}).unwrap().digest.digest,
        ];
        assert_eq!(replayed, expected);
        let mut scratch = metrics.at_seq(len - 1).unwrap();
        assert_eq!(scratch_digest(&mut scratch, len).unwrap().digest, expected[3]);
    }

    /// A catch-up round bound so small that every fold step ends in an
    /// early flush must still store exactly records `0..applied` each
    /// time: the same digests as a plain fold, and after a reopen.
    #[test]
    fn rounds_cut_short_by_their_byte_bound_reach_the_same_state() {
        use crate::projection::builtin::Builtins;
        use crate::projection::builtin::subjects::Subjects;
        use crate::projection::builtin::tasks::Tasks;

        let dir = tempfile::tempdir().unwrap();
        let ledger = sample_ledger(dir.path(), 12);
        let len = ledger.len();
        assert!(
            len > CATCH_UP_LAG + 4 * CHUNK as u64,
            "the engine must catch up in rounds"
        );
        let expected = [
            plain_digest(&ledger, Tasks::default(), len),
            plain_digest(&ledger, Subjects::default(), len),
        ];
        let config = ProjectionsConfig {
            resident_bytes: 64 * 1024,
            round_bytes: 1,
        };
        let proj = dir.path().join("proj");
        let engine = Projections::open_with(Arc::clone(&ledger), &proj, config.clone()).unwrap();
        let builtins = Builtins::register(&engine).unwrap();
        assert!(builtins.tasks.wait_applied(len, WAIT));
        assert!(builtins.subjects.wait_applied(len, WAIT));
        let digests = || {
            [
                builtins.tasks.digest().unwrap().digest,
                builtins.subjects.digest().unwrap().digest,
            ]
        };
        assert_eq!(digests(), expected);
        engine.close().unwrap();
        drop((engine, builtins));
        let engine = Projections::open_with(Arc::clone(&ledger), &proj, config).unwrap();
        let builtins = Builtins::register(&engine).unwrap();
        assert_eq!(builtins.tasks.status().unwrap().applied, len);
        assert_eq!(
            [
                builtins.tasks.digest().unwrap().digest,
                builtins.subjects.digest().unwrap().digest,
            ],
            expected
        );
    }

    #[test]
    fn waiting_for_queued_writes_blocks_until_applied_and_reports_a_failure_once() {
        let writes = Arc::new(Writes::default());
        writes.wait().unwrap();
        writes.queue().unwrap();
        writes.queue().unwrap();
        let applier = {
            let writes = Arc::clone(&writes);
            std::thread::spawn(move || {
                writes.done(Ok(()));
                writes.done(Err("disk full".to_string()));
            })
        };
        let err = writes.wait().unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(writes.state.lock().unwrap().queued, 0);
        writes.wait().unwrap();
        applier.join().unwrap();
    }

    /// Catch-up rounds hand their batches to the writer thread: a digest,
    /// a close and a reopen must still see every row and the position.
    #[test]
    fn rows_written_behind_the_folds_are_all_stored_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open_ledger(dir.path());
        for i in 0..(3 * CHUNK as u64) {
            append(&ledger, &format!("s{}", i % 101), "{}");
        }
        let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
        let counts = engine.register(StreamCounts::new(1)).unwrap();
        let len = ledger.len();
        assert!(counts.wait_applied(len, WAIT));
        let digest = counts.digest().unwrap();
        assert_eq!(digest.entries, 101);
        engine.close().unwrap();
        drop((engine, counts));
        let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
        let counts = engine.register(StreamCounts::new(1)).unwrap();
        assert_eq!(counts.status().unwrap().applied, len);
        assert_eq!(counts.digest().unwrap(), digest);
    }

    /// A state spread over many pages, written by catch-up rounds and then
    /// by live flushes that change rows inside existing pages, restores to
    /// the same rows and digest.
    #[test]
    fn a_state_of_many_pages_restores_after_catch_up_and_live_changes() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open_ledger(dir.path());
        // 7919 is prime to 3000: every 3000 events name each stream once,
        // so each ends with 2 events and none emits `count.reached`.
        let stream = |i: u64| format!("stream-with-a-long-name-{:05}", (i * 7919) % 3000);
        let events = |range: std::ops::Range<u64>| {
            range
                .map(|i| Event::json(stream(i), "thing.happened", b"{}".to_vec()))
                .collect::<Vec<_>>()
        };
        ledger.append(AppendRequest::new(events(0..4000))).unwrap();
        let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
        let counts = engine.register(StreamCounts::new(1)).unwrap();
        assert!(counts.wait_applied(ledger.len(), WAIT));
        // Followed live: flushed every 200 ms into the existing pages.
        for batch in 0..4 {
            ledger
                .append(AppendRequest::new(events(4000 + batch * 500..4500 + batch * 500)))
                .unwrap();
            assert!(counts.wait_applied(ledger.len(), WAIT));
        }
        let digest = counts.digest().unwrap();
        assert_eq!(digest.entries, 3000);
        let pages = engine.inner.db.open_tree(tree_name("stream-counts", 0)).unwrap();
        assert!(
            pages.len() > 5,
            "{} sled entries: the state must span pages",
            pages.len()
        );
        let expected: Vec<(String, u64)> = counts.read().counts.iter().map(|(k, v)| (k.into_owned(), *v)).collect();
        engine.close().unwrap();
        drop((engine, counts, pages));
        let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
        let counts = engine.register(StreamCounts::new(1)).unwrap();
        assert_eq!(counts.status().unwrap().applied, ledger.len());
        let restored: Vec<(String, u64)> = counts.read().counts.iter().map(|(k, v)| (k.into_owned(), *v)).collect();
        assert_eq!(restored, expected);
        assert_eq!(counts.digest().unwrap(), digest);
    }

    #[test]
    fn an_interrupted_replay_leaves_the_old_state_serving() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open_ledger(dir.path());
        append(&ledger, "a", "{}");
        let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
        let counts = engine.register(StreamCounts::new(1)).unwrap();
        assert!(counts.wait_applied(1, WAIT));
        let digest = counts.digest().unwrap();
        // What a replay killed half way leaves: a next generation, partly
        // written, that meta does not point to.
        engine
            .inner
            .db
            .open_tree(tree_name("stream-counts", 1))
            .unwrap()
            .insert(b"counts\0zzz", &b"99"[..])
            .unwrap();
        engine.close().unwrap();
        drop((engine, counts));
        let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
        let counts = engine.register(StreamCounts::new(1)).unwrap();
        assert_eq!(counts.status().unwrap().generation, 0);
        assert_eq!(counts.digest().unwrap(), digest);
        assert!(
            !engine
                .inner
                .db
                .tree_names()
                .iter()
                .any(|n| &n[..] == tree_name("stream-counts", 1).as_bytes())
        );
        // And a replay can run again.
        assert_eq!(counts.replay(0, |_| {}).unwrap().digest.digest, digest.digest);
    }

    /// A store written before pages (no `layout` in `meta`, one sled entry
    /// per row) must not be read as pages: it is rebuilt from the log.
    #[test]
    fn a_store_of_the_row_per_entry_layout_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open_ledger(dir.path());
        // Two events per stream: below the count that emits an event.
        for i in 0..50 {
            append(&ledger, &format!("s{}", i % 25), "{}");
        }
        let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
        let counts = engine.register(StreamCounts::new(1)).unwrap();
        assert!(counts.wait_applied(50, WAIT));
        let digest = counts.digest().unwrap();
        let meta = engine.inner.db.open_tree(META_TREE).unwrap();
        meta.insert("stream-counts", &br#"{"version":1,"generation":0}"#[..])
            .unwrap();
        let old = engine.inner.db.open_tree(tree_name("stream-counts", 0)).unwrap();
        old.insert(b"counts\0s0", &b"8"[..]).unwrap();
        engine.close().unwrap();
        // The trees hold the database open.
        drop((engine, counts, meta, old));
        let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
        let counts = engine.register(StreamCounts::new(1)).unwrap();
        assert_eq!(counts.status().unwrap().generation, 1);
        assert!(counts.wait_applied(50, WAIT));
        assert_eq!(counts.digest().unwrap(), digest);
    }

    #[test]
    fn time_travel_by_seq_and_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open_ledger(dir.path());
        append(&ledger, "a", "{}");
        append(&ledger, "a", "{}");
        let middle = ledger.read(1).unwrap().header.recorded_at_ns;
        std::thread::sleep(Duration::from_millis(5));
        append(&ledger, "b", "{}");
        let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
        let counts = engine.register(StreamCounts::new(1)).unwrap();
        assert_eq!(counts.at_seq(0).unwrap().count("a"), 1);
        assert_eq!(counts.at_seq(1).unwrap().count("a"), 2);
        assert_eq!(counts.at_seq(1).unwrap().count("b"), 0);
        assert!(matches!(
            counts.at_seq(3),
            Err(ProjectionError::BeyondLog { seq: 3, len: 3 })
        ));
        let at = crate::event::from_timestamp_ns(middle);
        let then = counts.at_time(at).unwrap().unwrap();
        assert_eq!((then.count("a"), then.count("b")), (2, 0));
        assert!(counts.at_time(crate::event::from_timestamp_ns(0)).unwrap().is_none());
        let year_1500 = DateTime::from_timestamp(-14_831_769_600, 0).unwrap();
        assert!(counts.at_time(year_1500).unwrap().is_none());
        let year_3000 = DateTime::from_timestamp(32_503_680_000, 0).unwrap();
        assert_eq!(counts.at_time(year_3000).unwrap().unwrap().count("b"), 1);
    }

    /// Time travel folds like a replay: with a resident budget far below
    /// its state, every built-in flushes into its scratch store mid-fold
    /// and at the end, evicts, reads rows back, and still reaches the
    /// state a plain fold held whole in memory reaches.
    #[test]
    fn time_travel_within_a_tiny_resident_budget_matches_a_plain_sequential_fold() {
        use crate::projection::builtin::Builtins;
        use crate::projection::builtin::incidents::Incidents;
        use crate::projection::builtin::metrics::Metrics;
        use crate::projection::builtin::subjects::Subjects;
        use crate::projection::builtin::tasks::Tasks;

        /// The bounded fold's digest and resident bytes, beside the plain
        /// fold's digest.
        fn travel<P: Projection + Default>(
            handle: &ProjectionHandle<P>,
            ledger: &Ledger,
            seq: u64,
        ) -> (String, usize, String) {
            let mut state = handle.at_seq(seq).unwrap();
            let resident = state.cached().iter().map(|table| table.resident_bytes()).sum();
            let digest = scratch_digest(&mut state, seq + 1).unwrap().digest;
            (digest, resident, plain_digest(ledger, P::default(), seq + 1))
        }

        let dir = tempfile::tempdir().unwrap();
        let appends = (2 * FLUSH_RECORDS as usize).div_ceil(1000) + 3;
        let ledger = sample_ledger(dir.path(), appends);
        let len = ledger.len();
        let budget = 16 * 1024;
        let config = ProjectionsConfig {
            resident_bytes: budget,
            ..ProjectionsConfig::default()
        };
        let proj = dir.path().join("proj");
        let engine = Projections::open_with(Arc::clone(&ledger), &proj, config).unwrap();
        let builtins = Builtins::register(&engine).unwrap();
        // One point between two flushes, one at the end of the log.
        for seq in [FLUSH_RECORDS + 1234, len - 1] {
            let runs = [
                ("tasks", travel::<Tasks>(&builtins.tasks, &ledger, seq)),
                ("incidents", travel::<Incidents>(&builtins.incidents, &ledger, seq)),
                ("subjects", travel::<Subjects>(&builtins.subjects, &ledger, seq)),
                ("metrics", travel::<Metrics>(&builtins.metrics, &ledger, seq)),
            ];
            for (name, (digest, resident, plain)) in runs {
                assert_eq!(digest, plain, "{name} at seq {seq}");
                // Beyond the budget: the key filters (~1.25 bytes per
                // stored row, one row or more per record at most).
                assert!(
                    resident <= budget + 2 * (seq as usize + 1),
                    "{name} at seq {seq} keeps {resident} bytes resident"
                );
            }
        }
        // By time: the same fold as by seq.
        let at = ledger.read(len - 1).unwrap().header.recorded_at_ns;
        let (mut state, folded) = builtins
            .subjects
            .at_time_with_len(crate::event::from_timestamp_ns(at))
            .unwrap()
            .unwrap();
        assert_eq!(folded, len);
        assert_eq!(
            scratch_digest(&mut state, len).unwrap().digest,
            plain_digest(&ledger, Subjects::default(), len)
        );
        drop(state);
        assert!(scratch_stores(&proj).is_empty(), "every scratch store is gone");
    }

    /// A returned state keeps reading its evicted rows from its scratch
    /// store until it is dropped, which removes the store; a reopened
    /// projection store removes the scratch stores nothing holds open.
    #[test]
    fn scratch_stores_go_with_their_state_and_stale_ones_on_open() {
        use crate::projection::builtin::tasks::Tasks;

        let dir = tempfile::tempdir().unwrap();
        let ledger = sample_ledger(dir.path(), 3);
        let len = ledger.len();
        let proj = dir.path().join("proj");
        let config = ProjectionsConfig {
            resident_bytes: 4096,
            ..ProjectionsConfig::default()
        };
        let engine = Projections::open_with(Arc::clone(&ledger), &proj, config.clone()).unwrap();
        let tasks = engine.register(Tasks::default()).unwrap();
        let expected = plain_digest(&ledger, Tasks::default(), len);

        let state = tasks.at_seq(len - 1).unwrap();
        assert_eq!(scratch_stores(&proj).len(), 1);
        drop(state);
        assert!(scratch_stores(&proj).is_empty(), "the store went with the state");

        // A state still held across a reopen, and what a crash leaves.
        let mut held = tasks.at_seq(len - 1).unwrap();
        let [held_store] = scratch_stores(&proj).try_into().unwrap();
        // A killed process's store: its file, no longer locked.
        std::fs::write(proj.join(scratch::SCRATCH_DIR).join("1-2-3"), b"pages").unwrap();
        assert_eq!(scratch_stores(&proj).len(), 2);
        engine.close().unwrap();
        drop((engine, tasks));
        let engine = Projections::open_with(Arc::clone(&ledger), &proj, config).unwrap();
        assert_eq!(scratch_stores(&proj), [held_store]);
        assert_eq!(scratch_digest(&mut held, len).unwrap().digest, expected);
        drop(held);
        assert!(scratch_stores(&proj).is_empty());
        drop(engine);
    }

    #[test]
    fn effects_are_appended_once_even_when_refolded() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open_ledger(dir.path());
        for _ in 0..3 {
            append(&ledger, "a", "{}");
        }
        let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
        let counts = engine.register(StreamCounts::new(1)).unwrap();
        assert!(counts.wait_applied(4, WAIT), "the emitted event is appended and folded");
        assert_eq!(ledger.read(3).unwrap().header.event.event_type, "count.reached");
        // A replay folds without emitting; a rebuild that re-emits is deduplicated.
        counts.replay(0, |_| {}).unwrap();
        engine.close().unwrap();
        drop((engine, counts));
        let engine = Projections::open(Arc::clone(&ledger), dir.path().join("proj")).unwrap();
        let counts = engine.register(StreamCounts::new(7)).unwrap();
        assert!(counts.wait_applied(4, WAIT));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ledger.len(), 4);
    }
}
