//! The `ledger.v1.Bundles` gRPC service: select records from the bundle
//! index, assemble and seal a bundle (`ledger_core::bundle`), store it
//! (`bundle_store`), stream it back, list what is stored.
//!
//! A bundle stands for everything its selector picks, so Create refuses a
//! caller who may not read every record it would hold (rather than leave
//! records out); the summary keeps the bundle's namespaces, and Get and
//! List treat a bundle the caller may not wholly read as absent.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read as _;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ledger_client::proto::{self, bundles_server};
use ledger_core::Ledger;
use ledger_core::bundle::{BundleOptions, assemble};
use ledger_core::projection::builtin::Builtins;
use ledger_core::projection::builtin::views::{SELECTOR_KEYS, selector_from_filter};
use ledger_verify::bundle::manifest_digest;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::auth::{Caller, Permission, namespace_of};
use crate::bundle_store::{BundleStore, BundleSummary, StoreError};
use crate::service::rpc_span;
use crate::status::{projection_status, status};

/// How long Create waits for the bundle index to reach the log's end.
const INDEX_WAIT: Duration = Duration::from_secs(30);
/// Bytes per streamed chunk.
const CHUNK_BYTES: usize = 256 * 1024;

/// The service.
#[derive(Clone, Debug)]
pub struct BundlesService {
    ledger: Arc<Ledger>,
    builtins: Arc<Builtins>,
    store: BundleStore,
}

impl BundlesService {
    /// A service over the ledger, the bundle index and a store directory.
    pub fn new(ledger: Arc<Ledger>, builtins: Arc<Builtins>, store: BundleStore) -> BundlesService {
        BundlesService {
            ledger,
            builtins,
            store,
        }
    }
}

fn store_status(err: StoreError) -> Status {
    match err {
        StoreError::BadId(_) => Status::invalid_argument(err.to_string()),
        StoreError::NotFound(_) => Status::not_found(err.to_string()),
        other => {
            tracing::error!(error = %other, "bundle store failed");
            Status::internal("server-side bundle store error (logged by the server)")
        }
    }
}

fn summary_message(s: BundleSummary) -> proto::BundleSummary {
    proto::BundleSummary {
        bundle_id: s.bundle_id,
        created_at: s.created_at,
        selector: s.selector.into_iter().collect(),
        record_count: s.record_count,
        checkpoint_size: s.checkpoint_size,
        bytes: s.bytes,
        manifest_digest: s.manifest_digest,
        payloads_withheld: s.payloads_withheld,
    }
}

/// `NOT_FOUND` for a bundle the caller may not see, worded as for a
/// missing one.
fn hidden(id: &str) -> Status {
    store_status(StoreError::NotFound(id.to_string()))
}

/// The blocking half of Create.
fn create(
    ledger: &Ledger,
    builtins: &Builtins,
    store: &BundleStore,
    caller: &Caller,
    request: proto::CreateBundleRequest,
) -> Result<proto::CreateBundleResponse, Status> {
    if request.selector.is_empty() {
        return Err(Status::invalid_argument(format!(
            "selector: choose records by at least one of {}",
            SELECTOR_KEYS.join(", ")
        )));
    }
    let filter: HashMap<String, String> = request.selector.clone().into_iter().collect();
    let selector = selector_from_filter(&filter, "selector").map_err(projection_status)?;
    // A stream fixes the namespace: refuse before looking anything up.
    if let Some(stream) = request.selector.get("stream") {
        caller.require_stream(Permission::Read, "selector.stream", stream)?;
    } else {
        caller.require_some_read()?;
    }
    let len = ledger.len();
    if let Some(beyond) = request.consistency_from.iter().find(|&&size| size > len) {
        return Err(Status::invalid_argument(format!(
            "consistency_from: tree size {beyond} is beyond the log, which holds {len} records"
        )));
    }
    // The index follows the log on its own thread: let it reach what is
    // committed now, so a bundle made right after an append includes it.
    if !builtins.subjects.wait_applied(len, INDEX_WAIT) {
        return Err(Status::unavailable(format!(
            "the bundle index has not reached the log's {len} records within {INDEX_WAIT:?}; retry"
        )));
    }
    let seqs = builtins.subjects.read().select(&selector);
    if seqs.is_empty() {
        return Err(Status::not_found("selector: no records match it"));
    }
    let mut namespaces = BTreeSet::new();
    for &seq in &seqs {
        let record = ledger.read(seq).map_err(status)?;
        namespaces.insert(namespace_of(record.stream()).to_string());
    }
    let namespaces: Vec<String> = namespaces.into_iter().collect();
    if !caller.may_read_all(Some(&namespaces)) {
        // Which namespaces is not said: the caller may not know they exist.
        return Err(Status::permission_denied(format!(
            "selector: principal {:?} may not read every record it selects (a bundle is never cut down); \
             narrow it, e.g. with stream",
            caller.name()
        )));
    }
    let options = BundleOptions {
        selector: request.selector.into_iter().collect::<BTreeMap<_, _>>(),
        withhold_payloads: request.withhold_payloads,
        consistency_from: request.consistency_from,
    };
    let bundle = assemble(ledger, &seqs, &options).map_err(status)?;
    let summary = store
        .put(&bundle, options.withhold_payloads, namespaces)
        .map_err(store_status)?;
    let digest = manifest_digest(&bundle.manifest).map_err(|e| Status::internal(e.to_string()))?;
    tracing::info!(
        bundle_id = %summary.bundle_id,
        records = summary.record_count,
        bytes = summary.bytes,
        "bundle created"
    );
    Ok(proto::CreateBundleResponse {
        bundle_id: summary.bundle_id,
        manifest_digest: hex::encode(digest),
        contents_digest: bundle.manifest.contents_digest,
        record_count: summary.record_count,
        checkpoint_size: summary.checkpoint_size,
        bytes: summary.bytes,
    })
}

/// Bundle file chunks, as tonic wants them.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<proto::BundleChunk, Status>> + Send>>;

#[tonic::async_trait]
impl bundles_server::Bundles for BundlesService {
    async fn create(
        &self,
        request: Request<proto::CreateBundleRequest>,
    ) -> Result<Response<proto::CreateBundleResponse>, Status> {
        let span = rpc_span("CreateBundle", &request);
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let (ledger, builtins, store) = (Arc::clone(&self.ledger), Arc::clone(&self.builtins), self.store.clone());
        tokio::task::spawn_blocking(move || create(&ledger, &builtins, &store, &caller, request))
            .instrument(span)
            .await
            .map_err(|e| Status::internal(format!("bundle task failed: {e}")))?
            .map(Response::new)
    }

    type GetStream = ChunkStream;

    async fn get(&self, request: Request<proto::GetBundleRequest>) -> Result<Response<ChunkStream>, Status> {
        let span = rpc_span("GetBundle", &request);
        let _entered = span.enter();
        let caller = Caller::of(&request)?;
        caller.require_some_read()?;
        let id = request.into_inner().bundle_id;
        let summary = self.store.summary(&id).map_err(store_status)?;
        if !caller.may_read_all(summary.namespaces.as_deref()) {
            return Err(hidden(&summary.bundle_id));
        }
        let path = self.store.file(&id).map_err(store_status)?;
        let mut file = std::fs::File::open(&path).map_err(|e| {
            store_status(StoreError::Io {
                context: format!("opening {}", path.display()),
                source: e,
            })
        })?;
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0u8; CHUNK_BYTES];
            loop {
                let chunk = match file.read(&mut buffer) {
                    Ok(0) => return,
                    Ok(n) => Ok(proto::BundleChunk {
                        data: buffer[..n].to_vec(),
                    }),
                    Err(e) => {
                        tracing::error!(error = %e, path = %path.display(), "reading a bundle failed");
                        Err(Status::internal("server-side error reading the bundle (logged)"))
                    }
                };
                let failed = chunk.is_err();
                if tx.blocking_send(chunk).is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list(
        &self,
        request: Request<proto::ListBundlesRequest>,
    ) -> Result<Response<proto::ListBundlesResponse>, Status> {
        let span = rpc_span("ListBundles", &request);
        let caller = Caller::of(&request)?;
        caller.require_some_read()?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.list())
            .instrument(span)
            .await
            .map_err(|e| Status::internal(format!("bundle task failed: {e}")))?
            .map_err(store_status)
            .map(|list| {
                Response::new(proto::ListBundlesResponse {
                    bundles: list
                        .into_iter()
                        .filter(|s| caller.may_read_all(s.namespaces.as_deref()))
                        .map(summary_message)
                        .collect(),
                })
            })
    }
}
