//! The `/api/workspaces/{wid}/consoles` route family: saved queries ("consoles"), their
//! folders, their code versions and their runs.
//!
//! Members create consoles and edit their own; admins and owners edit every workspace
//! console; viewers read and run. Private consoles and folders are visible to their owner
//! alone (see `tree`).

mod consoles;
mod folders;
mod model;
mod run;
mod tree;
mod versions;

pub use consoles::{CreateBody, create_console, search};
pub use model::{ConsoleView, ParameterBody};

use axum::Router;
use axum::routing::{get, post, put};
use mako_core::AppState;

/// Builds the router of the console routes.
pub fn router(state: AppState) -> Router {
    let base = "/api/workspaces/{wid}/consoles";
    Router::new()
        .route(base, post(consoles::create))
        .route(&format!("{base}/list"), get(consoles::list))
        .route(&format!("{base}/folders"), get(folders::list).post(folders::create))
        .route(
            &format!("{base}/folders/{{fid}}"),
            put(folders::update).delete(folders::delete),
        )
        .route(
            &format!("{base}/{{id}}"),
            put(consoles::update).delete(consoles::delete),
        )
        .route(&format!("{base}/{{id}}/details"), get(consoles::details))
        .route(&format!("{base}/{{id}}/execute"), post(run::execute))
        .route(&format!("{base}/{{id}}/versions"), get(versions::list))
        .route(&format!("{base}/{{id}}/versions/{{version}}"), get(versions::get))
        .route(
            &format!("{base}/{{id}}/versions/{{version}}/restore"),
            post(versions::restore),
        )
        .with_state(state)
}
