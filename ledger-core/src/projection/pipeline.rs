//! Reading and folding at the same time: one thread reads a range of the
//! log with the sequential reader and hands every chunk, through bounded
//! queues, to several folds, each on a thread of its own. Projections are
//! independent of each other, so catch-up folds them in parallel; a single
//! projection's replay at least overlaps its fold with the reading.
//!
//! Each fold still sees every record of the range once, in seq order, so
//! the state it reaches does not depend on the threads. Memory is bounded:
//! a chunk is shared (`Arc`) by the folds, not copied, and the reader stays
//! at most [`QUEUE_CHUNKS`] chunks ahead of the slowest fold.
//!
//! Chunks go round: whoever lets go of a chunk last (a fold, or the reader
//! if every fold was quicker) sends it back to the reader, which decodes
//! the next records into it, reusing each record's strings and buffers.
//! Allocating every record's fields on the reader thread and freeing them
//! on a fold thread was a quarter of a catch-up's CPU in malloc and free.
//!
//! This module knows nothing about slots, flushing or effects: the engine
//! passes closures.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel, sync_channel};

use super::engine::{ProjectionError, Result};
use crate::ledger::Ledger;
use crate::record::Record;

/// Records per chunk handed to the folds.
pub(crate) const CHUNK_RECORDS: usize = 2_048;
/// Chunks queued per fold ahead of it.
const QUEUE_CHUNKS: usize = 4;

/// A fold fed on a thread of its own.
pub(crate) type SendFold<'a> = Box<dyn FnMut(&[Record]) -> Result<()> + Send + 'a>;

/// Reads records `from..end` on a reader thread and folds every chunk, in
/// order, with each of `others` (each on its own thread) and with `here`
/// (on the calling thread, so it need not be `Send`). A fold that fails
/// stops receiving; the others go on to the end. Returns the first error:
/// the reader's, then `here`'s, then the others' in order.
pub(crate) fn fold_range(
    ledger: &Ledger,
    from: u64,
    end: u64,
    others: Vec<SendFold<'_>>,
    here: &mut dyn FnMut(&[Record]) -> Result<()>,
) -> Result<()> {
    std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(others.len() + 1);
        let mut workers = Vec::with_capacity(others.len());
        // Unbounded, yet it never holds more chunks than are in flight.
        let (spare_tx, spare_rx) = channel::<Vec<Record>>();
        for mut fold in others {
            let (tx, rx) = sync_channel::<Arc<Vec<Record>>>(QUEUE_CHUNKS);
            senders.push(tx);
            let spare = spare_tx.clone();
            let worker = std::thread::Builder::new()
                .name("ledger-fold".to_string())
                .spawn_scoped(scope, move || drain(&rx, &spare, &mut *fold))
                .map_err(|e| ProjectionError::Store(format!("starting a fold thread: {e}")))?;
            workers.push(worker);
        }
        let (tx, rx) = sync_channel::<Arc<Vec<Record>>>(QUEUE_CHUNKS);
        senders.push(tx);
        let here_spare = spare_tx.clone();
        let reader = std::thread::Builder::new()
            .name("ledger-scan".to_string())
            .spawn_scoped(scope, move || {
                ledger.scan_chunks_reusing(
                    from,
                    end,
                    CHUNK_RECORDS,
                    &mut || spare_rx.try_recv().ok(),
                    &mut |chunk| {
                        let chunk = Arc::new(chunk);
                        // Keep reading while any fold still listens.
                        let mut listening = false;
                        for tx in &senders {
                            listening |= tx.send(Arc::clone(&chunk)).is_ok();
                        }
                        give_back(chunk, &spare_tx);
                        listening
                    },
                )
            });
        let reader = match reader {
            Ok(reader) => reader,
            Err(e) => {
                // The workers' senders were moved into the failed closure
                // and dropped with it: they stop at once.
                for worker in workers {
                    let _ = worker.join();
                }
                return Err(ProjectionError::Store(format!("starting the scan thread: {e}")));
            }
        };
        let here_result = drain(&rx, &here_spare, here);
        // A fold that stopped early must not leave the reader blocked on
        // its full queue.
        drop(rx);
        let mut result = joined(reader.join().map(|read| read.map_err(ProjectionError::from))).and(here_result);
        for worker in workers {
            result = result.and(joined(worker.join()));
        }
        result
    })
}

/// Folds chunks until the reader is done or `fold` fails, giving each
/// back to the reader when done with it.
fn drain(
    rx: &Receiver<Arc<Vec<Record>>>,
    spare: &Sender<Vec<Record>>,
    fold: &mut dyn FnMut(&[Record]) -> Result<()>,
) -> Result<()> {
    for chunk in rx {
        fold(&chunk)?;
        give_back(chunk, spare);
    }
    Ok(())
}

/// Sends `chunk` back to the reader if this was the last hold on it.
fn give_back(chunk: Arc<Vec<Record>>, spare: &Sender<Vec<Record>>) {
    if let Some(records) = Arc::into_inner(chunk) {
        // The reader may be done: the chunk is then freed here.
        let _ = spare.send(records);
    }
}

/// A joined thread's result; a panic becomes an error.
fn joined(outcome: std::thread::Result<Result<()>>) -> Result<()> {
    outcome.unwrap_or_else(|_| Err(ProjectionError::Store("a fold or scan thread panicked".to_string())))
}
