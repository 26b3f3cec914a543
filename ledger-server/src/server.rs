//! Starting and stopping the service: open (or create) the ledger and its
//! signing key, serve `ledger.v1.Ledger` and `ledger.v1.Projections` (the
//! projection engine runs beside the ledger) with gRPC health and reflection
//! behind the authentication layer (`auth`), and on shutdown stop accepting,
//! end streams, finish in-flight appends and close the ledger (which syncs
//! it) before returning.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ledger_client::proto::{
    self, admin_server::AdminServer, bundles_server::BundlesServer, ledger_server::LedgerServer,
    projections_server::ProjectionsServer,
};
use ledger_core::projection::builtin::Builtins;
use ledger_core::projection::builtin::metrics::Metrics;
use ledger_core::projection::{ProjectionError, Projections};
use ledger_core::signer::public_key_path;
use ledger_core::{Ledger, LedgerError, LocalKeySigner, Signer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;

use crate::admin::service::AdminService;
use crate::admin::{Admin, AdminError, SigningKeyFiles};
use crate::auth::{AuthError, AuthLayer, Authenticator, InsecureListen, PolicyKeys, check_listen};
use crate::bundle_store::BundleStore;
use crate::bundles::BundlesService;
use crate::config::ServerConfig;
use crate::projections::ProjectionsService;
use crate::service::LedgerService;

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Opening or closing the ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The gRPC transport failed.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection could not be set up from the embedded descriptors.
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// Opening or closing the projections failed.
    #[error("projections: {0}")]
    Projections(#[from] ProjectionError),
    /// The configuration given to `serve` does not validate.
    #[error("config: {0}")]
    Config(String),
    /// A background task panicked.
    #[error("{0}")]
    Task(String),
    /// The principals file could not be loaded.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// No principals are configured and the address is not loopback.
    #[error(transparent)]
    InsecureListen(#[from] InsecureListen),
}

/// How often a running server checks the principals file for changes.
const PRINCIPALS_POLL: Duration = Duration::from_secs(1);

/// The authenticator of `config` for a server on `listener`: refuses to
/// serve anything but loopback without principals (development mode).
fn authenticator(listener: &TcpListener, config: &ServerConfig) -> Result<Arc<Authenticator>, ServerError> {
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Config(format!("listen: no local address: {e}")))?;
    check_listen(addr, config.principals_file.is_none())?;
    let auth = match &config.principals_file {
        None => Authenticator::development(),
        Some(path) => Authenticator::from_file(path)?,
    };
    Ok(Arc::new(auth))
}

/// Keeps the principals in step with their file (revocations take effect
/// without a restart), recording outside edits in the ledger, until
/// aborted.
async fn follow_principals(admin: Arc<Admin>) {
    let mut tick = tokio::time::interval(PRINCIPALS_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match admin.follow_file().await {
            Ok(_) => {}
            Err(AdminError::File(err)) => {
                tracing::error!(error = %err, "principals file not reloaded; the loaded principals stay in force")
            }
            Err(err) => tracing::error!(error = %err, "principals file reload not recorded"),
        }
    }
}

/// Loads the checkpoint signing key, or creates a development key (mode
/// 0600, verifier key written beside it as `<key>.pub`) on first start.
/// A key rotation interrupted while installing the new key is finished
/// first (`keys::finish_interrupted_install`): no key is made then.
pub fn load_or_create_key(path: &Path, name: &str) -> Result<Arc<dyn Signer>, LedgerError> {
    crate::keys::finish_interrupted_install(path)?;
    if path.exists() {
        return Ok(Arc::new(LocalKeySigner::load(path)?));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| LedgerError::Io {
            context: format!("creating {}", parent.display()),
            source: e,
        })?;
    }
    let signer = LocalKeySigner::generate(name)?;
    signer.save(path)?;
    let verifier = signer.verifier_key()?;
    tracing::warn!(
        key_file = %path.display(),
        public_key_file = %public_key_path(path).display(),
        verifier_key = %verifier,
        "created a development checkpoint signing key; keep it secret, publish the verifier key"
    );
    Ok(Arc::new(signer))
}

/// Opens the ledger of `config` (creating ledger and key if new). If the
/// log has retired the key in the key file and `<key>.new` holds the key
/// it handed over to, a rotation stopped before its key files were put in
/// place: that is finished first (`keys::resume_rotation`).
pub fn open_ledger(config: &ServerConfig) -> Result<Ledger, LedgerError> {
    let signer = load_or_create_key(&config.key_file, &config.ledger.origin)?;
    match Ledger::open(&config.data_dir, config.ledger.clone(), signer) {
        Err(LedgerError::RetiredKey {
            key,
            rotation_seq,
            new_key,
        }) => match crate::keys::resume_rotation(&config.data_dir, &config.key_file, &key, &new_key)? {
            Some(new) => Ledger::open(&config.data_dir, config.ledger.clone(), Arc::new(new)),
            None => Err(LedgerError::RetiredKey {
                key,
                rotation_seq,
                new_key,
            }),
        },
        other => other,
    }
}

/// Serves on `listener` until `shutdown` resolves, then shuts down
/// gracefully. This is what `ledgerd serve` and the tests run.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    // Refuse an insecure or broken setup before touching the ledger.
    authenticator(&listener, &config)?;
    let open_config = config.clone();
    let ledger = tokio::task::spawn_blocking(move || open_ledger(&open_config))
        .await
        .map_err(|e| ServerError::Task(format!("opening the ledger: {e}")))??;
    let ledger = Arc::new(ledger);
    serve(listener, Arc::clone(&ledger), config, shutdown).await?;
    tokio::task::spawn_blocking(move || ledger.close())
        .await
        .map_err(|e| ServerError::Task(format!("closing the ledger: {e}")))??;
    tracing::info!("ledger closed; bye");
    Ok(())
}

/// Accepted connections with Nagle's algorithm off: a small unary response
/// must not wait for the client's delayed ACK (~40 ms). tonic only sets this
/// itself on listeners it binds.
fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> + Send + 'static {
    TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        if let Err(err) = stream.set_nodelay(true) {
            tracing::warn!(error = %err, "cannot set TCP_NODELAY on an accepted connection");
        }
        Ok(stream)
    })
}

/// The TLS settings of `files`, read now so a missing or unreadable file
/// stops the start with its name. With a client CA, client certificates
/// are asked for and verified against it, but optional: a client without
/// one still connects and authenticates by API key (`auth::layer`).
fn tls_config(files: &crate::config::TlsFiles) -> Result<tonic::transport::ServerTlsConfig, ServerError> {
    let read = |setting: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| ServerError::Config(format!("{setting}: {}: {e}", path.display())))
    };
    let check = |setting: &str, pem: &[u8], marker: &str| {
        if String::from_utf8_lossy(pem).contains(marker) {
            Ok(())
        } else {
            Err(ServerError::Config(format!("{setting}: no PEM {marker} block found")))
        }
    };
    const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----";
    let cert = read("tls_cert", &files.cert)?;
    let key = read("tls_key", &files.key)?;
    check("tls_cert", &cert, CERTIFICATE)?;
    check("tls_key", &key, "PRIVATE KEY-----")?;
    let config = tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(cert, key));
    let Some(path) = &files.client_ca else {
        return Ok(config);
    };
    let client_ca = read("tls_client_ca", path)?;
    check("tls_client_ca", &client_ca, CERTIFICATE)?;
    Ok(config
        .client_ca_root(tonic::transport::Certificate::from_pem(client_ca))
        .client_auth_optional(true))
}

/// Serves an already open ledger (which the caller closes).
pub async fn serve(
    listener: TcpListener,
    ledger: Arc<Ledger>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let auth = authenticator(&listener, &config)?;
    let tls = config.tls.as_ref().map(tls_config).transpose()?;
    let addr = listener.local_addr().ok();
    let config = Arc::new(config);
    let (stop_tx, stop_rx) = watch::channel(false);
    ledger.set_producer_keys(Some(Arc::new(PolicyKeys(Arc::clone(&auth)))));
    let key_files = SigningKeyFiles {
        data_dir: config.data_dir.clone(),
        key_file: config.key_file.clone(),
    };
    let admin = Arc::new(Admin::new(Arc::clone(&ledger), Arc::clone(&auth), key_files));
    admin
        .record_file_at_start()
        .await
        .map_err(|e| ServerError::Config(format!("recording the principals file in the ledger: {e}")))?;
    let service = LedgerService::new(Arc::clone(&ledger), Arc::clone(&config), Arc::clone(&auth), stop_rx);
    let (engine, builtins) = {
        let (ledger, dir) = (Arc::clone(&ledger), config.data_dir.join("projections"));
        let metrics = Metrics::new(config.metrics.clone()).map_err(|e| ServerError::Config(e.to_string()))?;
        let projections_config = config.projections.clone();
        tokio::task::spawn_blocking(move || -> Result<_, ProjectionError> {
            let engine = Projections::open_with(ledger, dir, projections_config)?;
            let builtins = Builtins::register_with(&engine, metrics)?;
            Ok((Arc::new(engine), Arc::new(builtins)))
        })
        .await
        .map_err(|e| ServerError::Task(format!("opening the projections: {e}")))??
    };
    let bundles_service = BundlesServer::new(BundlesService::new(
        Arc::clone(&ledger),
        Arc::clone(&builtins),
        BundleStore::new(config.data_dir.join("bundles")),
    ))
    .max_decoding_message_size(config.max_message_bytes);
    let admin_service =
        AdminServer::new(AdminService::new(Arc::clone(&admin))).max_decoding_message_size(config.max_message_bytes);
    let projections_service = ProjectionsServer::new(ProjectionsService::new(Arc::clone(&engine), builtins))
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes.max(64 * 1024 * 1024));

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<LedgerServer<LedgerService>>().await;
    health.set_serving::<ProjectionsServer<ProjectionsService>>().await;
    health.set_serving::<BundlesServer<BundlesService>>().await;
    health.set_serving::<AdminServer<AdminService>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let ledger_service = LedgerServer::new(service)
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(
            config
                .max_message_bytes
                .max(2 * config.ledger.max_payload_bytes + 64 * 1024),
        );

    let identity = ledger.identity();
    let reloader = match &config.principals_file {
        None => {
            tracing::warn!("development mode: no principals configured, authentication is off, bound to loopback only");
            None
        }
        Some(path) => {
            tracing::info!(
                principals_file = %path.display(),
                principals = auth.principal_count(),
                "authentication on: API keys required"
            );
            if auth.principal_count() == 0 {
                tracing::warn!(
                    "the principals file has no principals: every call but health and reflection is refused"
                );
            }
            Some(tokio::spawn(follow_principals(Arc::clone(&admin))))
        }
    };
    tracing::info!(
        listen = %addr.map_or_else(|| "?".to_string(), |a| a.to_string()),
        data = %config.data_dir.display(),
        origin = %identity.origin,
        tree_hash = %identity.tree_hash,
        records = ledger.len(),
        "ledgerd serving ledger.v1.Ledger"
    );
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
        health.set_not_serving::<LedgerServer<LedgerService>>().await;
        health.set_not_serving::<ProjectionsServer<ProjectionsService>>().await;
        health.set_not_serving::<BundlesServer<BundlesService>>().await;
        health.set_not_serving::<AdminServer<AdminService>>().await;
        let _ = stop_tx.send(true);
    };
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| ServerError::Config(format!("tls: {}", ledger_client::error_chain(&e))))?;
        match config.tls.as_ref().and_then(|t| t.client_ca.as_ref()) {
            Some(client_ca) => {
                tracing::info!(client_ca = %client_ca.display(), "TLS on, client certificates verified against the client CA (optional)");
                if config.principals_file.is_none() {
                    tracing::warn!("development mode: client certificates are verified but bind to no principal");
                }
            }
            None => tracing::info!("TLS on"),
        }
    }
    let served = builder
        .layer(crate::limits::MessageLimitLayer::new(config.max_message_bytes))
        .layer(AuthLayer::new(auth))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(ledger_service)
        .add_service(projections_service)
        .add_service(bundles_service)
        .add_service(admin_service)
        .serve_with_incoming_shutdown(incoming(listener), signal)
        .await;
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    served?;
    tokio::task::spawn_blocking(move || engine.close())
        .await
        .map_err(|e| ServerError::Task(format!("closing the projections: {e}")))??;
    Ok(())
}
