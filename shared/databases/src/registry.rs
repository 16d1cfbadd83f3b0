//! Open drivers, shared by every request of the process, so pools are reused across
//! requests (and across warm invocations of a Lambda function).
//!
//! A driver is keyed by its connection id and the version of the connection's record, so an
//! update opens a new driver and the old one closes. Drivers unused for ten minutes close,
//! and at most 64 stay open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mako_core::config::ConnectorSettings;

use crate::Database;
use crate::error::ConnectorError;
use crate::settings::ConnectionConfig;

const MAX_OPEN: usize = 64;
const IDLE_LIMIT: Duration = Duration::from_secs(600);

type Driver = Arc<dyn Database>;

struct Entry {
    key: String,
    database: Arc<dyn Database>,
    last_used: Instant,
}

#[derive(Default)]
pub struct Registry {
    entries: Mutex<HashMap<String, Entry>>,
}

/// Returns the process-wide registry.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

impl Registry {
    /// Returns the open driver of connection `id` at version `key`, opening it with `config`
    /// when there is none.
    pub async fn get(
        &self,
        id: &str,
        key: &str,
        config: impl FnOnce() -> Result<ConnectionConfig, ConnectorError>,
        policy: &ConnectorSettings,
    ) -> Result<Arc<dyn Database>, ConnectorError> {
        let stale = self.take_stale(id, key);
        close_all(stale);
        if let Some(database) = self.lookup(id, key) {
            return Ok(database);
        }

        let opened = crate::open(config()?, policy).await?;
        let (database, unused) = self.insert(id, key, opened)?;
        close_all(unused);
        Ok(database)
    }

    /// Stores a newly opened driver and returns the one to use with the drivers to close: the
    /// least recently used when the registry is full, and the new one when a concurrent
    /// request stored the same driver first.
    fn insert(&self, id: &str, key: &str, opened: Arc<dyn Database>) -> Result<(Driver, Vec<Driver>), ConnectorError> {
        let mut entries = self.entries.lock().map_err(|_| poisoned())?;
        if let Some(existing) = entries.get(id).filter(|entry| entry.key == key) {
            return Ok((existing.database.clone(), vec![opened]));
        }
        let mut unused = Vec::new();
        if entries.len() >= MAX_OPEN
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(id, _)| id.clone())
            && let Some(entry) = entries.remove(&oldest)
        {
            unused.push(entry.database);
        }
        entries.insert(
            id.to_owned(),
            Entry {
                key: key.to_owned(),
                database: opened.clone(),
                last_used: Instant::now(),
            },
        );
        Ok((opened, unused))
    }

    fn lookup(&self, id: &str, key: &str) -> Option<Arc<dyn Database>> {
        let mut entries = self.entries.lock().ok()?;
        let entry = entries.get_mut(id).filter(|entry| entry.key == key)?;
        entry.last_used = Instant::now();
        Some(entry.database.clone())
    }

    /// Removes the driver of `id` if it is at another version, and drivers idle too long.
    fn take_stale(&self, id: &str, key: &str) -> Vec<Arc<dyn Database>> {
        let Ok(mut entries) = self.entries.lock() else {
            return Vec::new();
        };
        let now = Instant::now();
        let stale: Vec<String> = entries
            .iter()
            .filter(|(entry_id, entry)| {
                (entry_id.as_str() == id && entry.key != key) || now - entry.last_used > IDLE_LIMIT
            })
            .map(|(entry_id, _)| entry_id.clone())
            .collect();
        stale
            .iter()
            .filter_map(|entry_id| entries.remove(entry_id))
            .map(|entry| entry.database)
            .collect()
    }

    /// Closes the driver of a deleted or changed connection.
    pub fn evict(&self, id: &str) {
        let removed = self.entries.lock().ok().and_then(|mut entries| entries.remove(id));
        close_all(removed.map(|entry| entry.database).into_iter().collect());
    }
}

fn poisoned() -> ConnectorError {
    ConnectorError::internal(anyhow::anyhow!("driver registry lock poisoned"))
}

fn close_all(databases: Vec<Arc<dyn Database>>) {
    for database in databases {
        tokio::spawn(async move { database.close().await });
    }
}
