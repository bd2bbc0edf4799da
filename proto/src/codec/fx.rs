//! The hasher of the gatherer's [`super::Dictionary`]: FxHash (rustc's),
//! written out here because it is twenty lines.
//!
//! The dictionary looks every field of every row up by name each cycle, and
//! SipHash (std's default) was 16 % of a streaming cycle's instructions.
//! FxHash takes eight bytes per multiply. It has no key: someone choosing
//! the keys could make them collide (HashDoS), so it serves only maps keyed
//! by the gatherer's own names. The reporter's [`super::StreamDefs`], whose
//! keys come from the network, keeps std's keyed SipHash.

use std::hash::{BuildHasherDefault, Hasher};

/// Builds [`FxHasher`]s for a `HashMap`.
pub(super) type FxBuildHasher = BuildHasherDefault<FxHasher>;

/// rustc-hash's multiplier (2^64 / golden ratio, odd).
const K: u64 = 0xf135_7aea_2e62_a9c5;

/// FxHash: per word, rotate, xor, multiply.
#[derive(Default, Clone, Copy)]
pub(super) struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut w = [0; 8];
            w.copy_from_slice(word);
            self.add(u64::from_le_bytes(w));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0; 8];
            w[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        // The multiply leaves its best-mixed bits at the top; hashbrown picks
        // buckets with the low bits, so bring the top ones down.
        self.0.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn different_names_hash_differently() {
        let b = FxBuildHasher::default();
        let names = [
            "",
            "a",
            "a\0",
            "ab",
            "used_bytes",
            "free_bytes",
            "bytes_read_total",
            "bytes_read_per_second",
            "cpu\0cpu\0cpu0",
            "cpu\0cpu\0cpu1",
        ];
        let hashes: std::collections::HashSet<u64> = names.iter().map(|n| b.hash_one(n)).collect();
        assert_eq!(hashes.len(), names.len());
        // The low bits (bucket index) differ too for these neighbours.
        assert_ne!(b.hash_one("cpu0") & 0xff, b.hash_one("cpu1") & 0xff);
    }
}
