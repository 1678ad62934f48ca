//! Throttles guessing: login failures are counted per email and per client IP over a sliding
//! window, and a key over its limit is refused (429 with Retry-After) before the password is
//! even checked. Counters live in the process: with several replicas each enforces its own
//! limit, which still bounds an attacker to (replicas x limit) guesses per window.

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

    /// `Err(wait)` when `key` has used up its events in the current window.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    pub fn record(&self, key: &str) {
        self.record_at(key, Instant::now());
    }

    pub fn clear(&self, key: &str) {
        self.events.lock().expect("rate limiter lock").remove(key);
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut events = self.events.lock().expect("rate limiter lock");
        let Some(queue) = events.get_mut(key) else {
            return Ok(());
        };
        Self::expire(queue, now, self.limit.window);
        if queue.len() >= self.limit.max_events {
            let oldest = *queue.front().expect("non-empty queue");
            return Err(self.limit.window.saturating_sub(now.duration_since(oldest)));
        }
        Ok(())
    }

    fn record_at(&self, key: &str, now: Instant) {
        let mut events = self.events.lock().expect("rate limiter lock");
        // Bound memory under a spray of distinct keys: drop keys whose events all expired.
        if events.len() > 100_000 {
            let window = self.limit.window;
            events.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let queue = events.entry(key.to_string()).or_default();
        Self::expire(queue, now, self.limit.window);
        queue.push_back(now);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_the_limit_until_the_window_passes() {
        let limiter = RateLimiter::new(Limit {
            max_events: 2,
            window: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        assert!(limiter.check_at("a", t0).is_ok());
        limiter.record_at("a", t0);
        limiter.record_at("a", t0 + Duration::from_secs(10));
        let wait = limiter
            .check_at("a", t0 + Duration::from_secs(20))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(40));
        assert!(limiter.check_at("b", t0).is_ok(), "keys are independent");
        assert!(limiter.check_at("a", t0 + Duration::from_secs(61)).is_ok());
        limiter.clear("a");
        assert!(limiter.check_at("a", t0 + Duration::from_secs(20)).is_ok());
    }
}
