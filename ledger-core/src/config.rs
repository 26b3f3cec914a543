//! Ledger options: limits, segment size, group commit size, tree hash,
//! secret scanning.
//!
//! Plain data with defaults; parsing from files, env or flags is the server's
//! business.

use ledger_verify::HashAlg;

use crate::scan::ScanConfig;

/// How a ledger is opened (and, for a new directory, created).
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    /// Checkpoint origin line, e.g. `ledger.example.com/evidence`. Used when
    /// the ledger is created; an existing ledger keeps its own.
    pub origin: String,
    /// Merkle tree hash, fixed at creation; an existing ledger keeps its own.
    pub tree_hash: HashAlg,
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_max_bytes: u64,
    /// Largest payload accepted, in bytes.
    pub max_payload_bytes: usize,
    /// Most events in one append batch.
    pub max_batch_events: usize,
    /// Most events the writer gathers into one group commit (one fsync).
    pub max_group_events: usize,
    /// Most appended-but-not-yet-indexed events before appends wait for the
    /// indexer: bounds memory when the index store is slower than the log.
    pub max_unindexed_events: usize,
    /// Event ids the id index holds in memory before it writes them out as
    /// a sorted run file (ids in runs cost ~1.3 bytes of memory each; see
    /// `ARCHITECTURE.md`). Lower means less memory and more run files.
    pub id_memtable_ids: usize,
    /// Cap on sled's page cache for the index store, in bytes (see
    /// [`crate::store::DEFAULT_INDEX_CACHE_BYTES`]). More speeds up proof
    /// and stream range reads on a large ledger, at that much RSS.
    pub index_cache_bytes: u64,
    /// Requests queued for the writer before callers block (back-pressure).
    pub queue_depth: usize,
    /// Synced zero bytes kept ahead of the writer in the tail segment, so
    /// that a group's fdatasync flushes data without also committing a new
    /// file size (`segment/prealloc.rs`); 0 turns it off. They are cut off
    /// when a segment closes and when the ledger closes.
    pub preallocate_bytes: u64,
    /// Skip fdatasync. Only for benchmarks that measure the cost of the
    /// rest; an acknowledged append is then NOT durable.
    pub unsafe_no_sync: bool,
    /// Secret scanning of payloads and metadata at ingest (on by default:
    /// a credential, once appended, can never be removed from the log).
    pub secret_scan: ScanConfig,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            origin: "evidence-ledger.local/dev".to_string(),
            tree_hash: HashAlg::Blake3,
            segment_max_bytes: 64 * 1024 * 1024,
            max_payload_bytes: 1024 * 1024,
            max_batch_events: 10_000,
            max_group_events: 16_384,
            max_unindexed_events: 1_000_000,
            id_memtable_ids: crate::ids::DEFAULT_MEMTABLE_IDS,
            index_cache_bytes: crate::store::DEFAULT_INDEX_CACHE_BYTES,
            queue_depth: 1024,
            preallocate_bytes: 8 * 1024 * 1024,
            unsafe_no_sync: false,
            secret_scan: ScanConfig::default(),
        }
    }
}

/// Validation limits on event fields that are not configurable: they keep
/// keys and canonical encodings small and unambiguous.
pub mod limits {
    /// Longest stream name, in bytes.
    pub const MAX_STREAM_BYTES: usize = 256;
    /// Longest event type, in bytes.
    pub const MAX_TYPE_BYTES: usize = 128;
    /// Longest content type, in bytes.
    pub const MAX_CONTENT_TYPE_BYTES: usize = 128;
    /// Longest metadata id (correlation, causation, trace) or key, in bytes.
    pub const MAX_METADATA_KEY_BYTES: usize = 256;
    /// Longest metadata value, in bytes.
    pub const MAX_METADATA_VALUE_BYTES: usize = 4096;
    /// Most free metadata entries per event.
    pub const MAX_METADATA_ENTRIES: usize = 64;
    /// Longest producer key id, in bytes.
    pub const MAX_KEY_ID_BYTES: usize = 128;
}
