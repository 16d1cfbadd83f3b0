//! Console folders: list, create, rename, move, change visibility, delete.

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use mako_core::auth::{Attempt, WorkspaceCaller, retry_on_change};
use mako_core::http::{ApiJson, ApiPath, ApiQuery, created, ok};
use mako_core::ids::FolderId;
use mako_core::repo::consoles::{ConsoleError, Consoles, Folder, FolderMove, Visibility, name_key};
use mako_core::{ApiError, ApiResult, AppState};
use serde::Deserialize;
use serde_json::json;

use crate::model::{FolderView, check_name, double_option, parse_folder_id};
use crate::tree::{MAX_DEPTH, Tree, Viewer, check_private_chain};

/// Attempts at a change that keeps meeting concurrent changes to related folders.
const ATTEMPTS: usize = 6;
/// Folders one change may check unchanged; a transaction takes at most 100 writes, and the
/// change itself needs up to 6.
const MAX_UNCHANGED: usize = 90;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateBody {
    name: String,
    parent_id: Option<String>,
    /// `private` (the default) or `workspace`.
    visibility: Option<Visibility>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateBody {
    /// The version the change was based on; when given, a stale one is a 409.
    version: Option<u64>,
    name: Option<String>,
    /// A folder id, or `null` for the top level.
    #[serde(default, deserialize_with = "double_option")]
    parent_id: Option<Option<String>>,
    visibility: Option<Visibility>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct DeleteParams {
    /// Delete the consoles and folders inside too.
    #[serde(default)]
    delete_contents: bool,
}

fn name_taken(name: &str) -> ApiError {
    ApiError::conflict(
        "NAME_TAKEN",
        format!("A folder named {name:?} already exists there; pick another name."),
    )
}

/// Reads a folder the caller can see; hidden ones are 404 like missing ones.
fn visible<'t>(tree: &'t Tree, viewer: &Viewer, id: &FolderId) -> ApiResult<&'t Folder> {
    match tree.get(id) {
        Some(folder) if tree.folder_visible(viewer, folder) => Ok(folder),
        _ => Err(ApiError::not_found(format!(
            "Folder {id} was not found in this workspace."
        ))),
    }
}

fn require_edit(viewer: &Viewer, folder: &Folder, action: &str) -> ApiResult<()> {
    viewer.require_member(action)?;
    if viewer.may_edit(&folder.owner_id, folder.visibility) {
        return Ok(());
    }
    Err(ApiError::Forbidden {
        code: "NOT_EDITABLE",
        message: format!(
            "Folder {} belongs to another member; {action} needs its owner, an admin or an owner of the workspace.",
            folder.id
        ),
    })
}

pub(crate) async fn list(State(state): State<AppState>, access: WorkspaceCaller) -> ApiResult<Response> {
    let viewer = Viewer::of(&access);
    let tree = Tree::load(&state, &access).await?;
    let mut views: Vec<FolderView> = tree
        .folders()
        .filter(|folder| tree.folder_visible(&viewer, folder))
        .map(|folder| FolderView::new(folder, &tree, &viewer))
        .collect();
    views.sort_by_key(|view| {
        (
            view.path.iter().map(|name| name_key(name)).collect::<Vec<_>>(),
            view.id.clone(),
        )
    });
    Ok(ok(views))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<Response> {
    let viewer = Viewer::of(&access);
    viewer.require_member("creating folders")?;
    let name = check_name("folder name", &body.name)?;
    let parent_id = body
        .parent_id
        .as_deref()
        .map(|id| parse_folder_id("parentId", id))
        .transpose()?;
    let now = Utc::now();
    let folder = Folder {
        id: FolderId::new(),
        workspace_id: access.workspace_id().clone(),
        name,
        parent_id,
        owner_id: viewer.user.clone(),
        visibility: body.visibility.unwrap_or(Visibility::Private),
        child_count: 0,
        version: 1,
        revision: 1,
        created_at: now,
        updated_at: now,
    };
    let max = state.config.consoles.max_folders_per_workspace;
    let (folder, tree) = retry_on_change(&state, access.clone(), |access| {
        let state = state.clone();
        let folder = folder.clone();
        async move {
            let viewer = Viewer::of(&access);
            viewer.require_member("creating folders")?;
            let tree = Tree::load(&state, &access).await?;
            let parents = tree.place(&viewer, "parentId", folder.parent_id.as_ref(), &folder.owner_id)?;
            if let Some(parent) = parents.first()
                && tree.depth(&parent.id) >= MAX_DEPTH
            {
                return Err(ApiError::invalid_field(
                    "parentId",
                    format!("Folders nest at most {MAX_DEPTH} levels deep."),
                ));
            }
            match Consoles::new(&*state.store)
                .create_folder(&access.workspace, &folder, &parents, max)
                .await
            {
                Ok(()) => Ok(Attempt::Done((folder, tree))),
                Err(ConsoleError::TooMany { max }) => Err(ApiError::conflict(
                    "TOO_MANY_FOLDERS",
                    format!(
                        "A workspace can hold at most {max} console folders (MAKO_MAX_CONSOLE_FOLDERS_PER_WORKSPACE)."
                    ),
                )),
                Err(ConsoleError::NameTaken) => Err(name_taken(&folder.name)),
                Err(ConsoleError::Changed | ConsoleError::Retry) => Ok(Attempt::Changed),
                Err(ConsoleError::Store(error)) => Err(error.into()),
            }
        }
    })
    .await?;
    tracing::info!(workspace_id = %folder.workspace_id, folder_id = %folder.id, "console folder created");
    Ok(created(FolderView::new(&folder, &tree, &Viewer::of(&access))))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> ApiResult<Response> {
    let id = parse_folder_id("id", &id)?;
    let viewer = Viewer::of(&access);
    viewer.require_member("changing folders")?;
    let name = body
        .name
        .as_deref()
        .map(|name| check_name("folder name", name))
        .transpose()?;
    let parent_id: Option<Option<FolderId>> = match &body.parent_id {
        None => None,
        Some(None) => Some(None),
        Some(Some(text)) => Some(Some(parse_folder_id("parentId", text)?)),
    };

    for _ in 0..ATTEMPTS {
        let tree = Tree::load(&state, &access).await?;
        let current = visible(&tree, &viewer, &id)?;
        require_edit(&viewer, current, "changing it")?;
        if let Some(version) = body.version
            && version != current.revision
        {
            return Err(ApiError::Conflict {
                code: "VERSION_CONFLICT",
                message: format!(
                    "The folder is at version {} but this change was based on version {version}.",
                    current.revision
                ),
                details: Some(
                    json!({ "currentVersion": current.revision, "current": FolderView::new(current, &tree, &viewer) }),
                ),
            });
        }

        let mut updated = current.clone();
        if let Some(name) = &name {
            updated.name = name.clone();
        }
        if let Some(visibility) = body.visibility
            && visibility != current.visibility
        {
            if current.owner_id != viewer.user {
                return Err(ApiError::forbidden("Only the folder's owner can change who sees it."));
            }
            updated.visibility = visibility;
        }
        if let Some(parent_id) = &parent_id {
            updated.parent_id = parent_id.clone();
        }
        let moved = updated.parent_id != current.parent_id;
        let new_parent = match &updated.parent_id {
            Some(parent) if moved => {
                let folder = tree.destination(&viewer, "parentId", parent)?;
                if tree.is_within(parent, &id) {
                    return Err(ApiError::invalid_field(
                        "parentId",
                        "A folder cannot move into itself or one of its subfolders.",
                    ));
                }
                if tree.depth(parent) + 1 + tree.height(&id) > MAX_DEPTH {
                    return Err(ApiError::invalid_field(
                        "parentId",
                        format!("Folders nest at most {MAX_DEPTH} levels deep, and this move would go deeper."),
                    ));
                }
                Some(folder)
            }
            Some(parent) => tree.get(parent),
            None => None,
        };
        let old_parent = current.parent_id.as_ref().and_then(|parent| tree.get(parent));

        // Nothing of another member may end up inside a private folder of someone else: check
        // the owners of everything inside against the private folders at the new place.
        let below = tree.below(&id);
        let private_now = updated.visibility == Visibility::Private && current.visibility != Visibility::Private;
        let mut unchanged: Vec<Folder> = tree.chain(updated.parent_id.as_ref()).into_iter().cloned().collect();
        if moved || private_now {
            let consoles = Consoles::new(&*state.store).all_consoles(access.workspace_id()).await?;
            let mut owners: Vec<&mako_core::ids::UserId> = vec![&updated.owner_id];
            owners.extend(below.iter().map(|folder| &folder.owner_id));
            owners.extend(
                consoles
                    .iter()
                    .filter(|console| {
                        console
                            .folder_id
                            .as_ref()
                            .is_some_and(|folder| tree.is_within(folder, &id))
                    })
                    .map(|console| &console.owner_id),
            );
            let mut chain = vec![&updated];
            chain.extend(tree.chain(updated.parent_id.as_ref()));
            let field = if moved { "parentId" } else { "visibility" };
            check_private_chain(&chain, &owners, field)?;
            // Folders below are checked unchanged, so nothing is added inside meanwhile.
            unchanged.extend(below.iter().map(|folder| (*folder).clone()));
        }
        if unchanged.len() > MAX_UNCHANGED {
            return Err(ApiError::conflict(
                "FOLDER_TOO_LARGE",
                format!(
                    "This change would have to lock {} folders, and at most {MAX_UNCHANGED} can be; move its subfolders separately.",
                    unchanged.len()
                ),
            ));
        }
        updated.version = current.version + 1;
        updated.revision = current.revision + 1;
        updated.updated_at = Utc::now();

        let moving = FolderMove {
            old_parent: if moved { old_parent } else { None },
            new_parent: if moved { new_parent } else { None },
            unchanged: &unchanged,
        };
        match Consoles::new(&*state.store)
            .update_folder(current, &updated, moving)
            .await
        {
            Ok(()) => {
                tracing::info!(folder_id = %id, "console folder changed");
                let tree = Tree::load(&state, &access).await?;
                return Ok(ok(FolderView::new(&updated, &tree, &viewer)));
            }
            Err(ConsoleError::NameTaken) => return Err(name_taken(&updated.name)),
            Err(ConsoleError::Changed | ConsoleError::Retry) => continue,
            Err(ConsoleError::Store(error)) => return Err(error.into()),
            Err(error @ ConsoleError::TooMany { .. }) => return Err(ApiError::internal(error)),
        }
    }
    Err(ApiError::conflict(
        "CONCURRENT_CHANGE",
        "The folders kept changing while this request ran; retry it.",
    ))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> ApiResult<Response> {
    let id = parse_folder_id("id", &id)?;
    let viewer = Viewer::of(&access);
    viewer.require_member("deleting folders")?;
    let tree = Tree::load(&state, &access).await?;
    let folder = visible(&tree, &viewer, &id)?;
    require_edit(&viewer, folder, "deleting it")?;

    let mut removed_consoles = 0;
    let mut removed_folders = 0;
    if folder.child_count > 0 {
        if !params.delete_contents {
            return Err(ApiError::Conflict {
                code: "FOLDER_NOT_EMPTY",
                message: format!(
                    "Folder {id} is not empty: {} items are directly inside, counting other members' private consoles. Move them out first, or send deleteContents=true to delete them too.",
                    folder.child_count
                ),
                details: Some(json!({ "childCount": folder.child_count })),
            });
        }
        (removed_consoles, removed_folders) = delete_contents(&state, &access, &tree, &id).await?;
    }

    retry_on_change(&state, access, |access| {
        let state = state.clone();
        let id = id.clone();
        async move { delete_empty(&state, &access, &id, None).await }
    })
    .await?;
    tracing::info!(folder_id = %id, removed_consoles, removed_folders, "console folder deleted");
    Ok(ok(json!({
        "id": id,
        "deleted": true,
        "deletedConsoles": removed_consoles,
        "deletedFolders": removed_folders,
    })))
}

/// Deletes everything inside a folder, consoles first, then folders from the deepest up, so
/// an interruption leaves a consistent tree that a second request finishes. Refused before
/// anything is deleted when the caller could not delete every item inside.
async fn delete_contents(
    state: &AppState,
    access: &WorkspaceCaller,
    tree: &Tree,
    id: &FolderId,
) -> ApiResult<(u64, u64)> {
    let viewer = Viewer::of(access);
    let store = Consoles::new(&*state.store);
    let consoles: Vec<_> = store
        .all_consoles(access.workspace_id())
        .await?
        .into_iter()
        .filter(|console| {
            console
                .folder_id
                .as_ref()
                .is_some_and(|folder| tree.is_within(folder, id))
        })
        .collect();
    let mut folders: Vec<&Folder> = tree
        .folders()
        .filter(|folder| folder.id != *id && tree.is_within(&folder.id, id))
        .collect();
    let blocked: Vec<&mako_core::ids::UserId> = consoles
        .iter()
        .filter(|console| {
            !(viewer.may_edit(&console.owner_id, console.visibility)
                && tree.path_visible(&viewer, console.folder_id.as_ref()))
        })
        .map(|console| &console.owner_id)
        .chain(
            folders
                .iter()
                .filter(|folder| {
                    !(viewer.may_edit(&folder.owner_id, folder.visibility) && tree.folder_visible(&viewer, folder))
                })
                .map(|folder| &folder.owner_id),
        )
        .collect();
    if !blocked.is_empty() {
        let mut owners: Vec<String> = blocked.iter().map(ToString::to_string).collect();
        owners.sort();
        owners.dedup();
        return Err(ApiError::Conflict {
            code: "FOLDER_NOT_EMPTY",
            message: format!(
                "Folder {id} contains {} items you may not delete, such as other members' private consoles, so nothing was deleted. Their owners ({}) can move or delete them.",
                blocked.len(),
                owners.join(", ")
            ),
            details: Some(json!({ "blockedItems": blocked.len(), "ownerIds": owners })),
        });
    }

    let mut removed_consoles = 0;
    for console in consoles {
        let console_id = console.id.clone();
        let deleted = retry_on_change(state, access.clone(), |access| {
            let state = state.clone();
            let console_id = console_id.clone();
            let id = id.clone();
            async move {
                let store = Consoles::new(&*state.store);
                let tree = Tree::load(&state, &access).await?;
                let Some(console) = store.get(access.workspace_id(), &console_id).await? else {
                    return Ok(Attempt::Done(false));
                };
                // Read again: a console moved out, or made private, meanwhile is left alone.
                let viewer = Viewer::of(&access);
                let still_inside = console
                    .folder_id
                    .as_ref()
                    .is_some_and(|folder| tree.is_within(folder, &id));
                if !still_inside
                    || !viewer.may_edit(&console.owner_id, console.visibility)
                    || !tree.path_visible(&viewer, console.folder_id.as_ref())
                {
                    return Ok(Attempt::Done(false));
                }
                let folder = console.folder_id.as_ref().and_then(|folder| tree.get(folder));
                match store.delete(&access.workspace, &console, folder).await {
                    Ok(()) => Ok(Attempt::Done(true)),
                    Err(ConsoleError::Changed | ConsoleError::Retry) => Ok(Attempt::Changed),
                    Err(ConsoleError::Store(error)) => Err(error.into()),
                    Err(error) => Err(ApiError::internal(error)),
                }
            }
        })
        .await?;
        removed_consoles += u64::from(deleted);
    }

    folders.sort_by_key(|folder| std::cmp::Reverse(tree.depth(&folder.id)));
    let mut removed_folders = 0;
    for folder in folders {
        let folder_id = folder.id.clone();
        let deleted = retry_on_change(state, access.clone(), |access| {
            let state = state.clone();
            let folder_id = folder_id.clone();
            let root = id.clone();
            async move { delete_empty(&state, &access, &folder_id, Some(&root)).await }
        })
        .await?;
        removed_folders += u64::from(deleted);
    }
    Ok((removed_consoles, removed_folders))
}

/// Deletes a folder that must be empty by now and returns whether it did. One already gone
/// counts as deleted. With `root`, a folder no longer below it, or that the caller may no
/// longer delete, is left alone.
async fn delete_empty(
    state: &AppState,
    access: &WorkspaceCaller,
    id: &FolderId,
    root: Option<&FolderId>,
) -> ApiResult<Attempt<bool>> {
    let tree = Tree::load(state, access).await?;
    let Some(folder) = tree.get(id) else {
        return Ok(Attempt::Done(false));
    };
    let viewer = Viewer::of(access);
    if let Some(root) = root
        && !(tree.is_within(id, root)
            && viewer.may_edit(&folder.owner_id, folder.visibility)
            && tree.folder_visible(&viewer, folder))
    {
        return Ok(Attempt::Done(false));
    }
    if folder.child_count > 0 {
        return Err(ApiError::conflict(
            "FOLDER_NOT_EMPTY",
            format!("Something was added to folder {id} while it was being deleted; look inside and retry."),
        ));
    }
    let parent = folder.parent_id.as_ref().and_then(|parent| tree.get(parent));
    match Consoles::new(&*state.store)
        .delete_folder(&access.workspace, folder, parent)
        .await
    {
        Ok(()) => Ok(Attempt::Done(true)),
        Err(ConsoleError::Changed | ConsoleError::Retry) => Ok(Attempt::Changed),
        Err(ConsoleError::Store(error)) => Err(error.into()),
        Err(error @ (ConsoleError::NameTaken | ConsoleError::TooMany { .. })) => Err(ApiError::internal(error)),
    }
}
