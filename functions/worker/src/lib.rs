//! The job worker on Lambda. An SQS event source mapping on the FIFO job queue invokes it
//! with a batch of messages; each is admitted like `Queue::receive` would (delays, attempt
//! counting, dead-lettering) and built by [`mako_jobs::worker::process`].
//!
//! The response lists partial batch failures: a job to retry (its visibility already set to
//! the back-off), a delayed job received early, and every later message of a group that
//! had one, so FIFO order within a dashboard holds. Lambda deletes the rest.

use std::collections::HashSet;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use mako_aws::{EventAdmission, EventMessage, SqsQueue};
use mako_core::AppState;
use mako_jobs::worker::{Outcome, process};

/// Processes one SQS event and returns the messages Lambda must leave on the queue.
pub async fn handle(state: &AppState, queue: &SqsQueue, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    let mut held_groups = HashSet::new();
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let group = record.attributes.get("MessageGroupId").cloned().unwrap_or_default();
        let fail = |failures: &mut Vec<BatchItemFailure>, held_groups: &mut HashSet<String>| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id.clone();
            failures.push(failure);
            held_groups.insert(group.clone());
        };
        if held_groups.contains(&group) {
            fail(&mut failures, &mut held_groups);
            continue;
        }
        let Some(receipt) = record.receipt_handle.clone() else {
            tracing::error!(message_id, "an SQS record without a receipt handle");
            fail(&mut failures, &mut held_groups);
            continue;
        };
        let message = EventMessage {
            message_id: message_id.clone(),
            receipt,
            body: record.body.clone().unwrap_or_default(),
            receive_count: record.attributes.get("ApproximateReceiveCount").cloned(),
            first_receive_timestamp: record.attributes.get("ApproximateFirstReceiveTimestamp").cloned(),
            group: Some(group.clone()),
            job_id: record
                .message_attributes
                .get("JobId")
                .and_then(|attribute| attribute.string_value.clone()),
        };
        match queue.admit_event(message).await {
            EventAdmission::Deliver(delivery) => match process(state, &delivery).await {
                Outcome::Done => {}
                Outcome::Retry(delay) => {
                    if let Err(error) = state.queue.retry(&delivery.receipt, delay).await {
                        tracing::warn!(job_id = %delivery.id, error = ?error, "failed to set a job's back-off");
                    }
                    fail(&mut failures, &mut held_groups);
                }
            },
            EventAdmission::Deferred => fail(&mut failures, &mut held_groups),
            EventAdmission::Removed => {}
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}
