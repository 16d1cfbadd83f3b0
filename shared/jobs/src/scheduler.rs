//! The scheduler tick: queue the scheduled runs that are due and give up on silent jobs.
//!
//! On AWS an EventBridge schedule invokes it every minute; the local server runs it on a
//! timer. A due run is claimed with a compare-and-set on the version read from the index,
//! which also moves `nextRunAt` forward, so two ticks (or two processes) never queue the
//! same run twice.

use chrono::{DateTime, Utc};
use mako_core::AppState;
use mako_core::repo::dashboards::Dashboards;
use mako_core::repo::materializations::{Materializations, Ticket, Trigger};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::queue::{forget, send};
use crate::schedule;

/// Due runs and silent jobs handled per tick, at most.
const BATCH: u32 = 200;

/// Counts of what one tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TickReport {
    /// Runs queued.
    pub queued: u32,
    /// Due runs skipped because a job was already in flight.
    pub skipped: u32,
    /// Jobs given up after no heartbeat for `MAKO_JOB_ABANDON_SECS`.
    pub abandoned: u32,
    /// Entries that failed and are tried again next tick.
    pub failed: u32,
}

/// Runs one tick at `now`.
pub async fn tick(state: &AppState, now: DateTime<Utc>) -> TickReport {
    let mut report = TickReport::default();
    let repo = Materializations::new(&*state.store);
    match repo.due(now, BATCH).await {
        Ok(due) => {
            for entry in due {
                match queue_due(state, entry, now).await {
                    Ok(Some(true)) => report.queued += 1,
                    Ok(Some(false)) => report.skipped += 1,
                    Ok(None) => {}
                    Err(error) => {
                        report.failed += 1;
                        tracing::warn!(error = ?error, "failed to queue a scheduled run");
                    }
                }
            }
        }
        Err(error) => tracing::warn!(error = ?error, "failed to read the due scheduled runs"),
    }

    let jobs = &state.config.jobs;
    let silent_since = now - chrono::Duration::from_std(jobs.abandon_after).unwrap_or_default();
    // A job whose last allowed attempt stopped (its worker died) is never delivered again:
    // the queue dead-letters it. Two lease periods without a heartbeat show that.
    let last_attempt_since = now - chrono::Duration::from_std(jobs.visibility * 2).unwrap_or_default();
    match repo.silent_since(last_attempt_since.max(silent_since), BATCH).await {
        Ok(silent) => {
            for entry in silent {
                let mut record = entry.value;
                let Some(ticket) = record.job.take() else { continue };
                let seen = ticket.last_sign_of_life();
                let out_of_attempts =
                    ticket.attempt >= jobs.max_attempts && ticket.retry_at.is_none() && seen <= last_attempt_since;
                if seen > silent_since && !out_of_attempts {
                    continue;
                }
                record.last_error = Some(if out_of_attempts {
                    format!(
                        "Job {} stopped during its last allowed attempt ({} of {}), as when the worker process dies; \
                         trigger the build again.",
                        ticket.id, ticket.attempt, jobs.max_attempts
                    )
                } else {
                    format!(
                        "Job {} showed no progress for {} minutes (attempt {}) and was given up; trigger the build again.",
                        ticket.id,
                        jobs.abandon_after.as_secs() / 60,
                        ticket.attempt
                    )
                });
                record.last_error_at = Some(now);
                match repo.save(&record, Some(entry.version)).await {
                    Ok(Some(_)) => {
                        report.abandoned += 1;
                        tracing::warn!(
                            workspace_id = %record.workspace_id,
                            dashboard_id = %record.dashboard_id,
                            data_source_id = %record.data_source_id,
                            job_id = %ticket.id,
                            "gave up a silent materialization job"
                        );
                    }
                    Ok(None) => {}
                    Err(error) => {
                        report.failed += 1;
                        tracing::warn!(error = ?error, "failed to give up a silent job");
                    }
                }
            }
        }
        Err(error) => tracing::warn!(error = ?error, "failed to read the silent jobs"),
    }
    if report != TickReport::default() {
        tracing::info!(report = ?report, "scheduler tick");
    }
    report
}

/// Queues one due run. `Some(true)` when queued, `Some(false)` when a job was already in
/// flight, `None` when the entry was stale or no longer scheduled.
async fn queue_due(
    state: &AppState,
    entry: mako_core::repo::Versioned<mako_core::repo::materializations::Materialization>,
    now: DateTime<Utc>,
) -> Result<Option<bool>, mako_core::ApiError> {
    let mut record = entry.value;
    if record.next_run_at.is_none_or(|next| next > now) {
        return Ok(None);
    }
    let dashboard = Dashboards::new(&*state.store)
        .get(&record.workspace_id, &record.dashboard_id)
        .await?;
    let source = dashboard
        .as_ref()
        .and_then(|dashboard| dashboard.data_source(&record.data_source_id));
    let (Some(dashboard), Some(source)) = (dashboard.as_ref(), source) else {
        forget(state, &record).await?;
        return Ok(None);
    };
    record.next_run_at = source
        .schedule
        .as_ref()
        .and_then(|schedule| schedule::next_run(schedule, now));
    let in_flight = record.job.is_some();
    let previous = record.job.clone();
    if !in_flight {
        record.job = Some(Ticket::new(Trigger::Schedule, None, now));
    }
    let Some(version) = Materializations::new(&*state.store)
        .save(&record, Some(entry.version))
        .await?
    else {
        return Ok(None);
    };
    if in_flight {
        return Ok(Some(false));
    }
    send(state, dashboard, &record, version, previous).await?;
    Ok(Some(true))
}

/// Runs the tick every `interval` inside the local server.
pub fn spawn_local(state: AppState, interval: std::time::Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        loop {
            ticker.tick().await;
            tick(&state, Utc::now()).await;
        }
    })
}
