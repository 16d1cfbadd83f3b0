//! The worker: takes jobs from the `Queue` port and builds them.
//!
//! A build first marks its data source `building` (a compare-and-set that also checks the
//! job is still the current one), then runs while a heartbeat renews the job's lease on the
//! queue and records a sign of life. A worker that dies stops both: the queue delivers the
//! job again when the lease runs out, and the scheduler's sweep gives up on jobs that stay
//! silent for `MAKO_JOB_ABANDON_SECS`. A failed attempt is retried with exponential back-off
//! until `MAKO_QUEUE_MAX_ATTEMPTS`; errors that a retry cannot fix (a syntax error, a
//! deleted connection) end the job at once. Either way the previous artifact stays served.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mako_core::ids::{DashboardId, JobId, WorkspaceId};
use mako_core::ports::Delivery;
use mako_core::repo::dashboards::{Dashboard, Dashboards, DataSource};
use mako_core::repo::materializations::{Artifact, ArtifactColumn, Materialization, Materializations};
use mako_core::{ApiError, AppState};
use mako_databases::run::{RunLimits, bind, request_values};
use rand::RngExt;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::build::{BuildError, build};
use crate::queue::{Job, artifact_key, forget};

/// Maximum back-off between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// Compare-and-set attempts on a data source's state before the worker gives up.
const ATTEMPTS: usize = 16;

/// Settlement of a processed delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledge: the job is finished, failed for good, or no longer wanted.
    Done,
    /// Release it to be delivered again after this delay.
    Retry(Duration),
}

/// Processes one delivery. Every error becomes an outcome (retry or done), so it returns
/// no error.
pub async fn process(state: &AppState, delivery: &Delivery) -> Outcome {
    let job: Job = match serde_json::from_value(delivery.body.clone()) {
        Ok(job) => job,
        Err(error) => {
            tracing::error!(job_id = %delivery.id, error = %error, "dropping a job whose body is not understood");
            return Outcome::Done;
        }
    };
    match job {
        Job::Materialize {
            workspace_id,
            dashboard_id,
            data_source_id,
            job_id,
        } => {
            let target = Target {
                workspace: workspace_id,
                dashboard: dashboard_id,
                data_source: data_source_id,
                job: job_id,
            };
            materialize(state, delivery, &target).await
        }
    }
}

/// Processes a delivery and settles it on the queue.
pub async fn process_and_settle(state: &AppState, delivery: &Delivery) {
    let outcome = process(state, delivery).await;
    let settled = match outcome {
        Outcome::Done => state.queue.ack(&delivery.receipt).await,
        Outcome::Retry(delay) => state.queue.retry(&delivery.receipt, delay).await,
    };
    if let Err(error) = settled {
        tracing::warn!(job_id = %delivery.id, error = ?error, "failed to settle a job; it will be delivered again");
    }
}

/// The data source a job builds.
struct Target {
    workspace: WorkspaceId,
    dashboard: DashboardId,
    data_source: String,
    job: JobId,
}

/// The dashboard, data source and blob key of a claimed job.
struct Claimed {
    dashboard: Dashboard,
    source: DataSource,
    key: String,
    revision: u64,
    started_at: chrono::DateTime<Utc>,
}

/// Back-off before attempt `attempt + 1`: the base doubled per attempt, capped, with jitter.
fn backoff(state: &AppState, attempt: u32) -> Duration {
    let base = state.config.jobs.retry_base;
    let doubled = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = doubled.min(MAX_BACKOFF);
    let jitter = rand::rng().random_range(0.0..0.2);
    capped.mul_f64(1.0 + jitter)
}

async fn materialize(state: &AppState, delivery: &Delivery, target: &Target) -> Outcome {
    let claimed = match claim(state, delivery, target).await {
        Ok(Some(claimed)) => claimed,
        Ok(None) => return Outcome::Done,
        Err(error) => {
            tracing::warn!(job_id = %target.job, error = ?error, "could not start a materialization; retrying");
            return Outcome::Retry(backoff(state, delivery.attempts));
        }
    };
    tracing::info!(
        workspace_id = %target.workspace,
        dashboard_id = %target.dashboard,
        data_source_id = %target.data_source,
        job_id = %target.job,
        attempt = delivery.attempts,
        "materialization started"
    );

    let result = tokio::select! {
        result = run(state, &claimed) => result,
        () = heartbeat(state, delivery, target) => unreachable_heartbeat(),
    };

    match result {
        Ok(artifact) => {
            tracing::info!(
                job_id = %target.job,
                rows = artifact.row_count,
                bytes = artifact.byte_size,
                revision = artifact.revision,
                "materialization finished"
            );
            match succeed(state, target, artifact).await {
                Ok(()) => Outcome::Done,
                Err(error) => {
                    tracing::warn!(job_id = %target.job, error = ?error, "could not record a finished build; retrying");
                    Outcome::Retry(backoff(state, delivery.attempts))
                }
            }
        }
        Err(failure) => {
            // Nothing was stored for a failed build, but a partly uploaded key may exist on
            // backends without atomic puts; it is never referenced.
            let last = failure.permanent || delivery.attempts >= state.config.jobs.max_attempts;
            tracing::warn!(
                job_id = %target.job,
                attempt = delivery.attempts,
                gives_up = last,
                error = %failure.message,
                "materialization failed"
            );
            let retry = (!last).then(|| backoff(state, delivery.attempts));
            if let Err(error) = fail(state, target, &failure.message, retry).await {
                tracing::warn!(job_id = %target.job, error = ?error, "could not record a failed build");
            }
            match retry {
                Some(delay) => Outcome::Retry(delay),
                None => Outcome::Done,
            }
        }
    }
}

/// Returns the result `select!` needs for the heartbeat branch, which never ends on its own.
fn unreachable_heartbeat() -> Result<Artifact, Failure> {
    Err(Failure {
        message: "the heartbeat stopped".into(),
        permanent: false,
    })
}

/// The reason a build failed, and whether a retry could help.
struct Failure {
    message: String,
    permanent: bool,
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Failure {
        let permanent = error.status().is_client_error();
        let message = match &error {
            ApiError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error in a materialization");
                "An internal error stopped the build; the server log has the details.".to_owned()
            }
            other => other.to_string(),
        };
        Failure { message, permanent }
    }
}

impl From<BuildError> for Failure {
    fn from(error: BuildError) -> Failure {
        match error {
            BuildError::Query(error) => ApiError::from(error).into(),
            BuildError::Upload(message) => Failure {
                message: format!("Storing the Parquet file failed: {message}"),
                permanent: false,
            },
        }
    }
}

/// Marks the data source `building` for this delivery. `None` when the job is no longer
/// wanted (superseded, or its dashboard or data source deleted).
async fn claim(state: &AppState, delivery: &Delivery, target: &Target) -> Result<Option<Claimed>, ApiError> {
    let repo = Materializations::new(&*state.store);
    let Some(dashboard) = Dashboards::new(&*state.store)
        .get(&target.workspace, &target.dashboard)
        .await?
    else {
        tracing::info!(job_id = %target.job, "dropping a job whose dashboard was deleted");
        if let Some(record) = repo
            .get(&target.workspace, &target.dashboard, &target.data_source)
            .await?
        {
            forget(state, &record.value).await?;
        }
        return Ok(None);
    };
    for _ in 0..ATTEMPTS {
        let Some(current) = repo
            .get(&target.workspace, &target.dashboard, &target.data_source)
            .await?
        else {
            return Ok(None);
        };
        let mut record = current.value;
        let Some(source) = dashboard.data_source(&target.data_source).cloned() else {
            tracing::info!(job_id = %target.job, "dropping a job whose data source was removed");
            forget(state, &record).await?;
            return Ok(None);
        };
        let Some(ticket) = record.job.as_mut().filter(|ticket| ticket.id == target.job) else {
            tracing::info!(job_id = %target.job, "dropping a job that was superseded or given up");
            return Ok(None);
        };
        let now = Utc::now();
        ticket.started_at = Some(now);
        ticket.heartbeat_at = Some(now);
        ticket.attempt = delivery.attempts;
        ticket.retry_at = None;
        record.revisions += 1;
        let key = artifact_key(&record, record.revisions, &target.job);
        if repo.save(&record, Some(current.version)).await?.is_some() {
            return Ok(Some(Claimed {
                dashboard,
                source,
                key,
                revision: record.revisions,
                started_at: now,
            }));
        }
    }
    Err(ApiError::conflict(
        "CONCURRENT_CHANGE",
        "the materialization state kept changing",
    ))
}

/// Runs the build of a claimed job.
async fn run(state: &AppState, claimed: &Claimed) -> Result<Artifact, Failure> {
    let source = &claimed.source;
    let workspace = &claimed.dashboard.workspace_id;
    let record = mako_databases::service::load(state, workspace, &source.connection_id)
        .await
        .map_err(|error| match error {
            ApiError::NotFound { .. } => Failure {
                message: format!(
                    "Connection {} no longer exists; point the data source at another connection.",
                    source.connection_id
                ),
                permanent: true,
            },
            other => other.into(),
        })?;
    let kind = mako_databases::service::kind_of(&record.value)?;
    let database = mako_databases::service::open(state, &record).await?;
    let values = request_values(Some(&source.parameters))?;
    let bound = bind(kind, &source.query, values)?;
    let jobs = &state.config.jobs;
    let max_rows = usize::try_from(source.row_limit.min(jobs.max_rows)).unwrap_or(usize::MAX);
    let limits = RunLimits {
        max_rows,
        timeout: jobs.build_timeout,
    };
    let request = bound.into_request(source.database.clone(), limits, usize::MAX, true);
    let (summary, meta) = build(
        database,
        request,
        max_rows as u64,
        state.blobs.clone(),
        claimed.key.clone(),
    )
    .await?;
    Ok(Artifact {
        key: claimed.key.clone(),
        revision: claimed.revision,
        row_count: summary.row_count,
        byte_size: meta.size,
        etag: meta.etag,
        truncated: summary.truncated,
        definition_hash: crate::definition_hash(source),
        columns: summary
            .columns
            .into_iter()
            .map(|(name, kind)| ArtifactColumn { name, kind })
            .collect(),
        build_started_at: claimed.started_at,
        build_finished_at: Utc::now(),
    })
}

/// Renews the job's lease and records a sign of life, every third of the visibility timeout.
async fn heartbeat(state: &AppState, delivery: &Delivery, target: &Target) {
    let visibility = state.config.jobs.visibility;
    let mut ticker = tokio::time::interval(visibility / 3);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(error) = state.queue.extend(&delivery.receipt, visibility).await {
            tracing::warn!(job_id = %target.job, error = ?error, "failed to renew a job's lease");
        }
        let repo = Materializations::new(&*state.store);
        for _ in 0..ATTEMPTS {
            let Ok(Some(current)) = repo
                .get(&target.workspace, &target.dashboard, &target.data_source)
                .await
            else {
                break;
            };
            let mut record = current.value;
            let Some(ticket) = record.job.as_mut().filter(|ticket| ticket.id == target.job) else {
                break;
            };
            ticket.heartbeat_at = Some(Utc::now());
            if !matches!(repo.save(&record, Some(current.version)).await, Ok(None)) {
                break;
            }
        }
    }
}

/// Makes a finished build the served artifact and deletes the one it replaces.
async fn succeed(state: &AppState, target: &Target, artifact: Artifact) -> Result<(), ApiError> {
    let repo = Materializations::new(&*state.store);
    for _ in 0..ATTEMPTS {
        let Some(current) = repo
            .get(&target.workspace, &target.dashboard, &target.data_source)
            .await?
        else {
            state.blobs.delete(&artifact.key).await?;
            return Ok(());
        };
        let mut record: Materialization = current.value;
        if record.job.as_ref().is_none_or(|ticket| ticket.id != target.job) {
            tracing::info!(job_id = %target.job, "dropping the result of a superseded job");
            state.blobs.delete(&artifact.key).await?;
            return Ok(());
        }
        let previous = record.artifact.replace(artifact.clone());
        record.job = None;
        record.last_error = None;
        record.last_error_at = None;
        if repo.save(&record, Some(current.version)).await?.is_some() {
            if let Some(previous) = previous.filter(|previous| previous.key != artifact.key) {
                state.blobs.delete(&previous.key).await?;
            }
            return Ok(());
        }
    }
    Err(ApiError::conflict(
        "CONCURRENT_CHANGE",
        "the materialization state kept changing",
    ))
}

/// Records a failed attempt: queued again after `retry`, or failed for good.
async fn fail(state: &AppState, target: &Target, message: &str, retry: Option<Duration>) -> Result<(), ApiError> {
    let repo = Materializations::new(&*state.store);
    for _ in 0..ATTEMPTS {
        let Some(current) = repo
            .get(&target.workspace, &target.dashboard, &target.data_source)
            .await?
        else {
            return Ok(());
        };
        let mut record = current.value;
        let Some(ticket) = record.job.as_mut().filter(|ticket| ticket.id == target.job) else {
            return Ok(());
        };
        let now = Utc::now();
        match retry {
            Some(delay) => {
                ticket.retry_at = Some(now + chrono::Duration::from_std(delay).unwrap_or_default());
            }
            None => record.job = None,
        }
        record.last_error = Some(message.chars().take(2000).collect());
        record.last_error_at = Some(now);
        if repo.save(&record, Some(current.version)).await?.is_some() {
            return Ok(());
        }
    }
    Err(ApiError::conflict(
        "CONCURRENT_CHANGE",
        "the materialization state kept changing",
    ))
}

/// Runs the worker inside the local server: up to `MAKO_WORKER_CONCURRENCY` jobs at once.
pub fn spawn_local(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(state.config.jobs.worker_concurrency as usize));
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let received = state
                .queue
                .receive(1, state.config.jobs.visibility, Duration::from_secs(1))
                .await;
            match received {
                Ok(deliveries) if deliveries.is_empty() => drop(permit),
                Ok(deliveries) => {
                    let state = state.clone();
                    tokio::spawn(async move {
                        for delivery in deliveries {
                            process_and_settle(&state, &delivery).await;
                        }
                        drop(permit);
                    });
                }
                Err(error) => {
                    drop(permit);
                    tracing::warn!(error = ?error, "failed to receive jobs; retrying in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    })
}
