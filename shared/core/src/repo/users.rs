//! Users, their email claims and their linked OAuth identities.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Versioned, from_item, to_data};
use crate::auth::email::Email;
use crate::ids::UserId;
use crate::ports::{Condition, Item, Key, Store, StoreError, Write};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: Option<String>,
    /// Argon2id PHC string; `None` for users who only sign in with Google or GitHub.
    pub password_hash: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Public view of a user, as the API returns it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicUser {
    pub id: UserId,
    pub email: Email,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl User {
    pub fn public(&self) -> PublicUser {
        PublicUser {
            id: self.id.clone(),
            email: self.email.clone(),
            name: self.name.clone(),
            created_at: self.created_at,
        }
    }
}

/// An account at an OAuth provider, linked to a user.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub provider: String,
    pub subject: String,
    pub user_id: UserId,
    pub email: Email,
    pub linked_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmailClaim {
    user_id: UserId,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("the email address is already registered")]
    EmailTaken,
    #[error("the identity is already linked")]
    IdentityTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn user_key(id: &UserId) -> Key {
    Key::new(format!("USER#{id}"), "PROFILE")
}

fn email_key(email: &Email) -> Key {
    Key::new(format!("EMAIL#{}", email.as_str()), "EMAIL")
}

fn identity_key(provider: &str, subject: &str) -> Key {
    Key::new(format!("IDENTITY#{provider}#{subject}"), "IDENTITY")
}

pub struct Users<'a> {
    store: &'a dyn Store,
}

impl<'a> Users<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    pub async fn get(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let item = self.store.get(&user_key(id)).await?;
        Ok(item.map(from_item::<User>).transpose()?.map(|v| v.value))
    }

    /// Reads several users; the result is aligned with `ids`.
    pub async fn get_many(&self, ids: &[UserId]) -> Result<Vec<Option<User>>, StoreError> {
        let mut users = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(crate::ports::store::MAX_BATCH_GET_KEYS) {
            let keys: Vec<Key> = chunk.iter().map(user_key).collect();
            for item in self.store.batch_get(&keys).await? {
                users.push(item.map(from_item::<User>).transpose()?.map(|v| v.value));
            }
        }
        Ok(users)
    }

    pub async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let Some(claim) = self.store.get(&email_key(email)).await? else {
            return Ok(None);
        };
        let claim: Versioned<EmailClaim> = from_item(claim)?;
        self.get(&claim.value.user_id).await
    }

    /// Creates a user and claims its email address in one transaction, optionally linking an
    /// OAuth identity in the same transaction.
    pub async fn create(&self, user: &User, identity: Option<&Identity>) -> Result<(), CreateUserError> {
        let mut writes = vec![
            Write::Put {
                item: Item::new(user_key(&user.id), to_data(user)?),
                condition: Condition::NotExists,
            },
            Write::Put {
                item: Item::new(
                    email_key(&user.email),
                    to_data(&EmailClaim {
                        user_id: user.id.clone(),
                    })?,
                ),
                condition: Condition::NotExists,
            },
        ];
        if let Some(identity) = identity {
            writes.push(Write::Put {
                item: Item::new(identity_key(&identity.provider, &identity.subject), to_data(identity)?),
                condition: Condition::NotExists,
            });
        }

        match self.store.transact(writes).await {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed { index: Some(1) }) => Err(CreateUserError::EmailTaken),
            Err(StoreError::ConditionFailed { index: Some(2) }) => Err(CreateUserError::IdentityTaken),
            Err(error) => Err(error.into()),
        }
    }

    /// Removes a user's password, so only linked identities can sign in.
    pub async fn clear_password(&self, id: &UserId) -> Result<(), StoreError> {
        let Some(item) = self.store.get(&user_key(id)).await? else {
            return Ok(());
        };
        let current: Versioned<User> = from_item(item)?;
        let mut user = current.value;
        user.password_hash = None;
        user.updated_at = chrono::Utc::now();
        let item = Item {
            version: current.version + 1,
            ..Item::new(user_key(id), to_data(&user)?)
        };
        self.store.put(item, Condition::Version(current.version)).await
    }

    pub async fn find_identity(&self, provider: &str, subject: &str) -> Result<Option<Identity>, StoreError> {
        let item = self.store.get(&identity_key(provider, subject)).await?;
        Ok(item.map(from_item::<Identity>).transpose()?.map(|v| v.value))
    }

    /// Links an identity to an existing user; fails when the identity is already linked.
    pub async fn link_identity(&self, identity: &Identity) -> Result<(), CreateUserError> {
        let item = Item::new(identity_key(&identity.provider, &identity.subject), to_data(identity)?);
        match self.store.put(item, Condition::NotExists).await {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed { .. }) => Err(CreateUserError::IdentityTaken),
            Err(error) => Err(error.into()),
        }
    }
}
