//! The indexer: applies each committed group's index entries and tree nodes
//! to the [`Store`] on its own thread, so acknowledgements never wait on the
//! store (sled inserts run at a fraction of the log's append rate).
//!
//! Until a record is indexed its event id stays in the in-memory overlay,
//! which the writer consults for idempotency; the overlay is bounded by
//! `max_unindexed_events`, beyond which the writer waits (back-pressure, not
//! unbounded memory). The indexer applies to the store *before* removing ids
//! from the overlay, so an id is always findable in one or the other.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};

use crate::error::{LedgerError, Result};
use crate::store::{IndexBatch, Store};

/// Most events merged into one store batch.
const MAX_MERGED_EVENTS: usize = 4_096;

/// Committed-but-not-indexed state shared by the writer, the indexer and
/// readers.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    /// Event id → seq for records not yet in the store.
    pub(crate) ids: HashMap<[u8; 16], u64>,
    /// Log length the store reflects.
    pub(crate) indexed_len: u64,
    /// Set when the store failed: nothing more will be indexed.
    pub(crate) failed: Option<String>,
}

/// The overlay and the condition variable signalled on every change.
#[derive(Debug, Default)]
pub(crate) struct IndexState {
    pub(crate) overlay: Mutex<Overlay>,
    pub(crate) changed: Condvar,
}

impl IndexState {
    pub(crate) fn lock(&self) -> Result<std::sync::MutexGuard<'_, Overlay>> {
        self.overlay
            .lock()
            .map_err(|_| LedgerError::Poisoned("index overlay lock poisoned".to_string()))
    }

    /// Blocks until the store reflects at least `len` records.
    pub(crate) fn wait_indexed(&self, len: u64) -> Result<()> {
        let mut overlay = self.lock()?;
        while overlay.indexed_len < len {
            if let Some(reason) = &overlay.failed {
                return Err(LedgerError::Store(reason.clone()));
            }
            overlay = self
                .changed
                .wait(overlay)
                .map_err(|_| LedgerError::Poisoned("index overlay lock poisoned".to_string()))?;
        }
        Ok(())
    }

    /// Blocks while more than `max` events are unindexed.
    pub(crate) fn wait_below(&self, max: usize) -> Result<()> {
        let mut overlay = self.lock()?;
        while overlay.ids.len() > max {
            if let Some(reason) = &overlay.failed {
                return Err(LedgerError::Store(reason.clone()));
            }
            overlay = self
                .changed
                .wait(overlay)
                .map_err(|_| LedgerError::Poisoned("index overlay lock poisoned".to_string()))?;
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
        let Ok(mut overlay) = state.lock() else { return };
        match applied {
            Ok(()) => {
                for event in &merged.events {
                    if overlay.ids.get(&event.id) == Some(&event.seq) {
                        overlay.ids.remove(&event.id);
                    }
                }
                overlay.indexed_len = merged.log_len_after;
            }
            Err(err) => {
                tracing::error!(error = %err, "index store failed; the ledger stops accepting appends until reopened");
                overlay.failed = Some(err.to_string());
                state.changed.notify_all();
                return;
            }
        }
        drop(overlay);
        state.changed.notify_all();
    }
    if let Err(err) = store.flush() {
        tracing::warn!(error = %err, "index store flush at shutdown failed; it will catch up on open");
    }
}
