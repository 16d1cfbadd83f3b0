//! Request bodies, their checks, and the JSON views of consoles and folders.

use chrono::{DateTime, Utc};
use mako_core::ids::{ConnectionId, ConsoleId, FolderId, UserId, WorkspaceId};
use mako_core::repo::consoles::{CodeVersion, Console, Folder, Language, ParameterSpec, RunStats, Visibility};
use mako_core::text::clean_name;
use mako_core::{ApiError, ApiResult, AppState};
use std::collections::BTreeSet;

use mako_databases::params::{ParamType, Style};
use mako_databases::service;
use mako_databases::settings::ConnectionKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tree::{Tree, Viewer};

/// Maximum console or folder name length, in characters.
const MAX_NAME_CHARS: usize = 120;
/// Maximum description length, in characters.
const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Maximum code size, in bytes. Each version keeps a copy, and a stored item is at most
/// 400,000 bytes.
pub const MAX_CODE_BYTES: usize = 256 * 1024;
/// Maximum size of a parameter's default value, in bytes of JSON.
const MAX_DEFAULT_BYTES: usize = 4096;
/// Maximum number of parameters one console declares.
const MAX_PARAMETERS: usize = 50;

pub use mako_core::http::{double_option, optional_json};

pub fn parse_console_id(text: &str) -> ApiResult<ConsoleId> {
    text.parse()
        .map_err(|error: mako_core::ids::InvalidId| ApiError::invalid_field("id", error.to_string()))
}

pub fn parse_folder_id(field: &str, text: &str) -> ApiResult<FolderId> {
    text.parse()
        .map_err(|error: mako_core::ids::InvalidId| ApiError::invalid_field(field, error.to_string()))
}

pub fn check_name(what: &str, name: &str) -> ApiResult<String> {
    clean_name(what, name, MAX_NAME_CHARS).map_err(|message| ApiError::invalid_field("name", message))
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

pub fn check_code(code: &str) -> ApiResult<()> {
    if code.len() > MAX_CODE_BYTES {
        return Err(ApiError::invalid_field(
            "code",
            format!(
                "The code is {} bytes; at most {MAX_CODE_BYTES} are accepted.",
                code.len()
            ),
        ));
    }
    if code.contains('\0') {
        return Err(ApiError::invalid_field(
            "code",
            "The code must not contain NUL characters.",
        ));
    }
    Ok(())
}

/// A declared parameter as a request sends it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParameterBody {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    default: Option<Value>,
    required: Option<bool>,
}

/// Checks declared parameters: names unique identifiers, types known, defaults of their type.
pub fn check_parameters(bodies: Vec<ParameterBody>) -> ApiResult<Vec<ParameterSpec>> {
    if bodies.len() > MAX_PARAMETERS {
        return Err(ApiError::invalid_field(
            "parameters",
            format!("A console declares at most {MAX_PARAMETERS} parameters."),
        ));
    }
    let mut specs: Vec<ParameterSpec> = Vec::with_capacity(bodies.len());
    for body in bodies {
        let name = body.name.trim().to_owned();
        let field = format!("parameters.{name}");
        let identifier = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.len() <= 64;
        if !identifier {
            return Err(ApiError::invalid_field(
                "parameters",
                format!(
                    "{name:?} is not a parameter name; use up to 64 letters, digits and _, not starting with a digit."
                ),
            ));
        }
        if specs.iter().any(|spec| spec.name == name) {
            return Err(ApiError::invalid_field(
                &field,
                format!("The parameter {name:?} is declared twice."),
            ));
        }
        let kind = ParamType::parse(&body.kind).map_err(|message| ApiError::invalid_field(&field, message))?;
        let default = body.default.filter(|value| !value.is_null());
        if let Some(value) = &default {
            if value.to_string().len() > MAX_DEFAULT_BYTES {
                return Err(ApiError::invalid_field(
                    &field,
                    format!("Its default must be at most {MAX_DEFAULT_BYTES} bytes of JSON."),
                ));
            }
            kind.value(&name, value)
                .map_err(|error| ApiError::invalid_field(&field, format!("Its default is wrong: {error}")))?;
        }
        specs.push(ParameterSpec {
            required: body.required.unwrap_or(default.is_none()),
            kind: kind.name(),
            default,
            name,
        });
    }
    Ok(specs)
}

/// Returns the `{{name}}` placeholders of code written for a connection kind, or `None` for
/// MongoDB code that does not parse yet.
pub fn placeholders_of(kind: ConnectionKind, code: &str) -> Option<BTreeSet<String>> {
    let style = match kind {
        ConnectionKind::Postgres => Style::Numbered,
        ConnectionKind::Mysql => Style::QuestionMySql,
        ConnectionKind::Sqlite => Style::Question,
        // The JSON form takes no placeholders.
        ConnectionKind::Mongodb if code.trim_start().starts_with('{') => return Some(BTreeSet::new()),
        ConnectionKind::Mongodb => return mako_databases::mongo::shell::placeholders(code),
    };
    Some(mako_databases::params::placeholders(code, style))
}

/// Rejects code that uses a placeholder the console does not declare, which no run could
/// give a value.
pub fn check_placeholders(kind: ConnectionKind, code: &str, parameters: &[ParameterSpec]) -> ApiResult<()> {
    let Some(used) = placeholders_of(kind, code) else {
        return Ok(());
    };
    match used
        .iter()
        .find(|name| !parameters.iter().any(|spec| &&spec.name == name))
    {
        Some(name) => Err(ApiError::invalid_field(
            "parameters",
            format!(
                "The code uses {{{{{name}}}}}, which is not declared; add {{\"name\": \"{name}\", \"type\": …}} to parameters."
            ),
        )),
        None => Ok(()),
    }
}

/// Returns the console language that runs on a connection kind.
pub fn language_of(kind: ConnectionKind) -> Language {
    match kind {
        ConnectionKind::Mongodb => Language::Mongodb,
        _ => Language::Sql,
    }
}

/// Checks that a connection exists in the workspace and suits `language` (when given), and
/// returns its kind and the language.
pub async fn check_connection(
    state: &AppState,
    workspace: &WorkspaceId,
    id: &ConnectionId,
    language: Option<Language>,
) -> ApiResult<(ConnectionKind, Language)> {
    let kind = connection_kind(state, workspace, id).await?.ok_or_else(|| {
        ApiError::invalid_field(
            "connectionId",
            format!("Connection {id} was not found in this workspace."),
        )
    })?;
    let fitting = language_of(kind);
    match language {
        Some(language) if language != fitting => Err(ApiError::invalid_field(
            "language",
            format!(
                "Connection {id} is a {} connection, which runs {} consoles.",
                kind.as_str(),
                language_name(fitting)
            ),
        )),
        _ => Ok((kind, fitting)),
    }
}

/// Returns the kind of a connection of the workspace, or `None` when it does not exist.
pub async fn connection_kind(
    state: &AppState,
    workspace: &WorkspaceId,
    id: &ConnectionId,
) -> ApiResult<Option<ConnectionKind>> {
    let record = mako_core::repo::connections::Connections::new(&*state.store)
        .get(workspace, id)
        .await?;
    record.map(|record| service::kind_of(&record.value)).transpose()
}

pub fn language_name(language: Language) -> &'static str {
    match language {
        Language::Sql => "sql",
        Language::Mongodb => "mongodb",
    }
}

/// The run statistics of a console.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsView {
    pub run_count: u64,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_duration_ms: Option<u64>,
    pub last_row_count: Option<u64>,
    pub last_error: Option<String>,
}

impl From<RunStats> for StatsView {
    fn from(stats: RunStats) -> Self {
        StatsView {
            run_count: stats.run_count,
            last_run_at: stats.last_run_at,
            last_duration_ms: stats.last_duration_ms,
            last_row_count: stats.last_row_count,
            last_error: stats.last_error,
        }
    }
}

/// A console as the API shows it. Lists leave out the code.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleView {
    pub id: ConsoleId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub description: String,
    pub language: Language,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub connection_id: ConnectionId,
    pub database: Option<String>,
    pub folder_id: Option<FolderId>,
    /// Names of the folders from the root down to the console's folder.
    pub folder_path: Vec<String>,
    pub owner_id: UserId,
    pub visibility: Visibility,
    pub parameters: Vec<ParameterSpec>,
    pub version: u64,
    pub code_version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: UserId,
    pub stats: StatsView,
    /// Whether the caller may change or delete it.
    pub can_edit: bool,
}

impl ConsoleView {
    pub fn new(console: Console, stats: RunStats, tree: &Tree, viewer: &Viewer, with_code: bool) -> ConsoleView {
        ConsoleView {
            folder_path: tree.path(console.folder_id.as_ref()),
            can_edit: viewer.may_edit(&console.owner_id, console.visibility),
            stats: stats.into(),
            code: with_code.then_some(console.code),
            id: console.id,
            workspace_id: console.workspace_id,
            name: console.name,
            description: console.description,
            language: console.language,
            connection_id: console.connection_id,
            database: console.database,
            folder_id: console.folder_id,
            owner_id: console.owner_id,
            visibility: console.visibility,
            parameters: console.parameters,
            version: console.version,
            code_version: console.code_version,
            created_at: console.created_at,
            updated_at: console.updated_at,
            updated_by: console.updated_by,
        }
    }
}

/// A folder as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderView {
    pub id: FolderId,
    pub name: String,
    pub parent_id: Option<FolderId>,
    /// Names of the folders from the root down to this one, itself included.
    pub path: Vec<String>,
    pub owner_id: UserId,
    pub visibility: Visibility,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub can_edit: bool,
}

impl FolderView {
    pub fn new(folder: &Folder, tree: &Tree, viewer: &Viewer) -> FolderView {
        let mut path = tree.path(folder.parent_id.as_ref());
        path.push(folder.name.clone());
        FolderView {
            id: folder.id.clone(),
            name: folder.name.clone(),
            parent_id: folder.parent_id.clone(),
            path,
            owner_id: folder.owner_id.clone(),
            visibility: folder.visibility,
            version: folder.revision,
            created_at: folder.created_at,
            updated_at: folder.updated_at,
            can_edit: viewer.may_edit(&folder.owner_id, folder.visibility),
        }
    }
}

/// One code version as the API shows it; lists leave out the code.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    pub version: u64,
    pub language: Language,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub connection_id: ConnectionId,
    pub database: Option<String>,
    pub parameters: Vec<ParameterSpec>,
    pub author_id: UserId,
    pub created_at: DateTime<Utc>,
    /// Whether this is what the console runs now.
    pub current: bool,
}

impl VersionView {
    pub fn new(snapshot: CodeVersion, current_code_version: u64, with_code: bool) -> VersionView {
        VersionView {
            current: snapshot.version == current_code_version,
            version: snapshot.version,
            language: snapshot.language,
            code: with_code.then_some(snapshot.code),
            connection_id: snapshot.connection_id,
            database: snapshot.database,
            parameters: snapshot.parameters,
            author_id: snapshot.author_id,
            created_at: snapshot.created_at,
        }
    }
}
