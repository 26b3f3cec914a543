//! Running `ledgerd` for tests: in-process on a loopback port (what most
//! tests use), or as a child process that can be `SIGKILL`ed.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;
use ledger_client::{ApiKey, Client, ClientError};
use ledger_server::ServerConfig;
use tokio::sync::oneshot;

use ledger_core::LocalKeySigner;

use crate::{TEST_ORIGIN, TEST_SEED};

/// A server config for `dir` with the test origin, signing with the test
/// key (written to `dir/ledger.key` unless already there), so tests verify
/// against a key they pinned themselves.
pub fn server_config(dir: &Path) -> anyhow::Result<ServerConfig> {
    let mut config = ServerConfig::new(dir);
    config.ledger.origin = TEST_ORIGIN.to_string();
    if !config.key_file.exists() {
        std::fs::create_dir_all(dir)?;
        LocalKeySigner::from_seed(TEST_ORIGIN, TEST_SEED)?.save(&config.key_file)?;
    }
    Ok(config)
}

/// `ledgerd` served in-process by `ledger_server::run` on `127.0.0.1:0`.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), ledger_server::ServerError>>>,
}

impl TestServer {
    /// Starts a server with `config`; returns once it accepts connections.
    pub async fn start(config: ServerConfig) -> anyhow::Result<TestServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(ledger_server::run(listener, config, async move {
            let _ = stopped.await;
        }));
        let mut server = TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        };
        // The ledger opens before serving: wait until a call is answered
        // (with principals, refused for want of a key: the server is up).
        for _ in 0..200 {
            if let Ok(client) = Client::connect(&server.url()).await {
                match client.info().await {
                    Ok(_) => return Ok(server),
                    Err(ClientError::Status(s)) if ledger_client::code_name(s.code()) == "UNAUTHENTICATED" => {
                        return Ok(server);
                    }
                    Err(_) => {}
                }
            }
            if server.task.as_ref().is_some_and(|t| t.is_finished()) {
                return match server.task.take() {
                    Some(task) => Err(anyhow::anyhow!("test server stopped: {:?}", task.await?)),
                    None => anyhow::bail!("test server stopped"),
                };
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        anyhow::bail!("test server on {addr} did not come up")
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A connected client.
    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(&self.url()).await?)
    }

    /// A connected client presenting the API key `key`.
    pub async fn client_with_key(&self, key: &str) -> anyhow::Result<Client> {
        Ok(Client::connect(&self.url()).await?.with_api_key(ApiKey::new(key)?))
    }

    /// Graceful shutdown; returns what `run` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => Ok(task.await??),
            None => Ok(()),
        }
    }
}

/// `ledgerd serve` as a child process on a loopback port.
#[derive(Debug)]
pub struct Ledgerd {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Ledgerd {
    /// Starts `ledgerd serve --data dir --listen 127.0.0.1:0` and waits for
    /// its "listening on" line.
    /// `exe` is the `ledgerd` program (in tests,
    /// `env!("CARGO_BIN_EXE_test-ledgerd")`).
    pub fn spawn(exe: &str, dir: &Path) -> anyhow::Result<Ledgerd> {
        let mut command = Command::new(exe);
        command.env("LEDGER_LOG", "warn").stderr(Stdio::inherit());
        Ledgerd::start(command, dir)
    }

    /// As [`Ledgerd::spawn`], with `args` added to `ledgerd serve`, the log
    /// level `log_level` (`LEDGER_LOG`), and everything the server logs to
    /// stderr captured, for tests about what reaches the log.
    pub fn spawn_logged(
        exe: &str,
        dir: &Path,
        args: &[&str],
        log_level: &str,
    ) -> anyhow::Result<(Ledgerd, CapturedLog)> {
        let mut command = Command::new(exe);
        command.env("LEDGER_LOG", log_level).stderr(Stdio::piped());
        let mut ledgerd = Ledgerd::start_with(command, dir, args)?;
        let mut stderr = ledgerd.child.stderr.take().context("no stderr")?;
        let reader = std::thread::spawn(move || {
            let mut log = Vec::new();
            std::io::Read::read_to_end(&mut stderr, &mut log).map(|_| log)
        });
        Ok((ledgerd, CapturedLog(reader)))
    }

    /// As [`Ledgerd::spawn`], with `LEDGER_LOG=filter` and the log (stderr)
    /// written to `log_file`, for tests that read what the server logged.
    pub fn spawn_logging(exe: &str, dir: &Path, filter: &str, log_file: &Path) -> anyhow::Result<Ledgerd> {
        let log = std::fs::File::create(log_file)?;
        let mut command = Command::new(exe);
        command.env("LEDGER_LOG", filter).stderr(Stdio::from(log));
        Ledgerd::start(command, dir)
    }

    fn start(command: Command, dir: &Path) -> anyhow::Result<Ledgerd> {
        Ledgerd::start_with(command, dir, &[])
    }

    fn start_with(mut command: Command, dir: &Path, args: &[&str]) -> anyhow::Result<Ledgerd> {
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--origin", TEST_ORIGIN, "--data"])
            .arg(dir)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines.next().context("ledgerd exited before listening")??;
            if let Some(addr) = line.strip_prefix("ledgerd listening on ") {
                break addr.trim().parse()?;
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Ledgerd { child, addr })
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `kill -9`, then reap.
    pub fn kill9(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

/// The stderr of a [`Ledgerd`] started by [`Ledgerd::spawn_logged`], read
/// on a thread until the process exits.
#[derive(Debug)]
pub struct CapturedLog(std::thread::JoinHandle<std::io::Result<Vec<u8>>>);

impl CapturedLog {
    /// Everything the process wrote to stderr. Stop the process first: this
    /// waits for the end of the pipe.
    pub fn text(self) -> anyhow::Result<String> {
        let log = self
            .0
            .join()
            .map_err(|_| anyhow::anyhow!("the log reader thread panicked"))??;
        Ok(String::from_utf8_lossy(&log).into_owned())
    }
}

impl Drop for Ledgerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
