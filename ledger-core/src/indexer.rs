//! The indexer: applies each committed group's index entries and tree nodes
//! to the [`Store`] on its own thread, so acknowledgements never wait on the
//! store (sled inserts run at a fraction of the log's append rate).
//!
//! Nothing on the append path reads the store per event: idempotency uses
//! the in-memory id index (`ids.rs`), and stream heads the writer's cache.
//! The indexer only has to keep up on average: the writer waits while more
//! than `max_unindexed_events` records are committed but not yet indexed
//! (back-pressure, so batches queued for the indexer cannot grow without
//! bound). Readers of streams and proofs wait for the store to reach the
//! length they need.
//!
//! While nobody waits on it, the indexer lingers up to [`LINGER`] to merge
//! more groups into one store batch: under a steady trickle of small groups
//! (unary appends) each sled batch would otherwise carry a handful of events
//! and rewrite the same stream and tree chunks thousands of times a second,
//! taking CPU from the append path. It lingers asleep: a reader or a
//! back-pressured writer that starts waiting wakes it at once (the waiter
//! count and the wake-up share the progress lock, so none is lost). It used
//! to poll for waiters every 250 µs instead, which under unary load meant
//! ~4,000 wake-ups a second of a thread with nothing to do, each a context
//! switch taken from the requests on a 2-core VM.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{LedgerError, Result};
use crate::store::{IndexBatch, Store};

/// Most events merged into one store batch. Merging saves sled work (a
/// stream's or tree level's last chunk is rewritten once per batch, not once
/// per group); the cap bounds how long one `apply_batch` holds sled's lock,
/// which stream reads and proofs wait on.
const MAX_MERGED_EVENTS: usize = 16_384;

/// Longest the indexer holds committed groups back to merge them, while
/// nobody waits on the store.
const LINGER: Duration = Duration::from_millis(5);

/// Events in a merged batch beyond which lingering saves little.
const LINGER_EVENTS: usize = 2_048;

/// How far the store has caught up, shared by the writer, the indexer and
/// readers.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Log length the store reflects.
    pub(crate) indexed_len: u64,
    /// Set when the store failed: nothing more will be indexed.
    pub(crate) failed: Option<String>,
}

/// The progress and the condition variable signalled on every change.
#[derive(Debug, Default)]
pub(crate) struct IndexState {
    pub(crate) progress: Mutex<Progress>,
    pub(crate) changed: Condvar,
    /// Signalled (under the progress lock) when a waiter arrives: ends a
    /// lingering indexer's sleep.
    waiter_arrived: Condvar,
    /// Threads blocked in `wait_indexed` / `wait_below`: while any is, the
    /// indexer applies what it has without lingering.
    waiters: AtomicUsize,
}

impl IndexState {
    pub(crate) fn lock(&self) -> Result<std::sync::MutexGuard<'_, Progress>> {
        self.progress
            .lock()
            .map_err(|_| LedgerError::Poisoned("index progress lock poisoned".to_string()))
    }

    /// Blocks until the store reflects at least `len` records.
    pub(crate) fn wait_indexed(&self, len: u64) -> Result<()> {
        let mut progress = self.lock()?;
        if progress.indexed_len >= len {
            return Ok(());
        }
        let _waiting = Waiting::new(self);
        while progress.indexed_len < len {
            if let Some(reason) = &progress.failed {
                return Err(LedgerError::Store(reason.clone()));
            }
            progress = self
                .changed
                .wait(progress)
                .map_err(|_| LedgerError::Poisoned("index progress lock poisoned".to_string()))?;
        }
        Ok(())
    }

    /// Blocks while more than `max` of the first `len` records are
    /// unindexed.
    pub(crate) fn wait_below(&self, max: usize, len: u64) -> Result<()> {
        let mut progress = self.lock()?;
        if len.saturating_sub(progress.indexed_len) <= max as u64 {
            return Ok(());
        }
        let _waiting = Waiting::new(self);
        while len.saturating_sub(progress.indexed_len) > max as u64 {
            if let Some(reason) = &progress.failed {
                return Err(LedgerError::Store(reason.clone()));
            }
            progress = self
                .changed
                .wait(progress)
                .map_err(|_| LedgerError::Poisoned("index progress lock poisoned".to_string()))?;
        }
        Ok(())
    }

    fn waited_on(&self) -> bool {
        self.waiters.load(Ordering::Acquire) > 0
    }

    /// Sleeps until `deadline` unless a waiter is or arrives.
    fn linger_until(&self, deadline: Instant) {
        let Ok(progress) = self.lock() else { return };
        let timeout = deadline.saturating_duration_since(Instant::now());
        let _ = self
            .waiter_arrived
            .wait_timeout_while(progress, timeout, |_| !self.waited_on());
    }
}

/// Counts a waiter for as long as it lives. Created with the progress lock
/// held, so a lingering indexer either sees the count or gets the signal.
struct Waiting<'a>(&'a IndexState);

impl<'a> Waiting<'a> {
    fn new(state: &'a IndexState) -> Waiting<'a> {
        state.waiters.fetch_add(1, Ordering::AcqRel);
        state.waiter_arrived.notify_all();
        Waiting(state)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Moves every batch already queued into `merged`, up to the cap; false
/// when the writer has gone.
fn drain(merged: &mut IndexBatch, batches: &Receiver<IndexBatch>) -> bool {
    while merged.events.len() < MAX_MERGED_EVENTS {
        match batches.try_recv() {
            Ok(more) => {
                merged.log_len_after = more.log_len_after;
                merged.events.extend(more.events);
                merged.nodes.extend(more.nodes);
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => return true,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return false,
        }
    }
    true
}

/// The indexer thread's loop: runs until the writer drops its sender.
pub(crate) fn run(store: Arc<dyn Store>, state: Arc<IndexState>, batches: Receiver<IndexBatch>) {
    while let Ok(mut merged) = batches.recv() {
        let deadline = Instant::now() + LINGER;
        if drain(&mut merged, &batches) && merged.events.len() < LINGER_EVENTS && !state.waited_on() {
            state.linger_until(deadline);
            drain(&mut merged, &batches);
        }
        let applied = store.apply(&merged);
        let Ok(mut progress) = state.lock() else { return };
        match applied {
            Ok(()) => progress.indexed_len = merged.log_len_after,
            Err(err) => {
                tracing::error!(error = %err, "index store failed; the ledger stops accepting appends until reopened");
                progress.failed = Some(err.to_string());
                state.changed.notify_all();
                return;
            }
        }
        drop(progress);
        state.changed.notify_all();
    }
    if let Err(err) = store.flush() {
        tracing::warn!(error = %err, "index store flush at shutdown failed; it will catch up on open");
    }
}
