//! A run: an immutable file of `(event id, seq)` entries sorted by id, with
//! its Bloom filter and a sparse index of block fences in memory.
//!
//! ```text
//! entry = id (16 bytes) ‖ seq (u64 little-endian)      24 bytes
//! file  = entry*  sorted by (id, seq)
//! block = 256 consecutive entries (6 KiB); fence = the first id of a block
//! ```
//!
//! A lookup that passes the filter costs one fence search in memory and one
//! positional read of a block, which the page cache usually holds. The files
//! are private scratch: rebuilt from the log at every open (see `index.rs`),
//! never read by anything else, so the layout is not in docs/FORMAT.md.

use std::fs::File;
use std::hash::BuildHasher;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::bloom::Bloom;
use super::{IdKey, KeyedHash};

/// Bytes per entry.
const ENTRY_LEN: usize = 24;
/// Entries per block (one positional read per lookup).
const BLOCK_ENTRIES: usize = 256;
/// Buffer for sequential reads and writes of runs.
const IO_BUFFER: usize = 1 << 20;

/// One run file and what lookups need of it in memory.
#[derive(Debug)]
pub(crate) struct Run {
    path: PathBuf,
    file: File,
    count: usize,
    fences: Vec<[u8; 16]>,
    bloom: Bloom,
}

impl Run {
    /// Entries in the run.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The file (removed once the run is merged away).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of memory the run holds (filter and fences).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.bloom.bytes() + self.fences.len() * 16
    }

    /// The lowest seq recorded for `id` in this run. `hash` is the id's
    /// hash under the index key (computed once per lookup for all runs).
    pub(crate) fn get(&self, hash: u64, id: &[u8; 16]) -> io::Result<Option<u64>> {
        if !self.bloom.may_contain(hash) {
            return Ok(None);
        }
        // The last block starting below `id` holds its first entry, unless
        // the id starts the next block exactly.
        let below = self.fences.partition_point(|fence| fence < id);
        let first = below.saturating_sub(1);
        for block in first..(below + 1).min(self.fences.len()) {
            if let Some(seq) = self.search_block(block, id)? {
                return Ok(Some(seq));
            }
        }
        Ok(None)
    }

    fn search_block(&self, block: usize, id: &[u8; 16]) -> io::Result<Option<u64>> {
        let start = block * BLOCK_ENTRIES;
        let n = BLOCK_ENTRIES.min(self.count - start);
        let mut bytes = vec![0u8; n * ENTRY_LEN];
        self.file.read_exact_at(&mut bytes, (start * ENTRY_LEN) as u64)?;
        let entry_id = |i: usize| -> &[u8] { &bytes[i * ENTRY_LEN..i * ENTRY_LEN + 16] };
        let (mut at, mut end) = (0, n);
        while at < end {
            let mid = (at + end) / 2;
            if entry_id(mid) < id.as_slice() {
                at = mid + 1;
            } else {
                end = mid;
            }
        }
        if at < n && entry_id(at) == id.as_slice() {
            let seq = &bytes[at * ENTRY_LEN + 16..(at + 1) * ENTRY_LEN];
            let seq: [u8; 8] = seq.try_into().map_err(io::Error::other)?;
            return Ok(Some(u64::from_le_bytes(seq)));
        }
        Ok(None)
    }

    /// Writes `entries`, which must be sorted by `(id, seq)`, as a new run.
    pub(crate) fn write(path: PathBuf, entries: &[([u8; 16], u64)], key: &KeyedHash) -> io::Result<Run> {
        let mut writer = RunWriter::create(path, entries.len(), key)?;
        for (id, seq) in entries {
            writer.push(id, *seq)?;
        }
        writer.finish()
    }

    /// Merges two runs into a new one at `path`; on equal ids the lower seq
    /// comes first, so lookups keep finding an id's first record.
    pub(crate) fn merge(older: &Run, newer: &Run, path: PathBuf, key: &KeyedHash) -> io::Result<Run> {
        let mut writer = RunWriter::create(path, older.count + newer.count, key)?;
        let mut a = older.entries()?;
        let mut b = newer.entries()?;
        let mut next_a = a.next_entry()?;
        let mut next_b = b.next_entry()?;
        loop {
            let take_a = match (&next_a, &next_b) {
                (Some(x), Some(y)) => x <= y,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (source, slot) = if take_a {
                (&mut a, &mut next_a)
            } else {
                (&mut b, &mut next_b)
            };
            if let Some((id, seq)) = slot.take() {
                writer.push(&id, seq)?;
            }
            *slot = source.next_entry()?;
        }
        writer.finish()
    }

    fn entries(&self) -> io::Result<Entries> {
        Ok(Entries {
            reader: BufReader::with_capacity(IO_BUFFER, File::open(&self.path)?),
            left: self.count,
        })
    }
}

/// A run's entries in order, read sequentially (for merging).
struct Entries {
    reader: BufReader<File>,
    left: usize,
}

impl Entries {
    fn next_entry(&mut self) -> io::Result<Option<([u8; 16], u64)>> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut entry = [0u8; ENTRY_LEN];
        self.reader.read_exact(&mut entry)?;
        self.left -= 1;
        let mut id = [0u8; 16];
        id.copy_from_slice(&entry[..16]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&entry[16..]);
        Ok(Some((id, u64::from_le_bytes(seq))))
    }
}

/// Writes a run's entries in order, building its filter and fences.
struct RunWriter {
    out: BufWriter<File>,
    path: PathBuf,
    count: usize,
    fences: Vec<[u8; 16]>,
    bloom: Bloom,
    key: KeyedHash,
}

impl RunWriter {
    fn create(path: PathBuf, capacity: usize, key: &KeyedHash) -> io::Result<RunWriter> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(RunWriter {
            out: BufWriter::with_capacity(IO_BUFFER, file),
            path,
            count: 0,
            fences: Vec::with_capacity(capacity.div_ceil(BLOCK_ENTRIES)),
            bloom: Bloom::with_capacity(capacity),
            key: *key,
        })
    }

    fn push(&mut self, id: &[u8; 16], seq: u64) -> io::Result<()> {
        if self.count.is_multiple_of(BLOCK_ENTRIES) {
            self.fences.push(*id);
        }
        self.out.write_all(id)?;
        self.out.write_all(&seq.to_le_bytes())?;
        self.bloom.insert(self.key.hash_one(IdKey(*id)));
        self.count += 1;
        Ok(())
    }

    /// No fsync: a run is rebuilt from the log after any restart.
    fn finish(self) -> io::Result<Run> {
        let file = self.out.into_inner().map_err(io::IntoInnerError::into_error)?;
        Ok(Run {
            path: self.path,
            file,
            count: self.count,
            fences: self.fences,
            bloom: self.bloom,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ids::test_id as id;

    fn sorted(range: std::ops::Range<u64>) -> Vec<([u8; 16], u64)> {
        let mut entries: Vec<_> = range.map(|n| (id(n), n)).collect();
        entries.sort_unstable();
        entries
    }

    fn hash(key: &KeyedHash, id: &[u8; 16]) -> u64 {
        key.hash_one(IdKey(*id))
    }

    #[test]
    fn finds_every_entry_across_blocks_and_nothing_else() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let key = KeyedHash::random();
        let run = Run::write(dir.path().join("a"), &sorted(0..1000), &key)?;
        assert_eq!(run.count(), 1000);
        assert_eq!(std::fs::metadata(run.path())?.len(), 1000 * ENTRY_LEN as u64);
        for n in 0..1000 {
            assert_eq!(run.get(hash(&key, &id(n)), &id(n))?, Some(n), "id {n}");
        }
        for n in 1000..3000 {
            assert_eq!(run.get(hash(&key, &id(n)), &id(n))?, None, "id {n}");
        }
        Ok(())
    }

    #[test]
    fn merge_keeps_everything_in_order_and_the_lower_seq_first() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let key = KeyedHash::random();
        let older = Run::write(dir.path().join("a"), &sorted(0..700), &key)?;
        // The newer run repeats id 5 with a later seq, as a corrupt log might.
        let mut newer_entries = sorted(700..1300);
        newer_entries.push((id(5), 5000));
        newer_entries.sort_unstable();
        let newer = Run::write(dir.path().join("b"), &newer_entries, &key)?;
        let merged = Run::merge(&older, &newer, dir.path().join("c"), &key)?;
        assert_eq!(merged.count(), 1301);
        for n in 0..1300 {
            assert_eq!(merged.get(hash(&key, &id(n)), &id(n))?, Some(n), "id {n}");
        }
        let mut all = Vec::new();
        let mut entries = merged.entries()?;
        while let Some(entry) = entries.next_entry()? {
            all.push(entry);
        }
        assert!(all.windows(2).all(|w| w[0] <= w[1]), "sorted by (id, seq)");
        Ok(())
    }

    #[test]
    fn an_empty_run_finds_nothing() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let key = KeyedHash::random();
        let run = Run::write(dir.path().join("a"), &[], &key)?;
        assert_eq!(run.get(hash(&key, &id(1)), &id(1))?, None);
        Ok(())
    }
}
