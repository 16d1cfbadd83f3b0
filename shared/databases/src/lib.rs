//! Connections to users' databases: PostgreSQL, MySQL and MariaDB, SQLite and MongoDB.
//!
//! Each driver implements [`Database`]: test the connection, execute query text with row,
//! size and time limits, and browse the schema. [`open`] builds a driver from a
//! [`ConnectionConfig`] after the address guard has checked where it points.

pub mod error;
pub mod execute;
pub mod export;
pub mod guard;
mod memory;
pub mod mongo;
pub mod mysql;
pub mod params;
mod pools;
pub mod postgres;
pub mod registry;
pub mod response;
pub mod run;
pub mod sample;
pub mod service;
pub mod settings;
pub mod sql;
pub mod sqlite;
pub mod value;

use serde::Serialize;

pub use error::ConnectorError;
pub use execute::{Collect, CopyColumn, CopySink, ExecuteOutput, ExecuteRequest, ResultSet, RowSink};
pub use settings::{ConnectionConfig, ConnectionKind};
pub use value::PortableType;

/// Outcome of a successful connection test.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestReport {
    pub latency_ms: u64,
    pub server_version: String,
}

/// A table, view or collection.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TableInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub name: String,
    /// `table`, `view`, `materialized view`, `foreign table` or `collection`.
    pub kind: String,
}

/// A column of a table, or a field observed in a collection's documents.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ColumnInfo {
    pub name: String,
    pub native_type: String,
    #[serde(rename = "type")]
    pub portable: PortableType,
    /// Whether the column accepts NULL; unknown for MongoDB fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nullable: Option<bool>,
    /// 1-based position.
    pub position: u32,
}

/// Connects a driver for `config`, after the address guard has checked its hosts.
pub async fn open(
    config: ConnectionConfig,
    policy: &mako_core::config::ConnectorSettings,
) -> Result<std::sync::Arc<dyn Database>, ConnectorError> {
    Ok(match config {
        ConnectionConfig::Postgres(server) => std::sync::Arc::new(postgres::Postgres::open(server, policy).await?),
        ConnectionConfig::Mysql(server) => std::sync::Arc::new(mysql::MySql::open(server, policy).await?),
        ConnectionConfig::Sqlite { path } => std::sync::Arc::new(sqlite::Sqlite::open(path)),
        ConnectionConfig::Mongodb(mongo) => std::sync::Arc::new(mongo::driver::Mongo::open(mongo, policy).await?),
    })
}

/// A connected database.
#[async_trait::async_trait]
pub trait Database: Send + Sync {
    /// Opens a fresh connection, runs a trivial query and reports the latency and version.
    async fn test(&self) -> Result<TestReport, ConnectorError>;

    /// Runs query text within the request's limits, handing results to `sink` as they are
    /// read. Returns the elapsed time in milliseconds.
    async fn execute_into(&self, request: ExecuteRequest, sink: &mut dyn RowSink) -> Result<u64, ConnectorError>;

    /// Runs query text within the request's limits and keeps every result set.
    async fn execute(&self, request: ExecuteRequest) -> Result<ExecuteOutput, ConnectorError> {
        let mut collect = Collect::default();
        let elapsed_ms = self.execute_into(request, &mut collect).await?;
        Ok(ExecuteOutput {
            result_sets: collect.sets,
            elapsed_ms,
        })
    }

    /// Lists the databases the user can connect to.
    async fn databases(&self) -> Result<Vec<String>, ConnectorError>;

    /// Lists tables and views (collections for MongoDB), optionally in one schema.
    async fn tables(&self, database: Option<&str>, schema: Option<&str>) -> Result<Vec<TableInfo>, ConnectorError>;

    /// Lists a table's columns (a collection's fields, sampled).
    async fn columns(
        &self,
        database: Option<&str>,
        schema: Option<&str>,
        table: &str,
    ) -> Result<Vec<ColumnInfo>, ConnectorError>;

    /// Closes pooled connections.
    async fn close(&self);
}
