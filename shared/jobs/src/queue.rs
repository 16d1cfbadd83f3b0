//! Queueing materializations: the job body and the compare-and-set that lets only one job
//! per data source be in flight.

use chrono::Utc;
use mako_core::ids::{DashboardId, JobId, UserId, WorkspaceId};
use mako_core::ports::NewJob;
use mako_core::repo::Versioned;
use mako_core::repo::dashboards::{Dashboard, DataSource};
use mako_core::repo::materializations::{Materialization, Materializations, Ticket, Trigger};
use mako_core::{ApiError, ApiResult, AppState};
use serde::{Deserialize, Serialize};

use crate::schedule;

/// Compare-and-set attempts before a trigger gives up with 409.
const ATTEMPTS: usize = 16;

/// A job on the queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Job {
    /// Build the artifact of one data source.
    Materialize {
        workspace_id: WorkspaceId,
        dashboard_id: DashboardId,
        data_source_id: String,
        job_id: JobId,
    },
}

/// Result of a trigger.
pub struct Requested {
    /// False when a job was already queued or building, so none was added.
    pub queued: bool,
    pub state: Versioned<Materialization>,
}

/// Queues a build of `source` unless one is in flight. With `supersede`, a job in flight is
/// replaced: it finishes, but its result is dropped (a definition change needs a new build).
pub async fn request(
    state: &AppState,
    dashboard: &Dashboard,
    source: &DataSource,
    trigger: Trigger,
    requested_by: Option<UserId>,
    supersede: bool,
) -> ApiResult<Requested> {
    let repo = Materializations::new(&*state.store);
    for _ in 0..ATTEMPTS {
        let (mut record, read_at) = read_or_new(&repo, dashboard, source).await?;
        if record.job.is_some() && !supersede {
            let version = read_at.unwrap_or_default();
            return Ok(Requested {
                queued: false,
                state: Versioned { value: record, version },
            });
        }
        let previous = record.job.clone();
        record.job = Some(Ticket::new(trigger, requested_by.clone(), Utc::now()));
        record.next_run_at = source
            .schedule
            .as_ref()
            .and_then(|schedule| schedule::next_run(schedule, Utc::now()));
        let Some(version) = repo.save(&record, read_at).await? else {
            continue;
        };

        send(state, dashboard, &record, version, previous).await?;
        return Ok(Requested {
            queued: true,
            state: Versioned { value: record, version },
        });
    }
    Err(ApiError::conflict(
        "CONCURRENT_CHANGE",
        "The materialization state kept changing while this request ran; try again.",
    ))
}

/// Sends the job of `record` (saved at `version`) to the queue. When sending fails, the
/// previous job is put back so the data source does not wait for one never queued.
pub(crate) async fn send(
    state: &AppState,
    dashboard: &Dashboard,
    record: &Materialization,
    version: u64,
    previous: Option<Ticket>,
) -> ApiResult<()> {
    let Some(ticket) = &record.job else {
        return Ok(());
    };
    let body = Job::Materialize {
        workspace_id: dashboard.workspace_id.clone(),
        dashboard_id: dashboard.id.clone(),
        data_source_id: record.data_source_id.clone(),
        job_id: ticket.id.clone(),
    };
    let job = NewJob::new(
        dashboard.id.as_str(),
        serde_json::to_value(&body).map_err(ApiError::internal)?,
    )
    .dedup_id(ticket.id.as_str());
    if let Err(error) = state.queue.send(job).await {
        let mut restored = record.clone();
        restored.job = previous;
        let _ = Materializations::new(&*state.store)
            .save(&restored, Some(version))
            .await;
        return Err(error.into());
    }
    tracing::info!(
        workspace_id = %dashboard.workspace_id,
        dashboard_id = %dashboard.id,
        data_source_id = %record.data_source_id,
        job_id = %ticket.id,
        trigger = ?ticket.trigger,
        "materialization queued"
    );
    Ok(())
}

/// Reads a data source's state with the version it was read at, or a new one (`None`).
async fn read_or_new(
    repo: &Materializations<'_>,
    dashboard: &Dashboard,
    source: &DataSource,
) -> ApiResult<(Materialization, Option<u64>)> {
    let current = repo.get(&dashboard.workspace_id, &dashboard.id, &source.id).await?;
    Ok(match current {
        Some(current) => (current.value, Some(current.version)),
        None => (
            Materialization::new(&dashboard.workspace_id, &dashboard.id, &source.id),
            None,
        ),
    })
}

/// Updates the scheduled next run of a data source after its schedule was set, changed or
/// removed, without touching a job in flight.
pub async fn reschedule(state: &AppState, dashboard: &Dashboard, source: &DataSource) -> ApiResult<()> {
    let repo = Materializations::new(&*state.store);
    for _ in 0..ATTEMPTS {
        let (mut record, read_at) = read_or_new(&repo, dashboard, source).await?;
        let next = source
            .schedule
            .as_ref()
            .and_then(|schedule| schedule::next_run(schedule, Utc::now()));
        if record.next_run_at == next && (read_at.is_some() || next.is_none()) {
            return Ok(());
        }
        record.next_run_at = next;
        if repo.save(&record, read_at).await?.is_some() {
            return Ok(());
        }
    }
    Err(ApiError::conflict(
        "CONCURRENT_CHANGE",
        "The materialization state kept changing while this request ran; try again.",
    ))
}

/// Removes the state and artifact of a data source that no longer exists.
pub async fn forget(state: &AppState, record: &Materialization) -> ApiResult<()> {
    if let Some(artifact) = &record.artifact {
        state.blobs.delete(&artifact.key).await?;
    }
    Materializations::new(&*state.store).delete(record).await?;
    Ok(())
}

/// Blob key of a build. Every build gets its own key, so readers of the previous artifact
/// never see the new file being written.
pub fn artifact_key(record: &Materialization, revision: u64, job: &JobId) -> String {
    format!(
        "ws/{}/dashboards/{}/{}/r{revision:08}-{job}.parquet",
        record.workspace_id, record.dashboard_id, record.data_source_id
    )
}
