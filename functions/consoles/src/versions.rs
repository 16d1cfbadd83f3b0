//! A console's code versions: list, read one, restore one.

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use chrono::Utc;
use mako_core::auth::WorkspaceCaller;
use mako_core::http::{ApiPath, ApiQuery, PageParams, ok, ok_page};
use mako_core::repo::consoles::{ConsoleError, Consoles};
use mako_core::{ApiError, ApiResult, AppState};
use serde::Deserialize;

use crate::consoles::{load_visible, require_edit, stale, view};
use crate::model::{VersionView, check_connection, optional_json, parse_console_id};
use crate::tree::{Tree, Viewer};

fn parse_version(text: &str) -> ApiResult<u64> {
    text.parse::<u64>()
        .ok()
        .filter(|version| *version >= 1)
        .ok_or_else(|| ApiError::invalid_field("version", format!("{text:?} is not a version number.")))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    let id = parse_console_id(&id)?;
    let limit = page.size(50, 100)?;
    let tree = Tree::load(&state, &access).await?;
    let console = load_visible(&state, &access, &tree, &id).await?;
    let (versions, next_cursor) = Consoles::new(&*state.store)
        .versions(access.workspace_id(), &id, limit, page.cursor)
        .await?;
    let views = versions
        .into_iter()
        .map(|snapshot| VersionView::new(snapshot, console.code_version, false))
        .collect();
    Ok(ok_page(views, next_cursor))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id, version)): ApiPath<(String, String, String)>,
) -> ApiResult<Response> {
    let id = parse_console_id(&id)?;
    let version = parse_version(&version)?;
    let tree = Tree::load(&state, &access).await?;
    let console = load_visible(&state, &access, &tree, &id).await?;
    let snapshot = Consoles::new(&*state.store)
        .version(access.workspace_id(), &id, version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Console {id} has no code version {version}.")))?;
    Ok(ok(VersionView::new(snapshot, console.code_version, true)))
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RestoreBody {
    /// The console version the restore was based on; when given, a stale one is a 409.
    version: Option<u64>,
}

/// Makes an old code version current again, as a new version: nothing is lost, and the
/// code it replaces stays in the history.
pub(crate) async fn restore(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id, version)): ApiPath<(String, String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = parse_console_id(&id)?;
    let restored = parse_version(&version)?;
    let based_on = optional_json::<RestoreBody>(&body)?.version;
    let viewer = Viewer::of(&access);
    let store = Consoles::new(&*state.store);

    let tree = Tree::load(&state, &access).await?;
    let current = load_visible(&state, &access, &tree, &id).await?;
    require_edit(&viewer, &current, "restoring a version")?;
    if let Some(based_on) = based_on
        && based_on != current.version
    {
        return Err(stale(&state, &access, &tree, current, based_on).await?);
    }
    let snapshot = store
        .version(access.workspace_id(), &id, restored)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Console {id} has no code version {restored}.")))?;
    check_connection(&state, access.workspace_id(), &snapshot.connection_id, Some(snapshot.language))
        .await
        .map_err(|_| {
            ApiError::conflict(
                "CONNECTION_GONE",
                format!(
                    "Version {restored} ran on connection {}, which no longer exists in this workspace; copy its code instead.",
                    snapshot.connection_id
                ),
            )
        })?;

    let mut updated = current.clone();
    updated.language = snapshot.language;
    updated.code = snapshot.code;
    updated.connection_id = snapshot.connection_id;
    updated.database = snapshot.database;
    updated.parameters = snapshot.parameters;
    updated.version = current.version + 1;
    updated.code_version = updated.version;
    updated.updated_at = Utc::now();
    updated.updated_by = viewer.user.clone();
    let folders: Vec<_> = tree.chain(current.folder_id.as_ref()).into_iter().cloned().collect();
    match store.update(&current, &updated, folders.first(), &folders).await {
        Ok(()) => {
            tracing::info!(console_id = %id, restored, version = updated.version, "console version restored");
            Ok(ok(view(&state, &access, &tree, updated).await?))
        }
        Err(ConsoleError::Changed) => {
            let tree = Tree::load(&state, &access).await?;
            let current = load_visible(&state, &access, &tree, &id).await?;
            Err(stale(&state, &access, &tree, current, based_on.unwrap_or(updated.version - 1)).await?)
        }
        Err(ConsoleError::Retry) => Err(ApiError::conflict(
            "CONCURRENT_CHANGE",
            "The console changed while this request ran; retry it.",
        )),
        Err(ConsoleError::Store(error)) => Err(error.into()),
        Err(error) => Err(ApiError::internal(error)),
    }
}
