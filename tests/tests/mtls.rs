//! Mutual TLS: `ledgerd --tls-client-ca` asks clients for a certificate
//! signed by the client CA, and one bound to a principal (`ledgerd auth
//! add-cert`) authenticates as that principal without an API key; its
//! grants apply. A certificate bound to nobody, or revoked while the server
//! runs, is `UNAUTHENTICATED`; one from another CA never gets past the
//! handshake; a client without a certificate still authenticates by key;
//! a key and a certificate of different principals are refused together.
//! The certificates are in `testdata/tls/` (see its README).
//!
//! These run a real `ledgerd` over loopback TLS, so they also pin how the
//! certificate reaches the auth layer: tonic's `TlsConnectInfo` in the
//! request extensions, outside the server's layers.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use ledger_client::{ApiKey, Client, ClientError, proto};
use ledger_server::config::{ServeArgs, TlsFiles};
use ledger_tests::server::server_config;
use tonic::Code;

use crate::auth_cli::{add_principal, run, text};
use crate::tls::{event, files, start_with, tls_dir};

/// What `openssl x509 -noout -fingerprint -sha256 -in client.pem` prints.
const CLIENT_OPENSSL_FINGERPRINT: &str =
    "3D:A8:4B:BC:C5:2C:E0:11:A0:16:2B:AF:6E:0B:93:1C:62:B3:65:D0:B0:02:B3:E1:54:AA:C7:B8:82:5D:AF:01";
/// The same, as the principals file and `ledgerd auth add-cert` write it.
const CLIENT_SHA256: &str = "3da84bbcc52ce011a0162baf6e0b931c62b365d0b002b3e154aac7b8825daf01";

fn read(name: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(tls_dir().join(name)).with_context(|| format!("testdata/tls/{name}"))
}

/// A client presenting the certificate `name`.pem (with `name`.key).
async fn with_cert(url: &str, name: &str) -> Result<Client, ClientError> {
    let (ca, cert, key) = (
        read("ca.pem").map_err(|e| ClientError::Io(e.to_string()))?,
        read(&format!("{name}.pem")).map_err(|e| ClientError::Io(e.to_string()))?,
        read(&format!("{name}.key")).map_err(|e| ClientError::Io(e.to_string()))?,
    );
    Client::connect_mtls(url, &ca, &cert, &key).await
}

/// The status code and message of a failed call, or `OK`.
fn status<T>(result: Result<T, ClientError>) -> (Code, String) {
    match result {
        Ok(_) => (Code::Ok, String::new()),
        Err(ClientError::Status(s)) => (s.code(), s.message().to_string()),
        Err(other) => (Code::Unknown, other.to_string()),
    }
}

fn ledgerd_auth(args: &[&str], data: &Path) -> anyhow::Result<std::process::Output> {
    let mut all = vec!["auth"];
    all.extend(args);
    all.extend(["--data", data.to_str().context("path")?]);
    run(crate::LEDGERD, &all, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_authenticates_as_its_principal() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let probe_key = add_principal(&data, "ops-hub-probe", &["ops-hub:append,read"])?;
    let auditor_key = add_principal(&data, "auditor", &["*:read"])?;
    let cert = tls_dir().join("client.pem");
    let added = ledgerd_auth(
        &[
            "add-cert",
            "--name",
            "ops-hub-probe",
            "--cert",
            cert.to_str().context("path")?,
        ],
        &data,
    )?;
    ensure!(added.status.success(), "{}", text(&added.stderr));
    // The fingerprint is OpenSSL's, without colons, lower case.
    assert_eq!(text(&added.stdout).trim(), CLIENT_SHA256);
    let again = ledgerd_auth(
        &[
            "add-cert",
            "--name",
            "auditor",
            "--cert",
            cert.to_str().context("path")?,
        ],
        &data,
    )?;
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains(&format!(
            "client certificate {CLIENT_SHA256} is already bound to principal \"ops-hub-probe\""
        )),
        "{}",
        text(&again.stderr)
    );

    let mut config = server_config(&data)?;
    config.principals_file = Some(data.join("principals.toml"));
    config.tls = Some(TlsFiles {
        client_ca: Some(tls_dir().join("client-ca.pem")),
        ..files()
    });
    let server = start_with(config).await?;
    let url = server.url();

    // The certificate alone: its principal, with its grants.
    let probe = with_cert(&url, "client").await?;
    let appended = probe
        .append(proto::AppendRequest {
            events: (0..3).map(event).collect(),
            ..Default::default()
        })
        .await?;
    assert_eq!(appended.receipts.len(), 3);
    // Seq 0 is the ledger's record of the principals file (admin.principals_file_loaded).
    let second = appended.receipts[1].seq;
    assert_eq!(
        probe.record(second).await?.event.context("event")?.payload,
        b"{\"i\":1}"
    );
    let elsewhere = probe
        .append(proto::AppendRequest {
            events: vec![ledger_client::event("ci/build", "ci.build_finished", b"{}".to_vec())],
            ..Default::default()
        })
        .await;
    let (code, message) = status(elsewhere);
    assert_eq!(code, Code::PermissionDenied, "{message}");
    assert!(
        message.contains("principal \"ops-hub-probe\" lacks append on namespace \"ci\""),
        "{message}"
    );

    // Signed by the client CA, bound to nobody.
    let unbound = with_cert(&url, "unbound").await?;
    assert_eq!(
        status(unbound.info().await),
        (
            Code::Unauthenticated,
            "client certificate is not bound to a principal".to_string()
        )
    );

    // Signed by another CA (of the same name): refused in the handshake,
    // before any call reaches the auth layer (which would have said "not
    // bound to a principal"). With TLS 1.3 the client may learn it only on
    // its first call, as a closed connection.
    let stranger = match with_cert(&url, "stranger").await {
        Ok(client) => client.info().await.map(|_| ()),
        Err(err) => Err(err),
    };
    match stranger {
        Ok(()) => anyhow::bail!("a certificate of another CA was served"),
        Err(ClientError::Status(s)) => assert!(
            ![Code::Unauthenticated, Code::PermissionDenied].contains(&s.code()),
            "the handshake let it through: {s:?}"
        ),
        Err(err) => assert!(matches!(err, ClientError::Connect { .. }), "{err:?}"),
    }

    // No certificate: API keys work as before.
    let ca = read("ca.pem")?;
    let auditor = Client::connect_tls(&url, &ca)
        .await?
        .with_api_key(ApiKey::new(&auditor_key)?);
    assert_eq!(
        auditor.info().await?.size,
        4,
        "the principals file record and three events"
    );
    assert_eq!(
        status(Client::connect_tls(&url, &ca).await?.info().await).0,
        Code::Unauthenticated
    );

    // A key and a certificate: they must name the same principal.
    let both = with_cert(&url, "client").await?.with_api_key(ApiKey::new(&probe_key)?);
    assert_eq!(both.info().await?.size, 4);
    let crossed = with_cert(&url, "client")
        .await?
        .with_api_key(ApiKey::new(&auditor_key)?);
    assert_eq!(
        status(crossed.info().await),
        (
            Code::Unauthenticated,
            "API key and client certificate name different principals".to_string()
        )
    );

    // The ledger CLI, with --client-cert/--client-key or their variables.
    let tls_args = |name: &str| -> anyhow::Result<Vec<String>> {
        Ok(vec![
            "--server".to_string(),
            url.clone(),
            "--ca-cert".to_string(),
            tls_dir().join("ca.pem").to_str().context("path")?.to_string(),
            "--client-cert".to_string(),
            tls_dir()
                .join(format!("{name}.pem"))
                .to_str()
                .context("path")?
                .to_string(),
            "--client-key".to_string(),
            tls_dir()
                .join(format!("{name}.key"))
                .to_str()
                .context("path")?
                .to_string(),
        ])
    };
    let ledger = |args: &[String], env: &[(&str, &str)]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(crate::LEDGER, &args, env)
    };
    let mut info = tls_args("client")?;
    info.extend(["--json".to_string(), "info".to_string()]);
    let out = ledger(&info, &[])?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\"size\":4"), "{}", text(&out.stdout));
    let (client_pem, client_key) = (tls_dir().join("client.pem"), tls_dir().join("client.key"));
    let append = [
        "--server",
        &url,
        "--ca-cert",
        tls_dir().join("ca.pem").to_str().context("path")?,
        "append",
        "--stream",
        "ops-hub/cli",
        "--type",
        "probe.ok",
    ]
    .map(str::to_string);
    let out = ledger(
        &append,
        &[
            ("LEDGER_CLIENT_CERT", client_pem.to_str().context("path")?),
            ("LEDGER_CLIENT_KEY", client_key.to_str().context("path")?),
        ],
    )?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    let mut unbound_info = tls_args("unbound")?;
    unbound_info.push("info".to_string());
    let out = ledger(&unbound_info, &[])?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).starts_with("ledger: UNAUTHENTICATED: client certificate is not bound to a principal"),
        "{}",
        text(&out.stderr)
    );
    let out = ledger(&append, &[("LEDGER_CLIENT_CERT", client_pem.to_str().context("path")?)])?;
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr).trim(),
        "ledger: --client-key (LEDGER_CLIENT_KEY): needed with --client-cert"
    );
    let mut no_cert = tls_args("client")?;
    no_cert.drain(4..6);
    no_cert.push("info".to_string());
    let out = ledger(&no_cert, &[])?;
    assert_eq!(
        text(&out.stderr).trim(),
        "ledger: --client-cert (LEDGER_CLIENT_CERT): needed with --client-key"
    );
    let mut no_ca = tls_args("client")?;
    no_ca.drain(2..4);
    no_ca.push("info".to_string());
    let out = ledger(&no_ca, &[])?;
    assert_eq!(
        text(&out.stderr).trim(),
        "ledger: --ca-cert (LEDGER_CA_CERT): needed with --client-cert, which is sent over TLS only"
    );

    // Listed, then revoked (in OpenSSL's spelling) while the server runs:
    // the next reload refuses it, on a connection made before too.
    let list = ledgerd_auth(&["list"], &data)?;
    assert!(
        text(&list.stdout).contains(&format!("  cert sha256:{CLIENT_SHA256}  added ")),
        "{}",
        text(&list.stdout)
    );
    let revoked = ledgerd_auth(&["revoke-cert", "--sha256", CLIENT_OPENSSL_FINGERPRINT], &data)?;
    ensure!(revoked.status.success(), "{}", text(&revoked.stderr));
    assert!(
        text(&revoked.stderr).contains(&format!(
            "revoked client certificate {CLIENT_SHA256} of \"ops-hub-probe\""
        )),
        "{}",
        text(&revoked.stderr)
    );
    let mut refused = None;
    for _ in 0..300 {
        match status(probe.info().await) {
            (Code::Ok, _) => tokio::time::sleep(Duration::from_millis(100)).await,
            other => {
                refused = Some(other);
                break;
            }
        }
    }
    assert_eq!(
        refused,
        Some((Code::Unauthenticated, "client certificate revoked".to_string()))
    );
    assert_eq!(
        status(with_cert(&url, "client").await?.info().await),
        (Code::Unauthenticated, "client certificate revoked".to_string())
    );
    // Its principal's key still works.
    let by_key = Client::connect_tls(&url, &ca)
        .await?
        .with_api_key(ApiKey::new(&probe_key)?);
    // Four before, the CLI's event, and the record of the revocation
    // (admin.principals_file_changed).
    assert_eq!(by_key.info().await?.size, 6);
    let list = ledgerd_auth(&["list"], &data)?;
    assert!(
        text(&list.stdout).contains(&format!("  cert sha256:{CLIENT_SHA256}  added "))
            && text(&list.stdout).contains("  revoked "),
        "{}",
        text(&list.stdout)
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_ca_without_tls_stops_the_start_naming_the_setting() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let client_ca = tls_dir().join("client-ca.pem");
    let client_ca = client_ca.to_str().context("path")?;
    let serve = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data.to_str().context("path")?,
    ];
    let mut flagged = serve.to_vec();
    flagged.extend(["--tls-client-ca", client_ca]);
    for (args, env) in [
        (flagged.as_slice(), &[][..]),
        (&serve[..], &[("LEDGER_TLS_CLIENT_CA", client_ca)][..]),
    ] {
        let out = run(crate::LEDGERD, args, env)?;
        assert!(!out.status.success());
        let stderr = text(&out.stderr);
        assert!(stderr.contains("tls_client_ca: needs tls_cert and tls_key"), "{stderr}");
        assert!(!data.exists(), "the data directory was created");
    }

    // With TLS, a client CA file that holds no certificate is named.
    let resolved = ServeArgs {
        data: Some(data.clone()),
        tls_cert: Some(files().cert),
        tls_key: Some(files().key),
        tls_client_ca: Some(files().key),
        ..ServeArgs::default()
    }
    .resolve()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut config = server_config(&data)?;
    config.tls = resolved.tls;
    let err = ledger_server::run(listener, config, std::future::pending())
        .await
        .err()
        .context("served with a client CA file that holds no certificate")?;
    assert_eq!(
        err.to_string(),
        "config: tls_client_ca: no PEM -----BEGIN CERTIFICATE----- block found"
    );
    Ok(())
}
