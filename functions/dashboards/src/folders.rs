//! Dashboard folders: list, create, rename, move and delete.
//!
//! Folders are visible to every member of the workspace and nest at most [`MAX_DEPTH`]
//! deep. A move checks that the folders above the new place are unchanged, so two
//! concurrent moves cannot make a cycle. A folder that is not empty is deleted only when
//! the request sets `?moveContents=true`, which first moves its contents to its parent.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use mako_core::auth::WorkspaceCaller;
use mako_core::http::{ApiJson, ApiPath, ApiQuery, created, ok};
use mako_core::ids::DashboardFolderId;
use mako_core::repo::dashboards::{DashboardError, DashboardFolder, Dashboards};
use mako_core::{ApiError, ApiResult, AppState};
use serde::Deserialize;
use serde_json::json;

use mako_core::access::Viewer;

use crate::dashboards::load_folder;
use crate::model::{check_title, double_option, parse_folder_id};

/// Folders nest at most this deep.
pub const MAX_DEPTH: usize = 8;
/// Folders one workspace may hold.
const MAX_FOLDERS: usize = 1_000;
const ATTEMPTS: usize = 6;

fn concurrent() -> ApiError {
    ApiError::conflict(
        "CONCURRENT_CHANGE",
        "A folder involved kept changing while this request ran; send it again.",
    )
}

/// Every folder of the workspace, by id.
struct Tree(HashMap<DashboardFolderId, DashboardFolder>);

impl Tree {
    async fn load(state: &AppState, access: &WorkspaceCaller) -> ApiResult<Tree> {
        let folders = Dashboards::new(&*state.store)
            .all_folders(access.workspace_id())
            .await?;
        Ok(Tree(
            folders.into_iter().map(|folder| (folder.id.clone(), folder)).collect(),
        ))
    }

    /// Returns the folder and those above it, innermost first, stopping at `MAX_DEPTH + 1`.
    fn chain(&self, id: Option<&DashboardFolderId>) -> Vec<DashboardFolder> {
        let mut chain = Vec::new();
        let mut next = id;
        while let Some(id) = next {
            let Some(folder) = self.0.get(id) else { break };
            if chain.len() > MAX_DEPTH {
                break;
            }
            chain.push(folder.clone());
            next = folder.parent_id.as_ref();
        }
        chain
    }

    /// Height of the subtree under `id`, the folder itself counted as 1.
    fn height(&self, id: &DashboardFolderId) -> usize {
        1 + self
            .0
            .values()
            .filter(|folder| folder.parent_id.as_ref() == Some(id))
            .map(|child| self.height(&child.id))
            .max()
            .unwrap_or(0)
    }
}

/// `GET /api/workspaces/{wid}/dashboard-folders`.
pub async fn list(State(state): State<AppState>, access: WorkspaceCaller) -> ApiResult<Response> {
    let mut folders = Dashboards::new(&*state.store)
        .all_folders(access.workspace_id())
        .await?;
    folders.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.id.cmp(&b.id)));
    Ok(ok(folders))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBody {
    name: String,
    parent_id: Option<String>,
}

/// `POST /api/workspaces/{wid}/dashboard-folders`.
pub async fn create(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<Response> {
    let viewer = Viewer::of(&access);
    viewer.require_member("creating a dashboard folder")?;
    let name = check_title("name", &body.name)?;
    let parent_id = body
        .parent_id
        .as_deref()
        .map(|text| parse_folder_id("parentId", text))
        .transpose()?;
    for _ in 0..ATTEMPTS {
        let tree = Tree::load(&state, &access).await?;
        if tree.0.len() >= MAX_FOLDERS {
            return Err(ApiError::conflict(
                "LIMIT_REACHED",
                format!("The workspace already has {MAX_FOLDERS} dashboard folders; delete some first."),
            ));
        }
        let parent = match &parent_id {
            Some(id) => Some(load_folder(&state, &access, "parentId", id).await?),
            None => None,
        };
        let ancestors = tree.chain(parent_id.as_ref());
        if ancestors.len() >= MAX_DEPTH {
            return Err(ApiError::invalid_field(
                "parentId",
                format!("Folders nest at most {MAX_DEPTH} deep."),
            ));
        }
        let now = Utc::now();
        let folder = DashboardFolder {
            id: DashboardFolderId::new(),
            workspace_id: access.workspace_id().clone(),
            name: name.clone(),
            parent_id: parent_id.clone(),
            child_count: 0,
            version: 1,
            created_by: viewer.user.clone(),
            created_at: now,
            updated_at: now,
        };
        match Dashboards::new(&*state.store)
            .create_folder(&folder, parent.as_ref(), &ancestors)
            .await
        {
            Ok(()) => return Ok(created(folder)),
            Err(DashboardError::Retry | DashboardError::Changed) => continue,
            Err(DashboardError::Store(error)) => return Err(error.into()),
        }
    }
    Err(concurrent())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateBody {
    /// The folder's version this change was based on, checked when present.
    version: Option<u64>,
    name: Option<String>,
    /// A folder id, or `null` for the top level.
    #[serde(default, deserialize_with = "double_option")]
    parent_id: Option<Option<String>>,
}

fn folder_id(params: &HashMap<String, String>) -> ApiResult<DashboardFolderId> {
    parse_folder_id("folderId", params.get("fid").map(String::as_str).unwrap_or_default())
}

fn not_found(id: &DashboardFolderId) -> ApiError {
    ApiError::not_found(format!("Dashboard folder {id} was not found in this workspace."))
}

/// `PUT /api/workspaces/{wid}/dashboard-folders/{fid}`: rename and/or move.
pub async fn update(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath(params): ApiPath<HashMap<String, String>>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> ApiResult<Response> {
    let id = folder_id(&params)?;
    Viewer::of(&access).require_member("changing a dashboard folder")?;
    let name = body.name.as_deref().map(|name| check_title("name", name)).transpose()?;
    let new_parent_id = match &body.parent_id {
        Some(parent) => Some(
            parent
                .as_deref()
                .map(|text| parse_folder_id("parentId", text))
                .transpose()?,
        ),
        None => None,
    };
    for _ in 0..ATTEMPTS {
        let tree = Tree::load(&state, &access).await?;
        let current = tree.0.get(&id).cloned().ok_or_else(|| not_found(&id))?;
        if let Some(based_on) = body.version
            && based_on != current.version
        {
            return Err(ApiError::Conflict {
                code: "VERSION_CONFLICT",
                message: format!(
                    "Dashboard folder {id} is at version {} but this change was based on version {based_on}; \
                     read it again and resend the change.",
                    current.version
                ),
                details: Some(json!({ "currentVersion": current.version, "current": current })),
            });
        }
        let mut next = current.clone();
        if let Some(name) = &name {
            next.name = name.clone();
        }
        if let Some(parent) = &new_parent_id {
            next.parent_id = parent.clone();
        }
        next.version = current.version + 1;
        next.updated_at = Utc::now();

        let moved = next.parent_id != current.parent_id;
        let ancestors = tree.chain(next.parent_id.as_ref());
        if moved {
            if ancestors.iter().any(|folder| folder.id == id) {
                return Err(ApiError::invalid_field(
                    "parentId",
                    "A folder cannot move into itself or into a folder inside it.",
                ));
            }
            if let Some(parent) = &next.parent_id
                && !tree.0.contains_key(parent)
            {
                return Err(ApiError::invalid_field(
                    "parentId",
                    format!("Dashboard folder {parent} was not found in this workspace."),
                ));
            }
            if ancestors.len() + tree.height(&id) > MAX_DEPTH {
                return Err(ApiError::invalid_field(
                    "parentId",
                    format!("Folders nest at most {MAX_DEPTH} deep; this move would nest deeper."),
                ));
            }
        }
        let old_parent = current
            .parent_id
            .as_ref()
            .and_then(|parent| tree.0.get(parent))
            .cloned();
        let new_parent = next.parent_id.as_ref().and_then(|parent| tree.0.get(parent)).cloned();
        match Dashboards::new(&*state.store)
            .update_folder(&current, &next, old_parent.as_ref(), new_parent.as_ref(), &ancestors)
            .await
        {
            Ok(()) => return Ok(ok(next)),
            Err(DashboardError::Retry | DashboardError::Changed) => continue,
            Err(DashboardError::Store(error)) => return Err(error.into()),
        }
    }
    Err(concurrent())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteQuery {
    /// Move the folder's dashboards and folders to its parent first.
    #[serde(default)]
    move_contents: bool,
}

/// `DELETE /api/workspaces/{wid}/dashboard-folders/{fid}`: 409 when it is not empty,
/// unless `?moveContents=true` first moves its contents to its parent.
pub async fn delete(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath(params): ApiPath<HashMap<String, String>>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> ApiResult<Response> {
    let id = folder_id(&params)?;
    Viewer::of(&access).require_member("deleting a dashboard folder")?;
    let repo = Dashboards::new(&*state.store);
    let mut moved = 0usize;
    for _ in 0..ATTEMPTS * 4 {
        let folder = repo
            .folder(access.workspace_id(), &id)
            .await?
            .ok_or_else(|| not_found(&id))?;
        if folder.child_count > 0 {
            if !query.move_contents {
                return Err(ApiError::Conflict {
                    code: "FOLDER_NOT_EMPTY",
                    message: format!(
                        "Dashboard folder {id} holds {} dashboards or folders; move or delete them, or send \
                         ?moveContents=true to move them to its parent.",
                        folder.child_count
                    ),
                    details: Some(json!({ "childCount": folder.child_count })),
                });
            }
            moved += move_children(&state, &access, &folder).await?;
            continue;
        }
        let parent = match &folder.parent_id {
            Some(parent) => repo.folder(access.workspace_id(), parent).await?,
            None => None,
        };
        match repo.delete_folder(&folder, parent.as_ref()).await {
            Ok(()) => return Ok(ok(json!({ "id": id, "deleted": true, "moved": moved }))),
            Err(DashboardError::Retry | DashboardError::Changed) => continue,
            Err(DashboardError::Store(error)) => return Err(error.into()),
        }
    }
    Err(concurrent())
}

/// Moves every dashboard and folder directly inside `folder` to its parent; returns how many
/// moved. Each move is its own transaction, so the tree is consistent at every step.
async fn move_children(state: &AppState, access: &WorkspaceCaller, folder: &DashboardFolder) -> ApiResult<usize> {
    let repo = Dashboards::new(&*state.store);
    let workspace = access.workspace_id();
    let mut moved = 0;
    for dashboard in repo.all(workspace).await? {
        if dashboard.folder_id.as_ref() != Some(&folder.id) {
            continue;
        }
        let source = repo.folder(workspace, &folder.id).await?;
        let target = match &folder.parent_id {
            Some(parent) => repo.folder(workspace, parent).await?,
            None => None,
        };
        let mut next = dashboard.clone();
        next.folder_id = folder.parent_id.clone();
        next.version = dashboard.version + 1;
        next.updated_at = Utc::now();
        match repo.update(&dashboard, &next, source.as_ref(), target.as_ref()).await {
            Ok(()) => moved += 1,
            Err(DashboardError::Retry | DashboardError::Changed) => {}
            Err(DashboardError::Store(error)) => return Err(error.into()),
        }
    }
    for child in repo.all_folders(workspace).await? {
        if child.parent_id.as_ref() != Some(&folder.id) {
            continue;
        }
        let source = repo.folder(workspace, &folder.id).await?;
        let target = match &folder.parent_id {
            Some(parent) => repo.folder(workspace, parent).await?,
            None => None,
        };
        let mut next = child.clone();
        next.parent_id = folder.parent_id.clone();
        next.version = child.version + 1;
        next.updated_at = Utc::now();
        match repo
            .update_folder(&child, &next, source.as_ref(), target.as_ref(), &[])
            .await
        {
            Ok(()) => moved += 1,
            Err(DashboardError::Retry | DashboardError::Changed) => {}
            Err(DashboardError::Store(error)) => return Err(error.into()),
        }
    }
    Ok(moved)
}
