//! The derived-state store: indexes and the Merkle node cache, everything of
//! which can be rebuilt from the segments.
//!
//! Architecture invariant: nothing is in a [`Store`] that is not in the
//! segment log. Every batch applied carries the log length it brings the
//! store to, written atomically with it, so the store always knows exactly
//! which prefix of the log it reflects and catches up from there. The trait
//! keeps sled swappable: a second backend implements these few calls.

mod sled_store;

pub use sled_store::{DEFAULT_INDEX_CACHE_BYTES, SledStore};

/// How long [`open_sled`] waits for a store this process just closed.
const SLED_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens a sled database, waiting (up to 5 s) while its file lock is
/// still held. sled releases the lock only when the last of its internal
/// references drops, which its I/O threads may still hold for a moment
/// after the `Db` itself was dropped: reopening a store this process just
/// closed (a restart in place, a test) would otherwise fail at random.
/// Another process holding it gets the same error after the wait.
pub(crate) fn open_sled(config: &sled::Config) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + SLED_RELEASE_WAIT;
    loop {
        match config.open() {
            // sled reports it as `Other` with this text (config.rs).
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

use ledger_verify::Hash;

use crate::error::Result;

/// One record's index entries. Event ids are not here: the id index lives
/// in memory, rebuilt from the log on open (see `ids.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedEvent {
    /// Stream name.
    pub stream: String,
    /// Position in the stream.
    pub stream_version: u64,
    /// Global position.
    pub seq: u64,
}

/// Tree levels that are not stored: a node of level 1..=5 is recomputed
/// from the (at most 32) leaf hashes under it, which one read of a stored
/// run of 64 leaves returns. They are half of all tree nodes: leaving them
/// out halves the node bytes the indexer writes to sled per record, at
/// ~6 µs of hashing per inclusion proof.
pub const DERIVED_LEVELS: std::ops::RangeInclusive<u32> = 1..=5;

/// Leaves per stored run: every node of a derived level lies within one.
pub const LEAF_RUN: u64 = 64;

/// A perfect Merkle subtree root: leaves `[index << level, (index + 1) << level)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeNode {
    /// Height above the leaves.
    pub level: u32,
    /// Position in its level.
    pub index: u64,
    /// The subtree root.
    pub hash: Hash,
}

/// Everything derived from a contiguous run of records, applied atomically.
#[derive(Clone, Debug, Default)]
pub struct IndexBatch {
    /// Log length (records) the store reflects once this batch is applied.
    pub log_len_after: u64,
    /// Index entries, in seq order.
    pub events: Vec<IndexedEvent>,
    /// Tree nodes completed by these records, in completion order (those
    /// of [`DERIVED_LEVELS`] are skipped by the store).
    pub nodes: Vec<TreeNode>,
}

/// Persistent derived state.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Records of the log this store reflects.
    fn log_len(&self) -> Result<u64>;
    /// Identity written at creation (tree hash, ledger id), so a store from
    /// another ledger is never trusted.
    fn identity(&self) -> Result<Option<Vec<u8>>>;
    /// Sets the identity; only on an empty store.
    fn set_identity(&self, identity: &[u8]) -> Result<()>;
    /// Last version and its seq, for a stream.
    fn stream_head(&self, stream: &str) -> Result<Option<(u64, u64)>>;
    /// `(version, seq)` pairs of a stream from `from_version`, at most `limit`.
    fn stream_range(&self, stream: &str, from_version: u64, limit: usize) -> Result<Vec<(u64, u64)>>;
    /// A stored perfect-subtree root (never one of [`DERIVED_LEVELS`]).
    fn node(&self, level: u32, index: u64) -> Result<Option<Hash>>;
    /// The stored nodes of `level` from `first`, at most `count`, up to the
    /// first missing one.
    fn node_run(&self, level: u32, first: u64, count: usize) -> Result<Vec<Hash>>;
    /// Applies a batch atomically, moving `log_len` to `batch.log_len_after`.
    fn apply(&self, batch: &IndexBatch) -> Result<()>;
    /// Removes everything, identity included (before a rebuild).
    fn clear(&self) -> Result<()>;
    /// Writes buffered state to disk (not needed for correctness).
    fn flush(&self) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopening_waits_for_a_store_still_being_released() -> std::result::Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let config = sled::Config::new().path(dir.path().join("db"));
        let held = open_sled(&config)?;
        // Without the wait this fails at once: the lock is held.
        assert!(config.open().is_err());
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(held);
        });
        let reopened = open_sled(&config)?;
        reopened.insert(b"k", b"v")?;
        release.join().map_err(|_| "release thread panicked")?;
        Ok(())
    }
}
