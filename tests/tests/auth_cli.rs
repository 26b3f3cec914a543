//! Authentication from the outside, against `ledgerd` child processes:
//! `ledgerd auth` making and revoking keys, the `ledger` CLI presenting
//! them, development mode binding to loopback only (and saying so), and API
//! keys never appearing in the server's log.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use ledger_client::{ClientError, proto};
use ledger_tests::server::Ledgerd;
use tonic::Code;

/// Runs `program` with `args` and `env` (and no `LEDGER_API_KEY`).
pub(crate) fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Output> {
    let mut command = Command::new(program);
    command.args(args).env_remove("LEDGER_API_KEY");
    for (name, value) in env {
        command.env(name, value);
    }
    Ok(command.output()?)
}

/// Output as text.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `ledgerd auth add-principal` on `data`; returns the key it printed.
pub(crate) fn add_principal(data: &Path, name: &str, grants: &[&str]) -> anyhow::Result<String> {
    let data = data.to_str().context("path")?;
    let mut args = vec!["auth", "add-principal", "--data", data, "--name", name];
    for grant in grants {
        args.extend(["--grant", grant]);
    }
    let out = run(crate::LEDGERD, &args, &[])?;
    ensure!(out.status.success(), "add-principal failed: {}", text(&out.stderr));
    let key = text(&out.stdout).trim().to_string();
    ensure!(
        key.starts_with("lk_") && !key.contains('\n'),
        "stdout is not one key: {key:?}"
    );
    Ok(key)
}

/// Calls that work with the key, and some that do not, from the client.
async fn exercise(url: &str, keys: &[&str]) -> anyhow::Result<()> {
    for key in keys {
        let client = ledger_client::Client::connect(url)
            .await?
            .with_api_key(ledger_client::ApiKey::new(key)?);
        let _ = client
            .append(proto::AppendRequest {
                events: vec![ledger_client::event(
                    "ops-hub/probe",
                    "ops.health_checked",
                    b"{}".to_vec(),
                )],
                ..Default::default()
            })
            .await;
        let _ = client.info().await;
        let _ = client.record(0).await;
    }
    Ok(())
}

#[test]
fn ledgerd_auth_makes_keys_the_ledger_cli_presents() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let key = add_principal(&data, "probe", &["ops-hub:append,read"])?;
    let file = std::fs::read_to_string(data.join("principals.toml"))?;
    ensure!(!file.contains(&key[20..]), "the principals file holds the secret");
    ensure!(file.contains("ops-hub:read,append"), "{file}");
    let again = run(
        crate::LEDGERD,
        &[
            "auth",
            "add-principal",
            "--data",
            data.to_str().context("path")?,
            "--name",
            "probe",
            "--grant",
            "ci:read",
        ],
        &[],
    )?;
    ensure!(!again.status.success() && text(&again.stderr).contains("\"probe\" already exists"));

    let ledgerd = Ledgerd::spawn(crate::LEDGERD, &data)?;
    let url = ledgerd.url();
    let ledger = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["--server", url.as_str()];
        all.extend(args);
        run(crate::LEDGER, &all, env)
    };
    let append = ["append", "--stream", "ops-hub/probe", "--type", "ops.health_checked"];
    let mut flagged = vec!["--api-key", key.as_str()];
    flagged.extend(append);
    let with_flag = ledger(&flagged, &[])?;
    ensure!(with_flag.status.success(), "{}", text(&with_flag.stderr));
    let with_env = ledger(&append, &[("LEDGER_API_KEY", &key)])?;
    ensure!(with_env.status.success(), "{}", text(&with_env.stderr));
    let without = ledger(&append, &[])?;
    ensure!(!without.status.success());
    ensure!(
        text(&without.stderr).starts_with("ledger: UNAUTHENTICATED: missing API key"),
        "{}",
        text(&without.stderr)
    );
    let elsewhere = ledger(
        &["append", "--stream", "ci/build", "--type", "ci.build_finished"],
        &[("LEDGER_API_KEY", &key)],
    )?;
    ensure!(
        text(&elsewhere.stderr)
            .contains("PERMISSION_DENIED: events[0].stream: principal \"probe\" lacks append on namespace \"ci\""),
        "{}",
        text(&elsewhere.stderr)
    );

    // A second key, then the first revoked: the server follows the file.
    let second = run(
        crate::LEDGERD,
        &[
            "auth",
            "create-key",
            "--data",
            data.to_str().context("path")?,
            "--name",
            "probe",
            "--expires-in-days",
            "30",
        ],
        &[],
    )?;
    ensure!(second.status.success(), "{}", text(&second.stderr));
    let second = text(&second.stdout).trim().to_string();
    let id = &key[3..19];
    let revoke = run(
        crate::LEDGERD,
        &[
            "auth",
            "revoke-key",
            "--data",
            data.to_str().context("path")?,
            "--key-id",
            id,
        ],
        &[],
    )?;
    ensure!(revoke.status.success(), "{}", text(&revoke.stderr));
    let list = run(
        crate::LEDGERD,
        &["auth", "list", "--data", data.to_str().context("path")?],
        &[],
    )?;
    let listed = text(&list.stdout);
    ensure!(
        listed.contains(&format!("key {id}")) && listed.contains("revoked") && listed.contains("expires"),
        "{listed}"
    );
    ensure!(
        !listed.contains(&key[20..]) && !listed.contains(&second[20..]),
        "list shows a secret"
    );
    let mut refused = false;
    for _ in 0..300 {
        let out = ledger(&["info"], &[("LEDGER_API_KEY", &key)])?;
        if !out.status.success() {
            ensure!(
                text(&out.stderr).contains("UNAUTHENTICATED: API key revoked"),
                "{}",
                text(&out.stderr)
            );
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ensure!(refused, "the revoked key still works");
    let out = ledger(&["info"], &[("LEDGER_API_KEY", &second)])?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    ledgerd.kill9()
}

#[test]
fn without_principals_ledgerd_binds_loopback_only_and_says_so() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let refused = run(
        crate::LEDGERD,
        &[
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--data",
            data.to_str().context("path")?,
        ],
        &[],
    )?;
    ensure!(!refused.status.success());
    let stderr = text(&refused.stderr);
    ensure!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without authentication: no principals are configured"),
        "{stderr}"
    );
    ensure!(!data.exists(), "a refused start created {}", data.display());

    let log = dir.path().join("ledgerd.log");
    let ledgerd = Ledgerd::spawn_logging(crate::LEDGERD, &data, "info", &log)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // Once a call is answered, start-up (and its log) is complete.
    runtime.block_on(async {
        let client = ledger_client::Client::connect(&ledgerd.url()).await?;
        client.info().await?;
        anyhow::Ok(())
    })?;
    let logged = std::fs::read_to_string(&log)?;
    ensure!(
        logged.contains("development mode: no principals configured, authentication is off, bound to loopback only"),
        "{logged}"
    );
    ledgerd.kill9()
}

#[test]
fn api_keys_never_appear_in_the_server_log() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let key = add_principal(&data, "probe", &["ops-hub:append,read"])?;
    let other = add_principal(&data, "reader", &["ci:read"])?;
    let data_str = data.to_str().context("path")?;
    let revoked = text(
        &run(
            crate::LEDGERD,
            &["auth", "create-key", "--data", data_str, "--name", "probe"],
            &[],
        )?
        .stdout,
    )
    .trim()
    .to_string();
    let revoke = run(
        crate::LEDGERD,
        &["auth", "revoke-key", "--data", data_str, "--key-id", &revoked[3..19]],
        &[],
    )?;
    ensure!(revoke.status.success(), "{}", text(&revoke.stderr));
    let wrong = format!(
        "{}{}",
        &key[..key.len() - 1],
        if key.ends_with('0') { '1' } else { '0' }
    );

    // Everything that handles a request logs at its most verbose.
    let log = dir.path().join("ledgerd.log");
    let filter = "debug,ledger_server=trace,tonic=trace,tower=trace,hyper=trace,h2=trace";
    let ledgerd = Ledgerd::spawn_logging(crate::LEDGERD, &data, filter, &log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        exercise(&ledgerd.url(), &[&key, &other, &revoked, &wrong, "lk_not-even-hex"]).await?;
        // The valid key really worked, the others really did not.
        let client = ledger_client::Client::connect(&ledgerd.url())
            .await?
            .with_api_key(ledger_client::ApiKey::new(&key)?);
        ensure!(
            client.info().await?.size >= 1,
            "the append with the valid key did not land"
        );
        let refused = ledger_client::Client::connect(&ledgerd.url())
            .await?
            .with_api_key(ledger_client::ApiKey::new(&wrong)?)
            .info()
            .await;
        match refused {
            Err(ClientError::Status(s)) if s.code() == Code::Unauthenticated => Ok(()),
            other => bail!("expected UNAUTHENTICATED, got {other:?}"),
        }
    })?;
    // The `ledger` CLI sends its key the same way.
    let out = run(
        crate::LEDGER,
        &["--server", &ledgerd.url(), "info"],
        &[("LEDGER_API_KEY", &key)],
    )?;
    ensure!(out.status.success(), "{}", text(&out.stderr));
    ledgerd.kill9()?;

    let logged = std::fs::read_to_string(&log)?;
    // The log did record the calls: the principal, the refusals and the
    // ids of the keys refused (ids are not secrets).
    ensure!(
        logged.contains("principal=probe") || logged.contains("principal: probe"),
        "no principal in the log"
    );
    ensure!(
        logged.contains("API key revoked") && logged.contains(&revoked[3..19]),
        "no revocation in the log"
    );
    ensure!(logged.contains("invalid API key"), "no refused key in the log");
    ensure!(logged.lines().count() > 50, "the log is suspiciously short:\n{logged}");
    for (name, secret) in [
        ("valid", &key),
        ("other", &other),
        ("revoked", &revoked),
        ("wrong", &wrong),
    ] {
        let hex_secret = &secret[20..];
        ensure!(!logged.contains(hex_secret), "the {name} key's secret is in the log");
        // Also the first half alone, in case something logs a prefix.
        ensure!(
            !logged.contains(&hex_secret[..32]),
            "part of the {name} key's secret is in the log"
        );
    }
    ensure!(!logged.contains("lk_not-even-hex"), "a presented key is in the log");
    ensure!(
        !logged.to_ascii_lowercase().contains("bearer"),
        "an authorization header is in the log"
    );
    Ok(())
}
