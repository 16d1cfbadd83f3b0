//! The `/api/agent` route family: `POST /api/agent/chat` answers a question as a stream
//! while the agent browses schemas and runs read-only queries, and `GET /api/agent/models`
//! lists the models of the configured providers.
//!
//! Chats and their messages are stored through `mako_chats`; the model providers are in
//! `provider`, the tools in `tools`, and the stream format in `stream`.

mod chat;
mod history;
mod models;
pub mod provider;
mod stream;
mod tools;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use mako_core::AppState;
use tokio::sync::OnceCell;

/// The one agent this server has; a request may name it in `agentId`.
pub const AGENT_ID: &str = "mako";

/// Time allowed to connect to a model provider.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// State of the agent routes: the shared state, the HTTP client for providers and the
/// model catalogue, built on first use.
#[derive(Clone)]
pub(crate) struct AgentState {
    app: AppState,
    http: reqwest::Client,
    catalogue: Arc<OnceCell<Arc<models::Catalogue>>>,
}

impl FromRef<AgentState> for AppState {
    fn from_ref(state: &AgentState) -> AppState {
        state.app.clone()
    }
}

fn http_client() -> reqwest::Client {
    // Another crate of the process may have installed the provider already; either is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("mako/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|error| {
            tracing::error!(error = %error, "failed to build the model-provider HTTP client; using defaults");
            reqwest::Client::new()
        })
}

/// Builds the router of the `/api/agent` routes.
pub fn router(state: AppState) -> Router {
    let state = AgentState {
        app: state,
        http: http_client(),
        catalogue: Arc::new(OnceCell::new()),
    };
    Router::new()
        .route("/api/agent/chat", post(chat::chat))
        .route("/api/agent/models", get(models::list))
        .with_state(state)
}
