//! Projection commands: `ledger tasks`, `workstreams`, `anomalies`,
//! `incidents`, `metrics`, `query` and `projections status|faults|replay`.
//! Views print as tables for people and as the server's JSON rows with
//! `--json`.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::Value;
use tokio_stream::StreamExt as _;

use crate::{Client, proto};

/// `--at SEQ|TIME`: answer from the state as of a seq or an RFC 3339 time.
#[derive(Debug, Args, Default)]
pub struct AtArg {
    /// Answer from the state as of this seq (records 0..=SEQ) or RFC 3339
    /// time (everything recorded by then) instead of the live state.
    #[arg(long, value_name = "SEQ|TIME")]
    at: Option<String>,
}

impl AtArg {
    fn as_of(&self) -> anyhow::Result<Option<proto::AsOf>> {
        self.at.as_deref().map(parse_at).transpose()
    }
}

/// Parses `--at`: all digits (a leading `-` included, so that `-1` is
/// refused as a seq rather than as a malformed time) is a seq, anything
/// else an RFC 3339 time. Whether the seq is in the log is the server's
/// to say (`as_of.seq`).
fn parse_at(at: &str) -> anyhow::Result<proto::AsOf> {
    let digits = at.strip_prefix('-').unwrap_or(at);
    let point = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if at.starts_with('-') {
            bail!("--at: {at} is not a seq: seqs start at 0");
        }
        let seq = at
            .parse::<u64>()
            .with_context(|| format!("--at: {at} is not a seq (at most {})", u64::MAX))?;
        proto::as_of::Point::Seq(seq)
    } else {
        let time = chrono::DateTime::parse_from_rfc3339(at).with_context(|| {
            format!("--at: {at:?} is neither a seq nor an RFC 3339 time (like 2026-12-05T14:02:00Z)")
        })?;
        proto::as_of::Point::Time(crate::timestamp(time.with_timezone(&chrono::Utc)))
    };
    Ok(proto::AsOf { point: Some(point) })
}

/// `ledger tasks`.
#[derive(Debug, Args)]
pub struct TasksArgs {
    /// Only this task (prints its full row).
    id: Option<String>,
    /// Only tasks of this workstream.
    #[arg(long)]
    workstream: Option<String>,
    /// Only tasks in this status (backlog, todo, progress, wait, done, cancel).
    #[arg(long)]
    status: Option<String>,
    /// Only tasks of this owner.
    #[arg(long)]
    owner: Option<String>,
    /// Only tasks that need a human.
    #[arg(long)]
    needs_human: bool,
    #[command(flatten)]
    at: AtArg,
}

/// `ledger workstreams`.
#[derive(Debug, Args)]
pub struct WorkstreamsArgs {
    /// Only this workstream.
    id: Option<String>,
    #[command(flatten)]
    at: AtArg,
}

/// `ledger anomalies`.
#[derive(Debug, Args)]
pub struct AnomaliesArgs {
    /// Only anomalies of this workstream.
    #[arg(long)]
    workstream: Option<String>,
    /// Only this kind (workstream_done_with_open_tasks,
    /// needs_human_on_closed_task, illegal_transition, done_without_evidence).
    #[arg(long)]
    kind: Option<String>,
    #[command(flatten)]
    at: AtArg,
}

/// `ledger incidents`.
#[derive(Debug, Args)]
pub struct IncidentsArgs {
    /// Only this incident (prints its full record with the timeline).
    id: Option<String>,
    /// Only incidents in this state (open, acknowledged, mitigated, resolved, closed).
    #[arg(long)]
    state: Option<String>,
    /// Only this severity (SEV1..SEV4).
    #[arg(long)]
    severity: Option<String>,
    /// Only this service.
    #[arg(long)]
    service: Option<String>,
    /// Only incidents not yet resolved.
    #[arg(long)]
    open: bool,
    /// List the flagged (out-of-order or impossible) transitions instead.
    #[arg(long, conflicts_with = "id")]
    flags: bool,
    #[command(flatten)]
    at: AtArg,
}

/// `ledger metrics ...`.
#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// Rollups of one metric per series and window (count, sum, min, max,
    /// last, p50/p95/p99), or merged into one summary.
    Query {
        /// The metric name.
        name: String,
        /// Label matcher, `label=value` or `label!=value` (repeatable; all
        /// must hold).
        #[arg(short = 'm', long = "match", value_name = "MATCHER")]
        matchers: Vec<String>,
        /// Window size: minute, hour or day.
        #[arg(short, long, default_value = "minute")]
        granularity: String,
        /// Windows ending after this time (RFC 3339 or Unix ns).
        #[arg(long)]
        from: Option<String>,
        /// Windows starting before this time (RFC 3339 or Unix ns).
        #[arg(long)]
        to: Option<String>,
        /// Merge every selected window into one row (sketches merged, never
        /// percentiles averaged).
        #[arg(long)]
        summary: bool,
        #[command(flatten)]
        at: AtArg,
    },
    /// The series seen, or those of one metric.
    Series {
        /// Only series of this metric.
        name: Option<String>,
        /// Only series that refused observations of another kind.
        #[arg(long)]
        conflicts: bool,
        #[command(flatten)]
        at: AtArg,
    },
    /// Where each alert rule stands per series.
    Alerts {
        /// Only this rule.
        #[arg(long)]
        rule: Option<String>,
        /// Only firing alerts.
        #[arg(long)]
        firing: bool,
        #[command(flatten)]
        at: AtArg,
    },
}

/// `ledger query VIEW [KEY=VALUE...]`: any view, raw.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The view (see docs/projections/README.md).
    view: String,
    /// Filters as KEY=VALUE.
    filters: Vec<String>,
    #[command(flatten)]
    at: AtArg,
}

/// `ledger projections ...`.
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Where each projection stands: applied, lag, faults (and digest).
    Status {
        /// Only this projection.
        name: Option<String>,
        /// Also compute each state's digest.
        #[arg(long)]
        digest: bool,
    },
    /// Records a projection could not fold, with the reason.
    Faults {
        /// The projection.
        name: String,
        /// From this seq.
        #[arg(long, default_value_t = 0)]
        from_seq: u64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Rebuild a projection from the log (swapped in when complete).
    Replay {
        /// The projection.
        name: String,
        /// Fold from this seq (default: the whole log).
        #[arg(long, default_value_t = 0)]
        from_seq: u64,
    },
}

fn filter(pairs: &[(&str, Option<&str>)]) -> HashMap<String, String> {
    pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.to_string())))
        .collect()
}

async fn query(client: &Client, view: &str, filter: HashMap<String, String>, at: &AtArg) -> anyhow::Result<Vec<Value>> {
    let response = client
        .query(proto::QueryRequest {
            view: view.to_string(),
            filter,
            as_of: at.as_of()?,
        })
        .await?;
    response
        .rows_json
        .iter()
        .map(|row| serde_json::from_str(row).context("the server sent a row that is not JSON"))
        .collect()
}

/// The live rows of `view` with `filter`.
pub(super) async fn query_rows(
    client: &Client,
    view: &str,
    filter: HashMap<String, String>,
) -> anyhow::Result<Vec<Value>> {
    query(client, view, filter, &AtArg::default()).await
}

/// One column of a table: header and where in the row its value is.
pub(super) type Column = (&'static str, &'static str);

fn cell(row: &Value, pointer: &str) -> String {
    match row.pointer(pointer) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items.len().to_string(),
        Some(other) => other.to_string(),
    }
}

pub(super) fn print_rows(rows: &[Value], columns: &[Column], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for row in rows {
            writeln!(out, "{row}")?;
        }
        return Ok(());
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|(_, p)| cell(row, p)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<&str>| {
        let mut text = String::new();
        for (i, value) in values.iter().enumerate() {
            if i + 1 == values.len() {
                text.push_str(value);
            } else {
                text.push_str(&format!("{value:<width$}  ", width = widths[i]));
            }
        }
        text
    };
    writeln!(out, "{}", line(columns.iter().map(|(h, _)| *h).collect()))?;
    for row in &cells {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    if rows.is_empty() && std::io::stdout().is_terminal() {
        writeln!(out, "(none)")?;
    }
    Ok(())
}

pub(super) const TASK_COLUMNS: &[Column] = &[
    ("TASK", "/id"),
    ("STATUS", "/status"),
    ("PRIO", "/priority"),
    ("OWNER", "/owner"),
    ("HUMAN", "/needs_human"),
    ("EVIDENCE", "/evidence"),
    ("TITLE", "/title"),
];
pub(super) const WORKSTREAM_COLUMNS: &[Column] = &[
    ("WORKSTREAM", "/workstream/id"),
    ("STATUS", "/workstream/status"),
    ("ANOMALIES", "/n_anomalies"),
    ("TASKS", "/rollup/summary"),
];
const ANOMALY_COLUMNS: &[Column] = &[
    ("SEQ", "/revealed_by/seq"),
    ("KIND", "/kind"),
    ("SUBJECT", "/subject"),
    ("MESSAGE", "/message"),
];

/// `ledger tasks`.
pub async fn tasks(client: &Client, args: TasksArgs, json: bool) -> anyhow::Result<()> {
    if let Some(id) = &args.id {
        let rows = query(client, "task", filter(&[("id", Some(id))]), &args.at).await?;
        return print_full(&rows, json);
    }
    let needs_human = args.needs_human.then_some("true");
    let filter = filter(&[
        ("workstream", args.workstream.as_deref()),
        ("status", args.status.as_deref()),
        ("owner", args.owner.as_deref()),
        ("needs_human", needs_human),
    ]);
    let rows = query(client, "tasks", filter, &args.at).await?;
    print_rows(&rows, TASK_COLUMNS, json)
}

/// `ledger workstreams`.
pub async fn workstreams(client: &Client, args: WorkstreamsArgs, json: bool) -> anyhow::Result<()> {
    let rows = match &args.id {
        Some(id) => query(client, "workstream", filter(&[("id", Some(id))]), &args.at).await?,
        None => query(client, "workstreams", HashMap::new(), &args.at).await?,
    };
    print_rows(&rows, WORKSTREAM_COLUMNS, json)
}

/// `ledger anomalies`.
pub async fn anomalies(client: &Client, args: AnomaliesArgs, json: bool) -> anyhow::Result<()> {
    let filter = filter(&[
        ("workstream", args.workstream.as_deref()),
        ("kind", args.kind.as_deref()),
    ]);
    let rows = query(client, "anomalies", filter, &args.at).await?;
    print_rows(&rows, ANOMALY_COLUMNS, json)
}

const INCIDENT_COLUMNS: &[Column] = &[
    ("INCIDENT", "/id"),
    ("SEV", "/severity"),
    ("STATE", "/state"),
    ("SERVICE", "/service"),
    ("TTA_NS", "/time_to_acknowledge_ns"),
    ("TTR_NS", "/time_to_resolve_ns"),
    ("FLAGS", "/flags"),
    ("TITLE", "/title"),
];

/// `ledger incidents`.
pub async fn incidents(client: &Client, args: IncidentsArgs, json: bool) -> anyhow::Result<()> {
    if let Some(id) = &args.id {
        let rows = query(client, "incident", filter(&[("id", Some(id))]), &args.at).await?;
        return print_full(&rows, json);
    }
    if args.flags {
        let rows = query(client, "incident_flags", HashMap::new(), &args.at).await?;
        return print_full(&rows, true);
    }
    let filter = filter(&[
        ("state", args.state.as_deref()),
        ("severity", args.severity.as_deref()),
        ("service", args.service.as_deref()),
        ("open_only", args.open.then_some("true")),
    ]);
    let rows = query(client, "incidents", filter, &args.at).await?;
    print_rows(&rows, INCIDENT_COLUMNS, json)
}

const ROLLUP_COLUMNS: &[Column] = &[
    ("SERIES", "/series"),
    ("WINDOW", "/window"),
    ("COUNT", "/count"),
    ("MIN", "/min"),
    ("P50", "/p50"),
    ("P95", "/p95"),
    ("P99", "/p99"),
    ("MAX", "/max"),
    ("LAST", "/last"),
];
const SUMMARY_COLUMNS: &[Column] = &[
    ("SERIES", "/series"),
    ("WINDOWS", "/windows"),
    ("COUNT", "/count"),
    ("MIN", "/min"),
    ("P50", "/p50"),
    ("P95", "/p95"),
    ("P99", "/p99"),
    ("MAX", "/max"),
    ("SUM", "/sum"),
];
const SERIES_COLUMNS: &[Column] = &[
    ("SERIES", "/series"),
    ("KIND", "/kind"),
    ("OBSERVATIONS", "/observations"),
    ("FIRST", "/first"),
    ("LAST", "/last"),
    ("CONFLICTS", "/kind_conflicts"),
];
const ALERT_COLUMNS: &[Column] = &[
    ("RULE", "/rule"),
    ("SERIES", "/series"),
    ("FIRING", "/firing"),
    ("VALUE", "/value"),
    ("WINDOW", "/window"),
    ("FIRED", "/fired"),
    ("RESOLVED", "/resolved"),
];

/// `name{k=v,...}`, the way people write a series.
fn series_label(row: &Value) -> String {
    let name = row.get("name").and_then(Value::as_str).unwrap_or("?");
    let labels = row
        .get("labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    format!("{name}{{{labels}}}")
}

/// A Unix-ns field as an RFC 3339 time (seconds), for tables.
fn time_cell(row: &Value, field: &str) -> Value {
    let text = row
        .get(field)
        .and_then(Value::as_i64)
        .map(|ns| chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    text.map_or(Value::Null, Value::String)
}

/// Adds the table-only columns (`series`, times as text) to each row.
fn with_display_columns(mut rows: Vec<Value>, times: &[(&str, &str)]) -> Vec<Value> {
    for row in &mut rows {
        let series = series_label(row);
        let times: Vec<(String, Value)> = times
            .iter()
            .map(|(to, from)| (to.to_string(), time_cell(row, from)))
            .collect();
        if let Some(object) = row.as_object_mut() {
            object.insert("series".to_string(), Value::String(series));
            object.extend(times);
        }
    }
    rows
}

/// `ledger metrics ...`.
pub async fn metrics(client: &Client, command: MetricsCommand, json: bool) -> anyhow::Result<()> {
    match command {
        MetricsCommand::Query {
            name,
            matchers,
            granularity,
            from,
            to,
            summary,
            at,
        } => {
            if let Some(bad) = matchers.iter().find(|m| m.contains(',')) {
                bail!("--match {bad:?}: a matcher cannot contain ',' (give one matcher per --match)");
            }
            let joined = (!matchers.is_empty()).then(|| matchers.join(","));
            let filter = filter(&[
                ("name", Some(&name)),
                ("match", joined.as_deref()),
                ("granularity", Some(&granularity)),
                ("from", from.as_deref()),
                ("to", to.as_deref()),
            ]);
            if summary {
                let rows = query(client, "metric_summary", filter, &at).await?;
                return print_rows(&rows, SUMMARY_COLUMNS, json);
            }
            let rows = query(client, "metrics", filter, &at).await?;
            if json {
                return print_rows(&rows, ROLLUP_COLUMNS, json);
            }
            print_rows(
                &with_display_columns(rows, &[("window", "start_ns")]),
                ROLLUP_COLUMNS,
                json,
            )
        }
        MetricsCommand::Series { name, conflicts, at } => {
            let filter = filter(&[("name", name.as_deref()), ("conflicts", conflicts.then_some("true"))]);
            let rows = query(client, "series", filter, &at).await?;
            if json {
                return print_rows(&rows, SERIES_COLUMNS, json);
            }
            let times = [("first", "first_time_ns"), ("last", "last_time_ns")];
            print_rows(&with_display_columns(rows, &times), SERIES_COLUMNS, json)
        }
        MetricsCommand::Alerts { rule, firing, at } => {
            let filter = filter(&[("rule", rule.as_deref()), ("firing", firing.then_some("true"))]);
            let rows = query(client, "alerts", filter, &at).await?;
            if json {
                return print_rows(&rows, ALERT_COLUMNS, json);
            }
            print_rows(
                &with_display_columns(rows, &[("window", "window_start_ns")]),
                ALERT_COLUMNS,
                json,
            )
        }
    }
}

/// `ledger query`.
pub async fn raw_query(client: &Client, args: QueryArgs) -> anyhow::Result<()> {
    let mut filter = HashMap::new();
    for pair in &args.filters {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("filter {pair:?}: expected KEY=VALUE");
        };
        filter.insert(key.to_string(), value.to_string());
    }
    let rows = query(client, &args.view, filter, &args.at).await?;
    print_full(&rows, true)
}

fn print_full(rows: &[Value], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for row in rows {
        if json {
            writeln!(out, "{row}")?;
        } else {
            writeln!(out, "{}", serde_json::to_string_pretty(row)?)?;
        }
    }
    Ok(())
}

/// `ledger projections ...`.
pub async fn projections(client: &Client, command: ProjectionsCommand, json: bool) -> anyhow::Result<()> {
    match command {
        ProjectionsCommand::Status { name, digest } => {
            let statuses = client.projection_status(name.as_deref().unwrap_or(""), digest).await?;
            let mut out = std::io::stdout().lock();
            if !json {
                writeln!(
                    out,
                    "{:<12} {:>4} {:>12} {:>10} {:>8}  DIGEST",
                    "PROJECTION", "V", "APPLIED", "LAG", "FAULTS"
                )?;
            }
            for s in statuses {
                if json {
                    let value = serde_json::json!({
                        "name": s.name, "version": s.version, "applied": s.applied, "log_len": s.log_len,
                        "lag": s.lag, "faults": s.faults, "generation": s.generation,
                        "digest": (!s.digest.is_empty()).then_some(&s.digest),
                        "digest_applied": (!s.digest.is_empty()).then_some(s.digest_applied),
                        "replaying": s.replay.as_ref().map(|r| serde_json::json!({"done": r.done, "total": r.total})),
                    });
                    writeln!(out, "{value}")?;
                } else {
                    let digest = if s.digest.is_empty() {
                        "-".to_string()
                    } else {
                        format!("{} @ {}", s.digest, s.digest_applied)
                    };
                    writeln!(
                        out,
                        "{:<12} {:>4} {:>12} {:>10} {:>8}  {digest}",
                        s.name, s.version, s.applied, s.lag, s.faults
                    )?;
                }
            }
            Ok(())
        }
        ProjectionsCommand::Faults { name, from_seq, limit } => {
            let faults = client.projection_faults(&name, from_seq, limit).await?;
            let mut out = std::io::stdout().lock();
            for fault in faults {
                if json {
                    writeln!(out, "{}", serde_json::json!({"seq": fault.seq, "reason": fault.reason}))?;
                } else {
                    writeln!(out, "{:>10}  {}", fault.seq, fault.reason)?;
                }
            }
            Ok(())
        }
        ProjectionsCommand::Replay { name, from_seq } => replay(client, &name, from_seq, json).await,
    }
}

async fn replay(client: &Client, name: &str, from_seq: u64, json: bool) -> anyhow::Result<()> {
    let mut progress = client.replay(name, from_seq).await?;
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} replaying {msg} {wide_bar} {pos}/{len} records ({per_sec})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(name.to_string());
        bar
    });
    while let Some(message) = progress.next().await {
        let message = message?;
        if let Some(bar) = &bar {
            bar.set_length(message.total);
            bar.set_position(message.done);
        }
        if message.finished {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            if json {
                println!(
                    "{}",
                    serde_json::json!({"name": name, "records": message.done, "faults": message.faults,
                        "seconds": message.seconds, "rate": message.rate, "digest": message.digest})
                );
            } else {
                println!(
                    "replayed {name}: {} records in {:.2} s ({:.0} records/s), {} faults, digest {}",
                    message.done, message.seconds, message.rate, message.faults, message.digest
                );
            }
            return Ok(());
        }
    }
    bail!("the server ended the replay stream before it finished")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(at: &str) -> String {
        parse_at(at).err().map(|e| format!("{e:#}")).unwrap_or_default()
    }

    #[test]
    fn at_is_a_seq_or_an_rfc3339_time() {
        let point = |at: &str| parse_at(at).expect("valid").point;
        assert_eq!(point("0"), Some(proto::as_of::Point::Seq(0)));
        assert_eq!(point("1200"), Some(proto::as_of::Point::Seq(1200)));
        let max = u64::MAX.to_string();
        assert_eq!(point(&max), Some(proto::as_of::Point::Seq(u64::MAX)));
        assert_eq!(
            point("2026-12-05T14:02:00.5+01:00"),
            Some(proto::as_of::Point::Time(prost_types::Timestamp {
                seconds: 1_796_475_720,
                nanos: 500_000_000
            }))
        );
    }

    #[test]
    fn bad_at_values_are_named_with_the_reason() {
        assert_eq!(err("-1"), "--at: -1 is not a seq: seqs start at 0");
        let msg = err("18446744073709551616");
        assert!(
            msg.starts_with("--at: 18446744073709551616 is not a seq (at most 18446744073709551615): "),
            "{msg}"
        );
        for bad in [
            "",
            "yesterday",
            "2026-12-05",
            "2026-12-05T14:02:00",
            "2026-02-30T00:00:00Z",
            "12a",
        ] {
            let msg = err(bad);
            assert!(
                msg.starts_with(&format!("--at: {bad:?} is neither a seq nor an RFC 3339 time")),
                "{bad:?}: {msg}"
            );
        }
    }
}
