//! The **bundle index** (`subjects`): which records belong to which subject
//! (stream, correlation id, incident, workstream) and which seqs were
//! recorded when, so an audit bundle is assembled from seq lists instead of
//! a scan of the log.
//!
//! It folds every record, so the common path is a few map lookups and no
//! allocation: JSON is read only for the `incident.*`, `task.*`,
//! `workstream.*` and `workplan.*` records that carry ids in their payload.
//! It never faults on a payload: a record another projection cannot read
//! is still evidence of its stream, correlation and time, and that
//! projection reports the fault.
//!
//! It does not read records back or check what it indexes: a selection is a
//! list of seqs, which the bundle builder fetches, proves and (for time
//! bounds finer than a minute) filters. Id sources: `docs/projections/subjects.md`.

mod lists;
#[cfg(test)]
mod tests;
mod time;

use std::borrow::Cow;
use std::ops::{Range, RangeInclusive};

use serde::{Deserialize, Serialize};

use self::lists::{Kind, SeqLists};
use self::time::{Mark, TimeIndex};
use super::super::table::{Cached, Changes, Table};
use super::super::{Effects, Fault, Projection};
use crate::record::Record;

pub use self::time::TIME_BUCKET_NS;

/// The projection's stable name.
pub const NAME: &str = "subjects";
/// Bump when the fold or the stored rows change.
pub const VERSION: u32 = 1;

/// What a bundle can be about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Subject {
    /// Every record of a stream, e.g. `task/CUST-WP-0051-T03`.
    Stream(String),
    /// Every record whose metadata correlation id is this.
    Correlation(String),
    /// Every record about an incident, e.g. `INC-2026-0042`.
    Incident(String),
    /// Every record about a workstream (workplan) or its tasks, e.g.
    /// `CUST-WP-0051`.
    Workstream(String),
}

impl Subject {
    fn parts(&self) -> (Kind, &str) {
        match self {
            Subject::Stream(id) => (Kind::Stream, id),
            Subject::Correlation(id) => (Kind::Correlation, id),
            Subject::Incident(id) => (Kind::Incident, id),
            Subject::Workstream(id) => (Kind::Workstream, id),
        }
    }
}

/// Which records a bundle holds: those in **every** listed subject, recorded
/// in the time range and within the seq range. Absent parts do not restrict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    /// Subjects a record must all belong to; empty means every record.
    pub subjects: Vec<Subject>,
    /// `recorded_at` range in Unix nanoseconds, half-open, rounded out to
    /// whole minutes (see [`Subjects::seq_range_for_time`]).
    pub time_ns: Option<Range<i64>>,
    /// Seq range, half-open.
    pub seqs: Option<Range<u64>>,
}

impl Selector {
    /// Adds a subject the records must belong to.
    pub fn with(mut self, subject: Subject) -> Selector {
        self.subjects.push(subject);
        self
    }

    /// Restricts to records recorded in `range` (Unix nanoseconds).
    pub fn recorded_in(mut self, range: Range<i64>) -> Selector {
        self.time_ns = Some(range);
        self
    }

    /// Restricts to seqs in `range`.
    pub fn seqs_in(mut self, range: Range<u64>) -> Selector {
        self.seqs = Some(range);
        self
    }
}

/// Where the fold is: kept in one row, rewritten at each flush.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    /// Seq of the first record folded.
    first_seq: Option<u64>,
    /// Seq of the last record folded.
    last_seq: Option<u64>,
    /// The open end of the time index.
    time: TimeIndex,
}

/// The bundle index projection.
#[derive(Clone, Debug)]
pub struct Subjects {
    lists: SeqLists,
    /// Task id → workstream id, for task events that name only the task.
    task_workstreams: Table<String>,
    time_chunks: Table<Vec<Mark>>,
    meta_row: Table<Meta>,
    /// The meta row's value, updated per record without a table write.
    meta: Meta,
    meta_dirty: bool,
}

impl Default for Subjects {
    fn default() -> Subjects {
        Subjects::new()
    }
}

const META_KEY: &str = "meta";

impl Subjects {
    /// An empty index.
    pub fn new() -> Subjects {
        Subjects {
            lists: SeqLists::new(),
            task_workstreams: Table::new("task"),
            time_chunks: Table::new("time"),
            meta_row: Table::new("meta"),
            meta: Meta::default(),
            meta_dirty: false,
        }
    }

    /// The seqs of `subject`, ascending.
    pub fn seqs(&self, subject: &Subject) -> Vec<u64> {
        let (kind, id) = subject.parts();
        self.lists.seqs_in(kind, id, 0..u64::MAX)
    }

    /// How many records `subject` has, without decoding them.
    pub fn count(&self, subject: &Subject) -> u64 {
        let (kind, id) = subject.parts();
        self.lists.len(kind, id)
    }

    /// The first and last seq folded, if any.
    pub fn seq_bounds(&self) -> Option<RangeInclusive<u64>> {
        Some(self.meta.first_seq?..=self.meta.last_seq?)
    }

    /// The workstream a task was last said to belong to.
    pub fn workstream_of_task(&self, task_id: &str) -> Option<Cow<'_, str>> {
        self.task_workstreams.get(task_id).map(|workstream| match workstream {
            Cow::Borrowed(workstream) => Cow::Borrowed(workstream.as_str()),
            Cow::Owned(workstream) => Cow::Owned(workstream),
        })
    }

    /// The seqs of the records recorded in `from_ns..to_ns` (Unix
    /// nanoseconds, half-open), **rounded out to whole minutes**: every
    /// record recorded in the range is in, and so may be records of the
    /// first and last minute outside it. An empty range (or one after the
    /// last record) gives `n..n`, `n` being the seq after the last folded.
    pub fn seq_range_for_time(&self, from_ns: i64, to_ns: i64) -> Range<u64> {
        let next_seq = self.next_seq();
        self.meta.time.seq_range(from_ns, to_ns, next_seq, &self.time_chunks)
    }

    /// The seqs `selector` picks, ascending and without duplicates.
    pub fn select(&self, selector: &Selector) -> Vec<u64> {
        let Some(bounds) = self.seq_bounds() else {
            return Vec::new();
        };
        let mut range = *bounds.start()..bounds.end().saturating_add(1);
        if let Some(seqs) = &selector.seqs {
            range = intersect(&range, seqs);
        }
        if let Some(time) = &selector.time_ns {
            range = intersect(&range, &self.seq_range_for_time(time.start, time.end));
        }
        if range.is_empty() {
            return Vec::new();
        }
        // Start from the smallest list; each next one only needs decoding
        // over the span of what is left.
        let mut subjects: Vec<(Kind, &str)> = selector.subjects.iter().map(Subject::parts).collect();
        subjects.sort_by_key(|&(kind, id)| self.lists.len(kind, id));
        let Some((&(kind, id), rest)) = subjects.split_first() else {
            return range.collect();
        };
        let mut picked = self.lists.seqs_in(kind, id, range);
        for &(kind, id) in rest {
            let (Some(&first), Some(&last)) = (picked.first(), picked.last()) else {
                break;
            };
            let other = self.lists.seqs_in(kind, id, first..last.saturating_add(1));
            picked.retain(|seq| other.binary_search(seq).is_ok());
        }
        picked
    }

    fn next_seq(&self) -> u64 {
        self.meta.last_seq.map_or(0, |last| last.saturating_add(1))
    }

    /// Indexes the ids found in payloads of the few types that carry them.
    fn index_payload_ids(&mut self, record: &Record, seq: u64) {
        let event_type = record.event_type();
        if event_type.starts_with("incident.") {
            if let Ok(ids) = serde_json::from_slice::<IncidentIds>(&record.payload)
                && let Some(id) = non_empty(ids.incident_id)
            {
                self.lists.push(Kind::Incident, &id, seq);
            }
        } else if event_type.starts_with("task.") {
            let Ok(ids) = serde_json::from_slice::<TaskIds>(&record.payload) else {
                return;
            };
            let task = non_empty(ids.id).or(non_empty(ids.task_id));
            let workstream = non_empty(ids.workstream)
                .or(non_empty(ids.workstream_id))
                .or(non_empty(ids.workplan));
            match (task, workstream) {
                (Some(task), Some(workstream)) => {
                    if self.task_workstreams.get(&task).as_deref().map(String::as_str) != Some(&*workstream) {
                        self.task_workstreams.insert(task.into_owned(), workstream.to_string());
                    }
                    self.lists.push(Kind::Workstream, &workstream, seq);
                }
                (Some(task), None) => {
                    if let Some(workstream) = self.task_workstreams.get(&task) {
                        self.lists.push(Kind::Workstream, &workstream, seq);
                    }
                }
                (None, Some(workstream)) => self.lists.push(Kind::Workstream, &workstream, seq),
                (None, None) => {}
            }
        } else if (event_type.starts_with("workstream.") || event_type.starts_with("workplan."))
            && let Ok(ids) = serde_json::from_slice::<WorkstreamIds>(&record.payload)
            && let Some(id) = non_empty(ids.workstream)
                .or(non_empty(ids.workstream_id))
                .or(non_empty(ids.workplan))
                .or(non_empty(ids.id))
        {
            self.lists.push(Kind::Workstream, &id, seq);
        }
    }
}

impl Projection for Subjects {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        VERSION
    }

    fn fresh(&self) -> Subjects {
        Subjects::new()
    }

    fn apply(&mut self, record: &Record, _effects: &mut Effects) -> Result<(), Fault> {
        let seq = record.seq();
        if let Some(last) = self.meta.last_seq
            && seq <= last
        {
            return Err(Fault::new(format!(
                "seq: {seq} arrives after {last}; records must come in increasing seq order"
            )));
        }
        self.meta.first_seq.get_or_insert(seq);
        self.meta.last_seq = Some(seq);
        self.meta
            .time
            .note(record.header.recorded_at_ns, seq, &mut self.time_chunks);
        self.meta_dirty = true;

        let event = &record.header.event;
        self.lists.push(Kind::Stream, &event.stream, seq);
        let metadata = &event.metadata;
        if !metadata.correlation_id.is_empty() {
            self.lists.push(Kind::Correlation, &metadata.correlation_id, seq);
        }
        if !metadata.extra.is_empty() {
            for (key, kind) in EXTRA_KEYS {
                if let Some(id) = metadata.extra.get(key)
                    && !id.is_empty()
                {
                    self.lists.push(kind, id, seq);
                }
            }
        }
        for (prefix, kind) in STREAM_PREFIXES {
            if let Some(id) = event.stream.strip_prefix(prefix)
                && !id.is_empty()
            {
                self.lists.push(kind, id, seq);
            }
        }
        self.index_payload_ids(record, seq);
        Ok(())
    }

    fn take_changes(&mut self, changes: &mut Changes) -> Result<(), Fault> {
        if self.meta_dirty {
            self.meta_row.insert(META_KEY, self.meta.clone());
            self.meta_dirty = false;
        }
        self.lists.take_changes(changes)?;
        self.task_workstreams.take_changes(changes)?;
        self.time_chunks.take_changes(changes)?;
        self.meta_row.take_changes(changes)
    }

    fn cached(&mut self) -> Vec<&mut dyn Cached> {
        let mut tables = self.lists.cached();
        tables.push(&mut self.task_workstreams);
        tables.push(&mut self.time_chunks);
        tables.push(&mut self.meta_row);
        tables
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), Fault> {
        if self.meta_row.restore(key, value)? {
            // Parsed here: the table, backed by the store, keeps no row.
            self.meta = serde_json::from_slice(value)
                .map_err(|e| Fault::new(format!("{NAME}: stored meta row does not parse: {e}")))?;
            return Ok(());
        }
        if self.lists.restore(key, value)?
            || self.task_workstreams.restore(key, value)?
            || self.time_chunks.restore(key, value)?
        {
            return Ok(());
        }
        Err(Fault::new(format!(
            "{NAME}: stored key {:?} belongs to no table",
            String::from_utf8_lossy(key)
        )))
    }
}

/// Metadata keys that tie any record to a subject.
const EXTRA_KEYS: [(&str, Kind); 3] = [
    ("incident_id", Kind::Incident),
    ("workstream", Kind::Workstream),
    ("workplan", Kind::Workstream),
];

/// Stream names that are about one subject.
const STREAM_PREFIXES: [(&str, Kind); 3] = [
    ("incident/", Kind::Incident),
    ("workstream/", Kind::Workstream),
    ("workplan/", Kind::Workstream),
];

/// The ids an `incident.*` payload may carry (the rest is skipped unread).
#[derive(Deserialize)]
struct IncidentIds<'a> {
    #[serde(borrow, default)]
    incident_id: Option<Cow<'a, str>>,
}

/// The ids a `task.*` payload may carry.
#[derive(Deserialize)]
struct TaskIds<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    task_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    workstream: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    workstream_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    workplan: Option<Cow<'a, str>>,
}

/// The ids a `workstream.*` or `workplan.*` payload may carry.
#[derive(Deserialize)]
struct WorkstreamIds<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    workstream: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    workstream_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    workplan: Option<Cow<'a, str>>,
}

fn non_empty(id: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    id.filter(|id| !id.is_empty())
}

fn intersect(a: &Range<u64>, b: &Range<u64>) -> Range<u64> {
    a.start.max(b.start)..a.end.min(b.end)
}
