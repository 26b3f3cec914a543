//! The event-id index (`index.rs`: an in-memory table of recent ids and
//! sorted run files, rebuilt from the log at every open) and the keyed
//! hash map it and the writer use for ids and stream names.
//!
//! Memory: an [`IdMap`] entry is a 16-byte id and a u64 seq (24 bytes) plus
//! one control byte, at most 7/8 full: 28–57 bytes per id. That is why only
//! the index's memtable is an `IdMap`; ids in runs cost ~1.3 bytes each.

mod bloom;
mod index;
mod run;

pub(crate) use index::DEFAULT_MEMTABLE_IDS;
pub use index::IdIndexStats;
pub(crate) use index::{IdIndex, IdReader};

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

/// A map keyed by event id, hashed with [`KeyedHash`].
#[derive(Clone)]
pub(crate) struct IdMap<V> {
    map: HashMap<IdKey, V, KeyedHash>,
}

/// Only the size: the ledger's `Debug` output must not list every id.
impl<V> std::fmt::Debug for IdMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdMap").field("len", &self.map.len()).finish()
    }
}

impl<V: Copy> IdMap<V> {
    /// An empty map with a fresh random hash key.
    pub(crate) fn new() -> IdMap<V> {
        IdMap::with_capacity(0)
    }

    /// An empty map with room for `capacity` ids.
    pub(crate) fn with_capacity(capacity: usize) -> IdMap<V> {
        IdMap {
            map: HashMap::with_capacity_and_hasher(capacity, KeyedHash::random()),
        }
    }

    /// The value of `id`, if present.
    pub(crate) fn get(&self, id: &[u8; 16]) -> Option<V> {
        self.map.get(&IdKey(*id)).copied()
    }

    /// Sets `id` to `value`, returning the previous value.
    pub(crate) fn insert(&mut self, id: [u8; 16], value: V) -> Option<V> {
        self.map.insert(IdKey(id), value)
    }

    /// Sets `id` to `value` unless it is already present; returns the value
    /// it already had. The first record of an id is its original.
    pub(crate) fn insert_first(&mut self, id: [u8; 16], value: V) -> Option<V> {
        match self.map.entry(IdKey(id)) {
            std::collections::hash_map::Entry::Occupied(entry) => Some(*entry.get()),
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(value);
                None
            }
        }
    }

    /// Makes room for `additional` more ids, so a group's inserts do not
    /// rehash part-way.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.map.reserve(additional);
    }

    /// Number of ids.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Ids it holds without growing.
    pub(crate) fn capacity(&self) -> usize {
        self.map.capacity()
    }

    /// Every `(id, value)`, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = ([u8; 16], V)> + '_ {
        self.map.iter().map(|(key, value)| (key.0, *value))
    }

    /// Removes every id, keeping the allocation (for per-group reuse).
    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }
}

impl<V: Copy> Default for IdMap<V> {
    fn default() -> IdMap<V> {
        IdMap::new()
    }
}

/// An event id as a map key: hashes as one `u128`, so the hasher sees the
/// 16 bytes in a single call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IdKey(pub(crate) [u8; 16]);

impl Hash for IdKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_le_bytes(self.0));
    }
}

/// The per-map random key of [`KeyedHasher`].
///
/// Why not SipHash (std's default): ids are 16 bytes and looked up once or
/// twice per appended event, where SipHash showed up in profiles. Why not an
/// unkeyed fold (FxHash): ids are chosen by clients, so a fixed function
/// would let a producer aim many ids at one bucket. A keyed folded multiply
/// (the construction of wyhash and foldhash) is one 64×64→128 multiply per
/// id and unpredictable without the key.
///
/// The writer also hashes stream names with it (per event, per request),
/// where SipHash was a few percent of the writer's CPU.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyedHash {
    k0: u64,
    k1: u64,
}

impl KeyedHash {
    /// A key drawn from std's per-process random SipHash keys, which never
    /// fails (unlike reading the OS random source directly).
    pub(crate) fn random() -> KeyedHash {
        let seed = std::collections::hash_map::RandomState::new();
        KeyedHash {
            k0: seed.hash_one(0_u64),
            k1: seed.hash_one(1_u64) | 1,
        }
    }
}

/// A fresh random key, so `HashMap::default()` works with it.
impl Default for KeyedHash {
    fn default() -> KeyedHash {
        KeyedHash::random()
    }
}

impl BuildHasher for KeyedHash {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher { key: *self, state: 0 }
    }
}

/// See [`KeyedHash`]. An [`IdKey`] takes one `write_u128`; other input
/// (stream names) goes through `write`, 16 bytes per multiply.
#[derive(Debug)]
pub(crate) struct KeyedHasher {
    key: KeyedHash,
    state: u64,
}

/// An odd constant with well-spread bits (2⁶⁴ / φ), for the final fold.
const FINISH_MIX: u64 = 0x9e37_79b9_7f4a_7c15;

/// The 128-bit product of `a` and `b`, high and low halves xored.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

impl Hasher for KeyedHasher {
    fn write_u128(&mut self, value: u128) {
        let low = value as u64;
        let high = (value >> 64) as u64;
        self.state = folded_multiply(low ^ self.key.k0 ^ self.state, high ^ self.key.k1);
    }

    fn write(&mut self, bytes: &[u8]) {
        // The length first, so inputs that differ only by trailing zero
        // bytes (which the last chunk is padded with) hash apart.
        self.state = folded_multiply(self.state ^ bytes.len() as u64 ^ self.key.k1, self.key.k0 | 1);
        for chunk in bytes.chunks(16) {
            let mut word = [0u8; 16];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u128(u128::from_le_bytes(word));
        }
    }

    fn finish(&self) -> u64 {
        // One more fold: a single keyed multiply leaves structured inputs
        // (sequential ids) visibly correlated for some keys, which showed
        // as one key in forty tripling the run filters' false positives.
        folded_multiply(self.state, FINISH_MIX)
    }
}

/// Test ids spread over the id space, as random ids are, yet distinct and
/// reproducible from `n`.
#[cfg(test)]
pub(crate) fn test_id(n: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
    id[8..].copy_from_slice(&n.to_be_bytes());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_and_keep_the_first() {
        let mut ids: IdMap<u64> = IdMap::new();
        assert_eq!(ids.get(&[1; 16]), None);
        assert_eq!(ids.insert_first([1; 16], 7), None);
        assert_eq!(ids.insert_first([1; 16], 9), Some(7), "the first record stays");
        assert_eq!(ids.get(&[1; 16]), Some(7));
        assert_eq!(ids.insert([2; 16], 3), None);
        assert_eq!(ids.len(), 2);
        ids.clear();
        assert_eq!(ids.len(), 0);
        assert_eq!(ids.get(&[1; 16]), None);
    }

    #[test]
    fn many_similar_ids_stay_distinct() {
        // Sequential ids, differing only in their low bytes, as a careless
        // producer might choose them.
        let mut ids: IdMap<u64> = IdMap::with_capacity(10_000);
        for n in 0..10_000u64 {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&n.to_be_bytes());
            assert_eq!(ids.insert(id, n), None);
        }
        for n in 0..10_000u64 {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&n.to_be_bytes());
            assert_eq!(ids.get(&id), Some(n));
        }
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn strings_hash_apart_by_content_and_length() {
        let key = KeyedHash::random();
        let names = ["", "a", "a\0", "service/ops-hub", "service/ops-hub0", "service/ops-hua"];
        let hashes: std::collections::HashSet<u64> = names.iter().map(|name| key.hash_one(name)).collect();
        assert_eq!(hashes.len(), names.len());
        let mut map: HashMap<&str, usize, KeyedHash> = HashMap::default();
        for (i, name) in names.iter().enumerate() {
            map.insert(name, i);
        }
        assert_eq!(map.get("service/ops-hub"), Some(&3));
    }

    #[test]
    fn keys_differ_between_maps_and_spread_the_bits() {
        let a = KeyedHash::random();
        let b = KeyedHash::random();
        assert!((a.k0, a.k1) != (b.k0, b.k1), "each map gets its own key");
        // Ids that differ in one bit must differ in the top 7 bits of the
        // hash (hashbrown's tag) and in the low bits (its bucket index)
        // often: count over 64 single-bit flips.
        let hash = |id: u128| a.hash_one(IdKey(id.to_le_bytes()));
        let base = hash(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let mut top_changed = 0;
        let mut low_changed = 0;
        for bit in 0..128 {
            let flipped = hash(0x0123_4567_89ab_cdef_0011_2233_4455_6677 ^ (1u128 << bit));
            top_changed += usize::from((flipped >> 57) != (base >> 57));
            low_changed += usize::from((flipped & 0xffff) != (base & 0xffff));
        }
        assert!(top_changed > 100, "top bits changed for {top_changed} of 128 flips");
        assert!(low_changed > 120, "low bits changed for {low_changed} of 128 flips");
    }
}
