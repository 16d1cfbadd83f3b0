//! API keys of a workspace: create (the full key is returned once), list and revoke.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use mako_core::access::Role;
use mako_core::auth::WorkspaceCaller;
use mako_core::auth::tokens::generate_api_key;
use mako_core::http::{ApiJson, ApiPath, ApiQuery, PageParams, created, ok, ok_page};
use mako_core::ids::ApiKeyId;
use mako_core::repo::api_keys::{ApiKey, ApiKeyError, ApiKeys, PublicApiKey};
use mako_core::text::clean_name;
use mako_core::{ApiError, ApiResult, AppState};

use mako_core::auth::{Attempt, retry_on_change};
use serde::{Deserialize, Serialize};

/// Maximum number of keys per workspace.
const MAX_KEYS_PER_WORKSPACE: u32 = 100;
/// Maximum length of a key name, in characters.
const MAX_NAME_CHARS: usize = 100;
/// Maximum lifetime of a key, in days.
const MAX_LIFETIME_DAYS: i64 = 3650;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateKey {
    name: String,
    /// `admin`, `member` (the default) or `viewer`.
    role: Option<String>,
    /// Expiry as an RFC 3339 time.
    expires_at: Option<DateTime<Utc>>,
    /// Expiry in days from now; an alternative to `expiresAt`.
    expires_in_days: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedKey {
    #[serde(flatten)]
    record: PublicApiKey,
    /// The full key. It is shown only in this response; only its hash is stored.
    key: String,
}

fn parse_key_role(text: Option<&str>, creator: Role) -> Result<Role, ApiError> {
    let role = match text {
        None => Role::Member,
        Some(text) => text
            .parse()
            .map_err(|message: String| ApiError::invalid_field("role", message))?,
    };
    if role == Role::Owner {
        return Err(ApiError::invalid_field(
            "role",
            "API keys cannot have the owner role; use admin, member or viewer.",
        ));
    }
    if role > creator {
        return Err(ApiError::invalid_field(
            "role",
            format!("A key cannot have more rights than its creator ({creator})."),
        ));
    }
    Ok(role)
}

fn parse_expiry(request: &CreateKey, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let latest = now + Duration::days(MAX_LIFETIME_DAYS);
    let expires_at = match (request.expires_at, request.expires_in_days) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_field(
                "expiresAt",
                "Give expiresAt or expiresInDays, not both.",
            ));
        }
        (Some(at), None) => Some(at),
        (None, Some(days)) if (1..=MAX_LIFETIME_DAYS).contains(&days) => Some(now + Duration::days(days)),
        (None, Some(days)) => {
            return Err(ApiError::invalid_field(
                "expiresInDays",
                format!("expiresInDays must be between 1 and {MAX_LIFETIME_DAYS}, got {days}."),
            ));
        }
        (None, None) => None,
    };
    if let Some(at) = expires_at
        && (at <= now || at > latest)
    {
        return Err(ApiError::invalid_field(
            "expiresAt",
            format!("expiresAt must be in the future and within {MAX_LIFETIME_DAYS} days."),
        ));
    }
    Ok(expires_at)
}

pub(crate) async fn create(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiJson(request): ApiJson<CreateKey>,
) -> ApiResult<Response> {
    access.caller.require_session("create API keys")?;
    access.require(Role::Admin, "creating API keys")?;
    let name = clean_name("key name", &request.name, MAX_NAME_CHARS)
        .map_err(|message| ApiError::invalid_field("name", message))?;
    let role = parse_key_role(request.role.as_deref(), access.role)?;
    let now = Utc::now();
    let expires_at = parse_expiry(&request, now)?;

    let generated = generate_api_key();
    let record = ApiKey {
        id: ApiKeyId::new(),
        workspace_id: access.workspace_id().clone(),
        name,
        prefix: generated.prefix,
        role,
        created_by: access.caller.user_id().clone(),
        created_at: now,
        last_used_at: None,
        expires_at,
        hash: generated.hash,
    };
    let record = retry_on_change(&state, access, |access| {
        let state = state.clone();
        let record = record.clone();
        async move {
            access.require(Role::Admin, "creating API keys")?;
            let record = ApiKey {
                role: parse_key_role(Some(record.role.as_str()), access.role)?,
                ..record
            };
            match ApiKeys::new(&*state.store)
                .create(&access.workspace, &record, MAX_KEYS_PER_WORKSPACE)
                .await
            {
                Ok(()) => Ok(Attempt::Done(record)),
                Err(ApiKeyError::TooMany { max }) => Err(ApiError::conflict(
                    "TOO_MANY_KEYS",
                    format!("A workspace can hold at most {max} API keys; revoke unused ones first."),
                )),
                Err(ApiKeyError::Changed | ApiKeyError::NotFound) => Ok(Attempt::Changed),
                Err(ApiKeyError::Store(error)) => Err(error.into()),
            }
        }
    })
    .await?;
    tracing::info!(workspace_id = %record.workspace_id, api_key_id = %record.id, role = %record.role, "API key created");

    Ok(created(CreatedKey {
        record: record.public(),
        key: generated.key,
    }))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    access.require(Role::Admin, "listing API keys")?;
    let limit = page.size(100, 100)?;
    let (keys, next_cursor) = ApiKeys::new(&*state.store)
        .list(access.workspace_id(), limit, page.cursor)
        .await?;
    let views: Vec<PublicApiKey> = keys.iter().map(ApiKey::public).collect();
    Ok(ok_page(views, next_cursor))
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, key_id)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    access.caller.require_session("revoke API keys")?;
    access.require(Role::Admin, "revoking API keys")?;
    let key_id: ApiKeyId = key_id
        .parse()
        .map_err(|error: mako_core::ids::InvalidId| ApiError::invalid_field("keyId", error.to_string()))?;

    let revoked = retry_on_change(&state, access, |access| {
        let state = state.clone();
        let key_id = key_id.clone();
        async move {
            access.require(Role::Admin, "revoking API keys")?;
            let keys = ApiKeys::new(&*state.store);
            let Some(key) = keys.get(access.workspace_id(), &key_id).await? else {
                return Err(ApiError::not_found(format!(
                    "API key {key_id} was not found in this workspace."
                )));
            };
            match keys.delete(&access.workspace, &key.value).await {
                // Revoked concurrently: the outcome the caller asked for.
                Ok(()) | Err(ApiKeyError::NotFound) => Ok(Attempt::Done(key.value)),
                Err(ApiKeyError::Changed | ApiKeyError::TooMany { .. }) => Ok(Attempt::Changed),
                Err(ApiKeyError::Store(error)) => Err(error.into()),
            }
        }
    })
    .await?;
    tracing::info!(workspace_id = %revoked.workspace_id, api_key_id = %key_id, "API key revoked");
    Ok(ok(serde_json::json!({ "id": key_id, "revoked": true })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_roles_never_exceed_the_creator() {
        assert_eq!(parse_key_role(None, Role::Admin).ok(), Some(Role::Member));
        assert_eq!(parse_key_role(Some("viewer"), Role::Admin).ok(), Some(Role::Viewer));
        assert!(parse_key_role(Some("owner"), Role::Owner).is_err());
        assert!(parse_key_role(Some("admin"), Role::Member).is_err());
    }
}
