//! The derived-state store: indexes and the Merkle node cache, everything of
//! which can be rebuilt from the segments.
//!
//! Architecture invariant: nothing is in a [`Store`] that is not in the
//! segment log. Every batch applied carries the log length it brings the
//! store to, written atomically with it, so the store always knows exactly
//! which prefix of the log it reflects and catches up from there. The trait
//! keeps sled swappable: a second backend implements these few calls.

mod sled_store;

pub use sled_store::SledStore;

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
    /// Tree nodes completed by these records, in completion order.
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
    /// A stored perfect-subtree root.
    fn node(&self, level: u32, index: u64) -> Result<Option<Hash>>;
    /// Applies a batch atomically, moving `log_len` to `batch.log_len_after`.
    fn apply(&self, batch: &IndexBatch) -> Result<()>;
    /// Removes everything, identity included (before a rebuild).
    fn clear(&self) -> Result<()>;
    /// Writes buffered state to disk (not needed for correctness).
    fn flush(&self) -> Result<()>;
}
