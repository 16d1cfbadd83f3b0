//! API keys: a record in the workspace partition for listing, plus a lookup item addressed
//! by the key's SHA-256 for authentication. Both are written and deleted together.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::workspaces::workspace_partition;
use super::{Versioned, from_item, to_data};
use crate::access::Role;
use crate::ids::{ApiKeyId, UserId, WorkspaceId};
use crate::ports::{Condition, Item, Key, Query, Store, StoreError, Write};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    /// First characters of the key, shown so people can tell keys apart.
    pub prefix: String,
    /// Most the key may do; it never exceeds its creator's current role.
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

fn record_key(workspace: &WorkspaceId, id: &ApiKeyId) -> Key {
    Key::new(workspace_partition(workspace), format!("APIKEY#{id}"))
}

fn lookup_key(hash: &str) -> Key {
    Key::new(format!("APIKEY#{hash}"), "APIKEY")
}

fn record_item(key: &ApiKey, version: u64) -> Result<Item, StoreError> {
    let mut item = Item::new(record_key(&key.workspace_id, &key.id), to_data(key)?);
    item.version = version;
    Ok(item)
}

pub struct ApiKeys<'a> {
    store: &'a dyn Store,
}

impl<'a> ApiKeys<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    pub async fn create(&self, key: &ApiKey) -> Result<(), StoreError> {
        let lookup = Lookup {
            workspace_id: key.workspace_id.clone(),
            key_id: key.id.clone(),
        };
        let mut lookup_item = Item::new(lookup_key(&key.hash), to_data(&lookup)?);
        // An expired key's lookup disappears on its own, so the key stops working even if a
        // check is missed.
        lookup_item.expires_at = key.expires_at.map(|at| at.timestamp());

        self.store
            .transact(vec![
                Write::Put {
                    item: record_item(key, 1)?,
                    condition: Condition::NotExists,
                },
                Write::Put {
                    item: lookup_item,
                    condition: Condition::NotExists,
                },
            ])
            .await
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
        let page = self.store.query(&query).await?;
        let keys = page
            .items
            .into_iter()
            .map(|item| from_item::<ApiKey>(item).map(|v| v.value))
            .collect::<Result<_, _>>()?;
        Ok((keys, page.cursor))
    }

    /// Counts a workspace's keys, stopping at `max`.
    pub async fn count(&self, workspace: &WorkspaceId, max: u32) -> Result<u32, StoreError> {
        let mut count = 0;
        let mut cursor = None;
        loop {
            let query = Query::partition(workspace_partition(workspace))
                .begins_with("APIKEY#")
                .limit(100)
                .after(cursor);
            let page = self.store.query(&query).await?;
            count += page.items.len() as u32;
            match page.cursor {
                Some(next) if count < max => cursor = Some(next),
                _ => return Ok(count),
            }
        }
    }

    /// Deletes a key and its lookup together.
    pub async fn delete(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.store
            .transact(vec![
                Write::Delete {
                    key: record_key(&key.workspace_id, &key.id),
                    condition: Condition::Exists,
                },
                Write::Delete {
                    key: lookup_key(&key.hash),
                    condition: Condition::Always,
                },
            ])
            .await
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
