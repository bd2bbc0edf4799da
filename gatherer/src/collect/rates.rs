//! Turning monotonically increasing counters into per-second rates.
//!
//! Every counter family keeps one [`Rates`] keyed by its row's identity
//! (an interface name, a device, `()` for a single row). A rate exists from the
//! second observation of a key on; a counter that went backwards (a reset, a
//! driver reload, a 32-bit wrap) yields no rate for that interval rather than a
//! huge negative or positive spike. Keys not seen in a cycle are forgotten by
//! [`Rates::sweep`], so a churn of short-lived interfaces cannot grow memory.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

struct Entry {
    at: Instant,
    values: Vec<u64>,
    generation: u64,
}

/// Previous readings per key, and the rates computed from them.
pub struct Rates<K> {
    entries: HashMap<K, Entry>,
    generation: u64,
    rates: Vec<Option<f64>>,
}

impl<K: Hash + Eq> Default for Rates<K> {
    fn default() -> Self {
        Rates {
            entries: HashMap::new(),
            generation: 0,
            rates: Vec::new(),
        }
    }
}

impl<K: Hash + Eq> Rates<K> {
    /// Records `values` for `key` at `at`, and returns one rate per value:
    /// per second since the previous observation of `key`, or `None` on the
    /// first observation, for a counter that went backwards, or for a value
    /// index the previous reading did not have.
    pub fn observe<Q>(&mut self, key: &Q, at: Instant, values: &[u64]) -> &[Option<f64>]
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.rates.clear();
        let generation = self.generation;
        match self.entries.get_mut(key) {
            Some(entry) => {
                let secs = at.saturating_duration_since(entry.at).as_secs_f64();
                for (i, &now) in values.iter().enumerate() {
                    let rate = match entry.values.get(i) {
                        Some(&before) if secs > 0.0 && now >= before => {
                            Some((now - before) as f64 / secs)
                        }
                        _ => None,
                    };
                    self.rates.push(rate);
                }
                entry.at = at;
                entry.values.clear();
                entry.values.extend_from_slice(values);
                entry.generation = generation;
            }
            None => {
                self.rates.resize(values.len(), None);
                self.entries.insert(
                    key.to_owned(),
                    Entry {
                        at,
                        values: values.to_vec(),
                        generation,
                    },
                );
            }
        }
        &self.rates
    }

    /// Forgets keys not observed since the previous sweep. Call once per cycle
    /// after observing every key.
    pub fn sweep(&mut self) {
        let current = self.generation;
        self.entries.retain(|_, e| e.generation == current);
        self.generation = self.generation.wrapping_add(1);
    }

    /// How many keys are remembered (for tests of bounded memory).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn first_observation_has_no_rate_then_rates_follow() {
        let mut rates: Rates<String> = Rates::default();
        let t0 = Instant::now();
        assert_eq!(rates.observe("eth0", t0, &[100, 5]), &[None, None]);
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(
            rates.observe("eth0", t1, &[300, 5]),
            &[Some(100.0), Some(0.0)]
        );
    }

    #[test]
    fn a_counter_that_goes_backwards_has_no_rate() {
        let mut rates: Rates<()> = Rates::default();
        let t0 = Instant::now();
        rates.observe(&(), t0, &[u64::MAX]);
        let r = rates.observe(&(), t0 + Duration::from_secs(1), &[3]);
        assert_eq!(r, &[None]);
        let r = rates.observe(&(), t0 + Duration::from_secs(2), &[13]);
        assert_eq!(r, &[Some(10.0)]);
    }

    #[test]
    fn keys_not_seen_in_a_cycle_are_forgotten() {
        let mut rates: Rates<String> = Rates::default();
        let t0 = Instant::now();
        for i in 0..1000 {
            rates.observe(format!("veth{i}").as_str(), t0, &[1]);
            rates.sweep();
        }
        assert_eq!(rates.len(), 1);
    }
}
