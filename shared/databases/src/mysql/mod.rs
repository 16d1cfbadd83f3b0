//! MySQL and MariaDB through sqlx.
//!
//! Statements run one at a time. Without parameters they use the text protocol, with
//! parameters the binary one; both are decoded per type (see [`decode`]). Each execution
//! sets the server's statement time limit (`max_execution_time` on MySQL,
//! `max_statement_time` on MariaDB) and records the connection id, so a truncated result, a
//! client that goes away or a missed deadline stops the query with `KILL QUERY`.
//!
//! MySQL cannot reset a session without the `COM_RESET_CONNECTION` command, which sqlx does
//! not send, so a connection goes back to the pool only when every statement it ran is one
//! that leaves no session state (plain reads and row writes without user variables or
//! locks); otherwise it is closed.
//!
//! NOTE: the check reads the statements' text, so a stored function that sets a user
//! variable or takes a lock leaves that state on a pooled connection. The time limit and
//! time zone are set again for every execution.

mod decode;
mod schema;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use mako_core::config::ConnectorSettings;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlRow, MySqlSslMode};
use sqlx::{Column as _, Connection, Either, Executor, Row, ValueRef};

use crate::error::{ConnectorError, tidy_message};
use crate::execute::{Caps, ExecuteRequest, RowSink, SetWriter};
use crate::params::ParamValue;
use crate::pools::{self, Pools};
use crate::postgres::io_error;
use crate::settings::{ServerConfig, TlsMode};
use crate::sql::guard::{check_read_only, split_statements};
use crate::sql::split::{Dialect, Statement};
use crate::value::{Cell, Column};
use crate::{ColumnInfo, Database, TableInfo, TestReport};

/// Server flavour, learned on the first execution: it decides the time-limit variable.
const FLAVOUR_UNKNOWN: u8 = 0;
const FLAVOUR_MYSQL: u8 = 1;
const FLAVOUR_MARIADB: u8 = 2;

pub struct MySql {
    options: MySqlConnectOptions,
    default_database: Option<String>,
    connect_timeout: Duration,
    /// Connections per database and pool.
    pool_size: u32,
    pools: Pools<sqlx::MySql>,
    target: String,
    flavour: Arc<AtomicU8>,
}

fn ssl_mode(tls: TlsMode) -> MySqlSslMode {
    match tls {
        TlsMode::Disable => MySqlSslMode::Disabled,
        TlsMode::Prefer => MySqlSslMode::Preferred,
        TlsMode::Require => MySqlSslMode::Required,
        TlsMode::VerifyCa => MySqlSslMode::VerifyCa,
        TlsMode::VerifyFull => MySqlSslMode::VerifyIdentity,
    }
}

impl MySql {
    pub async fn open(config: ServerConfig, policy: &ConnectorSettings) -> Result<MySql, ConnectorError> {
        let addresses = crate::guard::check_host(&config.host, config.port, policy, policy.connect_timeout).await?;
        // The checked address is dialled; the name still goes to TLS for certificate checks.
        let mut options = MySqlConnectOptions::new()
            .host(&addresses[0].ip().to_string())
            .tls_sni_servername(&config.host)
            .port(config.port)
            .username(&config.username)
            .ssl_mode(ssl_mode(config.tls))
            .statement_cache_capacity(0)
            .charset("utf8mb4")
            // Keep the server's own SQL mode: sqlx would otherwise add PIPES_AS_CONCAT, which
            // changes what `||` means in people's queries.
            .pipes_as_concat(false)
            .no_engine_substitution(false)
            .timezone(Some("+00:00".to_owned()));
        if let Some(password) = &config.password {
            options = options.password(password.expose());
        }
        Ok(MySql {
            options,
            default_database: config.database.clone(),
            connect_timeout: policy.connect_timeout,
            pool_size: policy.pool_size,
            pools: Pools::new(),
            target: format!("{}:{}", config.host, config.port),
            flavour: Arc::new(AtomicU8::new(FLAVOUR_UNKNOWN)),
        })
    }

    fn options_for(&self, database: Option<&str>) -> MySqlConnectOptions {
        match database.or(self.default_database.as_deref()) {
            Some(name) if !name.is_empty() => self.options.clone().database(name),
            _ => self.options.clone(),
        }
    }

    /// Returns the pool of `database` (the connection's default when `None`).
    fn pool(&self, database: Option<&str>) -> Result<MySqlPool, ConnectorError> {
        let name = database.or(self.default_database.as_deref()).unwrap_or_default();
        self.pools.get(name, || {
            let flavour = self.flavour.clone();
            pools::options::<sqlx::MySql>(self.pool_size, self.connect_timeout)
                .after_release(move |connection, _| {
                    // End any transaction and lift the execution's time limit before reuse.
                    let reset = match flavour.load(Ordering::Relaxed) {
                        FLAVOUR_MARIADB => "ROLLBACK; SET SESSION max_statement_time = 0",
                        FLAVOUR_MYSQL => "ROLLBACK; SET SESSION max_execution_time = 0",
                        _ => "ROLLBACK",
                    };
                    Box::pin(async move {
                        connection.execute(sqlx::raw_sql(reset)).await?;
                        Ok(true)
                    })
                })
                .connect_lazy_with(self.options_for(Some(name)))
        })
    }

    async fn acquire(
        &self,
        database: Option<&str>,
        deadline: Instant,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::MySql>, ConnectorError> {
        let pool = self.pool(database)?;
        pools::acquire(&pool, deadline, self.connect_timeout, &self.target, |error| {
            map_error(error, &self.target, database.or(self.default_database.as_deref()))
        })
        .await
    }

    /// Learns whether the server is MariaDB (once per driver).
    async fn flavour(&self, connection: &mut sqlx::MySqlConnection) -> Result<u8, ConnectorError> {
        let known = self.flavour.load(Ordering::Relaxed);
        if known != FLAVOUR_UNKNOWN {
            return Ok(known);
        }
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&mut *connection)
            .await
            .map_err(|error| map_error(error, &self.target, None))?;
        let flavour = if version.contains("MariaDB") {
            FLAVOUR_MARIADB
        } else {
            FLAVOUR_MYSQL
        };
        self.flavour.store(flavour, Ordering::Relaxed);
        Ok(flavour)
    }
}

/// Maps a sqlx error to plain words, by MySQL error number.
fn map_error(error: sqlx::Error, target: &str, database: Option<&str>) -> ConnectorError {
    match error {
        sqlx::Error::Database(database_error) => {
            let message = database_error.message().to_owned();
            let number = database_error
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|error| error.number());
            match number {
                Some(1045 | 1044) => ConnectorError::AuthenticationFailed,
                Some(1049) => ConnectorError::UnknownDatabase {
                    name: database.unwrap_or_default().to_owned(),
                },
                Some(3159) => ConnectorError::TlsRequired,
                Some(1792) => ConnectorError::ReadOnly {
                    reason: "this connection or your role only allows reading",
                    statement: tidy_message(&message),
                },
                _ => ConnectorError::QueryFailed {
                    message: tidy_message(&message),
                    code: number.map(|number| number.to_string()),
                },
            }
        }
        sqlx::Error::Io(io) => io_error(&io, target),
        sqlx::Error::Tls(tls) => ConnectorError::TlsFailed {
            reason: tidy_message(&tls.to_string()),
        },
        sqlx::Error::PoolTimedOut => ConnectorError::Unreachable {
            target: target.to_owned(),
            reason: "connecting timed out".into(),
        },
        other => ConnectorError::internal(other),
    }
}

/// MySQL and MariaDB error numbers of a query stopped by a time limit or `KILL QUERY`.
fn is_interrupted(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database_error) => matches!(
            database_error
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|error| error.number()),
            Some(1317 | 3024 | 1969)
        ),
        _ => false,
    }
}

/// Stops the running query of connection `id` unless disarmed, also when dropped mid-query.
struct Killer {
    options: MySqlConnectOptions,
    id: u64,
    armed: bool,
}

impl Killer {
    async fn kill(&mut self) {
        if self.armed {
            self.armed = false;
            kill_query(self.options.clone(), self.id).await;
        }
    }
}

impl Drop for Killer {
    fn drop(&mut self) {
        if self.armed {
            let options = self.options.clone();
            let id = self.id;
            tokio::spawn(async move { kill_query(options, id).await });
        }
    }
}

async fn kill_query(options: MySqlConnectOptions, id: u64) {
    let outcome = async {
        let mut control = sqlx::MySqlConnection::connect_with(&options).await?;
        control
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL QUERY {id}"))))
            .await?;
        let _ = control.close().await;
        Ok::<(), sqlx::Error>(())
    }
    .await;
    match outcome {
        Ok(()) => tracing::debug!(connection_id = id, "stopped a MySQL query"),
        // The query may already have finished, which the server reports as an unknown thread.
        Err(error) => tracing::debug!(connection_id = id, error = %error, "KILL QUERY failed"),
    }
}

/// Whether a statement can leave state in the session (variables, locks, temporary tables,
/// settings, prepared statements), which decides whether its connection may be reused.
fn leaves_session_state(statement: &Statement<'_>) -> bool {
    let keyword = statement.keyword.as_deref().unwrap_or("");
    let plain = matches!(
        keyword,
        "SELECT"
            | "WITH"
            | "VALUES"
            | "TABLE"
            | "SHOW"
            | "EXPLAIN"
            | "DESCRIBE"
            | "DESC"
            | "INSERT"
            | "UPDATE"
            | "DELETE"
            | "REPLACE"
    );
    let upper = statement.text.to_ascii_uppercase();
    !plain || statement.text.contains('@') || upper.contains("LOCK") || upper.contains("TEMPORARY")
}

type MySqlQuery<'q> = sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>;

fn bind<'q>(query: MySqlQuery<'q>, param: &ParamValue) -> MySqlQuery<'q> {
    match param {
        ParamValue::Null | ParamValue::List(_) => query.bind(Option::<String>::None),
        ParamValue::Bool(value) => query.bind(*value),
        ParamValue::Int(value) => query.bind(*value),
        ParamValue::Float(value) => query.bind(*value),
        ParamValue::Decimal(text) | ParamValue::Text(text) => query.bind(text.clone()),
        ParamValue::Date(date) => query.bind(date.format("%Y-%m-%d").to_string()),
        ParamValue::Timestamp(timestamp) => query.bind(timestamp.format("%Y-%m-%d %H:%M:%S%.f").to_string()),
        // The session runs in UTC, so the instant is written as a UTC wall-clock time.
        ParamValue::TimestampTz(instant) => query.bind(instant.format("%Y-%m-%d %H:%M:%S%.f").to_string()),
    }
}

impl MySql {
    async fn run(
        &self,
        request: &ExecuteRequest,
        statements: &[Statement<'_>],
        sink: &mut dyn RowSink,
        caps: &mut Caps,
    ) -> Result<(), ConnectorError> {
        let database = request.database.as_deref();
        let mut connection = self.acquire(database, caps.deadline).await?;
        let flavour = self.flavour(&mut connection).await?;

        // Our own timer stops the query at the deadline with KILL QUERY and reports the
        // timeout. The server's limit is a backstop a second later, because some functions
        // it interrupts (MariaDB's BENCHMARK) return a value instead of an error. The time
        // zone is set again too, since a stored function can change it for the session, and
        // TIMESTAMP values are read as UTC.
        let limit_ms = caps.remaining().as_millis().max(1) + 1000;
        let limit = if flavour == FLAVOUR_MARIADB {
            format!(
                "SET SESSION max_statement_time = {:.3}, time_zone = '+00:00'",
                limit_ms as f64 / 1000.0
            )
        } else {
            format!("SET SESSION max_execution_time = {limit_ms}, time_zone = '+00:00'")
        };
        connection
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(limit)))
            .await
            .map_err(|error| map_error(error, &self.target, database))?;
        let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
            .fetch_one(&mut *connection)
            .await
            .map_err(|error| map_error(error, &self.target, database))?;
        let mut killer = Killer {
            options: self.options_for(database),
            id,
            armed: true,
        };

        if request.read_only {
            connection
                .execute(sqlx::raw_sql("START TRANSACTION READ ONLY"))
                .await
                .map_err(|error| map_error(error, &self.target, database))?;
        }

        let remaining = caps.remaining();
        let work = async {
            for statement in statements {
                run_statement(
                    &mut connection,
                    statement,
                    &request.params,
                    caps,
                    &mut *sink,
                    &mut killer,
                    &self.target,
                )
                .await?;
            }
            Ok::<(), ConnectorError>(())
        };
        let outcome = tokio::time::timeout(remaining, work).await;
        let reusable = !statements.iter().any(leaves_session_state);
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                // A statement the server failed has stopped. Any other error (the sink
                // refusing more rows, a client gone) leaves it running, so stop it.
                if matches!(
                    error,
                    ConnectorError::QueryFailed { .. } | ConnectorError::Timeout { .. }
                ) {
                    killer.armed = false;
                } else {
                    killer.kill().await;
                }
                if !reusable {
                    let _ = connection.detach().close().await;
                }
                return Err(match error {
                    ConnectorError::Timeout { .. } => ConnectorError::Timeout {
                        timeout: request.timeout,
                    },
                    other => other,
                });
            }
            Err(_) => {
                killer.kill().await;
                return Err(ConnectorError::Timeout {
                    timeout: request.timeout,
                });
            }
        }
        killer.armed = false;

        if request.read_only {
            connection
                .execute(sqlx::raw_sql("ROLLBACK"))
                .await
                .map_err(|error| map_error(error, &self.target, database))?;
        }
        if !reusable {
            let _ = connection.detach().close().await;
        }
        Ok(())
    }
}

async fn run_statement(
    connection: &mut sqlx::MySqlConnection,
    statement: &Statement<'_>,
    params: &[ParamValue],
    caps: &mut Caps,
    sink: &mut dyn RowSink,
    killer: &mut Killer,
    target: &str,
) -> Result<(), ConnectorError> {
    let mut writer = SetWriter::new(statement.text);
    let mut affected: Option<u64> = None;

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
                Err(error) if writer.is_truncated() && is_interrupted(&error) => break,
                Err(error) if is_interrupted(&error) => {
                    return Err(ConnectorError::Timeout {
                        timeout: caps.deadline.saturating_duration_since(Instant::now()),
                    });
                }
                Err(error) => return Err(map_error(error, target, None)),
            };
            match item {
                Either::Left(result) => {
                    affected = Some(affected.unwrap_or(0) + result.rows_affected());
                }
                Either::Right(row) => {
                    if writer.is_truncated() {
                        continue;
                    }
                    if !writer.row(sink, caps, || columns_of(&row), decode_row(&row, !params.is_empty()))? {
                        killer.kill().await;
                    }
                }
            }
        }
    }
    if writer.is_truncated() {
        killer.armed = true;
    }

    if writer.is_begun() {
        return writer.end(sink, None);
    }
    let keyword = statement.keyword.as_deref().unwrap_or("");
    if !matches!(
        keyword,
        "SELECT" | "WITH" | "VALUES" | "TABLE" | "SHOW" | "EXPLAIN" | "DESCRIBE" | "DESC"
    ) {
        return writer.end(sink, affected);
    }
    // An empty result names its columns through a prepared statement's metadata.
    let mut columns = Vec::new();
    if let Ok(prepared) = connection
        .prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(
            statement.text.to_owned(),
        )))
        .await
    {
        use sqlx::Statement as _;
        columns = prepared
            .columns()
            .iter()
            .map(|column| decode::column(column.name(), column.type_info()))
            .collect();
    }
    writer.begin(sink, columns)?;
    writer.end(sink, None)
}

fn columns_of(row: &MySqlRow) -> Vec<Column> {
    row.columns()
        .iter()
        .map(|column| decode::column(column.name(), column.type_info()))
        .collect()
}

/// Decodes a row. `binary` is true for rows of the binary protocol (a prepared statement,
/// used with parameters) and false for the text protocol.
fn decode_row(row: &MySqlRow, binary: bool) -> Vec<Cell> {
    let columns = row.columns();
    (0..columns.len())
        .map(|index| {
            let Ok(value) = row.try_get_raw(index) else {
                return Cell::NULL;
            };
            if value.is_null() {
                return Cell::NULL;
            }
            let type_info = columns[index].type_info();
            // Decoding as bytes reads the raw value whatever its type.
            match <&[u8] as sqlx::Decode<'_, sqlx::MySql>>::decode(value) {
                Ok(bytes) if binary => decode::binary_cell(type_info, bytes),
                Ok(bytes) => decode::text_cell(type_info, bytes),
                Err(_) => Cell::NULL,
            }
        })
        .collect()
}

#[async_trait::async_trait]
impl Database for MySql {
    async fn test(&self) -> Result<TestReport, ConnectorError> {
        let started = Instant::now();
        let mut connection = sqlx::MySqlConnection::connect_with(&self.options_for(None))
            .await
            .map_err(|error| map_error(error, &self.target, self.default_database.as_deref()))?;
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&mut connection)
            .await
            .map_err(|error| map_error(error, &self.target, None))?;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let _ = connection.close().await;
        let product = if version.contains("MariaDB") {
            "MariaDB"
        } else {
            "MySQL"
        };
        Ok(TestReport {
            latency_ms,
            server_version: format!("{product} {version}"),
        })
    }

    async fn execute_into(&self, request: ExecuteRequest, sink: &mut dyn RowSink) -> Result<u64, ConnectorError> {
        let started = Instant::now();
        let statements = split_statements(&request.query, Dialect::MySql)?;
        for statement in &statements {
            // The server runs the inside of `/*! … */` as SQL, which could hide a second
            // statement from the splitter and the read-only check.
            if statement.text.contains("/*!") || statement.text.contains("/*M!") {
                return Err(ConnectorError::InvalidQuery {
                    message: "MySQL executable comments (/*! … */) are not supported; remove them from the query."
                        .into(),
                });
            }
            if request.read_only {
                check_read_only(statement, Dialect::MySql)?;
            }
        }
        if !request.params.is_empty() && statements.len() > 1 {
            return Err(ConnectorError::InvalidQuery {
                message: "Parameters work with a single statement; run the statements one at a time.".into(),
            });
        }

        let mut caps = Caps::new(&request);
        self.run(&request, &statements, sink, &mut caps).await?;
        Ok(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    async fn databases(&self) -> Result<Vec<String>, ConnectorError> {
        schema::databases(self).await
    }

    async fn tables(&self, database: Option<&str>, schema: Option<&str>) -> Result<Vec<TableInfo>, ConnectorError> {
        schema::tables(self, database.or(schema)).await
    }

    async fn columns(
        &self,
        database: Option<&str>,
        schema: Option<&str>,
        table: &str,
    ) -> Result<Vec<ColumnInfo>, ConnectorError> {
        schema::columns(self, database.or(schema), table).await
    }

    async fn close(&self) {
        self.pools.close().await;
    }
}

impl MySql {
    /// Runs a catalog query and returns its rows.
    pub(crate) async fn catalog(&self, sql: &'static str, binds: &[&str]) -> Result<Vec<MySqlRow>, ConnectorError> {
        let deadline = Instant::now() + self.connect_timeout + Duration::from_secs(30);
        let mut connection = self.acquire(None, deadline).await?;
        let mut query = sqlx::query(sql);
        for value in binds {
            query = query.bind(value.to_string());
        }
        query
            .fetch_all(&mut *connection)
            .await
            .map_err(|error| map_error(error, &self.target, None))
    }

    pub(crate) fn default_database(&self) -> Option<&str> {
        self.default_database.as_deref()
    }
}
