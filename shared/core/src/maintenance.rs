//! Background work that keeps the data consistent: finishing workspace deletions that were
//! interrupted. The local server runs it on a timer; on AWS the scheduler function will.

use crate::AppState;
use crate::ids::WorkspaceId;
use crate::repo::workspaces::{Workspace, Workspaces};

/// Deletes everything a workspace owns: its items in the store, then its blobs under
/// `ws/<workspaceId>/`. The workspace must already be marked as deleting.
pub async fn purge_workspace(state: &AppState, workspace: &Workspace) -> anyhow::Result<(u64, u64)> {
    let blobs = state.blobs.delete_prefix(&format!("ws/{}/", workspace.id)).await?;
    let items = Workspaces::new(&*state.store).purge(workspace).await?;
    Ok((items, blobs))
}

/// Finishes up to 10 pending workspace deletions and returns how many finished. Failures
/// are logged and left for the next run.
pub async fn finish_pending_deletions(state: &AppState) -> usize {
    let workspaces = Workspaces::new(&*state.store);
    let pending: Vec<WorkspaceId> = match workspaces.pending_purges(10).await {
        Ok(pending) => pending,
        Err(error) => {
            tracing::error!(error = ?error, "failed to list pending workspace deletions");
            return 0;
        }
    };

    let mut finished = 0;
    for workspace_id in pending {
        let workspace = match workspaces.get(&workspace_id).await {
            Ok(Some(workspace)) => workspace.value,
            Ok(None) => {
                // Purged already, except for the marker; purging the stub removes it.
                stub(&workspace_id)
            }
            Err(error) => {
                tracing::error!(workspace_id = %workspace_id, error = ?error, "failed to read a workspace pending deletion");
                continue;
            }
        };
        match purge_workspace(state, &workspace).await {
            Ok((items, blobs)) => {
                tracing::info!(workspace_id = %workspace_id, items, blobs, "finished an interrupted workspace deletion");
                finished += 1;
            }
            Err(error) => {
                tracing::error!(workspace_id = %workspace_id, error = ?error, "workspace deletion failed; will retry")
            }
        }
    }
    finished
}

/// Builds a stand-in for a workspace whose record is gone, so the purge removes what is left.
fn stub(id: &WorkspaceId) -> Workspace {
    let now = chrono::Utc::now();
    Workspace {
        id: id.clone(),
        name: String::new(),
        slug: String::new(),
        created_by: crate::ids::UserId::new(),
        created_at: now,
        updated_at: now,
        owner_count: 0,
        api_key_count: 0,
        connection_count: 0,
        console_count: 0,
        console_folder_count: 0,
        deleting: true,
        disabled_models: Vec::new(),
    }
}
