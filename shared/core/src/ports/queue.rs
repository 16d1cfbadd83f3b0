//! `Queue`: durable jobs with FIFO groups, visibility timeouts and dead-lettering.
//!
//! Semantics shared by both adapters (SQS FIFO on AWS, a table in the SQLite file locally):
//! - jobs of one group are delivered in the order sent, and while one is leased (received
//!   and neither acknowledged nor released) the rest of its group waits;
//! - a received job stays invisible for the visibility timeout and is delivered again when
//!   the timeout passes without an acknowledgement;
//! - each delivery counts one attempt; a job received `max_attempts` times without being
//!   acknowledged moves to the dead-letter queue instead of being delivered again;
//! - a second send with the same deduplication id within five minutes enqueues nothing.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

/// Maximum delay or visibility timeout of a job (SQS's maximum visibility timeout).
pub const MAX_DELAY: Duration = Duration::from_secs(12 * 60 * 60);

/// Maximum time a `receive` call waits for a job (SQS's maximum long-polling wait).
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// Maximum number of jobs one `receive` returns (SQS's limit).
pub const MAX_RECEIVE: u32 = 10;

/// Maximum size of a job body in bytes (SQS's limit, less room for the adapter's envelope).
pub const MAX_BODY_BYTES: usize = 250 * 1024;

/// How long a deduplication id suppresses resends.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(5 * 60);

/// A job to send.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// FIFO group: jobs of one group run one at a time, in order.
    pub group: String,
    /// Resends with this id within [`DEDUP_WINDOW`] are dropped. A fresh id is used when `None`.
    pub dedup_id: Option<String>,
    pub body: Value,
    /// Time before the job becomes visible, up to [`MAX_DELAY`].
    pub delay: Duration,
}

impl NewJob {
    pub fn new(group: impl Into<String>, body: Value) -> Self {
        Self {
            group: group.into(),
            dedup_id: None,
            body,
            delay: Duration::ZERO,
        }
    }

    pub fn dedup_id(mut self, id: impl Into<String>) -> Self {
        self.dedup_id = Some(id.into());
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A received job.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Stable id of the job across deliveries.
    pub id: String,
    /// Handle for this delivery only; `ack`, `retry` and `extend` take it.
    pub receipt: String,
    pub group: String,
    pub body: Value,
    /// Deliveries so far, this one included.
    pub attempts: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The receipt is unknown or belongs to an earlier delivery of a job that has since been
    /// delivered again, acknowledged or dead-lettered.
    #[error("the receipt is no longer valid")]
    StaleReceipt,
    #[error("invalid queue request: {0}")]
    InvalidRequest(String),
    #[error("queue backend failed")]
    Backend(#[source] anyhow::Error),
}

impl QueueError {
    pub fn backend(error: impl Into<anyhow::Error>) -> Self {
        Self::Backend(error.into())
    }
}

#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Enqueues a job and returns its id (the original's id for a deduplicated resend).
    async fn send(&self, job: NewJob) -> Result<String, QueueError>;

    /// Leases up to `max` visible jobs for `visibility`, waiting up to `wait` for the first.
    async fn receive(&self, max: u32, visibility: Duration, wait: Duration) -> Result<Vec<Delivery>, QueueError>;

    /// Removes a finished job.
    async fn ack(&self, receipt: &str) -> Result<(), QueueError>;

    /// Releases a job to be delivered again after `delay` (the back-off), keeping its group
    /// blocked until then.
    async fn retry(&self, receipt: &str, delay: Duration) -> Result<(), QueueError>;

    /// Extends the lease of a job still being worked on (the heartbeat).
    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError>;

    /// Leases up to `max` jobs from the dead-letter queue for inspection. They stay there and
    /// become visible again after `visibility`; `ack_dead_letter` removes one for good.
    async fn dead_letters(&self, max: u32, visibility: Duration) -> Result<Vec<Delivery>, QueueError>;

    /// Removes a job from the dead-letter queue.
    async fn ack_dead_letter(&self, receipt: &str) -> Result<(), QueueError>;
}

/// Checks a job against the limits shared by both adapters.
pub fn validate_job(job: &NewJob) -> Result<(), QueueError> {
    let valid_token = |text: &str| !text.is_empty() && text.len() <= 128 && text.bytes().all(|b| b.is_ascii_graphic());
    if !valid_token(&job.group) {
        return Err(QueueError::InvalidRequest(
            "the group must be 1 to 128 printable ASCII characters".into(),
        ));
    }
    if let Some(id) = &job.dedup_id
        && !valid_token(id)
    {
        return Err(QueueError::InvalidRequest(
            "the deduplication id must be 1 to 128 printable ASCII characters".into(),
        ));
    }
    if job.delay > MAX_DELAY {
        return Err(QueueError::InvalidRequest(format!(
            "the delay is {}s, over the maximum of {}s",
            job.delay.as_secs(),
            MAX_DELAY.as_secs()
        )));
    }
    let size = job.body.to_string().len();
    if size > MAX_BODY_BYTES {
        return Err(QueueError::InvalidRequest(format!(
            "the job body is {size} bytes, over the maximum of {MAX_BODY_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Checks the arguments of `receive` and `dead_letters`.
pub fn validate_receive(max: u32, visibility: Duration) -> Result<(), QueueError> {
    if max == 0 || max > MAX_RECEIVE {
        return Err(QueueError::InvalidRequest(format!(
            "receive takes 1 to {MAX_RECEIVE} jobs at a time, got {max}"
        )));
    }
    if visibility.is_zero() || visibility > MAX_DELAY {
        return Err(QueueError::InvalidRequest(format!(
            "the visibility timeout must be between 1s and {}s",
            MAX_DELAY.as_secs()
        )));
    }
    Ok(())
}
