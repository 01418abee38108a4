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
    map: HashMap<K, Entry<V>, foldhash::fast::RandomState>,
    /// Insertion order, each key with the stamp of the insertion that queued it. A key removed
    /// and inserted again is queued again; its earlier place is then stale (its stamp no longer
    /// matches the map's), so eviction skips it rather than evicting the newer insertion early,
    /// and a compaction drops it, so the queue stays within twice the capacity.
    order: VecDeque<(K, u64)>,
    /// The stamp of the next insertion: counts insertions, never reused.
    next: u64,
    capacity: usize,
    ttl: Duration,
    /// How often the order was compacted: what the amortised bound is tested by.
    #[cfg(test)]
    compactions: usize,
}

/// A cached value with when it was loaded and the stamp of the insertion that holds it.
struct Entry<V> {
    at: Instant,
    stamp: u64,
    value: V,
}

impl<K: Hash + Eq + Clone, V: Clone> Bounded<K, V> {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            map: HashMap::default(),
            order: VecDeque::new(),
            next: 0,
            capacity: capacity.max(1),
            ttl,
            #[cfg(test)]
            compactions: 0,
        }
    }

    /// A fresh value, or `None` (an expired one is removed).
    pub(crate) fn get(&mut self, key: &K) -> Option<V> {
        let entry = self.map.get(key)?;
        if entry.at.elapsed() <= self.ttl {
            return Some(entry.value.clone());
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
        let entry = self.map.get(key)?;
        (entry.at.elapsed() <= self.ttl).then_some(&entry.value)
    }

    /// Inserts `value` as if cached at `at`: a value derived from another cached value expires
    /// with it (`at` its source's load time), so deriving never extends a lifetime. Every caller
    /// passes its instant: one reading of the clock serves a whole load (there is no `insert`
    /// that reads it again).
    pub(crate) fn insert_at(&mut self, key: K, value: V, at: Instant) {
        let stamp = self.next;
        self.next = self.next.wrapping_add(1);
        // A value replacing one still in the map is a fresh load too (over an expired entry
        // `get_ref` left in place, say): queued at the back like any insertion, its old place
        // goes stale.
        self.order.push_back((key.clone(), stamp));
        self.map.insert(key, Entry { at, stamp, value });
        while self.map.len() > self.capacity {
            let Some((old, queued)) = self.order.pop_front() else {
                break;
            };
            // A stale place (the key was removed, and maybe inserted again since) evicts
            // nothing: only the place its current insertion queued does.
            if self.map.get(&old).is_some_and(|e| e.stamp == queued) {
                self.map.remove(&old);
            }
        }
        // Removals outside eviction (expiry, invalidation) leave stale places behind; dropping
        // them once they outnumber the live ones keeps the queue bounded at O(1) amortised cost.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let map = &self.map;
            self.order
                .retain(|(k, queued)| map.get(k).is_some_and(|e| e.stamp == *queued));
            #[cfg(test)]
            {
                self.compactions += 1;
            }
        }
    }

    /// How many places the insertion order holds, stale ones included.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.order.len()
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

    /// A key loaded again is the newest entry, whether it was removed first (invalidated) or
    /// its value is replaced in place (a scope loaded again over its expired entry): its
    /// earlier place must not evict it, and the oldest other entry goes first.
    #[test]
    fn reloaded_key_is_evicted_in_its_new_place() {
        for removed_first in [true, false] {
            let now = Instant::now();
            let mut c = Bounded::new(2, Duration::from_secs(60));
            c.insert_at("a", 1, now);
            if removed_first {
                c.remove_where(|k| *k == "a");
            }
            c.insert_at("b", 2, now);
            c.insert_at("a", 3, now);
            c.insert_at("c", 4, now);
            assert_eq!(c.get(&"b"), None, "b is the oldest entry ({removed_first})");
            assert_eq!(c.get(&"a"), Some(3), "removed first: {removed_first}");
            assert_eq!(c.get(&"c"), Some(4));
        }
    }

    /// Invalidate-and-reload (what creating a key does to its scope) of an entry eviction does
    /// not reach leaves a stale place each time: the order stays within twice the capacity,
    /// a compaction (a scan of the whole order) comes once per `capacity` stale places and not
    /// on every insert, and first-in-first-out order survives it.
    #[test]
    fn stale_places_are_compacted_rarely() {
        let now = Instant::now();
        let (cap, reloads) = (100u32, 10_000u32);
        let mut c = Bounded::new(cap as usize, Duration::from_secs(60));
        for k in 0..cap {
            c.insert_at(k, k, now);
        }
        let newest = cap - 1;
        for _ in 0..reloads {
            c.remove_where(|k| *k == newest);
            c.insert_at(newest, newest, now);
            assert!(
                c.queued() <= 2 * cap as usize + 1,
                "order grew to {}",
                c.queued()
            );
        }
        assert!(c.compactions > 0, "the stale places were never compacted");
        assert!(
            c.compactions <= (reloads / cap) as usize,
            "{} compactions for {reloads} reloads",
            c.compactions
        );
        c.insert_at(cap, cap, now);
        assert_eq!(c.len(), cap as usize);
        assert_eq!(c.get(&0), None, "the first key in is the first out");
        assert_eq!(c.get(&1), Some(1));
        assert_eq!(c.get(&newest), Some(newest));
    }
}
