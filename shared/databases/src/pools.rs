//! Connection pools of one server, one pool per database, shared by the PostgreSQL and
//! MySQL drivers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::pool::{PoolConnection, PoolOptions};
use sqlx::{Database, Pool};

use crate::error::ConnectorError;

/// Maximum databases of one connection with an open pool.
const MAX_POOLS: usize = 8;

/// The pools of one server's databases, by database name (empty for the server's default).
pub(crate) struct Pools<DB: Database> {
    pools: Mutex<HashMap<String, Pool<DB>>>,
}

impl<DB: Database> Pools<DB> {
    pub(crate) fn new() -> Self {
        Self {
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the pool of database `name`, made by `create` on first use. When
    /// `MAX_POOLS` are open, another database's pool is closed first.
    pub(crate) fn get(&self, name: &str, create: impl FnOnce() -> Pool<DB>) -> Result<Pool<DB>, ConnectorError> {
        let mut pools = self
            .pools
            .lock()
            .map_err(|_| ConnectorError::internal(anyhow::anyhow!("pool map poisoned")))?;
        if let Some(pool) = pools.get(name) {
            return Ok(pool.clone());
        }
        if pools.len() >= MAX_POOLS
            && let Some(evicted) = pools.keys().find(|key| *key != name).cloned()
            && let Some(pool) = pools.remove(&evicted)
        {
            tokio::spawn(async move { pool.close().await });
        }
        let pool = create();
        pools.insert(name.to_owned(), pool.clone());
        Ok(pool)
    }

    /// Closes every pool.
    pub(crate) async fn close(&self) {
        let pools: Vec<Pool<DB>> = match self.pools.lock() {
            Ok(mut pools) => pools.drain().map(|(_, pool)| pool).collect(),
            Err(_) => Vec::new(),
        };
        for pool in pools {
            pool.close().await;
        }
    }
}

/// Pool settings both drivers use: `size` connections at most, opened lazily, dropped after
/// 5 idle minutes or 30 minutes of age, and not pinged before use.
pub(crate) fn options<DB: Database>(size: u32, connect_timeout: Duration) -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(size)
        .min_connections(0)
        .acquire_timeout(connect_timeout)
        .idle_timeout(Duration::from_secs(300))
        .max_lifetime(Duration::from_secs(1800))
        .test_before_acquire(false)
}

/// Takes a connection from `pool`, waiting until `deadline` but no longer than
/// `connect_timeout`. Errors go through the driver's `map_error`.
pub(crate) async fn acquire<DB: Database>(
    pool: &Pool<DB>,
    deadline: Instant,
    connect_timeout: Duration,
    target: &str,
    map_error: impl FnOnce(sqlx::Error) -> ConnectorError,
) -> Result<PoolConnection<DB>, ConnectorError> {
    let wait = deadline.saturating_duration_since(Instant::now()).min(connect_timeout);
    match tokio::time::timeout(wait, pool.acquire()).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) if !matches!(error, sqlx::Error::PoolTimedOut) => Err(map_error(error)),
        Ok(Err(_)) | Err(_) => {
            // Open connections, none of them idle: the pool is busy, the server is up.
            if pool.size() > 0 && pool.num_idle() == 0 {
                return Err(ConnectorError::PoolBusy {
                    target: target.to_owned(),
                    size: pool.size(),
                    waited_ms: wait.as_millis(),
                });
            }
            Err(ConnectorError::Unreachable {
                target: target.to_owned(),
                reason: "connecting timed out".into(),
            })
        }
    }
}
