//! Zero-filled, synced space kept ahead of the writer in the tail segment.
//!
//! Why: an `fdatasync` after a write that grows the file must also commit
//! the new size (on ext4, a journal commit, every group); one after a write
//! into blocks that are already allocated, written (with zeros) and synced
//! only flushes the data. Measured on this machine's virtio disk
//! (`BENCHMARKS.md`, "Preallocated tail"): a 6 KB write + fdatasync takes
//! 0.15 ms instead of 0.22 ms at p50, a 400 KB one 0.23 ms instead of 0.53.
//!
//! A filler thread writes `step` bytes of zeros past the file's end and
//! syncs them whenever less than half a step of them is left, so the
//! writer's fsyncs never wait for its I/O unless the writer runs out of
//! zeros. The writer cuts the zeros off (`set_len` + fsync) before it closes
//! a segment and when it stops, so only the **last** segment can end in
//! zeros, and only after a crash; recovery truncates them as a zero-filled
//! tail (`docs/FORMAT.md` §10.3).
//!
//! Invariant, so that zeros never land on records: the filler writes only
//! at or beyond `State::end`, the file length as both threads know it; the
//! writer writes below `ready` (zeros already synced) without the lock, and
//! anything reaching past it only under the lock, moving `end` past its
//! bytes.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Zeros written per `write` call by the filler.
const ZERO_CHUNK: usize = 1 << 20;

/// The tail segment's preallocation: a handle for the writer, which owns it.
pub(crate) struct Prealloc {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

struct Inner {
    state: Mutex<State>,
    wake: Condvar,
    /// Bytes of the current file below which the writer may write without
    /// the lock: records, or zeros already synced.
    ready: AtomicU64,
    /// Zeros kept ahead of the writer; 0 turns preallocation off.
    step: u64,
}

struct State {
    /// The tail segment (a second handle: the filler only uses positioned
    /// writes, so the writer's file position is untouched).
    file: Option<Arc<File>>,
    /// The file's length: past the writer's last byte and every zero.
    end: u64,
    /// Zeros are wanted up to here.
    want: u64,
    stop: bool,
}

impl Prealloc {
    /// Preallocation of `step` bytes ahead of the writer (none when 0).
    pub(crate) fn new(step: u64) -> std::io::Result<Prealloc> {
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                file: None,
                end: 0,
                want: 0,
                stop: false,
            }),
            wake: Condvar::new(),
            ready: AtomicU64::new(0),
            step,
        });
        let thread = if step == 0 {
            None
        } else {
            let filler = Arc::clone(&inner);
            Some(
                std::thread::Builder::new()
                    .name("ledger-prealloc".to_string())
                    .spawn(move || filler.run())?,
            )
        };
        Ok(Prealloc { inner, thread })
    }

    /// Starts preallocating in `file`, whose records end at `len` (the
    /// file may already be longer: never written over).
    pub(crate) fn start(&self, file: &File, len: u64, segment_max_bytes: u64) -> std::io::Result<()> {
        if self.inner.step == 0 {
            return Ok(());
        }
        let end = file.metadata()?.len().max(len);
        let handle = Arc::new(file.try_clone()?);
        let mut state = self.inner.lock();
        state.file = Some(handle);
        state.end = end;
        // Enough for the segment, not much past it: the writer rolls once
        // it reaches `segment_max_bytes`.
        state.want = segment_max_bytes.min(len + self.inner.step).max(len);
        self.inner.ready.store(len, Ordering::Release);
        drop(state);
        self.inner.wake.notify_all();
        Ok(())
    }

    /// Runs `write`, which writes `n` bytes at `offset` of the current file,
    /// so that it never overlaps the filler's zeros.
    pub(crate) fn write<T>(&self, offset: u64, n: u64, write: impl FnOnce() -> T) -> T {
        if self.inner.step == 0 || offset + n <= self.inner.ready.load(Ordering::Acquire) {
            return write();
        }
        let mut state = self.inner.lock();
        let written = write();
        state.end = state.end.max(offset + n);
        written
    }

    /// Asks for zeros past `len`, the records' new end, once less than half
    /// a step of them is left.
    pub(crate) fn wrote(&self, len: u64, segment_max_bytes: u64) {
        let step = self.inner.step;
        if step == 0 || self.inner.ready.load(Ordering::Acquire) >= len + step / 2 {
            return;
        }
        let want = segment_max_bytes.min(len + step);
        // The filler holds the lock while it fills: never wait for it here,
        // on the writer's path. It is busy anyway, and the next group asks
        // again.
        let mut state = match self.inner.state.try_lock() {
            Ok(state) => state,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        if state.file.is_some() && want > state.want {
            state.want = want;
            drop(state);
            self.inner.wake.notify_all();
        }
    }

    /// Stops preallocating in `file` and cuts it back to `len`, its
    /// records' end, durably: before a segment is closed, and when the
    /// writer stops. Waits for a fill in progress.
    pub(crate) fn finish(&self, file: &File, len: u64) -> std::io::Result<()> {
        if self.inner.step == 0 {
            return Ok(());
        }
        let mut state = self.inner.lock();
        let had = state.file.take().is_some();
        let end = state.end;
        state.end = len;
        state.want = len;
        self.inner.ready.store(0, Ordering::Release);
        if had && end > len {
            file.set_len(len)?;
            file.sync_all()?;
        }
        Ok(())
    }
}

impl Drop for Prealloc {
    fn drop(&mut self) {
        self.inner.lock().stop = true;
        self.inner.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic: every field is set
        // in one step.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The filler thread: fills, under the lock, whatever is wanted.
    fn run(&self) {
        let zeros = vec![0u8; ZERO_CHUNK];
        let mut state = self.lock();
        loop {
            if state.stop {
                return;
            }
            let Some(file) = state.file.clone().filter(|_| state.end < state.want) else {
                state = self.wake.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            };
            let (from, to) = (state.end, state.want);
            match fill(&file, from, to, &zeros) {
                Ok(()) => {
                    state.end = to;
                    self.ready.store(to, Ordering::Release);
                }
                Err(err) => {
                    // The writer goes on growing the file; a full disk
                    // fails its own write soon enough.
                    tracing::warn!(error = %err, "preallocating the tail segment failed; appending without it");
                    state.file = None;
                }
            }
        }
    }
}

/// Writes zeros over `from..to` of `file` and syncs them.
fn fill(file: &File, from: u64, to: u64, zeros: &[u8]) -> std::io::Result<()> {
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(zeros.len());
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::time::{Duration, Instant};

    use super::*;

    fn wait_ready(prealloc: &Prealloc, at_least: u64) {
        let started = Instant::now();
        while prealloc.inner.ready.load(Ordering::Acquire) < at_least {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the filler never got there"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn zeros_stay_ahead_of_the_writer_and_never_land_on_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tail.seg");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"HEADER").unwrap();
        let prealloc = Prealloc::new(4096).unwrap();
        prealloc.start(&file, 6, 1 << 20).unwrap();
        wait_ready(&prealloc, 6 + 4096);
        assert_eq!(file.metadata().unwrap().len(), 6 + 4096);
        // Writes inside and beyond the zeros, some larger than a step.
        let mut len = 6u64;
        let mut expected = b"HEADER".to_vec();
        for i in 0..200u64 {
            let record = vec![b'a' + (i % 26) as u8; (i as usize * 37) % 9000 + 1];
            prealloc
                .write(len, record.len() as u64, || file.write_all(&record))
                .unwrap();
            len += record.len() as u64;
            expected.extend_from_slice(&record);
            prealloc.wrote(len, 1 << 20);
        }
        prealloc.finish(&file, len).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected, "records intact, zeros cut off");
    }

    #[test]
    fn zeros_stop_at_the_segment_limit_and_off_means_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tail.seg");
        let file = File::create(&path).unwrap();
        let prealloc = Prealloc::new(1 << 20).unwrap();
        prealloc.start(&file, 0, 10_000).unwrap();
        wait_ready(&prealloc, 10_000);
        prealloc.wrote(9_000, 10_000);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(file.metadata().unwrap().len(), 10_000);
        drop(prealloc);

        let path = dir.path().join("off.seg");
        let mut file = File::create(&path).unwrap();
        let off = Prealloc::new(0).unwrap();
        off.start(&file, 0, 1 << 20).unwrap();
        off.write(0, 3, || file.write_all(b"abc")).unwrap();
        off.wrote(3, 1 << 20);
        off.finish(&file, 3).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
    }
}
