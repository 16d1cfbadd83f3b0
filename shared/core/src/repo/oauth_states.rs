//! One-time OAuth states: each sign-in redirect stores its state and PKCE verifier, and the
//! callback consumes them at most once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Versioned, from_item, to_data};
use crate::ports::{Condition, Item, Key, Store, StoreError};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthState {
    pub provider: String,
    pub code_verifier: String,
    pub redirect_uri: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

fn state_key(state: &str) -> Key {
    Key::new(format!("OAUTH#{state}"), "STATE")
}

pub struct OAuthStates<'a> {
    store: &'a dyn Store,
}

impl<'a> OAuthStates<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    pub async fn create(&self, state: &str, record: &OAuthState) -> Result<(), StoreError> {
        let item = Item::new(state_key(state), to_data(record)?).expiring_at(record.expires_at.timestamp());
        self.store.put(item, Condition::NotExists).await
    }

    /// Reads and deletes a state. Of two concurrent callers, only one gets it.
    pub async fn take(&self, state: &str) -> Result<Option<OAuthState>, StoreError> {
        let Some(item) = self.store.get(&state_key(state)).await? else {
            return Ok(None);
        };
        let record: Versioned<OAuthState> = from_item(item)?;
        match self
            .store
            .delete(&state_key(state), Condition::Version(record.version))
            .await
        {
            Ok(()) => Ok(Some(record.value)),
            Err(StoreError::ConditionFailed { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }
}
