//! The authenticated caller of a request, from a session cookie or an API key, and the
//! caller's role in the workspace a request addresses.

use std::collections::HashMap;

use axum::extract::{FromRef, FromRequestParts, Path};
use axum::http::header;
use axum::http::request::Parts;
use chrono::{DateTime, Duration as ChronoDuration, Utc};

use super::cookies::{SESSION_COOKIE, read_cookie};
use super::tokens::{API_KEY_PREFIX, is_api_key_shaped, random_token, sha256_hex};
use crate::access::Role;
use crate::error::ApiError;
use crate::ids::{UserId, WorkspaceId};
use crate::repo::Versioned;
use crate::repo::api_keys::{ApiKey, ApiKeys};
use crate::repo::sessions::{Session, Sessions};
use crate::repo::users::{User, Users};
use crate::repo::workspaces::{Workspace, Workspaces};
use crate::state::AppState;

/// Activity is written back at most this often per session or key, to spare the store a
/// write on every request.
const TOUCH_INTERVAL_SECS: i64 = 60;

/// Returns how often a session's activity is written back: every minute, or more often when
/// the idle timeout is short, so an active session never idles out between writes.
fn session_touch_interval(idle_limit: ChronoDuration) -> ChronoDuration {
    ChronoDuration::seconds(TOUCH_INTERVAL_SECS).min(idle_limit / 4)
}

/// Method a caller authenticated with.
#[derive(Clone, Debug)]
pub enum AuthMethod {
    Session {
        /// SHA-256 of the cookie token; the session's store address.
        token_hash: String,
        csrf_token: String,
    },
    ApiKey {
        key: ApiKey,
        /// The key's role, capped by its creator's current role.
        role: Role,
    },
}

/// An authenticated caller. API keys act as the user who created them.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
    pub method: AuthMethod,
}

impl Caller {
    pub fn user_id(&self) -> &UserId {
        &self.user.id
    }

    /// Returns the workspace an API key is bound to, or `None` for a session.
    pub fn key_workspace(&self) -> Option<&WorkspaceId> {
        match &self.method {
            AuthMethod::ApiKey { key, .. } => Some(&key.workspace_id),
            AuthMethod::Session { .. } => None,
        }
    }

    /// Rejects API-key callers from actions that need a signed-in person.
    pub fn require_session(&self, action: &str) -> Result<(), ApiError> {
        match self.method {
            AuthMethod::Session { .. } => Ok(()),
            AuthMethod::ApiKey { .. } => Err(ApiError::forbidden(format!(
                "API keys cannot {action}; sign in with a session to do it."
            ))),
        }
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::unauthorized(message)
}

impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = AppState::from_ref(state);

        if let Some(authorization) = parts.headers.get(header::AUTHORIZATION) {
            let text = authorization.to_str().unwrap_or_default().trim();
            // Authentication schemes are case-insensitive (RFC 9110, section 11.1).
            let key = text
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, key)| key.trim());
            let Some(key) = key else {
                return Err(unauthorized(
                    "The Authorization header must be \"Bearer revops_…\" with an API key.",
                ));
            };
            return authenticate_key(&state, key).await;
        }

        if let Some(token) = read_cookie(&parts.headers, SESSION_COOKIE) {
            return authenticate_session(&state, parts, &token).await;
        }

        Err(unauthorized(
            "Not signed in. Sign in with POST /api/auth/login, or send an API key as \"Authorization: Bearer revops_…\".",
        ))
    }
}

async fn authenticate_key(state: &AppState, key: &str) -> Result<Caller, ApiError> {
    if !key.starts_with(API_KEY_PREFIX) {
        return Err(unauthorized(
            "The API key is malformed: API keys start with \"revops_\".",
        ));
    }
    if !is_api_key_shaped(key) {
        return Err(unauthorized(
            "The API key is malformed: expected \"revops_\" followed by 43 letters, digits, '-' or '_'.",
        ));
    }
    let invalid = || unauthorized("The API key is invalid, revoked or expired.");
    let keys = ApiKeys::new(&*state.store);
    let Some(found) = keys.find_by_hash(&sha256_hex(key)).await? else {
        return Err(invalid());
    };
    let now = Utc::now();
    let record = &found.value;
    if record.expires_at.is_some_and(|at| at <= now) {
        return Err(unauthorized("The API key has expired; create a new one."));
    }

    // The key works only while its creator is still a member, and never above their role.
    let workspaces = Workspaces::new(&*state.store);
    let workspace = workspaces.get(&record.workspace_id).await?;
    if workspace.is_none_or(|workspace| workspace.value.deleting) {
        return Err(invalid());
    }
    let Some(member) = workspaces.member(&record.workspace_id, &record.created_by).await? else {
        return Err(unauthorized(
            "The API key no longer works because the person who created it left the workspace.",
        ));
    };
    let Some(user) = Users::new(&*state.store).get(&record.created_by).await? else {
        return Err(invalid());
    };

    if record
        .last_used_at
        .is_none_or(|at| now - at >= ChronoDuration::seconds(TOUCH_INTERVAL_SECS))
        && let Err(error) = keys.touch(&found, now).await
    {
        tracing::warn!(api_key_id = %record.id, error = %error, "failed to record API key use");
    }

    let role = record.role.min(member.role);
    Ok(Caller {
        user,
        method: AuthMethod::ApiKey { key: found.value, role },
    })
}

async fn authenticate_session(state: &AppState, parts: &Parts, token: &str) -> Result<Caller, ApiError> {
    let expired = || unauthorized("The session has expired or was signed out; sign in again.");
    let token_hash = sha256_hex(token);
    let sessions = Sessions::new(&*state.store);
    let Some(session) = sessions.get(&token_hash).await? else {
        return Err(expired());
    };

    let now = Utc::now();
    let idle_limit = ChronoDuration::from_std(state.config.session_idle_timeout).unwrap_or(ChronoDuration::MAX);
    if session.value.expires_at <= now || now - session.value.last_seen_at > idle_limit {
        if let Err(error) = sessions.delete(&token_hash).await {
            tracing::warn!(error = %error, "failed to delete an expired session");
        }
        return Err(expired());
    }

    super::csrf::check(parts, &state.config, &session.value.csrf_token)?;

    let Some(user) = Users::new(&*state.store).get(&session.value.user_id).await? else {
        return Err(expired());
    };
    if now - session.value.last_seen_at >= session_touch_interval(idle_limit)
        && let Err(error) = sessions.touch(&token_hash, &session, now).await
    {
        tracing::warn!(user_id = %user.id, error = %error, "failed to record session activity");
    }

    Ok(Caller {
        user,
        method: AuthMethod::Session {
            token_hash,
            csrf_token: session.value.csrf_token,
        },
    })
}

/// A caller resolved against the workspace a request addresses.
#[derive(Clone, Debug)]
pub struct WorkspaceCaller {
    pub caller: Caller,
    pub workspace: Versioned<Workspace>,
    pub role: Role,
}

impl WorkspaceCaller {
    pub fn workspace_id(&self) -> &WorkspaceId {
        &self.workspace.value.id
    }

    /// Rejects callers whose role is below `minimum`, naming the action.
    pub fn require(&self, minimum: Role, action: &str) -> Result<(), ApiError> {
        if self.role >= minimum {
            return Ok(());
        }
        Err(ApiError::Forbidden {
            code: "ROLE_TOO_LOW",
            message: format!(
                "Your role in this workspace is {}; {action} needs {minimum} or higher.",
                self.role
            ),
        })
    }
}

/// Resolves the caller's role in a workspace. Unknown and deleted workspaces are 404;
/// workspaces the caller is not a member of, or an API key of another workspace, are 403.
pub async fn authorize_workspace(
    state: &AppState,
    caller: Caller,
    workspace_id: &WorkspaceId,
) -> Result<WorkspaceCaller, ApiError> {
    let workspaces = Workspaces::new(&*state.store);
    let workspace = match workspaces.get(workspace_id).await? {
        Some(workspace) if !workspace.value.deleting => workspace,
        _ => return Err(ApiError::not_found(format!("Workspace {workspace_id} was not found."))),
    };

    let role = match &caller.method {
        AuthMethod::ApiKey { key, role } => {
            if &key.workspace_id != workspace_id {
                return Err(ApiError::Forbidden {
                    code: "KEY_WRONG_WORKSPACE",
                    message: format!(
                        "This API key belongs to workspace {}, not {workspace_id}.",
                        key.workspace_id
                    ),
                });
            }
            *role
        }
        AuthMethod::Session { .. } => match workspaces.member(workspace_id, caller.user_id()).await? {
            Some(member) => member.role,
            None => {
                return Err(ApiError::Forbidden {
                    code: "NOT_A_MEMBER",
                    message: format!("You are not a member of workspace {workspace_id}."),
                });
            }
        },
    };

    Ok(WorkspaceCaller {
        caller,
        workspace,
        role,
    })
}

/// Reads the workspace from the `{wid}` path parameter.
impl<S> FromRequestParts<S> for WorkspaceCaller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::validation(format!("Invalid path: {}", rejection.body_text())))?;
        let Some(raw) = params.get("wid") else {
            return Err(ApiError::internal(anyhow::anyhow!("route has no {{wid}} parameter")));
        };
        let workspace_id: WorkspaceId = raw
            .parse()
            .map_err(|error: crate::ids::InvalidId| ApiError::invalid_field("workspaceId", error.to_string()))?;

        authorize_workspace(&AppState::from_ref(state), caller, &workspace_id).await
    }
}

/// A new session: the cookie token (shown only in the cookie) and the stored record.
pub struct NewSession {
    pub token: String,
    pub session: Session,
}

/// Creates a session for `user_id`.
pub async fn start_session(state: &AppState, user_id: &UserId) -> Result<NewSession, ApiError> {
    let now: DateTime<Utc> = Utc::now();
    let max_age = ChronoDuration::from_std(state.config.session_max_age).unwrap_or(ChronoDuration::days(30));
    let token = random_token(32);
    let session = Session {
        user_id: user_id.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + max_age,
        csrf_token: random_token(24),
    };
    Sessions::new(&*state.store)
        .create(&sha256_hex(&token), &session)
        .await?;
    Ok(NewSession { token, session })
}
