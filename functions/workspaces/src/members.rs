//! Members of a workspace and their roles.
//!
//! Admins add, change and remove members, admins and viewers; only owners add, change or
//! remove owners. A signed-in member may leave on their own. The last owner can be neither
//! removed nor demoted. A member who is removed loses the API keys they created there.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use mako_core::access::Role;
use mako_core::auth::email::Email;
use mako_core::auth::{AuthMethod, WorkspaceCaller};
use mako_core::http::{ApiJson, ApiPath, ApiQuery, PageParams, created, ok, ok_page};
use mako_core::ids::{InvalidId, UserId};
use mako_core::repo::api_keys::ApiKeys;
use mako_core::repo::users::Users;
use mako_core::repo::workspaces::{Member, WorkspaceError, Workspaces};
use mako_core::{ApiError, ApiResult, AppState};
use serde::{Deserialize, Serialize};

use mako_core::auth::{Attempt, retry_on_change};

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

fn parse_user_id(text: &str) -> Result<UserId, ApiError> {
    text.parse()
        .map_err(|error: InvalidId| ApiError::invalid_field("userId", error.to_string()))
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
    let email = Email::parse(&request.email).map_err(|error| ApiError::invalid_field("email", error.0))?;
    access.require(Role::Admin, "adding members")?;
    let Some(user) = Users::new(&*state.store).find_by_email(&email).await? else {
        return Err(ApiError::not_found(format!(
            "No account uses the email {email}; ask them to register first."
        )));
    };

    let member = retry_on_change(&state, access, |access| {
        let state = state.clone();
        let user_id = user.id.clone();
        let email = email.clone();
        async move {
            access.require(Role::Admin, "adding members")?;
            if role == Role::Owner {
                access.require(Role::Owner, "adding an owner")?;
            }
            let member = Member {
                workspace_id: access.workspace_id().clone(),
                user_id,
                role,
                joined_at: Utc::now(),
            };
            match Workspaces::new(&*state.store)
                .add_member(&access.workspace, &member)
                .await
            {
                Ok(()) => Ok(Attempt::Done(member)),
                Err(WorkspaceError::AlreadyMember) => Err(ApiError::conflict(
                    "ALREADY_MEMBER",
                    format!("{email} is already a member; change their role instead."),
                )),
                Err(WorkspaceError::Changed) => Ok(Attempt::Changed),
                Err(error) => Err(ApiError::internal(error)),
            }
        }
    })
    .await?;

    tracing::info!(workspace_id = %member.workspace_id, user_id = %member.user_id, role = %role, "member added");
    Ok(created(views(&state, vec![member]).await?.pop()))
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
    let user_id = parse_user_id(&user_id)?;

    let updated = retry_on_change(&state, access, |access| {
        let state = state.clone();
        let user_id = user_id.clone();
        async move {
            access.require(Role::Admin, "changing roles")?;
            let workspaces = Workspaces::new(&*state.store);
            let member = workspaces
                .member(access.workspace_id(), &user_id)
                .await?
                .ok_or_else(|| not_member(&user_id))?;
            if member.role == Role::Owner || role == Role::Owner {
                access.require(Role::Owner, "changing an owner's role or making someone an owner")?;
            }
            if member.role == role {
                return Ok(Attempt::Done(member));
            }

            match workspaces.change_role(&access.workspace, &member, role).await {
                Ok(updated) => Ok(Attempt::Done(updated)),
                Err(WorkspaceError::LastOwner) => Err(last_owner()),
                Err(WorkspaceError::NotMember) => Err(not_member(&user_id)),
                Err(WorkspaceError::Changed) => Ok(Attempt::Changed),
                Err(error) => Err(ApiError::internal(error)),
            }
        }
    })
    .await?;

    tracing::info!(workspace_id = %updated.workspace_id, user_id = %updated.user_id, role = %updated.role, "member role changed");
    Ok(ok(views(&state, vec![updated]).await?.pop()))
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, user_id)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let user_id = parse_user_id(&user_id)?;
    // Only a signed-in person leaves; an API key acting as its creator is a removal.
    let leaving = matches!(access.caller.method, AuthMethod::Session { .. }) && &user_id == access.caller.user_id();

    let removed = retry_on_change(&state, access, |access| {
        let state = state.clone();
        let user_id = user_id.clone();
        async move {
            if !leaving {
                access.require(Role::Admin, "removing members")?;
            }
            let workspaces = Workspaces::new(&*state.store);
            let member = workspaces
                .member(access.workspace_id(), &user_id)
                .await?
                .ok_or_else(|| not_member(&user_id))?;
            if member.role == Role::Owner && !leaving {
                access.require(Role::Owner, "removing an owner")?;
            }

            match workspaces.remove_member(&access.workspace, &member).await {
                Ok(()) => Ok(Attempt::Done(member)),
                Err(WorkspaceError::LastOwner) => Err(last_owner()),
                Err(WorkspaceError::NotMember) => Err(not_member(&user_id)),
                Err(WorkspaceError::Changed) => Ok(Attempt::Changed),
                Err(error) => Err(ApiError::internal(error)),
            }
        }
    })
    .await?;

    // Their keys would come back to life if they rejoined, so they go now.
    let revoked_keys = ApiKeys::new(&*state.store)
        .revoke_created_by(&removed.user_id, Some(&removed.workspace_id))
        .await?;
    tracing::info!(
        workspace_id = %removed.workspace_id,
        user_id = %removed.user_id,
        leaving,
        revoked_keys,
        "member removed"
    );
    Ok(ok(
        serde_json::json!({ "userId": user_id, "removed": true, "revokedApiKeys": revoked_keys }),
    ))
}
