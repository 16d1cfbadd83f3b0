//! API keys: a record in the workspace partition for listing, plus a lookup item addressed
//! by the key's SHA-256 for authentication. Both are written and deleted together, in one
//! transaction with the workspace record, which keeps the workspace's key count exact.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::workspaces::{Workspace, WorkspaceError, Workspaces, next_meta, workspace_partition};
use super::{Versioned, from_item, query_records, to_data};
use crate::access::Role;
use crate::ids::{ApiKeyId, UserId, WorkspaceId};
use crate::ports::{Condition, Index, IndexKey, Item, Key, Query, Store, StoreError, Write};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    /// First characters of the key, shown so people can tell keys apart.
    pub prefix: String,
    /// Highest role the key acts with; it never exceeds its creator's current role.
    pub role: Role,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Hex SHA-256 of the whole key.
    pub hash: String,
}

/// Public view of a key: every field but the hash.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicApiKey {
    pub id: ApiKeyId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub prefix: String,
    pub role: Role,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    pub fn public(&self) -> PublicApiKey {
        PublicApiKey {
            id: self.id.clone(),
            workspace_id: self.workspace_id.clone(),
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            role: self.role,
            created_by: self.created_by.clone(),
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            expires_at: self.expires_at,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lookup {
    workspace_id: WorkspaceId,
    key_id: ApiKeyId,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("the workspace already has {max} API keys")]
    TooMany { max: u32 },
    #[error("the API key does not exist")]
    NotFound,
    /// The workspace changed since it was read; read it again and retry.
    #[error("the workspace changed concurrently")]
    Changed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WorkspaceError> for ApiKeyError {
    fn from(error: WorkspaceError) -> Self {
        match error {
            WorkspaceError::Store(error) => ApiKeyError::Store(error),
            _ => ApiKeyError::Changed,
        }
    }
}

fn record_key(workspace: &WorkspaceId, id: &ApiKeyId) -> Key {
    Key::new(workspace_partition(workspace), format!("APIKEY#{id}"))
}

fn lookup_key(hash: &str) -> Key {
    Key::new(format!("APIKEY#{hash}"), "APIKEY")
}

/// Builds the record item, also listed under its creator in secondary index 1.
fn record_item(key: &ApiKey, version: u64) -> Result<Item, StoreError> {
    let mut item = Item::new(record_key(&key.workspace_id, &key.id), to_data(key)?).with_gsi1(IndexKey::new(
        format!("USER#{}", key.created_by),
        format!("APIKEY#{}#{}", key.workspace_id, key.id),
    ));
    item.version = version;
    Ok(item)
}

/// Maps a failed transaction whose first write is the workspace record.
fn transaction_error(error: StoreError, conflict: ApiKeyError) -> ApiKeyError {
    match error {
        StoreError::ConditionFailed { index: Some(0) } => ApiKeyError::Changed,
        StoreError::ConditionFailed { .. } => conflict,
        other => other.into(),
    }
}

pub struct ApiKeys<'a> {
    store: &'a dyn Store,
}

impl<'a> ApiKeys<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    /// Creates a key, unless the workspace already has `max` keys.
    pub async fn create(&self, workspace: &Versioned<Workspace>, key: &ApiKey, max: u32) -> Result<(), ApiKeyError> {
        // The transaction is conditioned on the version this count was read at, so the check
        // is still true at commit time.
        if workspace.value.api_key_count >= max {
            return Err(ApiKeyError::TooMany { max });
        }
        let meta = next_meta(workspace, |workspace| {
            workspace.api_key_count += 1;
            Ok(())
        })?;

        let lookup = Lookup {
            workspace_id: key.workspace_id.clone(),
            key_id: key.id.clone(),
        };
        let mut lookup_item = Item::new(lookup_key(&key.hash), to_data(&lookup)?);
        // An expired key's lookup disappears on its own, so the key stops working even if a
        // check is missed.
        lookup_item.expires_at = key.expires_at.map(|at| at.timestamp());

        let writes = vec![
            meta,
            Write::Put {
                item: record_item(key, 1)?,
                condition: Condition::NotExists,
            },
            Write::Put {
                item: lookup_item,
                condition: Condition::NotExists,
            },
        ];
        self.store
            .transact(writes)
            .await
            .map_err(|error| transaction_error(error, ApiKeyError::Changed))
    }

    /// Finds the key whose hash is `hash`.
    pub async fn find_by_hash(&self, hash: &str) -> Result<Option<Versioned<ApiKey>>, StoreError> {
        let Some(item) = self.store.get(&lookup_key(hash)).await? else {
            return Ok(None);
        };
        let lookup: Versioned<Lookup> = from_item(item)?;
        self.get(&lookup.value.workspace_id, &lookup.value.key_id).await
    }

    pub async fn get(&self, workspace: &WorkspaceId, id: &ApiKeyId) -> Result<Option<Versioned<ApiKey>>, StoreError> {
        self.store
            .get(&record_key(workspace, id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Reads one page of a workspace's keys, oldest first.
    pub async fn list(
        &self,
        workspace: &WorkspaceId,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<(Vec<ApiKey>, Option<String>), StoreError> {
        let query = Query::partition(workspace_partition(workspace))
            .begins_with("APIKEY#")
            .limit(limit)
            .after(cursor);
        query_records(self.store, &query).await
    }

    /// Deletes a key and its lookup together.
    pub async fn delete(&self, workspace: &Versioned<Workspace>, key: &ApiKey) -> Result<(), ApiKeyError> {
        let meta = next_meta(workspace, |workspace| {
            workspace.api_key_count = workspace.api_key_count.saturating_sub(1);
            Ok(())
        })?;
        let writes = vec![
            meta,
            Write::Delete {
                key: record_key(&key.workspace_id, &key.id),
                condition: Condition::Exists,
            },
            Write::Delete {
                key: lookup_key(&key.hash),
                condition: Condition::Always,
            },
        ];
        self.store
            .transact(writes)
            .await
            .map_err(|error| transaction_error(error, ApiKeyError::NotFound))
    }

    /// Revokes every key `user` created, in one workspace or in all of them, and returns how
    /// many were revoked. Used when a member leaves and when an unverified password account is
    /// taken over by a verified sign-in.
    pub async fn revoke_created_by(&self, user: &UserId, workspace: Option<&WorkspaceId>) -> Result<u64, StoreError> {
        let prefix = match workspace {
            Some(workspace) => format!("APIKEY#{workspace}#"),
            None => "APIKEY#".to_owned(),
        };
        let workspaces = Workspaces::new(self.store);
        let mut revoked = 0;

        // Revoked keys leave the index, so every round reads from the top again. The bound
        // stops the loop if an index that lags behind keeps returning revoked keys.
        for _ in 0..100 {
            let query = Query::index(Index::Gsi1, format!("USER#{user}"))
                .begins_with(prefix.clone())
                .limit(100);
            let (keys, _) = query_records::<ApiKey>(self.store, &query).await?;
            if keys.is_empty() {
                break;
            }
            for key in keys {
                if self.revoke_with_retries(&workspaces, &key).await? {
                    revoked += 1;
                }
            }
        }
        Ok(revoked)
    }

    /// Deletes one key, re-reading its workspace after concurrent changes. Returns whether it
    /// was still there.
    async fn revoke_with_retries(&self, workspaces: &Workspaces<'_>, key: &ApiKey) -> Result<bool, StoreError> {
        for _ in 0..5 {
            let Some(workspace) = workspaces.get(&key.workspace_id).await? else {
                // The workspace is gone; drop what is left of the key.
                self.store
                    .delete(&record_key(&key.workspace_id, &key.id), Condition::Always)
                    .await?;
                self.store.delete(&lookup_key(&key.hash), Condition::Always).await?;
                return Ok(true);
            };
            match self.delete(&workspace, key).await {
                Ok(()) => return Ok(true),
                Err(ApiKeyError::NotFound) => return Ok(false),
                Err(ApiKeyError::Changed | ApiKeyError::TooMany { .. }) => continue,
                Err(ApiKeyError::Store(error)) => return Err(error),
            }
        }
        Err(StoreError::backend(anyhow::anyhow!(
            "workspace {} kept changing while revoking API key {}",
            key.workspace_id,
            key.id
        )))
    }

    /// Deletes the lookup item of a key record read from the workspace partition.
    pub(crate) async fn delete_lookup_of(&self, record: &Item) -> Result<(), StoreError> {
        if let Some(hash) = record.data.get("hash").and_then(|hash| hash.as_str()) {
            self.store.delete(&lookup_key(hash), Condition::Always).await?;
        }
        Ok(())
    }

    /// Records a use of the key. A concurrent update winning the race is fine.
    pub async fn touch(&self, key: &Versioned<ApiKey>, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut updated = key.value.clone();
        updated.last_used_at = Some(now);
        match self
            .store
            .put(record_item(&updated, key.version + 1)?, Condition::Version(key.version))
            .await
        {
            Err(StoreError::ConditionFailed { .. }) => Ok(()),
            other => other,
        }
    }
}
