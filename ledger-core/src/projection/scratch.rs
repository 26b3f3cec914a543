//! Scratch stores: where a time-travel fold puts the rows it evicts.
//!
//! A scratch fold (`at_seq`, `at_time`) folds records `0..end` into a
//! `fresh()` instance. Held in memory whole, its state grew with `end`
//! (28–89 MiB per built-in at 1 M records, BENCHMARKS.md "Time travel"), so
//! it is folded like a replay instead: its tables are attached to a store
//! and flushed and evicted down to the projection's resident budget as it
//! goes. The store cannot be a tree of the projection store: the returned
//! state reads its evicted rows back for as long as the caller holds it,
//! and the projection store is closed, reopened and compacted on its own
//! schedule. So each fold gets a sled database of its own in
//! `<projection store>/scratch/<unique>`, opened `temporary` (sled skips
//! its fsyncs) with a small page cache (sled's default is 1 GiB). Its only
//! handle ends up in the tables' [`PagedTree`], which removes the
//! directory when the last table holding it is dropped; a directory left
//! by a crash is removed when the projection store is next opened.

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::pages::PagedTree;

/// Directory of the scratch stores, inside the projection store's.
pub(crate) const SCRATCH_DIR: &str = "scratch";

/// Page cache of one scratch store. The rows the fold keeps are bounded by
/// the projection's resident budget; sled only needs to cache the pages a
/// flush rewrites and a read-back touches. Small, as every concurrent
/// time-travel query has one.
const SCRATCH_STORE_CACHE: u64 = 4 * 1024 * 1024;

/// The file sled locks while a database is open (`sled::Config::open`).
const SLED_LOCK_FILE: &str = "db";

/// A scratch store's directory: removed when dropped.
#[derive(Debug)]
pub(crate) struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        match fs::remove_dir_all(&self.0) {
            Ok(()) => {}
            // sled removes a temporary database's directory itself when
            // its last handle goes; whichever comes first does it.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                tracing::warn!(dir = %self.0.display(), error = %err, "removing a time-travel scratch store failed; it is removed when the projection store is next opened");
            }
        }
    }
}

/// Opens a new, empty scratch store under `root` (created if missing).
pub(crate) fn open(root: &Path) -> sled::Result<Arc<PagedTree>> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let path = root.join(format!(
        "{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    // Owned before sled creates anything, so that a failed open leaves
    // nothing behind either.
    let dir = ScratchDir(path.clone());
    let db = sled::Config::new()
        .path(&path)
        .temporary(true)
        .create_new(true)
        .cache_capacity(SCRATCH_STORE_CACHE)
        // Nothing here needs to reach the disk but what the page cache
        // cannot hold, which sled writes anyway.
        .flush_every_ms(None)
        .open()?;
    let tree = db.open_tree("rows")?;
    // The tree alone keeps the database open.
    drop(db);
    Ok(Arc::new(PagedTree::scratch(tree, dir)))
}

/// Removes the scratch stores under `root` that no open database holds:
/// what a crash or a kill left. A store still open (a state returned
/// before the projection store was last opened, in this process or
/// another) holds sled's lock on its `db` file and is left alone. Returns
/// how many were removed.
pub(crate) fn remove_stale(root: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        if !path.is_dir() {
            fs::remove_file(&path)?;
            removed += 1;
            continue;
        }
        if in_use(&path)? {
            continue;
        }
        fs::remove_dir_all(&path)?;
        removed += 1;
    }
    Ok(removed)
}

/// Whether an open sled database holds the lock on `dir`'s `db` file (an
/// `flock`, which conflicts across file descriptions, so also with a
/// database this process has open).
fn in_use(dir: &Path) -> io::Result<bool> {
    let file = match File::open(dir.join(SLED_LOCK_FILE)) {
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

    fn entries(root: &Path) -> Vec<PathBuf> {
        match fs::read_dir(root) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    #[test]
    fn a_scratch_store_is_removed_with_its_last_handle() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(SCRATCH_DIR);
        let tree = open(&root).unwrap();
        let changes = (0..5_000u32)
            .map(|i| (format!("t\0{i:05}").into_bytes(), Some(vec![b'v'; 300])))
            .collect();
        tree.apply(changes, Vec::new()).unwrap();
        assert_eq!(tree.get(b"t\x0004999").unwrap(), Some(vec![b'v'; 300]));
        let [store] = entries(&root).try_into().unwrap();
        assert!(in_use(&store).unwrap(), "an open store is locked");
        let other = Arc::clone(&tree);
        drop(tree);
        assert!(store.exists(), "a handle is left");
        drop(other);
        assert!(!store.exists(), "{} is left", store.display());
    }

    #[test]
    fn only_stores_no_database_holds_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(SCRATCH_DIR);
        assert_eq!(remove_stale(&root).unwrap(), 0, "no scratch directory yet");
        let live = open(&root).unwrap();
        let [live_dir] = entries(&root).try_into().unwrap();
        // What a killed process leaves: a closed database that was never
        // removed, an empty directory, a stray file.
        let crashed = root.join("crashed");
        let db = sled::Config::new().path(&crashed).open().unwrap();
        db.insert(b"k", b"v").unwrap();
        db.flush().unwrap();
        drop(db);
        fs::create_dir(root.join("empty")).unwrap();
        fs::write(root.join("stray"), b"x").unwrap();
        assert_eq!(remove_stale(&root).unwrap(), 3);
        assert_eq!(entries(&root), [live_dir]);
        // The live store still reads and writes.
        live.apply(vec![(b"k".to_vec(), Some(b"v".to_vec()))], Vec::new())
            .unwrap();
        assert_eq!(live.get(b"k").unwrap(), Some(b"v".to_vec()));
        drop(live);
        assert!(entries(&root).is_empty());
    }
}
