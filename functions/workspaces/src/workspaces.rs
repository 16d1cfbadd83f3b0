//! Workspaces: list, create, get, update and delete.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use mako_core::access::Role;
use mako_core::auth::{AuthMethod, Caller, WorkspaceCaller};
use mako_core::http::{ApiJson, ApiQuery, PageParams, created, ok, ok_page};
use mako_core::ids::{UserId, WorkspaceId};
use mako_core::maintenance::purge_workspace;
use mako_core::repo::workspaces::{Member, Workspace, WorkspaceError, Workspaces};
use mako_core::{ApiError, ApiResult, AppState};
use rand::RngExt;
use serde::{Deserialize, Serialize};

/// Maximum length of a workspace name, in characters.
const MAX_NAME_CHARS: usize = 100;
/// Maximum length of a slug, in characters.
const MAX_SLUG_CHARS: usize = 48;
/// Attempts at a free slug when the one derived from the name is taken.
const SLUG_ATTEMPTS: usize = 5;

/// Public view of a workspace, with the caller's role in it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkspaceView {
    id: WorkspaceId,
    name: String,
    slug: String,
    role: Role,
    created_by: UserId,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl WorkspaceView {
    fn new(workspace: &Workspace, role: Role) -> Self {
        Self {
            id: workspace.id.clone(),
            name: workspace.name.clone(),
            slug: workspace.slug.clone(),
            role,
            created_by: workspace.created_by.clone(),
            created_at: workspace.created_at,
            updated_at: workspace.updated_at,
        }
    }
}

fn validate_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid_field("name", "The workspace name is missing."));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid_field(
            "name",
            format!("The workspace name must be at most {MAX_NAME_CHARS} characters long."),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "name",
            "The workspace name must not contain control characters.",
        ));
    }
    Ok(name.to_owned())
}

fn validate_slug(slug: &str) -> Result<String, ApiError> {
    let valid = !slug.is_empty()
        && slug.len() <= MAX_SLUG_CHARS
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if valid {
        Ok(slug.to_owned())
    } else {
        Err(ApiError::invalid_field(
            "slug",
            format!(
                "{slug:?} is not a valid slug: use 1 to {MAX_SLUG_CHARS} lowercase letters, digits and '-', not starting or ending with '-'."
            ),
        ))
    }
}

/// Derives a slug from a name: ASCII letters and digits kept in lower case, everything else
/// collapsed into single dashes.
fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_end_matches('-').chars().take(MAX_SLUG_CHARS - 5).collect();
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() { "workspace".to_owned() } else { slug }
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..4)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateWorkspace {
    name: String,
    slug: Option<String>,
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateWorkspace>,
) -> ApiResult<Response> {
    caller.require_session("create workspaces")?;
    let name = validate_name(&request.name)?;
    let requested_slug = request.slug.as_deref().map(validate_slug).transpose()?;

    let now = Utc::now();
    let workspaces = Workspaces::new(&*state.store);
    let base = requested_slug.clone().unwrap_or_else(|| slugify(&name));
    for attempt in 0..SLUG_ATTEMPTS {
        let slug = if attempt == 0 {
            base.clone()
        } else {
            format!("{base}-{}", random_suffix())
        };
        let workspace = Workspace {
            id: WorkspaceId::new(),
            name: name.clone(),
            slug,
            created_by: caller.user.id.clone(),
            created_at: now,
            updated_at: now,
            owner_count: 1,
            deleting: false,
        };
        let owner = Member {
            workspace_id: workspace.id.clone(),
            user_id: caller.user.id.clone(),
            role: Role::Owner,
            joined_at: now,
        };
        match workspaces.create(&workspace, &owner).await {
            Ok(()) => {
                tracing::info!(workspace_id = %workspace.id, user_id = %caller.user.id, "workspace created");
                return Ok(created(WorkspaceView::new(&workspace, Role::Owner)));
            }
            Err(WorkspaceError::SlugTaken) if requested_slug.is_some() => {
                return Err(ApiError::conflict(
                    "SLUG_TAKEN",
                    format!("The slug {:?} is taken; choose another.", workspace.slug),
                ));
            }
            Err(WorkspaceError::SlugTaken) => continue,
            Err(error) => return Err(ApiError::internal(error)),
        }
    }
    Err(ApiError::conflict(
        "SLUG_TAKEN",
        format!("No free slug near {base:?}; pass a slug explicitly."),
    ))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    let limit = page.size(50, 200)?;
    let workspaces = Workspaces::new(&*state.store);

    // An API key lists only its own workspace.
    if let AuthMethod::ApiKey { key, role } = &caller.method {
        let workspace = workspaces.get(&key.workspace_id).await?;
        let views: Vec<WorkspaceView> = workspace
            .filter(|workspace| !workspace.value.deleting)
            .map(|workspace| WorkspaceView::new(&workspace.value, *role))
            .into_iter()
            .collect();
        return Ok(ok_page(views, None));
    }

    let (memberships, next_cursor) = workspaces.memberships(caller.user_id(), limit, page.cursor).await?;
    let ids: Vec<WorkspaceId> = memberships.iter().map(|member| member.workspace_id.clone()).collect();
    let found = workspaces.get_many(&ids).await?;
    let views = memberships
        .iter()
        .zip(found)
        .filter_map(|(member, workspace)| {
            workspace
                .filter(|workspace| !workspace.deleting)
                .map(|workspace| WorkspaceView::new(&workspace, member.role))
        })
        .collect();
    Ok(ok_page(views, next_cursor))
}

pub(crate) async fn get(access: WorkspaceCaller) -> ApiResult<Response> {
    Ok(ok(WorkspaceView::new(&access.workspace.value, access.role)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateWorkspace {
    name: Option<String>,
    slug: Option<String>,
}

pub(crate) async fn update(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiJson(request): ApiJson<UpdateWorkspace>,
) -> ApiResult<Response> {
    access.require(Role::Admin, "renaming the workspace")?;
    let name = request.name.as_deref().map(validate_name).transpose()?;
    let slug = request.slug.as_deref().map(validate_slug).transpose()?;

    let workspaces = Workspaces::new(&*state.store);
    let mut current = access.workspace.clone();
    // A concurrent membership change bumps the version; re-read and try again.
    for _ in 0..3 {
        let mut updated = current.value.clone();
        if let Some(name) = &name {
            updated.name = name.clone();
        }
        if let Some(slug) = &slug {
            updated.slug = slug.clone();
        }
        updated.updated_at = Utc::now();

        match workspaces.update(&current, &updated).await {
            Ok(()) => return Ok(ok(WorkspaceView::new(&updated, access.role))),
            Err(WorkspaceError::SlugTaken) => {
                return Err(ApiError::conflict(
                    "SLUG_TAKEN",
                    format!("The slug {:?} is taken; choose another.", updated.slug),
                ));
            }
            Err(WorkspaceError::Changed) => {
                current = workspaces
                    .get(access.workspace_id())
                    .await?
                    .filter(|workspace| !workspace.value.deleting)
                    .ok_or_else(|| {
                        ApiError::not_found(format!("Workspace {} was not found.", access.workspace_id()))
                    })?;
            }
            Err(error) => return Err(ApiError::internal(error)),
        }
    }
    Err(ApiError::conflict(
        "CONCURRENT_CHANGE",
        "The workspace kept changing while being updated; retry.",
    ))
}

pub(crate) async fn delete(State(state): State<AppState>, access: WorkspaceCaller) -> ApiResult<Response> {
    access.require(Role::Owner, "deleting the workspace")?;
    let workspaces = Workspaces::new(&*state.store);
    let workspace_id = access.workspace_id().clone();

    // Hide the workspace first; a concurrent membership change only means reading it again.
    let mut current = access.workspace.clone();
    let mut marked = false;
    for _ in 0..3 {
        match workspaces.mark_deleting(&current).await {
            Ok(()) => {
                marked = true;
                break;
            }
            Err(WorkspaceError::Changed) => match workspaces.get(&workspace_id).await? {
                Some(workspace) => current = workspace,
                None => return Err(ApiError::not_found(format!("Workspace {workspace_id} was not found."))),
            },
            Err(error) => return Err(ApiError::internal(error)),
        }
    }
    if !marked {
        return Err(ApiError::conflict(
            "CONCURRENT_CHANGE",
            "The workspace kept changing while being deleted; retry.",
        ));
    }

    let mut workspace = current.value;
    workspace.deleting = true;
    // If this fails, the workspace stays hidden and the maintenance task finishes the purge.
    let (removed_items, removed_blobs) = purge_workspace(&state, &workspace).await.map_err(ApiError::internal)?;
    tracing::info!(workspace_id = %workspace_id, removed_items, removed_blobs, "workspace deleted");
    Ok(ok(serde_json::json!({ "id": workspace_id, "deleted": true })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_derive_from_names() {
        assert_eq!(slugify("Revenue Ops — EMEA!"), "revenue-ops-emea");
        assert_eq!(slugify("  ***  "), "workspace");
        assert_eq!(slugify("Données 2026"), "donn-es-2026");
        assert!(slugify(&"x".repeat(200)).len() <= MAX_SLUG_CHARS - 5);
    }

    #[test]
    fn slugs_are_validated() {
        assert!(validate_slug("sales-team-2").is_ok());
        for slug in ["", "-a", "a-", "UPPER", "with space", "ü"] {
            assert!(validate_slug(slug).is_err(), "{slug:?}");
        }
    }
}
