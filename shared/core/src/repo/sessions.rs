//! Server-side sessions, addressed by the SHA-256 of the cookie token so that a leaked
//! table does not leak usable cookies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Versioned, from_item, to_data};
use crate::ids::UserId;
use crate::ports::{Condition, Index, IndexKey, Item, Key, Query, Store, StoreError};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// Absolute expiry; the item's TTL is set to the same instant.
    pub expires_at: DateTime<Utc>,
    /// Token that non-browser clients send as `X-CSRF-Token` on cookie-authenticated writes.
    pub csrf_token: String,
}

fn session_key(token_hash: &str) -> Key {
    Key::new(format!("SESSION#{token_hash}"), "SESSION")
}

/// Returns the session's key in its user's list of sessions (secondary index 1).
fn user_index(token_hash: &str, session: &Session) -> IndexKey {
    IndexKey::new(
        format!("USER#{}", session.user_id),
        format!("SESSION#{}#{token_hash}", session.created_at.timestamp_millis()),
    )
}

fn session_item(token_hash: &str, session: &Session) -> Result<Item, StoreError> {
    Ok(Item::new(session_key(token_hash), to_data(session)?)
        .with_gsi1(user_index(token_hash, session))
        .expiring_at(session.expires_at.timestamp()))
}

pub struct Sessions<'a> {
    store: &'a dyn Store,
}

impl<'a> Sessions<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    pub async fn create(&self, token_hash: &str, session: &Session) -> Result<(), StoreError> {
        self.store
            .put(session_item(token_hash, session)?, Condition::NotExists)
            .await
    }

    pub async fn get(&self, token_hash: &str) -> Result<Option<Versioned<Session>>, StoreError> {
        let item = self.store.get(&session_key(token_hash)).await?;
        item.map(from_item).transpose()
    }

    /// Records activity. A concurrent touch winning the race is fine, so conflicts are ignored.
    pub async fn touch(
        &self,
        token_hash: &str,
        session: &Versioned<Session>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut updated = session.value.clone();
        updated.last_seen_at = now;
        let item = Item {
            version: session.version + 1,
            ..session_item(token_hash, &updated)?
        };
        match self.store.put(item, Condition::Version(session.version)).await {
            Err(StoreError::ConditionFailed { .. }) => Ok(()),
            other => other,
        }
    }

    pub async fn delete(&self, token_hash: &str) -> Result<(), StoreError> {
        self.store.delete(&session_key(token_hash), Condition::Always).await
    }

    /// Ends every session of a user and returns how many there were.
    pub async fn revoke_all(&self, user_id: &UserId) -> Result<u64, StoreError> {
        let mut revoked = 0;
        // Deleted items leave the index, so every round reads from the top again. The bound
        // stops the loop if an index that lags behind (DynamoDB's are eventually consistent)
        // keeps returning deleted sessions.
        for _ in 0..100 {
            let query = Query::index(Index::Gsi1, format!("USER#{user_id}"))
                .begins_with("SESSION#")
                .limit(100);
            let page = self.store.query(&query).await?;
            if page.items.is_empty() {
                return Ok(revoked);
            }
            for item in page.items {
                self.store.delete(&item.key(), Condition::Always).await?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }
}
