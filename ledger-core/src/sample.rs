//! Realistic sample evidence, deterministic for a seed: workplans moving
//! through their tasks, incidents from open to closed, metric observations
//! from a handful of services, and operations-hub events that no built-in
//! projection folds. The demo, the projection benchmarks and the replay
//! determinism tests all use it, so they exercise the same mix.
//!
//! Per 100 events: 40 `metric.observed`, 30 `ops.*`, 22 task/workstream
//! events, 8 incident events. Event `n` occurs at `START + n · STEP`
//! (1 M events span a day), its id is a UUID v8 derived from the seed and
//! `n`, so regenerating gives byte-identical events. Payload schemas are
//! those of `docs/projections/*.md`.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::event::Event;

/// When event 0 occurs: 2026-11-01T00:00:00Z.
pub const START_NS: i64 = 1_793_491_200_000_000_000;
/// Time between consecutive events: 86.4 ms, so 1 M events span one day.
pub const STEP_NS: i64 = 86_400_000;

const SERVICES: [&str; 6] = [
    "artifact-store",
    "billing-api",
    "checkout",
    "registry",
    "search",
    "gateway",
];
const REGIONS: [&str; 2] = ["eu-west", "us-east"];
const OPS_TYPES: [&str; 6] = [
    "ops.health_checked",
    "ops.endpoint_verified",
    "ops.backup_verified",
    "ops.release_observed",
    "ops.drift_detected",
    "ops.runbook_executed",
];
/// Tasks per generated workstream.
const TASKS_PER_WORKSTREAM: u64 = 8;

/// An endless, deterministic source of sample events.
#[derive(Debug, Clone)]
pub struct SampleEvidence {
    seed: u64,
    n: u64,
    rng: u64,
    /// Task-event counter: drives the workplan script.
    task_step: u64,
    /// Incident-event counter: drives the incident script.
    incident_step: u64,
}

impl SampleEvidence {
    /// A source for `seed`.
    pub fn new(seed: u64) -> SampleEvidence {
        SampleEvidence {
            seed,
            n: 0,
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            task_step: 0,
            incident_step: 0,
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: fast, deterministic, good enough for sample data.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn id(&self) -> Uuid {
        let mut input = [0u8; 16];
        input[..8].copy_from_slice(&self.seed.to_le_bytes());
        input[8..].copy_from_slice(&self.n.to_le_bytes());
        let hash = blake3::hash(&input);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&hash.as_bytes()[..16]);
        Uuid::new_v8(bytes)
    }

    fn event(&self, stream: String, event_type: &str, payload: String) -> Event {
        let mut event = Event::json(stream, event_type, payload.into_bytes());
        event.id = self.id();
        event.occurred_at = at(self.n);
        event
    }

    /// The next `count` events.
    pub fn take_events(&mut self, count: usize) -> Vec<Event> {
        (0..count).map(|_| self.next_event()).collect()
    }

    /// The next event.
    pub fn next_event(&mut self) -> Event {
        let slot = self.n % 100;
        let event = if slot < 40 {
            self.metric()
        } else if slot < 70 {
            self.ops()
        } else if slot < 92 {
            self.task()
        } else {
            self.incident()
        };
        self.n += 1;
        event
    }

    fn metric(&mut self) -> Event {
        let r = self.next_random();
        let service = SERVICES[(r % SERVICES.len() as u64) as usize];
        let region = REGIONS[((r >> 8) % 2) as usize];
        let (name, kind, value) = match (r >> 16) % 3 {
            // Request latency: log-normal-ish, a long tail.
            0 => {
                let base = 5.0 + ((r >> 24) % 200) as f64;
                let tail = if (r >> 40).is_multiple_of(50) { 900.0 } else { 0.0 };
                ("http.request.duration_ms", "histogram", base + tail)
            }
            1 => ("queue.depth", "gauge", ((r >> 24) % 500) as f64),
            _ => ("budget.usage_usd", "counter", ((r >> 24) % 1000) as f64 / 100.0),
        };
        let payload = format!(
            r#"{{"name":"{name}","labels":{{"region":"{region}","service":"{service}"}},"value":{value},"kind":"{kind}"}}"#
        );
        self.event(format!("metrics/{service}"), "metric.observed", payload)
    }

    fn ops(&mut self) -> Event {
        let r = self.next_random();
        let service = SERVICES[(r % SERVICES.len() as u64) as usize];
        let event_type = OPS_TYPES[((r >> 8) % OPS_TYPES.len() as u64) as usize];
        let payload = format!(
            r#"{{"service":"{service}","endpoint":"https://{service}.example/healthz","expected_status":200,"observed_status":200,"probe":"probe-{}","latency_ms":{}}}"#,
            (r >> 16) % 4,
            (r >> 24) % 300
        );
        let mut event = self.event(format!("ops/{service}"), event_type, payload);
        event.metadata.correlation_id = format!("run-{}", self.n / 50);
        event
    }

    fn task(&mut self) -> Event {
        // Each workstream: created, its tasks created, then each task walks
        // todo → progress → (note) → (evidence) → done; every 10th
        // workstream is closed while a task is still open (a hygiene
        // anomaly), and some tasks keep a stale needs_human flag.
        let per_task = 6;
        let script_len = 1 + TASKS_PER_WORKSTREAM * (1 + per_task) + 1;
        let ws_no = self.task_step / script_len;
        let step = self.task_step % script_len;
        self.task_step += 1;
        let ws = format!("CUST-WP-{:04}", ws_no + 1);
        let stream = format!("workstream/{ws}");
        if step == 0 {
            let payload = format!(
                r#"{{"id":"{ws}","title":"Workplan {ws}","owner":"team-{}"}}"#,
                ws_no % 7
            );
            return self.event(stream, "workstream.created", payload);
        }
        if step == script_len - 1 {
            let payload = format!(r#"{{"id":"{ws}","to":"done","reason":"all tasks closed"}}"#);
            return self.event(stream, "workstream.status_changed", payload);
        }
        let k = step - 1;
        let creates = TASKS_PER_WORKSTREAM;
        if k < creates {
            let task = format!("{ws}-T{:02}", k + 1);
            let payload = format!(
                r#"{{"id":"{task}","workstream":"{ws}","title":"Task {task}","priority":"P{}","status":"todo","done_when":"evidence linked"}}"#,
                k % 4
            );
            return self.event(format!("task/{task}"), "task.created", payload);
        }
        let k = k - creates;
        let task_no = k / per_task;
        let task = format!("{ws}-T{:02}", task_no + 1);
        let task_stream = format!("task/{task}");
        let open_task = ws_no % 10 == 9 && task_no == TASKS_PER_WORKSTREAM - 1;
        let (event_type, payload) = match k % per_task {
            0 => ("task.status_changed", format!(r#"{{"id":"{task}","to":"progress"}}"#)),
            1 => (
                "task.note_added",
                format!(
                    r#"{{"id":"{task}","text":"checked the {} runbook","author":"oncall"}}"#,
                    SERVICES[(task_no % 6) as usize]
                ),
            ),
            2 => (
                "task.flagged",
                format!(r#"{{"id":"{task}","needs_human":true,"reason":"approval needed"}}"#),
            ),
            3 => (
                "task.evidence_linked",
                format!(
                    r#"{{"id":"{task}","evidence":{{"seq":{}}},"description":"backup verified"}}"#,
                    self.n.saturating_sub(1)
                ),
            ),
            4 if task_no.is_multiple_of(3) => (
                // Left set on a task about to be done: a stale flag.
                "task.note_added",
                format!(r#"{{"id":"{task}","text":"approved"}}"#),
            ),
            4 => ("task.flagged", format!(r#"{{"id":"{task}","needs_human":false}}"#)),
            _ if open_task => ("task.status_changed", format!(r#"{{"id":"{task}","to":"wait"}}"#)),
            _ => ("task.status_changed", format!(r#"{{"id":"{task}","to":"done"}}"#)),
        };
        self.event(task_stream, event_type, payload)
    }

    fn incident(&mut self) -> Event {
        // Each incident: opened, acknowledged, a note, mitigated, resolved,
        // closed; every 7th is resolved before it is acknowledged.
        let script = 6;
        let no = self.incident_step / script;
        let step = self.incident_step % script;
        self.incident_step += 1;
        let id = format!("INC-2026-{:05}", no + 1);
        let service = SERVICES[(no % SERVICES.len() as u64) as usize];
        let skip_ack = no % 7 == 6;
        let (event_type, payload) = match step {
            0 => (
                "incident.opened",
                format!(
                    r#"{{"incident_id":"{id}","severity":"SEV{}","title":"{service} error rate above SLO","service":"{service}","runbooks":["https://runbooks.example/{service}"]}}"#,
                    no % 4 + 1
                ),
            ),
            1 if skip_ack => (
                "incident.note_added",
                format!(r#"{{"incident_id":"{id}","text":"paged, no answer yet"}}"#),
            ),
            1 => (
                "incident.acknowledged",
                format!(r#"{{"incident_id":"{id}","by":"oncall-{}"}}"#, no % 5),
            ),
            2 => (
                "incident.note_added",
                format!(r#"{{"incident_id":"{id}","text":"rolled back the last release"}}"#),
            ),
            3 => ("incident.mitigated", format!(r#"{{"incident_id":"{id}"}}"#)),
            4 => ("incident.resolved", format!(r#"{{"incident_id":"{id}"}}"#)),
            _ => ("incident.closed", format!(r#"{{"incident_id":"{id}"}}"#)),
        };
        let mut event = self.event(format!("incident/{id}"), event_type, payload);
        event.metadata.correlation_id = id;
        event
    }
}

/// When sample event `n` occurs.
pub fn at(n: u64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_nanos(START_NS) + Duration::nanoseconds(STEP_NS.saturating_mul(n as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_events_other_seed_other_ids() {
        let a = SampleEvidence::new(1).take_events(500);
        let b = SampleEvidence::new(1).take_events(500);
        assert_eq!(a, b);
        let c = SampleEvidence::new(2).take_events(1);
        assert_ne!(a[0].id, c[0].id);
        for event in &a {
            let payload: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
            assert!(payload.is_object(), "{}", event.event_type);
        }
        assert_eq!(a[1].occurred_at - a[0].occurred_at, Duration::nanoseconds(STEP_NS));
    }

    #[test]
    fn the_built_ins_fold_sample_evidence_without_faults() {
        use crate::projection::builtin::tasks::{AnomalyFilter, Tasks};
        use crate::projection::{Effects, Projection as _};
        let mut source = SampleEvidence::new(3);
        let mut tasks = Tasks::default();
        let mut effects = Effects::default();
        for seq in 0..20_000 {
            let record = crate::projection::testing::record_of(seq, &source.next_event());
            tasks.apply(&record, &mut effects).unwrap();
        }
        // The script's planted hygiene problems show up.
        let anomalies = tasks.anomalies(&AnomalyFilter::default());
        assert!(!anomalies.is_empty());
    }
}
