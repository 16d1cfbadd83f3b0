//! The agent's tools. Each runs on the server with the caller's workspace and role: the
//! same rules as the routes apply (connections of the workspace only, queries read-only,
//! private consoles hidden from others, viewers cannot save).
//!
//! A tool returns its full output for the client (the rows of a query) and a short summary
//! for the model, so that a large result does not fill the model's context. Failures are
//! returned to the model as tool errors, which it can correct.

use std::collections::BTreeMap;

use mako_core::auth::WorkspaceCaller;
use mako_core::ids::ConnectionId;
use mako_core::repo::chats::MAX_PART_BYTES;
use mako_core::repo::connections::Connections;
use mako_core::{ApiError, AppState};
use mako_databases::execute::ExecuteRequest;
use mako_databases::{ConnectionKind, ResultSet, run, service};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::provider::{ToolSpec, truncate};

/// Rows of a result shown to the model.
const SUMMARY_ROWS: usize = 20;
/// Characters of one value shown to the model.
const SUMMARY_CELL_CHARS: usize = 200;
/// Characters of a whole summary.
const SUMMARY_CHARS: usize = 12_000;
/// Sample rows of `describe_table`.
const SAMPLE_ROWS: usize = 5;
/// Consoles `search_consoles` returns at most.
const SEARCH_LIMIT: usize = 25;
/// Bytes of output a tool part may hold in the stored message, leaving room for its input.
const MAX_OUTPUT_BYTES: usize = MAX_PART_BYTES - 32 * 1024;

/// Output of a tool call.
pub struct ToolOutput {
    /// For the client and the stored chat.
    pub output: Value,
    /// For the model.
    pub summary: String,
}

/// Context a tool runs in: the shared state and the caller.
pub struct ToolContext<'a> {
    pub state: &'a AppState,
    pub access: &'a WorkspaceCaller,
}

/// Returns the tools offered to the model.
pub fn specs() -> Vec<ToolSpec> {
    let connection = json!({ "type": "string", "description": "A connection id from list_connections." });
    let database = json!({ "type": "string", "description": "Database to use instead of the connection's default." });
    vec![
        ToolSpec {
            name: "list_connections",
            description: "Lists the workspace's database connections: id, name, type (postgresql, mysql, sqlite, mongodb) and default database.",
            input_schema: json!({ "type": "object", "properties": {}, "additionalProperties": false }),
        },
        ToolSpec {
            name: "list_databases",
            description: "Lists the databases of a connection.",
            input_schema: json!({
                "type": "object",
                "properties": { "connectionId": connection },
                "required": ["connectionId"],
                "additionalProperties": false,
            }),
        },
        ToolSpec {
            name: "list_tables",
            description: "Lists the tables and views (MongoDB: collections) of a connection's database, optionally in one schema.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "connectionId": connection,
                    "database": database,
                    "schema": { "type": "string", "description": "PostgreSQL schema, such as public." },
                },
                "required": ["connectionId"],
                "additionalProperties": false,
            }),
        },
        ToolSpec {
            name: "describe_table",
            description: "Describes a table or collection: its columns with their types, and a few sample rows.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "connectionId": connection,
                    "table": { "type": "string", "description": "Table, view or collection name." },
                    "database": database,
                    "schema": { "type": "string", "description": "PostgreSQL schema, such as public." },
                },
                "required": ["connectionId", "table"],
                "additionalProperties": false,
            }),
        },
        ToolSpec {
            name: "run_query",
            description: "Runs a read-only query and returns its rows (at most a small number). SQL for PostgreSQL, MySQL and SQLite; MongoDB shell syntax such as db.orders.find({status: \"paid\"}).limit(10) for MongoDB.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "connectionId": connection,
                    "query": { "type": "string", "description": "The query text." },
                    "database": database,
                },
                "required": ["connectionId", "query"],
                "additionalProperties": false,
            }),
        },
        ToolSpec {
            name: "search_consoles",
            description: "Searches the saved queries (consoles) the user can see, by words in their name or description.",
            input_schema: json!({
                "type": "object",
                "properties": { "text": { "type": "string", "description": "Words to look for; empty lists every console." } },
                "additionalProperties": false,
            }),
        },
        ToolSpec {
            name: "save_console",
            description: "Saves a query as a new private console of the user, so they can open and run it later.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "name": { "type": "string", "description": "A short, descriptive name." },
                    "connectionId": connection,
                    "code": { "type": "string", "description": "The query text." },
                    "database": database,
                    "description": { "type": "string", "description": "What the query answers." },
                },
                "required": ["name", "connectionId", "code"],
                "additionalProperties": false,
            }),
        },
    ]
}

fn input<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    serde_json::from_value(value.clone()).map_err(|error| format!("invalid input: {error}"))
}

/// Describes a route error for the model.
fn api_error(error: ApiError) -> String {
    match error {
        ApiError::Internal(error) => {
            tracing::error!(error = ?error, "an agent tool failed with an internal error");
            "the tool failed with an internal error; the server log has the details".to_owned()
        }
        other => other.to_string(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConnectionInput {
    connection_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TablesInput {
    connection_id: String,
    database: Option<String>,
    schema: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DescribeInput {
    connection_id: String,
    table: String,
    database: Option<String>,
    schema: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct QueryInput {
    connection_id: String,
    query: String,
    database: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SearchInput {
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SaveInput {
    name: String,
    connection_id: String,
    code: String,
    database: Option<String>,
    #[serde(default)]
    description: String,
}

/// Runs one tool call. Its output is cut to fit in a stored chat message.
pub async fn call(context: &ToolContext<'_>, name: &str, arguments: &Value) -> Result<ToolOutput, String> {
    let output = dispatch(context, name, arguments).await?;
    Ok(ToolOutput {
        output: fit(output.output),
        summary: output.summary,
    })
}

async fn dispatch(context: &ToolContext<'_>, name: &str, arguments: &Value) -> Result<ToolOutput, String> {
    match name {
        "list_connections" => list_connections(context).await,
        "list_databases" => {
            let input: ConnectionInput = input(arguments)?;
            let (_, database) = open(context, &input.connection_id).await?;
            let databases = database.databases().await.map_err(|error| error.to_string())?;
            let summary = format!("{} databases: {}", databases.len(), databases.join(", "));
            Ok(ToolOutput {
                output: json!({ "databases": databases }),
                summary,
            })
        }
        "list_tables" => {
            let input: TablesInput = input(arguments)?;
            check_names(&[&input.database, &input.schema])?;
            let (_, database) = open(context, &input.connection_id).await?;
            let tables = database
                .tables(input.database.as_deref(), input.schema.as_deref())
                .await
                .map_err(|error| error.to_string())?;
            let names: Vec<String> = tables
                .iter()
                .map(|table| match &table.schema {
                    Some(schema) => format!("{schema}.{} ({})", table.name, table.kind),
                    None => format!("{} ({})", table.name, table.kind),
                })
                .collect();
            let summary = truncate(&format!("{} tables: {}", tables.len(), names.join(", ")), SUMMARY_CHARS);
            Ok(ToolOutput {
                output: json!({ "tables": tables }),
                summary,
            })
        }
        "describe_table" => describe_table(context, input(arguments)?).await,
        "run_query" => run_query(context, input(arguments)?).await,
        "search_consoles" => {
            let input: SearchInput = input(arguments)?;
            let consoles = mako_consoles::search(context.state, context.access, Some(&input.text), SEARCH_LIMIT)
                .await
                .map_err(api_error)?;
            let output = serde_json::to_value(&consoles).map_err(|error| error.to_string())?;
            let lines: Vec<String> = output
                .as_array()
                .map(|consoles| {
                    consoles
                        .iter()
                        .map(|console| {
                            format!(
                                "{} \"{}\" ({}, connection {})",
                                console["id"].as_str().unwrap_or_default(),
                                console["name"].as_str().unwrap_or_default(),
                                console["language"].as_str().unwrap_or_default(),
                                console["connectionId"].as_str().unwrap_or_default()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let summary = format!("{} consoles found:\n{}", lines.len(), lines.join("\n"));
            Ok(ToolOutput {
                output: json!({ "consoles": output }),
                summary,
            })
        }
        "save_console" => {
            let input: SaveInput = input(arguments)?;
            let body = mako_consoles::CreateBody {
                name: input.name,
                description: input.description,
                code: input.code,
                connection_id: input.connection_id,
                database: input.database,
                ..mako_consoles::CreateBody::default()
            };
            let view = mako_consoles::create_console(context.state, context.access.clone(), body)
                .await
                .map_err(api_error)?;
            let output = serde_json::to_value(&view).map_err(|error| error.to_string())?;
            let summary = format!(
                "Saved console {} named \"{}\" (private to the user).",
                output["id"].as_str().unwrap_or_default(),
                output["name"].as_str().unwrap_or_default()
            );
            Ok(ToolOutput {
                output: json!({ "console": output }),
                summary,
            })
        }
        other => Err(format!(
            "there is no tool named {:?}; the tools are {}",
            truncate(other, 64),
            specs().iter().map(|spec| spec.name).collect::<Vec<_>>().join(", ")
        )),
    }
}

fn check_names(names: &[&Option<String>]) -> Result<(), String> {
    for name in names.iter().copied().flatten() {
        run::check_database(name).map_err(api_error)?;
    }
    Ok(())
}

async fn list_connections(context: &ToolContext<'_>) -> Result<ToolOutput, String> {
    let connections = Connections::new(&*context.state.store);
    let mut records = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = connections
            .list(context.access.workspace_id(), 100, cursor)
            .await
            .map_err(|error| api_error(error.into()))?;
        records.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let list: Vec<Value> = records
        .iter()
        .map(|record| {
            json!({
                "id": record.id,
                "name": record.name,
                "type": record.kind,
                "database": record.settings.get("database"),
                "readOnly": record.read_only,
            })
        })
        .collect();
    let lines: Vec<String> = list
        .iter()
        .map(|connection| {
            format!(
                "{} \"{}\" ({}{})",
                connection["id"].as_str().unwrap_or_default(),
                connection["name"].as_str().unwrap_or_default(),
                connection["type"].as_str().unwrap_or_default(),
                connection["database"]
                    .as_str()
                    .map(|database| format!(", database {database}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    Ok(ToolOutput {
        summary: format!("{} connections:\n{}", list.len(), lines.join("\n")),
        output: json!({ "connections": list }),
    })
}

async fn open(
    context: &ToolContext<'_>,
    id: &str,
) -> Result<(ConnectionKind, std::sync::Arc<dyn mako_databases::Database>), String> {
    let id: ConnectionId = service::parse_id("connectionId", id).map_err(api_error)?;
    let record = service::load(context.state, context.access.workspace_id(), &id)
        .await
        .map_err(api_error)?;
    let kind = service::kind_of(&record.value).map_err(api_error)?;
    let database = service::open(context.state, &record).await.map_err(api_error)?;
    Ok((kind, database))
}

/// Runs read-only query text with the agent's row cap and time limit.
async fn execute(
    context: &ToolContext<'_>,
    connection_id: &str,
    query: &str,
    database_name: Option<String>,
    max_rows: usize,
) -> Result<(Vec<ResultSet>, u64), String> {
    run::check_query("query", query).map_err(api_error)?;
    check_names(&[&database_name])?;
    let (kind, database) = open(context, connection_id).await?;
    let bound = run::bind(kind, query, BTreeMap::new()).map_err(api_error)?;
    let settings = &context.state.config;
    let request = ExecuteRequest {
        query: bound.query,
        database: database_name,
        max_rows,
        max_bytes: settings.connectors.max_result_bytes.min(MAX_OUTPUT_BYTES),
        timeout: settings.agent.query_timeout,
        read_only: true,
        params: bound.params,
        named_params: bound.named_params,
    };
    let output = database.execute(request).await.map_err(|error| error.to_string())?;
    Ok((output.result_sets, output.elapsed_ms))
}

async fn run_query(context: &ToolContext<'_>, input: QueryInput) -> Result<ToolOutput, String> {
    let max_rows = context.state.config.agent.query_rows;
    let (sets, elapsed_ms) = execute(context, &input.connection_id, &input.query, input.database, max_rows).await?;
    let mut summaries = Vec::new();
    let mut outputs = Vec::new();
    for set in &sets {
        summaries.push(summarize(set));
        outputs.push(set_output(set));
    }
    let (output, summary) = match outputs.len() {
        1 => {
            let mut output = outputs.remove(0);
            output["elapsedMs"] = json!(elapsed_ms);
            (output, summaries.remove(0))
        }
        _ => (
            json!({ "resultSets": outputs, "elapsedMs": elapsed_ms }),
            summaries.join("\n\n"),
        ),
    };
    Ok(ToolOutput {
        output,
        summary: truncate(&summary, SUMMARY_CHARS),
    })
}

/// Quotes a table name for a sample query.
fn quoted(kind: ConnectionKind, schema: Option<&str>, table: &str) -> String {
    let quote = |name: &str| match kind {
        ConnectionKind::Mysql => format!("`{}`", name.replace('`', "``")),
        _ => format!("\"{}\"", name.replace('"', "\"\"")),
    };
    match schema {
        Some(schema) => format!("{}.{}", quote(schema), quote(table)),
        None => quote(table),
    }
}

async fn describe_table(context: &ToolContext<'_>, input: DescribeInput) -> Result<ToolOutput, String> {
    check_names(&[&input.database, &input.schema, &Some(input.table.clone())])?;
    let (kind, database) = open(context, &input.connection_id).await?;
    let columns = database
        .columns(input.database.as_deref(), input.schema.as_deref(), &input.table)
        .await
        .map_err(|error| error.to_string())?;
    if columns.is_empty() {
        return Err(format!(
            "no table or collection named {:?} was found, or it has no columns; list_tables shows the names",
            input.table
        ));
    }
    let sample_query = match kind {
        ConnectionKind::Mongodb => format!(
            "db.getCollection({}).find({{}}).limit({SAMPLE_ROWS})",
            json!(input.table)
        ),
        _ => format!(
            "SELECT * FROM {} LIMIT {SAMPLE_ROWS}",
            quoted(kind, input.schema.as_deref(), &input.table)
        ),
    };

    // Sample rows help the model but are not essential: a failure is reported beside the columns.
    let sample = execute(
        context,
        &input.connection_id,
        &sample_query,
        input.database.clone(),
        SAMPLE_ROWS,
    )
    .await;

    let column_lines: Vec<String> = columns
        .iter()
        .map(|column| {
            let nullable = match column.nullable {
                Some(false) => " not null",
                _ => "",
            };
            format!("{} {}{nullable}", column.name, column.native_type)
        })
        .collect();
    let mut summary = format!("{} columns:\n{}", columns.len(), column_lines.join("\n"));
    let sample_output = match &sample {
        Ok((sets, _)) => match sets.first() {
            Some(set) => {
                summary.push_str("\n\nSample rows:\n");
                summary.push_str(&summarize(set));
                set_output(set)
            }
            None => Value::Null,
        },
        Err(error) => {
            summary.push_str(&format!("\n\nSample rows could not be read: {error}"));
            json!({ "error": error })
        }
    };
    Ok(ToolOutput {
        output: json!({ "table": input.table, "columns": columns, "sample": sample_output }),
        summary: truncate(&summary, SUMMARY_CHARS),
    })
}

fn set_output(set: &ResultSet) -> Value {
    json!({
        "columns": set.columns,
        "rows": set.rows,
        "rowCount": set.row_count,
        "truncated": set.truncated,
        "affectedRows": set.affected_rows,
    })
}

/// Formats a result set for the model: the columns, the row count, and the first rows with
/// long values cut.
fn summarize(set: &ResultSet) -> String {
    if set.columns.is_empty() {
        return match set.affected_rows {
            Some(rows) => format!("The statement affected {rows} rows."),
            None => "The statement returned no rows.".to_owned(),
        };
    }
    let header: Vec<String> = set
        .columns
        .iter()
        .map(|column| format!("{} ({})", column.name, column.native_type))
        .collect();
    let mut text = format!(
        "{} rows{}. Columns: {}.",
        set.row_count,
        if set.truncated {
            " (more exist; the result was cut at the agent's row limit)"
        } else {
            ""
        },
        header.join(", ")
    );
    for row in set.rows.iter().take(SUMMARY_ROWS) {
        let cells: Vec<String> = row
            .iter()
            .map(|cell| {
                let text = serde_json::to_string(cell).unwrap_or_default();
                truncate(&text, SUMMARY_CELL_CHARS)
            })
            .collect();
        text.push_str("\n[");
        text.push_str(&cells.join(", "));
        text.push(']');
    }
    if set.rows.len() > SUMMARY_ROWS {
        text.push_str(&format!(
            "\n… {} more rows were sent to the user but are not shown here.",
            set.rows.len() - SUMMARY_ROWS
        ));
    }
    text
}

/// Drops rows (or tables, databases, consoles, connections) from the end of an output until
/// it fits in a stored message part, marking it.
fn fit(mut output: Value) -> Value {
    fn rows_of(value: &mut Value) -> Vec<&mut Vec<Value>> {
        let mut found = Vec::new();
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    let list = matches!(
                        key.as_str(),
                        "rows" | "tables" | "databases" | "consoles" | "connections"
                    );
                    if list && child.is_array() {
                        if let Value::Array(rows) = child {
                            found.push(rows);
                        }
                    } else {
                        found.extend(rows_of(child));
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    found.extend(rows_of(item));
                }
            }
            _ => {}
        }
        found
    }
    let mut cut = false;
    while output.to_string().len() > MAX_OUTPUT_BYTES {
        let mut lists = rows_of(&mut output);
        let Some(longest) = lists.iter_mut().max_by_key(|rows| rows.len()) else {
            break;
        };
        if longest.is_empty() {
            break;
        }
        let keep = longest.len() / 2;
        longest.truncate(keep);
        cut = true;
    }
    if cut && let Value::Object(map) = &mut output {
        map.insert(
            "rowsCut".into(),
            json!("Rows were left out to keep the chat message under its size limit."),
        );
    }
    if output.to_string().len() > MAX_OUTPUT_BYTES {
        return json!({ "error": "The output is too large to keep in the chat." });
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_quoted_for_their_database() {
        assert_eq!(
            quoted(ConnectionKind::Postgres, Some("public"), "a\"b"),
            "\"public\".\"a\"\"b\""
        );
        assert_eq!(quoted(ConnectionKind::Mysql, None, "a`b"), "`a``b`");
        assert_eq!(quoted(ConnectionKind::Sqlite, None, "orders"), "\"orders\"");
    }

    #[test]
    fn large_outputs_are_cut_to_fit_a_message() {
        let rows: Vec<Value> = (0..10_000).map(|i| json!([i, "x".repeat(100)])).collect();
        let output = fit(json!({ "columns": [], "rows": rows }));
        assert!(output.to_string().len() <= MAX_OUTPUT_BYTES);
        assert!(output["rows"].as_array().is_some_and(|rows| !rows.is_empty()));
        assert!(output.get("rowsCut").is_some());
    }

    #[test]
    fn every_tool_has_an_object_schema() {
        for spec in specs() {
            assert_eq!(spec.input_schema["type"], "object", "{}", spec.name);
            assert!(spec.description.ends_with('.'), "{}", spec.name);
        }
    }
}
