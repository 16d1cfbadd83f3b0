//! SQLite files in the configured folder, through sqlx (local server only).
//!
//! Every execution opens its own connection, so nothing a query changes in its session
//! (pragmas, temporary tables) reaches the next one. Read-only executions open the file
//! read-only, so the engine refuses every write. A progress handler checks the deadline and
//! a stop flag, so a slow query, a truncated result or a client that goes away interrupts
//! the statement inside SQLite.
//!
//! SQLite's types are per value: a column's declared type gives its portable type, and each
//! value is encoded by its storage class (64-bit integers as strings, as everywhere).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{Column as _, Connection, Either, Executor, Row, TypeInfo, ValueRef};

use crate::error::{ConnectorError, tidy_message};
use crate::execute::{Caps, ExecuteRequest, RowSink, SetWriter};
use crate::params::ParamValue;
use crate::sql::guard::{check_allowed, check_read_only, split_statements};
use crate::sql::split::{Dialect, Statement};
use crate::value::{Cell, Column, PortableType, iso_local_timestamp};
use crate::{ColumnInfo, Database, TableInfo, TestReport};

/// SQLite virtual-machine steps between progress checks.
const PROGRESS_STEPS: i32 = 10_000;

pub struct Sqlite {
    path: PathBuf,
}

impl Sqlite {
    pub fn open(path: PathBuf) -> Sqlite {
        Sqlite { path }
    }

    async fn connect(&self, read_only: bool) -> Result<sqlx::SqliteConnection, ConnectorError> {
        if !self.path.is_file() {
            return Err(ConnectorError::Unreachable {
                target: display_name(&self.path),
                reason: "the file does not exist".into(),
            });
        }
        let options = SqliteConnectOptions::new()
            .filename(&self.path)
            .create_if_missing(false)
            .read_only(read_only)
            .busy_timeout(Duration::from_secs(5))
            .statement_cache_capacity(0);
        sqlx::SqliteConnection::connect_with(&options)
            .await
            .map_err(|error| map_error(error, &self.path))
    }
}

/// Names a database file in messages by its file name, so errors do not reveal where the
/// server keeps its files.
fn display_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || "the SQLite file".to_owned(),
        |name| name.to_string_lossy().into_owned(),
    )
}

fn map_error(error: sqlx::Error, path: &std::path::Path) -> ConnectorError {
    match error {
        sqlx::Error::Database(database_error) => {
            let message = database_error.message().to_owned();
            if message.contains("interrupted") {
                return ConnectorError::Timeout {
                    timeout: Duration::ZERO,
                };
            }
            if message.contains("readonly") || message.contains("read-only") {
                return ConnectorError::ReadOnly {
                    reason: "this connection or your role only allows reading",
                    statement: tidy_message(&message),
                };
            }
            ConnectorError::QueryFailed {
                message: tidy_message(&message),
                code: database_error.code().map(|code| code.into_owned()),
            }
        }
        sqlx::Error::Io(io) => ConnectorError::Unreachable {
            target: display_name(path),
            reason: tidy_message(&io.to_string()),
        },
        other => ConnectorError::internal(other),
    }
}

/// Portable type of a declared column type, by SQLite's affinity rules (section 3.1 of
/// "Datatypes In SQLite"), with dates and booleans recognized by name.
fn declared_portable(declared: &str) -> PortableType {
    let upper = declared.to_ascii_uppercase();
    if upper.is_empty() || upper == "NULL" {
        PortableType::Mixed
    } else if upper.contains("BOOL") {
        PortableType::Boolean
    } else if upper.contains("INT") {
        PortableType::Int64
    } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
        PortableType::String
    } else if upper.contains("BLOB") {
        PortableType::Binary
    } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
        PortableType::Float64
    } else if upper == "DATE" {
        PortableType::Date
    } else if upper.contains("DATETIME") || upper.contains("TIMESTAMP") {
        PortableType::Timestamp
    } else if upper == "TIME" {
        PortableType::Time
    } else if upper.contains("JSON") {
        PortableType::Json
    } else {
        // NUMERIC affinity: whole numbers are stored as integers, others as reals.
        PortableType::Decimal
    }
}

fn column(name: &str, type_info: &sqlx::sqlite::SqliteTypeInfo) -> Column {
    let declared = type_info.name();
    Column::new(name, declared_portable(declared), declared)
}

/// Portable type of a storage class, for expression columns, which have no declared type.
fn storage_portable(storage: &str) -> PortableType {
    match storage {
        "INTEGER" => PortableType::Int64,
        "REAL" => PortableType::Float64,
        "TEXT" => PortableType::String,
        "BLOB" => PortableType::Binary,
        _ => PortableType::Mixed,
    }
}

/// Describes a statement's result columns with their declared types. sqlx recognizes only
/// a few type names, so the declared type of a column read straight from a table comes from
/// the table's own definition (`PRAGMA table_xinfo`). Expression columns are `mixed` until
/// the first row shows their storage class.
async fn describe(connection: &mut sqlx::SqliteConnection, text: &str) -> Option<Vec<Column>> {
    use sqlx::ColumnOrigin;
    use sqlx::Statement as _;

    let prepared = connection
        .prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(text.to_owned())))
        .await
        .ok()?;
    let origins: Vec<(String, Option<(String, String)>)> = prepared
        .columns()
        .iter()
        .map(|column| {
            let origin = match column.origin() {
                ColumnOrigin::Table(table) => Some((table.table.to_string(), table.name.to_string())),
                _ => None,
            };
            (column.name().to_owned(), origin)
        })
        .collect();

    let mut declared_types: std::collections::HashMap<String, std::collections::HashMap<String, String>> =
        std::collections::HashMap::new();
    let mut columns = Vec::with_capacity(origins.len());
    for (name, origin) in origins {
        let declared = match origin {
            Some((table, column_name)) => {
                if !declared_types.contains_key(&table) {
                    let rows: Vec<(String, String)> = sqlx::query_as("SELECT name, type FROM pragma_table_xinfo(?)")
                        .bind(&table)
                        .fetch_all(&mut *connection)
                        .await
                        .unwrap_or_default();
                    declared_types.insert(table.clone(), rows.into_iter().collect());
                }
                declared_types
                    .get(&table)
                    .and_then(|types| types.get(&column_name))
                    .cloned()
            }
            None => None,
        };
        columns.push(match declared {
            Some(declared) if !declared.is_empty() => Column::new(name, declared_portable(&declared), declared),
            _ => Column::new(name, PortableType::Mixed, ""),
        });
    }
    Some(columns)
}

/// Encodes a value by its storage class, shaped by the column's portable type.
fn cell(portable: PortableType, value: sqlx::sqlite::SqliteValueRef<'_>) -> Cell {
    let storage = value.type_info().name().to_owned();
    match storage.as_str() {
        "INTEGER" => {
            let integer = <i64 as sqlx::Decode<'_, sqlx::Sqlite>>::decode(value).unwrap_or_default();
            match portable {
                PortableType::Boolean if integer == 0 || integer == 1 => Cell::bool(integer == 1),
                PortableType::Float64 => Cell::float(integer as f64),
                _ => Cell::big_int(integer),
            }
        }
        "REAL" => {
            let real = <f64 as sqlx::Decode<'_, sqlx::Sqlite>>::decode(value).unwrap_or(f64::NAN);
            match portable {
                // Shortest text that reads back as the same double.
                PortableType::Decimal => Cell::text(real.to_string()),
                _ => Cell::float(real),
            }
        }
        "BLOB" => Cell::binary(<&[u8] as sqlx::Decode<'_, sqlx::Sqlite>>::decode(value).unwrap_or_default()),
        _ => {
            let text = <&str as sqlx::Decode<'_, sqlx::Sqlite>>::decode(value).unwrap_or_default();
            match portable {
                PortableType::Timestamp => Cell::text(iso_local_timestamp(text)),
                PortableType::Json => Cell::json_text(text),
                _ => Cell::text(text),
            }
        }
    }
}

fn decode_row(row: &SqliteRow, columns: &[Column]) -> Vec<Cell> {
    columns
        .iter()
        .enumerate()
        .map(|(index, column)| match row.try_get_raw(index) {
            Ok(value) if !value.is_null() => cell(column.portable, value),
            _ => Cell::NULL,
        })
        .collect()
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

fn bind<'q>(query: SqliteQuery<'q>, param: &ParamValue) -> SqliteQuery<'q> {
    match param {
        ParamValue::Null | ParamValue::List(_) => query.bind(Option::<String>::None),
        ParamValue::Bool(value) => query.bind(i64::from(*value)),
        ParamValue::Int(value) => query.bind(*value),
        ParamValue::Float(value) => query.bind(*value),
        ParamValue::Decimal(text) | ParamValue::Text(text) => query.bind(text.clone()),
        ParamValue::Date(date) => query.bind(date.format("%Y-%m-%d").to_string()),
        ParamValue::Timestamp(timestamp) => query.bind(timestamp.format("%Y-%m-%d %H:%M:%S%.f").to_string()),
        ParamValue::TimestampTz(instant) => query.bind(instant.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string()),
    }
}

/// Sets the stop flag when dropped, so a request that goes away interrupts its statement.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Sqlite {
    async fn run_statement(
        &self,
        connection: &mut sqlx::SqliteConnection,
        statement: &Statement<'_>,
        params: &[ParamValue],
        caps: &mut Caps,
        sink: &mut dyn RowSink,
        stop: &AtomicBool,
    ) -> Result<(), ConnectorError> {
        let mut writer = SetWriter::new(statement.text);
        let mut affected = None;
        let returns_rows = matches!(
            statement.keyword.as_deref(),
            Some("SELECT" | "WITH" | "VALUES" | "PRAGMA" | "EXPLAIN")
        );
        let mut columns: Option<Vec<Column>> = if returns_rows {
            describe(connection, statement.text).await
        } else {
            None
        };
        let mut first_row = true;

        {
            let mut stream = if params.is_empty() {
                connection.fetch_many(sqlx::raw_sql(sqlx::AssertSqlSafe(statement.text.to_owned())))
            } else {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.text.to_owned()));
                for param in params {
                    query = bind(query, param);
                }
                connection.fetch_many(query)
            };
            loop {
                let item = match stream.try_next().await {
                    Ok(Some(item)) => item,
                    Ok(None) => break,
                    // The progress handler interrupted the statement because the cap was reached.
                    Err(_) if writer.is_truncated() => break,
                    Err(error) => return Err(map_error(error, &self.path)),
                };
                match item {
                    Either::Left(result) => affected = Some(affected.unwrap_or(0) + result.rows_affected()),
                    Either::Right(row) => {
                        if writer.is_truncated() {
                            continue;
                        }
                        let columns = columns.get_or_insert_with(|| {
                            row.columns().iter().map(|c| column(c.name(), c.type_info())).collect()
                        });
                        if first_row {
                            // Expression columns take the type of their first value.
                            for (index, column) in columns.iter_mut().enumerate() {
                                if column.portable == PortableType::Mixed
                                    && let Ok(value) = row.try_get_raw(index)
                                    && !value.is_null()
                                {
                                    column.portable = storage_portable(value.type_info().name());
                                }
                            }
                            first_row = false;
                        }
                        let cells = decode_row(&row, columns);
                        if !writer.row(sink, caps, || columns.clone(), cells)? {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        stop.store(false, Ordering::Relaxed);

        match columns {
            Some(columns) => {
                writer.begin(sink, columns)?;
                writer.end(sink, None)
            }
            None => writer.end(sink, affected),
        }
    }
}

#[async_trait::async_trait]
impl Database for Sqlite {
    async fn test(&self) -> Result<TestReport, ConnectorError> {
        let started = Instant::now();
        let mut connection = self.connect(true).await?;
        let version: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&mut connection)
            .await
            .map_err(|error| map_error(error, &self.path))?;
        let _ = connection.close().await;
        Ok(TestReport {
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            server_version: format!("SQLite {version}"),
        })
    }

    async fn execute_into(&self, request: ExecuteRequest, sink: &mut dyn RowSink) -> Result<u64, ConnectorError> {
        let started = Instant::now();
        let statements = split_statements(&request.query, Dialect::Sqlite)?;
        for statement in &statements {
            check_allowed(statement, Dialect::Sqlite)?;
            if request.read_only {
                check_read_only(statement, Dialect::Sqlite)?;
            }
        }
        if !request.params.is_empty() && statements.len() > 1 {
            return Err(ConnectorError::InvalidQuery {
                message: "Parameters work with a single statement; run the statements one at a time.".into(),
            });
        }

        let mut caps = Caps::new(&request);
        let mut connection = self.connect(request.read_only).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_on_drop = StopOnDrop(stop.clone());
        let deadline = caps.deadline;
        {
            let stop = stop.clone();
            let mut handle = connection
                .lock_handle()
                .await
                .map_err(|error| map_error(error, &self.path))?;
            handle.set_progress_handler(PROGRESS_STEPS, move || {
                !stop.load(Ordering::Relaxed) && Instant::now() < deadline
            });
        }

        for statement in &statements {
            match self
                .run_statement(
                    &mut connection,
                    statement,
                    &request.params,
                    &mut caps,
                    &mut *sink,
                    &stop,
                )
                .await
            {
                Ok(()) => {}
                Err(ConnectorError::Timeout { .. }) => {
                    return Err(ConnectorError::Timeout {
                        timeout: request.timeout,
                    });
                }
                Err(error) => return Err(error),
            }
        }
        let _ = connection.close().await;
        Ok(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    async fn databases(&self) -> Result<Vec<String>, ConnectorError> {
        Ok(vec!["main".to_owned()])
    }

    async fn tables(&self, _database: Option<&str>, _schema: Option<&str>) -> Result<Vec<TableInfo>, ConnectorError> {
        let mut connection = self.connect(true).await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(&mut connection)
        .await
        .map_err(|error| map_error(error, &self.path))?;
        Ok(rows
            .into_iter()
            .map(|(name, kind)| TableInfo {
                schema: None,
                name,
                kind,
            })
            .collect())
    }

    async fn columns(
        &self,
        _database: Option<&str>,
        _schema: Option<&str>,
        table: &str,
    ) -> Result<Vec<ColumnInfo>, ConnectorError> {
        let mut connection = self.connect(true).await?;
        let rows: Vec<(i64, String, String, i64, i64)> =
            sqlx::query_as("SELECT cid, name, type, \"notnull\", pk FROM pragma_table_info(?)")
                .bind(table)
                .fetch_all(&mut connection)
                .await
                .map_err(|error| map_error(error, &self.path))?;
        if rows.is_empty() {
            return Err(ConnectorError::QueryFailed {
                message: format!("The table {table:?} does not exist."),
                code: None,
            });
        }
        // A lone `INTEGER PRIMARY KEY` column is the rowid, which is never null, though
        // SQLite does not report it as `NOT NULL`.
        let key_columns = rows.iter().filter(|row| row.4 > 0).count();
        Ok(rows
            .into_iter()
            .map(|(cid, name, declared, not_null, key)| ColumnInfo {
                portable: declared_portable(&declared),
                nullable: Some(
                    not_null == 0 && !(key > 0 && key_columns == 1 && declared.eq_ignore_ascii_case("INTEGER")),
                ),
                name,
                native_type: declared,
                position: u32::try_from(cid + 1).unwrap_or(0),
            })
            .collect())
    }

    async fn close(&self) {}
}
