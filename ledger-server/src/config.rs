//! Server settings, layered: command-line flag, then `LEDGER_*` environment
//! variable (clap reads both), then the TOML config file, then the default.
//!
//! Every setting has the same name in all three places: `--max-batch-events`,
//! `LEDGER_MAX_BATCH_EVENTS`, `max_batch_events = ...`. Two sections are
//! file-only because they are tables: `[metrics]` and `[secret_scan]`;
//! `--secret-scan on|off` (`LEDGER_SECRET_SCAN`) switches the latter.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ledger_core::projection::ProjectionsConfig;
use ledger_core::projection::builtin::metrics::MetricsConfig;
use ledger_core::{HashAlg, LedgerConfig, ScanConfig, SecretScanner};
use serde::Deserialize;

use crate::quota::Limits;

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default data directory.
pub const DEFAULT_DATA: &str = "./ledger-data";
/// The principals file looked for in the data directory.
pub const PRINCIPALS_FILE: &str = "principals.toml";
/// Smallest `projection_resident_bytes` accepted: 1 MiB. A bound that
/// small evicts nearly every row after each flush, so folds and queries
/// read their rows back from the store; such a value is far more likely a
/// count of MiB written where bytes are meant than a memory budget.
pub const MIN_PROJECTION_RESIDENT_BYTES: usize = 1024 * 1024;

/// A setting that cannot be used, named as the user wrote it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is out of range or malformed.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The setting, e.g. `listen`.
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// The config file could not be read or parsed.
    #[error("config file {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `on` or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// Everything `server::run` needs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where to listen (used by the binary; `run` takes a bound listener).
    pub listen: SocketAddr,
    /// The ledger's data directory.
    pub data_dir: PathBuf,
    /// The checkpoint signing key; created as a development key if missing.
    pub key_file: PathBuf,
    /// Ledger options (origin and tree hash apply when the ledger is
    /// created), the secret scan (`[secret_scan]`) among them.
    pub ledger: LedgerConfig,
    /// Largest gRPC message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Most streaming calls (AppendStream, Read, Subscribe) open at once.
    pub max_concurrent_streams: usize,
    /// Requests of one AppendStream waiting for the disk before the server
    /// stops reading more from it.
    pub max_in_flight_per_stream: usize,
    /// Records buffered per subscriber before the subscription waits for the
    /// client (a slow subscriber falls behind and reads from disk; it never
    /// makes the server buffer without bound).
    pub subscriber_buffer: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// The metrics projection's alert rules and minute retention (config
    /// file only: `[metrics]` and `[[metrics.rules]]`).
    pub metrics: MetricsConfig,
    /// How the projection engine runs: the rows each projection keeps in
    /// memory (`projection_resident_bytes`).
    pub projections: ProjectionsConfig,
    /// The principals file (`crate::auth::principals`); `None` is
    /// development mode: no authentication, loopback only.
    pub principals_file: Option<PathBuf>,
    /// Serve TLS with this certificate and key instead of plain HTTP/2.
    pub tls: Option<TlsFiles>,
    /// Server-wide per-principal abuse limits (`crate::quota`), which the
    /// principals file may override per principal.
    pub principal_limits: Limits,
}

/// The server's TLS certificate chain and private key (PEM files), and
/// the CA of client certificates for mutual TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificate(s) (PEM) that client certificates must chain to.
    /// With it the server asks every client for a certificate, but a
    /// client without one may still connect (and authenticate by API key).
    pub client_ca: Option<PathBuf>,
}

impl ServerConfig {
    /// Defaults for a data directory (key file inside it).
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        let data_dir = data_dir.into();
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            key_file: data_dir.join("ledger.key"),
            data_dir,
            ledger: LedgerConfig::default(),
            max_message_bytes: 16 * 1024 * 1024,
            max_concurrent_streams: 4096,
            max_in_flight_per_stream: 16,
            subscriber_buffer: 256,
            log_format: LogFormat::Text,
            metrics: MetricsConfig::default(),
            projections: ProjectionsConfig::default(),
            principals_file: None,
            tls: None,
            principal_limits: Limits::default(),
        }
    }
}

/// Settings from flags and environment (`ledgerd serve --help`).
// The field docs are also clap's help text, where `<data>` reads as the
// placeholder it is; to rustdoc it looks like an unclosed HTML tag.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML config file (settings named as the flags, with underscores).
    #[arg(long, env = "LEDGER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:50051].
    #[arg(long, env = "LEDGER_LISTEN")]
    pub listen: Option<String>,
    /// Data directory [default: ./ledger-data].
    #[arg(long, env = "LEDGER_DATA")]
    pub data: Option<PathBuf>,
    /// Checkpoint signing key file [default: <data>/ledger.key].
    #[arg(long, env = "LEDGER_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Checkpoint origin of a new ledger [default: evidence-ledger.local/dev].
    #[arg(long, env = "LEDGER_ORIGIN")]
    pub origin: Option<String>,
    /// Merkle tree hash of a new ledger: blake3 or sha256 [default: blake3].
    #[arg(long, env = "LEDGER_TREE_HASH")]
    pub tree_hash: Option<String>,
    /// Log format [default: text].
    #[arg(long, env = "LEDGER_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Largest gRPC message in bytes [default: 16 MiB].
    #[arg(long, env = "LEDGER_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Most events in one append batch [default: 10000].
    #[arg(long, env = "LEDGER_MAX_BATCH_EVENTS")]
    pub max_batch_events: Option<usize>,
    /// Largest event payload in bytes [default: 1 MiB].
    #[arg(long, env = "LEDGER_MAX_PAYLOAD_BYTES")]
    pub max_payload_bytes: Option<usize>,
    /// Most streaming calls open at once [default: 4096].
    #[arg(long, env = "LEDGER_MAX_CONCURRENT_STREAMS")]
    pub max_concurrent_streams: Option<usize>,
    /// Pipelined requests per AppendStream [default: 16].
    #[arg(long, env = "LEDGER_MAX_IN_FLIGHT_PER_STREAM")]
    pub max_in_flight_per_stream: Option<usize>,
    /// Segment file size limit in bytes [default: 64 MiB].
    #[arg(long, env = "LEDGER_SEGMENT_MAX_BYTES")]
    pub segment_max_bytes: Option<u64>,
    /// Synced zero bytes kept ahead of the writer in the tail segment, so
    /// that a group's fdatasync need not also commit a new file size; 0
    /// turns preallocation off [default: 8 MiB].
    #[arg(long, env = "LEDGER_PREALLOCATE_BYTES")]
    pub preallocate_bytes: Option<u64>,
    /// Bytes of rows each projection keeps in memory; the least recently
    /// used beyond it are read back from the projection store when needed.
    /// At least 1 MiB (1048576) [default: 16 MiB].
    #[arg(long, env = "LEDGER_PROJECTION_RESIDENT_BYTES")]
    pub projection_resident_bytes: Option<usize>,
    /// Refuse events holding credentials [default: on]. `off` turns the
    /// scan off in every namespace; `on` keeps the config file's
    /// per-namespace settings. Rules, namespaces and the allow-list are in
    /// the config file's `[secret_scan]`.
    #[arg(long, env = "LEDGER_SECRET_SCAN")]
    pub secret_scan: Option<Switch>,
    /// Principals file (API key hashes and grants) [default:
    /// <data>/principals.toml if it exists; without one, ledgerd runs in
    /// development mode: no authentication, loopback only].
    #[arg(long, env = "LEDGER_PRINCIPALS")]
    pub principals: Option<PathBuf>,
    /// TLS certificate chain (PEM); with --tls-key, serves TLS only.
    #[arg(long, env = "LEDGER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "LEDGER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA certificate (PEM) of client certificates (mutual TLS; needs
    /// --tls-cert): a client may present a certificate signed by it, bound
    /// to a principal with `ledgerd auth add-cert`, instead of an API key.
    /// Clients without a certificate are still served.
    #[arg(long, env = "LEDGER_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Events each principal may append per second, also its burst; 0 is
    /// unlimited [default: 0].
    #[arg(long, env = "LEDGER_PRINCIPAL_EVENTS_PER_SEC")]
    pub principal_events_per_sec: Option<u64>,
    /// Payload bytes each principal may append per second, also its burst;
    /// 0 is unlimited [default: 0].
    #[arg(long, env = "LEDGER_PRINCIPAL_BYTES_PER_SEC")]
    pub principal_bytes_per_sec: Option<u64>,
    /// Streaming calls each principal may have open at once [default: 1024].
    #[arg(long, env = "LEDGER_PRINCIPAL_MAX_STREAMS")]
    pub principal_max_streams: Option<u32>,
}

/// The config file: the same settings, all optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data: Option<PathBuf>,
    key_file: Option<PathBuf>,
    origin: Option<String>,
    tree_hash: Option<String>,
    log_format: Option<LogFormat>,
    max_message_bytes: Option<usize>,
    max_batch_events: Option<usize>,
    max_payload_bytes: Option<usize>,
    max_concurrent_streams: Option<usize>,
    max_in_flight_per_stream: Option<usize>,
    segment_max_bytes: Option<u64>,
    preallocate_bytes: Option<u64>,
    projection_resident_bytes: Option<usize>,
    metrics: Option<MetricsConfig>,
    secret_scan: Option<ScanConfig>,
    principals: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    principal_events_per_sec: Option<u64>,
    principal_bytes_per_sec: Option<u64>,
    principal_max_streams: Option<u32>,
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let bad = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    toml::from_str(&text).map_err(|e| bad(e.to_string().trim_end().replace('\n', " ")))
}

fn invalid(setting: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.to_string(),
    }
}

fn positive<T: PartialOrd + Default + Copy>(setting: &'static str, value: T) -> Result<T, ConfigError> {
    if value > T::default() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            setting,
            reason: "must be greater than 0".to_string(),
        })
    }
}

impl ServeArgs {
    /// Resolves flags/env over the config file over the defaults.
    pub fn resolve(self) -> Result<ServerConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let data = self.data.or(file.data).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
        let mut config = ServerConfig::new(&data);
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        config.listen = listen.parse().map_err(|e| ConfigError::Invalid {
            setting: "listen",
            reason: format!("{listen:?} is not an address like 127.0.0.1:50051: {e}"),
        })?;
        if let Some(key) = self.key_file.or(file.key_file) {
            config.key_file = key;
        }
        if let Some(origin) = self.origin.or(file.origin) {
            config.ledger.origin = origin;
        }
        if let Some(name) = self.tree_hash.or(file.tree_hash) {
            config.ledger.tree_hash = HashAlg::from_name(&name).ok_or_else(|| ConfigError::Invalid {
                setting: "tree_hash",
                reason: format!("{name:?} is not blake3 or sha256"),
            })?;
        }
        if let Some(format) = self.log_format.or(file.log_format) {
            config.log_format = format;
        }
        if let Some(v) = self.max_message_bytes.or(file.max_message_bytes) {
            config.max_message_bytes = positive("max_message_bytes", v)?;
        }
        if let Some(v) = self.max_batch_events.or(file.max_batch_events) {
            config.ledger.max_batch_events = positive("max_batch_events", v)?;
        }
        if let Some(v) = self.max_payload_bytes.or(file.max_payload_bytes) {
            config.ledger.max_payload_bytes = positive("max_payload_bytes", v)?;
        }
        if let Some(v) = self.max_concurrent_streams.or(file.max_concurrent_streams) {
            config.max_concurrent_streams = positive("max_concurrent_streams", v)?;
        }
        if let Some(v) = self.max_in_flight_per_stream.or(file.max_in_flight_per_stream) {
            config.max_in_flight_per_stream = positive("max_in_flight_per_stream", v)?;
        }
        if let Some(v) = self.segment_max_bytes.or(file.segment_max_bytes) {
            config.ledger.segment_max_bytes = positive("segment_max_bytes", v)?;
        }
        if let Some(v) = self.preallocate_bytes.or(file.preallocate_bytes) {
            if v > config.ledger.segment_max_bytes {
                return Err(invalid(
                    "preallocate_bytes",
                    &format!(
                        "{v} is larger than segment_max_bytes ({}); zeros are kept only within a segment",
                        config.ledger.segment_max_bytes
                    ),
                ));
            }
            config.ledger.preallocate_bytes = v;
        }
        if let Some(v) = self.projection_resident_bytes.or(file.projection_resident_bytes) {
            if v < MIN_PROJECTION_RESIDENT_BYTES {
                return Err(invalid(
                    "projection_resident_bytes",
                    &format!(
                        "{v} is below the minimum of {MIN_PROJECTION_RESIDENT_BYTES} (1 MiB); the value is in bytes, e.g. 67108864 for 64 MiB"
                    ),
                ));
            }
            config.projections.resident_bytes = v;
        }
        if let Some(v) = self.principal_events_per_sec.or(file.principal_events_per_sec) {
            config.principal_limits.events_per_sec = v;
        }
        if let Some(v) = self.principal_bytes_per_sec.or(file.principal_bytes_per_sec) {
            config.principal_limits.bytes_per_sec = v;
        }
        if let Some(v) = self.principal_max_streams.or(file.principal_max_streams) {
            config.principal_limits.max_streams = positive("principal_max_streams", v)?;
        }
        config.principals_file = match self.principals.or(file.principals) {
            Some(path) if path.is_file() => Some(path),
            Some(path) => {
                return Err(ConfigError::Invalid {
                    setting: "principals",
                    reason: format!(
                        "{} is not a file; create it with `ledgerd auth add-principal --principals {} --name NAME --grant NAMESPACE:PERMISSIONS`",
                        path.display(),
                        path.display()
                    ),
                });
            }
            None => Some(data.join(PRINCIPALS_FILE)).filter(|p| p.is_file()),
        };
        let client_ca = self.tls_client_ca.or(file.tls_client_ca);
        config.tls = match (self.tls_cert.or(file.tls_cert), self.tls_key.or(file.tls_key)) {
            (None, None) if client_ca.is_some() => {
                return Err(invalid(
                    "tls_client_ca",
                    "needs tls_cert and tls_key: client certificates are asked for in the TLS handshake, so the server must serve TLS",
                ));
            }
            (None, None) => None,
            (Some(_), None) => return Err(invalid("tls_key", "tls_cert is set, so the key is needed too")),
            (None, Some(_)) => return Err(invalid("tls_cert", "tls_key is set, so the certificate is needed too")),
            (Some(cert), Some(key)) => {
                let files = [
                    ("tls_cert", Some(&cert)),
                    ("tls_key", Some(&key)),
                    ("tls_client_ca", client_ca.as_ref()),
                ];
                for (setting, path) in files {
                    if let Some(path) = path.filter(|p| !p.is_file()) {
                        return Err(invalid(setting, &format!("{} is not a file", path.display())));
                    }
                }
                Some(TlsFiles { cert, key, client_ca })
            }
        };
        if let Some(metrics) = file.metrics {
            metrics.validate().map_err(|e| ConfigError::Invalid {
                setting: "metrics",
                reason: e.to_string(),
            })?;
            config.metrics = metrics;
        }
        if let Some(scan) = file.secret_scan {
            config.ledger.secret_scan = scan;
        }
        match self.secret_scan {
            Some(Switch::On) => config.ledger.secret_scan.enabled = true,
            Some(Switch::Off) => {
                let scan = &mut config.ledger.secret_scan;
                scan.enabled = false;
                for namespace in scan.namespaces.values_mut() {
                    namespace.enabled = Some(false);
                }
            }
            None => {}
        }
        SecretScanner::new(&config.ledger.secret_scan).map_err(|e| ConfigError::Invalid {
            setting: "secret_scan",
            reason: e.to_string(),
        })?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("ledgerd.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            &dir,
            "listen = \"127.0.0.1:6000\"\nmax_batch_events = 50\nmax_payload_bytes = 4096\ntree_hash = \"sha256\"\n",
        );
        let args = ServeArgs {
            config: Some(path),
            max_batch_events: Some(7),
            ..ServeArgs::default()
        };
        let config = args.resolve().expect("valid");
        assert_eq!(config.listen.port(), 6000);
        assert_eq!(config.ledger.max_batch_events, 7);
        assert_eq!(config.ledger.max_payload_bytes, 4096);
        assert_eq!(config.ledger.tree_hash, HashAlg::Sha256);
        assert_eq!(
            config.max_concurrent_streams,
            ServerConfig::new("x").max_concurrent_streams
        );
        assert_eq!(config.key_file, PathBuf::from(DEFAULT_DATA).join("ledger.key"));
    }

    #[test]
    fn preallocation_layers_and_may_be_turned_off_but_not_exceed_a_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "preallocate_bytes = 0\n");
        let from_file = ServeArgs {
            config: Some(path.clone()),
            ..ServeArgs::default()
        };
        assert_eq!(from_file.resolve().expect("valid").ledger.preallocate_bytes, 0);
        let flag_wins = ServeArgs {
            config: Some(path),
            preallocate_bytes: Some(1 << 20),
            ..ServeArgs::default()
        };
        assert_eq!(flag_wins.resolve().expect("valid").ledger.preallocate_bytes, 1 << 20);
        assert_eq!(
            ServeArgs::default().resolve().expect("valid").ledger.preallocate_bytes,
            LedgerConfig::default().preallocate_bytes
        );
        let too_big = ServeArgs {
            segment_max_bytes: Some(4096),
            preallocate_bytes: Some(8192),
            ..ServeArgs::default()
        };
        let msg = too_big.resolve().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.starts_with("preallocate_bytes: 8192 is larger than segment_max_bytes (4096)"),
            "{msg}"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let err = |args: ServeArgs| args.resolve().err().map(|e| e.to_string()).unwrap_or_default();
        let msg = err(ServeArgs {
            listen: Some("localhost".into()),
            ..ServeArgs::default()
        });
        assert!(msg.starts_with("listen: "), "{msg}");
        let msg = err(ServeArgs {
            tree_hash: Some("md5".into()),
            ..ServeArgs::default()
        });
        assert!(msg.starts_with("tree_hash: "), "{msg}");
        let msg = err(ServeArgs {
            max_batch_events: Some(0),
            ..ServeArgs::default()
        });
        assert_eq!(msg, "max_batch_events: must be greater than 0");
        let dir = tempfile::tempdir().expect("tempdir");
        let msg = err(ServeArgs {
            config: Some(write(&dir, "max_batch_event = 3\n")),
            ..ServeArgs::default()
        });
        assert!(msg.contains("unknown field `max_batch_event`"), "{msg}");
    }

    #[test]
    fn principal_limits_layer_and_bad_ones_are_named() {
        let err = |args: ServeArgs| args.resolve().err().map(|e| e.to_string()).unwrap_or_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ServeArgs::default().resolve().expect("defaults");
        assert_eq!(config.principal_limits, Limits::default());
        let path = write(
            &dir,
            "principal_events_per_sec = 5000\nprincipal_bytes_per_sec = 1048576\nprincipal_max_streams = 8\n",
        );
        let config = ServeArgs {
            config: Some(path),
            principal_max_streams: Some(3),
            ..ServeArgs::default()
        }
        .resolve()
        .expect("valid");
        assert_eq!(
            config.principal_limits,
            Limits {
                events_per_sec: 5000,
                bytes_per_sec: 1_048_576,
                max_streams: 3
            }
        );
        let msg = err(ServeArgs {
            principal_max_streams: Some(0),
            ..ServeArgs::default()
        });
        assert_eq!(msg, "principal_max_streams: must be greater than 0");
        let msg = err(ServeArgs {
            config: Some(write(&dir, "principal_events_per_sec = -1\n")),
            ..ServeArgs::default()
        });
        assert!(msg.contains("principal_events_per_sec"), "{msg}");
        let msg = err(ServeArgs {
            config: Some(write(&dir, "principal_event_per_sec = 1\n")),
            ..ServeArgs::default()
        });
        assert!(msg.contains("unknown field `principal_event_per_sec`"), "{msg}");
    }

    #[test]
    fn projection_resident_bytes_layers_into_the_engine_config() {
        use ledger_core::projection::DEFAULT_RESIDENT_BYTES;
        let dir = tempfile::tempdir().expect("tempdir");
        let defaults = ServeArgs::default().resolve().expect("defaults");
        assert_eq!(defaults.projections.resident_bytes, DEFAULT_RESIDENT_BYTES);
        let path = write(&dir, "projection_resident_bytes = 67108864\n");
        let from_file = ServeArgs {
            config: Some(path.clone()),
            ..ServeArgs::default()
        }
        .resolve()
        .expect("valid");
        assert_eq!(from_file.projections.resident_bytes, 64 << 20);
        let flag_wins = ServeArgs {
            config: Some(path),
            projection_resident_bytes: Some(MIN_PROJECTION_RESIDENT_BYTES),
            ..ServeArgs::default()
        }
        .resolve()
        .expect("the minimum itself is accepted");
        assert_eq!(flag_wins.projections.resident_bytes, MIN_PROJECTION_RESIDENT_BYTES);
    }

    #[test]
    fn bad_projection_resident_bytes_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = |flag: Option<usize>, file: &str| {
            ServeArgs {
                config: Some(write(&dir, file)),
                projection_resident_bytes: flag,
                ..ServeArgs::default()
            }
            .resolve()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
        };
        for (flag, file) in [(Some(0), ""), (None, "projection_resident_bytes = 0\n")] {
            assert_eq!(
                err(flag, file),
                "projection_resident_bytes: 0 is below the minimum of 1048576 (1 MiB); the value is in bytes, e.g. 67108864 for 64 MiB"
            );
        }
        // 64 where 64 MiB was meant.
        let msg = err(Some(64), "");
        assert!(
            msg.starts_with("projection_resident_bytes: 64 is below the minimum"),
            "{msg}"
        );
        let msg = err(Some(MIN_PROJECTION_RESIDENT_BYTES - 1), "");
        assert!(msg.starts_with("projection_resident_bytes: 1048575 is below"), "{msg}");
        // Negative numbers and strings stop at the file's parser, which
        // names the key.
        let msg = err(None, "projection_resident_bytes = -1\n");
        assert!(msg.contains("projection_resident_bytes"), "{msg}");
        let msg = err(None, "projection_resident_bytes = \"64 MiB\"\n");
        assert!(
            msg.contains("projection_resident_bytes") && msg.contains("invalid type"),
            "{msg}"
        );
        let msg = err(None, "[projections]\nresident_bytes = 1\n");
        assert!(msg.contains("unknown field `projections`"), "{msg}");
    }

    const SECRET_SCAN: &str = r#"
[secret_scan]
disable_rules = ["jwt"]
entropy_threshold = 3.5

[secret_scan.allow]
paths = ["payload.example_key"]
values = ["AKIAIOSFODNN7EXAMPLE"]

[secret_scan.namespaces.sandbox]
enabled = false

[secret_scan.namespaces."ops-hub"]
rules = ["private-key-block", "aws-access-key-id"]
"#;

    #[test]
    fn secret_scan_comes_from_the_file_and_the_switch() {
        use ledger_core::scan::Rule;
        let dir = tempfile::tempdir().expect("tempdir");
        let defaults = ServeArgs::default().resolve().expect("valid");
        assert!(defaults.ledger.secret_scan.enabled, "on by default");
        assert_eq!(defaults.ledger.secret_scan, ScanConfig::default());

        let path = write(&dir, SECRET_SCAN);
        let args = ServeArgs {
            config: Some(path.clone()),
            ..ServeArgs::default()
        };
        let scan = args.resolve().expect("valid").ledger.secret_scan;
        assert!(scan.enabled);
        assert_eq!(scan.disable_rules, vec![Rule::Jwt]);
        assert_eq!(scan.entropy_threshold, 3.5);
        assert_eq!(scan.allow.paths, vec!["payload.example_key".to_string()]);
        assert_eq!(scan.namespaces["sandbox"].enabled, Some(false));
        assert_eq!(
            scan.namespaces["ops-hub"].rules,
            Some(vec![Rule::PrivateKeyBlock, Rule::AwsAccessKeyId])
        );

        let off = ServeArgs {
            config: Some(path),
            secret_scan: Some(Switch::Off),
            ..ServeArgs::default()
        };
        let scan = off.resolve().expect("valid").ledger.secret_scan;
        assert!(!SecretScanner::new(&scan).expect("valid").scans("ops-hub/x"));
        assert!(!SecretScanner::new(&scan).expect("valid").scans("other"));
    }

    #[test]
    fn bad_secret_scan_settings_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = |text: &str| {
            ServeArgs {
                config: Some(write(&dir, text)),
                ..ServeArgs::default()
            }
            .resolve()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
        };
        let msg = err("[secret_scan]\nrules = [\"no-such-rule\"]\n");
        assert!(
            msg.contains("no-such-rule") && msg.contains("private-key-block"),
            "{msg}"
        );
        let msg = err("[secret_scan]\nentropy_threshold = 12.0\n");
        assert!(msg.starts_with("secret_scan: entropy_threshold"), "{msg}");
        let msg = err("[secret_scan.allow]\nvalue_hashes = [\"xyz\"]\n");
        assert_eq!(
            msg,
            "secret_scan: allow.value_hashes[0]: not a BLAKE3 hash (64 hex digits)"
        );
        let msg = err("[secret_scan]\nenable = true\n");
        assert!(msg.contains("unknown field `enable`"), "{msg}");
    }

    #[test]
    fn a_client_ca_needs_tls_and_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pem = dir.path().join("x.pem");
        std::fs::write(&pem, "").expect("write");
        let resolve = |text: &str, client_ca: Option<PathBuf>| {
            ServeArgs {
                config: Some(write(&dir, text)),
                tls_client_ca: client_ca,
                ..ServeArgs::default()
            }
            .resolve()
        };
        let err = |text: &str, client_ca: Option<PathBuf>| {
            resolve(text, client_ca)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let msg = err("", Some(pem.clone()));
        assert!(msg.starts_with("tls_client_ca: needs tls_cert and tls_key"), "{msg}");
        let msg = err(&format!("tls_client_ca = {:?}\n", pem.display().to_string()), None);
        assert!(msg.starts_with("tls_client_ca: needs tls_cert and tls_key"), "{msg}");
        let tls = format!("tls_cert = {0:?}\ntls_key = {0:?}\n", pem.display().to_string());
        let msg = err(&tls, Some(dir.path().join("missing.pem")));
        assert!(
            msg.starts_with("tls_client_ca: ") && msg.contains("missing.pem is not a file"),
            "{msg}"
        );
        let files = resolve(&format!("{tls}tls_client_ca = {:?}\n", pem.display().to_string()), None)
            .expect("valid")
            .tls
            .expect("tls");
        assert_eq!(files.client_ca, Some(pem.clone()));
        let files = resolve(&tls, None).expect("valid").tls.expect("tls");
        assert_eq!(files.client_ca, None);
    }

    #[test]
    fn principals_come_from_the_data_directory_or_a_named_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let resolve = |principals: Option<PathBuf>| {
            ServeArgs {
                data: Some(dir.path().to_path_buf()),
                principals,
                ..ServeArgs::default()
            }
            .resolve()
        };
        assert_eq!(resolve(None).expect("valid").principals_file, None);
        let msg = resolve(Some(dir.path().join("missing.toml")))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.starts_with("principals: ") && msg.contains("missing.toml is not a file"),
            "{msg}"
        );
        let default = dir.path().join(PRINCIPALS_FILE);
        std::fs::write(&default, "").expect("write");
        assert_eq!(resolve(None).expect("valid").principals_file, Some(default));
        let named = write(&dir, "");
        assert_eq!(
            resolve(Some(named.clone())).expect("valid").principals_file,
            Some(named)
        );
    }

    const RULE: &str = r#"
[metrics]
minute_retention_ns = 3600000000000

[[metrics.rules]]
name = "artifact-store-slow"
metric = "http.latency_ms"
matchers = ["service=artifact-store", "region!=eu"]
granularity = "minute"
statistic = "p99"
comparison = ">"
threshold = 500.0
cooldown_ns = 300000000000
"#;

    #[test]
    fn metrics_rules_come_from_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = ServeArgs {
            config: Some(write(&dir, RULE)),
            ..ServeArgs::default()
        };
        let config = args.resolve().expect("valid");
        assert_eq!(config.metrics.minute_retention_ns, 3_600_000_000_000);
        let rule = &config.metrics.rules[0];
        assert_eq!(rule.name, "artifact-store-slow");
        assert_eq!(rule.matchers.len(), 2);
        assert_eq!(rule.threshold, 500.0);
    }

    #[test]
    fn bad_metrics_rules_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = |text: String| {
            ServeArgs {
                config: Some(write(&dir, &text)),
                ..ServeArgs::default()
            }
            .resolve()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
        };
        let msg = err(RULE.replace("threshold = 500.0", "threshold = nan"));
        assert!(
            msg.starts_with("metrics: rule \"artifact-store-slow\": threshold"),
            "{msg}"
        );
        let msg = err(format!("{RULE}\n{}", &RULE[RULE.find("[[").unwrap_or(0)..]));
        assert!(msg.contains("defined twice"), "{msg}");
        let msg = err(RULE.replace("\"p99\"", "\"p42\""));
        assert!(msg.contains("p42"), "{msg}");
        let msg = err(RULE.replace("minute_retention_ns = 3600000000000", "minute_retention_ns = 0"));
        assert!(msg.starts_with("metrics: minute_retention_ns"), "{msg}");
    }
}
