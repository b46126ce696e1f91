//! Answers of builder-web's redirecting look-ups (`/hash?sha256=`, `/job/<job>/build/latest`)
//! to anonymous callers, kept briefly in memory: these are what deployed unikernel updaters
//! poll, over and over, for public jobs.
//!
//! Only anonymous answers are kept (they depend on nothing but public data). Any build or job
//! change on any replica (PostgreSQL notifications) empties the cache; entries also expire
//! after [`TTL`], which bounds staleness for changes without a notification (a tenant deleted,
//! a job whose visibility changed on an old replica).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const TTL: Duration = Duration::from_secs(2);
/// Beyond this many entries the cache starts over (a crude bound, never reached by pollers).
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct LookupCache {
    generation: AtomicU64,
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    generation: u64,
    stored: Instant,
    location: String,
}

impl LookupCache {
    /// The current generation: read it before computing an answer, store the answer with it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn get(&self, key: &str) -> Option<String> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(key)?;
        (entry.generation == self.generation() && entry.stored.elapsed() < TTL)
            .then(|| entry.location.clone())
    }

    /// Keeps an answer computed while the cache was at `generation` (dropped if anything changed
    /// since, so an answer computed before a change never outlives it).
    pub fn put(&self, key: String, generation: u64, location: String) {
        if generation != self.generation() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, Entry { generation, stored: Instant::now(), location });
        }
    }

    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }

    /// Empties the cache on every build or job change, until the process ends.
    pub fn spawn_invalidator(
        cache: std::sync::Arc<LookupCache>,
        events: &crate::events::Events,
    ) -> tokio::task::JoinHandle<()> {
        let mut changes = events.builds();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => cache.invalidate(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_from_before_a_change_are_never_served_after_it() {
        let cache = LookupCache::default();
        let before = cache.generation();
        cache.put("a".into(), before, "/x".into());
        assert_eq!(cache.get("a").as_deref(), Some("/x"));
        // Computed before the change, stored after it: dropped.
        let stale = cache.generation();
        cache.invalidate();
        cache.put("b".into(), stale, "/y".into());
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.get("b"), None);
    }
}
