//! The `/api/execute` route: run SQL or MongoDB shell-style text on a connection of a
//! workspace, within the row, size and time limits, and return every result set.
//!
//! Viewers, and every caller on a read-only connection, run read-only. The response is
//! written while rows are read (see `mako_databases::response`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use mako_core::access::Role;
use mako_core::auth::{Caller, authorize_workspace};
use mako_core::http::ApiJson;
use mako_core::ids::{InvalidId, WorkspaceId};
use mako_core::{ApiError, ApiResult, AppState};
use mako_databases::ExecuteRequest;
use mako_databases::params::{ParamValue, Style, compile, request_value};
use mako_databases::response::JsonSink;
use mako_databases::service;
use mako_databases::settings::ConnectionKind;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Maximum query text length, in bytes.
const MAX_QUERY_BYTES: usize = 1024 * 1024;
/// Maximum parameters one request may bind.
const MAX_PARAMS: usize = 1000;
/// Shortest time limit a request may set.
const MIN_TIMEOUT_MS: u64 = 100;

/// Builds the router of `/api/execute`.
pub fn router(state: AppState) -> Router {
    Router::new().route("/api/execute", post(execute)).with_state(state)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExecuteBody {
    workspace_id: String,
    connection_id: String,
    query: String,
    /// Database to run in, instead of the connection's.
    database: Option<String>,
    /// Rows returned at most; the server's default when absent.
    limit: Option<u64>,
    /// Time limit in milliseconds; the server's default when absent.
    timeout_ms: Option<u64>,
    /// Values of the `{{name}}` placeholders in `query`.
    params: Option<Map<String, Value>>,
}

/// The request's limits, checked against the server's.
fn limits(state: &AppState, body: &ExecuteBody) -> ApiResult<(usize, Duration)> {
    let policy = &state.config.connectors;
    let rows = match body.limit {
        None => policy.default_rows,
        Some(limit) if limit >= 1 && limit <= policy.max_rows as u64 => limit as usize,
        Some(limit) => {
            return Err(ApiError::invalid_field(
                "limit",
                format!("limit must be between 1 and {}, got {limit}.", policy.max_rows),
            ));
        }
    };
    let max_timeout = u64::try_from(policy.max_timeout.as_millis()).unwrap_or(u64::MAX);
    let timeout = match body.timeout_ms {
        None => policy.default_timeout,
        Some(ms) if (MIN_TIMEOUT_MS..=max_timeout).contains(&ms) => Duration::from_millis(ms),
        Some(ms) => {
            return Err(ApiError::invalid_field(
                "timeoutMs",
                format!("timeoutMs must be between {MIN_TIMEOUT_MS} and {max_timeout}, got {ms}."),
            ));
        }
    };
    Ok((rows, timeout))
}

/// Checks the query text and its optional database name.
fn check_text(body: &ExecuteBody) -> ApiResult<()> {
    if body.query.trim().is_empty() {
        return Err(ApiError::invalid_field("query", "The query is empty."));
    }
    if body.query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::invalid_field(
            "query",
            format!(
                "The query is {} bytes; at most {MAX_QUERY_BYTES} are accepted.",
                body.query.len()
            ),
        ));
    }
    if let Some(database) = &body.database
        && (database.is_empty() || database.len() > 256 || database.chars().any(char::is_control))
    {
        return Err(ApiError::invalid_field(
            "database",
            "The database must be 1 to 256 bytes without control characters.",
        ));
    }
    Ok(())
}

/// Replaces `{{name}}` placeholders with the driver's own and returns the values to bind. A
/// placeholder without a value is refused, with or without `params`.
fn bind_params(
    kind: ConnectionKind,
    query: &str,
    params: Option<&Map<String, Value>>,
) -> ApiResult<(String, Vec<ParamValue>)> {
    let empty = Map::new();
    let params = params.unwrap_or(&empty);
    if kind == ConnectionKind::Mongodb && params.is_empty() {
        return Ok((query.to_owned(), Vec::new()));
    }
    if params.len() > MAX_PARAMS {
        return Err(ApiError::invalid_field(
            "params",
            format!("At most {MAX_PARAMS} parameters are accepted."),
        ));
    }
    let style = match kind {
        ConnectionKind::Postgres => Style::Numbered,
        ConnectionKind::Mysql => Style::QuestionMySql,
        ConnectionKind::Sqlite => Style::Question,
        ConnectionKind::Mongodb => {
            return Err(ApiError::invalid_field(
                "params",
                "Parameters are not supported on MongoDB connections yet; write the values into the query.",
            ));
        }
    };
    let mut values = BTreeMap::new();
    for (name, value) in params {
        values.insert(name.clone(), request_value(name, value)?);
    }
    Ok(compile(query, style, &values)?)
}

async fn execute(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ExecuteBody>,
) -> ApiResult<Response> {
    let workspace_id: WorkspaceId = body
        .workspace_id
        .parse()
        .map_err(|error: InvalidId| ApiError::invalid_field("workspaceId", error.to_string()))?;
    let connection_id = service::parse_id("connectionId", &body.connection_id)?;
    check_text(&body)?;
    let (max_rows, timeout) = limits(&state, &body)?;

    let access = authorize_workspace(&state, caller, &workspace_id).await?;
    let record = service::load(&state, &workspace_id, &connection_id).await?;
    let kind = service::kind_of(&record.value)?;
    let (query, params) = bind_params(kind, &body.query, body.params.as_ref())?;
    let read_only = record.value.read_only || access.role < Role::Member;

    let database = service::open(&state, &record).await?;
    let request = ExecuteRequest {
        query,
        database: body.database,
        max_rows,
        max_bytes: state.config.connectors.max_result_bytes,
        timeout,
        read_only,
        params,
    };
    let mut sink = JsonSink::with_memory(state.result_memory.clone());
    let outcome = database.execute_into(request, &mut sink).await;
    match outcome {
        Ok(elapsed_ms) => {
            let last = sink.last_end();
            tracing::info!(
                workspace_id = %workspace_id,
                connection_id = %connection_id,
                rows = sink.row_count(),
                truncated = last.truncated,
                elapsed_ms,
                read_only,
                "query executed"
            );
            Ok(sink.into_response(elapsed_ms, Map::new()))
        }
        Err(error) => {
            tracing::info!(
                workspace_id = %workspace_id,
                connection_id = %connection_id,
                error = %error,
                "query failed"
            );
            Err(error.into())
        }
    }
}
