//! [`Table`]: a typed, sorted map that remembers which rows changed, so a
//! projection keeps its state as plain Rust values and the engine persists
//! only what changed.
//!
//! Rows are stored under `table name ‖ 0x00 ‖ row key` with the value as
//! JSON. Struct fields serialise in declaration order and maps should be
//! `BTreeMap`s, so the stored bytes (and the state digest over them) are a
//! function of the state alone.
//!
//! A table the engine has attached to its projection's store ([`RowStore`])
//! is a **bounded cache** over it: after a flush the engine evicts the
//! least recently used rows that are stored (never a changed row, never one
//! whose write is still on its way to the store), and a row not resident is
//! read back from the store when asked for. What a table holds therefore
//! does not grow with the log (closed tasks, sealed seq chunks and old
//! metric windows are read once more at most), and what a fold or a query
//! sees is the same whether a row is resident or not. A time-travel fold
//! attaches its tables to a scratch store of its own (see `scratch`). A
//! table without a store (in tests, or one its projection does not list in
//! `cached`) keeps every row.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Fault;
use super::filter::KeyFilter;
use super::pages::{self, Entry, PageError, PagedTree};
use super::scratch::ScratchPages;

/// Entries changed since the last flush: `None` deletes the key.
///
/// Every key and value sits in one buffer, each change naming its ranges
/// in it: a flush of 64 Ki rows allocated a key and a value vector per
/// row here, which the store writer thread then freed (a cross-thread
/// free per allocation, with glibc's arena locks and consolidation on
/// top; BENCHMARKS.md, "Projection replay").
#[derive(Debug, Default)]
pub struct Changes {
    /// The keys and values, back to back.
    bytes: Vec<u8>,
    spans: Vec<Span>,
}

/// Where one change's key and value lie in [`Changes::bytes`]: the key at
/// `start`, its value (if any) right after it.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    key_len: u32,
    /// `None` deletes the key.
    value_len: Option<u32>,
}

impl Changes {
    /// Room for `entries` changes of `bytes` bytes in all, keys and values
    /// together.
    pub fn with_capacity(entries: usize, bytes: usize) -> Changes {
        Changes {
            bytes: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(entries),
        }
    }

    /// Stores `value` under `key`.
    ///
    /// # Panics
    ///
    /// If the key or the value is 4 GiB or longer (a store page records
    /// lengths in 32 bits).
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let (key, value) = (key.as_ref(), value.as_ref());
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(value);
        self.spans.push(Span {
            start,
            key_len: len_u32(key.len()),
            value_len: Some(len_u32(value.len())),
        });
    }

    /// Deletes `key`.
    ///
    /// # Panics
    ///
    /// If the key is 4 GiB or longer.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        let key = key.as_ref();
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        self.spans.push(Span {
            start,
            key_len: len_u32(key.len()),
            value_len: None,
        });
    }

    /// Stores under `key_parts` (concatenated) the value `write` appends to
    /// the buffer it is given, without a vector of its own for either.
    /// Returns the value's length; if `write` fails nothing is added.
    pub(crate) fn put_with<E>(
        &mut self,
        key_parts: &[&[u8]],
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let start = self.bytes.len();
        for part in key_parts {
            self.bytes.extend_from_slice(part);
        }
        let key_len = self.bytes.len() - start;
        if let Err(err) = write(&mut self.bytes) {
            self.bytes.truncate(start);
            return Err(err);
        }
        let value_len = self.bytes.len() - start - key_len;
        self.spans.push(Span {
            start,
            key_len: len_u32(key_len),
            value_len: Some(len_u32(value_len)),
        });
        Ok(value_len)
    }

    /// Deletes the key `key_parts` concatenated.
    pub(crate) fn delete_parts(&mut self, key_parts: &[&[u8]]) {
        let start = self.bytes.len();
        for part in key_parts {
            self.bytes.extend_from_slice(part);
        }
        self.spans.push(Span {
            start,
            key_len: len_u32(self.bytes.len() - start),
            value_len: None,
        });
    }

    /// Reserves room for `entries` more changes.
    pub(crate) fn reserve(&mut self, entries: usize) {
        self.spans.reserve(entries);
    }

    /// How many entries changed.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// How many bytes the keys and values take together.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The changes in the order they were made, as (key, value or `None`
    /// for a deletion).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], Option<&[u8]>)> + '_ {
        self.spans.iter().map(|span| {
            let key_end = span.start + span.key_len as usize;
            let value = span.value_len.map(|len| &self.bytes[key_end..key_end + len as usize]);
            (&self.bytes[span.start..key_end], value)
        })
    }

    /// The changes as owned pairs, in the order they were made.
    pub fn entries(&self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        self.iter()
            .map(|(key, value)| (key.to_vec(), value.map(<[u8]>::to_vec)))
            .collect()
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(K, Option<V>)> for Changes {
    fn from_iter<I: IntoIterator<Item = (K, Option<V>)>>(iter: I) -> Changes {
        let mut changes = Changes::default();
        for (key, value) in iter {
            match value {
                Some(value) => changes.put(key, value),
                None => changes.delete(key),
            }
        }
        changes
    }
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).expect("a projection key or value is under 4 GiB")
}

/// A projection's stored state, as tables read evicted rows back from it.
/// Only the engine makes one (see [`Cached::attach`]).
#[derive(Clone, Debug)]
pub struct RowStore {
    backing: Backing,
}

#[derive(Clone, Debug)]
enum Backing {
    /// A generation of the projection store.
    Tree(Arc<PagedTree>),
    /// A time-travel fold's own store (see `scratch`).
    Scratch(Arc<ScratchPages>),
}

impl RowStore {
    pub(crate) fn new(tree: Arc<PagedTree>) -> RowStore {
        RowStore {
            backing: Backing::Tree(tree),
        }
    }

    pub(crate) fn scratch(pages: Arc<ScratchPages>) -> RowStore {
        RowStore {
            backing: Backing::Scratch(pages),
        }
    }

    /// The stored value of logical entry `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, PageError> {
        match &self.backing {
            Backing::Tree(tree) => tree.get(key),
            Backing::Scratch(pages) => pages.get(key),
        }
    }

    /// At most `limit` stored entries under `prefix` from `from` on.
    pub(crate) fn scan(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<Vec<Entry>, PageError> {
        match &self.backing {
            Backing::Tree(tree) => tree.scan(prefix, from, limit),
            Backing::Scratch(pages) => pages.scan(prefix, from, limit),
        }
    }

    /// The keys alone of what [`RowStore::scan`] would return.
    pub(crate) fn scan_keys(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, PageError> {
        match &self.backing {
            Backing::Tree(tree) => tree.scan_keys(prefix, from, limit),
            Backing::Scratch(pages) => pages.scan_keys(prefix, from, limit),
        }
    }

    /// Stores `changes` (no engine keys).
    pub(crate) fn apply(&self, changes: &Changes) -> Result<(), PageError> {
        match &self.backing {
            Backing::Tree(tree) => tree.apply(changes, Vec::new()),
            Backing::Scratch(pages) => pages.apply(changes),
        }
    }

    /// Calls `each(key, value)` for every stored entry in key order
    /// (engine keys included).
    pub(crate) fn for_each(&self, each: impl FnMut(&[u8], &[u8]) -> Result<(), PageError>) -> Result<(), PageError> {
        match &self.backing {
            Backing::Tree(tree) => pages::read_all(tree.tree(), each).map(|_| ()),
            Backing::Scratch(pages) => pages.for_each(each),
        }
    }
}

/// What the engine needs of a table to bound a projection's memory: a
/// projection lists its tables in [`Projection::cached`](super::Projection::cached).
pub trait Cached {
    /// Backs the table with `store`: the rows it evicts are read from
    /// there. Called before the stored rows are restored.
    fn attach(&mut self, store: &RowStore);

    /// The store [`Cached::attach`] backed the table with, if any: a
    /// scratch state's digest reads the rows its fold flushed from there
    /// (see `engine::scratch_digest`).
    fn store(&self) -> Option<&RowStore>;

    /// Approximate bytes of the resident rows (their stored size plus a
    /// fixed overhead per row).
    fn resident_bytes(&self) -> usize;

    /// Evicts the least recently used stored rows until about `target`
    /// bytes stay resident. Only called when every batch taken from the
    /// table so far has been applied to the store.
    fn evict_to(&mut self, target: usize);
}

/// Bytes counted per resident row beside its key and stored value: the
/// map node, the row's bookkeeping and the value's own allocations.
const ROW_OVERHEAD: usize = 96;

/// A named table of rows keyed by string, tracking changed rows.
///
/// A row carries its own changed flag, so marking a row changed costs no
/// second lookup (folds touch a few rows per record, and a sorted set of
/// changed keys beside the rows doubled every lookup); the keys changed
/// since the last flush are listed once each, plus the removed ones.
#[derive(Debug)]
pub struct Table<V> {
    name: &'static str,
    rows: Rows<V>,
    /// Keys of rows marked changed and of removed rows since the last
    /// flush, unsorted; a key may repeat (removed, then inserted again).
    changed: Vec<String>,
    /// Where evicted rows are read back from; `None`: every row is resident.
    store: Option<RowStore>,
    /// Whether every stored row is resident (nothing evicted or skipped at
    /// restore): a row that is not resident then does not exist, and no
    /// lookup goes to the store.
    complete: bool,
    /// Sum of the resident rows' `bytes`.
    resident_bytes: usize,
    /// The keys that may be stored (kept with a store only): a key it has
    /// never seen is not looked up.
    stored_keys: KeyFilter,
    /// Bumped by every eviction; rows remember the epoch they were last
    /// used in, the least recently used go first.
    epoch: u32,
    /// The first store read that failed, reported by the next
    /// `take_changes`: a fold that could not read a row must not have its
    /// state persisted as if it had.
    failed: Mutex<Option<String>>,
}

#[derive(Debug)]
struct Row<V> {
    /// `None`: removed, kept (with a store only) until the deletion is
    /// stored so the stored row is not read back.
    value: Option<V>,
    changed: bool,
    /// What the row counts in `resident_bytes`.
    bytes: usize,
    /// The epoch the row was last used in.
    touched: AtomicU32,
}

impl<V: Clone> Clone for Row<V> {
    fn clone(&self) -> Self {
        Row {
            value: self.value.clone(),
            changed: self.changed,
            bytes: self.bytes,
            touched: AtomicU32::new(self.touched.load(Ordering::Relaxed)),
        }
    }
}

impl<V: Clone> Clone for Table<V> {
    fn clone(&self) -> Self {
        Table {
            name: self.name,
            rows: self.rows.clone(),
            changed: self.changed.clone(),
            store: self.store.clone(),
            complete: self.complete,
            resident_bytes: self.resident_bytes,
            stored_keys: self.stored_keys.clone(),
            epoch: self.epoch,
            failed: Mutex::new(self.failed.lock().ok().and_then(|f| f.clone())),
        }
    }
}

impl<V: Serialize + DeserializeOwned + Clone> Table<V> {
    /// An empty table. `name` must not contain a NUL byte and must be unique
    /// within its projection.
    pub fn new(name: &'static str) -> Table<V> {
        Table {
            name,
            rows: Rows::default(),
            changed: Vec::new(),
            store: None,
            complete: true,
            resident_bytes: 0,
            stored_keys: KeyFilter::default(),
            epoch: 0,
            failed: Mutex::new(None),
        }
    }

    /// The table's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The row under `key`: borrowed when resident, else read from the
    /// store (and not kept: a read through `&self` does not change the
    /// cache).
    pub fn get(&self, key: &str) -> Option<Cow<'_, V>> {
        match self.rows.get(key) {
            Some(row) => {
                row.touched.store(self.epoch, Ordering::Relaxed);
                row.value.as_ref().map(Cow::Borrowed)
            }
            None => self.fetch(key).map(|(value, _)| Cow::Owned(value)),
        }
    }

    /// The row under `key`, for changing it (marks it changed).
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        // A complete table finds its rows in one search; one whose rows
        // may be in the store checks first (the borrow checker does not
        // let the miss fall through to a read and an insert).
        if !self.complete && !self.rows.contains_key(key) {
            let (value, len) = self.fetch(key)?;
            self.resident(key.to_string(), value, len);
        }
        let row = self.rows.get_mut(key)?;
        let value = row.value.as_mut()?;
        *row.touched.get_mut() = self.epoch;
        if !row.changed {
            row.changed = true;
            self.changed.push(key.to_string());
        }
        Some(value)
    }

    /// The row under `key`, inserting `make()` first if absent (marks it
    /// changed).
    pub fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        // The key is copied only for a new row (`entry` would take an
        // owned key on every call).
        let present = match self.rows.get(key) {
            Some(row) => row.value.is_some(),
            None => match self.fetch(key) {
                Some((value, len)) => {
                    self.resident(key.to_string(), value, len);
                    true
                }
                None => false,
            },
        };
        if !present {
            self.insert(key, make());
        }
        match self.get_mut(key) {
            Some(row) => row,
            None => unreachable!("the row was just inserted"),
        }
    }

    /// Inserts or replaces the row under `key` (without reading the row it
    /// replaces).
    pub fn insert(&mut self, key: impl Into<String>, value: V) {
        let key = key.into();
        if let Some(row) = self.rows.get_mut(&key) {
            row.touched.store(self.epoch, Ordering::Relaxed);
            if !row.changed {
                row.changed = true;
                self.changed.push(key);
            }
            row.value = Some(value);
            return;
        }
        self.changed.push(key.clone());
        let bytes = key.len() + ROW_OVERHEAD;
        self.resident_bytes += bytes;
        self.rows.insert(
            key,
            Row {
                value: Some(value),
                changed: true,
                bytes,
                touched: AtomicU32::new(self.epoch),
            },
        );
    }

    /// Removes the row under `key`, returning it.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        if !self.rows.contains_key(key) {
            let (value, len) = self.fetch(key)?;
            self.resident(key.to_string(), value, len);
        }
        let removed = if self.store.is_some() {
            // Kept as a tombstone: the stored row must not be read back
            // before its deletion is stored.
            let row = self.rows.get_mut(key)?;
            let value = row.value.take()?;
            if !row.changed {
                row.changed = true;
                self.changed.push(key.to_string());
            }
            value
        } else {
            let row = self.rows.remove(key)?;
            self.resident_bytes -= row.bytes;
            if !row.changed {
                self.changed.push(key.to_string());
            }
            row.value?
        };
        Some(removed)
    }

    /// Deletes the row under `key` if there is one, without reading it.
    pub fn delete(&mut self, key: &str) {
        if self.store.is_none() || self.complete || self.rows.contains_key(key) {
            self.remove(key);
            return;
        }
        // Stored or not, a deletion of it is what gets written.
        let bytes = key.len() + ROW_OVERHEAD;
        self.resident_bytes += bytes;
        self.changed.push(key.to_string());
        self.rows.insert(
            key.to_string(),
            Row {
                value: None,
                changed: true,
                bytes,
                touched: AtomicU32::new(self.epoch),
            },
        );
    }

    /// Whether a row exists under `key`.
    pub fn contains(&self, key: &str) -> bool {
        match self.rows.get(key) {
            Some(row) => row.value.is_some(),
            None => self.fetch_bytes(key).is_some(),
        }
    }

    /// Rows in key order.
    pub fn iter(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, V>)> {
        self.with_prefix("")
    }

    /// Rows whose key starts with `prefix`, in key order.
    pub fn with_prefix<'a>(&'a self, prefix: &str) -> impl Iterator<Item = (Cow<'a, str>, Cow<'a, V>)> + 'a {
        let owned_prefix = prefix.to_string();
        let resident = self
            .rows
            .range(Bound::Included(prefix))
            .take_while(move |(k, _)| k.starts_with(owned_prefix.as_str()));
        let stored = if self.complete { Vec::new() } else { self.scan(prefix) };
        Merged {
            table: self,
            resident: resident.peekable(),
            stored: stored.into_iter().peekable(),
        }
    }

    /// The first row's key, if any.
    pub fn first_key(&self) -> Option<String> {
        self.next_key(None)
    }

    /// The first row's key after `after` (from the start when `None`).
    pub fn next_key(&self, after: Option<&str>) -> Option<String> {
        self.keys_after(after, 1).pop()
    }

    /// At most `limit` row keys after `after` (from the start when
    /// `None`), in key order, without reading a value.
    ///
    /// A walk in key order that changes rows as it goes (the metrics'
    /// retention deleting expired minutes) asks for many keys at once:
    /// one [`Table::next_key`] per row read a stored page and copied its
    /// values every time.
    pub fn keys_after(&self, after: Option<&str>, limit: usize) -> Vec<String> {
        let mut keys = Vec::new();
        if limit == 0 {
            return keys;
        }
        let lower = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let mut resident = self.rows.range(lower).peekable();
        // The stored keys are read in batches after `cursor` (the key last
        // read, else `after`), growing while removed rows hide them.
        let mut stored = Vec::new().into_iter().peekable();
        let mut stored_done = self.complete || self.store.is_none();
        let mut cursor = after.map(str::to_string);
        let mut batch = limit.saturating_add(1).clamp(16, 4096);
        while keys.len() < limit {
            if stored.peek().is_none() && !stored_done {
                let mut found = self.scan_keys_from(cursor.as_deref().unwrap_or(""), batch);
                stored_done = found.len() < batch;
                batch = (batch * 4).min(4096);
                // The scan starts at the cursor itself.
                if let Some(cursor) = &cursor {
                    found.retain(|key| key > cursor);
                }
                if let Some(last) = found.last() {
                    cursor = Some(last.clone());
                }
                stored = found.into_iter().peekable();
                continue;
            }
            let order = match (resident.peek(), stored.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((resident, _)), Some(stored)) => (*resident).cmp(stored.as_str()),
            };
            if order == std::cmp::Ordering::Equal {
                // The resident row (or its removal) is the newer.
                stored.next();
            }
            if order == std::cmp::Ordering::Greater {
                keys.extend(stored.next());
            } else if let Some((key, row)) = resident.next()
                && row.value.is_some()
            {
                keys.push(key.to_string());
            }
        }
        keys
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        if self.complete {
            self.rows.values().filter(|row| row.value.is_some()).count()
        } else {
            self.iter().count()
        }
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.first_key().is_none()
    }

    /// Moves the changed rows into `changes`.
    ///
    /// On a fault (a row that does not serialise, or a row that could not
    /// be read from the store) every listed row stays listed, so a later
    /// call writes them.
    pub fn take_changes(&mut self, changes: &mut Changes) -> Result<(), Fault> {
        if let Some(failed) = self.failed.lock().ok().and_then(|mut f| f.take()) {
            return Err(Fault::new(failed));
        }
        let mut keys = std::mem::take(&mut self.changed);
        keys.sort_unstable();
        keys.dedup();
        changes.reserve(keys.len());
        let name = self.name.as_bytes();
        for key in &keys {
            let stored: [&[u8]; 3] = [name, &[0], key.as_bytes()];
            match self.rows.get_mut(key.as_str()) {
                Some(row) => {
                    let Some(value) = &row.value else {
                        row.changed = false;
                        changes.delete_parts(&stored);
                        continue;
                    };
                    // Serialised straight into the flush's buffer.
                    let value_len = match changes.put_with(&stored, |buffer| serde_json::to_writer(buffer, value)) {
                        Ok(len) => len,
                        Err(e) => {
                            self.changed.extend(keys.iter().cloned());
                            return Err(Fault::new(format!(
                                "table {}: row {key:?} does not serialise: {e}",
                                self.name
                            )));
                        }
                    };
                    row.changed = false;
                    if self.store.is_some() {
                        self.stored_keys.insert(key.as_bytes());
                    }
                    let bytes = key.len() + value_len + ROW_OVERHEAD;
                    self.resident_bytes = self.resident_bytes - row.bytes + bytes;
                    row.bytes = bytes;
                }
                None => changes.delete_parts(&stored),
            }
        }
        Ok(())
    }

    /// Restores a stored entry if it belongs to this table: `Ok(true)` when
    /// it did. A table backed by a store keeps nothing: the row is read
    /// from the store when first asked for.
    pub fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<bool, Fault> {
        let Some(row_key) = key
            .strip_prefix(self.name.as_bytes())
            .and_then(|rest| rest.strip_prefix(&[0u8]))
        else {
            return Ok(false);
        };
        if self.store.is_some() {
            self.complete = false;
            self.stored_keys.insert(row_key);
            return Ok(true);
        }
        let row_key = std::str::from_utf8(row_key)
            .map_err(|_| Fault::new(format!("table {}: stored key is not UTF-8", self.name)))?;
        let row = self.parse(row_key, value)?;
        self.resident(row_key.to_string(), row, value.len());
        Ok(true)
    }

    /// Makes a row read from the store resident (clean).
    fn resident(&mut self, key: String, value: V, stored_len: usize) {
        let bytes = key.len() + stored_len + ROW_OVERHEAD;
        self.resident_bytes += bytes;
        let old = self.rows.insert(
            key,
            Row {
                value: Some(value),
                changed: false,
                bytes,
                touched: AtomicU32::new(self.epoch),
            },
        );
        if let Some(old) = old {
            self.resident_bytes -= old.bytes;
        }
    }

    fn parse(&self, row_key: &str, value: &[u8]) -> Result<V, Fault> {
        serde_json::from_slice(value).map_err(|e| {
            Fault::new(format!(
                "table {}: stored row {row_key:?} does not parse: {e}",
                self.name
            ))
        })
    }

    /// A row that is not resident, from the store (when it may hold it).
    fn fetch(&self, key: &str) -> Option<(V, usize)> {
        let bytes = self.fetch_bytes(key)?;
        match self.parse(key, &bytes) {
            Ok(value) => Some((value, bytes.len())),
            Err(fault) => {
                self.fail(fault.0);
                None
            }
        }
    }

    fn fetch_bytes(&self, key: &str) -> Option<Vec<u8>> {
        if self.complete || !self.stored_keys.may_contain(key.as_bytes()) {
            return None;
        }
        let store = self.store.as_ref()?;
        match store.get(&self.stored_key(key)) {
            Ok(found) => found,
            Err(err) => {
                self.fail(format!("table {}: reading row {key:?}: {err}", self.name));
                None
            }
        }
    }

    /// The stored rows under `prefix`, as (row key, stored bytes).
    fn scan(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.scan_from(prefix, prefix, usize::MAX)
    }

    /// At most `limit` stored rows under `prefix` from key `from` on.
    fn scan_from(&self, prefix: &str, from: &str, limit: usize) -> Vec<(String, Vec<u8>)> {
        let Some(store) = &self.store else {
            return Vec::new();
        };
        let head = self.name.len() + 1;
        match store.scan(&self.stored_key(prefix), &self.stored_key(from), limit) {
            Ok(found) => found
                .into_iter()
                .filter_map(|(key, value)| {
                    let key = String::from_utf8(key.get(head..)?.to_vec()).ok()?;
                    Some((key, value))
                })
                .collect(),
            Err(err) => {
                self.fail(format!("table {}: reading rows under {prefix:?}: {err}", self.name));
                Vec::new()
            }
        }
    }

    /// At most `limit` stored row keys from key `from` on.
    fn scan_keys_from(&self, from: &str, limit: usize) -> Vec<String> {
        let Some(store) = &self.store else {
            return Vec::new();
        };
        let head = self.name.len() + 1;
        match store.scan_keys(&self.stored_key(""), &self.stored_key(from), limit) {
            Ok(found) => found
                .into_iter()
                .filter_map(|mut key| {
                    key.drain(..head.min(key.len()));
                    String::from_utf8(key).ok()
                })
                .collect(),
            Err(err) => {
                self.fail(format!("table {}: reading row keys from {from:?}: {err}", self.name));
                Vec::new()
            }
        }
    }

    fn fail(&self, reason: String) {
        tracing::error!(table = self.name, %reason, "projection store read failed");
        if let Ok(mut failed) = self.failed.lock() {
            failed.get_or_insert(reason);
        }
    }

    fn stored_key(&self, key: &str) -> Vec<u8> {
        let mut stored = Vec::with_capacity(self.name.len() + 1 + key.len());
        stored.extend_from_slice(self.name.as_bytes());
        stored.push(0);
        stored.extend_from_slice(key.as_bytes());
        stored
    }
}

impl<V: Serialize + DeserializeOwned + Clone> Cached for Table<V> {
    fn attach(&mut self, store: &RowStore) {
        self.store = Some(store.clone());
    }

    fn store(&self) -> Option<&RowStore> {
        self.store.as_ref()
    }

    fn resident_bytes(&self) -> usize {
        self.resident_bytes + self.stored_keys.bytes()
    }

    fn evict_to(&mut self, target: usize) {
        // The key filter stays: the rows make up the rest.
        let target = target.saturating_sub(self.stored_keys.bytes());
        self.epoch = self.epoch.wrapping_add(1);
        if self.store.is_none() {
            return;
        }
        // Bytes of the evictable rows by age (evictions since last used),
        // so that one more pass evicts the oldest without sorting them.
        let epoch = self.epoch;
        let age = |row: &Row<V>| (epoch.wrapping_sub(row.touched.load(Ordering::Relaxed)) as usize).min(AGES - 1);
        let mut excess = self.resident_bytes.saturating_sub(target);
        let mut by_age = [0usize; AGES];
        if excess > 0 {
            for row in self.rows.values().filter(|row| !row.changed && row.value.is_some()) {
                by_age[age(row)] += row.bytes;
            }
        }
        // Rows of ages above `oldest_kept` go; of that age, until `excess`
        // is freed.
        let mut oldest_kept = AGES;
        let mut freed_above = 0;
        while excess > freed_above && oldest_kept > 0 {
            oldest_kept -= 1;
            freed_above += by_age[oldest_kept];
        }
        excess = excess.saturating_sub(freed_above - by_age.get(oldest_kept).copied().unwrap_or(0));
        let mut complete = self.complete;
        let resident_bytes = &mut self.resident_bytes;
        self.rows.retain(|row| {
            if row.changed {
                return true;
            }
            // A stored deletion needs no tombstone any more.
            let evict = match &row.value {
                None => true,
                Some(_) => {
                    let row_age = age(row);
                    if row_age > oldest_kept || (row_age == oldest_kept && oldest_kept < AGES && excess > 0) {
                        if row_age == oldest_kept {
                            excess = excess.saturating_sub(row.bytes);
                        }
                        complete = false;
                        true
                    } else {
                        false
                    }
                }
            };
            if evict {
                *resident_bytes -= row.bytes;
            }
            !evict
        });
        self.complete = complete;
    }
}

/// Ages [`Cached::evict_to`] tells apart; older rows count as this old.
const AGES: usize = 64;

/// The resident rows: a hash map for the folds' point lookups, beside
/// the sorted set of the same keys for the reads in key order, which is
/// built by the first such read and kept up to date from then on.
///
/// Rows were a `BTreeMap`: at a few hundred thousand resident rows each
/// lookup compared its key with ~20 others sharing long prefixes
/// (`stream/…`), and a lookup that may miss to the store searched twice
/// (the borrow checker does not let a miss fall through to an insert),
/// about 16 % of a 10 M-record catch-up's CPU (BENCHMARKS.md, "Projection
/// replay"). A hash lookup costs one hash and one comparison; the sorted
/// set is only touched when a key comes or goes, which folds do far less
/// often than they change rows. Keys are shared (`Arc<str>`) by both.
///
/// The map hashes with foldhash, seeded at random per map like the
/// standard library's SipHash: SipHash was 4–5 % of a 10 M-record
/// catch-up's CPU on keys of 20–60 bytes, foldhash a fraction of that. Its
/// random seed still keeps a producer from choosing keys that collide.
///
/// The sorted set waits for a read in key order: during a catch-up only
/// the metrics' minute rows are read that way (retention), and keeping
/// the set of every other table, a key inserted when a row comes in and
/// removed when it is evicted, was 4 % of a 10 M-record catch-up's CPU.
struct Rows<V> {
    map: HashMap<Arc<str>, Row<V>, foldhash::fast::RandomState>,
    order: OnceLock<BTreeSet<Arc<str>>>,
}

/// In key order, like the map it replaced: a state's `Debug` output must
/// not depend on the hash map's random order.
impl<V: std::fmt::Debug> std::fmt::Debug for Rows<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.range(Bound::Unbounded)).finish()
    }
}

impl<V> Default for Rows<V> {
    fn default() -> Self {
        Rows {
            map: HashMap::default(),
            order: OnceLock::new(),
        }
    }
}

impl<V: Clone> Clone for Rows<V> {
    fn clone(&self) -> Self {
        Rows {
            map: self.map.clone(),
            order: self.order.clone(),
        }
    }
}

impl<V> Rows<V> {
    fn get(&self, key: &str) -> Option<&Row<V>> {
        self.map.get(key)
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Row<V>> {
        self.map.get_mut(key)
    }

    fn contains_key(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Inserts or replaces the row under `key`, returning the replaced one.
    fn insert(&mut self, key: String, row: Row<V>) -> Option<Row<V>> {
        if let Some(old) = self.map.get_mut(key.as_str()) {
            return Some(std::mem::replace(old, row));
        }
        let key: Arc<str> = Arc::from(key);
        if let Some(order) = self.order.get_mut() {
            order.insert(Arc::clone(&key));
        }
        self.map.insert(key, row)
    }

    fn remove(&mut self, key: &str) -> Option<Row<V>> {
        let row = self.map.remove(key)?;
        if let Some(order) = self.order.get_mut() {
            order.remove(key);
        }
        Some(row)
    }

    fn values(&self) -> impl Iterator<Item = &Row<V>> {
        self.map.values()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Rows from `lower` on, in key order.
    fn range<'a>(&'a self, lower: Bound<&str>) -> impl Iterator<Item = (&'a str, &'a Row<V>)> + 'a {
        self.order
            .get_or_init(|| self.map.keys().cloned().collect())
            .range::<str, _>((lower, Bound::Unbounded))
            .filter_map(|key| self.map.get(&**key).map(|row| (&**key, row)))
    }

    /// Keeps the rows `keep` says to keep.
    fn retain(&mut self, mut keep: impl FnMut(&Row<V>) -> bool) {
        let mut order = self.order.get_mut();
        self.map.retain(|key, row| {
            let kept = keep(row);
            if !kept && let Some(order) = order.as_mut() {
                order.remove(&**key);
            }
            kept
        });
    }
}

/// Resident rows merged with stored ones in key order; a resident row
/// (or tombstone) wins over the stored one.
struct Merged<'a, V, R: Iterator<Item = (&'a str, &'a Row<V>)>> {
    table: &'a Table<V>,
    resident: std::iter::Peekable<R>,
    stored: std::iter::Peekable<std::vec::IntoIter<(String, Vec<u8>)>>,
}

impl<'a, V, R> Iterator for Merged<'a, V, R>
where
    V: Serialize + DeserializeOwned + Clone,
    R: Iterator<Item = (&'a str, &'a Row<V>)>,
{
    type Item = (Cow<'a, str>, Cow<'a, V>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.resident.peek(), self.stored.peek()) {
                (None, None) => return None,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((resident, _)), Some((stored, _))) => (*resident).cmp(stored.as_str()),
            };
            if order == std::cmp::Ordering::Equal {
                // The resident row (or tombstone) is the newer.
                self.stored.next();
            }
            if order != std::cmp::Ordering::Greater {
                let (key, row) = self.resident.next()?;
                if let Some(value) = &row.value {
                    return Some((Cow::Borrowed(key), Cow::Borrowed(value)));
                }
                continue;
            }
            let (key, bytes) = self.stored.next()?;
            match self.table.parse(&key, &bytes) {
                Ok(value) => return Some((Cow::Owned(key), Cow::Owned(value))),
                Err(fault) => self.table.fail(fault.0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    #[test]
    fn rows_read_in_key_order_whatever_the_order_of_changes() {
        // The rows live in a hash map; reads in key order go through the
        // sorted key set, which must follow every insert and removal.
        let mut table: Table<u64> = Table::new("t");
        let mut expected = BTreeMap::new();
        for i in 0..500u64 {
            let key = format!("k{:03}", (i * 7919) % 500);
            table.insert(key.as_str(), i);
            expected.insert(key, i);
        }
        for i in (0..500u64).step_by(3) {
            let key = format!("k{i:03}");
            assert_eq!(table.remove(&key), expected.remove(&key));
        }
        *table.get_or_insert_with("k000", || 0) += 1;
        *expected.entry("k000".to_string()).or_insert(0) += 1;
        let read: Vec<(String, u64)> = table.iter().map(|(k, v)| (k.into_owned(), *v)).collect();
        assert_eq!(read, expected.clone().into_iter().collect::<Vec<_>>());
        let under: Vec<String> = table.with_prefix("k01").map(|(k, _)| k.into_owned()).collect();
        let want: Vec<String> = expected.keys().filter(|k| k.starts_with("k01")).cloned().collect();
        assert_eq!(under, want);
        // `next_key` walks the same order, skipping removed rows.
        let mut walked = Vec::new();
        let mut at = table.first_key();
        while let Some(key) = at {
            at = table.next_key(Some(&key));
            walked.push(key);
        }
        assert_eq!(walked, expected.keys().cloned().collect::<Vec<_>>());
        assert_eq!(table.len(), expected.len());

        // Built by the reads above, the sorted set now follows changes.
        for i in (1..500u64).step_by(5) {
            let key = format!("k{i:03}");
            assert_eq!(table.remove(&key), expected.remove(&key));
        }
        for i in 500..520u64 {
            let key = format!("j{i}");
            table.insert(key.as_str(), i);
            expected.insert(key, i);
        }
        let read: Vec<(String, u64)> = table.iter().map(|(k, v)| (k.into_owned(), *v)).collect();
        assert_eq!(read, expected.clone().into_iter().collect::<Vec<_>>());
        assert_eq!(table.clone().first_key(), expected.keys().next().cloned());
    }

    /// Keys and values share one buffer: each reads back whole, in the
    /// order made, and a value that failed to serialise leaves nothing.
    #[test]
    fn changes_read_back_in_order_from_one_buffer() {
        let mut changes = Changes::default();
        changes.put(b"t\0a", b"1");
        let len = changes
            .put_with(&[b"t", &[0], b"b"], |buffer| serde_json::to_writer(buffer, &[1, 2]))
            .unwrap();
        assert_eq!(len, 5);
        let failed = changes.put_with(&[b"t", &[0], b"c"], |buffer| {
            buffer.extend_from_slice(b"partial");
            Err("no")
        });
        assert_eq!(failed, Err("no"));
        changes.delete_parts(&[b"t", &[0], b"d"]);
        changes.put(b"t\0e", b"");
        changes.delete(b"t\0a");
        assert_eq!(
            changes.entries(),
            vec![
                (b"t\0a".to_vec(), Some(b"1".to_vec())),
                (b"t\0b".to_vec(), Some(b"[1,2]".to_vec())),
                (b"t\0d".to_vec(), None),
                (b"t\0e".to_vec(), Some(Vec::new())),
                (b"t\0a".to_vec(), None),
            ]
        );
        assert_eq!(changes.len(), 5);
        assert_eq!(changes.bytes(), 3 + 1 + 3 + 5 + 3 + 3 + 3);
    }

    #[test]
    fn changed_rows_round_trip_through_restore() {
        let mut table: Table<u64> = Table::new("counts");
        table.insert("a", 1);
        table.insert("b", 2);
        *table.get_or_insert_with("c", || 0) += 3;
        let mut changes = Changes::default();
        table.take_changes(&mut changes).unwrap();
        assert_eq!(changes.len(), 3);

        let mut restored: Table<u64> = Table::new("counts");
        let mut other: Table<u64> = Table::new("other");
        for (key, value) in &changes.entries() {
            let value = value.as_ref().unwrap();
            assert!(!other.restore(key, value).unwrap());
            assert!(restored.restore(key, value).unwrap());
        }
        assert_eq!(
            restored.iter().map(|(k, v)| (k.into_owned(), *v)).collect::<Vec<_>>(),
            [("a".to_string(), 1), ("b".to_string(), 2), ("c".to_string(), 3)]
        );

        // Nothing changed since: nothing to write. A removal is a deletion.
        let mut changes = Changes::default();
        table.take_changes(&mut changes).unwrap();
        assert!(changes.is_empty());
        table.remove("b");
        table.take_changes(&mut changes).unwrap();
        assert_eq!(changes.entries(), vec![(b"counts\0b".to_vec(), None)]);
    }

    #[test]
    fn each_changed_row_is_written_once_with_its_last_state() {
        let mut table: Table<u64> = Table::new("t");
        table.insert("a", 1);
        *table.get_mut("a").unwrap() += 1;
        *table.get_or_insert_with("a", || 0) += 1;
        table.insert("b", 1);
        table.remove("b");
        table.insert("b", 5);
        table.insert("c", 1);
        table.remove("c");
        let mut changes = Changes::default();
        table.take_changes(&mut changes).unwrap();
        assert_eq!(
            changes.entries(),
            vec![
                (b"t\0a".to_vec(), Some(b"3".to_vec())),
                (b"t\0b".to_vec(), Some(b"5".to_vec())),
                (b"t\0c".to_vec(), None),
            ]
        );
        // Reading does not mark a row changed; changing it again does.
        assert_eq!(table.get("a").as_deref(), Some(&3));
        let mut changes = Changes::default();
        table.take_changes(&mut changes).unwrap();
        assert!(changes.is_empty());
        table.insert("a", 4);
        table.take_changes(&mut changes).unwrap();
        assert_eq!(changes.entries(), vec![(b"t\0a".to_vec(), Some(b"4".to_vec()))]);
    }

    #[test]
    fn rows_listed_at_a_serialisation_fault_are_written_by_the_next_flush() {
        // serde_json refuses maps with non-string keys.
        let mut table: Table<BTreeMap<Vec<u8>, u8>> = Table::new("t");
        table.insert("a", BTreeMap::new());
        table.insert("b", BTreeMap::from([(vec![1], 1)]));
        let mut changes = Changes::default();
        assert!(table.take_changes(&mut changes).is_err());
        table.get_mut("b").unwrap().clear();
        let mut changes = Changes::default();
        table.take_changes(&mut changes).unwrap();
        let keys: Vec<&[u8]> = changes.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [&b"t\0a"[..], &b"t\0b"[..]]);
    }

    #[test]
    fn prefix_scan_stays_within_the_prefix() {
        let mut table: Table<u8> = Table::new("t");
        for key in ["ws1/a", "ws1/b", "ws10/a", "ws2/a"] {
            table.insert(key, 0);
        }
        let keys: Vec<_> = table.with_prefix("ws1/").map(|(k, _)| k.into_owned()).collect();
        assert_eq!(keys, ["ws1/a", "ws1/b"]);
    }

    /// A table attached to a store, flushed and evicted down to nothing,
    /// still answers every read, change and scan as one that keeps all.
    #[test]
    fn evicted_rows_are_read_back_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = Arc::new(PagedTree::new(db.open_tree("t").unwrap(), BTreeMap::new()));
        let mut cached: Table<u64> = Table::new("t");
        cached.attach(&RowStore::new(Arc::clone(&tree)));
        let mut plain: Table<u64> = Table::new("t");
        let flush = |table: &mut Table<u64>| {
            let mut changes = Changes::default();
            table.take_changes(&mut changes).unwrap();
            tree.apply(&changes, Vec::new()).unwrap();
            table.evict_to(0);
        };
        for round in 0..5u64 {
            for i in 0..200u64 {
                let key = format!("k{:03}", (i * 7 + round * 13) % 300);
                for table in [&mut cached, &mut plain] {
                    match i % 5 {
                        0 => {
                            table.remove(&key);
                        }
                        1 => table.delete(&key),
                        2 => table.insert(key.clone(), i),
                        _ => *table.get_or_insert_with(&key, || 0) += round,
                    }
                }
            }
            flush(&mut cached);
            assert!(cached.rows.is_empty(), "every clean row was evicted");
            assert!(!cached.complete);
            let all = |t: &Table<u64>| t.iter().map(|(k, v)| (k.into_owned(), *v)).collect::<Vec<_>>();
            assert_eq!(all(&cached), all(&plain), "round {round}");
            let under = |t: &Table<u64>| {
                t.with_prefix("k1")
                    .map(|(k, v)| (k.into_owned(), *v))
                    .collect::<Vec<_>>()
            };
            assert_eq!(under(&cached), under(&plain));
            assert_eq!(cached.first_key(), plain.first_key());
            for n in 0..300 {
                let key = format!("k{n:03}");
                assert_eq!(cached.get(&key).as_deref(), plain.get(&key).as_deref(), "{key}");
                assert_eq!(cached.contains(&key), plain.contains(&key));
                assert_eq!(cached.next_key(Some(&key)), plain.next_key(Some(&key)), "after {key}");
            }
        }
        // Changes made to read-back rows are written like any other.
        let mut changes = Changes::default();
        *cached.get_mut("k000").unwrap_or(&mut 0) += 1;
        cached.take_changes(&mut changes).unwrap();
        assert!(changes.len() <= 1);
    }

    /// What `keys_after(after, limit)` must return for the live keys
    /// `model`, checked over bounds on, between, before and after the
    /// keys, and limits from none to more than there are.
    fn assert_keys_after(table: &Table<String>, model: &BTreeSet<String>, what: &str) {
        let mut bounds: Vec<Option<String>> = vec![None, Some(String::new()), Some("z".to_string())];
        for n in (0..1100).step_by(37) {
            bounds.push(Some(format!("k{n:04}")));
            bounds.push(Some(format!("k{n:04}x")));
        }
        for after in &bounds {
            for limit in [0, 1, 2, 15, 16, 17, 100, 5000, usize::MAX] {
                let want: Vec<String> = model
                    .iter()
                    .filter(|key| after.as_ref().is_none_or(|after| *key > after))
                    .take(limit)
                    .cloned()
                    .collect();
                assert_eq!(
                    table.keys_after(after.as_deref(), limit),
                    want,
                    "{what}: after {after:?}, limit {limit}"
                );
            }
        }
    }

    /// A table backed by a fresh store, and a flush into it.
    fn stored_table(db: &sled::Db) -> (Table<String>, Arc<PagedTree>) {
        let tree = Arc::new(PagedTree::new(db.open_tree("t").unwrap(), BTreeMap::new()));
        let mut table: Table<String> = Table::new("t");
        table.attach(&RowStore::new(Arc::clone(&tree)));
        (table, tree)
    }

    fn flush(table: &mut Table<String>, tree: &PagedTree) {
        let mut changes = Changes::default();
        table.take_changes(&mut changes).unwrap();
        tree.apply(&changes, Vec::new()).unwrap();
    }

    /// Values long enough that the stored rows span many pages.
    fn value(n: usize) -> String {
        format!("{n:0>120}")
    }

    #[test]
    fn keys_after_lists_resident_rows_skipping_removed_ones() {
        let mut table: Table<String> = Table::new("t");
        let mut model = BTreeSet::new();
        for n in (0..1000).rev() {
            table.insert(format!("k{n:04}"), value(n));
            model.insert(format!("k{n:04}"));
        }
        for n in (0..1000).step_by(3) {
            table.remove(&format!("k{n:04}"));
            model.remove(&format!("k{n:04}"));
        }
        table.delete("k0001");
        model.remove("k0001");
        assert!(table.complete);
        assert_keys_after(&table, &model, "resident only");
        assert!(Table::<String>::new("t").keys_after(None, 10).is_empty());
    }

    #[test]
    fn keys_after_reads_stored_keys_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let (mut table, tree) = stored_table(&db);
        let mut model = BTreeSet::new();
        for n in (0..1000).filter(|n| n % 7 != 3) {
            table.insert(format!("k{n:04}"), value(n));
            model.insert(format!("k{n:04}"));
        }
        flush(&mut table, &tree);
        table.evict_to(0);
        assert!(table.rows.is_empty(), "every row is stored only");
        assert!(tree.tree().len() > 10, "the rows span pages");
        assert_keys_after(&table, &model, "stored only");
    }

    /// Resident changes not yet flushed win over the stored rows: a row
    /// deleted or removed since is not listed, a new one is, whether the
    /// deletion is resident or the stored row was never read back.
    #[test]
    fn keys_after_merges_unflushed_changes_over_stored_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let (mut table, tree) = stored_table(&db);
        let mut model = BTreeSet::new();
        for n in (0..1000).step_by(2) {
            table.insert(format!("k{n:04}"), value(n));
            model.insert(format!("k{n:04}"));
        }
        flush(&mut table, &tree);
        table.evict_to(0);
        // New rows between the stored ones.
        for n in (1..1000).step_by(4) {
            table.insert(format!("k{n:04}"), value(n));
            model.insert(format!("k{n:04}"));
        }
        // Stored rows deleted without being read (tombstones over them)...
        for n in (0..1000).step_by(10) {
            table.delete(&format!("k{n:04}"));
            model.remove(&format!("k{n:04}"));
        }
        // ...a long run of them, longer than any one read of stored keys...
        for n in (400..900).step_by(2) {
            table.delete(&format!("k{n:04}"));
            model.remove(&format!("k{n:04}"));
        }
        // ...removed after being read back, or changed in place...
        for n in (6..1000).step_by(12) {
            let key = format!("k{n:04}");
            assert_eq!(table.remove(&key).is_some(), model.remove(&key), "{key}");
        }
        for n in (2..400).step_by(8) {
            if let Some(row) = table.get_mut(&format!("k{n:04}")) {
                row.push('!');
            }
        }
        // ...and deleted, then inserted again.
        table.insert("k0020", value(20));
        model.insert("k0020".to_string());
        assert_eq!(
            table.keys_after(Some("k0398"), 1),
            ["k0401"],
            "the deleted run is skipped"
        );
        assert_keys_after(&table, &model, "unflushed");
        // Flushed, then evicted: the same keys from the store.
        flush(&mut table, &tree);
        assert_keys_after(&table, &model, "flushed");
        table.evict_to(0);
        assert_keys_after(&table, &model, "evicted");
    }

    #[test]
    fn a_corrupt_stored_row_is_a_fault_naming_the_table() {
        let mut table: Table<u64> = Table::new("counts");
        let err = table.restore(b"counts\0a", b"not json").unwrap_err();
        assert!(err.0.contains("counts"), "{err}");
    }
}
