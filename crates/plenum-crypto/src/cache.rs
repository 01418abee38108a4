//! A small bounded map with time-to-live, first-in-first-out eviction, and values dropped (and so
//! zeroized, for key material) on eviction.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

pub(crate) struct Bounded<K, V> {
    /// foldhash rather than SipHash: a cache lookup sits on every field of every row, and
    /// SipHash over (tenant, subject, record type, field) was a measurable share of it. Keys
    /// are server-generated ids and declared names, the map is bounded, and foldhash is seeded
    /// per process, so flooding is neither cheap nor useful.
    map: HashMap<K, (Instant, V), foldhash::fast::RandomState>,
    order: VecDeque<K>,
    capacity: usize,
    ttl: Duration,
}

impl<K: Hash + Eq + Clone, V: Clone> Bounded<K, V> {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            map: HashMap::default(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            ttl,
        }
    }

    /// A fresh value, or `None` (an expired one is removed).
    pub(crate) fn get(&mut self, key: &K) -> Option<V> {
        let (at, value) = self.map.get(key)?;
        if at.elapsed() <= self.ttl {
            return Some(value.clone());
        }
        self.map.remove(key);
        None
    }

    /// [`Bounded::get`] without cloning the value, in one probe: a caller that needs only part
    /// of it (or only whether it is there) touches no reference count. On a read of many
    /// subjects every entry is cold in the CPU cache, and each count touched, like each second
    /// probe, is one more miss. An expired entry is reported absent and left where it is: the
    /// load that follows a miss inserts the same key and so drops (and wipes) it, and eviction
    /// drops it otherwise.
    pub(crate) fn get_ref(&self, key: &K) -> Option<&V> {
        let (at, value) = self.map.get(key)?;
        (at.elapsed() <= self.ttl).then_some(value)
    }

    /// Inserts `value` as if cached at `at`: a value derived from another cached value expires
    /// with it (`at` its source's load time), so deriving never extends a lifetime. Every caller
    /// passes its instant: one reading of the clock serves a whole load (there is no `insert`
    /// that reads it again).
    pub(crate) fn insert_at(&mut self, key: K, value: V, at: Instant) {
        if self.map.insert(key.clone(), (at, value)).is_none() {
            self.order.push_back(key);
        }
        // FIFO order may hold keys already removed (expired or invalidated); skip those.
        while self.map.len() > self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        if self.order.len() > self.capacity.saturating_mul(2) {
            let map = &self.map;
            self.order.retain(|k| map.contains_key(k));
        }
    }

    pub(crate) fn remove_where(&mut self, mut pred: impl FnMut(&K) -> bool) {
        self.map.retain(|k, _| !pred(k));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_expiring() {
        let mut c = Bounded::new(2, Duration::from_secs(60));
        let now = Instant::now();
        c.insert_at(1, "a", now);
        c.insert_at(2, "b", now);
        c.insert_at(3, "c", now);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&1), None);
        assert_eq!(c.get(&3), Some("c"));
        assert_eq!(c.get_ref(&3), Some(&"c"));
        assert_eq!(c.get_ref(&1), None);
        let mut e = Bounded::new(2, Duration::ZERO);
        e.insert_at(1, "a", Instant::now());
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(e.get_ref(&1), None);
        assert_eq!(e.get(&1), None);
        c.remove_where(|k| *k == 3);
        assert_eq!(c.get(&3), None);
    }
}
