//! The materialization state of each dashboard data source: the job in flight, the last good
//! Parquet artifact, the last error and the next scheduled run.
//!
//! | record | pk | sk | gsi1 | gsi2 |
//! |---|---|---|---|---|
//! | materialization | `WS#<workspaceId>` | `MAT#<dashboardId>#<dataSourceId>` | `MATSCHED` / `<next run>#…` when scheduled | `MATJOB` / `<last sign of life>#…` while a job is in flight |
//!
//! Every change is a compare-and-set on the item's version, so the route that queues a job,
//! the worker that builds it and the scheduler that queues due runs never overwrite each
//! other. The two index partitions are what the scheduler scans: runs that are due, and
//! jobs whose worker stopped sending heartbeats.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::workspaces::workspace_partition;
use super::{Versioned, from_item, to_data};
use crate::ids::{DashboardId, JobId, UserId, WorkspaceId};
use crate::ports::{Condition, Index, IndexKey, Item, Key, Query, SortKey, Store, StoreError};

const SCHEDULE_PARTITION: &str = "MATSCHED";
const JOBS_PARTITION: &str = "MATJOB";

/// State of a data source's materialization, as the status route reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Never built.
    Missing,
    /// A job waits in the queue.
    Queued,
    /// A worker is building it.
    Building,
    /// The artifact matches the last build.
    Ready,
    /// The last build failed; an earlier artifact may still be served.
    Error,
}

/// The cause of a queued job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Manual,
    Schedule,
    /// The data source's definition changed.
    Change,
}

/// The job in flight for a data source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    pub id: JobId,
    pub trigger: Trigger,
    pub requested_by: Option<UserId>,
    pub queued_at: DateTime<Utc>,
    /// When a worker began the current attempt.
    pub started_at: Option<DateTime<Utc>>,
    /// Last heartbeat of the worker building it.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Deliveries so far.
    pub attempt: u32,
    /// When the job will be tried again after a failed attempt.
    pub retry_at: Option<DateTime<Utc>>,
}

impl Ticket {
    pub fn new(trigger: Trigger, requested_by: Option<UserId>, now: DateTime<Utc>) -> Ticket {
        Ticket {
            id: JobId::new(),
            trigger,
            requested_by,
            queued_at: now,
            started_at: None,
            heartbeat_at: None,
            attempt: 0,
            retry_at: None,
        }
    }

    /// Returns the last time anything happened to the job.
    pub fn last_sign_of_life(&self) -> DateTime<Utc> {
        [Some(self.queued_at), self.started_at, self.heartbeat_at, self.retry_at]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(self.queued_at)
    }
}

/// A column of an artifact, as the Parquet schema has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactColumn {
    pub name: String,
    /// Parquet/Arrow type, such as `Int64` or `Decimal128(12, 2)`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A finished Parquet file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Blob key; every build writes a new one.
    pub key: String,
    /// Counts the builds of this data source.
    pub revision: u64,
    pub row_count: u64,
    pub byte_size: u64,
    pub etag: String,
    /// Whether the row limit cut the result.
    pub truncated: bool,
    /// Hash of the data source definition it was built from.
    pub definition_hash: String,
    pub columns: Vec<ArtifactColumn>,
    pub build_started_at: DateTime<Utc>,
    pub build_finished_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Materialization {
    pub workspace_id: WorkspaceId,
    pub dashboard_id: DashboardId,
    pub data_source_id: String,
    pub job: Option<Ticket>,
    pub artifact: Option<Artifact>,
    /// Error of the last attempt, cleared by a successful build.
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Highest revision handed out, so that a new build never reuses a blob key.
    pub revisions: u64,
    /// Next scheduled run, when the data source has a schedule.
    pub next_run_at: Option<DateTime<Utc>>,
}

impl Materialization {
    pub fn new(workspace: &WorkspaceId, dashboard: &DashboardId, data_source: &str) -> Materialization {
        Materialization {
            workspace_id: workspace.clone(),
            dashboard_id: dashboard.clone(),
            data_source_id: data_source.to_owned(),
            job: None,
            artifact: None,
            last_error: None,
            last_error_at: None,
            revisions: 0,
            next_run_at: None,
        }
    }

    pub fn status(&self) -> Status {
        match (&self.job, &self.last_error, &self.artifact) {
            (Some(job), _, _) if job.started_at.is_some() && job.retry_at.is_none() => Status::Building,
            (Some(_), _, _) => Status::Queued,
            (None, Some(_), _) => Status::Error,
            (None, None, Some(_)) => Status::Ready,
            (None, None, None) => Status::Missing,
        }
    }
}

fn key(workspace: &WorkspaceId, dashboard: &DashboardId, data_source: &str) -> Key {
    Key::new(workspace_partition(workspace), format!("MAT#{dashboard}#{data_source}"))
}

/// Sort-key form of an instant: fixed width, so text order is time order.
fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn item(record: &Materialization, version: u64) -> Result<Item, StoreError> {
    let suffix = format!(
        "{}#{}#{}",
        record.workspace_id, record.dashboard_id, record.data_source_id
    );
    let mut item = Item::new(
        key(&record.workspace_id, &record.dashboard_id, &record.data_source_id),
        to_data(record)?,
    );
    item.version = version;
    if let Some(next) = record.next_run_at {
        item = item.with_gsi1(IndexKey::new(SCHEDULE_PARTITION, format!("{}#{suffix}", instant(next))));
    }
    if let Some(job) = &record.job {
        item = item.with_gsi2(IndexKey::new(
            JOBS_PARTITION,
            format!("{}#{suffix}", instant(job.last_sign_of_life())),
        ));
    }
    Ok(item)
}

pub struct Materializations<'a> {
    store: &'a dyn Store,
}

impl<'a> Materializations<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    pub async fn get(
        &self,
        workspace: &WorkspaceId,
        dashboard: &DashboardId,
        data_source: &str,
    ) -> Result<Option<Versioned<Materialization>>, StoreError> {
        let item = self.store.get(&key(workspace, dashboard, data_source)).await?;
        item.map(from_item::<Materialization>).transpose()
    }

    /// Reads every materialization of a dashboard.
    pub async fn of_dashboard(
        &self,
        workspace: &WorkspaceId,
        dashboard: &DashboardId,
    ) -> Result<Vec<Versioned<Materialization>>, StoreError> {
        super::read_prefix(self.store, workspace_partition(workspace), &format!("MAT#{dashboard}#")).await
    }

    /// Writes `record` if the stored one is still at `read_at` (`None`: if there is none).
    /// Returns the new version, or `None` when the condition failed.
    pub async fn save(&self, record: &Materialization, read_at: Option<u64>) -> Result<Option<u64>, StoreError> {
        let (condition, version) = match read_at {
            Some(version) => (Condition::Version(version), version + 1),
            None => (Condition::NotExists, 1),
        };
        match self.store.put(item(record, version)?, condition).await {
            Ok(()) => Ok(Some(version)),
            Err(StoreError::ConditionFailed { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub async fn delete(&self, record: &Materialization) -> Result<(), StoreError> {
        self.store
            .delete(
                &key(&record.workspace_id, &record.dashboard_id, &record.data_source_id),
                Condition::Always,
            )
            .await
    }

    /// Scheduled runs due at `now`, oldest first, at most `limit`.
    pub async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Versioned<Materialization>>, StoreError> {
        self.index_before(Index::Gsi1, SCHEDULE_PARTITION, now, limit).await
    }

    /// Jobs in flight with no sign of life since `before`, oldest first, at most `limit`.
    pub async fn silent_since(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Versioned<Materialization>>, StoreError> {
        self.index_before(Index::Gsi2, JOBS_PARTITION, before, limit).await
    }

    async fn index_before(
        &self,
        index: Index,
        partition: &str,
        at: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Versioned<Materialization>>, StoreError> {
        // `~` sorts after every character of the suffix, so every entry at `at` is included.
        let query = Query::index(index, partition)
            .sort(SortKey::Before(format!("{}~", instant(at))))
            .limit(limit);
        let page = self.store.query(&query).await?;
        page.items.into_iter().map(from_item::<Materialization>).collect()
    }
}
