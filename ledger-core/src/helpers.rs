//! Helper threads for CPU work that would otherwise wait on one thread while
//! the other cores idle: checking the events of a large batch (`event.rs`)
//! and signing a group's checkpoint while the writer waits for its
//! `fdatasync` (`commit.rs`).
//!
//! The process has `available_parallelism() - 1` of them (at most 3, named
//! `ledger-check-N`), started on first use and shared by every ledger. They
//! are reached through a rendezvous channel: [`offer`] hands a job over
//! only to a helper idle at that moment, and gives it back otherwise, so
//! the caller does the work itself. Concurrent callers (a server's) never
//! queue behind each other here, and helpers only add parallelism where
//! the callers leave threads idle.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

/// Work for a helper. It must not panic: a job catches what it runs.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// Helper threads the process has (0 on a single core).
pub(crate) fn count() -> usize {
    pool().map_or(0, |pool| pool.threads)
}

/// Hands `job` to an idle helper, or gives it back.
pub(crate) fn offer(job: Job) -> Result<(), Job> {
    let Some(pool) = pool() else { return Err(job) };
    pool.offer.try_send(job).map_err(|err| match err {
        TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
    })
}

struct Pool {
    offer: SyncSender<Job>,
    threads: usize,
}

fn pool() -> Option<&'static Pool> {
    static POOL: OnceLock<Option<Pool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4) - 1;
        let (offer, jobs) = std::sync::mpsc::sync_channel::<Job>(0);
        let jobs = Arc::new(Mutex::new(jobs));
        let mut started = 0;
        for n in 1..=threads {
            let jobs = Arc::clone(&jobs);
            let spawned = std::thread::Builder::new()
                .name(format!("ledger-check-{n}"))
                .spawn(move || {
                    loop {
                        // One idle helper waits in `recv`, the others for
                        // the lock; a job runs without it.
                        let job = match jobs.lock() {
                            Ok(jobs) => jobs.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if spawned.is_ok() {
                started += 1;
            }
        }
        (started > 0).then_some(Pool {
            offer,
            threads: started,
        })
    })
    .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_is_taken_by_an_idle_helper_or_given_back() {
        let (done, finished) = std::sync::mpsc::channel();
        let mut job: Job = Box::new(move || {
            let _ = done.send(std::thread::current().name().map(str::to_string));
        });
        if count() == 0 {
            assert!(offer(job).is_err(), "no helpers: every job comes back");
            return;
        }
        // The helpers start on first use: give them a moment to be idle.
        for _ in 0..5000 {
            match offer(job) {
                Ok(()) => {
                    let name = finished.recv().expect("the job ran").expect("helpers are named");
                    assert!(name.starts_with("ledger-check-"), "{name}");
                    return;
                }
                Err(back) => {
                    job = back;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
        panic!("no helper was ever idle");
    }
}
