//! Duplicate suppression over a bounded window.
//!
//! Event Hubs delivers at least once and diagnostic settings sometimes send a record twice; a
//! SIEM should see each sign-in once. Keys are 128-bit hashes of (category, id) — 16 bytes a
//! record whatever the id length, and a false match less likely than a disk error — kept for
//! the last `capacity` distinct records, first in first out, so memory is fixed at start-up.

use std::collections::{HashSet, VecDeque};
use xxhash_rust::xxh3::Xxh3;

/// The identity of a sign-in for duplicate detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(u128);

impl Key {
    /// The key of a sign-in; the id's letter case does not matter.
    pub fn of(category: &str, id: &str) -> Key {
        let mut h = Xxh3::new();
        h.update(category.as_bytes());
        h.update(&[0]);
        // Ids are GUIDs: hash them without regard to case, without allocating.
        let mut chunk = [0u8; 64];
        for part in id.trim().as_bytes().chunks(chunk.len()) {
            let lower = &mut chunk[..part.len()];
            lower.copy_from_slice(part);
            lower.make_ascii_lowercase();
            h.update(lower);
        }
        Key(h.digest128())
    }
}

/// Remembers the last `capacity` keys; answers whether a key is new.
#[derive(Debug)]
pub struct Window {
    seen: HashSet<Key>,
    order: VecDeque<Key>,
    capacity: usize,
}

/// Default window: 500,000 sign-ins (about 24 MB), minutes of a large tenant's stream.
pub const DEFAULT_CAPACITY: usize = 500_000;

impl Window {
    /// A window remembering `capacity` sign-ins; 0 turns suppression off.
    pub fn new(capacity: usize) -> Window {
        Window {
            seen: HashSet::with_capacity(capacity.min(1 << 16)),
            order: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
        }
    }

    /// True the first time a key is seen within the window; false for a duplicate.
    /// A capacity of 0 disables suppression.
    pub fn first_time(&mut self, key: Key) -> bool {
        if self.capacity == 0 {
            return true;
        }
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }

    /// How many keys the window holds now (at most its capacity).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True before the first key is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_within_the_window_is_suppressed() {
        let mut w = Window::new(10);
        assert!(w.first_time(Key::of("SignInLogs", "a")));
        assert!(!w.first_time(Key::of("SignInLogs", "a")));
        assert!(
            !w.first_time(Key::of("SignInLogs", "A")),
            "ids are GUIDs: case does not matter"
        );
    }

    #[test]
    fn same_id_in_another_category_is_not_a_duplicate() {
        let mut w = Window::new(10);
        assert!(w.first_time(Key::of("SignInLogs", "a")));
        assert!(w.first_time(Key::of("NonInteractiveUserSignInLogs", "a")));
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_key_is_forgotten() {
        let mut w = Window::new(3);
        for i in 0..1000 {
            assert!(w.first_time(Key::of("c", &i.to_string())));
            assert!(w.len() <= 3);
        }
        assert!(!w.first_time(Key::of("c", "999")));
        assert!(
            w.first_time(Key::of("c", "0")),
            "forgotten beyond the window"
        );
    }

    #[test]
    fn capacity_zero_disables_suppression() {
        let mut w = Window::new(0);
        assert!(w.first_time(Key::of("c", "x")));
        assert!(w.first_time(Key::of("c", "x")));
        assert!(w.is_empty());
    }
}
