//! Agent chats and their messages.
//!
//! | record | pk | sk | gsi1 |
//! |---|---|---|---|
//! | chat | `WS#<workspaceId>` | `CHAT#<chatId>` | `CHATS#<workspaceId>#<ownerId>` / `<updatedAt>#<chatId>` |
//! | message | `WS#<workspaceId>` | `CHATMSG#<chatId>#<seq>#<chunk>` | |
//!
//! Each message is its own item, so a chat grows without meeting the item size limit. A
//! message whose parts are too big for one item is split into chunks. Messages are written
//! first and the chat record, which counts them, last: the count is the commit point, and a
//! message at or past it is invisible (an interrupted write leaves nothing readable).
//! The owner's index entry sorts chats by their last change, newest first.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::workspaces::workspace_partition;
use super::{Versioned, from_item, read_prefix, to_data};
use crate::ids::{ChatId, UserId, WorkspaceId};
use crate::ports::store::MAX_TRANSACTION_WRITES;
use crate::ports::{Condition, Index, IndexKey, Item, Key, Query, Store, StoreError, Write};

/// Bytes of message parts stored in one item, below the store's item limit.
const CHUNK_BYTES: usize = 300_000;

/// Largest single message part the store accepts, in bytes of JSON. The agent shortens tool
/// outputs to fit.
pub const MAX_PART_BYTES: usize = 256 * 1024;

/// Most bytes of messages one append writes, below DynamoDB's 4 MB per transaction.
pub const MAX_APPEND_BYTES: usize = 3_500_000;

/// A conversation with the agent, owned by the member who started it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chat {
    pub id: ChatId,
    pub workspace_id: WorkspaceId,
    pub owner_id: UserId,
    pub title: String,
    /// Whether a person set the title; until then the first exchange names the chat.
    #[serde(default)]
    pub titled: bool,
    /// Model of the last reply.
    pub model: Option<String>,
    /// Messages committed so far; also the sequence number of the next one.
    pub message_count: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// While a reply is being written, the time until which the chat counts as busy.
    #[serde(default)]
    pub busy_until: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    User,
    Assistant,
}

/// One stored message, in the AI SDK's `UIMessage` shape: parts such as `{"type": "text"}` and
/// `{"type": "tool-<name>"}`, and metadata (model, token usage, finish reason).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    pub role: MessageRole,
    pub parts: Vec<Value>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
}

/// One item of a message: all its parts, or a run of them when the message is split.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    id: String,
    role: MessageRole,
    seq: u32,
    index: u32,
    /// Number of chunks of the message; set on the first.
    #[serde(default)]
    chunks: u32,
    parts: Vec<Value>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    metadata: Value,
    created_at: DateTime<Utc>,
}

fn chat_key(workspace: &WorkspaceId, id: &ChatId) -> Key {
    Key::new(workspace_partition(workspace), format!("CHAT#{id}"))
}

fn owner_partition(workspace: &WorkspaceId, owner: &UserId) -> String {
    format!("CHATS#{workspace}#{owner}")
}

fn message_prefix(id: &ChatId) -> String {
    format!("CHATMSG#{id}#")
}

fn message_key(workspace: &WorkspaceId, id: &ChatId, seq: u32, chunk: usize) -> Key {
    Key::new(
        workspace_partition(workspace),
        format!("{}{seq:06}#{chunk:03}", message_prefix(id)),
    )
}

fn chat_item(chat: &Chat, version: u64) -> Result<Item, StoreError> {
    let order = format!(
        "{}#{}",
        chat.updated_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        chat.id
    );
    Ok(Item {
        version,
        ..Item::new(chat_key(&chat.workspace_id, &chat.id), to_data(chat)?).with_gsi1(IndexKey::new(
            owner_partition(&chat.workspace_id, &chat.owner_id),
            order,
        ))
    })
}

/// Splits a message's parts into runs that each fit in one item.
fn chunks_of(message: &Message, seq: u32) -> Result<Vec<Chunk>, StoreError> {
    let mut runs: Vec<Vec<Value>> = vec![Vec::new()];
    let mut size = 0;
    for part in &message.parts {
        let bytes = part.to_string().len();
        if bytes > MAX_PART_BYTES {
            return Err(StoreError::InvalidRequest(format!(
                "a message part is {bytes} bytes, over the limit of {MAX_PART_BYTES} bytes"
            )));
        }
        if size + bytes > CHUNK_BYTES && runs.last().is_some_and(|run| !run.is_empty()) {
            runs.push(Vec::new());
            size = 0;
        }
        size += bytes;
        if let Some(run) = runs.last_mut() {
            run.push(part.clone());
        }
    }
    let count = runs.len() as u32;
    Ok(runs
        .into_iter()
        .enumerate()
        .map(|(index, parts)| Chunk {
            id: message.id.clone(),
            role: message.role,
            seq,
            index: index as u32,
            chunks: if index == 0 { count } else { 0 },
            parts,
            metadata: if index == 0 {
                message.metadata.clone()
            } else {
                Value::Null
            },
            created_at: message.created_at,
        })
        .collect())
}

/// Chats and messages of every workspace.
pub struct Chats<'a> {
    store: &'a dyn Store,
}

impl<'a> Chats<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    /// Stores a new chat.
    pub async fn create(&self, chat: &Chat) -> Result<(), StoreError> {
        self.store.put(chat_item(chat, 1)?, Condition::NotExists).await
    }

    pub async fn get(&self, workspace: &WorkspaceId, id: &ChatId) -> Result<Option<Versioned<Chat>>, StoreError> {
        self.store
            .get(&chat_key(workspace, id))
            .await?
            .map(from_item::<Chat>)
            .transpose()
    }

    /// Reads one page of an owner's chats in a workspace, most recently changed first.
    pub async fn list(
        &self,
        workspace: &WorkspaceId,
        owner: &UserId,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<(Vec<Chat>, Option<String>), StoreError> {
        let query = Query::index(Index::Gsi1, owner_partition(workspace, owner))
            .backwards()
            .limit(limit)
            .after(cursor);
        super::query_records(self.store, &query).await
    }

    /// Replaces the chat record when it is still at the version it was read at. Returns the
    /// new version, or a failed condition when someone changed it in between.
    pub async fn save(&self, current: &Versioned<Chat>, updated: &Chat) -> Result<Versioned<Chat>, StoreError> {
        let version = current.version + 1;
        self.store
            .put(chat_item(updated, version)?, Condition::Version(current.version))
            .await?;
        Ok(Versioned {
            value: updated.clone(),
            version,
        })
    }

    /// Writes `messages` after the chat's committed ones and saves `updated` (its
    /// `message_count` is set here) in one transaction, at the version `current` was read
    /// at. A `current` at version 0 is a chat not stored yet, created by this write. Two
    /// writers that read the same version cannot both succeed, and the loser writes nothing.
    pub async fn append(
        &self,
        current: &Versioned<Chat>,
        mut updated: Chat,
        messages: &[Message],
    ) -> Result<Versioned<Chat>, StoreError> {
        let first = current.value.message_count;
        updated.message_count = first + messages.len() as u32;
        let version = current.version + 1;
        let condition = match current.version {
            0 => Condition::NotExists,
            read => Condition::Version(read),
        };
        let mut writes = vec![Write::Put {
            item: chat_item(&updated, version)?,
            condition,
        }];
        let mut bytes = 0;
        for (offset, message) in messages.iter().enumerate() {
            let seq = first + offset as u32;
            for (index, chunk) in chunks_of(message, seq)?.into_iter().enumerate() {
                let key = message_key(&current.value.workspace_id, &current.value.id, seq, index);
                let item = Item::new(key, to_data(&chunk)?);
                bytes += item.stored_size();
                // Items past the count are leftovers of a failed write and are replaced.
                writes.push(Write::Put {
                    item,
                    condition: Condition::Always,
                });
            }
        }
        if bytes > MAX_APPEND_BYTES || writes.len() > MAX_TRANSACTION_WRITES {
            return Err(StoreError::InvalidRequest(format!(
                "the messages take {bytes} bytes in {} items; one write takes at most {MAX_APPEND_BYTES} bytes in {MAX_TRANSACTION_WRITES} items",
                writes.len()
            )));
        }
        match self.store.transact(writes).await {
            Ok(()) => Ok(Versioned {
                value: updated,
                version,
            }),
            Err(StoreError::ConditionFailed { .. }) => Err(StoreError::ConditionFailed { index: Some(0) }),
            Err(error) => Err(error),
        }
    }

    /// Reads every committed message of a chat, in order.
    pub async fn messages(&self, chat: &Chat) -> Result<Vec<Message>, StoreError> {
        let chunks: Vec<Versioned<Value>> = read_prefix(
            self.store,
            workspace_partition(&chat.workspace_id),
            &message_prefix(&chat.id),
        )
        .await?;
        // A write interrupted before its commit may have left chunks past the count, or more
        // chunks of a message than its first one counts. Both are ignored.
        let mut by_seq: BTreeMap<u32, Vec<Chunk>> = BTreeMap::new();
        for record in chunks {
            let chunk: Chunk = serde_json::from_value(record.value).map_err(StoreError::backend)?;
            if chunk.seq < chat.message_count {
                by_seq.entry(chunk.seq).or_default().push(chunk);
            }
        }
        let mut messages = Vec::with_capacity(by_seq.len());
        for (seq, mut run) in by_seq {
            run.sort_by_key(|chunk| chunk.index);
            let count = run
                .first()
                .filter(|first| first.index == 0)
                .map_or(0, |first| first.chunks);
            run.truncate(count as usize);
            let complete = run.len() == count as usize && run.iter().all(|chunk| chunk.id == run[0].id);
            if !complete || run.is_empty() {
                return Err(StoreError::backend(anyhow::anyhow!(
                    "message {seq} of chat {} is incomplete in the store",
                    chat.id
                )));
            }
            let first = &mut run[0];
            let metadata = std::mem::take(&mut first.metadata);
            let (id, role, created_at) = (first.id.clone(), first.role, first.created_at);
            messages.push(Message {
                id,
                role,
                parts: run.into_iter().flat_map(|chunk| chunk.parts).collect(),
                metadata,
                created_at,
            });
        }
        Ok(messages)
    }

    /// Deletes a chat at the version it was read at, then its messages. Messages left by an
    /// interrupted deletion are unreachable and go with the workspace.
    pub async fn delete(&self, current: &Versioned<Chat>) -> Result<(), StoreError> {
        let chat = &current.value;
        self.store
            .delete(
                &chat_key(&chat.workspace_id, &chat.id),
                Condition::Version(current.version),
            )
            .await?;
        let partition = workspace_partition(&chat.workspace_id);
        let prefix = message_prefix(&chat.id);
        loop {
            let query = Query::partition(partition.clone())
                .begins_with(prefix.clone())
                .limit(crate::ports::store::MAX_PAGE_SIZE);
            let page = self.store.query(&query).await?;
            if page.items.is_empty() && page.cursor.is_none() {
                return Ok(());
            }
            for item in &page.items {
                self.store.delete(&item.key(), Condition::Always).await?;
            }
            if page.items.is_empty() {
                return Ok(());
            }
        }
    }
}
