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

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};

use crate::error::{LedgerError, Result};
use crate::store::{IndexBatch, Store};

/// Most events merged into one store batch. Merging saves sled work (a
/// stream's or tree level's last chunk is rewritten once per batch, not once
/// per group); the cap bounds how long one `apply_batch` holds sled's lock,
/// which stream reads and proofs wait on.
const MAX_MERGED_EVENTS: usize = 16_384;

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
}

/// The indexer thread's loop: runs until the writer drops its sender.
pub(crate) fn run(store: Arc<dyn Store>, state: Arc<IndexState>, batches: Receiver<IndexBatch>) {
    while let Ok(mut merged) = batches.recv() {
        while merged.events.len() < MAX_MERGED_EVENTS {
            let Ok(more) = batches.try_recv() else { break };
            merged.log_len_after = more.log_len_after;
            merged.events.extend(more.events);
            merged.nodes.extend(more.nodes);
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
