//! The incident row and its lifecycle: states, severities, milestones,
//! flags, and how a state change is applied or flagged. No parsing, no
//! tables: the projection feeds it checked events.

use serde::{Deserialize, Serialize};

use super::Entry;

/// How bad an incident is: SEV1 is the worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// Critical: widespread outage or data loss.
    #[serde(rename = "SEV1")]
    Sev1,
    /// Major: a core function degraded for many users.
    #[serde(rename = "SEV2")]
    Sev2,
    /// Minor: limited impact, a workaround exists.
    #[serde(rename = "SEV3")]
    Sev3,
    /// Low: cosmetic or internal only.
    #[serde(rename = "SEV4")]
    Sev4,
}

impl Severity {
    /// Every severity, worst first.
    pub const ALL: [Severity; 4] = [Severity::Sev1, Severity::Sev2, Severity::Sev3, Severity::Sev4];

    /// The wire name, e.g. `SEV2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Sev1 => "SEV1",
            Severity::Sev2 => "SEV2",
            Severity::Sev3 => "SEV3",
            Severity::Sev4 => "SEV4",
        }
    }

    /// Parses the wire name (exact, upper case).
    pub fn parse(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|severity| severity.as_str() == name)
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an incident is in its lifecycle. The order of the variants is the
/// order of the lifecycle: an incident only moves forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// Reported, nobody on it yet.
    Open,
    /// Someone owns it.
    Acknowledged,
    /// The impact is contained; the cause may remain.
    Mitigated,
    /// Fixed.
    Resolved,
    /// Reviewed and done with.
    Closed,
}

impl IncidentState {
    /// Every state, in lifecycle order.
    pub const ALL: [IncidentState; 5] = [
        IncidentState::Open,
        IncidentState::Acknowledged,
        IncidentState::Mitigated,
        IncidentState::Resolved,
        IncidentState::Closed,
    ];

    /// The wire name, e.g. `acknowledged`.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Acknowledged => "acknowledged",
            IncidentState::Mitigated => "mitigated",
            IncidentState::Resolved => "resolved",
            IncidentState::Closed => "closed",
        }
    }

    /// Parses the wire name.
    pub fn parse(name: &str) -> Option<IncidentState> {
        IncidentState::ALL.into_iter().find(|state| state.as_str() == name)
    }

    /// Whether someone still has to work on it (not resolved, not closed).
    pub fn is_active(self) -> bool {
        self < IncidentState::Resolved
    }

    pub(super) fn rank(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for IncidentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When and by which record an incident entered a state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Milestone {
    /// Seq of the record that made the change.
    pub seq: u64,
    /// Its `occurred_at`, Unix nanoseconds.
    pub at_ns: i64,
    /// Who made it, if the event said.
    pub by: Option<String>,
    /// The event's note, if any.
    pub note: Option<String>,
}

/// One entry of the severity history (the first is the opening severity).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityChange {
    /// Seq of the record.
    pub seq: u64,
    /// Its `occurred_at`, Unix nanoseconds.
    pub at_ns: i64,
    /// The severity before (none for the opening one).
    pub from: Option<Severity>,
    /// The severity after.
    pub to: Severity,
    /// Why, if the event said.
    pub reason: Option<String>,
    /// Who changed it, if the event said.
    pub by: Option<String>,
}

/// A note added to an incident, kept in full (the timeline shortens it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Seq of the record.
    pub seq: u64,
    /// Its `occurred_at`, Unix nanoseconds.
    pub at_ns: i64,
    /// Who wrote it, if the event said.
    pub by: Option<String>,
    /// The note.
    pub text: String,
}

/// One related record, as a reviewer reads the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// The record's seq.
    pub seq: u64,
    /// The record hash, lower-case hex: what a bundle proves.
    pub record_hash: String,
    /// The record's event type.
    pub event_type: String,
    /// Its `occurred_at`, Unix nanoseconds.
    pub at_ns: i64,
    /// One line saying what happened.
    pub summary: String,
}

/// What kind of anomaly a [`Flag`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// A forward move past one or more states (e.g. open → resolved); the
    /// move is applied, the skipped states keep no time.
    SkippedStates,
    /// A move to an earlier state (e.g. acknowledged after resolved); not
    /// applied.
    Backwards,
    /// A move to the state it is already in, or a severity change to the
    /// current severity; not applied.
    Repeated,
    /// A state change whose `occurred_at` is earlier than the previous state
    /// change's; applied.
    TimeBeforePrevious,
    /// A second `incident.opened` for an existing id; ignored.
    DuplicateOpen,
    /// An event for an incident that was not opened (yet); not applied.
    UnknownIncident,
}

/// An anomaly found while folding, tied to the record that caused it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// Seq of the record.
    pub seq: u64,
    /// What is wrong.
    pub kind: FlagKind,
    /// A sentence for the reviewer.
    pub message: String,
}

/// An incident as the log tells it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// e.g. `INC-2026-0042`.
    pub id: String,
    /// Where it is in its lifecycle.
    pub state: IncidentState,
    /// Its current severity.
    pub severity: Severity,
    /// One-line title from `incident.opened`.
    pub title: String,
    /// The affected service, e.g. `artifact-store`.
    pub service: String,
    /// Runbook links from `incident.opened`.
    pub runbooks: Vec<String>,
    /// When it was opened.
    pub opened: Milestone,
    /// When it was acknowledged (none if that state was skipped).
    pub acknowledged: Option<Milestone>,
    /// When it was mitigated (none if that state was skipped).
    pub mitigated: Option<Milestone>,
    /// When it was resolved (none if that state was skipped).
    pub resolved: Option<Milestone>,
    /// When it was closed.
    pub closed: Option<Milestone>,
    /// `acknowledged.at_ns - opened.at_ns`, in nanoseconds.
    pub time_to_acknowledge_ns: Option<i64>,
    /// `resolved.at_ns - opened.at_ns`, in nanoseconds.
    pub time_to_resolve_ns: Option<i64>,
    /// Every severity it had, the opening one first.
    pub severity_history: Vec<SeverityChange>,
    /// Notes in full, in log order.
    pub notes: Vec<Note>,
    /// Every related record, in log order.
    pub timeline: Vec<TimelineEntry>,
    /// Anomalies, in log order.
    pub flags: Vec<Flag>,
}

impl Incident {
    /// When it entered `state`, if it did.
    pub fn milestone(&self, state: IncidentState) -> Option<&Milestone> {
        match state {
            IncidentState::Open => Some(&self.opened),
            IncidentState::Acknowledged => self.acknowledged.as_ref(),
            IncidentState::Mitigated => self.mitigated.as_ref(),
            IncidentState::Resolved => self.resolved.as_ref(),
            IncidentState::Closed => self.closed.as_ref(),
        }
    }

    /// `open → acknowledged → …`: how the lifecycle treats a move to `to`.
    pub(super) fn transition(&mut self, to: IncidentState, entry: &Entry, by: Option<String>, note: Option<String>) {
        let from = self.state;
        if to.rank() <= from.rank() {
            let (kind, message) = if to == from {
                (
                    FlagKind::Repeated,
                    format!("{} while already {from}: ignored", entry.event_type),
                )
            } else {
                (
                    FlagKind::Backwards,
                    format!("{} while {from}: state stays {from}", entry.event_type),
                )
            };
            self.flag(entry.seq, kind, message);
            return;
        }
        if let Some(previous) = self.milestone(from)
            && entry.at_ns < previous.at_ns
        {
            let message = format!(
                "{} occurred {} ms before the previous state change ({from} at seq {}); applied",
                entry.event_type,
                previous.at_ns.saturating_sub(entry.at_ns) / 1_000_000,
                previous.seq
            );
            self.flag(entry.seq, FlagKind::TimeBeforePrevious, message);
        }
        let skipped = &IncidentState::ALL[from.rank() + 1..to.rank()];
        if !skipped.is_empty() {
            let names: Vec<&str> = skipped.iter().map(|state| state.as_str()).collect();
            let message = format!("{} while {from}: skipped {}", entry.event_type, names.join(", "));
            self.flag(entry.seq, FlagKind::SkippedStates, message);
        }
        let milestone = Some(Milestone {
            seq: entry.seq,
            at_ns: entry.at_ns,
            by,
            note,
        });
        match to {
            IncidentState::Open => {}
            IncidentState::Acknowledged => self.acknowledged = milestone,
            IncidentState::Mitigated => self.mitigated = milestone,
            IncidentState::Resolved => self.resolved = milestone,
            IncidentState::Closed => self.closed = milestone,
        }
        self.state = to;
        let opened_at = self.opened.at_ns;
        self.time_to_acknowledge_ns = self.acknowledged.as_ref().map(|m| m.at_ns.saturating_sub(opened_at));
        self.time_to_resolve_ns = self.resolved.as_ref().map(|m| m.at_ns.saturating_sub(opened_at));
    }

    pub(super) fn flag(&mut self, seq: u64, kind: FlagKind, message: String) {
        self.flags.push(Flag { seq, kind, message });
    }
}
