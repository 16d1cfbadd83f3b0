//! PostgreSQL through sqlx.
//!
//! Statements run one at a time (split like psql does). Without parameters they use the
//! simple query protocol, whose text results are parsed losslessly per type (see
//! [`decode`]); with parameters they use the extended protocol, whose binary results are
//! decoded per type too. Each execution sets `statement_timeout`, so the server stops a slow
//! query, and records the backend's pid, so a truncated result, a client that goes away or a
//! missed deadline cancels the query on the server with `pg_cancel_backend`. Connections go
//! back to the pool only after `DISCARD ALL` (and a `ROLLBACK` first when a transaction is
//! still open), so no session setting leaks to the next execution.

mod decode;
mod schema;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use mako_core::config::ConnectorSettings;
use sqlx::postgres::{PgColumn, PgConnectOptions, PgPool, PgRow, PgSslMode, PgValueFormat};
use sqlx::{Column as _, Connection, Either, Executor, Row, Statement as _, ValueRef};

use crate::error::{ConnectorError, tidy_message};
use crate::execute::{Caps, CopyColumn, ExecuteRequest, RowSink, SetWriter};
use crate::params::ParamValue;
use crate::pools::{self, Pools};
use crate::settings::{ServerConfig, TlsMode};
use crate::sql::guard::{check_read_only, split_statements};
use crate::sql::split::{Dialect, Statement};
use crate::value::{Cell, Column};
use crate::{ColumnInfo, Database, TableInfo, TestReport};

pub struct Postgres {
    options: PgConnectOptions,
    default_database: Option<String>,
    connect_timeout: Duration,
    /// Connections per database and pool.
    pool_size: u32,
    pools: Pools<sqlx::Postgres>,
    /// Names of types sqlx left unresolved, by database and OID (see `type_names`).
    type_names: Mutex<HashMap<(String, u32), String>>,
    target: String,
}

fn ssl_mode(tls: TlsMode) -> PgSslMode {
    match tls {
        TlsMode::Disable => PgSslMode::Disable,
        TlsMode::Prefer => PgSslMode::Prefer,
        TlsMode::Require => PgSslMode::Require,
        TlsMode::VerifyCa => PgSslMode::VerifyCa,
        TlsMode::VerifyFull => PgSslMode::VerifyFull,
    }
}

impl Postgres {
    /// Checks the host against the address guard and prepares the pools; connections open on
    /// first use.
    pub async fn open(config: ServerConfig, policy: &ConnectorSettings) -> Result<Postgres, ConnectorError> {
        let addresses = crate::guard::check_host(&config.host, config.port, policy, policy.connect_timeout).await?;
        // Full verification checks the certificate against the name, so it connects by name;
        // every other mode connects to the address that was checked.
        let host = match config.tls {
            TlsMode::VerifyFull => config.host.clone(),
            _ => addresses[0].ip().to_string(),
        };

        let mut options = PgConnectOptions::new_without_pgpass()
            .host(&host)
            .port(config.port)
            .username(&config.username)
            .ssl_mode(ssl_mode(config.tls))
            .statement_cache_capacity(0)
            .application_name("mako")
            .options([
                ("DateStyle", "ISO, YMD"),
                ("TimeZone", "UTC"),
                ("IntervalStyle", "iso_8601"),
                ("extra_float_digits", "3"),
                ("bytea_output", "hex"),
            ]);
        if let Some(password) = &config.password {
            options = options.password(password.expose());
        }

        Ok(Postgres {
            options,
            default_database: config.database.clone(),
            connect_timeout: policy.connect_timeout,
            pool_size: policy.pool_size,
            pools: Pools::new(),
            type_names: Mutex::new(HashMap::new()),
            target: format!("{}:{}", config.host, config.port),
        })
    }

    /// Returns the pool of `database` (the connection's default when `None`).
    fn pool(&self, database: Option<&str>) -> Result<PgPool, ConnectorError> {
        let name = database.or(self.default_database.as_deref()).unwrap_or_default();
        self.pools.get(name, || {
            pools::options(self.pool_size, self.connect_timeout)
                .after_release(|connection, _| Box::pin(async move { reset(connection).await }))
                .connect_lazy_with(self.options_for(Some(name)))
        })
    }

    /// Returns the options of a connection to `database` (the connection's default when
    /// `None`), for pools and for one-off connections that cancel queries.
    fn options_for(&self, database: Option<&str>) -> PgConnectOptions {
        match database.or(self.default_database.as_deref()) {
            Some(name) if !name.is_empty() => self.options.clone().database(name),
            _ => self.options.clone(),
        }
    }

    async fn acquire(
        &self,
        database: Option<&str>,
        deadline: Instant,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, ConnectorError> {
        let pool = self.pool(database)?;
        pools::acquire(&pool, deadline, self.connect_timeout, &self.target, |error| {
            map_error(error, &self.target, database.or(self.default_database.as_deref()))
        })
        .await
    }
}

/// Resets the session before the pool reuses the connection, ending any transaction the
/// query left open. Failure closes the connection instead.
async fn reset(connection: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
    // Usually no transaction is open, so one round trip is enough. `DISCARD ALL` fails inside
    // a transaction, which is then rolled back first.
    if connection.execute(sqlx::raw_sql("DISCARD ALL")).await.is_err() {
        connection.execute(sqlx::raw_sql("ROLLBACK")).await?;
        connection.execute(sqlx::raw_sql("DISCARD ALL")).await?;
    }
    Ok(true)
}

/// Maps a sqlx error to plain words.
fn map_error(error: sqlx::Error, target: &str, database: Option<&str>) -> ConnectorError {
    match error {
        sqlx::Error::Database(database_error) => {
            let code = database_error.code().map(|code| code.into_owned());
            let message = database_error.message().to_owned();
            match code.as_deref() {
                Some("28P01") => ConnectorError::AuthenticationFailed,
                Some("28000") if message.contains("SSL off") || message.contains("no encryption") => {
                    ConnectorError::TlsRequired
                }
                Some("28000") => ConnectorError::AuthenticationFailed,
                Some("3D000") => ConnectorError::UnknownDatabase {
                    name: database.unwrap_or_default().to_owned(),
                },
                Some("25006") => ConnectorError::ReadOnly {
                    reason: "this connection or your role only allows reading",
                    statement: tidy_message(&message),
                },
                _ => ConnectorError::QueryFailed {
                    message: tidy_message(&message),
                    code,
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
        sqlx::Error::Protocol(message) if message.contains("SSL") || message.contains("TLS") => {
            ConnectorError::TlsFailed {
                reason: tidy_message(&message),
            }
        }
        // Another kind of server on the port (MySQL, HTTP) replies with bytes PostgreSQL's
        // protocol does not allow.
        sqlx::Error::Protocol(message) => {
            tracing::warn!(target, error = %message, "PostgreSQL protocol error");
            ConnectorError::Unreachable {
                target: target.to_owned(),
                reason: "the server did not answer as PostgreSQL does (is the port right?)".into(),
            }
        }
        other => ConnectorError::internal(other),
    }
}

/// Translates an I/O failure of a connection. TLS failures (an untrusted certificate, a
/// failed handshake) arrive as I/O errors carrying the TLS library's error.
pub(crate) fn io_error(error: &std::io::Error, target: &str) -> ConnectorError {
    let text = error.to_string();
    let tls = error.kind() == std::io::ErrorKind::InvalidData
        && ["certificate", "handshake", "tls", "TLS"]
            .iter()
            .any(|word| text.contains(word));
    if tls {
        ConnectorError::TlsFailed {
            reason: tidy_message(&text),
        }
    } else {
        ConnectorError::Unreachable {
            target: target.to_owned(),
            reason: io_reason(error),
        }
    }
}

/// Describes an I/O failure of a connection attempt in plain words.
fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            "the connection was refused (is the database running and the port right?)".into()
        }
        std::io::ErrorKind::TimedOut => "connecting timed out".into(),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof => {
            "the server closed the connection".into()
        }
        _ => tidy_message(&error.to_string()),
    }
}

/// Cancels the running query of backend `pid` unless disarmed, also when dropped mid-query
/// (the client went away), so the query does not keep running on the server.
struct Canceller {
    options: PgConnectOptions,
    pid: i32,
    armed: bool,
}

impl Canceller {
    async fn cancel(&mut self) {
        if self.armed {
            self.armed = false;
            cancel_backend(self.options.clone(), self.pid).await;
        }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Canceller {
    fn drop(&mut self) {
        if self.armed {
            let options = self.options.clone();
            let pid = self.pid;
            tokio::spawn(async move { cancel_backend(options, pid).await });
        }
    }
}

async fn cancel_backend(options: PgConnectOptions, pid: i32) {
    let outcome = async {
        let mut control = sqlx::PgConnection::connect_with(&options).await?;
        let cancelled: bool = sqlx::query_scalar("SELECT pg_cancel_backend($1)")
            .bind(pid)
            .fetch_one(&mut control)
            .await?;
        let _ = control.close().await;
        Ok::<bool, sqlx::Error>(cancelled)
    }
    .await;
    match outcome {
        Ok(cancelled) => tracing::debug!(pid, cancelled, "cancelled a PostgreSQL query"),
        Err(error) => tracing::warn!(pid, error = %error, "failed to cancel a PostgreSQL query"),
    }
}

impl Postgres {
    /// Returns the names of the types `oids` (as `format_type` writes them), from a cache or
    /// looked up on another pooled connection, since the statement's own one is busy. A type
    /// whose name cannot be learned is left out.
    async fn type_names(&self, database: Option<&str>, oids: &[u32]) -> HashMap<u32, String> {
        let mut names = HashMap::new();
        if oids.is_empty() {
            return names;
        }
        let key = database
            .or(self.default_database.as_deref())
            .unwrap_or_default()
            .to_owned();
        let missing: Vec<i64> = match self.type_names.lock() {
            Ok(cache) => oids
                .iter()
                .filter(|oid| match cache.get(&(key.clone(), **oid)) {
                    Some(name) => {
                        names.insert(**oid, name.clone());
                        false
                    }
                    None => true,
                })
                .map(|oid| i64::from(*oid))
                .collect(),
            Err(_) => oids.iter().map(|oid| i64::from(*oid)).collect(),
        };
        if missing.is_empty() {
            return names;
        }

        let lookup = async {
            let pool = self.pool(database).map_err(|error| anyhow::anyhow!("{error}"))?;
            let mut connection = pool.acquire().await?;
            let rows: Vec<(i64, String)> =
                sqlx::query_as("SELECT oid::int8, format_type(oid, NULL) FROM pg_type WHERE oid::int8 = ANY($1)")
                    .bind(&missing)
                    .fetch_all(&mut *connection)
                    .await?;
            Ok::<_, anyhow::Error>(rows)
        };
        match tokio::time::timeout(Duration::from_secs(2), lookup).await {
            Ok(Ok(rows)) => {
                let mut cache = self.type_names.lock().ok();
                for (oid, name) in rows {
                    let Ok(oid) = u32::try_from(oid) else { continue };
                    if let Some(cache) = cache.as_mut() {
                        cache.insert((key.clone(), oid), name.clone());
                    }
                    names.insert(oid, name);
                }
            }
            Ok(Err(error)) => tracing::warn!(error = %error, "failed to look up PostgreSQL type names"),
            Err(_) => tracing::warn!("looking up PostgreSQL type names timed out"),
        }
        names
    }

    /// Returns the declared types of the `numeric` columns of `row` that come straight from
    /// a table, such as `numeric(12,2)`, by column index. The row description carries only
    /// the type, so the precision and scale are read from the catalog on another pooled
    /// connection. A column whose type cannot be learned is left out.
    async fn declared_numerics(&self, database: Option<&str>, columns: &[PgColumn]) -> HashMap<usize, String> {
        let mut wanted: Vec<(usize, i64, i64)> = Vec::new();
        for (index, column) in columns.iter().enumerate() {
            let numeric = column.type_info().oid().map(|oid| oid.0) == Some(decode::NUMERIC_OID);
            if let (true, Some(relation), Some(attribute)) =
                (numeric, column.relation_id(), column.relation_attribute_no())
            {
                wanted.push((index, i64::from(relation.0), i64::from(attribute)));
            }
        }
        let mut declared = HashMap::new();
        if wanted.is_empty() {
            return declared;
        }
        let relations: Vec<i64> = wanted.iter().map(|(_, relation, _)| *relation).collect();
        let attributes: Vec<i64> = wanted.iter().map(|(_, _, attribute)| *attribute).collect();
        let lookup = async {
            let pool = self.pool(database).map_err(|error| anyhow::anyhow!("{error}"))?;
            let mut connection = pool.acquire().await?;
            let rows: Vec<(i64, i64, String)> = sqlx::query_as(
                "SELECT a.attrelid::int8, a.attnum::int8, format_type(a.atttypid, a.atttypmod) \
                 FROM pg_attribute a JOIN unnest($1::int8[], $2::int8[]) AS w(rel, num) \
                 ON a.attrelid::int8 = w.rel AND a.attnum::int8 = w.num",
            )
            .bind(&relations)
            .bind(&attributes)
            .fetch_all(&mut *connection)
            .await?;
            Ok::<_, anyhow::Error>(rows)
        };
        match tokio::time::timeout(Duration::from_secs(2), lookup).await {
            Ok(Ok(rows)) => {
                for (relation, attribute, name) in rows {
                    for (index, _, _) in wanted.iter().filter(|(_, r, a)| *r == relation && *a == attribute) {
                        declared.insert(*index, name.clone());
                    }
                }
            }
            Ok(Err(error)) => tracing::warn!(error = %error, "failed to look up PostgreSQL numeric types"),
            Err(_) => tracing::warn!("looking up PostgreSQL numeric types timed out"),
        }
        declared
    }

    async fn run(
        &self,
        request: &ExecuteRequest,
        statements: &[Statement<'_>],
        sink: &mut dyn RowSink,
        caps: &mut Caps,
    ) -> Result<(), ConnectorError> {
        let database = request.database.as_deref();
        let mut connection = self.acquire(database, caps.deadline).await?;

        // One round trip opens the read-only transaction, sets the time limit and learns the
        // backend's pid.
        let timeout_ms = caps.remaining().as_millis().max(1);
        let begin = if request.read_only { "BEGIN READ ONLY; " } else { "" };
        let setup = format!("{begin}SET statement_timeout = {timeout_ms}; SELECT pg_backend_pid()");
        let rows = connection
            .fetch_all(sqlx::raw_sql(sqlx::AssertSqlSafe(setup)))
            .await
            .map_err(|error| map_error(error, &self.target, database))?;
        let pid: i32 = rows
            .first()
            .and_then(|row| row.try_get::<i32, _>(0).ok())
            .ok_or_else(|| ConnectorError::internal(anyhow::anyhow!("pg_backend_pid returned no row")))?;
        let mut canceller = Canceller {
            options: self.options_for(database),
            pid,
            armed: true,
        };

        let remaining = caps.remaining();
        let work = async {
            for statement in statements {
                self.run_statement(
                    &mut connection,
                    database,
                    statement,
                    &request.params,
                    caps,
                    &mut canceller,
                    sink,
                )
                .await?;
            }
            Ok::<(), ConnectorError>(())
        };
        match tokio::time::timeout(remaining, work).await {
            Ok(result) => {
                if let Err(error) = result {
                    // A statement the server failed has stopped. Any other error (the sink
                    // refusing more rows, a client gone) leaves it running, so cancel it.
                    if matches!(error, ConnectorError::QueryFailed { .. }) {
                        canceller.disarm();
                    } else {
                        canceller.cancel().await;
                    }
                    return Err(match error {
                        ConnectorError::QueryFailed { code: Some(code), .. } if code == "57014" => {
                            ConnectorError::Timeout {
                                timeout: request.timeout,
                            }
                        }
                        other => other,
                    });
                }
            }
            Err(_) => {
                canceller.cancel().await;
                return Err(ConnectorError::Timeout {
                    timeout: request.timeout,
                });
            }
        }
        canceller.disarm();

        if request.read_only {
            connection
                .execute(sqlx::raw_sql("ROLLBACK"))
                .await
                .map_err(|error| map_error(error, &self.target, database))?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments, reason = "the state of one execution, passed down")]
    async fn run_statement(
        &self,
        connection: &mut sqlx::PgConnection,
        database: Option<&str>,
        statement: &Statement<'_>,
        params: &[ParamValue],
        caps: &mut Caps,
        canceller: &mut Canceller,
        sink: &mut dyn RowSink,
    ) -> Result<(), ConnectorError> {
        if params.is_empty()
            && matches!(
                statement.keyword.as_deref(),
                Some("SELECT" | "WITH" | "VALUES" | "TABLE")
            )
            && sink.copy_sink().is_some()
            && self
                .copy_binary(connection, database, statement, canceller, sink)
                .await?
        {
            return Ok(());
        }
        let mut writer = SetWriter::new(statement.text);
        let mut type_names: Option<HashMap<u32, String>> = None;
        let mut numerics: HashMap<usize, String> = HashMap::new();
        let no_names = HashMap::new();
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
                    // The cancel sent when the cap was reached ends the statement with 57014.
                    Err(sqlx::Error::Database(error))
                        if writer.is_truncated() && error.code().as_deref() == Some("57014") =>
                    {
                        break;
                    }
                    Err(error) => return Err(map_error(error, &self.target, None)),
                };
                match item {
                    Either::Left(result) => {
                        affected = Some(affected.unwrap_or(0) + result.rows_affected());
                    }
                    Either::Right(row) => {
                        if writer.is_truncated() {
                            continue;
                        }
                        if type_names.is_none() {
                            type_names = Some(self.type_names(database, &unresolved_oids(&row)).await);
                            numerics = self.declared_numerics(database, row.columns()).await;
                        }
                        let names = type_names.as_ref().unwrap_or(&no_names);
                        let columns = || {
                            let mut columns = columns_of(&row, names);
                            for (index, declared) in &numerics {
                                if let Some(column) = columns.get_mut(*index) {
                                    column.native_type = declared.clone();
                                }
                            }
                            columns
                        };
                        if !writer.row(sink, caps, columns, decode_row(&row))? {
                            // The cap is reached: stop the server from producing the rest,
                            // then read what is already on its way.
                            canceller.cancel().await;
                        }
                    }
                }
            }
        }
        if writer.is_truncated() {
            // The cancel ended this statement; a later statement needs a fresh canceller.
            canceller.armed = true;
        }

        if writer.is_begun() {
            return writer.end(sink, None);
        }
        if returns_rows(statement) {
            let columns = self.describe(connection, statement.text).await.unwrap_or_default();
            writer.begin(sink, columns)?;
            writer.end(sink, None)
        } else {
            writer.end(sink, affected)
        }
    }

    /// Streams one statement as a binary `COPY` into the sink's [`CopySink`]. Returns false,
    /// having sent nothing, when the sink declines the statement's column types.
    async fn copy_binary(
        &self,
        connection: &mut sqlx::PgConnection,
        database: Option<&str>,
        statement: &Statement<'_>,
        canceller: &mut Canceller,
        sink: &mut dyn RowSink,
    ) -> Result<bool, ConnectorError> {
        let prepared = connection
            .prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(
                statement.text.to_owned(),
            )))
            .await
            .map_err(|error| map_error(error, &self.target, None))?;
        let described: Vec<PgColumn> = prepared.columns().to_vec();
        let numerics = self.declared_numerics(database, &described).await;
        let columns: Vec<CopyColumn> = described
            .iter()
            .enumerate()
            .map(|(index, column)| {
                let mut described = decode::column(column.name(), column.type_info(), &HashMap::new());
                if let Some(declared) = numerics.get(&index) {
                    described.native_type = declared.clone();
                }
                CopyColumn {
                    column: described,
                    type_oid: column.type_info().oid().map_or(0, |oid| oid.0),
                }
            })
            .collect();
        let Some(copy) = sink.copy_sink() else {
            return Ok(false);
        };
        if columns.is_empty() || !copy.begin_copy(&columns)? {
            return Ok(false);
        }
        // The newline keeps a trailing `--` comment of the statement from hiding the `)`.
        let text = format!("COPY (\n{}\n) TO STDOUT (FORMAT binary)", statement.text);
        let mut truncated = false;
        {
            let mut stream = connection
                .copy_out_raw(&text)
                .await
                .map_err(|error| map_error(error, &self.target, None))?;
            loop {
                match stream.try_next().await {
                    Ok(Some(data)) => {
                        if !truncated && !copy.copy_data(&data)? {
                            truncated = true;
                            canceller.cancel().await;
                        }
                    }
                    Ok(None) => break,
                    Err(sqlx::Error::Database(error)) if truncated && error.code().as_deref() == Some("57014") => {
                        break;
                    }
                    Err(error) => return Err(map_error(error, &self.target, None)),
                }
            }
        }
        if truncated {
            canceller.armed = true;
        }
        tracing::debug!(truncated, "streamed a query as binary COPY");
        copy.end_copy(truncated)?;
        Ok(true)
    }

    /// Reads the columns of a statement that returned no rows.
    async fn describe(&self, connection: &mut sqlx::PgConnection, text: &str) -> Result<Vec<Column>, ConnectorError> {
        let prepared = connection
            .prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(text.to_owned())))
            .await
            .map_err(|error| map_error(error, &self.target, None))?;
        Ok(prepared
            .columns()
            .iter()
            .map(|column| decode::column(column.name(), column.type_info(), &HashMap::new()))
            .collect())
    }
}

/// Whether a statement that produced no rows still has result columns to report.
fn returns_rows(statement: &Statement<'_>) -> bool {
    let keyword = statement.keyword.as_deref().unwrap_or("");
    matches!(
        keyword,
        "SELECT" | "WITH" | "VALUES" | "TABLE" | "SHOW" | "EXPLAIN" | "FETCH"
    ) || statement.text.to_ascii_uppercase().contains("RETURNING")
}

fn columns_of(row: &PgRow, names: &HashMap<u32, String>) -> Vec<Column> {
    row.columns()
        .iter()
        .map(|column| decode::column(column.name(), column.type_info(), names))
        .collect()
}

/// OIDs of the columns whose types sqlx left unresolved.
fn unresolved_oids(row: &PgRow) -> Vec<u32> {
    row.columns()
        .iter()
        .map(|column| column.type_info())
        .filter(|type_info| decode::is_unresolved(type_info))
        .filter_map(|type_info| type_info.oid().map(|oid| oid.0))
        .collect()
}

fn decode_row(row: &PgRow) -> Vec<Cell> {
    (0..row.columns().len())
        .map(|index| {
            let Ok(value) = row.try_get_raw(index) else {
                return Cell::NULL;
            };
            if value.is_null() {
                return Cell::NULL;
            }
            let type_info = value.type_info().into_owned();
            match value.format() {
                PgValueFormat::Text => match value.as_str() {
                    Ok(text) => decode::text_cell(&type_info, text),
                    Err(_) => Cell::NULL,
                },
                PgValueFormat::Binary => match value.as_bytes() {
                    Ok(bytes) => decode::binary_cell(&type_info, bytes),
                    Err(_) => Cell::NULL,
                },
            }
        })
        .collect()
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds one parameter. Dates, timestamps and decimals travel as text that the compiled
/// query casts (`$1::date`), and NULL is written as a literal, so no value needs a Rust type
/// the database might not expect.
fn bind<'q>(query: PgQuery<'q>, param: &ParamValue) -> PgQuery<'q> {
    match param {
        ParamValue::Null | ParamValue::List(_) => query.bind(Option::<String>::None),
        ParamValue::Bool(value) => query.bind(*value),
        ParamValue::Int(value) => query.bind(*value),
        ParamValue::Float(value) => query.bind(*value),
        ParamValue::Decimal(text) | ParamValue::Text(text) => query.bind(text.clone()),
        ParamValue::Date(date) => query.bind(date.format("%Y-%m-%d").to_string()),
        ParamValue::Timestamp(timestamp) => query.bind(timestamp.format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
        ParamValue::TimestampTz(instant) => query.bind(instant.to_rfc3339()),
    }
}

#[async_trait::async_trait]
impl Database for Postgres {
    async fn test(&self) -> Result<TestReport, ConnectorError> {
        let started = Instant::now();
        let mut connection = sqlx::PgConnection::connect_with(&self.options_for(None))
            .await
            .map_err(|error| map_error(error, &self.target, self.default_database.as_deref()))?;
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut connection)
            .await
            .map_err(|error| map_error(error, &self.target, None))?;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let _ = connection.close().await;
        Ok(TestReport {
            latency_ms,
            server_version: format!("PostgreSQL {version}"),
        })
    }

    async fn execute_into(&self, request: ExecuteRequest, sink: &mut dyn RowSink) -> Result<u64, ConnectorError> {
        let started = Instant::now();
        let statements = split_statements(&request.query, Dialect::Postgres)?;
        if !request.params.is_empty() && statements.len() > 1 {
            return Err(ConnectorError::InvalidQuery {
                message: "Parameters work with a single statement; run the statements one at a time.".into(),
            });
        }
        if request.read_only {
            for statement in &statements {
                check_read_only(statement, Dialect::Postgres)?;
            }
        }

        let mut caps = Caps::new(&request);
        self.run(&request, &statements, sink, &mut caps).await?;
        Ok(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    async fn databases(&self) -> Result<Vec<String>, ConnectorError> {
        schema::databases(self).await
    }

    async fn tables(&self, database: Option<&str>, schema: Option<&str>) -> Result<Vec<TableInfo>, ConnectorError> {
        schema::tables(self, database, schema).await
    }

    async fn columns(
        &self,
        database: Option<&str>,
        schema: Option<&str>,
        table: &str,
    ) -> Result<Vec<ColumnInfo>, ConnectorError> {
        schema::columns(self, database, schema, table).await
    }

    async fn close(&self) {
        self.pools.close().await;
    }
}

impl Postgres {
    /// Runs a catalog query on `database` and returns its rows.
    pub(crate) async fn catalog(
        &self,
        database: Option<&str>,
        sql: &'static str,
        binds: &[&str],
    ) -> Result<Vec<PgRow>, ConnectorError> {
        let deadline = Instant::now() + self.connect_timeout + Duration::from_secs(30);
        let mut connection = self.acquire(database, deadline).await?;
        let mut query = sqlx::query(sql);
        for value in binds {
            query = query.bind(value.to_string());
        }
        query
            .fetch_all(&mut *connection)
            .await
            .map_err(|error| map_error(error, &self.target, database))
    }
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres").field("target", &self.target).finish()
    }
}
