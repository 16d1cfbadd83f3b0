//! The `/api/workspaces` route family: workspaces, their members and their API keys.

mod api_keys;
mod members;
mod workspaces;

use axum::Router;
use axum::routing::{delete, get, put};
use mako_core::auth::{WorkspaceCaller, authorize_workspace};
use mako_core::{ApiError, ApiResult, AppState};
use rand::RngExt;

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

/// Outcome of one attempt at a change that is serialized through the workspace record.
pub(crate) enum Attempt<T> {
    Done(T),
    /// The workspace changed since it was read; authorize again and retry.
    Changed,
}

/// Attempts per change before giving up with 409.
const ATTEMPTS: u64 = 8;

/// Upper bound of the random pause before retry `attempt`, in milliseconds. The pause grows
/// with each attempt and is random, so competing requests stop colliding.
fn backoff_millis(attempt: u64) -> u64 {
    10 * attempt * attempt
}

/// Runs `attempt` until it stops reporting a concurrent change. Each retry re-reads the
/// workspace and the caller's role first, so a decision never rests on a role the caller
/// lost in the meantime.
pub(crate) async fn retry_on_change<T, F, Fut>(state: &AppState, first: WorkspaceCaller, mut attempt: F) -> ApiResult<T>
where
    F: FnMut(WorkspaceCaller) -> Fut,
    Fut: Future<Output = ApiResult<Attempt<T>>>,
{
    let caller = first.caller.clone();
    let workspace_id = first.workspace_id().clone();
    let mut access = first;
    for retry in 1..=ATTEMPTS {
        if let Attempt::Done(value) = attempt(access).await? {
            return Ok(value);
        }
        let pause = rand::rng().random_range(0..=backoff_millis(retry));
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        access = authorize_workspace(state, caller.clone(), &workspace_id).await?;
    }
    Err(ApiError::conflict(
        "CONCURRENT_CHANGE",
        "The workspace kept changing while this request ran; retry it.",
    ))
}
