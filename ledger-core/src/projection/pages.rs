//! How a generation's entries sit in sled: packed into **pages** of
//! consecutive keys instead of one sled entry per row.
//!
//! sled's cost is per key written (tree descent, node splits, page-cache
//! links): one entry per row capped a catch-up at the rate one core could
//! insert rows, whatever the folds did (BENCHMARKS.md, "Projection
//! replay"). A page holds the entries of a key range, so a flush writes one
//! sled entry per page it touches. Rows changed together (the new tasks,
//! incidents and subjects of a round) have neighbouring keys, so a round
//! touches few pages.
//!
//! The logical entries, their order and therefore the state digest are
//! unchanged: pages are storage, unpacked for restore and digest
//! (`docs/FORMAT.md` §9.1).
//!
//! A page's sled key is [`PAGE_PREFIX`] followed by its lower bound: it
//! holds the entries from that bound up to the next page's bound. The
//! first page's bound is the empty key. A page is read, merged with the
//! changes and rewritten by whoever applies a batch (the store writer
//! thread, or a synchronous flush after it), which is the only writer of
//! the tree; a page that grows past [`PAGE_BYTES`] is split, one that
//! empties is removed.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, RwLock};

use super::Changes;

/// First byte of a page's sled key (engine keys start with `0xFF`).
pub(crate) const PAGE_PREFIX: u8 = 0x00;
/// A page is split once its encoded entries exceed this many bytes.
pub(crate) const PAGE_BYTES: usize = 8 * 1024;

/// A logical entry change, borrowed from a [`Changes`]: `None` deletes
/// the key.
type ChangeRef<'a> = (&'a [u8], Option<&'a [u8]>);

/// Lower bound of every page → its encoded length.
pub(crate) type PageIndex = BTreeMap<Vec<u8>, usize>;

/// A logical entry as read back: (key, value).
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

/// A logical entry borrowed from a page or a change: (key, value).
type EntryRef<'a> = (&'a [u8], &'a [u8]);

/// Why a page could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PageError {
    /// sled failed.
    #[error(transparent)]
    Sled(#[from] sled::Error),
    /// A stored page does not decode (a damaged store: rebuilt on open).
    #[error("page {bound:?}: {reason}")]
    Corrupt {
        /// The page's lower bound, lossily as text.
        bound: String,
        /// What is wrong.
        reason: String,
    },
    /// The page index's lock was poisoned by a panic.
    #[error("page index lock poisoned")]
    Poisoned,
    /// A scratch store's file failed (see `scratch`).
    #[error("scratch store: {0}")]
    Io(#[from] std::io::Error),
}

/// One generation's tree with the index of its pages.
///
/// Besides the applier (one at a time, under `applying`), the projection's
/// tables read rows they evicted back through [`PagedTree::get`] and
/// [`PagedTree::scan`]. The index is write-locked only while a batch is
/// applied and the index updated with it, so a reader sees the index and
/// the pages of the same batch: a page split by a batch is never read
/// half-moved.
#[derive(Debug)]
pub(crate) struct PagedTree {
    tree: sled::Tree,
    pages: RwLock<PageIndex>,
    /// Held by the applier from reading the pages it rewrites to updating
    /// the index.
    applying: Mutex<()>,
}

impl PagedTree {
    /// A tree whose pages are `pages` (lower bound → length), as
    /// [`PagedTree::read_all`] listed them.
    pub(crate) fn new(tree: sled::Tree, pages: PageIndex) -> PagedTree {
        PagedTree {
            tree,
            pages: RwLock::new(pages),
            applying: Mutex::new(()),
        }
    }

    /// Replaces the page index (once the pages of a restored tree are
    /// listed).
    pub(crate) fn set_pages(&self, pages: PageIndex) -> Result<(), PageError> {
        *self.pages.write().map_err(|_| PageError::Poisoned)? = pages;
        Ok(())
    }

    /// The stored value of logical entry `key`, as of the last applied
    /// batch.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, PageError> {
        let pages = self.pages.read().map_err(|_| PageError::Poisoned)?;
        get_in(&pages, key, |bound, _| Ok(self.tree.get(page_key(bound))?))
    }

    /// The stored logical entries whose key starts with `prefix` and is
    /// at or after `from`, in key order, as of the last applied batch; at
    /// most `limit` of them.
    pub(crate) fn scan(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<Vec<Entry>, PageError> {
        let pages = self.pages.read().map_err(|_| PageError::Poisoned)?;
        scan_in(&pages, prefix, from, limit, |bound, _| {
            Ok(self.tree.get(page_key(bound))?)
        })
    }

    /// The keys alone of what [`PagedTree::scan`] would return.
    pub(crate) fn scan_keys(&self, prefix: &[u8], from: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, PageError> {
        let pages = self.pages.read().map_err(|_| PageError::Poisoned)?;
        scan_keys_in(&pages, prefix, from, limit, |bound, _| {
            Ok(self.tree.get(page_key(bound))?)
        })
    }

    /// The sled tree (engine keys are read and written directly).
    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// Applies `changes` (logical entries) and `engine` (engine keys,
    /// stored as they are) in one sled batch.
    pub(crate) fn apply(&self, changes: &Changes, engine: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), PageError> {
        let _applying = self.applying.lock().map_err(|_| PageError::Poisoned)?;
        // Only this applier changes the index, so what it reads now stays
        // true until it updates it below. Read under the read lock rather
        // than copied: a copy of a large store's index (one key per page,
        // 60k pages a projection at 10 M records) cost an allocation and
        // a free per page, every round.
        let pages = self.pages.read().map_err(|_| PageError::Poisoned)?;
        let mut batch = sled::Batch::default();
        let mut updates: Vec<(Vec<u8>, Option<usize>)> = Vec::new();
        rewrite(
            &pages,
            changes,
            |bound, _| Ok(self.tree.get(page_key(bound))?),
            |bound, page| {
                match page {
                    Some(encoded) => {
                        updates.push((bound.clone(), Some(encoded.len())));
                        batch.insert(page_key(&bound), encoded);
                    }
                    None => {
                        batch.remove(page_key(&bound));
                        updates.push((bound, None));
                    }
                }
                Ok(())
            },
        )?;
        for (key, value) in engine {
            batch.insert(key, value);
        }
        drop(pages);
        let mut pages = self.pages.write().map_err(|_| PageError::Poisoned)?;
        self.tree.apply_batch(batch)?;
        for (bound, len) in updates {
            match len {
                Some(len) => pages.insert(bound, len),
                None => pages.remove(&bound),
            };
        }
        Ok(())
    }
}

/// The value of logical entry `key` in the pages indexed by `pages` (lower
/// bound → whatever the store keeps of a page), reading a page with
/// `read(bound, what is kept)`.
pub(crate) fn get_in<T, B: AsRef<[u8]>>(
    pages: &BTreeMap<Vec<u8>, T>,
    key: &[u8],
    read: impl FnOnce(&[u8], &T) -> Result<Option<B>, PageError>,
) -> Result<Option<Vec<u8>>, PageError> {
    let Some((bound, kept)) = pages
        .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
        .next_back()
    else {
        return Ok(None);
    };
    let Some(page) = read(bound, kept)? else {
        return Ok(None);
    };
    find(page.as_ref(), key).map_err(|reason| corrupt(bound, reason))
}

/// The logical entries under `prefix` from `from` on, at most `limit`, in
/// the pages indexed by `pages` (see [`get_in`]).
pub(crate) fn scan_in<T, B: AsRef<[u8]>>(
    pages: &BTreeMap<Vec<u8>, T>,
    prefix: &[u8],
    from: &[u8],
    limit: usize,
    read: impl FnMut(&[u8], &T) -> Result<Option<B>, PageError>,
) -> Result<Vec<Entry>, PageError> {
    scan_with(pages, prefix, from, limit, read, |key, value| {
        (key.to_vec(), value.to_vec())
    })
}

/// The keys alone of what [`scan_in`] would return: a walk in key order
/// (the metrics' retention) copies no value.
pub(crate) fn scan_keys_in<T, B: AsRef<[u8]>>(
    pages: &BTreeMap<Vec<u8>, T>,
    prefix: &[u8],
    from: &[u8],
    limit: usize,
    read: impl FnMut(&[u8], &T) -> Result<Option<B>, PageError>,
) -> Result<Vec<Vec<u8>>, PageError> {
    scan_with(pages, prefix, from, limit, read, |key, _| key.to_vec())
}

/// The entries under `prefix` from `from` on, at most `limit`, each as
/// `keep(key, value)` makes it.
fn scan_with<T, B: AsRef<[u8]>, I>(
    pages: &BTreeMap<Vec<u8>, T>,
    prefix: &[u8],
    from: &[u8],
    limit: usize,
    mut read: impl FnMut(&[u8], &T) -> Result<Option<B>, PageError>,
    mut keep: impl FnMut(&[u8], &[u8]) -> I,
) -> Result<Vec<I>, PageError> {
    let from = from.max(prefix);
    let first = pages
        .range::<[u8], _>((Bound::Unbounded, Bound::Included(from)))
        .next_back()
        .map(|(bound, _)| bound.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    for (bound, kept) in pages.range::<[u8], _>((Bound::Included(&first[..]), Bound::Unbounded)) {
        if bound.as_slice() > prefix && !bound.starts_with(prefix) {
            break;
        }
        let Some(page) = read(bound, kept)? else {
            continue;
        };
        for (key, value) in decode(page.as_ref()).map_err(|reason| corrupt(bound, reason))? {
            if key < from {
                continue;
            }
            if !key.starts_with(prefix) {
                return Ok(out);
            }
            out.push(keep(key, value));
            if out.len() >= limit {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// Merges `changes` into the pages indexed by `pages` (see [`get_in`]):
/// every page a change falls in is read, merged, split if it grew past
/// [`PAGE_BYTES`], and handed to `write(bound, Some(encoded page))`, one at
/// a time; a page left empty is `write(bound, None)`. The index itself is
/// the caller's to update, from what `write` was given.
pub(crate) fn rewrite<T, B: AsRef<[u8]>>(
    pages: &BTreeMap<Vec<u8>, T>,
    changes: &Changes,
    mut read: impl FnMut(&[u8], &T) -> Result<Option<B>, PageError>,
    mut write: impl FnMut(Vec<u8>, Option<Vec<u8>>) -> Result<(), PageError>,
) -> Result<(), PageError> {
    let mut changes: Vec<ChangeRef<'_>> = changes.iter().collect();
    // Stable: of two changes to one key, the later wins below.
    changes.sort_by(|a, b| a.0.cmp(b.0));
    let mut i = 0;
    while i < changes.len() {
        let (bound, next) = page_of(pages, changes[i].0);
        let mut j = i + 1;
        while j < changes.len() && next.as_ref().is_none_or(|next| changes[j].0 < &next[..]) {
            j += 1;
        }
        let existing = match pages.get(&bound) {
            Some(kept) => read(&bound, kept)?,
            None => None,
        };
        let old = match &existing {
            Some(bytes) => decode(bytes.as_ref()).map_err(|reason| corrupt(&bound, reason))?,
            None => Vec::new(),
        };
        let merged = merge(&old, &changes[i..j]);
        if merged.is_empty() {
            if existing.is_some() {
                write(bound, None)?;
            }
        } else {
            for (n, piece) in split(&merged).into_iter().enumerate() {
                let piece_bound = if n == 0 { bound.clone() } else { piece[0].0.to_vec() };
                write(piece_bound, Some(encode(piece)))?;
            }
        }
        i = j;
    }
    Ok(())
}

/// The logical entries of one encoded page, in key order.
pub(crate) fn entries_of<'a>(bound: &[u8], page: &'a [u8]) -> Result<Vec<EntryRef<'a>>, PageError> {
    decode(page).map_err(|reason| corrupt(bound, reason))
}

/// Reads every entry of `tree` in key order: logical entries unpacked
/// from their pages, engine keys (`0xFF` prefix) as they are; calls
/// `each(key, value)` for each and returns the page index.
pub(crate) fn read_all(
    tree: &sled::Tree,
    mut each: impl FnMut(&[u8], &[u8]) -> Result<(), PageError>,
) -> Result<PageIndex, PageError> {
    let mut pages = BTreeMap::new();
    for entry in tree.iter() {
        let (key, value) = entry?;
        match key.split_first() {
            Some((&PAGE_PREFIX, bound)) => {
                let entries = decode(&value).map_err(|reason| corrupt(bound, reason))?;
                for (key, value) in entries {
                    each(key, value)?;
                }
                pages.insert(bound.to_vec(), value.len());
            }
            _ => each(&key, &value)?,
        }
    }
    Ok(pages)
}

fn corrupt(bound: &[u8], reason: String) -> PageError {
    PageError::Corrupt {
        bound: String::from_utf8_lossy(bound).into_owned(),
        reason,
    }
}

fn page_key(bound: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + bound.len());
    key.push(PAGE_PREFIX);
    key.extend_from_slice(bound);
    key
}

/// The page `key` belongs in (the last bound at or below it, else the
/// empty bound) and the next page's bound.
fn page_of<T>(pages: &BTreeMap<Vec<u8>, T>, key: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let bound = pages
        .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
        .next_back()
        .map(|(bound, _)| bound.clone())
        .unwrap_or_default();
    let next = pages
        .range::<[u8], _>((Bound::Excluded(&bound[..]), Bound::Unbounded))
        .next()
        .map(|(next, _)| next.clone());
    (bound, next)
}

/// A page's entries in key order: `u32 LE key length ‖ key ‖ u32 LE value
/// length ‖ value`, repeated.
fn encode(entries: &[EntryRef<'_>]) -> Vec<u8> {
    let len = entries.iter().map(|(k, v)| entry_len(k, v)).sum();
    let mut out = Vec::with_capacity(len);
    for (key, value) in entries {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    out
}

fn entry_len(key: &[u8], value: &[u8]) -> usize {
    8 + key.len() + value.len()
}

/// The value of `key` in an encoded page, without decoding the rest.
fn find(mut bytes: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>, String> {
    while !bytes.is_empty() {
        let stored = take(&mut bytes)?;
        let value = take(&mut bytes)?;
        match stored.cmp(key) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => return Ok(Some(value.to_vec())),
            std::cmp::Ordering::Greater => return Ok(None),
        }
    }
    Ok(None)
}

/// Takes one length-prefixed item off the front of `bytes`.
fn take<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let (len, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| "truncated length".to_string())?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(format!("length {len} runs past the page"));
    }
    let (item, rest) = rest.split_at(len);
    *bytes = rest;
    Ok(item)
}

fn decode(mut bytes: &[u8]) -> Result<Vec<EntryRef<'_>>, String> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let key = take(&mut bytes)?;
        let value = take(&mut bytes)?;
        if entries.last().is_some_and(|(last, _): &EntryRef<'_>| *last >= key) {
            return Err("keys out of order".to_string());
        }
        entries.push((key, value));
    }
    Ok(entries)
}

/// `old` (sorted) with `changes` (sorted, later duplicates winning)
/// applied.
fn merge<'a>(old: &[EntryRef<'a>], changes: &[ChangeRef<'a>]) -> Vec<EntryRef<'a>> {
    let mut out = Vec::with_capacity(old.len() + changes.len());
    let mut old = old.iter().peekable();
    let mut changes = changes.iter().peekable();
    loop {
        let take_old = match (old.peek(), changes.peek()) {
            (None, None) => return out,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((old_key, _)), Some((key, _))) => old_key < key,
        };
        if take_old {
            if let Some(&entry) = old.next() {
                out.push(entry);
            }
            continue;
        }
        let Some(&(key, mut value)) = changes.next() else {
            return out;
        };
        while let Some(&&(next_key, next_value)) = changes.peek() {
            if next_key != key {
                break;
            }
            value = next_value;
            changes.next();
        }
        if old.peek().is_some_and(|(old_key, _)| *old_key == key) {
            old.next();
        }
        if let Some(value) = value {
            out.push((key, value));
        }
    }
}

/// Cuts `entries` into pages of at most [`PAGE_BYTES`] (a single larger
/// entry is a page of its own).
fn split<'e, 'a>(entries: &'e [EntryRef<'a>]) -> Vec<&'e [EntryRef<'a>]> {
    let mut pieces = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (key, value)) in entries.iter().enumerate() {
        let len = entry_len(key, value);
        if i > start && bytes + len > PAGE_BYTES {
            pieces.push(&entries[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += len;
    }
    pieces.push(&entries[start..]);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::builtin::metrics::testkit::Xorshift;

    fn below(rng: &mut Xorshift, n: u64) -> u64 {
        rng.next_u64() % n
    }

    fn logical(tree: &PagedTree) -> (BTreeMap<Vec<u8>, Vec<u8>>, PageIndex) {
        let mut entries = BTreeMap::new();
        let mut last: Option<Vec<u8>> = None;
        let pages = read_all(tree.tree(), |key, value| {
            assert!(
                last.as_deref().is_none_or(|last| last < key),
                "entries come in key order"
            );
            last = Some(key.to_vec());
            entries.insert(key.to_vec(), value.to_vec());
            Ok(())
        })
        .unwrap();
        (entries, pages)
    }

    #[test]
    fn pages_hold_exactly_the_applied_entries_through_splits_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = PagedTree::new(db.open_tree("t").unwrap(), BTreeMap::new());
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut rng = Xorshift(7);
        for round in 0..60 {
            let mut changes = Vec::new();
            for _ in 0..(1 + below(&mut rng, 400)) {
                let key = format!("t\0{:05}", below(&mut rng, 3000)).into_bytes();
                let change = if below(&mut rng, 5) == 0 {
                    None
                } else {
                    Some(vec![b'v'; below(&mut rng, 700) as usize])
                };
                changes.push((key, change));
            }
            // The last change to a key wins, as in a batch.
            for (key, change) in &changes {
                match change {
                    Some(value) => model.insert(key.clone(), value.clone()),
                    None => model.remove(key),
                };
            }
            let engine = vec![(b"\xFFapplied".to_vec(), (round as u64).to_be_bytes().to_vec())];
            tree.apply(&changes.iter().cloned().collect(), engine).unwrap();
            let (entries, pages) = logical(&tree);
            let applied = entries.get(&b"\xFFapplied"[..]).cloned();
            let entries: BTreeMap<_, _> = entries.into_iter().filter(|(k, _)| k[0] != 0xFF).collect();
            assert_eq!(entries, model, "round {round}");
            assert_eq!(applied, Some((round as u64).to_be_bytes().to_vec()));
            // The index read back is the one kept while writing.
            assert_eq!(pages, *tree.pages.read().unwrap());
            assert!(pages.values().all(|&len| len <= PAGE_BYTES + 8 + 8 + 700));
        }
        assert!(tree.pages.read().unwrap().len() > 10, "the pages were split");
        // Delete everything: no page is left.
        let all: Changes = model.keys().map(|k| (k, None::<Vec<u8>>)).collect();
        tree.apply(&all, Vec::new()).unwrap();
        assert!(tree.pages.read().unwrap().is_empty());
        assert_eq!(
            tree.tree()
                .iter()
                .filter(|e| e.as_ref().unwrap().0[0] == PAGE_PREFIX)
                .count(),
            0
        );
    }

    /// Rows read back one by one and by prefix are the applied ones,
    /// across page boundaries.
    #[test]
    fn get_and_scan_read_back_the_applied_entries() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = PagedTree::new(db.open_tree("t").unwrap(), BTreeMap::new());
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut rng = Xorshift(11);
        for _ in 0..20 {
            let mut changes = Vec::new();
            for _ in 0..300 {
                let table = if below(&mut rng, 2) == 0 { "a" } else { "b" };
                let key = format!("{table}\0{:04}", below(&mut rng, 2000)).into_bytes();
                let value = (below(&mut rng, 6) != 0).then(|| vec![b'v'; below(&mut rng, 300) as usize]);
                match &value {
                    Some(value) => model.insert(key.clone(), value.clone()),
                    None => model.remove(&key),
                };
                changes.push((key, value));
            }
            tree.apply(&changes.into_iter().collect(), Vec::new()).unwrap();
        }
        assert!(tree.pages.read().unwrap().len() > 10, "the rows span pages");
        for n in 0..2000 {
            for table in ["a", "b"] {
                let key = format!("{table}\0{n:04}").into_bytes();
                assert_eq!(tree.get(&key).unwrap(), model.get(&key).cloned(), "{n}");
            }
        }
        let under = |prefix: &[u8], from: &[u8]| -> Vec<Entry> {
            model
                .iter()
                .filter(|(k, _)| k.starts_with(prefix) && k.as_slice() >= from)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        assert_eq!(tree.scan(b"b\0", b"", usize::MAX).unwrap(), under(b"b\0", b""));
        assert_eq!(tree.scan(b"a\0", b"", usize::MAX).unwrap(), under(b"a\0", b""));
        assert_eq!(
            tree.scan(b"a\0", b"a\x001000", usize::MAX).unwrap(),
            under(b"a\0", b"a\x001000")
        );
        assert_eq!(tree.scan(b"a\x001", b"", usize::MAX).unwrap(), under(b"a\x001", b""));
        let first = tree.scan(b"b\0", b"", 3).unwrap();
        assert_eq!(first, under(b"b\0", b"")[..3]);
        assert!(tree.scan(b"c\0", b"", usize::MAX).unwrap().is_empty());
        // Keys alone: the same keys, from the same bound, to the same limit.
        let keys = |entries: Vec<Entry>| entries.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            tree.scan_keys(b"a\0", b"", usize::MAX).unwrap(),
            keys(under(b"a\0", b""))
        );
        assert_eq!(
            tree.scan_keys(b"b\0", b"b\x000500", 40).unwrap(),
            keys(under(b"b\0", b"b\x000500"))[..40]
        );
        assert!(tree.scan_keys(b"a\0", b"", 0).unwrap().is_empty());
        assert!(tree.scan_keys(b"c\0", b"", usize::MAX).unwrap().is_empty());
    }

    #[test]
    fn a_damaged_page_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        tree.insert(page_key(b""), &[9u8, 0, 0, 0, b'a'][..]).unwrap();
        let err = read_all(&tree, |_, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("runs past the page"), "{err}");
        let paged = PagedTree::new(tree, BTreeMap::from([(Vec::new(), 5)]));
        assert!(
            paged
                .apply(&[(b"k", Some(b"v"))].into_iter().collect(), Vec::new())
                .is_err()
        );
    }
}
