//! `AppendStream`: many batches over one call, pipelined into group commit.
//!
//! Requests are submitted to the ledger in arrival order (which fixes their
//! commit order) and answered in that order. At most `max_in_flight`
//! requests wait for the disk; while that many do, the handler stops reading
//! the inbound stream, so HTTP/2 flow control pushes back on the producer.
//! The response channel holds at most `max_in_flight` responses, so a
//! producer that stops reading responses is stopped the same way. Nothing is
//! dropped and nothing is buffered without bound.
//!
//! Each request is authorized like a unary `Append`; one the caller may not
//! make is answered in place with `PERMISSION_DENIED`, like any other
//! failed request.
//!
//! Each request also takes its tokens from the principal's rate limits
//! (`crate::quota`). A stream is a producer that keeps sending, so a short
//! shortage is back-pressure, not an error: the handler waits for the
//! tokens (reading nothing more meanwhile) when they will be there within
//! [`MAX_RATE_WAIT`]. A longer shortage, or a batch above the burst, is
//! answered in place with `RESOURCE_EXHAUSTED` whose message says how long
//! to wait (`retry after N ms`); nothing of that request is appended.
//! While the handler waits, receipts of earlier requests wait too, at most
//! [`MAX_RATE_WAIT`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use ledger_client::proto;
use ledger_core::{Ledger, PendingAppend};
use tokio::sync::{mpsc, watch};
use tonic::{Code, Status, Streaming};

use crate::auth::{Authenticator, Caller};
use crate::convert;
use crate::quota::{Quota, Refusal, refusal_status};
use crate::service::{authorize_append, batch_size, check_and_submit};
use crate::status::status;

/// One request's place in the response order.
struct Slot {
    include_checkpoint: bool,
    state: Result<PendingAppend, Status>,
}

impl Slot {
    async fn outcome(&mut self) -> proto::AppendResponse {
        let result = match &mut self.state {
            Ok(pending) => pending.await.map_err(status),
            Err(status) => Err(status.clone()),
        };
        match result {
            Ok(outcome) => convert::append_response(&outcome, self.include_checkpoint),
            Err(status) => proto::AppendResponse {
                error: Some(proto::AppendError {
                    code: status.code() as i32,
                    message: status.message().to_string(),
                }),
                ..Default::default()
            },
        }
    }
}

/// Longest a request of a stream waits for its principal's tokens before it
/// is refused in place: long enough to smooth a producer slightly above its
/// rate, short enough that receipts of earlier requests are not held back
/// for long.
pub const MAX_RATE_WAIT: Duration = Duration::from_millis(250);

/// Takes the tokens of `batch`, waiting up to [`MAX_RATE_WAIT`] in all.
async fn admit(quota: &Quota, caller: &Caller, batch: &ledger_core::AppendRequest) -> Result<(), Status> {
    let (events, bytes) = batch_size(batch);
    let limits = quota.limits_of(caller);
    let deadline = tokio::time::Instant::now() + MAX_RATE_WAIT;
    loop {
        let now = tokio::time::Instant::now();
        match quota.admit_at(caller.name(), limits, events, bytes, now.into_std()) {
            Ok(()) => return Ok(()),
            Err(Refusal::Rate { retry_after, .. }) if now + retry_after <= deadline => {
                tokio::time::sleep(retry_after).await;
            }
            Err(refusal) => return Err(refusal_status(caller.name(), &refusal)),
        }
    }
}

/// Serves one `AppendStream` call until the producer closes its side (or
/// the server stops), then answers everything still in flight.
#[allow(clippy::too_many_arguments)] // One call site; a struct would only rename them.
pub async fn run(
    caller: Caller,
    auth: Arc<Authenticator>,
    quota: Arc<Quota>,
    ledger: Arc<Ledger>,
    mut inbound: Streaming<proto::AppendRequest>,
    tx: mpsc::Sender<Result<proto::AppendResponse, Status>>,
    max_in_flight: usize,
    mut stopping: watch::Receiver<bool>,
    max_message_bytes: usize,
) {
    let mut pending: VecDeque<Slot> = VecDeque::with_capacity(max_in_flight);
    let mut reading = true;
    let mut failure: Option<Status> = None;
    let mut requests = 0u64;
    loop {
        if !reading && pending.is_empty() {
            break;
        }
        tokio::select! {
            // Answer first: it frees a slot.
            biased;
            response = async { front(&mut pending).await }, if !pending.is_empty() => {
                pending.pop_front();
                if tx.send(Ok(response)).await.is_err() {
                    // The producer is gone. What it sent is still appended
                    // (the ledger owns those requests); its receipts are
                    // recoverable by retrying with the same ids.
                    tracing::debug!("append stream closed by the client with responses pending");
                    return;
                }
            }
            next = inbound.message(), if reading && pending.len() < max_in_flight => match next {
                Ok(Some(request)) => {
                    requests += 1;
                    let include_checkpoint = request.include_checkpoint;
                    let state = match authorize_append(&caller, &auth, &request).and_then(|()| convert::append_request(request)) {
                        Ok(batch) => match admit(&quota, &caller, &batch).await {
                            Ok(()) => check_and_submit(&ledger, batch).await.map_err(status),
                            Err(refused) => Err(refused),
                        },
                        Err(status) => Err(status),
                    };
                    pending.push_back(Slot { include_checkpoint, state });
                }
                Ok(None) => reading = false,
                Err(err) => {
                    reading = false;
                    failure = Some(inbound_error(err, max_message_bytes));
                }
            },
            _ = stopping.changed(), if reading => {
                tracing::info!(requests, "server stopping: no more requests read from this append stream");
                reading = false;
            }
        }
    }
    tracing::debug!(requests, "append stream finished");
    if let Some(status) = failure {
        let _ = tx.send(Err(status)).await;
    }
}

async fn front(pending: &mut VecDeque<Slot>) -> proto::AppendResponse {
    match pending.front_mut() {
        Some(slot) => slot.outcome().await,
        None => std::future::pending().await,
    }
}

/// tonic reports an oversized message as `OUT_OF_RANGE` with its own
/// wording; clients are told which limit, as for every other limit.
pub fn inbound_error(err: Status, max_message_bytes: usize) -> Status {
    if err.code() == Code::OutOfRange && err.message().contains("message length too large") {
        return Status::resource_exhausted(format!(
            "request message exceeds max_message_bytes ({max_message_bytes}): {}",
            err.message()
        ));
    }
    err
}
