//! The `ledger.v1.Projections` gRPC service: status, faults, replay and
//! queries of the built-in projections.
//!
//! Everything here touches sled or folds records, so it runs on the
//! blocking pool; a replay streams its progress from there.
//!
//! A projection folds records of every namespace into one state and no row
//! says which namespaces it came from, so reading any of it needs `read` on
//! `*`, and a replay (an operation on the whole server) `admin` on `*`.

use std::pin::Pin;
use std::sync::Arc;

use ledger_client::proto::{self, projections_server};
use ledger_core::projection::builtin::{AsOf, Builtins};
use ledger_core::projection::{ProjectionError, Projections, ReplayProgress};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::auth::{Caller, Permission};
use crate::service::rpc_span;
use crate::status::projection_status;

/// Most faults one ListFaults call returns.
const MAX_FAULTS: u32 = 10_000;

/// The service: the engine and the built-ins' handles.
#[derive(Clone, Debug)]
pub struct ProjectionsService {
    engine: Arc<Projections>,
    builtins: Arc<Builtins>,
}

impl ProjectionsService {
    /// A service over a running engine with the built-ins registered.
    pub fn new(engine: Arc<Projections>, builtins: Arc<Builtins>) -> ProjectionsService {
        ProjectionsService { engine, builtins }
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Projections, &Builtins) -> Result<T, ProjectionError> + Send + 'static,
    {
        let (engine, builtins) = (Arc::clone(&self.engine), Arc::clone(&self.builtins));
        tokio::task::spawn_blocking(move || f(&engine, &builtins))
            .await
            .map_err(|e| Status::internal(format!("projection task failed: {e}")))?
            .map_err(projection_status)
    }
}

fn progress_message(p: &ReplayProgress) -> proto::ReplayProgress {
    proto::ReplayProgress {
        done: p.done,
        total: p.total,
        rate: p.rate,
        ..Default::default()
    }
}

/// A stream of replay progress, as tonic wants it.
pub type ReplayStream = Pin<Box<dyn Stream<Item = Result<proto::ReplayProgress, Status>> + Send>>;

#[tonic::async_trait]
impl projections_server::Projections for ProjectionsService {
    async fn get_status(
        &self,
        request: Request<proto::GetStatusRequest>,
    ) -> Result<Response<proto::GetStatusResponse>, Status> {
        let span = rpc_span("GetStatus", &request);
        Caller::of(&request)?.require_everywhere(Permission::Read)?;
        let request = request.into_inner();
        self.blocking(move |engine, _| {
            let mut out = Vec::new();
            for status in engine.status()? {
                if !request.name.is_empty() && status.name != request.name {
                    continue;
                }
                let mut message = proto::ProjectionStatus {
                    name: status.name.clone(),
                    version: status.version,
                    applied: status.applied,
                    log_len: status.log_len,
                    lag: status.lag,
                    faults: status.faults,
                    generation: status.generation,
                    replay: status.replay.as_ref().map(progress_message),
                    ..Default::default()
                };
                if request.include_digest {
                    let digest = engine.digest(&status.name)?;
                    message.digest = digest.digest;
                    message.digest_applied = digest.applied;
                    message.digest_entries = digest.entries;
                }
                out.push(message);
            }
            if !request.name.is_empty() && out.is_empty() {
                return Err(ProjectionError::Unknown(request.name));
            }
            Ok(proto::GetStatusResponse { projections: out })
        })
        .instrument(span)
        .await
        .map(Response::new)
    }

    async fn list_faults(
        &self,
        request: Request<proto::ListFaultsRequest>,
    ) -> Result<Response<proto::ListFaultsResponse>, Status> {
        let span = rpc_span("ListFaults", &request);
        Caller::of(&request)?.require_everywhere(Permission::Read)?;
        let request = request.into_inner();
        if request.limit > MAX_FAULTS {
            return Err(Status::invalid_argument(format!(
                "limit: {} exceeds the maximum of {MAX_FAULTS}",
                request.limit
            )));
        }
        let limit = if request.limit == 0 { 100 } else { request.limit } as usize;
        self.blocking(move |engine, _| {
            let faults = engine.faults(&request.name, request.from_seq, limit)?;
            Ok(proto::ListFaultsResponse {
                faults: faults
                    .into_iter()
                    .map(|(seq, reason)| proto::Fault { seq, reason })
                    .collect(),
            })
        })
        .instrument(span)
        .await
        .map(Response::new)
    }

    type ReplayStream = ReplayStream;

    async fn replay(&self, request: Request<proto::ReplayRequest>) -> Result<Response<ReplayStream>, Status> {
        let span = rpc_span("Replay", &request);
        Caller::of(&request)?.require_everywhere(Permission::Admin)?;
        let request = request.into_inner();
        if !self.engine.names().contains(&request.name.as_str()) {
            return Err(projection_status(ProjectionError::Unknown(request.name)));
        }
        let (tx, rx) = mpsc::channel(16);
        let engine = Arc::clone(&self.engine);
        let _entered = span.enter();
        tokio::task::spawn_blocking(move || {
            let outcome = engine.replay(&request.name, request.from_seq, |p| {
                // A full channel (slow reader) skips a report, never blocks
                // the replay.
                let _ = tx.try_send(Ok(progress_message(p)));
            });
            let last = match outcome {
                Ok(outcome) => Ok(proto::ReplayProgress {
                    done: outcome.records,
                    total: outcome.records,
                    rate: outcome.records as f64 / outcome.seconds.max(1e-9),
                    finished: true,
                    faults: outcome.faults,
                    digest: outcome.digest.digest,
                    seconds: outcome.seconds,
                }),
                Err(err) => Err(projection_status(err)),
            };
            let _ = tx.blocking_send(last);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn query(&self, request: Request<proto::QueryRequest>) -> Result<Response<proto::QueryResponse>, Status> {
        let span = rpc_span("Query", &request);
        Caller::of(&request)?.require_everywhere(Permission::Read)?;
        let request = request.into_inner();
        let as_of = match request.as_of.and_then(|a| a.point) {
            None => AsOf::Live,
            Some(proto::as_of::Point::Seq(seq)) => AsOf::Seq(seq),
            Some(proto::as_of::Point::Time(t)) => {
                let time = chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(u32::MAX))
                    .ok_or_else(|| Status::invalid_argument("as_of.time: not a valid timestamp"))?;
                AsOf::Time(time)
            }
        };
        self.blocking(move |_, builtins| {
            let answer = builtins.query(&request.view, &request.filter, as_of)?;
            Ok(proto::QueryResponse {
                applied: answer.applied,
                rows_json: answer.rows,
            })
        })
        .instrument(span)
        .await
        .map(Response::new)
    }
}
