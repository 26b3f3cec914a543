//! Log setup: `tracing` to stderr, as text or one JSON object per line,
//! filtered by `LEDGER_LOG` (an `EnvFilter` directive, default `info`).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; a second call is a no-op.
pub fn init(format: LogFormat) {
    init_with_default(format, "info");
}

/// As [`init`], with another level when `LEDGER_LOG` is unset (the demo
/// keeps its output to the tour: `warn`).
pub fn init_with_default(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_env("LEDGER_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
    };
}
