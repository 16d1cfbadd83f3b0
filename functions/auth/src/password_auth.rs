//! Email and password accounts: register, login, me and logout.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use chrono::Utc;
use mako_core::access::Role;
use mako_core::auth::cookies::{SESSION_COOKIE, clear_cookie, read_cookie, set_cookie};
use mako_core::auth::email::Email;
use mako_core::auth::password::{self, MAX_PASSWORD_CHARS, validate_new_password};
use mako_core::auth::rate_limit::{Limit, RateLimiter};
use mako_core::auth::tokens::sha256_hex;
use mako_core::auth::{AuthMethod, Caller, start_session};
use mako_core::http::{ApiJson, ClientAddr, created, ok};
use mako_core::ids::UserId;
use mako_core::repo::sessions::Sessions;
use mako_core::repo::users::{CreateUserError, PublicUser, User, Users};
use mako_core::text::clean_name;
use mako_core::{ApiError, ApiResult, AppState};
use serde::{Deserialize, Serialize};

use crate::AuthState;

/// Maximum length of a display name, in characters.
const MAX_NAME_CHARS: usize = 100;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RegisterRequest {
    email: String,
    password: String,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignedIn {
    user: PublicUser,
    /// Send as `X-CSRF-Token` on cookie-authenticated writes from non-browser clients.
    csrf_token: String,
}

/// Trims an optional display name and checks its length and characters.
pub(crate) fn normalize_name(name: Option<&str>) -> Result<Option<String>, ApiError> {
    match name.map(str::trim).filter(|name| !name.is_empty()) {
        None => Ok(None),
        Some(name) => clean_name("name", name, MAX_NAME_CHARS)
            .map(Some)
            .map_err(|message| ApiError::invalid_field("name", message)),
    }
}

fn parse_email(text: &str) -> Result<Email, ApiError> {
    Email::parse(text).map_err(|error| ApiError::invalid_field("email", error.0))
}

/// Creates a session for `user` and returns the response carrying its cookie. A session
/// cookie sent with the request is revoked, so signing in always rotates the session.
pub(crate) async fn sign_in_response(
    state: &AppState,
    request_headers: &HeaderMap,
    user: &User,
    status_created: bool,
) -> ApiResult<Response> {
    if let Some(old) = read_cookie(request_headers, SESSION_COOKIE)
        && let Err(error) = Sessions::new(&*state.store).delete(&sha256_hex(&old)).await
    {
        tracing::warn!(user_id = %user.id, error = %error, "failed to revoke the previous session");
    }

    let new = start_session(state, &user.id).await?;
    let body = SignedIn {
        user: user.public(),
        csrf_token: new.session.csrf_token,
    };
    let mut response = if status_created { created(body) } else { ok(body) };
    let cookie = set_cookie(
        &state.config,
        SESSION_COOKIE,
        &new.token,
        "/",
        state.config.session_max_age,
    );
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Rejects sign-in requests that a browser marks as sent from another site (login CSRF).
/// Clients that send no browser headers, like scripts, pass.
pub(crate) fn check_sign_in_origin(headers: &HeaderMap, state: &AppState) -> Result<(), ApiError> {
    let header_text = |name: header::HeaderName| headers.get(name).and_then(|value| value.to_str().ok());
    let cross_site = headers.get("sec-fetch-site").is_some_and(|site| site == "cross-site");
    let foreign_origin = header_text(header::ORIGIN).is_some_and(|origin| {
        let same_host = origin.split_once("://").map(|(_, host)| host) == header_text(header::HOST);
        !same_host && !state.config.is_trusted_origin(origin)
    });
    if cross_site || foreign_origin {
        return Err(ApiError::Forbidden {
            code: "CSRF_FAILED",
            message: "Sign-in requests from another site are not accepted; add that site to MAKO_ALLOWED_ORIGINS if it is yours.".into(),
        });
    }
    Ok(())
}

pub(crate) async fn register(
    State(state): State<AuthState>,
    client: ClientAddr,
    headers: HeaderMap,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> ApiResult<Response> {
    let state = &state.app;
    check_sign_in_origin(&headers, state)?;
    let email = parse_email(&request.email)?;
    validate_new_password(&request.password).map_err(|message| ApiError::invalid_field("password", message))?;
    let name = normalize_name(request.name.as_deref())?;

    let limits = &state.config.rate_limits;
    let limiter = RateLimiter::new(&*state.store, limits.window);
    let address = client.label();
    limiter
        .attempt(Limit {
            kind: "register-address",
            subject: &address,
            max: limits.registrations_per_address,
        })
        .await?;
    limiter
        .attempt(Limit {
            kind: "register-email",
            subject: email.as_str(),
            max: limits.registrations_per_email,
        })
        .await?;

    let now = Utc::now();
    let user = User {
        id: UserId::new(),
        email: email.clone(),
        name,
        password_hash: Some(password::hash(request.password).await?),
        created_at: now,
        updated_at: now,
    };
    match Users::new(&*state.store).create(&user, None).await {
        Ok(()) => {}
        Err(CreateUserError::EmailTaken) => {
            return Err(ApiError::conflict(
                "EMAIL_TAKEN",
                format!("An account with the email {email} already exists; sign in instead."),
            ));
        }
        Err(error) => return Err(ApiError::internal(error)),
    }
    tracing::info!(user_id = %user.id, "user registered");

    sign_in_response(state, &headers, &user, true).await
}

pub(crate) async fn login(
    State(state): State<AuthState>,
    client: ClientAddr,
    headers: HeaderMap,
    ApiJson(request): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let state = &state.app;
    check_sign_in_origin(&headers, state)?;
    let email = parse_email(&request.email)?;
    let invalid = || ApiError::Unauthorized {
        code: "INVALID_CREDENTIALS",
        message: "The email or password is incorrect.".into(),
    };

    // Every attempt counts before the password is checked, so parallel guesses cannot all
    // slip in before the first failure is recorded. A successful login clears the count.
    let limits = &state.config.rate_limits;
    let limiter = RateLimiter::new(&*state.store, limits.window);
    let failures = Limit {
        kind: "login-email",
        subject: email.as_str(),
        max: limits.login_failures_per_email,
    };
    let address = client.label();
    limiter
        .attempt(Limit {
            kind: "login-address",
            subject: &address,
            max: limits.logins_per_address,
        })
        .await?;
    limiter.attempt(failures).await?;

    let user = Users::new(&*state.store).find_by_email(&email).await?;
    let matches = if request.password.chars().count() > MAX_PASSWORD_CHARS {
        false
    } else {
        let hash = user.as_ref().and_then(|user| user.password_hash.clone());
        password::verify(request.password, hash)
            .await
            .map_err(ApiError::internal)?
    };
    let Some(user) = user.filter(|_| matches) else {
        tracing::info!(client = %address, "login failed");
        return Err(invalid());
    };

    limiter.reset(failures).await?;
    tracing::info!(user_id = %user.id, "user signed in");
    sign_in_response(state, &headers, &user, false).await
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeySummary {
    id: String,
    name: String,
    workspace_id: String,
    role: Role,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Me {
    user: PublicUser,
    auth_method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<KeySummary>,
}

pub(crate) async fn me(caller: Caller) -> ApiResult<Response> {
    let me = match caller.method {
        AuthMethod::Session { csrf_token, .. } => Me {
            user: caller.user.public(),
            auth_method: "session",
            csrf_token: Some(csrf_token),
            api_key: None,
        },
        AuthMethod::ApiKey { key, role } => Me {
            user: caller.user.public(),
            auth_method: "apiKey",
            csrf_token: None,
            api_key: Some(KeySummary {
                id: key.id.to_string(),
                name: key.name,
                workspace_id: key.workspace_id.to_string(),
                role,
            }),
        },
    };
    Ok(ok(me))
}

pub(crate) async fn logout(State(state): State<AuthState>, caller: Caller) -> ApiResult<Response> {
    let AuthMethod::Session { token_hash, .. } = &caller.method else {
        return Err(ApiError::validation(
            "API keys have no session to end; revoke the key with DELETE /api/workspaces/{id}/api-keys/{keyId} instead.",
        ));
    };
    Sessions::new(&*state.app.store).delete(token_hash).await?;
    tracing::info!(user_id = %caller.user.id, "user signed out");

    let mut response = ok(serde_json::json!({ "signedOut": true }));
    let cookie: HeaderValue = clear_cookie(&state.app.config, SESSION_COOKIE, "/");
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}
