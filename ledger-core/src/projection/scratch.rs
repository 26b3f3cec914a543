//! Scratch stores: where a time-travel fold puts the rows it evicts.
//!
//! A scratch fold (`at_seq`, `at_time`) folds records `0..end` into a
//! `fresh()` instance. Held in memory whole, its state grew with `end`
//! (28–89 MiB per built-in at 1 M records, BENCHMARKS.md "Time travel"), so
//! it is folded like a replay instead: its tables are attached to a store,
//! flushed and evicted down to the projection's resident budget as it
//! goes, and read their evicted rows back from it for as long as the
//! returned state lives.
//!
//! The store is not sled. A temporary sled database was tried first: sled
//! kept the pages written to it in memory far beyond its `cache_capacity`
//! (4 MiB asked, 160+ MiB held after one batch of 40 MB; its cache counts
//! accesses lazily, 64 at a time in each of 256 shards, which may be why),
//! so the folds held about as much as before and their peak grew with the
//! state (BENCHMARKS.md, "Time travel, bounded"). A scratch store needs
//! none of what sled is for (it is never reopened, so it needs no crash
//! consistency, and it has one writer), so it is one file of pages
//! ([`ScratchPages`]): the entries packed into pages as in the projection
//! store (`pages`), each page in a slot of the file, the index of the pages
//! (lower bound → slot) in memory, slots freed by a rewrite reused by the
//! next. What stays in memory is that index (a few dozen bytes per 8 KiB
//! page); the file's pages are the kernel's to cache.
//!
//! Each fold has a file of its own, `<projection store>/scratch/<unique>`,
//! `flock`ed while open and removed when the last table holding it is
//! dropped; a file no open store holds (what a crash leaves) is removed
//! when the projection store is next opened.

use std::collections::BTreeMap;
use std::fs::{self, File, TryLockError};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use super::Changes;
use super::pages::{self, Entry, PageError};

/// Directory of the scratch stores, inside the projection store's.
pub(crate) const SCRATCH_DIR: &str = "scratch";

/// Smallest slot: pages are cut at 8 KiB (`pages::PAGE_BYTES`), and most
/// are between half and all of it once a store has a few of them.
const MIN_SLOT: u64 = 512;

/// Where a page sits in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    at: u64,
    len: u32,
    /// The slot's size: `len` rounded up to a power of two, so that a
    /// freed slot fits the next page of about its size.
    size: u64,
}

/// The file's free slots by size, and its end.
#[derive(Debug, Default)]
struct Space {
    free: BTreeMap<u64, Vec<u64>>,
    end: u64,
}

impl Space {
    fn alloc(&mut self, len: usize) -> Slot {
        let size = (len as u64).max(MIN_SLOT).next_power_of_two();
        let at = match self.free.get_mut(&size).and_then(Vec::pop) {
            Some(at) => at,
            None => {
                let at = self.end;
                self.end += size;
                at
            }
        };
        Slot {
            at,
            len: len as u32,
            size,
        }
    }

    fn release(&mut self, slot: Slot) {
        self.free.entry(slot.size).or_default().push(slot.at);
    }
}

/// One time-travel fold's store: a file of pages, removed when dropped.
///
/// Like [`pages::PagedTree`]: one applier at a time (under `space`), which
/// writes the pages it rewrites to free slots while readers go on, then
/// swaps them into the index under its write lock; a reader holds the
/// index's read lock while it reads a page, so a slot is never reused
/// under it.
#[derive(Debug)]
pub(crate) struct ScratchPages {
    file: File,
    path: PathBuf,
    /// Lower bound of every page → its slot.
    pages: RwLock<BTreeMap<Vec<u8>, Slot>>,
    /// Held by the applier from its first write to its index update.
    space: Mutex<Space>,
}

impl ScratchPages {
    /// A new, empty store in a file of its own under `root` (created if
    /// missing).
    pub(crate) fn create(root: &Path) -> io::Result<ScratchPages> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        fs::create_dir_all(root)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        let path = root.join(format!(
            "{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let pages = ScratchPages {
            file,
            path,
            pages: RwLock::new(BTreeMap::new()),
            space: Mutex::new(Space::default()),
        };
        // Marks it in use for `remove_stale` (dropped, it is removed).
        match pages.file.try_lock() {
            Ok(()) => Ok(pages),
            Err(TryLockError::WouldBlock) => Err(io::Error::other(format!(
                "{} is locked by another process",
                pages.path.display()
            ))),
            Err(TryLockError::Error(err)) => Err(err),
        }
    }

    fn read(&self, slot: &Slot) -> Result<Option<Vec<u8>>, PageError> {
        let mut page = vec![0; slot.len as usize];
        self.file.read_exact_at(&mut page, slot.at)?;
        Ok(Some(page))
    }

    /// The value of logical entry `key`, as of the last applied batch.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, PageError> {
        let pages = self.pages.read().map_err(|_| PageError::Poisoned)?;
        pages::get_in(&pages, key, |_, slot| self.read(slot))
    }

    /// Like [`pages::PagedTree::scan`].
    pub(crate) fn scan(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<Vec<Entry>, PageError> {
        let pages = self.pages.read().map_err(|_| PageError::Poisoned)?;
        pages::scan_in(&pages, prefix, from, limit, |_, slot| self.read(slot))
    }

    /// Like [`pages::PagedTree::scan_keys`].
    pub(crate) fn scan_keys(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, PageError> {
        let pages = self.pages.read().map_err(|_| PageError::Poisoned)?;
        pages::scan_keys_in(&pages, prefix, from, limit, |_, slot| self.read(slot))
    }

    /// Applies `changes` (logical entries).
    pub(crate) fn apply(&self, changes: &Changes) -> Result<(), PageError> {
        let mut space = self.space.lock().map_err(|_| PageError::Poisoned)?;
        let mut updates: Vec<(Vec<u8>, Option<Slot>)> = Vec::new();
        {
            // Only this applier changes the index, and not before the
            // pages are written: readers go on meanwhile.
            let pages = self.pages.read().map_err(|_| PageError::Poisoned)?;
            pages::rewrite(
                &pages,
                changes,
                |_, slot| self.read(slot),
                |bound, page| {
                    let slot = match page {
                        Some(page) => {
                            // Slots freed by this batch are only released
                            // below: none is rewritten while indexed.
                            let slot = space.alloc(page.len());
                            self.file.write_all_at(&page, slot.at)?;
                            Some(slot)
                        }
                        None => None,
                    };
                    updates.push((bound, slot));
                    Ok(())
                },
            )?;
        }
        let mut pages = self.pages.write().map_err(|_| PageError::Poisoned)?;
        for (bound, slot) in updates {
            let old = match slot {
                Some(slot) => pages.insert(bound, slot),
                None => pages.remove(&bound),
            };
            if let Some(old) = old {
                space.release(old);
            }
        }
        Ok(())
    }

    /// Calls `each(key, value)` for every logical entry, in key order.
    pub(crate) fn for_each(
        &self,
        mut each: impl FnMut(&[u8], &[u8]) -> Result<(), PageError>,
    ) -> Result<(), PageError> {
        let pages = self.pages.read().map_err(|_| PageError::Poisoned)?;
        for (bound, slot) in pages.iter() {
            let Some(page) = self.read(slot)? else {
                continue;
            };
            for (key, value) in pages::entries_of(bound, &page)? {
                each(key, value)?;
            }
        }
        Ok(())
    }
}

impl Drop for ScratchPages {
    fn drop(&mut self) {
        // The file is closed right after; removed while open is fine.
        if let Err(err) = fs::remove_file(&self.path) {
            tracing::warn!(file = %self.path.display(), error = %err, "removing a time-travel scratch store failed; it is removed when the projection store is next opened");
        }
    }
}

/// Removes what is under `root` and not an open scratch store (one that
/// holds its file's lock: a state returned before the projection store was
/// last opened, in this process or another): what a crash or a kill left.
/// Returns how many entries were removed.
pub(crate) fn remove_stale(root: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            fs::remove_dir_all(&path)?;
        } else if in_use(&path)? {
            continue;
        } else {
            fs::remove_file(&path)?;
        }
        removed += 1;
    }
    Ok(removed)
}

/// Whether an open scratch store holds `path`'s lock (an `flock`, which
/// conflicts across open files, so also with a store of this process).
fn in_use(path: &Path) -> io::Result<bool> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err),
    };
    match file.try_lock() {
        Ok(()) => Ok(false),
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(err)) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::builtin::metrics::testkit::Xorshift;

    fn below(rng: &mut Xorshift, n: u64) -> u64 {
        rng.next_u64() % n
    }

    fn entries(root: &Path) -> Vec<PathBuf> {
        match fs::read_dir(root) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Rows read back one by one, by prefix and all in order are the
    /// applied ones through splits, removals and slot reuse, and the file
    /// stays a small multiple of what it holds.
    #[test]
    fn a_scratch_store_reads_back_exactly_the_applied_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = ScratchPages::create(dir.path()).unwrap();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut rng = Xorshift(13);
        for round in 0..80 {
            let mut changes = Vec::new();
            for _ in 0..(1 + below(&mut rng, 500)) {
                let table = if below(&mut rng, 2) == 0 { "a" } else { "b" };
                let key = format!("{table}\0{:05}", below(&mut rng, 4000)).into_bytes();
                let value =
                    (below(&mut rng, 5) != 0).then(|| vec![b'0' + (round % 10) as u8; below(&mut rng, 600) as usize]);
                match &value {
                    Some(value) => model.insert(key.clone(), value.clone()),
                    None => model.remove(&key),
                };
                changes.push((key, value));
            }
            store.apply(&changes.into_iter().collect()).unwrap();
            let mut all = Vec::new();
            store
                .for_each(|key, value| {
                    all.push((key.to_vec(), value.to_vec()));
                    Ok(())
                })
                .unwrap();
            assert_eq!(all, model.clone().into_iter().collect::<Vec<_>>(), "round {round}");
        }
        assert!(store.pages.read().unwrap().len() > 10, "the entries span pages");
        for n in 0..4000 {
            for table in ["a", "b"] {
                let key = format!("{table}\0{n:05}").into_bytes();
                assert_eq!(store.get(&key).unwrap(), model.get(&key).cloned(), "{n}");
            }
        }
        let under = |prefix: &[u8], from: &[u8]| -> Vec<Entry> {
            model
                .iter()
                .filter(|(k, _)| k.starts_with(prefix) && k.as_slice() >= from)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        assert_eq!(store.scan(b"b\0", b"", usize::MAX).unwrap(), under(b"b\0", b""));
        assert_eq!(
            store.scan(b"a\0", b"a\x0002000", usize::MAX).unwrap(),
            under(b"a\0", b"a\x0002000")
        );
        assert_eq!(store.scan(b"a\0", b"", 3).unwrap(), under(b"a\0", b"")[..3]);
        let keys = |entries: Vec<Entry>| entries.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            store.scan_keys(b"a\0", b"a\x0002000", 50).unwrap(),
            keys(under(b"a\0", b"a\x0002000"))[..50]
        );
        // Rewritten pages reuse freed slots: the file does not grow with
        // the bytes written (80 rounds rewrote every page many times).
        let held: u64 = store.pages.read().unwrap().values().map(|slot| slot.len as u64).sum();
        let file = store.file.metadata().unwrap().len();
        assert!(file <= 8 * held, "file {file} bytes for {held} bytes of pages");
        // Everything deleted: no page left.
        store
            .apply(&model.keys().map(|k| (k, None::<Vec<u8>>)).collect())
            .unwrap();
        assert!(store.pages.read().unwrap().is_empty());
        assert_eq!(store.get(b"a\x0000001").unwrap(), None);
    }

    #[test]
    fn a_scratch_store_is_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(SCRATCH_DIR);
        let store = ScratchPages::create(&root).unwrap();
        store.apply(&[(b"t\0k", Some(b"v"))].into_iter().collect()).unwrap();
        let [file] = entries(&root).try_into().unwrap();
        assert!(in_use(&file).unwrap(), "an open store is locked");
        drop(store);
        assert!(entries(&root).is_empty());
    }

    #[test]
    fn only_what_no_open_store_holds_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(SCRATCH_DIR);
        assert_eq!(remove_stale(&root).unwrap(), 0, "no scratch directory yet");
        let live = ScratchPages::create(&root).unwrap();
        live.apply(&[(b"k", Some(b"v"))].into_iter().collect()).unwrap();
        let [live_file] = entries(&root).try_into().unwrap();
        // What a killed process leaves: its store's file (unlocked once
        // the process is gone), a directory (the sled stores of an older
        // build).
        fs::write(root.join("123-456-0"), b"pages").unwrap();
        fs::create_dir_all(root.join("123-456-1").join("blobs")).unwrap();
        assert_eq!(remove_stale(&root).unwrap(), 2);
        assert_eq!(entries(&root), [live_file]);
        assert_eq!(live.get(b"k").unwrap(), Some(b"v".to_vec()));
        drop(live);
        assert!(entries(&root).is_empty());
    }
}
