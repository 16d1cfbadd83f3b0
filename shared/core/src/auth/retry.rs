//! Changes serialized through the workspace record (members, API keys, connections) retry
//! when another change to the workspace wins the race.

use rand::RngExt;

use super::{WorkspaceCaller, authorize_workspace};
use crate::{ApiError, ApiResult, AppState};

/// Outcome of one attempt at a change that is serialized through the workspace record.
pub enum Attempt<T> {
    Done(T),
    /// The workspace changed since it was read; authorize again and retry.
    Changed,
}

/// Attempts per change before giving up with 409. Eight parallel scripts creating consoles in
/// one workspace needed more than 8.
const ATTEMPTS: u64 = 20;

/// Upper bound of the random pause before retry `attempt`, in milliseconds. The pause grows
/// with each attempt and is random, so competing requests stop colliding; the cap keeps the
/// worst case near 8 seconds.
fn backoff_millis(attempt: u64) -> u64 {
    (10 * attempt * attempt).min(500)
}

/// Runs `attempt` until it stops reporting a concurrent change. Each retry re-reads the
/// workspace and the caller's role first, so a decision never rests on a role the caller
/// lost in the meantime.
pub async fn retry_on_change<T, F, Fut>(state: &AppState, first: WorkspaceCaller, mut attempt: F) -> ApiResult<T>
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
