//! The sled implementation of [`Store`].
//!
//! One sled tree, key prefixes per index, so one `apply_batch` covers all of
//! them atomically:
//!
//! ```text
//! b"m" ‖ name                      meta: "log_len" (u64 BE), "identity"
//! b"i" ‖ id[16]                    seq u64 BE
//! b"s" ‖ stream ‖ 0x00 ‖ ver u64 BE seq u64 BE   (streams never hold 0x00)
//! b"n" ‖ level u8 ‖ chunk u64 BE   up to 64 node hashes of that level,
//!                                  nodes chunk*64 .. chunk*64+63, packed
//! ```
//!
//! Tree nodes are packed 64 to a value so a group commit of 1024 records
//! writes ~40 keys, not ~2048. sled is beta and has open
//! corruption-after-crash reports: that is why it holds nothing that the
//! segments do not, and why a store that fails to open is wiped and rebuilt.

use std::collections::HashMap;
use std::path::Path;

use ledger_verify::Hash;

use super::{IndexBatch, Store};
use crate::error::{LedgerError, Result};

const NODES_PER_CHUNK: u64 = 64;
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

fn node_key(level: u32, chunk: u64) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[0] = b'n';
    key[1] = level as u8;
    key[2..].copy_from_slice(&chunk.to_be_bytes());
    key
}

impl SledStore {
    /// Opens (or creates) the store at `path`. A store sled cannot open is
    /// deleted and recreated empty: the caller rebuilds it from the log.
    pub fn open(path: &Path) -> Result<SledStore> {
        let config = || {
            sled::Config::new()
                .path(path)
                .cache_capacity(64 * 1024 * 1024)
                .flush_every_ms(Some(1000))
        };
        let db = match config().open() {
            Ok(db) => db,
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "index store unreadable; rebuilding it from the log");
                std::fs::remove_dir_all(path)
                    .map_err(|e| LedgerError::io(format!("removing broken index store {}", path.display()), e))?;
                config().open().map_err(store_err)?
            }
        };
        Ok(SledStore { db })
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

    fn seq_of_event(&self, id: &[u8; 16]) -> Result<Option<u64>> {
        let mut key = [0u8; 17];
        key[0] = b'i';
        key[1..].copy_from_slice(id);
        self.db.get(key).map_err(store_err)?.map(|v| be_u64(&v)).transpose()
    }

    fn stream_head(&self, stream: &str) -> Result<Option<(u64, u64)>> {
        let prefix = stream_prefix(stream);
        match self.db.scan_prefix(&prefix).next_back() {
            None => Ok(None),
            Some(entry) => {
                let (key, value) = entry.map_err(store_err)?;
                Ok(Some((be_u64(&key[prefix.len()..])?, be_u64(&value)?)))
            }
        }
    }

    fn stream_range(&self, stream: &str, from_version: u64, limit: usize) -> Result<Vec<(u64, u64)>> {
        let prefix = stream_prefix(stream);
        let mut start = prefix.clone();
        start.extend_from_slice(&from_version.to_be_bytes());
        let mut end = prefix.clone();
        end.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut out = Vec::new();
        for entry in self.db.range(start..=end).take(limit) {
            let (key, value) = entry.map_err(store_err)?;
            out.push((be_u64(&key[prefix.len()..])?, be_u64(&value)?));
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

    fn apply(&self, batch: &IndexBatch) -> Result<()> {
        let mut sled_batch = sled::Batch::default();
        for event in &batch.events {
            let mut id_key = [0u8; 17];
            id_key[0] = b'i';
            id_key[1..].copy_from_slice(&event.id);
            sled_batch.insert(&id_key[..], &event.seq.to_be_bytes()[..]);
            let mut stream_key = stream_prefix(&event.stream);
            stream_key.extend_from_slice(&event.stream_version.to_be_bytes());
            sled_batch.insert(stream_key, &event.seq.to_be_bytes()[..]);
        }
        // Nodes arrive in completion order, each level left to right: append
        // each to its chunk, reading a chunk from disk at most once.
        let mut chunks: HashMap<(u32, u64), Vec<u8>> = HashMap::new();
        for node in &batch.nodes {
            let chunk_idx = node.index / NODES_PER_CHUNK;
            let chunk = match chunks.entry((node.level, chunk_idx)) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let existing = self.db.get(node_key(node.level, chunk_idx)).map_err(store_err)?;
                    e.insert(existing.map(|v| v.to_vec()).unwrap_or_default())
                }
            };
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
        for ((level, chunk_idx), bytes) in chunks {
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
                id: [seq as u8 + 1; 16],
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
        assert_eq!(store.seq_of_event(&[3; 16])?, Some(2));
        assert_eq!(store.seq_of_event(&[9; 16])?, None);
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
}
