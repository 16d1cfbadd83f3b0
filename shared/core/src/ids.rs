//! Ids: a type prefix and a ULID in lower case (`ws_01jd9...`), so they are opaque, URL-safe
//! and sort by creation time.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Length of the ULID part of an id.
const ULID_LEN: usize = 26;

/// Returns whether `text` is a lowercase Crockford base32 ULID.
fn is_ulid(text: &str) -> bool {
    text.len() == ULID_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_lowercase() && !matches!(b, b'i' | b'l' | b'o' | b'u')))
}

/// Returns a new ULID, strictly greater than the previous one from this process even within
/// one millisecond, so ids created in sequence also sort in sequence.
pub fn next_ulid() -> ulid::Ulid {
    static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
    match GENERATOR.lock() {
        Ok(mut generator) => generator.generate().unwrap_or_else(|_| ulid::Ulid::new()),
        Err(_) => ulid::Ulid::new(),
    }
}

/// Error for text that is not an id of the expected kind.
#[derive(Debug, thiserror::Error)]
#[error("{value:?} is not a valid {kind} id")]
pub struct InvalidId {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;
            pub const KIND: &'static str = $kind;

            /// Creates a fresh id.
            pub fn new() -> Self {
                Self(format!("{}{}", $prefix, next_ulid().to_string().to_ascii_lowercase()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(text: &str) -> Result<Self, InvalidId> {
                match text.strip_prefix($prefix) {
                    Some(rest) if is_ulid(rest) => Ok(Self(text.to_owned())),
                    _ => Err(InvalidId { kind: $kind, value: text.chars().take(64).collect() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// Id of a user.
    UserId, "usr_", "user"
);
id_type!(
    /// Id of a workspace.
    WorkspaceId, "ws_", "workspace"
);
id_type!(
    /// Id of an API key (not the key itself).
    ApiKeyId, "key_", "API key"
);
id_type!(
    /// Id of a database connection.
    ConnectionId, "conn_", "connection"
);

id_type!(
    /// Id of a console (a saved query).
    ConsoleId, "cons_", "console"
);

id_type!(
    /// Id of a console folder.
    FolderId, "fld_", "folder"
);

id_type!(
    /// Id of a dashboard.
    DashboardId, "dash_", "dashboard"
);

id_type!(
    /// Id of a dashboard folder.
    DashboardFolderId, "dfld_", "dashboard folder"
);

id_type!(
    /// Id of a queued job (a materialization run).
    JobId, "job_", "job"
);

id_type!(
    /// Id of an agent chat.
    ChatId, "chat_", "chat"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_parse_back() {
        let id = WorkspaceId::new();
        assert!(id.as_str().starts_with("ws_"));
        assert_eq!(id.as_str().parse::<WorkspaceId>().ok(), Some(id));
    }

    #[test]
    fn ids_sort_by_creation_order() {
        let ids: Vec<UserId> = (0..1000).map(|_| UserId::new()).collect();
        assert!(
            ids.windows(2).all(|pair| pair[0] < pair[1]),
            "ids created in sequence sort in sequence"
        );
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for text in [
            "",
            "ws_",
            "usr_01jd9zzzzzzzzzzzzzzzzzzzzz",
            "ws_01JD9ZZZZZZZZZZZZZZZZZZZZZ",
            "ws_01jd9zzzzzzzzzzzzzzzzzzzz",
            "ws_01jd9zzzzzzzzzzzzzzzzzzzzi",
        ] {
            assert!(text.parse::<WorkspaceId>().is_err(), "{text}");
        }
        assert!("ws_01jd9zzzzzzzzzzzzzzzzzzzzz".parse::<WorkspaceId>().is_ok());
    }
}
