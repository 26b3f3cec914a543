//! The built-in projections (see PRODUCT.md, "Built-in projections").
//! Their payload schemas are documented in `docs/projections/`.

pub mod incidents;
pub mod metrics;
pub mod subjects;
pub mod tasks;
pub mod views;

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;

use serde::Deserialize;

pub use views::{Answer, AsOf};

use super::{ProjectionError, ProjectionHandle, Projections};
use incidents::Incidents;
use metrics::Metrics;
use subjects::Subjects;
use tasks::Tasks;

/// A JSON string of a payload, borrowed from it unless it had escapes
/// (serde borrows a `Cow` field only when asked, and never one nested in a
/// map, hence the newtype). It orders and compares as the text, so maps
/// keyed by it sort like `String`-keyed ones and are looked up by `&str`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub(crate) struct Text<'a>(#[serde(borrow)] pub(crate) Cow<'a, str>);

impl Borrow<str> for Text<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The built-ins, registered with an engine.
#[derive(Debug, Clone)]
pub struct Builtins {
    /// Workstreams, tasks, rollups and hygiene anomalies.
    pub tasks: ProjectionHandle<Tasks>,
    /// Incident records with timelines, TTA/TTR and flags.
    pub incidents: ProjectionHandle<Incidents>,
    /// The bundle index: which records belong to which subject.
    pub subjects: ProjectionHandle<Subjects>,
    /// Metrics rollups and threshold alerts.
    pub metrics: ProjectionHandle<Metrics>,
}

/// Every view [`Builtins::query`] answers.
pub const VIEWS: &[&str] = &[
    "tasks",
    "task",
    "notes",
    "workstreams",
    "workstream",
    "anomalies",
    "incidents",
    "incident",
    "incident_flags",
    "subjects",
    "metrics",
    "metric_summary",
    "series",
    "alerts",
];

impl Builtins {
    /// Registers every built-in with `engine`, metrics without alert rules.
    pub fn register(engine: &Projections) -> Result<Builtins, ProjectionError> {
        Builtins::register_with(engine, Metrics::default())
    }

    /// Registers every built-in with `engine`, metrics as configured (see
    /// [`Metrics::new`] and [`metrics::MetricsConfig`]).
    pub fn register_with(engine: &Projections, metrics: Metrics) -> Result<Builtins, ProjectionError> {
        Ok(Builtins {
            tasks: engine.register(Tasks::default())?,
            incidents: engine.register(Incidents::default())?,
            subjects: engine.register(Subjects::default())?,
            metrics: engine.register(metrics)?,
        })
    }

    /// Answers `view` with `filter` from the state `as_of` asks for.
    pub fn query(&self, view: &str, filter: &HashMap<String, String>, as_of: AsOf) -> Result<Answer, ProjectionError> {
        let answered = views::tasks_view(self, view, filter, as_of)
            .or_else(|| views::incidents_view(self, view, filter, as_of))
            .or_else(|| views::subjects_view(self, view, filter, as_of))
            .or_else(|| views::metrics_view(self, view, filter, as_of));
        if let Some(answer) = answered {
            return answer;
        }
        Err(views::invalid(
            "view",
            format!("unknown view {view:?}; known views: {}", VIEWS.join(", ")),
        ))
    }
}
