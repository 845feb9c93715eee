//! The retry policy of the HTTP client, apart from the transport so it can be tested
//! without a server: which failures are worth another attempt, how long to wait before
//! it, and what a server's `Retry-After` asks for.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::rng::Rng;

/// Exponential backoff between retries: `min(cap, base * factor^n)` plus up to 25 %
/// seeded jitter (still capped), or the server's `Retry-After` (429/503) when longer,
/// capped at `retry_after_cap`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub base: Duration,
    /// Growth per retry.
    pub factor: f64,
    /// Longest computed delay.
    pub cap: Duration,
    /// Longest honoured `Retry-After`.
    pub retry_after_cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            factor: 2.0,
            cap: Duration::from_secs(30),
            retry_after_cap: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay before retry number `retry` (0-based), jittered from `rng`.
    pub fn delay(&self, retry: u32, rng: &mut Rng) -> Duration {
        let exp = self.factor.max(1.0).powi(retry.min(64) as i32);
        let secs = (self.base.as_secs_f64() * exp).min(self.cap.as_secs_f64());
        let jittered = secs * (1.0 + 0.25 * rng.next_f64());
        Duration::from_secs_f64(jittered.min(self.cap.as_secs_f64()))
    }

    /// [`delay`](Self::delay), or the server's `retry_after` (capped) when longer. The
    /// jitter is drawn either way, so a `Retry-After` does not shift later delays.
    pub(crate) fn wait(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        rng: &mut Rng,
    ) -> Duration {
        let delay = self.delay(retry, rng);
        match retry_after {
            Some(ra) => delay.max(ra.min(self.retry_after_cap)),
            None => delay,
        }
    }
}

/// HTTP statuses worth another attempt: request timeout, rate limit, server errors.
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || status >= 500
}

/// Whether a `Retry-After` sent with `status` is honoured (only where HTTP defines it
/// as "come back later": 429 and 503).
pub(crate) fn honours_retry_after(status: u16) -> bool {
    matches!(status, 429 | 503)
}

/// The delay a `Retry-After` value asks for: delta-seconds (`"2"`, also `"1.5"`) or an
/// HTTP-date (`"Wed, 21 Oct 2015 07:28:00 GMT"`, relative to `now`). `None` if unusable.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = parse_http_date(v)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the epoch of an HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(v: &str) -> Option<u64> {
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_parsing() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_470); // 2015-10-21 07:27:50 GMT
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 2.5 ", now),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_is_seeded() {
        let b = Backoff::default();
        let delays = |seed| {
            let mut rng = Rng::stream(seed, "llm-backoff");
            (0..10).map(|n| b.delay(n, &mut rng)).collect::<Vec<_>>()
        };
        let d = delays(1);
        assert_eq!(d, delays(1));
        assert_ne!(d, delays(2));
        for (n, delay) in d.iter().enumerate() {
            let nominal = (0.5 * 2f64.powi(n as i32)).min(30.0);
            let s = delay.as_secs_f64();
            assert!(
                s >= nominal && s <= (nominal * 1.25).min(30.0),
                "retry {n}: {s}"
            );
        }
        assert_eq!(d[9], Duration::from_secs(30));
    }
}
