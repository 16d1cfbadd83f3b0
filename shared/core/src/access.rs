//! Roles within a workspace and what each may do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::auth::WorkspaceCaller;
use crate::ids::UserId;
use crate::repo::consoles::Visibility;
use crate::{ApiError, ApiResult};

/// A member's role, from least to most privileged (the order `Ord` compares by).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads and runs read-only queries.
    Viewer,
    /// Creates and edits consoles, dashboards, flows and chats.
    Member,
    /// Manages connections, API keys and members.
    Admin,
    /// Everything, including deleting the workspace.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            other => Err(format!("{other:?} is not a role; use owner, admin, member or viewer")),
        }
    }
}

/// The caller, as the visibility rules of consoles and dashboards see them: private items
/// are visible to their owner alone, members edit their own, admins and owners edit every
/// workspace item, and viewers read only.
pub struct Viewer {
    pub user: UserId,
    pub role: Role,
    /// Whether the role is an API key's, which may be lower than its creator's.
    pub by_key: bool,
}

impl Viewer {
    pub fn of(access: &WorkspaceCaller) -> Viewer {
        Viewer {
            user: access.caller.user_id().clone(),
            role: access.role,
            by_key: access.caller.key_workspace().is_some(),
        }
    }

    /// Returns whether an item itself (not its folders) is visible.
    pub fn sees(&self, owner: &UserId, visibility: Visibility) -> bool {
        visibility == Visibility::Workspace || owner == &self.user
    }

    /// Returns whether a visible item may be changed or deleted.
    pub fn may_edit(&self, owner: &UserId, visibility: Visibility) -> bool {
        self.role >= Role::Member && self.sees(owner, visibility) && (owner == &self.user || self.role >= Role::Admin)
    }

    /// Rejects viewers, naming the action.
    pub fn require_member(&self, action: &str) -> ApiResult<()> {
        if self.role >= Role::Member {
            return Ok(());
        }
        let subject = if self.by_key {
            "This API key's role"
        } else {
            "Your role in this workspace"
        };
        Err(ApiError::Forbidden {
            code: "ROLE_TOO_LOW",
            message: format!("{subject} is {}; {action} needs member or higher.", self.role),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_by_privilege() {
        assert!(Role::Viewer < Role::Member);
        assert!(Role::Member < Role::Admin);
        assert!(Role::Admin < Role::Owner);
    }

    #[test]
    fn roles_parse_and_print() {
        for role in [Role::Viewer, Role::Member, Role::Admin, Role::Owner] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
