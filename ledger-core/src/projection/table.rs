//! [`Table`]: a typed, sorted map that remembers which rows changed, so a
//! projection keeps its state as plain Rust values and the engine persists
//! only what changed.
//!
//! Rows are stored under `table name ‖ 0x00 ‖ row key` with the value as
//! JSON. Struct fields serialise in declaration order and maps should be
//! `BTreeMap`s, so the stored bytes (and the state digest over them) are a
//! function of the state alone.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Fault;

/// Entries changed since the last flush: `None` deletes the key.
#[derive(Debug, Default)]
pub struct Changes {
    pub(crate) entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Changes {
    /// Stores `value` under `key`.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.entries.push((key, Some(value)));
    }

    /// Deletes `key`.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.entries.push((key, None));
    }

    /// How many entries changed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A named table of rows keyed by string, tracking changed rows.
///
/// A row carries its own changed flag, so marking a row changed costs no
/// second lookup (folds touch a few rows per record, and a sorted set of
/// changed keys beside the rows doubled every lookup); the keys changed
/// since the last flush are listed once each, plus the removed ones.
#[derive(Clone, Debug)]
pub struct Table<V> {
    name: &'static str,
    rows: BTreeMap<String, Row<V>>,
    /// Keys of rows marked changed and of removed rows since the last
    /// flush, unsorted; a key may repeat (removed, then inserted again).
    changed: Vec<String>,
}

#[derive(Clone, Debug)]
struct Row<V> {
    value: V,
    changed: bool,
}

impl<V: Serialize + DeserializeOwned> Table<V> {
    /// An empty table. `name` must not contain a NUL byte and must be unique
    /// within its projection.
    pub fn new(name: &'static str) -> Table<V> {
        Table {
            name,
            rows: BTreeMap::new(),
            changed: Vec::new(),
        }
    }

    /// The table's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The row under `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.rows.get(key).map(|row| &row.value)
    }

    /// The row under `key`, for changing it (marks it changed).
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let row = self.rows.get_mut(key)?;
        if !row.changed {
            row.changed = true;
            self.changed.push(key.to_string());
        }
        Some(&mut row.value)
    }

    /// The row under `key`, inserting `make()` first if absent (marks it
    /// changed).
    pub fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        // The key is copied only for a new row (`entry` would take an
        // owned key on every call).
        if !self.rows.contains_key(key) {
            self.rows.insert(
                key.to_string(),
                Row {
                    value: make(),
                    changed: false,
                },
            );
        }
        match self.get_mut(key) {
            Some(row) => row,
            None => unreachable!("the row was just inserted"),
        }
    }

    /// Inserts or replaces the row under `key`.
    pub fn insert(&mut self, key: impl Into<String>, value: V) -> Option<V> {
        let key = key.into();
        if let Some(row) = self.rows.get_mut(&key) {
            if !row.changed {
                row.changed = true;
                self.changed.push(key);
            }
            return Some(std::mem::replace(&mut row.value, value));
        }
        self.changed.push(key.clone());
        self.rows.insert(key, Row { value, changed: true });
        None
    }

    /// Removes the row under `key`.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let removed = self.rows.remove(key)?;
        if !removed.changed {
            self.changed.push(key.to_string());
        }
        Some(removed.value)
    }

    /// Whether a row exists under `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.rows.contains_key(key)
    }

    /// Rows in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.rows.iter().map(|(key, row)| (key, &row.value))
    }

    /// Rows whose key starts with `prefix`, in key order.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a V)> + 'a {
        self.rows
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(key, row)| (key, &row.value))
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Moves the changed rows into `changes`.
    ///
    /// On a fault (a row that does not serialise) every listed row stays
    /// listed, so a later call writes them.
    pub fn take_changes(&mut self, changes: &mut Changes) -> Result<(), Fault> {
        let mut keys = std::mem::take(&mut self.changed);
        keys.sort_unstable();
        keys.dedup();
        // Rows serialise into one buffer, copied out at their exact size:
        // `to_vec` would grow a fresh vector by doubling for every row.
        let mut buffer = Vec::with_capacity(1024);
        for key in &keys {
            let stored = self.stored_key(key);
            match self.rows.get_mut(key.as_str()) {
                Some(row) => {
                    buffer.clear();
                    let value = match serde_json::to_writer(&mut buffer, &row.value) {
                        Ok(()) => buffer.as_slice().to_vec(),
                        Err(e) => {
                            self.changed.extend(keys.iter().cloned());
                            return Err(Fault::new(format!(
                                "table {}: row {key:?} does not serialise: {e}",
                                self.name
                            )));
                        }
                    };
                    row.changed = false;
                    changes.put(stored, value);
                }
                None => changes.delete(stored),
            }
        }
        Ok(())
    }

    /// Restores a stored entry if it belongs to this table: `Ok(true)` when
    /// it did.
    pub fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<bool, Fault> {
        let Some(row_key) = key
            .strip_prefix(self.name.as_bytes())
            .and_then(|rest| rest.strip_prefix(&[0u8]))
        else {
            return Ok(false);
        };
        let row_key = std::str::from_utf8(row_key)
            .map_err(|_| Fault::new(format!("table {}: stored key is not UTF-8", self.name)))?;
        let row = serde_json::from_slice(value).map_err(|e| {
            Fault::new(format!(
                "table {}: stored row {row_key:?} does not parse: {e}",
                self.name
            ))
        })?;
        self.rows.insert(
            row_key.to_string(),
            Row {
                value: row,
                changed: false,
            },
        );
        Ok(true)
    }

    fn stored_key(&self, key: &str) -> Vec<u8> {
        let mut stored = Vec::with_capacity(self.name.len() + 1 + key.len());
        stored.extend_from_slice(self.name.as_bytes());
        stored.push(0);
        stored.extend_from_slice(key.as_bytes());
        stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for (key, value) in &changes.entries {
            let value = value.as_ref().unwrap();
            assert!(!other.restore(key, value).unwrap());
            assert!(restored.restore(key, value).unwrap());
        }
        assert_eq!(
            restored.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(),
            [("a", 1), ("b", 2), ("c", 3)]
        );

        // Nothing changed since: nothing to write. A removal is a deletion.
        let mut changes = Changes::default();
        table.take_changes(&mut changes).unwrap();
        assert!(changes.is_empty());
        table.remove("b");
        table.take_changes(&mut changes).unwrap();
        assert_eq!(changes.entries, vec![(b"counts\0b".to_vec(), None)]);
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
            changes.entries,
            vec![
                (b"t\0a".to_vec(), Some(b"3".to_vec())),
                (b"t\0b".to_vec(), Some(b"5".to_vec())),
                (b"t\0c".to_vec(), None),
            ]
        );
        // Reading does not mark a row changed; changing it again does.
        assert_eq!(table.get("a"), Some(&3));
        let mut changes = Changes::default();
        table.take_changes(&mut changes).unwrap();
        assert!(changes.is_empty());
        table.insert("a", 4);
        table.take_changes(&mut changes).unwrap();
        assert_eq!(changes.entries, vec![(b"t\0a".to_vec(), Some(b"4".to_vec()))]);
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
        let keys: Vec<&[u8]> = changes.entries.iter().map(|(k, _)| &k[..]).collect();
        assert_eq!(keys, [&b"t\0a"[..], &b"t\0b"[..]]);
    }

    #[test]
    fn prefix_scan_stays_within_the_prefix() {
        let mut table: Table<u8> = Table::new("t");
        for key in ["ws1/a", "ws1/b", "ws10/a", "ws2/a"] {
            table.insert(key, 0);
        }
        let keys: Vec<_> = table.with_prefix("ws1/").map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["ws1/a", "ws1/b"]);
    }

    #[test]
    fn a_corrupt_stored_row_is_a_fault_naming_the_table() {
        let mut table: Table<u64> = Table::new("counts");
        let err = table.restore(b"counts\0a", b"not json").unwrap_err();
        assert!(err.0.contains("counts"), "{err}");
    }
}
