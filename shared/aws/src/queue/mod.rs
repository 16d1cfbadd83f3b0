//! `Queue` on an SQS FIFO queue and its dead-letter queue.
//!
//! SQS provides the FIFO groups, visibility timeouts and five-minute deduplication. The
//! adapter adds what FIFO queues lack: per-job delays (see [`envelope`]) and moving a job
//! to the dead-letter queue after exactly `queue_max_attempts` deliveries. The queue's own
//! redrive policy (`maxReceiveCount` = attempts + 2) only catches jobs whose receiver
//! crashed before it could move them.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use mako_core::ports::queue::{MAX_DELAY, MAX_WAIT, validate_job, validate_receive};
use mako_core::ports::{Delivery, NewJob, Queue, QueueError};
use serde_json::Value;

use crate::errors::{backend, chain};
use crate::time::{ceil_seconds, now_millis};
use envelope::Envelope;

mod envelope;

/// Message attribute that carries a job's original message id into the dead-letter queue,
/// where SQS gives the moved message a new id.
const JOB_ID_ATTRIBUTE: &str = "JobId";

/// Long-poll time of `dead_letters`, so that inspection does not miss jobs the way a short
/// poll, which samples only some SQS servers, can.
const DEAD_LETTER_WAIT_SECONDS: i32 = 1;

/// A message as a Lambda SQS event carries it.
#[derive(Clone, Debug, Default)]
pub struct EventMessage {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    /// The `ApproximateReceiveCount` attribute.
    pub receive_count: Option<String>,
    /// The `ApproximateFirstReceiveTimestamp` attribute.
    pub first_receive_timestamp: Option<String>,
    /// The `MessageGroupId` attribute.
    pub group: Option<String>,
    /// The `JobId` message attribute, set on dead letters.
    pub job_id: Option<String>,
}

/// Admission of a message that an SQS event delivered to the worker function.
#[derive(Debug)]
pub enum EventAdmission {
    /// Process it.
    Deliver(Delivery),
    /// A delayed job received early: its visibility now hides it until due. Report it as a
    /// batch item failure so Lambda leaves it on the queue.
    Deferred,
    /// It used up its attempts and moved to the dead-letter queue.
    Removed,
}

/// `Queue` adapter over an SQS FIFO job queue and its FIFO dead-letter queue.
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    dead_letter_queue_url: String,
    max_attempts: u32,
}

/// A message as received, with the attributes the adapter reads.
#[derive(Clone, Debug, PartialEq)]
struct Received {
    message_id: String,
    /// Id reported to callers: the original message id, also for dead letters.
    job_id: String,
    receipt: String,
    group: String,
    text: String,
    receive_count: u32,
    first_receive_millis: Option<i64>,
}

/// Action that `receive` takes on a message from the job queue.
#[derive(Debug)]
enum Admission {
    Deliver(Delivery),
    /// The job is delayed: hide it for this many more seconds.
    Defer {
        seconds: i64,
    },
    /// The job used up its attempts or cannot be decoded.
    DeadLetter {
        reason: String,
    },
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: String, dead_letter_queue_url: String, max_attempts: u32) -> Self {
        Self {
            client,
            queue_url,
            dead_letter_queue_url,
            max_attempts,
        }
    }

    /// The SQS client, for callers that read the queue as SQS itself does (tests of the
    /// worker function build Lambda events from it).
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn backend<E, R>(operation: &'static str, queue_url: &str, error: SdkError<E, R>) -> QueueError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        QueueError::Backend(backend("SQS", operation, queue_url, error))
    }

    async fn receive_messages(
        &self,
        queue_url: &str,
        max: u32,
        visibility: Duration,
        wait_seconds: i32,
    ) -> Result<Vec<Received>, QueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(i32::try_from(max).unwrap_or(i32::MAX))
            .visibility_timeout(i32::try_from(ceil_seconds(visibility)).unwrap_or(i32::MAX))
            .wait_time_seconds(wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateFirstReceiveTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_attribute_names(JOB_ID_ATTRIBUTE)
            .send()
            .await
            .map_err(|error| Self::backend("ReceiveMessage", queue_url, error))?;

        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|message| received(message, queue_url))
            .collect())
    }

    /// Changes the visibility timeout of a received message.
    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError> {
        if timeout > MAX_DELAY {
            return Err(QueueError::InvalidRequest(format!(
                "the timeout is {}s, over the maximum of {}s",
                timeout.as_secs(),
                MAX_DELAY.as_secs()
            )));
        }
        if receipt.is_empty() {
            return Err(QueueError::StaleReceipt);
        }
        let result = self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(i32::try_from(ceil_seconds(timeout)).unwrap_or(i32::MAX))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_receipt_handle_is_invalid() || e.is_message_not_inflight()) =>
            {
                Err(QueueError::StaleReceipt)
            }
            Err(error) => Err(Self::backend("ChangeMessageVisibility", &self.queue_url, error)),
        }
    }

    async fn delete(&self, queue_url: &str, receipt: &str) -> Result<(), QueueError> {
        if receipt.is_empty() {
            return Err(QueueError::StaleReceipt);
        }
        let result = self
            .client
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_receipt_handle_is_invalid() || e.is_invalid_id_format()) =>
            {
                Err(QueueError::StaleReceipt)
            }
            Err(error) => Err(Self::backend("DeleteMessage", queue_url, error)),
        }
    }

    /// Copies a message to the dead-letter queue, then deletes it from the job queue. The
    /// copy's deduplication id is the original message id, so a repeat after a failed
    /// delete adds no second copy within five minutes.
    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<(), QueueError> {
        let job_id = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&message.job_id)
            .build()
            .map_err(QueueError::backend)?;
        // SQS requires a group on FIFO queues; a message from this queue always has one.
        let group = if message.group.is_empty() {
            "dead-letter"
        } else {
            message.group.as_str()
        };
        self.client
            .send_message()
            .queue_url(&self.dead_letter_queue_url)
            .message_body(&message.text)
            .message_group_id(group)
            .message_deduplication_id(&message.message_id)
            .message_attributes(JOB_ID_ATTRIBUTE, job_id)
            .send()
            .await
            .map_err(|error| Self::backend("SendMessage", &self.dead_letter_queue_url, error))?;

        match self.delete(&self.queue_url, &message.receipt).await {
            Ok(()) => {}
            // Another receiver has the job now. It will see the attempts and move it again,
            // and the deduplication id turns that second copy into a no-op.
            Err(QueueError::StaleReceipt) => {
                tracing::warn!(job_id = %message.job_id, "dead-lettered job was received again before its deletion");
            }
            Err(other) => return Err(other),
        }
        tracing::warn!(
            job_id = %message.job_id,
            group = %message.group,
            attempts = message.receive_count,
            reason,
            "moved job to the dead-letter queue"
        );
        Ok(())
    }

    /// Admits a message that a Lambda SQS event delivered, with the same delays, attempt
    /// counting and dead-lettering as [`Queue::receive`].
    pub async fn admit_event(&self, message: EventMessage) -> EventAdmission {
        let received = Received {
            job_id: message.job_id.unwrap_or_else(|| message.message_id.clone()),
            message_id: message.message_id,
            receipt: message.receipt,
            group: message.group.unwrap_or_default(),
            text: message.body,
            receive_count: message.receive_count.and_then(|count| count.parse().ok()).unwrap_or(1),
            first_receive_millis: message
                .first_receive_timestamp
                .and_then(|timestamp| timestamp.parse().ok()),
        };
        self.admit(received).await
    }

    /// Delivers, defers or dead-letters one message from the job queue. A failure to defer
    /// or dead-letter is logged and the message skipped: it becomes visible again after
    /// the visibility timeout, and failing the whole receive would lose the other leases.
    async fn admit(&self, message: Received) -> EventAdmission {
        match admission(&message, now_millis(), self.max_attempts) {
            Admission::Deliver(delivery) => EventAdmission::Deliver(delivery),
            Admission::Defer { seconds } => {
                tracing::debug!(job_id = %message.job_id, seconds, "delayed job received early; hiding it until due");
                let timeout = Duration::from_secs(seconds.unsigned_abs());
                match self.change_visibility(&message.receipt, timeout).await {
                    Ok(()) | Err(QueueError::StaleReceipt) => {}
                    Err(error) => {
                        tracing::error!(job_id = %message.job_id, error = %chain(&error), "deferring a delayed job failed");
                    }
                }
                EventAdmission::Deferred
            }
            Admission::DeadLetter { reason } => {
                if let Err(error) = self.dead_letter(&message, &reason).await {
                    tracing::error!(
                        job_id = %message.job_id,
                        reason,
                        error = %chain(&error),
                        "moving a job to the dead-letter queue failed"
                    );
                }
                EventAdmission::Removed
            }
        }
    }
}

/// Extracts what the adapter needs from a message. A message without a receipt handle
/// cannot be acknowledged, so it is logged and `None` is returned.
fn received(message: Message, queue_url: &str) -> Option<Received> {
    let attribute = |name: MessageSystemAttributeName| {
        message
            .attributes()
            .and_then(|attributes| attributes.get(&name))
            .cloned()
    };
    let receive_count = attribute(MessageSystemAttributeName::ApproximateReceiveCount)
        .and_then(|count| count.parse().ok())
        .unwrap_or(1);
    let first_receive_millis = attribute(MessageSystemAttributeName::ApproximateFirstReceiveTimestamp)
        .and_then(|timestamp| timestamp.parse().ok());
    let group = attribute(MessageSystemAttributeName::MessageGroupId).unwrap_or_default();
    let job_id = message
        .message_attributes()
        .and_then(|attributes| attributes.get(JOB_ID_ATTRIBUTE))
        .and_then(|value| value.string_value())
        .map(str::to_owned);

    let message_id = message.message_id.unwrap_or_default();
    let Some(receipt) = message.receipt_handle else {
        tracing::error!(queue_url, message_id, "received a message without a receipt handle");
        return None;
    };
    Some(Received {
        job_id: job_id.unwrap_or_else(|| message_id.clone()),
        message_id,
        receipt,
        group,
        text: message.body.unwrap_or_default(),
        receive_count,
        first_receive_millis,
    })
}

/// Counts the deliveries of a job so far, this one included. A delayed job received
/// before `not_before` was hidden until then and that receive is no attempt. The deferral
/// hides it until `not_before` rounded up to a second, so at most one receive is early,
/// and it was early exactly when the first receive came before `not_before`.
fn attempts(receive_count: u32, not_before: Option<i64>, first_receive_millis: Option<i64>) -> u32 {
    let received_early = match (not_before, first_receive_millis) {
        (None, _) => false,
        (Some(not_before), Some(first)) => first < not_before,
        // Without the timestamp, assume the usual case of one early receive.
        (Some(_), None) => true,
    };
    receive_count.saturating_sub(u32::from(received_early)).max(1)
}

fn admission(message: &Received, now_millis: i64, max_attempts: u32) -> Admission {
    let envelope = match Envelope::decode(&message.text) {
        Ok(envelope) => envelope,
        Err(problem) => return Admission::DeadLetter { reason: problem },
    };
    if let Some(not_before) = envelope.not_before
        && not_before > now_millis
    {
        // A sender's clock ahead of ours could ask for more than SQS allows.
        let remaining = Duration::from_millis((not_before - now_millis).unsigned_abs()).min(MAX_DELAY);
        return Admission::Defer {
            seconds: ceil_seconds(remaining),
        };
    }

    let attempts = attempts(message.receive_count, envelope.not_before, message.first_receive_millis);
    if attempts > max_attempts {
        return Admission::DeadLetter {
            reason: format!("received {attempts} times, over the maximum of {max_attempts} attempts"),
        };
    }
    Admission::Deliver(Delivery {
        id: message.job_id.clone(),
        receipt: message.receipt.clone(),
        group: message.group.clone(),
        body: envelope.body,
        attempts,
    })
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, job: NewJob) -> Result<String, QueueError> {
        validate_job(&job)?;
        let not_before = (!job.delay.is_zero())
            .then(|| now_millis().saturating_add(i64::try_from(job.delay.as_millis()).unwrap_or(i64::MAX)));
        let text = Envelope {
            body: job.body,
            not_before,
        }
        .encode();
        let dedup_id = job.dedup_id.unwrap_or_else(|| ulid::Ulid::new().to_string());

        let output = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(text)
            .message_group_id(&job.group)
            .message_deduplication_id(&dedup_id)
            .send()
            .await
            .map_err(|error| Self::backend("SendMessage", &self.queue_url, error))?;
        let id = output.message_id.ok_or_else(|| {
            QueueError::backend(anyhow::anyhow!(
                "SQS SendMessage to {} returned no message id",
                self.queue_url
            ))
        })?;
        tracing::debug!(job_id = %id, group = %job.group, dedup_id, delay_ms = job.delay.as_millis(), "sent job");
        Ok(id)
    }

    async fn receive(&self, max: u32, visibility: Duration, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        validate_receive(max, visibility)?;
        let deadline = Instant::now() + wait.min(MAX_WAIT);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let wait_seconds = i32::try_from(ceil_seconds(remaining)).unwrap_or(i32::MAX);
            let messages = self
                .receive_messages(&self.queue_url, max, visibility, wait_seconds)
                .await?;

            let mut deliveries = Vec::new();
            for message in messages {
                if let EventAdmission::Deliver(delivery) = self.admit(message).await {
                    deliveries.push(delivery);
                }
            }
            // Every message received was deferred or dead-lettered: keep polling while the
            // caller's wait lasts.
            if !deliveries.is_empty() || Instant::now() >= deadline {
                return Ok(deliveries);
            }
        }
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        self.delete(&self.queue_url, receipt).await
    }

    async fn retry(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        self.change_visibility(receipt, delay).await
    }

    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError> {
        self.change_visibility(receipt, visibility).await
    }

    async fn dead_letters(&self, max: u32, visibility: Duration) -> Result<Vec<Delivery>, QueueError> {
        validate_receive(max, visibility)?;
        let messages = self
            .receive_messages(&self.dead_letter_queue_url, max, visibility, DEAD_LETTER_WAIT_SECONDS)
            .await?;

        Ok(messages
            .into_iter()
            .map(|message| {
                // Show an undecodable message as its raw text, since it is here to be inspected.
                let body = Envelope::decode(&message.text)
                    .map(|envelope| envelope.body)
                    .unwrap_or_else(|_| Value::String(message.text.clone()));
                Delivery {
                    id: message.job_id,
                    receipt: message.receipt,
                    group: message.group,
                    body,
                    attempts: message.receive_count,
                }
            })
            .collect())
    }

    async fn ack_dead_letter(&self, receipt: &str) -> Result<(), QueueError> {
        self.delete(&self.dead_letter_queue_url, receipt).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn message(text: &str, receive_count: u32, first_receive_millis: Option<i64>) -> Received {
        Received {
            message_id: "m-1".into(),
            job_id: "m-1".into(),
            receipt: "r-1".into(),
            group: "g".into(),
            text: text.into(),
            receive_count,
            first_receive_millis,
        }
    }

    #[test]
    fn immediate_job_counts_every_receive() {
        assert_eq!(attempts(1, None, Some(NOW)), 1);
        assert_eq!(attempts(3, None, Some(NOW)), 3);
    }

    #[test]
    fn delayed_job_discounts_early_receive() {
        assert_eq!(attempts(2, Some(NOW), Some(NOW - 1500)), 1);
        assert_eq!(
            attempts(1, Some(NOW), Some(NOW + 10)),
            1,
            "first received after the delay"
        );
        assert_eq!(attempts(2, Some(NOW), Some(NOW + 10)), 2);
        assert_eq!(
            attempts(2, Some(NOW), None),
            1,
            "no timestamp: one early receive assumed"
        );
    }

    #[test]
    fn due_job_is_delivered() {
        let text = Envelope {
            body: json!({"k": 1}),
            not_before: None,
        }
        .encode();
        let Admission::Deliver(delivery) = admission(&message(&text, 2, Some(NOW)), NOW, 3) else {
            panic!("expected a delivery");
        };
        assert_eq!(delivery.id, "m-1");
        assert_eq!(delivery.receipt, "r-1");
        assert_eq!(delivery.group, "g");
        assert_eq!(delivery.body, json!({"k": 1}));
        assert_eq!(delivery.attempts, 2);
    }

    #[test]
    fn early_delayed_job_is_deferred_in_whole_seconds() {
        let text = Envelope {
            body: json!(1),
            not_before: Some(NOW + 1500),
        }
        .encode();
        let admission = admission(&message(&text, 1, Some(NOW)), NOW, 3);
        assert!(matches!(admission, Admission::Defer { seconds: 2 }), "{admission:?}");
    }

    #[test]
    fn job_past_max_attempts_is_dead_lettered() {
        let text = Envelope {
            body: json!(1),
            not_before: None,
        }
        .encode();
        assert!(matches!(
            admission(&message(&text, 3, Some(NOW)), NOW, 3),
            Admission::Deliver(_)
        ));
        assert!(matches!(
            admission(&message(&text, 4, Some(NOW)), NOW, 3),
            Admission::DeadLetter { .. }
        ));
    }

    #[test]
    fn malformed_message_is_dead_lettered() {
        assert!(matches!(
            admission(&message("plain text", 1, Some(NOW)), NOW, 3),
            Admission::DeadLetter { .. }
        ));
    }
}
