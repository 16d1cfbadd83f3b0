//! Workspaces, their slugs and their members.
//!
//! Every membership change rewrites the workspace record under a version condition in the
//! same transaction, so membership changes of one workspace are serialized and the stored
//! owner count is always exact. That is what keeps the last owner from being removed or
//! demoted, even by two concurrent requests.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::api_keys::ApiKeys;
use super::connections::ConnectionRecord;
use super::{Versioned, from_item, query_records, to_data};
use crate::access::Role;
use crate::ids::{UserId, WorkspaceId};
use crate::ports::{Condition, Index, IndexKey, Item, Key, Query, Store, StoreError, Write};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub slug: String,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub owner_count: u32,
    /// Number of API keys, kept exact by the same transactions that create and revoke them.
    #[serde(default)]
    pub api_key_count: u32,
    /// Number of database connections, kept exact like `api_key_count`.
    #[serde(default)]
    pub connection_count: u32,
    /// Number of consoles, kept exact like `api_key_count`.
    #[serde(default)]
    pub console_count: u32,
    /// Number of console folders, kept exact like `api_key_count`.
    #[serde(default)]
    pub console_folder_count: u32,
    /// Set when deletion starts; a deleting workspace is invisible to everyone.
    #[serde(default)]
    pub deleting: bool,
    /// Agent models the workspace's admins turned off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_models: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlugClaim {
    workspace_id: WorkspaceId,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("the slug is taken")]
    SlugTaken,
    #[error("the user is already a member")]
    AlreadyMember,
    #[error("the user is not a member")]
    NotMember,
    #[error("the workspace must keep at least one owner")]
    LastOwner,
    /// The workspace changed since it was read; read it again and retry.
    #[error("the workspace changed concurrently")]
    Changed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Partition listing the workspaces whose deletion has started but not finished.
const PURGE_PARTITION: &str = "PURGE";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PurgeMarker {
    workspace_id: WorkspaceId,
}

fn purge_key(id: &WorkspaceId) -> Key {
    Key::new(PURGE_PARTITION, id.to_string())
}

pub fn workspace_partition(id: &WorkspaceId) -> String {
    format!("WS#{id}")
}

fn meta_key(id: &WorkspaceId) -> Key {
    Key::new(workspace_partition(id), "META")
}

fn slug_key(slug: &str) -> Key {
    Key::new(format!("SLUG#{slug}"), "SLUG")
}

fn member_key(workspace: &WorkspaceId, user: &UserId) -> Key {
    Key::new(workspace_partition(workspace), format!("MEMBER#{user}"))
}

fn member_item(member: &Member) -> Result<Item, StoreError> {
    Ok(
        Item::new(member_key(&member.workspace_id, &member.user_id), to_data(member)?).with_gsi1(IndexKey::new(
            format!("USER#{}", member.user_id),
            format!("WS#{}", member.workspace_id),
        )),
    )
}

/// Returns the write that stores the workspace record at its next version, after `change`,
/// conditioned on the version read. Membership and API key transactions start with it, so
/// they are serialized per workspace and the counts in the record stay exact.
pub(crate) fn next_meta(
    current: &Versioned<Workspace>,
    change: impl FnOnce(&mut Workspace) -> Result<(), WorkspaceError>,
) -> Result<Write, WorkspaceError> {
    let mut workspace = current.value.clone();
    change(&mut workspace)?;
    workspace.updated_at = Utc::now();
    Ok(Write::Put {
        item: Item {
            version: current.version + 1,
            ..Item::new(meta_key(&workspace.id), to_data(&workspace)?)
        },
        condition: Condition::Version(current.version),
    })
}

/// Returns the change that adds `delta` owners, failing when no owner would be left.
fn add_owners(delta: i64) -> impl FnOnce(&mut Workspace) -> Result<(), WorkspaceError> {
    move |workspace| {
        let owners = i64::from(workspace.owner_count) + delta;
        if owners < 1 {
            return Err(WorkspaceError::LastOwner);
        }
        workspace.owner_count = u32::try_from(owners).unwrap_or(u32::MAX);
        Ok(())
    }
}

/// Maps a failed membership transaction whose first write is the workspace record.
fn membership_error(error: StoreError, member_conflict: WorkspaceError) -> WorkspaceError {
    match error {
        StoreError::ConditionFailed { index: Some(0) } => WorkspaceError::Changed,
        StoreError::ConditionFailed { .. } => member_conflict,
        other => other.into(),
    }
}

pub struct Workspaces<'a> {
    store: &'a dyn Store,
}

impl<'a> Workspaces<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    /// Creates a workspace with its creator as the only owner.
    /// Creates a workspace with its owner and its first connections; the workspace's
    /// `connection_count` must count them.
    pub async fn create(
        &self,
        workspace: &Workspace,
        owner: &Member,
        connections: &[ConnectionRecord],
    ) -> Result<(), WorkspaceError> {
        let mut writes = vec![
            Write::Put {
                item: Item::new(meta_key(&workspace.id), to_data(workspace)?),
                condition: Condition::NotExists,
            },
            Write::Put {
                item: Item::new(
                    slug_key(&workspace.slug),
                    to_data(&SlugClaim {
                        workspace_id: workspace.id.clone(),
                    })?,
                ),
                condition: Condition::NotExists,
            },
            Write::Put {
                item: member_item(owner)?,
                condition: Condition::NotExists,
            },
        ];
        for connection in connections {
            writes.push(super::connections::insert_write(connection)?);
        }
        match self.store.transact(writes).await {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed { index: Some(1) }) => Err(WorkspaceError::SlugTaken),
            Err(error) => Err(error.into()),
        }
    }

    /// Reads a workspace, including one being deleted.
    pub async fn get(&self, id: &WorkspaceId) -> Result<Option<Versioned<Workspace>>, StoreError> {
        self.store.get(&meta_key(id)).await?.map(from_item).transpose()
    }

    /// Reads several workspaces; the result is aligned with `ids`.
    pub async fn get_many(&self, ids: &[WorkspaceId]) -> Result<Vec<Option<Workspace>>, StoreError> {
        let mut workspaces = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(crate::ports::store::MAX_BATCH_GET_KEYS) {
            let keys: Vec<Key> = chunk.iter().map(meta_key).collect();
            for item in self.store.batch_get(&keys).await? {
                workspaces.push(item.map(from_item::<Workspace>).transpose()?.map(|v| v.value));
            }
        }
        Ok(workspaces)
    }

    /// Replaces the name and slug, claiming the new slug and releasing the old one.
    pub async fn update(&self, current: &Versioned<Workspace>, updated: &Workspace) -> Result<(), WorkspaceError> {
        let mut writes = vec![Write::Put {
            item: Item {
                version: current.version + 1,
                ..Item::new(meta_key(&updated.id), to_data(updated)?)
            },
            condition: Condition::Version(current.version),
        }];
        if updated.slug != current.value.slug {
            writes.push(Write::Delete {
                key: slug_key(&current.value.slug),
                condition: Condition::Always,
            });
            writes.push(Write::Put {
                item: Item::new(
                    slug_key(&updated.slug),
                    to_data(&SlugClaim {
                        workspace_id: updated.id.clone(),
                    })?,
                ),
                condition: Condition::NotExists,
            });
        }
        match self.store.transact(writes).await {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed { index: Some(0) }) => Err(WorkspaceError::Changed),
            Err(StoreError::ConditionFailed { .. }) => Err(WorkspaceError::SlugTaken),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn member(&self, workspace: &WorkspaceId, user: &UserId) -> Result<Option<Member>, StoreError> {
        let item = self.store.get(&member_key(workspace, user)).await?;
        Ok(item.map(from_item::<Member>).transpose()?.map(|v| v.value))
    }

    /// Reads one page of a workspace's members, ordered by user id (so by registration time).
    pub async fn members(
        &self,
        workspace: &WorkspaceId,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<(Vec<Member>, Option<String>), StoreError> {
        let query = Query::partition(workspace_partition(workspace))
            .begins_with("MEMBER#")
            .limit(limit)
            .after(cursor);
        query_records(self.store, &query).await
    }

    /// Reads one page of a user's memberships, oldest workspace first.
    pub async fn memberships(
        &self,
        user: &UserId,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<(Vec<Member>, Option<String>), StoreError> {
        let query = Query::index(Index::Gsi1, format!("USER#{user}"))
            .begins_with("WS#")
            .limit(limit)
            .after(cursor);
        query_records(self.store, &query).await
    }

    pub async fn add_member(&self, workspace: &Versioned<Workspace>, member: &Member) -> Result<(), WorkspaceError> {
        let owner_delta = i64::from(member.role == Role::Owner);
        let writes = vec![
            next_meta(workspace, add_owners(owner_delta))?,
            Write::Put {
                item: member_item(member)?,
                condition: Condition::NotExists,
            },
        ];
        self.store
            .transact(writes)
            .await
            .map_err(|error| membership_error(error, WorkspaceError::AlreadyMember))
    }

    pub async fn change_role(
        &self,
        workspace: &Versioned<Workspace>,
        member: &Member,
        role: Role,
    ) -> Result<Member, WorkspaceError> {
        let owner_delta = i64::from(role == Role::Owner) - i64::from(member.role == Role::Owner);
        let updated = Member { role, ..member.clone() };
        let writes = vec![
            next_meta(workspace, add_owners(owner_delta))?,
            Write::Put {
                item: member_item(&updated)?,
                condition: Condition::Exists,
            },
        ];
        self.store
            .transact(writes)
            .await
            .map_err(|error| membership_error(error, WorkspaceError::NotMember))?;
        Ok(updated)
    }

    pub async fn remove_member(&self, workspace: &Versioned<Workspace>, member: &Member) -> Result<(), WorkspaceError> {
        let owner_delta = -i64::from(member.role == Role::Owner);
        let writes = vec![
            next_meta(workspace, add_owners(owner_delta))?,
            Write::Delete {
                key: member_key(&member.workspace_id, &member.user_id),
                condition: Condition::Exists,
            },
        ];
        self.store
            .transact(writes)
            .await
            .map_err(|error| membership_error(error, WorkspaceError::NotMember))
    }

    /// Hides the workspace from everyone and records it as waiting for `purge`, so an
    /// interrupted deletion is finished later by `pending_purges`.
    pub async fn mark_deleting(&self, current: &Versioned<Workspace>) -> Result<(), WorkspaceError> {
        let mut workspace = current.value.clone();
        workspace.deleting = true;
        workspace.updated_at = Utc::now();
        let marker = PurgeMarker {
            workspace_id: workspace.id.clone(),
        };
        let writes = vec![
            Write::Put {
                item: Item {
                    version: current.version + 1,
                    ..Item::new(meta_key(&workspace.id), to_data(&workspace)?)
                },
                condition: Condition::Version(current.version),
            },
            Write::Put {
                item: Item::new(purge_key(&workspace.id), to_data(&marker)?),
                condition: Condition::Always,
            },
        ];
        match self.store.transact(writes).await {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed { .. }) => Err(WorkspaceError::Changed),
            Err(error) => Err(error.into()),
        }
    }

    /// Workspaces marked as deleting whose purge has not finished.
    pub async fn pending_purges(&self, limit: u32) -> Result<Vec<WorkspaceId>, StoreError> {
        let page = self
            .store
            .query(&Query::partition(PURGE_PARTITION).limit(limit))
            .await?;
        page.items
            .into_iter()
            .map(|item| from_item::<PurgeMarker>(item).map(|marker| marker.value.workspace_id))
            .collect()
    }

    /// Deletes every item of a workspace marked as deleting. That is its partition (members,
    /// API keys and whatever later features store there), the API key lookups and the slug
    /// claim. The workspace record goes last, so an interrupted purge can simply run again.
    pub async fn purge(&self, workspace: &Workspace) -> Result<u64, StoreError> {
        let partition = workspace_partition(&workspace.id);
        let api_keys = ApiKeys::new(self.store);
        let mut removed = 0;

        // Items are deleted as they are read, so every round starts again from the top.
        loop {
            let page = self
                .store
                .query(&Query::partition(partition.clone()).limit(100))
                .await?;
            let items: Vec<Item> = page.items.into_iter().filter(|item| item.sk != "META").collect();
            if items.is_empty() {
                break;
            }
            for item in items {
                if item.sk.starts_with("APIKEY#") {
                    api_keys.delete_lookup_of(&item).await?;
                }
                self.store.delete(&item.key(), Condition::Always).await?;
                removed += 1;
            }
        }

        self.store.delete(&slug_key(&workspace.slug), Condition::Always).await?;
        self.store.delete(&meta_key(&workspace.id), Condition::Always).await?;
        self.store.delete(&purge_key(&workspace.id), Condition::Always).await?;
        Ok(removed + 2)
    }
}
