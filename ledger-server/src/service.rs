//! The `ledger.v1.Ledger` gRPC service over a [`Ledger`].
//!
//! Reads, proofs and index lookups touch files and may wait for the indexer,
//! so they run on the blocking pool; appends are already asynchronous (the
//! writer thread does the I/O). An append's checks (validation, the secret
//! scan, producer signatures) are CPU work done before the batch is queued
//! for the writer: on the handler's task for a small batch, on the blocking
//! pool for a large one ([`check_and_submit`]).
//!
//! Every handler first takes the [`Caller`] the auth layer attached and
//! checks its grants (what each RPC needs is tabled in [`crate::auth`]).

use std::pin::Pin;
use std::sync::Arc;

use ledger_client::proto::{self, ledger_server};
use ledger_core::{AppendRequest, Ledger, LedgerError, PendingAppend};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::auth::{Authenticator, Caller, Permission};
use crate::config::ServerConfig;
use crate::quota::{Quota, StreamSlot};
use crate::status::status;
use crate::{append_stream, convert, subscribe};

/// Batches carrying at least this many payload bytes are checked on the
/// blocking pool: scanning and parsing run at a few hundred MB/s, so 64 KiB
/// is a few hundred microseconds, about as long as an async task should
/// hold its worker thread.
pub const BLOCKING_CHECK_BYTES: usize = 64 * 1024;

/// Checks a batch (on the blocking pool when it is large) and queues it for
/// the writer, in call order: a caller that awaits this before submitting
/// its next batch keeps its commit order. A batch refused for holding a
/// credential is logged by event, field path and rule, never by value.
pub(crate) async fn check_and_submit(ledger: &Arc<Ledger>, batch: AppendRequest) -> Result<PendingAppend, LedgerError> {
    let bytes: usize = batch.events.iter().map(|e| e.payload.len()).sum();
    let submitted = if bytes < BLOCKING_CHECK_BYTES {
        ledger.submit(batch).await
    } else {
        let checker = Arc::clone(ledger);
        match tokio::task::spawn_blocking(move || checker.check(batch)).await {
            Ok(Ok(checked)) => ledger.submit_checked(checked).await,
            Ok(Err(err)) => Err(err),
            Err(join) => Err(LedgerError::Io {
                context: "checking an append batch on the blocking pool".to_string(),
                source: std::io::Error::other(join.to_string()),
            }),
        }
    };
    if let Err(LedgerError::SecretDetected(hit)) = &submitted {
        tracing::warn!(
            event_index = hit.index,
            event_id = %hit.event_id,
            field_path = %hit.field_path,
            rule = %hit.rule,
            "append refused: an event holds a credential (the value is not logged)"
        );
    }
    submitted
}

/// A batch's events and payload bytes, as the per-principal rate limits
/// count them (`crate::quota`).
pub(crate) fn batch_size(batch: &AppendRequest) -> (u64, u64) {
    let bytes: usize = batch.events.iter().map(|e| e.payload.len()).sum();
    (batch.events.len() as u64, bytes as u64)
}

/// A stream of records or a status, as tonic wants it.
pub type RecordStream = Pin<Box<dyn Stream<Item = Result<proto::Record, Status>> + Send>>;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct LedgerService {
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) config: Arc<ServerConfig>,
    /// Who is calling, and the append rules in force.
    pub(crate) auth: Arc<Authenticator>,
    streams: Arc<Semaphore>,
    /// Per-principal rates and stream counts.
    pub(crate) quota: Arc<Quota>,
    /// Becomes `true` when the server shuts down: streaming calls end.
    pub(crate) stopping: watch::Receiver<bool>,
    /// Live records for every subscription, read once.
    fanout: Arc<subscribe::Fanout>,
}

impl LedgerService {
    /// A service over an open ledger.
    pub fn new(
        ledger: Arc<Ledger>,
        config: Arc<ServerConfig>,
        auth: Arc<Authenticator>,
        stopping: watch::Receiver<bool>,
    ) -> LedgerService {
        let streams = Arc::new(Semaphore::new(config.max_concurrent_streams));
        let quota = Arc::new(Quota::new(config.principal_limits));
        let fanout = subscribe::Fanout::start(Arc::clone(&ledger), stopping.clone());
        LedgerService {
            fanout,
            ledger,
            config,
            auth,
            streams,
            quota,
            stopping,
        }
    }

    /// A slot for one more streaming call of `caller`, or
    /// `RESOURCE_EXHAUSTED`. The principal's own limit is checked first,
    /// so one principal cannot hold every global slot, and a principal at
    /// its limit is told so rather than that the server is full.
    fn stream_permit(&self, caller: &Caller) -> Result<(StreamSlot, OwnedSemaphorePermit), Status> {
        let slot = self.quota.stream(caller)?;
        let permit = Arc::clone(&self.streams).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "max_concurrent_streams ({}) streaming calls are already open",
                self.config.max_concurrent_streams
            ))
        })?;
        Ok((slot, permit))
    }

    /// Runs a blocking ledger call on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Ledger) -> Result<T, LedgerError> + Send + 'static,
    {
        let ledger = Arc::clone(&self.ledger);
        tokio::task::spawn_blocking(move || f(&ledger))
            .await
            .map_err(|e| Status::internal(format!("ledger task failed: {e}")))?
            .map_err(status)
    }

    async fn checkpoint_of_size(&self, size: u64) -> Result<proto::Checkpoint, Status> {
        let latest = self.ledger.checkpoint();
        if latest.size() == size {
            return Ok(convert::checkpoint(&latest));
        }
        let signed = self.blocking(move |l| l.checkpoint_at(size)).await?;
        Ok(convert::checkpoint(&signed))
    }
}

/// A span carrying the request id (the caller's `x-request-id`, or a fresh
/// one), the caller's `x-correlation-id` and the principal, so every log
/// line of a call can be found together.
pub(crate) fn rpc_span<T>(method: &'static str, request: &Request<T>) -> tracing::Span {
    let meta = request.metadata();
    let header = |name: &str| meta.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let request_id = header("x-request-id").unwrap_or_else(|| Uuid::new_v4().to_string());
    let correlation_id = header("x-correlation-id").unwrap_or_default();
    let principal = request
        .extensions()
        .get::<Caller>()
        .map(|c| c.name().to_string())
        .unwrap_or_default();
    tracing::info_span!("rpc", method, request_id = %request_id, correlation_id = %correlation_id, principal = %principal)
}

/// `PERMISSION_DENIED` unless the caller may append to the stream of every
/// event, checked before anything of the request is looked at; then the
/// append rules of the principals file in force (producer keys, namespace
/// policies, vocabularies: [`crate::auth::Policy`]).
pub(crate) fn authorize_append(
    caller: &Caller,
    auth: &Authenticator,
    request: &proto::AppendRequest,
) -> Result<(), Status> {
    for (i, event) in request.events.iter().enumerate() {
        if !caller.may_stream(Permission::Append, &event.stream) {
            caller.require_stream(Permission::Append, &format!("events[{i}].stream"), &event.stream)?;
        }
    }
    auth.policy().check_append(caller, request)
}

#[tonic::async_trait]
impl ledger_server::Ledger for LedgerService {
    async fn append(&self, request: Request<proto::AppendRequest>) -> Result<Response<proto::AppendResponse>, Status> {
        let span = rpc_span("Append", &request);
        async move {
            let caller = Caller::of(&request)?;
            let request = request.into_inner();
            authorize_append(&caller, &self.auth, &request)?;
            let include = request.include_checkpoint;
            let batch = convert::append_request(request)?;
            let n = batch.events.len();
            let (events, bytes) = batch_size(&batch);
            if let Err(refused) = self.quota.admit(&caller, events, bytes) {
                tracing::info!(error = %refused.message(), "append refused by the principal's rate limit");
                return Err(refused);
            }
            let outcome = match check_and_submit(&self.ledger, batch).await {
                Ok(pending) => pending.await,
                Err(err) => Err(err),
            };
            match outcome {
                Ok(outcome) => {
                    tracing::debug!(events = n, deduplicated = outcome.deduplicated, "appended");
                    Ok(Response::new(convert::append_response(&outcome, include)))
                }
                Err(err) => {
                    tracing::info!(error = %err, "append rejected");
                    Err(status(err))
                }
            }
        }
        .instrument(span)
        .await
    }

    type AppendStreamStream = Pin<Box<dyn Stream<Item = Result<proto::AppendResponse, Status>> + Send>>;

    async fn append_stream(
        &self,
        request: Request<Streaming<proto::AppendRequest>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        let span = rpc_span("AppendStream", &request);
        let caller = Caller::of(&request)?;
        let permit = self.stream_permit(&caller)?;
        let capacity = self.config.max_in_flight_per_stream;
        let (tx, rx) = mpsc::channel(capacity);
        let task = append_stream::run(
            caller,
            Arc::clone(&self.auth),
            Arc::clone(&self.quota),
            Arc::clone(&self.ledger),
            request.into_inner(),
            tx,
            capacity,
            self.stopping.clone(),
            self.config.max_message_bytes,
        );
        tokio::spawn(
            async move {
                let _permit = permit;
                task.await;
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type ReadStream = RecordStream;

    async fn read(&self, request: Request<proto::ReadRequest>) -> Result<Response<RecordStream>, Status> {
        let span = rpc_span("Read", &request);
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        if request.stream.is_empty() {
            caller.require_some_read()?;
        } else {
            caller.require_stream(Permission::Read, "stream", &request.stream)?;
        }
        let permit = self.stream_permit(&caller)?;
        let end = self.ledger.len();
        if request.stream.is_empty() && request.from_seq > end {
            return Err(Status::out_of_range(format!(
                "from_seq: {} is beyond the log, which holds {end} records",
                request.from_seq
            )));
        }
        let (tx, rx) = mpsc::channel(self.config.subscriber_buffer);
        let service = self.clone();
        tokio::spawn(
            async move {
                let _permit = permit;
                if let Err(status) = read_records(&service, &caller, request, end, &tx).await {
                    let _ = tx.send(Err(status)).await;
                }
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type SubscribeStream = RecordStream;

    async fn subscribe(&self, request: Request<proto::SubscribeRequest>) -> Result<Response<RecordStream>, Status> {
        let span = rpc_span("Subscribe", &request);
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let filter = subscribe::Filter::new(&request, caller.clone())?;
        let permit = self.stream_permit(&caller)?;
        let len = self.ledger.len();
        if request.from_seq > len {
            return Err(Status::out_of_range(format!(
                "from_seq: {} is beyond the log, which holds {len} records (resume from the last seq received + 1)",
                request.from_seq
            )));
        }
        let (tx, rx) = mpsc::channel(self.config.subscriber_buffer);
        let ledger = Arc::clone(&self.ledger);
        let fanout = Arc::clone(&self.fanout);
        let stopping = self.stopping.clone();
        let capacity = self.config.subscriber_buffer;
        tokio::spawn(
            async move {
                let _permit = permit;
                tracing::debug!(from_seq = request.from_seq, "subscription opened");
                subscribe::run(ledger, fanout, filter, request.from_seq, tx, stopping, capacity).await;
                tracing::debug!("subscription closed");
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_record(&self, request: Request<proto::GetRecordRequest>) -> Result<Response<proto::Record>, Status> {
        let span = rpc_span("GetRecord", &request);
        async move {
            let caller = Caller::of(&request)?;
            caller.require_some_read()?;
            let record = match request.into_inner().key {
                None => return Err(Status::invalid_argument("key: set seq or event_id")),
                Some(proto::get_record_request::Key::Seq(seq)) => {
                    let record = self.blocking(move |l| l.read(seq)).await?;
                    if !caller.may_read_stream(record.stream()) {
                        // Every seq below the log's size exists (the
                        // checkpoint says so): refusing tells nothing more.
                        return Err(Status::permission_denied(format!(
                            "seq: principal {:?} may not read the record at seq {seq}",
                            caller.name()
                        )));
                    }
                    record
                }
                Some(proto::get_record_request::Key::EventId(id)) => {
                    let uuid = Uuid::parse_str(&id)
                        .map_err(|e| Status::invalid_argument(format!("event_id: not a UUID: {e}")))?;
                    // A record the caller may not read is answered exactly
                    // as a missing one: an id says nothing of its existence.
                    self.blocking(move |l| l.get_by_id(uuid))
                        .await?
                        .filter(|record| caller.may_read_stream(record.stream()))
                        .ok_or_else(|| Status::not_found(format!("event_id: no record with event id {uuid}")))?
                }
            };
            Ok(Response::new(convert::record(record)))
        }
        .instrument(span)
        .await
    }

    async fn get_checkpoint(
        &self,
        request: Request<proto::GetCheckpointRequest>,
    ) -> Result<Response<proto::Checkpoint>, Status> {
        let span = rpc_span("GetCheckpoint", &request);
        async move {
            Caller::of(&request)?.require_some_grant()?;
            let checkpoint = match request.into_inner().size {
                None => convert::checkpoint(&self.ledger.checkpoint()),
                Some(size) => self.checkpoint_of_size(size).await?,
            };
            Ok(Response::new(checkpoint))
        }
        .instrument(span)
        .await
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<proto::GetInclusionProofRequest>,
    ) -> Result<Response<proto::InclusionProof>, Status> {
        let span = rpc_span("GetInclusionProof", &request);
        async move {
            let caller = Caller::of(&request)?;
            caller.require_some_grant()?;
            let request = request.into_inner();
            let seq = request.seq;
            let tree_size = request.tree_size.unwrap_or_else(|| self.ledger.checkpoint().size());
            if seq >= tree_size {
                return Err(Status::out_of_range(format!(
                    "seq: {seq} is not in a tree of {tree_size} records"
                )));
            }
            let record = self.blocking(move |l| l.read(seq)).await?;
            // Hashes only: whoever may append to the namespace may prove
            // that its evidence is in the log.
            if !caller.may_stream(Permission::Read, record.stream())
                && !caller.may_stream(Permission::Append, record.stream())
            {
                return Err(Status::permission_denied(format!(
                    "seq: principal {:?} may neither read nor append to the namespace of the record at seq {seq}",
                    caller.name()
                )));
            }
            let record_hash = record.record_hash;
            let hashes = self.blocking(move |l| l.inclusion_proof(seq, tree_size)).await?;
            let checkpoint = self.checkpoint_of_size(tree_size).await?;
            Ok(Response::new(proto::InclusionProof {
                seq,
                tree_size,
                record_hash: record_hash.to_vec(),
                hashes: hashes.iter().map(|h| h.to_vec()).collect(),
                checkpoint: Some(checkpoint),
            }))
        }
        .instrument(span)
        .await
    }

    async fn get_consistency_proof(
        &self,
        request: Request<proto::GetConsistencyProofRequest>,
    ) -> Result<Response<proto::ConsistencyProof>, Status> {
        let span = rpc_span("GetConsistencyProof", &request);
        async move {
            Caller::of(&request)?.require_some_grant()?;
            let request = request.into_inner();
            let old_size = request.old_size;
            let new_size = request.new_size.unwrap_or_else(|| self.ledger.checkpoint().size());
            if old_size > new_size {
                return Err(Status::invalid_argument(format!(
                    "old_size: {old_size} is greater than new_size {new_size}"
                )));
            }
            let hashes = self.blocking(move |l| l.consistency_proof(old_size, new_size)).await?;
            let old_checkpoint = self.checkpoint_of_size(old_size).await?;
            let new_checkpoint = self.checkpoint_of_size(new_size).await?;
            Ok(Response::new(proto::ConsistencyProof {
                old_size,
                new_size,
                hashes: hashes.iter().map(|h| h.to_vec()).collect(),
                old_checkpoint: Some(old_checkpoint),
                new_checkpoint: Some(new_checkpoint),
            }))
        }
        .instrument(span)
        .await
    }

    async fn get_ledger_info(
        &self,
        request: Request<proto::GetLedgerInfoRequest>,
    ) -> Result<Response<proto::LedgerInfo>, Status> {
        Caller::of(&request)?.require_some_grant()?;
        let identity = self.ledger.identity();
        Ok(Response::new(proto::LedgerInfo {
            origin: identity.origin.clone(),
            hash_alg: identity.tree_hash.to_string(),
            verifier_key: self.ledger.verifier_key().map_err(status)?.to_string(),
            size: self.ledger.len(),
        }))
    }
}

/// Records per blocking read.
const READ_CHUNK: u64 = 256;

/// Sends the records a `Read` asks for. By seq, only the records the
/// caller may read are sent (and counted against `limit`); a stream's
/// namespace was checked before.
async fn read_records(
    service: &LedgerService,
    caller: &Caller,
    request: proto::ReadRequest,
    end: u64,
    tx: &mpsc::Sender<Result<proto::Record, Status>>,
) -> Result<(), Status> {
    let mut remaining = if request.limit == 0 { u64::MAX } else { request.limit };
    if request.stream.is_empty() {
        let mut next = request.from_seq;
        // Reading for a caller who may not read everything skips records,
        // so chunks are not cut to `remaining`.
        let everything = caller.may_everywhere(Permission::Read);
        while next < end && remaining > 0 {
            let n = if everything {
                READ_CHUNK.min(end - next).min(remaining)
            } else {
                READ_CHUNK.min(end - next)
            };
            let records = service.blocking(move |l| l.read_range(next, n as usize)).await?;
            if records.is_empty() {
                break;
            }
            next += records.len() as u64;
            for record in records {
                if remaining == 0 {
                    break;
                }
                if !caller.may_read_stream(record.stream()) {
                    continue;
                }
                if tx.send(Ok(convert::record(record))).await.is_err() {
                    return Ok(());
                }
                remaining -= 1;
            }
        }
    } else {
        let mut version = request.from_version;
        while remaining > 0 {
            let stream = request.stream.clone();
            let n = READ_CHUNK.min(remaining) as usize;
            let records = service.blocking(move |l| l.read_stream(&stream, version, n)).await?;
            let Some(last) = records.last() else { break };
            version = last.stream_version() + 1;
            let at_end = records.len() < n || records.iter().any(|r| r.seq() >= end);
            for record in records.into_iter().filter(|r| r.seq() < end) {
                if tx.send(Ok(convert::record(record))).await.is_err() {
                    return Ok(());
                }
                remaining -= 1;
                if remaining == 0 {
                    break;
                }
            }
            if at_end {
                break;
            }
        }
    }
    Ok(())
}
