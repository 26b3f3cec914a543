//! `Subscribe`: catch-up, then live, from one cursor.
//!
//! There is no separate "live" path to hand over to: the subscription keeps
//! one cursor `next` and the committed length `len` (from the ledger's
//! watch, which moves after every group commit). It reads `next..len` from
//! the log in chunks, then waits for `len` to move. Each record is sent once
//! because `next` only moves forward past what was read, and none is skipped
//! because only committed records (`< len`) are ever read. A slow client
//! fills its bounded channel and the subscription simply waits: it holds no
//! records beyond one chunk.

use std::sync::Arc;

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
        let stream = record.stream();
        self.stream.as_deref().is_none_or(|s| s == stream)
            && self.stream_prefix.as_deref().is_none_or(|p| stream.starts_with(p))
            && (self.types.is_empty() || self.types.iter().any(|t| t == record.event_type()))
            && self.caller.may_read_stream(stream)
    }
}

/// Feeds `tx` from `from` onwards until the client goes away, the server
/// stops, or reading fails (the error is sent as the stream's status).
pub async fn run(
    ledger: Arc<Ledger>,
    filter: Filter,
    from: u64,
    tx: mpsc::Sender<Result<proto::Record, Status>>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut len_rx = ledger.watch_len();
    let mut next = from;
    let stopped = |tx: mpsc::Sender<Result<proto::Record, Status>>| async move {
        // Tell the client to resume elsewhere or later, not that it is done.
        let _ = tx
            .send(Err(Status::unavailable(
                "server is shutting down; resume from the last seq + 1",
            )))
            .await;
    };
    loop {
        if *stopping.borrow() {
            return stopped(tx).await;
        }
        let len = *len_rx.borrow_and_update();
        while next < len {
            let n = CHUNK.min(len - next) as usize;
            let reader = Arc::clone(&ledger);
            let read = tokio::task::spawn_blocking(move || reader.read_range(next, n)).await;
            let records = match read {
                Ok(Ok(records)) if !records.is_empty() => records,
                Ok(Ok(_)) => {
                    let _ = tx
                        .send(Err(Status::internal(format!(
                            "seq {next}: committed record not readable"
                        ))))
                        .await;
                    return;
                }
                Ok(Err(err)) => {
                    let _ = tx.send(Err(status(err))).await;
                    return;
                }
                Err(err) => {
                    let _ = tx.send(Err(Status::internal(format!("read task failed: {err}")))).await;
                    return;
                }
            };
            for record in records {
                next = record.seq() + 1;
                if !filter.matches(&record) {
                    continue;
                }
                tokio::select! {
                    sent = tx.send(Ok(convert::record(record))) => if sent.is_err() { return },
                    _ = stopping.changed() => return stopped(tx).await,
                }
            }
        }
        tokio::select! {
            changed = len_rx.changed() => if changed.is_err() { return },
            _ = stopping.changed() => return stopped(tx).await,
            _ = tx.closed() => return,
        }
    }
}
