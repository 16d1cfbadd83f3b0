//! Request bodies of dashboards, their checks, and the JSON views.

use std::collections::HashSet;

use mako_core::auth::WorkspaceCaller;
use mako_core::ids::{DashboardFolderId, DashboardId, next_ulid};
use mako_core::repo::consoles::{Language, Visibility};
use mako_core::repo::dashboards::{
    Dashboard, DataSource, FilterTarget, GlobalFilter, Layout, Schedule, Widget, WidgetKind,
};
use mako_core::text::clean_name;
use mako_core::{ApiError, ApiResult, AppState};
use mako_databases::run::{bind, check_database, check_query, request_values};
use mako_databases::service;
use mako_databases::settings::ConnectionKind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

const MAX_TITLE_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 2_000;
pub const MAX_DATA_SOURCES: usize = 50;
const MAX_WIDGETS: usize = 200;
const MAX_FILTERS: usize = 20;
const MAX_TARGETS: usize = 50;
/// Bytes of JSON of one widget's Vega-Lite spec or settings.
const MAX_SPEC_BYTES: usize = 64 * 1024;
const MAX_TEXT_CHARS: usize = 20_000;
const MAX_DEFAULT_BYTES: usize = 4096;
/// Bytes of JSON of a whole dashboard (a stored item is at most 400,000 bytes).
pub const MAX_DASHBOARD_BYTES: usize = 350_000;
/// Largest grid coordinate and widget size.
const MAX_GRID: u32 = 10_000;
const MAX_WIDGET_SIZE: u32 = 100;
/// Rows a data source writes when it names no limit.
pub const DEFAULT_ROW_LIMIT: u64 = 1_000_000;

const FILTER_TYPES: &[&str] = &[
    "text",
    "number",
    "date",
    "daterange",
    "select",
    "multiselect",
    "boolean",
];

pub use mako_core::http::double_option;

pub fn parse_dashboard_id(text: &str) -> ApiResult<DashboardId> {
    text.parse()
        .map_err(|error: mako_core::ids::InvalidId| ApiError::invalid_field("dashboardId", error.to_string()))
}

pub fn parse_folder_id(field: &str, text: &str) -> ApiResult<DashboardFolderId> {
    text.parse()
        .map_err(|error: mako_core::ids::InvalidId| ApiError::invalid_field(field, error.to_string()))
}

pub fn check_title(field: &str, title: &str) -> ApiResult<String> {
    clean_name(field, title, MAX_TITLE_CHARS).map_err(|message| ApiError::invalid_field(field, message))
}

pub fn check_description(text: &str) -> ApiResult<String> {
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::invalid_field(
            "description",
            format!("The description must be at most {MAX_DESCRIPTION_CHARS} characters long."),
        ));
    }
    Ok(text.trim().to_owned())
}

/// Generates an id for a data source, widget or filter.
pub fn fresh_id(prefix: &str) -> String {
    format!("{prefix}_{}", next_ulid().to_string().to_ascii_lowercase())
}

/// Checks a client-chosen id of a data source, widget or filter, or makes one.
fn item_id(field: &str, id: Option<String>, prefix: &str, seen: &mut HashSet<String>) -> ApiResult<String> {
    let id = match id {
        None => fresh_id(prefix),
        Some(id) => {
            let valid =
                (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                return Err(ApiError::invalid_field(
                    field,
                    "Ids are 1 to 64 letters, digits, '-' or '_'; leave the id out to get one.",
                ));
            }
            id
        }
    };
    if !seen.insert(id.clone()) {
        return Err(ApiError::invalid_field(
            field,
            format!("The id \"{id}\" is used twice."),
        ));
    }
    Ok(id)
}

fn json_size(field: &str, value: &Value, max: usize) -> ApiResult<()> {
    let size = value.to_string().len();
    if size > max {
        return Err(ApiError::invalid_field(
            field,
            format!("This is {size} bytes of JSON; at most {max} are accepted."),
        ));
    }
    Ok(())
}

#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataSourceBody {
    pub id: Option<String>,
    pub name: String,
    pub connection_id: String,
    pub language: Option<Language>,
    pub query: String,
    pub database: Option<String>,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    pub row_limit: Option<u64>,
    pub schedule: Option<Schedule>,
}

#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WidgetBody {
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: WidgetKind,
    #[serde(default)]
    pub title: String,
    pub data_source_id: Option<String>,
    pub spec: Option<Value>,
    pub settings: Option<Value>,
    pub text: Option<String>,
    pub layout: Layout,
}

#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterBody {
    pub id: Option<String>,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub default: Option<Value>,
    #[serde(default)]
    pub targets: Vec<FilterTarget>,
}

/// Checks one data source against the workspace's connections.
async fn check_data_source(
    state: &AppState,
    access: &WorkspaceCaller,
    index: usize,
    body: DataSourceBody,
    seen: &mut HashSet<String>,
) -> ApiResult<DataSource> {
    let field = |name: &str| format!("dataSources[{index}].{name}");
    let id = item_id(&field("id"), body.id, "ds", seen)?;
    let name = check_title(&field("name"), &body.name)?;
    let connection_id = service::parse_id(&field("connectionId"), &body.connection_id)?;
    let record = mako_core::repo::connections::Connections::new(&*state.store)
        .get(access.workspace_id(), &connection_id)
        .await?
        .ok_or_else(|| {
            ApiError::invalid_field(
                &field("connectionId"),
                format!(
                    "Connection {connection_id} was not found in this workspace; use a connection of workspace {}.",
                    access.workspace_id()
                ),
            )
        })?;
    let kind = service::kind_of(&record.value)?;
    let native = match kind {
        ConnectionKind::Mongodb => Language::Mongodb,
        _ => Language::Sql,
    };
    let language = body.language.unwrap_or(native);
    if language != native {
        return Err(ApiError::invalid_field(
            &field("language"),
            format!("Connection {connection_id} runs {native:?} queries; set language to match or leave it out.")
                .replace("Sql", "sql")
                .replace("Mongodb", "mongodb"),
        ));
    }
    check_query(&field("query"), &body.query)?;
    if let Some(database) = &body.database {
        check_database(database)
            .map_err(|_| ApiError::invalid_field(&field("database"), "The database name is invalid."))?;
    }
    let values = request_values(Some(&body.parameters)).map_err(|error| prefix_field(error, &field("")))?;
    bind(kind, &body.query, values).map_err(|error| prefix_field(error, &field("")))?;
    let max_rows = state.config.jobs.max_rows;
    let row_limit = body.row_limit.unwrap_or(DEFAULT_ROW_LIMIT.min(max_rows));
    if row_limit == 0 || row_limit > max_rows {
        return Err(ApiError::invalid_field(
            &field("rowLimit"),
            format!("The row limit must be from 1 to {max_rows} (MAKO_MATERIALIZE_MAX_ROWS)."),
        ));
    }
    if let Some(schedule) = &body.schedule {
        mako_jobs::schedule::check(schedule).map_err(|message| ApiError::invalid_field(&field("schedule"), message))?;
    }
    Ok(DataSource {
        id,
        name,
        connection_id,
        language,
        query: body.query,
        database: body.database,
        parameters: body.parameters,
        row_limit,
        schedule: body.schedule,
    })
}

/// Puts a data source's path in front of the field names of a validation error.
fn prefix_field(error: ApiError, prefix: &str) -> ApiError {
    match error {
        ApiError::Validation { message, details } => {
            let details = details.map(|details| match details {
                Value::Object(fields) => Value::Object(
                    fields
                        .into_iter()
                        .map(|(name, message)| (format!("{prefix}{name}"), message))
                        .collect(),
                ),
                other => other,
            });
            ApiError::Validation { message, details }
        }
        other => other,
    }
}

pub async fn check_data_sources(
    state: &AppState,
    access: &WorkspaceCaller,
    bodies: Vec<DataSourceBody>,
) -> ApiResult<Vec<DataSource>> {
    if bodies.len() > MAX_DATA_SOURCES {
        return Err(ApiError::invalid_field(
            "dataSources",
            format!("A dashboard has at most {MAX_DATA_SOURCES} data sources."),
        ));
    }
    let mut seen = HashSet::new();
    let mut sources = Vec::with_capacity(bodies.len());
    for (index, body) in bodies.into_iter().enumerate() {
        sources.push(check_data_source(state, access, index, body, &mut seen).await?);
    }
    Ok(sources)
}

pub fn check_widgets(bodies: Vec<WidgetBody>, sources: &[DataSource]) -> ApiResult<Vec<Widget>> {
    if bodies.len() > MAX_WIDGETS {
        return Err(ApiError::invalid_field(
            "widgets",
            format!("A dashboard has at most {MAX_WIDGETS} widgets."),
        ));
    }
    let mut seen = HashSet::new();
    bodies
        .into_iter()
        .enumerate()
        .map(|(index, body)| {
            let field = |name: &str| format!("widgets[{index}].{name}");
            let id = item_id(&field("id"), body.id, "wdg", &mut seen)?;
            let title = body.title.trim().to_owned();
            if title.chars().count() > MAX_TITLE_CHARS {
                return Err(ApiError::invalid_field(
                    &field("title"),
                    format!("Titles are at most {MAX_TITLE_CHARS} characters."),
                ));
            }
            match (&body.kind, &body.data_source_id) {
                (WidgetKind::Text, Some(_)) => {
                    return Err(ApiError::invalid_field(
                        &field("dataSourceId"),
                        "Text widgets read no data source; leave dataSourceId out.",
                    ));
                }
                (WidgetKind::Text, None) => {}
                (_, None) => {
                    return Err(ApiError::invalid_field(
                        &field("dataSourceId"),
                        "Chart, table and KPI widgets need the id of one of the dashboard's data sources.",
                    ));
                }
                (_, Some(id)) if !sources.iter().any(|source| &source.id == id) => {
                    return Err(ApiError::invalid_field(
                        &field("dataSourceId"),
                        format!("The dashboard has no data source \"{id}\"."),
                    ));
                }
                _ => {}
            }
            if body.kind == WidgetKind::Chart && !matches!(body.spec, Some(Value::Object(_))) {
                return Err(ApiError::invalid_field(
                    &field("spec"),
                    "A chart needs a Vega-Lite specification (a JSON object).",
                ));
            }
            if let Some(spec) = &body.spec {
                json_size(&field("spec"), spec, MAX_SPEC_BYTES)?;
            }
            if let Some(settings) = &body.settings {
                if !settings.is_object() {
                    return Err(ApiError::invalid_field(
                        &field("settings"),
                        "Settings are a JSON object.",
                    ));
                }
                json_size(&field("settings"), settings, MAX_SPEC_BYTES)?;
            }
            if body
                .text
                .as_ref()
                .is_some_and(|text| text.chars().count() > MAX_TEXT_CHARS)
            {
                return Err(ApiError::invalid_field(
                    &field("text"),
                    format!("Text is at most {MAX_TEXT_CHARS} characters."),
                ));
            }
            let layout = body.layout;
            if layout.x > MAX_GRID
                || layout.y > MAX_GRID
                || !(1..=MAX_WIDGET_SIZE).contains(&layout.w)
                || !(1..=MAX_WIDGET_SIZE).contains(&layout.h)
            {
                return Err(ApiError::invalid_field(
                    &field("layout"),
                    format!("x and y are 0 to {MAX_GRID}; w and h are 1 to {MAX_WIDGET_SIZE}."),
                ));
            }
            Ok(Widget {
                id,
                kind: body.kind,
                title,
                data_source_id: body.data_source_id,
                spec: body.spec,
                settings: body.settings,
                text: body.text,
                layout,
            })
        })
        .collect()
}

pub fn check_filters(bodies: Vec<FilterBody>, sources: &[DataSource]) -> ApiResult<Vec<GlobalFilter>> {
    if bodies.len() > MAX_FILTERS {
        return Err(ApiError::invalid_field(
            "globalFilters",
            format!("A dashboard has at most {MAX_FILTERS} global filters."),
        ));
    }
    let mut seen = HashSet::new();
    bodies
        .into_iter()
        .enumerate()
        .map(|(index, body)| {
            let field = |name: &str| format!("globalFilters[{index}].{name}");
            let id = item_id(&field("id"), body.id, "flt", &mut seen)?;
            let name = check_title(&field("name"), &body.name)?;
            if !FILTER_TYPES.contains(&body.kind.as_str()) {
                return Err(ApiError::invalid_field(
                    &field("type"),
                    format!("The type must be one of {}.", FILTER_TYPES.join(", ")),
                ));
            }
            if let Some(default) = &body.default {
                json_size(&field("default"), default, MAX_DEFAULT_BYTES)?;
            }
            if body.targets.len() > MAX_TARGETS {
                return Err(ApiError::invalid_field(
                    &field("targets"),
                    format!("A filter has at most {MAX_TARGETS} targets."),
                ));
            }
            for (number, target) in body.targets.iter().enumerate() {
                if !sources.iter().any(|source| source.id == target.data_source_id) {
                    return Err(ApiError::invalid_field(
                        &format!("{}[{number}].dataSourceId", field("targets")),
                        format!("The dashboard has no data source \"{}\".", target.data_source_id),
                    ));
                }
                if target.parameter.is_empty() || target.parameter.len() > 64 {
                    return Err(ApiError::invalid_field(
                        &format!("{}[{number}].parameter", field("targets")),
                        "Name the parameter (1 to 64 characters) that receives the filter's value.",
                    ));
                }
            }
            Ok(GlobalFilter {
                id,
                name,
                kind: body.kind,
                default: body.default,
                targets: body.targets,
            })
        })
        .collect()
}

/// Rejects a dashboard too large to store.
pub fn check_size(dashboard: &Dashboard) -> ApiResult<()> {
    let size = serde_json::to_vec(dashboard)
        .map(|bytes| bytes.len())
        .unwrap_or(usize::MAX);
    if size > MAX_DASHBOARD_BYTES {
        return Err(ApiError::PayloadTooLarge {
            message: format!(
                "The dashboard is {size} bytes of JSON; at most {MAX_DASHBOARD_BYTES} are stored. \
                 Shorten queries or specifications, or split it into two dashboards."
            ),
        });
    }
    Ok(())
}

/// A dashboard as the API returns it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardView {
    #[serde(flatten)]
    pub dashboard: Dashboard,
    pub can_edit: bool,
}

/// A dashboard in a list: no queries, specs or widgets.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardSummary {
    pub id: DashboardId,
    pub title: String,
    pub description: String,
    pub folder_id: Option<DashboardFolderId>,
    pub owner_id: mako_core::ids::UserId,
    pub visibility: Visibility,
    pub data_source_count: usize,
    pub widget_count: usize,
    pub version: u64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub can_edit: bool,
}

impl DashboardSummary {
    pub fn new(dashboard: &Dashboard, can_edit: bool) -> Self {
        Self {
            id: dashboard.id.clone(),
            title: dashboard.title.clone(),
            description: dashboard.description.clone(),
            folder_id: dashboard.folder_id.clone(),
            owner_id: dashboard.owner_id.clone(),
            visibility: dashboard.visibility,
            data_source_count: dashboard.data_sources.len(),
            widget_count: dashboard.widgets.len(),
            version: dashboard.version,
            created_at: dashboard.created_at,
            updated_at: dashboard.updated_at,
            can_edit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_checked() {
        let mut seen = HashSet::new();
        assert_eq!(
            item_id("id", Some("revenue".into()), "ds", &mut seen).ok(),
            Some("revenue".to_owned())
        );
        assert!(item_id("id", Some("revenue".into()), "ds", &mut seen).is_err());
        assert!(item_id("id", Some("a/b".into()), "ds", &mut seen).is_err());
        assert!(item_id("id", None, "ds", &mut seen).is_ok_and(|id| id.starts_with("ds_")));
    }
}
