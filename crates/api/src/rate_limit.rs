//! Throttles guessing. Login attempts are counted before the password is checked, in the same
//! step that checks the count ([`RateLimiter::try_acquire`], [`Backoff::try_acquire`]), so a
//! burst of concurrent guesses cannot all pass a check made before any of them was recorded; a
//! successful login gives its attempt back. Two counters: per client address over a sliding
//! window, and per email *and* address with a growing wait ([`Backoff`]): an attacker guessing
//! one account from one address slows down, while the owner, from any other address, is not
//! locked out. Counters live in the process: with several replicas each enforces its own
//! limit, which still bounds an attacker to (replicas x limit) guesses.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max_events: usize,
    pub window: Duration,
}

#[derive(Debug)]
pub struct RateLimiter {
    limit: Limit,
    events: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(limit: Limit) -> Self {
        Self {
            limit,
            events: Mutex::new(HashMap::new()),
        }
    }

    /// Checks and records one event in one step: `Err(wait)` (and nothing recorded) when `key`
    /// has used up its events in the current window.
    pub fn try_acquire(&self, key: &str) -> Result<(), Duration> {
        self.try_acquire_at(key, Instant::now())
    }

    /// Gives back the newest event of `key` (an attempt that turned out not to count).
    pub fn release(&self, key: &str) {
        let mut events = self.events.lock().expect("rate limiter lock");
        if let Some(queue) = events.get_mut(key) {
            queue.pop_back();
        }
    }

    /// The check and the record under one lock: checked and recorded in two steps, concurrent
    /// attempts could all pass the check before any of them was recorded.
    fn try_acquire_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut events = self.events.lock().expect("rate limiter lock");
        // Bound memory under a spray of distinct keys: drop keys whose events all expired.
        if events.len() > 100_000 {
            let window = self.limit.window;
            events.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let queue = events.entry(key.to_string()).or_default();
        Self::expire(queue, now, self.limit.window);
        if queue.len() >= self.limit.max_events {
            let oldest = *queue.front().expect("non-empty queue");
            return Err(self.limit.window.saturating_sub(now.duration_since(oldest)));
        }
        queue.push_back(now);
        Ok(())
    }

    fn expire(queue: &mut VecDeque<Instant>, now: Instant, window: Duration) {
        while queue
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            queue.pop_front();
        }
    }
}

/// Failures per key with a wait that doubles after the first few: `free` failures cost
/// nothing, then the next attempt waits `base`, then twice that, up to `max`. A success
/// forgets the key; a key idle for `max` starts afresh.
#[derive(Debug, Clone, Copy)]
pub struct BackoffPolicy {
    pub free: u32,
    pub base: Duration,
    pub max: Duration,
}

impl BackoffPolicy {
    fn wait_after(&self, failures: u32) -> Duration {
        if failures < self.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free).min(30);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }
}

#[derive(Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    /// Failures so far and when the last attempt was made.
    keys: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Backoff {
    pub fn new(policy: BackoffPolicy) -> Self {
        Self {
            policy,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt as a failure before it is judged: `Err(wait)` (nothing counted) while
    /// the key must still wait. Call [`Backoff::succeeded`] when it turns out right.
    pub fn try_acquire(&self, key: &str) -> Result<(), Duration> {
        self.try_acquire_at(key, Instant::now())
    }

    pub fn succeeded(&self, key: &str) {
        self.keys.lock().expect("backoff lock").remove(key);
    }

    /// Takes back the failure the last [`Backoff::try_acquire`] counted (the attempt was never
    /// judged); the time of the attempt stays.
    pub fn forget_last(&self, key: &str) {
        if let Some(entry) = self.keys.lock().expect("backoff lock").get_mut(key) {
            entry.0 = entry.0.saturating_sub(1);
        }
    }

    fn try_acquire_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut keys = self.keys.lock().expect("backoff lock");
        // Bound memory under a spray of distinct keys: forget keys idle for the longest wait.
        if keys.len() > 100_000 {
            let max = self.policy.max;
            keys.retain(|_, (_, last)| now.duration_since(*last) < max);
        }
        let entry = keys.entry(key.to_string()).or_insert((0, now));
        if entry.0 > 0 && now.duration_since(entry.1) >= self.policy.max {
            *entry = (0, now);
        }
        let wait = self.policy.wait_after(entry.0);
        let waited = now.duration_since(entry.1);
        if entry.0 > 0 && waited < wait {
            return Err(wait - waited);
        }
        *entry = (entry.0 + 1, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acquired_event_is_counted_before_it_is_judged_and_can_be_given_back() {
        let limiter = RateLimiter::new(Limit {
            max_events: 2,
            window: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        assert!(limiter.try_acquire_at("a", t0).is_ok());
        assert!(limiter.try_acquire_at("a", t0).is_ok());
        assert!(
            limiter.try_acquire_at("a", t0).is_err(),
            "the third in a burst is refused"
        );
        limiter.release("a");
        assert!(
            limiter.try_acquire_at("a", t0).is_ok(),
            "a given-back event frees a slot"
        );
    }

    #[test]
    fn backoff_doubles_after_the_free_failures_and_a_success_forgets() {
        let backoff = Backoff::new(BackoffPolicy {
            free: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(900),
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(backoff.try_acquire_at("k", t0).is_ok());
        }
        // The fourth attempt must wait a second after the third, the fifth two, then four...
        assert_eq!(backoff.try_acquire_at("k", t0), Err(Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        assert!(backoff.try_acquire_at("k", t1).is_ok());
        assert_eq!(
            backoff.try_acquire_at("k", t1 + Duration::from_millis(500)),
            Err(Duration::from_millis(1500))
        );
        let t2 = t1 + Duration::from_secs(2);
        assert!(backoff.try_acquire_at("k", t2).is_ok());
        assert_eq!(backoff.try_acquire_at("k", t2), Err(Duration::from_secs(4)));
        assert!(
            backoff.try_acquire_at("other", t2).is_ok(),
            "keys are independent"
        );
        backoff.succeeded("k");
        assert!(backoff.try_acquire_at("k", t2).is_ok());
        // The wait never exceeds the maximum, and a key idle that long starts afresh.
        let policy = BackoffPolicy {
            free: 0,
            base: Duration::from_secs(1),
            max: Duration::from_secs(900),
        };
        assert_eq!(policy.wait_after(40), Duration::from_secs(900));
    }

    #[test]
    fn refuses_after_the_limit_until_the_window_passes() {
        let limiter = RateLimiter::new(Limit {
            max_events: 2,
            window: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        assert!(limiter.try_acquire_at("a", t0).is_ok());
        assert!(
            limiter
                .try_acquire_at("a", t0 + Duration::from_secs(10))
                .is_ok()
        );
        let wait = limiter
            .try_acquire_at("a", t0 + Duration::from_secs(20))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(40));
        assert!(
            limiter.try_acquire_at("b", t0).is_ok(),
            "keys are independent"
        );
        assert!(
            limiter
                .try_acquire_at("a", t0 + Duration::from_secs(61))
                .is_ok()
        );
    }

    #[test]
    fn concurrent_attempts_never_pass_the_limit_together() {
        let limiter = std::sync::Arc::new(RateLimiter::new(Limit {
            max_events: 10,
            window: Duration::from_secs(60),
        }));
        let granted: usize = (0..8)
            .map(|_| {
                let limiter = limiter.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .filter(|_| limiter.try_acquire("ip").is_ok())
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(granted, 10);
    }
}
