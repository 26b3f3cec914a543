//! The sled implementation of [`Store`].
//!
//! One sled tree, key prefixes per index, so one `apply_batch` covers all of
//! them atomically:
//!
//! ```text
//! b"m" ‖ name                      meta: "log_len" (u64 BE), "identity"
//! b"s" ‖ stream ‖ 0x00 ‖ chunk u64 BE
//!                                  up to 64 seqs (u64 BE each, packed) of
//!                                  stream versions chunk*64 .. chunk*64+63
//!                                  (streams never hold 0x00)
//! b"n" ‖ level u8 ‖ chunk u64 BE   up to 64 node hashes of that level,
//!                                  nodes chunk*64 .. chunk*64+63, packed
//! ```
//!
//! Stream entries and tree nodes are packed 64 to a value, so a group commit
//! of 1024 records in a few streams writes some tens of keys, not thousands:
//! sled's cost is per key (each insert clones a leaf node), and one key per
//! record capped the indexer at ~60–70k records/s. The price is that the
//! last chunk of a stream is read and rewritten whole (at most 512 bytes)
//! once per batch that touches the stream. Event ids are not stored here at
//! all: the id index is in memory, rebuilt from the log (`ids.rs`).
//!
//! sled is beta and has open corruption-after-crash reports: that is why it
//! holds nothing that the segments do not, and why a store that fails to
//! open is wiped and rebuilt.

use std::collections::HashMap;
use std::path::Path;

use ledger_verify::Hash;

use super::{DERIVED_LEVELS, IndexBatch, Store};
use crate::error::{LedgerError, Result};

const NODES_PER_CHUNK: u64 = 64;
const VERSIONS_PER_CHUNK: u64 = 64;
const SEQ_LEN: usize = 8;
const META_LOG_LEN: &[u8] = b"mlog_len";
const META_IDENTITY: &[u8] = b"midentity";

/// Derived state in a sled database.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
}

fn store_err(e: sled::Error) -> LedgerError {
    LedgerError::Store(e.to_string())
}

fn be_u64(bytes: &[u8]) -> Result<u64> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| LedgerError::Store(format!("expected an 8-byte integer, found {} bytes", bytes.len())))?;
    Ok(u64::from_be_bytes(array))
}

fn stream_prefix(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 10);
    key.push(b's');
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key
}

fn stream_key(stream: &str, chunk: u64) -> Vec<u8> {
    let mut key = stream_prefix(stream);
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

/// The `(version, seq)` entries of one stream chunk.
fn stream_entries(prefix_len: usize, key: &[u8], value: &[u8]) -> Result<impl Iterator<Item = (u64, u64)>> {
    let chunk = be_u64(&key[prefix_len..])?;
    if value.is_empty() || !value.len().is_multiple_of(SEQ_LEN) || value.len() > VERSIONS_PER_CHUNK as usize * SEQ_LEN {
        return Err(LedgerError::Store(format!(
            "stream chunk {chunk} holds {} bytes, not 1..=64 seqs",
            value.len()
        )));
    }
    let seqs: Vec<u64> = value
        .chunks_exact(SEQ_LEN)
        .map(|bytes| {
            let mut array = [0u8; SEQ_LEN];
            array.copy_from_slice(bytes);
            u64::from_be_bytes(array)
        })
        .collect();
    Ok(seqs
        .into_iter()
        .enumerate()
        .map(move |(i, seq)| (chunk * VERSIONS_PER_CHUNK + i as u64, seq)))
}

fn node_key(level: u32, chunk: u64) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[0] = b'n';
    key[1] = level as u8;
    key[2..].copy_from_slice(&chunk.to_be_bytes());
    key
}

/// sled's page cache for the index store, by default. The writer keeps
/// stream heads in memory and the indexer only appends, so the cache mostly
/// serves proofs' node reads and stream range queries, which fall back to
/// the OS page cache over sled's files. 16 MiB rather than sled's 64: the
/// cache fills to its cap during a long ingest, and at 64 MiB it was the
/// largest fixed share of ledgerd's RSS (BENCHMARKS.md, "RSS while
/// ingesting 10 M events").
pub const DEFAULT_INDEX_CACHE_BYTES: u64 = 16 * 1024 * 1024;

impl SledStore {
    /// Opens (or creates) the store at `path` with the default cache
    /// ([`DEFAULT_INDEX_CACHE_BYTES`]).
    pub fn open(path: &Path) -> Result<SledStore> {
        SledStore::open_with_cache(path, DEFAULT_INDEX_CACHE_BYTES)
    }

    /// Opens (or creates) the store at `path`, sled's page cache capped at
    /// `cache_bytes`. A store sled cannot open is deleted and recreated
    /// empty: the caller rebuilds it from the log.
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<SledStore> {
        let config = || {
            sled::Config::new()
                .path(path)
                .cache_capacity(cache_bytes)
                .flush_every_ms(Some(1000))
        };
        let db = match super::open_sled(&config()) {
            Ok(db) => db,
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "index store unreadable; rebuilding it from the log");
                std::fs::remove_dir_all(path)
                    .map_err(|e| LedgerError::io(format!("removing broken index store {}", path.display()), e))?;
                super::open_sled(&config()).map_err(store_err)?
            }
        };
        Ok(SledStore { db })
    }
}

impl SledStore {
    /// The chunk under `key` in `chunks`, loaded from sled (at `sled_key`)
    /// the first time a batch touches it.
    fn chunk<'a, K: std::hash::Hash + Eq>(
        &self,
        chunks: &'a mut HashMap<K, Vec<u8>>,
        key: K,
        sled_key: impl FnOnce() -> Vec<u8>,
    ) -> Result<&'a mut Vec<u8>> {
        Ok(match chunks.entry(key) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let existing = self.db.get(sled_key()).map_err(store_err)?;
                entry.insert(existing.map(|v| v.to_vec()).unwrap_or_default())
            }
        })
    }
}

impl Store for SledStore {
    fn log_len(&self) -> Result<u64> {
        match self.db.get(META_LOG_LEN).map_err(store_err)? {
            Some(v) => be_u64(&v),
            None => Ok(0),
        }
    }

    fn identity(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(META_IDENTITY).map_err(store_err)?.map(|v| v.to_vec()))
    }

    fn set_identity(&self, identity: &[u8]) -> Result<()> {
        self.db.insert(META_IDENTITY, identity).map_err(store_err)?;
        Ok(())
    }

    fn stream_head(&self, stream: &str) -> Result<Option<(u64, u64)>> {
        let prefix = stream_prefix(stream);
        match self.db.scan_prefix(&prefix).next_back() {
            None => Ok(None),
            Some(entry) => {
                let (key, value) = entry.map_err(store_err)?;
                Ok(stream_entries(prefix.len(), &key, &value)?.last())
            }
        }
    }

    fn stream_range(&self, stream: &str, from_version: u64, limit: usize) -> Result<Vec<(u64, u64)>> {
        let prefix = stream_prefix(stream);
        let start = stream_key(stream, from_version / VERSIONS_PER_CHUNK);
        let end = stream_key(stream, u64::MAX);
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for entry in self.db.range(start..=end) {
            let (key, value) = entry.map_err(store_err)?;
            for (version, seq) in stream_entries(prefix.len(), &key, &value)? {
                if version < from_version {
                    continue;
                }
                out.push((version, seq));
                if out.len() == limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    fn node(&self, level: u32, index: u64) -> Result<Option<Hash>> {
        let Some(chunk) = self
            .db
            .get(node_key(level, index / NODES_PER_CHUNK))
            .map_err(store_err)?
        else {
            return Ok(None);
        };
        let start = ((index % NODES_PER_CHUNK) * 32) as usize;
        Ok(chunk.get(start..start + 32).and_then(|s| s.try_into().ok()))
    }

    fn node_run(&self, level: u32, first: u64, count: usize) -> Result<Vec<Hash>> {
        let mut run = Vec::with_capacity(count);
        let mut next = first;
        while run.len() < count {
            let Some(chunk) = self
                .db
                .get(node_key(level, next / NODES_PER_CHUNK))
                .map_err(store_err)?
            else {
                break;
            };
            let from = ((next % NODES_PER_CHUNK) * 32) as usize;
            let before = run.len();
            for hash in chunk
                .get(from..)
                .unwrap_or_default()
                .chunks_exact(32)
                .take(count - before)
            {
                let mut node = [0u8; 32];
                node.copy_from_slice(hash);
                run.push(node);
            }
            // A chunk that is not full ends the run.
            if (run.len() - before) as u64 != NODES_PER_CHUNK - next % NODES_PER_CHUNK {
                break;
            }
            next += (run.len() - before) as u64;
        }
        Ok(run)
    }

    fn apply(&self, batch: &IndexBatch) -> Result<()> {
        let mut sled_batch = sled::Batch::default();
        // Both kinds of entries arrive in order (stream versions per stream,
        // tree nodes per level, left to right): append each to its chunk,
        // reading a chunk from sled at most once per batch.
        let mut streams: HashMap<(&str, u64), Vec<u8>> = HashMap::new();
        for event in &batch.events {
            let chunk_idx = event.stream_version / VERSIONS_PER_CHUNK;
            let chunk = self.chunk(&mut streams, (event.stream.as_str(), chunk_idx), || {
                stream_key(&event.stream, chunk_idx)
            })?;
            let slot = (event.stream_version % VERSIONS_PER_CHUNK) as usize * SEQ_LEN;
            if chunk.len() != slot {
                return Err(LedgerError::Store(format!(
                    "stream {:?} version {} arrives out of order: its chunk holds {} bytes",
                    event.stream,
                    event.stream_version,
                    chunk.len()
                )));
            }
            chunk.extend_from_slice(&event.seq.to_be_bytes());
        }
        let mut nodes: HashMap<(u32, u64), Vec<u8>> = HashMap::new();
        for node in batch.nodes.iter().filter(|node| !DERIVED_LEVELS.contains(&node.level)) {
            let chunk_idx = node.index / NODES_PER_CHUNK;
            let chunk = self.chunk(&mut nodes, (node.level, chunk_idx), || {
                node_key(node.level, chunk_idx).to_vec()
            })?;
            let slot = ((node.index % NODES_PER_CHUNK) * 32) as usize;
            if chunk.len() != slot {
                return Err(LedgerError::Store(format!(
                    "tree node ({}, {}) arrives out of order: its chunk holds {} bytes",
                    node.level,
                    node.index,
                    chunk.len()
                )));
            }
            chunk.extend_from_slice(&node.hash);
        }
        for ((stream, chunk_idx), bytes) in streams {
            sled_batch.insert(stream_key(stream, chunk_idx), bytes);
        }
        for ((level, chunk_idx), bytes) in nodes {
            sled_batch.insert(&node_key(level, chunk_idx)[..], bytes);
        }
        sled_batch.insert(META_LOG_LEN, &batch.log_len_after.to_be_bytes()[..]);
        self.db.apply_batch(sled_batch).map_err(store_err)
    }

    fn clear(&self) -> Result<()> {
        self.db.clear().map_err(store_err)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(store_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{IndexedEvent, TreeNode};

    #[test]
    fn apply_and_query() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| LedgerError::io("tempdir", e))?;
        let store = SledStore::open(dir.path())?;
        assert_eq!(store.log_len()?, 0);
        let events = (0..3)
            .map(|seq| IndexedEvent {
                stream: if seq == 1 { "b".into() } else { "a".into() },
                stream_version: if seq == 2 { 1 } else { 0 },
                seq,
            })
            .collect();
        let nodes = (0..70)
            .map(|index| TreeNode {
                level: 0,
                index,
                hash: [index as u8; 32],
            })
            .collect();
        store.apply(&IndexBatch {
            log_len_after: 3,
            events,
            nodes,
        })?;
        assert_eq!(store.log_len()?, 3);
        assert_eq!(store.stream_head("a")?, Some((1, 2)));
        assert_eq!(store.stream_head("b")?, Some((0, 1)));
        assert_eq!(store.stream_head("ab")?, None);
        assert_eq!(store.stream_range("a", 1, 10)?, vec![(1, 2)]);
        assert_eq!(store.node(0, 69)?, Some([69; 32]));
        assert_eq!(store.node(0, 70)?, None);
        let gap = IndexBatch {
            log_len_after: 4,
            events: vec![],
            nodes: vec![TreeNode {
                level: 0,
                index: 72,
                hash: [0; 32],
            }],
        };
        assert!(matches!(store.apply(&gap), Err(LedgerError::Store(_))));
        assert_eq!(store.log_len()?, 3, "a rejected batch changes nothing");
        Ok(())
    }

    #[test]
    fn derived_levels_are_not_stored_and_runs_stop_at_the_first_gap() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| LedgerError::io("tempdir", e))?;
        let store = SledStore::open(dir.path())?;
        let node = |level: u32, index: u64| TreeNode {
            level,
            index,
            hash: [(level * 100 + index as u32) as u8; 32],
        };
        let mut nodes: Vec<TreeNode> = (0..150).map(|i| node(0, i)).collect();
        nodes.extend((0..75).map(|i| node(1, i)));
        nodes.extend((0..5).map(|i| node(5, i)));
        nodes.extend((0..2).map(|i| node(6, i)));
        store.apply(&IndexBatch {
            log_len_after: 150,
            events: vec![],
            nodes,
        })?;
        assert_eq!(store.node(1, 0)?, None, "level 1 is derived, not stored");
        assert_eq!(store.node(5, 0)?, None, "level 5 is derived, not stored");
        assert_eq!(store.node(6, 1)?, Some(node(6, 1).hash));
        // Runs cross chunks of 64 and stop where the level ends.
        let run = store.node_run(0, 60, 64)?;
        assert_eq!(run, (60..124).map(|i| node(0, i).hash).collect::<Vec<_>>());
        let tail = store.node_run(0, 128, 64)?;
        assert_eq!(tail, (128..150).map(|i| node(0, i).hash).collect::<Vec<_>>());
        assert!(store.node_run(0, 150, 64)?.is_empty());
        assert_eq!(store.node_run(0, 10, 3)?.len(), 3);
        Ok(())
    }

    #[test]
    fn stream_chunks_span_batches_and_chunk_boundaries() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| LedgerError::io("tempdir", e))?;
        let store = SledStore::open(dir.path())?;
        // Stream "a" gets every other seq, "b" the rest: 150 versions each,
        // applied in batches of 7 records, so chunks fill across batches.
        let mut seq = 0u64;
        let mut versions = [0u64; 2];
        while seq < 300 {
            let mut batch = IndexBatch::default();
            for _ in 0..7 {
                if seq == 300 {
                    break;
                }
                let which = (seq % 2) as usize;
                batch.events.push(IndexedEvent {
                    stream: ["a", "b"][which].to_string(),
                    stream_version: versions[which],
                    seq,
                });
                versions[which] += 1;
                seq += 1;
            }
            batch.log_len_after = seq;
            store.apply(&batch)?;
        }
        assert_eq!(store.stream_head("a")?, Some((149, 298)));
        assert_eq!(store.stream_head("b")?, Some((149, 299)));
        let all = store.stream_range("a", 0, 1000)?;
        assert_eq!(all, (0..150).map(|v| (v, 2 * v)).collect::<Vec<_>>());
        assert_eq!(store.stream_range("b", 63, 3)?, vec![(63, 127), (64, 129), (65, 131)]);
        assert_eq!(store.stream_range("b", 149, 10)?, vec![(149, 299)]);
        assert_eq!(store.stream_range("b", 150, 10)?, vec![]);
        assert_eq!(store.stream_range("a", 5, 0)?, vec![]);
        // A version that skips ahead is refused, and changes nothing.
        let skip = IndexBatch {
            log_len_after: 301,
            events: vec![IndexedEvent {
                stream: "a".to_string(),
                stream_version: 151,
                seq: 300,
            }],
            nodes: vec![],
        };
        assert!(matches!(store.apply(&skip), Err(LedgerError::Store(_))));
        assert_eq!(store.stream_head("a")?, Some((149, 298)));
        assert_eq!(store.log_len()?, 300);
        Ok(())
    }
}
