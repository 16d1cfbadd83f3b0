//! `Store` over the `items` and `counters` tables of the SQLite file.
//!
//! Writes are serialized by an in-process lock, so this process's transactions never wait
//! on each other for SQLite's write lock. Readers are not blocked by writers, thanks to WAL.
//!
//! Items read by key are kept in memory until the next write of any item. This process is
//! the file's only writer (the data folder's lock ensures that), so the copies cannot go
//! stale, and the reads every request makes (its API key, workspace, membership) skip
//! SQLite's worker threads.

use std::collections::HashMap;
use std::sync::PoisonError;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mako_core::ports::store::{MAX_BATCH_GET_KEYS, validate_item, validate_query, validate_transaction};
use mako_core::ports::{Condition, Index, IndexKey, Item, Key, Page, Query, SortKey, Store, StoreError, Write};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};
use tokio::sync::Mutex;

/// Maximum items in the read cache; a full cache starts over.
const CACHE_ITEMS: usize = 10_000;
/// Largest stored JSON, in bytes, of an item the read cache keeps. Records read on every
/// request (keys, sessions, workspaces, members, connections) are far smaller, and the
/// limit keeps the cache under about 160 MB.
const CACHE_ITEM_BYTES: usize = 16 * 1024;

pub struct SqliteStore {
    pool: SqlitePool,
    /// Serializes writers; see the module documentation.
    writer: Mutex<()>,
    cache: std::sync::Mutex<ReadCache>,
}

/// Results of reads by key, dropped on every write. A read stores its result only when no
/// write has finished since it began (same `generation`), so a result read before a write
/// never outlives it.
#[derive(Default)]
struct ReadCache {
    generation: u64,
    items: HashMap<(String, String), Option<Item>>,
}

const COLUMNS: &str = "pk, sk, gsi1pk, gsi1sk, gsi2pk, gsi2sk, expires_at, version, data";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn backend(error: sqlx::Error) -> StoreError {
    StoreError::backend(error)
}

fn row_to_item(row: &SqliteRow) -> Result<Item, StoreError> {
    let index_key = |pk: Option<String>, sk: Option<String>| match (pk, sk) {
        (Some(pk), Some(sk)) => Some(IndexKey { pk, sk }),
        _ => None,
    };
    let data: String = row.try_get("data").map_err(backend)?;
    let version: i64 = row.try_get("version").map_err(backend)?;
    Ok(Item {
        pk: row.try_get("pk").map_err(backend)?,
        sk: row.try_get("sk").map_err(backend)?,
        gsi1: index_key(
            row.try_get("gsi1pk").map_err(backend)?,
            row.try_get("gsi1sk").map_err(backend)?,
        ),
        gsi2: index_key(
            row.try_get("gsi2pk").map_err(backend)?,
            row.try_get("gsi2sk").map_err(backend)?,
        ),
        expires_at: row.try_get("expires_at").map_err(backend)?,
        version: u64::try_from(version).unwrap_or_default(),
        data: serde_json::from_str(&data).map_err(StoreError::backend)?,
    })
}

/// Cursor of the embedded store: the position of the last item of a page.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "on", rename_all = "lowercase")]
enum Cursor {
    Table { sk: String },
    Index { isk: String, pk: String, sk: String },
}

impl Cursor {
    fn encode(&self) -> Result<String, StoreError> {
        let json = serde_json::to_vec(self).map_err(StoreError::backend)?;
        Ok(URL_SAFE_NO_PAD.encode(json))
    }

    fn decode(text: &str) -> Result<Cursor, StoreError> {
        let json = URL_SAFE_NO_PAD.decode(text).map_err(|_| StoreError::InvalidCursor)?;
        serde_json::from_slice(&json).map_err(|_| StoreError::InvalidCursor)
    }
}

impl SqliteStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self {
            pool,
            writer: Mutex::new(()),
            cache: std::sync::Mutex::new(ReadCache::default()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, ReadCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Looks `key` up in the cache. A miss returns the generation that a read from SQLite
    /// must still see when it stores its result.
    fn cached(&self, key: &Key, now: i64) -> Result<Option<Item>, u64> {
        let cache = self.cache();
        match cache.items.get(&(key.pk.clone(), key.sk.clone())) {
            Some(Some(item)) if item.expires_at.is_some_and(|at| at <= now) => Ok(None),
            Some(found) => Ok(found.clone()),
            None => Err(cache.generation),
        }
    }

    fn remember(&self, key: &Key, generation: u64, item: &Option<Item>) {
        let mut cache = self.cache();
        if cache.generation != generation {
            return;
        }
        if cache.items.len() >= CACHE_ITEMS {
            cache.items.clear();
        }
        cache.items.insert((key.pk.clone(), key.sk.clone()), item.clone());
    }

    /// Drops every cached read; called after each write, committed or not.
    fn forget(&self) {
        let mut cache = self.cache();
        cache.generation += 1;
        cache.items.clear();
    }

    /// Reads the item at `key` on `executor`, through the cache.
    async fn read<'c, E>(&self, executor: E, key: &Key, now: i64) -> Result<Option<Item>, StoreError>
    where
        E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
    {
        let generation = match self.cached(key, now) {
            Ok(item) => return Ok(item),
            Err(generation) => generation,
        };
        let row = sqlx::query(
            "SELECT pk, sk, gsi1pk, gsi1sk, gsi2pk, gsi2sk, expires_at, version, data FROM items
             WHERE pk = ? AND sk = ? AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(&key.pk)
        .bind(&key.sk)
        .bind(now)
        .fetch_optional(executor)
        .await
        .map_err(backend)?;
        let size = match &row {
            Some(row) => row.try_get::<&str, _>("data").map_err(backend)?.len(),
            None => 0,
        };
        let item = row.as_ref().map(row_to_item).transpose()?;
        if size <= CACHE_ITEM_BYTES {
            self.remember(key, generation, &item);
        }
        Ok(item)
    }

    /// Deletes expired items and counters for good and returns how many rows went.
    /// Reads already hide them; this only reclaims space.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let _guard = self.writer.lock().await;
        let now = now();
        let items = sqlx::query("DELETE FROM items WHERE expires_at IS NOT NULL AND expires_at <= ?")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        let counters = sqlx::query("DELETE FROM counters WHERE expires_at IS NOT NULL AND expires_at <= ?")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(items.rows_affected() + counters.rows_affected())
    }
}

/// Reads the visible item at `key` inside a write transaction.
async fn visible_version(conn: &mut SqliteConnection, key: &Key, now: i64) -> Result<Option<u64>, StoreError> {
    let row = sqlx::query("SELECT version, expires_at FROM items WHERE pk = ? AND sk = ?")
        .bind(&key.pk)
        .bind(&key.sk)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
    let Some(row) = row else { return Ok(None) };
    let expires_at: Option<i64> = row.try_get("expires_at").map_err(backend)?;
    if expires_at.is_some_and(|at| at <= now) {
        return Ok(None);
    }
    let version: i64 = row.try_get("version").map_err(backend)?;
    Ok(Some(u64::try_from(version).unwrap_or_default()))
}

fn condition_holds(condition: Condition, current: Option<u64>) -> bool {
    match condition {
        Condition::Always => true,
        Condition::NotExists => current.is_none(),
        Condition::Exists => current.is_some(),
        Condition::Version(version) => current == Some(version),
    }
}

async fn write_item(conn: &mut SqliteConnection, item: &Item) -> Result<(), StoreError> {
    let data = serde_json::to_string(&item.data).map_err(StoreError::backend)?;
    let version = i64::try_from(item.version)
        .map_err(|_| StoreError::InvalidRequest("the version does not fit in 63 bits".into()))?;
    sqlx::query(
        "INSERT OR REPLACE INTO items (pk, sk, gsi1pk, gsi1sk, gsi2pk, gsi2sk, expires_at, version, data)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&item.pk)
    .bind(&item.sk)
    .bind(item.gsi1.as_ref().map(|k| k.pk.as_str()))
    .bind(item.gsi1.as_ref().map(|k| k.sk.as_str()))
    .bind(item.gsi2.as_ref().map(|k| k.pk.as_str()))
    .bind(item.gsi2.as_ref().map(|k| k.sk.as_str()))
    .bind(item.expires_at)
    .bind(version)
    .bind(data)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

async fn delete_item(conn: &mut SqliteConnection, key: &Key) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM items WHERE pk = ? AND sk = ?")
        .bind(&key.pk)
        .bind(&key.sk)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(())
}

/// SQL text and string parameters of a query's `WHERE` clause, page order and cursor.
struct QuerySql {
    text: String,
    binds: Vec<String>,
}

fn build_query(query: &Query) -> Result<QuerySql, StoreError> {
    let (pk_column, sk_column) = match query.index {
        Index::Primary => ("pk", "sk"),
        Index::Gsi1 => ("gsi1pk", "gsi1sk"),
        Index::Gsi2 => ("gsi2pk", "gsi2sk"),
    };
    let mut text = format!("SELECT {COLUMNS} FROM items WHERE {pk_column} = ?");
    let mut binds = vec![query.pk.clone()];

    match &query.sort {
        SortKey::All => {}
        SortKey::Equals(value) => {
            text.push_str(&format!(" AND {sk_column} = ?"));
            binds.push(value.clone());
        }
        SortKey::BeginsWith(prefix) => {
            // `substr` and `length` both count characters, so this is an exact prefix test;
            // the lower bound lets SQLite seek in the index.
            text.push_str(&format!(
                " AND {sk_column} >= ? AND substr({sk_column}, 1, length(?)) = ?"
            ));
            binds.extend([prefix.clone(), prefix.clone(), prefix.clone()]);
        }
        SortKey::Between(low, high) => {
            text.push_str(&format!(" AND {sk_column} >= ? AND {sk_column} <= ?"));
            binds.extend([low.clone(), high.clone()]);
        }
        SortKey::After(value) => {
            text.push_str(&format!(" AND {sk_column} > ?"));
            binds.push(value.clone());
        }
        SortKey::Before(value) => {
            text.push_str(&format!(" AND {sk_column} < ?"));
            binds.push(value.clone());
        }
    }

    let comparison = if query.forward { ">" } else { "<" };
    if let Some(cursor) = &query.cursor {
        match (query.index, Cursor::decode(cursor)?) {
            (Index::Primary, Cursor::Table { sk }) => {
                text.push_str(&format!(" AND sk {comparison} ?"));
                binds.push(sk);
            }
            (Index::Gsi1 | Index::Gsi2, Cursor::Index { isk, pk, sk }) => {
                text.push_str(&format!(" AND ({sk_column}, pk, sk) {comparison} (?, ?, ?)"));
                binds.extend([isk, pk, sk]);
            }
            _ => return Err(StoreError::InvalidCursor),
        }
    }

    let direction = if query.forward { "ASC" } else { "DESC" };
    text.push_str(" AND (expires_at IS NULL OR expires_at > ?)");
    match query.index {
        Index::Primary => text.push_str(&format!(" ORDER BY sk {direction}")),
        _ => text.push_str(&format!(
            " ORDER BY {sk_column} {direction}, pk {direction}, sk {direction}"
        )),
    }
    text.push_str(" LIMIT ?");
    Ok(QuerySql { text, binds })
}

fn cursor_after(query: &Query, last: &Item) -> Result<String, StoreError> {
    let index_key = match query.index {
        Index::Primary => None,
        Index::Gsi1 => last.gsi1.as_ref(),
        Index::Gsi2 => last.gsi2.as_ref(),
    };
    let cursor = match index_key {
        None => Cursor::Table { sk: last.sk.clone() },
        Some(key) => Cursor::Index {
            isk: key.sk.clone(),
            pk: last.pk.clone(),
            sk: last.sk.clone(),
        },
    };
    cursor.encode()
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.read(&self.pool, key, now()).await
    }

    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        if keys.len() > MAX_BATCH_GET_KEYS {
            return Err(StoreError::InvalidRequest(format!(
                "batch_get takes at most {MAX_BATCH_GET_KEYS} keys, got {}",
                keys.len()
            )));
        }
        // Each read is a point lookup on the primary key; one connection serves them all.
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let now = now();
        let mut items = Vec::with_capacity(keys.len());
        for key in keys {
            items.push(self.read(&mut *conn, key, now).await?);
        }
        Ok(items)
    }

    // Write transactions start with BEGIN IMMEDIATE. A deferred transaction that reads and
    // then writes cannot wait for another writer: SQLite fails its upgrade to a write lock
    // at once with "database is locked", whatever the busy timeout.
    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        validate_item(&item)?;
        let _guard = self.writer.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;

        if condition != Condition::Always {
            let current = visible_version(&mut tx, &item.key(), now()).await?;
            if !condition_holds(condition, current) {
                return Err(StoreError::ConditionFailed { index: None });
            }
        }
        write_item(&mut tx, &item).await?;

        let committed = tx.commit().await.map_err(backend);
        self.forget();
        committed
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        let _guard = self.writer.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;

        if condition != Condition::Always {
            let current = visible_version(&mut tx, key, now()).await?;
            if !condition_holds(condition, current) {
                return Err(StoreError::ConditionFailed { index: None });
            }
        }
        delete_item(&mut tx, key).await?;

        let committed = tx.commit().await.map_err(backend);
        self.forget();
        committed
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        validate_query(query)?;
        let sql = build_query(query)?;

        // One row beyond the page shows whether another page follows.
        let mut statement = sqlx::query(sqlx::AssertSqlSafe(sql.text));
        for bind in sql.binds {
            statement = statement.bind(bind);
        }
        let rows = statement
            .bind(now())
            .bind(i64::from(query.limit) + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;

        let mut items = rows.iter().map(row_to_item).collect::<Result<Vec<_>, _>>()?;
        let mut cursor = None;
        if items.len() > query.limit as usize {
            items.truncate(query.limit as usize);
            if let Some(last) = items.last() {
                cursor = Some(cursor_after(query, last)?);
            }
        }
        Ok(Page { items, cursor })
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        validate_transaction(&writes)?;
        let _guard = self.writer.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let now = now();

        // Every condition is checked before anything is written, so a failure leaves the
        // transaction empty even before the rollback.
        for (index, write) in writes.iter().enumerate() {
            let condition = match write {
                Write::Put { condition, .. } | Write::Delete { condition, .. } | Write::Check { condition, .. } => {
                    *condition
                }
            };
            if condition == Condition::Always {
                continue;
            }
            let current = visible_version(&mut tx, &write.key(), now).await?;
            if !condition_holds(condition, current) {
                return Err(StoreError::ConditionFailed { index: Some(index) });
            }
        }

        for write in &writes {
            match write {
                Write::Put { item, .. } => write_item(&mut tx, item).await?,
                Write::Delete { key, .. } => delete_item(&mut tx, key).await?,
                Write::Check { .. } => {}
            }
        }
        let committed = tx.commit().await.map_err(backend);
        self.forget();
        committed
    }

    async fn increment(&self, key: &Key, delta: i64, expires_at: Option<i64>) -> Result<i64, StoreError> {
        let _guard = self.writer.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let now = now();

        let row = sqlx::query("SELECT value, expires_at FROM counters WHERE pk = ? AND sk = ?")
            .bind(&key.pk)
            .bind(&key.sk)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let (value, kept_expiry) = match row {
            Some(row) => {
                let stored_expiry: Option<i64> = row.try_get("expires_at").map_err(backend)?;
                if stored_expiry.is_some_and(|at| at <= now) {
                    (delta, expires_at)
                } else {
                    let value: i64 = row.try_get("value").map_err(backend)?;
                    let value = value
                        .checked_add(delta)
                        .ok_or_else(|| StoreError::InvalidRequest("the counter would overflow 64 bits".into()))?;
                    (value, expires_at.or(stored_expiry))
                }
            }
            None => (delta, expires_at),
        };

        sqlx::query("INSERT OR REPLACE INTO counters (pk, sk, value, expires_at) VALUES (?, ?, ?, ?)")
            .bind(&key.pk)
            .bind(&key.sk)
            .bind(value)
            .bind(kept_expiry)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(value)
    }
}
