//! `Queue` conformance: delivery, acknowledgement, visibility timeouts, FIFO groups,
//! back-off, dead-lettering, deduplication, delays and long polling.

use std::time::{Duration, Instant};

use mako_core::ports::{Delivery, NewJob, Queue, QueueError};
use serde_json::json;

use crate::fixtures::{Adapters, QUEUE_MAX_ATTEMPTS};

const SECOND: Duration = Duration::from_secs(1);
const NO_WAIT: Duration = Duration::ZERO;

async fn receive(queue: &dyn Queue, visibility: Duration) -> Vec<Delivery> {
    queue.receive(10, visibility, NO_WAIT).await.expect("receive")
}

/// Receives until a job arrives or `within` passes.
async fn receive_within(queue: &dyn Queue, visibility: Duration, within: Duration) -> Vec<Delivery> {
    let deadline = Instant::now() + within;
    loop {
        let jobs = receive(queue, visibility).await;
        if !jobs.is_empty() || Instant::now() >= deadline {
            return jobs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn send_receive_ack(adapters: &Adapters) {
    let queue = &*adapters.queue;
    let body = json!({ "kind": "materialize", "id": "ds_1", "big": 9007199254740993u64 });

    let id = queue.send(NewJob::new("dash_1", body.clone())).await.expect("send");
    let jobs = receive(queue, 30 * SECOND).await;

    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, id);
    assert_eq!(jobs[0].body, body);
    assert_eq!(jobs[0].group, "dash_1");
    assert_eq!(jobs[0].attempts, 1);

    queue.ack(&jobs[0].receipt).await.expect("ack");
    assert!(
        receive(queue, 30 * SECOND).await.is_empty(),
        "an acknowledged job is gone"
    );
}

pub async fn unacknowledged_job_is_redelivered(adapters: &Adapters) {
    let queue = &*adapters.queue;
    queue.send(NewJob::new("g", json!({"n": 1}))).await.expect("send");

    let first = receive(queue, SECOND).await;
    assert_eq!(first.len(), 1);
    assert!(receive(queue, SECOND).await.is_empty(), "a leased job is invisible");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = receive_within(queue, 30 * SECOND, 5 * SECOND).await;

    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, first[0].id);
    assert_eq!(second[0].attempts, 2);
    assert_ne!(second[0].receipt, first[0].receipt);
    queue
        .ack(&second[0].receipt)
        .await
        .expect("ack with the current receipt");
}

pub async fn fifo_group_waits_for_leased_job(adapters: &Adapters) {
    let queue = &*adapters.queue;
    queue.send(NewJob::new("A", json!("a1"))).await.expect("send a1");
    queue.send(NewJob::new("A", json!("a2"))).await.expect("send a2");
    queue.send(NewJob::new("B", json!("b1"))).await.expect("send b1");

    // One job at a time: SQS may return several jobs of one group in a single batch, but
    // never hands a group to a second consumer while one of its jobs is leased.
    let mut leased = Vec::new();
    for _ in 0..3 {
        leased.extend(queue.receive(1, 30 * SECOND, NO_WAIT).await.expect("receive"));
    }
    leased.sort_by_key(|job| job.group.clone());
    let bodies: Vec<_> = leased.iter().map(|job| job.body.clone()).collect();
    assert_eq!(bodies, vec![json!("a1"), json!("b1")], "one job per group while leased");

    for job in &leased {
        queue.ack(&job.receipt).await.expect("ack");
    }
    let next = receive_within(queue, 30 * SECOND, 5 * SECOND).await;
    let bodies: Vec<_> = next.iter().map(|job| job.body.clone()).collect();
    assert_eq!(bodies, vec![json!("a2")]);
}

pub async fn retry_delays_redelivery(adapters: &Adapters) {
    let queue = &*adapters.queue;
    queue.send(NewJob::new("g", json!("retry me"))).await.expect("send");
    let first = receive(queue, 30 * SECOND).await;
    assert_eq!(first.len(), 1);

    queue.retry(&first[0].receipt, 2 * SECOND).await.expect("retry");
    assert!(
        receive(queue, 30 * SECOND).await.is_empty(),
        "invisible during the back-off"
    );

    tokio::time::sleep(Duration::from_millis(2200)).await;
    let again = receive_within(queue, 30 * SECOND, 5 * SECOND).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, first[0].id);
    assert_eq!(again[0].attempts, 2);
}

pub async fn extend_keeps_job_leased(adapters: &Adapters) {
    let queue = &*adapters.queue;
    queue.send(NewJob::new("g", json!("slow"))).await.expect("send");
    let jobs = receive(queue, SECOND).await;
    assert_eq!(jobs.len(), 1);

    queue.extend(&jobs[0].receipt, 5 * SECOND).await.expect("extend");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    assert!(
        receive(queue, SECOND).await.is_empty(),
        "the extended lease still holds"
    );
    queue.ack(&jobs[0].receipt).await.expect("ack after extending");
}

pub async fn job_is_dead_lettered_after_max_attempts(adapters: &Adapters) {
    let queue = &*adapters.queue;
    let id = queue
        .send(NewJob::new("poison", json!({"poison": true})))
        .await
        .expect("send");

    for attempt in 1..=QUEUE_MAX_ATTEMPTS {
        let jobs = receive_within(queue, SECOND, 5 * SECOND).await;
        assert_eq!(jobs.len(), 1, "attempt {attempt}");
        assert_eq!(jobs[0].attempts, attempt);
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }

    assert!(
        receive_within(queue, SECOND, 3 * SECOND).await.is_empty(),
        "no delivery past the limit"
    );
    let dead = queue.dead_letters(10, 30 * SECOND).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, id);
    assert_eq!(dead[0].body, json!({"poison": true}));
    assert_eq!(dead[0].group, "poison");

    queue.ack_dead_letter(&dead[0].receipt).await.expect("ack dead letter");
}

pub async fn duplicate_send_is_dropped(adapters: &Adapters) {
    let queue = &*adapters.queue;
    queue
        .send(NewJob::new("g", json!(1)).dedup_id("run-42"))
        .await
        .expect("send");
    queue
        .send(NewJob::new("g", json!(2)).dedup_id("run-42"))
        .await
        .expect("resend");
    queue
        .send(NewJob::new("g", json!(3)).dedup_id("run-43"))
        .await
        .expect("other send");

    let mut bodies = Vec::new();
    for _ in 0..3 {
        for job in receive_within(queue, 30 * SECOND, 2 * SECOND).await {
            bodies.push(job.body.clone());
            queue.ack(&job.receipt).await.expect("ack");
        }
    }

    assert_eq!(bodies, vec![json!(1), json!(3)]);
}

pub async fn delayed_job_waits(adapters: &Adapters) {
    let queue = &*adapters.queue;
    let sent = Instant::now();
    queue
        .send(NewJob::new("g", json!("later")).delay(2 * SECOND))
        .await
        .expect("send");

    assert!(
        receive(queue, 30 * SECOND).await.is_empty(),
        "invisible before the delay"
    );
    let jobs = receive_within(queue, 30 * SECOND, 6 * SECOND).await;

    assert_eq!(jobs.len(), 1);
    assert!(
        sent.elapsed() >= Duration::from_millis(1900),
        "delivered after {:?}",
        sent.elapsed()
    );
    assert_eq!(jobs[0].attempts, 1, "waiting out a delay is not an attempt");
}

pub async fn receive_waits_for_new_job(adapters: &Adapters) {
    let queue = adapters.queue.clone();
    let sender = {
        let queue = queue.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            queue.send(NewJob::new("g", json!("wake"))).await
        })
    };

    let started = Instant::now();
    let jobs = queue.receive(1, 30 * SECOND, 5 * SECOND).await.expect("long poll");

    sender.await.expect("sender").expect("send");
    assert_eq!(jobs.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "returned after {:?}",
        started.elapsed()
    );
}

pub async fn invalid_requests_are_rejected(adapters: &Adapters) {
    let queue = &*adapters.queue;
    let cases = [
        NewJob::new("", json!(1)),
        NewJob::new("g", json!(1)).dedup_id("with space"),
        NewJob::new("g", json!("x".repeat(300 * 1024))),
        NewJob::new("g", json!(1)).delay(Duration::from_secs(13 * 60 * 60)),
    ];
    for job in cases {
        let result = queue.send(job.clone()).await;
        assert!(
            matches!(result, Err(QueueError::InvalidRequest(_))),
            "{job:?}: {result:?}"
        );
    }

    let result = queue.receive(0, SECOND, NO_WAIT).await;
    assert!(matches!(result, Err(QueueError::InvalidRequest(_))), "{result:?}");
    let result = queue.receive(11, SECOND, NO_WAIT).await;
    assert!(matches!(result, Err(QueueError::InvalidRequest(_))), "{result:?}");
    assert!(
        queue.ack("not-a-receipt").await.is_err(),
        "an unknown receipt is an error"
    );
}
