//! Members of a workspace and their roles.
//!
//! Admins add, change and remove members, admins and viewers; only owners add, change or
//! remove owners. Anyone may leave. The last owner can be neither removed nor demoted.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use mako_core::access::Role;
use mako_core::auth::WorkspaceCaller;
use mako_core::auth::email::Email;
use mako_core::http::{ApiJson, ApiPath, ApiQuery, PageParams, created, ok, ok_page};
use mako_core::ids::{UserId, WorkspaceId};
use mako_core::repo::Versioned;
use mako_core::repo::users::Users;
use mako_core::repo::workspaces::{Member, Workspace, WorkspaceError, Workspaces};
use mako_core::{ApiError, ApiResult, AppState};
use serde::{Deserialize, Serialize};

/// Attempts at a membership change when the workspace changes concurrently.
const ATTEMPTS: usize = 3;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberView {
    user_id: UserId,
    email: Option<Email>,
    name: Option<String>,
    role: Role,
    joined_at: DateTime<Utc>,
}

async fn views(state: &AppState, members: Vec<Member>) -> ApiResult<Vec<MemberView>> {
    let ids: Vec<UserId> = members.iter().map(|member| member.user_id.clone()).collect();
    let users = Users::new(&*state.store).get_many(&ids).await?;
    Ok(members
        .into_iter()
        .zip(users)
        .map(|(member, user)| MemberView {
            user_id: member.user_id,
            email: user.as_ref().map(|user| user.email.clone()),
            name: user.and_then(|user| user.name),
            role: member.role,
            joined_at: member.joined_at,
        })
        .collect())
}

fn parse_role(text: &str) -> Result<Role, ApiError> {
    text.parse()
        .map_err(|message: String| ApiError::invalid_field("role", message))
}

fn not_member(user_id: &UserId) -> ApiError {
    ApiError::not_found(format!("User {user_id} is not a member of this workspace."))
}

fn last_owner() -> ApiError {
    ApiError::conflict(
        "LAST_OWNER",
        "A workspace must keep at least one owner; make another member an owner first.",
    )
}

/// Re-reads a workspace after a concurrent change.
async fn reload(state: &AppState, id: &WorkspaceId) -> ApiResult<Versioned<Workspace>> {
    Workspaces::new(&*state.store)
        .get(id)
        .await?
        .filter(|workspace| !workspace.value.deleting)
        .ok_or_else(|| ApiError::not_found(format!("Workspace {id} was not found.")))
}

fn concurrent_change() -> ApiError {
    ApiError::conflict("CONCURRENT_CHANGE", "The workspace's members kept changing; retry.")
}

pub(crate) async fn list(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    let limit = page.size(100, 500)?;
    let (members, next_cursor) = Workspaces::new(&*state.store)
        .members(access.workspace_id(), limit, page.cursor)
        .await?;
    Ok(ok_page(views(&state, members).await?, next_cursor))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AddMember {
    email: String,
    role: String,
}

pub(crate) async fn add(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiJson(request): ApiJson<AddMember>,
) -> ApiResult<Response> {
    let role = parse_role(&request.role)?;
    access.require(Role::Admin, "adding members")?;
    if role == Role::Owner {
        access.require(Role::Owner, "adding an owner")?;
    }
    let email = Email::parse(&request.email).map_err(|error| ApiError::invalid_field("email", error.0))?;
    let Some(user) = Users::new(&*state.store).find_by_email(&email).await? else {
        return Err(ApiError::not_found(format!(
            "No account uses the email {email}; ask them to register first."
        )));
    };

    let member = Member {
        workspace_id: access.workspace_id().clone(),
        user_id: user.id.clone(),
        role,
        joined_at: Utc::now(),
    };
    let workspaces = Workspaces::new(&*state.store);
    let mut workspace = access.workspace.clone();
    for _ in 0..ATTEMPTS {
        match workspaces.add_member(&workspace, &member).await {
            Ok(()) => {
                tracing::info!(workspace_id = %member.workspace_id, user_id = %member.user_id, role = %role, "member added");
                return Ok(created(views(&state, vec![member]).await?.pop()));
            }
            Err(WorkspaceError::AlreadyMember) => {
                return Err(ApiError::conflict(
                    "ALREADY_MEMBER",
                    format!("{email} is already a member; change their role instead."),
                ));
            }
            Err(WorkspaceError::Changed) => workspace = reload(&state, access.workspace_id()).await?,
            Err(error) => return Err(ApiError::internal(error)),
        }
    }
    Err(concurrent_change())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ChangeRole {
    role: String,
}

pub(crate) async fn change_role(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, user_id)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<ChangeRole>,
) -> ApiResult<Response> {
    let role = parse_role(&request.role)?;
    let user_id: UserId = user_id
        .parse()
        .map_err(|error: mako_core::ids::InvalidId| ApiError::invalid_field("userId", error.to_string()))?;
    access.require(Role::Admin, "changing roles")?;

    let workspaces = Workspaces::new(&*state.store);
    let mut workspace = access.workspace.clone();
    for _ in 0..ATTEMPTS {
        let member = workspaces
            .member(access.workspace_id(), &user_id)
            .await?
            .ok_or_else(|| not_member(&user_id))?;
        if member.role == Role::Owner || role == Role::Owner {
            access.require(Role::Owner, "changing an owner's role or making someone an owner")?;
        }
        if member.role == role {
            return Ok(ok(views(&state, vec![member]).await?.pop()));
        }

        match workspaces.change_role(&workspace, &member, role).await {
            Ok(updated) => {
                tracing::info!(workspace_id = %updated.workspace_id, user_id = %updated.user_id, role = %role, "member role changed");
                return Ok(ok(views(&state, vec![updated]).await?.pop()));
            }
            Err(WorkspaceError::LastOwner) => return Err(last_owner()),
            Err(WorkspaceError::NotMember) => return Err(not_member(&user_id)),
            Err(WorkspaceError::Changed) => workspace = reload(&state, access.workspace_id()).await?,
            Err(error) => return Err(ApiError::internal(error)),
        }
    }
    Err(concurrent_change())
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, user_id)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let user_id: UserId = user_id
        .parse()
        .map_err(|error: mako_core::ids::InvalidId| ApiError::invalid_field("userId", error.to_string()))?;
    let leaving = &user_id == access.caller.user_id();
    if !leaving {
        access.require(Role::Admin, "removing members")?;
    }

    let workspaces = Workspaces::new(&*state.store);
    let mut workspace = access.workspace.clone();
    for _ in 0..ATTEMPTS {
        let member = workspaces
            .member(access.workspace_id(), &user_id)
            .await?
            .ok_or_else(|| not_member(&user_id))?;
        if member.role == Role::Owner && !leaving {
            access.require(Role::Owner, "removing an owner")?;
        }

        match workspaces.remove_member(&workspace, &member).await {
            Ok(()) => {
                tracing::info!(workspace_id = %member.workspace_id, user_id = %member.user_id, leaving, "member removed");
                return Ok(ok(serde_json::json!({ "userId": user_id, "removed": true })));
            }
            Err(WorkspaceError::LastOwner) => return Err(last_owner()),
            Err(WorkspaceError::NotMember) => return Err(not_member(&user_id)),
            Err(WorkspaceError::Changed) => workspace = reload(&state, access.workspace_id()).await?,
            Err(error) => return Err(ApiError::internal(error)),
        }
    }
    Err(concurrent_change())
}
