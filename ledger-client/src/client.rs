//! [`Client`]: the typed async client.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

use crate::check::check_response;
use crate::error::{ClientError, Result};
use crate::proto::{
    self, admin_client::AdminClient, bundles_client::BundlesClient, ledger_client::LedgerClient,
    projections_client::ProjectionsClient,
};

/// Default server address.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// How the client retries.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts after the first one.
    pub retries: u32,
    /// Wait before the first retry; doubles each time.
    pub initial_backoff: Duration,
    /// Longest wait between retries.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 8,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Errors worth retrying: the server is unreachable, restarting or shutting
/// down. Appends are idempotent by event id, so a retry after an append that
/// did land returns the original receipts.
pub fn is_transient(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::Unknown | Code::Cancelled)
        && !status.message().contains("poisoned")
}

/// How long a `RESOURCE_EXHAUSTED` refusal asks the caller to wait: the
/// `retry-after-ms` metadata a server sets when a per-principal rate limit
/// refused the call (the tokens will be there then). `None` for any other
/// status, including a batch too large to ever fit, which retrying would
/// not help.
pub fn retry_after(status: &Status) -> Option<Duration> {
    if status.code() != Code::ResourceExhausted {
        return None;
    }
    let ms: u64 = status.metadata().get("retry-after-ms")?.to_str().ok()?.parse().ok()?;
    Some(Duration::from_millis(ms))
}

/// An API key, sent as `authorization: Bearer <key>` metadata on every
/// call; or none (a server in development mode needs none). The value is
/// marked sensitive (never indexed by HPACK), and `Debug` does not show it.
#[derive(Clone, Default)]
pub struct ApiKey(Option<AsciiMetadataValue>);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(_) => f.write_str("ApiKey(<redacted>)"),
            None => f.write_str("ApiKey(none)"),
        }
    }
}

impl ApiKey {
    /// The key `key` (as `ledgerd auth` printed it: `lk_...`).
    pub fn new(key: &str) -> Result<ApiKey> {
        let key = key.trim();
        let invalid = |reason: &str| ClientError::InvalidInput {
            field: "api_key".to_string(),
            reason: reason.to_string(),
        };
        if key.is_empty() {
            return Err(invalid("is empty"));
        }
        // Metadata would carry other bytes too (HTTP obs-text), but no key
        // holds them: say so here rather than be refused by the server.
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("holds characters other than printable ASCII"));
        }
        let mut value =
            AsciiMetadataValue::try_from(format!("Bearer {key}")).map_err(|_| invalid("cannot be sent as metadata"))?;
        value.set_sensitive(true);
        Ok(ApiKey(Some(value)))
    }
}

impl Interceptor for ApiKey {
    fn call(&mut self, mut request: tonic::Request<()>) -> std::result::Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// What the generated clients run on: the channel, with the [`ApiKey`]
/// added to every call.
pub type AuthChannel = InterceptedService<Channel, ApiKey>;

/// A connection to `ledgerd`. Cheap to clone (clones share the connection).
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    inner: LedgerClient<AuthChannel>,
    projections: ProjectionsClient<AuthChannel>,
    bundles: BundlesClient<AuthChannel>,
    admin: AdminClient<AuthChannel>,
    retry: RetryPolicy,
}

impl Client {
    /// Connects lazily to `endpoint` (e.g. `http://127.0.0.1:50051`): the
    /// connection is made on first use and remade after it drops.
    pub fn connect_lazy(endpoint: &str) -> Result<Client> {
        let channel = endpoint_of(endpoint)?.connect_lazy();
        Ok(Client::with_channel(channel, ApiKey::default()))
    }

    /// Connects to `endpoint` now, failing if it cannot be reached.
    pub async fn connect(endpoint: &str) -> Result<Client> {
        let channel = endpoint_of(endpoint)?
            .connect()
            .await
            .map_err(|e| ClientError::Connect {
                endpoint: endpoint.to_string(),
                reason: error_chain(&e),
            })?;
        Ok(Client::with_channel(channel, ApiKey::default()))
    }

    /// Connects over TLS (`https://` endpoints), trusting the server
    /// certificate only if it chains to `ca_pem` (PEM, one or more
    /// certificates): a private deployment's CA, not the system roots.
    pub async fn connect_tls(endpoint: &str, ca_pem: &[u8]) -> Result<Client> {
        let tls =
            tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(ca_pem));
        Client::connect_with_tls(endpoint, tls).await
    }

    /// As [`Client::connect_tls`], presenting a client certificate (mutual
    /// TLS): `client_cert_pem` (the client's certificate first, then any
    /// intermediates) and its private key `client_key_pem`. A server with
    /// `--tls-client-ca` authenticates the principal the certificate is
    /// bound to, so no API key is needed (one may still be added with
    /// [`Client::with_api_key`]; it must name the same principal).
    pub async fn connect_mtls(
        endpoint: &str,
        ca_pem: &[u8],
        client_cert_pem: &[u8],
        client_key_pem: &[u8],
    ) -> Result<Client> {
        let invalid = |field: &str, reason: &str| ClientError::InvalidInput {
            field: field.to_string(),
            reason: reason.to_string(),
        };
        if !String::from_utf8_lossy(client_cert_pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(invalid("client_cert", "no PEM CERTIFICATE block found"));
        }
        if !String::from_utf8_lossy(client_key_pem).contains("PRIVATE KEY-----") {
            return Err(invalid("client_key", "no PEM PRIVATE KEY block found"));
        }
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem))
            .identity(tonic::transport::Identity::from_pem(client_cert_pem, client_key_pem));
        Client::connect_with_tls(endpoint, tls).await
    }

    async fn connect_with_tls(endpoint: &str, tls: tonic::transport::ClientTlsConfig) -> Result<Client> {
        let connect_error = |reason: String| ClientError::Connect {
            endpoint: endpoint.to_string(),
            reason,
        };
        if !endpoint.starts_with("https://") {
            return Err(connect_error("TLS needs an https:// endpoint".to_string()));
        }
        let channel = endpoint_of(endpoint)?
            .tls_config(tls)
            .map_err(|e| connect_error(error_chain(&e)))?
            .connect()
            .await
            .map_err(|e| connect_error(error_chain(&e)))?;
        Ok(Client::with_channel(channel, ApiKey::default()))
    }

    fn with_channel(channel: Channel, key: ApiKey) -> Client {
        let authed = || InterceptedService::new(channel.clone(), key.clone());
        Client {
            inner: LedgerClient::new(authed())
                .max_decoding_message_size(64 * 1024 * 1024)
                .max_encoding_message_size(64 * 1024 * 1024),
            projections: ProjectionsClient::new(authed()).max_decoding_message_size(64 * 1024 * 1024),
            bundles: BundlesClient::new(authed()),
            admin: AdminClient::new(authed()),
            channel: channel.clone(),
            retry: RetryPolicy::default(),
        }
    }

    /// This client presenting `key` on every call (same connection).
    pub fn with_api_key(self, key: ApiKey) -> Client {
        let retry = self.retry.clone();
        Client::with_channel(self.channel, key).with_retry(retry)
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    /// The generated client (with the API key), for calls this wrapper
    /// does not cover.
    pub fn raw(&self) -> LedgerClient<AuthChannel> {
        self.inner.clone()
    }

    /// The generated `ledger.v1.Admin` client (with the API key): its calls
    /// are single requests whose results need no checking here.
    pub fn admin(&self) -> AdminClient<AuthChannel> {
        self.admin.clone()
    }

    /// Appends one atomic batch, retrying transient failures (safe: event ids
    /// are idempotent) and rate-limit refusals after the wait the server
    /// hinted ([`retry_after`]), and checks every receipt against the
    /// events sent.
    pub async fn append(&self, request: proto::AppendRequest) -> Result<proto::AppendResponse> {
        let mut attempt = 0;
        loop {
            match self.inner.clone().append(request.clone()).await {
                Ok(response) => {
                    let response = response.into_inner();
                    check_response(&request.events, &response)?;
                    return Ok(response);
                }
                Err(status) if is_transient(&status) && attempt < self.retry.retries => {
                    tracing::debug!(attempt, status = %status, "append failed transiently; retrying");
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(status) if attempt < self.retry.retries && retry_after(&status).is_some() => {
                    let wait = retry_after(&status).unwrap_or_default();
                    tracing::debug!(attempt, ?wait, status = %status, "append rate-limited; retrying after the hint");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(status) => return Err(status.into()),
            }
        }
    }

    /// Opens a streaming append: send batches into the [`AppendSink`], read
    /// their checked responses, in order, from the [`AppendReceipts`]. At most
    /// `window` requests are buffered client-side; beyond that `send` waits,
    /// and the server's own in-flight limit and HTTP/2 flow control make a
    /// slow ledger slow the producer.
    pub async fn append_stream(&self, window: usize) -> Result<(AppendSink, AppendReceipts)> {
        let (tx, rx) = mpsc::channel(window.max(1));
        let sent = Arc::new(Mutex::new(VecDeque::new()));
        let responses = self
            .inner
            .clone()
            .append_stream(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok((
            AppendSink {
                tx,
                sent: Arc::clone(&sent),
            },
            AppendReceipts {
                responses,
                sent,
                done: false,
            },
        ))
    }

    /// Reads records (a seq range, or a stream from a version).
    pub async fn read(&self, request: proto::ReadRequest) -> Result<Streaming<proto::Record>> {
        Ok(self.inner.clone().read(request).await?.into_inner())
    }

    /// Follows the log from `request.from_seq`: catch-up, then live. When the
    /// connection drops or the server restarts, it resubscribes from the last
    /// seq received + 1 (retrying with backoff), so the stream has no gap and
    /// no duplicate across reconnects. It ends only on a non-transient error.
    pub fn subscribe(&self, request: proto::SubscribeRequest) -> impl Stream<Item = Result<proto::Record>> + use<> {
        let (tx, rx) = mpsc::channel(256);
        let client = self.clone();
        tokio::spawn(async move { client.follow(request, tx).await });
        ReceiverStream::new(rx)
    }

    async fn follow(self, mut request: proto::SubscribeRequest, tx: mpsc::Sender<Result<proto::Record>>) {
        let mut attempt = 0;
        loop {
            let error = match self.inner.clone().subscribe(request.clone()).await {
                Ok(response) => {
                    let mut records = response.into_inner();
                    loop {
                        match records.next().await {
                            Some(Ok(record)) => {
                                attempt = 0;
                                request.from_seq = record.seq + 1;
                                if tx.send(Ok(record)).await.is_err() {
                                    return;
                                }
                            }
                            Some(Err(status)) => break status,
                            None => break Status::unavailable("subscription ended by the server"),
                        }
                    }
                }
                Err(status) => status,
            };
            if !is_transient(&error) || attempt >= self.retry.retries {
                let _ = tx.send(Err(error.into())).await;
                return;
            }
            tracing::debug!(from_seq = request.from_seq, status = %error, "subscription dropped; resuming");
            tokio::select! {
                _ = tokio::time::sleep(self.retry.backoff(attempt)) => {}
                _ = tx.closed() => return,
            }
            attempt += 1;
        }
    }

    /// One record by seq.
    pub async fn record(&self, seq: u64) -> Result<proto::Record> {
        self.get_record(proto::get_record_request::Key::Seq(seq)).await
    }

    /// One record by event id.
    pub async fn record_by_id(&self, event_id: &str) -> Result<proto::Record> {
        self.get_record(proto::get_record_request::Key::EventId(event_id.to_string()))
            .await
    }

    async fn get_record(&self, key: proto::get_record_request::Key) -> Result<proto::Record> {
        let request = proto::GetRecordRequest { key: Some(key) };
        Ok(self.inner.clone().get_record(request).await?.into_inner())
    }

    /// The latest signed checkpoint, or the one of tree size `size`.
    pub async fn checkpoint(&self, size: Option<u64>) -> Result<proto::Checkpoint> {
        Ok(self
            .inner
            .clone()
            .get_checkpoint(proto::GetCheckpointRequest { size })
            .await?
            .into_inner())
    }

    /// Inclusion proof of `seq` in the tree of `tree_size` (latest if `None`).
    pub async fn inclusion_proof(&self, seq: u64, tree_size: Option<u64>) -> Result<proto::InclusionProof> {
        let request = proto::GetInclusionProofRequest { seq, tree_size };
        Ok(self.inner.clone().get_inclusion_proof(request).await?.into_inner())
    }

    /// Consistency proof from `old_size` to `new_size` (latest if `None`).
    pub async fn consistency_proof(&self, old_size: u64, new_size: Option<u64>) -> Result<proto::ConsistencyProof> {
        let request = proto::GetConsistencyProofRequest { old_size, new_size };
        Ok(self.inner.clone().get_consistency_proof(request).await?.into_inner())
    }

    /// Origin, tree hash and verifier key.
    pub async fn info(&self) -> Result<proto::LedgerInfo> {
        Ok(self
            .inner
            .clone()
            .get_ledger_info(proto::GetLedgerInfoRequest {})
            .await?
            .into_inner())
    }

    /// Status of one projection (`name`) or all (empty name), with digests
    /// when asked.
    pub async fn projection_status(&self, name: &str, include_digest: bool) -> Result<Vec<proto::ProjectionStatus>> {
        let request = proto::GetStatusRequest {
            name: name.to_string(),
            include_digest,
        };
        Ok(self
            .projections
            .clone()
            .get_status(request)
            .await?
            .into_inner()
            .projections)
    }

    /// Records a projection could not fold.
    pub async fn projection_faults(&self, name: &str, from_seq: u64, limit: u32) -> Result<Vec<proto::Fault>> {
        let request = proto::ListFaultsRequest {
            name: name.to_string(),
            from_seq,
            limit,
        };
        Ok(self.projections.clone().list_faults(request).await?.into_inner().faults)
    }

    /// Starts a replay; the stream reports progress and ends with the
    /// outcome (`finished`).
    pub async fn replay(&self, name: &str, from_seq: u64) -> Result<Streaming<proto::ReplayProgress>> {
        let request = proto::ReplayRequest {
            name: name.to_string(),
            from_seq,
        };
        Ok(self.projections.clone().replay(request).await?.into_inner())
    }

    /// Queries a built-in projection's view (see `projections.proto`).
    pub async fn query(&self, request: proto::QueryRequest) -> Result<proto::QueryResponse> {
        Ok(self.projections.clone().query(request).await?.into_inner())
    }

    /// Makes and stores a bundle on the server (see `bundles.proto`).
    pub async fn create_bundle(&self, request: proto::CreateBundleRequest) -> Result<proto::CreateBundleResponse> {
        Ok(self.bundles.clone().create(request).await?.into_inner())
    }

    /// Streams a stored bundle file into `out`; returns the bytes written.
    pub async fn get_bundle(&self, bundle_id: &str, out: &mut (impl std::io::Write + Send)) -> Result<u64> {
        let request = proto::GetBundleRequest {
            bundle_id: bundle_id.to_string(),
        };
        let mut chunks = self.bundles.clone().get(request).await?.into_inner();
        let mut written = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            out.write_all(&chunk.data).map_err(|e| ClientError::Io(e.to_string()))?;
            written += chunk.data.len() as u64;
        }
        Ok(written)
    }

    /// The bundles stored on the server, newest first.
    pub async fn list_bundles(&self) -> Result<Vec<proto::BundleSummary>> {
        let response = self.bundles.clone().list(proto::ListBundlesRequest {}).await?;
        Ok(response.into_inner().bundles)
    }
}

/// The sending half of [`Client::append_stream`].
#[derive(Debug)]
pub struct AppendSink {
    tx: mpsc::Sender<proto::AppendRequest>,
    sent: Arc<Mutex<VecDeque<Vec<proto::Event>>>>,
}

impl AppendSink {
    /// Queues one batch; waits while the window is full.
    pub async fn send(&self, request: proto::AppendRequest) -> Result<()> {
        let events = request.events.clone();
        // Record before sending so the response can never arrive first.
        self.sent
            .lock()
            .map_err(|_| ClientError::StreamClosed(0))?
            .push_back(events);
        self.tx.send(request).await.map_err(|_| {
            let unanswered = self.sent.lock().map(|s| s.len()).unwrap_or(0);
            ClientError::StreamClosed(unanswered)
        })
    }

    /// Closes the sending side: the server answers what it has and ends the
    /// stream. Dropping the sink does the same.
    pub fn finish(self) {}
}

/// The receiving half of [`Client::append_stream`].
#[derive(Debug)]
pub struct AppendReceipts {
    responses: Streaming<proto::AppendResponse>,
    sent: Arc<Mutex<VecDeque<Vec<proto::Event>>>>,
    /// Set once the stream has ended or failed: nothing more will come.
    done: bool,
}

impl AppendReceipts {
    /// The next response, in request order, with its receipts checked
    /// against the events sent. A request the server rejected yields
    /// `Err(ClientError::Status)` and the stream goes on; `None` once the
    /// sink is finished and every request is answered.
    pub async fn next(&mut self) -> Option<Result<proto::AppendResponse>> {
        if self.done {
            return None;
        }
        let response = match self.responses.next().await {
            None => {
                self.done = true;
                let unanswered = self.sent.lock().map(|s| s.len()).unwrap_or(0);
                return (unanswered > 0).then_some(Err(ClientError::StreamClosed(unanswered)));
            }
            Some(Err(status)) => {
                // A status ends a gRPC stream: report it once, then end.
                self.done = true;
                return Some(Err(status.into()));
            }
            Some(Ok(response)) => response,
        };
        let events = match self.sent.lock() {
            Ok(mut sent) => sent.pop_front(),
            Err(_) => None,
        };
        let Some(events) = events else {
            return Some(Err(ClientError::Verification(
                "a response arrived for a request that was not sent".to_string(),
            )));
        };
        if let Some(error) = response.error {
            return Some(Err(Status::new(Code::from(error.code), error.message).into()));
        }
        Some(check_response(&events, &response).map(|()| response))
    }
}

fn endpoint_of(endpoint: &str) -> Result<Endpoint> {
    Endpoint::from_shared(endpoint.to_string())
        .map(|e| e.tcp_nodelay(true).connect_timeout(Duration::from_secs(5)))
        .map_err(|e| ClientError::Connect {
            endpoint: endpoint.to_string(),
            reason: error_chain(&e),
        })
}

/// An error with its causes, on one line (tonic's transport errors say
/// only "transport error" themselves).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_hinted_resource_exhausted_is_retried_after_its_hint() {
        let mut hinted =
            Status::resource_exhausted("principal p: events per second limit 5 exceeded, retry after 120 ms");
        hinted
            .metadata_mut()
            .insert("retry-after-ms", AsciiMetadataValue::from_static("120"));
        assert_eq!(retry_after(&hinted), Some(Duration::from_millis(120)));
        let too_large = Status::resource_exhausted("principal p: a batch of 6 exceeds the one-second burst");
        assert_eq!(retry_after(&too_large), None);
        let mut other = Status::invalid_argument("x");
        other
            .metadata_mut()
            .insert("retry-after-ms", AsciiMetadataValue::from_static("120"));
        assert_eq!(retry_after(&other), None);
        assert!(!is_transient(&hinted));
    }

    #[test]
    fn an_api_key_goes_into_every_call_and_nowhere_else() -> Result<()> {
        let secret = "lk_0011223344556677_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let mut key = ApiKey::new(&format!(" {secret}\n"))?;
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        let request = key.call(tonic::Request::new(())).map_err(ClientError::from)?;
        let value = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        assert_eq!(value, Some(format!("Bearer {secret}").as_str()));
        assert!(
            request
                .metadata()
                .get("authorization")
                .is_some_and(|v| v.is_sensitive())
        );

        let mut none = ApiKey::default();
        assert_eq!(format!("{none:?}"), "ApiKey(none)");
        let request = none.call(tonic::Request::new(())).map_err(ClientError::from)?;
        assert!(request.metadata().get("authorization").is_none());

        for bad in ["", "  ", "lk_\u{e9}", "lk_a b"] {
            assert!(
                matches!(ApiKey::new(bad), Err(ClientError::InvalidInput { ref field, .. }) if field == "api_key"),
                "{bad:?} accepted"
            );
        }
        Ok(())
    }
}
