//! Workspaces: list, create, get, update and delete.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use mako_core::access::Role;
use mako_core::auth::{AuthMethod, Caller, WorkspaceCaller};
use mako_core::http::{ApiJson, ApiQuery, PageParams, created, ok, ok_page};
use mako_core::ids::{UserId, WorkspaceId};
use mako_core::maintenance::purge_workspace;
use mako_core::repo::connections::ConnectionRecord;
use mako_core::repo::workspaces::{Member, Workspace, WorkspaceError, Workspaces};
use mako_core::text::clean_name;
use mako_core::{ApiError, ApiResult, AppState};

use mako_core::auth::{Attempt, retry_on_change};
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
    /// Agent models turned off in this workspace.
    disabled_models: Vec<String>,
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
            disabled_models: workspace.disabled_models.clone(),
        }
    }
}

fn validate_name(name: &str) -> Result<String, ApiError> {
    clean_name("workspace name", name, MAX_NAME_CHARS).map_err(|message| ApiError::invalid_field("name", message))
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
        let id = WorkspaceId::new();
        let connections: Vec<ConnectionRecord> = match &state.config.connectors.sample_database {
            Some(_) => vec![ConnectionRecord::sample(&id, &caller.user.id, now)],
            None => Vec::new(),
        };
        let workspace = Workspace {
            id,
            name: name.clone(),
            slug,
            created_by: caller.user.id.clone(),
            created_at: now,
            updated_at: now,
            owner_count: 1,
            api_key_count: 0,
            connection_count: u32::try_from(connections.len()).unwrap_or(u32::MAX),
            console_count: 0,
            console_folder_count: 0,
            deleting: false,
            disabled_models: Vec::new(),
        };
        let owner = Member {
            workspace_id: workspace.id.clone(),
            user_id: caller.user.id.clone(),
            role: Role::Owner,
            joined_at: now,
        };
        match workspaces.create(&workspace, &owner, &connections).await {
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
    /// Agent model ids to turn off; replaces the whole list.
    disabled_models: Option<Vec<String>>,
}

/// Most models one workspace may turn off.
const MAX_DISABLED_MODELS: usize = 100;

/// Checks a list of model ids: each 1 to 128 characters, without control characters.
fn validate_models(models: &[String]) -> Result<Vec<String>, ApiError> {
    if models.len() > MAX_DISABLED_MODELS {
        return Err(ApiError::invalid_field(
            "disabledModels",
            format!(
                "At most {MAX_DISABLED_MODELS} models can be turned off, got {}.",
                models.len()
            ),
        ));
    }
    let mut list: Vec<String> = Vec::with_capacity(models.len());
    for model in models {
        let valid = !model.trim().is_empty() && model.chars().count() <= 128 && !model.chars().any(char::is_control);
        if !valid {
            return Err(ApiError::invalid_field(
                "disabledModels",
                format!(
                    "{:?} is not a model id: use 1 to 128 characters without control characters, as GET /api/agent/models lists them.",
                    model.chars().take(64).collect::<String>()
                ),
            ));
        }
        if !list.contains(model) {
            list.push(model.clone());
        }
    }
    Ok(list)
}

pub(crate) async fn update(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiJson(request): ApiJson<UpdateWorkspace>,
) -> ApiResult<Response> {
    let name = request.name.as_deref().map(validate_name).transpose()?;
    let slug = request.slug.as_deref().map(validate_slug).transpose()?;
    let disabled_models = request.disabled_models.as_deref().map(validate_models).transpose()?;

    let view = retry_on_change(&state, access, |access| {
        let state = state.clone();
        let (name, slug, disabled_models) = (name.clone(), slug.clone(), disabled_models.clone());
        async move {
            access.require(Role::Admin, "changing the workspace")?;
            let mut updated = access.workspace.value.clone();
            if let Some(name) = name {
                updated.name = name;
            }
            if let Some(slug) = slug {
                updated.slug = slug;
            }
            if let Some(models) = disabled_models {
                updated.disabled_models = models;
            }
            updated.updated_at = Utc::now();

            match Workspaces::new(&*state.store).update(&access.workspace, &updated).await {
                Ok(()) => Ok(Attempt::Done(WorkspaceView::new(&updated, access.role))),
                Err(WorkspaceError::SlugTaken) => Err(ApiError::conflict(
                    "SLUG_TAKEN",
                    format!("The slug {:?} is taken; choose another.", updated.slug),
                )),
                Err(WorkspaceError::Changed) => Ok(Attempt::Changed),
                Err(error) => Err(ApiError::internal(error)),
            }
        }
    })
    .await?;
    Ok(ok(view))
}

pub(crate) async fn delete(State(state): State<AppState>, access: WorkspaceCaller) -> ApiResult<Response> {
    // Hide the workspace first; a concurrent membership change only means reading it again.
    let mut workspace = retry_on_change(&state, access, |access| {
        let state = state.clone();
        async move {
            access.require(Role::Owner, "deleting the workspace")?;
            match Workspaces::new(&*state.store).mark_deleting(&access.workspace).await {
                Ok(()) => Ok(Attempt::Done(access.workspace.value)),
                Err(WorkspaceError::Changed) => Ok(Attempt::Changed),
                Err(error) => Err(ApiError::internal(error)),
            }
        }
    })
    .await?;
    workspace.deleting = true;

    // If this fails, the workspace stays hidden and the maintenance task finishes the purge.
    let (removed_items, removed_blobs) = purge_workspace(&state, &workspace).await.map_err(ApiError::internal)?;
    tracing::info!(workspace_id = %workspace.id, removed_items, removed_blobs, "workspace deleted");
    Ok(ok(serde_json::json!({ "id": workspace.id, "deleted": true })))
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
