//! A least-recently-used cache bounded by the bytes it holds, not by its number of entries: the
//! dashboard cache keeps response bodies whose size depends on the window asked for (a year of
//! daily series is a hundred times a week's), so a count of entries bounds nothing.

use axum::body::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// Bodies keyed by `K`, each tagged with the version of the data it was computed from. Holds at
/// most `budget` bytes of bodies; the least recently used go first. A body larger than
/// `budget / MAX_SHARE` is not kept at all: one huge answer must not empty the cache of
/// everyone's usual ones.
pub struct ByteLru<K> {
    budget: usize,
    held: usize,
    /// Ticks increase on every use; `by_use` orders keys by their last use.
    tick: u64,
    entries: HashMap<K, Entry>,
    by_use: BTreeMap<u64, K>,
}

struct Entry {
    version: i64,
    body: Bytes,
    used: u64,
}

/// The largest body kept is this fraction of the budget.
const MAX_SHARE: usize = 8;

impl<K: Hash + Eq + Clone> ByteLru<K> {
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            held: 0,
            tick: 0,
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
        }
    }

    /// The body for `key` if it was computed from `version`, marking it used.
    pub fn get(&mut self, key: &K, version: i64) -> Option<Bytes> {
        self.tick += 1;
        let entry = self.entries.get_mut(key).filter(|e| e.version == version)?;
        self.by_use.remove(&entry.used);
        entry.used = self.tick;
        self.by_use.insert(self.tick, key.clone());
        Some(entry.body.clone())
    }

    /// Keeps `body` for `key` (replacing what it held), then drops the least recently used
    /// bodies until the cache is within its budget.
    pub fn put(&mut self, key: K, version: i64, body: Bytes) {
        self.remove(&key);
        if body.len() > self.budget / MAX_SHARE {
            return;
        }
        self.tick += 1;
        self.held += body.len();
        self.by_use.insert(self.tick, key.clone());
        self.entries.insert(
            key,
            Entry {
                version,
                body,
                used: self.tick,
            },
        );
        while self.held > self.budget {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&oldest) {
                self.held -= entry.body.len();
            }
        }
    }

    fn remove(&mut self, key: &K) {
        if let Some(entry) = self.entries.remove(key) {
            self.by_use.remove(&entry.used);
            self.held -= entry.body.len();
        }
    }

    /// Bytes of bodies held.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(len: usize) -> Bytes {
        Bytes::from(vec![b'x'; len])
    }

    #[test]
    fn holds_no_more_bytes_than_its_budget_dropping_the_least_recently_used() {
        let mut cache = ByteLru::new(1000);
        for key in 0..10 {
            cache.put(key, 1, body(100));
        }
        assert_eq!((cache.len(), cache.held_bytes()), (10, 1000));
        // Key 0 is used again: key 1 is now the least recently used.
        assert!(cache.get(&0, 1).is_some());
        cache.put(10, 1, body(100));
        assert_eq!(cache.held_bytes(), 1000);
        assert!(cache.get(&1, 1).is_none(), "the least recently used went");
        assert!(cache.get(&0, 1).is_some() && cache.get(&10, 1).is_some());
        // One body of 120 bytes pushes out two of 100.
        cache.put(11, 1, body(120));
        assert!(cache.held_bytes() <= 1000);
        assert_eq!(cache.len(), 9);
    }

    #[test]
    fn a_body_of_another_version_is_not_served_and_a_replaced_one_is_counted_once() {
        let mut cache = ByteLru::new(1000);
        cache.put("a", 1, body(100));
        assert!(cache.get(&"a", 2).is_none());
        cache.put("a", 2, body(50));
        assert_eq!((cache.len(), cache.held_bytes()), (1, 50));
        assert_eq!(cache.get(&"a", 2).unwrap().len(), 50);
    }

    #[test]
    fn a_body_larger_than_an_eighth_of_the_budget_is_not_kept() {
        let mut cache = ByteLru::new(800);
        cache.put(1, 1, body(100));
        cache.put(2, 1, body(101));
        assert_eq!(
            cache.len(),
            1,
            "the large body did not empty the cache either"
        );
        assert!(cache.get(&2, 1).is_none());
    }
}
