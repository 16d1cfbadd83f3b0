//! Rate limits counted in the store, so they hold across processes and Lambda instances.
//!
//! Each limit uses the sliding-window counter method: counts are kept per fixed window, and
//! the estimate for the last window's length is the current window's count plus the previous
//! window's count weighted by how much of it still overlaps. That avoids the double burst
//! that plain fixed windows allow at their boundary. A counter lives at
//! `RATE#<kind>#<sha256(subject)>` / `<window start>` and expires two windows after it starts.
//!
//! An attempt is counted before the work it guards (such as a password check), so requests
//! sent in parallel cannot all pass the check before any of them is counted.

use std::time::Duration;

use chrono::Utc;

use super::tokens::sha256_hex;
use crate::error::ApiError;
use crate::ports::{Key, Store};

pub struct RateLimiter<'a> {
    store: &'a dyn Store,
    window: Duration,
}

/// One limit: the kind of attempt, the subject it is counted for, and the maximum per window.
#[derive(Clone, Copy)]
pub struct Limit<'s> {
    pub kind: &'static str,
    pub subject: &'s str,
    pub max: i64,
}

/// The two windows a limit is estimated over, at one instant.
struct Windows {
    current: Key,
    previous: Key,
    /// Window length in seconds.
    length: i64,
    /// Seconds since the current window started.
    elapsed: i64,
    /// Unix time at which the current window's counter expires.
    expires_at: i64,
}

impl<'a> RateLimiter<'a> {
    pub fn new(store: &'a dyn Store, window: Duration) -> Self {
        Self { store, window }
    }

    fn windows(&self, limit: &Limit<'_>) -> Windows {
        let length = i64::try_from(self.window.as_secs().max(1)).unwrap_or(i64::MAX / 4);
        let now = Utc::now().timestamp();
        let start = now - now.rem_euclid(length);
        let partition = format!("RATE#{}#{}", limit.kind, sha256_hex(limit.subject));
        Windows {
            current: Key::new(partition.clone(), start.to_string()),
            previous: Key::new(partition, (start - length).to_string()),
            length,
            elapsed: now - start,
            expires_at: start + 2 * length,
        }
    }

    /// Adds `delta` to the current window and returns the previous and current counts.
    async fn counts(&self, windows: &Windows, delta: i64) -> Result<(i64, i64), ApiError> {
        let current = self
            .store
            .increment(&windows.current, delta, Some(windows.expires_at))
            .await?;
        let previous = self
            .store
            .increment(&windows.previous, 0, Some(windows.expires_at - windows.length))
            .await?;
        Ok((previous, current))
    }

    /// Counts one attempt and rejects it with 429 when the estimate goes over the limit.
    pub async fn attempt(&self, limit: Limit<'_>) -> Result<(), ApiError> {
        let windows = self.windows(&limit);
        let (previous, current) = self.counts(&windows, 1).await?;
        let estimate = weighted(previous, current, windows.elapsed, windows.length);
        if estimate > limit.max as f64 {
            let retry_after_secs = retry_after(previous, current, limit.max, windows.elapsed, windows.length);
            tracing::warn!(kind = limit.kind, retry_after_secs, "rate limit reached");
            return Err(ApiError::RateLimited {
                message: format!("Too many attempts. Try again in {retry_after_secs} seconds."),
                retry_after_secs,
            });
        }
        Ok(())
    }

    /// Sets the counts of both windows back to zero (after a successful login).
    pub async fn reset(&self, limit: Limit<'_>) -> Result<(), ApiError> {
        let windows = self.windows(&limit);
        for (key, expires_at) in [
            (&windows.current, windows.expires_at),
            (&windows.previous, windows.expires_at - windows.length),
        ] {
            let count = self.store.increment(key, 0, Some(expires_at)).await?;
            if count != 0 {
                self.store.increment(key, -count, Some(expires_at)).await?;
            }
        }
        Ok(())
    }
}

/// Estimates the attempts in the last window's length: the current count plus the share of
/// the previous window that still overlaps it.
fn weighted(previous: i64, current: i64, elapsed: i64, length: i64) -> f64 {
    let overlap = (length - elapsed) as f64 / length as f64;
    previous as f64 * overlap + current as f64
}

/// Returns the seconds until one more attempt would be within `max`, assuming no further
/// attempts meanwhile. At least 1.
fn retry_after(previous: i64, current: i64, max: i64, elapsed: i64, length: i64) -> u64 {
    // While the current window lasts, only the previous window's share decays.
    let left_in_window = length - elapsed;
    if current < max && previous > 0 {
        for wait in 1..=left_in_window {
            if weighted(previous, current + 1, elapsed + wait, length) <= max as f64 {
                return wait as u64;
            }
        }
    }

    // After it, the current count becomes the previous one and decays in turn.
    let mut wait_into_next = 0;
    while wait_into_next < length && weighted(current, 1, wait_into_next, length) > max as f64 {
        wait_into_next += 1;
    }
    u64::try_from(left_in_window + wait_into_next).unwrap_or(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_weights_the_previous_window() {
        assert_eq!(weighted(10, 0, 0, 100), 10.0);
        assert_eq!(weighted(10, 2, 50, 100), 7.0);
        assert_eq!(weighted(10, 2, 100, 100), 2.0);
    }

    #[test]
    fn retry_after_waits_out_the_overlap() {
        // Eleven attempts this window: the next one fits once 11 * (100 - t) / 100 + 1 <= 10
        // in the next window, at t = 19.
        assert_eq!(retry_after(0, 11, 10, 40, 100), 60 + 19);
        // The previous window is what blocks: its share decays within this window.
        assert_eq!(retry_after(10, 1, 10, 0, 100), 20);
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        assert!(retry_after(0, 11, 10, 99, 100) >= 1);
        assert!(retry_after(0, 0, 10, 100, 100) >= 1);
    }
}
