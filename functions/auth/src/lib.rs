//! The `/api/auth` route family: register, login, me, logout, and sign-in with Google and
//! GitHub.

mod oauth;
mod password_auth;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use mako_core::AppState;

/// State of the auth routes: the shared state plus the HTTP client for identity providers.
#[derive(Clone)]
pub(crate) struct AuthState {
    app: AppState,
    http: reqwest::Client,
}

impl FromRef<AuthState> for AppState {
    fn from_ref(state: &AuthState) -> AppState {
        state.app.clone()
    }
}

/// Builds the router of the `/api/auth` routes.
pub fn router(state: AppState) -> Router {
    let state = AuthState {
        app: state,
        http: oauth::http_client(),
    };
    Router::new()
        .route("/api/auth/register", post(password_auth::register))
        .route("/api/auth/login", post(password_auth::login))
        .route("/api/auth/me", get(password_auth::me))
        .route("/api/auth/logout", post(password_auth::logout))
        .route("/api/auth/google", get(oauth::start_google))
        .route("/api/auth/github", get(oauth::start_github))
        .route("/api/auth/google/callback", get(oauth::callback_google))
        .route("/api/auth/github/callback", get(oauth::callback_github))
        .with_state(state)
}
