//! Typed repositories over the `Store`, written once for every adapter.
//!
//! Single-table layout (partition key / sort key):
//!
//! | record | pk | sk | gsi1 |
//! |---|---|---|---|
//! | user | `USER#<userId>` | `PROFILE` | |
//! | email claim | `EMAIL#<email>` | `EMAIL` | |
//! | OAuth identity | `IDENTITY#<provider>#<subject>` | `IDENTITY` | |
//! | session | `SESSION#<sha256(token)>` | `SESSION` | `USER#<userId>` / `SESSION#<created>#<hash>` |
//! | OAuth state | `OAUTH#<state>` | `STATE` | |
//! | workspace | `WS#<workspaceId>` | `META` | |
//! | slug claim | `SLUG#<slug>` | `SLUG` | |
//! | member | `WS#<workspaceId>` | `MEMBER#<userId>` | `USER#<userId>` / `WS#<workspaceId>` |
//! | API key | `WS#<workspaceId>` | `APIKEY#<keyId>` | |
//! | API key lookup | `APIKEY#<sha256(key)>` | `APIKEY` | |
//! | connection | `WS#<workspaceId>` | `CONN#<connectionId>` | |
//! | console, folder, name claim, code version, run statistics | `WS#<workspaceId>` | `CONSOLE#…`, `CFOLDER#…`, `CNAME#…`, `CVERSION#…`, `CSTATS#…` (see `consoles`) | |
//! | dashboard, dashboard folder | `WS#<workspaceId>` | `DASH#<dashboardId>`, `DFOLDER#<folderId>` | |
//! | chat, chat message | `WS#<workspaceId>` | `CHAT#<chatId>`, `CHATMSG#<chatId>#<seq>#<chunk>` (see `chats`) | `CHATS#<workspaceId>#<ownerId>` / `<updatedAt>#<chatId>` (chats) |
//! | materialization | `WS#<workspaceId>` | `MAT#<dashboardId>#<dataSourceId>` | `MATSCHED` / next run (gsi1); `MATJOB` / last heartbeat (gsi2) |
//! | rate counter | `RATE#<kind>#<subject>` | `<window start>` | |
//! | pending workspace purge | `PURGE` | `<workspaceId>` | |
//!
//! Everything a workspace owns lives in its `WS#` partition or is reachable from it, which
//! is what workspace deletion walks.

pub mod api_keys;
pub mod chats;
pub mod connections;
pub mod consoles;
pub mod dashboards;
pub mod materializations;
pub mod oauth_states;
pub mod sessions;
pub mod users;
pub mod workspaces;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ports::{Item, Query, Store, StoreError};

/// A record and the store version it was read at.
#[derive(Clone, Debug)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// Serializes a record into an item's document.
pub(crate) fn to_data<T: Serialize>(record: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(record).map_err(StoreError::backend)
}

/// Deserializes an item's document into a record.
pub(crate) fn from_item<T: DeserializeOwned>(item: Item) -> Result<Versioned<T>, StoreError> {
    let version = item.version;
    let value = serde_json::from_value(item.data).map_err(|error| {
        StoreError::backend(anyhow::anyhow!(
            "item {}/{} does not hold the expected record: {error}",
            item.pk,
            item.sk
        ))
    })?;
    Ok(Versioned { value, version })
}

/// Reads one page of a query and deserializes each item into a record.
pub(crate) async fn query_records<T: DeserializeOwned>(
    store: &dyn Store,
    query: &Query,
) -> Result<(Vec<T>, Option<String>), StoreError> {
    let page = store.query(query).await?;
    let records = page
        .items
        .into_iter()
        .map(|item| from_item::<T>(item).map(|record| record.value))
        .collect::<Result<_, _>>()?;
    Ok((records, page.cursor))
}

/// Reads every record under `prefix` of a partition, page by page, with the store versions.
pub(crate) async fn read_prefix<T: DeserializeOwned>(
    store: &dyn Store,
    partition: String,
    prefix: &str,
) -> Result<Vec<Versioned<T>>, StoreError> {
    let mut records = Vec::new();
    let mut cursor = None;
    loop {
        let query = Query::partition(partition.clone())
            .begins_with(prefix)
            .limit(crate::ports::store::MAX_PAGE_SIZE)
            .after(cursor);
        let page = store.query(&query).await?;
        for item in page.items {
            records.push(from_item::<T>(item)?);
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(records),
        }
    }
}
