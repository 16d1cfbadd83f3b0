//! MongoDB through the official driver.
//!
//! Query text is parsed by [`super::shell`] into a typed command (nothing is evaluated as
//! JavaScript) and run with the driver's own calls. Every operation carries `maxTimeMS`, so
//! the server stops it at the deadline. Documents become rows whose columns are the union of
//! the documents' keys, in order of first appearance; see [`super::values`] for the cells.

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use mako_core::config::{ConnectorSettings, Deployment};
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::{ClientOptions, ServerAddress};
use mongodb::{Client, Collection};

use super::shell::{MongoCommand, MongoOperation, UpdateSpec, parse, parse_with_params};
use super::values::{Table, column_for};
use crate::error::{ConnectorError, tidy_message};
use crate::execute::{Caps, ExecuteRequest, RowSink, SetEnd, SetWriter};
use crate::params::ParamValue;
use crate::settings::{MongoConfig, TlsMode};
use crate::value::{Cell, Column, PortableType};
use crate::{ColumnInfo, Database, TableInfo, TestReport};

/// Documents sampled to describe a collection's fields.
const SAMPLE_DOCUMENTS: i64 = 100;

pub struct Mongo {
    client: Client,
    default_database: Option<String>,
    target: String,
}

impl Mongo {
    /// Parses the connection string (resolving SRV records), checks every host against the
    /// address guard, and builds the client. Without TLS, hosts are replaced by the checked
    /// addresses and a single host is connected to directly, so neither a DNS change nor a
    /// replica set's advertised members can redirect the driver.
    pub async fn open(config: MongoConfig, policy: &ConnectorSettings) -> Result<Mongo, ConnectorError> {
        let mut options = tokio::time::timeout(policy.connect_timeout, ClientOptions::parse(config.uri.expose()))
            .await
            .map_err(|_| ConnectorError::Unreachable {
                target: target_of(&config),
                reason: "resolving the connection string timed out".into(),
            })?
            .map_err(|error| ConnectorError::invalid("connectionString", tidy_message(&error.to_string())))?;

        let encrypted = config.tls != TlsMode::Disable && config.tls != TlsMode::Prefer;
        let mut checked_hosts = Vec::with_capacity(options.hosts.len());
        for host in &options.hosts {
            let ServerAddress::Tcp { host: name, port } = host else {
                return Err(ConnectorError::invalid(
                    "connectionString",
                    "Unix socket hosts are not supported.",
                ));
            };
            let port = port.unwrap_or(27017);
            let addresses = crate::guard::check_host(name, port, policy, policy.connect_timeout).await?;
            checked_hosts.push(if encrypted {
                host.clone()
            } else {
                ServerAddress::Tcp {
                    host: addresses[0].ip().to_string(),
                    port: Some(port),
                }
            });
        }
        if !encrypted {
            if checked_hosts.len() == 1 {
                options.direct_connection = Some(true);
            } else if policy.deployment == Deployment::Cloud {
                // NOTE: members a replica set advertises are dialled by the driver without the
                // address guard; over TLS their certificates must match, without TLS not.
                tracing::debug!(
                    hosts = checked_hosts.len(),
                    "replica set without TLS: advertised members are not re-checked"
                );
            }
            options.hosts = checked_hosts;
        }
        options.app_name = Some("mako".into());
        options.connect_timeout = Some(policy.connect_timeout);
        options.server_selection_timeout = Some(policy.connect_timeout);
        options.max_pool_size = Some(10);

        let client = Client::with_options(options).map_err(|error| map_error(error, &target_of(&config)))?;
        Ok(Mongo {
            client,
            default_database: config.database.clone(),
            target: target_of(&config),
        })
    }

    fn database_name<'a>(&'a self, requested: Option<&'a str>) -> Result<&'a str, ConnectorError> {
        requested
            .or(self.default_database.as_deref())
            .filter(|name| !name.is_empty())
            .ok_or_else(|| ConnectorError::InvalidQuery {
                message: "No database is selected; pass database in the request or set one on the connection.".into(),
            })
    }
}

fn target_of(config: &MongoConfig) -> String {
    config
        .hosts
        .iter()
        .map(|(host, port)| format!("{host}:{port}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Extracts why no server could be selected from the driver's message, which describes
/// the whole topology (`… Servers: [ { Address: h:1, …, Error: Kind: I/O error: Connection
/// refused (os error 111), labels: … } ] }`), and rewrites it in plain words.
fn selection_reason(message: &str) -> String {
    let cause = message.find("Error: ").map(|start| {
        let rest = &message[start + "Error: ".len()..];
        let rest = rest.strip_prefix("Kind: ").unwrap_or(rest);
        let end = [", labels", ", source", " }"]
            .iter()
            .filter_map(|marker| rest.find(marker))
            .min()
            .unwrap_or(rest.len());
        &rest[..end]
    });
    match cause {
        Some(cause) if cause.contains("Connection refused") => {
            "the connection was refused (is the database running and the port right?)".into()
        }
        Some(cause) if cause.contains("timed out") => "connecting timed out".into(),
        Some(cause) => format!("no server answered: {}", tidy_message(cause)),
        None => "no server of the deployment answered in time".into(),
    }
}

fn map_error(error: mongodb::error::Error, target: &str) -> ConnectorError {
    use mongodb::error::ErrorKind;
    match error.kind.as_ref() {
        ErrorKind::Authentication { .. } => ConnectorError::AuthenticationFailed,
        ErrorKind::ServerSelection { message, .. } => ConnectorError::Unreachable {
            target: target.to_owned(),
            reason: selection_reason(message),
        },
        ErrorKind::Io(io) => ConnectorError::Unreachable {
            target: target.to_owned(),
            reason: tidy_message(&io.to_string()),
        },
        ErrorKind::Command(command) if command.code == 50 => ConnectorError::Timeout {
            timeout: Duration::ZERO,
        },
        ErrorKind::Command(command) if command.code == 18 || command.code == 13 => ConnectorError::AuthenticationFailed,
        ErrorKind::Command(command) => ConnectorError::QueryFailed {
            message: tidy_message(&command.message),
            code: Some(command.code.to_string()),
        },
        ErrorKind::Write(_) | ErrorKind::InsertMany(_) | ErrorKind::BulkWrite(_) => ConnectorError::QueryFailed {
            message: tidy_message(&error.to_string()),
            code: None,
        },
        ErrorKind::InvalidArgument { message, .. } => ConnectorError::InvalidQuery {
            message: tidy_message(message),
        },
        _ => ConnectorError::QueryFailed {
            message: tidy_message(&error.to_string()),
            code: None,
        },
    }
}

/// What a command produced, before it is written to the sink.
enum Outcome {
    Documents(Table),
    Count(u64),
    Affected(u64),
}

impl Outcome {
    fn write(self, statement: &str, sink: &mut dyn RowSink) -> Result<(), ConnectorError> {
        match self {
            Outcome::Documents(table) => table.finish(statement, sink),
            Outcome::Count(count) => {
                let mut writer = SetWriter::new(statement);
                writer.begin(sink, vec![Column::new("count", PortableType::Int64, "long")])?;
                sink.row(vec![Cell::big_int(count)])?;
                sink.end(SetEnd {
                    row_count: 1,
                    truncated: false,
                    affected_rows: None,
                })
            }
            Outcome::Affected(count) => SetWriter::new(statement).end(sink, Some(count)),
        }
    }
}

impl Mongo {
    async fn run(
        &self,
        command: MongoCommand,
        request: &ExecuteRequest,
        caps: &mut Caps,
    ) -> Result<Outcome, ConnectorError> {
        let database = self.client.database(self.database_name(request.database.as_deref())?);
        let max_time = caps.remaining().max(Duration::from_millis(1));

        let Some(collection_name) = command.collection.clone() else {
            let names = database
                .list_collection_names()
                .await
                .map_err(|error| map_error(error, &self.target))?;
            let mut table = Table::default();
            for name in names {
                table.push(doc! { "name": name }, caps);
            }
            return Ok(Outcome::Documents(table));
        };
        let collection: Collection<Document> = database.collection(&collection_name);

        match command.operation {
            MongoOperation::Find {
                filter,
                projection,
                sort,
                skip,
                limit,
            } => {
                let cap = i64::try_from(request.max_rows.saturating_add(1)).unwrap_or(i64::MAX);
                let limit = match limit {
                    Some(limit) if limit != 0 => i64::try_from(limit.unsigned_abs()).unwrap_or(i64::MAX).min(cap),
                    _ => cap,
                };
                let mut action = collection.find(filter).max_time(max_time).limit(limit);
                if let Some(projection) = projection {
                    action = action.projection(projection);
                }
                if let Some(sort) = sort {
                    action = action.sort(sort);
                }
                if let Some(skip) = skip {
                    action = action.skip(skip);
                }
                let cursor = action.await.map_err(|error| map_error(error, &self.target))?;
                self.collect(cursor, caps).await
            }
            MongoOperation::FindOne {
                filter,
                projection,
                sort,
                skip,
            } => {
                let mut action = collection.find(filter).max_time(max_time).limit(1);
                if let Some(projection) = projection {
                    action = action.projection(projection);
                }
                if let Some(sort) = sort {
                    action = action.sort(sort);
                }
                if let Some(skip) = skip {
                    action = action.skip(skip);
                }
                let cursor = action.await.map_err(|error| map_error(error, &self.target))?;
                self.collect(cursor, caps).await
            }
            MongoOperation::Aggregate { pipeline, options } => {
                let mut action = collection.aggregate(pipeline).max_time(max_time);
                if let Some(options) = options
                    && let Ok(true) = options.get_bool("allowDiskUse")
                {
                    action = action.allow_disk_use(true);
                }
                let cursor = action.await.map_err(|error| map_error(error, &self.target))?;
                self.collect(cursor, caps).await
            }
            MongoOperation::CountDocuments { filter, skip, limit } => {
                let mut action = collection.count_documents(filter).max_time(max_time);
                if let Some(skip) = skip {
                    action = action.skip(skip);
                }
                if let Some(limit) = limit {
                    action = action.limit(limit);
                }
                let count = action.await.map_err(|error| map_error(error, &self.target))?;
                Ok(Outcome::Count(count))
            }
            MongoOperation::EstimatedDocumentCount => {
                let count = collection
                    .estimated_document_count()
                    .max_time(max_time)
                    .await
                    .map_err(|error| map_error(error, &self.target))?;
                Ok(Outcome::Count(count))
            }
            MongoOperation::Distinct { field, filter } => {
                let values = collection
                    .distinct(&field, filter)
                    .max_time(max_time)
                    .await
                    .map_err(|error| map_error(error, &self.target))?;
                let mut table = Table::default();
                for value in values {
                    let mut row = Document::new();
                    row.insert(field.clone(), value);
                    if !table.push(row, caps) {
                        break;
                    }
                }
                Ok(Outcome::Documents(table))
            }
            MongoOperation::InsertOne { document } => {
                collection
                    .insert_one(document)
                    .await
                    .map_err(|error| map_error(error, &self.target))?;
                Ok(Outcome::Affected(1))
            }
            MongoOperation::InsertMany { documents } => {
                let result = collection
                    .insert_many(documents)
                    .await
                    .map_err(|error| map_error(error, &self.target))?;
                Ok(Outcome::Affected(result.inserted_ids.len() as u64))
            }
            MongoOperation::UpdateOne { filter, update, upsert } => {
                let result = match update {
                    UpdateSpec::Document(update) => collection.update_one(filter, update).upsert(upsert).await,
                    UpdateSpec::Pipeline(pipeline) => collection.update_one(filter, pipeline).upsert(upsert).await,
                }
                .map_err(|error| map_error(error, &self.target))?;
                Ok(Outcome::Affected(
                    result.modified_count + u64::from(result.upserted_id.is_some()),
                ))
            }
            MongoOperation::UpdateMany { filter, update, upsert } => {
                let result = match update {
                    UpdateSpec::Document(update) => collection.update_many(filter, update).upsert(upsert).await,
                    UpdateSpec::Pipeline(pipeline) => collection.update_many(filter, pipeline).upsert(upsert).await,
                }
                .map_err(|error| map_error(error, &self.target))?;
                Ok(Outcome::Affected(
                    result.modified_count + u64::from(result.upserted_id.is_some()),
                ))
            }
            MongoOperation::ReplaceOne {
                filter,
                replacement,
                upsert,
            } => {
                let result = collection
                    .replace_one(filter, replacement)
                    .upsert(upsert)
                    .await
                    .map_err(|error| map_error(error, &self.target))?;
                Ok(Outcome::Affected(
                    result.modified_count + u64::from(result.upserted_id.is_some()),
                ))
            }
            MongoOperation::DeleteOne { filter } => {
                let result = collection
                    .delete_one(filter)
                    .await
                    .map_err(|error| map_error(error, &self.target))?;
                Ok(Outcome::Affected(result.deleted_count))
            }
            MongoOperation::DeleteMany { filter } => {
                let result = collection
                    .delete_many(filter)
                    .await
                    .map_err(|error| map_error(error, &self.target))?;
                Ok(Outcome::Affected(result.deleted_count))
            }
            MongoOperation::ListCollections => {
                let names = database
                    .list_collection_names()
                    .await
                    .map_err(|error| map_error(error, &self.target))?;
                let mut table = Table::default();
                for name in names {
                    table.push(doc! { "name": name }, caps);
                }
                Ok(Outcome::Documents(table))
            }
        }
    }

    /// Reads documents until the cursor ends or a cap is reached; dropping the cursor then
    /// kills it on the server.
    async fn collect(&self, mut cursor: mongodb::Cursor<Document>, caps: &mut Caps) -> Result<Outcome, ConnectorError> {
        let mut table = Table::default();
        while let Some(document) = cursor
            .try_next()
            .await
            .map_err(|error| map_error(error, &self.target))?
        {
            if !table.push(document, caps) {
                break;
            }
        }
        Ok(Outcome::Documents(table))
    }
}

/// Parses the query, with its `{{name}}` placeholders replaced by the typed values of the request.
fn parse_command(request: &ExecuteRequest) -> Result<MongoCommand, ConnectorError> {
    // The text is checked, not the parsed command, so the operators are found in every form
    // and at every depth. A string value that merely mentions one is rejected too.
    if let Some(operator) = JAVASCRIPT_OPERATORS
        .iter()
        .find(|operator| request.query.contains(**operator))
    {
        return Err(ConnectorError::InvalidQuery {
            message: format!("{operator} runs JavaScript on the database server, which queries here may not use."),
        });
    }
    if !request.params.is_empty() {
        return Err(ConnectorError::internal(anyhow::anyhow!(
            "MongoDB takes named parameters, not positional ones"
        )));
    }
    let parsed = if request.named_params.is_empty() {
        parse(&request.query)
    } else if request.query.trim_start().starts_with('{') {
        return Err(ConnectorError::InvalidQuery {
            message: "Parameters work in the shell syntax, such as db.orders.find({status: {{status}}}), not in the JSON form."
                .into(),
        });
    } else {
        // Projections, pipelines and `$expr` read a string starting with `$` as a field path or
        // variable, so such a value could read other fields than the query names.
        if let Some(name) = request
            .named_params
            .iter()
            .find(|(_, value)| starts_with_dollar(value))
            .map(|(name, _)| name)
        {
            return Err(ConnectorError::InvalidParameter {
                name: name.clone(),
                message: format!(
                    "The parameter {name:?} is text starting with $, which MongoDB can read as a field path or variable; give a value without the leading $."
                ),
            });
        }
        let values = request
            .named_params
            .iter()
            .map(|(name, value)| Ok((name.clone(), param_bson(name, value)?)))
            .collect::<Result<_, ConnectorError>>()?;
        parse_with_params(&request.query, &values)
    };
    parsed.map_err(|error| ConnectorError::InvalidQuery {
        message: format!("The MongoDB query is invalid: {error}."),
    })
}

/// Operators that run JavaScript on the server.
const JAVASCRIPT_OPERATORS: [&str; 3] = ["$where", "$function", "$accumulator"];

/// Returns whether a parameter value is text starting with `$`, or a list holding one.
fn starts_with_dollar(value: &ParamValue) -> bool {
    match value {
        ParamValue::Text(text) => text.starts_with('$'),
        ParamValue::List(items) => items.iter().any(starts_with_dollar),
        _ => false,
    }
}

/// Converts a parameter value to BSON. Dates are midnight UTC and timestamps without zone are read as UTC,
/// because BSON has only one date type, an instant.
fn param_bson(name: &str, value: &ParamValue) -> Result<Bson, ConnectorError> {
    Ok(match value {
        ParamValue::Null => Bson::Null,
        ParamValue::Bool(value) => Bson::Boolean(*value),
        ParamValue::Int(value) => Bson::Int64(*value),
        ParamValue::Float(value) => Bson::Double(*value),
        ParamValue::Decimal(digits) => Bson::Decimal128(digits.parse::<mongodb::bson::Decimal128>().map_err(|_| {
            ConnectorError::InvalidParameter {
                name: name.to_owned(),
                message: format!("The parameter {name:?} is not a decimal MongoDB can store: {digits}."),
            }
        })?),
        ParamValue::Text(text) => Bson::String(text.clone()),
        ParamValue::Date(date) => Bson::DateTime(mongodb::bson::DateTime::from_millis(
            date.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_millis(),
        )),
        ParamValue::Timestamp(local) => {
            Bson::DateTime(mongodb::bson::DateTime::from_millis(local.and_utc().timestamp_millis()))
        }
        ParamValue::TimestampTz(instant) => {
            Bson::DateTime(mongodb::bson::DateTime::from_millis(instant.timestamp_millis()))
        }
        ParamValue::List(items) => Bson::Array(
            items
                .iter()
                .map(|item| param_bson(name, item))
                .collect::<Result<_, _>>()?,
        ),
    })
}

#[async_trait::async_trait]
impl Database for Mongo {
    async fn test(&self) -> Result<TestReport, ConnectorError> {
        let started = Instant::now();
        let admin = self.client.database("admin");
        admin
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(|error| map_error(error, &self.target))?;
        let info = admin
            .run_command(doc! { "buildInfo": 1 })
            .await
            .map_err(|error| map_error(error, &self.target))?;
        let version = info.get_str("version").unwrap_or("unknown").to_owned();
        Ok(TestReport {
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            server_version: format!("MongoDB {version}"),
        })
    }

    async fn execute_into(&self, request: ExecuteRequest, sink: &mut dyn RowSink) -> Result<u64, ConnectorError> {
        let started = Instant::now();
        let command = parse_command(&request)?;
        if request.read_only && command.operation.is_write() {
            return Err(ConnectorError::ReadOnly {
                reason: "this connection or your role only allows reading",
                statement: format!(
                    "{} on {}",
                    command.operation.name(),
                    command.collection.as_deref().unwrap_or("the database")
                ),
            });
        }

        let mut caps = Caps::new(&request);
        let remaining = caps.remaining();
        let outcome = match tokio::time::timeout(remaining, self.run(command, &request, &mut caps)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(ConnectorError::Timeout { .. })) | Err(_) => {
                return Err(ConnectorError::Timeout {
                    timeout: request.timeout,
                });
            }
            Ok(Err(error)) => return Err(error),
        };
        outcome.write(&request.query, sink)?;
        Ok(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    async fn databases(&self) -> Result<Vec<String>, ConnectorError> {
        let mut names = self
            .client
            .list_database_names()
            .await
            .map_err(|error| map_error(error, &self.target))?;
        names.retain(|name| !matches!(name.as_str(), "admin" | "local" | "config"));
        Ok(names)
    }

    async fn tables(&self, database: Option<&str>, _schema: Option<&str>) -> Result<Vec<TableInfo>, ConnectorError> {
        let database = self.client.database(self.database_name(database)?);
        let mut cursor = database
            .list_collections()
            .await
            .map_err(|error| map_error(error, &self.target))?;
        let mut tables = Vec::new();
        while let Some(specification) = cursor
            .try_next()
            .await
            .map_err(|error| map_error(error, &self.target))?
        {
            let kind = match specification.collection_type {
                mongodb::results::CollectionType::View => "view",
                _ => "collection",
            };
            tables.push(TableInfo {
                schema: None,
                name: specification.name,
                kind: kind.to_owned(),
            });
        }
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tables)
    }

    async fn columns(
        &self,
        database: Option<&str>,
        _schema: Option<&str>,
        table: &str,
    ) -> Result<Vec<ColumnInfo>, ConnectorError> {
        let collection: Collection<Document> = self.client.database(self.database_name(database)?).collection(table);
        let mut cursor = collection
            .find(doc! {})
            .limit(SAMPLE_DOCUMENTS)
            .await
            .map_err(|error| map_error(error, &self.target))?;
        let mut fields: Vec<(String, Vec<Bson>)> = Vec::new();
        while let Some(document) = cursor
            .try_next()
            .await
            .map_err(|error| map_error(error, &self.target))?
        {
            for (key, value) in document {
                match fields.iter_mut().find(|(name, _)| *name == key) {
                    Some((_, values)) => values.push(value),
                    None => fields.push((key, vec![value])),
                }
            }
        }
        Ok(fields
            .into_iter()
            .enumerate()
            .map(|(index, (name, values))| {
                let (portable, native) = column_for(&values);
                ColumnInfo {
                    name,
                    native_type: native,
                    portable,
                    nullable: None,
                    position: u32::try_from(index + 1).unwrap_or(u32::MAX),
                }
            })
            .collect())
    }

    async fn close(&self) {
        self.client.clone().shutdown().await;
    }
}
