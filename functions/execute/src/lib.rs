//! The `/api/execute` route: run SQL or MongoDB shell-style text on a connection of a
//! workspace, within the row, size and time limits, and return every result set.
//!
//! Viewers, and every caller on a read-only connection, run read-only. The response is
//! written while rows are read (see `mako_databases::response`).

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use mako_core::access::Role;
use mako_core::auth::{Caller, authorize_workspace};
use mako_core::http::ApiJson;
use mako_core::ids::{InvalidId, WorkspaceId};
use mako_core::{ApiError, ApiResult, AppState};
use mako_databases::response::JsonSink;
use mako_databases::run;
use mako_databases::service;
use serde::Deserialize;
use serde_json::{Map, Value};

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
    run::check_query("query", &body.query)?;
    if let Some(database) = &body.database {
        run::check_database(database)?;
    }
    let limits = run::limits(&state.config.connectors, body.limit, body.timeout_ms)?;
    let values = run::request_values(body.params.as_ref())?;

    let access = authorize_workspace(&state, caller, &workspace_id).await?;
    let record = service::load(&state, &workspace_id, &connection_id).await?;
    let kind = service::kind_of(&record.value)?;
    let bound = run::bind(kind, &body.query, values)?;
    let read_only = record.value.read_only || access.role < Role::Member;

    let database = service::open(&state, &record).await?;
    let request = bound.into_request(
        body.database,
        limits,
        state.config.connectors.max_result_bytes,
        read_only,
    );
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
