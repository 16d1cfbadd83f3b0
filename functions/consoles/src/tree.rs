//! Visibility and edit rights: the visibility of consoles and folders, and the folder tree.
//!
//! A private console or folder is visible to its owner alone; a workspace one to every
//! member. A folder's visibility applies to everything inside it, so an item is visible
//! only when it and every folder above it are. Members edit what they own, and admins and
//! owners also edit every workspace item. Viewers read and run only. No member, not even an
//! admin, can see another member's private items.

use std::collections::HashMap;

use mako_core::auth::WorkspaceCaller;
use mako_core::ids::{FolderId, UserId};
use mako_core::repo::consoles::{Consoles, Folder, Visibility};
use mako_core::{ApiError, ApiResult, AppState};

/// Folders nest at most this deep.
pub const MAX_DEPTH: usize = 8;

pub use mako_core::access::Viewer;

/// Every folder of a workspace, by id.
pub struct Tree {
    folders: HashMap<FolderId, Folder>,
}

impl Tree {
    pub async fn load(state: &AppState, access: &WorkspaceCaller) -> ApiResult<Tree> {
        let folders = Consoles::new(&*state.store).all_folders(access.workspace_id()).await?;
        Ok(Tree {
            folders: folders.into_iter().map(|folder| (folder.id.clone(), folder)).collect(),
        })
    }

    pub fn get(&self, id: &FolderId) -> Option<&Folder> {
        self.folders.get(id)
    }

    pub fn folders(&self) -> impl Iterator<Item = &Folder> {
        self.folders.values()
    }

    /// Returns the folder and those above it, innermost first. The walk stops at a missing folder
    /// and at `MAX_DEPTH + 1` steps, so stored data can never make it loop.
    pub fn chain(&self, id: Option<&FolderId>) -> Vec<&Folder> {
        let mut chain = Vec::new();
        let mut next = id;
        while let Some(id) = next {
            let Some(folder) = self.folders.get(id) else { break };
            if chain.len() > MAX_DEPTH {
                break;
            }
            chain.push(folder);
            next = folder.parent_id.as_ref();
        }
        chain
    }

    /// Returns whether every folder from `id` up is visible (the root always is).
    pub fn path_visible(&self, viewer: &Viewer, id: Option<&FolderId>) -> bool {
        self.chain(id)
            .iter()
            .all(|folder| viewer.sees(&folder.owner_id, folder.visibility))
    }

    /// Returns whether a folder and everything above it are visible.
    pub fn folder_visible(&self, viewer: &Viewer, folder: &Folder) -> bool {
        self.path_visible(viewer, Some(&folder.id))
    }

    /// Names of the folders from the root down to `id`.
    pub fn path(&self, id: Option<&FolderId>) -> Vec<String> {
        let mut names: Vec<String> = self.chain(id).iter().map(|folder| folder.name.clone()).collect();
        names.reverse();
        names
    }

    /// Depth of a folder: 1 for a folder at the root.
    pub fn depth(&self, id: &FolderId) -> usize {
        self.chain(Some(id)).len()
    }

    /// Levels below a folder: 0 when it has no subfolders.
    pub fn height(&self, id: &FolderId) -> usize {
        self.folders
            .values()
            .filter(|folder| self.chain(Some(&folder.id)).iter().any(|above| &above.id == id))
            .map(|folder| self.chain(Some(&folder.id)).len())
            .max()
            .map_or(0, |deepest| deepest.saturating_sub(self.depth(id)))
    }

    /// Returns the folders below `id`, not `id` itself.
    pub fn below(&self, id: &FolderId) -> Vec<&Folder> {
        self.folders
            .values()
            .filter(|folder| folder.id != *id && self.is_within(&folder.id, id))
            .collect()
    }

    /// Returns whether `id` is `ancestor` or lies below it.
    pub fn is_within(&self, id: &FolderId, ancestor: &FolderId) -> bool {
        self.chain(Some(id)).iter().any(|folder| &folder.id == ancestor)
    }

    /// Returns the folders an item of `owner` would sit in at `id` (the folder and those
    /// above it, innermost first; none at the top level), after checking that the caller
    /// sees the folder and that no private folder of someone else is among them.
    pub fn place(&self, viewer: &Viewer, field: &str, id: Option<&FolderId>, owner: &UserId) -> ApiResult<Vec<Folder>> {
        if let Some(id) = id {
            self.destination(viewer, field, id)?;
        }
        let chain = self.chain(id);
        check_private_chain(&chain, &[owner], field)?;
        Ok(chain.into_iter().cloned().collect())
    }

    /// Returns a folder the caller may put items into, or the 400 that explains why not.
    pub fn destination(&self, viewer: &Viewer, field: &str, id: &FolderId) -> ApiResult<&Folder> {
        match self.folders.get(id) {
            Some(folder) if self.folder_visible(viewer, folder) => Ok(folder),
            _ => Err(ApiError::invalid_field(
                field,
                format!("Folder {id} was not found in this workspace."),
            )),
        }
    }
}

/// Rejects a change that would put items of `owners` inside a private folder of someone
/// else (one of `chain`), which would hide them from their owners.
pub fn check_private_chain(chain: &[&Folder], owners: &[&UserId], field: &str) -> ApiResult<()> {
    let private = chain.iter().find(|folder| {
        folder.visibility == Visibility::Private && owners.iter().any(|owner| *owner != &folder.owner_id)
    });
    match private {
        Some(folder) => Err(ApiError::invalid_field(
            field,
            format!(
                "Folder {:?} is private, so it holds only its owner's items, and this change would hide other members' items inside it.",
                folder.name
            ),
        )),
        None => Ok(()),
    }
}
