//! A client-side rate limiter shared by all workers of a run, plus the clock seam used
//! for every wait in real mode (backoff sleeps included) so tests never really sleep.
//!
//! Providers enforce requests-per-minute and tokens-per-minute budgets per key; with
//! several workers sharing one key, each worker retrying its own 429s wastes calls and
//! time. One [`RateLimiter`] behind an `Arc` makes all workers wait their turn instead.
//! It also bounds the requests in flight at once (`max_concurrency`): a permit holds a
//! slot until it is recorded.
//!
//! **Algorithm: sliding-window log.** The limiter remembers every request granted in the
//! last 60 s (time and token count). A new request is granted when, counting it, the
//! window holds at most `requests_per_minute` requests and at most `tokens_per_minute`
//! tokens. Unlike a token bucket (which allows a full burst plus the refill, i.e. up to
//! twice the budget in some 60 s span), this guarantees the budget in *every* 60 s window,
//! so we stay under the provider's limit whatever its exact accounting. Token counts are
//! estimates at [`RateLimiter::acquire`] time and corrected by [`RateLimiter::record`]
//! once the endpoint reports real usage.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The length of the rate-limit window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// A monotonic clock that can also wait: injected so tests can run minutes of
/// simulated waiting in microseconds.
pub trait Clock: Send + Sync {
    /// Time elapsed since an arbitrary fixed origin (monotonic).
    fn now(&self) -> Duration;
    /// Block the calling thread for `duration`.
    fn sleep(&self, duration: Duration);
}

/// The real clock: `Instant` and `thread::sleep`.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// A shared real clock, the default for clients and limiters.
    pub fn shared() -> Arc<dyn Clock> {
        Arc::new(Self::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// A simulated clock for tests: `sleep` returns at once and advances the time, and every
/// sleep is recorded so tests can check how long a client *would* have waited.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
    sleeps: Mutex<Vec<Duration>>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Move time forward without recording a sleep.
    pub fn advance(&self, duration: Duration) {
        self.nanos
            .fetch_add(duration.as_nanos() as u64, Ordering::SeqCst);
    }

    /// Every `sleep` so far, in call order.
    pub fn sleeps(&self) -> Vec<Duration> {
        lock(&self.sleeps).clone()
    }

    /// Sum of all sleeps so far.
    pub fn slept(&self) -> Duration {
        lock(&self.sleeps).iter().sum()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    fn sleep(&self, duration: Duration) {
        lock(&self.sleeps).push(duration);
        self.advance(duration);
        // Let other threads of a concurrent test make progress.
        std::thread::yield_now();
    }
}

/// Lock a mutex, recovering the data if another thread panicked while holding it (the
/// guarded data here stays consistent at every await point).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Per-minute budgets; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per minute (`llm.requests_per_minute`).
    pub requests_per_minute: Option<u32>,
    /// Prompt plus completion tokens per minute (`llm.tokens_per_minute`).
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once across every job of the run (`llm.max_concurrency`).
    pub max_concurrency: Option<u32>,
}

/// Proof that a request was admitted; hand it back to [`RateLimiter::record`].
#[derive(Debug)]
#[must_use = "pass the permit to RateLimiter::record with the real token count"]
pub struct Permit {
    id: u64,
    /// Clock time at which the request was admitted.
    pub granted_at: Duration,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    at: Duration,
    tokens: u64,
}

#[derive(Debug, Default)]
struct Window {
    entries: VecDeque<Entry>,
    tokens: u64,
    next_id: u64,
    /// Admitted requests not yet recorded.
    in_flight: u32,
}

impl Window {
    fn prune(&mut self, now: Duration) {
        while let Some(front) = self.entries.front() {
            if front.at + WINDOW <= now {
                self.tokens -= front.tokens;
                self.entries.pop_front();
            } else {
                break;
            }
        }
    }
}

/// A thread-safe requests/tokens per-minute limiter (sliding-window log, see the module
/// docs). Share one per run: `Arc<RateLimiter>`.
pub struct RateLimiter {
    limits: RateLimits,
    clock: Arc<dyn Clock>,
    window: Mutex<Window>,
    /// Woken when a request in flight is recorded (a concurrency slot frees).
    freed: std::sync::Condvar,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter on the real clock.
    pub fn new(limits: RateLimits) -> Self {
        Self::with_clock(limits, SystemClock::shared())
    }

    /// A limiter on an injected clock (tests).
    pub fn with_clock(limits: RateLimits, clock: Arc<dyn Clock>) -> Self {
        Self {
            limits,
            clock,
            window: Mutex::new(Window::default()),
            freed: std::sync::Condvar::new(),
        }
    }

    /// The configured budgets.
    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// Block until one request of about `estimated_tokens` tokens fits both budgets, then
    /// count it. A single request larger than the whole token budget is admitted alone
    /// (once the window is empty) rather than never.
    pub fn acquire(&self, estimated_tokens: u64) -> Permit {
        let tokens = match self.limits.tokens_per_minute {
            Some(tpm) => estimated_tokens.min(tpm),
            None => estimated_tokens,
        };
        loop {
            let wait = {
                let mut w = lock(&self.window);
                // A full set of requests in flight: wait for one to be recorded.
                while self
                    .limits
                    .max_concurrency
                    .is_some_and(|max| w.in_flight >= max.max(1))
                {
                    w = self
                        .freed
                        .wait_timeout(w, Duration::from_secs(1))
                        .map(|(guard, _)| guard)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
                // Read the time under the lock so entries stay in time order.
                let now = self.clock.now();
                w.prune(now);
                match self.wait_needed(&w, tokens, now) {
                    None => {
                        let id = w.next_id;
                        w.next_id += 1;
                        w.in_flight += 1;
                        w.tokens += tokens;
                        w.entries.push_back(Entry {
                            id,
                            at: now,
                            tokens,
                        });
                        return Permit {
                            id,
                            granted_at: now,
                        };
                    }
                    Some(wait) => wait,
                }
            };
            // Another thread may free budget earlier (a `record` with fewer tokens), so
            // never sleep long in one go.
            self.clock.sleep(wait.min(Duration::from_secs(1)));
        }
    }

    /// Correct the token count of an admitted request with the real usage (use 0 when
    /// the endpoint rejected the request without processing it).
    pub fn record(&self, permit: Permit, actual_tokens: u64) {
        let mut w = lock(&self.window);
        w.in_flight = w.in_flight.saturating_sub(1);
        self.freed.notify_one();
        if let Ok(i) = w.entries.binary_search_by_key(&permit.id, |e| e.id) {
            let old = w.entries[i].tokens;
            w.entries[i].tokens = actual_tokens;
            w.tokens = w.tokens - old + actual_tokens;
        }
    }

    /// How long until a request of `tokens` fits, or `None` if it fits now.
    fn wait_needed(&self, w: &Window, tokens: u64, now: Duration) -> Option<Duration> {
        let mut until = None::<Duration>;
        if let Some(rpm) = self.limits.requests_per_minute {
            let rpm = rpm.max(1) as usize;
            if w.entries.len() >= rpm {
                // The oldest `len - rpm + 1` entries must leave the window.
                let e = &w.entries[w.entries.len() - rpm];
                until = until.max(Some(e.at + WINDOW));
            }
        }
        if let Some(tpm) = self.limits.tokens_per_minute
            && w.tokens + tokens > tpm
        {
            let excess = w.tokens + tokens - tpm;
            let mut freed = 0;
            for e in &w.entries {
                freed += e.tokens;
                if freed >= excess {
                    until = until.max(Some(e.at + WINDOW));
                    break;
                }
            }
        }
        until.map(|t| t.saturating_sub(now).max(Duration::from_millis(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rpm: Option<u32>, tpm: Option<u64>) -> (Arc<ManualClock>, RateLimiter) {
        let clock = Arc::new(ManualClock::new());
        let l = RateLimiter::with_clock(
            RateLimits {
                requests_per_minute: rpm,
                tokens_per_minute: tpm,
                max_concurrency: None,
            },
            clock.clone(),
        );
        (clock, l)
    }

    #[test]
    fn requests_over_the_per_minute_limit_wait_for_the_window() {
        let (clock, l) = limiter(Some(3), None);
        for _ in 0..3 {
            let p = l.acquire(10);
            assert_eq!(p.granted_at, Duration::ZERO);
            l.record(p, 10);
        }
        assert_eq!(clock.slept(), Duration::ZERO);
        clock.advance(Duration::from_secs(10));
        let p = l.acquire(10);
        // The first request was at t=0, so the fourth goes at t=60 s.
        assert_eq!(p.granted_at, Duration::from_secs(60));
        assert_eq!(clock.slept(), Duration::from_secs(50));
        // All three t=0 requests left the window at t=60 s: 5 and 6 go at once, 7 waits.
        let p5 = l.acquire(1);
        let p6 = l.acquire(1);
        assert_eq!(p5.granted_at, Duration::from_secs(60));
        assert_eq!(p6.granted_at, Duration::from_secs(60));
        let p7 = l.acquire(1);
        assert_eq!(p7.granted_at, Duration::from_secs(120));
    }

    #[test]
    fn token_budget_waits_and_record_corrects_the_estimate() {
        let (clock, l) = limiter(None, Some(1000));
        let a = l.acquire(600);
        assert_eq!(a.granted_at, Duration::ZERO);
        clock.advance(Duration::from_secs(5));
        // Estimated 600 + 600 > 1000: waits until `a` leaves the window.
        let b = l.acquire(600);
        assert_eq!(b.granted_at, Duration::from_secs(60));
        // The real usage of `b` was 100, so 100 + 600 fits at once.
        l.record(b, 100);
        let c = l.acquire(600);
        assert_eq!(c.granted_at, Duration::from_secs(60));
        // A request bigger than the whole budget still goes, alone.
        l.record(a, 600);
        let d = l.acquire(5000);
        assert_eq!(d.granted_at, Duration::from_secs(120));
    }

    #[test]
    fn unlimited_never_waits() {
        let (clock, l) = limiter(None, None);
        for _ in 0..1000 {
            let p = l.acquire(1_000_000);
            l.record(p, 1_000_000);
        }
        assert_eq!(clock.slept(), Duration::ZERO);
    }

    /// Grant times must never put more than `limit` requests (or tokens) into any 60 s
    /// window, however the threads interleave.
    #[test]
    fn concurrent_acquire_never_exceeds_either_budget() {
        let (_clock, l) = limiter(Some(5), Some(500));
        let l = Arc::new(l);
        let grants = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let l = l.clone();
                let grants = grants.clone();
                std::thread::spawn(move || {
                    for i in 0..10u64 {
                        let tokens = 40 + 10 * ((t + i) % 7);
                        let p = l.acquire(tokens);
                        let at = p.granted_at;
                        l.record(p, tokens);
                        lock(&grants).push((at, tokens));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut grants = lock(&grants).clone();
        grants.sort();
        assert_eq!(grants.len(), 80);
        for (i, (start, _)) in grants.iter().enumerate() {
            let in_window: Vec<_> = grants[i..]
                .iter()
                .take_while(|(at, _)| *at < *start + WINDOW)
                .collect();
            assert!(
                in_window.len() <= 5,
                "{} requests in one window",
                in_window.len()
            );
            let tokens: u64 = in_window.iter().map(|(_, n)| n).sum();
            assert!(tokens <= 500, "{tokens} tokens in one window");
        }
    }

    #[test]
    fn real_clock_does_not_block_under_the_limit() {
        let l = RateLimiter::new(RateLimits {
            requests_per_minute: Some(100),
            tokens_per_minute: None,
            max_concurrency: None,
        });
        let started = Instant::now();
        for _ in 0..50 {
            let p = l.acquire(1);
            l.record(p, 1);
        }
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn max_concurrency_bounds_the_requests_in_flight() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let limiter = Arc::new(RateLimiter::new(RateLimits {
            max_concurrency: Some(2),
            ..RateLimits::default()
        }));
        let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (limiter, now, peak) = (limiter.clone(), now.clone(), peak.clone());
                std::thread::spawn(move || {
                    let permit = limiter.acquire(10);
                    let inside = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(inside, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    now.fetch_sub(1, Ordering::SeqCst);
                    limiter.record(permit, 10);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=2).contains(&peak), "at most two at once, found {peak}");
    }
}
