//! The **Incidents** projection: one record per incident, from `open` to
//! `closed`, with its severity history, notes, time to acknowledge and to
//! resolve, and a timeline of every related record.
//!
//! Transitions the lifecycle does not allow (acknowledging a resolved
//! incident, closing one that was never resolved, events for an incident
//! that was never opened, a second `incident.opened`, a state change dated
//! before the previous one) are kept as [`Flag`]s on the incident, queryable
//! across incidents with [`Incidents::flags`]: a reviewer must see them, so
//! they are state, not faults. Faults are only for records the fold cannot
//! read (malformed payload, missing or invalid field); they leave the state
//! untouched.
//!
//! This module does not decide what is evidence for an incident beyond the
//! ids records carry: any record whose metadata `incident_id` or whose
//! stream `incident/<id>` names an opened incident joins its timeline.
//! Payload schemas and the transition table: `docs/projections/incidents.md`.

mod incident;
mod payload;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

pub use self::incident::{
    Flag, FlagKind, Incident, IncidentState, Milestone, Note, Severity, SeverityChange, TimelineEntry,
};
use self::payload::{IncidentEvent, Parsed};
use super::super::table::{Cached, Changes, Table};
use super::super::{Effects, Fault, Projection};
use crate::record::Record;

/// The projection's stable name.
pub const NAME: &str = "incidents";
/// Bump when the fold or the stored rows change.
pub const VERSION: u32 = 1;

/// Event types this projection owns all start with this.
const TYPE_PREFIX: &str = "incident.";
/// Streams named `incident/<id>` belong to that incident.
const STREAM_PREFIX: &str = "incident/";
/// Metadata key that ties any record to an incident.
const METADATA_KEY: &str = "incident_id";
/// Timeline summaries stay one line.
const SUMMARY_CHARS: usize = 120;

/// Records for an incident id that was never opened, kept until (if ever)
/// it is: then they move to the incident's timeline and flags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    /// The id the records named.
    pub incident_id: String,
    /// The records, in log order.
    pub timeline: Vec<TimelineEntry>,
    /// One [`FlagKind::UnknownIncident`] flag per record.
    pub flags: Vec<Flag>,
}

/// Which incidents [`Incidents::incidents`] returns; every set field must
/// match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentFilter {
    /// Only incidents in this state.
    pub state: Option<IncidentState>,
    /// Only incidents of this severity.
    pub severity: Option<Severity>,
    /// Only incidents of this service.
    pub service: Option<String>,
    /// Only incidents not yet resolved or closed.
    pub open_only: bool,
}

impl IncidentFilter {
    fn matches(&self, incident: &Incident) -> bool {
        self.state.is_none_or(|state| incident.state == state)
            && self.severity.is_none_or(|severity| incident.severity == severity)
            && self.service.as_ref().is_none_or(|service| &incident.service == service)
            && (!self.open_only || incident.state.is_active())
    }
}

/// A flag with the incident it belongs to, as [`Incidents::flags`] lists
/// them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentFlag {
    /// The incident id.
    pub incident_id: String,
    /// Whether that incident is opened (false: the flag is on an orphan).
    pub opened: bool,
    /// Seq of the record.
    pub seq: u64,
    /// What is wrong.
    pub kind: FlagKind,
    /// A sentence for the reviewer.
    pub message: String,
}

/// The Incidents projection.
#[derive(Clone, Debug)]
pub struct Incidents {
    incidents: Table<Incident>,
    orphans: Table<Orphan>,
}

impl Default for Incidents {
    fn default() -> Incidents {
        Incidents::new()
    }
}

impl Incidents {
    /// An empty projection.
    pub fn new() -> Incidents {
        Incidents {
            incidents: Table::new("incident"),
            orphans: Table::new("orphan"),
        }
    }

    /// The incident `id`, if it was opened.
    pub fn incident(&self, id: &str) -> Option<Cow<'_, Incident>> {
        self.incidents.get(id)
    }

    /// The incidents matching `filter`, by id.
    pub fn incidents(&self, filter: &IncidentFilter) -> Vec<Cow<'_, Incident>> {
        self.incidents
            .iter()
            .map(|(_, incident)| incident)
            .filter(|incident| filter.matches(incident))
            .collect()
    }

    /// Records for ids never opened, by id.
    pub fn orphans(&self) -> Vec<Cow<'_, Orphan>> {
        self.orphans.iter().map(|(_, orphan)| orphan).collect()
    }

    /// Every flag of every incident and orphan, in log order.
    pub fn flags(&self) -> Vec<IncidentFlag> {
        let flag_of = |id: &str, opened: bool, flag: &Flag| IncidentFlag {
            incident_id: id.to_string(),
            opened,
            seq: flag.seq,
            kind: flag.kind,
            message: flag.message.clone(),
        };
        let mut flags: Vec<IncidentFlag> = Vec::new();
        for (id, incident) in self.incidents.iter() {
            flags.extend(incident.flags.iter().map(|flag| flag_of(&id, true, flag)));
        }
        for (id, orphan) in self.orphans.iter() {
            flags.extend(orphan.flags.iter().map(|flag| flag_of(&id, false, flag)));
        }
        flags.sort_by(|a, b| (a.seq, &a.incident_id, a.kind).cmp(&(b.seq, &b.incident_id, b.kind)));
        flags
    }

    fn apply_incident_event(&mut self, record: &Record) -> Result<(), Fault> {
        // Everything that can fail happens here, before any row changes.
        let IncidentEvent { incident_id, parsed } = payload::parse(record)?;
        let mut entry = Entry::of(record, summary(&parsed));

        if let Parsed::Opened {
            severity,
            title,
            service,
            runbooks,
            by,
        } = parsed
        {
            self.open(incident_id, entry, severity, title, service, runbooks, by);
            return Ok(());
        }
        let Some(incident) = self.incidents.get_mut(&incident_id) else {
            let message = format!(
                "{} for {incident_id}, which was never opened: not applied",
                entry.event_type
            );
            let orphan = self.orphans.get_or_insert_with(&incident_id, || Orphan {
                incident_id: incident_id.clone(),
                timeline: Vec::new(),
                flags: Vec::new(),
            });
            orphan.flags.push(Flag {
                seq: entry.seq,
                kind: FlagKind::UnknownIncident,
                message,
            });
            orphan.timeline.push(entry.into_timeline());
            return Ok(());
        };
        match parsed {
            Parsed::Opened { .. } => {}
            Parsed::Lifecycle { to, by, note } => incident.transition(to, &entry, by, note),
            Parsed::Note { text, by } => incident.notes.push(Note {
                seq: entry.seq,
                at_ns: entry.at_ns,
                by,
                text,
            }),
            Parsed::SeverityChanged { to, reason, by } => {
                entry.summary = shorten(format!("severity {} {}", incident.severity, entry.summary));
                if to == incident.severity {
                    let message = format!("severity changed to {to}, which it already is: ignored");
                    incident.flag(entry.seq, FlagKind::Repeated, message);
                } else {
                    incident.severity_history.push(SeverityChange {
                        seq: entry.seq,
                        at_ns: entry.at_ns,
                        from: Some(incident.severity),
                        to,
                        reason,
                        by,
                    });
                    incident.severity = to;
                }
            }
        }
        incident.timeline.push(entry.into_timeline());
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // the fields of one event, moved in
    fn open(
        &mut self,
        incident_id: String,
        entry: Entry,
        severity: Severity,
        title: String,
        service: String,
        runbooks: Vec<String>,
        by: Option<String>,
    ) {
        if let Some(incident) = self.incidents.get_mut(&incident_id) {
            let message = format!(
                "second incident.opened for {incident_id} (first at seq {}): ignored",
                incident.opened.seq
            );
            incident.flag(entry.seq, FlagKind::DuplicateOpen, message);
            incident.timeline.push(entry.into_timeline());
            return;
        }
        let (mut timeline, flags) = match self.orphans.remove(&incident_id) {
            Some(orphan) => (orphan.timeline, orphan.flags),
            None => (Vec::new(), Vec::new()),
        };
        let opened = Milestone {
            seq: entry.seq,
            at_ns: entry.at_ns,
            by: by.clone(),
            note: None,
        };
        let severity_history = vec![SeverityChange {
            seq: entry.seq,
            at_ns: entry.at_ns,
            from: None,
            to: severity,
            reason: None,
            by,
        }];
        timeline.push(entry.into_timeline());
        let incident = Incident {
            id: incident_id.clone(),
            state: IncidentState::Open,
            severity,
            title,
            service,
            runbooks,
            opened,
            acknowledged: None,
            mitigated: None,
            resolved: None,
            closed: None,
            time_to_acknowledge_ns: None,
            time_to_resolve_ns: None,
            severity_history,
            notes: Vec::new(),
            timeline,
            flags,
        };
        self.incidents.insert(incident_id, incident);
    }

    /// A record of another type joins the timeline of the opened incidents
    /// it names (through metadata or its stream); it changes nothing else.
    fn apply_evidence(&mut self, record: &Record) {
        let from_metadata = record.header.event.metadata.extra.get(METADATA_KEY).map(String::as_str);
        let from_stream = record.stream().strip_prefix(STREAM_PREFIX);
        let mut ids = [from_metadata, from_stream];
        if ids[0] == ids[1] {
            ids[1] = None;
        }
        for id in ids.into_iter().flatten() {
            if let Some(incident) = self.incidents.get_mut(id) {
                let summary = format!("{} on {}", record.event_type(), record.stream());
                incident.timeline.push(Entry::of(record, summary).into_timeline());
            }
        }
    }
}

impl Projection for Incidents {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        VERSION
    }

    fn fresh(&self) -> Incidents {
        Incidents::new()
    }

    fn apply(&mut self, record: &Record, _effects: &mut Effects) -> Result<(), Fault> {
        if record.event_type().starts_with(TYPE_PREFIX) {
            return self.apply_incident_event(record);
        }
        let event = &record.header.event;
        if event.stream.starts_with(STREAM_PREFIX) || !event.metadata.extra.is_empty() {
            self.apply_evidence(record);
        }
        Ok(())
    }

    fn take_changes(&mut self, changes: &mut Changes) -> Result<(), Fault> {
        self.incidents.take_changes(changes)?;
        self.orphans.take_changes(changes)
    }

    fn cached(&mut self) -> Vec<&mut dyn Cached> {
        vec![&mut self.incidents, &mut self.orphans]
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), Fault> {
        if self.incidents.restore(key, value)? || self.orphans.restore(key, value)? {
            return Ok(());
        }
        Err(Fault::new(format!(
            "{NAME}: stored key {:?} belongs to no table",
            String::from_utf8_lossy(key)
        )))
    }
}

/// What every timeline entry takes from its record.
struct Entry {
    seq: u64,
    at_ns: i64,
    event_type: String,
    record_hash: String,
    summary: String,
}

impl Entry {
    fn of(record: &Record, summary: String) -> Entry {
        Entry {
            seq: record.seq(),
            at_ns: record.header.event.occurred_at_ns,
            event_type: record.event_type().to_string(),
            record_hash: crate::projection::hex_hash(&record.record_hash),
            summary: shorten(summary),
        }
    }

    fn into_timeline(self) -> TimelineEntry {
        TimelineEntry {
            seq: self.seq,
            record_hash: self.record_hash,
            event_type: self.event_type,
            at_ns: self.at_ns,
            summary: self.summary,
        }
    }
}

fn summary(parsed: &Parsed) -> String {
    fn with_by(what: &str, by: &Option<String>) -> String {
        match by {
            Some(by) => format!("{what} by {by}"),
            None => what.to_string(),
        }
    }
    match parsed {
        Parsed::Opened {
            severity,
            title,
            service,
            by,
            ..
        } => format!("{} {severity} on {service}: {title}", with_by("opened", by)),
        Parsed::Lifecycle { to, by, note } => {
            let what = with_by(to.as_str(), by);
            match note {
                Some(note) => format!("{what}: {note}"),
                None => what,
            }
        }
        Parsed::Note { text, by } => format!("{}: {text}", with_by("note", by)),
        // The handler puts "severity <from> " in front: only it knows <from>.
        Parsed::SeverityChanged { to, reason, by } => {
            let what = with_by(&format!("-> {to}"), by);
            match reason {
                Some(reason) => format!("{what}: {reason}"),
                None => what,
            }
        }
    }
}

/// Cuts `text` to [`SUMMARY_CHARS`] characters on one line.
fn shorten(text: String) -> String {
    let one_line = !text.contains(['\n', '\r']);
    if one_line && text.chars().count() <= SUMMARY_CHARS {
        return text;
    }
    let mut short: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .take(SUMMARY_CHARS)
        .collect();
    if text.chars().count() > SUMMARY_CHARS {
        short.push('…');
    }
    short
}
