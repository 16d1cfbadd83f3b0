//! Database connections of a workspace. The non-secret settings are stored as they are; the
//! secret part (password, or a connection string that may carry one) is sealed with the
//! credential cipher and never leaves this process in clear.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::workspaces::{Workspace, WorkspaceError, next_meta, workspace_partition};
use super::{Versioned, from_item, query_records, to_data};
use crate::ids::{ConnectionId, UserId, WorkspaceId};
use crate::ports::{Condition, Item, Key, Query, Store, StoreError, Write};

/// Outcome of the last connection test.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestOutcome {
    pub ok: bool,
    pub tested_at: DateTime<Utc>,
    pub latency_ms: Option<u64>,
    pub server_version: Option<String>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionRecord {
    pub id: ConnectionId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    /// `postgresql`, `mysql`, `sqlite` or `mongodb`.
    pub kind: String,
    /// Settings without secrets: host, port, database, user, TLS mode, file path.
    pub settings: Value,
    /// Sealed JSON object of the secret settings, if any.
    pub sealed_secret: Option<String>,
    /// Every query on it runs read-only.
    pub read_only: bool,
    /// The built-in sample database of a local server.
    #[serde(default)]
    pub sample: bool,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_test: Option<TestOutcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("the workspace already has {max} connections")]
    TooMany { max: u32 },
    #[error("the connection does not exist")]
    NotFound,
    /// The record or its workspace changed since it was read; read again and retry.
    #[error("the connection changed concurrently")]
    Changed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WorkspaceError> for ConnectionError {
    fn from(error: WorkspaceError) -> Self {
        match error {
            WorkspaceError::Store(error) => ConnectionError::Store(error),
            _ => ConnectionError::Changed,
        }
    }
}

/// Name of the sample database connection of new local workspaces.
pub const SAMPLE_NAME: &str = "Sample database";

impl ConnectionRecord {
    /// The read-only connection to the local server's sample database.
    pub fn sample(workspace_id: &WorkspaceId, created_by: &UserId, now: DateTime<Utc>) -> ConnectionRecord {
        ConnectionRecord {
            id: ConnectionId::new(),
            workspace_id: workspace_id.clone(),
            name: SAMPLE_NAME.to_owned(),
            kind: "sqlite".to_owned(),
            settings: serde_json::json!({}),
            sealed_secret: None,
            read_only: true,
            sample: true,
            created_by: created_by.clone(),
            created_at: now,
            updated_at: now,
            last_test: None,
        }
    }
}

/// The write that adds a new connection, for transactions that create its workspace.
pub(crate) fn insert_write(record: &ConnectionRecord) -> Result<Write, StoreError> {
    Ok(Write::Put {
        item: record_item(record, 1)?,
        condition: Condition::NotExists,
    })
}

fn record_key(workspace: &WorkspaceId, id: &ConnectionId) -> Key {
    Key::new(workspace_partition(workspace), format!("CONN#{id}"))
}

fn record_item(record: &ConnectionRecord, version: u64) -> Result<Item, StoreError> {
    let mut item = Item::new(record_key(&record.workspace_id, &record.id), to_data(record)?);
    item.version = version;
    Ok(item)
}

/// Maps a failed transaction whose first write is the workspace record.
fn transaction_error(error: StoreError, conflict: ConnectionError) -> ConnectionError {
    match error {
        StoreError::ConditionFailed { index: Some(0) } => ConnectionError::Changed,
        StoreError::ConditionFailed { .. } => conflict,
        other => other.into(),
    }
}

pub struct Connections<'a> {
    store: &'a dyn Store,
}

impl<'a> Connections<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    /// Creates a connection, unless the workspace already has `max` of them.
    pub async fn create(
        &self,
        workspace: &Versioned<Workspace>,
        record: &ConnectionRecord,
        max: u32,
    ) -> Result<(), ConnectionError> {
        // The transaction is conditioned on the version this count was read at.
        if workspace.value.connection_count >= max {
            return Err(ConnectionError::TooMany { max });
        }
        let meta = next_meta(workspace, |workspace| {
            workspace.connection_count += 1;
            Ok(())
        })?;
        let writes = vec![meta, insert_write(record)?];
        self.store
            .transact(writes)
            .await
            .map_err(|error| transaction_error(error, ConnectionError::Changed))
    }

    pub async fn get(
        &self,
        workspace: &WorkspaceId,
        id: &ConnectionId,
    ) -> Result<Option<Versioned<ConnectionRecord>>, StoreError> {
        self.store
            .get(&record_key(workspace, id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Reads one page of a workspace's connections, oldest first.
    pub async fn list(
        &self,
        workspace: &WorkspaceId,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<(Vec<ConnectionRecord>, Option<String>), StoreError> {
        let query = Query::partition(workspace_partition(workspace))
            .begins_with("CONN#")
            .limit(limit)
            .after(cursor);
        query_records(self.store, &query).await
    }

    /// Replaces a connection read at `current`'s version.
    pub async fn update(
        &self,
        current: &Versioned<ConnectionRecord>,
        updated: &ConnectionRecord,
    ) -> Result<(), ConnectionError> {
        match self
            .store
            .put(
                record_item(updated, current.version + 1)?,
                Condition::Version(current.version),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed { .. }) => Err(ConnectionError::Changed),
            Err(error) => Err(error.into()),
        }
    }

    /// Records the outcome of a test; a concurrent change winning the race is fine.
    pub async fn record_test(
        &self,
        current: &Versioned<ConnectionRecord>,
        outcome: TestOutcome,
    ) -> Result<(), StoreError> {
        let mut updated = current.value.clone();
        updated.last_test = Some(outcome);
        match self
            .store
            .put(
                record_item(&updated, current.version + 1)?,
                Condition::Version(current.version),
            )
            .await
        {
            Err(StoreError::ConditionFailed { .. }) => Ok(()),
            other => other,
        }
    }

    pub async fn delete(
        &self,
        workspace: &Versioned<Workspace>,
        record: &ConnectionRecord,
    ) -> Result<(), ConnectionError> {
        let meta = next_meta(workspace, |workspace| {
            workspace.connection_count = workspace.connection_count.saturating_sub(1);
            Ok(())
        })?;
        let writes = vec![
            meta,
            Write::Delete {
                key: record_key(&record.workspace_id, &record.id),
                condition: Condition::Exists,
            },
        ];
        self.store
            .transact(writes)
            .await
            .map_err(|error| transaction_error(error, ConnectionError::NotFound))
    }
}
