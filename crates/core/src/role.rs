//! Roles of a tenant member. Ordered from most to least privileged.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Full control, including removing other owners and deleting the AWS connection.
    Owner,
    /// Manages members (except owners), the AWS connection and collections.
    Admin,
    /// Reads everything in the tenant, changes nothing.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// Owners and admins manage members, connections and collections.
    pub fn can_manage(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// Whether a member with this role may grant or revoke `other`. Admins cannot touch owners,
    /// so an admin can never lock the owners out.
    pub fn can_assign(self, other: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => other != Role::Owner,
            Role::Viewer => false,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role `{0}`: expected owner, admin or viewer")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "viewer" => Ok(Role::Viewer),
            other => Err(UnknownRole(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_cannot_assign_owners() {
        assert!(Role::Owner.can_assign(Role::Owner));
        assert!(!Role::Admin.can_assign(Role::Owner));
        assert!(Role::Admin.can_assign(Role::Viewer));
        assert!(!Role::Viewer.can_assign(Role::Viewer));
    }

    #[test]
    fn roles_round_trip_through_text() {
        for role in [Role::Owner, Role::Admin, Role::Viewer] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
