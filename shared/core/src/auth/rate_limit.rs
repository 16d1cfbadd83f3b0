//! Fixed-window rate limits counted in the store, so they hold across processes and Lambda
//! instances. A counter lives at `RATE#<kind>#<sha256(subject)>` / `<window start>` and
//! expires with its window.

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

impl<'a> RateLimiter<'a> {
    pub fn new(store: &'a dyn Store, window: Duration) -> Self {
        Self { store, window }
    }

    /// Current window's key and the Unix time it ends.
    fn window_key(&self, limit: &Limit<'_>) -> (Key, i64) {
        let length = i64::try_from(self.window.as_secs().max(1)).unwrap_or(i64::MAX);
        let now = Utc::now().timestamp();
        let start = now - now.rem_euclid(length);
        let key = Key::new(
            format!("RATE#{}#{}", limit.kind, sha256_hex(limit.subject)),
            start.to_string(),
        );
        (key, start + length)
    }

    fn limited(&self, limit: &Limit<'_>, window_end: i64) -> ApiError {
        let retry_after_secs = u64::try_from(window_end - Utc::now().timestamp()).unwrap_or(1).max(1);
        tracing::warn!(kind = limit.kind, retry_after_secs, "rate limit reached");
        ApiError::RateLimited {
            message: format!("Too many attempts. Try again in {retry_after_secs} seconds."),
            retry_after_secs,
        }
    }

    /// Rejects with 429 when the count has already reached the limit, without counting.
    pub async fn check(&self, limit: Limit<'_>) -> Result<(), ApiError> {
        let (key, end) = self.window_key(&limit);
        let count = self.store.increment(&key, 0, Some(end)).await?;
        if count >= limit.max {
            return Err(self.limited(&limit, end));
        }
        Ok(())
    }

    /// Counts one attempt and rejects with 429 when it goes over the limit.
    pub async fn hit(&self, limit: Limit<'_>) -> Result<(), ApiError> {
        let (key, end) = self.window_key(&limit);
        let count = self.store.increment(&key, 1, Some(end)).await?;
        if count > limit.max {
            return Err(self.limited(&limit, end));
        }
        Ok(())
    }

    /// Counts one attempt without rejecting (a failure recorded after the fact).
    pub async fn record(&self, limit: Limit<'_>) -> Result<(), ApiError> {
        let (key, end) = self.window_key(&limit);
        self.store.increment(&key, 1, Some(end)).await?;
        Ok(())
    }

    /// Sets the current window's count back to zero.
    pub async fn reset(&self, limit: Limit<'_>) -> Result<(), ApiError> {
        let (key, end) = self.window_key(&limit);
        let count = self.store.increment(&key, 0, Some(end)).await?;
        if count != 0 {
            self.store.increment(&key, -count, Some(end)).await?;
        }
        Ok(())
    }
}
