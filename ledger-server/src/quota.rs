//! Per-principal abuse limits: appended events per second, appended payload
//! bytes per second (token buckets) and streaming calls open at once.
//!
//! Why per principal: the global limits (`max_concurrent_streams`, the
//! writer's queue) protect the server, but one producer could use all of
//! them. A bucket belongs to one principal, so a flood drains only its own
//! tokens and its own stream slots; every other principal keeps its rate.
//!
//! Units: *events* are the events of an append batch, *bytes* the sum of
//! their payload lengths (what the log stores and `max_payload_bytes`
//! bounds; framing and metadata are bounded by `max_message_bytes`). Each
//! bucket holds at most one second of its rate (the burst): a batch larger
//! than that can never be admitted and is refused at once, naming the
//! burst, instead of waiting forever.
//!
//! Limits come from the server-wide settings `principal_events_per_sec`,
//! `principal_bytes_per_sec` (0 = unlimited, the default: any fixed rate
//! would silently cap some existing producer) and `principal_max_streams`
//! (default [`DEFAULT_MAX_STREAMS`]), each overridable per principal in the
//! principals file. The development caller (no principals) is one
//! principal, `development`, under the server-wide settings.
//!
//! A refused request writes nothing: tokens are taken before the batch is
//! checked or queued, and a batch that is refused takes none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::auth::Caller;

/// Default `principal_max_streams`: a quarter of the default
/// `max_concurrent_streams` (4096), so no single principal can hold every
/// global stream slot.
pub const DEFAULT_MAX_STREAMS: u32 = 1024;

/// The metadata key carrying how long to wait before retrying, in
/// milliseconds, on a rate-limited `RESOURCE_EXHAUSTED`.
pub const RETRY_AFTER_MS: &str = "retry-after-ms";

/// Limits of one principal; 0 = unlimited for the rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Events appended per second (and the burst).
    pub events_per_sec: u64,
    /// Payload bytes appended per second (and the burst).
    pub bytes_per_sec: u64,
    /// Streaming calls (AppendStream, Read, Subscribe) open at once.
    pub max_streams: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            events_per_sec: 0,
            bytes_per_sec: 0,
            max_streams: DEFAULT_MAX_STREAMS,
        }
    }
}

/// A principal's overrides of the server-wide [`Limits`] (the
/// `[principal.limits]` table of the principals file); `None` keeps the
/// server-wide value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    /// Overrides `principal_events_per_sec`.
    pub events_per_sec: Option<u64>,
    /// Overrides `principal_bytes_per_sec`.
    pub bytes_per_sec: Option<u64>,
    /// Overrides `principal_max_streams`.
    pub max_streams: Option<u32>,
}

impl LimitOverrides {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        *self == LimitOverrides::default()
    }

    /// The limits of a principal with these overrides.
    pub fn apply(&self, defaults: Limits) -> Limits {
        Limits {
            events_per_sec: self.events_per_sec.unwrap_or(defaults.events_per_sec),
            bytes_per_sec: self.bytes_per_sec.unwrap_or(defaults.bytes_per_sec),
            max_streams: self.max_streams.unwrap_or(defaults.max_streams),
        }
    }
}

/// Why a request was not admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The bucket is short: retry after `retry_after`.
    Rate {
        /// e.g. `events per second limit 5000`.
        limit: String,
        /// When the missing tokens will have been refilled.
        retry_after: Duration,
    },
    /// The batch is larger than the burst: it can never be admitted.
    TooLarge {
        /// e.g. `events per second limit 5000`.
        limit: String,
        /// What the batch asked for.
        asked: u64,
    },
}

/// A token bucket whose clock is passed in, so its arithmetic is testable.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: u64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket refilling `rate` tokens per second, holding at most
    /// `rate` (one second of burst).
    pub fn new(rate: u64, now: Instant) -> TokenBucket {
        TokenBucket {
            rate,
            tokens: rate as f64,
            updated: now,
        }
    }

    /// Changes the rate (the principals file was edited), keeping the
    /// tokens already earned up to the new capacity.
    fn set_rate(&mut self, rate: u64, now: Instant) {
        if rate != self.rate {
            self.refill(now);
            self.rate = rate;
            self.tokens = self.tokens.min(rate as f64);
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate as f64).min(self.rate as f64);
        self.updated = self.updated.max(now);
    }

    /// How long until `n` tokens are there (zero if they are), or `None`
    /// if `n` exceeds the capacity.
    pub fn wait_for(&mut self, n: u64, now: Instant) -> Option<Duration> {
        if n > self.rate {
            return None;
        }
        self.refill(now);
        let missing = n as f64 - self.tokens;
        if missing <= 0.0 {
            return Some(Duration::ZERO);
        }
        // Rounded up to the millisecond: a retry at the hinted time finds
        // the tokens there.
        let ms = (missing * 1000.0 / self.rate as f64).ceil();
        Some(Duration::from_millis(ms as u64))
    }

    /// Takes `n` tokens; the caller checked [`TokenBucket::wait_for`].
    fn take(&mut self, n: u64) {
        self.tokens -= n as f64;
    }

    /// Tokens there now (for tests).
    pub fn available(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
    }
}

/// The buckets of one principal.
#[derive(Debug)]
struct Buckets {
    events: TokenBucket,
    bytes: TokenBucket,
}

/// The per-principal state: buckets and open streams.
#[derive(Debug, Default)]
struct State {
    buckets: HashMap<String, Buckets>,
    streams: HashMap<String, u32>,
}

/// Every principal's buckets and stream counts.
#[derive(Debug)]
pub struct Quota {
    defaults: Limits,
    state: Mutex<State>,
}

impl Quota {
    /// Server-wide limits `defaults`.
    pub fn new(defaults: Limits) -> Quota {
        Quota {
            defaults,
            state: Mutex::new(State::default()),
        }
    }

    /// The limits of `caller`.
    pub fn limits_of(&self, caller: &Caller) -> Limits {
        caller.limit_overrides().apply(self.defaults)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves counts that are still
        // consistent (every update is a single assignment): keep serving.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a batch of `events` events carrying `bytes` payload bytes
    /// for `principal` at `now`, taking its tokens, or says why not (and
    /// takes none).
    pub fn admit_at(
        &self,
        principal: &str,
        limits: Limits,
        events: u64,
        bytes: u64,
        now: Instant,
    ) -> Result<(), Refusal> {
        if limits.events_per_sec == 0 && limits.bytes_per_sec == 0 {
            return Ok(());
        }
        let mut state = self.lock();
        let buckets = state.buckets.entry(principal.to_string()).or_insert_with(|| Buckets {
            events: TokenBucket::new(limits.events_per_sec, now),
            bytes: TokenBucket::new(limits.bytes_per_sec, now),
        });
        buckets.events.set_rate(limits.events_per_sec, now);
        buckets.bytes.set_rate(limits.bytes_per_sec, now);
        let mut wait = Duration::ZERO;
        let mut limiting = String::new();
        let checks = [
            (&mut buckets.events, events, "events per second limit"),
            (&mut buckets.bytes, bytes, "payload bytes per second limit"),
        ];
        for (bucket, n, what) in checks {
            if bucket.rate == 0 {
                continue;
            }
            let limit = format!("{what} {}", bucket.rate);
            match bucket.wait_for(n, now) {
                None => return Err(Refusal::TooLarge { limit, asked: n }),
                Some(w) if w > wait => {
                    wait = w;
                    limiting = limit;
                }
                Some(_) => {}
            }
        }
        if !wait.is_zero() {
            return Err(Refusal::Rate {
                limit: limiting,
                retry_after: wait,
            });
        }
        if buckets.events.rate != 0 {
            buckets.events.take(events);
        }
        if buckets.bytes.rate != 0 {
            buckets.bytes.take(bytes);
        }
        Ok(())
    }

    /// [`Quota::admit_at`] now, for `caller`, as a status: a rate refusal
    /// carries its wait in the message and as `retry-after-ms` metadata.
    pub fn admit(&self, caller: &Caller, events: u64, bytes: u64) -> Result<(), Status> {
        let limits = self.limits_of(caller);
        self.admit_at(caller.name(), limits, events, bytes, Instant::now())
            .map_err(|refusal| refusal_status(caller.name(), &refusal))
    }

    /// A slot for one more streaming call of `caller`, held until the
    /// returned guard is dropped, or `RESOURCE_EXHAUSTED` naming the limit.
    pub fn stream(self: &Arc<Self>, caller: &Caller) -> Result<StreamSlot, Status> {
        let max = self.limits_of(caller).max_streams;
        let mut state = self.lock();
        let open = state.streams.entry(caller.name().to_string()).or_insert(0);
        if *open >= max {
            return Err(Status::resource_exhausted(format!(
                "principal {}: principal_max_streams limit {max} exceeded: it already has {open} streaming calls \
                 open; close one first",
                caller.name()
            )));
        }
        *open += 1;
        Ok(StreamSlot {
            quota: Arc::clone(self),
            principal: caller.name().to_string(),
        })
    }

    /// Streaming calls `principal` has open.
    pub fn open_streams(&self, principal: &str) -> u32 {
        self.lock().streams.get(principal).copied().unwrap_or(0)
    }
}

/// One open streaming call of a principal; closing it frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    quota: Arc<Quota>,
    principal: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut state = self.quota.lock();
        if let Some(open) = state.streams.get_mut(&self.principal) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                state.streams.remove(&self.principal);
            }
        }
    }
}

/// `RESOURCE_EXHAUSTED` for a refusal, naming the principal and the limit.
pub fn refusal_status(principal: &str, refusal: &Refusal) -> Status {
    match refusal {
        Refusal::Rate { limit, retry_after } => {
            let ms = retry_after.as_millis().max(1);
            let mut status =
                Status::resource_exhausted(format!("principal {principal}: {limit} exceeded, retry after {ms} ms"));
            status
                .metadata_mut()
                .insert(RETRY_AFTER_MS, MetadataValue::from(ms as u64));
            status
        }
        Refusal::TooLarge { limit, asked } => Status::resource_exhausted(format!(
            "principal {principal}: a batch of {asked} exceeds the one-second burst of its {limit}; it can never \
             be admitted: split it"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1000, t0);
        assert_eq!(bucket.wait_for(1000, t0), Some(Duration::ZERO));
        bucket.take(1000);
        assert_eq!(bucket.available(t0), 0.0);
        // 1000/s: one token a millisecond.
        assert_eq!(bucket.wait_for(250, t0), Some(250 * MS));
        assert!((bucket.available(t0 + 100 * MS) - 100.0).abs() < 1e-6);
        assert_eq!(bucket.wait_for(250, t0 + 100 * MS), Some(150 * MS));
        // Idle for a minute: full, never more than one second's worth.
        assert!((bucket.available(t0 + Duration::from_secs(60)) - 1000.0).abs() < 1e-6);
        // A clock read earlier than the last one refills nothing.
        assert!((bucket.available(t0) - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn a_wait_is_rounded_up_to_the_millisecond() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(3, t0);
        bucket.take(3);
        // One token of a 3/s bucket: 333.3 ms, hinted as 334.
        assert_eq!(bucket.wait_for(1, t0), Some(334 * MS));
    }

    #[test]
    fn more_than_the_burst_is_never_admitted() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, t0);
        assert_eq!(bucket.wait_for(11, t0 + Duration::from_secs(3600)), None);
        let quota = Quota::new(Limits {
            events_per_sec: 10,
            ..Limits::default()
        });
        let limits = quota.defaults;
        assert_eq!(
            quota.admit_at("a", limits, 11, 0, t0),
            Err(Refusal::TooLarge {
                limit: "events per second limit 10".to_string(),
                asked: 11
            })
        );
        // The refused batch took nothing.
        assert_eq!(quota.admit_at("a", limits, 10, 0, t0), Ok(()));
    }

    #[test]
    fn the_longer_wait_of_both_buckets_is_hinted_and_a_refusal_takes_nothing() {
        let t0 = Instant::now();
        let quota = Quota::new(Limits {
            events_per_sec: 100,
            bytes_per_sec: 1000,
            max_streams: 1,
        });
        let limits = quota.defaults;
        assert_eq!(quota.admit_at("a", limits, 50, 1000, t0), Ok(()));
        // Events are there (50 left), bytes are not: 500 bytes = 500 ms.
        assert_eq!(
            quota.admit_at("a", limits, 10, 500, t0),
            Err(Refusal::Rate {
                limit: "payload bytes per second limit 1000".to_string(),
                retry_after: 500 * MS
            })
        );
        // Nothing was taken by the refusal: 50 events are still there.
        assert_eq!(quota.admit_at("a", limits, 50, 0, t0), Ok(()));
        assert!(matches!(
            quota.admit_at("a", limits, 1, 0, t0),
            Err(Refusal::Rate { retry_after, .. }) if retry_after == 10 * MS
        ));
        // Another principal has its own buckets.
        assert_eq!(quota.admit_at("b", limits, 100, 1000, t0), Ok(()));
    }

    #[test]
    fn zero_is_unlimited_and_overrides_win() {
        let t0 = Instant::now();
        let quota = Quota::new(Limits::default());
        assert_eq!(quota.admit_at("a", quota.defaults, u64::MAX, u64::MAX, t0), Ok(()));
        let overrides = LimitOverrides {
            events_per_sec: Some(5),
            bytes_per_sec: None,
            max_streams: Some(2),
        };
        let limits = overrides.apply(Limits {
            events_per_sec: 100,
            bytes_per_sec: 7,
            max_streams: 9,
        });
        assert_eq!(
            limits,
            Limits {
                events_per_sec: 5,
                bytes_per_sec: 7,
                max_streams: 2
            }
        );
        assert!(LimitOverrides::default().is_empty() && !overrides.is_empty());
    }

    #[test]
    fn a_lowered_rate_caps_the_tokens_already_there() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1000, t0);
        bucket.set_rate(10, t0);
        assert!((bucket.available(t0) - 10.0).abs() < 1e-6);
        assert_eq!(bucket.wait_for(11, t0), None);
    }

    #[test]
    fn stream_slots_are_counted_per_principal_and_freed_on_drop() {
        let quota = Arc::new(Quota::new(Limits {
            max_streams: 2,
            ..Limits::default()
        }));
        let a = Caller::principal("a", Vec::new());
        let b = Caller::principal("b", Vec::new());
        let first = quota.stream(&a).map_err(|s| s.to_string());
        let second = quota.stream(&a).map_err(|s| s.to_string());
        assert!(first.is_ok() && second.is_ok());
        let refused = quota.stream(&a).err().map(|s| (s.code(), s.message().to_string()));
        assert!(
            matches!(&refused, Some((tonic::Code::ResourceExhausted, m)) if m.contains("principal a: principal_max_streams limit 2 exceeded")),
            "{refused:?}"
        );
        assert!(quota.stream(&b).is_ok());
        assert_eq!(quota.open_streams("a"), 2);
        drop(first);
        assert_eq!(quota.open_streams("a"), 1);
        assert!(quota.stream(&a).is_ok());
    }

    #[test]
    fn a_rate_refusal_carries_its_hint_as_metadata() {
        let status = refusal_status(
            "ops-hub-probe",
            &Refusal::Rate {
                limit: "events per second limit 5000".to_string(),
                retry_after: 120 * MS,
            },
        );
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "principal ops-hub-probe: events per second limit 5000 exceeded, retry after 120 ms"
        );
        assert_eq!(
            status.metadata().get(RETRY_AFTER_MS).and_then(|v| v.to_str().ok()),
            Some("120")
        );
    }
}
