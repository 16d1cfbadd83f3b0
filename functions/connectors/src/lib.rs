//! The `/api/workspaces/{wid}/connectors` route family: a workspace's database connections,
//! their tests and schema browsing.
//!
//! Admins and owners add, change and delete connections; every member, viewers included,
//! lists, tests and browses them.

mod connections;
mod schema;

use axum::Router;
use axum::routing::{get, post};
use mako_core::AppState;

/// Builds the router of the connection routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/api/workspaces/{wid}/connectors",
            get(connections::list).post(connections::create),
        )
        .route(
            "/api/workspaces/{wid}/connectors/{id}",
            get(connections::get)
                .put(connections::update)
                .delete(connections::delete),
        )
        .route("/api/workspaces/{wid}/connectors/{id}/test", post(connections::test))
        .route("/api/workspaces/{wid}/connectors/{id}/schema", get(schema::browse))
        .with_state(state)
}
