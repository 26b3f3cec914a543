//! TLS: `ledgerd` with a certificate serves TLS only; a client that trusts
//! the certificate's CA appends and reads; one that trusts another CA, or
//! speaks plain HTTP/2, gets nowhere; half a TLS configuration, or a file
//! that is not PEM, stops the start naming the setting. Certificates are
//! in `testdata/tls/` (ed25519, SAN `localhost` and `127.0.0.1`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};
use ledger_client::{Client, proto};
use ledger_server::config::{ServeArgs, TlsFiles};
use ledger_tests::server::server_config;
use tokio::sync::oneshot;

/// `testdata/tls/`.
pub(crate) fn tls_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/tls")
}

/// The server certificate and key, without client certificates.
pub(crate) fn files() -> TlsFiles {
    TlsFiles {
        cert: tls_dir().join("server.pem"),
        key: tls_dir().join("server.key"),
        client_ca: None,
    }
}

/// An in-process `ledgerd` serving TLS on a loopback port.
pub(crate) struct TlsServer {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) stop: oneshot::Sender<()>,
    pub(crate) task: tokio::task::JoinHandle<Result<(), ledger_server::ServerError>>,
}

impl TlsServer {
    /// `https://addr`.
    pub(crate) fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Graceful shutdown; returns what `run` returned.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        Ok(self.task.await??)
    }
}

async fn start(dir: &std::path::Path) -> anyhow::Result<TlsServer> {
    let mut config = server_config(dir)?;
    config.tls = Some(files());
    start_with(config).await
}

/// Serves `config` (which has TLS) on a loopback port; returns once a call
/// over TLS is answered (with principals, refused for want of credentials:
/// the server is up).
pub(crate) async fn start_with(config: ledger_server::ServerConfig) -> anyhow::Result<TlsServer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(ledger_server::run(listener, config, async move {
        let _ = stopped.await;
    }));
    let ca = std::fs::read(tls_dir().join("ca.pem"))?;
    for _ in 0..200 {
        if let Ok(client) = Client::connect_tls(&format!("https://{addr}"), &ca).await {
            match client.info().await {
                Ok(_) => return Ok(TlsServer { addr, stop, task }),
                Err(ledger_client::ClientError::Status(s)) if s.code() == tonic::Code::Unauthenticated => {
                    return Ok(TlsServer { addr, stop, task });
                }
                Err(_) => {}
            }
        }
        if task.is_finished() {
            bail!("TLS server stopped: {:?}", task.await?);
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    bail!("TLS server did not come up")
}

/// Event `i` of stream `ops-hub/tls`.
pub(crate) fn event(i: u32) -> proto::Event {
    proto::Event {
        id: uuid::Uuid::now_v7().to_string(),
        stream: "ops-hub/tls".to_string(),
        r#type: "probe.ok".to_string(),
        occurred_at: Some(ledger_client::timestamp(chrono::Utc::now())),
        payload: format!("{{\"i\":{i}}}").into_bytes(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_the_ca_appends_and_reads_over_tls() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start(dir.path()).await?;
    let url = format!("https://{}", server.addr);
    let ca = std::fs::read(tls_dir().join("ca.pem"))?;
    let client = Client::connect_tls(&url, &ca).await?;
    let response = client
        .append(proto::AppendRequest {
            events: (0..3).map(event).collect(),
            ..Default::default()
        })
        .await?;
    assert_eq!(response.receipts.len(), 3);
    let record = client.record(2).await?;
    assert_eq!(record.event.context("event")?.payload, b"{\"i\":2}");

    // Trusting another CA: the handshake fails, naming the certificate.
    let other = std::fs::read(tls_dir().join("other-ca.pem"))?;
    let refused = match Client::connect_tls(&url, &other).await {
        Ok(client) => client.info().await.err().map(|e| e.to_string()),
        Err(err) => Some(err.to_string()),
    };
    let refused = refused.context("a client trusting another CA was served")?;
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");

    // Plain HTTP/2 to a TLS port: no answer.
    let plain = match Client::connect(&format!("http://{}", server.addr)).await {
        Ok(client) => client.info().await.is_ok(),
        Err(_) => false,
    };
    assert!(!plain, "plain HTTP/2 was served on the TLS port");

    // An https endpoint is required for TLS.
    let err = Client::connect_tls(&format!("http://{}", server.addr), &ca)
        .await
        .err()
        .context("http:// accepted for TLS")?;
    assert!(err.to_string().contains("https://"), "{err}");

    // The CLI, with --ca-cert.
    let output = Command::new(crate::LEDGER)
        .args(["--server", &url, "--ca-cert"])
        .arg(tls_dir().join("ca.pem"))
        .args(["--json", "info"])
        .env_remove("LEDGER_API_KEY")
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("\"size\":3"), "{stdout}");

    let _ = server.stop.send(());
    server.task.await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_tls_configuration_stops_the_start_naming_the_setting() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let resolve = |cert: Option<PathBuf>, key: Option<PathBuf>| {
        ServeArgs {
            data: Some(dir.path().to_path_buf()),
            tls_cert: cert,
            tls_key: key,
            ..ServeArgs::default()
        }
        .resolve()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    let msg = resolve(Some(files().cert), None);
    assert!(msg.starts_with("tls_key: "), "{msg}");
    let msg = resolve(None, Some(files().key));
    assert!(msg.starts_with("tls_cert: "), "{msg}");
    let msg = resolve(Some(dir.path().join("missing.pem")), Some(files().key));
    assert!(
        msg.starts_with("tls_cert: ") && msg.contains("missing.pem is not a file"),
        "{msg}"
    );

    // A key file that holds no key: refused before serving, named.
    let not_pem = dir.path().join("not-a-key.pem");
    std::fs::write(&not_pem, "hello")?;
    let mut config = server_config(&dir.path().join("ledger"))?;
    config.tls = Some(TlsFiles {
        key: not_pem,
        ..files()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let err = ledger_server::run(listener, config, std::future::pending())
        .await
        .err()
        .context("served with a key file that is not PEM")?;
    assert!(err.to_string().contains("tls_key"), "{err}");
    Ok(())
}
