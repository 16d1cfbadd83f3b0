//! Background jobs: Parquet materialization of dashboard data sources, the worker that runs
//! them from the `Queue` port, and the scheduler tick that queues scheduled runs.

pub mod build;
pub mod parquet;
pub mod queue;
pub mod schedule;
pub mod scheduler;
pub mod worker;

use mako_core::repo::dashboards::DataSource;
use sha2::{Digest, Sha256};

/// Hash of what decides a data source's artifact (connection, query, parameters, limit).
pub fn definition_hash(source: &DataSource) -> String {
    hex::encode(Sha256::digest(source.definition().to_string().as_bytes()))
}
