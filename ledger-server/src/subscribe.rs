//! `Subscribe`: catch-up from the log, then live from the shared fan-out.
//!
//! A subscription keeps one cursor `next` (every record below it was sent
//! or filtered out). It first reads `next..len` from the log in chunks, as
//! far as the committed length goes. Then it registers with the
//! [`Fanout`]: one task for the whole server that reads each new record
//! once, converts it once, and offers it only to the subscriptions whose
//! filter it passes (by exact stream through a map, others by their
//! filter). So a thousand subscriptions of a thousand streams cost one read
//! per record and one wake-up per delivery, not a thousand reads and wake-ups
//! per commit, which is what reading the log per subscription cost.
//!
//! The hand-over has no gap and no duplicate: registering returns the
//! fan-out's position `d` (every record below it has been offered to the
//! registered); the subscription reads `next..d` from the log itself, then
//! takes its channel, which holds only records from `d` on, and drops any
//! below `next`. A client too slow for its bounded channel is dropped from
//! the fan-out (the dispatcher never waits for anyone) and goes back to
//! reading the log from its cursor, then registers again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ledger_client::proto;
use ledger_core::{Ledger, Record};
use tokio::sync::{mpsc, watch};
use tonic::Status;

use crate::auth::{Caller, Permission};
use crate::convert;
use crate::status::status;

/// Records read per blocking call.
const CHUNK: u64 = 512;

/// Which records a subscription delivers: those the request asks for, of
/// them only those the caller may read. A record it may not read is
/// skipped like one of another stream: nothing is sent for it.
#[derive(Clone, Debug)]
pub struct Filter {
    caller: Caller,
    stream: Option<String>,
    stream_prefix: Option<String>,
    types: Vec<String>,
}

impl Filter {
    /// The filter of a request, or `INVALID_ARGUMENT` naming the field, or
    /// `PERMISSION_DENIED`: a stream (or a prefix holding a `/`, which
    /// fixes the namespace) needs `read` on its namespace; anything wider,
    /// `read` somewhere.
    pub fn new(request: &proto::SubscribeRequest, caller: Caller) -> Result<Filter, Status> {
        if !request.stream.is_empty() && !request.stream_prefix.is_empty() {
            return Err(Status::invalid_argument(
                "stream, stream_prefix: set at most one of them",
            ));
        }
        if let Some(i) = request.types.iter().position(String::is_empty) {
            return Err(Status::invalid_argument(format!("types[{i}]: must not be empty")));
        }
        if !request.stream.is_empty() {
            caller.require_stream(Permission::Read, "stream", &request.stream)?;
        } else if request.stream_prefix.contains('/') {
            caller.require_stream(Permission::Read, "stream_prefix", &request.stream_prefix)?;
        } else {
            caller.require_some_read()?;
        }
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Ok(Filter {
            caller,
            stream: non_empty(&request.stream),
            stream_prefix: non_empty(&request.stream_prefix),
            types: request.types.clone(),
        })
    }

    /// Whether a record passes.
    pub fn matches(&self, record: &Record) -> bool {
        self.matches_fields(record.stream(), record.event_type())
    }

    fn matches_fields(&self, stream: &str, event_type: &str) -> bool {
        self.stream.as_deref().is_none_or(|s| s == stream)
            && self.stream_prefix.as_deref().is_none_or(|p| stream.starts_with(p))
            && (self.types.is_empty() || self.types.iter().any(|t| t == event_type))
            && self.caller.may_read_stream(stream)
    }
}

/// A record as the fan-out hands it out: converted once, shared.
#[derive(Debug)]
pub struct Live {
    seq: u64,
    stream: String,
    event_type: String,
    record: proto::Record,
}

/// One registered subscription.
struct Slot {
    filter: Filter,
    tx: mpsc::Sender<Arc<Live>>,
}

#[derive(Default)]
struct Hub {
    /// Every record below this has been offered to every registered slot.
    dispatched: u64,
    /// Subscriptions of one exact stream, by stream.
    by_stream: HashMap<String, Vec<Slot>>,
    /// Every other subscription.
    wide: Vec<Slot>,
}

impl Hub {
    fn is_empty(&self) -> bool {
        self.wide.is_empty() && self.by_stream.is_empty()
    }

    /// Offers `live` to the slots it matches; drops slots whose client is
    /// gone or too slow (their subscription falls back to the log).
    fn offer(&mut self, live: &Arc<Live>) {
        let keep = |slot: &Slot| -> bool {
            if !slot.filter.matches_fields(&live.stream, &live.event_type) {
                return !slot.tx.is_closed();
            }
            slot.tx.try_send(Arc::clone(live)).is_ok()
        };
        if let Some(slots) = self.by_stream.get_mut(&live.stream) {
            slots.retain(keep);
            if slots.is_empty() {
                self.by_stream.remove(&live.stream);
            }
        }
        if !self.wide.is_empty() {
            self.wide.retain(keep);
        }
    }
}

/// The server's one reader of new records for live subscriptions.
pub struct Fanout {
    ledger: Arc<Ledger>,
    hub: Mutex<Hub>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fanout")
    }
}

impl Fanout {
    /// A fan-out over `ledger`, starting at its current end; its task runs
    /// until `stopping` turns true.
    pub fn start(ledger: Arc<Ledger>, stopping: watch::Receiver<bool>) -> Arc<Fanout> {
        let fanout = Arc::new(Fanout {
            hub: Mutex::new(Hub {
                dispatched: ledger.len(),
                ..Hub::default()
            }),
            ledger,
        });
        tokio::spawn(Arc::clone(&fanout).dispatch(stopping));
        fanout
    }

    fn hub(&self) -> std::sync::MutexGuard<'_, Hub> {
        match self.hub.lock() {
            Ok(hub) => hub,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Registers `filter`; returns the channel and the position from which
    /// records will come through it.
    fn register(&self, filter: Filter, capacity: usize) -> (mpsc::Receiver<Arc<Live>>, u64) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let mut hub = self.hub();
        match filter.stream.clone() {
            Some(stream) => hub.by_stream.entry(stream).or_default().push(Slot { filter, tx }),
            None => hub.wide.push(Slot { filter, tx }),
        }
        (rx, hub.dispatched)
    }

    async fn dispatch(self: Arc<Fanout>, mut stopping: watch::Receiver<bool>) {
        let mut len_rx = self.ledger.watch_len();
        loop {
            if *stopping.borrow() {
                return;
            }
            let len = *len_rx.borrow_and_update();
            loop {
                let from = {
                    let mut hub = self.hub();
                    if hub.is_empty() {
                        // Nobody to offer to: nothing to read.
                        hub.dispatched = hub.dispatched.max(len);
                    }
                    hub.dispatched
                };
                if from >= len {
                    break;
                }
                let n = CHUNK.min(len - from) as usize;
                let reader = Arc::clone(&self.ledger);
                let records = match tokio::task::spawn_blocking(move || reader.read_range(from, n)).await {
                    Ok(Ok(records)) if !records.is_empty() => records,
                    Ok(Ok(_)) | Ok(Err(_)) | Err(_) => {
                        // Leave it to the subscriptions: dropping every
                        // slot sends each back to reading the log, which
                        // reports the error to its client.
                        let mut hub = self.hub();
                        hub.by_stream.clear();
                        hub.wide.clear();
                        hub.dispatched = from;
                        break;
                    }
                };
                let lives: Vec<Arc<Live>> = records
                    .into_iter()
                    .map(|record| {
                        Arc::new(Live {
                            seq: record.seq(),
                            stream: record.stream().to_string(),
                            event_type: record.event_type().to_string(),
                            record: convert::record(record),
                        })
                    })
                    .collect();
                let mut hub = self.hub();
                if hub.dispatched != from {
                    continue;
                }
                for live in &lives {
                    hub.offer(live);
                }
                hub.dispatched = from + lives.len() as u64;
            }
            tokio::select! {
                changed = len_rx.changed() => if changed.is_err() { return },
                changed = stopping.changed() => if changed.is_err() { return },
            }
        }
    }
}

/// Why reading the log stopped.
enum Read {
    /// Caught up to the length it was asked for.
    Done,
    /// The client went away, the server stops, or an error was sent.
    Over,
}

/// Sends the records of `next..until` that pass `filter`, from the log.
async fn from_log(
    ledger: &Arc<Ledger>,
    filter: &Filter,
    next: &mut u64,
    until: u64,
    tx: &mpsc::Sender<Result<proto::Record, Status>>,
    stopping: &mut watch::Receiver<bool>,
) -> Read {
    while *next < until {
        let n = CHUNK.min(until - *next) as usize;
        let reader = Arc::clone(ledger);
        let from = *next;
        let read = tokio::task::spawn_blocking(move || reader.read_range(from, n)).await;
        let records = match read {
            Ok(Ok(records)) if !records.is_empty() => records,
            Ok(Ok(_)) => {
                let _ = tx
                    .send(Err(Status::internal(format!(
                        "seq {from}: committed record not readable"
                    ))))
                    .await;
                return Read::Over;
            }
            Ok(Err(err)) => {
                let _ = tx.send(Err(status(err))).await;
                return Read::Over;
            }
            Err(err) => {
                let _ = tx.send(Err(Status::internal(format!("read task failed: {err}")))).await;
                return Read::Over;
            }
        };
        for record in records {
            *next = record.seq() + 1;
            if !filter.matches(&record) {
                continue;
            }
            tokio::select! {
                sent = tx.send(Ok(convert::record(record))) => if sent.is_err() { return Read::Over },
                _ = stopping.changed() => return Read::Over,
            }
        }
    }
    Read::Done
}

/// Feeds `tx` from `from` onwards until the client goes away, the server
/// stops, or reading fails (the error is sent as the stream's status).
pub async fn run(
    ledger: Arc<Ledger>,
    fanout: Arc<Fanout>,
    filter: Filter,
    from: u64,
    tx: mpsc::Sender<Result<proto::Record, Status>>,
    mut stopping: watch::Receiver<bool>,
    capacity: usize,
) {
    let stopped = |tx: mpsc::Sender<Result<proto::Record, Status>>| async move {
        // Tell the client to resume elsewhere or later, not that it is done.
        let _ = tx
            .send(Err(Status::unavailable(
                "server is shutting down; resume from the last seq + 1",
            )))
            .await;
    };
    let mut next = from;
    loop {
        if *stopping.borrow() {
            return stopped(tx).await;
        }
        // Catch up from the log as far as it is committed.
        let len = ledger.len();
        if let Read::Over = from_log(&ledger, &filter, &mut next, len, &tx, &mut stopping).await {
            if *stopping.borrow() {
                return stopped(tx).await;
            }
            return;
        }
        // Live: what the fan-out offered below `next` is dropped, what it
        // had offered before registering is read here.
        let (mut live, dispatched) = fanout.register(filter.clone(), capacity);
        if let Read::Over = from_log(&ledger, &filter, &mut next, dispatched, &tx, &mut stopping).await {
            if *stopping.borrow() {
                return stopped(tx).await;
            }
            return;
        }
        loop {
            tokio::select! {
                offered = live.recv() => match offered {
                    Some(record) => {
                        if record.seq < next {
                            continue;
                        }
                        next = record.seq + 1;
                        tokio::select! {
                            sent = tx.send(Ok(record.record.clone())) => if sent.is_err() { return },
                            _ = stopping.changed() => return stopped(tx).await,
                        }
                    }
                    // Dropped by the fan-out (too slow, or a read failed
                    // there): back to the log from the cursor.
                    None => break,
                },
                _ = stopping.changed() => return stopped(tx).await,
                _ = tx.closed() => return,
            }
        }
    }
}
