//! [`KeyFilter`]: which keys a table may have stored, so that a table whose
//! rows are partly evicted does not ask the store about every key it has
//! never written. Most lookups a fold makes for a key that is not resident
//! are for a key that does not exist yet (a new task, a window not seen,
//! the absence of an anomaly); without the filter each of them read a page
//! from the store.
//!
//! A blocked Bloom filter that grows: a sequence of filters, each twice
//! the capacity of the one before, the last taking new keys. About 10 bits
//! per key, 7 bits set per key within one 64-byte block: a key never added
//! is reported as maybe stored about 1–2 % of the time (the lookup then
//! goes to the store and finds nothing). Deleted keys stay in: they cost a
//! lookup, never a wrong answer.

/// Bits per key a filter is sized for.
const BITS_PER_KEY: usize = 10;
/// Bits set per key.
const PROBES: u32 = 7;
/// Keys the first filter is sized for.
const FIRST_CAPACITY: usize = 16 * 1024;
/// 512-bit blocks, as eight words.
const BLOCK_WORDS: usize = 8;

/// Keys that may be stored; see the module documentation.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyFilter {
    filters: Vec<Bloom>,
}

#[derive(Clone, Debug)]
struct Bloom {
    words: Vec<u64>,
    blocks: u64,
    capacity: usize,
    len: usize,
}

impl KeyFilter {
    /// Notes that `key` is (or may be) stored.
    pub(crate) fn insert(&mut self, key: &[u8]) {
        let hash = hash(key);
        // Rows are written again and again: count each key once, so the
        // filters grow with the keys, not with the writes.
        if self.filters.iter().any(|filter| filter.may_contain(hash)) {
            return;
        }
        let full = self.filters.last().is_none_or(|last| last.len >= last.capacity);
        if full {
            let capacity = self.filters.last().map_or(FIRST_CAPACITY, |last| last.capacity * 2);
            self.filters.push(Bloom::new(capacity));
        }
        if let Some(last) = self.filters.last_mut() {
            last.insert(hash);
        }
    }

    /// Whether `key` may be stored: `false` means it certainly is not.
    pub(crate) fn may_contain(&self, key: &[u8]) -> bool {
        let hash = hash(key);
        self.filters.iter().any(|filter| filter.may_contain(hash))
    }

    /// Bytes the filter holds.
    pub(crate) fn bytes(&self) -> usize {
        self.filters.iter().map(|filter| filter.words.len() * 8).sum()
    }
}

impl Bloom {
    fn new(capacity: usize) -> Bloom {
        let blocks = (capacity * BITS_PER_KEY).div_ceil(BLOCK_WORDS * 64).max(1);
        Bloom {
            words: vec![0; blocks * BLOCK_WORDS],
            blocks: blocks as u64,
            capacity,
            len: 0,
        }
    }

    /// The block of `hash` and its probe bits (word index, bit).
    fn probes(&self, hash: u64) -> impl Iterator<Item = (usize, u64)> + use<> {
        let block = ((hash >> 32).wrapping_mul(self.blocks) >> 32) as usize * BLOCK_WORDS;
        let mut bits = hash as u32;
        (0..PROBES).map(move |_| {
            // A multiplicative step mixes into the top bits, which pick
            // one of the block's 512 bits.
            bits = bits.wrapping_mul(0x9E37_79B1).wrapping_add(0x7F4A_7C15);
            let bit = bits >> 23;
            (block + (bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    fn insert(&mut self, hash: u64) {
        for (word, bit) in self.probes(hash) {
            self.words[word] |= bit;
        }
        self.len += 1;
    }

    fn may_contain(&self, hash: u64) -> bool {
        self.probes(hash).all(|(word, bit)| self.words[word] & bit != 0)
    }
}

/// A 64-bit hash of `key` (not keyed: the keys come from the log, and a
/// collision only costs a store lookup).
fn hash(key: &[u8]) -> u64 {
    const M: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (key.len() as u64).wrapping_mul(M) ^ 0x2545_F491_4F6C_DD1D;
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(M);
        h ^= h >> 29;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(M);
    }
    // Final avalanche (murmur3's fmix64).
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_added_key_is_found_and_few_others_are() {
        let mut filter = KeyFilter::default();
        let n = 100_000;
        for i in 0..n {
            filter.insert(format!("task\0CUST-WP-{i:06}-T03").as_bytes());
        }
        assert!(filter.filters.len() > 1, "the filter grew");
        for i in 0..n {
            assert!(filter.may_contain(format!("task\0CUST-WP-{i:06}-T03").as_bytes()));
        }
        let false_positives = (0..n)
            .filter(|i| filter.may_contain(format!("task\0CUST-WP-{i:06}-T04").as_bytes()))
            .count();
        // Each filter is sized for about 1-2 %; they add up.
        assert!(false_positives < n / 20, "{false_positives} of {n}");
        assert!(filter.bytes() < n * 4, "{} bytes", filter.bytes());
    }

    #[test]
    fn an_empty_filter_holds_nothing() {
        let filter = KeyFilter::default();
        assert!(!filter.may_contain(b""));
        assert!(!filter.may_contain(b"task\0a"));
    }
}
