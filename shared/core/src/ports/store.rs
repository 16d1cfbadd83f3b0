//! `Store`: items addressed by partition key and sort key, with DynamoDB's semantics.
//!
//! The model is DynamoDB's on purpose, so its adapter stays thin and the SQLite adapter
//! emulates exactly these rules:
//! - an item has a partition key (`pk`), a sort key (`sk`), up to two secondary index keys,
//!   an optional expiry time, a version number and a JSON document;
//! - an item whose `expires_at` has passed is invisible to every read and counts as absent
//!   for conditions, even before the backend removes it;
//! - a query reads one partition in sort-key order (UTF-8 byte order), forwards or backwards,
//!   one page at a time with an opaque cursor;
//! - a transaction applies all its writes or none.

use async_trait::async_trait;
use serde_json::Value;

/// Maximum size of one item, in bytes, enforced by every adapter so that code which works
/// locally also works on AWS. DynamoDB allows 400 KiB (409,600 bytes), counting attribute
/// names and values. This limit is lower, so the adapter's attribute names fit too, and so
/// does moto, which rejects items over 405,000 bytes.
pub const MAX_ITEM_BYTES: usize = 400_000;

/// Maximum number of writes in one transaction (DynamoDB's `TransactWriteItems` limit).
pub const MAX_TRANSACTION_WRITES: usize = 100;

/// Maximum number of keys in one `batch_get` call (DynamoDB's `BatchGetItem` limit).
pub const MAX_BATCH_GET_KEYS: usize = 100;

/// Maximum number of items in one query page.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Primary key of an item.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

/// Key of an item in a secondary index. Index keys need not be unique.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexKey {
    pub pk: String,
    pub sk: String,
}

impl IndexKey {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

/// One stored item.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub pk: String,
    pub sk: String,
    /// Key in the first secondary index, if the item appears there.
    pub gsi1: Option<IndexKey>,
    /// Key in the second secondary index, if the item appears there.
    pub gsi2: Option<IndexKey>,
    /// Unix time in seconds from which the item is invisible (DynamoDB TTL).
    pub expires_at: Option<i64>,
    /// Version for optimistic concurrency; the store keeps what the writer sets.
    pub version: u64,
    /// The record itself.
    pub data: Value,
}

impl Item {
    /// Creates an item at version 1 that appears in no index and never expires.
    pub fn new(key: Key, data: Value) -> Self {
        Self {
            pk: key.pk,
            sk: key.sk,
            gsi1: None,
            gsi2: None,
            expires_at: None,
            version: 1,
            data,
        }
    }

    pub fn key(&self) -> Key {
        Key::new(self.pk.clone(), self.sk.clone())
    }

    pub fn with_gsi1(mut self, key: IndexKey) -> Self {
        self.gsi1 = Some(key);
        self
    }

    pub fn with_gsi2(mut self, key: IndexKey) -> Self {
        self.gsi2 = Some(key);
        self
    }

    pub fn expiring_at(mut self, unix_seconds: i64) -> Self {
        self.expires_at = Some(unix_seconds);
        self
    }

    /// Returns whether the item is expired at `now` (Unix seconds).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Size of the item as the adapters count it against [`MAX_ITEM_BYTES`]: keys, index keys
    /// and the JSON text of the document, plus a fixed allowance for attribute names.
    pub fn stored_size(&self) -> usize {
        let index_len = |key: &Option<IndexKey>| key.as_ref().map_or(0, |k| k.pk.len() + k.sk.len());
        self.pk.len() + self.sk.len() + index_len(&self.gsi1) + index_len(&self.gsi2) + self.data.to_string().len() + 64
    }
}

/// Condition attached to a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// No condition.
    Always,
    /// No visible item has this key.
    NotExists,
    /// A visible item has this key.
    Exists,
    /// A visible item has this key and exactly this version.
    Version(u64),
}

/// Key that a query reads: the table's or a secondary index's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    Primary,
    Gsi1,
    Gsi2,
}

/// Condition on the sort key of a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortKey {
    All,
    Equals(String),
    BeginsWith(String),
    /// Inclusive at both ends.
    Between(String, String),
    /// Strictly greater.
    After(String),
    /// Strictly smaller.
    Before(String),
}

/// A query over one partition of the table or of a secondary index.
#[derive(Clone, Debug)]
pub struct Query {
    pub index: Index,
    pub pk: String,
    pub sort: SortKey,
    /// Ascending sort-key order when true, descending when false.
    pub forward: bool,
    /// Page size, 1 to [`MAX_PAGE_SIZE`].
    pub limit: u32,
    /// Cursor returned by the previous page of the same query.
    pub cursor: Option<String>,
}

impl Query {
    /// Starts a forward query over the whole partition `pk` of the table.
    pub fn partition(pk: impl Into<String>) -> Self {
        Self {
            index: Index::Primary,
            pk: pk.into(),
            sort: SortKey::All,
            forward: true,
            limit: 100,
            cursor: None,
        }
    }

    /// Starts a forward query over the partition `pk` of a secondary index.
    pub fn index(index: Index, pk: impl Into<String>) -> Self {
        Self {
            index,
            ..Self::partition(pk)
        }
    }

    pub fn sort(mut self, sort: SortKey) -> Self {
        self.sort = sort;
        self
    }

    pub fn begins_with(self, prefix: impl Into<String>) -> Self {
        self.sort(SortKey::BeginsWith(prefix.into()))
    }

    pub fn backwards(mut self) -> Self {
        self.forward = false;
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    pub fn after(mut self, cursor: Option<String>) -> Self {
        self.cursor = cursor;
        self
    }
}

/// One page of query results.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub items: Vec<Item>,
    /// Present when more items may follow. A page can be shorter than the limit, even
    /// empty, and still have a cursor, because expired items are skipped after reading.
    pub cursor: Option<String>,
}

/// One write of a transaction.
#[derive(Clone, Debug)]
pub enum Write {
    Put {
        item: Item,
        condition: Condition,
    },
    Delete {
        key: Key,
        condition: Condition,
    },
    /// Writes nothing; the transaction fails unless the condition holds.
    Check {
        key: Key,
        condition: Condition,
    },
}

impl Write {
    pub fn key(&self) -> Key {
        match self {
            Write::Put { item, .. } => item.key(),
            Write::Delete { key, .. } | Write::Check { key, .. } => key.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The condition of a write did not hold. In a transaction, `index` is the position of
    /// the first write whose condition failed.
    #[error("the write condition failed")]
    ConditionFailed { index: Option<usize> },
    #[error("the item is {size} bytes, over the limit of {MAX_ITEM_BYTES} bytes")]
    TooLarge { size: usize },
    #[error("the pagination cursor is invalid")]
    InvalidCursor,
    #[error("invalid store request: {0}")]
    InvalidRequest(String),
    /// The backend rejected the request for load; the caller may retry later.
    #[error("the store is throttling requests")]
    Throttled,
    #[error("store backend failed")]
    Backend(#[source] anyhow::Error),
}

impl StoreError {
    pub fn backend(error: impl Into<anyhow::Error>) -> Self {
        Self::Backend(error.into())
    }

    pub fn is_condition_failed(&self) -> bool {
        matches!(self, StoreError::ConditionFailed { .. })
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads one item; expired items read as absent.
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;

    /// Reads up to [`MAX_BATCH_GET_KEYS`] items; the result is aligned with `keys`.
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError>;

    /// Writes a whole item, replacing any item with the same key when the condition holds.
    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError>;

    /// Deletes an item when the condition holds. Deleting an absent item with
    /// [`Condition::Always`] succeeds.
    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError>;

    /// Reads one page of a partition.
    async fn query(&self, query: &Query) -> Result<Page, StoreError>;

    /// Applies up to [`MAX_TRANSACTION_WRITES`] writes on distinct keys atomically.
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError>;

    /// Adds `delta` to the counter at `key` and returns the new value. A missing or expired
    /// counter starts from zero and takes `expires_at`. Counters live in partitions of their
    /// own and are read only through this method (a `delta` of 0 reads without changing).
    async fn increment(&self, key: &Key, delta: i64, expires_at: Option<i64>) -> Result<i64, StoreError>;
}

/// Checks the limits shared by every adapter before a transaction is sent.
pub fn validate_transaction(writes: &[Write]) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Err(StoreError::InvalidRequest(
            "a transaction needs at least one write".into(),
        ));
    }
    if writes.len() > MAX_TRANSACTION_WRITES {
        return Err(StoreError::InvalidRequest(format!(
            "a transaction takes at most {MAX_TRANSACTION_WRITES} writes, got {}",
            writes.len()
        )));
    }

    let mut seen = std::collections::HashSet::new();
    for write in writes {
        if !seen.insert(write.key()) {
            return Err(StoreError::InvalidRequest(
                "a transaction cannot write the same key twice".into(),
            ));
        }
        if let Write::Put { item, .. } = write {
            validate_item(item)?;
        }
    }
    Ok(())
}

/// Checks an item against the limits shared by every adapter.
pub fn validate_item(item: &Item) -> Result<(), StoreError> {
    if item.pk.is_empty() || item.sk.is_empty() {
        return Err(StoreError::InvalidRequest(
            "partition and sort keys must not be empty".into(),
        ));
    }
    let size = item.stored_size();
    if size > MAX_ITEM_BYTES {
        return Err(StoreError::TooLarge { size });
    }
    Ok(())
}

/// Checks a query's page size.
pub fn validate_query(query: &Query) -> Result<(), StoreError> {
    if query.limit == 0 || query.limit > MAX_PAGE_SIZE {
        return Err(StoreError::InvalidRequest(format!(
            "page size must be between 1 and {MAX_PAGE_SIZE}, got {}",
            query.limit
        )));
    }
    if query.pk.is_empty() {
        return Err(StoreError::InvalidRequest("the partition key must not be empty".into()));
    }
    Ok(())
}
