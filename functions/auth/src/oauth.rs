//! Sign-in with Google and GitHub: the OAuth 2.0 authorization-code flow with PKCE (S256)
//! and a one-time state.
//!
//! 1. `GET /api/auth/{provider}` stores a state with a PKCE verifier, binds the state to the
//!    browser with a short-lived cookie, and redirects to the provider.
//! 2. `GET /api/auth/{provider}/callback` consumes the state, exchanges the code (sending the
//!    verifier), reads the account's verified email, finds, links or creates the user, sets
//!    the session cookie and redirects to the app URL. Failures redirect to the app URL with
//!    `authError=<code>`, because a browser, not a script, follows this route.

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use mako_core::auth::cookies::{OAUTH_STATE_COOKIE, clear_cookie, read_cookie, set_cookie};
use mako_core::auth::email::Email;
use mako_core::auth::tokens::{pkce_challenge, random_token};
use mako_core::config::OAuthProvider;
use mako_core::ids::UserId;
use mako_core::ports::SecretString;
use mako_core::repo::api_keys::ApiKeys;
use mako_core::repo::oauth_states::{OAuthState, OAuthStates};
use mako_core::repo::sessions::Sessions;
use mako_core::repo::users::{CreateUserError, Identity, User, Users};
use mako_core::{ApiError, ApiResult, AppState};
use serde::Deserialize;
use url::Url;

use crate::AuthState;
use crate::password_auth::{normalize_name, sign_in_response};

/// How long a sign-in may take between the redirect and the callback.
const STATE_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// Timeout of each call to a provider.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Path of the state cookie: only the callbacks need it.
const STATE_COOKIE_PATH: &str = "/api/auth";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Provider {
    Google,
    Github,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::Google => "google",
            Provider::Github => "github",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Provider::Google => "Google",
            Provider::Github => "GitHub",
        }
    }

    fn settings(self, state: &AppState) -> &OAuthProvider {
        match self {
            Provider::Google => &state.config.google,
            Provider::Github => &state.config.github,
        }
    }

    fn secret_name(self) -> &'static str {
        match self {
            Provider::Google => "google-client-secret",
            Provider::Github => "github-client-secret",
        }
    }

    fn scope(self) -> &'static str {
        match self {
            Provider::Google => "openid email profile",
            Provider::Github => "read:user user:email",
        }
    }
}

/// Builds the client for provider calls: rustls with ring, no redirects, a timeout.
pub(crate) fn http_client() -> reqwest::Client {
    // Another crate of the process may have installed the provider already; either is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(PROVIDER_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("mako/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|error| {
            tracing::error!(error = %error, "failed to build the identity-provider HTTP client; using defaults");
            reqwest::Client::new()
        })
}

/// Client id and secret of a configured provider, or the error explaining how to configure it.
async fn credentials(state: &AppState, provider: Provider) -> ApiResult<(String, SecretString)> {
    let not_configured = || ApiError::NotFound {
        code: "PROVIDER_NOT_CONFIGURED",
        message: format!(
            "{} sign-in is not configured on this server. Set MAKO_{}_CLIENT_ID and the secret {} (MAKO_{}_CLIENT_SECRET when running locally).",
            provider.title(),
            provider.name().to_ascii_uppercase(),
            provider.secret_name(),
            provider.name().to_ascii_uppercase(),
        ),
    };
    let Some(client_id) = provider.settings(state).client_id.clone() else {
        return Err(not_configured());
    };
    let Some(secret) = state.secrets.get(provider.secret_name()).await? else {
        return Err(not_configured());
    };
    Ok((client_id, secret))
}

/// Returns the base URL browsers use for this server: the configured public URL, or the
/// scheme and host of the request (API Gateway sets `X-Forwarded-Proto`).
fn public_base(state: &AppState, headers: &HeaderMap) -> ApiResult<Url> {
    if let Some(url) = &state.config.public_url {
        return Ok(url.clone());
    }
    let header_text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let host = header_text("host").ok_or_else(|| ApiError::validation("The request has no Host header."))?;
    let scheme = header_text("x-forwarded-proto").unwrap_or("https");
    Url::parse(&format!("{scheme}://{host}/"))
        .map_err(|_| ApiError::validation(format!("The Host header {host:?} is not a valid host name.")))
}

fn callback_url(base: &Url, provider: Provider) -> ApiResult<Url> {
    base.join(&format!("/api/auth/{}/callback", provider.name()))
        .map_err(ApiError::internal)
}

pub(crate) async fn start_google(state: State<AuthState>, headers: HeaderMap) -> ApiResult<Response> {
    start(state, headers, Provider::Google).await
}

pub(crate) async fn start_github(state: State<AuthState>, headers: HeaderMap) -> ApiResult<Response> {
    start(state, headers, Provider::Github).await
}

async fn start(State(state): State<AuthState>, headers: HeaderMap, provider: Provider) -> ApiResult<Response> {
    let state = &state.app;
    let (client_id, _) = credentials(state, provider).await?;
    let redirect_uri = callback_url(&public_base(state, &headers)?, provider)?;

    let oauth_state = random_token(32);
    let verifier = random_token(48);
    let now = Utc::now();
    let record = OAuthState {
        provider: provider.name().to_owned(),
        code_verifier: verifier.clone(),
        redirect_uri: redirect_uri.to_string(),
        created_at: now,
        expires_at: now + chrono::Duration::from_std(STATE_LIFETIME).unwrap_or_default(),
    };
    OAuthStates::new(&*state.store).create(&oauth_state, &record).await?;

    let mut authorize = provider.settings(state).authorize_url.clone();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", redirect_uri.as_str())
        .append_pair("response_type", "code")
        .append_pair("scope", provider.scope())
        .append_pair("state", &oauth_state)
        .append_pair("code_challenge", &pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");

    let mut response = Redirect::to(authorize.as_str()).into_response();
    let cookie = set_cookie(
        &state.config,
        OAUTH_STATE_COOKIE,
        &oauth_state,
        STATE_COOKIE_PATH,
        STATE_LIFETIME,
    );
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// The callback's query parameters. A parameter that appears twice is treated as missing,
/// which fails the sign-in with `invalid_callback`.
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

impl CallbackQuery {
    fn parse(query: Option<&str>) -> CallbackQuery {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
        let single = |name: &str| {
            let mut values = pairs
                .iter()
                .filter(|(key, _)| key == name)
                .map(|(_, value)| value.clone());
            match (values.next(), values.next()) {
                (Some(value), None) => Some(value),
                _ => None,
            }
        };
        CallbackQuery {
            code: single("code"),
            state: single("state"),
            error: single("error"),
        }
    }
}

pub(crate) async fn callback_google(state: State<AuthState>, headers: HeaderMap, query: RawQuery) -> Response {
    callback(
        state,
        headers,
        CallbackQuery::parse(query.0.as_deref()),
        Provider::Google,
    )
    .await
}

pub(crate) async fn callback_github(state: State<AuthState>, headers: HeaderMap, query: RawQuery) -> Response {
    callback(
        state,
        headers,
        CallbackQuery::parse(query.0.as_deref()),
        Provider::Github,
    )
    .await
}

/// A failed sign-in: a short code for the app and the detail for the log.
struct SignInFailure {
    code: &'static str,
    detail: String,
}

fn failure(code: &'static str, detail: impl Into<String>) -> SignInFailure {
    SignInFailure {
        code,
        detail: detail.into(),
    }
}

async fn callback(
    State(auth): State<AuthState>,
    headers: HeaderMap,
    query: CallbackQuery,
    provider: Provider,
) -> Response {
    let state = &auth.app;
    let outcome = complete_sign_in(&auth, &headers, query, provider).await;

    let mut response = match outcome {
        Ok(Ok(response)) => response,
        Ok(Err(failure)) => {
            tracing::warn!(provider = provider.name(), code = failure.code, detail = ?failure.detail, "OAuth sign-in failed");
            let mut target = state.config.app_url.clone();
            target.query_pairs_mut().append_pair("authError", failure.code);
            Redirect::to(target.as_str()).into_response()
        }
        Err(error) => error.into_response(),
    };
    response.headers_mut().append(
        header::SET_COOKIE,
        clear_cookie(&state.config, OAUTH_STATE_COOKIE, STATE_COOKIE_PATH),
    );
    response
}

/// Runs the callback. The outer error is a server failure (500); the inner one a sign-in the
/// provider or the user could not complete.
async fn complete_sign_in(
    auth: &AuthState,
    headers: &HeaderMap,
    query: CallbackQuery,
    provider: Provider,
) -> ApiResult<Result<Response, SignInFailure>> {
    let state = &auth.app;
    if let Some(error) = query.error {
        return Ok(Err(failure(
            "provider_denied",
            format!("the provider returned error={error}"),
        )));
    }
    let (Some(code), Some(sent_state)) = (query.code, query.state) else {
        return Ok(Err(failure("invalid_callback", "the callback has no code or no state")));
    };

    // The state must be the one this browser started with, and unused.
    if read_cookie(headers, OAUTH_STATE_COOKIE).as_deref() != Some(sent_state.as_str()) {
        return Ok(Err(failure(
            "invalid_state",
            "the state does not match this browser's sign-in",
        )));
    }
    let Some(record) = OAuthStates::new(&*state.store).take(&sent_state).await? else {
        return Ok(Err(failure(
            "invalid_state",
            "the state is unknown, expired or already used",
        )));
    };
    if record.provider != provider.name() {
        return Ok(Err(failure("invalid_state", "the state belongs to another provider")));
    }

    let (client_id, secret) = credentials(state, provider).await?;
    let access_token = match exchange_code(auth, provider, &client_id, &secret, &code, &record).await {
        Ok(token) => token,
        Err(detail) => return Ok(Err(failure("token_exchange_failed", detail))),
    };
    let account = match read_account(auth, provider, &access_token).await {
        Ok(Some(account)) => account,
        Ok(None) => {
            return Ok(Err(failure(
                "email_not_verified",
                "the account has no verified email address",
            )));
        }
        Err(detail) => return Ok(Err(failure("profile_failed", detail))),
    };

    let user = find_or_create_user(state, provider, account).await?;
    tracing::info!(user_id = %user.id, provider = provider.name(), "user signed in with OAuth");
    let mut response = sign_in_response(state, headers, &user, false).await?;

    // The JSON body suits API clients; browsers follow the redirect to the app.
    *response.status_mut() = StatusCode::FOUND;
    let location = HeaderValue::from_str(state.config.app_url.as_str()).map_err(ApiError::internal)?;
    response.headers_mut().insert(header::LOCATION, location);
    Ok(Ok(response))
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Exchanges the authorization code for an access token.
async fn exchange_code(
    auth: &AuthState,
    provider: Provider,
    client_id: &str,
    secret: &SecretString,
    code: &str,
    record: &OAuthState,
) -> Result<String, String> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", record.redirect_uri.as_str()),
        ("client_id", client_id),
        ("client_secret", secret.expose()),
        ("code_verifier", record.code_verifier.as_str()),
    ];
    let response = auth
        .http
        .post(provider.settings(&auth.app).token_url.clone())
        .header(header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|error| format!("token request failed: {error}"))?;
    let status = response.status();
    // GitHub reports errors with status 200 and an `error` field, so both are checked.
    let body: TokenResponse = response
        .json()
        .await
        .map_err(|error| format!("token response (status {status}) is not the expected JSON: {error}"))?;
    if let Some(error) = body.error {
        return Err(format!(
            "token endpoint returned {error}: {}",
            body.error_description.unwrap_or_default()
        ));
    }
    match body.access_token {
        Some(token) if status.is_success() => Ok(token),
        _ => Err(format!(
            "token endpoint returned status {status} without an access token"
        )),
    }
}

/// Provider account details that sign-in needs.
struct Account {
    subject: String,
    email: Email,
    name: Option<String>,
}

#[derive(Deserialize)]
struct GoogleUserInfo {
    sub: String,
    email: Option<String>,
    #[serde(default)]
    email_verified: bool,
    name: Option<String>,
}

#[derive(Deserialize)]
struct GithubUser {
    id: u64,
    login: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

async fn get_json<T: serde::de::DeserializeOwned>(auth: &AuthState, url: Url, token: &str) -> Result<T, String> {
    let response = auth
        .http
        .get(url.clone())
        .bearer_auth(token)
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|error| format!("request to {} failed: {error}", url.path()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{} returned status {status}", url.path()));
    }
    response
        .json()
        .await
        .map_err(|error| format!("{} returned unexpected JSON: {error}", url.path()))
}

/// Reads the account behind an access token; `None` when it has no verified email.
async fn read_account(auth: &AuthState, provider: Provider, token: &str) -> Result<Option<Account>, String> {
    let settings = provider.settings(&auth.app);
    match provider {
        Provider::Google => {
            let info: GoogleUserInfo = get_json(auth, settings.user_url.clone(), token).await?;
            let email = info.email.filter(|_| info.email_verified);
            let Some(email) = email.and_then(|email| Email::parse(&email).ok()) else {
                return Ok(None);
            };
            Ok(Some(Account {
                subject: info.sub,
                email,
                name: info.name,
            }))
        }
        Provider::Github => {
            let api = settings.user_url.as_str().trim_end_matches('/').to_owned();
            let parse = |path: &str| Url::parse(&format!("{api}{path}")).map_err(|error| error.to_string());
            let user: GithubUser = get_json(auth, parse("/user")?, token).await?;
            let emails: Vec<GithubEmail> = get_json(auth, parse("/user/emails")?, token).await?;
            let primary = emails.into_iter().find(|email| email.primary && email.verified);
            let Some(email) = primary.and_then(|primary| Email::parse(&primary.email).ok()) else {
                return Ok(None);
            };
            Ok(Some(Account {
                subject: user.id.to_string(),
                email,
                name: user.name.or(Some(user.login)),
            }))
        }
    }
}

/// Removes the password, sessions and API keys of an account that an OAuth sign-in just
/// linked by email.
///
/// Registration does not verify email addresses, so someone else may have registered this
/// address first and kept its password. The provider has now proven who owns the address, so
/// the unverified password, the sessions it opened and the API keys it created stop working.
/// NOTE: a person who registered with a password and later signs in with Google or GitHub
/// loses password sign-in too. There is no route yet to set a new password.
async fn secure_linked_account(state: &AppState, user: &User) -> ApiResult<()> {
    if user.password_hash.is_none() {
        return Ok(());
    }
    Users::new(&*state.store).clear_password(&user.id).await?;
    let sessions = Sessions::new(&*state.store).revoke_all(&user.id).await?;
    let api_keys = ApiKeys::new(&*state.store).revoke_created_by(&user.id, None).await?;
    tracing::warn!(
        user_id = %user.id,
        sessions,
        api_keys,
        "OAuth link removed the unverified password and revoked its sessions and API keys"
    );
    Ok(())
}

/// Returns the user linked to the account. Failing that, links the account to the user with
/// the same verified email, and failing that, creates a user without a password.
async fn find_or_create_user(state: &AppState, provider: Provider, account: Account) -> ApiResult<User> {
    let users = Users::new(&*state.store);
    let missing_user = || ApiError::internal(anyhow::anyhow!("identity points at a missing user"));

    if let Some(identity) = users.find_identity(provider.name(), &account.subject).await? {
        return users.get(&identity.user_id).await?.ok_or_else(missing_user);
    }

    let now = Utc::now();
    // Two attempts: a concurrent callback may create the same user or link between our read
    // and our write.
    for _ in 0..2 {
        if let Some(user) = users.find_by_email(&account.email).await? {
            let identity = Identity {
                provider: provider.name().to_owned(),
                subject: account.subject.clone(),
                user_id: user.id.clone(),
                email: account.email.clone(),
                linked_at: now,
            };
            match users.link_identity(&identity).await {
                Ok(()) => {}
                Err(CreateUserError::IdentityTaken) => return Ok(user),
                Err(error) => return Err(ApiError::internal(error)),
            }
            secure_linked_account(state, &user).await?;
            return Ok(user);
        }

        let user = User {
            id: UserId::new(),
            email: account.email.clone(),
            name: normalize_name(account.name.as_deref()).unwrap_or(None),
            password_hash: None,
            created_at: now,
            updated_at: now,
        };
        let identity = Identity {
            provider: provider.name().to_owned(),
            subject: account.subject.clone(),
            user_id: user.id.clone(),
            email: account.email.clone(),
            linked_at: now,
        };
        match users.create(&user, Some(&identity)).await {
            Ok(()) => return Ok(user),
            Err(CreateUserError::EmailTaken) => continue,
            Err(CreateUserError::IdentityTaken) => {
                let identity = users
                    .find_identity(provider.name(), &account.subject)
                    .await?
                    .ok_or_else(missing_user)?;
                return users.get(&identity.user_id).await?.ok_or_else(missing_user);
            }
            Err(error) => return Err(ApiError::internal(error)),
        }
    }
    Err(ApiError::internal(anyhow::anyhow!(
        "could not create or link the user after a concurrent change"
    )))
}
