//! Schema browsing: `GET …/connectors/{id}/schema` lists the databases; with `database`
//! (and optionally `schema`) it lists tables, views or collections; with `table` as well it
//! lists that table's columns with native and portable types.

use axum::extract::State;
use axum::response::Response;
use mako_core::auth::WorkspaceCaller;
use mako_core::http::{ApiPath, ApiQuery, ok};
use mako_core::{ApiError, ApiResult, AppState};
use mako_databases::service;
use serde::Deserialize;
use serde_json::json;

/// Maximum length of a database, schema or table name.
const MAX_NAME_BYTES: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SchemaQuery {
    database: Option<String>,
    schema: Option<String>,
    table: Option<String>,
}

fn check(field: &str, value: Option<String>) -> ApiResult<Option<String>> {
    match value {
        Some(text) if text.is_empty() || text.len() > MAX_NAME_BYTES || text.chars().any(char::is_control) => {
            Err(ApiError::invalid_field(
                field,
                format!("The {field} must be 1 to {MAX_NAME_BYTES} bytes without control characters."),
            ))
        }
        other => Ok(other),
    }
}

pub(crate) async fn browse(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<SchemaQuery>,
) -> ApiResult<Response> {
    let id = service::parse_id("id", &id)?;
    let database_name = check("database", query.database)?;
    let schema_name = check("schema", query.schema)?;
    let table = check("table", query.table)?;

    let record = service::load(&state, access.workspace_id(), &id).await?;
    let database = service::open(&state, &record).await?;

    if let Some(table) = table {
        let columns = database
            .columns(database_name.as_deref(), schema_name.as_deref(), &table)
            .await?;
        return Ok(ok(json!({
            "database": database_name,
            "schema": schema_name,
            "table": table,
            "columns": columns,
        })));
    }
    if database_name.is_some() || schema_name.is_some() {
        let tables = database
            .tables(database_name.as_deref(), schema_name.as_deref())
            .await?;
        return Ok(ok(json!({
            "database": database_name,
            "schema": schema_name,
            "tables": tables,
        })));
    }
    let databases = database.databases().await?;
    let settings = service::settings_of(&record.value)?;
    let default = settings
        .database
        .or_else(|| (databases.len() == 1).then(|| databases[0].clone()));
    Ok(ok(json!({
        "databases": databases,
        "defaultDatabase": default,
    })))
}
