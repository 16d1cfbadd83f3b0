//! The `/api/workspaces` route family: workspaces, their members and their API keys.

mod api_keys;
mod members;
mod workspaces;

use axum::Router;
use axum::routing::{delete, get, put};
use mako_core::AppState;

/// Builds the router of the `/api/workspaces` routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/workspaces", get(workspaces::list).post(workspaces::create))
        .route(
            "/api/workspaces/{wid}",
            get(workspaces::get).put(workspaces::update).delete(workspaces::delete),
        )
        .route("/api/workspaces/{wid}/members", get(members::list).post(members::add))
        .route(
            "/api/workspaces/{wid}/members/{user_id}",
            put(members::change_role).delete(members::remove),
        )
        .route(
            "/api/workspaces/{wid}/api-keys",
            get(api_keys::list).post(api_keys::create),
        )
        .route("/api/workspaces/{wid}/api-keys/{key_id}", delete(api_keys::revoke))
        .with_state(state)
}
