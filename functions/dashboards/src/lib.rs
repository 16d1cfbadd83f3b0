//! The `/api/workspaces/{wid}/dashboards` and `/api/workspaces/{wid}/dashboard-folders`
//! route families: dashboards, their folders, and the materialization of their data sources
//! to Parquet, read back by byte range.
//!
//! Members create dashboards and edit their own; admins and owners edit every workspace
//! dashboard; viewers read them, their status and their Parquet files. Private dashboards
//! are visible to their owner alone.

mod dashboards;
mod folders;
mod materialization;
mod model;

use axum::Router;
use axum::routing::{get, post, put};
use mako_core::AppState;

/// Builds the router of the dashboard routes.
pub fn router(state: AppState) -> Router {
    let base = "/api/workspaces/{wid}/dashboards";
    let folders = "/api/workspaces/{wid}/dashboard-folders";
    Router::new()
        .route(base, get(dashboards::list).post(dashboards::create))
        .route(
            &format!("{base}/{{did}}"),
            get(dashboards::get).put(dashboards::update).delete(dashboards::delete),
        )
        .route(&format!("{base}/{{did}}/duplicate"), post(dashboards::duplicate))
        .route(
            &format!("{base}/{{did}}/materialization/status"),
            get(materialization::status),
        )
        .route(
            &format!("{base}/{{did}}/materialization/trigger"),
            post(materialization::trigger),
        )
        .route(
            &format!("{base}/{{did}}/materialization/trigger-all"),
            post(materialization::trigger_all),
        )
        .route(
            &format!("{base}/{{did}}/materialization/stream/{{dataSourceId}}"),
            get(materialization::stream),
        )
        .route(folders, get(folders::list).post(folders::create))
        .route(
            &format!("{folders}/{{fid}}"),
            put(folders::update).delete(folders::delete),
        )
        .with_state(state)
}
