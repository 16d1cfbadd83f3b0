//! Dashboards and their folders.
//!
//! Every record lives in the workspace's partition:
//!
//! | record | sk |
//! |---|---|
//! | dashboard | `DASH#<dashboardId>` |
//! | folder | `DFOLDER#<folderId>` |
//!
//! A dashboard is one item holding its data sources, widgets and global filters, so an
//! update replaces the whole definition under one version condition. A folder counts its
//! children (dashboards and folders), and every change that adds or removes a child
//! rewrites the folder under a version condition in the same transaction, so "delete only
//! when empty" cannot race with a dashboard being added.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::consoles::{Language, Visibility};
use super::workspaces::workspace_partition;
use super::{from_item, to_data};
use crate::ids::{ConnectionId, DashboardFolderId, DashboardId, UserId, WorkspaceId};
use crate::ports::{Condition, Item, Key, Store, StoreError, Write};

/// When a data source is rebuilt on its own: a cron expression read in a time zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Five fields (minute, hour, day of month, month, day of week).
    pub cron: String,
    /// IANA time zone name, such as `Europe/Berlin`.
    pub timezone: String,
}

/// A query whose full result a dashboard's widgets read, materialized to Parquet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataSource {
    /// Unique within the dashboard.
    pub id: String,
    pub name: String,
    pub connection_id: ConnectionId,
    pub language: Language,
    pub query: String,
    /// Database to run in instead of the connection's.
    pub database: Option<String>,
    /// Values of the query's `{{name}}` placeholders.
    pub parameters: Map<String, Value>,
    /// Rows written at most; more mark the artifact truncated.
    pub row_limit: u64,
    pub schedule: Option<Schedule>,
}

impl DataSource {
    /// Returns what decides the artifact's content, so that a change of anything else (the
    /// name, the schedule) does not make it stale.
    pub fn definition(&self) -> Value {
        serde_json::json!({
            "connectionId": self.connection_id,
            "language": self.language,
            "query": self.query,
            "database": self.database,
            "parameters": self.parameters,
            "rowLimit": self.row_limit,
        })
    }
}

/// Grid position of a widget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WidgetKind {
    Chart,
    Table,
    Kpi,
    Text,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Widget {
    /// Unique within the dashboard.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: WidgetKind,
    pub title: String,
    /// The data source it reads; text widgets have none.
    pub data_source_id: Option<String>,
    /// Vega-Lite specification of a chart.
    pub spec: Option<Value>,
    /// Settings of a table or KPI.
    pub settings: Option<Value>,
    /// Markdown of a text widget.
    pub text: Option<String>,
    pub layout: Layout,
}

/// The data source parameter that receives a global filter's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterTarget {
    pub data_source_id: String,
    pub parameter: String,
}

/// A filter shown above the widgets whose value feeds data source parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalFilter {
    /// Unique within the dashboard.
    pub id: String,
    pub name: String,
    /// `text`, `number`, `date`, `daterange` or `select`.
    #[serde(rename = "type")]
    pub kind: String,
    pub default: Option<Value>,
    pub targets: Vec<FilterTarget>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    pub id: DashboardId,
    pub workspace_id: WorkspaceId,
    pub title: String,
    pub description: String,
    pub folder_id: Option<DashboardFolderId>,
    pub owner_id: UserId,
    pub visibility: Visibility,
    pub data_sources: Vec<DataSource>,
    pub widgets: Vec<Widget>,
    pub global_filters: Vec<GlobalFilter>,
    /// Increases with every change; an update names the version it was based on.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: UserId,
}

impl Dashboard {
    pub fn data_source(&self, id: &str) -> Option<&DataSource> {
        self.data_sources.iter().find(|source| source.id == id)
    }
}

/// A dashboard folder. Folders are visible to every member; a private dashboard inside one
/// stays private.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardFolder {
    pub id: DashboardFolderId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub parent_id: Option<DashboardFolderId>,
    /// Dashboards and folders directly inside.
    pub child_count: u32,
    /// Store version, which also changes when a child is added or removed.
    pub version: u64,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The dashboard or folder itself changed since it was read.
    #[error("the record changed concurrently")]
    Changed,
    /// A folder involved changed since it was read; read again and retry.
    #[error("a related record changed concurrently")]
    Retry,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn dashboard_key(workspace: &WorkspaceId, id: &DashboardId) -> Key {
    Key::new(workspace_partition(workspace), format!("DASH#{id}"))
}

fn folder_key(workspace: &WorkspaceId, id: &DashboardFolderId) -> Key {
    Key::new(workspace_partition(workspace), format!("DFOLDER#{id}"))
}

fn dashboard_item(dashboard: &Dashboard) -> Result<Item, StoreError> {
    let mut item = Item::new(
        dashboard_key(&dashboard.workspace_id, &dashboard.id),
        to_data(dashboard)?,
    );
    item.version = dashboard.version;
    Ok(item)
}

fn folder_item(folder: &DashboardFolder) -> Result<Item, StoreError> {
    let mut item = Item::new(folder_key(&folder.workspace_id, &folder.id), to_data(folder)?);
    item.version = folder.version;
    Ok(item)
}

/// The writes of one transaction; the first condition that fails on the record itself is
/// `Changed`, any other `Retry`.
#[derive(Default)]
struct Writes {
    writes: Vec<Write>,
    /// Number of leading writes whose failure means `Changed`.
    own: usize,
}

impl Writes {
    fn own(&mut self, write: Write) {
        self.writes.insert(self.own, write);
        self.own += 1;
    }

    /// Rewrites `folder` with `delta` children under a version condition. Two changes to
    /// one folder in a transaction are merged.
    fn count_child(&mut self, folder: &DashboardFolder, delta: i64) -> Result<(), StoreError> {
        let key = folder_key(&folder.workspace_id, &folder.id);
        let mut updated = folder.clone();
        for write in &mut self.writes {
            if let Write::Put { item, .. } = write
                && item.key() == key
            {
                updated = serde_json::from_value(item.data.clone()).map_err(StoreError::backend)?;
                break;
            }
        }
        let count = i64::from(updated.child_count) + delta;
        updated.child_count = u32::try_from(count.max(0)).unwrap_or(u32::MAX);
        updated.version = folder.version + 1;
        let item = folder_item(&updated)?;
        self.writes.retain(|write| write.key() != key);
        self.writes.push(Write::Put {
            item,
            condition: Condition::Version(folder.version),
        });
        Ok(())
    }

    /// Checks that folders this transaction does not write keep the versions read.
    fn check_unchanged(&mut self, folders: &[DashboardFolder]) {
        for folder in folders {
            let key = folder_key(&folder.workspace_id, &folder.id);
            if self.writes.iter().any(|write| write.key() == key) {
                continue;
            }
            self.writes.push(Write::Check {
                key,
                condition: Condition::Version(folder.version),
            });
        }
    }

    async fn apply(self, store: &dyn Store) -> Result<(), DashboardError> {
        let own = self.own;
        match store.transact(self.writes).await {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed { index: Some(index) }) if index < own => Err(DashboardError::Changed),
            Err(StoreError::ConditionFailed { .. }) => Err(DashboardError::Retry),
            Err(error) => Err(error.into()),
        }
    }
}

pub struct Dashboards<'a> {
    store: &'a dyn Store,
}

impl<'a> Dashboards<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    pub async fn get(&self, workspace: &WorkspaceId, id: &DashboardId) -> Result<Option<Dashboard>, StoreError> {
        let item = self.store.get(&dashboard_key(workspace, id)).await?;
        Ok(item.map(from_item::<Dashboard>).transpose()?.map(|record| record.value))
    }

    pub async fn folder(
        &self,
        workspace: &WorkspaceId,
        id: &DashboardFolderId,
    ) -> Result<Option<DashboardFolder>, StoreError> {
        let item = self.store.get(&folder_key(workspace, id)).await?;
        Ok(item
            .map(from_item::<DashboardFolder>)
            .transpose()?
            .map(|record| record.value))
    }

    /// Reads every record under `prefix` of a workspace.
    async fn read_all<T: serde::de::DeserializeOwned>(
        &self,
        workspace: &WorkspaceId,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        let records = super::read_prefix::<T>(self.store, workspace_partition(workspace), prefix).await?;
        Ok(records.into_iter().map(|record| record.value).collect())
    }

    /// Reads every dashboard of a workspace, in creation order.
    pub async fn all(&self, workspace: &WorkspaceId) -> Result<Vec<Dashboard>, StoreError> {
        self.read_all(workspace, "DASH#").await
    }

    /// Reads every folder of a workspace, in creation order.
    pub async fn all_folders(&self, workspace: &WorkspaceId) -> Result<Vec<DashboardFolder>, StoreError> {
        self.read_all(workspace, "DFOLDER#").await
    }

    /// Stores a new dashboard and counts it in its folder.
    pub async fn create(&self, dashboard: &Dashboard, folder: Option<&DashboardFolder>) -> Result<(), DashboardError> {
        let mut writes = Writes::default();
        writes.own(Write::Put {
            item: dashboard_item(dashboard)?,
            condition: Condition::NotExists,
        });
        if let Some(folder) = folder {
            writes.count_child(folder, 1)?;
        }
        writes.apply(self.store).await
    }

    /// Replaces a dashboard read at `old.version` with `new` (whose version is one higher),
    /// moving its count between folders when it moved.
    pub async fn update(
        &self,
        old: &Dashboard,
        new: &Dashboard,
        old_folder: Option<&DashboardFolder>,
        new_folder: Option<&DashboardFolder>,
    ) -> Result<(), DashboardError> {
        let mut writes = Writes::default();
        writes.own(Write::Put {
            item: dashboard_item(new)?,
            condition: Condition::Version(old.version),
        });
        if old.folder_id != new.folder_id {
            if let Some(folder) = old_folder {
                writes.count_child(folder, -1)?;
            }
            if let Some(folder) = new_folder {
                writes.count_child(folder, 1)?;
            }
        }
        writes.apply(self.store).await
    }

    /// Deletes a dashboard read at `dashboard.version` and uncounts it from its folder.
    pub async fn delete(&self, dashboard: &Dashboard, folder: Option<&DashboardFolder>) -> Result<(), DashboardError> {
        let mut writes = Writes::default();
        writes.own(Write::Delete {
            key: dashboard_key(&dashboard.workspace_id, &dashboard.id),
            condition: Condition::Version(dashboard.version),
        });
        if let Some(folder) = folder {
            writes.count_child(folder, -1)?;
        }
        writes.apply(self.store).await
    }

    /// Stores a new folder and counts it in its parent, which must keep the folders above
    /// it (`ancestors`) unchanged meanwhile.
    pub async fn create_folder(
        &self,
        folder: &DashboardFolder,
        parent: Option<&DashboardFolder>,
        ancestors: &[DashboardFolder],
    ) -> Result<(), DashboardError> {
        let mut writes = Writes::default();
        writes.own(Write::Put {
            item: folder_item(folder)?,
            condition: Condition::NotExists,
        });
        if let Some(parent) = parent {
            writes.count_child(parent, 1)?;
        }
        writes.check_unchanged(ancestors);
        writes.apply(self.store).await
    }

    /// Renames or moves a folder read at `old.version`. A move checks the folders above
    /// the new place unchanged, so two concurrent moves cannot make a cycle.
    pub async fn update_folder(
        &self,
        old: &DashboardFolder,
        new: &DashboardFolder,
        old_parent: Option<&DashboardFolder>,
        new_parent: Option<&DashboardFolder>,
        ancestors: &[DashboardFolder],
    ) -> Result<(), DashboardError> {
        let mut writes = Writes::default();
        writes.own(Write::Put {
            item: folder_item(new)?,
            condition: Condition::Version(old.version),
        });
        if old.parent_id != new.parent_id {
            if let Some(parent) = old_parent {
                writes.count_child(parent, -1)?;
            }
            if let Some(parent) = new_parent {
                writes.count_child(parent, 1)?;
            }
        }
        writes.check_unchanged(ancestors);
        writes.apply(self.store).await
    }

    /// Deletes a folder read at `folder.version`; the version condition fails when a
    /// child was added since.
    pub async fn delete_folder(
        &self,
        folder: &DashboardFolder,
        parent: Option<&DashboardFolder>,
    ) -> Result<(), DashboardError> {
        let mut writes = Writes::default();
        writes.own(Write::Delete {
            key: folder_key(&folder.workspace_id, &folder.id),
            condition: Condition::Version(folder.version),
        });
        if let Some(parent) = parent {
            writes.count_child(parent, -1)?;
        }
        writes.apply(self.store).await
    }
}
