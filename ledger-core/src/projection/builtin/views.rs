//! Named views over the built-in projections: what the gRPC `Query` call
//! and the `ledger` CLI ask for, answered as JSON rows (the rows' schemas
//! are in `docs/projections/`). A view is answered from the live state or
//! from a scratch state folded up to a seq or time (time travel).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Builtins;
use super::incidents::{IncidentFilter, Incidents};
use super::metrics::{Granularity, Matcher, Metrics};
use super::subjects::{Selector, Subject};
use super::tasks::{AnomalyFilter, TaskFilter, Tasks};
use crate::projection::{Projection, ProjectionError, ProjectionHandle};

/// Which state answers a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// The live state.
    Live,
    /// The state after folding records `0..=seq`.
    Seq(u64),
    /// The state after folding every record recorded at or before the time.
    Time(DateTime<Utc>),
}

/// A query's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Records folded into the state that answered.
    pub applied: u64,
    /// One JSON object per row.
    pub rows: Vec<String>,
}

/// Filter keys as given, checked against what a view accepts.
#[derive(Debug)]
pub struct Filter<'a> {
    view: &'a str,
    values: &'a HashMap<String, String>,
}

impl<'a> Filter<'a> {
    fn new(
        view: &'a str,
        values: &'a HashMap<String, String>,
        allowed: &[&str],
    ) -> Result<Filter<'a>, ProjectionError> {
        if let Some(key) = values.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(invalid(
                format!("filter.{key}"),
                format!(
                    "view {view:?} filters on {}",
                    if allowed.is_empty() {
                        "nothing".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ),
            ));
        }
        Ok(Filter { view, values })
    }

    /// The value of `key`, if given.
    pub fn text(&self, key: &str) -> Option<String> {
        self.values.get(key).cloned()
    }

    /// The value of `key`, required.
    pub fn required(&self, key: &str) -> Result<String, ProjectionError> {
        self.text(key)
            .ok_or_else(|| invalid(format!("filter.{key}"), format!("view {:?} needs it", self.view)))
    }

    /// The value of `key` parsed as the serde form of `T` (enum names).
    pub fn parsed<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ProjectionError> {
        self.values
            .get(key)
            .map(|text| {
                serde_json::from_value(serde_json::Value::String(text.clone()))
                    .map_err(|e| invalid(format!("filter.{key}"), e.to_string()))
            })
            .transpose()
    }

    /// The value of `key` as a boolean.
    pub fn flag(&self, key: &str) -> Result<Option<bool>, ProjectionError> {
        self.values
            .get(key)
            .map(|text| match text.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(invalid(
                    format!("filter.{key}"),
                    format!("{other:?} is not true or false"),
                )),
            })
            .transpose()
    }
}

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ProjectionError {
    ProjectionError::InvalidQuery {
        field: field.into(),
        reason: reason.into(),
    }
}

pub(crate) fn rows<T: Serialize>(items: impl IntoIterator<Item = T>) -> Result<Vec<String>, ProjectionError> {
    items
        .into_iter()
        .map(|item| {
            serde_json::to_string(&item).map_err(|e| ProjectionError::Store(format!("row does not serialise: {e}")))
        })
        .collect()
}

/// Answers `view` of the projection behind `handle` with `answer`, from the
/// state `as_of` asks for.
pub(crate) fn answer_with<P: Projection>(
    handle: &ProjectionHandle<P>,
    as_of: AsOf,
    answer: impl FnOnce(&P) -> Result<Vec<String>, ProjectionError>,
) -> Result<Answer, ProjectionError> {
    match as_of {
        AsOf::Live => {
            let state = handle.read();
            // Read the position after taking the state: the engine folds
            // under the same lock, so this is at least what `state` holds.
            let applied = handle.status()?.applied;
            Ok(Answer {
                applied,
                rows: answer(&state)?,
            })
        }
        AsOf::Seq(seq) => {
            let state = handle.at_seq(seq)?;
            Ok(Answer {
                applied: seq + 1,
                rows: answer(&state)?,
            })
        }
        AsOf::Time(time) => match handle.at_time_with_len(time)? {
            Some((state, applied)) => Ok(Answer {
                applied,
                rows: answer(&state)?,
            }),
            None => Ok(Answer {
                applied: 0,
                rows: answer(&handle.read().fresh())?,
            }),
        },
    }
}

/// How a view turns a state and its filter into rows.
type ViewFn<P> = dyn Fn(&P, &Filter<'_>) -> Result<Vec<String>, ProjectionError>;

/// The views of the tasks projection.
pub(crate) fn tasks_view(
    builtins: &Builtins,
    view: &str,
    values: &HashMap<String, String>,
    as_of: AsOf,
) -> Option<Result<Answer, ProjectionError>> {
    let run = |allowed: &[&str], f: &ViewFn<Tasks>| {
        let filter = Filter::new(view, values, allowed)?;
        answer_with(&builtins.tasks, as_of, |tasks| f(tasks, &filter))
    };
    Some(match view {
        "tasks" => run(&["workstream", "status", "owner", "needs_human"], &|tasks, filter| {
            let wanted = TaskFilter {
                workstream: filter.text("workstream"),
                status: filter.parsed("status")?,
                owner: filter.text("owner"),
                needs_human: filter.flag("needs_human")?,
            };
            rows(tasks.tasks(&wanted))
        }),
        "task" => run(&["id"], &|tasks, filter| {
            let id = filter.required("id")?;
            let task = tasks
                .task(&id)
                .ok_or_else(|| ProjectionError::NotFound(format!("task {id:?}")))?;
            rows([task])
        }),
        "notes" => run(&["id"], &|tasks, filter| rows(tasks.notes(&filter.required("id")?))),
        "workstreams" => run(&[], &|tasks, _| rows(tasks.workstreams())),
        "workstream" => run(&["id"], &|tasks, filter| {
            let id = filter.required("id")?;
            let found = tasks.workstreams().into_iter().find(|w| w.workstream.id == id);
            let summary = found.ok_or_else(|| ProjectionError::NotFound(format!("workstream {id:?}")))?;
            rows([summary])
        }),
        "anomalies" => run(&["workstream", "subject", "kind"], &|tasks, filter| {
            let wanted = AnomalyFilter {
                workstream: filter.text("workstream"),
                subject: filter.text("subject"),
                kind: filter.parsed("kind")?,
            };
            rows(tasks.anomalies(&wanted))
        }),
        _ => return None,
    })
}

/// The views of the incidents projection.
pub(crate) fn incidents_view(
    builtins: &Builtins,
    view: &str,
    values: &HashMap<String, String>,
    as_of: AsOf,
) -> Option<Result<Answer, ProjectionError>> {
    let run = |allowed: &[&str], f: &ViewFn<Incidents>| {
        let filter = Filter::new(view, values, allowed)?;
        answer_with(&builtins.incidents, as_of, |incidents| f(incidents, &filter))
    };
    Some(match view {
        "incidents" => run(&["state", "severity", "service", "open_only"], &|incidents, filter| {
            let wanted = IncidentFilter {
                state: filter.parsed("state")?,
                severity: filter.parsed("severity")?,
                service: filter.text("service"),
                open_only: filter.flag("open_only")?.unwrap_or(false),
            };
            rows(incidents.incidents(&wanted))
        }),
        "incident" => run(&["id"], &|incidents, filter| {
            let id = filter.required("id")?;
            let found = incidents
                .incident(&id)
                .ok_or_else(|| ProjectionError::NotFound(format!("incident {id:?}")))?;
            rows([found])
        }),
        "incident_flags" => run(&[], &|incidents, _| rows(incidents.flags())),
        _ => return None,
    })
}

/// The views of the metrics rollups projection.
pub(crate) fn metrics_view(
    builtins: &Builtins,
    view: &str,
    values: &HashMap<String, String>,
    as_of: AsOf,
) -> Option<Result<Answer, ProjectionError>> {
    const WINDOWED: &[&str] = &["name", "match", "granularity", "from", "to"];
    let run = |allowed: &[&str], f: &ViewFn<Metrics>| {
        let filter = Filter::new(view, values, allowed)?;
        answer_with(&builtins.metrics, as_of, |metrics| f(metrics, &filter))
    };
    Some(match view {
        "metrics" => run(WINDOWED, &|metrics, filter| {
            let w = Window::from_filter(filter)?;
            rows(metrics.query(&w.name, &w.matchers, w.granularity, w.from_ns, w.to_ns))
        }),
        "metric_summary" => run(WINDOWED, &|metrics, filter| {
            let w = Window::from_filter(filter)?;
            rows(metrics.summary(&w.name, &w.matchers, w.granularity, w.from_ns, w.to_ns))
        }),
        "series" => run(&["name", "conflicts"], &|metrics, filter| {
            if filter.flag("conflicts")?.unwrap_or(false) {
                let name = filter.text("name");
                let conflicts = metrics.kind_conflicts().into_iter();
                rows(conflicts.filter(|s| name.as_ref().is_none_or(|n| &s.name == n)))
            } else {
                rows(metrics.series(filter.text("name").as_deref()))
            }
        }),
        "alerts" => run(&["rule", "firing"], &|metrics, filter| {
            let firing = filter.flag("firing")?;
            let states = metrics.alerts(filter.text("rule").as_deref()).into_iter();
            rows(states.filter(|s| firing.is_none_or(|f| s.firing == f)))
        }),
        _ => return None,
    })
}

/// What the windowed metrics views select: a metric, label matchers, a
/// granularity and a time range.
struct Window {
    name: String,
    matchers: Vec<Matcher>,
    granularity: Granularity,
    from_ns: i64,
    to_ns: i64,
}

impl Window {
    fn from_filter(filter: &Filter<'_>) -> Result<Window, ProjectionError> {
        let name = filter.required("name")?;
        let matchers = match filter.text("match") {
            None => Vec::new(),
            Some(text) => text
                .split(',')
                .map(|part| {
                    part.trim()
                        .parse::<Matcher>()
                        .map_err(|e| invalid("filter.match", e.to_string()))
                })
                .collect::<Result<_, _>>()?,
        };
        let granularity = filter.parsed("granularity")?.unwrap_or(Granularity::Minute);
        let from_ns = time_filter(filter, "from")?.unwrap_or(i64::MIN);
        let to_ns = time_filter(filter, "to")?.unwrap_or(i64::MAX);
        if from_ns >= to_ns {
            return Err(invalid("filter.to", "must be after filter.from"));
        }
        Ok(Window {
            name,
            matchers,
            granularity,
            from_ns,
            to_ns,
        })
    }
}

/// A time given as RFC 3339 or as Unix nanoseconds.
fn time_filter(filter: &Filter<'_>, key: &str) -> Result<Option<i64>, ProjectionError> {
    filter
        .text(key)
        .map(|text| {
            if let Ok(ns) = text.parse::<i64>() {
                return Ok(ns);
            }
            DateTime::parse_from_rfc3339(&text)
                .map_err(|e| {
                    invalid(
                        format!("filter.{key}"),
                        format!("{text:?} is neither Unix nanoseconds nor an RFC 3339 time: {e}"),
                    )
                })
                .map(|t| crate::event::timestamp_ns(t.with_timezone(&Utc)))
        })
        .transpose()
}

/// The filters that select records from the bundle index.
pub const SELECTOR_KEYS: &[&str] = &[
    "stream",
    "correlation",
    "incident",
    "workstream",
    "from_seq",
    "to_seq",
    "from_time",
    "to_time",
];

/// Builds a bundle-index [`Selector`] from `name → value` filters (the
/// `subjects` view's and a bundle request's), naming a bad one as
/// `<field_prefix>.<key>`.
pub fn selector_from_filter(values: &HashMap<String, String>, field_prefix: &str) -> Result<Selector, ProjectionError> {
    let rename = |e: ProjectionError| match e {
        ProjectionError::InvalidQuery { field, reason } => ProjectionError::InvalidQuery {
            field: field.replacen("filter", field_prefix, 1),
            reason,
        },
        other => other,
    };
    let filter = Filter::new("subjects", values, SELECTOR_KEYS).map_err(rename)?;
    let mut selector = Selector::default();
    for (key, make) in [
        ("stream", Subject::Stream as fn(String) -> Subject),
        ("correlation", Subject::Correlation),
        ("incident", Subject::Incident),
        ("workstream", Subject::Workstream),
    ] {
        if let Some(value) = filter.text(key) {
            selector = selector.with(make(value));
        }
    }
    let seq = |key: &str| -> Result<Option<u64>, ProjectionError> {
        filter
            .text(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|e| invalid(format!("filter.{key}"), e.to_string()))
            })
            .transpose()
    };
    let (from_seq, to_seq) = (seq("from_seq").map_err(rename)?, seq("to_seq").map_err(rename)?);
    if from_seq.is_some() || to_seq.is_some() {
        selector = selector.seqs_in(from_seq.unwrap_or(0)..to_seq.unwrap_or(u64::MAX));
    }
    let time = |key: &str| time_filter(&filter, key).map_err(rename);
    let (from_time, to_time) = (time("from_time")?, time("to_time")?);
    if from_time.is_some() || to_time.is_some() {
        selector = selector.recorded_in(from_time.unwrap_or(i64::MIN)..to_time.unwrap_or(i64::MAX));
    }
    Ok(selector)
}

/// The view of the bundle index: the seqs a selector picks, as one row
/// `{"seqs": [...]}`.
pub(crate) fn subjects_view(
    builtins: &Builtins,
    view: &str,
    values: &HashMap<String, String>,
    as_of: AsOf,
) -> Option<Result<Answer, ProjectionError>> {
    if view != "subjects" {
        return None;
    }
    let run = || {
        let selector = selector_from_filter(values, "filter")?;
        answer_with(&builtins.subjects, as_of, |subjects| {
            rows([serde_json::json!({ "seqs": subjects.select(&selector) })])
        })
    };
    Some(run())
}
